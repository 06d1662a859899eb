"""sbwire - raw-bytes helpers for the conformance and robustness tests.

The torture messages must reach the server exactly as they are on disk, so
these tests do not use SipClient.build: they write bytes to a socket and read
back whatever the server sends, framed by Content-Length. Standard library
only, like sbtest.
"""

import os
import random
import re
import socket
import time

from sbtest import Response, TestFailure, check, digest_response, parse_challenge

CLOSED = "closed"


def callid_of(resp):
    return resp.get("Call-ID") or resp.get("i") or ""


class Stream:
    """A TCP connection to the server with a Content-Length framed reader."""

    def __init__(self, addr, timeout=5, family=socket.AF_INET):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(addr)
        self.local = self.sock.getsockname()
        self.port = self.local[1]
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _frame(self):
        # the server answers a double-CRLF keep-alive with a single CRLF
        while self.buf[:2] == b"\r\n":
            self.buf = self.buf[2:]
        m = re.search(rb"\r\n\r\n", self.buf)
        if not m:
            return None
        head = self.buf[:m.end()]
        cl = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)", head)
        n = int(cl.group(1)) if cl else 0
        if len(self.buf) < m.end() + n:
            return None
        msg, self.buf = self.buf[:m.end() + n], self.buf[m.end() + n:]
        return msg

    def recv_msg(self, timeout):
        """The next message as a Response; None on timeout; CLOSED when the server closed."""
        deadline = time.time() + timeout
        while True:
            msg = self._frame()
            if msg is not None:
                return Response(msg)
            if self.eof:
                return CLOSED
            left = deadline - time.time()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
            self.buf += chunk

    def recv_final(self, timeout, callid=None):
        """Responses until a final one (for callid, if given): (final or None/CLOSED, all seen)."""
        seen = []
        deadline = time.time() + timeout
        while True:
            r = self.recv_msg(max(0.0, deadline - time.time()))
            if r is None or r == CLOSED:
                return r, seen
            seen.append(r)
            if r.status >= 200 and (callid is None or callid_of(r) == callid):
                return r, seen

    def wait_closed(self, timeout):
        """True when the server closes the connection within timeout (data read meanwhile is kept)."""
        deadline = time.time() + timeout
        while not self.eof:
            left = deadline - time.time()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                return False
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
            self.buf += chunk
        return True


def options_bytes(target_host, via_host, via_port, transport="UDP", callid=None, extra=()):
    """An OPTIONS to the server itself (answered 200 by it)."""
    callid = callid or "ping-%x@sbwire" % random.getrandbits(48)
    lines = ["OPTIONS sip:%s SIP/2.0" % target_host,
             "Via: SIP/2.0/%s %s:%d;branch=z9hG4bK%x;rport" % (transport, via_host, via_port,
                                                               random.getrandbits(48)),
             "Max-Forwards: 70",
             "From: <sip:ping@sbwire.invalid>;tag=%x" % random.getrandbits(32),
             "To: <sip:%s>" % target_host,
             "Call-ID: %s" % callid,
             "CSeq: 1 OPTIONS"] + list(extra) + ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode(), callid


def stream_ping(stream, server_host, timeout=3):
    """OPTIONS on an open connection: True when its 200 is the next thing the server sends."""
    data, callid = options_bytes(server_host, "127.0.0.1", stream.port, "TCP")
    try:
        stream.send(data)
    except OSError:
        return False, "send failed (connection closed)"
    r = stream.recv_msg(timeout)
    if r is None:
        return False, "no answer to OPTIONS on the same connection"
    if r == CLOSED:
        return False, "connection closed"
    if r.status != 200 or callid_of(r) != callid:
        return False, "unexpected message before the ping's answer: %r (%s)" % (r, callid_of(r))
    return True, ""


def tcp_ping(server, timeout=3):
    try:
        s = Stream(server.addr, timeout=timeout)
    except OSError as e:
        return False
    try:
        ok, _ = stream_ping(s, server.host, timeout)
        return ok
    finally:
        s.close()


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def header_end(data):
    """Offset just after the empty line that ends the first message's header section."""
    i = data.find(b"\r\n\r\n")
    return i + 4 if i >= 0 else len(data)


def insert_header(data, line):
    """The first message of data with one header line added at the end of its header section."""
    i = data.find(b"\r\n\r\n")
    check(i >= 0, "no header section end")
    i += 2
    return data[:i] + line.encode() + b"\r\n" + data[i:]


def unfolded_headers(data):
    head = data[:header_end(data)].decode("latin1")
    return re.sub(r"\r\n[ \t]+", " ", head).split("\r\n")[1:]


def header_value(data, names):
    """The first value of a header (any of names, compared case-insensitively, compact forms
    included) in the first message of data."""
    for line in unfolded_headers(data):
        m = re.match(r"([!-9;-~]+)[ \t]*:(.*)$", line)
        if m and m.group(1).lower() in names:
            return m.group(2).strip()
    return None


