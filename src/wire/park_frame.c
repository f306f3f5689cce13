#include "wire/park_frame.h"

#include <string.h>

#include <wzp/wzp.h>

#include "common/bytes.h"
#include "wire/mac.h"

#define SIGNED_LEN (WZP_PARK_FRAME_LEN - WZP_PARK_MAC_LEN)

static bool header_ok(uint8_t type, uint8_t flags)
{
    if (type == WZP_PARK_FRAME_WAKE)
        return (flags & ~WZP_PARK_REHOME) == 0;
    if (type == WZP_PARK_FRAME_PING)
        return (flags & ~WZP_PARK_BYE) == 0;
    return type == WZP_PARK_FRAME_PONG && (flags & ~WZP_PARK_GONE) == 0;
}

static int frame_mac(const uint8_t key[WZP_PARK_KEY_LEN], const uint8_t *buf,
                     uint8_t mac[WZP_PARK_MAC_LEN])
{
    return wzp_mac_trunc(key, WZP_PARK_KEY_LEN, buf, SIGNED_LEN, mac, WZP_PARK_MAC_LEN);
}

int wzp_park_frame_encode(uint8_t out[WZP_PARK_FRAME_LEN], const wzp_park_frame *f,
                          const uint8_t key[WZP_PARK_KEY_LEN])
{
    if (!header_ok(f->type, f->flags))
        return WZP_ERR_INVALID;
    wzp_wr w = wzp_wr_init(out, WZP_PARK_FRAME_LEN);
    wzp_wr_u8(&w, f->type);
    wzp_wr_bytes(&w, f->park_id, WZP_PARK_ID_LEN);
    wzp_wr_u64(&w, f->seq);
    wzp_wr_u8(&w, f->flags);
    if (w.err || w.off != SIGNED_LEN)
        return WZP_ERR_INTERNAL;
    return frame_mac(key, out, out + SIGNED_LEN);
}

int wzp_park_frame_peek(wzp_park_frame *f, const uint8_t *buf, size_t len)
{
    memset(f, 0, sizeof(*f));
    if (len != WZP_PARK_FRAME_LEN)
        return WZP_ERR_MALFORMED;
    wzp_rd r = wzp_rd_init(buf, len);
    f->type = wzp_rd_u8(&r);
    wzp_rd_copy(&r, f->park_id, WZP_PARK_ID_LEN);
    f->seq = wzp_rd_u64(&r);
    f->flags = wzp_rd_u8(&r);
    if (r.err || !header_ok(f->type, f->flags)) {
        memset(f, 0, sizeof(*f));
        return WZP_ERR_MALFORMED;
    }
    return 0;
}

bool wzp_park_frame_mac_ok(const uint8_t buf[WZP_PARK_FRAME_LEN],
                           const uint8_t key[WZP_PARK_KEY_LEN])
{
    uint8_t mac[WZP_PARK_MAC_LEN];
    return frame_mac(key, buf, mac) == 0 &&
           wzp_bytes_equal_ct(mac, buf + SIGNED_LEN, WZP_PARK_MAC_LEN);
}

bool wzp_park_frame_verify(const uint8_t *buf, size_t len, const uint8_t key[WZP_PARK_KEY_LEN])
{
    wzp_park_frame f;
    return wzp_park_frame_peek(&f, buf, len) == 0 && wzp_park_frame_mac_ok(buf, key);
}
