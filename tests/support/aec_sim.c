#include "support/aec_sim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <wzp/wzp.h>

#include "media/audio_format.h"

#define RATE  WZP_AUDIO_RATE
#define FRAME WZP_AUDIO_FRAME_SAMPLES

void wzp_aec_scenario_default(wzp_aec_scenario *sc)
{
    memset(sc, 0, sizeof(*sc));
    wzp_voice_proc_config_default(&sc->vp);
    sc->room = (wzp_synth_room){.delay_ms = 30, .gain = 0.5, .rt60_ms = 150, .seed = 7};
    sc->far_peak = 16000;
    sc->noise_dbfs = -50;
    sc->secs = 10;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int wzp_aec_run_scenario(const wzp_aec_scenario *sc, wzp_aec_run *out)
{
    memset(out, 0, sizeof(*out));
    if (sc->secs <= 0)
        return WZP_ERR_INVALID;
    size_t n = (size_t)RATE * (size_t)sc->secs;
    float *farf = calloc(n, sizeof(float)), *noise = calloc(n, sizeof(float));
    int16_t *far = calloc(n, sizeof(int16_t)), *mic = calloc(n, sizeof(int16_t));
    out->echo = calloc(n, sizeof(float));
    out->out = calloc(n, sizeof(int16_t));
    out->n = n;
    int rc = WZP_ERR_NOMEM;
    wzp_voice_proc *vp = NULL;
    if (!farf || !noise || !far || !mic || !out->echo || !out->out)
        goto done;
    wzp_synth_syllables(farf, n, 1, sc->far_peak);
    wzp_synth_noise_floor(noise, n, 3, sc->noise_dbfs);
    if ((rc = wzp_synth_room_echo(&sc->room, farf, out->echo, n)) < 0)
        goto done;
    wzp_synth_mix_s16(farf, NULL, NULL, far, n);
    wzp_synth_mix_s16(out->echo, noise, NULL, mic, n);
    out->echo_to_noise_db = 10 * log10(wzp_synth_power(out->echo, NULL, 0, n) /
                                       (wzp_synth_power(noise, NULL, 0, n) + 1e-30));
    if ((rc = wzp_voice_proc_new(&vp, &sc->vp)) < 0)
        goto done;
    uint64_t t0 = now_ns();
    for (size_t f = 0; f + FRAME <= n; f += FRAME) {
        wzp_voice_proc_far(vp, far + f);
        wzp_voice_proc_near(vp, mic + f, out->out + f, NULL);
    }
    out->frame_ns = (now_ns() - t0) / (n / FRAME);
    rc = 0;
done:
    wzp_voice_proc_free(vp);
    free(farf);
    free(noise);
    free(far);
    free(mic);
    if (rc < 0)
        wzp_aec_run_free(out);
    return rc;
}

void wzp_aec_run_free(wzp_aec_run *r)
{
    free(r->echo);
    free(r->out);
    memset(r, 0, sizeof(*r));
}

double wzp_aec_erle_db(const wzp_aec_run *r, int from_ms, int to_ms)
{
    size_t a = (size_t)from_ms * RATE / 1000, b = (size_t)to_ms * RATE / 1000;
    if (b > r->n)
        b = r->n;
    return 10 * log10(wzp_synth_power(r->echo, NULL, a, b) /
                      (wzp_synth_power(NULL, r->out, a, b) + 1e-9));
}

int wzp_aec_converge_ms(const wzp_aec_run *r, int win_ms, double thresh_db)
{
    int total = (int)(r->n * 1000 / RATE);
    if (win_ms <= 0 || win_ms > total)
        return -1;
    int conv = 0; /* the end of the last window below the threshold */
    for (int t = 0; t + win_ms <= total; t += win_ms)
        if (wzp_aec_erle_db(r, t, t + win_ms) < thresh_db)
            conv = t + win_ms;
    return conv + win_ms > total ? -1 : conv;
}
