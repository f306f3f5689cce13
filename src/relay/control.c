/*
 * Relay control plane: connections, rate limiting, registrations and aliases,
 * and dispatch of decoded messages (calls live in calls.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "common/log.h"
#include "common/tunnel_addr.h"
#include "relay/control_internal.h"

#define MILLI 1000u

void wzp_relay_control_config_default(wzp_relay_control_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->ring_timeout = WZP_SEC(60);
    cfg->max_registrations = 100000;
    cfg->max_calls = 100000;
    cfg->max_calls_per_identity = 1;
    cfg->rate_per_sec = 20;
    cfg->rate_burst = 40;
    cfg->abuse_close_after = 50;
    cfg->max_bad_messages = 10;
    cfg->alias_reclaim = WZP_SEC(30ull * 86400);
    cfg->max_conns_per_addr = 64;
    cfg->register_timeout = WZP_SEC(10);
    cfg->park_after = WZP_SEC(2);
    cfg->park_keepalive = WZP_SEC(4);
}

int wzp_relay_control_new(wzp_relay_control **out, const wzp_relay_control_config *cfg)
{
    if (!out || !cfg)
        return WZP_ERR_INVALID;
    /* The bucket arithmetic assumes a bounded rate (see take_token()). */
    if (!cfg->cb.send || !cfg->cb.close || cfg->rate_per_sec == 0 || cfg->rate_per_sec > 1000000 ||
        cfg->rate_burst == 0 || cfg->rate_burst > 1000000 || cfg->ring_timeout == 0 ||
        (cfg->park_after && cfg->cb.park_send &&
         (cfg->park_keepalive < WZP_MS(100) || cfg->park_keepalive > WZP_SEC(600))))
        return WZP_ERR_INVALID;
    /* Every CallSetup carries relay_addr: it must be one the codec accepts. */
    if (cfg->relay_addr.len && ((wzp_addr_family(&cfg->relay_addr) != AF_INET &&
                                 wzp_addr_family(&cfg->relay_addr) != AF_INET6) ||
                                wzp_addr_port(&cfg->relay_addr) == 0))
        return WZP_ERR_INVALID;
    wzp_relay_control *rc = calloc(1, sizeof(*rc));
    if (!rc)
        return WZP_ERR_NOMEM;
    rc->cfg = *cfg;
    wzp_hmap_init(&rc->conns);
    wzp_hmap_init(&rc->regs);
    wzp_hmap_init(&rc->aliases);
    wzp_hmap_init(&rc->alias_of_fp);
    wzp_hmap_init(&rc->per_addr);
    wzp_hmap_init(&rc->calls);
    if (!rc->cfg.max_alias_bindings)
        rc->cfg.max_alias_bindings =
            rc->cfg.max_registrations > UINT32_MAX / 2 ? UINT32_MAX : 2 * rc->cfg.max_registrations;
    rc->next_call_handle = 1;
    wzp_rc_park_init(rc);
    *out = rc;
    return 0;
}

void wzp_relay_control_free(wzp_relay_control *rc)
{
    if (!rc)
        return;
    wzp_rc_free_calls(rc);
    const wzp_hmap_slot *slot;
    for (size_t i = 0; wzp_hmap_next(&rc->regs, &i, &slot);)
        if (wzp_rc_parked(slot->value)) /* in no other map */
            wzp_rc_free_conn(slot->value);
    for (size_t i = 0; wzp_hmap_next(&rc->conns, &i, &slot);)
        wzp_rc_free_conn(slot->value);
    wzp_park_table_free(&rc->park);
    for (size_t i = 0; wzp_hmap_next(&rc->aliases, &i, &slot);)
        free(slot->value);
    wzp_hmap_free(&rc->conns);
    wzp_hmap_free(&rc->regs);
    wzp_hmap_free(&rc->aliases);
    wzp_hmap_free(&rc->alias_of_fp);
    wzp_hmap_free(&rc->per_addr);
    wzp_hmap_free(&rc->calls);
    free(rc);
}

/* ---- output -------------------------------------------------------------- */

