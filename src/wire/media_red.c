#include "wire/media_red.h"

#include <string.h>

#include <wzp/wzp.h>

int wzp_media_red_encode(const wzp_media_red *r, uint8_t *out, size_t cap)
{
    if (!r || !out || r->count < 1 || r->count > WZP_MEDIA_RED_MAX)
        return WZP_ERR_INVALID;
    size_t need = 1 + 3 * (size_t)r->count + r->primary_len;
    for (unsigned i = 0; i < r->count; i++) {
        const wzp_media_red_block *b = &r->block[i];
        if (b->distance < 1 || b->distance > WZP_MEDIA_RED_REACH || b->len > UINT16_MAX)
            return WZP_ERR_INVALID;
        need += b->len;
    }
    if (need > cap)
        return WZP_ERR_TOO_BIG;
    size_t o = 0;
    out[o++] = (uint8_t)r->count;
    for (unsigned i = 0; i < r->count; i++) {
        out[o++] = (uint8_t)r->block[i].distance;
        out[o++] = (uint8_t)(r->block[i].len >> 8);
        out[o++] = (uint8_t)r->block[i].len;
    }
    for (unsigned i = 0; i < r->count; i++) {
        if (r->block[i].len)
            memcpy(out + o, r->block[i].data, r->block[i].len);
        o += r->block[i].len;
    }
    if (r->primary_len)
        memcpy(out + o, r->primary, r->primary_len);
    return (int)need;
}

int wzp_media_red_decode(wzp_media_red *r, const uint8_t *buf, size_t len)
{
    if (!r || !buf || len < 1)
        return WZP_ERR_MALFORMED;
    memset(r, 0, sizeof(*r));
    unsigned count = buf[0];
    if (count < 1 || count > WZP_MEDIA_RED_MAX || len < 1 + 3 * (size_t)count)
        return WZP_ERR_MALFORMED;
    size_t o = 1 + 3 * (size_t)count;
    for (unsigned i = 0; i < count; i++) {
        const uint8_t *h = buf + 1 + 3 * i;
        size_t bl = (size_t)h[1] << 8 | h[2];
        if (h[0] < 1 || h[0] > WZP_MEDIA_RED_REACH || bl > len - o)
            return WZP_ERR_MALFORMED;
        r->block[i] = (wzp_media_red_block){.distance = h[0], .data = buf + o, .len = bl};
        o += bl;
    }
    r->count = count;
    r->primary = buf + o;
    r->primary_len = len - o;
    return 0;
}
