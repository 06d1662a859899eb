#!/usr/bin/env python3
"""Billing records (issue 14 section 2), through the real binary, read back
with `switchboard cdr export|list|totals`.

Raw UDP peers (sbphone) where the test must choose each message (answered,
unanswered 480/408, busy, cancelled, session-timer end), SIPp where real
peers fit (a busy phone, two SIPp gateways of which the first answers 503:
failover) and for the load of the `kill -9` test: SIPp calls at 30 cps for
1-3 s each, the server killed mid-run and restarted on the same database;
every call SIPp completed must have exactly one record, and the calls cut
by the crash records marked so (crash, or recovered when their BYE came
after the restart).
"""
import json
import os
import re
import signal
import subprocess
import tempfile
import time

from sbphone import hget
from sbtest import (SCENARIOS, Server, SippBackground, auth_kw, check, cli, free_port, main,
                    need, sipp_auth_uri, wait_for, write_inf)
from test_call_services import Phone as SippPhone
from test_call_services import call as sipp_call
from test_dialog import Call, Phone, reply, server, users
from test_gateway_failover import config as gw_config
from test_gateway_failover import uas as gw_uas


def records(s, *filters):
    p = cli("cdr", "export", "--format", "json", *filters, db=s.db)
    return json.loads(p.stdout)


def record_of(s, callid, timeout=5.0):
    """The one record of callid (waits for the database thread to write it)."""
    def find():
        r = [x for x in records(s) if x["callid"] == callid]
        return r or None
    r = wait_for(find, timeout, "the record of " + callid)
    check(len(r) == 1, "%d records for %s: %r" % (len(r), callid, r))
    return r[0]


def iso_ms(t):
    """Unix ms of an ISO 8601 time as the CLI writes it ("" = 0)."""
    if not t:
        return 0
    import datetime
    return int(datetime.datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000)


def common(rec, s, call):
    check(rec["identity"] == "alice@127.0.0.1", "identity %r" % rec["identity"])
    check(rec["account"] == "alice@127.0.0.1", "account %r" % rec["account"])
    check(rec["from"] == "sip:alice@127.0.0.1", "from %r" % rec["from"])
    check(rec["dialled"] == "sip:bob@%s" % s.host, "dialled %r" % rec["dialled"])
    check(rec["source"] == "udp:127.0.0.1:%d" % call.alice.c.port, "source %r" % rec["source"])
    check(rec["crash"] is False and rec["recovered"] is False, "crash flags %r" % rec)
    check(rec["relayed"] is False and rec["from_caller"]["packets"] == 0,
          "media of a call not relayed: %r" % rec)


def test_answered_call():
    """180, 200, ~1.2 s of talk, BYE from the caller: every field."""
    tmp = tempfile.mkdtemp(prefix="sbcdr-")
    with server(tmp) as s:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        t0 = time.time()
        call = Call(s, bob)
        time.sleep(0.2)
        call.ring()
        time.sleep(0.3)
        call.answer()
        time.sleep(1.2)
        call.hangup()
        t1 = time.time()
        rec = record_of(s, call.callid)
        common(rec, s, call)
        check(rec["disposition"] == "answered" and rec["status"] == 200, "result %r" % rec)
        check(rec["ended_by"] == "bye-caller", "ended_by %r" % rec["ended_by"])
        check(rec["target"] == "sip:bob@127.0.0.1:%d" % bob.port, "target %r" % rec["target"])
        check(rec["gateway"] == "", "gateway %r" % rec["gateway"])
        start, ring, ans, end = (iso_ms(rec[k]) for k in ("start", "ringing", "answer", "end"))
        check(t0 * 1000 - 50 <= start < ring < ans < end <= t1 * 1000 + 50,
              "times out of order: %r" % rec)
        check(150 <= ring - start <= 1000, "ringing %d ms after start" % (ring - start))
        check(1150 <= rec["duration_ms"] <= 2500, "duration %d ms" % rec["duration_ms"])
        check(rec["duration_ms"] == end - ans, "duration is end - answer")
        check(rec["billable"] == (rec["duration_ms"] + 999) // 1000, "billable %r" % rec["billable"])
        check(len(rec["history"]) == 1 and rec["history"][0]["status"] == 200 and
              rec["history"][0]["ringing"] == rec["ringing"], "history %r" % rec["history"])
        check(rec["history"][0]["address"] == "udp:127.0.0.1:%d" % bob.port,
              "history address %r" % rec["history"][0])
        # list / totals / filters
        p = cli("cdr", "list", db=s.db)
        check(call.callid not in p.stdout and "answered" in p.stdout and
              "alice@127.0.0.1" in p.stdout, "list:\n" + p.stdout)
        p = cli("cdr", "totals", "--by", "account", db=s.db)
        check(re.search(r"alice@127.0.0.1\s+1\s+1\s+%d" % rec["billable"], p.stdout),
              "totals:\n" + p.stdout)
        check(records(s, "--from", str(int(t1) + 5)) == [], "--from after the call")
        check(len(records(s, "--to", time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                   time.gmtime(t1 + 60)))) == 1, "--to")
        check(records(s, "--caller", "carol@127.0.0.1") == [], "--caller filters")
        check(len(records(s, "--caller", "alice@127.0.0.1")) == 1, "--caller")
        check(len(records(s, "--account", "alice@127.0.0.1", "--limit", "1")) == 1, "--account")
        # the control socket's stats count what was written
        import socket as _s
        ctl = os.path.join(os.path.dirname(s.db), "switchboard.ctl")
        so = _s.socket(_s.AF_UNIX, _s.SOCK_STREAM)
        so.connect(ctl)
        so.sendall(b"stats\n")
        data = b""
        while True:
            chunk = so.recv(65536)
            if not chunk:
                break
            data += chunk
        so.close()
        cdr_stats = json.loads(data)["cdr"]
        check(cdr_stats["written"] == 1 and cdr_stats["dropped"] == 0 and cdr_stats["calls"] == 0,
              "stats %r" % cdr_stats)
        call.close()
        bob.close()


