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
