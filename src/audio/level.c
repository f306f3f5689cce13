/* Signal level: see level.h. */
#include "audio/level.h"

#include <math.h>

#define RELEASE_DB_PER_MS 0.02 /* 20 dB/s */

void wzp_level_meter_init(wzp_level_meter *m)
{
    m->db = WZP_LEVEL_FLOOR_DB;
}

void wzp_level_meter_feed(wzp_level_meter *m, const int16_t *pcm, size_t n, double frame_ms)
{
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += (double)pcm[i] * pcm[i];
    double rms = n ? sqrt(sum / (double)n) / 32768.0 : 0;
    double db = rms > 0 ? 20 * log10(rms) : WZP_LEVEL_FLOOR_DB;
    if (db < WZP_LEVEL_FLOOR_DB)
        db = WZP_LEVEL_FLOOR_DB;
    double fallen = m->db - RELEASE_DB_PER_MS * frame_ms;
    m->db = db > fallen ? db : fallen;
    if (m->db < WZP_LEVEL_FLOOR_DB)
        m->db = WZP_LEVEL_FLOOR_DB;
}

void wzp_volume_init(wzp_volume *v)
{
    v->pct = 100;
    v->gain_prev = 1.0;
}

void wzp_volume_set(wzp_volume *v, unsigned pct)
{
    v->pct = pct > WZP_VOLUME_MAX ? WZP_VOLUME_MAX : pct;
}

void wzp_volume_apply(wzp_volume *v, const int16_t *in, int16_t *out, size_t n)
{
    double to = v->pct / 100.0, from = v->gain_prev;
    if (to == 1.0 && from == 1.0) {
        if (out != in)
            for (size_t i = 0; i < n; i++)
                out[i] = in[i];
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double g = from + (to - from) * (double)(i + 1) / (double)n;
        double s = in[i] * g;
        out[i] = (int16_t)(s > 32767 ? 32767 : s < -32768 ? -32768 : lrint(s));
    }
    v->gain_prev = to;
}
