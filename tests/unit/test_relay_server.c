/*
 * The assembled relay (src/relay/server.c) end to end over real QUIC on
 * loopback: a wzp_relay_server in a thread, test clients built from the real
 * socket, QUIC endpoint and signal client (tests/support/relay_client.h).
 * Everything is observed from the clients' side, as a real client would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <gnutls/gnutls.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <wzp/identity.h>
#include <wzp/wzp.h>

#include "common/rand.h"
#include "ice/stun_client.h"
#include "net/clock.h"
#include "net/udp.h"
#include "quic/quic_int.h"
#include "support/id_pair.h"
#include "support/relay_client.h"
#include "wire/relay_frame.h"
#include "wire/stun.h"

#define NIDS 4
static wzp_identity *ids[NIDS];
static uint8_t fps[NIDS][WZP_FINGERPRINT_LEN];

/* Generous: the sanitizer build on a shared machine is slow. */
#define WAIT_SEC 20

static int group_setup(void **state)
{
    (void)state;
    return id_set_new(ids, fps, NIDS);
}

static int group_teardown(void **state)
{
    (void)state;
    id_set_free(ids, NIDS);
    return 0;
}

/* ---- helpers ------------------------------------------------------------------------ */

/* Pumps the clients until cond holds or WAIT_SEC pass. */
#define PUMP_UNTIL(cs, n, cond)                                                                    \
    do {                                                                                           \
        wzp_ts end_ = wzp_now() + WZP_SEC(WAIT_SEC);                                               \
        while (!(cond) && wzp_now() < end_)                                                        \
            relay_client_pump((cs), (n), WZP_MS(20), NULL, NULL);                                  \
    } while (0)

#define PUMP_FOR(cs, n, ms) relay_client_pump((cs), (n), WZP_MS(ms), NULL, NULL)

static relay_client *client_new(relay_thread *rt, int id, const char *alias)
{
    relay_client *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    relay_client_opts o = {.auto_register = true, .alias = alias};
    assert_int_equal(relay_client_start(c, ids[id], &rt->addr, rt->fp, &o), 0);
    return c;
}

static void client_del(relay_client *c)
{
    if (c) {
        relay_client_free(c);
        free(c);
    }
}

/* Closes politely, so the relay hears of it, then frees. */
static void client_bye(relay_client *c)
{
    relay_client_close(c, 0);
    PUMP_FOR(&c, 1, 50);
    client_del(c);
}

static bool registered(const relay_client *c)
{
    return wzp_sigc_reg_state_get(c->sigc) == WZP_SIGC_REGISTERED;
}

static void start_relay(relay_thread *rt, wzp_ts ring_timeout, wzp_ts conn_idle)
{
    wzp_relay_server_config cfg;
    wzp_relay_server_config_default(&cfg);
    cfg.workers = 2;
    if (ring_timeout)
        cfg.control.ring_timeout = ring_timeout;
    if (conn_idle)
        cfg.conn_idle_timeout = conn_idle;
    assert_int_equal(relay_thread_start(rt, &cfg), 0);
}

static void make_params(wzp_sig_params *p, uint8_t seed)
{
    memset(p, 0, sizeof(*p));
    p->media_version = 1;
    p->codecs[0] = 111;
    p->n_codecs = 1;
    p->max_bitrate = 32000;
    p->probe_key_len = 16;
    memset(p->probe_key, seed, 16);
}

static void make_cands(wzp_sig_candidate *c, size_t n, const char *base_ip, uint16_t port)
{
    for (size_t i = 0; i < n; i++) {
        char text[64];
        snprintf(text, sizeof(text), "%s:%u", base_ip, (unsigned)(port + i));
        memset(&c[i], 0, sizeof(c[i]));
        c[i].type = i == 0 ? WZP_SIG_CAND_HOST : WZP_SIG_CAND_SRFLX;
        c[i].priority = 1000 - (uint32_t)i;
        assert_int_equal(wzp_addr_parse(&c[i].addr, text, false), 0);
    }
}

/* A calls B (by fingerprint); returns once B sees INCOMING and A RINGING. */
static uint32_t offer(relay_client *a, relay_client *b, int b_id, wzp_sig_candidate *cands,
                      size_t n)
{
    relay_client *cs[] = {a, b};
    wzp_sig_params p;
    make_params(&p, 0xa1);
    uint32_t call;
    size_t inc0 = relay_client_count(b, WZP_SIGC_EV_INCOMING);
    size_t ring0 = relay_client_count(a, WZP_SIGC_EV_RINGING);
    assert_int_equal(wzp_sigc_call_fp(a->sigc, fps[b_id], NULL, &p, cands, n, &call, wzp_now()), 0);
    PUMP_UNTIL(cs, 2,
               relay_client_count(b, WZP_SIGC_EV_INCOMING) > inc0 &&
                   relay_client_count(a, WZP_SIGC_EV_RINGING) > ring0);
    assert_int_equal(relay_client_count(b, WZP_SIGC_EV_INCOMING), inc0 + 1);
    assert_int_equal(relay_client_count(a, WZP_SIGC_EV_RINGING), ring0 + 1);
    return call;
}

/* A relay with default timers and n (2 or 3) clients with identities 0.., all
 * registered: declares rt, cs[] and the clients a, b (and c). */
#define SCENE(n)                                                                                   \
    relay_thread rt;                                                                               \
    relay_client *cs[3] = {NULL, NULL, NULL};                                                      \
    scene_start(&rt, cs, (n));                                                                     \
    relay_client *a = cs[0], *b = cs[1], *c = cs[2];                                               \
    (void)c

static void register_all(relay_client **cs, size_t n);

static void scene_start(relay_thread *rt, relay_client **cs, size_t n)
{
    start_relay(rt, 0, 0);
    for (size_t i = 0; i < n; i++)
        cs[i] = client_new(rt, (int)i, NULL);
    register_all(cs, n);
}

static void scene_end(relay_thread *rt, relay_client **cs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        client_del(cs[i]);
    relay_thread_stop(rt);
}

typedef struct call_pair {
    uint32_t call_a, call_b;
    uint32_t chan_a, chan_b;
    uint8_t id[WZP_SIG_CALL_ID_LEN];
} call_pair;

