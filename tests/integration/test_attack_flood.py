#!/usr/bin/env python3
"""Flood protection per source (issue 11 section 2, R24), attacked on the real binary.

One source (127.0.0.2: the attacker's socket is bound to it; loopback takes
all of 127/8) floods OPTIONS, INVITE and REGISTER without credentials at about
10,000 requests/s for a few seconds. It must be banned: no more answers,
logged once, listed by `switchboard ban list`, lifted by `switchboard ban del`.
While it floods, 500 phones behind one address (127.0.0.1, 500 source ports,
users from `switchboard user import`) that registered before re-register all
at once, as after an outage (500 REGISTERs without credentials, then 500 with),
and a few of them call each other: every one succeeds, none is banned. The
unauthenticated budget is set below 500 here, so the phones get through only
because their address showed valid credentials before (the trust the
protection gives a source in proportion to them).

Password guessing: sipvicious `svcrack` (Debian's sipvicious) with the right
password deep in its dictionary never finds it: after a few guesses the
guesser's source is banned and nothing is answered. The same with a plain
Python guessing loop, which also shows that a guess with credentials from a
banned source gets no answer.

The cost: the server's CPU time while one source floods at 10,000/s, with the
protection on and off, is printed (docs/security.md has the figures).
"""
import os
import random
import re
import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
import time

from sbtest import (BIN, Response, Server, SipClient, check, cli, digest_response, main,
                    parse_challenge, wait_for)

PHONES = 500
ATTACKER = "127.0.0.2"
PASSWORD = "ph0ne-%d-pw"


def write_config(tmp, body):
    path = os.path.join(tmp, "flood.yaml")
    with open(path, "w") as f:
        f.write(body)
    return path


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")



