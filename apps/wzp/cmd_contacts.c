/* wzp contacts add|list|remove|rename: names for pinned keys ($WZP_HOME/contacts). */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "commands.h"
#include "phone.h"

#define CMD "wzp contacts"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: wzp contacts add NAME FINGERPRINT|INVITE [--alias A] [--relay HOST:PORT "
            "--relay-pin FP]\n"
            "       wzp contacts list [--json]\n"
            "       wzp contacts remove NAME\n"
            "       wzp contacts rename OLD NEW\n"
            "Calling a contact ('wzp call NAME') dials its key: the call fails as a possible\n"
            "man-in-the-middle (exit 10) if the relay connects it to any other key. A contact\n"
            "made from an invite keeps its relays (a cluster's, up to three), their pins and\n"
            "its alias.\n"
            "NAME: 1..32 letters, digits, '.', '_' or '-', starting with a letter or digit.\n"
            "  --home DIR   state directory (default $WZP_HOME, else ~/.config/wzp)\n"
            "  --json       list as a JSON array\n");
}

typedef struct edit_args {
    const char *verb;
    wzp_contact add;
    const char *a, *b;
    size_t clash;
    char clash_name[WZP_CONTACT_NAME_MAX + 1];
} edit_args;

static int edit(wzp_contacts *c, void *user)
{
    edit_args *e = user;
    if (!strcmp(e->verb, "add")) {
        int rc = wzp_contacts_add(c, &e->add, &e->clash);
        if (rc == WZP_ERR_EXISTS)
            snprintf(e->clash_name, sizeof(e->clash_name), "%s", c->v[e->clash].name);
        return rc;
    }
    if (!strcmp(e->verb, "remove"))
        return wzp_contacts_remove(c, e->a);
    return wzp_contacts_rename(c, e->a, e->b);
}

static const char *name_rule = "1..32 letters, digits, '.', '_' or '-', starting with a letter "
                               "or digit";

static int fill_add(edit_args *e, const char *name, const char *key, const phone_opts *o)
{
    wzp_contact *c = &e->add;
    memset(c, 0, sizeof(*c));
    if (!wzp_contact_name_valid(name)) {
        fprintf(stderr, CMD ": bad name '%s': %s\n", name, name_rule);
        return WZP_EXIT_USAGE;
    }
    snprintf(c->name, sizeof(c->name), "%s", name);
    wzp_invite inv;
    memset(&inv, 0, sizeof(inv));
    if (wzp_invite_looks_like(key)) {
        const char *why;
        if (wzp_invite_decode(key, &inv, &why) != 0) {
            fprintf(stderr, CMD ": %s\n", why);
            return WZP_EXIT_BAD_INVITE;
        }
    } else if (wzp_fingerprint_parse(key, inv.fp) != 0) {
        fprintf(stderr, CMD ": '%s' is neither a fingerprint nor an invite\n", key);
        return WZP_EXIT_USAGE;
    }
    int code = phone_relay_opts(CMD, o, &inv); /* options override the invite */
    if (code)
        return code;
    memcpy(c->fp, inv.fp, sizeof(c->fp));
    memcpy(c->alias, inv.alias, sizeof(c->alias));
    memcpy(c->relay, inv.relay, sizeof(c->relay));
    memcpy(c->relay_pin, inv.relay_pin, sizeof(c->relay_pin));
    c->n_more = inv.relay[0] ? inv.n_more : 0;
    memcpy(c->more_relay, inv.more_relay, sizeof(c->more_relay));
    memcpy(c->more_pin, inv.more_pin, sizeof(c->more_pin));
    return 0;
}

static int list(const wzp_contacts *c, bool json)
{
    char fp[WZP_FINGERPRINT_STRLEN], pin[WZP_FINGERPRINT_STRLEN];
    if (json)
        printf("[");
    for (size_t i = 0; i < c->n; i++) {
        const wzp_contact *e = &c->v[i];
        wzp_fingerprint_format(e->fp, fp, sizeof(fp));
        if (!json) {
            printf("%-16s %s%s%s", e->name, fp, e->alias[0] ? "  alias " : "", e->alias);
            for (unsigned k = 0; e->relay[0] && k <= e->n_more; k++) {
                wzp_fingerprint_format(k ? e->more_pin[k - 1] : e->relay_pin, pin, sizeof(pin));
                printf("  relay %s pin %s", k ? e->more_relay[k - 1] : e->relay, pin);
            }
            printf("\n");
            continue;
        }
        printf("%s{\"name\":", i ? "," : "");
        phone_json_str(stdout, e->name);
        printf(",\"fingerprint\":\"%s\",\"alias\":", fp);
        phone_json_str(stdout, e->alias[0] ? e->alias : NULL);
        /* The first relay as before; a cluster's others in more_relays. */
        wzp_fingerprint_format(e->relay_pin, pin, sizeof(pin));
        printf(",\"relay\":");
        phone_json_str(stdout, e->relay[0] ? e->relay : NULL);
        printf(",\"relay_pin\":");
        phone_json_str(stdout, e->relay[0] ? pin : NULL);
        for (unsigned k = 0; k < e->n_more; k++) {
            wzp_fingerprint_format(e->more_pin[k], pin, sizeof(pin));
            printf("%s{\"relay\":", k ? "," : ",\"more_relays\":[");
            phone_json_str(stdout, e->more_relay[k]);
            printf(",\"relay_pin\":\"%s\"}", pin);
        }
        printf("%s}", e->n_more ? "]" : "");
    }
    if (json)
        printf("]\n");
    return WZP_EXIT_OK;
}

