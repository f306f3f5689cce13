/*
 * The path manager of one call: connectivity checks and route selection.
 * See agent.h for the model and the API.
 *
 * Tuning (defaults in wzp_ice_config_default), and why:
 *
 * - pace 5 ms: one request every 5 ms over all pairs, so N pairs are all tried
 *   within 5N ms (a typical 4-10 pairs: 20-50 ms) without a burst that a NAT
 *   or a Wi-Fi queue would punish. Responses are not paced: they are one per
 *   request received and delaying them only inflates RTT samples.
 * - rto 100 ms doubling to 5 s: the first probes on a pair are often dropped
 *   by the peer's NAT because the peer has not sent yet; the triggered check
 *   (sent as soon as the peer's probe arrives) is what usually succeeds, so
 *   retransmits only need to cover loss. Never give up (the issue asks for
 *   upgrades at any time): the cap keeps a dead pair at 0.2 probes/s.
 * - but capped at 500 ms for a pair's first 10 s: if the peer behind the
 *   endpoint-independent NAT starts (gets key or candidates) a few seconds
 *   after the one behind the endpoint-dependent NAT, only the latter's probes
 *   can open the way, and they must not be 3-5 s apart by then. Costs 2
 *   probes/s per unproven pair for 10 s.
 * - keepalive_active 50 ms, dead_after 120 ms: the media-gap budget is 300 ms
 *   at 50 packets/s. Both peers probe the active pair every 50 ms and media
 *   arrives every 20 ms, so a healthy pair never goes more than ~50 ms without
 *   receiving something; 120 ms of silence is two missed probes from the
 *   peer and six missed media packets. Packets sent between the path's
 *   death and the fallback are lost: at most 120 ms plus the time since the
 *   last packet (< 20 ms with media, < 50 ms without) - about 170 ms, leaving
 *   ~130 ms of the budget for the relay leg's one-way latency. (150 ms left
 *   too little: the NAT-matrix bench measured 306 ms gaps on slow topologies.)
 * - dead_after_noresp 1 s: liveness above counts anything from the peer
 *   (its probes, our answers, QUIC via note_rx), which proves only the
 *   inbound direction. If only our outbound direction dies, the peer falls
 *   back within 120 ms and then sends on the pair only sparse re-probes, so we
 *   notice ~150 ms later anyway (~300 ms in all). This timer is the consent
 *   backstop (the peer's QUIC still arrives but it no longer answers probes).
 *   It is long because it is the loss-sensitive one: at 20 % loss each way a
 *   probe round trip fails 36 % of the time, so 300 ms (6 probes) would fire
 *   spuriously every half minute; 1 s (20 probes) essentially never.
 * - reprobe 250 ms doubling to 5 s after a fallback: the path often comes back
 *   quickly (Wi-Fi roam, short outage); the peer's own re-probes trigger an
 *   immediate check on our side too, so recovery is usually one RTT after the
 *   first of the two re-probes gets through.
 * - keepalive_backup 5 s, 3 misses at 500 ms: valid inactive pairs stay open
 *   (NAT UDP timeouts are >= 30 s) and keep fresh RTT samples for selection;
 *   with the pair cap of 64 this is at most ~13 probes/s, typically < 2.
 * - switch_hold 1 s, 20 % and 5 ms: jitter moves smoothed RTTs by a few ms;
 *   a switch costs nothing on the wire but flapping makes RTT and loss
 *   estimates above us noisy, so only switch for a clear, sustained win.
 *   During the hold the challenger is probed every 200 ms so the decision
 *   rests on fresh samples. A better class (LAN host over srflx, say) at no
 *   higher cost also wins after the hold: sub-millisecond RTTs on a LAN are
 *   inside the 5 ms margin, yet a hairpin through the NAT is worse.
 */
#include "ice/agent.h"

#include <gnutls/gnutls.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <wzp/wzp.h>

#include "common/log.h"
#include "common/rand.h"

#define INFLIGHT 4 /* outstanding requests remembered per pair (fresh txid each) */
#define TXQ_LEN  16
/*
 * A pair about to replace the active one is probed this often during the
 * switch hold, so the "better for a sustained interval" decision rests on
 * fresh RTT samples rather than on its last 5 s keepalive.
 */
#define CHALLENGER_PROBE WZP_MS(200)
#define SEEN_LEN         64 /* request txids remembered for replay detection */
/*
 * Birthday probes remembered for matching answers: 1.3 s at 200/s, longer
 * than any answer takes; older answers are ignored (the port is probed again
 * in the next sweep or the peer's own probe gets through).
 */
#define BDAY_TX_LEN 256
/* Birthday probing starts this long after the checks: they go first (all pairs within
 * 5 ms each), so port prediction sees the same number of new mappings on both sides. */
#define BDAY_DELAY WZP_MS(100)

/* Cost multipliers, in percent of the smoothed RTT (lower is better). */
#define COST_LAN_PCT     10 /* LAN host pair: small preference */
#define COST_V6_PCT      5  /* IPv6: smaller preference */
#define COST_NOT_MUTUAL  25 /* the peer has not confirmed the pair yet */
#define COST_PEER_ACTIVE 10 /* follow the peer's choice (only the larger agent id does) */
#define COST_DEFAULT_RTT WZP_MS(100)

typedef struct inflight {
    uint8_t txid[WZP_PROBE_TXID_LEN];
    wzp_ts sent;
    bool used;
} inflight;

typedef struct pair {
    int sock;
    wzp_addr remote;
    wzp_cand_type rtype;
    uint32_t prio;
    wzp_pair_state state;
    bool had_rx;     /* anything authentic ever came from it (never evicted then) */
    bool signaled;   /* the peer told us this address (else only learned from its probes) */
    bool peer_valid; /* latest request from the peer had F_VALID */
    bool triggered;  /* a triggered check is queued */
    wzp_ts peer_active_at;
    wzp_ts created;  /* pair creation (or checks start, if later) */
    wzp_ts next_tx;  /* next request due */
    wzp_ts interval; /* current backoff while not valid */
    unsigned unanswered;
    wzp_ts last_req_sent;
    wzp_ts last_resp_rx; /* an answer to one of our requests */
    wzp_ts last_rx;      /* anything authentic (answer, request, note_rx) */
    wzp_ts active_since;
    wzp_ts srtt;
    inflight fl[INFLIGHT];
    unsigned fl_next;
} pair;

typedef struct bday_tx {
    uint8_t txid[WZP_PROBE_TXID_LEN];
    wzp_ts sent;
    int sock;
    wzp_addr dest;
} bday_tx;

typedef struct txq_entry {
    int sock;
    wzp_addr dest;
    size_t len;
    uint8_t buf[WZP_PROBE_MAX_LEN];
} txq_entry;

