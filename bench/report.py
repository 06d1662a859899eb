"""report - turns a benchmark run (results.json) into docs/benchmarks.md and
PNG plots drawn by gnuplot: completed rate against offered rate, and latency
percentiles against offered rate, every server on one chart."""

import json
import os
import subprocess

# datagrams through the proxy per operation (in + out)
DGRAMS_REG = 4   # REGISTER, 401, REGISTER, 200
DGRAMS_CALL = 16  # INVITE 407 ACK | INVITE 100 INVITE 180 180 200 200 ACK ACK BYE BYE 200 200


def load(workdir):
    with open(os.path.join(workdir, "results.json")) as f:
        return json.load(f)


def pick(res, prefix):
    for name, s in res["servers"].items():
        if name.startswith(prefix):
            return name, s
    return None, {}


def fmt(v, digits=0):
    if v is None or v == "":
        return "–"
    if isinstance(v, float):
        return ("{:,.%df}" % digits).format(v)
    return "{:,}".format(v)


def ratio(a, b, invert=False):
    if not a or not b:
        return "–"
    return "%.2f×" % ((b / a) if invert else (a / b))


def get(s, *path):
    for p in path:
        if not isinstance(s, dict) or p not in s:
            return None
        s = s[p]
    return s


def lat_at(s, kind, rate):
    for row in s.get("lat_" + kind, []):
        if row["rate"] == rate:
            return row
    return {}


def table(res):
    sb1n, sb1 = pick(res, "switchboard-1w")
    sb2n, sb2 = pick(res, "switchboard-2w")
    kamn, kam = pick(res, "kamailio")
    rates = res.get("latency_rates", {})
    hr, hc = rates.get("reg_half"), rates.get("call_half")
    rows = []

    def row(label, key_fn, digits=0, lower_better=False):
        a, b, k = key_fn(sb1), key_fn(sb2), key_fn(kam)
        rows.append("| %s | %s | %s | %s | %s |" % (label, fmt(a, digits), fmt(b, digits), fmt(k, digits),
                                                   ratio(a, k, invert=lower_better)))

    row("REGISTER with digest, max sustained /s (<0.1%% failed, median of %d)" % res["repeats"],
        lambda s: get(s, "reg", "max"))
    row("calls with 407 through the proxy, max sustained /s", lambda s: get(s, "call", "max"))
    row("server CPU per registration at %s/s (µs)" % fmt(get(sb1, "cpu", "reg_rate")),
        lambda s: get(s, "cpu", "reg", "per_op_us"), 1, True)
    row("server CPU per call at %s/s (µs)" % fmt(get(sb1, "cpu", "call_rate")),
        lambda s: get(s, "cpu", "call", "per_op_us"), 1, True)
    row("REGISTER→200 p50 at %s/s (µs)" % fmt(hr), lambda s: lat_at(s, "reg", hr).get("p50"), 0, True)
    row("REGISTER→200 p99 at %s/s (µs)" % fmt(hr), lambda s: lat_at(s, "reg", hr).get("p99"), 0, True)
    row("INVITE→200 p50 at %s/s (µs)" % fmt(hc), lambda s: lat_at(s, "call", hc).get("p50"), 0, True)
    row("INVITE→200 p99 at %s/s (µs)" % fmt(hc), lambda s: lat_at(s, "call", hc).get("p99"), 0, True)
    row("resident memory idle, PSS (KiB)", lambda s: get(s, "memory", "idle_pss_kb"), 0, True)
    row("PSS with %s bindings (KiB)" % fmt(get(sb1, "memory", "bindings")),
        lambda s: get(s, "memory", "pss_kb"), 0, True)
    row("bytes per binding (PSS)", lambda s: get(s, "memory", "pss_bytes_per_binding"), 0, True)
    lim = get(res, "limit", "datagrams_per_core_s")
    if lim:
        row("max registrations as a fraction of the machine ceiling (%)",
            lambda s: (get(s, "reg", "max") or 0) * DGRAMS_REG / lim * 100, 1)
        row("max calls as a fraction of the machine ceiling (%)",
            lambda s: (get(s, "call", "max") or 0) * DGRAMS_CALL / lim * 100, 1)
    head = ("| figure (server pinned to one core) | %s | %s | %s | ratio (1 worker vs Kamailio) |\n"
            "|---|---:|---:|---:|---:|" % (sb1.get("label", "Switchboard"), sb2.get("label", "–"),
                                            kam.get("label", "Kamailio")))
    return head + "\n" + "\n".join(rows), (sb1, sb2, kam)


def fail_busy(s, kind):
    """The server core's busy share at the first failing step of each sweep (the highest)."""
    seen = []
    for rep in get(s, kind, "steps") or []:
        for st in rep:
            if not st.get("pass") and "busy" in st:
                seen.append(st["busy"])
                break
    return max(seen) if seen else None


