/* Audio files: any rate/channels in, 48 kHz mono out; WAV writing; errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
    SF_INFO info = {0};
    SNDFILE *sf = sf_open(p, SFM_READ, &info);
    assert_non_null(sf);
    assert_int_equal(info.samplerate, 48000);
    assert_int_equal(info.channels, 1);
    assert_int_equal(info.format, SF_FORMAT_WAV | SF_FORMAT_PCM_16);
    assert_int_equal(info.frames, 3000);
    sf_close(sf);
    int16_t *back;
    size_t n;
    assert_int_equal(wzp_audio_read_s16(p, &back, &n), 0);
    assert_int_equal(n, 3000);
    assert_memory_equal(back, pcm, sizeof(pcm));
    free(back);

    /* Streaming writer, frame by frame. */
    path_of(p, sizeof(p), "stream.wav");
    int err = 1;
    wzp_wav_writer *w = wzp_wav_writer_open(p, &err);
    assert_non_null(w);
    assert_int_equal(err, 0);
    for (int k = 0; k < 3; k++)
        assert_int_equal(wzp_wav_writer_write(w, pcm + k * 1000, 1000), 0);
    assert_int_equal(wzp_wav_writer_close(w), 0);
    assert_int_equal(wzp_audio_read_s16(p, &back, &n), 0);
    assert_int_equal(n, 3000);
    assert_memory_equal(back, pcm, sizeof(pcm));
    free(back);

    /* Float writer clips. */
    float f[3] = {2.0f, -2.0f, 0.5f};
    path_of(p, sizeof(p), "clip.wav");
    assert_int_equal(wzp_audio_write_wav_float(p, f, 3), 0);
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
    int err = 0;
    assert_null(wzp_wav_writer_open(p, &err));
    assert_int_equal(err, WZP_ERR_IO);
    assert_int_equal(wzp_audio_resample(NULL, 0, 1, 1, &y, &n), WZP_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_44k_stereo_to_48k_mono),
        cmocka_unit_test(test_other_rates_and_formats),
        cmocka_unit_test(test_write_wav_roundtrip),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
