/*
 * Client authentication bound to the session (quic.h): a client that presents no
 * certificate (`anonymous`) reaches a server that takes one without (`cert_optional`),
 * and then proves its key over the session's exporter. The proof verifies only on its
 * own session and only for its own key; P-256 and Ed25519 identities both prove; a
 * server that requires certificates still refuses such a client, and clients that
 * present one still get in.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "support/test_main.h"
#include <stdbool.h>
#include <string.h>

#include <wzp/identity.h>

#include "quic/quic_int.h"
#include "support/id_pair.h"
#include "support/qnet.h"

typedef struct proof {
    uint8_t key[WZP_QUIC_AUTH_KEY_MAX], sig[WZP_QUIC_AUTH_SIG_MAX];
    size_t key_len, sig_len;
} proof;

/* sv takes any client key, with a certificate or (cert_optional) without. */
static void take_anyone(qnet_node *sv, bool cert_optional)
{
    sv->ev.pin_mode = WZP_QUIC_PIN_ANY;
    sv->ev.cert_optional = cert_optional;
}

/* cl connects to sv without a certificate, pinning sv's key pin. */
static void dial_anonymous(qnet *nt, qnet_node *cl, qnet_node *sv, const uint8_t *pin)
{
    wzp_quic_conn_config o;
    qnet_opts(&o, pin);
    o.anonymous = true;
    qnet_connect(nt, cl, &sv->public, &o);
}

/* A server (cert_optional, TLS released once established) and an anonymous client of
 * identity cid; run until both are established. */
static qnet_node *anon_pair(qnet *nt, const wzp_identity *cid, qnet_node **cl)
{
    qnet_init(nt, WZP_SEC(1000), WZP_MS(1));
    qnet_node *sv = qnet_add(nt, "10.0.0.1:4433", test_ids.s, true);
    *cl = qnet_add(nt, "10.0.0.2:4433", cid, false);
    take_anyone(sv, true);
    sv->ev.release_tls = true;
    dial_anonymous(nt, *cl, sv, test_ids.fp_s);
    qnet_run(nt, WZP_SEC(5), qnet_all_settled, NULL);
    assert_int_equal(sv->ev.established, 1);
    assert_int_equal(sv->ev.anonymous, 1);
    assert_int_equal((*cl)->ev.established, 1);
    assert_memory_equal((*cl)->ev.peer_fp, test_ids.fp_s, WZP_FINGERPRINT_LEN);
    return sv;
}

static void take_proof(qnet_node *cl, proof *p)
{
    assert_int_equal(
        wzp_quic_conn_auth_proof(cl->ev.conn, p->key, &p->key_len, p->sig, &p->sig_len), 0);
}

/* The proof verifies against its own session's binding and names the client's key,
 * the fingerprint its certificate would have given. */
static void test_anonymous_client_proves_its_key(void **state)
{
    (void)state;
    qnet nt;
    qnet_node *cl, *sv = anon_pair(&nt, test_ids.c, &cl);
    /* The server's TLS session is gone; the client's binding is still readable. */
    uint8_t b[WZP_QUIC_AUTH_BINDING];
    assert_int_equal(wzp_quic_conn_auth_binding(sv->ev.conn, b), WZP_ERR_STATE);
    assert_int_equal(wzp_quic_conn_auth_binding(cl->ev.conn, b), 0);
    assert_memory_equal(b, sv->ev.binding, sizeof(b));
    assert_int_equal(wzp_quic_conn_peer_fingerprint(sv->ev.conn, b), WZP_ERR_STATE);

    proof p;
    take_proof(cl, &p);
    assert_int_equal(p.sig_len, 64); /* Ed25519 */
    uint8_t fp[WZP_FINGERPRINT_LEN];
    const char *why = NULL;
    assert_int_equal(
        wzp_quic_auth_verify(sv->ev.binding, p.key, p.key_len, p.sig, p.sig_len, fp, &why), 0);
    assert_memory_equal(fp, test_ids.fp_c, WZP_FINGERPRINT_LEN);
    /* Any bit flipped in the signature or the key: refused. */
    p.sig[10] ^= 1;
    assert_int_equal(
        wzp_quic_auth_verify(sv->ev.binding, p.key, p.key_len, p.sig, p.sig_len, fp, &why),
        WZP_ERR_IDENTITY);
    assert_string_equal(why, "signature does not verify");
    p.sig[10] ^= 1;
    p.key[p.key_len - 1] ^= 1;
    assert_int_not_equal(
        wzp_quic_auth_verify(sv->ev.binding, p.key, p.key_len, p.sig, p.sig_len, fp, NULL), 0);
    /* Garbage keys and absurd lengths. */
    assert_int_equal(wzp_quic_auth_verify(sv->ev.binding, p.sig, 20, p.sig, 64, fp, &why),
                     WZP_ERR_MALFORMED);
    assert_int_equal(wzp_quic_auth_verify(sv->ev.binding, p.key, 0, p.sig, 64, fp, &why),
                     WZP_ERR_MALFORMED);
    assert_int_equal(
        wzp_quic_auth_verify(sv->ev.binding, p.key, WZP_QUIC_AUTH_KEY_MAX + 1, p.sig, 64, fp, &why),
        WZP_ERR_MALFORMED);
    qnet_free(&nt);
}

