/*
 * Notices a dead relay during a relayed call, sans-I/O. Media through the relay arrives 50
 * times a second, so a relay quiet for a fraction of a second is suspect: probe it (a PING on
 * the control connection, which the relay answers at once) a few times, and count it lost if
 * it stays silent. That is under 1 s instead of the control connection's 6 s keep-alive timeout,
 * soon enough for a call to move to another relay before its end-to-end connection idles out.
 *
 * Armed only while a call needs the relay; `heard` is fed with every packet from the relay.
 */
#ifndef WZP_CLIENT_RELAY_WATCH_H
#define WZP_CLIENT_RELAY_WATCH_H

#include <stdbool.h>

#include "common/time.h"

/* A relay with a round trip under 400 ms answers the first probe in time; the verdict leaves
 * most of the 1 s of media a user may miss while the call moves to the move itself. */
#define WZP_RELAY_WATCH_QUIET WZP_MS(200) /* silence before the first probe */
#define WZP_RELAY_WATCH_PROBE WZP_MS(100) /* between probes */
#define WZP_RELAY_WATCH_LOST  WZP_MS(600) /* silence that counts as a lost relay */

typedef enum wzp_relay_watch_action {
    WZP_RELAY_WATCH_NONE = 0,
    WZP_RELAY_WATCH_PROBE_NOW, /* send a probe to the relay now */
    WZP_RELAY_WATCH_LOST_NOW,  /* the relay is lost: go elsewhere (the watch disarms) */
} wzp_relay_watch_action;

typedef struct wzp_relay_watch {
    bool armed;
    wzp_ts heard;      /* latest packet from the relay (or the arming) */
    wzp_ts next_probe; /* while quiet */
} wzp_relay_watch;

void wzp_relay_watch_init(wzp_relay_watch *w);
/* A call needs the relay (armed) or none does. Arming counts as hearing the relay now. */
void wzp_relay_watch_arm(wzp_relay_watch *w, bool armed, wzp_ts now);
void wzp_relay_watch_heard(wzp_relay_watch *w, wzp_ts now);
/* When to call poll next (WZP_TS_NEVER while disarmed). */
wzp_ts wzp_relay_watch_deadline(const wzp_relay_watch *w);
wzp_relay_watch_action wzp_relay_watch_poll(wzp_relay_watch *w, wzp_ts now);

#endif
