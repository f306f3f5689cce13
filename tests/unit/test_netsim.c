/*
 * Tests of the simulated network (tests/support/netsim): every NAT
 * configuration is classified with an RFC 5780-style procedure run through
 * the simulator (a "STUN server" with two addresses and two ports each), and
 * must come out as configured; link statistics over many packets match the
 * configured latency, jitter and loss; runs are deterministic per seed.
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

#include "support/netsim.h"

static const wzp_sim_link LAN_LINK = {.latency = WZP_US(200), .jitter = WZP_US(100)};
static const wzp_sim_link WAN_LINK = {.latency = WZP_MS(10), .jitter = WZP_MS(2)};
static const wzp_sim_link SRV_LINK = {.latency = WZP_MS(5)};

/* ---- A tiny binding service: "request" = flags byte, response = "M" + mapped address ---- */

#define CHANGE_IP   1
#define CHANGE_PORT 2

typedef struct stun_srv {
    wzp_sim_sock *s[2][2];
    wzp_addr a[2][2];
} stun_srv;

static void stun_recv(void *ctx, wzp_sim_sock *sock, const wzp_addr *from, const uint8_t *data,
                      size_t len)
{
    stun_srv *srv = ctx;
    if (len < 1)
        return;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            if (srv->s[i][j] == sock) {
                int ri = (data[0] & CHANGE_IP) ? 1 - i : i;
                int rj = (data[0] & CHANGE_PORT) ? 1 - j : j;
                char buf[1 + WZP_ADDR_STRLEN];
                buf[0] = 'M';
                wzp_addr_format(from, buf + 1, sizeof(buf) - 1);
                wzp_sim_send(srv->s[ri][rj], from, buf, strlen(buf));
            }
}

static void stun_setup(wzp_sim *sim, stun_srv *srv)
{
    wzp_sim_host *h = wzp_sim_host_new(sim, "stun");
    wzp_sim_host_set_infra(h, true);
    const char *ips[2] = {"198.51.100.1", "198.51.100.2"};
    const uint16_t ports[2] = {3478, 3479};
    for (int i = 0; i < 2; i++) {
        assert_int_equal(wzp_sim_host_add_addr(h, wzp_sim_internet(sim), ips[i], SRV_LINK), 0);
        for (int j = 0; j < 2; j++) {
            srv->a[i][j] = wzp_sim_addr(ips[i]);
            wzp_addr_set_port(&srv->a[i][j], ports[j]);
            srv->s[i][j] = wzp_sim_sock_bind_addr(h, &srv->a[i][j], stun_recv, srv);
            assert_non_null(srv->s[i][j]);
        }
    }
}

/* A client socket: remembers the last mapped address and the last peer packet. */
typedef struct cli {
    wzp_sim_sock *s;
    int responses, peer_packets;
    wzp_addr mapped, peer_from;
} cli;

static void cli_recv(void *ctx, wzp_sim_sock *sock, const wzp_addr *from, const uint8_t *data,
                     size_t len)
{
    (void)sock;
    cli *c = ctx;
    if (len > 1 && data[0] == 'M') {
        char text[WZP_ADDR_STRLEN] = {0};
        memcpy(text, data + 1, len - 1 < sizeof(text) - 1 ? len - 1 : sizeof(text) - 1);
        assert_int_equal(wzp_addr_parse(&c->mapped, text, false), 0);
        c->responses++;
    } else {
        c->peer_from = *from;
        c->peer_packets++;
    }
}

static void cli_bind(cli *c, wzp_sim_host *h, const char *addr)
{
    memset(c, 0, sizeof(*c));
    c->s = wzp_sim_sock_bind(h, addr, cli_recv, c);
    assert_non_null(c->s);
}

/* Sends one binding request and waits (virtually) a second; true if answered. */
static bool query(wzp_sim *sim, cli *c, const wzp_addr *server, uint8_t flags)
{
    int before = c->responses;
    assert_int_equal(wzp_sim_send(c->s, server, &flags, 1), 0);
    wzp_sim_run_until(sim, wzp_sim_now(sim) + WZP_SEC(1));
    return c->responses > before;
}

static void peer_send(wzp_sim *sim, cli *c, const wzp_addr *to)
{
    assert_int_equal(wzp_sim_send(c->s, to, "P", 1), 0);
    wzp_sim_run_until(sim, wzp_sim_now(sim) + WZP_SEC(1));
}

typedef struct nat_class {
    wzp_sim_dep mapping, filtering;
    wzp_addr mapped; /* from the first binding of the mapping test */
} nat_class;

