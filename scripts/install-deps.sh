#!/bin/sh
# install-deps.sh - installs the Debian packages Switchboard builds and tests
# with, only those that are missing, so `make run` and `make test` work on a
# fresh Debian 12 machine. Needs root (or sudo).
#   scripts/install-deps.sh          build + test dependencies
#   scripts/install-deps.sh bench    and the benchmark's (Kamailio, gnuplot)
set -eu

BUILD="build-essential cmake pkg-config clang libclang-rt-14-dev
libevent-dev libc-ares-dev libsqlite3-dev libyaml-dev libssl-dev libjansson-dev
libxml2-dev libcmocka-dev libspandsp-dev libsndfile1-dev sqlite3 python3"
TEST="espeak-ng sox sip-tester sipsak baresip libnet-sip-perl dnsmasq-base procps iproute2 python3-lxml sipvicious
nftables"
BENCH="kamailio kamailio-sqlite-modules gnuplot-nox tcpdump"

want="$BUILD $TEST"
[ "${1:-}" = "bench" ] && want="$want $BENCH"

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0

echo "installing:$missing"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
# Debian starts kamailio and dnsmasq as services on install; they would hold
# the ports the tests and the benchmark use.
for svc in kamailio dnsmasq; do
	if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl disable --now "$svc" >/dev/null 2>&1 || true; fi
	$SUDO pkill -x "$svc" >/dev/null 2>&1 || true
done
