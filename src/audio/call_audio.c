/* The sound of one call on live devices: see call_audio.h. */
#include "audio/call_audio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audio/audio_io.h"
#include "audio/level.h"
#include "audio/voice_proc.h"

struct wzp_call_audio {
    wzp_audio_io *io;
    wzp_voice_proc *vp;
    bool capture, playback;
    wzp_level_meter in_level, out_level;
    wzp_volume volume;
};

void wzp_audio_config_default(wzp_audio_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->enabled = true;
    cfg->aec = cfg->denoise = cfg->agc = cfg->dtx = true;
}

int wzp_call_audio_new(wzp_call_audio **out, const wzp_audio_config *cfg, bool capture,
                       bool playback)
{
    if (!out || !cfg || (!capture && !playback))
        return WZP_ERR_INVALID;
    wzp_call_audio *ca = calloc(1, sizeof(*ca));
    if (!ca)
        return WZP_ERR_NOMEM;
    ca->capture = capture;
    ca->playback = playback;
    wzp_level_meter_init(&ca->in_level);
    wzp_level_meter_init(&ca->out_level);
    wzp_volume_init(&ca->volume);
    wzp_audio_io_config ic;
    wzp_audio_io_config_default(&ic);
    ic.backend = cfg->backend;
    ic.input = cfg->input;
    ic.output = cfg->output;
    ic.capture = capture;
    ic.playback = playback;
    int rc = wzp_audio_io_new(&ca->io, &ic);
    if (rc == 0 && capture) {
        wzp_voice_proc_config vc;
        wzp_voice_proc_config_default(&vc);
        vc.aec = cfg->aec && playback; /* no speaker of ours, no echo of it */
        vc.denoise = cfg->denoise;
        vc.agc = cfg->agc;
        vc.vad = cfg->dtx;
        rc = wzp_voice_proc_new(&ca->vp, &vc);
    }
    if (rc < 0) {
        wzp_call_audio_free(ca);
        return rc;
    }
    *out = ca;
    return 0;
}

void wzp_call_audio_free(wzp_call_audio *ca)
{
    if (!ca)
        return;
    wzp_audio_io_free(ca->io);
    wzp_voice_proc_free(ca->vp);
    free(ca);
}

bool wzp_call_audio_capture(wzp_call_audio *ca, int16_t pcm[WZP_AUDIO_FRAME_SAMPLES], wzp_ts now)
{
    bool voice = true;
    if (!ca->capture) {
        memset(pcm, 0, WZP_AUDIO_FRAME_SAMPLES * sizeof(int16_t));
        return false;
    }
    wzp_audio_io_capture(ca->io, pcm, now);
    wzp_level_meter_feed(&ca->in_level, pcm, WZP_AUDIO_FRAME_SAMPLES, WZP_AUDIO_FRAME_MS);
    wzp_voice_proc_near(ca->vp, pcm, pcm, &voice);
    return voice;
}

void wzp_call_audio_play(wzp_call_audio *ca, const int16_t pcm[WZP_AUDIO_FRAME_SAMPLES])
{
    if (!ca->playback)
        return;
    /* The canceller's reference is what the speaker plays: after the volume. */
    int16_t out[WZP_AUDIO_FRAME_SAMPLES];
    wzp_volume_apply(&ca->volume, pcm, out, WZP_AUDIO_FRAME_SAMPLES);
    wzp_level_meter_feed(&ca->out_level, out, WZP_AUDIO_FRAME_SAMPLES, WZP_AUDIO_FRAME_MS);
    if (ca->vp)
        wzp_voice_proc_far(ca->vp, out);
    wzp_audio_io_play(ca->io, out);
}

void wzp_call_audio_set_volume(wzp_call_audio *ca, unsigned pct)
{
    wzp_volume_set(&ca->volume, pct);
}

void wzp_call_audio_get_stats(wzp_call_audio *ca, wzp_audio_stats *out)
{
    memset(out, 0, sizeof(*out));
    wzp_audio_io_stats st;
    wzp_audio_io_get_stats(ca->io, &st);
    out->live = true;
    snprintf(out->backend, sizeof(out->backend), "%s", st.backend);
    snprintf(out->input, sizeof(out->input), "%s", st.input);
    snprintf(out->output, sizeof(out->output), "%s", st.output);
    out->capture_overruns = st.capture_overruns;
    out->capture_underruns = st.capture_underruns;
    out->playback_overruns = st.playback_overruns;
    out->playback_underruns = st.playback_underruns;
    out->device_losses = st.device_losses;
    out->device_stalls = st.stalls;
    out->capture_drift_ppm = st.capture_drift_ppm;
    out->playback_drift_ppm = st.playback_drift_ppm;
    out->input_level_db = ca->capture ? ca->in_level.db : WZP_LEVEL_FLOOR_DB;
    out->output_level_db = ca->playback ? ca->out_level.db : WZP_LEVEL_FLOOR_DB;
    out->volume_pct = ca->volume.pct;
    if (ca->vp) {
        wzp_voice_proc_stats vs;
        wzp_voice_proc_get_stats(ca->vp, &vs);
        out->voice_frames = vs.voice_frames;
    }
}
