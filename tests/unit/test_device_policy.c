/* The device threads' rules (src/audio/device_policy.h) on a virtual clock: the named device,
 * then the default, then backoff; timeouts retried up to a limit, then the device is lost; a
 * late I/O is a stall that drops queued audio; a device that vanishes is replaced by the
 * default at once and the call's audio goes on; a device that never blocks is paced to real
 * time, one that blocks paces itself. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <wzp/wzp.h>

#include "audio/device_policy.h"

#define PERIOD WZP_MS(10)

static wzp_device_policy pol;

static void init(bool named)
{
    wzp_device_policy_config c = {.want_named = named, .period = PERIOD, .buffer = WZP_MS(20)};
    wzp_device_policy_init(&pol, &c);
}

static wzp_device_action next(wzp_ts now, wzp_ts *until)
{
    *until = 0;
    return wzp_device_policy_next(&pol, now, until);
}

static void test_named_then_default_then_backoff(void **state)
{
    (void)state;
    init(true);
    wzp_ts until, now = WZP_SEC(1);
    assert_int_equal(next(now, &until), WZP_DEVICE_OPEN_WANTED);
    wzp_device_policy_opened(&pol, WZP_ERR_DEVICE, now);
    /* The named one failed: the default at once. */
    assert_int_equal(next(now, &until), WZP_DEVICE_OPEN_DEFAULT);
    /* No default either: retry after 200, 400, 800, 1600, 2000, 2000 ms. */
    const wzp_ts waits[] = {200, 400, 800, 1600, 2000, 2000};
    for (size_t i = 0; i < sizeof(waits) / sizeof(waits[0]); i++) {
        wzp_device_policy_opened(&pol, WZP_ERR_DEVICE, now);
        assert_int_equal(next(now, &until), WZP_DEVICE_WAIT);
        assert_int_equal(until, now + WZP_MS(waits[i]));
        assert_int_equal(next(until - 1, &until), WZP_DEVICE_WAIT);
        now += WZP_MS(waits[i]);
        assert_int_equal(next(now, &until), WZP_DEVICE_OPEN_DEFAULT);
    }
    assert_int_equal(pol.st.open_failures, 7);
    /* It comes back: streaming, and the backoff starts over next time. */
    wzp_device_policy_opened(&pol, 0, now);
    assert_int_equal(next(now, &until), WZP_DEVICE_IO);
    assert_false(wzp_device_policy_flowing(&pol)); /* not before audio has moved */
    assert_true(wzp_device_policy_resync(&pol));
    assert_int_equal(wzp_device_policy_io(&pol, 480, now, now + PERIOD), WZP_DEVICE_IO_OK);
    assert_true(wzp_device_policy_flowing(&pol));
    assert_int_equal(wzp_device_policy_io(&pol, WZP_ERR_DEVICE, now, now), WZP_DEVICE_IO_LOST);
    assert_int_equal(next(now, &until), WZP_DEVICE_OPEN_DEFAULT);
    wzp_device_policy_opened(&pol, WZP_ERR_DEVICE, now);
    assert_int_equal(next(now, &until), WZP_DEVICE_WAIT);
    assert_int_equal(until, now + WZP_MS(200));
}

static void test_default_only(void **state)
{
    (void)state;
    init(false);
    wzp_ts until;
    assert_int_equal(next(0, &until), WZP_DEVICE_OPEN_DEFAULT);
}

/* A sound server that takes 1.5 s to start a device: three timeouts are stalls, not a loss;
 * six in a row are a loss. */
static void test_timeouts(void **state)
{
    (void)state;
    init(true);
    wzp_ts until, now = 0;
    wzp_device_policy_opened(&pol, 0, now);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(wzp_device_policy_io(&pol, WZP_ERR_TIMEOUT, now, now + WZP_MS(500)),
                         WZP_DEVICE_IO_RETRY);
        now += WZP_MS(500);
    }
    assert_int_equal(next(now, &until), WZP_DEVICE_IO);
    assert_int_equal(pol.st.stalls, 3);
    assert_int_equal(pol.st.losses, 0);
    /* The write that finally goes through after waiting is late too: a stall (drop what piled
     * up meanwhile), and the device is not shown as working until a timely one. */
    assert_int_equal(wzp_device_policy_io(&pol, 480, now, now + WZP_MS(400)), WZP_DEVICE_IO_STALL);
    assert_true(wzp_device_policy_resync(&pol));
    assert_false(wzp_device_policy_flowing(&pol));
    now += WZP_MS(400);
    assert_int_equal(wzp_device_policy_io(&pol, 480, now, now + PERIOD), WZP_DEVICE_IO_OK);
    assert_true(wzp_device_policy_flowing(&pol));
    wzp_device_policy_resynced(&pol);
    assert_false(wzp_device_policy_resync(&pol));
    /* A counter of timeouts in a row: a good I/O resets it. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(wzp_device_policy_io(&pol, WZP_ERR_TIMEOUT, now, now + WZP_MS(500)),
                         WZP_DEVICE_IO_RETRY);
    assert_int_equal(wzp_device_policy_io(&pol, WZP_ERR_TIMEOUT, now, now + WZP_MS(500)),
                     WZP_DEVICE_IO_LOST);
    assert_int_equal(pol.st.losses, 1);
    assert_int_equal(next(now, &until), WZP_DEVICE_OPEN_DEFAULT);
}

/* A device that never blocks: each I/O returns at once. The thread may run ahead by the device
 * buffer (20 ms), then sleeps exactly as long as keeps it at real time. */
static void test_pacing_never_blocking(void **state)
{
    (void)state;
    init(false);
    wzp_ts now = WZP_SEC(5);
    wzp_device_policy_opened(&pol, 0, now);
    wzp_ts slept = 0;
    for (int i = 0; i < 1000; i++) { /* 10 s of periods */
        wzp_ts nap = wzp_device_policy_pace(&pol, now, now, false);
        if (i < 2)
            assert_int_equal(nap, 0); /* the first 20 ms fill the device buffer */
        now += nap;
        slept += nap;
    }
    /* 1000 periods of 10 ms took 10 s minus the 20 ms buffer. */
    assert_int_equal(slept, WZP_SEC(10) - WZP_MS(20));
}

/* A device that blocks for its period paces itself: no sleeping on top. A stall of the machine
 * (far behind) re-anchors instead of racing to catch up. */
static void test_pacing_blocking_and_behind(void **state)
{
    (void)state;
    init(false);
    wzp_ts now = 0;
    wzp_device_policy_opened(&pol, 0, now);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(wzp_device_policy_pace(&pol, now, now + PERIOD, false), 0);
        now += PERIOD;
    }
    /* Never-blocking calls but 300 ms late: no sleeping, and afterwards pacing from there. */
    now += WZP_MS(300);
    assert_int_equal(wzp_device_policy_pace(&pol, now, now, false), 0);
    assert_int_equal(wzp_device_policy_pace(&pol, now, now, false), 0);
    assert_int_equal(wzp_device_policy_pace(&pol, now, now, false), 0);
    assert_int_equal(wzp_device_policy_pace(&pol, now, now, false), WZP_MS(10));
    /* A capture backlog is drained at full speed. */
    for (int i = 0; i < 50; i++)
        assert_int_equal(wzp_device_policy_pace(&pol, now, now, true), 0);
}

WZP_TEST_MAIN(NULL, NULL, test_named_then_default_then_backoff, test_default_only, test_timeouts,
              test_pacing_never_blocking, test_pacing_blocking_and_behind)
