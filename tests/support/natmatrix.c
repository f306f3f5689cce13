/* natmatrix: see natmatrix.h for the model of a call. */
#include "support/natmatrix.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "ice/agent.h"
#include "wire/demux.h"

/* ---- Relay and media framing (test-only; the real relay frames live in src/wire) ------- */

enum {
    RF_REGISTER = 0x01, /* client → relay: [0x80 01 idx]; keepalive too */
    RF_REFLECT = 0x02,  /* relay → client: [0x80 02 family port ip...] the address seen */
    RF_SEND = 0x03,     /* client → relay: [0x80 03 idx] + inner */
    RF_DELIVER = 0x04,  /* relay → client: [0x80 04] + inner */
};
#define MEDIA_BYTE     0x40 /* a QUIC short-header packet carrying a media datagram */
#define HANDSHAKE_BYTE 0xc0 /* a QUIC long-header packet of the handshake */
#define CAND_BYTE      0xc1 /* signaling: a trickled candidate (family len, port, ip) */
#define MEDIA_LEN      80
#define MEDIA_INTERVAL WZP_MS(20)
#define T0             WZP_SEC(1)
#define HS_RETX        WZP_MS(300)
#define REG_RETX       WZP_MS(200)
#define REG_KEEPALIVE  WZP_SEC(10)

typedef struct nm_call nm_call;

typedef struct nm_client {
    nm_call *call;
    int idx; /* 0 = A (caller), 1 = B (callee) */
    wzp_sim_host *host;
    wzp_sim_sock *sock[WZP_ICE_SOCK_COUNT];
    wzp_sim_sock *aux[WZP_NM_AUX]; /* birthday cells: the agent's extra sockets */
    unsigned naux;
    wzp_addr host4, host6;
    wzp_ice_agent *agent;
    uint64_t wake_id;
    wzp_ts wake_at;
    wzp_addr srflx;
    bool registered;
    int hs_stage; /* A: stage it waits for an answer to (1 or 3); 0 = established */
    bool established;
    wzp_ts direct_since; /* NEVER while on RELAY */
    /* Media reception. */
    wzp_ts first_rx, last_rx;
    bool measuring;
    wzp_ts gap_max;
    uint64_t rx_count;
    uint32_t tx_seq;
} nm_client;

struct nm_call {
    wzp_sim *sim;
    const wzp_nm_cell *cell;
    nm_client c[2];
    wzp_sim_sock *relay;
    wzp_addr relay_addr;
    wzp_addr latched[2];
    bool has_latched[2];
    wzp_sim_router *routers_a[2]; /* A's home NAT and CGN, for the expiry phase */
    uint64_t stuck;
};

/* ---- Relay ------------------------------------------------------------------------------ */

static void relay_recv(void *ctx, wzp_sim_sock *sock, const wzp_addr *from, const uint8_t *data,
                       size_t len)
{
    nm_call *call = ctx;
    if (len < 3 || data[0] != 0x80 || data[2] > 1)
        return;
    int idx = data[2];
    /*
     * Latch: the relay forwards to wherever the client last sent from, and
     * tells the client when that address changed (its mapping moved).
     */
    bool moved = call->has_latched[idx] && !wzp_addr_equal(&call->latched[idx], from);
    call->latched[idx] = *from;
    call->has_latched[idx] = true;
    if (data[1] == RF_REGISTER || moved) {
        uint8_t out[3 + 2 + 16];
        size_t iplen;
        const uint8_t *ip = wzp_addr_ip(from, &iplen);
        uint16_t port = wzp_addr_port(from);
        out[0] = 0x80;
        out[1] = RF_REFLECT;
        out[2] = (uint8_t)iplen;
        out[3] = (uint8_t)(port >> 8);
        out[4] = (uint8_t)port;
        memcpy(out + 5, ip, iplen);
        wzp_sim_send(sock, from, out, 5 + iplen);
    }
    if (data[1] == RF_SEND && call->has_latched[1 - idx]) {
        uint8_t out[2 + 256];
        if (len - 3 > sizeof(out) - 2)
            return;
        out[0] = 0x80;
        out[1] = RF_DELIVER;
        memcpy(out + 2, data + 3, len - 3);
        wzp_sim_send(sock, &call->latched[1 - idx], out, 2 + len - 3);
    }
}

static void relay_send(nm_client *c, const uint8_t *inner, size_t len)
{
    uint8_t out[3 + 256];
    out[0] = 0x80;
    out[1] = RF_SEND;
    out[2] = (uint8_t)c->idx;
    memcpy(out + 3, inner, len);
    wzp_sim_send(c->sock[WZP_ICE_SOCK_V4], &c->call->relay_addr, out, 3 + len);
}

static void relay_register(nm_client *c)
{
    uint8_t out[3] = {0x80, RF_REGISTER, (uint8_t)c->idx};
    wzp_sim_send(c->sock[WZP_ICE_SOCK_V4], &c->call->relay_addr, out, sizeof(out));
}

/* ---- Driving the agent ------------------------------------------------------------------ */

/* The simulated socket of an agent socket index (main or extra); NULL if none. */
static wzp_sim_sock *sim_sock(const nm_client *c, int sock)
{
    if (sock >= 0 && sock < WZP_ICE_SOCK_COUNT)
        return c->sock[sock];
    if (sock >= WZP_ICE_SOCK_COUNT && sock < WZP_ICE_SOCK_COUNT + (int)c->naux)
        return c->aux[sock - WZP_ICE_SOCK_COUNT];
    return NULL;
}

static int sock_index(const nm_client *c, const wzp_sim_sock *sock)
{
    if (sock == c->sock[WZP_ICE_SOCK_V6])
        return WZP_ICE_SOCK_V6;
    for (unsigned k = 0; k < c->naux; k++)
        if (sock == c->aux[k])
            return WZP_ICE_SOCK_COUNT + (int)k;
    return WZP_ICE_SOCK_V4;
}

static void client_service(nm_client *c);

