/* End to end through the media layer on a virtual clock: probe signal ->
 * sender -> lossy, jittery, reordering, duplicating channel -> receiver
 * (playout, FEC, concealment) -> recording, which must match what was sent
 * (NCC > 0.9) at the delay the schedule predicts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/synth.h"
#include "support/test_main.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "audio/voice_proc.h"
#include "media/audio_format.h"
#include "media/compare.h"
#include "media/media_session.h"
#include "media/tone.h"
#include "wire/media_frame.h"

#define N      WZP_AUDIO_FRAME_SAMPLES
#define TICK   WZP_MS(20)
#define FRAMES 300 /* 6 s */
#define MAXPKT (FRAMES * 2)

typedef struct pkt {
    wzp_ts at;
    size_t len;
    uint8_t b[WZP_MEDIA_MAX_FRAME];
} pkt;

typedef struct channel {
    uint64_t rng;
    unsigned loss_pct, dup_pct, spike_pct;
    wzp_ts base, jitter, spike;
    wzp_ts hold_until; /* nothing arrives before this (a held first packet) */
    pkt *q;
    size_t n;
} channel;

static uint64_t rnd(channel *c)
{
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return c->rng;
}

static void channel_send(channel *c, const uint8_t *b, size_t len, wzp_ts now)
{
    if (rnd(c) % 100 < c->loss_pct)
        return;
    int copies = rnd(c) % 100 < c->dup_pct ? 2 : 1;
    for (int i = 0; i < copies && c->n < MAXPKT; i++) {
        pkt *p = &c->q[c->n++];
        p->at = now + c->base + (c->jitter ? rnd(c) % c->jitter : 0);
        if (rnd(c) % 100 < c->spike_pct)
            p->at += c->spike;
        if (p->at < c->hold_until)
            p->at = c->hold_until;
        p->len = len;
        memcpy(p->b, b, len);
    }
}

static int by_arrival(const void *a, const void *b)
{
    const pkt *x = a, *y = b;
    return x->at < y->at ? -1 : x->at > y->at;
}

typedef struct result {
    int16_t *sent, *rec;
    size_t nrec;
    long expect_lag;
    long first_tick;
    int txlen[FRAMES];                              /* datagram length per frame, 0 = not sent */
    int kind[FRAMES + 40];                          /* wzp_media_rx_out per pull */
    wzp_ts delay[FRAMES + 40], target[FRAMES + 40]; /* playout delay and target per pull */
    uint64_t tail; /* pulls after the last frame's slot: concealed */
    wzp_media_tx_stats tx;
    wzp_media_rx_stats rx;
} result;

/* Runs the whole call; pulls happen on the receiver's own 20 ms grid,
 * offset from the sender's by `phase`. voice: per-frame VAD for the sender,
 * or NULL (all voice). */
static void run_call(channel *c, const wzp_media_tx_config *tcfg, const wzp_media_rx_config *rcfg,
                     int16_t *sent, const bool *voice, wzp_ts phase, result *out)
{
    wzp_media_tx *tx = NULL;
    assert_int_equal(wzp_media_tx_new(&tx, tcfg), 0);
    assert_non_null(tx);
    wzp_media_rx *rx = NULL;
    assert_int_equal(wzp_media_rx_new(&rx, rcfg), 0);
    assert_non_null(rx);
    c->q = calloc(MAXPKT, sizeof(pkt));
    c->n = 0;
    uint8_t dg[WZP_MEDIA_MAX_FRAME];
    for (int k = 0; k < FRAMES; k++) {
        int len = wzp_media_tx_frame_vad(tx, sent + k * N, voice ? voice[k] : true, dg, sizeof(dg));
        assert_true(len >= 0);
        out->txlen[k] = len;
        if (len > 0)
            channel_send(c, dg, (size_t)len, (wzp_ts)k * TICK);
    }
    qsort(c->q, c->n, sizeof(pkt), by_arrival);

    size_t ticks = FRAMES + 40;
    out->rec = calloc(ticks * N, sizeof(int16_t));
    out->nrec = ticks * N;
    out->sent = sent;
    size_t next = 0;
    long first_tick = -1;
    for (size_t j = 0; j < ticks; j++) {
        wzp_ts now = phase + j * TICK;
        while (next < c->n && c->q[next].at <= now) {
            wzp_media_rx_datagram(rx, c->q[next].b, c->q[next].len, c->q[next].at);
            next++;
        }
        /* The receiver says when the first pull is due. */
        wzp_ts due = wzp_media_rx_next_deadline(rx);
        int kind = wzp_media_rx_pull(rx, now, out->rec + j * N);
        out->kind[j] = kind;
        wzp_media_rx_stats st;
        wzp_media_rx_get_stats(rx, &st);
        out->delay[j] = st.delay;
        out->target[j] = st.playout.target;
        if (kind != WZP_MEDIA_RX_SILENCE && first_tick < 0) {
            first_tick = (long)j;
            assert_true(now >= due);
        }
    }
    /* Frame 0 plays at first_tick; Opus adds its look-ahead (~6.5 ms). */
    out->expect_lag = first_tick * N + 312;
    out->first_tick = first_tick;
    out->tail = ticks - (size_t)first_tick - FRAMES;
    wzp_media_tx_get_stats(tx, &out->tx);
    wzp_media_rx_get_stats(rx, &out->rx);
    free(c->q);
    wzp_media_tx_free(tx);
    wzp_media_rx_free(rx);
}

