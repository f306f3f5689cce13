#!/usr/bin/env bash
# NAT lab self-test: proves scripts/natlab builds the NATs it claims, with
# plain UDP tools (tests/integration/natlab_probe.py), before the real wzp
# binaries run in it.
#   * every NAT kind is classified from inside the lab, RFC 5780-style,
#     against two relay addresses, and must match the scenario's declared
#     mapping/filtering;
#   * a simple simultaneous punch between the two hosts succeeds where it
#     must (cone-cone, symmetric-full cone, hairpin) and fails where it must
#     (symmetric-symmetric, symmetric-port-restricted, no hairpin);
#   * wzp-netdelay adds at least the configured delay; --loss-pct 100 drops all;
#   * `down` leaves no namespace or process behind, also after `up` failed
#     midway or was interrupted.
# Needs root and network namespaces, else exits 77 (skipped) with the reason.
set -uo pipefail

SRC="${WZP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
NATLAB="$SRC/scripts/natlab"
PROBE="$SRC/tests/integration/natlab_probe.py"
export WZP_BIN_DIR="${WZP_BIN_DIR:-$SRC/build/bin}"
PY="$(command -v /usr/bin/python3 || command -v python3 || true)"
PORT=7000
ALT_PORT=7001

. "$SRC/tests/integration/lib/natlab_require.sh"
natlab_require wzplt ip nft iptables ip6tables timeout
[ -n "$PY" ] || skip "python3 not installed"
natlab_require_bins wzp-netdelay

failures=0
start=$SECONDS
LABS=()
fail() {
    echo "FAIL: $*"
    failures=$((failures + 1))
}
ok() { echo "ok:   [$((SECONDS - start))s] $*"; }

cleanup() {
    local id
    for id in "${LABS[@]}"; do
        [ -d "/run/wzp-natlab/$id" ] && timeout 30 "$NATLAB" down "$id" >/dev/null 2>&1
    done
}
trap cleanup EXIT
trap 'exit 1' INT TERM

nl() { timeout 30 "$NATLAB" "$@"; }

# every trace of lab $1 is gone: no namespace, no state, no process naming it
assert_gone() {
    local id="$1" what="$2" left procs p
    left="$(ip netns list | awk '{print $1}' | grep "^$id-" | tr '\n' ' ')"
    [ -z "$left" ] || fail "$what: namespaces left behind: $left"
    [ ! -e "/run/wzp-natlab/$id" ] || fail "$what: state dir left behind"
    # every process the lab starts names the lab dir on its command line
    # ("[w]zpl..." so grep does not find its own command line)
    procs="$(grep -ls --null-data "/run/wzp-natlab/[${id:0:1}]${id:1}/" /proc/[0-9]*/cmdline | tr '\n' ' ')"
    for p in ${3:-}; do
        [ -d "/proc/$p" ] && [ "$(awk '{print $3}' "/proc/$p/stat" 2>/dev/null)" != Z ] && procs="$procs $p"
    done
    [ -z "$procs" ] || fail "$what: processes left behind:$procs"
    [ -n "$left$procs" ] || ok "$what: nothing left behind"
}

# lab_start SCENARIO [up options]: sets ID, starts the probe server on the relay
lab_start() {
    local scn="$1" i
    shift
    ID="wzplt$$n${#LABS[@]}"
    LABS+=("$ID")
    if ! nl up "$scn" --id "$ID" "$@" >/dev/null; then
        fail "$scn: up failed"
        return 1
    fi
    nl spawn --lab "$ID" relay probe "$PY" "$PROBE" server --addr 198.18.0.10 --addr 198.18.0.11 \
        --addr 2001:db8::10 --addr 2001:db8::11 --port $PORT --port $ALT_PORT >/dev/null
    for i in $(seq 50); do
        grep -q ready "/run/wzp-natlab/$ID/probe.log" 2>/dev/null && return 0
        sleep 0.1
    done
    fail "$scn: probe server did not start: $(cat "/run/wzp-natlab/$ID/probe.log")"
    return 1
}

