/*
 * Fuzzes the relay-to-relay message decoder (src/relay/cluster_msg.c): what
 * a Redis server hands a relay is untrusted. The input is tried as it is (the
 * tag check) and again with a valid tag under the fuzzer's key appended, so
 * the layout parser and the signal codec behind it see every input. A message
 * that parses must survive encode -> decode unchanged.
 */
#include <gnutls/crypto.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "relay/cluster_msg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const wzp_cluster_key KEY = {.k = "fuzz-cluster-key-0123456789abcd", .len = 32};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t buf[WZP_CLUSTER_MAX_SIZE + 64], again[WZP_CLUSTER_MAX_SIZE + 64];
    static const uint8_t self[WZP_CLUSTER_ID_LEN] = {0};
    wzp_cluster_msg m, m2;
    wzp_cluster_msg_decode(data, size, &KEY, self, 0, &m);
    if (size > WZP_CLUSTER_MAX_SIZE - 32)
        return 0;
    memcpy(buf, data, size);
    if (gnutls_hmac_fast(GNUTLS_MAC_SHA256, KEY.k, KEY.len, buf, size, buf + size) != 0)
        abort();
    int rv = wzp_cluster_msg_decode(buf, size + 32, &KEY, self, 0, &m);
    if (rv == WZP_ERR_PROTOCOL)
        abort(); /* the tag is right */
    if (rv != 0 && rv != WZP_ERR_REJECTED)
        return 0;
    /* Parsed (maybe not for us, or stale): the same message again, for its receiver. */
    int n = wzp_cluster_msg_encode(&m, &KEY, again, sizeof(again));
    if (n < 0)
        abort();
    if (wzp_cluster_msg_decode(again, (size_t)n, &KEY, m.to, m.ts_ms, &m2) != 0 ||
        m2.kind != m.kind || m2.link_chan != m.link_chan || strcmp(m2.alias, m.alias) != 0 ||
        memcmp(m2.call_id, m.call_id, sizeof(m.call_id)) != 0 || m2.sig.type != m.sig.type)
        abort();
    return 0;
}
