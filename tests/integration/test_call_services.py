#!/usr/bin/env python3
"""Call services, driven by SIPp: several SIPp UAS instances play one user's
desk phone, PC and mobile (each registered with its own User-Agent, feature
tag or explicit terminal parameter), a SIPp UAC calls that user with 407
authentication, and the settings are changed with `switchboard user set`
while the server runs (no restart: the next call follows them).

Each UAS writes a SIPp message log; the test reads from it when each INVITE
arrived, and what it carried (Diversion), to check order, timing, skipping,
first-answer-wins with CANCEL of the rest, busy handling, q-value order,
every kind of forwarding, the loop cut, and the CLI's answers to bad values.
"""
import datetime
import hashlib
import os
import re
import tempfile
import time

from sbtest import (SCENARIOS, Server, SippBackground, SipClient, auth_kw, check, cli, free_port,
                    main, need, sipp, write_inf)
from test_calls import uac_scenario


class Phone:
    """A SIPp UAS registered as one terminal of a user."""

    def __init__(self, server, tmp, user, password, scenario, ua=None, params="", q=None,
                 name=None):
        need("sipp")
        self.port = free_port()
        self.name = name or "%s-%d" % (user, self.port)
        self.log = os.path.join(tmp, "%s.msg.log" % self.name)
        self.proc = SippBackground(["-sf", os.path.join(SCENARIOS, scenario), "-i", "127.0.0.1",
                                    "-p", self.port, "-t", "u1", "-m", 1, "-trace_msg",
                                    "-message_file", self.log], cwd=tmp)
        c = SipClient(server)
        contact = "<sip:%s@127.0.0.1:%d;transport=udp>%s%s" % (
            user, self.port, params, ";q=%s" % q if q else "")
        extra = ["User-Agent: %s" % ua] if ua else []
        r = c.register(user, password, contact=contact, expires=600, extra=extra)
        c.close()
        check(r is not None and r.status == 200, "registration of %s failed: %r" % (self.name, r))

    def messages(self):
        """(time, first line, whole message) for each message the UAS received."""
        try:
            text = open(self.log, errors="replace").read()
        except FileNotFoundError:
            return []
        out = []
        for m in re.finditer(r"-{20,} (\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d\.\d+)\s*\n"
                             r"\w+ message received \[\d+\] bytes :\s*\n\s*\n(.*?)(?=\n-{20,} |\Z)",
                             text, re.S):
            stamp = datetime.datetime.fromisoformat(m.group(1).replace(" ", "T")).timestamp()
            body = m.group(2)
            out.append((stamp, body.split("\n", 1)[0].strip(), body))
        return out

    def invites(self):
        return [(t, msg) for t, first, msg in self.messages() if first.startswith("INVITE ")]

    def got(self, method):
        return any(first.startswith(method + " ") for _, first, _ in self.messages())

    def wait(self, timeout=30):
        return self.proc.wait(timeout)

    def stop(self):
        self.proc.stop()


def users(server, *names):
    for n in names:
        server.add_user(n, n + "pw")


def user_set(server, aor, *words, expect_rc=0):
    p = cli("user", "set", aor, *words, db=server.db, check_rc=False)
    check(p.returncode == expect_rc, "user set %s %s -> %d (%s)" % (aor, " ".join(words),
                                                                     p.returncode, p.stderr))
    time.sleep(0.6)  # the server notices a committed change within 250 ms
    return p


def call(server, tmp, callee, expect=200, caller="alice"):
    """One call from a SIPp UAC with 407 auth; expect is the final status it must see."""
    xml = os.path.join(SCENARIOS, "uac_call_auth.xml") if expect == 200 else uac_scenario(tmp, expect)
    inf = write_inf(os.path.join(tmp, "callers.csv"),
                    [(caller, auth_kw(caller, caller + "pw"), "127.0.0.1", callee)])
    log = os.path.join(tmp, "uac-%d.msg.log" % time.time_ns())
    t0 = time.time()
    rc, out = sipp([server.host, "-sf", xml, "-inf", inf, "-m", 1, "-i", "127.0.0.1",
                    "-p", free_port(), "-d", 0, "-timeout", "90s", "-timeout_error",
                    "-trace_msg", "-message_file", log], cwd=tmp, timeout=120)
    check(rc == 0, "caller did not get %d:\n%s\n%s" % (expect, out[-1500:], server.log_tail(30)))
    text = open(log, errors="replace").read() if os.path.exists(log) else ""
    return t0, text


def first_invite(phone):
    inv = phone.invites()
    check(inv, "%s got no INVITE" % phone.name)
    return inv[0][0]


def test_sequential_by_terminal_type():
    """desk 2 s -> pc 2 s -> mobile: each step rings alone, in order, for its
    time; the mobile answers; desk and PC were cancelled; one 180 upstream."""
    tmp = tempfile.mkdtemp()
    with Server() as s:
        users(s, "alice", "bob")
        desk = Phone(s, tmp, "bob", "bobpw", "uas_ring.xml", ua="Yealink SIP-T46S 66.85.0.5",
                     name="desk")
        pc = Phone(s, tmp, "bob", "bobpw", "uas_ring.xml", ua="baresip v2.9.0 (x86_64/linux)",
                   name="pc")
        mobile = Phone(s, tmp, "bob", "bobpw", "uas_answer.xml", ua="SomePhone 1.0",
                       params=';+sip.mobility="mobile"', name="mobile")
        show = cli("user", "show", "bob@127.0.0.1", db=s.db).stdout
        user_set(s, "bob@127.0.0.1", "ring=sequential", "order=desk:2,pc:2,mobile:10")
        t0, uac_log = call(s, tmp, "bob")
        for p in (desk, pc, mobile):
            rc, out = p.wait(20)
            check(rc == 0, "%s scenario failed:\n%s" % (p.name, out[-1500:]))
        td, tp, tm = first_invite(desk), first_invite(pc), first_invite(mobile)
        check(td < tp < tm, "order desk %.2f pc %.2f mobile %.2f" % (td, tp, tm))
        check(1.7 < tp - td < 3.0, "desk rang %.2f s, not 2" % (tp - td))
        check(1.7 < tm - tp < 3.0, "pc rang %.2f s, not 2" % (tm - tp))
        check(desk.got("CANCEL") and pc.got("CANCEL"), "earlier steps were not cancelled")
        check(uac_log.count("SIP/2.0 180") == 1,
              "the caller saw %d 180s, not one" % uac_log.count("SIP/2.0 180"))
        # the CLI knows each terminal's type
        show = cli("user", "show", "bob@127.0.0.1", db=s.db).stdout
        check("sequential" in show and "desk:2,pc:2,mobile:10" in show, "user show:\n" + show)
        for t in ("desk", "pc", "mobile"):
            check(re.search(r"\b%s\b" % t, show.split("bindings:")[1]), "no %s in:\n%s" % (t, show))
        reg = cli("reg", "list", "bob@127.0.0.1", db=s.db).stdout
        check("TERMINAL" in reg and "mobile" in reg, "reg list:\n" + reg)


