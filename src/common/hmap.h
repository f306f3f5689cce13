/*
 * A small open-addressing hash map from short byte keys (connection ids,
 * fingerprints, call ids, addresses) to pointers. Keys are copied in; values
 * are borrowed. Keyed SipHash with a random seed, so keys chosen by a peer
 * cannot force collisions. Linear probing with backward-shift deletion: no
 * tombstones, so lookups stay short however much churn there is.
 */
#ifndef WZP_COMMON_HMAP_H
#define WZP_COMMON_HMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WZP_HMAP_KEYMAX 32

typedef struct wzp_hmap_slot {
    uint64_t hash; /* 0 marks an empty slot */
    uint8_t keylen;
    uint8_t key[WZP_HMAP_KEYMAX];
    void *value;
} wzp_hmap_slot;

typedef struct wzp_hmap {
    wzp_hmap_slot *slots;
    size_t cap; /* power of two, or 0 */
    size_t count;
    uint64_t seed;
} wzp_hmap;

void wzp_hmap_init(wzp_hmap *m);
void wzp_hmap_free(wzp_hmap *m);
/* Inserts or replaces. WZP_ERR_INVALID for an over-long key, WZP_ERR_NOMEM. */
int wzp_hmap_put(wzp_hmap *m, const void *key, size_t keylen, void *value);
void *wzp_hmap_get(const wzp_hmap *m, const void *key, size_t keylen);
/* Removes and returns the value, or NULL if absent. */
void *wzp_hmap_del(wzp_hmap *m, const void *key, size_t keylen);

/* Iteration: for (size_t i = 0; wzp_hmap_next(m, &i, &slot);) ... ; no inserts meanwhile. */
bool wzp_hmap_next(const wzp_hmap *m, size_t *iter, const wzp_hmap_slot **slot);

#endif
