#!/usr/bin/env python3
"""Messaging, presence and the IM broker, driven over real sockets.

Covered: MESSAGE to a user who is offline is stored (202) and delivered in
order with its original Date when the user registers, each delivery confirmed
by a 200 before it is deleted; a MESSAGE whose contact answers 480 is stored
too; stored messages survive a restart and expire; oversize gets 413.
PUBLISH life cycle (ETag, refresh, modify, remove, 412, 489, 415, 400 for a
bad PIDF); SUBSCRIBE/NOTIFY presence with the PIDF parsed by libxml2 (lxml)
and checked: composed from registrations, then from publications; watcher
authorisation (a foreign watcher waits as pending, shown through
presence.winfo and the CLI, until the presentity allows it); message-summary
from a mailbox set with the CLI; topics: three members join with SUBSCRIBE,
one is offline, a MESSAGE to the topic reaches the others with the sender in
From and is stored for the offline one, membership and backlog survive a
restart, a member who unsubscribes leaves.

Real peers: SIPp is a presence watcher (scenarios/watcher.xml: 407, NOTIFY
with open, unsubscribe, final NOTIFY); baresip (contact and presence modules)
watches a user, reports her going online, and PUBLISHes its own state, which
another watcher then sees; baresip takes the messages stored for it when it
registers. sipsak's MESSAGE to an offline user is in test_sipsak.py.
"""
import os
import random
import re
import time

try:
    from lxml import etree  # libxml2, from Debian's python3-lxml
except ImportError:  # a python3 of its own (pyenv) ahead of Debian's on PATH
    import sys
    sys.path.append("/usr/lib/python3/dist-packages")
    from lxml import etree

from sbtest import (Response, Server, SipClient, auth_kw, check, cli, free_port, main, sipp,
                    write_inf)

SCENARIOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "scenarios")

PIDF_NS = "urn:ietf:params:xml:ns:pidf"
TOPICS = "topics.example.com"


def config(tmp, extra=""):
    path = os.path.join(tmp, "sb.yaml")
    with open(path, "w") as f:
        f.write("timers:\n  t1: 50\n  t2: 400\n"
                "broker:\n  domain: %s\n  auto_create: true\n%s" % (TOPICS, extra))
    return path


def server(extra="", **kw):
    import tempfile
    tmp = kw.pop("tmp", None) or tempfile.mkdtemp(prefix="sbmsg-")
    srv = Server(tmp=tmp, config=config(tmp, extra), **kw)
    return srv


