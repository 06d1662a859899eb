#!/usr/bin/env python3
"""Robustness: garbage and oversized input, many TCP connections, the connection limit
and idle timeout, a lost TCP connection, the relaying policy, subscriber changes under
traffic, and IPv6.

Users are provisioned before the server starts: a CLI write while it runs
flushes its subscriber cache, which races with lookups in flight
(test_subscriber_changes_during_traffic).

Garbage must never crash the server or make it leak: every test ends with the
harness's clean-stop check (exit code 0, no sanitizer report), and the server
must still answer OPTIONS after each kind of abuse. Where a malformed request
can be answered (its Via, Call-ID and CSeq are readable) the answer is 400
(RFC 3261 16.3 step 1: a proxy "MUST behave as a user agent server and
respond with an error code").

The PROTOS c07-sip suite is not run here (its jar is not in the repository):
see tests/integration/protos.sh.
"""
import os
import random
import socket
import tempfile
import time

from sbtest import Response, Server, SipClient, TestFailure, check, main
from sbwire import CLOSED, Stream, callid_of, fd_count, options_bytes, reg_list, tcp_ping

SEED = int(os.environ.get("SB_SEED", "4475"))


def udp_sock(family=socket.AF_INET, host="127.0.0.1"):
    u = socket.socket(family, socket.SOCK_DGRAM)
    u.bind((host, 0))
    return u


def request(port, via_port, method="OPTIONS", ruri=None, headers=(), vias=1, body=b"",
            clen=None, callid=None, cseq="1", transport="UDP", first=()):
    """A request to the server itself (answered 200 when well formed) as bytes."""
    ruri = ruri or "sip:127.0.0.1:%d" % port
    lines = ["%s %s SIP/2.0" % (method, ruri)] + list(first)
    lines.append("Via: SIP/2.0/%s 127.0.0.1:%d;branch=z9hG4bK%x;rport"
                 % (transport, via_port, random.getrandbits(48)))
    lines += ["Via: SIP/2.0/UDP 192.0.2.%d:5060;branch=z9hG4bKold%d" % (i % 250 + 1, i)
              for i in range(vias - 1)]
    lines += ["Max-Forwards: 70", "From: <sip:robust@example.org>;tag=%x" % random.getrandbits(32),
              "To: <%s>" % ruri, "Call-ID: %s" % (callid or "rb-%x" % random.getrandbits(48)),
              "CSeq: %s %s" % (cseq, method)]
    lines += list(headers)
    lines.append("Content-Length: %s" % (len(body) if clen is None else clen))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin1") + body


def udp_ask(server, data, timeout=1.0, sock=None):
    """Sends one datagram; the reply as a Response, or None."""
    u = sock or udp_sock()
    try:
        u.settimeout(timeout)
        u.sendto(data, server.addr)
        try:
            return Response(u.recv(65536))
        except socket.timeout:
            return None
    finally:
        if sock is None:
            u.close()


def alive(server, what):
    check(server.proc.poll() is None, "server died after %s: %s" % (what, server.log_tail(20)))
    check(server.ping(timeout=1.0), "server does not answer OPTIONS over UDP after " + what)
    check(tcp_ping(server), "server does not answer OPTIONS over TCP after " + what)


def expect_udp(server, statuses, what, drop_ok=False, **kw):
    """request(**kw) from a fresh socket named in its Via; the answer must be in statuses."""
    u = udp_sock()
    data = request(server.port, u.getsockname()[1], **kw)
    r = udp_ask(server, data, sock=u)
    u.close()
    if r is None:
        time.sleep(0.2)
        check(server.proc.poll() is None, "%s: the server died (exit %s): %s"
              % (what, server.proc.returncode, server.log_tail(3)))
        check(drop_ok, "%s: no answer, expected %s" % (what, sorted(statuses)))
    else:
        check(r.status in statuses, "%s: expected %s%s, got %r"
              % (what, sorted(statuses), " or nothing" if drop_ok else "", r))
    alive(server, what)
    return r


# ------------------------------------------------------------------------------------ garbage

