/* A QUIC endpoint: demultiplexes packets by connection ID, accepts new
 * connections, drives timers and output for all its connections. */
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "common/log.h"
#include "common/tunnel_addr.h"
#include "common/rand.h"
#include "quic/identity_tls.h"
#include "quic/lean_mem.h"
#include "quic/quic_int.h"
#include "wire/demux.h"

int wzp_quic_ep_add_cid(wzp_quic_endpoint *ep, wzp_quic_conn *c, const ngtcp2_cid *cid)
{
    if (c->ncids >= WZP_QUIC_MAX_CIDS || cid->datalen == 0)
        return WZP_ERR_LIMIT;
    wzp_quic_conn *other = wzp_hmap_get(&ep->cids, cid->data, cid->datalen);
    if (other && other != c)
        return WZP_ERR_INVALID; /* a random 16-byte collision, or a peer reusing one */
    if (other == c)
        return 0;
    int rc = wzp_hmap_put(&ep->cids, cid->data, cid->datalen, c);
    if (rc)
        return rc;
    c->cids[c->ncids++] = *cid;
    return 0;
}

void wzp_quic_ep_del_cid(wzp_quic_endpoint *ep, wzp_quic_conn *c, const ngtcp2_cid *cid)
{
    for (size_t i = 0; i < c->ncids; i++) {
        if (ngtcp2_cid_eq(&c->cids[i], cid)) {
            if (wzp_hmap_get(&ep->cids, cid->data, cid->datalen) == c)
                wzp_hmap_del(&ep->cids, cid->data, cid->datalen);
            c->cids[i] = c->cids[--c->ncids];
            return;
        }
    }
}

/* ---- connection-ID routing --------------------------------------------------------------- */

static unsigned route_cid(uint64_t key, unsigned count, const uint8_t *cid, size_t len)
{
    return (unsigned)(wzp_hash_bytes(cid, len, key) % count);
}

unsigned wzp_quic_route(uint64_t key, unsigned count, const uint8_t *pkt, size_t len)
{
    ngtcp2_version_cid vc;
    if (count <= 1 || !pkt || wzp_pkt_classify(pkt, len) != WZP_PKT_QUIC ||
        ngtcp2_pkt_decode_version_cid(&vc, pkt, len, WZP_QUIC_CIDLEN) != 0 || vc.dcidlen == 0)
        return 0;
    return route_cid(key, count, vc.dcid, vc.dcidlen);
}

void wzp_quic_ep_new_cid(const wzp_quic_endpoint *ep, uint8_t *buf, size_t len)
{
    /* count draws on average; a few hash computations per connection ID. */
    do
        wzp_random_nonce(buf, len);
    while (ep->route_count > 1 &&
           route_cid(ep->route_key, ep->route_count, buf, len) != ep->route_index);
}

/* ---- handshake slots -------------------------------------------------------------------- */

/* The per-source key: wzp_addr_limit_key (an IPv6 /64, an IPv4 address, a
 * tunnelled client under its real address). */
static size_t ip_key(const wzp_addr *a, uint8_t key[16])
{
    return wzp_addr_limit_key(a, key);
}

static size_t handshakes_from(const wzp_hmap *m, const uint8_t *key, size_t keylen)
{
    /* Counts are stored in the pointer itself: no allocation per entry. */
    return keylen ? (size_t)(uintptr_t)wzp_hmap_get(m, key, keylen) : 0;
}

/* Validated handshakes (the client came back with our Retry token) are
 * counted apart: spoofed Initials, which never get that far, cannot fill
 * the slots of the clients really behind their address. */
static wzp_hmap *hs_map(wzp_quic_endpoint *ep, bool validated)
{
    return validated ? &ep->hsv_by_ip : &ep->hs_by_ip;
}

static int take_handshake(wzp_quic_endpoint *ep, wzp_quic_conn *c, const wzp_addr *remote,
                          bool validated)
{
    uint8_t key[16];
    size_t n = ip_key(remote, key);
    if (n) {
        wzp_hmap *m = hs_map(ep, validated);
        size_t cnt = handshakes_from(m, key, n);
        int rc = wzp_hmap_put(m, key, n, (void *)(uintptr_t)(cnt + 1));
        if (rc)
            return rc;
        memcpy(c->hs_ip, key, n);
    }
    c->hs_iplen = (uint8_t)n;
    c->hs_validated = validated;
    c->hs_slot = true;
    ep->handshaking++;
    return 0;
}

