#!/usr/bin/env python3
"""Hostile TCP clients (issue 11, hole 3 and the TCP parts of section 2).

- Clients pipeline requests (OPTIONS to the server, REGISTER answered 401,
  INVITE answered 407 or 480) and never read, until the server's write queue
  for them is full and it gives the connection up; then they reset it
  (SO_LINGER 0) in the middle of the stream. Others send half a message and
  reset. The old server freed the connection from inside its own read loop
  and then parsed and freed it again (use-after-free, double free: the process
  aborted). The server must stay up, serve a normal client afterwards and exit
  cleanly (the harness checks for sanitizer reports under ASan).
- tcp.max_per_source: one address may hold that many connections that never
  carried an authenticated request; one more is closed at once, and the
  refusals are logged once a minute per source, not once per connection. A
  connection that authenticated or carries a registration no longer counts.
- tcp.unauth_idle_timeout: a connection that never authenticated is closed
  after that much silence; an authenticated one or one that carries a
  registration lasts tcp.idle_timeout.

Attackers use source addresses 127.0.0.2-127.0.0.9 (all on the loopback
interface), so the per-source limit does not catch the normal client on
127.0.0.1; every packet goes to the server on 127.0.0.1.
"""
import os
import random
import socket
import struct
import tempfile
import threading
import time

from sbtest import Response, Server, SipClient, check, main
from sbwire import CLOSED, Stream, callid_of, options_bytes, tcp_ping

DOMAIN = "127.0.0.1"