struct wzp_ice_agent {
    wzp_ice_config cfg;
    bool have_key;
    uint8_t key[WZP_PROBE_KEY_LEN];
    uint8_t tag[WZP_PROBE_TAG_LEN];
    bool have_peer_id;
    uint8_t peer_id[WZP_PROBE_SENDER_LEN];
    /* a family gets pairs once it had a local candidate; an extra socket once a probe came */
    bool has_sock[WZP_ICE_SOCK_COUNT + WZP_ICE_AUX_MAX];

    wzp_candidate *local;
    size_t nlocal;
    pair *pairs;
    size_t npairs;

    int active; /* index into pairs, -1 = RELAY */
    int challenger;
    wzp_ts challenger_since;
    wzp_ts fail_epoch; /* after a path death, pairs must have answered after this to be chosen */
    bool failed_once;
    wzp_ts next_pace;
    bool ever_direct;
    wzp_ts now;          /* latest time seen by any entry point */
    uint32_t remote_gen; /* generation of the latest complete remote set applied */

    /*
     * Anti-replay. A request's txid starts with the sender's request counter
     * (then 8 random bytes); it is authenticated, so we keep the highest
     * counter seen from the peer and a 64-wide window below it, as IPsec does.
     * Retransmits always use a new txid, so a repeat is a replay (or a network
     * duplicate): dropping it keeps a captured probe replayed from a spoofed
     * source from teaching us a bogus peer-reflexive address or making us
     * answer a third party.
     */
    uint32_t tx_seq;
    uint32_t rx_seq_max;
    uint64_t rx_seq_window; /* bit i: rx_seq_max - i was seen */

    txq_entry txq[TXQ_LEN];
    unsigned txq_head, txq_count;

    /* Birthday probing (ice/birthday.h): both NATs as signalled, the planner, its probes. */
    bool have_nat;
    wzp_sig_nat nat_local, nat_peer;
    bool bday_started;
    wzp_bday bday;
    bday_tx *bday_tx; /* BDAY_TX_LEN, allocated when probing starts */
    unsigned bday_tx_next;

    wzp_ice_stats st;
};

const char *wzp_route_reason_name(wzp_route_reason r)
{
    switch (r) {
    case WZP_ROUTE_FIRST_DIRECT:
        return "first-direct";
    case WZP_ROUTE_BETTER_PAIR:
        return "better-pair";
    case WZP_ROUTE_PATH_DEAD:
        return "path-dead";
    case WZP_ROUTE_RECOVERED:
        return "recovered";
    case WZP_ROUTE_PAIR_REMOVED:
        return "pair-removed";
    }
    return "?";
}

void wzp_ice_config_default(wzp_ice_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->pace = WZP_MS(5);
    cfg->rto_initial = WZP_MS(100);
    cfg->rto_max = WZP_SEC(5);
    cfg->startup_window = WZP_SEC(10);
    cfg->rto_startup_max = WZP_MS(500);
    cfg->keepalive_active = WZP_MS(50);
    cfg->dead_after = WZP_MS(120);
    cfg->dead_after_noresp = WZP_SEC(1);
    cfg->reprobe_initial = WZP_MS(250);
    cfg->keepalive_backup = WZP_SEC(5);
    cfg->backup_retry = WZP_MS(500);
    cfg->backup_misses = 3;
    cfg->switch_hold = WZP_SEC(1);
    cfg->switch_pct = 20;
    cfg->switch_abs = WZP_MS(5);
    cfg->max_pairs = 64;
    cfg->max_local = 16;
}

static void fill_defaults(wzp_ice_config *c)
{
    wzp_ice_config d;
    wzp_ice_config_default(&d);
#define DEF(f)                                                                                     \
    if (!c->f)                                                                                     \
    c->f = d.f
    DEF(pace);
    DEF(rto_initial);
    DEF(rto_max);
    DEF(startup_window);
    DEF(rto_startup_max);
    DEF(keepalive_active);
    DEF(dead_after);
    DEF(dead_after_noresp);
    DEF(reprobe_initial);
    DEF(keepalive_backup);
    DEF(backup_retry);
    DEF(backup_misses);
    DEF(switch_hold);
    DEF(switch_pct);
    DEF(switch_abs);
    DEF(max_pairs);
    DEF(max_local);
#undef DEF
    if (c->max_pairs > 1024)
        c->max_pairs = 1024;
    if (c->max_local > 256)
        c->max_local = 256;
    if (c->aux_socks > WZP_ICE_AUX_MAX)
        c->aux_socks = WZP_ICE_AUX_MAX;
    c->bday.aux_socks = c->aux_socks;
}

int wzp_ice_new(wzp_ice_agent **out, const wzp_ice_config *cfg)
{
    if (!out)
        return WZP_ERR_INVALID;
    wzp_ice_agent *a = calloc(1, sizeof(*a));
    if (!a)
        return WZP_ERR_NOMEM;
    if (cfg)
        a->cfg = *cfg;
    fill_defaults(&a->cfg);
    static const uint8_t zero[WZP_PROBE_SENDER_LEN];
    if (memcmp(a->cfg.agent_id, zero, sizeof(zero)) == 0)
        wzp_random(a->cfg.agent_id, sizeof(a->cfg.agent_id));
    a->local = calloc(a->cfg.max_local, sizeof(*a->local));
    a->pairs = calloc(a->cfg.max_pairs, sizeof(*a->pairs));
    if (!a->local || !a->pairs) {
        wzp_ice_free(a);
        return WZP_ERR_NOMEM;
    }
    a->active = -1;
    a->challenger = -1;
    a->st.first_valid_at = WZP_TS_NEVER;
    a->st.first_direct_at = WZP_TS_NEVER;
    a->st.bday_success_at = WZP_TS_NEVER;
    *out = a;
    return 0;
}

void wzp_ice_free(wzp_ice_agent *a)
{
    if (!a)
        return;
    free(a->local);
    free(a->pairs);
    free(a->bday_tx);
    /* The key is a secret: do not leave it in freed memory. */
    gnutls_memset(a->key, 0, sizeof(a->key));
    free(a);
}

/* ---- route ------------------------------------------------------------------------------ */

static bool pair_eligible(const wzp_ice_agent *a, const pair *p)
{
    return a->has_sock[p->sock];
}

/* Valid, and answered since the last path death (stale validity is not proof). */
static bool pair_selectable(const wzp_ice_agent *a, const pair *p)
{
    return pair_eligible(a, p) && p->state == WZP_PAIR_VALID &&
           (!a->failed_once || p->last_resp_rx > a->fail_epoch);
}

static bool peer_is_active_on(const wzp_ice_agent *a, const pair *p)
{
    /* The peer flags its active pair every keepalive; a few missed flags still count. */
    return p->peer_active_at && p->peer_active_at + 4 * a->cfg.keepalive_active >= a->now;
}

