# shellcheck shell=bash
# Sourced by the tests that drive wzp on a real terminal: a private tmux server
# (its own socket name, ended by tmux_cleanup) whose windows run plain sh.
# Needs lib/cli.sh first (T, PIDS, fail).
#
#   tmux_start WINDOW...     a session with these windows, each at a "READY$ " prompt
#   tm ARGS...               tmux on the private server
#   pane WINDOW              what the window shows (200 lines of history, joined)
#   wait_pane WHAT PATTERN [SECONDS] [WINDOW]   until the window shows PATTERN (grep -E)
#   wait_file WHAT FILE PATTERN [SECONDS]       until FILE has PATTERN (grep)
#   wait_exit PID SECONDS    its exit code in RC (124 if it had to be killed)
#   clear_pane [WINDOW]      screen and history emptied, the prompt alone: a later
#                            wait_pane sees only what comes after

command -v tmux >/dev/null || { echo "skip: tmux is not installed"; exit 77; }
TMUX_SOCK="wzp-test-$$-$RANDOM"
tm() { tmux -L "$TMUX_SOCK" "$@"; }
tmux_cleanup() { tm kill-server 2>/dev/null; }
pane() { tm capture-pane -p -J -S -200 -t "${1:-w}"; }
tmux_start() {
    local first="$1" w
    shift
    # The pane's shell: plain sh, no rc files, a prompt the test can see.
    tm -f /dev/null new-session -d -s "$first" -n "$first" -x 200 -y 50 "env PS1='READY$ ' sh" \
        || { echo "FAIL tmux"; exit 1; }
    for w in "$@"; do tm new-window -d -t "$first:" -n "$w" "env PS1='READY$ ' sh"; done
    for w in "$first" "$@"; do wait_pane "shell in window $w" 'READY\$' 5 "$first:$w" || exit 1; done
}
wait_pane() {
    local n=$(( ${3:-10} * 10 )) w="${4:-w}"
    for _ in $(seq "$n"); do pane "$w" | grep -Eq -- "$2" && { echo "ok   $1"; return 0; }; sleep 0.1; done
    echo "FAIL $1: no '$2' in the pane:"; pane "$w"; fail=1; return 1
}
wait_file() {
    local n=$(( ${4:-10} * 10 ))
    for _ in $(seq "$n"); do grep -q -- "$3" "$2" 2>/dev/null && { echo "ok   $1"; return 0; }; sleep 0.1; done
    echo "FAIL $1: no '$3' in $2:"; cat "$2"; fail=1; return 1
}
wait_exit() {
    local n=$(( $2 * 10 ))
    for _ in $(seq "$n"); do kill -0 "$1" 2>/dev/null || { wait "$1"; RC=$?; return; }; sleep 0.1; done
    kill "$1" 2>/dev/null; wait "$1"; RC=124
}
clear_pane() {
    local w="${1:-w}"
    tm send-keys -t "$w" clear Enter
    # Until the shell has run clear, the old lines are still there to be matched.
    for _ in $(seq 50); do
        if [ "$(pane "$w" | grep -cvE '^(READY\$ *)?$')" = 0 ]; then
            tm clear-history -t "$w"
            return 0
        fi
        sleep 0.1
    done
    echo "FAIL the pane did not clear:"; pane "$w"; fail=1; return 1
}
