/* A parked registration, the client's half (park.h). */
#include "client/park.h"

#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

void wzp_parking_init(wzp_parking *p)
{
    memset(p, 0, sizeof(*p));
    p->sock = -1;
    p->ping_at = p->lost_at = WZP_TS_NEVER;
}

void wzp_parking_free(wzp_parking *p)
{
    free(p->held);
    p->held = NULL;
    p->held_len = 0;
}

int wzp_parking_start(wzp_parking *p, const uint8_t id[WZP_PARK_ID_LEN],
                      const uint8_t key[WZP_PARK_KEY_LEN], uint32_t keepalive_ms,
                      const wzp_addr *relay, int sock, wzp_ts rtt, wzp_ts now)
{
    if (!id || !key || !relay || sock < 0)
        return WZP_ERR_INVALID;
    wzp_ts ka = WZP_MS((wzp_ts)keepalive_ms);
    if (ka < WZP_PARKING_KEEPALIVE_MIN || ka > WZP_PARKING_KEEPALIVE_MAX)
        return WZP_ERR_INVALID;
    if (p->state != WZP_PARKING_OFF)
        return WZP_ERR_STATE;
    wzp_parking_free(p);
    p->state = WZP_PARKING_PARKED;
    memcpy(p->id, id, sizeof(p->id));
    memcpy(p->key, key, sizeof(p->key));
    p->keepalive = ka;
    p->relay = *relay;
    p->sock = sock;
    /* Sequence numbers are per park (a new id and key each time): replays of an earlier
     * park's frames fail on the id. */
    p->ping_seq = p->pong_seq = p->wake_seq = 0;
    p->ping_sent = 0;
    p->misses = 0;
    p->ping_at = now + ka;
    p->lost_at = WZP_TS_NEVER;
    p->rtt = rtt;
    return 0;
}

void wzp_parking_wake(wzp_parking *p)
{
    if (p->state == WZP_PARKING_PARKED)
        p->state = WZP_PARKING_WAKING;
}

void wzp_parking_end(wzp_parking *p)
{
    wzp_parking_free(p);
    p->state = WZP_PARKING_OFF;
    memset(p->key, 0, sizeof(p->key));
    p->ping_at = p->lost_at = WZP_TS_NEVER;
}

void wzp_parking_leave(wzp_parking *p)
{
    if (p->state != WZP_PARKING_PARKED && p->state != WZP_PARKING_WAKING)
        return;
    wzp_parking_free(p);
    p->state = WZP_PARKING_LEAVING;
    p->byes_left = WZP_PARKING_BYES;
}

int wzp_parking_hold(wzp_parking *p, const uint8_t *msg, size_t len)
{
    if (!msg || len == 0 || len > 0xffff || p->held_len + 2 + len > WZP_PARKING_HELD_MAX)
        return WZP_ERR_LIMIT;
    uint8_t *b = realloc(p->held, p->held_len + 2 + len);
    if (!b)
        return WZP_ERR_NOMEM;
    p->held = b;
    b[p->held_len] = (uint8_t)(len >> 8);
    b[p->held_len + 1] = (uint8_t)len;
    memcpy(b + p->held_len + 2, msg, len);
    p->held_len += 2 + len;
    return 0;
}

void wzp_parking_release(wzp_parking *p, void (*send)(void *user, const uint8_t *msg, size_t len),
                         void *user)
{
    /* Taken out first: send may hold again (it must not, once OFF; but nothing is lost). */
    uint8_t *b = p->held;
    size_t n = p->held_len;
    p->held = NULL;
    p->held_len = 0;
    wzp_parking_end(p);
    for (size_t off = 0; off + 2 <= n;) {
        size_t len = (size_t)b[off] << 8 | b[off + 1];
        if (off + 2 + len > n)
            break;
        send(user, b + off + 2, len);
        off += 2 + len;
    }
    free(b);
}

