/*
 * Fuzzes the STUN decoder and the Binding responder with arbitrary datagrams:
 * no crash, no out-of-bounds read, and the responder never amplifies.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/addr.h"
#include "ice/stun_client.h"
#include "wire/stun.h"
#include "wire/stun_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wzp_stun_msg m;
    int rv = wzp_stun_decode(&m, data, size);
    if (rv == 0) {
        /* Decoded text must lie inside the input. */
        if (m.software && (m.software < data || m.software + m.software_len > data + size))
            abort();
        if (m.reason && (m.reason < data || m.reason + m.reason_len > data + size))
            abort();
        if (m.n_unknown > WZP_STUN_MAX_UNKNOWN || m.n_listed_unknown > WZP_STUN_MAX_UNKNOWN)
            abort();
    }

    static const uint8_t v4[4] = {192, 0, 2, 1};
    static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    wzp_addr from;
    for (int fam = 0; fam < 2; fam++) {
        if (fam == 0)
            wzp_addr_from_ip(&from, AF_INET, v4, 40000);
        else
            wzp_addr_from_ip(&from, AF_INET6, v6, 40000);
        uint8_t out[WZP_STUN_RESPONSE_MAX];
        int len = wzp_stun_respond(data, size, &from, out, sizeof(out));
        if (len > 0) {
            if ((size_t)len > size + WZP_STUN_RESPONSE_GROWTH)
                abort(); /* amplification */
            wzp_stun_msg r;
            if (wzp_stun_decode(&r, out, (size_t)len) != 0 || memcmp(r.tid, m.tid, 12) != 0)
                abort(); /* we must be able to read our own answers */
        } else if (rv == 0 && m.type == WZP_STUN_BINDING_REQUEST) {
            abort(); /* a valid Binding request always gets an answer */
        }
        /* The RFC 5780 responder (relay alternate sockets, OTHER-ADDRESS): same promises. */
        uint32_t change = 0;
        len = wzp_stun_respond_alt(data, size, &from, &from, &change, out, sizeof(out));
        if (len > 0 && ((size_t)len > size + WZP_STUN_RESPONSE_GROWTH ||
                        (change & ~(uint32_t)(WZP_STUN_CHANGE_IP | WZP_STUN_CHANGE_PORT))))
            abort();
    }

    /* A client transaction offered the datagram must not misbehave either. */
    wzp_stun_txn t;
    wzp_addr_from_ip(&from, AF_INET, v4, 3478);
    if (wzp_stun_txn_start(&t, NULL, &from, 0) == 0) {
        if (size >= 20)
            memcpy(t.tid, data + 8, 12); /* let fuzzed responses match */
        wzp_stun_txn_recv(&t, &from, data, size, 1);
    }
    return 0;
}
