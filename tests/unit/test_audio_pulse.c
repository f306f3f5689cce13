/* PulseAudio backend against a private headless server (tests/support/pulse_server): the
 * availability probe with and without a server, device listing with defaults, a playback ->
 * monitor loop carrying a known signal, and streams failing promptly (not hanging) when their
 * sink is unloaded or the server is killed. Skips (77) without a pulseaudio binary. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "audio/backend.h"
#include "support/pulse_server.h"

#define PERIOD 480

static const wzp_audio_backend *B = &wzp_audio_backend_pulse;
static pulse_server server;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int group_setup(void **state)
{
    (void)state;
    if (!pulse_server_installed()) {
        printf("SKIP: pulseaudio is not installed\n");
        exit(77);
    }
    static const char *const sinks[] = {"mic", "spk"};
    if (pulse_server_start(&server, sinks, 2, "spk", "mic.monitor") != 0) {
        printf("SKIP: could not start a private pulseaudio server (see above)\n");
        exit(77);
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    pulse_server_stop(&server);
    return 0;
}

static wzp_audio_stream *open_dev(wzp_audio_dir dir, const char *dev)
{
    wzp_audio_stream_config c = {.dir = dir, .device = dev, .period_samples = PERIOD};
    wzp_audio_stream *s = NULL;
    int rc = B->open(&s, &c);
    assert_int_equal(rc, 0);
    assert_non_null(s);
    return s;
}

static void test_available(void **state)
{
    (void)state;
    assert_true(B->available());
    assert_ptr_equal(wzp_audio_backend_pick(NULL), B);

    /* No server behind an empty runtime dir: false, and quickly. */
    char empty[] = "/tmp/wzp-nopulse-XXXXXX";
    assert_non_null(mkdtemp(empty));
    char *saved = strdup(getenv("XDG_RUNTIME_DIR"));
    setenv("XDG_RUNTIME_DIR", empty, 1);
    double t0 = now_s();
    bool avail = B->available();
    double took = now_s() - t0;
    wzp_audio_stream *s = NULL;
    wzp_audio_stream_config c = {.dir = WZP_AUDIO_PLAYBACK};
    int rc = B->open(&s, &c);
    setenv("XDG_RUNTIME_DIR", saved, 1);
    free(saved);
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", empty); /* libpulse leaves a pulse/ inside */
    assert_int_equal(system(cmd), 0);
    assert_false(avail);
    assert_true(took < 1.0);
    assert_int_equal(rc, WZP_ERR_DEVICE);
    assert_null(s);
}

static const wzp_audio_device_info *find(const wzp_audio_device_info *d, int n, const char *name,
                                         wzp_audio_dir dir)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(d[i].name, name) && d[i].dir == dir)
            return &d[i];
    return NULL;
}

static void test_list(void **state)
{
    (void)state;
    wzp_audio_device_info d[16];
    int n = B->list(d, 16);
    assert_int_equal(n, 4); /* two sinks, two monitors */
    const wzp_audio_device_info *spk = find(d, n, "spk", WZP_AUDIO_PLAYBACK);
    const wzp_audio_device_info *mic = find(d, n, "mic", WZP_AUDIO_PLAYBACK);
    const wzp_audio_device_info *spkm = find(d, n, "spk.monitor", WZP_AUDIO_CAPTURE);
    const wzp_audio_device_info *micm = find(d, n, "mic.monitor", WZP_AUDIO_CAPTURE);
    assert_non_null(spk);
    assert_non_null(mic);
    assert_non_null(spkm);
    assert_non_null(micm);
    assert_true(spk->is_default);
    assert_false(mic->is_default);
    assert_true(micm->is_default);
    assert_false(spkm->is_default);
    assert_true(spk->description[0] != 0);
    /* A short array still learns how many there are. */
    assert_int_equal(B->list(d, 1), 4);
    assert_int_equal(B->list(NULL, 0), 4);
}

static void test_default_names(void **state)
{
    (void)state;
    wzp_audio_stream *p = open_dev(WZP_AUDIO_PLAYBACK, NULL);
    wzp_audio_stream *c = open_dev(WZP_AUDIO_CAPTURE, "");
    assert_string_equal(B->device_name(p), "spk");
    assert_string_equal(B->device_name(c), "mic.monitor");
    B->close(p);
    B->close(c);
    wzp_audio_stream *s = NULL;
    wzp_audio_stream_config cfg = {.dir = WZP_AUDIO_PLAYBACK, .device = "no-such-sink"};
    assert_int_equal(B->open(&s, &cfg), WZP_ERR_DEVICE);
    assert_null(s);
}

/* Deterministic, band-limited noise: no periodicity, so the correlation peak is unique. */
static void make_signal(int16_t *x, size_t n)
{
    uint32_t r = 12345;
    double y = 0;
    for (size_t i = 0; i < n; i++) {
        r = r * 1664525u + 1013904223u;
        double v = ((double)(r >> 8) / 16777216.0 - 0.5) * 16000.0;
        y = 0.5 * y + 0.5 * v;
        x[i] = (int16_t)lrint(y);
    }
}

/* Playback into spk while capturing spk.monitor through the backend: the signal arrives, shifted
   by the latency. */