def test_sequential_skips_missing_type_and_answers_first_step():
    """No PC registered: the mobile step starts right after the desk step; a
    desk phone that answers ends the search at once."""
    tmp = tempfile.mkdtemp()
    with Server() as s:
        users(s, "alice", "bob")
        desk = Phone(s, tmp, "bob", "bobpw", "uas_ring.xml", params=";terminal=desk", name="desk")
        mobile = Phone(s, tmp, "bob", "bobpw", "uas_answer.xml", ua="Linphone Android 5.2",
                       name="mobile")
        user_set(s, "bob@127.0.0.1", "ring=sequential", "order=desk:2,pc:5,mobile:10")
        call(s, tmp, "bob")
        for p in (desk, mobile):
            rc, out = p.wait(20)
            check(rc == 0, "%s failed:\n%s" % (p.name, out[-1500:]))
        gap = first_invite(mobile) - first_invite(desk)
        check(1.7 < gap < 3.0, "the empty pc step was not skipped: %.2f s" % gap)

    with Server() as s:
        users(s, "alice", "bob")
        desk = Phone(s, tmp, "bob", "bobpw", "uas_answer.xml", params=";terminal=desk", name="desk2")
        pc = Phone(s, tmp, "bob", "bobpw", "uas_ring.xml", params=";terminal=pc", name="pc2")
        user_set(s, "bob@127.0.0.1", "ring=sequential", "order=desk:3,pc:3")
        call(s, tmp, "bob")
        rc, out = desk.wait(20)
        check(rc == 0, "desk failed:\n" + out[-1500:])
        time.sleep(3.5)
        check(not pc.invites(), "the pc rang after the desk phone answered")
        pc.stop()


def test_busy_moves_on_or_stops():
    """A busy desk phone moves the search to the next step at once; with
    stop_on_busy=yes the caller gets the 486 and nothing else rings."""
    tmp = tempfile.mkdtemp()
    with Server() as s:
        users(s, "alice", "bob")
        desk = Phone(s, tmp, "bob", "bobpw", "uas_busy.xml", params=";terminal=desk", name="desk")
        pc = Phone(s, tmp, "bob", "bobpw", "uas_answer.xml", params=";terminal=pc", name="pc")
        user_set(s, "bob@127.0.0.1", "ring=sequential", "order=desk:10,pc:10")
        call(s, tmp, "bob")
        for p in (desk, pc):
            rc, out = p.wait(20)
            check(rc == 0, "%s failed:\n%s" % (p.name, out[-1500:]))
        gap = first_invite(pc) - first_invite(desk)
        check(gap < 1.0, "busy did not move on at once: %.2f s" % gap)

    with Server() as s:
        users(s, "alice", "bob")
        desk = Phone(s, tmp, "bob", "bobpw", "uas_busy.xml", params=";terminal=desk", name="desk3")
        pc = Phone(s, tmp, "bob", "bobpw", "uas_answer.xml", params=";terminal=pc", name="pc3")
        user_set(s, "bob@127.0.0.1", "ring=sequential", "order=desk:10,pc:10", "stop_on_busy=yes")
        call(s, tmp, "bob", expect=486)
        rc, out = desk.wait(20)
        check(rc == 0, "desk failed:\n" + out[-1500:])
        time.sleep(1)
        check(not pc.invites(), "the pc rang although stop_on_busy is set")
        pc.stop()


def test_q_value_serial_forking():
    """ring=q-value: q=1.0 rings first (both together), then q=0.5."""
    tmp = tempfile.mkdtemp()
    with Server() as s:
        users(s, "alice", "bob")
        a = Phone(s, tmp, "bob", "bobpw", "uas_ring.xml", q="1.0", name="q10a")
        b = Phone(s, tmp, "bob", "bobpw", "uas_ring.xml", q="1.0", name="q10b")
        c = Phone(s, tmp, "bob", "bobpw", "uas_answer.xml", q="0.5", name="q05")
        user_set(s, "bob@127.0.0.1", "ring=q-value", "ring_time=2")
        call(s, tmp, "bob")
        for p in (a, b, c):
            rc, out = p.wait(20)
            check(rc == 0, "%s failed:\n%s" % (p.name, out[-1500:]))
        ta, tb, tc = first_invite(a), first_invite(b), first_invite(c)
        check(abs(ta - tb) < 0.5, "equal q did not ring together")
        check(1.7 < tc - max(ta, tb) < 3.0, "q=0.5 did not follow after 2 s: %.2f" % (tc - ta))


def diversion_of(phone):
    inv = phone.invites()
    check(inv, "%s got no INVITE" % phone.name)
    m = re.search(r"^Diversion:.*$", inv[0][1], re.M | re.I)
    return m.group(0) if m else ""


def test_forwarding_unconditional_busy_noanswer_unregistered():
    tmp = tempfile.mkdtemp()
    with Server() as s:
        users(s, "alice", "bob", "carol")
        # unconditional: bob's own phone never rings
        bob = Phone(s, tmp, "bob", "bobpw", "uas_ring.xml", name="bob-cfu")
        carol = Phone(s, tmp, "carol", "carolpw", "uas_answer.xml", name="carol-cfu")
        user_set(s, "bob@127.0.0.1", "forward_always=carol")
        call(s, tmp, "bob")
        rc, out = carol.wait(20)
        check(rc == 0, "carol failed:\n" + out[-1500:])
        d = diversion_of(carol)
        check("bob@127.0.0.1" in d and "reason=unconditional" in d, "Diversion: %r" % d)
        check(not bob.invites(), "bob's phone rang despite unconditional forwarding")
        bob.stop()

    with Server() as s:
        users(s, "alice", "bob", "carol")
        # on busy
        user_set(s, "bob@127.0.0.1", "forward_busy=carol")
        bob = Phone(s, tmp, "bob", "bobpw", "uas_busy.xml", name="bob-cfb")
        carol = Phone(s, tmp, "carol", "carolpw", "uas_answer.xml", name="carol-cfb")
        call(s, tmp, "bob")
        for p in (bob, carol):
            rc, out = p.wait(20)
            check(rc == 0, "%s failed:\n%s" % (p.name, out[-1500:]))
        check("reason=user-busy" in diversion_of(carol), "Diversion: %r" % diversion_of(carol))

    with Server() as s:
        users(s, "alice", "bob", "carol")
        # on no answer, after 2 s of ringing
        bob = Phone(s, tmp, "bob", "bobpw", "uas_ring.xml", name="bob-cfna")
        carol = Phone(s, tmp, "carol", "carolpw", "uas_answer.xml", name="carol-cfna")
        user_set(s, "bob@127.0.0.1", "forward_noanswer=carol@127.0.0.1", "noanswer_after=2")
        call(s, tmp, "bob")
        for p in (bob, carol):
            rc, out = p.wait(20)
            check(rc == 0, "%s failed:\n%s" % (p.name, out[-1500:]))
        gap = first_invite(carol) - first_invite(bob)
        check(1.7 < gap < 3.0, "no-answer forwarding after %.2f s, not 2" % gap)
        check("reason=no-answer" in diversion_of(carol), "Diversion: %r" % diversion_of(carol))

    with Server() as s:
        users(s, "alice", "bob", "carol")
        # not registered
        carol = Phone(s, tmp, "carol", "carolpw", "uas_answer.xml", name="carol-cfnr")
        user_set(s, "bob@127.0.0.1", "forward_unregistered=carol")
        call(s, tmp, "bob")
        rc, out = carol.wait(20)
        check(rc == 0, "carol failed:\n" + out[-1500:])
        check("reason=unavailable" in diversion_of(carol), "Diversion: %r" % diversion_of(carol))


