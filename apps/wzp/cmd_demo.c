/*
 * wzp demo: a relay (in this process, on 127.0.0.1, throw-away identities)
 * and two clients, alice and bob, on loopback. Bob calls alice; both send
 * the probe signal for a few seconds and record what they hear; then the
 * summary says which path the call took and the recordings are checked
 * against what was sent (normalised cross-correlation > 0.9).
 */
#include <ftw.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wzp/client.h>
#include <wzp/identity.h>

#include "commands.h"
#include "media/compare.h"
#include "opts.h"
#include "relay/server.h"
#include "session.h"

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void *relay_main(void *arg)
{
    wzp_relay_server_run(arg, false);
    return NULL;
}

typedef struct party {
    session s;
    const char *peer; /* NULL: listen */
    int code;
} party;

static void *party_main(void *arg)
{
    party *p = arg;
    p->code = p->peer ? session_run_call(&p->s, p->peer, NULL) : session_run_listen(&p->s, NULL);
    return NULL;
}

/*
 * Pieces of what was sent (0.5 s each, first and last skipped) that are found
 * in the recording with NCC > 0.9, each at its own delay. The whole-recording
 * NCC is the criterion; this only explains a failure or rescues a recording
 * whose delay moved mid-call (the adaptive playout adds 20 ms when a loaded
 * machine delays packets), which shifts everything after it.
 */
static void pieces(const session *snd, const session *rcv, size_t *good, size_t *total)
{
    /* Quarter seconds: only the piece straddling a shift fails (with half seconds a 3 s call
     * has four pieces, and one shift failed it). */
    const size_t win = WZP_SAMPLE_RATE / 4;
    *good = *total = 0;
    for (size_t off = win; off + 2 * win <= snd->sent_n; off += win) {
        wzp_ncc_result w;
        (*total)++;
        if (wzp_ncc_search_s16(snd->sent + off, win, rcv->rec, rcv->rec_n,
                               (long)off - WZP_SAMPLE_RATE, (long)off + WZP_SAMPLE_RATE, win,
                               &w) == 0 &&
            w.ncc > 0.9)
            (*good)++;
    }
}

static int check(const char *what, session *sender, session *receiver, bool json)
{
    wzp_ncc_result r = {0};
    int rc = WZP_ERR_INVALID;
    if (sender->sent_n && receiver->rec_n)
        rc = wzp_ncc_search_s16(sender->sent, sender->sent_n, receiver->rec, receiver->rec_n,
                                -WZP_SAMPLE_RATE, WZP_SAMPLE_RATE, WZP_SAMPLE_RATE, &r);
    double ncc = rc == 0 ? r.ncc : 0.0;
    bool ok = rc == 0 && r.ncc > 0.9;
    size_t good = 0, total = 0;
    if (!ok) {
        pieces(sender, receiver, &good, &total);
        ok = total >= 2 && good * 5 >= total * 4;
    }
    if (json) {
        printf("{\"event\":\"audio_check\",\"direction\":\"%s\",\"ncc\":%.4f,"
               "\"lag_samples\":%ld,\"match\":%s",
               what, ncc, r.lag, ok ? "true" : "false");
        if (total)
            printf(",\"pieces_matching\":%zu,\"pieces\":%zu", good, total);
        printf("}\n");
    } else {
        printf("audio %s: %s (NCC %.3f at %.1f ms of delay", what,
               ok ? "matches" : "DOES NOT MATCH", ncc, (double)r.lag * 1000.0 / WZP_SAMPLE_RATE);
        if (total)
            printf("; delay moved mid-call: %zu of %zu quarter-second pieces match", good, total);
        printf(")\n");
    }
    return ok ? 0 : -1;
}