void wzp_rc_send(wzp_relay_control *rc, rc_conn *c, const wzp_sig_msg *m)
{
    if (c->remote)
        return; /* its relay hears of the call's changes through cluster messages */
    uint8_t buf[WZP_SIG_MAX_SIZE];
    int n = wzp_sig_encode(m, buf, sizeof(buf));
    if (n < 0) {
        /* Everything we send is built from validated input; this is a bug. */
        WZP_ERROR("relay control: cannot encode %s: %s", wzp_sig_type_name(m->type),
                  wzp_strerror(n));
        return;
    }
    rc->stats.msgs_out++;
    if (c->holding)
        wzp_rc_hold(rc, c, buf, (size_t)n);
    else
        rc->cfg.cb.send(rc->cfg.user, c->id, buf, (size_t)n);
}

void wzp_rc_send_error(wzp_relay_control *rc, rc_conn *c, uint64_t request_id, wzp_sig_err code,
                       const char *text)
{
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_ERROR, request_id);
    m.u.error.code = code;
    snprintf(m.u.error.text, sizeof(m.u.error.text), "%s", text);
    wzp_rc_send(rc, c, &m);
}

/* ---- alias bindings ------------------------------------------------------ */

rc_conn *wzp_rc_conn_by_alias(const wzp_relay_control *rc, const char *alias)
{
    const rc_binding *b = wzp_hmap_get(&rc->aliases, alias, strlen(alias));
    return b ? b->holder : NULL;
}

static void release_binding(wzp_relay_control *rc, rc_binding *b)
{
    if (b->holder)
        b->holder->alias[0] = '\0';
    wzp_hmap_del(&rc->aliases, b->alias, strlen(b->alias));
    if (wzp_hmap_get(&rc->alias_of_fp, b->fp, WZP_SIG_FP_LEN) == b)
        wzp_hmap_del(&rc->alias_of_fp, b->fp, WZP_SIG_FP_LEN);
    free(b);
    rc->aliases_dirty = true;
}

static bool binding_expired(const rc_binding *b, wzp_ts now)
{
    return !b->holder && b->expires <= now;
}

/* The binding of alias still in force, or NULL (an expired one goes now). */
static rc_binding *find_binding(wzp_relay_control *rc, const char *alias, wzp_ts now)
{
    rc_binding *b = wzp_hmap_get(&rc->aliases, alias, strlen(alias));
    if (b && binding_expired(b, now)) {
        release_binding(rc, b);
        b = NULL;
    }
    return b;
}

/* Releases every expired binding. O(bindings): run only at the cap or on export. */
static void prune_bindings(wzp_relay_control *rc, wzp_ts now)
{
    const wzp_hmap_slot *slot;
    size_t n = 0;
    rc_binding **dead = malloc((rc->aliases.count + 1) * sizeof(*dead));
    if (!dead)
        return;
    /* Collect first: deleting shifts slots under the iterator. */
    for (size_t i = 0; wzp_hmap_next(&rc->aliases, &i, &slot);)
        if (binding_expired(slot->value, now))
            dead[n++] = slot->value;
    for (size_t i = 0; i < n; i++)
        release_binding(rc, dead[i]);
    free(dead);
}

static rc_binding *add_binding(wzp_relay_control *rc, const char *alias,
                               const uint8_t fp[WZP_SIG_FP_LEN], wzp_ts expires)
{
    rc_binding *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    snprintf(b->alias, sizeof(b->alias), "%s", alias);
    memcpy(b->fp, fp, WZP_SIG_FP_LEN);
    b->expires = expires;
    if (wzp_hmap_put(&rc->aliases, b->alias, strlen(b->alias), b) < 0) {
        free(b);
        return NULL;
    }
    if (wzp_hmap_put(&rc->alias_of_fp, b->fp, WZP_SIG_FP_LEN, b) < 0) {
        wzp_hmap_del(&rc->aliases, b->alias, strlen(b->alias));
        free(b);
        return NULL;
    }
    rc->aliases_dirty = true;
    return b;
}

/* c's key goes away: its alias stays bound to the key for alias_reclaim. */
static void unhold_alias(wzp_relay_control *rc, rc_conn *c, wzp_ts now)
{
    rc_binding *b = c->alias[0] ? wzp_hmap_get(&rc->aliases, c->alias, strlen(c->alias)) : NULL;
    c->alias[0] = '\0';
    if (!b || b->holder != c)
        return;
    b->holder = NULL;
    b->expires = now + rc->cfg.alias_reclaim;
    if (rc->cfg.alias_reclaim == 0)
        release_binding(rc, b);
}

