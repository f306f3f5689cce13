/*
 * Media layer costs: Opus encode/decode speed (times real time), NCC delay
 * search on 10 s of audio with a 2 s lag range (wzp demo's check), and
 * playout buffer insert+pull throughput. Prints figures; asserts nothing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "media/audio_format.h"
#include "media/compare.h"
#include "media/opus_codec.h"
#include "media/playout.h"
#include "media/tone.h"

#define N WZP_AUDIO_FRAME_SAMPLES

static double secs(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(void)
{
    const size_t frames = 500; /* 10 s */
    int16_t *pcm = malloc(frames * N * sizeof(*pcm));
    int16_t *out = malloc(frames * N * sizeof(*out));
    wzp_probe_signal sig;
    wzp_probe_signal_init(&sig, 1, 0.5f);
    wzp_probe_signal_fill_s16(&sig, pcm, frames * N);

    wzp_opus_enc *enc = NULL;
    wzp_opus_dec *dec = NULL;
    if (wzp_opus_enc_new(&enc, NULL) < 0 || wzp_opus_dec_new(&dec) < 0)
        return 1;
    uint8_t pkt[WZP_OPUS_MAX_PACKET];
    double enc_t = 0, dec_t = 0;
    for (size_t k = 0; k < frames; k++) {
        double a = secs();
        int n = wzp_opus_encode(enc, pcm + k * N, pkt, sizeof(pkt));
        double b = secs();
        wzp_opus_decode(dec, pkt, n > 0 ? (size_t)n : 0, out + k * N);
        enc_t += b - a;
        dec_t += secs() - b;
    }
    printf("opus encode: %.0fx real time (%.1f us/frame)\n", 10.0 / enc_t, enc_t / frames * 1e6);
    printf("opus decode: %.0fx real time (%.1f us/frame)\n", 10.0 / dec_t, dec_t / frames * 1e6);

    wzp_ncc_result r;
    double a = secs();
    wzp_ncc_search_s16(pcm, frames * N, out, frames * N, 0, 2 * WZP_AUDIO_RATE, 0, &r);
    double ncc_ms = (secs() - a) * 1e3;
    printf("ncc search 10 s, 0..2 s lags: %.1f ms (lag %ld, ncc %.3f)\n", ncc_ms, r.lag, r.ncc);

    wzp_playout *pb = NULL;
    if (wzp_playout_new(&pb, NULL) < 0)
        return 1;
    wzp_playout_frame f;
    const unsigned iters = 2000000;
    a = secs();
    for (unsigned k = 0; k < iters; k++) {
        wzp_ts now = (wzp_ts)k * WZP_MS(20);
        wzp_playout_insert(pb, (uint16_t)k, k * (uint32_t)N, 0, pkt, 80, now);
        wzp_playout_pull(pb, now, &f);
    }
    double dt = secs() - a;
    printf("playout insert+pull (80-byte frames): %.1f M/s (%.0f ns each)\n", iters / dt / 1e6,
           dt / iters * 1e9);
    printf("media: opus_enc_x_realtime=%.0f opus_dec_x_realtime=%.0f ncc_10s_ms=%.1f "
           "playout_ns=%.0f\n",
           10.0 / enc_t, 10.0 / dec_t, ncc_ms, dt / iters * 1e9);
    wzp_playout_free(pb);
    wzp_opus_enc_free(enc);
    wzp_opus_dec_free(dec);
    free(pcm);
    free(out);
    return 0;
}
