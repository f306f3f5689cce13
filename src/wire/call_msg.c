/* Call-control codec: wzp_call_msg <-> protobuf-c wzpcall.CallMsg. */
#include "wire/call_msg.h"

#include <string.h>

#include <wzp/wzp.h>

#include "wzp_call.pb-c.h"

int wzp_call_msg_encode(const wzp_call_msg *m, uint8_t *out, size_t cap)
{
    if (!m || !out)
        return WZP_ERR_INVALID;
    Wzpcall__CallMsg pm = WZPCALL__CALL_MSG__INIT;
    Wzpcall__Hangup h = WZPCALL__HANGUP__INIT;
    Wzpcall__Mute mu = WZPCALL__MUTE__INIT;
    Wzpcall__Stats st = WZPCALL__STATS__INIT;
    Wzpcall__Answer an = WZPCALL__ANSWER__INIT;
    Wzpcall__Report rp = WZPCALL__REPORT__INIT;
    const wzp_call_report *r = &m->u.report;
    switch (m->type) {
    case WZP_CALL_MSG_HANGUP:
        h.error = m->u.hangup.error;
        pm.body_case = WZPCALL__CALL_MSG__BODY_HANGUP;
        pm.hangup = &h;
        break;
    case WZP_CALL_MSG_MUTE:
        mu.muted = m->u.mute.muted;
        pm.body_case = WZPCALL__CALL_MSG__BODY_MUTE;
        pm.mute = &mu;
        break;
    case WZP_CALL_MSG_STATS:
        st.frames_received = m->u.stats.frames_received;
        st.frames_lost = m->u.stats.frames_lost;
        st.rtt_us = m->u.stats.rtt_us;
        pm.body_case = WZPCALL__CALL_MSG__BODY_STATS;
        pm.stats = &st;
        break;
    case WZP_CALL_MSG_ANSWER:
        pm.body_case = WZPCALL__CALL_MSG__BODY_ANSWER;
        pm.answer = &an;
        break;
    case WZP_CALL_MSG_REPORT:
        if (r->missing > r->slots || r->unrepaired > r->missing || r->runs > r->missing ||
            r->max_run > r->missing)
            return WZP_ERR_INVALID;
        rp.interval_ms = r->interval_ms;
        rp.slots = r->slots;
        rp.missing = r->missing;
        rp.runs = r->runs;
        rp.max_run = r->max_run;
        rp.unrepaired = r->unrepaired;
        rp.jitter_us = r->jitter_us;
        rp.delay_us = r->delay_us;
        rp.redundancy = r->redundancy;
        pm.body_case = WZPCALL__CALL_MSG__BODY_REPORT;
        pm.report = &rp;
        break;
    default:
        return WZP_ERR_INVALID;
    }
    size_t n = wzpcall__call_msg__get_packed_size(&pm);
    if (n > cap || n > WZP_CALL_MSG_MAX_SIZE)
        return WZP_ERR_TOO_BIG;
    wzpcall__call_msg__pack(&pm, out);
    return (int)n;
}

int wzp_call_msg_decode(const uint8_t *buf, size_t len, wzp_call_msg *m)
{
    if (!m || (!buf && len) || len > WZP_CALL_MSG_MAX_SIZE)
        return WZP_ERR_MALFORMED;
    memset(m, 0, sizeof(*m));
    Wzpcall__CallMsg *pm = wzpcall__call_msg__unpack(NULL, len, buf);
    if (!pm)
        return WZP_ERR_MALFORMED;
    int rc = 0;
    switch (pm->body_case) {
    case WZPCALL__CALL_MSG__BODY_HANGUP:
        m->type = WZP_CALL_MSG_HANGUP;
        m->u.hangup.error = pm->hangup && pm->hangup->error;
        break;
    case WZPCALL__CALL_MSG__BODY_MUTE:
        m->type = WZP_CALL_MSG_MUTE;
        m->u.mute.muted = pm->mute && pm->mute->muted;
        break;
    case WZPCALL__CALL_MSG__BODY_STATS:
        m->type = WZP_CALL_MSG_STATS;
        if (pm->stats) {
            m->u.stats.frames_received = pm->stats->frames_received;
            m->u.stats.frames_lost = pm->stats->frames_lost;
            m->u.stats.rtt_us = pm->stats->rtt_us;
        }
        break;
    case WZPCALL__CALL_MSG__BODY_ANSWER:
        m->type = WZP_CALL_MSG_ANSWER;
        break;
    case WZPCALL__CALL_MSG__BODY_REPORT:
        m->type = WZP_CALL_MSG_REPORT;
        if (pm->report) {
            const Wzpcall__Report *p = pm->report;
            wzp_call_report *r = &m->u.report;
            /* Counts that contradict each other mean a broken peer: not a report. */
            if (p->missing > p->slots || p->unrepaired > p->missing || p->runs > p->missing ||
                p->max_run > p->missing) {
                rc = WZP_ERR_MALFORMED;
                break;
            }
            r->interval_ms = p->interval_ms;
            r->slots = p->slots;
            r->missing = p->missing;
            r->runs = p->runs;
            r->max_run = p->max_run;
            r->unrepaired = p->unrepaired;
            r->jitter_us = p->jitter_us;
            r->delay_us = p->delay_us;
            r->redundancy = p->redundancy;
        }
        break;
    default:
        rc = WZP_ERR_AGAIN; /* no body, or one a newer peer added */
        break;
    }
    wzpcall__call_msg__free_unpacked(pm, NULL);
    return rc;
}