int wzp_cmd_contacts(int argc, char **argv)
{
    phone_opts o;
    int code = phone_parse_opts(argc, argv, &o, usage);
    if (code >= 0)
        return code;
    const char *verb = optind < argc ? argv[optind++] : "";
    int nargs = argc - optind;
    char **args = argv + optind;
    static const struct {
        const char *verb;
        int nargs;
    } verbs[] = {{"add", 2}, {"list", 0}, {"remove", 1}, {"rename", 2}};
    int want = -1;
    for (size_t i = 0; i < sizeof(verbs) / sizeof(verbs[0]); i++)
        if (!strcmp(verb, verbs[i].verb))
            want = verbs[i].nargs;
    if (want < 0 || nargs != want) {
        if (want < 0)
            fprintf(stderr, CMD ": %s '%s'\n", verb[0] ? "unknown command" : "which command?",
                    verb);
        else
            fprintf(stderr, CMD " %s: wants %d argument%s, got %d\n", verb, want,
                    want == 1 ? "" : "s", nargs);
        usage(stderr);
        return WZP_EXIT_USAGE;
    }
    if (o.no_qr) {
        fprintf(stderr, CMD ": --no-qr is for 'wzp invite'\n");
        return WZP_EXIT_USAGE;
    }
    if ((o.alias || o.relay || o.relay_pin) && strcmp(verb, "add")) {
        fprintf(stderr, CMD ": --alias, --relay and --relay-pin are for 'add'\n");
        return WZP_EXIT_USAGE;
    }
    char home[PATH_MAX];
    code = phone_home(CMD, o.home, home, sizeof(home));
    if (code)
        return code;
    if (!strcmp(verb, "list")) {
        wzp_contacts cs;
        if ((code = phone_load_contacts(CMD, home, &cs)) != 0)
            return code;
        code = list(&cs, o.json);
        wzp_contacts_free(&cs);
        return code;
    }
    edit_args e = {.verb = verb, .a = args[0], .b = nargs > 1 ? args[1] : NULL};
    if (!strcmp(verb, "add") && (code = fill_add(&e, args[0], args[1], &o)) != 0)
        return code;
    if (!strcmp(verb, "rename") && !wzp_contact_name_valid(args[1])) {
        fprintf(stderr, CMD ": bad name '%s': %s\n", args[1], name_rule);
        return WZP_EXIT_USAGE;
    }
    size_t line = 0;
    const char *why = "";
    int rc = wzp_contacts_update(home, edit, &e, &line, &why);
    switch (rc) {
    case 0:
        if (!o.json && !strcmp(verb, "add")) {
            char fp[WZP_FINGERPRINT_STRLEN];
            printf("added %s: %s%s%s%s%s\n", e.add.name,
                   wzp_fingerprint_format(e.add.fp, fp, sizeof(fp)),
                   e.add.alias[0] ? ", alias " : "", e.add.alias, e.add.relay[0] ? ", relay " : "",
                   e.add.relay);
        }
        return WZP_EXIT_OK;
    case WZP_ERR_MALFORMED:
        fprintf(stderr, CMD ": %s/%s line %zu: %s (fix or remove that line; nothing was changed)\n",
                home, WZP_CONTACTS_FILE, line, why);
        return WZP_EXIT_CONTACTS_FILE;
    case WZP_ERR_NOT_FOUND:
        fprintf(stderr, CMD ": no contact named '%s'\n", args[0]);
        return WZP_EXIT_NO_CONTACT;
    case WZP_ERR_EXISTS:
        if (!strcmp(verb, "add") && strcasecmp(e.clash_name, e.add.name))
            fprintf(stderr, CMD ": that key is already stored as '%s'\n", e.clash_name);
        else
            fprintf(stderr, CMD ": there is already a contact named '%s'\n",
                    !strcmp(verb, "add") ? e.clash_name : args[1]);
        return WZP_EXIT_CONTACT_EXISTS;
    case WZP_ERR_LIMIT:
        fprintf(stderr, CMD ": too many contacts (%d)\n", WZP_CONTACTS_MAX);
        return WZP_EXIT_CONTACTS_FILE;
    default:
        fprintf(stderr, CMD ": cannot update %s/%s: %s\n", home, WZP_CONTACTS_FILE,
                wzp_strerror(rc));
        return WZP_EXIT_CONTACTS_FILE;
    }
}
