#include "wire/probe.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>
#include <sys/socket.h>

#include <wzp/wzp.h>

#include "common/bytes.h"
#include "wire/mac.h"

#define HDR_LEN 30 /* type, flags, tag, txid, sender */

static const char tag_label[] = "wzp probe tag";

void wzp_probe_derive_tag(const uint8_t key[WZP_PROBE_KEY_LEN], uint8_t tag[WZP_PROBE_TAG_LEN])
{
    uint8_t mac[32];
    if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, WZP_PROBE_KEY_LEN, tag_label,
                         sizeof(tag_label) - 1, mac) != 0)
        memset(mac, 0, sizeof(mac)); /* cannot happen with SHA-256; keeps the tag defined */
    memcpy(tag, mac, WZP_PROBE_TAG_LEN);
}

static int compute_mac(const uint8_t key[WZP_PROBE_KEY_LEN], const uint8_t *buf, size_t len,
                       uint8_t out[WZP_PROBE_MAC_LEN])
{
    return wzp_mac_trunc(key, WZP_PROBE_KEY_LEN, buf, len, out, WZP_PROBE_MAC_LEN);
}

/* The mask for the observed address: txid then tag, 2 bytes for the port + up to 16 for IPv6. */
static void addr_mask(const uint8_t *txid, const uint8_t *tag, uint8_t mask[18])
{
    uint8_t m[WZP_PROBE_TXID_LEN + WZP_PROBE_TAG_LEN];
    memcpy(m, txid, WZP_PROBE_TXID_LEN);
    memcpy(m + WZP_PROBE_TXID_LEN, tag, WZP_PROBE_TAG_LEN);
    memcpy(mask, m, 18);
}

static size_t expected_len(uint8_t type, uint8_t family)
{
    if (type == WZP_PROBE_REQUEST)
        return WZP_PROBE_REQUEST_LEN;
    if (family == 4)
        return HDR_LEN + 1 + 2 + 4 + WZP_PROBE_MAC_LEN;
    if (family == 6)
        return HDR_LEN + 1 + 2 + 16 + WZP_PROBE_MAC_LEN;
    return 0;
}

int wzp_probe_peek_tag(const uint8_t *buf, size_t len, uint8_t tag[WZP_PROBE_TAG_LEN])
{
    wzp_rd r = wzp_rd_init(buf, len);
    uint8_t type = wzp_rd_u8(&r);
    (void)wzp_rd_u8(&r);
    wzp_rd_copy(&r, tag, WZP_PROBE_TAG_LEN);
    if (r.err || (type != WZP_PROBE_REQUEST && type != WZP_PROBE_RESPONSE) ||
        len < WZP_PROBE_REQUEST_LEN || len > WZP_PROBE_MAX_LEN)
        return WZP_ERR_MALFORMED;
    return 0;
}

int wzp_probe_encode(const wzp_probe *p, const uint8_t key[WZP_PROBE_KEY_LEN], uint8_t *buf,
                     size_t cap)
{
    uint8_t family = 0;
    if (p->type == WZP_PROBE_RESPONSE) {
        int f = wzp_addr_family(&p->observed);
        if (f == AF_INET)
            family = 4;
        else if (f == AF_INET6)
            family = 6;
        else
            return WZP_ERR_INVALID;
    } else if (p->type != WZP_PROBE_REQUEST) {
        return WZP_ERR_INVALID;
    }
    if (cap < expected_len(p->type, family))
        return WZP_ERR_TOO_BIG;

    wzp_wr w = wzp_wr_init(buf, cap);
    wzp_wr_u8(&w, p->type);
    wzp_wr_u8(&w, p->flags);
    wzp_wr_bytes(&w, p->tag, WZP_PROBE_TAG_LEN);
    wzp_wr_bytes(&w, p->txid, WZP_PROBE_TXID_LEN);
    wzp_wr_bytes(&w, p->sender, WZP_PROBE_SENDER_LEN);
    if (family) {
        uint8_t mask[18];
        size_t iplen;
        const uint8_t *ip = wzp_addr_ip(&p->observed, &iplen);
        addr_mask(p->txid, p->tag, mask);
        uint16_t port = wzp_addr_port(&p->observed);
        wzp_wr_u8(&w, family);
        wzp_wr_u16(&w, (uint16_t)(port ^ ((mask[0] << 8) | mask[1])));
        uint8_t *q = wzp_wr_put(&w, iplen);
        if (q)
            for (size_t i = 0; i < iplen; i++)
                q[i] = ip[i] ^ mask[2 + i];
    }
    uint8_t *mac = wzp_wr_put(&w, WZP_PROBE_MAC_LEN);
    if (w.err || !mac)
        return WZP_ERR_TOO_BIG;
    int rc = compute_mac(key, buf, w.off - WZP_PROBE_MAC_LEN, mac);
    if (rc < 0)
        return rc;
    return (int)w.off;
}

int wzp_probe_decode(wzp_probe *p, const uint8_t key[WZP_PROBE_KEY_LEN],
                     const uint8_t expect_tag[WZP_PROBE_TAG_LEN], const uint8_t *buf, size_t len)
{
    wzp_probe d;
    memset(&d, 0, sizeof(d));
    wzp_rd r = wzp_rd_init(buf, len);
    d.type = wzp_rd_u8(&r);
    d.flags = wzp_rd_u8(&r);
    wzp_rd_copy(&r, d.tag, WZP_PROBE_TAG_LEN);
    wzp_rd_copy(&r, d.txid, WZP_PROBE_TXID_LEN);
    wzp_rd_copy(&r, d.sender, WZP_PROBE_SENDER_LEN);
    if (r.err || (d.type != WZP_PROBE_REQUEST && d.type != WZP_PROBE_RESPONSE))
        return WZP_ERR_MALFORMED;

    uint8_t family = 0, ipbuf[16];
    uint16_t port = 0;
    size_t iplen = 0;
    if (d.type == WZP_PROBE_RESPONSE) {
        uint8_t mask[18];
        addr_mask(d.txid, d.tag, mask);
        family = wzp_rd_u8(&r);
        iplen = family == 4 ? 4 : family == 6 ? 16 : 0;
        if (r.err || !iplen)
            return WZP_ERR_MALFORMED;
        port = (uint16_t)(wzp_rd_u16(&r) ^ ((mask[0] << 8) | mask[1]));
        const uint8_t *ip = wzp_rd_take(&r, iplen);
        if (!ip)
            return WZP_ERR_MALFORMED;
        for (size_t i = 0; i < iplen; i++)
            ipbuf[i] = ip[i] ^ mask[2 + i];
    }
    size_t signed_len = r.off;
    const uint8_t *mac = wzp_rd_take(&r, WZP_PROBE_MAC_LEN);
    if (!mac || wzp_rd_left(&r) != 0 || len != expected_len(d.type, family))
        return WZP_ERR_MALFORMED;
    if (expect_tag && memcmp(expect_tag, d.tag, WZP_PROBE_TAG_LEN) != 0)
        return WZP_ERR_NOT_FOUND;

    uint8_t want[WZP_PROBE_MAC_LEN];
    if (compute_mac(key, buf, signed_len, want) < 0)
        return WZP_ERR_INTERNAL;
    if (gnutls_memcmp(want, mac, WZP_PROBE_MAC_LEN) != 0)
        return WZP_ERR_PROTOCOL;

    if (iplen && wzp_addr_from_ip(&d.observed, family == 4 ? AF_INET : AF_INET6, ipbuf, port) < 0)
        return WZP_ERR_MALFORMED;
    *p = d;
    return 0;
}
