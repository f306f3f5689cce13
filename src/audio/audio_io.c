/* Live sound devices for one call: see audio_io.h. */
#include "audio/audio_io.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wzp/wzp.h>

#include "audio/device_policy.h"
#include "audio/drift.h"
#include "audio/pcm_ring.h"
#include "common/log.h"
#include "net/clock.h"

#define FRAME        WZP_AUDIO_FRAME_SAMPLES
#define RATE         WZP_AUDIO_RATE
#define RING_FRAMES  8  /* 160 ms: far more than either side ever lags in normal operation */
#define RING_PERIODS 16 /* the same in 10 ms periods (power of two; longer periods: longer) */
/* The drift FIFOs drop whole frames beyond target + this: after a burst (a stall, a late
 * wake-up) stale audio is dropped at once instead of played 2 % fast for seconds. */
#define MAX_EXCESS WZP_MS(80)

/* One direction: its thread, its ring, the device it has open. */
typedef struct audio_dir {
    wzp_audio_io *io;
    wzp_audio_dir dir;
    char want[WZP_AUDIO_NAME_MAX]; /* requested device, "" = default */
    pthread_t thread;
    bool started;
    wzp_pcm_ring *ring;
    wzp_drift *drift; /* capture: the call thread's; playback: the device thread's */
    int16_t *period_buf;
    int16_t frame[FRAME]; /* playback: ring -> drift */
    /* Published by the device thread (atomics: read from the call thread). */
    _Atomic uint64_t losses, open_failures, stalls, underruns, delay_samples;
    _Atomic int64_t drift_ppb, level_us;
    /* The open device's name: written on the open/lost path only, under name_mu. */
    pthread_mutex_t name_mu;
    char name[WZP_AUDIO_NAME_MAX];
} audio_dir;

struct wzp_audio_io {
    const wzp_audio_backend *be;
    unsigned period, latency_ms;
    atomic_bool stop;
    audio_dir cap, play;
    bool run_cap, run_play;
};

void wzp_audio_io_config_default(wzp_audio_io_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->capture = cfg->playback = true;
}

/* --- device threads -------------------------------------------------------------------------- */

static void sleep_ns(wzp_ts ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000ULL),
                          .tv_nsec = (long)(ns % 1000000000ULL)};
    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
        ;
}

/* Sleeps up to ns in short steps, returning early when the io is stopping. */
static void nap(wzp_audio_io *io, wzp_ts ns)
{
    for (wzp_ts slept = 0; slept < ns && !atomic_load(&io->stop); slept += WZP_MS(20))
        sleep_ns(ns - slept < WZP_MS(20) ? ns - slept : WZP_MS(20));
}

static void set_name(audio_dir *d, const char *name)
{
    pthread_mutex_lock(&d->name_mu);
    snprintf(d->name, sizeof(d->name), "%s", name ? name : "");
    pthread_mutex_unlock(&d->name_mu);
}

static const char *dir_word(const audio_dir *d)
{
    return d->dir == WZP_AUDIO_CAPTURE ? "input" : "output";
}

/* Playback: everything the call thread queued goes into the drift FIFO, then one period out. */
static void playback_fill(audio_dir *d, int16_t *buf, unsigned n, wzp_ts now)
{
    for (size_t k = wzp_pcm_ring_count(d->ring); k > 0; k--)
        if (wzp_pcm_ring_pop(d->ring, d->frame))
            wzp_drift_push(d->drift, d->frame, FRAME, now);
    wzp_drift_pull(d->drift, buf, n, now);
    wzp_drift_stats st;
    wzp_drift_get_stats(d->drift, &st);
    atomic_store(&d->underruns, st.underruns);
    atomic_store(&d->drift_ppb, (int64_t)(st.drift_ppm * 1000.0));
    atomic_store(&d->level_us, (int64_t)(st.level / 1000));
}

static void publish(audio_dir *d, const wzp_device_policy *pol)
{
    atomic_store(&d->losses, pol->st.losses);
    atomic_store(&d->open_failures, pol->st.open_failures);
    atomic_store(&d->stalls, pol->st.stalls);
}

