#!/usr/bin/env bash
# wzp doctor behind real Linux NATs: in every NAT lab scenario (scripts/natlab
# list) wzp-relay runs on the lab's internet with its alternate STUN addresses
# (--stun-alt 198.18.0.11 and 2001:db8::11), `wzp doctor --json` runs on host
# a and on host b, and the NAT classification each reports (mapping and
# filtering, RFC 4787 terms) must be the one the lab router declares for that
# side (`scripts/natlab nat-type SCENARIO a|b`), and the relay's key must be
# verified through the NAT (--relay-pin, QUIC handshake). One scenario also probes the
# gateway for PCP, NAT-PMP and UPnP (nothing answers in the lab: all false,
# within the bound).
# Needs root and network namespaces, else exits 77 (skipped) with the reason.
set -uo pipefail

SRC="${WZP_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
NATLAB="$SRC/scripts/natlab"
export WZP_BIN_DIR="${WZP_BIN_DIR:-$SRC/build/bin}"
SCENARIOS="${NATLAB_DOCTOR_SCENARIOS:-$("$NATLAB" list | awk 'NR > 1 { print $1 }')}"

. "$SRC/tests/integration/lib/natlab_require.sh"
natlab_require wzpld ip nft iptables timeout python3
natlab_require_bins wzp wzp-relay

LAB=""
cleanup() {
    if [ -n "$LAB" ] && [ -d "/run/wzp-natlab/$LAB" ]; then
        timeout 30 "$NATLAB" down "$LAB" >/dev/null 2>&1
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

failures=0
checks=0
start=$SECONDS
n=0
nl() { timeout 30 "$NATLAB" "$@"; }

# doctor_side SCENARIO SIDE [doctor options]: runs doctor in SIDE, prints "MAPPING FILTERING"
for scn in $SCENARIOS; do
    n=$((n + 1))
    LAB="wzpld$$n$n"
    if ! nl up "$scn" --id "$LAB" >/dev/null; then
        echo "FAIL: $scn: lab did not come up"
        failures=$((failures + 1))
        continue
    fi
    dir="/run/wzp-natlab/$LAB"
    nl spawn --lab "$LAB" relay relay "$WZP_BIN_DIR/wzp-relay" --listen 198.18.0.10:4433 \
        --listen6 '[2001:db8::10]:4433' --stun-alt 198.18.0.11 --stun-alt 2001:db8::11 \
        --home "$dir/relay-home" >/dev/null
    for _ in $(seq 50); do grep -q fingerprint "$dir/relay.log" 2>/dev/null && break; sleep 0.1; done
    pin=$(sed -n 's/.*fingerprint //p' "$dir/relay.log")
    extra=(--no-portmap)
    [ "$scn" = prc-prc ] && extra=()
    pids=()
    for side in a b; do
        relay=198.18.0.10:4433
        [ "$("$NATLAB" side "$scn" $side)" = v6 ] && relay='[2001:db8::10]:4433'
        nl exec --lab "$LAB" $side env WZP_HOME="$dir/home-$side" \
            "$WZP_BIN_DIR/wzp" doctor --relay "$relay" --relay-pin "$pin" --json "${extra[@]}" \
            >"$dir/doctor-$side.json" 2>"$dir/doctor-$side.err" &
        pids+=($!)
    done
    for i in 0 1; do wait "${pids[$i]}"; done
    for side in a b; do
        checks=$((checks + 1))
        want="$("$NATLAB" nat-type "$scn" $side) key-verified"
        got="$(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
q = "key-verified" if d["quic"] and d["quic"]["pin"] == "match" else "key-NOT-verified"
print(d["nat"]["mapping"], d["nat"]["filtering"], q) if d["nat"] else print("none")' \
            "$dir/doctor-$side.json" 2>/dev/null)"
        if [ "$got" = "$want" ]; then
            echo "ok:   [$((SECONDS - start))s] $scn $side: $got"
        else
            echo "FAIL: [$((SECONDS - start))s] $scn $side: doctor says '${got:-nothing}', the lab declares '$want'"
            sed 's/^/      /' "$dir/doctor-$side.json" "$dir/doctor-$side.err"
            failures=$((failures + 1))
        fi
    done
    if [ "$scn" = prc-prc ]; then
        checks=$((checks + 1))
        if python3 -c 'import json, sys
p = json.load(open(sys.argv[1]))["portmap"]
sys.exit(0 if p == {"gateway": "192.168.1.1", "pcp": False, "natpmp": False, "upnp": False} else 1)' \
            "$dir/doctor-a.json"; then
            echo "ok:   [$((SECONDS - start))s] $scn a: the gateway answers no port-mapping protocol"
        else
            echo "FAIL: $scn a: port mapping: $(cat "$dir/doctor-a.json")"
            failures=$((failures + 1))
        fi
    fi
    nl down "$LAB" >/dev/null 2>&1
    LAB=""
done

echo "natlab doctor: $n scenarios, $checks checks, $failures failed, $((SECONDS - start)) s"
[ "$failures" = 0 ]
