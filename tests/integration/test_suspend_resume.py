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
import socket
import sqlite3
import tempfile
import time

from sbphone import Caller, Phone, hget, reply_to
from sbtest import Response, Server, SipClient, check, cli, main


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


def next_response(caller, timeout):
    """The next response of any status, or None."""
    try:
        return Response(caller.c.recv_raw(timeout))
    except socket.timeout:
        return None


def cancel_of(invite):
    """The CANCEL of invite (RFC 3261 9.1: its Via, Request-URI, From, To, Call-ID, CSeq number)."""
    ruri = invite.split(b" ", 2)[1].decode()
    lines = ["CANCEL %s SIP/2.0" % ruri, "Via: " + hget(invite, "via")[0], "Max-Forwards: 70",
             "From: " + hget(invite, "from")[0], "To: " + hget(invite, "to")[0],
             "Call-ID: " + hget(invite, "call-id")[0],
             "CSeq: %s CANCEL" % hget(invite, "cseq")[0].split()[0], "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_waiting_invite_trying_and_cancel():
    """An INVITE held up by a slow database gets 100 Trying at once and again for each
    retransmission (RFC 3261 16.2, 17.2.1); cancelled while it waits, it gets a 487 that a
    server transaction retransmits until the ACK, and a late retransmission of the INVITE
    gets the 487 again instead of ringing the callee (the 487 used to be sent once,
    statelessly, and the late INVITE started the call)."""
    tmp = tempfile.mkdtemp()
    with server(tmp) as s:
        bob = Phone(s, "bob", "bobpw")
        alice = Caller(s)
        uri = "sip:bob@127.0.0.1"
        auth = alice.credentials(alice.challenge(uri), uri)
        mark = drop_cache(s, "sequential")
        # another process holds the database's write lock, and carol's registration
        # gives the server's database thread a write to make: it waits for the lock
        # (up to its 5 s busy timeout), and the lookup of alice's credentials, queued
        # behind it, waits too
        holder = sqlite3.connect(s.db, isolation_level=None, timeout=5)
        holder.execute("BEGIN IMMEDIATE")
        try:
            carol = Phone(s, "carol", "carolpw")
            time.sleep(0.5)  # the write-behind of carol's binding runs every 100 ms
            inv = alice.build_invite(uri, auth=auth, cseq=2)
            alice.send(inv)
            r = next_response(alice, 1.0)
            check(r is not None and r.status == 100,
                  "a waiting INVITE got no 100 Trying: %r\n%s" % (r, s.log_tail(20)))
            check(re.search(r"INVITE waits at handler auth", s.log_text()[mark:]),
                  "the INVITE did not wait:\n" + s.log_tail(20))
            alice.send(inv)  # a retransmission while it waits
            r = next_response(alice, 1.0)
            check(r is not None and r.status == 100,
                  "a retransmission of a waiting INVITE got no 100: %r" % r)
            alice.send(cancel_of(inv))
            r = next_response(alice, 1.0)
            check(r is not None and r.status == 200 and "CANCEL" in r.get("CSeq"),
                  "the CANCEL of a waiting INVITE: %r" % r)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        r = alice.final(timeout=6.0)
        check(r is not None and r.status == 487, "the cancelled INVITE's answer: %r" % r)
        # not acknowledged: the transaction sends it again (Timer G, from T1 = 500 ms)
        again = alice.final(timeout=2.0)
        check(again is not None and again.status == 487,
              "the 487 was not retransmitted before the ACK: %r" % again)
        alice.send(inv)  # a late retransmission of the INVITE
        late = alice.final(timeout=1.0)
        check(late is not None and late.status == 487,
              "a late retransmission of the cancelled INVITE: %r" % late)
        alice.ack(inv, r)
        check(bob.recv_request("INVITE", 1.0) is None, "bob's phone rang for a cancelled call")
        for x in (alice, bob, carol):
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
