/*
 * The client library end to end on loopback: an in-process relay
 * (wzp_relay_server on 127.0.0.1:0) and clients with temporary homes.
 * Registration and the reflexive address; full calls both ways with the probe
 * signal (recordings must match, NCC > 0.9); hang-up from either side; direct
 * with loopback candidates, relay-only with direct disabled; the relay cannot
 * read media (a recording proxy between a client and the relay never sees the
 * Opus payloads); a lying relay (wrong CallSetup.peer_fingerprint) is caught
 * by the end-to-end pin; re-registration after a relay restart.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
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

#include "media/compare.h"
#include "media/media_session.h"
#include "media/tone.h"
#include "net/udp.h"
#include "relay/server.h"
#include "wire/signal.h"

/* --- helpers ------------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

typedef struct relay {
    wzp_relay_server *srv;
    pthread_t thread;
    char addr[WZP_ADDR_STRLEN];
    char fp[WZP_FINGERPRINT_STRLEN];
} relay;

static void *relay_main(void *arg)
{
    wzp_relay_server_run(arg, false);
    return NULL;
}

/* Retry threshold for the next relay_start_cfg (tests of a relay under load). */
static size_t next_retry_threshold = 1000;

static void relay_start_cfg(relay *r, const char *home, const char *listen,
                            void (*rewrite)(void *, uint8_t *, size_t *, size_t), void *user)
{
    wzp_relay_server_config cfg;
    wzp_relay_server_config_default(&cfg);
    cfg.retry_threshold = next_retry_threshold;
    next_retry_threshold = 1000;
    assert_int_equal(wzp_addr_parse(&cfg.listen, listen, false), 0);
    cfg.home = home;
    cfg.workers = 1;
    cfg.test_rewrite = rewrite;
    cfg.test_user = user;
    assert_int_equal(wzp_relay_server_new(&r->srv, &cfg), 0);
    uint8_t fp[WZP_FINGERPRINT_LEN];
    wzp_relay_server_fingerprint(r->srv, fp);
    wzp_fingerprint_format(fp, r->fp, sizeof(r->fp));
    wzp_addr_format(wzp_relay_server_addr(r->srv), r->addr, sizeof(r->addr));
    assert_int_equal(pthread_create(&r->thread, NULL, relay_main, r->srv), 0);
}

static void relay_stop(relay *r)
{
    wzp_relay_server_stop(r->srv);
    pthread_join(r->thread, NULL);
    wzp_relay_server_free(r->srv);
    r->srv = NULL;
}

/* One client and what happened to it. */
typedef struct peer {
    wzp_client *c;
    pthread_mutex_t mu;
    int registrations;
    char reflexive[64];
    int unreg_err;
    wzp_call *call;
    wzp_call_state state;
    bool active, ended;
    int reason;
    char detail[400];
    wzp_probe_signal sig;
    int16_t *sent, *rec;
    size_t sent_n, rec_n, cap;
    bool auto_answer;
} peer;

static void on_registered(wzp_client *c, const char *refl, void *user)
{
    peer *p = user;
    pthread_mutex_lock(&p->mu);
    p->registrations++;
    snprintf(p->reflexive, sizeof(p->reflexive), "%s", refl);
    pthread_mutex_unlock(&p->mu);
}

static void on_unregistered(wzp_client *c, int err, bool fatal, void *user)
{
    peer *p = user;
    pthread_mutex_lock(&p->mu);
    p->unreg_err = err;
    pthread_mutex_unlock(&p->mu);
}

static void on_incoming(wzp_client *c, wzp_call *call, const char *fp, const char *alias,
                        void *user)
{
    peer *p = user;
    pthread_mutex_lock(&p->mu);
    p->call = call;
    pthread_mutex_unlock(&p->mu);
    if (p->auto_answer)
        wzp_call_answer(call);
}

static void on_state(wzp_client *c, wzp_call *call, wzp_call_state st, int reason, void *user)
{
    peer *p = user;
    pthread_mutex_lock(&p->mu);
    if (call == p->call) {
        p->state = st;
        if (st == WZP_CALL_ACTIVE)
            p->active = true;
        if (st == WZP_CALL_ENDED) {
            p->ended = true;
            p->reason = reason;
            snprintf(p->detail, sizeof(p->detail), "%s", wzp_call_detail(call));
        }
    }
    pthread_mutex_unlock(&p->mu);
}

