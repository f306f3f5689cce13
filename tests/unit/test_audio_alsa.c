/* ALSA backend against PCMs defined in a private configuration (ALSA_CONFIG_PATH, set before any
 * ALSA call): `file` plugins over `null` that read capture data from a file and tap playback
 * into one. S16 mono goes through untouched; a multi+lfloat chain that offers only FLOAT stereo
 * (written to its file as S32_LE stereo) exercises the backend's own format and channel
 * conversion, sample-exact both ways. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "audio/backend.h"
#include "support/alsa_conf.h"

#define N 4800 /* samples per case: 100 ms */

static const wzp_audio_backend *B = &wzp_audio_backend_alsa;
static alsa_conf conf;

static void path(char *out, size_t cap, const char *name)
{
    alsa_conf_path(&conf, out, cap, name);
}

/* A ramp across the whole S16 range with a sign flip, so byte order and sign both show. */
static int16_t sample(size_t i)
{
    return (int16_t)((i * 1237u) & 0xffff);
}

/* Writes 2 N samples of the ramp to name: S16 (width 2) or S32 (width 4, the sample in the high
   half; little-endian host), each frame `channels` copies of the sample. */
static void write_ramp(const char *name, size_t width, int channels)
{
    char p[128];
    path(p, sizeof(p), name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < 2 * N; i++) {
        int16_t v16 = sample(i);
        int32_t v32 = (int32_t)((uint32_t)(uint16_t)v16 << 16);
        for (int c = 0; c < channels; c++)
            fwrite(width == 2 ? (const void *)&v16 : (const void *)&v32, width, 1, f);
    }
    fclose(f);
}

static int group_setup(void **state)
{
    assert_int_equal(alsa_conf_make(&conf, "wzp-alsa"), 0);
    *state = &conf; /* for alsa_conf_teardown */
    /* Capture sources: S16 mono, and S32_LE mono and stereo with L = R. */
    write_ramp("in16.raw", 2, 1);
    write_ramp("in32m.raw", 4, 1);
    write_ramp("in32.raw", 4, 2);
    /* Self-contained: no stock alsa.conf, so nothing but these PCMs exists. */
    assert_int_equal(
        alsa_conf_write(&conf,
                        "pcm.tap16 {\n"
                        "  type file\n  slave.pcm { type null }\n  format raw\n"
                        "  file \"@DIR@/tap16.raw\"\n  infile \"@DIR@/in16.raw\"\n"
                        "  hint { show on description \"S16 tap\" }\n}\n"
                        "pcm.tap32raw {\n"
                        "  type file\n  slave.pcm { type null }\n  format raw\n"
                        "  file \"@DIR@/tap32.raw\"\n  infile \"@DIR@/in32.raw\"\n}\n"
                        "pcm.tap32float { type lfloat slave { pcm tap32raw format S32_LE } }\n"
                        "pcm.monofloat {\n  type lfloat\n  slave { pcm {\n"
                        "    type file\n    slave.pcm { type null }\n    format raw\n"
                        "    file \"@DIR@/tap32m.raw\"\n    infile \"@DIR@/in32m.raw\"\n"
                        "  } format S32_LE }\n}\n"
                        /* multi: exactly 2 channels; lfloat over S32: FLOAT formats only. */
                        "pcm.stereofloat {\n  type multi\n"
                        "  slaves.a { pcm tap32float channels 2 }\n"
                        "  bindings.0 { slave a channel 0 }\n  bindings.1 { slave a channel 1 }\n"
                        "  hint { show on description \"float stereo tap\" }\n}\n"
                        "pcm.nothing { type null hint { show on description \"null\" } }\n"),
        0);
    return 0;
}

static wzp_audio_stream *open_dev(wzp_audio_dir d, const char *dev)
{
    wzp_audio_stream_config c = {.dir = d, .device = dev};
    wzp_audio_stream *s = NULL;
    assert_int_equal(B->open(&s, &c), 0);
    assert_non_null(s);
    assert_string_equal(B->device_name(s), dev);
    return s;
}

/* Captures N samples; with gaps_ok, whole periods may be missing (alsa-lib's file plugin skips
   input when a plugin sits in front of it), but every sample must be exact and in order. */
static void capture_exact(const char *dev, bool gaps_ok)
{
    wzp_audio_stream *s = open_dev(WZP_AUDIO_CAPTURE, dev);
    static int16_t got[N];
    for (size_t off = 0; off < N; off += 480)
        assert_int_equal(B->read(s, got + off, 480), 480);
    B->close(s);
    size_t j = 0, skipped = 0;
    for (size_t i = 0; i < N; i++, j++) {
        while (gaps_ok && got[i] != sample(j) && j < 2 * N && (j % 480) == (i % 480)) {
            j += 480;
            skipped++;
        }
        if (got[i] != sample(j))
            fail_msg("%s: sample %zu is %d, want %d", dev, i, got[i], sample(j));
    }
    assert_true(skipped <= N / 480);
}

