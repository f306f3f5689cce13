/*
 * What a relay's many idle control connections are made lean with: ngtcp2's
 * page-placed allocator (src/quic/lean_mem.c) and connections that free their
 * TLS session once established (release_tls); and that the handshake is made
 * cheaper without changing who gets in: identities made before Ed25519 (ECDSA
 * P-256) and peers that offer no raw public keys still connect to new ones.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "support/test_main.h"
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wzp/identity.h>

#include "common/atomic_file.h"
#include "quic/lean_mem.h"

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifdef TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif
#include "quic/quic_int.h"
#include "support/id_pair.h"
#include "support/qnet.h"

#define PAGE ((size_t)sysconf(_SC_PAGESIZE))

static void test_lean_mem_blocks(void **state)
{
    (void)state;
    const ngtcp2_mem *m = wzp_quic_lean_mem();
    assert_non_null(m);
    /* A block of a page or more starts on a page; freed, it is the next of its size. */
    size_t big = 2 * PAGE + 100;
    uint8_t *a = m->malloc(big, m->user_data);
    assert_non_null(a);
    assert_int_equal((uintptr_t)a % PAGE, 0);
    memset(a, 0xab, big);
    m->free(a, m->user_data);
    uint8_t *b = m->malloc(big, m->user_data);
    assert_ptr_equal(b, a);
    /* Beyond the freed blocks kept whole (256 of a size), tails go back to the kernel:
     * such a block, taken again once the whole ones are used, reads zero past its first
     * page. (9 pages: a size ngtcp2 does not take meanwhile.) */
    enum { N = 257 };
    static uint8_t *blk[N];
    size_t nine = 9 * PAGE;
    for (int i = 0; i < N; i++) {
        blk[i] = m->malloc(nine, m->user_data);
        assert_non_null(blk[i]);
        memset(blk[i], 0xcd, nine);
    }
    for (int i = 0; i < N; i++)
        m->free(blk[i], m->user_data);
    for (int i = 0; i < N - 1; i++) {
        blk[i] = m->malloc(nine, m->user_data);
        assert_int_equal(blk[i][PAGE], 0xcd); /* kept whole */
    }
    uint8_t *cold = m->malloc(nine, m->user_data);
    assert_ptr_equal(cold, blk[N - 1]); /* the one freed beyond the kept ones */
    for (size_t i = PAGE; i < nine; i++)
        assert_int_equal(cold[i], 0);
    for (int i = 0; i < N - 1; i++)
        m->free(blk[i], m->user_data);
    m->free(cold, m->user_data);
    memcpy(b, "keep", 4);
    /* Grown past its pages: moved, contents kept; shrunk below a page: malloc's. */
    uint8_t *c = m->realloc(b, 5 * PAGE, m->user_data);
    assert_non_null(c);
    assert_memory_equal(c, "keep", 4);
    uint8_t *d = m->realloc(c, 64, m->user_data);
    assert_non_null(d);
    assert_memory_equal(d, "keep", 4);
    m->free(d, m->user_data);
#ifdef TEST_ASAN
    /* Under AddressSanitizer a block's tail past what was asked for, and a freed block, are
     * poisoned: ngtcp2's overruns and uses after free are caught here too. */
    uint8_t *e = m->malloc(big, m->user_data);
    assert_false(__asan_address_is_poisoned(e + big - 1));
    assert_true(__asan_address_is_poisoned(e + 3 * PAGE - 1));
    m->free(e, m->user_data);
    assert_true(__asan_address_is_poisoned(e + 16));
#endif
    /* Small requests and calloc are malloc's, zeroed as asked. */
    uint8_t *z = m->calloc(3, PAGE, m->user_data);
    assert_non_null(z);
    for (size_t i = 0; i < 3 * PAGE; i++)
        assert_int_equal(z[i], 0);
    uint8_t *s = m->malloc(48, m->user_data);
    assert_non_null(s);
    s = m->realloc(s, 3 * PAGE, m->user_data); /* malloc's stays malloc's */
    assert_non_null(s);
    m->free(s, m->user_data);
    m->free(z, m->user_data);
    m->free(NULL, m->user_data);
}

/* A lean server endpoint whose connections free TLS once established: messages still
 * flow both ways, key export is refused, and it closes cleanly. */
static void test_lean_endpoint_release_tls(void **state)
{
    (void)state;
    qnet nt;
    qnet_init(&nt, WZP_SEC(1000), WZP_MS(1));
    qnet_node *sv = qnet_add_ep(&nt, "10.0.0.1:4433", NULL);
    wzp_quic_endpoint_config cfg;
    wzp_quic_endpoint_config_default(&cfg);
    cfg.id = test_ids.s;
    cfg.server = true;
    cfg.cb = qnet_callbacks;
    cfg.user = sv;
    cfg.lean_conns = true;
    assert_int_equal(wzp_quic_endpoint_new(&sv->ep, &cfg), 0);
    qnet_pin(sv, test_ids.fp_c);
    sv->ev.release_tls = true;
    qnet_node *cl = qnet_add(&nt, "10.0.0.2:4433", test_ids.c, false);
    wzp_quic_conn *c = qnet_dial(&nt, cl, sv, test_ids.fp_s);
    qnet_run(&nt, WZP_SEC(5), qnet_all_settled, NULL);
    assert_int_equal(sv->ev.established, 1);
    assert_int_equal(cl->ev.established, 1);
    wzp_quic_conn *s = sv->ev.conn;
    assert_non_null(s);
    uint8_t key[16];
    assert_int_equal(wzp_quic_conn_export(s, "EXPORTER-wzp-test", NULL, 0, key, sizeof(key)),
                     WZP_ERR_STATE);
    assert_int_equal(wzp_quic_conn_export(c, "EXPORTER-wzp-test", NULL, 0, key, sizeof(key)), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wzp_quic_conn_send_message(c, (const uint8_t *)"to relay", 8), 0);
        assert_int_equal(wzp_quic_conn_send_message(s, (const uint8_t *)"to client", 9), 0);
        qnet_run(&nt, WZP_MS(200), NULL, NULL);
    }
    assert_int_equal(sv->ev.msgs, 3);
    assert_int_equal(cl->ev.msgs, 3);
    assert_memory_equal(cl->ev.last_msg, "to client", 9);
    wzp_quic_conn_close(c, 0, "bye");
    qnet_run(&nt, WZP_SEC(5), qnet_all_settled, NULL);
    assert_int_equal(sv->ev.closed, 1);
    assert_int_equal(sv->ev.close_err, 0);
    assert_true(sv->ev.close_by_peer);
    qnet_free(&nt);
}

