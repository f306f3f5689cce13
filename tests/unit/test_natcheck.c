/*
 * ice/natcheck on the simulated network (tests/support/netsim), virtual
 * clock: a STUN server answering as the relay does (its port A1:P1 names the
 * alternate A2:P2 as OTHER-ADDRESS; the alternate sockets honour
 * CHANGE-REQUEST, relay/stun_alt.h), a client behind every NAT behaviour the
 * simulator has, and the classification must match the configuration: mapping,
 * filtering, port allocation. Plus: no NAT at all, a relay without an alternate
 * address, and a relay that does not answer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <stdio.h>
#include <string.h>

#include <wzp/wzp.h>

#include "ice/natcheck.h"
#include "support/netsim.h"
#include "wire/stun.h"
#include "wire/stun_server.h"

static const wzp_sim_link LAN_LINK = {.latency = WZP_US(200)};
static const wzp_sim_link WAN_LINK = {.latency = WZP_MS(10), .jitter = WZP_MS(1)};
static const wzp_sim_link SRV_LINK = {.latency = WZP_MS(5)};

/* The relay's STUN: [0] A1:P1 (the relay port), [1] A2:P1, [2] A2:P2. */
typedef struct srv {
    wzp_sim_sock *s[3];
    bool alt; /* A2 answers and A1 names it */
} srv;

static void srv_recv(void *ctx, wzp_sim_sock *sock, const wzp_addr *from, const uint8_t *data,
                     size_t len)
{
    srv *v = ctx;
    int k = sock == v->s[0] ? 0 : sock == v->s[1] ? 1 : 2;
    uint8_t ans[WZP_STUN_RESPONSE_MAX];
    uint32_t change = 0;
    int n = k == 0
                ? wzp_stun_respond_alt(data, len, from, v->alt ? wzp_sim_sock_addr(v->s[2]) : NULL,
                                       NULL, ans, sizeof(ans))
                : wzp_stun_respond_alt(data, len, from, NULL, &change, ans, sizeof(ans));
    assert_true(n > 0 && (size_t)n <= len + WZP_STUN_RESPONSE_GROWTH);
    wzp_sim_sock *out = change & WZP_STUN_CHANGE_IP     ? v->s[0]
                        : change & WZP_STUN_CHANGE_PORT ? v->s[k == 1 ? 2 : 1]
                                                        : sock;
    wzp_sim_send(out, from, ans, (size_t)n);
}

static void srv_setup(wzp_sim *sim, srv *v, bool alt)
{
    wzp_sim_host *h = wzp_sim_host_new(sim, "relay");
    wzp_sim_host_set_infra(h, true);
    assert_int_equal(wzp_sim_host_add_addr(h, wzp_sim_internet(sim), "198.51.100.10", SRV_LINK), 0);
    assert_int_equal(wzp_sim_host_add_addr(h, wzp_sim_internet(sim), "198.51.100.11", SRV_LINK), 0);
    v->alt = alt;
    v->s[0] = wzp_sim_sock_bind(h, "198.51.100.10:4433", srv_recv, v);
    if (alt) {
        v->s[1] = wzp_sim_sock_bind(h, "198.51.100.11:4433", srv_recv, v);
        v->s[2] = wzp_sim_sock_bind(h, "198.51.100.11:40000", srv_recv, v);
    }
}

/* The client: two sockets driving one natcheck on the simulator's clock. */
typedef struct cli {
    wzp_sim *sim;
    wzp_natcheck nc;
    wzp_sim_sock *s[2];
    uint64_t timer;
} cli;

static void cli_service(void *ctx);

static void cli_recv(void *ctx, wzp_sim_sock *sock, const wzp_addr *from, const uint8_t *data,
                     size_t len)
{
    cli *c = ctx;
    wzp_natcheck_recv(&c->nc, sock == c->s[1], from, data, len, wzp_sim_now(c->sim));
    cli_service(c);
}

