/*
 * Unit tests for the path manager (src/ice/agent): two agents on the shared
 * simulated network (tests/support/netsim) on its virtual clock, each a host
 * with one socket per address family, public or behind a netsim NAT, and a
 * netsim relay that carries the call's media while no direct pair is proven
 * (and whose view of each side is its server-reflexive candidate). The NAT
 * matrix (every pair of NAT behaviours) lives in tests/support/natmatrix.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "common/addr.h"
#include "ice/agent.h"
#include "support/netsim.h"
#include "wire/demux.h"
#include "wire/probe.h"

/* ---- the world: two agents on netsim ---------------------------------------------------- */

#define RELAY_ADDR "192.0.2.250:3478"
/* One-way latency between the peers (and from either to the relay) unless a test says so. */
#define PATH       WZP_MS(10)
#define MEDIA_BYTE 0x40 /* a QUIC short-header packet of the call */

typedef struct world world;

typedef struct node {
    world *w;
    int idx;
    wzp_ice_agent *ag;
    wzp_sim_host *host;
    wzp_sim_sock *sock[WZP_ICE_SOCK_COUNT];
    wzp_addr addr[WZP_ICE_SOCK_COUNT]; /* the sockets' local addresses (host candidates) */
    wzp_sim_router *nat;               /* its NAT; NULL when public */
    wzp_addr srflx;                    /* its IPv4 socket as the relay saw it */
    uint64_t wake_id;
    wzp_ts wake_at;
    int local_cands, valid_pairs;
    wzp_candidate last_local;
    wzp_ts first_pair_rtt;
    /* Route log. */
    int route_events;
    wzp_ice_route route;
    wzp_route_reason last_reason;
    wzp_ts last_route_at;
    /* Media accounting (packets from the peer, relayed or direct). */
    wzp_ts last_media_rx, max_media_gap;
    uint64_t media_rx;
    uint64_t requests_tx;
    wzp_ts last_request_tx, min_request_gap;
} node;

struct world {
    wzp_sim *sim;
    wzp_sim_relay *relay;
    node n[2];
    wzp_ts media_interval; /* 0 = no media */
};

/* An agent (cfg NULL: defaults). */
static wzp_ice_agent *ice_new(const wzp_ice_config *cfg)
{
    wzp_ice_agent *a = NULL;
    assert_int_equal(wzp_ice_new(&a, cfg), 0);
    return a;
}

static wzp_addr A(const char *text)
{
    wzp_addr a;
    assert_int_equal(wzp_addr_parse(&a, text, false), 0);
    return a;
}

static wzp_ts tnow(const world *s)
{
    return wzp_sim_now(s->sim);
}

static void on_route(void *user, const wzp_ice_route *r, wzp_route_reason reason)
{
    node *n = user;
    n->route_events++;
    n->route = *r;
    n->last_reason = reason;
    n->last_route_at = tnow(n->w);
}

static void on_local(void *user, const wzp_candidate *c)
{
    node *n = user;
    n->local_cands++;
    n->last_local = *c;
}

static void on_valid(void *user, int sock, const wzp_addr *remote, wzp_ts rtt)
{
    node *n = user;
    (void)sock;
    (void)remote;
    if (!n->valid_pairs++)
        n->first_pair_rtt = rtt;
}

/* Sends what the agent has to send, runs its timers, and sets its next wake-up. */
static void node_service(node *n);

static void node_wake(void *ctx)
{
    node *n = ctx;
    n->wake_id = 0;
    n->wake_at = WZP_TS_NEVER;
    node_service(n);
}

static void node_service(node *n)
{
    wzp_sim *sim = n->w->sim;
    wzp_ts now = wzp_sim_now(sim);
    uint8_t buf[WZP_PROBE_MAX_LEN];
    int sock, len;
    wzp_addr dst;
    wzp_ice_handle_timer(n->ag, now);
    while ((len = wzp_ice_poll_transmit(n->ag, now, buf, sizeof(buf), &sock, &dst)) > 0) {
        if (buf[0] == WZP_PROBE_REQUEST) {
            if (n->requests_tx && now - n->last_request_tx < n->min_request_gap)
                n->min_request_gap = now - n->last_request_tx;
            n->last_request_tx = now;
            n->requests_tx++;
        }
        if (n->sock[sock])
            assert_int_equal(wzp_sim_send(n->sock[sock], &dst, buf, (size_t)len), 0);
    }
    assert_int_equal(len, 0);
    wzp_ts next = wzp_ice_next_deadline(n->ag);
    if (next <= now)
        next = now + 1; /* a deadline in the past was just served */
    if (next == n->wake_at)
        return;
    if (n->wake_id)
        wzp_sim_cancel(sim, n->wake_id);
    n->wake_id = 0;
    n->wake_at = next;
    if (next != WZP_TS_NEVER)
        n->wake_id = wzp_sim_at(sim, next, node_wake, n);
}

static void media_rx(node *n)
{
    wzp_ts now = tnow(n->w);
    if (n->media_rx && now - n->last_media_rx > n->max_media_gap)
        n->max_media_gap = now - n->last_media_rx;
    n->last_media_rx = now;
    n->media_rx++;
}

static void node_recv(void *ctx, wzp_sim_sock *sock, const wzp_addr *from, const uint8_t *data,
                      size_t len)
{
    node *n = ctx;
    int si = sock == n->sock[WZP_ICE_SOCK_V6] ? WZP_ICE_SOCK_V6 : WZP_ICE_SOCK_V4;
    assert_true(len > 0);
    if (wzp_addr_equal(from, wzp_sim_relay_addr(n->w->relay))) {
        assert_int_equal(data[0], MEDIA_BYTE);
        media_rx(n);
        return;
    }
    if (wzp_pkt_classify(data, len) == WZP_PKT_PROBE) {
        wzp_ice_recv(n->ag, si, from, data, len, tnow(n->w));
    } else {
        assert_int_equal(data[0], MEDIA_BYTE);
        media_rx(n);
        wzp_ice_note_rx(n->ag, si, from, tnow(n->w));
    }
    node_service(n);
}

/* Each side sends one media packet where its route says, every media_interval. */
static void media_tick(void *ctx)
{
    world *s = ctx;
    for (int i = 0; i < 2; i++) {
        node *n = &s->n[i];
        const uint8_t pkt[2] = {MEDIA_BYTE, (uint8_t)i};
        wzp_ice_route r = wzp_ice_route_get(n->ag);
        if (r.kind == WZP_ROUTE_DIRECT)
            assert_int_equal(wzp_sim_send(n->sock[r.sock], &r.remote, pkt, sizeof(pkt)), 0);
        else
            assert_int_equal(
                wzp_sim_relay_send(s->relay, n->sock[WZP_ICE_SOCK_V4], i, pkt, sizeof(pkt)), 0);
    }
    wzp_sim_at(s->sim, tnow(s) + s->media_interval, media_tick, s);
}

static uint8_t test_key[WZP_PROBE_KEY_LEN];

static void node_init(world *s, int i, const wzp_ice_config *base)
{
    node *n = &s->n[i];
    n->w = s;
    n->idx = i;
    wzp_ice_config cfg;
    if (base)
        cfg = *base;
    else
        wzp_ice_config_default(&cfg);
    cfg.cb.route_changed = on_route;
    cfg.cb.local_candidate = on_local;
    cfg.cb.pair_valid = on_valid;
    cfg.user = n;
    cfg.agent_id[0] = (uint8_t)(i + 1);
    n->ag = ice_new(&cfg);
    assert_non_null(n->ag);
    n->host = wzp_sim_host_new(s->sim, i ? "B" : "A");
    n->wake_at = WZP_TS_NEVER;
    n->min_request_gap = WZP_TS_NEVER;
}

/* An empty world at t = 1 s: the relay (PATH away from the internet) and two idle agents. */
static void sim_init(world *s, uint64_t seed, const wzp_ice_config *cfg)
{
    memset(s, 0, sizeof(*s));
    s->sim = wzp_sim_new(seed);
    s->relay = wzp_sim_relay_new(s->sim, RELAY_ADDR, (wzp_sim_link){.latency = PATH});
    assert_non_null(s->relay);
    wzp_sim_run_until(s->sim, WZP_SEC(1));
    for (int i = 0; i < WZP_PROBE_KEY_LEN; i++)
        test_key[i] = (uint8_t)(0x55 ^ i);
    node_init(s, 0, cfg);
    node_init(s, 1, cfg);
}

static void sim_free(world *s)
{
    wzp_ice_free(s->n[0].ag);
    wzp_ice_free(s->n[1].ag);
    wzp_sim_free(s->sim);
    s->sim = NULL;
}

