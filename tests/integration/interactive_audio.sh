#!/usr/bin/env bash
# The phone as a person hears it: `wzp listen` and `wzp call` on real terminals (a private
# tmux server) with live audio through a PulseAudio server of our own (null sinks: their
# monitors are what each speaker plays, the sinks' own monitors of mic_* the microphones).
# An incoming call rings on bob's speaker (400+450 Hz) while alice hears the ringback tone
# (425 Hz) on hers; one key (y, no Enter) answers; the status lines show microphone and
# speaker levels; tones cross both ways; five presses of - bring bob's speaker to 50 % (about
# -6 dB, measured on the sink); m on alice's side silences bob's speaker; a third caller
# meanwhile is turned away as busy; h hangs up.
set -uo pipefail
. "$(dirname "$0")/lib/relay.sh"
. "$(dirname "$0")/lib/cli.sh"
for t in pulseaudio pactl paplay parecord sox python3; do
    command -v "$t" >/dev/null || { echo "skip: $t not installed (scripts/deps installs it)"; exit 77; }
done
cli_setup wzp-ring
. "$(dirname "$0")/lib/tmux.sh"
# shellcheck source=tests/support/pulse_server.sh
source "$(dirname "$0")/../support/pulse_server.sh"
LEVEL="$(dirname "$0")/../support/tone_level.py"
trap 'tmux_cleanup; for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; pulse_stop; cli_cleanup' EXIT

pulse_start "$T/pa" mic_a spk_a mic_b spk_b || exit 1
relay_start "$T"
R=(--relay "$RA" --relay-pin "$RP" --loopback-candidates)
"$WZP" id --home "$T/alice" >/dev/null 2>&1
"$WZP" id --home "$T/bob" >/dev/null 2>&1
"$WZP" id --home "$T/carol" >/dev/null 2>&1

# record SINK SECONDS FILE: what the sink plays
record() {
    parecord --latency-msec=20 --device="$1.monitor" --rate=48000 --channels=1 --format=s16le \
        --file-format=wav "$3" &
    local p=$!
    sleep "$2"
    kill -INT "$p" 2>/dev/null; wait "$p" 2>/dev/null
}
# level FILE HZ...: tone_level.py's figures as shell variables (rms_db, share_HZ)
level() { eval "$(python3 "$LEVEL" "$@" | sed 's/-inf/-999/g')"; }
num_ge() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a >= b) }'; }

# Voice processing off: steady tones must cross at steady levels (docs/audio.md tests it).
STEADY="--no-agc --no-denoise --no-dtx --no-aec"
tmux_start b a   # b: bob's terminal, a: alice's (the panes inherit the sound server's env)
tm send-keys -t b:b "\"$WZP\" listen ${R[*]} --home $T/bob --alias bob --input mic_b.monitor --output spk_b $STEADY; echo LISTEN_EXIT=\$?" Enter
wait_pane "bob's listener registered" 'registered as' 10 b:b
tm send-keys -t b:a "\"$WZP\" call bob ${R[*]} --home $T/alice --input mic_a.monitor --output spk_a $STEADY --duration 60; echo CALL_EXIT=\$?" Enter
wait_pane "bob is asked" 'incoming call from .* answer\? \[y/N\]' 10 b:b

# --- ringing: both speakers, each its own tone ------------------------------------------------
record spk_b 5.5 "$T/ring_b.wav" &
RB=$!
record spk_a 5.5 "$T/ring_a.wav"
wait $RB
level "$T/ring_b.wav" 400 450 425
if num_ge "$rms_db" -40 && num_ge "$share_400" 0.2 && num_ge "$share_450" 0.2; then
    echo "ok   bob's speaker rings (rms ${rms_db} dBFS, 400 Hz ${share_400}, 450 Hz ${share_450})"
else echo "FAIL bob's ring: rms $rms_db dBFS, 400 Hz $share_400, 450 Hz $share_450"; fail=1; fi
level "$T/ring_a.wav" 425 1000
if num_ge "$rms_db" -45 && num_ge "$share_425" 0.6; then
    echo "ok   alice hears the ringback tone (rms ${rms_db} dBFS, 425 Hz ${share_425})"
else echo "FAIL alice's ringback: rms $rms_db dBFS, 425 Hz $share_425"; fail=1; fi