def parse_request(data):
    """(method, request-uri, [(name, value)]) of a request's head."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("utf-8", "replace")
    lines = head.split("\r\n")
    method, ruri, _ = lines[0].split(" ", 2)
    hdrs = []
    for line in lines[1:]:
        if ":" in line:
            n, v = line.split(":", 1)
            hdrs.append((n.strip(), v.strip()))
    return method, ruri, hdrs


def hdr(hdrs, *names):
    names = [n.lower() for n in names]
    return [v for n, v in hdrs if n.lower() in names]


class Phone:
    """One phone of the office: its own UDP port on 127.0.0.1, its own user."""

    def __init__(self, server, i):
        self.server = server
        self.user = "phone%03d" % i
        self.password = PASSWORD % i
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.callid = "reg-%x@office" % random.getrandbits(48)
        self.tag = "%x" % random.getrandbits(32)
        self.cseq = 1
        self.nc = 0
        self.aor = "sip:%s@127.0.0.1" % self.user

    def register_bytes(self, auth=None):
        self.cseq += 1
        ruri = "sip:%s" % self.server.host
        lines = ["REGISTER %s SIP/2.0" % ruri,
                 "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%x;rport"
                 % (self.port, random.getrandbits(48)),
                 "Max-Forwards: 70",
                 "From: <%s>;tag=%s" % (self.aor, self.tag),
                 "To: <%s>" % self.aor,
                 "Call-ID: %s" % self.callid,
                 "CSeq: %d REGISTER" % self.cseq,
                 "Contact: <sip:%s@127.0.0.1:%d>" % (self.user, self.port),
                 "Expires: 600"]
        if auth:
            lines.append(auth)
        lines.append("Content-Length: 0")
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def authorization(self, resp, method, uri, proxy=False):
        chal = parse_challenge(resp.get("Proxy-Authenticate" if proxy else "WWW-Authenticate"))
        self.nc += 1
        nc = "%08x" % self.nc
        cnonce = "%x" % random.getrandbits(32)
        alg = chal.get("algorithm", "MD5")
        r = digest_response(alg, self.user, chal["realm"], self.password, method, uri,
                            chal["nonce"], nc, cnonce)
        return ('%s: Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
                'algorithm=%s, cnonce="%s", qop=auth, nc=%s'
                % ("Proxy-Authorization" if proxy else "Authorization", self.user, chal["realm"],
                   chal["nonce"], uri, r, alg, cnonce, nc))

    def recv(self, timeout):
        self.sock.settimeout(timeout)
        try:
            return self.sock.recvfrom(65535)
        except socket.timeout:
            return None, None
        finally:
            self.sock.setblocking(False)

    def close(self):
        self.sock.close()


def exchange(phones, build, timeout=8.0):
    """Sends build(phone) from each phone at once; the final response of each, resending
    what is not answered every 0.5 s (UDP, as a phone does). {phone: Response or None}"""
    sel = selectors.DefaultSelector()
    pending = {}
    for p in phones:
        data = build(p)
        pending[p] = data
        p.sock.sendto(data, p.server.addr)
        sel.register(p.sock, selectors.EVENT_READ, p)
    got = {}
    deadline = time.time() + timeout
    last_send = time.time()
    while pending and time.time() < deadline:
        for key, _ in sel.select(0.05):
            p = key.data
            try:
                data, _ = p.sock.recvfrom(65535)
            except BlockingIOError:
                continue
            r = Response(data)
            cseq = r.get("CSeq", "")
            if p in pending and r.status >= 200 and cseq.startswith("%d " % p.cseq):
                got[p] = r
                del pending[p]
        if time.time() - last_send > 0.5:
            for p, data in pending.items():
                p.sock.sendto(data, p.server.addr)
            last_send = time.time()
    sel.close()
    for p in pending:
        got[p] = None
    return got


def register_all(phones):
    """401 then REGISTER with credentials for every phone at once; failures as text."""
    first = exchange(phones, lambda p: p.register_bytes())
    bad = ["%s: %r" % (p.user, r) for p, r in first.items() if r is None or r.status != 401]
    ok = [p for p, r in first.items() if r is not None and r.status == 401]
    uri = "sip:%s" % phones[0].server.host
    second = exchange(ok, lambda p: p.register_bytes(
        p.authorization(first[p], "REGISTER", uri)))
    bad += ["%s: %r" % (p.user, r) for p, r in second.items() if r is None or r.status != 200]
    return bad


def answer(callee, data, src, status, reason, to_tag):
    """The callee's response to the request it received (data), sent back to src."""
    method, _, hdrs = parse_request(data)
    lines = ["SIP/2.0 %d %s" % (status, reason)]
    lines += ["Via: %s" % v for v in hdr(hdrs, "Via", "v")]
    lines += ["Record-Route: %s" % v for v in hdr(hdrs, "Record-Route")]
    lines.append("From: %s" % hdr(hdrs, "From", "f")[0])
    to = hdr(hdrs, "To", "t")[0]
    if ";tag=" not in to:
        to += ";tag=" + to_tag
    lines += ["To: %s" % to, "Call-ID: %s" % hdr(hdrs, "Call-ID", "i")[0],
              "CSeq: %s" % hdr(hdrs, "CSeq")[0]]
    if method == "INVITE":
        lines.append("Contact: <sip:%s@127.0.0.1:%d>" % (callee.user, callee.port))
    lines.append("Content-Length: 0")
    callee.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), src)


