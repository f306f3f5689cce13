#!/usr/bin/env bash
# Calls through the relay's TLS-over-TCP service (for networks that drop UDP):
# both parties forced to TCP (register, call, hang up, >= 95 % of the frames
# received each way, relayed), one on TCP and the other on UDP, a wrong relay
# pin over TCP. As root, in a network namespace of its own where UDP to the
# relay is dropped: `--relay-transport auto` (the default) registers and calls
# over TCP with the same command line as anywhere.
set -uo pipefail
. "$(dirname "$0")/lib/relay.sh"
. "$(dirname "$0")/lib/cli.sh"
cli_setup wzp-tcp

# frames NAME FILE: the summary's frames_received is >= 95 % of frames_sent (and > 100).
frames() {
    local s r
    s=$(sed -n 's/.*"event":"summary".*"frames_sent":\([0-9]*\).*/\1/p' "$2")
    r=$(sed -n 's/.*"event":"summary".*"frames_received":\([0-9]*\).*/\1/p' "$2")
    if [ -n "$s" ] && [ -n "$r" ] && [ "$s" -gt 100 ] && [ $((r * 100)) -ge $((s * 95)) ]; then
        echo "ok   $1: $r of $s frames"
    else
        echo "FAIL $1: frames sent '$s' received '$r':"; cat "$2"; fail=1
    fi
}

# call_pair NAME BOB_TRANSPORT ALICE_TRANSPORT: bob listens, alice calls him for 3 s, relayed.
call_pair() {
    local name=$1
    rm -f "$T/b.json" "$T/a.json" # a stale "registered" would not wait for this listener
    timeout 40 "$WZP" listen "${R[@]}" "${L[@]}" --relay-transport "$2" --home "$T/bob" --alias bob \
        --auto-answer --once --json >"$T/b.json" 2>"$T/b.err" &
    local lp=$!; PIDS+=($lp)
    for _ in $(seq 50); do grep -q registered "$T/b.json" && break; sleep 0.1; done
    has "$name: bob registered over $2" "$T/b.json" "\"reflexive\":\"$([ "$2" = tcp ] && echo tcp || echo 127.0.0.1)"
    timeout 40 "$WZP" call bob "${R[@]}" "${L[@]}" --relay-transport "$3" --home "$T/alice" --duration 3 \
        --tone 440 --json >"$T/a.json" 2>"$T/a.err"
    check "$name: call" 0 $?
    wait $lp; check "$name: listen --once" 0 $?
    has "$name: relayed" "$T/a.json" '"event":"summary","path":"relay"'
    frames "$name: alice hears bob" "$T/a.json"
    frames "$name: bob hears alice" "$T/b.json"
}

relay_start "$T"
[ -n "$RT" ] || { echo "FAIL relay printed no tcp line:"; cat "$T/relay.out"; exit 1; }
R=(--relay "$RA" --relay-pin "$RP" --relay-tcp "$RT")
L=(--loopback-candidates --no-audio --no-direct)

call_pair "both on tcp" tcp tcp
call_pair "tcp and udp" tcp udp

# A relay that does not hold the pinned key, over TCP: one line, no hang.
BAD=aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa
timeout 30 "$WZP" reflect --relay "$RA" --relay-pin "$BAD" --relay-tcp "$RT" \
    --relay-transport tcp --home "$T/alice" >/dev/null 2>"$T/err"
rc=$?
[ "$rc" != 0 ] && [ "$rc" != 124 ] && echo "ok   wrong pin over tcp fails (exit $rc)" ||
    { echo "FAIL wrong pin over tcp: exit $rc"; fail=1; }
has "wrong pin over tcp: says so" "$T/err" "pin"

# A cluster over TCP: each relay's TCP service is held to that relay's own pin. The first relay
# of the list answers nothing; the client homes on the second, over TCP, pinned to its key.
"$RELAY" --listen 127.0.0.2:0 --listen-tcp "127.0.0.2:$RT" --home "$T/relay2" --workers 1 \
    >"$T/relay2.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q fingerprint "$T/relay2.out" && break; sleep 0.1; done
RA2=$(sed -n 's/.*listening on //p' "$T/relay2.out")
RP2=$(sed -n 's/.*fingerprint //p' "$T/relay2.out")
timeout 30 "$WZP" reflect --relay "127.0.0.3:${RA##*:},$RA2" --relay-pin "$RP,$RP2" --relay-tcp "$RT" \
    --relay-transport tcp --home "$T/carol" >"$T/reflect2" 2>"$T/err2"
check "a cluster's second relay over tcp, to its own pin" 0 $?
has "a cluster's second relay over tcp: reached over tcp" "$T/reflect2" "tcp"

# UDP dropped (own namespace, root): auto mode finds TCP.
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && command -v nft >/dev/null; then
    RELAY="$RELAY" WZP="$WZP" T="$T" RA="$RA" RP="$RP" RT="$RT" unshare -n bash -c '
        set -u
        ip link set lo up
        nft add table inet t && nft add chain inet t out "{ type filter hook output priority 0; }" &&
            nft add rule inet t out udp dport  "${RA##*:}" drop && nft add rule inet t out udp sport "${RA##*:}" drop
        "$RELAY" --listen "$RA" --listen-tcp "127.0.0.1:$RT" --home "$T/relay" --workers 1 >"$T/nsrelay.out" 2>&1 &
        rp=$!
        for _ in $(seq 50); do grep -q fingerprint "$T/nsrelay.out" && break; sleep 0.1; done
        rm -f "$T/b.json" "$T/a.json" # the stale "registered" of call_pair must not count
        "$WZP" listen --relay "$RA" --relay-pin "$RP" --relay-tcp "$RT" --loopback-candidates --no-audio \
            --no-direct --home "$T/bob" --alias bob --auto-answer --once --json >"$T/b.json" 2>"$T/b.err" &
        lp=$!
        for _ in $(seq 100); do grep -q registered "$T/b.json" && break; sleep 0.1; done
        timeout 40 "$WZP" call bob --relay "$RA" --relay-pin "$RP" --relay-tcp "$RT" --loopback-candidates --no-audio \
            --no-direct --home "$T/alice" --duration 3 --tone 440 --json >"$T/a.json" 2>"$T/a.err"
        echo $? >"$T/rc"
        wait $lp
        kill $rp; wait $rp
    '
    has "udp dropped: bob registered over tcp" "$T/b.json" '"reflexive":"tcp"'
    check "udp dropped: call" 0 "$(cat "$T/rc" 2>/dev/null)"
    frames "udp dropped: alice hears bob" "$T/a.json"
    frames "udp dropped: bob hears alice" "$T/b.json"
else
    echo "skip udp dropped: needs root, unshare and nft"
fi
exit $fail
