#!/usr/bin/env bash
# A fresh configure and build of what gets installed (no tests; this build's compiler
# and flags), `cmake --install` into a staging prefix: headers, libwzp (shared with
# its SONAME, static), wzp.pc, wzp, wzp-relay and their man pages in place;
# libwzp exports exactly the functions include/wzp/ declares with WZP_API; the man
# pages keep up with the programs; examples/call.c compiles against the staged
# package through `pkg-config --cflags --libs wzp`, links libwzp.so.0, and with the
# staged binaries (a relay, `wzp listen --auto-answer --tone`) places a call.
set -uo pipefail
. "$(dirname "$0")/lib/relay.sh"
. "$(dirname "$0")/lib/cli.sh"
cli_setup wzp-install
src="${WZP_SOURCE_DIR:-$(dirname "$0")/../..}"
build="${WZP_BUILD_DIR:-$src/build}"
for tool in cc pkg-config nm readelf; do
    command -v $tool >/dev/null || { echo "skip: no $tool"; exit 77; }
done
ok() { echo "ok   $1"; }
bad() { echo "FAIL $1"; fail=1; }

cached() { sed -n "s/^$1:[A-Z]*=//p" "$build/CMakeCache.txt"; }
root="$T/prefix"
cmake -S "$src" -B "$T/build" -DBUILD_TESTING=OFF -DCMAKE_INSTALL_PREFIX="$root" \
    -DCMAKE_C_COMPILER="$(cached CMAKE_C_COMPILER)" -DCMAKE_BUILD_TYPE="$(cached CMAKE_BUILD_TYPE)" \
    -DCMAKE_C_FLAGS="$(cached CMAKE_C_FLAGS)" -DCMAKE_EXE_LINKER_FLAGS="$(cached CMAKE_EXE_LINKER_FLAGS)" \
    -DCMAKE_SHARED_LINKER_FLAGS="$(cached CMAKE_SHARED_LINKER_FLAGS)" \
    -DWZP_SANITIZE="$(cached WZP_SANITIZE)" -DWZP_WERROR="$(cached WZP_WERROR)" >"$T/build.log" 2>&1 &&
    cmake --build "$T/build" -j "${WZP_INSTALL_TEST_JOBS:-1}" --target wzp_shared wzp_static wzp wzp-relay \
        >>"$T/build.log" 2>&1 &&
    cmake --install "$T/build" >>"$T/build.log" 2>&1 || { tail -n 40 "$T/build.log"; exit 1; }
ok "configured, built and installed into a staging prefix"
pc=$(find "$root" -name wzp.pc)
[ -n "$pc" ] || { echo "FAIL no wzp.pc installed"; exit 1; }
libdir=$(dirname "$(dirname "$pc")")
for f in include/wzp/wzp.h include/wzp/client.h include/wzp/identity.h include/wzp/audio.h \
    bin/wzp sbin/wzp-relay share/man/man1/wzp.1 share/man/man8/wzp-relay.8; do
    [ -e "$root/$f" ] && ok "installed $f" || bad "missing $f"
done
for f in libwzp.so libwzp.so.0 libwzp.a; do
    [ -e "$libdir/$f" ] && ok "installed $f" || bad "missing $f"
done
readelf -d "$libdir/libwzp.so.0" | grep -q 'SONAME.*\[libwzp\.so\.0\]' && ok "SONAME libwzp.so.0" ||
    bad "SONAME is not libwzp.so.0"
for page in "$root/share/man/man1/wzp.1" "$root/share/man/man8/wzp-relay.8"; do
    if command -v man >/dev/null; then
        warn=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
        [ -z "$warn" ] && ok "$(basename "$page") formats without warnings" || bad "$page: $warn"
    fi
done

# The man pages keep up with the programs: every command and exit code of wzp,
# every option of wzp-relay.
page1=$(sed 's/\\-/-/g' "$src/man/wzp.1")
page8=$(sed 's/\\-/-/g' "$src/man/wzp-relay.8")
for cmd in $("$root/bin/wzp" --help | sed -n '/^commands:/,/^$/s/^  \([a-z]\+\) .*/\1/p'); do
    grep -q "^\.BI\? $cmd\b" <<<"$page1" || bad "wzp.1 does not describe the command $cmd"
done
for code in $("$root/bin/wzp" --help | sed -n 's/^ *\([0-9]\+\)  .*/\1/p'); do
    sed -n '/^\.SH EXIT STATUS/,/^\.SH/p' <<<"$page1" | grep -qE "(^|[ ,])$code [a-z]" ||
        bad "wzp.1 does not list exit code $code"
