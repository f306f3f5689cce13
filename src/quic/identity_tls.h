/* Identity internals the TLS glue needs: credentials and peer fingerprints. */
#ifndef WZP_QUIC_IDENTITY_TLS_H
#define WZP_QUIC_IDENTITY_TLS_H

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wzp/identity.h>

#include "quic/quic.h"

/* Installs the identity's certificate and key into cred (GnuTLS copies them). */
int wzp_identity_set_credentials(const wzp_identity *id, gnutls_certificate_credentials_t cred);

/* SHA-256 of the SubjectPublicKeyInfo of a DER certificate; WZP_ERR_MALFORMED
 * when it does not parse. */
int wzp_fingerprint_of_cert_der(const uint8_t *der, size_t len, uint8_t fp[WZP_FINGERPRINT_LEN]);
/* The identity for a TLS session: its certificate, the same key as a raw public key
 * (RFC 7250), and the private key; what a GnuTLS retrieve function hands out by the
 * negotiated certificate type. */
typedef struct wzp_identity_keys {
    gnutls_pcert_st x509, raw;
    bool have_x509, have_raw;
    /* An Ed25519 key signs through libsodium (TLS too: `key` is then an external key with
     * a libsodium callback), several times cheaper than GnuTLS's nettle here. */
    gnutls_privkey_t key;
    bool ed25519;
    uint8_t ed25519_sk[64];              /* libsodium's secret key: seed || public key */
    uint8_t spki[WZP_QUIC_AUTH_KEY_MAX]; /* DER SubjectPublicKeyInfo */
    size_t spki_len;
} wzp_identity_keys;
/* 0 or WZP_ERR_TLS. k must stay where it is until freed (the external key points at it). */
int wzp_identity_keys_new(const wzp_identity *id, wzp_identity_keys *k);
void wzp_identity_keys_free(wzp_identity_keys *k);
/* Signs msg with the identity key: Ed25519 (64 bytes) or ECDSA P-256 with SHA-256 (DER).
 * sig holds WZP_QUIC_AUTH_SIG_MAX bytes. 0 or WZP_ERR_TLS. */
int wzp_identity_keys_sign(const wzp_identity_keys *k, const uint8_t *msg, size_t len, uint8_t *sig,
                           size_t *sig_len);

/* The same fingerprint from a DER SubjectPublicKeyInfo (a raw public key, RFC 7250). */
int wzp_fingerprint_of_spki_der(const uint8_t *der, size_t len, uint8_t fp[WZP_FINGERPRINT_LEN]);

/* 32 bytes derived from the private key and `label` (HMAC-SHA256 keyed with
 * the key file's bytes): stable for one identity across restarts, distinct
 * per label, and revealing nothing about the key. 0 or WZP_ERR_INTERNAL. */
int wzp_identity_derive_secret(const wzp_identity *id, const char *label, uint8_t out[32]);
/* The label a relay derives its stateless reset secret with (same home: same tokens). */
#define WZP_RESET_SECRET_LABEL "wzp/1 stateless reset"
/* ... and its park keys (same home: its former parked clients told to register again). */
#define WZP_PARK_SECRET_LABEL "wzp/1 park keys"

#endif