def request_uri(data):
    return data.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin1")


def top_via(data):
    """(host, port or None, has_rport) of the first Via of a raw message."""
    v = header_value(data, ("via", "v"))
    if v is None:
        return None
    m = re.match(r"SIP\s*/\s*[\d.]+\s*/\s*[A-Za-z]+\s+(\[[^\]]*\]|[^\s;:,]+)(?:\s*:\s*(\d+))?(.*)$", v)
    if not m:
        return None
    first = re.split(r",(?![^<]*>)", m.group(3))[0]
    return m.group(1), int(m.group(2)) if m.group(2) else None, bool(
        re.search(r";\s*rport\b", first))


def register_auth(data, resp, user, password):
    """data (a REGISTER) with an Authorization header answering the 401 resp."""
    chals = [parse_challenge(v) for v in resp.all("WWW-Authenticate")]
    check(chals, "401 without WWW-Authenticate")
    chal = chals[0]
    uri = request_uri(data)
    nc, cnonce = "00000001", "%x" % random.getrandbits(32)
    alg = chal.get("algorithm", "MD5")
    digest = digest_response(alg, user, chal["realm"], password, "REGISTER", uri, chal["nonce"],
                             nc, cnonce)
    line = ('Authorization: Digest username="%s", realm="%s", nonce="%s", uri="%s", '
            'response="%s", algorithm=%s, cnonce="%s", qop=auth, nc=%s'
            % (user, chal["realm"], chal["nonce"], uri, digest, alg, cnonce, nc))
    return insert_header(data, line)


class UdpCatcher:
    """UDP sockets on another loopback address (127.x.y.z, picked so that its port 5060 is
    free), on the ports where the server will send its replies: the top Via's sent-by port
    (RFC 3261 18.2.2; 5060 when absent) and, for rport (RFC 3581), the port we send from
    (5060). Sent from 127.0.0.1, the replies to the RFC's messages would go to 127.0.0.1:5060
    (or to TEST-NET); sent from 127.x.y.z they come back to us."""

    def __init__(self):
        self.socks = {}
        rnd = random.Random()
        for _ in range(100):
            self.HOST = "127.%d.%d.%d" % (rnd.randint(0, 255), rnd.randint(0, 255),
                                         rnd.randint(2, 254))
            if self.sock(5060):
                return
        raise TestFailure("no loopback address with a free port 5060")

    def sock(self, port):
        if port not in self.socks:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((self.HOST, port))
            except OSError:
                s.close()
                return None
            s.setblocking(False)
            self.socks[port] = s
        return self.socks[port]

    def drain(self):
        for s in self.socks.values():
            while True:
                try:
                    s.recv(65536)
                except (BlockingIOError, OSError):
                    break

    def send(self, data, dest, from_port=5060):
        s = self.sock(from_port)
        check(s is not None, "cannot bind %s:%d" % (self.HOST, from_port))
        s.sendto(data, dest)

    def recv(self, ports, timeout):
        """The next datagram received on any of ports, as a Response; None on timeout."""
        import select
        socks = [self.socks[p] for p in ports if p in self.socks]
        deadline = time.time() + timeout
        while True:
            left = deadline - time.time()
            if left <= 0:
                return None
            r, _, _ = select.select(socks, [], [], left)
            for s in r:
                try:
                    return Response(s.recv(65536))
                except BlockingIOError:
                    continue

    def recv_final(self, ports, timeout, callid=None):
        seen = []
        deadline = time.time() + timeout
        while True:
            r = self.recv(ports, max(0.0, deadline - time.time()))
            if r is None:
                return None, seen
            seen.append(r)
            if r.status >= 200 and (callid is None or callid_of(r) == callid):
                return r, seen

    def close(self):
        for s in self.socks.values():
            s.close()
        self.socks = {}


def reg_list(server, aor, want=None, timeout=3.0):
    """`switchboard reg list AOR` rows as (contact, expires) once want(rows) holds (bindings are
    written behind, every 100 ms); the last rows seen otherwise."""
    from sbtest import cli
    deadline = time.time() + timeout
    while True:
        p = cli("reg", "list", aor, db=server.db, check_rc=False)
        rows = []
        for line in p.stdout.splitlines()[1:]:
            cols = line.split()
            if len(cols) >= 3 and cols[0] == aor:
                rows.append((cols[1], cols[2]))
        if want is None or want(rows) or time.time() > deadline:
            return rows
        time.sleep(0.1)


__all__ = ["CLOSED", "Stream", "UdpCatcher", "callid_of", "fd_count", "header_value",
           "insert_header", "options_bytes", "reg_list", "register_auth", "request_uri",
           "stream_ping", "tcp_ping", "top_via", "TestFailure"]
