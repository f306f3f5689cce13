#include "net/loop.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "common/log.h"
#include "net/clock.h"

#define LOOP_EVENTS 64

typedef struct post_item {
    wzp_post_fn fn;
    void *arg;
} post_item;

/* A growable array of posted calls; two of them swap so the loop runs one unlocked. */
typedef struct post_queue {
    post_item *items;
    size_t count, cap;
} post_queue;

struct wzp_loop {
    int epfd;
    wzp_ts now;
    atomic_bool stopping;

    /* Events of the current epoll_wait batch; wzp_io_stop() clears entries it owns. */
    struct epoll_event events[LOOP_EVENTS];
    int nevents, cur;
    wzp_io *fed;     /* wzp_io_feed()'s watchers for the next pass, newest first */
    wzp_io *feeding; /* this pass's, being run */

    /* Timers: a binary min-heap ordered by (deadline, seq). epoll_pwait2's nanosecond
     * timeout wakes the loop for the earliest; where the kernel lacks it (before 5.11),
     * a timerfd does, re-armed by a syscall whenever the earliest deadline changes. */
    wzp_timer **heap;
    size_t nheap, heapcap;
    uint64_t seq;
    bool pwait2; /* epoll_pwait2 works: the timerfd stays disarmed */
    wzp_io timer_io;
    wzp_ts armed; /* deadline the timerfd is set to, WZP_TS_NEVER for disarmed */

    /* Posted calls: `pending` filled under lock by any thread, `running` drained unlocked. */
    pthread_mutex_t lock;
    post_queue pending, running;
    wzp_io wake_io; /* eventfd */

    /* Signals (optional). */
    wzp_io signal_io;
    wzp_signal_cb signal_cb;
    void *signal_arg;
    sigset_t old_mask;
};

/* --- timer heap --------------------------------------------------------------------- */

static bool timer_before(const wzp_timer *a, const wzp_timer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_set(wzp_loop *loop, size_t i, wzp_timer *t)
{
    loop->heap[i] = t;
    t->slot = i;
}

static void heap_up(wzp_loop *loop, size_t i)
{
    wzp_timer *t = loop->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!timer_before(t, loop->heap[parent]))
            break;
        heap_set(loop, i, loop->heap[parent]);
        i = parent;
    }
    heap_set(loop, i, t);
}

static void heap_down(wzp_loop *loop, size_t i)
{
    wzp_timer *t = loop->heap[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= loop->nheap)
            break;
        if (child + 1 < loop->nheap && timer_before(loop->heap[child + 1], loop->heap[child]))
            child++;
        if (!timer_before(loop->heap[child], t))
            break;
        heap_set(loop, i, loop->heap[child]);
        i = child;
    }
    heap_set(loop, i, t);
}

static void heap_remove(wzp_loop *loop, wzp_timer *t)
{
    size_t i = t->slot;
    wzp_timer *last = loop->heap[--loop->nheap];
    t->slot = SIZE_MAX;
    if (last == t)
        return;
    heap_set(loop, i, last);
    heap_up(loop, i);
    heap_down(loop, last->slot);
}

void wzp_timer_init(wzp_timer *t, wzp_timer_cb cb, void *arg)
{
    memset(t, 0, sizeof(*t));
    t->slot = SIZE_MAX;
    t->cb = cb;
    t->arg = arg;
}

bool wzp_timer_active(const wzp_timer *t)
{
    return t->slot != SIZE_MAX;
}

int wzp_timer_start(wzp_loop *loop, wzp_timer *t, wzp_ts deadline)
{
    if (wzp_timer_active(t))
        heap_remove(loop, t);
    if (loop->nheap == loop->heapcap) {
        size_t cap = loop->heapcap ? loop->heapcap * 2 : 16;
        wzp_timer **h = realloc(loop->heap, cap * sizeof(*h));
        if (!h)
            return WZP_ERR_NOMEM;
        loop->heap = h;
        loop->heapcap = cap;
    }
    t->deadline = deadline;
    t->seq = loop->seq++;
    heap_set(loop, loop->nheap++, t);
    heap_up(loop, t->slot);
    return 0;
}

void wzp_timer_stop(wzp_loop *loop, wzp_timer *t)
{
    if (wzp_timer_active(t))
        heap_remove(loop, t);
}

/*
 * Fires every timer due at `now` that was armed before this pass began, so a
 * callback re-arming itself in the past cannot starve the loop; it fires on
 * the next iteration instead.
 */
