#include "wire/stun.h"

#include <string.h>

#include <wzp/wzp.h>

/*
 * CRC-32 with a 16-entry (nibble) table: a few lines here instead of a zlib
 * dependency for hashing ~100-byte STUN messages, and a const table needs no
 * thread-unsafe lazy initialisation.
 */
static const uint32_t crc_nibble[16] = {
    0x00000000, 0x1DB71064, 0x3B6E20C8, 0x26D930AC, 0x76DC4190, 0x6B6B51F4, 0x4DB26158, 0x5005713C,
    0xEDB88320, 0xF00F9344, 0xD6D6A3E8, 0xCB61B38C, 0x9B64C2B0, 0x86D3D2D4, 0xA00AE278, 0xBDBDF21C,
};

uint32_t wzp_stun_crc32(const uint8_t *buf, size_t len)
{
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < len; i++) {
        crc ^= buf[i];
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0F];
        crc = (crc >> 4) ^ crc_nibble[crc & 0x0F];
    }
    return crc ^ 0xFFFFFFFFu;
}

#define FINGERPRINT_XOR 0x5354554Eu

static uint16_t be16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

bool wzp_stun_is_framed(const uint8_t *buf, size_t len)
{
    if (len < WZP_STUN_HEADER_LEN || (buf[0] & 0xC0) != 0)
        return false;
    size_t body = be16(buf + 2);
    if (body % 4 != 0 || body + WZP_STUN_HEADER_LEN != len)
        return false;
    wzp_rd r = wzp_rd_init(buf + 4, 4);
    return wzp_rd_u32(&r) == WZP_STUN_MAGIC;
}

/* The xor pad for addresses: cookie, then transaction id (RFC 8489 section 14.2). */
static void xor_pad(uint8_t pad[16], const uint8_t tid[WZP_STUN_TID_LEN])
{
    pad[0] = (uint8_t)(WZP_STUN_MAGIC >> 24);
    pad[1] = (uint8_t)(WZP_STUN_MAGIC >> 16);
    pad[2] = (uint8_t)(WZP_STUN_MAGIC >> 8);
    pad[3] = (uint8_t)WZP_STUN_MAGIC;
    memcpy(pad + 4, tid, WZP_STUN_TID_LEN);
}

static int decode_addr(wzp_addr *a, const uint8_t *val, size_t len, bool xored,
                       const uint8_t tid[WZP_STUN_TID_LEN])
{
    wzp_rd r = wzp_rd_init(val, len);
    (void)wzp_rd_u8(&r); /* reserved */
    uint8_t family = wzp_rd_u8(&r);
    uint16_t port = wzp_rd_u16(&r);
    size_t iplen = family == 0x01 ? 4 : family == 0x02 ? 16 : 0;
    uint8_t ip[16];
    if (!iplen || len != 4 + iplen || !wzp_rd_copy(&r, ip, iplen) || r.err)
        return WZP_ERR_MALFORMED;
    if (xored) {
        uint8_t pad[16];
        xor_pad(pad, tid);
        port ^= (uint16_t)(WZP_STUN_MAGIC >> 16);
        for (size_t i = 0; i < iplen; i++)
            ip[i] ^= pad[i];
    }
    return wzp_addr_from_ip(a, iplen == 4 ? AF_INET : AF_INET6, ip, port);
}

/* Attributes we understand well enough to accept without acting on them. */
static bool known_ignored(uint16_t type)
{
    switch (type) {
    case WZP_STUN_ATTR_USERNAME:
    case WZP_STUN_ATTR_REALM:
    case WZP_STUN_ATTR_NONCE:
    case WZP_STUN_ATTR_PASSWORD_ALGORITHM:
    case WZP_STUN_ATTR_USERHASH:
        return true;
    default:
        return false;
    }
}