def test_forwarding_with_history_info():
    """calls.forward_header: both -> Diversion and History-Info (RFC 7044,
    RFC 4458 cause) on the forwarded INVITE; a chain bob -> carol -> dave
    indexes 1, 1.1, 1.1.1."""
    tmp = tempfile.mkdtemp()
    cfg = os.path.join(tmp, "hi.yaml")
    with open(cfg, "w") as f:
        f.write("calls:\n  forward_header: both\n")
    with Server(config=cfg) as s:
        users(s, "alice", "bob", "carol", "dave")
        dave = Phone(s, tmp, "dave", "davepw", "uas_answer.xml", name="dave-hi")
        user_set(s, "bob@127.0.0.1", "forward_always=carol")
        user_set(s, "carol@127.0.0.1", "forward_unregistered=dave")
        call(s, tmp, "bob")
        rc, out = dave.wait(20)
        check(rc == 0, "dave failed:\n" + out[-1500:])
        msg = dave.invites()[0][1]
        hi = [l.strip() for l in msg.splitlines() if l.lower().startswith("history-info:")]
        want = ["History-Info: <sip:bob@127.0.0.1>;index=1",
                "History-Info: <sip:carol@127.0.0.1?Reason=SIP%3Bcause%3D302>;index=1.1;mp=1",
                "History-Info: <sip:dave@127.0.0.1?Reason=SIP%3Bcause%3D404>;index=1.1.1;mp=1.1"]
        check(hi == want, "History-Info: %r" % hi)
        div = [l.strip() for l in msg.splitlines() if l.lower().startswith("diversion:")]
        check(len(div) == 2 and "carol" in div[0] and "unavailable" in div[0] and "bob" in div[1],
              "Diversion, newest first: %r" % div)
    p = cli("check-config", "-c", cfg, check_rc=False)
    check(p.returncode == 0, p.stderr)
    with open(cfg, "w") as f:
        f.write("calls:\n  forward_header: pigeon\n")
    p = cli("check-config", "-c", cfg, check_rc=False)
    check(p.returncode == 3 and "diversion, history-info or both" in p.stderr, p.stderr)


def test_forwarding_loop_is_cut():
    tmp = tempfile.mkdtemp()
    with Server() as s:
        users(s, "alice", "bob", "carol")
        user_set(s, "bob@127.0.0.1", "forward_always=carol")
        user_set(s, "carol@127.0.0.1", "forward_always=bob")
        call(s, tmp, "bob", expect=482)
        check(s.ping(), "server stopped answering")


def test_redirect_domain():
    """calls.redirect_domains: INVITE answered 302 with the contacts, highest
    q first; unconditional forwarding redirects to its target."""
    tmp = tempfile.mkdtemp()
    cfg = os.path.join(tmp, "redirect.yaml")
    with open(cfg, "w") as f:
        f.write("calls:\n  redirect_domains: [\"127.0.0.1\"]\n")
    with Server(config=cfg) as s:
        users(s, "bob", "carol")
        reg = SipClient(s)
        for port, q in ((5091, "0.5"), (5092, "1.0")):
            r = reg.register("bob", "bobpw", contact="<sip:bob@127.0.0.1:%d>;q=%s" % (port, q),
                             expires=600)
            check(r.status == 200, "register: %r" % r)
        reg.close()
        c = SipClient(s)
        r = c.request("INVITE", "sip:bob@127.0.0.1", from_="<sip:eve@example.org>",
                      to="<sip:bob@127.0.0.1>")
        check(r is not None and r.status == 302, "not redirected: %r" % r)
        contacts = r.all("Contact")
        check(len(contacts) == 2 and "5092" in contacts[0] and "5091" in contacts[1],
              "contacts not by q: %r" % contacts)
        user_set(s, "bob@127.0.0.1", "forward_always=+4930123")
        r = c.request("INVITE", "sip:bob@127.0.0.1", from_="<sip:eve@example.org>",
                      to="<sip:bob@127.0.0.1>", cseq=2)
        check(r is not None and r.status == 302 and "+4930123@127.0.0.1" in r.get("Contact", ""),
              "CFU not redirected: %r" % r)
        r = c.request("INVITE", "sip:carol@127.0.0.1", from_="<sip:eve@example.org>",
                      to="<sip:carol@127.0.0.1>", cseq=3)
        check(r is not None and r.status == 404,
              "carol has no binding (a stranger is not told so): %r" % r)
        c.close()


def invite_status(server, caller, callee, cseq=1):
    """An INVITE from a foreign-domain caller (no 407), its final status."""
    c = SipClient(server)
    r = c.request("INVITE", "sip:%s@127.0.0.1" % callee, from_="<sip:%s@example.org>" % caller,
                  to="<sip:%s@127.0.0.1>" % callee, cseq=cseq)
    c.close()
    check(r is not None, "no answer to INVITE %s -> %s" % (caller, callee))
    return r


def auth_invite_status(server, caller, callee):
    """An INVITE from one of our users, answering the 407; its final answer."""
    c = SipClient(server)
    ruri = "sip:%s@127.0.0.1" % callee
    frm = "<sip:%s@127.0.0.1>" % caller
    r = c.request("INVITE", ruri, from_=frm, to="<%s>" % ruri)
    if r is not None and r.status == 407:
        auth = c.auth_header(r, caller, caller + "pw", "INVITE", ruri, proxy=True)
        c.cseq += 1
        r = c.request("INVITE", ruri, [auth], from_=frm, to="<%s>" % ruri)
    c.close()
    check(r is not None, "no answer to INVITE %s -> %s" % (caller, callee))
    return r


