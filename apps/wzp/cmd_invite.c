/* wzp invite: one line (and a QR code) a friend can call this identity with. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "phone.h"
#include "phone/qr.h"

#define CMD "wzp invite"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: wzp invite [--alias A] [--relay HOST:PORT --relay-pin FP] [--json] [--no-qr]\n"
            "Prints a line that carries your fingerprint, the relay (address or host name,\n"
            "port, pin) and an alias, with a checksum; on a terminal also as a QR code.\n"
            "Your friend runs 'wzp call INVITE' or 'wzp contacts add NAME INVITE'.\n"
            "  --alias A          the alias you register with the relay (wzp listen --alias)\n"
            "  --relay HOST:PORT  the relay you listen on, with --relay-pin its fingerprint\n"
            "  --home DIR         state directory (default $WZP_HOME, else ~/.config/wzp)\n"
            "  --json             print {\"invite\":...,\"fingerprint\":...,...}\n"
            "  --no-qr            no QR code\n");
}

int wzp_cmd_invite(int argc, char **argv)
{
    phone_opts o;
    int code = phone_parse_opts(argc, argv, &o, usage);
    if (code >= 0)
        return code;
    if (optind != argc) {
        fprintf(stderr, CMD ": unexpected argument '%s'\n", argv[optind]);
        return WZP_EXIT_USAGE;
    }
    wzp_invite inv;
    memset(&inv, 0, sizeof(inv));
    if ((code = phone_relay_opts(CMD, &o, &inv)) != 0)
        return code;
    char home[PATH_MAX], why[2 * PATH_MAX + 128];
    code = phone_home(CMD, o.home, home, sizeof(home));
    if (code)
        return code;
    if (wzp_identity_check_dir(home, why, sizeof(why))) {
        fprintf(stderr, CMD ": %s\n", why);
        return WZP_EXIT_IDENTITY;
    }
    wzp_identity *id;
    bool created;
    int rc = wzp_identity_load_or_create(home, &id, &created);
    if (rc) {
        fprintf(stderr, CMD ": %s: %s\n", home, wzp_strerror(rc));
        return WZP_EXIT_IDENTITY;
    }
    wzp_identity_fingerprint(id, inv.fp);
    wzp_identity_free(id);
    char text[WZP_INVITE_TEXT_MAX], fp[WZP_FINGERPRINT_STRLEN];
    if ((rc = wzp_invite_encode(&inv, text, sizeof(text))) < 0) {
        fprintf(stderr, CMD ": %s\n", wzp_strerror(rc));
        return WZP_EXIT_FAILURE;
    }
    wzp_fingerprint_format(inv.fp, fp, sizeof(fp));
    if (o.json) {
        printf("{\"invite\":\"%s\",\"fingerprint\":\"%s\",\"alias\":", text, fp);
        phone_json_str(stdout, o.alias);
        printf(",\"relay\":");
        phone_json_str(stdout, o.relay);
        printf(",\"relay_pin\":");
        phone_json_str(stdout, o.relay ? o.relay_pin : NULL);
        printf("}\n");
        return WZP_EXIT_OK;
    }
    if (created)
        fprintf(stderr, "wzp: created a new identity in %s\n", home);
    if (!o.relay)
        fprintf(stderr, CMD ": no --relay in this invite: your friend must name one to call\n");
    char *qr = NULL;
    if (!o.no_qr && isatty(STDOUT_FILENO) && wzp_qr_render(text, &qr, NULL) == 0) {
        fputs(qr, stdout);
        free(qr);
    }
    printf("%s\n", text);
    return WZP_EXIT_OK;
}
