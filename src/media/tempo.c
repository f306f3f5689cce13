#include "media/tempo.h"

#include <stdlib.h>
#include <string.h>

#include <sonic.h>
#include <wzp/wzp.h>

#include "media/audio_format.h"

struct wzp_tempo {
    sonicStream s;
    bool active; /* samples went through the scaler since the last flush */
};

int wzp_tempo_new(wzp_tempo **out)
{
    wzp_tempo *t = calloc(1, sizeof(*t));
    if (!t)
        return WZP_ERR_NOMEM;
    t->s = sonicCreateStream(WZP_AUDIO_RATE, 1);
    if (!t->s) {
        free(t);
        return WZP_ERR_NOMEM;
    }
    *out = t;
    return 0;
}

void wzp_tempo_free(wzp_tempo *t)
{
    if (!t)
        return;
    sonicDestroyStream(t->s);
    free(t);
}

static size_t drain(wzp_tempo *t, int16_t *out, size_t cap)
{
    size_t got = 0;
    while (got < cap) {
        int n = sonicReadShortFromStream(t->s, out + got, (int)(cap - got));
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

size_t wzp_tempo_feed(wzp_tempo *t, const int16_t *pcm, size_t n, float speed, int16_t *out,
                      size_t cap)
{
    if (speed == 1.0f && !t->active) {
        size_t k = n < cap ? n : cap;
        memcpy(out, pcm, k * sizeof(*pcm));
        return k;
    }
    if (speed == 1.0f) {
        /* Back to normal: what the scaler holds plays first, at its old speed. */
        sonicFlushStream(t->s);
        size_t got = drain(t, out, cap);
        if (sonicSamplesAvailable(t->s) == 0)
            t->active = false;
        else
            sonicSetSpeed(t->s, 1.0f);
        if (!t->active) {
            size_t k = n < cap - got ? n : cap - got;
            memcpy(out + got, pcm, k * sizeof(*pcm));
            return got + k;
        }
        /* Rare: the output was full. The frame queues behind what is pending. */
        sonicWriteShortToStream(t->s, (short *)pcm, (int)n);
        return got;
    }
    sonicSetSpeed(t->s, speed);
    t->active = true;
    if (!sonicWriteShortToStream(t->s, (short *)pcm, (int)n))
        return 0; /* out of memory: this frame is lost, the stream goes on */
    return drain(t, out, cap);
}

bool wzp_tempo_active(const wzp_tempo *t)
{
    return t && t->active;
}
