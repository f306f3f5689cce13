/*
 * PulseAudio backend (also PipeWire through pipewire-pulse).
 *
 * pa_simple cannot time out, so each stream runs the asynchronous API on its
 * own pa_threaded_mainloop and read/write wait on the mainloop's condition
 * with a deadline: one time event per stream, created at open and re-armed
 * with time_restart (no allocation), signals the waiter when the deadline
 * passes. Stream and context state callbacks signal too, so a killed stream
 * (sink unloaded: without module-rescue-streams the server kills it) or a
 * dead server wakes the waiter at once and surfaces as WZP_ERR_DEVICE.
 */
#include "audio/backend.h"

#include <pulse/pulseaudio.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"

#define PULSE_RATE         48000u
#define PULSE_MAX_SAMPLES  4800u
#define AVAILABLE_MS       300u  /* available(): the server must answer within this */
#define CONNECT_MS         3000u /* open() and list(): connecting and creating the stream */
#define DEFAULT_PERIOD     480u
#define DEFAULT_LATENCY_MS 20u

struct wzp_audio_stream {
    pa_threaded_mainloop *ml;
    pa_mainloop_api *api;
    pa_context *ctx;
    pa_stream *st;
    pa_time_event *timer; /* the deadline of the wait in progress */
    bool timed_out;       /* set by the timer, under the mainloop lock */
    bool failed;          /* sticky: after an error only close is valid */
    wzp_audio_dir dir;
    /* Capture: the fragment pa_stream_peek returned and how much of it was consumed. A fragment
       is dropped only once used up, so reads of any size stay exact. */
    const uint8_t *frag;
    size_t frag_len, frag_off;
    bool frag_held;
    char name[WZP_AUDIO_NAME_MAX];
};

static void copy_name(char *dst, const char *src)
{
    snprintf(dst, WZP_AUDIO_NAME_MAX, "%s", src ? src : "");
}

/* ---- Callbacks: all run on the mainloop thread with its lock held. ---- */

static void signal_cb_ctx(pa_context *c, void *u)
{
    (void)c;
    pa_threaded_mainloop_signal(((wzp_audio_stream *)u)->ml, 0);
}

static void signal_cb_st(pa_stream *st, void *u)
{
    (void)st;
    pa_threaded_mainloop_signal(((wzp_audio_stream *)u)->ml, 0);
}

static void signal_cb_io(pa_stream *st, size_t n, void *u)
{
    (void)st;
    (void)n;
    pa_threaded_mainloop_signal(((wzp_audio_stream *)u)->ml, 0);
}

static void timer_cb(pa_mainloop_api *a, pa_time_event *e, const struct timeval *tv, void *u)
{
    (void)a;
    (void)e;
    (void)tv;
    wzp_audio_stream *s = u;
    s->timed_out = true;
    pa_threaded_mainloop_signal(s->ml, 0);
}

/* Arms the stream's deadline ms from now (lock held). The context's rttime helpers use the
   monotonic clock that the mainloop's time events run on. */
static void arm(wzp_audio_stream *s, unsigned ms)
{
    s->timed_out = false;
    pa_context_rttime_restart(s->ctx, s->timer, pa_rtclock_now() + (pa_usec_t)ms * 1000);
}

static void disarm(wzp_audio_stream *s)
{
    pa_context_rttime_restart(s->ctx, s->timer, PA_USEC_INVALID);
}

/* The stream and its context are alive (lock held). */
static bool alive(wzp_audio_stream *s)
{
    return pa_context_get_state(s->ctx) == PA_CONTEXT_READY &&
           pa_stream_get_state(s->st) == PA_STREAM_READY;
}

/* ---- open / close ---- */

static void pulse_close(wzp_audio_stream *s)
{
    if (!s)
        return;
    /* Stop the thread first: afterwards nothing runs callbacks, and the objects can be released
       without the lock. */
    if (s->ml)
        pa_threaded_mainloop_stop(s->ml);
    if (s->st) {
        pa_stream_set_state_callback(s->st, NULL, NULL);
        pa_stream_set_read_callback(s->st, NULL, NULL);
        pa_stream_set_write_callback(s->st, NULL, NULL);
        if (s->frag_held)
            pa_stream_drop(s->st);
        pa_stream_disconnect(s->st);
        pa_stream_unref(s->st);
    }
    if (s->ctx) {
        pa_context_set_state_callback(s->ctx, NULL, NULL);
        pa_context_disconnect(s->ctx);
        pa_context_unref(s->ctx);
    }
    if (s->timer)
        s->api->time_free(s->timer);
    if (s->ml)
        pa_threaded_mainloop_free(s->ml);
    free(s);
}

