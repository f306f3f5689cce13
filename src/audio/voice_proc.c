#include "audio/voice_proc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <speex/speex_echo.h>
#include <speex/speex_preprocess.h>
#include <wzp/wzp.h>

/* speexdsp runs on 10 ms blocks: the MDF canceller adapts once per block, so
 * halving the block doubles its adaptation rate at the same cost per second,
 * and 480 samples keeps the FFTs small. */
#define SUB       (WZP_AUDIO_RATE / 100)
#define SUBS      (WZP_AUDIO_FRAME_SAMPLES / SUB)
#define FAR_MAX   64
#define FILTER_MS 200
/* Speech probability (percent) to enter / stay in voice: speexdsp's defaults. */
#define VAD_START    35
#define VAD_CONTINUE 20
/* Energy gate over speexdsp's speech probability, which on steady
 * background noise above about -65 dBFS stays "speech" for good (measured
 * with speexdsp 1.2.1; fine at -80 dBFS): a frame is voice only if it is
 * also VAD_SNR x the noise floor, tracked as the minimum frame energy that
 * may creep up by VAD_FLOOR_RISE per frame (~4 dB/s, so speech gaps pull it
 * back down while a louder room is followed within seconds). */
#define VAD_SNR        4.0 /* 6 dB */
#define VAD_FLOOR_RISE 1.02
/* Far-end activity: while nothing louder than this (-60 dBFS, mean square) has been played for
 * a whole echo tail, there is no echo to cancel and the microphone passes through untouched.
 * Why: even with a silent far end the canceller is not transparent (its DC notch and pre- and
 * de-emphasis reshape the low band), which costs voice quality for nothing. The canceller
 * still runs on every frame so its far history and filter stay current; its output is faded
 * in and out over one frame. */
#define FAR_ACTIVE_MS2 (32.8 * 32.8)
#define FAR_QUIET_MAX  1000000 /* frames; the start counts as long quiet */

struct wzp_voice_proc {
    wzp_voice_proc_config cfg;
    SpeexEchoState *echo;     /* NULL with aec off */
    SpeexPreprocessState *pp; /* NULL with denoise, agc and vad all off */
    bool pp_in_place;         /* denoise or agc: pp output is the output */
    bool was_speech;          /* VAD hysteresis state */
    double floor;             /* VAD noise floor, mean square per sample; 0 = unset */
    /* far queue: cfg.far_queue frames, FIFO */
    int16_t *far;
    int far_head, far_len;
    int far_quiet;  /* near frames since the last loud far frame */
    double aec_mix; /* 0: microphone as is, 1: the canceller's output */
    int16_t zeros[WZP_AUDIO_FRAME_SAMPLES];
    int16_t tmp[WZP_AUDIO_FRAME_SAMPLES];
    wzp_voice_proc_stats st;
};

void wzp_voice_proc_config_default(wzp_voice_proc_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->aec = cfg->denoise = cfg->agc = cfg->vad = true;
    cfg->filter_ms = FILTER_MS;
    cfg->agc_level = 8000;
    cfg->far_queue = 4;
}

static int make_pp(wzp_voice_proc *vp)
{
    const wzp_voice_proc_config *c = &vp->cfg;
    if (!c->denoise && !c->agc && !c->vad)
        return 0;
    vp->pp = speex_preprocess_state_init(SUB, WZP_AUDIO_RATE);
    if (!vp->pp)
        return WZP_ERR_AUDIO;
    spx_int32_t on = 1, off = 0;
    speex_preprocess_ctl(vp->pp, SPEEX_PREPROCESS_SET_DENOISE, c->denoise ? &on : &off);
    speex_preprocess_ctl(vp->pp, SPEEX_PREPROCESS_SET_AGC, c->agc ? &on : &off);
    /* The preprocessor's own VAD flag (SET_VAD, off by default) only adds
     * hysteresis over its speech probability and prints a warning when set;
     * near() does that itself from SPEEX_PREPROCESS_GET_PROB. */
    speex_preprocess_ctl(vp->pp, SPEEX_PREPROCESS_SET_DEREVERB, &off);
    if (c->agc) {
        spx_int32_t level = c->agc_level;
        speex_preprocess_ctl(vp->pp, SPEEX_PREPROCESS_SET_AGC_TARGET, &level);
    }
    /* Residual echo suppression: the preprocessor reads the canceller's
     * residual echo estimate (applied through the denoiser's gains). */
    if (vp->echo)
        speex_preprocess_ctl(vp->pp, SPEEX_PREPROCESS_SET_ECHO_STATE, vp->echo);
    vp->pp_in_place = c->denoise || c->agc;
    return 0;
}

