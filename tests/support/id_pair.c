#include "id_pair.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/atomic_file.h"

int id_pair_new(id_pair *p)
{
    memset(p, 0, sizeof(*p));
    if (wzp_identity_generate(&p->s) || wzp_identity_generate(&p->c)) {
        id_pair_free(p);
        return -1;
    }
    wzp_identity_fingerprint(p->s, p->fp_s);
    wzp_identity_fingerprint(p->c, p->fp_c);
    return 0;
}

void id_pair_free(id_pair *p)
{
    wzp_identity_free(p->s);
    wzp_identity_free(p->c);
    p->s = p->c = NULL;
}

int id_set_new(wzp_identity **ids, uint8_t (*fps)[WZP_FINGERPRINT_LEN], size_t n)
{
    memset(ids, 0, n * sizeof(*ids));
    for (size_t i = 0; i < n; i++) {
        if (wzp_identity_generate(&ids[i])) {
            id_set_free(ids, n);
            return -1;
        }
        wzp_identity_fingerprint(ids[i], fps[i]);
    }
    return 0;
}

void id_set_free(wzp_identity **ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        wzp_identity_free(ids[i]);
        ids[i] = NULL;
    }
}

id_pair test_ids;

int id_pair_group_setup(void **state)
{
    (void)state;
    return id_pair_new(&test_ids);
}

int id_pair_group_teardown(void **state)
{
    (void)state;
    id_pair_free(&test_ids);
    return 0;
}

wzp_identity *id_p256_new(void)
{
    char dir[] = "/tmp/wzp-test-p256-XXXXXX";
    gnutls_x509_privkey_t k;
    gnutls_datum_t pem = {NULL, 0};
    wzp_identity *id = NULL;
    if (!mkdtemp(dir))
        return NULL;
    if (gnutls_x509_privkey_init(&k) == 0) {
        if (gnutls_x509_privkey_generate2(k, GNUTLS_PK_ECDSA,
                                          GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0, NULL,
                                          0) == 0 &&
            gnutls_x509_privkey_export2_pkcs8(k, GNUTLS_X509_FMT_PEM, NULL, GNUTLS_PKCS_PLAIN,
                                              &pem) == 0 &&
            wzp_write_atomic(dir, "identity.key", pem.data, pem.size, 0600) == 0 &&
            wzp_identity_load(dir, &id) != 0)
            id = NULL;
        gnutls_free(pem.data);
        gnutls_x509_privkey_deinit(k);
    }
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "id_p256_new: could not remove %s\n", dir);
    return id;
}