static int decode_attr(wzp_stun_msg *m, uint16_t type, const uint8_t *val, size_t len)
{
    switch (type) {
    case WZP_STUN_ATTR_XOR_MAPPED_ADDRESS:
        if (m->has_xor_mapped) /* only the first occurrence counts */
            return 0;
        m->has_xor_mapped = true;
        return decode_addr(&m->xor_mapped, val, len, true, m->tid);
    case WZP_STUN_ATTR_MAPPED_ADDRESS:
        if (m->has_mapped)
            return 0;
        m->has_mapped = true;
        return decode_addr(&m->mapped, val, len, false, m->tid);
    case WZP_STUN_ATTR_ERROR_CODE: {
        if (m->has_error)
            return 0;
        if (len < 4 || len - 4 > WZP_STUN_TEXT_MAX)
            return WZP_ERR_MALFORMED;
        unsigned cls = val[2] & 0x07, number = val[3];
        if (cls < 3 || cls > 6 || number > 99)
            return WZP_ERR_MALFORMED;
        m->has_error = true;
        m->error_code = (uint16_t)(cls * 100 + number);
        m->reason = val + 4;
        m->reason_len = len - 4;
        return 0;
    }
    case WZP_STUN_ATTR_UNKNOWN_ATTRIBUTES:
        if (len % 2 != 0)
            return WZP_ERR_MALFORMED;
        for (size_t i = 0; i + 1 < len && m->n_listed_unknown < WZP_STUN_MAX_UNKNOWN; i += 2)
            m->listed_unknown[m->n_listed_unknown++] = be16(val + i);
        return 0;
    case WZP_STUN_ATTR_SOFTWARE:
        if (len > WZP_STUN_TEXT_MAX)
            return WZP_ERR_MALFORMED;
        if (!m->software) {
            m->software = val;
            m->software_len = len;
        }
        return 0;
    case WZP_STUN_ATTR_MESSAGE_INTEGRITY:
    case WZP_STUN_ATTR_MESSAGE_INTEGRITY_256:
        m->has_integrity = true;
        return 0;
    case WZP_STUN_ATTR_CHANGE_REQUEST:
        if (len != 4)
            return WZP_ERR_MALFORMED;
        if (!m->has_change) {
            m->has_change = true;
            m->change = (uint32_t)be16(val) << 16 | be16(val + 2);
        }
        return 0;
    case WZP_STUN_ATTR_OTHER_ADDRESS:
        if (m->has_other)
            return 0;
        m->has_other = true;
        return decode_addr(&m->other, val, len, false, m->tid);
    default:
        if (known_ignored(type) || type >= 0x8000)
            return 0; /* comprehension-optional: skipped */
        if (m->n_unknown < WZP_STUN_MAX_UNKNOWN)
            m->unknown[m->n_unknown++] = type;
        return 0;
    }
}

int wzp_stun_decode(wzp_stun_msg *m, const uint8_t *buf, size_t len)
{
    memset(m, 0, sizeof(*m));
    if (!wzp_stun_is_framed(buf, len))
        return WZP_ERR_MALFORMED;
    wzp_rd r = wzp_rd_init(buf, len);
    m->type = wzp_rd_u16(&r);
    (void)wzp_rd_u16(&r); /* length: checked by wzp_stun_is_framed */
    (void)wzp_rd_u32(&r); /* cookie: likewise */
    wzp_rd_copy(&r, m->tid, WZP_STUN_TID_LEN);

    while (wzp_rd_left(&r) > 0) {
        /* FINGERPRINT must be the last attribute. */
        if (m->has_fingerprint)
            return WZP_ERR_MALFORMED;
        size_t at = r.off;
        uint16_t type = wzp_rd_u16(&r);
        uint16_t alen = wzp_rd_u16(&r);
        const uint8_t *val = wzp_rd_take(&r, alen);
        wzp_rd_take(&r, (4 - alen % 4) % 4); /* padding, content ignored */
        if (r.err)
            return WZP_ERR_MALFORMED;
        if (type == WZP_STUN_ATTR_FINGERPRINT) {
            wzp_rd fr = wzp_rd_init(val, alen);
            uint32_t want = wzp_rd_u32(&fr);
            if (alen != 4 || (wzp_stun_crc32(buf, at) ^ FINGERPRINT_XOR) != want)
                return WZP_ERR_MALFORMED;
            m->has_fingerprint = true;
            continue;
        }
        /* After MESSAGE-INTEGRITY only FINGERPRINT may follow; anything else is ignored. */
        if (m->has_integrity)
            continue;
        if (decode_attr(m, type, val, alen) < 0)
            return WZP_ERR_MALFORMED;
    }
    return r.err ? WZP_ERR_MALFORMED : 0;
}

/* --- encoding ----------------------------------------------------------------------- */

void wzp_stun_begin(wzp_stun_wr *sw, uint8_t *buf, size_t cap, uint16_t type,
                    const uint8_t tid[WZP_STUN_TID_LEN])
{
    sw->w = wzp_wr_init(buf, cap);
    memcpy(sw->tid, tid, WZP_STUN_TID_LEN);
    wzp_wr_u16(&sw->w, type & 0x3FFFu);
    wzp_wr_u16(&sw->w, 0); /* length, fixed up by finish */
    wzp_wr_u32(&sw->w, WZP_STUN_MAGIC);
    wzp_wr_bytes(&sw->w, tid, WZP_STUN_TID_LEN);
}

void wzp_stun_put_attr(wzp_stun_wr *sw, uint16_t type, const void *value, size_t len)
{
    static const uint8_t zeros[3];
    if (len > 0xFFFF - 3) {
        sw->w.err = true;
        return;
    }
    wzp_wr_u16(&sw->w, type);
    wzp_wr_u16(&sw->w, (uint16_t)len);
    wzp_wr_bytes(&sw->w, value, len);
    wzp_wr_bytes(&sw->w, zeros, (4 - len % 4) % 4);
}

void wzp_stun_put_addr(wzp_stun_wr *sw, const wzp_addr *a, bool xor_encoded)
{
    wzp_stun_put_addr_attr(
        sw, xor_encoded ? WZP_STUN_ATTR_XOR_MAPPED_ADDRESS : WZP_STUN_ATTR_MAPPED_ADDRESS, a,
        xor_encoded);
}

