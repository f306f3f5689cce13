/*
 * The relay's X25519 (apps/wzp-relay/x25519.c): the same bytes as nettle's curve25519_mul,
 * which it replaces for GnuTLS, for random inputs and for the points of small order, and
 * it is the definition the dynamic linker binds libgnutls's calls to.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dlfcn.h>
#include <stdbool.h>
#include <string.h>

#include <nettle/curve25519.h>
#include <sodium.h>

#include "common/rand.h"
#include "support/test_main.h"

typedef void (*mul_fn)(uint8_t *q, const uint8_t *n, const uint8_t *p);

static mul_fn nettle_original(void)
{
    void *h = dlopen("libhogweed.so.6", RTLD_NOW | RTLD_NOLOAD);
    if (!h)
        h = dlopen("libhogweed.so.6", RTLD_NOW);
    assert_non_null(h);
    /* dlsym on the library's handle looks in it first, past our definition. */
    mul_fn f = (mul_fn)dlsym(h, "nettle_curve25519_mul");
    assert_non_null(f);
    return f;
}

static void test_bound_first(void **state)
{
    (void)state;
    /* The global lookup, which binds libgnutls's calls, finds the program's definition. */
    mul_fn global = (mul_fn)dlsym(RTLD_DEFAULT, "nettle_curve25519_mul");
    assert_true(global == nettle_curve25519_mul);
    assert_true(nettle_original() != nettle_curve25519_mul);
}

static void same_as_nettle(mul_fn orig, const uint8_t n[32], const uint8_t p[32])
{
    uint8_t want[32], got[32];
    memset(got, 0xa5, sizeof(got));
    orig(want, n, p);
    nettle_curve25519_mul(got, n, p);
    assert_memory_equal(got, want, 32);
}

static void test_random_inputs(void **state)
{
    (void)state;
    mul_fn orig = nettle_original();
    for (int i = 0; i < 2000; i++) {
        uint8_t n[32], p[32];
        wzp_random(n, sizeof(n));
        wzp_random(p, sizeof(p));
        same_as_nettle(orig, n, p);
        /* Also a point on the curve: a public key. */
        assert_int_equal(crypto_scalarmult_curve25519_base(p, n), 0);
        wzp_random(n, sizeof(n));
        same_as_nettle(orig, n, p);
    }
}

/* u = 0, 1 and the two points of order 8; small_order_point() adds p - 1, p, p + 1
 * (non-canonical encodings). libsodium refuses these. */
static const uint8_t small_order[4][32] = {
    {0},
    {1},
    {0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3,
     0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32,
     0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00},
    {0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1,
     0x55, 0x9c, 0x83, 0xef, 0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c,
     0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f, 0x11, 0x57},
};
#define N_SMALL_ORDER (4 + 3)

/* The i-th point of small order, with the top bit (ignored by X25519) set or not. */
static void small_order_point(size_t i, bool top, uint8_t p[32])
{
    if (i < 4) {
        memcpy(p, small_order[i], 32);
    } else { /* 2^255 - 19 - 1 + (i - 4), little-endian */
        memset(p, 0xff, 32);
        p[0] = (uint8_t)(0xec + (i - 4));
        p[31] = 0x7f;
    }
    if (top)
        p[31] |= 0x80;
}

static void test_small_order_points(void **state)
{
    (void)state;
    mul_fn orig = nettle_original();
    for (size_t i = 0; i < N_SMALL_ORDER; i++) {
        for (int top = 0; top < 2; top++) {
            uint8_t p[32], n[32], q[32];
            small_order_point(i, top, p);
            wzp_random(n, sizeof(n));
            same_as_nettle(orig, n, p);
            /* All zeros, which GnuTLS refuses as a shared secret. */
            nettle_curve25519_mul(q, n, p);
            uint8_t zero[32] = {0};
            assert_memory_equal(q, zero, sizeof(q));
        }
    }
}

WZP_TEST_MAIN(NULL, NULL, test_bound_first, test_random_inputs, test_small_order_points)