int wzp_relay_control_load_alias(wzp_relay_control *rc, const wzp_relay_alias_binding *b,
                                 wzp_ts now)
{
    if (!wzp_sig_alias_valid(b->alias))
        return WZP_ERR_INVALID;
    if (b->expires <= now)
        return 0;
    if (wzp_hmap_get(&rc->aliases, b->alias, strlen(b->alias)) ||
        wzp_hmap_get(&rc->alias_of_fp, b->fp, WZP_SIG_FP_LEN))
        return WZP_ERR_INVALID;
    if (rc->aliases.count >= rc->cfg.max_alias_bindings)
        return WZP_ERR_LIMIT;
    bool dirty = rc->aliases_dirty;
    if (!add_binding(rc, b->alias, b->fp, b->expires))
        return WZP_ERR_NOMEM;
    rc->aliases_dirty = dirty; /* what was loaded is already saved */
    return 0;
}

bool wzp_relay_control_aliases_dirty(const wzp_relay_control *rc)
{
    return rc->aliases_dirty;
}

void wzp_relay_control_aliases_export(wzp_relay_control *rc, wzp_ts now,
                                      void (*fn)(void *user, const wzp_relay_alias_binding *b),
                                      void *user)
{
    prune_bindings(rc, now);
    const wzp_hmap_slot *slot;
    for (size_t i = 0; wzp_hmap_next(&rc->aliases, &i, &slot);) {
        const rc_binding *b = slot->value;
        wzp_relay_alias_binding out;
        memcpy(out.alias, b->alias, sizeof(out.alias));
        memcpy(out.fp, b->fp, WZP_SIG_FP_LEN);
        /* A live key's binding would start its reclaim period now if the relay stopped. */
        out.expires = b->holder ? now + rc->cfg.alias_reclaim : b->expires;
        fn(user, &out);
    }
    rc->aliases_dirty = false;
}

size_t wzp_relay_control_num_aliases(const wzp_relay_control *rc)
{
    return rc->aliases.count;
}

/* ---- connections and registry -------------------------------------------- */

static rc_conn *find_conn(const wzp_relay_control *rc, uint64_t id)
{
    return wzp_hmap_get(&rc->conns, &id, sizeof(id));
}

/* The per-source key (a tunnelled client counts under its real address). */
static size_t addr_key(const wzp_addr *a, uint8_t key[8])
{
    return wzp_addr_limit_key(a, key);
}

static size_t conns_from(const wzp_relay_control *rc, const uint8_t *key, size_t keylen)
{
    /* Counts live in the pointer itself: no allocation per address. */
    return (size_t)(uintptr_t)wzp_hmap_get(&rc->per_addr, key, keylen);
}

void wzp_rc_unlink_unreg(wzp_relay_control *rc, rc_conn *c)
{
    wzp_dl_remove(&rc->unreg, &c->unreg);
}

void wzp_rc_uncount_addr(wzp_relay_control *rc, rc_conn *c)
{
    if (c->addr_keylen) {
        size_t n = conns_from(rc, c->addr_key, c->addr_keylen);
        if (n <= 1)
            wzp_hmap_del(&rc->per_addr, c->addr_key, c->addr_keylen);
        else /* replacing an existing key never allocates */
            wzp_hmap_put(&rc->per_addr, c->addr_key, c->addr_keylen, (void *)(uintptr_t)(n - 1));
        c->addr_keylen = 0;
    }
}

void wzp_rc_drop_conn(wzp_relay_control *rc, rc_conn *c, wzp_sig_end_reason reason, wzp_ts now)
{
    if ((c->moving || rc->draining) && rc->cfg.cb.reattach_lookup)
        wzp_rc_detach_calls_of(rc, c);
    wzp_rc_end_calls_of(rc, c, reason);
    unhold_alias(rc, c, now);
    if (c->registered && wzp_hmap_get(&rc->regs, c->fp, WZP_SIG_FP_LEN) == c) {
        wzp_hmap_del(&rc->regs, c->fp, WZP_SIG_FP_LEN);
        if (rc->cfg.cb.presence)
            rc->cfg.cb.presence(rc->cfg.user, c->fp, "", false);
    }
    wzp_rc_unlink_unreg(rc, c);
    wzp_rc_uncount_addr(rc, c);
    bool parked = wzp_rc_parked(c);
    wzp_rc_park_forget(rc, c);
    if (!parked)
        wzp_hmap_del(&rc->conns, &c->id, sizeof(c->id));
    wzp_rc_free_conn(c);
}

