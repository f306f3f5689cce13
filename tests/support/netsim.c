/* netsim: see netsim.h. Small linear structures throughout: simulations hold tens of nodes. */
#include "support/netsim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

/* ---- PRNG: pcg32 (deterministic per seed; not for anything secret) ------------------- */

typedef struct sim_pcg {
    uint64_t state, inc;
} sim_pcg;

static uint32_t pcg_next(sim_pcg *g)
{
    uint64_t old = g->state;
    g->state = old * 6364136223846793005ULL + g->inc;
    uint32_t xorshifted = (uint32_t)(((old >> 18u) ^ old) >> 27u);
    uint32_t rot = (uint32_t)(old >> 59u);
    return (xorshifted >> rot) | (xorshifted << ((-rot) & 31));
}

static void pcg_seed(sim_pcg *g, uint64_t seed)
{
    g->state = 0;
    g->inc = (seed << 1u) | 1u;
    pcg_next(g);
    g->state += seed ^ 0x853c49e6748fea9bULL;
    pcg_next(g);
}

/* ---- Types ------------------------------------------------------------------------------ */

typedef enum node_kind { NODE_HOST, NODE_WAN, NODE_LAN } node_kind;

/* One attachment: an address of a host, or one side of a router, on one network. */
typedef struct sim_node {
    int id;
    node_kind kind;
    wzp_addr ip; /* port 0 */
    wzp_sim_net *net;
    wzp_sim_link link;
    wzp_sim_host *host;     /* NODE_HOST */
    wzp_sim_router *router; /* NODE_WAN, NODE_LAN */
} sim_node;

struct wzp_sim_net {
    wzp_sim *sim;
    wzp_sim_router *uplink; /* NULL for the internet */
    wzp_sim_net *next_net;
};

struct wzp_sim_sock {
    wzp_sim_host *host;
    wzp_addr addr;
    wzp_sim_recv_fn fn;
    void *ctx;
    wzp_sim_sock *next;
};

struct wzp_sim_host {
    wzp_sim *sim;
    char name[32];
    bool infra, drop_direct;
    wzp_sim_sock *socks;
    wzp_sim_host *next_host;
};

typedef struct sim_flow {
    wzp_addr remote;
    wzp_ts expiry;
} sim_flow;

typedef struct sim_mapping {
    wzp_addr internal;
    wzp_addr key_remote; /* the remote this mapping is specific to (AD/APD/pinned) */
    uint16_t ext_port;
    bool pinned; /* made by the conntrack trap: serves key_remote only */
    wzp_ts expiry;
    sim_flow *flows;
    size_t nflows, capflows;
} sim_mapping;

/* Unreplied conntrack state left by unsolicited inbound traffic (wan_input_open). */
typedef struct sim_trap {
    uint16_t ext_port;
    wzp_addr remote;
    wzp_ts expiry;
} sim_trap;

struct wzp_sim_router {
    wzp_sim *sim;
    char name[32];
    wzp_sim_nat_cfg cfg;
    sim_node *wan, *lan;
    wzp_sim_net *lan_net;
    bool drop_direct;
    sim_mapping *maps;
    size_t nmaps, capmaps;
    sim_trap *traps;
    size_t ntraps, captraps;
    uint16_t next_seq_port;
    wzp_sim_stats stats;
    wzp_sim_router *next_router;
};

typedef struct sim_packet {
    wzp_addr src, dst;
    size_t len;
    uint8_t data[];
} sim_packet;

typedef struct sim_event {
    wzp_ts t;
    uint64_t seq;   /* FIFO among equal times, and the timer id */
    sim_node *node; /* packet arrival at node, or NULL for a timer */
    sim_packet *pkt;
    wzp_sim_timer_fn fn;
    void *ctx;
    bool cancelled;
} sim_event;

struct wzp_sim_relay {
    wzp_sim *sim;
    wzp_sim_sock *sock;
    wzp_addr seen[2];
    bool has_seen[2];
    wzp_sim_relay *next_relay;
};

struct wzp_sim {
    wzp_ts now;
    sim_pcg rng;
    uint64_t seq;
    sim_event *heap;
    size_t nheap, capheap;
    size_t inflight_bytes;
    sim_node *nodes[WZP_SIM_MAX_NODES];
    int nnodes;
    /* Latest scheduled arrival per (from, to) hop, to keep jittered hops FIFO. */
    wzp_ts last_arrival[WZP_SIM_MAX_NODES][WZP_SIM_MAX_NODES];
    wzp_sim_net internet;
    wzp_sim_net *nets;
    wzp_sim_host *hosts;
    wzp_sim_router *routers;
    wzp_sim_relay *relays;
    wzp_sim_filter_fn filter_fn;
    void *filter_ctx;
    wzp_sim_stats stats;
    uint64_t trace_hash;
    wzp_sim_trace_fn trace_fn;
    void *trace_ctx;
};

/* ---- Small helpers ---------------------------------------------------------------------- */

