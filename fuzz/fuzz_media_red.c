/*
 * The redundancy payload (src/wire/media_red.h) from the network: whatever
 * parses must lie inside the input and re-encode to exactly the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/media_frame.h"
#include "wire/media_red.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wzp_media_red r;
    if (wzp_media_red_decode(&r, data, size) != 0)
        return 0;
    for (unsigned i = 0; i < r.count; i++)
        if (r.block[i].data < data || r.block[i].data + r.block[i].len > data + size)
            abort();
    if (r.primary < data || r.primary + r.primary_len != data + size)
        abort();
    static uint8_t out[65536 * 4];
    int n = wzp_media_red_encode(&r, out, sizeof(out));
    if (n != (int)size || memcmp(out, data, size) != 0)
        abort();
    return 0;
}