void wzp_quic_ep_release_handshake(wzp_quic_endpoint *ep, wzp_quic_conn *c)
{
    if (!c->hs_slot)
        return;
    c->hs_slot = false;
    ep->handshaking--;
    if (!c->hs_iplen)
        return;
    wzp_hmap *m = hs_map(ep, c->hs_validated);
    size_t cnt = handshakes_from(m, c->hs_ip, c->hs_iplen);
    if (cnt > 1)
        wzp_hmap_put(m, c->hs_ip, c->hs_iplen, (void *)(uintptr_t)(cnt - 1));
    else
        wzp_hmap_del(m, c->hs_ip, c->hs_iplen);
}

/* ---- stateless reset tokens -------------------------------------------------------------- */

int wzp_quic_ep_reset_token(const wzp_quic_endpoint *ep, const ngtcp2_cid *cid,
                            uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN])
{
    /* Derived, not stored: the endpoint can answer for a connection ID it has
     * forgotten (or, with a static secret, never knew: a restart). */
    return ngtcp2_crypto_generate_stateless_reset_token(token, ep->reset_secret,
                                                        sizeof(ep->reset_secret), cid) == 0
               ? 0
               : WZP_ERR_INTERNAL;
}

void wzp_quic_ep_add_peer_token(wzp_quic_endpoint *ep, wzp_quic_conn *c, const uint8_t *token)
{
    for (size_t i = 0; i < c->npeer_tokens; i++)
        if (memcmp(c->peer_tokens[i], token, NGTCP2_STATELESS_RESET_TOKENLEN) == 0)
            return;
    /* Full, or another connection's peer gave the same token (only a peer
     * that wants to can): go without; ngtcp2 still checks what reaches c. */
    if (c->npeer_tokens >= WZP_QUIC_MAX_PEER_TOKENS ||
        wzp_hmap_get(&ep->reset_tokens, token, NGTCP2_STATELESS_RESET_TOKENLEN) ||
        wzp_hmap_put(&ep->reset_tokens, token, NGTCP2_STATELESS_RESET_TOKENLEN, c) != 0)
        return;
    memcpy(c->peer_tokens[c->npeer_tokens++], token, NGTCP2_STATELESS_RESET_TOKENLEN);
}

void wzp_quic_ep_del_peer_token(wzp_quic_endpoint *ep, wzp_quic_conn *c, const uint8_t *token)
{
    for (size_t i = 0; i < c->npeer_tokens; i++) {
        if (memcmp(c->peer_tokens[i], token, NGTCP2_STATELESS_RESET_TOKENLEN) == 0) {
            if (wzp_hmap_get(&ep->reset_tokens, token, NGTCP2_STATELESS_RESET_TOKENLEN) == c)
                wzp_hmap_del(&ep->reset_tokens, token, NGTCP2_STATELESS_RESET_TOKENLEN);
            /* memmove: token may be the last entry itself (conn_free). */
            memmove(c->peer_tokens[i], c->peer_tokens[--c->npeer_tokens],
                    NGTCP2_STATELESS_RESET_TOKENLEN);
            return;
        }
    }
}

/* ---- scheduling: due list and timer heap ----------------------------------------------- */

static bool heap_less(const wzp_quic_endpoint *ep, size_t a, size_t b)
{
    return ep->heap[a]->expiry_cache < ep->heap[b]->expiry_cache;
}

static void heap_set(wzp_quic_endpoint *ep, size_t i, wzp_quic_conn *c)
{
    ep->heap[i] = c;
    c->heap_slot = i + 1;
}

static void heap_swap(wzp_quic_endpoint *ep, size_t a, size_t b)
{
    wzp_quic_conn *t = ep->heap[a];
    heap_set(ep, a, ep->heap[b]);
    heap_set(ep, b, t);
}

static size_t heap_up(wzp_quic_endpoint *ep, size_t i)
{
    while (i > 0 && heap_less(ep, i, (i - 1) / 2)) {
        heap_swap(ep, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
    return i;
}

static void heap_down(wzp_quic_endpoint *ep, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < ep->heap_len && heap_less(ep, l, m))
            m = l;
        if (r < ep->heap_len && heap_less(ep, r, m))
            m = r;
        if (m == i)
            return;
        heap_swap(ep, i, m);
        i = m;
    }
}

