/*
 * Parked registrations, the client's half (src/client/park.h): the parking state alone on a
 * virtual clock, then the client core on the simulated network (tests/support/simworld.h)
 * with the relay's half played by the test: it offers Park over a client's control
 * connection, answers PARK_PINGs (or stops), and sends WAKEs, genuine and forged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "client/core_int.h"
#include "client/park.h"
#include "common/rand.h"
#include "support/simworld.h"
#include "wire/park_frame.h"

#define T0 WZP_SEC(1000)

static const uint8_t ID[WZP_PARK_ID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
static const uint8_t KEY[WZP_PARK_KEY_LEN] = {9, 9, 9, 9};

static size_t frame(uint8_t out[WZP_PARK_FRAME_LEN], uint8_t type, const uint8_t *id, uint64_t seq,
                    uint8_t flags, const uint8_t *key)
{
    wzp_park_frame f = {.type = type, .seq = seq, .flags = flags};
    memcpy(f.park_id, id, WZP_PARK_ID_LEN);
    assert_int_equal(wzp_park_frame_encode(out, &f, key), 0);
    return WZP_PARK_FRAME_LEN;
}

/* --- the parking state alone ------------------------------------------------------------------ */

static void test_parking_pings_and_verdict(void **state)
{
    wzp_parking p;
    wzp_parking_init(&p);
    wzp_addr relay = wzp_sim_addr("203.0.113.1:4433");
    assert_int_equal(wzp_parking_start(&p, ID, KEY, 50, &relay, 0, 0, T0), WZP_ERR_INVALID);
    assert_int_equal(wzp_parking_start(&p, ID, KEY, 1000, &relay, 0, 0, T0), 0);
    assert_int_equal(wzp_parking_start(&p, ID, KEY, 1000, &relay, 0, 0, T0), WZP_ERR_STATE);
    uint8_t out[WZP_PARK_FRAME_LEN], in[WZP_PARK_FRAME_LEN];
    /* One ping per interval, seq 1, 2, ...; nothing before it is due. */
    assert_int_equal(wzp_parking_deadline(&p), T0 + WZP_SEC(1));
    assert_int_equal(wzp_parking_poll(&p, T0 + WZP_MS(999), out, sizeof(out)), 0);
    for (uint64_t k = 1; k <= 2; k++) {
        wzp_ts t = T0 + (wzp_ts)k * WZP_SEC(1);
        assert_int_equal(wzp_parking_poll(&p, t, out, sizeof(out)), WZP_PARK_FRAME_LEN);
        assert_int_equal(wzp_parking_poll(&p, t, out, sizeof(out)), 0);
        wzp_park_frame f;
        assert_int_equal(wzp_park_frame_peek(&f, out, sizeof(out)), 0);
        assert_int_equal(f.type, WZP_PARK_FRAME_PING);
        assert_int_equal(f.seq, k);
        assert_true(wzp_park_frame_verify(out, sizeof(out), KEY));
    }
    /* A PONG to ping 2, 20 ms later: alive, RTT sampled; its replay and one to a ping never
     * sent are dropped. */
    frame(in, WZP_PARK_FRAME_PONG, ID, 2, 0, KEY);
    wzp_ts t = T0 + WZP_SEC(2) + WZP_MS(20);
    assert_int_equal(wzp_parking_recv(&p, 0, &relay, in, sizeof(in), t), WZP_PARKING_RX_PONG);
    assert_int_equal(p.rtt, WZP_MS(20));
    assert_int_equal(wzp_parking_recv(&p, 0, &relay, in, sizeof(in), t), WZP_PARKING_RX_DROP);
    frame(in, WZP_PARK_FRAME_PONG, ID, 1, 0, KEY);
    assert_int_equal(wzp_parking_recv(&p, 0, &relay, in, sizeof(in), t), WZP_PARKING_RX_DROP);
    frame(in, WZP_PARK_FRAME_PONG, ID, 3, 0, KEY);
    assert_int_equal(wzp_parking_recv(&p, 0, &relay, in, sizeof(in), t), WZP_PARKING_RX_DROP);
    /* Silence: the next ping one interval after ping 2, then retries after 250 ms (3 RTTs
     * are less), 500 ms and 500 ms (doubled, at most half the interval), 500 ms after the last:
     * lost. */
    assert_false(wzp_parking_lost(&p, T0 + WZP_SEC(60)));
    static const wzp_ts waits[] = {WZP_MS(250), WZP_MS(500), WZP_MS(500), WZP_MS(500)};
    wzp_ts at = T0 + WZP_SEC(3);
    for (size_t k = 0; k < 4; k++) {
        assert_int_equal(wzp_parking_deadline(&p), at);
        assert_int_equal(wzp_parking_poll(&p, at - 1, out, sizeof(out)), 0);
        assert_int_equal(wzp_parking_poll(&p, at, out, sizeof(out)), WZP_PARK_FRAME_LEN);
        assert_false(wzp_parking_lost(&p, at));
        at += waits[k];
    }
    assert_false(wzp_parking_lost(&p, at - 1));
    assert_int_equal(wzp_parking_poll(&p, at - 1, out, sizeof(out)), 0);
    assert_true(wzp_parking_lost(&p, at));
    /* A late PONG to the first retry still counts: alive, the next ping one interval after the
     * latest, the ladder from the start. */
    frame(in, WZP_PARK_FRAME_PONG, ID, 4, 0, KEY);
    assert_int_equal(wzp_parking_recv(&p, 0, &relay, in, sizeof(in), at - 1), WZP_PARKING_RX_PONG);
    assert_false(wzp_parking_lost(&p, at + WZP_SEC(60)));
    assert_int_equal(wzp_parking_deadline(&p), at + WZP_MS(500)); /* the last left at - 500 ms */
    t = at - 1;
    /* WAKE: newer seqs only; forged, foreign or misdirected ones dropped. */
    frame(in, WZP_PARK_FRAME_WAKE, ID, 5, 0, KEY);
    wzp_addr other = wzp_sim_addr("203.0.113.9:4433");
    assert_int_equal(wzp_parking_recv(&p, 0, &other, in, sizeof(in), t), WZP_PARKING_RX_DROP);
    assert_int_equal(wzp_parking_recv(&p, 1, &relay, in, sizeof(in), t), WZP_PARKING_RX_DROP);
    assert_int_equal(wzp_parking_recv(&p, 0, &relay, in, sizeof(in) - 1, t), WZP_PARKING_RX_DROP);
    assert_int_equal(wzp_parking_recv(&p, 0, &relay, in, sizeof(in), t), WZP_PARKING_RX_WAKE);
    assert_int_equal(wzp_parking_recv(&p, 0, &relay, in, sizeof(in), t), WZP_PARKING_RX_DROP);
    frame(in, WZP_PARK_FRAME_WAKE, ID, 4, 0, KEY);
    assert_int_equal(wzp_parking_recv(&p, 0, &relay, in, sizeof(in), t), WZP_PARKING_RX_DROP);
    static const uint8_t bad_key[WZP_PARK_KEY_LEN] = {1};
    frame(in, WZP_PARK_FRAME_WAKE, ID, 6, 0, bad_key);
    assert_int_equal(wzp_parking_recv(&p, 0, &relay, in, sizeof(in), t), WZP_PARKING_RX_DROP);
    static const uint8_t bad_id[WZP_PARK_ID_LEN] = {8};
    frame(in, WZP_PARK_FRAME_WAKE, bad_id, 6, 0, KEY);
    assert_int_equal(wzp_parking_recv(&p, 0, &relay, in, sizeof(in), t), WZP_PARKING_RX_DROP);
    frame(in, WZP_PARK_FRAME_WAKE, ID, 6, WZP_PARK_REHOME, KEY);
    assert_int_equal(wzp_parking_recv(&p, 0, &relay, in, sizeof(in), t), WZP_PARKING_RX_REHOME);
    /* Waking: no more pings or verdicts, frames dropped; held messages come out in order. */
    wzp_parking_wake(&p);
    assert_int_equal(wzp_parking_deadline(&p), WZP_TS_NEVER);
    assert_false(wzp_parking_lost(&p, t + WZP_SEC(60)));
    frame(in, WZP_PARK_FRAME_WAKE, ID, 9, 0, KEY);
    assert_int_equal(wzp_parking_recv(&p, 0, &relay, in, sizeof(in), t), WZP_PARKING_RX_DROP);
    assert_true(wzp_parking_holding(&p));
    assert_int_equal(wzp_parking_hold(&p, (const uint8_t *)"one", 3), 0);
    assert_int_equal(wzp_parking_hold(&p, (const uint8_t *)"two!", 4), 0);
    static uint8_t big[WZP_PARKING_HELD_MAX];
    assert_int_equal(wzp_parking_hold(&p, big, sizeof(big)), WZP_ERR_LIMIT);
    wzp_parking_end(&p);
    assert_false(wzp_parking_holding(&p));
    assert_int_equal(p.held_len, 0);
    wzp_parking_free(&p);
}

