# shellcheck shell=bash disable=SC2034  # sourced: PA_MOD is for the caller
# Shell side of tests/support/pulse_server.h, for scripts that `source` it: a
# private headless PulseAudio (`pulseaudio -n`, so a stream on an unloaded
# sink is killed, not rescued) in DIR with 48 kHz mono null sinks. Everything
# started is recorded by pid; the caller calls pulse_stop (typically from its
# EXIT trap). A relay: tests/integration/lib/relay.sh.
#
#   pulse_start DIR SINK...   exports XDG_RUNTIME_DIR=DIR/xdg, HOME=DIR/home;
#                             sets PA_PID, PA_KEEPERS, PA_MOD[SINK] (module index)
#   pulse_stop
# pulse_start returns non-zero with the reason on stderr when the server did not come up.

PA_PID=""
PA_KEEPERS=()
declare -A PA_MOD=()

pulse_start() {
    local dir="$1" s
    shift
    export XDG_RUNTIME_DIR="$dir/xdg" HOME="$dir/home"
    mkdir -p "$XDG_RUNTIME_DIR" "$HOME" && chmod 700 "$XDG_RUNTIME_DIR"
    pulseaudio -n --daemonize=no --exit-idle-time=-1 --use-pid-file=no --disable-shm=yes \
        --load=module-native-protocol-unix >"$dir/pa.log" 2>&1 &
    PA_PID=$!
    for _ in $(seq 100); do pactl info >/dev/null 2>&1 && break; sleep 0.05; done
    pactl info >/dev/null 2>&1 || { echo "PulseAudio did not start:" >&2; cat "$dir/pa.log" >&2; return 1; }
    for s in "$@"; do
        PA_MOD[$s]=$(pactl load-module module-null-sink sink_name="$s" rate=48000 channels=1) \
            || { echo "cannot load null sink $s" >&2; return 1; }
        # A null sink nobody asks for low latency renders 2 s ahead, stalling the first stream
        # on it for up to 2 s: a low-latency reader on its monitor, for the server's life.
        parec --latency-msec=10 --raw --device="$s.monitor" >/dev/null 2>&1 &
        PA_KEEPERS+=("$!")
    done
    sleep 2.1 # the first block, rendered before the keepers asked for less, is 2 s long
}

pulse_stop() {
    local p
    for p in "${PA_KEEPERS[@]}"; do kill "$p" 2>/dev/null; done
    [ -n "$PA_PID" ] && kill "$PA_PID" 2>/dev/null
    for p in "${PA_KEEPERS[@]}" $PA_PID; do wait "$p" 2>/dev/null; done
    PA_KEEPERS=()
    PA_PID=""
}