wzp_addr wzp_sim_addr(const char *text)
{
    wzp_addr a;
    if (wzp_addr_parse(&a, text, true) != 0) {
        fprintf(stderr, "netsim: bad address literal '%s'\n", text);
        abort();
    }
    return a;
}

const char *wzp_sim_dep_name(wzp_sim_dep d)
{
    switch (d) {
    case WZP_SIM_EI:
        return "EI";
    case WZP_SIM_AD:
        return "AD";
    case WZP_SIM_APD:
        return "APD";
    }
    return "?";
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p) {
        fprintf(stderr, "netsim: out of memory\n");
        abort();
    }
    return p;
}

/* Grows *arr (of *cap elements of size sz) so that it holds at least need elements. */
static void grow(void **arr, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap)
        return;
    size_t ncap = *cap ? *cap * 2 : 8;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*arr, ncap * sz);
    if (!p) {
        fprintf(stderr, "netsim: out of memory\n");
        abort();
    }
    *arr = p;
    *cap = ncap;
}

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t fnv_addr(uint64_t h, const wzp_addr *a)
{
    size_t n;
    const uint8_t *ip = wzp_addr_ip(a, &n);
    uint16_t port = wzp_addr_port(a);
    if (ip)
        h = fnv(h, ip, n);
    return fnv(h, &port, sizeof(port));
}

static const char *node_name(const sim_node *n)
{
    if (n->kind == NODE_HOST)
        return n->host->name;
    return n->router->name;
}

/* Records an event in the trace hash and, if tracing, as a text line. */
static void trace(wzp_sim *sim, const char *what, const sim_node *at, const sim_packet *p)
{
    uint64_t h = sim->trace_hash ? sim->trace_hash : 0xcbf29ce484222325ULL;
    h = fnv(h, &sim->now, sizeof(sim->now));
    h = fnv(h, what, strlen(what));
    int id = at ? at->id : -1;
    h = fnv(h, &id, sizeof(id));
    if (p) {
        h = fnv_addr(h, &p->src);
        h = fnv_addr(h, &p->dst);
        h = fnv(h, p->data, p->len);
    }
    sim->trace_hash = h;
    if (!sim->trace_fn)
        return;
    char line[256], s[WZP_ADDR_STRLEN], d[WZP_ADDR_STRLEN];
    if (p)
        snprintf(line, sizeof(line), "%10.3f ms %-12s %-10s %s -> %s (%zu B)",
                 (double)sim->now / 1e6, what, at ? node_name(at) : "-",
                 wzp_addr_format(&p->src, s, sizeof(s)), wzp_addr_format(&p->dst, d, sizeof(d)),
                 p->len);
    else
        snprintf(line, sizeof(line), "%10.3f ms %-12s %s", (double)sim->now / 1e6, what,
                 at ? node_name(at) : "-");
    sim->trace_fn(sim->trace_ctx, line);
}

/* ---- Event heap ------------------------------------------------------------------------- */

static bool ev_less(const sim_event *a, const sim_event *b)
{
    return a->t < b->t || (a->t == b->t && a->seq < b->seq);
}

static void heap_push(wzp_sim *sim, sim_event ev)
{
    grow((void **)&sim->heap, &sim->capheap, sim->nheap + 1, sizeof(sim_event));
    size_t i = sim->nheap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!ev_less(&ev, &sim->heap[parent]))
            break;
        sim->heap[i] = sim->heap[parent];
        i = parent;
    }
    sim->heap[i] = ev;
}

static sim_event heap_pop(wzp_sim *sim)
{
    sim_event top = sim->heap[0];
    sim_event last = sim->heap[--sim->nheap];
    size_t i = 0, n = sim->nheap;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const sim_event *best = &last;
        if (l < n && ev_less(&sim->heap[l], best)) {
            m = l;
            best = &sim->heap[l];
        }
        if (r < n && ev_less(&sim->heap[r], best))
            m = r;
        if (m == i)
            break;
        sim->heap[i] = sim->heap[m];
        i = m;
    }
    if (n > 0)
        sim->heap[i] = last;
    return top;
}

/* ---- Construction ----------------------------------------------------------------------- */

wzp_sim *wzp_sim_new(uint64_t seed)
{
    wzp_sim *sim = xcalloc(1, sizeof(*sim));
    pcg_seed(&sim->rng, seed);
    sim->internet.sim = sim;
    return sim;
}

static void free_packet(wzp_sim *sim, sim_packet *p)
{
    if (!p)
        return;
    sim->inflight_bytes -= p->len;
    free(p);
}