/* RFC 5780 section 4.3 (mapping) and 4.4 (filtering), with fresh sockets for each. */
static nat_class classify(wzp_sim *sim, stun_srv *srv, wzp_sim_host *h, const char *ip,
                          uint16_t base_port)
{
    nat_class k;
    char addr[64];
    cli m, f;

    snprintf(addr, sizeof(addr), "%s:%u", ip, base_port);
    cli_bind(&m, h, addr);
    assert_true(query(sim, &m, &srv->a[0][0], 0));
    wzp_addr m1 = m.mapped;
    assert_true(query(sim, &m, &srv->a[1][0], 0));
    wzp_addr m2 = m.mapped;
    assert_true(query(sim, &m, &srv->a[1][1], 0));
    wzp_addr m3 = m.mapped;
    if (wzp_addr_equal(&m1, &m2))
        k.mapping = WZP_SIM_EI;
    else if (wzp_addr_equal(&m2, &m3))
        k.mapping = WZP_SIM_AD;
    else
        k.mapping = WZP_SIM_APD;
    k.mapped = m1;

    snprintf(addr, sizeof(addr), "%s:%u", ip, base_port + 1);
    cli_bind(&f, h, addr);
    if (query(sim, &f, &srv->a[0][0], CHANGE_IP | CHANGE_PORT))
        k.filtering = WZP_SIM_EI;
    else if (query(sim, &f, &srv->a[0][0], CHANGE_PORT))
        k.filtering = WZP_SIM_AD;
    else
        k.filtering = WZP_SIM_APD;
    wzp_sim_sock_close(m.s);
    wzp_sim_sock_close(f.s);
    return k;
}

static bool addr_is(const wzp_addr *a, const char *text, bool with_port)
{
    wzp_addr b = wzp_sim_addr(text);
    return with_port ? wzp_addr_equal(a, &b) : wzp_addr_ip_equal(a, &b);
}

static wzp_sim_nat_cfg nat_cfg(wzp_sim_dep mapping, wzp_sim_dep filtering)
{
    wzp_sim_nat_cfg c = {0};
    c.mapping = mapping;
    c.filtering = filtering;
    return c;
}

/* A fresh simulation (seeded) with the binding service on it. */
static wzp_sim *sim_with_stun(uint64_t seed, stun_srv *srv)
{
    wzp_sim *sim = wzp_sim_new(seed);
    stun_setup(sim, srv);
    return sim;
}

/* A new host with one address, ip on net over link. */
static wzp_sim_host *host_on(wzp_sim *sim, const char *name, wzp_sim_net *net, const char *ip,
                             wzp_sim_link link)
{
    wzp_sim_host *h = wzp_sim_host_new(sim, name);
    assert_int_equal(wzp_sim_host_add_addr(h, net, ip, link), 0);
    return h;
}

/* A NATed client (a, 10.0.0.2:5000, with its mapping from the binding service)
 * and a peer on the internet (p, 192.0.2.50:7000). */
static void client_and_peer(wzp_sim *sim, stun_srv *srv, wzp_sim_host *h, wzp_sim_host *peer,
                            cli *a, cli *p)
{
    cli_bind(a, h, "10.0.0.2:5000");
    cli_bind(p, peer, "192.0.2.50:7000");
    assert_true(query(sim, a, &srv->a[0][0], 0));
}

/* One host behind one NAT: returns the LAN host (10.0.0.2). */
static wzp_sim_host *host_behind(wzp_sim *sim, const wzp_sim_nat_cfg *cfg, wzp_sim_router **out)
{
    wzp_sim_router *r = wzp_sim_router_new(sim, "nat", wzp_sim_internet(sim), "203.0.113.1",
                                           WAN_LINK, "10.0.0.1", LAN_LINK, cfg);
    assert_non_null(r);
    wzp_sim_host *h = host_on(sim, "client", wzp_sim_router_lan(r), "10.0.0.2", LAN_LINK);
    if (out)
        *out = r;
    return h;
}

/* ---- NAT behaviour, classified from outside ------------------------------------------- */

static void test_classify_grid(void **state)
{
    (void)state;
    for (int mp = WZP_SIM_EI; mp <= WZP_SIM_APD; mp++)
        for (int fl = WZP_SIM_EI; fl <= WZP_SIM_APD; fl++)
            for (int pp = 0; pp < 2; pp++) {
                stun_srv srv;
                wzp_sim *sim = sim_with_stun((uint64_t)(mp * 9 + fl * 3 + pp), &srv);
                wzp_sim_nat_cfg cfg = nat_cfg((wzp_sim_dep)mp, (wzp_sim_dep)fl);
                cfg.port_preservation = pp;
                wzp_sim_host *h = host_behind(sim, &cfg, NULL);
                nat_class k = classify(sim, &srv, h, "10.0.0.2", 5000);
                assert_int_equal(k.mapping, mp);
                assert_int_equal(k.filtering, fl);
                assert_true(addr_is(&k.mapped, "203.0.113.1", false));
                if (pp)
                    assert_int_equal(wzp_addr_port(&k.mapped), 5000);
                else
                    assert_true(wzp_addr_port(&k.mapped) >= 20000 &&
                                wzp_addr_port(&k.mapped) <= 29999);
                wzp_sim_free(sim);
            }
}

