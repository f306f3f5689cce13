#!/usr/bin/env bash
# Debugging hooks, on one call through a relay on loopback:
#   * SSLKEYLOGFILE (GnuTLS writes the TLS secrets): each client's file holds
#     NSS key log lines for both of its QUIC connections (control and call),
#     every label of a TLS 1.3 handshake for each;
#   * --qlog DIR: one JSON-SEQ file per QUIC connection (client: control and
#     call; callee: the call as server; relay --qlog: the control connections),
#     every record valid JSON, packets logged;
#   * --log-json: every line wzp and wzp-relay log is a JSON object with ts,
#     level and msg;
#   * a --qlog directory that cannot be written is refused before anything runs.
set -uo pipefail
. "$(dirname "$0")/lib/cli.sh"
cli_setup wzp-debug-hooks
ok() { echo "ok   $*"; }
bad() { echo "FAIL $*"; fail=1; }
mkdir -p "$T/q-relay" "$T/q-a" "$T/q-b"

"$RELAY" --listen 127.0.0.1:0 --home "$T/relay" --workers 1 --log-json -v --qlog "$T/q-relay" \
    >"$T/relay.out" 2>"$T/relay.err" &
RELAY_PID=$!
PIDS+=($RELAY_PID)
for _ in $(seq 50); do grep -q fingerprint "$T/relay.out" && break; sleep 0.1; done
RA=$(sed -n 's/.*listening on //p' "$T/relay.out")
RP=$(sed -n 's/.*fingerprint //p' "$T/relay.out")
[ -n "$RA" ] && [ -n "$RP" ] || { echo "relay did not start"; cat "$T/relay.out" "$T/relay.err"; exit 1; }
R=(--relay "$RA" --relay-pin "$RP" --no-audio)

"$WZP" call alice "${R[@]}" --home "$T/b" --qlog "$T/nonexistent" --duration 1 >/dev/null 2>"$T/err"
check "--qlog into a missing directory" 2 $?; one_line "--qlog refused" "$T/err"

SSLKEYLOGFILE="$T/keys-a.txt" WZP_QLOG_DIR="$T/q-a" "$WZP" listen --once "${R[@]}" --home "$T/a" \
    --alias alice --auto-answer --tone 440 --json >"$T/a.json" 2>"$T/a.err" &
LP=$!; PIDS+=($LP)
for _ in $(seq 50); do grep -q '"event":"registered"' "$T/a.json" && break; sleep 0.1; done
SSLKEYLOGFILE="$T/keys-b.txt" "$WZP" call alice "${R[@]}" --home "$T/b" --tone 660 --duration 1 \
    --qlog "$T/q-b" --log-json -v --json >"$T/b.json" 2>"$T/b.err"
check "the call" 0 $?
wait $LP; check "the listener" 0 $?
kill -TERM $RELAY_PID; wait $RELAY_PID; check "relay stopped" 0 $?

python3 - "$T" <<'PY' || fail=1
import glob, json, os, re, sys
t = sys.argv[1]
bad = 0
def say(ok, what):
    global bad
    print(("ok   " if ok else "FAIL ") + what)
    bad += not ok

# SSLKEYLOGFILE: NSS key log format, both connections of each client, all TLS 1.3 labels.
labels = {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "SERVER_HANDSHAKE_TRAFFIC_SECRET",
          "CLIENT_TRAFFIC_SECRET_0", "SERVER_TRAFFIC_SECRET_0", "EXPORTER_SECRET"}
line_re = re.compile(r"^([A-Z_0-9]+) ([0-9a-f]{64}) ([0-9a-f]{64}|[0-9a-f]{96})$")
for side in "ab":
    f = os.path.join(t, "keys-%s.txt" % side)
    lines = open(f).read().splitlines() if os.path.exists(f) else []
    m = [line_re.match(l) for l in lines]
    say(lines and all(m), "keylog %s: %d lines, all NSS key log format" % (side, len(lines)))
    by_random = {}
    for x in filter(None, m):
        by_random.setdefault(x.group(2), set()).add(x.group(1))
    say(len(by_random) == 2 and all(labels <= v for v in by_random.values()),
        "keylog %s: 2 connections (control, call), every label for each" % side)

# qlog: JSON-SEQ, one file per connection.
def check_qlog(d, want):
    files = sorted(glob.glob(os.path.join(t, d, "*.sqlog")))
    names = [os.path.basename(f).split("-")[0] for f in files]
    say(sorted(names) == sorted(want), "qlog %s: files %s, want %s" % (d, names, want))
    for f in files:
        data = open(f, "rb").read()
        recs = [r for r in data.split(b"\x1e") if r.strip()]
        try:
            objs = [json.loads(r) for r in recs]
            valid = data.startswith(b"\x1e") and objs[0].get("qlog_format") == "JSON-SEQ"
        except ValueError as e:
            valid, objs = False, []
        sent = sum(1 for o in objs if o.get("name") == "transport:packet_sent")
        say(valid and sent > 0, "qlog %s: %d JSON-SEQ records, %d packets sent" %
            (os.path.basename(f), len(objs), sent))
check_qlog("q-b", ["client", "client"])   # caller: control, call
check_qlog("q-a", ["client", "server"])   # callee: control, call (it accepts)
check_qlog("q-relay", ["server", "server"])

# --log-json: every log line is one JSON object.
for f, who in ((os.path.join(t, "b.err"), "wzp call"), (os.path.join(t, "relay.err"), "wzp-relay")):
    lines = [l for l in open(f).read().splitlines() if l.strip()]
    try:
        objs = [json.loads(l) for l in lines]
        good = all({"ts", "level", "msg"} <= o.keys() for o in objs)
    except ValueError:
        objs, good = [], False
    tagged = sum(1 for o in objs if "tag" in o)
    say(lines and good and tagged > 0,
        "%s --log-json: %d lines, all JSON with ts/level/msg, %d with a tag" % (who, len(lines), tagged))
sys.exit(1 if bad else 0)
PY
exit $fail