def test_black_and_white_lists():
    """Global lists from the config (caller, callee, source network, with
    exceptions) and each user's own lists; blocked calls get 403 (or 603)
    and are counted."""
    tmp = tempfile.mkdtemp()
    cfg = os.path.join(tmp, "lists.yaml")
    with open(cfg, "w") as f:
        f.write("lists:\n  block_callers: [mallory, \"0900\"]\n  block_callees: [\"+881\"]\n"
                "  block_sources: [\"127.0.0.0/8\"]\n  allow_callers: [carol, dave]\n")
    with Server(config=cfg) as s:
        users(s, "bob", "carol", "dave")
        r = invite_status(s, "mallory", "bob")
        check(r.status == 403 and "blocked" in r.reason.lower(), "mallory: %r" % r)
        r = invite_status(s, "09001234", "bob")
        check(r.status == 403, "0900 caller: %r" % r)
        r = invite_status(s, "trent", "bob")
        check(r.status == 403, "blocked source network let trent through: %r" % r)
        # a white list counts only for an identity that was checked: carol@example.org is
        # anybody, carol who authenticated is carol
        r = invite_status(s, "carol", "bob")
        check(r.status == 403, "a forged carol passed the allow list: %r" % r)
        r = auth_invite_status(s, "carol", "bob")
        check(r.status == 480, "carol is on the allow list, bob has no binding: %r" % r)
        # the callee's own lists
        user_set(s, "bob@127.0.0.1", "block_callers=carol")
        r = auth_invite_status(s, "carol", "bob")
        check(r.status == 403, "bob's black list: %r" % r)
        user_set(s, "bob@127.0.0.1", "block_callers=", "allow_only=yes", "allow_callers=dave")
        r = auth_invite_status(s, "carol", "bob")
        check(r.status == 403, "bob accepts only his white list: %r" % r)
        r = auth_invite_status(s, "dave", "bob")
        check(r.status == 480, "dave is on bob's white list: %r" % r)
        s.stop()
        check(re.search(r"calls blocked [1-9]", s.log_text()), "blocked calls not counted")

    with open(cfg, "w") as f:
        f.write("lists:\n  block_callers: [mallory]\n  block_callees: [\"+881\"]\n"
                "  block_status: 603\n")
    with Server(config=cfg) as s:
        users(s, "bob", "+8812345")
        r = invite_status(s, "mallory", "bob")
        check(r.status == 603, "block_status 603: %r" % r)
        r = invite_status(s, "zed", "+8812345")
        check(r.status == 603, "blocked callee prefix: %r" % r)
        r = invite_status(s, "zed", "bob")
        check(r.status == 404, "zed to bob is not blocked (and bob is not told apart): %r" % r)
        p = cli("check-config", "-c", cfg, check_rc=False)
        check(p.returncode == 0, "config refused: %s" % p.stderr)
    with open(cfg, "w") as f:
        f.write("lists:\n  block_sources: [\"10.0.0.0/33\"]\n")
    p = cli("check-config", "-c", cfg, check_rc=False)
    check(p.returncode == 3 and ":2:" in p.stderr and "10.0.0.0/33" in p.stderr,
          "bad network not named with its line: %r" % p.stderr)


def gateway_config(tmp, gws, extra=""):
    """gws: [(name, port, priority, probe)]; rule "0" -> +49, "0049301234567" redirects."""
    path = os.path.join(tmp, "gw.yaml")
    with open(path, "w") as f:
        f.write("timers:\n  t1: 100\n")
        f.write("gateways:\n")
        for name, port, _, probe in gws:
            f.write("  - {name: %s, address: 127.0.0.1, port: %d, probe: %s}\n"
                    % (name, port, "true" if probe else "false"))
        f.write("gateway_groups:\n  - name: pstn\n    gateways:\n")
        for name, _, prio, _ in gws:
            f.write("      - {gateway: %s, priority: %d}\n" % (name, prio))
        f.write("dialplan:\n  probe_interval: 1\n  rules:\n"
                "    - prefix: \"0\"\n      transform: [{strip: 1}, {prefix: \"+49\"}]\n"
                "      route: [pstn]\n"
                "    - prefix: \"0049301234567\"\n      transform: [{strip: 2}, {prefix: \"+\"}]\n"
                "      route: [pstn]\n      redirect: true\n" + extra)
    return path


def ruri_of(phone):
    inv = phone.invites()
    check(inv, "%s got no INVITE" % phone.name)
    return inv[0][1].split("\n", 1)[0].split()[1]


def test_gateway_failover_and_number_transformation():
    """0301234 -> +49301234 at the gateway; a 503 fails over to the next
    gateway; a 486 does not."""
    tmp = tempfile.mkdtemp()
    p1, p2 = free_port(), free_port()
    cfg = gateway_config(tmp, [("gw1", p1, 1, False), ("gw2", p2, 2, False)])
    with Server(config=cfg) as s:
        users(s, "alice")
        gw1 = SippBackground(["-sf", os.path.join(SCENARIOS, "uas_503.xml"), "-i", "127.0.0.1",
                              "-p", p1, "-m", 1, "-trace_msg", "-message_file",
                              os.path.join(tmp, "gw1.msg.log")], cwd=tmp)
        gw2 = SippBackground(["-sf", os.path.join(SCENARIOS, "uas_answer.xml"), "-i", "127.0.0.1",
                              "-p", p2, "-m", 1, "-trace_msg", "-message_file",
                              os.path.join(tmp, "gw2.msg.log")], cwd=tmp)
        call(s, tmp, "0301234")
        for g in (gw1, gw2):
            rc, out = g.wait(20)
            check(rc == 0, "gateway scenario failed:\n" + out[-1500:])
        for name, port in (("gw1", p1), ("gw2", p2)):
            text = open(os.path.join(tmp, "%s.msg.log" % name)).read()
            check("INVITE sip:+49301234@127.0.0.1:%d SIP/2.0" % port in text,
                  "%s did not get the transformed number:\n%s" % (name, text[:1500]))

        # a real answer from the first gateway is final: no failover
        gw1 = SippBackground(["-sf", os.path.join(SCENARIOS, "uas_busy.xml"), "-i", "127.0.0.1",
                              "-p", p1, "-m", 1], cwd=tmp)
        gw2 = SippBackground(["-sf", os.path.join(SCENARIOS, "uas_answer.xml"), "-i", "127.0.0.1",
                              "-p", p2, "-m", 1, "-trace_msg", "-message_file",
                              os.path.join(tmp, "gw2b.msg.log")], cwd=tmp)
        call(s, tmp, "0301234", expect=486)
        rc, out = gw1.wait(20)
        check(rc == 0, "busy gateway failed:\n" + out[-1500:])
        time.sleep(0.5)
        check(not os.path.exists(os.path.join(tmp, "gw2b.msg.log")) or
              "INVITE" not in open(os.path.join(tmp, "gw2b.msg.log")).read(),
              "failed over on 486")
        gw2.stop()

        # a redirect rule answers 302 with the gateway, to a caller we can bill only
        c = SipClient(s)
        r = c.request("INVITE", "sip:0049301234567@127.0.0.1", from_="<sip:eve@example.org>",
                      to="<sip:0049301234567@127.0.0.1>")
        c.close()
        check(r is not None and r.status == 403, "a stranger's redirect rule: %r" % r)
        r = auth_invite_status(s, "alice", "0049301234567")
        check(r is not None and r.status == 302 and
              ("sip:+49301234567@127.0.0.1:%d" % p1) in r.get("Contact", ""),
              "redirect rule: %r" % r)


