/*
 * Fuzzes the call-control decoder (bytes from the peer, after decryption).
 * Whatever decodes must re-encode and decode again to the same message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wire/call_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t buf[WZP_CALL_MSG_MAX_SIZE];
    wzp_call_msg m, m2;
    if (wzp_call_msg_decode(data, size, &m) != 0)
        return 0;
    int n = wzp_call_msg_encode(&m, buf, sizeof(buf));
    if (n < 0)
        abort();
    if (wzp_call_msg_decode(buf, (size_t)n, &m2) != 0 || memcmp(&m, &m2, sizeof(m)) != 0)
        abort();
    return 0;
}
