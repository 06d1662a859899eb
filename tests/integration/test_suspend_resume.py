#!/usr/bin/env python3
"""Issue 13 item 2 on the real binary: a request that waits for the database
keeps its place in the pipeline and resumes at the handler that waited.

The server runs with auth.preload off, and the CLI changes the database
before each case so that the subscriber cache is dropped: an INVITE from
alice (not cached) to bob (not cached) waits twice, at the authentication
handler (alice's HA1, before verification) and at the routing handler
(bob's call settings). Each wait resumes at its own handler, so the INVITE
is verified once and nothing before the handler runs again (the server's
debug lines name where it waits and resumes; before, the request was
dropped and a copy ran the whole pipeline again, three passes in all).
A retransmission of the INVITE sent while it waits is absorbed (bob's phone
rings once, alice gets one final answer and no stale challenge), and an
uncached user's REGISTER resumes at the registrar.
"""
import os
import re
import tempfile
import time

from sbphone import Caller, Phone, reply_to
from sbtest import Server, SipClient, check, cli, main


def server(tmp):
    path = os.path.join(tmp, "noload.yaml")
    with open(path, "w") as f:
        f.write("auth:\n  preload: false\n")
    s = Server(config=path, tmp=tmp)
    s.add_user("alice", "alicepw")
    s.add_user("bob", "bobpw")
    s.add_user("carol", "carolpw")
    return s


def drop_cache(s, ring):
    """Changes carol from the CLI and waits until the server dropped its subscriber cache."""
    before = s.log_text().count("database changed by another process")
    cli("user", "set", "carol@127.0.0.1", "ring=" + ring, db=s.db)
    deadline = time.time() + 5
    while time.time() < deadline:
        if s.log_text().count("database changed by another process") > before:
            return len(s.log_text())
        time.sleep(0.05)
    raise AssertionError("the server did not notice the database change")


def waits_and_resumes(text, method):
    """[(event, handler)] of method's waits and resumptions in this log text."""
    return re.findall(r"%s (waits|resumes) at handler ([a-z-]+)" % method, text)


def test_uncached_call_resumes_at_each_handler():
    tmp = tempfile.mkdtemp()
    with server(tmp) as s:
        bob = Phone(s, "bob", "bobpw")
        alice = Caller(s)
        uri = "sip:bob@127.0.0.1"
        auth = alice.credentials(alice.challenge(uri), uri)
        mark = drop_cache(s, "sequential")
        inv = alice.build_invite(uri, auth=auth, cseq=2)
        alice.send(inv)
        alice.send(inv)  # a retransmission, most likely while the original waits
        got = bob.recv_request("INVITE", 3)
        check(got is not None, "the INVITE did not reach bob:\n" + s.log_tail(30))
        bob.send(reply_to(got, 486, "Busy Here"))
        r = alice.final()
        check(r is not None and r.status == 486, "caller expected 486, got %r" % r)
        alice.ack(inv, r)
        check(bob.recv_request("INVITE", 1.0) is None, "bob's phone rang twice")
        extra = alice.final(timeout=1.0)
        check(extra is None or extra.status == 486,
              "a second, different final answer: %r" % extra)

        seen = waits_and_resumes(s.log_text()[mark:], "INVITE")
        check(seen == [("waits", "auth"), ("resumes", "auth"),
                       ("waits", "route"), ("resumes", "route")],
              "INVITE waits and resumptions: %s\n%s" % (seen, s.log_tail(40)))
        for x in (alice, bob):
            x.close()


def test_uncached_register_resumes_at_registrar():
    tmp = tempfile.mkdtemp()
    with server(tmp) as s:
        mark = drop_cache(s, "sequential")
        c = SipClient(s)
        r = c.register("alice", "alicepw")
        check(r is not None and r.status == 200, "REGISTER: %r" % r)
        seen = waits_and_resumes(s.log_text()[mark:], "REGISTER")
        check(seen == [("waits", "registrar"), ("resumes", "registrar")],
              "REGISTER waits and resumptions: %s\n%s" % (seen, s.log_tail(40)))
        c.close()


if __name__ == "__main__":
    main(globals())
