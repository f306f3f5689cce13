/* Opus wrapper: a signal survives encode/decode (after the codec delay);
 * concealment and in-band FEC fill a missing frame. */
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

#include <wzp/wzp.h>

#include "media/compare.h"
#include "media/opus_codec.h"
#include "media/tone.h"

#define N      WZP_AUDIO_FRAME_SAMPLES
#define FRAMES 100 /* 2 s */

typedef struct run {
    int16_t in[FRAMES * N];
    int16_t out[FRAMES * N];
    uint8_t pkt[FRAMES][WZP_OPUS_MAX_PACKET];
    int len[FRAMES];
    int lookahead;
} run;

static run *encode_probe(const wzp_opus_enc_config *cfg)
{
    run *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    wzp_probe_signal sig;
    wzp_probe_signal_init(&sig, 42, 0.5f);
    wzp_probe_signal_fill_s16(&sig, r->in, FRAMES * N);
    wzp_opus_enc *enc = NULL;
    assert_int_equal(wzp_opus_enc_new(&enc, cfg), 0);
    assert_non_null(enc);
    r->lookahead = wzp_opus_enc_lookahead(enc);
    assert_true(r->lookahead > 0 && r->lookahead < N);
    for (int k = 0; k < FRAMES; k++) {
        r->len[k] = wzp_opus_encode(enc, r->in + k * N, r->pkt[k], WZP_OPUS_MAX_PACKET);
        assert_true(r->len[k] > 2);
    }
    wzp_opus_enc_free(enc);
    return r;
}

/* NCC of one decoded frame against the input it should reproduce; the
 * codec's effective delay is within a few samples of its look-ahead. */
static double frame_ncc(const run *r, int k)
{
    float a[N], b[N];
    double best = -1;
    for (int d = r->lookahead - 8; d <= r->lookahead + 8; d++) {
        for (int i = 0; i < N; i++) {
            int src = k * N + i - d;
            a[i] = src >= 0 ? r->in[src] : 0;
            b[i] = r->out[k * N + i];
        }
        double v = wzp_ncc_at(a, N, b, N, 0);
        if (v > best)
            best = v;
    }
    return best;
}

static void test_roundtrip_delay(void **state)
{
    (void)state;
    wzp_opus_enc_config cfg;
    wzp_opus_enc_config_default(&cfg);
    assert_int_equal(cfg.bitrate, WZP_OPUS_DEFAULT_BITRATE);
    run *r = encode_probe(&cfg);
    wzp_opus_dec *dec = NULL;
    assert_int_equal(wzp_opus_dec_new(&dec), 0);
    size_t bytes = 0;
    for (int k = 0; k < FRAMES; k++) {
        assert_int_equal(wzp_opus_decode(dec, r->pkt[k], (size_t)r->len[k], r->out + k * N), N);
        bytes += (size_t)r->len[k];
    }
    /* Bitrate is roughly what was asked (VBR: within a factor of 1.5). */
    double kbps = bytes * 8.0 / (FRAMES * 0.02) / 1000;
    assert_true(kbps > 28 / 1.5 && kbps < 28 * 1.5);

    wzp_ncc_result res;
    assert_int_equal(wzp_ncc_search_s16(r->in, FRAMES * N, r->out, FRAMES * N, 0, 2000, 0, &res),
                     0);
    printf("# opus: %.1f kbit/s, lookahead %d, best lag %ld, ncc %.3f\n", kbps, r->lookahead,
           res.lag, res.ncc);
    assert_true(labs(res.lag - r->lookahead) <= 8);
    assert_true(res.ncc > 0.9);
    wzp_opus_dec_free(dec);
    free(r);
}

static void test_plc_and_fec(void **state)
{
    (void)state;
    wzp_opus_enc_config cfg;
    wzp_opus_enc_config_default(&cfg);
    cfg.expected_loss_pct = 20;
    run *r = encode_probe(&cfg);
    /* After the first frames, the encoder adds LBRR to (almost) every packet. */
    int with_fec = 0;
    for (int k = 10; k < FRAMES; k++)
        with_fec += wzp_opus_packet_has_fec(r->pkt[k], (size_t)r->len[k]);
    assert_true(with_fec > (FRAMES - 10) * 8 / 10);

    /* Frame 50 lost: once concealed, once rebuilt from frame 51's FEC. */
    const int lost = 50;
    double ncc_plc = 0, ncc_fec = 0;
    for (int mode = 0; mode < 2; mode++) {
        wzp_opus_dec *dec = NULL;
        assert_int_equal(wzp_opus_dec_new(&dec), 0);
        for (int k = 0; k < FRAMES; k++) {
            int16_t *o = r->out + k * N;
            if (k != lost) {
                assert_int_equal(wzp_opus_decode(dec, r->pkt[k], (size_t)r->len[k], o), N);
            } else if (mode == 0) {
                assert_int_equal(wzp_opus_decode_plc(dec, o), N);
            } else {
                assert_true(wzp_opus_packet_has_fec(r->pkt[k + 1], (size_t)r->len[k + 1]));
                assert_int_equal(wzp_opus_decode_fec(dec, r->pkt[k + 1], (size_t)r->len[k + 1], o),
                                 N);
            }
        }
        double v = frame_ncc(r, lost);
        if (mode == 0)
            ncc_plc = v;
        else
            ncc_fec = v;
        /* The decoder recovers: frames after the loss are clean again. */
        printf("# mode %d: ncc frame +1 %.3f, +3 %.3f\n", mode, frame_ncc(r, lost + 1),
               frame_ncc(r, lost + 3));
        assert_true(frame_ncc(r, lost + 3) > 0.9);
        wzp_opus_dec_free(dec);
    }
    printf("# lost frame ncc: plc %.3f, fec %.3f\n", ncc_plc, ncc_fec);
    assert_true(ncc_fec > 0.85);
    assert_true(ncc_fec > ncc_plc);
    free(r);
}