/* "ip:port" or "[ip6]:port" -> the bare ip text. */
static void ip_of(const char *addr, char *ip, size_t cap)
{
    const char *b = addr[0] == '[' ? addr + 1 : addr;
    const char *e = addr[0] == '[' ? strchr(b, ']') : strrchr(b, ':');
    assert_non_null(e);
    assert_true((size_t)(e - b) < cap);
    memcpy(ip, b, (size_t)(e - b));
    ip[e - b] = '\0';
}

/* A path with latency and jitter (which may reorder packets, as on a real path). */
static wzp_sim_link jittery(wzp_ts latency, wzp_ts jitter)
{
    return (wzp_sim_link){.latency = latency, .jitter = jitter, .reorder = jitter > 0};
}

/* Changes the link of the internet attachment at ip (no port). */
static void set_link(world *s, const char *ip, wzp_sim_link link)
{
    assert_int_equal(wzp_sim_link_set(s->sim, wzp_sim_internet(s->sim), ip, link), 0);
}

/* Node i gets a socket at addr ("ip:port") on net through a link, and it as a host candidate. */
static void attach(world *s, int i, wzp_sim_net *net, const char *addr, wzp_sim_link link)
{
    node *n = &s->n[i];
    char ip[64];
    wzp_addr a = A(addr);
    int sock = wzp_cand_sock_for(&a);
    ip_of(addr, ip, sizeof(ip));
    assert_int_equal(wzp_sim_host_add_addr(n->host, net, ip, link), 0);
    n->sock[sock] = wzp_sim_sock_bind_addr(n->host, &a, node_recv, n);
    assert_non_null(n->sock[sock]);
    n->addr[sock] = a;
    assert_int_equal(wzp_ice_add_local(n->ag, WZP_CAND_HOST, &a), 0);
}

static void attach_public(world *s, int i, const char *addr, wzp_ts latency)
{
    attach(s, i, wzp_sim_internet(s->sim), addr, (wzp_sim_link){.latency = latency});
}

/* A NAT on the internet at wan_ip whose LAN is lan_ip; returns the LAN. */
static wzp_sim_net *nat_new(world *s, const char *wan_ip, wzp_sim_link wan, const char *lan_ip,
                            wzp_sim_link lan, const wzp_sim_nat_cfg *cfg, wzp_sim_router **out)
{
    *out =
        wzp_sim_router_new(s->sim, wan_ip, wzp_sim_internet(s->sim), wan_ip, wan, lan_ip, lan, cfg);
    assert_non_null(*out);
    return wzp_sim_router_lan(*out);
}

/*
 * Both register with the relay from their IPv4 socket (again while lost on
 * a lossy link); what the relay saw is each one's server-reflexive address.
 */
static void register_relay(world *s)
{
    for (int tries = 0; tries < 40; tries++) {
        bool done = true;
        for (int i = 0; i < 2; i++)
            if (!wzp_sim_relay_seen(s->relay, i)) {
                done = false;
                assert_int_equal(
                    wzp_sim_relay_send(s->relay, s->n[i].sock[WZP_ICE_SOCK_V4], i, NULL, 0), 0);
            }
        if (done)
            break;
        wzp_sim_run_until(s->sim, tnow(s) + WZP_MS(250));
    }
    for (int i = 0; i < 2; i++) {
        assert_non_null(wzp_sim_relay_seen(s->relay, i));
        s->n[i].srflx = *wzp_sim_relay_seen(s->relay, i);
    }
}

/* Where node i's NAT maps its IPv4 socket for packets to `remote` right now. */
static wzp_addr mapping_of(world *s, int i, const wzp_addr *remote)
{
    wzp_addr ext;
    assert_non_null(s->n[i].nat);
    assert_true(wzp_sim_router_mapped(s->n[i].nat, &s->n[i].addr[WZP_ICE_SOCK_V4], remote, &ext));
    return ext;
}

/* Runs the world until `until` (virtual time), after serving what the test just did. */
static void sim_run(world *s, wzp_ts until)
{
    node_service(&s->n[0]);
    node_service(&s->n[1]);
    wzp_sim_run_until(s->sim, until);
}

/* Every direct packet is dropped (cut), or passes again; the relay is not affected. */
static void cut(world *s, bool on)
{
    wzp_sim_host_set_drop_direct(s->n[0].host, on);
    wzp_sim_host_set_drop_direct(s->n[1].host, on);
}

static bool is_probe(void *ctx, const wzp_addr *src, const wzp_addr *dst, const uint8_t *data,
                     size_t len)
{
    (void)ctx;
    (void)src;
    (void)dst;
    return wzp_pkt_classify(data, len) == WZP_PKT_PROBE;
}

/* Node i gets the call's probe key now: its checks start. */
static void key(world *s, int i)
{
    assert_int_equal(wzp_ice_set_key(s->n[i].ag, test_key, tnow(s)), 0);
}

static void start(world *s)
{
    key(s, 0);
    key(s, 1);
}

static void run_for(world *s, wzp_ts d)
{
    sim_run(s, tnow(s) + d);
}

static wzp_ice_route route(const world *s, int i)
{
    return wzp_ice_route_get(s->n[i].ag);
}

static wzp_ice_stats stats(const world *s, int i)
{
    wzp_ice_stats st;
    wzp_ice_get_stats(s->n[i].ag, &st);
    return st;
}

static void add_remote_addr(world *s, int i, wzp_cand_type t, const wzp_addr *a)
{
    assert_int_equal(wzp_ice_add_remote(s->n[i].ag, t, a, tnow(s)), 0);
}

static void add_remote(world *s, int i, wzp_cand_type t, const char *addr)
{
    wzp_addr a = A(addr);
    add_remote_addr(s, i, t, &a);
}

static void add_local(world *s, int i, wzp_cand_type t, const wzp_addr *a)
{
    assert_int_equal(wzp_ice_add_local(s->n[i].ag, t, a), 0);
}

static bool both_direct(world *s)
{
    return route(s, 0).kind == WZP_ROUTE_DIRECT && route(s, 1).kind == WZP_ROUTE_DIRECT;
}

/* A public at 198.51.100.1:4000, B public at 203.0.113.2:5000, PATH apart (B's link). */
static void public_pair(world *s, const wzp_ice_config *cfg)
{
    sim_init(s, 1, cfg);
    attach_public(s, 0, "198.51.100.1:4000", 0);
    attach_public(s, 1, "203.0.113.2:5000", PATH);
    register_relay(s);
}

/* The public pair, each knowing the other's address. */
static void setup_public(world *s, const wzp_ice_config *cfg)
{
    public_pair(s, cfg);
    add_remote(s, 0, WZP_CAND_HOST, "203.0.113.2:5000");
    add_remote(s, 1, WZP_CAND_HOST, "198.51.100.1:4000");
}

/*
 * A public (198.51.100.1:4000); B at 10.0.0.2:5000 behind an endpoint-
 * independent NAT with address-dependent filtering at 203.0.113.9 (PATH
 * away). With srflx, B knows its server-reflexive address (from the relay).
 */
static void setup_b_nat(world *s, bool srflx)
{
    sim_init(s, 2, NULL);
    attach_public(s, 0, "198.51.100.1:4000", 0);
    wzp_sim_nat_cfg cfg = {.mapping = WZP_SIM_EI, .filtering = WZP_SIM_AD};
    wzp_sim_net *lan = nat_new(s, "203.0.113.9", (wzp_sim_link){.latency = PATH}, "10.0.0.1",
                               (wzp_sim_link){0}, &cfg, &s->n[1].nat);
    attach(s, 1, lan, "10.0.0.2:5000", (wzp_sim_link){0});
    register_relay(s);
    if (srflx)
        add_local(s, 1, WZP_CAND_SRFLX, &s->n[1].srflx);
}

/* Both public on v4 and v6, each knowing both of the other's addresses, PATH apart. */
static void setup_dual_stack(world *s)
{
    static const char *const a[] = {"198.51.100.1:4000", "[2001:db8:a::1]:4000"};
    static const char *const b[] = {"203.0.113.2:5000", "[2001:db8:b::2]:5000"};
    sim_init(s, 3, NULL);
    for (int k = 0; k < 2; k++) {
        attach_public(s, 0, a[k], 0);
        attach_public(s, 1, b[k], PATH);
    }
    register_relay(s);
    for (int k = 0; k < 2; k++)
        add_remote(s, 0, WZP_CAND_HOST, b[k]);
    for (int k = 0; k < 2; k++)
        add_remote(s, 1, WZP_CAND_HOST, a[k]);
}

/*
 * Both on one LAN (A 192.168.1.10:4000, B 192.168.1.20:5000, 300 us apart)
 * behind one endpoint-independent NAT at 203.0.113.1. With hairpin, a
 * packet to the other's server-reflexive address loops through the NAT
 * (2 ms one way); without, it is dropped there.
 */
