/* A mutex-guarded linked list with an eventfd: one lock per push and per
 * batch taken. Lock-free queues (liburcu's wfcqueue) would add a dependency
 * for no gain at control-plane rates, where a message costs microseconds. */
#include "net/mq.h"

#include "net/loop.h"

#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <wzp/wzp.h>

int wzp_mq_init(wzp_mq *q)
{
    q->head = q->tail = NULL;
    q->signalled = false;
    q->loop = NULL;
    q->io = NULL;
    q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->efd < 0)
        return WZP_ERR_IO;
    if (pthread_mutex_init(&q->mu, NULL) != 0) {
        close(q->efd);
        q->efd = -1;
        return WZP_ERR_NOMEM;
    }
    return 0;
}

void wzp_mq_destroy(wzp_mq *q, void (*free_node)(wzp_mq_node *n))
{
    if (q->efd < 0)
        return;
    for (wzp_mq_node *n = q->head, *next; n; n = next) {
        next = n->next;
        if (free_node)
            free_node(n);
    }
    q->head = q->tail = NULL;
    pthread_mutex_destroy(&q->mu);
    close(q->efd);
    q->efd = -1;
}

void wzp_mq_push(wzp_mq *q, wzp_mq_node *n)
{
    wzp_mq_push_chain(q, n, n);
}

void wzp_mq_push_chain(wzp_mq *q, wzp_mq_node *first, wzp_mq_node *last)
{
    last->next = NULL;
    bool local = q->loop && wzp_loop_is_current(q->loop);
    pthread_mutex_lock(&q->mu);
    bool was_empty = !q->head;
    if (q->tail)
        q->tail->next = first;
    else
        q->head = first;
    q->tail = last;
    bool wake = was_empty && !local;
    if (wake)
        q->signalled = true;
    pthread_mutex_unlock(&q->mu);
    if (was_empty && local)
        wzp_io_feed(q->loop, q->io, WZP_IO_READ);
    if (wake) {
        uint64_t one = 1;
        ssize_t wr = write(q->efd, &one, sizeof(one));
        (void)wr; /* fails only when the counter is saturated: still readable */
    }
}

wzp_mq_node *wzp_mq_take(wzp_mq *q)
{
    /* The eventfd is cleared before the list is taken: a push after that wakes again. */
    pthread_mutex_lock(&q->mu);
    bool signalled = q->signalled;
    q->signalled = false;
    pthread_mutex_unlock(&q->mu);
    if (signalled) {
        uint64_t v;
        ssize_t rd = read(q->efd, &v, sizeof(v));
        (void)rd;
    }
    pthread_mutex_lock(&q->mu);
    wzp_mq_node *n = q->head;
    q->head = q->tail = NULL;
    pthread_mutex_unlock(&q->mu);
    return n;
}

int wzp_mq_fd(const wzp_mq *q)
{
    return q->efd;
}

void wzp_mq_attach(wzp_mq *q, struct wzp_loop *loop, struct wzp_io *io)
{
    q->loop = loop;
    q->io = io;
}
