#include "media/adapt.h"

#include <math.h>
#include <string.h>

/* Thresholds (loss fraction) to enter each level, and its settings. */
static const double up_at[WZP_ADAPT_LEVELS] = {0, 0.02, 0.04, 0.10, 0.15};
static const wzp_adapt_settings level_set[WZP_ADAPT_LEVELS] = {
    {32000, 10, 0, 1, 0}, {32000, 15, 0, 1, 0}, {24000, 20, 1, 1, 0},
    {24000, 30, 1, 1, 0}, {20000, 40, 2, 1, 0},
};
/* Primary bitrate by number of copies: the total stays <= 64 kbit/s. */
static const int red_bitrate[WZP_MEDIA_RED_MAX + 1] = {32000, 24000, 20000, 16000};
#define DOWN_FRACTION 0.6
#define DOWN_DWELL    WZP_SEC(1)
#define BURSTY_RUN    1.5   /* mean run: one copy more */
#define LONG_RUN      2.5   /* mean run: as many copies as there are */
#define SE_FACTOR     0.5   /* standard errors taken off the window's loss going up */
#define RESIDUAL      0.005 /* unrepaired share that asks for copies */
#define MIN_SLOTS     5     /* reports over fewer speech slots say nothing */

static wzp_adapt_settings settings_of(int level, int burst_class, bool parity)
{
    wzp_adapt_settings s = level_set[level];
    if (level >= 1 && burst_class) {
        unsigned r = burst_class > 1 ? WZP_MEDIA_RED_MAX : s.redundancy + 1;
        if (r > s.redundancy)
            s.redundancy = r > WZP_MEDIA_RED_MAX ? WZP_MEDIA_RED_MAX : r;
        /* Long bursts: copies 2, 4 and 6 back. With the next packet's FEC
         * that rebuilds bursts of up to 6 frames (3 with copies 1-3 back) for
         * the same bytes, at 60 ms more playout wait. */
        if (burst_class > 1)
            s.spacing = WZP_MEDIA_RED_REACH / WZP_MEDIA_RED_MAX;
    }
    if (parity && s.redundancy) {
        s.parity = s.redundancy + 1 > WZP_MEDIA_PARITY_MAX_SPAN ? WZP_MEDIA_PARITY_MAX_SPAN
                                                                : s.redundancy + 1;
        s.redundancy = 0;
        s.spacing = 1;
        if (s.bitrate > red_bitrate[1])
            s.bitrate = red_bitrate[1];
    }
    if (s.redundancy && s.bitrate > red_bitrate[s.redundancy])
        s.bitrate = red_bitrate[s.redundancy];
    return s;
}

void wzp_adapt_init(wzp_adapt *a, bool enabled, wzp_ts now)
{
    memset(a, 0, sizeof(*a));
    a->enabled = enabled;
    a->changed_at = now;
    a->calm_since = WZP_TS_NEVER;
    a->cur = settings_of(0, 0, false);
}

void wzp_adapt_set_parity(wzp_adapt *a, bool on)
{
    a->parity_mode = on;
}

wzp_adapt_settings wzp_adapt_get(const wzp_adapt *a)
{
    return a->cur;
}

static int level_for(double loss)
{
    int l = 0;
    while (l + 1 < WZP_ADAPT_LEVELS && loss >= up_at[l + 1])
        l++;
    return l;
}

bool wzp_adapt_on_report(wzp_adapt *a, const wzp_call_report *r, wzp_ts now)
{
    if (!a->enabled || !r || r->slots < MIN_SLOTS)
        return false;
    a->win[a->head].slots = r->slots;
    a->win[a->head].missing = r->missing;
    a->win[a->head].runs = r->runs;
    a->win[a->head].unrepaired = r->unrepaired;
    a->head = (a->head + 1) % WZP_ADAPT_WINDOW;
    if (a->n < WZP_ADAPT_WINDOW)
        a->n++;
    uint64_t slots = 0, missing = 0, runs = 0, unrepaired = 0;
    for (unsigned i = 0; i < a->n; i++) {
        slots += a->win[i].slots;
        missing += a->win[i].missing;
        runs += a->win[i].runs;
        unrepaired += a->win[i].unrepaired;
    }
    a->loss = (double)missing / (double)slots;
    a->burst = runs ? (double)missing / (double)runs : 0;
    double loss = a->loss;
    /* Up only on evidence: the window's loss less one standard error (1.5 s
     * holds ~75 slots, so 5 % random loss reads anywhere from 2 to 10 %). */
    double se = SE_FACTOR * sqrt(loss * (1 - loss) / (double)slots);
    int want = level_for(loss - se);
    /* FEC alone leaves too much unrepaired (Opus leaves it out of some
     * frames, and bursts): copies, i.e. level 2, once loss is real. */
    if (want >= 1 && want < 2 && (double)unrepaired / (double)slots >= RESIDUAL)
        want = 2;
    if (want < a->level && loss >= up_at[a->level] * DOWN_FRACTION)
        want = a->level; /* between the thresholds: stay */
    int burst_class = loss - se < up_at[1] ? 0 : a->burst >= LONG_RUN ? 2 : a->burst >= BURSTY_RUN;
    int level = a->level;
    if (want > level) {
        level = want;
        a->calm_since = WZP_TS_NEVER;
    } else if (want < level) {
        /* Down to where the loss is now, after a calm dwell. */
        {
            if (a->calm_since == WZP_TS_NEVER)
                a->calm_since = now;
            if (now - a->calm_since >= DOWN_DWELL && now - a->changed_at >= DOWN_DWELL) {
                level = want;
                a->calm_since = now;
            }
        }
    } else {
        a->calm_since = WZP_TS_NEVER;
    }
    /* Burstiness goes up at once, down only with a level change down. */
    if (level < a->level || burst_class > a->burst_class)
        a->burst_class = burst_class;
    wzp_adapt_settings s = settings_of(level, a->burst_class, a->parity_mode);
    a->level = level;
    if (s.bitrate == a->cur.bitrate && s.expected_loss == a->cur.expected_loss &&
        s.redundancy == a->cur.redundancy && s.spacing == a->cur.spacing &&
        s.parity == a->cur.parity)
        return false;
    a->cur = s;
    a->changed_at = now;
    return true;
}