static int16_t *probe_pcm(void)
{
    int16_t *s = malloc(FRAMES * N * sizeof(*s));
    wzp_probe_signal p;
    wzp_probe_signal_init(&p, 2026, 0.5f);
    wzp_probe_signal_fill_s16(&p, s, FRAMES * N);
    return s;
}

/* shed: samples the adaptive playout may have shed from the delay on a
 * jittery channel (the match is then earlier than the first tick says). */
static void check_match_shed(const result *r, const char *what, long shed)
{
    wzp_ncc_result m;
    assert_int_equal(wzp_ncc_search_s16(r->sent, FRAMES * N, r->rec, r->nrec, 0, 12000, 0, &m), 0);
    printf("# %s: expected lag %ld, measured %ld (%.1f ms), ncc %.3f\n", what, r->expect_lag, m.lag,
           m.lag / 48.0, m.ncc);
    printf("#   tx sent %llu; rx decoded %llu fec %llu plc %llu; playout late %llu dup %llu "
           "lost %llu concealed %llu\n",
           (unsigned long long)r->tx.sent, (unsigned long long)r->rx.decoded,
           (unsigned long long)r->rx.fec_recovered, (unsigned long long)r->rx.plc,
           (unsigned long long)r->rx.playout.late, (unsigned long long)r->rx.playout.duplicate,
           (unsigned long long)r->rx.playout.lost, (unsigned long long)r->rx.playout.concealed);
    assert_true(m.lag - r->expect_lag <= 10 && r->expect_lag - m.lag <= 10 + shed);
    assert_true(m.ncc > 0.9);
}

static void check_match(const result *r, const char *what)
{
    check_match_shed(r, what, 0);
}

static void test_clean_channel(void **state)
{
    (void)state;
    int16_t *sent = probe_pcm();
    channel c = {.rng = 1, .base = WZP_MS(30)};
    wzp_media_tx_config t;
    wzp_media_tx_config_default(&t);
    t.initial_seq = 65000; /* wraps during the call */
    t.initial_ts = 0xffffffffu - 50 * N + 1;
    wzp_media_rx_config r;
    wzp_media_rx_config_default(&r);
    result res;
    run_call(&c, &t, &r, sent, NULL, WZP_MS(7), &res);
    check_match(&res, "clean");
    assert_int_equal(res.tx.sent, FRAMES);
    assert_int_equal(res.rx.decoded, FRAMES);
    assert_int_equal(res.rx.playout.lost + res.rx.fec_recovered, 0);
    assert_int_equal(res.rx.plc, res.tail);
    /* First decoded frame: first arrival (30 ms) + 60 ms, on the 7 ms grid. */
    assert_int_equal(res.rx.first_datagram, WZP_MS(30));
    assert_int_equal(res.rx.first_decoded, WZP_MS(107));
    free(res.rec);
    free(sent);
}

