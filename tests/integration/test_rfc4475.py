#!/usr/bin/env python3
"""RFC 4475 and RFC 5118 torture messages against the running server.

Every file of tests/conformance/rfc4475/ (variants/ included) and
tests/conformance/rfc5118/wire/ is sent exactly as it is on disk:

- over TCP, one connection per file, and the verdict checked: the status
  answered (or that nothing is answered), whether the connection is still
  usable afterwards (an OPTIONS on the same connection is the next thing
  answered) or closed, and that the server still answers OPTIONS over UDP and
  on a new TCP connection. For the REGISTERs that must succeed, the 401 is
  answered by re-sending the file's bytes with an Authorization header, and
  the binding is checked with `switchboard reg list`;
- over UDP, one datagram per file, from another loopback address (sbwire.UdpCatcher:
  the replies go to the received address and the sent-by port of the top
  Via, RFC 3261 18.2.2, so the test listens there and checks those verdicts
  too).

At the end of each run the process must stop cleanly (the harness checks the
exit code and the sanitizer reports) and hold no more file descriptors than it
did at the start.

Domains served (why each one):
- example.com: the domain of nearly every Request-URI and To. Requests to
  user@example.com (provisioned, never registered) reach the location
  service: 404 like every other unknown or unregistered user of it (a stranger
  cannot tell them apart); REGISTERs reach the registrar.
- registrar.example.com: esc02 is addressed to it with no user, i.e. to the
  server itself, which must answer its unknown method with 501.
- services.example.com and chair-dnrc.example.com: wsinv's Route and
  Request-URI, so the loose route is ours and the INVITE reaches the user
  lookup (404) without depending on DNS.
- host.example.net: the Request-URI of RFC 5118 mult-ip-in-header (404, no DNS).
- 2001:db8::10: the server of the RFC 5118 examples (REGISTER sip:[2001:db8::10],
  OPTIONS sip:[2001:db8::10]).
- not example.net nor example.org: most From addresses are caller@example.net;
  serving it would make those requests come from local users, which are
  challenged with 407 before any routing (RFC 3261 22.3), hiding the verdict.
  Requests whose From is in example.com are challenged: 407 is their verdict.

The expected verdicts follow tests/conformance/*/MANIFEST.tsv (and the
parser-level ones of tests/unit/test_sip_conformance.c); where the manifest
allows two behaviours, exactly those two are accepted.
"""
import os
import threading
import time

from sbtest import CONFORMANCE, Server, SipClient, TestFailure, check, main
from sbwire import (CLOSED, Stream, UdpCatcher, fd_count, reg_list, register_auth, stream_ping,
                    tcp_ping, top_via)

DOMAINS = ["example.com", "registrar.example.com", "services.example.com",
           "chair-dnrc.example.com", "host.example.net", "2001:db8::10"]
PASSWORD = "torture"
USERS = ["user", "watson", "j.user", "null-%00-null"]  # all @example.com

KEEP, CLOSE, ANY = "keep", "close", "any"


class V:
    """An expected verdict.

    statuses: the final statuses accepted (empty: nothing may be answered);
    drop: no answer is (also) acceptable;
    then: over TCP, what must become of the connection after the answer;
    auth: a user of example.com: the first answer must be a 401, answered by sending the
          same bytes again with an Authorization header; statuses then apply to the
          answer to that;
    extra: statuses of further answers allowed before a close (TCP);
    wait: TCP only: nothing answered, the server waits for the rest of the
          message and closes the connection after a while.
    """

    def __init__(self, *statuses, drop=False, then=KEEP, auth=None, extra=(), wait=False):
        self.statuses = set(statuses)
        self.drop = drop
        self.then = then
        self.auth = auth
        self.extra = set(extra)
        self.wait = wait

    def __repr__(self):
        parts = [str(sorted(self.statuses))] if self.statuses else []
        if self.drop:
            parts.append("dropped")
        if self.auth:
            parts.insert(0, "401 then")
        if self.wait:
            parts.append("wait, then close")
        return " or ".join(parts) if not self.auth else " ".join(parts)


