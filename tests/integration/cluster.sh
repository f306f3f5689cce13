#!/usr/bin/env bash
# A relay cluster on loopback (docs/cluster.md): our own redis-server (unix socket,
# password) and three relays. Keys registered on different relays call each other
# (offer, ringing, answer, relayed media through both relays, hang-up); one alias is one
# key cluster-wide; a key that registers on another relay is dropped by the first; and
# when Redis stops, a call in progress goes on, each relay serves its own clients, a
# call across relays fails with a clear error, and all of it comes back with Redis.
set -uo pipefail
. "$(dirname "$0")/lib/cli.sh"
. "$(dirname "$0")/lib/cluster.sh"
cli_setup wzp-cluster

redis_start
cluster_relay 1 --metrics 127.0.0.1:0 ${CLUSTER_RELAY_ARGS:-}
cluster_relay 2 ${CLUSTER_RELAY_ARGS:-}
cluster_relay 3 ${CLUSTER_RELAY_ARGS:-}
echo "ok   redis-server and three relays up"

# call N NAME CALLEE SECONDS: "wzp call" as NAME from relay N; events in T/NAME.json.
call() {
    # shellcheck disable=SC2046
    "$WZP" call "$3" $(relay_args "$1") --home "$T/$2" --tone 660 --json --duration "$4" \
        >"$T/$2.json" 2>"$T/$2.err"
}
relayed() { # name file: the call's media went through the relay
    grep -q '"event":"summary","path":"relay"' "$2" && echo "ok   $1: media relayed" \
        || { echo "FAIL $1: no relayed path in $2:"; cat "$2"; fail=1; }
}

# --- across relays: alice on 1 calls bob on 2 by alias, and hangs up --------------------------
listener 2 bob bob
call 1 alice bob 2; rc=$?
check "alice (relay 1) calls bob (relay 2)" 0 $rc
[ $rc = 0 ] || { cat "$T/alice.err"; tail -20 "$T"/r1.out "$T"/r2.out; }
relayed "alice -> bob" "$T/alice.json"
wait "$LPID"; rc=$?
check "bob's call ended with alice's hang-up" 0 $rc
has "bob received audio" "$T/bob.json" '"frames_received":[1-9]'
has "alice received audio" "$T/alice.json" '"frames_received":[1-9]'

# by fingerprint, from relay 3 to a listener on relay 1
listener 1 dave dave
DAVE_FP=$("$WZP" id --home "$T/dave" 2>/dev/null)
call 3 erin "$DAVE_FP" 2; rc=$?
check "erin (relay 3) calls dave (relay 1) by fingerprint" 0 $rc
wait "$LPID"

# --- one alias, one key, cluster-wide -------------------------------------------------------------
listener 2 bob bob # bob holds "bob" (registered on relay 2)
# shellcheck disable=SC2046
"$WZP" listen $(relay_args 3) --home "$T/mallory" --alias bob --once --json \
    >"$T/mallory.json" 2>"$T/mallory.err"; rc=$?
[ $rc != 0 ] && grep -qi "alias" "$T/mallory.err" && echo "ok   another key cannot take 'bob' on relay 3 (exit $rc): $(cat "$T/mallory.err")" \
    || { echo "FAIL alias conflict across relays: exit $rc"; cat "$T/mallory.err"; fail=1; }
kill "$LPID" 2>/dev/null; wait "$LPID" 2>/dev/null

# --- the same key on another relay: the first relay lets its connection go --------------------
listener 1 frank frank
FRANK1=$LPID
listener 3 frank frank
FRANK3=$LPID
for _ in $(seq 50); do kill -0 "$FRANK1" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$FRANK1" 2>/dev/null; then echo "FAIL frank's first registration (relay 1) still runs"; fail=1
else echo "ok   frank registering on relay 3 replaced his registration on relay 1"; fi
call 2 gina frank 1; rc=$?
check "gina (relay 2) reaches frank on relay 3" 0 $rc
wait "$FRANK3" 2>/dev/null

# --- Redis goes away ----------------------------------------------------------------------------------
listener 2 bob bob
# shellcheck disable=SC2046
"$WZP" call bob $(relay_args 1) --home "$T/alice" --tone 660 --json --duration 6 \
    >"$T/long.json" 2>"$T/long.err" &
LONG=$!
PIDS+=($LONG)
for _ in $(seq 50); do grep -q '"event":"path"' "$T/long.json" && break; sleep 0.1; done
redis_stop
echo "ok   redis-server stopped during a cross-relay call"
wait "$LONG"; rc=$?
check "the call in progress went on to its end" 0 $rc
[ $rc = 0 ] || { cat "$T/long.err"; tail -30 "$T"/r1.out "$T"/r2.out; }
has "its media kept flowing" "$T/long.json" '"frames_received":[1-9]'
wait "$LPID"

# across relays now: a clear error, at once
listener 2 bob bob
call 1 alice bob 1; rc=$?
[ $rc != 0 ] && grep -q "cluster store unreachable" "$T/alice.err" \
    && echo "ok   cross-relay call without Redis fails clearly (exit $rc): $(cat "$T/alice.err")" \
    || { echo "FAIL cross-relay call without Redis: exit $rc"; cat "$T/alice.err"; fail=1; }
kill "$LPID" 2>/dev/null; wait "$LPID" 2>/dev/null
# each relay serves its own: a call within relay 1, a registration that keeps its alias
listener 1 dave dave
call 1 erin dave 1; rc=$?
check "a call within relay 1 without Redis" 0 $rc
[ $rc = 0 ] || { cat "$T/erin.err" "$T/dave.json"; grep -v "call \[" "$T/r1.out" | tail -n 30; }
wait "$LPID"

# Redis is back (empty: no persistence): the relays reconnect and publish again
redis_start
listener 2 bob bob
ok_back=1
for _ in $(seq 30); do
    call 1 alice bob 1 && { ok_back=0; break; }
    sleep 0.5
done
check "cross-relay calls work again once Redis is back" 0 $ok_back
wait "$LPID" 2>/dev/null

# --- a relay dies (kill -9) before its entries expire: its callees are offline at once ----
listener 3 carol carol
kill -9 "$RPID_3"
wait "$RPID_3" 2>/dev/null
t0=$(date +%s%N)
call 1 alice carol 1; rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
[ $rc = 6 ] && [ $ms -lt 10000 ] && echo "ok   a callee on a dead relay is offline at once (exit 6, $ms ms): $(cat "$T/alice.err")" \
    || { echo "FAIL callee on a killed relay: exit $rc after $ms ms"; cat "$T/alice.err"; fail=1; }
kill "$LPID" 2>/dev/null; wait "$LPID" 2>/dev/null

# relay 1's metrics tell the story
M=$(sed -n 's|^wzp-relay: metrics on ||p' "$T/r1.out")
curl -s "$M" >"$T/metrics.txt"
has "metrics: the store answers again" "$T/metrics.txt" '^wzp_relay_cluster_store_up 1$'
has "metrics: reconnected after the restart" "$T/metrics.txt" '^wzp_relay_cluster_store_connects_total [2-9]'
has "metrics: calls offered to other relays" "$T/metrics.txt" 'outcome="offered_from_here"} [1-9]'
has "metrics: calls failed while the store was away" "$T/metrics.txt" 'outcome="store_unavailable"} [1-9]'
exit $fail
