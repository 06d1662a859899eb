#!/usr/bin/env python3
"""The dialog port (issue 11, overload): established calls never queue behind new INVITEs.

With udp.dialog_port our signed Record-Route and the Via of what we forward
name a second UDP socket, which the worker reads before every batch of the
main one. Covered:
- under a flood of new INVITEs on the main port from several sockets, at a
  rate the server cannot keep up with (its socket buffer full, the kernel
  dropping), every established call's BYE (set up through the server before
  the flood) gets its 200 end to end, at its first transmission. On main
  before the dialog port (3fa1b54), and here with it off (run_flood(0)),
  the same flood left 0 of the 20 BYEs answered within 3.5 s;
- calls set up before a restart end after it (the route sets name a port);
- the Record-Route names the dialog port, and a call's ACK, INFO and BYE go
  through it; a caller over TCP gets a Record-Route naming the TCP address
  (double Record-Route, UDP on the callee's side) and its BYE works over TCP;
- a stranger's request sent to the dialog port (no route set of ours) is not
  served there (no answer, counted), while the main port answers it;
- the configuration key is checked.
Every address is on 127.0.0.1.
"""
import multiprocessing
import os
import random
import re
import socket
import subprocess
import tempfile
import threading
import time

from sbphone import hget
from sbtest import BIN, Response, Server, SipClient, check, free_port, main, wait_for

CALLS = 20
FLOODERS = 3
FLOOD_SECS = 9.0


def config(tmp, dport, extra=""):
    path = os.path.join(tmp, "dp.yaml")
    with open(path, "w") as f:
        # the flood comes from one address: the per-source budgets out of its reach, so the
        # server does the work of every INVITE (the flood protection is not under test)
        f.write("flood:\n  unauth_limit: 10000000\n  auth_limit: 10000000\n"
                "  dialog_limit: 10000000\n")
        if dport:
            f.write("udp:\n  dialog_port: %s\n" % dport)
        f.write(extra)
    return path


def sent_by(data):
    """(host, port) of the top Via of a request: where its responses go (RFC 3261 18.2.2)."""
    via = hget(data, "via")[0]
    m = re.match(r"SIP/2\.0/\w+\s+([^;,\s]+)", via)
    host, _, port = m.group(1).rpartition(":")
    return host, int(port)


def respond(req, status, reason, tag, contact=None):
    lines = ["SIP/2.0 %d %s" % (status, reason)]
    lines += ["Via: " + v for v in hget(req, "via")]
    lines += ["Record-Route: " + v for v in hget(req, "record-route")]
    lines.append("From: " + hget(req, "from")[0])
    to = hget(req, "to")[0]
    if ";tag=" not in to:
        to += ";tag=" + tag
    lines.append("To: " + to)
    lines.append("Call-ID: " + hget(req, "call-id")[0])
    lines.append("CSeq: " + hget(req, "cseq")[0])
    if contact:
        lines.append("Contact: " + contact)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Callee(threading.Thread):
    """bob: registered on a UDP socket, answers every INVITE and in-dialog request with 200
    (statelessly, to the Via's sent-by); counts what arrived."""

    def __init__(self, server):
        super().__init__(daemon=True)
        self.c = SipClient(server)
        self.port = self.c.port
        self.contact = "<sip:bob@127.0.0.1:%d>" % self.port
        r = self.c.register("bob", "bobpw", contact=self.contact, expires=600)
        check(r is not None and r.status == 200, "registration of bob: %r" % r)
        self.stop = False
        self.seen = {}
        self.start()

    def run(self):
        self.c.sock.settimeout(0.1)
        while not self.stop:
            try:
                data, _ = self.c.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            if data.startswith(b"SIP/2.0"):
                continue
            method = data.split(b" ", 1)[0].decode()
            self.seen[method] = self.seen.get(method, 0) + 1
            if method == "ACK":
                continue
            tag = "b%x" % (hash(hget(data, "call-id")[0]) & 0xffffff)
            self.c.sock.sendto(respond(data, 200, "OK", tag, self.contact), sent_by(data))

    def close(self):
        self.stop = True
        self.join(2)
        self.c.close()