static void cli_service(void *ctx)
{
    cli *c = ctx;
    uint8_t buf[WZP_STUN_REQ_MAX];
    wzp_addr to;
    int sock, n;
    while ((n = wzp_natcheck_poll(&c->nc, wzp_sim_now(c->sim), buf, sizeof(buf), &sock, &to)) > 0)
        wzp_sim_send(c->s[sock], &to, buf, (size_t)n);
    assert_true(n >= 0);
    if (c->timer)
        wzp_sim_cancel(c->sim, c->timer);
    c->timer = 0;
    wzp_ts next = wzp_natcheck_deadline(&c->nc);
    if (next != WZP_TS_NEVER)
        c->timer = wzp_sim_at(c->sim, next, cli_service, c);
}

static void run(wzp_sim *sim, wzp_sim_host *h, const char *ip, wzp_natcheck_result *r)
{
    static cli c;
    memset(&c, 0, sizeof(c));
    c.sim = sim;
    char a0[32], a1[32];
    snprintf(a0, sizeof(a0), "%s:5000", ip);
    snprintf(a1, sizeof(a1), "%s:5001", ip);
    c.s[0] = wzp_sim_sock_bind(h, a0, cli_recv, &c);
    c.s[1] = wzp_sim_sock_bind(h, a1, cli_recv, &c);
    wzp_addr relay;
    wzp_addr_parse(&relay, "198.51.100.10:4433", false);
    assert_int_equal(wzp_natcheck_start(&c.nc, &relay, wzp_sim_sock_addr(c.s[0]),
                                        wzp_sim_sock_addr(c.s[1]), wzp_sim_now(sim)),
                     0);
    cli_service(&c);
    wzp_sim_run_until(sim, wzp_sim_now(sim) + WZP_SEC(10));
    assert_true(wzp_natcheck_done(&c.nc));
    wzp_natcheck_get_result(&c.nc, r);
}

/* A client host (10.0.0.2) behind one NAT configured as cfg. */
static wzp_sim_host *behind_nat(wzp_sim *sim, const wzp_sim_nat_cfg *cfg)
{
    wzp_sim_router *r = wzp_sim_router_new(sim, "nat", wzp_sim_internet(sim), "203.0.113.1",
                                           WAN_LINK, "10.0.0.1", LAN_LINK, cfg);
    assert_non_null(r);
    wzp_sim_host *h = wzp_sim_host_new(sim, "client");
    assert_int_equal(wzp_sim_host_add_addr(h, wzp_sim_router_lan(r), "10.0.0.2", LAN_LINK), 0);
    return h;
}

/* A host on the internet itself (192.0.2.7). */
static wzp_sim_host *public_host(wzp_sim *sim)
{
    wzp_sim_host *h = wzp_sim_host_new(sim, "public");
    assert_int_equal(wzp_sim_host_add_addr(h, wzp_sim_internet(sim), "192.0.2.7", WAN_LINK), 0);
    return h;
}

