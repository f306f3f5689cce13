/*
 * Call setup time: from the callee's answer to the first audio each end
 * plays, on one clock, on loopback (in-process relay, two clients) and with
 * 50 ms of delay added each way between each client and the relay (a UDP
 * delay proxy per client; direct paths disabled so the call stays on the
 * relay path).
 *
 * The callee answers after the phone has rung for a while, as a person does
 * (RING_MS): the end-to-end connection is set up during that time
 * (pre-connected ringing), so the answer starts audio both ways at once.
 * "Heard" is the first decoded frame a side plays (its pcm_sink), so it
 * includes the playout buffer's start. The physical limit is half a
 * relay-path round trip (peer -> relay -> peer = one client-relay RTT) for
 * the caller; the target is that plus 30 ms.
 *
 * Also the dial to the callee's ring: with both ends connected (the runs
 * above), and with both parked (the relay parks idle clients after
 * PARK_AFTER_MS; a parked caller connects again before its Offer leaves, the
 * relay wakes the parked callee and rings it once it has registered again:
 * two handshakes more).
 *
 * Last line: call-setup: loopback_ms=... relay_rtt_ms=... with_delay_ms=...
 * ring_ms=... ring_parked_ms=... (worst end, median of the runs; relay_rtt_ms
 * and the ring times are those of the delayed setup).
 */
#include <ftw.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <wzp/client.h>
#include <wzp/identity.h>

#include "net/clock.h"
#include "net/udp.h"
#include "relay/server.h"

#define RUNS          5
#define RING_MS       1000 /* how long the phone rings before the answer */
#define PARK_AFTER_MS 500  /* the relay's --park-after: longer than the runs' idle gaps */
#define PARKED_DIALS  3

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* --- a UDP delay proxy: client <-> proxy <-> relay, `delay` each way
 * ------------------------------ */

#define QCAP 4096
typedef struct pkt {
    wzp_ts due;
    int to_relay;
    size_t len;
    uint8_t data[1600];
} pkt;

typedef struct dproxy {
    int front, back;
    wzp_addr front_addr, relay, client;
    wzp_ts delay;
    volatile int stop;
    pthread_t thread;
    pkt *q;
    size_t head, tail; /* FIFO: constant delay keeps it ordered */
} dproxy;

static void *dproxy_main(void *arg)
{
    dproxy *x = arg;
    while (!x->stop) {
        wzp_ts now = wzp_now();
        while (x->head != x->tail && x->q[x->head % QCAP].due <= now) {
            pkt *p = &x->q[x->head % QCAP];
            if (p->to_relay)
                wzp_udp_send(x->back, &x->relay, p->data, p->len);
            else if (x->client.len)
                wzp_udp_send(x->front, &x->client, p->data, p->len);
            x->head++;
        }
        int timeout = 1;
        struct pollfd pf[2] = {{x->front, POLLIN, 0}, {x->back, POLLIN, 0}};
        if (poll(pf, 2, timeout) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (!(pf[i].revents & POLLIN) || x->tail - x->head >= QCAP)
                continue;
            pkt *p = &x->q[x->tail % QCAP];
            wzp_udp_msg m = {.data = p->data, .cap = sizeof(p->data)};
            if (wzp_udp_recv_batch(i == 0 ? x->front : x->back, &m, 1) != 1 || m.len == 0)
                continue;
            if (i == 0)
                x->client = m.peer;
            p->len = m.len;
            p->to_relay = i == 0;
            p->due = wzp_now() + x->delay;
            x->tail++;
        }
    }
    return NULL;
}

static void dproxy_start(dproxy *x, const wzp_addr *relay, wzp_ts delay)
{
    memset(x, 0, sizeof(*x));
    x->q = calloc(QCAP, sizeof(pkt));
    x->relay = *relay;
    x->delay = delay;
    wzp_addr any;
    wzp_addr_parse(&any, "127.0.0.1:0", false);
    x->front = wzp_udp_open(&any, NULL, &x->front_addr);
    x->back = wzp_udp_open(&any, NULL, NULL);
    pthread_create(&x->thread, NULL, dproxy_main, x);
}