static void run_timers(wzp_loop *loop)
{
    uint64_t seq_limit = loop->seq;
    while (loop->nheap && !atomic_load(&loop->stopping)) {
        wzp_timer *t = loop->heap[0];
        if (t->deadline > loop->now || t->seq >= seq_limit)
            break;
        heap_remove(loop, t);
        t->cb(loop, t);
    }
}

/* Points the timerfd at the earliest deadline, touching it only when that changed. */
static void arm_timerfd(wzp_loop *loop)
{
    wzp_ts next = loop->nheap ? loop->heap[0]->deadline : WZP_TS_NEVER;
    if (next == loop->armed)
        return;
    struct itimerspec its;
    memset(&its, 0, sizeof(its));
    if (next != WZP_TS_NEVER) {
        /* An all-zero it_value disarms the timerfd; a past deadline must fire at once. */
        wzp_ts at = next ? next : 1;
        its.it_value.tv_sec = (time_t)(at / 1000000000ULL);
        its.it_value.tv_nsec = (long)(at % 1000000000ULL);
    }
    if (timerfd_settime(loop->timer_io.fd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
        WZP_ERROR("timerfd_settime: %s", strerror(errno));
        return;
    }
    loop->armed = next;
}

static void on_timerfd(wzp_loop *loop, wzp_io *io, unsigned events)
{
    uint64_t expirations;
    /* Only clears the readiness; run_timers() decides what is due by the clock. */
    if (read(io->fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
        WZP_WARN("timerfd read: %s", strerror(errno));
    loop->armed = WZP_TS_NEVER; /* it fired: re-arm for whatever is next */
}

/* --- fd watchers ------------------------------------------------------------------ */

void wzp_io_init(wzp_io *io, wzp_io_cb cb, void *arg)
{
    io->fd = -1;
    io->events = 0;
    io->cb = cb;
    io->arg = arg;
    io->fed = 0;
    io->fed_next = NULL;
}

void wzp_io_feed(wzp_loop *loop, wzp_io *io, unsigned events)
{
    if (io->fd < 0 || !events)
        return;
    if (!io->fed) {
        io->fed_next = loop->fed;
        loop->fed = io;
    }
    io->fed |= events;
}

static bool unlink_fed(wzp_io **list, wzp_io *io)
{
    for (wzp_io **p = list; *p; p = &(*p)->fed_next) {
        if (*p == io) {
            *p = io->fed_next;
            return true;
        }
    }
    return false;
}

static void unfeed(wzp_loop *loop, wzp_io *io)
{
    if (!unlink_fed(&loop->fed, io))
        unlink_fed(&loop->feeding, io);
    io->fed = 0;
    io->fed_next = NULL;
}

/* The watchers fed before this pass, once each: one fed again from a callback runs in
 * the next pass; one stopped from a callback does not run. */
static void dispatch_fed(wzp_loop *loop)
{
    loop->feeding = loop->fed;
    loop->fed = NULL;
    while (loop->feeding && !atomic_load(&loop->stopping)) {
        wzp_io *io = loop->feeding;
        unsigned bits = io->fed;
        loop->feeding = io->fed_next;
        io->fed = 0;
        io->fed_next = NULL;
        io->cb(loop, io, bits);
    }
    /* Stopping: whatever was not run waits for the next run(). */
    while (loop->feeding) {
        wzp_io *io = loop->feeding;
        loop->feeding = io->fed_next;
        io->fed_next = loop->fed;
        loop->fed = io;
    }
}

static uint32_t epoll_bits(unsigned events)
{
    return ((events & WZP_IO_READ) ? EPOLLIN : 0u) | ((events & WZP_IO_WRITE) ? EPOLLOUT : 0u);
}

int wzp_io_start(wzp_loop *loop, wzp_io *io, int fd, unsigned events)
{
    if (io->fd >= 0 || fd < 0)
        return WZP_ERR_INVALID;
    struct epoll_event ev = {.events = epoll_bits(events), .data.ptr = io};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        WZP_WARN("epoll_ctl add fd %d: %s", fd, strerror(errno));
        return WZP_ERR_IO;
    }
    io->fd = fd;
    io->events = events;
    return 0;
}

int wzp_io_modify(wzp_loop *loop, wzp_io *io, unsigned events)
{
    if (io->fd < 0)
        return WZP_ERR_INVALID;
    if (events == io->events)
        return 0;
    struct epoll_event ev = {.events = epoll_bits(events), .data.ptr = io};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0) {
        WZP_WARN("epoll_ctl mod fd %d: %s", io->fd, strerror(errno));
        return WZP_ERR_IO;
    }
    io->events = events;
    return 0;
}

void wzp_io_stop(wzp_loop *loop, wzp_io *io)
{
    if (io->fd < 0)
        return;
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
    if (io->fed)
        unfeed(loop, io);
    io->fd = -1;
    io->events = 0;
    /* The caller may free io right after this: forget events already fetched for it. */
    for (int i = loop->cur + 1; i < loop->nevents; i++)
        if (loop->events[i].data.ptr == io)
            loop->events[i].data.ptr = NULL;
}

static void dispatch_io(wzp_loop *loop)
{
    for (loop->cur = 0; loop->cur < loop->nevents; loop->cur++) {
        if (atomic_load(&loop->stopping))
            break;
        struct epoll_event *ev = &loop->events[loop->cur];
        wzp_io *io = ev->data.ptr;
        if (!io)
            continue;
        unsigned bits = 0;
        if (ev->events & EPOLLIN)
            bits |= WZP_IO_READ;
        if (ev->events & EPOLLOUT)
            bits |= WZP_IO_WRITE;
        if (ev->events & (EPOLLERR | EPOLLHUP))
            bits |= WZP_IO_ERROR;
        io->cb(loop, io, bits);
    }
    loop->nevents = 0;
    loop->cur = 0;
}

/* --- posting --------------------------------------------------------------------- */

static void wake(wzp_loop *loop)
{
    uint64_t one = 1;
    /* EAGAIN means the counter is saturated, i.e. a wakeup is pending anyway. */
    ssize_t rv = write(loop->wake_io.fd, &one, sizeof(one));
    (void)rv;
}

int wzp_loop_post(wzp_loop *loop, wzp_post_fn fn, void *arg)
{
    pthread_mutex_lock(&loop->lock);
    post_queue *q = &loop->pending;
    if (q->count == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 16;
        post_item *items = realloc(q->items, cap * sizeof(*items));
        if (!items) {
            pthread_mutex_unlock(&loop->lock);
            return WZP_ERR_NOMEM;
        }
        q->items = items;
        q->cap = cap;
    }
    q->items[q->count++] = (post_item){fn, arg};
    bool first = q->count == 1;
    pthread_mutex_unlock(&loop->lock);
    /* One wakeup per batch: later posts find the loop already woken. */
    if (first)
        wake(loop);
    return 0;
}

static void on_wake(wzp_loop *loop, wzp_io *io, unsigned events)
{
    uint64_t count;
    if (read(io->fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        WZP_WARN("eventfd read: %s", strerror(errno));

    pthread_mutex_lock(&loop->lock);
    post_queue tmp = loop->pending;
    loop->pending = loop->running;
    loop->running = tmp;
    pthread_mutex_unlock(&loop->lock);

    /* The whole batch runs even if one call stops the loop: nothing posted is lost. */
    post_queue *q = &loop->running;
    for (size_t i = 0; i < q->count; i++)
        q->items[i].fn(loop, q->items[i].arg);
    q->count = 0;
}

/* --- signals ---------------------------------------------------------------------- */

static void on_signal(wzp_loop *loop, wzp_io *io, unsigned events)
{
    struct signalfd_siginfo si;
    while (read(io->fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
        loop->signal_cb(loop, (int)si.ssi_signo, loop->signal_arg);
}

int wzp_loop_watch_signals(wzp_loop *loop, wzp_signal_cb cb, void *arg)
{
    if (!cb || loop->signal_io.fd >= 0)
        return WZP_ERR_INVALID;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &set, &loop->old_mask) != 0)
        return WZP_ERR_IO;
    int fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (fd < 0) {
        pthread_sigmask(SIG_SETMASK, &loop->old_mask, NULL);
        return WZP_ERR_IO;
    }
    loop->signal_cb = cb;
    loop->signal_arg = arg;
    int rv = wzp_io_start(loop, &loop->signal_io, fd, WZP_IO_READ);
    if (rv < 0) {
        close(fd);
        pthread_sigmask(SIG_SETMASK, &loop->old_mask, NULL);
    }
    return rv;
}

/* --- the loop itself -------------------------------------------------------------- */

int wzp_loop_new(wzp_loop **out)
{
    if (!out)
        return WZP_ERR_INVALID;
    wzp_loop *loop = calloc(1, sizeof(*loop));
    if (!loop)
        return WZP_ERR_NOMEM;
    loop->epfd = -1;
    loop->armed = WZP_TS_NEVER;
    loop->pwait2 = true;
    atomic_init(&loop->stopping, false);
    wzp_io_init(&loop->timer_io, on_timerfd, NULL);
    wzp_io_init(&loop->wake_io, on_wake, NULL);
    wzp_io_init(&loop->signal_io, on_signal, NULL);
    if (pthread_mutex_init(&loop->lock, NULL) != 0) {
        free(loop);
        return WZP_ERR_NOMEM;
    }
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (loop->epfd < 0 || tfd < 0 || efd < 0 ||
        wzp_io_start(loop, &loop->timer_io, tfd, WZP_IO_READ) < 0) {
        if (tfd >= 0)
            close(tfd);
        if (efd >= 0)
            close(efd);
        goto fail;
    }
    if (wzp_io_start(loop, &loop->wake_io, efd, WZP_IO_READ) < 0) {
        close(efd);
        goto fail;
    }
    loop->now = wzp_now();
    *out = loop;
    return 0;
fail:
    WZP_ERROR("event loop setup: %s", strerror(errno));
    wzp_loop_free(loop);
    return WZP_ERR_IO;
}

void wzp_loop_free(wzp_loop *loop)
{
    if (!loop)
        return;
    int fds[3] = {loop->timer_io.fd, loop->wake_io.fd, loop->signal_io.fd};
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (loop->signal_io.fd >= 0)
        pthread_sigmask(SIG_SETMASK, &loop->old_mask, NULL);
    if (loop->epfd >= 0)
        close(loop->epfd);
    for (size_t i = 0; i < loop->nheap; i++)
        loop->heap[i]->slot = SIZE_MAX;
    free(loop->heap);
    free(loop->pending.items);
    free(loop->running.items);
    pthread_mutex_destroy(&loop->lock);
    free(loop);
}

void wzp_loop_stop(wzp_loop *loop)
{
    atomic_store(&loop->stopping, true);
    wake(loop);
}

void wzp_loop_use_timerfd(wzp_loop *loop)
{
    loop->pwait2 = false;
}

wzp_ts wzp_loop_now(const wzp_loop *loop)
{
    return loop->now;
}

/* Waits for fd events until the earliest timer's deadline. */
static int wait_events(wzp_loop *loop)
{
    wzp_ts next = loop->nheap ? loop->heap[0]->deadline : WZP_TS_NEVER, now = wzp_now();
    /* A timer due now (re-armed during the pass), or a watcher fed, must not wait for an
     * fd event. */
    bool due = next <= now || loop->fed;
    if (loop->pwait2) {
        struct timespec ts = {0, 0};
        if (!due && next != WZP_TS_NEVER) {
            wzp_ts d = next - now;
            ts.tv_sec = (time_t)(d / 1000000000ULL);
            ts.tv_nsec = (long)(d % 1000000000ULL);
        }
        int n = epoll_pwait2(loop->epfd, loop->events, LOOP_EVENTS,
                             due || next != WZP_TS_NEVER ? &ts : NULL, NULL);
        if (n >= 0 || errno != ENOSYS)
            return n;
        loop->pwait2 = false;
    }
    if (!due)
        arm_timerfd(loop);
    return epoll_wait(loop->epfd, loop->events, LOOP_EVENTS, due ? 0 : -1);
}

/* The loop this thread is running, for wzp_loop_is_current(). */
static _Thread_local const wzp_loop *current;

bool wzp_loop_is_current(const wzp_loop *loop)
{
    return loop && current == loop;
}

int wzp_loop_run(wzp_loop *loop)
{
    const wzp_loop *outer = current;
    current = loop;
    while (!atomic_load(&loop->stopping)) {
        loop->now = wzp_now();
        run_timers(loop);
        if (atomic_load(&loop->stopping))
            break;
        int n = wait_events(loop);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            WZP_ERROR("epoll_wait: %s", strerror(errno));
            current = outer;
            return WZP_ERR_IO;
        }
        loop->nevents = n;
        loop->now = wzp_now();
        dispatch_io(loop);
        dispatch_fed(loop);
    }
    /* A stop requested before run() started counts; the next run() starts afresh. */
    atomic_store(&loop->stopping, false);
    current = outer;
    return 0;
}
