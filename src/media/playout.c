#include "media/playout.h"

#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "media/audio_format.h"
#include "wire/media_frame.h"
#include "wire/media_red.h"

/* Late frames in a row, with nothing buffered, that mean the sender's clock
 * moved (restart) rather than a delay spike: 160 ms of audio. */
#define LATE_RUN_RESYNC 8
/* Frames later than this are a reordering straggler or a restart, not a
 * slower path: they do not add delay. */
#define GROW_MAX_LATE 5
/* The floor is the smallest arrival offset over FLOOR_BUCKETS buckets of one
 * second each: old enough minima expire, so a slower path raises it. */
#define FLOOR_BUCKETS 4
/* Jitter histogram: 4 ms bins up to 400 ms; each frame multiplies the old
 * weights by FORGET (memory ~250 frames = 5 s). */
#define HIST_BINS  100
#define HIST_BIN   WZP_MS(4)
#define HIST_Q     0.97
#define HIST_DECAY 0.996f
/* Pull-clock and event-loop slack on top of the jitter. */
#define GUARD WZP_MS(5)
/* Hysteresis (ns above/below the target): start shedding above SHED_ON (more
 * than a pull grid's phase can add), stop
 * under SHED_OFF; start growing below -GROW_ON, stop above -GROW_OFF. */
#define SHED_ON  ((int64_t)WZP_MS(20))
#define SHED_OFF ((int64_t)WZP_MS(4))
#define GROW_ON  ((int64_t)WZP_MS(8))
/* For the first WARMUP arrivals the jitter estimate knows little: only an
 * excess over WARMUP_SHED (a late first packet) is time-scaled away; lateness
 * is met by holds alone. */
#define WARMUP      100
#define WARMUP_TIME WZP_SEC(2) /* ... or this long: DTX pauses send nothing to observe */
#define WARMUP_SHED ((int64_t)WZP_MS(60))
#define GROW_OFF    ((int64_t)WZP_MS(2))

enum { SLOT_EMPTY = 0, SLOT_FILLED, SLOT_PLAYED };

typedef struct slot {
    int64_t idx; /* which slot number the state refers to */
    uint8_t state;
    uint8_t flags;
    bool red; /* a redundant copy from a later packet, not the frame's own */
    uint16_t seq;
    uint16_t len;
    uint8_t data[WZP_MEDIA_MAX_PAYLOAD];
} slot;

struct wzp_playout {
    wzp_ts delay;
    unsigned cap;
    bool adaptive;
    unsigned wait_frames; /* frames the target waits for repair data (FEC, redundancy) */
    unsigned init_wait;   /* ... at the start (FEC alone) */
    unsigned target_frames;
    wzp_ts max_delay; /* adaptive ceiling of the target */
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

    unsigned hold; /* holds still to perform */

    /* adaptive delay estimate (see the header) */
    wzp_ts anchor_at; /* arrival of slot 0: offsets are relative to it */
    struct {
        int64_t epoch; /* arrival second; -1 = unused */
        int64_t min;   /* smallest offset seen in it, ns */
    } floor_b[FLOOR_BUCKETS];
    int64_t floor; /* current floor, ns */
    float hist[HIST_BINS];
    float hist_sum;
    int mode;          /* +1 shedding, -1 growing, 0 steady */
    wzp_ts backlog;    /* audio the caller still holds from earlier pulls */
    unsigned observed; /* arrivals since the anchor (saturates at WARMUP) */
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
    /* Waiting for FEC: start where the target of a jitter-free path is. */
    if (c.adaptive && c.fec_wait && pb->delay < WZP_MS(WZP_AUDIO_FRAME_MS) + GUARD + HIST_BIN)
        pb->delay = WZP_MS(WZP_AUDIO_FRAME_MS) + GUARD + HIST_BIN;
    pb->cap = c.capacity;
    pb->adaptive = c.adaptive;
    pb->target_frames = target_frames;
    pb->wait_frames = c.fec_wait ? 1 : 0;
    pb->init_wait = pb->wait_frames;
    wzp_ts maxd = c.max_delay ? c.max_delay : WZP_PLAYOUT_DEFAULT_MAX;
    if (maxd > (wzp_ts)(c.capacity - 2) * WZP_MS(WZP_AUDIO_FRAME_MS))
        maxd = (wzp_ts)(c.capacity - 2) * WZP_MS(WZP_AUDIO_FRAME_MS);
    pb->max_delay = maxd < c.target_delay ? c.target_delay : maxd;
    pb->slots = slots;
    pb->start = WZP_TS_NEVER;
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
                  size_t len, bool red)
{
    slot *s = slot_at(pb, idx);
    s->idx = idx;
    s->state = SLOT_FILLED;
    s->red = red;
    s->flags = flags;
    s->seq = seq;
    s->len = (uint16_t)len;
    if (len)
        memcpy(s->data, p, len);
    if (idx > pb->newest)
        pb->newest = idx;
    if (red) {
        pb->st.redundant++;
        return; /* the network lost the frame's own packet: not received */
    }
    pb->st.received++;
    note_seq(pb, seq);
}