class OptionsResponder:
    """A gateway that only answers OPTIONS (200), to bring it back up."""

    def __init__(self, port):
        import socket
        import threading
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.seen = 0
        self.running = True
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while self.running:
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                continue
            text = data.decode("utf-8", "replace")
            if not text.startswith("OPTIONS "):
                continue
            self.seen += 1
            head = text.split("\r\n\r\n", 1)[0].split("\r\n")
            keep = [h for h in head[1:] if h.split(":", 1)[0].strip().lower()
                    in ("via", "from", "to", "call-id", "cseq")]
            reply = "SIP/2.0 200 OK\r\n" + "\r\n".join(keep) + "\r\nContent-Length: 0\r\n\r\n"
            self.sock.sendto(reply.encode(), addr)

    def close(self):
        self.running = False
        self.t.join()
        self.sock.close()


def test_gateway_probe_down_and_recovery():
    """A gateway that does not answer OPTIONS is skipped (the call goes to
    the next one at once instead of waiting for Timer B); it comes back with
    its first answer."""
    tmp = tempfile.mkdtemp()
    p1, p2 = free_port(), free_port()
    cfg = gateway_config(tmp, [("gw1", p1, 1, True), ("gw2", p2, 2, False)])
    with Server(config=cfg) as s:
        users(s, "alice")
        deadline = time.time() + 15
        while "gateway gw1" not in s.log_text() and time.time() < deadline:
            time.sleep(0.2)
        check("gateway gw1 (127.0.0.1) is down" in s.log_text(), "gw1 not marked down:\n" +
              s.log_tail(20))
        gw2 = SippBackground(["-sf", os.path.join(SCENARIOS, "uas_answer.xml"), "-i", "127.0.0.1",
                              "-p", p2, "-m", 1], cwd=tmp)
        t0 = time.time()
        call(s, tmp, "0301234")
        check(time.time() - t0 < 3, "the down gateway was tried first (%.1f s)" % (time.time() - t0))
        rc, out = gw2.wait(20)
        check(rc == 0, "gw2 failed:\n" + out[-1500:])
        gw1 = OptionsResponder(p1)
        deadline = time.time() + 10
        while "gw1 (127.0.0.1) is up again" not in s.log_text() and time.time() < deadline:
            time.sleep(0.2)
        gw1.close()
        check("gw1 (127.0.0.1) is up again" in s.log_text(), "gw1 did not come back:\n" +
              s.log_tail(20))
        check(gw1.seen >= 1, "no OPTIONS probe reached gw1")


def dial_code(server, user, code, cseq=1):
    """An authenticated INVITE from user to a feature code; the final response."""
    c = SipClient(server)
    ruri = "sip:%s@127.0.0.1" % code
    frm = "<sip:%s@127.0.0.1>" % user
    r = c.request("INVITE", ruri, from_=frm, cseq=cseq)
    check(r is not None and r.status == 407, "no 407 for %s: %r" % (code, r))
    a = c.auth_header(r, user, user + "pw", "INVITE", ruri, proxy=True)
    r = c.request("INVITE", ruri, [a], from_=frm, cseq=cseq + 1)
    c.close()
    check(r is not None, "no answer to %s" % code)
    return r


def test_feature_codes():
    """*72<target> turns unconditional forwarding on, *73 off, from the
    phone; the setting is stored (user show sees it) and used by the next
    call; wrong use gets 484 with the reason."""
    tmp = tempfile.mkdtemp()
    with Server() as s:
        users(s, "alice", "bob", "carol")
        r = dial_code(s, "bob", "*72carol")
        check(r.status == 200 and "forwarding on" in r.reason.lower() and r.get("Contact"),
              "*72: %r" % r)
        show = cli("user", "show", "bob@127.0.0.1", db=s.db).stdout
        check(re.search(r"forward_always\s+carol", show), "not stored:\n" + show)
        r = dial_code(s, "bob", "*72carol")
        check(r.status == 200, "the same code again: %r" % r)
        carol = Phone(s, tmp, "carol", "carolpw", "uas_answer.xml", name="carol-fc")
        call(s, tmp, "bob")
        rc, out = carol.wait(20)
        check(rc == 0, "the call did not follow *72:\n" + out[-1500:])
        r = dial_code(s, "bob", "*73")
        check(r.status == 200 and "off" in r.reason.lower(), "*73: %r" % r)
        show = cli("user", "show", "bob@127.0.0.1", db=s.db).stdout
        check(re.search(r"forward_always\s+-", show), "not cleared:\n" + show)
        r = dial_code(s, "bob", "*72")
        check(r.status == 484, "*72 without a target: %r" % r)
        r = dial_code(s, "bob", "*73123")
        check(r.status == 484, "*73 with a number: %r" % r)
        r = dial_code(s, "bob", "*90+4930123%23")  # "#" travels escaped in a SIP URI
        check(r.status == 200, "*90 (busy) with a number: %r" % r)
        show = cli("user", "show", "bob@127.0.0.1", db=s.db).stdout
        check(re.search(r"forward_busy\s+\+4930123\n", show), "busy target not stored:\n" + show)


