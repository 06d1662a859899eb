"""sbnetns - phones behind NAT routers, in network namespaces the test creates.

A NatLab builds, with names unique to the run (the pid and a random tag), so
two runs never clash:

    phone ns "a"  192.168.1.2/24 --- 192.168.1.1  router ns "ra"  100.64.1.2 ---.
                                                   (masquerade)                  |
    phone ns "b"  192.168.2.2/24 --- 192.168.2.1  router ns "rb"  100.64.2.2 ---+-- server ns "srv"
                                                   (masquerade)                     100.64.1.1, 100.64.2.1
                                                                                    SERVER_IP 100.64.0.1 (lo)

Public-side addresses are in 100.64.0.0/10 (RFC 6598 shared space: never a
routed Internet address) and nothing has a default route out of the lab: the
server namespace knows only its two links, so a request the server sends to a
private address fails there (ENETUNREACH) instead of leaving the machine. The
routers masquerade with nftables (Debian's nftables package,
scripts/install-deps.sh) and their UDP conntrack timeouts can be shortened
(set_udp_timeout) to show a binding expire.

Everything is torn down by close(), which the context manager, atexit and
SIGTERM/SIGINT handlers call: a failed test leaves no namespace behind.

run(ns, cmd) runs a command inside a namespace; popen() starts one in the
background (SIPp, baresip: a relay test reuses the lab with its phones in
"a" and "b"); Server (a subclass of sbtest.Server) runs the real binary in
"srv", bound to SERVER_IP.
"""

import atexit
import os
import random
import signal
import subprocess
import time

import sbtest

SERVER_IP = "100.64.0.1"
PHONE_IP = {"a": "192.168.1.2", "b": "192.168.2.2"}
PUBLIC_IP = {"a": "100.64.1.2", "b": "100.64.2.2"}  # each router's public side

_LABS = []


def _sh(cmd, check=True):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    if check and p.returncode != 0:
        raise sbtest.TestFailure("%s -> %d: %s" % (" ".join(cmd), p.returncode, p.stderr))
    return p


def _cleanup_all(*_):
    for lab in list(_LABS):
        lab.close()


atexit.register(_cleanup_all)


def _on_signal(signum, frame):
    _cleanup_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


for _s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(_s, _on_signal)


class NatLab:
    def __init__(self):
        tag = "sb%d%04x" % (os.getpid() % 100000, random.getrandbits(16))
        self.ns = {k: "%s-%s" % (tag, k) for k in ("srv", "ra", "rb", "a", "b")}
        self.procs = []
        self.closed = False

    # --- building
    def _ip(self, ns, *args):
        return _sh(["ip", "-n", self.ns[ns]] + list(args))

    def _link(self, ns1, if1, ns2, if2):
        _sh(["ip", "-n", self.ns[ns1], "link", "add", if1, "type", "veth", "peer", "name", if2,
             "netns", self.ns[ns2]])
        self._ip(ns1, "link", "set", if1, "up")
        self._ip(ns2, "link", "set", if2, "up")

    def open(self):
        sbtest.need("nft")
        _LABS.append(self)
        try:
            for name in self.ns.values():
                _sh(["ip", "netns", "add", name])
            for k in self.ns:
                self._ip(k, "link", "set", "lo", "up")
            self._ip("srv", "addr", "add", SERVER_IP + "/32", "dev", "lo")
            for side, n in (("a", 1), ("b", 2)):
                r = "r" + side
                self._link("srv", "to" + side, r, "wan")
                self._ip("srv", "addr", "add", "100.64.%d.1/24" % n, "dev", "to" + side)
                self._ip(r, "addr", "add", "100.64.%d.2/24" % n, "dev", "wan")
                self._ip(r, "route", "add", "default", "via", "100.64.%d.1" % n)
                self._link(r, "lan", side, "eth0")
                self._ip(r, "addr", "add", "192.168.%d.1/24" % n, "dev", "lan")
                self._ip(side, "addr", "add", PHONE_IP[side] + "/24", "dev", "eth0")
                self._ip(side, "route", "add", "default", "via", "192.168.%d.1" % n)
                self.run(r, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
                self.run(r, ["nft", "add table ip nat"])
                self.run(r, ["nft", "add chain ip nat post { type nat hook postrouting "
                                    "priority 100 ; }"])
                self.run(r, ["nft", "add rule ip nat post oifname wan masquerade"])
        except Exception:
            self.close()
            raise
        return self

    def __enter__(self):
        return self.open()

    def __exit__(self, *exc):
        self.close()

    # --- using
    def cmd(self, ns, cmd):
        return ["ip", "netns", "exec", self.ns[ns]] + [str(c) for c in cmd]

    def run(self, ns, cmd, check=True, timeout=60):
        p = subprocess.run(self.cmd(ns, cmd), capture_output=True, text=True, timeout=timeout)
        if check and p.returncode != 0:
            raise sbtest.TestFailure("in %s: %s -> %d: %s%s" % (ns, " ".join(map(str, cmd)),
                                                                p.returncode, p.stdout, p.stderr))
        return p

    def popen(self, ns, cmd, **kw):
        p = subprocess.Popen(self.cmd(ns, cmd), **kw)
        self.procs.append(p)
        return p

    def set_udp_timeout(self, router, secs):
        """The UDP conntrack timeouts of a router namespace ("ra" or "rb")."""
        for key in ("nf_conntrack_udp_timeout", "nf_conntrack_udp_timeout_stream"):
            self.run(router, ["sysctl", "-qw", "net.netfilter.%s=%d" % (key, secs)])

    def conntrack_udp(self, router):
        """The router's UDP NAT bindings (lines of /proc/net/nf_conntrack), [] when unknown."""
        p = self.run(router, ["cat", "/proc/net/nf_conntrack"], check=False)
        return [l for l in p.stdout.splitlines() if " udp " in l]

    def close(self):
        if self.closed:
            return
        self.closed = True
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        for name in self.ns.values():
            # processes left in a namespace (none should be) would keep it alive
            _sh(["ip", "netns", "pids", name], check=False)
            _sh(["ip", "netns", "del", name], check=False)
        if self in _LABS:
            _LABS.remove(self)


class Server(sbtest.Server):
    """The real binary in the lab's server namespace, on SERVER_IP."""

    def __init__(self, lab, **kw):
        super().__init__(**kw)
        self.lab = lab

    @property
    def addr(self):
        return (SERVER_IP, self.port)

    @property
    def host(self):
        return "%s:%d" % (SERVER_IP, self.port)

    def start(self):
        cmd = self.lab.cmd("srv", [sbtest.BIN, "serve", "--db", self.db, "--workers",
                                   str(self.workers), "--listen", "udp:%s:%d" % self.addr,
                                   "--listen", "tcp:%s:%d" % self.addr, "--log-level", "debug",
                                   "--domain", SERVER_IP])
        if self.config:
            cmd[6:6] = ["-c", self.config]
        for d in self.domains:
            cmd += ["--domain", d]
        cmd += self.extra
        self.log = open(self.log_path, "ab")
        # ip netns exec execs the binary: the pid is the server's, signals reach it
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 15
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise sbtest.TestFailure("server exited at start (%d): %s" %
                                         (self.proc.returncode, self.log_tail()))
            if self.ping():
                return self
            time.sleep(0.1)
        raise sbtest.TestFailure("server did not answer OPTIONS: " + self.log_tail())

    def ping(self, timeout=0.3):
        p = self.lab.run("srv", ["sipsak", "-s", "sip:%s" % self.host, "-H", SERVER_IP],
                         check=False, timeout=10)
        return p.returncode == 0
