#!/usr/bin/env bash
# wzp-relay --metrics: Prometheus text at /metrics on loopback, scraped before,
# during and after real calls through the relay (one kept on the relay, one
# that goes direct). Every scrape passes `promtool check metrics`; the values
# match what the clients report (frames they received all crossed the relay,
# the path each call took) and the relay's own counters (its log line at
# shutdown). A non-loopback --metrics is refused without --metrics-public.
set -uo pipefail
. "$(dirname "$0")/lib/cli.sh"
cli_setup wzp-metrics
command -v promtool >/dev/null || { echo "skip: promtool not installed (scripts/deps installs prometheus)"; exit 77; }
command -v curl >/dev/null || { echo "skip: curl not installed (scripts/deps installs it)"; exit 77; }
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

# --- refused on a public address --------------------------------------------------------
"$RELAY" --listen 127.0.0.1:0 --home "$T/relay" --metrics 0.0.0.0:0 >/dev/null 2>"$T/err"; rc=$?
check "--metrics 0.0.0.0:0 without --metrics-public" 2 $rc; one_line "public metrics refused" "$T/err"

# --- the relay, with metrics ------------------------------------------------------------
"$RELAY" --listen 127.0.0.1:0 --home "$T/relay" --workers 2 --metrics 127.0.0.1:0 -v \
    >"$T/relay.out" 2>&1 &
RELAY_PID=$!
PIDS+=($RELAY_PID)
for _ in $(seq 50); do grep -q fingerprint "$T/relay.out" && break; sleep 0.1; done
RA=$(sed -n 's/.*listening on //p' "$T/relay.out")
RP=$(sed -n 's/.*fingerprint //p' "$T/relay.out")
URL=$(sed -n 's/^wzp-relay: metrics on //p' "$T/relay.out")
[ -n "$RA" ] && [ -n "$RP" ] && [ -n "$URL" ] || { echo "relay did not start"; cat "$T/relay.out"; exit 1; }
case "$URL" in http://127.0.0.1:[0-9]*/metrics) ok "metrics at $URL" ;; *) bad "metrics URL '$URL'" ;; esac

n_scrape=0
scrape() { # -> $T/m.N (N counts up), and $M naming it; promtool must accept it
    n_scrape=$((n_scrape + 1))
    M="$T/m.$n_scrape"
    curl -fsS --max-time 5 -D "$M.hdr" "$URL" >"$M" || { bad "scrape $n_scrape failed"; return; }
    if promtool check metrics <"$M" >"$M.lint" 2>&1; then
        ok "scrape $n_scrape ($1): promtool check metrics passes"
    else
        bad "scrape $n_scrape ($1): promtool:"; cat "$M.lint"
    fi
}
val() { # SERIES [FILE]: the value of one series (name with its labels), as printed
    awk -v s="$1" '$1 == s { print $2 }' "${2:-$M}"
}
want() { # what SERIES OP NUMBER
    local v; v=$(val "$2")
    if [ -n "$v" ] && awk -v a="$v" -v b="$4" -v op="$3" 'BEGIN {
        exit !((op == "=" && a == b) || (op == ">" && a > b) || (op == ">=" && a >= b)) }'; then
        ok "$1: $2 = $v"
    else
        bad "$1: $2 = '${v}', want $3 $4"
    fi
}

scrape "idle"
grep -qi '^content-type: text/plain; version=0.0.4' "$M.hdr" && ok "content type" || { bad "headers:"; cat "$M.hdr"; }
want "idle" wzp_relay_relayed_packets_total = 0
want "idle" wzp_relay_workers = 2
want "idle" wzp_relay_parked = 0
want "idle" 'wzp_relay_park_pings_total{result="ok"}' = 0
want "idle" 'wzp_relay_worker_cpu_seconds_total{worker="1",family="ipv4"}' ">=" 0
code=$(curl -s -o /dev/null -w '%{http_code}' "${URL%/metrics}/other")
[ "$code" = 404 ] && ok "another path is 404" || bad "another path answered $code"

R=(--relay "$RA" --relay-pin "$RP" --no-audio)

# --- call 1: kept on the relay; scraped while it runs ----------------------------------------
"$WZP" listen --once "${R[@]}" --home "$T/a" --alias alice --auto-answer --tone 440 --no-direct \
    --json >"$T/a1.json" 2>"$T/a1.err" &
LP=$!; PIDS+=($LP)
for _ in $(seq 50); do grep -q '"event":"registered"' "$T/a1.json" && break; sleep 0.1; done
"$WZP" call alice "${R[@]}" --home "$T/b" --tone 660 --duration 3 --no-direct --json \
    >"$T/b1.json" 2>"$T/b1.err" &
