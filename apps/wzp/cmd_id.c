/* wzp id: creates the identity on first use, then prints its fingerprint. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>

#include <wzp/identity.h>

#include "commands.h"

static void id_usage(FILE *out)
{
    fprintf(out, "usage: wzp id [--home DIR] [--json]\n"
                 "  --home DIR  state directory (default $WZP_HOME, else ~/.config/wzp)\n"
                 "  --json      print {\"fingerprint\": ..., \"created\": ..., \"home\": ...}\n");
}

int wzp_cmd_id(int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *home = NULL;
    int json = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'H':
            home = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'h':
            id_usage(stdout);
            return WZP_EXIT_OK;
        default:
            id_usage(stderr);
            return WZP_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "wzp id: unexpected argument '%s'\n", argv[optind]);
        id_usage(stderr);
        return WZP_EXIT_USAGE;
    }
    char dir[PATH_MAX];
    if (!home) {
        if (wzp_identity_default_dir(dir, sizeof(dir)) != 0) {
            fprintf(stderr, "wzp id: set $WZP_HOME or $HOME, or pass --home\n");
            return WZP_EXIT_IDENTITY;
        }
        home = dir;
    }
    char why[2 * PATH_MAX + 128];
    if (wzp_identity_check_dir(home, why, sizeof(why))) {
        fprintf(stderr, "wzp id: %s\n", why); /* one line, not the library's log too */
        return WZP_EXIT_IDENTITY;
    }
    wzp_identity *id;
    bool created;
    int rc = wzp_identity_load_or_create(home, &id, &created);
    if (rc != 0) {
        fprintf(stderr, "wzp id: %s: %s\n", home, wzp_strerror(rc));
        return WZP_EXIT_IDENTITY;
    }
    uint8_t fp[WZP_FINGERPRINT_LEN];
    char text[WZP_FINGERPRINT_STRLEN];
    wzp_identity_fingerprint(id, fp);
    wzp_fingerprint_format(fp, text, sizeof(text));
    wzp_identity_free(id);
    if (json) {
        /* The path is printed escaped only for '"' and '\\'; others pass through. */
        printf("{\"fingerprint\": \"%s\", \"created\": %s, \"home\": \"", text,
               created ? "true" : "false");
        for (const char *p = home; *p; p++) {
            if (*p == '"' || *p == '\\')
                putchar('\\');
            putchar(*p);
        }
        printf("\"}\n");
    } else {
        if (created)
            fprintf(stderr, "wzp: created a new identity in %s\n", home);
        printf("%s\n", text);
    }
    return WZP_EXIT_OK;
}