static void test_loopback(void **state)
{
    (void)state;
    enum { SECONDS_SENT = 1, TOTAL = 48000 * 2, SENT = 48000 * SECONDS_SENT };
    int16_t *sent = calloc(TOTAL, sizeof(int16_t));
    int16_t *got = calloc(TOTAL, sizeof(int16_t));
    assert_non_null(sent);
    assert_non_null(got);
    make_signal(sent, SENT);

    wzp_audio_stream *c = open_dev(WZP_AUDIO_CAPTURE, "spk.monitor");
    wzp_audio_stream *p = open_dev(WZP_AUDIO_PLAYBACK, "spk");
    int16_t lead[PERIOD * 2] = {0}; /* a little margin against underruns */
    assert_int_equal(B->write(p, lead, PERIOD * 2), PERIOD * 2);
    assert_string_equal(B->device_name(p), "spk");
    assert_string_equal(B->device_name(c), "spk.monitor");
    unsigned max_delay = 0;
    /* One thread: reads pace the loop at real time, writes only block once the buffer is full. */
    for (size_t off = 0; off < TOTAL; off += PERIOD) {
        assert_int_equal(B->write(p, sent + off, PERIOD), PERIOD);
        assert_int_equal(B->read(c, got + off, PERIOD), PERIOD);
        unsigned d = B->delay(p);
        if (d > max_delay)
            max_delay = d;
    }
    B->close(p);
    B->close(c);
    assert_true(max_delay > 0);
    assert_true(max_delay < 48000 / 2);

    /* Cross-correlate 100 ms windows of what was sent against what came back, lags up to 0.5 s.
       An underrun on this loaded machine may shift the alignment between windows, so the best
       window counts. */
    const size_t wn = 4800, max_lag = 24000;
    double best = 0;
    size_t best_lag = 0;
    for (size_t w0 = 4800; w0 + wn <= SENT; w0 += 9600) {
        double e_ref = 0;
        for (size_t i = 0; i < wn; i++)
            e_ref += (double)sent[w0 + i] * sent[w0 + i];
        for (size_t lag = 0; lag <= max_lag && w0 + lag + wn <= TOTAL; lag++) {
            double xy = 0, yy = 0;
            for (size_t i = 0; i < wn; i++) {
                double y = got[w0 + lag + i];
                xy += sent[w0 + i] * y;
                yy += y * y;
            }
            double r = yy > 0 ? xy / sqrt(e_ref * yy) : 0;
            if (r > best) {
                best = r;
                best_lag = lag;
            }
        }
        if (best > 0.99)
            break;
    }
    printf("loopback: correlation %.4f at lag %zu samples (%.1f ms), max playback delay %u\n", best,
           best_lag, best_lag / 48.0, max_delay);
    assert_true(best > 0.95);
    free(sent);
    free(got);
}

/* Alternates write and read until both failed: both must fail with WZP_ERR_DEVICE, within 1 s. */
static void expect_both_fail(wzp_audio_stream *p, wzp_audio_stream *c, const char *what)
{
    int16_t buf[PERIOD] = {0};
    int wrc = PERIOD, rrc = PERIOD;
    double t0 = now_s();
    while ((wrc >= 0 || rrc >= 0) && now_s() - t0 < 5.0) {
        if (wrc >= 0)
            wrc = B->write(p, buf, PERIOD);
        if (rrc >= 0)
            rrc = B->read(c, buf, PERIOD);
    }
    double took = now_s() - t0;
    printf("%s: write %d, read %d after %.3f s\n", what, wrc, rrc, took);
    assert_int_equal(wrc, WZP_ERR_DEVICE);
    assert_int_equal(rrc, WZP_ERR_DEVICE);
    assert_true(took < 1.0);
}

static void run_some(wzp_audio_stream *p, wzp_audio_stream *c)
{
    int16_t buf[PERIOD] = {0};
    for (int i = 0; i < 10; i++) {
        assert_int_equal(B->write(p, buf, PERIOD), PERIOD);
        assert_int_equal(B->read(c, buf, PERIOD), PERIOD);
    }
}

static void test_sink_unloaded(void **state)
{
    (void)state;
    int idx = pulse_server_add_sink(&server, "gone");
    assert_true(idx >= 0);
    wzp_audio_stream *p = open_dev(WZP_AUDIO_PLAYBACK, "gone");
    wzp_audio_stream *c = open_dev(WZP_AUDIO_CAPTURE, "gone.monitor");
    run_some(p, c);

    char args[64], out[256];
    snprintf(args, sizeof(args), "unload-module %d", idx);
    assert_int_equal(pulse_server_pactl(&server, out, sizeof(out), args), 0);
    expect_both_fail(p, c, "sink unloaded");
    /* Sticky: only close is left. */
    int16_t buf[PERIOD] = {0};
    assert_int_equal(B->write(p, buf, PERIOD), WZP_ERR_DEVICE);
    B->close(p);
    B->close(c);
}

/* Last: it takes the server down. */
static void test_server_killed(void **state)
{
    (void)state;
    wzp_audio_stream *p = open_dev(WZP_AUDIO_PLAYBACK, "spk");
    wzp_audio_stream *c = open_dev(WZP_AUDIO_CAPTURE, "mic.monitor");
    run_some(p, c);
    pulse_server_signal(&server, SIGKILL);
    expect_both_fail(p, c, "server killed");
    assert_true(B->delay(p) == 0);
    B->close(p);
    B->close(c);
    pulse_server_stop(&server);
    assert_false(B->available());
}

WZP_TEST_MAIN(group_setup, group_teardown, test_available, test_list, test_default_names,
              test_loopback, test_sink_unloaded, test_server_killed)