static void setup_lan(world *s, bool hairpin)
{
    sim_init(s, 4, NULL);
    wzp_sim_nat_cfg cfg = {.mapping = WZP_SIM_EI, .filtering = WZP_SIM_EI, .hairpin = hairpin};
    wzp_sim_router *r;
    wzp_sim_net *lan = nat_new(s, "203.0.113.1", (wzp_sim_link){.latency = PATH}, "192.168.1.1",
                               (wzp_sim_link){.latency = WZP_US(850)}, &cfg, &r);
    s->n[0].nat = s->n[1].nat = r;
    attach(s, 0, lan, "192.168.1.10:4000", (wzp_sim_link){.latency = WZP_US(150)});
    attach(s, 1, lan, "192.168.1.20:5000", (wzp_sim_link){.latency = WZP_US(150)});
    register_relay(s);
}

/* Runs for `run`: then both are direct, node i having gone direct within `max` of now. */
static void run_until_direct_within(world *s, wzp_ts run, int i, wzp_ts max)
{
    wzp_ts since = tnow(s);
    run_for(s, run);
    assert_true(both_direct(s));
    assert_true(stats(s, i).first_direct_at - since <= max);
}

/* Media both ways every 20 ms (50 packets/s) from now on. */
static void media_on(world *s)
{
    s->media_interval = WZP_MS(20);
    wzp_sim_at(s->sim, tnow(s), media_tick, s);
}

/* Restarts the media gap measurement. */
static void gaps_reset(world *s)
{
    s->n[0].max_media_gap = s->n[1].max_media_gap = 0;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_both_direct(void **state)
{
    (void)state;
    static world s;
    setup_public(&s, NULL);
    /* Nothing happens before the key. */
    run_for(&s, WZP_MS(100));
    assert_int_equal(s.n[0].requests_tx, 0);
    assert_int_equal(route(&s, 0).kind, WZP_ROUTE_RELAY);

    wzp_ts t0 = tnow(&s);
    start(&s);
    run_for(&s, WZP_MS(500));
    assert_true(both_direct(&s));
    for (int i = 0; i < 2; i++) {
        wzp_ice_route r = route(&s, i);
        assert_int_equal(r.sock, WZP_ICE_SOCK_V4);
        assert_true(wzp_addr_equal(&r.remote, &s.n[1 - i].addr[WZP_ICE_SOCK_V4]));
        /* The RTT of the path set up as PATH each way, no jitter: 2 PATH (+1 ms smoothing). */
        assert_true(r.rtt >= 2 * PATH && r.rtt <= 2 * PATH + WZP_MS(1));
        assert_int_equal(s.n[i].last_reason, WZP_ROUTE_FIRST_DIRECT);
        wzp_ice_stats st = stats(&s, i);
        assert_int_equal(st.started_at, t0);
        assert_true(st.first_valid_at != WZP_TS_NEVER && st.first_direct_at != WZP_TS_NEVER);
        assert_true(st.first_rtt >= 2 * PATH);
        assert_int_equal(st.route_changes, 1);
        assert_int_equal(st.pairs_valid, 1);
        assert_int_equal(st.rx_auth_failed, 0);
        /* Both sides report the pair as confirmed by the peer and used by the peer. */
        wzp_ice_pair_info pi[4];
        assert_int_equal(wzp_ice_pairs(s.n[i].ag, pi, 4), 1);
        assert_true(pi[0].active && pi[0].peer_valid && pi[0].peer_active);
    }
    /* Stays direct and keeps probing (keepalive) for a long quiet period. */
    uint64_t before = s.n[0].requests_tx;
    run_for(&s, WZP_SEC(60));
    assert_true(both_direct(&s));
    assert_int_equal(s.n[0].route_events, 1);
    assert_true(s.n[0].requests_tx - before >= 60 * 15);
    sim_free(&s);
}

/*
 * Birthday probing never slows a pair that works anyway: A believes itself a
 * port-restricted cone and B symmetric (so A would spray B's ports), but the
 * hosts are public and the first checks prove the pair before the probing
 * is due (it would start 100 ms after the checks): no probe goes out, and
 * the call is direct as fast as without NAT information.
 */
static void test_birthday_not_needed(void **state)
{
    (void)state;
    static world s;
    setup_public(&s, NULL);
    /* B's srflx as the relay would report it: the probing's target. */
    add_remote(&s, 0, WZP_CAND_SRFLX, "203.0.113.2:5001");
    const wzp_sig_nat prc = {.mapping = 1, .filtering = 3, .ports = 1};
    const wzp_sig_nat sym = {
        .mapping = 3, .filtering = 3, .ports = 4, .port_lo = 1024, .port_hi = 65535};
    assert_int_equal(wzp_ice_set_nat(s.n[0].ag, &prc, &sym, tnow(&s)), WZP_BDAY_SPRAY);
    assert_int_equal(wzp_ice_set_nat(s.n[1].ag, &sym, &prc, tnow(&s)), WZP_BDAY_NONE); /* no aux */
    wzp_ts t0 = tnow(&s);
    start(&s);
    run_for(&s, WZP_SEC(2));
    assert_true(both_direct(&s));
    wzp_ice_stats st = stats(&s, 0);
    assert_int_equal(st.bday_role, WZP_BDAY_SPRAY);
    assert_int_equal(st.bday_sent, 0);
    assert_int_equal(st.bday_success_at, WZP_TS_NEVER);
    assert_true(st.first_direct_at - t0 <= 2 * PATH + WZP_MS(10));
    sim_free(&s);
}

static void test_paced_not_burst(void **state)
{
    (void)state;
    static world s;
    public_pair(&s, NULL);
    /* Twelve candidates nobody answers on, plus the real one. */
    char buf[64];
    for (int k = 0; k < 12; k++) {
        snprintf(buf, sizeof(buf), "192.0.2.%d:%d", 10 + k, 6000 + k);
        add_remote(&s, 0, WZP_CAND_SRFLX, buf);
    }
    add_remote(&s, 0, WZP_CAND_HOST, "203.0.113.2:5000");
    start(&s);
    run_for(&s, WZP_MS(300));
    wzp_ice_config d;
    wzp_ice_config_default(&d);
    assert_true(s.n[0].requests_tx >= 13);
    assert_true(s.n[0].min_request_gap >= d.pace);
    /* B never got B's candidates from A, yet learned A as peer-reflexive and both went direct. */
    assert_true(both_direct(&s));
    /* After the startup window the 12 dead pairs back off to the cap: ~0.2 probes/s each. */
    run_for(&s, WZP_SEC(10));
    uint64_t before = s.n[0].requests_tx;
    run_for(&s, WZP_SEC(60));
    uint64_t per_min = s.n[0].requests_tx - before;
    /* 50 ms keepalive (1200/min) + 12 pairs at 5 s (144/min) + small change. */
    assert_true(per_min < 1200 + 12 * 14 + 50);
    sim_free(&s);
}

static void test_prflx_through_nat(void **state)
{
    (void)state;
    static world s;
    /* B behind an EIM NAT; it only tells A its private address (no srflx known). */
    setup_b_nat(&s, false);
    add_remote(&s, 0, WZP_CAND_HOST, "10.0.0.2:5000");
    add_remote(&s, 1, WZP_CAND_HOST, "198.51.100.1:4000");
    start(&s);
    run_for(&s, WZP_MS(800));
    assert_true(both_direct(&s));
    wzp_ice_stats st = stats(&s, 0);
    assert_int_equal(st.prflx_learned, 1);
    /* A sends to B's mapping towards A, which it learned from B's probes. */
    wzp_addr b_pub = mapping_of(&s, 1, &s.n[0].addr[WZP_ICE_SOCK_V4]);
    wzp_ice_route r = route(&s, 0);
    assert_true(wzp_addr_equal(&r.remote, &b_pub));
    /* B learned its public mapping from A's responses (for trickling). */
    wzp_candidate lc[4];
    size_t nl = wzp_ice_local_candidates(s.n[1].ag, lc, 4);
    bool found = false;
    for (size_t k = 0; k < nl && k < 4; k++)
        found |= lc[k].type == WZP_CAND_PRFLX && wzp_addr_equal(&lc[k].addr, &b_pub);
    assert_true(found);
    /* ... and said so (to be trickled to A), and both reported the pair's first RTT. */
    assert_int_equal(s.n[1].local_cands, 1);
    assert_true(wzp_addr_equal(&s.n[1].last_local.addr, &b_pub));
    assert_int_equal(s.n[0].local_cands, 0); /* A is not NATed: nothing new to learn */
    for (int i = 0; i < 2; i++) {
        assert_int_equal(s.n[i].valid_pairs, 1);
        /* Exactly the path's round trip: PATH each way, no jitter. */
        assert_int_equal(s.n[i].first_pair_rtt, 2 * PATH);
    }
    sim_free(&s);
}

static void test_failover_and_recovery(void **state)
{
    (void)state;
    static world s;
    /* A public, B behind the NAT with its srflx known: the common case. */
    setup_b_nat(&s, true);
    add_remote(&s, 0, WZP_CAND_HOST, "10.0.0.2:5000");
    add_remote_addr(&s, 0, WZP_CAND_SRFLX, &s.n[1].srflx);
    add_remote(&s, 1, WZP_CAND_HOST, "198.51.100.1:4000");
    media_on(&s); /* 50 packets/s both ways */
    start(&s);
    run_for(&s, WZP_SEC(2));
    assert_true(both_direct(&s));

    /* Cut the direct path mid-call. */
    wzp_ts cut_at = tnow(&s);
    cut(&s, true);
    gaps_reset(&s);
    run_for(&s, WZP_SEC(2));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(route(&s, i).kind, WZP_ROUTE_RELAY);
        assert_int_equal(s.n[i].last_reason, WZP_ROUTE_PATH_DEAD);
        /* The fallback happened within 200 ms of the cut ... */
        assert_true(s.n[i].last_route_at - cut_at <= WZP_MS(200));
        /* ... and the media gap (incl. the relay leg) stayed within 300 ms. */
        assert_true(s.n[i].max_media_gap <= WZP_MS(300));
        print_message("node %d: fallback after %.0f ms, media gap %.0f ms\n", i,
                      (double)(s.n[i].last_route_at - cut_at) / 1e6,
                      (double)s.n[i].max_media_gap / 1e6);
        wzp_ice_stats st = stats(&s, i);
        assert_int_equal(st.fallbacks, 1);
    }
    /* Re-probing backs off while cut: a few probes per second, not a storm. */
    uint64_t before = s.n[0].requests_tx;
    run_for(&s, WZP_SEC(10));
    assert_true(s.n[0].requests_tx - before < 40);

    /* The path comes back: both sides return to direct by themselves. */
    cut(&s, false);
    wzp_ts back_at = tnow(&s);
    run_for(&s, WZP_SEC(7));
    assert_true(both_direct(&s));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(s.n[i].last_reason, WZP_ROUTE_RECOVERED);
        /* Backoff cap (5 s) plus one round trip. */
        assert_true(s.n[i].last_route_at - back_at <= WZP_MS(5200));
    }
    sim_free(&s);
}

