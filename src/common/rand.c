#include "common/rand.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stdlib.h>

#include "common/log.h"

void wzp_random(void *buf, size_t len)
{
    if (gnutls_rnd(GNUTLS_RND_KEY, buf, len) != 0) {
        /* Continuing without randomness would make ids guessable: stop instead. */
        WZP_ERROR("random generator failed");
        abort();
    }
}

void wzp_random_nonce(void *buf, size_t len)
{
    if (gnutls_rnd(GNUTLS_RND_NONCE, buf, len) != 0) {
        WZP_ERROR("random generator failed");
        abort();
    }
}

uint64_t wzp_random_u64(void)
{
    uint64_t v;
    wzp_random_nonce(&v, sizeof(v));
    return v;
}
