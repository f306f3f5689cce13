#!/usr/bin/env bash
# The relay cluster's Redis behind Sentinel (docs/cluster.md): a master, a replica and
# one Sentinel of our own on loopback ports; two relays find the master through the
# Sentinel. The master is killed (-9); the Sentinel promotes the replica, the relays
# ask it again, reconnect and publish their registrations, and a call across relays
# works again.
set -uo pipefail
. "$(dirname "$0")/lib/cli.sh"
. "$(dirname "$0")/lib/cluster.sh"
cli_setup wzp-sentinel
command -v redis-server >/dev/null || { echo "skip: redis-server not installed"; exit 77; }

# three free loopback TCP ports (bound and released: a small race, on loopback only)
read -r P1 P2 P3 < <(python3 -c '
import socket
s = [socket.socket() for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/redis.pw"
PW=$(cat "$T/redis.pw")
store() { # NAME PORT [args...]: a redis-server of ours; its pid in PID_NAME
    local name=$1 port=$2
    shift 2
    mkdir -p "$T/$name"
    redis-server --bind 127.0.0.1 --port "$port" --dir "$T/$name" --save '' --appendonly no \
        --requirepass "$PW" --masterauth "$PW" "$@" >"$T/$name/out" 2>&1 &
    eval "PID_$name=$!"
    PIDS+=($!)
}
store master "$P1"
store replica "$P2" --replicaof 127.0.0.1 "$P1"
cat >"$T/sentinel.conf" <<CONF
port $P3
bind 127.0.0.1
dir $T
sentinel monitor wzp 127.0.0.1 $P1 1
sentinel auth-pass wzp $PW
sentinel down-after-milliseconds wzp 1000
sentinel failover-timeout wzp 5000
CONF
redis-server "$T/sentinel.conf" --sentinel >"$T/sentinel.out" 2>&1 &
PIDS+=($!)
rcli() { redis-cli -h 127.0.0.1 -p "$1" -a "$PW" --no-auth-warning "${@:2}"; }
for _ in $(seq 50); do
    [ "$(redis-cli -p "$P3" SENTINEL get-master-addr-by-name wzp 2>/dev/null | tail -1)" = "$P1" ] \
        && rcli "$P2" INFO replication 2>/dev/null | grep -q master_link_status:up && break
    sleep 0.2
done
rcli "$P2" INFO replication | grep -q master_link_status:up || { echo "replica did not sync"; cat "$T/replica/out"; exit 1; }
# the Sentinel learns of the replica from the master's INFO (every 10 s)
for _ in $(seq 150); do redis-cli -p "$P3" SENTINEL replicas wzp 2>/dev/null | grep -qx "$P2" && break; sleep 0.1; done
redis-cli -p "$P3" SENTINEL replicas wzp | grep -qx "$P2" || { echo "the Sentinel does not know the replica"; cat "$T/sentinel.out"; exit 1; }
echo "ok   master :$P1, replica :$P2, sentinel :$P3"

# the relays (lib/cluster.sh's cluster_relay, on the Sentinel instead of a socket)
REDIS_SOCK=unused
for n in 1 2; do
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$T/cluster.key.tmp"
    [ -s "$T/cluster.key" ] || mv "$T/cluster.key.tmp" "$T/cluster.key"
    "$RELAY" --listen 127.0.0.1:0 --listen-tcp none --home "$T/r$n" --workers 1 -v ${SENTINEL_RELAY_ARGS:-} \
        --redis "sentinel://127.0.0.1:$P3/wzp" --redis-password-file "$T/redis.pw" \
        --cluster-key "$T/cluster.key" >"$T/r$n.out" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 50); do grep -q fingerprint "$T/r$n.out" && break; sleep 0.1; done
    eval "RA_$n=\$(sed -n 's/.*listening on //p' \"\$T/r$n.out\")"
    eval "RP_$n=\$(sed -n 's/.*fingerprint //p' \"\$T/r$n.out\")"
done
for n in 1 2; do
    for _ in $(seq 50); do grep -q "cluster store connected" "$T/r$n.out" && break; sleep 0.1; done
done
has "relay 1 found the master through the Sentinel" "$T/r1.out" "cluster store connected"

call() { # N NAME CALLEE: one 1 s call from relay N
    # shellcheck disable=SC2046
    "$WZP" call "$3" $(relay_args "$1") --home "$T/$2" --tone 660 --json --duration 1 \
        >"$T/$2.json" 2>"$T/$2.err"
}
listener 2 bob bob
call 1 alice bob; rc=$?
check "alice (relay 1) calls bob (relay 2) through the master" 0 $rc
wait "$LPID"

# the master dies; bob's listener stays registered with relay 2 throughout
listener 2 bob bob
kill -9 "$PID_master"
t0=$(date +%s%N)
for _ in $(seq 150); do
    [ "$(redis-cli -p "$P3" SENTINEL get-master-addr-by-name wzp 2>/dev/null | tail -1)" = "$P2" ] && break
    sleep 0.1
done
[ "$(redis-cli -p "$P3" SENTINEL get-master-addr-by-name wzp | tail -1)" = "$P2" ] \
    && echo "ok   the Sentinel promoted the replica ($(( ($(date +%s%N) - t0) / 1000000 )) ms)" \
    || { echo "FAIL no failover"; cat "$T/sentinel.out"; fail=1; }
back=1
for _ in $(seq 40); do
    call 1 alice bob && { back=0; break; }
    sleep 0.5
done
check "a call across relays works again after the failover" 0 $back
[ $back = 0 ] && echo "     (recovered $(( ($(date +%s%N) - t0) / 1000000 )) ms after the kill)"
[ $back = 0 ] || { cat "$T/alice.err"; for f in "$T/r1.out" "$T/r2.out"; do grep -v "call \[" "$f" | tail -n 30; done; }
wait "$LPID" 2>/dev/null
exit $fail