def R(*statuses, **kw):
    return V(*statuses, **kw)


def DROP(then=KEEP):
    return V(drop=True, then=then)


def AUTH(user, *statuses, **kw):
    return V(*statuses, auth=user, **kw)


WAIT = V(wait=True)


class Case:
    def __init__(self, path, tcp, udp=None, hook=None, why=""):
        self.path = path
        self.tcp = tcp
        self.udp = udp if udp is not None else tcp
        self.hook = hook
        self.why = why

    @property
    def name(self):
        return self.path.split("/", 1)[-1]

    def data(self):
        with open(os.path.join(CONFORMANCE, self.path), "rb") as f:
            return f.read()


# ------------------------------------------------------------------ checks run after a verdict

def contact_uris(resp):
    out = []
    for v in resp.all("Contact") + resp.all("m"):
        for part in v.split(","):
            part = part.strip()
            if part.startswith("<") and ">" in part:
                out.append(part[1:part.index(">")])
    return out


def deregister(server, user):
    c = SipClient(server)
    try:
        r = c.register(user, PASSWORD, contact="*", expires=0, domain="example.com")
        check(r is not None and r.status == 200, "could not remove %s's bindings: %r" % (user, r))
    finally:
        c.close()


def hook_bext01(server, resp, transport):
    tags = {t.strip() for v in resp.all("Unsupported") for t in v.split(",")}
    want = {"noProxiesSupportThis", "norDoAnyProxiesSupportThis"}
    # acting as a proxy for user@example.com: the Proxy-Require tags (RFC 3261 16.3 step 4),
    # never the end-to-end Require ones
    check(tags == want, "420 Unsupported %r, expected the Proxy-Require tags %r" % (tags, want))


def hook_regaut01(server, resp, transport):
    chals = resp.all("WWW-Authenticate")
    check(chals and all(c.lower().startswith("digest ") for c in chals),
          "the 401 must challenge with a scheme we support: %r" % chals)


def hook_cparam01(server, resp, transport):
    # RFC 4475 3.3.12: unknownparam is a contact-param: it must not show up as a URI parameter
    # of the binding, neither in the 200 nor in later fetches
    uris = [u for u in contact_uris(resp) if "gw1.example.net" in u]
    check(uris == ["sip:+19725552222@gw1.example.net"], "200 lists the binding as %r" % uris)
    rows = reg_list(server, "watson@example.com", want=lambda r: len(r) >= 1)
    check([r[0] for r in rows] == ["sip:+19725552222@gw1.example.net"],
          "reg list watson@example.com: %r" % rows)


def hook_cparam02(server, resp, transport):
    # RFC 4475 3.3.13: here unknownparam is a URI parameter and stays in the binding's URI.
    # The URI equals cparam01's under RFC 3261 19.1.4 (a parameter present in only one URI is
    # ignored), so 10.3 step 7 updates cparam01's binding instead of adding a second one.
    uris = [u for u in contact_uris(resp) if "gw1.example.net" in u]
    check(uris == ["sip:+19725552222@gw1.example.net;unknownparam"],
          "200 lists the bindings as %r (one binding expected, RFC 3261 10.3 step 7)" % uris)
    rows = reg_list(server, "watson@example.com",
                    want=lambda r: [x[0] for x in r] == ["sip:+19725552222@gw1.example.net;"
                                                         "unknownparam"])
    check([r[0] for r in rows] == ["sip:+19725552222@gw1.example.net;unknownparam"],
          "reg list watson@example.com: %r" % rows)


def hook_regescrt(server, resp, transport):
    want = "sip:user@example.com?Route=%3Csip:sip.example.com%3E"
    check(want in contact_uris(resp), "200 lists %r, not %s" % (contact_uris(resp), want))
    rows = reg_list(server, "user@example.com", want=lambda r: any(x[0] == want for x in r))
    check(any(r[0] == want for r in rows), "reg list user@example.com: %r" % rows)
    deregister(server, "user")  # user@example.com must stay unregistered (480) for the rest