/* Capacity is reserved per connection (wzp_quic_ep_reserve): cannot fail. */
static void heap_insert(wzp_quic_endpoint *ep, wzp_quic_conn *c)
{
    heap_set(ep, ep->heap_len++, c);
    heap_up(ep, ep->heap_len - 1);
}

static void heap_remove(wzp_quic_endpoint *ep, wzp_quic_conn *c)
{
    if (!c->heap_slot)
        return;
    size_t i = c->heap_slot - 1, last = --ep->heap_len;
    c->heap_slot = 0;
    if (i == last)
        return;
    heap_set(ep, i, ep->heap[last]);
    /* The moved entry may belong above or below its new place. */
    heap_down(ep, heap_up(ep, i));
}

int wzp_quic_ep_reserve(wzp_quic_endpoint *ep)
{
    size_t need = (size_t)ep->stats.conns_active + 1;
    if (need <= ep->heap_cap)
        return 0;
    size_t cap = ep->heap_cap ? 2 * ep->heap_cap : 64;
    wzp_quic_conn **h = realloc(ep->heap, cap * sizeof(*h));
    if (!h)
        return WZP_ERR_NOMEM;
    ep->heap = h;
    ep->heap_cap = cap;
    return 0;
}

static void due_append(wzp_quic_endpoint *ep, wzp_quic_conn *c)
{
    c->tx_due = true;
    c->due_next = NULL;
    c->due_prev = ep->due_tail;
    if (ep->due_tail)
        ep->due_tail->due_next = c;
    else
        ep->due_head = c;
    ep->due_tail = c;
}

static void due_remove(wzp_quic_endpoint *ep, wzp_quic_conn *c)
{
    if (!c->tx_due)
        return;
    c->tx_due = false;
    if (c->due_prev)
        c->due_prev->due_next = c->due_next;
    else
        ep->due_head = c->due_next;
    if (c->due_next)
        c->due_next->due_prev = c->due_prev;
    else
        ep->due_tail = c->due_prev;
    c->due_prev = c->due_next = NULL;
}

void wzp_quic_ep_mark_due(wzp_quic_conn *c)
{
    if (c->tx_due)
        return;
    heap_remove(c->ep, c);
    due_append(c->ep, c);
}

void wzp_quic_ep_unschedule(wzp_quic_conn *c)
{
    heap_remove(c->ep, c);
    due_remove(c->ep, c);
}

/* Moves every idle connection whose cached expiry has come to the due list. */
static void take_expired(wzp_quic_endpoint *ep, wzp_ts now)
{
    while (ep->heap_len && ep->heap[0]->expiry_cache <= now)
        wzp_quic_ep_mark_due(ep->heap[0]);
}

wzp_quic_conn *wzp_quic_ep_heap_top(const wzp_quic_endpoint *ep)
{
    return ep->heap_len ? ep->heap[0] : NULL;
}

bool wzp_quic_ep_heap_check(const wzp_quic_endpoint *ep)
{
    for (size_t i = 0; i < ep->heap_len; i++) {
        const wzp_quic_conn *c = ep->heap[i];
        if (c->heap_slot != i + 1 || c->tx_due)
            return false;
        if (i > 0 && c->expiry_cache < ep->heap[(i - 1) / 2]->expiry_cache)
            return false;
    }
    return true;
}

/* ---- endpoint --------------------------------------------------------------------------- */

void wzp_quic_endpoint_config_default(wzp_quic_endpoint_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->retry_threshold = WZP_QUIC_RETRY_NEVER;
    cfg->retry_token_lifetime = WZP_SEC(5);
    cfg->max_handshakes_per_addr = 0;
}

int wzp_quic_endpoint_configure(wzp_quic_endpoint *ep, const wzp_quic_endpoint_config *cfg)
{
    if (!ep || !cfg)
        return WZP_ERR_INVALID;
    ep->cfg = *cfg;
    if (cfg->have_static_secret)
        memcpy(ep->reset_secret, cfg->static_secret, sizeof(ep->reset_secret));
    /* The secret lives in reset_secret only (one copy to wipe). */
    memset(ep->cfg.static_secret, 0, sizeof(ep->cfg.static_secret));
    if (!ep->cfg.retry_token_lifetime)
        ep->cfg.retry_token_lifetime = WZP_SEC(5);
    return 0;
}