static void test_corrupt_and_args(void **state)
{
    (void)state;
    wzp_opus_dec *dec = NULL;
    assert_int_equal(wzp_opus_dec_new(&dec), 0);
    int16_t pcm[N];
    /* A packet claiming 60 ms (code 3, 3 frames of 20 ms) is not one frame:
     * concealed, reported, and still a full frame of output. */
    const uint8_t pkt60[] = {0x0b, 0x03, 0x00, 0x00, 0x00};
    memset(pcm, 0x55, sizeof(pcm));
    assert_int_equal(wzp_opus_decode(dec, pkt60, sizeof(pkt60), pcm), WZP_ERR_AUDIO);
    for (int i = 0; i < N; i++)
        assert_int_equal(pcm[i], 0); /* nothing decoded yet: concealment is silence */
    const uint8_t junk[] = {0xff, 0xff, 0xff};
    assert_int_equal(wzp_opus_decode(dec, junk, sizeof(junk), pcm), WZP_ERR_AUDIO);
    assert_int_equal(wzp_opus_decode(dec, NULL, 0, pcm), N); /* empty = PLC */
    assert_false(wzp_opus_packet_has_fec(junk, sizeof(junk)));
    assert_false(wzp_opus_packet_has_fec(NULL, 0));
    wzp_opus_dec_free(dec);

    wzp_opus_enc_config cfg;
    wzp_opus_enc_config_default(&cfg);
    cfg.bitrate = 1000;
    wzp_opus_enc *enc = NULL;
    assert_int_equal(wzp_opus_enc_new(&enc, &cfg), WZP_ERR_INVALID);
    assert_null(enc);
    wzp_opus_enc_config_default(&cfg);
    cfg.complexity = 11;
    assert_int_equal(wzp_opus_enc_new(&enc, &cfg), WZP_ERR_INVALID);
    assert_null(enc);
    assert_int_equal(wzp_opus_enc_new(&enc, NULL), 0);
    assert_non_null(enc);
    assert_int_equal(wzp_opus_enc_set_bitrate(enc, 16000), 0);
    assert_int_equal(wzp_opus_enc_set_bitrate(enc, 5), WZP_ERR_INVALID);
    assert_int_equal(wzp_opus_enc_set_expected_loss(enc, 101), WZP_ERR_INVALID);
    uint8_t out[WZP_OPUS_MAX_PACKET];
    memset(pcm, 0, sizeof(pcm));
    assert_int_equal(wzp_opus_encode(enc, pcm, out, 0), WZP_ERR_INVALID);
    assert_true(wzp_opus_encode(enc, pcm, out, sizeof(out)) > 0);
    wzp_opus_enc_free(enc);
}

static void test_dtx(void **state)
{
    (void)state;
    wzp_opus_enc_config cfg;
    wzp_opus_enc_config_default(&cfg);
    cfg.dtx = true;
    wzp_opus_enc *enc = NULL;
    assert_int_equal(wzp_opus_enc_new(&enc, &cfg), 0);
    int16_t pcm[N];
    memset(pcm, 0, sizeof(pcm));
    uint8_t out[WZP_OPUS_MAX_PACKET];
    int dtx = 0;
    for (int k = 0; k < 50; k++) {
        int n = wzp_opus_encode(enc, pcm, out, sizeof(out));
        assert_true(n > 0);
        dtx += wzp_opus_packet_is_dtx((size_t)n);
    }
    /* One second of digital silence: most frames need not be sent. */
    assert_true(dtx > 30);
    wzp_opus_enc_free(enc);
}

WZP_TEST_MAIN(NULL, NULL, test_roundtrip_delay, test_plc_and_fec, test_corrupt_and_args, test_dtx)