static void test_hysteresis_no_flapping(void **state)
{
    (void)state;
    static world s;
    /* B reachable at two public addresses (v4 and v6), similar latency, lots of jitter. */
    setup_dual_stack(&s);
    set_link(&s, "203.0.113.2", jittery(WZP_MS(15), WZP_MS(12)));
    set_link(&s, "2001:db8:b::2", jittery(WZP_MS(16), WZP_MS(12)));
    start(&s);
    run_for(&s, WZP_SEC(120));
    assert_true(both_direct(&s));
    for (int i = 0; i < 2; i++) {
        wzp_ice_stats st = stats(&s, i);
        assert_int_equal(st.pairs_valid, 2);
        /* First direct, at most one deliberate switch; no flapping. */
        assert_true(st.route_changes <= 2);
    }
    /* Both ends settle on the same path (same family). */
    assert_int_equal(route(&s, 0).sock, route(&s, 1).sock);

    /* Now the v6 path gets clearly better (15 -> 3 ms one way): switch, once. */
    set_link(&s, "203.0.113.2", jittery(WZP_MS(40), WZP_MS(2)));
    set_link(&s, "2001:db8:b::2", jittery(WZP_MS(5), WZP_MS(2)));
    int ev0 = s.n[0].route_events;
    run_for(&s, WZP_SEC(30));
    for (int i = 0; i < 2; i++) {
        wzp_ice_route r = route(&s, i);
        assert_int_equal(r.kind, WZP_ROUTE_DIRECT);
        assert_int_equal(r.sock, WZP_ICE_SOCK_V6);
    }
    assert_true(s.n[0].route_events - ev0 <= 1);
    sim_free(&s);
}

static void test_lan_preferred(void **state)
{
    (void)state;
    static world s;
    /* Same LAN; srflx candidates at a NAT that does not hairpin (dropped there). */
    setup_lan(&s, false);
    add_remote_addr(&s, 0, WZP_CAND_SRFLX, &s.n[1].srflx);
    add_remote(&s, 0, WZP_CAND_HOST, "192.168.1.20:5000");
    add_remote_addr(&s, 1, WZP_CAND_SRFLX, &s.n[0].srflx);
    add_remote(&s, 1, WZP_CAND_HOST, "192.168.1.10:4000");
    start(&s);
    run_for(&s, WZP_MS(300));
    assert_true(both_direct(&s));
    wzp_ice_route r = route(&s, 0);
    assert_true(wzp_addr_equal(&r.remote, &s.n[1].addr[WZP_ICE_SOCK_V4]));
    wzp_ice_stats st = stats(&s, 0);
    /* Direct within a few pacing slots of the start on a LAN. */
    assert_true(st.first_direct_at - st.started_at <= WZP_MS(20));
    /* The srflx pairs were tried, and the NAT refused to hairpin them. */
    assert_true(wzp_sim_router_stats(s.n[0].nat)->dropped_hairpin > 0);
    sim_free(&s);
}

/* Records what an agent sends so the test can feed packets by hand. */
static int poll_one(wzp_ice_agent *ag, wzp_ts now, uint8_t *buf, int *sock, wzp_addr *dst)
{
    return wzp_ice_poll_transmit(ag, now, buf, WZP_PROBE_MAX_LEN, sock, dst);
}

static void test_forged_ignored(void **state)
{
    (void)state;
    static world s;
    setup_public(&s, NULL);
    start(&s);
    wzp_ice_agent *a = s.n[0].ag;
    wzp_addr peer = s.n[1].addr[WZP_ICE_SOCK_V4], stranger = A("192.0.2.66:666");
    wzp_ts now = tnow(&s);

    /* A request signed with another key (same call tag: an attacker who knows signaling). */
    uint8_t evil_key[WZP_PROBE_KEY_LEN], buf[WZP_PROBE_MAX_LEN];
    memset(evil_key, 0x11, sizeof(evil_key));
    wzp_probe p;
    memset(&p, 0, sizeof(p));
    p.type = WZP_PROBE_REQUEST;
    memcpy(p.tag, wzp_ice_tag(a), WZP_PROBE_TAG_LEN);
    p.sender[0] = 0x77;
    int n = wzp_probe_encode(&p, evil_key, buf, sizeof(buf));
    assert_int_equal(wzp_ice_recv(a, WZP_ICE_SOCK_V4, &stranger, buf, (size_t)n, now),
                     WZP_ERR_PROTOCOL);
    /* A forged response to a real outstanding request (txid sniffed): also rejected. */
    int sock;
    wzp_addr dst;
    uint8_t req[WZP_PROBE_MAX_LEN];
    assert_true(poll_one(a, now, req, &sock, &dst) > 0);
    wzp_probe q;
    assert_int_equal(wzp_probe_decode(&q, test_key, NULL, req, WZP_PROBE_REQUEST_LEN), 0);
    q.type = WZP_PROBE_RESPONSE;
    q.observed = peer;
    n = wzp_probe_encode(&q, evil_key, buf, sizeof(buf));
    assert_int_equal(wzp_ice_recv(a, WZP_ICE_SOCK_V4, &peer, buf, (size_t)n, now),
                     WZP_ERR_PROTOCOL);
    /* Another call's probe. */
    uint8_t other_key[WZP_PROBE_KEY_LEN];
    memset(other_key, 0x22, sizeof(other_key));
    wzp_probe_derive_tag(other_key, p.tag);
    n = wzp_probe_encode(&p, other_key, buf, sizeof(buf));
    assert_int_equal(wzp_ice_recv(a, WZP_ICE_SOCK_V4, &stranger, buf, (size_t)n, now),
                     WZP_ERR_NOT_FOUND);
    /* Our own request reflected back to us (same key, our sender id). */
    assert_int_equal(wzp_ice_recv(a, WZP_ICE_SOCK_V4, &peer, req, WZP_PROBE_REQUEST_LEN, now),
                     WZP_ERR_PROTOCOL);
    /* Garbage, and a QUIC-looking packet. */
    uint8_t junk[40] = {0x90, 1, 2, 3};
    assert_int_equal(wzp_ice_recv(a, WZP_ICE_SOCK_V4, &peer, junk, sizeof(junk), now),
                     WZP_ERR_MALFORMED);
    junk[0] = 0xc3;
    assert_int_equal(wzp_ice_recv(a, WZP_ICE_SOCK_V4, &peer, junk, sizeof(junk), now),
                     WZP_ERR_MALFORMED);
    /* Family/socket mismatch. */
    assert_int_equal(wzp_ice_recv(a, WZP_ICE_SOCK_V6, &peer, req, WZP_PROBE_REQUEST_LEN, now),
                     WZP_ERR_INVALID);

    wzp_ice_stats st;
    wzp_ice_get_stats(a, &st);
    assert_int_equal(st.rx_auth_failed, 2);
    assert_int_equal(st.rx_wrong_tag, 1);
    assert_int_equal(st.rx_reflected, 1);
    assert_int_equal(st.rx_malformed, 3);
    assert_int_equal(st.prflx_learned, 0);
    assert_int_equal(st.pairs, 1);
    assert_int_equal(st.responses_sent, 0);
    assert_int_equal(wzp_ice_route_get(a).kind, WZP_ROUTE_RELAY);
    /* Nothing was answered: the next packet out is a request, not a response. */
    int len = poll_one(a, now + WZP_MS(5), buf, &sock, &dst);
    assert_true(len == 0 || buf[0] == WZP_PROBE_REQUEST);

    /* Probes before the key are refused too. */
    wzp_ice_agent *b = ice_new(NULL);
    assert_int_equal(wzp_ice_recv(b, WZP_ICE_SOCK_V4, &peer, req, WZP_PROBE_REQUEST_LEN, now),
                     WZP_ERR_STATE);
    assert_int_equal(poll_one(b, now, buf, &sock, &dst), 0);
    assert_int_equal(wzp_ice_next_deadline(b), WZP_TS_NEVER);
    wzp_ice_free(b);
    sim_free(&s);
}