void wzp_sim_free(wzp_sim *sim)
{
    if (!sim)
        return;
    for (size_t i = 0; i < sim->nheap; i++)
        free_packet(sim, sim->heap[i].pkt);
    free(sim->heap);
    for (int i = 0; i < sim->nnodes; i++)
        free(sim->nodes[i]);
    for (wzp_sim_host *h = sim->hosts, *hn; h; h = hn) {
        hn = h->next_host;
        for (wzp_sim_sock *s = h->socks, *sn; s; s = sn) {
            sn = s->next;
            free(s);
        }
        free(h);
    }
    for (wzp_sim_router *r = sim->routers, *rn; r; r = rn) {
        rn = r->next_router;
        for (size_t i = 0; i < r->nmaps; i++)
            free(r->maps[i].flows);
        free(r->maps);
        free(r->traps);
        free(r);
    }
    for (wzp_sim_relay *r = sim->relays, *rn; r; r = rn) {
        rn = r->next_relay;
        free(r);
    }
    for (wzp_sim_net *n = sim->nets, *nn; n; n = nn) {
        nn = n->next_net;
        free(n);
    }
    free(sim);
}

wzp_ts wzp_sim_now(const wzp_sim *sim)
{
    return sim->now;
}

uint32_t wzp_sim_rand32(wzp_sim *sim)
{
    return pcg_next(&sim->rng);
}

uint64_t wzp_sim_rand_below(wzp_sim *sim, uint64_t n)
{
    if (n == 0)
        return 0;
    uint64_t r = ((uint64_t)pcg_next(&sim->rng) << 32) | pcg_next(&sim->rng);
    return r % n; /* bias is irrelevant at test sizes */
}

wzp_sim_net *wzp_sim_internet(wzp_sim *sim)
{
    return &sim->internet;
}

static sim_node *node_new(wzp_sim *sim, node_kind kind, wzp_sim_net *net, const wzp_addr *ip,
                          wzp_sim_link link)
{
    if (sim->nnodes >= WZP_SIM_MAX_NODES)
        return NULL;
    sim_node *n = xcalloc(1, sizeof(*n));
    n->id = sim->nnodes;
    n->kind = kind;
    n->ip = *ip;
    wzp_addr_set_port(&n->ip, 0);
    n->net = net;
    n->link = link;
    sim->nodes[sim->nnodes++] = n;
    return n;
}

static sim_node *find_node(wzp_sim *sim, const wzp_sim_net *net, const wzp_addr *ip)
{
    for (int i = 0; i < sim->nnodes; i++)
        if (sim->nodes[i]->net == net && wzp_addr_ip_equal(&sim->nodes[i]->ip, ip))
            return sim->nodes[i];
    return NULL;
}

wzp_sim_router *wzp_sim_router_new(wzp_sim *sim, const char *name, wzp_sim_net *outside,
                                   const char *wan_ip, wzp_sim_link wan_link, const char *lan_ip,
                                   wzp_sim_link lan_link, const wzp_sim_nat_cfg *cfg)
{
    wzp_addr w, l;
    if (!outside || !cfg || wzp_addr_parse(&w, wan_ip, true) != 0 ||
        wzp_addr_parse(&l, lan_ip, true) != 0 || wzp_addr_family(&w) != AF_INET ||
        wzp_addr_family(&l) != AF_INET || find_node(sim, outside, &w))
        return NULL;
    if (sim->nnodes + 2 > WZP_SIM_MAX_NODES)
        return NULL;
    wzp_sim_router *r = xcalloc(1, sizeof(*r));
    r->sim = sim;
    snprintf(r->name, sizeof(r->name), "%s", name ? name : "router");
    r->cfg = *cfg;
    if (!r->cfg.port_lo && !r->cfg.port_hi) {
        r->cfg.port_lo = 20000;
        r->cfg.port_hi = 29999;
    }
    if (r->cfg.port_hi < r->cfg.port_lo || r->cfg.port_lo == 0) {
        free(r);
        return NULL;
    }
    if (!r->cfg.timeout)
        r->cfg.timeout = WZP_SEC(30);
    r->next_seq_port = r->cfg.port_lo;
    r->lan_net = xcalloc(1, sizeof(*r->lan_net));
    r->lan_net->sim = sim;
    r->lan_net->uplink = r;
    r->lan_net->next_net = sim->nets;
    sim->nets = r->lan_net;
    r->wan = node_new(sim, NODE_WAN, outside, &w, wan_link);
    r->lan = node_new(sim, NODE_LAN, r->lan_net, &l, lan_link);
    r->wan->router = r->lan->router = r;
    r->next_router = sim->routers;
    sim->routers = r;
    return r;
}

wzp_sim_net *wzp_sim_router_lan(wzp_sim_router *r)
{
    return r->lan_net;
}

const wzp_addr *wzp_sim_router_wan(const wzp_sim_router *r)
{
    return &r->wan->ip;
}

const wzp_sim_stats *wzp_sim_router_stats(const wzp_sim_router *r)
{
    return &r->stats;
}

void wzp_sim_router_set_drop_direct(wzp_sim_router *r, bool on)
{
    r->drop_direct = on;
}

wzp_sim_host *wzp_sim_host_new(wzp_sim *sim, const char *name)
{
    wzp_sim_host *h = xcalloc(1, sizeof(*h));
    h->sim = sim;
    snprintf(h->name, sizeof(h->name), "%s", name ? name : "host");
    h->next_host = sim->hosts;
    sim->hosts = h;
    return h;
}

