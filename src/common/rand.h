/* Randomness: cryptographic for ids and keys, via GnuTLS's generator. */
#ifndef WZP_COMMON_RAND_H
#define WZP_COMMON_RAND_H

#include <stddef.h>
#include <stdint.h>

/* Unpredictable bytes (call ids, keys, transaction ids). Aborts only if the OS RNG fails. */
void wzp_random(void *buf, size_t len);
/* Unique but not necessarily secret bytes (nonces, connection ids). Cheaper. */
void wzp_random_nonce(void *buf, size_t len);
uint64_t wzp_random_u64(void);

#endif