static bool pcm_source(wzp_client *c, wzp_call *call, int16_t pcm[WZP_FRAME_SAMPLES], void *user)
{
    peer *p = user;
    wzp_probe_signal_fill_s16(&p->sig, pcm, WZP_FRAME_SAMPLES);
    if (p->sent_n + WZP_FRAME_SAMPLES <= p->cap) {
        memcpy(p->sent + p->sent_n, pcm, WZP_FRAME_SAMPLES * sizeof(int16_t));
        p->sent_n += WZP_FRAME_SAMPLES;
    }
    return true;
}

static void pcm_sink(wzp_client *c, wzp_call *call, const int16_t pcm[WZP_FRAME_SAMPLES],
                     bool concealed, void *user)
{
    peer *p = user;
    if (p->rec_n + WZP_FRAME_SAMPLES <= p->cap) {
        memcpy(p->rec + p->rec_n, pcm, WZP_FRAME_SAMPLES * sizeof(int16_t));
        p->rec_n += WZP_FRAME_SAMPLES;
    }
}

static char tmp_root[64];

static void peer_start(peer *p, const char *name, const char *relay_addr, const char *pin,
                       uint64_t seed, bool direct_disabled)
{
    memset(p, 0, sizeof(*p));
    pthread_mutex_init(&p->mu, NULL);
    p->cap = WZP_SAMPLE_RATE * 20;
    p->sent = calloc(p->cap, sizeof(int16_t));
    p->rec = calloc(p->cap, sizeof(int16_t));
    wzp_probe_signal_init(&p->sig, seed, 0.5f);
    char home[128];
    snprintf(home, sizeof(home), "%s/%s", tmp_root, name);
    wzp_client_config cfg = {
        .home = home,
        .relay = relay_addr,
        .relay_pin = pin,
        .alias = name,
        .bind_v4 = "127.0.0.1:0",
        .bind_v6 = "",
        .host_candidates_loopback = true,
        .direct_disabled = direct_disabled,
        .hold_audio_until_answer = true, /* the probe signal is compared with what was played */
        .cb = {on_registered, on_unregistered, on_incoming, on_state, NULL, pcm_source, pcm_sink},
        .user = p,
    };
    assert_int_equal(wzp_client_new(&p->c, &cfg), 0);
    assert_int_equal(wzp_client_start(p->c), 0);
}

static void peer_free(peer *p)
{
    wzp_client_stop(p->c);
    wzp_call_release(p->call);
    wzp_client_free(p->c);
    free(p->sent);
    free(p->rec);
    pthread_mutex_destroy(&p->mu);
}

/* Polls cond(p) (under p->mu) until true or timeout; returns the last value. */
static bool wait_for(peer *p, bool (*cond)(peer *), double timeout_s)
{
    double end = now_s() + timeout_s;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        bool ok = cond(p);
        pthread_mutex_unlock(&p->mu);
        if (ok || now_s() > end)
            return ok;
        sleep_ms(10);
    }
}

static bool is_registered(peer *p)
{
    return p->registrations > 0;
}
static bool is_active(peer *p)
{
    return p->active || p->ended;
}
static bool is_ended(peer *p)
{
    return p->ended;
}

/*
 * Does what receiver recorded match what sender sent? First the whole
 * recording at one delay (NCC > 0.9). A loaded machine can stall a thread
 * long enough for the adaptive playout to add a frame of delay mid-call,
 * which shifts the rest of the recording by 20 ms and lowers the global
 * figure; then every 0.25 s piece of what was sent is located on its own and
 * 80% of them must match (NCC > 0.9), which still fails for noise or silence.
 * (Quarter seconds: the one piece straddling a shift fails, and with half
 * seconds a 2 s call has only two pieces, so one shift failed the call.)
 */
