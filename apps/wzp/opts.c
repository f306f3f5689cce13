/* Numeric command-line values: see opts.h. */
#include "opts.h"

#include <ctype.h>
#include <errno.h>
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
