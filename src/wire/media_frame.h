/*
 * Media datagram: the payload of one QUIC DATAGRAM frame carrying one 20 ms
 * Opus frame. Fixed 8-byte big-endian header, then the codec payload:
 *
 *   0      1      2      3      4      5      6      7
 *   +------+------+------+------+------+------+------+------+----------
 *   | v|pt |flags |   seq (16)  |       timestamp (32)      | payload...
 *   +------+------+------+------+------+------+------+------+----------
 *
 *   v|pt   high nibble version (1), low nibble payload type (1 = Opus)
 *   flags  WZP_MEDIA_F_*; unknown bits are carried, not rejected
 *   seq    +1 per datagram sent (wraps; receivers extend it), counts loss
 *   ts     media time of the first sample, 48 kHz units (wraps; receivers
 *          extend it); a jump larger than one frame with consecutive seq is
 *          silence the sender did not transmit (DTX), not loss
 *
 * RTP-like, but smaller: QUIC already authenticates, encrypts and
 * identifies the stream, so SSRC, CSRC and padding have no job here.
 */
#ifndef WZP_WIRE_MEDIA_FRAME_H
#define WZP_WIRE_MEDIA_FRAME_H

#include <stddef.h>
#include <stdint.h>

#define WZP_MEDIA_VERSION    1
#define WZP_MEDIA_PT_OPUS    1
#define WZP_MEDIA_HEADER_LEN 8
/* Fits one DATAGRAM frame in a 1200-byte QUIC packet with room for overhead;
 * also bounds every playout buffer slot. Opus at voice bitrates uses < 200. */
#define WZP_MEDIA_MAX_PAYLOAD 1000
#define WZP_MEDIA_MAX_FRAME   (WZP_MEDIA_HEADER_LEN + WZP_MEDIA_MAX_PAYLOAD)

#define WZP_MEDIA_F_MARKER 0x01 /* first frame of a talkspurt (after DTX or start) */
#define WZP_MEDIA_F_DTX    0x02 /* sender enters discontinuous transmission after this */
#define WZP_MEDIA_F_MUTE   0x04 /* sender is muted: payload is silence */
#define WZP_MEDIA_F_FEC    0x08 /* payload carries in-band FEC for the previous frame */

typedef struct wzp_media_frame {
    uint8_t version;
    uint8_t payload_type;
    uint8_t flags;
    uint16_t seq;
    uint32_t timestamp;
    const uint8_t *payload; /* points into the decoded buffer; NULL when empty */
    size_t payload_len;     /* 0..WZP_MEDIA_MAX_PAYLOAD */
} wzp_media_frame;

/* Writes header + payload into out. Returns bytes written, WZP_ERR_TOO_BIG if
 * the payload exceeds WZP_MEDIA_MAX_PAYLOAD or out is too small,
 * WZP_ERR_INVALID for a bad version/type (> 15). */
int wzp_media_frame_encode(const wzp_media_frame *f, uint8_t *out, size_t cap);

/* Parses one datagram; f->payload aliases buf. WZP_ERR_MALFORMED if short or
 * an unknown version, WZP_ERR_TOO_BIG if the payload is over the limit.
 * Unknown payload types parse (the caller decides), so the version is the
 * only compatibility gate. */
int wzp_media_frame_decode(wzp_media_frame *f, const uint8_t *buf, size_t len);

#endif