static void test_lossy_reordering_channel(void **state)
{
    (void)state;
    int16_t *sent = probe_pcm();
    /* 40-70 ms one way (reorders: jitter > frame interval), 5 % loss,
     * 2 % duplicates, 1 % spikes of +200 ms (late). */
    channel c = {.rng = 0x5eed,
                 .loss_pct = 5,
                 .dup_pct = 2,
                 .spike_pct = 1,
                 .base = WZP_MS(40),
                 .jitter = WZP_MS(30),
                 .spike = WZP_MS(200)};
    wzp_media_tx_config t;
    wzp_media_tx_config_default(&t);
    t.opus.expected_loss_pct = 10;
    wzp_media_rx_config r;
    wzp_media_rx_config_default(&r);
    r.playout.target_delay = WZP_MS(80);
    /* A fixed delay, so one lag matches the whole call (adaptation moves it:
     * see test_late_start_is_shed). */
    r.playout.adaptive = false;
    result res;
    run_call(&c, &t, &r, sent, NULL, WZP_MS(13), &res);
    check_match_shed(&res, "lossy", N);
    assert_true(res.rx.fec_recovered > 0);
    assert_true(res.rx.playout.late > 0);
    assert_true(res.rx.playout.duplicate > 0);
    assert_true(res.rx.playout.lost > 0);
    assert_int_equal(res.rx.decoded + res.rx.fec_recovered + res.rx.plc,
                     FRAMES + 40 - res.rx.silence);
    free(res.rec);

    /* Without FEC the same channel still matches, but every loss is concealed. */
    c.rng = 0x5eed;
    r.use_fec = false;
    run_call(&c, &t, &r, sent, NULL, WZP_MS(13), &res);
    check_match_shed(&res, "lossy, no fec", N);
    assert_int_equal(res.rx.fec_recovered, 0);
    free(res.rec);
    free(sent);
}

static void test_late_start_is_shed(void **state)
{
    (void)state;
    /* 20 ms one way, but the first packet is held 150 ms and the next ones
     * queue behind it. Playout starts 20 ms after it, 150 ms deeper than
     * needed; playing faster brings the delay back within 20 ms of the
     * target (test_late_first_packet_settles: how soon), nothing concealed
     * on the way, and the sound after that matches the sent signal at the
     * new, shorter lag. */
    int16_t *sent = probe_pcm();
    channel c = {.rng = 3, .base = WZP_MS(20), .hold_until = WZP_MS(170)};
    wzp_media_tx_config t;
    wzp_media_tx_config_default(&t);
    wzp_media_rx_config r;
    wzp_media_rx_config_default(&r);
    r.playout.target_delay = WZP_MS(20);
    result res;
    run_call(&c, &t, &r, sent, NULL, WZP_MS(3), &res);
    wzp_ncc_result m;
    size_t from = 200 * N, len = 80 * N; /* 4-5.6 s */
    assert_int_equal(wzp_ncc_search_s16(sent + from, len, res.rec, res.nrec, (long)from,
                                        (long)from + 12000, len, &m),
                     0);
    long lag = m.lag - (long)from;
    printf("# late start: first tick %ld; delay %.1f ms target %.1f ms; %llu faster, %llu quiet "
           "skipped; plc %llu (tail %llu); 4-5.6 s matches at lag %.1f ms (first tick says %.1f), "
           "ncc %.3f\n",
           res.first_tick, res.rx.delay / 1e6, res.rx.playout.target / 1e6,
           (unsigned long long)res.rx.faster, (unsigned long long)res.rx.quiet_skipped,
           (unsigned long long)res.rx.plc, (unsigned long long)res.tail, lag / 48.0,
           res.expect_lag / 48.0, m.ncc);
    assert_true(res.rx.faster > 0);
    assert_int_equal(res.rx.decoded, FRAMES); /* every frame played, none concealed */
    assert_true(res.rx.playout.delay <= res.rx.playout.target + WZP_MS(20));
    assert_true(res.expect_lag - lag >= 90 * 48); /* >= 90 ms shed */
    assert_true(m.ncc > 0.9);
    free(res.rec);
    free(sent);
}

/* Pulls from the first sound until the delay is within 20 ms of the target
 * for good (-1: never). */