/* Full setup: A calls B, B accepts, both see CallSetup. */
static call_pair setup_call(relay_client *a, int a_id, relay_client *b, int b_id)
{
    relay_client *cs[] = {a, b};
    wzp_sig_candidate ca[2], cb[3];
    make_cands(ca, 2, "192.0.2.10", 5000);
    make_cands(cb, 3, "198.51.100.20", 6000);
    call_pair cp;
    memset(&cp, 0, sizeof(cp));
    cp.call_a = offer(a, b, b_id, ca, 2);
    const rc_event *inc = relay_client_last(b, WZP_SIGC_EV_INCOMING);
    cp.call_b = inc->call;
    memcpy(cp.id, inc->call_id, sizeof(cp.id));
    wzp_sig_params p;
    make_params(&p, 0xb2);
    size_t sa0 = relay_client_count(a, WZP_SIGC_EV_SETUP),
           sb0 = relay_client_count(b, WZP_SIGC_EV_SETUP);
    assert_int_equal(wzp_sigc_accept(b->sigc, cp.call_b, &p, cb, 3, wzp_now()), 0);
    PUMP_UNTIL(cs, 2,
               relay_client_count(a, WZP_SIGC_EV_SETUP) > sa0 &&
                   relay_client_count(b, WZP_SIGC_EV_SETUP) > sb0);
    const rc_event *sa = relay_client_last(a, WZP_SIGC_EV_SETUP);
    const rc_event *sb = relay_client_last(b, WZP_SIGC_EV_SETUP);
    assert_non_null(sa);
    assert_non_null(sb);
    assert_int_equal(relay_client_count(a, WZP_SIGC_EV_SETUP), sa0 + 1);
    assert_int_equal(relay_client_count(b, WZP_SIGC_EV_SETUP), sb0 + 1);
    /* Each side learns the other's proven identity, parameters and candidates. */
    assert_int_equal(sa->msg.u.setup.role, WZP_SIG_ROLE_CALLER);
    assert_int_equal(sb->msg.u.setup.role, WZP_SIG_ROLE_CALLEE);
    assert_memory_equal(sa->msg.u.setup.peer_fp, fps[b_id], 32);
    assert_memory_equal(sb->msg.u.setup.peer_fp, fps[a_id], 32);
    assert_memory_equal(sa->msg.u.setup.call_id, cp.id, 16);
    assert_memory_equal(sb->msg.u.setup.call_id, cp.id, 16);
    assert_int_equal(sa->msg.u.setup.peer_cands.n, 3);
    assert_int_equal(sb->msg.u.setup.peer_cands.n, 2);
    for (size_t i = 0; i < 3; i++)
        assert_true(wzp_addr_equal(&sa->msg.u.setup.peer_cands.c[i].addr, &cb[i].addr));
    for (size_t i = 0; i < 2; i++)
        assert_true(wzp_addr_equal(&sb->msg.u.setup.peer_cands.c[i].addr, &ca[i].addr));
    assert_int_equal(sa->msg.u.setup.peer_params.probe_key[0], 0xb2);
    assert_int_equal(sb->msg.u.setup.peer_params.probe_key[0], 0xa1);
    cp.chan_a = sa->msg.u.setup.relay_channel;
    cp.chan_b = sb->msg.u.setup.relay_channel;
    assert_int_not_equal(cp.chan_a, 0);
    assert_int_not_equal(cp.chan_b, 0);
    assert_int_not_equal(cp.chan_a, cp.chan_b);
    assert_int_equal(wzp_sigc_call_state_get(a->sigc, cp.call_a), WZP_SIGC_CALL_SETUP);
    assert_int_equal(wzp_sigc_call_state_get(b->sigc, cp.call_b), WZP_SIGC_CALL_SETUP);
    return cp;
}

static void register_all(relay_client **cs, size_t n)
{
    bool all = false;
    wzp_ts end = wzp_now() + WZP_SEC(WAIT_SEC);
    while (!all && wzp_now() < end) {
        relay_client_pump(cs, n, WZP_MS(20), NULL, NULL);
        all = true;
        for (size_t i = 0; i < n; i++)
            all = all && registered(cs[i]);
    }
    for (size_t i = 0; i < n; i++)
        assert_true(registered(cs[i]));
}

/* How many DATA frames on `chan` carrying exactly `payload` the client got. */
static size_t frames_with(const relay_client *c, uint32_t chan, const uint8_t *payload, size_t len)
{
    size_t k = 0;
    for (size_t i = 0; i < c->nframes; i++) {
        const rc_frame *f = &c->frames[i];
        wzp_relay_frame fr;
        if (wzp_relay_frame_decode(&fr, f->data, f->len) == 0 && fr.type == WZP_RELAY_FRAME_DATA &&
            fr.channel == chan && fr.payload_len == len && !memcmp(fr.payload, payload, len))
            k++;
    }
    return k;
}

static uint64_t data_frame_bytes(const relay_client *c)
{
    uint64_t b = 0;
    for (size_t i = 0; i < c->nframes; i++)
        if (c->frames[i].data[0] == WZP_RELAY_FRAME_DATA)
            b += c->frames[i].len;
    return b;
}

/* ---- registration -------------------------------------------------------------------- */

static void test_register_and_reflect(void **state)
{
    (void)state;
    relay_thread rt;
    start_relay(&rt, 0, 0);
    relay_client *a = client_new(&rt, 0, "alice"), *b = client_new(&rt, 1, NULL);
    relay_client *cs[] = {a, b};
    register_all(cs, 2);

    const rc_event *r = relay_client_last(a, WZP_SIGC_EV_REGISTERED);
    assert_non_null(r);
    assert_int_equal(r->msg.type, WZP_SIG_REGISTERED);
    /* Registered carries the fingerprint TLS proved and the address the relay sees us at. */
    assert_memory_equal(r->msg.u.registered.fingerprint, fps[0], 32);
    assert_true(wzp_addr_equal(&r->msg.u.registered.reflexive, &a->sock_addr));
    assert_string_equal(r->msg.u.registered.alias, "alice");
    assert_true(wzp_addr_equal(wzp_sigc_reflexive(a->sigc), &a->sock_addr));
    assert_memory_equal(a->relay_fp_seen, rt.fp, 32);
    r = relay_client_last(b, WZP_SIGC_EV_REGISTERED);
    assert_memory_equal(r->msg.u.registered.fingerprint, fps[1], 32);
    assert_true(wzp_addr_equal(&r->msg.u.registered.reflexive, &b->sock_addr));

    /* Ping / Pong. */
    assert_int_equal(wzp_sigc_ping(a->sigc, wzp_now()), 0);
    PUMP_UNTIL(cs, 2, relay_client_count(a, WZP_SIGC_EV_PONG) == 1);
    assert_int_equal(relay_client_count(a, WZP_SIGC_EV_PONG), 1);

    /* Calling by alias reaches alice, and the alias is bound to her: bob cannot take it. */
    wzp_sig_params p;
    make_params(&p, 1);
    uint32_t call;
    assert_int_equal(wzp_sigc_call_alias(b->sigc, "alice", &p, NULL, 0, &call, wzp_now()), 0);
    PUMP_UNTIL(cs, 2, relay_client_count(a, WZP_SIGC_EV_INCOMING) == 1);
    const rc_event *inc = relay_client_last(a, WZP_SIGC_EV_INCOMING);
    assert_non_null(inc);
    assert_memory_equal(inc->msg.u.incoming.caller_fp, fps[1], 32);
    assert_int_equal(wzp_sigc_hangup(b->sigc, call, false, WZP_SIG_PATH_UNSPECIFIED, wzp_now()), 0);
    PUMP_UNTIL(cs, 2, relay_client_count(a, WZP_SIGC_EV_ENDED) == 1);
    assert_int_equal(relay_client_last(a, WZP_SIGC_EV_ENDED)->reason, WZP_SIG_END_CANCELLED);

    relay_client *c = client_new(&rt, 2, "alice");
    relay_client *cs3[] = {a, b, c};
    PUMP_UNTIL(cs3, 3, relay_client_count(c, WZP_SIGC_EV_REGISTER_FAILED) == 1);
    assert_int_equal(relay_client_count(c, WZP_SIGC_EV_REGISTER_FAILED), 1);
    assert_false(registered(c));

    client_del(a);
    client_del(b);
    client_del(c);
    relay_thread_stop(&rt);
}

/* A relay that answers every new client with a Retry (threshold 0): clients
 * follow it, register and signal as usual. */
