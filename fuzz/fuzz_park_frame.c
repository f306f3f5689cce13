/*
 * Park frames on arbitrary bytes: peek never reads out of bounds, and a frame
 * it accepts re-encodes (under a key) to bytes that verify under that key and
 * peek to the same header; a frame that verifies is exactly its re-encoding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/demux.h"
#include "wire/park_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t key[WZP_PARK_KEY_LEN] = {0x5a};
    wzp_park_frame f, g;
    bool verified = wzp_park_frame_verify(data, size, key);
    if (wzp_park_frame_peek(&f, data, size) < 0) {
        if (verified)
            abort();
        return 0;
    }
    if (!wzp_park_frame_is(data, size) || wzp_pkt_classify(data, size) != WZP_PKT_RELAY)
        abort();
    uint8_t out[WZP_PARK_FRAME_LEN];
    if (wzp_park_frame_encode(out, &f, key) < 0 || !wzp_park_frame_verify(out, sizeof(out), key))
        abort();
    if (wzp_park_frame_peek(&g, out, sizeof(out)) < 0 || memcmp(&f, &g, sizeof(f)) != 0)
        abort();
    if (verified && memcmp(out, data, sizeof(out)) != 0)
        abort();
    return 0;
}
