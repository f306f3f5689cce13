/* Identity key pair + self-signed certificate, their files, and fingerprints. */
#include <wzp/identity.h>

#include <errno.h>
#include <fcntl.h>
#include <gnutls/abstract.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/atomic_file.h"
#include "common/log.h"
#include "common/rand.h"
#include "quic/identity_tls.h"

#define KEY_FILE  "identity.key"
#define CERT_FILE "identity.crt"
/* Certificates are cheap to re-issue for the same key; keep them long-lived
 * and renew when less than a month is left. */
#define CERT_LIFETIME_S (5LL * 365 * 24 * 3600)
#define CERT_RENEW_S    (30LL * 24 * 3600)

struct wzp_identity {
    gnutls_datum_t key_pem;
    gnutls_datum_t cert_pem;
    uint8_t fp[WZP_FINGERPRINT_LEN];
    int64_t expiry;
};

static const char b32_alpha[] = "abcdefghijklmnopqrstuvwxyz234567";

const char *wzp_fingerprint_format(const uint8_t fp[WZP_FINGERPRINT_LEN], char *buf, size_t len)
{
    if (len < WZP_FINGERPRINT_STRLEN) {
        if (len)
            buf[0] = '\0';
        return buf;
    }
    size_t out = 0, nchar = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i <= WZP_FINGERPRINT_LEN; i++) {
        if (i < WZP_FINGERPRINT_LEN) {
            acc = (acc << 8) | fp[i];
            bits += 8;
        } else if (bits > 0) {
            acc <<= 5 - bits; /* pad the last partial group with zero bits */
            bits = 5;
        }
        while (bits >= 5) {
            if (nchar && nchar % 4 == 0)
                buf[out++] = '-';
            buf[out++] = b32_alpha[(acc >> (bits - 5)) & 31];
            bits -= 5;
            nchar++;
        }
    }
    buf[out] = '\0';
    return buf;
}

int wzp_fingerprint_parse(const char *text, uint8_t fp[WZP_FINGERPRINT_LEN])
{
    if (!text)
        return WZP_ERR_INVALID;
    uint8_t out[WZP_FINGERPRINT_LEN];
    size_t n = 0, nchar = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (const char *p = text; *p; p++) {
        char c = *p;
        if (c == '-' || c == ' ' || c == '\t' || c == '\n' || c == '\r')
            continue;
        int v;
        if (c >= 'a' && c <= 'z')
            v = c - 'a';
        else if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= '2' && c <= '7')
            v = 26 + (c - '2');
        else
            return WZP_ERR_INVALID;
        if (++nchar > 52)
            return WZP_ERR_INVALID;
        acc = (acc << 5) | (uint32_t)v;
        bits += 5;
        if (bits >= 8) {
            if (n < sizeof(out))
                out[n++] = (uint8_t)(acc >> (bits - 8));
            bits -= 8;
        }
        acc &= (1u << bits) - 1;
    }
    /* 52 characters carry 260 bits: 256 of data and 4 that must be zero, so
     * every fingerprint has exactly one accepted spelling (up to case). */
    if (nchar != 52 || n != WZP_FINGERPRINT_LEN || acc != 0)
        return WZP_ERR_INVALID;
    memcpy(fp, out, sizeof(out));
    return 0;
}

int wzp_identity_default_dir(char *buf, size_t len)
{
    const char *home = getenv("WZP_HOME");
    int n;
    if (home && *home) {
        n = snprintf(buf, len, "%s", home);
    } else {
        home = getenv("HOME");
        if (!home || !*home)
            return WZP_ERR_INVALID;
        n = snprintf(buf, len, "%s/.config/wzp", home);
    }
    if (n < 0 || (size_t)n >= len)
        return WZP_ERR_TOO_BIG;
    return 0;
}

static int join(char *buf, size_t len, const char *dir, const char *name)
{
    int n = snprintf(buf, len, "%s/%s", dir, name);
    return (n < 0 || (size_t)n >= len) ? WZP_ERR_TOO_BIG : 0;
}

/* Readers see the old file or the complete new one, never a torn one. */
static int write_atomic(const char *dir, const char *name, const gnutls_datum_t *data, mode_t mode)
{
    return wzp_write_atomic(dir, name, data->data, data->size, mode);
}

