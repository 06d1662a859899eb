"""sbphone - a raw UDP phone and caller for the attack tests.

The attack tests need to see every byte: the INVITE that reaches the callee
(its branch, its credentials), and what an attacker sends instead. A Phone
registers a contact on its own UDP socket and answers what arrives by hand;
a Caller sends INVITEs with 407 authentication and keeps what it sent so it
can be replayed. Standard library only, like sbtest.
"""

import random
import re
import socket
import time

from sbtest import Response, SipClient, check


def headers_of(data):
    """[(name, value)] of the first message of data, unfolded."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin1")
    head = re.sub(r"\r\n[ \t]+", " ", head)
    out = []
    for line in head.split("\r\n")[1:]:
        if ":" in line:
            n, v = line.split(":", 1)
            out.append((n.strip(), v.strip()))
    return out


COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id"}


def hget(data, name):
    """Every value of header `name` (compact forms included)."""
    return [v for n, v in headers_of(data) if COMPACT.get(n.lower(), n.lower()) == name.lower()]


def reply_to(req, status, reason, to_tag="callee", extra=()):
    """The bytes of a response to req (Via, From, To, Call-ID and CSeq copied)."""
    lines = ["SIP/2.0 %d %s" % (status, reason)]
    for v in hget(req, "via"):
        lines.append("Via: " + v)
    lines.append("From: " + hget(req, "from")[0])
    to = hget(req, "to")[0]
    if to_tag and status > 100 and ";tag=" not in to:
        to += ";tag=" + to_tag
    lines.append("To: " + to)
    lines.append("Call-ID: " + hget(req, "call-id")[0])
    lines.append("CSeq: " + hget(req, "cseq")[0])
    lines += list(extra)
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class Phone:
    """A registered contact on a UDP socket of its own."""

    def __init__(self, server, user, password):
        self.server = server
        self.c = SipClient(server)
        self.port = self.c.port
        r = self.c.register(user, password,
                            contact="<sip:%s@127.0.0.1:%d;transport=udp>" % (user, self.port),
                            expires=600)
        check(r is not None and r.status == 200, "registration of %s: %r" % (user, r))
        self.src = None  # where the last request came from

    def recv(self, timeout):
        """The next message (bytes) or None."""
        self.c.sock.settimeout(max(timeout, 0.001))
        try:
            data, self.src = self.c.sock.recvfrom(65535)
            return data
        except socket.timeout:
            return None

    def recv_request(self, method, timeout):
        """The next request with this method (others are skipped), or None."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            data = self.recv(deadline - time.time())
            if data and data.startswith(method.encode() + b" "):
                return data
        return None

    def send(self, data, src=None):
        self.c.sock.sendto(data, src or self.server.addr)

    def close(self):
        self.c.close()


class Caller:
    """alice on a UDP socket: INVITEs with 407 authentication."""

    def __init__(self, server, user="alice", password="alicepw", domain="127.0.0.1"):
        self.server = server
        self.user, self.password, self.domain = user, password, domain
        self.c = SipClient(server)

    def build_invite(self, ruri, auth=None, branch=None, callid=None, cseq=1):
        hdrs = ["Contact: <sip:%s@127.0.0.1:%d>" % (self.user, self.c.port)]
        if auth:
            hdrs.append(auth)
        if callid:
            self.c.callid = callid
        return self.c.build("INVITE", ruri, hdrs, to="<%s>" % ruri,
                            from_="<sip:%s@%s>" % (self.user, self.domain), cseq=cseq,
                            branch=branch or "z9hG4bK%x" % random.getrandbits(48))

    def send(self, data):
        self.c.send_raw(data)

    def final(self, timeout=3.0):
        """The next final response (provisionals skipped), or None."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                r = Response(self.c.recv_raw(max(deadline - time.time(), 0.001)))
            except socket.timeout:
                return None
            if r.status >= 200:
                return r
        return None

    def ack(self, invite, resp):
        """The hop-by-hop ACK of a non-2xx final (RFC 3261 17.1.1.3)."""
        via = hget(invite, "via")[0]
        ruri = invite.split(b" ", 2)[1].decode()
        cseq = hget(invite, "cseq")[0].split()[0]
        lines = ["ACK %s SIP/2.0" % ruri, "Via: " + via, "Max-Forwards: 70",
                 "From: " + hget(invite, "from")[0], "To: " + resp.get("To"),
                 "Call-ID: " + hget(invite, "call-id")[0], "CSeq: %s ACK" % cseq,
                 "Content-Length: 0"]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode())

    def challenge(self, ruri):
        """Sends an INVITE without credentials; returns the 407."""
        inv = self.build_invite(ruri)
        self.send(inv)
        r = self.final()
        check(r is not None and r.status == 407, "expected 407, got %r" % r)
        self.ack(inv, r)
        return r

    def credentials(self, r407, uri):
        """A Proxy-Authorization line answering r407 for the digest uri `uri`."""
        return self.c.auth_header(r407, self.user, self.password, "INVITE", uri, proxy=True)

    def close(self):
        self.c.close()
