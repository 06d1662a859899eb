#!/usr/bin/env python3
"""Issue 11, holes 1, 2, 6, 7 and 9, attacked on the real binary.

A stranger (From a foreign domain, no credentials) tries to call PSTN
numbers on our trunk (directly, through a user's forwarding, through a
redirect rule, by dialling the gateway's address), to relay through us with a
forged To tag, a forged or copied Route, or a stray ACK, to map our users, and
to pass white lists with a forged From. Each attack must fail, and the same
things done by an authenticated user or a trusted peer must still work.

The "gateway" and the "foreign host" are UDP sockets of this test on
127.0.0.1/127.0.0.2: a packet arriving there is the proof of a hole.
"""
import os
import random
import re
import select
import shutil
import socket
import subprocess
import tempfile
import time

from sbtest import Response, Server, SipClient, check, cli, main


class Peer:
    """A UDP socket that records what reaches it and can answer like a UA."""

    def __init__(self, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.host, self.port = self.sock.getsockname()

    def recv(self, timeout=1.0):
        """The next message (Response-parsed, requests too) and its source, or (None, None)."""
        r, _, _ = select.select([self.sock], [], [], timeout)
        if not r:
            return None, None
        data, src = self.sock.recvfrom(65535)
        return Response(data), src

    def drain(self, timeout=0.5):
        got = []
        while True:
            m, _ = self.recv(timeout)
            if m is None:
                return got
            got.append(m)

    def close(self):
        self.sock.close()


def first_line(m):
    return m.start if m is not None else None


def reply_to(req, status, reason, to_tag=None, contact=None, extra=()):
    """A response to a request as a UA builds it (Via, From, To, Call-ID, CSeq, Record-Route)."""
    lines = ["SIP/2.0 %d %s" % (status, reason)]
    for v in req.all("Via"):
        lines.append("Via: " + v)
    for v in req.all("Record-Route"):
        lines.append("Record-Route: " + v)
    lines.append("From: " + req.get("From"))
    to = req.get("To")
    if to_tag and ";tag=" not in to:
        to += ";tag=" + to_tag
    lines.append("To: " + to)
    lines.append("Call-ID: " + req.get("Call-ID"))
    lines.append("CSeq: " + req.get("CSeq"))
    if contact:
        lines.append("Contact: " + contact)
    lines += list(extra)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def gw_config(tmp, gw_port, extra=""):
    path = os.path.join(tmp, "sec.yaml")
    with open(path, "w") as f:
        f.write("timers:\n  t1: 100\n"
                "security:\n  trusted_peers: [127.0.0.3/32]\n"
                "gateways:\n  - {name: gw1, address: 127.0.0.2, port: %d, probe: false}\n"
                "gateway_groups:\n  - {name: pstn, gateways: [gw1]}\n"
                "dialplan:\n  rules:\n"
                "    - {prefix: \"00\", route: [pstn]}\n"
                "    - {prefix: \"0900\", route: [pstn], redirect: true}\n" % gw_port + extra)
    return path


def auth_invite(c, user, password, ruri, headers=(), to=None):
    """INVITE as one of our users: 407, then with credentials. Returns the final or first answer."""
    frm = "<sip:%s@127.0.0.1>" % user
    hdrs = ["Contact: <sip:%s@127.0.0.1:%d>" % (user, c.port)] + list(headers)
    c.cseq += 1
    r = c.request("INVITE", ruri, hdrs, from_=frm, to=to)
    check(r is not None and r.status == 407, "no 407 for %s: %r" % (user, r))
    ack_for(c, r, ruri, frm)
    auth = c.auth_header(r, user, password, "INVITE", ruri, proxy=True)
    c.cseq += 1
    return c.request("INVITE", ruri, hdrs + [auth], from_=frm, to=to, final=False, timeout=3)


def ack_for(c, resp, ruri, frm):
    """The ACK of a non-2xx final (same branch as the INVITE it answers)."""
    via = resp.get("Via")
    branch = re.search(r"branch=([^;,\s]+)", via).group(1)
    c.send_raw(c.build("ACK", ruri, to=resp.get("To"), from_=frm, branch=branch,
                       cseq=int(resp.get("CSeq").split()[0])))


def stranger_invite(c, ruri, headers=(), from_="<sip:mallory@evil.example>", to=None):
    c.cseq += 1
    return c.request("INVITE", ruri, ["Contact: <sip:mallory@127.0.0.1:%d>" % c.port] +
                     list(headers), from_=from_, to=to, timeout=2)


def test_toll_fraud_needs_an_identity_we_can_bill():
    """Hole 1: a number the dialplan routes to a gateway, from a stranger: 403 and nothing
    reaches the gateway, directly, through a user's forwarding, or through a redirect rule.
    A trusted peer and an authenticated user get through."""
    tmp = tempfile.mkdtemp()
    gw = Peer("127.0.0.2")
    try:
        with Server(config=gw_config(tmp, gw.port)) as s:
            s.add_user("alice", "alicepw")
            s.add_user("bob", "bobpw")
            c = SipClient(s)
            r = stranger_invite(c, "sip:00441234567@127.0.0.1")
            check(r is not None and r.status == 403, "stranger's PSTN call: %r" % r)
            # a forged local From is challenged, as before
            r = stranger_invite(c, "sip:00441234567@127.0.0.1", from_="<sip:alice@127.0.0.1>")
            check(r is not None and r.status == 407, "forged local From: %r" % r)
            # through a redirect rule: no gateway address shown to a stranger
            r = stranger_invite(c, "sip:09001234@127.0.0.1")
            check(r is not None and r.status == 403 and "127.0.0.2:%d" % gw.port not in
                  r.raw.decode(errors="replace"), "stranger's redirect: %r" % r)
            # through bob's unconditional forwarding to a number
            cli("user", "set", "bob@127.0.0.1", "forward_always=00449999", db=s.db)
            time.sleep(0.6)
            r = stranger_invite(c, "sip:bob@127.0.0.1")
            check(r is not None and r.status == 403, "stranger forwarded to the PSTN: %r" % r)
            check(gw.drain(0.5) == [], "the gateway got a stranger's call")

            # a trusted peer (127.0.0.3) may call numbers
            t = SipClient(s)
            t.sock.close()
            t.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            t.sock.bind(("127.0.0.3", 0))
            t.port = t.sock.getsockname()[1]
            data = t.build("INVITE", "sip:00441234567@127.0.0.1",
                           ["Contact: <sip:pbx@127.0.0.3:%d>" % t.port],
                           from_="<sip:+4930123@carrier.example>")
            data = data.replace(b"127.0.0.1:%d;branch" % t.port, b"127.0.0.3:%d;branch" % t.port)
            t.send_raw(data)
            m, _ = gw.recv(2)
            check(m is not None and m.start.startswith("INVITE sip:00441234567@127.0.0.2:%d"
                                                      % gw.port),
                  "trusted peer's call did not reach the gateway: %s" % first_line(m))
            gw.sock.sendto(reply_to(m, 486, "Busy Here", to_tag="gw1"), ("127.0.0.1", s.port))
            gw.drain(0.3)
            t.close()

            # an authenticated user may too
            a = SipClient(s)
            auth_invite(a, "alice", "alicepw", "sip:00441234567@127.0.0.1")
            m, _ = gw.recv(2)
            check(m is not None and m.start.startswith("INVITE sip:00441234567"),
                  "alice's call did not reach the gateway: %s" % first_line(m))
            gw.sock.sendto(reply_to(m, 486, "Busy Here", to_tag="gw2"), ("127.0.0.1", s.port))
            gw.drain(0.3)
            a.close()
            c.close()
    finally:
        gw.close()


def test_gateway_address_only_through_the_dialplan():
    """Hole 9: an authenticated user dialling sip:N@gateway, or a contact registered at the
    gateway's address, does not reach the gateway around the dialplan."""
    tmp = tempfile.mkdtemp()
    gw = Peer("127.0.0.2")
    try:
        with Server(config=gw_config(tmp, gw.port)) as s:
            s.add_user("alice", "alicepw")
            s.add_user("bob", "bobpw")
            a = SipClient(s)
            r = auth_invite(a, "alice", "alicepw", "sip:+19005551234@127.0.0.2:%d" % gw.port)
            while r is not None and r.status < 200:
                r = Response(a.recv_raw(3))
            check(r is not None and r.status == 403, "direct gateway dial: %r" % r)
            b = SipClient(s)
            r = b.register("bob", "bobpw", contact="<sip:+19005551234@127.0.0.2:%d>" % gw.port)
            check(r is not None and r.status == 200, "bob's registration: %r" % r)
            r = auth_invite(a, "alice", "alicepw", "sip:bob@127.0.0.1")
            while r is not None and r.status < 200:
                r = Response(a.recv_raw(3))
            check(r is not None and r.status >= 400, "call to a contact at the gateway: %r" % r)
            check(gw.drain(0.5) == [], "the gateway was reached around the dialplan")
            a.close()
            b.close()
    finally:
        gw.close()


def test_to_tag_is_no_pass():
    """Hole 2: a To tag without a route set we signed is no dialog: a stranger's INVITE to a
    foreign host is refused, a MESSAGE with a forged local From is challenged, a stray ACK and a
    forged Route go nowhere."""
    foreign = Peer("127.0.0.2")
    try:
        with Server() as s:
            s.add_user("alice", "alicepw")
            s.add_user("bob", "bobpw")
            bob = SipClient(s)
            check(bob.register("bob", "bobpw").status == 200, "bob did not register")
            c = SipClient(s)
            target = "sip:+19005551234@127.0.0.2:%d" % foreign.port
            r = stranger_invite(c, target, to="<%s>;tag=forged" % target)
            check(r is not None and r.status == 403, "To-tag relay: %r" % r)
            c.cseq += 1
            r = c.request("MESSAGE", "sip:bob@127.0.0.1", ["Content-Type: text/plain"],
                          body="hi, from alice (not)", from_="<sip:alice@127.0.0.1>",
                          to="<sip:bob@127.0.0.1>;tag=forged")
            check(r is not None and r.status == 407, "forged in-dialog MESSAGE: %r" % r)
            check(not [m for m in bob_msgs(bob) if m.start.startswith("MESSAGE")],
                  "bob got the forged MESSAGE")
            # a Route naming us, unsigned or with a wrong signature
            for route in ("<sip:%s;lr>" % s.host,
                          "<sip:%s;lr;sb=0123456789abcdef>" % s.host):
                c.cseq += 1
                r = c.request("BYE", target, ["Route: " + route], from_="<sip:alice@127.0.0.1>",
                              to="<%s>;tag=x" % target)
                check(r is not None and r.status in (403, 407), "forged Route %s: %r" % (route, r))
                c.cseq += 1
                r = c.request("INVITE", target, ["Route: " + route,
                                                 "Contact: <sip:m@127.0.0.1:%d>" % c.port],
                              from_="<sip:mallory@evil.example>", to="<%s>;tag=x" % target)
                check(r is not None and r.status == 403, "forged Route INVITE %s: %r" % (route, r))
            c.send_raw(c.build("ACK", target, ["Route: <sip:%s;lr>" % s.host],
                               to="<%s>;tag=x" % target, from_="<sip:mallory@evil.example>"))
            c.send_raw(c.build("ACK", target, to="<%s>;tag=x" % target,
                               from_="<sip:mallory@evil.example>"))
            check(foreign.drain(0.6) == [], "something reached the foreign host")
            c.close()
            bob.close()
    finally:
        foreign.close()


def bob_msgs(bob, timeout=0.4):
    got = []
    while True:
        try:
            got.append(Response(bob.recv_raw(timeout)))
        except (socket.timeout, OSError):
            return got


def establish(s, alice, bob):
    """alice (authenticated) calls bob (registered); bob answers. Returns (invite as bob got it,
    200 as alice got it)."""
    r = auth_invite(alice, "alice", "alicepw", "sip:bob@127.0.0.1")
    inv = None
    deadline = time.time() + 3
    while time.time() < deadline and inv is None:
        for m in bob_msgs(bob, 0.3):
            if m.start.startswith("INVITE"):
                inv = m
    check(inv is not None, "bob got no INVITE")
    rr = inv.all("Record-Route")
    check(rr and re.search(r";sb=[0-9a-f]{16}", rr[0]), "Record-Route not signed: %r" % rr)
    bob.sock.sendto(reply_to(inv, 200, "OK", to_tag="bobtag",
                             contact="<sip:bob@127.0.0.1:%d>" % bob.port), s.addr)
    ok = None
    deadline = time.time() + 3
    while time.time() < deadline:
        m = Response(alice.recv_raw(3))
        if m.status == 200:
            ok = m
            break
    check(ok is not None, "alice got no 200")
    return inv, ok


def in_dialog(c, method, ruri, route, frm, to, cseq):
    lines = ["Route: " + v for v in route]
    return c.build(method, ruri, lines, from_=frm, to=to, cseq=cseq)


def test_signed_route_set_carries_the_dialog_and_only_it():
    """A real dialog through the proxy: ACK and BYE on the signed route sets reach each side
    (both directions, the caller's route re-signed in the 200); the same route set with another
    Request-URI, Call-ID or tag is refused. After a restart the route key still verifies."""
    foreign = Peer("127.0.0.2")
    tmp = tempfile.mkdtemp()
    try:
        s = Server(tmp=tmp)
        s.start()
        s.add_user("alice", "alicepw")
        s.add_user("bob", "bobpw")
        bob = SipClient(s)
        check(bob.register("bob", "bobpw").status == 200, "bob did not register")
        alice = SipClient(s)
        inv, ok = establish(s, alice, bob)
        route = ok.all("Record-Route")
        check(route, "no Record-Route in the 200")
        sig_caller = re.search(r";sb=([0-9a-f]{16})", route[0]).group(1)
        sig_callee = re.search(r";sb=([0-9a-f]{16})", inv.all("Record-Route")[0]).group(1)
        check(sig_caller != sig_callee, "the 200's Record-Route was not re-signed")
        frm = "<sip:alice@127.0.0.1>"
        to = ok.get("To")
        bob_contact = "sip:bob@127.0.0.1:%d" % bob.port
        alice.send_raw(in_dialog(alice, "ACK", bob_contact, route, frm, to, alice.cseq))
        got = [m.start for m in bob_msgs(bob, 0.6)]
        check(any(g.startswith("ACK ") for g in got), "the ACK did not reach bob: %r" % got)
        # the same route set towards another host
        bad = "sip:x@127.0.0.2:%d" % foreign.port
        alice.cseq += 1
        r = alice.request("INVITE", bad, ["Route: " + v for v in route] +
                          ["Contact: <sip:alice@127.0.0.1:%d>" % alice.port], from_=frm, to=to)
        check(r is not None and r.status == 407, "route set reused for another target: %r" % r)
        check(foreign.drain(0.4) == [], "a copied route set reached a foreign host")

        # restart: bindings and the route key survive; bob hangs up towards alice
        s.stop()
        s = Server(tmp=tmp, port=s.port, db=s.db)
        s.start()
        bye = ["BYE sip:alice@127.0.0.1:%d SIP/2.0" % alice.port,
               "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%x;rport" % (bob.port,
                                                                        random.getrandbits(40)),
               "Max-Forwards: 70"]
        bye += ["Route: " + v for v in reversed(inv.all("Record-Route"))]
        bye += ["From: %s;tag=bobtag" % inv.get("To"), "To: " + inv.get("From"),
                "Call-ID: " + inv.get("Call-ID"), "CSeq: 1 BYE", "Content-Length: 0", "", ""]
        bob.sock.sendto("\r\n".join(bye).encode(), s.addr)
        got = []
        deadline = time.time() + 3
        while time.time() < deadline and not any(g.startswith("BYE ") for g in got):
            try:
                got.append(Response(alice.recv_raw(0.5)).start)
            except socket.timeout:
                pass
        check(any(g.startswith("BYE ") for g in got), "bob's BYE did not reach alice: %r" % got)
        alice.close()
        bob.close()
        s.stop()
    finally:
        foreign.close()


def test_no_user_enumeration():
    """Hole 6: to a stranger an unknown user and a known one with no binding answer alike
    (INVITE, OPTIONS, and MESSAGE, which an offline user's store accepts); sipvicious svwar,
    plain and forced, lists nobody."""
    with Server() as s:
        for i in range(100, 110):
            s.add_user(str(i), "pw%d" % i)
        c = SipClient(s)
        answers = {}
        for user in ("105", "999", "alice"):
            for method in ("INVITE", "OPTIONS", "MESSAGE"):
                c.cseq += 1
                hdrs = ["Contact: <sip:x@127.0.0.1:%d>" % c.port]
                if method == "MESSAGE":
                    hdrs = ["Content-Type: text/plain"]
                r = c.request(method, "sip:%s@127.0.0.1" % user, hdrs,
                              "hello" if method == "MESSAGE" else "",
                              from_="<sip:scanner@evil.example>")
                check(r is not None, "no answer")
                answers.setdefault(method, set()).add((r.status, r.reason))
        for method, seen in answers.items():
            check(len(seen) == 1, "%s answers differ by user: %r" % (method, seen))
        c.close()
        # sipvicious svwar writes From = To = the extension it tries, in our domain: such a
        # request is challenged whether the name exists or not (it claims to be a local
        # user), so svwar stops at its first probe ("authentication request for an unknown
        # extension") and, forced on, gets the same 407/401 for every name. The stranger's
        # requests above are what tells the old server's users apart; this checks that the
        # scanner, run as an attacker would run it, lists nobody either.
        check(shutil.which("svwar"), "svwar missing (scripts/install-deps.sh installs it)")
        for method in ("INVITE", "OPTIONS", "REGISTER"):
            for force in ([], ["--force"]):
                p = subprocess.run(["svwar"] + force + ["-m", method, "-e", "95-115", "-p",
                                                        str(s.port), "127.0.0.1"],
                                   capture_output=True, text=True, timeout=120)
                out = p.stdout + p.stderr
                listed = re.findall(r"\|\s*(\d+)\s*\|\s*(\w+)\s*\|", out)
                check("found nothing" in out and not listed,
                      "svwar %s-m %s listed users %r:\n%s" % (" ".join(force) + " " if force
                                                             else "", method, listed, out[-800:]))


def test_white_lists_need_a_checked_identity():
    """Hole 7: a forged From does not pass a global or per-user white list; the real user
    does."""
    tmp = tempfile.mkdtemp()
    cfg = os.path.join(tmp, "lists.yaml")
    with open(cfg, "w") as f:
        f.write("lists:\n  allow_callers: [alice]\n  block_callees: [\"666\"]\n")
    with Server(config=cfg) as s:
        s.add_user("alice", "alicepw")
        s.add_user("bob", "bobpw")
        s.add_user("666", "pw")
        bob = SipClient(s)
        check(bob.register("bob", "bobpw").status == 200, "bob did not register")
        cli("user", "set", "bob@127.0.0.1", "allow_only=yes", "allow_callers=alice", db=s.db)
        time.sleep(0.6)
        c = SipClient(s)
        # the stranger writes From: alice@evil.example: bob's white list does not count it
        r = stranger_invite(c, "sip:bob@127.0.0.1", from_="<sip:alice@evil.example>")
        check(r is not None and r.status == 403, "forged From passed bob's white list: %r" % r)
        # nor the global allow_callers against block_callees
        r = stranger_invite(c, "sip:666@127.0.0.1", from_="<sip:alice@evil.example>")
        check(r is not None and r.status == 403, "forged From passed the global list: %r" % r)
        check(not [m for m in bob_msgs(bob) if m.start.startswith("INVITE")],
              "bob's phone rang for a forged caller")
        # the real alice rings bob
        a = SipClient(s)
        auth_invite(a, "alice", "alicepw", "sip:bob@127.0.0.1")
        got = [m.start for m in bob_msgs(bob, 1.0)]
        check(any(g.startswith("INVITE") for g in got), "alice's call did not ring bob: %r" % got)
        a.close()
        c.close()
        bob.close()


def test_odd_from_is_no_stranger():
    """Hole 9: a From with a trailing dot in our domain, or a tel: From, is challenged like one
    of our users (it is no foreign identity to hide behind)."""
    with Server(domains=("example.com",)) as s:
        s.add_user("alice", "alicepw", domain="example.com")
        c = SipClient(s)
        for frm in ("<sip:alice@example.com.>", "<sip:alice@EXAMPLE.com>", "<tel:+4930123>"):
            c.cseq += 1
            r = c.request("MESSAGE", "sip:alice@example.com", ["Content-Type: text/plain"],
                          body="x", from_=frm)
            check(r is not None and r.status == 407, "From %s: %r" % (frm, r))
        c.close()


if __name__ == "__main__":
    main(globals())