static bool audio_matches(const peer *sender, const peer *receiver)
{
    wzp_ncc_result r;
    if (wzp_ncc_search_s16(sender->sent, sender->sent_n, receiver->rec, receiver->rec_n,
                           -WZP_SAMPLE_RATE, WZP_SAMPLE_RATE, WZP_SAMPLE_RATE / 2, &r) < 0)
        return false;
    printf("ncc %.3f at lag %ld (sent %zu, recorded %zu samples)\n", r.ncc, r.lag, sender->sent_n,
           receiver->rec_n);
    if (r.ncc > 0.9)
        return true;
    const size_t win = WZP_SAMPLE_RATE / 4;
    size_t good = 0, total = 0;
    /* Skip the first and last pieces: the call starts and ends at different times on each side. */
    for (size_t off = win; off + 2 * win <= sender->sent_n; off += win) {
        wzp_ncc_result w;
        total++;
        if (wzp_ncc_search_s16(sender->sent + off, win, receiver->rec, receiver->rec_n,
                               (long)off - WZP_SAMPLE_RATE, (long)off + WZP_SAMPLE_RATE, win,
                               &w) == 0 &&
            w.ncc > 0.9)
            good++;
    }
    printf("  piecewise: %zu of %zu quarter-second pieces match\n", good, total);
    return total >= 2 && good * 5 >= total * 4;
}

static int setup(void **state)
{
    snprintf(tmp_root, sizeof(tmp_root), "/tmp/wzp-client-test-XXXXXX");
    assert_non_null(mkdtemp(tmp_root));
    return 0;
}

