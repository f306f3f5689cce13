/* GnuTLS sessions for QUIC connections: TLS 1.3 only, mandatory ALPN, and
 * certificate pinning by SPKI fingerprint on both sides. */
#include <ngtcp2/ngtcp2_crypto_gnutls.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "quic/identity_tls.h"
#include "quic/quic_int.h"

/* Compatibility mode would add fake ChangeCipherSpec records, which QUIC forbids.
 * Handshake cost (a relay runs one per registration), for the same strength:
 * X25519 first, the key share a client sends, as strong as P-256 and several times
 * cheaper; ChaCha20-Poly1305 first, a 256-bit key like AES-256-GCM but with SHA-256
 * (hardware-assisted here) rather than SHA-384 for the key schedule; raw public keys
 * (RFC 7250) first: a key is all pinning needs, and the peer's certificate is parsed
 * twice per handshake (GnuTLS, then verify_peer) where a bare key is parsed cheaply. The
 * others stay, for peers that do not offer these (X.509 with builds before). */
#define TLS_PRIORITY                                                                               \
    "NORMAL:-VERS-ALL:+VERS-TLS1.3:-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:"    \
    "+GROUP-SECP521R1:-CIPHER-ALL:+CHACHA20-POLY1305:+AES-256-GCM:+AES-128-GCM:-CTYPE-ALL:"        \
    "+CTYPE-CLI-RAWPK:+CTYPE-SRV-RAWPK:+CTYPE-CLI-X509:+CTYPE-SRV-X509:%DISABLE_TLS13_COMPAT_MODE"

int wzp_quic_tls_priority_new(gnutls_priority_t *out)
{
    const char *errpos = NULL;
    if (gnutls_priority_init(out, TLS_PRIORITY, &errpos) != 0) {
        WZP_ERROR("quic: TLS priority rejected at \"%s\"", errpos ? errpos : "?");
        *out = NULL;
        return WZP_ERR_TLS;
    }
    return 0;
}

/* Our certificate or raw public key, by the type negotiated for ours. (Keys in the
 * credentials themselves would not do: a GnuTLS client holding two sends neither to a
 * server that asks for no particular issuer, as ours do.) */
static int retrieve_keys(gnutls_session_t s, const struct gnutls_cert_retr_st *info,
                         gnutls_pcert_st **certs, unsigned int *ncerts, gnutls_ocsp_data_st **ocsp,
                         unsigned int *nocsp, gnutls_privkey_t *key, unsigned int *flags)
{
    (void)info;
    ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(s);
    wzp_quic_conn *c = ref->user_data;
    wzp_quic_endpoint *ep = c->ep;
    bool raw = gnutls_certificate_type_get2(s, GNUTLS_CTYPE_OURS) == GNUTLS_CRT_RAWPK;
    bool none = !c->server && c->opts.anonymous; /* an empty Certificate, no CertificateVerify */
    *certs = none ? NULL : raw ? &ep->keys.raw : &ep->keys.x509;
    *ncerts = none ? 0 : 1;
    *ocsp = NULL;
    *nocsp = 0;
    *key = none ? NULL : ep->keys.key;
    *flags = 0; /* the endpoint keeps them */
    return 0;
}

int wzp_quic_tls_credentials(wzp_quic_endpoint *ep)
{
    int rc = wzp_identity_keys_new(ep->id, &ep->keys);
    if (rc == 0)
        gnutls_certificate_set_retrieve_function3(ep->cred, retrieve_keys);
    return rc;
}

static ngtcp2_conn *get_conn(ngtcp2_crypto_conn_ref *ref)
{
    wzp_quic_conn *c = ref->user_data;
    return c->qc;
}

/* Runs once the peer's Certificate arrived (the TLS layer then checks that
 * the peer holds the key via CertificateVerify). ALPN is settled by now on
 * both sides, so it is checked here too: GnuTLS lets a peer that sends no
 * ALPN extension at all through. */
int wzp_quic_tls_check_alpn(wzp_quic_conn *c)
{
    gnutls_datum_t proto;
    if (gnutls_alpn_get_selected_protocol(c->tls, &proto) != 0 || proto.size != strlen(c->alpn) ||
        memcmp(proto.data, c->alpn, proto.size) != 0) {
        snprintf(c->detail, sizeof(c->detail), "ALPN mismatch: %s not negotiated", c->alpn);
        return -1;
    }
    return 0;
}