static void test_open_internet_and_ipv6(void **state)
{
    (void)state;
    stun_srv srv;
    wzp_sim *sim = sim_with_stun(1, &srv);
    wzp_sim_host *h = host_on(sim, "public", wzp_sim_internet(sim), "192.0.2.10", WAN_LINK);
    nat_class k = classify(sim, &srv, h, "192.0.2.10", 4000);
    assert_int_equal(k.mapping, WZP_SIM_EI);
    assert_int_equal(k.filtering, WZP_SIM_EI);
    assert_true(addr_is(&k.mapped, "192.0.2.10:4000", true));

    /* IPv6 hosts on the internet talk directly; families do not mix. */
    wzp_sim_host *a = wzp_sim_host_new(sim, "v6a"), *b = wzp_sim_host_new(sim, "v6b");
    assert_int_equal(wzp_sim_host_add_addr(a, wzp_sim_internet(sim), "2001:db8::a", WAN_LINK), 0);
    assert_int_equal(wzp_sim_host_add_addr(b, wzp_sim_internet(sim), "2001:db8::b", WAN_LINK), 0);
    cli ca, cb;
    cli_bind(&ca, a, "[2001:db8::a]:1000");
    cli_bind(&cb, b, "[2001:db8::b]:2000");
    peer_send(sim, &ca, wzp_sim_sock_addr(cb.s));
    assert_int_equal(cb.peer_packets, 1);
    assert_true(wzp_addr_equal(&cb.peer_from, wzp_sim_sock_addr(ca.s)));
    assert_int_equal(wzp_sim_send(ca.s, &srv.a[0][0], "x", 1), WZP_ERR_INVALID);
    /* Unknown destinations are counted, not crashed on. */
    uint64_t noroute = wzp_sim_stats_get(sim)->dropped_no_route;
    wzp_addr nowhere = wzp_sim_addr("[2001:db8::99]:1");
    peer_send(sim, &ca, &nowhere);
    assert_int_equal(wzp_sim_stats_get(sim)->dropped_no_route, noroute + 1);
    wzp_sim_free(sim);
}

static void test_port_preservation_collision(void **state)
{
    (void)state;
    stun_srv srv;
    wzp_sim *sim = sim_with_stun(7, &srv);
    wzp_sim_nat_cfg cfg = nat_cfg(WZP_SIM_EI, WZP_SIM_APD);
    cfg.port_preservation = true;
    cfg.sequential_ports = true;
    cfg.port_lo = 40000;
    cfg.port_hi = 40009;
    wzp_sim_router *r;
    wzp_sim_host *h = host_behind(sim, &cfg, &r);
    wzp_sim_host *h2 = host_on(sim, "client2", wzp_sim_router_lan(r), "10.0.0.3", LAN_LINK);
    cli a, b;
    cli_bind(&a, h, "10.0.0.2:5000");
    cli_bind(&b, h2, "10.0.0.3:5000");
    assert_true(query(sim, &a, &srv.a[0][0], 0));
    assert_true(query(sim, &b, &srv.a[0][0], 0));
    /* First keeps its port; the second, colliding, gets the range's first port. */
    assert_int_equal(wzp_addr_port(&a.mapped), 5000);
    assert_int_equal(wzp_addr_port(&b.mapped), 40000);
    /* Free internal ports are kept as they are; only collisions use the range. */
    for (int i = 0; i < 10; i++) {
        char addr[32];
        cli c;
        snprintf(addr, sizeof(addr), "10.0.0.3:%d", 6000 + i);
        cli_bind(&c, h2, addr);
        assert_true(query(sim, &c, &srv.a[0][0], 0));
        assert_int_equal(wzp_addr_port(&c.mapped), 6000 + i);
        wzp_sim_sock_close(c.s);
    }
    assert_int_equal(wzp_sim_router_mappings(r), 12);
    wzp_sim_free(sim);
}

static void test_port_exhaustion(void **state)
{
    (void)state;
    stun_srv srv;
    wzp_sim *sim = sim_with_stun(8, &srv);
    wzp_sim_nat_cfg cfg = nat_cfg(WZP_SIM_APD, WZP_SIM_APD);
    cfg.port_lo = 40000;
    cfg.port_hi = 40002;
    wzp_sim_router *r;
    wzp_sim_host *h = host_behind(sim, &cfg, &r);
    cli a;
    cli_bind(&a, h, "10.0.0.2:5000");
    assert_true(query(sim, &a, &srv.a[0][0], 0));
    assert_true(query(sim, &a, &srv.a[0][1], 0));
    assert_true(query(sim, &a, &srv.a[1][0], 0));
    assert_false(query(sim, &a, &srv.a[1][1], 0)); /* a fourth remote needs a fourth port */
    assert_int_equal(wzp_sim_router_stats(r)->dropped_ports, 1);
    wzp_sim_free(sim);
}