static void client_wake(void *ctx)
{
    nm_client *c = ctx;
    c->wake_id = 0;
    c->wake_at = WZP_TS_NEVER;
    client_service(c);
}

static void client_service(nm_client *c)
{
    if (!c->agent)
        return;
    wzp_sim *sim = c->call->sim;
    wzp_ts now = wzp_sim_now(sim);
    if (now >= wzp_ice_next_deadline(c->agent))
        wzp_ice_handle_timer(c->agent, now);
    uint8_t buf[WZP_PROBE_MAX_LEN];
    int sock, n;
    wzp_addr dest;
    while ((n = wzp_ice_poll_transmit(c->agent, now, buf, sizeof(buf), &sock, &dest)) > 0)
        if (sim_sock(c, sock))
            wzp_sim_send(sim_sock(c, sock), &dest, buf, (size_t)n);
    wzp_ts next = wzp_ice_next_deadline(c->agent);
    if (next <= now) {
        /* The agent wants to run again at once: allow it, but never spin in place. */
        c->call->stuck++;
        next = now + WZP_US(1);
    }
    if (next == c->wake_at)
        return;
    if (c->wake_id)
        wzp_sim_cancel(sim, c->wake_id);
    c->wake_id = 0;
    c->wake_at = next;
    if (next != WZP_TS_NEVER && c->call->stuck < 1000000)
        c->wake_id = wzp_sim_at(sim, next, client_wake, c);
}

static void on_route(void *user, const wzp_ice_route *route, wzp_route_reason reason)
{
    (void)reason;
    nm_client *c = user;
    wzp_ts now = wzp_sim_now(c->call->sim);
    if (route->kind == WZP_ROUTE_DIRECT) {
        if (c->direct_since == WZP_TS_NEVER)
            c->direct_since = now;
    } else
        c->direct_since = WZP_TS_NEVER;
}

/* ---- Media and handshake ---------------------------------------------------------------- */

static void media_rx(nm_client *c)
{
    wzp_ts now = wzp_sim_now(c->call->sim);
    if (c->first_rx == WZP_TS_NEVER)
        c->first_rx = now;
    if (c->measuring && c->last_rx != WZP_TS_NEVER && now - c->last_rx > c->gap_max)
        c->gap_max = now - c->last_rx;
    c->last_rx = now;
    c->rx_count++;
}

static void media_tick(void *ctx)
{
    nm_client *c = ctx;
    wzp_sim *sim = c->call->sim;
    uint8_t pkt[MEDIA_LEN] = {0};
    pkt[0] = MEDIA_BYTE;
    pkt[1] = (uint8_t)c->idx;
    memcpy(pkt + 2, &c->tx_seq, sizeof(c->tx_seq));
    c->tx_seq++;
    wzp_ice_route r = wzp_ice_route_get(c->agent);
    if (r.kind == WZP_ROUTE_DIRECT && sim_sock(c, r.sock))
        wzp_sim_send(sim_sock(c, r.sock), &r.remote, pkt, sizeof(pkt));
    else
        relay_send(c, pkt, sizeof(pkt));
    wzp_sim_at(sim, wzp_sim_now(sim) + MEDIA_INTERVAL, media_tick, c);
}

static void establish(nm_client *c)
{
    if (c->established)
        return;
    c->established = true;
    c->hs_stage = 0;
    media_tick(c);
}

static void hs_send(nm_client *c, uint8_t stage)
{
    uint8_t pkt[64] = {0};
    pkt[0] = HANDSHAKE_BYTE;
    pkt[1] = stage;
    relay_send(c, pkt, sizeof(pkt));
}

static void hs_retx(void *ctx)
{
    nm_client *c = ctx;
    if (c->established || !c->hs_stage)
        return;
    hs_send(c, (uint8_t)c->hs_stage);
    wzp_sim_at(c->call->sim, wzp_sim_now(c->call->sim) + HS_RETX, hs_retx, c);
}

/* Two round trips: A 1 → B 2 → A 3 → B 4 (B established on 3, A on 4). */
static void hs_rx(nm_client *c, uint8_t stage)
{
    if (c->idx == 1) {
        if (stage == 1)
            hs_send(c, 2);
        else if (stage == 3) {
            hs_send(c, 4);
            establish(c);
        }
    } else {
        if (stage == 2 && c->hs_stage == 1) {
            c->hs_stage = 3;
            hs_send(c, 3);
        } else if (stage == 4)
            establish(c);
    }
}

/* Signals one of our candidates to the peer through the relay (trickle). */
static void trickle(nm_client *c, const wzp_addr *addr)
{
    size_t iplen;
    const uint8_t *ip = wzp_addr_ip(addr, &iplen);
    uint16_t port = wzp_addr_port(addr);
    uint8_t pkt[4 + 16];
    if (!ip || iplen > 16)
        return;
    pkt[0] = CAND_BYTE;
    pkt[1] = (uint8_t)iplen;
    pkt[2] = (uint8_t)(port >> 8);
    pkt[3] = (uint8_t)port;
    memcpy(pkt + 4, ip, iplen);
    relay_send(c, pkt, 4 + iplen);
}

static void on_local_candidate(void *user, const wzp_candidate *cand)
{
    trickle(user, &cand->addr);
}

static void reg_tick(void *ctx)
{
    nm_client *c = ctx;
    wzp_ts now = wzp_sim_now(c->call->sim);
    relay_register(c);
    wzp_ts next = (!c->registered && now < T0) ? now + REG_RETX : now + REG_KEEPALIVE;
    wzp_sim_at(c->call->sim, next, reg_tick, c);
}

