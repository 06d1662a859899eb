#!/usr/bin/env python3
"""Responses reach the worker that owns their transaction (issue 13, item 4).

With two workers the kernel's SO_REUSEPORT hash (by source address and port)
hands a callee's response to either worker, so about half of them would hop
to the owner through its inbox. With udp.worker_ports each worker names a port
of its own in the Via of what it forwards, and the responses come back there.
Covered: calls to eight callees on eight ports (their responses would land on
both workers) all complete and the server counts no response that reached the
wrong worker; the worker ports take responses only (a request sent there gets
no answer, the main port answers it), and a response with a forged branch sent
there is dropped as forged; the configuration key is checked.
"""
import os
import re
import socket
import tempfile
import time

from sbtest import (BIN, SCENARIOS, Server, SippBackground, SipClient, auth_kw, check, cli,
                    free_port, main, need, sipp, write_inf)

CALLEES = 8


def config(tmp, on=True, base=0):
    path = os.path.join(tmp, "wp.yaml")
    with open(path, "w") as f:
        # SIPp computes one digest uri for every call (the callees vary): no uri check
        f.write("auth:\n  check_uri: false\n")
        f.write("udp:\n  worker_ports: %s\n" % ("true" if on else "false"))
        if base:
            f.write("  worker_port_base: %d\n" % base)
    return path


def register(server, user, password, port):
    c = SipClient(server)
    r = c.register(user, password, contact="<sip:%s@127.0.0.1:%d>" % (user, port), expires=600)
    c.close()
    check(r is not None and r.status == 200, "registration of %s failed: %r" % (user, r))


def stop_and_count(server):
    server.stop()
    text = server.log_text()
    m = re.findall(r"responses received by a worker other than their transaction's: (\d+)", text)
    check(m, "no count of responses that hopped in the log:\n" + server.log_tail())
    return int(m[-1]), text


def worker_ports(server):
    text = server.log_text()
    return [int(p) for p in re.findall(r"worker \d+: responses to what it forwards from \S+ "
                                       r"come to port (\d+)", text)]


def run_calls(server, tmp, calls):
    server.add_user("alice", "alicepw")
    uas, ports = [], []
    for i in range(CALLEES):
        server.add_user("b%d" % i, "pw%d" % i)
        port = free_port()
        ports.append(port)
        uas.append(SippBackground(["-sf", os.path.join(SCENARIOS, "uas_answer.xml"), "-i",
                                   "127.0.0.1", "-p", port, "-t", "u1", "-m",
                                   calls // CALLEES], cwd=tmp))
        register(server, "b%d" % i, "pw%d" % i, port)
    rows = [("alice", auth_kw("alice", "alicepw"), server.host, "b%d" % i) for i in range(CALLEES)]
    inf = write_inf(os.path.join(tmp, "callers.csv"), rows)
    rc, out = sipp([server.host, "-sf", os.path.join(SCENARIOS, "uac_call_auth.xml"), "-inf", inf,
                    "-m", calls, "-r", 20, "-i", "127.0.0.1", "-p", free_port(), "-d", 0,
                    "-timeout", "60s", "-timeout_error"], cwd=tmp)
    check(rc == 0, "caller failed:\n" + out + server.log_tail())
    for u in uas:
        urc, uout = u.wait(30)
        check(urc == 0, "a callee failed:\n" + uout)


def test_two_workers_responses_do_not_hop():
    need("sipp")
    tmp = tempfile.mkdtemp()
    s = Server(workers=2, config=config(tmp), tmp=tmp).start()
    try:
        ports = worker_ports(s)
        check(len(ports) == 2 and s.port not in ports and ports[0] != ports[1],
              "each worker has a port of its own: %r" % ports)
        run_calls(s, tmp, 32)
    finally:
        hops, text = stop_and_count(s)
    check(hops == 0, "%d responses reached the wrong worker" % hops)


def test_worker_port_base_and_responses_only():
    tmp = tempfile.mkdtemp()
    base = free_port()
    s = Server(workers=2, config=config(tmp, base=base), tmp=tmp).start()
    try:
        ports = worker_ports(s)
        check(sorted(ports) == [base, base + 1], "ports from the base: %r" % ports)
        opts = ("OPTIONS sip:%s SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bKwp%d\r\n"
                "Max-Forwards: 70\r\nFrom: <sip:x@127.0.0.1>;tag=1\r\nTo: <sip:%s>\r\n"
                "Call-ID: wp%d@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        me = sock.getsockname()[1]
        sock.settimeout(0.5)
        # a request on a worker's own port: no answer (responses only)
        for i, p in enumerate(ports):
            sock.sendto((opts % (s.host, me, i, s.host, i)).encode(), ("127.0.0.1", p))
            try:
                data = sock.recv(4096)
                check(False, "a request on worker port %d was answered: %r" % (p, data[:60]))
            except socket.timeout:
                pass
        # the same on the main port: answered
        sock.sendto((opts % (s.host, me, 9, s.host, 9)).encode(), s.addr)
        check(sock.recv(4096).startswith(b"SIP/2.0 200"), "the main port answers")
        # a response on a worker port with a branch of our form and a wrong MAC: forged
        forged = ("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:%d;branch=z9hG4bK"
                  "0123456789abcdef.0.1.1.0123456789abcdef\r\nFrom: <sip:x@127.0.0.1>;tag=1\r\n"
                  "To: <sip:y@127.0.0.1>;tag=2\r\nCall-ID: f@x\r\nCSeq: 1 INVITE\r\n"
                  "Content-Length: 0\r\n\r\n") % ports[0]
        sock.sendto(forged.encode(), ("127.0.0.1", ports[0]))
        sock.close()
        deadline = time.time() + 5
        while "forged branch" not in s.log_text() and time.time() < deadline:
            time.sleep(0.05)
        check("forged branch" in s.log_text(), "the forged response is dropped as forged")
    finally:
        s.stop()
    text = s.log_text()
    m = re.findall(r"malformed \d+, dropped (\d+);", text)
    check(m and int(m[-1]) >= 2, "the requests on worker ports are counted as dropped")


def test_config_key_checked():
    tmp = tempfile.mkdtemp()
    path = os.path.join(tmp, "bad.yaml")
    with open(path, "w") as f:
        f.write("udp:\n  worker_ports: maybe\n")
    import subprocess
    r = subprocess.run([BIN, "check-config", "-c", path], capture_output=True, text=True)
    check(r.returncode == 3, "a bad udp.worker_ports is a configuration error: %r" % (r,))
    with open(path, "w") as f:
        f.write("udp:\n  worker_ports: true\n  worker_port_base: 6000\n")
    r = subprocess.run([BIN, "check-config", "-c", path], capture_output=True, text=True)
    check(r.returncode == 0, "a good udp section passes: %r" % (r,))


if __name__ == "__main__":
    main(globals())