int wzp_voice_proc_new(wzp_voice_proc **out, const wzp_voice_proc_config *cfg)
{
    wzp_voice_proc_config c;
    wzp_voice_proc_config_default(&c);
    if (cfg) {
        c.aec = cfg->aec;
        c.denoise = cfg->denoise;
        c.agc = cfg->agc;
        c.vad = cfg->vad;
        if (cfg->filter_ms)
            c.filter_ms = cfg->filter_ms;
        if (cfg->agc_level)
            c.agc_level = cfg->agc_level;
        if (cfg->far_queue)
            c.far_queue = cfg->far_queue;
    }
    if (!out || c.filter_ms < 10 || c.filter_ms > 2000 || c.agc_level < 0 || c.agc_level > 32767 ||
        c.far_queue < 1 || c.far_queue > FAR_MAX)
        return WZP_ERR_INVALID;
    wzp_voice_proc *vp = calloc(1, sizeof(*vp));
    if (!vp)
        return WZP_ERR_NOMEM;
    vp->cfg = c;
    vp->far_quiet = FAR_QUIET_MAX;
    int rc = 0;
    if (c.aec) {
        vp->far = calloc((size_t)c.far_queue * WZP_AUDIO_FRAME_SAMPLES, sizeof(int16_t));
        vp->echo = speex_echo_state_init(SUB, WZP_AUDIO_RATE / 1000 * c.filter_ms);
        if (!vp->far || !vp->echo) {
            rc = vp->far ? WZP_ERR_AUDIO : WZP_ERR_NOMEM;
            goto fail;
        }
        spx_int32_t rate = WZP_AUDIO_RATE;
        speex_echo_ctl(vp->echo, SPEEX_ECHO_SET_SAMPLING_RATE, &rate);
    }
    if ((rc = make_pp(vp)) < 0)
        goto fail;
    *out = vp;
    return 0;
fail:
    wzp_voice_proc_free(vp);
    return rc;
}

void wzp_voice_proc_free(wzp_voice_proc *vp)
{
    if (!vp)
        return;
    if (vp->pp)
        speex_preprocess_state_destroy(vp->pp);
    if (vp->echo)
        speex_echo_state_destroy(vp->echo);
    free(vp->far);
    free(vp);
}

void wzp_voice_proc_far(wzp_voice_proc *vp, const int16_t far[WZP_AUDIO_FRAME_SAMPLES])
{
    if (!vp->echo)
        return;
    vp->st.far_frames++;
    int q = vp->cfg.far_queue;
    if (vp->far_len == q) { /* oldest out: the newest is closest to the echo to come */
        vp->far_head = (vp->far_head + 1) % q;
        vp->far_len--;
        vp->st.far_dropped++;
    }
    int slot = (vp->far_head + vp->far_len) % q;
    memcpy(vp->far + (size_t)slot * WZP_AUDIO_FRAME_SAMPLES, far,
           WZP_AUDIO_FRAME_SAMPLES * sizeof(int16_t));
    vp->far_len++;
}

