#include "wire/mac.h"

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <string.h>

#include <wzp/wzp.h>

int wzp_mac_trunc(const uint8_t *key, size_t keylen, const uint8_t *buf, size_t len, uint8_t *out,
                  size_t outlen)
{
    uint8_t full[32];
    if (outlen > sizeof(full) ||
        gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, keylen, buf, len, full) != 0)
        return WZP_ERR_INTERNAL;
    memcpy(out, full, outlen);
    return 0;
}
