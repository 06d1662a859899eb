"""sbtest - the integration tests' harness.

Starts the real switchboard binary on free ports with its own database,
provisions users through the real CLI, and talks SIP to it with a small
client (raw sockets, digest MD5/SHA-256) or with real peers (SIPp, sipsak,
baresip, Net::SIP). Standard library only, so the tests need nothing that
Debian's python3 does not have.

Every test file calls sbtest.main(globals()): it runs the functions named
test_*, prints one line per test and exits non-zero if any failed. A server
that does not exit cleanly (a crash, a sanitizer report, a leak) fails the
test that stopped it.
"""

import atexit
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.environ.get("SB_SRC", os.path.abspath(os.path.join(HERE, "..", "..")))
BIN = os.environ.get("SB_BIN", os.path.join(SRC, "build", "switchboard"))
SCENARIOS = os.path.join(HERE, "scenarios")
CONFORMANCE = os.path.join(SRC, "tests", "conformance")


class TestFailure(AssertionError):
    pass


def check(cond, msg="check failed"):
    if not cond:
        raise TestFailure(msg)


def free_port(tcp_too=True):
    """A port free for UDP (and TCP) on 127.0.0.1."""
    for _ in range(200):
        port = random.randint(20000, 60000)
        try:
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.bind(("127.0.0.1", port))
            if tcp_too:
                t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                t.bind(("127.0.0.1", port))
                t.close()
            u.close()
            return port
        except OSError:
            continue
    raise RuntimeError("no free port")


def cli(*args, db=None, check_rc=True, input=None):
    cmd = [BIN] + list(args)
    if db:
        cmd += ["--db", db]
    p = subprocess.run(cmd, capture_output=True, text=True, input=input, timeout=60)
    if check_rc and p.returncode != 0:
        raise TestFailure("%s -> %d: %s" % (" ".join(cmd), p.returncode, p.stderr))
    return p


class Server:
    """The real binary, on a free port, with a database in a temporary directory."""

    def __init__(self, workers=None, domains=(), extra=(), tmp=None, port=None, db=None,
                 config=None):
        self.tmp = tmp or tempfile.mkdtemp(prefix="sbtest-")
        self.port = port or free_port()
        self.db = db or os.path.join(self.tmp, "switchboard.db")
        # SB_TEST_WORKERS=2 runs every test that does not choose with two workers, and
        # SB_TEST_WORKER_PORTS=1 adds udp.worker_ports to its configuration (issue 13)
        self.workers = workers or int(os.environ.get("SB_TEST_WORKERS", "1"))
        self.domains = list(domains)
        self.extra = list(extra)
        self.config = config
        self.proc = None
        self.log_path = os.path.join(self.tmp, "server-%d.log" % self.port)

    @property
    def addr(self):
        return ("127.0.0.1", self.port)

    @property
    def host(self):
        return "127.0.0.1:%d" % self.port

    def add_user(self, user, password, domain="127.0.0.1"):
        cli("user", "add", "%s@%s" % (user, domain), "--password", password, db=self.db)

    def start(self):
        cmd = [BIN, "serve", "--db", self.db, "--workers", str(self.workers),
               "--listen", "udp:127.0.0.1:%d" % self.port,
               "--listen", "tcp:127.0.0.1:%d" % self.port, "--log-level", "debug"]
        config = self.config
        if os.environ.get("SB_TEST_WORKER_PORTS") == "1":
            text = open(config).read() if config else ""
            config = os.path.join(self.tmp, "worker-ports-%d.yaml" % self.port)
            with open(config, "w") as f:
                f.write(text.rstrip("\n") + "\nudp:\n  worker_ports: true\n")
        if config:
            cmd[2:2] = ["-c", config]
        for d in self.domains:
            cmd += ["--domain", d]
        cmd += self.extra
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise TestFailure("server exited at start (%d): %s" % (self.proc.returncode,
                                                                       self.log_tail()))
            if self.ping():
                return self
            time.sleep(0.05)
        raise TestFailure("server did not answer OPTIONS: " + self.log_tail())

    def ping(self, timeout=0.3):
        c = SipClient(self, transport="udp")
        try:
            r = c.request("OPTIONS", "sip:%s" % self.host, timeout=timeout, retries=0)
            return r is not None and r.status == 200
        except OSError:
            return False
        finally:
            c.close()

    def log_tail(self, n=40):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-n:]).decode("utf-8", "replace")
        except OSError:
            return ""

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def stop(self, check_clean=True):
        if not self.proc:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise TestFailure("server did not stop on SIGTERM")
        finally:
            self.proc = None
            self.log.close()
        if check_clean:
            text = self.log_text()
            check(rc == 0, "server exited with %d: %s" % (rc, self.log_tail()))
            check("ERROR: AddressSanitizer" not in text and "runtime error:" not in text
                  and "LeakSanitizer" not in text, "sanitizer report: " + self.log_tail(80))

    def kill(self):
        """Abrupt end (crash recovery tests)."""
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            self.log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, exc_type, exc, tb):
        self.stop(check_clean=exc_type is None)


