/*
 * Call history: one record per call `wzp call`/`wzp listen` took part in, in
 * $WZP_HOME/history, oldest first, at most WZP_HISTORY_KEEP records.
 *
 * Format (ASCII, one record per line, LF-terminated, nothing else allowed):
 *
 *     wzp-history 1
 *     START DIR OUTCOME REASON PEER NAME DURATION PATH LOSS RTT
 *
 * START   UTC, ISO 8601: 2026-12-06T03:12:42Z (a real date, 1970..9999)
 * DIR     in | out
 * OUTCOME answered | rejected | missed | busy | failed
 * REASON  1..40 of [a-z0-9-] ("hung-up", "busy", "offline"), or "-"
 * PEER    the peer's fingerprint (text form), or "-" (not known: an alias that never answered)
 * NAME    the contact's name (contacts.h rules), or "-"
 * DURATION seconds with 3 decimals (12.345), at most a year
 * PATH    direct | relay | -
 * LOSS    percent with 1 decimal (0.0..100.0)
 * RTT     milliseconds, 0..600000
 *
 * Numbers have one spelling (no leading zeros, exact decimals), so a file
 * parses and formats back to the same bytes. Empty lines and '#' comments are
 * allowed when read and not kept when written. The parse is sans-I/O; the file
 * layer reads with a size limit and appends by writing the whole new file
 * atomically under a lock, and never writes over a file that does not parse.
 */
#ifndef WZP_PHONE_HISTORY_H
#define WZP_PHONE_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wzp/identity.h>

#include "phone/contacts.h"

#define WZP_HISTORY_HEADER     "wzp-history 1\n"
#define WZP_HISTORY_FILE       "history"
#define WZP_HISTORY_KEEP       1000
#define WZP_HISTORY_REASON_MAX 40
#define WZP_HISTORY_FILE_MAX   (1u << 22) /* 4 MiB: far more than WZP_HISTORY_KEEP lines */
#define WZP_HISTORY_DUR_MAX_MS (366ull * 86400 * 1000)
#define WZP_HISTORY_RTT_MAX_MS 600000u

typedef enum wzp_history_outcome {
    WZP_HIST_ANSWERED = 0,
    WZP_HIST_REJECTED,
    WZP_HIST_MISSED,
    WZP_HIST_BUSY,
    WZP_HIST_FAILED,
} wzp_history_outcome;

typedef enum wzp_history_path {
    WZP_HIST_PATH_NONE = 0,
    WZP_HIST_PATH_DIRECT,
    WZP_HIST_PATH_RELAY,
} wzp_history_path;

typedef struct wzp_history_rec {
    int64_t start; /* seconds since the epoch, UTC */
    bool incoming;
    wzp_history_outcome outcome;
    char reason[WZP_HISTORY_REASON_MAX + 1]; /* "" for none */
    bool have_peer;
    uint8_t fp[WZP_FINGERPRINT_LEN];
    char name[WZP_CONTACT_NAME_MAX + 1]; /* "" for none */
    uint64_t duration_ms;
    wzp_history_path path;
    uint32_t loss_tenths; /* loss in 0.1 % steps, 0..1000 */
    uint32_t rtt_ms;
} wzp_history_rec;

typedef struct wzp_history {
    wzp_history_rec *v; /* oldest first */
    size_t n, cap;
} wzp_history;

const char *wzp_history_outcome_name(wzp_history_outcome o);
const char *wzp_history_path_name(wzp_history_path p);

/* Turns any text (an error message) into a REASON token: lower case, runs of other
 * characters become one '-', cut to WZP_HISTORY_REASON_MAX. */
void wzp_history_reason(const char *text, char out[WZP_HISTORY_REASON_MAX + 1]);

/* "2026-12-06T03:12:42Z"; buf needs 21 bytes. */
void wzp_history_time_format(int64_t t, char buf[21]);

/* Parses a whole file into out (initialised here; free with wzp_history_free, also after an
 * error). 0, WZP_ERR_MALFORMED with *line (1-based) and *why (a static phrase) at fault, or
 * WZP_ERR_NOMEM. A last line without LF is malformed (cut short). */
int wzp_history_parse(const uint8_t *data, size_t len, wzp_history *out, size_t *line,
                      const char **why);

/* The file text (header + the last `keep` records, or all when keep is 0), malloc'ed,
 * NUL-terminated. WZP_ERR_INVALID if a record is out of range. */
int wzp_history_format(const wzp_history *h, size_t keep, char **out, size_t *len);

/* Appends r. WZP_ERR_INVALID (out of range), WZP_ERR_NOMEM. */
int wzp_history_add(wzp_history *h, const wzp_history_rec *r);
void wzp_history_free(wzp_history *h);

/* --- the file: dir/history ------------------------------------------------------------------- */

/* Reads dir/history; a missing file is an empty history. 0, WZP_ERR_MALFORMED (*line, *why),
 * WZP_ERR_TOO_BIG, WZP_ERR_IO or WZP_ERR_NOMEM. */
int wzp_history_load(const char *dir, wzp_history *out, size_t *line, const char **why);

/* Adds r and keeps the last WZP_HISTORY_KEEP records: read, append, write the whole file
 * atomically, under dir/history.lock. A file that does not parse is left as it is and the
 * load's error comes back. */
int wzp_history_append(const char *dir, const wzp_history_rec *r, size_t *line, const char **why);

#endif
