/* A server and a client identity for QUIC tests, made once per test group. */
#ifndef WZP_TESTS_ID_PAIR_H
#define WZP_TESTS_ID_PAIR_H

#include <stddef.h>
#include <stdint.h>

#include <wzp/identity.h>

typedef struct id_pair {
    wzp_identity *s, *c;
    uint8_t fp_s[WZP_FINGERPRINT_LEN], fp_c[WZP_FINGERPRINT_LEN];
} id_pair;

/* 0, or -1 (nothing left allocated). */
int id_pair_new(id_pair *p);
void id_pair_free(id_pair *p);

/* n identities and their fingerprints: 0, or -1 (nothing left allocated). */
int id_set_new(wzp_identity **ids, uint8_t (*fps)[WZP_FINGERPRINT_LEN], size_t n);
void id_set_free(wzp_identity **ids, size_t n);

/* An identity with an ECDSA P-256 key, as identities were made before Ed25519 (loaded
 * from its key file, its certificate issued then), or NULL. */
wzp_identity *id_p256_new(void);

/* cmocka group setup / teardown filling / freeing test_ids. */
extern id_pair test_ids;
int id_pair_group_setup(void **state);
int id_pair_group_teardown(void **state);

#endif