static void test_hairpin(void **state)
{
    (void)state;
    for (int hp = 0; hp < 2; hp++)
        for (int fl = WZP_SIM_EI; fl <= WZP_SIM_APD; fl++) {
            stun_srv srv;
            wzp_sim *sim = sim_with_stun(11, &srv);
            wzp_sim_nat_cfg cfg = nat_cfg(WZP_SIM_EI, (wzp_sim_dep)fl);
            cfg.hairpin = hp;
            wzp_sim_router *r;
            wzp_sim_host *h = host_behind(sim, &cfg, &r);
            wzp_sim_host *h2 = host_on(sim, "client2", wzp_sim_router_lan(r), "10.0.0.3", LAN_LINK);
            cli a, b;
            cli_bind(&a, h, "10.0.0.2:5000");
            cli_bind(&b, h2, "10.0.0.3:6000");
            assert_true(query(sim, &a, &srv.a[0][0], 0));
            assert_true(query(sim, &b, &srv.a[0][0], 0));
            /* Both punch towards the other's public address, then a second packet each. */
            peer_send(sim, &a, &b.mapped);
            peer_send(sim, &b, &a.mapped);
            peer_send(sim, &a, &b.mapped);
            if (hp) {
                assert_int_equal(b.peer_packets, fl == WZP_SIM_EI ? 2 : 1);
                assert_int_equal(a.peer_packets, 1);
                /* The source seen is the sender's public mapping, not its LAN address. */
                assert_true(wzp_addr_equal(&b.peer_from, &a.mapped));
                assert_int_equal(wzp_sim_router_stats(r)->dropped_hairpin, 0);
            } else {
                assert_int_equal(b.peer_packets, 0);
                assert_int_equal(a.peer_packets, 0);
                assert_int_equal(wzp_sim_router_stats(r)->dropped_hairpin, 3);
            }
            /* The LAN path itself always works. */
            peer_send(sim, &a, wzp_sim_sock_addr(b.s));
            assert_true(wzp_addr_equal(&b.peer_from, wzp_sim_sock_addr(a.s)));
            wzp_sim_free(sim);
        }
}

static void test_mapping_timeout(void **state)
{
    (void)state;
    for (int inref = 0; inref < 2; inref++) {
        stun_srv srv;
        wzp_sim *sim = sim_with_stun(21, &srv);
        wzp_sim_nat_cfg cfg = nat_cfg(WZP_SIM_EI, WZP_SIM_EI);
        cfg.sequential_ports = true;
        cfg.timeout = WZP_SEC(30);
        cfg.inbound_refresh = inref;
        wzp_sim_router *r;
        wzp_sim_host *h = host_behind(sim, &cfg, &r);
        cli a, out;
        cli_bind(&a, h, "10.0.0.2:5000");
        assert_true(query(sim, &a, &srv.a[0][0], 0));
        wzp_addr m1 = a.mapped;
        /* Outbound keepalives every 20 s keep it: same mapping after 100 s. */
        for (int i = 0; i < 5; i++) {
            wzp_sim_run_until(sim, wzp_sim_now(sim) + WZP_SEC(19));
            assert_true(query(sim, &a, &srv.a[0][0], 0));
            assert_true(wzp_addr_equal(&a.mapped, &m1));
        }
        /* Inbound-only traffic every 20 s keeps it only with inbound refresh. */
        for (int i = 0; i < 3; i++) {
            wzp_sim_run_until(sim, wzp_sim_now(sim) + WZP_SEC(19));
            assert_int_equal(wzp_sim_send(srv.s[1][1], &m1, "P", 1), 0);
            wzp_sim_run_until(sim, wzp_sim_now(sim) + WZP_SEC(1));
        }
        assert_int_equal(a.peer_packets, inref ? 3 : 1);
        /* Idle past the timeout: the mapping is gone and inbound finds nothing. */
        wzp_sim_run_until(sim, wzp_sim_now(sim) + WZP_SEC(31));
        assert_int_equal(wzp_sim_router_mappings(r), 0);
        uint64_t nomap = wzp_sim_router_stats(r)->dropped_no_mapping;
        cli_bind(&out, wzp_sim_sock_host(srv.s[0][0]), "198.51.100.1:9999");
        peer_send(sim, &out, &m1);
        assert_int_equal(wzp_sim_router_stats(r)->dropped_no_mapping, nomap + 1);
        /* A new binding gets a new port (sequential allocation moved on). */
        assert_true(query(sim, &a, &srv.a[0][0], 0));
        assert_false(wzp_addr_equal(&a.mapped, &m1));
        assert_true(wzp_sim_router_stats(r)->mappings_expired >= 1);
        wzp_sim_free(sim);
    }
}

