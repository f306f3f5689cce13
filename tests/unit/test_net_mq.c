/*
 * The message queue between threads (net/mq.h): order, wake-ups through its
 * fd, a producer thread racing the consumer, what destroy frees, and a consumer
 * attached to its loop, woken without the fd by pushes from its own thread.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "net/clock.h"
#include "net/loop.h"
#include "net/mq.h"
#include "support/test_main.h"

typedef struct item {
    wzp_mq_node node;
    unsigned seq;
} item;

static item *make(unsigned seq)
{
    item *it = malloc(sizeof(*it));
    assert_non_null(it);
    it->seq = seq;
    return it;
}

static bool readable(const wzp_mq *q)
{
    struct pollfd p = {.fd = wzp_mq_fd(q), .events = POLLIN};
    return poll(&p, 1, 0) == 1;
}

/* Frees a taken chain, checking it continues at *next; returns its length. */
static unsigned consume(wzp_mq_node *n, unsigned *next)
{
    unsigned count = 0;
    while (n) {
        wzp_mq_node *after = n->next;
        assert_int_equal(((item *)n)->seq, *next);
        (*next)++;
        free(n);
        n = after;
        count++;
    }
    return count;
}

static void test_order_and_wakeups(void **state)
{
    (void)state;
    wzp_mq q;
    assert_int_equal(wzp_mq_init(&q), 0);
    assert_false(readable(&q));
    assert_null(wzp_mq_take(&q));
    for (unsigned i = 0; i < 5; i++)
        wzp_mq_push(&q, &make(i)->node);
    assert_true(readable(&q));
    unsigned next = 0;
    assert_int_equal(consume(wzp_mq_take(&q), &next), 5);
    /* Taken: the fd is quiet until the next push. */
    assert_false(readable(&q));
    wzp_mq_push(&q, &make(5)->node);
    assert_true(readable(&q));
    assert_int_equal(consume(wzp_mq_take(&q), &next), 1);
    assert_false(readable(&q));
    wzp_mq_destroy(&q, NULL);
}

static unsigned freed;
static void count_free(wzp_mq_node *n)
{
    freed++;
    free(n);
}

static void test_destroy_frees_what_is_queued(void **state)
{
    (void)state;
    wzp_mq q;
    assert_int_equal(wzp_mq_init(&q), 0);
    for (unsigned i = 0; i < 3; i++)
        wzp_mq_push(&q, &make(i)->node);
    freed = 0;
    wzp_mq_destroy(&q, count_free);
    assert_int_equal(freed, 3);
    wzp_mq_destroy(&q, count_free); /* twice is harmless */
    assert_int_equal(freed, 3);
}

#define RACE_ITEMS 200000

static void *producer(void *arg)
{
    wzp_mq *q = arg;
    for (unsigned i = 0; i < RACE_ITEMS; i++)
        wzp_mq_push(q, &make(i)->node);
    return NULL;
}

static void test_producer_thread(void **state)
{
    (void)state;
    wzp_mq q;
    assert_int_equal(wzp_mq_init(&q), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, producer, &q), 0);
    /* Sleeps only on the fd: a push that finds the queue empty must wake us. */
    unsigned next = 0;
    while (next < RACE_ITEMS) {
        struct pollfd p = {.fd = wzp_mq_fd(&q), .events = POLLIN};
        assert_int_equal(poll(&p, 1, 10000), 1);
        consume(wzp_mq_take(&q), &next);
    }
    pthread_join(t, NULL);
    assert_null(wzp_mq_take(&q));
    wzp_mq_destroy(&q, NULL);
}

/* --- a consumer attached to its loop ---------------------------------------------------- */

typedef struct local_fix {
    wzp_mq q;
    wzp_io io;
    wzp_timer push, watchdog;
    unsigned next, wakes;
    bool fd_was_readable, timed_out;
    pthread_t other;
    bool other_started;
} local_fix;

static void on_queue(wzp_loop *loop, wzp_io *io, unsigned events)
{
    local_fix *f = io->arg;
    assert_true(events & WZP_IO_READ);
    f->wakes++;
    consume(wzp_mq_take(&f->q), &f->next);
    if (f->next == 3 + RACE_ITEMS)
        wzp_loop_stop(loop);
}

