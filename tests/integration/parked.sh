#!/usr/bin/env bash
# Parked registrations end to end (docs/client.md "Parked"): a real relay with
# --park-after 300; bob's `wzp listen` registers and parks (his log says so, the
# relay's wzp_relay_parked gauge counts him, he holds no connection); alice calls
# him, the relay wakes him, he answers and audio flows both ways; after the
# hang-up he parks again. Twice (the second call through the relay), and his
# application never sees him unregistered. The relay crashes and restarts: bob's next ping
# is answered GONE and he registers again. Stopped while parked, he says BYE and the relay
# ends his registration at once.
set -uo pipefail
. "$(dirname "$0")/lib/relay.sh"
. "$(dirname "$0")/lib/cli.sh"
cli_setup wzp-parked
command -v curl >/dev/null || { echo "skip: curl not installed (scripts/deps installs it)"; exit 77; }
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

relay_start "$T" --park-after 300 --metrics 127.0.0.1:0 -v
[ -n "$URL" ] || { echo "relay without metrics"; cat "$T/relay.out"; exit 1; }
R=(--relay "$RA" --relay-pin "$RP" --loopback-candidates --no-audio)
metric() { curl -fsS --max-time 5 "$URL" | awk -v m="$1" '$1 == m { print $2 }'; }
parked() { metric wzp_relay_parked; }
# wait_parked FILE N: the client logging to FILE has said "parked at relay" N times; the
# relay counts one parked registration, one identity and no control connection (5 s at most).
wait_parked() {
    for _ in $(seq 50); do
        [ "$(grep -c 'parked at relay' "$1")" -ge "$2" ] && [ "$(parked)" = 1 ] &&
            [ "$(metric wzp_relay_control_connections)" = 0 ] &&
            [ "$(metric wzp_relay_registered_identities)" = 1 ] && return 0
        sleep 0.1
    done
    return 1
}
# wait_identities N: the relay counts N registered identities (8 s at most).
wait_identities() {
    for _ in $(seq 80); do
        [ "$(metric wzp_relay_registered_identities)" = "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

"$WZP" listen "${R[@]}" --home "$T/bob" --alias bob --auto-answer --tone 440 --json -v \
    >"$T/b.json" 2>"$T/b.err" &
LP=$!
PIDS+=($LP)
for _ in $(seq 50); do grep -q registered "$T/b.json" && break; sleep 0.1; done
if wait_parked "$T/b.err" 1; then
    ok "bob parked: $(grep -m1 -o 'parked at relay.*' "$T/b.err"); relay: wzp_relay_parked $(parked)"
else
    bad "bob did not park (relay: wzp_relay_parked '$(parked)'):"; cat "$T/b.err"
fi

call() { # N OPTS...: alice calls bob for 2 s; both must hear each other
    local n=$1
    shift
    "$WZP" call bob "${R[@]}" --home "$T/alice" --tone 880 --duration 2 --json "$@" \
        >"$T/a$n.json" 2>"$T/a$n.err"
    local rc=$?
    check "call $n" 0 $rc
    local got
    got=$(grep '"event":"summary"' "$T/a$n.json" | sed -n 's/.*"frames_received":\([0-9]*\).*/\1/p')
    if [ "${got:-0}" -ge 50 ]; then ok "call $n: alice heard bob ($got frames)"; else
        bad "call $n: alice heard ${got:-no} frames"; cat "$T/a$n.json" "$T/a$n.err"
    fi
    for _ in $(seq 30); do [ "$(grep -c '"event":"summary"' "$T/b.json")" -ge "$n" ] && break; sleep 0.1; done
    got=$(grep '"event":"summary"' "$T/b.json" | sed -n "${n}s/.*\"frames_received\":\([0-9]*\).*/\1/p")
    if [ "${got:-0}" -ge 50 ]; then ok "call $n: bob heard alice ($got frames)"; else
        bad "call $n: bob heard ${got:-no} frames"; cat "$T/b.json"
    fi
}

call 1
grep -q 'woken by the relay' "$T/b.err" && ok "bob was woken for the call" \
    || { bad "bob's log does not say he was woken:"; cat "$T/b.err"; }
if wait_parked "$T/b.err" 2; then ok "bob parked again after the call"; else
    bad "bob did not park again (wzp_relay_parked '$(parked)')"; cat "$T/b.err"
fi
call 2 --no-direct
if wait_parked "$T/b.err" 3; then ok "bob parked again after a relayed call"; else
    bad "bob did not park again after call 2"; fi
grep -q '"event":"unregistered"' "$T/b.json" && { bad "bob's application saw him unregistered:"; cat "$T/b.json"; }
kill -0 $LP 2>/dev/null && ok "bob's listen goes on" || bad "bob's listen left"
# The relay crashes and comes back (same home, same address): it has forgotten bob's park,
# but answers his next ping GONE and he registers again at once (a 4 s keep-alive, not a ping
# and its retries unanswered and a backoff).
{
    kill -9 "${PIDS[0]}"
    wait "${PIDS[0]}"
} 2>/dev/null
relay_start "$T" --listen "$RA" --park-after 300 --metrics 127.0.0.1:0 -v
wait_identities 1
back=$?
gone=$(metric 'wzp_relay_park_gone_total{answer="gone"}')
if [ "$back" = 0 ] && [ "$gone" = 1 ]; then
    ok "bob registered again with the restarted relay (it answered his ping GONE)"
else
    bad "bob is not back on the restarted relay (identities '$(metric wzp_relay_registered_identities)', gone '$gone')"
    cat "$T/b.err"
fi
if wait_parked "$T/b.err" 4; then ok "bob parked again on the restarted relay"; else
    bad "bob did not park on the restarted relay"; fi
grep -q '"event":"unregistered"' "$T/b.json" && { bad "bob's application saw him unregistered:"; cat "$T/b.json"; }
kill -INT $LP; wait $LP; check "Ctrl-C ends bob's listen while parked" 0 $?
# Stopping while parked, bob said BYE: the relay ends his registration now (with no BYE it
# would wait for 3 missed pings, 12 s).
wait_identities 0
gone=$?
left=$(metric 'wzp_relay_parked_ended_total{how="left"}')
if [ "$gone" = 0 ] && [ "$(parked)" = 0 ] && [ "$left" = 1 ]; then
    ok "bob's BYE ended his parked registration (wzp_relay_parked_ended_total{how=\"left\"} $left)"
else
    bad "bob's registration outlived him: wzp_relay_parked '$(parked)', left '$left'"
fi
exit $fail
