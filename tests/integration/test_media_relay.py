#!/usr/bin/env python3
"""The media relay wired into calls (issue 14 section 1), with real RTP.

alice (a raw UDP caller) calls bob (a registered raw UDP phone) through the
server with `media.mode: always`; the relay binds to 127.0.0.2 so that an
SDP naming the relay is told apart from one naming a phone (127.0.0.1).
Each phone has its own RTP socket and sends G.711 mu-law audio (a tone
sweep made here) in 20 ms packets to where its SDP says; the test checks
that the SDP each side got names the relay, and that the audio arriving on
each side is the audio the other sent (correlation of the decoded samples,
not a packet count). Also: `never` leaves the bodies byte for byte; early
media (183 with SDP); re-INVITE hold, resume and a port change; CANCEL
frees the ports at once; the media timeout sends BYE to both sides; and a
third party (127.0.0.3) injecting packets to the relay's ports, during and
after the latching window, never gets one forwarded.
"""
import math
import os
import random
import re
import socket
import tempfile
import time

from sbphone import Caller, Phone, hget
from sbtest import Server, check, cli, main, wait_for

RELAY_IP = "127.0.0.2"
HIJACK_IP = "127.0.0.3"


# ------------------------------------------------------------------ audio


def ulaw_encode(x):
    """One 16-bit linear sample to G.711 mu-law."""
    bias, clip = 0x84, 32635
    sign = 0x80 if x < 0 else 0
    x = min(abs(x), clip) + bias
    exp = 7
    mask = 0x4000
    while exp > 0 and not (x & mask):
        exp -= 1
        mask >>= 1
    mant = (x >> (exp + 3)) & 0x0F
    return ~(sign | (exp << 4) | mant) & 0xFF


def ulaw_decode(u):
    u = ~u & 0xFF
    sign, exp, mant = u & 0x80, (u >> 4) & 7, u & 0x0F
    x = ((mant << 3) + 0x84) << exp
    x -= 0x84
    return -x if sign else x


def tone(seconds, f0, f1, rate=8000):
    """A sweep from f0 to f1 Hz: distinct enough that a wrong stream does not correlate."""
    n = int(seconds * rate)
    out = []
    for i in range(n):
        t = i / rate
        f = f0 + (f1 - f0) * t / seconds
        out.append(int(12000 * math.sin(2 * math.pi * f * t)))
    return out


def correlation(a, b):
    n = min(len(a), len(b))
    if n == 0:
        return 0.0
    a, b = a[:n], b[:n]
    ma, mb = sum(a) / n, sum(b) / n
    num = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    da = math.sqrt(sum((x - ma) ** 2 for x in a))
    db = math.sqrt(sum((y - mb) ** 2 for y in b))
    return num / (da * db) if da and db else 0.0


class Rtp:
    """An RTP endpoint: sends mu-law packets, collects what arrives (payloads by sequence)."""

    def __init__(self, ip="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((ip, 0))
        self.port = self.sock.getsockname()[1]
        self.ssrc = random.getrandbits(32)
        self.seq = random.getrandbits(16)
        self.ts = random.getrandbits(32)
        self.got = {}  # (ssrc, seq) -> payload
        self.sources = set()

    def packet(self, payload, pt=0):
        hdr = bytes([0x80, pt, (self.seq >> 8) & 0xFF, self.seq & 0xFF]) + \
            self.ts.to_bytes(4, "big") + self.ssrc.to_bytes(4, "big")
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + len(payload)) & 0xFFFFFFFF
        return hdr + payload

    def send_samples(self, samples, dest, peer=None):
        """20 ms packets of mu-law to dest, paced; drains peer's socket meanwhile."""
        enc = bytes(ulaw_encode(x) for x in samples)
        for off in range(0, len(enc), 160):
            self.sock.sendto(self.packet(enc[off:off + 160]), dest)
            for r in (self, peer):
                if r:
                    r.drain()
            time.sleep(0.02)

    def drain(self, timeout=0.0):
        self.sock.settimeout(timeout if timeout > 0 else 0.0001)
        try:
            while True:
                data, src = self.sock.recvfrom(2048)
                self.sources.add(src)
                if len(data) >= 12:
                    ssrc = int.from_bytes(data[8:12], "big")
                    seq = int.from_bytes(data[2:4], "big")
                    self.got[(ssrc, seq)] = data[12:]
                self.sock.settimeout(0.0001)
        except (socket.timeout, BlockingIOError):
            pass

    def samples_from(self, ssrc):
        """The decoded audio of one source, in sequence order (wrap-around aware)."""
        seqs = sorted(s for (x, s) in self.got if x == ssrc)
        if not seqs:
            return []
        if seqs[-1] - seqs[0] > 32768:  # wrapped
            seqs = sorted(seqs, key=lambda s: (s + 32768) & 0xFFFF)
        out = []
        for s in seqs:
            out += [ulaw_decode(b) for b in self.got[(ssrc, s)]]
        return out

    def close(self):
        self.sock.close()


