/*
 * The relay's alias bindings file, sans-I/O: its text format and a parser
 * for it. The server reads and writes the file (src/relay/server.c); this
 * only turns bytes into entries and back. The file is written by the relay,
 * but it sits on disk where anything may have touched it, so the parser
 * trusts nothing: every field is length- and range-checked.
 *
 * Format (UTF-8 free, one entry per line, LF-terminated):
 *
 *     wzp-aliases 1
 *     ALIAS FINGERPRINT-HEX EXPIRES
 *
 * ALIAS as in signaling (wzp_sig_alias_valid), FINGERPRINT-HEX 64 lowercase
 * hex digits, EXPIRES Unix seconds (decimal) after which the binding ends
 * unless its key registers again. Empty lines and lines starting with '#'
 * are ignored. Wall-clock seconds, not the monotonic clock, so a restart
 * keeps the remaining reclaim time.
 */
#ifndef WZP_RELAY_ALIAS_STORE_H
#define WZP_RELAY_ALIAS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "wire/signal.h"

#define WZP_ALIAS_STORE_HEADER "wzp-aliases 1\n"
/* Longest line the format allows, LF and NUL included. */
#define WZP_ALIAS_STORE_LINE_MAX (WZP_SIG_ALIAS_MAX + 1 + 2 * WZP_SIG_FP_LEN + 1 + 20 + 2)

typedef struct wzp_alias_entry {
    wzp_sig_alias alias;
    uint8_t fp[WZP_SIG_FP_LEN];
    uint64_t expires; /* Unix seconds */
} wzp_alias_entry;

/*
 * Formats one entry as a line (with LF, NUL-terminated) into buf. Returns its
 * length (without the NUL), WZP_ERR_INVALID for an invalid alias or
 * WZP_ERR_TOO_BIG if cap is too small.
 */
int wzp_alias_store_format(const wzp_alias_entry *e, char *buf, size_t cap);

/*
 * Parses a whole file: calls entry(user, e) for each entry in order; a
 * negative return from entry stops the parse and is returned. Returns 0,
 * WZP_ERR_MALFORMED (bad header, field or line; a final line without LF is
 * malformed: the file was cut short) or entry's error. On error *line (if
 * not NULL) is the 1-based line at fault.
 */
int wzp_alias_store_parse(const uint8_t *data, size_t len,
                          int (*entry)(void *user, const wzp_alias_entry *e), void *user,
                          size_t *line);

#endif
