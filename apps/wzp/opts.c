/* Numeric command-line values: see opts.h. */
#include "opts.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"

int wzp_opt_double(const char *cmd, const char *opt, const char *arg, double min, double max,
                   const char *want, double *out)
{
    char *end = NULL;
    errno = 0;
    /* strtod skips leading blanks; refuse them so " 5" and "5" are not both "5". */
    double v = arg && *arg && !isspace((unsigned char)*arg) ? strtod(arg, &end) : NAN;
    /* ERANGE: "1e999" overflows to HUGE_VAL (or underflows); !isfinite: "nan", "inf". */
    if (!end || end == arg || *end || errno == ERANGE || !isfinite(v) || v < min || v > max) {
        fprintf(stderr, "%s: %s wants %s, got '%s'\n", cmd, opt, want, arg ? arg : "");
        return WZP_EXIT_USAGE;
    }
    *out = v;
    return 0;
}

int wzp_opt_port(const char *cmd, const char *opt, const char *arg, uint16_t *out)
{
    double v;
    int rc = wzp_opt_double(cmd, opt, arg, 1, 65535, "a port 1..65535", &v);
    if (rc == 0 && v != (double)(uint16_t)v) {
        fprintf(stderr, "%s: %s wants a port 1..65535, got '%s'\n", cmd, opt, arg);
        rc = WZP_EXIT_USAGE;
    }
    if (rc == 0)
        *out = (uint16_t)v;
    return rc;
}

int wzp_opt_other(int c, void (*usage)(FILE *out))
{
    if (c == 'h') {
        usage(stdout);
        return WZP_EXIT_OK;
    }
    usage(stderr);
    return WZP_EXIT_USAGE;
}

int wzp_opt_no_operands(const char *cmd, int argc, char **argv)
{
    if (optind == argc)
        return 0;
    fprintf(stderr, "%s: unexpected argument '%s'\n", cmd, argv[optind]);
    return WZP_EXIT_USAGE;
}

/* --relay and --relay-pin may repeat (a cluster): the values join into one comma list, which
 * the client splits again (wzp_client_config.relay). One command line per process: static. */
static const char *join(const char *prev, const char *arg, char *buf, size_t cap)
{
    if (!prev)
        return arg;
    char tmp[1024];
    snprintf(tmp, sizeof(tmp), "%s", prev);
    if ((size_t)snprintf(buf, cap, "%s,%s", tmp, arg) >= cap)
        return prev; /* more than the client keeps anyway */
    return buf;
}

bool wzp_opt_relay(int c, const char *arg, wzp_client_config *cfg)
{
    static char relays[1024], pins[1024];
    switch (c) {
    case 'r':
        cfg->relay = join(cfg->relay, arg, relays, sizeof(relays));
        return true;
    case 'p':
        cfg->relay_pin = join(cfg->relay_pin, arg, pins, sizeof(pins));
        return true;
    case 'H':
        cfg->home = arg;
        return true;
    default:
        return false;
    }
}
