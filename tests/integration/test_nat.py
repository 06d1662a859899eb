#!/usr/bin/env python3
"""Signalling behind NAT (docs/nat.md, issue 14 section 1).

The calls run in network namespaces this test creates (sbnetns.py): the
server in its own namespace on 100.64.0.1, alice's and bob's phones (SIPp)
each in a private namespace (192.168.2.2 and 192.168.1.2) behind its own
masquerading router. bob registers with digest from the port his UAS then
answers on, alice calls him with 407 authentication, bob answers with his
private Contact. Proven: the in-dialog ACK and BYE reach the NATed callee
(caller hangs up) and the callee's BYE reaches the NATed caller (callee hangs
up): both SIPp scenarios end without error, `switchboard call list` is empty
again, and the server counted the requests it routed by alias. Without the
alias (main before this change, or nat.contact_alias: false, also tested
here) the ACK goes to bob's private address, which the server's namespace
has no route to, and the call fails.

On loopback: a forged alias (another address, the signature kept) and an
unsigned one in an in-dialog Request-URI are not followed (nothing reaches
the address they name; the request goes where the plain Request-URI says),
while the alias the server wrote is followed, and removed from the
Request-URI the phone sees.
"""
import os
import re
import socket
import subprocess
import tempfile
import time

import sbnetns
from sbphone import Caller, Phone, hget
from sbtest import (SCENARIOS, Server, auth_kw, check, cli, main, need, sipp_auth_uri, wait_for,
                    write_inf)
from test_dialog import SDP_A, reply

CALLEE_PORT = 5062
CALLER_PORT = 5072


def nat_config(tmp, alias=True, keepalive=None):
    path = os.path.join(tmp, "sb.yaml")
    with open(path, "w") as f:
        # the default (nothing written) is on: an older binary runs this test too
        lines = [] if alias else ["  contact_alias: false"]
        if keepalive is not None:
            lines.append("  keepalive_interval: %d" % keepalive)
        f.write("nat:\n" + "\n".join(lines) + "\n" if lines else "")
    return path


def sipp_in(lab, ns, tmp, name, args):
    """SIPp in namespace ns, in the background; its stdout goes to tmp/name.out."""
    out = open(os.path.join(tmp, name + ".out"), "w")
    args = [str(a) for a in args]
    return lab.popen(ns, ["sipp"] + args + sipp_auth_uri(args, tmp) + ["-nostdin"], stdout=out,
                     stderr=subprocess.STDOUT, cwd=tmp)


def sipp_wait(p, timeout):
    try:
        return p.wait(timeout=timeout)
    except subprocess.TimeoutExpired:  # a hung SIPp is a failure, not a hang
        p.kill()
        p.wait()
        return -1


def calls_listed(s):
    return [l for l in cli("call", "list", db=s.db).stdout.splitlines()[1:] if l.strip()]


