/*
 * Contacts and invites on the command line (wzp contacts, wzp invite, and
 * what `wzp call NAME|INVITE` and incoming calls use of them).
 */
#ifndef WZP_APP_PHONE_H
#define WZP_APP_PHONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "phone/contacts.h"

/* The state directory: --home if given, else the default. 0 or an exit code (printed). */
int phone_home(const char *cmd, const char *home_opt, char *buf, size_t len);

/* Loads the contacts: 0 or an exit code, with a one-line message naming the line at fault. */
int phone_load_contacts(const char *cmd, const char *home, wzp_contacts *out);

/* The contact's name for a fingerprint (text form), or NULL. */
const char *phone_contact_name(const wzp_contacts *c, const char *fp_text);

/* What `wzp call PEER` dials. */
typedef struct phone_target {
    char peer[256];  /* fingerprint or alias */
    char label[400]; /* for "calling ..." */
    /* "" when none; an invite's cluster: a comma list, the pins in the same order */
    char relay[(WZP_INVITE_MORE_RELAYS + 1) * (WZP_RELAY_TEXT_MAX + 1)];
    char relay_pin[(WZP_INVITE_MORE_RELAYS + 1) * WZP_FINGERPRINT_STRLEN];
    char contact[WZP_CONTACT_NAME_MAX + 1];    /* the contact dialled, "" if none */
    char contact_alias[WZP_SIG_ALIAS_MAX + 1]; /* its alias (from its invite), "" if none */
} phone_target;

/* An invite (its key, relay and pin), a fingerprint, a contact's name (its key; its relay
 * and pin if it has them), else an alias at the relay. 0 or an exit code (printed): a damaged
 * invite; a name that is no contact when there is no relay to ask about it as an alias. */
int phone_resolve(const char *cmd, const char *arg, const wzp_contacts *c, bool have_relay,
                  phone_target *out);

/* The options wzp contacts and wzp invite share. */
typedef struct phone_opts {
    const char *home, *alias, *relay, *relay_pin;
    bool json, no_qr;
} phone_opts;

/* --home --json --alias --relay --relay-pin --no-qr --help: -1 to go on (optind at the first
 * operand), else an exit code (help printed, or usage on stderr). */
int phone_parse_opts(int argc, char **argv, phone_opts *o, void (*usage)(FILE *out));

/* Checks --alias, --relay and --relay-pin and sets those given in inv: 0 or an exit code
 * (printed). */
int phone_relay_opts(const char *cmd, const phone_opts *o, wzp_invite *inv);

/* JSON string (ASCII; '"', '\\' and control characters escaped), or null for NULL. */
void phone_json_str(FILE *f, const char *s);

#endif
