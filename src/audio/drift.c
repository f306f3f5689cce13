/* Clock drift compensation: FIFO + speexdsp resampler steered by a PI loop. */
#include "audio/drift.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <speex/speex_resampler.h>
#include <wzp/wzp.h>

#include "media/audio_format.h"

/*
 * Two speexdsp resamplers in cascade. speexdsp switches filters (length and
 * cutoff) when a ratio crosses 1:1, which clicks (measured: a second
 * difference 13 times the test tone's own); with a drift near zero the
 * ratio would cross 1 all the time. So `up` upsamples by a fixed
 * bias/RATIO_DEN (never changed), and `down` downsamples by
 * (bias + q)/RATIO_DEN, always above 1:1. A downsampler's filter length is
 * floor(L * ratio) rounded up to a multiple of 8 (L: the quality's base
 * length), so it stays put while L * ratio is within [L + 1, L + 9): bias
 * puts the middle of that window at 1:1 overall (L + 5; for quality 4,
 * L = 64, bias = 1.078, and the ratio may move by -5.8..+5.8 % before the
 * length changes; for quality 10 only by -1.5..+1.5 %). Its cutoff moves by a
 * few hundred ppm. The overall ratio is (bias + q)/bias: one step of q is
 * 23 ppm (quality 4). RATIO_DEN stays below 46341 so speexdsp's rescaling of
 * its phase on a ratio change (phase * new_den / old_den) fits 32 bits. The
 * cost is two filters instead of one: under 70 us per 10 ms pull at quality
 * 4, measured with the unit test's tone generation included (gcc -O2).
 */
#define RATIO_DEN   40000
#define MID_CAP     2048           /* samples between the two resamplers */
#define LEVEL_TAU   1.0            /* s, level smoothing */
#define LOOP_T      20.0           /* s, PI loop time constant (critically damped) */
#define KP          (2.0 / LOOP_T) /* 1/s: ratio offset per second of level error */
#define KI          (1.0 / (LOOP_T * LOOP_T))
#define KF          0.25  /* 1/s, catch-up gain: 2 % at 80 ms of error */
#define FAST_ENTER  0.040 /* s of level error */
#define FAST_LEAVE  0.010
#define MAX_CTL_GAP 1.0  /* s: a longer gap between pulls counts as this */
#define EST_TAU     60.0 /* s, drift estimate's averaging (a plain mean before that) */
/* After (re)starting playout or catching up the smoothed level still lags:
 * the estimate waits this long. */
#define EST_QUIET WZP_SEC(5)
/* After (re)starting, the level the FIFO really averages depends on the phase between pushes
 * and pulls (up to a push's worth either side of the target). Steering that offset away would
 * run the ratio at its bound for seconds (10 ms at 1000 ppm takes 10 s: audible as nothing,
 * but a needless stretch). So for SETTLE the ratio holds, the exact mean level is measured,
 * and the loop then holds that level (within SETPOINT_MIN..MAX of the target): it corrects
 * drift, not the start's phase. */
#define SETTLE       WZP_SEC(1)
#define SETPOINT_MIN 0.5
#define SETPOINT_MAX 1.5

struct wzp_drift {
    SpeexResamplerState *up, *down;
    int16_t mid[MID_CAP]; /* mid[0 .. mid_cnt): upsampled, not yet downsampled */
    size_t mid_cnt;
    int16_t *buf;
    size_t cap, rd, cnt;          /* samples buf[rd .. rd+cnt) */
    size_t target;                /* samples */
    size_t drop_above;            /* samples */
    double max_u, fast_u, hyst_u; /* ratio offsets (fractions) */
    double avg;                   /* smoothed level, samples */
    wzp_ts last_ev;               /* last push or pull, WZP_TS_NEVER before the first */
    wzp_ts last_ctl;              /* last controller step, WZP_TS_NEVER when restarting */
    double integ;                 /* the PI loop's integral (fraction) */
    double prev_avg;              /* avg at the last controller step */
    double est, est_t;            /* drift estimate (fraction), seconds averaged */
    double setpoint;              /* level the loop holds, samples (see SETTLE) */
    wzp_ts settle_until;          /* measuring the level after a start; WZP_TS_NEVER if not */
    double settle_sum, settle_t;  /* integral of the level (samples * s), seconds */
    wzp_ts quiet_until;           /* the estimate waits for the level to settle */
    double snap[2];               /* est 1-2 s ago and 0-1 s ago */
    wzp_ts snap_at;
    int bias;    /* see above */
    int applied; /* down's ratio: bias + applied : RATIO_DEN */
    bool buffering, fast;
    bool trim_on_start;
    wzp_drift_stats st;
};