lab_stop() {
    local scn="$1" pids
    pids="$(awk '{print $1}' "/run/wzp-natlab/$ID/pids" | tr '\n' ' ')"
    nl down "$ID" || fail "$scn: down failed"
    assert_gone "$ID" "$scn down" "$pids"
}

relay_of() { # host -> relay addresses "IP ALT" of the host's family
    local fam
    fam="$(grep "^NATLAB_${1^^}_FAMILY=" "/run/wzp-natlab/$ID/env" | cut -d= -f2)"
    if [ "$fam" = 6 ]; then echo "2001:db8::10 2001:db8::11"; else echo "198.18.0.10 198.18.0.11"; fi
}

TABLE=()
# classify SCENARIO HOST: RFC 5780-style, compared with the declared type
classify() {
    local scn="$1" h="$2" r ra out want got mapped
    read -r r ra <<<"$(relay_of "$h")"
    out="$(timeout 20 "$NATLAB" exec --lab "$ID" "$h" "$PY" "$PROBE" classify --server "$r" \
        --alt "$ra" --port $PORT --alt-port $ALT_PORT)"
    want="$("$NATLAB" nat-type "$scn" "$h")"
    got="$("$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print(d["mapping"], d["filtering"])' "$out" 2>/dev/null)"
    mapped="$("$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); a=d["mapped"][0]; print("%s:%s natted=%s" % ("[%s]" % a if ":" in a else a, d["mapped"][1], d["natted"]))' "$out" 2>/dev/null)"
    TABLE+=("$(printf '%-16s %s  %-10s %-10s %s' "$scn" "$h" "$want" "${got:-?}" "$mapped")")
    if [ "$got" = "$want" ]; then
        ok "$scn: $h classified $got ($mapped)"
    else
        fail "$scn: $h declared $want, classified '${got:-error}': $out"
    fi
    if [[ "$(timeout 10 "$NATLAB" side "$scn" "$h")" == nat/snat* ]]; then
        # the SNAT rule's port range must show in the mapping
        local port="${mapped%% *}"
        port="${port##*:}"
        if [ -n "$port" ] && [ "$port" -ge 20000 ] && [ "$port" -le 20999 ]; then
            ok "$scn: $h mapped port $port in 20000-20999"
        else
            fail "$scn: $h mapped port '$port' outside 20000-20999"
        fi
    fi
}

# punch SCENARIO EXPECT(ok|fail|any)
punch() {
    local scn="$1" expect="$2" ra rb pa pb oa ob res
    read -r ra _ <<<"$(relay_of a)"
    read -r rb _ <<<"$(relay_of b)"
    oa="/run/wzp-natlab/$ID/punch-a.json"
    ob="/run/wzp-natlab/$ID/punch-b.json"
    timeout 20 "$NATLAB" exec --lab "$ID" a "$PY" "$PROBE" punch --server "$ra" --port $PORT \
        --room "$ID" --me a --peer b --timeout 2.5 >"$oa" &
    pa=$!
    timeout 20 "$NATLAB" exec --lab "$ID" b "$PY" "$PROBE" punch --server "$rb" --port $PORT \
        --room "$ID" --me b --peer a --timeout 2.5 >"$ob" &
    pb=$!
    wait $pa
    local ca=$?
    wait $pb
    local cb=$?
    res=fail
    [ $ca = 0 ] && [ $cb = 0 ] && res=ok
    if grep -q "never registered" "$oa" "$ob"; then
        fail "$scn: punch not attempted (a peer never registered): a=$(cat "$oa") b=$(cat "$ob")"
        return
    fi
    case "$expect" in
    any) ok "$scn: punch $res (not asserted: robustness case)" ;;
    "$res") ok "$scn: punch $res as expected" ;;
    *) fail "$scn: punch $res, expected $expect: a=$(cat "$oa") b=$(cat "$ob")" ;;
    esac
}