/* Asks the transport to close c, then forgets it. c is freed on return. */
static void close_conn(wzp_relay_control *rc, rc_conn *c, wzp_relay_close_code code,
                       const char *reason, wzp_ts now)
{
    uint64_t id = c->id;
    if (wzp_rc_parked(c)) {
        wzp_rc_drop_conn(rc, c, WZP_SIG_END_PEER_GONE, now); /* no connection to close */
        return;
    }
    wzp_rc_drop_conn(rc, c, WZP_SIG_END_PEER_GONE, now);
    rc->stats.closes++;
    rc->cfg.cb.close(rc->cfg.user, id, code, reason);
}

int wzp_relay_control_on_connect(wzp_relay_control *rc, uint64_t conn,
                                 const uint8_t fp[WZP_SIG_FP_LEN], const wzp_addr *remote,
                                 wzp_ts now)
{
    int fam = wzp_addr_family(remote);
    rc->now = now;
    if (find_conn(rc, conn) || (fam != AF_INET && fam != AF_INET6) || wzp_addr_port(remote) == 0)
        return WZP_ERR_INVALID;
    rc_conn *c = calloc(1, sizeof(*c));
    if (!c)
        return WZP_ERR_NOMEM;
    c->id = conn;
    memcpy(c->fp, fp, WZP_SIG_FP_LEN);
    c->addr = *remote;
    c->millitokens = (uint64_t)rc->cfg.rate_burst * MILLI;
    c->refilled = now;
    if (wzp_hmap_put(&rc->conns, &c->id, sizeof(c->id), c) < 0) {
        free(c);
        return WZP_ERR_NOMEM;
    }
    uint8_t key[8];
    size_t keylen = addr_key(remote, key);
    size_t n = keylen ? conns_from(rc, key, keylen) : 0;
    if (keylen && wzp_hmap_put(&rc->per_addr, key, keylen, (void *)(uintptr_t)(n + 1)) == 0) {
        memcpy(c->addr_key, key, keylen);
        c->addr_keylen = (uint8_t)keylen;
    }
    if (rc->cfg.register_timeout) {
        wzp_dl_append(&rc->unreg, &c->unreg, now + rc->cfg.register_timeout);
    }
    if (rc->cfg.max_conns_per_addr && n >= rc->cfg.max_conns_per_addr) {
        /* Counted above, uncounted by close_conn: every exit keeps the count exact. */
        rc->stats.conn_over_addr_cap++;
        wzp_rc_send_error(rc, c, 0, WZP_SIG_ERR_FULL, "relay full for your address");
        close_conn(rc, c, WZP_RELAY_CLOSE_ADDR_LIMIT, "relay full for your address", now);
    }
    return 0;
}

void wzp_relay_control_drain(wzp_relay_control *rc)
{
    if (rc->draining)
        return;
    rc->draining = true;
    const wzp_hmap_slot *slot;
    for (size_t i = 0; wzp_hmap_next(&rc->regs, &i, &slot);) {
        if (wzp_rc_park_drain(rc, slot->value))
            continue; /* parked: woken to go elsewhere */
        wzp_sig_msg m;
        wzp_sig_init(&m, WZP_SIG_REHOME, 0);
        wzp_rc_send(rc, slot->value, &m);
    }
}

void wzp_relay_control_on_moving(wzp_relay_control *rc, uint64_t conn)
{
    rc_conn *c = find_conn(rc, conn);
    if (c)
        c->moving = true;
}

void wzp_relay_control_on_disconnect(wzp_relay_control *rc, uint64_t conn, wzp_ts now)
{
    rc_conn *c = find_conn(rc, conn);
    rc->now = now;
    if (!c) {
        rc->stats.late_disconnects++;
        return;
    }
    if (c->took_park && c->park && c->registered) {
        wzp_rc_park_conn(rc, c, now);
        return;
    }
    wzp_rc_drop_conn(rc, c, WZP_SIG_END_PEER_GONE, now);
}

void wzp_relay_control_on_addr_change(wzp_relay_control *rc, uint64_t conn, const wzp_addr *remote,
                                      wzp_ts now)
{
    (void)now;
    rc_conn *c = find_conn(rc, conn);
    int fam = wzp_addr_family(remote);
    if (!c || (fam != AF_INET && fam != AF_INET6) || wzp_addr_port(remote) == 0 ||
        wzp_addr_equal(&c->addr, remote))
        return;
    c->addr = *remote;
    wzp_rc_conn_moved(rc, c);
    if (c->registered) {
        wzp_sig_msg m;
        wzp_sig_init(&m, WZP_SIG_REFLEXIVE_ADDRESS, 0);
        m.u.reflexive.reflexive = *remote;
        wzp_rc_send(rc, c, &m);
    }
}

