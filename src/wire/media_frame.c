#include "wire/media_frame.h"

#include <wzp/wzp.h>

#include "common/bytes.h"

int wzp_media_frame_encode(const wzp_media_frame *f, uint8_t *out, size_t cap)
{
    if (!f || (!out && cap) || f->version > 15 || f->payload_type > 15)
        return WZP_ERR_INVALID;
    if (f->payload_len > WZP_MEDIA_MAX_PAYLOAD)
        return WZP_ERR_TOO_BIG;
    if (f->payload_len && !f->payload)
        return WZP_ERR_INVALID;
    wzp_wr w = wzp_wr_init(out, cap);
    wzp_wr_u8(&w, (uint8_t)(f->version << 4 | f->payload_type));
    wzp_wr_u8(&w, f->flags);
    wzp_wr_u16(&w, f->seq);
    wzp_wr_u32(&w, f->timestamp);
    wzp_wr_bytes(&w, f->payload, f->payload_len);
    if (w.err)
        return WZP_ERR_TOO_BIG;
    return (int)w.off;
}

int wzp_media_frame_decode(wzp_media_frame *f, const uint8_t *buf, size_t len)
{
    if (!f || (!buf && len))
        return WZP_ERR_INVALID;
    wzp_rd r = wzp_rd_init(buf, len);
    uint8_t vt = wzp_rd_u8(&r);
    f->version = vt >> 4;
    f->payload_type = vt & 0x0f;
    f->flags = wzp_rd_u8(&r);
    f->seq = wzp_rd_u16(&r);
    f->timestamp = wzp_rd_u32(&r);
    if (r.err || f->version != WZP_MEDIA_VERSION)
        return WZP_ERR_MALFORMED;
    f->payload_len = wzp_rd_left(&r);
    if (f->payload_len > WZP_MEDIA_MAX_PAYLOAD)
        return WZP_ERR_TOO_BIG;
    f->payload = f->payload_len ? wzp_rd_take(&r, f->payload_len) : NULL;
    return 0;
}
