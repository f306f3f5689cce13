#!/usr/bin/env bash
# scripts/bench cluster [CLIENTS] [CALLS] [FAILOVER]: a relay cluster on loopback (docs/cluster.md):
# our own redis-server (unix socket) and three relays.
#  * call setup, same relay vs across relays: "wzp call" (relayed media only) to a
#    "wzp listen --auto-answer", from the caller's registration to its call being active;
#    and the end-to-end RTT of the call (one relay hop vs two), CALLS each (8), median;
#  * registrations over three relays of the cluster at once (bench_register, CLIENTS = 3000
#    clients, a third per relay): rate, relay RSS per client and relay CPU per registration,
#    beside a third on one relay without a cluster (the reference, same run). 30,000 clients
#    need no more than root (file descriptors; each third binds its own loopback addresses).
#  * a relay dying mid-call: FAILOVER pairs (6) whose two ends know the whole cluster (settings
#    file), relayed media only; once every call is active, the relay carrying most call ends is
#    killed (-9): share of its calls that go on to their end (they move to another relay of
#    the cluster: docs/cluster.md, "A relay dies mid-call"), and their longest media gap (p50
#    and p99 over both ends), beside the calls on the relays that stayed up (the reference);
#    and how long its clients took to re-home, or how long a call that did not go on lasted.
# Last line: cluster: relays=3 clients=... cross_setup_ms=... same_setup_ms=...
#   failover_survived_pct=... failover_gap_p99_ms=... rss_bytes_per_client=...
#   relay_cpu_us_per_reg=... regs_per_s=...
set -uo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${1:-3000}
CALLS=${2:-8}
FAILOVER=${3:-6}
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
# CLIENTS over three relays of the cluster at once: one bench_register (and its relay, joined
# to the cluster) per third, each third from its own loopback addresses, all registered
# together for a while (HOLD s). The reference: a third on one relay alone, same run, first.
BENCH_REG="$PWD/build/bench/bench_register"
PER=$(( (CLIENTS + 2) / 3 ))
HOLD=$(( PER >= 5000 ? 15 : 2 ))
echo
echo "registrations: $CLIENTS clients over three relays of the cluster at once ($PER each), reference ($PER on one relay, no cluster) first"
WZP_BENCH_CLIENT_IP=127.0.1.1 "$BENCH_REG" "$PER" 2 64 0 >"$T/reg_ref.txt" 2>&1
reg_pids=()
for k in 1 2 3; do
    WZP_BENCH_CLIENT_IP=127.0.$k.1 \
        WZP_BENCH_RELAY_ARGS="--redis unix:$REDIS_SOCK --redis-password-file $T/redis.pw --cluster-key $T/cluster.key" \
        "$BENCH_REG" "$PER" "$HOLD" 64 0 >"$T/reg_cluster$k.txt" 2>&1 &
    reg_pids+=($!)
