#!/usr/bin/env bash
# wzp listen takes calls one after another and every call lands in the history:
# two calls in a row on one `wzp listen --auto-answer`, a third caller while
# the line is busy gets exit 7 and records "busy" (the relay turns it away, so
# the listener never hears of it), `wzp history --json` shows the records with the right
# directions and outcomes; a damaged history file gives `wzp history` one line
# naming the line and exit 22, and calls still work without touching it.
set -uo pipefail
. "$(dirname "$0")/lib/relay.sh"
. "$(dirname "$0")/lib/cli.sh"
cli_setup wzp-history
count() { # name file pattern expected
    local n; n=$(grep -c -- "$3" "$2")
    if [ "$n" = "$4" ]; then echo "ok   $1 ($n)"; else echo "FAIL $1: $n, want $4:"; cat "$2"; fail=1; fi
}

relay_start "$T"
R=(--relay "$RA" --relay-pin "$RP")
L=(--loopback-candidates --no-audio)
A_FP=$("$WZP" id --home "$T/alice" 2>/dev/null)
B_FP=$("$WZP" id --home "$T/bob" 2>/dev/null)
C_FP=$("$WZP" id --home "$T/carol" 2>/dev/null)
"$WZP" contacts add alice "$A_FP" --home "$T/bob" >/dev/null

"$WZP" listen "${R[@]}" "${L[@]}" --home "$T/bob" --alias bob --auto-answer --json >"$T/b.json" 2>"$T/b.err" &
LP=$!; PIDS+=($LP)
for _ in $(seq 50); do grep -q registered "$T/b.json" && break; sleep 0.1; done

# two calls in a row on the same listener
"$WZP" call bob "${R[@]}" "${L[@]}" --home "$T/alice" --duration 1 >/dev/null 2>"$T/err"; check "first call" 0 $?
"$WZP" call bob "${R[@]}" "${L[@]}" --home "$T/carol" --duration 1 >/dev/null 2>"$T/err"; check "second call" 0 $?
count "two summaries from one listen" "$T/b.json" '"event":"summary"' 2
kill -0 $LP 2>/dev/null && echo "ok   listen goes on after two calls" || { echo "FAIL listen left"; fail=1; }

# busy: alice is in a call with bob, carol is turned away with exit 7
"$WZP" call bob "${R[@]}" "${L[@]}" --home "$T/alice" --duration 3 >/dev/null 2>"$T/err" &
CP=$!; PIDS+=($CP)
for _ in $(seq 50); do [ "$(grep -c '"state":"active"' "$T/b.json")" = 3 ] && break; sleep 0.1; done
"$WZP" call bob "${R[@]}" "${L[@]}" --home "$T/carol" --duration 1 >/dev/null 2>"$T/err"; rc=$?
check "busy" 7 $rc; one_line "busy" "$T/err"
wait $CP; check "the call in progress goes on" 0 $?

kill -INT $LP; wait $LP; check "Ctrl-C ends listen" 0 $?

"$WZP" history --home "$T/bob" --json >"$T/hb.json"; check "history --json" 0 $?
count "bob: three records" "$T/hb.json" '"start":"' 3
count "bob: three answered incoming" "$T/hb.json" '"direction":"in","outcome":"answered"' 3
has "bob: alice named by her contact" "$T/hb.json" "\"peer\":\"$A_FP\",\"contact\":\"alice\""
has "bob: quality recorded" "$T/hb.json" '"duration_s":[1-9][0-9.]*,"path":"\(direct\|relay\)","loss_pct":[0-9.]*,"rtt_ms":'
# newest first: the 3 s call is the last one bob took
head -1 "$T/hb.json" | grep -q '"duration_s":3' && echo "ok   newest first" || { echo "FAIL order:"; cat "$T/hb.json"; fail=1; }
"$WZP" history --home "$T/bob" -n 1 --json >"$T/h1.json"; count "-n 1" "$T/h1.json" '"start":"' 1
"$WZP" history --home "$T/carol" --json >"$T/hc.json"
count "carol: two records" "$T/hc.json" '"start":"' 2
has "carol: out answered" "$T/hc.json" "\"direction\":\"out\",\"outcome\":\"answered\",\"reason\":\"[a-z-]*\",\"peer\":\"$B_FP\""
has "carol: out busy" "$T/hc.json" "\"direction\":\"out\",\"outcome\":\"busy\",\"reason\":\"busy\",\"peer\":null"
"$WZP" history --home "$T/alice" --json >"$T/ha.json"
count "alice: two answered outgoing" "$T/ha.json" '"direction":"out","outcome":"answered"' 2
"$WZP" history --home "$T/bob" >"$T/hb.txt"; check "history table" 0 $?
has "table names the contact" "$T/hb.txt" "alice ${A_FP:0:9}"
"$WZP" history --home "$T/carol" >"$T/hc.txt"
has "table shows busy" "$T/hc.txt" "busy (busy)"

# a failed call is recorded too
"$WZP" call "$C_FP" "${R[@]}" "${L[@]}" --home "$T/alice" >/dev/null 2>&1; check "offline peer" 6 $?
"$WZP" history --home "$T/alice" -n 1 --json >"$T/ha1.json"
has "alice: failed (offline)" "$T/ha1.json" "\"direction\":\"out\",\"outcome\":\"failed\",\"reason\":\"[a-z-]*offline[a-z-]*\",\"peer\":\"$C_FP\""

# a damaged history: one line with the line number, exit 22; calls work and leave it alone
printf '2026-13-01T00:00:00Z in answered\n' >>"$T/bob/history"
cp "$T/bob/history" "$T/before"
"$WZP" history --home "$T/bob" >"$T/out" 2>"$T/err"; rc=$?
check "damaged history" 22 $rc; one_line "damaged history" "$T/err"
has "names the line" "$T/err" "line [0-9]*: bad start time"
"$WZP" listen "${R[@]}" "${L[@]}" --home "$T/bob" --alias bob --auto-answer --once >/dev/null 2>"$T/lerr" &
LP=$!; PIDS+=($LP)
sleep 0.7
"$WZP" call bob "${R[@]}" "${L[@]}" --home "$T/alice" --duration 1 >/dev/null 2>"$T/err"; check "call with a damaged history" 0 $?
wait $LP; check "listen --once with a damaged history" 0 $?
has "listener warns" "$T/lerr" "warning: .*history line [0-9]*: bad start time"
cmp -s "$T/before" "$T/bob/history" && echo "ok   damaged history untouched" || { echo "FAIL damaged history changed"; fail=1; }
if ls -A "$T/bob" "$T/alice" | grep -q '\.tmp-'; then echo "FAIL temp files left"; fail=1; fi

"$WZP" --help | grep -q "history " && echo "ok   --help lists history" || { echo "FAIL --help"; fail=1; }
exit $fail