done
for opt in $("$root/sbin/wzp-relay" --help | grep -o -- '--[a-z0-9-]*' | sort -u); do
    grep -q -- "$opt" <<<"$page8" || bad "wzp-relay.8 does not describe $opt"
done
[ $fail = 0 ] && ok "the man pages list every wzp command and exit code and every wzp-relay option"

# Exports: the WZP_API declarations, no more, no less; and no public function without it.
if grep -n '^[a-z].*\bwzp_[a-z0-9_]*(' "$root"/include/wzp/*.h | grep -v ':[0-9]*:\(typedef\|WZP_API\) '; then
    bad "public functions declared without WZP_API (above): they would not be exported"
fi
sed -n 's/^WZP_API .*\b\(wzp_[a-z0-9_]*\)(.*/\1/p' "$root"/include/wzp/*.h | sort >"$T/api"
# (A sanitizer build also exports its coverage sections' bounds: __start___sancov_*.)
nm -D --defined-only "$libdir/libwzp.so.0" | awk '{print $3}' | grep -v '^__st[a-z]*___sancov_' |
    sort >"$T/exports"
if diff "$T/api" "$T/exports" >"$T/diff"; then
    ok "libwzp exports the $(wc -l <"$T/api") WZP_API functions and nothing else"
else
    bad "exports differ from the WZP_API declarations (< declared only, > exported only):"
    cat "$T/diff"
fi

# The example, through pkg-config only.
export PKG_CONFIG_PATH="$libdir/pkgconfig"
flags=$(pkg-config --cflags --libs wzp) || { echo "FAIL pkg-config wzp"; exit 1; }
echo "pkg-config --cflags --libs wzp: $flags"
# A sanitizer build's library needs the sanitizer runtime in the program.
cc=cc
san=()
if grep -q '^WZP_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null; then
    cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
    san=(-fsanitize=address,undefined)
fi
# shellcheck disable=SC2086 # word splitting of the flags is the point
if $cc -std=c11 -Wall -Wextra -Wno-unused-parameter -Werror "${san[@]}" -o "$T/example" \
    "$src/examples/call.c" $flags 2>"$T/cc.err"; then
    ok "examples/call.c compiles and links against the staged libwzp"
else
    bad "examples/call.c does not build:"; cat "$T/cc.err"; exit 1
fi
readelf -d "$T/example" | grep -q 'NEEDED.*\[libwzp\.so\.0\]' && ok "the example needs libwzp.so.0" ||
    bad "the example does not link libwzp.so.0"
# Linked with libwzp.a instead (its dependencies shared): wzp.pc's Requires.private and
# Libs.private name everything libwzp.a needs. (Not pkg-config --static: that wants the
# static archives of GnuTLS's own dependencies too.)
# shellcheck disable=SC2046
static="$libdir/libwzp.a $(pkg-config --libs $(pkg-config --print-requires-private wzp | awk '{print $1}'))
    $(sed -n 's/^Libs.private: //p' "$pc")"
# shellcheck disable=SC2086
if $cc -std=c11 "${san[@]}" -o "$T/example-static" "$src/examples/call.c" \
    $(pkg-config --cflags wzp) $static 2>"$T/cc.err" &&
    WZP_HOME="$T/ex" "$T/example-static" >"$T/ex.out" 2>&1; then
    ok "the example links and runs with libwzp.a and wzp.pc's private dependencies"
else
    bad "static link:"; cat "$T/cc.err" "$T/ex.out"
fi
export LD_LIBRARY_PATH="$libdir"
WZP_HOME="$T/ex" "$T/example" >"$T/ex.out" 2>&1 && grep -q '^identity .* (loaded' "$T/ex.out" &&
    ok "the shared example loads that identity: $(grep ^identity "$T/ex.out")" || { bad "example:"; cat "$T/ex.out"; }

# A call from the example to a listener, both through a relay, all three installed.
RELAY="$root/sbin/wzp-relay"
WZP="$root/bin/wzp"
relay_start "$T"
listen_once "$T"
if WZP_HOME="$T/ex" "$T/example" "$RA" "$RP" bob 2 >"$T/call.out" 2>&1; then
    ok "the example called the installed wzp through the installed relay: $(grep -h '^heard\|^call:' "$T/call.out" | tr '\n' ' ')"
else
    bad "the example's call:"; cat "$T/call.out" "$T/bob.err"
fi
wait $LP && ok "wzp listen --once ended with exit 0" || bad "wzp listen --once exit $?"
exit $fail