# Classification + punch per NAT kind: every kind is classified once, the
# punch checks the interesting pairs ("-": not classified / not punched).
# snat-snatr is not punched: its random mapping draws from only 1000 ports,
# so a punch succeeds by chance once in a thousand runs.
#   scenario         classify  punch
while read -r scn hosts expect; do
    lab_start "$scn" || continue
    [ "$hosts" = - ] || for h in ${hosts//,/ }; do classify "$scn" "$h"; done
    [ "$expect" = - ] || punch "$scn" "$expect"
    lab_stop "$scn"
done <<'EOF'
prc-prc          a,b    ok
sym-symr         a,b    fail
sym-prc          -      fail
sym-full         b      ok
sym-arc          b      ok
snat-snatr       a,b    -
cgn-prc          a      ok
cgnsym-prc       a      fail
prc-prc-nofw     a      -
samelan          -      fail
samelan-hairpin  a      ok
v6-v6            a      ok
EOF

# Delay: RTT to the relay (delay only on the host's egress) is at least the
# configured delay; host to host it is applied on both sides. Classification
# and punching still work through the delay line.
DELAY=100
if lab_start public-public --delay-ms $DELAY; then
    classify public-public a
    out="$(timeout 20 "$NATLAB" exec --lab "$ID" a "$PY" "$PROBE" rtt --server 198.18.0.10 \
        --port $PORT --count 5)"
    min="$("$PY" -c 'import json,sys; print(json.loads(sys.argv[1]).get("min_ms", -1))' "$out" 2>/dev/null)"
    if "$PY" -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= float(sys.argv[2]) else 1)' "${min:--1}" $DELAY; then
        ok "delay: min RTT $min ms >= $DELAY ms"
    else
        fail "delay: min RTT '${min}' ms < $DELAY ms: $out"
    fi
    punch public-public ok
    logs="$(mktemp -d)"
    NATLAB_LOG_DIR="$logs" lab_stop public-public-delay
    # the delay line exited cleanly on SIGTERM (no sanitizer report) after passing packets
    for h in a b; do
        log="$logs/$ID/netdelay-$h.log"
        if grep -Eq 'passed [1-9]' "$log" 2>/dev/null && ! grep -Eq 'Sanitizer|runtime error' "$log"; then
            ok "delay: $h: $(tail -1 "$log")"
        else
            fail "delay: $h: delay line log: $(cat "$log" 2>/dev/null)"
        fi
    done
    rm -rf "$logs"
fi

# Loss: --loss-pct 100 drops every UDP packet leaving the end hosts.
if lab_start public-public --loss-pct 100; then
    if timeout 20 "$NATLAB" exec --lab "$ID" a "$PY" "$PROBE" rtt --server 198.18.0.10 \
        --port $PORT --count 3 --wait 0.3 >/dev/null; then
        fail "loss 100%: a reply came back"
    else
        ok "loss 100%: nothing came back"
    fi
    lab_stop public-public-loss
fi

# `up` failing midway (after the delay lines started) removes what it built.
ID="wzplt$$f"
LABS+=("$ID")
if WZP_NATLAB_FAIL_AT=delay timeout 30 "$NATLAB" up prc-prc --id "$ID" --delay-ms 5 >/dev/null 2>&1; then
    fail "injected failure: up succeeded"
else
    ok "injected failure: up failed"
fi
assert_gone "$ID" "failed up"

# `up` interrupted (SIGTERM) midway removes what it built.
ID="wzplt$$i"
LABS+=("$ID")
timeout 30 "$NATLAB" up cgn-cgn --id "$ID" --delay-ms 5 >/dev/null 2>&1 &
upid=$!
sleep 1
kill -TERM $upid 2>/dev/null
wait $upid
rc=$?
if [ -d "/run/wzp-natlab/$ID" ]; then
    echo "note: up finished before the signal; removing it normally"
    nl down "$ID" >/dev/null
else
    ok "interrupted up exited $rc"
fi
assert_gone "$ID" "interrupted up"

echo
echo "classification (declared vs measured):"
printf '%-16s %s  %-10s %-10s %s\n' SCENARIO H DECLARED MEASURED "MAPPED"
printf '%s\n' "${TABLE[@]}"
echo
echo "natlab self-test: $failures failure(s) in $((SECONDS - start)) s"
[ "$failures" = 0 ]
