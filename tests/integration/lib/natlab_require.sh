# Sourced by the NAT lab tests (natlab_e2e.sh, natlab_selftest.sh): the
# checks that decide whether this machine can run the lab at all.
# (In lib/ so that the test glob, tests/integration/*.sh, does not run it.)

# Exit 77 (ctest: skipped) with the reason.
skip() {
    echo "SKIP: $*"
    exit 77
}

# natlab_require NS_PREFIX TOOL...: skip unless root, every TOOL is on PATH,
# and a network namespace can be made here (NS_PREFIX names the probe one).
natlab_require() {
    local prefix=$1 tool
    shift
    [ "$(id -u)" = 0 ] || skip "needs root (network namespaces, nftables)"
    for tool in "$@"; do
        command -v "$tool" >/dev/null || skip "$tool not installed"
    done
    local probe_ns="$prefix$$-check"
    if ! timeout 5 ip netns add "$probe_ns" 2>/dev/null; then
        skip "cannot create network namespaces here"
    fi
    timeout 5 ip netns del "$probe_ns"
}

# natlab_require_bins NAME...: fail (exit 1) unless each is built in $WZP_BIN_DIR.
natlab_require_bins() {
    local b
    for b in "$@"; do
        [ -x "$WZP_BIN_DIR/$b" ] || {
            echo "FAIL: $WZP_BIN_DIR/$b not built"
            exit 1
        }
    done
}
