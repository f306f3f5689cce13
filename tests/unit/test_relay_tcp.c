/*
 * The relay's TCP service against misbehaving clients, on loopback: the
 * per-address connection cap, the TLS handshake deadline however slowly
 * bytes trickle in (slow loris), the idle deadline of a connection that
 * completes no record.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/relay_client.h"
#include "support/test_main.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "net/clock.h"
#include "net/loop.h"
#include "net/tcp.h"
#include "net/tcp_link.h"

static relay_thread rt;

static void start(void)
{
    wzp_relay_server_config cfg;
    wzp_relay_server_config_default(&cfg);
    cfg.workers = 1;
    wzp_addr_parse(&cfg.listen_tcp, "127.0.0.1:0", false);
    cfg.tcp_max_per_addr = 2;
    cfg.tcp_handshake_timeout = WZP_MS(300);
    cfg.tcp_idle_timeout = WZP_MS(300);
    assert_int_equal(relay_thread_start(&rt, &cfg), 0);
    assert_non_null(wzp_relay_server_tcp_addr(rt.srv));
}

/* A plain TCP connection to the service (blocking connect). */
static int dial(void)
{
    int fd = wzp_tcp_connect(wzp_relay_server_tcp_addr(rt.srv));
    assert_true(fd >= 0);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    assert_int_equal(poll(&p, 1, 2000), 1);
    return fd;
}

/* Whether the relay closes fd within ms (EOF or reset); sends a byte every 50 ms meanwhile
 * when trickle is set. */
static bool closed_within(int fd, int ms, bool trickle)
{
    for (int waited = 0; waited < ms; waited += 50) {
        if (trickle)
            (void)send(fd, "\x16", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 50) == 1) {
            char buf[4096];
            ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN))
                return true;
        }
    }
    return false;
}

static void test_address_cap_and_slow_loris(void **state)
{
    (void)state;
    start();
    int a = dial(), b = dial(), c = dial();
    /* The third from the same address is turned away at once; the others are not. */
    assert_true(closed_within(c, 1000, false));
    assert_false(closed_within(a, 100, false));
    /* Neither finishes a handshake: both go at the deadline, trickling bytes or not. */
    assert_true(closed_within(a, 3000, true));
    assert_true(closed_within(b, 3000, false));
    close(a);
    close(b);
    close(c);
    /* A slot freed: a new connection is accepted (and, idle, closed at its deadline). */
    int d = dial();
    assert_false(closed_within(d, 100, false));
    close(d);
    relay_thread_stop(&rt);
}

static void test_idle_after_handshake(void **state)
{
    (void)state;
    start();
    gnutls_certificate_credentials_t cred;
    assert_int_equal(gnutls_certificate_allocate_credentials(&cred), 0);
    wzp_tcp_link_config lc = {.fd = dial(), .cred = cred};
    memcpy(lc.pin, rt.fp, sizeof(lc.pin));
    wzp_tcp_link *l;
    assert_int_equal(wzp_tcp_link_new(&l, &lc), 0);
    /* Handshake with the relay's identity, then silence: closed at the idle deadline. */
    wzp_ts t0 = wzp_now();
    int rc = 0;
    bool was_up = false;
    while (rc == 0 && wzp_now() - t0 < WZP_SEC(4)) {
        struct pollfd p = {.fd = wzp_tcp_link_fd(l), .events = POLLIN};
        if (wzp_tcp_link_events(l) & WZP_IO_WRITE)
            p.events |= POLLOUT;
        poll(&p, 1, 50);
        rc = wzp_tcp_link_io(l, NULL, NULL);
        was_up = was_up || wzp_tcp_link_up(l);
    }
    assert_true(was_up);
    assert_true(rc < 0);
    wzp_tcp_link_free(l);
    gnutls_certificate_free_credentials(cred);
    relay_thread_stop(&rt);
}

WZP_TEST_MAIN(NULL, NULL, test_address_cap_and_slow_loris, test_idle_after_handshake)