static void test_every_nat(void **state)
{
    static const wzp_nc_mapping maps[] = {WZP_NC_MAPPING_EIM, WZP_NC_MAPPING_ADM,
                                          WZP_NC_MAPPING_APDM};
    static const wzp_nc_filtering filts[] = {WZP_NC_FILTERING_EIF, WZP_NC_FILTERING_ADF,
                                             WZP_NC_FILTERING_APDF};
    for (int m = 0; m < 3; m++)
        for (int f = 0; f < 3; f++)
            for (int ports = 0; ports < 3; ports++) {
                wzp_sim *sim = wzp_sim_new(100 + (uint64_t)(m * 9 + f * 3 + ports));
                srv v;
                srv_setup(sim, &v, true);
                wzp_sim_nat_cfg cfg = {.mapping = (wzp_sim_dep)m,
                                       .filtering = (wzp_sim_dep)f,
                                       .port_preservation = ports == 0,
                                       .sequential_ports = ports == 1};
                wzp_sim_host *h = behind_nat(sim, &cfg);
                wzp_natcheck_result res;
                run(sim, h, "10.0.0.2", &res);
                print_message("mapping %d filtering %d ports %d -> %s %s %s\n", m, f, ports,
                              wzp_nc_mapping_name(res.mapping),
                              wzp_nc_filtering_name(res.filtering), wzp_nc_ports_name(res.ports));
                assert_true(res.udp);
                assert_true(res.alt);
                assert_true(res.nat);
                assert_int_equal(res.mapping, maps[m]);
                assert_int_equal(res.filtering, filts[f]);
                /* Preserved ports show wherever the NAT can keep them; a dependent mapping
                 * needs fresh ports for the same local port, so only the first is kept. */
                if (ports == 0 && m == 0)
                    assert_int_equal(res.ports, WZP_NC_PORTS_PRESERVED);
                if (ports == 1 && m != 0) {
                    assert_int_equal(res.ports, WZP_NC_PORTS_SEQUENTIAL);
                    assert_int_equal(res.port_delta, 1); /* netsim takes the next free port */
                }
                /* netsim picks random ports in 20000-29999: a range (estimated from 3-4 samples).
                 */
                if (ports == 2 && m != 0) {
                    assert_int_equal(res.ports, WZP_NC_PORTS_RANGE);
                    assert_true(res.port_lo >= 1024 && res.port_lo <= res.last_port);
                    assert_true(res.port_hi >= res.last_port && res.port_hi < 45000);
                }
                if (m != 0 && ports != 0)
                    assert_true(res.last_port >= 20000 && res.last_port <= 29999);
                /* Three answers on the first transmission: 2 x (10 + 5 ms) plus jitter. */
                assert_int_equal(res.rtt_samples, 3);
                assert_true(res.rtt_min >= WZP_MS(30) && res.rtt_max <= WZP_MS(40));
                wzp_sim_free(sim);
            }
}

static void test_no_nat(void **state)
{
    wzp_sim *sim = wzp_sim_new(7);
    srv v;
    srv_setup(sim, &v, true);
    wzp_sim_host *h = public_host(sim);
    wzp_natcheck_result r;
    run(sim, h, "192.0.2.7", &r);
    assert_true(r.udp);
    assert_false(r.nat);
    assert_int_equal(r.mapping, WZP_NC_MAPPING_EIM);
    assert_int_equal(r.filtering, WZP_NC_FILTERING_EIF);
    assert_int_equal(r.ports, WZP_NC_PORTS_PRESERVED);
    wzp_sim_free(sim);
}

/* A relay without --stun-alt: reachability and RTT, but mapping and filtering unknown. */
static void test_relay_without_alt(void **state)
{
    wzp_sim *sim = wzp_sim_new(8);
    srv v;
    srv_setup(sim, &v, false);
    wzp_sim_nat_cfg cfg = {.mapping = WZP_SIM_APD, .filtering = WZP_SIM_APD};
    wzp_sim_host *h = behind_nat(sim, &cfg);
    wzp_natcheck_result r;
    run(sim, h, "10.0.0.2", &r);
    assert_true(r.udp);
    assert_false(r.alt);
    assert_true(r.nat);
    assert_int_equal(r.mapping, WZP_NC_MAPPING_UNKNOWN);
    assert_int_equal(r.filtering, WZP_NC_FILTERING_UNKNOWN);
    assert_int_equal(r.rtt_samples, 3);
    wzp_sim_free(sim);
}

/* Nothing answers: UDP blocked, everything else unknown, done within the timeouts. */
static void test_silent_relay(void **state)
{
    wzp_sim *sim = wzp_sim_new(9);
    wzp_sim_host *h = public_host(sim);
    wzp_natcheck_result r;
    run(sim, h, "192.0.2.7", &r);
    assert_false(r.udp);
    assert_int_equal(r.mapping, WZP_NC_MAPPING_UNKNOWN);
    assert_int_equal(r.rtt_samples, 0);
    wzp_sim_free(sim);
}

/*
 * A Linux NAT that picks random ports from a range gives each destination of a socket its own
 * mapping, but two of them may get the same port by chance (conntrack allows it: their remote
 * ends differ), which netsim never does. Here the external port of each (socket, destination)
 * comes from a table, and the relay answers from where it was asked (APDF: the change requests
 * go unanswered), on a virtual clock.
 */
/* The external ports a table NAT gives: the main socket towards A1:P1, A2:P1 and A2:P2 (M1-M3),
 * the filter socket towards A2:P2 (F0) and A2:P1 (M4; 0: never asked). */