static void test_register_through_retry(void **state)
{
    (void)state;
    relay_thread rt;
    wzp_relay_server_config cfg;
    wzp_relay_server_config_default(&cfg);
    assert_int_equal(cfg.retry_threshold, 1000);
    assert_int_equal(cfg.max_handshakes_per_addr, 16);
    cfg.workers = 1;
    cfg.retry_threshold = 0;
    assert_int_equal(relay_thread_start(&rt, &cfg), 0);
    relay_client *a = client_new(&rt, 0, "alice"), *b = client_new(&rt, 1, "bob");
    relay_client *cs[] = {a, b};
    register_all(cs, 2);
    assert_true(registered(a) && registered(b));
    assert_int_equal(wzp_sigc_ping(a->sigc, wzp_now()), 0);
    PUMP_UNTIL(cs, 2, relay_client_count(a, WZP_SIGC_EV_PONG) == 1);
    assert_int_equal(relay_client_count(a, WZP_SIGC_EV_PONG), 1);
    offer(a, b, 1, NULL, 0);

    /* The counters, read once the relay's thread is done. */
    wzp_relay_server_stop(rt.srv);
    pthread_join(rt.thread, NULL);
    rt.running = false;
    wzp_relay_server_stats st;
    wzp_relay_server_get_stats(rt.srv, &st);
    assert_true(st.quic.retries_sent >= 2); /* one per client (more if an Initial was resent) */
    assert_int_equal(st.quic.conns_accepted, 2);
    assert_int_equal(st.quic.rx_bad_token, 0);
    client_del(a);
    client_del(b);
    relay_thread_stop(&rt);
}

/* ---- calls ---------------------------------------------------------------------------- */

static void test_offer_ring_accept_hangup(void **state)
{
    (void)state;
    SCENE(2);

    wzp_sig_candidate ca[2];
    make_cands(ca, 2, "192.0.2.10", 5000);
    uint32_t call_a = offer(a, b, 1, ca, 2);
    const rc_event *inc = relay_client_last(b, WZP_SIGC_EV_INCOMING);
    assert_memory_equal(inc->msg.u.incoming.caller_fp, fps[0], 32);
    assert_true(inc->has_call_id);
    assert_int_equal(wzp_sigc_call_state_get(a->sigc, call_a), WZP_SIGC_CALL_RINGING);

    /* Before the callee accepts, the caller cannot push candidates to it. */
    wzp_sig_msg up;
    wzp_sig_init(&up, WZP_SIG_CANDIDATES_UPDATE, 0x7f000001);
    memcpy(up.u.update.call_id, inc->call_id, 16);
    make_cands(up.u.update.cands.c, 1, "203.0.113.1", 7000);
    up.u.update.cands.n = 1;
    assert_int_equal(relay_client_send_sig(a, &up), 0);
    PUMP_UNTIL(cs, 2, relay_client_errors(a, WZP_SIG_ERR_STATE) == 1);
    assert_int_equal(relay_client_errors(a, WZP_SIG_ERR_STATE), 1);
    PUMP_FOR(cs, 2, 100);
    /* So far the callee got only Registered and IncomingCall: nothing with candidates. */
    assert_int_equal(b->nrx_msgs, 2);
    assert_int_equal(b->rx_msgs[0], WZP_SIG_REGISTERED);
    assert_int_equal(b->rx_msgs[1], WZP_SIG_INCOMING_CALL);
    assert_int_equal(relay_client_count(b, WZP_SIGC_EV_CANDIDATES), 0);

    /* Accept: both get CallSetup with each other's data. */
    wzp_sig_candidate cb[3];
    make_cands(cb, 3, "198.51.100.20", 6000);
    wzp_sig_params p;
    make_params(&p, 0xb2);
    assert_int_equal(wzp_sigc_accept(b->sigc, inc->call, &p, cb, 3, wzp_now()), 0);
    PUMP_UNTIL(cs, 2,
               relay_client_count(a, WZP_SIGC_EV_SETUP) == 1 &&
                   relay_client_count(b, WZP_SIGC_EV_SETUP) == 1);
    const rc_event *sb = relay_client_last(b, WZP_SIGC_EV_SETUP);
    assert_non_null(sb);
    assert_int_equal(sb->msg.u.setup.peer_cands.n, 2);
    assert_true(wzp_addr_equal(&sb->msg.u.setup.peer_cands.c[0].addr, &ca[0].addr));
    assert_memory_equal(sb->msg.u.setup.peer_fp, fps[0], 32);
    const rc_event *sa = relay_client_last(a, WZP_SIGC_EV_SETUP);
    assert_non_null(sa);
    assert_int_equal(sa->msg.u.setup.peer_cands.n, 3);
    assert_memory_equal(sa->msg.u.setup.peer_fp, fps[1], 32);

    /* After setup, candidates updates flow between the parties. */
    assert_int_equal(wzp_sigc_update_candidates(a->sigc, call_a, up.u.update.cands.c, 1, wzp_now()),
                     0);
    PUMP_UNTIL(cs, 2, relay_client_count(b, WZP_SIGC_EV_CANDIDATES) == 1);
    assert_int_equal(relay_client_count(b, WZP_SIGC_EV_CANDIDATES), 1);

    /* Hang-up: the other side is told. */
    assert_int_equal(wzp_sigc_hangup(a->sigc, call_a, false, WZP_SIG_PATH_UNSPECIFIED, wzp_now()),
                     0);
    PUMP_UNTIL(cs, 2, relay_client_count(b, WZP_SIGC_EV_ENDED) == 1);
    const rc_event *e = relay_client_last(b, WZP_SIGC_EV_ENDED);
    assert_non_null(e);
    assert_int_equal(e->reason, WZP_SIG_END_HANGUP);
    assert_int_equal(e->err, WZP_ERR_HANGUP);
    assert_int_equal(relay_client_count(a, WZP_SIGC_EV_ENDED), 0); /* ended locally */

    /* A new call between the same two works (the relay let go of the old one). */
    setup_call(a, 0, b, 1);

    scene_end(&rt, cs, 2);
}

static void test_reject_cancel_busy(void **state)
{
    (void)state;
    SCENE(3);

    /* Reject. */
    offer(a, b, 1, NULL, 0);
    assert_int_equal(
        wzp_sigc_reject(b->sigc, relay_client_last(b, WZP_SIGC_EV_INCOMING)->call, wzp_now()), 0);
    PUMP_UNTIL(cs, 3, relay_client_count(a, WZP_SIGC_EV_ENDED) == 1);
    assert_int_equal(relay_client_last(a, WZP_SIGC_EV_ENDED)->reason, WZP_SIG_END_REJECTED);
    assert_int_equal(relay_client_last(a, WZP_SIGC_EV_ENDED)->err, WZP_ERR_REJECTED);

    /* Cancel. */
    uint32_t call = offer(a, b, 1, NULL, 0);
    assert_int_equal(wzp_sigc_cancel(a->sigc, call, wzp_now()), 0);
    PUMP_UNTIL(cs, 3, relay_client_count(b, WZP_SIGC_EV_ENDED) == 1);
    assert_int_equal(relay_client_last(b, WZP_SIGC_EV_ENDED)->reason, WZP_SIG_END_CANCELLED);

    /* Busy: B is in a call with A; C calling B is told BUSY. */
    setup_call(a, 0, b, 1);
    wzp_sig_params p;
    make_params(&p, 3);
    assert_int_equal(wzp_sigc_call_fp(c->sigc, fps[1], NULL, &p, NULL, 0, &call, wzp_now()), 0);
    PUMP_UNTIL(cs, 3, relay_client_count(c, WZP_SIGC_EV_ENDED) == 1);
    assert_int_equal(relay_client_last(c, WZP_SIGC_EV_ENDED)->reason, WZP_SIG_END_BUSY);
    /* Calling an identity nobody registered: OFFLINE. */
    assert_int_equal(wzp_sigc_call_fp(c->sigc, fps[3], NULL, &p, NULL, 0, &call, wzp_now()), 0);
    PUMP_UNTIL(cs, 3, relay_client_count(c, WZP_SIGC_EV_ENDED) == 2);
    assert_int_equal(relay_client_last(c, WZP_SIGC_EV_ENDED)->reason, WZP_SIG_END_OFFLINE);

    scene_end(&rt, cs, 3);
}

