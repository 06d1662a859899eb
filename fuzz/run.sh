#!/bin/sh
# run.sh BUILD_DIR SECONDS - runs every libFuzzer target for SECONDS each,
# seeded with the RFC 4475/5118 torture messages and the corpus here. A crash,
# a leak or a sanitizer report fails the run (non-zero exit).
set -eu
BUILD=$(cd "$1" && pwd)
SECS=${2:-30}
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

mkdir -p "$WORK/sip" "$WORK/auth" "$WORK/config" "$WORK/settings" "$WORK/pidf" "$WORK/dptext" \
	"$WORK/tcp_stream" "$WORK/branch" "$WORK/flood" "$WORK/dialog" "$WORK/sdp" "$WORK/cdr" "$WORK/dtmf"
cp "$HERE"/../tests/conformance/rfc4475/*.dat "$HERE"/../tests/conformance/rfc5118/wire/* "$WORK/sip/"
cp "$HERE"/corpus/sip/* "$WORK/sip/"
cp "$HERE"/corpus/auth/* "$WORK/auth/"
cp "$HERE"/corpus/config/* "$WORK/config/"
cp "$HERE"/corpus/settings/* "$WORK/settings/"
cp "$HERE"/corpus/pidf/* "$WORK/pidf/"
cp "$HERE"/corpus/dptext/* "$WORK/dptext/"
cp "$HERE"/corpus/fuzz_tcp_stream/* "$WORK/tcp_stream/"
cp "$HERE"/corpus/branch/* "$WORK/branch/"
cp "$HERE"/corpus/flood/* "$WORK/flood/"
cp "$HERE"/corpus/dialog/* "$WORK/dialog/"
cp "$HERE"/corpus/sdp/* "$WORK/sdp/"
cp "$HERE"/corpus/cdr/* "$WORK/cdr/"
cp "$HERE"/corpus/dtmf/* "$WORK/dtmf/"

for target in sip_parse:sip auth_cred:auth config:config settings:settings pidf:pidf dptext:dptext \
	tcp_stream:tcp_stream branch:branch flood:flood dialog:dialog sdp:sdp cdr:cdr dtmf:dtmf; do
	name=${target%%:*}
	corpus=${target#*:}
	bin="$BUILD/fuzz_$name"
	[ -x "$bin" ] || { echo "missing $bin"; exit 1; }
	echo "fuzz_$name: $SECS s"
	if ! (cd "$WORK" && "$bin" -max_total_time="$SECS" -max_len=8192 -timeout=5 -rss_limit_mb=2048 \
		-print_final_stats=1 "$WORK/$corpus" >"$WORK/$name.log" 2>&1); then
		tail -n 60 "$WORK/$name.log"
		echo "fuzz_$name FAILED"
		exit 1
	fi
	grep -E "stat::number_of_executed_units|Done [0-9]+ runs" "$WORK/$name.log" | tail -n 2
done
echo "fuzzing: no crash, leak or sanitizer report"
