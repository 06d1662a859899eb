#!/usr/bin/env python3
"""Issue 11 hole 5, attacked on the real binary: forged responses.

Our client-transaction branches used to be z9hG4bK<loop>.<worker>.<slot>.<gen>
with a counter for gen: anybody who saw one branch (their own call through
the server) could guess the next ones and end or hijack somebody else's
forwarded call with a forged 603, or mark a gateway down with a forged 503.
They now end in a MAC (SipHash with a key random per process) that a
response must carry; gateway probe answers count only from the gateway's
own address and port; and in stateless mode a response is forwarded only
when its top Via is ours and its branch is one we made for the Via below.

Phones and the caller are raw UDP sockets (sbphone), so the test controls
every byte the attacker sends.
"""
import os
import re
import socket
import tempfile
import time

from sbphone import Caller, Phone, hget, reply_to
from sbtest import Server, check, free_port, main


def users(s):
    for u in ("alice", "bob", "mallory"):
        s.add_user(u, u + "pw")


def top_branch(req):
    return re.search(r";branch=([^;,\s]+)", hget(req, "via")[0]).group(1)


def with_branch(resp, old, new):
    return resp.replace(old.encode(), new.encode(), 1)


def authed_invite(alice, callee, cseq):
    uri = "sip:%s@127.0.0.1" % callee
    auth = alice.credentials(alice.challenge(uri), uri)
    inv = alice.build_invite(uri, auth=auth, cseq=cseq)
    alice.send(inv)
    return inv


def test_forged_603_with_guessed_branch_is_dropped():
    """mallory learns a branch from a call to her own phone, then sprays 603s
    with the neighbouring slots and generations at alice's call to bob (and
    one with bob's real branch and a wrong MAC): all are dropped, bob's 200
    reaches alice."""
    tmp = tempfile.mkdtemp()
    with Server(tmp=tmp) as s:
        users(s)
        bob, mallory = Phone(s, "bob", "bobpw"), Phone(s, "mallory", "mallorypw")
        alice = Caller(s)
        # 1. a call to mallory shows her one of our branches
        inv = authed_invite(alice, "mallory", 2)
        seen = mallory.recv_request("INVITE", 3)
        check(seen is not None, "mallory got no INVITE")
        mallory.send(reply_to(seen, 486, "Busy Here"))
        r = alice.final()
        check(r is not None and r.status == 486, "expected 486, got %r" % r)
        alice.ack(inv, r)
        known = top_branch(seen)
        m = re.match(r"(z9hG4bK[0-9a-f]{16})\.([0-9a-f]+)\.([0-9a-f]+)\.([0-9a-f]+)(.*)$", known)
        check(m is not None, "unexpected branch form %s" % known)
        prefix, owner, slot, gen = m.group(1), m.group(2), int(m.group(3), 16), int(m.group(4), 16)

        # 2. alice calls bob; his phone rings
        inv = authed_invite(alice, "bob", 3)
        got = bob.recv_request("INVITE", 3)
        check(got is not None, "bob got no INVITE")
        bob.send(reply_to(got, 180, "Ringing"))
        real = top_branch(got)

        # 3. mallory, from her own socket, forges 603s: guessed slots and generations
        # (the old form and the old form with mallory's MAC), and bob's branch with a bad MAC
        forged = reply_to(got, 603, "Declined", to_tag="forged")
        guesses = []
        for sl in range(0, 16):
            for g in range(gen + 1, gen + 9):
                old = "%s.%s.%x.%x" % (prefix, owner, sl, g)
                guesses += [old, old + m.group(5)]
        if real.count(".") == 4:
            mac = real.rsplit(".", 1)[1]
            guesses.append(real[:-len(mac)] + ("0" if mac[0] != "0" else "1") + mac[1:])
        for b in guesses:
            mallory.send(with_branch(forged, real, b))
        time.sleep(0.3)  # let the server read them before the real answer
        bob.send(reply_to(got, 200, "OK", extra=("Contact: <sip:bob@127.0.0.1:%d>" % bob.port,)))
        r = alice.final()
        check(r is not None and r.status == 200,
              "alice expected bob's 200, got %r\n%s" % (r, s.log_tail(20)))
        check(real.count(".") == 4 and len(real.rsplit(".", 1)[1]) == 16,
              "the branch has no MAC part: %s" % real)
        # those in our form (with a MAC part) are counted as forged; the old form is just
        # no branch of ours
        in_form = len([b for b in guesses if b.count(".") == 4])
        check(s.log_text().count("with a forged branch") >= in_form,
              "forged responses not all logged as such")
        for x in (alice, bob, mallory):
            x.close()


