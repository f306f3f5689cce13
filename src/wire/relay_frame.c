#include "wire/relay_frame.h"

#include <wzp/wzp.h>

#include "common/bytes.h"

static int type_known(uint8_t type)
{
    return type == WZP_RELAY_FRAME_DATA || type == WZP_RELAY_FRAME_KEEPALIVE ||
           type == WZP_RELAY_FRAME_KEEPALIVE_ACK;
}

int wzp_relay_frame_decode(wzp_relay_frame *f, const uint8_t *buf, size_t len)
{
    wzp_rd r = wzp_rd_init(buf, len);
    f->type = wzp_rd_u8(&r);
    f->channel = wzp_rd_u32(&r);
    if (r.err || !type_known(f->type) || f->channel == 0) {
        f->payload = NULL;
        f->payload_len = 0;
        return WZP_ERR_MALFORMED;
    }
    f->payload_len = wzp_rd_left(&r);
    f->payload = wzp_rd_take(&r, f->payload_len);
    return 0;
}

int wzp_relay_frame_encode_hdr(uint8_t *out, size_t cap, uint8_t type, uint32_t channel)
{
    if (!type_known(type) || channel == 0)
        return WZP_ERR_INVALID;
    wzp_wr w = wzp_wr_init(out, cap);
    wzp_wr_u8(&w, type);
    wzp_wr_u32(&w, channel);
    return w.err ? WZP_ERR_TOO_BIG : (int)w.off;
}

int wzp_relay_frame_encode(uint8_t *out, size_t cap, uint8_t type, uint32_t channel,
                           const uint8_t *payload, size_t payload_len)
{
    if (payload_len > (size_t)INT32_MAX - WZP_RELAY_FRAME_HDR)
        return WZP_ERR_TOO_BIG;
    int rv = wzp_relay_frame_encode_hdr(out, cap, type, channel);
    if (rv < 0)
        return rv;
    wzp_wr w = wzp_wr_init(out + rv, cap - (size_t)rv);
    wzp_wr_bytes(&w, payload, payload_len);
    return w.err ? WZP_ERR_TOO_BIG : rv + (int)w.off;
}
