#!/usr/bin/env python3
"""Routing beyond our own users: requests for other domains located by RFC
3263 (NAPTR, SRV, A) through a real DNS server (dnsmasq on a loopback port,
given to the server with --dns-servers), the open-relay refusal, Max-Forwards
and loop detection across two servers, and the stateless mode (RFC 3261
16.11). Callees are SIPp UASes.
"""
import os
import signal
import subprocess
import tempfile
import time

from sbtest import (SCENARIOS, Server, SipClient, auth_kw, check, free_port, main, need, sipp,
                    write_inf)
from test_calls import register_uas, setup, start_uas


class Dnsmasq:
    """A real DNS server with the records a test needs."""

    def __init__(self, records):
        need("dnsmasq")
        self.port = free_port(tcp_too=False)
        cmd = ["dnsmasq", "--no-daemon", "--keep-in-foreground", "--no-resolv", "--no-hosts",
               "--bind-interfaces", "--listen-address=127.0.0.1", "--port=%d" % self.port,
               "--pid-file=", "--log-facility=-"] + records
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.4)
        check(self.proc.poll() is None, "dnsmasq did not start")

    @property
    def server(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=10)


def call(server, tmp, callee_uri_user, domain, transport="u1", expect_rc=0):
    """alice (local, authenticated with 407) calls callee@domain."""
    inf = write_inf(os.path.join(tmp, "c.csv"),
                    [("alice", auth_kw("alice", "alicepw"), "127.0.0.1", callee_uri_user)])
    xml = os.path.join(tmp, "uac_foreign.xml")
    with open(os.path.join(SCENARIOS, "uac_call_auth.xml")) as f:
        text = f.read()
    # the Request-URI and To name the foreign domain; From stays ours
    text = text.replace("sip:[field3]@[field2]", "sip:[field3]@" + domain)
    with open(xml, "w") as f:
        f.write(text)
    return sipp([server.host, "-sf", xml, "-inf", inf, "-m", 1, "-t", transport, "-i", "127.0.0.1",
                 "-p", free_port(), "-timeout", "30s", "-timeout_error"], cwd=tmp)


def test_call_to_other_domain_via_naptr_srv_udp():
    tmp = tempfile.mkdtemp()
    uas_port = free_port()
    dns = Dnsmasq(["--naptr-record=example.org,10,50,s,SIP+D2U,,_sip._udp.example.org",
                   "--srv-host=_sip._udp.example.org,sip1.example.org,%d,0,5" % uas_port,
                   "--host-record=sip1.example.org,127.0.0.1"])
    try:
        with Server(extra=["--dns-servers", dns.server]) as s:
            setup(s)
            uas = start_uas(tmp, "uas_answer.xml", uas_port)
            rc, out = call(s, tmp, "bob", "example.org")
            urc, uout = uas.wait(30)
            check(rc == 0, "call to example.org failed:\n" + out[-2000:] + s.log_tail())
            check(urc == 0, "the UAS found by SRV did not get the call:\n" + uout[-2000:])
    finally:
        dns.stop()


def test_call_to_other_domain_via_naptr_srv_tcp():
    tmp = tempfile.mkdtemp()
    uas_port = free_port()
    dns = Dnsmasq(["--naptr-record=example.net,10,50,s,SIP+D2T,,_sip._tcp.example.net",
                   "--srv-host=_sip._tcp.example.net,edge.example.net,%d,0,5" % uas_port,
                   "--host-record=edge.example.net,127.0.0.1"])
    try:
        with Server(extra=["--dns-servers", dns.server]) as s:
            setup(s)
            uas = start_uas(tmp, "uas_answer.xml", uas_port, transport="t1")
            rc, out = call(s, tmp, "bob", "example.net")
            urc, uout = uas.wait(30)
            check(rc == 0, "call to example.net over TCP failed:\n" + out[-2000:] + s.log_tail())
            check(urc == 0, "the TCP UAS found by NAPTR/SRV did not get the call:\n" + uout[-2000:])
            check("send to tcp:127.0.0.1:%d" % uas_port in s.log_text(), "not sent over TCP")
    finally:
        dns.stop()


