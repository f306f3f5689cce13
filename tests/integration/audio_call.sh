#!/usr/bin/env bash
# Live audio end to end, in real time, as a user runs it: a PulseAudio server
# of our own (null sinks: their monitors are the "microphones", the sinks the
# "speakers"), wzp-relay on loopback, `wzp listen` and `wzp call` on their
# default sound path (no --send / --record). Speech played into alice's
# microphone must come out of bob's speaker (NCC >= 0.9 against what was
# played, median over 200 ms windows that follow the delay: wzp-wavcmp), with
# every voice-processing stage on. Then bob's speaker is
# unplugged mid-call (its sink unloaded): the call goes on, bob's audio moves
# to the default sink, and the speech is heard there too.
set -uo pipefail
BIN="${WZP_BIN_DIR:-$(dirname "$0")/../../build/bin}"
WZP="$BIN/wzp"
RELAY="$BIN/wzp-relay"
CMP="$BIN/wzp-wavcmp"
. "$(dirname "$0")/lib/relay.sh"
[ -x "$WZP" ] && [ -x "$RELAY" ] && [ -x "$CMP" ] || { echo "skip: binaries not built"; exit 77; }
for t in pulseaudio pactl paplay parecord espeak-ng; do
    command -v "$t" >/dev/null || { echo "skip: $t not installed (scripts/deps installs it)"; exit 77; }
done
# shellcheck source=tests/support/pulse_server.sh
source "$(dirname "$0")/../support/pulse_server.sh"

T=$(mktemp -d /tmp/wzp-audio-XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    pulse_stop
    wait 2>/dev/null
    [ -n "${WZP_KEEP:-}" ] && echo "kept $T" || rm -rf "$T"
}
trap cleanup EXIT
fail=0
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }

# --- our own sound server --------------------------------------------------------------
pulse_start "$T" mic_a spk_a mic_b spk_b spk_default || exit 1
pactl set-default-sink spk_default
pactl set-default-source spk_default.monitor

# --- what alice says: real speech ---------------------------------------------------------
espeak-ng -s 150 -w "$T/speech.wav" \
    "Hello Bob. This is Alice calling through the relay. Can you hear me clearly?" 2>/dev/null
[ -s "$T/speech.wav" ] || { echo "espeak-ng made no speech"; exit 1; }

# --- devices as wzp sees them -------------------------------------------------------------
"$WZP" devices >"$T/devices.txt" 2>&1; rc=$?
if [ $rc = 0 ] && grep -q "mic_a.monitor" "$T/devices.txt" && grep -q "^\s*\*\s*spk_default " "$T/devices.txt"; then
    ok "wzp devices lists the null sinks, the default marked"
else
    bad "wzp devices (exit $rc):"; cat "$T/devices.txt"
fi

relay_start "$T"
R=(--relay "$RA" --relay-pin "$RP" --loopback-candidates)

"$WZP" call bob "${R[@]}" --home "$T/a" --input no_such_mic --duration 1 >/dev/null 2>"$T/err"; rc=$?
if [ $rc = 8 ] && grep -q "no input device 'no_such_mic'" "$T/err"; then
    ok "an unknown --input is refused before the call (exit 8): $(cat "$T/err")"
else
    bad "unknown --input: exit $rc: $(cat "$T/err")"
fi

# --- the call ---------------------------------------------------------------------------
"$WZP" listen --once "${R[@]}" --home "$T/b" --alias bob --auto-answer --json \
    --input mic_b.monitor --output spk_b ${BOB_OPTS:-} >"$T/b.json" 2>"$T/b.err" &
BOB=$!
PIDS+=($BOB)
for _ in $(seq 100); do grep -q '"event":"registered"' "$T/b.json" && break; sleep 0.1; done
parecord --latency-msec=20 --device=spk_b.monitor --rate=48000 --channels=1 --format=s16le --file-format=wav \
    "$T/heard.wav" &
REC1=$!
PIDS+=($REC1)
"$WZP" call bob "${R[@]}" --home "$T/a" --json --input mic_a.monitor --output spk_a ${ALICE_OPTS:-} \
    --duration 120 >"$T/a.json" 2>"$T/a.err" &
ALICE=$!
PIDS+=($ALICE)
for _ in $(seq 100); do grep -q '"event":"audio"' "$T/a.json" && grep -q '"event":"audio"' "$T/b.json" && break; sleep 0.1; done
grep -q '"event":"audio","live":true,"backend":"pulse","input":"mic_a.monitor","output":"spk_a","change":false' \
    "$T/a.json" && ok "alice's call runs on her devices" || { bad "alice's audio event:"; cat "$T/a.json" "$T/a.err"; }
sleep 1.5 # let the noise estimate and the clock-drift loops settle
paplay --latency-msec=20 --device=mic_a "$T/speech.wav"
sleep 0.5
kill -INT $REC1 2>/dev/null; wait $REC1 2>/dev/null
heard() { # what where: wzp-wavcmp's windowed median NCC must reach 0.9
    local r m
    r=$("$CMP" "$T/speech.wav" "$1" 10)
    m=${r#*win_median=}; m=${m%% *}
    if awk -v n="$m" 'BEGIN { exit !(n >= 0.9) }'; then ok "$2 ($r)"; else bad "$2: $r"; fi
}
heard "$T/heard.wav" "bob hears alice"

# --- bob's speaker vanishes mid-call ---------------------------------------------------------
pactl unload-module "${PA_MOD[spk_b]}" || bad "cannot unload spk_b (module ${PA_MOD[spk_b]:-?})"
# bob's device thread notices and moves to the default sink; the CLI says so
for _ in $(seq 100); do grep -q '"event":"audio".*"output":"spk_default","change":true' "$T/b.json" && break; sleep 0.1; done
grep -q '"output":"spk_default","change":true' "$T/b.json" && ok "bob is told his speaker moved to the default sink" \
    || { bad "no audio change event for bob:"; grep audio "$T/b.json"; }
sleep 1.5 # the new stream settles
parecord --latency-msec=20 --device=spk_default.monitor --rate=48000 --channels=1 --format=s16le --file-format=wav \
    "$T/heard2.wav" &
REC2=$!
PIDS+=($REC2)
sleep 0.5
paplay --latency-msec=20 --device=mic_a "$T/speech.wav"
sleep 0.5
kill -INT $REC2 2>/dev/null; wait $REC2 2>/dev/null
heard "$T/heard2.wav" "after the unplug bob hears alice on the default sink"

# Alice hangs up (Ctrl-C), as a user would; bob's listen ends with the call.
kill -INT $ALICE
wait $ALICE; rc=$?
[ $rc = 0 ] && ok "alice hung up on Ctrl-C (exit 0)" || { bad "alice exit $rc"; cat "$T/a.err"; }
wait $BOB; rc=$?
[ $rc = 0 ] && ok "bob's call ended normally (exit 0)" || { bad "bob exit $rc"; cat "$T/b.err"; }
if grep -q '"device_losses":[1-9]' "$T/b.json"; then ok "bob's summary counts the lost device"; else bad "bob's summary:"; grep summary "$T/b.json"; fi
grep -q '"event":"summary"' "$T/a.json" && grep summary "$T/a.json" | sed 's/^/     /'
exit $fail