static void test_ring_expiry(void **state)
{
    (void)state;
    relay_thread rt;
    start_relay(&rt, WZP_MS(1500), 0);
    relay_client *a = client_new(&rt, 0, NULL), *b = client_new(&rt, 1, NULL);
    relay_client *cs[] = {a, b};
    register_all(cs, 2);
    offer(a, b, 1, NULL, 0);
    /* Nobody answers. */
    PUMP_UNTIL(cs, 2,
               relay_client_count(a, WZP_SIGC_EV_ENDED) == 1 &&
                   relay_client_count(b, WZP_SIGC_EV_ENDED) == 1);
    assert_int_equal(relay_client_last(a, WZP_SIGC_EV_ENDED)->reason, WZP_SIG_END_EXPIRED);
    assert_int_equal(relay_client_last(b, WZP_SIGC_EV_ENDED)->reason, WZP_SIG_END_EXPIRED);
    assert_int_equal(relay_client_last(a, WZP_SIGC_EV_ENDED)->err, WZP_ERR_EXPIRED);
    /* The expired call cannot be accepted any more. */
    wzp_sig_params p;
    make_params(&p, 2);
    assert_true(wzp_sigc_accept(b->sigc, relay_client_last(b, WZP_SIGC_EV_INCOMING)->call, &p, NULL,
                                0, wzp_now()) < 0);
    client_del(a);
    client_del(b);
    relay_thread_stop(&rt);
}

/* ---- control connections that end -------------------------------------------------- */

static void test_peer_vanishes(void **state)
{
    (void)state;
    relay_thread rt;
    start_relay(&rt, 0, WZP_SEC(2)); /* the relay's idle timeout notices a silent client */
    relay_client *a = client_new(&rt, 0, NULL), *b = client_new(&rt, 1, NULL);
    relay_client *cs[] = {a, b};
    register_all(cs, 2);
    setup_call(a, 0, b, 1);
    /* A vanishes: no CONNECTION_CLOSE, nothing. */
    relay_client_free(a);
    relay_client *only_b[] = {b};
    /* B sends pings (it is active, so its own connection stays up). */
    wzp_ts end = wzp_now() + WZP_SEC(WAIT_SEC);
    while (relay_client_count(b, WZP_SIGC_EV_ENDED) == 0 && wzp_now() < end) {
        wzp_sigc_ping(b->sigc, wzp_now());
        relay_client_pump(only_b, 1, WZP_MS(300), NULL, NULL);
    }
    const rc_event *e = relay_client_last(b, WZP_SIGC_EV_ENDED);
    assert_non_null(e);
    assert_int_equal(e->reason, WZP_SIG_END_PEER_GONE);
    assert_int_equal(b->closed, 0);
    free(a);
    /* A comes back on a new connection: registered again, reachable again. */
    a = client_new(&rt, 0, NULL);
    relay_client *cs2[] = {a, b};
    register_all(cs2, 2);
    setup_call(b, 1, a, 0);
    client_del(a);
    client_del(b);
    relay_thread_stop(&rt);
}

static void test_peer_closes(void **state)
{
    (void)state;
    SCENE(2);
    call_pair cp = setup_call(a, 0, b, 1);
    relay_client_close(a, 0);
    PUMP_UNTIL(cs, 2, relay_client_count(b, WZP_SIGC_EV_ENDED) == 1);
    const rc_event *e = relay_client_last(b, WZP_SIGC_EV_ENDED);
    assert_non_null(e);
    assert_int_equal(e->reason, WZP_SIG_END_PEER_GONE);
    /* A's channel is closed with the call: B's frames go nowhere. */
    uint8_t pl[] = "after close";
    relay_client_send_frame(b, WZP_RELAY_FRAME_DATA, cp.chan_b, pl, sizeof(pl));
    PUMP_FOR(cs, 2, 200);
    assert_int_equal(frames_with(a, cp.chan_a, pl, sizeof(pl)), 0);
    scene_end(&rt, cs, 2);
}

static void test_second_registration_replaces_first(void **state)
{
    (void)state;
    relay_thread rt;
    start_relay(&rt, 0, 0);
    relay_client *a1 = client_new(&rt, 0, "alice"), *b = client_new(&rt, 1, NULL);
    relay_client *cs[] = {a1, b};
    register_all(cs, 2);
    setup_call(a1, 0, b, 1);

    relay_client *a2 = client_new(&rt, 0, "alice");
    relay_client *cs3[] = {a1, b, a2};
    PUMP_UNTIL(cs3, 3, registered(a2) && a1->closed && relay_client_count(b, WZP_SIGC_EV_ENDED));
    assert_true(registered(a2));
    /* The first connection is closed by the relay with "replaced"... */
    assert_int_equal(a1->closed, 1);
    assert_true(a1->close_by_peer);
    assert_int_equal(a1->close_err, 0);
    assert_int_equal(a1->close_app, 0x100 + 1);
    assert_false(registered(a1));
    /* ...its call ends for the peer... */
    assert_int_equal(relay_client_last(b, WZP_SIGC_EV_ENDED)->reason, WZP_SIG_END_PEER_GONE);
    /* ...and the identity (and its alias) now live on the new connection. */
    const rc_event *r = relay_client_last(a2, WZP_SIGC_EV_REGISTERED);
    assert_memory_equal(r->msg.u.registered.fingerprint, fps[0], 32);
    assert_string_equal(r->msg.u.registered.alias, "alice");
    setup_call(b, 1, a2, 0);
    client_del(a1);
    client_del(a2);
    client_del(b);
    relay_thread_stop(&rt);
}

/* An alias stays with its key while the key is away, also across a relay
 * restart (the bindings file in the relay's home); a corrupt file stops the
 * relay from starting. */