class UA(SipClient):
    """A user agent: registers, sends authenticated requests, answers what it gets."""

    def __init__(self, srv, user, password="pw-" + "x", domain="127.0.0.1"):
        super().__init__(srv)
        self.user, self.password, self.domain = user, password, domain
        self.aor = "sip:%s@%s" % (user, domain)
        self.tag = "%x" % random.getrandbits(32)
        self.inbox = []

    def reg(self, expires=300):
        r = self.register(self.user, self.password, expires=expires)
        check(r and r.status == 200, "REGISTER %s: %r" % (self.user, r))

    def send(self, method, ruri, headers=(), body="", to=None):
        """Out of dialog, with a new Call-ID, through the 407 challenge."""
        self.callid = "%x@sbmsg" % random.getrandbits(64)
        self.cseq += 1
        kw = dict(to=to or "<%s>" % ruri, from_="<%s>" % self.aor)
        r = self.request(method, ruri, headers, body, **kw)
        if r is not None and r.status == 407:
            auth = self.auth_header(r, self.user, self.password, method, ruri, proxy=True)
            self.cseq += 1
            r = self.request(method, ruri, list(headers) + [auth], body, **kw)
        return r

    def wait(self, method, timeout=5.0, answer=200):
        """The next request of this method (others are answered and kept in inbox)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            for i, m in enumerate(self.inbox):
                if m.start.startswith(method + " "):
                    return self.inbox.pop(i)
            try:
                raw = self.recv_raw(max(0.05, deadline - time.time()))
            except OSError:
                continue
            m = Response(raw)
            if m.start.startswith("SIP/2.0"):
                continue  # a late response
            self.respond(m, answer if m.start.startswith(method + " ") else 200)
            self.inbox.append(m)
        return None

    def respond(self, req, status, reason="OK"):
        lines = ["SIP/2.0 %d %s" % (status, reason)]
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            for v in req.all(name):
                if name == "To" and "tag=" not in v:
                    v += ";tag=%x" % random.getrandbits(32)
                lines.append("%s: %s" % (name, v))
        lines.append("Content-Length: 0")
        self.send_raw(("\r\n".join(lines) + "\r\n\r\n").encode())

    def drain(self, t=0.3):
        while self.wait("NONE", timeout=t) is not None:
            pass


def users(srv, *names):
    for n in names:
        srv.add_user(n, "pw-x")


def pidf(entity, basic="open", note=None, tid="t1"):
    n = "<note>%s</note>" % note if note else ""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<presence xmlns="%s" entity="%s"><tuple id="%s"><status><basic>%s</basic>'
            '</status>%s</tuple></presence>' % (PIDF_NS, entity, tid, basic, n))


def parse_pidf(body):
    root = etree.fromstring(body.encode())
    check(root.tag == "{%s}presence" % PIDF_NS, "not a PIDF: %r" % body)
    basics = [b.text for b in root.iter("{%s}basic" % PIDF_NS)]
    notes = [n.text for n in root.iter("{%s}note" % PIDF_NS)]
    return root, basics, notes


def test_offline_store_then_delivery_in_order():
    with server() as srv:
        users(srv, "alice", "bob")
        alice, bob = UA(srv, "alice"), UA(srv, "bob")
        alice.reg()
        dates = []
        for i in range(3):
            date = "Sun, 22 Nov 2026 10:00:0%d GMT" % i
            dates.append(date)
            r = alice.send("MESSAGE", bob.aor, ["Content-Type: text/plain", "Date: " + date],
                           "hello %d" % i)
            check(r.status == 202, "offline MESSAGE: %r" % r)
        time.sleep(0.5)
        out = cli("msg", "list", "bob@127.0.0.1", db=srv.db).stdout
        check(out.count("bob@127.0.0.1") == 3, out)
        bob.reg()
        for i in range(3):
            m = bob.wait("MESSAGE")
            check(m is not None, "stored message %d not delivered" % i)
            check(m.body == "hello %d" % i, "order: %r" % m.body)
            check(m.get("Date") == dates[i], "Date kept: %r" % m.get("Date"))
            check("alice@127.0.0.1" in m.get("From"), m.get("From"))
            check(m.get("Content-Type") == "text/plain", m.get("Content-Type"))
        time.sleep(0.5)
        check("no stored messages" in cli("msg", "list", db=srv.db).stdout, "not deleted")


def test_msg_del_on_running_server():
    """A stored message deleted with the CLI is dropped by the running server:
    the user gets the others, in order, and never the deleted one."""
    with server() as srv:
        users(srv, "alice", "bob")
        alice, bob = UA(srv, "alice"), UA(srv, "bob")
        alice.reg()
        for i in range(3):
            r = alice.send("MESSAGE", bob.aor, ["Content-Type: text/plain"], "note %d" % i)
            check(r.status == 202, "offline MESSAGE: %r" % r)
        time.sleep(0.5)
        rows = [l.split()[0] for l in cli("msg", "list", "bob@127.0.0.1", db=srv.db).stdout
                .splitlines()[1:]]
        check(len(rows) == 3, "stored: %r" % rows)
        p = cli("msg", "del", rows[1], db=srv.db)
        check("deleted" in p.stdout and "restart" not in p.stdout, p.stdout)
        p = cli("msg", "del", rows[1], db=srv.db, check_rc=False)
        check(p.returncode == 4 and "no such message" in p.stderr, p.stderr)
        time.sleep(1.0)  # the server notices the change within 250 ms
        bob.reg()
        got = []
        while True:
            m = bob.wait("MESSAGE", timeout=2)
            if m is None:
                break
            got.append(m.body)
        check(got == ["note 0", "note 2"], "after msg del: %r" % got)
        check("deleted from the CLI" in srv.log_text(), "no log line for the deletion")


def test_failed_delivery_is_stored_and_survives_restart():
    with server() as srv:
        users(srv, "alice", "bob")
        alice, bob = UA(srv, "alice"), UA(srv, "bob")
        alice.reg()
        bob.reg()
        # bob's phone refuses the message: 480 -> kept, 202 to alice
        import threading
        res = {}
        t = threading.Thread(target=lambda: res.setdefault("r", alice.send(
            "MESSAGE", bob.aor, ["Content-Type: text/plain"], "while away")))
        t.start()
        m = bob.wait("MESSAGE", answer=480)
        check(m is not None and m.body == "while away", "online attempt: %r" % m)
        t.join(10)
        check(res["r"].status == 202, "after 480: %r" % res["r"])
        time.sleep(0.5)
        srv.stop()
        srv.start()
        bob.reg()
        m = bob.wait("MESSAGE")
        check(m is not None and m.body == "while away", "after restart: %r" % m)


def test_oversize_and_expiry():
    with server("messaging:\n  max_size: 100\n  store_time: 2\n") as srv:
        users(srv, "alice", "bob")
        alice, bob = UA(srv, "alice"), UA(srv, "bob")
        r = alice.send("MESSAGE", bob.aor, ["Content-Type: text/plain"], "x" * 200)
        check(r.status == 413, "oversize: %r" % r)
        r = alice.send("MESSAGE", bob.aor, ["Content-Type: text/plain"], "short-lived")
        check(r.status == 202, r)
        time.sleep(3.5)
        bob.reg()
        check(bob.wait("MESSAGE", timeout=1.5) is None, "an expired message was delivered")
        r = alice.send("MESSAGE", "sip:nobody@127.0.0.1", ["Content-Type: text/plain"], "x")
        check(r.status == 404, "unknown user: %r" % r)


def test_publish_life_cycle():
    with server() as srv:
        users(srv, "alice")
        alice = UA(srv, "alice")
        ev = ["Event: presence", "Content-Type: application/pidf+xml"]
        r = alice.send("PUBLISH", alice.aor, ["Event: presence"])
        check(r.status == 400 and "SIP-If-Match" in r.reason, "no body: %r" % r)
        r = alice.send("PUBLISH", alice.aor, ["Event: presence", "Content-Type: text/plain"], "x")
        check(r.status == 415 and "application/pidf+xml" in r.get("Accept", ""), r)
        r = alice.send("PUBLISH", alice.aor, ev, "<presence><oops")
        check(r.status == 400 and "Invalid PIDF" in r.reason, "bad xml: %r" % r)
        r = alice.send("PUBLISH", alice.aor, ev, '<presence xmlns="%s" entity="x"><tuple>'
                       '<status/></tuple></presence>' % PIDF_NS)
        check(r.status == 400 and "id" in r.reason, "tuple without id: %r" % r)
        r = alice.send("PUBLISH", alice.aor, ["Event: dialog"], "x")
        check(r.status == 489 and r.get("Allow-Events") == "presence", r)
        r = alice.send("PUBLISH", alice.aor, ev + ["Expires: 120"], pidf(alice.aor))
        check(r.status == 200 and r.get("SIP-ETag") and r.get("Expires") == "120", r)
        etag = r.get("SIP-ETag")
        r = alice.send("PUBLISH", alice.aor, ["Event: presence", "SIP-If-Match: " + etag])
        check(r.status == 200 and r.get("SIP-ETag") not in (None, etag), "refresh: %r" % r)
        etag2 = r.get("SIP-ETag")
        r = alice.send("PUBLISH", alice.aor, ["Event: presence", "SIP-If-Match: " + etag])
        check(r.status == 412, "old etag: %r" % r)
        r = alice.send("PUBLISH", alice.aor, ev + ["SIP-If-Match: " + etag2],
                       pidf(alice.aor, "closed"))
        check(r.status == 200, "modify: %r" % r)
        etag3 = r.get("SIP-ETag")
        time.sleep(0.3)
        check(etag3 in cli("presence", "list", db=srv.db).stdout, "CLI shows the publication")
        r = alice.send("PUBLISH", alice.aor, ["Event: presence", "Expires: 0",
                                              "SIP-If-Match: " + etag3])
        check(r.status == 200, "remove: %r" % r)
        r = alice.send("PUBLISH", "sip:bob@127.0.0.1", ev, pidf("sip:bob@127.0.0.1"))
        check(r.status == 403, "publishing for someone else: %r" % r)


def subscribe(ua, target, event="presence", expires=600):
    r = ua.send("SUBSCRIBE", target, ["Event: " + event, "Expires: %d" % expires,
                                      "Contact: <sip:%s@127.0.0.1:%d>" % (ua.user, ua.port)])
    return r


def notify_of(ua, timeout=5.0):
    n = ua.wait("NOTIFY", timeout=timeout)
    check(n is not None, "no NOTIFY")
    return n


def test_presence_subscribe_notify():
    with server() as srv:
        users(srv, "alice", "bob")
        alice, bob = UA(srv, "alice"), UA(srv, "bob")
        r = subscribe(bob, alice.aor, "dialog")
        check(r.status == 489 and "presence" in r.get("Allow-Events", ""), r)
        r = subscribe(bob, alice.aor)
        check(r.status == 200 and "tag=" in r.get("To"), r)
        n = notify_of(bob)
        check(n.get("Subscription-State").startswith("active"), n.get("Subscription-State"))
        _, basics, _ = parse_pidf(n.body)
        check(basics == ["closed"], "unregistered is closed: %r" % basics)
        alice.reg()
        _, basics, _ = parse_pidf(notify_of(bob).body)
        check(basics == ["open"], "registered is open: %r" % basics)
        r = alice.send("PUBLISH", alice.aor, ["Event: presence",
                                              "Content-Type: application/pidf+xml"],
                       pidf(alice.aor, "open", "In a meeting", "pc"))
        check(r.status == 200, r)
        root, basics, notes = parse_pidf(notify_of(bob).body)
        check(root.get("entity") == alice.aor, root.get("entity"))
        check(notes == ["In a meeting"], "published note: %r" % notes)
        # a second publication adds its tuple
        r = alice.send("PUBLISH", alice.aor, ["Event: presence",
                                              "Content-Type: application/pidf+xml"],
                       pidf(alice.aor, "closed", "Phone off", "mobile"))
        check(r.status == 200, "second publication: %r" % r)
        root, basics, notes = parse_pidf(notify_of(bob).body)
        check(sorted(basics) == ["closed", "open"] and len(notes) == 2, "composed: %r" % basics)


def test_watcher_authorisation_and_winfo():
    with server() as srv:
        users(srv, "alice")
        alice = UA(srv, "alice")
        carol = UA(srv, "carol", domain="other.example")
        alice.reg()
        r = subscribe(alice, alice.aor, "presence.winfo")
        check(r.status == 200, r)
        n = notify_of(alice)
        check(n.get("Content-Type") == "application/watcherinfo+xml", n.get("Content-Type"))
        r = subscribe(carol, alice.aor)
        check(r.status == 200, "foreign watcher: %r" % r)
        n = notify_of(carol)
        check(n.get("Subscription-State").startswith("pending") and not n.body,
              "pending without state: %r %r" % (n.get("Subscription-State"), n.body))
        n = notify_of(alice)
        root = etree.fromstring(n.body.encode())
        w = root.findall(".//{urn:ietf:params:xml:ns:watcherinfo}watcher")
        check(len(w) == 1 and w[0].get("status") == "pending"
              and w[0].text == "sip:carol@other.example", "winfo: %r" % n.body)
        check("pending" in cli("presence", "list", db=srv.db).stdout, "CLI shows pending")
        cli("user", "set", "alice@127.0.0.1", "watch_allow=carol@other.example", db=srv.db)
        n = notify_of(carol, timeout=6)
        check(n.get("Subscription-State").startswith("active"), n.get("Subscription-State"))
        _, basics, _ = parse_pidf(n.body)
        check(basics == ["open"], basics)
        cli("user", "set", "alice@127.0.0.1", "watch_allow=", "watch_block=@other.example",
            db=srv.db)
        n = notify_of(carol, timeout=6)
        check("terminated;reason=rejected" in n.get("Subscription-State"),
              n.get("Subscription-State"))
        r = subscribe(carol, alice.aor)
        check(r.status == 403, "blocked watcher: %r" % r)
        r = subscribe(carol, alice.aor, "presence.winfo")
        check(r.status == 403, "winfo of someone else: %r" % r)


def test_refresh_unsubscribe_and_restart():
    with server() as srv:
        users(srv, "alice", "bob")
        alice, bob = UA(srv, "alice"), UA(srv, "bob")
        r = subscribe(bob, alice.aor)
        check(r.status == 200, r)
        to = r.get("To")
        notify_of(bob)
        srv.stop()
        srv.start()
        n = notify_of(bob, timeout=6)  # restored: told where it stands
        check(n.get("Subscription-State").startswith("active"), n.get("Subscription-State"))
        contact = re.search(r"<([^>]+)>", r.get("Contact")).group(1)
        bob.cseq += 1
        r = bob.request("SUBSCRIBE", contact, ["Event: presence", "Expires: 300",
                                               "Contact: <sip:bob@127.0.0.1:%d>" % bob.port],
                        to=to, from_="<%s>" % bob.aor)
        check(r.status == 200 and r.get("Expires") == "300", "refresh: %r" % r)
        notify_of(bob)
        bob.cseq += 1
        r = bob.request("SUBSCRIBE", contact, ["Event: presence", "Expires: 0",
                                               "Contact: <sip:bob@127.0.0.1:%d>" % bob.port],
                        to=to, from_="<%s>" % bob.aor)
        check(r.status == 200, "unsubscribe: %r" % r)
        n = notify_of(bob)
        check(n.get("Subscription-State").startswith("terminated"), n.get("Subscription-State"))
        bob.cseq += 1
        r = bob.request("SUBSCRIBE", contact, ["Event: presence", "Expires: 60"],
                        to=to, from_="<%s>" % bob.aor)
        check(r.status == 481, "after the end: %r" % r)


def test_message_summary():
    with server() as srv:
        users(srv, "alice")
        alice = UA(srv, "alice")
        r = subscribe(alice, alice.aor, "message-summary")
        check(r.status == 200, r)
        n = notify_of(alice)
        check(n.get("Content-Type") == "application/simple-message-summary", n.headers)
        check("Messages-Waiting: no" in n.body, n.body)
        cli("mwi", "set", "alice@127.0.0.1", "2", "1", db=srv.db)
        n = notify_of(alice, timeout=6)
        check("Messages-Waiting: yes" in n.body and "Voice-Message: 2/1" in n.body, n.body)
        p = cli("mwi", "set", "alice@127.0.0.1", "two", "1", db=srv.db, check_rc=False)
        check(p.returncode == 2 and "counts" in p.stderr, p.stderr)


def test_topics():
    with server() as srv:
        users(srv, "alice", "bob", "carol")
        alice, bob, carol = UA(srv, "alice"), UA(srv, "bob"), UA(srv, "carol")
        topic = "sip:team-red@" + TOPICS
        for ua in (alice, bob, carol):
            ua.reg()
            r = subscribe(ua, topic, "topic")
            check(r.status == 200, "join %s: %r" % (ua.user, r))
            n = notify_of(ua)
            check(n.get("Event") == "topic", n.get("Event"))
        out = cli("topic", "members", "team-red@" + TOPICS, db=srv.db).stdout
        check(all(u + "@127.0.0.1" in out for u in ("alice", "bob", "carol")), out)
        carol.reg(expires=0)  # carol goes offline, still a member
        r = alice.send("MESSAGE", topic, ["Content-Type: text/plain"], "standup in 5")
        check(r.status == 202, "topic MESSAGE: %r" % r)
        m = bob.wait("MESSAGE")
        check(m is not None and m.body == "standup in 5", "bob: %r" % m)
        check("alice@127.0.0.1" in m.get("From") and "team-red@" in m.get("To"),
              (m.get("From"), m.get("To")))
        check(alice.wait("MESSAGE", timeout=0.5) is None, "the sender got its own message")
        time.sleep(0.5)
        check("carol@127.0.0.1" in cli("msg", "list", db=srv.db).stdout, "stored for carol")
        r = alice.send("MESSAGE", "sip:nosuch@" + TOPICS, ["Content-Type: text/plain"], "x")
        check(r.status == 404, r)
        dave = UA(srv, "dave")
        srv.add_user("dave", "pw-x")
        r = dave.send("MESSAGE", topic, ["Content-Type: text/plain"], "x")
        check(r.status == 403, "non-member: %r" % r)
        srv.stop()
        srv.start()
        carol.reg()
        m = carol.wait("MESSAGE")
        check(m is not None and m.body == "standup in 5", "backlog after restart: %r" % m)
        r = subscribe(bob, topic, "topic", expires=0)  # bob leaves
        check(r.status == 200, r)
        time.sleep(0.3)
        r = alice.send("MESSAGE", topic, ["Content-Type: text/plain"], "second")
        check(r.status == 202, r)
        m = carol.wait("MESSAGE")
        check(m is not None and m.body == "second", m)
        check(bob.wait("MESSAGE", timeout=1.0) is None, "bob left but got it")
        # CLI: topics made and removed while the server runs
        cli("topic", "create", "ops@" + TOPICS, db=srv.db)
        cli("topic", "add", "ops@" + TOPICS, "alice@127.0.0.1", db=srv.db)
        cli("topic", "add", "ops@" + TOPICS, "carol@127.0.0.1", db=srv.db)
        time.sleep(1.5)
        r = alice.send("MESSAGE", "sip:ops@" + TOPICS, ["Content-Type: text/plain"], "ops!")
        check(r.status == 202, "CLI-made topic: %r" % r)
        m = carol.wait("MESSAGE")
        check(m is not None and m.body == "ops!", m)
        p = cli("topic", "create", "ops@" + TOPICS, db=srv.db, check_rc=False)
        check(p.returncode == 5, p.stderr)
        p = cli("topic", "members", "nope@" + TOPICS, db=srv.db, check_rc=False)
        check(p.returncode == 4, p.stderr)
        check("sip:team-red@" + TOPICS in cli("topic", "list", db=srv.db).stdout, "list")


def test_sipp_watcher():
    """SIPp as the watcher: 407, SUBSCRIBE, NOTIFY with open, unsubscribe, final NOTIFY."""
    with server() as srv:
        users(srv, "alice", "bob")
        UA(srv, "alice").reg()
        inf = write_inf(os.path.join(srv.tmp, "watchers.csv"),
                        [("bob", auth_kw("bob", "pw-x"), "127.0.0.1", "alice")])
        rc, out = sipp([srv.host, "-sf", os.path.join(SCENARIOS, "watcher.xml"), "-inf", inf,
                        "-m", 1, "-i", "127.0.0.1", "-p", free_port(), "-t", "u1",
                        "-timeout", "20s", "-timeout_error"], cwd=srv.tmp)
        check(rc == 0, "SIPp watcher failed (%d):\n%s\n%s" % (rc, out[-2000:], srv.log_tail()))
        time.sleep(0.3)
        check("bob@127.0.0.1" not in cli("presence", "list", db=srv.db).stdout,
              "the subscription outlived its unsubscribe")


def test_baresip_watches_and_publishes():
    """baresip (contact + presence modules) as a real softphone: it subscribes to alice's
    presence and reports her status changes; it publishes its own, which a watcher sees."""
    from test_baresip import Baresip
    with server() as srv:
        users(srv, "alice", "bob", "carol")
        alice, carol = UA(srv, "alice"), UA(srv, "carol")
        bob = Baresip("bob", srv, "bob", "pw-x", srv.tmp, modules=("contact.so", "presence.so"),
                      account_params=";pubint=600", contacts=['"Alice" <sip:alice@%s>;presence=p2p' % srv.host])
        try:
            def wait_output(pattern, what):
                deadline = time.time() + 15
                while time.time() < deadline:
                    if re.search(pattern, bob.output()):
                        return
                    time.sleep(0.2)
                raise AssertionError("baresip: no %s:\n%s\n%s" % (what, bob.output(),
                                                                   srv.log_tail()))
            # baresip subscribes on its own time: alice registers only once its
            # subscription is in place, so it sees her go from offline to online
            deadline = time.time() + 15
            while "bob@127.0.0.1" not in cli("presence", "list", "alice@127.0.0.1",
                                             db=srv.db).stdout:
                check(time.time() < deadline, "baresip never subscribed:\n" + srv.log_tail())
                time.sleep(0.2)
            alice.reg()  # registered and publishing nothing: open
            wait_output(r"<sip:alice@[^>]*> changed status from .*Offline.* to .*Online",
                        "online status for alice")
            # carol watches bob: open from his registration, then closed from the PIDF
            # that baresip PUBLISHes (RFC 3903) when set offline
            r = subscribe(carol, "sip:bob@127.0.0.1")
            check(r.status == 200, r)
            _, basics, _ = parse_pidf(notify_of(carol).body)
            check(basics == ["open"], "bob registered: %r" % basics)
            bob.command("presence_offline")
            n = notify_of(carol, timeout=10)
            _, basics, _ = parse_pidf(n.body)
            check(basics == ["closed"], "baresip's publication: %r\n%s" % (n.body, bob.output()))
            out = cli("presence", "list", "bob@127.0.0.1", db=srv.db).stdout
            check(re.search(r"(?m)^[0-9a-f]{16}\s+bob@127.0.0.1", out),
                  "baresip's publication is not listed:\n" + out)
        finally:
            bob.stop()


def test_baresip_takes_stored_messages():
    """baresip registers as bob and accepts (2xx) each message kept while it was away: the
    store empties only on 2xx, in order of arrival (the server log shows the deliveries)."""
    from test_baresip import Baresip
    with server() as srv:
        users(srv, "alice", "bob")
        alice = UA(srv, "alice")
        for i in range(2):
            r = alice.send("MESSAGE", "sip:bob@127.0.0.1", ["Content-Type: text/plain"],
                           "kept %d" % i)
            check(r.status == 202, "offline MESSAGE: %r" % r)
        time.sleep(0.3)
        check(cli("msg", "list", db=srv.db).stdout.count("bob@127.0.0.1") == 2, "not stored")
        bob = Baresip("bob", srv, "bob", "pw-x", srv.tmp)
        try:
            deadline = time.time() + 15
            while time.time() < deadline:
                if "no stored messages" in cli("msg", "list", db=srv.db).stdout:
                    break
                time.sleep(0.3)
            check("no stored messages" in cli("msg", "list", db=srv.db).stdout,
                  "baresip did not accept its messages:\n" + srv.log_tail())
            sent = re.findall(r"send to \S+ \d+ bytes: MESSAGE sip:bob\S+ SIP/2.0 \[im-[0-9a-f]+-(\d+)",
                              srv.log_text())
            check(len(sent) == 2 and int(sent[0]) < int(sent[1]), "deliveries: %r" % sent)
        finally:
            bob.stop()


if __name__ == "__main__":
    main(globals())