def targets(res, sb1, sb2, kam):
    out = []

    def check(ok, text):
        out.append("- %s %s" % ("**met**" if ok else "**missed**", text))

    ca, ck = get(sb1, "cpu", "reg", "per_op_us"), get(kam, "cpu", "reg", "per_op_us")
    if ca and ck:
        check(ca <= ck / 3, "CPU per registration at most a third of Kamailio's: %.1f vs %.1f µs (%.2f×)"
              % (ca, ck, ck / ca))
    ca, ck = get(sb1, "cpu", "call", "per_op_us"), get(kam, "cpu", "call", "per_op_us")
    if ca and ck:
        check(ca <= ck / 3, "CPU per call at most a third of Kamailio's: %.1f vs %.1f µs (%.2f×)"
              % (ca, ck, ck / ca))
    for kind, what in (("reg", "registrations/s"), ("call", "calls/s")):
        a, k = get(sb1, kind, "max"), get(kam, kind, "max")
        if a and k:
            capped = get(sb1, kind, "capped_by_rates")
            busy = fail_busy(sb1, kind)
            if capped:
                note = " (every offered rate passed: the ceiling is above the highest rate offered)"
            elif busy is not None and busy < 0.9:
                note = (" (at the first failing rate Switchboard's core was %.0f%% busy: the limit was "
                        "the load generator, SIPp on its one core, not the server)" % (busy * 100))
            else:
                note = ""
            check(a >= 2 * k, "highest sustained %s at least twice Kamailio's: %s vs %s%s"
                  % (what, fmt(a), fmt(k), note))
    rates = res.get("latency_rates", {})
    for kind, rate in (("reg", rates.get("reg_half")), ("call", rates.get("call_half"))):
        a, k = lat_at(sb1, kind, rate).get("p99"), lat_at(kam, kind, rate).get("p99")
        if a and k:
            check(a <= k, "p99 latency at half load (%s %s/s) no worse than Kamailio's: %.0f vs %.0f µs"
                  % ("REGISTER" if kind == "reg" else "INVITE", fmt(rate), a, k))
    a, k = get(sb1, "memory", "pss_bytes_per_binding"), get(kam, "memory", "pss_bytes_per_binding")
    if a and k:
        check(a <= k, "bytes per binding no more than Kamailio's: %.0f vs %.0f" % (a, k))
    a, b = get(sb1, "cpu", "call", "per_op_us"), get(sb2, "cpu", "call", "per_op_us")
    if a and b:
        check(b <= a * 1.15, "with two workers, CPU per call within 15%% of one worker's: %.1f vs %.1f µs (%+.1f%%)"
              % (b, a, (b / a - 1) * 100))
    return "\n".join(out)


