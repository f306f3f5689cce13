#include "media/playout.h"

#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "media/audio_format.h"
#include "wire/media_frame.h"

/* Late frames in a row, with nothing buffered, that mean the sender's clock
 * moved (restart) rather than a delay spike: 160 ms of audio. */
#define LATE_RUN_RESYNC 8
/* Adaptive trimming looks at the smallest depth over this many ticks (1 s). */
#define TRIM_WINDOW 50
/* Added delay is given back one frame per this many ticks without lateness (10 s). */
#define CALM_TICKS 500
/* Frames later than this are a reordering straggler or a restart, not a
 * slower path: they do not add delay. */
#define GROW_MAX_LATE 5

enum { SLOT_EMPTY = 0, SLOT_FILLED, SLOT_PLAYED };

typedef struct slot {
    int64_t idx; /* which slot number the state refers to */
    uint8_t state;
    uint8_t flags;
    uint16_t seq;
    uint16_t len;
    uint8_t data[WZP_MEDIA_MAX_PAYLOAD];
} slot;

struct wzp_playout {
    wzp_ts delay;
    unsigned cap;
    bool adaptive;
    unsigned target_frames;
    unsigned max_extra; /* adaptive: frames of delay above the target we may add */
    slot *slots;

    bool anchored; /* a first frame fixed base_ts and start */
    bool playing;
    wzp_ts start;
    int64_t base_ts; /* extended timestamp of slot 0 */
    int64_t ts_ref;  /* newest extended timestamp: reference for extension */
    int64_t next;    /* next slot to play */
    int64_t newest;  /* highest slot ever buffered */
    bool in_dtx;
    unsigned late_run;

    /* sequence-number loss accounting, folded into lost_before on re-anchor */
    int64_t seq_ref, seq_min, seq_max;
    uint64_t seq_unique;
    uint64_t lost_before;

    unsigned win_count, win_min;
    unsigned extra; /* frames of delay added by holds */
    unsigned hold;  /* holds still to perform */
    unsigned calm;  /* ticks since the last late frame */
    wzp_playout_stats st;
};

void wzp_playout_config_default(wzp_playout_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
}

int wzp_playout_new(wzp_playout **out, const wzp_playout_config *cfg)
{
    if (!out)
        return WZP_ERR_INVALID;
    wzp_playout_config c = {0};
    if (cfg)
        c = *cfg;
    if (!c.target_delay)
        c.target_delay = WZP_PLAYOUT_DEFAULT_DELAY;
    if (!c.capacity)
        c.capacity = WZP_PLAYOUT_DEFAULT_CAPACITY;
    unsigned target_frames =
        (unsigned)((c.target_delay + WZP_MS(WZP_AUDIO_FRAME_MS) - 1) / WZP_MS(WZP_AUDIO_FRAME_MS));
    if (c.capacity > WZP_PLAYOUT_MAX_CAPACITY || c.target_delay > WZP_SEC(10) ||
        target_frames + 2 > c.capacity)
        return WZP_ERR_INVALID;
    wzp_playout *pb = calloc(1, sizeof(*pb));
    slot *slots = calloc(c.capacity, sizeof(*slots));
    if (!pb || !slots) {
        free(pb);
        free(slots);
        return WZP_ERR_NOMEM;
    }
    pb->delay = c.target_delay;
    pb->cap = c.capacity;
    pb->adaptive = c.adaptive;
    pb->target_frames = target_frames;
    wzp_ts maxd = c.max_delay ? c.max_delay : WZP_PLAYOUT_DEFAULT_MAX;
    unsigned max_frames = (unsigned)(maxd / WZP_MS(WZP_AUDIO_FRAME_MS));
    if (max_frames > c.capacity - 2)
        max_frames = c.capacity - 2;
    pb->max_extra = max_frames > target_frames ? max_frames - target_frames : 0;
    pb->slots = slots;
    pb->start = WZP_TS_NEVER;
    pb->win_min = UINT32_MAX;
    *out = pb;
    return 0;
}

void wzp_playout_free(wzp_playout *pb)
{
    if (!pb)
        return;
    free(pb->slots);
    free(pb);
}

/* Nearest value to ref whose low `bits` bits equal v (RFC 3550 A.1 style). */
static int64_t extend(int64_t ref, uint32_t v, unsigned bits)
{
    uint64_t mod = 1ULL << bits;
    uint64_t d = ((uint64_t)v - (uint64_t)ref) & (mod - 1);
    int64_t sd = d >= mod / 2 ? (int64_t)d - (int64_t)mod : (int64_t)d;
    return ref + sd;
}

static slot *slot_at(wzp_playout *pb, int64_t idx)
{
    /* idx may be negative (frames reordered before the first one): a true
     * modulo keeps any cap consecutive slots distinct. */
    int64_t m = idx % (int64_t)pb->cap;
    return &pb->slots[m < 0 ? m + pb->cap : m];
}

