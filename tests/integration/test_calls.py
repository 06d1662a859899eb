#!/usr/bin/env python3
"""Calls through the proxy, driven by SIPp (sip-tester) as caller and callees.

Each callee is a SIPp UAS on its own port whose contact is registered with
the server by the test's own client; the caller is a SIPp UAC that meets a
407 challenge first. Covered: a full call (INVITE/407/ACK/INVITE/100/180/200/
ACK/BYE/200) over UDP and TCP, with 10% packet loss, CANCEL while ringing,
486 from the callee, a callee that never answers, parallel forking to two
registered contacts, an unknown user (404), a known user with no binding
(480), a wrong password (never a 200), two workers.
"""
import os
import tempfile

from sbtest import (SCENARIOS, Server, SippBackground, SipClient, auth_kw, check, free_port, main,
                    need, sipp, write_inf)


def setup(server, callee="bob", callee_pw="bobpw"):
    server.add_user("alice", "alicepw")
    server.add_user(callee, callee_pw)


def register_uas(server, user, password, uas_port, transport="udp", q=None):
    c = SipClient(server)
    params = ";q=%s" % q if q else ""
    contact = "<sip:%s@127.0.0.1:%d;transport=%s>%s" % (user, uas_port, transport, params)
    r = c.register(user, password, contact=contact, expires=600)
    c.close()
    check(r is not None and r.status == 200, "callee registration failed: %r" % r)


def uac(server, tmp, callee="bob", calls=1, transport="u1", extra=(), password="alicepw", rate=10):
    inf = write_inf(os.path.join(tmp, "callers.csv"),
                    [("alice", auth_kw("alice", password), "127.0.0.1", callee)] * 1)
    return sipp([server.host, "-sf", os.path.join(SCENARIOS, "uac_call_auth.xml"), "-inf", inf,
                 "-m", calls, "-r", rate, "-t", transport, "-i", "127.0.0.1", "-p", free_port(),
                 "-d", 0, "-timeout", "60s", "-timeout_error", "-trace_err",
                 "-error_file", os.path.join(tmp, "uac_errors.log"), "-trace_msg",
                 "-message_file", os.path.join(tmp, "uac_msgs.log")] + list(extra), cwd=tmp)


def start_uas(tmp, scenario, port, transport="u1", calls=1, extra=()):
    need("sipp")
    limit = ["-m", calls] if calls else []
    return SippBackground(["-sf", os.path.join(SCENARIOS, scenario), "-i", "127.0.0.1", "-p", port,
                           "-t", transport] + limit + list(extra), cwd=tmp)


def test_call_udp():
    tmp = tempfile.mkdtemp()
    with Server() as s:
        setup(s)
        port = free_port()
        uas = start_uas(tmp, "uas_answer.xml", port, calls=5)
        register_uas(s, "bob", "bobpw", port)
        rc, out = uac(s, tmp, calls=5)
        urc, uout = uas.wait(30)
        check(rc == 0, "caller failed:\n" + out + s.log_tail())
        check(urc == 0, "callee failed:\n" + uout)


def test_call_with_port_in_ruri_and_two_workers():
    """sip:bob@127.0.0.1:PORT is the user bob, and two workers share the work."""
    tmp = tempfile.mkdtemp()
    with Server(workers=2) as s:
        setup(s)
        port = free_port()
        uas = start_uas(tmp, "uas_answer.xml", port, calls=20)
        register_uas(s, "bob", "bobpw", port)
        inf = write_inf(os.path.join(tmp, "c.csv"),
                        [("alice", auth_kw("alice", "alicepw"), s.host, "bob")])
        rc, out = sipp([s.host, "-sf", os.path.join(SCENARIOS, "uac_call_auth.xml"), "-inf", inf,
                        "-m", 20, "-r", 20, "-i", "127.0.0.1", "-p", free_port(), "-d", 0,
                        "-timeout", "60s", "-timeout_error"], cwd=tmp)
        urc, uout = uas.wait(30)
        check(rc == 0, "caller failed:\n" + out + s.log_tail())
        check(urc == 0, "callee failed:\n" + uout)


def test_call_tcp():
    tmp = tempfile.mkdtemp()
    with Server() as s:
        setup(s)
        port = free_port()
        uas = start_uas(tmp, "uas_answer.xml", port, transport="t1", calls=3)
        register_uas(s, "bob", "bobpw", port, transport="tcp")
        rc, out = uac(s, tmp, calls=3, transport="t1")
        urc, uout = uas.wait(30)
        check(rc == 0, "caller failed:\n" + out + s.log_tail())
        check(urc == 0, "callee failed:\n" + uout)