def recv_request(phone, method, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        data, src = phone.recv(max(0.01, deadline - time.time()))
        if data and data.startswith(method.encode() + b" "):
            return data, src
    return None, None


def recv_final(phone, cseq, timeout=5.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        data, _ = phone.recv(max(0.01, deadline - time.time()))
        if data and data.startswith(b"SIP/2.0 "):
            r = Response(data)
            if r.status >= 200 and r.get("CSeq", "").startswith(cseq):
                return r
    return None


def call(server, a, b):
    """a calls b through the server: 407, INVITE with credentials, 180/200, ACK, BYE."""
    ruri = "sip:%s@%s" % (b.user, server.host)
    callid = "call-%x@office" % random.getrandbits(48)
    ftag = "%x" % random.getrandbits(32)
    sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"

    def invite(cseq, auth=None):
        branch = "z9hG4bK%x" % random.getrandbits(48)
        lines = ["INVITE %s SIP/2.0" % ruri,
                 "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport" % (a.port, branch),
                 "Max-Forwards: 70", "From: <%s>;tag=%s" % (a.aor, ftag),
                 "To: <sip:%s@127.0.0.1>" % b.user, "Call-ID: %s" % callid,
                 "CSeq: %d INVITE" % cseq, "Contact: <sip:%s@127.0.0.1:%d>" % (a.user, a.port),
                 "Content-Type: application/sdp"]
        if auth:
            lines.append(auth)
        lines.append("Content-Length: %d" % len(sdp))
        return branch, ("\r\n".join(lines) + "\r\n\r\n" + sdp).encode()

    branch, data = invite(1)
    a.sock.sendto(data, server.addr)
    r = recv_final(a, "1 INVITE")
    check(r is not None and r.status == 407, "%s -> %s: first INVITE: %r" % (a.user, b.user, r))
    ack = ["ACK %s SIP/2.0" % ruri,
           "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=%s;rport" % (a.port, branch),
           "Max-Forwards: 70", "From: <%s>;tag=%s" % (a.aor, ftag), "To: %s" % r.get("To"),
           "Call-ID: %s" % callid, "CSeq: 1 ACK", "Content-Length: 0"]
    a.sock.sendto(("\r\n".join(ack) + "\r\n\r\n").encode(), server.addr)
    _, data = invite(2, a.authorization(r, "INVITE", ruri, proxy=True))
    a.sock.sendto(data, server.addr)
    inv, src = recv_request(b, "INVITE")
    check(inv is not None, "%s -> %s: the callee got no INVITE" % (a.user, b.user))
    totag = "%x" % random.getrandbits(32)
    answer(b, inv, src, 180, "Ringing", totag)
    answer(b, inv, src, 200, "OK", totag)
    ok = recv_final(a, "2 INVITE")
    check(ok is not None and ok.status == 200, "%s -> %s: %r" % (a.user, b.user, ok))
    target = re.search(r"<([^>]+)>", ok.get("Contact")).group(1)
    routes = list(reversed([v for v in ok.all("Record-Route")]))

    def in_dialog(method, cseq):
        lines = ["%s %s SIP/2.0" % (method, target),
                 "Via: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK%x;rport"
                 % (a.port, random.getrandbits(48)),
                 "Max-Forwards: 70", "From: <%s>;tag=%s" % (a.aor, ftag), "To: %s" % ok.get("To"),
                 "Call-ID: %s" % callid, "CSeq: %d %s" % (cseq, method)]
        lines += ["Route: %s" % v for v in routes]
        lines.append("Content-Length: 0")
        a.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), server.addr)

    in_dialog("ACK", 2)
    got, _ = recv_request(b, "ACK")
    check(got is not None, "%s -> %s: the callee got no ACK" % (a.user, b.user))
    in_dialog("BYE", 3)
    bye, src = recv_request(b, "BYE")
    check(bye is not None, "%s -> %s: the callee got no BYE" % (a.user, b.user))
    answer(b, bye, src, 200, "OK", totag)
    r = recv_final(a, "3 BYE")
    check(r is not None and r.status == 200, "%s -> %s: BYE: %r" % (a.user, b.user, r))


class Flooder(threading.Thread):
    """Requests without credentials from one source at about `rate`/s for `secs` seconds
    (a bounded loop); counts what is answered, and when the last answer came."""

    def __init__(self, server, rate=10000, secs=4.0, source=ATTACKER):
        super().__init__(daemon=True)
        self.server, self.rate, self.secs = server, rate, secs
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self.answered = 0
        self.last_answer = 0.0
        self.t0 = self.t1 = 0.0

    def packet(self, n):
        host = self.server.host
        method, ruri, to = [("OPTIONS", "sip:%s" % host, "sip:%s" % host),
                            ("INVITE", "sip:nobody@%s" % host, "sip:nobody@127.0.0.1"),
                            ("REGISTER", "sip:%s" % host, "sip:phone001@127.0.0.1")][n % 3]
        return ("%s %s SIP/2.0\r\n"
                "Via: SIP/2.0/UDP %s:%d;branch=z9hG4bKfl%d\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:mallory@127.0.0.1>;tag=fl%d\r\nTo: <%s>\r\n"
                "Call-ID: flood-%d@%s\r\nCSeq: 1 %s\r\nContact: <sip:mallory@%s:%d>\r\n"
                "Content-Length: 0\r\n\r\n"
                % (method, ruri, ATTACKER, self.port, n, n, to, n, ATTACKER, method, ATTACKER,
                   self.port)).encode()

    def drain(self):
        while True:
            try:
                self.sock.recv(65535)
            except BlockingIOError:
                return
            self.answered += 1
            self.last_answer = time.time()

    def run(self):
        self.t0 = time.time()
        burst = 50
        while time.time() - self.t0 < self.secs:
            for _ in range(burst):
                try:
                    self.sock.sendto(self.packet(self.sent), self.server.addr)
                except BlockingIOError:
                    pass
                self.sent += 1
            self.drain()
            ahead = self.sent / self.rate - (time.time() - self.t0)
            if ahead > 0:
                time.sleep(ahead)
        self.t1 = time.time()
        time.sleep(0.3)
        self.drain()

    def ask(self, timeout=0.5):
        """One OPTIONS; its answer or None."""
        self.drain()
        self.sock.sendto(self.packet(3 * random.randint(10 ** 6, 10 ** 7)), self.server.addr)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                return Response(self.sock.recv(65535))
            except BlockingIOError:
                time.sleep(0.01)
        return None


