/* Live-device plumbing (src/audio/audio_io.c) through its real threads and the ALSA backend,
 * on PCMs from a private configuration (ALSA_CONFIG_PATH): `file` plugins over `null`, which
 * read the "microphone" from a file and tap the "speaker" into one, and never block. What
 * the call thread captures is the file's signal, what it plays lands in the tap, the device
 * threads pace a device that never blocks to real time instead of spinning through it, and an
 * input that cannot be opened falls back to the default device. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "audio/audio_io.h"
#include "media/audio_format.h"
#include "media/compare.h"
#include "net/clock.h"
#include "support/alsa_conf.h"

#define RATE  WZP_AUDIO_RATE
#define FRAME WZP_AUDIO_FRAME_SAMPLES
#define TICKS 100 /* 2 s of 20 ms call ticks */

static alsa_conf conf;

static void path(char *out, size_t cap, const char *name)
{
    alsa_conf_path(&conf, out, cap, name);
}

/* Distinct signals per file: a gliding tone with a slow amplitude wobble (an unambiguous NCC
 * peak, nothing the resamplers could alias). */
static int16_t sig(size_t i, double f0)
{
    double t = (double)i / RATE;
    return (int16_t)lrint(8000 * (0.7 + 0.3 * sin(2 * M_PI * 1.3 * t)) *
                          sin(2 * M_PI * (f0 + 40 * t) * t));
}

static void write_signal(const char *name, double f0, size_t n)
{
    char p[128];
    path(p, sizeof(p), name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++) {
        int16_t v = sig(i, f0);
        fwrite(&v, 2, 1, f);
    }
    fclose(f);
}

static int group_setup(void **state)
{
    assert_int_equal(alsa_conf_make(&conf, "wzp-audio-io"), 0);
    *state = &conf; /* for alsa_conf_teardown */
    write_signal("mic.raw", 300, 10 * RATE);
    write_signal("fallback.raw", 700, 10 * RATE);
    assert_int_equal(
        alsa_conf_write(&conf,
                        "pcm.mic {\n  type file\n  slave.pcm { type null }\n  format raw\n"
                        "  file \"@DIR@/mic-tap.raw\"\n  infile \"@DIR@/mic.raw\"\n}\n"
                        "pcm.spk {\n  type file\n  slave.pcm { type null }\n  format raw\n"
                        "  file \"@DIR@/spk.raw\"\n}\n"
                        "pcm.!default {\n  type file\n  slave.pcm { type null }\n  format raw\n"
                        "  file \"@DIR@/default-tap.raw\"\n  infile \"@DIR@/fallback.raw\"\n}\n"),
        0);
    return 0;
}

static void sleep_until(wzp_ts t)
{
    struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ULL),
                          .tv_nsec = (long)(t % 1000000000ULL)};
    clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
}

/* Runs the call thread's side for TICKS ticks: captures into cap (TICKS frames), plays a signal
 * of its own. Returns the wall time taken. */
static double run_ticks(wzp_audio_io *io, int16_t *cap)
{
    wzp_ts t0 = wzp_now(), t = t0;
    for (size_t k = 0; k < TICKS; k++) {
        t += WZP_MS(20);
        sleep_until(t);
        wzp_audio_io_capture(io, cap + k * FRAME, wzp_now());
        int16_t out[FRAME];
        for (size_t i = 0; i < FRAME; i++)
            out[i] = sig(k * FRAME + i, 1000);
        wzp_audio_io_play(io, out);
    }
    return (double)(wzp_now() - t0) / 1e9;
}

/* NCC of the second half of got (past the start-up buffering) against the reference signal,
 * at its best lag within 0..1 s. */
static double match(const int16_t *got, size_t n, double f0, size_t ref_n)
{
    int16_t *ref = malloc(ref_n * sizeof(*ref));
    assert_non_null(ref);
    for (size_t i = 0; i < ref_n; i++)
        ref[i] = sig(i, f0);
    wzp_ncc_result r;
    size_t half = n / 2;
    assert_int_equal(
        wzp_ncc_search_s16(ref, ref_n, got + half, n - half, -(long)ref_n, 0, (n - half) / 2, &r),
        0);
    free(ref);
    return r.ncc;
}

