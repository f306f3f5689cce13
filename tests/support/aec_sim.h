/*
 * Echo-cancellation scenarios on a virtual clock, shared by the voice_proc
 * test (asserts) and bench_aec (reports): far-end syllables -> loudspeaker
 * -> room (wzp_synth_room) -> microphone, plus steady near-end noise; the
 * microphone runs through wzp_voice_proc frame by frame, far first.
 *
 * ERLE over a window = 10 log10(echo power at the microphone / output
 * power): the output still holds the near-end noise (unless denoise takes
 * it), so ERLE is capped at the echo-to-noise ratio (echo_to_noise_db).
 */
#ifndef WZP_TESTS_AEC_SIM_H
#define WZP_TESTS_AEC_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "audio/voice_proc.h"
#include "support/synth.h"

typedef struct wzp_aec_scenario {
    wzp_voice_proc_config vp;
    wzp_synth_room room;
    double far_peak;   /* syllable peak, int16 units */
    double noise_dbfs; /* near-end noise at the microphone */
    int secs;
} wzp_aec_scenario;

/* 10 s, 30 ms delay, -6 dB direct path, 150 ms RT60, -50 dBFS noise, far
 * peak 16000, default voice_proc. */
void wzp_aec_scenario_default(wzp_aec_scenario *sc);

typedef struct wzp_aec_run {
    size_t n;
    float *echo;  /* echo at the microphone */
    int16_t *out; /* processed microphone */
    double echo_to_noise_db;
    uint64_t frame_ns; /* mean wall time of one wzp_voice_proc_near + far */
} wzp_aec_run;

/* 0, or a wzp error (allocation, voice_proc creation). */
int wzp_aec_run_scenario(const wzp_aec_scenario *sc, wzp_aec_run *out);
void wzp_aec_run_free(wzp_aec_run *r);

/* ERLE over [from_ms, to_ms). */
double wzp_aec_erle_db(const wzp_aec_run *r, int from_ms, int to_ms);
/* First time (ms) after which the ERLE of every later win_ms window stays
 * >= thresh_db; -1 if the last window is below it. */
int wzp_aec_converge_ms(const wzp_aec_run *r, int win_ms, double thresh_db);

#endif
