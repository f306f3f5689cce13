#!/usr/bin/env bash
# Audio figures of a real call, in real time, as a user runs it:
#   scripts/bench audio
# A private PulseAudio (null sinks; their monitors are the microphones), a
# wzp-relay on loopback, `wzp listen` (bob) and `wzp call` (alice) on their
# devices. bench_audio_loop plays espeak-ng speech into alice's microphone
# sink and records bob's speaker monitor: the delay per utterance is the
# mouth-to-ear figure. The same tool on one sink -> its own monitor gives
# the measurement's floor (the reference). CPU is each wzp process's
# utime+stime over the measured interval. ERLE and convergence come from
# bench_aec (a deterministic simulation, not this call). Ends with
#   audio: mouth_to_ear_ms=X erle_db=Y converge_ms=Z cpu_pct_per_call=W
# Set AUDIO_BENCH_NO_BARE=1 to skip the second call with processing off.
set -uo pipefail
SRC="${WZP_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
BIN="${WZP_BIN_DIR:-$SRC/build/bin}"
LOOP="$SRC/build/bench/bench_audio_loop"
AEC="$SRC/build/bench/bench_aec"
for b in "$BIN/wzp" "$BIN/wzp-relay" "$LOOP" "$AEC"; do
    [ -x "$b" ] || { echo "audio bench: $b not built (scripts/build default)" >&2; exit 77; }
done
for t in pulseaudio pactl parec espeak-ng; do
    command -v "$t" >/dev/null || { echo "audio bench: $t not installed (scripts/deps installs it)" >&2; exit 77; }
done
# shellcheck source=tests/support/pulse_server.sh
source "$SRC/tests/support/pulse_server.sh"
# shellcheck source=tests/integration/lib/relay.sh
source "$SRC/tests/integration/lib/relay.sh"
RELAY="$BIN/wzp-relay"

