/* Unit tests for src/client/relay_transport.c on a virtual clock: which
 * transport carries the client's datagrams to its relay. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include "client/relay_transport.h"

#define T0 WZP_SEC(100)

static void test_udp_answers_first(void **state)
{
    (void)state;
    wzp_rtx r;
    wzp_rtx_init(&r, WZP_RELAY_TRANSPORT_AUTO, T0);
    /* UDP first; a TCP link opens in parallel once UDP's answer is a little late. */
    assert_false(r.via_tcp);
    assert_false(wzp_rtx_tcp_open_due(&r, T0));
    wzp_rtx_on_udp_sent(&r, true, T0);
    assert_false(wzp_rtx_tcp_open_due(&r, T0 + WZP_RTX_DOUBT - 1));
    assert_int_equal(wzp_rtx_deadline(&r), T0 + WZP_RTX_DOUBT);
    assert_true(wzp_rtx_tcp_open_due(&r, T0 + WZP_RTX_DOUBT));
    wzp_rtx_on_tcp_connecting(&r, T0 + WZP_RTX_DOUBT);
    wzp_rtx_on_tcp_up(&r, T0 + WZP_RTX_DOUBT + WZP_MS(5));
    assert_false(r.via_tcp); /* TCP up first is not enough: UDP is preferred */
    wzp_rtx_on_udp_rx(&r, false, T0 + WZP_MS(20));
    wzp_rtx_update(&r, T0 + WZP_SEC(2));
    assert_false(r.via_tcp);
    /* The spare link goes once UDP has held for a while. */
    assert_false(wzp_rtx_tcp_close_due(&r, T0 + WZP_SEC(1)));
    assert_true(wzp_rtx_tcp_close_due(&r, T0 + WZP_MS(20) + WZP_RTX_TCP_LINGER));
    assert_true(wzp_rtx_deadline(&r) <= T0 + WZP_MS(20) + WZP_RTX_TCP_LINGER);
}

static void test_udp_blocked_then_back(void **state)
{
    (void)state;
    wzp_rtx r;
    wzp_rtx_init(&r, WZP_RELAY_TRANSPORT_AUTO, T0);
    wzp_rtx_on_udp_sent(&r, true, T0);
    wzp_rtx_on_tcp_connecting(&r, T0 + WZP_RTX_DOUBT);
    wzp_rtx_on_tcp_up(&r, T0 + WZP_RTX_DOUBT + WZP_MS(30));
    wzp_ts dead = T0 + WZP_RTX_UDP_DEAD;
    assert_true(wzp_rtx_deadline(&r) <= dead);
    wzp_rtx_update(&r, dead - 1);
    assert_false(r.via_tcp);
    wzp_rtx_update(&r, dead);
    assert_true(r.via_tcp);
    /* On TCP: UDP is checked every interval; an answer brings the datagrams back. */
    assert_false(wzp_rtx_check_due(&r, dead + 1));
    assert_true(wzp_rtx_check_due(&r, dead + WZP_RTX_CHECK_INTERVAL));
    wzp_rtx_check_sent(&r, dead + WZP_RTX_CHECK_INTERVAL);
    assert_false(wzp_rtx_check_due(&r, dead + WZP_RTX_CHECK_INTERVAL + 1));
    wzp_rtx_on_udp_rx(&r, false, dead + WZP_RTX_CHECK_INTERVAL + WZP_MS(10));
    assert_false(r.via_tcp);
    assert_int_equal(r.switches, 2);
}

static void test_media_silence_checks_udp(void **state)
{
    (void)state;
    wzp_rtx r;
    wzp_rtx_init(&r, WZP_RELAY_TRANSPORT_AUTO, T0);
    wzp_rtx_on_udp_sent(&r, true, T0);
    wzp_rtx_on_udp_rx(&r, true, T0 + WZP_MS(10)); /* relayed media flows */
    assert_false(wzp_rtx_tcp_open_due(&r, T0 + WZP_MS(20)));
    /* It stops: a check goes out at once, and a TCP link opens when the check is late. */
    wzp_ts quiet = T0 + WZP_MS(10) + WZP_RTX_SILENCE;
    assert_true(wzp_rtx_deadline(&r) <= quiet);
    wzp_rtx_update(&r, quiet);
    assert_true(wzp_rtx_check_due(&r, quiet));
    wzp_rtx_check_sent(&r, quiet);
    assert_false(wzp_rtx_tcp_open_due(&r, quiet + WZP_RTX_DOUBT - 1));
    assert_true(wzp_rtx_tcp_open_due(&r, quiet + WZP_RTX_DOUBT));
    wzp_rtx_on_tcp_connecting(&r, quiet + WZP_RTX_DOUBT);
    wzp_rtx_on_tcp_up(&r, quiet + WZP_RTX_DOUBT + WZP_MS(2));
    wzp_rtx_update(&r, quiet + WZP_RTX_UDP_DEAD);
    assert_true(r.via_tcp);
    /* The whole move took silence + dead time: about a second of media. */
    assert_true(quiet + WZP_RTX_UDP_DEAD - (T0 + WZP_MS(10)) <= WZP_SEC(1));
}

static void test_forced_modes(void **state)
{
    (void)state;
    wzp_rtx r;
    wzp_rtx_init(&r, WZP_RELAY_TRANSPORT_UDP, T0);
    wzp_rtx_on_udp_sent(&r, true, T0);
    wzp_rtx_update(&r, T0 + WZP_SEC(60));
    assert_false(r.via_tcp);
    assert_false(wzp_rtx_tcp_open_due(&r, T0 + WZP_SEC(60)));
    assert_int_equal(wzp_rtx_deadline(&r), WZP_TS_NEVER);

    wzp_rtx_init(&r, WZP_RELAY_TRANSPORT_TCP, T0);
    assert_true(r.via_tcp);
    assert_true(wzp_rtx_tcp_open_due(&r, T0));
    /* A link that never comes up is retried with backoff, doubling up to the cap. */
    wzp_rtx_on_tcp_connecting(&r, T0);
    wzp_rtx_on_tcp_down(&r, T0);
    assert_false(wzp_rtx_tcp_open_due(&r, T0 + WZP_RTX_TCP_RETRY_MIN - 1));
    assert_true(wzp_rtx_tcp_open_due(&r, T0 + WZP_RTX_TCP_RETRY_MIN));
    assert_int_equal(wzp_rtx_deadline(&r), T0 + WZP_RTX_TCP_RETRY_MIN);
    wzp_ts t = T0;
    for (int i = 0; i < 10; i++) {
        wzp_rtx_on_tcp_connecting(&r, t);
        wzp_rtx_on_tcp_down(&r, t);
    }
    assert_int_equal(r.tcp_retry_at - t, WZP_RTX_TCP_RETRY_MAX);
    wzp_rtx_on_udp_rx(&r, false, t); /* UDP answers, but TCP was asked for */
    assert_true(r.via_tcp);
}

WZP_TEST_MAIN(NULL, NULL, test_udp_answers_first, test_udp_blocked_then_back,
              test_media_silence_checks_udp, test_forced_modes)