static void test_alias_survives_restart(void **state)
{
    (void)state;
    relay_thread rt;
    start_relay(&rt, 0, 0);
    relay_client *a = client_new(&rt, 0, "alice");
    register_all(&a, 1);
    client_del(a);

    assert_int_equal(relay_thread_restart(&rt), 0);
    char path[300];
    snprintf(path, sizeof(path), "%s/aliases", rt.home);
    assert_int_equal(access(path, R_OK), 0);

    /* Another key asking for "alice" right after the restart is refused... */
    relay_client *m = client_new(&rt, 1, "alice");
    PUMP_UNTIL(&m, 1, relay_client_count(m, WZP_SIGC_EV_REGISTER_FAILED) > 0);
    const rc_event *f = relay_client_last(m, WZP_SIGC_EV_REGISTER_FAILED);
    assert_non_null(f);
    assert_int_equal(f->err, WZP_ERR_ALIAS_TAKEN);
    client_del(m);
    /* ...and the owner gets it back. */
    a = client_new(&rt, 0, "alice");
    register_all(&a, 1);
    assert_string_equal(relay_client_last(a, WZP_SIGC_EV_REGISTERED)->msg.u.registered.alias,
                        "alice");
    client_del(a);

    /* A damaged file: the relay refuses to start rather than forget bindings. */
    relay_thread_halt(&rt);
    FILE *fh = fopen(path, "r+");
    assert_non_null(fh);
    assert_int_equal(fseek(fh, 20, SEEK_SET), 0);
    fputs("ZZ", fh);
    fclose(fh);
    assert_int_equal(relay_thread_restart(&rt), WZP_ERR_MALFORMED);
    relay_thread_stop(&rt);
}

/* One address may hold max_conns_per_addr control connections; the next is
 * told "full" and closed; when they go, the address can connect again. */
static void test_per_ip_connection_cap(void **state)
{
    (void)state;
    wzp_relay_server_config cfg;
    wzp_relay_server_config_default(&cfg);
    cfg.workers = 1;
    cfg.control.max_conns_per_addr = 2;
    relay_thread rt;
    assert_int_equal(relay_thread_start(&rt, &cfg), 0);
    relay_client *a = client_new(&rt, 0, NULL), *b = client_new(&rt, 1, NULL);
    relay_client *cs[] = {a, b};
    register_all(cs, 2);
    relay_client *c = client_new(&rt, 2, NULL);
    relay_client *cs3[] = {a, b, c};
    PUMP_UNTIL(cs3, 3, c->closed);
    assert_int_equal(c->closed, 1);
    assert_true(c->close_by_peer);
    assert_int_equal(c->close_app, 0x100 + WZP_RELAY_CLOSE_ADDR_LIMIT);
    assert_false(registered(c));
    PUMP_FOR(cs3, 3, 100);
    assert_true(registered(a) && registered(b));
    client_bye(a);
    client_bye(b);
    client_del(c);
    /* The slots come back once the relay has seen the connections go. */
    relay_client *d = NULL;
    wzp_ts end = wzp_now() + WZP_SEC(WAIT_SEC);
    while (wzp_now() < end) {
        d = client_new(&rt, 3, NULL);
        PUMP_UNTIL(&d, 1, registered(d) || d->closed);
        if (registered(d))
            break;
        client_del(d);
        d = NULL;
    }
    assert_non_null(d);
    assert_true(registered(d));
    client_del(d);
    relay_thread_stop(&rt);
}

/* Bad messages on the control stream: answered with errors, then the
 * connection is closed; an oversized one is refused by the transport. */
static void test_bad_messages_close_the_connection(void **state)
{
    (void)state;
    SCENE(2);
    uint8_t junk[64];
    memset(junk, 0xee, sizeof(junk));
    assert_int_equal(wzp_quic_conn_send_message(a->conn, junk, sizeof(junk)), 0);
    PUMP_UNTIL(cs, 2, relay_client_errors(a, WZP_SIG_ERR_MALFORMED) == 1);
    assert_int_equal(relay_client_errors(a, WZP_SIG_ERR_MALFORMED), 1);
    assert_int_equal(a->closed, 0);
    for (int i = 0; i < 20 && a->conn; i++) {
        wzp_quic_conn_send_message(a->conn, junk, sizeof(junk));
        PUMP_FOR(cs, 2, 20);
    }
    PUMP_UNTIL(cs, 2, a->closed == 1);
    assert_int_equal(a->closed, 1);
    assert_true(a->close_by_peer);
    assert_int_equal(a->close_app, 0x100 + 4); /* WZP_RELAY_CLOSE_BAD_MESSAGES */

    /* Over WZP_SIG_MAX_SIZE: the relay's QUIC layer refuses to buffer it. */
    static uint8_t big[WZP_SIG_MAX_SIZE + 100];
    assert_int_equal(wzp_quic_conn_send_message(b->conn, big, sizeof(big)), 0);
    PUMP_UNTIL(cs, 2, b->closed == 1);
    assert_int_equal(b->closed, 1);
    assert_true(b->close_by_peer);
    assert_int_equal(b->close_err, WZP_ERR_PROTOCOL);

    /* Others are unaffected. */
    c = client_new(&rt, 2, NULL);
    relay_client *cc[] = {c};
    register_all(cc, 1);
    client_del(a);
    client_del(b);
    client_del(c);
    relay_thread_stop(&rt);
}

/* Stopping the relay closes every control connection politely. */
static void test_relay_shutdown_closes_clients(void **state)
{
    (void)state;
    SCENE(2);
    setup_call(a, 0, b, 1);
    relay_thread_stop(&rt);
    PUMP_UNTIL(cs, 2, a->closed && b->closed);
    assert_int_equal(a->closed, 1);
    assert_int_equal(b->closed, 1);
    assert_true(a->close_by_peer);
    assert_int_equal(a->close_err, 0);
    assert_int_equal(a->close_app, 0);
    /* The signal clients learn the control connection is gone. */
    assert_false(registered(a));
    assert_int_equal(relay_client_last(a, WZP_SIGC_EV_ENDED)->err, WZP_ERR_UNREACHABLE);
    client_del(a);
    client_del(b);
}

/* ---- identity: nobody can act as someone else ------------------------------------- */

static void creds_none(wzp_quic_endpoint *ep, void *arg)
{
    (void)arg;
    /* Credentials with no certificate: the client answers the relay's
     * CertificateRequest with an empty Certificate. */
    gnutls_certificate_free_credentials(ep->cred);
    assert_int_equal(gnutls_certificate_allocate_credentials(&ep->cred), 0);
}

typedef struct stolen_cert {
    char crt[300], key[300];
} stolen_cert;

static void creds_stolen(wzp_quic_endpoint *ep, void *arg)
{
    stolen_cert *sc = arg;
    /* The victim's certificate with the attacker's key: CertificateVerify cannot match. */
    gnutls_certificate_free_credentials(ep->cred);
    assert_int_equal(gnutls_certificate_allocate_credentials(&ep->cred), 0);
    gnutls_certificate_set_flags(ep->cred, GNUTLS_CERTIFICATE_SKIP_KEY_CERT_MATCH);
    assert_int_equal(
        gnutls_certificate_set_x509_key_file(ep->cred, sc->crt, sc->key, GNUTLS_X509_FMT_PEM), 0);
}