static long settle_ticks(const result *r)
{
    long last_off = -1;
    for (long j = r->first_tick; j < r->first_tick + FRAMES; j++)
        if (r->delay[j] > r->target[j] + WZP_MS(20))
            last_off = j;
    if (last_off == r->first_tick + FRAMES - 1)
        return -1;
    return last_off < 0 ? 0 : last_off + 1 - r->first_tick;
}

static void test_late_first_packet_settles(void **state)
{
    (void)state;
    /* The case through the whole receiver: the first packet 100,
     * 150 and 200 ms late (the ones after it queue behind it), continuous
     * loud sound (nothing quiet to skip). Within 3 s of the first sound the
     * delay is within 20 ms of the target and stays there, with nothing
     * concealed, and the sound after that still matches what was sent. */
    int16_t *sent = probe_pcm();
    static const int held_ms[] = {100, 150, 200};
    for (size_t i = 0; i < sizeof(held_ms) / sizeof(held_ms[0]); i++) {
        channel c = {.rng = 3, .base = WZP_MS(20), .hold_until = WZP_MS(20 + held_ms[i])};
        wzp_media_tx_config t;
        wzp_media_tx_config_default(&t);
        wzp_media_rx_config r;
        wzp_media_rx_config_default(&r);
        r.playout.target_delay = WZP_MS(20); /* as the client starts it */
        result res;
        run_call(&c, &t, &r, sent, NULL, WZP_MS(3), &res);
        long settle = settle_ticks(&res);
        wzp_ncc_result m;
        size_t from = 200 * N, len = 80 * N; /* 4-5.6 s */
        assert_int_equal(wzp_ncc_search_s16(sent + from, len, res.rec, res.nrec, (long)from,
                                            (long)from + 12000, len, &m),
                         0);
        printf("# first packet %d ms late: start delay %.1f ms, target %.1f ms; within 20 ms after "
               "%ld ms; %llu faster; 4-5.6 s ncc %.3f\n",
               held_ms[i], res.delay[res.first_tick] / 1e6, res.target[FRAMES] / 1e6, settle * 20,
               (unsigned long long)res.rx.faster, m.ncc);
        assert_true(res.delay[res.first_tick] >
                    res.target[res.first_tick] + WZP_MS(held_ms[i] / 2));
        assert_true(settle >= 0 && settle <= 150);
        assert_int_equal(res.rx.decoded, FRAMES);
        assert_true(m.ncc > 0.9);
        free(res.rec);
    }
    free(sent);
}