static void test_pair_cap(void **state)
{
    (void)state;
    wzp_ice_config cfg;
    wzp_ice_config_default(&cfg);
    cfg.max_pairs = 8;
    wzp_ice_agent *a = ice_new(&cfg);
    wzp_addr l = A("198.51.100.1:4000");
    assert_int_equal(wzp_ice_add_local(a, WZP_CAND_HOST, &l), 0);
    wzp_ts now = WZP_SEC(1);
    int refused = 0;
    char buf[64];
    for (int k = 0; k < 20; k++) {
        snprintf(buf, sizeof(buf), "192.0.2.%d:%d", 10 + k, 6000 + k);
        wzp_addr r = A(buf);
        int rc = wzp_ice_add_remote(a, WZP_CAND_SRFLX, &r, now);
        assert_true(rc == 0 || rc == WZP_ERR_LIMIT);
        refused += rc == WZP_ERR_LIMIT;
    }
    assert_int_equal(refused, 12);
    /* A higher-priority (host) candidate evicts an unproven srflx one. */
    wzp_addr h = A("203.0.113.5:7000");
    assert_int_equal(wzp_ice_add_remote(a, WZP_CAND_HOST, &h, now), 0);
    /* Duplicates are no-ops. */
    assert_int_equal(wzp_ice_add_remote(a, WZP_CAND_HOST, &h, now), 0);
    /* Unusable addresses are refused. */
    wzp_addr bad = A("0.0.0.0:1");
    assert_int_equal(wzp_ice_add_remote(a, WZP_CAND_HOST, &bad, now), WZP_ERR_INVALID);
    bad = A("224.0.0.1:1");
    assert_int_equal(wzp_ice_add_remote(a, WZP_CAND_HOST, &bad, now), WZP_ERR_INVALID);
    bad = A("192.0.2.1:0");
    assert_int_equal(wzp_ice_add_remote(a, WZP_CAND_HOST, &bad, now), WZP_ERR_INVALID);

    /* An authentic request from an unknown address still gets a pair (it is proven inbound). */
    assert_int_equal(wzp_ice_set_key(a, test_key, now), 0);
    wzp_probe p;
    memset(&p, 0, sizeof(p));
    p.type = WZP_PROBE_REQUEST;
    memcpy(p.tag, wzp_ice_tag(a), WZP_PROBE_TAG_LEN);
    p.sender[0] = 0x42;
    p.txid[3] = 1; /* request counter 1 */
    uint8_t pkt[WZP_PROBE_MAX_LEN];
    int n = wzp_probe_encode(&p, test_key, pkt, sizeof(pkt));
    wzp_addr from = A("198.51.100.77:9999");
    assert_int_equal(wzp_ice_recv(a, WZP_ICE_SOCK_V4, &from, pkt, (size_t)n, now), 0);

    wzp_ice_stats st;
    wzp_ice_get_stats(a, &st);
    assert_int_equal(st.pairs, 8);
    assert_int_equal(st.prflx_learned, 1);
    assert_int_equal(st.pairs_dropped, 14);
    wzp_ice_pair_info pi[16];
    assert_int_equal(wzp_ice_pairs(a, pi, 16), 8);
    bool has_host = false, has_prflx = false;
    for (int k = 0; k < 8; k++) {
        has_host |= wzp_addr_equal(&pi[k].remote, &h);
        has_prflx |= wzp_addr_equal(&pi[k].remote, &from) && pi[k].remote_type == WZP_CAND_PRFLX;
        if (k)
            assert_true(pi[k - 1].priority >= pi[k].priority);
    }
    assert_true(has_host && has_prflx);
    /* The response goes first, to the prflx source, and echoes it. */
    int sock;
    wzp_addr dst;
    n = poll_one(a, now, pkt, &sock, &dst);
    assert_true(n > 0);
    wzp_probe r;
    assert_int_equal(wzp_probe_decode(&r, test_key, NULL, pkt, (size_t)n), 0);
    assert_int_equal(r.type, WZP_PROBE_RESPONSE);
    assert_true(wzp_addr_equal(&dst, &from) && wzp_addr_equal(&r.observed, &from));
    /* Then the triggered check to it, before any other pair. */
    n = poll_one(a, now, pkt, &sock, &dst);
    assert_true(n > 0);
    assert_int_equal(pkt[0], WZP_PROBE_REQUEST);
    assert_true(wzp_addr_equal(&dst, &from));
    /* And then pacing: nothing more in the same instant. */
    assert_int_equal(poll_one(a, now, pkt, &sock, &dst), 0);
    wzp_ice_free(a);
}

static void test_remove_active_and_network_change(void **state)
{
    (void)state;
    static world s;
    setup_public(&s, NULL);
    add_local(&s, 1, WZP_CAND_SRFLX, &s.n[1].addr[WZP_ICE_SOCK_V4]); /* duplicate: no-op */
    start(&s);
    run_for(&s, WZP_MS(300));
    assert_true(both_direct(&s));
    wzp_addr b = s.n[1].addr[WZP_ICE_SOCK_V4];
    assert_int_equal(wzp_ice_remove_remote(s.n[0].ag, &b, tnow(&s)), 0);
    assert_int_equal(route(&s, 0).kind, WZP_ROUTE_RELAY);
    assert_int_equal(s.n[0].last_reason, WZP_ROUTE_PAIR_REMOVED);
    /* B's probes reach A again: A relearns B as peer-reflexive and goes back direct. */
    run_for(&s, WZP_SEC(1));
    assert_true(both_direct(&s));
    /* A network change re-checks at once but keeps the working route. */
    int ev = s.n[0].route_events;
    wzp_ice_network_changed(s.n[0].ag, tnow(&s));
    assert_true(wzp_ice_next_deadline(s.n[0].ag) <= tnow(&s) + WZP_MS(5));
    run_for(&s, WZP_SEC(1));
    assert_true(both_direct(&s));
    assert_int_equal(s.n[0].route_events, ev);
    sim_free(&s);
}

static size_t count_pairs_to(const wzp_ice_agent *ag, const char *addr)
{
    wzp_addr a = A(addr);
    wzp_ice_pair_info pi[16];
    size_t n = wzp_ice_pairs(ag, pi, 16), k = 0;
    for (size_t i = 0; i < n && i < 16; i++)
        k += wzp_addr_equal(&pi[i].remote, &a);
    return k;
}

static int set_remote(world *s, int i, uint32_t gen, const char *const *addrs, size_t n)
{
    wzp_candidate c[4];
    for (size_t k = 0; k < n; k++)
        c[k] = (wzp_candidate){.type = WZP_CAND_HOST, .addr = A(addrs[k])};
    return wzp_ice_set_remote_candidates(s->n[i].ag, gen, c, n, tnow(s));
}