static void test_cgn(void **state)
{
    (void)state;
    const wzp_sim_dep homes[3] = {WZP_SIM_EI, WZP_SIM_EI, WZP_SIM_APD};
    const wzp_sim_dep cgns[3] = {WZP_SIM_EI, WZP_SIM_APD, WZP_SIM_EI};
    for (int i = 0; i < 3; i++) {
        stun_srv srv;
        wzp_sim *sim = sim_with_stun(31, &srv);
        wzp_sim_nat_cfg cgn_cfg = nat_cfg(cgns[i], WZP_SIM_APD);
        wzp_sim_nat_cfg home_cfg = nat_cfg(homes[i], WZP_SIM_EI);
        wzp_sim_router *cgn = wzp_sim_router_new(sim, "cgn", wzp_sim_internet(sim), "203.0.113.100",
                                                 WAN_LINK, "100.64.0.1", LAN_LINK, &cgn_cfg);
        wzp_sim_router *home =
            wzp_sim_router_new(sim, "home", wzp_sim_router_lan(cgn), "100.64.0.2", LAN_LINK,
                               "192.168.1.1", LAN_LINK, &home_cfg);
        assert_non_null(cgn);
        assert_non_null(home);
        wzp_sim_host *h = host_on(sim, "client", wzp_sim_router_lan(home), "192.168.1.2", LAN_LINK);
        nat_class k = classify(sim, &srv, h, "192.168.1.2", 5000);
        /* The combination is as dependent as its most dependent stage. */
        assert_int_equal(k.mapping, homes[i] > cgns[i] ? homes[i] : cgns[i]);
        assert_int_equal(k.filtering, WZP_SIM_APD);
        assert_true(addr_is(&k.mapped, "203.0.113.100", false));
        assert_true(wzp_sim_router_stats(home)->mappings_created > 0);
        assert_true(wzp_sim_router_stats(cgn)->mappings_created > 0);
        wzp_sim_free(sim);
    }
}

/* The conntrack trap of natlab-notes: early inbound state makes the router remap the flow. */
static void test_conntrack_trap(void **state)
{
    (void)state;
    for (int open = 0; open < 2; open++) {
        stun_srv srv;
        wzp_sim *sim = sim_with_stun(41, &srv);
        wzp_sim_nat_cfg cfg = nat_cfg(WZP_SIM_EI, WZP_SIM_APD);
        cfg.port_preservation = true;
        cfg.wan_input_open = open;
        wzp_sim_router *r;
        wzp_sim_host *h = host_behind(sim, &cfg, &r);
        wzp_sim_host *peer = host_on(sim, "peer", wzp_sim_internet(sim), "192.0.2.50", WAN_LINK);
        cli a, p;
        client_and_peer(sim, &srv, h, peer, &a, &p);
        /* The peer's punch arrives first and is filtered... */
        peer_send(sim, &p, &a.mapped);
        assert_int_equal(a.peer_packets, 0);
        assert_int_equal(wzp_sim_router_stats(r)->dropped_filter, 1);
        /* ...then our punch leaves: with open WAN input it leaves from another port. */
        peer_send(sim, &a, wzp_sim_sock_addr(p.s));
        assert_int_equal(p.peer_packets, 1);
        if (open) {
            assert_int_not_equal(wzp_addr_port(&p.peer_from), 5000);
            assert_int_equal(wzp_sim_router_stats(r)->trap_remaps, 1);
            /* The remapped flow still works both ways; the STUN mapping is unchanged. */
            peer_send(sim, &p, &p.peer_from);
            assert_int_equal(a.peer_packets, 1);
            assert_true(query(sim, &a, &srv.a[0][0], 0));
            assert_int_equal(wzp_addr_port(&a.mapped), 5000);
        } else {
            assert_int_equal(wzp_addr_port(&p.peer_from), 5000);
            assert_int_equal(wzp_sim_router_stats(r)->trap_remaps, 0);
            peer_send(sim, &p, &a.mapped);
            assert_int_equal(a.peer_packets, 1);
        }
        wzp_sim_free(sim);
    }
}

