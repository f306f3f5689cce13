#!/usr/bin/env bash
# The errors a user meets with `wzp call/listen/reflect`, with the real
# binaries on loopback: each gives a one-line message and its own exit code,
# and nothing is left running. Also one good call both ways (file in, WAV out).
set -uo pipefail
. "$(dirname "$0")/lib/relay.sh"
. "$(dirname "$0")/lib/cli.sh"
cli_setup wzp-cli

relay_start "$T"
# Loopback candidates only: nothing is sent to any other interface of this machine.
# No sound devices: these calls must never open a real microphone or speaker.
R=(--relay "$RA" --relay-pin "$RP" --loopback-candidates --no-audio)
OTHER_FP=$("$WZP" id --home "$T/other" 2>/dev/null)

# reflect works
out=$("$WZP" reflect "${R[@]}" --home "$T/b" 2>"$T/err"); rc=$?
check "reflect" 0 $rc
case "$out" in 127.0.0.1:*) echo "ok   reflexive address $out" ;; *) echo "FAIL reflect printed '$out'"; fail=1 ;; esac

# wrong relay pin
"$WZP" reflect --relay "$RA" --relay-pin "$OTHER_FP" --home "$T/b" 2>"$T/err" >/dev/null; rc=$?
check "wrong relay pin" 5 $rc; one_line "wrong relay pin" "$T/err"

# relay unreachable (a port nobody listens on)
"$WZP" reflect --relay 127.0.0.1:9 --relay-pin "$RP" --home "$T/b" 2>"$T/err" >/dev/null; rc=$?
check "relay unreachable" 4 $rc; one_line "relay unreachable" "$T/err"

# unknown alias, offline fingerprint
"$WZP" call nobody "${R[@]}" --home "$T/b" --duration 1 2>"$T/err" >/dev/null; rc=$?
check "unknown peer" 6 $rc; one_line "unknown peer" "$T/err"
"$WZP" call "$OTHER_FP" "${R[@]}" --home "$T/b" --duration 1 2>"$T/err" >/dev/null; rc=$?
check "offline peer" 6 $rc; one_line "offline peer" "$T/err"

# unreadable audio file
"$WZP" call nobody "${R[@]}" --home "$T/b" --send "$T/missing.wav" 2>"$T/err" >/dev/null; rc=$?
check "missing audio file" 8 $rc; one_line "missing audio file" "$T/err"
echo "not audio" >"$T/bad.wav"
"$WZP" call nobody "${R[@]}" --home "$T/b" --send "$T/bad.wav" 2>"$T/err" >/dev/null; rc=$?
check "bad audio file" 8 $rc; one_line "bad audio file" "$T/err"

# numbers on the command line: NaN, infinities, overflow, trailing garbage, out of range
for args in "call nobody --tone nan" "call nobody --tone inf" "call nobody --tone 440x" \
    "call nobody --tone 5" "call nobody --tone 30000" "call nobody --duration nan" \
    "call nobody --duration 1e999" "call nobody --duration -1" "call nobody --duration 0" \
    "call nobody --duration 999999999" "listen --duration inf" "listen --tone -inf"; do
    # shellcheck disable=SC2086 # split on purpose; timeout: accepted, "listen" would wait forever
    timeout 20 "$WZP" $args "${R[@]}" --home "$T/b" 2>"$T/err" >/dev/null; rc=$?
    check "wzp $args" 2 $rc; one_line "wzp $args" "$T/err"
done
for d in nan 1e999 2x; do
    timeout 20 "$WZP" demo --duration $d 2>"$T/err" >/dev/null; rc=$?
    check "wzp demo --duration $d" 2 $rc; one_line "wzp demo --duration $d" "$T/err"
done

# --record is checked before the call: a missing directory and a full device fail at once
# (exit 8, not the unknown peer's 6 after the call), naming the file and the reason
"$WZP" call nobody "${R[@]}" --home "$T/b" --record "$T/no/such/dir/x.wav" 2>"$T/err" >/dev/null; rc=$?
check "record to a missing directory" 8 $rc; one_line "record to a missing directory" "$T/err"
grep -q "no/such/dir/x.wav: No such file or directory" "$T/err" || { echo "FAIL record message: $(cat "$T/err")"; fail=1; }
if [ -w /dev/full ]; then
    "$WZP" call nobody "${R[@]}" --home "$T/b" --record /dev/full 2>"$T/err" >/dev/null; rc=$?
    check "record to /dev/full" 8 $rc; one_line "record to /dev/full" "$T/err"
    grep -q "/dev/full: No space left on device" "$T/err" || { echo "FAIL /dev/full message: $(cat "$T/err")"; fail=1; }
