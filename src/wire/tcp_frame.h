/*
 * Records on a relay TCP stream (src/net/tcp_link.h): each datagram a client
 * would have sent over UDP (to or from the relay's UDP port) is one record,
 *
 *   u16 length (big endian) | length bytes
 *
 * length 0 is an empty record (ignored; either side may send it to keep a
 * middlebox's idle timer going), more than WZP_TCP_FRAME_MAX is a protocol
 * error: the stream is closed. The decoder is sans-I/O and copies at most one
 * record at a time.
 */
#ifndef WZP_WIRE_TCP_FRAME_H
#define WZP_WIRE_TCP_FRAME_H

#include <stddef.h>
#include <stdint.h>

/* The relay port's largest datagram (WZP_FWD_MAX_DGRAM). */
#define WZP_TCP_FRAME_MAX 2048
#define WZP_TCP_FRAME_HDR 2

/* Writes the 2-byte header for a record of len bytes; WZP_ERR_INVALID if too long. */
int wzp_tcp_frame_header(uint8_t hdr[WZP_TCP_FRAME_HDR], size_t len);

typedef struct wzp_tcp_deframer {
    size_t have; /* bytes of the current record (header included) gathered */
    size_t need; /* its full length once the header is known, else 0 */
    uint8_t buf[WZP_TCP_FRAME_HDR + WZP_TCP_FRAME_MAX];
} wzp_tcp_deframer;

void wzp_tcp_deframer_init(wzp_tcp_deframer *d);

/*
 * Consumes stream bytes from in[0..len) until one record is complete or the
 * input ends; *used says how many were taken. Returns 1 with *rec, *rec_len
 * set (valid until the next call) when a non-empty record is complete, 0 when
 * all input was taken without completing one, WZP_ERR_MALFORMED for a length
 * over WZP_TCP_FRAME_MAX (the stream cannot be resynchronised).
 */
int wzp_tcp_deframe(wzp_tcp_deframer *d, const uint8_t *in, size_t len, size_t *used,
                    const uint8_t **rec, size_t *rec_len);

#endif