class Call:
    """carol@foreign.example calls bob (an inbound call: no challenge), by hand on UDP."""

    def __init__(self, server, sock):
        self.s = server
        self.sock = sock
        self.port = sock.getsockname()[1]
        self.callid = "%x@dp-test" % random.getrandbits(64)
        self.tag = "c%x" % random.getrandbits(32)
        self.route = []
        self.target = None
        self.to = None
        self.cseq = 1

    def request(self, method, ruri, extra=(), to=None, cseq=None):
        lines = ["%s %s SIP/2.0" % (method, ruri),
                 "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%x;rport"
                 % (self.port, random.getrandbits(48)),
                 "Max-Forwards: 70",
                 "From: <sip:carol@foreign.example>;tag=" + self.tag,
                 "To: " + (to or "<%s>" % ruri),
                 "Call-ID: " + self.callid,
                 "CSeq: %d %s" % (cseq or self.cseq, method)]
        lines += list(extra)
        lines.append("Content-Length: 0")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def setup(self):
        ruri = "sip:bob@%s" % self.s.host
        inv = self.request("INVITE", ruri, ["Contact: <sip:carol@127.0.0.1:%d>" % self.port])
        self.sock.sendto(inv, self.s.addr)
        deadline = time.time() + 5
        while time.time() < deadline:
            self.sock.settimeout(max(deadline - time.time(), 0.01))
            try:
                r = Response(self.sock.recv(65535))
            except socket.timeout:
                break
            if r.get("Call-ID") != self.callid or r.status < 200:
                continue
            check(r.status == 200, "the call was answered %d" % r.status)
            self.rr = r.all("Record-Route")
            self.route = list(reversed([v for h in self.rr for v in h.split(",")]))
            self.target = re.search(r"<([^>]+)>", r.get("Contact")).group(1)
            self.to = r.get("To")
            self.send_in_dialog("ACK", cseq=1)
            return
        check(False, "no 200 for call %s" % self.callid)

    def first_hop(self):
        uri = re.search(r"<sip:([^;>]+)", self.route[0]).group(1)
        host, _, port = uri.rpartition(":")
        return host, int(port)

    def in_dialog(self, method, cseq=None):
        return self.request(method, self.target, ["Route: " + ", ".join(self.route)],
                            to=self.to, cseq=cseq)

    def send_in_dialog(self, method, cseq=None):
        data = self.in_dialog(method, cseq)
        self.sock.sendto(data, self.first_hop())
        return data


def flooder(port, secs, seed, bob_port):
    """New INVITEs from a socket of its own, as fast as it can, for secs: foreign callers to
    carl, whose phone never answers (each admitted one a transaction forwarded and
    retransmitted to him)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    me = sock.getsockname()[1]
    tmpl = ("INVITE sip:carl@127.0.0.1:%d SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKfl%x-%%d\r\n"
            "Max-Forwards: 70\r\nFrom: <sip:f%x@flood.example>;tag=%%d\r\n"
            "To: <sip:carl@127.0.0.1:%d>\r\nCall-ID: %%d-%x@flood\r\nCSeq: 1 INVITE\r\n"
            "Contact: <sip:f@127.0.0.1:%d>\r\nContent-Length: 0\r\n\r\n"
            % (port, me, seed, seed, port, seed, me)).encode()
    dest = ("127.0.0.1", port)
    end = time.time() + secs
    i = 0
    while True:
        for _ in range(200):
            i += 1
            try:
                sock.sendto(tmpl % (i, i, i), dest)
            except OSError:
                pass
        if time.time() > end:
            break
    sock.close()


def drain(sock):
    sock.setblocking(False)
    try:
        while True:
            sock.recv(65535)
    except (BlockingIOError, OSError):
        pass


def run_flood(dport, tmp):
    """Established calls' BYEs during a flood of new INVITEs on the main port: (BYEs that got
    their 200 within 3.5 s, their latencies, the server's log)."""
    port = free_port()
    dp = dport if dport else 0
    s = Server(workers=1, port=port, config=config(tmp, dp), tmp=tmp).start()
    procs = []
    try:
        s.add_user("bob", "bobpw")
        s.add_user("carl", "carlpw")
        bob = Callee(s)
        # carl's phone: a socket that never reads (its INVITEs are never answered)
        carl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        carl.bind(("127.0.0.1", 0))
        c = SipClient(s)
        r = c.register("carl", "carlpw", contact="<sip:carl@127.0.0.1:%d>"
                       % carl.getsockname()[1], expires=600)
        check(r is not None and r.status == 200, "registration of carl: %r" % r)
        c.close()
        calls = []
        for i in range(CALLS):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind(("127.0.0.1", 0))
            call = Call(s, sock)
            call.setup()
            calls.append(call)
        if dport:
            check(all(call.first_hop() == ("127.0.0.1", dport) for call in calls),
                  "the route sets name the dialog port: %r" % calls[0].route)
        ctx = multiprocessing.get_context("fork")
        procs = [ctx.Process(target=flooder, args=(port, FLOOD_SECS, k + 1, bob.port))
                 for k in range(FLOODERS)]
        for p in procs:
            p.start()
        time.sleep(2.0)  # the main socket's buffer fills, the server falls behind
        for call in calls:
            drain(call.sock)
        # each BYE once, then as Timer E would (0.5, 1, 2 s), while the flood goes on
        byes = [call.in_dialog("BYE", cseq=2) for call in calls]
        t0 = time.time()
        done = {}
        next_tx = [t0] * CALLS
        interval = [0.5] * CALLS
        while time.time() < t0 + 3.5 and len(done) < CALLS:
            now = time.time()
            for k, call in enumerate(calls):
                if k in done:
                    continue
                if now >= next_tx[k]:
                    call.sock.sendto(byes[k], call.first_hop())
                    next_tx[k] = now + interval[k]
                    interval[k] *= 2
                call.sock.setblocking(False)
                try:
                    while True:
                        data = call.sock.recv(65535)
                        if data.startswith(b"SIP/2.0 200") and b"BYE" in \
                                hget(data, "cseq")[0].encode():
                            done[k] = time.time() - t0
                except (BlockingIOError, OSError):
                    pass
            time.sleep(0.005)
        flood_alive = all(p.is_alive() for p in procs)
    finally:
        for p in procs:
            p.join(FLOOD_SECS + 5)
            if p.is_alive():
                p.kill()
        try:
            bob.close()
        except NameError:
            pass
        s.stop()
    return len(done), sorted(done.values()), flood_alive, s.log_text()