def import_phones(server, tmp):
    csv = os.path.join(tmp, "phones.csv")
    with open(csv, "w") as f:
        for i in range(PHONES):
            f.write("phone%03d,127.0.0.1,%s\n" % (i, PASSWORD % i))
    cli("user", "import", csv, db=server.db)


def ban_lines(server, ip):
    return re.findall(r"flood: %s banned" % re.escape(ip), server.log_text())


def test_flood_is_banned_while_an_office_behind_one_nat_reregisters_and_calls():
    tmp = tempfile.mkdtemp(prefix="sb-flood-")
    cfg = write_config(tmp, "flood:\n  window: 10\n  unauth_limit: 300\n  ban_time: 60\n")
    s = Server(workers=2, config=cfg, tmp=tmp, extra=["--log-level", "info"])
    import_phones(s, tmp)
    with s:
        phones = [Phone(s, i) for i in range(PHONES)]
        try:
            # a normal morning: the phones register, a few dozen at a time
            for i in range(0, PHONES, 50):
                bad = register_all(phones[i:i + 50])
                check(not bad, "first registrations failed: %s" % bad[:5])
            # the attack starts; meanwhile the office comes back from an outage
            flood = Flooder(s, rate=10000, secs=4.0)
            cpu0 = cpu_seconds(s.proc.pid)
            flood.start()
            wait_for(lambda: ban_lines(s, ATTACKER), 5, "the attacker's ban")
            bad = register_all(phones)
            check(not bad, "re-registrations failed during the flood: %d, %s"
                  % (len(bad), bad[:5]))
            for a, b in [(phones[1], phones[2]), (phones[10], phones[400]),
                         (phones[499], phones[0])]:
                call(s, a, b)
            flood.join(30)
            cpu = cpu_seconds(s.proc.pid) - cpu0
            secs = flood.t1 - flood.t0
            print("flood: %d requests in %.1f s (%.0f/s) from %s, %d answered; server CPU "
                  "%.2f s (%.0f%% of a core, with 500 re-registrations and 3 calls)"
                  % (flood.sent, secs, flood.sent / secs, ATTACKER, flood.answered, cpu,
                     100 * cpu / secs))
            check(flood.sent >= 20000, "the flood sent only %d" % flood.sent)
            # banned after its budget: at most the budget was answered, and nothing at the end
            check(flood.answered <= 300 + 30, "%d flood requests answered" % flood.answered)
            check(flood.last_answer < flood.t1 - 2, "the flood was still answered at its end")
            check(flood.ask() is None, "a banned source got an answer")
            check(len(ban_lines(s, ATTACKER)) == 1, "the ban was logged %d times"
                  % len(ban_lines(s, ATTACKER)))
            check(not ban_lines(s, "127.0.0.1"), "the office was banned")
            # the office still works after the flood, without a new challenge round
            bad = register_all(phones[:20])
            check(not bad, "registrations after the flood: %s" % bad)

            # the CLI sees the ban and lifts it
            def listed():
                p = cli("ban", "list", db=s.db)
                return ATTACKER in p.stdout and p.stdout
            out = wait_for(listed, 5, "ban list to show the attacker")
            check("127.0.0.1 " not in out, "ban list: %s" % out)
            p = cli("ban", "del", "not-an-ip", db=s.db, check_rc=False)
            check(p.returncode == 2, "ban del not-an-ip -> %d" % p.returncode)
            p = cli("ban", "del", "192.0.2.1", db=s.db, check_rc=False)
            check(p.returncode == 4, "ban del of a source not banned -> %d" % p.returncode)
            cli("ban", "del", ATTACKER, db=s.db)
            wait_for(lambda: flood.ask(0.2) is not None, 5, "the lifted source to be answered")
            check("no bans" in cli("ban", "list", db=s.db).stdout, "ban list after del")
            p = cli("ban", "del", ATTACKER, db=s.db, check_rc=False)
            check(p.returncode == 4, "ban del twice -> %d" % p.returncode)
            check(re.search(r"ban on %s lifted" % re.escape(ATTACKER), s.log_text()),
                  "the lift was not logged")
        finally:
            for p in phones:
                p.close()