int wzp_quic_endpoint_new(wzp_quic_endpoint **out, const wzp_quic_endpoint_config *cfg)
{
    if (!out || !cfg || !cfg->id)
        return WZP_ERR_INVALID;
    const wzp_identity *id = cfg->id;
    wzp_quic_endpoint *ep = calloc(1, sizeof(*ep));
    if (!ep)
        return WZP_ERR_NOMEM;
    ep->id = id;
    ep->server = cfg->server;
    if (cfg->route_count > 1 && cfg->route_index >= cfg->route_count) {
        free(ep);
        return WZP_ERR_INVALID;
    }
    ep->route_index = cfg->route_index;
    ep->route_count = cfg->route_count;
    ep->route_key = cfg->route_key;
    ep->cb = cfg->cb;
    ep->user = cfg->user;
    ep->mem = cfg->lean_conns ? wzp_quic_lean_mem() : NULL;
    wzp_hmap_init(&ep->cids);
    wzp_hmap_init(&ep->hs_by_ip);
    wzp_hmap_init(&ep->hsv_by_ip);
    wzp_hmap_init(&ep->reset_tokens);
    wzp_random(ep->retry_secret, sizeof(ep->retry_secret));
    wzp_random(ep->reset_secret, sizeof(ep->reset_secret));
    wzp_quic_endpoint_configure(ep, cfg);
    if (gnutls_certificate_allocate_credentials(&ep->cred) != 0) {
        free(ep);
        return WZP_ERR_NOMEM;
    }
    int rc = wzp_quic_tls_credentials(ep);
    if (!rc)
        rc = wzp_quic_tls_priority_new(&ep->prio);
    if (!rc && cfg->qlog_dir && !(ep->qlog_dir = strdup(cfg->qlog_dir)))
        rc = WZP_ERR_NOMEM;
    if (rc) {
        if (ep->prio)
            gnutls_priority_deinit(ep->prio);
        gnutls_certificate_free_credentials(ep->cred);
        wzp_identity_keys_free(&ep->keys);
        free(ep);
        return rc;
    }
    *out = ep;
    return 0;
}

void wzp_quic_endpoint_free(wzp_quic_endpoint *ep)
{
    if (!ep)
        return;
    while (ep->conns)
        wzp_quic_conn_free(ep->conns);
    wzp_hmap_free(&ep->cids);
    wzp_hmap_free(&ep->hs_by_ip);
    wzp_hmap_free(&ep->hsv_by_ip);
    wzp_hmap_free(&ep->reset_tokens);
    gnutls_priority_deinit(ep->prio); /* the sessions' references are gone with them */
    gnutls_certificate_free_credentials(ep->cred);
    wzp_identity_keys_free(&ep->keys);
    free(ep->heap);
    gnutls_memset(ep->reset_secret, 0, sizeof(ep->reset_secret));
    gnutls_memset(ep->retry_secret, 0, sizeof(ep->retry_secret));
    free(ep->qlog_dir);
    free(ep);
}

void wzp_quic_endpoint_get_stats(const wzp_quic_endpoint *ep, wzp_quic_endpoint_stats *out)
{
    *out = ep->stats;
}

size_t wzp_quic_endpoint_conn_count(const wzp_quic_endpoint *ep)
{
    return (size_t)ep->stats.conns_active;
}

int wzp_quic_connect(wzp_quic_endpoint *ep, const wzp_addr *local, const wzp_addr *remote,
                     const wzp_quic_conn_config *opts, wzp_ts now, wzp_quic_conn **out)
{
    if (!ep || !local || !remote || !out || !local->len || !remote->len)
        return WZP_ERR_INVALID;
    wzp_quic_conn_config o;
    if (opts)
        o = *opts;
    else
        wzp_quic_conn_config_default(&o);
    return wzp_quic_conn_new(ep, false, local, remote, &o, NULL, NULL, now, out);
}

/* The client address a Retry token is bound to, in one canonical byte form
 * (the token authenticates the sockaddr bytes: padding, flow labels and
 * IPv4-mapped forms must not make the same address differ). */