T=$(mktemp -d /tmp/wzp-bench-audio-XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
    pulse_stop
    [ -n "${WZP_KEEP:-}" ] && echo "kept $T" >&2 || rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
die() {
    echo "audio bench: $*" >&2
    exit 1
}

# waits (at most $2 tenths of a second) until file $1 has a line matching $3
wait_for() {
    for _ in $(seq "$2"); do grep -q "$3" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
# waits for pid $1 to exit (at most $2 tenths of a second), else kills it
reap() {
    for _ in $(seq "$2"); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}
# CPU time of pid $1 in clock ticks (utime + stime; the name "wzp" has no spaces)
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
now_ns() { date +%s%N; }
# value of key $2 in a "name: key=value ..." line $1
field() { sed -n "s/.*[ :]$2=\([^ ]*\).*/\1/p" <<<"$1"; }
# value of numeric key $2 in the JSON summary line of file $1
jnum() { grep '"event":"summary"' "$1" | sed -n "s/.*\"$2\":\([-0-9.]*\).*/\1/p"; }

pulse_start "$T" mic_a spk_a mic_b spk_b ref || die "no sound server"
relay_start "$T"
RELAY_ARGS=(--relay "$RA" --relay-pin "$RP" --loopback-candidates)

espeak-ng -s 150 -w "$T/speech.wav" \
    "Hello Bob, this is Alice calling through the relay. The train was late again this morning. \
Can you hear me clearly? Tell me if I sound delayed. Talk to you soon." 2>/dev/null
[ -s "$T/speech.wav" ] || die "espeak-ng made no speech"

# reference: the measurement's own floor, sink -> its own monitor, same server
"$LOOP" --play ref --record ref.monitor --signal "$T/speech.wav" >"$T/ref.txt" 2>"$T/ref.err" \
    || die "reference loop failed: $(cat "$T/ref.err")"
REF=$(grep '^audio-loop:' "$T/ref.txt")

# One call, alice -> bob, with extra options $2... on both sides; measures mouth to ear while
# it runs. Leaves $T/$1.{loop,a.json,b.json} and CPU_A / CPU_B (% of one core).
CPU_A=0 CPU_B=0
run_call() {
    local tag="$1" bob alice a0 b0 a1 b1 t0 t1 hz
    shift
    "$BIN/wzp" listen "${RELAY_ARGS[@]}" --home "$T/b" --alias bob --auto-answer --json \
        --input mic_b.monitor --output spk_b "$@" >"$T/$tag.b.json" 2>"$T/$tag.b.err" &
    bob=$!
    PIDS+=("$bob")
    wait_for "$T/$tag.b.json" 100 '"event":"registered"' || die "$tag: bob did not register: $(cat "$T/$tag.b.err")"
    # long enough for any run; alice hangs up (SIGINT) once the measurement is done
    "$BIN/wzp" call bob "${RELAY_ARGS[@]}" --home "$T/a" --json --input mic_a.monitor \
        --output spk_a --duration 120 "$@" >"$T/$tag.a.json" 2>"$T/$tag.a.err" &
    alice=$!
    PIDS+=("$alice")
    wait_for "$T/$tag.a.json" 150 '"event":"audio","live":true' \
        && wait_for "$T/$tag.b.json" 50 '"event":"audio","live":true' \
        || die "$tag: the call did not start: $(cat "$T/$tag.a.json" "$T/$tag.a.err" "$T/$tag.b.err")"
    sleep 2 # the noise estimate, the canceller and the drift loops settle
    a0=$(ticks $alice) b0=$(ticks $bob) t0=$(now_ns)
    "$LOOP" --play mic_a --record spk_b.monitor --signal "$T/speech.wav" >"$T/$tag.loop" \
        2>"$T/$tag.loop.err" || die "$tag: mouth-to-ear loop failed: $(cat "$T/$tag.loop.err")"
    a1=$(ticks $alice) b1=$(ticks $bob) t1=$(now_ns)
    kill -0 $alice 2>/dev/null && kill -0 $bob 2>/dev/null || die "$tag: a side left the call early"
    hz=$(getconf CLK_TCK)
    CPU_A=$(awk -v d=$((a1 - a0)) -v hz="$hz" -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", d / hz / (ns / 1e9) * 100 }')
    CPU_B=$(awk -v d=$((b1 - b0)) -v hz="$hz" -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f", d / hz / (ns / 1e9) * 100 }')
    kill -INT $alice
    reap $alice 100
    reap $bob 100
    grep -q '"event":"summary"' "$T/$tag.a.json" && grep -q '"event":"summary"' "$T/$tag.b.json" \
        || die "$tag: no JSON summary from a side"
}

run_call full
M2E=$(grep '^audio-loop:' "$T/full.loop")
CPU_FULL_A=$CPU_A CPU_FULL_B=$CPU_B
BARE=""
if [ -z "${AUDIO_BENCH_NO_BARE:-}" ]; then
    run_call bare --no-aec --no-denoise --no-agc --no-dtx
    BARE=$(grep '^audio-loop:' "$T/bare.loop")
fi

"$AEC" >"$T/aec.txt" 2>&1 || die "bench_aec failed: $(tail -3 "$T/aec.txt")"
AECL=$(grep '^aec:' "$T/aec.txt" | tail -1)
[ -n "$AECL" ] || die "bench_aec printed no summary"

# --- the table ---------------------------------------------------------------------------
loop_row() { # label line target
    printf '%-44s %8s %8s %8s %7s %6s  %s\n' "$1" "$(field "$2" delay_ms)" "$(field "$2" min_ms)" \
        "$(field "$2" max_ms)" "$(field "$2" bursts)" "$(field "$2" ncc)" "$3"
}
stats_row() { # label json
    printf '  %-12s %6s %6s %6s %6s %6s %6s %9s %9s %6s\n' "$1" "$(jnum "$2" capture_underruns)" \
        "$(jnum "$2" capture_overruns)" "$(jnum "$2" playback_underruns)" \
        "$(jnum "$2" playback_overruns)" "$(jnum "$2" device_stalls)" "$(jnum "$2" device_losses)" \
        "$(jnum "$2" capture_drift_ppm)" "$(jnum "$2" playback_drift_ppm)" "$(jnum "$2" frames_lost)"
}
echo "audio: real-time call on a private PulseAudio (null sinks), relay on loopback;"
echo "       espeak-ng speech ($(grep -c '^ *[0-9]' "$T/ref.txt") windows of <= 0.5 s) played by bench_audio_loop, delay per window by NCC"
echo
printf '%-44s %8s %8s %8s %7s %6s  %s\n' "delay (ms)" median min max matched ncc target
loop_row "reference: ref -> ref.monitor (floor)" "$REF" "~0-20 (the method itself)"
loop_row "mouth-to-ear: mic_a -> spk_b.monitor" "$M2E" "<= 80"
[ -n "$BARE" ] && loop_row "  same, --no-aec --no-denoise --no-agc --no-dtx" "$BARE" "(what processing costs)"
awk -v m="$(field "$M2E" delay_ms)" -v r="$(field "$REF" delay_ms)" -v b="$(field "$BARE" delay_ms)" 'BEGIN {
    printf "  mouth-to-ear minus reference: %.1f ms", m - r
    if (b != "") printf "; processing adds %.1f ms over the bare call", m - b
    printf "\n" }'
echo
echo "per window, full call:"
sed -n '/^burst/,/^audio-loop/p' "$T/full.loop" | grep -v '^audio-loop' | sed 's/^/  /'
echo
echo "cpu over the measured interval, % of one core: alice $CPU_FULL_A, bob $CPU_FULL_B (every stage on)"
[ -n "$BARE" ] && echo "                                   processing off: alice $CPU_A, bob $CPU_B"
echo
echo "audio stats from the JSON summaries (whole call):"
printf '  %-12s %6s %6s %6s %6s %6s %6s %9s %9s %6s\n' side cap_ur cap_or play_ur play_or stalls losses \
    cap_ppm play_ppm lost
stats_row "alice" "$T/full.a.json"
stats_row "bob" "$T/full.b.json"
if [ -n "$BARE" ]; then
    stats_row "alice, bare" "$T/bare.a.json"
    stats_row "bob, bare" "$T/bare.b.json"
fi
echo
ERLE=$(field "$AECL" erle_db) CONV=$(field "$AECL" converge_ms)
echo "echo canceller (bench_aec: deterministic simulation, 30 ms room, not this call):"
printf '  ERLE %s dB (target >= 25), converged after %s ms\n' "$ERLE" "$CONV"
echo
CPU=$(awk -v a="$CPU_FULL_A" -v b="$CPU_FULL_B" 'BEGIN { printf "%.1f", (a + b) / 2 }')
echo "audio: mouth_to_ear_ms=$(field "$M2E" delay_ms) erle_db=$ERLE converge_ms=$CONV cpu_pct_per_call=$CPU"