def test_byes_during_flood():
    tmp = tempfile.mkdtemp(prefix="sbdp-")
    dport = free_port()
    ok, lat, alive, log = run_flood(dport, tmp)
    check(alive, "the flood lasted the whole BYE phase")
    overloaded = "overload:" in log and "refusing" in log
    print("dialog port: %d of %d BYEs got their 200; latencies %s; overload control acted: %s"
          % (ok, CALLS, ["%.3f" % x for x in lat], overloaded))
    check(ok == CALLS, "every BYE gets its 200 during the flood: %d of %d" % (ok, CALLS))
    check(lat[-1] < 0.5, "and at its first transmission: %r" % lat)
    check(overloaded, "the flood overloaded the server (it refused new requests)")


def test_record_route_and_in_dialog_through_dialog_port():
    tmp = tempfile.mkdtemp(prefix="sbdp-")
    dport = free_port()
    s = Server(workers=1, config=config(tmp, dport), tmp=tmp).start()
    try:
        s.add_user("bob", "bobpw")
        bob = Callee(s)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        call = Call(s, sock)
        call.setup()
        check(len(call.route) == 1 and ":%d;" % dport in call.route[0] and ";sb=" in call.route[0],
              "one signed Record-Route naming the dialog port: %r" % call.rr)
        wait_for(lambda: bob.seen.get("ACK") == 1, 3, "the ACK reached bob")
        for method, cseq in (("INFO", 2), ("BYE", 3)):
            call.send_in_dialog(method, cseq=cseq)
            sock.settimeout(3)
            r = Response(sock.recv(65535))
            check(r.status == 200 and method in r.get("CSeq"),
                  "%s through the dialog port: %r" % (method, r))
            check(bob.seen.get(method) == 1, "%s reached bob once" % method)
        sock.close()
        # a caller over TCP: the Record-Route facing it names the TCP address, and the
        # one facing bob (UDP) the dialog port (RFC 5658); its BYE goes over TCP
        tc = SipClient(s, transport="tcp")
        tc.callid = "%x@dp-tcp" % random.getrandbits(64)
        ruri = "sip:bob@%s" % s.host
        r = tc.request("INVITE", ruri, ["Contact: <sip:carol@127.0.0.1:%d;transport=tcp>"
                                        % tc.port], from_="<sip:carol@foreign.example>")
        check(r is not None and r.status == 200, "the TCP call is answered: %r" % r)
        rr = [v.strip() for h in r.all("Record-Route") for v in h.split(",")]
        check(len(rr) == 2 and any(":%d;" % dport in v for v in rr) and
              any(":%d;transport=tcp" % s.port in v for v in rr),
              "double Record-Route, UDP side on the dialog port, TCP side on the TCP port: %r"
              % rr)
        route = list(reversed(rr))
        check("transport=tcp" in route[0], "the TCP caller's next hop is the TCP address")
        target = re.search(r"<([^>]+)>", r.get("Contact")).group(1)
        hdrs = ["Route: " + ", ".join(route)]
        ack = tc.build("ACK", target, hdrs, to=r.get("To"), from_="<sip:carol@foreign.example>")
        tc.send_raw(ack)
        tc.cseq += 1
        r = tc.request("BYE", target, hdrs, to=r.get("To"), from_="<sip:carol@foreign.example>")
        check(r is not None and r.status == 200, "the TCP caller's BYE: %r" % r)
        tc.close()
        bob.close()
    finally:
        s.stop()


