/* Audio files: any rate/channels in, 48 kHz mono out; WAV writing; errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sndfile.h>
#include <wzp/wzp.h>

#include "media/audio_file.h"
#include "media/audio_format.h"
#include "media/compare.h"
#include "media/tone.h"

static char dir[64];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/wzp-audio-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

/* Writes an interleaved float file of `frames` frames with libsndfile. */
static void write_file(const char *path, int rate, int ch, int format, const float *x,
                       sf_count_t frames)
{
    SF_INFO info = {.samplerate = rate, .channels = ch, .format = format};
    SNDFILE *sf = sf_open(path, SFM_WRITE, &info);
    assert_non_null(sf);
    assert_int_equal(sf_writef_float(sf, x, frames), frames);
    assert_int_equal(sf_close(sf), 0);
}

static double zero_cross_hz(const float *x, size_t n, int rate)
{
    size_t c = 0;
    for (size_t i = 1; i < n; i++)
        c += (x[i - 1] < 0) != (x[i] < 0);
    return c / 2.0 / ((double)n / rate);
}

/* The file at p is a 48 kHz mono 16-bit WAV of exactly the n samples of pcm. */
static void assert_wav_holds(const char *p, const int16_t *pcm, size_t n)
{
    SF_INFO info = {0};
    SNDFILE *sf = sf_open(p, SFM_READ, &info);
    assert_non_null(sf);
    assert_int_equal(info.samplerate, 48000);
    assert_int_equal(info.channels, 1);
    assert_int_equal(info.format, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    assert_int_equal(info.frames, n);
    sf_close(sf);
    int16_t *back;
    size_t got;
    assert_int_equal(wzp_audio_read_s16(p, &back, &got), 0);
    assert_int_equal(got, n);
    assert_memory_equal(back, pcm, n * sizeof(*pcm));
    free(back);
}

static void test_44k_stereo_to_48k_mono(void **state)
{
    (void)state;
    const int rate = 44100;
    const size_t frames = (size_t)rate * 2; /* 2 s */
    float *x = malloc(frames * 2 * sizeof(*x));
    for (size_t i = 0; i < frames; i++) {
        double s = sin(2 * M_PI * 1000.0 * (double)i / rate);
        x[2 * i] = (float)(0.5 * s);
        x[2 * i + 1] = (float)(0.3 * s);
    }
    char p[128];
    path_of(p, sizeof(p), "tone44.wav");
    write_file(p, rate, 2, SF_FORMAT_WAV | SF_FORMAT_PCM_16, x, (sf_count_t)frames);
    free(x);

    float *y;
    size_t n;
    assert_int_equal(wzp_audio_read(p, &y, &n), 0);
    assert_int_equal(n, 96000); /* 2 s at 48 kHz */
    double hz = zero_cross_hz(y + 480, n - 960, WZP_AUDIO_RATE);
    assert_true(fabs(hz - 1000) < 2);
    /* Downmix is the mean of the channels: peak ~0.4. */
    float peak = 0;
    for (size_t i = 480; i < n - 480; i++)
        peak = fabsf(y[i]) > peak ? fabsf(y[i]) : peak;
    assert_true(peak > 0.39f && peak < 0.41f);
    /* Resampler delay is compensated: matches a native 48 kHz tone at lag 0. */
    float *ref = malloc(n * sizeof(*ref));
    wzp_tone t;
    wzp_tone_init(&t, 1000, 0.4f);
    wzp_tone_fill(&t, ref, n);
    wzp_ncc_result res;
    assert_int_equal(wzp_ncc_search(ref + 480, n - 960, y + 480, n - 960, -20, 20, 0, &res), 0);
    printf("# 44.1k stereo -> 48k mono: lag %ld ncc %.5f\n", res.lag, res.ncc);
    assert_true(res.lag == 0);
    assert_true(res.ncc > 0.999);
    free(ref);

    int16_t *s;
    size_t ns;
    assert_int_equal(wzp_audio_read_s16(p, &s, &ns), 0);
    assert_int_equal(ns, n);
    assert_true(abs(s[1000] - (int)lrintf(y[1000] * 32768.0f)) <= 1);
    free(s);
    free(y);
}

static void test_other_rates_and_formats(void **state)
{
    (void)state;
    /* 8 kHz mono FLAC and 96 kHz 3-channel float WAV. */
    const struct {
        int rate, ch, format;
        const char *name;
    } cases[] = {
        {8000, 1, SF_FORMAT_FLAC | SF_FORMAT_PCM_16, "a.flac"},
        {96000, 3, SF_FORMAT_WAV | SF_FORMAT_FLOAT, "b.wav"},
        {48000, 2, SF_FORMAT_AIFF | SF_FORMAT_PCM_24, "c.aiff"},
    };
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        size_t frames = (size_t)cases[c].rate / 2; /* 0.5 s */
        float *x = malloc(frames * (size_t)cases[c].ch * sizeof(*x));
        for (size_t i = 0; i < frames; i++)
            for (int k = 0; k < cases[c].ch; k++)
                x[i * (size_t)cases[c].ch + (size_t)k] =
                    (float)(0.5 * sin(2 * M_PI * 440.0 * (double)i / cases[c].rate));
        char p[128];
        path_of(p, sizeof(p), cases[c].name);
        write_file(p, cases[c].rate, cases[c].ch, cases[c].format, x, (sf_count_t)frames);
        free(x);
        float *y;
        size_t n;
        assert_int_equal(wzp_audio_read(p, &y, &n), 0);
        assert_int_equal(n, 24000);
        assert_true(fabs(zero_cross_hz(y + 240, n - 480, WZP_AUDIO_RATE) - 440) < 3);
        free(y);
    }
}