static void test_capture_play_and_pacing(void **state)
{
    (void)state;
    wzp_audio_io_config c;
    wzp_audio_io_config_default(&c);
    c.backend = "alsa";
    c.input = "mic";
    c.output = "spk";
    wzp_audio_io *io = NULL;
    assert_int_equal(wzp_audio_io_new(&io, &c), 0);
    static int16_t cap[TICKS * FRAME];
    double secs = run_ticks(io, cap);
    wzp_audio_io_stats st;
    wzp_audio_io_get_stats(io, &st);
    wzp_audio_io_free(io);
    printf("# %.2f s: captured %llu frames, played %llu, stalls %llu, losses %llu\n", secs,
           (unsigned long long)st.captured, (unsigned long long)st.played,
           (unsigned long long)st.stalls, (unsigned long long)st.device_losses);
    assert_string_equal(st.input, "mic");
    assert_string_equal(st.output, "spk");
    assert_int_equal(st.device_losses, 0);

    /* The microphone's file came through the ring and the drift compensator intact. */
    /* (Not bit-exact: the drift compensator resamples, and may stretch by up to 0.1 %.) */
    double ncc = match(cap, TICKS * FRAME, 300, 4 * RATE);
    printf("# capture vs mic.raw: NCC %.4f\n", ncc);
    assert_true(ncc > 0.95);

    /* What was played reached the tap... */
    char p[128];
    path(p, sizeof(p), "spk.raw");
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    static int16_t tap[8 * RATE];
    size_t n = fread(tap, 2, sizeof(tap) / 2, f);
    fclose(f);
    ncc = match(tap, n, 1000, TICKS * FRAME);
    printf("# spk.raw vs played: NCC %.4f, %zu samples\n", ncc, n);
    assert_true(ncc > 0.95);
    /* ...at the pace of time, not of the CPU: these devices never block, unpaced they would
     * take seconds of audio per second (the tap would hold far more than was played). */
    assert_true((double)n / RATE < secs + 0.5);
    struct stat sb;
    path(p, sizeof(p), "mic-tap.raw"); /* the file plugin also taps what capture read */
    if (stat(p, &sb) == 0)
        assert_true((double)sb.st_size / 2 / RATE < secs + 0.5);
}

static void test_unknown_input_falls_back(void **state)
{
    (void)state;
    wzp_audio_io_config c;
    wzp_audio_io_config_default(&c);
    c.backend = "alsa";
    c.input = "no-such-pcm";
    c.playback = false;
    wzp_audio_io *io = NULL;
    assert_int_equal(wzp_audio_io_new(&io, &c), 0);
    static int16_t cap[TICKS * FRAME];
    run_ticks(io, cap);
    wzp_audio_io_stats st;
    wzp_audio_io_get_stats(io, &st);
    wzp_audio_io_free(io);
    assert_true(st.open_failures >= 1);
    assert_string_equal(st.input, "default");
    assert_string_equal(st.output, "");
    double ncc = match(cap, TICKS * FRAME, 700, 4 * RATE),
           other = match(cap, TICKS * FRAME, 300, 4 * RATE);
    printf("# fallback capture vs fallback.raw: NCC %.4f (vs mic.raw %.4f)\n", ncc, other);
    assert_true(ncc > 0.95);
    assert_true(other < 0.5);
}

static void test_bad_backend(void **state)
{
    (void)state;
    wzp_audio_io_config c;
    wzp_audio_io_config_default(&c);
    c.backend = "oss";
    wzp_audio_io *io = NULL;
    assert_int_equal(wzp_audio_io_new(&io, &c), WZP_ERR_DEVICE);
    assert_null(io);
    c.backend = "alsa";
    c.period_ms = 101;
    assert_int_equal(wzp_audio_io_new(&io, &c), WZP_ERR_INVALID);
}

WZP_TEST_MAIN(group_setup, alsa_conf_teardown, test_capture_play_and_pacing,
              test_unknown_input_falls_back, test_bad_backend)
