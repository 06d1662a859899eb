#!/usr/bin/env python3
"""Gateway failover that does not make the caller wait for Timer B (issue 12,
item 3), against the real binary with the default T1 (Timer B = 32 s).

The first gateway is a UDP socket that never answers; the second a SIPp UAS.
A SIPp caller (alice, with 407 authentication) dials a number the dialplan
routes to both, and the test checks from the gateways' own clocks that the
second gateway got the INVITE within the failover timeout + 1 s of the first,
that the silent gateway got no retransmission after the timeout and no CANCEL
(RFC 3261 9.1: none before a provisional response) but a CANCEL for a late
180; that the timeouts (per gateway and the default) and the probe interval
changed with `switchboard route` on the running server take effect; that a
ring timeout cancels a gateway that rings too long (the caller gets 480 and
no other carrier is tried); and that a probed gateway that timed out on a
call is skipped by the next call until it answers a probe again.
"""
import datetime
import os
import re
import socket
import tempfile
import threading
import time

from sbtest import SCENARIOS, Server, SippBackground, check, cli, free_port, main
from test_call_services import call, users


class SilentGateway:
    """A UDP socket that records what reaches it and answers nothing, unless
    told to answer OPTIONS (to come back up for the prober)."""

    def __init__(self, port):
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.settimeout(0.1)
        self.got = []  # (time, text, source address)
        self.answer_options = False
        self.lock = threading.Lock()
        self.running = True
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        while self.running:
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                continue
            text = data.decode("utf-8", "replace")
            with self.lock:
                self.got.append((time.time(), text, addr))
            if self.answer_options and text.startswith("OPTIONS "):
                self.sock.sendto(reply(text, "200 OK").encode(), addr)

    def messages(self, method):
        with self.lock:
            return [(t, text, a) for t, text, a in self.got if text.startswith(method + " ")]

    def send(self, text, addr):
        self.sock.sendto(text.encode(), addr)

    def close(self):
        self.running = False
        self.t.join()
        self.sock.close()


def reply(request, status, to_tag=None):
    """A response to request with its Via, From, To (+tag), Call-ID and CSeq."""
    head = request.split("\r\n\r\n", 1)[0].split("\r\n")
    keep = []
    for h in head[1:]:
        name = h.split(":", 1)[0].strip().lower()
        if name in ("via", "v", "from", "f", "call-id", "i", "cseq"):
            keep.append(h)
        elif name in ("to", "t"):
            keep.append(h + (";tag=%s" % to_tag if to_tag else ""))
    return "SIP/2.0 %s\r\n%s\r\nContent-Length: 0\r\n\r\n" % (status, "\r\n".join(keep))


def sipp_log(path):
    """(time, first line) of each message a SIPp instance received (-trace_msg)."""
    try:
        text = open(path, errors="replace").read()
    except FileNotFoundError:
        return []
    out = []
    for m in re.finditer(r"-{20,} (\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d\.\d+)\s*\n"
                         r"\w+ message received \[\d+\] bytes :\s*\n\s*\n(.*?)(?=\n-{20,} |\Z)",
                         text, re.S):
        stamp = datetime.datetime.fromisoformat(m.group(1).replace(" ", "T")).timestamp()
        out.append((stamp, m.group(2).split("\n", 1)[0].strip()))
    return out


def first(log, method):
    times = [t for t, line in log if line.startswith(method + " ")]
    return times[0] if times else None


def config(tmp, gws, dialplan="", probe_interval=0):
    """gws: [(name, port, priority, probe, extra)]; rule "0" -> +49 to group pstn."""
    path = os.path.join(tmp, "gw.yaml")
    with open(path, "w") as f:
        f.write("gateways:\n")
        for name, port, _, probe, extra in gws:
            f.write("  - {name: %s, address: 127.0.0.1, port: %d, probe: %s%s}\n"
                    % (name, port, "true" if probe else "false", extra))
        f.write("gateway_groups:\n  - name: pstn\n    gateways:\n")
        for name, _, prio, _, _ in gws:
            if prio is not None:
                f.write("      - {gateway: %s, priority: %d}\n" % (name, prio))
        f.write("dialplan:\n  probe_interval: %d\n%s  rules:\n"
                "    - prefix: \"0\"\n      transform: [{strip: 1}, {prefix: \"+49\"}]\n"
                "      route: [pstn]\n" % (probe_interval, dialplan))
    return path


