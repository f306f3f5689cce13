/*
 * Parked registrations, sans-I/O (docs/signaling.md, "Parked registrations").
 *
 * An idle registered client need not hold a QUIC connection: the relay offers it `Park`
 * (a random park id and key, the interval to ping at), the client closes its connection,
 * and from then on its registration is a small record kept alive by 34-byte keyed UDP
 * frames (src/wire/park_frame.h): PARK_PING from the client, PARK_PONG back. Anything to
 * deliver wakes it (WAKE, repeated) and it connects again.
 *
 * This table owns the park records and every timer of parking:
 *  - idle: registered connections, in the order they last did anything; one idle for
 *    park_after is reported (idle callback), the owner decides whether to offer;
 *  - offered and parked records, by park id; an offer lapses after WZP_PARK_OFFER_FOR, a
 *    parked record expires when no valid ping came for 3 x keepalive;
 *  - waking records: WAKE every 250 ms, at most for 3 s.
 * Every interval is fixed, so each list is kept in deadline order by appending.
 * The owner (the control plane) gets callbacks, synchronously, from the calls below; a
 * callback may drop the record it is told about (and only that one).
 */
#ifndef WZP_RELAY_PARK_H
#define WZP_RELAY_PARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/deadline_list.h"
#include "common/hmap.h"
#include "common/time.h"
#include "wire/park_frame.h"

#define WZP_PARK_WAKE_EVERY   WZP_MS(250)
#define WZP_PARK_WAKE_FOR     WZP_SEC(3)
#define WZP_PARK_MISSED_PINGS 3 /* keepalives without a valid ping before a record ends */
/* An offer neither taken nor declined this long lapses: what was held for the client goes
 * out (a client that does not know Park loses no more than this). */
#define WZP_PARK_OFFER_FOR WZP_SEC(2)
/* PONG GONE answers per second at most (each is no larger than the ping it answers). */
#define WZP_PARK_GONE_RATE 1000

/* A place in one of the table's deadline-ordered lists. */
typedef wzp_dl_node wzp_park_node;
typedef wzp_dl_list wzp_park_list;

/* A registered connection's place in the idle order (embedded in the owner's record);
 * `at` is when it last did anything. */
typedef wzp_park_node wzp_park_idle;

typedef struct wzp_park {
    uint8_t id[WZP_PARK_ID_LEN];
    uint8_t key[WZP_PARK_KEY_LEN];
    wzp_addr *addr;    /* the owner's: where frames go, moved by valid pings (NAT rebinding) */
    uint64_t ping_seq; /* last valid ping's */
    uint64_t wake_seq; /* last WAKE's */
    /* In the offers' or the parked records' list: at = when the offer lapses / when the
     * record expires without a valid ping. */
    wzp_park_node exp;
    wzp_park_node wake; /* while waking: at = the next WAKE */
    wzp_ts wake_until;
    bool parked; /* false: only offered (the client still holds its connection) */
    bool rehome;
    void *owner;
} wzp_park;

typedef enum wzp_park_ping_result {
    WZP_PARK_PING_OK = 0,
    WZP_PARK_PING_MALFORMED, /* not a 34-byte PARK_PING */
    WZP_PARK_PING_UNKNOWN,   /* no such park id */
    WZP_PARK_PING_BAD_MAC,
    WZP_PARK_PING_REPLAY, /* seq not above the last valid one */
} wzp_park_ping_result;

typedef struct wzp_park_stats {
    uint64_t pings[WZP_PARK_PING_REPLAY + 1]; /* by wzp_park_ping_result */
    uint64_t wakes_sent;
    uint64_t wakes_failed; /* woken for WZP_PARK_WAKE_FOR without coming back */
    uint64_t byes;         /* valid pings with WZP_PARK_BYE: the client left */
    uint64_t gone_sent;    /* PONG GONE for a valid ping of a park no longer held */
    uint64_t gone_limited; /* such pings left unanswered over WZP_PARK_GONE_RATE */
} wzp_park_stats;