static void client_recv(void *ctx, wzp_sim_sock *sock, const wzp_addr *from, const uint8_t *data,
                        size_t len)
{
    nm_client *c = ctx;
    wzp_ts now = wzp_sim_now(c->call->sim);
    int sidx = sock_index(c, sock);
    switch (wzp_pkt_classify(data, len)) {
    case WZP_PKT_RELAY:
        if (!wzp_addr_equal(from, &c->call->relay_addr) || len < 2)
            return;
        if (data[1] == RF_REFLECT && len >= 5) {
            int fam = data[2] == 4 ? AF_INET : data[2] == 16 ? AF_INET6 : 0;
            wzp_addr a;
            if (fam && len >= 5u + data[2] &&
                wzp_addr_from_ip(&a, fam, data + 5, (uint16_t)((data[3] << 8) | data[4])) == 0) {
                bool changed = c->registered && !wzp_addr_equal(&a, &c->srflx);
                c->srflx = a;
                c->registered = true;
                if (changed && c->agent) {
                    /* Our mapping moved after t0: learn it and signal it to the peer. */
                    wzp_ice_add_local(c->agent, WZP_CAND_SRFLX, &a);
                    trickle(c, &a);
                }
            }
            return;
        } else if (data[1] == RF_DELIVER && len >= 4) {
            if (data[2] == HANDSHAKE_BYTE)
                hs_rx(c, data[3]);
            else if (data[2] == MEDIA_BYTE && c->established)
                media_rx(c);
            else if (data[2] == CAND_BYTE && len >= 6 && c->agent) {
                int fam = data[3] == 4 ? AF_INET : data[3] == 16 ? AF_INET6 : 0;
                wzp_addr a;
                if (fam && len >= 6u + data[3] &&
                    wzp_addr_from_ip(&a, fam, data + 6, (uint16_t)((data[4] << 8) | data[5])) == 0)
                    wzp_ice_add_remote(c->agent, WZP_CAND_SRFLX, &a, now);
                else
                    return;
            } else
                return;
            break;
        }
        return;
    case WZP_PKT_PROBE:
        if (c->agent)
            wzp_ice_recv(c->agent, sidx, from, data, len, now);
        break;
    case WZP_PKT_QUIC:
        if (data[0] == MEDIA_BYTE && c->established) {
            media_rx(c);
            wzp_ice_note_rx(c->agent, sidx, from, now);
        }
        break;
    default:
        return;
    }
    client_service(c);
}

/* ---- Topology --------------------------------------------------------------------------- */

typedef struct nm_links {
    wzp_sim_link lan, relay;
    wzp_ts jitter_max;
} nm_links;

static wzp_sim_link rand_wan(wzp_sim *sim, bool lossy)
{
    wzp_sim_link l = {0};
    l.latency = WZP_MS(3) + wzp_sim_rand_below(sim, WZP_MS(22));
    l.jitter = wzp_sim_rand_below(sim, WZP_MS(5));
    l.loss_ppm = lossy ? (uint32_t)wzp_sim_rand_below(sim, 10000) : 0; /* up to 1 % */
    return l;
}

/* Random port allocation and timeout per seed; birthday cells keep the cell's allocation. */
static wzp_sim_nat_cfg randomize_cfg(wzp_sim *sim, wzp_sim_nat_cfg cfg, bool keep_ports)
{
    static const wzp_ts timeouts[3] = {WZP_SEC(30), WZP_SEC(60), WZP_SEC(120)};
    bool pp = wzp_sim_rand_below(sim, 2), seq = wzp_sim_rand_below(sim, 2);
    if (!keep_ports) {
        cfg.port_preservation = pp;
        cfg.sequential_ports = seq;
    }
    cfg.timeout = timeouts[wzp_sim_rand_below(sim, 3)];
    return cfg;
}

/* Sum of (latency + jitter) of a chain of attachments: a bound on its one-way delay. */
static wzp_ts link_max(const wzp_sim_link *l)
{
    return l->latency + l->jitter;
}

/*
 * Builds side `idx`'s NAT chain below `outside`; returns the network the host
 * lives on and adds the chain's worst one-way delay to *up.
 */
static wzp_sim_net *build_chain(nm_call *call, int idx, const wzp_nm_side *s, bool lossy,
                                const wzp_sim_link *lan, wzp_ts *up, wzp_sim_router *shared_cgn)
{
    wzp_sim *sim = call->sim;
    wzp_sim_net *net = wzp_sim_internet(sim);
    char name[32], wan[32], lanip[32];
    if (shared_cgn) {
        net = wzp_sim_router_lan(shared_cgn);
    } else if (s->cgn) {
        wzp_sim_link w = rand_wan(sim, lossy);
        wzp_sim_nat_cfg cfg = randomize_cfg(sim, s->cgn_cfg, call->cell->bday);
        snprintf(name, sizeof(name), "cgn-%c", 'a' + idx);
        snprintf(wan, sizeof(wan), "203.0.113.%d", 50 + idx);
        wzp_sim_router *r = wzp_sim_router_new(sim, name, net, wan, w, "100.64.0.1", *lan, &cfg);
        if (!r)
            return NULL;
        if (idx == 0)
            call->routers_a[1] = r;
        *up += link_max(&w) + link_max(lan);
        net = wzp_sim_router_lan(r);
    }
    if (!s->nat)
        return net;
    bool inner = shared_cgn || s->cgn;
    wzp_sim_link w = inner ? *lan : rand_wan(sim, lossy);
    wzp_sim_nat_cfg cfg = randomize_cfg(sim, s->cfg, call->cell->bday);
    snprintf(name, sizeof(name), "nat-%c", 'a' + idx);
    if (inner)
        snprintf(wan, sizeof(wan), "100.64.0.%d", 10 + idx);
    else
        snprintf(wan, sizeof(wan), "203.0.113.%d", 1 + idx);
    /* Both homes use the same private subnet, as real homes do. */
    snprintf(lanip, sizeof(lanip), "192.168.1.1");
    wzp_sim_router *r = wzp_sim_router_new(sim, name, net, wan, w, lanip, *lan, &cfg);
    if (!r)
        return NULL;
    if (idx == 0)
        call->routers_a[0] = r;
    *up += link_max(&w) + link_max(lan);
    return wzp_sim_router_lan(r);
}

