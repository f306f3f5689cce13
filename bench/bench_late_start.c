/*
 * How fast the whole receiver (media_session: playout buffer, decoder,
 * time-scaling) sheds the delay a late first packet leaves: speech (a WAV
 * file given, e.g. bench/media-quality.sh's espeak-ng sample, else the probe
 * signal) goes through the real sender and receiver on a virtual clock, 20 ms
 * one way plus 0-4 ms of jitter, the first packet held 100, 150 or 200 ms
 * (the ones after it queue behind it), pulls on a 20 ms grid. Per case: the
 * playout delay at the first sound and the target, and the time from the
 * first sound until the delay stays within 20 ms of the target (the issue's
 * figure: <= 3 s). Ends with
 *   late-start: settle_ms_100=.. settle_ms_150=.. settle_ms_200=.. settle_ms_max=..
 *   scripts/bench late-start [SPEECH.wav]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "media/audio_file.h"
#include "media/audio_format.h"
#include "media/media_session.h"
#include "media/tone.h"
#include "wire/media_frame.h"

#define N    WZP_AUDIO_FRAME_SAMPLES
#define TICK WZP_MS(20)

typedef struct arrival {
    wzp_ts at;
    int len;
    uint8_t b[WZP_MEDIA_MAX_FRAME];
} arrival;

static int by_time(const void *a, const void *b)
{
    const arrival *x = a, *y = b;
    return x->at < y->at ? -1 : x->at > y->at;
}

typedef struct outcome {
    double start_delay_ms, target_ms, settle_ms;
    unsigned long long faster, skipped, decoded, sent;
} outcome;

static int run(const int16_t *pcm, size_t frames, int held_ms, outcome *o)
{
    wzp_media_tx *tx = NULL;
    wzp_media_rx *rx = NULL;
    arrival *q = calloc(frames, sizeof(*q));
    size_t ticks = frames + 50;
    wzp_ts *delay = calloc(ticks, sizeof(*delay)), *target = calloc(ticks, sizeof(*target));
    /* The receiver as the client configures it (call/voicecall.c). */
    wzp_media_rx_config rc;
    wzp_media_rx_config_default(&rc);
    rc.playout.target_delay = WZP_MS(20);
    if (!q || !delay || !target || wzp_media_tx_new(&tx, NULL) < 0 ||
        wzp_media_rx_new(&rx, &rc) < 0) {
        free(q);
        free(delay);
        free(target);
        wzp_media_tx_free(tx);
        return 1;
    }
    uint32_t rng = 7;
    size_t n = 0;
    wzp_ts hold_until = WZP_MS(20 + held_ms);
    for (size_t k = 0; k < frames; k++) {
        int len = wzp_media_tx_frame(tx, pcm + k * N, q[n].b, sizeof(q[n].b));
        rng = rng * 1664525u + 1013904223u;
        if (len <= 0)
            continue;
        wzp_ts at = (wzp_ts)k * TICK + WZP_MS(20) + (rng >> 8) % WZP_MS(4);
        q[n].at = at < hold_until ? hold_until : at;
        q[n++].len = len;
    }
    qsort(q, n, sizeof(*q), by_time);
    size_t next = 0;
    long first = -1;
    int16_t out[N];
    for (size_t j = 0; j < ticks; j++) {
        wzp_ts now = WZP_MS(7) + j * TICK;
        while (next < n && q[next].at <= now) {
            wzp_media_rx_datagram(rx, q[next].b, (size_t)q[next].len, q[next].at);
            next++;
        }
        int kind = wzp_media_rx_pull(rx, now, out);
        wzp_media_rx_stats st;
        wzp_media_rx_get_stats(rx, &st);
        delay[j] = st.delay;
        target[j] = st.playout.target;
        if (first < 0 && kind != WZP_MEDIA_RX_SILENCE)
            first = (long)j;
    }
    long last_off = -1, end = (long)frames; /* the tail after the last frame is not speech */
    for (long j = first < 0 ? 0 : first; j < end; j++)
        if (delay[j] > target[j] + WZP_MS(20))
            last_off = j;
    wzp_media_rx_stats st;
    wzp_media_rx_get_stats(rx, &st);
    o->start_delay_ms = first >= 0 ? delay[first] / 1e6 : -1;
    o->target_ms = target[end - 1] / 1e6;
    o->settle_ms = first < 0 || last_off == end - 1 ? -1
                   : last_off < 0                   ? 0
                                                    : (last_off + 1 - first) * 20.0;
    o->faster = st.faster;
    o->skipped = st.quiet_skipped;
    o->decoded = st.decoded;
    wzp_media_tx_stats ts;
    wzp_media_tx_get_stats(tx, &ts);
    o->sent = ts.sent;
    free(q);
    free(delay);
    free(target);
    wzp_media_tx_free(tx);
    wzp_media_rx_free(rx);
    return 0;
}

int main(int argc, char **argv)
{
    int16_t *pcm = NULL;
    size_t samples = 0;
    const char *what = "probe signal, 10 s";
    if (argc > 1) {
        int rc = wzp_audio_read_s16(argv[1], &pcm, &samples);
        if (rc < 0) {
            fprintf(stderr, "late-start: cannot read %s: %s\n", argv[1], wzp_strerror(rc));
            return 1;
        }
        what = argv[1];
    } else {
        samples = 500 * N;
        pcm = malloc(samples * sizeof(*pcm));
        if (!pcm)
            return 1;
        wzp_probe_signal sig;
        wzp_probe_signal_init(&sig, 1, 0.5f);
        wzp_probe_signal_fill_s16(&sig, pcm, samples);
    }
    size_t frames = samples / N;
    if (frames < 200) {
        fprintf(stderr, "late-start: %s is shorter than 4 s\n", what);
        free(pcm);
        return 1;
    }
    printf("late-start: %s through media tx/rx on a virtual clock, 20 ms + 0-4 ms one way,\n"
           "  first packet held; settle = first sound until the delay stays within 20 ms of "
           "the target\n\n",
           what);
    printf("%8s %12s %10s %10s %8s %8s %11s\n", "held_ms", "start_delay", "target", "settle_ms",
           "faster", "skipped", "decoded");
    static const int held[] = {100, 150, 200};
    double worst = 0;
    char line[256] = "late-start:";
    for (size_t i = 0; i < sizeof(held) / sizeof(held[0]); i++) {
        outcome o;
        if (run(pcm, frames, held[i], &o)) {
            free(pcm);
            return 1;
        }
        char dec[48];
        snprintf(dec, sizeof(dec), "%llu/%llu", o.decoded, o.sent);
        printf("%8d %12.1f %10.1f %10.0f %8llu %8llu %11s\n", held[i], o.start_delay_ms,
               o.target_ms, o.settle_ms, o.faster, o.skipped, dec);
        if (o.settle_ms < 0 || o.settle_ms > worst)
            worst = o.settle_ms < 0 || worst < 0 ? -1 : o.settle_ms;
        size_t l = strlen(line);
        snprintf(line + l, sizeof(line) - l, " settle_ms_%d=%.0f", held[i], o.settle_ms);
    }
    printf("%s settle_ms_max=%.0f\n", line, worst);
    free(pcm);
    return 0;
}