static void test_cannot_act_as_someone_else(void **state)
{
    (void)state;
    SCENE(3);
    /* C pins the relay correctly but presents its own key: it is just C. */
    assert_memory_equal(relay_client_last(c, WZP_SIGC_EV_REGISTERED)->msg.u.registered.fingerprint,
                        fps[2], 32);
    call_pair cp = setup_call(a, 0, b, 1);

    /* C acts on A and B's call: answered exactly as for a call that does not exist. */
    wzp_sig_type kinds[] = {WZP_SIG_HANGUP, WZP_SIG_CANCEL, WZP_SIG_REJECT, WZP_SIG_ACCEPT,
                            WZP_SIG_CANDIDATES_UPDATE};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        wzp_sig_msg m;
        wzp_sig_init(&m, kinds[i], 0x7f000100 + i);
        switch (kinds[i]) {
        case WZP_SIG_HANGUP:
            memcpy(m.u.end.call_id, cp.id, 16);
            m.u.end.reason = WZP_SIG_END_HANGUP;
            break;
        case WZP_SIG_ACCEPT:
            memcpy(m.u.accept.call_id, cp.id, 16);
            break;
        case WZP_SIG_CANDIDATES_UPDATE:
            memcpy(m.u.update.call_id, cp.id, 16);
            break;
        default:
            memcpy(m.u.call.call_id, cp.id, 16);
            break;
        }
        assert_int_equal(relay_client_send_sig(c, &m), 0);
    }
    PUMP_UNTIL(cs, 3, relay_client_errors(c, WZP_SIG_ERR_NO_SUCH_CALL) == 5);
    assert_int_equal(relay_client_errors(c, WZP_SIG_ERR_NO_SUCH_CALL), 5);
    /* The call is untouched. */
    assert_int_equal(relay_client_count(a, WZP_SIGC_EV_ENDED), 0);
    assert_int_equal(relay_client_count(b, WZP_SIGC_EV_ENDED), 0);
    uint8_t pl[] = "still here";
    relay_client_send_frame(a, WZP_RELAY_FRAME_DATA, cp.chan_a, pl, sizeof(pl));
    PUMP_UNTIL(cs, 3, frames_with(b, cp.chan_b, pl, sizeof(pl)) == 1);
    assert_int_equal(frames_with(b, cp.chan_b, pl, sizeof(pl)), 1);

    /* A client presenting no certificate must prove its key with Auth first: one that
     * registers straight away is closed, never registered (tests/unit/test_relay_auth.c). */
    relay_client *x = calloc(1, sizeof(*x));
    relay_client_opts o = {.auto_register = true, .before_connect = creds_none};
    assert_int_equal(relay_client_start(x, ids[3], &rt.addr, rt.fp, &o), 0);
    relay_client *cx[] = {x};
    PUMP_UNTIL(cx, 1, x->closed == 1);
    assert_int_equal(x->closed, 1);
    assert_int_equal(relay_client_count(x, WZP_SIGC_EV_REGISTERED), 0);
    assert_int_equal(x->close_app, WZP_SIG_CLOSE_AUTH);
    assert_true(x->close_by_peer);
    client_del(x);

    /* Nor can one present A's certificate without A's key. */
    char dir_a[] = "/tmp/wzp-relaytest-a-XXXXXX", dir_m[] = "/tmp/wzp-relaytest-m-XXXXXX";
    assert_non_null(mkdtemp(dir_a));
    assert_non_null(mkdtemp(dir_m));
    wzp_identity *va, *vm;
    assert_int_equal(wzp_identity_load_or_create(dir_a, &va, NULL), 0);
    assert_int_equal(wzp_identity_load_or_create(dir_m, &vm, NULL), 0);
    stolen_cert sc;
    snprintf(sc.crt, sizeof(sc.crt), "%s/identity.crt", dir_a);
    snprintf(sc.key, sizeof(sc.key), "%s/identity.key", dir_m);
    relay_client *victim = calloc(1, sizeof(*victim));
    relay_client_opts ov = {.auto_register = true};
    assert_int_equal(relay_client_start(victim, va, &rt.addr, rt.fp, &ov), 0);
    relay_client *cv[] = {victim};
    register_all(cv, 1);
    x = calloc(1, sizeof(*x));
    o.before_connect = creds_stolen;
    o.before_connect_arg = &sc;
    assert_int_equal(relay_client_start(x, vm, &rt.addr, rt.fp, &o), 0);
    relay_client *cxv[] = {x, victim};
    PUMP_UNTIL(cxv, 2, x->closed == 1);
    assert_int_equal(x->closed, 1);
    assert_int_equal(x->established, 0);
    assert_int_equal(x->close_err, WZP_ERR_TLS); /* the relay's alert: bad CertificateVerify */
    assert_true(x->close_by_peer);
    assert_int_equal(relay_client_count(x, WZP_SIGC_EV_REGISTERED), 0);
    PUMP_FOR(cxv, 2, 200);
    /* The victim's registration is untouched. */
    assert_int_equal(victim->closed, 0);
    assert_true(registered(victim));
    client_del(x);
    client_del(victim);
    wzp_identity_free(va);
    wzp_identity_free(vm);
    char cmd[200];
    snprintf(cmd, sizeof(cmd), "rm -rf %s %s", dir_a, dir_m);
    assert_int_equal(system(cmd), 0);

    scene_end(&rt, cs, 3);
}

static void test_wrong_relay_pin(void **state)
{
    (void)state;
    relay_thread rt;
    start_relay(&rt, 0, 0);
    relay_client *x = calloc(1, sizeof(*x));
    relay_client_opts o = {.auto_register = true};
    /* Pins some other key than the relay's. */
    assert_int_equal(relay_client_start(x, ids[0], &rt.addr, fps[3], &o), 0);
    relay_client *cs[] = {x};
    PUMP_UNTIL(cs, 1, x->closed == 1);
    assert_int_equal(x->closed, 1);
    assert_int_equal(x->established, 0);
    assert_int_equal(x->close_err, WZP_ERR_PIN_MISMATCH);
    assert_false(x->close_by_peer);
    client_del(x);
    /* The relay is fine afterwards. */
    relay_client *a = client_new(&rt, 0, NULL);
    relay_client *ca[] = {a};
    register_all(ca, 1);
    client_del(a);
    relay_thread_stop(&rt);
}

/* ---- STUN on the relay port ------------------------------------------------------------ */

static void test_stun_binding(void **state)
{
    (void)state;
    relay_thread rt;
    start_relay(&rt, 0, 0);
    wzp_addr any;
    wzp_addr_parse(&any, "127.0.0.1:0", false);
    wzp_addr me;
    int fd = wzp_udp_open(&any, NULL, &me);
    assert_true(fd >= 0);
    wzp_stun_config scfg;
    wzp_stun_config_default(&scfg);
    scfg.rto = WZP_MS(200);
    wzp_stun_txn t;
    assert_int_equal(wzp_stun_txn_start(&t, &scfg, &rt.addr, wzp_now()), 0);
    wzp_ts end = wzp_now() + WZP_SEC(WAIT_SEC);
    while (t.state == WZP_STUN_TXN_PENDING && wzp_now() < end) {
        wzp_ts now = wzp_now();
        if (wzp_stun_txn_deadline(&t) <= now) {
            uint8_t req[WZP_STUN_REQ_MAX];
            wzp_addr to;
            int n = wzp_stun_txn_poll(&t, now, req, sizeof(req), &to);
            if (n > 0)
                wzp_udp_send(fd, &to, req, (size_t)n);
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, 50) > 0) {
            uint8_t buf[1500];
            wzp_udp_msg m = {.data = buf, .cap = sizeof(buf)};
            if (wzp_udp_recv_batch(fd, &m, 1) == 1)
                wzp_stun_txn_recv(&t, &m.peer, m.data, m.len, wzp_now());
        }
    }
    assert_int_equal(t.state, WZP_STUN_TXN_DONE);
    assert_true(wzp_addr_equal(&t.mapped, &me));
    close(fd);

    /* A STUN client that is not ours: coturn's turnutils_stunclient, if installed. */
    if (access("/usr/bin/turnutils_stunclient", X_OK) == 0) {
        char cmd[256];
        snprintf(cmd, sizeof(cmd), "timeout 10 /usr/bin/turnutils_stunclient -p %u 127.0.0.1 2>&1",
                 (unsigned)wzp_addr_port(&rt.addr));
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        char line[512];
        bool mapped = false;
        while (fgets(line, sizeof(line), p))
            if (strstr(line, "UDP reflexive addr: 127.0.0.1:"))
                mapped = true;
        int st = pclose(p);
        assert_true(WIFEXITED(st));
        assert_true(mapped);
    } else {
        printf("turnutils_stunclient not installed: skipping the coturn client check\n");
    }
    relay_thread_stop(&rt);
}

