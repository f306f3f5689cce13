#!/usr/bin/env bash
# NAT matrix: one real call (wzp-relay + wzp listen + wzp call) per NAT lab
# scenario, plus the mid-call failover in the scenarios that go direct.
#   scripts/bench natlab [SCENARIO...] [-- up options, e.g. --delay-ms 20]
# Prints, per scenario: expected path, final path, time to first audio, time
# to direct, and for the failover runs the longest media gap while the direct
# path was cut (the design bound is 300 ms at 50 frames/s), how long until
# both sides had moved to the relay, and until both were direct again after
# the cut was lifted. Beside each scenario, the reference: two libnice peers
# (bench/nice-peer, `scripts/natlab nice`) on the same topology and delays,
# aggressive and regular nomination, their time to a usable pair (from both
# SDPs applied; wzp's time to direct counts from the answer) or "fail".
# Then repeated calls where only birthday probing or port prediction goes
# direct: symmetric (random ports) x port-restricted cone (sym-prc, target
# >= 90 % direct within 10 s of the answer) and sequential symmetric on both
# sides (seq-seq, target >= 50 % within 20 s). Ends with
#   natlab: scenarios=N as_expected=M max_failover_gap_ms=G portmap_direct=D/P netchange_gap_ms=C
#     hard_nat_direct_pct=P seq_nat_direct_pct=Q wzp_direct_ms=W probes_per_success=S
#     libnice_usable_ms=L libnice_aggressive_usable_ms=A libnice_direct=K/N
# (portmap_direct: of the P scenarios with port mapping on a router, D went direct;
# netchange_gap_ms: the longest media gap, down-time aside, over host a's network changes in
# prc-prc: interface down 2 s, default route to another router, move behind another NAT;
# NATLAB_BENCH_NETCHANGE="" skips them).
# (wzp_direct_ms and libnice_*: medians over the scenarios that went direct;
# probes_per_success: both sides' birthday probes per hard-NAT call that went direct.)
# NATLAB_BENCH_NICE=0 skips libnice; NATLAB_BENCH_HARD_RUNS (10) and
# NATLAB_BENCH_SEQ_RUNS (6) set the repeated calls.
# Needs root and network namespaces.
set -uo pipefail
SRC="${WZP_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
NATLAB="$SRC/scripts/natlab"
export WZP_BIN_DIR="${WZP_BIN_DIR:-$SRC/build/bin}"
# failover: the direct path is cut on host a for 2 s, 1 s after the call went direct
FAILOVER="${NATLAB_BENCH_FAILOVER:-prc-prc cgn-prc samelan v6-v6}"

