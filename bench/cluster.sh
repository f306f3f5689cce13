#!/usr/bin/env bash
# scripts/bench cluster [CLIENTS] [CALLS]: a relay cluster on loopback (docs/cluster.md):
# our own redis-server (unix socket) and three relays.
#  * call setup, same relay vs across relays: "wzp call" (relayed media only) to a
#    "wzp listen --auto-answer", from the caller's registration to its call being active;
#    and the end-to-end RTT of the call (one relay hop vs two), CALLS each (8), median;
#  * registrations on one relay of the cluster (bench_register, CLIENTS = 3000 clients):
#    rate, relay RSS and relay CPU per registration, beside the same relay without a
#    cluster (the reference, same run).
# A relay dying mid-call is not handled yet (docs/cluster.md): failover figures are n/a.
# Last line: cluster: relays=3 clients=... cross_setup_ms=... same_setup_ms=...
#   failover_survived_pct=n/a failover_gap_p99_ms=n/a rss_bytes_per_client=...
#   relay_cpu_us_per_reg=... regs_per_s=...
set -uo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${1:-3000}
CALLS=${2:-8}
export WZP_BIN_DIR="${WZP_BIN_DIR:-$PWD/build/bin}"
. tests/integration/lib/cli.sh
. tests/integration/lib/cluster.sh
cli_setup wzp-bench-cluster
redis_start
for n in 1 2 3; do cluster_relay "$n"; done

# --- call setup --------------------------------------------------------------------------
python3 - "$WZP" "$T" "$CALLS" "$RA_1" "$RP_1" "$RA_2" "$RP_2" >"$T/setup.txt" <<'PY'
import json, statistics, subprocess, sys, time
wzp, T, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
relays = {1: (sys.argv[4], sys.argv[5]), 2: (sys.argv[6], sys.argv[7])}
def args(r):
    a, p = relays[r]
    return ["--relay", a, "--relay-pin", p, "--loopback-candidates", "--no-audio", "--no-direct", "--json"]
def events(proc, until):
    """Lines of a --json stream with their arrival time, up to the event named until."""
    out = []
    for line in proc.stdout:
        t = time.monotonic()
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        out.append((t, ev))
        if until(ev):
            break
    return out
def one(caller_relay, callee_relay, k):
    lis = subprocess.Popen([wzp, "listen", "--home", f"{T}/b{k}", "--alias", f"bench{k}",
                            "--auto-answer", "--once", "--tone", "440"] + args(callee_relay),
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    events(lis, lambda e: e.get("event") == "registered")
    call = subprocess.Popen([wzp, "call", f"bench{k}", "--home", f"{T}/a", "--duration", "1",
                             "--tone", "660"] + args(caller_relay),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    ev = events(call, lambda e: e.get("event") == "summary")
    call.wait(); lis.wait()
    t_reg = next(t for t, e in ev if e.get("event") == "registered")
    t_act = next((t for t, e in ev if e.get("state") == "active"), None)
    summ = next(e for t, e in ev if e.get("event") == "summary")
    if t_act is None or summ.get("path") != "relay":
        return None
    return (t_act - t_reg) * 1000, summ.get("rtt_ms", 0.0)
res = {"same": [], "cross": []}
for i in range(calls):
    for kind, callee in (("same", 1), ("cross", 2)):
        r = one(1, callee, i)
        if r:
            res[kind].append(r)
for kind in ("same", "cross"):
    s = [x[0] for x in res[kind]]; r = [x[1] for x in res[kind]]
    med = lambda v: statistics.median(v) if v else float("nan")
    print(kind, len(s), "%.1f" % med(s), "%.1f" % (max(s) if s else float("nan")), "%.3f" % med(r))
PY
printf '%-28s %6s %12s %10s %14s\n' "call (caller on relay 1)" calls setup_p50 setup_max e2e_rtt_p50_ms
while read -r kind n p50 mx rtt; do
    printf '%-28s %6s %12s %10s %14s\n' "$([ "$kind" = same ] && echo "callee on relay 1 (same)" || echo "callee on relay 2 (cross)")" \
        "$n" "$p50" "$mx" "$rtt"
    eval "${kind}_setup=$p50"
done <"$T/setup.txt"

# --- registrations -----------------------------------------------------------------------
BENCH_REG="$PWD/build/bench/bench_register"
echo
echo "registrations: $CLIENTS clients on one relay, reference (no cluster) first"
"$BENCH_REG" "$CLIENTS" 2 >"$T/reg_ref.txt" 2>&1
WZP_BENCH_RELAY_ARGS="--redis unix:$REDIS_SOCK --redis-password-file $T/redis.pw --cluster-key $T/cluster.key" \
    "$BENCH_REG" "$CLIENTS" 2 >"$T/reg_cluster.txt" 2>&1
printf '%-28s %10s %22s %22s\n' relay regs_per_s rss_bytes_per_client relay_cpu_us_per_reg
for f in ref cluster; do
    line=$(grep '^register:' "$T/reg_$f.txt")
    v() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }
    printf '%-28s %10s %22s %22s\n' "$([ $f = ref ] && echo "alone (reference)" || echo "in the cluster")" \
        "$(v regs_per_s)" "$(v rss_bytes_per_client)" "$(v relay_cpu_us_per_reg)"
    if [ $f = cluster ]; then
        regs=$(v regs_per_s) rss=$(v rss_bytes_per_client) cpu=$(v relay_cpu_us_per_reg)
        clients=$(sed -n 's/.* clients=\([0-9]*\).*/\1/p' <<<"$line")
    fi
done
keys=$(redis-cli -s "$REDIS_SOCK" -a "$(cat "$T/redis.pw")" --no-auth-warning dbsize 2>/dev/null)
echo "redis keys after the cluster run: $keys (presence expires 30 s after a relay stops refreshing)"
echo "cluster: relays=3 clients=${clients:-0} cross_setup_ms=${cross_setup:-nan} same_setup_ms=${same_setup:-nan} failover_survived_pct=n/a failover_gap_p99_ms=n/a rss_bytes_per_client=${rss:-nan} relay_cpu_us_per_reg=${cpu:-nan} regs_per_s=${regs:-nan}"