/* Reads a whole small file. WZP_ERR_NOT_FOUND when it does not exist. */
static int read_file(const char *dir, const char *name, gnutls_datum_t *out)
{
    char path[PATH_MAX];
    if (join(path, sizeof(path), dir, name))
        return WZP_ERR_TOO_BIG;
    int rc = gnutls_load_file(path, out);
    if (rc == 0)
        return 0;
    return access(path, F_OK) == 0 ? WZP_ERR_IO : WZP_ERR_NOT_FOUND;
}

/* The key of crt (or, crt NULL, of the DER SubjectPublicKeyInfo spki): SHA-256 of its
 * SubjectPublicKeyInfo as GnuTLS encodes the key it parsed, so that a certificate and a
 * raw public key (RFC 7250) of one key have one fingerprint. */
static int key_fingerprint(gnutls_x509_crt_t crt, const gnutls_datum_t *spki,
                           uint8_t fp[WZP_FINGERPRINT_LEN])
{
    gnutls_pubkey_t pub;
    gnutls_datum_t der = {NULL, 0};
    int rc = WZP_ERR_MALFORMED;
    if (gnutls_pubkey_init(&pub) < 0)
        return WZP_ERR_NOMEM;
    /* The DER export of a public key is its SubjectPublicKeyInfo. */
    if ((crt ? gnutls_pubkey_import_x509(pub, crt, 0)
             : gnutls_pubkey_import(pub, spki, GNUTLS_X509_FMT_DER)) == 0 &&
        gnutls_pubkey_export2(pub, GNUTLS_X509_FMT_DER, &der) == 0 &&
        gnutls_hash_fast(GNUTLS_DIG_SHA256, der.data, der.size, fp) == 0)
        rc = 0;
    gnutls_free(der.data);
    gnutls_pubkey_deinit(pub);
    return rc;
}

static int spki_fingerprint(gnutls_x509_crt_t crt, uint8_t fp[WZP_FINGERPRINT_LEN])
{
    return key_fingerprint(crt, NULL, fp);
}

int wzp_fingerprint_of_spki_der(const uint8_t *der, size_t len, uint8_t fp[WZP_FINGERPRINT_LEN])
{
    if (len > UINT_MAX)
        return WZP_ERR_MALFORMED;
    gnutls_datum_t d = {(unsigned char *)der, (unsigned)len};
    return key_fingerprint(NULL, &d, fp);
}

int wzp_fingerprint_of_cert_der(const uint8_t *der, size_t len, uint8_t fp[WZP_FINGERPRINT_LEN])
{
    gnutls_x509_crt_t crt;
    if (len > UINT_MAX)
        return WZP_ERR_MALFORMED;
    if (gnutls_x509_crt_init(&crt) < 0)
        return WZP_ERR_NOMEM;
    gnutls_datum_t d = {(unsigned char *)der, (unsigned)len};
    int rc = gnutls_x509_crt_import(crt, &d, GNUTLS_X509_FMT_DER) == 0 ? spki_fingerprint(crt, fp)
                                                                       : WZP_ERR_MALFORMED;
    gnutls_x509_crt_deinit(crt);
    return rc;
}

static int issue_cert(gnutls_x509_privkey_t key, gnutls_datum_t *pem)
{
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0)
        return WZP_ERR_NOMEM;
    uint8_t serial[16];
    wzp_random_nonce(serial, sizeof(serial));
    serial[0] &= 0x7f; /* a positive INTEGER */
    serial[0] |= 0x01;
    time_t now = time(NULL);
    int rc = 0;
    /* Ed25519 signs with its own hash (SHA-512); P-256 keys of older identities with SHA-256. */
    gnutls_digest_algorithm_t dig =
        gnutls_x509_privkey_get_pk_algorithm(key) == GNUTLS_PK_EDDSA_ED25519 ? GNUTLS_DIG_SHA512
                                                                             : GNUTLS_DIG_SHA256;
    if (gnutls_x509_crt_set_version(crt, 3) < 0 ||
        gnutls_x509_crt_set_serial(crt, serial, sizeof(serial)) < 0 ||
        gnutls_x509_crt_set_activation_time(crt, now - 3600) < 0 ||
        gnutls_x509_crt_set_expiration_time(crt, (time_t)(now + CERT_LIFETIME_S)) < 0 ||
        gnutls_x509_crt_set_dn(crt, "CN=wzp", NULL) < 0 || gnutls_x509_crt_set_key(crt, key) < 0 ||
        gnutls_x509_crt_set_basic_constraints(crt, 0, -1) < 0 ||
        gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE) < 0 ||
        gnutls_x509_crt_sign2(crt, crt, key, dig, 0) < 0 ||
        gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, pem) < 0)
        rc = WZP_ERR_IDENTITY;
    gnutls_x509_crt_deinit(crt);
    return rc;
}

