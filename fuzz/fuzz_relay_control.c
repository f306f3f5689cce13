/*
 * Fuzzes the relay control plane with a script of connection events and
 * messages. Records: [op][conn][len hi][len lo][len bytes]. Checked beyond
 * "no crash, no leak": everything the relay sends decodes, channels are
 * closed only once and only after being opened, and when every connection is
 * gone (and parked registrations had time to expire) no call, registration or
 * channel is left. Parking is on: connections take Park offers, and park
 * frames arrive, well-formed with the connection's key or as raw bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/control.h"
#include "wire/park_frame.h"
#include "wire/signal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CONNS 6
#define CHANS 256

static struct {
    uint8_t last_call_id[CONNS + 1][WZP_SIG_CALL_ID_LEN];
    bool chan_open[CHANS];
    uint32_t next_chan;
    size_t open;
    uint8_t park_id[CONNS + 1][WZP_PARK_ID_LEN], park_key[CONNS + 1][WZP_PARK_KEY_LEN];
} F;

static wzp_addr conn_addr(uint64_t conn)
{
    wzp_addr a;
    wzp_addr_parse(&a, "198.51.100.7:4000", false);
    wzp_addr_set_port(&a, (uint16_t)(4000 + conn));
    return a;
}

static void on_send(void *user, uint64_t conn, const uint8_t *msg, size_t len)
{
    (void)user;
    wzp_sig_msg m;
    if (wzp_sig_decode(msg, len, &m) != 0 || conn == 0 || conn > CONNS)
        abort();
    /* Remember call ids so the script can act on real calls. */
    const uint8_t *id = NULL;
    if (m.type == WZP_SIG_INCOMING_CALL)
        id = m.u.incoming.call_id;
    else if (m.type == WZP_SIG_RINGING)
        id = m.u.call.call_id;
    else if (m.type == WZP_SIG_CALL_SETUP)
        id = m.u.setup.call_id;
    if (id)
        memcpy(F.last_call_id[conn], id, WZP_SIG_CALL_ID_LEN);
    if (m.type == WZP_SIG_PARK) {
        memcpy(F.park_id[conn], m.u.park.park_id, WZP_PARK_ID_LEN);
        memcpy(F.park_key[conn], m.u.park.key, WZP_PARK_KEY_LEN);
    }
}

static void on_park_send(void *user, const wzp_addr *to, const uint8_t *frame, size_t len)
{
    (void)user;
    wzp_park_frame f;
    if (wzp_addr_port(to) == 0 || wzp_park_frame_peek(&f, frame, len) != 0 ||
        f.type == WZP_PARK_FRAME_PING)
        abort();
}

static void on_close(void *user, uint64_t conn, wzp_relay_close_code code, const char *reason)
{
    (void)user;
    (void)conn;
    (void)code;
    (void)reason;
}

static int on_open(void *user, uint64_t call, uint64_t a, const wzp_addr *addr_a, uint64_t b,
                   const wzp_addr *addr_b, wzp_ts t, uint32_t *ca, uint32_t *cb)
{
    (void)user;
    (void)call;
    if (wzp_addr_port(addr_a) == 0 || wzp_addr_port(addr_b) == 0)
        abort();
    if (a == b || F.next_chan + 2 > CHANS)
        return -1;
    *ca = F.next_chan++;
    *cb = F.next_chan++;
    F.chan_open[*ca] = F.chan_open[*cb] = true;
    F.open += 2;
    return 0;
}

static void on_chan_close(void *user, uint32_t a, uint32_t b)
{
    (void)user;
    if (a >= CHANS || b >= CHANS || !F.chan_open[a] || !F.chan_open[b])
        abort();
    F.chan_open[a] = F.chan_open[b] = false;
    F.open -= 2;
}

static void on_moved(void *user, uint32_t chan, const wzp_addr *addr)
{
    (void)user;
    if (chan >= CHANS || !F.chan_open[chan] || wzp_addr_port(addr) == 0)
        abort();
}