void wzp_stun_put_addr_attr(wzp_stun_wr *sw, uint16_t type, const wzp_addr *a, bool xor_encoded)
{
    size_t iplen;
    const uint8_t *ip = wzp_addr_ip(a, &iplen);
    if (!ip) {
        sw->w.err = true;
        return;
    }
    uint8_t val[20], pad[16];
    uint16_t port = wzp_addr_port(a);
    xor_pad(pad, sw->tid);
    if (xor_encoded)
        port ^= (uint16_t)(WZP_STUN_MAGIC >> 16);
    val[0] = 0;
    val[1] = iplen == 4 ? 0x01 : 0x02;
    val[2] = (uint8_t)(port >> 8);
    val[3] = (uint8_t)port;
    for (size_t i = 0; i < iplen; i++)
        val[4 + i] = xor_encoded ? (uint8_t)(ip[i] ^ pad[i]) : ip[i];
    wzp_stun_put_attr(sw, type, val, 4 + iplen);
}

void wzp_stun_put_software(wzp_stun_wr *sw, const char *text)
{
    size_t len = strlen(text);
    if (len > WZP_STUN_TEXT_MAX)
        len = WZP_STUN_TEXT_MAX;
    wzp_stun_put_attr(sw, WZP_STUN_ATTR_SOFTWARE, text, len);
}

void wzp_stun_put_error(wzp_stun_wr *sw, uint16_t code, const char *reason)
{
    uint8_t val[4 + WZP_STUN_TEXT_MAX];
    size_t rlen = reason ? strlen(reason) : 0;
    if (code < 300 || code > 699 || rlen > WZP_STUN_TEXT_MAX) {
        sw->w.err = true;
        return;
    }
    val[0] = 0;
    val[1] = 0;
    val[2] = (uint8_t)(code / 100);
    val[3] = (uint8_t)(code % 100);
    if (rlen)
        memcpy(val + 4, reason, rlen);
    wzp_stun_put_attr(sw, WZP_STUN_ATTR_ERROR_CODE, val, 4 + rlen);
}

void wzp_stun_put_unknown_attrs(wzp_stun_wr *sw, const uint16_t *types, size_t n)
{
    uint8_t val[2 * WZP_STUN_MAX_UNKNOWN];
    if (n > WZP_STUN_MAX_UNKNOWN) {
        sw->w.err = true;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        val[2 * i] = (uint8_t)(types[i] >> 8);
        val[2 * i + 1] = (uint8_t)types[i];
    }
    wzp_stun_put_attr(sw, WZP_STUN_ATTR_UNKNOWN_ATTRIBUTES, val, 2 * n);
}

static void set_length(wzp_stun_wr *sw, size_t body)
{
    sw->w.p[2] = (uint8_t)(body >> 8);
    sw->w.p[3] = (uint8_t)body;
}

int wzp_stun_finish(wzp_stun_wr *sw, bool fingerprint)
{
    if (sw->w.err)
        return WZP_ERR_TOO_BIG;
    size_t end = sw->w.off;
    if (fingerprint) {
        /* The CRC covers the header with its length already counting FINGERPRINT itself. */
        if (sw->w.cap - end < 8)
            return WZP_ERR_TOO_BIG;
        set_length(sw, end + 8 - WZP_STUN_HEADER_LEN);
        uint32_t crc = wzp_stun_crc32(sw->w.p, end) ^ FINGERPRINT_XOR;
        wzp_wr_u16(&sw->w, WZP_STUN_ATTR_FINGERPRINT);
        wzp_wr_u16(&sw->w, 4);
        wzp_wr_u32(&sw->w, crc);
    }
    if (sw->w.err || sw->w.off - WZP_STUN_HEADER_LEN > 0xFFFF)
        return WZP_ERR_TOO_BIG;
    set_length(sw, sw->w.off - WZP_STUN_HEADER_LEN);
    return (int)sw->w.off;
}

int wzp_stun_binding_request(uint8_t *buf, size_t cap, const uint8_t tid[WZP_STUN_TID_LEN],
                             const char *software)
{
    return wzp_stun_binding_request_change(buf, cap, tid, software, 0);
}

int wzp_stun_binding_request_change(uint8_t *buf, size_t cap, const uint8_t tid[WZP_STUN_TID_LEN],
                                    const char *software, uint32_t change)
{
    wzp_stun_wr sw;
    wzp_stun_begin(&sw, buf, cap, WZP_STUN_BINDING_REQUEST, tid);
    if (change) {
        uint8_t v[4] = {(uint8_t)(change >> 24), (uint8_t)(change >> 16), (uint8_t)(change >> 8),
                        (uint8_t)change};
        wzp_stun_put_attr(&sw, WZP_STUN_ATTR_CHANGE_REQUEST, v, sizeof(v));
    }
    if (software)
        wzp_stun_put_software(&sw, software);
    return wzp_stun_finish(&sw, true);
}