typedef struct nat_table {
    uint16_t m1, m2, m3, f0, m4;
} nat_table;

static uint16_t table_port(const nat_table *t, int sock, const wzp_addr *to)
{
    char text[WZP_ADDR_STRLEN];
    wzp_addr_format(to, text, sizeof(text));
    bool a1p1 = strcmp(text, "198.51.100.10:4433") == 0,
         a2p1 = strcmp(text, "198.51.100.11:4433") == 0,
         a2p2 = strcmp(text, "198.51.100.11:40000") == 0;
    uint16_t p = sock == 0 ? (a1p1   ? t->m1
                              : a2p1 ? t->m2
                              : a2p2 ? t->m3
                                     : 0)
                           : (a2p2   ? t->f0
                              : a2p1 ? t->m4
                                     : 0);
    assert_true(p != 0); /* the check asks nothing else */
    return p;
}

static void run_table(const nat_table *t, wzp_natcheck_result *r)
{
    wzp_addr relay, alt, local[2];
    wzp_addr_parse(&relay, "198.51.100.10:4433", false);
    wzp_addr_parse(&alt, "198.51.100.11:40000", false);
    wzp_addr_parse(&local[0], "10.0.0.2:5000", false);
    wzp_addr_parse(&local[1], "10.0.0.2:5001", false);
    wzp_natcheck nc;
    wzp_ts now = WZP_SEC(1);
    assert_int_equal(wzp_natcheck_start(&nc, &relay, &local[0], &local[1], now), 0);
    while (!wzp_natcheck_done(&nc)) {
        uint8_t req[WZP_STUN_REQ_MAX], ans[WZP_STUN_RESPONSE_MAX];
        wzp_addr to, ext;
        int sock, len;
        while ((len = wzp_natcheck_poll(&nc, now, req, sizeof(req), &sock, &to)) > 0) {
            wzp_addr_parse(&ext, "203.0.113.1:0", false);
            wzp_addr_set_port(&ext, table_port(t, sock, &to));
            uint32_t change = 0;
            bool primary = wzp_addr_equal(&to, &relay);
            int m = wzp_stun_respond_alt(req, (size_t)len, &ext, primary ? &alt : NULL,
                                         primary ? NULL : &change, ans, sizeof(ans));
            assert_true(m > 0);
            if (!change)
                wzp_natcheck_recv(&nc, sock, &to, ans, (size_t)m, now + WZP_MS(20));
        }
        assert_int_equal(len, 0);
        if (wzp_natcheck_done(&nc))
            break;
        wzp_ts next = wzp_natcheck_deadline(&nc);
        assert_true(next != WZP_TS_NEVER);
        now = next > now + WZP_MS(20) ? next : now + WZP_MS(20);
    }
    wzp_natcheck_get_result(&nc, r);
}

static void test_port_collisions(void **state)
{
    static const struct {
        nat_table t;
        wzp_nc_mapping want;
    } cases[] = {
        /* Symmetric, M2 and M3 collide: M4 does not agree with F0. */
        {{20101, 20555, 20555, 20777, 20321}, WZP_NC_MAPPING_APDM},
        /* Address-dependent for real: M4 takes F0's mapping. */
        {{20101, 20555, 20555, 20777, 20777}, WZP_NC_MAPPING_ADM},
        /* Symmetric, M1 and M2 collide: M3 differs, so no cone (and M4 is not asked). */
        {{20101, 20101, 20444, 20777, 0}, WZP_NC_MAPPING_APDM},
        /* A cone: one mapping everywhere. */
        {{20101, 20101, 20101, 20102, 0}, WZP_NC_MAPPING_EIM},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wzp_natcheck_result r;
        run_table(&cases[i].t, &r);
        assert_int_equal(r.mapping, cases[i].want);
        assert_int_equal(r.filtering, WZP_NC_FILTERING_APDF);
    }
}

WZP_TEST_MAIN(NULL, NULL, test_every_nat, test_no_nat, test_relay_without_alt, test_silent_relay,
              test_port_collisions)