static int host_add_ip(wzp_sim_host *h, wzp_sim_net *net, const wzp_addr *a, wzp_sim_link link)
{
    if (!net || find_node(h->sim, net, a))
        return WZP_ERR_INVALID;
    sim_node *n = node_new(h->sim, NODE_HOST, net, a, link);
    if (!n)
        return WZP_ERR_LIMIT;
    n->host = h;
    return 0;
}

int wzp_sim_host_add_addr(wzp_sim_host *h, wzp_sim_net *net, const char *ip, wzp_sim_link link)
{
    wzp_addr a;
    if (wzp_addr_parse(&a, ip, true) != 0)
        return WZP_ERR_INVALID;
    return host_add_ip(h, net, &a, link);
}

static sim_node *net_node(wzp_sim *sim, wzp_sim_net *net, const char *ip)
{
    wzp_addr a;
    if (!net || wzp_addr_parse(&a, ip, true) != 0)
        return NULL;
    return find_node(sim, net, &a);
}

int wzp_sim_link_get(wzp_sim *sim, wzp_sim_net *net, const char *ip, wzp_sim_link *out)
{
    sim_node *n = net_node(sim, net, ip);
    if (!n)
        return WZP_ERR_NOT_FOUND;
    *out = n->link;
    return 0;
}

int wzp_sim_link_set(wzp_sim *sim, wzp_sim_net *net, const char *ip, wzp_sim_link link)
{
    sim_node *n = net_node(sim, net, ip);
    if (!n)
        return WZP_ERR_NOT_FOUND;
    n->link = link;
    return 0;
}

void wzp_sim_host_set_infra(wzp_sim_host *h, bool on)
{
    h->infra = on;
}

void wzp_sim_host_set_drop_direct(wzp_sim_host *h, bool on)
{
    h->drop_direct = on;
}

const char *wzp_sim_host_name(const wzp_sim_host *h)
{
    return h->name;
}

static sim_node *host_node(wzp_sim_host *h, const wzp_addr *ip)
{
    wzp_sim *sim = h->sim;
    for (int i = 0; i < sim->nnodes; i++)
        if (sim->nodes[i]->host == h && wzp_addr_ip_equal(&sim->nodes[i]->ip, ip))
            return sim->nodes[i];
    return NULL;
}

wzp_sim_sock *wzp_sim_sock_bind_addr(wzp_sim_host *h, const wzp_addr *addr, wzp_sim_recv_fn fn,
                                     void *ctx)
{
    if (!addr || wzp_addr_port(addr) == 0 || !host_node(h, addr))
        return NULL;
    for (wzp_sim_sock *s = h->socks; s; s = s->next)
        if (wzp_addr_equal(&s->addr, addr))
            return NULL; /* EADDRINUSE */
    wzp_sim_sock *s = xcalloc(1, sizeof(*s));
    s->host = h;
    s->addr = *addr;
    s->fn = fn;
    s->ctx = ctx;
    s->next = h->socks;
    h->socks = s;
    return s;
}

wzp_sim_sock *wzp_sim_sock_bind(wzp_sim_host *h, const char *addr, wzp_sim_recv_fn fn, void *ctx)
{
    wzp_addr a;
    if (wzp_addr_parse(&a, addr, false) != 0)
        return NULL;
    return wzp_sim_sock_bind_addr(h, &a, fn, ctx);
}

void wzp_sim_sock_close(wzp_sim_sock *s)
{
    if (!s)
        return;
    for (wzp_sim_sock **pp = &s->host->socks; *pp; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            free(s);
            return;
        }
}

const wzp_addr *wzp_sim_sock_addr(const wzp_sim_sock *s)
{
    return &s->addr;
}

wzp_sim_host *wzp_sim_sock_host(const wzp_sim_sock *s)
{
    return s->host;
}

/* ---- Timers ----------------------------------------------------------------------------- */

uint64_t wzp_sim_at(wzp_sim *sim, wzp_ts t, wzp_sim_timer_fn fn, void *ctx)
{
    sim_event ev = {0};
    ev.t = t < sim->now ? sim->now : t;
    ev.seq = ++sim->seq;
    ev.fn = fn;
    ev.ctx = ctx;
    heap_push(sim, ev);
    return ev.seq;
}

void wzp_sim_cancel(wzp_sim *sim, uint64_t id)
{
    for (size_t i = 0; i < sim->nheap; i++)
        if (sim->heap[i].seq == id && !sim->heap[i].node) {
            sim->heap[i].cancelled = true;
            return;
        }
}

/* ---- Packet movement -------------------------------------------------------------------- */

static bool is_infra_ip(wzp_sim *sim, const wzp_addr *ip)
{
    for (int i = 0; i < sim->nnodes; i++) {
        const sim_node *n = sim->nodes[i];
        if (n->kind == NODE_HOST && n->host->infra && n->net == &sim->internet &&
            wzp_addr_ip_equal(&n->ip, ip))
            return true;
    }
    return false;
}

