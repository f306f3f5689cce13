/*
 * Fuzzes what a peer presents to prove its key, as the pin check reads it
 * (src/quic/identity.c): a certificate (DER) and a raw public key (DER
 * SubjectPublicKeyInfo); and as the relay checks a client's Auth
 * (src/quic/auth.c): the input's first byte is the key's length, the key,
 * then the signature, over a fixed binding. Beyond "no crash": the pin check
 * answers 0 or WZP_ERR_MALFORMED and the same bytes always give the same
 * fingerprint; Auth answers 0, WZP_ERR_MALFORMED or WZP_ERR_IDENTITY, and a
 * key it accepts has the fingerprint the pin check gives the same bytes.
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
    if (size == 0 || data[0] > size - 1)
        return 0;
    static const uint8_t binding[WZP_QUIC_AUTH_BINDING] = {0};
    const uint8_t *key = data + 1, *sig = key + data[0];
    size_t key_len = data[0], sig_len = size - 1 - key_len;
    uint8_t fp[WZP_FINGERPRINT_LEN], pin[WZP_FINGERPRINT_LEN];
    const char *why = NULL;
    int rc = wzp_quic_auth_verify(binding, key, key_len, sig, sig_len, fp, &why);
    if (rc != 0 && (!why || (rc != WZP_ERR_MALFORMED && rc != WZP_ERR_IDENTITY)))
        abort();
    if (rc == 0 &&
        (wzp_fingerprint_of_spki_der(key, key_len, pin) != 0 || memcmp(fp, pin, sizeof(fp)) != 0))
        abort();
    return 0;
}
