/*
 * Every UDP port wzp uses carries several protocols at once (QUIC, STUN,
 * relay frames, connectivity probes). They are told apart by the first byte,
 * in the spirit of RFC 7983/9443, before any parser runs:
 *
 *   0x00-0x03  STUN (RFC 8489; the magic cookie is checked by the STUN codec)
 *   0x40-0x7f  QUIC short header     0xc0-0xff  QUIC long header
 *   0x80-0x8f  relay frames (src/wire/relay_frame.h)
 *   0x90-0x9f  connectivity probes (src/wire/probe.h)
 *   others     unknown: dropped and counted
 */
#ifndef WZP_WIRE_DEMUX_H
#define WZP_WIRE_DEMUX_H

#include <stddef.h>
#include <stdint.h>

typedef enum wzp_pkt_class {
    WZP_PKT_UNKNOWN = 0,
    WZP_PKT_STUN,
    WZP_PKT_QUIC,
    WZP_PKT_RELAY,
    WZP_PKT_PROBE,
} wzp_pkt_class;

static inline wzp_pkt_class wzp_pkt_classify(const uint8_t *p, size_t len)
{
    if (len == 0)
        return WZP_PKT_UNKNOWN;
    uint8_t b = p[0];
    if (b <= 0x03)
        return len >= 20 ? WZP_PKT_STUN : WZP_PKT_UNKNOWN;
    if (b >= 0x40 && b <= 0x7f)
        return WZP_PKT_QUIC;
    if (b >= 0xc0)
        return WZP_PKT_QUIC;
    if (b >= 0x80 && b <= 0x8f)
        return WZP_PKT_RELAY;
    if (b >= 0x90 && b <= 0x9f)
        return WZP_PKT_PROBE;
    return WZP_PKT_UNKNOWN;
}

#endif
