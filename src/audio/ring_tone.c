/* The sounds of a phone that rings: see ring_tone.h. */
#include "audio/ring_tone.h"

#include <math.h>

#include "media/audio_format.h"

#define MS(x)   ((uint64_t)(x)*WZP_AUDIO_RATE / 1000)
#define FADE    MS(10)
#define BASE_DB (-12.0)

typedef struct cadence {
    double hz[2]; /* 0 for an unused second tone */
    uint64_t on[2], off[2];
} cadence;

static const cadence *cadence_of(wzp_ring_kind kind)
{
    static const cadence incoming = {{400, 450}, {MS(400), MS(400)}, {MS(200), MS(2000)}};
    static const cadence back = {{425, 0}, {MS(1000), 0}, {MS(4000), 0}};
    return kind == WZP_RING_BACK ? &back : &incoming;
}

/* Samples into the current burst, or -1 in a pause; *left: samples until the burst ends. */
static int64_t burst_pos(const cadence *c, uint64_t pos, uint64_t *left)
{
    uint64_t period = c->on[0] + c->off[0] + c->on[1] + c->off[1];
    uint64_t p = pos % period;
    for (int i = 0; i < 2; i++) {
        if (p < c->on[i]) {
            *left = c->on[i] - p;
            return (int64_t)p;
        }
        p -= c->on[i];
        if (p < c->off[i])
            return -1;
        p -= c->off[i];
    }
    return -1;
}

int wzp_ring_tone_on_at(wzp_ring_kind kind, uint64_t pos)
{
    uint64_t left;
    return burst_pos(cadence_of(kind), pos, &left) >= 0;
}

void wzp_ring_tone_init(wzp_ring_tone *t, wzp_ring_kind kind, unsigned volume_pct)
{
    t->kind = kind;
    t->pos = 0;
    if (volume_pct > WZP_VOLUME_MAX)
        volume_pct = WZP_VOLUME_MAX;
    t->amp = pow(10.0, BASE_DB / 20.0) * volume_pct / 100.0;
    if (t->amp > 1.0)
        t->amp = 1.0;
}

void wzp_ring_tone_fill(wzp_ring_tone *t, int16_t *out, size_t n)
{
    const cadence *c = cadence_of(t->kind);
    int tones = c->hz[1] > 0 ? 2 : 1;
    for (size_t i = 0; i < n; i++, t->pos++) {
        uint64_t left;
        int64_t in = burst_pos(c, t->pos, &left);
        if (in < 0) {
            out[i] = 0;
            continue;
        }
        double env = 1.0;
        if ((uint64_t)in < FADE)
            env = (double)in / FADE;
        else if (left < FADE)
            env = (double)left / FADE;
        /* Phase from the absolute sample count: continuous, and no state to drift. */
        double s = 0, secs = (double)t->pos / WZP_AUDIO_RATE;
        for (int k = 0; k < tones; k++)
            s += sin(2 * M_PI * c->hz[k] * secs);
        out[i] = (int16_t)lrint(32767.0 * t->amp * env * s / tones);
    }
}
