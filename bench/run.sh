#!/bin/sh
# run.sh - what `make bench` runs: the whole benchmark, Switchboard (one and
# two workers) and Kamailio side by side, then docs/benchmarks.md and plots,
# then the IM broker's deliveries per second (bench/fanout.py).
# Takes about an hour; see bench/sbbench.py for the parts and settings.
set -eu
cd "$(dirname "$0")"
[ "$(id -u)" -eq 0 ] || { echo "run as root (tcpdump, taskset)"; exit 1; }
python3 sbbench.py "${1:-all}"
# the IM broker's fan-out: 1,000 members, 50 posts (not part of the Kamailio comparison)
ulimit -n 8192
python3 fanout.py 1000 50