def hook_regbadct(server, resp, transport):
    rows = reg_list(server, "user@example.com")
    check(not any("Route" in r[0] for r in rows), "regbadct was bound anyway: %r" % rows)


def hook_escnull(server, resp, transport):
    # RFC 4475 3.1.1.4: two distinct bindings, for the AOR whose user is null-%00-null, never
    # truncated at the escaped NUL
    want = {"sip:%00@host5.example.com", "sip:%00%00@host5.example.com"}
    rows = reg_list(server, "null-%00-null@example.com", want=lambda r: len(r) >= 2)
    check({r[0] for r in rows} == want and len(rows) == 2,
          "reg list null-%%00-null@example.com: %r" % rows)


def hook_ipv6_good(server, resp, transport):
    want = "sip:caller@[2001:db8::1]"
    rows = reg_list(server, "user@example.com", want=lambda r: any(x[0] == want for x in r))
    check(any(r[0] == want for r in rows), "reg list user@example.com: %r" % rows)
    deregister(server, "user")


def hook_dblreq_udp(server, resp, transport):
    # RFC 4475 3.1.1.8: the REGISTER is processed, the INVITE after it in the datagram is not
    data = open(os.path.join(CONFORMANCE, "rfc4475", "dblreq.dat"), "rb").read()
    reg_len = data.index(b"\r\n\r\n") + 4
    text = server.log_text()
    check(" %d bytes: REGISTER sip:example.com SIP/2.0" % reg_len in text,
          "no log line for dblreq's REGISTER (%d bytes)" % reg_len)
    check("INVITE sip:joe@example.com" not in text and "dblreq.0ha0isnda977644900765" not in text,
          "the INVITE after the REGISTER in dblreq's datagram was processed")
    rows = reg_list(server, "j.user@example.com", want=lambda r: len(r) >= 1)
    check([r[0] for r in rows] == ["sip:j.user@host.example.com"],
          "reg list j.user@example.com: %r" % rows)


# --------------------------------------------------------------------------------- the tables

