/*
 * Relay frame decoder on arbitrary bytes: never reads out of bounds, and
 * every frame it accepts re-encodes to the same bytes (and the in-place
 * channel rewrite keeps the length).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/demux.h"
#include "wire/relay_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wzp_relay_frame f;
    if (wzp_relay_frame_decode(&f, data, size) < 0)
        return 0;
    if (wzp_pkt_classify(data, size) != WZP_PKT_RELAY)
        abort();
    uint8_t *out = malloc(size);
    if (!out)
        return 0;
    int n = wzp_relay_frame_encode(out, size, f.type, f.channel, f.payload, f.payload_len);
    if (n < 0 || (size_t)n != size || memcmp(out, data, size) != 0)
        abort();
    wzp_relay_frame_rewrite(out, f.type, f.channel ^ 0x5a5a5a5au ? f.channel ^ 0x5a5a5a5au : 1);
    wzp_relay_frame g;
    if (wzp_relay_frame_decode(&g, out, size) < 0 || g.payload_len != f.payload_len)
        abort();
    free(out);
    return 0;
}
