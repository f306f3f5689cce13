#!/usr/bin/env bash
# wzp doctor on loopback: against a relay with an alternate STUN address
# (--stun-alt 127.0.0.2) the JSON says UDP works, three RTT samples, no NAT,
# mapping EIM and filtering EIF (loopback translates and filters nothing);
# without --stun-alt mapping is still known (no translation) but filtering is
# not; a relay that does not answer gives exit 4 within the STUN timeouts; the
# relay can come from $WZP_RELAY like for the other commands; the text report
# names each part; the relay's key is checked by a QUIC handshake from a throwaway
# identity (exit 5 for another key), the TLS-over-TCP fallback by a TLS handshake pinned
# to that key (works; refused on a closed port; exit 5 for another key). (--no-portmap: the gateway is not ours to probe.)
set -uo pipefail
. "$(dirname "$0")/lib/cli.sh"
cli_setup wzp-doctor
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

"$RELAY" --listen 127.0.0.1:0 --home "$T/relay" --workers 1 --stun-alt 127.0.0.2 >"$T/relay.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q fingerprint "$T/relay.out" && break; sleep 0.1; done
RA=$(sed -n 's/.*listening on //p' "$T/relay.out")
RP=$(sed -n 's/.*fingerprint //p' "$T/relay.out")
RT=$(sed -n 's/^wzp-relay: tcp .*://p' "$T/relay.out")
[ -n "$RA" ] && [ -n "$RP" ] && [ -n "$RT" ] || { echo "relay did not start"; cat "$T/relay.out"; exit 1; }

# jq-free checks: python3 parses the one JSON object and evaluates assertions on it
judge() { # name file python-expression-on-d
    if python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($3) else 1)" "$2" 2>"$T/py.err"; then
        ok "$1"
    else
        bad "$1: $(cat "$2") $(cat "$T/py.err")"
    fi
}

timeout 30 "$WZP" doctor --relay "$RA" --relay-tcp "$RT" --home "$T/h" --no-portmap --json >"$T/d1.json" 2>"$T/d1.err"
check "doctor against a relay with --stun-alt" 0 $?
judge "one JSON object: UDP, reachable, 3 RTT samples" "$T/d1.json" \
    'd["event"] == "doctor" and d["udp"] and d["relays"][0]["reachable"] and d["relays"][0]["rtt_samples"] == 3 and d["relays"][0]["rtt_ms"] >= 0'
judge "loopback: no NAT, EIM, EIF, ports preserved" "$T/d1.json" \
    'd["nat"] == {"present": False, "mapping": "EIM", "filtering": "EIF", "ports": "preserved"}'
judge "the alternate address is 127.0.0.2" "$T/d1.json" 'd["relays"][0]["alternate"].startswith("127.0.0.2:")'
judge "TCP fallback works (TLS to the key QUIC proved), port mapping not probed" "$T/d1.json" \
    'd["tcp_fallback"]["ok"] and d["tcp_fallback"]["port"] == '"$RT"' and d["tcp_fallback"]["handshake_ms"] > 0 and d["portmap"] is None'
judge "without a pin: the relay's key shown (QUIC handshake)" "$T/d1.json" \
    'd["quic"]["ok"] and d["quic"]["pin"] == "none" and d["quic"]["fingerprint"] == "'"$RP"'"'

# The relay's key, checked by a QUIC handshake from a throwaway identity.
timeout 30 "$WZP" doctor --relay "$RA" --relay-pin "$RP" --home "$T/h" --no-portmap --json \
    >"$T/dp.json" 2>"$T/dp.err"
check "doctor with the right pin" 0 $?
judge "the pinned key verified" "$T/dp.json" 'd["quic"]["ok"] and d["quic"]["pin"] == "match" and d["quic"]["handshake_ms"] > 0'
OTHER_FP=$("$WZP" id --home "$T/other" 2>/dev/null)
timeout 30 "$WZP" doctor --relay "$RA" --relay-pin "$OTHER_FP" --home "$T/h" --no-portmap --json \
    >"$T/dw.json" 2>"$T/dw.err"
check "doctor with another key as the pin" 5 $?
judge "the wrong key reported" "$T/dw.json" 'not d["quic"]["ok"] and d["quic"]["pin"] == "mismatch" and d["udp"]'
timeout 30 "$WZP" doctor --relay "$RA" --relay-pin "$OTHER_FP" --relay-tcp "$RT" --home "$T/h" --no-portmap \
    --json >"$T/dwt.json" 2>"$T/dwt.err"