static void dproxy_stop(dproxy *x)
{
    x->stop = 1;
    pthread_join(x->thread, NULL);
    close(x->front);
    close(x->back);
    free(x->q);
}

/* --- clients
 * ---------------------------------------------------------------------------------------- */

typedef struct party {
    wzp_client *c;
    pthread_mutex_t mu;
    bool registered;
    wzp_call *call;
    bool ended;
    wzp_ts heard_at; /* first decoded frame played in this run, 0 before */
    wzp_ts rang_at;  /* the latest incoming call's ring */
} party;

static void on_registered(wzp_client *c, const char *refl, void *user)
{
    party *p = user;
    pthread_mutex_lock(&p->mu);
    p->registered = true;
    pthread_mutex_unlock(&p->mu);
}

static void on_incoming(wzp_client *c, wzp_call *call, const char *fp, const char *alias,
                        void *user)
{
    party *p = user;
    pthread_mutex_lock(&p->mu);
    p->call = call;
    p->ended = false;
    p->rang_at = wzp_now();
    pthread_mutex_unlock(&p->mu); /* the run answers after RING_MS */
}

static void on_state(wzp_client *c, wzp_call *call, wzp_call_state st, int reason, void *user)
{
    party *p = user;
    pthread_mutex_lock(&p->mu);
    if (call == p->call && st == WZP_CALL_ENDED)
        p->ended = true;
    pthread_mutex_unlock(&p->mu);
}

static bool source(wzp_client *c, wzp_call *call, int16_t pcm[WZP_FRAME_SAMPLES], void *user)
{
    for (int i = 0; i < WZP_FRAME_SAMPLES; i++)
        pcm[i] = (int16_t)((i % 48) * 300 - 7200); /* a 1 kHz sawtooth: never silent */
    return true;
}

static void sink(wzp_client *c, wzp_call *call, const int16_t pcm[WZP_FRAME_SAMPLES],
                 bool concealed, void *user)
{
    party *p = user;
    pthread_mutex_lock(&p->mu);
    if (!concealed && !p->heard_at)
        p->heard_at = wzp_now();
    pthread_mutex_unlock(&p->mu);
}

static wzp_ts heard_at(party *p)
{
    pthread_mutex_lock(&p->mu);
    wzp_ts t = p->heard_at;
    pthread_mutex_unlock(&p->mu);
    return t;
}

static void party_start(party *p, const char *home, const char *alias, const char *relay,
                        const char *pin, bool direct)
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    wzp_client_config cfg = {.home = home,
                             .relay = relay,
                             .relay_pin = pin,
                             .alias = alias,
                             .bind_v4 = "127.0.0.1:0",
                             .bind_v6 = "",
                             .host_candidates_loopback = true,
                             .direct_disabled = !direct,
                             .cb = {.on_registered = on_registered,
                                    .on_incoming = on_incoming,
                                    .on_call_state = on_state,
                                    .pcm_source = source,
                                    .pcm_sink = sink},
                             .user = p};
    if (wzp_client_new(&p->c, &cfg) < 0 || wzp_client_start(p->c) < 0) {
        fprintf(stderr, "bench: cannot start a client\n");
        exit(1);
    }
}