static uint64_t seq_lost(const wzp_playout *pb)
{
    if (!pb->anchored)
        return pb->lost_before;
    int64_t expected = pb->seq_max - pb->seq_min + 1;
    int64_t lost = expected - (int64_t)pb->seq_unique;
    return pb->lost_before + (lost > 0 ? (uint64_t)lost : 0);
}

static void note_seq(wzp_playout *pb, uint16_t seq)
{
    int64_t e = extend(pb->seq_ref, seq, 16);
    if (e > pb->seq_ref)
        pb->seq_ref = e;
    if (e < pb->seq_min)
        pb->seq_min = e;
    if (e > pb->seq_max)
        pb->seq_max = e;
    pb->seq_unique++;
}

static void store(wzp_playout *pb, int64_t idx, uint16_t seq, uint8_t flags, const uint8_t *p,
                  size_t len)
{
    slot *s = slot_at(pb, idx);
    s->idx = idx;
    s->state = SLOT_FILLED;
    s->flags = flags;
    s->seq = seq;
    s->len = (uint16_t)len;
    if (len)
        memcpy(s->data, p, len);
    if (idx > pb->newest)
        pb->newest = idx;
    pb->st.received++;
    note_seq(pb, seq);
}

/* Starts (or restarts) playout on this frame: it becomes slot 0, played
 * target_delay from now. Anything buffered is discarded. Extension restarts
 * from the raw wire timestamp, so no run of jumps can walk the extended
 * values towards overflow. */
static void anchor(wzp_playout *pb, uint16_t seq, int64_t ext_ts, uint8_t flags, const uint8_t *p,
                   size_t len, wzp_ts now)
{
    if (pb->anchored) {
        for (unsigned i = 0; i < pb->cap; i++)
            if (pb->slots[i].state == SLOT_FILLED)
                pb->st.dropped++;
        pb->lost_before = seq_lost(pb);
        pb->st.resyncs++;
    }
    memset(pb->slots, 0, pb->cap * sizeof(*pb->slots));
    pb->anchored = true;
    pb->playing = false;
    pb->start = now + pb->delay;
    pb->base_ts = ext_ts;
    pb->ts_ref = ext_ts;
    pb->next = 0;
    pb->newest = 0;
    pb->in_dtx = false;
    pb->late_run = 0;
    pb->seq_ref = pb->seq_min = pb->seq_max = seq;
    pb->seq_unique = 0;
    pb->win_count = 0;
    pb->win_min = UINT32_MAX;
    pb->hold = 0;
    pb->extra = 0;
    pb->calm = 0;
    store(pb, 0, seq, flags, p, len);
}

int wzp_playout_insert(wzp_playout *pb, uint16_t seq, uint32_t timestamp, uint8_t flags,
                       const uint8_t *payload, size_t len, wzp_ts now)
{
    if (!pb || (len && !payload))
        return WZP_ERR_INVALID;
    pb->st.inserted++;
    if (len > WZP_MEDIA_MAX_PAYLOAD) {
        pb->st.invalid++;
        return 1;
    }
    if (!pb->anchored) {
        anchor(pb, seq, timestamp, flags, payload, len, now);
        return 0;
    }
    int64_t ext = extend(pb->ts_ref, timestamp, 32);
    int64_t rel = ext - pb->base_ts;
    if (rel % WZP_AUDIO_FRAME_SAMPLES != 0) {
        pb->st.invalid++;
        return 1;
    }
    int64_t idx = rel / WZP_AUDIO_FRAME_SAMPLES;

    /* Still buffering: an earlier frame (it was overtaken by the first one)
     * moves the start of playout back to it, by at most the target delay. */
    if (!pb->playing && idx < pb->next && idx >= -(int64_t)pb->target_frames &&
        pb->newest - idx < (int64_t)pb->cap - 1)
        pb->next = idx;

    if (idx < pb->next) {
        slot *s = slot_at(pb, idx);
        if (pb->next - idx <= (int64_t)pb->cap && s->idx == idx && s->state == SLOT_PLAYED) {
            pb->st.duplicate++;
            return 1;
        }
        pb->st.late++;
        /* Count it as seen for loss statistics, unless its sequence number
         * is far off (a restarted sender), which would inflate them. */
        int64_t e = extend(pb->seq_ref, seq, 16);
        if (e >= pb->seq_min - (int64_t)pb->cap && e <= pb->seq_max + (int64_t)pb->cap)
            note_seq(pb, seq);
        pb->calm = 0;
        /* A slower path: hold playout back by as many frames as this one
         * missed its slot by (holds already pending count towards it). */
        if (pb->adaptive && pb->playing && pb->next - idx <= GROW_MAX_LATE &&
            pb->hold < pb->next - idx && pb->extra + pb->hold < pb->max_extra)
            pb->hold++;
        if (++pb->late_run >= LATE_RUN_RESYNC && wzp_playout_depth(pb) == 0) {
            /* Not late after all: playout restarts on it. */
            pb->st.late--;
            anchor(pb, seq, timestamp, flags, payload, len, now);
            return 0;
        }
        return 1;
    }
    if (idx >= pb->next + (int64_t)pb->cap) {
        /* Too far ahead for the buffer: the sender jumped or we stalled. */
        anchor(pb, seq, timestamp, flags, payload, len, now);
        return 0;
    }
    slot *s = slot_at(pb, idx);
    if (s->state == SLOT_FILLED && s->idx == idx) {
        pb->st.duplicate++;
        return 1;
    }
    if (ext > pb->ts_ref)
        pb->ts_ref = ext;
    pb->late_run = 0;
    store(pb, idx, seq, flags, payload, len);
    return 0;
}

