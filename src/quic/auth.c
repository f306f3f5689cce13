/* Client authentication bound to the TLS session (quic.h, "Client authentication"): the
 * client's proof, and the relay's check with libsodium (Ed25519) or GnuTLS (P-256). */
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <limits.h>
#include <sodium.h>
#include <string.h>

#include "quic/identity_tls.h"
#include "quic/quic_int.h"

/* The one DER encoding of an Ed25519 SubjectPublicKeyInfo (RFC 8410): this prefix and the
 * 32-byte key. GnuTLS exports exactly this, so its SHA-256 is the certificate's pin. */
static const uint8_t ed25519_spki_prefix[12] = {0x30, 0x2a, 0x30, 0x05, 0x06, 0x03,
                                                0x2b, 0x65, 0x70, 0x03, 0x21, 0x00};
#define ED25519_SPKI_LEN (sizeof(ed25519_spki_prefix) + crypto_sign_PUBLICKEYBYTES)

/* What is signed: the context string, then the binding. */
static size_t signed_msg(const uint8_t binding[WZP_QUIC_AUTH_BINDING],
                         uint8_t out[sizeof(WZP_QUIC_AUTH_CONTEXT) - 1 + WZP_QUIC_AUTH_BINDING])
{
    size_t n = sizeof(WZP_QUIC_AUTH_CONTEXT) - 1;
    memcpy(out, WZP_QUIC_AUTH_CONTEXT, n);
    memcpy(out + n, binding, WZP_QUIC_AUTH_BINDING);
    return n + WZP_QUIC_AUTH_BINDING;
}

int wzp_quic_conn_auth_binding(wzp_quic_conn *c, uint8_t out[WZP_QUIC_AUTH_BINDING])
{
    return wzp_quic_conn_export(c, WZP_QUIC_AUTH_LABEL, NULL, 0, out, WZP_QUIC_AUTH_BINDING);
}

int wzp_quic_conn_auth_proof(wzp_quic_conn *c, uint8_t key[WZP_QUIC_AUTH_KEY_MAX], size_t *key_len,
                             uint8_t sig[WZP_QUIC_AUTH_SIG_MAX], size_t *sig_len)
{
    uint8_t binding[WZP_QUIC_AUTH_BINDING];
    uint8_t msg[sizeof(WZP_QUIC_AUTH_CONTEXT) - 1 + WZP_QUIC_AUTH_BINDING];
    if (!c || !key || !key_len || !sig || !sig_len)
        return WZP_ERR_INVALID;
    int rc = wzp_quic_conn_auth_binding(c, binding);
    if (rc < 0)
        return rc;
    const wzp_identity_keys *k = &c->ep->keys;
    size_t msg_len = signed_msg(binding, msg);
    if ((rc = wzp_identity_keys_sign(k, msg, msg_len, sig, sig_len)) < 0)
        return rc;
    memcpy(key, k->spki, k->spki_len);
    *key_len = k->spki_len;
    return 0;
}

static int refuse(const char **why, const char *text, int rc)
{
    if (why)
        *why = text;
    return rc;
}

/* An ECDSA P-256 key, through GnuTLS (older identities; not worth a second library). */
static int verify_p256(const uint8_t *key, size_t key_len, const uint8_t *msg, size_t msg_len,
                       const uint8_t *sig, size_t sig_len, const char **why)
{
    gnutls_pubkey_t pub;
    if (gnutls_pubkey_init(&pub) < 0)
        return refuse(why, "out of memory", WZP_ERR_NOMEM);
    gnutls_datum_t k = {(unsigned char *)key, (unsigned)key_len};
    gnutls_datum_t m = {(unsigned char *)msg, (unsigned)msg_len};
    gnutls_datum_t s = {(unsigned char *)sig, (unsigned)sig_len};
    unsigned bits = 0;
    int rc;
    if (gnutls_pubkey_import(pub, &k, GNUTLS_X509_FMT_DER) != 0)
        rc = refuse(why, "public key does not parse", WZP_ERR_MALFORMED);
    else if (gnutls_pubkey_get_pk_algorithm(pub, &bits) != GNUTLS_PK_ECDSA || bits != 256)
        rc = refuse(why, "public key neither Ed25519 nor P-256", WZP_ERR_MALFORMED);
    else if (gnutls_pubkey_verify_data2(pub, GNUTLS_SIGN_ECDSA_SHA256, 0, &m, &s) < 0)
        rc = refuse(why, "signature does not verify", WZP_ERR_IDENTITY);
    else
        rc = 0;
    gnutls_pubkey_deinit(pub);
    return rc;
}

int wzp_quic_auth_verify(const uint8_t binding[WZP_QUIC_AUTH_BINDING], const uint8_t *key,
                         size_t key_len, const uint8_t *sig, size_t sig_len,
                         uint8_t fp[WZP_FINGERPRINT_LEN], const char **why)
{
    uint8_t msg[sizeof(WZP_QUIC_AUTH_CONTEXT) - 1 + WZP_QUIC_AUTH_BINDING];
    size_t msg_len = signed_msg(binding, msg);
    if (!key || !sig || key_len == 0 || key_len > WZP_QUIC_AUTH_KEY_MAX ||
        sig_len > WZP_QUIC_AUTH_SIG_MAX)
        return refuse(why, "public key or signature missing or too long", WZP_ERR_MALFORMED);
    if (key_len == ED25519_SPKI_LEN &&
        memcmp(key, ed25519_spki_prefix, sizeof(ed25519_spki_prefix)) == 0) {
        if (sodium_init() < 0)
            return refuse(why, "libsodium unavailable", WZP_ERR_INTERNAL);
        if (sig_len != crypto_sign_BYTES ||
            crypto_sign_verify_detached(sig, msg, msg_len, key + sizeof(ed25519_spki_prefix)) != 0)
            return refuse(why, "signature does not verify", WZP_ERR_IDENTITY);
        /* The pin is the SHA-256 of exactly these bytes (GnuTLS's own encoding). */
        crypto_hash_sha256(fp, key, key_len);
        return 0;
    }
    int rc = verify_p256(key, key_len, msg, msg_len, sig, sig_len, why);
    if (rc == 0 && wzp_fingerprint_of_spki_der(key, key_len, fp) != 0)
        rc = refuse(why, "public key does not parse", WZP_ERR_MALFORMED);
    return rc;
}
