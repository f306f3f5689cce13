/*
 * A forwarding worker's per-buffer logic (src/relay/fwd_batch.c) on arbitrary
 * bytes, train sizes and sources, against a table with two live pairs.
 * Input: [source selector][seg hi][seg lo][buffer...]. Checks that every
 * datagram is accounted for exactly once (a rate-limited STUN request too),
 * that what is sent lies inside the buffer, or for STUN answers inside the
 * answer buffer, and is never longer than what came in plus the STUN growth
 * per answer, that trains are well formed, that data goes only to the
 * sender's partner, that answers go back to the sender and never exceed the
 * burst, and that control packets are handed over whole.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/forwarder.h"
#include "relay/fwd_batch.h"
#include "wire/relay_frame.h"
#include "wire/stun.h"
#include "wire/stun_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Small, so trains of requests hit the limit; the key is fixed so runs replay. */
#define STUN_BURST 3

static wzp_chan_table *table;
static wzp_fwd_stun_limit limiter;
static wzp_addr peers[4], stranger;
static uint32_t chans[4];

static void setup(void)
{
    static const char *names[4] = {"192.0.2.1:1000", "192.0.2.2:2000", "[2001:db8::1]:3000",
                                   "198.51.100.7:4000"};
    wzp_fwd_stun_limit_init(&limiter, 1, STUN_BURST, 42);
    wzp_chan_table_config tcfg = {.max_channels = 64};
    if (wzp_chan_table_new(&table, &tcfg) < 0)
        abort();
    for (int i = 0; i < 4; i++)
        wzp_addr_parse(&peers[i], names[i], false);
    wzp_addr_parse(&stranger, "203.0.113.9:5000", false);
    if (wzp_chan_table_open_pair(table, &peers[0], &peers[1], 0, &chans[0], &chans[1]) < 0 ||
        wzp_chan_table_open_pair(table, &peers[2], &peers[3], 0, &chans[2], &chans[3]) < 0)
        abort();
}

static size_t ctl_calls, ctl_bytes;