static void token_addr(const wzp_addr *remote, wzp_addr *out)
{
    wzp_addr u = *remote;
    wzp_addr_unmap_v4(&u);
    size_t n = 0;
    const uint8_t *ip = wzp_addr_ip(&u, &n);
    if (!ip || wzp_addr_from_ip(out, n == 4 ? AF_INET : AF_INET6, ip, wzp_addr_port(&u)) != 0)
        *out = u;
}

/* Answers the Initial `hd` with a Retry carrying a fresh token; the client
 * comes back with it to the new connection ID. Returns whether it is queued. */
static bool send_retry(wzp_quic_endpoint *ep, const wzp_addr *local, const wzp_addr *remote,
                       const ngtcp2_pkt_hd *hd, wzp_ts now)
{
    if (ep->n_stateless >= WZP_QUIC_STATELESS_QUEUE) {
        ep->stats.rx_refused++;
        return false;
    }
    uint8_t buf[WZP_QUIC_CIDLEN];
    wzp_quic_ep_new_cid(ep, buf, sizeof(buf));
    ngtcp2_cid scid;
    ngtcp2_cid_init(&scid, buf, sizeof(buf));
    wzp_addr ta;
    token_addr(remote, &ta);
    uint8_t token[NGTCP2_CRYPTO_MAX_RETRY_TOKENLEN];
    ngtcp2_ssize tlen = ngtcp2_crypto_generate_retry_token(
        token, ep->retry_secret, sizeof(ep->retry_secret), hd->version,
        (const ngtcp2_sockaddr *)&ta.u.sa, ta.len, &scid, &hd->dcid, now);
    wzp_quic_stateless_pkt *sp = &ep->stateless[ep->n_stateless];
    ngtcp2_ssize n =
        tlen < 0 ? -1
                 : ngtcp2_crypto_write_retry(sp->data, sizeof(sp->data), hd->version, &hd->scid,
                                             &scid, &hd->dcid, token, (size_t)tlen);
    if (n <= 0) {
        ep->stats.rx_refused++;
        return false;
    }
    sp->len = (size_t)n;
    sp->local = *local;
    sp->remote = *remote;
    ep->n_stateless++;
    ep->stats.retries_sent++;
    return true;
}

/*
 * Answers an Initial whose token failed with a stateless CONNECTION_CLOSE
 * (INVALID_TOKEN, RFC 9000 8.1.3): the client will not take a second Retry,
 * so without it a late or mangled token costs the client a whole handshake
 * timeout. The close is far smaller than the Initial: no amplification.
 */
static void send_invalid_token_close(wzp_quic_endpoint *ep, const wzp_addr *local,
                                     const wzp_addr *remote, const ngtcp2_pkt_hd *hd)
{
    if (ep->n_stateless >= WZP_QUIC_STATELESS_QUEUE)
        return;
    wzp_quic_stateless_pkt *sp = &ep->stateless[ep->n_stateless];
    ngtcp2_ssize n =
        ngtcp2_crypto_write_connection_close(sp->data, sizeof(sp->data), hd->version, &hd->scid,
                                             &hd->dcid, NGTCP2_INVALID_TOKEN, NULL, 0);
    if (n <= 0)
        return;
    sp->len = (size_t)n;
    sp->local = *local;
    sp->remote = *remote;
    ep->n_stateless++;
    ep->stats.tx_invalid_token_closes++;
}