class Gateway:
    """A UDP socket playing a gateway: reads the OPTIONS probes, answers when told to."""

    def __init__(self, port):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.seen = set()

    def probe(self, timeout):
        """The next new OPTIONS (retransmissions skipped) and where it came from."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.sock.settimeout(max(deadline - time.time(), 0.001))
            try:
                data, src = self.sock.recvfrom(65535)
            except socket.timeout:
                break
            callid = hget(data, "call-id")[0]
            if data.startswith(b"OPTIONS ") and callid not in self.seen:
                self.seen.add(callid)
                return data, src
        return None, None

    def drain(self):
        """Forgets every probe sent so far (those already over included)."""
        while self.probe(0.05)[0] is not None:
            pass

    def close(self):
        self.sock.close()


def wait_log(s, text, timeout):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in s.log_text():
            return True
        time.sleep(0.05)
    return False


def test_forged_probe_answers_from_elsewhere_are_ignored():
    """A 503 from another address does not take a gateway down; a 200 from
    another address does not bring a down gateway back (even with the probe's
    real branch: only the gateway's address and port count)."""
    tmp = tempfile.mkdtemp()
    port = free_port()
    cfg = os.path.join(tmp, "gw.yaml")
    with open(cfg, "w") as f:
        f.write("timers:\n  t1: 50\n  t2: 400\n  t4: 500\n"
                "gateways:\n  - {name: gw1, address: 127.0.0.1, port: %d, probe: true}\n"
                "gateway_groups:\n  - name: pstn\n    gateways:\n      - {gateway: gw1}\n"
                "dialplan:\n  probe_interval: 1\n  rules:\n"
                "    - prefix: \"0\"\n      route: [pstn]\n" % port)
    gw = Gateway(port)
    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attacker.bind(("127.0.0.1", 0))
    with Server(config=cfg, tmp=tmp) as s:
        # 1. the gateway is up; a forged 503 with the probe's branch comes first, from elsewhere
        for _ in range(2):
            probe, src = gw.probe(5)
            check(probe is not None, "no probe reached the gateway")
            attacker.sendto(reply_to(probe, 503, "Service Unavailable"), src)
            time.sleep(0.2)
            gw.sock.sendto(reply_to(probe, 200, "OK"), src)
        check(not wait_log(s, "gateway gw1 (127.0.0.1) is down", 0.5),
              "a forged 503 marked the gateway down:\n" + s.log_tail(20))
        check("from an address it was not sent to" in s.log_text(), "no drop logged")

        # 2. the gateway goes silent: down after Timer F
        check(wait_log(s, "gateway gw1 (127.0.0.1) is down", 10),
              "the silent gateway was not marked down:\n" + s.log_tail(20))
        # a forged 200 from elsewhere, to a probe in flight, does not bring it back
        gw.drain()
        probe, src = gw.probe(5)
        check(probe is not None, "no probe reached the gateway")
        attacker.sendto(reply_to(probe, 200, "OK"), src)
        check(not wait_log(s, "gw1 (127.0.0.1) is up again", 1.0),
              "a forged 200 marked the gateway up:\n" + s.log_tail(20))
        gw.drain()
        # the gateway's own answer does
        probe, src = gw.probe(5)
        check(probe is not None, "no probe reached the gateway")
        gw.sock.sendto(reply_to(probe, 200, "OK"), src)
        check(wait_log(s, "gw1 (127.0.0.1) is up again", 3),
              "the gateway's own 200 did not bring it back:\n" + s.log_tail(20))
    gw.close()
    attacker.close()


def test_stateless_forwards_only_responses_to_its_requests():
    """Stateless mode: a genuine call's responses are forwarded; a response
    whose top Via is not ours, or is ours with a made-up or tampered branch,
    is not forwarded to the address in its second Via (no reflection)."""
    tmp = tempfile.mkdtemp()
    with Server(tmp=tmp, extra=["--stateless"]) as s:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        alice = Caller(s)
        victim = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        victim.bind(("127.0.0.1", 0))
        vport = victim.getsockname()[1]
        victim.settimeout(1.0)

        inv = authed_invite(alice, "bob", 2)
        got = bob.recv_request("INVITE", 3)
        check(got is not None, "bob got no INVITE")
        real = top_branch(got)
        check(".s" in real, "not a stateless branch: %s" % real)
        ours = hget(got, "via")[0].split(";", 1)[0]

        def forged(top_via):
            return ("SIP/2.0 200 OK\r\nVia: %s\r\n"
                    "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKvictim\r\n"
                    "From: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:b@127.0.0.1>;tag=2\r\n"
                    "Call-ID: reflect@x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
                    % (top_via, vport)).encode()
        attacks = [
            "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bKnotours",  # not our address
            ours + ";branch=z9hG4bK0123456789abcdef.s0123456789abcdef",  # made-up branch
            ours + ";branch=" + real,  # a real branch, for another upstream Via
        ]
        for a in attacks:
            bob.send(forged(a))
        try:
            data = victim.recv(65535)
            raise AssertionError("a forged response was reflected: %r" % data[:200])
        except socket.timeout:
            pass
        # the genuine answer still goes through
        bob.send(reply_to(got, 486, "Busy Here"))
        r = alice.final()
        check(r is not None and r.status == 486, "expected 486, got %r" % r)
        alice.ack(inv, r)
        check(s.log_text().count("whose top Via is not ours") >= 3, "drops not logged")
        victim.close()
        for x in (alice, bob):
            x.close()


if __name__ == "__main__":
    main(globals())