static char released[64];
static void collect(void *user, const uint8_t *msg, size_t len)
{
    (void)user;
    strncat(released, (const char *)msg, len);
    strcat(released, "|");
}

static void test_parking_release_in_order(void **state)
{
    wzp_parking p;
    wzp_parking_init(&p);
    wzp_addr relay = wzp_sim_addr("203.0.113.1:4433");
    assert_int_equal(wzp_parking_start(&p, ID, KEY, 1000, &relay, 0, 0, T0), 0);
    assert_int_equal(wzp_parking_hold(&p, (const uint8_t *)"one", 3), 0);
    assert_int_equal(wzp_parking_hold(&p, (const uint8_t *)"two!", 4), 0);
    released[0] = 0;
    wzp_parking_release(&p, collect, NULL);
    assert_string_equal(released, "one|two!|");
    assert_false(wzp_parking_holding(&p));
    assert_int_equal(p.held_len, 0);
    wzp_parking_free(&p);
}

/* --- the core on the simulated network
 * ------------------------------------------------------------
 */

/* The relay's half of the protocol, played by the test. */
typedef struct fakepark {
    simrelay *r;
    uint8_t id[WZP_PARK_ID_LEN], key[WZP_PARK_KEY_LEN];
    wzp_addr client; /* where the client's control connection came from */
    bool answer;     /* PONG its pings */
    int pings;
    uint64_t last_seq;
    bool seq_rising;
    wzp_ts first_ping, last_ping;
    uint64_t wake_seq;
} fakepark;