/* Lower is better: smoothed RTT scaled by small preferences. */
static wzp_ts pair_cost(const wzp_ice_agent *a, const pair *p)
{
    wzp_ts rtt = p->srtt ? p->srtt : COST_DEFAULT_RTT;
    unsigned pct = 100;
    if (p->rtype == WZP_CAND_HOST && wzp_addr_is_private(&p->remote))
        pct -= COST_LAN_PCT;
    if (p->sock == WZP_ICE_SOCK_V6)
        pct -= COST_V6_PCT;
    if (!p->peer_valid)
        pct += COST_NOT_MUTUAL;
    return rtt / 100 * pct;
}

/* Preference class when RTTs are close: LAN host, other host, srflx, prflx. */
static int pair_class(const pair *p)
{
    if (p->rtype == WZP_CAND_HOST)
        return wzp_addr_is_private(&p->remote) ? 0 : 1;
    return p->rtype == WZP_CAND_SRFLX ? 2 : 3;
}

/* Strict total order: cost, then class, then priority, then index. */
static bool pair_better(const wzp_ice_agent *a, int i, int j)
{
    if (j < 0)
        return true;
    const pair *p = &a->pairs[i], *q = &a->pairs[j];
    wzp_ts cp = pair_cost(a, p), cq = pair_cost(a, q);
    if (cp != cq)
        return cp < cq;
    if (pair_class(p) != pair_class(q))
        return pair_class(p) < pair_class(q);
    if (p->prio != q->prio)
        return p->prio > q->prio;
    return i < j;
}

static wzp_ice_route route_of(const wzp_ice_agent *a, int idx)
{
    wzp_ice_route r;
    memset(&r, 0, sizeof(r));
    r.kind = WZP_ROUTE_RELAY;
    r.sock = -1;
    if (idx >= 0) {
        const pair *p = &a->pairs[idx];
        r.kind = WZP_ROUTE_DIRECT;
        r.sock = p->sock;
        r.remote = p->remote;
        r.rtt = p->srtt;
    }
    return r;
}

static void route_emit(wzp_ice_agent *a, wzp_route_reason reason)
{
    wzp_ice_route r = route_of(a, a->active);
    char buf[WZP_ADDR_STRLEN];
    WZP_INFO("ice: route %s (%s)",
             a->active >= 0 ? wzp_addr_format(&r.remote, buf, sizeof(buf)) : "relay",
             wzp_route_reason_name(reason));
    if (a->cfg.cb.route_changed)
        a->cfg.cb.route_changed(a->cfg.user, &r, reason);
}

/*
 * The active path is gone: only pairs that answered after `epoch` count as
 * alive, and the other valid pairs may have died with it, so they are
 * re-proved at once before one is chosen.
 */
static void begin_failover(wzp_ice_agent *a, wzp_ts epoch, wzp_ts now)
{
    a->fail_epoch = epoch;
    a->failed_once = true;
    for (size_t i = 0; i < a->npairs; i++)
        if (a->pairs[i].state == WZP_PAIR_VALID)
            a->pairs[i].next_tx = now;
}

static void set_route(wzp_ice_agent *a, int idx, wzp_route_reason reason, wzp_ts now)
{
    if (idx == a->active)
        return;
    a->active = idx;
    a->challenger = -1;
    a->st.route_changes++;
    if (idx >= 0) {
        pair *p = &a->pairs[idx];
        p->active_since = now;
        p->next_tx = now; /* tell the peer at once (F_ACTIVE) and start the keepalive */
        a->ever_direct = true;
        if (a->st.first_direct_at == WZP_TS_NEVER)
            a->st.first_direct_at = now;
    } else if (reason == WZP_ROUTE_PATH_DEAD) {
        a->st.fallbacks++;
    }
    route_emit(a, reason);
}

/* Re-evaluates the route after anything that may change it. */
static void reselect(wzp_ice_agent *a, wzp_ts now)
{
    if (now > a->now)
        a->now = now;
    int best = -1;
    for (size_t i = 0; i < a->npairs; i++)
        if (pair_selectable(a, &a->pairs[i]) && pair_better(a, (int)i, best))
            best = (int)i;

    if (a->active < 0) {
        if (best >= 0)
            set_route(a, best, a->ever_direct ? WZP_ROUTE_RECOVERED : WZP_ROUTE_FIRST_DIRECT, now);
        return;
    }
    /* Hysteresis: a clearly lower cost, or a better class at no higher cost, sustained. */
    const pair *cur = &a->pairs[a->active];
    wzp_ts cc = pair_cost(a, cur);
    wzp_ts margin = cc / 100 * a->cfg.switch_pct;
    if (margin < a->cfg.switch_abs)
        margin = a->cfg.switch_abs;
    int want = -1;
    if (best >= 0 && best != a->active) {
        const pair *cand = &a->pairs[best];
        wzp_ts nc = pair_cost(a, cand);
        if (nc + margin < cc || (pair_class(cand) < pair_class(cur) && nc <= cc))
            want = best;
    }
    /*
     * Convergence: when the two sides settled on different pairs that are
     * about as good, one of them (deterministically, the larger agent id)
     * moves to the peer's choice. Only one side ever follows, so they cannot
     * swap back and forth.
     */
    if (want < 0 && a->have_peer_id &&
        memcmp(a->cfg.agent_id, a->peer_id, WZP_PROBE_SENDER_LEN) > 0 &&
        !peer_is_active_on(a, cur)) {
        for (size_t i = 0; i < a->npairs; i++) {
            const pair *p = &a->pairs[i];
            if ((int)i != a->active && pair_selectable(a, p) && peer_is_active_on(a, p) &&
                pair_cost(a, p) <= cc + margin) {
                want = (int)i;
                break;
            }
        }
    }
    if (want < 0) {
        a->challenger = -1;
        return;
    }
    if (a->challenger != want) {
        a->challenger = want;
        a->challenger_since = now;
        pair *c = &a->pairs[want];
        if (c->next_tx > now)
            c->next_tx = now; /* fresh samples for the hold */
        return;
    }
    if (now >= a->challenger_since + a->cfg.switch_hold)
        set_route(a, want, WZP_ROUTE_BETTER_PAIR, now);
}

/* ---- pairs and candidates ------------------------------------------------------------- */

static int find_pair(const wzp_ice_agent *a, int sock, const wzp_addr *remote)
{
    for (size_t i = 0; i < a->npairs; i++)
        if (a->pairs[i].sock == sock && wzp_addr_equal(&a->pairs[i].remote, remote))
            return (int)i;
    return -1;
}

