/* wzp invite: one line (and a QR code) a friend can call this identity with. */
#include <getopt.h>
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
    const char *home_opt = NULL, *alias = NULL, *relay = NULL, *pin = NULL;
    bool json = false, no_qr = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'H':
            home_opt = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'a':
            alias = optarg;
            break;
        case 'r':
            relay = optarg;
            break;
        case 'p':
            pin = optarg;
            break;
        case 'Q':
            no_qr = true;
            break;
        case 'h':
            usage(stdout);
            return WZP_EXIT_OK;
        default:
            usage(stderr);
            return WZP_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, CMD ": unexpected argument '%s'\n", argv[optind]);
        return WZP_EXIT_USAGE;
    }
    wzp_invite inv;
    memset(&inv, 0, sizeof(inv));
    if (alias) {
        if (!wzp_sig_alias_valid(alias)) {
            fprintf(stderr, CMD ": bad --alias '%s': 1..32 of a-z 0-9 . _ -\n", alias);
            return WZP_EXIT_USAGE;
        }
        snprintf(inv.alias, sizeof(inv.alias), "%s", alias);
    }
    if (!relay != !pin) {
        fprintf(stderr, CMD ": --relay and --relay-pin go together\n");
        return WZP_EXIT_USAGE;
    }
    if (relay) {
        if (!wzp_relay_text_valid(relay)) {
            fprintf(stderr, CMD ": bad --relay '%s': HOST:PORT or [IPv6]:PORT\n", relay);
            return WZP_EXIT_USAGE;
        }
        if (wzp_fingerprint_parse(pin, inv.relay_pin) != 0) {
            fprintf(stderr, CMD ": bad --relay-pin: not a fingerprint\n");
            return WZP_EXIT_USAGE;
        }
        snprintf(inv.relay, sizeof(inv.relay), "%s", relay);
    }
    char home[PATH_MAX], why[2 * PATH_MAX + 128];
    int code = phone_home(CMD, home_opt, home, sizeof(home));
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
    if (json) {
        printf("{\"invite\":\"%s\",\"fingerprint\":\"%s\",\"alias\":", text, fp);
        phone_json_str(stdout, alias);
        printf(",\"relay\":");
        phone_json_str(stdout, relay);
        printf(",\"relay_pin\":");
        phone_json_str(stdout, relay ? pin : NULL);
        printf("}\n");
        return WZP_EXIT_OK;
    }
    if (created)
        fprintf(stderr, "wzp: created a new identity in %s\n", home);
    if (!relay)
        fprintf(stderr, CMD ": no --relay in this invite: your friend must name one to call\n");
    char *qr = NULL;
    if (!no_qr && isatty(STDOUT_FILENO) && wzp_qr_render(text, &qr, NULL) == 0) {
        fputs(qr, stdout);
        free(qr);
    }
    printf("%s\n", text);
    return WZP_EXIT_OK;
}