def test_random_bytes():
    """1,000 datagrams and 50 TCP streams of random bytes, some starting like SIP."""
    rnd = random.Random(SEED)
    prefixes = [b"", b"INVITE sip:a@127.0.0.1 SIP/2.0\r\n", b"SIP/2.0 200 OK\r\n",
                b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1\r\n", b"\r\n\r\n"]
    with Server() as s:
        fd0 = fd_count(s.proc.pid)
        u = udp_sock()
        for i in range(1000):
            n = rnd.choice([1, 2, 3, 4, 10, 100, 1000, 1500, rnd.randint(1, 9000)])
            data = rnd.choice(prefixes) + bytes(rnd.getrandbits(8) for _ in range(n))
            u.sendto(data, s.addr)
            if i % 100 == 99:
                alive(s, "%d random datagrams" % (i + 1))
        u.close()
        for i in range(50):
            st = Stream(s.addr)
            data = rnd.choice(prefixes) + bytes(rnd.getrandbits(8)
                                                for _ in range(rnd.randint(1, 20000)))
            try:
                st.send(data)
            except OSError:
                pass
            st.close()
        alive(s, "random TCP streams")
        deadline = time.time() + 5
        while fd_count(s.proc.pid) > fd0 + 2 and time.time() < deadline:
            time.sleep(0.1)
        check(fd_count(s.proc.pid) <= fd0 + 2, "file descriptors grew from %d to %d"
              % (fd0, fd_count(s.proc.pid)))


def test_truncated_messages():
    """Every prefix of a valid INVITE (with body) as a datagram: a 400 when the prefix holds
    Via, Call-ID and CSeq (the body is shorter than its Content-Length), never a crash; and
    every 37th prefix over TCP followed by a close."""
    srv = Server(domains=["example.com"])
    srv.add_user("bob", "pw", domain="example.com")
    with srv as s:
        u = udp_sock()
        port = u.getsockname()[1]
        body = (b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
                b"m=audio 4000 RTP/AVP 0\r\n")
        full = request(s.port, port, "INVITE", "sip:bob@example.com", body=body,
                       headers=["Content-Type: application/sdp",
                                "Contact: <sip:robust@127.0.0.1:%d>" % port])
        u.settimeout(0.02)
        answered = 0
        for n in range(1, len(full)):
            u.sendto(full[:n], s.addr)
            try:
                while True:
                    r = Response(u.recv(65536))
                    answered += 1
                    check(r.status in (400, 480, 100), "prefix of %d bytes: %r" % (n, r))
            except socket.timeout:
                pass
        u.close()
        check(answered > 0, "no prefix was answered at all")
        alive(s, "truncated datagrams")
        for n in range(1, len(full), 37):
            st = Stream(s.addr)
            st.send(full[:n])
            st.close()
        alive(s, "truncated TCP messages")


def test_oversized_datagram():
    """A 70,000-byte datagram cannot be sent (UDP carries at most 65,507 bytes over IPv4); the
    largest one that can, a valid OPTIONS padded to 65,507 bytes, is answered or dropped."""
    with Server() as s:
        u = udp_sock()
        try:
            u.sendto(b"x" * 70000, s.addr)
            raise TestFailure("the kernel sent a 70,000-byte UDP datagram")
        except OSError:
            pass
        port = u.getsockname()[1]
        head = request(s.port, port, headers=["X-Pad: #"])
        data = head.replace(b"X-Pad: #", b"X-Pad: " + b"a" * (65507 - len(head) + 1))
        check(len(data) == 65507, "padding: %d" % len(data))
        u.settimeout(2)
        u.sendto(data, s.addr)
        try:
            r = Response(u.recv(65536))
            check(r.status in (200, 513), "65,507-byte OPTIONS: %r" % r)
        except socket.timeout:
            pass
        u.close()
        alive(s, "a 65,507-byte datagram")


def test_oversized_tcp_message():
    """70,000 bytes of message over TCP (its Content-Length says so): larger than any message
    the server takes; the connection is closed, after a 400 or 513 at most; the server lives."""
    with Server() as s:
        st = Stream(s.addr)
        body = b"a" * 69000
        data = request(s.port, st.port, "MESSAGE", body=body, transport="TCP",
                       headers=["Content-Type: text/plain"])
        check(len(data) > 70000 - 1000, "size")
        try:
            st.send(data)
        except OSError:
            pass
        r = st.recv_msg(5)
        if r not in (None, CLOSED):
            check(r.status in (400, 513), "oversized message answered %r" % r)
            r = st.recv_msg(5)
        check(r == CLOSED, "connection not closed after an oversized message")
        st.close()
        alive(s, "a 70,000-byte TCP message")


def test_megabyte_without_blank_line():
    """1 MB over TCP with no empty line: the connection is closed, the server lives."""
    with Server() as s:
        st = Stream(s.addr)
        chunk = b"X-Junk: " + b"j" * 1000 + b"\r\n"
        sent = 0
        closed_early = False
        st.send(b"OPTIONS sip:127.0.0.1 SIP/2.0\r\n")
        while sent < 1024 * 1024:
            try:
                st.send(chunk)
            except OSError:
                closed_early = True  # the server gave up first: fine
                break
            sent += len(chunk)
        check(closed_early or st.wait_closed(5), "connection still open after 1 MB of headers")
        check(st.recv_msg(0) in (None, CLOSED), "something was answered")
        st.close()
        alive(s, "1 MB without a blank line")


def test_two_thousand_headers():
    """2,000 header lines: 400, 513 or dropped, over UDP and TCP; never a crash."""
    with Server() as s:
        hdrs = ["X-H%d: v" % i for i in range(2000)]
        expect_udp(s, {400, 513}, "2,000 headers over UDP", drop_ok=True, headers=hdrs)
        st = Stream(s.addr)
        st.send(request(s.port, st.port, headers=hdrs, transport="TCP"))
        r = st.recv_msg(3)
        check(r in (None, CLOSED) or r.status in (400, 513), "2,000 headers over TCP: %r" % (r,))
        st.close()
        alive(s, "2,000 headers over TCP")


def test_hundred_vias():
    """100 Via headers: answered 200 with all 100 Vias, in order."""
    with Server() as s:
        u = udp_sock()
        data = request(s.port, u.getsockname()[1], vias=100)
        r = udp_ask(s, data, sock=u)
        u.close()
        check(r is not None and r.status == 200, "OPTIONS with 100 Vias: %r" % (r,))
        vias = r.all("Via")
        check(len(vias) == 100, "%d Vias in the answer" % len(vias))
        check(all("z9hG4bKold%d" % i in vias[i + 1] for i in range(99)), "Vias out of order")
        alive(s, "100 Vias")


def test_nul_bytes_in_header_values():
    """NUL octets in header values (Subject, User-Agent, an unknown header, the Call-ID, a
    quoted display name): answered (200 or 400), never a crash; a NUL in the Call-ID comes
    back unchanged (RFC 3261 8.2.6.2: the response copies it)."""
    with Server() as s:
        for hdrs in (["Subject: a\x00b"], ["User-Agent: \x00\x00\x00"], ["X-Nul: \x00"],
                     ["Contact: \"a\x00b\" <sip:x@127.0.0.1>"]):
            expect_udp(s, {200, 400}, "NUL in %r" % hdrs[0].split(":")[0], headers=hdrs)
        r = expect_udp(s, {200, 400}, "NUL in the Call-ID", callid="nul\x00id")
        if r.status == 200:
            check(b"Call-ID: nul\x00id\r\n" in r.raw, "Call-ID not copied as it came")


def test_escaped_nul_in_request_uri_user():
    """An OPTIONS to sip:a%00b@example.com (a user of a served domain, not registered): the
    user part is 'a<NUL>b' (RFC 4475 3.1.1.4: never truncate at the escaped NUL); no such
    user, so 404 (RFC 3261 21.4.5)."""
    srv = Server(domains=["example.com"])
    srv.add_user("a", "pw", domain="example.com")  # the user a truncated lookup would find
    with srv as s:
        for user in ("a%00b", "a%00", "%00"):
            expect_udp(s, {404}, "OPTIONS sip:%s@example.com" % user,
                       ruri="sip:%s@example.com" % user)


def test_header_line_without_colon():
    """A header line without a colon: 400, wherever it is in the header section (the Via,
    Call-ID and CSeq are there to address the answer with)."""
    with Server() as s:
        expect_udp(s, {400}, "a bad line after the Via", headers=["This line has no colon"])
        expect_udp(s, {400}, "a bad line before the Via", first=["This line has no colon"])


def test_huge_content_length_udp():
    with Server() as s:
        expect_udp(s, {400}, "Content-Length: 99999999", clen="99999999")


def test_cseq_overflow():
    with Server() as s:
        expect_udp(s, {400}, "CSeq 4294967296", cseq="4294967296")
        expect_udp(s, {200}, "CSeq 4294967295 (2**32-1, the largest allowed)", cseq="4294967295")


# ------------------------------------------------------------------------------ TCP handling

def test_two_hundred_connections():
    """200 TCP connections at once, each answering an OPTIONS; after they close, the server's
    file descriptors are back where they were. (All come from 127.0.0.1 and none
    authenticates: tcp.max_per_source is raised above 200 for this test.)"""
    cfg = config_file("tcp:\n  max_per_source: 256\n")
    with Server(config=cfg) as s:
        fd0 = fd_count(s.proc.pid)
        conns = [Stream(s.addr) for _ in range(200)]
        for i, st in enumerate(conns):
            data, cid = options_bytes(s.host, "127.0.0.1", st.port, "TCP")
            st.send(data)
        for i, st in enumerate(conns):
            r = st.recv_msg(5)
            check(r not in (None, CLOSED) and r.status == 200, "connection %d: %r" % (i, r))
        check(fd_count(s.proc.pid) >= fd0 + 200, "the server does not hold the 200 connections")
        alive(s, "200 connections")
        for st in conns:
            st.close()
        deadline = time.time() + 5
        while fd_count(s.proc.pid) > fd0 + 2 and time.time() < deadline:
            time.sleep(0.1)
        check(fd_count(s.proc.pid) <= fd0 + 2, "file descriptors: %d before, %d after"
              % (fd0, fd_count(s.proc.pid)))
    os.unlink(cfg)


def config_file(text):
    fd, path = tempfile.mkstemp(prefix="sbrobust-", suffix=".yaml")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


def ping_on(st, s):
    data, cid = options_bytes(s.host, "127.0.0.1", st.port, "TCP")
    try:
        st.send(data)
    except OSError:
        return CLOSED
    r = st.recv_msg(3)
    return r if r in (None, CLOSED) else (r.status if callid_of(r) == cid else r)


def test_connection_limit():
    """tcp.max_connections 50: the 51st connection is closed at once, the 50 keep working, and
    a slot freed by a close can be used again."""
    cfg = config_file("tcp:\n  max_connections: 50\n")
    with Server(config=cfg) as s:
        conns = [Stream(s.addr) for _ in range(50)]
        for i, st in enumerate(conns):
            check(ping_on(st, s) == 200, "connection %d of 50 does not work" % (i + 1))
        extra = Stream(s.addr)  # the kernel accepts it; the server must close it
        r = ping_on(extra, s)
        check(r == CLOSED, "the 51st connection was served: %r" % (r,))
        extra.close()
        for i, st in enumerate(conns):
            check(ping_on(st, s) == 200, "connection %d stopped working" % (i + 1))
        check(s.ping(), "UDP stopped working at the connection limit")
        conns.pop().close()
        deadline = time.time() + 3
        while True:
            st = Stream(s.addr)
            r = ping_on(st, s)
            if r == 200:
                conns.append(st)
                break
            st.close()
            check(time.time() < deadline, "a closed connection's slot is never freed")
            time.sleep(0.2)
        for st in conns:
            st.close()
    os.unlink(cfg)


def test_idle_timeout():
    """tcp.idle_timeout 2: an idle connection is closed after about 2 s (the check runs once a
    second), one with traffic stays open."""
    cfg = config_file("tcp:\n  idle_timeout: 2\n")
    with Server(config=cfg) as s:
        idle, busy = Stream(s.addr), Stream(s.addr)
        check(ping_on(idle, s) == 200 and ping_on(busy, s) == 200, "pings")
        t0 = time.time()
        closed_at = None
        while time.time() - t0 < 6:
            if closed_at is None and idle.wait_closed(0.05):
                closed_at = time.time() - t0
            if int((time.time() - t0) * 2) % 2 == 0:
                check(ping_on(busy, s) == 200, "a connection with traffic was closed after "
                      "%.1f s" % (time.time() - t0))
            time.sleep(0.2)
        check(closed_at is not None, "idle connection still open after 6 s")
        check(1.5 <= closed_at <= 4.0, "idle connection closed after %.1f s" % closed_at)
        idle.close()
        busy.close()
    os.unlink(cfg)


def test_tcp_reply_after_connection_lost():
    """RFC 3261 18.2.2: when the connection a request came on is gone before the response, the
    server SHOULD open a new one to the received address and the sent-by port. The INVITE
    below waits for the subscriber database (an uncached user), and the garbage after it makes
    the server close the connection at once; the 404 must then arrive at the Via's port."""
    with Server(domains=["example.com"]) as s:
        lsn = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsn.bind(("127.0.0.1", 0))
        lsn.listen(4)
        lsn.settimeout(5)
        sent_by = lsn.getsockname()[1]
        st = Stream(s.addr)
        data = request(s.port, sent_by, "INVITE", "sip:nobody@example.com", transport="TCP",
                       headers=["Contact: <sip:robust@127.0.0.1:%d;transport=tcp>" % sent_by])
        st.send(data + b"garbage\r\n\r\n")
        check(st.wait_closed(3), "the garbage did not close the connection")
        early = st.recv_msg(0)
        st.close()
        if early not in (None, CLOSED):
            return  # answered before the close: nothing to check
        try:
            c, _ = lsn.accept()
        except socket.timeout:
            raise TestFailure("the 404 was not sent over a new connection to the sent-by port "
                              "(log: %s)" % [l for l in s.log_tail(10).splitlines()
                                             if "404" in l or "connection" in l])
        c.settimeout(3)
        got = b""
        try:
            while b"\r\n\r\n" not in got:
                chunk = c.recv(65536)
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            pass
        c.close()
        lsn.close()
        check(got.startswith(b"SIP/2.0 404"), "new connection carried %r" % got[:60])


def test_no_relay_through_a_route_header():
    """Between two foreign domains the server is no relay ("403 for relaying between two
    foreign domains", README): a Route header naming a third host must not get such a request,
    out of any dialog and unauthenticated, forwarded there."""
    with Server(domains=["example.com"]) as s:
        sink = udp_sock()
        sink.settimeout(1.5)
        for method in ("MESSAGE", "INVITE", "OPTIONS"):
            route = "Route: <sip:127.0.0.1:%d;lr>" % sink.getsockname()[1]
            r = expect_udp(s, {403}, "%s from and to example.org (not served) with a %s"
                           % (method, route), method=method, ruri="sip:victim@example.org",
                           headers=[route], drop_ok=True)
            try:
                got = sink.recv(65536)
                raise TestFailure("%s relayed to the Route's host: %r"
                                  % (method, got.split(b"\r\n")[0]))
            except socket.timeout:
                pass
            check(r is not None, "%s: no answer" % method)
        sink.close()


def test_subscriber_changes_during_traffic():
    """Users added with the CLI while requests for users that are not in the cache arrive:
    every request still gets the answer for its user (404 here, RFC 3261 21.4.5), none the
    480 (or 503) of a lookup whose answer was flushed before the request was handled again.
    Bursts of 200 OPTIONS, each to another unknown user, queue the re-deliveries behind the
    other work, which is when a flush (after each CLI write) can get in between."""
    import threading
    cfg = os.path.join(tempfile.mkdtemp(), "sb.yaml")
    with open(cfg, "w") as f:
        # 2,000 requests without credentials from one address in two seconds are a flood to
        # the per-source protection's defaults; this test is about the cache
        f.write("flood:\n  unauth_limit: 100000\n")
    with Server(domains=["example.com"], config=cfg) as s:
        stop = threading.Event()

        def churn():
            i = 0
            while not stop.is_set():
                from sbtest import cli
                cli("user", "add", "churn%d@example.com" % i, "--password", "x", db=s.db)
                i += 1
        t = threading.Thread(target=churn, daemon=True)
        t.start()
        u = udp_sock()
        u.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        port = u.getsockname()[1]
        counts = {}
        n = 0
        try:
            for burst in range(10):
                for i in range(200):
                    n += 1
                    u.sendto(request(s.port, port, ruri="sip:nobody%d@example.com" % n), s.addr)
                u.settimeout(3)
                for i in range(200):
                    try:
                        r = Response(u.recv(65536))
                    except socket.timeout:
                        counts["none"] = counts.get("none", 0) + 200 - i
                        break
                    counts[r.status] = counts.get(r.status, 0) + 1
                time.sleep(0.05)
        finally:
            stop.set()
            t.join(10)
            u.close()
        check(counts == {404: 2000}, "answers to 2,000 requests for unknown users: %r" % counts)


# -------------------------------------------------------------------------------------- IPv6

def have_ipv6_loopback():
    try:
        t = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        t.bind(("::1", 0))
        t.close()
        return True
    except OSError:
        return False


def test_ipv6():
    """Listening on [::1] (UDP and TCP) besides 127.0.0.1: OPTIONS over both; a REGISTER over
    UDP with an IPv6 contact (RFC 5118 style, <sip:alice@[::1]:PORT>); a request to alice is
    delivered to that contact over IPv6 and its answer comes back."""
    check(have_ipv6_loopback(), "no IPv6 loopback on this machine")
    from sbtest import free_port
    while True:
        port = free_port()  # free on 127.0.0.1; must be on [::1] too, for UDP and TCP
        try:
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                t = socket.socket(socket.AF_INET6, kind)
                try:
                    t.bind(("::1", port))
                finally:
                    t.close()
            break
        except OSError:
            continue
    srv = Server(port=port, domains=["example.com"],
                 extra=["--listen", "udp:[::1]:%d" % port, "--listen", "tcp:[::1]:%d" % port])
    srv.add_user("alice", "alicepw", domain="example.com")  # before the start (module docstring)
    with srv as s:
        v6 = ("::1", port)
        # OPTIONS over UDP/IPv6
        u = udp_sock(socket.AF_INET6, "::1")
        up = u.getsockname()[1]
        data, cid = options_bytes("[::1]:%d" % port, "[::1]", up, "UDP")
        u.settimeout(2)
        u.sendto(data, v6)
        r = Response(u.recv(65536))
        check(r.status == 200 and callid_of(r) == cid, "OPTIONS over UDP/IPv6: %r" % r)
        check("received=" not in r.get("Via") or "[::1]" in r.get("Via"), "Via %s" % r.get("Via"))
        # OPTIONS over TCP/IPv6
        st = Stream(v6, family=socket.AF_INET6)
        data, cid = options_bytes("[::1]:%d" % port, "[::1]", st.port, "TCP")
        st.send(data)
        r = st.recv_msg(3)
        st.close()
        check(r not in (None, CLOSED) and r.status == 200, "OPTIONS over TCP/IPv6: %r" % (r,))
        # REGISTER over UDP/IPv6 with an IPv6 contact: the UA is the IPv6 socket u
        contact = "<sip:alice@[::1]:%d>" % up

        def reg(extra=()):
            lines = ["REGISTER sip:example.com SIP/2.0",
                     "Via: SIP/2.0/UDP [::1]:%d;branch=z9hG4bK%x;rport" % (up,
                                                                          random.getrandbits(48)),
                     "Max-Forwards: 70", "From: <sip:alice@example.com>;tag=6a",
                     "To: <sip:alice@example.com>", "Call-ID: v6reg@[::1]",
                     "CSeq: %d REGISTER" % reg.cseq, "Contact: " + contact, "Expires: 600"]
            lines += list(extra) + ["Content-Length: 0", "", ""]
            reg.cseq += 1
            u.sendto("\r\n".join(lines).encode(), v6)
            return Response(u.recv(65536))
        reg.cseq = 1
        r = reg()
        check(r.status == 401, "REGISTER over IPv6: %r" % r)
        helper = SipClient(s)
        auth = helper.auth_header(r, "alice", "alicepw", "REGISTER", "sip:example.com")
        helper.close()
        r = reg([auth])
        check(r.status == 200, "authenticated REGISTER over IPv6: %r" % r)
        check(any("[::1]:%d" % up in c for c in r.all("Contact")), "200 Contact %r" % r.all("Contact"))
        rows = reg_list(s, "alice@example.com", want=lambda rows: len(rows) > 0)
        check([x[0] for x in rows] == ["sip:alice@[::1]:%d" % up], "reg list: %r" % rows)
        # a request for alice, from an IPv4 caller, reaches the IPv6 contact
        caller = SipClient(s)
        caller.sock.settimeout(5)
        req = caller.build("MESSAGE", "sip:alice@example.com", ["Content-Type: text/plain"],
                           body="hello over IPv6", from_="<sip:bob@example.org>")
        caller.send_raw(req)
        fwd, src = u.recvfrom(65536)
        check(src[0] == "::1" and src[1] == port, "forwarded from %r" % (src,))
        f = Response(fwd)
        check(f.start.startswith("MESSAGE sip:alice@[::1]:%d" % up),
              "forwarded Request-URI: %s" % f.start)
        top = f.all("Via")[0]
        check("SIP/2.0/UDP [::1]:%d" % port in top, "top Via of the forwarded request: %s" % top)
        check(f.body == "hello over IPv6", "body %r" % f.body)
        # answer it; the caller gets the 200
        lines = ["SIP/2.0 200 OK"] + ["Via: " + v for v in f.all("Via")] + [
            "From: " + f.get("From"), "To: " + f.get("To") + ";tag=v6uas",
            "Call-ID: " + callid_of(f), "CSeq: " + f.get("CSeq"), "Content-Length: 0", "", ""]
        u.sendto("\r\n".join(lines).encode(), src)
        r = None
        deadline = time.time() + 5
        while time.time() < deadline:
            r = Response(caller.recv_raw(5))
            if r.status >= 200:
                break
        check(r is not None and r.status == 200, "caller got %r" % (r,))
        caller.close()
        u.close()


if __name__ == "__main__":
    main(globals())