static void fake_park_rx(simrelay *r, const wzp_addr *from, const uint8_t *d, size_t len)
{
    fakepark *fp = r->hook_user;
    wzp_park_frame f;
    if (wzp_park_frame_peek(&f, d, len) < 0 || f.type != WZP_PARK_FRAME_PING ||
        memcmp(f.park_id, fp->id, sizeof(fp->id)) != 0 || !wzp_park_frame_verify(d, len, fp->key))
        return;
    wzp_ts now = wzp_sim_now(r->sim);
    fp->seq_rising = fp->seq_rising && f.seq > fp->last_seq;
    fp->last_seq = f.seq;
    if (!fp->pings++)
        fp->first_ping = now;
    fp->last_ping = now;
    if (fp->answer) {
        uint8_t out[WZP_PARK_FRAME_LEN];
        frame(out, WZP_PARK_FRAME_PONG, fp->id, f.seq, 0, fp->key);
        wzp_sim_send(r->sock, from, out, sizeof(out));
    }
}

/* The relay's end of c's control connection. */
static wzp_quic_conn *relay_conn_of(simrelay *r, const simclient *c)
{
    uint8_t want[WZP_FINGERPRINT_LEN];
    wzp_identity_fingerprint(c->id, want);
    for (int i = 0; i < MAX_CONNS; i++) /* the key proven by Auth (or a certificate) */
        if (r->conns[i].conn && r->conns[i].handle &&
            memcmp(r->conns[i].fp, want, sizeof(want)) == 0)
            return r->conns[i].conn;
    return NULL;
}

static void offer_park(fakepark *fp, simrelay *r, simclient *c, uint32_t keepalive_ms)
{
    memset(fp, 0, sizeof(*fp));
    fp->r = r;
    fp->answer = true;
    fp->seq_rising = true;
    wzp_random(fp->id, sizeof(fp->id));
    wzp_random(fp->key, sizeof(fp->key));
    r->park_rx = fake_park_rx;
    r->hook_user = fp;
    wzp_quic_conn *conn = relay_conn_of(r, c);
    assert_non_null(conn);
    wzp_quic_conn_remote_addr(conn, &fp->client);
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_PARK, 0);
    memcpy(m.u.park.park_id, fp->id, sizeof(fp->id));
    memcpy(m.u.park.key, fp->key, sizeof(fp->key));
    m.u.park.keepalive_ms = keepalive_ms;
    uint8_t buf[WZP_SIG_MAX_SIZE];
    int n = wzp_sig_encode(&m, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(wzp_quic_conn_send_message(conn, buf, (size_t)n), 0);
    sim_relay_kick(r);
}

