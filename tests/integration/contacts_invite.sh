#!/usr/bin/env bash
# Contacts and invites with the real binaries on loopback: bob makes an invite
# and alice, with nothing configured, calls it (no --relay flags); contacts
# add (from an invite and a fingerprint), list, rename, remove; callers are
# named by their contact entry and both see the same verification code; a
# contact is dialled by key, so whoever holds its alias at the relay is never
# rung, and a contact offline while another key holds its alias is "key
# changed" (exit 23); tampered invites, unknown contacts,
# taken names and a damaged contacts file give one line and their exit code,
# and a damaged file is left as it was.
set -uo pipefail
. "$(dirname "$0")/lib/relay.sh"
. "$(dirname "$0")/lib/cli.sh"
cli_setup wzp-contacts

relay_start "$T"
R=(--relay "$RA" --relay-pin "$RP")
L=(--loopback-candidates --no-audio)
A=(--home "$T/alice")
A_FP=$("$WZP" id "${A[@]}" 2>/dev/null)
B_FP=$("$WZP" id --home "$T/bob" 2>/dev/null)

# bob's invite: one line on stdout when it is not a terminal (no QR code)
INV=$("$WZP" invite --home "$T/bob" --alias bob "${R[@]}" 2>"$T/err"); rc=$?
check "invite" 0 $rc
case "$INV" in wzp1:*) [ "$(printf '%s\n' "$INV" | wc -l)" = 1 ] && echo "ok   one line: $INV" ||
    { echo "FAIL invite is not one line: $INV"; fail=1; } ;;
*) echo "FAIL invite: '$INV'"; fail=1 ;; esac
"$WZP" invite --home "$T/bob" --alias bob "${R[@]}" --json >"$T/inv.json"
has "invite --json" "$T/inv.json" "\"fingerprint\":\"$B_FP\""

listen() { # home json-file: bob-like listener taking one call
    "$WZP" listen --once "${R[@]}" "${L[@]}" --home "$1" --alias "${3:-bob}" --auto-answer --json >"$2" 2>"$2.err" &
    LP=$!; PIDS+=($LP)
    for _ in $(seq 50); do grep -q registered "$2" && break; sleep 0.1; done
}

# alice, nothing configured, calls the invite: relay and pin come from it
listen "$T/bob" "$T/b1.json"
"$WZP" call "$INV" "${A[@]}" "${L[@]}" --duration 1 --json >"$T/a1.json" 2>"$T/err"; rc=$?
check "call INVITE with no --relay" 0 $rc
has "the invite's key answered" "$T/a1.json" "\"state\":\"active\",\"peer\":\"$B_FP\""
has "bob is told: unknown caller" "$T/b1.json" "\"from\":\"$A_FP\",\"alias\":\"\",\"contact\":null"
wait $LP

# contacts: from the invite and from a fingerprint
"$WZP" contacts add bob "$INV" "${A[@]}" >/dev/null 2>"$T/err"; check "add from invite" 0 $?
"$WZP" contacts add alice "$A_FP" --home "$T/bob" >/dev/null 2>"$T/err"; check "add by fingerprint" 0 $?
"$WZP" contacts list "${A[@]}" --json >"$T/list.json"
has "list --json" "$T/list.json" "{\"name\":\"bob\",\"fingerprint\":\"$B_FP\",\"alias\":\"bob\",\"relay\":\"$RA\",\"relay_pin\":\"$RP\"}"

