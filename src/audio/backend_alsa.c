/*
 * ALSA backend (libasound).
 *
 * The PCM is opened non-blocking and read/write wait with snd_pcm_wait, so a
 * device that stops moving costs at most WZP_AUDIO_IO_TIMEOUT_MS. Format and
 * channels are whatever the device takes among S16, S32 and FLOAT, 1 or more
 * channels; the backend converts (capture: channels averaged to mono;
 * playback: mono copied to every channel). Rate conversion is not ours: when
 * the device cannot run at 48 kHz it is reopened through ALSA's plug plugin
 * ("plug:'NAME'"), whose resampler does it.
 *
 * All buffers are allocated by open; read/write only call into ALSA and log
 * at debug level (xruns), because they run on the device thread.
 */
#include "audio/backend.h"

#include <alsa/asoundlib.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"

#define ALSA_RATE          48000u
#define ALSA_MAX_SAMPLES   4800u
#define DEFAULT_PERIOD     480u
#define DEFAULT_LATENCY_MS 20u
#define CHUNK_FRAMES       480u /* frames converted per ALSA call */

typedef enum sample_fmt { FMT_S16, FMT_S32, FMT_FLOAT } sample_fmt;

struct wzp_audio_stream {
    snd_pcm_t *pcm;
    wzp_audio_dir dir;
    sample_fmt fmt;
    unsigned channels;
    size_t frame_bytes;
    void *conv; /* CHUNK_FRAMES device frames, when the device is not S16 mono */
    bool started, failed;
    uint64_t xruns;
    char name[WZP_AUDIO_NAME_MAX];
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- conversion ---- */

static int16_t clamp16(int32_t v)
{
    return (int16_t)(v > INT16_MAX ? INT16_MAX : v < INT16_MIN ? INT16_MIN : v);
}

static int16_t from_float(float f)
{
    /* lrintf keeps v * 32768 exact for values that came from S16 */
    float v = f * 32768.0f;
    if (!(v > -32768.0f)) /* also catches NaN */
        return INT16_MIN;
    if (v > 32767.0f)
        return INT16_MAX;
    return (int16_t)lrintf(v);
}

/* Device frames -> mono S16: the channels are averaged (rounded to nearest). */
static void to_mono(const wzp_audio_stream *s, const void *src, int16_t *dst, size_t frames)
{
    unsigned ch = s->channels;
    for (size_t i = 0; i < frames; i++) {
        int64_t acc = 0;
        for (unsigned c = 0; c < ch; c++) {
            size_t k = i * ch + c;
            switch (s->fmt) {
            case FMT_S16:
                acc += ((const int16_t *)src)[k];
                break;
            case FMT_S32:
                /* Keep 16 bits, rounded: the top half is the S16 value. */
                acc += (((int64_t)((const int32_t *)src)[k]) + 0x8000) >> 16;
                break;
            case FMT_FLOAT:
                acc += from_float(((const float *)src)[k]);
                break;
            }
        }
        /* Round half away from zero, so a channel repeated ch times comes back unchanged. */
        int64_t half = (int64_t)ch / 2;
        dst[i] = clamp16((int32_t)(acc >= 0 ? (acc + half) / ch : (acc - half) / ch));
    }
}

static void from_mono(const wzp_audio_stream *s, const int16_t *src, void *dst, size_t frames)
{
    unsigned ch = s->channels;
    for (size_t i = 0; i < frames; i++) {
        for (unsigned c = 0; c < ch; c++) {
            size_t k = i * ch + c;
            switch (s->fmt) {
            case FMT_S16:
                ((int16_t *)dst)[k] = src[i];
                break;
            case FMT_S32:
                ((int32_t *)dst)[k] = (int32_t)((uint32_t)(int32_t)src[i] << 16);
                break;
            case FMT_FLOAT:
                ((float *)dst)[k] = (float)src[i] / 32768.0f;
                break;
            }
        }
    }
}

/* ---- errors ---- */

/* An ALSA error inside read/write: an xrun is recovered (and counted), a vanished device is
   WZP_ERR_DEVICE. Returns 0 to carry on. */
static int handle_error(wzp_audio_stream *s, int err)
{
    if (err == -EPIPE || err == -ESTRPIPE || err == -EINTR) {
        if (err != -EINTR)
            s->xruns++;
        int r = snd_pcm_recover(s->pcm, err, 1);
        if (r == 0) {
            WZP_DEBUG("alsa: %s: %s recovered (%llu so far)", s->name,
                      err == -EPIPE ? "xrun" : "suspend", (unsigned long long)s->xruns);
            s->started = false;
            return 0;
        }
        err = r;
    }
    WZP_DEBUG("alsa: %s: %s", s->name, snd_strerror(err));
    return WZP_ERR_DEVICE; /* -ENODEV, -EBADFD, -EIO, ... : the device is gone */
}

/* ---- open / close ---- */

static void alsa_close(wzp_audio_stream *s)
{
    if (!s)
        return;
    if (s->pcm) {
        if (s->xruns)
            WZP_INFO("alsa: %s: %llu xruns", s->name, (unsigned long long)s->xruns);
        snd_pcm_close(s->pcm);
    }
    free(s->conv);
    free(s);
}

static const struct {
    snd_pcm_format_t alsa;
    sample_fmt fmt;
    size_t bytes;
} formats[] = {
    {SND_PCM_FORMAT_S16, FMT_S16, 2},
    {SND_PCM_FORMAT_S32, FMT_S32, 4},
    {SND_PCM_FORMAT_FLOAT, FMT_FLOAT, 4},
};

/* Negotiates hw and sw params on an open PCM. WZP_ERR_AGAIN when only the rate is wrong (the
   caller retries through plug), WZP_ERR_DEVICE when the device cannot do anything we take. */
static int configure(wzp_audio_stream *s, unsigned period, unsigned latency_ms)
{
    snd_pcm_hw_params_t *hw;
    snd_pcm_sw_params_t *sw;
    snd_pcm_hw_params_alloca(&hw);
    snd_pcm_sw_params_alloca(&sw);
    snd_pcm_t *p = s->pcm;
    int err;

    if ((err = snd_pcm_hw_params_any(p, hw)) < 0 ||
        (err = snd_pcm_hw_params_set_access(p, hw, SND_PCM_ACCESS_RW_INTERLEAVED)) < 0)
        goto bad;
    size_t fi = 0;
    while (fi < sizeof(formats) / sizeof(formats[0]) &&
           snd_pcm_hw_params_test_format(p, hw, formats[fi].alsa) < 0)
        fi++;
    if (fi == sizeof(formats) / sizeof(formats[0])) {
        WZP_INFO("alsa: %s takes none of S16, S32, FLOAT", s->name);
        return WZP_ERR_DEVICE;
    }
    if ((err = snd_pcm_hw_params_set_format(p, hw, formats[fi].alsa)) < 0)
        goto bad;
    unsigned ch = 1;
    if ((err = snd_pcm_hw_params_set_channels_near(p, hw, &ch)) < 0)
        goto bad;
    unsigned rate = ALSA_RATE;
    if ((err = snd_pcm_hw_params_set_rate_near(p, hw, &rate, NULL)) < 0)
        goto bad;
    if (rate != ALSA_RATE) {
        WZP_DEBUG("alsa: %s runs at %u Hz, not %u", s->name, rate, ALSA_RATE);
        return WZP_ERR_AGAIN;
    }
    unsigned buffer_us = latency_ms * 1000;
    snd_pcm_uframes_t period_frames = period;
    /* Best effort: plugins like null take anything, real cards round. */
    snd_pcm_hw_params_set_buffer_time_near(p, hw, &buffer_us, NULL);
    snd_pcm_hw_params_set_period_size_near(p, hw, &period_frames, NULL);
    if ((err = snd_pcm_hw_params(p, hw)) < 0)
        goto bad;

    snd_pcm_uframes_t buffer_frames = 0;
    snd_pcm_hw_params_get_buffer_size(hw, &buffer_frames);
    snd_pcm_hw_params_get_period_size(hw, &period_frames, NULL);
    if ((err = snd_pcm_sw_params_current(p, sw)) < 0)
        goto bad;
    /* Playback starts once the buffer is full, so the first periods do not underrun; capture
       starts on the first read. */
    if (s->dir == WZP_AUDIO_PLAYBACK)
        snd_pcm_sw_params_set_start_threshold(p, sw, buffer_frames);
    snd_pcm_sw_params_set_avail_min(p, sw, period_frames);
    if ((err = snd_pcm_sw_params(p, sw)) < 0)
        goto bad;

    s->fmt = formats[fi].fmt;
    s->channels = ch;
    s->frame_bytes = formats[fi].bytes * ch;
    WZP_DEBUG("alsa: %s: %s x%u at %u Hz, period %lu, buffer %lu", s->name,
              snd_pcm_format_name(formats[fi].alsa), ch, rate, (unsigned long)period_frames,
              (unsigned long)buffer_frames);
    return 0;
bad:
    WZP_INFO("alsa: %s: cannot configure: %s", s->name, snd_strerror(err));
    return WZP_ERR_DEVICE;
}

static int try_open(wzp_audio_stream *s, const char *pcm_name, unsigned period, unsigned latency_ms)
{
    snprintf(s->name, sizeof(s->name), "%s", pcm_name);
    int err =
        snd_pcm_open(&s->pcm, pcm_name,
                     s->dir == WZP_AUDIO_CAPTURE ? SND_PCM_STREAM_CAPTURE : SND_PCM_STREAM_PLAYBACK,
                     SND_PCM_NONBLOCK);
    if (err < 0) {
        s->pcm = NULL;
        WZP_INFO("alsa: cannot open %s: %s", pcm_name, snd_strerror(err));
        return WZP_ERR_DEVICE;
    }
    int rc = configure(s, period, latency_ms);
    if (rc < 0) {
        snd_pcm_close(s->pcm);
        s->pcm = NULL;
    }
    return rc;
}

static int alsa_open(wzp_audio_stream **out, const wzp_audio_stream_config *cfg)
{
    if (!out || !cfg || (cfg->dir != WZP_AUDIO_CAPTURE && cfg->dir != WZP_AUDIO_PLAYBACK) ||
        cfg->period_samples > ALSA_MAX_SAMPLES)
        return WZP_ERR_INVALID;
    *out = NULL;
    unsigned period = cfg->period_samples ? cfg->period_samples : DEFAULT_PERIOD;
    unsigned latency_ms = cfg->latency_ms ? cfg->latency_ms : DEFAULT_LATENCY_MS;
    const char *dev = cfg->device && cfg->device[0] ? cfg->device : "default";

    wzp_audio_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return WZP_ERR_NOMEM;
    s->dir = cfg->dir;
    int rc = try_open(s, dev, period, latency_ms);
    if (rc == WZP_ERR_AGAIN && strncmp(dev, "plug:", 5)) {
        /* Wrong rate: let ALSA's plug resample (it also handles format and channels). */
        char plug[WZP_AUDIO_NAME_MAX + 8];
        snprintf(plug, sizeof(plug), "plug:'%s'", dev);
        rc = try_open(s, plug, period, latency_ms);
    }
    if (rc < 0) {
        free(s);
        return rc == WZP_ERR_AGAIN ? WZP_ERR_DEVICE : rc;
    }
    if ((s->fmt != FMT_S16 || s->channels != 1) &&
        !(s->conv = malloc(CHUNK_FRAMES * s->frame_bytes))) {
        alsa_close(s);
        return WZP_ERR_NOMEM;
    }
    *out = s;
    return 0;
}

/* ---- read / write ---- */

/* Waits for the device up to the deadline: 0 ready, or a wzp error. */
static int wait_ready(wzp_audio_stream *s, int64_t deadline)
{
    int64_t left = deadline - now_ms();
    if (left <= 0)
        return WZP_ERR_TIMEOUT;
    int r = snd_pcm_wait(s->pcm, (int)left);
    if (r < 0)
        return handle_error(s, r);
    if (r == 0 && now_ms() >= deadline)
        return WZP_ERR_TIMEOUT;
    return 0;
}

/* Reads up to want frames into dst (converted when the device is not S16 mono). */
static snd_pcm_sframes_t read_some(wzp_audio_stream *s, int16_t *dst, size_t want)
{
    if (!s->conv)
        return snd_pcm_readi(s->pcm, dst, want);
    snd_pcm_sframes_t r = snd_pcm_readi(s->pcm, s->conv, want);
    if (r > 0)
        to_mono(s, s->conv, dst, (size_t)r);
    return r;
}

/* Writes up to want frames from src (converted when the device is not S16 mono). */
static snd_pcm_sframes_t write_some(wzp_audio_stream *s, const int16_t *src, size_t want)
{
    if (!s->conv)
        return snd_pcm_writei(s->pcm, src, want);
    from_mono(s, src, s->conv, want);
    return snd_pcm_writei(s->pcm, s->conv, want);
}

/* The transfer loop of both directions: capture fills rec, playback sends play. */
static int alsa_transfer(wzp_audio_stream *s, wzp_audio_dir dir, int16_t *rec, const int16_t *play,
                         size_t n)
{
    if (!s || (dir == WZP_AUDIO_CAPTURE ? !rec : !play) || n > ALSA_MAX_SAMPLES || s->dir != dir)
        return WZP_ERR_INVALID;
    if (s->failed)
        return WZP_ERR_DEVICE;
    int64_t deadline = now_ms() + WZP_AUDIO_IO_TIMEOUT_MS;
    size_t done = 0;
    while (done < n) {
        if (dir == WZP_AUDIO_CAPTURE && !s->started) {
            /* Explicitly: a PCM whose start threshold is above this read would never start. */
            int e = snd_pcm_start(s->pcm);
            if (e < 0 && e != -EBADFD) { /* -EBADFD: already running (auto-started) */
                if (handle_error(s, e) < 0)
                    goto fail;
                continue;
            }
            s->started = true;
        }
        size_t want = n - done;
        if (s->conv && want > CHUNK_FRAMES)
            want = CHUNK_FRAMES;
        snd_pcm_sframes_t r = dir == WZP_AUDIO_CAPTURE ? read_some(s, rec + done, want)
                                                       : write_some(s, play + done, want);
        if (r > 0) {
            done += (size_t)r;
            continue;
        }
        int rc = r == -EAGAIN || r == 0 ? wait_ready(s, deadline) : handle_error(s, (int)r);
        if (rc == WZP_ERR_TIMEOUT)
            return rc; /* the stream stays usable: the device may move again */
        if (rc < 0)
            goto fail;
    }
    return (int)n;
fail:
    s->failed = true;
    return WZP_ERR_DEVICE;
}

static int alsa_read(wzp_audio_stream *s, int16_t *pcm, size_t n)
{
    return alsa_transfer(s, WZP_AUDIO_CAPTURE, pcm, NULL, n);
}

static int alsa_write(wzp_audio_stream *s, const int16_t *pcm, size_t n)
{
    return alsa_transfer(s, WZP_AUDIO_PLAYBACK, NULL, pcm, n);
}

static unsigned alsa_delay(wzp_audio_stream *s)
{
    snd_pcm_sframes_t d = 0;
    if (!s || !s->pcm || snd_pcm_delay(s->pcm, &d) < 0 || d < 0)
        return 0;
    return (unsigned)d;
}

static const char *alsa_device_name(wzp_audio_stream *s)
{
    return s ? s->name : "";
}

/* ---- available / list ---- */

static int alsa_list(wzp_audio_device_info *out, size_t cap)
{
    if (!out && cap)
        return WZP_ERR_INVALID;
    void **hints = NULL;
    int err = snd_device_name_hint(-1, "pcm", &hints);
    if (err < 0) {
        WZP_INFO("alsa: no device hints: %s", snd_strerror(err));
        return WZP_ERR_DEVICE;
    }
    int count = 0;
    for (void **h = hints; *h; h++) {
        char *name = snd_device_name_get_hint(*h, "NAME");
        char *desc = snd_device_name_get_hint(*h, "DESC");
        char *ioid = snd_device_name_get_hint(*h, "IOID"); /* NULL: both directions */
        if (name) {
            for (int d = 0; d < 2; d++) {
                wzp_audio_dir dir = d ? WZP_AUDIO_PLAYBACK : WZP_AUDIO_CAPTURE;
                if (ioid && strcmp(ioid, dir == WZP_AUDIO_PLAYBACK ? "Output" : "Input"))
                    continue;
                if ((size_t)count < cap) {
                    wzp_audio_device_info *o = &out[count];
                    snprintf(o->name, sizeof(o->name), "%s", name);
                    /* Descriptions span lines ("card\ndevice"): keep them on one. */
                    snprintf(o->description, sizeof(o->description), "%s", desc ? desc : name);
                    for (char *c = o->description; *c; c++)
                        if (*c == '\n')
                            *c = ' ';
                    o->dir = dir;
                    o->is_default = !strcmp(name, "default");
                }
                count++;
            }
        }
        free(name);
        free(desc);
        free(ioid);
    }
    snd_device_name_free_hint(hints);
    return count;
}

static bool alsa_available(void)
{
    void **hints = NULL;
    if (snd_device_name_hint(-1, "pcm", &hints) >= 0) {
        bool any = hints && hints[0];
        snd_device_name_free_hint(hints);
        if (any)
            return true;
    }
    snd_pcm_t *p = NULL;
    if (snd_pcm_open(&p, "default", SND_PCM_STREAM_PLAYBACK, SND_PCM_NONBLOCK) < 0)
        return false;
    snd_pcm_close(p);
    return true;
}

const wzp_audio_backend wzp_audio_backend_alsa = {
    .name = "alsa",
    .available = alsa_available,
    .list = alsa_list,
    .open = alsa_open,
    .read = alsa_read,
    .write = alsa_write,
    .delay = alsa_delay,
    .device_name = alsa_device_name,
    .close = alsa_close,
};