/* A packet for no known connection: maybe a new client's Initial. */
static int accept_new(wzp_quic_endpoint *ep, const wzp_addr *local, const wzp_addr *remote,
                      const uint8_t *pkt, size_t len, wzp_ts now, wzp_quic_rx *rx)
{
    ngtcp2_pkt_hd hd;
    if (!ep->server || ngtcp2_accept(&hd, pkt, len) != 0) {
        ep->stats.rx_unknown_cid++;
        return 0;
    }
    uint8_t key[16];
    size_t keylen = ip_key(remote, key);
    size_t cap = ep->cfg.max_handshakes_per_addr;
    /* A token can only be one of our Retry tokens (we send no NEW_TOKEN).
     * One that does not verify gets no connection, only a stateless close. */
    ngtcp2_cid odcid;
    bool validated = false;
    if (hd.token.len) {
        wzp_addr ta;
        token_addr(remote, &ta);
        if (ngtcp2_crypto_verify_retry_token(&odcid, hd.token.base, hd.token.len, ep->retry_secret,
                                             sizeof(ep->retry_secret), hd.version,
                                             (const ngtcp2_sockaddr *)&ta.u.sa, ta.len, &hd.dcid,
                                             ep->cfg.retry_token_lifetime, now) != 0) {
            ep->stats.rx_bad_token++;
            send_invalid_token_close(ep, local, remote, &hd);
            return 0;
        }
        validated = true;
        /* A proven address has its own, larger share: a client there gets in
         * whatever spoofers hold, but one really there cannot open handshakes
         * without end either. */
        size_t vcap = cap > SIZE_MAX / WZP_QUIC_VALIDATED_CAP_FACTOR
                          ? SIZE_MAX
                          : cap * WZP_QUIC_VALIDATED_CAP_FACTOR;
        if (cap && handshakes_from(&ep->hsv_by_ip, key, keylen) >= vcap) {
            ep->stats.rx_addr_capped++;
            return 0;
        }
    } else if (cap && handshakes_from(&ep->hs_by_ip, key, keylen) >= cap) {
        /* The slots may be held by spoofed Initials that will never complete.
         * Silence would lock out every client behind this address until they
         * time out; a Retry costs no state, is smaller than the Initial, and
         * only a client really there comes back with its token. */
        if (send_retry(ep, local, remote, &hd, now))
            ep->stats.retries_addr_cap++;
        return 0;
    } else if (ep->handshaking >= ep->cfg.retry_threshold) {
        send_retry(ep, local, remote, &hd, now);
        return 0;
    }
    wzp_quic_conn_config o;
    wzp_quic_conn_config_default(&o);
    if (!ep->cb.accept || ep->cb.accept(ep->user, local, remote, &o, now) != 0) {
        ep->stats.rx_refused++;
        return 0;
    }
    wzp_quic_conn *c;
    int rc =
        wzp_quic_conn_new(ep, true, local, remote, &o, &hd, validated ? &odcid : NULL, now, &c);
    if (rc == 0 && (rc = take_handshake(ep, c, remote, validated)) != 0)
        wzp_quic_conn_free(c);
    if (rc) {
        ep->stats.rx_refused++;
        return rc == WZP_ERR_NOMEM ? rc : 0;
    }
    ep->stats.conns_accepted++;
    ep->stats.rx_packets++;
    wzp_quic_conn_read(c, local, remote, pkt, len, now);
    rx->conn = c;
    rx->authenticated = c->rx_auth;
    return 0;
}

/* Stateless Reset sizes (RFC 9000 10.3): ngtcp2 needs 5 random bytes before
 * the 16-byte token. Not longer than a small short-header packet of ours (a
 * 16-byte connection ID, packet number, PING, AEAD tag), which it imitates. */
#define RESET_MIN (NGTCP2_MIN_STATELESS_RESET_RANDLEN + NGTCP2_STATELESS_RESET_TOKENLEN)
#define RESET_MAX (1 + WZP_QUIC_CIDLEN + 4 + 2 + NGTCP2_STATELESS_RESET_TOKENLEN)

/* Rate limit (GCRA): each reset moves reset_tat on by 1/WZP_QUIC_RESET_RATE s;
 * one is allowed while reset_tat is less than a second ahead of now. */
static bool reset_allowed(wzp_quic_endpoint *ep, wzp_ts now)
{
    const wzp_ts step = WZP_SEC(1) / WZP_QUIC_RESET_RATE;
    if (ep->reset_tat < now)
        ep->reset_tat = now;
    if (ep->reset_tat - now >= WZP_SEC(1))
        return false;
    ep->reset_tat += step;
    return true;
}

/*
 * Answers a short-header packet for a connection we do not know (lost in a
 * restart, or freed after closing) with a Stateless Reset for its DCID, so
 * its peer stops at once instead of at its idle timeout. Always shorter than
 * the packet (no amplification; two endpoints that both forgot a connection
 * shrink each answer until too short to answer) and rate-limited (spoofed
 * sources cannot turn us into a reflector).
 */
