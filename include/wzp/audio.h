/*
 * Live audio: the microphone and speaker a call uses when the application
 * supplies no PCM callbacks of its own, and the voice processing on the way
 * (echo cancellation, noise suppression, automatic gain, voice activity with
 * discontinuous transmission). Backends: PulseAudio (which also serves
 * PipeWire desktops through pipewire-pulse) when a sound server answers, ALSA
 * otherwise.
 */
#ifndef WZP_AUDIO_H
#define WZP_AUDIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wzp/wzp.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WZP_AUDIO_DEVICE_NAME_MAX 160
#define WZP_VOLUME_MAX            200 /* percent: wzp_call_set_volume */

typedef struct wzp_audio_config {
    /* Open the sound devices for calls: the microphone when the client has no pcm_source
       callback, the speaker when it has no pcm_sink. */
    bool enabled;
    const char *backend; /* NULL or "auto", "pulse", "alsa" */
    const char *input;   /* device name as wzp_audio_list_devices gives it; NULL = default */
    const char *output;
    /* Voice processing on the microphone; wzp_audio_config_default turns each on. */
    bool aec;     /* acoustic echo cancellation */
    bool denoise; /* noise suppression */
    bool agc;     /* automatic gain control */
    bool dtx;     /* send nothing while nobody speaks; the peer hears comfort noise */
} wzp_audio_config;

/* Devices enabled, default backend and devices, every processing stage on. */
WZP_API void wzp_audio_config_default(wzp_audio_config *cfg);

typedef struct wzp_audio_device {
    char name[WZP_AUDIO_DEVICE_NAME_MAX]; /* what wzp_audio_config.input/output take */
    char description[WZP_AUDIO_DEVICE_NAME_MAX];
    bool input; /* a microphone (or a monitor of an output); else a speaker */
    bool is_default;
} wzp_audio_device;

/* The devices of a backend (NULL or "auto": the one a call would use). Writes at most cap and
 * returns how many there are, or WZP_ERR_DEVICE when no backend is usable. *backend_used (if
 * not NULL) is set to the backend's name. */
WZP_API int wzp_audio_list_devices(const char *backend, wzp_audio_device *out, size_t cap,
                                   const char **backend_used);

typedef struct wzp_audio_stats {
    bool live;                             /* this call uses sound devices */
    char backend[16];                      /* "pulse", "alsa" */
    char input[WZP_AUDIO_DEVICE_NAME_MAX]; /* streaming now; "" while opening or lost */
    char output[WZP_AUDIO_DEVICE_NAME_MAX];
    uint64_t capture_overruns;   /* microphone frames dropped (the call fell behind) */
    uint64_t capture_underruns;  /* call ticks short of microphone audio */
    uint64_t playback_overruns;  /* frames dropped before the speaker */
    uint64_t playback_underruns; /* speaker periods short of audio (silence played) */
    uint64_t device_losses;      /* devices that failed mid-call (replaced by the default) */
    uint64_t device_stalls;      /* device reads/writes that hung (queued audio dropped) */
    double capture_drift_ppm;    /* microphone clock vs the call's clock */
    double playback_drift_ppm;   /* the call's clock vs the speaker's */
    uint64_t voice_frames;       /* microphone frames the voice detector called speech */
    /* Levels now, dBFS (-90 for silence), falling 20 dB/s after a peak: the microphone as
     * captured (before processing, so it shows while muted too) and the speaker as played
     * (after the volume). */
    double input_level_db, output_level_db;
    unsigned volume_pct; /* the speaker's volume, wzp_call_set_volume */
} wzp_audio_stats;

/* A phone's rings on the speaker, for the time before a call has sound of its own. */
typedef enum wzp_ring_kind {
    WZP_RING_INCOMING = 0, /* a call comes in: the callee's phone rings */
    WZP_RING_BACK = 1,     /* the caller hears that the other phone rings */
} wzp_ring_kind;

typedef struct wzp_ringer wzp_ringer;

/* Starts ringing on cfg's output device (cfg->output or the default; cfg->backend) from a thread
 * of its own, at volume_pct (100: -12 dBFS peaks; up to WZP_VOLUME_MAX), until wzp_ringer_stop.
 * Returns at once: the device opens in the background. WZP_ERR_DEVICE when no sound backend is
 * usable, WZP_ERR_INVALID, WZP_ERR_NOMEM; *out set only on success. */
WZP_API int wzp_ringer_start(wzp_ringer **out, const wzp_audio_config *cfg, wzp_ring_kind kind,
                             unsigned volume_pct);
/* Stops the ring, closes the device and frees r (NULL: nothing). */
WZP_API void wzp_ringer_stop(wzp_ringer *r);

#ifdef __cplusplus
}
#endif

#endif
