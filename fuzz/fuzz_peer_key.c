/*
 * Fuzzes what a peer presents in the TLS handshake, as the pin check reads it
 * (src/quic/identity.c): a certificate (DER) and a raw public key (DER
 * SubjectPublicKeyInfo). Beyond "no crash": each answers 0 or
 * WZP_ERR_MALFORMED, and the same bytes always give the same fingerprint.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quic/identity_tls.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int (*fp_of)(const uint8_t *, size_t, uint8_t *), const uint8_t *data,
                  size_t size)
{
    uint8_t a[WZP_FINGERPRINT_LEN], b[WZP_FINGERPRINT_LEN];
    int rc = fp_of(data, size, a);
    if (rc != 0 && rc != WZP_ERR_MALFORMED)
        abort();
    if (rc == 0 && (fp_of(data, size, b) != 0 || memcmp(a, b, sizeof(a)) != 0))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    check(wzp_fingerprint_of_cert_der, data, size);
    check(wzp_fingerprint_of_spki_der, data, size);
    return 0;
}
