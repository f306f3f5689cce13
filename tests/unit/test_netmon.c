/*
 * net/netmon: the rtnetlink socket opens, is pollable, and draining an idle
 * one reports nothing. (No interfaces are changed: that would need a network
 * namespace of our own, and address changes are covered sans-I/O in
 * test_client_core.) Skipped where netlink is unavailable.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "support/test_main.h"
#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <wzp/client.h>
#include <wzp/identity.h>
#include <wzp/wzp.h>

#include "net/loop.h"
#include "net/netmon.h"

#include <sys/socket.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>

static void test_open_poll_drain(void **state)
{
    (void)state;
    int fd = wzp_netmon_open();
    if (fd < 0) {
        assert_int_equal(fd, WZP_ERR_IO);
        skip();
    }
    /* Non-blocking: draining with nothing queued returns at once. Events may
     * still arrive from the host's own activity, so "false" is not asserted. */
    (void)wzp_netmon_drain(fd);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_true(poll(&p, 1, 0) >= 0);
    assert_int_equal(p.revents & (POLLERR | POLLNVAL), 0);
    /* The loop accepts it as a watcher. */
    wzp_loop *loop = NULL;
    assert_int_equal(wzp_loop_new(&loop), 0);
    wzp_io io;
    wzp_io_init(&io, NULL, NULL);
    assert_int_equal(wzp_io_start(loop, &io, fd, WZP_IO_READ), 0);
    wzp_io_stop(loop, &io);
    wzp_loop_free(loop);
    wzp_netmon_close(fd);
    wzp_netmon_close(-1); /* no-op */
}

static void test_drain_bad_fd(void **state)
{
    (void)state;
    assert_false(wzp_netmon_drain(-1));
}

/* Builds one rtnetlink message of `type` at buf+off (a route: dst_len, table); returns its
 * aligned length. */
static size_t put_msg(uint8_t *buf, size_t off, uint16_t type, int dst_len, int table)
{
    struct nlmsghdr h = {.nlmsg_type = type};
    size_t body = 0;
    if (type == RTM_NEWROUTE || type == RTM_DELROUTE) {
        struct rtmsg r = {
            .rtm_family = AF_INET, .rtm_dst_len = (uint8_t)dst_len, .rtm_table = (uint8_t)table};
        memcpy(buf + off + NLMSG_HDRLEN, &r, sizeof(r));
        body = sizeof(r);
    } else if (type == RTM_NEWADDR || type == RTM_DELADDR) {
        struct ifaddrmsg a = {.ifa_family = AF_INET, .ifa_prefixlen = 24};
        memcpy(buf + off + NLMSG_HDRLEN, &a, sizeof(a));
        body = sizeof(a);
    }
    h.nlmsg_len = (uint32_t)NLMSG_LENGTH(body);
    memcpy(buf + off, &h, sizeof(h));
    return NLMSG_ALIGN(h.nlmsg_len);
}

/* Which messages make the client re-scan: addresses and default routes, not other routes. */
static void test_relevant(void **state)
{
    (void)state;
    uint8_t buf[512] = {0};
    size_t n = put_msg(buf, 0, RTM_NEWADDR, 0, 0);
    assert_true(wzp_netmon_relevant(buf, n));
    n = put_msg(buf, 0, RTM_DELADDR, 0, 0);
    assert_true(wzp_netmon_relevant(buf, n));
    n = put_msg(buf, 0, RTM_NEWROUTE, 24, RT_TABLE_MAIN); /* a LAN route */
    assert_false(wzp_netmon_relevant(buf, n));
    n = put_msg(buf, 0, RTM_NEWROUTE, 0, RT_TABLE_LOCAL);
    assert_false(wzp_netmon_relevant(buf, n));
    n = put_msg(buf, 0, RTM_DELROUTE, 0, RT_TABLE_MAIN); /* the default route went */
    assert_true(wzp_netmon_relevant(buf, n));
    /* Several in one datagram: the default route after a LAN route still counts. */
    n = put_msg(buf, 0, RTM_NEWROUTE, 64, RT_TABLE_MAIN);
    size_t n2 = n + put_msg(buf, n, RTM_NEWROUTE, 0, RT_TABLE_MAIN);
    assert_false(wzp_netmon_relevant(buf, n));
    assert_true(wzp_netmon_relevant(buf, n2));
    /* A length past the datagram, or a route too short for its header: re-scan. */
    n = put_msg(buf, 0, RTM_NEWROUTE, 24, RT_TABLE_MAIN);
    assert_true(wzp_netmon_relevant(buf, n - 4));
    struct nlmsghdr h = {.nlmsg_len = NLMSG_HDRLEN, .nlmsg_type = RTM_NEWROUTE};
    memcpy(buf, &h, sizeof(h));
    assert_true(wzp_netmon_relevant(buf, NLMSG_HDRLEN));
    assert_false(wzp_netmon_relevant(buf, 0));
    assert_false(wzp_netmon_relevant(buf, 3)); /* less than a header: nothing to read */
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* A client on a wildcard socket sets up its address watch (netlink + rescan
 * timer) and tears it down again. Not started: nothing is sent. */
static void test_client_wildcard_watch(void **state)
{
    (void)state;
    char home[64];
    snprintf(home, sizeof(home), "/tmp/wzp-netmon-test-XXXXXX");
    assert_non_null(mkdtemp(home));
    wzp_identity *relay_id;
    assert_int_equal(wzp_identity_generate(&relay_id), 0);
    uint8_t fp[WZP_FINGERPRINT_LEN];
    char pin[WZP_FINGERPRINT_STRLEN];
    wzp_identity_fingerprint(relay_id, fp);
    wzp_fingerprint_format(fp, pin, sizeof(pin));
    wzp_client_config cfg = {
        .home = home,
        .relay = "127.0.0.1:9",
        .relay_pin = pin,
        .bind_v4 = "0.0.0.0:0",
        .bind_v6 = "",
        .host_candidates_loopback = true,
    };
    wzp_client *c = NULL;
    assert_int_equal(wzp_client_new(&c, &cfg), 0);
    wzp_client_free(c);
    wzp_identity_free(relay_id);
    nftw(home, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

WZP_TEST_MAIN(NULL, NULL, test_open_poll_drain, test_drain_bad_fd, test_relevant,
              test_client_wildcard_watch)