def test_ipv6_source_is_its_64():
    """A source over IPv6 is its /64: a flood from ::1 is banned as "::/64", listed so,
    and lifted by giving any address of that /64 to ban del."""
    try:
        t = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        t.bind(("::1", 0))
        t.close()
    except OSError:
        print("no IPv6 loopback: skipped")
        return
    tmp = tempfile.mkdtemp(prefix="sb-flood-")
    cfg = write_config(tmp, "flood:\n  unauth_limit: 50\n")
    while True:
        s = Server(config=cfg, tmp=tmp)
        try:
            t = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            t.bind(("::1", s.port))
            t.close()
            break
        except OSError:
            continue
    s.extra = ["--listen", "udp:[::1]:%d" % s.port, "--log-level", "info"]
    with s:
        u = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        u.bind(("::1", 0))
        u.settimeout(0.3)
        port = u.getsockname()[1]
        answered = 0
        for n in range(60):
            u.sendto(("OPTIONS sip:[::1]:%d SIP/2.0\r\nVia: SIP/2.0/UDP [::1]:%d;branch=z9hG4bK6x%d"
                      "\r\nMax-Forwards: 70\r\nFrom: <sip:v6@example.org>;tag=%d\r\n"
                      "To: <sip:[::1]>\r\nCall-ID: v6-%d\r\nCSeq: 1 OPTIONS\r\n"
                      "Content-Length: 0\r\n\r\n" % (s.port, port, n, n, n)).encode(),
                     ("::1", s.port))
            try:
                u.recv(65535)
                answered += 1
            except socket.timeout:
                pass
        u.close()
        check(answered == 50, "%d of 60 answered" % answered)
        check(len(ban_lines(s, "::/64")) == 1, "no ban of ::/64 logged")
        wait_for(lambda: "::/64" in cli("ban", "list", db=s.db).stdout, 5, "ban list")
        check(cli("ban", "del", "::7", db=s.db).stdout.strip() == "ban on ::/64 lifted",
              "ban del ::7")


def guess(server, sock, user, password, cseq):
    """One REGISTER without credentials and one with a guessed password, from sock:
    'no answer', 'wrong' (challenged again) or the final status."""
    c = SipClient(server)
    c.sock.close()
    c.sock = sock
    c.port = sock.getsockname()[1]
    c.cseq = cseq
    aor = "sip:%s@127.0.0.1" % user
    ruri = "sip:%s" % server.host
    r = c.request("REGISTER", ruri, ["Contact: <sip:%s@127.0.0.1:5999>" % user], to="<%s>" % aor,
                  from_="<%s>" % aor, timeout=0.3, retries=0)
    if r is None:
        return "no answer"
    if r.status != 401:
        return r.status
    c.cseq += 1
    auth = c.auth_header(r, user, password, "REGISTER", ruri)
    r = c.request("REGISTER", ruri, ["Contact: <sip:%s@127.0.0.1:5999>" % user, auth],
                  to="<%s>" % aor, from_="<%s>" % aor, timeout=0.3, retries=0)
    if r is None:
        return "no answer"
    return "wrong" if r.status == 401 else r.status


