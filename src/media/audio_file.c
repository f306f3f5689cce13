#include "media/audio_file.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sndfile.h>
#include <speex/speex_resampler.h>
#include <wzp/wzp.h>

#include "common/log.h"
#include "media/audio_format.h"

#define RESAMPLE_QUALITY 5 /* speexdsp "desktop" quality */
#define READ_CHUNK       4096

void wzp_audio_s16_to_float(const int16_t *in, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] / 32768.0f;
}

void wzp_audio_float_to_s16(const float *in, int16_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float x = in[i] * 32768.0f;
        if (!(x > -32768.0f)) /* also catches NaN */
            x = -32768.0f;
        if (x > 32767.0f)
            x = 32767.0f;
        out[i] = (int16_t)lrintf(x);
    }
}

int wzp_audio_resample(const float *in, size_t n, int in_rate, int out_rate, float **out,
                       size_t *nout)
{
    if (!in || !out || !nout || in_rate <= 0 || out_rate <= 0 || in_rate > 1000000 ||
        out_rate > 1000000)
        return WZP_ERR_INVALID;
    uint64_t want64 =
        ((uint64_t)n * (uint64_t)out_rate + (uint64_t)in_rate / 2) / (uint64_t)in_rate;
    if (want64 > (uint64_t)WZP_AUDIO_MAX_SECONDS * 1000000u)
        return WZP_ERR_TOO_BIG;
    size_t want = (size_t)want64;
    float *y = malloc((want ? want : 1) * sizeof(*y));
    if (!y)
        return WZP_ERR_NOMEM;
    if (in_rate == out_rate) {
        if (n)
            memcpy(y, in, n * sizeof(*y));
        *out = y;
        *nout = n;
        return 0;
    }
    int e = 0;
    SpeexResamplerState *rs = speex_resampler_init(1, (spx_uint32_t)in_rate, (spx_uint32_t)out_rate,
                                                   RESAMPLE_QUALITY, &e);
    if (!rs) {
        free(y);
        return e == RESAMPLER_ERR_ALLOC_FAILED ? WZP_ERR_NOMEM : WZP_ERR_AUDIO;
    }
    /* Drop the filter's leading delay; the matching tail comes from feeding
     * zeros after the input until `want` samples are out. */
    speex_resampler_skip_zeros(rs);
    static const float zeros[256];
    size_t got = 0, used = 0;
    int rc = 0;
    unsigned stalls = 0;
    while (got < want) {
        const float *src = used < n ? in + used : zeros;
        size_t avail = used < n ? n - used : sizeof(zeros) / sizeof(zeros[0]);
        spx_uint32_t ilen = (spx_uint32_t)(avail > 65536 ? 65536 : avail);
        spx_uint32_t olen = (spx_uint32_t)(want - got > 65536 ? 65536 : want - got);
        if (speex_resampler_process_float(rs, 0, src, &ilen, y + got, &olen) !=
            RESAMPLER_ERR_SUCCESS) {
            rc = WZP_ERR_AUDIO;
            break;
        }
        if (used < n)
            used += ilen;
        got += olen;
        /* Zeros in, nothing out, many times: cannot happen with a sane
         * resampler, but never loop forever. */
        stalls = olen ? 0 : stalls + 1;
        if (stalls > 1000) {
            rc = WZP_ERR_INTERNAL;
            break;
        }
    }
    speex_resampler_destroy(rs);
    if (rc) {
        free(y);
        return rc;
    }
    *out = y;
    *nout = want;
    return 0;
}

static int open_error(const char *path)
{
    struct stat sb;
    if (stat(path, &sb) != 0 && (errno == ENOENT || errno == ENOTDIR))
        return WZP_ERR_NOT_FOUND;
    return WZP_ERR_AUDIO;
}

