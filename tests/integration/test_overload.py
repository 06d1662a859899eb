#!/usr/bin/env python3
"""Overload control (RFC 7339) against the real binary.

One worker with a 1 ms delay threshold is flooded with new INVITEs from
several sockets in other processes: new requests get 503 with Retry-After
(a share of them, not all), a client that put `oc` in its Via reads the
reduction in the responses, and a call set up before the flood still ends
with a BYE routed by the server's Record-Route. Then a downstream UAS that
answers with oc=50 in the server's Via gets about half of the new INVITEs;
the others fail like a 503 from it, so a gateway group fails over.

Python sockets only (no SIPp): the UAS must rewrite the server's Via.
"""
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

from sbtest import Response, Server, SipClient, check, free_port, main

FLOODERS = 4
FLOOD_EACH = 6000


def write_config(tmp, extra=""):
    path = os.path.join(tmp, "overload.yaml")
    with open(path, "w") as f:
        f.write("workers: 1\n"
                "timers:\n  t1: 100\n"
                "overload:\n  enabled: true\n  delay_ms: 1\n  retry_after: 3\n"
                "  validity_ms: 700\n"
                # the flood from one address is the load here: the flood protection (which
                # would ban it) is out of reach
                "flood:\n  unauth_limit: 10000000\n" + extra)
    return path


def header_block(data):
    return data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")


def vias(text):
    return [line.split(":", 1)[1].strip() for line in text.split("\r\n")[1:]
            if line.lower().startswith(("via:", "v:"))]


class Uas(threading.Thread):
    """A phone or gateway on UDP: answers INVITE with `final` (and 200 to BYE),
    optionally reporting overload (oc=N) in the server's Via of every response."""

    def __init__(self, final=200, oc=None):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.final = final
        self.oc = oc
        self.seq = 0
        self.received = []  # (method, header text)
        self.lock = threading.Lock()
        self.running = True
        self.start()

    def methods(self, method):
        with self.lock:
            return [h for m, h in self.received if m == method]

    def reply(self, head, status, reason, addr, tag=True, contact=False):
        lines = head.split("\r\n")
        out = ["SIP/2.0 %d %s" % (status, reason)]
        first_via = True
        for line in lines[1:]:
            name = line.split(":", 1)[0].strip().lower()
            if name in ("via", "v"):
                if first_via and self.oc is not None:
                    # RFC 7339: our report replaces the client's bare oc and its algo list
                    self.seq += 1
                    line = re.sub(r';oc-algo="[^"]*"|;oc(?=[;,\s]|$)', "", line, count=2)
                    line += ';oc=%d;oc-algo="loss";oc-validity=60000;oc-seq=%d.%05d' % (
                        self.oc, int(time.time()), self.seq)
                first_via = False
                out.append(line)
            elif name in ("from", "f", "call-id", "i", "cseq") or (
                    name == "record-route" and status < 300):
                out.append(line)
            elif name in ("to", "t"):
                if tag and ";tag=" not in line:
                    line += ";tag=uas%d" % self.port
                out.append(line)
        if contact:
            out.append("Contact: <sip:uas@127.0.0.1:%d>" % self.port)
        out.append("Content-Length: 0")
        self.sock.sendto(("\r\n".join(out) + "\r\n\r\n").encode(), addr)

    def run(self):
        self.sock.settimeout(0.2)
        while self.running:
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            head = header_block(data)
            method = head.split(" ", 1)[0]
            with self.lock:
                self.received.append((method, head))
            if method == "INVITE":
                reason = {200: "OK", 486: "Busy Here", 503: "Service Unavailable"}[self.final]
                self.reply(head, self.final, reason, addr, contact=self.final == 200)
            elif method in ("BYE", "OPTIONS", "CANCEL"):
                self.reply(head, 200, "OK", addr)

    def close(self):
        self.running = False
        self.join(2)
        self.sock.close()


FLOOD_CODE = r"""
import json, random, socket, sys, time
port, count, oc, seed = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])
random.seed(seed)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind(("127.0.0.1", 0))
me = s.getsockname()[1]
tag = "%x" % random.getrandbits(32)
for i in range(count):
    msg = ("INVITE sip:nobody%d@127.0.0.1:%d SIP/2.0\r\n"
           "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKf%x%s\r\n"
           "Max-Forwards: 70\r\nFrom: <sip:flood@evil.example>;tag=%s\r\n"
           "To: <sip:nobody%d@127.0.0.1>\r\nCall-ID: fl%d.%d.%x@flood\r\nCSeq: 1 INVITE\r\n"
           "Content-Length: 0\r\n\r\n") % (i % 50, port, me, random.getrandbits(48),
                                          ";oc" if oc else "", tag, i % 50, seed, i,
                                          random.getrandbits(32))
    try:
        s.sendto(msg.encode(), ("127.0.0.1", port))
    except OSError:
        pass
stats = {"sent": count, "status": {}, "overloaded": 0, "retry_after": 0, "oc_max": 0, "oc_seen": 0,
         "finals": 0}
s.settimeout(3.0)
while True:
    try:
        data, _ = s.recvfrom(65535)
    except socket.timeout:
        break
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    code = head.split(" ", 2)[1]
    stats["status"][code] = stats["status"].get(code, 0) + 1
    if code >= "200":
        stats["finals"] += 1
    if code == "503" and head.startswith("SIP/2.0 503 Overloaded\r\n"):
        stats["overloaded"] += 1  # not another cap's 503 (strangers' subscriber lookups)
        if "\r\nRetry-After: 3\r\n" in head:
            stats["retry_after"] += 1
    for m in __import__("re").finditer(r";oc=(\d+)", head):
        stats["oc_seen"] += 1
        stats["oc_max"] = max(stats["oc_max"], int(m.group(1)))
print(json.dumps(stats))
"""