static void test_redundancy_rebuilds_bursts(void **state)
{
    (void)state;
    /* Bursts of 2, 3 and 5 lost datagrams on a steady 20 ms path. In-band
     * FEC alone rebuilds the last frame of each burst; with two copies per
     * datagram (1 and 2 back) the short bursts come back whole and the last
     * three frames of the long one; with three copies 2, 4 and 6 back the
     * long one too (the playout waits for them); with XOR parity over the 3
     * frames before each datagram, as much as with two copies for a third of
     * their bytes. The copies are counted apart from the frames' own
     * packets. */
    int16_t *sent = probe_pcm();
    static const struct {
        unsigned red, spacing, parity;
        uint64_t plc, plc_long; /* concealed in all, in the long burst */
    } cfgs[] = {{0, 1, 0, 7, 4}, {2, 1, 0, 2, 2}, {3, 2, 0, 0, 0}, {0, 1, 3, 2, 2}};
    for (size_t c = 0; c < sizeof(cfgs) / sizeof(cfgs[0]); c++) {
        wzp_media_tx_config t;
        wzp_media_tx_config_default(&t);
        t.redundancy = cfgs[c].red;
        t.red_spacing = cfgs[c].spacing;
        t.parity_span = cfgs[c].parity;
        wzp_media_tx *tx = NULL;
        wzp_media_rx *rx = NULL;
        assert_int_equal(wzp_media_tx_new(&tx, &t), 0);
        assert_int_equal(wzp_media_rx_new(&rx, NULL), 0);
        uint8_t held[2][WZP_MEDIA_MAX_FRAME];
        int held_len[2] = {0, 0};
        int16_t pcm[N];
        uint64_t plc_before_long = 0;
        for (int k = 0; k < FRAMES; k++) {
            wzp_ts now = (wzp_ts)k * TICK;
            /* what was sent one frame ago arrives now (20 ms one way) */
            if (held_len[k % 2] > 0)
                wzp_media_rx_datagram(rx, held[k % 2], (size_t)held_len[k % 2], now);
            int len = wzp_media_tx_frame(tx, sent + k * N, held[(k + 1) % 2], WZP_MEDIA_MAX_FRAME);
            assert_true(len > 0);
            bool lost = k == 100 || k == 101 || (k >= 200 && k <= 202) || (k >= 250 && k <= 254);
            held_len[(k + 1) % 2] = lost ? 0 : len;
            if (now >= wzp_media_rx_next_deadline(rx))
                wzp_media_rx_pull(rx, now, pcm);
            if (k == 240) {
                wzp_media_rx_stats st;
                wzp_media_rx_get_stats(rx, &st);
                plc_before_long = st.plc;
            }
        }
        wzp_media_rx_stats st;
        wzp_media_rx_get_stats(rx, &st);
        wzp_media_tx_stats ts;
        wzp_media_tx_get_stats(tx, &ts);
        printf("# redundancy %u every %u, parity over %u: fec %llu, redundancy %llu, plc %llu "
               "(long burst %llu), "
               "missing %llu in %llu runs (longest %llu); %.1f kbit/s sent, %.1f of it copies; "
               "playout target %.0f ms\n",
               cfgs[c].red, cfgs[c].spacing, cfgs[c].parity, (unsigned long long)st.fec_recovered,
               (unsigned long long)st.redundancy_recovered, (unsigned long long)st.plc,
               (unsigned long long)(st.plc - plc_before_long), (unsigned long long)st.missing,
               (unsigned long long)st.runs, (unsigned long long)st.max_run,
               ts.bytes * 8.0 / (FRAMES * 0.02) / 1000, ts.red_bytes * 8.0 / (FRAMES * 0.02) / 1000,
               st.playout.target / 1e6);
        assert_int_equal(st.missing, 10);
        assert_int_equal(st.runs, 3);
        assert_int_equal(st.max_run, 5);
        assert_int_equal(st.plc, cfgs[c].plc);
        assert_int_equal(st.plc - plc_before_long, cfgs[c].plc_long);
        assert_int_equal(st.fec_recovered + st.redundancy_recovered + st.plc, 10);
        if (cfgs[c].parity) {
            assert_true(st.parity_rebuilt >= 6);
            assert_int_equal(wzp_media_rx_redundancy(rx), 2 * cfgs[c].parity - 1);
        } else {
            assert_int_equal(wzp_media_rx_redundancy(rx), cfgs[c].red * cfgs[c].spacing);
        }
        wzp_media_tx_free(tx);
        wzp_media_rx_free(rx);
    }
    free(sent);
}

