#!/bin/sh
# run.sh - what `make bench` runs: the whole benchmark, Switchboard (one and
# two workers) and Kamailio side by side, then docs/benchmarks.md and plots.
# Takes about an hour; see bench/sbbench.py for the parts and settings.
set -eu
cd "$(dirname "$0")"
[ "$(id -u)" -eq 0 ] || { echo "run as root (tcpdump, taskset)"; exit 1; }
exec python3 sbbench.py "${1:-all}"