# ------------------------------------------------------------------ SIP


def sdp(port, sess="1", direction=None, ip="127.0.0.1"):
    s = ("v=0\r\no=- %s %s IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\n"
         "m=audio %d RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
         "a=rtpmap:101 telephone-event/8000\r\na=ptime:20\r\n" % (sess, sess, ip, ip, port))
    if direction:
        s += "a=%s\r\n" % direction
    return s


def media_of(body):
    """(address, port, rtcp port or None) of the first m= of an SDP body (bytes or str)."""
    if isinstance(body, bytes):
        body = body.split(b"\r\n\r\n", 1)[1].decode()
    c = re.search(r"(?m)^c=IN IP4 (\S+)", body).group(1)
    m = re.search(r"(?m)^m=audio (\d+) ", body)
    rtcp = re.search(r"(?m)^a=rtcp:(\d+)", body)
    return c, int(m.group(1)), int(rtcp.group(1)) if rtcp else None


def body_of(data):
    return data.split(b"\r\n\r\n", 1)[1]


def reply(req, status, reason, to_tag, extra=(), body=""):
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
    """alice -> bob through the server, every message by hand, with SDP."""

    def __init__(self, server, bob, offer):
        self.s, self.bob = server, bob
        self.alice = Caller(server)
        self.callid = "%x@media-test" % random.getrandbits(64)
        self.ruri = "sip:bob@%s" % server.host
        self.alice.c.callid = self.callid
        r407 = self.alice.challenge(self.ruri)
        auth = self.alice.credentials(r407, self.ruri)
        self.cseq = 2
        self.offer = offer
        self.invite = self.alice.c.build(
            "INVITE", self.ruri, ["Contact: <sip:alice@127.0.0.1:%d>" % self.alice.c.port, auth,
                                  "Content-Type: application/sdp"],
            body=offer, to="<%s>" % self.ruri, from_="<sip:alice@127.0.0.1>", cseq=self.cseq,
            branch="z9hG4bK%x" % random.getrandbits(48))
        self.alice.send(self.invite)
        self.bob_inv = bob.recv_request("INVITE", 3)
        check(self.bob_inv is not None, "bob got no INVITE: " + server.log_tail())
        self.bob_tag = "b%x" % random.getrandbits(32)
        self.bob_contact = "Contact: <sip:bob@127.0.0.1:%d>" % bob.port

    def provisional(self, status, reason, body=""):
        self.bob.send(reply(self.bob_inv, status, reason, self.bob_tag, [self.bob_contact],
                            body=body))
        deadline = time.time() + 3
        while time.time() < deadline:
            raw = self.alice.c.recv_raw(max(deadline - time.time(), 0.01))
            if raw.startswith(b"SIP/2.0 %d" % status):
                return raw
        raise AssertionError("alice got no %d" % status)

    def answer(self, body):
        self.bob.send(reply(self.bob_inv, 200, "OK", self.bob_tag, [self.bob_contact], body=body))
        deadline = time.time() + 3
        while time.time() < deadline:
            raw = self.alice.c.recv_raw(max(deadline - time.time(), 0.01))
            if raw.startswith(b"SIP/2.0 200"):
                break
        else:
            raise AssertionError("alice got no 200")
        self.ok = raw
        self.to = hget(raw, "to")[0]
        rr = [v.strip() for h in hget(raw, "record-route") for v in h.split(",")]
        self.routes = list(reversed(rr))
        self.target = re.search(r"<([^>]+)>", hget(raw, "contact")[0]).group(1)
        self.in_dialog("ACK", self.cseq)
        check(self.bob.recv_request("ACK", 3) is not None, "bob got no ACK")
        return raw

    def answer_late(self, offer, answer):
        """A late offer: bob's 200 offers, alice's ACK answers; returns (200, ACK bob got)."""
        self.bob.send(reply(self.bob_inv, 200, "OK", self.bob_tag, [self.bob_contact],
                            body=offer))
        deadline = time.time() + 3
        while time.time() < deadline:
            raw = self.alice.c.recv_raw(max(deadline - time.time(), 0.01))
            if raw.startswith(b"SIP/2.0 200"):
                break
        else:
            raise AssertionError("alice got no 200")
        self.to = hget(raw, "to")[0]
        self.routes = list(reversed([v.strip() for h in hget(raw, "record-route")
                                     for v in h.split(",")]))
        self.target = re.search(r"<([^>]+)>", hget(raw, "contact")[0]).group(1)
        self.in_dialog("ACK", self.cseq, body=answer)
        ack = self.bob.recv_request("ACK", 3)
        check(ack is not None, "bob got no ACK")
        return raw, ack

    def in_dialog(self, method, cseq, body="", extra=()):
        hdrs = ["Route: " + ", ".join(self.routes)] if self.routes else []
        hdrs += ["Contact: <sip:alice@127.0.0.1:%d>" % self.alice.c.port] + list(extra)
        if body:
            hdrs.append("Content-Type: application/sdp")
        data = self.alice.c.build(method, self.target, hdrs, body=body, to=self.to,
                                  from_="<sip:alice@127.0.0.1>", cseq=cseq)
        self.alice.send(data)
        return data

    def reinvite(self, offer, answer):
        """alice re-INVITEs with offer, bob answers; returns (what bob got, what alice got)."""
        self.cseq += 1
        self.in_dialog("INVITE", self.cseq, body=offer)
        got = self.bob.recv_request("INVITE", 3)
        check(got is not None, "bob got no re-INVITE: " + self.s.log_tail())
        self.bob.send(reply(got, 200, "OK", self.bob_tag, [self.bob_contact], body=answer))
        deadline = time.time() + 3
        while time.time() < deadline:
            raw = self.alice.c.recv_raw(max(deadline - time.time(), 0.01))
            if raw.startswith(b"SIP/2.0 200"):
                break
        else:
            raise AssertionError("alice got no 200 to the re-INVITE")
        self.in_dialog("ACK", self.cseq)
        return got, raw

    def hangup(self):
        self.cseq += 1
        self.in_dialog("BYE", self.cseq)
        bye = self.bob.recv_request("BYE", 3)
        check(bye is not None, "bob got no BYE: " + self.s.log_tail())
        self.bob.send(reply(bye, 200, "OK", self.bob_tag))

    def close(self):
        self.alice.close()