# The valid requests are answered as routing decides: 404 for user@example.com (registered
# nowhere) and for an unknown user of a served domain alike (no user enumeration), 407 when From is in example.com, 403 between two foreign
# domains, 501 for an unknown method addressed to the server itself.
RFC4475 = [
    Case("rfc4475/wsinv.dat", R(407),
         why="valid; a To tag and our Route, but not one we signed: no dialog of ours, so "
             "From example.com is challenged"),
    Case("rfc4475/intmeth.dat", R(407), why="valid; From example.com is challenged"),
    Case("rfc4475/esc01.dat", R(403), why="valid; example.net to example.net: not a relay"),
    Case("rfc4475/escnull.dat", AUTH("null-%00-null", 200), hook=hook_escnull),
    Case("rfc4475/esc02.dat", R(501), why="unknown method to the server itself"),
    Case("rfc4475/lwsdisp.dat", R(407)),
    Case("rfc4475/longreq.dat", R(404)),
    Case("rfc4475/dblreq.dat",
         # over TCP the INVITE is the next message on the stream; its body is 155 octets for a
         # Content-Length of 150, and the 5 left over break the framing
         R(401, then=CLOSE, extra=(404,)),
         udp=AUTH("j.user", 200), why="REGISTER processed, the trailing INVITE is not"),
    Case("rfc4475/semiuri.dat", R(404),
         why="user part 'user;par=u@example.net' of example.com: no such user"),
    Case("rfc4475/transports.dat", R(407)),
    Case("rfc4475/mpart01.dat", R(407)),
    Case("rfc4475/unreason.dat", DROP(), why="a response for no transaction of ours"),
    Case("rfc4475/noreason.dat", DROP()),
    Case("rfc4475/badinv01.dat", R(400)),
    Case("rfc4475/clerr.dat", WAIT, udp=R(400)),
    Case("rfc4475/ncl.dat", R(400, then=CLOSE), udp=R(400), why="framing lost over TCP"),
    Case("rfc4475/scalar02.dat", R(400)),
    Case("rfc4475/scalarlg.dat", DROP()),
    Case("rfc4475/quotbal.dat", R(400, 404), why="400, or infer the quote and route"),
    Case("rfc4475/ltgtruri.dat", R(400)),
    Case("rfc4475/lwsruri.dat", R(400, then=ANY)),
    Case("rfc4475/lwsstart.dat", R(400, 404, then=ANY), why="400, or ignore the extra SP"),
    Case("rfc4475/trws.dat", R(400, 407, then=ANY), why="400, or ignore the trailing SP"),
    Case("rfc4475/escruri.dat", R(400, 404), why="400, or drop the URI headers and route"),
    Case("rfc4475/baddate.dat", R(400, 404), why="400 only if Date matters, else route"),
    Case("rfc4475/regbadct.dat", AUTH("user", 400), hook=hook_regbadct),
    Case("rfc4475/badaspec.dat", R(400, 407), why="400, or ignore the spaces and route"),
    Case("rfc4475/baddn.dat", WAIT, udp=R(400, 407),
         why="no final empty line: incomplete on a stream"),
    Case("rfc4475/variants/baddn-crlf-terminated.dat", R(400, 407)),
    Case("rfc4475/badvers.dat", R(505)),
    Case("rfc4475/mismatch01.dat", R(400)),
    Case("rfc4475/mismatch02.dat", R(501, 400)),
    Case("rfc4475/bigcode.dat", DROP(then=ANY)),
    Case("rfc4475/badbranch.dat", R(400, 404), why="400, or RFC 2543 matching and route"),
    Case("rfc4475/insuf.dat", R(400)),
    Case("rfc4475/unkscm.dat", R(416)),
    Case("rfc4475/novelsc.dat", R(416, 404)),
    Case("rfc4475/unksm2.dat", R(400), why="registrar: To is not a SIP AOR"),
    Case("rfc4475/bext01.dat", R(420), hook=hook_bext01),
    Case("rfc4475/invut.dat", R(404), why="a proxy ignores the body type"),
    Case("rfc4475/regaut01.dat", R(401), hook=hook_regaut01),
    Case("rfc4475/multi01.dat", R(400)),
    Case("rfc4475/mcl01.dat", R(400, then=CLOSE), udp=R(400), why="framing lost over TCP"),
    Case("rfc4475/bcast.dat", DROP()),
    Case("rfc4475/zeromf.dat", R(483), why="OPTIONS to a user: proxied, Max-Forwards 0"),
    Case("rfc4475/cparam01.dat", AUTH("watson", 200), hook=hook_cparam01),
    Case("rfc4475/cparam02.dat", AUTH("watson", 200), hook=hook_cparam02),
    Case("rfc4475/regescrt.dat", AUTH("user", 200), hook=hook_regescrt),
    Case("rfc4475/sdp01.dat", R(404), why="Accept concerns the UAS; a proxy routes"),
    Case("rfc4475/inv2543.dat",
         # no Content-Length on a stream: the body counts as empty (RFC 3261 18.3) and the SDP
         # lines that follow are not a message
         V(400, 404, drop=True, then=CLOSE), udp=R(404)),
    Case("rfc4475/test.dat", V(400, drop=True, then=CLOSE), udp=V(400, drop=True),
         why="no SIP-Version, no Via: nothing to answer"),
]

RFC5118 = [
    Case("rfc5118/wire/ipv6-good", AUTH("user", 200), hook=hook_ipv6_good,
         why="REGISTER to the server's own [2001:db8::10]"),
    Case("rfc5118/wire/ipv6-bad", R(400)),
    Case("rfc5118/wire/port-ambiguous", R(403),
         why="[2001:db8::10:5070] is another host, not the server on port 5070, and a "
             "REGISTER that claims a From of ours proves nothing: no relay (403)"),
    Case("rfc5118/wire/port-unambiguous", R(401), why="[2001:db8::10]:5070 is the server"),
    Case("rfc5118/wire/via-received-param-with-delim", R(481),
         why="BYE to the server itself for no dialog (RFC 3261 12.2.2)"),
    Case("rfc5118/wire/via-received-param-no-delim", R(200), why="OPTIONS to the server"),
    Case("rfc5118/wire/ipv6-in-sdp", R(407)),
    Case("rfc5118/wire/mult-ip-in-header", R(407),
         why="a BYE with a To tag but no route set we signed, From example.com: challenged"),
    Case("rfc5118/wire/mult-ip-in-sdp", R(407)),
    Case("rfc5118/wire/ipv4-mapped-ipv6", R(404)),
    Case("rfc5118/wire/ipv6-bug-abnf-3-colons", R(407, 400)),
    Case("rfc5118/wire/ipv6-correct-abnf-2-colons", R(407)),
]


