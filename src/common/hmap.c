#include "common/hmap.h"

#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "common/hash.h"
#include "common/rand.h"

void wzp_hmap_init(wzp_hmap *m)
{
    memset(m, 0, sizeof(*m));
    m->seed = wzp_random_u64();
}

void wzp_hmap_free(wzp_hmap *m)
{
    free(m->slots);
    m->slots = NULL;
    m->cap = m->count = 0;
}

static uint64_t key_hash(const wzp_hmap *m, const void *key, size_t keylen)
{
    uint64_t h = wzp_hash_bytes(key, keylen, m->seed);
    return h ? h : 1; /* 0 is reserved for empty slots */
}

static wzp_hmap_slot *find(const wzp_hmap *m, const void *key, size_t keylen, uint64_t h)
{
    if (!m->cap)
        return NULL;
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        wzp_hmap_slot *s = &m->slots[i];
        if (!s->hash)
            return NULL;
        if (s->hash == h && s->keylen == keylen && memcmp(s->key, key, keylen) == 0)
            return s;
    }
}

static void place(wzp_hmap_slot *slots, size_t cap, const wzp_hmap_slot *src)
{
    size_t mask = cap - 1;
    size_t i = src->hash & mask;
    while (slots[i].hash)
        i = (i + 1) & mask;
    slots[i] = *src;
}

static int grow(wzp_hmap *m)
{
    size_t ncap = m->cap ? m->cap * 2 : 16;
    wzp_hmap_slot *ns = calloc(ncap, sizeof(*ns));
    if (!ns)
        return WZP_ERR_NOMEM;
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].hash)
            place(ns, ncap, &m->slots[i]);
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

int wzp_hmap_put(wzp_hmap *m, const void *key, size_t keylen, void *value)
{
    if (keylen > WZP_HMAP_KEYMAX)
        return WZP_ERR_INVALID;
    uint64_t h = key_hash(m, key, keylen);
    wzp_hmap_slot *s = find(m, key, keylen, h);
    if (s) {
        s->value = value;
        return 0;
    }
    /* Keep the load factor under 3/4 so probe runs stay short. */
    if ((m->count + 1) * 4 > m->cap * 3) {
        int rv = grow(m);
        if (rv < 0)
            return rv;
    }
    wzp_hmap_slot ns = {.hash = h, .keylen = (uint8_t)keylen, .value = value};
    memcpy(ns.key, key, keylen);
    place(m->slots, m->cap, &ns);
    m->count++;
    return 0;
}

void *wzp_hmap_get(const wzp_hmap *m, const void *key, size_t keylen)
{
    if (keylen > WZP_HMAP_KEYMAX)
        return NULL;
    wzp_hmap_slot *s = find(m, key, keylen, key_hash(m, key, keylen));
    return s ? s->value : NULL;
}

void *wzp_hmap_del(wzp_hmap *m, const void *key, size_t keylen)
{
    if (keylen > WZP_HMAP_KEYMAX)
        return NULL;
    wzp_hmap_slot *s = find(m, key, keylen, key_hash(m, key, keylen));
    if (!s)
        return NULL;
    void *value = s->value;
    size_t mask = m->cap - 1;
    size_t hole = (size_t)(s - m->slots);
    /* Backward-shift: pull later members of the probe run into the hole. */
    for (size_t i = (hole + 1) & mask; m->slots[i].hash; i = (i + 1) & mask) {
        size_t home = m->slots[i].hash & mask;
        /* Move slot i into the hole unless its home lies cyclically in (hole, i]. */
        bool stays = (hole <= i) ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!stays) {
            m->slots[hole] = m->slots[i];
            hole = i;
        }
    }
    memset(&m->slots[hole], 0, sizeof(m->slots[hole]));
    m->count--;
    return value;
}

bool wzp_hmap_next(const wzp_hmap *m, size_t *iter, const wzp_hmap_slot **slot)
{
    while (*iter < m->cap) {
        const wzp_hmap_slot *s = &m->slots[(*iter)++];
        if (s->hash) {
            *slot = s;
            return true;
        }
    }
    return false;
}