fi
# a call that never starts leaves neither a recording nor a temp file (nor touches an old one)
mkdir -p "$T/rec"; echo "older recording" >"$T/rec/old.wav"
"$WZP" call nobody "${R[@]}" --home "$T/b" --record "$T/rec/new.wav" 2>"$T/err" >/dev/null; rc=$?
check "failed call with --record" 6 $rc
"$WZP" call nobody "${R[@]}" --home "$T/b" --record "$T/rec/old.wav" 2>"$T/err" >/dev/null
if [ "$(ls -A "$T/rec")" = old.wav ] && grep -q "older recording" "$T/rec/old.wav"; then
    echo "ok   failed calls left no recording and no temp file"
else echo "FAIL failed calls left: $(ls -A "$T/rec")"; fail=1; fi

# calling yourself: by fingerprint refused before dialing; by your own alias the relay refuses
B_FP=$("$WZP" id --home "$T/b" 2>/dev/null)
"$WZP" call "$B_FP" "${R[@]}" --home "$T/b" --duration 1 2>"$T/err" >/dev/null; rc=$?
check "call yourself" 2 $rc; one_line "call yourself" "$T/err"
grep -q "cannot call yourself" "$T/err" || { echo "FAIL call yourself message: $(cat "$T/err")"; fail=1; }
"$WZP" call bobby "${R[@]}" --home "$T/b" --alias bobby --duration 1 2>"$T/err" >/dev/null; rc=$?
check "call your own alias" 12 $rc; one_line "call your own alias" "$T/err"
grep -q "the relay refused the call" "$T/err" || { echo "FAIL own alias message: $(cat "$T/err")"; fail=1; }

# a certificate without its key: refused (exit 3), never replaced by a new identity
"$WZP" id --home "$T/half" >/dev/null 2>&1
rm "$T/half/identity.key"; cp "$T/half/identity.crt" "$T/half.crt"
"$WZP" id --home "$T/half" 2>"$T/err" >/dev/null; rc=$?
check "id without its key" 3 $rc; one_line "id without its key" "$T/err"
"$WZP" call nobody "${R[@]}" --home "$T/half" 2>"$T/err" >/dev/null; rc=$?
check "call without the identity key" 3 $rc; one_line "call without the identity key" "$T/err"
grep -q "identity.key is missing" "$T/err" || { echo "FAIL identity message: $(cat "$T/err")"; fail=1; }
if [ ! -e "$T/half/identity.key" ] && cmp -s "$T/half/identity.crt" "$T/half.crt"; then
    echo "ok   the old certificate is untouched, no key created"
else echo "FAIL the half identity was changed"; fail=1; fi

# rejected: a listener without --auto-answer rejects
"$WZP" listen "${R[@]}" --home "$T/a" --alias alice >/dev/null 2>&1 &
LP=$!; PIDS+=($LP)
sleep 0.7
"$WZP" call alice "${R[@]}" --home "$T/b" --duration 1 2>"$T/err" >/dev/null; rc=$?
check "rejected" 7 $rc; one_line "rejected" "$T/err"
kill -INT $LP; wait $LP; check "listener interrupted" 0 $?

# the peer hangs up mid-call: the listener leaves after 1 s, the caller wanted 10
"$WZP" listen --once "${R[@]}" --home "$T/a" --alias alice --auto-answer --duration 1 >/dev/null 2>"$T/lerr" &
LP=$!; PIDS+=($LP)
sleep 0.7
"$WZP" call alice "${R[@]}" --home "$T/b" --duration 10 --tone 440 2>"$T/err" >/dev/null; rc=$?
check "peer hung up" 9 $rc; one_line "peer hung up" "$T/err"
wait $LP; check "listener that hung up" 0 $?