def stats(server):
    out = cli("call", "stats", db=server.db).stdout
    return {k: int(v) for k, v in (line.split() for line in out.splitlines() if line.strip())}


def relay_server(tmp, mode="always", extra=""):
    base = random.randrange(20000, 29000, 2)
    path = os.path.join(tmp, "sb.yaml")
    with open(path, "w") as f:
        f.write("media:\n  mode: %s\n  bind: %s\n  port_min: %d\n  port_max: %d\n"
                "  quarantine_ms: 0\n%s" % (mode, RELAY_IP, base, base + 199, extra))
    s = Server(tmp=tmp, config=path)
    s.port_range = (base, base + 199)
    return s


def users(s):
    s.add_user("alice", "alicepw")
    s.add_user("bob", "bobpw")


def names_relay(s, body):
    c, port, _ = media_of(body)
    return c == RELAY_IP and s.port_range[0] <= port <= s.port_range[1]


def both_ways(s, call, a_rtp, b_rtp, a_dest, b_dest, seconds=1.0):
    """alice and bob talk at once; each must hear the other's sweep."""
    a_audio, b_audio = tone(seconds, 300, 1200), tone(seconds, 1500, 600)
    a_rtp.drain(0.05)
    b_rtp.drain(0.05)
    a_rtp.got.clear()
    b_rtp.got.clear()
    a_enc = bytes(ulaw_encode(x) for x in a_audio)
    b_enc = bytes(ulaw_encode(x) for x in b_audio)
    for off in range(0, len(a_enc), 160):
        a_rtp.sock.sendto(a_rtp.packet(a_enc[off:off + 160]), a_dest)
        b_rtp.sock.sendto(b_rtp.packet(b_enc[off:off + 160]), b_dest)
        a_rtp.drain()
        b_rtp.drain()
        time.sleep(0.02)
    for _ in range(20):
        a_rtp.drain(0.01)
        b_rtp.drain(0.01)
    heard_by_bob = b_rtp.samples_from(a_rtp.ssrc)
    heard_by_alice = a_rtp.samples_from(b_rtp.ssrc)
    # the first packets may wait for the latch; what arrived must be the sweep from its start
    ca = correlation(a_audio[-len(heard_by_bob):] if heard_by_bob else [], heard_by_bob)
    cb = correlation(b_audio[-len(heard_by_alice):] if heard_by_alice else [], heard_by_alice)
    check(len(heard_by_bob) >= 0.9 * len(a_audio),
          "bob heard %d of %d samples: %s" % (len(heard_by_bob), len(a_audio), stats(s)))
    check(len(heard_by_alice) >= 0.9 * len(b_audio),
          "alice heard %d of %d samples" % (len(heard_by_alice), len(b_audio)))
    check(ca > 0.99 and cb > 0.99, "audio not what was sent: correlation %.3f / %.3f" % (ca, cb))
    # and it came from the relay, never straight from the other phone
    check(all(src[0] == RELAY_IP for src in a_rtp.sources | b_rtp.sources),
          "media bypassed the relay: %r %r" % (a_rtp.sources, b_rtp.sources))
    return ca, cb