CP=$!; PIDS+=($CP)
for _ in $(seq 100); do grep -q '"state":"active"' "$T/b1.json" && break; sleep 0.1; done
sleep 1
scrape "during a relayed call"
want "during" 'wzp_relay_calls{state="answered"}' = 1
want "during" wzp_relay_registered_identities = 2
want "during" wzp_relay_relayed_packets_total ">" 0
wait $CP; check "relayed call" 0 $?
wait $LP; check "listener of the relayed call" 0 $?

sleep 0.3 # the control thread publishes at most every 100 ms
scrape "after the relayed call"
want "after 1" 'wzp_relay_calls{state="answered"}' = 0
want "after 1" wzp_relay_calls_answered_total = 1
want "after 1" 'wzp_relay_calls_ended_total{reason="hangup"}' = 1
want "after 1" 'wzp_relay_call_path_reports_total{path="relayed"}' = 1
want "after 1" 'wzp_relay_call_path_reports_total{path="direct"}' = 0
want "after 1" 'wzp_relay_quic_handshakes_total{stage="completed"}' ">=" 2
# Every media frame the clients received crossed the relay: it relayed at least that many.
received=0
for f in "$T/a1.json" "$T/b1.json"; do
    r=$(grep '"event":"summary"' "$f" | sed -n 's/.*"frames_received":\([0-9]*\).*/\1/p')
    [ -n "$r" ] || { bad "no summary in $f"; cat "$f"; r=0; }
    received=$((received + r))
done
[ "$received" -gt 100 ] && ok "the clients received $received frames" || bad "clients received $received frames"
want "after 1" wzp_relay_relayed_packets_total ">=" "$received"
pk=$(val wzp_relay_relayed_packets_total); by=$(val wzp_relay_relayed_bytes_total)
[ "$by" -gt "$pk" ] && ok "relayed bytes $by > packets $pk" || bad "relayed bytes $by, packets $pk"
# The workers' shares add up to the total.
sum=$(awk '/^wzp_relay_worker_relayed_packets_total\{/ { s += $2 } END { print s + 0 }' "$M")
[ "$sum" = "$pk" ] && ok "per-worker relayed packets add up ($sum)" || bad "workers sum $sum != $pk"

# --- call 2: goes direct ---------------------------------------------------------------------
"$WZP" listen --once "${R[@]}" --home "$T/a" --alias alice --auto-answer --tone 440 \
    --loopback-candidates --json >"$T/a2.json" 2>"$T/a2.err" &
LP=$!; PIDS+=($LP)
for _ in $(seq 50); do grep -q '"event":"registered"' "$T/a2.json" && break; sleep 0.1; done
"$WZP" call alice "${R[@]}" --home "$T/b" --tone 660 --duration 3 --loopback-candidates --json \
    >"$T/b2.json" 2>"$T/b2.err"; check "direct call" 0 $?
wait $LP; check "listener of the direct call" 0 $?
sleep 0.3
scrape "after the direct call"
if grep '"event":"summary"' "$T/b2.json" | grep -q '"time_to_direct_ms":[0-9]'; then
    want "after 2" 'wzp_relay_call_path_reports_total{path="direct"}' = 1
    want "after 2" wzp_relay_calls_direct_ratio = 0.5
else
    bad "the second call never went direct: $(grep summary "$T/b2.json")"
fi
want "after 2" wzp_relay_calls_answered_total = 2
last="$M"

# --- the relay's own counters, as it logs them at shutdown -----------------------------------------
kill -TERM $RELAY_PID; wait $RELAY_PID; check "relay stopped" 0 $?
line=$(grep 'relay: stopping;' "$T/relay.out")
fwd=$(printf '%s\n' "$line" | sed -n 's/.* \([0-9]*\) frames forwarded (\([0-9]*\) bytes).*/\1/p')
fwdb=$(printf '%s\n' "$line" | sed -n 's/.* frames forwarded (\([0-9]*\) bytes).*/\1/p')
[ -n "$fwd" ] || bad "no stop line in the relay's log: $(cat "$T/relay.out")"
[ "$fwd" = "$(val wzp_relay_relayed_packets_total "$last")" ] &&
    ok "last scrape's relayed packets = the relay's count at shutdown ($fwd)" ||
    bad "relay counted $fwd relayed, the last scrape $(val wzp_relay_relayed_packets_total "$last")"
[ "$fwdb" = "$(val wzp_relay_relayed_bytes_total "$last")" ] &&
    ok "relayed bytes match too ($fwdb)" || bad "relay counted $fwdb bytes, scrape $(val wzp_relay_relayed_bytes_total "$last")"
exit $fail
