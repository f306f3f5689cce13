#include "client/relay_transport.h"

#include <string.h>

void wzp_rtx_init(wzp_rtx *r, wzp_relay_transport mode, wzp_ts now)
{
    memset(r, 0, sizeof(*r));
    r->mode = mode;
    r->via_tcp = mode == WZP_RELAY_TRANSPORT_TCP;
    r->unanswered = WZP_TS_NEVER;
    r->next_check = WZP_TS_NEVER;
    r->tcp_retry_at = now;
    r->tcp_backoff = WZP_RTX_TCP_RETRY_MIN;
}

static bool udp_dead(const wzp_rtx *r, wzp_ts now)
{
    return r->unanswered != WZP_TS_NEVER && now - r->unanswered >= WZP_RTX_UDP_DEAD;
}

static bool udp_doubt(const wzp_rtx *r, wzp_ts now)
{
    return r->unanswered != WZP_TS_NEVER && now - r->unanswered >= WZP_RTX_DOUBT;
}

void wzp_rtx_on_udp_sent(wzp_rtx *r, bool answerable, wzp_ts now)
{
    if (answerable && r->unanswered == WZP_TS_NEVER)
        r->unanswered = now;
    /* Media to a relay silent towards us (a call just fell back to it): check UDP now. */
    if (!answerable && r->mode == WZP_RELAY_TRANSPORT_AUTO && !r->via_tcp &&
        r->unanswered == WZP_TS_NEVER && r->next_check == WZP_TS_NEVER &&
        now - r->udp_last_rx >= WZP_RTX_SILENCE)
        r->next_check = now;
}

void wzp_rtx_on_udp_rx(wzp_rtx *r, bool media, wzp_ts now)
{
    r->udp_last_rx = now;
    r->unanswered = WZP_TS_NEVER;
    if (media)
        r->media_last_rx = now;
    if (!r->udp_ok) {
        r->udp_ok = true;
        r->udp_ok_since = now;
    }
    if (r->mode == WZP_RELAY_TRANSPORT_AUTO && r->via_tcp) {
        r->via_tcp = false; /* UDP is back: preferred */
        r->switches++;
    }
    if (!r->via_tcp)
        r->next_check = WZP_TS_NEVER;
}

void wzp_rtx_on_tcp_connecting(wzp_rtx *r, wzp_ts now)
{
    r->tcp_connecting = true;
}

void wzp_rtx_on_tcp_up(wzp_rtx *r, wzp_ts now)
{
    r->tcp_connecting = false;
    r->tcp_up = true;
    r->tcp_backoff = WZP_RTX_TCP_RETRY_MIN;
    wzp_rtx_update(r, now);
}

void wzp_rtx_on_tcp_down(wzp_rtx *r, wzp_ts now)
{
    bool was_up = r->tcp_up;
    r->tcp_up = false;
    r->tcp_connecting = false;
    r->tcp_retry_at = now + (was_up ? WZP_RTX_TCP_RETRY_MIN : r->tcp_backoff);
    if (!was_up && r->tcp_backoff < WZP_RTX_TCP_RETRY_MAX)
        r->tcp_backoff *= 2;
}

void wzp_rtx_update(wzp_rtx *r, wzp_ts now)
{
    if (r->mode != WZP_RELAY_TRANSPORT_AUTO)
        return;
    if (udp_dead(r, now)) {
        r->udp_ok = false;
        if (!r->via_tcp && r->tcp_up) {
            r->via_tcp = true;
            r->switches++;
            r->next_check = now + WZP_RTX_CHECK_INTERVAL;
        }
    }
    /* Relay media stopped: check UDP now rather than wait for the next keep-alive. */
    if (!r->via_tcp && r->media_last_rx && now - r->media_last_rx >= WZP_RTX_SILENCE &&
        r->unanswered == WZP_TS_NEVER) {
        r->media_last_rx = 0;
        r->next_check = now;
    }
    if (r->via_tcp && r->next_check == WZP_TS_NEVER)
        r->next_check = now + WZP_RTX_CHECK_INTERVAL;
}

bool wzp_rtx_tcp_open_due(const wzp_rtx *r, wzp_ts now)
{
    if (r->mode == WZP_RELAY_TRANSPORT_UDP || r->tcp_up || r->tcp_connecting)
        return false;
    /* Auto: UDP gets a head start (happy eyeballs); a link only once an answer is late, so
     * a client whose UDP works costs the relay no TLS handshake. */
    if (r->mode == WZP_RELAY_TRANSPORT_AUTO && !udp_doubt(r, now))
        return false;
    return now >= r->tcp_retry_at;
}

bool wzp_rtx_tcp_close_due(const wzp_rtx *r, wzp_ts now)
{
    return r->mode == WZP_RELAY_TRANSPORT_AUTO && !r->via_tcp && r->udp_ok &&
           (r->tcp_up || r->tcp_connecting) && now - r->udp_ok_since >= WZP_RTX_TCP_LINGER;
}

bool wzp_rtx_check_due(const wzp_rtx *r, wzp_ts now)
{
    return r->mode == WZP_RELAY_TRANSPORT_AUTO && r->next_check != WZP_TS_NEVER &&
           now >= r->next_check;
}

void wzp_rtx_check_sent(wzp_rtx *r, wzp_ts now)
{
    wzp_rtx_on_udp_sent(r, true, now);
    r->next_check = r->via_tcp ? now + WZP_RTX_CHECK_INTERVAL : WZP_TS_NEVER;
}

wzp_ts wzp_rtx_deadline(const wzp_rtx *r)
{
    if (r->mode != WZP_RELAY_TRANSPORT_AUTO)
        return r->mode == WZP_RELAY_TRANSPORT_TCP && !r->tcp_up && !r->tcp_connecting
                   ? r->tcp_retry_at
                   : WZP_TS_NEVER;
    wzp_ts d = r->next_check;
    if (r->unanswered != WZP_TS_NEVER)
        d = wzp_ts_min(d, r->unanswered + WZP_RTX_UDP_DEAD);
    if (!r->via_tcp && r->media_last_rx)
        d = wzp_ts_min(d, r->media_last_rx + WZP_RTX_SILENCE);
    if (!r->tcp_up && !r->tcp_connecting) {
        if (r->unanswered != WZP_TS_NEVER)
            d = wzp_ts_min(d, r->tcp_retry_at > r->unanswered + WZP_RTX_DOUBT
                                  ? r->tcp_retry_at
                                  : r->unanswered + WZP_RTX_DOUBT);
    }
    if (r->udp_ok && (r->tcp_up || r->tcp_connecting))
        d = wzp_ts_min(d, r->udp_ok_since + WZP_RTX_TCP_LINGER);
    return d;
}