static void test_drop_direct(void **state)
{
    (void)state;
    stun_srv srv;
    wzp_sim *sim = sim_with_stun(51, &srv);
    wzp_sim_nat_cfg cfg = nat_cfg(WZP_SIM_EI, WZP_SIM_EI);
    wzp_sim_router *r;
    wzp_sim_host *h = host_behind(sim, &cfg, &r);
    wzp_sim_host *peer = host_on(sim, "peer", wzp_sim_internet(sim), "192.0.2.50", WAN_LINK);
    cli a, p;
    client_and_peer(sim, &srv, h, peer, &a, &p);
    peer_send(sim, &a, wzp_sim_sock_addr(p.s));
    assert_int_equal(p.peer_packets, 1);

    wzp_sim_router_set_drop_direct(r, true);
    peer_send(sim, &a, wzp_sim_sock_addr(p.s));
    peer_send(sim, &p, &a.mapped);
    assert_int_equal(p.peer_packets, 1);
    assert_int_equal(a.peer_packets, 0);
    assert_int_equal(wzp_sim_router_stats(r)->dropped_blocked, 2);
    assert_true(query(sim, &a, &srv.a[0][0], 0)); /* infra still reachable */

    wzp_sim_router_set_drop_direct(r, false);
    wzp_sim_host_set_drop_direct(peer, true);
    peer_send(sim, &a, wzp_sim_sock_addr(p.s));
    assert_int_equal(p.peer_packets, 1);
    wzp_sim_host_set_drop_direct(peer, false);
    peer_send(sim, &a, wzp_sim_sock_addr(p.s));
    assert_int_equal(p.peer_packets, 2);
    assert_int_equal(wzp_sim_stats_get(sim)->dropped_blocked, 3);
    wzp_sim_free(sim);
}

/* ---- Links: latency, jitter, loss, ordering ---------------------------------------------- */

typedef struct flow_rx {
    wzp_sim *sim;
    uint64_t received, reordered;
    uint32_t last_seq;
    double sum_delay_ms;
    wzp_ts min_delay, max_delay;
} flow_rx;

typedef struct flow_tx {
    wzp_sim *sim;
    wzp_sim_sock *s;
    wzp_addr to;
    uint32_t seq, count;
    wzp_ts interval;
} flow_tx;

static void flow_recv(void *ctx, wzp_sim_sock *sock, const wzp_addr *from, const uint8_t *data,
                      size_t len)
{
    (void)sock;
    (void)from;
    flow_rx *rx = ctx;
    assert_int_equal(len, 12);
    uint32_t seq;
    wzp_ts sent;
    memcpy(&seq, data, 4);
    memcpy(&sent, data + 4, 8);
    wzp_ts d = wzp_sim_now(rx->sim) - sent;
    if (rx->received && seq < rx->last_seq)
        rx->reordered++;
    rx->last_seq = seq;
    rx->received++;
    rx->sum_delay_ms += (double)d / 1e6;
    if (!rx->min_delay || d < rx->min_delay)
        rx->min_delay = d;
    if (d > rx->max_delay)
        rx->max_delay = d;
}

static void flow_tick(void *ctx)
{
    flow_tx *tx = ctx;
    uint8_t buf[12];
    wzp_ts now = wzp_sim_now(tx->sim);
    memcpy(buf, &tx->seq, 4);
    memcpy(buf + 4, &now, 8);
    wzp_sim_send(tx->s, &tx->to, buf, sizeof(buf));
    if (++tx->seq < tx->count)
        wzp_sim_at(tx->sim, now + tx->interval, flow_tick, tx);
}

static void run_flow(uint64_t seed, wzp_ts interval, bool reorder, flow_rx *rx)
{
    wzp_sim *sim = wzp_sim_new(seed);
    wzp_sim_link la = {.latency = WZP_MS(10),
                       .jitter = WZP_MS(4),
                       .loss_ppm = 20000,
                       .reorder = reorder};                      /* 2 % loss */
    wzp_sim_link lb = {.latency = WZP_MS(5), .loss_ppm = 10000}; /* 1 % loss */
    wzp_sim_host *a = wzp_sim_host_new(sim, "a"), *b = wzp_sim_host_new(sim, "b");
    assert_int_equal(wzp_sim_host_add_addr(a, wzp_sim_internet(sim), "192.0.2.1", la), 0);
    assert_int_equal(wzp_sim_host_add_addr(b, wzp_sim_internet(sim), "192.0.2.2", lb), 0);
    memset(rx, 0, sizeof(*rx));
    rx->sim = sim;
    flow_tx tx = {sim,
                  wzp_sim_sock_bind(a, "192.0.2.1:1", flow_recv, NULL),
                  wzp_sim_addr("192.0.2.2:2"),
                  0,
                  20000,
                  interval};
    assert_non_null(tx.s);
    assert_non_null(wzp_sim_sock_bind(b, "192.0.2.2:2", flow_recv, rx));
    wzp_sim_at(sim, 0, flow_tick, &tx);
    while (wzp_sim_step(sim))
        ;
    assert_int_equal(wzp_sim_stats_get(sim)->sent, 20000);
    assert_int_equal(wzp_sim_stats_get(sim)->dropped_loss + rx->received, 20000);
    wzp_sim_free(sim);
    rx->sim = NULL;
}