def nat_call(tmp, callee_hangs_up, alias=True):
    """One call between the NATed phones; (uac rc, uas rc, server log, stats line)."""
    need("sipp")
    with sbnetns.NatLab() as lab:
        s = sbnetns.Server(lab, tmp=tmp, port=5060, config=nat_config(tmp, alias))
        s.start()
        ok = False
        try:
            s.add_user("alice", "alicepw", domain=sbnetns.SERVER_IP)
            s.add_user("bob", "bobpw", domain=sbnetns.SERVER_IP)
            # bob registers from the port his UAS answers on: the router's binding for it
            inf = write_inf(os.path.join(tmp, "bob.csv"),
                            [("bob", auth_kw("bob", "bobpw"), sbnetns.SERVER_IP)])
            reg = lab.run("a", ["sipp", s.host, "-sf", os.path.join(SCENARIOS, "reg_auth.xml"),
                                "-inf", inf, "-m", 1, "-i", sbnetns.PHONE_IP["a"], "-p",
                                CALLEE_PORT, "-key", "expires", 600, "-timeout", "10s",
                                "-timeout_error", "-nostdin"] +
                          sipp_auth_uri(["-sf", os.path.join(SCENARIOS, "reg_auth.xml"), "-inf",
                                         inf], tmp),
                          check=False, timeout=30)
            check(reg.returncode == 0, "bob's registration failed: " + reg.stdout[-1500:] +
                  reg.stderr[-1500:] + s.log_tail())
            # his private Contact, registered from his router's public address
            wait_for(lambda: "sip:bob@%s:%d" % (sbnetns.PHONE_IP["a"], CALLEE_PORT) in
                     cli("reg", "list", db=s.db).stdout, 5, "bob's binding")
            check(re.search(r"recv from udp:%s:\d+ \d+ bytes: REGISTER" %
                            re.escape(sbnetns.PUBLIC_IP["a"]), s.log_text()),
                  "bob's REGISTER did not come through his router: " + s.log_tail())
            uas = sipp_in(lab, "a", tmp, "uas",
                          ["-sf", os.path.join(SCENARIOS, "nat_uas_bye.xml" if callee_hangs_up
                                               else "nat_uas.xml"),
                           "-i", sbnetns.PHONE_IP["a"], "-p", CALLEE_PORT, "-m", 1,
                           "-timeout", "15s", "-timeout_error", "-trace_msg",
                           "-message_file", os.path.join(tmp, "uas_msgs.log")])
            time.sleep(0.3)
            inf = write_inf(os.path.join(tmp, "alice.csv"),
                            [("alice", auth_kw("alice", "alicepw"), sbnetns.SERVER_IP, "bob")])
            uac = sipp_in(lab, "b", tmp, "uac",
                          [s.host, "-sf", os.path.join(SCENARIOS, "nat_uac_wait_bye.xml"
                                                       if callee_hangs_up
                                                       else "uac_call_auth.xml"),
                           "-inf", inf, "-m", 1, "-i", sbnetns.PHONE_IP["b"], "-p",
                           CALLER_PORT, "-d", 500, "-timeout", "15s", "-timeout_error",
                           "-trace_msg", "-message_file", os.path.join(tmp, "uac_msgs.log")])
            urc = sipp_wait(uac, 30)
            arc = sipp_wait(uas, 30)
            if urc == 0 and arc == 0:
                wait_for(lambda: not calls_listed(s), 5, "call list empty")
            ok = True
        finally:
            s.stop(check_clean=ok)
        text = open(s.log_path, errors="replace").read()
        m = re.search(r"NAT: contacts aliased (\d+), in-dialog requests routed by alias (\d+), "
                      r"bad aliases ignored (\d+)", text)
        return urc, arc, text, m


def msgs(tmp, name):
    try:
        return open(os.path.join(tmp, name + "_msgs.log"), errors="replace").read()
    except OSError:
        return ""


def test_nat_call_caller_hangs_up():
    """ACK and BYE reach bob behind his NAT router; alice's call ends cleanly."""
    tmp = tempfile.mkdtemp(prefix="sbnat-")
    urc, arc, text, m = nat_call(tmp, callee_hangs_up=False)
    check(urc == 0, "caller failed (rc %d): %s" % (urc, msgs(tmp, "uac")[-3000:]))
    check(arc == 0, "callee behind NAT failed (rc %d): %s" % (arc, msgs(tmp, "uas")[-3000:]))
    check(m is not None, "no NAT statistics in the log")
    # both Contacts aliased (INVITE and 200, retransmissions may add); ACK and BYE routed
    check(int(m.group(1)) >= 2 and int(m.group(2)) >= 2 and int(m.group(3)) == 0,
          "NAT statistics: " + m.group(0))
    # bob saw his own Contact in the ACK and BYE Request-URIs, without our alias
    uas = msgs(tmp, "uas")
    check(re.search(r"ACK sip:192\.168\.1\.2:%d;transport=UDP SIP/2.0" % CALLEE_PORT, uas),
          "bob's ACK: " + uas[-2000:])
    check("sb-alias" not in uas.split("ACK sip:", 1)[1], "our alias leaked to bob")


def test_nat_call_callee_hangs_up():
    """bob's BYE reaches alice behind her NAT router."""
    tmp = tempfile.mkdtemp(prefix="sbnat-")
    urc, arc, text, m = nat_call(tmp, callee_hangs_up=True)
    check(urc == 0, "caller behind NAT failed (rc %d): %s" % (urc, msgs(tmp, "uac")[-3000:]))
    check(arc == 0, "callee failed (rc %d): %s" % (arc, msgs(tmp, "uas")[-3000:]))
    check(m is not None and int(m.group(2)) >= 2, "NAT statistics: %s" % (m and m.group(0)))
    uac = msgs(tmp, "uac")
    check(re.search(r"BYE sip:alice@192\.168\.2\.2:%d;transport=UDP SIP/2.0" % CALLER_PORT, uac),
          "alice's BYE: " + uac[-2000:])


