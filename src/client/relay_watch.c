/* Dead-relay detection during a call: see relay_watch.h. */
#include "client/relay_watch.h"

void wzp_relay_watch_init(wzp_relay_watch *w)
{
    w->armed = false;
    w->heard = 0;
    w->next_probe = WZP_TS_NEVER;
}

void wzp_relay_watch_arm(wzp_relay_watch *w, bool armed, wzp_ts now)
{
    if (armed == w->armed)
        return;
    w->armed = armed;
    w->heard = now;
    w->next_probe = armed ? now + WZP_RELAY_WATCH_QUIET : WZP_TS_NEVER;
}

void wzp_relay_watch_heard(wzp_relay_watch *w, wzp_ts now)
{
    if (now > w->heard)
        w->heard = now;
    if (w->armed)
        w->next_probe = w->heard + WZP_RELAY_WATCH_QUIET;
}

wzp_ts wzp_relay_watch_deadline(const wzp_relay_watch *w)
{
    if (!w->armed)
        return WZP_TS_NEVER;
    return wzp_ts_min(w->next_probe, w->heard + WZP_RELAY_WATCH_LOST);
}

wzp_relay_watch_action wzp_relay_watch_poll(wzp_relay_watch *w, wzp_ts now)
{
    if (!w->armed)
        return WZP_RELAY_WATCH_NONE;
    if (now - w->heard >= WZP_RELAY_WATCH_LOST) {
        w->armed = false;
        w->next_probe = WZP_TS_NEVER;
        return WZP_RELAY_WATCH_LOST_NOW;
    }
    if (now >= w->next_probe) {
        w->next_probe = now + WZP_RELAY_WATCH_PROBE;
        return WZP_RELAY_WATCH_PROBE_NOW;
    }
    return WZP_RELAY_WATCH_NONE;
}
