#!/usr/bin/env bash
# NAT matrix: one real call (wzp-relay + wzp listen + wzp call) per NAT lab
# scenario, plus the mid-call failover in the scenarios that go direct.
#   scripts/bench natlab [SCENARIO...] [-- up options, e.g. --delay-ms 20]
# Prints, per scenario: expected path, final path, time to first audio, time
# to direct, and for the failover runs the longest media gap while the direct
# path was cut (the design bound is 300 ms at 50 frames/s), how long until
# both sides had moved to the relay, and until both were direct again after
# the cut was lifted. Ends with
#   natlab: scenarios=N as_expected=M max_failover_gap_ms=G portmap_direct=D/P netchange_gap_ms=C
# (portmap_direct: of the P scenarios with port mapping on a router, D went direct;
# netchange_gap_ms: the longest media gap, down-time aside, over host a's network changes in
# prc-prc: interface down 2 s, default route to another router, move behind another NAT;
# NATLAB_BENCH_NETCHANGE="" skips them).
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

n=0 good=0 maxgap=-1 pm_n=0 pm_direct=0
printf '%-17s %-8s %-8s %-5s %9s %9s %9s %9s %9s  %s\n' SCENARIO EXPECTED PATH OK \
    FIRST_MS DIRECT_MS GAP_MS FALLBK_MS BACK_MS NOTE
row() { # kind line
    local l="$2" note
    note="$(sed -n 's/.* why=//p' <<<"$l")"
    [ "$note" = - ] && note=""
    printf '%-17s %-8s %-8s %-5s %9s %9s %9s %9s %9s  %s\n' "$(field "$l" scenario)$1" \
        "$(field "$l" expected)" "$(field "$l" path)" "$( [ "$(field "$l" ok)" = 1 ] && echo yes || echo NO)" \
        "$(field "$l" ttfa_ms)" "$(field "$l" ttd_ms)" "${3:--}" "$(field "$l" failover_ms)" \
        "$(field "$l" recover_ms)" "$note"
}
for scn in "${scns[@]}"; do
    line="$("$NATLAB" e2e "$scn" "${upopts[@]}" 2>/dev/null | grep '^natlab-e2e ' | tail -1)"
    [ -n "$line" ] || line="natlab-e2e scenario=$scn expected=$("$NATLAB" expected-path "$scn") path=none ok=0 why=no result (lab failed to come up?)"
    n=$((n + 1))
    ok="$(field "$line" ok)"
    row "" "$line"
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
echo "natlab: scenarios=$n as_expected=$good max_failover_gap_ms=$maxgap portmap_direct=$pm_direct/$pm_n netchange_gap_ms=$ncgap"
