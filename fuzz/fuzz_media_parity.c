/*
 * The parity payload (src/wire/media_parity.h) from the network: whatever
 * parses must lie inside the input and re-encode to exactly the input.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/media_parity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wzp_media_parity p;
    if (wzp_media_parity_decode(&p, data, size) != 0)
        return 0;
    if (p.parity < data || p.parity + p.parity_len > data + size || p.primary < data ||
        p.primary + p.primary_len != data + size)
        abort();
    static uint8_t out[65536 * 2];
    int n = wzp_media_parity_encode(&p, out, sizeof(out));
    if (n != (int)size || memcmp(out, data, size) != 0)
        abort();
    return 0;
}