def uas(tmp, scenario, port, name):
    log = os.path.join(tmp, "%s.msg.log" % name)
    proc = SippBackground(["-sf", os.path.join(SCENARIOS, scenario), "-i", "127.0.0.1",
                           "-p", port, "-m", 1, "-trace_msg", "-message_file", log], cwd=tmp)
    return proc, log


def route(cfg, server, *args, rc=0):
    """A `switchboard route` command on the running server's database."""
    p = cli("route", *args, "-c", cfg, db=server.db, check_rc=False)
    check(p.returncode == rc, "route %s -> %d (want %d):\n%s%s"
          % (" ".join(args), p.returncode, rc, p.stdout, p.stderr))
    return p


def wait_log(server, text, count=1, timeout=5.0):
    """Waits until the server's log holds text count times."""
    deadline = time.time() + timeout
    while server.log_text().count(text) < count and time.time() < deadline:
        time.sleep(0.05)
    check(server.log_text().count(text) >= count,
          "no %r in the log:\n%s" % (text, server.log_tail(30)))


def failover_call(s, tmp, silent, gw2_port, timeout_s, name):
    """One call: the silent gateway first, then a SIPp UAS that answers; returns
    (first INVITE at the silent one, INVITE at the answering one)."""
    before = len(silent.messages("INVITE"))
    gw2, log = uas(tmp, "uas_answer.xml", gw2_port, name)
    t0 = time.time()
    call(s, tmp, "0301234")
    took = time.time() - t0
    rc, out = gw2.wait(20)
    check(rc == 0, "the second gateway's scenario failed:\n" + out[-1500:])
    invs = silent.messages("INVITE")[before:]
    check(invs, "the silent gateway got no INVITE")
    t1 = invs[0][0]
    t2 = first(sipp_log(log), "INVITE")
    check(t2 is not None, "the second gateway got no INVITE")
    waited = t2 - t1
    check(timeout_s - 0.1 <= waited <= timeout_s + 1.0,
          "second gateway tried %.2f s after the first (timeout %.1f s)" % (waited, timeout_s))
    check(took < timeout_s + 5, "the call took %.1f s" % took)
    return t1, t2


def test_silent_gateway_abandoned_after_timeout():
    """A gateway that never answers is abandoned after dialplan.gateway_timeout
    (2 s), not Timer B (32 s); its INVITE is no longer retransmitted, it gets
    no CANCEL (nothing provisional came), but a late 180 gets one."""
    tmp = tempfile.mkdtemp()
    p1, p2 = free_port(), free_port()
    cfg = config(tmp, [("gw1", p1, 1, False, ""), ("gw2", p2, 2, False, "")],
                 dialplan="  gateway_timeout: 2\n")
    silent = SilentGateway(p1)
    try:
        with Server(config=cfg) as s:
            users(s, "alice")
            t1, _ = failover_call(s, tmp, silent, p2, 2.0, "gw2")
            check("gateway gw1 sent no provisional response within 2000 ms: failing over"
                  in s.log_text(), "no log line for the failover:\n" + s.log_tail(30))
            # T1 = 500 ms: INVITEs at 0, 0.5, 1.5 s; the one at 3.5 s must not come
            time.sleep(max(0.0, t1 + 4.5 - time.time()))
            invs = silent.messages("INVITE")
            check(len(invs) >= 2, "the INVITE was not retransmitted before the timeout")
            late = [t - t1 for t, _, _ in invs if t - t1 > 2.2]
            check(not late, "INVITE retransmitted after the failover: %r" % late)
            check(not silent.messages("CANCEL"), "CANCEL sent before any provisional response")
            # a late 180 from the abandoned gateway: it is cancelled now (RFC 3261 9.1)
            _, text, addr = invs[0]
            silent.send(reply(text, "180 Ringing", to_tag="late1"), addr)
            deadline = time.time() + 3
            while not silent.messages("CANCEL") and time.time() < deadline:
                time.sleep(0.05)
            cancels = silent.messages("CANCEL")
            check(cancels, "the late 180 got no CANCEL")
            branch = re.search(r"branch=([^;\r\n]+)", text).group(1)
            check(branch in cancels[0][1], "the CANCEL is not for the INVITE's branch")
            silent.send(reply(cancels[0][1], "200 OK"), addr)
            silent.send(reply(text, "487 Request Terminated", to_tag="late1"), addr)
            deadline = time.time() + 3
            while not silent.messages("ACK") and time.time() < deadline:
                time.sleep(0.05)
            check(silent.messages("ACK"), "the 487 was not acknowledged")
    finally:
        silent.close()


