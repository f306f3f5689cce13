#!/usr/bin/env bash
# The settings file and relay host names with the real binaries on loopback:
# a call with everything from $WZP_HOME/config, the environment over the file,
# flags over the environment, a broken file (exit 17, one line naming the
# line), `--relay localhost:PORT`, an unresolvable name (exit 4, one line), and
# a name from a hosts entry inside a private mount namespace (when allowed).
set -uo pipefail
BIN="${WZP_BIN_DIR:-$(dirname "$0")/../../build/bin}"
WZP="$BIN/wzp"
RELAY="$BIN/wzp-relay"
[ -x "$WZP" ] && [ -x "$RELAY" ] || { echo "skip: binaries not built"; exit 77; }
getent hosts localhost >/dev/null || { echo "skip: 'localhost' does not resolve here"; exit 77; }
unset WZP_RELAY WZP_RELAY_PIN WZP_HOME

# shellcheck source=lib/relay.sh
. "$(dirname "$0")/lib/relay.sh"

T=$(mktemp -d /tmp/wzp-conf-XXXXXX)
PIDS=()
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$T"' EXIT
fail=0
# expect NAME CODE RC [STDERR-FILE]: the exit code, and with a file exactly one line in it.
expect() {
    if [ "$2" = "$3" ]; then echo "ok   $1 (exit $3)"; else echo "FAIL $1: expected exit $2, got $3"; fail=1; fi
    [ $# -lt 4 ] && return
    if [ "$(grep -c . "$4")" = 1 ]; then echo "ok   $1: $(cat "$4")"; else
        echo "FAIL $1: not one line on stderr:"; cat "$4"; fail=1; fi
}

relay_start "$T"
PORT=${RA##*:}
OTHER_FP=$("$WZP" id --home "$T/other" 2>/dev/null)
# Loopback candidates only, no sound devices (flags: these are not what is tested).
L=(--loopback-candidates --no-audio)

mkdir -p "$T/a" "$T/b"
cat >"$T/b/config" <<CONF
; bob's phone: the relay by name, answers by itself
[relay]
host = localhost
port = $PORT
pin = $RP
[phone]
alias = bob
auto_answer = yes
ring = no
CONF
cat >"$T/a/config" <<CONF
[relay]
host = localhost:$PORT
pin = $RP
[audio]
aec = no
CONF

# a call with the relay, pin, alias and auto-answer all from the files
"$WZP" listen --once --home "$T/b" "${L[@]}" --duration 1 >"$T/listen.out" 2>&1 &
LP=$!; PIDS+=($LP)
for _ in $(seq 50); do grep -q registered "$T/listen.out" && break; sleep 0.1; done
"$WZP" call bob --home "$T/a" "${L[@]}" --tone 440 --duration 3 >"$T/call.out" 2>"$T/err"; rc=$?
expect "call with everything from the config file" 9 $rc # bob hangs up first, after 1 s
grep -q "alias bob" "$T/listen.out" || { echo "FAIL listener did not register its alias"; cat "$T/listen.out"; fail=1; }
wait $LP; expect "listener (auto_answer from the file)" 0 $?

# wzp config: where each setting comes from
"$WZP" config --home "$T/b" >"$T/cfg.out" 2>&1; rc=$?
expect "wzp config" 0 $rc
grep -q "^relay .*localhost:$PORT .*config:3)" "$T/cfg.out" &&
    grep -q "^auto_answer .*yes .*config:8)" "$T/cfg.out" &&
    WZP_RELAY=127.0.0.1:9 "$WZP" config --home "$T/b" | grep -q "^relay .*127.0.0.1:9 .*environment WZP_RELAY" ||
    { echo "FAIL wzp config output:"; cat "$T/cfg.out"; fail=1; }

# the environment overrides the file: a relay nobody listens on, then a wrong pin fixed by env
WZP_RELAY=127.0.0.1:9 "$WZP" reflect --home "$T/a" 2>"$T/err" >/dev/null; rc=$?
expect "WZP_RELAY overrides the file" 4 $rc "$T/err"
mkdir -p "$T/c"
printf '[relay]\nhost = 127.0.0.1:%s\npin = %s\n' "$PORT" "$OTHER_FP" >"$T/c/config"
"$WZP" reflect --home "$T/c" 2>"$T/err" >/dev/null; rc=$?
expect "wrong pin in the file" 5 $rc
WZP_RELAY_PIN="$RP" "$WZP" reflect --home "$T/c" 2>"$T/err" >/dev/null; rc=$?
expect "WZP_RELAY_PIN overrides the file" 0 $rc

# flags override the environment
WZP_RELAY=127.0.0.1:9 WZP_RELAY_PIN="$OTHER_FP" "$WZP" reflect --home "$T/c" \
    --relay "localhost:$PORT" --relay-pin "$RP" 2>"$T/err" >/dev/null; rc=$?
expect "flags override the environment" 0 $rc

# --relay localhost:PORT with no config at all
out=$("$WZP" reflect --home "$T/other" --relay "localhost:$PORT" --relay-pin "$RP" 2>"$T/err"); rc=$?
expect "--relay localhost:PORT" 0 $rc
case "$out" in 127.0.0.1:*) echo "ok   reflexive address $out" ;; *) echo "FAIL reflect printed '$out'"; fail=1 ;; esac

