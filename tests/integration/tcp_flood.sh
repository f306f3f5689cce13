#!/usr/bin/env bash
# A relay under a TCP connection flood keeps forwarding the calls it carries: two
# relayed calls (one over UDP, one over TLS-on-TCP) run while tests/support/tcp_flood.py
# opens 40 x 20 connections from 40 loopback addresses for 8 s (idle ones, slow-loris
# ClientHellos, full TLS handshakes left idle). Each call must still get >= 95 % of its
# frames; the relay's own counters show the address cap refusing and the handshake
# deadline closing the slow ones.
set -uo pipefail
. "$(dirname "$0")/lib/cli.sh"
command -v python3 >/dev/null || { echo "skip: python3 not installed"; exit 77; }
cli_setup wzp-flood
FLOOD="$(dirname "$0")/../support/tcp_flood.py"

"$RELAY" --listen 127.0.0.1:0 --home "$T/relay" --workers 1 -v >"$T/relay.out" 2>&1 &
RELAY_PID=$!; PIDS+=($RELAY_PID)
for _ in $(seq 50); do grep -q "^wzp-relay: tcp" "$T/relay.out" && break; sleep 0.1; done
RA=$(sed -n 's/.*listening on //p' "$T/relay.out")
RP=$(sed -n 's/.*fingerprint //p' "$T/relay.out")
RT=$(sed -n 's/^wzp-relay: tcp .*://p' "$T/relay.out")
[ -n "$RA" ] && [ -n "$RP" ] && [ -n "$RT" ] || { echo "FAIL relay did not start:"; cat "$T/relay.out"; exit 1; }
R=(--relay "$RA" --relay-pin "$RP" --relay-tcp "$RT")
L=(--loopback-candidates --no-audio --no-direct)

# frames NAME FILE: the summary's frames_received is >= 95 % of frames_sent (and > 100).
frames() {
    local s r
    s=$(sed -n 's/.*"event":"summary".*"frames_sent":\([0-9]*\).*/\1/p' "$2")
    r=$(sed -n 's/.*"event":"summary".*"frames_received":\([0-9]*\).*/\1/p' "$2")
    if [ -n "$s" ] && [ -n "$r" ] && [ "$s" -gt 100 ] && [ $((r * 100)) -ge $((s * 95)) ]; then
        echo "ok   $1: $r of $s frames"
    else echo "FAIL $1: frames sent '$s' received '$r':"; cat "$2"; fail=1; fi
}

# Two listeners (bob over UDP, dave over TCP), then the flood, then the calls into it.
LISTENERS=()
for who in bob:udp dave:tcp; do
    n=${who%%:*}; tr=${who##*:}
    timeout 60 "$WZP" listen "${R[@]}" "${L[@]}" --relay-transport "$tr" --home "$T/$n" --alias "$n" \
        --auto-answer --once --json >"$T/$n.json" 2>"$T/$n.err" &
    PIDS+=($!); LISTENERS+=($!)
done
for _ in $(seq 50); do grep -q registered "$T/bob.json" && grep -q registered "$T/dave.json" && break; sleep 0.1; done
python3 "$FLOOD" 127.0.0.1 "$RT" 8 40 20 >"$T/flood.out" 2>&1 &
FP=$!; PIDS+=($FP)
sleep 1 # the flood is on
timeout 40 "$WZP" call bob "${R[@]}" "${L[@]}" --relay-transport udp --home "$T/alice" --duration 5 --tone 440 \
    --json >"$T/alice.json" 2>"$T/alice.err" &
A=$!; PIDS+=($A)
timeout 40 "$WZP" call dave "${R[@]}" "${L[@]}" --relay-transport tcp --home "$T/carol" --duration 5 --tone 660 \
    --json >"$T/carol.json" 2>"$T/carol.err" &
C=$!; PIDS+=($C)
wait $A; check "the UDP call under the flood" 0 $?
wait $C; check "the TCP call under the flood" 0 $?
for p in "${LISTENERS[@]}"; do wait "$p"; done # their summaries are written as they exit
frames "alice hears bob (UDP)" "$T/alice.json"
frames "bob hears alice (UDP)" "$T/bob.json"
frames "carol hears dave (TCP)" "$T/carol.json"
frames "dave hears carol (TCP)" "$T/dave.json"
wait $FP
echo "     flood: $(cat "$T/flood.out")"
kill -INT $RELAY_PID; wait $RELAY_PID 2>/dev/null
line=$(grep "relay: tcp:" "$T/relay.out")
echo "     relay: ${line#*relay: tcp: }"
cap=$(echo "$line" | sed -n 's/.* \([0-9]*\) refused (address cap).*/\1/p')
hs=$(echo "$line" | sed -n 's/.* \([0-9]*\) handshake timeouts.*/\1/p')
[ "${cap:-0}" -gt 0 ] && echo "ok   the per-address cap refused $cap connections" \
    || { echo "FAIL no connection refused by the address cap: $line"; fail=1; }
[ "${hs:-0}" -gt 0 ] && echo "ok   the handshake deadline closed $hs slow connections" \
    || { echo "FAIL no handshake timeout: $line"; fail=1; }
exit $fail