static void *push_rest(void *arg)
{
    local_fix *f = arg;
    for (unsigned i = 3; i < 3 + RACE_ITEMS; i++)
        wzp_mq_push(&f->q, &make(i)->node);
    return NULL;
}

/* On the loop's thread: three pushes, then another thread's. */
static void on_push(wzp_loop *loop, wzp_timer *t)
{
    (void)loop;
    local_fix *f = t->arg;
    for (unsigned i = 0; i < 3; i++)
        wzp_mq_push(&f->q, &make(i)->node);
    /* Fed, not signalled: the eventfd stays quiet. */
    f->fd_was_readable = readable(&f->q);
    assert_int_equal(pthread_create(&f->other, NULL, push_rest, f), 0);
    f->other_started = true;
}

static void on_local_watchdog(wzp_loop *loop, wzp_timer *t)
{
    *(bool *)t->arg = true;
    wzp_loop_stop(loop);
}

static void test_attached_consumer(void **state)
{
    (void)state;
    local_fix f;
    memset(&f, 0, sizeof(f));
    wzp_loop *loop;
    assert_int_equal(wzp_loop_new(&loop), 0);
    assert_int_equal(wzp_mq_init(&f.q), 0);
    wzp_io_init(&f.io, on_queue, &f);
    assert_int_equal(wzp_io_start(loop, &f.io, wzp_mq_fd(&f.q), WZP_IO_READ), 0);
    wzp_mq_attach(&f.q, loop, &f.io);
    wzp_timer_init(&f.push, on_push, &f);
    wzp_timer_init(&f.watchdog, on_local_watchdog, &f.timed_out);
    assert_int_equal(wzp_timer_start(loop, &f.push, wzp_now()), 0);
    assert_int_equal(wzp_timer_start(loop, &f.watchdog, wzp_now() + WZP_SEC(20)), 0);
    assert_false(wzp_loop_is_current(loop));
    assert_int_equal(wzp_loop_run(loop), 0);
    assert_false(f.timed_out);
    assert_false(f.fd_was_readable);
    /* Every item, in order: the loop's own three and the other thread's. */
    assert_int_equal(f.next, 3 + RACE_ITEMS);
    assert_true(f.wakes >= 2);
    assert_true(f.other_started);
    pthread_join(f.other, NULL);
    /* A push from outside the loop's thread goes through the fd. */
    wzp_mq_push(&f.q, &make(0)->node);
    assert_true(readable(&f.q));
    unsigned next = 0;
    assert_int_equal(consume(wzp_mq_take(&f.q), &next), 1);
    assert_false(readable(&f.q));
    wzp_io_stop(loop, &f.io);
    wzp_mq_destroy(&f.q, NULL);
    wzp_loop_free(loop);
}

/* A watcher stopped after it was fed does not run. */
static void on_never(wzp_loop *loop, wzp_io *io, unsigned events)
{
    (void)loop;
    (void)events;
    *(bool *)io->arg = true;
}

static void feed_then_stop(wzp_loop *loop, wzp_timer *t)
{
    wzp_io *io = t->arg;
    wzp_io_feed(loop, io, WZP_IO_READ);
    wzp_io_stop(loop, io);
    wzp_loop_stop(loop);
}

static void test_fed_then_stopped(void **state)
{
    (void)state;
    wzp_loop *loop;
    assert_int_equal(wzp_loop_new(&loop), 0);
    wzp_mq q;
    assert_int_equal(wzp_mq_init(&q), 0);
    bool ran = false;
    wzp_io io;
    wzp_io_init(&io, on_never, &ran);
    assert_int_equal(wzp_io_start(loop, &io, wzp_mq_fd(&q), WZP_IO_READ), 0);
    wzp_timer t;
    wzp_timer_init(&t, feed_then_stop, &io);
    assert_int_equal(wzp_timer_start(loop, &t, wzp_now()), 0);
    assert_int_equal(wzp_loop_run(loop), 0);
    assert_false(ran);
    wzp_mq_destroy(&q, NULL);
    wzp_loop_free(loop);
}

WZP_TEST_MAIN(NULL, NULL, test_order_and_wakeups, test_destroy_frees_what_is_queued,
              test_producer_thread, test_attached_consumer, test_fed_then_stopped)
