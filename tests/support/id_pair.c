#include "id_pair.h"

#include <string.h>

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