/* Checks the PEM certificate belongs to key and is valid for a while yet;
 * fills fingerprint and expiry. */
static bool cert_usable(const gnutls_datum_t *pem, gnutls_x509_privkey_t key, uint8_t *fp,
                        int64_t *expiry)
{
    gnutls_x509_crt_t crt;
    if (gnutls_x509_crt_init(&crt) < 0)
        return false;
    bool ok = false;
    uint8_t cid[64], kid[64];
    size_t clen = sizeof(cid), klen = sizeof(kid);
    if (gnutls_x509_crt_import(crt, pem, GNUTLS_X509_FMT_PEM) == 0 &&
        gnutls_x509_crt_get_key_id(crt, GNUTLS_KEYID_USE_SHA256, cid, &clen) == 0 &&
        gnutls_x509_privkey_get_key_id(key, GNUTLS_KEYID_USE_SHA256, kid, &klen) == 0 &&
        clen == klen && memcmp(cid, kid, clen) == 0) {
        time_t exp = gnutls_x509_crt_get_expiration_time(crt);
        *expiry = (int64_t)exp;
        ok = exp != (time_t)-1 && (int64_t)exp > (int64_t)time(NULL) + CERT_RENEW_S &&
             spki_fingerprint(crt, fp) == 0;
    }
    gnutls_x509_crt_deinit(crt);
    return ok;
}

/* A private key readable by others is worth a warning, not a refusal. */
static void warn_if_exposed(const char *dir)
{
    char path[PATH_MAX];
    struct stat st;
    if (join(path, sizeof(path), dir, KEY_FILE) == 0 && stat(path, &st) == 0 && (st.st_mode & 077))
        WZP_WARN("identity: %s is accessible to other users (mode %03o); chmod 600 it", path,
                 (unsigned)(st.st_mode & 0777));
}

static void identity_clear(wzp_identity *id)
{
    if (id->key_pem.data) {
        gnutls_memset(id->key_pem.data, 0, id->key_pem.size);
        gnutls_free(id->key_pem.data);
    }
    gnutls_free(id->cert_pem.data);
    memset(id, 0, sizeof(*id));
}

int wzp_identity_check_dir(const char *dir, char *why, size_t len)
{
    char key[PATH_MAX], crt[PATH_MAX];
    if (why && len)
        why[0] = '\0';
    if (!dir || join(key, sizeof(key), dir, KEY_FILE) || join(crt, sizeof(crt), dir, CERT_FILE))
        return 0; /* nothing to explain: loading reports these itself */
    if (access(key, F_OK) == 0 || errno != ENOENT || access(crt, F_OK) != 0)
        return 0;
    if (why)
        snprintf(why, len,
                 "%s is missing but %s exists: restore the key, or move %s away to create a new "
                 "identity (a new fingerprint)",
                 key, crt, crt);
    return WZP_ERR_IDENTITY;
}