static void register_conn(wzp_relay_control *rc, rc_conn *c, const wzp_sig_msg *m, bool claimed,
                          wzp_ts now)
{
    const char *alias = m->u.reg.alias;
    rc_conn *old = wzp_hmap_get(&rc->regs, c->fp, WZP_SIG_FP_LEN);
    if (old == c)
        old = NULL; /* re-registering on the same connection: only the alias may change */

    /* Check everything that can fail before changing anything. */
    rc_binding *b = alias[0] ? find_binding(rc, alias, now) : NULL;
    if (b && memcmp(b->fp, c->fp, WZP_SIG_FP_LEN) != 0) {
        /* Held by another key, live or within its reclaim period. */
        rc->stats.reg_alias_taken++;
        wzp_rc_send_error(rc, c, m->request_id, WZP_SIG_ERR_ALIAS_TAKEN, "alias taken");
        return;
    }
    c->pending_alias[0] = '\0'; /* a newer Register overrides one waiting for its claim */
    if (alias[0] && !b && !claimed && rc->cfg.cb.claim_alias) {
        /* A new binding here: the alias must be free cluster-wide first. A key
         * whose binding this relay holds keeps it while the store is away. */
        snprintf(c->pending_alias, sizeof(c->pending_alias), "%s", alias);
        c->pending_req = m->request_id;
        rc->cfg.cb.claim_alias(rc->cfg.user, c->id, c->fp, alias);
        return;
    }
    if (!c->registered && !old && rc->regs.count >= rc->cfg.max_registrations) {
        rc->stats.reg_over_cap++;
        wzp_rc_send_error(rc, c, m->request_id, WZP_SIG_ERR_FULL, "relay full");
        close_conn(rc, c, WZP_RELAY_CLOSE_REG_LIMIT, "relay full", now);
        return;
    }
    rc_binding *mine = wzp_hmap_get(&rc->alias_of_fp, c->fp, WZP_SIG_FP_LEN);
    if (alias[0] && !b) {
        /* A new binding; the key's old one (if any) is about to go. */
        size_t held = rc->aliases.count - (mine ? 1 : 0);
        if (held >= rc->cfg.max_alias_bindings) {
            prune_bindings(rc, now);
            mine = wzp_hmap_get(&rc->alias_of_fp, c->fp, WZP_SIG_FP_LEN);
            held = rc->aliases.count - (mine ? 1 : 0);
        }
        /* Refuse rather than evict: evicting would let a flood of fresh keys
         * free other people's aliases for takeover. */
        if (held >= rc->cfg.max_alias_bindings) {
            rc->stats.alias_table_full++;
            wzp_rc_send_error(rc, c, m->request_id, WZP_SIG_ERR_FULL, "relay alias table full");
            return;
        }
    }
    if (old) {
        /* Same identity from a new connection: the old one goes, with its calls (in a
         * cluster its answered calls wait for the new one's Reattach instead). */
        rc->stats.reg_replaced++;
        old->moving = true;
        close_conn(rc, old, WZP_RELAY_CLOSE_REPLACED, "replaced by a newer connection", now);
    }
    /* Closing old may have ended its bindings (alias_reclaim 0): look again. */
    b = alias[0] ? wzp_hmap_get(&rc->aliases, alias, strlen(alias)) : NULL;
    /* A key holds one alias: asking for another (or none) renames, freeing the old one. */
    mine = wzp_hmap_get(&rc->alias_of_fp, c->fp, WZP_SIG_FP_LEN);
    if (mine && mine != b)
        release_binding(rc, mine);
    if (alias[0] && !b && !(b = add_binding(rc, alias, c->fp, 0))) {
        wzp_rc_send_error(rc, c, m->request_id, WZP_SIG_ERR_INTERNAL, "out of memory");
        return;
    }
    if (wzp_hmap_put(&rc->regs, c->fp, WZP_SIG_FP_LEN, c) < 0) {
        c->registered = false;
        wzp_rc_send_error(rc, c, m->request_id, WZP_SIG_ERR_INTERNAL, "out of memory");
        return;
    }
    if (b) {
        b->holder = c;
        b->expires = 0;
    }
    c->registered = true;
    wzp_rc_unlink_unreg(rc, c);
    snprintf(c->alias, sizeof(c->alias), "%s", alias);
    rc->stats.reg_ok++;
    if (rc->cfg.cb.presence)
        rc->cfg.cb.presence(rc->cfg.user, c->fp, c->alias, true);

    wzp_sig_msg r;
    wzp_sig_init(&r, WZP_SIG_REGISTERED, m->request_id);
    memcpy(r.u.registered.fingerprint, c->fp, WZP_SIG_FP_LEN);
    r.u.registered.reflexive = c->addr;
    snprintf(r.u.registered.alias, sizeof(r.u.registered.alias), "%s", c->alias);
    wzp_rc_send(rc, c, &r);
    wzp_rc_park_idle_start(rc, c, now);
}

