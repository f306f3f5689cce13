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

#include "audio/drift.h"
#include "audio/pcm_ring.h"
#include "common/log.h"
#include "net/clock.h"

#define FRAME       WZP_AUDIO_FRAME_SAMPLES
#define RATE        WZP_AUDIO_RATE
#define RING_FRAMES 8 /* 160 ms: far more than either side ever lags in normal operation */
#define BACKOFF_MIN WZP_MS(200)
#define BACKOFF_MAX WZP_SEC(2)
/* Timeouts in a row before a device counts as lost. A sound server may take a second or two to
 * start a suspended device (seen with PulseAudio's null sinks), so one timeout is a stall. */
#define MAX_STALLS 6
/* A read or write that returns this much later than a device buffer allows was a stall too. */
#define STALL_NS WZP_MS(150)
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
    int16_t frame[FRAME]; /* capture: a frame being assembled; playback: ring -> drift */
    size_t frame_fill;
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

/* Real time for devices that never block. A call that blocked for half a period or more came
 * from a paced device: that re-anchors. Calls that return at once are allowed to run ahead of
 * the clock by the device buffer only, then sleep. */
typedef struct pacer {
    wzp_ts anchor, ahead_limit, period_ns;
    uint64_t samples;
} pacer;

static void pacer_reset(pacer *p, wzp_ts now)
{
    p->anchor = now;
    p->samples = 0;
}

static void pacer_step(pacer *p, wzp_audio_io *io, wzp_ts before, wzp_ts after, unsigned n)
{
    if (after - before >= p->period_ns / 2) {
        pacer_reset(p, after);
        return;
    }
    p->samples += n;
    wzp_ts media = (wzp_ts)(p->samples * 1000000000ULL / RATE);
    wzp_ts elapsed = after - p->anchor;
    if (media > elapsed + p->ahead_limit)
        nap(io, media - elapsed - p->ahead_limit);
    else if (elapsed > media + WZP_MS(200))
        pacer_reset(p, after); /* we fell behind (a stall): do not race to catch up */
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

/* Opens the wanted device, else the default; NULL while there is none (with backoff). */
static wzp_audio_stream *open_device(audio_dir *d, bool *use_default, wzp_ts *backoff)
{
    wzp_audio_io *io = d->io;
    wzp_audio_stream_config sc = {.dir = d->dir,
                                  .device = *use_default ? NULL : d->want,
                                  .period_samples = io->period,
                                  .latency_ms = io->latency_ms,
                                  .app_name = "wzp"};
    wzp_audio_stream *s = NULL;
    int rc = io->be->open(&s, &sc);
    if (rc == 0) {
        WZP_INFO("audio: %s device %s open (%s)", dir_word(d), io->be->device_name(s),
                 io->be->name);
        *backoff = BACKOFF_MIN;
        return s;
    }
    atomic_fetch_add(&d->open_failures, 1);
    if (!*use_default) {
        WZP_WARN("audio: cannot open %s device '%s' (%s); using the default device", dir_word(d),
                 d->want, wzp_strerror(rc));
        *use_default = true;
        return NULL;
    }
    WZP_DEBUG("audio: no %s device (%s); retrying", dir_word(d), wzp_strerror(rc));
    nap(io, *backoff);
    *backoff = *backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : *backoff * 2;
    return NULL;
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

/* Capture: periods are assembled into 20 ms frames for the ring. */
static void capture_store(audio_dir *d, const int16_t *buf, unsigned n)
{
    while (n > 0) {
        size_t take = FRAME - d->frame_fill < n ? FRAME - d->frame_fill : n;
        memcpy(d->frame + d->frame_fill, buf, take * sizeof(int16_t));
        d->frame_fill += take;
        buf += take;
        n -= (unsigned)take;
        if (d->frame_fill == FRAME) {
            wzp_pcm_ring_push(d->ring, d->frame); /* full: dropped and counted by the ring */
            d->frame_fill = 0;
        }
    }
}

static void *device_thread(void *arg)
{
    audio_dir *d = arg;
    wzp_audio_io *io = d->io;
    const wzp_audio_backend *be = io->be;
    bool use_default = d->want[0] == '\0';
    wzp_ts backoff = BACKOFF_MIN;
    wzp_audio_stream *s = NULL;
    pacer p = {.period_ns = (wzp_ts)io->period * 1000000000ULL / RATE,
               .ahead_limit = WZP_MS(io->latency_ms)};
    int stalls = 0;
    bool flowing = false; /* the device name is published once audio moves */
    bool resync = true;   /* after an open or a stall: what is queued is stale */
    while (!atomic_load(&io->stop)) {
        if (!s) {
            s = open_device(d, &use_default, &backoff);
            if (!s) {
                /* No device: keep the call thread's frames from piling up. */
                if (d->dir == WZP_AUDIO_PLAYBACK)
                    wzp_pcm_ring_discard(d->ring, 0);
                continue;
            }
            d->frame_fill = 0;
            resync = true;
            pacer_reset(&p, wzp_now());
        }
        if (resync && d->dir == WZP_AUDIO_PLAYBACK) {
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
        if (rc >= 0 && after - before > STALL_NS) {
            atomic_fetch_add(&d->stalls, 1);
            resync = true;
        }
        if (rc == WZP_ERR_TIMEOUT && ++stalls < MAX_STALLS) {
            atomic_fetch_add(&d->stalls, 1);
            resync = true;
            continue;
        }
        if (rc < 0) {
            atomic_fetch_add(&d->losses, 1);
            WZP_WARN("audio: %s device %s failed (%s); switching to the default device",
                     dir_word(d), d->name, wzp_strerror(rc));
            be->close(s);
            s = NULL;
            stalls = 0;
            flowing = false;
            set_name(d, "");
            use_default = true;
            continue;
        }
        stalls = 0;
        if (!flowing && after - before <= STALL_NS) {
            flowing = true;
            set_name(d, be->device_name(s));
        }
        unsigned queued = be->delay ? be->delay(s) : 0;
        /* A capture backlog after an open or a stall is old sound: drained, not sent. */
        if (d->dir == WZP_AUDIO_CAPTURE && resync && queued >= io->period)
            ;
        else if (d->dir == WZP_AUDIO_CAPTURE)
            capture_store(d, d->period_buf, io->period);
        else
            atomic_store(&d->delay_samples, queued);
        /* Captured audio already queued is a backlog to drain at once, not a device that
           never blocks. */
        if (d->dir == WZP_AUDIO_CAPTURE && queued >= io->period)
            pacer_reset(&p, after);
        else
            pacer_step(&p, io, before, after, io->period);
        if (after - before <= STALL_NS && (d->dir == WZP_AUDIO_PLAYBACK || queued < io->period))
            resync = false;
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
    wzp_pcm_ring_config rc = {.frame_samples = FRAME, .capacity = RING_FRAMES};
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
                      cfg->capture_target ? cfg->capture_target : WZP_MS(20));
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
    int16_t f[FRAME];
    for (size_t k = wzp_pcm_ring_count(d->ring); k > 0; k--)
        if (wzp_pcm_ring_pop(d->ring, f))
            wzp_drift_push(d->drift, f, FRAME, now);
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
