# shellcheck shell=bash
# Sourced by the integration tests that call through a relay of their own on
# loopback (audio_call.sh, cli_errors.sh).
# (In lib/ so that the test glob, tests/integration/*.sh, does not run it.)

# relay_start DIR [OPTION...]: starts "$RELAY" (the wzp-relay binary) on 127.0.0.1:0,
# one worker, with its home in DIR/relay, the options given and its output in
# DIR/relay.out; appends its pid to the caller's PIDS array (for the caller's cleanup
# to kill) and sets RA (the address it listens on), RP (its fingerprint), RT (the port
# of its TLS-over-TCP service, any free one) and URL (its metrics, with --metrics;
# else empty). If it has not said both within 5 s: "relay did not start", its
# output, exit 1.
relay_start() {
    local dir=$1
    shift
    # A restart reuses DIR: without this, the wait below could read the previous
    # relay's lines before the new one's redirection has emptied the file.
    rm -f "$dir/relay.out"
    "$RELAY" --listen 127.0.0.1:0 --home "$dir/relay" --workers 1 "$@" >"$dir/relay.out" 2>&1 &
    PIDS+=($!)
    for _ in $(seq 50); do grep -qs fingerprint "$dir/relay.out" && break; sleep 0.1; done
    RA=$(sed -n 's/.*listening on //p' "$dir/relay.out")
    RP=$(sed -n 's/.*fingerprint //p' "$dir/relay.out")
    RT=$(sed -n 's/^wzp-relay: tcp .*://p' "$dir/relay.out")
    URL=$(sed -n 's/^wzp-relay: metrics on //p' "$dir/relay.out")
    if [ -z "$RA" ] || [ -z "$RP" ]; then
        echo "relay did not start"
        cat "$dir/relay.out"
        exit 1
    fi
}

# listen_once DIR: "$WZP" listen, as bob (alias bob) with his home in DIR/bob, on the
# relay relay_start started, answering one call with a 440 Hz tone; returns once it
# is registered (events in DIR/bob.json, errors in DIR/bob.err). LP: its pid, also
# appended to PIDS.
listen_once() {
    local dir=$1
    "$WZP" listen --relay "$RA" --relay-pin "$RP" --home "$dir/bob" --alias bob --auto-answer \
        --once --loopback-candidates --no-audio --tone 440 --json >"$dir/bob.json" 2>"$dir/bob.err" &
    LP=$!
    PIDS+=($LP)
    for _ in $(seq 50); do grep -q registered "$dir/bob.json" && break; sleep 0.1; done
}