def test_timeouts_and_probe_interval_from_cli():
    """route gateway set gw1 timeout=1, then the default for all gateways
    (route set timeout=1500ms), and route set probe_interval=1 / 0, applied
    by the running server without a restart."""
    tmp = tempfile.mkdtemp()
    p1, p2, p3 = free_port(), free_port(), free_port()
    cfg = config(tmp, [("gw1", p1, 1, False, ""), ("gw2", p2, 2, False, ""),
                       ("gw3", p3, None, True, "")], probe_interval=0)
    silent = SilentGateway(p1)
    probed = SilentGateway(p3)
    probed.answer_options = True
    try:
        with Server(config=cfg) as s:
            users(s, "alice")
            # bad values are refused with the reason, and nothing is written
            for args, rc, text in ((("gateway", "set", "gw1", "timeout=1.5"), 2, "duration"),
                                   (("gateway", "set", "gw1", "timeout=50ms"), 2, "100 ms"),
                                   (("gateway", "set", "gw1", "ring_timeout=-3"), 2,
                                    "ring_timeout"),
                                   (("set", "timeout=3", "probe_interval=x"), 2,
                                    "probe_interval"),
                                   (("set", "colour=red"), 2, "unknown setting"),
                                   (("set",), 2, "")):
                p = route(cfg, s, *args, rc=rc)
                check(text in p.stderr, "%s: no precise error: %r" % (" ".join(args), p.stderr))
            check("[set from the CLI]" not in route(cfg, s, "show").stdout,
                  "a refused change was written")

            route(cfg, s, "gateway", "set", "gw1", "timeout=1")
            wait_log(s, "routing rules changed")
            failover_call(s, tmp, silent, p2, 1.0, "gw2-a")
            check("gateway gw1 sent no provisional response within 1000 ms" in s.log_text(),
                  s.log_tail(20))

            # back to the default, and the default changed for every gateway
            route(cfg, s, "gateway", "set", "gw1", "timeout=default")
            wait_log(s, "routing rules changed", 2)
            route(cfg, s, "set", "timeout=1500ms")
            show = route(cfg, s, "show").stdout
            check(re.search(r"timeout +1500ms .*\[set from the CLI\]", show), show)
            wait_log(s, "routing rules changed", 3)
            failover_call(s, tmp, silent, p2, 1.5, "gw2-b")
            check("gateway gw1 sent no provisional response within 1500 ms" in s.log_text(),
                  s.log_tail(20))

            # the probe interval: off in the file; every second from the CLI; off again
            time.sleep(1.0)
            check(not probed.messages("OPTIONS"), "probed with probe_interval: 0")
            route(cfg, s, "set", "probe_interval=1")
            wait_log(s, "gateway probes every 1 s")
            deadline = time.time() + 6
            while len(probed.messages("OPTIONS")) < 4 and time.time() < deadline:
                time.sleep(0.1)
            opts = probed.messages("OPTIONS")
            check(len(opts) >= 4, "%d OPTIONS probes with probe_interval=1" % len(opts))
            gaps = [b[0] - a[0] for a, b in zip(opts[1:], opts[2:])]
            check(all(0.7 < g < 1.5 for g in gaps), "probe gaps %r" % gaps)
            route(cfg, s, "set", "probe_interval=default")
            wait_log(s, "gateway probes off")
            time.sleep(0.3)
            n = len(probed.messages("OPTIONS"))
            time.sleep(2.5)
            check(len(probed.messages("OPTIONS")) == n, "still probing after probe_interval=0")
            check(not silent.messages("OPTIONS"), "a gateway with probe: false was probed")
    finally:
        silent.close()
        probed.close()


