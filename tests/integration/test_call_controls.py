#!/usr/bin/env python3
"""Operator call controls (issue 12, items 1 and 2), against the real binary.

Outgoing call barring per user: named classes of the configuration
(`barring.classes`) assigned with `user set bob bar=international`, a
user's own block list of callee prefixes, the allow-only mode of a
restricted phone (internal users and 112 only), free numbers; applied to
the authenticated caller's own calls, to the calls their forwarding makes
and to the forwarding they set with a feature code, while another user's
same call goes through to the gateway (a SIPp UAS).

Allowed networks per user: bob's right password from 127.0.0.2 (not in
his allow_sources) gets exactly what a wrong password gets, for REGISTER
and INVITE, and is charged like one to the flood protection (the source
ends up banned); from 127.0.0.1 it works. block_sources refuses calls to a
user from a network.
"""
import os
import re
import socket
import tempfile
import time

from sbtest import SCENARIOS, Server, SippBackground, SipClient, check, cli, free_port, main
from test_call_services import call, gateway_config, user_set, users


def client_from(server, ip):
    """A SipClient whose socket is bound to another loopback address."""
    c = SipClient(server)
    c.sock.close()
    c.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    c.sock.bind((ip, 0))
    c.port = c.sock.getsockname()[1]
    return c


def invite(server, caller, callee, ip="127.0.0.1", password=None):
    """An INVITE from one of our users (from ip), answering the 407; the final answer."""
    c = client_from(server, ip)
    ruri = "sip:%s@127.0.0.1" % callee
    frm = "<sip:%s@127.0.0.1>" % caller
    r = c.request("INVITE", ruri, from_=frm, to="<%s>" % ruri)
    if r is not None and r.status == 407:
        auth = c.auth_header(r, caller, password or caller + "pw", "INVITE", ruri, proxy=True)
        c.cseq += 1
        r = c.request("INVITE", ruri, [auth], from_=frm, to="<%s>" % ruri)
    c.close()
    check(r is not None, "no answer to INVITE %s -> %s" % (caller, callee))
    return r


def user_set_c(server, cfg, aor, *words):
    """user set with the server's configuration (bar= names its classes)."""
    p = cli("user", "set", aor, *words, "-c", cfg, db=server.db, check_rc=False)
    check(p.returncode == 0, "user set %s %s -> %d (%s)" % (aor, " ".join(words), p.returncode,
                                                           p.stderr))
    time.sleep(0.6)  # the server notices a committed change within 250 ms


def barring_config(tmp, gw_port, extra=""):
    return gateway_config(
        tmp, [("gw1", gw_port, 1, False)],
        extra="    - regex: \"^11[0-9]$\"\n      route: [pstn]\n"
              "barring:\n  classes:\n    international: [\"00\"]\n"
              "    premium: [\"0900\", \"0190\"]\n  free: [\"112\", \"110\"]\n" + extra)


def gateway(tmp, port, name, scenario="uas_answer.xml", calls=1):
    log = os.path.join(tmp, "%s.msg.log" % name)
    g = SippBackground(["-sf", os.path.join(SCENARIOS, scenario), "-i", "127.0.0.1", "-p", port,
                        "-m", calls, "-trace_msg", "-message_file", log], cwd=tmp)
    return g, log


def invites_in(log):
    try:
        text = open(log, errors="replace").read()
    except FileNotFoundError:
        return []
    return re.findall(r"^INVITE (\S+) SIP/2\.0", text, re.M)


def test_barred_class_and_another_users_call():
    """alice is barred from international calls: 0044... gets 403 "Call
    barred: international", logged and counted, and never reaches the
    gateway; bob's same call is carried; premium and her own block list
    too; free numbers pass."""
    tmp = tempfile.mkdtemp()
    p1 = free_port()
    cfg = barring_config(tmp, p1)
    with Server(config=cfg) as s:
        users(s, "alice", "bob")
        user_set_c(s, cfg, "alice@127.0.0.1", "bar=international,premium", "block_callees=0301")
        gw, log = gateway(tmp, p1, "gw-bar")
        r = invite(s, "alice", "00441234567")
        check(r.status == 403 and r.reason == "Call barred: international",
              "alice's international call: %r" % r)
        r = invite(s, "alice", "09001234")
        check(r.status == 403 and r.reason == "Call barred: premium", "premium: %r" % r)
        r = invite(s, "alice", "0301234")
        check(r.status == 403 and r.reason == "Call barred: blocked number", "own list: %r" % r)
        check(invites_in(log) == [], "a barred call reached the gateway: %r" % invites_in(log))
        # another user's same call is not affected: it reaches the gateway and is answered
        call(s, tmp, "00441234567", caller="bob")
        rc, out = gw.wait(20)
        check(rc == 0, "the gateway did not carry bob's call:\n" + out[-1500:])
        # (the test's dialplan has the national rule only: 0 -> +49)
        check(invites_in(log) == ["sip:+490441234567@127.0.0.1:%d" % p1],
              "bob's call at the gateway: %r" % invites_in(log))
        # a national number alice is not barred from goes out
        gw, log = gateway(tmp, p1, "gw-nat")
        call(s, tmp, "0401234", caller="alice")
        rc, out = gw.wait(20)
        check(rc == 0, "alice's national call was not carried:\n" + out[-1500:])
        # bar cleared: the international call goes out again
        user_set(s, "alice@127.0.0.1", "bar=")
        gw, log = gateway(tmp, p1, "gw-again")
        call(s, tmp, "00441234567", caller="alice")
        rc, out = gw.wait(20)
        check(rc == 0, "alice unbarred, still refused:\n" + out[-1500:])
        s.stop()
        text = s.log_text()
        check("barred: international" in text and re.search(r"calls blocked \d+, barred 3", text),
              "barred calls not logged and counted:\n" + text[-3000:])