static void remove_pair(wzp_ice_agent *a, int idx, wzp_ts now)
{
    (void)now;
    bool was_active = idx == a->active;
    if (a->active > idx)
        a->active--;
    if (a->challenger == idx)
        a->challenger = -1;
    else if (a->challenger > idx)
        a->challenger--;
    memmove(&a->pairs[idx], &a->pairs[idx + 1], (a->npairs - (size_t)idx - 1) * sizeof(pair));
    a->npairs--;
    if (was_active) {
        a->active = -1;
        a->st.route_changes++;
        route_emit(a, WZP_ROUTE_PAIR_REMOVED);
    }
}

/*
 * Room for one more pair: a free slot, or an evictable one (never answered,
 * never heard from, not active) of lower priority than `prio` -- or of any
 * priority when the newcomer is proven inbound (learned from a request).
 */
static int make_room(wzp_ice_agent *a, uint32_t prio, bool proven, wzp_ts now)
{
    if (a->npairs < a->cfg.max_pairs)
        return 0;
    int victim = -1;
    for (size_t i = 0; i < a->npairs; i++) {
        const pair *p = &a->pairs[i];
        if (p->state == WZP_PAIR_VALID || p->had_rx || (int)i == a->active)
            continue;
        if (victim < 0 || p->prio < a->pairs[victim].prio)
            victim = (int)i;
    }
    if (victim < 0 || (!proven && a->pairs[victim].prio >= prio)) {
        a->st.pairs_dropped++;
        return WZP_ERR_LIMIT;
    }
    a->st.pairs_dropped++;
    remove_pair(a, victim, now);
    return 0;
}

/* A pair on `sock` (the remote's family's socket, or an extra IPv4 one). */
static int add_pair(wzp_ice_agent *a, int sock, wzp_cand_type type, const wzp_addr *addr,
                    bool proven, wzp_ts now)
{
    if (!wzp_cand_addr_usable(addr))
        return WZP_ERR_INVALID;
    uint32_t prio = wzp_cand_priority(type, addr);
    int idx = find_pair(a, sock, addr);
    if (idx >= 0) {
        pair *p = &a->pairs[idx];
        if (prio > p->prio) { /* same address, better-known type: upgrade */
            p->rtype = type;
            p->prio = prio;
        }
        return idx;
    }
    int rc = make_room(a, prio, proven, now);
    if (rc < 0)
        return rc;
    /* Keep pairs in priority order: that is the order of first checks. */
    size_t pos = 0;
    while (pos < a->npairs && a->pairs[pos].prio >= prio)
        pos++;
    memmove(&a->pairs[pos + 1], &a->pairs[pos], (a->npairs - pos) * sizeof(pair));
    a->npairs++;
    if (a->active >= (int)pos)
        a->active++;
    if (a->challenger >= (int)pos)
        a->challenger++;
    pair *p = &a->pairs[pos];
    memset(p, 0, sizeof(*p));
    p->sock = sock;
    p->remote = *addr;
    p->rtype = type;
    p->prio = prio;
    p->state = WZP_PAIR_WAITING;
    p->interval = a->cfg.rto_initial;
    p->next_tx = now;
    p->created = now;
    return (int)pos;
}

int wzp_ice_add_local(wzp_ice_agent *a, wzp_cand_type type, const wzp_addr *addr)
{
    if (!a || !addr)
        return WZP_ERR_INVALID;
    int sock = wzp_cand_sock_for(addr);
    if (sock < 0 || wzp_addr_is_any(addr))
        return WZP_ERR_INVALID;
    wzp_candidate c = {type, *addr, wzp_cand_priority(type, addr)};
    for (size_t i = 0; i < a->nlocal; i++) {
        if (wzp_cand_same(&a->local[i], &c)) {
            if (c.priority <= a->local[i].priority)
                return 0;
            /* Better-known type: take the old entry out and re-insert in order below. */
            memmove(&a->local[i], &a->local[i + 1], (a->nlocal - i - 1) * sizeof(c));
            a->nlocal--;
            break;
        }
    }
    if (a->nlocal >= a->cfg.max_local)
        return WZP_ERR_LIMIT;
    size_t pos = 0;
    while (pos < a->nlocal && a->local[pos].priority >= c.priority)
        pos++;
    memmove(&a->local[pos + 1], &a->local[pos], (a->nlocal - pos) * sizeof(c));
    a->local[pos] = c;
    a->nlocal++;
    a->has_sock[sock] = true;
    return 0;
}

void wzp_ice_clear_local(wzp_ice_agent *a, wzp_ts now)
{
    (void)now;
    /* Sockets stay: pairs keep working through them while candidates are re-gathered. */
    a->nlocal = 0;
}

size_t wzp_ice_local_candidates(const wzp_ice_agent *a, wzp_candidate *out, size_t max)
{
    for (size_t i = 0; i < a->nlocal && i < max; i++)
        out[i] = a->local[i];
    return a->nlocal;
}

int wzp_ice_add_remote(wzp_ice_agent *a, wzp_cand_type type, const wzp_addr *addr, wzp_ts now)
{
    if (!a || !addr)
        return WZP_ERR_INVALID;
    size_t before = a->npairs;
    int rc = add_pair(a, wzp_cand_sock_for(addr), type, addr, false, now);
    if (rc < 0)
        return rc;
    a->pairs[rc].signaled = true;
    if (a->npairs > before || a->pairs[rc].state != WZP_PAIR_VALID) {
        /*
         * A new candidate from the peer means it is (re)starting checks now:
         * pull the retries of our unproven pairs in, so that one of them
         * crosses the peer's NAT soon after the peer's own probes open it,
         * instead of seconds later at the backoff cap.
         */
        for (size_t i = 0; i < a->npairs; i++) {
            pair *p = &a->pairs[i];
            if (p->state == WZP_PAIR_VALID || p->interval <= a->cfg.rto_initial)
                continue;
            p->interval = a->cfg.rto_initial;
            if (p->next_tx > now + a->cfg.rto_initial)
                p->next_tx = now + a->cfg.rto_initial;
        }
    }
    return 0;
}

int wzp_ice_remove_remote(wzp_ice_agent *a, const wzp_addr *addr, wzp_ts now)
{
    int idx = find_pair(a, wzp_cand_sock_for(addr), addr);
    if (idx < 0)
        return WZP_ERR_NOT_FOUND;
    remove_pair(a, idx, now);
    reselect(a, now);
    return 0;
}

static bool in_set(const wzp_candidate *cands, size_t n, const wzp_addr *addr)
{
    for (size_t i = 0; i < n; i++)
        if (wzp_addr_equal(&cands[i].addr, addr))
            return true;
    return false;
}

