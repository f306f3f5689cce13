/*
 * The sounds of a phone that rings: the ring an incoming call makes on the
 * callee's speaker, and the ringback tone the caller hears while it rings.
 * Sans-I/O: a generator that counts samples; 48 kHz mono 16-bit.
 *
 *   incoming: 400 + 450 Hz, on 0.4 s, off 0.2 s, on 0.4 s, off 2 s (a double
 *             ring, as British phones ring: distinct from any ringback)
 *   ringback: 425 Hz, on 1 s, off 4 s (ETSI ES 201 970's recommendation)
 *
 * Every burst fades in and out over 10 ms, so the cadence never clicks.
 */
#ifndef WZP_AUDIO_RING_TONE_H
#define WZP_AUDIO_RING_TONE_H

#include <stddef.h>
#include <stdint.h>

#include <wzp/audio.h>

typedef struct wzp_ring_tone {
    wzp_ring_kind kind;
    uint64_t pos; /* samples produced */
    double amp;   /* peak of the sum, 0..1 of full scale */
} wzp_ring_tone;

/* volume_pct: 100 is a comfortable -12 dBFS peak; clamped to WZP_VOLUME_MAX. */
void wzp_ring_tone_init(wzp_ring_tone *t, wzp_ring_kind kind, unsigned volume_pct);
void wzp_ring_tone_fill(wzp_ring_tone *t, int16_t *out, size_t n);
/* True while the cadence is sounding at sample position pos (for tests and meters). */
int wzp_ring_tone_on_at(wzp_ring_kind kind, uint64_t pos);

#endif