static bool is_direct(wzp_sim *sim, const sim_packet *p)
{
    return !is_infra_ip(sim, &p->src) && !is_infra_ip(sim, &p->dst);
}

static void drop(wzp_sim *sim, uint64_t *counter, uint64_t *router_counter, const char *why,
                 const sim_node *at, sim_packet *p)
{
    (*counter)++;
    if (router_counter)
        (*router_counter)++;
    trace(sim, why, at, p);
    free_packet(sim, p);
}

static bool link_lost(wzp_sim *sim, const wzp_sim_link *l)
{
    return l->loss_ppm && pcg_next(&sim->rng) % 1000000u < l->loss_ppm;
}

static wzp_ts link_delay(wzp_sim *sim, const wzp_sim_link *l)
{
    return l->latency + (l->jitter ? wzp_sim_rand_below(sim, l->jitter + 1) : 0);
}

/* Moves p across `from`'s network to the next node, arriving later as an event. */
static void hop(wzp_sim *sim, sim_node *from, sim_packet *p)
{
    wzp_sim_net *net = from->net;
    sim_node *to = find_node(sim, net, &p->dst);
    if (!to) {
        /* Not on this network: up through the LAN's router, unless we are that router. */
        if (net->uplink && from != net->uplink->lan)
            to = net->uplink->lan;
        else {
            drop(sim, &sim->stats.dropped_no_route, NULL, "drop-noroute", from, p);
            return;
        }
    }
    /* Draw both links' randomness unconditionally so one loss does not shift later draws. */
    bool lost = link_lost(sim, &from->link);
    lost |= link_lost(sim, &to->link);
    wzp_ts d = link_delay(sim, &from->link) + link_delay(sim, &to->link);
    if (from->link.down || to->link.down) {
        drop(sim, &sim->stats.dropped_down, NULL, "drop-down", from, p);
        return;
    }
    if (lost) {
        drop(sim, &sim->stats.dropped_loss, NULL, "drop-loss", from, p);
        return;
    }
    wzp_ts t = sim->now + d;
    wzp_ts *last = &sim->last_arrival[from->id][to->id];
    if (!(from->link.reorder || to->link.reorder) && t < *last)
        t = *last; /* jitter without reordering: never overtake the previous packet */
    if (t > *last)
        *last = t;
    sim_event ev = {0};
    ev.t = t;
    ev.seq = ++sim->seq;
    ev.node = to;
    ev.pkt = p;
    heap_push(sim, ev);
}

int wzp_sim_send(wzp_sim_sock *s, const wzp_addr *to, const void *data, size_t len)
{
    wzp_sim *sim = s->host->sim;
    if (!to || (len && !data) || wzp_addr_family(to) != wzp_addr_family(&s->addr))
        return WZP_ERR_INVALID;
    if (len > WZP_SIM_MAX_PACKET)
        return WZP_ERR_TOO_BIG;
    sim->stats.sent++;
    sim_packet *p = malloc(sizeof(*p) + (len ? len : 1));
    if (!p)
        return WZP_ERR_NOMEM;
    p->src = s->addr;
    p->dst = *to;
    p->len = len;
    if (len)
        memcpy(p->data, data, len);
    sim->inflight_bytes += len;
    sim_node *from = host_node(s->host, &s->addr);
    trace(sim, "send", from, p);
    if (sim->inflight_bytes > WZP_SIM_MAX_INFLIGHT) {
        drop(sim, &sim->stats.dropped_overflow, NULL, "drop-overflow", from, p);
        return 0;
    }
    if ((s->host->drop_direct && is_direct(sim, p)) ||
        (sim->filter_fn && sim->filter_fn(sim->filter_ctx, &p->src, &p->dst, p->data, p->len))) {
        drop(sim, &sim->stats.dropped_blocked, NULL, "drop-blocked", from, p);
        return 0;
    }
    hop(sim, from, p);
    return 0;
}

/* ---- NAT -------------------------------------------------------------------------------- */

static bool dep_match(wzp_sim_dep dep, const wzp_addr *a, const wzp_addr *b);

static void mapping_free(sim_mapping *m)
{
    free(m->flows);
    m->flows = NULL;
}

/* Forgets expired mappings, flows and trap entries. */
static void nat_purge(wzp_sim_router *r)
{
    wzp_ts now = r->sim->now;
    for (size_t i = 0; i < r->nmaps;) {
        sim_mapping *m = &r->maps[i];
        if (m->expiry <= now) {
            mapping_free(m);
            r->maps[i] = r->maps[--r->nmaps];
            r->stats.mappings_expired++;
            r->sim->stats.mappings_expired++;
            continue;
        }
        for (size_t j = 0; j < m->nflows;) {
            if (m->flows[j].expiry <= now)
                m->flows[j] = m->flows[--m->nflows];
            else
                j++;
        }
        i++;
    }
    for (size_t i = 0; i < r->ntraps;) {
        if (r->traps[i].expiry <= now)
            r->traps[i] = r->traps[--r->ntraps];
        else
            i++;
    }
}

