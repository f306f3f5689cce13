#include "phone/history.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "phone/linefile.h"

static const char *const outcome_names[] = {"answered", "rejected", "missed", "busy", "failed"};
static const char *const path_names[] = {"-", "direct", "relay"};

const char *wzp_history_outcome_name(wzp_history_outcome o)
{
    return (unsigned)o < 5 ? outcome_names[o] : "?";
}

const char *wzp_history_path_name(wzp_history_path p)
{
    return (unsigned)p < 3 ? path_names[p] : "?";
}

static bool reason_valid(const char *r)
{
    size_t n = strnlen(r, WZP_HISTORY_REASON_MAX + 1);
    if (n > WZP_HISTORY_REASON_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!islower((unsigned char)r[i]) && !isdigit((unsigned char)r[i]) && r[i] != '-')
            return false;
    /* "-" alone is the empty reason's spelling in the file. */
    return strcmp(r, "-") != 0;
}

void wzp_history_reason(const char *text, char out[WZP_HISTORY_REASON_MAX + 1])
{
    size_t o = 0;
    bool dash = false;
    for (const char *p = text ? text : ""; *p && o < WZP_HISTORY_REASON_MAX; p++) {
        unsigned char ch = (unsigned char)*p;
        if (isalnum(ch) && ch < 0x80) {
            if (dash && o > 0 && o + 1 < WZP_HISTORY_REASON_MAX)
                out[o++] = '-';
            dash = false;
            out[o++] = (char)tolower(ch);
        } else {
            dash = true;
        }
    }
    out[o] = '\0';
}

static bool rec_valid(const wzp_history_rec *r)
{
    return r->start >= 0 && r->start <= 253402300799LL /* 9999-12-31T23:59:59Z */ &&
           (unsigned)r->outcome <= WZP_HIST_FAILED && (unsigned)r->path <= WZP_HIST_PATH_RELAY &&
           reason_valid(r->reason) && (!r->name[0] || wzp_contact_name_valid(r->name)) &&
           r->duration_ms <= WZP_HISTORY_DUR_MAX_MS && r->loss_tenths <= 1000 &&
           r->rtt_ms <= WZP_HISTORY_RTT_MAX_MS;
}

int wzp_history_add(wzp_history *h, const wzp_history_rec *r)
{
    if (!rec_valid(r))
        return WZP_ERR_INVALID;
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        wzp_history_rec *v = realloc(h->v, cap * sizeof(*v));
        if (!v)
            return WZP_ERR_NOMEM;
        h->v = v;
        h->cap = cap;
    }
    h->v[h->n++] = *r;
    return 0;
}

void wzp_history_free(wzp_history *h)
{
    free(h->v);
    memset(h, 0, sizeof(*h));
}

/* --- text form ------------------------------------------------------------------------------ */

void wzp_history_time_format(int64_t t, char buf[21])
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (!gmtime_r(&tt, &tm) || strftime(buf, 21, "%Y-%m-%dT%H:%M:%SZ", &tm) != 20)
        snprintf(buf, 21, "1970-01-01T00:00:00Z");
}

/* Longest line: every field at its widest, separators, LF, NUL. */
#define LINE_MAX_LEN                                                                               \
    (20 + 1 + 3 + 1 + 8 + 1 + WZP_HISTORY_REASON_MAX + 1 + WZP_FINGERPRINT_STRLEN + 1 +            \
     WZP_CONTACT_NAME_MAX + 1 + 20 + 1 + 6 + 1 + 5 + 1 + 10 + 2)

static int format_line(const void *coll, size_t i, char *buf, size_t cap)
{
    const wzp_history_rec *r = &((const wzp_history *)coll)->v[i];
    if (!rec_valid(r))
        return WZP_ERR_INVALID;
    char t[21], fp[WZP_FINGERPRINT_STRLEN] = "-";
    wzp_history_time_format(r->start, t);
    if (r->have_peer)
        wzp_fingerprint_format(r->fp, fp, sizeof(fp));
    int n = snprintf(buf, cap, "%s %s %s %s %s %s %llu.%03llu %s %u.%u %u\n", t,
                     r->incoming ? "in" : "out", wzp_history_outcome_name(r->outcome),
                     r->reason[0] ? r->reason : "-", fp, r->name[0] ? r->name : "-",
                     (unsigned long long)(r->duration_ms / 1000),
                     (unsigned long long)(r->duration_ms % 1000), wzp_history_path_name(r->path),
                     r->loss_tenths / 10, r->loss_tenths % 10, r->rtt_ms);
    return (n < 0 || (size_t)n >= cap) ? WZP_ERR_TOO_BIG : n;
}

