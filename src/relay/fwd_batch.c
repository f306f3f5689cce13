#include "relay/fwd_batch.h"

#include <wzp/wzp.h>

#include "relay/forwarder.h"
#include "wire/demux.h"
#include "wire/relay_frame.h"

/* Where one received datagram goes. */
enum verdict { V_DROP, V_CTL, V_SEND };

/*
 * Decides one datagram: forwards a DATA frame (header rewritten in place, so
 * it cannot grow), answers a KEEPALIVE, queues control packets, counts the
 * rest. On V_SEND, *to and *is_data say where and what.
 */
static enum verdict judge(wzp_fwd_batch *b, uint8_t *p, size_t len, const wzp_addr *from,
                          wzp_ts now, wzp_addr *to, bool *is_data)
{
    wzp_chan_table *t = b->table;
    if (len == 0 || len > WZP_FWD_MAX_DGRAM) {
        b->stats[WZP_FWD_S_MALFORMED]++;
        return V_DROP;
    }
    switch (wzp_pkt_classify(p, len)) {
    case WZP_PKT_RELAY:
        break;
    case WZP_PKT_STUN:
    case WZP_PKT_QUIC:
    case WZP_PKT_PROBE:
        if (b->ctl(b->ctl_user, from, p, len))
            return V_CTL;
        b->stats[WZP_FWD_S_CTL_FULL]++;
        return V_DROP;
    default:
        b->stats[WZP_FWD_S_MALFORMED]++;
        return V_DROP;
    }
    wzp_relay_frame f;
    if (wzp_relay_frame_decode(&f, p, len) < 0 || f.type == WZP_RELAY_FRAME_KEEPALIVE_ACK) {
        b->stats[WZP_FWD_S_MALFORMED]++;
        return V_DROP;
    }
    int rv;
    if (f.type == WZP_RELAY_FRAME_DATA) {
        uint32_t partner;
        rv = wzp_chan_table_route(t, f.channel, from, now, len, &partner, to);
        if (rv == 0) {
            wzp_relay_frame_rewrite(p, WZP_RELAY_FRAME_DATA, partner);
            *is_data = true;
            return V_SEND;
        }
    } else {
        rv = wzp_chan_table_touch(t, f.channel, from, now);
        if (rv == 0) {
            b->stats[WZP_FWD_S_KEEPALIVE]++;
            p[0] = WZP_RELAY_FRAME_KEEPALIVE_ACK;
            *to = *from;
            *is_data = false;
            return V_SEND;
        }
    }
    b->stats[rv == WZP_ERR_REJECTED ? WZP_FWD_S_WRONG_SRC : WZP_FWD_S_UNKNOWN_CHAN]++;
    return V_DROP;
}

/*
 * Appends one datagram to the outgoing batch, joining the previous entry when
 * it extends that entry's train: same peer and kind, contiguous in memory,
 * same size (only the last of a train may be shorter). A GRO train of one
 * bulk flow thus leaves as one GSO send; lone voice packets stay single.
 */
static void emit(wzp_fwd_out *out, size_t *nout, uint8_t *p, size_t len, const wzp_addr *to,
                 bool is_data)
{
    if (*nout) {
        wzp_fwd_out *o = &out[*nout - 1];
        if (o->is_data == is_data && o->data + o->len == p && o->nseg < WZP_FWD_GSO_MAX_SEGS &&
            o->len == (size_t)o->seg * o->nseg && len <= o->seg &&
            o->len + len <= WZP_FWD_TRAIN_MAX && wzp_addr_equal(&o->peer, to)) {
            o->len += len;
            o->nseg++;
            return;
        }
    }
    wzp_fwd_out *o = &out[(*nout)++];
    o->data = p;
    o->len = len;
    o->peer = *to;
    o->seg = (uint16_t)len;
    o->nseg = 1;
    o->is_data = is_data;
}

size_t wzp_fwd_handle(wzp_fwd_batch *b, uint8_t *buf, size_t len, size_t seg, const wzp_addr *from,
                      wzp_ts now, wzp_fwd_out *out, size_t *nout)
{
    if (len == 0) { /* truncated (MSG_TRUNC) or empty */
        b->stats[WZP_FWD_S_RX]++;
        b->stats[WZP_FWD_S_MALFORMED]++;
        return 1;
    }
    if (seg == 0 || seg > len)
        seg = len;
    size_t n = 0;
    for (size_t off = 0; off < len; off += seg, n++) {
        size_t l = len - off < seg ? len - off : seg;
        wzp_addr to;
        bool is_data = false;
        switch (judge(b, buf + off, l, from, now, &to, &is_data)) {
        case V_SEND:
            emit(out, nout, buf + off, l, &to, is_data);
            break;
        case V_CTL:
            b->stats[WZP_FWD_S_CTL_QUEUED]++;
            break;
        case V_DROP:
            break;
        }
    }
    b->stats[WZP_FWD_S_RX] += n;
    b->stats[WZP_FWD_S_RX_TRAINS] += n > 1;
    return n;
}