[ "$(id -u)" = 0 ] || { echo "natlab bench: needs root (network namespaces)" >&2; exit 77; }
scns=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do scns+=("$1"); shift; done
[ "${1:-}" = -- ] && shift
upopts=("$@")
[ ${#scns[@]} -gt 0 ] || mapfile -t scns < <("$NATLAB" list | awk 'NR > 1 {print $1}')

# value of key $2 in result line $1
field() {
    local v
    v="$(sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1")"
    echo "${v:--}"
}

# median of the numbers on stdin ("-" if none)
median() { sort -n | awk '{ v[NR] = $1 } END { print NR ? v[int((NR + 1) / 2)] : "-" }'; }

# libnice's time to a usable pair in scenario $1 with nomination $2 ("fail" if none)
nice_ms() {
    [ "${NATLAB_BENCH_NICE:-1}" = 1 ] || { echo -; return; }
    local l
    l="$("$NATLAB" nice "$1" --nomination "$2" "${upopts[@]}" 2>/dev/null | grep '^natlab-nice ' | tail -1)"
    if [ "$(field "$l" ok)" = 1 ]; then field "$l" usable_ms; else echo fail; fi
}

n=0 good=0 maxgap=-1 pm_n=0 pm_direct=0 nice_n=0 nice_ok=0
wzp_ttd=() nice_reg=() nice_agg=()
printf '%-17s %-8s %-8s %-5s %9s %9s %9s %9s %9s %9s %9s  %s\n' SCENARIO EXPECTED PATH OK \
    FIRST_MS DIRECT_MS GAP_MS FALLBK_MS BACK_MS NICE_AGG NICE_REG NOTE
row() { # kind line [gap] [nice_agg nice_reg]
    local l="$2" note
    note="$(sed -n 's/.* why=//p' <<<"$l")"
    [ "$note" = - ] && note=""
    printf '%-17s %-8s %-8s %-5s %9s %9s %9s %9s %9s %9s %9s  %s\n' "$(field "$l" scenario)$1" \
        "$(field "$l" expected)" "$(field "$l" path)" "$( [ "$(field "$l" ok)" = 1 ] && echo yes || echo NO)" \
        "$(field "$l" ttfa_ms)" "$(field "$l" ttd_ms)" "${3:--}" "$(field "$l" failover_ms)" \
        "$(field "$l" recover_ms)" "${4:--}" "${5:--}" "$note"
}
for scn in "${scns[@]}"; do
    line="$("$NATLAB" e2e "$scn" "${upopts[@]}" 2>/dev/null | grep '^natlab-e2e ' | tail -1)"
    [ -n "$line" ] || line="natlab-e2e scenario=$scn expected=$("$NATLAB" expected-path "$scn") path=none ok=0 why=no result (lab failed to come up?)"
    n=$((n + 1))
    ok="$(field "$line" ok)"
    ttd="$(field "$line" ttd_ms)"
    [ "$(field "$line" path)" = direct ] && [[ "$ttd" =~ ^[0-9]+$ ]] && wzp_ttd+=("$ttd")
    agg="$(nice_ms "$scn" aggressive)"
    reg="$(nice_ms "$scn" regular)"
    if [ "$reg" != - ]; then
        nice_n=$((nice_n + 1))
        [[ "$reg" =~ ^[0-9]+$ ]] && nice_ok=$((nice_ok + 1)) nice_reg+=("$reg")
        [[ "$agg" =~ ^[0-9]+$ ]] && nice_agg+=("$agg")
    fi
    row "" "$line" - "$agg" "$reg"
    if [[ "$("$NATLAB" side "$scn" a) $("$NATLAB" side "$scn" b)" =~ /(pm|upnp)( |$) ]]; then
        pm_n=$((pm_n + 1))
        [ "$(field "$line" path)" = direct ] && pm_direct=$((pm_direct + 1))
    fi
    if [[ " $FAILOVER " == *" $scn "* ]] && [ "$("$NATLAB" expected-path "$scn")" = direct ]; then
        line="$(NATLAB_E2E_MAX_GAP_MS=${NATLAB_E2E_MAX_GAP_MS:-300} "$NATLAB" e2e "$scn" \
            --cut-after 1 --cut-for 2 --duration 2 "${upopts[@]}" 2>/dev/null | grep '^natlab-e2e ' | tail -1)"
        [ -n "$line" ] || line="natlab-e2e scenario=$scn expected=direct path=none ok=0 why=no result"
        [ "$(field "$line" ok)" = 1 ] || ok=0
        gap="$(field "$line" gap_ms)"
        [[ "$gap" =~ ^[0-9]+$ ]] && [ "$gap" -gt "$maxgap" ] && maxgap="$gap"
        row "+cut" "$line" "$gap"
    fi
    # a scenario is as expected when its call and its failover run (if any) were
    [ "$ok" = 1 ] && good=$((good + 1))
done
ncgap=-1
if [ -n "${NATLAB_BENCH_NETCHANGE-prc-prc}" ]; then
    for kind in ifdown route move; do
        cutfor=0
        [ "$kind" = ifdown ] && cutfor=2
        line="$(NATLAB_E2E_MAX_LOSS_PCT=35 NATLAB_E2E_MAX_GAP_MS=${NATLAB_E2E_MAX_GAP_MS:-300} \
            "$NATLAB" e2e "${NATLAB_BENCH_NETCHANGE-prc-prc}" --cut-after 1 --cut-for $cutfor \
            --cut-kind $kind --duration 3 "${upopts[@]}" 2>/dev/null | grep '^natlab-e2e ' | tail -1)"
        [ -n "$line" ] || line="natlab-e2e scenario=prc-prc expected=direct path=none ok=0 why=no result"
        g="$(field "$line" netchange_gap_ms)"
        row "+$kind" "$line" "$g"
        if [ "$ncgap" = fail ]; then
            :
        elif [[ "$g" =~ ^[0-9]+$ ]]; then
            [ "$g" -gt "$ncgap" ] && ncgap="$g"
        else
            ncgap=fail
        fi
    done
fi
[ "$ncgap" = -1 ] && ncgap=none
[ "$maxgap" -ge 0 ] || maxgap=none

# Repeated calls through hard NATs: the share direct within the target time.
hard() { # scenario runs within_ms -> "direct_in_time runs probes_of_those ttd..."
    local scn="$1" runs="$2" within="$3" i line ttd in=0 probes=0 t=()
    for i in $(seq "$runs"); do
        line="$("$NATLAB" e2e "$scn" --expect any "${upopts[@]}" 2>/dev/null | grep '^natlab-e2e ' | tail -1)"
        ttd="$(field "$line" ttd_ms)"
        printf '  %-8s run %2d: path %-6s ttd_ms %6s probes %5s roles %s/%s\n' "$scn" "$i" \
            "$(field "$line" path)" "$ttd" "$(field "$line" probes)" "$(field "$line" role_a)" \
            "$(field "$line" role_b)" >&2
        if [ "$(field "$line" path)" = direct ] && [[ "$ttd" =~ ^[0-9]+$ ]] && [ "$ttd" -le "$within" ]; then
            in=$((in + 1))
            probes=$((probes + $(field "$line" probes)))
            t+=("$ttd")
        fi
    done
    echo "$in $runs $probes ${t[*]}"
}
echo "birthday probing / port prediction, repeated calls:"
read -r hin hruns hprobes hts <<<"$(hard sym-prc "${NATLAB_BENCH_HARD_RUNS:-10}" 10000)"
read -r sin sruns sprobes sts <<<"$(hard seq-seq "${NATLAB_BENCH_SEQ_RUNS:-6}" 20000)"
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", b ? 100 * a / b : -1 }'; }
pps="$(awk -v p="$((hprobes + sprobes))" -v n="$((hin + sin))" 'BEGIN { printf "%.0f", n ? p / n : -1 }')"
hard_med="$(printf '%s\n' $hts | median)"
echo "  sym-prc: $hin/$hruns direct within 10 s (median ${hard_med} ms); seq-seq: $sin/$sruns within 20 s"
wmed="$(printf '%s\n' "${wzp_ttd[@]}" | grep . | median)"
lreg="$(printf '%s\n' "${nice_reg[@]}" | grep . | median)"
lagg="$(printf '%s\n' "${nice_agg[@]}" | grep . | median)"
echo "natlab: scenarios=$n as_expected=$good max_failover_gap_ms=$maxgap" \
    "portmap_direct=$pm_direct/$pm_n netchange_gap_ms=$ncgap" \
    "hard_nat_direct_pct=$(pct "$hin" "$hruns") seq_nat_direct_pct=$(pct "$sin" "$sruns")" \
    "wzp_direct_ms=$wmed probes_per_success=$pps libnice_usable_ms=$lreg" \
    "libnice_aggressive_usable_ms=$lagg libnice_direct=$nice_ok/$nice_n"
