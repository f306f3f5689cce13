/* Unit tests for src/net/loop: timers, posting from threads, fd watchers, signals, stop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "net/clock.h"
#include "net/loop.h"

/* Every test arms this: if the behaviour under test is broken the loop still ends, and fails. */
static void on_watchdog(wzp_loop *loop, wzp_timer *t)
{
    *(bool *)t->arg = true;
    wzp_loop_stop(loop);
}

typedef struct fixture {
    wzp_loop *loop;
    wzp_timer watchdog;
    bool timed_out;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_int_equal(wzp_loop_new(&f->loop), 0);
    wzp_timer_init(&f->watchdog, on_watchdog, &f->timed_out);
    assert_int_equal(wzp_timer_start(f->loop, &f->watchdog, wzp_now() + WZP_SEC(10)), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    wzp_loop_free(f->loop);
    free(f);
    return 0;
}

/* --- timers -------------------------------------------------------------------------- */

typedef struct order_log {
    int fired[16];
    int n;
    int stop_after;
} order_log;

typedef struct tagged_timer {
    wzp_timer t;
    int tag;
    order_log *log;
} tagged_timer;

static void on_tagged(wzp_loop *loop, wzp_timer *t)
{
    tagged_timer *tt = t->arg;
    tt->log->fired[tt->log->n++] = tt->tag;
    if (tt->log->n == tt->log->stop_after)
        wzp_loop_stop(loop);
}

static void test_timer_order_and_cancel(void **state)
{
    fixture *f = *state;
    order_log log = {.stop_after = 4};
    tagged_timer t[5];
    wzp_ts now = wzp_now();
    wzp_ts when[5] = {now + WZP_MS(30), now + WZP_MS(10), now + WZP_MS(20), now + WZP_MS(10),
                      now + WZP_MS(5)};
    for (int i = 0; i < 5; i++) {
        t[i].tag = i;
        t[i].log = &log;
        wzp_timer_init(&t[i].t, on_tagged, &t[i]);
        assert_int_equal(wzp_timer_start(f->loop, &t[i].t, when[i]), 0);
    }
    wzp_timer_stop(f->loop, &t[4].t); /* cancelled: never fires */
    assert_false(wzp_timer_active(&t[4].t));
    assert_true(wzp_timer_active(&t[0].t));
    assert_int_equal(wzp_loop_run(f->loop), 0);
    assert_false(f->timed_out);
    assert_int_equal(log.n, 4);
    /* Deadline order; equal deadlines in start order. */
    int want[4] = {1, 3, 2, 0};
    assert_memory_equal(log.fired, want, sizeof(want));
    assert_false(wzp_timer_active(&t[0].t));
}

static void test_timer_rearm_moves_deadline(void **state)
{
    fixture *f = *state;
    order_log log = {.stop_after = 2};
    tagged_timer a = {.tag = 1, .log = &log}, b = {.tag = 2, .log = &log};
    wzp_timer_init(&a.t, on_tagged, &a);
    wzp_timer_init(&b.t, on_tagged, &b);
    wzp_ts now = wzp_now();
    wzp_timer_start(f->loop, &a.t, now + WZP_MS(1));
    wzp_timer_start(f->loop, &b.t, now + WZP_MS(20));
    /* Re-arming a pending timer replaces its deadline (not a second instance). */
    wzp_timer_start(f->loop, &a.t, now + WZP_MS(40));
    assert_int_equal(wzp_loop_run(f->loop), 0);
    assert_int_equal(log.n, 2);
    assert_int_equal(log.fired[0], 2);
    assert_int_equal(log.fired[1], 1);
}

typedef struct periodic {
    wzp_timer t;
    int count;
} periodic;

static void on_periodic(wzp_loop *loop, wzp_timer *t)
{
    periodic *p = t->arg;
    if (++p->count == 5) {
        wzp_loop_stop(loop);
        return;
    }
    /* Re-arm from its own callback, once in the past (must still fire, not spin or be lost). */
    wzp_ts next = p->count == 2 ? wzp_loop_now(loop) - WZP_MS(50) : wzp_loop_now(loop) + WZP_MS(2);
    wzp_timer_start(loop, t, next);
}

static void test_timer_rearm_from_callback(void **state)
{
    fixture *f = *state;
    periodic p = {.count = 0};
    wzp_timer_init(&p.t, on_periodic, &p);
    wzp_timer_start(f->loop, &p.t, wzp_now());
    assert_int_equal(wzp_loop_run(f->loop), 0);
    assert_false(f->timed_out);
    assert_int_equal(p.count, 5);
}

static void test_past_deadline_fires(void **state)
{
    fixture *f = *state;
    order_log log = {.stop_after = 2};
    tagged_timer a = {.tag = 1, .log = &log}, b = {.tag = 2, .log = &log};
    wzp_timer_init(&a.t, on_tagged, &a);
    wzp_timer_init(&b.t, on_tagged, &b);
    /* Deadline 0 (the timerfd would read all-zero as "disarm") and one a second ago. */
    wzp_timer_start(f->loop, &a.t, 0);
    wzp_timer_start(f->loop, &b.t, wzp_now() - WZP_SEC(1));
    assert_int_equal(wzp_loop_run(f->loop), 0);
    assert_false(f->timed_out);
    assert_int_equal(log.n, 2);
    assert_int_equal(log.fired[0], 1);
}

/* Many timers, random deadlines, random stops and re-arms: the heap must keep them ordered. */
typedef struct heap_item {
    wzp_timer t;
    wzp_ts deadline;
    bool live;
    bool fired;
} heap_item;

static wzp_ts g_last_fired;
static bool g_heap_order_ok;
static int g_heap_fired;

static void on_heap_item(wzp_loop *loop, wzp_timer *t)
{
    heap_item *it = t->arg;
    if (!it->live || it->fired || t->deadline < g_last_fired)
        g_heap_order_ok = false;
    g_last_fired = t->deadline;
    it->fired = true;
    g_heap_fired++;
}

static void on_heap_done(wzp_loop *loop, wzp_timer *t)
{
    wzp_loop_stop(loop);
}

static void test_timer_heap_stress(void **state)
{
    fixture *f = *state;
    enum { N = 500 };
    static heap_item items[N];
    uint32_t rng = 12345;
    /* All deadlines in the past, so one pass fires them all in deadline order. */
    wzp_ts base = wzp_now() - WZP_SEC(100);
    for (int i = 0; i < N; i++) {
        rng = rng * 1103515245u + 12345u;
        items[i] = (heap_item){.deadline = base + (rng >> 8) % 1000000, .live = true};
        wzp_timer_init(&items[i].t, on_heap_item, &items[i]);
        assert_int_equal(wzp_timer_start(f->loop, &items[i].t, items[i].deadline), 0);
    }
    int live = N;
    for (int round = 0; round < 3 * N; round++) {
        rng = rng * 1103515245u + 12345u;
        heap_item *it = &items[(rng >> 8) % N];
        if ((rng >> 4) % 3 == 0 && it->live) {
            wzp_timer_stop(f->loop, &it->t);
            it->live = false;
            live--;
        } else {
            it->deadline = base + (rng >> 3) % 1000000;
            if (!it->live)
                live++;
            it->live = true;
            assert_int_equal(wzp_timer_start(f->loop, &it->t, it->deadline), 0);
        }
    }
    wzp_timer done;
    wzp_timer_init(&done, on_heap_done, NULL);
    wzp_timer_start(f->loop, &done, wzp_now() + WZP_MS(1));
    g_last_fired = 0;
    g_heap_order_ok = true;
    g_heap_fired = 0;
    assert_int_equal(wzp_loop_run(f->loop), 0);
    assert_false(f->timed_out);
    assert_true(g_heap_order_ok);
    assert_int_equal(g_heap_fired, live);
    for (int i = 0; i < N; i++) {
        assert_int_equal(items[i].fired, items[i].live);
        assert_false(wzp_timer_active(&items[i].t));
    }
}

/* --- stop ----------------------------------------------------------------------------- */

static void test_stop_before_run(void **state)
{
    fixture *f = *state;
    wzp_loop_stop(f->loop);
    assert_int_equal(wzp_loop_run(f->loop), 0);
    assert_false(f->timed_out);
    /* The loop can run again afterwards. */
    periodic p = {.count = 4};
    wzp_timer_init(&p.t, on_periodic, &p);
    wzp_timer_start(f->loop, &p.t, wzp_now());
    assert_int_equal(wzp_loop_run(f->loop), 0);
    assert_int_equal(p.count, 5);
}

/* --- posting from threads ----------------------------------------------------------- */

enum { POSTS = 5000 };

typedef struct post_state {
    wzp_loop *loop;
    int seen[2];
    bool in_order;
    pthread_t loop_thread;
    bool on_loop_thread;
} post_state;

static post_state *g_ps;

static void on_post_item(wzp_loop *loop, void *arg)
{
    uintptr_t v = (uintptr_t)arg;
    int th = (int)(v >> 16), seq = (int)(v & 0xffff);
    if (seq != g_ps->seen[th])
        g_ps->in_order = false;
    g_ps->seen[th]++;
    if (!pthread_equal(pthread_self(), g_ps->loop_thread))
        g_ps->on_loop_thread = false;
    if (g_ps->seen[0] == POSTS && g_ps->seen[1] == POSTS)
        wzp_loop_stop(loop);
}

static void *poster(void *arg)
{
    uintptr_t th = (uintptr_t)arg;
    for (uintptr_t i = 0; i < POSTS; i++) {
        while (wzp_loop_post(g_ps->loop, on_post_item, (void *)(th << 16 | i)) != 0)
            usleep(100);
        if (i % 512 == 0)
            usleep(50); /* let the loop drain mid-stream sometimes */
    }
    return NULL;
}

static void test_post_from_threads(void **state)
{
    fixture *f = *state;
    post_state ps = {
        .loop = f->loop, .in_order = true, .on_loop_thread = true, .loop_thread = pthread_self()};
    g_ps = &ps;
    pthread_t th[2];
    for (uintptr_t i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, poster, (void *)i), 0);
    assert_int_equal(wzp_loop_run(f->loop), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_false(f->timed_out);
    assert_int_equal(ps.seen[0], POSTS);
    assert_int_equal(ps.seen[1], POSTS);
    assert_true(ps.in_order);
    assert_true(ps.on_loop_thread);
}

static void *stopper(void *arg)
{
    usleep(20000);
    wzp_loop_stop(arg);
    return NULL;
}

static void test_stop_from_thread(void **state)
{
    fixture *f = *state;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, stopper, f->loop), 0);
    assert_int_equal(wzp_loop_run(f->loop), 0);
    pthread_join(th, NULL);
    assert_false(f->timed_out);
}