unsigned wzp_playout_depth(const wzp_playout *pb)
{
    if (!pb || !pb->anchored || pb->newest < pb->next)
        return 0;
    return (unsigned)(pb->newest - pb->next + 1);
}

/* With adaptation: a whole window in which the buffer never ran below
 * target + added + 2 frames means the excess delay is not buying anything. */
static void maybe_trim(wzp_playout *pb)
{
    if (++pb->calm >= CALM_TICKS) {
        pb->calm = 0;
        if (pb->extra)
            pb->extra--;
    }
    unsigned d = wzp_playout_depth(pb);
    if (d < pb->win_min)
        pb->win_min = d;
    if (++pb->win_count < TRIM_WINDOW)
        return;
    if (pb->win_min > pb->target_frames + pb->extra + 2) {
        slot *s = slot_at(pb, pb->next);
        if (s->idx == pb->next && s->state == SLOT_FILLED) {
            s->state = SLOT_PLAYED;
            pb->st.dropped++;
        }
        pb->next++;
        pb->st.trimmed++;
    }
    pb->win_count = 0;
    pb->win_min = UINT32_MAX;
}

void wzp_playout_pull(wzp_playout *pb, wzp_ts now, wzp_playout_frame *out)
{
    memset(out, 0, sizeof(*out));
    out->kind = WZP_PLAYOUT_WAIT;
    if (!pb || !pb->anchored)
        return;
    if (!pb->playing) {
        if (now < pb->start)
            return;
        pb->playing = true;
    }
    if (pb->adaptive)
        maybe_trim(pb);
    if (pb->hold) {
        /* Play one concealed frame without consuming a slot: every frame
         * after this one is played 20 ms later than before. */
        pb->hold--;
        pb->extra++;
        pb->st.held++;
        out->kind = WZP_PLAYOUT_MISSING;
        out->hold = true;
        out->index = pb->next;
        out->timestamp = (uint32_t)(pb->base_ts + pb->next * WZP_AUDIO_FRAME_SAMPLES);
        return;
    }

    int64_t idx = pb->next++;
    out->index = idx;
    out->timestamp = (uint32_t)(pb->base_ts + idx * WZP_AUDIO_FRAME_SAMPLES);
    slot *s = slot_at(pb, idx);
    if (s->state == SLOT_FILLED && s->idx == idx) {
        s->state = SLOT_PLAYED;
        out->kind = WZP_PLAYOUT_FRAME;
        out->seq = s->seq;
        out->flags = s->flags;
        out->payload = s->len ? s->data : NULL;
        out->len = s->len;
        pb->in_dtx = (s->flags & WZP_MEDIA_F_DTX) != 0;
        pb->st.played++;
        return;
    }
    /* Nothing for this slot: remember it played empty, so a straggler is late. */
    s->idx = idx;
    s->state = SLOT_EMPTY;
    out->kind = WZP_PLAYOUT_MISSING;
    out->dtx = pb->in_dtx;
    slot *n = slot_at(pb, idx + 1);
    if (n->state == SLOT_FILLED && n->idx == idx + 1 && n->len) {
        out->next_payload = n->data;
        out->next_len = n->len;
    }
    if (pb->in_dtx)
        pb->st.dtx++;
    else
        pb->st.concealed++;
}

wzp_ts wzp_playout_start_time(const wzp_playout *pb)
{
    return pb && pb->anchored ? pb->start : WZP_TS_NEVER;
}

bool wzp_playout_playing(const wzp_playout *pb)
{
    return pb && pb->playing;
}

void wzp_playout_get_stats(const wzp_playout *pb, wzp_playout_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!pb)
        return;
    *out = pb->st;
    out->lost = seq_lost(pb);
}