int wzp_audio_read(const char *path, float **out, size_t *n)
{
    if (!path || !out || !n)
        return WZP_ERR_INVALID;
    SF_INFO info;
    memset(&info, 0, sizeof(info));
    SNDFILE *sf = sf_open(path, SFM_READ, &info);
    if (!sf) {
        int rc = open_error(path);
        WZP_WARN("cannot read audio file %s: %s", path, sf_strerror(NULL));
        return rc;
    }
    if (info.channels <= 0 || info.samplerate <= 0 || info.samplerate > 1000000 ||
        info.frames < 0) {
        sf_close(sf);
        return WZP_ERR_AUDIO;
    }
    if ((uint64_t)info.frames > (uint64_t)WZP_AUDIO_MAX_SECONDS * (uint64_t)info.samplerate) {
        sf_close(sf);
        return WZP_ERR_TOO_BIG;
    }
    /* Float reads are normalised to [-1, 1] whatever the file's format. */
    sf_command(sf, SFC_SET_NORM_FLOAT, NULL, SF_TRUE);
    size_t frames = (size_t)info.frames, ch = (size_t)info.channels;
    float *mono = malloc((frames ? frames : 1) * sizeof(*mono));
    float *buf = malloc(READ_CHUNK * ch * sizeof(*buf));
    if (!mono || !buf) {
        free(mono);
        free(buf);
        sf_close(sf);
        return WZP_ERR_NOMEM;
    }
    size_t got = 0;
    while (got < frames) {
        sf_count_t want = (sf_count_t)(frames - got < READ_CHUNK ? frames - got : READ_CHUNK);
        sf_count_t r = sf_readf_float(sf, buf, want);
        if (r <= 0)
            break; /* truncated file: keep what was there */
        for (sf_count_t f = 0; f < r; f++) {
            float s = 0;
            for (size_t c = 0; c < ch; c++)
                s += buf[(size_t)f * ch + c];
            mono[got + (size_t)f] = s / (float)ch;
        }
        got += (size_t)r;
    }
    free(buf);
    sf_close(sf);
    if (got == 0 && frames != 0) {
        free(mono);
        return WZP_ERR_AUDIO;
    }
    if (info.samplerate == WZP_AUDIO_RATE) {
        *out = mono;
        *n = got;
        return 0;
    }
    int rc = wzp_audio_resample(mono, got, info.samplerate, WZP_AUDIO_RATE, out, n);
    free(mono);
    return rc;
}

int wzp_audio_read_s16(const char *path, int16_t **out, size_t *n)
{
    if (!out || !n)
        return WZP_ERR_INVALID;
    float *f;
    size_t m;
    int rc = wzp_audio_read(path, &f, &m);
    if (rc)
        return rc;
    int16_t *s = malloc((m ? m : 1) * sizeof(*s));
    if (!s) {
        free(f);
        return WZP_ERR_NOMEM;
    }
    wzp_audio_float_to_s16(f, s, m);
    free(f);
    *out = s;
    *n = m;
    return 0;
}

struct wzp_wav_writer {
    SNDFILE *sf;
    int err;
};

wzp_wav_writer *wzp_wav_writer_open(const char *path, int *err)
{
    int e = WZP_ERR_INVALID;
    wzp_wav_writer *w = NULL;
    if (path) {
        SF_INFO info;
        memset(&info, 0, sizeof(info));
        info.samplerate = WZP_AUDIO_RATE;
        info.channels = 1;
        info.format = SF_FORMAT_WAV | SF_FORMAT_PCM_16;
        w = calloc(1, sizeof(*w));
        e = WZP_ERR_NOMEM;
        if (w) {
            w->sf = sf_open(path, SFM_WRITE, &info);
            if (!w->sf) {
                WZP_WARN("cannot write %s: %s", path, sf_strerror(NULL));
                free(w);
                w = NULL;
                e = WZP_ERR_IO;
            } else {
                e = 0;
            }
        }
    }
    if (err)
        *err = e;
    return w;
}

int wzp_wav_writer_write(wzp_wav_writer *w, const int16_t *pcm, size_t n)
{
    if (!w || (n && !pcm))
        return WZP_ERR_INVALID;
    if (w->err)
        return w->err;
    if (n && sf_write_short(w->sf, pcm, (sf_count_t)n) != (sf_count_t)n) {
        WZP_WARN("WAV write failed: %s", sf_strerror(w->sf));
        w->err = WZP_ERR_IO;
    }
    return w->err;
}

int wzp_wav_writer_close(wzp_wav_writer *w)
{
    if (!w)
        return WZP_ERR_INVALID;
    int rc = w->err;
    if (sf_close(w->sf) != 0 && !rc)
        rc = WZP_ERR_IO;
    free(w);
    return rc;
}

int wzp_audio_write_wav(const char *path, const int16_t *pcm, size_t n)
{
    if (n && !pcm)
        return WZP_ERR_INVALID;
    int rc;
    wzp_wav_writer *w = wzp_wav_writer_open(path, &rc);
    if (!w)
        return rc;
    wzp_wav_writer_write(w, pcm, n);
    return wzp_wav_writer_close(w);
}

int wzp_audio_write_wav_float(const char *path, const float *pcm, size_t n)
{
    if (n && !pcm)
        return WZP_ERR_INVALID;
    int16_t *s = malloc((n ? n : 1) * sizeof(*s));
    if (!s)
        return WZP_ERR_NOMEM;
    wzp_audio_float_to_s16(pcm, s, n);
    int rc = wzp_audio_write_wav(path, s, n);
    free(s);
    return rc;
}