int wzp_cmd_demo(int argc, char **argv)
{
    static const struct option opts[] = {
        {"duration", required_argument, NULL, 'd'}, {"no-direct", no_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},           {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    double duration = 4.0;
    bool json = false, no_direct = false;
    int c, verbose = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (c) {
        case 'd':
            if (wzp_opt_double("wzp demo", "--duration", optarg, 1, 60, "1..60 seconds", &duration))
                return WZP_EXIT_USAGE;
            break;
        case 'n':
            no_direct = true;
            break;
        case 'j':
            json = true;
            break;
        case 'v':
            verbose++;
            break;
        case 'h':
            printf("usage: wzp demo [--duration SECONDS] [--no-direct] [--json]\n"
                   "Starts a relay and two clients on loopback, places one call carrying a test\n"
                   "signal both ways, prints which path it took and checks the audio arrived.\n"
                   "Exit 0 only if both recordings match what was sent.\n"
                   "  --duration SECONDS  how long the call lasts, 1..60 (default 4)\n"
                   "  --no-direct         never try a direct path (always through the relay)\n"
                   "  --json              one JSON object per line per event\n");
            return WZP_EXIT_OK;
        default:
            return WZP_EXIT_USAGE;
        }
    }
    wzp_set_log_level(verbose >= 2 ? WZP_LOG_DEBUG : verbose ? WZP_LOG_INFO : WZP_LOG_ERROR);

    char root[] = "/tmp/wzp-demo-XXXXXX", dir_relay[64], dir_a[64], dir_b[64];
    if (!mkdtemp(root)) {
        perror("wzp demo: mkdtemp");
        return WZP_EXIT_FAILURE;
    }
    snprintf(dir_relay, sizeof(dir_relay), "%s/relay", root);
    snprintf(dir_a, sizeof(dir_a), "%s/alice", root);
    snprintf(dir_b, sizeof(dir_b), "%s/bob", root);

    int code = WZP_EXIT_FAILURE;
    wzp_relay_server_config rc;
    wzp_relay_server_config_default(&rc);
    wzp_addr_parse(&rc.listen, "127.0.0.1:0", false);
    rc.home = dir_relay;
    rc.workers = 1;
    wzp_relay_server *relay = NULL;
    pthread_t relay_thread;
    bool relay_running = false;
    party alice, bob;
    bool started_a = false, started_b = false;
    int rv = wzp_relay_server_new(&relay, &rc);
    if (rv < 0) {
        fprintf(stderr, "wzp demo: cannot start the relay: %s\n", wzp_strerror(rv));
        goto out;
    }
    if (pthread_create(&relay_thread, NULL, relay_main, relay) != 0)
        goto out;
    relay_running = true;
    char relay_addr[WZP_ADDR_STRLEN], relay_fp[WZP_FINGERPRINT_STRLEN];
    uint8_t fp[WZP_FINGERPRINT_LEN];
    wzp_relay_server_fingerprint(relay, fp);
    wzp_fingerprint_format(fp, relay_fp, sizeof(relay_fp));
    wzp_addr_format(wzp_relay_server_addr(relay), relay_addr, sizeof(relay_addr));
    if (json)
        printf("{\"event\":\"relay\",\"address\":\"%s\",\"fingerprint\":\"%s\"}\n", relay_addr,
               relay_fp);
    else
        printf("relay on %s, fingerprint %s\n", relay_addr, relay_fp);

    session_opts so = {.json = json,
                       .quiet = false,
                       .source = SRC_PROBE,
                       .keep_recording = true,
                       .keep_sent = true};
    so.name = "wzp demo (alice)";
    so.label = "alice";
    so.auto_answer = true;
    so.probe_seed = 1;
    session_init(&alice.s, &so);
    so.name = "wzp demo (bob)";
    so.label = "bob";
    so.auto_answer = false;
    so.probe_seed = 2;
    so.duration_s = duration;
    session_init(&bob.s, &so);

    wzp_client_config cfg = {.relay = relay_addr,
                             .relay_pin = relay_fp,
                             .bind_v6 = "",
                             .host_candidates_loopback = true,
                             .direct_disabled = no_direct};
    cfg.home = dir_a;
    cfg.alias = "alice";
    code = session_start(&alice.s, &cfg);
    started_a = true;
    if (!code)
        code = session_wait_registered(&alice.s);
    if (code)
        goto out;
    cfg.home = dir_b;
    cfg.alias = "bob";
    code = session_start(&bob.s, &cfg);
    started_b = true;
    if (!code)
        code = session_wait_registered(&bob.s);
    if (code)
        goto out;
    if (!json)
        printf("alice is %s\nbob   is %s\nbob calls alice, %.0f s of test signal each way...\n",
               wzp_client_fingerprint(alice.s.client), wzp_client_fingerprint(bob.s.client),
               duration);
    fflush(stdout);

    alice.peer = NULL;
    bob.peer = wzp_client_fingerprint(alice.s.client);
    pthread_t ta, tb;
    pthread_create(&ta, NULL, party_main, &alice);
    pthread_create(&tb, NULL, party_main, &bob);
    pthread_join(tb, NULL);
    pthread_join(ta, NULL);
    session_summary(&bob.s, bob.code);
    session_summary(&alice.s, alice.code);
    code = bob.code ? bob.code : alice.code;
    /* Stop the clients before comparing so nothing writes the buffers. */
    session_finish(&alice.s, 0);
    session_finish(&bob.s, 0);
    started_a = started_b = false;
    if (code == WZP_EXIT_OK) {
        int m1 = check("bob->alice", &bob.s, &alice.s, json);
        int m2 = check("alice->bob", &alice.s, &bob.s, json);
        code = m1 == 0 && m2 == 0 ? WZP_EXIT_OK : WZP_EXIT_MISMATCH;
        if (!json)
            printf("%s\n", code == WZP_EXIT_OK ? "demo: OK" : "demo: FAILED (audio mismatch)");
    }
    free(alice.s.rec);
    free(alice.s.sent);
    free(bob.s.rec);
    free(bob.s.sent);
out:
    if (started_a)
        session_finish(&alice.s, 0);
    if (started_b)
        session_finish(&bob.s, 0);
    if (relay_running) {
        wzp_relay_server_stop(relay);
        pthread_join(relay_thread, NULL);
    }
    wzp_relay_server_free(relay);
    nftw(root, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    fflush(stdout);
    return code;
}