void wzp_rc_register(wzp_relay_control *rc, rc_conn *c, const wzp_sig_msg *m, bool claimed,
                     wzp_ts now)
{
    rc_conn *p = wzp_hmap_get(&rc->regs, c->fp, WZP_SIG_FP_LEN);
    if (!p || p == c || !wzp_rc_parked(p)) {
        register_conn(rc, c, m, claimed, now);
        return;
    }
    /* The parked registration takes the new connection: calls pointing at it stay valid.
     * Registered first, then what was held (an IncomingCall, say). */
    p = wzp_rc_adopt(rc, p, c);
    register_conn(rc, p, m, claimed, now);
    wzp_rc_flush_held(rc, p);
}

/* ---- input --------------------------------------------------------------- */

/* Token bucket in thousandths of a message, refilled lazily from `now`. */
static bool take_token(wzp_relay_control *rc, rc_conn *c, wzp_ts now)
{
    uint64_t cap = (uint64_t)rc->cfg.rate_burst * MILLI;
    if (now > c->refilled) {
        wzp_ts dt = now - c->refilled;
        if (dt > WZP_SEC(1000000))
            dt = WZP_SEC(1000000); /* far beyond any bucket; keeps the product < 2^64 */
        uint64_t add = dt / 1000 * rc->cfg.rate_per_sec / 1000; /* us * msg/s -> milli */
        if (add > 0) {
            c->millitokens = c->millitokens + add > cap ? cap : c->millitokens + add;
            c->refilled = now;
        }
    }
    if (c->millitokens < MILLI)
        return false;
    c->millitokens -= MILLI;
    return true;
}

void wzp_relay_control_on_message(wzp_relay_control *rc, uint64_t conn, const uint8_t *bytes,
                                  size_t len, wzp_ts now)
{
    rc_conn *c = find_conn(rc, conn);
    rc->now = now;
    if (!c) {
        rc->stats.drop_unknown_conn++;
        return;
    }
    rc->stats.msgs_in++;
    wzp_rc_park_activity(rc, c, now);
    if (len > WZP_SIG_MAX_SIZE) {
        rc->stats.drop_too_big++;
        wzp_rc_send_error(rc, c, 0, WZP_SIG_ERR_TOO_BIG, "message too big");
        close_conn(rc, c, WZP_RELAY_CLOSE_TOO_BIG, "message too big", now);
        return;
    }
    if (!take_token(rc, c, now)) {
        rc->stats.drop_rate_limited++;
        /* One Error per burst of excess, not one per message: no amplification. */
        if (++c->strikes == 1)
            wzp_rc_send_error(rc, c, 0, WZP_SIG_ERR_RATE_LIMITED, "rate limited");
        if (c->strikes >= rc->cfg.abuse_close_after)
            close_conn(rc, c, WZP_RELAY_CLOSE_RATE_LIMIT, "sustained rate limit", now);
        return;
    }
    c->strikes = 0;

    wzp_sig_msg m;
    int rcode = wzp_sig_decode(bytes, len, &m);
    if (rcode < 0) {
        if (rcode == WZP_ERR_PROTOCOL) {
            rc->stats.drop_version++;
            wzp_rc_send_error(rc, c, m.request_id, WZP_SIG_ERR_VERSION, "unsupported version");
        } else {
            rc->stats.drop_malformed++;
            wzp_rc_send_error(rc, c, m.request_id, WZP_SIG_ERR_MALFORMED, "malformed message");
        }
        if (++c->bad >= rc->cfg.max_bad_messages)
            close_conn(rc, c, WZP_RELAY_CLOSE_BAD_MESSAGES, "too many malformed messages", now);
        return;
    }

    if (rc->draining &&
        (m.type == WZP_SIG_REGISTER || m.type == WZP_SIG_OFFER || m.type == WZP_SIG_REATTACH)) {
        wzp_rc_send_error(rc, c, m.request_id, WZP_SIG_ERR_INTERNAL, "relay stopping");
        return;
    }
    switch (m.type) {
    case WZP_SIG_REGISTER:
        wzp_rc_register(rc, c, &m, false, now);
        return;
    case WZP_SIG_PING: {
        wzp_sig_msg r;
        wzp_sig_init(&r, WZP_SIG_PONG, m.request_id);
        wzp_rc_send(rc, c, &r);
        return;
    }
    case WZP_SIG_OFFER:
    case WZP_SIG_ACCEPT:
    case WZP_SIG_REJECT:
    case WZP_SIG_BUSY:
    case WZP_SIG_CANCEL:
    case WZP_SIG_HANGUP:
    case WZP_SIG_CANDIDATES_UPDATE:
    case WZP_SIG_REATTACH:
        if (!c->registered) {
            rc->stats.drop_not_registered++;
            wzp_rc_send_error(rc, c, m.request_id, WZP_SIG_ERR_NOT_REGISTERED, "register first");
            return;
        }
        if (m.type == WZP_SIG_OFFER)
            wzp_rc_handle_offer(rc, c, &m, now);
        else if (m.type == WZP_SIG_REATTACH)
            wzp_rc_handle_reattach(rc, c, &m, now);
        else
            wzp_rc_handle_call_msg(rc, c, &m);
        return;
    default:
        rc->stats.drop_unexpected++;
        wzp_rc_send_error(rc, c, m.request_id, WZP_SIG_ERR_UNEXPECTED, "not a client message");
        return;
    }
}

