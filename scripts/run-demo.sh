#!/bin/sh
# run-demo.sh - what `make run` does: a demo database with three users, then
# the server in the foreground with the sample configuration (SQLite,
# 127.0.0.1:5060 over UDP and TCP).
set -eu
cd "$(dirname "$0")/.."
BIN=build/switchboard
CONF=config/switchboard.yaml
DB=$(sed -n 's/^[[:space:]]*path:[[:space:]]*//p' "$CONF" | head -1)
DB=${DB:-var/switchboard.db}

for u in alice:alice123 bob:bob123 carol:carol123; do
	user=${u%%:*}; pw=${u#*:}
	$BIN user add "$user@127.0.0.1" --password "$pw" -c "$CONF" 2>/dev/null || true
done

cat <<MSG

  Switchboard is starting on 127.0.0.1:5060 (UDP and TCP), database $DB.

  Demo accounts (domain 127.0.0.1):   alice / alice123   bob / bob123   carol / carol123

  Point a softphone at it, for example baresip:
      baresip -e '/uanew sip:alice@127.0.0.1;auth_pass=alice123'
  or in any softphone: SIP server / registrar 127.0.0.1, port 5060, user alice,
  password alice123, domain 127.0.0.1. Register a second phone as bob and call
  sip:bob@127.0.0.1.

  Manage users:  $BIN user add NAME@127.0.0.1 --password PW -c $CONF
  See phones:    $BIN reg list -c $CONF
  Stop:          Ctrl-C

MSG
exec $BIN serve -c "$CONF"
