/* Contacts and invites for the CLI commands: see phone.h. */
#include "phone.h"

#include <getopt.h>
#include <string.h>

#include "commands.h"
#include "opts.h"

int phone_home(const char *cmd, const char *home_opt, char *buf, size_t len)
{
    if (home_opt) {
        int n = snprintf(buf, len, "%s", home_opt);
        if (n > 0 && (size_t)n < len)
            return 0;
    } else if (wzp_identity_default_dir(buf, len) == 0) {
        return 0;
    }
    fprintf(stderr, "%s: set $WZP_HOME or $HOME, or pass --home\n", cmd);
    return WZP_EXIT_IDENTITY;
}

int phone_load_contacts(const char *cmd, const char *home, wzp_contacts *out)
{
    size_t line = 0;
    const char *why = "";
    int rc = wzp_contacts_load(home, out, &line, &why);
    if (rc == 0)
        return 0;
    if (rc == WZP_ERR_MALFORMED)
        fprintf(stderr, "%s: %s/%s line %zu: %s (fix or remove that line; nothing was changed)\n",
                cmd, home, WZP_CONTACTS_FILE, line, why);
    else
        fprintf(stderr, "%s: cannot read %s/%s: %s\n", cmd, home, WZP_CONTACTS_FILE,
                wzp_strerror(rc));
    return WZP_EXIT_CONTACTS_FILE;
}

const char *phone_contact_name(const wzp_contacts *c, const char *fp_text)
{
    uint8_t fp[WZP_FINGERPRINT_LEN];
    if (!c || !fp_text || wzp_fingerprint_parse(fp_text, fp) != 0)
        return NULL;
    long at = wzp_contacts_find_fp(c, fp);
    return at < 0 ? NULL : c->v[at].name;
}

/* An invite's or a contact's relays ("" for none) as the --relay / --relay-pin lists. */
static void target_relays(phone_target *out, const char *relay, const uint8_t *relay_pin,
                          unsigned n_more,
                          const char more[WZP_INVITE_MORE_RELAYS][WZP_RELAY_TEXT_MAX + 1],
                          const uint8_t more_pin[WZP_INVITE_MORE_RELAYS][WZP_FINGERPRINT_LEN])
{
    for (unsigned i = 0; relay[0] && i <= n_more && i <= WZP_INVITE_MORE_RELAYS; i++) {
        char pin[WZP_FINGERPRINT_STRLEN];
        wzp_fingerprint_format(i ? more_pin[i - 1] : relay_pin, pin, sizeof(pin));
        size_t rl = strlen(out->relay), pl = strlen(out->relay_pin);
        snprintf(out->relay + rl, sizeof(out->relay) - rl, "%s%s", i ? "," : "",
                 i ? more[i - 1] : relay);
        snprintf(out->relay_pin + pl, sizeof(out->relay_pin) - pl, "%s%s", i ? "," : "", pin);
    }
}

int phone_resolve(const char *cmd, const char *arg, const wzp_contacts *c, bool have_relay,
                  phone_target *out)
{
    memset(out, 0, sizeof(*out));
    uint8_t fp[WZP_FINGERPRINT_LEN];
    char text[WZP_FINGERPRINT_STRLEN];
    if (wzp_invite_looks_like(arg)) {
        wzp_invite inv;
        const char *why;
        if (wzp_invite_decode(arg, &inv, &why) != 0) {
            fprintf(stderr, "%s: %s\n", cmd, why);
            return WZP_EXIT_BAD_INVITE;
        }
        wzp_fingerprint_format(inv.fp, out->peer, sizeof(out->peer));
        long at = wzp_contacts_find_fp(c, inv.fp);
        snprintf(out->label, sizeof(out->label), "%s%s%s (from the invite)", out->peer,
                 at >= 0 ? ", your contact " : "", at >= 0 ? c->v[at].name : "");
        target_relays(out, inv.relay, inv.relay_pin, inv.n_more, inv.more_relay, inv.more_pin);
        return 0;
    }
    if (wzp_fingerprint_parse(arg, fp) == 0) {
        wzp_fingerprint_format(fp, out->peer, sizeof(out->peer));
        snprintf(out->label, sizeof(out->label), "%s", out->peer);
        return 0;
    }
    long at = c ? wzp_contacts_find(c, arg) : -1;
    if (at >= 0) {
        /* The key, never the alias: the handshake then holds the call to it, whoever the relay
         * routes it to. */
        const wzp_contact *e = &c->v[at];
        wzp_fingerprint_format(e->fp, text, sizeof(text));
        snprintf(out->peer, sizeof(out->peer), "%s", text);
        snprintf(out->label, sizeof(out->label), "%s (contact, key %s)", e->name, text);
        snprintf(out->contact, sizeof(out->contact), "%s", e->name);
        snprintf(out->contact_alias, sizeof(out->contact_alias), "%s", e->alias);
        target_relays(out, e->relay, e->relay_pin, e->n_more, e->more_relay, e->more_pin);
        return 0;
    }
    if (!have_relay) {
        fprintf(stderr,
                "%s: no contact named '%s' (see 'wzp contacts list'); to call an alias, give "
                "--relay and --relay-pin\n",
                cmd, arg);
        return WZP_EXIT_NO_CONTACT;
    }
    if (strlen(arg) >= sizeof(out->peer)) {
        fprintf(stderr, "%s: '%.40s...' is neither a fingerprint, a contact nor an alias\n", cmd,
                arg);
        return WZP_EXIT_USAGE;
    }
    snprintf(out->peer, sizeof(out->peer), "%s", arg);
    snprintf(out->label, sizeof(out->label), "%s", arg);
    return 0;
}