static int add_client(nm_call *call, int idx, wzp_sim_net *net4, const char *ip4, wzp_sim_link link,
                      const char *ip6, wzp_sim_link link6)
{
    nm_client *c = &call->c[idx];
    char name[8], a[64];
    snprintf(name, sizeof(name), "%c", 'A' + idx);
    c->host = wzp_sim_host_new(call->sim, name);
    if (wzp_sim_host_add_addr(c->host, net4, ip4, link) != 0)
        return WZP_ERR_INVALID;
    snprintf(a, sizeof(a), "%s:%d", ip4, 40000 + idx);
    c->sock[WZP_ICE_SOCK_V4] = wzp_sim_sock_bind(c->host, a, client_recv, c);
    if (!c->sock[WZP_ICE_SOCK_V4])
        return WZP_ERR_INVALID;
    c->host4 = *wzp_sim_sock_addr(c->sock[WZP_ICE_SOCK_V4]);
    for (unsigned k = 0; call->cell->bday && k < WZP_NM_AUX; k++) {
        snprintf(a, sizeof(a), "%s:%u", ip4, 42000 + k);
        if (!(c->aux[k] = wzp_sim_sock_bind(c->host, a, client_recv, c)))
            return WZP_ERR_INVALID;
        c->naux = k + 1;
    }
    if (ip6) {
        if (wzp_sim_host_add_addr(c->host, wzp_sim_internet(call->sim), ip6, link6) != 0)
            return WZP_ERR_INVALID;
        snprintf(a, sizeof(a), "[%s]:%d", ip6, 40000 + idx);
        c->sock[WZP_ICE_SOCK_V6] = wzp_sim_sock_bind(c->host, a, client_recv, c);
        if (!c->sock[WZP_ICE_SOCK_V6])
            return WZP_ERR_INVALID;
        c->host6 = *wzp_sim_sock_addr(c->sock[WZP_ICE_SOCK_V6]);
    }
    return 0;
}

/* ---- The rule and the matrix ------------------------------------------------------------ */

static wzp_sim_dep dep_max(wzp_sim_dep a, wzp_sim_dep b)
{
    return a > b ? a : b;
}

static void side_effective(const wzp_nm_side *s, wzp_sim_dep *map, wzp_sim_dep *filt)
{
    *map = s->nat ? s->cfg.mapping : WZP_SIM_EI;
    *filt = s->nat ? s->cfg.filtering : WZP_SIM_EI;
    if (s->cgn) {
        *map = dep_max(*map, s->cgn_cfg.mapping);
        *filt = dep_max(*filt, s->cgn_cfg.filtering);
    }
}

bool wzp_nm_expect_direct(const wzp_nm_cell *cell)
{
    if (cell->topo == WZP_NM_SAME_LAN)
        return true;
    if (cell->a.v6 && cell->b.v6)
        return true; /* global IPv6 on both sides, no NAT */
    wzp_sim_dep ma, fa, mb, fb;
    if (cell->topo == WZP_NM_SAME_CGN) {
        /* Only the homes differ; the path hairpins in the shared CGN. */
        if (!cell->a.cgn_cfg.hairpin)
            return false;
        wzp_nm_side a = cell->a, b = cell->b;
        a.cgn = b.cgn = true;
        b.cgn_cfg = a.cgn_cfg;
        side_effective(&a, &ma, &fa);
        side_effective(&b, &mb, &fb);
    } else {
        side_effective(&cell->a, &ma, &fa);
        side_effective(&cell->b, &mb, &fb);
    }
    if (ma == WZP_SIM_EI && mb == WZP_SIM_EI)
        return true;
    if (ma != WZP_SIM_EI && mb == WZP_SIM_EI)
        return fb != WZP_SIM_APD;
    if (mb != WZP_SIM_EI && ma == WZP_SIM_EI)
        return fa != WZP_SIM_APD;
    /*
     * Both endpoint-dependent. An address-dependent mapping is one fixed
     * mapping towards the peer's single address, so once a first packet
     * crosses (the peer's filter is endpoint-independent) and the answer
     * crosses back (our filter does not depend on the port), the pair works
     * through peer-reflexive candidates. Two port-dependent mappings never
     * settle on one pair without port prediction.
     */
    if (ma == WZP_SIM_APD && mb == WZP_SIM_APD)
        return false;
    return (fa == WZP_SIM_EI && fb != WZP_SIM_APD) || (fb == WZP_SIM_EI && fa != WZP_SIM_APD);
}

/* A side's NAT as natcheck measures it and CallParams carry it (wire/signal.h values). */
static wzp_sig_nat side_nat(const wzp_nm_side *s, const wzp_addr *srflx)
{
    wzp_sig_nat n = {0};
    wzp_sim_dep m, f;
    side_effective(s, &m, &f);
    n.mapping = (uint8_t)(m + 1); /* EI, AD, APD -> EIM, ADM, APDM */
    n.filtering = (uint8_t)(f + 1);
    const wzp_sim_nat_cfg *c = s->cgn ? &s->cgn_cfg : &s->cfg;
    if (!s->nat || c->port_preservation) {
        n.ports = 1;
    } else if (c->sequential_ports) {
        n.ports = 2;
        n.port_delta = 1;
        n.last_port = wzp_addr_port(srflx); /* registering was its latest new mapping */
    } else {
        unsigned lo = c->port_lo ? c->port_lo : 20000, hi = c->port_hi ? c->port_hi : 29999;
        n.ports = hi - lo < 16384 ? 3 : 4;
        n.port_lo = (uint16_t)lo;
        n.port_hi = (uint16_t)hi;
    }
    return n;
}

static wzp_sim_nat_cfg mkcfg(wzp_sim_dep m, wzp_sim_dep f, bool hairpin)
{
    wzp_sim_nat_cfg c = {0};
    c.mapping = m;
    c.filtering = f;
    c.hairpin = hairpin;
    return c;
}

static const char *kind_name(const wzp_sim_nat_cfg *c, char *buf, size_t len)
{
    snprintf(buf, len, "%sM/%sF", wzp_sim_dep_name(c->mapping), wzp_sim_dep_name(c->filtering));
    return buf;
}