/* Arrival offset of slot idx at `now`, relative to slot 0's arrival. */
static int64_t offset_of(const wzp_playout *pb, int64_t idx, wzp_ts now)
{
    return (int64_t)(now - pb->anchor_at) - idx * (int64_t)WZP_MS(WZP_AUDIO_FRAME_MS);
}

/* Feeds one arrival (in time or late) to the floor and the jitter histogram. */
static void observe(wzp_playout *pb, int64_t idx, wzp_ts now)
{
    if (!pb->adaptive)
        return;
    int64_t o = offset_of(pb, idx, now);
    if (pb->observed < WARMUP)
        pb->observed++;
    int64_t epoch = (int64_t)(now / WZP_SEC(1));
    unsigned b = (unsigned)(epoch % FLOOR_BUCKETS);
    if (pb->floor_b[b].epoch != epoch) {
        pb->floor_b[b].epoch = epoch;
        pb->floor_b[b].min = o;
    } else if (o < pb->floor_b[b].min) {
        pb->floor_b[b].min = o;
    }
    int64_t fl = INT64_MAX;
    for (unsigned i = 0; i < FLOOR_BUCKETS; i++)
        if (pb->floor_b[i].epoch > epoch - FLOOR_BUCKETS && pb->floor_b[i].min < fl)
            fl = pb->floor_b[i].min;
    pb->floor = fl;
    int64_t j = o - fl;
    unsigned bin = (unsigned)(j / (int64_t)HIST_BIN);
    if (bin >= HIST_BINS)
        bin = HIST_BINS - 1;
    for (unsigned i = 0; i < HIST_BINS; i++)
        pb->hist[i] *= HIST_DECAY;
    pb->hist[bin] += 1.0f;
    pb->hist_sum = pb->hist_sum * HIST_DECAY + 1.0f;
}

static wzp_ts jitter_q(const wzp_playout *pb)
{
    float want = (float)HIST_Q * pb->hist_sum, acc = 0;
    for (unsigned i = 0; i < HIST_BINS; i++) {
        acc += pb->hist[i];
        if (acc >= want)
            return (wzp_ts)(i + 1) * HIST_BIN;
    }
    return (wzp_ts)HIST_BINS * HIST_BIN;
}

static wzp_ts target_of(const wzp_playout *pb)
{
    wzp_ts t = jitter_q(pb) + GUARD + pb->wait_frames * WZP_MS(WZP_AUDIO_FRAME_MS);
    if (t < pb->delay)
        t = pb->delay;
    return t > pb->max_delay ? pb->max_delay : t;
}

/* Delay of slot idx played at `now`, above the floor (0 if ahead of it). */
static wzp_ts delay_of(const wzp_playout *pb, int64_t idx, wzp_ts now)
{
    int64_t d = offset_of(pb, idx, now) - pb->floor;
    return d > 0 ? (wzp_ts)d : 0;
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
    pb->hold = 0;
    pb->anchor_at = now;
    for (unsigned i = 0; i < FLOOR_BUCKETS; i++)
        pb->floor_b[i].epoch = -1;
    pb->floor = 0;
    memset(pb->hist, 0, sizeof(pb->hist));
    pb->hist_sum = 0;
    pb->mode = 0;
    pb->observed = 0;
    observe(pb, 0, now);
    store(pb, 0, seq, flags, p, len, false);
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
        observe(pb, idx, now);
        /* A slower path: hold playout back by as many frames as this one
         * missed its slot by (holds already pending count towards it), while
         * the delay is under the target that now includes this frame. */
        if (pb->adaptive && pb->playing && pb->next - idx <= GROW_MAX_LATE &&
            pb->hold < pb->next - idx &&
            delay_of(pb, pb->next, now) + (pb->hold + 1) * WZP_MS(WZP_AUDIO_FRAME_MS) <=
                target_of(pb) + WZP_MS(WZP_AUDIO_FRAME_MS))
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
    if (s->state == SLOT_FILLED && s->idx == idx && !s->red) {
        pb->st.duplicate++;
        return 1;
    }
    if (s->state == SLOT_FILLED && s->idx == idx)
        pb->st.redundant--; /* the frame's own packet replaces its copy */
    if (ext > pb->ts_ref)
        pb->ts_ref = ext;
    pb->late_run = 0;
    observe(pb, idx, now);
    store(pb, idx, seq, flags, payload, len, false);
    return 0;
}