int wzp_history_format(const wzp_history *h, size_t keep, char **out, size_t *len)
{
    size_t first = keep && h->n > keep ? h->n - keep : 0;
    return wzp_linefile_format(WZP_HISTORY_HEADER, LINE_MAX_LEN, h, first, h->n - first,
                               format_line, out, len);
}

static bool tok_is(const char *tok, size_t tl, const char *word)
{
    return tl == strlen(word) && !memcmp(tok, word, tl);
}

/* A decimal with exactly `decimals` digits after the point and no leading zero, scaled to an
 * integer (12.345 with 3 decimals -> 12345), at most max. */
static bool parse_fixed(const char *tok, size_t tl, unsigned decimals, uint64_t max, uint64_t *out)
{
    size_t i = 0;
    uint64_t v = 0;
    while (i < tl && isdigit((unsigned char)tok[i])) {
        if (v > max) /* already too big: stop before it can overflow */
            return false;
        v = v * 10 + (uint64_t)(tok[i] - '0');
        i++;
    }
    if (i == 0 || (i > 1 && tok[0] == '0'))
        return false;
    if (decimals) {
        if (i >= tl || tok[i] != '.')
            return false;
        i++;
        for (unsigned d = 0; d < decimals; d++, i++) {
            if (i >= tl || !isdigit((unsigned char)tok[i]) || v > max)
                return false;
            v = v * 10 + (uint64_t)(tok[i] - '0');
        }
    }
    if (i != tl || v > max)
        return false;
    *out = v;
    return true;
}

static bool parse_time(const char *tok, size_t tl, int64_t *out)
{
    /* Fixed width; the date must be a real one: it formats back to the same text. */
    static const char shape[] = "dddd-dd-ddTdd:dd:ddZ";
    if (tl != 20)
        return false;
    for (size_t i = 0; i < 20; i++)
        if (shape[i] == 'd' ? !isdigit((unsigned char)tok[i]) : tok[i] != shape[i])
            return false;
    struct tm tm = {0};
    tm.tm_year = atoi(tok) - 1900;
    tm.tm_mon = (tok[5] - '0') * 10 + (tok[6] - '0') - 1;
    tm.tm_mday = (tok[8] - '0') * 10 + (tok[9] - '0');
    tm.tm_hour = (tok[11] - '0') * 10 + (tok[12] - '0');
    tm.tm_min = (tok[14] - '0') * 10 + (tok[15] - '0');
    tm.tm_sec = (tok[17] - '0') * 10 + (tok[18] - '0');
    if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 59)
        return false;
    time_t t = timegm(&tm);
    char back[21];
    wzp_history_time_format((int64_t)t, back);
    if (t < 0 || memcmp(back, tok, 20))
        return false;
    *out = (int64_t)t;
    return true;
}