/* A WAKE from sock (NULL: the relay's) with the park's key unless another is given. */
static void send_wake(fakepark *fp, wzp_sim_sock *sock, uint64_t seq, uint8_t flags,
                      const uint8_t *key)
{
    uint8_t out[WZP_PARK_FRAME_LEN];
    frame(out, WZP_PARK_FRAME_WAKE, fp->id, seq, flags, key ? key : fp->key);
    wzp_sim_send(sock ? sock : fp->r->sock, &fp->client, out, sizeof(out));
}

static bool b_parked(simclient *a, simclient *b)
{
    return wzp_core_parked(b->core);
}
static bool b_up(simclient *a, simclient *b)
{
    return b->core->ctrl_up && !wzp_parking_holding(&b->core->park) && wzp_core_registered(b->core);
}
static bool a_parked(simclient *a, simclient *b)
{
    return wzp_core_parked(a->core);
}

/* a and b registered with the relay; b parked (keep-alive 1 s). */
static void park_b(world *w, fakepark *fp, uint64_t seed)
{
    world_open(w, seed, NULL);
    sim_client_start(&w->a, w->sim, &w->r, 0, WZP_SIM_EI, false);
    sim_client_start(&w->b, w->sim, &w->r, 1, WZP_SIM_EI, false);
    assert_true(sim_run(w->sim, both_registered, &w->a, &w->b, WZP_SEC(5)));
    offer_park(fp, &w->r, &w->b, 1000);
    assert_true(sim_run(w->sim, b_parked, &w->a, &w->b, WZP_SEC(1)));
}

/* Idle: the offer is taken (close code 8, no connection left), the registration stays as far
 * as the application knows, and pings go out every keep-alive with rising seqs. */
static void test_park_taken_when_idle(void **state)
{
    world w;
    fakepark fp;
    park_b(&w, &fp, 41);
    assert_true(sim_run(w.sim, NULL, &w.a, &w.b, WZP_MS(500)));
    assert_int_equal(w.r.peer_closes, 1);
    assert_int_equal(w.r.peer_close_code, WZP_SIG_CLOSE_PARKED);
    assert_null(relay_conn_of(&w.r, &w.b));
    assert_true(wzp_core_idle(w.b.core)); /* no QUIC connection at all */
    assert_true(wzp_core_registered(w.b.core));
    assert_int_equal(w.b.registrations, 1);
    assert_int_equal(w.b.unregistrations, 0);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_MS(5600));
    printf("parked: %d pings in 6.1 s, first %lld ms after parking\n", fp.pings,
           (long long)((fp.first_ping - (wzp_sim_now(w.sim) - WZP_MS(6100))) / WZP_MS(1)));
    assert_int_equal(fp.pings, 6);
    assert_true(fp.seq_rising);
    assert_int_equal(fp.last_seq, 6);
    assert_int_equal(fp.last_ping - fp.first_ping, WZP_SEC(5)); /* exactly the interval */
    assert_true(wzp_core_parked(w.b.core));
    assert_true(wzp_core_relay_rtt(w.b.core) > 0); /* from the pongs */
    wzp_core_stats st;
    wzp_core_get_stats(w.b.core, &st);
    assert_int_equal(st.rx_park, 6);
    world_free(&w);
}

static int pings_in;
static void count_pings(simrelay *r, uint64_t conn, wzp_sig_msg *m)
{
    pings_in += m->type == WZP_SIG_PING;
}

/* In a call (or told never to park, as over TCP) the offer is declined at once (a Ping, so
 * the relay sends what it held): the connection stays. */
