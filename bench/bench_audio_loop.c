/*
 * Real delay from a sink to a capture source, in one process, through the
 * project's PulseAudio backend:
 *   bench_audio_loop --play SINK --record SOURCE [--seconds N] [--signal FILE]
 * A playback stream on SINK plays a known signal (FILE, or by default a train
 * of distinct speech-like bursts from tests/support/synth) while a capture
 * stream on SOURCE records. Both sides are timestamped with CLOCK_MONOTONIC
 * plus the backend's delay(), so each played sample i has a play time and
 * each recorded sample j a capture time. The signal is cut into bursts /
 * utterances (energy gaps); each is found in the recording by NCC (+-2 s
 * around where zero delay would put it) and its delay is
 *   capture_time(lag) - play_time(burst start).
 * SINK -> SINK.monitor measures the method's own floor; any other pair (e.g.
 * a call's microphone sink -> the far speaker's monitor) the path between.
 *
 * Needs a running sound server (the PULSE_SERVER / XDG_RUNTIME_DIR of the
 * caller; bench/audio.sh starts a private one): exits 77 without one. Prints
 * one row per burst, then
 *   audio-loop: delay_ms=MEDIAN min_ms=MIN max_ms=MAX bursts=MATCHED/ALL ncc=MEDIAN
 */
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/backend.h"
#include "media/audio_file.h"
#include "media/compare.h"
#include "net/clock.h"
#include "support/synth.h"
#include "wzp/wzp.h"

#define FS         48000
#define BLOCK      480 /* 10 ms per read / write */
#define LEAD_S     0.5 /* silence before the signal: the streams settle */
#define TAIL_S     2.5 /* recording goes on this long after the last sample is written */
#define MAX_LAG_S  2.0
#define MIN_NCC    0.5 /* a burst matching worse than this is not counted */
#define BURST_S    0.4 /* default signal: a burst of syllables every second */
#define LOCAL_S    0.5 /* offsets are the median of the blocks this close to a burst */
#define WIN_BLOCKS 50  /* 500 ms: the longest window searched for at once */

/* One read or write: the stream position after it and what the clock and delay() said. */
typedef struct stamp {
    size_t end;    /* samples written / read so far */
    double offset; /* play (capture) time of sample 0 extrapolated from this block, s */
} stamp;

typedef struct side {
    const wzp_audio_backend *be;
    wzp_audio_stream *st;
    int16_t *pcm;
    size_t n; /* samples to play / room to record */
    stamp *stamps;
    size_t nstamps;
    int err;
} side;

static double now_s(void)
{
    return (double)wzp_now() / 1e9;
}

/* delay() answers for the moment it is called: stamp it with the middle of the call. */
static double delay_at(side *s, double *t)
{
    double t0 = now_s();
    unsigned d = s->be->delay(s->st);
    *t = (t0 + now_s()) / 2;
    return (double)d / FS;
}

/* Capture: the next sample to read (index end) was captured delay() ago. */
static void *capture_main(void *arg)
{
    side *s = arg;
    int timeouts = 0;
    while (s->nstamps * BLOCK + BLOCK <= s->n) {
        int rc = s->be->read(s->st, s->pcm + s->nstamps * BLOCK, BLOCK);
        if (rc == WZP_ERR_TIMEOUT && ++timeouts < 6)
            continue; /* a fresh null sink may stall once (see tests/support/pulse_server.h) */
        if (rc < 0) {
            s->err = rc;
            break;
        }
        double t, d = delay_at(s, &t);
        size_t end = (s->nstamps + 1) * BLOCK;
        s->stamps[s->nstamps++] = (stamp){end, t - d - (double)end / FS};
    }
    return NULL;
}

