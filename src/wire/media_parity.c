#include "wire/media_parity.h"

#include <string.h>

#include <wzp/wzp.h>

#define HEAD 5

int wzp_media_parity_encode(const wzp_media_parity *p, uint8_t *out, size_t cap)
{
    if (!p || !out || p->span < 2 || p->span > WZP_MEDIA_PARITY_MAX_SPAN ||
        p->parity_len > WZP_MEDIA_PARITY_MAX_BYTES || (p->parity_len && !p->parity) ||
        (p->primary_len && !p->primary))
        return WZP_ERR_INVALID;
    size_t need = HEAD + p->parity_len + p->primary_len;
    if (need > cap)
        return WZP_ERR_TOO_BIG;
    out[0] = (uint8_t)p->span;
    out[1] = (uint8_t)(p->len_xor >> 8);
    out[2] = (uint8_t)p->len_xor;
    out[3] = (uint8_t)(p->parity_len >> 8);
    out[4] = (uint8_t)p->parity_len;
    if (p->parity_len)
        memcpy(out + HEAD, p->parity, p->parity_len);
    if (p->primary_len)
        memcpy(out + HEAD + p->parity_len, p->primary, p->primary_len);
    return (int)need;
}

int wzp_media_parity_decode(wzp_media_parity *p, const uint8_t *buf, size_t len)
{
    if (!p || !buf || len < HEAD)
        return WZP_ERR_MALFORMED;
    memset(p, 0, sizeof(*p));
    size_t pl = (size_t)buf[3] << 8 | buf[4];
    if (buf[0] < 2 || buf[0] > WZP_MEDIA_PARITY_MAX_SPAN || pl > WZP_MEDIA_PARITY_MAX_BYTES ||
        pl > len - HEAD)
        return WZP_ERR_MALFORMED;
    p->span = buf[0];
    p->len_xor = (uint16_t)(buf[1] << 8 | buf[2]);
    p->parity = buf + HEAD;
    p->parity_len = pl;
    p->primary = buf + HEAD + pl;
    p->primary_len = len - HEAD - pl;
    return 0;
}