/* dir == NULL: in memory only. may_create: generate a key when none exists. */
static int identity_open(const char *dir, bool may_create, wzp_identity **out, bool *created)
{
    *out = NULL;
    if (created)
        *created = false;
    wzp_identity *id = calloc(1, sizeof(*id));
    if (!id)
        return WZP_ERR_NOMEM;
    gnutls_x509_privkey_t key = NULL;
    int rc = 0;
    bool new_key = false;

    if (dir) {
        struct stat st;
        if (may_create)
            rc = wzp_make_dirs(dir);
        else if (stat(dir, &st) != 0)
            rc = WZP_ERR_NOT_FOUND;
        if (rc)
            goto fail;
        rc = read_file(dir, KEY_FILE, &id->key_pem);
        char why[2 * PATH_MAX + 128];
        if (rc == WZP_ERR_NOT_FOUND && wzp_identity_check_dir(dir, why, sizeof(why))) {
            /* A lost key is a lost identity: never paper over it with a new one. */
            WZP_ERROR("identity: %s", why);
            rc = WZP_ERR_IDENTITY;
            goto fail;
        }
        if (rc == WZP_ERR_NOT_FOUND && may_create)
            new_key = true;
        else if (rc)
            goto fail;
    } else {
        new_key = true;
    }

    if (gnutls_x509_privkey_init(&key) < 0) {
        rc = WZP_ERR_NOMEM;
        goto fail;
    }
    if (new_key) {
        /* Ed25519: as strong as ECDSA P-256 (which keys made before still use, and
         * which GnuTLS verifies alike), with a signature half as costly and a
         * verification a third cheaper: a relay does one of each per registration. */
        if (gnutls_x509_privkey_generate2(key, GNUTLS_PK_EDDSA_ED25519,
                                          GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_ED25519), 0, NULL,
                                          0) < 0 ||
            gnutls_x509_privkey_export2_pkcs8(key, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
                                              &id->key_pem) < 0) {
            rc = WZP_ERR_IDENTITY;
            goto fail;
        }
        /* Key first, certificate second, each atomically: an interrupted creation leaves
         * nothing, or a key alone (which gets its certificate on the next load), never a
         * certificate without its key. */
        if (dir && (rc = write_atomic(dir, KEY_FILE, &id->key_pem, 0600)))
            goto fail;
    } else {
        warn_if_exposed(dir);
        if (gnutls_x509_privkey_import2(key, &id->key_pem, GNUTLS_X509_FMT_PEM, NULL, 0) < 0) {
            WZP_ERROR("identity: %s/%s is not a valid private key", dir, KEY_FILE);
            rc = WZP_ERR_IDENTITY;
            goto fail;
        }
    }

    bool have_cert = false;
    if (dir && !new_key && read_file(dir, CERT_FILE, &id->cert_pem) == 0)
        have_cert = cert_usable(&id->cert_pem, key, id->fp, &id->expiry);
    if (!have_cert) {
        gnutls_free(id->cert_pem.data);
        id->cert_pem.data = NULL;
        if ((rc = issue_cert(key, &id->cert_pem)))
            goto fail;
        if (!cert_usable(&id->cert_pem, key, id->fp, &id->expiry)) {
            rc = WZP_ERR_INTERNAL;
            goto fail;
        }
        if (dir && (rc = write_atomic(dir, CERT_FILE, &id->cert_pem, 0644)))
            goto fail;
        if (dir && !new_key)
            WZP_INFO("identity: issued a new certificate for the existing key in %s", dir);
    }
    gnutls_x509_privkey_deinit(key);
    if (created)
        *created = new_key && dir;
    *out = id;
    return 0;

fail:
    if (key)
        gnutls_x509_privkey_deinit(key);
    identity_clear(id);
    free(id);
    return rc;
}

int wzp_identity_load_or_create(const char *dir, wzp_identity **out, bool *created)
{
    if (!dir || !out)
        return WZP_ERR_INVALID;
    return identity_open(dir, true, out, created);
}

int wzp_identity_load(const char *dir, wzp_identity **out)
{
    if (!dir || !out)
        return WZP_ERR_INVALID;
    return identity_open(dir, false, out, NULL);
}

int wzp_identity_generate(wzp_identity **out)
{
    if (!out)
        return WZP_ERR_INVALID;
    return identity_open(NULL, true, out, NULL);
}

void wzp_identity_free(wzp_identity *id)
{
    if (!id)
        return;
    identity_clear(id);
    free(id);
}

void wzp_identity_fingerprint(const wzp_identity *id, uint8_t fp[WZP_FINGERPRINT_LEN])
{
    memcpy(fp, id->fp, WZP_FINGERPRINT_LEN);
}