/* speexdsp's base filter length per quality (its quality_map). */
static const int base_len[11] = {8, 16, 32, 48, 64, 80, 96, 128, 160, 192, 256};

void wzp_drift_config_default(wzp_drift_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
}

static double clampd(double v, double lim)
{
    return v > lim ? lim : v < -lim ? -lim : v;
}

static size_t ts_to_samples(wzp_ts t)
{
    return (size_t)(t * WZP_AUDIO_RATE / WZP_SEC(1));
}

int wzp_drift_new(wzp_drift **out, const wzp_drift_config *cfg)
{
    wzp_drift_config c;
    if (!out)
        return WZP_ERR_INVALID;
    if (cfg)
        c = *cfg;
    else
        wzp_drift_config_default(&c);
    if (!c.target)
        c.target = WZP_DRIFT_DEFAULT_TARGET;
    if (!c.max_excess)
        c.max_excess = WZP_DRIFT_DEFAULT_MAX_EXCESS;
    if (!c.max_ppm)
        c.max_ppm = WZP_DRIFT_DEFAULT_MAX_PPM;
    if (!c.fast_ppm)
        c.fast_ppm = WZP_DRIFT_DEFAULT_FAST_PPM;
    if (!c.hysteresis_ppm)
        c.hysteresis_ppm = WZP_DRIFT_DEFAULT_HYST_PPM;
    if (!c.quality)
        c.quality = WZP_DRIFT_DEFAULT_QUALITY;
    if (c.target > WZP_SEC(2) || c.max_excess < WZP_MS(WZP_AUDIO_FRAME_MS) ||
        c.max_excess > WZP_SEC(5) || c.fast_ppm > 100000 || c.max_ppm > c.fast_ppm ||
        c.quality < 1 || c.quality > 10)
        return WZP_ERR_INVALID;

    wzp_drift *d = calloc(1, sizeof(*d));
    if (!d)
        return WZP_ERR_NOMEM;
    d->target = ts_to_samples(c.target);
    d->drop_above = d->target + ts_to_samples(c.max_excess);
    d->trim_on_start = c.trim_on_start;
    d->cap = d->drop_above + WZP_DRIFT_MAX_PUSH;
    d->buf = malloc(d->cap * sizeof(*d->buf));
    int err = 0, err2 = 0;
    d->bias = RATIO_DEN + RATIO_DEN * 5 / base_len[c.quality];
    d->up = speex_resampler_init_frac(1, RATIO_DEN, (spx_uint32_t)d->bias, WZP_AUDIO_RATE,
                                      WZP_AUDIO_RATE, c.quality, &err);
    d->down = speex_resampler_init_frac(1, (spx_uint32_t)d->bias, RATIO_DEN, WZP_AUDIO_RATE,
                                        WZP_AUDIO_RATE, c.quality, &err2);
    if (!d->buf || !d->up || !d->down || err != RESAMPLER_ERR_SUCCESS ||
        err2 != RESAMPLER_ERR_SUCCESS) {
        int rc = d->buf ? WZP_ERR_AUDIO : WZP_ERR_NOMEM;
        wzp_drift_free(d);
        return rc;
    }
    speex_resampler_skip_zeros(d->up);
    speex_resampler_skip_zeros(d->down);
    d->max_u = c.max_ppm * 1e-6;
    d->fast_u = c.fast_ppm * 1e-6;
    d->hyst_u = c.hysteresis_ppm * 1e-6;
    d->last_ev = WZP_TS_NEVER;
    d->last_ctl = WZP_TS_NEVER;
    d->buffering = true;
    d->setpoint = (double)d->target;
    d->settle_until = WZP_TS_NEVER;
    *out = d;
    return 0;
}

void wzp_drift_free(wzp_drift *d)
{
    if (!d)
        return;
    if (d->up)
        speex_resampler_destroy(d->up);
    if (d->down)
        speex_resampler_destroy(d->down);
    free(d->buf);
    free(d);
}