done
wait "${reg_pids[@]}"
printf '%-28s %10s %10s %22s %22s\n' relay clients regs_per_s rss_bytes_per_client relay_cpu_us_per_reg
clients=0 regs=0 rss_sum=0 cpu_sum=0
for f in ref cluster1 cluster2 cluster3; do
    line=$(grep '^register:' "$T/reg_$f.txt")
    v() { sed -n "s/.* $1=\([0-9.]*\).*/\1/p" <<<"$line"; }
    n=$(sed -n 's/.* clients=\([0-9]*\).*/\1/p' <<<"$line")
    printf '%-28s %10s %10s %22s %22s\n' "$([ $f = ref ] && echo "alone (reference)" || echo "cluster relay ${f#cluster}")" \
        "${n:-0}" "$(v regs_per_s)" "$(v rss_bytes_per_client)" "$(v relay_cpu_us_per_reg)"
    if [ $f != ref ] && [ "${n:-0}" -gt 0 ]; then
        clients=$((clients + n))
        regs=$(awk -v a="$regs" -v b="$(v regs_per_s)" 'BEGIN { print a + b }')
        rss_sum=$(awk -v a="$rss_sum" -v b="$(v rss_bytes_per_client)" -v n="$n" 'BEGIN { print a + b * n }')
        cpu_sum=$(awk -v a="$cpu_sum" -v b="$(v relay_cpu_us_per_reg)" -v n="$n" 'BEGIN { print a + b * n }')
    fi
done
# Per client and per registration: over the three relays, weighted by their clients; the
# rate: the three relays' together (they register at the same time).
if [ "$clients" -gt 0 ]; then
    rss=$(awk -v s="$rss_sum" -v n="$clients" 'BEGIN { printf "%.0f", s / n }')
    cpu=$(awk -v s="$cpu_sum" -v n="$clients" 'BEGIN { printf "%.0f", s / n }')
    regs=$(awk -v r="$regs" 'BEGIN { printf "%.0f", r }')
fi
keys=$(redis-cli -s "$REDIS_SOCK" -a "$(cat "$T/redis.pw")" --no-auth-warning dbsize 2>/dev/null)
echo "redis keys after the cluster run: $keys (presence expires 30 s after a relay stops refreshing)"

# --- a relay dying mid-call --------------------------------------------------------------
echo
echo "failover: $FAILOVER relayed calls over the cluster, the relay carrying most of them killed (-9)"
# The shell's own "Killed" notice for the relay killed on purpose goes to /dev/null.
exec 3>&2 2>/dev/null
python3 - "$WZP" "$T" "$FAILOVER" "$RA_1" "$RP_1" "$RPID_1" "$RA_2" "$RP_2" "$RPID_2" \
    "$RA_3" "$RP_3" "$RPID_3" >"$T/failover.txt" 2>&3 <<'PY'
import json, os, re, signal, subprocess, sys, time
wzp, T, pairs = sys.argv[1], sys.argv[2], int(sys.argv[3])
relays = [tuple(sys.argv[4 + 3 * i:7 + 3 * i]) for i in range(3)]
DURATION = 15
def home(name, k):
    """A settings file naming the whole cluster (host, pin, more_hosts, more_pins), pair k's
    list starting at relay k % 3: on loopback the first often wins, so the homes spread."""
    d = f"{T}/fo/{name}"
    os.makedirs(d, exist_ok=True)
    order = relays[k % 3:] + relays[:k % 3]
    with open(f"{d}/config", "w") as f:
        f.write("[relay]\nhost = %s\npin = %s\nmore_hosts = %s\nmore_pins = %s\n" % (
            order[0][0], order[0][1], ", ".join(r[0] for r in order[1:]),
            ", ".join(r[1] for r in order[1:])))
    return d
def start(name, k, argv):
    d = home(name, k)
    out, err = open(f"{T}/fo/{name}.json", "w"), open(f"{T}/fo/{name}.err", "w")
    return subprocess.Popen([wzp] + argv + ["--home", d, "--loopback-candidates",
                            "--no-audio", "--no-direct", "--json", "-v"], stdout=out, stderr=err)
def lines(name, kind):
    try:
        return open(f"{T}/fo/{name}.{kind}").read().splitlines()
    except OSError:
        return []
def events(name):
    ev = []
    for l in lines(name, "json"):
        try:
            ev.append(json.loads(l))
        except ValueError:
            pass
    return ev
def wait_for(cond, limit):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return False
def homes(name):
    return [m.group(1) for l in lines(name, "err")
            for m in [re.search(r"registered at relay ([^,]*),", l)] if m]
procs = {}
for k in range(pairs):
    procs[f"bob{k}"] = start(f"bob{k}", k, ["listen", "--alias", f"fobob{k}", "--auto-answer",
                                         "--once", "--tone", "440"])
for k in range(pairs):
    wait_for(lambda: homes(f"bob{k}"), 20)
for k in range(pairs):
    procs[f"alice{k}"] = start(f"alice{k}", k, ["call", f"fobob{k}", "--tone", "660",
                                             "--duration", str(DURATION)])
active = lambda n: any(e.get("state") == "active" for e in events(n))
for k in range(pairs):
    wait_for(lambda: active(f"alice{k}") and active(f"bob{k}"), 20)
time.sleep(1)
ends = {n: (homes(n) or [None])[-1] for n in procs}
load = {r[0]: sum(1 for a in ends.values() if a == r[0]) for r in relays}
victim = max(relays, key=lambda r: load[r[0]])
hit = [k for k in range(pairs) if victim[0] in (ends[f"alice{k}"], ends[f"bob{k}"])
       and active(f"alice{k}") and active(f"bob{k}")]
os.kill(int(victim[2]), signal.SIGKILL)
t_kill = time.monotonic()
rehome, ended = {}, {}
def rehomed():
    for n in procs:
        if ends[n] == victim[0] and n not in rehome and len(homes(n)) > 1:
            rehome[n] = (time.monotonic() - t_kill) * 1000
        if n not in ended and procs[n].poll() is not None:
            ended[n] = (time.monotonic() - t_kill) * 1000
    # Done when each of its clients re-homed or has ended (a call that ended ends "wzp call").
    return all(n in rehome or procs[n].poll() is not None for n in procs if ends[n] == victim[0])
wait_for(rehomed, DURATION + 25)
rc = {n: p.wait(timeout=DURATION + 60) for n, p in procs.items()}
def gap_if_whole(k):
    """The call's longest media gap over both ends if it went on to its end, else None."""
    summ = [next((e for e in events(n) if e.get("event") == "summary"), {})
            for n in (f"alice{k}", f"bob{k}")]
    if rc[f"alice{k}"] == 0 and rc[f"bob{k}"] == 0 and all(s.get("frames_received") for s in summ):
        return max(s.get("max_gap_ms", 0) for s in summ)
    return None
gaps = sorted(g for g in map(gap_if_whole, hit) if g is not None)
survived = len(gaps)
# The reference: calls of the same run on relays that stayed up.
ref = sorted(g for k in range(pairs) if k not in hit for g in [gap_if_whole(k)] if g is not None)
p = lambda v, q: v[min(len(v) - 1, int(q * len(v)))] if v else None
rh = sorted(rehome.values())
print("calls", len(hit), "survived", survived,
      "gap_p50", p(gaps, 0.5), "gap_p99", p(gaps, 0.99),
      "rehomed", len(rh), "rehome_p50", round(p(rh, 0.5)) if rh else None,
      "rehome_max", round(rh[-1]) if rh else None)
# How long the calls that did not go on lasted after the kill (either end giving up first).
lost = sorted(min(ended.get(f"{w}{k}", 1e9) for w in ("alice", "bob"))
              for k in hit if gap_if_whole(k) is None)
print("victim", relays.index(victim) + 1, "lost_after_p50", round(p(lost, 0.5)) if lost else None)
print("ref", pairs - len(hit), "whole", len(ref), "gap_p50", p(ref, 0.5), "gap_p99", p(ref, 0.99))
PY
read -r _ fo_calls _ fo_surv _ gap50 _ gap99 _ _ _ rh50 _ rhmax <"$T/failover.txt"
read -r _ victim _ lost50 < <(sed -n 2p "$T/failover.txt")
read -r _ ref_calls _ ref_whole _ ref50 _ ref99 < <(sed -n 3p "$T/failover.txt")
eval "wait \${RPID_${victim:-0}:-}"
exec 2>&3 3>&-
[ "${fo_calls:-0}" -gt 0 ] 2>/dev/null && fo_pct=$(( 100 * fo_surv / fo_calls )) || fo_pct=nan
[ "${gap99:-None}" = None ] && gap99=n/a
[ "${gap50:-None}" = None ] && gap50=n/a
[ "${rh50:-None}" = None ] && rh50=n/a rhmax=n/a
[ "${lost50:-None}" = None ] && lost50=n/a
[ "${ref50:-None}" = None ] && ref50=n/a ref99=n/a
printf '%-28s %8s %9s %8s %8s %14s %14s %15s\n' "" calls survived gap_p50 gap_p99 rehome_p50_ms \
    rehome_max_ms lost_after_ms
printf '%-28s %8s %9s %8s %8s %14s %14s %15s\n' "relay killed (-9) mid-call" "${fo_calls:-0}" \
    "${fo_surv:-0}" "$gap50" "$gap99" "${rh50:-n/a}" "${rhmax:-n/a}" "$lost50"
printf '%-28s %8s %9s %8s %8s\n' "relays up (reference)" "${ref_calls:-0}" "${ref_whole:-0}" \
    "${ref50:-n/a}" "${ref99:-n/a}"
echo "cluster: relays=3 clients=${clients:-0} cross_setup_ms=${cross_setup:-nan} same_setup_ms=${same_setup:-nan} failover_survived_pct=${fo_pct:-nan} failover_gap_p99_ms=${gap99:-n/a} rss_bytes_per_client=${rss:-nan} relay_cpu_us_per_reg=${cpu:-nan} regs_per_s=${regs:-nan}"
