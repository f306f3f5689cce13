/*
 * Sound device backends: PulseAudio (also PipeWire desktops, through
 * pipewire-pulse) and ALSA, behind one table of functions.
 *
 * A stream is one direction of one device, always 48 kHz mono signed 16-bit
 * as the rest of wzp sees it; the backend converts whatever the device
 * really takes (rate, format, channels) itself. read/write block the calling
 * thread (the device thread of src/audio/audio_io.c, never the event loop)
 * for at most about one period plus the device's latency, and never longer
 * than WZP_AUDIO_IO_TIMEOUT_MS: a device that stops moving gives
 * WZP_ERR_TIMEOUT, a device that vanished (unplugged, its sink unloaded, the
 * sound server gone) gives WZP_ERR_DEVICE, so the caller can reopen the
 * default device. A device that never blocks (ALSA's file/null plugins) may
 * return at once: pacing is the caller's job.
 *
 * Only what a backend must know lives here; choosing a backend ("auto":
 * PulseAudio when a sound server answers, else ALSA) is backend.c.
 */
#ifndef WZP_AUDIO_BACKEND_H
#define WZP_AUDIO_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WZP_AUDIO_IO_TIMEOUT_MS 500
#define WZP_AUDIO_NAME_MAX      160

typedef enum wzp_audio_dir {
    WZP_AUDIO_CAPTURE = 0,
    WZP_AUDIO_PLAYBACK = 1,
} wzp_audio_dir;

typedef struct wzp_audio_device_info {
    char name[WZP_AUDIO_NAME_MAX];        /* what --input/--output accept */
    char description[WZP_AUDIO_NAME_MAX]; /* for people */
    wzp_audio_dir dir;
    bool is_default;
} wzp_audio_device_info;

typedef struct wzp_audio_stream_config {
    wzp_audio_dir dir;
    const char *device;      /* NULL or "" = the backend's default device */
    unsigned period_samples; /* samples per read/write at 48 kHz; 0 = 480 (10 ms) */
    unsigned latency_ms;     /* device buffer to ask for; 0 = 20 ms */
    const char *app_name;    /* shown by sound servers; NULL = "wzp" */
} wzp_audio_stream_config;

typedef struct wzp_audio_stream wzp_audio_stream; /* backend-defined */

typedef struct wzp_audio_backend {
    const char *name; /* "pulse", "alsa" */
    /* Cheap check that the backend can work here now (a sound server answers; ALSA has a
       configuration that names at least one PCM). */
    bool (*available)(void);
    /* Devices of both directions, at most cap written; returns how many exist (may exceed cap)
       or a negative wzp_error. */
    int (*list)(wzp_audio_device_info *out, size_t cap);
    /* 0 and *out set, or WZP_ERR_DEVICE (no such device / cannot open), WZP_ERR_INVALID,
       WZP_ERR_NOMEM. */
    int (*open)(wzp_audio_stream **out, const wzp_audio_stream_config *cfg);
    /* Exactly n samples (n <= 4800): returns n, or WZP_ERR_DEVICE / WZP_ERR_TIMEOUT. After
       WZP_ERR_DEVICE the stream is only good for close; after a timeout it may be retried. */
    int (*read)(wzp_audio_stream *s, int16_t *pcm, size_t n);
    int (*write)(wzp_audio_stream *s, const int16_t *pcm, size_t n);
    /* Samples queued in the device (written, not yet played; or captured, not yet read), as
       best the backend knows; 0 if unknown. For the mouth-to-ear figures, not for control. */
    unsigned (*delay)(wzp_audio_stream *s);
    /* The device actually opened (the default resolved to its name when known). */
    const char *(*device_name)(wzp_audio_stream *s);
    void (*close)(wzp_audio_stream *s);
} wzp_audio_backend;

extern const wzp_audio_backend wzp_audio_backend_pulse;
extern const wzp_audio_backend wzp_audio_backend_alsa;

/* "pulse", "alsa", or NULL / "" / "auto": PulseAudio if available(), else ALSA if available(),
 * else NULL. A named backend is returned even if not available (its open will say why). NULL
 * for an unknown name. */
const wzp_audio_backend *wzp_audio_backend_pick(const char *name);

#endif