void wzp_relay_control_handle_timer(wzp_relay_control *rc, wzp_ts now)
{
    rc->now = now;
    wzp_rc_expire_calls(rc, now);
    wzp_park_handle_timer(&rc->park, now);
    while (rc->unreg.head && rc->unreg.head->at <= now) {
        rc->stats.reg_timeouts++;
        close_conn(rc, WZP_DL_OWNER(rc->unreg.head, rc_conn, unreg), WZP_RELAY_CLOSE_REG_TIMEOUT,
                   "did not register in time", now);
    }
}

wzp_ts wzp_relay_control_next_deadline(const wzp_relay_control *rc)
{
    wzp_ts t = rc->ring_head ? rc->ring_head->expires : WZP_TS_NEVER;
    t = wzp_ts_min(t, wzp_park_next_deadline(&rc->park));
    return rc->unreg.head ? wzp_ts_min(t, rc->unreg.head->at) : t;
}

/* ---- cluster -------------------------------------------------------------- */

void wzp_relay_control_claim_done(wzp_relay_control *rc, uint64_t conn, const char *alias,
                                  wzp_relay_cluster_result res, wzp_ts now)
{
    rc_conn *c = find_conn(rc, conn);
    rc->now = now;
    if (!c || !c->pending_alias[0] || strcmp(c->pending_alias, alias) != 0)
        return; /* gone, or it asked for something else since */
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_REGISTER, c->pending_req);
    memcpy(m.u.reg.alias, c->pending_alias, sizeof(m.u.reg.alias));
    c->pending_alias[0] = '\0';
    switch (res) {
    case WZP_RELAY_CLUSTER_OK:
        wzp_rc_register(rc, c, &m, true, now);
        return;
    case WZP_RELAY_CLUSTER_TAKEN:
        rc->stats.reg_alias_taken++;
        rc->stats.claims_refused++;
        wzp_rc_send_error(rc, c, m.request_id, WZP_SIG_ERR_ALIAS_TAKEN, "alias taken");
        return;
    default:
        rc->stats.cross_unavailable++;
        wzp_rc_send_error(rc, c, m.request_id, WZP_SIG_ERR_INTERNAL,
                          "cluster store unreachable: new aliases cannot be bound now");
        return;
    }
}

void wzp_relay_control_located(wzp_relay_control *rc, const uint8_t call_id[WZP_SIG_CALL_ID_LEN],
                               wzp_relay_cluster_result res, const uint8_t fp[WZP_SIG_FP_LEN],
                               const uint8_t relay[WZP_CLUSTER_ID_LEN], const wzp_addr *fwd,
                               wzp_ts now)
{
    rc->now = now;
    wzp_rc_call_located(rc, call_id, res, fp, relay, fwd, now);
}

