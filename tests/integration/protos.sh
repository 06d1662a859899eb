#!/bin/sh
# protos.sh - runs (a slice of) the PROTOS c07-sip test suite against the server.
#
# Opt-in, not part of `make test`: the suite's jar is not in the repository
# (GPLv2, 2.2 MB; see /work/shared/conformance/SOURCES.md) and a full run takes
# about 70 minutes (0.9 s a case with the teardown and the valid case). It needs
# java (OpenJDK 17 works).
#
#   tests/integration/protos.sh [-b BINARY] [-j JAR] [-s START] [-e STOP]
#                               [-d DELAY_MS] [-w REPLYWAIT_MS]
#
# Defaults: the AddressSanitizer build (build-asan/switchboard), the jar at
# $PROTOS_JAR or /work/shared/conformance/protos/c07-sip-r2.jar, cases 1..4526,
# 100 ms delay and 100 ms reply wait.
#
# The 4526 malformed INVITEs (case #0 is the valid one) go over UDP to
# sip:bob@127.0.0.1, a provisioned user with no registration, so a well-formed
# case is answered 480 by the location service; the From is in a foreign domain
# (192.0.2.99) so that no case is stopped by the 407 challenge before routing.
# Replies still come back: the server answers the source address (RFC 3261
# 18.2.2), at the Via's port, which is PROTOS's -lport. After each case the
# valid case is sent again (-validcase) and a CANCEL/ACK tear the call down.
#
# Prints what the server answered to the cases (status and count). Fails
# (exit 1) when a case is followed by "No reply to valid-case", when the tool
# stopped early, when the server is not running at the end, or when it does not
# stop cleanly (exit code, sanitizer report). Exit 77 when java or the jar is missing.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
BIN=${SB_BIN:-$SRC/build-asan/switchboard}
JAR=${PROTOS_JAR:-/work/shared/conformance/protos/c07-sip-r2.jar}
START=1
STOP=4526
DELAY=100
WAIT=100

while getopts b:j:s:e:d:w:h opt; do
	case $opt in
	b) BIN=$OPTARG ;;
	j) JAR=$OPTARG ;;
	s) START=$OPTARG ;;
	e) STOP=$OPTARG ;;
	d) DELAY=$OPTARG ;;
	w) WAIT=$OPTARG ;;
	*) sed -n '2,/^set -u/p' "$0" | sed '$d'; exit 2 ;;
	esac
done

if ! command -v java >/dev/null 2>&1; then
	echo "protos.sh: skipped: java is not installed" >&2
	exit 77
fi
if [ ! -f "$JAR" ]; then
	echo "protos.sh: skipped: no PROTOS jar at $JAR (set PROTOS_JAR or use -j)" >&2
	exit 77
fi
if [ ! -x "$BIN" ]; then
	echo "protos.sh: no server binary at $BIN (build it, or use -b)" >&2
	exit 2
fi

TMP=$(mktemp -d /tmp/sbprotos-XXXXXX)
# two free ports: the server's (UDP and TCP) and PROTOS's local one
set -- $(python3 - <<'EOF'
import random, socket
out = []
while len(out) < 2:
    p = random.randint(20000, 60000)
    try:
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", p))
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM); t.bind(("127.0.0.1", p))
        u.close(); t.close()
        if p not in out:
            out.append(p)
    except OSError:
        pass
print(*out)
EOF
)
PORT=$1
LPORT=$2
DB=$TMP/switchboard.db
LOG=$TMP/server.log
OUT=$TMP/protos.log

"$BIN" user add bob@127.0.0.1 --password protos --db "$DB" >/dev/null || exit 1
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
	"$BIN" serve --db "$DB" --workers 2 --listen "udp:127.0.0.1:$PORT" --listen "tcp:127.0.0.1:$PORT" \
	--log-level info >"$LOG" 2>&1 &
PID=$!
sleep 1
if ! kill -0 $PID 2>/dev/null; then
	echo "protos.sh: the server did not start:" >&2
	cat "$LOG" >&2
	exit 1
fi

