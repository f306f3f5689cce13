#include "relay/cluster_msg.h"

#include <gnutls/crypto.h>
#include <string.h>

#include <wzp/wzp.h>

#include "common/bytes.h"

/* Layout: magic, kind, from, to, ts_ms, call_id, fp, alias (u8 length + bytes), link_chan,
 * address (u8 family 0/4/6, ip, u16 port), signal message (u16 length + bytes), HMAC tag. */
static const uint8_t MAGIC[4] = {'W', 'Z', 'C', '1'};
#define TAG_LEN 32

static bool kind_valid(int k)
{
    return k >= WZP_CLUSTER_OFFER && k <= WZP_CLUSTER_REATTACH_ACK;
}

/* The signal message type each kind carries. */
static wzp_sig_type kind_sig(wzp_cluster_kind k)
{
    switch (k) {
    case WZP_CLUSTER_OFFER:
        return WZP_SIG_OFFER;
    case WZP_CLUSTER_RINGING:
        return WZP_SIG_RINGING;
    case WZP_CLUSTER_ACCEPT:
        return WZP_SIG_ACCEPT;
    case WZP_CLUSTER_UPDATE:
        return WZP_SIG_CANDIDATES_UPDATE;
    case WZP_CLUSTER_END:
        return WZP_SIG_CALL_ENDED;
    case WZP_CLUSTER_REATTACH:
        return WZP_SIG_REATTACH;
    default:
        return WZP_SIG_NONE;
    }
}

static int tag(const wzp_cluster_key *key, const uint8_t *buf, size_t len, uint8_t out[TAG_LEN])
{
    return gnutls_hmac_fast(GNUTLS_MAC_SHA256, key->k, key->len, buf, len, out) == 0
               ? 0
               : WZP_ERR_INTERNAL;
}

int wzp_cluster_msg_encode(const wzp_cluster_msg *m, const wzp_cluster_key *key, uint8_t *out,
                           size_t cap)
{
    if (!kind_valid(m->kind) || key->len < WZP_CLUSTER_KEY_MIN || key->len > WZP_CLUSTER_KEY_MAX ||
        (m->alias[0] && !wzp_sig_alias_valid(m->alias)) || m->sig.type != kind_sig(m->kind))
        return WZP_ERR_INVALID;
    uint8_t sig[WZP_SIG_MAX_SIZE];
    int siglen = 0;
    if (m->sig.type != WZP_SIG_NONE && (siglen = wzp_sig_encode(&m->sig, sig, sizeof(sig))) < 0)
        return siglen;
    wzp_wr w = wzp_wr_init(out, cap);
    wzp_wr_bytes(&w, MAGIC, sizeof(MAGIC));
    wzp_wr_u8(&w, (uint8_t)m->kind);
    wzp_wr_bytes(&w, m->from, WZP_CLUSTER_ID_LEN);
    wzp_wr_bytes(&w, m->to, WZP_CLUSTER_ID_LEN);
    wzp_wr_u64(&w, m->ts_ms);
    wzp_wr_bytes(&w, m->call_id, WZP_SIG_CALL_ID_LEN);
    wzp_wr_bytes(&w, m->fp, WZP_SIG_FP_LEN);
    size_t alen = strlen(m->alias);
    wzp_wr_u8(&w, (uint8_t)alen);
    wzp_wr_bytes(&w, m->alias, alen);
    wzp_wr_u32(&w, m->link_chan);
    size_t iplen = 0;
    const uint8_t *ip = m->fwd_addr.len ? wzp_addr_ip(&m->fwd_addr, &iplen) : NULL;
    if (m->fwd_addr.len && (!ip || (iplen != 4 && iplen != 16)))
        return WZP_ERR_INVALID;
    wzp_wr_u8(&w, (uint8_t)(ip ? (iplen == 4 ? 4 : 6) : 0));
    if (ip) {
        wzp_wr_bytes(&w, ip, iplen);
        wzp_wr_u16(&w, wzp_addr_port(&m->fwd_addr));
    }
    wzp_wr_u16(&w, (uint16_t)siglen);
    wzp_wr_bytes(&w, sig, (size_t)siglen);
    if (w.err || cap - w.off < TAG_LEN)
        return WZP_ERR_TOO_BIG;
    int rv = tag(key, out, w.off, out + w.off);
    return rv < 0 ? rv : (int)(w.off + TAG_LEN);
}