def test_unanswered_busy_and_cancelled():
    """Finals from bob's phone: 480 and 408 (unanswered), 486 (busy), and a CANCEL (487)."""
    tmp = tempfile.mkdtemp(prefix="sbcdr-")
    with server(tmp) as s:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        for status, disp in ((480, "unanswered"), (408, "unanswered"), (486, "busy")):
            call = Call(s, bob)
            call.ring()
            time.sleep(0.2)
            bob.send(reply(call.bob_inv, status, "X", call.bob_tag, [call.bob_contact]))
            r = call.alice.final(3)
            check(r is not None and r.status == status, "alice got %r" % r)
            rec = record_of(s, call.callid)
            common(rec, s, call)
            check(rec["disposition"] == disp and rec["status"] == status, "%d: %r" % (status, rec))
            check(rec["answer"] == "" and rec["duration_ms"] == 0 and rec["billable"] == 0,
                  "unanswered times %r" % rec)
            check(rec["ringing"] != "" and rec["ended_by"] == "failure", "ringing/ended %r" % rec)
            check([h["status"] for h in rec["history"]] == [status], "history %r" % rec["history"])
            call.close()
        # the caller gives up: CANCEL, the phone answers 200 and 487
        call = Call(s, bob)
        call.ring()
        time.sleep(0.2)
        via = hget(call.invite, "via")[0]
        cancel = ("CANCEL %s SIP/2.0\r\nVia: %s\r\nMax-Forwards: 70\r\nFrom: %s\r\nTo: %s\r\n"
                  "Call-ID: %s\r\nCSeq: %d CANCEL\r\nContent-Length: 0\r\n\r\n"
                  % (call.ruri, via, hget(call.invite, "from")[0], hget(call.invite, "to")[0],
                     call.callid, call.cseq)).encode()
        call.alice.send(cancel)
        c = bob.recv_request("CANCEL", 3)
        check(c is not None, "bob got no CANCEL: " + s.log_tail())
        bob.send(reply(c, 200, "OK", call.bob_tag))
        bob.send(reply(call.bob_inv, 487, "Request Terminated", call.bob_tag))
        rec = record_of(s, call.callid)
        check(rec["disposition"] == "cancelled" and rec["status"] == 487, "cancel %r" % rec)
        check(rec["ended_by"] == "cancel", "ended_by %r" % rec["ended_by"])
        call.close()
        bob.close()


def test_sipp_busy_phone():
    """Real peers: a SIPp phone answering 486, a SIPp caller with digest."""
    tmp = tempfile.mkdtemp(prefix="sbcdr-")
    with Server() as s:
        s.add_user("alice", "alicepw")
        s.add_user("bob", "bobpw")
        phone = SippPhone(s, tmp, "bob", "bobpw", "uas_busy.xml")
        sipp_call(s, tmp, "bob", expect=486)
        recs = wait_for(lambda: records(s), 5, "a record")
        check(len(recs) == 1, "records: %r" % recs)
        r = recs[0]
        check(r["disposition"] == "busy" and r["status"] == 486 and r["billable"] == 0, "%r" % r)
        check(r["identity"] == "alice@127.0.0.1" and r["dialled"] == "sip:bob@127.0.0.1",
              "caller/callee %r" % r)
        check([h["status"] for h in r["history"]] == [486], "history %r" % r["history"])
        phone.stop()


