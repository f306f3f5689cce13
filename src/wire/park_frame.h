/*
 * Park frames: the datagrams that keep a parked registration (one without a
 * QUIC connection, see Park in proto/wzp_signal.proto) alive, and wake it.
 *
 *    0        1 .. 8      9 .. 16       17       18 .. 33
 *   +------+-----------+-------------+-------+------------------+
 *   | type |  park_id  |  seq (BE)   | flags |  mac (16 bytes)  |
 *   +------+-----------+-------------+-------+------------------+
 *
 * type (in the relay-frame range of src/wire/demux.h):
 *   0x83 WAKE       relay -> client: connect and register now. flags bit 0
 *                   (WZP_PARK_REHOME): the relay is stopping, register with
 *                   another one. seq rises with every WAKE of the key.
 *   0x84 PING       client -> relay: I am still here (and at this address).
 *                   seq rises with every PING of the key. flags bit 1
 *                   (WZP_PARK_BYE): I am leaving, end my registration now
 *                   (not answered).
 *   0x85 PONG       relay -> client: the PING of the same seq was heard. flags
 *                   bit 2 (WZP_PARK_GONE): but this relay holds no such park
 *                   (restarted, or the registration ended): register again.
 * mac = HMAC-SHA256(key, bytes 0..17), first 16 bytes; key is the one the
 * relay gave in Park over the registration's QUIC connection. Every frame
 * has the same fixed length: a reply is never larger than what provoked it.
 */
#ifndef WZP_WIRE_PARK_FRAME_H
#define WZP_WIRE_PARK_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WZP_PARK_FRAME_WAKE 0x83
#define WZP_PARK_FRAME_PING 0x84
#define WZP_PARK_FRAME_PONG 0x85

#define WZP_PARK_ID_LEN           8
#define WZP_PARK_KEY_LEN          32
#define WZP_PARK_MAC_LEN          16
#define WZP_PARK_FRAME_LEN        34
#define WZP_PARK_KEEPALIVE_MAX_MS 600000 /* a Park asking for rarer pings is malformed */

#define WZP_PARK_REHOME 0x01 /* on a WAKE */
#define WZP_PARK_BYE    0x02 /* on a PING */
#define WZP_PARK_GONE   0x04 /* on a PONG */

typedef struct wzp_park_frame {
    uint8_t type;
    uint8_t park_id[WZP_PARK_ID_LEN];
    uint64_t seq;
    uint8_t flags;
} wzp_park_frame;

/* True if the datagram's first byte is a park frame type (its length unchecked). */
static inline bool wzp_park_frame_is(const uint8_t *buf, size_t len)
{
    return len > 0 && buf[0] >= WZP_PARK_FRAME_WAKE && buf[0] <= WZP_PARK_FRAME_PONG;
}

/* Writes the frame with its MAC into out. WZP_ERR_INVALID for an unknown type, flags
 * other than REHOME on a WAKE, BYE on a PING or GONE on a PONG; WZP_ERR_INTERNAL if the MAC
 * fails. */
int wzp_park_frame_encode(uint8_t out[WZP_PARK_FRAME_LEN], const wzp_park_frame *f,
                          const uint8_t key[WZP_PARK_KEY_LEN]);

/*
 * Reads the header without the key (to find the key by park_id): 0, or
 * WZP_ERR_MALFORMED for a wrong length, type or flags. Nothing in it is to be
 * trusted before wzp_park_frame_verify.
 */
int wzp_park_frame_peek(wzp_park_frame *f, const uint8_t *buf, size_t len);

/* True if buf is a well-formed frame whose MAC is key's (constant-time comparison). */
bool wzp_park_frame_verify(const uint8_t *buf, size_t len, const uint8_t key[WZP_PARK_KEY_LEN]);
/* The same for a frame wzp_park_frame_peek accepted: the MAC alone. */
bool wzp_park_frame_mac_ok(const uint8_t buf[WZP_PARK_FRAME_LEN],
                           const uint8_t key[WZP_PARK_KEY_LEN]);

#endif