# ------------------------------------------------------------------ tests


def test_always_relays_audio_both_ways():
    tmp = tempfile.mkdtemp(prefix="sbmedia-")
    with relay_server(tmp) as s:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        a_rtp, b_rtp = Rtp(), Rtp()
        call = Call(s, bob, sdp(a_rtp.port))
        check(names_relay(s, call.bob_inv), "bob's offer does not name the relay: %r"
              % body_of(call.bob_inv))
        # everything else of the offer is kept: codecs, ptime
        check(b"a=rtpmap:101 telephone-event/8000\r\na=ptime:20" in body_of(call.bob_inv),
              "offer attributes lost: %r" % body_of(call.bob_inv))
        cl = int(hget(call.bob_inv, "content-length")[0])
        check(cl == len(body_of(call.bob_inv)), "Content-Length %d for a body of %d"
              % (cl, len(body_of(call.bob_inv))))
        wait_for(lambda: stats(s).get("media.ports_in_use", 0) == 4, 3, "4 ports in use")
        ok = call.answer(sdp(b_rtp.port, "2"))
        check(names_relay(s, ok), "alice's answer does not name the relay: %r" % body_of(ok))
        a_dest = media_of(ok)[:2]
        b_dest = media_of(call.bob_inv)[:2]
        check(a_dest != b_dest, "one relay port for both sides")
        both_ways(s, call, a_rtp, b_rtp, a_dest, b_dest)
        # published by the worker once a second
        wait_for(lambda: stats(s)["media.forwarded"] >= 90, 3, "forwarded packets counted")
        check(stats(s)["media.sessions"] == 1, "sessions: %r" % stats(s))
        # the counters reach the dialog (billing) and `call show`
        wait_for(lambda: re.search(r"media_from_caller_packets\s+(\d{2,})",
                                   cli("call", "show", call.callid, db=s.db).stdout), 3,
                 "per-leg counters in call show")
        show = cli("call", "show", call.callid, db=s.db).stdout
        check(re.search(r"media_from_callee_codec\s+PCMU/8000", show), show)
        call.hangup()
        wait_for(lambda: stats(s).get("media.ports_in_use", 1) == 0, 3, "ports freed")
        check(stats(s)["media.sessions"] == 0, "session left")
        call.close()
        bob.close()
        a_rtp.close()
        b_rtp.close()