static void add_cell(wzp_nm_cell *out, size_t max, size_t *n, const wzp_nm_cell *c)
{
    if (*n < max) {
        out[*n] = *c;
        out[*n].expect_direct = wzp_nm_expect_direct(c);
    }
    (*n)++;
}

/* An empty cell of topology topo, both sides behind a NAT or both public. */
static wzp_nm_cell cell_of(wzp_nm_topo topo, bool nat)
{
    wzp_nm_cell c;
    memset(&c, 0, sizeof(c));
    c.topo = topo;
    c.a.nat = c.b.nat = nat;
    return c;
}

size_t wzp_nm_cells(wzp_nm_cell *out, size_t max)
{
    size_t n = 0;
    wzp_nm_cell c;
    char ka[16], kb[16];
    /* Every pair of the 3x3 mapping x filtering grid, each side behind its own NAT. */
    for (int i = 0; i < 9; i++)
        for (int j = 0; j < 9; j++) {
            c = cell_of(WZP_NM_SEPARATE, true);
            c.a.cfg = mkcfg((wzp_sim_dep)(i / 3), (wzp_sim_dep)(i % 3), false);
            c.b.cfg = mkcfg((wzp_sim_dep)(j / 3), (wzp_sim_dep)(j % 3), false);
            snprintf(c.name, sizeof(c.name), "%s <> %s", kind_name(&c.a.cfg, ka, sizeof(ka)),
                     kind_name(&c.b.cfg, kb, sizeof(kb)));
            add_cell(out, max, &n, &c);
        }
    /* A public host (no NAT) against each kind, and against another public host. */
    for (int j = 0; j < 10; j++) {
        c = cell_of(WZP_NM_SEPARATE, false);
        c.b.nat = j < 9;
        c.b.cfg = mkcfg((wzp_sim_dep)(j / 3 % 3), (wzp_sim_dep)(j % 3), false);
        snprintf(c.name, sizeof(c.name), "public <> %s",
                 c.b.nat ? kind_name(&c.b.cfg, kb, sizeof(kb)) : "public");
        add_cell(out, max, &n, &c);
    }
    /* Same LAN, with and without hairpinning, behind a cone and a symmetric NAT. */
    for (int k = 0; k < 4; k++) {
        c = cell_of(WZP_NM_SAME_LAN, true);
        c.a.cfg = mkcfg(k < 2 ? WZP_SIM_EI : WZP_SIM_APD, WZP_SIM_APD, k % 2);
        c.b.cfg = c.a.cfg;
        snprintf(c.name, sizeof(c.name), "same LAN %s hairpin %s",
                 kind_name(&c.a.cfg, ka, sizeof(ka)), k % 2 ? "on" : "off");
        add_cell(out, max, &n, &c);
    }
    /* Carrier-grade NAT on side A (home cone NAT inside), against a cone and a full cone. */
    for (int k = 0; k < 4; k++) {
        c = cell_of(WZP_NM_SEPARATE, true);
        c.a.cfg = mkcfg(WZP_SIM_EI, WZP_SIM_APD, false);
        c.a.cgn = true;
        c.a.cgn_cfg = mkcfg(k < 2 ? WZP_SIM_EI : WZP_SIM_APD, WZP_SIM_APD, false);
        c.b.cfg = mkcfg(WZP_SIM_EI, k % 2 ? WZP_SIM_EI : WZP_SIM_APD, false);
        snprintf(c.name, sizeof(c.name), "CGN %s <> %s", kind_name(&c.a.cgn_cfg, ka, sizeof(ka)),
                 kind_name(&c.b.cfg, kb, sizeof(kb)));
        add_cell(out, max, &n, &c);
    }
    /* Both behind one CGN (own home NATs): direct only through the CGN's hairpin. */
    for (int k = 0; k < 2; k++) {
        c = cell_of(WZP_NM_SAME_CGN, true);
        c.a.cfg = c.b.cfg = mkcfg(WZP_SIM_EI, WZP_SIM_APD, false);
        c.a.cgn = true;
        c.a.cgn_cfg = mkcfg(WZP_SIM_EI, WZP_SIM_APD, k);
        snprintf(c.name, sizeof(c.name), "same CGN hairpin %s", k ? "on" : "off");
        add_cell(out, max, &n, &c);
    }
    /*
     * Birthday probing and port prediction: symmetric NATs with the
     * allocation fixed (random over the whole port space as Linux
     * `masquerade random` does, random in a 1000-port range as `snat to
     * WAN:20000-20999 random`, or sequential), against a port-restricted cone
     * and each other; the targets are rates (bday_pct of the seeds direct
     * within bday_within). Plus two controls: cones that were direct stay
     * direct just as fast, and random against random stays on the relay.
     */
    static const struct {
        const char *name;
        int a_ports, b_ports; /* 0 cone (EIM/APDF), 1 random, 2 range, 3 sequential (APDM/APDF) */
        unsigned pct;
        wzp_ts within;
    } bd[] = {
        {"birthday: sym random <> PRC", 1, 0, 90, WZP_SEC(10)},
        {"birthday: PRC <> sym random", 0, 1, 90, WZP_SEC(10)},
        {"birthday: sym range <> PRC", 2, 0, 90, WZP_SEC(10)},
        {"birthday: sym seq <> PRC", 3, 0, 90, WZP_SEC(10)},
        {"birthday: sym seq <> sym seq", 3, 3, 50, WZP_SEC(20)},
        {"birthday: sym random <> sym random", 1, 1, 0, 0},
        {"birthday: PRC <> PRC", 0, 0, 0, 0},
    };
    for (size_t k = 0; k < sizeof(bd) / sizeof(bd[0]); k++) {
        c = cell_of(WZP_NM_SEPARATE, true);
        c.bday = true;
        c.bday_pct = bd[k].pct;
        c.bday_within = bd[k].within;
        wzp_sim_nat_cfg *side[2] = {&c.a.cfg, &c.b.cfg};
        int kind[2] = {bd[k].a_ports, bd[k].b_ports};
        for (int i = 0; i < 2; i++) {
            *side[i] = mkcfg(kind[i] ? WZP_SIM_APD : WZP_SIM_EI, WZP_SIM_APD, false);
            side[i]->port_preservation = kind[i] == 0;
            side[i]->sequential_ports = kind[i] == 3;
            side[i]->port_lo = kind[i] == 1 ? 1024 : kind[i] == 2 ? 20000 : 0;
            side[i]->port_hi = kind[i] == 1 ? 65535 : kind[i] == 2 ? 20999 : 0;
        }
        snprintf(c.name, sizeof(c.name), "%s", bd[k].name);
        add_cell(out, max, &n, &c);
    }
    /* IPv6 without NAT beside symmetric IPv4 NATs: on both sides, or only one. */
    for (int k = 0; k < 2; k++) {
        c = cell_of(WZP_NM_SEPARATE, true);
        c.a.cfg = c.b.cfg = mkcfg(WZP_SIM_APD, WZP_SIM_APD, false);
        c.a.v6 = true;
        c.b.v6 = k == 0;
        snprintf(c.name, sizeof(c.name), "IPv6 %s (v4 APDM/APDF both)", k == 0 ? "both" : "A only");
        add_cell(out, max, &n, &c);
    }
    return n;
}

