#!/usr/bin/env python3
"""include-graph.py - which layer of src/ includes which, and the rule that
lower layers never include higher ones (docs/architecture.md).

Prints the folder-to-folder include graph (with counts), then every include
that points up the layer order. Exits 1 when an upward include is not in
KNOWN_DEBT, or when an entry of KNOWN_DEBT is gone (so the list only
shrinks: delete the entry when you remove the include). Run by ctest
(`ctest -R include-graph`).

Usage: scripts/include-graph.py [SRC_DIR] [--dot]
"""
import os
import re
import sys

# Lowest first. A file may include its own layer and any layer below it.
LAYERS = [
    "core",       # strings, buffers, logs, hashes
    "sip",        # the message model, the parser, the printer
    "store",      # persistent data (SQLite)
    "config",     # the configuration file, read into plain values
    "loop",       # the worker threads' loops and inboxes, the database thread
    "transport",  # UDP/TCP sockets, connections
    "dns",        # RFC 3263 resolution (c-ares)
    "txn",        # RFC 3261 17 transactions
    "request",    # the request API: struct preq, replies, local transactions, waiting
    "dialog",     # dialog state (RFC 3261 12)
    "media",      # SDP, the RTP relay (later: voicemail, conference)
    "services",   # registrar, auth, users, location, presence/IM, dialplan, lists...
    "proxy",      # the pipeline (table of handlers), routing, forwarding
    "server",     # assembles everything: start-up, the handlers' registration, chores
    "api",
    "cli",
]

# Files that live in a folder for history but belong to another layer.
FILE_LAYER = {
    "server/worker.h": "loop",
    "server/worker.c": "loop",
    "server/dbq.h": "loop",
    "server/dbq.c": "loop",
}

# Upward includes that are known and not fixed yet: (file, included header).
# Most are the server object (struct server: the configuration and the shared
# tables) read through w->srv by lower layers; handing each module the handles
# it needs at creation removes them. Do not add to this list.
KNOWN_DEBT = {
    ("config/config.h", "services/dialplan.h"),
    ("config/config.h", "services/lists.h"),
    ("config/config.h", "services/terminal.h"),
    ("server/worker.h", "services/rules.h"),
    ("server/worker.c", "dns/dns.h"),
    ("server/worker.c", "request/overload.h"),
    ("server/worker.c", "server/server.h"),
    ("server/worker.c", "services/auth.h"),
    ("server/worker.c", "transport/tport.h"),
    ("server/worker.c", "txn/txn.h"),
    ("transport/tcp.c", "server/server.h"),
    ("transport/tport.c", "server/server.h"),
    ("transport/udp.c", "server/server.h"),
    ("request/overload.c", "server/server.h"),
    ("request/request.c", "server/server.h"),
    ("services/challenge.c", "server/server.h"),
    ("services/home.c", "server/server.h"),
    ("services/im.c", "server/server.h"),
    ("services/presence.c", "server/server.h"),
    ("services/registrar.c", "server/server.h"),
    ("services/users.c", "server/server.h"),
    ("proxy/callee.c", "server/server.h"),
    ("proxy/core.c", "server/server.h"),
    ("proxy/features.c", "server/server.h"),
    ("proxy/fwd.c", "server/server.h"),
    ("proxy/probe.c", "server/server.h"),
    ("proxy/route.c", "server/server.h"),
}

INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z_]+/[A-Za-z0-9_.]+)"', re.M)


def layer_of(path):
    if path in FILE_LAYER:
        return FILE_LAYER[path]
    return path.split("/", 1)[0]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    src = args[0] if args else os.path.join(os.path.dirname(__file__), "..", "src")
    edges = {}
    upward = []
    seen_debt = set()
    unknown = set()
    for root, _, files in os.walk(src):
        for name in sorted(files):
            if not name.endswith((".c", ".h")):
                continue
            full = os.path.join(root, name)
            rel = os.path.relpath(full, src).replace(os.sep, "/")
            with open(full, encoding="utf-8", errors="replace") as f:
                text = f.read()
            a = layer_of(rel)
            for inc in INCLUDE.findall(text):
                b = layer_of(inc)
                for x in (a, b):
                    if x not in LAYERS:
                        unknown.add(x)
                if a == b or a not in LAYERS or b not in LAYERS:
                    continue
                edges[(a, b)] = edges.get((a, b), 0) + 1
                if LAYERS.index(b) > LAYERS.index(a):
                    if (rel, inc) in KNOWN_DEBT:
                        seen_debt.add((rel, inc))
                    else:
                        upward.append((rel, inc, a, b))
    if "--dot" in sys.argv:
        print("digraph includes {")
        for (a, b), n in sorted(edges.items()):
            print('  "%s" -> "%s" [label=%d];' % (a, b, n))
        print("}")
        return 0
    print("layers, lowest first: " + " < ".join(LAYERS))
    print("\nfolder -> folder (includes)")
    for a in LAYERS:
        outs = ["%s(%d)" % (b, n) for (x, b), n in sorted(edges.items(),
                key=lambda e: LAYERS.index(e[0][1])) if x == a]
        if outs:
            print("  %-10s -> %s" % (a, ", ".join(outs)))
    rc = 0
    if unknown:
        print("\nfolders with no layer (add them to LAYERS): " + ", ".join(sorted(unknown)))
        rc = 1
    print("\nknown upward includes still to remove: %d" % len(seen_debt))
    if upward:
        print("\nNEW upward includes (a lower layer includes a higher one):")
        for rel, inc, a, b in upward:
            print("  %s includes %s  (%s -> %s)" % (rel, inc, a, b))
        rc = 1
    gone = sorted(KNOWN_DEBT - seen_debt)
    if gone:
        print("\nfixed, now delete from KNOWN_DEBT in %s:" % os.path.basename(__file__))
        for rel, inc in gone:
            print("  (%r, %r)," % (rel, inc))
        rc = 1
    print("\n" + ("FAIL" if rc else "OK: no layer includes one above it beyond the known list"))
    return rc


if __name__ == "__main__":
    sys.exit(main())
