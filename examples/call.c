/*
 * A minimal program on libwzp's public API, built against the installed library:
 *
 *   cc call.c $(pkg-config --cflags --libs wzp) -o wzp-example
 *   ./wzp-example                       identity, version and an error text
 *   ./wzp-example RELAY PIN PEER [SEC]  also call PEER for SEC seconds (default 2),
 *                                       sending a tone, and count what comes back
 *
 * The identity lives in $WZP_HOME (else ~/.config/wzp). Exit status 0 when the call (if
 * any) connected and audio arrived, 1 otherwise.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wzp/client.h>
#include <wzp/identity.h>
#include <wzp/wzp.h>

static atomic_bool registered, active, ended;
static atomic_int end_reason;
static atomic_ulong heard; /* frames decoded from the peer (not concealed) */
static unsigned long phase;

static void on_registered(wzp_client *c, const char *reflexive, void *user)
{
    printf("registered; the relay sees us at %s\n", reflexive);
    atomic_store(&registered, true);
}

static void on_call_state(wzp_client *c, wzp_call *call, wzp_call_state state, int reason,
                          void *user)
{
    if (state == WZP_CALL_ACTIVE) {
        printf("call active; verification code %s\n", wzp_call_verification_code(call));
        atomic_store(&active, true);
    } else if (state == WZP_CALL_ENDED) {
        atomic_store(&end_reason, reason);
        atomic_store(&ended, true);
    }
}

/* A 400 Hz triangle wave: integer arithmetic, so the example needs no libm. */
static bool pcm_source(wzp_client *c, wzp_call *call, int16_t pcm[WZP_FRAME_SAMPLES], void *user)
{
    for (int i = 0; i < WZP_FRAME_SAMPLES; i++, phase++) {
        long t = (long)(phase % 120); /* 48000 / 400 samples per period */
        pcm[i] = (int16_t)((t < 60 ? t - 30 : 90 - t) * 400);
    }
    return true;
}

static void pcm_sink(wzp_client *c, wzp_call *call, const int16_t pcm[WZP_FRAME_SAMPLES],
                     bool concealed, void *user)
{
    if (!concealed)
        atomic_fetch_add(&heard, 1);
}

/* Waits up to `seconds` for *flag (or for the call to end). */
static bool wait_for(atomic_bool *flag, int seconds)
{
    struct timespec tick = {0, 20 * 1000 * 1000};
    for (int i = 0; i < seconds * 50 && !atomic_load(flag) && !atomic_load(&ended); i++)
        nanosleep(&tick, NULL);
    return atomic_load(flag);
}

static int place_call(const char *relay, const char *pin, const char *peer, int seconds)
{
    wzp_client_config cfg;
    wzp_client_config_default(&cfg);
    cfg.relay = relay;
    cfg.relay_pin = pin;
    /* A relay on this machine: offer loopback addresses for the direct path too. */
    cfg.host_candidates_loopback = strncmp(relay, "127.", 4) == 0;
    cfg.cb.on_registered = on_registered;
    cfg.cb.on_call_state = on_call_state;
    cfg.cb.pcm_source = pcm_source;
    cfg.cb.pcm_sink = pcm_sink;

    wzp_client *c;
    int rv = wzp_client_new(&c, &cfg);
    if (rv < 0) {
        fprintf(stderr, "wzp-example: %s\n", wzp_strerror(rv));
        return 1;
    }
    int status = 1;
    wzp_call *call = NULL;
    if ((rv = wzp_client_start(c)) < 0) {
        fprintf(stderr, "wzp-example: start: %s\n", wzp_strerror(rv));
    } else if (!wait_for(&registered, 10)) {
        fprintf(stderr, "wzp-example: not registered with %s within 10 s\n", relay);
    } else if ((rv = wzp_client_call(c, peer, &call)) < 0) {
        fprintf(stderr, "wzp-example: call: %s\n", wzp_strerror(rv));
    } else if (!wait_for(&active, 15)) {
        fprintf(stderr, "wzp-example: call did not connect: %s\n",
                wzp_strerror(atomic_load(&end_reason)));
    } else {
        struct timespec talk = {seconds, 0};
        nanosleep(&talk, NULL);
        wzp_call_stats st;
        if (wzp_call_get_stats(call, &st) == 0)
            printf("call: path %s, %.1f ms RTT, %llu frames sent, %llu received\n",
                   wzp_path_name(st.path), st.rtt_ms, (unsigned long long)st.frames_sent,
                   (unsigned long long)st.frames_received);
        wzp_call_hangup(call);
        printf("heard %lu frames from %s\n", atomic_load(&heard), wzp_call_peer_fingerprint(call));
        status = atomic_load(&heard) > 0 ? 0 : 1;
    }
    if (call)
        wzp_call_release(call);
    wzp_client_stop(c);
    wzp_client_free(c);
    return status;
}

int main(int argc, char **argv)
{
    if (argc != 1 && argc != 4 && argc != 5) {
        fprintf(stderr, "usage: wzp-example [RELAY PIN PEER [SECONDS]]\n");
        return 2;
    }
    printf("libwzp %s\n", WZP_VERSION_STRING);
    printf("error %d reads \"%s\"\n", WZP_ERR_PIN_MISMATCH, wzp_strerror(WZP_ERR_PIN_MISMATCH));

    char dir[4096];
    int rv = wzp_identity_default_dir(dir, sizeof(dir));
    wzp_identity *id = NULL;
    bool created = false;
    if (rv == 0)
        rv = wzp_identity_load_or_create(dir, &id, &created);
    if (rv < 0) {
        fprintf(stderr, "wzp-example: identity: %s\n", wzp_strerror(rv));
        return 1;
    }
    uint8_t fp[WZP_FINGERPRINT_LEN], back[WZP_FINGERPRINT_LEN];
    char text[WZP_FINGERPRINT_STRLEN];
    wzp_identity_fingerprint(id, fp);
    wzp_fingerprint_format(fp, text, sizeof(text));
    wzp_identity_free(id);
    printf("identity %s (%s in %s)\n", text, created ? "created" : "loaded", dir);
    if (wzp_fingerprint_parse(text, back) != 0 || memcmp(fp, back, sizeof(fp)) != 0) {
        fprintf(stderr, "wzp-example: the fingerprint does not parse back\n");
        return 1;
    }
    if (argc == 1)
        return 0;
    return place_call(argv[1], argv[2], argv[3], argc == 5 ? atoi(argv[4]) : 2);
}