static void test_park_ignored_when_busy(void **state)
{
    world w;
    fakepark fp;
    world_call(&w, 42, WZP_SIM_EI, WZP_SIM_EI, true);
    w.r.rewrite_in = count_pings;
    pings_in = 0;
    offer_park(&fp, &w.r, &w.a, 1000);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_MS(100));
    assert_int_equal(pings_in, 1);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(3));
    assert_false(wzp_core_parked(w.a.core));
    assert_non_null(relay_conn_of(&w.r, &w.a));
    assert_int_equal(w.r.peer_closes, 0);
    assert_int_equal(w.a.state, WZP_CALL_ACTIVE);
    assert_int_equal(fp.pings, 0);
    /* After the call, idle again, but this core may not park (the TCP transport's setting). */
    assert_int_equal(wzp_core_hangup(w.a.core, w.a.call, wzp_sim_now(w.sim)), 0);
    sim_client_kick(&w.a);
    assert_true(sim_run(w.sim, both_ended, &w.a, &w.b, WZP_SEC(5)));
    w.a.core->cfg.no_park = true; /* white-box */
    offer_park(&fp, &w.r, &w.a, 1000);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(2));
    assert_int_equal(pings_in, 2);
    assert_false(wzp_core_parked(w.a.core));
    assert_non_null(relay_conn_of(&w.r, &w.a));
    /* The other one, idle after the call, takes it. */
    offer_park(&fp, &w.r, &w.b, 1000);
    assert_true(sim_run(w.sim, b_parked, &w.a, &w.b, WZP_SEC(1)));
    world_free(&w);
}

/* The relay stops answering: after the first ping it misses and three quick retries, the
 * registration is lost, as a lost connection, and the client registers again. */
static void test_park_pong_timeout(void **state)
{
    world w;
    fakepark fp;
    park_b(&w, &fp, 43);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_MS(2500));
    fp.answer = false;
    wzp_ts t0 = wzp_sim_now(w.sim);
    assert_int_equal(w.b.unregistrations, 0);
    while (!w.b.unregistrations && wzp_sim_now(w.sim) - t0 < WZP_SEC(10))
        sim_run(w.sim, NULL, &w.a, &w.b, WZP_MS(10));
    wzp_ts took = wzp_sim_now(w.sim) - t0;
    printf("pongs stopped: relay lost after %lld ms\n", (long long)(took / WZP_MS(1)));
    assert_int_equal(w.b.unregistrations, 1);
    assert_int_equal(w.b.unreg_err, WZP_ERR_UNREACHABLE);
    assert_false(w.b.unreg_fatal);
    /* The first ping to go unanswered leaves within an interval (1 s), then 3 retries after
     * 250, 500 and 500 ms, and 500 ms more: lost 1.75-2.75 s after the relay fell silent. */
    assert_true(took >= WZP_MS(1750) && took <= WZP_MS(2750));
    assert_false(wzp_core_parked(w.b.core));
    assert_true(sim_run(w.sim, b_up, &w.a, &w.b, WZP_SEC(2)));
    assert_int_equal(w.b.registrations, 2);
    world_free(&w);
}

static void ignore_rx(void *ctx, wzp_sim_sock *s, const wzp_addr *from, const uint8_t *d,
                      size_t len)
{
}

/* A genuine WAKE: the client connects and registers again at once, the application sees
 * nothing; then a call to it works. Forged ones before it changed nothing. */
static void test_park_wake(void **state)
{
    world w;
    fakepark fp;
    park_b(&w, &fp, 44);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_MS(1500));
    /* Forged: a wrong key; from another address; not a WAKE. */
    static const uint8_t bad_key[WZP_PARK_KEY_LEN] = {7};
    send_wake(&fp, NULL, 1, 0, bad_key);
    wzp_sim_host *h = wzp_sim_host_new(w.sim, "mallory");
    wzp_sim_link link = {.latency = WZP_MS(5)};
    assert_int_equal(wzp_sim_host_add_addr(h, wzp_sim_internet(w.sim), "203.0.113.66", link), 0);
    wzp_sim_sock *mallory = wzp_sim_sock_bind(h, "203.0.113.66:4433", ignore_rx, NULL);
    send_wake(&fp, mallory, 1, 0, NULL);
    uint8_t pong[WZP_PARK_FRAME_LEN];
    frame(pong, WZP_PARK_FRAME_PING, fp.id, 1, 0, fp.key);
    wzp_sim_send(w.r.sock, &fp.client, pong, sizeof(pong));
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_MS(500));
    assert_true(wzp_core_parked(w.b.core));
    wzp_core_stats st;
    wzp_core_get_stats(w.b.core, &st);
    assert_int_equal(st.rx_no_call, 3);
    /* The genuine one. */
    uint8_t old_wake[WZP_PARK_FRAME_LEN];
    frame(old_wake, WZP_PARK_FRAME_WAKE, fp.id, 1, 0, fp.key);
    send_wake(&fp, NULL, 1, 0, NULL);
    wzp_ts t0 = wzp_sim_now(w.sim);
    assert_true(sim_run(w.sim, b_up, &w.a, &w.b, WZP_SEC(2)));
    printf("woken: registered again after %lld ms\n",
           (long long)((wzp_sim_now(w.sim) - t0) / WZP_MS(1)));
    assert_true(wzp_sim_now(w.sim) - t0 <= WZP_MS(200));
    assert_int_equal(w.b.registrations, 1); /* nothing changed for the application */
    assert_int_equal(w.b.unregistrations, 0);
    /* Parked again with a new key: the old WAKE replayed does nothing. */
    fakepark fp2;
    offer_park(&fp2, &w.r, &w.b, 1000);
    assert_true(sim_run(w.sim, b_parked, &w.a, &w.b, WZP_SEC(1)));
    wzp_sim_send(w.r.sock, &fp2.client, old_wake, sizeof(old_wake));
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_MS(300));
    assert_true(wzp_core_parked(w.b.core));
    /* Woken for a call: it registers and the call goes through (the relay here does not hold
     * calls for parked clients, so the call is placed once b is back). */
    send_wake(&fp2, NULL, 1, 0, NULL);
    assert_true(sim_run(w.sim, b_up, &w.a, &w.b, WZP_SEC(2)));
    world_connect(&w);
    assert_int_equal(w.b.registrations, 1);
    world_free(&w);
}