def start_flood(server, oc):
    return [subprocess.Popen([sys.executable, "-c", FLOOD_CODE, str(server.port), str(FLOOD_EACH),
                              "1" if oc else "0", str(random.getrandbits(30))],
                             stdout=subprocess.PIPE, text=True) for _ in range(FLOODERS)]


def flood_results(procs):
    out = []
    for p in procs:
        text, _ = p.communicate(timeout=120)
        out.append(json.loads(text))
    return out


def register(server, user, password, port):
    c = SipClient(server)
    r = c.register(user, password, contact="<sip:%s@127.0.0.1:%d>" % (user, port), expires=600)
    c.close()
    check(r is not None and r.status == 200, "registration of %s: %r" % (user, r))


def establish_call(server, alice, uas):
    """alice calls bob (407 first); returns the Route set for the in-dialog requests."""
    ruri = "sip:bob@127.0.0.1"
    me = "<sip:alice@127.0.0.1>"
    alice.cseq += 1
    r = alice.request("INVITE", ruri, via_extra=";rport;oc", from_=me)
    check(r is not None and r.status == 407, "first INVITE: %r" % r)
    ack = alice.build("ACK", ruri, to=r.get("To"), via_extra=";rport", from_=me)
    alice.send_raw(ack)
    auth = alice.auth_header(r, "alice", "alicepw", "INVITE", ruri, proxy=True)
    alice.cseq += 1
    r = alice.request("INVITE", ruri, [auth], via_extra=";rport;oc", from_=me)
    check(r is not None and r.status == 200, "call not answered: %r" % r)
    # a forwarded response tells a client that declared support our state too (not overloaded)
    top = r.all("Via")[0]
    check(re.search(r';oc=0;oc-algo="loss";oc-validity=0;oc-seq=\d+\.\d{5}', top) and
          not re.search(r";oc(;|$)", top), "no oc=0 in the forwarded 200's Via: %r" % top)
    # and the server tells the callee it supports overload control
    inv = uas.methods("INVITE")
    check(inv and ';oc;oc-algo="loss"' in vias(inv[-1])[0],
          "no oc in the server's Via of the forwarded INVITE: %r" % vias(inv[-1])[:1])
    routes = list(reversed(r.all("Record-Route")))
    check(routes, "no Record-Route in the 200")
    to = r.get("To")
    ack = alice.build("ACK", "sip:uas@127.0.0.1:%d" % uas.port, ["Route: " + ", ".join(routes)],
                      to=to, from_=me)
    alice.send_raw(ack)
    return routes, to