class Response:
    def __init__(self, raw):
        self.raw = raw
        text = raw.decode("utf-8", "replace")
        head, _, self.body = text.partition("\r\n\r\n")
        lines = head.split("\r\n")
        self.start = lines[0]
        parts = self.start.split(" ", 2)
        self.status = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0
        self.reason = parts[2] if len(parts) > 2 else ""
        self.headers = []
        for line in lines[1:]:
            if line[:1] in (" ", "\t") and self.headers:
                name, value = self.headers[-1]
                self.headers[-1] = (name, value + " " + line.strip())
            elif ":" in line:
                name, value = line.split(":", 1)
                self.headers.append((name.strip(), value.strip()))

    def all(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def get(self, name, default=None):
        v = self.all(name)
        return v[0] if v else default

    def __repr__(self):
        return "<%s>" % self.start


def digest_response(alg, user, realm, password, method, uri, nonce, nc, cnonce, qop="auth"):
    h = hashlib.sha256 if alg.upper() == "SHA-256" else hashlib.md5

    def H(s):
        return h(s.encode()).hexdigest()
    ha1 = H("%s:%s:%s" % (user, realm, password))
    ha2 = H("%s:%s" % (method, uri))
    return H("%s:%s:%s:%s:%s:%s" % (ha1, nonce, nc, cnonce, qop, ha2))


def parse_challenge(value):
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', value))
    return params


class SipClient:
    """Just enough of a UA to drive the server from a test."""

    def __init__(self, server, transport="udp", port=None):
        self.server = server
        self.transport = transport
        if transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind(("127.0.0.1", port or 0))
        else:
            self.sock = socket.create_connection(server.addr, timeout=5)
        self.port = self.sock.getsockname()[1]
        self.cseq = random.randint(1, 1000)
        self.callid = "%x@sbtest" % random.getrandbits(64)
        self.tag = "%x" % random.getrandbits(32)
        self.nc = 0
        self.buf = b""

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        if self.transport == "udp":
            self.sock.sendto(data, self.server.addr)
        else:
            self.sock.sendall(data)

    def recv_raw(self, timeout):
        self.sock.settimeout(timeout)
        if self.transport == "udp":
            data, _ = self.sock.recvfrom(65535)
            return data
        while True:
            m = re.search(rb"\r\n\r\n", self.buf)
            if m:
                head = self.buf[:m.end()]
                cl = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", head)
                n = int(cl.group(1)) if cl else 0
                if len(self.buf) >= m.end() + n:
                    msg, self.buf = self.buf[:m.end() + n], self.buf[m.end() + n:]
                    return msg
            chunk = self.sock.recv(65535)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk

    def build(self, method, ruri, headers=(), body="", to=None, from_=None, cseq=None,
              branch=None, via_extra=";rport"):
        to = to or "<%s>" % ruri
        from_ = from_ or "<sip:sbtest@127.0.0.1>"
        branch = branch or "z9hG4bK%x" % random.getrandbits(48)
        cseq = self.cseq if cseq is None else cseq
        lines = ["%s %s SIP/2.0" % (method, ruri),
                 "Via: SIP/2.0/%s 127.0.0.1:%d;branch=%s%s" % (self.transport.upper(), self.port,
                                                               branch, via_extra),
                 "Max-Forwards: 70",
                 "From: %s;tag=%s" % (from_, self.tag),
                 "To: %s" % to,
                 "Call-ID: %s" % self.callid,
                 "CSeq: %d %s" % (cseq, method)]
        lines += list(headers)
        lines.append("Content-Length: %d" % len(body.encode()))
        return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()

    def request(self, method, ruri, headers=(), body="", timeout=2.0, retries=3, final=True, **kw):
        """Sends a request and returns the final response (or the first one with final=False)."""
        data = self.build(method, ruri, headers, body, **kw)
        for attempt in range(retries + 1):
            self.send_raw(data)
            deadline = time.time() + timeout
            try:
                while True:
                    left = deadline - time.time()
                    if left <= 0:
                        raise socket.timeout()
                    r = Response(self.recv_raw(left))
                    if r.status >= 200 or not final:
                        return r
            except socket.timeout:
                if self.transport != "udp":
                    break
        return None

    def auth_header(self, resp, user, password, method, uri, alg=None, proxy=False):
        name = "Proxy-Authenticate" if proxy else "WWW-Authenticate"
        chals = [parse_challenge(v) for v in resp.all(name)]
        check(chals, "no challenge in %r" % resp)
        chal = chals[0]
        if alg:
            matching = [c for c in chals if c.get("algorithm", "MD5").upper() == alg.upper()]
            check(matching, "no %s challenge" % alg)
            chal = matching[0]
        self.nc += 1
        nc = "%08x" % self.nc
        cnonce = "%x" % random.getrandbits(32)
        algo = chal.get("algorithm", "MD5")
        resp_hex = digest_response(algo, user, chal["realm"], password, method, uri,
                                   chal["nonce"], nc, cnonce)
        value = ('Digest username="%s", realm="%s", nonce="%s", uri="%s", response="%s", '
                 'algorithm=%s, cnonce="%s", qop=auth, nc=%s'
                 % (user, chal["realm"], chal["nonce"], uri, resp_hex, algo, cnonce, nc))
        return ("Proxy-Authorization: " if proxy else "Authorization: ") + value

    def register(self, user, password, contact=None, expires=300, domain="127.0.0.1", alg=None,
                 extra=(), contact_params=""):
        """The RFC 3665 3.1 flow: REGISTER, 401, REGISTER with credentials."""
        aor = "sip:%s@%s" % (user, domain)
        ruri = "sip:%s" % domain if domain != "127.0.0.1" else "sip:%s" % self.server.host
        if contact is None:
            contact = "<sip:%s@127.0.0.1:%d;transport=%s>%s" % (user, self.port, self.transport,
                                                                 contact_params)
        hdrs = ["Contact: %s" % contact] if contact else []
        hdrs += ["Expires: %d" % expires] if expires is not None else []
        hdrs += list(extra)
        self.cseq += 1
        r = self.request("REGISTER", ruri, hdrs, to="<%s>" % aor, from_="<%s>" % aor)
        check(r is not None, "no answer to REGISTER")
        if r.status != 401:
            return r
        auth = self.auth_header(r, user, password, "REGISTER", ruri, alg=alg)
        self.cseq += 1
        return self.request("REGISTER", ruri, hdrs + [auth], to="<%s>" % aor, from_="<%s>" % aor)


def wait_for(cond, timeout, what, step=0.02):
    """cond()'s first true value within timeout seconds; AssertionError naming what if none."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(step)
    raise AssertionError("timed out waiting for " + what)


def sipp_auth_uri(args, cwd=None):
    """["-auth_uri", X] when the scenario answers challenges with [authentication].

    SIPp computes the digest uri from the server's address unless -auth_uri
    is given, and the server checks it against the Request-URI (RFC 3261
    22.4). So the Request-URI of the scenario's first message that carries
    the [authentication] keyword (directly or through an -inf field) is
    filled in from the first -inf row; when every row gives the same one, it
    becomes -auth_uri. Otherwise (or when it is already given) nothing."""
    args = [str(a) for a in args]
    if "-auth_uri" in args or "-sf" not in args:
        return []
    base = cwd or tempfile.gettempdir()
    xml = os.path.join(base, args[args.index("-sf") + 1])
    rows = [[]]
    if "-inf" in args:
        with open(os.path.join(base, args[args.index("-inf") + 1])) as f:
            rows = [line.rstrip("\n").split(";") for line in f.readlines()[1:] if line.strip()]
    with open(xml) as f:
        text = f.read()

    def fill(s, row):
        return re.sub(r"\[field(\d+)\]", lambda m: row[int(m.group(1))]
                      if int(m.group(1)) < len(row) else m.group(0), s)
    uris = set()
    for row in rows or [[]]:
        for msg in re.findall(r"<!\[CDATA\[(.*?)\]\]>", text, re.S):
            msg = fill(msg, row)
            if "[authentication" not in msg:
                continue
            first = msg.strip().split("\n", 1)[0].split()
            if len(first) == 3 and first[1].startswith("sip:"):
                uris.add(first[1][4:])
            break
    # a Request-URI made of SIPp keywords ([remote_ip]:[remote_port]) is the server's address,
    # which is what SIPp computes the digest uri from anyway (it does not expand -auth_uri)
    if len(uris) != 1 or "[" in next(iter(uris)):
        return []
    return ["-auth_uri", uris.pop()]


def sipp(args, timeout=120, cwd=None):
    """Runs SIPp (sip-tester) to completion; returns (exit code, stdout+stderr)."""
    cmd = ["sipp"] + [str(a) for a in args] + sipp_auth_uri(args, cwd) + ["-nostdin"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       cwd=cwd or tempfile.gettempdir())
    return p.returncode, p.stdout + p.stderr


_RUNNING = []


@atexit.register
def _kill_leftovers():
    for proc in _RUNNING:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


class SippBackground:
    """A SIPp instance (usually a UAS) running while the test drives calls."""

    def __init__(self, args, cwd=None):
        self.cwd = cwd or tempfile.mkdtemp(prefix="sipp-")
        self.proc = subprocess.Popen(["sipp"] + [str(a) for a in args] +
                                     sipp_auth_uri(args, self.cwd) + ["-nostdin"],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     cwd=self.cwd, text=True)
        _RUNNING.append(self.proc)  # a failed test must not leave it running
        time.sleep(0.3)

    def wait(self, timeout=60):
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            return -1, out
        return self.proc.returncode, out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)  # SIPp: quit after current calls
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def write_inf(path, rows):
    with open(path, "w") as f:
        f.write("SEQUENTIAL\n")
        for r in rows:
            f.write(";".join(r) + "\n")
    return path


def auth_kw(user, password):
    return "[authentication username=%s password=%s]" % (user, password)


def need(tool):
    if not shutil.which(tool):
        raise TestFailure("%s is not installed (make test installs it)" % tool)


def main(ns):
    tests = [(n, f) for n, f in sorted(ns.items()) if n.startswith("test_") and callable(f)]
    only = sys.argv[1:]
    failed = 0
    for name, fn in tests:
        if only and name not in only:
            continue
        t0 = time.time()
        try:
            fn()
            print("ok   %-45s %5.1fs" % (name, time.time() - t0), flush=True)
        except Exception as e:  # noqa: BLE001 - report every failure kind
            failed += 1
            print("FAIL %-45s %5.1fs: %s" % (name, time.time() - t0, e), flush=True)
            traceback.print_exc()
    print("%d failed" % failed if failed else "all passed", flush=True)
    sys.exit(1 if failed else 0)