/* Samples held: the FIFO and the few upsampled ones between the resamplers. */
static double held(const wzp_drift *d)
{
    return (double)d->cnt + (double)d->mid_cnt * RATIO_DEN / d->bias;
}

/* Time-weighted average: the FIFO held that much since the last event. */
static void level_update(wzp_drift *d, wzp_ts now)
{
    if (d->last_ev != WZP_TS_NEVER && now > d->last_ev) {
        double dt = (double)(now - d->last_ev) / 1e9;
        d->avg += (1.0 - exp(-dt / LEVEL_TAU)) * (held(d) - d->avg);
        if (d->settle_until != WZP_TS_NEVER && !d->buffering) {
            d->settle_sum += held(d) * dt;
            d->settle_t += dt;
        }
    }
    if (d->last_ev == WZP_TS_NEVER || now > d->last_ev)
        d->last_ev = now;
}

static void level_reset(wzp_drift *d)
{
    d->avg = held(d);
    d->prev_avg = d->avg;
}

int wzp_drift_push(wzp_drift *d, const int16_t *pcm, size_t n, wzp_ts now)
{
    if (!d || (!pcm && n) || n > WZP_DRIFT_MAX_PUSH)
        return WZP_ERR_INVALID;
    level_update(d, now);
    if (d->rd + d->cnt + n > d->cap) {
        memmove(d->buf, d->buf + d->rd, d->cnt * sizeof(*d->buf));
        d->rd = 0;
    }
    memcpy(d->buf + d->rd + d->cnt, pcm, n * sizeof(*pcm));
    d->cnt += n;
    d->st.pushed += n;
    /* Extreme excess: drop whole oldest frames (drop_above >= one frame). */
    bool dropped = false;
    while (d->cnt > d->drop_above) {
        size_t k = d->cnt < WZP_AUDIO_FRAME_SAMPLES ? d->cnt : WZP_AUDIO_FRAME_SAMPLES;
        d->rd += k;
        d->cnt -= k;
        d->st.dropped_frames++;
        dropped = true;
    }
    if (dropped)
        level_reset(d);
    return 0;
}

static void apply_ratio(wzp_drift *d, double u)
{
    int q = (int)lround(u * d->bias);
    if (q == d->applied || fabs((double)(q - d->applied) / d->bias) < d->hyst_u)
        return;
    if (speex_resampler_set_rate_frac(d->down, (spx_uint32_t)(d->bias + q), RATIO_DEN,
                                      WZP_AUDIO_RATE, WZP_AUDIO_RATE) == RESAMPLER_ERR_SUCCESS) {
        d->applied = q;
        d->st.ratio_changes++;
    }
}

static void control(wzp_drift *d, wzp_ts now)
{
    double dt = 0;
    if (d->last_ctl != WZP_TS_NEVER && now > d->last_ctl)
        dt = fmin((double)(now - d->last_ctl) / 1e9, MAX_CTL_GAP);
    if (d->last_ctl == WZP_TS_NEVER || now > d->last_ctl)
        d->last_ctl = now;

    if (d->settle_until != WZP_TS_NEVER) {
        if (now < d->settle_until) {
            apply_ratio(d, d->integ);
            d->prev_avg = d->avg;
            return;
        }
        double mean = d->settle_t > 0 ? d->settle_sum / d->settle_t : (double)d->target;
        d->setpoint =
            fmin(fmax(mean, SETPOINT_MIN * (double)d->target), SETPOINT_MAX * (double)d->target);
        d->avg = d->prev_avg = mean;
        d->settle_until = WZP_TS_NEVER;
    }
    double e = (d->avg - d->setpoint) / WZP_AUDIO_RATE; /* s */
    if (d->fast != (d->fast ? fabs(e) >= FAST_LEAVE : fabs(e) > FAST_ENTER)) {
        d->fast = !d->fast;
        d->quiet_until = now + EST_QUIET;
    }

    double u;
    if (d->fast) {
        /* Catch up; the drift estimate stays as it was. */
        u = clampd(d->integ + KF * e, d->fast_u);
    } else {
        d->integ = clampd(d->integ + KI * e * dt, d->max_u);
        u = clampd(d->integ + KP * e, d->max_u);
    }
    apply_ratio(d, u);

    /* Drift estimate by conservation: input consumed per output sample
     * (the applied ratio) plus the level's own trend, averaged. The
     * integral would do too, but the ratio's hysteresis makes it wander. */
    if (!d->fast && now >= d->quiet_until && dt > 0) {
        double rate = (double)d->applied / d->bias + (d->avg - d->prev_avg) / (dt * WZP_AUDIO_RATE);
        d->est_t += dt;
        double tau = d->est_t < EST_TAU ? d->est_t : EST_TAU;
        d->est += (dt / tau) * (rate - d->est);
    }
    if (now - d->snap_at >= WZP_SEC(1)) {
        d->snap[0] = d->snap[1];
        d->snap[1] = d->est;
        d->snap_at = now;
    }
    d->prev_avg = d->avg;
}