/* ---- Running a call --------------------------------------------------------------------- */

static void measure_start(nm_call *call)
{
    for (int i = 0; i < 2; i++) {
        call->c[i].measuring = true;
        call->c[i].gap_max = 0;
    }
}

static wzp_ts measure_stop(nm_call *call)
{
    wzp_ts now = wzp_sim_now(call->sim), g = 0;
    for (int i = 0; i < 2; i++) {
        nm_client *c = &call->c[i];
        if (c->last_rx == WZP_TS_NEVER)
            c->gap_max = WZP_TS_NEVER;
        else if (now - c->last_rx > c->gap_max)
            c->gap_max = now - c->last_rx;
        c->measuring = false;
        if (c->gap_max > g)
            g = c->gap_max;
    }
    return g;
}

static bool both_direct(const nm_call *call)
{
    return wzp_ice_route_get(call->c[0].agent).kind == WZP_ROUTE_DIRECT &&
           wzp_ice_route_get(call->c[1].agent).kind == WZP_ROUTE_DIRECT;
}

static wzp_ts since_both_direct(const nm_call *call, wzp_ts from)
{
    if (!both_direct(call) || call->c[0].direct_since == WZP_TS_NEVER ||
        call->c[1].direct_since == WZP_TS_NEVER)
        return WZP_TS_NEVER;
    wzp_ts t = call->c[0].direct_since > call->c[1].direct_since ? call->c[0].direct_since
                                                                 : call->c[1].direct_since;
    return t > from ? t - from : 0;
}

static void candidates(nm_client *from, nm_client *to, wzp_ts now, size_t *npairs)
{
    wzp_ice_agent *l = from->agent, *r = to->agent;
    wzp_ice_add_local(l, WZP_CAND_HOST, &from->host4);
    wzp_ice_add_remote(r, WZP_CAND_HOST, &from->host4, now);
    *npairs += 1;
    if (from->registered && !wzp_addr_equal(&from->srflx, &from->host4)) {
        wzp_ice_add_local(l, WZP_CAND_SRFLX, &from->srflx);
        wzp_ice_add_remote(r, WZP_CAND_SRFLX, &from->srflx, now);
        *npairs += 1;
    }
    if (from->sock[WZP_ICE_SOCK_V6] && to->sock[WZP_ICE_SOCK_V6]) {
        wzp_ice_add_local(l, WZP_CAND_HOST, &from->host6);
        wzp_ice_add_remote(r, WZP_CAND_HOST, &from->host6, now);
        *npairs += 1;
    }
}

static void teardown(nm_call *call)
{
    for (int i = 0; i < 2; i++)
        wzp_ice_free(call->c[i].agent);
    wzp_sim_free(call->sim);
}

