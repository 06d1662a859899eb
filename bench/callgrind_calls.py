#!/usr/bin/env python3
"""Instructions per call, counted by callgrind: the exact figure the wall clock of this
shared machine (±15 % between runs) cannot give.

The server runs under `valgrind --tool=callgrind --instr-atstart=no`; the bench's 1,000
callees register (not counted), then instrumentation is switched on for CALLS calls at
RATE/s (SIPp, the `call` benchmark's scenario: INVITE with digest, 180, 200, ACK, BYE),
and off again. Prints one JSON object: instructions per call for the whole process and for
the receive path (`udp_readable`, inclusive).

  bench/callgrind_calls.py [EXTRA_CONFIG_YAML]

Environment: SB_BIN (the binary), CALLS (500), RATE (50). The configuration is the bench's
without its `udp:` section, overload control's threshold out of reach (valgrind's slowness
is real queueing delay), plus EXTRA_CONFIG_YAML (e.g. "udp:\\n  dialog_port: auto\\n").
"""
import json
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sbbench  # noqa: E402

CALLS = int(os.environ.get("CALLS", "500"))
RATE = int(os.environ.get("RATE", "50"))


def main():
    extra = sys.argv[1].encode().decode("unicode_escape") if len(sys.argv) > 1 else ""
    work = tempfile.mkdtemp(prefix="sbcg-")
    with open(sbbench.SB_BENCH_CFG) as f:
        base = re.sub(r"(?ms)^udp:\n(?:[ #].*?\n)*", "", f.read())
    cfg = os.path.join(work, "cg.yaml")
    with open(cfg, "w") as f:
        f.write(base.rstrip("\n") + "\noverload:\n  delay_ms: 60000\n" + extra)
    out = os.path.join(work, "callgrind.out")
    real_pinned = sbbench.pinned

    def pinned(cpu, cmd):
        if cmd and cmd[0] == sbbench.SB_BIN:
            cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
                   "--callgrind-out-file=" + out] + cmd
        return real_pinned(cpu, cmd)

    sbbench.pinned = pinned
    data = sbbench.Data(os.path.join(work, "data"))
    srv = sbbench.Switchboard(data, 1, work, config=cfg, name="cg")
    srv.start()
    uas = None
    try:
        time.sleep(1)
        sbbench.register_callees(data, work)
        uas = sbbench.start_uas(work)
        time.sleep(1)
        subprocess.run(["callgrind_control", "-i", "on", str(srv.proc.pid)], check=True,
                       capture_output=True)
        r = sbbench.call_step(srv, data, RATE, CALLS // RATE, work, "cg")
        subprocess.run(["callgrind_control", "-i", "off", str(srv.proc.pid)], check=True,
                       capture_output=True)
    finally:
        if uas:
            uas.terminate()
            uas.wait()
        srv.stop()
    ann = subprocess.run(["callgrind_annotate", "--inclusive=yes", out], capture_output=True,
                         text=True).stdout

    def ir(pattern):
        for line in ann.splitlines():
            if re.search(pattern, line):
                return int(line.split()[0].replace(",", ""))
        return 0
    total = ir(r"PROGRAM TOTALS")
    ok = r["ok"]
    print(json.dumps({"calls": ok, "whole_per_call": total / max(ok, 1),
                      "udp_readable_per_call": ir(r":udp_readable ") / max(ok, 1),
                      "on_request_per_call": ir(r":on_request ") / max(ok, 1),
                      "binary": sbbench.SB_BIN, "extra": extra}))


if __name__ == "__main__":
    main()
