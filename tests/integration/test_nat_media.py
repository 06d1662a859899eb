#!/usr/bin/env python3
"""Two real phones behind NAT talk through the relay (issue 14: "How it is shown to work").

The lab of sbnetns.py: the server in its own namespace on 100.64.0.1, two
baresip phones (Debian 12: 1.0.0) each in a private namespace behind its
own masquerading router. Each phone plays a WAV made here (alice a 1,000 Hz
tone, bob a 600 Hz one; aufile source) and writes what it receives to a WAV
(the sndfile module's decoded dump). bob registers with digest and answers
automatically; alice dials him (407 challenged) and hangs up after a few
seconds. The test checks what arrived on each side: the far side's tone is
there (Goertzel energy at its frequency well above the other one and above
silence), not only that packets flowed.

With `media.mode: nat` both directions carry the other phone's tone. With
`media.mode: never` the phones send RTP to each other's private addresses,
which the other router's network never reaches: nothing of the far tone
arrives on either side (the failure the relay fixes, shown, not assumed).
Traffic stays inside the namespaces the test creates.
"""
import glob
import math
import os
import struct
import subprocess
import tempfile
import time
import wave

import sbnetns
from sbtest import check, cli, main, need, wait_for

RATE = 8000
TONE = {"alice": 1000.0, "bob": 600.0}


def write_tone(path, freq, seconds=12.0):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"".join(struct.pack("<h", int(9000 * math.sin(2 * math.pi * freq * i / RATE)))
                               for i in range(int(seconds * RATE))))


def read_wav(path):
    with wave.open(path, "rb") as w:
        n, width, rate, ch = w.getnframes(), w.getsampwidth(), w.getframerate(), w.getnchannels()
        data = w.readframes(n)
    check(width == 2, "%s: %d-byte samples" % (path, width))
    samples = struct.unpack("<%dh" % (len(data) // 2), data)
    return list(samples[::ch]), rate


def goertzel(samples, rate, freq):
    """Mean power at freq (Goertzel), per sample."""
    if not samples:
        return 0.0
    k = 2 * math.cos(2 * math.pi * freq / rate)
    s1 = s2 = 0.0
    for x in samples:
        s1, s2 = x + k * s1 - s2, s1
    return (s1 * s1 + s2 * s2 - k * s1 * s2) / len(samples)


class Phone:
    """baresip in a lab namespace, no control channel: auto-answer, or dial with -e."""

    def __init__(self, lab, ns, name, password, tmp, dial=None, seconds=25):
        need("baresip")
        self.name = name
        self.dir = os.path.join(tmp, name)
        self.dumps = os.path.join(self.dir, "dumps")
        os.makedirs(self.dumps, exist_ok=True)
        src = os.path.join(self.dir, "tone.wav")
        write_tone(src, TONE[name])
        ip = sbnetns.PHONE_IP[ns]
        with open(os.path.join(self.dir, "config"), "w") as f:
            f.write("\n".join([
                "poll_method\tepoll",
                "sip_listen\t%s:5060" % ip,
                "net_interface\teth0",
                "call_local_timeout\t120",
                "audio_player\taubridge,%s" % name,
                "audio_source\taufile,%s" % src,
                "audio_alert\taubridge,%s" % name,
                "snd_path\t%s" % self.dumps,
                "rtp_timeout\t0",
                "module_path\t/usr/lib/baresip/modules",
                "module\tg711.so",
                "module\taubridge.so",
                "module\taufile.so",
                "module\tsndfile.so",
                "module_tmp\taccount.so",
                "module_app\tmenu.so", ""]))
        with open(os.path.join(self.dir, "accounts"), "w") as f:
            f.write("<sip:%s@%s;transport=udp>;auth_pass=%s;regint=600;answermode=%s;"
                    "audio_codecs=PCMU\n" % (name, sbnetns.SERVER_IP, password,
                                            "manual" if dial else "auto"))
        self.log_path = os.path.join(tmp, name + ".log")
        cmd = ["baresip", "-f", self.dir, "-t", str(seconds)]
        if dial:
            cmd += ["-e", "/dial %s" % dial]
        self.proc = lab.popen(ns, cmd, stdin=subprocess.DEVNULL,
                              stdout=open(self.log_path, "wb"), stderr=subprocess.STDOUT)

    def output(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-3000:]

    def wait(self, timeout):
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def received(self):
        """The decoded audio this phone received (the sndfile module's -dec dump)."""
        files = sorted(glob.glob(os.path.join(self.dumps, "dump-*-dec.wav")))
        check(files, "%s wrote no received-audio dump:\n%s" % (self.name, self.output()))
        return read_wav(files[-1])


def config(tmp, mode):
    path = os.path.join(tmp, "sb.yaml")
    with open(path, "w") as f:
        f.write("media:\n  mode: %s\n" % mode)
    return path


def call(tmp, mode):
    """alice calls bob through the server with media.mode; {name: (far power, own power, silence)}."""
    with sbnetns.NatLab() as lab:
        s = sbnetns.Server(lab, tmp=tmp, port=5060, config=config(tmp, mode))
        s.start()
        try:
            s.add_user("alice", "alicepw", domain=sbnetns.SERVER_IP)
            s.add_user("bob", "bobpw", domain=sbnetns.SERVER_IP)
            bob = Phone(lab, "b", "bob", "bobpw", tmp, seconds=30)
            wait_for(lambda: "bob@" in cli("reg", "list", db=s.db).stdout, 10,
                     "bob's registration:\n" + bob.output())
            alice = Phone(lab, "a", "alice", "alicepw", tmp,
                          dial="sip:bob@%s" % sbnetns.SERVER_IP, seconds=10)
            # the call is answered whatever the media mode (the signalling works behind NAT)
            wait_for(lambda: "confirmed" in cli("call", "list", db=s.db).stdout, 8,
                     "the call confirmed in call list:\n" + s.log_tail(30))
            alice.wait(30)  # alice quits after 10 s: her BYE ends the call
            wait_for(lambda: not [l for l in cli("call", "list", db=s.db).stdout
                                  .splitlines()[1:] if l.strip()], 10,
                     "the call's end after alice hung up")
            bob.proc.terminate()
            bob.wait(10)
            out = {}
            for p, other in ((alice, "bob"), (bob, "alice")):
                samples, rate = p.received()
                far = goertzel(samples, rate, TONE[other])
                own = goertzel(samples, rate, TONE[p.name])
                out[p.name] = (far, own, len(samples) / float(rate))
            return out, s.log_text(), alice.output(), bob.output()
        finally:
            s.stop()


def test_nat_phones_hear_each_other_through_the_relay():
    tmp = tempfile.mkdtemp()
    got, log, a_out, b_out = call(tmp, "nat")
    for name, (far, own, secs) in got.items():
        check(secs > 2.0, "%s received only %.1f s of audio" % (name, secs))
        check(far > 1e5 and far > 20 * own,
              "%s did not hear the far tone (power %.0f at the far frequency, %.0f at its own);"
              "\nserver:\n%s\nalice:\n%s\nbob:\n%s" % (name, far, own, log[-3000:], a_out, b_out))


def test_without_the_relay_nat_phones_hear_nothing():
    tmp = tempfile.mkdtemp()
    got, _log, _a, _b = call(tmp, "never")
    for name, (far, own, secs) in got.items():
        check(far < 1e4, "%s heard the far tone without a relay (power %.0f): the lab leaks"
              % (name, far))


if __name__ == "__main__":
    main(globals())
