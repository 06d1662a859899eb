#!/usr/bin/env python3
"""Dialog state (issue 13 item 3), seen through `switchboard call list`.

alice (a raw UDP caller, sbphone.Caller) calls bob (a registered raw UDP
phone, sbphone.Phone) through the server. Followed: the call's dialog
through early (180), confirmed (200/ACK) and terminated (BYE), shown by
`call list` while it lasts and gone after; a session-timer expiry (RFC
4028) that ends a call whose refreshes stop, with a BYE to both sides;
and a restart of the server (killed, not stopped) in the middle of a call,
after which the call is listed again and its BYE still routes and ends it.
"""
import os
import random
import re
import sqlite3
import tempfile
import time

from sbphone import Caller, Phone, hget
from sbtest import (SCENARIOS, Server, SippBackground, auth_kw, check, cli, free_port, main,
                    wait_for, write_inf)
from test_calls import register_uas, start_uas

SDP_A = ("v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         "m=audio 40000 RTP/AVP 0\r\n")
SDP_B = ("v=0\r\no=bob 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
         "m=audio 40002 RTP/AVP 0\r\n")



def call_list(server):
    p = cli("call", "list", db=server.db)
    return p.stdout


def listed_state(server, callid):
    """The STATE column of callid in `call list`, or None."""
    for line in call_list(server).splitlines():
        cols = line.split()
        if cols and cols[0] == callid:
            return cols[3]
    return None


def config(tmp, extra=""):
    path = os.path.join(tmp, "sb.yaml")
    with open(path, "w") as f:
        f.write(extra)
    return path


def reply(req, status, reason, to_tag, extra=(), body=""):
    """A response to req from bob's phone (Via, From, To, Call-ID, CSeq copied)."""
    lines = ["SIP/2.0 %d %s" % (status, reason)]
    for v in hget(req, "via"):
        lines.append("Via: " + v)
    for v in hget(req, "record-route"):
        lines.append("Record-Route: " + v)
    lines.append("From: " + hget(req, "from")[0])
    to = hget(req, "to")[0]
    if ";tag=" not in to:
        to += ";tag=" + to_tag
    lines.append("To: " + to)
    lines.append("Call-ID: " + hget(req, "call-id")[0])
    lines.append("CSeq: " + hget(req, "cseq")[0])
    lines += list(extra)
    if body:
        lines.append("Content-Type: application/sdp")
    lines.append("Content-Length: %d" % len(body.encode()))
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


class Call:
    """alice -> bob through the server, every message by hand."""

    def __init__(self, server, bob, invite_headers=()):
        self.s = server
        self.bob = bob
        self.alice = Caller(server)
        self.callid = "%x@dialog-test" % random.getrandbits(64)
        self.ruri = "sip:bob@%s" % server.host
        self.alice.c.callid = self.callid
        r407 = self.alice.challenge(self.ruri)
        auth = self.alice.credentials(r407, self.ruri)
        self.cseq = 2
        self.invite = self.alice.c.build(
            "INVITE", self.ruri,
            ["Contact: <sip:alice@127.0.0.1:%d>" % self.alice.c.port, auth] +
            list(invite_headers),
            body=SDP_A, to="<%s>" % self.ruri, from_="<sip:alice@127.0.0.1>", cseq=self.cseq,
            branch="z9hG4bK%x" % random.getrandbits(48))
        self.invite = self.invite.replace(b"Content-Length:",
                                          b"Content-Type: application/sdp\r\nContent-Length:")
        self.alice.send(self.invite)
        self.bob_inv = bob.recv_request("INVITE", 3)
        check(self.bob_inv is not None, "bob got no INVITE: " + server.log_tail())
        self.bob_tag = "b%x" % random.getrandbits(32)
        self.bob_contact = "Contact: <sip:bob@127.0.0.1:%d>" % bob.port

    def ring(self):
        self.bob.send(reply(self.bob_inv, 180, "Ringing", self.bob_tag, [self.bob_contact]))

    def answer(self, extra=()):
        self.bob.send(reply(self.bob_inv, 200, "OK", self.bob_tag,
                            [self.bob_contact] + list(extra), body=SDP_B))
        r = self.alice.final(3)
        check(r is not None and r.status == 200, "alice got %r, not 200" % r)
        self.ok = r
        self.to = r.get("To")
        # the caller's route set: the Record-Route of the 2xx, reversed (RFC 3261 12.1.2)
        self.routes = list(reversed([v.strip() for h in r.all("Record-Route")
                                     for v in h.split(",")]))
        self.target = re.search(r"<([^>]+)>", r.get("Contact")).group(1)
        self.in_dialog("ACK", self.cseq)

    def in_dialog(self, method, cseq):
        hdrs = ["Route: " + ", ".join(self.routes)] if self.routes else []
        data = self.alice.c.build(method, self.target, hdrs, to=self.to,
                                  from_="<sip:alice@127.0.0.1>", cseq=cseq)
        self.alice.send(data)
        return data

    def hangup(self):
        self.in_dialog("BYE", self.cseq + 1)
        bye = self.bob.recv_request("BYE", 3)
        check(bye is not None, "bob got no BYE: " + self.s.log_tail())
        self.bob.send(reply(bye, 200, "OK", self.bob_tag))
        r = self.alice.final(3)
        check(r is not None and r.status == 200, "alice's BYE got %r" % r)

    def close(self):
        self.alice.close()


def server(tmp, cfg_text="", db=None, port=None):
    """A Server (not started: `with` starts it) with its own configuration file."""
    return Server(tmp=tmp, config=config(tmp, cfg_text), db=db, port=port)


def users(s):
    s.add_user("alice", "alicepw")
    s.add_user("bob", "bobpw")


def test_call_list_follows_a_dialog():
    """trying/early while it rings, confirmed once answered, gone after the BYE."""
    tmp = tempfile.mkdtemp(prefix="sbdlg-")
    with server(tmp) as s:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        call = Call(s, bob)
        # the proxy asks for a session timer (RFC 4028) in the INVITE it forwards
        check(hget(call.bob_inv, "session-expires") == ["1800"],
              "no Session-Expires added: %r" % hget(call.bob_inv, "session-expires"))
        wait_for(lambda: listed_state(s, call.callid) == "trying", 3, "trying in call list")
        call.ring()
        wait_for(lambda: listed_state(s, call.callid) == "early", 3, "early in call list")
        call.answer()
        wait_for(lambda: listed_state(s, call.callid) == "confirmed", 3,
                 "confirmed in call list")
        line = [x for x in call_list(s).splitlines() if x.startswith(call.callid)][0]
        check("sip:alice@127.0.0.1" in line and "sip:bob@" in line, "caller/callee: " + line)
        show = cli("call", "show", call.callid, db=s.db).stdout
        check("m=audio 40000" in show and "m=audio 40002" in show,
              "offer and answer not kept: " + show)
        check(re.search(r"to_tag\s+" + call.bob_tag, show), "To tag: " + show)
        call.hangup()
        wait_for(lambda: listed_state(s, call.callid) is None, 3, "the call to leave the list")
        check("no calls" in call_list(s), call_list(s))
        p = cli("call", "show", call.callid, db=s.db, check_rc=False)
        check(p.returncode == 4, "call show of an ended call: %d %s" % (p.returncode, p.stderr))
        call.close()
        bob.close()
    p = cli("call", "list", db=s.db, check_rc=False)
    check(p.returncode == 1 and "not running" in p.stderr,
          "call list without a server: %d %r" % (p.returncode, p.stderr))


def test_failed_call_leaves_no_dialog():
    """A 486 ends the early dialog and the call (reason: failure)."""
    tmp = tempfile.mkdtemp(prefix="sbdlg-")
    with server(tmp) as s:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        call = Call(s, bob)
        call.ring()
        wait_for(lambda: listed_state(s, call.callid) == "early", 3, "early")
        bob.send(reply(call.bob_inv, 486, "Busy Here", call.bob_tag))
        r = call.alice.final(3)
        check(r is not None and r.status == 486, "alice got %r" % r)
        wait_for(lambda: listed_state(s, call.callid) is None, 3, "the failed call to go")
        call.close()
        bob.close()


def test_session_timer_expiry_sends_bye_to_both_sides():
    """No refresh within the session interval: the proxy sends BYE both ways."""
    tmp = tempfile.mkdtemp(prefix="sbdlg-")
    cfg = "dialog:\n  session_expires: 3\n  min_se: 2\n  test_short_timers: true\n"
    with server(tmp, cfg) as s:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        call = Call(s, bob)
        check(hget(call.bob_inv, "session-expires") == ["3"],
              "Session-Expires: %r" % hget(call.bob_inv, "session-expires"))
        call.answer(["Session-Expires: 3;refresher=uac", "Require: timer"])
        t0 = time.time()
        wait_for(lambda: listed_state(s, call.callid) == "confirmed", 3, "confirmed")
        # nobody refreshes: both sides get a BYE from the proxy
        bye_b = bob.recv_request("BYE", 8)
        check(bye_b is not None, "bob got no BYE: " + s.log_tail())
        bob.send(reply(bye_b, 200, "OK", call.bob_tag))
        bye_a = None
        deadline = time.time() + 5
        while time.time() < deadline and bye_a is None:
            try:
                data = call.alice.c.recv_raw(max(deadline - time.time(), 0.01))
            except OSError:
                break
            if data.startswith(b"BYE "):
                bye_a = data
        check(bye_a is not None, "alice got no BYE: " + s.log_tail())
        call.alice.send(reply(bye_a, 200, "OK", None))
        elapsed = time.time() - t0
        check(elapsed >= 2.0, "BYE after %.1f s, before the session expired" % elapsed)
        # the BYE to bob speaks for alice: her tags, the CSeq after her INVITE's, a Reason
        check(hget(bye_b, "call-id") == [call.callid], "Call-ID of the BYE")
        check(hget(bye_b, "cseq")[0] == "%d BYE" % (call.cseq + 1), "CSeq %r" % hget(bye_b, "cseq"))
        check(call.alice.c.tag in hget(bye_b, "from")[0], "From of bob's BYE")
        check(call.bob_tag in hget(bye_b, "to")[0], "To of bob's BYE")
        check("Session timer" in " ".join(hget(bye_b, "reason")), "Reason %r" % hget(bye_b, "reason"))
        check(bye_a.split(b" ")[1].decode() == "sip:alice@127.0.0.1:%d" % call.alice.c.port,
              "BYE to alice goes to her Contact: %r" % bye_a[:80])
        check(call.bob_tag in hget(bye_a, "from")[0] and call.alice.c.tag in hget(bye_a, "to")[0],
              "tags of alice's BYE")
        wait_for(lambda: listed_state(s, call.callid) is None, 3, "the expired call to go")
        check("session expired" in s.log_text(), "not logged")
        call.close()
        bob.close()


def test_refresh_keeps_the_call():
    """A re-INVITE answered 2xx refreshes the session: no BYE at the first expiry."""
    tmp = tempfile.mkdtemp(prefix="sbdlg-")
    cfg = "dialog:\n  session_expires: 3\n  min_se: 2\n  test_short_timers: true\n"
    with server(tmp, cfg) as s:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        call = Call(s, bob)
        call.answer(["Session-Expires: 3;refresher=uac"])
        for n in range(3):
            time.sleep(1.5)
            call.in_dialog("INVITE", call.cseq + 10 + n)
            reinv = bob.recv_request("INVITE", 3)
            check(reinv is not None, "re-INVITE not routed: " + s.log_tail())
            bob.send(reply(reinv, 200, "OK", call.bob_tag,
                           [call.bob_contact, "Session-Expires: 3;refresher=uac"], body=SDP_B))
            r = call.alice.final(3)
            check(r is not None and r.status == 200, "re-INVITE got %r" % r)
            call.in_dialog("ACK", call.cseq + 10 + n)
        check(listed_state(s, call.callid) == "confirmed", "refreshed call gone: " + s.log_tail())
        call.cseq += 20
        call.hangup()
        wait_for(lambda: listed_state(s, call.callid) is None, 3, "the call to go")
        call.close()
        bob.close()


def test_422_for_our_session_expires_is_retried():
    """A callee wants a longer interval than we asked for: the proxy retries, alice sees 200."""
    tmp = tempfile.mkdtemp(prefix="sbdlg-")
    with server(tmp) as s:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        call = Call(s, bob)
        check(hget(call.bob_inv, "session-expires") == ["1800"], "Session-Expires asked for")
        bob.send(reply(call.bob_inv, 422, "Session Interval Too Small", call.bob_tag,
                       ["Min-SE: 3600"]))
        again = bob.recv_request("INVITE", 3)
        check(again is not None, "no retry after the 422: " + s.log_tail())
        check(hget(again, "session-expires") == ["3600"] and hget(again, "min-se") == ["3600"],
              "retry asks for %r / %r" % (hget(again, "session-expires"), hget(again, "min-se")))
        call.bob_inv = again
        call.answer(["Session-Expires: 3600;refresher=uas"])
        show = cli("call", "show", call.callid, db=s.db).stdout
        check(re.search(r"session_expires\s+3600", show), "negotiated interval: " + show)
        call.hangup()
        wait_for(lambda: listed_state(s, call.callid) is None, 3, "the call to go")
        call.close()
        bob.close()


def stored_dialogs(db):
    con = sqlite3.connect(db, timeout=5)
    try:
        return con.execute("SELECT count(*) FROM record WHERE kind = 17").fetchone()[0]
    finally:
        con.close()


def test_restart_in_the_middle_of_a_call():
    """Killed mid-call, restarted: the call is listed again, and its BYE routes and ends it."""
    tmp = tempfile.mkdtemp(prefix="sbdlg-")
    s = server(tmp).start()
    try:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        call = Call(s, bob)
        call.answer()
        wait_for(lambda: stored_dialogs(s.db) == 1, 3, "the dialog to be written behind")
        s.kill()
        s = server(tmp, db=s.db, port=s.port).start()
        wait_for(lambda: listed_state(s, call.callid) == "confirmed", 3,
                 "the call listed after the restart")
        call.hangup()
        wait_for(lambda: listed_state(s, call.callid) is None, 3, "the call to end")
        wait_for(lambda: stored_dialogs(s.db) == 0, 3, "the stored dialog to be deleted")
        call.close()
        bob.close()
    finally:
        s.stop()


def test_sipp_call_is_listed_while_it_lasts():
    """Real peers: a SIPp caller (digest, 3 s in the call) and a SIPp callee. `call list`
    shows the dialog confirmed while the call lasts, and nothing once SIPp hung up."""
    tmp = tempfile.mkdtemp(prefix="sbdlg-")
    with server(tmp) as s:
        users(s)
        port = free_port()
        uas = start_uas(tmp, "uas_answer.xml", port)
        register_uas(s, "bob", "bobpw", port)
        inf = write_inf(os.path.join(tmp, "callers.csv"),
                        [("alice", auth_kw("alice", "alicepw"), "127.0.0.1", "bob")])
        uac = SippBackground([s.host, "-sf", os.path.join(SCENARIOS, "uac_call_auth.xml"),
                              "-inf", inf, "-m", 1, "-d", 3000, "-i", "127.0.0.1",
                              "-p", free_port(), "-timeout", "30s", "-timeout_error"], cwd=tmp)
        line = wait_for(lambda: [l for l in call_list(s).splitlines()
                                 if " confirmed " in " %s " % l], 5, "the SIPp call confirmed")
        check("alice" in line[0] and "bob" in line[0], "call list line: %r" % line)
        rc, out = uac.wait(30)
        urc, uout = uas.wait(30)
        check(rc == 0, "SIPp caller failed:\n" + out[-1500:] + s.log_tail())
        check(urc == 0, "SIPp callee failed:\n" + uout[-1500:])
        wait_for(lambda: "confirmed" not in call_list(s), 3, "the ended call to go")


def test_session_interval_below_our_minimum_gets_422():
    """RFC 4028 8.1: a Session-Expires below the proxy's Min-SE (90) is refused with 422 and
    our Min-SE, so nobody can make the proxy end a call sooner; bob never rings."""
    tmp = tempfile.mkdtemp(prefix="sbdlg-")
    with server(tmp) as s:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        alice = Caller(s)
        ruri = "sip:bob@%s" % s.host
        auth = alice.credentials(alice.challenge(ruri), ruri)
        alice.send(alice.c.build("INVITE", ruri,
                                 ["Contact: <sip:alice@127.0.0.1:%d>" % alice.c.port, auth,
                                  "Session-Expires: 30", "Min-SE: 30"],
                                 to="<%s>" % ruri, from_="<sip:alice@127.0.0.1>", cseq=2))
        r = alice.final(3)
        check(r is not None and r.status == 422, "a 30 s interval got %r" % r)
        check(r.get("Min-SE") == "90", "Min-SE of the 422: %r" % r.get("Min-SE"))
        check(bob.recv_request("INVITE", 0.5) is None, "bob was called anyway")
        alice.close()
        bob.close()


if __name__ == "__main__":
    main(globals())