/* A message about the last call this connection heard of; p[0] picks the kind. */
static size_t call_msg(uint64_t conn, const uint8_t *p, size_t n, uint8_t *out)
{
    static const wzp_sig_type kinds[] = {WZP_SIG_ACCEPT, WZP_SIG_REJECT, WZP_SIG_BUSY,
                                         WZP_SIG_CANCEL, WZP_SIG_HANGUP, WZP_SIG_CANDIDATES_UPDATE};
    wzp_sig_msg m;
    wzp_sig_init(&m, kinds[(n ? p[0] : 0) % 6], 9);
    const uint8_t *id = F.last_call_id[conn];
    if (m.type == WZP_SIG_ACCEPT) {
        memcpy(m.u.accept.call_id, id, WZP_SIG_CALL_ID_LEN);
        m.u.accept.cands.n = 1;
        m.u.accept.cands.c[0].type = WZP_SIG_CAND_HOST;
        wzp_addr_parse(&m.u.accept.cands.c[0].addr, "192.0.2.1:9", false);
    } else if (m.type == WZP_SIG_CANDIDATES_UPDATE) {
        memcpy(m.u.update.call_id, id, WZP_SIG_CALL_ID_LEN);
        m.u.update.cands.n = 1;
        m.u.update.cands.c[0].type = WZP_SIG_CAND_PRFLX;
        wzp_addr_parse(&m.u.update.cands.c[0].addr, "[2001:db8::2]:9", false);
    } else if (m.type == WZP_SIG_HANGUP) {
        memcpy(m.u.end.call_id, id, WZP_SIG_CALL_ID_LEN);
        m.u.end.reason = WZP_SIG_END_HANGUP;
    } else {
        memcpy(m.u.call.call_id, id, WZP_SIG_CALL_ID_LEN);
    }
    int len = wzp_sig_encode(&m, out, WZP_SIG_MAX_SIZE);
    return len > 0 ? (size_t)len : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[WZP_SIG_MAX_SIZE];
    memset(&F, 0, sizeof(F));
    wzp_relay_control_config cfg;
    wzp_relay_control_config_default(&cfg);
    cfg.rate_burst = 64;
    cfg.max_registrations = 4;
    cfg.ring_timeout = 5ull * 1000000000ull;
    cfg.cb = (wzp_relay_control_callbacks){.send = on_send,
                                           .close = on_close,
                                           .channels_open = on_open,
                                           .channels_close = on_chan_close,
                                           .channel_moved = on_moved,
                                           .park_send = on_park_send};
    cfg.park_after = 2000000000ull;
    wzp_relay_control *rc = NULL;
    if (wzp_relay_control_new(&rc, &cfg) < 0)
        abort();
    wzp_ts now = 1000000000ull;
    size_t off = 0;

    while (size - off >= 4) {
        uint8_t op = data[off] % 9;
        uint64_t conn = 1 + data[off + 1] % CONNS;
        size_t len = ((size_t)data[off + 2] << 8) | data[off + 3];
        off += 4;
        if (len > size - off)
            len = size - off;
        const uint8_t *p = data + off;
        off += len;

        switch (op) {
        case 0: {
            uint8_t fp[WZP_SIG_FP_LEN];
            wzp_addr a = conn_addr(conn);
            memset(fp, (int)(conn % 4), sizeof(fp)); /* conns 1 and 5, 2 and 6 share identities */
            wzp_relay_control_on_connect(rc, conn, fp, &a, now);
            break;
        }
        case 1:
            wzp_relay_control_on_message(rc, conn, p, len, now);
            break;
        case 2:
            wzp_relay_control_on_disconnect(rc, conn, now);
            break;
        case 3: {
            wzp_addr a;
            uint8_t ip[4] = {203, 0, 113, len ? p[0] : 1};
            wzp_addr_from_ip(&a, AF_INET, ip, (uint16_t)(len > 1 ? p[1] | 1 : 1));
            wzp_relay_control_on_addr_change(rc, conn, &a, now);
            break;
        }
        case 4:
            now += (wzp_ts)(len ? p[0] : 1) * 100000000ull;
            if (wzp_relay_control_next_deadline(rc) <= now)
                wzp_relay_control_handle_timer(rc, now);
            break;
        case 5: {
            size_t n = call_msg(conn, p, len, buf);
            if (n)
                wzp_relay_control_on_message(rc, conn, buf, n, now);
            break;
        }
        case 6: /* the client takes its Park offer: closes with the parked code */
            wzp_relay_control_on_parked(rc, conn);
            wzp_relay_control_on_disconnect(rc, conn, now);
            break;
        case 7: { /* a park frame: a ping with the connection's key (a small seq), or raw bytes */
            wzp_addr a = conn_addr(conn);
            if (len >= 2 && (p[0] & 1)) {
                wzp_park_frame f = {.type = WZP_PARK_FRAME_PING, .seq = p[1]};
                memcpy(f.park_id, F.park_id[conn], WZP_PARK_ID_LEN);
                if (wzp_park_frame_encode(buf, &f, F.park_key[conn]) == 0)
                    wzp_relay_control_on_park_frame(rc, &a, buf, WZP_PARK_FRAME_LEN, now);
            } else {
                wzp_relay_control_on_park_frame(rc, &a, p, len, now);
            }
            break;
        }
        case 8:
            wzp_relay_control_drain(rc);
            break;
        }
    }

    for (uint64_t conn = 1; conn <= CONNS; conn++)
        wzp_relay_control_on_disconnect(rc, conn, now);
    for (int i = 0; i < 4 && wzp_relay_control_next_deadline(rc) != WZP_TS_NEVER; i++) {
        now += 60000000000ull; /* parked registrations without pings end */
        wzp_relay_control_handle_timer(rc, now);
    }
    if (wzp_relay_control_num_calls(rc) || wzp_relay_control_num_registrations(rc) ||
        wzp_relay_control_num_conns(rc) || F.open ||
        wzp_relay_control_next_deadline(rc) != WZP_TS_NEVER)
        abort();
    wzp_relay_control_free(rc);
    return 0;
}
