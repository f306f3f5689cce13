#include "audio/pcm_ring.h"

#include <stdalign.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "media/audio_format.h"

#define RING_LINE      64
#define RING_MAX_CAP   (1u << 20)
#define RING_MAX_FRAME (1u << 20)

/* head: next slot to write (producer's); tail: next slot to read (consumer's).
 * Both count frames forever (size_t wrap is harmless: capacity divides 2^N).
 * Each side's index and counters sit on their own cache line. */
struct wzp_pcm_ring {
    size_t frame_samples;
    size_t capacity;
    size_t mask;
    int16_t *buf;

    alignas(RING_LINE) atomic_size_t head;
    atomic_uint_fast64_t pushed;
    atomic_uint_fast64_t overruns;

    alignas(RING_LINE) atomic_size_t tail;
    atomic_uint_fast64_t popped;
    atomic_uint_fast64_t underruns;
    atomic_uint_fast64_t discarded;
};

void wzp_pcm_ring_config_default(wzp_pcm_ring_config *cfg)
{
    cfg->frame_samples = WZP_AUDIO_FRAME_SAMPLES;
    cfg->capacity = 8;
}

int wzp_pcm_ring_new(wzp_pcm_ring **out, const wzp_pcm_ring_config *cfg)
{
    wzp_pcm_ring_config c;
    wzp_pcm_ring_config_default(&c);
    if (cfg) {
        if (cfg->frame_samples)
            c.frame_samples = cfg->frame_samples;
        if (cfg->capacity)
            c.capacity = cfg->capacity;
    }
    if (!out || c.capacity > RING_MAX_CAP || (c.capacity & (c.capacity - 1)) != 0 ||
        c.frame_samples > RING_MAX_FRAME)
        return WZP_ERR_INVALID;
    wzp_pcm_ring *r =
        aligned_alloc(RING_LINE, (sizeof(*r) + RING_LINE - 1) / RING_LINE * RING_LINE);
    if (!r)
        return WZP_ERR_NOMEM;
    memset(r, 0, sizeof(*r));
    r->buf = calloc(c.capacity * c.frame_samples, sizeof(int16_t));
    if (!r->buf) {
        free(r);
        return WZP_ERR_NOMEM;
    }
    r->frame_samples = c.frame_samples;
    r->capacity = c.capacity;
    r->mask = c.capacity - 1;
    atomic_init(&r->head, 0);
    atomic_init(&r->tail, 0);
    atomic_init(&r->pushed, 0);
    atomic_init(&r->overruns, 0);
    atomic_init(&r->popped, 0);
    atomic_init(&r->underruns, 0);
    atomic_init(&r->discarded, 0);
    *out = r;
    return 0;
}

void wzp_pcm_ring_free(wzp_pcm_ring *r)
{
    if (!r)
        return;
    free(r->buf);
    free(r);
}

size_t wzp_pcm_ring_frame_samples(const wzp_pcm_ring *r)
{
    return r->frame_samples;
}

size_t wzp_pcm_ring_capacity(const wzp_pcm_ring *r)
{
    return r->capacity;
}

/* Counters are only written by their owning side: a relaxed load + store is
 * enough (no read-modify-write needed) and keeps readers race-free. */
static inline void bump(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

bool wzp_pcm_ring_push(wzp_pcm_ring *r, const int16_t *frame)
{
    size_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    /* acquire: the consumer finished reading the slot before it moved tail. */
    size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (head - tail >= r->capacity) {
        bump(&r->overruns, 1);
        return false;
    }
    memcpy(r->buf + (head & r->mask) * r->frame_samples, frame, r->frame_samples * sizeof(int16_t));
    /* release: the frame's bytes are visible before the new head. */
    atomic_store_explicit(&r->head, head + 1, memory_order_release);
    bump(&r->pushed, 1);
    return true;
}

bool wzp_pcm_ring_pop(wzp_pcm_ring *r, int16_t *frame)
{
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    /* acquire: pairs with push's release, the frame is fully written. */
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    if (head == tail) {
        bump(&r->underruns, 1);
        return false;
    }
    memcpy(frame, r->buf + (tail & r->mask) * r->frame_samples, r->frame_samples * sizeof(int16_t));
    /* release: done reading the slot before the producer may reuse it. */
    atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
    bump(&r->popped, 1);
    return true;
}

size_t wzp_pcm_ring_discard(wzp_pcm_ring *r, size_t keep)
{
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t n = head - tail;
    if (n <= keep)
        return 0;
    size_t drop = n - keep;
    atomic_store_explicit(&r->tail, tail + drop, memory_order_release);
    bump(&r->discarded, drop);
    return drop;
}

size_t wzp_pcm_ring_count(const wzp_pcm_ring *r)
{
    size_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    size_t n = head - tail;
    return n > r->capacity ? r->capacity : n; /* torn snapshot from a third thread */
}

void wzp_pcm_ring_get_stats(const wzp_pcm_ring *r, wzp_pcm_ring_stats *out)
{
    out->pushed = atomic_load_explicit(&r->pushed, memory_order_relaxed);
    out->popped = atomic_load_explicit(&r->popped, memory_order_relaxed);
    out->overruns = atomic_load_explicit(&r->overruns, memory_order_relaxed);
    out->underruns = atomic_load_explicit(&r->underruns, memory_order_relaxed);
    out->discarded = atomic_load_explicit(&r->discarded, memory_order_relaxed);
}
