/*
 * Fuzzes the signaling decoder. Beyond "no crash, no leak": whatever decodes
 * must re-encode (the decoder only accepts what the encoder can produce) and
 * decode again to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/signal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t a[WZP_SIG_MAX_SIZE], b[WZP_SIG_MAX_SIZE];
    wzp_sig_msg m, m2;
    if (wzp_sig_decode(data, size, &m) != 0)
        return 0;
    int n = wzp_sig_encode(&m, a, sizeof(a));
    if (n <= 0)
        abort();
    if (wzp_sig_decode(a, (size_t)n, &m2) != 0)
        abort();
    int n2 = wzp_sig_encode(&m2, b, sizeof(b));
    if (n2 != n || memcmp(a, b, (size_t)n) != 0)
        abort();
    return 0;
}