echo "protos.sh: cases $START..$STOP against $BIN (pid $PID) on 127.0.0.1:$PORT; logs in $TMP"
# The 2003 tool turns its test cases' bytes into Java Strings and back with the default
# charset: under a UTF-8 locale every octet above 0x7f is mangled (U+FFFD), some case files no
# longer parse ("Internal error, invalid test case file") and some grow past a datagram
# ("Message too long", StringIndexOutOfBoundsException in SIPBugCat.limit), and the tool stops.
# ISO-8859-1 maps bytes to chars one to one, so the cases go out byte for byte. Should the
# tool still stop on a case, it is recorded as not sent and the run resumes after it.
T0=$(date +%s)
: >"$OUT"
: >"$TMP/unsent"
next=$START
upto=$((START - 1))
JRC=0
while [ "$next" -le "$STOP" ]; do
	java -Dfile.encoding=ISO-8859-1 -jar "$JAR" -touri bob@127.0.0.1 -fromuri protos@192.0.2.99 -dport "$PORT" -lport "$LPORT" \
		-teardown -validcase -delay "$DELAY" -replywait "$WAIT" -start "$next" -stop "$STOP" \
		>"$TMP/part" 2>&1
	JRC=$?
	cat "$TMP/part" >>"$OUT"
	last=$(grep "^Sending Test-Case #" "$TMP/part" | tail -1 | sed 's/.*#//')
	[ -n "$last" ] && upto=$last
	bad=$(sed -n "s/.*invalid test case file 'testcases\/0*\([0-9][0-9]*\)'.*/\1/p" "$TMP/part" | head -1)
	if [ -z "$bad" ] && grep -q "Exception" "$TMP/part"; then
		if grep -q "SIPBugCat.send" "$TMP/part" && [ -n "$last" ]; then
			bad=$last # failed sending the case it announced
		else
			bad=$((${last:-$((next - 1))} + 1)) # failed preparing the next one
		fi
	fi
	[ -n "$bad" ] || break
	echo "#$bad: $(grep -m1 "Exception" "$TMP/part")" >>"$TMP/unsent"
	upto=$bad
	next=$((bad + 1))
	kill -0 $PID 2>/dev/null || break
done
T1=$(date +%s)

fail=0
noreply=$(grep -c "No reply to valid-case" "$OUT")
unsent=$(wc -l <"$TMP/unsent")
# cases announced ("Sending Test-Case #N") and not among those the tool failed to send
sed 's/^#\([0-9]*\):.*/\1/' "$TMP/unsent" >"$TMP/unsent.n"
sent=$(grep "^Sending Test-Case #" "$OUT" | sed 's/.*#//' | sort -un | grep -cvxFf "$TMP/unsent.n")
echo "protos.sh: $sent cases sent (up to #$upto) in $((T1 - T0)) s," \
	"$unsent the tool could not send, $noreply without a reply to the valid case"
# what the server answered to each malformed case (before the teardown): status or none
echo "protos.sh: answers to the cases: $(awk '
	/^Sending Test-Case #/ { if (c) n[r ? r : "none"]++; c = 1; r = ""; want = 1; next }
	/^Sending valid-case/ { if (c) n[r ? r : "none"]++; c = 0; want = 0; next }
	/^ Sending CANCEL/ { want = 0 }
	want && /Received Returncode:/ && !r { r = $3 }
	END { if (c) n[r ? r : "none"]++; for (k in n) printf "%s %d, ", k, n[k] }' "$OUT" | sed 's/, $//')"
if [ "$unsent" -gt 0 ]; then
	echo "protos.sh: not sent by the tool:"
	cat "$TMP/unsent"
fi
if [ "$upto" -ne "$STOP" ]; then
	echo "protos.sh: PROTOS stopped early (exit $JRC, at #$upto):"
	tail -5 "$TMP/part"
	fail=1
fi
if [ "$noreply" -gt 0 ]; then
	grep "No reply to valid-case" "$OUT" | head -50
	fail=1
fi
if ! kill -0 $PID 2>/dev/null; then
	wait $PID
	echo "protos.sh: the server is gone (exit $?):"
	tail -60 "$LOG"
	exit 1
fi
kill -TERM $PID
wait $PID
RC=$?
if [ $RC -ne 0 ]; then
	echo "protos.sh: the server exited with $RC"
	fail=1
fi
if grep -q "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$LOG"; then
	echo "protos.sh: sanitizer report:"
	grep -B2 -A30 "ERROR: AddressSanitizer\|runtime error:\|LeakSanitizer" "$LOG" | head -80
	fail=1
fi
[ $fail -eq 0 ] && echo "protos.sh: passed"
exit $fail