static void test_write_wav_roundtrip(void **state)
{
    (void)state;
    char p[128];
    path_of(p, sizeof(p), "out.wav");
    int16_t pcm[3000];
    for (int i = 0; i < 3000; i++)
        pcm[i] = (int16_t)(i * 37 - 50000 / 2);
    assert_int_equal(wzp_audio_write_wav(p, pcm, 3000), 0);
    assert_wav_holds(p, pcm, 3000);

    /* Streaming writer, frame by frame. */
    path_of(p, sizeof(p), "stream.wav");
    wzp_wav_writer *w = NULL;
    assert_int_equal(wzp_wav_writer_open(&w, p), 0);
    assert_non_null(w);
    for (int k = 0; k < 3; k++)
        assert_int_equal(wzp_wav_writer_write(w, pcm + k * 1000, 1000), 0);
    assert_int_equal(wzp_wav_writer_close(w), 0);
    assert_wav_holds(p, pcm, 3000);

    /* Float writer clips. */
    float f[3] = {2.0f, -2.0f, 0.5f};
    path_of(p, sizeof(p), "clip.wav");
    assert_int_equal(wzp_audio_write_wav_float(p, f, 3), 0);
    int16_t *back;
    size_t n;
    assert_int_equal(wzp_audio_read_s16(p, &back, &n), 0);
    assert_int_equal(back[0], 32767);
    assert_int_equal(back[1], -32768);
    assert_int_equal(back[2], 16384);
    free(back);
}

static void test_errors(void **state)
{
    (void)state;
    float *y = NULL;
    size_t n = 0;
    char p[128];
    path_of(p, sizeof(p), "missing.wav");
    assert_int_equal(wzp_audio_read(p, &y, &n), WZP_ERR_NOT_FOUND);
    assert_int_equal(wzp_audio_read("/nonexistent-dir/x.wav", &y, &n), WZP_ERR_NOT_FOUND);
    /* Exists but is not audio. */
    path_of(p, sizeof(p), "junk.wav");
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    fputs("this is not a RIFF file, just text that pretends", f);
    fclose(f);
    assert_int_equal(wzp_audio_read(p, &y, &n), WZP_ERR_AUDIO);
    assert_int_equal(wzp_audio_read(dir, &y, &n), WZP_ERR_AUDIO);
    assert_int_equal(wzp_audio_read(NULL, &y, &n), WZP_ERR_INVALID);
    /* Writing where no directory exists. */
    int16_t s[4] = {0};
    path_of(p, sizeof(p), "no/such/dir/out.wav");
    assert_int_equal(wzp_audio_write_wav(p, s, 4), WZP_ERR_IO);
    wzp_wav_writer *none = NULL;
    assert_int_equal(wzp_wav_writer_open(&none, p), WZP_ERR_IO);
    assert_null(none);
    assert_int_equal(wzp_audio_resample(NULL, 0, 1, 1, &y, &n), WZP_ERR_INVALID);
}

/* Names in dir (other than . and ..), joined by spaces, into out. */
static size_t list_dir(const char *d, char *out, size_t cap)
{
    DIR *dp = opendir(d);
    assert_non_null(dp);
    size_t n = 0;
    out[0] = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        n++;
        strncat(out, e->d_name, cap - strlen(out) - 2);
        strcat(out, " ");
    }
    closedir(dp);
    return n;
}

