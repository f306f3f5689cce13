/*
 * A ring on the speaker (include/wzp/audio.h): src/audio/ring_tone.h's sound
 * fed to a playback-only src/audio/audio_io.h by a thread of its own, one
 * 20 ms frame per 20 ms of the monotonic clock. The device thread behind
 * audio_io does the real-time part; this one only keeps its queue fed.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include <wzp/audio.h>
#include <wzp/wzp.h>

#include "audio/audio_io.h"
#include "audio/ring_tone.h"
#include "net/clock.h"

struct wzp_ringer {
    wzp_audio_io *io;
    wzp_ring_tone tone;
    pthread_t thread;
    atomic_bool stop;
};

static void sleep_until(wzp_ts t)
{
    struct timespec ts = {(time_t)(t / WZP_SEC(1)), (long)(t % WZP_SEC(1))};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

static void *ringer_main(void *arg)
{
    wzp_ringer *r = arg;
    int16_t pcm[WZP_AUDIO_FRAME_SAMPLES];
    wzp_ts next = wzp_now();
    while (!atomic_load(&r->stop)) {
        wzp_ring_tone_fill(&r->tone, pcm, WZP_AUDIO_FRAME_SAMPLES);
        wzp_audio_io_play(r->io, pcm);
        next += WZP_MS(WZP_AUDIO_FRAME_MS);
        wzp_ts now = wzp_now();
        if (now > next + WZP_MS(200))
            next = now; /* we were not scheduled for a while: no catching up in a burst */
        sleep_until(next);
    }
    return NULL;
}

int wzp_ringer_start(wzp_ringer **out, const wzp_audio_config *cfg, wzp_ring_kind kind,
                     unsigned volume_pct)
{
    if (!out || !cfg || (kind != WZP_RING_INCOMING && kind != WZP_RING_BACK))
        return WZP_ERR_INVALID;
    wzp_ringer *r = calloc(1, sizeof(*r));
    if (!r)
        return WZP_ERR_NOMEM;
    wzp_ring_tone_init(&r->tone, kind, volume_pct);
    atomic_init(&r->stop, false);
    wzp_audio_io_config ic;
    wzp_audio_io_config_default(&ic);
    ic.backend = cfg->backend;
    ic.output = cfg->output;
    ic.capture = false;
    ic.playback = true;
    int rc = wzp_audio_io_new(&r->io, &ic);
    if (rc == 0 && pthread_create(&r->thread, NULL, ringer_main, r) != 0)
        rc = WZP_ERR_NOMEM;
    if (rc < 0) {
        wzp_audio_io_free(r->io);
        free(r);
        return rc;
    }
    *out = r;
    return 0;
}

void wzp_ringer_stop(wzp_ringer *r)
{
    if (!r)
        return;
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    wzp_audio_io_free(r->io);
    free(r);
}
