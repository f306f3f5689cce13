/*
 * Speech time-scaling for the playout path: plays decoded frames faster or
 * slower without changing their pitch, so the playout buffer can shed or add
 * delay in the middle of speech instead of dropping or repeating frames.
 * libsonic (Debian libsonic-dev, the pitch-synchronous overlap-add that
 * espeak-ng uses) does the work. Sans-I/O: frames in, samples out.
 */
#ifndef WZP_MEDIA_TEMPO_H
#define WZP_MEDIA_TEMPO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wzp_tempo wzp_tempo;

/* 0, or WZP_ERR_NOMEM (*out untouched). 48 kHz mono. */
int wzp_tempo_new(wzp_tempo **out);
void wzp_tempo_free(wzp_tempo *t);

/* Feeds n samples to be played at `speed` (1 = as they are, e.g. 1.2 =
 * 20 % faster) and writes at most cap samples that are ready to out;
 * returns how many. At speed 1 the scaler's pending samples come first
 * (flushed), then pcm unchanged; otherwise a frame or two may be held back
 * while the scaler fills. Samples that do not fit stay pending. */
size_t wzp_tempo_feed(wzp_tempo *t, const int16_t *pcm, size_t n, float speed, int16_t *out,
                      size_t cap);
/* Whether the scaler holds samples not yet played (time-scaling in progress). */
bool wzp_tempo_active(const wzp_tempo *t);

#endif