# alice calls the contact by name (its relay from the contact); both see names
listen "$T/bob" "$T/b2.json"
"$WZP" call bob "${A[@]}" "${L[@]}" --duration 1 --json >"$T/a2.json" 2>"$T/err"; rc=$?
check "call a contact by name" 0 $rc
has "alice sees her contact" "$T/a2.json" "\"peer\":\"$B_FP\",\"contact\":\"bob\""
has "bob sees his contact" "$T/b2.json" "\"from\":\"$A_FP\",\"alias\":\"\",\"contact\":\"alice\""
ca=$(sed -n 's/.*"state":"active".*"code":"\([0-9 ]*\)".*/\1/p' "$T/a2.json")
cb=$(sed -n 's/.*"state":"active".*"code":"\([0-9 ]*\)".*/\1/p' "$T/b2.json")
if [ -n "$ca" ] && [ "$ca" = "$cb" ] && [ ${#ca} = 7 ]; then echo "ok   both sides show verification code $ca"
else echo "FAIL verification codes '$ca' / '$cb'"; fail=1; fi
wait $LP
listen "$T/bob" "$T/b3.json"
"$WZP" call bob "${A[@]}" "${L[@]}" --duration 1 >"$T/a3.txt" 2>"$T/err"; rc=$?
check "call a contact (text)" 0 $rc
has "text names the contact" "$T/a3.txt" "talking to bob (contact) $B_FP"
has "text shows the code" "$T/a3.txt" "verification code [0-9]\{3\} [0-9]\{3\} (compare by voice)"
wait $LP

# A cluster's invite (its first relay answers nothing here): the contact keeps every relay and
# pin, and calling it homes on one that answers.
DEAD="127.0.0.3:${RA##*:}"
INV3=$("$WZP" invite --home "$T/bob" --alias bob --relay "$DEAD,$RA" --relay-pin "$A_FP,$RP" 2>"$T/err")
check "cluster invite" 0 $?
"$WZP" contacts add bob "$INV3" --home "$T/carol" >/dev/null 2>"$T/err"; check "add from a cluster invite" 0 $?
"$WZP" contacts list --home "$T/carol" --json >"$T/list3.json"
has "the contact keeps the cluster's relays" "$T/list3.json" \
    "\"relay\":\"$DEAD\",\"relay_pin\":\"$A_FP\",\"more_relays\":\[{\"relay\":\"$RA\",\"relay_pin\":\"$RP\"}\]"
listen "$T/bob" "$T/b4.json"
"$WZP" call bob --home "$T/carol" "${L[@]}" --duration 1 --json >"$T/c4.json" 2>"$T/err"; rc=$?
check "call a cluster contact whose first relay is down" 0 $rc
has "carol reached bob's key" "$T/c4.json" "\"state\":\"active\",\"peer\":\"$B_FP\""
wait $LP

# a contact is dialled by its key: mallory holding the contact's alias is never rung
M_FP=$("$WZP" id --home "$T/mallory" 2>/dev/null)
C_FP=$("$WZP" id --home "$T/carol" 2>/dev/null) # carol stays offline
"$WZP" contacts add carol "$C_FP" --alias carol "${A[@]}" >/dev/null
listen "$T/mallory" "$T/m.json" carol
"$WZP" call carol "${A[@]}" "${R[@]}" "${L[@]}" --duration 1 >/dev/null 2>"$T/err"; rc=$?
check "contact offline, its alias held by another key: key changed" 23 $rc
one_line "key changed" "$T/err"
has "the message names the contact and the other key" "$T/err" "carol's key changed? .*alias 'carol' now belongs to another key, $M_FP"
if grep -q incoming "$T/m.json"; then echo "FAIL mallory was rung for contact carol"; fail=1
else echo "ok   mallory (alias carol) was never rung"; fi
kill -INT $LP; wait $LP
"$WZP" call carol "${A[@]}" "${R[@]}" "${L[@]}" --duration 1 >/dev/null 2>"$T/err"; rc=$?
check "contact offline, its alias free" 6 $rc; one_line "contact offline" "$T/err"

# rename, remove, names taken, unknown contacts
"$WZP" contacts rename bob robert "${A[@]}" 2>"$T/err"; check "rename" 0 $?
"$WZP" contacts add Robert "$M_FP" "${A[@]}" 2>"$T/err"; rc=$?
check "name taken (any case)" 21 $rc; one_line "name taken" "$T/err"
"$WZP" contacts add bobby "$INV" "${A[@]}" 2>"$T/err"; rc=$?
check "key already stored" 21 $rc; one_line "key already stored" "$T/err"
has "says under which name" "$T/err" "already stored as 'robert'"
"$WZP" contacts add "bad name" "$M_FP" "${A[@]}" 2>"$T/err"; rc=$?
check "bad name" 2 $rc; one_line "bad name" "$T/err"
"$WZP" contacts remove bob "${A[@]}" 2>"$T/err"; rc=$?
check "remove unknown contact" 18 $rc; one_line "remove unknown contact" "$T/err"
"$WZP" call bob "${A[@]}" "${L[@]}" 2>"$T/err"; rc=$?
check "call unknown contact (no relay)" 18 $rc; one_line "call unknown contact" "$T/err"
"$WZP" contacts remove robert "${A[@]}" 2>"$T/err"; check "remove" 0 $?
"$WZP" contacts list "${A[@]}" >"$T/list.txt"
if grep -q "^carol " "$T/list.txt" && ! grep -q robert "$T/list.txt"; then echo "ok   list after rename/remove"
else echo "FAIL list: $(cat "$T/list.txt")"; fail=1; fi

# tampered invites
bad="${INV:0:20}$( [ "${INV:20:1}" = a ] && echo b || echo a)${INV:21}"
"$WZP" call "$bad" "${A[@]}" "${L[@]}" 2>"$T/err"; rc=$?
check "tampered invite" 20 $rc; one_line "tampered invite" "$T/err"
has "checksum named" "$T/err" "checksum mismatch"
"$WZP" contacts add x "wzp9:${INV:5}" "${A[@]}" 2>"$T/err"; rc=$?
check "unsupported invite version" 20 $rc; one_line "unsupported version" "$T/err"
"$WZP" contacts add x "${INV:0:60}" "${A[@]}" 2>"$T/err"; rc=$?
check "truncated invite" 20 $rc; one_line "truncated invite" "$T/err"

# a damaged contacts file: one line naming the line, nothing written over
printf 'carol-2 not-a-key\n' >>"$T/alice/contacts"
cp "$T/alice/contacts" "$T/before"
"$WZP" contacts list "${A[@]}" 2>"$T/err"; rc=$?
check "damaged contacts file" 19 $rc; one_line "damaged contacts file" "$T/err"
has "names the line" "$T/err" "line 3: bad fingerprint"
"$WZP" contacts add dave "$M_FP" "${A[@]}" 2>"$T/err"; rc=$?
check "add to a damaged file" 19 $rc; one_line "add to a damaged file" "$T/err"
"$WZP" call carol "${A[@]}" "${R[@]}" "${L[@]}" 2>"$T/err"; rc=$?
check "call with a damaged file" 19 $rc; one_line "call with a damaged file" "$T/err"
if cmp -s "$T/before" "$T/alice/contacts"; then echo "ok   damaged file untouched"
else echo "FAIL the damaged file was changed"; fail=1; fi
if ls -A "$T/alice" | grep -q '\.tmp-'; then echo "FAIL temp files left: $(ls -A "$T/alice")"; fail=1; fi

"$WZP" --help | grep -q "  20  bad invite" && echo "ok   exit codes in --help" || { echo "FAIL --help"; fail=1; }

for p in "${PIDS[@]:1}"; do
    if kill -0 "$p" 2>/dev/null; then echo "FAIL pid $p still running"; fail=1; fi
done
exit $fail