/* NULL, or what is wrong with the line. */
static const char *parse_line(const char *p, size_t n, wzp_history_rec *r)
{
    memset(r, 0, sizeof(*r));
    const char *end = p + n, *t;
    size_t tl;
    uint64_t v;
    if (!wzp_linefile_token(&p, end, &t, &tl) || !parse_time(t, tl, &r->start))
        return "bad start time (want 2026-01-31T12:00:00Z)";
    if (!wzp_linefile_token(&p, end, &t, &tl) || !(tok_is(t, tl, "in") || tok_is(t, tl, "out")))
        return "bad direction (want in or out)";
    r->incoming = tl == 2;
    if (!wzp_linefile_token(&p, end, &t, &tl))
        return "bad outcome";
    unsigned o = 0;
    while (o < 5 && !tok_is(t, tl, outcome_names[o]))
        o++;
    if (o == 5)
        return "bad outcome";
    r->outcome = (wzp_history_outcome)o;
    if (!wzp_linefile_token(&p, end, &t, &tl) || tl == 0 || tl > WZP_HISTORY_REASON_MAX)
        return "bad reason";
    if (!tok_is(t, tl, "-")) {
        memcpy(r->reason, t, tl);
        r->reason[tl] = '\0';
        if (!reason_valid(r->reason))
            return "bad reason";
    }
    if (!wzp_linefile_token(&p, end, &t, &tl) || tl == 0 || tl >= WZP_FINGERPRINT_STRLEN)
        return "bad peer fingerprint";
    if (!tok_is(t, tl, "-")) {
        char fp[WZP_FINGERPRINT_STRLEN], canon[WZP_FINGERPRINT_STRLEN];
        memcpy(fp, t, tl);
        fp[tl] = '\0';
        /* Only the canonical spelling, so the file formats back to the same bytes. */
        if (wzp_fingerprint_parse(fp, r->fp) < 0 ||
            strcmp(wzp_fingerprint_format(r->fp, canon, sizeof(canon)), fp))
            return "bad peer fingerprint";
        r->have_peer = true;
    }
    if (!wzp_linefile_token(&p, end, &t, &tl) || tl == 0 || tl > WZP_CONTACT_NAME_MAX)
        return "bad contact name";
    if (!tok_is(t, tl, "-")) {
        memcpy(r->name, t, tl);
        r->name[tl] = '\0';
        if (!wzp_contact_name_valid(r->name))
            return "bad contact name";
    }
    if (!wzp_linefile_token(&p, end, &t, &tl) || !parse_fixed(t, tl, 3, WZP_HISTORY_DUR_MAX_MS, &v))
        return "bad duration (want seconds like 12.345)";
    r->duration_ms = v;
    if (!wzp_linefile_token(&p, end, &t, &tl))
        return "bad path";
    if (tok_is(t, tl, "direct"))
        r->path = WZP_HIST_PATH_DIRECT;
    else if (tok_is(t, tl, "relay"))
        r->path = WZP_HIST_PATH_RELAY;
    else if (!tok_is(t, tl, "-"))
        return "bad path";
    if (!wzp_linefile_token(&p, end, &t, &tl) || !parse_fixed(t, tl, 1, 1000, &v))
        return "bad loss (want percent like 0.5)";
    r->loss_tenths = (uint32_t)v;
    if (!wzp_linefile_token(&p, end, &t, &tl) || !parse_fixed(t, tl, 0, WZP_HISTORY_RTT_MAX_MS, &v))
        return "bad rtt (want milliseconds)";
    r->rtt_ms = (uint32_t)v;
    if (p < end || (n > 0 && end[-1] == ' '))
        return "unexpected text at the end of the line";
    return NULL;
}

static int take_line(void *coll, const char *p, size_t n, const char **why)
{
    wzp_history_rec r;
    const char *bad = parse_line(p, n, &r);
    if (bad) {
        *why = bad;
        return WZP_ERR_MALFORMED;
    }
    return wzp_history_add(coll, &r);
}

static int format_all(const void *coll, char **out, size_t *len)
{
    return wzp_history_format(coll, WZP_HISTORY_KEEP, out, len);
}

static void free_coll(void *coll)
{
    wzp_history_free(coll);
}

static const wzp_linefile history_file = {
    .file = WZP_HISTORY_FILE,
    .file_max = WZP_HISTORY_FILE_MAX,
    .header = WZP_HISTORY_HEADER,
    .not_header = "not a history file (first line is not \"wzp-history 1\")",
    .coll_size = sizeof(wzp_history),
    .take_line = take_line,
    .format = format_all,
    .free = free_coll,
};

int wzp_history_parse(const uint8_t *data, size_t len, wzp_history *out, size_t *line,
                      const char **why)
{
    return wzp_linefile_parse(&history_file, data, len, out, line, why);
}

/* --- the file -------------------------------------------------------------------------------- */

int wzp_history_load(const char *dir, wzp_history *out, size_t *line, const char **why)
{
    return wzp_linefile_load(&history_file, dir, out, line, why);
}

static int add_rec(void *coll, void *user)
{
    return wzp_history_add(coll, user);
}

int wzp_history_append(const char *dir, const wzp_history_rec *r, size_t *line, const char **why)
{
    wzp_history h;
    return wzp_linefile_update(&history_file, dir, &h, add_rec, (void *)r, line, why);
}
