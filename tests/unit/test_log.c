/*
 * Logging from many threads: the level is read without a lock, the hook can
 * be swapped while workers log, and once wzp_set_log_handler returns the old
 * hook is never called again. Lines about a call carry its tag.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "support/test_main.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "common/log.h"

typedef struct sink {
    atomic_ulong lines;
    char last[256];
    pthread_mutex_t mu;
} sink;

static void to_sink(wzp_log_level level, const char *msg, void *user)
{
    sink *s = user;
    atomic_fetch_add(&s->lines, 1);
    pthread_mutex_lock(&s->mu);
    snprintf(s->last, sizeof(s->last), "%s", msg);
    pthread_mutex_unlock(&s->mu);
}

static atomic_bool stop;

static void *worker(void *arg)
{
    while (!atomic_load(&stop))
        WZP_INFO("worker %d", (int)(intptr_t)arg);
    return NULL;
}

static void test_swap_hook_while_logging(void **state)
{
    static sink a = {.mu = PTHREAD_MUTEX_INITIALIZER}, b = {.mu = PTHREAD_MUTEX_INITIALIZER};
    wzp_set_log_level(WZP_LOG_INFO);
    wzp_set_log_handler(to_sink, &a);
    pthread_t t[3];
    atomic_store(&stop, false);
    for (intptr_t i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)i), 0);
    for (int round = 0; round < 200; round++) {
        sink *now = round % 2 ? &a : &b, *old = round % 2 ? &b : &a;
        unsigned long before = atomic_load(&now->lines);
        wzp_set_log_handler(to_sink, now);
        unsigned long seen = atomic_load(&old->lines);
        /* The workers keep logging (wait until the new hook hears them; bounded); none of
         * it may reach the hook just replaced. */
        for (int spin = 0; spin < 2000000 && atomic_load(&now->lines) == before; spin++)
            sched_yield();
        assert_true(atomic_load(&now->lines) > before);
        assert_int_equal(atomic_load(&old->lines), seen);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    assert_true(atomic_load(&a.lines) > 0 && atomic_load(&b.lines) > 0);
    wzp_set_log_handler(NULL, NULL);
    wzp_set_log_level(WZP_LOG_WARN);
}

static void test_level_and_tag(void **state)
{
    static sink s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    wzp_set_log_handler(to_sink, &s);
    wzp_set_log_level(WZP_LOG_WARN);
    WZP_INFO("dropped before formatting");
    assert_int_equal(atomic_load(&s.lines), 0);
    char tag[WZP_LOG_TAG_MAX];
    const uint8_t id[16] = {0x3f, 0xa2, 0xc1, 0xd0, 0xff};
    WZP_LOGX(WZP_LOG_WARN, wzp_log_tag_id(tag, "call", id, sizeof(id)), "ringing %d", 7);
    assert_int_equal(atomic_load(&s.lines), 1);
    assert_string_equal(s.last, "[call 3fa2c1d0] ringing 7");
    assert_string_equal(wzp_log_tag_id(tag, "chan", id, 2), "chan 3fa2");
    wzp_set_log_handler(NULL, NULL);
}

WZP_TEST_MAIN(NULL, NULL, test_swap_hook_while_logging, test_level_and_tag)