def test_final_counters_reach_the_dialog_before_it_ends():
    """A BYE right after the audio (before the once-a-second copy): every packet is counted.

    Two workers: the BYE is handed to the worker that owns the relay session,
    which writes the counters into the dialog before the dialog layer ends it
    (what a billing record reads in on_terminated; logged at the end).
    """
    tmp = tempfile.mkdtemp(prefix="sbmedia-")
    s = relay_server(tmp)
    s.workers = 2
    with s:
        users(s)
        for i in range(3):
            bob = Phone(s, "bob", "bobpw")
            a_rtp, b_rtp = Rtp(), Rtp()
            call = Call(s, bob, sdp(a_rtp.port))
            ok = call.answer(sdp(b_rtp.port, "2"))
            a_dest, b_dest = media_of(ok)[:2], media_of(call.bob_inv)[:2]
            time.sleep(1.1)  # a tick has passed: what follows is not copied by one yet
            enc = bytes(ulaw_encode(x) for x in tone(0.2, 400, 800))
            for off in range(0, len(enc), 160):  # 10 packets each way, at once
                a_rtp.sock.sendto(a_rtp.packet(enc[off:off + 160]), a_dest)
                b_rtp.sock.sendto(b_rtp.packet(enc[off:off + 160]), b_dest)
            wait_for(lambda: (b_rtp.drain(0.01), len(b_rtp.got))[1] >= 10, 2, "bob's packets")
            wait_for(lambda: (a_rtp.drain(0.01), len(a_rtp.got))[1] >= 10, 2, "alice's packets")
            # bob hangs up (his socket may hash to either worker)
            rr = [v.strip() for h in hget(call.bob_inv, "record-route") for v in h.split(",")]
            bye = ["BYE sip:alice@127.0.0.1:%d SIP/2.0" % call.alice.c.port,
                   "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%x;rport"
                   % (bob.port, random.getrandbits(48)),
                   "Max-Forwards: 70", "Route: " + ", ".join(rr),
                   "From: %s;tag=%s" % (hget(call.bob_inv, "to")[0], call.bob_tag),
                   "To: " + hget(call.bob_inv, "from")[0], "Call-ID: " + call.callid,
                   "CSeq: 200 BYE", "Content-Length: 0"]
            bob.send(("\r\n".join(bye) + "\r\n\r\n").encode())
            pat = re.compile(r"call %s media \(bye-callee\): caller sent (\d+) packets "
                             r"\(0 lost, PCMU/8000\), callee sent (\d+) packets"
                             % re.escape(call.callid))
            m = wait_for(lambda: pat.search(s.log_text()), 3, "the call's media line")
            check(m.group(1) == "10" and m.group(2) == "10",
                  "final counters: %s / %s packets" % (m.group(1), m.group(2)))
            for x in (a_rtp, b_rtp):
                x.close()
            call.close()
            bob.close()


def test_never_leaves_bodies_alone():
    """mode never (an explicit media: block): both bodies byte for byte, no session."""
    tmp = tempfile.mkdtemp(prefix="sbmedia-")
    with relay_server(tmp, mode="never", extra="  gateways: false\n") as s:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        offer, answer = sdp(40000), sdp(40002, "2")
        call = Call(s, bob, offer)
        check(body_of(call.bob_inv) == offer.encode(), "offer changed: %r" % body_of(call.bob_inv))
        ok = call.answer(answer)
        check(body_of(ok) == answer.encode(), "answer changed: %r" % body_of(ok))
        p = cli("call", "stats", db=s.db)
        check("media." not in p.stdout, "a relay with media off: " + p.stdout)
        call.hangup()
        call.close()
        bob.close()


def test_early_media_then_answer():
    tmp = tempfile.mkdtemp(prefix="sbmedia-")
    with relay_server(tmp) as s:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        a_rtp, b_rtp = Rtp(), Rtp()
        call = Call(s, bob, sdp(a_rtp.port))
        early = call.provisional(183, "Session Progress", sdp(b_rtp.port, "2"))
        check(names_relay(s, early), "183 SDP does not name the relay: %r" % body_of(early))
        a_dest, b_dest = media_of(early)[:2], media_of(call.bob_inv)[:2]
        # ringback from bob reaches alice before the answer
        ring = tone(0.6, 425, 425)
        b_rtp.send_samples(ring, b_dest, peer=a_rtp)
        a_rtp.drain(0.2)
        heard = a_rtp.samples_from(b_rtp.ssrc)
        check(len(heard) >= 0.8 * len(ring) and correlation(ring[-len(heard):], heard) > 0.99,
              "early media: %d samples heard" % len(heard))
        ok = call.answer(sdp(b_rtp.port, "2"))
        check(media_of(ok)[:2] == a_dest, "the answer moved alice's relay port")
        both_ways(s, call, a_rtp, b_rtp, a_dest, b_dest, 0.6)
        call.hangup()
        call.close()
        bob.close()