static void send_stateless_reset(wzp_quic_endpoint *ep, const wzp_addr *local,
                                 const wzp_addr *remote, const uint8_t *dcid, size_t dcidlen,
                                 size_t trigger_len, wzp_ts now)
{
    if (trigger_len <= RESET_MIN)
        return;
    size_t n = trigger_len - 1 < RESET_MAX ? trigger_len - 1 : RESET_MAX;
    if (ep->n_stateless >= WZP_QUIC_STATELESS_QUEUE || !reset_allowed(ep, now)) {
        ep->stats.stateless_resets_limited++;
        return;
    }
    ngtcp2_cid cid;
    ngtcp2_cid_init(&cid, dcid, dcidlen);
    uint8_t token[NGTCP2_STATELESS_RESET_TOKENLEN], rnd[RESET_MAX];
    if (wzp_quic_ep_reset_token(ep, &cid, token) != 0)
        return;
    wzp_random_nonce(rnd, n - NGTCP2_STATELESS_RESET_TOKENLEN);
    wzp_quic_stateless_pkt *sp = &ep->stateless[ep->n_stateless];
    ngtcp2_ssize w = ngtcp2_pkt_write_stateless_reset(sp->data, n, token, rnd,
                                                      n - NGTCP2_STATELESS_RESET_TOKENLEN);
    if (w <= 0)
        return;
    sp->len = (size_t)w;
    sp->local = *local;
    sp->remote = *remote;
    ep->n_stateless++;
    ep->stats.stateless_resets_sent++;
}

/* The connection whose peer gave the token that ends pkt, if pkt can be a
 * Stateless Reset (RFC 9000 10.3.1: last 16 bytes of a short-header packet). */
static wzp_quic_conn *reset_target(const wzp_quic_endpoint *ep, const uint8_t *pkt, size_t len)
{
    if (len < RESET_MIN || (pkt[0] & 0x80))
        return NULL;
    return wzp_hmap_get(&ep->reset_tokens, pkt + len - NGTCP2_STATELESS_RESET_TOKENLEN,
                        NGTCP2_STATELESS_RESET_TOKENLEN);
}

/* A short-header packet whose DCID we do not know. */
static void unknown_short(wzp_quic_endpoint *ep, const wzp_addr *local, const wzp_addr *remote,
                          const uint8_t *pkt, size_t len, const ngtcp2_version_cid *vc, wzp_ts now)
{
    wzp_quic_conn *c = reset_target(ep, pkt, len);
    if (c) {
        /* A token we watch is never answered with a reset of ours (no loop).
         * ngtcp2 decides (path, token still in use) and closes c. */
        if (c->state >= CONN_CLOSING) {
            ep->stats.rx_closed_conn++;
        } else if (!wzp_addr_equal(local, &c->local) || !wzp_addr_equal(remote, &c->remote)) {
            ep->stats.rx_unknown_cid++;
        } else {
            ep->stats.rx_packets++;
            wzp_quic_conn_read(c, local, remote, pkt, len, now);
        }
        return;
    }
    ep->stats.rx_unknown_cid++;
    send_stateless_reset(ep, local, remote, vc->dcid, vc->dcidlen, len, now);
}

int wzp_quic_endpoint_feed(wzp_quic_endpoint *ep, const wzp_addr *local, const wzp_addr *remote,
                           const uint8_t *pkt, size_t len, wzp_ts now, wzp_quic_rx *rx)
{
    wzp_quic_rx ignored;
    if (!rx)
        rx = &ignored;
    *rx = (wzp_quic_rx){0};
    bool own_path = !local && !remote;
    if (!ep || (!own_path && (!local || !remote)) || (!pkt && len))
        return WZP_ERR_INVALID;
    if (wzp_pkt_classify(pkt, len) != WZP_PKT_QUIC) {
        ep->stats.rx_not_quic++;
        return 0;
    }
    ngtcp2_version_cid vc;
    int rc = ngtcp2_pkt_decode_version_cid(&vc, pkt, len, WZP_QUIC_CIDLEN);
    if (rc == NGTCP2_ERR_VERSION_NEGOTIATION) {
        /* We only speak v1 with ourselves; no Version Negotiation reply. */
        ep->stats.rx_bad_version++;
        return 0;
    }
    if (rc != 0 || vc.dcidlen == 0) {
        ep->stats.rx_malformed++;
        return 0;
    }
    wzp_quic_conn *c = wzp_hmap_get(&ep->cids, vc.dcid, vc.dcidlen);
    if (own_path) {
        /* A path manager's packet: only for a connection we have, on its own path (a
         * Stateless Reset names its connection by token, not by connection ID). */
        if (!c)
            c = reset_target(ep, pkt, len);
        if (!c || !c->opts.path_managed) {
            ep->stats.rx_unknown_cid++;
            return 0;
        }
        local = &c->local;
        remote = &c->remote;
    }
    if (!c && !(pkt[0] & 0x80)) {
        unknown_short(ep, local, remote, pkt, len, &vc, now);
        return 0;
    }
    if (!c)
        return accept_new(ep, local, remote, pkt, len, now, rx);
    /* Copies: the connection's own path storage is rewritten by the read. */
    wzp_addr l = *local, r = *remote;
    rx->conn = c;
    if (c->state >= CONN_CLOSING) {
        ep->stats.rx_closed_conn++;
        wzp_quic_conn_read(c, &l, &r, pkt, len, now); /* may re-send our close */
        return 0;
    }
    ep->stats.rx_packets++;
    wzp_quic_conn_read(c, &l, &r, pkt, len, now);
    rx->authenticated = c->rx_auth;
    return 0;
}