def test_password_guessing_stops_being_answered():
    """Each wrong password costs 20 unauthenticated requests: with the default budget
    (1000 per 10 s) the 48th guess is the last answered; the right one, 200th, is never
    answered; and the right password from another source still registers. A phone behind
    the guesser's address whose credentials are right is still served (credentials are
    checked whatever the ban), while its requests without credentials are dropped."""
    tmp = tempfile.mkdtemp(prefix="sb-flood-")
    s = Server(tmp=tmp, extra=["--log-level", "info"])
    s.add_user("victim", "s3cret-but-guessable")
    s.add_user("alice", "alicepw")
    with s:
        # alice's phone, behind the same address, has a challenge before the guessing starts
        alice = SipClient(s)
        alice.sock.close()
        alice.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        alice.sock.bind(("127.0.0.3", 0))
        alice.port = alice.sock.getsockname()[1]
        aor = "<sip:alice@127.0.0.1>"
        contact = ["Contact: <sip:alice@127.0.0.3:%d>" % alice.port]
        ruri = "sip:%s" % s.host
        chal = alice.request("REGISTER", ruri, contact, to=aor, from_=aor)
        check(chal is not None and chal.status == 401, "alice's first REGISTER: %r" % chal)
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.3", 0))
        results = []
        for i in range(200):
            pw = "s3cret-but-guessable" if i == 199 else "guess%d" % i
            results.append(guess(s, sock, "victim", pw, 10 * i + 1))
            if results[-3:] == ["no answer"] * 3 and i < 150:
                break
        sock.close()
        answered = [r for r in results if r != "no answer"]
        check(200 not in results, "the password was found")
        check(all(r == "wrong" for r in answered), "answers: %r" % set(results))
        check(20 <= len(answered) <= 60, "%d guesses answered" % len(answered))
        check(results[-1] == "no answer", "guessing is still answered")
        check(len(ban_lines(s, "127.0.0.3")) == 1, "no ban logged")
        # alice, banned with the guesser: without credentials no answer, with them a 200
        alice.cseq += 1
        r = alice.request("REGISTER", ruri, contact, to=aor, from_=aor, timeout=0.5, retries=0)
        check(r is None, "a request without credentials from the banned address: %r" % r)
        alice.cseq += 1
        auth = alice.auth_header(chal, "alice", "alicepw", "REGISTER", ruri)
        r = alice.request("REGISTER", ruri, contact + [auth], to=aor, from_=aor)
        alice.close()
        check(r is not None and r.status == 200, "alice's credentials while banned: %r" % r)
        # the right password from the victim's own address still works
        c = SipClient(s)
        r = c.register("victim", "s3cret-but-guessable")
        c.close()
        check(r.status == 200, "victim's registration: %r" % r)


def test_svcrack_is_rate_limited():
    """sipvicious svcrack, the right password 300th in its dictionary, never finds it."""
    if not shutil.which("svcrack"):
        print("svcrack not installed (apt-get install sipvicious): covered by "
              "test_password_guessing_stops_being_answered")
        return
    tmp = tempfile.mkdtemp(prefix="sb-flood-")
    words = ["pw%04d" % i for i in range(300)] + ["s3cret-but-guessable"]
    dic = os.path.join(tmp, "dict.txt")
    with open(dic, "w") as f:
        f.write("\n".join(words) + "\n")
    s = Server(tmp=tmp, extra=["--log-level", "info"])
    s.add_user("1000", "s3cret-but-guessable")
    with s:
        # (svcrack binds to any address whatever -b says: its source is 127.0.0.1)
        p = subprocess.run(["svcrack", "-u", "1000", "-d", dic, "-p", str(s.port),
                            "--maximumtime", "3", "127.0.0.1"],
                           capture_output=True, text=True, timeout=120, cwd=tmp)
        out = p.stdout + p.stderr
        check("s3cret-but-guessable" not in out, "svcrack found the password:\n" + out)
        check(len(ban_lines(s, "127.0.0.1")) == 1, "svcrack's source was not banned:\n" + out)
        check("since we last received a response" in out, "svcrack was answered:\n" + out)


def test_flood_cpu_cost():
    """Server CPU while one source floods at 10,000 requests/s for 5 s, protection on
    (banned after its budget, then dropped) and off (every request answered)."""
    tmp = tempfile.mkdtemp(prefix="sb-flood-")
    res = {}
    for name, body in [("on", "flood:\n  enabled: true\n"), ("off", "flood:\n  enabled: false\n")]:
        s = Server(config=write_config(tmp, body), tmp=tmp, db=os.path.join(tmp, name + ".db"),
                   extra=["--log-level", "info"])
        with s:
            flood = Flooder(s, rate=10000, secs=5.0)
            cpu0 = cpu_seconds(s.proc.pid)
            flood.run()
            cpu = cpu_seconds(s.proc.pid) - cpu0
            secs = flood.t1 - flood.t0
            res[name] = (flood.sent / secs, flood.answered, 100 * cpu / secs)
            print("protection %-3s: %.0f requests/s from one source, %d answered, server CPU "
                  "%.1f%% of a core" % ((name,) + res[name]))
    check(res["on"][1] < res["off"][1] / 10, "answers on/off: %d/%d" % (res["on"][1],
                                                                       res["off"][1]))
    # both are small (parsing dominates): the protection must not cost more than answering
    check(res["on"][2] <= res["off"][2] * 1.25 + 2, "CPU with the protection on: %.1f%%, off: "
          "%.1f%%" % (res["on"][2], res["off"][2]))


if __name__ == "__main__":
    main(globals())