/* Performs what src/audio/device_policy.h decides. */
static void *device_thread(void *arg)
{
    audio_dir *d = arg;
    wzp_audio_io *io = d->io;
    const wzp_audio_backend *be = io->be;
    wzp_device_policy pol;
    wzp_device_policy_config pc = {.want_named = d->want[0] != '\0',
                                   .period = (wzp_ts)io->period * WZP_SEC(1) / RATE,
                                   .buffer = WZP_MS(io->latency_ms)};
    wzp_device_policy_init(&pol, &pc);
    wzp_audio_stream *s = NULL;
    bool named_flowing = false;
    while (!atomic_load(&io->stop)) {
        wzp_ts now = wzp_now(), until = 0;
        wzp_device_action act = wzp_device_policy_next(&pol, now, &until);
        if (act == WZP_DEVICE_WAIT) {
            if (d->dir == WZP_AUDIO_PLAYBACK)
                wzp_pcm_ring_discard(d->ring, 0); /* no device: nothing may pile up */
            nap(io, until - now < WZP_MS(20) ? until - now : WZP_MS(20));
            continue;
        }
        if (act != WZP_DEVICE_IO) {
            wzp_audio_stream_config sc = {.dir = d->dir,
                                          .device = act == WZP_DEVICE_OPEN_WANTED ? d->want : NULL,
                                          .period_samples = io->period,
                                          .latency_ms = io->latency_ms,
                                          .app_name = "wzp"};
            int rc = be->open(&s, &sc);
            if (rc == 0)
                WZP_INFO("audio: %s device %s open (%s)", dir_word(d), be->device_name(s),
                         be->name);
            else if (act == WZP_DEVICE_OPEN_WANTED)
                WZP_WARN("audio: cannot open %s device '%s' (%s); using the default device",
                         dir_word(d), d->want, wzp_strerror(rc));
            else
                WZP_DEBUG("audio: no %s device (%s); retrying", dir_word(d), wzp_strerror(rc));
            wzp_device_policy_opened(&pol, rc, wzp_now());
            publish(d, &pol);
            continue;
        }
        if (wzp_device_policy_resync(&pol) && d->dir == WZP_AUDIO_PLAYBACK) {
            wzp_pcm_ring_discard(d->ring, 0);
            wzp_drift_flush(d->drift);
        }
        wzp_ts before = wzp_now();
        int rc;
        if (d->dir == WZP_AUDIO_CAPTURE) {
            rc = be->read(s, d->period_buf, io->period);
        } else {
            playback_fill(d, d->period_buf, io->period, before);
            rc = be->write(s, d->period_buf, io->period);
        }
        wzp_ts after = wzp_now();
        wzp_device_io_verdict v = wzp_device_policy_io(&pol, rc, before, after);
        publish(d, &pol);
        if (v == WZP_DEVICE_IO_RETRY)
            continue;
        if (v == WZP_DEVICE_IO_LOST) {
            WZP_WARN("audio: %s device %s failed (%s); switching to the default device",
                     dir_word(d), be->device_name(s), wzp_strerror(rc));
            be->close(s);
            s = NULL;
            named_flowing = false;
            set_name(d, "");
            continue;
        }
        if (!named_flowing && wzp_device_policy_flowing(&pol)) {
            named_flowing = true;
            set_name(d, be->device_name(s));
        }
        unsigned queued = be->delay ? be->delay(s) : 0;
        bool backlog = d->dir == WZP_AUDIO_CAPTURE && queued >= io->period;
        if (d->dir == WZP_AUDIO_CAPTURE) {
            /* A capture backlog after an open or a stall is old sound: drained, not sent. Each
               period goes to the ring as it is, so the call thread waits for at most 10 ms of
               it; a full ring drops (and counts) it. */
            if (!(backlog && wzp_device_policy_resync(&pol)))
                wzp_pcm_ring_push(d->ring, d->period_buf);
        } else {
            atomic_store(&d->delay_samples, queued);
        }
        if (v == WZP_DEVICE_IO_OK && !backlog)
            wzp_device_policy_resynced(&pol);
        nap(io, wzp_device_policy_pace(&pol, before, after, backlog));
    }
    if (s)
        be->close(s);
    return NULL;
}

/* --- lifetime -------------------------------------------------------------------------------- */

static int dir_init(audio_dir *d, wzp_audio_io *io, wzp_audio_dir dir, const char *want,
                    wzp_ts target)
{
    d->io = io;
    d->dir = dir;
    snprintf(d->want, sizeof(d->want), "%s", want ? want : "");
    pthread_mutex_init(&d->name_mu, NULL);
    /* Capture rings carry device periods, playback rings the call's 20 ms frames: 160 ms. */
    wzp_pcm_ring_config rc = {.frame_samples = dir == WZP_AUDIO_CAPTURE ? io->period : FRAME,
                              .capacity = dir == WZP_AUDIO_CAPTURE ? RING_PERIODS : RING_FRAMES};
    wzp_drift_config dc;
    wzp_drift_config_default(&dc);
    dc.target = target;
    dc.max_excess = MAX_EXCESS;
    dc.trim_on_start = true;
    d->period_buf = calloc(io->period, sizeof(int16_t));
    if (!d->period_buf)
        return WZP_ERR_NOMEM;
    int err = wzp_pcm_ring_new(&d->ring, &rc);
    if (err == 0)
        err = wzp_drift_new(&d->drift, &dc);
    return err;
}

static void dir_free(audio_dir *d)
{
    if (d->started)
        pthread_join(d->thread, NULL);
    wzp_pcm_ring_free(d->ring);
    wzp_drift_free(d->drift);
    free(d->period_buf);
    if (d->io)
        pthread_mutex_destroy(&d->name_mu);
}

