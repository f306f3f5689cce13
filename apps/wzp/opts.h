/*
 * Numeric command-line values, parsed one way for every wzp command: the
 * whole argument must be a finite number inside the option's range.
 */
#ifndef WZP_APP_OPTS_H
#define WZP_APP_OPTS_H

#include <stdbool.h>
#include <stdio.h>

#include <wzp/client.h>

/* Tone frequencies: the audible band, well below Nyquist of 48 kHz. */
#define WZP_OPT_TONE_MIN_HZ 20.0
#define WZP_OPT_TONE_MAX_HZ 20000.0
/* Call durations: one 20 ms frame up to a week. */
#define WZP_OPT_DURATION_MIN_S 0.02
#define WZP_OPT_DURATION_MAX_S (7.0 * 24 * 3600)

/*
 * Parses arg as a number in [min, max] into *out: 0, or prints one line
 * "CMD: OPT wants WANT, got 'ARG'" and returns WZP_EXIT_USAGE. Rejects an
 * empty string, trailing characters, NaN, infinities and overflow.
 */
int wzp_opt_double(const char *cmd, const char *opt, const char *arg, double min, double max,
                   const char *want, double *out);

/* A port number 1..65535 (e.g. --relay-tcp): 0, or one line and WZP_EXIT_USAGE. */
int wzp_opt_port(const char *cmd, const char *opt, const char *arg, uint16_t *out);

/*
 * An option the command's getopt_long loop does not handle itself: 'h'
 * (--help) prints usage on stdout and gives WZP_EXIT_OK; anything else prints
 * usage on stderr and gives WZP_EXIT_USAGE.
 */
int wzp_opt_other(int c, void (*usage)(FILE *out));

/*
 * The relay options of every command that talks to a relay, as getopt_long
 * codes: 'r' --relay, 'p' --relay-pin, 'H' --home. True when c was one of
 * them (its value stored in cfg).
 */
bool wzp_opt_relay(int c, const char *arg, wzp_client_config *cfg);

/*
 * After the options (getopt's optind), for a command that takes no operands: 0, or prints
 * "CMD: unexpected argument 'ARG'" and returns WZP_EXIT_USAGE.
 */
int wzp_opt_no_operands(const char *cmd, int argc, char **argv);

#endif
