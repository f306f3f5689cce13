#!/usr/bin/env bash
# Clients know the cluster (docs/cluster.md): a listener whose settings file names the
# three relays of a cluster homes on one; that relay is killed (-9); the listener re-homes on another by
# itself, and a new call reaches it there: the caller dials bob's invite, which names the
# three relays with the dead one first. Then a direct call whose relay dies goes on.
set -uo pipefail
. "$(dirname "$0")/lib/cli.sh"
. "$(dirname "$0")/lib/cluster.sh"
cli_setup wzp-rehome

redis_start
cluster_relay 1
cluster_relay 2
cluster_relay 3
echo "ok   redis-server and three relays up"

# registrations N FILE: wait (20 s at most) until FILE holds N "registered" events.
registrations() {
    for _ in $(seq 200); do
        [ "$(grep -c '"event":"registered"' "$2" 2>/dev/null)" -ge "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

# bob names the cluster in his settings file: host and pin, then more_hosts and more_pins.
mkdir -p "$T/bob"
printf '[relay]\nhost = %s\npin = %s\nmore_hosts = %s, %s\nmore_pins = %s, %s\n' \
    "$RA_1" "$RP_1" "$RA_2" "$RA_3" "$RP_2" "$RP_3" >"$T/bob/config"
timeout 90 "$WZP" listen --home "$T/bob" --alias bob --auto-answer --loopback-candidates \
    --no-audio --no-direct --once --tone 440 --json -v >"$T/bob.json" 2>"$T/bob.err" &
LPID=$!
PIDS+=($LPID)
registrations 1 "$T/bob.json" || { echo "FAIL bob did not register: $(cat "$T/bob.err")"; exit 1; }
HOME_ADDR=$(sed -n 's/.*registered at relay \([^,]*\),.*/\1/p' "$T/bob.err" | tail -n 1)
HOME_N=0
for n in 1 2 3; do eval "[ \"\$RA_$n\" = \"$HOME_ADDR\" ]" && HOME_N=$n; done
[ $HOME_N != 0 ] && echo "ok   bob homed on relay $HOME_N ($HOME_ADDR) of three" \
    || { echo "FAIL bob's home '$HOME_ADDR' is none of the relays"; cat "$T/bob.err"; exit 1; }

eval "kill -9 \$RPID_$HOME_N; wait \$RPID_$HOME_N 2>/dev/null"
t0=$(date +%s%N)
if registrations 2 "$T/bob.json" || registrations 2 "$T/bob.json"; then
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    NEW=$(sed -n 's/.*registered at relay \([^,]*\),.*/\1/p' "$T/bob.err" | tail -n 1)
    [ "$NEW" != "$HOME_ADDR" ] && echo "ok   bob re-homed on $NEW by itself, $ms ms after the kill" \
        || { echo "FAIL bob registered again on the dead relay's address $NEW"; fail=1; }
else
    echo "FAIL bob did not re-home within 40 s of relay $HOME_N's death"
    tail -n 20 "$T/bob.err"
    exit 1
fi

# bob's invite names the three relays, the dead one first: alice dials it and reaches bob
# by his key on his new home.
OTHERS=""
for n in 1 2 3; do [ $n != $HOME_N ] && OTHERS="$OTHERS $n"; done
INV_ARGS=""
for n in $HOME_N $OTHERS; do eval "INV_ARGS=\"\$INV_ARGS --relay \$RA_$n --relay-pin \$RP_$n\""; done
# shellcheck disable=SC2086
INVITE=$("$WZP" invite --home "$T/bob" --alias bob $INV_ARGS --no-qr 2>/dev/null)
case "$INVITE" in wzp1:*) echo "ok   an invite naming three relays" ;;
*) echo "FAIL wzp invite with three relays: '$INVITE'"; exit 1 ;; esac
ok=1
for _ in $(seq 10); do
    "$WZP" call "$INVITE" --home "$T/alice" --loopback-candidates --no-audio --no-direct \
        --tone 660 --json --duration 1 >"$T/alice.json" 2>"$T/alice.err" && { ok=0; break; }
    sleep 1
done
check "alice dials the invite (dead relay first) and reaches bob on his new home" 0 $ok
[ $ok = 0 ] || { cat "$T/alice.err"; tail -n 20 "$T/bob.err"; }
wait "$LPID"; rc=$?
check "bob answered that call and ended with alice's hang-up" 0 $rc
has "bob received audio" "$T/bob.json" '"frames_received":[1-9]'

# --- a direct call does not notice its relay's death --------------------------------------------
# carol and dave on one surviving relay, direct path allowed (loopback): once the call is
# direct, that relay is killed (-9); the call goes on to its end, media flowing.
S=${OTHERS# }; S=${S%% *}
eval "A=\$RA_$S P=\$RP_$S"
timeout 60 "$WZP" listen --relay "$A" --relay-pin "$P" --home "$T/carol" --alias carol \
    --auto-answer --once --loopback-candidates --no-audio --tone 440 --json \
    >"$T/carol.json" 2>"$T/carol.err" &
CPID=$!
PIDS+=($CPID)
registrations 1 "$T/carol.json" || { echo "FAIL carol did not register: $(cat "$T/carol.err")"; exit 1; }
"$WZP" call carol --relay "$A" --relay-pin "$P" --home "$T/dave" --loopback-candidates \
    --no-audio --tone 660 --json --duration 6 >"$T/dave.json" 2>"$T/dave.err" &
DPID=$!
PIDS+=($DPID)
for _ in $(seq 100); do grep -q '"event":"path","path":"direct"' "$T/dave.json" && break; sleep 0.1; done
if grep -q '"event":"path","path":"direct"' "$T/dave.json"; then
    eval "kill -9 \$RPID_$S; wait \$RPID_$S 2>/dev/null"
    echo "ok   dave's call to carol went direct; relay $S killed (-9) during it"
    wait "$DPID"; rc=$?
    check "the direct call went on to its end" 0 $rc
    [ $rc = 0 ] || cat "$T/dave.err"
    has "its summary: direct to the end" "$T/dave.json" '"event":"summary","path":"direct"'
    has "carol kept receiving audio" "$T/carol.json" '"frames_received":[1-9]'
else
    echo "FAIL dave's call to carol never went direct"; cat "$T/dave.json" "$T/dave.err"; fail=1
fi
wait "$CPID" 2>/dev/null
exit $fail