int64_t wzp_identity_cert_expiry(const wzp_identity *id)
{
    return id->expiry;
}

int wzp_identity_set_credentials(const wzp_identity *id, gnutls_certificate_credentials_t cred)
{
    int rc = gnutls_certificate_set_x509_key_mem2(cred, &id->cert_pem, &id->key_pem,
                                                  GNUTLS_X509_FMT_PEM, NULL, 0);
    if (rc < 0) {
        WZP_ERROR("identity: cannot load credentials: %s", gnutls_strerror(rc));
        return WZP_ERR_TLS;
    }
    return 0;
}

/* The certificate's public key alone, its SubjectPublicKeyInfo (PEM or DER). */
static int cert_spki(const gnutls_datum_t *cert_pem, gnutls_x509_crt_fmt_t fmt, gnutls_datum_t *out)
{
    gnutls_x509_crt_t crt;
    gnutls_pubkey_t pub;
    if (gnutls_x509_crt_init(&crt) < 0)
        return GNUTLS_E_MEMORY_ERROR;
    int rc = gnutls_pubkey_init(&pub);
    if (rc == 0) {
        if ((rc = gnutls_x509_crt_import(crt, cert_pem, GNUTLS_X509_FMT_PEM)) == 0 &&
            (rc = gnutls_pubkey_import_x509(pub, crt, 0)) == 0)
            rc = gnutls_pubkey_export2(pub, fmt, out);
        gnutls_pubkey_deinit(pub);
    }
    gnutls_x509_crt_deinit(crt);
    return rc;
}

/* GnuTLS's external-key callbacks for an Ed25519 identity: libsodium signs. */
static int ed25519_sign_data(gnutls_privkey_t key, gnutls_sign_algorithm_t algo, void *user,
                             unsigned int flags, const gnutls_datum_t *data, gnutls_datum_t *sig)
{
    const wzp_identity_keys *k = user;
    (void)key;
    (void)flags;
    if (algo != GNUTLS_SIGN_EDDSA_ED25519)
        return GNUTLS_E_UNSUPPORTED_SIGNATURE_ALGORITHM;
    sig->data = gnutls_malloc(crypto_sign_BYTES);
    if (!sig->data)
        return GNUTLS_E_MEMORY_ERROR;
    crypto_sign_detached(sig->data, NULL, data->data, data->size, k->ed25519_sk);
    sig->size = crypto_sign_BYTES;
    return 0;
}

static int ed25519_info(gnutls_privkey_t key, unsigned int flags, void *user)
{
    (void)key;
    (void)user;
    if (flags & GNUTLS_PRIVKEY_INFO_HAVE_SIGN_ALGO)
        return GNUTLS_FLAGS_TO_SIGN_ALGO(flags) == GNUTLS_SIGN_EDDSA_ED25519;
    if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO)
        return GNUTLS_PK_EDDSA_ED25519;
    if (flags & GNUTLS_PRIVKEY_INFO_SIGN_ALGO)
        return GNUTLS_SIGN_EDDSA_ED25519;
    if (flags & GNUTLS_PRIVKEY_INFO_PK_ALGO_BITS)
        return 256;
    return GNUTLS_E_UNKNOWN_ALGORITHM;
}

/* An Ed25519 key moves to libsodium: its seed expanded once, and `key` replaced by an
 * external key that signs with it. Other keys stay GnuTLS's. */