int wzp_playout_insert_redundant(wzp_playout *pb, uint16_t seq, uint32_t timestamp, uint8_t flags,
                                 const uint8_t *payload, size_t len)
{
    if (!pb || (len && !payload))
        return WZP_ERR_INVALID;
    if (!pb->anchored || len > WZP_MEDIA_MAX_PAYLOAD)
        return 1;
    int64_t rel = extend(pb->ts_ref, timestamp, 32) - pb->base_ts;
    if (rel % WZP_AUDIO_FRAME_SAMPLES != 0)
        return 1;
    int64_t idx = rel / WZP_AUDIO_FRAME_SAMPLES;
    if (idx < pb->next || idx >= pb->next + (int64_t)pb->cap - 1)
        return 1;
    slot *s = slot_at(pb, idx);
    if (s->state == SLOT_FILLED && s->idx == idx)
        return 1;
    store(pb, idx, seq, flags, payload, len, true);
    return 0;
}

void wzp_playout_set_backlog(wzp_playout *pb, wzp_ts backlog)
{
    if (pb)
        pb->backlog = backlog;
}

void wzp_playout_set_wait(wzp_playout *pb, unsigned frames)
{
    if (pb && pb->adaptive)
        pb->wait_frames = frames > WZP_MEDIA_RED_REACH ? WZP_MEDIA_RED_REACH : frames;
}

unsigned wzp_playout_depth(const wzp_playout *pb)
{
    if (!pb || !pb->anchored || pb->newest < pb->next)
        return 0;
    return (unsigned)(pb->newest - pb->next + 1);
}

/* With adaptation: where the next slot stands against the target, with
 * hysteresis; sets out->tempo and out->excess. */
static void steer(wzp_playout *pb, wzp_ts now, wzp_playout_frame *out)
{
    wzp_ts d = delay_of(pb, pb->next, now) + pb->backlog, t = target_of(pb);
    int64_t ex = (int64_t)d - (int64_t)t;
    pb->st.delay = d;
    pb->st.target = t;
    if (ex > SHED_ON)
        pb->mode = 1;
    else if (ex < -GROW_ON)
        pb->mode = -1;
    else if ((pb->mode > 0 && ex < SHED_OFF) || (pb->mode < 0 && ex > -GROW_OFF))
        pb->mode = 0;
    /* Young estimate: no growth for jitter it may misjudge, but the wait for
     * repair data (copies, parity) is known and grows at once. */
    bool young = pb->observed < WARMUP && now - pb->anchor_at < WARMUP_TIME;
    if (young &&
        ((pb->mode < 0 && pb->wait_frames <= pb->init_wait) || (pb->mode > 0 && ex < WARMUP_SHED)))
        pb->mode = 0;
    out->tempo = pb->mode;
    out->excess = ex;
}

static bool slot_filled(wzp_playout *pb, int64_t idx)
{
    slot *s = slot_at(pb, idx);
    return s->state == SLOT_FILLED && s->idx == idx;
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
    if (pb->adaptive) {
        steer(pb, now, out);
        /* Sender DTX: skipping or repeating a slot of background costs nothing
         * audible, so whole frames go here (at most one per pull). */
        if (pb->in_dtx && !slot_filled(pb, pb->next)) {
            if (out->excess >= SHED_OFF + (int64_t)WZP_MS(WZP_AUDIO_FRAME_MS) &&
                !slot_filled(pb, pb->next + 1)) {
                slot *s = slot_at(pb, pb->next);
                s->idx = pb->next;
                s->state = SLOT_EMPTY;
                pb->next++;
                pb->st.trimmed++;
                out->excess -= (int64_t)WZP_MS(WZP_AUDIO_FRAME_MS);
            } else if (out->excess <= -(int64_t)WZP_MS(WZP_AUDIO_FRAME_MS) && !pb->hold) {
                pb->hold = 1;
            }
        }
        if (out->tempo > 0)
            pb->st.faster++;
        else if (out->tempo < 0)
            pb->st.slower++;
    }
    if (pb->hold) {
        /* Play one concealed frame without consuming a slot: every frame
         * after this one is played 20 ms later than before. */
        pb->hold--;
        pb->st.held++;
        out->kind = WZP_PLAYOUT_MISSING;
        out->hold = true;
        out->dtx = pb->in_dtx;
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
        out->redundant = s->red;
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
    if (pb->adaptive && pb->anchored)
        out->jitter = jitter_q(pb);
}
