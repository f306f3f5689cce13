/*
 * Fuzzes the rtnetlink message walk (src/net/netmon.c wzp_netmon_relevant):
 * no read past the datagram, no endless loop, on any bytes.
 */
#include <stddef.h>
#include <stdint.h>

#include "net/netmon.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    (void)wzp_netmon_relevant(data, size);
    return 0;
}
