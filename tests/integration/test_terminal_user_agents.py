#!/usr/bin/env python3
"""Terminal types from real User-Agents (issue 12, item 5), end to end: SIPp
UAS instances register as one user with the User-Agents of a desk phone, a
desktop softphone and iOS/Android builds of softphones, `switchboard reg
list` shows the type each got, and sequential ringing (desk, then pc, then
mobile) rings them in that order. A Cisco IOS voice gateway's User-Agent
names "IOS" and is not a mobile.

On the code before, "Zoiper for iOS rv2.10.20.4" was a pc (the desktop app's
name matched first) and "Z 5.6.6 v2.10.20.5" (Zoiper 5 desktop) was other.
"""
import re
import tempfile
import time

from sbtest import Server, check, cli, main
from test_call_services import Phone, call, first_invite, users, user_set

AGENTS = (
    ("desk", "uas_ring.xml", "Yealink SIP-T46S 66.85.0.5", "desk"),
    ("zoiper-desktop", "uas_ring.xml", "Z 5.6.6 v2.10.20.5", "pc"),
    ("zoiper-ios", "uas_ring.xml", "Zoiper for iOS rv2.10.20.4", "mobile"),
    ("bria-android", "uas_answer.xml", "Bria Android release 6.12.3 stamp 112233", "mobile"),
)


def reg_types(server, aor):
    """{port: terminal type} from `switchboard reg list`."""
    out = cli("reg", "list", aor, db=server.db).stdout
    types = {}
    for line in out.splitlines():
        m = re.search(r"sip:\S+@127\.0\.0\.1:(\d+)\S*\s+\d+\s+\S+\s+\S+\s+(desk|pc|mobile|other)\b",
                      line)
        if m:
            types[int(m.group(1))] = m.group(2)
    return out, types


def test_user_agents_classified_and_rung_in_order():
    tmp = tempfile.mkdtemp()
    with Server() as s:
        users(s, "alice", "bob")
        phones = {name: Phone(s, tmp, "bob", "bobpw", xml, ua=ua, name=name)
                  for name, xml, ua, _ in AGENTS}
        deadline = time.time() + 5  # bindings reach the store within 100 ms (write-behind)
        out, types = reg_types(s, "bob@127.0.0.1")
        while len(types) < len(AGENTS) and time.time() < deadline:
            time.sleep(0.05)
            out, types = reg_types(s, "bob@127.0.0.1")
        for name, _, ua, want in AGENTS:
            got = types.get(phones[name].port)
            check(got == want, "%s (%s) registered as %s, not %s:\n%s" % (name, ua, got, want, out))
        user_set(s, "bob@127.0.0.1", "ring=sequential", "order=desk:2,pc:2,mobile:10")
        call(s, tmp, "bob")
        for p in phones.values():
            rc, text = p.wait(30)
            check(rc == 0, "%s scenario failed:\n%s" % (p.name, text[-1500:]))
        t_desk = first_invite(phones["desk"])
        t_pc = first_invite(phones["zoiper-desktop"])
        t_ios = first_invite(phones["zoiper-ios"])
        t_android = first_invite(phones["bria-android"])
        check(t_desk < t_pc < min(t_ios, t_android),
              "not desk, pc, then the mobiles: %.2f %.2f %.2f %.2f"
              % (t_desk, t_pc, t_ios, t_android))
        check(abs(t_ios - t_android) < 1.0, "the two mobiles did not ring together: %.2f %.2f"
              % (t_ios, t_android))
        check(phones["zoiper-ios"].got("CANCEL"), "the iOS Zoiper was not cancelled when "
              "the Android Bria answered")


def test_terminal_test_cli_and_ios_gateway():
    with Server() as s:
        for ua, want in (("Zoiper for iOS rv2.10.20.4", "mobile"),
                         ("LinphoneiOS/4.3.0 (Bob's iPhone) LinphoneSDK/4.4.0", "mobile"),
                         ("Groundwire 6.2.1 rv:2006 (iPhone; iOS 17.4.1)", "mobile"),
                         ("Z 5.6.6 v2.10.20.5", "pc"),
                         ("Telephone 1.6", "pc"),
                         ("Cisco-SIPGateway/IOS-15.5.3.M1", "other"),
                         ("PolycomVVX-VVX_411-UA/6.3.0.14929", "desk")):
            p = cli("terminal", "test", ua, db=s.db)
            check(p.stdout.strip().endswith(want), "terminal test %r: %r, not %s"
                  % (ua, p.stdout, want))


if __name__ == "__main__":
    main(globals())