static bool ctl(void *user, const wzp_addr *from, const uint8_t *p, size_t len)
{
    (void)from;
    (void)p;
    if (len == 0 || len > WZP_FWD_MAX_DGRAM)
        abort();
    ctl_calls++;
    ctl_bytes += len;
    return *(const uint8_t *)user & 1; /* sometimes "queue full" */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!table)
        setup();
    if (size < 3 || size > 65536 + 3)
        return 0;
    uint8_t sel = data[0];
    size_t seg = (size_t)data[1] << 8 | data[2];
    size_t len = size - 3;
    const wzp_addr *from = (sel & 7) < 4 ? &peers[sel & 7] : &stranger;
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return 0;
    memcpy(buf, data + 3, len);
    /* The fuzzer rarely guesses channel ids: let a flag plant a valid one
     * in every datagram so forwarding paths get exercised. */
    size_t eff = seg == 0 || seg > len ? len : seg;
    if ((sel & 8) && eff >= WZP_RELAY_FRAME_HDR)
        for (size_t off = 0; off + WZP_RELAY_FRAME_HDR <= len; off += eff)
            wzp_relay_frame_encode_hdr(buf + off, WZP_RELAY_FRAME_HDR, buf[off] & 1 ? 0x81 : 0x80,
                                       chans[(sel >> 4) & 3]);
    /* Nor valid STUN: another flag makes every whole datagram a Binding
     * request, its room filled by an attribute the responder skips. */
    else if ((sel & 0x40) && eff >= WZP_STUN_HEADER_LEN && eff % 4 == 0)
        for (size_t off = 0; off + eff <= len; off += eff) {
            uint8_t *p = buf + off;
            size_t body = eff - WZP_STUN_HEADER_LEN;
            memset(p, 0, eff);
            p[1] = 0x01;
            p[2] = (uint8_t)(body >> 8);
            p[3] = (uint8_t)body;
            p[4] = 0x21, p[5] = 0x12, p[6] = 0xa4, p[7] = 0x42;
            p[8] = (uint8_t)off;
            if (body >= 4) {
                p[20] = 0x80, p[21] = 0x30; /* unknown, comprehension-optional */
                p[22] = (uint8_t)((body - 4) >> 8);
                p[23] = (uint8_t)(body - 4);
            }
        }
    size_t nd = len ? (len + eff - 1) / eff : 1;
    /* The limiter starts afresh: each input stands alone. A small answer
     * buffer (sel bit 7) exercises "no room". */
    memset(limiter.tat, 0, sizeof(limiter.tat));
    size_t acap = (sel & 0x80 ? 2 : nd) * WZP_STUN_RESPONSE_MAX;
    uint8_t *ans = malloc(acap);
    wzp_fwd_batch b = {.table = table,
                       .ctl = ctl,
                       .ctl_user = &sel,
                       .stun_limit = &limiter,
                       .stun_buf = ans,
                       .stun_cap = acap};
    wzp_fwd_out *out = calloc(nd, sizeof(*out));
    if (!out || !ans) {
        free(out);
        free(ans);
        free(buf);
        return 0;
    }
    size_t nout = 0;
    ctl_calls = ctl_bytes = 0;
    size_t n = wzp_fwd_handle(&b, buf, len, seg, from, (wzp_ts)sel * 1000, out, &nout);
    if (n != nd || b.stats[WZP_FWD_S_RX] != n || nout > n)
        abort();
    /* Every datagram: sent (forward or keep-alive answer), handed over, or dropped and counted. */
    uint64_t sent = 0, sent_bytes = 0, answers = 0;
    for (size_t i = 0; i < nout; i++) {
        const wzp_fwd_out *o = &out[i];
        bool answer = o->data >= ans && o->data < ans + acap;
        if (answer ? o->data + o->len > ans + b.stun_used || o->is_data
                   : o->data < buf || o->data + o->len > buf + len || o->seg > eff)
            abort();
        if (o->nseg == 0 || o->nseg > WZP_FWD_GSO_MAX_SEGS || o->len > (size_t)o->seg * o->nseg ||
            (o->nseg > 1 && o->len <= (size_t)o->seg * (o->nseg - 1)))
            abort();
        for (size_t off = 0; off < o->len; off += o->seg) {
            size_t l = o->len - off < o->seg ? o->len - off : o->seg;
            wzp_stun_msg m;
            if (answer
                    ? wzp_stun_decode(&m, o->data + off, l) != 0 ||
                          (m.type != WZP_STUN_BINDING_SUCCESS && m.type != WZP_STUN_BINDING_ERROR)
                    : o->data[off] != (o->is_data ? 0x80 : 0x82))
                abort();
        }
        answers += answer ? o->nseg : 0;
        /* Data goes to the sender's partner only; an answer goes back to the sender. */
        if (!o->is_data && !wzp_addr_equal(&o->peer, from))
            abort();
        if (o->is_data) {
            bool ok = false;
            for (int k = 0; k < 4; k++)
                if (wzp_addr_equal(from, &peers[k]) && wzp_addr_equal(&o->peer, &peers[k ^ 1]))
                    ok = true;
            if (!ok)
                abort();
        }
        sent += o->nseg;
        sent_bytes += o->len;
    }
    const uint64_t *s = b.stats;
    /* Never more out than in, but for the STUN answers' bounded growth; and
     * no source gets more than the burst at once. */
    if (sent_bytes > len + answers * WZP_STUN_RESPONSE_GROWTH ||
        answers != s[WZP_FWD_S_STUN_ANSWERED] || answers > STUN_BURST)
        abort();
    uint64_t fwd_like = sent - s[WZP_FWD_S_KEEPALIVE] - answers;
    uint64_t accounted = fwd_like + s[WZP_FWD_S_KEEPALIVE] + s[WZP_FWD_S_STUN_ANSWERED] +
                         s[WZP_FWD_S_STUN_LIMITED] + s[WZP_FWD_S_CTL_QUEUED] +
                         s[WZP_FWD_S_CTL_FULL] + s[WZP_FWD_S_MALFORMED] +
                         s[WZP_FWD_S_UNKNOWN_CHAN] + s[WZP_FWD_S_WRONG_SRC];
    if (accounted != n || ctl_calls != s[WZP_FWD_S_CTL_QUEUED] + s[WZP_FWD_S_CTL_FULL])
        abort();
    free(out);
    free(ans);
    free(buf);
    return 0;
}
