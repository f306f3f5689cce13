/*
 * Which relay of a cluster the client homes on, sans-I/O: one STUN Binding
 * round trip to each relay address measures its RTT; the lowest answered RTT
 * wins, an address that failed rests for a backoff (1 s doubling to 30 s, per
 * address) and the ones that never answered come last, in the order given.
 *
 * Driving it: start (or restart, after a failure) a measurement round, send
 * what poll hands out until it returns 0, feed STUN datagrams from the relays
 * to recv, call handle_timer at the deadline, and rank once settled (every
 * address answered or gave up, or a grace after the first answer ran out).
 * Nothing here reads a clock.
 */
#ifndef WZP_CLIENT_RELAY_SELECT_H
#define WZP_CLIENT_RELAY_SELECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"
#include "common/time.h"
#include "ice/stun_client.h"

#define WZP_RELAY_SELECT_MAX 8
/* A measurement round waits at most this long for any answer... */
#define WZP_RELAY_SELECT_WINDOW WZP_MS(500)
/* ... and this long after the first one for slower relays (one lower RTT can still win). */
#define WZP_RELAY_SELECT_GRACE       WZP_MS(100)
#define WZP_RELAY_SELECT_BACKOFF_MIN WZP_SEC(1)
#define WZP_RELAY_SELECT_BACKOFF_MAX WZP_SEC(30)

typedef struct wzp_relay_select_entry {
    wzp_addr addr;
    wzp_stun_txn probe;
    wzp_ts sent_at; /* the probe's one send (one per round: its answer is unambiguous) */
    wzp_ts rtt;     /* the latest answer; WZP_TS_NEVER when none */
    wzp_ts down_until, backoff;
} wzp_relay_select_entry;

typedef struct wzp_relay_select {
    wzp_relay_select_entry e[WZP_RELAY_SELECT_MAX];
    size_t n;
    wzp_ts settle_at; /* the round's end; WZP_TS_NEVER when no round runs */
} wzp_relay_select;

/* Up to WZP_RELAY_SELECT_MAX addresses, in preference order. Addresses that stay (same
 * address in the new list) keep their RTT, backoff and probe: a round under way goes on
 * (a new address joins the next round). */
void wzp_relay_select_set(wzp_relay_select *s, const wzp_addr *addrs, size_t n);
/* Starts a measurement round at now (a single address needs none: settled at once). */
void wzp_relay_select_measure(wzp_relay_select *s, wzp_ts now);
/* The next probe to send (its length, *to set), or 0 when none is due now. */
int wzp_relay_select_poll(wzp_relay_select *s, wzp_ts now, uint8_t *out, size_t cap, wzp_addr *to);
/* A STUN datagram from `from`: true when it answered one of this round's probes. */
bool wzp_relay_select_recv(wzp_relay_select *s, const wzp_addr *from, const uint8_t *pkt,
                           size_t len, wzp_ts now);
bool wzp_relay_select_settled(const wzp_relay_select *s, wzp_ts now);
/* When to call handle_timer (and poll); WZP_TS_NEVER when no round runs. */
wzp_ts wzp_relay_select_deadline(const wzp_relay_select *s);
/* Ends the round once settled (late answers are ignored from then on). */
void wzp_relay_select_handle_timer(wzp_relay_select *s, wzp_ts now);
/* The order to try the addresses in (indexes into the list), best first; returns n. */
size_t wzp_relay_select_rank(const wzp_relay_select *s, wzp_ts now, size_t *order);
/* The address at idx was lost or never answered: it rests. Registered: it is good again. */
void wzp_relay_select_failed(wzp_relay_select *s, size_t idx, wzp_ts now);
void wzp_relay_select_ok(wzp_relay_select *s, size_t idx);

#endif