def test_reinvite_hold_resume_and_port_change():
    tmp = tempfile.mkdtemp(prefix="sbmedia-")
    with relay_server(tmp) as s:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        a_rtp, b_rtp = Rtp(), Rtp()
        call = Call(s, bob, sdp(a_rtp.port))
        ok = call.answer(sdp(b_rtp.port, "2"))
        a_dest, b_dest = media_of(ok)[:2], media_of(call.bob_inv)[:2]
        both_ways(s, call, a_rtp, b_rtp, a_dest, b_dest, 0.4)
        # hold: alice sendonly; the relay's ports stay, the direction goes through
        got, raw = call.reinvite(sdp(a_rtp.port, "1", "sendonly"), sdp(b_rtp.port, "2",
                                                                        "recvonly"))
        check(media_of(got)[:2] == b_dest and b"a=sendonly" in body_of(got),
              "hold offer: %r" % body_of(got))
        check(media_of(raw)[:2] == a_dest and b"a=recvonly" in body_of(raw),
              "hold answer: %r" % body_of(raw))
        # resume from a new port: alice's new socket is heard, through the same relay ports
        a2 = Rtp()
        got, raw = call.reinvite(sdp(a2.port, "1"), sdp(b_rtp.port, "2"))
        check(media_of(got)[:2] == b_dest and media_of(raw)[:2] == a_dest,
              "relay ports changed on resume")
        b_rtp.got.clear()
        a2.ssrc = a_rtp.ssrc + 1
        both_ways(s, call, a2, b_rtp, a_dest, b_dest, 0.6)
        call.hangup()
        wait_for(lambda: stats(s).get("media.ports_in_use", 1) == 0, 3, "ports freed")
        for r in (a_rtp, a2, b_rtp):
            r.close()
        call.close()
        bob.close()


def callee_reinvite(call, bob_sock, offer):
    """bob re-INVITEs alice (from bob's SIP socket); returns what alice got."""
    rr = [v.strip() for h in hget(call.bob_inv, "record-route") for v in h.split(",")]
    target = "sip:alice@127.0.0.1:%d" % call.alice.c.port
    call.bob_cseq = getattr(call, "bob_cseq", 100) + 1
    lines = ["INVITE %s SIP/2.0" % target,
             "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%x;rport"
             % (call.bob.port, random.getrandbits(48)),
             "Max-Forwards: 70", "Route: " + ", ".join(rr),
             "From: %s;tag=%s" % (hget(call.bob_inv, "to")[0], call.bob_tag),
             "To: " + hget(call.bob_inv, "from")[0], "Call-ID: " + call.callid,
             "CSeq: %d INVITE" % call.bob_cseq, call.bob_contact,
             "Content-Type: application/sdp", "Content-Length: %d" % len(offer)]
    call.bob.send(("\r\n".join(lines) + "\r\n\r\n" + offer).encode())
    deadline = time.time() + 3
    while time.time() < deadline:
        raw = call.alice.c.recv_raw(max(deadline - time.time(), 0.01))
        if raw.startswith(b"INVITE "):
            return raw
    raise AssertionError("alice got no re-INVITE from bob")


def test_callee_reinvite_on_another_worker():
    """Two workers: bob's re-INVITE lands on a worker that does not own the call.

    It is rewritten there from the registry and applied by the owner through
    its inbox: bob's new RTP port is heard by alice afterwards.
    """
    tmp = tempfile.mkdtemp(prefix="sbmedia-")
    s = relay_server(tmp)
    s.workers = 2
    with s:
        users(s)
        for attempt in range(12):
            bob = Phone(s, "bob", "bobpw")
            a_rtp, b_rtp = Rtp(), Rtp()
            call = Call(s, bob, sdp(a_rtp.port))
            ok = call.answer(sdp(b_rtp.port, "2"))
            a_dest, b_dest = media_of(ok)[:2], media_of(call.bob_inv)[:2]
            before = stats(s)["media.remote_updates"]
            b2 = Rtp()
            got = callee_reinvite(call, bob, sdp(b2.port, "3"))
            check(media_of(got)[:2] == a_dest, "bob's re-offer: %r" % body_of(got))
            if stats(s)["media.remote_updates"] == before:
                call.hangup()  # same worker: try another source port for bob
                for x in (a_rtp, b_rtp, b2):
                    x.close()
                call.close()
                bob.close()
                continue
            via = hget(got, "via")
            answer = sdp(a_rtp.port, "1")
            lines = ["SIP/2.0 200 OK"] + ["Via: " + v for v in via] + \
                ["Record-Route: " + v for v in hget(got, "record-route")] + \
                ["From: " + hget(got, "from")[0], "To: " + hget(got, "to")[0],
                 "Call-ID: " + call.callid, "CSeq: " + hget(got, "cseq")[0],
                 "Contact: <sip:alice@127.0.0.1:%d>" % call.alice.c.port,
                 "Content-Type: application/sdp", "Content-Length: %d" % len(answer)]
            call.alice.send(("\r\n".join(lines) + "\r\n\r\n" + answer).encode())
            resp = None
            deadline = time.time() + 3
            while time.time() < deadline and resp is None:
                data = bob.recv(deadline - time.time())
                if data and data.startswith(b"SIP/2.0 200"):
                    resp = data
            check(resp is not None and media_of(resp)[:2] == b_dest,
                  "bob's answer does not name his relay port: %r" % resp)
            b2.ssrc = b_rtp.ssrc + 7
            both_ways(s, call, a_rtp, b2, a_dest, b_dest, 0.6)
            call.hangup()
            wait_for(lambda: stats(s).get("media.ports_in_use", 1) == 0, 3, "ports freed")
            for x in (a_rtp, b_rtp, b2):
                x.close()
            call.close()
            bob.close()
            return
        raise AssertionError("bob's re-INVITE never landed on the other worker")