int wzp_ice_set_remote_candidates(wzp_ice_agent *a, uint32_t generation, const wzp_candidate *cands,
                                  size_t n, wzp_ts now)
{
    if (!a || generation == 0 || (n && !cands))
        return WZP_ERR_INVALID;
    if (now > a->now)
        a->now = now;
    if (generation <= a->remote_gen) {
        /* Older than what we applied: applying it would resurrect withdrawn addresses. */
        a->st.remote_sets_stale++;
        WZP_INFO("ice: ignoring stale candidate set %u (have %u)", generation, a->remote_gen);
        return WZP_ERR_STATE;
    }
    a->remote_gen = generation;
    a->st.remote_sets++;
    int withdrawn = 0;
    for (size_t i = 0; i < a->npairs;) {
        pair *p = &a->pairs[i];
        if (!p->signaled || in_set(cands, n, &p->remote)) {
            i++;
            continue;
        }
        char buf[WZP_ADDR_STRLEN];
        WZP_INFO("ice: peer withdrew %s%s", wzp_addr_format(&p->remote, buf, sizeof(buf)),
                 (int)i == a->active ? " (the active pair)" : "");
        if ((int)i == a->active) {
            /*
             * Media must not go on into an address the peer no longer has,
             * and its network just changed: do what a path death does (the
             * other pairs answer again before one is chosen), without waiting
             * for the dead-path timer.
             */
            begin_failover(a, now, now);
        }
        remove_pair(a, (int)i, now); /* emits PAIR_REMOVED if it was active */
        a->st.remote_withdrawn++;
        withdrawn++;
    }
    for (size_t i = 0; i < n; i++)
        (void)wzp_ice_add_remote(a, cands[i].type, &cands[i].addr, now); /* unusable: skipped */
    reselect(a, now);
    return withdrawn;
}

int wzp_ice_set_key(wzp_ice_agent *a, const uint8_t key[WZP_PROBE_KEY_LEN], wzp_ts now)
{
    if (!a || !key)
        return WZP_ERR_INVALID;
    if (a->have_key)
        return WZP_ERR_STATE;
    memcpy(a->key, key, WZP_PROBE_KEY_LEN);
    wzp_probe_derive_tag(key, a->tag);
    a->have_key = true;
    a->st.started_at = now;
    a->next_pace = now;
    for (size_t i = 0; i < a->npairs; i++) {
        if (a->pairs[i].next_tx < now)
            a->pairs[i].next_tx = now;
        a->pairs[i].created = now;
    }
    return 0;
}

const uint8_t *wzp_ice_tag(const wzp_ice_agent *a)
{
    return a->tag;
}

/* ---- receiving -------------------------------------------------------------------------- */

static void touch(wzp_ice_agent *a, wzp_ts now)
{
    if (now > a->now)
        a->now = now;
}

static uint8_t pair_flags(const wzp_ice_agent *a, int idx)
{
    uint8_t f = 0;
    if (idx >= 0 && a->pairs[idx].state == WZP_PAIR_VALID)
        f |= WZP_PROBE_F_VALID;
    if (idx >= 0 && idx == a->active)
        f |= WZP_PROBE_F_ACTIVE;
    return f;
}

static void clear_inflight(pair *p)
{
    memset(p->fl, 0, sizeof(p->fl));
}

static void queue_response(wzp_ice_agent *a, int sock, const wzp_addr *to, const wzp_probe *req,
                           int idx)
{
    if (a->txq_count == TXQ_LEN) {
        a->st.tx_queue_drops++;
        return;
    }
    txq_entry *e = &a->txq[(a->txq_head + a->txq_count) % TXQ_LEN];
    wzp_probe r;
    memset(&r, 0, sizeof(r));
    r.type = WZP_PROBE_RESPONSE;
    r.flags = pair_flags(a, idx);
    memcpy(r.tag, a->tag, sizeof(r.tag));
    memcpy(r.txid, req->txid, sizeof(r.txid));
    memcpy(r.sender, a->cfg.agent_id, sizeof(r.sender));
    r.observed = *to;
    int n = wzp_probe_encode(&r, a->key, e->buf, sizeof(e->buf));
    if (n < 0)
        return;
    e->len = (size_t)n;
    e->sock = sock;
    e->dest = *to;
    a->txq_count++;
}

static void learn_local(wzp_ice_agent *a, const wzp_addr *observed)
{
    for (size_t i = 0; i < a->nlocal; i++)
        if (wzp_addr_equal(&a->local[i].addr, observed))
            return;
    if (wzp_ice_add_local(a, WZP_CAND_PRFLX, observed) < 0)
        return;
    wzp_candidate c = {WZP_CAND_PRFLX, *observed, wzp_cand_priority(WZP_CAND_PRFLX, observed)};
    if (a->cfg.cb.local_candidate)
        a->cfg.cb.local_candidate(a->cfg.user, &c);
}

static bool replayed(wzp_ice_agent *a, const uint8_t *txid)
{
    uint32_t seq =
        ((uint32_t)txid[0] << 24) | ((uint32_t)txid[1] << 16) | ((uint32_t)txid[2] << 8) | txid[3];
    if (seq > a->rx_seq_max) {
        uint32_t shift = seq - a->rx_seq_max;
        a->rx_seq_window = shift >= 64 ? 0 : a->rx_seq_window << shift;
        a->rx_seq_window |= 1;
        a->rx_seq_max = seq;
        return false;
    }
    uint32_t back = a->rx_seq_max - seq;
    if (seq == 0 || back >= 64 || (a->rx_seq_window >> back) & 1)
        return true;
    a->rx_seq_window |= (uint64_t)1 << back;
    return false;
}

static int on_request(wzp_ice_agent *a, int sock, const wzp_addr *from, const wzp_probe *req,
                      wzp_ts now)
{
    if (replayed(a, req->txid)) {
        a->st.rx_replayed++;
        return WZP_ERR_PROTOCOL;
    }
    a->st.requests_rcvd++;
    int idx = find_pair(a, sock, from);
    if (idx < 0) {
        /*
         * An authentic request from an address we were not told about: the
         * peer's mapping towards us (endpoint-dependent NAT). Learn it and
         * check it back at once; answering it is what lets the peer validate.
         */
        a->has_sock[sock] = true;
        idx = add_pair(a, sock, WZP_CAND_PRFLX, from, true, now);
        if (idx >= 0) {
            a->st.prflx_learned++;
            char buf[WZP_ADDR_STRLEN];
            WZP_DEBUG("ice: learned peer-reflexive %s", wzp_addr_format(from, buf, sizeof(buf)));
        }
    }
    if (idx >= 0) {
        pair *p = &a->pairs[idx];
        p->had_rx = true;
        p->last_rx = now;
        p->peer_valid = (req->flags & WZP_PROBE_F_VALID) != 0;
        if (req->flags & WZP_PROBE_F_ACTIVE)
            p->peer_active_at = now;
        if (p->state != WZP_PAIR_VALID && !p->triggered) {
            /* The peer's NAT is open towards us right now: check back immediately. */
            p->triggered = true;
            p->interval = a->cfg.rto_initial;
            p->next_tx = now;
        }
    }
    /* Answer even when the pair table is full: the peer's validation does not depend on it. */
    queue_response(a, sock, from, req, idx);
    return 0;
}