def test_tables_cover_every_file():
    on_disk = set()
    for sub in ("rfc4475", "rfc4475/variants", "rfc5118/wire"):
        d = os.path.join(CONFORMANCE, sub)
        on_disk |= {sub + "/" + f for f in os.listdir(d)
                    if os.path.isfile(os.path.join(d, f)) and f not in ("MANIFEST.tsv",
                                                                         "SHA256SUMS")}
    tabled = {c.path for c in RFC4475 + RFC5118}
    check(on_disk == tabled, "files without a verdict: %s; verdicts without a file: %s"
          % (sorted(on_disk - tabled), sorted(tabled - on_disk)))


# ------------------------------------------------------------------------------------ running

def new_server():
    # users provisioned before the start: a CLI write while the server runs flushes its
    # subscriber cache, which must not race with the verdicts here (test_robustness.py's
    # test_subscriber_changes_during_traffic is about that)
    s = Server(domains=DOMAINS)
    for u in USERS:
        s.add_user(u, PASSWORD, domain="example.com")
    return s.start()


class Run:
    """One table against one server; a server that dies is recorded and replaced, so that one
    crash does not hide the verdicts of the files after it."""

    def __init__(self, transport):
        self.transport = transport
        self.failures = []
        self.server = new_server()
        self.fd0 = fd_count(self.server.proc.pid)

    def fail(self, case, msg):
        self.failures.append("%s over %s: %s%s" % (case.name, self.transport, msg,
                                                   " [%s]" % case.why if case.why else ""))

    def alive(self, case):
        s = self.server
        if s.proc.poll() is not None:
            rc = s.proc.returncode
            tail = s.log_tail(4)
            s.stop(check_clean=False)
            self.fail(case, "SERVER DIED (exit %s):\n%s" % (rc, tail))
            self.server = new_server()
            self.fd0 = fd_count(self.server.proc.pid)
            return False
        if not s.ping(timeout=1.0):
            time.sleep(0.5)
            if s.proc.poll() is not None:
                return self.alive(case)
            self.fail(case, "server does not answer OPTIONS over UDP afterwards")
        if not tcp_ping(s):
            self.fail(case, "server does not answer OPTIONS on a new TCP connection afterwards")
        return True

    def finish(self):
        s = self.server
        deadline = time.time() + 5
        while fd_count(s.proc.pid) > self.fd0 + 2 and time.time() < deadline:
            time.sleep(0.1)
        n = fd_count(s.proc.pid)
        if n > self.fd0 + 2:
            self.failures.append("open file descriptors grew from %d to %d: %s"
                                 % (self.fd0, n, sorted(os.listdir("/proc/%d/fd" % s.proc.pid))))
        try:
            s.stop()
        except TestFailure as e:
            self.failures.append("stop: %s" % e)
        if self.failures:
            raise TestFailure("%d failure(s):\n  " % len(self.failures)
                              + "\n  ".join(self.failures))


def judge(run, case, v, first, seen):
    """Checks the answer to the (possibly authenticated) request; returns the final or None."""
    if first is None or first == CLOSED:
        if not v.drop:
            run.fail(case, "expected %r, got %s" % (v, "nothing" if first is None else
                                                    "the connection closed"))
        return None
    if first.status not in v.statuses:
        run.fail(case, "expected %r, got %r" % (v, first))
        return None
    return first


