/*
 * The relay TCP stream's record parser (src/wire/tcp_frame.h) on arbitrary
 * bytes: never reads or writes out of bounds, never returns a record over
 * WZP_TCP_FRAME_MAX, and how the stream is cut into reads does not change the
 * records it yields nor where it stops with an error. The first byte picks
 * the read size for the second pass.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/tcp_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Parses the stream in reads of `chunk` bytes; the records concatenated
 * (length-prefixed) into out. Returns the error, or 0 at the end of the input. */
static int parse(const uint8_t *data, size_t size, size_t chunk, uint8_t *out, size_t *outlen)
{
    static wzp_tcp_deframer d;
    wzp_tcp_deframer_init(&d);
    *outlen = 0;
    for (size_t off = 0; off < size;) {
        size_t n = size - off < chunk ? size - off : chunk;
        size_t pos = 0;
        while (pos < n) {
            size_t used;
            const uint8_t *rec;
            size_t len;
            int r = wzp_tcp_deframe(&d, data + off + pos, n - pos, &used, &rec, &len);
            if (used > n - pos || (r == 0 && used != n - pos)) /* 0: every byte taken */
                abort();
            pos += used;
            if (r < 0)
                return r;
            if (r == 1) {
                if (len == 0 || len > WZP_TCP_FRAME_MAX)
                    abort();
                uint8_t hdr[WZP_TCP_FRAME_HDR];
                if (wzp_tcp_frame_header(hdr, len) != 0)
                    abort();
                memcpy(out + *outlen, hdr, sizeof(hdr));
                memcpy(out + *outlen + sizeof(hdr), rec, len);
                *outlen += sizeof(hdr) + len;
            }
        }
        off += n;
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t chunk = data[0] % 17 + 1;
    data++;
    size--;
    /* Records out are never longer than the stream in. */
    uint8_t *a = malloc(size + 1), *b = malloc(size + 1);
    if (!a || !b) {
        free(a);
        free(b);
        return 0;
    }
    size_t alen, blen;
    int ra = parse(data, size, size ? size : 1, a, &alen);
    int rb = parse(data, size, chunk, b, &blen);
    if (ra != rb || alen != blen || memcmp(a, b, alen) != 0)
        abort();
    free(a);
    free(b);
    return 0;
}