def test_calls_survive_restart():
    """Route sets name a port: a call set up with the dialog port off ends through the listen
    port after a restart with it on, and one set up with it on ends after a restart with the
    same dialog port."""
    tmp = tempfile.mkdtemp(prefix="sbdp-")
    port, dport = free_port(), free_port()
    db = os.path.join(tmp, "switchboard.db")
    s = Server(workers=1, port=port, db=db, config=config(tmp, 0), tmp=tmp).start()
    bob = None
    try:
        s.add_user("bob", "bobpw")
        bob = Callee(s)
        socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(2)]
        for sock in socks:
            sock.bind(("127.0.0.1", 0))
        old = Call(s, socks[0])
        old.setup()
        check(old.first_hop() == ("127.0.0.1", port), "off: the listen port is in the route")
        s.stop()
        s = Server(workers=1, port=port, db=db, config=config(tmp, dport), tmp=tmp).start()
        new = Call(s, socks[1])
        new.setup()
        check(new.first_hop() == ("127.0.0.1", dport), "on: the dialog port is in the route")
        s.stop()
        s = Server(workers=1, port=port, db=db, config=config(tmp, dport), tmp=tmp).start()
        for call in (old, new):
            call.send_in_dialog("BYE", cseq=2)
            call.sock.settimeout(3)
            r = Response(call.sock.recv(65535))
            check(r.status == 200 and "BYE" in r.get("CSeq"),
                  "the BYE of a call set up before the restart: %r" % r)
            call.sock.close()
    finally:
        if bob:
            bob.close()
        s.stop()


def test_stranger_on_dialog_port_not_served():
    tmp = tempfile.mkdtemp(prefix="sbdp-")
    dport = free_port()
    s = Server(workers=1, config=config(tmp, dport), tmp=tmp).start()
    try:
        s.add_user("bob", "bobpw")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        me = sock.getsockname()[1]
        sock.settimeout(0.5)
        opts = ("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKdp%d\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:%s>%s\r\n"
                "Call-ID: dp%d@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        strangers = [
            opts % (s.host, me, 1, s.host, "", 1),
            # a To tag and a Route of ours without a valid signature: not in a dialog
            (opts % (s.host, me, 2, s.host, ";tag=x", 2)).replace(
                "Max-Forwards", "Route: <sip:127.0.0.1:%d;lr;sb=0123456789abcdef>\r\n"
                "Max-Forwards" % dport),
            ("INVITE sip:bob@%s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKdpi\r\n"
             "Max-Forwards: 70\r\nFrom: <sip:m@evil.example>;tag=1\r\nTo: <sip:bob@%s>\r\n"
             "Call-ID: dpi@x\r\nCSeq: 1 INVITE\r\nContact: <sip:m@127.0.0.1:%d>\r\n"
             "Content-Length: 0\r\n\r\n") % (s.host, me, s.host, me),
        ]
        for data in strangers:
            sock.sendto(data.encode(), ("127.0.0.1", dport))
            try:
                got = sock.recv(4096)
                check(False, "a stranger's request on the dialog port was served: %r"
                      % got[:60])
            except socket.timeout:
                pass
        # the same OPTIONS on the main port: answered
        sock.sendto((opts % (s.host, me, 9, s.host, "", 9)).encode(), s.addr)
        check(sock.recv(4096).startswith(b"SIP/2.0 200"), "the main port answers")
        sock.close()
    finally:
        s.stop()
    m = re.findall(r"out-of-dialog requests dropped on the dialog port: (\d+)", s.log_text())
    check(m and int(m[-1]) == len(strangers), "the strangers are counted: %r" % m)


def test_config_key_checked():
    tmp = tempfile.mkdtemp(prefix="sbdp-")
    path = os.path.join(tmp, "bad.yaml")
    for value, rc in (("maybe", 3), ("70000", 3), ("auto", 0), ("off", 0), ("0", 0),
                      ("5070", 0)):
        with open(path, "w") as f:
            f.write("udp:\n  dialog_port: %s\n" % value)
        r = subprocess.run([BIN, "check-config", "-c", path], capture_output=True, text=True)
        check(r.returncode == rc, "udp.dialog_port: %s: rc %d: %r" % (value, r.returncode, r))


if __name__ == "__main__":
    main(globals())