def test_late_offer_in_the_2xx_answer_in_the_ack():
    tmp = tempfile.mkdtemp(prefix="sbmedia-")
    with relay_server(tmp) as s:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        a_rtp, b_rtp = Rtp(), Rtp()
        call = Call(s, bob, "")
        check(body_of(call.bob_inv) == b"", "an INVITE without SDP got one")
        ok, ack = call.answer_late(sdp(b_rtp.port, "2"), sdp(a_rtp.port))
        check(names_relay(s, ok), "the 2xx offer does not name the relay: %r" % body_of(ok))
        check(names_relay(s, ack), "the ACK answer does not name the relay: %r" % body_of(ack))
        cl = int(hget(ack, "content-length")[0])
        check(cl == len(body_of(ack)), "ACK Content-Length %d for %d" % (cl, len(body_of(ack))))
        both_ways(s, call, a_rtp, b_rtp, media_of(ok)[:2], media_of(ack)[:2], 0.6)
        call.hangup()
        wait_for(lambda: stats(s).get("media.ports_in_use", 1) == 0, 3, "ports freed")
        for x in (a_rtp, b_rtp):
            x.close()
        call.close()
        bob.close()


def test_cancel_frees_ports_at_once():
    tmp = tempfile.mkdtemp(prefix="sbmedia-")
    with relay_server(tmp) as s:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        call = Call(s, bob, sdp(41000))
        call.provisional(180, "Ringing")
        wait_for(lambda: stats(s).get("media.ports_in_use", 0) == 4, 3, "ports in use")
        via = hget(call.invite, "via")[0]
        cancel = ("CANCEL %s SIP/2.0\r\nVia: %s\r\nMax-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\n"
                  "Call-ID: %s\r\nCSeq: %d CANCEL\r\nContent-Length: 0\r\n\r\n"
                  % (call.ruri, via, hget(call.invite, "from")[0], hget(call.invite, "to")[0],
                     call.callid, call.cseq)).encode()
        call.alice.send(cancel)
        bc = bob.recv_request("CANCEL", 3)
        check(bc is not None, "bob got no CANCEL")
        bob.send(reply(bc, 200, "OK", call.bob_tag))
        bob.send(reply(call.bob_inv, 487, "Request Terminated", call.bob_tag))
        wait_for(lambda: stats(s).get("media.ports_in_use", 1) == 0, 3,
                 "ports freed after CANCEL")
        check(stats(s)["media.sessions"] == 0, "session left after CANCEL")
        call.close()
        bob.close()


def test_media_timeout_sends_bye_to_both_sides():
    tmp = tempfile.mkdtemp(prefix="sbmedia-")
    with relay_server(tmp, extra="  timeout: 2\n") as s:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        a_rtp, b_rtp = Rtp(), Rtp()
        call = Call(s, bob, sdp(a_rtp.port))
        ok = call.answer(sdp(b_rtp.port, "2"))
        # a little audio, then silence both ways
        both_ways(s, call, a_rtp, b_rtp, media_of(ok)[:2], media_of(call.bob_inv)[:2], 0.3)
        t0 = time.time()
        bye_b = bob.recv_request("BYE", 6)
        check(bye_b is not None, "bob got no BYE: " + s.log_tail())
        check(time.time() - t0 >= 1.0, "BYE before the media timeout")
        check("Media timeout" in hget(bye_b, "reason")[0], "reason: %r" % hget(bye_b, "reason"))
        deadline = time.time() + 4
        bye_a = None
        while time.time() < deadline and bye_a is None:
            try:
                raw = call.alice.c.recv_raw(0.2)
            except socket.timeout:
                continue
            if raw.startswith(b"BYE "):
                bye_a = raw
        check(bye_a is not None, "alice got no BYE")
        wait_for(lambda: stats(s).get("media.ports_in_use", 1) == 0, 3, "ports freed")
        check(stats(s)["media.media_timeouts"] == 1, "timeout not counted")
        check("media.timeout" in s.log_text(), "not logged")
        call.close()
        bob.close()
        a_rtp.close()
        b_rtp.close()


