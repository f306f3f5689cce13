#!/usr/bin/env bash
# wzp-relay as a process: usage errors, a busy port, clean shutdown on
# SIGTERM/SIGINT, and an identity that survives restarts.
set -uo pipefail

BIN="${WZP_BIN_DIR:-$(dirname "$0")/../../build/bin}/wzp-relay"
[ -x "$BIN" ] || { echo "relay_cli: $BIN not built"; exit 1; }

work=$(mktemp -d /tmp/wzp-relay-cli-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
  rm -rf "$work"
}
trap cleanup EXIT

fail() { echo "relay_cli: FAIL: $*"; exit 1; }

# --- usage errors: exit 2 and exactly one line on stderr --------------------------
usage_case() {
  local out rc lines
  out=$("$BIN" "$@" 2>&1 >/dev/null); rc=$?
  lines=$(printf '%s\n' "$out" | grep -c .)
  [ "$rc" -eq 2 ] || fail "'$*' exited $rc, want 2"
  [ "$lines" -eq 1 ] || fail "'$*' printed $lines lines on stderr, want 1: $out"
  echo "ok: '$*' -> 2: $out"
}
usage_case --bogus
usage_case --listen
usage_case --listen not-an-address
usage_case --listen 127.0.0.1
usage_case --workers lots
usage_case --workers 100000
usage_case --coalesce-us soon
usage_case --coalesce-us 20000
usage_case --stun-rate lots
usage_case --stun-rate -1
usage_case --stun-rate 2000000
usage_case --ring-timeout 0
usage_case --max-registrations -5
usage_case --max-calls ""
usage_case --retry-threshold sometimes
usage_case --max-handshakes-per-ip -1
usage_case --max-conns-per-ip many
usage_case --alias-reclaim 3w
usage_case --alias-reclaim 12hh
usage_case --alias-reclaim 99999d
usage_case stray-argument
usage_case --stun-alt not-an-address
usage_case --stun-alt ::2
usage_case --metrics 127.0.0.1
usage_case --metrics 192.0.2.1:9464
usage_case --qlog /nonexistent/qlog-dir
"$BIN" --help | grep -q -- "--listen" || fail "--help does not describe --listen"
"$BIN" --help | grep -q -- "--stun-rate" || fail "--help does not describe --stun-rate"