static bool wait_registered(party *p)
{
    for (int i = 0; i < 1000; i++) {
        pthread_mutex_lock(&p->mu);
        bool ok = p->registered;
        pthread_mutex_unlock(&p->mu);
        if (ok)
            return true;
        sleep_ms(10);
    }
    return false;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef struct result {
    double worst_ms, caller_ms, callee_ms, relay_rtt_ms, ring_ms, ring_parked_ms;
} result;

/* Calls b and waits for its ring: the dial-to-ring time in ms; *bc: b's call. */
static double dial(party *a, party *b, wzp_call **call, wzp_call **bc)
{
    wzp_ts t0 = wzp_now();
    if (wzp_client_call(a->c, "callee", call) < 0) {
        fprintf(stderr, "bench: call failed\n");
        exit(1);
    }
    *bc = NULL;
    for (int i = 0; i < 2500 && !*bc; i++) {
        sleep_ms(2);
        pthread_mutex_lock(&b->mu);
        *bc = b->call;
        pthread_mutex_unlock(&b->mu);
    }
    if (!*bc) {
        fprintf(stderr, "bench: the call did not ring\n");
        exit(1);
    }
    pthread_mutex_lock(&b->mu);
    double ms = (double)(b->rang_at - t0) / 1e6;
    pthread_mutex_unlock(&b->mu);
    return ms;
}

/* a ends the call (hang-up or cancel); both handles go. */
static void end_call(party *b, wzp_call *call, wzp_call *bc)
{
    wzp_call_hangup(call);
    for (int i = 0; i < 300; i++) {
        pthread_mutex_lock(&b->mu);
        bool ended = b->ended;
        pthread_mutex_unlock(&b->mu);
        if (ended)
            break;
        sleep_ms(10);
    }
    wzp_call_release(call);
    pthread_mutex_lock(&b->mu);
    b->call = NULL;
    pthread_mutex_unlock(&b->mu);
    wzp_call_release(bc);
}

/* One scenario: RUNS calls from a to b; medians. */
static result scenario(const char *name, const char *root, const char *relay_addr,
                       const char *relay_fp, wzp_ts delay)
{
    wzp_addr raddr;
    wzp_addr_parse(&raddr, relay_addr, false);
    dproxy pa, pb;
    char via_a[WZP_ADDR_STRLEN], via_b[WZP_ADDR_STRLEN];
    snprintf(via_a, sizeof(via_a), "%s", relay_addr);
    snprintf(via_b, sizeof(via_b), "%s", relay_addr);
    if (delay) {
        dproxy_start(&pa, &raddr, delay);
        dproxy_start(&pb, &raddr, delay);
        wzp_addr_format(&pa.front_addr, via_a, sizeof(via_a));
        wzp_addr_format(&pb.front_addr, via_b, sizeof(via_b));
    }
    char ha[256], hb[256];
    snprintf(ha, sizeof(ha), "%s/a", root);
    snprintf(hb, sizeof(hb), "%s/b", root);
    party a, b;
    party_start(&a, ha, "caller", via_a, relay_fp, delay == 0);
    party_start(&b, hb, "callee", via_b, relay_fp, delay == 0);
    if (!wait_registered(&a) || !wait_registered(&b)) {
        fprintf(stderr, "bench: registration failed\n");
        exit(1);
    }
    sleep_ms(300); /* let the control connections sample their RTT */
    double worst[RUNS], caller[RUNS], callee[RUNS], ring[RUNS], ring_parked[PARKED_DIALS];
    double rtt = wzp_client_relay_rtt_ms(a.c);
    printf("%-10s relay rtt %6.1f ms\n", name, rtt);
    printf("  run  caller_first_audio_ms  callee_first_audio_ms  dial_to_ring_ms\n");
    for (int run = 0; run < RUNS; run++) {
        wzp_call *call, *bc;
        pthread_mutex_lock(&a.mu);
        a.heard_at = 0;
        pthread_mutex_unlock(&a.mu);
        pthread_mutex_lock(&b.mu);
        b.heard_at = 0;
        pthread_mutex_unlock(&b.mu);
        ring[run] = dial(&a, &b, &call, &bc);
        sleep_ms(RING_MS);
        wzp_ts answer = wzp_now();
        wzp_call_answer(bc);
        for (int i = 0; i < 1000 && !(heard_at(&a) && heard_at(&b)); i++)
            sleep_ms(2);
        caller[run] = heard_at(&a) ? (double)(heard_at(&a) - answer) / 1e6 : -1;
        callee[run] = heard_at(&b) ? (double)(heard_at(&b) - answer) / 1e6 : -1;
        worst[run] = caller[run] > callee[run] ? caller[run] : callee[run];
        printf("  %3d  %21.1f  %21.1f  %15.1f\n", run + 1, caller[run], callee[run], ring[run]);
        end_call(&b, call, bc);
        sleep_ms(200);
    }
    printf("  both parked (idle %d ms > --park-after %d): dial_to_ring_ms", 3 * PARK_AFTER_MS,
           PARK_AFTER_MS);
    for (int k = 0; k < PARKED_DIALS; k++) {
        wzp_call *call, *bc;
        sleep_ms(3 * PARK_AFTER_MS);
        ring_parked[k] = dial(&a, &b, &call, &bc);
        printf(" %.1f", ring_parked[k]);
        end_call(&b, call, bc);
    }
    printf("\n");
    qsort(worst, RUNS, sizeof(double), cmp_double);
    qsort(caller, RUNS, sizeof(double), cmp_double);
    qsort(callee, RUNS, sizeof(double), cmp_double);
    qsort(ring, RUNS, sizeof(double), cmp_double);
    qsort(ring_parked, PARKED_DIALS, sizeof(double), cmp_double);
    result r = {worst[RUNS / 2],  caller[RUNS / 2],
                callee[RUNS / 2], rtt,
                ring[RUNS / 2],   ring_parked[PARKED_DIALS / 2]};
    double target = 0.5 * (2 * rtt) + 30;
    printf("  median: caller %.0f ms, callee %.0f ms, worst end %.0f ms; target 0.5 x %.1f + 30 = "
           "%.0f ms (%s; includes the playout start)\n",
           r.caller_ms, r.callee_ms, r.worst_ms, 2 * rtt, target,
           r.worst_ms <= target ? "met" : "NOT met");
    printf("  median dial to ring: connected %.0f ms, both parked %.0f ms\n", r.ring_ms,
           r.ring_parked_ms);
    wzp_client_free(a.c);
    wzp_client_free(b.c);
    pthread_mutex_destroy(&a.mu);
    pthread_mutex_destroy(&b.mu);
    if (delay) {
        dproxy_stop(&pa);
        dproxy_stop(&pb);
    }
    return r;
}

static void *relay_main(void *arg)
{
    wzp_relay_server_run(arg, false);
    return NULL;
}

int main(void)
{
    wzp_set_log_level(WZP_LOG_ERROR);
    char root[] = "/tmp/wzp-bench-setup-XXXXXX";
    if (!mkdtemp(root))
        return 1;
    char rhome[256];
    snprintf(rhome, sizeof(rhome), "%s/relay", root);
    wzp_relay_server_config rc;
    wzp_relay_server_config_default(&rc);
    wzp_addr_parse(&rc.listen, "127.0.0.1:0", false);
    rc.home = rhome;
    rc.workers = 1;
    rc.control.park_after = WZP_MS(PARK_AFTER_MS);
    wzp_relay_server *srv;
    if (wzp_relay_server_new(&srv, &rc) < 0)
        return 1;
    pthread_t rt;
    pthread_create(&rt, NULL, relay_main, srv);
    char addr[WZP_ADDR_STRLEN], fp[WZP_FINGERPRINT_STRLEN];
    uint8_t fpb[WZP_FINGERPRINT_LEN];
    wzp_relay_server_fingerprint(srv, fpb);
    wzp_fingerprint_format(fpb, fp, sizeof(fp));
    wzp_addr_format(wzp_relay_server_addr(srv), addr, sizeof(addr));

    result lo = scenario("loopback", root, addr, fp, 0);
    result dl = scenario("+50ms/leg", root, addr, fp, WZP_MS(50));

    wzp_relay_server_stop(srv);
    pthread_join(rt, NULL);
    wzp_relay_server_free(srv);
    nftw(root, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    printf("call-setup: loopback_ms=%.0f relay_rtt_ms=%.1f with_delay_ms=%.0f ring_ms=%.0f "
           "ring_parked_ms=%.0f\n",
           lo.worst_ms, dl.relay_rtt_ms, dl.worst_ms, dl.ring_ms, dl.ring_parked_ms);
    return 0;
}