static void test_link_statistics(void **state)
{
    (void)state;
    flow_rx rx;
    /* Packets spaced wider than the jitter: delay is latency + uniform jitter. */
    run_flow(99, WZP_MS(20), false, &rx);
    double loss = 1.0 - (double)rx.received / 20000.0;
    double expect_loss = 1.0 - 0.98 * 0.99;
    assert_true(loss > expect_loss - 0.006 && loss < expect_loss + 0.006);
    double mean = rx.sum_delay_ms / (double)rx.received;
    assert_true(mean > 16.9 && mean < 17.1); /* 10 + 5 + mean of U[0,4] */
    assert_true(rx.min_delay >= WZP_MS(15) && rx.min_delay < WZP_MS(15) + WZP_US(100));
    assert_true(rx.max_delay <= WZP_MS(19) && rx.max_delay > WZP_MS(19) - WZP_US(100));
    assert_int_equal(rx.reordered, 0);

    /* Packets 1 ms apart with 4 ms jitter: FIFO by default, reordered only when asked. */
    run_flow(99, WZP_MS(1), false, &rx);
    assert_int_equal(rx.reordered, 0);
    run_flow(99, WZP_MS(1), true, &rx);
    assert_true(rx.reordered > 1000);
}

/* ---- Links changed mid-run, the content filter, the relay, mapping lookup ---------------- */

static bool drop_letter_x(void *ctx, const wzp_addr *src, const wzp_addr *dst, const uint8_t *data,
                          size_t len)
{
    (void)src;
    (void)dst;
    (*(int *)ctx)++;
    return len > 0 && data[0] == 'X';
}

static void test_link_set_filter_relay(void **state)
{
    (void)state;
    wzp_sim *sim = wzp_sim_new(61);
    wzp_sim_nat_cfg cfg = nat_cfg(WZP_SIM_APD, WZP_SIM_AD);
    wzp_sim_router *r;
    wzp_sim_host *h = host_behind(sim, &cfg, &r);
    wzp_sim_host *peer = host_on(sim, "peer", wzp_sim_internet(sim), "192.0.2.50", SRV_LINK);
    wzp_sim_relay *relay = wzp_sim_relay_new(sim, "192.0.2.250:3478", SRV_LINK);
    assert_non_null(relay);
    cli a, p;
    cli_bind(&a, h, "10.0.0.2:5000");
    cli_bind(&p, peer, "192.0.2.50:7000");

    /* The relay: dropped until the other side registered, then forwarded both ways. */
    assert_null(wzp_sim_relay_seen(relay, 0));
    assert_int_equal(wzp_sim_relay_send(relay, a.s, 0, "R", 1), 0);
    wzp_sim_run_until(sim, wzp_sim_now(sim) + WZP_SEC(1));
    assert_int_equal(wzp_sim_stats_get(sim)->dropped_relay, 1);
    assert_int_equal(wzp_sim_relay_send(relay, p.s, 1, NULL, 0), 0);
    wzp_sim_run_until(sim, wzp_sim_now(sim) + WZP_SEC(1));
    assert_int_equal(p.peer_packets, 0); /* a registration forwards nothing */
    assert_int_equal(wzp_sim_relay_send(relay, a.s, 0, "R", 1), 0);
    assert_int_equal(wzp_sim_relay_send(relay, p.s, 1, "S", 1), 0);
    wzp_sim_run_until(sim, wzp_sim_now(sim) + WZP_SEC(1));
    assert_int_equal(p.peer_packets, 1);
    assert_int_equal(a.peer_packets, 1);
    assert_true(wzp_addr_equal(&p.peer_from, wzp_sim_relay_addr(relay)));
    assert_true(wzp_addr_equal(&a.peer_from, wzp_sim_relay_addr(relay)));
    assert_true(addr_is(wzp_sim_relay_seen(relay, 1), "192.0.2.50:7000", true));
    /* What the relay saw of the NATed side is its mapping towards the relay, and only that. */
    wzp_addr ext;
    const wzp_addr *seen = wzp_sim_relay_seen(relay, 0);
    assert_true(wzp_sim_router_mapped(r, wzp_sim_sock_addr(a.s), wzp_sim_relay_addr(relay), &ext));
    assert_true(wzp_addr_equal(&ext, seen));
    assert_false(wzp_sim_router_mapped(r, wzp_sim_sock_addr(a.s), wzp_sim_sock_addr(p.s), &ext));
    size_t maps = wzp_sim_router_mappings(r);
    peer_send(sim, &a, wzp_sim_sock_addr(p.s));
    assert_true(wzp_sim_router_mapped(r, wzp_sim_sock_addr(a.s), wzp_sim_sock_addr(p.s), &ext));
    assert_true(wzp_addr_equal(&ext, &p.peer_from));
    assert_false(wzp_addr_equal(&ext, seen)); /* port-dependent mapping: another port */
    assert_int_equal(wzp_sim_router_mappings(r), maps + 1);

    /* A link changed mid-run: new latency from now on; down drops (and counts) everything. */
    wzp_sim_link l;
    assert_int_equal(wzp_sim_link_get(sim, wzp_sim_internet(sim), "192.0.2.50", &l), 0);
    assert_int_equal(l.latency, SRV_LINK.latency);
    assert_int_equal(wzp_sim_link_get(sim, wzp_sim_internet(sim), "192.0.2.51", &l),
                     WZP_ERR_NOT_FOUND);
    l.down = true;
    assert_int_equal(wzp_sim_link_set(sim, wzp_sim_internet(sim), "192.0.2.50", l), 0);
    peer_send(sim, &a, wzp_sim_sock_addr(p.s));
    assert_int_equal(p.peer_packets, 2);
    assert_int_equal(wzp_sim_stats_get(sim)->dropped_down, 1);
    l.down = false;
    l.latency = WZP_MS(40);
    assert_int_equal(wzp_sim_link_set(sim, wzp_sim_internet(sim), "192.0.2.50", l), 0);
    wzp_ts sent = wzp_sim_now(sim);
    assert_int_equal(wzp_sim_send(a.s, wzp_sim_sock_addr(p.s), "P", 1), 0);
    /* Through the NAT (LAN 0.4-0.6 ms, WAN 10-12 ms) and the new 40 ms: 50.4-52.6 ms. */
    wzp_sim_run_until(sim, sent + WZP_MS(50));
    assert_int_equal(p.peer_packets, 2);
    wzp_sim_run_until(sim, sent + WZP_MS(53));
    assert_int_equal(p.peer_packets, 3);

    /* The filter sees every packet sent and drops those it says. */
    int seen_by_filter = 0;
    wzp_sim_set_filter(sim, drop_letter_x, &seen_by_filter);
    uint64_t blocked = wzp_sim_stats_get(sim)->dropped_blocked;
    assert_int_equal(wzp_sim_send(a.s, wzp_sim_sock_addr(p.s), "X", 1), 0);
    peer_send(sim, &a, wzp_sim_sock_addr(p.s));
    assert_int_equal(p.peer_packets, 4);
    assert_int_equal(seen_by_filter, 2);
    assert_int_equal(wzp_sim_stats_get(sim)->dropped_blocked, blocked + 1);
    wzp_sim_set_filter(sim, NULL, NULL);
    peer_send(sim, &a, wzp_sim_sock_addr(p.s));
    assert_int_equal(seen_by_filter, 2);
    wzp_sim_free(sim);
}

