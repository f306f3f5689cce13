#!/usr/bin/env bash
# A relayed call survives its relay's death (docs/cluster.md, "A relay dies mid-call"):
# redis-server and three relays of our own. (1) alice and bob, homed on one relay, talk
# through it (tones, relayed only); that relay is killed (-9): both ends re-home and re-attach
# the same call elsewhere, audio goes on both ways, and the call ends normally with alice's
# hang-up (if bob homed elsewhere, only alice moves). (2) A call across two relays where only
# the caller's relay dies: the callee's relay re-points its link, the callee stays where it is.
# (3) A relay given SIGTERM drains: its clients are told to move and their call goes on
# elsewhere; its presence entries are deleted before it exits.
set -uo pipefail
. "$(dirname "$0")/lib/cli.sh"
. "$(dirname "$0")/lib/cluster.sh"
cli_setup wzp-failover
[ -z "${KEEP:-}" ] || trap - EXIT

redis_start
for n in 1 2 3; do cluster_relay "$n"; done
echo "ok   redis-server and three relays up"

# settings N NAME FIRST...: NAME's settings file names relays FIRST... (host/pin, then
# more_hosts/more_pins): the client homes on the lowest RTT, usually the first on loopback.
settings() {
    local name=$1 first=$2 more_h="" more_p="" n h p
    shift 2
    mkdir -p "$T/$name"
    for n in "$@"; do
        eval "h=\$RA_$n p=\$RP_$n"
        more_h="$more_h${more_h:+, }$h" more_p="$more_p${more_p:+, }$p"
    done
    eval "h=\$RA_$first p=\$RP_$first"
    printf '[relay]\nhost = %s\npin = %s\n' "$h" "$p" >"$T/$name/config"
    [ -z "$more_h" ] || printf 'more_hosts = %s\nmore_pins = %s\n' "$more_h" "$more_p" >>"$T/$name/config"
}
home_of() { # NAME: the number of the relay NAME registered with last
    local a n
    a=$(sed -n 's/.*registered at relay \([^,]*\),.*/\1/p' "$T/$1.err" | tail -n 1)
    for n in 1 2 3; do eval "[ \"\$RA_$n\" = \"$a\" ]" && { echo $n; return; }; done
    echo 0
}
wait_grep() { # FILE PATTERN SECONDS
    for _ in $(seq $(($3 * 10))); do grep -qs -- "$2" "$1" && return 0; sleep 0.1; done
    return 1
}
# tone_to_the_end NAME: NAME's recording holds the peer's tone in its last second (after the
# move), and covers the call (at least DUR - 2 s).
tone_to_the_end() {
    python3 - "$T/$1.wav" "$DUR" <<'PY'
import math, struct, sys, wave
w = wave.open(sys.argv[1]); n = w.getnframes(); rate = w.getframerate()
pcm = struct.unpack("<%dh" % n, w.readframes(n))
tail = pcm[-rate:]
rms = math.sqrt(sum(x * x for x in tail) / max(1, len(tail)))
print("recorded %.1f s, rms of the last second %.0f" % (n / rate, rms))
sys.exit(0 if n / rate >= float(sys.argv[2]) - 2 and rms > 500 else 1)
PY
}
# call_pair CALLER_HOME... : bob listens (settings "bob"), alice calls him (settings "alice"),
# both recording; returns once both are active. APID, LPID.
DUR=14
call_pair() {
    rm -f "$T"/alice.* "$T"/bob.*
    timeout 60 "$WZP" listen --home "$T/bob" --alias bob --auto-answer --once --tone 440 \
        --record "$T/bob.wav" --loopback-candidates --no-audio --no-direct --json -v \
        >"$T/bob.json" 2>"$T/bob.err" &
    LPID=$!
    PIDS+=($LPID)
    wait_grep "$T/bob.json" '"event":"registered"' 20 || { echo "FAIL bob did not register"; cat "$T/bob.err"; exit 1; }
    timeout 60 "$WZP" call bob --home "$T/alice" --tone 660 --duration $DUR --record "$T/alice.wav" \
        --loopback-candidates --no-audio --no-direct --json -v >"$T/alice.json" 2>"$T/alice.err" &
    APID=$!
    PIDS+=($APID)
    wait_grep "$T/alice.json" '"state":"active"' 20 && wait_grep "$T/bob.json" '"state":"active"' 5 ||
        { echo "FAIL the call did not start"; cat "$T/alice.err" "$T/bob.err"; exit 1; }
    sleep 1
}
# the_call_goes_on WHAT MOVED...: both ends exit 0 at alice's hang-up, each heard the other's
# tone after the move, and the ends in MOVED re-attached the call.
the_call_goes_on() {
    local what=$1 who rc
    shift
    wait "$APID"; rc=$?
    check "$what: alice's call went on to her hang-up" 0 $rc
    wait "$LPID"; rc=$?
    check "$what: bob's side ended normally too" 0 $rc
    has "$what: bob heard the peer hang up" "$T/bob.json" '"detail":"the peer hung up"'
    for who in alice bob; do
        if tone_to_the_end $who >"$T/$who.tone"; then echo "ok   $what: $who heard the tone after the move ($(cat "$T/$who.tone"))"
        else echo "FAIL $what: $who's recording: $(cat "$T/$who.tone")"; fail=1; fi
    done
    for who in "$@"; do
        has "$what: $who re-attached the same call on a new relay" "$T/$who.err" 're-attached on the new relay'
    done
    [ $fail = 0 ] || { tail -n 30 "$T/alice.err" "$T/bob.err"; }
}