void wzp_audio_io_free(wzp_audio_io *io)
{
    if (!io)
        return;
    atomic_store(&io->stop, true);
    dir_free(&io->cap);
    dir_free(&io->play);
    free(io);
}

int wzp_audio_io_new(wzp_audio_io **out, const wzp_audio_io_config *cfg)
{
    wzp_audio_io_config def;
    if (!cfg) {
        wzp_audio_io_config_default(&def);
        cfg = &def;
    }
    if (!out || cfg->period_ms > 100)
        return WZP_ERR_INVALID;
    const wzp_audio_backend *be = wzp_audio_backend_pick(cfg->backend);
    if (!be)
        return WZP_ERR_DEVICE;
    wzp_audio_io *io = calloc(1, sizeof(*io));
    if (!io)
        return WZP_ERR_NOMEM;
    io->be = be;
    io->period = (cfg->period_ms ? cfg->period_ms : 10) * (RATE / 1000);
    io->latency_ms = cfg->latency_ms ? cfg->latency_ms : 20;
    atomic_init(&io->stop, false);
    io->run_cap = cfg->capture;
    io->run_play = cfg->playback;
    int rc = 0;
    if (io->run_cap)
        rc = dir_init(&io->cap, io, WZP_AUDIO_CAPTURE, cfg->input,
                      cfg->capture_target ? cfg->capture_target : WZP_MS(10));
    if (rc == 0 && io->run_play)
        rc = dir_init(&io->play, io, WZP_AUDIO_PLAYBACK, cfg->output,
                      cfg->playback_target ? cfg->playback_target : WZP_MS(30));
    audio_dir *dirs[2] = {io->run_cap ? &io->cap : NULL, io->run_play ? &io->play : NULL};
    for (int i = 0; i < 2 && rc == 0; i++) {
        if (!dirs[i])
            continue;
        if (pthread_create(&dirs[i]->thread, NULL, device_thread, dirs[i]) != 0)
            rc = WZP_ERR_NOMEM;
        else
            dirs[i]->started = true;
    }
    if (rc < 0) {
        wzp_audio_io_free(io);
        return rc;
    }
    *out = io;
    return 0;
}

/* --- the call thread's side ------------------------------------------------------------------ */

void wzp_audio_io_capture(wzp_audio_io *io, int16_t pcm[WZP_AUDIO_FRAME_SAMPLES], wzp_ts now)
{
    if (!io->run_cap) {
        memset(pcm, 0, FRAME * sizeof(int16_t));
        return;
    }
    audio_dir *d = &io->cap;
    int16_t f[WZP_DRIFT_MAX_PUSH];
    for (size_t k = wzp_pcm_ring_count(d->ring); k > 0; k--)
        if (wzp_pcm_ring_pop(d->ring, f))
            wzp_drift_push(d->drift, f, io->period, now);
    wzp_drift_pull(d->drift, pcm, FRAME, now);
}

void wzp_audio_io_play(wzp_audio_io *io, const int16_t pcm[WZP_AUDIO_FRAME_SAMPLES])
{
    if (io->run_play)
        wzp_pcm_ring_push(io->play.ring, pcm);
}

static void dir_name(audio_dir *d, char *out, size_t cap)
{
    out[0] = '\0';
    if (!d->io)
        return;
    pthread_mutex_lock(&d->name_mu);
    snprintf(out, cap, "%s", d->name);
    pthread_mutex_unlock(&d->name_mu);
}

void wzp_audio_io_get_stats(wzp_audio_io *io, wzp_audio_io_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->backend = io->be->name;
    dir_name(&io->cap, out->input, sizeof(out->input));
    dir_name(&io->play, out->output, sizeof(out->output));
    wzp_pcm_ring_stats rs;
    if (io->run_cap) {
        wzp_pcm_ring_get_stats(io->cap.ring, &rs);
        out->captured = rs.pushed;
        out->capture_overruns = rs.overruns;
        wzp_drift_stats ds;
        wzp_drift_get_stats(io->cap.drift, &ds);
        out->capture_underruns = ds.underruns;
        out->capture_drift_ppm = ds.drift_ppm;
        out->capture_level_ms = (double)ds.level / 1e6;
    }
    if (io->run_play) {
        wzp_pcm_ring_get_stats(io->play.ring, &rs);
        out->played = rs.popped;
        out->playback_overruns = rs.overruns;
        out->playback_underruns = atomic_load(&io->play.underruns);
        out->playback_drift_ppm = (double)atomic_load(&io->play.drift_ppb) / 1000.0;
        out->playback_level_ms = (double)atomic_load(&io->play.level_us) / 1000.0;
        out->playback_device_ms = (double)atomic_load(&io->play.delay_samples) * 1000.0 / RATE;
    }
    out->device_losses = atomic_load(&io->cap.losses) + atomic_load(&io->play.losses);
    out->open_failures = atomic_load(&io->cap.open_failures) + atomic_load(&io->play.open_failures);
    out->stalls = atomic_load(&io->cap.stalls) + atomic_load(&io->play.stalls);
}