size_t wzp_sim_router_mappings(wzp_sim_router *r)
{
    nat_purge(r);
    return r->nmaps;
}

void wzp_sim_router_flush(wzp_sim_router *r)
{
    for (size_t i = 0; i < r->nmaps; i++)
        mapping_free(&r->maps[i]);
    r->nmaps = 0;
    r->ntraps = 0;
}

bool wzp_sim_router_mapped(wzp_sim_router *r, const wzp_addr *internal, const wzp_addr *remote,
                           wzp_addr *ext)
{
    nat_purge(r);
    const sim_mapping *found = NULL;
    for (size_t i = 0; i < r->nmaps && !found; i++) {
        const sim_mapping *m = &r->maps[i];
        if (!wzp_addr_equal(&m->internal, internal))
            continue;
        if (m->pinned ? wzp_addr_equal(&m->key_remote, remote)
                      : dep_match(r->cfg.mapping, &m->key_remote, remote))
            found = m;
    }
    if (!found)
        return false;
    *ext = r->wan->ip;
    wzp_addr_set_port(ext, found->ext_port);
    return true;
}

static bool port_in_use(const wzp_sim_router *r, uint16_t port)
{
    for (size_t i = 0; i < r->nmaps; i++)
        if (r->maps[i].ext_port == port)
            return true;
    return false;
}

static bool trapped(const wzp_sim_router *r, uint16_t port, const wzp_addr *remote)
{
    for (size_t i = 0; i < r->ntraps; i++)
        if (r->traps[i].ext_port == port && wzp_addr_equal(&r->traps[i].remote, remote))
            return true;
    return false;
}

/* A free external port for a new mapping (0 if none), avoiding state trapped for `remote`. */
static uint16_t nat_alloc_port(wzp_sim_router *r, uint16_t internal_port, const wzp_addr *remote)
{
    if (r->cfg.port_preservation && !port_in_use(r, internal_port) &&
        !trapped(r, internal_port, remote))
        return internal_port;
    uint32_t span = (uint32_t)r->cfg.port_hi - r->cfg.port_lo + 1;
    if (!r->cfg.sequential_ports) {
        for (int tries = 0; tries < 32; tries++) {
            uint16_t p = (uint16_t)(r->cfg.port_lo + wzp_sim_rand_below(r->sim, span));
            if (!port_in_use(r, p) && !trapped(r, p, remote))
                return p;
        }
    }
    for (uint32_t i = 0; i < span; i++) {
        uint16_t p = r->next_seq_port;
        r->next_seq_port = p >= r->cfg.port_hi ? r->cfg.port_lo : (uint16_t)(p + 1);
        if (!port_in_use(r, p) && !trapped(r, p, remote))
            return p;
    }
    return 0;
}

static bool dep_match(wzp_sim_dep dep, const wzp_addr *a, const wzp_addr *b)
{
    switch (dep) {
    case WZP_SIM_EI:
        return true;
    case WZP_SIM_AD:
        return wzp_addr_ip_equal(a, b);
    case WZP_SIM_APD:
        return wzp_addr_equal(a, b);
    }
    return false;
}

static sim_flow *mapping_flow(sim_mapping *m, const wzp_addr *remote)
{
    for (size_t i = 0; i < m->nflows; i++)
        if (wzp_addr_equal(&m->flows[i].remote, remote))
            return &m->flows[i];
    return NULL;
}

static void mapping_touch(wzp_sim_router *r, sim_mapping *m, const wzp_addr *remote)
{
    sim_flow *f = mapping_flow(m, remote);
    if (!f) {
        grow((void **)&m->flows, &m->capflows, m->nflows + 1, sizeof(sim_flow));
        f = &m->flows[m->nflows++];
        f->remote = *remote;
    }
    f->expiry = r->sim->now + r->cfg.timeout;
    if (f->expiry > m->expiry)
        m->expiry = f->expiry;
}

/* The mapping an outbound packet internal → remote uses, created if needed; NULL if no ports. */
static sim_mapping *nat_outbound_mapping(wzp_sim_router *r, const wzp_addr *internal,
                                         const wzp_addr *remote)
{
    sim_mapping *found = NULL;
    for (size_t i = 0; i < r->nmaps; i++) {
        sim_mapping *m = &r->maps[i];
        if (!wzp_addr_equal(&m->internal, internal))
            continue;
        if (m->pinned) {
            if (wzp_addr_equal(&m->key_remote, remote))
                return m;
            continue;
        }
        if (!found && dep_match(r->cfg.mapping, &m->key_remote, remote))
            found = m;
    }
    bool pin = false;
    if (found && !mapping_flow(found, remote) && trapped(r, found->ext_port, remote)) {
        /* The tuple (ext port, remote) is taken by unreplied state: conntrack remaps. */
        found = NULL;
        pin = true;
        r->stats.trap_remaps++;
        r->sim->stats.trap_remaps++;
    }
    if (found)
        return found;
    uint16_t port = nat_alloc_port(r, wzp_addr_port(internal), remote);
    if (!port)
        return NULL;
    grow((void **)&r->maps, &r->capmaps, r->nmaps + 1, sizeof(sim_mapping));
    sim_mapping *m = &r->maps[r->nmaps++];
    memset(m, 0, sizeof(*m));
    m->internal = *internal;
    m->key_remote = *remote;
    m->ext_port = port;
    m->pinned = pin;
    r->stats.mappings_created++;
    r->sim->stats.mappings_created++;
    return m;
}