def test_failover_to_second_gateway():
    """gw1 (SIPp) answers 503, gw2 (SIPp) answers: the record names gw2 and
    its history shows gw1's 503 then gw2."""
    tmp = tempfile.mkdtemp(prefix="sbcdr-")
    p1, p2 = free_port(), free_port()
    cfg = gw_config(tmp, [("gw1", p1, 1, False, ""), ("gw2", p2, 2, False, "")])
    with Server(config=cfg) as s:
        s.add_user("alice", "alicepw")
        g1, _ = gw_uas(tmp, "uas_503.xml", p1, "gw1")
        g2, _ = gw_uas(tmp, "uas_answer.xml", p2, "gw2")
        sipp_call(s, tmp, "0301234")
        for g in (g1, g2):
            rc, out = g.wait(20)
            check(rc == 0, "gateway scenario failed:\n" + out[-1000:])
        recs = wait_for(lambda: records(s), 5, "a record")
        check(len(recs) == 1, "records: %r" % recs)
        r = recs[0]
        check(r["disposition"] == "answered" and r["gateway"] == "gw2", "result %r" % r)
        check(r["dialled"] == "sip:0301234@127.0.0.1", "dialled %r" % r["dialled"])
        hist = [(h["gateway"], h["status"], h["address"]) for h in r["history"]]
        check(hist == [("gw1", 503, "udp:127.0.0.1:%d" % p1), ("gw2", 200, "udp:127.0.0.1:%d" % p2)],
              "history %r" % hist)
        check(r["target"].endswith(":%d" % p2) or str(p2) in r["target"], "target %r" % r["target"])
        p = cli("cdr", "export", "--format", "csv", db=s.db)
        lines = p.stdout.strip().splitlines()
        check(lines[0].startswith("id,callid,account") and len(lines) == 2, "csv:\n" + p.stdout)
        check('503 gw1 udp:127.0.0.1:%d - -; 200 gw2' % p1 in lines[1], "csv history:\n" + lines[1])


def test_session_timer_end():
    """Nobody refreshes: the proxy ends the call; the record says session-timer."""
    tmp = tempfile.mkdtemp(prefix="sbcdr-")
    cfg = "dialog:\n  session_expires: 3\n  min_se: 2\n  test_short_timers: true\n"
    with server(tmp, cfg) as s:
        users(s)
        bob = Phone(s, "bob", "bobpw")
        call = Call(s, bob)
        call.answer(["Session-Expires: 3;refresher=uac", "Require: timer"])
        bye = bob.recv_request("BYE", 8)
        check(bye is not None, "bob got no BYE: " + s.log_tail())
        bob.send(reply(bye, 200, "OK", call.bob_tag))
        rec = record_of(s, call.callid, timeout=6)
        check(rec["ended_by"] == "session-timer" and rec["session_expires"] == 3, "%r" % rec)
        check(rec["disposition"] == "answered" and 2500 <= rec["duration_ms"] <= 6000,
              "duration %r" % rec["duration_ms"])
        call.close()
        bob.close()


def test_bad_arguments():
    tmp = tempfile.mkdtemp(prefix="sbcdr-")
    db = os.path.join(tmp, "x.db")
    for args, text in ((["list", "--from", "yesterday"], "not a date"),
                       (["list", "--from", "2026-02-30"], "no such date"),
                       (["list", "--from", "2026-12-08", "--to", "2026-12-07"], "not before"),
                       (["list", "--limit", "-3"], "--limit"),
                       (["list", "--limit"], "needs a value"),
                       (["export"], "--format"),
                       (["export", "--format", "xml"], "csv or json"),
                       (["totals", "--by", "colour"], "caller or account"),
                       (["totals"], "--by"),
                       (["frobnicate"], "unknown command")):
        p = cli("cdr", *args, db=db, check_rc=False)
        check(p.returncode == 2 and text in p.stderr, "cdr %s -> %d %r" % (args, p.returncode,
                                                                            p.stderr))
    p = cli("cdr", "list", "--from", "2026-12-07T10:00:00+01:00", "--to", "1900000000", db=db)
    check("no records" in p.stdout, p.stdout)


