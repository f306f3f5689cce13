# shellcheck shell=bash
# Sourced by the tests and the bench that run a relay cluster on loopback
# (tests/integration/cluster.sh, bench/cluster.sh). Needs cli_setup (lib/cli.sh):
# T, PIDS, RELAY.
# (In lib/ so that the test glob, tests/integration/*.sh, does not run it.)

# redis_start: a redis-server of our own on a unix socket in T/redis (no TCP port,
# no persistence), password from T/redis.pw; REDIS_PID (also in PIDS), REDIS_SOCK.
# Exit 77 when redis-server is not installed.
redis_start() {
    command -v redis-server >/dev/null || { echo "skip: redis-server not installed"; exit 77; }
    mkdir -p "$T/redis"
    [ -s "$T/redis.pw" ] || head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/redis.pw"
    REDIS_SOCK="$T/redis/redis.sock"
    redis-server --port 0 --unixsocket "$REDIS_SOCK" --unixsocketperm 700 --dir "$T/redis" \
        --save '' --appendonly no --requirepass "$(cat "$T/redis.pw")" \
        >"$T/redis/out" 2>&1 &
    REDIS_PID=$!
    PIDS+=("$REDIS_PID")
    for _ in $(seq 50); do [ -S "$REDIS_SOCK" ] && break; sleep 0.1; done
    [ -S "$REDIS_SOCK" ] || { echo "redis-server did not start"; cat "$T/redis/out"; exit 1; }
}

# redis_stop: ends our redis-server by pid and waits for it.
redis_stop() {
    kill "$REDIS_PID" 2>/dev/null
    wait "$REDIS_PID" 2>/dev/null
    rm -f "$REDIS_SOCK"
}

# cluster_relay N [args...]: relay N of the cluster on 127.0.0.1:0, home T/rN, output
# T/rN.out; sets RA_N, RP_N (address, fingerprint) and RPID_N.
cluster_relay() {
    local n=$1
    shift
    [ -s "$T/cluster.key" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/cluster.key"
    rm -f "$T/r$n.out" # a restart: the previous relay's fingerprint must not count
    "$RELAY" --listen 127.0.0.1:0 --listen-tcp none --home "$T/r$n" --workers 1 \
        --redis "unix:$REDIS_SOCK" --redis-password-file "$T/redis.pw" \
        --cluster-key "$T/cluster.key" "$@" >"$T/r$n.out" 2>&1 &
    eval "RPID_$n=$!"
    PIDS+=($!)
    for _ in $(seq 50); do grep -qs fingerprint "$T/r$n.out" && break; sleep 0.1; done
    eval "RA_$n=\$(sed -n 's/.*listening on //p' \"\$T/r$n.out\")"
    eval "RP_$n=\$(sed -n 's/.*fingerprint //p' \"\$T/r$n.out\")"
    grep -qs fingerprint "$T/r$n.out" || { echo "relay $n did not start"; cat "$T/r$n.out"; exit 1; }
}

# relay_args N: the client options for relay N, relayed media only, loopback, no devices.
relay_args() {
    local a p
    eval "a=\$RA_$1 p=\$RP_$1"
    echo "--relay $a --relay-pin $p --loopback-candidates --no-audio --no-direct"
}

# listener N NAME ALIAS [args...]: "wzp listen" as NAME on relay N answering one call
# with a tone (ended after 60 s at the latest, so a test never hangs on it); returns
# once registered, or fails the test (fail=1) with its errors after 20 s. Events in
# T/NAME.json, errors in T/NAME.err, pid in LPID (also in PIDS).
listener() {
    local n=$1 name=$2 alias=$3
    shift 3
    # The child truncates its files only once it runs: a stale "registered" must not count.
    rm -f "$T/$name.json" "$T/$name.err"
    # shellcheck disable=SC2046 # relay_args is a word list
    timeout 60 "$WZP" listen $(relay_args "$n") --home "$T/$name" --alias "$alias" --auto-answer \
        --once --tone 440 --json "$@" >"$T/$name.json" 2>"$T/$name.err" &
    LPID=$!
    PIDS+=($LPID)
    for _ in $(seq 200); do grep -qs '"event":"registered"' "$T/$name.json" && return 0; sleep 0.1; done
    echo "FAIL $name did not register on relay $n within 20 s: $(cat "$T/$name.err")"
    fail=1
}