/* A call placed while parked leaves once the client is registered again. */
static void test_call_while_parked(void **state)
{
    world w;
    fakepark fp;
    world_open(&w, 45, NULL);
    sim_client_start(&w.a, w.sim, &w.r, 0, WZP_SIM_EI, false);
    sim_client_start(&w.b, w.sim, &w.r, 1, WZP_SIM_EI, false);
    w.b.auto_answer = true;
    assert_true(sim_run(w.sim, both_registered, &w.a, &w.b, WZP_SEC(5)));
    offer_park(&fp, &w.r, &w.a, 1000);
    assert_true(sim_run(w.sim, a_parked, &w.a, &w.b, WZP_SEC(1)));
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(2));
    char text[WZP_FINGERPRINT_STRLEN];
    sim_client_fp(&w.b, text);
    wzp_ts t0 = wzp_sim_now(w.sim);
    assert_int_equal(wzp_core_call(w.a.core, text, NULL, NULL, &w.a.call, t0), 0);
    sim_client_kick(&w.a);
    assert_false(wzp_core_parked(w.a.core));
    assert_true(sim_run(w.sim, both_active, &w.a, &w.b, WZP_SEC(5)));
    printf("call placed while parked: active after %lld ms\n",
           (long long)((wzp_sim_now(w.sim) - t0) / WZP_MS(1)));
    assert_int_equal(w.a.registrations, 1);
    assert_int_equal(w.a.unregistrations, 0);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(1));
    assert_true(sim_stats(&w.a).frames_received > 25);
    assert_true(sim_stats(&w.b).frames_received > 25);
    world_free(&w);
}

static simrelay *second;
static bool b_on_second(simclient *a, simclient *b)
{
    wzp_addr at;
    wzp_core_relay_addr(b->core, &at);
    return b_up(a, b) && wzp_addr_equal(&at, wzp_sim_sock_addr(second->sock));
}

/* WAKE with REHOME: the relay is stopping; the client registers with the other relay. */
static void test_park_rehome(void **state)
{
    world w;
    fakepark fp;
    park_b(&w, &fp, 46);
    simrelay r2;
    sim_relay_start_at(&r2, w.sim, "203.0.113.2:4434", NULL);
    second = &r2;
    wzp_core_relay two[2] = {{.addr = *wzp_sim_sock_addr(w.r.sock)},
                             {.addr = *wzp_sim_sock_addr(r2.sock)}};
    wzp_identity_fingerprint(w.r.id, two[0].pin);
    wzp_identity_fingerprint(r2.id, two[1].pin);
    assert_int_equal(wzp_core_set_relays(w.b.core, two, 2), 0);
    /* Parked on the first relay still. */
    wzp_addr at;
    wzp_core_relay_addr(w.b.core, &at);
    assert_true(wzp_addr_equal(&at, wzp_sim_sock_addr(w.r.sock)));
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_MS(1500));
    assert_true(wzp_core_parked(w.b.core));
    send_wake(&fp, NULL, 1, WZP_PARK_REHOME, NULL);
    assert_true(sim_run(w.sim, b_on_second, &w.a, &w.b, WZP_SEC(3)));
    assert_int_equal(w.b.unregistrations, 1);
    assert_int_equal(w.b.registrations, 2);
    sim_relay_free(&r2);
    world_free(&w);
}

