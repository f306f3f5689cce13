/*
 * Fuzzes the client core's receive path (src/client/core.h): demultiplexing
 * by first byte, relay frame decoding, probe tag routing, DCID lookup of
 * "direct" QUIC packets and the control connection's QUIC input, with timers
 * and flushes in between; and a parked client's input: park frames (PONG,
 * WAKE) checked against the park's id, key, sequence numbers and the relay's
 * address.
 *
 * Input: a sequence of datagrams, each `flags len bytes[len]`; flags bit 0:
 * from the relay (else from a stranger), bit 1: arrived on the IPv6 socket,
 * bit 2: advance the clock by 50 ms first, bit 3: park first (park id
 * 0x01..0x08, key 32 x 0x5a, a ping every 100 ms), as if the relay offered it.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/identity.h>

#include "client/core.h"
#include "client/core_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static wzp_identity *id;

static void sink(void *user, int sock, const wzp_addr *to, const uint8_t *pkt, size_t len)
{
    (void)user;
    (void)sock;
    (void)to;
    (void)pkt;
    (void)len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!id && wzp_identity_generate(&id) != 0)
        abort();
    wzp_core_config cfg = {.id = id};
    wzp_addr_parse(&cfg.relay, "127.0.0.1:4433", false);
    wzp_addr_parse(&cfg.local[0], "127.0.0.1:5000", false);
    wzp_addr_parse(&cfg.local[1], "[::1]:5000", false);
    memset(cfg.relay_pin, 0x5a, sizeof(cfg.relay_pin));
    wzp_core *core;
    if (wzp_core_new(&core, &cfg) != 0)
        abort();
    wzp_ts now = 1000000000ull;
    wzp_core_start(core, now);
    wzp_core_flush(core, now, sink, NULL);
    wzp_addr stranger4, stranger6;
    wzp_addr_parse(&stranger4, "192.0.2.7:9999", false);
    wzp_addr_parse(&stranger6, "[2001:db8::7]:9999", false);
    size_t fed = 0;
    while (size >= 2) {
        uint8_t flags = data[0];
        size_t len = data[1];
        data += 2;
        size -= 2;
        if (len > size)
            len = size;
        if (flags & 4) {
            now += 50000000ull;
            wzp_core_handle_timer(core, now);
        }
        if (flags & 8) {
            static const uint8_t park_id[WZP_PARK_ID_LEN] = {1, 2, 3, 4, 5, 6, 7, 8};
            uint8_t key[WZP_PARK_KEY_LEN];
            memset(key, 0x5a, sizeof(key));
            wzp_core__park(core, park_id, key, 100, now);
            wzp_core_flush(core, now, sink, NULL);
        }
        int sock = (flags & 2) ? 1 : 0;
        const wzp_addr *from = (flags & 1) ? &cfg.relay : sock ? &stranger6 : &stranger4;
        wzp_core_feed(core, sock, from, data, len, now);
        wzp_core_flush(core, now, sink, NULL);
        fed++;
        data += len;
        size -= len;
    }
    wzp_core_stats n;
    wzp_core_get_stats(core, &n);
    uint64_t sum = n.rx_ctrl + n.rx_relay + n.rx_direct + n.rx_probe + n.rx_keepalive_ack +
                   n.rx_no_call + n.rx_malformed + n.rx_unknown + n.rx_park;
    if (sum != fed)
        abort(); /* every datagram lands in exactly one bucket */
    wzp_core_shutdown(core, now);
    wzp_core_flush(core, now, sink, NULL);
    wzp_core_free(core);
    return 0;
}
