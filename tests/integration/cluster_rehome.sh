#!/usr/bin/env bash
# Clients know the cluster (docs/cluster.md): a listener given the three relays of a
# cluster homes on one; that relay is killed (-9); the listener re-homes on another by
# itself, and a new call by its alias reaches it there. A caller given a list with a dead
# relay first still gets through.
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

# shellcheck disable=SC2046 # cluster_args is a word list
timeout 90 "$WZP" listen $(cluster_args 1 2 3) --home "$T/bob" --alias bob --auto-answer \
    --once --tone 440 --json -v >"$T/bob.json" 2>"$T/bob.err" &
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

# A caller whose list starts with the dead relay reaches bob by his alias.
OTHERS=""
for n in 1 2 3; do [ $n != $HOME_N ] && OTHERS="$OTHERS $n"; done
ok=1
for _ in $(seq 10); do
    # shellcheck disable=SC2046,SC2086
    "$WZP" call bob $(cluster_args $HOME_N $OTHERS) --home "$T/alice" --tone 660 --json \
        --duration 1 >"$T/alice.json" 2>"$T/alice.err" && { ok=0; break; }
    sleep 1 # the alias may point at the dead relay until its presence is taken over
done
check "alice (list starting with the dead relay) calls bob on his new home" 0 $ok
[ $ok = 0 ] || { cat "$T/alice.err"; tail -n 20 "$T/bob.err"; }
wait "$LPID"; rc=$?
check "bob answered that call and ended with alice's hang-up" 0 $rc
has "bob received audio" "$T/bob.json" '"frames_received":[1-9]'
exit $fail
