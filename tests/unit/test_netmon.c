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

WZP_TEST_MAIN(NULL, NULL, test_open_poll_drain, test_drain_bad_fd, test_client_wildcard_watch)