def test_call_udp_with_10_percent_loss():
    """SIPp drops 10% of the caller's messages in both directions: the proxy's
    retransmission handling (INVITE absorbed while proceeding, 407 re-sent,
    2xx retransmissions forwarded through the Accepted state, BYE answered
    from the server transaction) carries every call through."""
    tmp = tempfile.mkdtemp()
    with Server() as s:
        setup(s)
        port = free_port()
        uas = start_uas(tmp, "uas_answer.xml", port, calls=0)
        register_uas(s, "bob", "bobpw", port)
        rc, out = uac(s, tmp, calls=30, extra=["-lost", 10], rate=10)
        uas.stop()
        ef = os.path.join(tmp, "uac_errors.log")
        errs = open(ef).read() if os.path.exists(ef) else ""
        check(rc == 0, "caller failed:\n" + out[-1500:] + errs[-3000:])
        check("Retrans" in out, "no retransmission statistics")


def uac_scenario(tmp, status, cancel_after_ms=None):
    """uac_call_auth.xml ending in `status` (ACKed), or in a CANCEL after cancel_after_ms."""
    xml = os.path.join(tmp, "uac_%d.xml" % status)
    with open(os.path.join(SCENARIOS, "uac_call_auth.xml")) as f:
        s = f.read()
    head = s[:s.index('<recv response="100" optional="true"/>\n  <recv response="180"')]
    if cancel_after_ms is None:
        tail = """<recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="%d"/>
  <send>
    <![CDATA[
      ACK sip:[field3]@[field2] SIP/2.0
      [last_Via:]
      Max-Forwards: 70
      From: <sip:[field0]@[field2]>;tag=[pid]SIPpTag01[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Content-Length: 0

    ]]>
  </send>
</scenario>
""" % status
    else:
        tail = """<recv response="100" optional="true"/>
  <recv response="180"/>
  <pause milliseconds="%d"/>
  <send retrans="500">
    <![CDATA[
      CANCEL sip:[field3]@[field2] SIP/2.0
      [last_Via:]
      Max-Forwards: 70
      From: <sip:[field0]@[field2]>;tag=[pid]SIPpTag01[call_number]
      To: <sip:[field3]@[field2]>
      Call-ID: [call_id]
      CSeq: 2 CANCEL
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
  <recv response="487"/>
  <send>
    <![CDATA[
      ACK sip:[field3]@[field2] SIP/2.0
      [last_Via:]
      Max-Forwards: 70
      From: <sip:[field0]@[field2]>;tag=[pid]SIPpTag01[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 2 ACK
      Content-Length: 0

    ]]>
  </send>
</scenario>
""" % cancel_after_ms
    with open(xml, "w") as f:
        f.write(head + tail)
    return xml


def caller_expecting(server, tmp, status, callee="bob", cancel_after_ms=None):
    """A SIPp caller that expects `status` as the final answer (after its own 407 round)."""
    xml = uac_scenario(tmp, status, cancel_after_ms)
    inf = write_inf(os.path.join(tmp, "c.csv"),
                    [("alice", auth_kw("alice", "alicepw"), "127.0.0.1", callee)])
    return sipp([server.host, "-sf", xml, "-inf", inf, "-m", 1, "-i", "127.0.0.1",
                 "-p", free_port(), "-timeout", "60s", "-timeout_error"], cwd=tmp)


def test_cancel_while_ringing():
    tmp = tempfile.mkdtemp()
    with Server() as s:
        setup(s)
        port = free_port()
        uas = start_uas(tmp, "uas_ring.xml", port)
        register_uas(s, "bob", "bobpw", port)
        rc, out = caller_expecting(s, tmp, 487, cancel_after_ms=300)
        urc, uout = uas.wait(30)
        check(rc == 0, "caller failed:\n" + out + s.log_tail())
        check(urc == 0, "callee did not see the CANCEL:\n" + uout)


def test_busy_callee():
    tmp = tempfile.mkdtemp()
    with Server() as s:
        setup(s)
        port = free_port()
        uas = start_uas(tmp, "uas_busy.xml", port)
        register_uas(s, "bob", "bobpw", port)
        rc, out = caller_expecting(s, tmp, 486)
        urc, uout = uas.wait(30)
        check(rc == 0, "caller did not get 486:\n" + out + s.log_tail())
        check(urc == 0, "callee did not get the proxy's ACK:\n" + uout)