/* --- with the relay's own half (src/relay/park.c behind its control plane) ---------------------
 */

static bool both_parked(simclient *a, simclient *b)
{
    return wzp_core_parked(a->core) && wzp_core_parked(b->core);
}

static bool both_up(simclient *a, simclient *b)
{
    return b_up(b, a) && b_up(a, b);
}

/* Both idle clients registered with a relay that parks after 500 ms (pings every 1 s). */
static void open_parking(world *w, uint64_t seed)
{
    wzp_relay_control_config cfg;
    wzp_relay_control_config_default(&cfg);
    cfg.park_after = WZP_MS(500);
    cfg.park_keepalive = WZP_SEC(1);
    w->sim = wzp_sim_new(seed);
    assert_non_null(w->sim);
    sim_relay_start_parking(&w->r, w->sim, &cfg);
    sim_client_start(&w->a, w->sim, &w->r, 0, WZP_SIM_EI, false);
    sim_client_start(&w->b, w->sim, &w->r, 1, WZP_SIM_EI, false);
    assert_true(sim_run(w->sim, both_registered, &w->a, &w->b, WZP_SEC(5)));
    assert_true(sim_run(w->sim, both_parked, &w->a, &w->b, WZP_SEC(3)));
    /* The relay's record turns parked once the close reaches it. */
    for (int i = 0; i < 100 && wzp_relay_control_num_parked(w->r.ctl) < 2; i++)
        sim_run(w->sim, NULL, &w->a, &w->b, WZP_MS(10));
    assert_int_equal(wzp_relay_control_num_parked(w->r.ctl), 2);
    assert_int_equal(w->r.peer_close_code, WZP_SIG_CLOSE_PARKED);
    sim_run(w->sim, NULL, &w->a, &w->b, WZP_SEC(4)); /* kept by their pings */
    assert_true(both_parked(&w->a, &w->b));
    assert_int_equal(wzp_relay_control_num_parked(w->r.ctl), 2);
}

/* a calls b, both parked: a's Offer waits for its registration, the relay wakes b and holds
 * the IncomingCall until b is registered again, b answers, media flows both ways; neither
 * application saw a registration change; after the hang-up both park again. */
static void test_parked_call_real_relay(void **state)
{
    world w;
    open_parking(&w, 47);
    w.b.auto_answer = true;
    char text[WZP_FINGERPRINT_STRLEN];
    sim_client_fp(&w.b, text);
    wzp_ts t0 = wzp_sim_now(w.sim);
    assert_int_equal(wzp_core_call(w.a.core, text, NULL, NULL, &w.a.call, t0), 0);
    sim_client_kick(&w.a);
    assert_true(sim_run(w.sim, both_active, &w.a, &w.b, WZP_SEC(5)));
    printf("both parked: the call is active after %lld ms\n",
           (long long)((wzp_sim_now(w.sim) - t0) / WZP_MS(1)));
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(2));
    assert_true(sim_stats(&w.a).frames_received > 50);
    assert_true(sim_stats(&w.b).frames_received > 50);
    assert_int_equal(w.a.registrations, 1);
    assert_int_equal(w.b.registrations, 1);
    assert_int_equal(w.a.unregistrations + w.b.unregistrations, 0);
    assert_int_equal(wzp_core_hangup(w.a.core, w.a.call, wzp_sim_now(w.sim)), 0);
    sim_client_kick(&w.a);
    assert_true(sim_run(w.sim, both_ended, &w.a, &w.b, WZP_SEC(5)));
    assert_int_equal(w.b.reason, WZP_ERR_HANGUP);
    assert_true(sim_run(w.sim, both_parked, &w.a, &w.b, WZP_SEC(3)));
    world_free(&w);
}

/* The relay stops: one WAKE with REHOME to every parked client; alone, they register with it
 * again after the backoff (here it stays up). */
