/*
 * A lock-free single-producer / single-consumer ring of fixed-size PCM frames:
 * the hand-off between a sound card's real-time thread and the call's thread
 * (capture: device thread pushes, call pops; playback: the reverse).
 *
 * Why this shape: the real-time side must never block, allocate, lock or log,
 * so push and pop are a memcpy and two atomic index updates (acquire/release,
 * the producer owns head, the consumer owns tail). Capacity is a power of two
 * fixed at creation so indices wrap with a mask and never need a reset.
 *
 * Full ring (overrun): push drops the NEW frame and counts it. Dropping the
 * oldest instead would need the producer to move the consumer's index while
 * the consumer may be copying that slot, which breaks SPSC. A full ring means
 * the consumer is a whole ring behind; it restores freshness itself with
 * wzp_pcm_ring_discard (keep only the newest frames), which the call thread
 * does when its latency budget is exceeded - for a microphone that is what
 * matters. Empty ring (underrun): pop returns false and counts it; the caller
 * plays silence or conceals.
 */
#ifndef WZP_AUDIO_PCM_RING_H
#define WZP_AUDIO_PCM_RING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wzp_pcm_ring_config {
    size_t frame_samples; /* int16 samples per frame; 0 = WZP_AUDIO_FRAME_SAMPLES (20 ms) */
    size_t capacity;      /* frames, a power of two; 0 = 8 (160 ms) */
} wzp_pcm_ring_config;

typedef struct wzp_pcm_ring_stats {
    uint64_t pushed;    /* frames accepted */
    uint64_t popped;    /* frames handed out */
    uint64_t overruns;  /* pushes on a full ring (that frame dropped) */
    uint64_t underruns; /* pops on an empty ring */
    uint64_t discarded; /* frames dropped by wzp_pcm_ring_discard */
} wzp_pcm_ring_stats;

typedef struct wzp_pcm_ring wzp_pcm_ring;

void wzp_pcm_ring_config_default(wzp_pcm_ring_config *cfg);
/* cfg NULL: defaults. WZP_ERR_INVALID if capacity is not a power of two (or
 * absurdly large), WZP_ERR_NOMEM. All memory is allocated here. */
int wzp_pcm_ring_new(wzp_pcm_ring **out, const wzp_pcm_ring_config *cfg);
void wzp_pcm_ring_free(wzp_pcm_ring *r);

size_t wzp_pcm_ring_frame_samples(const wzp_pcm_ring *r);
size_t wzp_pcm_ring_capacity(const wzp_pcm_ring *r);

/* Producer side only. Copies one frame in; false (and an overrun counted)
 * when the ring is full. Wait-free. */
bool wzp_pcm_ring_push(wzp_pcm_ring *r, const int16_t *frame);

/* Consumer side only. Copies the oldest frame out; false (and an underrun
 * counted) when the ring is empty. Wait-free. */
bool wzp_pcm_ring_pop(wzp_pcm_ring *r, int16_t *frame);
/* Consumer side only: drops the oldest frames so that at most keep remain;
 * returns how many were dropped. */
size_t wzp_pcm_ring_discard(wzp_pcm_ring *r, size_t keep);

/* Frames queued now; exact from either side's own thread, a snapshot
 * otherwise. */
size_t wzp_pcm_ring_count(const wzp_pcm_ring *r);

/* Safe from any thread (counters are atomics); a snapshot. */
void wzp_pcm_ring_get_stats(const wzp_pcm_ring *r, wzp_pcm_ring_stats *out);

#endif