static void test_dtx_and_mute(void **state)
{
    (void)state;
    /* Talk 1 s, silence 2 s, talk 1 s: with DTX the silence is mostly not sent,
     * and the receiver treats the gap as DTX, not loss. */
    int16_t *sent = probe_pcm();
    memset(sent + 50 * N, 0, 100 * N * sizeof(int16_t));
    memset(sent + 200 * N, 0, 100 * N * sizeof(int16_t));
    channel c = {.rng = 3, .base = WZP_MS(25)};
    wzp_media_tx_config t;
    wzp_media_tx_config_default(&t);
    t.opus.dtx = true;
    wzp_media_rx_config r;
    wzp_media_rx_config_default(&r);
    result res;
    run_call(&c, &t, &r, sent, NULL, WZP_MS(3), &res);
    printf("# dtx: sent %llu suppressed %llu; playout dtx %llu lost %llu concealed %llu\n",
           (unsigned long long)res.tx.sent, (unsigned long long)res.tx.suppressed,
           (unsigned long long)res.rx.playout.dtx, (unsigned long long)res.rx.playout.lost,
           (unsigned long long)res.rx.playout.concealed);
    assert_true(res.tx.suppressed > 50);
    assert_int_equal(res.tx.sent + res.tx.suppressed, FRAMES);
    assert_true(res.rx.playout.dtx > 50);
    assert_int_equal(res.rx.playout.lost, 0);
    /* libopus's own DTX in the 2 s of digital silence: its 1-2 byte frames
     * go out once per DTX entry, and a real frame every ~400 ms refreshes
     * the receiver's comfort noise. */
    int refresh = 0, tiny = 0, last = -1, max_gap = 0;
    for (int k = 60; k < 150; k++) {
        int pl = res.txlen[k] - WZP_MEDIA_HEADER_LEN;
        if (res.txlen[k] == 0)
            continue;
        if (pl <= 2) {
            tiny++;
            continue;
        }
        refresh++;
        if (last >= 0 && k - last > max_gap)
            max_gap = k - last;
        last = k;
    }
    printf("# dtx, 1.2-3 s of silence: %d refresh frames (longest gap %d frames), %d tiny\n",
           refresh, max_gap, tiny);
    assert_true(refresh >= 3);
    assert_true(max_gap >= 15 && max_gap <= 25);
    assert_true(tiny <= refresh + 1);
    check_match(&res, "dtx");
    free(res.rec);
    free(sent);

    /* Mute: frames still flow (flagged), the far end hears silence. */
    wzp_media_tx *tx = NULL;
    assert_int_equal(wzp_media_tx_new(&tx, NULL), 0);
    assert_non_null(tx);
    wzp_media_tx_set_mute(tx, true);
    int16_t pcm[N];
    wzp_tone tone;
    wzp_tone_init(&tone, 500, 0.5f);
    wzp_tone_fill_s16(&tone, pcm, N);
    uint8_t dg[WZP_MEDIA_MAX_FRAME];
    int len = wzp_media_tx_frame(tx, pcm, dg, sizeof(dg));
    assert_true(len > WZP_MEDIA_HEADER_LEN);
    wzp_media_frame f;
    assert_int_equal(wzp_media_frame_decode(&f, dg, (size_t)len), 0);
    assert_true(f.flags & WZP_MEDIA_F_MUTE);
    assert_true(f.flags & WZP_MEDIA_F_MARKER);
    assert_int_equal(wzp_media_tx_set_bitrate(tx, 16000), 0);
    assert_int_equal(wzp_media_tx_set_expected_loss(tx, 30), 0);
    /* Output buffer too small for the datagram. */
    assert_int_equal(wzp_media_tx_frame(tx, pcm, dg, 4), WZP_ERR_TOO_BIG);
    wzp_media_tx_free(tx);
}

/* Live-call DTX: steady -50 dBFS room noise with two 1 s speech bursts;
 * the sender's DTX follows wzp_voice_proc's VAD. */
#define NOISE_DBFS (-50.0)

static bool in_speech(int k)
{
    return (k >= 50 && k < 100) || (k >= 175 && k < 225); /* 1-2 s, 3.5-4.5 s */
}