static bool find_txid(wzp_ice_agent *a, const uint8_t *txid, int *pidx, int *slot)
{
    for (size_t i = 0; i < a->npairs; i++)
        for (int k = 0; k < INFLIGHT; k++)
            if (a->pairs[i].fl[k].used &&
                memcmp(a->pairs[i].fl[k].txid, txid, WZP_PROBE_TXID_LEN) == 0) {
                *pidx = (int)i;
                *slot = k;
                return true;
            }
    return false;
}

/*
 * An answer to one of our birthday probes: the port we guessed is the peer's
 * mapping towards us. It becomes a peer-reflexive pair on the socket the
 * probe left from, holding the probe as its in-flight request, so the answer
 * proves it like any check. False if it answers none.
 */
static bool bday_answer(wzp_ice_agent *a, int sock, const wzp_addr *from, const uint8_t *txid,
                        wzp_ts now, int *pidx, int *slot)
{
    if (!a->bday_tx)
        return false;
    for (unsigned i = 0; i < BDAY_TX_LEN; i++) {
        bday_tx *t = &a->bday_tx[i];
        if (!t->sent || t->sock != sock || memcmp(t->txid, txid, WZP_PROBE_TXID_LEN) != 0)
            continue;
        if (!wzp_addr_equal(&t->dest, from))
            return false; /* answers come back the way the request went */
        int idx = add_pair(a, sock, WZP_CAND_PRFLX, from, true, now);
        if (idx < 0)
            return false;
        a->has_sock[sock] = true;
        pair *p = &a->pairs[idx];
        inflight *f = &p->fl[p->fl_next++ % INFLIGHT];
        memcpy(f->txid, txid, sizeof(f->txid));
        f->sent = t->sent;
        f->used = true;
        t->sent = 0;
        *pidx = idx;
        *slot = (int)((p->fl_next - 1) % INFLIGHT);
        char buf[WZP_ADDR_STRLEN];
        WZP_DEBUG("ice: birthday probe to %s answered", wzp_addr_format(from, buf, sizeof(buf)));
        return true;
    }
    return false;
}

static void on_response(wzp_ice_agent *a, int sock, const wzp_addr *from, const wzp_probe *resp,
                        wzp_ts now)
{
    a->st.responses_rcvd++;
    int idx, slot;
    if (!find_txid(a, resp->txid, &idx, &slot) &&
        !bday_answer(a, sock, from, resp->txid, now, &idx, &slot)) {
        a->st.rx_unmatched++;
        return;
    }
    pair *p = &a->pairs[idx];
    if (p->sock != sock || !wzp_addr_equal(&p->remote, from)) {
        /* Answers must come back the way the request went (else a NAT rewrote something). */
        a->st.rx_unmatched++;
        return;
    }
    wzp_ts rtt = now - p->fl[slot].sent;
    if (rtt == 0)
        rtt = 1; /* 0 means "no sample" */
    p->fl[slot].used = false;
    p->had_rx = true;
    p->last_resp_rx = now;
    p->last_rx = now;
    p->unanswered = 0;
    if (p->peer_valid || (resp->flags & WZP_PROBE_F_VALID))
        p->peer_valid = true;
    if (resp->flags & WZP_PROBE_F_ACTIVE)
        p->peer_active_at = now;
    if (p->state != WZP_PAIR_VALID) {
        p->state = WZP_PAIR_VALID;
        p->srtt = rtt; /* (re)validated: old samples describe a path that had died */
        p->interval = a->cfg.rto_initial;
        p->triggered = false;
        if (a->st.first_valid_at == WZP_TS_NEVER)
            a->st.first_valid_at = now;
        if (a->bday.running) {
            /* Proven: the probes have done their job (or the checks beat them to it). */
            wzp_bday_stop(&a->bday);
            if (a->st.bday_sent) {
                a->st.bday_success_at = now;
                WZP_INFO("ice: direct pair proven after %llu birthday probes (%s)",
                         (unsigned long long)a->st.bday_sent, wzp_bday_role_name(a->bday.role));
            }
        }
        if (!a->st.first_rtt)
            a->st.first_rtt = rtt;
        char buf[WZP_ADDR_STRLEN];
        WZP_DEBUG("ice: pair %s valid, rtt %llu us", wzp_addr_format(from, buf, sizeof(buf)),
                  (unsigned long long)(rtt / 1000));
        if (a->cfg.cb.pair_valid)
            a->cfg.cb.pair_valid(a->cfg.user, p->sock, &p->remote, rtt);
    } else {
        p->srtt = (7 * p->srtt + rtt) / 8;
    }
    if (idx != a->active)
        p->next_tx =
            p->last_req_sent + (idx == a->challenger ? CHALLENGER_PROBE : a->cfg.keepalive_backup);
    if (wzp_cand_sock_for(&resp->observed) == p->sock)
        learn_local(a, &resp->observed);
    reselect(a, now);
}

int wzp_ice_recv(wzp_ice_agent *a, int sock, const wzp_addr *from, const uint8_t *pkt, size_t len,
                 wzp_ts now)
{
    if (!a || !from || !pkt)
        return WZP_ERR_INVALID;
    touch(a, now);
    bool main_sock = sock >= 0 && sock < WZP_ICE_SOCK_COUNT && wzp_cand_sock_for(from) == sock;
    bool aux_sock = sock >= WZP_ICE_SOCK_COUNT &&
                    sock < WZP_ICE_SOCK_COUNT + (int)a->cfg.aux_socks &&
                    wzp_addr_family(from) == AF_INET;
    if (!main_sock && !aux_sock) {
        a->st.rx_malformed++;
        return WZP_ERR_INVALID;
    }
    if (!a->have_key) {
        a->st.rx_before_key++;
        return WZP_ERR_STATE;
    }
    wzp_probe pr;
    int rc = wzp_probe_decode(&pr, a->key, a->tag, pkt, len);
    if (rc < 0) {
        if (rc == WZP_ERR_NOT_FOUND)
            a->st.rx_wrong_tag++;
        else if (rc == WZP_ERR_PROTOCOL)
            a->st.rx_auth_failed++;
        else
            a->st.rx_malformed++;
        return rc;
    }
    if (memcmp(pr.sender, a->cfg.agent_id, WZP_PROBE_SENDER_LEN) == 0) {
        /* Our own probe, reflected (a hairpin or a replay): it proves nothing. */
        a->st.rx_reflected++;
        return WZP_ERR_PROTOCOL;
    }
    memcpy(a->peer_id, pr.sender, sizeof(a->peer_id));
    a->have_peer_id = true;
    if (pr.type == WZP_PROBE_REQUEST)
        return on_request(a, sock, from, &pr, now);
    on_response(a, sock, from, &pr, now);
    return 0;
}