int wzp_nm_run(const wzp_nm_cell *cell, const wzp_nm_opts *o, wzp_nm_result *r)
{
    memset(r, 0, sizeof(*r));
    r->first_audio = r->direct_first = r->direct_both = WZP_TS_NEVER;
    r->recover_direct = r->expiry_direct = WZP_TS_NEVER;
    nm_call call;
    memset(&call, 0, sizeof(call));
    call.cell = cell;
    call.sim = wzp_sim_new(o->seed);
    wzp_sim *sim = call.sim;
    if (o->trace)
        wzp_sim_set_trace(sim, o->trace, o->trace_ctx);

    /* Links: LANs fast and clean, WAN attachments random per seed. */
    wzp_sim_link lan = {.latency = WZP_US(200), .jitter = WZP_US(100)};
    /* A relay near the users: 2-12 ms from the internet core. */
    wzp_sim_link relay_link = rand_wan(sim, o->lossy);
    relay_link.latency = WZP_MS(2) + wzp_sim_rand_below(sim, WZP_MS(10));
    wzp_sim_host *relay = wzp_sim_host_new(sim, "relay");
    wzp_sim_host_set_infra(relay, true);
    wzp_sim_host_add_addr(relay, wzp_sim_internet(sim), "198.51.100.10", relay_link);
    call.relay = wzp_sim_sock_bind(relay, "198.51.100.10:3478", relay_recv, &call);
    call.relay_addr = wzp_sim_addr("198.51.100.10:3478");

    wzp_ts up[2] = {0, 0};
    wzp_sim_net *net[2];
    int rc = 0;
    if (cell->topo == WZP_NM_SAME_LAN) {
        net[0] = build_chain(&call, 0, &cell->a, o->lossy, &lan, &up[0], NULL);
        net[1] = net[0];
        rc = net[0] ? 0 : WZP_ERR_INVALID;
        if (!rc)
            rc = add_client(&call, 0, net[0], "192.168.1.10", lan, NULL, lan);
        if (!rc)
            rc = add_client(&call, 1, net[1], "192.168.1.20", lan, NULL, lan);
        up[0] = up[1] = 2 * link_max(&lan); /* the LAN path */
    } else {
        wzp_sim_router *shared = NULL;
        if (cell->topo == WZP_NM_SAME_CGN) {
            wzp_sim_link w = rand_wan(sim, o->lossy);
            wzp_sim_nat_cfg cfg = randomize_cfg(sim, cell->a.cgn_cfg, cell->bday);
            shared = wzp_sim_router_new(sim, "cgn", wzp_sim_internet(sim), "203.0.113.50", w,
                                        "100.64.0.1", lan, &cfg);
            call.routers_a[1] = shared;
            up[0] = up[1] = link_max(&lan); /* hairpinned in the CGN: LAN-ish both ways */
        }
        for (int i = 0; i < 2 && !rc; i++) {
            const wzp_nm_side *s = i ? &cell->b : &cell->a;
            net[i] = build_chain(&call, i, s, o->lossy, &lan, &up[i], shared);
            if (!net[i]) {
                rc = WZP_ERR_INVALID;
                break;
            }
            char ip4[32], ip6[48];
            if (s->nat)
                snprintf(ip4, sizeof(ip4), "192.168.1.%d", 10 + 10 * i);
            else
                snprintf(ip4, sizeof(ip4), "192.0.2.%d", 10 + i);
            snprintf(ip6, sizeof(ip6), "2001:db8:%x::10", 0xa + i);
            wzp_sim_link hl = s->nat ? lan : rand_wan(sim, o->lossy);
            wzp_sim_link l6 = rand_wan(sim, o->lossy);
            rc = add_client(&call, i, net[i], ip4, hl, s->v6 ? ip6 : NULL, l6);
            up[i] += link_max(&hl);
            if (cell->a.v6 && cell->b.v6)
                up[i] = link_max(&l6); /* the IPv6 path is the one expected */
        }
    }
    if (rc) {
        teardown(&call);
        return rc;
    }

    /* t = 0: register with the relay (learn srflx), start relay keepalives. */
    for (int i = 0; i < 2; i++) {
        nm_client *c = &call.c[i];
        c->call = &call;
        c->idx = i;
        c->direct_since = WZP_TS_NEVER;
        c->first_rx = c->last_rx = WZP_TS_NEVER;
        c->wake_at = WZP_TS_NEVER;
        wzp_sim_at(sim, 0, reg_tick, c);
    }
    wzp_sim_run_until(sim, T0);

    /* t0: both agents get candidates and the key; the relay handshake starts. */
    wzp_ice_config cfg;
    wzp_ice_config_default(&cfg);
    size_t npairs[2] = {0, 0};
    for (int i = 0; i < 2; i++) {
        nm_client *c = &call.c[i];
        cfg.agent_id[0] = (uint8_t)(i + 1);
        cfg.aux_socks = c->naux;
        cfg.bday.seed = o->seed * 2 + (uint64_t)i + 1;
        cfg.cb.route_changed = on_route;
        cfg.cb.local_candidate = on_local_candidate;
        cfg.user = c;
        if (wzp_ice_new(&c->agent, &cfg) < 0) {
            teardown(&call);
            return WZP_ERR_NOMEM;
        }
    }
    candidates(&call.c[0], &call.c[1], T0, &npairs[1]);
    candidates(&call.c[1], &call.c[0], T0, &npairs[0]);
    uint8_t key[WZP_PROBE_KEY_LEN];
    for (size_t i = 0; i < sizeof(key); i++)
        key[i] = (uint8_t)(o->seed * 31 + i * 7);
    if (cell->bday)
        for (int i = 0; i < 2; i++) {
            const wzp_nm_side *me = i ? &cell->b : &cell->a, *peer = i ? &cell->a : &cell->b;
            wzp_sig_nat ln = side_nat(me, &call.c[i].srflx),
                        pn = side_nat(peer, &call.c[1 - i].srflx);
            wzp_ice_set_nat(call.c[i].agent, &ln, &pn, T0);
        }
    for (int i = 0; i < 2; i++) {
        wzp_ice_set_key(call.c[i].agent, key, T0);
        client_service(&call.c[i]);
    }
    call.c[0].hs_stage = 1;
    hs_retx(&call.c[0]);

    /* The bound: one probe round trip, plus the peer's triggered check, plus pacing. */
    wzp_ts one_way = up[0] + up[1];
    r->direct_bound = 3 * one_way + (npairs[0] + npairs[1] + 2) * cfg.pace;
    wzp_sim_dep ma, fa, mb, fb;
    side_effective(&cell->a, &ma, &fa);
    side_effective(&cell->b, &mb, &fb);
    if (cell->topo == WZP_NM_SEPARATE && !(cell->a.v6 && cell->b.v6) && ma != WZP_SIM_EI &&
        mb != WZP_SIM_EI)
        /* Both mappings endpoint-dependent: one more peer-reflexive round trip. */
        r->direct_bound += 2 * one_way + 2 * cfg.pace;

    /* Birthday cells: long enough for the probing to run its course. */
    wzp_ts t = T0 + (cell->bday ? WZP_SEC(20) : WZP_SEC(2));
    wzp_sim_run_until(sim, t);
    measure_start(&call);
    t += WZP_SEC(2);
    wzp_sim_run_until(sim, t);
    r->steady_gap = measure_stop(&call);
    if (call.c[0].first_rx != WZP_TS_NEVER && call.c[1].first_rx != WZP_TS_NEVER)
        r->first_audio =
            (call.c[0].first_rx > call.c[1].first_rx ? call.c[0].first_rx : call.c[1].first_rx) -
            T0;
    wzp_ts d[2];
    for (int i = 0; i < 2; i++) {
        wzp_ice_stats st;
        wzp_ice_get_stats(call.c[i].agent, &st);
        d[i] = st.first_direct_at == WZP_TS_NEVER ? WZP_TS_NEVER : st.first_direct_at - T0;
        r->bday_sent += st.bday_sent;
    }
    r->direct_first = d[0] < d[1] ? d[0] : d[1];
    r->direct_both = (d[0] == WZP_TS_NEVER || d[1] == WZP_TS_NEVER) ? WZP_TS_NEVER
                     : d[0] > d[1]                                  ? d[0]
                                                                    : d[1];

    if (o->failover) {
        /* Cut every direct packet of A, both ways, mid-call; the relay stays up. */
        measure_start(&call);
        wzp_sim_run_until(sim, t + WZP_MS(200));
        wzp_sim_host_set_drop_direct(call.c[0].host, true);
        t += WZP_MS(200) + WZP_SEC(3);
        wzp_sim_run_until(sim, t);
        r->failover_gap = measure_stop(&call);
        r->failover_relay = wzp_ice_route_get(call.c[0].agent).kind == WZP_ROUTE_RELAY &&
                            wzp_ice_route_get(call.c[1].agent).kind == WZP_ROUTE_RELAY;
        wzp_sim_host_set_drop_direct(call.c[0].host, false);
        wzp_ts restored = t;
        t += WZP_SEC(10);
        wzp_sim_run_until(sim, t);
        r->recover_direct = since_both_direct(&call, restored);
    }
    if (o->expiry) {
        /* All of A's NAT state is forgotten at once (mappings expired, router rebooted). */
        measure_start(&call);
        wzp_sim_run_until(sim, t + WZP_MS(200));
        t += WZP_MS(200);
        wzp_ts dropped = t;
        for (int i = 0; i < 2; i++)
            if (call.routers_a[i])
                wzp_sim_router_flush(call.routers_a[i]);
        t += WZP_SEC(10);
        wzp_sim_run_until(sim, t);
        r->expiry_gap = measure_stop(&call);
        r->expiry_direct = since_both_direct(&call, dropped);
    }

    /* Final second: both must be receiving media with no long gap. */
    uint64_t before[2] = {call.c[0].rx_count, call.c[1].rx_count};
    measure_start(&call);
    t += WZP_SEC(1);
    wzp_sim_run_until(sim, t);
    wzp_ts final_gap = measure_stop(&call);
    r->media_ok = final_gap <= WZP_NM_MAX_GAP && call.c[0].rx_count - before[0] >= 35 &&
                  call.c[1].rx_count - before[1] >= 35;
    r->direct_a = wzp_ice_route_get(call.c[0].agent).kind == WZP_ROUTE_DIRECT;
    r->direct_b = wzp_ice_route_get(call.c[1].agent).kind == WZP_ROUTE_DIRECT;
    r->trace_hash = wzp_sim_trace_hash(sim);
    r->stats = *wzp_sim_stats_get(sim);
    rc = call.stuck >= 1000000 ? WZP_ERR_INTERNAL : 0;
    teardown(&call);
    return rc;
}