static void nat_leave_trap(wzp_sim_router *r, uint16_t port, const wzp_addr *remote)
{
    if (!r->cfg.wan_input_open || trapped(r, port, remote))
        return;
    grow((void **)&r->traps, &r->captraps, r->ntraps + 1, sizeof(sim_trap));
    sim_trap *t = &r->traps[r->ntraps++];
    t->ext_port = port;
    t->remote = *remote;
    t->expiry = r->sim->now + r->cfg.timeout;
}

/* Inbound on the WAN side (or hairpinned): filter, translate, forward into the LAN. */
static void nat_inbound(wzp_sim_router *r, sim_packet *p)
{
    wzp_sim *sim = r->sim;
    uint16_t port = wzp_addr_port(&p->dst);
    sim_mapping *m = NULL;
    for (size_t i = 0; i < r->nmaps; i++)
        if (r->maps[i].ext_port == port) {
            m = &r->maps[i];
            break;
        }
    if (!m) {
        nat_leave_trap(r, port, &p->src);
        drop(sim, &sim->stats.dropped_no_mapping, &r->stats.dropped_no_mapping, "drop-nomap",
             r->wan, p);
        return;
    }
    bool ok;
    if (m->pinned)
        ok = wzp_addr_equal(&m->key_remote, &p->src);
    else if (r->cfg.filtering == WZP_SIM_EI)
        ok = true;
    else {
        ok = false;
        for (size_t i = 0; i < m->nflows && !ok; i++)
            ok = dep_match(r->cfg.filtering, &m->flows[i].remote, &p->src);
    }
    if (!ok) {
        nat_leave_trap(r, port, &p->src);
        drop(sim, &sim->stats.dropped_filter, &r->stats.dropped_filter, "drop-filter", r->wan, p);
        return;
    }
    if (r->cfg.inbound_refresh)
        mapping_touch(r, m, &p->src);
    p->dst = m->internal;
    trace(sim, "nat-in", r->wan, p);
    hop(sim, r->lan, p);
}

/* A packet from the LAN reached the router: hairpin it or translate it out. */
static void nat_from_lan(wzp_sim_router *r, sim_packet *p)
{
    wzp_sim *sim = r->sim;
    if (wzp_addr_family(&p->dst) != AF_INET) {
        drop(sim, &sim->stats.dropped_no_route, NULL, "drop-noroute", r->lan, p);
        return;
    }
    bool hairpin = wzp_addr_ip_equal(&p->dst, &r->wan->ip);
    if (hairpin && !r->cfg.hairpin) {
        drop(sim, &sim->stats.dropped_hairpin, &r->stats.dropped_hairpin, "drop-hairpin", r->lan,
             p);
        return;
    }
    sim_mapping *m = nat_outbound_mapping(r, &p->src, &p->dst);
    if (!m) {
        drop(sim, &sim->stats.dropped_ports, &r->stats.dropped_ports, "drop-noports", r->lan, p);
        return;
    }
    mapping_touch(r, m, &p->dst);
    p->src = r->wan->ip;
    wzp_addr_set_port(&p->src, m->ext_port);
    trace(sim, hairpin ? "nat-hairpin" : "nat-out", r->lan, p);
    if (hairpin)
        nat_inbound(r, p);
    else
        hop(sim, r->wan, p);
}

static void arrive(wzp_sim *sim, sim_node *at, sim_packet *p)
{
    if (at->kind == NODE_HOST) {
        wzp_sim_host *h = at->host;
        if (h->drop_direct && is_direct(sim, p)) {
            drop(sim, &sim->stats.dropped_blocked, NULL, "drop-blocked", at, p);
            return;
        }
        for (wzp_sim_sock *s = h->socks; s; s = s->next) {
            if (wzp_addr_equal(&s->addr, &p->dst)) {
                sim->stats.delivered++;
                trace(sim, "deliver", at, p);
                wzp_addr from = p->src;
                /* Free before the callback so it may send (and overflow accounting is right). */
                uint8_t stackbuf[2048];
                uint8_t *copy = p->len <= sizeof(stackbuf) ? stackbuf : malloc(p->len);
                size_t len = p->len;
                if (!copy) {
                    drop(sim, &sim->stats.dropped_overflow, NULL, "drop-nomem", at, p);
                    return;
                }
                memcpy(copy, p->data, len);
                free_packet(sim, p);
                s->fn(s->ctx, s, &from, copy, len);
                if (copy != stackbuf)
                    free(copy);
                return;
            }
        }
        drop(sim, &sim->stats.dropped_no_socket, NULL, "drop-nosock", at, p);
        return;
    }
    wzp_sim_router *r = at->router;
    if (r->drop_direct && is_direct(sim, p)) {
        drop(sim, &sim->stats.dropped_blocked, &r->stats.dropped_blocked, "drop-blocked", at, p);
        return;
    }
    nat_purge(r);
    if (at->kind == NODE_WAN)
        nat_inbound(r, p);
    else if (wzp_addr_ip_equal(&p->dst, &r->lan->ip))
        drop(sim, &sim->stats.dropped_no_socket, NULL, "drop-nosock", at, p);
    else
        nat_from_lan(r, p);
}

