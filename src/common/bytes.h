/*
 * Bounds-checked big-endian readers and writers for wire codecs. A failed
 * read or write sets `err` and returns zeros, so a decoder can read a whole
 * header and check once at the end without ever touching memory out of bounds.
 */
#ifndef WZP_COMMON_BYTES_H
#define WZP_COMMON_BYTES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct wzp_rd {
    const uint8_t *p;
    size_t len, off;
    bool err;
} wzp_rd;

typedef struct wzp_wr {
    uint8_t *p;
    size_t cap, off;
    bool err;
} wzp_wr;

static inline wzp_rd wzp_rd_init(const uint8_t *p, size_t len)
{
    wzp_rd r = {p, len, 0, false};
    return r;
}

static inline size_t wzp_rd_left(const wzp_rd *r)
{
    return r->err ? 0 : r->len - r->off;
}

/* Returns a pointer to n bytes and advances, or NULL (and sets err). */
static inline const uint8_t *wzp_rd_take(wzp_rd *r, size_t n)
{
    if (r->err || r->len - r->off < n) {
        r->err = true;
        return NULL;
    }
    const uint8_t *q = r->p + r->off;
    r->off += n;
    return q;
}

static inline bool wzp_rd_copy(wzp_rd *r, void *dst, size_t n)
{
    const uint8_t *q = wzp_rd_take(r, n);
    if (!q) {
        memset(dst, 0, n);
        return false;
    }
    memcpy(dst, q, n);
    return true;
}

static inline uint8_t wzp_rd_u8(wzp_rd *r)
{
    const uint8_t *q = wzp_rd_take(r, 1);
    return q ? q[0] : 0;
}

static inline uint16_t wzp_rd_u16(wzp_rd *r)
{
    const uint8_t *q = wzp_rd_take(r, 2);
    return q ? (uint16_t)((q[0] << 8) | q[1]) : 0;
}

static inline uint32_t wzp_rd_u32(wzp_rd *r)
{
    const uint8_t *q = wzp_rd_take(r, 4);
    return q ? ((uint32_t)q[0] << 24) | ((uint32_t)q[1] << 16) | ((uint32_t)q[2] << 8) | q[3] : 0;
}

static inline uint64_t wzp_rd_u64(wzp_rd *r)
{
    uint64_t hi = wzp_rd_u32(r);
    return (hi << 32) | wzp_rd_u32(r);
}

static inline wzp_wr wzp_wr_init(uint8_t *p, size_t cap)
{
    wzp_wr w = {p, cap, 0, false};
    return w;
}

/* Reserves n bytes and returns them for the caller to fill, or NULL (and sets err). */
static inline uint8_t *wzp_wr_put(wzp_wr *w, size_t n)
{
    if (w->err || w->cap - w->off < n) {
        w->err = true;
        return NULL;
    }
    uint8_t *q = w->p + w->off;
    w->off += n;
    return q;
}

static inline void wzp_wr_bytes(wzp_wr *w, const void *src, size_t n)
{
    uint8_t *q = wzp_wr_put(w, n);
    if (q && n)
        memcpy(q, src, n);
}

static inline void wzp_wr_u8(wzp_wr *w, uint8_t v)
{
    uint8_t *q = wzp_wr_put(w, 1);
    if (q)
        q[0] = v;
}

static inline void wzp_wr_u16(wzp_wr *w, uint16_t v)
{
    uint8_t *q = wzp_wr_put(w, 2);
    if (q) {
        q[0] = (uint8_t)(v >> 8);
        q[1] = (uint8_t)v;
    }
}

static inline void wzp_wr_u32(wzp_wr *w, uint32_t v)
{
    uint8_t *q = wzp_wr_put(w, 4);
    if (q) {
        q[0] = (uint8_t)(v >> 24);
        q[1] = (uint8_t)(v >> 16);
        q[2] = (uint8_t)(v >> 8);
        q[3] = (uint8_t)v;
    }
}

static inline void wzp_wr_u64(wzp_wr *w, uint64_t v)
{
    wzp_wr_u32(w, (uint32_t)(v >> 32));
    wzp_wr_u32(w, (uint32_t)v);
}

/* Constant time: how many bytes differ is no hint to a forger of a MAC. */
static inline bool wzp_bytes_equal_ct(const uint8_t *a, const uint8_t *b, size_t n)
{
    uint8_t d = 0;
    for (size_t i = 0; i < n; i++)
        d |= a[i] ^ b[i];
    return d == 0;
}

#endif