def test_allow_only_restricted_phone():
    """The lobby phone may call our users and 112 only: a national number,
    another domain and a user not on its list are refused with the reason;
    internal calls and the free emergency number go through."""
    tmp = tempfile.mkdtemp()
    p1 = free_port()
    cfg = barring_config(tmp, p1)
    with Server(config=cfg) as s:
        users(s, "lobby", "bob", "desk")
        user_set(s, "lobby@127.0.0.1", "allow_callees=internal", "allow_callees_only=yes")
        r = invite(s, "lobby", "0301234")
        check(r.status == 403 and r.reason == "Call barred: not an allowed number",
              "lobby phone, national number: %r" % r)
        c = SipClient(s)
        ruri = "sip:someone@example.org"
        frm = "<sip:lobby@127.0.0.1>"
        r = c.request("INVITE", ruri, from_=frm)
        check(r is not None and r.status == 407, "no 407: %r" % r)
        a = c.auth_header(r, "lobby", "lobbypw", "INVITE", ruri, proxy=True)
        c.cseq += 1
        r = c.request("INVITE", ruri, [a], from_=frm)
        c.close()
        check(r is not None and r.status == 403 and r.reason.startswith("Call barred"),
              "lobby phone to another domain: %r" % r)
        r = invite(s, "lobby", "bob")
        check(r.status == 480, "lobby phone to bob (internal, not registered): %r" % r)
        gw, log = gateway(tmp, p1, "gw-112")
        call(s, tmp, "112", caller="lobby")
        rc, out = gw.wait(20)
        check(rc == 0, "112 from the lobby phone was not carried:\n" + out[-1500:])
        # only listed numbers, no internal calls: bob is refused, desk's prefix passes
        user_set(s, "lobby@127.0.0.1", "allow_callees=desk,0800")
        r = invite(s, "lobby", "bob")
        check(r.status == 403 and r.reason == "Call barred: internal calls not allowed",
              "internal call off the list: %r" % r)
        r = invite(s, "lobby", "desk")
        check(r.status == 480, "desk is on the list: %r" % r)
        # bob is not restricted by the lobby phone's settings
        r = invite(s, "bob", "0301234")
        check(r.status != 403, "bob barred by another user's settings: %r" % r)


def test_forwarding_and_feature_codes_are_barred():
    """bob is barred from international calls: dialling *72 with an
    international number is refused; a forwarding set from the CLI to one
    does not carry calls to him there (his barring, whoever calls); carol,
    who is not barred, forwards to the same number through the gateway."""
    tmp = tempfile.mkdtemp()
    p1 = free_port()
    cfg = barring_config(tmp, p1)
    with Server(config=cfg) as s:
        users(s, "alice", "bob", "carol")
        user_set_c(s, cfg, "bob@127.0.0.1", "bar=international")
        r = invite(s, "bob", "*7200441234567")
        check(r.status == 403 and r.reason == "Call barred: international",
              "*72 to a barred number: %r" % r)
        show = cli("user", "show", "bob@127.0.0.1", db=s.db).stdout
        check(re.search(r"forward_always\s+-", show), "the barred forwarding was stored:\n" + show)
        r = invite(s, "bob", "*72carol")
        check(r.status == 200, "*72 to an internal user: %r" % r)
        user_set(s, "bob@127.0.0.1", "forward_always=00441234567")
        r = invite(s, "alice", "bob")
        check(r.status == 403 and r.reason == "Call barred: international",
              "bob's forwarding to a barred number: %r" % r)
        user_set(s, "bob@127.0.0.1", "forward_always=sip:00441234567@example.org")
        r = invite(s, "alice", "bob")
        check(r.status == 403 and r.reason == "Call barred: international",
              "bob's forwarding to a barred user part elsewhere: %r" % r)
        user_set(s, "bob@127.0.0.1", "forward_always=", "forward_unregistered=09001234")
        user_set_c(s, cfg, "bob@127.0.0.1", "bar=international,premium")
        r = invite(s, "alice", "bob")
        check(r.status == 403 and r.reason == "Call barred: premium",
              "bob's forwarding when not registered to a barred number: %r" % r)
        user_set(s, "carol@127.0.0.1", "forward_always=00441234567")
        gw, log = gateway(tmp, p1, "gw-fwd")
        call(s, tmp, "carol", caller="alice")
        rc, out = gw.wait(20)
        check(rc == 0, "carol's forwarding was not carried:\n" + out[-1500:])