/* ---- relay frames --------------------------------------------------------------------- */

static void test_relay_frames(void **state)
{
    (void)state;
    SCENE(2);
    call_pair cp = setup_call(a, 0, b, 1);

    /* 20 frames each way with distinct payloads, all arrive untouched with the receiver's channel.
     */
    enum { N = 20 };
    uint8_t pa[N][100], pb[N][60];
    for (int i = 0; i < N; i++) {
        wzp_random(pa[i], sizeof(pa[i]));
        wzp_random(pb[i], sizeof(pb[i]));
        assert_int_equal(relay_client_send_frame(a, WZP_RELAY_FRAME_DATA, cp.chan_a, pa[i], 100),
                         0);
        assert_int_equal(relay_client_send_frame(b, WZP_RELAY_FRAME_DATA, cp.chan_b, pb[i], 60), 0);
    }
    PUMP_UNTIL(cs, 2, b->nframes >= N && a->nframes >= N);
    PUMP_FOR(cs, 2, 100);
    for (int i = 0; i < N; i++) {
        assert_int_equal(frames_with(b, cp.chan_b, pa[i], 100), 1);
        assert_int_equal(frames_with(a, cp.chan_a, pb[i], 60), 1);
    }
    for (size_t i = 0; i < b->nframes; i++)
        assert_true(wzp_addr_equal(&b->frames[i].from, &rt.addr));

    /* Keep-alive: answered with an ACK no longer than the request. */
    uint8_t nonce[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    size_t before = a->nframes;
    assert_int_equal(relay_client_send_frame(a, WZP_RELAY_FRAME_KEEPALIVE, cp.chan_a, nonce, 8), 0);
    PUMP_UNTIL(cs, 2, a->nframes > before);
    assert_int_equal(a->nframes, before + 1);
    assert_int_equal(a->frames[before].data[0], WZP_RELAY_FRAME_KEEPALIVE_ACK);
    assert_true(a->frames[before].len <= WZP_RELAY_FRAME_HDR + 8);

    /* A third socket sending on A's channel is dropped. */
    relay_client *x = client_new(&rt, 2, NULL);
    relay_client *cs3[] = {a, b, x};
    register_all(cs3, 3);
    size_t nb = b->nframes, na = a->nframes;
    uint8_t evil[] = "injected";
    for (int i = 0; i < 5; i++) {
        relay_client_send_frame(x, WZP_RELAY_FRAME_DATA, cp.chan_a, evil, sizeof(evil));
        relay_client_send_frame(x, WZP_RELAY_FRAME_DATA, cp.chan_b, evil, sizeof(evil));
        relay_client_send_frame(x, WZP_RELAY_FRAME_KEEPALIVE, cp.chan_a, evil, sizeof(evil));
    }
    PUMP_FOR(cs3, 3, 300);
    assert_int_equal(b->nframes, nb);
    assert_int_equal(a->nframes, na);
    assert_int_equal(x->nframes, 0);

    /* Byte accounting: nobody got more relay-frame bytes than its peer sent. */
    uint64_t a_sent = (uint64_t)N * (WZP_RELAY_FRAME_HDR + 100);
    uint64_t b_sent = (uint64_t)N * (WZP_RELAY_FRAME_HDR + 60);
    assert_int_equal(data_frame_bytes(b), a_sent);
    assert_int_equal(data_frame_bytes(a), b_sent);
    assert_true(x->rx_other_bytes <= x->tx_raw_bytes);

    /* After hang-up the channels are gone. */
    assert_int_equal(
        wzp_sigc_hangup(a->sigc, cp.call_a, false, WZP_SIG_PATH_UNSPECIFIED, wzp_now()), 0);
    PUMP_UNTIL(cs3, 3, relay_client_count(b, WZP_SIGC_EV_ENDED) == 1);
    nb = b->nframes;
    relay_client_send_frame(a, WZP_RELAY_FRAME_DATA, cp.chan_a, pa[0], 100);
    PUMP_FOR(cs3, 3, 300);
    assert_int_equal(b->nframes, nb);

    client_del(a);
    client_del(b);
    client_del(x);
    relay_thread_stop(&rt);
}

/* ---- garbage on the relay port ------------------------------------------------------ */

typedef struct initial_cap {
    uint8_t pkt[1500];
    size_t len;
} initial_cap;

static void capture_initial(void *user, const wzp_addr *l, const wzp_addr *r, const uint8_t *pkt,
                            size_t len)
{
    initial_cap *ic = user;
    (void)l;
    (void)r;
    if (!ic->len && len <= sizeof(ic->pkt)) {
        memcpy(ic->pkt, pkt, len);
        ic->len = len;
    }
}

static void test_garbage(void **state)
{
    (void)state;
    SCENE(2);
    call_pair cp = setup_call(a, 0, b, 1);

    wzp_addr any;
    wzp_addr_parse(&any, "127.0.0.1:0", false);
    int gfd = wzp_udp_open(&any, NULL, NULL);
    assert_true(gfd >= 0);
    /* A real Initial, to send truncated: what a throwaway client endpoint writes. */
    initial_cap ic = {0};
    {
        wzp_quic_endpoint *ep;
        wzp_quic_conn *qc;
        wzp_quic_endpoint_config ecfg;
        wzp_quic_endpoint_config_default(&ecfg);
        ecfg.id = ids[2];
        assert_int_equal(wzp_quic_endpoint_new(&ep, &ecfg), 0);
        wzp_quic_conn_config o;
        wzp_quic_conn_config_default(&o);
        memcpy(o.pin, rt.fp, 32);
        assert_int_equal(wzp_quic_connect(ep, &any, &rt.addr, &o, wzp_now(), &qc), 0);
        wzp_quic_endpoint_flush(ep, wzp_now(), capture_initial, &ic);
        wzp_quic_endpoint_free(ep);
    }
    assert_true(ic.len >= 1200);

    uint64_t sent_bytes = 0;
    uint8_t buf[3000];
    struct {
        uint8_t first;
        size_t len;
    } shapes[] = {
        {0x00, 1},  {0x00, 19},   {0x00, 20}, {0x00, 100},  /* STUN-ish */
        {0xc0, 1},  {0xc0, 7},    {0xc0, 30}, {0xc0, 1200}, /* long header QUIC */
        {0x40, 1},  {0x40, 25},   {0x40, 60},               /* short header QUIC */
        {0x80, 1},  {0x80, 4},    {0x80, 5},  {0x80, 50},   /* relay DATA */
        {0x81, 5},  {0x82, 9},    {0x8f, 20},               /* relay others */
        {0x20, 10}, {0xff, 2500}, {0x7f, 33},               /* other, oversize */
    };
    for (int round = 0; round < 20; round++) {
        for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
            wzp_random(buf, shapes[i].len);
            buf[0] = shapes[i].first;
            if (shapes[i].first == 0x00 && shapes[i].len >= 20) {
                /* Framed STUN with a bad body: cookie and length right. */
                buf[0] = 0;
                buf[1] = 1;
                buf[2] = (uint8_t)((shapes[i].len - 20) >> 8);
                buf[3] = (uint8_t)(shapes[i].len - 20);
                buf[4] = 0x21;
                buf[5] = 0x12;
                buf[6] = 0xa4;
                buf[7] = 0x42;
            }
            if (shapes[i].first == 0x80 && shapes[i].len >= 5 && round % 2) {
                /* A real channel id from a wrong source. */
                buf[1] = (uint8_t)(cp.chan_a >> 24);
                buf[2] = (uint8_t)(cp.chan_a >> 16);
                buf[3] = (uint8_t)(cp.chan_a >> 8);
                buf[4] = (uint8_t)cp.chan_a;
            }
            if (wzp_udp_send(gfd, &rt.addr, buf, shapes[i].len) == 0)
                sent_bytes += shapes[i].len;
        }
        /* The same garbage from the clients' own sockets (the addresses the relay knows). */
        wzp_random(buf, 64);
        buf[0] = 0x80 | (uint8_t)(round & 0x0f);
        relay_client_send_raw(a, buf, 64);
        wzp_random(buf, 40);
        buf[0] = 0xc0;
        relay_client_send_raw(b, buf, 40);
        PUMP_FOR(cs, 2, 10);
    }
    /* Truncated copies of a valid Initial, and the whole of it with bytes flipped. */
    for (size_t cut = 1; cut < ic.len; cut += 97) {
        if (wzp_udp_send(gfd, &rt.addr, ic.pkt, cut) == 0)
            sent_bytes += cut;
    }
    for (int i = 0; i < 10; i++) {
        uint8_t bad[1500];
        memcpy(bad, ic.pkt, ic.len);
        bad[20 + (size_t)i * 100] ^= 0x5a;
        if (wzp_udp_send(gfd, &rt.addr, bad, ic.len) == 0)
            sent_bytes += ic.len;
    }
    PUMP_FOR(cs, 2, 300);

    /* The relay is still there: the call still forwards, new clients register, pings answer. */
    uint8_t pl[] = "survived";
    assert_int_equal(relay_client_send_frame(a, WZP_RELAY_FRAME_DATA, cp.chan_a, pl, sizeof(pl)),
                     0);
    PUMP_UNTIL(cs, 2, frames_with(b, cp.chan_b, pl, sizeof(pl)) == 1);
    assert_int_equal(frames_with(b, cp.chan_b, pl, sizeof(pl)), 1);
    c = client_new(&rt, 2, NULL);
    relay_client *cs3[] = {a, b, c};
    register_all(cs3, 3);
    assert_int_equal(wzp_sigc_ping(a->sigc, wzp_now()), 0);
    PUMP_UNTIL(cs3, 3, relay_client_count(a, WZP_SIGC_EV_PONG) == 1);
    assert_int_equal(relay_client_count(a, WZP_SIGC_EV_PONG), 1);
    assert_int_equal(a->closed + b->closed, 0);
    assert_int_equal(
        relay_client_count(a, WZP_SIGC_EV_ENDED) + relay_client_count(b, WZP_SIGC_EV_ENDED), 0);

    /* What came back to the garbage socket: never more than it sent. */
    uint64_t got_bytes = 0;
    for (;;) {
        uint8_t in[2048];
        wzp_udp_msg m = {.data = in, .cap = sizeof(in)};
        if (wzp_udp_recv_batch(gfd, &m, 1) != 1)
            break;
        got_bytes += m.len;
    }
    assert_true(got_bytes <= sent_bytes);
    close(gfd);
    client_del(a);
    client_del(b);
    client_del(c);
    relay_thread_stop(&rt);
}

