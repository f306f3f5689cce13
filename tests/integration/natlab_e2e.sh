#!/usr/bin/env bash
# End-to-end calls with the real binaries behind real Linux NATs
# (scripts/natlab e2e): wzp-relay on the lab's internet, `wzp listen
# --auto-answer` on host b, `wzp call --json` on host a, each with its own
# WZP_HOME in the lab's state dir. For a representative set of scenarios the
# call must connect, carry audio both ways with low loss and end on the path
# natlab_expected_path allows; sym-prc (symmetric vs port-restricted cone) and
# seq-seq (sequential symmetric NATs) must end direct through birthday probing
# and port prediction, with a probing role taken (calls of 15 s: random ports
# are found in seconds, a miss in 15 s about 1 in 10^5). Then one failover run: in prc-prc the direct
# path is cut mid-call on host a (every UDP packet not to/from the relay is
# dropped) and lifted again; the call must fall back to the relay without a
# long media gap and go direct again. prc-prc-nofw (routers without a WAN
# firewall) must at least carry the call, over either path. Routers that drop
# all UDP (one side, both, or mid-call) leave the relay's TCP service.
# Symmetric NATs on both sides go direct when a router maps a port (miniupnpd:
# sym-sym-pm1 NAT-PMP on a's, sym-sym-pm2 also UPnP-only on b's); each client
# must have deleted its mapping when it exits. `scripts/bench natlab` runs every
# scenario and prints the timings.
# Needs root and network namespaces, else exits 77 (skipped) with the reason.
set -uo pipefail

SRC="${WZP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
NATLAB="$SRC/scripts/natlab"
export WZP_BIN_DIR="${WZP_BIN_DIR:-$SRC/build/bin}"
SCENARIOS="${NATLAB_E2E_SCENARIOS:-prc-prc sym-sym sym-full samelan cgn-prc v6-v6 v6-prc public-public sym-sym-pm1 sym-sym-pm2 sym-prc seq-seq}"

. "$SRC/tests/integration/lib/natlab_require.sh"
natlab_require wzple ip nft iptables timeout python3
natlab_require_bins wzp wzp-relay

LOGS="$(mktemp -d "${TMPDIR:-/tmp}/wzp-natlab-e2e.XXXXXX")"
LAB=""
cleanup() {
    # the hook downs its lab itself; this covers an interrupted or killed hook
    if [ -n "$LAB" ] && [ -d "/run/wzp-natlab/$LAB" ]; then
        timeout 30 "$NATLAB" down "$LAB" >/dev/null 2>&1
    fi
    rm -rf "$LOGS"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

failures=0
start=$SECONDS
n=0
run() { # scenario [e2e options]
    local scn="$1" line rc
    shift
    n=$((n + 1))
    LAB="wzple$$n$n"
    line="$(NATLAB_LOG_DIR="$LOGS" "$NATLAB" e2e "$scn" --id "$LAB" "$@" 2>"$LOGS/stderr")"
    rc=$?
    if [ "$rc" = 77 ]; then
        cat "$LOGS/stderr"
        skip "natlab e2e skipped"
    fi
    if [ "$rc" = 0 ]; then
        echo "ok:   [$((SECONDS - start))s] $line"
    else
        echo "FAIL: [$((SECONDS - start))s] $scn ${*}: ${line:-no result} (exit $rc)"
        failures=$((failures + 1))
        sed 's/^/      /' "$LOGS/stderr"
        local f
        for f in "$LOGS/$LAB"/caller.log "$LOGS/$LAB"/callee.log "$LOGS/$LAB"/relay.log; do
            [ -f "$f" ] || continue
            echo "      --- $(basename "$f")"
            tail -n 15 "$f" | sed 's/^/      /'
        done
    fi
    LAB=""
}

for scn in $SCENARIOS; do
    run "$scn"
done
# Robustness: without the routers' WAN firewall the first punch packets leave
# unreplied conntrack entries that make both routers remap the other side's
# port (natlab_expected_path says relay), unless the two first packets happen
# to cross between the routers; the call must work over whichever path.
run prc-prc-nofw --expect any
# mid-call failover: direct 1 s, cut 2 s (relay), lifted (direct again) for 2 s
run prc-prc --cut-after 1 --cut-for 2 --duration 2

# UDP-hostile networks: routers that forward no UDP, on both sides or one;
# the call goes through the relay's TLS-over-TCP service (port 443).
run prc-prc --block-udp ab
run prc-prc --block-udp a
# mid-call: direct 1 s, then a's router drops all UDP for 3 s (the call goes on
# over TCP, gap <= 1 s; the gap alone is ~10 % of the call), then direct again
NATLAB_E2E_MAX_LOSS_PCT=15 run prc-prc --cut-after 1 --cut-for 3 --cut-kind udp --duration 3

# Network changes on host a mid-call (direct 1 s first): eth0 down 2 s and back
# (loss is the down-time, ~25 % of the call), the default route moved to a second
# home router, and the host moved behind that router (new LAN and public address).
# Each keeps the call, is direct again on the new network, and the media gap
# (down-time aside) stays under NATLAB_E2E_MAX_GAP_MS.
NATLAB_E2E_MAX_LOSS_PCT=35 run prc-prc --cut-after 1 --cut-for 2 --cut-kind ifdown --duration 3
run prc-prc --cut-after 1 --cut-for 0 --cut-kind route --duration 3
run prc-prc --cut-after 1 --cut-for 0 --cut-kind move --duration 3

echo "natlab e2e: $n calls, $failures failed, $((SECONDS - start)) s"
[ "$failures" = 0 ]
