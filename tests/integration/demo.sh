#!/usr/bin/env bash
# `wzp demo` end to end: relay + two clients in one process on loopback. The
# call must go direct (loopback host candidates), stay on the relay with
# --no-direct, and in both cases the recorded audio must match what was sent
# (the demo exits 0 only then).
set -uo pipefail
BIN="${WZP_BIN_DIR:-$(dirname "$0")/../../build/bin}"
[ -x "$BIN/wzp" ] || { echo "skip: wzp not built"; exit 77; }
fail=0
T=$(mktemp -d /tmp/wzp-demo-test-XXXXXX)
trap 'rm -rf "$T"' EXIT

timeout 60 "$BIN/wzp" demo --duration 2 --json >"$T/direct.json"; rc=$?
cat "$T/direct.json"
[ $rc = 0 ] || { echo "FAIL demo exit $rc"; fail=1; }
n=$(grep '"event":"summary"' "$T/direct.json" | grep -c '"path":"direct"')
[ "$n" = 2 ] || { echo "FAIL expected both sides direct, got $n"; fail=1; }
[ "$(grep -c '"match":true' "$T/direct.json")" = 2 ] || { echo "FAIL audio check"; fail=1; }

timeout 60 "$BIN/wzp" demo --duration 2 --no-direct --json >"$T/relay.json"; rc=$?
cat "$T/relay.json"
[ $rc = 0 ] || { echo "FAIL demo --no-direct exit $rc"; fail=1; }
n=$(grep '"event":"summary"' "$T/relay.json" | grep '"path":"relay"' | grep -c '"time_to_direct_ms":null')
[ "$n" = 2 ] || { echo "FAIL expected both sides on the relay, got $n"; fail=1; }
[ "$(grep -c '"match":true' "$T/relay.json")" = 2 ] || { echo "FAIL audio check (relay)"; fail=1; }
exit $fail