/* ---- NAT rebinding ------------------------------------------------------------------------ */

static void rebinding(bool tell_quic)
{
    SCENE(2);
    call_pair cp = setup_call(a, 0, b, 1);
    wzp_addr old = a->sock_addr;

    assert_int_equal(relay_client_rebind(a, tell_quic), 0);
    assert_false(wzp_addr_equal(&old, &a->sock_addr));
    /* Traffic on the control connection from the new port: QUIC validates the
     * new path, the relay tells A its new reflexive address. */
    wzp_ts end = wzp_now() + WZP_SEC(WAIT_SEC);
    while (relay_client_count(a, WZP_SIGC_EV_REFLEXIVE) == 0 && wzp_now() < end) {
        wzp_sigc_ping(a->sigc, wzp_now());
        relay_client_pump(cs, 2, WZP_MS(100), NULL, NULL);
    }
    const rc_event *r = relay_client_last(a, WZP_SIGC_EV_REFLEXIVE);
    assert_non_null(r);
    assert_true(wzp_addr_equal(&r->msg.u.reflexive.reflexive, &a->sock_addr));
    assert_int_equal(a->closed, 0);

    /* The channel followed: frames from the new port are forwarded, and B's reach the new port. */
    uint8_t pa[] = "from the new port", pb[] = "to the new port";
    relay_client_send_frame(a, WZP_RELAY_FRAME_DATA, cp.chan_a, pa, sizeof(pa));
    relay_client_send_frame(b, WZP_RELAY_FRAME_DATA, cp.chan_b, pb, sizeof(pb));
    PUMP_UNTIL(cs, 2,
               frames_with(b, cp.chan_b, pa, sizeof(pa)) == 1 &&
                   frames_with(a, cp.chan_a, pb, sizeof(pb)) == 1);
    assert_int_equal(frames_with(b, cp.chan_b, pa, sizeof(pa)), 1);
    assert_int_equal(frames_with(a, cp.chan_a, pb, sizeof(pb)), 1);
    /* The old port no longer owns the channel. */
    int ofd = -1;
    {
        wzp_addr bound;
        ofd = wzp_udp_open(&old, NULL, &bound); /* the old port is free again */
        if (ofd >= 0) {
            uint8_t fr[32];
            int n = wzp_relay_frame_encode(fr, sizeof(fr), WZP_RELAY_FRAME_DATA, cp.chan_a,
                                           (const uint8_t *)"stale", 5);
            size_t nb = b->nframes;
            wzp_udp_send(ofd, &rt.addr, fr, (size_t)n);
            PUMP_FOR(cs, 2, 300);
            assert_int_equal(b->nframes, nb);
            close(ofd);
        }
    }
    scene_end(&rt, cs, 2);
}

static void test_nat_rebinding(void **state)
{
    (void)state;
    rebinding(false);
}

static void test_port_change_known_to_client(void **state)
{
    (void)state;
    rebinding(true);
}

WZP_TEST_MAIN(group_setup, group_teardown, test_register_and_reflect, test_register_through_retry,
              test_offer_ring_accept_hangup, test_reject_cancel_busy, test_ring_expiry,
              test_peer_vanishes, test_peer_closes, test_second_registration_replaces_first,
              test_alias_survives_restart, test_per_ip_connection_cap,
              test_bad_messages_close_the_connection, test_relay_shutdown_closes_clients,
              test_cannot_act_as_someone_else, test_wrong_relay_pin, test_stun_binding,
              test_relay_frames, test_garbage, test_nat_rebinding, test_port_change_known_to_client)
