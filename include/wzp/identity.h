/*
 * Identities: a long-lived Ed25519 key pair (identities made before it keep
 * their ECDSA P-256 key; both kinds authenticate each other) and a self-signed
 * X.509 certificate over it, stored in a state directory. Peers know each
 * other by the key's fingerprint and pin it during the TLS handshake.
 *
 * Fingerprint = SHA-256 of the certificate's SubjectPublicKeyInfo, so
 * re-issuing the certificate for the same key keeps the fingerprint.
 * Text form: lowercase RFC 4648 base32 without padding (52 characters) in
 * groups of 4 joined by '-', e.g. "abcd-efgh-...-xyza" (64 characters).
 *
 * Files in the directory: identity.key (PKCS#8 PEM, mode 0600) and
 * identity.crt (PEM). Both are written atomically (temp file + rename).
 */
#ifndef WZP_IDENTITY_H
#define WZP_IDENTITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wzp/wzp.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WZP_FINGERPRINT_LEN    32 /* bytes */
#define WZP_FINGERPRINT_STRLEN 65 /* text form, NUL included */

typedef struct wzp_identity wzp_identity;

/*
 * The default state directory: $WZP_HOME if set and non-empty, else
 * $HOME/.config/wzp. Writes it into buf; WZP_ERR_INVALID if neither
 * variable is set, WZP_ERR_TOO_BIG if buf is too small.
 */
WZP_API int wzp_identity_default_dir(char *buf, size_t len);

/*
 * Loads the identity from dir, creating the directory (mode 0700, missing
 * parents too) and a new key pair only when dir holds neither file. If the
 * key exists but the certificate is missing, unreadable, expired or for
 * another key, a new certificate is issued for the same key (the fingerprint
 * is unchanged). A certificate without its key is refused (WZP_ERR_IDENTITY):
 * a new key would silently replace the identity peers know.
 * *created (may be NULL) tells whether a new key was generated.
 * Returns 0, WZP_ERR_IO (filesystem) or WZP_ERR_IDENTITY (bad or missing key).
 */
WZP_API int wzp_identity_load_or_create(const char *dir, wzp_identity **out, bool *created);

/*
 * The check behind that refusal, for callers that want to explain it: 0 when
 * dir holds the key, neither file, or does not exist; WZP_ERR_IDENTITY when
 * identity.crt is there without identity.key, with a one-line reason naming
 * the missing file in why (may be NULL).
 */
WZP_API int wzp_identity_check_dir(const char *dir, char *why, size_t len);

/* Like wzp_identity_load_or_create but never generates a key:
 * WZP_ERR_NOT_FOUND when dir holds neither file, WZP_ERR_IDENTITY for a
 * certificate without its key. May still re-issue the certificate. */
WZP_API int wzp_identity_load(const char *dir, wzp_identity **out);

/* A fresh identity kept in memory only (tests, ephemeral relays). */
WZP_API int wzp_identity_generate(wzp_identity **out);

WZP_API void wzp_identity_free(wzp_identity *id);

WZP_API void wzp_identity_fingerprint(const wzp_identity *id, uint8_t fp[WZP_FINGERPRINT_LEN]);

/* Seconds since the epoch after which the certificate is no longer valid. */
WZP_API int64_t wzp_identity_cert_expiry(const wzp_identity *id);

/* Formats fp in the text form. buf needs WZP_FINGERPRINT_STRLEN bytes;
 * returns buf, or "" (when len allows) if it is too small. */
WZP_API const char *wzp_fingerprint_format(const uint8_t fp[WZP_FINGERPRINT_LEN], char *buf,
                                           size_t len);

/*
 * Parses the text form: any case, '-' and whitespace anywhere are ignored.
 * Anything else (another length, characters outside the base32 alphabet, a
 * non-zero unused last bit pattern) gives WZP_ERR_INVALID.
 */
WZP_API int wzp_fingerprint_parse(const char *text, uint8_t fp[WZP_FINGERPRINT_LEN]);

#ifdef __cplusplus
}
#endif

#endif