def test_ring_timeout():
    """A gateway that rings for longer than its ring_timeout is cancelled;
    the caller gets 480 and no other carrier is tried (the callee was
    reached: nobody answered). Set from the CLI on the running server."""
    tmp = tempfile.mkdtemp()
    p1, p2 = free_port(), free_port()
    cfg = config(tmp, [("gw1", p1, 1, False, ""), ("gw2", p2, 2, False, "")])
    with Server(config=cfg) as s:
        users(s, "alice")
        route(cfg, s, "gateway", "set", "gw1", "ring_timeout=2")
        wait_log(s, "routing rules changed")
        gw1, log1 = uas(tmp, "uas_ring.xml", p1, "gw1")
        gw2, log2 = uas(tmp, "uas_answer.xml", p2, "gw2")
        t0 = time.time()
        call(s, tmp, "0301234", expect=480)
        took = time.time() - t0
        rc, out = gw1.wait(20)
        check(rc == 0, "the ringing gateway's scenario failed:\n" + out[-1500:])
        msgs = sipp_log(log1)
        inv, cancel = first(msgs, "INVITE"), first(msgs, "CANCEL")
        check(inv and cancel, "no INVITE/CANCEL at the ringing gateway: %r" % msgs)
        check(2.0 - 0.1 <= cancel - inv <= 3.0,
              "CANCEL %.2f s after the INVITE (ring_timeout 2 s)" % (cancel - inv))
        check(took < 10, "the call took %.1f s" % took)
        time.sleep(0.5)
        check(first(sipp_log(log2), "INVITE") is None, "another carrier was tried after ringing")
        gw2.stop()
        check("gateway gw1: no final answer 2000 ms after its first provisional response"
              in s.log_text(), s.log_tail(20))


def test_timed_out_gateway_skipped_until_it_answers_a_probe():
    """A probed gateway that let a call time out is marked down like one that
    failed a probe: the next call goes to the second gateway at once; it is
    up again when it answers a probe (the interval shortened from the CLI)."""
    tmp = tempfile.mkdtemp()
    p1, p2 = free_port(), free_port()
    cfg = config(tmp, [("gw1", p1, 1, True, ", timeout: 1"), ("gw2", p2, 2, False, "")],
                 probe_interval=60)
    silent = SilentGateway(p1)
    try:
        with Server(config=cfg) as s:
            users(s, "alice")
            failover_call(s, tmp, silent, p2, 1.0, "gw2-a")
            wait_log(s, "gateway gw1 (127.0.0.1) is down: no answer to a call")
            n = len(silent.messages("INVITE"))
            gw2, log = uas(tmp, "uas_answer.xml", p2, "gw2-b")
            t0 = time.time()
            call(s, tmp, "0301234")
            check(time.time() - t0 < 1.0 + 0.9,
                  "the down gateway was tried first (%.1f s)" % (time.time() - t0))
            rc, out = gw2.wait(20)
            check(rc == 0, "gw2 failed:\n" + out[-1500:])
            check(len(silent.messages("INVITE")) == n, "the down gateway got the call")
            silent.answer_options = True
            route(cfg, s, "set", "probe_interval=1")
            wait_log(s, "gw1 (127.0.0.1) is up again", timeout=8)
    finally:
        silent.close()


if __name__ == "__main__":
    main(globals())