static int verify_peer(gnutls_session_t s)
{
    ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(s);
    wzp_quic_conn *c = ref->user_data;

    if (wzp_quic_tls_check_alpn(c) != 0)
        return -1;

    unsigned int n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(s, &n);
    if (!certs || n == 0) {
        if (c->server && c->opts.cert_optional)
            return 0; /* the owner authenticates this client (after_progress reports it) */
        snprintf(c->detail, sizeof(c->detail), "peer presented no certificate");
        return -1;
    }
    uint8_t fp[WZP_FINGERPRINT_LEN];
    bool raw = gnutls_certificate_type_get2(s, GNUTLS_CTYPE_PEERS) == GNUTLS_CRT_RAWPK;
    if ((raw ? wzp_fingerprint_of_spki_der(certs[0].data, certs[0].size, fp)
             : wzp_fingerprint_of_cert_der(certs[0].data, certs[0].size, fp)) != 0) {
        snprintf(c->detail, sizeof(c->detail), "peer %s does not parse",
                 raw ? "public key" : "certificate");
        return -1;
    }
    if (c->opts.pin_mode == WZP_QUIC_PIN_EXACT &&
        memcmp(fp, c->opts.pin, WZP_FINGERPRINT_LEN) != 0) {
        char want[WZP_FINGERPRINT_STRLEN], got[WZP_FINGERPRINT_STRLEN];
        wzp_fingerprint_format(c->opts.pin, want, sizeof(want));
        wzp_fingerprint_format(fp, got, sizeof(got));
        snprintf(c->detail, sizeof(c->detail), "pin mismatch: expected %s, peer presented %s", want,
                 got);
        c->pin_failed = true;
        WZP_WARN("quic: %s", c->detail);
        return -1;
    }
    memcpy(c->peer_fp, fp, sizeof(fp));
    c->have_peer_fp = true;
    return 0;
}

int wzp_quic_tls_new(wzp_quic_conn *c)
{
    unsigned flags = GNUTLS_NO_END_OF_EARLY_DATA | (c->ep->x509_only ? 0 : GNUTLS_ENABLE_RAWPK);
    flags |= c->server ? GNUTLS_SERVER | GNUTLS_NO_AUTO_SEND_TICKET : GNUTLS_CLIENT;
    if (gnutls_init(&c->tls, flags) != 0) {
        c->tls = NULL;
        return WZP_ERR_NOMEM;
    }
    gnutls_datum_t alpn = {(unsigned char *)c->alpn, (unsigned)strlen(c->alpn)};
    int rc = c->server ? ngtcp2_crypto_gnutls_configure_server_session(c->tls)
                       : ngtcp2_crypto_gnutls_configure_client_session(c->tls);
    if (rc != 0 || gnutls_priority_set(c->tls, c->ep->prio) != 0 ||
        gnutls_credentials_set(c->tls, GNUTLS_CRD_CERTIFICATE, c->ep->cred) != 0 ||
        gnutls_alpn_set_protocols(c->tls, &alpn, 1, GNUTLS_ALPN_MANDATORY) != 0) {
        WZP_ERROR("quic: TLS session setup failed");
        gnutls_deinit(c->tls);
        c->tls = NULL;
        return WZP_ERR_TLS;
    }
    if (c->server)
        gnutls_certificate_server_set_request(c->tls, c->opts.cert_optional ? GNUTLS_CERT_REQUEST
                                                                            : GNUTLS_CERT_REQUIRE);
    gnutls_session_set_verify_function(c->tls, verify_peer);
    c->ref.get_conn = get_conn;
    c->ref.user_data = c;
    gnutls_session_set_ptr(c->tls, &c->ref);
    return 0;
}

void wzp_quic_tls_free(wzp_quic_conn *c)
{
    if (c->tls)
        gnutls_deinit(c->tls);
    c->tls = NULL;
}

int wzp_quic_conn_export(wzp_quic_conn *c, const char *label, const uint8_t *context,
                         size_t context_len, uint8_t *out, size_t len)
{
    if (!c || !label || !out || (!context && context_len))
        return WZP_ERR_INVALID;
    if (!c->tls || !c->qc || !ngtcp2_conn_get_handshake_completed(c->qc))
        return WZP_ERR_STATE;
    int rc = gnutls_prf_rfc5705(c->tls, strlen(label), label, context_len, (const char *)context,
                                len, (char *)out);
    return rc == 0 ? 0 : WZP_ERR_TLS;
}