# an unresolvable name: exit 4 at once, one line naming DNS
start=$(date +%s)
"$WZP" reflect --home "$T/other" --relay "no-such-relay.invalid" --relay-pin "$RP" 2>"$T/err" >/dev/null; rc=$?
expect "unresolvable relay" 4 $rc "$T/err"
grep -q "does not resolve" "$T/err" || { echo "FAIL message does not name DNS"; fail=1; }
[ $(($(date +%s) - start)) -lt 20 ] || { echo "FAIL unresolvable relay took too long"; fail=1; }

# no relay anywhere: a usage error naming the file
"$WZP" reflect --home "$T/other" 2>"$T/err" >/dev/null; rc=$?
expect "no relay configured" 2 $rc "$T/err"

# broken files: exit 17, one line "wzp: PATH:LINE: what"
mkdir -p "$T/bad"
for text in "[relay]\nhost = a\n[sound]\n" "[audio]\naec = maybe\n" "[relay]\nport = 70000\n" \
    "[phone]\nalias = x\nalias = y\n" "[relay]\npin = nope\n" "[relay]\nhost a\n"; do
    printf "$text" >"$T/bad/config"
    line=$(printf "$text" | grep -c .)
    "$WZP" call bob --home "$T/bad" --relay "$RA" --relay-pin "$RP" 2>"$T/err" >/dev/null; rc=$?
    expect "broken config $(printf "$text" | tail -1)" 17 $rc "$T/err"
    grep -q "^wzp: $T/bad/config:$line: " "$T/err" || { echo "FAIL want line $line"; fail=1; }
done

# a host name from a hosts entry, in a private mount namespace (needs root and unshare)
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && unshare -m true 2>/dev/null; then
    { cat /etc/hosts; echo "127.0.0.1 relay.wzp.test"; } >"$T/hosts"
    out=$(unshare -m sh -c 'mount --bind "$1" /etc/hosts && exec "$2" reflect --home "$3" --relay "relay.wzp.test:$4" --relay-pin "$5"' \
        sh "$T/hosts" "$WZP" "$T/other" "$PORT" "$RP" 2>"$T/err"); rc=$?
    expect "hosts entry in a namespace" 0 $rc
    case "$out" in 127.0.0.1:*) echo "ok   relay.wzp.test -> $out" ;; *) echo "FAIL: '$out' $(cat "$T/err")"; fail=1 ;; esac
    getent hosts relay.wzp.test >/dev/null && { echo "FAIL the hosts entry leaked out"; fail=1; }
else
    echo "skip the hosts-entry part: needs root and unshare -m"
fi

for p in "${PIDS[@]:1}"; do
    if kill -0 "$p" 2>/dev/null; then echo "FAIL pid $p still running"; fail=1; fi
done
exit $fail
