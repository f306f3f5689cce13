/*
 * Contacts: names for pinned keys, in $WZP_HOME/contacts. Calling a contact
 * dials its fingerprint, so the end-to-end handshake holds the call to that
 * key whatever the relay says.
 *
 * Format (ASCII, one contact per line, LF-terminated, nothing else allowed):
 *
 *     wzp-contacts 1
 *     NAME FINGERPRINT [alias=ALIAS] [relay=HOST:PORT pin=FINGERPRINT]...
 *
 * NAME: 1..32 of [A-Za-z0-9._-], the first a letter or digit; unique ignoring
 * case. FINGERPRINT in the text form of include/wzp/identity.h; no key twice.
 * The optional fields come in this order; relay and pin together
 * (wzp_relay_text_valid), up to 1 + WZP_INVITE_MORE_RELAYS pairs (a cluster's relays, as an
 * invite names them). Empty lines and '#' comments are allowed when read
 * and not kept when written. The parse is sans-I/O; the file layer below
 * reads it with a size limit and writes it atomically under a lock.
 */
#ifndef WZP_PHONE_CONTACTS_H
#define WZP_PHONE_CONTACTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "phone/invite.h"

#define WZP_CONTACTS_HEADER   "wzp-contacts 1\n"
#define WZP_CONTACTS_FILE     "contacts"
#define WZP_CONTACT_NAME_MAX  32
#define WZP_CONTACTS_MAX      10000
#define WZP_CONTACTS_FILE_MAX (1u << 22) /* 4 MiB: far more than WZP_CONTACTS_MAX lines */

typedef struct wzp_contact {
    char name[WZP_CONTACT_NAME_MAX + 1];
    uint8_t fp[WZP_FINGERPRINT_LEN];
    char alias[WZP_SIG_ALIAS_MAX + 1];      /* "" for none (the alias the invite named) */
    char relay[WZP_RELAY_TEXT_MAX + 1];     /* "" for none */
    uint8_t relay_pin[WZP_FINGERPRINT_LEN]; /* with relay only */
    unsigned n_more;                        /* the cluster's other relays (with relay only) */
    char more_relay[WZP_INVITE_MORE_RELAYS][WZP_RELAY_TEXT_MAX + 1];
    uint8_t more_pin[WZP_INVITE_MORE_RELAYS][WZP_FINGERPRINT_LEN];
} wzp_contact;

typedef struct wzp_contacts {
    wzp_contact *v;
    size_t n, cap;
} wzp_contacts;

bool wzp_contact_name_valid(const char *name);

/* Parses a whole file into out (initialised here; free with wzp_contacts_free, also after an
 * error). 0, WZP_ERR_MALFORMED with *line (1-based) and *why (a static phrase, e.g. "bad
 * fingerprint") at fault, or WZP_ERR_NOMEM. A last line without LF is malformed (cut short). */
int wzp_contacts_parse(const uint8_t *data, size_t len, wzp_contacts *out, size_t *line,
                       const char **why);

/* The file text (header + one line per contact), malloc'ed, NUL-terminated. */
int wzp_contacts_format(const wzp_contacts *c, char **out, size_t *len);

/* Adds e. WZP_ERR_INVALID (bad name, alias or relay), WZP_ERR_EXISTS (name taken, or the key
 * stored under another name: *clash is that contact's index), WZP_ERR_LIMIT, WZP_ERR_NOMEM. */
int wzp_contacts_add(wzp_contacts *c, const wzp_contact *e, size_t *clash);
/* Index of the contact with that name (any case) or key, or -1. */
long wzp_contacts_find(const wzp_contacts *c, const char *name);
long wzp_contacts_find_fp(const wzp_contacts *c, const uint8_t fp[WZP_FINGERPRINT_LEN]);
/* 0 or WZP_ERR_NOT_FOUND. */
int wzp_contacts_remove(wzp_contacts *c, const char *name);
/* 0, WZP_ERR_NOT_FOUND, WZP_ERR_INVALID (new name) or WZP_ERR_EXISTS (new name taken). A
 * change of case only ("bob" -> "Bob") is allowed. */
int wzp_contacts_rename(wzp_contacts *c, const char *old_name, const char *new_name);
void wzp_contacts_free(wzp_contacts *c);

/* --- the file: dir/contacts ------------------------------------------------------------------ */

/* Reads dir/contacts; a missing file is an empty list. 0, WZP_ERR_MALFORMED (*line, *why),
 * WZP_ERR_TOO_BIG, WZP_ERR_IO or WZP_ERR_NOMEM. */
int wzp_contacts_load(const char *dir, wzp_contacts *out, size_t *line, const char **why);

/* Read, change, write back, under an exclusive lock (dir/contacts.lock) so two commands at
 * once cannot lose each other's change. edit returns 0 to write, or an error that is passed
 * back with nothing written. A file that does not parse is never written over: the load's
 * error comes back. The write is atomic (temp file, fsync, rename). */
int wzp_contacts_update(const char *dir, int (*edit)(wzp_contacts *c, void *user), void *user,
                        size_t *line, const char **why);

#endif