/*
 * Complete remote sets: what the peer no longer lists goes (and only what it
 * signaled), a stale generation changes nothing, add-only trickle still only
 * adds, and withdrawing the active pair's address falls back to the relay at
 * once, then recovers on a proven pair.
 */
static void test_remote_set_withdraws(void **state)
{
    (void)state;
    static world s;
    setup_public(&s, NULL);
    add_remote(&s, 0, WZP_CAND_SRFLX, "203.0.113.7:5000"); /* never answers */
    start(&s);
    run_for(&s, WZP_MS(300));
    assert_true(both_direct(&s));
    const char *b = "203.0.113.2:5000", *gone = "203.0.113.7:5000";
    int ev = s.n[0].route_events;
    wzp_ice_stats st0, st;
    wzp_ice_get_stats(s.n[0].ag, &st0);

    /* Generation 2 drops the silent candidate, keeps the working (active) one. */
    const char *only_b[] = {b};
    assert_int_equal(set_remote(&s, 0, 2, only_b, 1), 1);
    assert_int_equal(count_pairs_to(s.n[0].ag, gone), 0);
    assert_int_equal(count_pairs_to(s.n[0].ag, b), 1);
    assert_int_equal(s.n[0].route_events, ev);

    /* A late generation 1 (and a repeated 2) changes nothing: no resurrection. */
    const char *both[] = {b, gone};
    assert_int_equal(set_remote(&s, 0, 1, both, 2), WZP_ERR_STATE);
    assert_int_equal(set_remote(&s, 0, 2, both, 2), WZP_ERR_STATE);
    assert_int_equal(count_pairs_to(s.n[0].ag, gone), 0);
    assert_int_equal(set_remote(&s, 0, 0, both, 2), WZP_ERR_INVALID);
    wzp_ice_get_stats(s.n[0].ag, &st);
    assert_int_equal(st.remote_sets, 1);
    assert_int_equal(st.remote_sets_stale, 2);
    assert_int_equal(st.remote_withdrawn, 1);

    /* Old-style add-only trickle: adds, withdraws nothing, route unchanged. */
    add_remote(&s, 0, WZP_CAND_SRFLX, "203.0.113.8:5000");
    assert_int_equal(count_pairs_to(s.n[0].ag, "203.0.113.8:5000"), 1);
    assert_int_equal(count_pairs_to(s.n[0].ag, b), 1);
    run_for(&s, WZP_MS(200));
    assert_true(both_direct(&s));
    assert_int_equal(s.n[0].route_events, ev);

    /* Generation 3 withdraws the active pair's address: relay now, not after dead_after. */
    wzp_ts t = tnow(&s);
    assert_int_equal(set_remote(&s, 0, 3, NULL, 0), 2);
    assert_int_equal(route(&s, 0).kind, WZP_ROUTE_RELAY);
    assert_int_equal(s.n[0].last_reason, WZP_ROUTE_PAIR_REMOVED);
    assert_int_equal(s.n[0].last_route_at, t);
    assert_int_equal(s.n[0].route_events, ev + 1);
    assert_int_equal(count_pairs_to(s.n[0].ag, b), 0);
    wzp_ice_get_stats(s.n[0].ag, &st);
    assert_int_equal(st.fallbacks, st0.fallbacks); /* not a path death */
    /*
     * B still probes from that address (in the test it did not really go):
     * A learns it back as peer-reflexive, proven by traffic, and recovers.
     */
    run_for(&s, WZP_SEC(1));
    assert_true(both_direct(&s));
    assert_int_equal(s.n[0].last_reason, WZP_ROUTE_RECOVERED);
    assert_int_equal(count_pairs_to(s.n[0].ag, b), 1);
    /* A newer set that does not list it keeps it: it was never signaled since. */
    ev = s.n[0].route_events;
    assert_int_equal(set_remote(&s, 0, 4, NULL, 0), 0);
    assert_int_equal(count_pairs_to(s.n[0].ag, b), 1);
    run_for(&s, WZP_MS(500));
    assert_true(both_direct(&s));
    assert_int_equal(s.n[0].route_events, ev);
    sim_free(&s);
}

/*
 * Both behind NATs with address-dependent filtering, each mapping
 * endpoint-independently or (edm) a new port per destination, the path
 * between them on B's NAT's link; each knows its server-reflexive address
 * (its mapping towards the relay) as a local candidate.
 */
static void setup_nat_nodes(world *s, bool edm0, bool edm1, wzp_sim_link path)
{
    static const char *const wan[2] = {"198.51.100.9", "203.0.113.9"};
    static const char *const lan[2] = {"10.0.0.254", "10.1.0.254"};
    static const char *const priv[2] = {"10.0.0.1:4000", "10.1.0.2:5000"};
    for (int i = 0; i < 2; i++) {
        bool edm = i ? edm1 : edm0;
        wzp_sim_nat_cfg cfg = {.mapping = edm ? WZP_SIM_APD : WZP_SIM_EI, .filtering = WZP_SIM_AD};
        wzp_sim_net *net = nat_new(s, wan[i], i ? path : (wzp_sim_link){0}, lan[i],
                                   (wzp_sim_link){0}, &cfg, &s->n[i].nat);
        attach(s, i, net, priv[i], (wzp_sim_link){0});
    }
    register_relay(s);
    for (int i = 0; i < 2; i++)
        add_local(s, i, WZP_CAND_SRFLX, &s->n[i].srflx);
}

/* Node i learns the other's candidates (as signaling would deliver them). */
static void exchange(world *s, int i)
{
    wzp_candidate c[4];
    size_t nc = wzp_ice_local_candidates(s->n[1 - i].ag, c, 4);
    for (size_t k = 0; k < nc && k < 4; k++)
        if (c[k].type != WZP_CAND_PRFLX)
            assert_int_equal(wzp_ice_add_remote(s->n[i].ag, c[k].type, &c[k].addr, tnow(s)), 0);
}

/* Both behind NATs, PATH apart, each told the other's host and srflx candidates. */
static void setup_nats(world *s, bool edm0, bool edm1)
{
    sim_init(s, 5, NULL);
    setup_nat_nodes(s, edm0, edm1, (wzp_sim_link){.latency = PATH});
    exchange(s, 0);
    exchange(s, 1);
}

static void test_nat_pairs(void **state)
{
    (void)state;
    static world s;
    /* Both endpoint-independent: direct on srflx <-> srflx. */
    setup_nats(&s, false, false);
    start(&s);
    run_for(&s, WZP_SEC(2));
    assert_true(both_direct(&s));
    /* A sends to B's one public mapping, the one the relay saw too. */
    wzp_ice_route r0 = route(&s, 0);
    assert_true(wzp_addr_equal(&r0.remote, &s.n[1].srflx));
    wzp_addr b_to_a = mapping_of(&s, 1, &s.n[0].srflx);
    assert_true(wzp_addr_equal(&r0.remote, &b_to_a));
    sim_free(&s);

    /* One endpoint-dependent (symmetric), the other endpoint-independent: direct via the
     * symmetric side's peer-reflexive mapping, learned from its authenticated probes. */
    for (int sym = 0; sym < 2; sym++) {
        setup_nats(&s, sym == 0, sym == 1);
        start(&s);
        run_for(&s, WZP_SEC(3));
        assert_true(both_direct(&s));
        node *cone = &s.n[1 - sym];
        wzp_ice_stats st;
        wzp_ice_get_stats(cone->ag, &st);
        assert_true(st.prflx_learned >= 1);
        /* The cone side sends to the symmetric side's second mapping (towards the cone's
         * public mapping), not to the one the relay saw. */
        wzp_ice_route r = wzp_ice_route_get(cone->ag);
        wzp_addr sym_to_cone = mapping_of(&s, sym, &cone->srflx);
        assert_true(wzp_addr_equal(&r.remote, &sym_to_cone));
        assert_false(wzp_addr_equal(&sym_to_cone, &s.n[sym].srflx));
        sim_free(&s);
    }

    /* Both endpoint-dependent: no direct path without port prediction; stays on the relay,
     * and keeps probing only at the backoff cap. */
    setup_nats(&s, true, true);
    start(&s);
    run_for(&s, WZP_SEC(30));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(route(&s, i).kind, WZP_ROUTE_RELAY);
        assert_int_equal(s.n[i].route_events, 0);
    }
    uint64_t before = s.n[0].requests_tx;
    run_for(&s, WZP_SEC(60));
    assert_true(s.n[0].requests_tx - before <= 4 * 13); /* <= 4 pairs at one per 5 s */
    sim_free(&s);
}

