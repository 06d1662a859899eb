#!/usr/bin/env python3
"""A connection that is gone is not a destination (issue 13, item 7).

A phone registers over TCP and then closes its connection. Before, the
server kept sending to the closed connection's ephemeral port (a new
connection there is refused), and the caller waited for Timer B, 32 s. Now:

- a Contact that names no transport (sip:bob@127.0.0.1:P, UDP by RFC 3263)
  is reached over UDP at its address once the connection is gone: a UDP
  socket of the test gets the INVITE at once and its answer reaches the caller;
- a Contact with ;transport=tcp gets a new connection to its own address
  (RFC 3261 18.1.1): nobody listens there, the refusal fails the branch at
  once and the caller has a final answer in a few seconds, not 32;
- with q-value ringing, a dead first step gives way to the next target at once;
- an RFC 5626 flow (+sip.instance and reg-id) is reached only over its
  connection: once it is closed, the caller gets 480 at once and nothing is
  sent to the Contact's address;
- while the connection is open, it is the way (the INVITE arrives on it, the
  first part of the first test).

The client that registers is sbtest's real TCP client (a socket that sends
REGISTER, answers the digest challenge and then closes); the callee's UDP
side is a plain socket of the test that answers by hand.
"""
import os
import re
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sbphone import Caller, reply_to  # noqa: E402
from sbtest import Server, SipClient, check, cli, free_port, main, wait_for  # noqa: E402

# well under Timer B (32 s): a failed send must fail its branch at once
QUICK_S = 5.0


def start():
    s = Server()
    s.start()
    s.add_user("alice", "alicepw")
    s.add_user("bob", "bobpw")
    return s



def register_tcp(s, contact, extra=()):
    """bob registers contact over a TCP connection of his own; returns the client (open)."""
    c = SipClient(s, transport="tcp")
    r = c.register("bob", "bobpw", contact=contact, expires=600, extra=extra)
    check(r is not None and r.status == 200, "REGISTER over TCP: %r" % r)
    return c


def close_and_wait(s, c):
    """Closes the registration's connection and waits until the server has seen it go."""
    def closed():
        return len(re.findall(r"tcp connection \d+ closed", s.log_text()))
    before = closed()
    c.close()
    wait_for(lambda: closed() > before, 5, "the server to see the connection close")


def udp_socket(port):
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    u.bind(("127.0.0.1", port))
    return u


