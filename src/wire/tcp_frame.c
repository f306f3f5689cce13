#include "wire/tcp_frame.h"

#include <string.h>

#include <wzp/wzp.h>

int wzp_tcp_frame_header(uint8_t hdr[WZP_TCP_FRAME_HDR], size_t len)
{
    if (len > WZP_TCP_FRAME_MAX)
        return WZP_ERR_INVALID;
    hdr[0] = (uint8_t)(len >> 8);
    hdr[1] = (uint8_t)len;
    return 0;
}

void wzp_tcp_deframer_init(wzp_tcp_deframer *d)
{
    d->have = 0;
    d->need = 0;
}

int wzp_tcp_deframe(wzp_tcp_deframer *d, const uint8_t *in, size_t len, size_t *used,
                    const uint8_t **rec, size_t *rec_len)
{
    size_t off = 0;
    *used = 0;
    while (off < len) {
        size_t want = d->need ? d->need : WZP_TCP_FRAME_HDR;
        size_t take = want - d->have;
        if (take > len - off)
            take = len - off;
        memcpy(d->buf + d->have, in + off, take);
        d->have += take;
        off += take;
        if (d->have < want)
            break;
        if (!d->need) {
            size_t body = (size_t)d->buf[0] << 8 | d->buf[1];
            if (body > WZP_TCP_FRAME_MAX) {
                *used = off;
                return WZP_ERR_MALFORMED;
            }
            d->need = WZP_TCP_FRAME_HDR + body;
            if (body)
                continue;
        }
        /* A complete record (possibly empty). */
        size_t body = d->need - WZP_TCP_FRAME_HDR;
        d->have = 0;
        d->need = 0;
        if (body) {
            *used = off;
            *rec = d->buf + WZP_TCP_FRAME_HDR;
            *rec_len = body;
            return 1;
        }
    }
    *used = off;
    return 0;
}