def test_nat_call_fails_without_alias():
    """nat.contact_alias: false (what main did): the ACK goes to bob's private address."""
    tmp = tempfile.mkdtemp(prefix="sbnat-")
    urc, arc, text, m = nat_call(tmp, callee_hangs_up=False, alias=False)
    check(arc != 0, "bob behind NAT completed a call without the alias?")
    check(m is not None and int(m.group(1)) == 0 and int(m.group(2)) == 0,
          "NAT statistics: %s" % (m and m.group(0)))


def test_forged_alias_not_followed():
    """Loopback: a forged or unsigned alias is ignored, ours is followed and removed."""
    tmp = tempfile.mkdtemp(prefix="sbnat-")
    with Server(tmp=tmp) as s:
        s.add_user("alice", "alicepw")
        s.add_user("bob", "bobpw")
        bob = Phone(s, "bob", "bobpw")
        # alice's Contact names a port she does not send from: the server aliases it
        decoy = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        decoy.bind(("127.0.0.1", 0))
        target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # what a forger aims at
        target.bind(("127.0.0.1", 0))
        alice = Caller(s)
        ruri = "sip:bob@%s" % s.host
        r407 = alice.challenge(ruri)
        auth = alice.credentials(r407, ruri)
        inv = alice.c.build("INVITE", ruri, ["Contact: <sip:alice@127.0.0.1:%d>" %
                                             decoy.getsockname()[1], auth],
                            body=SDP_A, to="<%s>" % ruri, from_="<sip:alice@127.0.0.1>", cseq=2)
        alice.send(inv)
        got = bob.recv_request("INVITE", 3)
        check(got is not None, "bob got no INVITE: " + s.log_tail())
        contact = hget(got, "contact")[0]
        want = ";sb-alias=127.0.0.1~%d~u~" % alice.c.port
        check(want in contact, "alice's Contact as bob sees it: " + contact)
        bob.send(reply(got, 200, "OK", "bt1", ["Contact: <sip:bob@127.0.0.1:%d>" % bob.port]))
        r = alice.final(3)
        check(r is not None and r.status == 200, "alice got %r" % r)
        target_uri = re.search(r"<([^>]+)>", contact).group(1)
        routes = [v.strip() for h in hget(got, "record-route") for v in h.split(",")]

        def bye(uri, cseq):
            lines = ["BYE %s SIP/2.0" % uri,
                     "Via: SIP/2.0/UDP 127.0.0.1:%d;rport;branch=z9hG4bKf%d" % (bob.port, cseq),
                     "Route: " + ", ".join(routes), "Max-Forwards: 70",
                     "From: " + hget(got, "to")[0] + ";tag=bt1",
                     "To: " + hget(got, "from")[0], "Call-ID: " + hget(got, "call-id")[0],
                     "CSeq: %d BYE" % cseq, "Content-Length: 0"]
            bob.send(("\r\n".join(lines) + "\r\n\r\n").encode())

        def arrives(sock, timeout):
            sock.settimeout(timeout)
            try:
                return sock.recvfrom(65535)[0]
            except socket.timeout:
                return None

        mac = re.search(r"~u~([0-9a-f]{16})", target_uri).group(1)
        forged = re.sub(r"sb-alias=[^;>]*", "sb-alias=127.0.0.1~%d~u~%s" %
                        (target.getsockname()[1], mac), target_uri)
        unsigned = re.sub(r"sb-alias=[^;>]*", "sb-alias=127.0.0.1~%d~u" %
                          target.getsockname()[1], target_uri)
        for n, uri in enumerate((forged, unsigned)):
            bye(uri, 10 + n)
            plain = arrives(decoy, 2)
            check(plain is not None and plain.startswith(b"BYE "),
                  "a bad alias: the BYE did not go where the plain R-URI says: " + s.log_tail())
            check(arrives(target, 0.5) is None, "the server followed a forged alias")
        # the alias the server wrote: followed, and gone from the R-URI alice sees
        bye(target_uri, 20)
        m = None
        deadline = time.time() + 3
        while time.time() < deadline and not m:
            data = arrives(alice.c.sock, 0.5)
            if data and data.startswith(b"BYE "):
                m = data
        check(m is not None, "our alias was not followed: " + s.log_tail())
        line = m.split(b"\r\n", 1)[0].decode()
        check(line == "BYE sip:alice@127.0.0.1:%d SIP/2.0" % decoy.getsockname()[1],
              "R-URI alice sees: " + line)
        check(arrives(target, 0.3) is None, "a datagram reached the forged address")
        for sock in (decoy, target):
            sock.close()
        alice.close()
        bob.close()
        s.stop()
        text = s.log_text()
        check(re.search(r"routed by alias 1, bad aliases ignored 2", text),
              "NAT statistics: " + "\n".join(l for l in text.splitlines() if "NAT:" in l))
        check("forged alias in the Request-URI ignored" in text and
              "malformed alias in the Request-URI ignored" in text, "bad aliases not logged")