# a good call: a file one way, a tone the other, both recorded, JSON summary
"$WZP" listen --once "${R[@]}" --home "$T/a" --alias alice --auto-answer --tone 440 --record "$T/a.wav" --json >"$T/a.json" 2>"$T/lerr" &
LP=$!; PIDS+=($LP)
sleep 0.7
"$WZP" call alice "${R[@]}" --home "$T/b" --tone 660 --duration 2 --record "$T/b.wav" --json >"$T/b.json" 2>"$T/err"; rc=$?
check "good call" 0 $rc
wait $LP; check "listener after a good call" 0 $?
for side in a b; do
    s=$(grep '"event":"summary"' "$T/$side.json")
    for key in '"path":"' '"time_to_first_audio_ms":' '"time_to_direct_ms":' '"frames_sent":' \
        '"frames_received":' '"frames_lost":' '"rtt_ms":' '"path_changes":'; do
        case "$s" in *"$key"*) ;; *) echo "FAIL summary of $side lacks $key: $s"; fail=1 ;; esac
    done
    [ -s "$T/$side.wav" ] || { echo "FAIL no recording $side.wav"; fail=1; }
done
if ls -A "$T" | grep -q '\.tmp-'; then echo "FAIL temp files left: $(ls -A "$T")"; fail=1; fi
echo "ok   summaries: $(grep -h summary "$T/a.json" "$T/b.json" | tr '\n' ' ')"

# who answered is shown: the key the end-to-end handshake proved
A_FP=$("$WZP" id --home "$T/a" 2>/dev/null)
if grep -q "\"state\":\"active\",\"peer\":\"$A_FP\"" "$T/b.json"; then
    echo "ok   the caller was shown the callee's proven key"
else echo "FAIL no active state naming $A_FP: $(grep active "$T/b.json")"; fail=1; fi

# the same identity signs in twice: the first stops with its own exit code, the second stays
"$WZP" listen "${R[@]}" --home "$T/a" --alias alice >/dev/null 2>"$T/l1err" &
L1=$!; PIDS+=($L1)
sleep 0.7
"$WZP" listen "${R[@]}" --home "$T/a" --alias alice >/dev/null 2>"$T/l2err" &
L2=$!; PIDS+=($L2)
wait $L1; check "signed in elsewhere" 14 $?; one_line "signed in elsewhere" "$T/l1err"
sleep 1
if kill -0 $L2 2>/dev/null; then echo "ok   the second login stays"; else echo "FAIL the second login left"; fail=1; fi
# an alias held by another key (online or not) is taken for everyone else
"$WZP" listen "${R[@]}" --home "$T/c" --alias alice >/dev/null 2>"$T/err"; rc=$?
check "alias taken" 13 $rc; one_line "alias taken" "$T/err"
kill -INT $L2; wait $L2

# the peer vanishes mid-call (kill -9): "peer unreachable" within seconds, the silence counted
"$WZP" listen "${R[@]}" --home "$T/a" --alias alice --auto-answer --tone 440 >/dev/null 2>&1 &
LP=$!; PIDS+=($LP)
sleep 0.7
"$WZP" call alice "${R[@]}" --home "$T/b" --tone 660 --duration 30 --json >"$T/gone.json" 2>"$T/err" &
CP=$!; PIDS+=($CP)
for _ in $(seq 50); do grep -q '"state":"active"' "$T/gone.json" 2>/dev/null && break; sleep 0.1; done
sleep 1; kill -9 $LP; t0=$(date +%s)
wait $CP; rc=$?; took=$(( $(date +%s) - t0 ))
check "peer vanished" 15 $rc; one_line "peer vanished" "$T/err"
s=$(grep '"event":"summary"' "$T/gone.json")
lost=$(sed -n 's/.*"frames_lost":\([0-9]*\).*/\1/p' <<<"$s"); gap=$(sed -n 's/.*"max_gap_ms":\([0-9]*\).*/\1/p' <<<"$s")
if [ "${lost:-0}" -ge 150 ] && [ "${gap:-0}" -ge 3000 ] && [ "$took" -le 15 ]; then
    echo "ok   peer gone after ${took} s: lost $lost frames, longest gap $gap ms"
else echo "FAIL peer gone after ${took} s: lost ${lost:-?}, gap ${gap:-?}: $s"; fail=1; fi

# nothing left running but the relay
for p in "${PIDS[@]:1}"; do
    if kill -0 "$p" 2>/dev/null; then echo "FAIL pid $p still running"; fail=1; fi
done
exit $fail