def test_overload_sheds_new_requests_and_keeps_the_call():
    """A flood of new INVITEs: 503 + Retry-After for a share of them (with oc=N
    for clients that support it), while an established call's BYE goes through."""
    tmp = tempfile.mkdtemp()
    uas = Uas(final=200)
    with Server(config=write_config(tmp)) as s:
        s.add_user("alice", "alicepw")
        s.add_user("bob", "bobpw")
        register(s, "bob", "bobpw", uas.port)
        alice = SipClient(s)
        # before: a client declaring support is told oc=0 (no overload)
        c = SipClient(s)
        r = c.request("OPTIONS", "sip:%s" % s.host, via_extra=";rport;oc")
        check(r is not None and r.status == 200 and
              re.search(r';oc=0;oc-algo="loss";oc-validity=0;oc-seq=', r.all("Via")[0]),
              "OPTIONS with oc: %r %r" % (r, r and r.all("Via")))
        r = c.request("OPTIONS", "sip:%s" % s.host)
        check(r is not None and "oc=" not in r.all("Via")[0], "oc= to a client without oc")
        c.close()

        routes, to = establish_call(s, alice, uas)
        floods = start_flood(s, oc=True)
        # wait until the server reports the overload, then hang up in the middle of it
        deadline = time.time() + 30
        while time.time() < deadline and "overload: queueing delay" not in s.log_text():
            time.sleep(0.05)
        check("overload: queueing delay" in s.log_text(), "the flood caused no overload")
        alice.cseq += 1
        bye = alice.request("BYE", "sip:uas@127.0.0.1:%d" % uas.port,
                            ["Route: " + ", ".join(routes)], to=to, timeout=2.0, retries=5,
                            from_="<sip:alice@127.0.0.1>")
        check(bye is not None and bye.status == 200, "BYE during overload: %r" % bye)
        check(uas.methods("BYE"), "the callee never got the BYE")
        results = flood_results(floods)
        alice.close()
    uas.close()

    sent = sum(r["sent"] for r in results)
    status = {}
    for r in results:
        for k, v in r["status"].items():
            status[k] = status.get(k, 0) + v
    shed = sum(r["overloaded"] for r in results)
    retry_after = sum(r["retry_after"] for r in results)
    oc_max = max(r["oc_max"] for r in results)
    other = sum(v for k, v in status.items() if k >= "200") - shed
    print("flood: %d INVITEs, answers %s (503 Overloaded: %d), oc up to %d"
          % (sent, status, shed, oc_max))
    # a share of what the worker answered: the kernel drops part of a flood this fast before
    # the worker reads it, and how much varies with the machine
    finals = sum(r["finals"] for r in results)
    check(shed > finals // 10, "too few 503s: %s, %d answered of %d sent" % (status, finals, sent))
    check(retry_after == shed, "503 Overloaded without Retry-After: 3 (%d of %d)"
          % (retry_after, shed))
    check(other > 0, "every request refused: not proportional (%s)" % status)
    check(oc_max > 0, "no client saw oc>0 in its Via while overloaded")


def test_downstream_oc_halves_new_requests_and_fails_over():
    """A UAS that answers with oc=50 in our Via gets about half of the new
    INVITEs; a gateway at oc=100 gets none and the group fails over."""
    tmp = tempfile.mkdtemp()
    half = Uas(final=486, oc=50)
    full = Uas(final=486, oc=100)
    spare = Uas(final=486)
    gw = ("gateways:\n"
          "  - {name: gw1, address: 127.0.0.1, port: %d, probe: false}\n"
          "  - {name: gw2, address: 127.0.0.1, port: %d, probe: false}\n"
          "gateway_groups:\n  - name: pstn\n    gateways:\n"
          "      - {gateway: gw1, priority: 1}\n      - {gateway: gw2, priority: 2}\n"
          "dialplan:\n  rules:\n    - {prefix: \"0\", route: [pstn]}\n") % (full.port, spare.port)
    with Server(config=write_config(tmp, gw)) as s:
        s.add_user("alice", "alicepw")
        s.add_user("bob", "bobpw")
        register(s, "bob", "bobpw", half.port)
        c = SipClient(s)
        answers = {}
        n = 40
        for i in range(n + 1):
            c.callid = "half%d.%x@sbtest" % (i, random.getrandbits(32))
            r = c.request("INVITE", "sip:bob@127.0.0.1", from_="<sip:carol@example.org>",
                          to="<sip:bob@127.0.0.1>")
            check(r is not None, "no answer to INVITE %d" % i)
            answers[r.status] = answers.get(r.status, 0) + 1
        got = len(half.methods("INVITE"))
        print("oc=50: %d of %d new INVITEs reached the UAS, answers %s" % (got, n + 1, answers))
        # the first one carried no report yet; of the next 40 about half go through
        check(abs((got - 1) - n / 2) <= 2, "oc=50: %d of %d reached the UAS" % (got - 1, n))
        check(answers.get(503, 0) >= n / 2 - 2, "the requests not sent got no 503: %s" % answers)

        # a gateway at 100 %: after its first answer nothing more reaches it; gw2 takes over
        alice_calls = 6
        for i in range(alice_calls):
            c.cseq += 1
            c.callid = "gw%d.%x@sbtest" % (i, random.getrandbits(32))
            ruri = "sip:0301234@127.0.0.1"
            r = c.request("INVITE", ruri, from_="<sip:alice@127.0.0.1>")
            check(r is not None and r.status == 407, "gateway call: %r" % r)
            c.send_raw(c.build("ACK", ruri, to=r.get("To"), from_="<sip:alice@127.0.0.1>"))
            auth = c.auth_header(r, "alice", "alicepw", "INVITE", ruri, proxy=True)
            c.cseq += 1
            r = c.request("INVITE", ruri, [auth], from_="<sip:alice@127.0.0.1>")
            check(r is not None and r.status == 486, "gateway call %d: %r" % (i, r))
        c.close()
        check(len(full.methods("INVITE")) == 1,
              "gw1 at oc=100 got %d INVITEs" % len(full.methods("INVITE")))
        # the first call's 486 came from gw1 itself (a real answer: no failover)
        check(len(spare.methods("INVITE")) == alice_calls - 1,
              "gw2 got %d of %d" % (len(spare.methods("INVITE")), alice_calls - 1))
    for u in (half, full, spare):
        u.close()


if __name__ == "__main__":
    main(globals())