void wzp_ice_note_rx(wzp_ice_agent *a, int sock, const wzp_addr *from, wzp_ts now)
{
    if (!a || !from)
        return;
    touch(a, now);
    int idx = find_pair(a, sock, from);
    if (idx >= 0) {
        a->pairs[idx].last_rx = now;
        a->pairs[idx].had_rx = true;
    }
}

/* ---- timers and sending ----------------------------------------------------------------- */

static void fail_pair(wzp_ice_agent *a, pair *p, wzp_ts now)
{
    p->state = WZP_PAIR_CHECKING;
    p->next_tx = now + a->cfg.reprobe_initial;
    p->interval = 2 * a->cfg.reprobe_initial;
    if (p->interval > a->cfg.rto_max)
        p->interval = a->cfg.rto_max;
    p->unanswered = 0;
    p->peer_valid = false;
    p->triggered = false;
    clear_inflight(p); /* only answers to fresh probes may prove it again */
}

void wzp_ice_handle_timer(wzp_ice_agent *a, wzp_ts now)
{
    if (!a)
        return;
    touch(a, now);
    for (size_t i = 0; i < a->npairs; i++) {
        pair *p = &a->pairs[i];
        if (p->state == WZP_PAIR_VALID && (int)i != a->active &&
            p->unanswered >= a->cfg.backup_misses && now >= p->next_tx)
            fail_pair(a, p, now);
    }
    if (a->active >= 0) {
        pair *p = &a->pairs[a->active];
        wzp_ts rx = p->last_rx > p->active_since ? p->last_rx : p->active_since;
        wzp_ts resp = p->last_resp_rx > p->active_since ? p->last_resp_rx : p->active_since;
        if (now >= rx + a->cfg.dead_after || now >= resp + a->cfg.dead_after_noresp) {
            char buf[WZP_ADDR_STRLEN];
            WZP_INFO("ice: active pair %s stopped answering",
                     wzp_addr_format(&p->remote, buf, sizeof(buf)));
            fail_pair(a, p, now);
            /*
             * Other pairs count as alive if they answered after this one fell
             * silent (a NAT rebinding: the peer's new mapping is usually
             * proven before the old one is declared dead). The rest must
             * answer again first.
             */
            begin_failover(a, now >= rx + a->cfg.dead_after ? rx : resp, now);
            set_route(a, -1, WZP_ROUTE_PATH_DEAD, now);
        }
    }
    reselect(a, now);
}

/* A fresh request (new txid, counter first for the peer's replay window) into buf. */
static int encode_request(wzp_ice_agent *a, uint8_t flags, uint8_t txid[WZP_PROBE_TXID_LEN],
                          uint8_t *buf, size_t cap)
{
    wzp_probe r;
    memset(&r, 0, sizeof(r));
    r.type = WZP_PROBE_REQUEST;
    r.flags = flags;
    memcpy(r.tag, a->tag, sizeof(r.tag));
    a->tx_seq++;
    r.txid[0] = (uint8_t)(a->tx_seq >> 24);
    r.txid[1] = (uint8_t)(a->tx_seq >> 16);
    r.txid[2] = (uint8_t)(a->tx_seq >> 8);
    r.txid[3] = (uint8_t)a->tx_seq;
    wzp_random_nonce(r.txid + 4, sizeof(r.txid) - 4);
    memcpy(r.sender, a->cfg.agent_id, sizeof(r.sender));
    memcpy(txid, r.txid, WZP_PROBE_TXID_LEN);
    return wzp_probe_encode(&r, a->key, buf, cap);
}

/* The peer's srflx IPv4 address as signalled: where birthday probing aims. */
static const wzp_addr *peer_srflx_v4(const wzp_ice_agent *a)
{
    for (size_t i = 0; i < a->npairs; i++) {
        const pair *p = &a->pairs[i];
        if (p->signaled && p->rtype == WZP_CAND_SRFLX && p->sock == WZP_ICE_SOCK_V4)
            return &p->remote;
    }
    return NULL;
}

/* Starts birthday probing once the roles, the key and the target are known, unless a
 * pair was proven already (then nothing is needed). */
static void bday_maybe_start(wzp_ice_agent *a, wzp_ts now)
{
    if (a->bday_started || !a->have_nat || !a->have_key || a->st.bday_role == WZP_BDAY_NONE ||
        a->st.first_valid_at != WZP_TS_NEVER)
        return;
    const wzp_addr *target = peer_srflx_v4(a);
    if (!target)
        return;
    wzp_ts start = a->st.started_at + BDAY_DELAY > now ? a->st.started_at + BDAY_DELAY : now;
    uint64_t seed = a->cfg.bday.seed;
    if (!seed)
        wzp_random(&seed, sizeof(seed));
    if ((!a->bday_tx && !(a->bday_tx = calloc(BDAY_TX_LEN, sizeof(*a->bday_tx)))) ||
        wzp_bday_start(&a->bday, &a->cfg.bday, a->st.bday_role, target, &a->nat_peer, seed, start) <
            0) {
        /* No memory, or a peer NAT we cannot aim at: the call stays on the relay. */
        a->st.bday_role = WZP_BDAY_NONE;
        return;
    }
    a->bday_started = true;
    char buf[WZP_ADDR_STRLEN];
    WZP_INFO("ice: birthday probing (%s) towards %s", wzp_bday_role_name(a->st.bday_role),
             wzp_addr_format(target, buf, sizeof(buf)));
}

static int bday_transmit(wzp_ice_agent *a, wzp_ts now, uint8_t *buf, size_t cap, int *sock,
                         wzp_addr *dest)
{
    bday_maybe_start(a, now);
    int aux;
    wzp_addr d;
    if (!a->bday_started || !wzp_bday_poll(&a->bday, now, &aux, &d))
        return 0;
    int s = aux < 0 ? WZP_ICE_SOCK_V4 : WZP_ICE_SOCK_COUNT + aux;
    bday_tx *t = &a->bday_tx[a->bday_tx_next++ % BDAY_TX_LEN];
    int n = encode_request(a, 0, t->txid, buf, cap);
    if (n < 0)
        return n;
    t->sent = now;
    t->sock = s;
    t->dest = d;
    a->has_sock[s] = true;
    a->st.bday_sent++;
    *sock = s;
    *dest = d;
    return n;
}

