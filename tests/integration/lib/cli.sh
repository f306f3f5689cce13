# shellcheck shell=bash
# Sourced by the integration tests that run the CLI and judge one-line errors
# and exit codes (cli_errors.sh, contacts_invite.sh, listen_history.sh).
# (In lib/ so that the test glob, tests/integration/*.sh, does not run it.)

# cli_setup NAME: WZP and RELAY (the binaries in $WZP_BIN_DIR, else build/bin;
# exit 77 if they are not built), T (a fresh temp dir /tmp/NAME-XXXXXX), PIDS
# (processes the EXIT trap kills), fail=0 (set by the checks below; the test
# exits with it).
cli_setup() {
    local bin="${WZP_BIN_DIR:-$(dirname "${BASH_SOURCE[0]}")/../../../build/bin}"
    WZP="$bin/wzp"
    RELAY="$bin/wzp-relay"
    [ -x "$WZP" ] && [ -x "$RELAY" ] || { echo "skip: binaries not built"; exit 77; }
    T=$(mktemp -d "/tmp/$1-XXXXXX")
    PIDS=()
    fail=0
    trap cli_cleanup EXIT
}
cli_cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$T"
}
check() { # name expected actual
    if [ "$2" = "$3" ]; then echo "ok   $1 (exit $3)"; else echo "FAIL $1: expected exit $2, got $3"; fail=1; fi
}
one_line() { # name file: exactly one line on stderr
    local n; n=$(grep -c . "$2")
    if [ "$n" = 1 ]; then echo "ok   $1: $(cat "$2")"; else echo "FAIL $1: $n lines on stderr:"; cat "$2"; fail=1; fi
}
has() { # name file pattern: the pattern (grep) is in the file
    if grep -q -- "$3" "$2"; then echo "ok   $1"; else echo "FAIL $1: no '$3' in $2:"; cat "$2"; fail=1; fi
}
