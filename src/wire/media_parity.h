/*
 * Parity payload (media datagram payload type WZP_MEDIA_PT_OPUS_PARITY): the
 * frame's own Opus packet plus the XOR of the `span` packets before it (FEC
 * across frames, RFC 5109 style, sliding: every datagram carries one). The
 * frame header's seq and timestamp are the primary's; the protected frames
 * are seq - 1 .. seq - span at timestamps 960 apart (the sender covers only
 * frames sent back to back with this one).
 *
 *   span (1 byte, 2..WZP_MEDIA_PARITY_MAX_SPAN)
 *   length XOR (16 bit BE): the XOR of the protected packets' lengths
 *   parity length (16 bit BE): the longest protected packet's
 *   parity bytes (the packets XORed, each zero-padded to that length)
 *   the primary packet (the rest)
 *
 * One parity rebuilds one missing packet of its span from the others; a
 * receiver peels: a rebuilt packet can complete an older parity's span.
 */
#ifndef WZP_WIRE_MEDIA_PARITY_H
#define WZP_WIRE_MEDIA_PARITY_H

#include <stddef.h>
#include <stdint.h>

#define WZP_MEDIA_PT_OPUS_PARITY   3
#define WZP_MEDIA_PARITY_MAX_SPAN  4
#define WZP_MEDIA_PARITY_MAX_BYTES 1000

typedef struct wzp_media_parity {
    unsigned span;         /* 2..WZP_MEDIA_PARITY_MAX_SPAN */
    uint16_t len_xor;      /* XOR of the protected packets' lengths */
    const uint8_t *parity; /* parity_len (<= WZP_MEDIA_PARITY_MAX_BYTES) bytes */
    size_t parity_len;
    const uint8_t *primary; /* the datagram's own packet */
    size_t primary_len;
} wzp_media_parity;

/* encode: the payload into out, its length returned (WZP_ERR_INVALID: span or
 * parity length out of range; WZP_ERR_TOO_BIG: over cap). decode: pointers
 * into buf, 0, or WZP_ERR_MALFORMED. */
int wzp_media_parity_encode(const wzp_media_parity *p, uint8_t *out, size_t cap);
int wzp_media_parity_decode(wzp_media_parity *p, const uint8_t *buf, size_t len);

#endif