def config_file(text):
    fd, path = tempfile.mkstemp(prefix="sbattack-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def connect_from(server, src_ip, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        # a small receive window: the server's replies pile up in its own queue sooner
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.bind((src_ip, 0))
    s.settimeout(10)
    s.connect(server.addr)
    return s


def reset(sock):
    """Close with SO_LINGER 0: the peer gets a RST, whatever is still queued."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def vias(n):
    return ["Via: SIP/2.0/UDP 192.0.2.%d:5060;branch=z9hG4bKpad%x.%d" % (i % 250 + 1,
                                                                         random.getrandbits(40), i)
            for i in range(n)]


def request(server, sock, method, ruri, extra=(), nvias=40, body=b""):
    """A request with many Vias: the answer repeats them, so each answer is several KB."""
    port = sock.getsockname()[1]
    ip = sock.getsockname()[0]
    to = "<%s>" % ruri if method != "REGISTER" else "<sip:alice@%s>" % DOMAIN
    lines = ["%s %s SIP/2.0" % (method, ruri),
             "Via: SIP/2.0/TCP %s:%d;branch=z9hG4bK%x;rport" % (ip, port, random.getrandbits(48))]
    lines += vias(nvias)
    lines += ["Max-Forwards: 70",
              "From: <sip:mallory@%s>;tag=%x" % (DOMAIN, random.getrandbits(32)),
              "To: %s" % to,
              "Call-ID: atk-%x" % random.getrandbits(64),
              "CSeq: 1 %s" % method,
              "Contact: <sip:mallory@%s:%d;transport=tcp>" % (ip, port)]
    lines += list(extra)
    lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def pipeline_batch(server, sock):
    """One batch of requests that all get answers, in one write."""
    host = server.host
    out = []
    for i in range(16):
        kind = i % 4
        if kind == 0:
            out.append(request(server, sock, "REGISTER", "sip:%s" % host))
        elif kind == 1:
            # a local user who is not registered: challenged (From is local), else 480
            out.append(request(server, sock, "INVITE", "sip:bob@%s" % DOMAIN))
        else:
            out.append(request(server, sock, "OPTIONS", "sip:%s" % host))
    return b"".join(out)


class Flooder(threading.Thread):
    """Pipelines requests without ever reading until the server gives the connection up
    (a send fails) or `budget` bytes went out; then resets the connection."""

    def __init__(self, server, src_ip, budget, reset_after=None):
        super().__init__(daemon=True)
        self.server = server
        self.src_ip = src_ip
        self.budget = budget
        self.reset_after = reset_after
        self.sent = 0
        self.refused = False  # the server closed or reset the connection under us
        self.error = None

    def run(self):
        try:
            sock = connect_from(self.server, self.src_ip, rcvbuf=4096)
        except OSError as e:
            self.error = "connect: %s" % e
            return
        try:
            batch = pipeline_batch(self.server, sock)
            while self.sent < self.budget:
                if self.reset_after is not None and self.sent >= self.reset_after:
                    break
                try:
                    sock.sendall(batch)
                except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
                    self.refused = True
                    break
                self.sent += len(batch)
        finally:
            reset(sock)


class Partial(threading.Thread):
    """Complete requests, then half of one (head or body cut), then a reset."""

    def __init__(self, server, src_ip, rounds):
        super().__init__(daemon=True)
        self.server = server
        self.src_ip = src_ip
        self.rounds = rounds

    def run(self):
        for i in range(self.rounds):
            try:
                sock = connect_from(self.server, self.src_ip)
            except OSError:
                continue
            try:
                full = request(self.server, sock, "OPTIONS", "sip:%s" % self.server.host,
                               nvias=random.randint(0, 30))
                half = request(self.server, sock, "MESSAGE", "sip:bob@%s" % DOMAIN,
                               extra=["Content-Type: text/plain"], nvias=3, body=b"x" * 400)
                cut = random.randint(1, len(half) - 1)
                sock.sendall(full * random.randint(0, 20) + half[:cut])
                if i % 3 == 0:
                    time.sleep(0.01)
            except OSError:
                pass
            finally:
                reset(sock)


def normal_client_works(server, what):
    check(server.proc.poll() is None, "server died after %s: %s" % (what, server.log_tail(30)))
    check(tcp_ping(server, timeout=5), "server does not answer OPTIONS over TCP after " + what)
    check(server.ping(timeout=2), "server does not answer OPTIONS over UDP after " + what)
    c = SipClient(server, transport="tcp")
    try:
        r = c.register("alice", "alicepw", expires=60)
        check(r is not None and r.status == 200, "REGISTER over TCP after %s: %r" % (what, r))
    finally:
        c.close()


def run_attack(workers):
    # default TCP limits: no source below holds more than 64 connections at a time; the flood
    # protection is out of reach (it would stop answering these sources, so their write
    # queues would never fill, which is what this test is about)
    cfg = config_file("flood:\n  unauth_limit: 10000000\n")
    s = Server(workers=workers, config=cfg)
    s.add_user("alice", "alicepw")
    s.add_user("bob", "bobpw")
    with s:
        flooders = [Flooder(s, "127.0.0.%d" % (2 + i % 4), budget=64 << 20) for i in range(6)]
        # these reset in the middle of the stream while the server is still writing to them
        flooders += [Flooder(s, "127.0.0.%d" % (6 + i % 2), budget=64 << 20,
                             reset_after=random.randint(1, 40) * 60000) for i in range(6)]
        partials = [Partial(s, "127.0.0.8", 30), Partial(s, "127.0.0.9", 30)]
        for t in flooders + partials:
            t.start()
        for t in flooders + partials:
            t.join(120)
            check(not t.is_alive(), "an attacking client is stuck")
        for f in flooders[:6]:
            check(f.error is None, f.error or "")
            check(f.refused, "a client that never reads sent %d bytes and the server never "
                  "gave its connection up" % f.sent)
        normal_client_works(s, "clients that never read and reset")
        log = s.log_text()
        check("write queue" in log, "no connection was closed for its full write queue")
    os.unlink(cfg)


def test_pipelining_clients_that_never_read_then_reset():
    """Twelve clients pipeline without reading until the write queue limit, six of them reset
    mid-stream, two keep sending partial messages and resetting: the server stays up."""
    run_attack(workers=1)


def test_pipelining_attack_two_workers():
    """The same with two workers (connections spread over both, replies posted across)."""
    run_attack(workers=2)


# ------------------------------------------------ per-source limit and unauthenticated idle timeout

def client_from(server, src_ip):
    """A SipClient over TCP whose connection comes from src_ip."""
    orig = socket.create_connection
    socket.create_connection = lambda addr, timeout=None: orig(addr, timeout=timeout,
                                                               source_address=(src_ip, 0))
    try:
        return SipClient(server, transport="tcp")
    finally:
        socket.create_connection = orig


def stream_from(server, src_ip):
    st = Stream.__new__(Stream)
    st.sock = connect_from(server, src_ip)
    st.sock.settimeout(5)
    st.local = st.sock.getsockname()
    st.port = st.local[1]
    st.buf = b""
    st.eof = False
    return st


def ping_on(st, server):
    """200 when an OPTIONS on the connection is answered, CLOSED when it was closed."""
    data, cid = options_bytes(server.host, st.local[0], st.port, "TCP")
    try:
        st.send(data)
    except OSError:
        return CLOSED
    r = st.recv_msg(3)
    return r if r in (None, CLOSED) else (r.status if callid_of(r) == cid else r)


def client_ping(c, server):
    c.cseq += 1
    try:
        r = c.request("OPTIONS", "sip:%s" % server.host, timeout=3)
    except (OSError, ConnectionError):
        return CLOSED
    return r.status if r is not None else None


def authenticated_invite(c, user, password, callee):
    """An INVITE that authenticates (407, then credentials); the final answer's status."""
    ruri = "sip:%s@%s" % (callee, DOMAIN)
    frm = "<sip:%s@%s>" % (user, DOMAIN)
    c.cseq += 1
    r = c.request("INVITE", ruri, from_=frm, timeout=3)
    check(r is not None and r.status == 407, "INVITE without credentials: %r" % r)
    auth = c.auth_header(r, user, password, "INVITE", ruri, proxy=True)
    c.cseq += 1
    r = c.request("INVITE", ruri, [auth], from_=frm, timeout=5)
    check(r is not None, "no answer to the authenticated INVITE")
    check(r.status not in (401, 407, 403), "authenticated INVITE refused: %r" % r)
    return r.status


def refused_log_lines(server, ip):
    return [l for l in server.log_text().splitlines()
            if "max_per_source" in l and (" %s holds" % ip) in l]


def test_per_source_connection_limit():
    """tcp.max_per_source 4: a fifth unauthenticated connection from one address is closed at
    once (logged once, however many are refused); another address is not affected; a
    connection that registers or authenticates an INVITE stops counting."""
    cfg = config_file("tcp:\n  max_per_source: 4\n")
    s = Server(workers=2, config=cfg)
    s.add_user("alice", "alicepw")
    s.add_user("bob", "bobpw")
    with s:
        ip = "127.0.0.2"
        held = [stream_from(s, ip) for _ in range(2)]
        reg = client_from(s, ip)
        inv = client_from(s, ip)
        for i, st in enumerate(held):
            check(ping_on(st, s) == 200, "connection %d of 4 does not work" % (i + 1))
        check(client_ping(reg, s) == 200 and client_ping(inv, s) == 200, "connections 3, 4")
        for i in range(20):
            extra = stream_from(s, ip)
            r = ping_on(extra, s)
            extra.close()
            check(r == CLOSED, "connection %d over the limit was served: %r" % (5 + i, r))
        other = stream_from(s, "127.0.0.3")
        check(ping_on(other, s) == 200, "another source address was refused")
        check(tcp_ping(s), "127.0.0.1 was refused")
        lines = refused_log_lines(s, ip)
        check(len(lines) == 1, "refusals logged %d times: %s" % (len(lines), lines[:3]))
        check("20 new connections refused" in lines[0] or "1 new connection refused" in lines[0],
              lines[0])

        # a registration: that connection no longer counts, so one more is let in
        r = reg.register("alice", "alicepw", expires=120)
        check(r is not None and r.status == 200, "REGISTER: %r" % r)
        fifth = stream_from(s, ip)
        check(ping_on(fifth, s) == 200, "a registered connection still counts against the limit")
        extra = stream_from(s, ip)
        check(ping_on(extra, s) == CLOSED, "the limit is gone after one registration")
        extra.close()

        # an authenticated INVITE (bob is not registered: no answer is a 2xx)
        authenticated_invite(inv, "alice", "alicepw", "bob")
        sixth = stream_from(s, ip)
        check(ping_on(sixth, s) == 200, "an authenticated connection still counts")
        extra = stream_from(s, ip)
        check(ping_on(extra, s) == CLOSED, "the limit is gone after one authentication")
        extra.close()

        # a closed unauthenticated connection gives its place back
        held.pop().close()
        deadline = time.time() + 3
        while True:
            st = stream_from(s, ip)
            if ping_on(st, s) == 200:
                held.append(st)
                break
            st.close()
            check(time.time() < deadline, "a closed connection's place is never given back")
            time.sleep(0.1)
        check(len(refused_log_lines(s, ip)) == 1, "refusals logged more than once a minute")
        for st in held + [fifth, sixth, other]:
            st.close()
        reg.close()
        inv.close()
    os.unlink(cfg)


def test_unauthenticated_idle_timeout():
    """tcp.unauth_idle_timeout 2, tcp.idle_timeout 60: a connection that only carried an
    unauthenticated OPTIONS is closed after about 2 s of silence; one that registered and one
    that carried an authenticated INVITE stay open."""
    cfg = config_file("tcp:\n  idle_timeout: 60\n  unauth_idle_timeout: 2\n")
    s = Server(workers=2, config=cfg)
    s.add_user("alice", "alicepw")
    s.add_user("bob", "bobpw")
    with s:
        idle = stream_from(s, "127.0.0.1")
        check(ping_on(idle, s) == 200, "ping")
        t0 = time.time()
        reg = client_from(s, "127.0.0.1")
        r = reg.register("alice", "alicepw", expires=120)
        check(r is not None and r.status == 200, "REGISTER: %r" % r)
        inv = client_from(s, "127.0.0.1")
        authenticated_invite(inv, "alice", "alicepw", "bob")
        check(idle.wait_closed(6), "an unauthenticated connection is still open after 6 s")
        closed_at = time.time() - t0
        check(1.5 <= closed_at <= 4.5, "unauthenticated connection closed after %.1f s"
              % closed_at)
        time.sleep(max(0.0, 4.5 - (time.time() - t0)))
        check(client_ping(reg, s) == 200, "the registered connection was closed when idle")
        check(client_ping(inv, s) == 200, "the authenticated connection was closed when idle")
        check("idle, and never authenticated" in s.log_text(), "close reason not logged")
        idle.close()
        reg.close()
        inv.close()
    os.unlink(cfg)


if __name__ == "__main__":
    main(globals())
