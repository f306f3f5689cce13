/*
 * A message queue between threads: any thread appends, one thread takes
 * everything at once, in order. Nodes are the caller's (embed wzp_mq_node
 * first in a struct); the queue only links them. An eventfd is readable
 * while the queue may be non-empty, for the consumer's event loop.
 *
 * The relay's QUIC shards and its control thread talk through these
 * (src/relay/shard.h): messages to send, connections opened and closed.
 */
#ifndef WZP_NET_MQ_H
#define WZP_NET_MQ_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct wzp_mq_node {
    struct wzp_mq_node *next;
} wzp_mq_node;

struct wzp_loop;
struct wzp_io;

typedef struct wzp_mq {
    pthread_mutex_t mu;
    wzp_mq_node *head, *tail;
    int efd;
    bool signalled; /* the eventfd was written since the last take */
    /* The consumer's loop and its watcher of efd (wzp_mq_attach), or NULL. */
    struct wzp_loop *loop;
    struct wzp_io *io;
} wzp_mq;

/* 0, or WZP_ERR_IO (no eventfd). */
int wzp_mq_init(wzp_mq *q);
/* Frees every node still queued with free_node (NULL: leave them), closes the fd. */
void wzp_mq_destroy(wzp_mq *q, void (*free_node)(wzp_mq_node *n));
/* Any thread: appends n (its next is overwritten). Wakes the consumer if the
 * queue was empty, so a burst costs one eventfd write. */
void wzp_mq_push(wzp_mq *q, wzp_mq_node *n);
/* Appends a chain first..last, linked by next (last's is overwritten): one
 * lock and at most one wake-up for a batch. */
void wzp_mq_push_chain(wzp_mq *q, wzp_mq_node *first, wzp_mq_node *last);
/* The consumer: everything queued, oldest first, linked by next (NULL: nothing).
 * Clears the eventfd first, so a push that follows wakes it again. */
wzp_mq_node *wzp_mq_take(wzp_mq *q);
/* Readable while nodes may be waiting (poll it with WZP_IO_READ). */
int wzp_mq_fd(const wzp_mq *q);
/* The consumer watches the fd with io on loop: a push from loop's own thread then feeds io
 * (wzp_io_feed) instead of writing the eventfd, which would cost that thread two syscalls
 * and a pass through epoll to wake itself (a relay with one shard on its control thread). */
void wzp_mq_attach(wzp_mq *q, struct wzp_loop *loop, struct wzp_io *io);

#endif
