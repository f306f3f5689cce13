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
#include <poll.h>

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
    wzp_loop *loop = wzp_loop_new();
    assert_non_null(loop);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_poll_drain),
        cmocka_unit_test(test_drain_bad_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