static int ed25519_setup(wzp_identity_keys *k)
{
    if (gnutls_privkey_get_pk_algorithm(k->key, NULL) != GNUTLS_PK_EDDSA_ED25519)
        return 0;
    gnutls_ecc_curve_t curve;
    gnutls_datum_t x = {NULL, 0}, seed = {NULL, 0};
    int rc = gnutls_privkey_export_ecc_raw2(k->key, &curve, &x, NULL, &seed, 0);
    if (rc == 0) {
        uint8_t pk[crypto_sign_PUBLICKEYBYTES];
        rc = GNUTLS_E_INTERNAL_ERROR;
        if (sodium_init() >= 0 && x.size == sizeof(pk) && seed.size == crypto_sign_SEEDBYTES &&
            crypto_sign_seed_keypair(pk, k->ed25519_sk, seed.data) == 0 &&
            memcmp(pk, x.data, sizeof(pk)) == 0)
            rc = 0;
    }
    if (seed.data) {
        gnutls_memset(seed.data, 0, seed.size);
        gnutls_free(seed.data);
    }
    gnutls_free(x.data);
    gnutls_privkey_t ext = NULL;
    if (rc == 0 && (rc = gnutls_privkey_init(&ext)) == 0 &&
        (rc = gnutls_privkey_import_ext4(ext, k, ed25519_sign_data, NULL, NULL, NULL, ed25519_info,
                                         0)) == 0) {
        gnutls_privkey_deinit(k->key);
        k->key = ext;
        k->ed25519 = true;
        return 0;
    }
    if (ext)
        gnutls_privkey_deinit(ext);
    return rc;
}

int wzp_identity_keys_new(const wzp_identity *id, wzp_identity_keys *k)
{
    memset(k, 0, sizeof(*k));
    gnutls_datum_t spki = {NULL, 0};
    int rc = gnutls_pcert_import_x509_raw(&k->x509, &id->cert_pem, GNUTLS_X509_FMT_PEM, 0);
    if (rc == 0) {
        k->have_x509 = true;
        if ((rc = cert_spki(&id->cert_pem, GNUTLS_X509_FMT_DER, &spki)) == 0 &&
            (rc = gnutls_pcert_import_rawpk_raw(&k->raw, &spki, GNUTLS_X509_FMT_DER, 0, 0)) == 0)
            k->have_raw = true;
    }
    if (rc == 0) {
        rc = spki.size <= sizeof(k->spki) ? 0 : GNUTLS_E_INTERNAL_ERROR;
        memcpy(k->spki, spki.data, rc == 0 ? spki.size : 0);
        k->spki_len = rc == 0 ? spki.size : 0;
    }
    if (rc == 0 && (rc = gnutls_privkey_init(&k->key)) == 0 &&
        (rc = gnutls_privkey_import_x509_raw(k->key, &id->key_pem, GNUTLS_X509_FMT_PEM, NULL, 0)) ==
            0)
        rc = ed25519_setup(k);
    gnutls_free(spki.data);
    if (rc < 0) {
        WZP_ERROR("identity: cannot load credentials: %s", gnutls_strerror(rc));
        wzp_identity_keys_free(k);
        return WZP_ERR_TLS;
    }
    return 0;
}

void wzp_identity_keys_free(wzp_identity_keys *k)
{
    if (k->have_x509)
        gnutls_pcert_deinit(&k->x509);
    if (k->have_raw)
        gnutls_pcert_deinit(&k->raw);
    if (k->key)
        gnutls_privkey_deinit(k->key);
    sodium_memzero(k, sizeof(*k));
}

int wzp_identity_keys_sign(const wzp_identity_keys *k, const uint8_t *msg, size_t len, uint8_t *sig,
                           size_t *sig_len)
{
    if (k->ed25519) {
        crypto_sign_detached(sig, NULL, msg, len, k->ed25519_sk);
        *sig_len = crypto_sign_BYTES;
        return 0;
    }
    if (len > UINT_MAX)
        return WZP_ERR_TLS;
    gnutls_datum_t d = {(unsigned char *)msg, (unsigned)len}, s = {NULL, 0};
    int rc = WZP_ERR_TLS;
    if (gnutls_privkey_sign_data(k->key, GNUTLS_DIG_SHA256, 0, &d, &s) == 0 &&
        s.size <= WZP_QUIC_AUTH_SIG_MAX) {
        memcpy(sig, s.data, s.size);
        *sig_len = s.size;
        rc = 0;
    }
    gnutls_free(s.data);
    return rc;
}

int wzp_identity_derive_secret(const wzp_identity *id, const char *label, uint8_t out[32])
{
    if (!id || !label || !id->key_pem.data)
        return WZP_ERR_INTERNAL;
    return gnutls_hmac_fast(GNUTLS_MAC_SHA256, id->key_pem.data, id->key_pem.size, label,
                            strlen(label), out) == 0
               ? 0
               : WZP_ERR_INTERNAL;
}