def recv_request(sock, method, timeout):
    """The next request with this method on a UDP socket, with its source; (None, None)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        sock.settimeout(max(deadline - time.time(), 0.001))
        try:
            data, src = sock.recvfrom(65535)
        except socket.timeout:
            break
        if data.startswith(method.encode() + b" "):
            return data, src
    return None, None


def call_bob(s):
    """alice calls bob with credentials; returns (caller, the INVITE sent, when it was sent)."""
    caller = Caller(s)
    r407 = caller.challenge("sip:bob@127.0.0.1")
    auth = caller.credentials(r407, "sip:bob@127.0.0.1")
    inv = caller.build_invite("sip:bob@127.0.0.1", auth=auth, cseq=2)
    t0 = time.time()
    caller.send(inv)
    return caller, inv, t0


def test_contact_without_transport_is_reached_over_udp_once_the_connection_is_gone():
    s = start()
    port = free_port()
    phone = udp_socket(port)
    caller = None
    try:
        c = register_tcp(s, "<sip:bob@127.0.0.1:%d>" % port)
        # while the connection is open, it is the way
        caller, inv, t0 = call_bob(s)
        req = None
        deadline = time.time() + QUICK_S
        while time.time() < deadline and req is None:
            m = c.recv_raw(max(deadline - time.time(), 0.01))
            if m.startswith(b"INVITE "):
                req = m
        check(req is not None, "the INVITE did not come over the open connection")
        check(b"SIP/2.0/TCP" in req.split(b"\r\n", 2)[1],
              "our Via on the INVITE sent over TCP: %r" % req[:300])
        c.send_raw(reply_to(req, 486, "Busy Here"))
        r = caller.final(QUICK_S)
        check(r is not None and r.status == 486, "answer over TCP: %r" % r)
        caller.ack(inv, r)
        got, _ = recv_request(phone, "INVITE", 0.2)
        check(got is None, "an INVITE went over UDP while the connection was open")
        caller.close()
        # once it is closed, the Contact's address over UDP
        close_and_wait(s, c)
        caller, inv, t0 = call_bob(s)
        req, src = recv_request(phone, "INVITE", QUICK_S)
        check(req is not None,
              "the INVITE did not reach the Contact's address over UDP within %.0f s "
              "(sent to the closed connection instead?)" % QUICK_S)
        check(b"SIP/2.0/UDP" in req.split(b"\r\n", 2)[1],
              "our Via on the INVITE sent over UDP says another transport: %r" % req[:300])
        phone.sendto(reply_to(req, 486, "Busy Here"), src)
        r = caller.final(QUICK_S)
        check(r is not None and r.status == 486,
              "the callee's answer over UDP did not reach the caller: %r" % r)
        check(time.time() - t0 < QUICK_S, "the call took %.1f s" % (time.time() - t0))
        caller.ack(inv, r)
    finally:
        phone.close()
        if caller:
            caller.close()
        s.stop()


def test_tcp_contact_with_nobody_listening_fails_at_once():
    s = start()
    port = free_port()  # nobody listens on it, over TCP or UDP
    caller = None
    try:
        c = register_tcp(s, "<sip:bob@127.0.0.1:%d;transport=tcp>" % port)
        close_and_wait(s, c)
        caller, inv, t0 = call_bob(s)
        r = caller.final(QUICK_S)
        took = time.time() - t0
        check(r is not None, "no final answer within %.0f s (Timer B is 32 s)" % QUICK_S)
        check(r.status in (480, 500, 503), "a refused connection: expected 480/500/503, got %r" % r)
        check(took < QUICK_S, "the failure took %.1f s" % took)
        caller.ack(inv, r)
    finally:
        if caller:
            caller.close()
        s.stop()


def test_dead_first_target_gives_way_to_the_next_at_once():
    s = start()
    dead_port = free_port()
    caller = None
    u = None
    try:
        cli("user", "set", "bob@127.0.0.1", "ring=q-value", db=s.db)
        c = register_tcp(s, "<sip:bob@127.0.0.1:%d;transport=tcp>;q=1.0" % dead_port)
        close_and_wait(s, c)
        u = SipClient(s)  # the second phone: registers and answers on this UDP socket
        r = u.register("bob", "bobpw", contact="<sip:bob@127.0.0.1:%d>;q=0.5" % u.port,
                       expires=600)
        check(r is not None and r.status == 200, "second REGISTER: %r" % r)
        # the settings reach the running server within a quarter of a second
        time.sleep(0.5)
        caller, inv, t0 = call_bob(s)
        req, src = recv_request(u.sock, "INVITE", QUICK_S)
        check(req is not None,
              "the second target did not ring within %.0f s of the call" % QUICK_S)
        u.sock.sendto(reply_to(req, 486, "Busy Here"), src)
        r = caller.final(QUICK_S)
        check(r is not None and r.status == 486, "the caller did not get the answer: %r" % r)
        check(time.time() - t0 < QUICK_S, "the call took %.1f s" % (time.time() - t0))
        caller.ack(inv, r)
    finally:
        if u:
            u.close()
        if caller:
            caller.close()
        s.stop()


def test_outbound_flow_is_only_reached_over_its_connection():
    s = start()
    port = free_port()
    phone = udp_socket(port)
    caller = None
    try:
        c = register_tcp(s, '<sip:bob@127.0.0.1:%d>;+sip.instance="<urn:uuid:'
                         '00000000-0000-1000-8000-000a95a0e128>";reg-id=1' % port,
                         extra=["Supported: path, outbound"])
        close_and_wait(s, c)
        caller, inv, t0 = call_bob(s)
        r = caller.final(QUICK_S)
        took = time.time() - t0
        check(r is not None and r.status == 480,
              "a closed RFC 5626 flow: expected 480 at once, got %r" % r)
        check(took < QUICK_S, "took %.1f s" % took)
        caller.ack(inv, r)
        req, _ = recv_request(phone, "INVITE", 0.3)
        check(req is None, "a flow's request went to the Contact's address instead")
    finally:
        phone.close()
        if caller:
            caller.close()
        s.stop()


if __name__ == "__main__":
    main(globals())
