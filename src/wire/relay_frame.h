/*
 * Relay frames: the small header a peer puts in front of an (already
 * end-to-end encrypted) packet it wants the relay to forward.
 *
 *    0        1        2        3        4
 *   +--------+--------+--------+--------+--------+----------------
 *   |  type  |          channel id (u32, BE)     | payload ...
 *   +--------+--------+--------+--------+--------+----------------
 *
 * type (0x80-0x8f, see src/wire/demux.h):
 *   0x80 DATA       peer -> relay: forward payload to my partner;
 *                   relay -> peer: payload from the partner of this channel.
 *                   The relay rewrites only the channel id (the receiver's own).
 *   0x81 KEEPALIVE  peer -> relay: refreshes the channel's idle timer and the
 *                   NAT mapping; payload (e.g. a nonce) is ignored.
 *   0x82 KEEPALIVE_ACK  relay -> peer: the keep-alive echoed back, same length
 *                   or shorter (never more bytes out than in).
 * Other types in the range are reserved and dropped as malformed.
 *
 * The header is fixed at 5 bytes so the relay's in-place rewrite can never
 * grow a packet (no amplification).
 */
#ifndef WZP_WIRE_RELAY_FRAME_H
#define WZP_WIRE_RELAY_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define WZP_RELAY_FRAME_DATA          0x80
#define WZP_RELAY_FRAME_KEEPALIVE     0x81
#define WZP_RELAY_FRAME_KEEPALIVE_ACK 0x82

#define WZP_RELAY_FRAME_HDR 5

typedef struct wzp_relay_frame {
    uint8_t type;
    uint32_t channel;
    const uint8_t *payload; /* points into the decoded buffer */
    size_t payload_len;
} wzp_relay_frame;

/*
 * Decodes a frame. WZP_ERR_MALFORMED for a short buffer, a type outside the
 * defined ones, or channel id 0 (never allocated).
 */
int wzp_relay_frame_decode(wzp_relay_frame *f, const uint8_t *buf, size_t len);

/*
 * Writes header + payload into out (cap bytes). Returns the length written,
 * WZP_ERR_TOO_BIG when it does not fit, WZP_ERR_INVALID for a bad type or
 * channel 0. payload may be NULL when payload_len is 0.
 */
int wzp_relay_frame_encode(uint8_t *out, size_t cap, uint8_t type, uint32_t channel,
                           const uint8_t *payload, size_t payload_len);

/* Writes just the 5-byte header (for callers that place the payload themselves). */
int wzp_relay_frame_encode_hdr(uint8_t *out, size_t cap, uint8_t type, uint32_t channel);

/* Rewrites the channel id (and type) of a frame in place; len must be >= the header. */
static inline void wzp_relay_frame_rewrite(uint8_t *buf, uint8_t type, uint32_t channel)
{
    buf[0] = type;
    buf[1] = (uint8_t)(channel >> 24);
    buf[2] = (uint8_t)(channel >> 16);
    buf[3] = (uint8_t)(channel >> 8);
    buf[4] = (uint8_t)channel;
}

#endif