/* A proof taken on one session does not verify on another (a relay cannot replay it),
 * and one key with another key's signature is refused. */
static void test_proof_bound_to_session_and_key(void **state)
{
    (void)state;
    qnet nt1, nt2;
    qnet_node *cl1, *sv1 = anon_pair(&nt1, test_ids.c, &cl1);
    qnet_node *cl2, *sv2 = anon_pair(&nt2, test_ids.c, &cl2);
    assert_memory_not_equal(sv1->ev.binding, sv2->ev.binding, WZP_QUIC_AUTH_BINDING);
    proof p1, p2;
    take_proof(cl1, &p1);
    take_proof(cl2, &p2);
    uint8_t fp[WZP_FINGERPRINT_LEN];
    assert_int_equal(
        wzp_quic_auth_verify(sv2->ev.binding, p1.key, p1.key_len, p1.sig, p1.sig_len, fp, NULL),
        WZP_ERR_IDENTITY);
    assert_int_equal(
        wzp_quic_auth_verify(sv2->ev.binding, p2.key, p2.key_len, p2.sig, p2.sig_len, fp, NULL), 0);
    qnet_free(&nt2);

    /* The server's key (another identity) over the client's signature. */
    qnet_init(&nt2, WZP_SEC(1000), WZP_MS(1));
    qnet_node *other = qnet_add(&nt2, "10.0.0.3:4433", test_ids.s, false);
    qnet_node *sv3 = qnet_add(&nt2, "10.0.0.1:4433", test_ids.c, true);
    take_anyone(sv3, true);
    dial_anonymous(&nt2, other, sv3, test_ids.fp_c);
    qnet_run(&nt2, WZP_SEC(5), qnet_all_settled, NULL);
    proof ps;
    take_proof(other, &ps);
    assert_memory_not_equal(ps.key, p1.key, p1.key_len);
    assert_int_equal(
        wzp_quic_auth_verify(sv1->ev.binding, ps.key, ps.key_len, p1.sig, p1.sig_len, fp, NULL),
        WZP_ERR_IDENTITY);
    qnet_free(&nt2);
    qnet_free(&nt1);
}

/* An identity made before Ed25519 proves its key too (ECDSA P-256, through GnuTLS). */
static void test_p256_identity_proves(void **state)
{
    (void)state;
    wzp_identity *old = id_p256_new();
    assert_non_null(old);
    uint8_t fp_old[WZP_FINGERPRINT_LEN];
    wzp_identity_fingerprint(old, fp_old);
    qnet nt;
    qnet_node *cl, *sv = anon_pair(&nt, old, &cl);
    proof p;
    take_proof(cl, &p);
    assert_int_not_equal(p.sig_len, 64);
    uint8_t fp[WZP_FINGERPRINT_LEN];
    assert_int_equal(
        wzp_quic_auth_verify(sv->ev.binding, p.key, p.key_len, p.sig, p.sig_len, fp, NULL), 0);
    assert_memory_equal(fp, fp_old, WZP_FINGERPRINT_LEN);
    p.sig[p.sig_len - 1] ^= 1;
    assert_int_not_equal(
        wzp_quic_auth_verify(sv->ev.binding, p.key, p.key_len, p.sig, p.sig_len, fp, NULL), 0);
    qnet_free(&nt);
    wzp_identity_free(old);
}