def test_kill_9_under_load():
    """SIPp at 30 cps, 1-3 s calls; kill -9 mid-run; restart on the same
    database: every call SIPp completed has one record; calls cut by the
    crash are marked (crash, or recovered when they ended after the restart)."""
    need("sipp")
    tmp = tempfile.mkdtemp(prefix="sbcdr-")
    with open(os.path.join(SCENARIOS, "uac_call_auth.xml")) as f:
        xml = f.read()
    xml = xml.replace("<pause/>", '<pause distribution="uniform" min="1000" max="3000"/>', 1)
    # a completed call (its BYE answered) writes its Call-ID to the log
    xml = xml.replace('<recv response="200"/>\n</scenario>',
                      '<recv response="200"/>\n  <nop><action><log message="DONE [call_id]"/>'
                      '</action></nop>\n</scenario>')
    check("DONE [call_id]" in xml, "scenario not patched")
    uac_xml = os.path.join(tmp, "uac_load.xml")
    with open(uac_xml, "w") as f:
        f.write(xml)
    s = server(tmp).start()
    uas = None
    try:
        users(s)
        uas_port = free_port()
        uas = SippBackground(["-sf", os.path.join(SCENARIOS, "uas_answer.xml"), "-i", "127.0.0.1",
                              "-p", uas_port, "-t", "u1"], cwd=tmp)
        from test_calls import register_uas
        register_uas(s, "bob", "bobpw", uas_port)
        inf = write_inf(os.path.join(tmp, "load.csv"),
                        [("alice", auth_kw("alice", "alicepw"), "127.0.0.1", "bob")])
        logf = os.path.join(tmp, "uac_logs.log")
        args = [s.host, "-sf", uac_xml, "-inf", inf, "-m", "240", "-r", "30", "-i",
                "127.0.0.1", "-p", str(free_port()), "-t", "u1", "-timeout", "60s",
                "-trace_logs", "-log_file", logf]
        uac = subprocess.Popen(["sipp"] + args + sipp_auth_uri(args, tmp) + ["-nostdin"], cwd=tmp, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        time.sleep(4.0)
        t_kill = time.time()
        s.kill()
        s = server(tmp, db=s.db, port=s.port).start()
        crash_now = [r for r in records(s) if r["crash"]]
        check(crash_now, "no crash record right after the restart")
        check(all(r["ended_by"] == "crash" and r["disposition"] == "answered" and
                  iso_ms(r["end"]) >= iso_ms(r["answer"]) for r in crash_now),
              "crash records: %r" % crash_now[:3])
        uac.wait(timeout=120)
        done = set()
        if os.path.exists(logf):
            done = set(re.findall(r"DONE (\S+)", open(logf, errors="replace").read()))
        check(len(done) >= 100, "only %d calls completed" % len(done))
        time.sleep(0.5)  # the last records: written within 100 ms
        recs = records(s)
        by_call = {}
        for r in recs:
            by_call.setdefault(r["callid"], []).append(r)
        missing = [c for c in done if not any(x["disposition"] == "answered"
                                             for x in by_call.get(c, []))]
        # the window docs/billing.md states: a call answered less than one write-behind
        # period (100 ms) before the crash was not in the store yet
        confirmed = {}
        for m in re.finditer(r"^(\S+) debug dialog (\S+) \(\S*\): confirmed$", s.log_text(), re.M):
            confirmed[m.group(2)] = iso_ms(m.group(1)) / 1000.0
        window = [c for c in missing if c in confirmed and t_kill - 0.25 <= confirmed[c] <= t_kill]
        lost = [c for c in missing if c not in window]
        check(not lost, "%d completed calls without a record: %r" % (len(lost), lost[:5]))
        check(len(window) <= 5, "%d calls in the write-behind window" % len(window))
        dup = {c: v for c, v in by_call.items()
               if len([x for x in v if x["disposition"] == "answered"]) > 1}
        check(not dup, "duplicated records: %r" % list(dup.items())[:2])
        ids = [r["id"] for r in recs]
        check(len(ids) == len(set(ids)), "duplicated ids")
        cut = [r for r in recs if r["crash"] or r["recovered"]]
        check(cut, "no record of a call cut by the crash")
        print("  %d calls completed, %d records, %d crossed the crash (%d still 'crash'), "
              "%d answered in the last 100 ms before it (no record)"
              % (len(done), len(recs), len(cut), len([r for r in recs if r["crash"]]),
                 len(window)))
    finally:
        if uas:
            uas.stop()
        s.stop(check_clean=False) if s.proc else None


if __name__ == "__main__":
    main(globals())