check "the wrong key over TCP too" 5 $?
judge "TCP: the wrong key reported" "$T/dwt.json" 'd["tcp_fallback"]["pin_mismatch"] and not d["tcp_fallback"]["ok"]'
closed=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
timeout 30 "$WZP" doctor --relay "$RA" --relay-pin "$RP" --relay-tcp "$closed" --home "$T/h" --no-portmap \
    --json >"$T/dc.json" 2>"$T/dc.err"
check "a closed TCP port: UDP still works" 0 $?
judge "TCP fallback: connection refused" "$T/dc.json" \
    'not d["tcp_fallback"]["ok"] and not d["tcp_fallback"]["connected"] and "refused" in d["tcp_fallback"]["error"]'
[ ! -e "$T/h" ] && ok "doctor wrote nothing into --home (no identity of the user's is used)" ||
    bad "doctor wrote into --home: $(ls -A "$T/h")"
"$WZP" doctor --relay "$RA" --relay-pin nonsense --home "$T/h" >/dev/null 2>"$T/dbad.err"
check "a malformed pin" 2 $?; one_line "malformed pin" "$T/dbad.err"

timeout 30 "$WZP" doctor --relay "$RA" --relay-tcp "$RT" --home "$T/h" --no-portmap >"$T/d1.txt" 2>&1
check "text report" 0 $?
for k in "UDP: *ok" "rtt [0-9.]* ms" "mapping: *endpoint-independent (EIM)" \
    "filtering: *endpoint-independent (EIF)" "IPv6:" "TCP fallback: *works: TLS to port $RT"; do
    has "text names '$k'" "$T/d1.txt" "$k"
done

# A relay without --stun-alt: the relay's own port only.
"$RELAY" --listen 127.0.0.1:0 --home "$T/relay2" --workers 1 >"$T/relay2.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do grep -q fingerprint "$T/relay2.out" && break; sleep 0.1; done
RA2=$(sed -n 's/.*listening on //p' "$T/relay2.out")
WZP_RELAY="$RA2" timeout 30 "$WZP" doctor --home "$T/h" --no-portmap --json >"$T/d2.json" 2>"$T/d2.err"
check "doctor with the relay from \$WZP_RELAY" 0 $?
judge "without --stun-alt: mapping known (no translation), filtering unknown" "$T/d2.json" \
    'd["relay"] == "'"$RA2"'" and d["relays"][0]["alternate"] is None and d["nat"]["mapping"] == "EIM" and d["nat"]["filtering"] == "unknown"'

# A cluster's list: the other relays' keys checked too, each to its own pin.
RP2=$(sed -n 's/.*fingerprint //p' "$T/relay2.out")
timeout 30 "$WZP" doctor --relay "$RA,$RA2" --relay-pin "$RP,$RP2" --home "$T/h" --no-portmap --json \
    >"$T/dl.json" 2>"$T/dl.err"
check "doctor over a cluster's list" 0 $?
judge "the second relay's key verified" "$T/dl.json" \
    'd["quic"]["pin"] == "match" and len(d["more_relays"]) == 1 and d["more_relays"][0]["relay"] == "'"$RA2"'" and d["more_relays"][0]["quic_ok"] and not d["more_relays"][0]["pin_mismatch"]'
timeout 30 "$WZP" doctor --relay "$RA,$RA2" --relay-pin "$RP,$OTHER_FP" --home "$T/h" --no-portmap \
    >"$T/dlw.txt" 2>&1
check "a cluster whose second relay has another key" 5 $?
has "text names the second relay's wrong key" "$T/dlw.txt" "also relay $RA2: WRONG"

# Nobody there: a closed loopback port.
dead=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
start=$SECONDS
timeout 30 "$WZP" doctor --relay "127.0.0.1:$dead" --home "$T/h" --no-portmap --json >"$T/d3.json" 2>"$T/d3.err"
check "a relay that does not answer" 4 $?
judge "UDP blocked, nothing else known (no key: TCP not tried)" "$T/d3.json" \
    'not d["udp"] and d["nat"] is None and d["tcp_fallback"] is None'
[ $((SECONDS - start)) -le 10 ] && ok "gave up within $((SECONDS - start)) s" || bad "took $((SECONDS - start)) s"

"$WZP" doctor --home "$T/h" >/dev/null 2>"$T/d4.err"; check "no relay" 2 $?; one_line "no relay" "$T/d4.err"
exit $fail