def test_callee_never_answers():
    """A callee that does not answer at all: Timer B ends the branch with 408."""
    tmp = tempfile.mkdtemp()
    dead = free_port()  # nothing listens there
    with Server(extra=[]) as s:
        setup(s)
        register_uas(s, "bob", "bobpw", dead)
        t0 = __import__("time").time()
        rc, out = caller_expecting(s, tmp, 408)
        check(rc == 0, "caller did not get 408:\n" + out + s.log_tail())
        elapsed = __import__("time").time() - t0
        check(elapsed > 25, "408 came before Timer B (64*T1): %.1fs" % elapsed)


def test_fork_to_two_contacts():
    """Parallel forking: both contacts ring, the first 200 wins, the other is cancelled."""
    tmp = tempfile.mkdtemp()
    with Server() as s:
        setup(s)
        p1, p2 = free_port(), free_port()
        answer = start_uas(tmp, "uas_answer.xml", p1)
        # the cancelled contact insists on the RFC 3326 "completed elsewhere" Reason
        with open(os.path.join(SCENARIOS, "uas_ring.xml")) as f:
            xml = f.read().replace('<recv request="CANCEL"/>', """<recv request="CANCEL">
    <action><ereg regexp="Reason: SIP;cause=200" search_in="msg" check_it="true" assign_to="why"/></action>
  </recv>""").replace('<Reference variables="all"/>', '<Reference variables="all,why"/>')
        ring_xml = os.path.join(tmp, "uas_ring_elsewhere.xml")
        with open(ring_xml, "w") as f:
            f.write(xml)
        ring = start_uas(tempfile.mkdtemp(), ring_xml, p2)
        register_uas(s, "bob", "bobpw", p1)
        register_uas(s, "bob", "bobpw", p2)
        rc, out = uac(s, tmp, calls=1)
        arc, aout = answer.wait(30)
        rrc, rout = ring.wait(30)
        check(rc == 0, "caller failed:\n" + out + s.log_tail())
        check(arc == 0, "answering contact failed:\n" + aout)
        check(rrc == 0, "ringing contact was not cancelled with a Reason:\n" + rout)


def test_unknown_user_404_and_unregistered_480():
    """To one of our users who authenticated, 404 (no such user) and 480 (not registered) say
    what happened; to a stranger both are 404, so the user base cannot be mapped."""
    with Server() as s:
        setup(s)
        c = SipClient(s)
        r = c.request("OPTIONS", "sip:nobody@127.0.0.1", from_="<sip:guest@example.org>")
        check(r.status == 404, "unknown user: %r" % r)
        r = c.request("OPTIONS", "sip:bob@127.0.0.1", from_="<sip:guest@example.org>")
        check(r.status == 404, "known user without a binding, to a stranger: %r" % r)
        for callee, want in (("nobody", 404), ("bob", 480)):
            ruri = "sip:%s@127.0.0.1" % callee
            c.cseq += 1
            r = c.request("OPTIONS", ruri, from_="<sip:alice@127.0.0.1>")
            check(r.status == 407, "alice not challenged: %r" % r)
            auth = c.auth_header(r, "alice", "alicepw", "OPTIONS", ruri, proxy=True)
            c.cseq += 1
            r = c.request("OPTIONS", ruri, [auth], from_="<sip:alice@127.0.0.1>")
            check(r.status == want, "%s to alice: %r" % (callee, r))


def test_wrong_password_never_200():
    tmp = tempfile.mkdtemp()
    with Server() as s:
        setup(s)
        port = free_port()
        uas = start_uas(tmp, "uas_answer.xml", port)
        register_uas(s, "bob", "bobpw", port)
        rc, out = uac(s, tmp, calls=1, password="wrong", extra=["-timeout", "5s"])
        uas.stop()
        check(rc != 0, "a call with a wrong password succeeded")
        check("SIP/2.0 200" not in "".join(l for l in s.log_text().splitlines()
                                             if "send to" in l and "INVITE" in l),
              "a 200 was sent for the INVITE")
        c = SipClient(s)
        r = c.register("alice", "not-her-password")
        check(r.status == 401, "REGISTER with a wrong password: %r" % r)


if __name__ == "__main__":
    main(globals())
