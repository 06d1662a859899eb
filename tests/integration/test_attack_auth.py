#!/usr/bin/env python3
"""Issue 11 hole 4, attacked on the real binary: digest credentials are
bound to their Request-URI, and a captured authenticated request cannot be
replayed, not even while its user is not in the subscriber cache (the
request then waits for the database and is delivered again; that second
delivery used to tolerate a used nonce-count).

alice calls from a raw UDP socket (sbphone.Caller), bob and carol are
raw UDP phones (sbphone.Phone), so the test sees exactly which INVITE
reaches which phone. The server runs with auth.preload off, so that a user
is looked up in the database at first use and after the CLI changed the
database (the cache is dropped then).
"""
import os
import tempfile
import time

from sbphone import Caller, Phone, reply_to
from sbtest import Server, check, cli, main


def config(tmp):
    path = os.path.join(tmp, "noload.yaml")
    with open(path, "w") as f:
        f.write("auth:\n  preload: false\n")
    return path


def server(tmp):
    s = Server(config=config(tmp), tmp=tmp)
    s.add_user("alice", "alicepw")
    s.add_user("bob", "bobpw")
    s.add_user("carol", "carolpw")
    return s


def busy(phone, caller, inv):
    """phone got inv's INVITE: it answers 486, the caller sees it and ACKs."""
    got = phone.recv_request("INVITE", 3)
    check(got is not None, "the INVITE did not reach the phone")
    phone.send(reply_to(got, 486, "Busy Here"))
    r = caller.final()
    check(r is not None and r.status == 486, "caller expected 486, got %r" % r)
    caller.ack(inv, r)
    return got


def cache_dropped(s, before):
    """Waits until the server noticed the CLI's change (and dropped its subscriber cache)."""
    deadline = time.time() + 5
    while time.time() < deadline:
        if s.log_text().count("database changed by another process") > before:
            return
        time.sleep(0.05)
    raise AssertionError("the server did not notice the database change")


def test_credentials_for_another_uri_get_400():
    """Credentials alice computed for sip:bob do not authorise an INVITE to carol
    (RFC 3261 22.4, RFC 7616 3.4.6): 400, and carol's phone never rings."""
    tmp = tempfile.mkdtemp()
    with server(tmp) as s:
        bob, carol = Phone(s, "bob", "bobpw"), Phone(s, "carol", "carolpw")
        alice = Caller(s)
        bob_uri, carol_uri = "sip:bob@127.0.0.1", "sip:carol@127.0.0.1"
        auth = alice.credentials(alice.challenge(bob_uri), bob_uri)
        inv = alice.build_invite(carol_uri, auth=auth, cseq=2)
        alice.send(inv)
        r = alice.final()
        check(r is not None and r.status == 400, "expected 400, got %r" % r)
        check(r.reason == "Authorization URI does not match Request-URI", r.reason)
        check(carol.recv_request("INVITE", 1.0) is None, "carol's phone rang")
        # the same credentials on the INVITE they were made for are fine
        inv = alice.build_invite(bob_uri, auth=auth, cseq=3)
        alice.send(inv)
        busy(bob, alice, inv)
        # a sip: URI equal by RFC 3261 19.1.4 (case of host and scheme) is the same URI
        auth = alice.credentials(alice.challenge(bob_uri), "SIP:bob@127.0.0.1")
        inv = alice.build_invite(bob_uri, auth=auth, cseq=4)
        alice.send(inv)
        busy(bob, alice, inv)
        for x in (alice, bob, carol):
            x.close()


def test_replay_while_caller_not_cached_is_challenged():
    """A captured authenticated INVITE, replayed with a new branch while alice is
    not in the subscriber cache, is challenged (stale) and never reaches bob."""
    tmp = tempfile.mkdtemp()
    with server(tmp) as s:
        bob = Phone(s, "bob", "bobpw")
        alice = Caller(s)
        uri = "sip:bob@127.0.0.1"
        auth = alice.credentials(alice.challenge(uri), uri)
        # alice is not cached (no preload): this INVITE waits for her lookup, comes back,
        # is verified and forwarded
        inv = alice.build_invite(uri, auth=auth, cseq=2)
        alice.send(inv)
        busy(bob, alice, inv)

        # replayed at once (alice now cached): challenged, as before
        replay = alice.build_invite(uri, auth=auth, cseq=2)
        alice.send(replay)
        r = alice.final()
        check(r is not None and r.status == 407, "replay while cached: expected 407, got %r" % r)
        check("stale=true" in r.get("Proxy-Authenticate", "").lower(), "not stale: %r" % r.raw)
        alice.ack(replay, r)
        check(bob.recv_request("INVITE", 0.5) is None, "the replay reached bob")

        # the CLI changes a user: the server drops its subscriber cache; the replay now
        # waits for alice's lookup and is delivered again: still a replay
        before = s.log_text().count("database changed by another process")
        cli("user", "set", "carol@127.0.0.1", "ring=sequential", db=s.db)
        cache_dropped(s, before)
        replay = alice.build_invite(uri, auth=auth, cseq=2)
        alice.send(replay)
        r = alice.final()
        check(r is not None and r.status == 407,
              "replay while not cached: expected 407, got %r\n%s" % (r, s.log_tail(20)))
        alice.ack(replay, r)
        check(bob.recv_request("INVITE", 1.0) is None, "the replay reached bob")

        # a genuine call with neither alice nor bob cached waits twice (alice's lookup
        # before verification, bob's settings after): the second delivery carries the
        # internal verified mark and is not taken for a replay
        before = s.log_text().count("database changed by another process")
        cli("user", "set", "carol@127.0.0.1", "ring=parallel", db=s.db)
        cache_dropped(s, before)
        auth = alice.credentials(alice.challenge(uri), uri)
        inv = alice.build_invite(uri, auth=auth, cseq=3)
        alice.send(inv)
        busy(bob, alice, inv)
        for x in (alice, bob):
            x.close()


if __name__ == "__main__":
    main(globals())
