/* wzp history: the calls wzp call/listen took part in ($WZP_HOME/history), newest first. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "opts.h"
#include "phone.h"
#include "phone/history.h"

#define CMD "wzp history"

static void usage(FILE *out)
{
    fprintf(out, "usage: wzp history [--json] [-n N] [--home DIR]\n"
                 "Lists recent calls, newest first: start (UTC), direction, outcome, peer,\n"
                 "duration, path and quality. The last 1000 calls are kept.\n"
                 "  -n N         show the N newest (default 20; 0 for all)\n"
                 "  --json       one JSON object per call and line\n"
                 "  --home DIR   state directory (default $WZP_HOME, else ~/.config/wzp)\n");
}

static void print_json(const wzp_history_rec *r)
{
    char t[21], fp[WZP_FINGERPRINT_STRLEN];
    wzp_history_time_format(r->start, t);
    printf("{\"start\":\"%s\",\"direction\":\"%s\",\"outcome\":\"%s\",\"reason\":", t,
           r->incoming ? "in" : "out", wzp_history_outcome_name(r->outcome));
    phone_json_str(stdout, r->reason[0] ? r->reason : NULL);
    printf(",\"peer\":");
    phone_json_str(stdout, r->have_peer ? wzp_fingerprint_format(r->fp, fp, sizeof(fp)) : NULL);
    printf(",\"contact\":");
    phone_json_str(stdout, r->name[0] ? r->name : NULL);
    printf(",\"duration_s\":%llu.%03llu,\"path\":", (unsigned long long)(r->duration_ms / 1000),
           (unsigned long long)(r->duration_ms % 1000));
    phone_json_str(stdout, r->path ? wzp_history_path_name(r->path) : NULL);
    printf(",\"loss_pct\":%u.%u,\"rtt_ms\":%u}\n", r->loss_tenths / 10, r->loss_tenths % 10,
           r->rtt_ms);
}

static void print_row(const wzp_history_rec *r)
{
    char t[21], fp[WZP_FINGERPRINT_STRLEN], peer[WZP_CONTACT_NAME_MAX + WZP_FINGERPRINT_STRLEN + 2],
        outcome[64], dur[32] = "-", quality[48] = "-";
    wzp_history_time_format(r->start, t);
    t[10] = ' ';
    t[19] = '\0';
    /* The first two groups of the key tell contacts apart at a glance; --json has it whole. */
    if (r->have_peer) {
        wzp_fingerprint_format(r->fp, fp, sizeof(fp));
        fp[9] = '\0';
        snprintf(peer, sizeof(peer), "%s %s", r->name[0] ? r->name : "unknown", fp);
    } else {
        snprintf(peer, sizeof(peer), "-");
    }
    snprintf(outcome, sizeof(outcome), "%s%s%s%s", wzp_history_outcome_name(r->outcome),
             r->reason[0] && r->outcome != WZP_HIST_ANSWERED ? " (" : "",
             r->outcome != WZP_HIST_ANSWERED ? r->reason : "",
             r->reason[0] && r->outcome != WZP_HIST_ANSWERED ? ")" : "");
    if (r->outcome == WZP_HIST_ANSWERED) {
        unsigned long long s = r->duration_ms / 1000;
        snprintf(dur, sizeof(dur), "%llu:%02llu:%02llu", s / 3600, s / 60 % 60, s % 60);
        snprintf(quality, sizeof(quality), "%u.%u%% %u ms", r->loss_tenths / 10,
                 r->loss_tenths % 10, r->rtt_ms);
    }
    printf("%-19s  %-3s  %-30s  %-44s  %9s  %-6s  %s\n", t, r->incoming ? "in" : "out", outcome,
           peer, dur, r->path ? wzp_history_path_name(r->path) : "-", quality);
}

int wzp_cmd_history(int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *home_opt = NULL;
    bool json = false;
    size_t n_opt = 20;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hn:", opts, NULL)) != -1) {
        switch (c) {
        case 'H':
            home_opt = optarg;
            break;
        case 'j':
            json = true;
            break;
        case 'n': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (!optarg[0] || *end || v < 0 || v > WZP_HISTORY_KEEP) {
                fprintf(stderr, CMD ": -n wants a count in 0..%d, got '%s'\n", WZP_HISTORY_KEEP,
                        optarg);
                return WZP_EXIT_USAGE;
            }
            n_opt = (size_t)v;
            break;
        }
        default:
            return wzp_opt_other(c, usage);
        }
    }
    char home[PATH_MAX];
    int code = wzp_opt_no_operands(CMD, argc, argv);
    if (!code)
        code = phone_home(CMD, home_opt, home, sizeof(home));
    if (code)
        return code;
    wzp_history h;
    size_t line = 0;
    const char *why = "";
    int rc = wzp_history_load(home, &h, &line, &why);
    if (rc == WZP_ERR_MALFORMED) {
        fprintf(stderr,
                CMD ": %s/%s line %zu: %s (fix or remove that line; calls are not recorded "
                    "meanwhile)\n",
                home, WZP_HISTORY_FILE, line, why);
        return WZP_EXIT_HISTORY_FILE;
    }
    if (rc < 0) {
        fprintf(stderr, CMD ": cannot read %s/%s: %s\n", home, WZP_HISTORY_FILE, wzp_strerror(rc));
        return WZP_EXIT_HISTORY_FILE;
    }
    size_t want = n_opt ? n_opt : h.n, shown = 0;
    if (!json && h.n)
        printf("%-19s  %-3s  %-30s  %-44s  %9s  %-6s  %s\n", "START (UTC)", "DIR", "OUTCOME",
               "PEER", "DURATION", "PATH", "LOSS RTT");
    for (size_t i = h.n; i > 0 && shown < want; i--, shown++) {
        if (json)
            print_json(&h.v[i - 1]);
        else
            print_row(&h.v[i - 1]);
    }
    if (!json && !h.n)
        printf("no calls yet\n");
    wzp_history_free(&h);
    return WZP_EXIT_OK;
}