/* An older P-256 identity (loaded from its key file, a certificate issued for it) and a
 * new Ed25519 one authenticate each other in both roles. */
static void test_p256_identity_meets_ed25519(void **state)
{
    (void)state;
    wzp_identity *old = id_p256_new();
    assert_non_null(old);
    uint8_t fp_old[WZP_FINGERPRINT_LEN];
    wzp_identity_fingerprint(old, fp_old);
    for (int server_is_old = 0; server_is_old < 2; server_is_old++) {
        qnet nt;
        qnet_init(&nt, WZP_SEC(1000), WZP_MS(1));
        const wzp_identity *sid = server_is_old ? old : test_ids.s;
        const wzp_identity *cid = server_is_old ? test_ids.c : old;
        const uint8_t *sfp = server_is_old ? fp_old : test_ids.fp_s;
        const uint8_t *cfp = server_is_old ? test_ids.fp_c : fp_old;
        qnet_node *sv = qnet_add(&nt, "10.0.0.1:4433", sid, true);
        qnet_node *cl = qnet_add(&nt, "10.0.0.2:4433", cid, false);
        qnet_pin(sv, cfp);
        qnet_dial(&nt, cl, sv, sfp);
        qnet_run(&nt, WZP_SEC(5), qnet_all_settled, NULL);
        assert_int_equal(sv->ev.established, 1);
        assert_int_equal(cl->ev.established, 1);
        assert_memory_equal(sv->ev.peer_fp, cfp, WZP_FINGERPRINT_LEN);
        assert_memory_equal(cl->ev.peer_fp, sfp, WZP_FINGERPRINT_LEN);
        qnet_free(&nt);
    }
    wzp_identity_free(old);
}

/* Raw public keys between two current endpoints; certificates when one side does not
 * take raw keys (builds before them); the same fingerprints and pins either way, and a
 * wrong pin still refused. */
static void test_raw_public_keys_and_certificates(void **state)
{
    (void)state;
    for (int old = 0; old < 3; old++) { /* 0: none old, 1: server old, 2: client old */
        qnet nt;
        qnet_init(&nt, WZP_SEC(1000), WZP_MS(1));
        qnet_node *sv = qnet_add(&nt, "10.0.0.1:4433", test_ids.s, true);
        qnet_node *cl = qnet_add(&nt, "10.0.0.2:4433", test_ids.c, false);
        sv->ep->x509_only = old == 1;
        cl->ep->x509_only = old == 2;
        qnet_pin(sv, test_ids.fp_c);
        wzp_quic_conn *c = qnet_dial(&nt, cl, sv, test_ids.fp_s);
        qnet_run(&nt, WZP_SEC(5), qnet_all_settled, NULL);
        assert_int_equal(sv->ev.established, 1);
        assert_int_equal(cl->ev.established, 1);
        assert_memory_equal(sv->ev.peer_fp, test_ids.fp_c, WZP_FINGERPRINT_LEN);
        assert_memory_equal(cl->ev.peer_fp, test_ids.fp_s, WZP_FINGERPRINT_LEN);
        assert_int_equal(gnutls_certificate_type_get2(c->tls, GNUTLS_CTYPE_PEERS),
                         old ? GNUTLS_CRT_X509 : GNUTLS_CRT_RAWPK);
        assert_int_equal(gnutls_certificate_type_get2(c->tls, GNUTLS_CTYPE_OURS),
                         old ? GNUTLS_CRT_X509 : GNUTLS_CRT_RAWPK);
        qnet_free(&nt);
    }
    /* A raw key that is not the pinned one is refused like a certificate. */
    qnet nt;
    qnet_init(&nt, WZP_SEC(1000), WZP_MS(1));
    qnet_node *sv = qnet_add(&nt, "10.0.0.1:4433", test_ids.s, true);
    qnet_node *cl = qnet_add(&nt, "10.0.0.2:4433", test_ids.c, false);
    qnet_pin(sv, test_ids.fp_c);
    qnet_dial(&nt, cl, sv, test_ids.fp_c); /* the client expects another key */
    qnet_run(&nt, WZP_SEC(5), qnet_all_settled, NULL);
    assert_int_equal(cl->ev.established, 0);
    assert_int_equal(sv->ev.established, 0);
    assert_int_equal(cl->ev.closed, 1);
    assert_non_null(strstr(cl->ev.close_detail, "pin mismatch"));
    qnet_free(&nt);
}

WZP_TEST_MAIN(id_pair_group_setup, id_pair_group_teardown, test_lean_mem_blocks,
              test_lean_endpoint_release_tls, test_p256_identity_meets_ed25519,
              test_raw_public_keys_and_certificates)