static void test_vad_dtx_comfort_noise(void **state)
{
    (void)state;
    float *noise = calloc(FRAMES * N, sizeof(float));
    float *speech = calloc(FRAMES * N, sizeof(float));
    int16_t *sent = calloc(FRAMES * N, sizeof(int16_t));
    bool voice[FRAMES];
    wzp_synth_noise_floor(noise, FRAMES * N, 9, NOISE_DBFS);
    wzp_synth_syllables(speech + 50 * N, 50 * N, 4, 12000);
    wzp_synth_syllables(speech + 175 * N, 50 * N, 5, 12000);
    wzp_synth_mix_s16(noise, speech, NULL, sent, FRAMES * N);
    double floor_db = wzp_synth_dbfs(wzp_synth_power(noise, NULL, 0, FRAMES * N));

    /* The live chain's VAD (alone, so the signal is untouched). */
    wzp_voice_proc_config vc = {.vad = true};
    wzp_voice_proc *vp = NULL;
    assert_int_equal(wzp_voice_proc_new(&vp, &vc), 0);
    int vad_in_speech = 0, vad_in_noise = 0;
    for (int k = 0; k < FRAMES; k++) {
        int16_t tmp[N];
        assert_int_equal(wzp_voice_proc_near(vp, sent + k * N, tmp, &voice[k]), 0);
        vad_in_speech += voice[k] && in_speech(k);
        vad_in_noise += voice[k] && !in_speech(k);
    }
    wzp_voice_proc_free(vp);
    printf("# vad: %d/100 speech frames voice, %d/200 noise frames voice\n", vad_in_speech,
           vad_in_noise);

    wzp_media_tx_config t;
    wzp_media_tx_config_default(&t);
    wzp_media_rx_config r;
    wzp_media_rx_config_default(&r);
    result on, off;
    channel c = {.rng = 5, .base = WZP_MS(30)};
    t.opus.dtx = true;
    run_call(&c, &t, &r, sent, voice, WZP_MS(9), &on);
    c.rng = 5;
    t.opus.dtx = false;
    run_call(&c, &t, &r, sent, voice, WZP_MS(9), &off);

    /* (a) Bandwidth in the non-voice stretches. */
    int dg_on = 0, dg_off = 0;
    for (int k = 0; k < FRAMES; k++) {
        dg_on += !in_speech(k) && on.txlen[k] > 0;
        dg_off += !in_speech(k) && off.txlen[k] > 0;
    }
    printf("# vad dtx: %d datagrams in 200 non-voice frames (dtx off: %d); sent %llu "
           "suppressed %llu\n",
           dg_on, dg_off, (unsigned long long)on.tx.sent, (unsigned long long)on.tx.suppressed);
    assert_true(dg_on * 5 <= dg_off);

    /* (b) DTX slots at the receiver: comfort noise near the sender's floor. */
    double p = 0;
    int slots = 0;
    for (size_t j = 0; j < FRAMES + 40; j++) {
        if (on.kind[j] != WZP_MEDIA_RX_COMFORT)
            continue;
        p += wzp_synth_power(NULL, on.rec + j * N, 0, N);
        slots++;
    }
    double cn_db = wzp_synth_dbfs(slots ? p / slots : 0);
    printf("# vad dtx: %d comfort slots at %.1f dBFS; sender floor %.1f dBFS\n", slots, cn_db,
           floor_db);
    assert_int_equal(on.rx.comfort, (uint64_t)slots);
    assert_true(slots >= 120);
    assert_true(fabs(cn_db - floor_db) <= 6.0);

    /* (c) Speech after silence arrives as intact as without DTX (the codec
     * alone keeps the syllables' noisy parts only to NCC ~0.8). */
    for (int b = 0; b < 2; b++) {
        size_t a = (size_t)(b ? 175 : 50) * N, len = 50 * N;
        wzp_ncc_result m[2];
        for (int i = 0; i < 2; i++) {
            const result *res = i ? &off : &on;
            long lag = res->expect_lag + (long)a;
            assert_int_equal(wzp_ncc_search_s16(sent + a, len, res->rec, res->nrec, lag - 20,
                                                lag + 20, len, &m[i]),
                             0);
            assert_true(labs(m[i].lag - lag) <= 10);
        }
        printf("# vad dtx: burst %d ncc %.3f (dtx off %.3f)\n", b, m[0].ncc, m[1].ncc);
        assert_true(m[0].ncc >= 0.75);
        assert_true(m[0].ncc >= m[1].ncc - 0.03);
    }

    /* Comfort noise off: the same slots are digital silence. */
    c.rng = 5;
    t.opus.dtx = true;
    r.comfort_noise = false;
    result quiet;
    run_call(&c, &t, &r, sent, voice, WZP_MS(9), &quiet);
    int zero_slots = 0;
    for (size_t j = 0; j < FRAMES + 40; j++)
        if (quiet.kind[j] == WZP_MEDIA_RX_COMFORT)
            zero_slots += wzp_synth_power(NULL, quiet.rec + j * N, 0, N) == 0;
    assert_int_equal(zero_slots, slots);
    free(quiet.rec);

    /* (d) DTX off: every frame sent, no comfort noise, whatever the VAD says. */
    assert_int_equal(off.tx.sent, FRAMES);
    assert_int_equal(off.tx.suppressed, 0);
    assert_int_equal(off.rx.comfort, 0);
    free(on.rec);
    free(off.rec);
    free(sent);
    free(speech);
    free(noise);
}