def test_gateway_probe_by_name():
    """A gateway given by name is resolved (through a real DNS server) and
    probed; one whose name does not resolve is marked down."""
    from test_proxy_routing import Dnsmasq
    tmp = tempfile.mkdtemp()
    port = free_port()
    dns = Dnsmasq(["--host-record=gw.example.test,127.0.0.1"])
    try:
        gw = OptionsResponder(port)
        cfg = os.path.join(tmp, "gwdns.yaml")
        with open(cfg, "w") as f:
            f.write("gateways:\n"
                    "  - {name: named, address: gw.example.test, port: %d}\n"
                    "  - {name: nowhere, address: nx.example.test, port: 5060}\n"
                    "gateway_groups:\n  - {name: g, gateways: [named, nowhere]}\n"
                    "dialplan:\n  probe_interval: 1\n  rules:\n    - {prefix: \"0\", route: [g]}\n"
                    % port)
        with Server(config=cfg, extra=["--dns-servers", dns.server]) as s:
            deadline = time.time() + 10
            while (gw.seen == 0 or "gateway nowhere" not in s.log_text()) and time.time() < deadline:
                time.sleep(0.2)
            check(gw.seen >= 1, "the named gateway was not probed")
            check("gateway nowhere (nx.example.test) is down" in s.log_text(),
                  "unresolvable gateway not marked down:\n" + s.log_tail(20))
            check("gateway named" not in s.log_text(), "the answering gateway was marked down")
        gw.close()
    finally:
        dns.stop()


def test_route_and_list_commands():
    """switchboard route show/test and list show/check answer what the server would do."""
    tmp = tempfile.mkdtemp()
    cfg = gateway_config(tmp, [("gw1", 5071, 1, False), ("gw2", 5072, 2, False)],
                         extra="lists:\n  block_callers: [\"0900\"]\n  allow_callers: [noc]\n"
                               "  block_sources: [\"203.0.113.0/24\"]\n")
    db = os.path.join(tmp, "l.db")
    p = cli("route", "show", "-c", cfg, db=db)
    check("gw1" in p.stdout and "prefix 0 " in p.stdout and "(redirect)" in p.stdout, p.stdout)
    p = cli("route", "test", "0301234", "-c", cfg, db=db)
    check("number sent: +49301234" in p.stdout and
          re.search(r"1\. gw1 +sip:\+49301234@127.0.0.1:5071", p.stdout) and
          re.search(r"2\. gw2 +sip:\+49301234@127.0.0.1:5072", p.stdout), p.stdout)
    p = cli("route", "test", "4930", "-c", cfg, db=db, check_rc=False)
    check(p.returncode == 4 and "no dialplan rule" in p.stdout, p.stdout)
    p = cli("route", "test", "abc", "-c", cfg, db=db, check_rc=False)
    check(p.returncode == 2 and "not a number" in p.stderr, p.stderr)
    # with no file, only what the CLI set (nothing yet)
    p = cli("route", "test", "0301234", db=os.path.join(tmp, "empty.db"), check_rc=False)
    check(p.returncode == 4 and "no dialplan rule" in p.stdout, p.stdout)
    p = cli("list", "show", "-c", cfg, db=db)
    check("0900" in p.stdout and "203.0.113.0/24" in p.stdout, p.stdout)
    cli("user", "add", "bob@127.0.0.1", "--password", "x", db=db)
    cli("user", "set", "bob@127.0.0.1", "block_callers=mallory", db=db)
    for args, rc, text in ((["09001", "bob@127.0.0.1"], 1, "lists.block_callers"),
                           (["alice", "bob@127.0.0.1", "203.0.113.9"], 1, "block_sources"),
                           (["noc", "bob@127.0.0.1", "203.0.113.9"], 0, "allow_callers"),
                           (["mallory", "bob@127.0.0.1"], 1, "callee's black list"),
                           (["alice", "bob@127.0.0.1"], 0, "no list applies")):
        p = cli("list", "check", *args, "-c", cfg, db=db, check_rc=False)
        check(p.returncode == rc and text in p.stdout, "%r -> %d %r" % (args, p.returncode, p.stdout))
    # an entry of the file deleted from the CLI stays deleted; added back, it is there again
    cli("list", "del", "block_callers", "0900", "-c", cfg, db=db)
    p = cli("list", "check", "09001", "bob@127.0.0.1", "-c", cfg, db=db, check_rc=False)
    check(p.returncode == 0, "0900 still blocked after list del: %r" % p.stdout)
    cli("list", "add", "block_callers", "0900", "-c", cfg, db=db)
    p = cli("list", "check", "09001", "bob@127.0.0.1", "-c", cfg, db=db, check_rc=False)
    check(p.returncode == 1, "0900 not blocked after list add: %r" % p.stdout)
    # a regex rule from the CLI, tried when no prefix matches
    cli("route", "rule", "add", "/^9[0-9]{3}$/", "route=pstn", "replace=|^9|+4930|", "-c", cfg,
        db=db)
    p = cli("route", "test", "9123", "-c", cfg, db=db)
    check("number sent: +4930123" in p.stdout and "[set from the CLI]" in p.stdout, p.stdout)


def rcli(cfg, server, *args, rc=0):
    """A route/list command on the running server's database; rc is the exit status wanted."""
    p = cli(*args, "-c", cfg, db=server.db, check_rc=False)
    check(p.returncode == rc, "%s -> %d (want %d):\n%s%s"
          % (" ".join(args), p.returncode, rc, p.stdout, p.stderr))
    return p


