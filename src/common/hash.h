/* Keyed hashing for tables whose keys an attacker may influence. */
#ifndef WZP_COMMON_HASH_H
#define WZP_COMMON_HASH_H

#include <stddef.h>
#include <stdint.h>

/* SipHash-1-3 keyed by seed (expanded to 128 bits): cheap and flood-resistant. */
uint64_t wzp_hash_bytes(const void *data, size_t len, uint64_t seed);

#endif