static void test_parked_farewell_real_relay(void **state)
{
    world w;
    open_parking(&w, 48);
    wzp_relay_control_park_farewell(w.r.ctl);
    sim_relay_kick(&w.r);
    assert_true(sim_run(w.sim, both_up, &w.a, &w.b, WZP_SEC(3)));
    assert_int_equal(w.a.unregistrations, 1);
    assert_int_equal(w.b.unregistrations, 1);
    assert_int_equal(w.a.registrations, 2);
    world_free(&w);
}

static bool a_ended(simclient *a, simclient *b)
{
    (void)b;
    return a->state == WZP_CALL_ENDED;
}

/* b stops while parked: its BYE ends the registration at once (not three keep-alives
 * later), and a calling b hears it is offline without b being woken. */
static void test_parked_bye_real_relay(void **state)
{
    world w;
    open_parking(&w, 49);
    char text[WZP_FINGERPRINT_STRLEN];
    sim_client_fp(&w.b, text);
    wzp_core_shutdown(w.b.core, wzp_sim_now(w.sim));
    sim_client_kick(&w.b);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_MS(200));
    assert_int_equal(wzp_relay_control_num_parked(w.r.ctl), 1);
    wzp_relay_control_stats st;
    wzp_relay_control_get_stats(w.r.ctl, &st);
    assert_int_equal(st.parks_left, 1);
    assert_int_equal(st.parks_expired, 0);
    assert_int_equal(st.park.byes, 1); /* the second BYE finds no record */
    assert_int_equal(st.park.pings[WZP_PARK_PING_UNKNOWN], 1);
    wzp_ts t0 = wzp_sim_now(w.sim);
    assert_int_equal(wzp_core_call(w.a.core, text, NULL, NULL, &w.a.call, t0), 0);
    sim_client_kick(&w.a);
    assert_true(sim_run(w.sim, a_ended, &w.a, &w.b, WZP_SEC(5)));
    assert_int_equal(w.a.reason, WZP_ERR_OFFLINE);
    wzp_relay_control_get_stats(w.r.ctl, &st);
    assert_int_equal(st.park.wakes_sent, 0);
    world_free(&w);
}

static simrelay *restarted;
static bool both_back(simclient *a, simclient *b)
{
    (void)a;
    (void)b;
    return wzp_relay_control_num_registrations(restarted->ctl) == 2;
}

/* The relay restarts (same identity) while both are parked: it has forgotten their parks, but
 * their next ping is recognised (its key derives from the relay's) and answered PONG GONE:
 * they register again at once, a keep-alive later rather than after unanswered retries, and
 * their applications see no change. */
static void test_parked_relay_restart(void **state)
{
    world w;
    open_parking(&w, 50);
    sim_relay_restart(&w.r);
    restarted = &w.r;
    wzp_ts t0 = wzp_sim_now(w.sim);
    assert_true(sim_run(w.sim, both_back, &w.a, &w.b, WZP_MS(1500)));
    printf("both registered again %lld ms after the restart\n",
           (long long)((wzp_sim_now(w.sim) - t0) / WZP_MS(1)));
    wzp_relay_control_stats st;
    wzp_relay_control_get_stats(w.r.ctl, &st);
    assert_int_equal(st.park.gone_sent, 2);
    assert_int_equal(w.a.unregistrations + w.b.unregistrations, 0);
    assert_true(sim_run(w.sim, both_parked, &w.a, &w.b, WZP_SEC(3)));
    /* A call between them still works. */
    w.b.auto_answer = true;
    char text[WZP_FINGERPRINT_STRLEN];
    sim_client_fp(&w.b, text);
    assert_int_equal(wzp_core_call(w.a.core, text, NULL, NULL, &w.a.call, wzp_sim_now(w.sim)), 0);
    sim_client_kick(&w.a);
    assert_true(sim_run(w.sim, both_active, &w.a, &w.b, WZP_SEC(5)));
    world_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parking_pings_and_verdict),
        cmocka_unit_test(test_parking_release_in_order),
        cmocka_unit_test(test_park_taken_when_idle),
        cmocka_unit_test(test_park_ignored_when_busy),
        cmocka_unit_test(test_park_pong_timeout),
        cmocka_unit_test(test_park_wake),
        cmocka_unit_test(test_call_while_parked),
        cmocka_unit_test(test_park_rehome),
        cmocka_unit_test(test_parked_call_real_relay),
        cmocka_unit_test(test_parked_farewell_real_relay),
        cmocka_unit_test(test_parked_bye_real_relay),
        cmocka_unit_test(test_parked_relay_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