int wzp_voice_proc_near(wzp_voice_proc *vp, const int16_t mic[WZP_AUDIO_FRAME_SAMPLES],
                        int16_t out[WZP_AUDIO_FRAME_SAMPLES], bool *voice)
{
    bool v = !vp->cfg.vad;
    vp->st.frames++;
    if (vp->echo) {
        const int16_t *far = vp->zeros;
        if (vp->far_len > 0) {
            far = vp->far + (size_t)vp->far_head * WZP_AUDIO_FRAME_SAMPLES;
            vp->far_head = (vp->far_head + 1) % vp->cfg.far_queue;
            vp->far_len--;
        } else {
            vp->st.far_missing++;
        }
        double fe = 0;
        for (int i = 0; i < WZP_AUDIO_FRAME_SAMPLES; i++)
            fe += (double)far[i] * far[i];
        if (fe > FAR_ACTIVE_MS2 * WZP_AUDIO_FRAME_SAMPLES)
            vp->far_quiet = 0;
        else if (vp->far_quiet < FAR_QUIET_MAX)
            vp->far_quiet++;
        double want = vp->far_quiet * WZP_AUDIO_FRAME_MS <= vp->cfg.filter_ms ? 1.0 : 0.0;
        /* speex wants out distinct from mic: go through tmp. */
        for (int s = 0; s < SUBS; s++)
            speex_echo_cancellation(vp->echo, mic + s * SUB, far + s * SUB, vp->tmp + s * SUB);
        if (want == 1.0 && vp->aec_mix == 1.0) {
            memcpy(out, vp->tmp, sizeof(vp->tmp));
        } else {
            for (int i = 0; i < WZP_AUDIO_FRAME_SAMPLES; i++) {
                double m = vp->aec_mix + (want - vp->aec_mix) * (i + 1) / WZP_AUDIO_FRAME_SAMPLES;
                out[i] = (int16_t)lrint(m * vp->tmp[i] + (1 - m) * mic[i]);
            }
            vp->aec_mix = want;
        }
    } else if (out != mic) {
        memcpy(out, mic, WZP_AUDIO_FRAME_SAMPLES * sizeof(int16_t));
    }
    /* The gate's energy: after the canceller, before denoise. */
    double e = 1e-3; /* keeps the floor above zero on digital silence */
    for (int i = 0; i < WZP_AUDIO_FRAME_SAMPLES; i++)
        e += (double)out[i] * out[i] / WZP_AUDIO_FRAME_SAMPLES;
    vp->floor = vp->floor == 0 || e < vp->floor ? e : vp->floor * VAD_FLOOR_RISE;
    if (vp->pp) {
        /* VAD alone must not alter the signal: run it on a copy. */
        int16_t *buf = out;
        if (!vp->pp_in_place) {
            memcpy(vp->tmp, out, sizeof(vp->tmp));
            buf = vp->tmp;
        }
        bool any = false;
        for (int s = 0; s < SUBS; s++) {
            speex_preprocess_run(vp->pp, buf + s * SUB);
            spx_int32_t prob = 0;
            speex_preprocess_ctl(vp->pp, SPEEX_PREPROCESS_GET_PROB, &prob);
            vp->was_speech = prob > VAD_START || (vp->was_speech && prob > VAD_CONTINUE);
            any |= vp->was_speech;
        }
        if (vp->cfg.vad)
            v = any;
    }
    if (vp->cfg.vad)
        v = v && e > VAD_SNR * vp->floor;
    if (v && vp->cfg.vad)
        vp->st.voice_frames++;
    if (voice)
        *voice = v;
    return 0;
}

void wzp_voice_proc_reset(wzp_voice_proc *vp)
{
    if (vp->echo)
        speex_echo_state_reset(vp->echo);
    vp->far_head = vp->far_len = 0;
    vp->far_quiet = FAR_QUIET_MAX;
    vp->aec_mix = 0;
    vp->was_speech = false;
    vp->floor = 0;
    if (vp->pp) {
        /* The preprocessor has no reset: rebuild it (allocates; not for the
         * real-time thread). On failure the old state is kept. */
        SpeexPreprocessState *old = vp->pp;
        vp->pp = NULL;
        if (make_pp(vp) < 0)
            vp->pp = old;
        else
            speex_preprocess_state_destroy(old);
    }
}

void wzp_voice_proc_get_stats(const wzp_voice_proc *vp, wzp_voice_proc_stats *out)
{
    *out = vp->st;
}
