#include "relay/fwd_batch.h"

#include <string.h>

#include <wzp/wzp.h>

#include "common/hash.h"
#include "relay/forwarder.h"
#include "wire/demux.h"
#include "wire/park_frame.h"
#include "wire/relay_frame.h"
#include "wire/stun_server.h"

void wzp_fwd_stun_limit_init(wzp_fwd_stun_limit *l, unsigned rate, unsigned burst, uint64_t key)
{
    memset(l, 0, sizeof(*l));
    l->key = key;
    if (rate == 0)
        return;
    if (burst == 0)
        burst = 2 * rate;
    l->interval = WZP_SEC(1) / rate;
    if (l->interval == 0)
        l->interval = 1;
    l->tolerance = (wzp_ts)(burst - 1) * l->interval;
}

bool wzp_fwd_stun_allow(wzp_fwd_stun_limit *l, const wzp_addr *from, wzp_ts now)
{
    if (!l->interval)
        return true;
    size_t n;
    const uint8_t *ip = wzp_addr_ip(from, &n);
    /* An IPv6 host usually owns a whole /64: one bucket for all of it. */
    uint64_t h = wzp_hash_bytes(ip, n > 8 ? 8 : n, l->key);
    wzp_ts *tat = &l->tat[h % WZP_FWD_STUN_BUCKETS];
    wzp_ts t = *tat > now ? *tat : now;
    if (t - now > l->tolerance)
        return false;
    *tat = t + l->interval;
    return true;
}

/* Where one received datagram goes. */
enum verdict { V_DROP, V_CTL, V_SEND };

/*
 * Answers a STUN Binding request into the batch's answer buffer, unless its
 * source is over its rate. Anything else STUN-looking (bad framing, too short,
 * not a Binding request) is malformed. On V_SEND, *ans / *alen is the answer.
 */
static enum verdict stun(wzp_fwd_batch *b, const uint8_t *p, size_t len, const wzp_addr *from,
                         wzp_ts now, uint8_t **ans, size_t *alen)
{
    if (!b->stun_buf || b->stun_cap - b->stun_used < WZP_STUN_RESPONSE_MAX) {
        b->stats[WZP_FWD_S_STUN_LIMITED]++;
        return V_DROP;
    }
    uint8_t *o = b->stun_buf + b->stun_used;
    int n = wzp_stun_respond_alt(p, len, from, b->stun_other, NULL, o, WZP_STUN_RESPONSE_MAX);
    /* The responder promises the growth bound (fuzzed); a reflector must not
     * rely on that alone. */
    if (n <= 0 || (size_t)n > len + WZP_STUN_RESPONSE_GROWTH) {
        b->stats[WZP_FWD_S_MALFORMED]++;
        return V_DROP;
    }
    /* Validated first, so junk does not use up a source's answers. */
    if (b->stun_limit && !wzp_fwd_stun_allow(b->stun_limit, from, now)) {
        b->stats[WZP_FWD_S_STUN_LIMITED]++;
        return V_DROP;
    }
    b->stun_used += (size_t)n;
    b->stats[WZP_FWD_S_STUN_ANSWERED]++;
    *ans = o;
    *alen = (size_t)n;
    return V_SEND;
}

/*
 * Decides one datagram: forwards a DATA frame (header rewritten in place, so
 * it cannot grow), answers a KEEPALIVE or a STUN request, queues control
 * packets, counts the rest. On V_SEND, *to and *is_data say where and what,
 * and *op / *olen what to send (the datagram itself unless a STUN answer).
 */
static enum verdict judge(wzp_fwd_batch *b, uint8_t *p, size_t len, const wzp_addr *from,
                          wzp_ts now, wzp_addr *to, bool *is_data, uint8_t **op, size_t *olen)
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
        /* Answered here, not on the control thread: stateless and cheap, and a
         * flood of it cannot crowd QUIC out of the control queue. */
        *to = *from;
        *is_data = false;
        return stun(b, p, len, from, now, op, olen);
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
    if (p[0] == WZP_PARK_FRAME_PING && len == WZP_PARK_FRAME_LEN) {
        /* A parked client's: the control thread checks it (one lookup, one MAC). */
        if (b->ctl(b->ctl_user, from, p, len))
            return V_CTL;
        b->stats[WZP_FWD_S_CTL_FULL]++;
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
        uint8_t *op = buf + off;
        size_t ol = l;
        switch (judge(b, buf + off, l, from, now, &to, &is_data, &op, &ol)) {
        case V_SEND:
            emit(out, nout, op, ol, &to, is_data);
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
