#include "media/audio_file.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

int wzp_wav_writer_open(wzp_wav_writer **out, const char *path)
{
    if (!out)
        return WZP_ERR_INVALID;
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
    if (w)
        *out = w;
    return e;
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
    wzp_wav_writer *w = NULL;
    int rc = wzp_wav_writer_open(&w, path);
    if (rc < 0)
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

/* --- recorder: see audio_file.h ----------------------------------------------------------------
 */

#define WAV_HEADER_LEN 44
/* The largest data chunk the 32-bit RIFF size can describe (about 12 h at 48 kHz). */
#define WAV_MAX_DATA ((UINT32_MAX - (WAV_HEADER_LEN - 8)) & ~1u)

struct wzp_wav_recorder {
    int fd;
    bool direct;  /* writing the target itself (device, FIFO): no temp, no rename */
    char *target; /* the rename destination (temp mode) */
    char *tmp;    /* the temp file (temp mode) */
};

static void put_le(uint8_t *p, uint32_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* The canonical 44-byte header of a 48 kHz mono 16-bit PCM WAV. */
static void wav_header(uint8_t h[WAV_HEADER_LEN], uint32_t data_bytes)
{
    memcpy(h, "RIFF", 4);
    put_le(h + 4, data_bytes + (WAV_HEADER_LEN - 8), 4);
    memcpy(h + 8, "WAVEfmt ", 8);
    put_le(h + 16, 16, 4);
    put_le(h + 20, 1, 2); /* PCM */
    put_le(h + 22, 1, 2); /* mono */
    put_le(h + 24, WZP_AUDIO_RATE, 4);
    put_le(h + 28, WZP_AUDIO_RATE * 2, 4);
    put_le(h + 32, 2, 2);
    put_le(h + 34, 16, 2);
    memcpy(h + 36, "data", 4);
    put_le(h + 40, data_bytes, 4);
}

/* 0, or -1 with errno set. */
static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        if (w == 0) {
            errno = ENOSPC; /* no progress and no error: treat as full */
            return -1;
        }
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

static void recorder_free(wzp_wav_recorder *r)
{
    if (r->fd >= 0)
        close(r->fd);
    if (r->tmp)
        unlink(r->tmp);
    free(r->tmp);
    free(r->target);
    free(r);
}

/* Creates "DIR/.BASE.tmp-PID-N" next to the target: same filesystem, so the rename is atomic. */
static int create_temp(wzp_wav_recorder *r, const struct stat *old)
{
    const char *slash = strrchr(r->target, '/');
    int dlen = slash ? (int)(slash - r->target + 1) : 0;
    size_t cap = strlen(r->target) + 48;
    r->tmp = malloc(cap);
    if (!r->tmp)
        return ENOMEM;
    for (unsigned i = 0; i < 100; i++) {
        snprintf(r->tmp, cap, "%.*s.%s.tmp-%ld-%u", dlen, r->target, r->target + dlen,
                 (long)getpid(), i);
        /* 0666 and not mkstemp's 0600: a new recording gets the umask's mode like any file. */
        r->fd = open(r->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (r->fd >= 0 || errno != EEXIST)
            break;
    }
    if (r->fd < 0) {
        int e = errno;
        free(r->tmp);
        r->tmp = NULL;
        return e;
    }
    if (old)
        (void)fchmod(r->fd, old->st_mode & 07777); /* replacing a file keeps its mode */
    return 0;
}

int wzp_wav_recorder_open(wzp_wav_recorder **out, const char *path, int *sys_errno)
{
    if (sys_errno)
        *sys_errno = 0;
    if (!out)
        return WZP_ERR_INVALID;
    *out = NULL;
    if (!path || !*path)
        return WZP_ERR_INVALID;
    wzp_wav_recorder *r = calloc(1, sizeof(*r));
    if (!r)
        return WZP_ERR_NOMEM;
    r->fd = -1;
    struct stat st;
    int e = 0;
    bool exists = stat(path, &st) == 0;
    if (!exists && errno != ENOENT)
        e = errno;
    else if (exists && S_ISDIR(st.st_mode))
        e = EISDIR;
    else if (exists && !S_ISREG(st.st_mode)) {
        r->direct = true;
        r->fd = open(path, O_WRONLY | O_NOCTTY | O_CLOEXEC);
        if (r->fd < 0)
            e = errno;
    } else {
        /* Through a symlink, replace the file it points to, not the link. */
        r->target = exists ? realpath(path, NULL) : NULL;
        if (!r->target)
            r->target = strdup(path);
        e = r->target ? create_temp(r, exists ? &st : NULL) : ENOMEM;
    }
    /* The header, sizes marked unknown as for a stream: a full device or disk fails now.
     * Temp files get the real sizes on commit. */
    uint8_t h[WAV_HEADER_LEN];
    wav_header(h, WAV_MAX_DATA);
    if (!e && write_all(r->fd, h, sizeof(h)) != 0)
        e = errno;
    if (e) {
        recorder_free(r);
        if (sys_errno)
            *sys_errno = e;
        return e == ENOMEM ? WZP_ERR_NOMEM : WZP_ERR_IO;
    }
    *out = r;
    return 0;
}

/* Makes a rename durable; best effort (some filesystems refuse fsync on directories). */
static void sync_dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if ((size_t)(slash - path) < sizeof(dir))
        snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
    else
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

int wzp_wav_recorder_commit(wzp_wav_recorder *r, const int16_t *pcm, size_t n, int *sys_errno)
{
    if (sys_errno)
        *sys_errno = 0;
    if (!r)
        return WZP_ERR_INVALID;
    if (n && !pcm) {
        recorder_free(r);
        return WZP_ERR_INVALID;
    }
    if (n > WAV_MAX_DATA / 2) {
        WZP_WARN("recording longer than a WAV file holds: keeping the first %u samples",
                 (unsigned)(WAV_MAX_DATA / 2));
        n = WAV_MAX_DATA / 2;
    }
    int e = 0;
    if (!r->direct) {
        uint8_t h[WAV_HEADER_LEN];
        wav_header(h, (uint32_t)(n * 2));
        if (lseek(r->fd, 0, SEEK_SET) != 0 || write_all(r->fd, h, sizeof(h)) != 0)
            e = errno;
    }
    uint8_t buf[8192];
    for (size_t i = 0; !e && i < n;) {
        size_t k = 0;
        for (; i < n && k < sizeof(buf); i++, k += 2)
            put_le(buf + k, (uint16_t)pcm[i], 2); /* WAV is little-endian whatever the host */
        if (write_all(r->fd, buf, k) != 0)
            e = errno;
    }
    /* Only a file needs fsync (before the rename makes it the target); FIFOs refuse it. */
    if (!e && !r->direct && fsync(r->fd) != 0)
        e = errno;
    if (close(r->fd) != 0 && !e)
        e = errno;
    r->fd = -1;
    if (!e && !r->direct) {
        if (rename(r->tmp, r->target) != 0) {
            e = errno;
        } else {
            free(r->tmp);
            r->tmp = NULL; /* renamed: nothing to remove */
            sync_dir_of(r->target);
        }
    }
    recorder_free(r);
    if (e && sys_errno)
        *sys_errno = e;
    return e ? WZP_ERR_IO : 0;
}

void wzp_wav_recorder_abort(wzp_wav_recorder *r)
{
    if (r)
        recorder_free(r);
}
