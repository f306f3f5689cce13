#include "phone/contacts.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "phone/linefile.h"

bool wzp_contact_name_valid(const char *name)
{
    /* The alias rules, any case: names stay safe in file lines, shell arguments and JSON. */
    char low[WZP_CONTACT_NAME_MAX + 1];
    size_t n = strnlen(name, WZP_CONTACT_NAME_MAX + 1);
    if (n == 0 || n > WZP_CONTACT_NAME_MAX)
        return false;
    for (size_t i = 0; i <= n; i++)
        low[i] = (char)tolower((unsigned char)name[i]);
    return wzp_sig_alias_valid(low);
}

static bool contact_valid(const wzp_contact *e)
{
    if (!wzp_contact_name_valid(e->name) || (e->alias[0] && !wzp_sig_alias_valid(e->alias)) ||
        (e->relay[0] && !wzp_relay_text_valid(e->relay)) ||
        e->n_more > (e->relay[0] ? WZP_INVITE_MORE_RELAYS : 0))
        return false;
    for (unsigned i = 0; i < e->n_more; i++)
        if (!wzp_relay_text_valid(e->more_relay[i]))
            return false;
    return true;
}

long wzp_contacts_find(const wzp_contacts *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcasecmp(c->v[i].name, name))
            return (long)i;
    return -1;
}

long wzp_contacts_find_fp(const wzp_contacts *c, const uint8_t fp[WZP_FINGERPRINT_LEN])
{
    for (size_t i = 0; i < c->n; i++)
        if (!memcmp(c->v[i].fp, fp, WZP_FINGERPRINT_LEN))
            return (long)i;
    return -1;
}

int wzp_contacts_add(wzp_contacts *c, const wzp_contact *e, size_t *clash)
{
    if (!contact_valid(e))
        return WZP_ERR_INVALID;
    long at = wzp_contacts_find(c, e->name);
    if (at < 0)
        at = wzp_contacts_find_fp(c, e->fp);
    if (at >= 0) {
        if (clash)
            *clash = (size_t)at;
        return WZP_ERR_EXISTS;
    }
    if (c->n >= WZP_CONTACTS_MAX)
        return WZP_ERR_LIMIT;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        wzp_contact *v = realloc(c->v, cap * sizeof(*v));
        if (!v)
            return WZP_ERR_NOMEM;
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = *e;
    return 0;
}

int wzp_contacts_remove(wzp_contacts *c, const char *name)
{
    long at = wzp_contacts_find(c, name);
    if (at < 0)
        return WZP_ERR_NOT_FOUND;
    memmove(&c->v[at], &c->v[at + 1], (c->n - (size_t)at - 1) * sizeof(c->v[0]));
    c->n--;
    return 0;
}

int wzp_contacts_rename(wzp_contacts *c, const char *old_name, const char *new_name)
{
    long at = wzp_contacts_find(c, old_name);
    if (at < 0)
        return WZP_ERR_NOT_FOUND;
    if (!wzp_contact_name_valid(new_name))
        return WZP_ERR_INVALID;
    long other = wzp_contacts_find(c, new_name);
    if (other >= 0 && other != at)
        return WZP_ERR_EXISTS;
    snprintf(c->v[at].name, sizeof(c->v[at].name), "%s", new_name);
    return 0;
}

void wzp_contacts_free(wzp_contacts *c)
{
    free(c->v);
    memset(c, 0, sizeof(*c));
}

/* --- text form ------------------------------------------------------------------------------ */

/* Longest line: name, fp, alias=, the relay= pin= pairs, separators, LF, NUL. */
#define RELAY_PAIR_MAX (7 + WZP_RELAY_TEXT_MAX + 5 + WZP_FINGERPRINT_STRLEN)
#define LINE_MAX_LEN                                                                               \
    (WZP_CONTACT_NAME_MAX + 1 + WZP_FINGERPRINT_STRLEN + 7 + WZP_SIG_ALIAS_MAX +                   \
     (1 + WZP_INVITE_MORE_RELAYS) * RELAY_PAIR_MAX + 2)

static int format_line(const void *coll, size_t i, char *buf, size_t cap)
{
    const wzp_contact *e = &((const wzp_contacts *)coll)->v[i];
    if (!contact_valid(e))
        return WZP_ERR_INVALID;
    char fp[WZP_FINGERPRINT_STRLEN], pin[WZP_FINGERPRINT_STRLEN];
    wzp_fingerprint_format(e->fp, fp, sizeof(fp));
    int n = snprintf(buf, cap, "%s %s%s%s", e->name, fp, e->alias[0] ? " alias=" : "", e->alias);
    for (unsigned k = 0; e->relay[0] && k <= e->n_more && n >= 0 && (size_t)n < cap; k++) {
        wzp_fingerprint_format(k ? e->more_pin[k - 1] : e->relay_pin, pin, sizeof(pin));
        int m = snprintf(buf + n, cap - (size_t)n, " relay=%s pin=%s",
                         k ? e->more_relay[k - 1] : e->relay, pin);
        n = m < 0 ? m : n + m;
    }
    if (n >= 0 && (size_t)n < cap) {
        int m = snprintf(buf + n, cap - (size_t)n, "\n");
        n = m < 0 ? m : n + m;
    }
    return (n < 0 || (size_t)n >= cap) ? WZP_ERR_TOO_BIG : n;
}