on_relay() { # N: the callers/callees (alice, bob) homed on relay N
    local who
    for who in alice bob; do [ "$(home_of $who)" = "$1" ] && echo $who; done
}

# --- (1) the relay of a relayed call dies ------------------------------------------------------
# Both know the whole cluster (in different orders); the relay alice is on is killed, with
# bob on it too or not: those on it move.
settings alice 1 2 3
settings bob 1 3 2
call_pair
DEAD=$(home_of alice)
MOVED=$(on_relay "$DEAD" | tr '\n' ' ')
echo "ok   alice and bob talk (alice on relay $DEAD, bob on relay $(home_of bob)); killing relay $DEAD (-9)"
eval "kill -9 \$RPID_$DEAD; wait \$RPID_$DEAD 2>/dev/null"
# shellcheck disable=SC2086 # a word list
the_call_goes_on "relay $DEAD killed" $MOVED

# --- (2) across two relays, only the caller's relay dies ---------------------------------------
cluster_relay "$DEAD" # a fresh relay in the dead one's place (new port and key)
echo "ok   relay $DEAD restarted at $(eval echo "\$RA_$DEAD")"
# bob knows only relay X; alice the two others: whichever she homes on, the call crosses.
X=0 Y=0
for n in 1 2 3; do [ $n != "$DEAD" ] && { [ $X = 0 ] && X=$n || Y=$n; }; done
settings bob "$X"
settings alice "$Y" "$DEAD"
call_pair
HA=$(home_of alice)
[ "$(home_of bob)" = "$X" ] && [ "$HA" != "$X" ] && echo "ok   alice on relay $HA calls bob on relay $X; killing relay $HA (-9)" ||
    { echo "FAIL homes: alice $HA bob $(home_of bob) (bob wanted on $X, alice elsewhere)"; fail=1; }
eval "kill -9 \$RPID_$HA; wait \$RPID_$HA 2>/dev/null"
the_call_goes_on "the caller's relay killed, the callee's up" alice
[ "$(home_of bob)" = "$X" ] && echo "ok   bob stayed on relay $X" || { echo "FAIL bob moved"; fail=1; }
[ "$HA" = "$Y" ] && LIVE=$DEAD || LIVE=$Y # the relays up now: X and LIVE

# --- (3) SIGTERM: the relay drains ---------------------------------------------------------------
# alice and bob know relays X and LIVE; carol knows only the relay alice homes on. That relay
# gets SIGTERM: those on it move at once with their call, it exits by itself (0), and carol's
# presence is deleted as it stops, not left to expire.
settings alice "$X" "$LIVE"
settings bob "$LIVE" "$X"
call_pair
H=$(home_of alice)
MOVED=$(on_relay "$H" | tr '\n' ' ')
rcli() { redis-cli -s "$REDIS_SOCK" -a "$(cat "$T/redis.pw")" --no-auth-warning "$@"; }
before=$(rcli --scan --pattern 'wzp:fp:*' | sort)
eval "CA=\$RA_$H CP=\$RP_$H"
timeout 60 "$WZP" listen --relay "$CA" --relay-pin "$CP" --home "$T/carol" --alias carol \
    --no-audio --json >"$T/carol.json" 2>"$T/carol.err" &
PIDS+=($!)
wait_grep "$T/carol.json" '"event":"registered"' 20 || { echo "FAIL carol did not register"; fail=1; }
sleep 0.5
CAROL_KEY=$(comm -13 <(echo "$before") <(rcli --scan --pattern 'wzp:fp:*' | sort) | head -n 1)
[ -n "$CAROL_KEY" ] && echo "ok   carol's presence is in Redis ($CAROL_KEY)" || { echo "FAIL no presence for carol"; fail=1; }
eval "HPID=\$RPID_$H"
echo "ok   relay $H (alice's$([ "$(home_of bob)" = "$H" ] && echo ", bob's")) gets SIGTERM"
kill -TERM "$HPID"
wait "$HPID"; rc=$?
check "relay $H drained and exited by itself after SIGTERM" 0 $rc
[ -n "$CAROL_KEY" ] && [ "$(rcli exists "$CAROL_KEY")" = 0 ] &&
    echo "ok   carol's presence was deleted as relay $H stopped" || { echo "FAIL carol's presence is still there"; fail=1; }
has "alice was told to move" "$T/alice.err" 'the relay is stopping'
# shellcheck disable=SC2086 # a word list
the_call_goes_on "relay $H drained (SIGTERM)" $MOVED
exit $fail