def plot(res, docs):
    data_dir = os.path.join(docs, ".plotdata")
    os.makedirs(data_dir, exist_ok=True)
    made = []
    for kind, title, unit in (("reg", "REGISTER with digest", "registrations/s"),
                              ("call", "calls with 407 through the proxy", "calls/s")):
        series = []
        for name, s in res["servers"].items():
            steps = [st for rep in get(s, kind, "steps") or [] for st in rep]
            if not steps:
                continue
            byrate = {}
            for st in steps:
                byrate.setdefault(st["rate"], []).append(st["completed_rate"])
            path = os.path.join(data_dir, "%s_%s.dat" % (kind, name))
            with open(path, "w") as f:
                for rate in sorted(byrate):
                    v = sorted(byrate[rate])
                    f.write("%d %.1f\n" % (rate, v[len(v) // 2]))
            series.append((path, s["label"]))
        if series:
            png = "bench-%s-throughput.png" % kind
            gp(os.path.join(docs, png), "%s: completed against offered" % title, "offered " + unit,
               "completed " + unit,
               ['"%s" using 1:2 with linespoints lw 2 title "%s"' % (p, l) for p, l in series] +
               ["x with lines dt 2 lc rgb 'gray' title 'offered'"])
            made.append(png)
        series = []
        for name, s in res["servers"].items():
            rows = s.get("lat_" + kind)
            if not rows:
                continue
            path = os.path.join(data_dir, "lat_%s_%s.dat" % (kind, name))
            with open(path, "w") as f:
                for r in rows:
                    f.write("%d %.1f %.1f\n" % (r["rate"], r["p50"], r["p99"]))
            series.append((path, s["label"]))
        if series:
            png = "bench-%s-latency.png" % kind
            gp(os.path.join(docs, png), "%s: %s→200 latency" % (title, "REGISTER" if kind == "reg" else "INVITE"),
               "offered " + unit, "microseconds (log scale)",
               ['"%s" using 1:2 with linespoints lw 2 title "%s p50"' % (p, l) for p, l in series] +
               ['"%s" using 1:3 with linespoints dt 3 lw 2 title "%s p99"' % (p, l) for p, l in series],
               logy=True)
            made.append(png)
    return made


def gp(png, title, xlabel, ylabel, plots, logy=False):
    script = "\n".join([
        "set terminal pngcairo size 900,520 font 'sans,10'" if has_cairo() else "set terminal png size 900,520",
        "set output '%s'" % png, "set title '%s'" % title.replace("'", ""), "set xlabel '%s'" % xlabel,
        "set ylabel '%s'" % ylabel, "set grid", "set key left top", "set yrange [0:*]" if not logy else
        "set logscale y", "plot " + ", ".join(plots)])
    subprocess.run(["gnuplot"], input=script, text=True, check=True)


def has_cairo():
    out = subprocess.run(["gnuplot", "-e", "set terminal"], capture_output=True, text=True)
    return "pngcairo" in out.stdout + out.stderr


# Sections of docs/benchmarks.md this report writes; any other "## " section there (measured
# by other tools or by hand: the fan-out, overload control) is carried over as it is.
GENERATED = ("Results", "Targets", "The ceiling of the machine", "Plots", "How to read and repeat")


def kept_sections(path):
    try:
        with open(path) as f:
            text = f.read()
    except OSError:
        return []
    kept, cur = [], None
    for line in text.split("\n"):
        if line.startswith("## "):
            cur = None if line[3:].startswith(GENERATED) else []
            if cur is not None:
                kept.append(cur)
        if cur is not None:
            cur.append(line)
    return ["\n".join(sec).rstrip("\n") + "\n" for sec in kept]


def write(workdir, docs):
    res = load(workdir)
    kept = kept_sections(os.path.join(docs, "benchmarks.md"))
    tab, (sb1, sb2, kam) = table(res)
    pngs = plot(res, docs)
    lim = res.get("limit", {})
    host = res.get("host", {})
    md = ["# Benchmarks", "",
          "Measured by `make bench` (bench/sbbench.py) on %s, %s cores (%s), %s, Kamailio %s from Debian. "
          "Both servers ran on the same machine in the same run, the server pinned to core %s "
          "(`taskset`), SIPp and the capture to the other core; loopback UDP; each load step lasted "
          "%d s; every sweep was repeated %d times and the median is shown. Raw data: "
          "`bench/results/%s/`." % (res["date"], host.get("nproc", "?"), host.get("cpu", "?"),
                                    host.get("sipp", "SIPp"), host.get("kamailio", "?"), os.environ.get("SERVER_CPU", "1"),
                                    res["step_secs"], res["repeats"], os.path.basename(workdir)),
          "",
          "The work is the same for both: REGISTER challenged with 401 and checked against the "
          "subscribers in SQLite, bindings kept in memory (Switchboard also writes them behind to "
          "SQLite, Kamailio's usrloc runs with db_mode 0), INVITE of a local user challenged with "
          "407, transaction-stateful relaying with Record-Route to the callee's registered contact, "
          "ACK and BYE loose-routed. Kamailio's configuration is "
          "[bench/kamailio/kamailio.cfg](../bench/kamailio/kamailio.cfg).", "",
          "## Results", "", tab, "",
          "## Targets (issue: out-run Kamailio per core)", "", targets(res, sb1, sb2, kam), ""]
    if lim:
        md += ["## The ceiling of the machine", "",
               "A UDP reflector doing nothing but `recvmmsg`/`sendmmsg` in batches of 32 on the server "
               "core moved %s datagrams/s (%s per second of busy core). At %d datagrams per "
               "registration and %d per call through the proxy, that bounds one core at about %s "
               "registrations/s or %s calls/s." % (
                   fmt(lim.get("datagrams_per_s")), fmt(lim.get("datagrams_per_core_s")), DGRAMS_REG,
                   DGRAMS_CALL, fmt(lim.get("datagrams_per_core_s", 0) / DGRAMS_REG),
                   fmt(lim.get("datagrams_per_core_s", 0) / DGRAMS_CALL)), ""]
    md += kept
    md += ["## Plots", ""] + ["![%s](%s)" % (p, p) for p in pngs] + [""]
    md += ["## How to read and repeat", "",
           "- A load step passes when fewer than 0.1% of the calls failed, at least 99.9% of those "
           "offered completed, and SIPp finished within 10% of the step's length (no backlog).",
           "- *CPU per operation* is the server's own CPU time (user + system, all threads or "
           "processes) divided by the operations completed at a fixed rate both servers sustain. "
           "It does not depend on what else the noisy machine does, and it is the fair figure when "
           "SIPp on its single core becomes the limit before the server does.",
           "- Latency is taken from a loopback capture (tcpdump on the client core): from the "
           "authenticated request leaving SIPp to the 200 leaving the server. The INVITE figure "
           "includes the callee's (SIPp's) turnaround.",
           "- Memory is the proportional set size of the server's processes, idle after start and "
           "after registering %s distinct users." % fmt(get(sb1, "memory", "bindings")),
           "- Repeat: `make bench` (about an hour), or `bench/sbbench.py cpu` / `reg` / `call` / "
           "`latency` / `memory` / `limit` / `overload` for one part, `SERVERS=sb1,kam` to choose servers, "
           "`STEP_SECS` and `REPEATS` to change the length.", ""]
    with open(os.path.join(docs, "benchmarks.md"), "w") as f:
        f.write("\n".join(md))
    print("wrote", os.path.join(docs, "benchmarks.md"), pngs)