wzp_quic_conn *wzp_quic_endpoint_lookup(const wzp_quic_endpoint *ep, const uint8_t *pkt, size_t len)
{
    if (!ep || !pkt || wzp_pkt_classify(pkt, len) != WZP_PKT_QUIC)
        return NULL;
    ngtcp2_version_cid vc;
    if (ngtcp2_pkt_decode_version_cid(&vc, pkt, len, WZP_QUIC_CIDLEN) != 0 || vc.dcidlen == 0)
        return NULL;
    wzp_quic_conn *c = wzp_hmap_get(&ep->cids, vc.dcid, vc.dcidlen);
    return c ? c : reset_target(ep, pkt, len);
}

int wzp_quic_endpoint_flush(wzp_quic_endpoint *ep, wzp_ts now, wzp_quic_send_fn send,
                            void *send_user)
{
    int count = 0;
    for (size_t i = 0; i < ep->n_stateless; i++) {
        const wzp_quic_stateless_pkt *sp = &ep->stateless[i];
        ep->stats.tx_packets++;
        ep->stats.tx_bytes += sp->len;
        send(send_user, &sp->local, &sp->remote, sp->data, sp->len);
        count++;
    }
    ep->n_stateless = 0;
    /* Everything fed, queued or timed out since the last write; idle
     * connections whose timer has not come have nothing to send. The timer
     * ones are taken once, before writing: one whose expiry is still past
     * after its write (handle_expiry not run yet) waits for the next flush.
     * A connection a callback makes due during this loop is written too. */
    take_expired(ep, now);
    wzp_quic_conn *c;
    while ((c = ep->due_head) != NULL) {
        due_remove(ep, c);
        count += wzp_quic_conn_write(c, now, send, send_user);
        if (c->tx_due)
            continue; /* made due again while writing: written again below */
        c->expiry_cache = wzp_quic_conn_expiry(c);
        heap_insert(ep, c);
    }
    return count;
}

wzp_ts wzp_quic_endpoint_expiry(const wzp_quic_endpoint *ep)
{
    /* Queued stateless packets are due now. Due connections (normally none: the
     * owner flushes before asking) have no cached expiry yet. */
    wzp_ts t = ep->n_stateless ? 0 : WZP_TS_NEVER;
    if (ep->heap_len)
        t = wzp_ts_min(t, ep->heap[0]->expiry_cache);
    for (const wzp_quic_conn *c = ep->due_head; c; c = c->due_next)
        t = wzp_ts_min(t, wzp_quic_conn_expiry(c));
    return t;
}

void wzp_quic_endpoint_handle_expiry(wzp_quic_endpoint *ep, wzp_ts now)
{
    /* Only due connections and those whose timer came can have a timer to
     * run or a closing period that ended (a connection's cached expiry is
     * its close deadline once closing, 0 once dead). */
    take_expired(ep, now);
    for (wzp_quic_conn *c = ep->due_head; c; c = c->due_next)
        wzp_quic_conn_handle_expiry(c, now);
    wzp_quic_conn *c = ep->due_head;
    while (c) {
        wzp_quic_conn *next = c->due_next;
        if (wzp_quic_conn_is_dead(c, now))
            wzp_quic_conn_free(c);
        c = next;
    }
}