def chal_shape(r, name):
    """What a challenge says but for its nonce: status, reason, header names, parameters."""
    chals = []
    for v in r.all(name):
        chals.append(re.sub(r'nonce="[^"]*"', 'nonce=""', v))
    names = [n.lower() for n, _ in r.headers]
    return (r.status, r.reason, chals, names)


def register_from(server, ip, user, password):
    """REGISTER, 401, REGISTER with credentials, from ip; (first answer, last answer)."""
    c = client_from(server, ip)
    aor = "sip:%s@127.0.0.1" % user
    ruri = "sip:%s" % server.host
    hdrs = ["Contact: <sip:%s@%s:%d>" % (user, ip, c.port), "Expires: 300"]
    first = c.request("REGISTER", ruri, hdrs, to="<%s>" % aor, from_="<%s>" % aor, retries=0,
                      timeout=1.0)
    if first is None or first.status != 401:
        c.close()
        return first, None
    auth = c.auth_header(first, user, password, "REGISTER", ruri)
    c.cseq += 1
    last = c.request("REGISTER", ruri, hdrs + [auth], to="<%s>" % aor, from_="<%s>" % aor,
                     retries=0, timeout=1.0)
    c.close()
    return first, last


def test_allowed_networks_refuse_like_a_wrong_password():
    """bob's credentials count only from 127.0.0.1: from 127.0.0.2 the right
    password gets what a wrong one gets (401 / 407, the same challenge),
    counts as a wrong credential (the source is banned after a few), and
    from 127.0.0.1 it works."""
    tmp = tempfile.mkdtemp()
    cfg = os.path.join(tmp, "flood.yaml")
    with open(cfg, "w") as f:
        f.write("flood:\n  unauth_limit: 200\n  window: 60\n")
    with Server(config=cfg) as s:
        users(s, "bob", "alice")
        p = cli("user", "set", "bob@127.0.0.1", "allow_sources=127.0.0.1/32,2001:db8::/32",
                db=s.db)
        time.sleep(0.6)
        _, right_elsewhere = register_from(s, "127.0.0.2", "bob", "bobpw")
        _, wrong = register_from(s, "127.0.0.3", "bob", "wrong")
        check(right_elsewhere is not None and right_elsewhere.status == 401,
              "bob's password accepted from 127.0.0.2: %r" % right_elsewhere)
        check(wrong is not None and wrong.status == 401, "wrong password: %r" % wrong)
        a, b = chal_shape(right_elsewhere, "WWW-Authenticate"), chal_shape(wrong,
                                                                          "WWW-Authenticate")
        check(a == b, "the answers differ:\n%r\n%r" % (a, b))
        # a call is refused the same way: a fresh 407, as for a wrong password
        r = invite(s, "bob", "alice", ip="127.0.0.2")
        w = invite(s, "bob", "alice", ip="127.0.0.3", password="wrong")
        check(r.status == 407 and w.status == 407, "INVITE from 127.0.0.2: %r / %r" % (r, w))
        check(chal_shape(r, "Proxy-Authenticate") == chal_shape(w, "Proxy-Authenticate"),
              "INVITE answers differ: %r / %r" % (r, w))
        # from the allowed network it works
        _, ok = register_from(s, "127.0.0.1", "bob", "bobpw")
        check(ok is not None and ok.status == 200, "bob from 127.0.0.1: %r" % ok)
        r = invite(s, "bob", "alice")
        check(r.status == 480, "bob's call from 127.0.0.1: %r" % r)
        # each refusal is charged like a wrong password: 127.0.0.2 ends up banned
        banned = False
        for _ in range(20):
            first, last = register_from(s, "127.0.0.2", "bob", "bobpw")
            if first is None or last is None:
                banned = True
                break
            check(last.status == 401, "bob accepted from 127.0.0.2: %r" % last)
        check(banned, "127.0.0.2 not banned after 20 refused credentials:\n" + s.log_tail(20))
        check("banned" in s.log_text(), "no ban logged")
        # the allowed network is not affected
        _, ok = register_from(s, "127.0.0.1", "bob", "bobpw")
        check(ok is not None and ok.status == 200, "bob from 127.0.0.1 after the ban: %r" % ok)
        check(p.returncode == 0, p.stderr)


