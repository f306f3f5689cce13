/*
 * Redundancy payload (media datagram payload type WZP_MEDIA_PT_OPUS_RED):
 * the frame's own Opus packet plus copies of up to WZP_MEDIA_RED_MAX earlier
 * ones, so a burst of lost datagrams can be rebuilt from a later one. The
 * frame header's seq and timestamp are the primary's; a copy `d` frames back
 * is seq - d, timestamp - d * 960 (the sender only copies frames sent
 * back to back with this one, no DTX gap between). Copies may be spaced
 * (e.g. 2, 4 and 6 back): one datagram after a burst then carries frames
 * from further into it.
 *
 *   count (1 byte, 1..WZP_MEDIA_RED_MAX)
 *   count x { distance (1 byte, 1..WZP_MEDIA_RED_REACH), length (16 bit BE) }
 *   the copies' bytes in that order, then the primary packet (the rest)
 */
#ifndef WZP_WIRE_MEDIA_RED_H
#define WZP_WIRE_MEDIA_RED_H

#include <stddef.h>
#include <stdint.h>

#define WZP_MEDIA_PT_OPUS_RED 2
#define WZP_MEDIA_RED_MAX     3 /* copies in one datagram */
#define WZP_MEDIA_RED_REACH   6 /* farthest copy, frames back */

typedef struct wzp_media_red_block {
    unsigned distance; /* frames back */
    const uint8_t *data;
    size_t len;
} wzp_media_red_block;

typedef struct wzp_media_red {
    unsigned count;
    wzp_media_red_block block[WZP_MEDIA_RED_MAX];
    const uint8_t *primary;
    size_t primary_len;
} wzp_media_red;

/* Writes the payload into out. Returns its length, WZP_ERR_INVALID for a bad
 * count or distance, WZP_ERR_TOO_BIG if it does not fit cap. */
int wzp_media_red_encode(const wzp_media_red *r, uint8_t *out, size_t cap);
/* Parses a payload; the pointers alias buf. 0 or WZP_ERR_MALFORMED. */
int wzp_media_red_decode(wzp_media_red *r, const uint8_t *buf, size_t len);

#endif
