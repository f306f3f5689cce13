/* Unit tests for src/common: addresses, bounds-checked byte I/O, the hash map. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "common/addr.h"
#include "common/bytes.h"
#include "common/hmap.h"

static void test_addr_parse_format(void **state)
{
    (void)state;
    wzp_addr a;
    char buf[WZP_ADDR_STRLEN];

    assert_int_equal(wzp_addr_parse(&a, "192.0.2.7:4433", false), 0);
    assert_int_equal(wzp_addr_family(&a), AF_INET);
    assert_int_equal(wzp_addr_port(&a), 4433);
    assert_string_equal(wzp_addr_format(&a, buf, sizeof(buf)), "192.0.2.7:4433");

    assert_int_equal(wzp_addr_parse(&a, "[2001:db8::1]:9", false), 0);
    assert_int_equal(wzp_addr_family(&a), AF_INET6);
    assert_string_equal(wzp_addr_format(&a, buf, sizeof(buf)), "[2001:db8::1]:9");

    assert_int_equal(wzp_addr_parse(&a, "::1", true), 0);
    assert_int_equal(wzp_addr_port(&a), 0);
    assert_true(wzp_addr_is_loopback(&a));

    const char *bad[] = {"",     "1.2.3.4", "1.2.3.4:",        "1.2.3.4:65536", "1.2.3.4:-1",
                         "[::1", "[::1]x",  "host.example:80", "1.2.3.4:80x",   "[]:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_not_equal(wzp_addr_parse(&a, bad[i], false), 0);
}

static void test_addr_classes(void **state)
{
    (void)state;
    wzp_addr a, b;
    assert_int_equal(wzp_addr_parse(&a, "10.1.2.3:1", false), 0);
    assert_true(wzp_addr_is_private(&a));
    assert_int_equal(wzp_addr_parse(&a, "100.64.0.1:1", false), 0);
    assert_true(wzp_addr_is_private(&a));
    assert_int_equal(wzp_addr_parse(&a, "8.8.8.8:1", false), 0);
    assert_false(wzp_addr_is_private(&a));
    assert_int_equal(wzp_addr_parse(&a, "[fe80::1]:1", false), 0);
    assert_true(wzp_addr_is_link_local(&a));

    assert_int_equal(wzp_addr_parse(&a, "[::ffff:192.0.2.1]:5", false), 0);
    wzp_addr_unmap_v4(&a);
    assert_int_equal(wzp_addr_parse(&b, "192.0.2.1:5", false), 0);
    assert_true(wzp_addr_equal(&a, &b));
    assert_int_equal(wzp_addr_hash(&a, 7), wzp_addr_hash(&b, 7));
    wzp_addr_set_port(&b, 6);
    assert_false(wzp_addr_equal(&a, &b));
    assert_true(wzp_addr_ip_equal(&a, &b));
}

static void test_bytes_bounds(void **state)
{
    (void)state;
    uint8_t buf[6];
    wzp_wr w = wzp_wr_init(buf, sizeof(buf));
    wzp_wr_u16(&w, 0x1234);
    wzp_wr_u32(&w, 0xdeadbeef);
    assert_false(w.err);
    wzp_wr_u8(&w, 1);
    assert_true(w.err);

    wzp_rd r = wzp_rd_init(buf, sizeof(buf));
    assert_int_equal(wzp_rd_u16(&r), 0x1234);
    assert_int_equal(wzp_rd_u32(&r), 0xdeadbeef);
    assert_false(r.err);
    assert_int_equal(wzp_rd_u8(&r), 0);
    assert_true(r.err);
    assert_int_equal(wzp_rd_left(&r), 0);
}

static void test_hmap_churn(void **state)
{
    (void)state;
    wzp_hmap m;
    wzp_hmap_init(&m);
    enum { N = 5000 };
    static int values[N];
    for (int round = 0; round < 3; round++) {
        for (uint32_t i = 0; i < N; i++)
            assert_int_equal(wzp_hmap_put(&m, &i, sizeof(i), &values[i]), 0);
        assert_int_equal(m.count, N);
        /* Delete the odd keys; even ones must all still be found. */
        for (uint32_t i = 1; i < N; i += 2)
            assert_ptr_equal(wzp_hmap_del(&m, &i, sizeof(i)), &values[i]);
        for (uint32_t i = 0; i < N; i++)
            assert_ptr_equal(wzp_hmap_get(&m, &i, sizeof(i)), (i % 2) ? NULL : &values[i]);
        size_t it = 0, seen = 0;
        const wzp_hmap_slot *s;
        while (wzp_hmap_next(&m, &it, &s))
            seen++;
        assert_int_equal(seen, N / 2);
        for (uint32_t i = 0; i < N; i += 2)
            assert_non_null(wzp_hmap_del(&m, &i, sizeof(i)));
        assert_int_equal(m.count, 0);
    }
    uint8_t longkey[WZP_HMAP_KEYMAX + 1] = {0};
    assert_int_not_equal(wzp_hmap_put(&m, longkey, sizeof(longkey), NULL), 0);
    wzp_hmap_free(&m);
}

WZP_TEST_MAIN(NULL, NULL, test_addr_parse_format, test_addr_classes, test_bytes_bounds,
              test_hmap_churn)