/* Playback: the next sample to write (index end) plays delay() from now. */
static int play_all(side *s)
{
    for (size_t at = 0; at + BLOCK <= s->n; at += BLOCK) {
        int rc = s->be->write(s->st, s->pcm + at, BLOCK);
        if (rc < 0)
            return rc;
        double t, d = delay_at(s, &t);
        size_t end = at + BLOCK;
        s->stamps[s->nstamps++] = (stamp){end, t + d - (double)end / FS};
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median of v[0..n) (sorts v); 0 if empty. */
static double median(double *v, size_t n)
{
    if (!n)
        return 0;
    qsort(v, n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Median offset of the blocks whose end lies within LOCAL_S of sample i: a glitch (an
   underrun, a late wakeup) elsewhere in the run does not move this burst's figure. */
static double local_offset(const side *s, size_t i, double *tmp)
{
    size_t k = 0;
    for (size_t b = 0; b < s->nstamps; b++) {
        double dt = ((double)s->stamps[b].end - (double)i) / FS;
        if (dt > -LOCAL_S && dt < LOCAL_S)
            tmp[k++] = s->stamps[b].offset;
    }
    return k ? median(tmp, k) : 0;
}

typedef struct seg {
    size_t start, len;
} seg;

/* Bursts / utterances: runs of 10 ms blocks above -30 dB re the loudest block, gaps under
   150 ms bridged, runs under 100 ms dropped; long runs cut in windows. */
static size_t segment(const int16_t *x, size_t n, seg *out, size_t cap)
{
    size_t nb = n / BLOCK, k = 0;
    double *e = malloc((nb ? nb : 1) * sizeof(*e)), peak = 0;
    if (!e)
        return 0;
    for (size_t b = 0; b < nb; b++) {
        double acc = 0;
        for (size_t i = 0; i < BLOCK; i++)
            acc += (double)x[b * BLOCK + i] * x[b * BLOCK + i];
        e[b] = acc / BLOCK;
        if (e[b] > peak)
            peak = e[b];
    }
    size_t b = 0;
    while (b < nb && k < cap) {
        if (e[b] <= peak * 1e-3) {
            b++;
            continue;
        }
        size_t s = b, last = b, quiet = 0;
        for (; b < nb && quiet < 15; b++) {
            quiet = e[b] > peak * 1e-3 ? 0 : quiet + 1;
            if (!quiet)
                last = b;
        }
        /* Long utterances in windows of <= WIN_BLOCKS: on a call the delay moves (drift
           control), and a window that spans a move matches neither delay well. */
        size_t len = last + 1 - s;
        while (len >= 10 && k < cap) {
            size_t w = len < WIN_BLOCKS ? len : WIN_BLOCKS;
            w = len - w < 10 ? len : w; /* no sliver left over */
            out[k++] = (seg){s * BLOCK, w * BLOCK};
            s += w;
            len -= w;
        }
    }
    free(e);
    return k;
}

/* The default signal: one burst of syllables (a distinct seed each, so no two correlate) every
   second; sharp NCC peaks, and it passes a voice codec and noise suppressor like speech. */
static int16_t *make_bursts(size_t n)
{
    int16_t *x = calloc(n, sizeof(*x));
    float *b = malloc((size_t)(BURST_S * FS) * sizeof(*b));
    if (!x || !b) {
        free(x);
        free(b);
        return NULL;
    }
    for (size_t at = 0, k = 0; at + (size_t)(BURST_S * FS) <= n; at += FS, k++) {
        wzp_synth_syllables(b, (size_t)(BURST_S * FS), (uint32_t)(101 + k), 9000);
        for (size_t i = 0; i < (size_t)(BURST_S * FS); i++)
            x[at + i] = wzp_synth_s16(b[i]);
    }
    free(b);
    return x;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_audio_loop --play SINK --record SOURCE [--seconds N] "
                    "[--signal speech.wav]\n"
                    "needs a PulseAudio server (bench/audio.sh starts one)\n");
}

static int open_side(side *s, wzp_audio_dir dir, const char *dev, unsigned latency_ms)
{
    wzp_audio_stream_config cfg = {.dir = dir,
                                   .device = dev,
                                   .period_samples = BLOCK,
                                   .latency_ms = latency_ms,
                                   .app_name = "bench_audio_loop"};
    s->be = &wzp_audio_backend_pulse;
    s->stamps = calloc(s->n / BLOCK + 1, sizeof(*s->stamps));
    if (!s->pcm || !s->stamps)
        return WZP_ERR_NOMEM;
    int rc = s->be->open(&s->st, &cfg);
    if (rc < 0)
        fprintf(stderr, "bench_audio_loop: cannot open %s: %s\n", dev, wzp_strerror(rc));
    return rc;
}

/* Finds each burst of play in rec and prints its delay; returns how many matched (their delays
   in ms and NCCs in delays[] / nccs[]). */
static size_t measure(const side *play, const side *rec, size_t lead, const seg *segs, size_t nsegs,
                      double *delays, double *nccs)
{
    double *tmp = malloc((play->nstamps + rec->nstamps + 1) * sizeof(*tmp));
    size_t nrec = rec->nstamps * BLOCK, ok = 0;
    if (!tmp)
        return 0;
    printf("%5s %8s %7s %9s %6s %9s\n", "burst", "start s", "len ms", "lag s", "ncc", "delay ms");
    for (size_t k = 0; k < nsegs; k++) {
        size_t s0 = lead + segs[k].start;
        double p = local_offset(play, s0, tmp) + (double)s0 / FS; /* burst start plays */
        /* where the burst would be recorded with zero delay, +-MAX_LAG_S */
        double j = (p - rec->stamps[0].offset) * FS;
        double c0 = local_offset(rec, j > 0 ? (size_t)j : 0, tmp);
        long zero = (long)((p - c0) * FS);
        long lo = zero - (long)(MAX_LAG_S * FS), hi = zero + (long)(MAX_LAG_S * FS);
        if (lo < 0)
            lo = 0;
        if (hi > (long)nrec - (long)segs[k].len)
            hi = (long)nrec - (long)segs[k].len;
        wzp_ncc_result r = {0, 0};
        int rc = hi < lo ? WZP_ERR_INVALID
                         : wzp_ncc_search_s16(play->pcm + s0, segs[k].len, rec->pcm + lo,
                                              (size_t)(hi - lo) + segs[k].len, 0, hi - lo,
                                              segs[k].len, &r);
        if (rc < 0) {
            printf("%5zu %8.2f %7zu %9s %6s %9s\n", k, (double)segs[k].start / FS,
                   segs[k].len * 1000 / FS, "-", "-", "not found");
            continue;
        }
        long lag = lo + r.lag;
        double c = local_offset(rec, (size_t)lag, tmp) + (double)lag / FS; /* it was captured */
        double d = (c - p) * 1000;
        printf("%5zu %8.2f %7zu %9.3f %6.3f %9.1f%s\n", k, (double)segs[k].start / FS,
               segs[k].len * 1000 / FS, (double)lag / FS, r.ncc, d,
               r.ncc < MIN_NCC ? "  (poor match, not counted)" : "");
        if (r.ncc >= MIN_NCC) {
            delays[ok] = d;
            nccs[ok++] = r.ncc;
        }
    }
    free(tmp);
    return ok;
}

int main(int argc, char **argv)
{
    const char *sink = NULL, *source = NULL, *signal = NULL;
    double seconds = 0;
    static const struct option opts[] = {{"play", required_argument, NULL, 'p'},
                                         {"record", required_argument, NULL, 'r'},
                                         {"seconds", required_argument, NULL, 's'},
                                         {"signal", required_argument, NULL, 'f'},
                                         {NULL, 0, NULL, 0}};
    for (int c; (c = getopt_long(argc, argv, "", opts, NULL)) != -1;) {
        switch (c) {
        case 'p':
            sink = optarg;
            break;
        case 'r':
            source = optarg;
            break;
        case 's':
            seconds = atof(optarg);
            break;
        case 'f':
            signal = optarg;
            break;
        default:
            usage();
            return 2;
        }
    }
    if (!sink || !source || seconds < 0 || seconds > 600) {
        usage();
        return 2;
    }
    if (!wzp_audio_backend_pulse.available()) {
        fprintf(stderr, "bench_audio_loop: no PulseAudio server answers; run it through "
                        "`scripts/bench audio`, which starts one\n");
        return 77;
    }

    /* The signal: the file (cut to --seconds if given) or the burst train (--seconds long,
       default 8). Played between LEAD_S and TAIL_S of silence. */
    int16_t *sig = NULL;
    size_t nsig = 0;
    if (signal) {
        int rc = wzp_audio_read_s16(signal, &sig, &nsig);
        if (rc < 0) {
            fprintf(stderr, "bench_audio_loop: %s: %s\n", signal, wzp_strerror(rc));
            return 1;
        }
        if (seconds > 0 && nsig > (size_t)(seconds * FS))
            nsig = (size_t)(seconds * FS);
    } else {
        nsig = (size_t)((seconds > 0 ? seconds : 8) * FS);
        sig = make_bursts(nsig);
    }
    size_t lead = (size_t)(LEAD_S * FS);
    side play = {.n = (lead + nsig + (size_t)(TAIL_S * FS)) / BLOCK * BLOCK};
    side rec = {.n = play.n + FS}; /* room for the streams' start-up */
    play.pcm = calloc(play.n, sizeof(int16_t));
    rec.pcm = calloc(rec.n, sizeof(int16_t));
    seg segs[256];
    size_t nsegs = sig ? segment(sig, nsig, segs, 256) : 0;
    if (play.pcm && sig)
        memcpy(play.pcm + lead, sig, nsig * sizeof(int16_t));
    free(sig);
    if (nsegs == 0) {
        fprintf(stderr, "bench_audio_loop: no signal to play (%s)\n", signal ? signal : "bursts");
        return 1;
    }

    /* Record first, so the recording covers the whole playback. Capture asks for 10 ms, one
       read's worth, so delay() is not off by a fragment held half-read. */
    int rc = open_side(&rec, WZP_AUDIO_CAPTURE, source, 10);
    if (rc == 0)
        rc = open_side(&play, WZP_AUDIO_PLAYBACK, sink, 20);
    pthread_t th;
    if (rc == 0 && pthread_create(&th, NULL, capture_main, &rec) != 0)
        rc = WZP_ERR_NOMEM;
    if (rc == 0) {
        rc = play_all(&play);
        pthread_join(th, NULL);
        if (rc == 0 && rec.err < 0)
            rc = rec.err;
        if (rc < 0)
            fprintf(stderr, "bench_audio_loop: %s: %s\n", rec.err < 0 ? source : sink,
                    wzp_strerror(rc));
    }
    if (play.st)
        play.be->close(play.st);
    if (rec.st)
        rec.be->close(rec.st);

    size_t ok = 0;
    double delays[256], nccs[256];
    if (rc == 0 && rec.nstamps && play.nstamps) {
        printf("%s -> %s: %zu bursts, playback 20 ms / capture 10 ms buffers\n", sink, source,
               nsegs);
        ok = measure(&play, &rec, lead, segs, nsegs, delays, nccs);
    }
    if (ok) {
        double med = median(delays, ok); /* sorts: [0] and [ok-1] are min and max */
        printf("audio-loop: delay_ms=%.1f min_ms=%.1f max_ms=%.1f bursts=%zu/%zu ncc=%.3f\n", med,
               delays[0], delays[ok - 1], ok, nsegs, median(nccs, ok));
    } else if (rc == 0) {
        fprintf(stderr, "bench_audio_loop: no burst found in the recording of %s\n", source);
    }
    free(play.pcm);
    free(rec.pcm);
    free(play.stamps);
    free(rec.stamps);
    return ok ? 0 : 1;
}
