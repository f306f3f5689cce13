/* Unit tests for the port mapping's renewal schedule (src/portmap/lease.c), on a virtual clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include "portmap/lease.h"

#define T0 WZP_SEC(100)

static wzp_addr ext(const char *text)
{
    wzp_addr a;
    assert_int_equal(wzp_addr_parse(&a, text, false), 0);
    return a;
}

/* Due at once; granted for 2 h: renewed at 1 h, still held until 2 h. */
static void test_lease_renews_at_half(void **state)
{
    (void)state;
    wzp_pm_lease l;
    wzp_pm_lease_init(&l, T0);
    assert_true(wzp_pm_lease_due(&l, T0));
    assert_false(l.held);
    wzp_addr e = ext("198.18.1.1:40000");
    wzp_pm_lease_granted(&l, &e, 7200, T0);
    assert_true(l.held);
    assert_true(wzp_addr_equal(&l.external, &e));
    assert_int_equal(wzp_pm_lease_deadline(&l), T0 + WZP_SEC(3600));
    assert_false(wzp_pm_lease_due(&l, T0 + WZP_SEC(3599)));
    assert_true(wzp_pm_lease_due(&l, T0 + WZP_SEC(3600)));
    assert_false(wzp_pm_lease_expire(&l, T0 + WZP_SEC(3600)));
    /* The renewal is answered: the lease runs from then. */
    wzp_pm_lease_granted(&l, &e, 7200, T0 + WZP_SEC(3600));
    assert_int_equal(wzp_pm_lease_deadline(&l), T0 + WZP_SEC(7200));
    /* A permanent lease is re-checked at the backoff cap and never expires. */
    wzp_pm_lease_granted(&l, &e, 0, T0);
    assert_int_equal(wzp_pm_lease_deadline(&l), T0 + WZP_PM_RETRY_MAX);
    assert_false(wzp_pm_lease_expire(&l, T0 + WZP_SEC(1000000)));
    /* A tiny lifetime is not renewed more than once a second. */
    wzp_pm_lease_granted(&l, &e, 1, T0);
    assert_int_equal(wzp_pm_lease_deadline(&l), T0 + WZP_SEC(1));
}

/* No gateway: retries back off from 5 s, doubling, capped at 10 min. */
static void test_lease_backoff(void **state)
{
    (void)state;
    wzp_pm_lease l;
    wzp_pm_lease_init(&l, T0);
    wzp_ts now = T0, want = WZP_PM_RETRY_MIN;
    for (int i = 0; i < 12; i++) {
        wzp_pm_lease_failed(&l, now);
        assert_false(l.held);
        assert_int_equal(wzp_pm_lease_deadline(&l), now + want);
        now += want;
        want = want * 2 > WZP_PM_RETRY_MAX ? WZP_PM_RETRY_MAX : want * 2;
    }
    /* A grant resets the backoff. */
    wzp_addr e = ext("198.18.1.1:40000");
    wzp_pm_lease_granted(&l, &e, 60, now);
    wzp_pm_lease_failed(&l, now + WZP_SEC(30));
    assert_int_equal(wzp_pm_lease_deadline(&l), now + WZP_SEC(30) + WZP_PM_RETRY_MIN);
}

/* Failed renewals keep the mapping until it expires, retrying in time to renew it. */
static void test_lease_failed_renewal(void **state)
{
    (void)state;
    wzp_pm_lease l;
    wzp_pm_lease_init(&l, T0);
    wzp_addr e = ext("198.18.1.1:40000");
    wzp_pm_lease_granted(&l, &e, 8, T0);
    wzp_ts now = T0 + WZP_SEC(4);
    wzp_pm_lease_failed(&l, now); /* 4 s left: retry within 2 s, not the 5 s backoff */
    assert_true(l.held);
    assert_int_equal(wzp_pm_lease_deadline(&l), now + WZP_SEC(2));
    wzp_pm_lease_failed(&l, T0 + WZP_SEC(7));                     /* under 2 s left: at least 1 s */
    assert_int_equal(wzp_pm_lease_deadline(&l), T0 + WZP_SEC(8)); /* the expiry comes first */
    assert_false(wzp_pm_lease_expire(&l, T0 + WZP_SEC(8) - 1));
    assert_true(wzp_pm_lease_expire(&l, T0 + WZP_SEC(8)));
    assert_false(l.held);
    assert_int_equal(l.external.len, 0);
}

/* After a network change the gateway must confirm: asked at once, dropped if silent. */
static void test_lease_network_change(void **state)
{
    (void)state;
    wzp_pm_lease l;
    wzp_pm_lease_init(&l, T0);
    wzp_addr e = ext("198.18.1.1:40000");
    wzp_pm_lease_granted(&l, &e, 3600, T0);
    wzp_ts now = T0 + WZP_SEC(10);
    wzp_pm_lease_network_changed(&l, now);
    assert_true(wzp_pm_lease_due(&l, now));
    assert_true(l.held); /* kept while the check is under way */
    /* Confirmed by the (same) gateway: kept. */
    wzp_pm_lease_granted(&l, &e, 3600, now);
    assert_true(l.held);
    wzp_pm_lease_failed(&l, now + WZP_SEC(1)); /* an ordinary failed renewal: kept */
    assert_true(l.held);
    /* Another network, no gateway answering: dropped at the first failure. */
    wzp_pm_lease_network_changed(&l, now + WZP_SEC(2));
    wzp_pm_lease_failed(&l, now + WZP_SEC(3));
    assert_false(l.held);
    assert_int_equal(wzp_pm_lease_deadline(&l), now + WZP_SEC(3) + WZP_PM_RETRY_MIN);
}

WZP_TEST_MAIN(NULL, NULL, test_lease_renews_at_half, test_lease_backoff, test_lease_failed_renewal,
              test_lease_network_change)