/* Waits (lock held) until the stream is READY, or the context while there is no stream yet;
   false on failure or after the deadline. */
static bool wait_ready(wzp_audio_stream *s)
{
    arm(s, CONNECT_MS);
    bool ok = false;
    for (;;) {
        pa_stream_state_t ss = s->st ? pa_stream_get_state(s->st) : PA_STREAM_UNCONNECTED;
        pa_context_state_t cs = pa_context_get_state(s->ctx);
        if (s->st ? ss == PA_STREAM_READY : cs == PA_CONTEXT_READY) {
            ok = true;
            break;
        }
        if ((s->st && !PA_STREAM_IS_GOOD(ss)) || s->timed_out || !PA_CONTEXT_IS_GOOD(cs))
            break;
        pa_threaded_mainloop_wait(s->ml);
    }
    disarm(s);
    return ok;
}

static int pulse_open(wzp_audio_stream **out, const wzp_audio_stream_config *cfg)
{
    if (!out || !cfg || (cfg->dir != WZP_AUDIO_CAPTURE && cfg->dir != WZP_AUDIO_PLAYBACK) ||
        cfg->period_samples > PULSE_MAX_SAMPLES)
        return WZP_ERR_INVALID;
    *out = NULL;
    unsigned latency_ms = cfg->latency_ms ? cfg->latency_ms : DEFAULT_LATENCY_MS;
    const char *dev = cfg->device && cfg->device[0] ? cfg->device : NULL;
    unsigned period = cfg->period_samples ? cfg->period_samples : DEFAULT_PERIOD;
    const char *app = cfg->app_name ? cfg->app_name : "wzp";

    wzp_audio_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return WZP_ERR_NOMEM;
    s->dir = cfg->dir;
    if (!(s->ml = pa_threaded_mainloop_new())) {
        free(s);
        return WZP_ERR_NOMEM;
    }
    s->api = pa_threaded_mainloop_get_api(s->ml);
    if (!(s->ctx = pa_context_new(s->api, app)) ||
        !(s->timer = pa_context_rttime_new(s->ctx, PA_USEC_INVALID, timer_cb, s))) {
        pulse_close(s);
        return WZP_ERR_NOMEM;
    }
    pa_context_set_state_callback(s->ctx, signal_cb_ctx, s);
    /* No autospawn: starting a server from inside a call would block for seconds. */
    if (pa_context_connect(s->ctx, NULL, PA_CONTEXT_NOAUTOSPAWN, NULL) < 0 ||
        pa_threaded_mainloop_start(s->ml) < 0) {
        WZP_DEBUG("pulse: connect: %s", pa_strerror(pa_context_errno(s->ctx)));
        pulse_close(s);
        return WZP_ERR_DEVICE;
    }

    pa_threaded_mainloop_lock(s->ml);
    int rc = WZP_ERR_DEVICE;
    if (!wait_ready(s)) { /* the context: no stream yet */
        WZP_INFO("pulse: no sound server: %s", pa_strerror(pa_context_errno(s->ctx)));
        goto fail;
    }
    pa_sample_spec ss = {.format = PA_SAMPLE_S16NE, .rate = PULSE_RATE, .channels = 1};
    pa_channel_map map;
    pa_channel_map_init_mono(&map);
    if (!(s->st = pa_stream_new(
              s->ctx, cfg->dir == WZP_AUDIO_CAPTURE ? "wzp capture" : "wzp playback", &ss, &map))) {
        rc = WZP_ERR_NOMEM;
        goto fail;
    }
    pa_stream_set_state_callback(s->st, signal_cb_st, s);
    pa_stream_set_read_callback(s->st, signal_cb_io, s);
    pa_stream_set_write_callback(s->st, signal_cb_io, s);

    /* ADJUST_LATENCY: the server sizes the device buffer from tlength/fragsize, so the latency
       asked for is the end-to-end figure, not just our share of it. Timing updates let delay()
       answer without a round trip. */
    uint32_t lat_bytes = (uint32_t)latency_ms * (PULSE_RATE / 1000) * 2;
    pa_buffer_attr attr = {.maxlength = (uint32_t)-1,
                           .tlength = (uint32_t)-1,
                           .prebuf = (uint32_t)-1,
                           .minreq = (uint32_t)-1,
                           .fragsize = (uint32_t)-1};
    pa_stream_flags_t fl =
        PA_STREAM_ADJUST_LATENCY | PA_STREAM_AUTO_TIMING_UPDATE | PA_STREAM_INTERPOLATE_TIMING;
    /* A named device that goes away must surface as WZP_ERR_DEVICE (the caller then reopens the
       default), but PulseAudio >= 14 moves orphaned streams to the default itself: DONT_MOVE
       makes the server kill them instead. On the default device that move is what we want. */
    if (dev)
        fl |= PA_STREAM_DONT_MOVE;
    int err;
    if (cfg->dir == WZP_AUDIO_PLAYBACK) {
        attr.tlength = lat_bytes;
        /* Start playing once one period is queued, not a whole tlength: the sink runs (and its
           monitor delivers at the low latency) as soon as the caller writes. */
        attr.prebuf = period * 2 < lat_bytes ? period * 2 : lat_bytes;
        err = pa_stream_connect_playback(s->st, dev, &attr, fl, NULL, NULL);
    } else {
        attr.fragsize = lat_bytes;
        err = pa_stream_connect_record(s->st, dev, &attr, fl);
    }
    if (err < 0 || !wait_ready(s)) {
        WZP_INFO("pulse: cannot open %s %s: %s", cfg->dir == WZP_AUDIO_CAPTURE ? "source" : "sink",
                 dev ? dev : "(default)", pa_strerror(pa_context_errno(s->ctx)));
        goto fail;
    }
    copy_name(s->name, pa_stream_get_device_name(s->st));
    const pa_buffer_attr *got = pa_stream_get_buffer_attr(s->st);
    if (got)
        WZP_DEBUG("pulse: opened %s (tlength %u, fragsize %u bytes)", s->name, got->tlength,
                  got->fragsize);
    pa_threaded_mainloop_unlock(s->ml);
    *out = s;
    return 0;

fail:
    pa_threaded_mainloop_unlock(s->ml);
    pulse_close(s);
    return rc;
}