static void test_capture_s16_mono(void **state)
{
    (void)state;
    capture_exact("tap16", false);
}

/* FLOAT mono: the backend's float -> S16 path alone. */
static void test_capture_float_mono(void **state)
{
    (void)state;
    capture_exact("monofloat", true);
}

/* FLOAT stereo: float -> S16 and the down-mix. */
static void test_capture_float_stereo(void **state)
{
    (void)state;
    capture_exact("stereofloat", true);
}

static long file_size(const char *name)
{
    char p[128];
    path(p, sizeof(p), name);
    FILE *f = fopen(p, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

/* Plays the ramp to dev and opens the file it is tapped into, which must hold `bytes`. */
static FILE *playback(const char *dev, const char *tap, long bytes)
{
    wzp_audio_stream *s = open_dev(WZP_AUDIO_PLAYBACK, dev);
    static int16_t pcm[N];
    for (size_t i = 0; i < N; i++)
        pcm[i] = sample(i);
    for (size_t off = 0; off < N; off += 480)
        assert_int_equal(B->write(s, pcm + off, 480), 480);
    B->close(s); /* the file plugin writes out what is left on close */
    assert_int_equal(file_size(tap), bytes);
    char p[128];
    path(p, sizeof(p), tap);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    return f;
}

static void test_playback_s16_mono(void **state)
{
    (void)state;
    FILE *f = playback("tap16", "tap16.raw", N * 2);
    for (size_t i = 0; i < N; i++) {
        int16_t v;
        assert_int_equal(fread(&v, 2, 1, f), 1);
        if (v != sample(i))
            fail_msg("tap16: sample %zu is %d, want %d", i, v, sample(i));
    }
    fclose(f);
}

static void test_playback_float_stereo(void **state)
{
    (void)state;
    FILE *f = playback("stereofloat", "tap32.raw", N * 8);
    for (size_t i = 0; i < N; i++) {
        int32_t lr[2];
        assert_int_equal(fread(lr, 4, 2, f), 2);
        int32_t want = (int32_t)((uint32_t)(uint16_t)sample(i) << 16);
        if (lr[0] != want || lr[1] != want)
            fail_msg("tap32: frame %zu is %d/%d, want %d", i, lr[0], lr[1], want);
    }
    fclose(f);
}

static void test_list(void **state)
{
    (void)state;
    assert_true(B->available());
    wzp_audio_device_info d[32];
    int n = B->list(d, 32);
    assert_true(n >= 6);
    assert_true(n <= 32);
    const char *want[] = {"tap16", "stereofloat", "nothing"};
    for (size_t w = 0; w < 3; w++) {
        int cap = 0, play = 0;
        for (int i = 0; i < n; i++) {
            if (strcmp(d[i].name, want[w]))
                continue;
            cap += d[i].dir == WZP_AUDIO_CAPTURE;
            play += d[i].dir == WZP_AUDIO_PLAYBACK;
            assert_false(d[i].is_default);
        }
        assert_int_equal(cap, 1); /* no IOID in the hint: both directions */
        assert_int_equal(play, 1);
    }
    assert_int_equal(B->list(NULL, 0), n);
}

static void test_missing_device(void **state)
{
    (void)state;
    wzp_audio_stream *s = NULL;
    wzp_audio_stream_config c = {.dir = WZP_AUDIO_CAPTURE, .device = "no_such_pcm"};
    assert_int_equal(B->open(&s, &c), WZP_ERR_DEVICE);
    assert_null(s);
    c.device = NULL; /* "default" is not defined in this configuration */
    assert_int_equal(B->open(&s, &c), WZP_ERR_DEVICE);
    c.period_samples = 4801;
    assert_int_equal(B->open(&s, &c), WZP_ERR_INVALID);
}

/* A null PCM never blocks: 10 s of audio each way returns at once (pacing is the caller's). */
static void test_null_does_not_block(void **state)
{
    (void)state;
    wzp_audio_stream *p = open_dev(WZP_AUDIO_PLAYBACK, "nothing");
    wzp_audio_stream *c = open_dev(WZP_AUDIO_CAPTURE, "nothing");
    static int16_t buf[4800];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(B->write(p, buf, 4800), 4800);
        assert_int_equal(B->read(c, buf, 4800), 4800);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double took = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    (void)B->delay(p);
    B->close(p);
    B->close(c);
    assert_true(took < 2.0);
}

WZP_TEST_MAIN(group_setup, alsa_conf_teardown, test_capture_s16_mono, test_capture_float_mono,
              test_capture_float_stereo, test_playback_s16_mono, test_playback_float_stereo,
              test_list, test_missing_device, test_null_does_not_block)
