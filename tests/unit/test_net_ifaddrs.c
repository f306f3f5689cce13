/* Unit tests for src/net/ifaddrs: filtering rules on this host and the /proc line parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <string.h>

#include <wzp/wzp.h>

#include "net/ifaddrs.h"

static void test_loopback_only_with_flag(void **state)
{
    (void)state;
    wzp_ifaddr list[64];
    int n = wzp_ifaddrs_get(list, 64, 0);
    assert_true(n >= 0);
    for (int i = 0; i < n; i++) {
        assert_false(wzp_addr_is_loopback(&list[i].addr));
        assert_false(wzp_addr_family(&list[i].addr) == AF_INET6 &&
                     wzp_addr_is_link_local(&list[i].addr));
        assert_false(wzp_addr_is_any(&list[i].addr));
        assert_int_equal(wzp_addr_port(&list[i].addr), 0);
        assert_true(list[i].ifindex > 0);
        assert_true(list[i].ifname[0] != '\0');
        for (int j = 0; j < i; j++)
            assert_false(wzp_addr_equal(&list[i].addr, &list[j].addr));
    }

    int m = wzp_ifaddrs_get(list, 64, WZP_IFADDR_LOOPBACK);
    assert_true(m > n);
    bool saw_lo = false;
    for (int i = 0; i < m; i++) {
        char buf[WZP_ADDR_STRLEN];
        if (strcmp(wzp_addr_format(&list[i].addr, buf, sizeof(buf)), "127.0.0.1:0") == 0) {
            saw_lo = true;
            assert_string_equal(list[i].ifname, "lo");
        }
    }
    assert_true(saw_lo);

    /* A short array is filled, not overrun. */
    assert_int_equal(wzp_ifaddrs_get(list, 1, WZP_IFADDR_LOOPBACK), 1);
    assert_int_equal(wzp_ifaddrs_get(list, 0, WZP_IFADDR_LOOPBACK), 0);
}

static void test_parse_inet6_line(void **state)
{
    (void)state;
    uint8_t ip[16];
    unsigned flags;
    assert_int_equal(wzp_ifaddrs_parse_inet6_line(
                         "20010db8000000000000000000000001 02 40 00 21     eth0\n", ip, &flags),
                     0);
    assert_int_equal(ip[0], 0x20);
    assert_int_equal(ip[1], 0x01);
    assert_int_equal(ip[15], 0x01);
    assert_int_equal(flags, 0x21); /* temporary | deprecated */
    assert_int_equal(wzp_ifaddrs_parse_inet6_line("2001", ip, &flags), WZP_ERR_MALFORMED);
    assert_int_equal(wzp_ifaddrs_parse_inet6_line("", ip, &flags), WZP_ERR_MALFORMED);
    assert_int_equal(wzp_ifaddrs_parse_inet6_line(
                         "20010db800000000000000000000000g 02 40 00 21 eth0", ip, &flags),
                     WZP_ERR_MALFORMED);
    assert_int_equal(
        wzp_ifaddrs_parse_inet6_line("20010db8000000000000000000000001 02 40", ip, &flags),
        WZP_ERR_MALFORMED);
}

WZP_TEST_MAIN(NULL, NULL, test_loopback_only_with_flag, test_parse_inet6_line)
