#!/usr/bin/env bash
# wzp listen on a real terminal (a private tmux server): the incoming call rings and asks
# y/N, in the call single keys work without Enter (m mutes: the caller's JSON shows
# peer_mute; h hangs up: the caller exits 9, "peer hung up"), a second call is declined
# with n (caller exit 7), Ctrl-C ends listen and leaves the shell's terminal sane
# (icanon and echo back on), also when it comes in the middle of a call; wzp call on a
# terminal has the same keys (m, q), and m works while the other phone still rings.
set -uo pipefail
. "$(dirname "$0")/lib/relay.sh"
. "$(dirname "$0")/lib/cli.sh"
cli_setup wzp-tmux
. "$(dirname "$0")/lib/tmux.sh"
trap 'tmux_cleanup; cli_cleanup' EXIT

relay_start "$T"
R=(--relay "$RA" --relay-pin "$RP")
L=(--loopback-candidates --no-audio)
"$WZP" id --home "$T/alice" >/dev/null 2>&1
"$WZP" id --home "$T/bob" >/dev/null 2>&1

tmux_start w
tm send-keys -t w "\"$WZP\" listen ${R[*]} ${L[*]} --tone 440 --home $T/bob --alias bob; echo LISTEN_EXIT=\$?" Enter
wait_pane "listener registered" 'registered as' 10

# 1: answered with y (one key, no Enter), muted with m, hung up with h
"$WZP" call bob "${R[@]}" "${L[@]}" --tone 660 --home "$T/alice" --json --duration 20 >"$T/a1.json" 2>"$T/a1.err" &
CP=$!; PIDS+=($CP)
wait_pane "the call asks" 'incoming call from .* answer\? \[y/N\]' 10
tm send-keys -t w y
wait_pane "call active" 'call active' 10
wait_pane "key help" 'keys: m mute, \+/- volume, h hang up' 5
tm send-keys -t w m
wait_pane "the status line shows MUTED" 'MUTED' 5
wait_file "the caller hears the peer muted" "$T/a1.json" '"event":"peer_mute","muted":true' 8
tm send-keys -t w h
wait_exit $CP 10; check "the caller: peer hung up" 9 "$RC"
has "the caller says so" "$T/a1.err" "the peer hung up"
wait_pane "the listener's call ended" 'call ended \(hung up here\)' 5

# 2: declined with n
"$WZP" call bob "${R[@]}" "${L[@]}" --tone 660 --home "$T/alice" --json --duration 5 >"$T/a2.json" 2>"$T/a2.err" &
CP=$!; PIDS+=($CP)
for _ in $(seq 100); do [ "$(pane | grep -c 'answer? \[y/N\]')" -ge 2 ] && break; sleep 0.1; done
[ "$(pane | grep -c 'answer? \[y/N\]')" -ge 2 ] && echo "ok   the second call asks" || { echo "FAIL second prompt"; pane; fail=1; }
tm send-keys -t w n
wait_exit $CP 10; check "the caller: rejected" 7 "$RC"

# 3: Ctrl-C in the middle of a call (the terminal in single-key mode): the call is hung up,
# listen ends with 0 and the shell gets its terminal back as it was
"$WZP" call bob "${R[@]}" "${L[@]}" --tone 660 --home "$T/alice" --json --duration 20 >"$T/a3.json" 2>"$T/a3.err" &
CP=$!; PIDS+=($CP)
for _ in $(seq 100); do [ "$(pane | grep -c 'answer? \[y/N\]')" -ge 3 ] && break; sleep 0.1; done
tm send-keys -t w y Enter
for _ in $(seq 100); do [ "$(pane | grep -c 'keys: m mute')" -ge 2 ] && break; sleep 0.1; done
[ "$(pane | grep -c 'keys: m mute')" -ge 2 ] && echo "ok   the third call is active" || { echo "FAIL third call"; pane; fail=1; }
tm send-keys -t w C-c
wait_exit $CP 10; check "the caller of the interrupted call: peer hung up" 9 "$RC"
wait_pane "Ctrl-C ends listen" 'LISTEN_EXIT=0' 10
tm send-keys -t w "stty -a | tr ' ;' '\n\n' | grep -Ex -- '-?(icanon|echo)' | tr '\n' ' '; echo STTY_DONE" Enter
wait_pane "stty ran" '^-?icanon -?echo STTY_DONE' 5
if pane | grep -Eq -- '^icanon echo STTY_DONE'; then echo "ok   the terminal is sane (icanon echo)"
else echo "FAIL terminal left in raw mode:"; pane; fail=1; fi

# wzp call has the same keys: m mutes (the listener's JSON shows it), q hangs up (exit 0)
"$WZP" listen "${R[@]}" "${L[@]}" --tone 440 --home "$T/bob" --alias bob --auto-answer --once --json >"$T/b4.json" 2>"$T/b4.err" &
LP=$!; PIDS+=($LP)
wait_file "listener (--json) registered" "$T/b4.json" '"event":"registered"' 10
# A clean pane: the listener's "keys:" lines above would answer the wait for wzp call's at once,
# and an m typed before its call is active does nothing.
clear_pane
tm send-keys -t w "\"$WZP\" call bob ${R[*]} ${L[*]} --tone 660 --home $T/alice --duration 20; echo CALL_EXIT=\$?" Enter
wait_pane "wzp call: key help" 'keys: m mute, \+/- volume, h hang up' 10
tm send-keys -t w m
wait_file "the listener hears the caller muted" "$T/b4.json" '"event":"peer_mute","muted":true' 8
tm send-keys -t w q
wait_pane "wzp call: q hangs up" 'CALL_EXIT=0' 10
wait_exit $LP 10; check "listen --once after the caller hung up" 0 "$RC"

# m while it still rings: bob's listen (window l) asks y/N, alice (window w) mutes before he
# answers; once he does, his status says so.
tm new-window -d -t w: -n l "env PS1='READY$ ' sh"
wait_pane "shell in window l" 'READY\$' 5 l
tm send-keys -t l "\"$WZP\" listen ${R[*]} ${L[*]} --tone 440 --home $T/bob --alias bob --once; echo LISTEN_EXIT=\$?" Enter
wait_pane "bob's listener registered" 'registered as' 10 l
clear_pane
tm send-keys -t w "\"$WZP\" call bob ${R[*]} ${L[*]} --tone 660 --home $T/alice --duration 20; echo CALL_EXIT=\$?" Enter
wait_pane "bob is asked" 'answer\? \[y/N\]' 10 l
pane | grep -q 'call active' && { echo "FAIL alice's call is active before bob answered"; fail=1; }
tm send-keys -t w m
wait_pane "alice mutes while it rings" '^muted' 5
tm send-keys -t l y
wait_pane "bob's call is active" 'call active' 10 l
wait_pane "bob is told alice is muted" 'the peer muted their microphone' 8 l
wait_pane "alice's status line shows MUTED" 'MUTED' 5
tm send-keys -t w q
wait_pane "alice hangs up" 'CALL_EXIT=0' 10
wait_pane "bob's listen --once ends" 'LISTEN_EXIT=0' 10 l
exit $fail