def test_block_sources_for_calls_to_a_user():
    """bob refuses calls from 127.0.0.2/32: alice calling from there gets
    403, from 127.0.0.1 she reaches him (480, not registered); carol, who
    blocks nothing, is reached from both."""
    with Server() as s:
        users(s, "alice", "bob", "carol")
        user_set(s, "bob@127.0.0.1", "block_sources=127.0.0.2/32")
        r = invite(s, "alice", "bob", ip="127.0.0.2")
        check(r.status == 403 and "blocked" in r.reason.lower(), "from 127.0.0.2: %r" % r)
        r = invite(s, "alice", "bob", ip="127.0.0.1")
        check(r.status == 480, "from 127.0.0.1: %r" % r)
        r = invite(s, "alice", "carol", ip="127.0.0.2")
        check(r.status == 480, "carol from 127.0.0.2: %r" % r)
        user_set(s, "bob@127.0.0.1", "block_sources=")
        r = invite(s, "alice", "bob", ip="127.0.0.2")
        check(r.status == 480, "block_sources cleared: %r" % r)


def test_cli_checks_and_shows():
    """user set refuses bad networks and unknown classes with the reason
    (exit 2, nothing written); user show prints the settings."""
    tmp = tempfile.mkdtemp()
    cfg = os.path.join(tmp, "c.yaml")
    db = os.path.join(tmp, "sb.db")
    with open(cfg, "w") as f:
        f.write("database:\n  path: %s\nbarring:\n  classes:\n    international: [\"00\"]\n"
                "    premium: [\"0900\"]\n" % db)
    cli("user", "add", "bob@127.0.0.1", "--password", "x", "-c", cfg)
    bad = [
        (("allow_sources=10.0.0.0/33",), "allow_sources: '10.0.0.0/33' is not an IP address"),
        (("block_sources=192.0.2.0/24,nowhere",), "block_sources: 'nowhere' is not an IP"),
        (("allow_sources=192.0.2.1,",), "empty entry"),
        (("bar=international,premiumx",),
         "bar: 'premiumx' is not a class of barring.classes in %s (international, premium)" % cfg),
        (("bar=bad name!",), "bar: 'bad name!' is not a barring class name"),
        (("block_callees=00 44",), "block_callees: '00 44' is not a callee prefix"),
        (("allow_callees_only=maybe",), "allow_callees_only: 'maybe' is not yes or no"),
    ]
    for words, why in bad:
        p = cli("user", "set", "bob@127.0.0.1", *words, "-c", cfg, check_rc=False)
        check(p.returncode == 2 and why in p.stderr, "%s: %d %r" % (words, p.returncode, p.stderr))
    p = cli("user", "set", "bob@127.0.0.1", "bar=premium", db=db, check_rc=False)
    check(p.returncode == 2 and "-c FILE" in p.stderr, "without the configuration: %r" % p.stderr)
    cli("user", "set", "bob@127.0.0.1", "bar=international,premium", "block_callees=0137",
        "allow_callees=internal,0800", "allow_callees_only=no",
        "allow_sources=192.0.2.0/24,2001:db8::/32", "block_sources=203.0.113.7", "-c", cfg)
    show = cli("user", "show", "bob@127.0.0.1", "-c", cfg).stdout
    for key, value in (("bar", "international,premium"), ("block_callees", "0137"),
                       ("allow_callees", "internal,0800"), ("allow_callees_only", "no"),
                       ("allow_sources", "192.0.2.0/24,2001:db8::/32"),
                       ("block_sources", "203.0.113.7")):
        check(re.search(r"\n  %s\s+%s\n" % (key, re.escape(value)), show),
              "%s not shown as %s:\n%s" % (key, value, show))
    # list check applies the callee's block_sources as the server does
    p = cli("list", "check", "alice", "bob@127.0.0.1", "203.0.113.7", "-c", cfg, check_rc=False)
    check(p.returncode == 1 and "block_sources" in p.stdout, "list check: %r" % (p.stdout,))
    p = cli("list", "check", "alice", "bob@127.0.0.1", "192.0.2.1", "-c", cfg, check_rc=False)
    check(p.returncode == 0, "list check from elsewhere: %r" % (p.stdout,))
    p = cli("check-config", "-c", cfg)
    with open(cfg, "a") as f:
        f.write("  free: [\"1 12\"]\n")
    p = cli("check-config", "-c", cfg, check_rc=False)
    check(p.returncode == 3 and "1 12" in p.stderr, "bad free prefix: %r" % p.stderr)


if __name__ == "__main__":
    main(globals())
