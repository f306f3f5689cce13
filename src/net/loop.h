/*
 * A small epoll event loop (libuv-lite): fd watchers, timers on a min-heap,
 * cross-thread posting and opt-in signal handling.
 *
 * Watchers and timers are caller-owned structs (usually embedded in the
 * object that uses them), so the loop allocates nothing per event: only its
 * timer heap and post queue grow, geometrically, when they run out of room.
 *
 * Threading: every function runs on the loop thread only, except
 * wzp_loop_post() and wzp_loop_stop(), which any thread may call.
 */
#ifndef WZP_NET_LOOP_H
#define WZP_NET_LOOP_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/time.h"

typedef struct wzp_loop wzp_loop;

/* Event bits for fd watchers. WZP_IO_ERROR (EPOLLERR/EPOLLHUP) is always reported. */
#define WZP_IO_READ  0x1u
#define WZP_IO_WRITE 0x2u
#define WZP_IO_ERROR 0x4u

typedef struct wzp_io wzp_io;
typedef void (*wzp_io_cb)(wzp_loop *loop, wzp_io *io, unsigned events);

struct wzp_io {
    int fd;          /* -1 while not started */
    unsigned events; /* WZP_IO_READ | WZP_IO_WRITE */
    wzp_io_cb cb;
    void *arg;
    unsigned fed; /* events wzp_io_feed() queued for the next pass */
    wzp_io *fed_next;
};

typedef struct wzp_timer wzp_timer;
typedef void (*wzp_timer_cb)(wzp_loop *loop, wzp_timer *timer);

struct wzp_timer {
    wzp_ts deadline;
    uint64_t seq; /* start order: ties on deadline fire first-started first */
    size_t slot;  /* index in the heap, or SIZE_MAX while inactive */
    wzp_timer_cb cb;
    void *arg;
};

/* Creates a loop. Nothing to configure, hence no config argument. 0, or
 * WZP_ERR_IO (no fds) / WZP_ERR_NOMEM (*out untouched). */
int wzp_loop_new(wzp_loop **out);
/*
 * Frees the loop and its own fds. Watchers and timers stay the caller's; their
 * fds are not closed. Functions still queued by wzp_loop_post() are dropped.
 */
void wzp_loop_free(wzp_loop *loop);

/* Runs until wzp_loop_stop(). Returns 0, or WZP_ERR_IO if epoll itself fails. */
int wzp_loop_run(wzp_loop *loop);
/*
 * Makes wzp_loop_run() return after the current callback (a batch of posted
 * calls always completes). Called before run(), run() returns at once. Any
 * thread; async-signal-safe.
 */
void wzp_loop_stop(wzp_loop *loop);
/* Runs io's callback with `events` in the loop's next pass, as if its fd were ready, without
 * a syscall: for a producer on the consumer's own thread (net/mq.h). Loop thread only. */
void wzp_io_feed(wzp_loop *loop, wzp_io *io, unsigned events);
/* Whether the calling thread is running loop (inside wzp_loop_run). Any thread. */
bool wzp_loop_is_current(const wzp_loop *loop);
/* Timers wake the loop through a timerfd from now on, as on kernels without
 * epoll_pwait2 (before 5.11), where the loop falls back to it by itself. For tests. */
void wzp_loop_use_timerfd(wzp_loop *loop);
/* The time the loop read at the start of this iteration (cheap; callbacks use it as now). */
wzp_ts wzp_loop_now(const wzp_loop *loop);

/* --- fd watchers ----------------------------------------------------------------- */

void wzp_io_init(wzp_io *io, wzp_io_cb cb, void *arg);
/* Watches fd for events (level-triggered). WZP_ERR_INVALID if already started. */
int wzp_io_start(wzp_loop *loop, wzp_io *io, int fd, unsigned events);
/* Changes the watched events (e.g. add WZP_IO_WRITE while a send is blocked). */
int wzp_io_modify(wzp_loop *loop, wzp_io *io, unsigned events);
/* Stops watching; safe from any callback, including io's own. No-op if not started. */
void wzp_io_stop(wzp_loop *loop, wzp_io *io);

/* --- timers ------------------------------------------------------------------------- */

void wzp_timer_init(wzp_timer *t, wzp_timer_cb cb, void *arg);
/*
 * Arms (or re-arms) the timer to fire once at `deadline` (wzp_now() time). A
 * deadline already past fires on the next loop iteration. Returns WZP_ERR_NOMEM
 * only when the heap had to grow and could not.
 */
int wzp_timer_start(wzp_loop *loop, wzp_timer *t, wzp_ts deadline);
/* Disarms; no-op if not armed. Safe from any callback. */
void wzp_timer_stop(wzp_loop *loop, wzp_timer *t);
bool wzp_timer_active(const wzp_timer *t);

/* --- cross-thread calls ------------------------------------------------------------ */

typedef void (*wzp_post_fn)(wzp_loop *loop, void *arg);
/*
 * Queues fn(loop, arg) to run on the loop thread, in posting order. Any
 * thread. WZP_ERR_NOMEM if the queue could not grow.
 */
int wzp_loop_post(wzp_loop *loop, wzp_post_fn fn, void *arg);

/* --- signals ------------------------------------------------------------------------ */

typedef void (*wzp_signal_cb)(wzp_loop *loop, int signo, void *arg);
/*
 * Delivers SIGINT and SIGTERM to cb on the loop thread (via signalfd) instead
 * of their default action. Blocks them in the calling thread, so call it
 * before creating other threads (they inherit the mask); the previous mask is
 * restored by wzp_loop_free(). Once per loop.
 */
int wzp_loop_watch_signals(wzp_loop *loop, wzp_signal_cb cb, void *arg);

#endif