def test_cli_changes_reach_running_server():
    """Gateways, groups, rules and list entries added from the CLI are used by
    the running server at once; changes that would break the rules are
    refused with the reason."""
    tmp = tempfile.mkdtemp()
    p1, p2 = free_port(), free_port()
    cfg = gateway_config(tmp, [("gw1", p1, 1, False)])
    with Server(config=cfg) as s:
        users(s, "alice", "bob")
        for args, rc, text in (
                (("route", "gateway", "del", "gw1"), 2, "no gateway named 'gw1'"),
                (("route", "gateway", "add", "gw1", "address=127.0.0.1"), 5, "already exists"),
                (("route", "gateway", "add", "gw9", "address=not/a/host"), 2, "not a host name"),
                (("route", "gateway", "add", "gw9", "address=127.0.0.1", "port=99999"), 2,
                 "port"),
                (("route", "gateway", "add", "gw9", "address=127.0.0.1", "colour=red"), 2,
                 "unknown gateway setting"),
                (("route", "gateway", "add", "gw9", "address=127.0.0.1", "auth_user=x"), 2,
                 "auth_realm"),
                (("route", "group", "add", "g9", "nosuch"), 2, "no gateway named 'nosuch'"),
                (("route", "group", "add", "g9", "gw1:x"), 2, "priority"),
                (("route", "rule", "add", "07x", "route=pstn"), 2, "neither a number prefix"),
                (("route", "rule", "add", "0777", "route=nosuch"), 2,
                 "no gateway group named 'nosuch'"),
                (("route", "rule", "add", "0777", "route=pstn", "insert=3"), 2, "POSITION"),
                (("route", "rule", "add", "/a(/", "route=pstn"), 2, "regular expression"),
                (("route", "rule", "del", "0999"), 4, "no rule"),
                (("list", "add", "block_sources", "300.1.1.1"), 2, "IP address"),
                (("list", "add", "nolist", "1"), 2, "no list"),
                (("list", "del", "block_callers", "zed"), 4, "not on"),
                (("list", "status", "404"), 2, "403 or 603")):
            p = rcli(cfg, s, *args, rc=rc)
            check(text in p.stderr, "%s: no precise error: %r" % (" ".join(args), p.stderr))

        # a new gateway in a new group for a new prefix
        rcli(cfg, s, "route", "gateway", "add", "gw2", "address=127.0.0.1", "port=%d" % p2,
             "probe=no")
        rcli(cfg, s, "route", "group", "add", "intl", "gw2:1:100")
        rcli(cfg, s, "route", "rule", "add", "0033", "route=intl", "replace=|^00|+|")
        show = rcli(cfg, s, "route", "show").stdout
        check(re.search(r"gw2 .*\[set from the CLI\]", show) and "intl" in show, show)
        gw2 = SippBackground(["-sf", os.path.join(SCENARIOS, "uas_answer.xml"), "-i", "127.0.0.1",
                              "-p", p2, "-m", 1, "-trace_msg", "-message_file",
                              os.path.join(tmp, "gw2.msg.log")], cwd=tmp)
        time.sleep(1.0)  # the server looks for changes every 250 ms
        call(s, tmp, "0033123456")
        rc, out = gw2.wait(20)
        check(rc == 0, "the gateway added from the CLI was not called:\n" + out[-1500:] +
              s.log_tail(20))
        text = open(os.path.join(tmp, "gw2.msg.log")).read()
        check("INVITE sip:+33123456@127.0.0.1:%d SIP/2.0" % p2 in text,
              "the rule from the CLI did not transform the number:\n" + text[:1500])
        check("routing rules changed" in s.log_text(), "no log line for the change")

        # lists: a blocked caller, the status, and the entry taken back
        r = invite_status(s, "mallory", "bob")
        check(r.status == 404, "mallory before the list (bob not registered): %r" % r)
        rcli(cfg, s, "list", "add", "block_callers", "mallory", "0900")
        time.sleep(1.0)
        r = invite_status(s, "mallory", "bob")
        check(r.status == 403, "list add did not reach the server: %r" % r)
        rcli(cfg, s, "list", "status", "603")
        time.sleep(1.0)
        r = invite_status(s, "09005", "bob")
        check(r.status == 603, "list status did not reach the server: %r" % r)
        rcli(cfg, s, "list", "del", "block_callers", "mallory")
        time.sleep(1.0)
        r = invite_status(s, "mallory", "bob")
        check(r.status == 404, "list del did not reach the server: %r" % r)
        # deleting what is in use is refused; in order, it works
        rcli(cfg, s, "route", "gateway", "del", "gw2", rc=2)
        rcli(cfg, s, "route", "rule", "del", "0033")
        rcli(cfg, s, "route", "group", "del", "intl")
        rcli(cfg, s, "route", "gateway", "del", "gw2")
        check("gw2" not in rcli(cfg, s, "route", "show").stdout, "gw2 still shown")
    # the changes survive a restart (they are in the store)
    with Server(config=cfg, db=s.db) as s2:
        r = invite_status(s2, "09005", "bob")
        check(r.status == 603, "the list changes did not survive a restart: %r" % r)


def test_redirect_and_terminal_patterns_from_cli():
    """Redirect domains and User-Agent patterns changed from the CLI reach the
    running server: INVITEs get 302 (and not after del); a REGISTER gets the
    type of a pattern added (and the built-in one after del)."""
    tmp = tempfile.mkdtemp()
    cfg = os.path.join(tmp, "t.yaml")
    with open(cfg, "w") as f:
        # t1 50 ms: an INVITE to bob's dead contacts ends with 408 after 3.2 s
        f.write("timers:\n  t1: 50\ncalls:\n  terminal_user_agents: {\"Acme DeskPro\": desk}\n")
    with Server(config=cfg) as s:
        users(s, "bob")

        def reg_as(ua, port):
            c = SipClient(s)
            r = c.register("bob", "bobpw", contact="<sip:bob@127.0.0.1:%d>" % port,
                           expires=600, extra=["User-Agent: " + ua])
            c.close()
            check(r is not None and r.status == 200, "register: %r" % r)
            time.sleep(0.4)  # bindings reach the store write-behind (100 ms)
            out = cli("reg", "list", "bob@127.0.0.1", db=s.db).stdout
            line = next((l for l in out.splitlines() if ":%d" % port in l), "")
            return line

        for args, rc, text in ((("terminal", "add", "Zed"), 2, "missing"),
                               (("terminal", "add", "Zed", "fax"), 2, "not a terminal type"),
                               (("terminal", "del", "nosuch"), 4, "no pattern"),
                               (("route", "redirect", "add", "bad host"), 2, "not a host name"),
                               (("route", "redirect", "del", "example.org"), 4,
                                "not a redirect domain")):
            p = rcli(cfg, s, *args, rc=rc)
            check(text in p.stderr, "%s: %r" % (" ".join(args), p.stderr))
        p = rcli(cfg, s, "terminal", "test", "Acme DeskPro 2.1")
        check(p.stdout.strip() == "desk", "the file's pattern: %r" % p.stdout)
        check(" other " in reg_as("ZedPhone 7", 5101), "before: not 'other'")
        rcli(cfg, s, "terminal", "add", "ZedPhone", "mobile")
        check("[set from the CLI]" in rcli(cfg, s, "terminal", "list").stdout, "list")
        time.sleep(1.0)
        check(" mobile " in reg_as("ZedPhone 7", 5102), "the pattern from the CLI not used")
        rcli(cfg, s, "terminal", "del", "ZedPhone")
        time.sleep(1.0)
        check(" other " in reg_as("ZedPhone 7", 5103), "the deleted pattern still used")

        def invite():
            """A new client each time: a 408 retransmitted to the last one is not an answer."""
            c = SipClient(s)
            r = c.request("INVITE", "sip:bob@127.0.0.1", from_="<sip:eve@example.org>",
                          to="<sip:bob@127.0.0.1>", timeout=6.0)
            c.close()
            return r

        r = invite()
        check(r is not None and r.status == 408, "redirected before the change: %r" % r)
        rcli(cfg, s, "route", "redirect", "add", "127.0.0.1")
        check("127.0.0.1 [CLI]" in rcli(cfg, s, "route", "show").stdout, "route show")
        time.sleep(1.0)
        r = invite()
        check(r is not None and r.status == 302 and len(r.all("Contact")) == 3,
              "redirect from the CLI: %r" % r)
        rcli(cfg, s, "route", "redirect", "del", "127.0.0.1")
        time.sleep(1.0)
        r = invite()
        check(r is not None and r.status == 408, "still redirected after del: %r" % r)


