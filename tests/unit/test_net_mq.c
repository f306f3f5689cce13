/*
 * The message queue between threads (net/mq.h): order, wake-ups through its
 * fd, a producer thread racing the consumer, what destroy frees.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <poll.h>
#include <pthread.h>
#include <stdlib.h>

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

WZP_TEST_MAIN(NULL, NULL, test_order_and_wakeups, test_destroy_frees_what_is_queued,
              test_producer_thread)