wzp_bday_role wzp_ice_set_nat(wzp_ice_agent *a, const wzp_sig_nat *local, const wzp_sig_nat *peer,
                              wzp_ts now)
{
    if (!a || !local || !peer)
        return WZP_BDAY_NONE;
    touch(a, now);
    if (a->bday_started)
        return a->st.bday_role; /* the first verdict stands while it runs */
    a->nat_local = *local;
    a->nat_peer = *peer;
    a->have_nat = true;
    a->st.bday_role = wzp_bday_role_for(local, peer, a->cfg.aux_socks);
    bday_maybe_start(a, now);
    return a->st.bday_role;
}

/* Which pair's request goes next: the active keepalive, then triggered checks, then the
 * earliest due, ties by check order (priority). -1 if none is due. */
static int pick_due(const wzp_ice_agent *a, wzp_ts now)
{
    int best = -1;
    int best_rank = 0;
    for (size_t i = 0; i < a->npairs; i++) {
        const pair *p = &a->pairs[i];
        if (!pair_eligible(a, p) || p->next_tx > now)
            continue;
        int rank = (int)i == a->active ? 0 : p->triggered ? 1 : 2;
        if (best < 0 || rank < best_rank ||
            (rank == best_rank && p->next_tx < a->pairs[best].next_tx)) {
            best = (int)i;
            best_rank = rank;
        }
    }
    return best;
}

int wzp_ice_poll_transmit(wzp_ice_agent *a, wzp_ts now, uint8_t *buf, size_t cap, int *sock,
                          wzp_addr *dest)
{
    if (!a || !buf || !sock || !dest)
        return WZP_ERR_INVALID;
    if (cap < WZP_PROBE_MAX_LEN)
        return WZP_ERR_TOO_BIG;
    touch(a, now);
    if (a->txq_count) {
        txq_entry *e = &a->txq[a->txq_head];
        memcpy(buf, e->buf, e->len);
        *sock = e->sock;
        *dest = e->dest;
        a->txq_head = (a->txq_head + 1) % TXQ_LEN;
        a->txq_count--;
        a->st.responses_sent++;
        return (int)e->len;
    }
    if (!a->have_key)
        return 0;
    wzp_ice_handle_timer(a, now);
    int idx = now >= a->next_pace ? pick_due(a, now) : -1;
    if (idx < 0)
        return bday_transmit(a, now, buf, cap, sock, dest);
    pair *p = &a->pairs[idx];

    uint8_t txid[WZP_PROBE_TXID_LEN];
    int n = encode_request(a, pair_flags(a, idx), txid, buf, cap);
    if (n < 0)
        return n;

    inflight *f = &p->fl[p->fl_next++ % INFLIGHT];
    memcpy(f->txid, txid, sizeof(f->txid));
    f->sent = now;
    f->used = true;
    p->last_req_sent = now;
    p->triggered = false;
    if (idx == a->active) {
        p->next_tx = now + a->cfg.keepalive_active;
    } else if (p->state == WZP_PAIR_VALID) {
        p->unanswered++;
        p->next_tx = now + (idx == a->challenger ? CHALLENGER_PROBE : a->cfg.backup_retry);
    } else {
        p->state = WZP_PAIR_CHECKING;
        p->next_tx = now + p->interval;
        /* Early on, the peer may start late: keep retrying densely for a while. */
        wzp_ts rto_cap =
            now < p->created + a->cfg.startup_window ? a->cfg.rto_startup_max : a->cfg.rto_max;
        p->interval = p->interval * 2 > rto_cap ? rto_cap : p->interval * 2;
    }
    a->next_pace = now + a->cfg.pace;
    a->st.requests_sent++;
    *sock = p->sock;
    *dest = p->remote;
    return n;
}

wzp_ts wzp_ice_next_deadline(const wzp_ice_agent *a)
{
    if (!a)
        return WZP_TS_NEVER;
    if (a->txq_count)
        return 0;
    if (!a->have_key)
        return WZP_TS_NEVER;
    wzp_ts tx = WZP_TS_NEVER;
    for (size_t i = 0; i < a->npairs; i++)
        if (pair_eligible(a, &a->pairs[i]))
            tx = wzp_ts_min(tx, a->pairs[i].next_tx);
    if (tx != WZP_TS_NEVER && tx < a->next_pace)
        tx = a->next_pace;
    wzp_ts d = tx;
    if (a->active >= 0) {
        const pair *p = &a->pairs[a->active];
        wzp_ts rx = p->last_rx > p->active_since ? p->last_rx : p->active_since;
        wzp_ts resp = p->last_resp_rx > p->active_since ? p->last_resp_rx : p->active_since;
        d = wzp_ts_min(d, rx + a->cfg.dead_after);
        d = wzp_ts_min(d, resp + a->cfg.dead_after_noresp);
    }
    if (a->challenger >= 0)
        d = wzp_ts_min(d, a->challenger_since + a->cfg.switch_hold);
    if (a->bday_started)
        d = wzp_ts_min(d, wzp_bday_deadline(&a->bday));
    else if (a->have_nat && a->st.bday_role != WZP_BDAY_NONE &&
             a->st.first_valid_at == WZP_TS_NEVER && peer_srflx_v4(a))
        d = wzp_ts_min(d, a->st.started_at + BDAY_DELAY); /* poll_transmit starts it */
    return d;
}

void wzp_ice_network_changed(wzp_ice_agent *a, wzp_ts now)
{
    if (!a)
        return;
    touch(a, now);
    for (size_t i = 0; i < a->npairs; i++) {
        pair *p = &a->pairs[i];
        if (p->state != WZP_PAIR_VALID)
            p->interval = a->cfg.rto_initial;
        p->next_tx = now;
    }
}

/* ---- accessors -------------------------------------------------------------------------- */

wzp_ice_route wzp_ice_route_get(const wzp_ice_agent *a)
{
    return route_of(a, a->active);
}

void wzp_ice_get_stats(const wzp_ice_agent *a, wzp_ice_stats *out)
{
    *out = a->st;
    out->rtt = a->active >= 0 ? a->pairs[a->active].srtt : 0;
    out->pairs = 0;
    out->pairs_valid = 0;
    for (size_t i = 0; i < a->npairs; i++) {
        if (!pair_eligible(a, &a->pairs[i]))
            continue;
        out->pairs++;
        if (a->pairs[i].state == WZP_PAIR_VALID)
            out->pairs_valid++;
    }
}

size_t wzp_ice_pairs(const wzp_ice_agent *a, wzp_ice_pair_info *out, size_t max)
{
    for (size_t i = 0; i < a->npairs && i < max; i++) {
        const pair *p = &a->pairs[i];
        wzp_ice_pair_info *o = &out[i];
        o->sock = p->sock;
        o->remote = p->remote;
        o->remote_type = p->rtype;
        o->state = p->state;
        o->peer_valid = p->peer_valid;
        o->peer_active = peer_is_active_on(a, p);
        o->active = (int)i == a->active;
        o->srtt = p->srtt;
        o->priority = p->prio;
    }
    return a->npairs;
}