static void test_replay_dropped(void **state)
{
    (void)state;
    wzp_ice_agent *a = ice_new(NULL);
    wzp_addr l = A("198.51.100.1:4000"), peer = A("203.0.113.2:5000"), victim = A("192.0.2.99:53");
    wzp_ts now = WZP_SEC(1);
    assert_int_equal(wzp_ice_add_local(a, WZP_CAND_HOST, &l), 0);
    assert_int_equal(wzp_ice_add_remote(a, WZP_CAND_HOST, &peer, now), 0);
    assert_int_equal(wzp_ice_set_key(a, test_key, now), 0);
    wzp_probe p;
    memset(&p, 0, sizeof(p));
    p.type = WZP_PROBE_REQUEST;
    memcpy(p.tag, wzp_ice_tag(a), WZP_PROBE_TAG_LEN);
    p.sender[0] = 0x42;
    p.txid[3] = 100; /* the sender's request counter */
    uint8_t buf[WZP_PROBE_MAX_LEN];
    int n = wzp_probe_encode(&p, test_key, buf, sizeof(buf));
    assert_int_equal(wzp_ice_recv(a, WZP_ICE_SOCK_V4, &peer, buf, (size_t)n, now), 0);
    /* The same bytes again, "from" a third party: not answered, not learned. */
    assert_int_equal(wzp_ice_recv(a, WZP_ICE_SOCK_V4, &victim, buf, (size_t)n, now),
                     WZP_ERR_PROTOCOL);
    wzp_ice_stats st;
    wzp_ice_get_stats(a, &st);
    assert_int_equal(st.rx_replayed, 1);
    assert_int_equal(st.requests_rcvd, 1);
    assert_int_equal(st.prflx_learned, 0);
    int sock, responses = 0;
    wzp_addr dst;
    while ((n = poll_one(a, now, buf, &sock, &dst)) > 0) {
        assert_false(wzp_addr_equal(&dst, &victim));
        responses += buf[0] == WZP_PROBE_RESPONSE;
    }
    assert_int_equal(responses, 1);

    /* Counters may arrive out of order within the window (paths differ in latency) ... */
    int accepted = 0;
    const uint32_t seqs[] = {90, 101, 140, 99, 77, 76, 140, 0};
    const int expect[] = {0, 0, 0, 0, 0, WZP_ERR_PROTOCOL, WZP_ERR_PROTOCOL, WZP_ERR_PROTOCOL};
    for (int k = 0; k < 8; k++) {
        p.txid[0] = (uint8_t)(seqs[k] >> 24);
        p.txid[1] = (uint8_t)(seqs[k] >> 16);
        p.txid[2] = (uint8_t)(seqs[k] >> 8);
        p.txid[3] = (uint8_t)seqs[k];
        n = wzp_probe_encode(&p, test_key, buf, sizeof(buf));
        int rc = wzp_ice_recv(a, WZP_ICE_SOCK_V4, &peer, buf, (size_t)n, now);
        /* ... but a counter 64 or more below the highest, or a repeat, is a replay. */
        assert_int_equal(rc, expect[k]);
        accepted += rc == 0;
    }
    wzp_ice_get_stats(a, &st);
    assert_int_equal(st.rx_replayed, 1 + 3);
    assert_int_equal(st.requests_rcvd, 1 + accepted);
    wzp_ice_free(a);
}

static void test_failover_to_other_pair(void **state)
{
    (void)state;
    static world s;
    /* Dual stack: v6 is preferred and active; then only v6 dies. */
    setup_dual_stack(&s);
    set_link(&s, "203.0.113.2", (wzp_sim_link){.latency = WZP_MS(12)});
    set_link(&s, "2001:db8:b::2", (wzp_sim_link){.latency = WZP_MS(10)});
    media_on(&s);
    start(&s);
    run_for(&s, WZP_SEC(3));
    assert_true(both_direct(&s));
    for (int i = 0; i < 2; i++)
        assert_int_equal(route(&s, i).sock, WZP_ICE_SOCK_V6);

    wzp_ts cut_at = tnow(&s);
    set_link(&s, "2001:db8:b::2", (wzp_sim_link){.latency = WZP_MS(10), .down = true});
    gaps_reset(&s);
    run_for(&s, WZP_SEC(1));
    for (int i = 0; i < 2; i++) {
        wzp_ice_route r = route(&s, i);
        assert_int_equal(r.kind, WZP_ROUTE_DIRECT);
        assert_int_equal(r.sock, WZP_ICE_SOCK_V4);
        assert_int_equal(s.n[i].last_reason, WZP_ROUTE_RECOVERED);
        /* Relay first (within the bound), the surviving pair once re-proven. */
        assert_true(s.n[i].last_route_at - cut_at <= WZP_MS(300));
        assert_true(s.n[i].max_media_gap <= WZP_MS(300));
        wzp_ice_stats st = stats(&s, i);
        assert_int_equal(st.fallbacks, 1);
    }
    sim_free(&s);
}

static void test_quic_counts_as_liveness(void **state)
{
    (void)state;
    static world s;
    setup_public(&s, NULL);
    media_on(&s);
    start(&s);
    run_for(&s, WZP_SEC(1));
    assert_true(both_direct(&s));
    /* Probes stop getting through but the call's packets still do: stay direct ... */
    wzp_ts t = tnow(&s);
    wzp_sim_set_filter(s.sim, is_probe, NULL);
    sim_run(&s, t + WZP_MS(700));
    assert_true(both_direct(&s));
    /* ... until the consent backstop (no answers to our probes for 1 s) fires. */
    sim_run(&s, t + WZP_MS(1300));
    for (int i = 0; i < 2; i++) {
        assert_int_equal(route(&s, i).kind, WZP_ROUTE_RELAY);
        assert_int_equal(s.n[i].last_reason, WZP_ROUTE_PATH_DEAD);
    }
    sim_free(&s);
}

static void test_lossy_link_no_false_fallback(void **state)
{
    (void)state;
    static world s;
    setup_public(&s, NULL);
    wzp_sim_link lossy = jittery(WZP_MS(30), WZP_MS(20));
    lossy.loss_ppm = 200000; /* 20 % */
    set_link(&s, "203.0.113.2", lossy);
    media_on(&s);
    start(&s);
    run_for(&s, WZP_SEC(120));
    assert_true(both_direct(&s));
    for (int i = 0; i < 2; i++) {
        wzp_ice_stats st = stats(&s, i);
        assert_int_equal(st.fallbacks, 0);
        assert_int_equal(st.route_changes, 1);
    }
    sim_free(&s);
}

static void test_candidate_priority(void **state)
{
    (void)state;
    wzp_addr lan = A("192.168.1.5:1"), lan6 = A("[fd00::5]:1"), pub6 = A("[2001:db8::5]:1"),
             pub4 = A("198.51.100.5:1"), ll = A("[fe80::1]:1");
    uint32_t order[] = {
        wzp_cand_priority(WZP_CAND_HOST, &lan6),  wzp_cand_priority(WZP_CAND_HOST, &lan),
        wzp_cand_priority(WZP_CAND_HOST, &pub6),  wzp_cand_priority(WZP_CAND_HOST, &pub4),
        wzp_cand_priority(WZP_CAND_HOST, &ll),    wzp_cand_priority(WZP_CAND_SRFLX, &pub6),
        wzp_cand_priority(WZP_CAND_SRFLX, &pub4), wzp_cand_priority(WZP_CAND_PRFLX, &pub6),
        wzp_cand_priority(WZP_CAND_PRFLX, &pub4),
    };
    for (size_t i = 1; i < sizeof(order) / sizeof(order[0]); i++)
        assert_true(order[i - 1] > order[i]);
    assert_int_equal(wzp_cand_sock_for(&lan), WZP_ICE_SOCK_V4);
    assert_int_equal(wzp_cand_sock_for(&pub6), WZP_ICE_SOCK_V6);
    assert_true(wzp_cand_addr_usable(&pub4));
    const char *bad[] = {"0.0.0.0:1",   "239.1.2.3:1",        "255.255.255.255:1", "[::]:1",
                         "[ff02::1]:1", "[::ffff:1.2.3.4]:1", "1.2.3.4:0",         "[fe80::1]:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        wzp_addr b = A(bad[i]);
        assert_false(wzp_cand_addr_usable(&b));
    }

    /* The agent lists local candidates best first, deduplicated, type upgraded. */
    wzp_ice_agent *a = ice_new(NULL);
    assert_int_equal(wzp_ice_add_local(a, WZP_CAND_PRFLX, &pub4), 0);
    assert_int_equal(wzp_ice_add_local(a, WZP_CAND_HOST, &lan), 0);
    assert_int_equal(wzp_ice_add_local(a, WZP_CAND_SRFLX, &pub4), 0); /* upgrades the prflx */
    assert_int_equal(wzp_ice_add_local(a, WZP_CAND_HOST, &lan), 0);
    wzp_candidate c[4];
    assert_int_equal(wzp_ice_local_candidates(a, c, 4), 2);
    assert_int_equal(c[0].type, WZP_CAND_HOST);
    assert_int_equal(c[1].type, WZP_CAND_SRFLX);
    wzp_addr any = A("0.0.0.0:9");
    assert_int_equal(wzp_ice_add_local(a, WZP_CAND_HOST, &any), WZP_ERR_INVALID);
    wzp_ice_clear_local(a, WZP_SEC(1));
    assert_int_equal(wzp_ice_local_candidates(a, c, 4), 0);
    wzp_ice_free(a);
}