/* ---- read / write ---- */

#define IO_WAIT 1 /* a step's answer: nothing to move yet, wait for the server */

/* Playback step (lock held): copies up to `left` bytes from src into the server's buffer;
   0 with *moved set, IO_WAIT when there is no room yet, or WZP_ERR_DEVICE. */
static int write_some(wzp_audio_stream *s, const uint8_t *src, size_t left, size_t *moved)
{
    size_t room = pa_stream_writable_size(s->st);
    if (room == (size_t)-1)
        return WZP_ERR_DEVICE;
    if (room == 0)
        return IO_WAIT;
    size_t chunk = room < left ? room : left;
    /* Copying into the server's buffer directly (begin_write) saves a memblock. */
    void *buf = NULL;
    size_t got = chunk;
    if (pa_stream_begin_write(s->st, &buf, &got) < 0 || !buf)
        return WZP_ERR_DEVICE;
    if (got < chunk)
        chunk = got;
    memcpy(buf, src, chunk);
    if (pa_stream_write(s->st, buf, chunk, NULL, 0, PA_SEEK_RELATIVE) < 0)
        return WZP_ERR_DEVICE;
    *moved = chunk;
    return 0;
}

/* Capture step (lock held): copies up to `left` bytes of the captured fragment into dst;
   0 with *moved set, IO_WAIT when nothing is captured yet, or WZP_ERR_DEVICE. */
static int read_some(wzp_audio_stream *s, uint8_t *dst, size_t left, size_t *moved)
{
    if (!s->frag_held) {
        const void *data = NULL;
        size_t len = 0;
        if (pa_stream_peek(s->st, &data, &len) < 0)
            return WZP_ERR_DEVICE;
        if (len == 0) /* nothing captured yet */
            return IO_WAIT;
        s->frag = data; /* NULL with len > 0: a hole, read as silence */
        s->frag_len = len;
        s->frag_off = 0;
        s->frag_held = true;
    }
    size_t chunk = s->frag_len - s->frag_off;
    if (chunk > left)
        chunk = left;
    if (s->frag)
        memcpy(dst, s->frag + s->frag_off, chunk);
    else
        memset(dst, 0, chunk);
    *moved = chunk;
    s->frag_off += chunk;
    if (s->frag_off == s->frag_len) {
        s->frag_held = false;
        if (pa_stream_drop(s->st) < 0)
            return WZP_ERR_DEVICE;
    }
    return 0;
}