RESPONDER = r"""
import socket, sys, time
sys.path.insert(0, sys.argv[1])
from sbphone import reply_to
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[2], int(sys.argv[3])))
end = time.time() + float(sys.argv[4])
while time.time() < end:
    s.settimeout(max(end - time.time(), 0.01))
    try:
        data, src = s.recvfrom(65535)
    except socket.timeout:
        break
    if data.startswith(b"OPTIONS "):
        print("OPTIONS", src[0], src[1], flush=True)
        s.sendto(reply_to(data, 200, "OK", to_tag="ka"), src)
"""


def keepalive_run(tmp, interval):
    """bob registers behind router ra (UDP conntrack timeout 3 s), then answers OPTIONS for
    9 s; (OPTIONS he got, whether the router still had his binding at the end, log)."""
    need("sipp")
    with sbnetns.NatLab() as lab:
        lab.set_udp_timeout("ra", 3)
        s = sbnetns.Server(lab, tmp=tmp, port=5060, config=nat_config(tmp, keepalive=interval))
        s.start()
        ok = False
        try:
            s.add_user("bob", "bobpw", domain=sbnetns.SERVER_IP)
            inf = write_inf(os.path.join(tmp, "bob.csv"),
                            [("bob", auth_kw("bob", "bobpw"), sbnetns.SERVER_IP)])
            args = ["-sf", os.path.join(SCENARIOS, "reg_auth.xml"), "-inf", inf]
            reg = lab.run("a", ["sipp", s.host] + args +
                          ["-m", 1, "-i", sbnetns.PHONE_IP["a"], "-p", CALLEE_PORT, "-key",
                           "expires", 600, "-timeout", "10s", "-timeout_error", "-nostdin"] +
                          sipp_auth_uri(args, tmp), check=False, timeout=30)
            check(reg.returncode == 0, "bob's registration failed: " + reg.stdout[-1500:])
            here = os.path.dirname(os.path.abspath(__file__))
            resp = lab.popen("a", ["python3", "-c", RESPONDER, here, sbnetns.PHONE_IP["a"],
                                   CALLEE_PORT, 9], stdout=subprocess.PIPE, text=True)
            out, _ = resp.communicate(timeout=30)
            binding = [l for l in lab.conntrack_udp("ra")
                       if "sport=%d" % CALLEE_PORT in l and "dport=5060" in l]
            ok = True
        finally:
            s.stop(check_clean=ok)
        return out.splitlines(), binding, s.log_text()


def test_keepalive_keeps_binding():
    """OPTIONS every second reach bob through his router and keep its binding past its
    3 s timeout; they are answered and counted."""
    tmp = tempfile.mkdtemp(prefix="sbnat-")
    got, binding, text = keepalive_run(tmp, 1)
    check(len(got) >= 5, "bob got %d keep-alives: %s" % (len(got), got))
    check(all(l.split()[1] == sbnetns.SERVER_IP for l in got), "keep-alives from: %s" % got)
    check(binding, "the router forgot bob's binding despite the keep-alives")
    m = re.search(r"NAT keep-alives: sent (\d+), answered (\d+)", text)
    check(m and int(m.group(1)) >= len(got) and int(m.group(2)) >= len(got) - 1,
          "keep-alive statistics: %s" % (m and m.group(0)))


def test_binding_expires_without_keepalive():
    """nat.keepalive_interval: 0 - the router forgets bob's binding after 3 s."""
    tmp = tempfile.mkdtemp(prefix="sbnat-")
    got, binding, text = keepalive_run(tmp, 0)
    check(not got, "OPTIONS reached bob with keep-alives off: %s" % got)
    check(not binding, "the binding outlived its timeout: %s" % binding)


if __name__ == "__main__":
    main(globals())