int wzp_cluster_msg_decode(const uint8_t *buf, size_t len, const wzp_cluster_key *key,
                           const uint8_t self[WZP_CLUSTER_ID_LEN], uint64_t now_ms,
                           wzp_cluster_msg *out)
{
    memset(out, 0, sizeof(*out));
    if (len < TAG_LEN + sizeof(MAGIC) || len > WZP_CLUSTER_MAX_SIZE ||
        memcmp(buf, MAGIC, sizeof(MAGIC)) != 0)
        return WZP_ERR_MALFORMED;
    /* The tag first: nothing unauthenticated reaches the parsers below. */
    uint8_t want[TAG_LEN];
    if (tag(key, buf, len - TAG_LEN, want) < 0)
        return WZP_ERR_INTERNAL;
    if (!wzp_bytes_equal_ct(want, buf + len - TAG_LEN, TAG_LEN))
        return WZP_ERR_PROTOCOL;
    wzp_rd r = wzp_rd_init(buf + sizeof(MAGIC), len - TAG_LEN - sizeof(MAGIC));
    int kind = wzp_rd_u8(&r);
    wzp_rd_copy(&r, out->from, WZP_CLUSTER_ID_LEN);
    wzp_rd_copy(&r, out->to, WZP_CLUSTER_ID_LEN);
    out->ts_ms = wzp_rd_u64(&r);
    wzp_rd_copy(&r, out->call_id, WZP_SIG_CALL_ID_LEN);
    wzp_rd_copy(&r, out->fp, WZP_SIG_FP_LEN);
    size_t alen = wzp_rd_u8(&r);
    if (alen > WZP_SIG_ALIAS_MAX || !wzp_rd_copy(&r, out->alias, alen))
        return WZP_ERR_MALFORMED;
    out->alias[alen] = '\0';
    out->link_chan = wzp_rd_u32(&r);
    uint8_t fam = wzp_rd_u8(&r);
    if (fam == 4 || fam == 6) {
        uint8_t ip[16];
        size_t iplen = fam == 4 ? 4 : 16;
        wzp_rd_copy(&r, ip, iplen);
        uint16_t port = wzp_rd_u16(&r);
        if (r.err || port == 0 ||
            wzp_addr_from_ip(&out->fwd_addr, fam == 4 ? AF_INET : AF_INET6, ip, port) < 0)
            return WZP_ERR_MALFORMED;
    } else if (fam != 0) {
        return WZP_ERR_MALFORMED;
    }
    size_t siglen = wzp_rd_u16(&r);
    const uint8_t *sig = wzp_rd_take(&r, siglen);
    if (r.err || wzp_rd_left(&r) != 0 || !kind_valid(kind) ||
        (alen && !wzp_sig_alias_valid(out->alias)))
        return WZP_ERR_MALFORMED;
    out->kind = (wzp_cluster_kind)kind;
    if (kind_sig(out->kind) == WZP_SIG_NONE) {
        if (siglen)
            return WZP_ERR_MALFORMED;
    } else if (wzp_sig_decode(sig, siglen, &out->sig) < 0 || out->sig.type != kind_sig(out->kind)) {
        return WZP_ERR_MALFORMED;
    }
    if (memcmp(out->to, self, WZP_CLUSTER_ID_LEN) != 0)
        return WZP_ERR_REJECTED;
    uint64_t age = now_ms > out->ts_ms ? now_ms - out->ts_ms : out->ts_ms - now_ms;
    if (age > WZP_CLUSTER_MAX_AGE_MS)
        return WZP_ERR_REJECTED;
    return 0;
}