int wzp_contacts_format(const wzp_contacts *c, char **out, size_t *len)
{
    return wzp_linefile_format(WZP_CONTACTS_HEADER, LINE_MAX_LEN, c, 0, c->n, format_line, out,
                               len);
}

/* Copies a token into out (cap bytes) as a C string; false if it does not fit or is empty. */
static bool take(const char *tok, size_t tl, char *out, size_t cap)
{
    if (tl == 0 || tl >= cap)
        return false;
    memcpy(out, tok, tl);
    out[tl] = '\0';
    return true;
}

static bool take_fp(const char *tok, size_t tl, uint8_t fp[WZP_FINGERPRINT_LEN])
{
    char text[WZP_FINGERPRINT_STRLEN];
    return take(tok, tl, text, sizeof(text)) && wzp_fingerprint_parse(text, fp) == 0;
}

/* "key=value": the value, if tok has that key. */
static bool field(const char *tok, size_t tl, const char *key, const char **val, size_t *vl)
{
    size_t kl = strlen(key);
    if (tl <= kl || memcmp(tok, key, kl) != 0 || tok[kl] != '=')
        return false;
    *val = tok + kl + 1;
    *vl = tl - kl - 1;
    return true;
}

static const char *parse_line(const char *p, size_t n, wzp_contact *e)
{
    const char *end = p + n, *tok, *val;
    size_t tl, vl;
    memset(e, 0, sizeof(*e));
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || (unsigned char)p[i] > 0x7e)
            return "a control or non-ASCII character";
    if (n && p[n - 1] == ' ')
        return "a space at the end"; /* one spelling per file: formatted output reads back */
    if (!wzp_linefile_token(&p, end, &tok, &tl) || !take(tok, tl, e->name, sizeof(e->name)) ||
        !wzp_contact_name_valid(e->name))
        return "bad name";
    if (!wzp_linefile_token(&p, end, &tok, &tl) || !take_fp(tok, tl, e->fp))
        return "bad fingerprint";
    bool more = wzp_linefile_token(&p, end, &tok, &tl);
    if (more && field(tok, tl, "alias", &val, &vl)) {
        if (!take(val, vl, e->alias, sizeof(e->alias)) || !wzp_sig_alias_valid(e->alias))
            return "bad alias";
        more = wzp_linefile_token(&p, end, &tok, &tl);
    }
    for (unsigned i = 0; more && field(tok, tl, "relay", &val, &vl); i++) {
        if (i > WZP_INVITE_MORE_RELAYS)
            return "more relays than an invite names";
        char *text = i ? e->more_relay[i - 1] : e->relay;
        if (!take(val, vl, text, sizeof(e->relay)) || !wzp_relay_text_valid(text))
            return "bad relay address";
        if (!wzp_linefile_token(&p, end, &tok, &tl) || !field(tok, tl, "pin", &val, &vl) ||
            !take_fp(val, vl, i ? e->more_pin[i - 1] : e->relay_pin))
            return "relay without a good pin= after it";
        e->n_more = i;
        more = wzp_linefile_token(&p, end, &tok, &tl);
    }
    if (more)
        return "unexpected text (fields: alias=, then relay= pin= pairs, in that order)";
    return NULL;
}

static int take_line(void *coll, const char *p, size_t n, const char **why)
{
    wzp_contact e;
    const char *bad = parse_line(p, n, &e);
    if (bad) {
        *why = bad;
        return WZP_ERR_MALFORMED;
    }
    int rc = wzp_contacts_add(coll, &e, NULL);
    if (rc == WZP_ERR_EXISTS || rc == WZP_ERR_LIMIT) {
        *why = rc == WZP_ERR_LIMIT ? "too many contacts" : "a name or key already listed above";
        return WZP_ERR_MALFORMED;
    }
    return rc;
}

static int format_all(const void *coll, char **out, size_t *len)
{
    return wzp_contacts_format(coll, out, len);
}

static void free_coll(void *coll)
{
    wzp_contacts_free(coll);
}

static const wzp_linefile contacts_file = {
    .file = WZP_CONTACTS_FILE,
    .file_max = WZP_CONTACTS_FILE_MAX,
    .header = WZP_CONTACTS_HEADER,
    .not_header = "not a contacts file (the first line should be \"wzp-contacts 1\")",
    .coll_size = sizeof(wzp_contacts),
    .take_line = take_line,
    .format = format_all,
    .free = free_coll,
};

int wzp_contacts_parse(const uint8_t *data, size_t len, wzp_contacts *out, size_t *line,
                       const char **why)
{
    return wzp_linefile_parse(&contacts_file, data, len, out, line, why);
}

/* --- the file -------------------------------------------------------------------------------- */

int wzp_contacts_load(const char *dir, wzp_contacts *out, size_t *line, const char **why)
{
    return wzp_linefile_load(&contacts_file, dir, out, line, why);
}

struct edit_call {
    int (*edit)(wzp_contacts *c, void *user);
    void *user;
};

static int run_edit(void *coll, void *user)
{
    const struct edit_call *e = user;
    return e->edit(coll, e->user);
}

int wzp_contacts_update(const char *dir, int (*edit)(wzp_contacts *c, void *user), void *user,
                        size_t *line, const char **why)
{
    wzp_contacts c;
    struct edit_call call = {edit, user};
    return wzp_linefile_update(&contacts_file, dir, &c, run_edit, &call, line, why);
}