/* ---- Determinism -------------------------------------------------------------------------- */

static uint64_t scenario_hash(uint64_t seed)
{
    stun_srv srv;
    wzp_sim *sim = sim_with_stun(seed, &srv);
    wzp_sim_nat_cfg cfg = nat_cfg(WZP_SIM_APD, WZP_SIM_AD);
    wzp_sim_host *h = host_behind(sim, &cfg, NULL);
    (void)classify(sim, &srv, h, "10.0.0.2", 5000);
    flow_rx rx = {0};
    rx.sim = sim;
    wzp_sim_host *b = wzp_sim_host_new(sim, "b");
    wzp_sim_link lossy = {
        .latency = WZP_MS(3), .jitter = WZP_MS(3), .loss_ppm = 100000, .reorder = true};
    assert_int_equal(wzp_sim_host_add_addr(b, wzp_sim_internet(sim), "192.0.2.2", lossy), 0);
    assert_non_null(wzp_sim_sock_bind(b, "192.0.2.2:2", flow_recv, &rx));
    flow_tx tx = {sim,
                  wzp_sim_sock_bind(h, "10.0.0.2:1", flow_recv, NULL),
                  wzp_sim_addr("192.0.2.2:2"),
                  0,
                  500,
                  WZP_MS(1)};
    wzp_sim_at(sim, wzp_sim_now(sim), flow_tick, &tx);
    while (wzp_sim_step(sim))
        ;
    uint64_t hsh = wzp_sim_trace_hash(sim);
    wzp_sim_free(sim);
    return hsh;
}

static void test_determinism(void **state)
{
    (void)state;
    assert_int_equal(scenario_hash(42), scenario_hash(42));
    assert_int_not_equal(scenario_hash(42), scenario_hash(43));
}

WZP_TEST_MAIN(NULL, NULL, test_classify_grid, test_open_internet_and_ipv6,
              test_port_preservation_collision, test_port_exhaustion, test_hairpin,
              test_mapping_timeout, test_cgn, test_conntrack_trap, test_drop_direct,
              test_link_statistics, test_link_set_filter_relay, test_determinism)
