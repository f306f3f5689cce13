/*
 * A parked registration, the client's half (sans-I/O): an idle client that the relay offered
 * to park (signal Park) closes its control connection and stays registered without one. It
 * then pings the relay with PARK_PING frames (src/wire/park_frame.h) every keepalive_ms from
 * the socket the control connection used, accepts PARK_PONGs that prove the relay holds the
 * record, and connects again when the relay sends a WAKE (something to deliver: a call) or
 * when the application needs the relay (a call placed while parked). Messages for the relay
 * produced meanwhile are held here and sent once the client is registered again.
 *
 * States: OFF (the control connection as usual), PARKED (no connection, pinging), WAKING
 * (connecting to register again; messages still held), LEAVING (the client stops: the
 * next polls give the BYE pings that end the registration at once, then OFF). Every input carries
 * `now`; wzp_parking_deadline says when to poll for the next ping and to check the verdict.
 */
#ifndef WZP_CLIENT_PARK_H
#define WZP_CLIENT_PARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/time.h"
#include "wire/park_frame.h"

/*
 * A ping whose PONG has not come back is sent again (each retry with its own seq) after
 * WZP_PARKING_RETRY_MIN or 3 RTTs, whichever is longer, doubled per retry and at most half a
 * keep-alive interval; no valid PONG after WZP_PARKING_RETRIES retries and the last one's wait:
 * the relay is lost. At the defaults (4 s keep-alive) a dead relay is noticed 3.75 s after the
 * first ping it missed, where three silent intervals took 8-12 s; a lost PONG costs one more ping.
 */
#define WZP_PARKING_RETRY_MIN WZP_MS(250)
#define WZP_PARKING_RETRIES   3
/* keepalive_ms under the minimum: the offer is refused (pings that often would be a flood). */
#define WZP_PARKING_KEEPALIVE_MIN WZP_MS(100)
#define WZP_PARKING_KEEPALIVE_MAX WZP_MS((wzp_ts)WZP_PARK_KEEPALIVE_MAX_MS)
/* What the held messages may take in all (a call placed while parked is one Offer). */
#define WZP_PARKING_HELD_MAX 16384

typedef enum wzp_parking_state {
    WZP_PARKING_OFF = 0,
    WZP_PARKING_PARKED,
    WZP_PARKING_WAKING,
    WZP_PARKING_LEAVING,
} wzp_parking_state;

/* BYE pings a stopping client sends (each with its own seq: one lost costs nothing). */
#define WZP_PARKING_BYES 2

/* What a park frame fed to wzp_parking_recv means. */
typedef enum wzp_parking_rx {
    WZP_PARKING_RX_DROP = 0, /* not a valid frame for this park: dropped silently */
    WZP_PARKING_RX_PONG,     /* the relay still holds us */
    WZP_PARKING_RX_WAKE,     /* connect again now and register */
    WZP_PARKING_RX_REHOME,   /* the relay is stopping: register elsewhere */
    WZP_PARKING_RX_GONE,     /* the relay holds no such park (restarted): register again */
} wzp_parking_rx;

typedef struct wzp_parking {
    wzp_parking_state state;
    uint8_t id[WZP_PARK_ID_LEN];
    uint8_t key[WZP_PARK_KEY_LEN];
    wzp_ts keepalive;
    wzp_addr relay; /* where the pings go and the only source frames are taken from */
    int sock;       /* the core socket the control connection used */
    uint64_t ping_seq, pong_seq, wake_seq; /* the latest sent / accepted */
    wzp_ts ping_at;                        /* the next ping is due */
    wzp_ts ping_sent;                      /* when ping_seq left (an RTT sample on its PONG) */
    unsigned misses;                       /* pings sent since the last valid PONG */
    wzp_ts lost_at;                        /* the last retry is out: no valid PONG by then, lost */
    wzp_ts rtt;                            /* the latest sample (the control connection's first) */
    uint8_t *held;                         /* messages held: [u16 BE length][bytes]... */
    size_t held_len;
    uint64_t pings, pongs, wakes, dropped; /* counters */
    unsigned byes_left;                    /* LEAVING: BYE pings still to send */
} wzp_parking;

void wzp_parking_init(wzp_parking *p);
/* Frees what is held (any state). */
void wzp_parking_free(wzp_parking *p);

/*
 * Parks: the relay offered park id/key with keepalive_ms; relay/sock are the control
 * connection's relay address and socket, rtt its smoothed RTT (0: none). The first ping is
 * due one interval from now. WZP_ERR_INVALID (nothing changes) for an interval out of range
 * or a NULL argument; WZP_ERR_STATE when not OFF.
 */
int wzp_parking_start(wzp_parking *p, const uint8_t id[WZP_PARK_ID_LEN],
                      const uint8_t key[WZP_PARK_KEY_LEN], uint32_t keepalive_ms,
                      const wzp_addr *relay, int sock, wzp_ts rtt, wzp_ts now);
/* PARKED -> WAKING (no more pings or verdicts); other states unchanged. */
void wzp_parking_wake(wzp_parking *p);
/* Back to OFF; what is held is dropped. */
void wzp_parking_end(wzp_parking *p);
/* The client stops: PARKED or WAKING -> LEAVING (what is held is dropped); other states
 * unchanged. */
void wzp_parking_leave(wzp_parking *p);

/* PARKED or WAKING: messages for the relay are held, not sent. */
static inline bool wzp_parking_holding(const wzp_parking *p)
{
    return p->state != WZP_PARKING_OFF;
}

/* Holds one message (in order). WZP_ERR_LIMIT when it does not fit WZP_PARKING_HELD_MAX. */
int wzp_parking_hold(wzp_parking *p, const uint8_t *msg, size_t len);
/* Hands every held message to send, in order, and goes back to OFF. */
void wzp_parking_release(wzp_parking *p, void (*send)(void *user, const uint8_t *msg, size_t len),
                         void *user);

/* PARKED: the next ping or verdict; LEAVING: now; WZP_TS_NEVER otherwise. */
wzp_ts wzp_parking_deadline(const wzp_parking *p);
/* PARKED and no valid PONG to the first ping nor to its WZP_PARKING_RETRIES retries. */
bool wzp_parking_lost(const wzp_parking *p, wzp_ts now);
/* The next ping to send (its length, WZP_PARK_FRAME_LEN) when one is due, else 0. LEAVING:
 * each BYE ping in turn, then OFF. */
int wzp_parking_poll(wzp_parking *p, wzp_ts now, uint8_t *out, size_t cap);
/* Our address may have changed: the next ping leaves now, so the relay sees the new one. */
void wzp_parking_ping_now(wzp_parking *p, wzp_ts now);

/*
 * A park frame (first byte WZP_PARK_FRAME_WAKE..PONG) that arrived from `from` on socket
 * `sock`. Anything that is not, for this park, a PONG to a ping we sent and newer than the
 * last one, or a WAKE newer than the last one, both with a valid MAC and from the relay's
 * address and socket, is dropped (and counted).
 */
wzp_parking_rx wzp_parking_recv(wzp_parking *p, int sock, const wzp_addr *from, const uint8_t *pkt,
                                size_t len, wzp_ts now);

#endif