/* ---- Relay ------------------------------------------------------------------------------ */

/* On the wire to the relay: [side] + payload. From the relay: the payload alone. */
static void sim_relay_recv(void *ctx, wzp_sim_sock *sock, const wzp_addr *from, const uint8_t *data,
                           size_t len)
{
    wzp_sim_relay *r = ctx;
    if (len < 1 || data[0] > 1)
        return;
    int side = data[0];
    r->seen[side] = *from;
    r->has_seen[side] = true;
    if (len == 1)
        return;
    if (!r->has_seen[1 - side]) {
        r->sim->stats.dropped_relay++;
        return;
    }
    wzp_sim_send(sock, &r->seen[1 - side], data + 1, len - 1);
}

wzp_sim_relay *wzp_sim_relay_new(wzp_sim *sim, const char *addr, wzp_sim_link link)
{
    wzp_addr a;
    if (wzp_addr_parse(&a, addr, false) != 0)
        return NULL;
    wzp_sim_host *h = wzp_sim_host_new(sim, "relay");
    wzp_sim_host_set_infra(h, true);
    wzp_sim_relay *r = xcalloc(1, sizeof(*r));
    r->sim = sim;
    if (host_add_ip(h, wzp_sim_internet(sim), &a, link) != 0 ||
        !(r->sock = wzp_sim_sock_bind_addr(h, &a, sim_relay_recv, r))) {
        free(r);
        return NULL;
    }
    r->next_relay = sim->relays;
    sim->relays = r;
    return r;
}

int wzp_sim_relay_send(wzp_sim_relay *r, wzp_sim_sock *from, int side, const void *data, size_t len)
{
    if ((side != 0 && side != 1) || (len && !data))
        return WZP_ERR_INVALID;
    if (len >= WZP_SIM_MAX_PACKET)
        return WZP_ERR_TOO_BIG;
    uint8_t *buf = malloc(1 + len);
    if (!buf)
        return WZP_ERR_NOMEM;
    buf[0] = (uint8_t)side;
    if (len)
        memcpy(buf + 1, data, len);
    int rc = wzp_sim_send(from, &r->sock->addr, buf, 1 + len);
    free(buf);
    return rc;
}

const wzp_addr *wzp_sim_relay_addr(const wzp_sim_relay *r)
{
    return &r->sock->addr;
}

const wzp_addr *wzp_sim_relay_seen(const wzp_sim_relay *r, int side)
{
    return (side == 0 || side == 1) && r->has_seen[side] ? &r->seen[side] : NULL;
}

void wzp_sim_set_filter(wzp_sim *sim, wzp_sim_filter_fn fn, void *ctx)
{
    sim->filter_fn = fn;
    sim->filter_ctx = ctx;
}

/* ---- Running ---------------------------------------------------------------------------- */

bool wzp_sim_step(wzp_sim *sim)
{
    while (sim->nheap) {
        sim_event ev = heap_pop(sim);
        if (ev.cancelled)
            continue;
        if (ev.t > sim->now)
            sim->now = ev.t;
        if (ev.node)
            arrive(sim, ev.node, ev.pkt);
        else {
            trace(sim, "timer", NULL, NULL);
            ev.fn(ev.ctx);
        }
        return true;
    }
    return false;
}

wzp_ts wzp_sim_next_event(const wzp_sim *sim)
{
    /* Cancelled timers may sit at the top; report them anyway (running them is a no-op). */
    return sim->nheap ? sim->heap[0].t : WZP_TS_NEVER;
}

void wzp_sim_run_until(wzp_sim *sim, wzp_ts t)
{
    while (sim->nheap && sim->heap[0].t <= t)
        wzp_sim_step(sim);
    if (t > sim->now)
        sim->now = t;
}

const wzp_sim_stats *wzp_sim_stats_get(const wzp_sim *sim)
{
    return &sim->stats;
}

uint64_t wzp_sim_trace_hash(const wzp_sim *sim)
{
    return sim->trace_hash;
}

void wzp_sim_set_trace(wzp_sim *sim, wzp_sim_trace_fn fn, void *ctx)
{
    sim->trace_fn = fn;
    sim->trace_ctx = ctx;
}