# --- one key answers --------------------------------------------------------------------------
tm send-keys -t b:b y
wait_pane "y (no Enter) answers" 'call active' 10 b:b
wait_pane "alice's call is active" 'call active' 10 b:a
sox -n -r 48000 -c 1 -b 16 "$T/tone.wav" synth 40 sine 1000 vol 0.3
paplay --latency-msec=20 --device=mic_a "$T/tone.wav" &
PIDS+=($!)
# The level meters: alice's microphone and bob's speaker carry the tone (-10 dBFS: 6-7 of 8).
wait_pane "alice's status line shows her microphone's level" 'mic #####' 10 b:a
wait_pane "bob's status line shows his speaker's level" 'spk #####' 10 b:b
sleep 1 # the ring's stream is gone, the call's playout settled
record spk_b 2 "$T/vol100.wav"
level "$T/vol100.wav" 1000
db100=$rms_db
num_ge "$share_1000" 0.8 && echo "ok   bob hears alice's tone (rms ${db100} dBFS, 1 kHz ${share_1000})" \
    || { echo "FAIL bob's speaker at 100 %: rms $rms_db, 1 kHz $share_1000"; fail=1; }

# --- the other way: bob's microphone to alice's speaker ------------------------------------------
sox -n -r 48000 -c 1 -b 16 "$T/tone_b.wav" synth 40 sine 700 vol 0.3
paplay --latency-msec=20 --device=mic_b "$T/tone_b.wav" &
PIDS+=($!)
sleep 1
record spk_a 1.5 "$T/a_hears.wav"
level "$T/a_hears.wav" 700 1000
if num_ge "$share_700" 0.8; then echo "ok   alice hears bob's tone (rms ${rms_db} dBFS, 700 Hz ${share_700})"
else echo "FAIL alice's speaker: rms $rms_db dBFS, 700 Hz $share_700, 1 kHz $share_1000"; fail=1; fi

# --- volume -----------------------------------------------------------------------------------
for _ in 1 2 3 4 5; do tm send-keys -t b:b -- -; done
wait_pane "five presses of - bring the volume to 50 %" 'volume 50%' 5 b:b
wait_pane "the status line shows it" 'vol 50%' 5 b:b
sleep 0.5
record spk_b 2 "$T/vol50.wav"
level "$T/vol50.wav" 1000
d=$(awk -v a="$rms_db" -v b="$db100" 'BEGIN { printf "%.1f", a - b }')
if num_ge "$d" -8 && num_ge -4 "$d"; then echo "ok   the speaker plays 50 % as ${d} dB"
else echo "FAIL volume 50 %: ${d} dB (from $db100 to $rms_db dBFS)"; fail=1; fi

# --- alice mutes: bob's speaker goes quiet ----------------------------------------------------------
tm send-keys -t b:a m
wait_pane "alice's status line shows MUTED" 'MUTED' 5 b:a
wait_pane "bob is told" 'the peer muted their microphone' 5 b:b
sleep 0.5
record spk_b 1.5 "$T/muted.wav"
level "$T/muted.wav" 1000
if num_ge -50 "$rms_db"; then echo "ok   bob hears silence while alice is muted (rms ${rms_db} dBFS)"
else echo "FAIL muted: bob's speaker at $rms_db dBFS (1 kHz $share_1000)"; fail=1; fi
tm send-keys -t b:a m
wait_pane "alice unmutes" 'unmuted' 5 b:a

# --- busy -------------------------------------------------------------------------------------
"$WZP" call bob "${R[@]}" --home "$T/carol" --no-audio --duration 2 >"$T/c.out" 2>"$T/c.err"; rc=$?
check "a third caller is turned away" 7 "$rc"
has "as busy" "$T/c.err" "busy"

# --- h hangs up -------------------------------------------------------------------------------
tm send-keys -t b:b h
wait_pane "alice: the peer hung up (exit 9)" 'CALL_EXIT=9' 10 b:a
wait_pane "bob's listener is back, waiting" 'call ended \(hung up here\)' 5 b:b
tm send-keys -t b:b C-c
wait_pane "Ctrl-C ends listen" 'LISTEN_EXIT=0' 10 b:b
exit $fail
