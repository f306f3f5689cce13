#include "audio/backend.h"

#include <string.h>

const wzp_audio_backend *wzp_audio_backend_pick(const char *name)
{
    if (name && !strcmp(name, "pulse"))
        return &wzp_audio_backend_pulse;
    if (name && !strcmp(name, "alsa"))
        return &wzp_audio_backend_alsa;
    if (name && name[0] && strcmp(name, "auto"))
        return NULL;
    if (wzp_audio_backend_pulse.available())
        return &wzp_audio_backend_pulse;
    if (wzp_audio_backend_alsa.available())
        return &wzp_audio_backend_alsa;
    return NULL;
}