static void test_recorder_commit_and_abort(void **state)
{
    (void)state;
    char sub[128], p[192], names[512];
    snprintf(sub, sizeof(sub), "%s/rec", dir);
    assert_int_equal(mkdir(sub, 0755), 0);
    snprintf(p, sizeof(p), "%s/call.wav", sub);
    int16_t pcm[2000];
    for (int i = 0; i < 2000; i++)
        pcm[i] = (int16_t)(i * 29 - 30000);

    /* Completed: exactly the target, a WAV libsndfile reads back sample for sample. */
    wzp_wav_recorder *r = NULL;
    int e = -1;
    assert_int_equal(wzp_wav_recorder_open(&r, p, &e), 0);
    assert_non_null(r);
    assert_int_equal(e, 0);
    assert_int_equal(access(p, F_OK), -1); /* nothing at the target until the commit */
    assert_int_equal(list_dir(sub, names, sizeof(names)), 1); /* the temp file */
    assert_int_equal(wzp_wav_recorder_commit(r, pcm, 2000, &e), 0);
    assert_int_equal(list_dir(sub, names, sizeof(names)), 1);
    assert_string_equal(names, "call.wav ");
    assert_wav_holds(p, pcm, 2000);

    /* Aborted over an existing recording: the old file stays as it was, no temp file. */
    struct stat before, after;
    assert_int_equal(stat(p, &before), 0);
    assert_int_equal(wzp_wav_recorder_open(&r, p, &e), 0);
    wzp_wav_recorder_abort(r);
    assert_int_equal(list_dir(sub, names, sizeof(names)), 1);
    assert_string_equal(names, "call.wav ");
    assert_int_equal(stat(p, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
    assert_int_equal(after.st_ino, before.st_ino);

    /* Aborted on a new path: no file, no temp file. */
    snprintf(p, sizeof(p), "%s/never.wav", sub);
    assert_int_equal(wzp_wav_recorder_open(&r, p, &e), 0);
    wzp_wav_recorder_abort(r);
    assert_int_equal(access(p, F_OK), -1);
    assert_int_equal(list_dir(sub, names, sizeof(names)), 1);

    /* An empty recording is still a valid WAV. */
    assert_int_equal(wzp_wav_recorder_open(&r, p, &e), 0);
    assert_int_equal(wzp_wav_recorder_commit(r, NULL, 0, &e), 0);
    SF_INFO info = {0};
    SNDFILE *sf = sf_open(p, SFM_READ, &info);
    assert_non_null(sf);
    assert_int_equal(info.frames, 0);
    sf_close(sf);
}

static void test_recorder_fails_at_open(void **state)
{
    (void)state;
    char p[128];
    wzp_wav_recorder *r = (wzp_wav_recorder *)1;
    int e = 0;
    /* A missing directory: at open, before any call, with the reason. */
    path_of(p, sizeof(p), "no/such/dir/out.wav");
    assert_int_equal(wzp_wav_recorder_open(&r, p, &e), WZP_ERR_IO);
    assert_null(r);
    assert_int_equal(e, ENOENT);
    /* A directory is not a file. */
    assert_int_equal(wzp_wav_recorder_open(&r, dir, &e), WZP_ERR_IO);
    assert_int_equal(e, EISDIR);
    /* A full device: the header written at open already fails. */
    if (access("/dev/full", W_OK) == 0) {
        assert_int_equal(wzp_wav_recorder_open(&r, "/dev/full", &e), WZP_ERR_IO);
        assert_null(r);
        assert_int_equal(e, ENOSPC);
    }
    /* /dev/null is a device too: written directly, and it takes everything. */
    int16_t s[480] = {0};
    assert_int_equal(wzp_wav_recorder_open(&r, "/dev/null", &e), 0);
    assert_int_equal(wzp_wav_recorder_commit(r, s, 480, &e), 0);
    assert_int_equal(wzp_wav_recorder_open(&r, NULL, &e), WZP_ERR_INVALID);
    assert_int_equal(wzp_wav_recorder_open(&r, "", &e), WZP_ERR_INVALID);
}

/* A FIFO is written directly (no temp file, no rename): header then samples. */
static void test_recorder_fifo(void **state)
{
    (void)state;
    char fifo[128], got[128];
    path_of(fifo, sizeof(fifo), "pipe");
    path_of(got, sizeof(got), "from-pipe.raw");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "cat '%s' > '%s'", fifo, got);
        _exit(system(cmd) == 0 ? 0 : 1);
    }
    int16_t pcm[960];
    for (int i = 0; i < 960; i++)
        pcm[i] = (int16_t)(i - 480);
    wzp_wav_recorder *r = NULL;
    int e = 0, status = 0;
    assert_int_equal(wzp_wav_recorder_open(&r, fifo, &e), 0);
    assert_int_equal(wzp_wav_recorder_commit(r, pcm, 960, &e), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    FILE *f = fopen(got, "rb");
    assert_non_null(f);
    uint8_t buf[44 + 2 * 960 + 1];
    assert_int_equal(fread(buf, 1, sizeof(buf), f), 44 + 2 * 960);
    fclose(f);
    assert_memory_equal(buf, "RIFF", 4);
    assert_memory_equal(buf + 36, "data", 4);
    for (int i = 0; i < 960; i++)
        assert_int_equal((int16_t)(buf[44 + 2 * i] | buf[45 + 2 * i] << 8), pcm[i]);
    unlink(fifo);
}

WZP_TEST_MAIN(setup, teardown, test_44k_stereo_to_48k_mono, test_other_rates_and_formats,
              test_write_wav_roundtrip, test_errors, test_recorder_commit_and_abort,
              test_recorder_fails_at_open, test_recorder_fifo)
