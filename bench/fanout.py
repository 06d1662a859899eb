#!/usr/bin/env python3
"""fanout.py - deliveries per second of the IM broker.

Starts the release server with one worker, makes N users (CSV import), gives
each a UDP socket that registers and joins one topic, then has one member
post M messages to the topic and counts the MESSAGEs the other members
receive (each answered 200 at once). Deliveries/s = (N-1)*M / time from the
first post to the last delivery; the client is Python and answers every
MESSAGE itself, so that rate is a floor set by the client. The server's own
CPU time per delivery (from /proc) is the figure to compare. This is a
benchmark, not a test.

    bench/fanout.py [N] [M]      (defaults 1000 members, 20 messages)
"""
import os
import select
import socket
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
os.environ.setdefault("SB_BIN", os.path.join(HERE, "..", "build", "switchboard"))

from sbtest import Response, Server, cli  # noqa: E402
from test_messaging import UA, TOPICS  # noqa: E402


def server_cpu(pid):
    """User + system seconds the server has used (all threads)."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    msgs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    tmp = tempfile.mkdtemp(prefix="sbfan-")
    csv = os.path.join(tmp, "users.csv")
    with open(csv, "w") as f:
        for i in range(n):
            f.write("u%d,127.0.0.1,pw-x\n" % i)
    cfg = os.path.join(tmp, "sb.yaml")
    with open(cfg, "w") as f:  # default timers: T1 500 ms
        f.write("broker:\n  domain: %s\n  max_members: 100000\n"
                "messaging:\n  max_stored: 100000\n"
                # every member on 127.0.0.1: no per-source flood budget is meant to bind
                "flood:\n  unauth_limit: 10000000\n  auth_limit: 10000000\n"
                "  dialog_limit: 10000000\n" % TOPICS)
    srv = Server(tmp=tmp, config=cfg, extra=["--log-level", "warn"])
    cli("user", "import", csv, db=srv.db)
    srv.start()
    topic = "sip:bench@" + TOPICS
    uas = []
    t0 = time.time()
    for i in range(n):
        ua = UA(srv, "u%d" % i)
        ua.reg(expires=3600)
        r = ua.send("SUBSCRIBE", topic, ["Event: topic", "Expires: 3600",
                                         "Contact: <sip:u%d@127.0.0.1:%d>" % (i, ua.port)])
        assert r.status == 200, r
        uas.append(ua)
    print("%d members joined in %.1f s" % (n, time.time() - t0))
    time.sleep(1.0)
    for ua in uas:  # the join NOTIFYs
        ua.sock.setblocking(False)
        try:
            while True:
                raw = ua.sock.recv(65535)
                m = Response(raw)
                if not m.start.startswith("SIP/2.0"):
                    ua.respond(m, 200)
        except BlockingIOError:
            pass
    by_fd = {ua.sock.fileno(): ua for ua in uas[1:]}
    poller = select.epoll()
    for fd in by_fd:
        poller.register(fd, select.EPOLLIN)
    sender = uas[0]
    sender.sock.setblocking(True)
    want = (n - 1) * msgs
    got = 0
    cpu0 = server_cpu(srv.proc.pid)
    start = time.time()
    for k in range(msgs):
        r = sender.send("MESSAGE", topic, ["Content-Type: text/plain"], "bench %d" % k)
        assert r.status == 202, r
    last = start
    while got < want and time.time() - last < 10:
        for fd, _ in poller.poll(1.0):
            ua = by_fd[fd]
            try:
                while True:
                    raw = ua.sock.recv(65535)
                    m = Response(raw)
                    if m.start.startswith("MESSAGE "):
                        got += 1
                        last = time.time()
                    if not m.start.startswith("SIP/2.0"):
                        ua.respond(m, 200)
            except BlockingIOError:
                pass
    elapsed = last - start
    time.sleep(0.5)  # the last 200s reach the server
    cpu = server_cpu(srv.proc.pid) - cpu0
    print("members %d, messages %d, deliveries %d of %d in %.2f s: %.0f deliveries/s; "
          "server CPU %.2f s, %.1f us per delivery"
          % (n, msgs, got, want, elapsed, got / elapsed if elapsed else 0, cpu,
             cpu * 1e6 / got if got else 0))
    srv.stop(check_clean=False)


if __name__ == "__main__":
    main()