wzp_ts wzp_parking_deadline(const wzp_parking *p)
{
    if (p->state == WZP_PARKING_LEAVING)
        return 0;
    return p->state == WZP_PARKING_PARKED ? wzp_ts_min(p->ping_at, p->lost_at) : WZP_TS_NEVER;
}

bool wzp_parking_lost(const wzp_parking *p, wzp_ts now)
{
    return p->state == WZP_PARKING_PARKED && p->lost_at <= now;
}

int wzp_parking_poll(wzp_parking *p, wzp_ts now, uint8_t *out, size_t cap)
{
    bool bye = p->state == WZP_PARKING_LEAVING;
    if (bye && !p->byes_left) {
        wzp_parking_end(p);
        return 0;
    }
    if (!bye && (p->state != WZP_PARKING_PARKED || p->ping_at > now))
        return 0;
    wzp_park_frame f = {
        .type = WZP_PARK_FRAME_PING, .seq = p->ping_seq + 1, .flags = bye ? WZP_PARK_BYE : 0};
    memcpy(f.park_id, p->id, sizeof(f.park_id));
    if (cap < WZP_PARK_FRAME_LEN || wzp_park_frame_encode(out, &f, p->key) < 0)
        return 0;
    p->ping_seq++;
    if (bye) {
        p->byes_left--;
        return WZP_PARK_FRAME_LEN;
    }
    p->ping_sent = now;
    p->pings++;
    /* The wait for its PONG: 3 RTTs at least, doubled per ping unanswered, half an interval at
     * most (so short intervals keep their quick verdict). A PONG puts the next ping back to one
     * interval after this one. */
    wzp_ts most = p->keepalive / 2;
    wzp_ts wait = p->rtt * 3 > WZP_PARKING_RETRY_MIN ? p->rtt * 3 : WZP_PARKING_RETRY_MIN;
    for (unsigned k = 0; k < p->misses && wait < most; k++)
        wait *= 2;
    wait = wzp_ts_min(wait, most);
    if (p->misses++ < WZP_PARKING_RETRIES) {
        p->ping_at = now + wait;
    } else {
        p->ping_at = WZP_TS_NEVER;
        p->lost_at = now + wait;
    }
    return WZP_PARK_FRAME_LEN;
}

void wzp_parking_ping_now(wzp_parking *p, wzp_ts now)
{
    if (p->state == WZP_PARKING_PARKED)
        p->ping_at = now;
}

wzp_parking_rx wzp_parking_recv(wzp_parking *p, int sock, const wzp_addr *from, const uint8_t *pkt,
                                size_t len, wzp_ts now)
{
    wzp_park_frame f;
    if (p->state != WZP_PARKING_PARKED || sock != p->sock || !from ||
        !wzp_addr_equal(from, &p->relay) || wzp_park_frame_peek(&f, pkt, len) < 0 ||
        memcmp(f.park_id, p->id, sizeof(p->id)) != 0 || !wzp_park_frame_mac_ok(pkt, p->key)) {
        p->dropped++;
        return WZP_PARKING_RX_DROP;
    }
    if (f.type == WZP_PARK_FRAME_PONG && f.seq > p->pong_seq && f.seq <= p->ping_seq) {
        p->pong_seq = f.seq;
        p->misses = 0;
        p->lost_at = WZP_TS_NEVER;
        p->ping_at = p->ping_sent + p->keepalive;
        if (f.seq == p->ping_seq && now >= p->ping_sent)
            p->rtt = now - p->ping_sent;
        p->pongs++;
        return (f.flags & WZP_PARK_GONE) ? WZP_PARKING_RX_GONE : WZP_PARKING_RX_PONG;
    }
    if (f.type == WZP_PARK_FRAME_WAKE && f.seq > p->wake_seq) {
        p->wake_seq = f.seq;
        p->wakes++;
        return (f.flags & WZP_PARK_REHOME) ? WZP_PARKING_RX_REHOME : WZP_PARKING_RX_WAKE;
    }
    p->dropped++; /* a replay, a PONG to no ping of ours, or a PING (ours, reflected) */
    return WZP_PARKING_RX_DROP;
}