static void test_tx_refused(void **state)
{
    (void)state;
    /* Refused at once (queue full) or taken and dropped later by the
     * transport: either way out of sent and bytes, into refused. */
    wzp_media_tx *tx = NULL;
    assert_int_equal(wzp_media_tx_new(&tx, NULL), 0);
    int16_t *pcm = probe_pcm();
    uint8_t dg[WZP_MEDIA_MAX_FRAME];
    uint64_t lens[3];
    for (int k = 0; k < 3; k++) {
        int n = wzp_media_tx_frame(tx, pcm + k * N, dg, sizeof(dg));
        assert_true(n > 0);
        lens[k] = (uint64_t)n;
    }
    wzp_media_tx_refused(tx, 1, lens[2]);
    wzp_media_tx_refused(tx, 1, lens[1]); /* dropped later */
    wzp_media_tx_stats st;
    wzp_media_tx_get_stats(tx, &st);
    assert_int_equal(st.sent, 1);
    assert_int_equal(st.refused, 2);
    assert_int_equal(st.bytes, lens[0]);
    wzp_media_tx_refused(tx, 5, 10000); /* more than was sent: clamped */
    wzp_media_tx_get_stats(tx, &st);
    assert_int_equal(st.sent, 0);
    assert_int_equal(st.refused, 3);
    assert_int_equal(st.bytes, 0);
    free(pcm);
    wzp_media_tx_free(tx);
}

static void test_rx_rejects_garbage(void **state)
{
    (void)state;
    wzp_media_rx *rx = NULL;
    assert_int_equal(wzp_media_rx_new(&rx, NULL), 0);
    assert_non_null(rx);
    const uint8_t shortdg[3] = {0x11, 0, 0};
    uint8_t other[12] = {0x14, 0, 0, 1, 0, 0, 0, 0, 1, 2, 3, 4};
    const uint8_t bad_red[12] = {0x12, 0, 0, 1, 0, 0, 0, 0, 0, 2, 3, 4};       /* 0 copies */
    const uint8_t bad_parity[13] = {0x13, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0, 0, 9}; /* parity too long */
    uint8_t junk_opus[12] = {0x11, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff};
    assert_int_equal(wzp_media_rx_datagram(rx, shortdg, sizeof(shortdg), 0), WZP_ERR_MALFORMED);
    assert_int_equal(wzp_media_rx_datagram(rx, other, sizeof(other), 0), WZP_ERR_PROTOCOL);
    assert_int_equal(wzp_media_rx_datagram(rx, bad_red, sizeof(bad_red), 0), WZP_ERR_MALFORMED);
    assert_int_equal(wzp_media_rx_datagram(rx, bad_parity, sizeof(bad_parity), 0),
                     WZP_ERR_MALFORMED);
    assert_int_equal(wzp_media_rx_datagram(rx, junk_opus, sizeof(junk_opus), 0), 0);
    assert_int_equal(wzp_media_rx_next_deadline(rx), WZP_PLAYOUT_DEFAULT_DELAY);
    int16_t pcm[N];
    assert_int_equal(wzp_media_rx_pull(rx, 0, pcm), WZP_MEDIA_RX_SILENCE);
    assert_int_equal(wzp_media_rx_pull(rx, WZP_MS(60), pcm), WZP_MEDIA_RX_CONCEALED);
    assert_int_equal(wzp_media_rx_next_deadline(rx), WZP_MS(80));
    wzp_media_rx_stats st;
    wzp_media_rx_get_stats(rx, &st);
    assert_int_equal(st.datagrams, 5);
    assert_int_equal(st.malformed, 3);
    assert_int_equal(st.unsupported, 1);
    assert_int_equal(st.decode_errors, 1);
    assert_int_equal(st.first_decoded, WZP_TS_NEVER);
    wzp_media_rx_free(rx);
}

WZP_TEST_MAIN(NULL, NULL, test_clean_channel, test_lossy_reordering_channel,
              test_late_start_is_shed, test_late_first_packet_settles,
              test_redundancy_rebuilds_bursts, test_dtx_and_mute, test_vad_dtx_comfort_noise,
              test_tx_refused, test_rx_rejects_garbage)