__attribute__((format(printf, 3, 4))) static bool fail(char *why, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, len, fmt, ap);
    va_end(ap);
    return false;
}

static double msf(wzp_ts t)
{
    return t == WZP_TS_NEVER ? -1.0 : (double)t / 1e6;
}

bool wzp_nm_judge(const wzp_nm_cell *cell, const wzp_nm_opts *o, const wzp_nm_result *r, char *why,
                  size_t whylen)
{
    const double ms = 1e6;
    if (r->direct_a != r->direct_b)
        return fail(why, whylen, "split-brain: A %s, B %s", r->direct_a ? "DIRECT" : "RELAY",
                    r->direct_b ? "DIRECT" : "RELAY");
    /* Birthday cells where the rule finds no direct path: direct in a share of the seeds
     * (wzp_nm_bday_ok judges the share); a seed may end either way. */
    bool rate_cell = cell->bday && !cell->expect_direct && cell->bday_pct;
    if (!rate_cell && r->direct_a != cell->expect_direct)
        return fail(why, whylen,
                    "final route %s, expected %s (direct at %.1f ms, after restore %.1f ms, "
                    "after NAT state loss %.1f ms; -1 = never)",
                    r->direct_a ? "DIRECT" : "RELAY", cell->expect_direct ? "DIRECT" : "RELAY",
                    msf(r->direct_both), msf(r->recover_direct), msf(r->expiry_direct));
    if (!r->media_ok)
        return fail(why, whylen, "media not flowing both ways at the end");
    if (r->first_audio == WZP_TS_NEVER)
        return fail(why, whylen, "no audio");
    if (r->steady_gap > WZP_NM_MAX_GAP)
        return fail(why, whylen, "steady-state media gap %.1f ms (limit %.0f)",
                    (double)r->steady_gap / ms, (double)WZP_NM_MAX_GAP / ms);
    if (cell->expect_direct) {
        if (r->direct_both == WZP_TS_NEVER)
            return fail(why, whylen, "never direct on both sides in the first 4 s");
        if (!o->lossy && r->direct_both > r->direct_bound)
            return fail(why, whylen, "time to direct %.1f ms over the bound %.1f ms",
                        (double)r->direct_both / ms, (double)r->direct_bound / ms);
    } else if (!rate_cell && r->direct_first != WZP_TS_NEVER) {
        return fail(why, whylen, "went direct at %.1f ms where no direct path exists",
                    (double)r->direct_first / ms);
    }
    if (o->failover) {
        if (!o->lossy && r->failover_gap > WZP_NM_MAX_GAP)
            return fail(why, whylen, "failover gap %.1f ms (limit %.0f)",
                        (double)r->failover_gap / ms, (double)WZP_NM_MAX_GAP / ms);
        if (!r->failover_relay)
            return fail(why, whylen, "not both on RELAY while the direct path was cut");
        if ((cell->expect_direct || (rate_cell && r->direct_both != WZP_TS_NEVER)) &&
            r->recover_direct == WZP_TS_NEVER)
            return fail(why, whylen, "not direct again 10 s after the path came back");
    }
    if (o->expiry && cell->expect_direct && r->expiry_direct == WZP_TS_NEVER)
        return fail(why, whylen, "not direct again 10 s after A's NAT state was dropped");
    snprintf(why, whylen, "ok");
    return true;
}