def test_srv_without_naptr_and_a_record_fallback():
    """No NAPTR: SRV for _sip._udp; no SRV either: the A record on 5060 (RFC 3263 4.1/4.2)."""
    tmp = tempfile.mkdtemp()
    uas_port = free_port()
    dns = Dnsmasq(["--srv-host=_sip._udp.srv-only.test,host.srv-only.test,%d,0,5" % uas_port,
                   "--host-record=host.srv-only.test,127.0.0.1",
                   "--host-record=a-only.test,127.0.0.1"])
    try:
        with Server(extra=["--dns-servers", dns.server]) as s:
            setup(s)
            uas = start_uas(tmp, "uas_answer.xml", uas_port)
            rc, out = call(s, tmp, "bob", "srv-only.test")
            uas.wait(30)
            check(rc == 0, "SRV-only domain failed:\n" + out[-2000:] + s.log_tail())
            # a-only.test has only an A record: the request goes to 127.0.0.1:5060
            c = SipClient(s)
            sink = __import__("socket").socket(__import__("socket").AF_INET,
                                               __import__("socket").SOCK_DGRAM)
            try:
                sink.bind(("127.0.0.1", 5060))
                have_sink = True
            except OSError:
                have_sink = False  # something else owns 5060 here: check the log only
            r = c.request("OPTIONS", "sip:carol@a-only.test", from_="<sip:bob@127.0.0.1>")
            check(r.status == 407, "a local user's OPTIONS out was not challenged: %r" % r)
            auth = c.auth_header(r, "bob", "bobpw", "OPTIONS", "sip:carol@a-only.test", proxy=True)
            c.cseq += 1
            c.send_raw(c.build("OPTIONS", "sip:carol@a-only.test", [auth], from_="<sip:bob@127.0.0.1>"))
            time.sleep(0.5)
            check("send to udp:127.0.0.1:5060" in s.log_text(), "A-record fallback not used")
            if have_sink:
                sink.settimeout(2)
                data = sink.recv(65535)
                check(data.startswith(b"OPTIONS sip:carol@a-only.test"), "wrong request at the A target")
            sink.close()
    finally:
        dns.stop()


def test_unknown_domain_and_open_relay():
    dns = Dnsmasq([])
    try:
        with Server(extra=["--dns-servers", dns.server]) as s:
            setup(s)
            c = SipClient(s)
            # a local user (who must authenticate first) to a domain that does not exist
            r = c.request("MESSAGE", "sip:x@nowhere.invalid", from_="<sip:alice@127.0.0.1>")
            check(r.status == 407, "a local user's MESSAGE was not challenged: %r" % r)
            auth = c.auth_header(r, "alice", "alicepw", "MESSAGE", "sip:x@nowhere.invalid", proxy=True)
            c.cseq += 1
            r = c.request("MESSAGE", "sip:x@nowhere.invalid", [auth], from_="<sip:alice@127.0.0.1>",
                          timeout=5)
            check(r is not None and r.status in (404, 503), "unresolvable domain: %r" % r)
            # neither from nor to one of our users: we relay nothing
            r = c.request("MESSAGE", "sip:x@example.org", from_="<sip:eve@example.com>")
            check(r.status == 403, "open relay: %r" % r)
    finally:
        dns.stop()


def test_loop_detected_and_max_forwards():
    """A domain whose SRV record points back at the server makes a real loop: the
    second pass finds our Via with the same loop hash and answers 482 (RFC 3261
    16.3 item 4). Max-Forwards 0 for a user is answered 483."""
    port = free_port()
    dns = Dnsmasq(["--srv-host=_sip._udp.loop.test,self.loop.test,%d,0,5" % port,
                   "--host-record=self.loop.test,127.0.0.1"])
    s = Server(port=port, extra=["--dns-servers", dns.server])
    try:
        s.start()
        setup(s)
        c = SipClient(s)
        r = c.request("MESSAGE", "sip:x@loop.test", from_="<sip:alice@127.0.0.1>")
        check(r.status == 407, "not challenged: %r" % r)
        auth = c.auth_header(r, "alice", "alicepw", "MESSAGE", "sip:x@loop.test", proxy=True)
        c.cseq += 1
        r = c.request("MESSAGE", "sip:x@loop.test", [auth], from_="<sip:alice@127.0.0.1>", timeout=5)
        check(r is not None and r.status == 482, "a loop through DNS was not detected: %r" % r)
        raw = c.build("OPTIONS", "sip:bob@127.0.0.1", from_="<sip:x@example.org>")
        c.send_raw(raw.replace(b"Max-Forwards: 70", b"Max-Forwards: 0"))
        from sbtest import Response
        resp = Response(c.recv_raw(3))
        check(resp.status == 483, "Max-Forwards 0 to a user: %r" % resp)
    finally:
        s.stop()
        dns.stop()


def test_stateless_mode_call():
    """--stateless: INVITE, ACK, BYE and their responses are relayed with no transaction state."""
    tmp = tempfile.mkdtemp()
    with Server(extra=["--stateless"]) as s:
        setup(s)
        port = free_port()
        uas = start_uas(tmp, "uas_answer.xml", port, calls=3)
        register_uas(s, "bob", "bobpw", port)
        inf = write_inf(os.path.join(tmp, "c.csv"), [("alice", auth_kw("alice", "alicepw"),
                                                       "127.0.0.1", "bob")])
        rc, out = sipp([s.host, "-sf", os.path.join(SCENARIOS, "uac_call_auth.xml"), "-inf", inf,
                        "-m", 3, "-r", 3, "-i", "127.0.0.1", "-p", free_port(), "-d", 0,
                        "-timeout", "30s", "-timeout_error"], cwd=tmp)
        urc, uout = uas.wait(30)
        check(rc == 0, "stateless call failed:\n" + out[-2000:] + s.log_tail())
        check(urc == 0, "callee failed:\n" + uout[-2000:])
        log = s.log_text()
        check("100 Trying" not in log, "a stateless proxy sent 100 Trying")


if __name__ == "__main__":
    main(globals())