def test_hijacker_packets_are_never_forwarded():
    """RTP Bleed: a third party's packets to the relay ports, in and after the window."""
    tmp = tempfile.mkdtemp(prefix="sbmedia-")
    with relay_server(tmp, extra="  latch_window_ms: 1500\n") as s:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        a_rtp, b_rtp, evil = Rtp(), Rtp(), Rtp(HIJACK_IP)
        call = Call(s, bob, sdp(a_rtp.port))
        ok = call.answer(sdp(b_rtp.port, "2"))
        a_dest, b_dest = media_of(ok)[:2], media_of(call.bob_inv)[:2]
        marker = b"\xEE" * 160

        def inject(n):
            for _ in range(n):
                for d in (a_dest, b_dest):
                    evil.sock.sendto(evil.packet(marker), d)
                    evil.sock.sendto(evil.packet(marker), (d[0], d[1] + 1))  # RTCP port too

        inject(20)  # first, inside the window, before either phone sent anything
        both_ways(s, call, a_rtp, b_rtp, a_dest, b_dest, 0.4)
        time.sleep(1.6)  # the window is over
        inject(20)
        both_ways(s, call, a_rtp, b_rtp, a_dest, b_dest, 0.4)
        for r in (a_rtp, b_rtp):
            r.drain(0.2)
            check(evil.ssrc not in {x for (x, _) in r.got}
                  and not any(p == marker for p in r.got.values()),
                  "a hijacker's packet was forwarded")
        evil.drain(0.2)
        check(not evil.got, "the relay sent media to the hijacker")
        st = stats(s)
        check(st["media.drop_foreign"] >= 60, "foreign drops not counted: %r" % st)
        call.hangup()
        for r in (a_rtp, b_rtp, evil):
            r.close()
        call.close()
        bob.close()


def test_nat_mode_relays_only_what_looks_behind_nat():
    """nat: an offer whose c= is not where the INVITE came from is relayed; a plain one not."""
    tmp = tempfile.mkdtemp(prefix="sbmedia-")
    with relay_server(tmp, mode="nat") as s:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        plain = sdp(42000)
        call = Call(s, bob, plain)
        check(body_of(call.bob_inv) == plain.encode(), "a direct call was relayed")
        call.answer(sdp(42002, "2"))
        call.hangup()
        call.close()
        natted = sdp(42004, ip="10.1.2.3")  # a phone's private address, seen from 127.0.0.1
        call = Call(s, bob, natted)
        check(names_relay(s, call.bob_inv), "a NATed caller was not relayed: %r"
              % body_of(call.bob_inv))
        ok = call.answer(sdp(42006, "2"))
        check(names_relay(s, ok), "the answer to a NATed caller: %r" % body_of(ok))
        call.hangup()
        wait_for(lambda: stats(s).get("media.ports_in_use", 1) == 0, 3, "ports freed")
        call.close()
        bob.close()


def test_check_config_media_errors():
    tmp = tempfile.mkdtemp(prefix="sbmedia-")
    cases = [("media:\n  mode: sometimes\n", "never, always or nat"),
             ("media:\n  mode: always\n  port_min: 30000\n  port_max: 30001\n",
              "at least two RTP/RTCP port pairs"),
             ("media:\n  mode: always\n  port_min: 31000\n  port_max: 30000\n",
              "'media.port_min' (31000) must not be greater than 'media.port_max' (30000)"),
             ("media:\n  mode: always\n  bind: relay.example\n", "numeric IPv4"),
             ("media:\n  mode: nat\n  bind: 0.0.0.0\n", "'media.advertise' is needed")]
    for i, (text, want) in enumerate(cases):
        path = os.path.join(tmp, "c%d.yaml" % i)
        with open(path, "w") as f:
            f.write(text)
        p = cli("check-config", "-c", path, check_rc=False)
        check(p.returncode != 0 and want in (p.stdout + p.stderr),
              "%r: rc %d, %s%s" % (text, p.returncode, p.stdout, p.stderr))


if __name__ == "__main__":
    main(globals())