int phone_parse_opts(int argc, char **argv, phone_opts *o, void (*usage)(FILE *out))
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'},
        {"json", no_argument, NULL, 'j'},
        {"alias", required_argument, NULL, 'a'},
        {"relay", required_argument, NULL, 'r'},
        {"relay-pin", required_argument, NULL, 'p'},
        {"no-qr", no_argument, NULL, 'Q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof(*o));
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'H':
            o->home = optarg;
            break;
        case 'j':
            o->json = true;
            break;
        case 'a':
            o->alias = optarg;
            break;
        case 'r':
        case 'p': {
            /* Repeated (a cluster's relays): joined into a comma list. */
            static char lists[2][2048];
            const char **slot = c == 'r' ? &o->relay : &o->relay_pin;
            char *buf = lists[c == 'p'];
            if (*slot && *slot == buf) {
                size_t l = strlen(buf);
                snprintf(buf + l, sizeof(lists[0]) - l, ",%s", optarg);
            } else if (*slot) {
                char first[1024];
                snprintf(first, sizeof(first), "%s", *slot);
                snprintf(buf, sizeof(lists[0]), "%s,%s", first, optarg);
                *slot = buf;
            } else {
                *slot = optarg;
            }
            break;
        }
        case 'Q':
            o->no_qr = true;
            break;
        default:
            return wzp_opt_other(c, usage);
        }
    }
    return -1;
}

int phone_relay_opts(const char *cmd, const phone_opts *o, wzp_invite *inv)
{
    if (o->alias) {
        if (!wzp_sig_alias_valid(o->alias)) {
            fprintf(stderr, "%s: bad --alias '%s': 1..32 of a-z 0-9 . _ -\n", cmd, o->alias);
            return WZP_EXIT_USAGE;
        }
        snprintf(inv->alias, sizeof(inv->alias), "%s", o->alias);
    }
    if (!o->relay != !o->relay_pin) {
        fprintf(stderr, "%s: --relay and --relay-pin go together\n", cmd);
        return WZP_EXIT_USAGE;
    }
    if (!o->relay)
        return 0;
    /* A cluster: --relay and --relay-pin repeated (or comma lists), paired in order. */
    char relays[2048], pins[2048], *rs = NULL, *ps = NULL;
    snprintf(relays, sizeof(relays), "%s", o->relay);
    snprintf(pins, sizeof(pins), "%s", o->relay_pin);
    char *r = strtok_r(relays, ",", &rs), *p = strtok_r(pins, ",", &ps);
    for (unsigned i = 0; r || p; i++, r = strtok_r(NULL, ",", &rs), p = strtok_r(NULL, ",", &ps)) {
        if (!r || !p) {
            fprintf(stderr, "%s: one --relay-pin per --relay\n", cmd);
            return WZP_EXIT_USAGE;
        }
        if (i > WZP_INVITE_MORE_RELAYS) {
            fprintf(stderr, "%s: an invite names at most %d relays\n", cmd,
                    WZP_INVITE_MORE_RELAYS + 1);
            return WZP_EXIT_USAGE;
        }
        char *text = i ? inv->more_relay[i - 1] : inv->relay;
        uint8_t *pin = i ? inv->more_pin[i - 1] : inv->relay_pin;
        if (!wzp_relay_text_valid(r) || strlen(r) > UINT8_MAX) {
            fprintf(stderr, "%s: bad --relay '%s': HOST:PORT or [IPv6]:PORT\n", cmd, r);
            return WZP_EXIT_USAGE;
        }
        if (wzp_fingerprint_parse(p, pin) != 0) {
            fprintf(stderr, "%s: bad --relay-pin: not a fingerprint\n", cmd);
            return WZP_EXIT_USAGE;
        }
        snprintf(text, WZP_RELAY_TEXT_MAX + 1, "%s", r);
        inv->n_more = i;
    }
    return 0;
}

void phone_json_str(FILE *f, const char *s)
{
    if (!s) {
        fputs("null", f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}