/* --- fd watchers --------------------------------------------------------------------- */

typedef struct pipe_state {
    wzp_io rd, wr, other;
    int fds[2];
    char got[8];
    int writes, reads;
    int other_fired;
} pipe_state;

static void on_pipe_write(wzp_loop *loop, wzp_io *io, unsigned events)
{
    pipe_state *ps = io->arg;
    assert_true(events & WZP_IO_WRITE);
    assert_int_equal(write(io->fd, "ping", 4), 4);
    ps->writes++;
    /* Writable again at once: stop watching for it, from inside its own callback. */
    wzp_io_stop(loop, io);
}

static void on_pipe_read(wzp_loop *loop, wzp_io *io, unsigned events)
{
    pipe_state *ps = io->arg;
    assert_true(events & WZP_IO_READ);
    assert_int_equal(read(io->fd, ps->got, sizeof(ps->got)), 4);
    ps->reads++;
    /* Stopping another watcher whose event may already be fetched must drop that event. */
    wzp_io_stop(loop, &ps->other);
    wzp_loop_stop(loop);
}

static void on_other(wzp_loop *loop, wzp_io *io, unsigned events)
{
    pipe_state *ps = io->arg;
    ps->other_fired++;
}

static void test_fd_watcher(void **state)
{
    fixture *f = *state;
    pipe_state ps;
    memset(&ps, 0, sizeof(ps));
    assert_int_equal(pipe(ps.fds), 0);
    int other[2];
    assert_int_equal(pipe(other), 0);
    assert_int_equal(write(other[1], "x", 1), 1); /* always readable */
    wzp_io_init(&ps.rd, on_pipe_read, &ps);
    wzp_io_init(&ps.wr, on_pipe_write, &ps);
    wzp_io_init(&ps.other, on_other, &ps);
    assert_int_equal(wzp_io_start(f->loop, &ps.rd, ps.fds[0], WZP_IO_READ), 0);
    assert_int_equal(wzp_io_start(f->loop, &ps.rd, ps.fds[0], WZP_IO_READ), WZP_ERR_INVALID);
    assert_int_equal(wzp_io_start(f->loop, &ps.wr, ps.fds[1], 0), 0);
    assert_int_equal(wzp_io_modify(f->loop, &ps.wr, WZP_IO_WRITE), 0);
    assert_int_equal(wzp_io_start(f->loop, &ps.other, other[0], WZP_IO_READ), 0);

    assert_int_equal(wzp_loop_run(f->loop), 0);
    assert_false(f->timed_out);
    assert_int_equal(ps.writes, 1);
    assert_int_equal(ps.reads, 1);
    assert_memory_equal(ps.got, "ping", 4);
    assert_int_equal(ps.wr.fd, -1);
    assert_int_equal(ps.other.fd, -1);
    int fired_before = ps.other_fired;
    /* A stopped watcher stays silent even though its fd is still readable. */
    periodic p = {.count = 4};
    wzp_timer_init(&p.t, on_periodic, &p);
    wzp_timer_start(f->loop, &p.t, wzp_now() + WZP_MS(5));
    wzp_io_stop(f->loop, &ps.rd);
    assert_int_equal(wzp_loop_run(f->loop), 0);
    assert_int_equal(ps.other_fired, fired_before);
    close(ps.fds[0]);
    close(ps.fds[1]);
    close(other[0]);
    close(other[1]);
}

