/* What a device thread does next: see device_policy.h. */
#include "audio/device_policy.h"

#include <string.h>

#include <wzp/wzp.h>

#define BEHIND_MAX WZP_MS(200) /* pacing: further behind than this re-anchors */

void wzp_device_policy_init(wzp_device_policy *p, const wzp_device_policy_config *cfg)
{
    memset(p, 0, sizeof(*p));
    p->cfg = *cfg;
    if (!p->cfg.stall)
        p->cfg.stall = WZP_MS(150);
    if (p->cfg.max_stalls <= 0)
        p->cfg.max_stalls = 6;
    if (!p->cfg.backoff_min)
        p->cfg.backoff_min = WZP_MS(200);
    if (!p->cfg.backoff_max)
        p->cfg.backoff_max = WZP_SEC(2);
    p->use_default = !cfg->want_named;
    p->backoff = p->cfg.backoff_min;
}

wzp_device_action wzp_device_policy_next(wzp_device_policy *p, wzp_ts now, wzp_ts *until)
{
    if (p->open)
        return WZP_DEVICE_IO;
    if (p->retry_at > now) {
        *until = p->retry_at;
        return WZP_DEVICE_WAIT;
    }
    return p->use_default ? WZP_DEVICE_OPEN_DEFAULT : WZP_DEVICE_OPEN_WANTED;
}

void wzp_device_policy_opened(wzp_device_policy *p, int rc, wzp_ts now)
{
    if (rc == 0) {
        p->open = true;
        p->flowing = false;
        p->resync = true;
        p->timeouts = 0;
        p->backoff = p->cfg.backoff_min;
        p->retry_at = 0;
        p->anchor = now;
        p->paced = 0;
        return;
    }
    p->st.open_failures++;
    if (!p->use_default) {
        p->use_default = true; /* the named device failed: the default, at once */
        return;
    }
    p->retry_at = now + p->backoff;
    p->backoff = p->backoff * 2 > p->cfg.backoff_max ? p->cfg.backoff_max : p->backoff * 2;
}

wzp_device_io_verdict wzp_device_policy_io(wzp_device_policy *p, int rc, wzp_ts started,
                                           wzp_ts ended)
{
    if (rc == WZP_ERR_TIMEOUT && ++p->timeouts < p->cfg.max_stalls) {
        p->st.stalls++;
        p->resync = true;
        return WZP_DEVICE_IO_RETRY;
    }
    if (rc < 0) {
        p->st.losses++;
        p->open = p->flowing = false;
        p->use_default = true;
        p->timeouts = 0;
        return WZP_DEVICE_IO_LOST;
    }
    p->timeouts = 0;
    if (ended - started > p->cfg.stall) {
        p->st.stalls++;
        p->resync = true;
        return WZP_DEVICE_IO_STALL;
    }
    p->flowing = true;
    return WZP_DEVICE_IO_OK;
}

wzp_ts wzp_device_policy_pace(wzp_device_policy *p, wzp_ts started, wzp_ts ended,
                              bool queued_backlog)
{
    if (queued_backlog || ended - started >= p->cfg.period / 2) {
        p->anchor = ended; /* a device that blocks sets its own pace */
        p->paced = 0;
        return 0;
    }
    p->paced++;
    wzp_ts media = p->paced * p->cfg.period, elapsed = ended - p->anchor;
    if (media > elapsed + p->cfg.buffer)
        return media - elapsed - p->cfg.buffer;
    if (elapsed > media + BEHIND_MAX) { /* a stall: do not race to catch up */
        p->anchor = ended;
        p->paced = 0;
    }
    return 0;
}

bool wzp_device_policy_flowing(const wzp_device_policy *p)
{
    return p->open && p->flowing;
}

bool wzp_device_policy_resync(const wzp_device_policy *p)
{
    return p->resync;
}

void wzp_device_policy_resynced(wzp_device_policy *p)
{
    p->resync = false;
}