static void test_late_key_and_trickle(void **state)
{
    (void)state;
    static world s;
    setup_b_nat(&s, true);
    /* A starts at once, knowing only B's private address. */
    add_remote(&s, 0, WZP_CAND_HOST, "10.0.0.2:5000");
    key(&s, 0);
    run_for(&s, WZP_MS(150));
    /* B gets its key 150 ms later but no candidates yet: it cannot send; A's
     * probes go to an unreachable address. */
    key(&s, 1);
    run_for(&s, WZP_MS(300));
    assert_int_equal(route(&s, 0).kind, WZP_ROUTE_RELAY);
    /* B's srflx is trickled to A; A's probe is filtered by B's NAT (B never sent to A) ... */
    add_remote_addr(&s, 0, WZP_CAND_SRFLX, &s.n[1].srflx);
    run_for(&s, WZP_MS(300));
    assert_int_equal(route(&s, 0).kind, WZP_ROUTE_RELAY);
    /* ... until A's candidate reaches B and B probes: both direct within a round trip or two. */
    add_remote(&s, 1, WZP_CAND_HOST, "198.51.100.1:4000");
    run_until_direct_within(&s, WZP_MS(200), 0, WZP_MS(60));
    sim_free(&s);
}

/*
 * Many seeds: NAT kinds, latencies, jitter, a little loss, and the two sides
 * getting their key and the peer's candidates at different moments. Direct
 * whenever at least one side maps endpoint-independently, relay otherwise.
 */
static void test_random_schedules(void **state)
{
    (void)state;
    static world s;
    for (uint64_t seed = 1; seed <= 120; seed++) {
        uint64_t r = seed * 0x9e3779b97f4a7c15ULL;
        r ^= r >> 29;
        bool edm0 = (r & 3) == 1, edm1 = (r & 3) == 2 || (r & 3) == 3;
        if ((r & 3) == 3)
            edm0 = (seed % 8) == 0; /* a few both-symmetric cases */
        sim_init(&s, seed, NULL);
        wzp_sim_link path = jittery(WZP_MS(2 + (r >> 8) % 80), WZP_MS((r >> 16) % 20));
        path.loss_ppm = (uint32_t)((r >> 24) % 4) * 10000; /* 0-3 % */
        setup_nat_nodes(&s, edm0, edm1, path);
        /* Events: key and candidates for each side at random offsets within 400 ms. */
        wzp_ts t0 = tnow(&s), at[4];
        for (int k = 0; k < 4; k++)
            at[k] = t0 + WZP_MS((r >> (32 + 8 * k)) % 400);
        bool done[4] = {false, false, false, false};
        for (int step = 0; step < 4; step++) {
            int next = -1;
            for (int k = 0; k < 4; k++)
                if (!done[k] && (next < 0 || at[k] < at[next]))
                    next = k;
            sim_run(&s, at[next]);
            done[next] = true;
            if (next < 2)
                key(&s, next);
            else
                exchange(&s, next - 2);
        }
        run_for(&s, WZP_SEC(4));
        bool possible = !(edm0 && edm1);
        if (possible) {
            if (!both_direct(&s))
                fail_msg("seed %llu (edm %d/%d): not direct", (unsigned long long)seed, edm0, edm1);
        } else {
            assert_int_equal(route(&s, 0).kind, WZP_ROUTE_RELAY);
            assert_int_equal(route(&s, 1).kind, WZP_ROUTE_RELAY);
        }
        /* And it stays that way: no flapping in the next 20 s. */
        int ev0 = s.n[0].route_events, ev1 = s.n[1].route_events;
        run_for(&s, WZP_SEC(20));
        assert_true(s.n[0].route_events - ev0 <= 1 && s.n[1].route_events - ev1 <= 1);
        if (possible)
            assert_true(both_direct(&s));
        sim_free(&s);
    }
}

static void test_late_cone_side(void **state)
{
    (void)state;
    static world s;
    /* Node 0 symmetric (EDM), node 1 EIM with address-dependent filtering, which
     * starts 3.5 s late: only node 0's probes can open the way, so they must
     * still be coming often. */
    sim_init(&s, 6, NULL);
    setup_nat_nodes(&s, true, false, (wzp_sim_link){.latency = PATH});
    exchange(&s, 0);
    key(&s, 0);
    run_for(&s, WZP_MS(3500));
    assert_int_equal(route(&s, 0).kind, WZP_ROUTE_RELAY);
    exchange(&s, 1);
    key(&s, 1);
    run_until_direct_within(&s, WZP_SEC(1), 1, WZP_MS(600));
    sim_free(&s);
}

static void test_nat_rebinding(void **state)
{
    (void)state;
    static world s;
    setup_b_nat(&s, false);
    add_remote(&s, 1, WZP_CAND_HOST, "198.51.100.1:4000");
    media_on(&s);
    start(&s);
    run_for(&s, WZP_SEC(2));
    assert_true(both_direct(&s));
    wzp_addr a = s.n[0].addr[WZP_ICE_SOCK_V4], old = mapping_of(&s, 1, &a);
    /* B's NAT forgets its mapping; the next packet out gets a new port (rebinding). */
    wzp_sim_router_flush(s.n[1].nat);
    gaps_reset(&s);
    run_for(&s, WZP_SEC(2));
    assert_true(both_direct(&s));
    /* A follows B to the new mapping. */
    wzp_addr now_mapped = mapping_of(&s, 1, &a);
    assert_int_not_equal(wzp_addr_port(&now_mapped), wzp_addr_port(&old));
    wzp_ice_route r = route(&s, 0);
    assert_true(wzp_addr_equal(&r.remote, &now_mapped));
    for (int i = 0; i < 2; i++)
        assert_true(s.n[i].max_media_gap <= WZP_MS(300));
    print_message("rebinding: media gap at A %.0f ms, at B %.0f ms\n",
                  (double)s.n[0].max_media_gap / 1e6, (double)s.n[1].max_media_gap / 1e6);
    sim_free(&s);
}

static void test_hairpin_then_lan(void **state)
{
    (void)state;
    static world s;
    /* Same LAN behind a hairpinning NAT: first only the srflx candidates are known. */
    setup_lan(&s, true);
    add_remote_addr(&s, 0, WZP_CAND_SRFLX, &s.n[1].srflx);
    add_remote_addr(&s, 1, WZP_CAND_SRFLX, &s.n[0].srflx);
    start(&s);
    run_for(&s, WZP_SEC(1));
    assert_true(both_direct(&s));
    wzp_ice_route r = route(&s, 0);
    assert_true(wzp_addr_equal(&r.remote, &s.n[1].srflx));
    /* The host candidates arrive later. The LAN pair is faster by less than the 5 ms
     * margin, but of a better class: both move to it after the hold, once. */
    add_remote(&s, 0, WZP_CAND_HOST, "192.168.1.20:5000");
    add_remote(&s, 1, WZP_CAND_HOST, "192.168.1.10:4000");
    run_for(&s, WZP_SEC(5));
    for (int i = 0; i < 2; i++) {
        r = route(&s, i);
        assert_true(wzp_addr_equal(&r.remote, &s.n[1 - i].addr[0]));
        assert_int_equal(s.n[i].last_reason, WZP_ROUTE_BETTER_PAIR);
        assert_int_equal(s.n[i].route_events, 2);
    }
    sim_free(&s);
}

WZP_TEST_MAIN(NULL, NULL, test_candidate_priority, test_late_key_and_trickle, test_both_direct,
              test_birthday_not_needed, test_paced_not_burst, test_prflx_through_nat,
              test_failover_and_recovery, test_hysteresis_no_flapping, test_lan_preferred,
              test_hairpin_then_lan, test_forged_ignored, test_pair_cap,
              test_remove_active_and_network_change, test_remote_set_withdraws, test_nat_pairs,
              test_nat_rebinding, test_late_cone_side, test_random_schedules, test_replay_dropped,
              test_failover_to_other_pair, test_quic_counts_as_liveness,
              test_lossy_link_no_false_fallback)