void wzp_relay_control_offer_unheard(wzp_relay_control *rc,
                                     const uint8_t call_id[WZP_SIG_CALL_ID_LEN], wzp_ts now)
{
    rc->now = now;
    wzp_rc_call_offer_unheard(rc, call_id);
}

void wzp_relay_control_on_cluster(wzp_relay_control *rc, const wzp_cluster_msg *m, wzp_ts now)
{
    rc->now = now;
    if (m->kind == WZP_CLUSTER_REATTACH || m->kind == WZP_CLUSTER_REATTACH_ACK) {
        wzp_rc_reattach_cluster_msg(rc, m);
        return;
    }
    if (m->kind != WZP_CLUSTER_KICK) {
        wzp_rc_call_cluster_msg(rc, m, now);
        return;
    }
    /* The key registered on another relay since: as for a newer connection here. */
    rc_conn *c = wzp_hmap_get(&rc->regs, m->fp, WZP_SIG_FP_LEN);
    if (c) {
        rc->stats.reg_replaced++;
        c->moving = true; /* its answered calls may follow it there (Reattach) */
        close_conn(rc, c, WZP_RELAY_CLOSE_REPLACED, "registered on another relay", now);
    }
}

void wzp_relay_control_reattach_found(wzp_relay_control *rc, uint64_t conn, uint64_t request_id,
                                      const uint8_t call_id[WZP_SIG_CALL_ID_LEN], int end,
                                      wzp_relay_cluster_result res,
                                      const uint8_t other_fp[WZP_SIG_FP_LEN],
                                      const uint8_t other_relay[WZP_CLUSTER_ID_LEN],
                                      const wzp_addr *other_fwd, wzp_ts now)
{
    rc_conn *c = find_conn(rc, conn);
    rc->now = now;
    if (c && c->registered && (end == CALLER || end == CALLEE))
        wzp_rc_reattach_found(rc, c, request_id, call_id, end, res, other_fp, other_relay,
                              other_fwd, now);
}

void wzp_relay_control_foreach_call(const wzp_relay_control *rc,
                                    void (*fn)(void *user, const uint8_t *call_id,
                                               const uint8_t *fp_a, const uint8_t *relay_a,
                                               const uint8_t *fp_b, const uint8_t *relay_b),
                                    void *user)
{
    const wzp_hmap_slot *slot;
    for (size_t i = 0; wzp_hmap_next(&rc->calls, &i, &slot);) {
        const rc_call *k = slot->value;
        const rc_conn *a = k->side[CALLER].conn, *b = k->side[CALLEE].conn;
        if (k->state == RC_ACTIVE)
            fn(user, k->id, a->fp, a->remote ? a->relay : NULL, b->fp, b->remote ? b->relay : NULL);
    }
}

void wzp_relay_control_foreach_registration(const wzp_relay_control *rc,
                                            void (*fn)(void *user, const uint8_t *fp,
                                                       const char *alias),
                                            void *user)
{
    const wzp_hmap_slot *slot;
    for (size_t i = 0; wzp_hmap_next(&rc->regs, &i, &slot);) {
        const rc_conn *c = slot->value;
        fn(user, c->fp, c->alias);
    }
}

void wzp_relay_control_get_stats(const wzp_relay_control *rc, wzp_relay_control_stats *out)
{
    *out = rc->stats;
    out->park = rc->park.stats;
}

size_t wzp_relay_control_num_conns(const wzp_relay_control *rc)
{
    return rc->conns.count;
}

size_t wzp_relay_control_num_registrations(const wzp_relay_control *rc)
{
    return rc->regs.count;
}

size_t wzp_relay_control_num_calls(const wzp_relay_control *rc)
{
    return rc->calls.count;
}

size_t wzp_relay_control_num_ringing(const wzp_relay_control *rc)
{
    return rc->n_ringing;
}

size_t wzp_relay_control_conns_from(const wzp_relay_control *rc, const wzp_addr *addr)
{
    uint8_t key[8];
    size_t n = addr_key(addr, key);
    return n ? conns_from(rc, key, n) : 0;
}

size_t wzp_relay_control_num_parked(const wzp_relay_control *rc)
{
    return rc->park.n_parked;
}

uint64_t wzp_relay_control_lookup(const wzp_relay_control *rc, const uint8_t fp[WZP_SIG_FP_LEN])
{
    const rc_conn *c = wzp_hmap_get(&rc->regs, fp, WZP_SIG_FP_LEN);
    return c ? c->id : 0;
}