static int teardown(void **state)
{
    nftw(tmp_root, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static void relay_start(relay *r, const char *name)
{
    char home[128];
    snprintf(home, sizeof(home), "%s/%s", tmp_root, name);
    relay_start_cfg(r, home, "127.0.0.1:0", NULL, NULL);
}

/* A full call: a calls b by alias, both send the probe signal for `secs`, `hangup_by` hangs up. */
static void run_call(peer *a, peer *b, double secs, peer *hangup_by)
{
    b->auto_answer = true;
    assert_true(wait_for(a, is_registered, 10));
    assert_true(wait_for(b, is_registered, 10));
    wzp_call *call;
    pthread_mutex_lock(&a->mu);
    assert_int_equal(wzp_client_call(a->c, "bob", &call), 0);
    a->call = call;
    pthread_mutex_unlock(&a->mu);
    assert_true(wait_for(a, is_active, 10));
    assert_true(wait_for(b, is_active, 10));
    assert_false(a->ended);
    sleep_ms((int)(secs * 1000));
    assert_int_equal(wzp_call_hangup(hangup_by->call), 0);
    assert_true(wait_for(a, is_ended, 10));
    assert_true(wait_for(b, is_ended, 10));
    peer *other = hangup_by == a ? b : a;
    assert_int_equal(hangup_by->reason, 0);
    assert_int_equal(other->reason, WZP_ERR_HANGUP);
}

/* --- tests ------------------------------------------------------------------------------------ */

/* The checker itself: a recording shifted by 20 ms halfway matches; silence or another signal
 * does not. */
static void test_audio_matches_checker(void **state)
{
    peer s = {0}, r = {0};
    size_t n = WZP_SAMPLE_RATE * 3;
    s.sent = calloc(n, sizeof(int16_t));
    r.rec = calloc(n + 2000, sizeof(int16_t));
    wzp_probe_signal sig;
    wzp_probe_signal_init(&sig, 42, 0.5f);
    wzp_probe_signal_fill_s16(&sig, s.sent, n);
    s.sent_n = n;
    /* 300 samples of delay, then 960 more from the middle on (an adaptive hold). */
    memcpy(r.rec + 300, s.sent, (n / 2) * sizeof(int16_t));
    memcpy(r.rec + 300 + n / 2 + 960, s.sent + n / 2, (n / 2 - 1260) * sizeof(int16_t));
    r.rec_n = n;
    assert_true(audio_matches(&s, &r));
    wzp_probe_signal_init(&sig, 43, 0.5f); /* another signal */
    wzp_probe_signal_fill_s16(&sig, r.rec, n);
    assert_false(audio_matches(&s, &r));
    memset(r.rec, 0, n * sizeof(int16_t));
    assert_false(audio_matches(&s, &r));
    free(s.sent);
    free(r.rec);
}

static void test_register_reflect(void **state)
{
    relay r;
    relay_start(&r, "relay-reg");
    peer a;
    peer_start(&a, "alice", r.addr, r.fp, 1, false);
    assert_true(wait_for(&a, is_registered, 10));
    assert_int_equal(strncmp(a.reflexive, "127.0.0.1:", 10), 0);
    assert_int_equal(strlen(wzp_client_fingerprint(a.c)), WZP_FINGERPRINT_STRLEN - 1);
    assert_true(wzp_client_relay_rtt_ms(a.c) >= 0.0);
    peer_free(&a);
    relay_stop(&r);
}

static void test_call_direct(void **state)
{
    relay r;
    relay_start(&r, "relay-direct");
    peer a, b;
    peer_start(&a, "alice", r.addr, r.fp, 1, false);
    peer_start(&b, "bob", r.addr, r.fp, 2, false);
    run_call(&a, &b, 2.0, &b); /* the callee hangs up */
    wzp_call_stats sa, sb;
    assert_int_equal(wzp_call_get_stats(a.call, &sa), 0);
    assert_int_equal(wzp_call_get_stats(b.call, &sb), 0);
    /* Both went direct (a stalled, loaded machine may have fallen back for a moment since,
     * so the path at the end is not asserted). */
    assert_true(sa.time_to_direct_ms >= 0);
    assert_true(sb.time_to_direct_ms >= 0);
    assert_true(sa.path_changes >= 1);
    assert_true(sa.frames_received > 50);
    assert_true(sa.max_gap_ms > 0); /* frames arrive spaced: some interval was measured */
    assert_true(sa.time_to_first_audio_ms >= 0);
    printf("direct: first audio %lld ms, direct after %lld ms\n",
           (long long)sa.time_to_first_audio_ms, (long long)sa.time_to_direct_ms);
    assert_true(audio_matches(&a, &b));
    assert_true(audio_matches(&b, &a));
    peer_free(&a);
    peer_free(&b);
    relay_stop(&r);
}

/* A relay that sends every client a Retry (as under a handshake flood):
 * the real client follows it, registers, and calls as usual. */
static void test_call_through_retry(void **state)
{
    relay r;
    char home[128];
    snprintf(home, sizeof(home), "%s/%s", tmp_root, "relay-retry");
    next_retry_threshold = 0;
    relay_start_cfg(&r, home, "127.0.0.1:0", NULL, NULL);
    peer a, b;
    peer_start(&a, "alice", r.addr, r.fp, 5, true);
    peer_start(&b, "bob", r.addr, r.fp, 6, true);
    run_call(&a, &b, 1.0, &a);
    assert_true(audio_matches(&a, &b));
    peer_free(&a);
    peer_free(&b);
    wzp_relay_server_stop(r.srv);
    pthread_join(r.thread, NULL);
    wzp_relay_server_stats st;
    wzp_relay_server_get_stats(r.srv, &st);
    assert_true(st.quic.retries_sent >= 2);
    assert_true(st.quic.conns_accepted >= 2);
    assert_int_equal(st.quic.rx_bad_token, 0);
    wzp_relay_server_free(r.srv);
}

static void test_call_relay_only(void **state)
{
    relay r;
    relay_start(&r, "relay-only");
    peer a, b;
    peer_start(&a, "alice", r.addr, r.fp, 3, true);
    peer_start(&b, "bob", r.addr, r.fp, 4, true);
    run_call(&a, &b, 2.0, &a); /* the caller hangs up */
    wzp_call_stats sa;
    assert_int_equal(wzp_call_get_stats(a.call, &sa), 0);
    assert_int_equal(sa.path, WZP_PATH_RELAY);
    assert_int_equal(sa.time_to_direct_ms, -1);
    assert_int_equal(sa.path_changes, 0);
    assert_true(audio_matches(&a, &b));
    assert_true(audio_matches(&b, &a));
    peer_free(&a);
    peer_free(&b);
    relay_stop(&r);
}

/* --- the relay cannot read media ----------------------------------------------------------------
 */

typedef struct proxy {
    int front, back; /* client side, relay side */
    wzp_addr front_addr, relay, client;
    volatile bool stop;
    pthread_t thread;
    uint8_t *log; /* every datagram that crossed, concatenated */
    size_t log_n, log_cap, packets;
} proxy;

static void *proxy_main(void *arg)
{
    proxy *x = arg;
    uint8_t buf[2048];
    while (!x->stop) {
        struct pollfd pf[2] = {{x->front, POLLIN, 0}, {x->back, POLLIN, 0}};
        if (poll(pf, 2, 20) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (!(pf[i].revents & POLLIN))
                continue;
            wzp_udp_msg m = {.data = buf, .cap = sizeof(buf)};
            if (wzp_udp_recv_batch(i == 0 ? x->front : x->back, &m, 1) != 1 || m.len == 0)
                continue;
            if (x->log_n + m.len <= x->log_cap) {
                memcpy(x->log + x->log_n, buf, m.len);
                x->log_n += m.len;
                x->packets++;
            }
            if (i == 0) {
                x->client = m.peer;
                wzp_udp_send(x->back, &x->relay, buf, m.len);
            } else if (x->client.len) {
                wzp_udp_send(x->front, &x->client, buf, m.len);
            }
        }
    }
    return NULL;
}

static void test_relay_cannot_read_media(void **state)
{
    relay r;
    relay_start(&r, "relay-blind");
    proxy x = {0};
    x.log_cap = 64u << 20;
    x.log = malloc(x.log_cap);
    wzp_addr any;
    wzp_addr_parse(&any, "127.0.0.1:0", false);
    x.front = wzp_udp_open(&any, NULL, &x.front_addr);
    x.back = wzp_udp_open(&any, NULL, NULL);
    assert_true(x.front >= 0 && x.back >= 0);
    wzp_addr_parse(&x.relay, r.addr, false);
    assert_int_equal(pthread_create(&x.thread, NULL, proxy_main, &x), 0);
    char via[WZP_ADDR_STRLEN];
    wzp_addr_format(&x.front_addr, via, sizeof(via));

    /* alice reaches the relay only through the proxy; no direct path. */
    peer a, b;
    peer_start(&a, "alice", via, r.fp, 5, true);
    peer_start(&b, "bob", r.addr, r.fp, 6, true);
    run_call(&a, &b, 2.0, &a);
    x.stop = true;
    pthread_join(x.thread, NULL);
    assert_true(audio_matches(&a, &b)); /* the call worked through the proxy */
    assert_true(x.packets > 100);

    /* Encode what alice sent, as she did (same signal, same encoder settings): Opus is
     * deterministic, so these are her payloads byte for byte. Check that first. */
    wzp_media_tx_config tc;
    wzp_media_tx_config_default(&tc);
    wzp_media_tx *t1 = NULL, *t2 = NULL;
    assert_int_equal(wzp_media_tx_new(&t1, &tc), 0);
    assert_int_equal(wzp_media_tx_new(&t2, &tc), 0);
    size_t checked = 0, found = 0;
    for (size_t off = 0; off + WZP_FRAME_SAMPLES <= a.sent_n; off += WZP_FRAME_SAMPLES) {
        uint8_t d1[1200], d2[1200];
        int n1 = wzp_media_tx_frame(t1, a.sent + off, d1, sizeof(d1));
        int n2 = wzp_media_tx_frame(t2, a.sent + off, d2, sizeof(d2));
        assert_int_equal(n1, n2);
        if (n1 < 8 + 16)
            continue;
        assert_memory_equal(d1 + 8, d2 + 8, (size_t)n1 - 8); /* deterministic payloads */
        /* 16 bytes of the Opus payload (after the 8-byte media header). */
        if (memmem(x.log, x.log_n, d1 + 8, 16))
            found++;
        checked++;
    }
    printf("blind relay: %zu packets, %zu bytes crossed; %zu payloads checked, %zu seen\n",
           x.packets, x.log_n, checked, found);
    assert_true(checked > 50);
    assert_int_equal(found, 0);
    wzp_media_tx_free(t1);
    wzp_media_tx_free(t2);
    peer_free(&a);
    peer_free(&b);
    close(x.front);
    close(x.back);
    free(x.log);
    relay_stop(&r);
}

/* --- a relay that lies about the peer's fingerprint
 * ----------------------------------------------- */

static uint8_t liar_fp[WZP_FINGERPRINT_LEN];

static void lie_in_setup(void *user, uint8_t *msg, size_t *len, size_t cap)
{
    wzp_sig_msg m;
    if (wzp_sig_decode(msg, *len, &m) != 0 || m.type != WZP_SIG_CALL_SETUP ||
        m.u.setup.role != WZP_SIG_ROLE_CALLER)
        return;
    memcpy(m.u.setup.peer_fp, liar_fp, sizeof(liar_fp)); /* "the callee is this key" */
    int n = wzp_sig_encode(&m, msg, cap);
    if (n > 0)
        *len = (size_t)n;
}

static void test_lying_relay(void **state)
{
    wzp_identity *mallory;
    assert_int_equal(wzp_identity_generate(&mallory), 0);
    wzp_identity_fingerprint(mallory, liar_fp);
    wzp_identity_free(mallory);
    relay r;
    char home[128];
    snprintf(home, sizeof(home), "%s/relay-liar", tmp_root);
    relay_start_cfg(&r, home, "127.0.0.1:0", lie_in_setup, NULL);
    peer a, b;
    peer_start(&a, "alice", r.addr, r.fp, 7, false);
    peer_start(&b, "bob", r.addr, r.fp, 8, false);
    b.auto_answer = true;
    assert_true(wait_for(&a, is_registered, 10));
    assert_true(wait_for(&b, is_registered, 10));
    wzp_call *call;
    pthread_mutex_lock(&a.mu);
    assert_int_equal(wzp_client_call(a.c, "bob", &call), 0);
    a.call = call;
    pthread_mutex_unlock(&a.mu);
    assert_true(wait_for(&a, is_ended, 15));
    printf("lying relay: %s\n", a.detail);
    assert_false(a.active);
    assert_int_equal(a.reason, WZP_ERR_PIN_MISMATCH);
    assert_non_null(strstr(a.detail, "man-in-the-middle"));
    char liar[WZP_FINGERPRINT_STRLEN];
    wzp_fingerprint_format(liar_fp, liar, sizeof(liar));
    assert_non_null(strstr(a.detail, liar));
    assert_true(wait_for(&b, is_ended, 15));
    /* The relay lied only to alice: bob was told the truth, so whatever bob saw (its
     * connection may have come up while it rang, before alice aborted) was alice's real
     * key; alice's audio never played there. */
    assert_string_equal(wzp_call_peer_fingerprint(b.call), wzp_client_fingerprint(a.c));
    assert_int_equal(b.rec_n, 0);
    peer_free(&a);
    peer_free(&b);
    relay_stop(&r);
}

/* --- the relay restarts: the client registers again
 * ----------------------------------------------- */

static bool registered_twice(peer *p)
{
    return p->registrations >= 2;
}

static void test_reconnect(void **state)
{
    relay r;
    char home[128];
    snprintf(home, sizeof(home), "%s/relay-restart", tmp_root);
    relay_start_cfg(&r, home, "127.0.0.1:0", NULL, NULL);
    char addr[WZP_ADDR_STRLEN];
    snprintf(addr, sizeof(addr), "%s", r.addr);
    peer a;
    peer_start(&a, "alice", r.addr, r.fp, 9, false);
    assert_true(wait_for(&a, is_registered, 10));
    relay_stop(&r);
    sleep_ms(300);
    relay_start_cfg(&r, home, addr, NULL, NULL); /* same port, same identity */
    assert_true(wait_for(&a, registered_twice, 20));
    assert_int_equal(a.unreg_err, WZP_ERR_UNREACHABLE);
    peer_free(&a);
    relay_stop(&r);
}

int main(void)
{
    if (getenv("WZP_TEST_VERBOSE"))
        wzp_set_log_level(WZP_LOG_INFO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_audio_matches_checker),
        cmocka_unit_test(test_register_reflect),
        cmocka_unit_test(test_call_direct),
        cmocka_unit_test(test_call_relay_only),
        cmocka_unit_test(test_call_through_retry),
        cmocka_unit_test(test_relay_cannot_read_media),
        cmocka_unit_test(test_lying_relay),
        cmocka_unit_test(test_reconnect),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