def tcp_case(run, case, data):
    v = case.tcp
    try:
        s = Stream(run.server.addr)
    except OSError as e:
        run.fail(case, "cannot connect: %s" % e)
        return
    try:
        s.send(data)
        if v.statuses or v.auth:
            final, seen = s.recv_final(5)
            if v.auth:
                if final is None or final == CLOSED or final.status != 401:
                    run.fail(case, "expected 401 first, got %r" % (final,))
                    return
                s.send(register_auth(data, final, v.auth, PASSWORD))
                final, seen = s.recv_final(5)
            final = judge(run, case, v, final, seen)
            if final is not None and case.hook:
                try:
                    case.hook(run.server, final, "tcp")
                except TestFailure as e:
                    run.fail(case, str(e))
        elif v.then != KEEP:
            # dropped, and the connection may be closed: nothing may come back meanwhile
            # (with KEEP, the ping below is the check: its answer must come first)
            r = s.recv_msg(1.0)
            if r not in (None, CLOSED):
                run.fail(case, "expected no answer, got %r" % r)
        if v.then == KEEP:
            ok, why = stream_ping(s, run.server.host)
            if not ok:
                run.fail(case, "connection not usable after the verdict: %s" % why)
        elif v.then == CLOSE:
            if not s.wait_closed(5):
                run.fail(case, "the server did not close the connection")
            while True:
                r = s.recv_msg(0)
                if r is None or r == CLOSED:
                    break
                if r.status not in v.extra:
                    run.fail(case, "unexpected %r before the close" % r)
    except OSError as e:
        run.fail(case, "socket error: %s" % e)
    finally:
        s.close()


class Waiter(threading.Thread):
    """Sends an incomplete message over TCP and watches what the server does."""

    def __init__(self, server, case):
        super().__init__(daemon=True)
        self.case = case
        self.stream = Stream(server.addr)
        self.stream.send(case.data())
        self.t0 = time.time()
        self.closed_after = None
        self.got = []

    def run(self):
        while time.time() - self.t0 < 20:
            r = self.stream.recv_msg(0.5)
            if r == CLOSED:
                self.closed_after = time.time() - self.t0
                return
            if r is not None:
                self.got.append(r)

    def verdict(self, run):
        self.join(25)
        self.stream.close()
        if self.got:
            run.fail(self.case, "expected no answer to an incomplete message, got %r" % self.got)
        if self.closed_after is None:
            run.fail(self.case, "connection still open 20 s after an incomplete message")
        elif self.closed_after < 2:
            run.fail(self.case, "closed %.1f s after the message: the server did not wait for "
                     "the rest" % self.closed_after)
        elif self.closed_after > 15:
            run.fail(self.case, "closed only after %.1f s of silence" % self.closed_after)


def run_tcp(table):
    run = Run("TCP")
    try:
        _run_tcp(run, table)
    except BaseException:
        run.server.stop(check_clean=False)  # an error in the test itself: no server left behind
        raise


def _run_tcp(run, table):
    waiting = [case for case in table if case.tcp.wait]

    def start_waiters():
        ws = [Waiter(run.server, case) for case in waiting]
        for w in ws:
            w.start()
        return run.server, ws

    waiters_server, waiters = start_waiters()
    for case in table:
        if case.tcp.wait:
            continue
        tcp_case(run, case, case.data())
        run.alive(case)
    if waiters_server is not run.server:
        # the server they were talking to died: their connections died with it
        for w in waiters:
            w.join(1)
            w.stream.close()
        waiters_server, waiters = start_waiters()
    for w in waiters:
        w.verdict(run)
    run.alive(Case("(incomplete messages)", None))
    run.finish()


def test_rfc4475_tcp():
    run_tcp(RFC4475)


def test_rfc5118_tcp():
    run_tcp(RFC5118)