def test_gateway_outbound_digest():
    """A gateway that challenges (407) gets our account's digest, set from
    the CLI with only its hashes stored; wrong credentials fail over to the
    next gateway."""
    tmp = tempfile.mkdtemp()
    p1, p2 = free_port(), free_port()
    cfg = gateway_config(tmp, [("gw1", p1, 1, False), ("gw2", p2, 2, False)])
    with Server(config=cfg) as s:
        users(s, "alice")
        rcli(cfg, s, "route", "gateway", "set", "gw1", "auth_user=trunk1",
             "auth_realm=gw.example.net", "--password", "s3cret")
        import sqlite3
        db = sqlite3.connect(s.db)
        metas = [m for (m,) in db.execute("SELECT meta FROM record WHERE kind = 8")]
        db.close()
        check(len(metas) == 1 and "s3cret" not in metas[0] and "ha1=" in metas[0] and
              "ha1_sha256=" in metas[0], "the gateway's credentials as stored: %r" % metas)
        show = rcli(cfg, s, "route", "show").stdout
        check("auth trunk1 realm gw.example.net" in show, show)
        gw1 = SippBackground(["-sf", os.path.join(SCENARIOS, "uas_gw_auth.xml"), "-i",
                              "127.0.0.1", "-p", p1, "-m", 1, "-trace_msg", "-message_file",
                              os.path.join(tmp, "gw1.msg.log")], cwd=tmp)
        time.sleep(1.0)
        call(s, tmp, "0301234")
        rc, out = gw1.wait(20)
        check(rc == 0, "the gateway did not accept our credentials:\n" + out[-2000:])
        text = open(os.path.join(tmp, "gw1.msg.log")).read()
        check(re.search(r"Authorization: Digest username=\"trunk1\", realm=\"gw.example.net\""
                        r".*response=\"[0-9a-f]{32}\"", text),
              "no credentials in the INVITE:\n" + text[-2000:])

        # a wrong password: the gateway challenges again; the call goes to gw2
        rcli(cfg, s, "route", "gateway", "set", "gw1", "--password", "wrong")
        gw1 = SippBackground(["-sf", os.path.join(SCENARIOS, "uas_gw_auth.xml"), "-i",
                              "127.0.0.1", "-p", p1, "-m", 1], cwd=tmp)
        gw2 = SippBackground(["-sf", os.path.join(SCENARIOS, "uas_answer.xml"), "-i", "127.0.0.1",
                              "-p", p2, "-m", 1], cwd=tmp)
        time.sleep(1.0)
        call(s, tmp, "0301234")
        for g in (gw1, gw2):
            rc, out = g.wait(20)
            check(rc == 0, "failover after refused credentials:\n" + out[-1500:])
        check("refused our credentials" in s.log_text(), "no warning about the credentials")

        # a 407 (Proxy-Authorization), with qop and opaque: the digest is checked here
        rcli(cfg, s, "route", "gateway", "set", "gw1", "--password", "s3cret")
        log = os.path.join(tmp, "gw407.msg.log")
        gw1 = SippBackground(["-sf", os.path.join(SCENARIOS, "uas_gw_auth407.xml"), "-i",
                              "127.0.0.1", "-p", p1, "-m", 1, "-trace_msg", "-message_file", log],
                             cwd=tmp)
        time.sleep(1.0)
        call(s, tmp, "0301234")
        rc, out = gw1.wait(20)
        check(rc == 0, "407 gateway:\n" + out[-1500:])
        text = open(log).read()
        m = re.search(r"^Proxy-Authorization: Digest (.*)$", text, re.M)
        check(m, "no Proxy-Authorization:\n" + text[-2000:])
        f = dict(re.findall(r'(\w+)="?([^",]*)"?', m.group(1)))
        md5 = lambda x: hashlib.md5(x.encode()).hexdigest()
        want = md5("%s:%s:%s:%s:auth:%s" % (
            md5("trunk1:gw.example.net:s3cret"), f["nonce"], f["nc"], f["cnonce"],
            md5("INVITE:" + f["uri"])))
        check(f.get("response") == want and f.get("qop") == "auth" and
              f.get("opaque") == "op4que" and f["uri"].startswith("sip:+49301234@"),
              "wrong digest for the 407: %r" % f)


def test_cli_settings_errors_and_show():
    with Server() as s:
        users(s, "bob")
        aor = "bob@127.0.0.1"
        for words, msg in ((["ring=circular"], "ring"), (["order=desk,fax"], "fax"),
                           (["order=desk:0"], "seconds"), (["colour=red"], "unknown setting"),
                           (["forward_busy=<sip:x>"], "forward_busy"), (["ring"], "key=value"),
                           (["stop_on_busy=maybe"], "yes or no"),
                           (["block_callers=a b"], "block_callers"),
                           (["allow_only=sometimes"], "yes or no")):
            p = user_set(s, aor, *words, expect_rc=2)
            check(msg in p.stderr, "no precise error for %s: %r" % (words, p.stderr))
        p = cli("user", "set", "nobody@127.0.0.1", "ring=sequential", db=s.db, check_rc=False)
        check(p.returncode == 4 and "no such user" in p.stderr, "unknown user: %r" % p.stderr)
        user_set(s, aor, "ring=sequential", "order=mobile:5,desk", "cfb=+4930123456",
                 "forward_noanswer=sip:voicemail@example.net")
        show = cli("user", "show", aor, db=s.db).stdout
        for want in ("sequential", "mobile:5,desk", "+4930123456", "sip:voicemail@example.net"):
            check(want in show, "%r missing from:\n%s" % (want, show))
        user_set(s, aor, "ring=", "order=", "cfb=", "forward_noanswer=")
        show = cli("user", "show", aor, db=s.db).stdout
        check("parallel" in show and "+4930" not in show, "settings not cleared:\n" + show)
    # a bare user name is in the configuration's one domain
    tmp = tempfile.mkdtemp()
    db = os.path.join(tmp, "one.db")
    one = os.path.join(tmp, "one.yaml")
    with open(one, "w") as f:
        f.write("domains: [example.com]\n")
    cli("user", "add", "alice@example.com", "--password", "x", db=db)
    cli("user", "set", "alice", "ring=q-value", "-c", one, db=db)
    show = cli("user", "show", "alice", "-c", one, db=db).stdout
    check("user alice@example.com" in show and "q-value" in show, show)
    p = cli("user", "set", "alice", "ring=q-value", db=db, check_rc=False)
    check(p.returncode == 2 and "USER@DOMAIN" in p.stderr, p.stderr)


if __name__ == "__main__":
    main(globals())