size_t wzp_drift_pull(wzp_drift *d, int16_t *out, size_t n, wzp_ts now)
{
    if (!d || !out || !n)
        return 0;
    level_update(d, now);
    d->st.pulled += n;
    if (d->buffering) {
        if (d->cnt < d->target) {
            memset(out, 0, n * sizeof(*out));
            d->last_ctl = WZP_TS_NEVER;
            return 0;
        }
        while (d->trim_on_start && d->cnt >= d->target + WZP_AUDIO_FRAME_SAMPLES) {
            d->rd += WZP_AUDIO_FRAME_SAMPLES;
            d->cnt -= WZP_AUDIO_FRAME_SAMPLES;
            d->st.dropped_frames++;
        }
        d->buffering = false;
        d->fast = false;
        d->quiet_until = now + EST_QUIET;
        d->settle_until = now + SETTLE;
        d->settle_sum = d->settle_t = 0;
        level_reset(d);
    }
    control(d, now);

    size_t got = 0;
    for (;;) {
        spx_uint32_t in2 = (spx_uint32_t)d->mid_cnt, out2 = (spx_uint32_t)(n - got);
        speex_resampler_process_int(d->down, 0, d->mid, &in2, out + got, &out2);
        memmove(d->mid, d->mid + in2, (d->mid_cnt - in2) * sizeof(*d->mid));
        d->mid_cnt -= in2;
        got += out2;
        if (got == n)
            break;
        /* Upsample about what the rest needs, so little waits in mid. */
        size_t want = (size_t)((double)(n - got) * d->bias / RATIO_DEN * 1.03) + 16;
        if (want > MID_CAP - d->mid_cnt)
            want = MID_CAP - d->mid_cnt;
        spx_uint32_t in1 = (spx_uint32_t)d->cnt, out1 = (spx_uint32_t)want;
        speex_resampler_process_int(d->up, 0, d->buf + d->rd, &in1, d->mid + d->mid_cnt, &out1);
        d->rd += in1;
        d->cnt -= in1;
        d->mid_cnt += out1;
        if (!in1 && !out1 && !in2 && !out2)
            break;
    }
    if (d->cnt == 0)
        d->rd = 0;
    if (got < n) {
        memset(out + got, 0, (n - got) * sizeof(*out));
        d->st.underruns++;
        d->buffering = true;
        /* The level fell for a while before running dry: not drift. */
        d->est = d->snap[0];
        d->last_ctl = WZP_TS_NEVER;
    }
    return got;
}

void wzp_drift_flush(wzp_drift *d)
{
    d->rd = d->cnt = d->mid_cnt = 0;
    speex_resampler_reset_mem(d->up);
    speex_resampler_reset_mem(d->down);
    speex_resampler_skip_zeros(d->up);
    speex_resampler_skip_zeros(d->down);
    d->buffering = true;
    d->fast = false;
    d->last_ctl = WZP_TS_NEVER;
    level_reset(d);
}

void wzp_drift_get_stats(const wzp_drift *d, wzp_drift_stats *out)
{
    *out = d->st;
    out->ratio_ppm = d->applied * 1e6 / d->bias;
    out->setpoint = (wzp_ts)(d->setpoint * 1e9 / WZP_AUDIO_RATE);
    out->drift_ppm = d->est * 1e6;
    out->level = (wzp_ts)(d->avg > 0 ? d->avg * 1e9 / WZP_AUDIO_RATE : 0);
    out->fifo = (unsigned)d->cnt;
    out->buffering = d->buffering;
    out->fast = d->fast;
}