def udp_case(run, catcher, case, data):
    v = case.udp
    via = top_via(data)
    port = via[1] if via and via[1] else 5060
    ports = {5060, port}
    if not catcher.sock(port):
        print("note: %s: %s:%d is taken, UDP verdict not checked" % (case.name, catcher.HOST,
                                                                     port))
        catcher.send(data, run.server.addr)
        return
    catcher.drain()
    catcher.send(data, run.server.addr)
    wait = 5 if v.statuses or v.auth else 0.7
    final, seen = catcher.recv_final(ports, wait)
    if v.auth:
        if final is None or final.status != 401:
            run.fail(case, "expected 401 first, got %r" % (final,))
            return
        catcher.send(register_auth(data, final, v.auth, PASSWORD), run.server.addr)
        final, seen = catcher.recv_final(ports, 5)
    final = judge(run, case, v, final, seen)
    if final is not None and case.hook:
        try:
            case.hook(run.server, final, "udp")
        except TestFailure as e:
            run.fail(case, str(e))


def test_torture_udp():
    """Every file as one datagram. port-ambiguous goes last: it is forwarded, so it leaves a
    server transaction (Timer J, 32 s over UDP) that the other RFC 5118 REGISTERs, which share
    its branch, sent-by and method, would match as retransmissions (RFC 3261 17.2.3)."""
    table = RFC4475 + sorted(RFC5118, key=lambda c: c.name.endswith("port-ambiguous"))
    hooks = {"rfc4475/dblreq.dat": hook_dblreq_udp}
    run = Run("UDP")
    catcher = UdpCatcher()
    try:
        for case in table:
            if case.path in hooks:
                case = Case(case.path, case.tcp, case.udp, hooks[case.path], case.why)
            udp_case(run, catcher, case, case.data())
            run.alive(case)
    except BaseException:
        run.server.stop(check_clean=False)  # an error in the test itself: no server left behind
        raise
    finally:
        catcher.close()
    run.finish()


# ------------------------------------------------------------ the same messages as a UAS would

def test_bext01_require_as_uas():
    """bext01 addressed to the server itself: the server is the UAS and names the Require tags."""
    data = open(os.path.join(CONFORMANCE, "rfc4475", "bext01.dat"), "rb").read()
    data = data.replace(b"OPTIONS sip:user@example.com SIP/2.0",
                        b"OPTIONS sip:registrar.example.com SIP/2.0", 1)
    with Server(domains=DOMAINS) as s:
        st = Stream(s.addr)
        st.send(data)
        r, _ = st.recv_final(5)
        st.close()
        check(r not in (None, CLOSED) and r.status == 420, "expected 420, got %r" % (r,))
        tags = {t.strip() for v in r.all("Unsupported") for t in v.split(",")}
        check(tags == {"nothingSupportsThis", "nothingSupportsThisEither"},
              "Unsupported: %r" % tags)


def test_in_dialog_request_to_the_server_itself():
    """RFC 5118 via-received-param-with-delim's BYE (To tag, no user) addressed to the server
    under a name it has whatever the IPv6 domain handling: the server is the UAS and has no
    such dialog: 481 (RFC 3261 12.2.2), not 404."""
    data = open(os.path.join(CONFORMANCE, "rfc5118", "wire", "via-received-param-with-delim"),
                "rb").read()
    data = data.replace(b"BYE sip:[2001:db8::10] SIP/2.0", b"BYE sip:registrar.example.com SIP/2.0",
                        1)
    with Server(domains=DOMAINS) as s:
        st = Stream(s.addr)
        st.send(data)
        r, _ = st.recv_final(5)
        st.close()
        check(r not in (None, CLOSED) and r.status == 481, "expected 481, got %r" % (r,))


def test_zeromf_as_uas():
    """zeromf addressed to the server itself: a UAS processes Max-Forwards 0 normally (200)."""
    data = open(os.path.join(CONFORMANCE, "rfc4475", "zeromf.dat"), "rb").read()
    data = data.replace(b"OPTIONS sip:user@example.com SIP/2.0",
                        b"OPTIONS sip:registrar.example.com SIP/2.0", 1)
    with Server(domains=DOMAINS) as s:
        st = Stream(s.addr)
        st.send(data)
        r, _ = st.recv_final(5)
        st.close()
        check(r not in (None, CLOSED) and r.status == 200, "expected 200, got %r" % (r,))


if __name__ == "__main__":
    main(globals())
