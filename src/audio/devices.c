/* Device listing for the public API (wzp devices): the backend's list, in public form. */
#include <stdlib.h>
#include <string.h>

#include <wzp/audio.h>

#include "audio/backend.h"

#define LIST_MAX 256

int wzp_audio_list_devices(const char *backend, wzp_audio_device *out, size_t cap,
                           const char **backend_used)
{
    if (cap && !out)
        return WZP_ERR_INVALID;
    const wzp_audio_backend *be = wzp_audio_backend_pick(backend);
    if (!be)
        return WZP_ERR_DEVICE;
    if (backend_used)
        *backend_used = be->name;
    wzp_audio_device_info *info = calloc(LIST_MAX, sizeof(*info));
    if (!info)
        return WZP_ERR_NOMEM;
    int n = be->list(info, LIST_MAX);
    for (int i = 0; i < n && i < LIST_MAX && (size_t)i < cap; i++) {
        memset(&out[i], 0, sizeof(out[i]));
        memcpy(out[i].name, info[i].name, sizeof(out[i].name));
        memcpy(out[i].description, info[i].description, sizeof(out[i].description));
        out[i].name[sizeof(out[i].name) - 1] = out[i].description[sizeof(out[i].description) - 1] =
            '\0';
        out[i].input = info[i].dir == WZP_AUDIO_CAPTURE;
        out[i].is_default = info[i].is_default;
    }
    free(info);
    return n;
}