/* The transfer loop of both directions: capture fills rec, playback sends play. */
static int pulse_transfer(wzp_audio_stream *s, wzp_audio_dir dir, int16_t *rec, const int16_t *play,
                          size_t n)
{
    if (!s || (dir == WZP_AUDIO_CAPTURE ? !rec : !play) || n > PULSE_MAX_SAMPLES || s->dir != dir)
        return WZP_ERR_INVALID;
    if (s->failed)
        return WZP_ERR_DEVICE;
    size_t total = n * sizeof(int16_t), done = 0;
    int rc = (int)n;

    pa_threaded_mainloop_lock(s->ml);
    arm(s, WZP_AUDIO_IO_TIMEOUT_MS);
    while (done < total) {
        if (!alive(s)) {
            rc = WZP_ERR_DEVICE;
            break;
        }
        size_t moved = 0;
        int r = dir == WZP_AUDIO_CAPTURE
                    ? read_some(s, (uint8_t *)rec + done, total - done, &moved)
                    : write_some(s, (const uint8_t *)play + done, total - done, &moved);
        if (r < 0) {
            rc = r;
            break;
        }
        if (r == IO_WAIT) {
            if (s->timed_out) {
                rc = WZP_ERR_TIMEOUT;
                break;
            }
            pa_threaded_mainloop_wait(s->ml);
            continue;
        }
        done += moved;
    }
    disarm(s);
    pa_threaded_mainloop_unlock(s->ml);
    /* A timeout leaves the stream usable (the device may move again); a dead one does not. */
    if (rc == WZP_ERR_DEVICE)
        s->failed = true;
    return rc;
}

static int pulse_write(wzp_audio_stream *s, const int16_t *pcm, size_t n)
{
    return pulse_transfer(s, WZP_AUDIO_PLAYBACK, NULL, pcm, n);
}

static int pulse_read(wzp_audio_stream *s, int16_t *pcm, size_t n)
{
    return pulse_transfer(s, WZP_AUDIO_CAPTURE, pcm, NULL, n);
}

static unsigned pulse_delay(wzp_audio_stream *s)
{
    if (!s)
        return 0;
    pa_usec_t us = 0;
    int neg = 0;
    pa_threaded_mainloop_lock(s->ml);
    int r = alive(s) ? pa_stream_get_latency(s->st, &us, &neg) : -1;
    pa_threaded_mainloop_unlock(s->ml);
    if (r < 0 || neg)
        return 0;
    return (unsigned)(us * PULSE_RATE / PA_USEC_PER_SEC);
}

static const char *pulse_device_name(wzp_audio_stream *s)
{
    return s ? s->name : "";
}

/* ---- available / list: a short-lived context on a plain mainloop ---- */

typedef struct pulse_query {
    pa_mainloop *ml;
    pa_context *ctx;
    pa_time_event *timer;
    bool timed_out;
    int pending; /* operations not finished */
    /* list() */
    wzp_audio_device_info *out;
    size_t cap;
    int count;
    char def_sink[WZP_AUDIO_NAME_MAX], def_source[WZP_AUDIO_NAME_MAX];
} pulse_query;

static void query_timer_cb(pa_mainloop_api *a, pa_time_event *e, const struct timeval *tv, void *u)
{
    (void)a;
    (void)e;
    (void)tv;
    ((pulse_query *)u)->timed_out = true;
}

static void query_end(pulse_query *q)
{
    if (q->ctx) {
        pa_context_disconnect(q->ctx);
        pa_context_unref(q->ctx);
    }
    if (q->timer)
        pa_mainloop_get_api(q->ml)->time_free(q->timer);
    if (q->ml)
        pa_mainloop_free(q->ml);
}

/* Runs the loop until `done` says so or the deadline passes. */
static bool query_run(pulse_query *q, bool (*done)(pulse_query *))
{
    while (!done(q)) {
        if (q->timed_out || pa_mainloop_iterate(q->ml, 1, NULL) < 0)
            return false;
    }
    return true;
}

static bool ctx_settled(pulse_query *q)
{
    pa_context_state_t cs = pa_context_get_state(q->ctx);
    return cs == PA_CONTEXT_READY || !PA_CONTEXT_IS_GOOD(cs);
}

