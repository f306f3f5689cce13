/* A QUIC endpoint: demultiplexes packets by connection ID, accepts new
 * connections, drives timers and output for all its connections. */
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "quic/identity_tls.h"
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

int wzp_quic_endpoint_new(const wzp_identity *id, bool server, const wzp_quic_callbacks *cb,
                          void *user, wzp_quic_endpoint **out)
{
    if (!id || !out)
        return WZP_ERR_INVALID;
    *out = NULL;
    wzp_quic_endpoint *ep = calloc(1, sizeof(*ep));
    if (!ep)
        return WZP_ERR_NOMEM;
    ep->id = id;
    ep->server = server;
    if (cb)
        ep->cb = *cb;
    ep->user = user;
    wzp_hmap_init(&ep->cids);
    if (gnutls_certificate_allocate_credentials(&ep->cred) != 0) {
        free(ep);
        return WZP_ERR_NOMEM;
    }
    int rc = wzp_identity_set_credentials(id, ep->cred);
    if (rc) {
        gnutls_certificate_free_credentials(ep->cred);
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
    gnutls_certificate_free_credentials(ep->cred);
    free(ep);
}

const wzp_quic_stats *wzp_quic_endpoint_stats(const wzp_quic_endpoint *ep)
{
    return &ep->stats;
}

size_t wzp_quic_endpoint_conn_count(const wzp_quic_endpoint *ep)
{
    return (size_t)ep->stats.conns_active;
}

int wzp_quic_connect(wzp_quic_endpoint *ep, const wzp_addr *local, const wzp_addr *remote,
                     const wzp_quic_conn_opts *opts, wzp_ts now, wzp_quic_conn **out)
{
    if (!ep || !local || !remote || !out || !local->len || !remote->len)
        return WZP_ERR_INVALID;
    wzp_quic_conn_opts o;
    if (opts)
        o = *opts;
    else
        wzp_quic_conn_opts_default(&o);
    return wzp_quic_conn_new(ep, false, local, remote, &o, NULL, now, out);
}

/* A packet for no known connection: maybe a new client's Initial. */
static int accept_new(wzp_quic_endpoint *ep, const wzp_addr *local, const wzp_addr *remote,
                      const uint8_t *pkt, size_t len, wzp_ts now)
{
    ngtcp2_pkt_hd hd;
    if (!ep->server || ngtcp2_accept(&hd, pkt, len) != 0) {
        ep->stats.rx_unknown_cid++;
        return 0;
    }
    wzp_quic_conn_opts o;
    wzp_quic_conn_opts_default(&o);
    if (!ep->cb.accept || ep->cb.accept(ep->user, local, remote, &o) != 0) {
        ep->stats.rx_refused++;
        return 0;
    }
    wzp_quic_conn *c;
    int rc = wzp_quic_conn_new(ep, true, local, remote, &o, &hd, now, &c);
    if (rc) {
        ep->stats.rx_refused++;
        return rc == WZP_ERR_NOMEM ? rc : 0;
    }
    ep->stats.conns_accepted++;
    ep->stats.rx_packets++;
    wzp_quic_conn_read(c, local, remote, pkt, len, now);
    return 0;
}

int wzp_quic_endpoint_feed(wzp_quic_endpoint *ep, const wzp_addr *local, const wzp_addr *remote,
                           const uint8_t *pkt, size_t len, wzp_ts now)
{
    if (!ep || !local || !remote || (!pkt && len))
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
    if (!c)
        return accept_new(ep, local, remote, pkt, len, now);
    if (c->state >= CONN_CLOSING) {
        ep->stats.rx_closed_conn++;
        wzp_quic_conn_read(c, local, remote, pkt, len, now); /* may re-send our close */
        return 0;
    }
    ep->stats.rx_packets++;
    wzp_quic_conn_read(c, local, remote, pkt, len, now);
    return 0;
}

wzp_quic_conn *wzp_quic_endpoint_lookup(const wzp_quic_endpoint *ep, const uint8_t *pkt, size_t len)
{
    if (!ep || !pkt || wzp_pkt_classify(pkt, len) != WZP_PKT_QUIC)
        return NULL;
    ngtcp2_version_cid vc;
    if (ngtcp2_pkt_decode_version_cid(&vc, pkt, len, WZP_QUIC_CIDLEN) != 0 || vc.dcidlen == 0)
        return NULL;
    return wzp_hmap_get(&ep->cids, vc.dcid, vc.dcidlen);
}

/* Frees connections whose closing or draining period is over. */
static void reap(wzp_quic_endpoint *ep, wzp_ts now)
{
    wzp_quic_conn *c = ep->conns;
    while (c) {
        wzp_quic_conn *next = c->next;
        if (wzp_quic_conn_is_dead(c, now))
            wzp_quic_conn_free(c);
        c = next;
    }
}

int wzp_quic_endpoint_flush(wzp_quic_endpoint *ep, wzp_ts now, wzp_quic_send_fn send,
                            void *send_user)
{
    int count = 0;
    for (wzp_quic_conn *c = ep->conns; c; c = c->next)
        count += wzp_quic_conn_write(c, now, send, send_user);
    return count;
}

wzp_ts wzp_quic_endpoint_expiry(const wzp_quic_endpoint *ep)
{
    wzp_ts t = WZP_TS_NEVER;
    for (const wzp_quic_conn *c = ep->conns; c; c = c->next)
        t = wzp_ts_min(t, wzp_quic_conn_expiry(c));
    return t;
}

void wzp_quic_endpoint_handle_expiry(wzp_quic_endpoint *ep, wzp_ts now)
{
    for (wzp_quic_conn *c = ep->conns; c; c = c->next)
        wzp_quic_conn_handle_expiry(c, now);
    reap(ep, now);
}