/* Clients presenting a certificate still get in where it is optional (reported with
 * their fingerprint, as before); an anonymous client is refused where it is required. */
static void test_certificates_still_work(void **state)
{
    (void)state;
    qnet nt;
    qnet_init(&nt, WZP_SEC(1000), WZP_MS(1));
    qnet_node *sv = qnet_add(&nt, "10.0.0.1:4433", test_ids.s, true);
    qnet_node *cl = qnet_add(&nt, "10.0.0.2:4433", test_ids.c, false);
    qnet_node *x509 = qnet_add(&nt, "10.0.0.3:4433", test_ids.c, false);
    x509->ep->x509_only = true;
    take_anyone(sv, true);
    qnet_dial(&nt, cl, sv, test_ids.fp_s);
    qnet_dial(&nt, x509, sv, test_ids.fp_s);
    qnet_run(&nt, WZP_SEC(5), qnet_all_settled, NULL);
    assert_int_equal(sv->ev.established, 2);
    assert_int_equal(sv->ev.anonymous, 0);
    assert_memory_equal(sv->ev.peer_fp, test_ids.fp_c, WZP_FINGERPRINT_LEN);
    qnet_free(&nt);

    qnet_init(&nt, WZP_SEC(1000), WZP_MS(1));
    sv = qnet_add(&nt, "10.0.0.1:4433", test_ids.s, true);
    cl = qnet_add(&nt, "10.0.0.2:4433", test_ids.c, false);
    take_anyone(sv, false);
    dial_anonymous(&nt, cl, sv, test_ids.fp_s);
    qnet_run(&nt, WZP_SEC(5), qnet_client_closed, NULL);
    assert_int_equal(sv->ev.established, 0);
    /* The client's part ended with its Finished (established), the refusal closes it. */
    assert_int_equal(cl->ev.closed, 1);
    assert_int_equal(cl->ev.close_err, WZP_ERR_TLS);
    assert_true(cl->ev.close_by_peer);
    qnet_free(&nt);
}

/* An anonymous client is established as its own handshake ends, one round trip before a
 * client with a certificate: its first message travels with its Finished, and the server
 * reports the connection before the message. */
static void test_anonymous_first_message_with_finished(void **state)
{
    (void)state;
    qnet nt;
    qnet_init(&nt, WZP_SEC(1000), WZP_MS(20));
    qnet_node *sv = qnet_add(&nt, "10.0.0.1:4433", test_ids.s, true);
    qnet_node *cl = qnet_add(&nt, "10.0.0.2:4433", test_ids.c, false);
    take_anyone(sv, true);
    dial_anonymous(&nt, cl, sv, test_ids.fp_s);
    wzp_ts t0 = qnet_now(&nt);
    int one = 1;
    qnet_run(&nt, WZP_SEC(5), qnet_clients_established, &one);
    wzp_ts t_cl = qnet_now(&nt);
    assert_int_equal(wzp_quic_conn_send_message(cl->ev.conn, (const uint8_t *)"first", 5), 0);
    qnet_run(&nt, WZP_SEC(5), qnet_all_settled, NULL);
    qnet_run(&nt, WZP_MS(100), NULL, NULL);
    assert_int_equal(sv->ev.established, 1);
    assert_int_equal(sv->ev.msgs, 1);
    assert_memory_equal(sv->ev.last_msg, "first", 5);
    /* Two round trips of 40 ms (Initial, then Handshake), not three. */
    assert_true(t_cl - t0 < WZP_MS(100));
    qnet_free(&nt);
}

WZP_TEST_MAIN(id_pair_group_setup, id_pair_group_teardown, test_anonymous_client_proves_its_key,
              test_proof_bound_to_session_and_key, test_p256_identity_proves,
              test_certificates_still_work, test_anonymous_first_message_with_finished)
