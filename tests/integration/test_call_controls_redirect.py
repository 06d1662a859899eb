#!/usr/bin/env python3
"""Redirect per user (issue 12, item 4): `switchboard user set bob redirect=yes`
makes the server a redirect server for bob alone. A call to bob is answered
302 with his registered contacts, highest q first, each with its q and how
long its binding still holds (RFC 3261 8.3.1, 21.3.3); a call to carol, in
the same domain, is still proxied to her SIPp UAS and answered by it. A
redirect user with no terminal answers as any user with no terminal (404 to
a stranger, 480 to our users), and a registered contact that points at a
gateway is never shown in a 302 (docs/security.md).

On the code before, `redirect=yes` was refused by `user set` and bob's call
was proxied like carol's.
"""
import os
import re
import tempfile
import time

from sbtest import SCENARIOS, Server, SipClient, check, cli, free_port, main
from test_call_services import Phone, auth_invite_status, call, invite_status, users, user_set


def redirect_config(tmp, gw_port):
    """One gateway on 127.0.0.1:gw_port (never probed), numbers starting with 0 to it."""
    path = os.path.join(tmp, "redirect-user.yaml")
    with open(path, "w") as f:
        f.write("timers:\n  t1: 100\n"
                "gateways:\n  - {name: gw1, address: 127.0.0.1, port: %d, probe: false}\n"
                "gateway_groups:\n  - name: pstn\n    gateways: [gw1]\n"
                "dialplan:\n  rules:\n    - prefix: \"0\"\n      route: [pstn]\n" % gw_port)
    return path


def register(server, user, port, q, expires=600):
    c = SipClient(server)
    r = c.register(user, user + "pw", contact="<sip:%s@127.0.0.1:%d>;q=%s" % (user, port, q),
                   expires=expires)
    c.close()
    check(r is not None and r.status == 200, "register %s:%d: %r" % (user, port, r))


def contact_params(value):
    """'<sip:x@h:p>;q=1.000;expires=599' -> ('sip:x@h:p', {'q': '1.000', 'expires': '599'})"""
    m = re.match(r"\s*<([^>]*)>(.*)", value)
    check(m, "Contact without <>: %r" % value)
    params = dict(p.split("=", 1) if "=" in p else (p, "") for p in m.group(2).split(";") if p)
    return m.group(1), params


def test_redirect_per_user_others_proxied():
    tmp = tempfile.mkdtemp()
    gw_port = free_port()
    with Server(config=redirect_config(tmp, gw_port)) as s:
        users(s, "alice", "bob", "carol", "dave", "erin")
        # bob: a SIPp UAS at q=1.0 and a second contact at q=0.5 with a shorter binding
        bob_phone = Phone(s, tmp, "bob", "bobpw", "uas_answer.xml", q="1.0", name="bob-desk")
        other = free_port()
        register(s, "bob", other, "0.5", expires=300)
        carol = Phone(s, tmp, "carol", "carolpw", "uas_answer.xml", name="carol")

        p = user_set(s, "bob@127.0.0.1", "redirect=yes")
        show = cli("user", "show", "bob@127.0.0.1", db=s.db).stdout
        check(re.search(r"(?m)^  redirect\s+yes", show), "user show lacks redirect: %s" % show)
        show = cli("user", "show", "carol@127.0.0.1", db=s.db).stdout
        check(re.search(r"(?m)^  redirect\s+no", show), "carol's redirect: %s" % show)

        # a stranger's call to bob: 302 with both contacts, by q, with q and expires
        r = invite_status(s, "eve", "bob")
        check(r.status == 302, "bob not redirected: %r\n%s" % (r, s.log_tail(20)))
        contacts = [contact_params(v) for v in r.all("Contact")]
        check(len(contacts) == 2, "contacts: %r" % r.all("Contact"))
        (u1, p1), (u2, p2) = contacts
        check(":%d" % bob_phone.port in u1 and ":%d" % other in u2,
              "not highest q first: %r" % r.all("Contact"))
        check(p1.get("q") == "1.000" and p2.get("q") == "0.500", "q lost: %r" % contacts)
        check(p1.get("expires", "").isdigit() and 590 <= int(p1["expires"]) <= 600 and
              p2.get("expires", "").isdigit() and 290 <= int(p2["expires"]) <= 300,
              "expires not the bindings' remaining time: %r" % contacts)

        # one of our users, with SIPp and 407: the same 302, ACKed
        _, text = call(s, tmp, "bob", expect=302)
        check(re.search(r"SIP/2\.0 302", text), "SIPp saw no 302")
        check(not bob_phone.invites(), "bob's phone rang although he redirects")

        # carol, same domain, no redirect: proxied and answered by her UAS
        _, text = call(s, tmp, "carol", expect=200)
        check(carol.wait(30)[0] == 0 and carol.invites(), "carol's call not proxied to her UAS")

        # a redirect user with no terminal: as any user with no terminal
        user_set(s, "dave@127.0.0.1", "redirect=yes")
        r = invite_status(s, "eve", "dave")
        check(r.status == 404, "stranger -> unregistered redirect user: %r" % r)
        r = auth_invite_status(s, "alice", "dave")
        check(r.status == 480, "our user -> unregistered redirect user: %r" % r)

        # a contact registered at the gateway's address is never shown
        user_set(s, "erin@127.0.0.1", "redirect=yes")
        register(s, "erin", gw_port, "1.0")
        r = invite_status(s, "eve", "erin")
        check(r.status == 404 and not r.all("Contact"),
              "the gateway's address shown in a 302: %r %r" % (r, r.all("Contact")))
        r = auth_invite_status(s, "alice", "erin")
        check(r.status == 480 and not r.all("Contact"),
              "the gateway's address shown to our user: %r %r" % (r, r.all("Contact")))
        plain = free_port()
        register(s, "erin", plain, "0.9")
        r = invite_status(s, "eve", "erin")
        shown = r.all("Contact")
        check(r.status == 302 and len(shown) == 1 and ":%d" % plain in shown[0],
              "erin's 302: %r %r" % (r, shown))

        # redirect cleared: bob is proxied again, his UAS answers
        user_set(s, "bob@127.0.0.1", "redirect=")
        _, text = call(s, tmp, "bob", expect=200)
        check(bob_phone.wait(30)[0] == 0 and bob_phone.invites(), "bob not proxied after redirect=")


def test_redirect_setting_errors():
    with Server() as s:
        users(s, "bob")
        p = cli("user", "set", "bob@127.0.0.1", "redirect=maybe", db=s.db, check_rc=False)
        check(p.returncode == 2 and "redirect: 'maybe' is not yes or no" in p.stderr,
              "bad value: %d %r" % (p.returncode, p.stderr))
        show = cli("user", "show", "bob@127.0.0.1", db=s.db).stdout
        check(re.search(r"(?m)^  redirect\s+no", show), "changed by a refused word: %s" % show)


if __name__ == "__main__":
    main(globals())