static bool ops_done(pulse_query *q)
{
    return q->pending == 0 || !PA_CONTEXT_IS_GOOD(pa_context_get_state(q->ctx));
}

/* Connects a context within ms; false (and q cleaned) if no server answers. */
static bool query_begin(pulse_query *q, unsigned ms)
{
    if (!(q->ml = pa_mainloop_new()))
        return false;
    q->ctx = pa_context_new(pa_mainloop_get_api(q->ml), "wzp");
    if (q->ctx)
        q->timer = pa_context_rttime_new(q->ctx, pa_rtclock_now() + (pa_usec_t)ms * 1000,
                                         query_timer_cb, q);
    if (!q->timer || !q->ctx ||
        pa_context_connect(q->ctx, NULL, PA_CONTEXT_NOAUTOSPAWN, NULL) < 0 ||
        !query_run(q, ctx_settled) || pa_context_get_state(q->ctx) != PA_CONTEXT_READY) {
        query_end(q);
        return false;
    }
    return true;
}

static bool pulse_available(void)
{
    pulse_query q = {0};
    if (!query_begin(&q, AVAILABLE_MS))
        return false;
    query_end(&q);
    return true;
}

static void server_cb(pa_context *c, const pa_server_info *i, void *u)
{
    (void)c;
    pulse_query *q = u;
    if (i) {
        copy_name(q->def_sink, i->default_sink_name);
        copy_name(q->def_source, i->default_source_name);
    }
    q->pending--;
}

static void add_device(pulse_query *q, const char *name, const char *desc, wzp_audio_dir dir,
                       bool is_default)
{
    if ((size_t)q->count < q->cap) {
        wzp_audio_device_info *d = &q->out[q->count];
        copy_name(d->name, name);
        copy_name(d->description, desc ? desc : name);
        d->dir = dir;
        d->is_default = is_default;
    }
    q->count++;
}

/* One entry of a sink or source list (name: NULL for no entry), or its end (eol). */
static void device_cb(pulse_query *q, int eol, const char *name, const char *desc,
                      wzp_audio_dir dir, const char *def)
{
    if (eol) {
        q->pending--;
        return;
    }
    if (name)
        add_device(q, name, desc, dir, !strcmp(name, def));
}

static void sink_cb(pa_context *c, const pa_sink_info *i, int eol, void *u)
{
    (void)c;
    pulse_query *q = u;
    device_cb(q, eol, i ? i->name : NULL, i ? i->description : NULL, WZP_AUDIO_PLAYBACK,
              q->def_sink);
}

static void source_cb(pa_context *c, const pa_source_info *i, int eol, void *u)
{
    (void)c;
    pulse_query *q = u;
    device_cb(q, eol, i ? i->name : NULL, i ? i->description : NULL, WZP_AUDIO_CAPTURE,
              q->def_source);
}

/* Starts an operation; the callback decrements pending when it finishes. */
static bool query_op(pulse_query *q, pa_operation *op)
{
    if (!op)
        return false;
    q->pending++;
    pa_operation_unref(op);
    return true;
}

static int pulse_list(wzp_audio_device_info *out, size_t cap)
{
    if (!out && cap)
        return WZP_ERR_INVALID;
    pulse_query q = {.out = out, .cap = cap};
    if (!query_begin(&q, CONNECT_MS))
        return WZP_ERR_DEVICE;
    /* Server info first: is_default is decided as the devices arrive. */
    int rc = WZP_ERR_DEVICE;
    if (query_op(&q, pa_context_get_server_info(q.ctx, server_cb, &q)) && query_run(&q, ops_done) &&
        q.pending == 0 && query_op(&q, pa_context_get_sink_info_list(q.ctx, sink_cb, &q)) &&
        query_op(&q, pa_context_get_source_info_list(q.ctx, source_cb, &q)) &&
        query_run(&q, ops_done) && q.pending == 0)
        rc = q.count;
    query_end(&q);
    return rc;
}

const wzp_audio_backend wzp_audio_backend_pulse = {
    .name = "pulse",
    .available = pulse_available,
    .list = pulse_list,
    .open = pulse_open,
    .read = pulse_read,
    .write = pulse_write,
    .delay = pulse_delay,
    .device_name = pulse_device_name,
    .close = pulse_close,
};
