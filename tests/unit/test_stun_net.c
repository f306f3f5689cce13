/*
 * STUN on real loopback sockets through the event loop: our client against
 * our responders, and NAT mapping detection against two of them (loopback
 * has no NAT, so the mapping is endpoint-independent and equals our address).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <unistd.h>

#include <wzp/wzp.h>

#include "ice/stun_client.h"
#include "net/clock.h"
#include "net/loop.h"
#include "net/udp.h"
#include "support/stun_loop.h"

static int open_client(const char *bind, wzp_addr *local)
{
    wzp_addr a;
    assert_int_equal(wzp_addr_parse(&a, bind, false), 0);
    return wzp_udp_open(&a, NULL, local);
}

static void binding_roundtrip(const char *bind)
{
    wzp_loop *loop = NULL;
    assert_int_equal(wzp_loop_new(&loop), 0);
    stun_responder r;
    assert_int_equal(stun_responder_open(loop, &r, bind), 0);
    wzp_addr local;
    int fd = open_client(bind, &local);
    assert_true(fd >= 0);

    wzp_stun_txn t;
    assert_int_equal(wzp_stun_txn_start(&t, NULL, &r.addr, wzp_now()), 0);
    assert_int_equal(stun_loop_run_txns(loop, fd, &t, 1, WZP_SEC(10)), 0);
    assert_int_equal(t.state, WZP_STUN_TXN_DONE);
    assert_true(wzp_addr_equal(&t.mapped, &local));
    assert_true(r.answered >= 1);

    close(fd);
    stun_responder_close(loop, &r);
    wzp_loop_free(loop);
}

static void test_binding_v4(void **state)
{
    (void)state;
    binding_roundtrip("127.0.0.1:0");
}

static void test_binding_v6(void **state)
{
    (void)state;
    wzp_addr local;
    int fd = open_client("[::1]:0", &local);
    if (fd < 0)
        skip(); /* no IPv6 loopback in this environment */
    close(fd);
    binding_roundtrip("[::1]:0");
}

static void test_mapping_two_ports(void **state)
{
    (void)state;
    wzp_loop *loop = NULL;
    assert_int_equal(wzp_loop_new(&loop), 0);
    stun_responder ra, rb;
    assert_int_equal(stun_responder_open(loop, &ra, "127.0.0.1:0"), 0);
    assert_int_equal(stun_responder_open(loop, &rb, "127.0.0.1:0"), 0);
    wzp_addr local;
    int fd = open_client("127.0.0.1:0", &local);
    assert_true(fd >= 0);

    wzp_nat_probe p;
    assert_int_equal(wzp_nat_probe_start(&p, NULL, &ra.addr, &rb.addr, wzp_now()), 0);
    assert_int_equal(stun_loop_run_txns(loop, fd, p.txn, 2, WZP_SEC(10)), 0);
    assert_true(wzp_nat_probe_done(&p));
    assert_int_equal(wzp_nat_probe_result(&p), WZP_NAT_MAPPING_INDEPENDENT);
    assert_true(wzp_addr_equal(&p.txn[0].mapped, &local));
    assert_true(ra.answered >= 1 && rb.answered >= 1);

    close(fd);
    stun_responder_close(loop, &ra);
    stun_responder_close(loop, &rb);
    wzp_loop_free(loop);
}

static void test_mapping_one_server_silent(void **state)
{
    (void)state;
    wzp_loop *loop = NULL;
    assert_int_equal(wzp_loop_new(&loop), 0);
    stun_responder ra;
    assert_int_equal(stun_responder_open(loop, &ra, "127.0.0.1:0"), 0);
    /* A bound socket that never answers: requests to it vanish, like a dead server. */
    wzp_addr silent;
    int sfd = open_client("127.0.0.1:0", &silent);
    assert_true(sfd >= 0);
    wzp_addr local;
    int fd = open_client("127.0.0.1:0", &local);
    assert_true(fd >= 0);

    wzp_stun_config cfg;
    wzp_stun_config_default(&cfg);
    cfg.rto = WZP_MS(10);
    cfg.max_tx = 3;
    cfg.final_wait = 2;
    wzp_nat_probe p;
    assert_int_equal(wzp_nat_probe_start(&p, &cfg, &ra.addr, &silent, wzp_now()), 0);
    assert_int_equal(stun_loop_run_txns(loop, fd, p.txn, 2, WZP_SEC(10)), 0);
    assert_int_equal(p.txn[0].state, WZP_STUN_TXN_DONE);
    assert_int_equal(p.txn[1].state, WZP_STUN_TXN_FAILED);
    assert_int_equal(p.txn[1].error, WZP_ERR_TIMEOUT);
    assert_int_equal(wzp_nat_probe_result(&p), WZP_NAT_MAPPING_UNKNOWN);

    /* All three requests reached the silent socket. */
    uint8_t buf[256];
    wzp_udp_msg msgs[8];
    for (int i = 0; i < 8; i++)
        msgs[i] = (wzp_udp_msg){.data = buf, .cap = sizeof(buf)};
    assert_int_equal(wzp_udp_recv_batch(sfd, msgs, 8), 3);

    close(fd);
    close(sfd);
    stun_responder_close(loop, &ra);
    wzp_loop_free(loop);
}

WZP_TEST_MAIN(NULL, NULL, test_binding_v4, test_binding_v6, test_mapping_two_ports,
              test_mapping_one_server_silent)