/* --- signals ------------------------------------------------------------------------ */

static void on_sig(wzp_loop *loop, int signo, void *arg)
{
    *(int *)arg = signo;
    wzp_loop_stop(loop);
}

static void raise_term(wzp_loop *loop, wzp_timer *t)
{
    pthread_kill(pthread_self(), SIGTERM);
}

static void test_signals(void **state)
{
    fixture *f = *state;
    int got = 0;
    assert_int_equal(wzp_loop_watch_signals(f->loop, on_sig, &got), 0);
    assert_int_equal(wzp_loop_watch_signals(f->loop, on_sig, &got), WZP_ERR_INVALID);
    wzp_timer t;
    wzp_timer_init(&t, raise_term, NULL);
    wzp_timer_start(f->loop, &t, wzp_now());
    assert_int_equal(wzp_loop_run(f->loop), 0);
    assert_false(f->timed_out);
    assert_int_equal(got, SIGTERM);
    /* teardown frees the loop and restores the old mask */
}

/* --- the timerfd (kernels without epoll_pwait2) -------------------------------------- */

static void test_timerfd_order_and_cancel(void **state)
{
    wzp_loop_use_timerfd(((fixture *)*state)->loop);
    test_timer_order_and_cancel(state);
}

static void test_timerfd_rearm_moves_deadline(void **state)
{
    wzp_loop_use_timerfd(((fixture *)*state)->loop);
    test_timer_rearm_moves_deadline(state);
}

static void test_timerfd_heap_stress(void **state)
{
    wzp_loop_use_timerfd(((fixture *)*state)->loop);
    test_timer_heap_stress(state);
}

WZP_TEST_MAIN_EACH(NULL, NULL, setup, teardown, test_timer_order_and_cancel,
                   test_timer_rearm_moves_deadline, test_timer_rearm_from_callback,
                   test_past_deadline_fires, test_timer_heap_stress, test_timerfd_order_and_cancel,
                   test_timerfd_rearm_moves_deadline, test_timerfd_heap_stress,
                   test_stop_before_run, test_post_from_threads, test_stop_from_thread,
                   test_fd_watcher, test_signals)
