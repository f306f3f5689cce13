/*
 * ngtcp2's allocator for endpoints with many idle connections (lean_conns).
 *
 * ngtcp2 0.12 takes memory in blocks of 7 to 12 KB per object pool (a key list for
 * connection IDs, received packet numbers, the stream, frames, sent packets, ...), and an
 * idle connection uses the first few hundred bytes of each. From malloc those blocks sit
 * back to back, so most of their pages are touched by a neighbour's header and stay
 * resident. Here every block of a page or more that ngtcp2 mallocs starts on its own pages
 * in one reserved region, mapped on first touch: a connection holds the pages it used, not
 * what ngtcp2 reserved. Smaller requests and calloc go to malloc; a pointer outside the
 * region is malloc's.
 * Hand-written: no Debian allocator places blocks page by page with lazily faulted tails.
 */
#include "quic/lean_mem.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Under AddressSanitizer the region is ours, not malloc's: a free block, and the tail of a
 * block past what was asked for, are poisoned so that a use after free or an overrun inside
 * ngtcp2 is caught as it would be in malloc's memory. */
#if defined(__SANITIZE_ADDRESS__)
#define LEAN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LEAN_ASAN 1
#endif
#endif
#ifdef LEAN_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

/* Virtual address space only: nothing is resident or committed until touched.
 * 64 GiB holds about 5 million blocks (over 400,000 connections). */
#define REGION_BYTES ((size_t)64 << 30)
/* Blocks of up to this many pages are placed here (ngtcp2's are 2 to 4). */
#define MAX_PAGES 16
/* Freed blocks of one size kept whole for the next: handshakes free a dozen (their Initial
 * and Handshake packet spaces) that the next ones take again. Giving back their tails and
 * faulting them in again cost more relay CPU per registration than the rest of this file
 * saves; beyond this many (a mass disconnect) the tails go back to the kernel. */
#define HOT_BLOCKS 256

typedef struct free_blk {
    struct free_blk *next;
} free_blk;

static struct {
    pthread_mutex_t mu;
    uint8_t *base, *end, *top; /* the region; top: first never-used page */
    size_t page;
    uint8_t *pages_of; /* per page of the region: pages of the block it starts */
    /* Freed blocks by page count: hot ones whole (linked through themselves); cold ones
     * wholly given back to the kernel, linked through cold_next (by first page index + 1,
     * 0 ends a list): a parked client's connection leaves no page behind. */
    free_blk *hot[MAX_PAGES + 1];
    uint32_t cold[MAX_PAGES + 1];
    uint32_t *cold_next; /* per page of the region */
    size_t nhot[MAX_PAGES + 1];
    bool ok;
} g = {.mu = PTHREAD_MUTEX_INITIALIZER};

static pthread_once_t once = PTHREAD_ONCE_INIT;

static void region_init(void)
{
    g.page = (size_t)sysconf(_SC_PAGESIZE);
    size_t npages = REGION_BYTES / g.page;
    void *r = mmap(NULL, REGION_BYTES, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void *m = mmap(NULL, npages, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    void *c = mmap(NULL, npages * sizeof(uint32_t), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == MAP_FAILED || m == MAP_FAILED || c == MAP_FAILED) {
        if (r != MAP_FAILED)
            munmap(r, REGION_BYTES);
        if (m != MAP_FAILED)
            munmap(m, npages);
        if (c != MAP_FAILED)
            munmap(c, npages * sizeof(uint32_t));
        return; /* plain malloc then */
    }
    g.base = g.top = r;
    g.end = g.base + REGION_BYTES;
    g.pages_of = m;
    g.cold_next = c;
    g.ok = true;
}

static bool ours(const void *p)
{
    return g.ok && (const uint8_t *)p >= g.base && (const uint8_t *)p < g.end;
}

static free_blk *pop(free_blk **list)
{
    free_blk *f = *list;
    if (f) {
        UNPOISON(f, sizeof(*f)); /* our link, in a poisoned free block */
        *list = f->next;
    }
    return f;
}

/* A block of n pages, or NULL (region full). */
static void *blk_get(size_t n)
{
    pthread_mutex_lock(&g.mu);
    void *p = pop(&g.hot[n]);
    if (p) {
        g.nhot[n]--;
    } else if (g.cold[n]) {
        uint32_t i = g.cold[n] - 1;
        g.cold[n] = g.cold_next[i];
        p = g.base + (size_t)i * g.page;
    }
    if (!p && (size_t)(g.end - g.top) >= n * g.page) {
        p = g.top;
        g.top += n * g.page;
        g.pages_of[((uint8_t *)p - g.base) / g.page] = (uint8_t)n;
    }
    pthread_mutex_unlock(&g.mu);
    return p;
}

static void blk_put(void *p)
{
    size_t n = g.pages_of[((uint8_t *)p - g.base) / g.page];
    free_blk *f = p;
    pthread_mutex_lock(&g.mu);
    if (g.nhot[n] < HOT_BLOCKS) {
        UNPOISON(f, sizeof(*f));
        f->next = g.hot[n];
        POISON(p, n * g.page);
        g.hot[n] = f;
        g.nhot[n]++;
        pthread_mutex_unlock(&g.mu);
        return;
    }
    pthread_mutex_unlock(&g.mu);
    /* All of it goes back to the kernel: the list's link lives in cold_next. */
    madvise(p, n * g.page, MADV_DONTNEED);
    POISON(p, n * g.page);
    uint32_t i = (uint32_t)(((uint8_t *)p - g.base) / g.page);
    pthread_mutex_lock(&g.mu);
    g.cold_next[i] = g.cold[n];
    g.cold[n] = i + 1;
    pthread_mutex_unlock(&g.mu);
}

static size_t pages_for(size_t size)
{
    return (size + g.page - 1) / g.page;
}

static void *lean_malloc(size_t size, void *user)
{
    (void)user;
    size_t n = pages_for(size);
    void *p = size >= g.page && n <= MAX_PAGES ? blk_get(n) : NULL;
    if (!p)
        return malloc(size);
    POISON(p, n * g.page); /* what was asked for, no more */
    UNPOISON(p, size);
    return p;
}

/* ngtcp2 callocs only whole objects it fills at once (the connection itself, 8 KB): they
 * touch every page, so packing them with malloc costs less than page-aligning them. */
static void *lean_calloc(size_t nmemb, size_t size, void *user)
{
    (void)user;
    return calloc(nmemb, size);
}

static void lean_free(void *p, void *user)
{
    (void)user;
    if (ours(p))
        blk_put(p);
    else
        free(p);
}

static void *lean_realloc(void *p, size_t size, void *user)
{
    if (!ours(p))
        return realloc(p, size); /* malloc's stays malloc's */
    size_t have = g.pages_of[((uint8_t *)p - g.base) / g.page] * g.page;
    if (size <= have && size >= g.page) {
        POISON(p, have);
        UNPOISON(p, size);
        return p;
    }
    void *q = lean_malloc(size, user);
    if (!q)
        return NULL;
    UNPOISON(p, have); /* the old size is not kept: all of it moves (p goes next) */
    memcpy(q, p, size < have ? size : have);
    blk_put(p);
    return q;
}

static const ngtcp2_mem lean_mem = {
    .malloc = lean_malloc,
    .free = lean_free,
    .calloc = lean_calloc,
    .realloc = lean_realloc,
};

const ngtcp2_mem *wzp_quic_lean_mem(void)
{
    pthread_once(&once, region_init);
    return g.ok ? &lean_mem : NULL;
}