typedef struct wzp_park_config {
    wzp_ts park_after; /* idle time before the idle callback; 0 = never */
    /* 32 bytes, or NULL. Set: a park's key is derived from it and the park id (not drawn at
     * random), so a ping for a park this table does not hold (a restart with the same
     * secret, a registration that ended) is recognised as one the relay issued and answered
     * PONG GONE: the client registers again at once, not after its retries go unanswered. */
    const uint8_t *secret;
    wzp_ts keepalive; /* the ping interval clients are told */
    /* A frame for the client at `to` (required). */
    void (*send)(void *user, const wzp_addr *to, const uint8_t *frame, size_t len);
    /* idle has been idle for park_after (and is unlinked). */
    void (*idle)(void *user, wzp_park_idle *idle, wzp_ts now);
    /* A valid ping for a record only offered: the client took the offer. */
    void (*accepted)(void *user, wzp_park *p, wzp_ts now);
    /* An offer lapsed (p->parked false), or no valid ping for 3 x keepalive: a record ends. */
    void (*expired)(void *user, wzp_park *p, wzp_ts now);
    /* Woken for WZP_PARK_WAKE_FOR and not back (it stays parked, no longer waking). */
    void (*wake_failed)(void *user, wzp_park *p, wzp_ts now);
    /* A valid ping said BYE: the client is leaving, its registration ends now (p parked).
     * NULL: as expired. */
    void (*left)(void *user, wzp_park *p, wzp_ts now);
    void *user;
} wzp_park_config;

typedef struct wzp_park_table {
    wzp_park_config cfg;
    wzp_hmap by_id;
    size_t n_parked;
    wzp_park_list idle, offers, parked, waking;
    wzp_park_stats stats;
    uint8_t secret[32];
    bool have_secret;
    wzp_ts gone_tat; /* the GONE answers' rate limit (GCRA: theoretical arrival time) */
} wzp_park_table;

void wzp_park_table_init(wzp_park_table *t, const wzp_park_config *cfg);
/* Frees every record (no callbacks). */
void wzp_park_table_free(wzp_park_table *t);

/* The connection did something (or registered): its idle time starts again now. */
void wzp_park_idle_touch(wzp_park_table *t, wzp_park_idle *n, wzp_ts now);
void wzp_park_idle_remove(wzp_park_table *t, wzp_park_idle *n);

/* A new offer for owner at *addr (fresh random id and key), or NULL (out of memory). */
wzp_park *wzp_park_offer(wzp_park_table *t, void *owner, wzp_addr *addr, wzp_ts now);
/* The client took the offer: p is parked from now. */
void wzp_park_enter(wzp_park_table *t, wzp_park *p, wzp_ts now);
/* Forgets p (offer cancelled, client back or gone) and frees it. */
void wzp_park_drop(wzp_park_table *t, wzp_park *p);
/* Sends WAKE now and every WZP_PARK_WAKE_EVERY for WZP_PARK_WAKE_FOR (a parked p only);
 * rehome: the WAKEs say "register elsewhere". Already waking: only rehome may be added. */
void wzp_park_wake(wzp_park_table *t, wzp_park *p, bool rehome, wzp_ts now);

/* A datagram of the PARK_PING type from `from`: a hash lookup and at most one MAC. A valid
 * one moves the record to `from`, is answered with PARK_PONG (and a WAKE while waking);
 * with WZP_PARK_BYE it ends the record instead (left), unanswered. With a secret, a ping
 * for an unknown id whose MAC is the derived key's is answered PONG GONE (rate-limited). */
wzp_park_ping_result wzp_park_on_ping(wzp_park_table *t, const wzp_addr *from, const uint8_t *buf,
                                      size_t len, wzp_ts now);

void wzp_park_handle_timer(wzp_park_table *t, wzp_ts now);
wzp_ts wzp_park_next_deadline(const wzp_park_table *t);

#endif