# --- starting and stopping ------------------------------------------------------------
# start_relay HOME LOG [args...]: starts in the background, waits for the
# listening line; sets RELAY_PID, RELAY_PORT, RELAY_FP.
start_relay() {
  local home=$1 log=$2; shift 2
  "$BIN" --listen 127.0.0.1:0 --home "$home" --workers 1 "$@" >"$log" 2>&1 &
  RELAY_PID=$!
  pids+=("$RELAY_PID")
  for _ in $(seq 100); do
    grep -q '^wzp-relay: fingerprint ' "$log" && break
    kill -0 "$RELAY_PID" 2>/dev/null || break
    sleep 0.1
  done
  RELAY_PORT=$(sed -n 's/^wzp-relay: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$log")
  RELAY_FP=$(sed -n 's/^wzp-relay: fingerprint \(.*\)$/\1/p' "$log")
  [ -n "$RELAY_PORT" ] && [ -n "$RELAY_FP" ] || { cat "$log"; fail "relay did not start"; }
}

# stop_relay SIGNAL: the process must exit 0 by itself within 10 s and be gone.
stop_relay() {
  local sig=$1 rc
  kill -"$sig" "$RELAY_PID"
  for _ in $(seq 100); do
    kill -0 "$RELAY_PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$RELAY_PID" 2>/dev/null && fail "relay still running 10 s after SIG$sig"
  wait "$RELAY_PID"; rc=$?
  [ "$rc" -eq 0 ] || fail "relay exited $rc after SIG$sig, want 0"
  echo "ok: SIG$sig -> clean exit 0, process gone"
}

start_relay "$work/home" "$work/log1"
fp1=$RELAY_FP
port1=$RELAY_PORT
echo "ok: listening on port $port1, fingerprint $fp1"
[ "$(stat -c %a "$work/home/identity.key")" = 600 ] || fail "identity.key is not mode 600"

# --- the port is taken: exit 4 ----------------------------------------------------------
# By another relay (which binds with SO_REUSEPORT itself)...
"$BIN" --listen "127.0.0.1:$port1" --home "$work/home2" --workers 2 >"$work/log2" 2>&1 &
p2=$!; pids+=("$p2")
for _ in $(seq 100); do kill -0 "$p2" 2>/dev/null || break; sleep 0.1; done
kill -0 "$p2" 2>/dev/null && fail "a second relay on port $port1 is running"
wait "$p2"; rc=$?
[ "$rc" -eq 4 ] || { cat "$work/log2"; fail "second relay on a busy port exited $rc, want 4"; }
echo "ok: port held by another relay -> 4"

stop_relay TERM
grep -q '^wzp-relay: stopped$' "$work/log1" || fail "no 'stopped' line"

# ...and by a plain socket.
if command -v python3 >/dev/null; then
  python3 - "$work" <<'EOF' &
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
open(sys.argv[1] + "/busy_port", "w").write(str(s.getsockname()[1]))
time.sleep(15)
EOF
  holder=$!; pids+=("$holder")
  for _ in $(seq 100); do [ -s "$work/busy_port" ] && break; sleep 0.1; done
  busy=$(cat "$work/busy_port")
  "$BIN" --listen "127.0.0.1:$busy" --home "$work/home" >"$work/log3" 2>&1; rc=$?
  kill "$holder" 2>/dev/null; wait "$holder" 2>/dev/null
  [ "$rc" -eq 4 ] || { cat "$work/log3"; fail "relay on a port held by a plain socket exited $rc, want 4"; }
  echo "ok: port held by a plain socket -> 4"
fi

# --- an unusable home: exit 3 --------------------------------------------------------
: >"$work/not-a-dir"
"$BIN" --listen 127.0.0.1:0 --home "$work/not-a-dir/x" >"$work/log4" 2>&1; rc=$?
[ "$rc" -eq 3 ] || { cat "$work/log4"; fail "unusable home exited $rc, want 3"; }
echo "ok: unusable home -> 3"

# --- identity persists across restarts; SIGINT is clean too ------------------------------
start_relay "$work/home" "$work/log5" --coalesce-us 0 --stun-rate 0 --retry-threshold never --max-handshakes-per-ip 0 \
  --max-conns-per-ip 0 --alias-reclaim 12h # options that change nothing visible still start
[ "$RELAY_FP" = "$fp1" ] || fail "fingerprint changed across restart: $fp1 -> $RELAY_FP"
echo "ok: same fingerprint after restart"
stop_relay INT
[ -f "$work/home/aliases" ] || fail "no alias bindings file saved in the home"
head -n1 "$work/home/aliases" | grep -qx 'wzp-aliases 1' || fail "alias file has no header"

# --- --stun-rate reaches the workers: a burst of 30 Binding requests from one
# source gets the burst (2 x 2) answers, one more only if the sends straddled a refill
if command -v python3 >/dev/null; then
  start_relay "$work/home" "$work/log7" --stun-rate 2
  got=$(python3 - "$RELAY_PORT" <<'EOF'
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
for _ in range(30):
    s.sendto(b"\x00\x01\x00\x00\x21\x12\xa4\x42" + os.urandom(12), ("127.0.0.1", int(sys.argv[1])))
n = 0
try:
    while True:
        s.recv(100)
        n += 1
except socket.timeout:
    pass
print(n)
EOF
)
  [ "$got" = 4 ] || [ "$got" = 5 ] || fail "--stun-rate 2: $got answers to a burst of 30, want 4"
  echo "ok: --stun-rate 2 -> $got answers to a burst of 30"
  stop_relay TERM
fi

# --- a corrupt alias bindings file: exit 5, naming the file and line ------------------------
printf 'wzp-aliases 1\nalice not-a-fingerprint 1\n' >"$work/home/aliases"
"$BIN" --listen 127.0.0.1:0 --home "$work/home" >"$work/log6" 2>&1; rc=$?
[ "$rc" -eq 5 ] || { cat "$work/log6"; fail "corrupt alias file exited $rc, want 5"; }
grep -q "$work/home/aliases line 2" "$work/log6" || { cat "$work/log6"; fail "error does not name file and line"; }
echo "ok: corrupt alias file -> 5"
echo "relay_cli: all passed"
