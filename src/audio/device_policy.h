/*
 * What a device thread does next, sans-I/O: every rule of src/audio/audio_io.c
 * about opening, falling back, retrying, stalls, lost devices and real-time
 * pacing, as a state fed with results and times (tested on a virtual clock in
 * tests/unit/test_device_policy.c). The thread only performs what it says.
 *
 *   open:    the wanted device first; if it cannot be opened, the default device;
 *            if that cannot be opened either, wait (backoff 200 ms doubling to 2 s)
 *            and try the default again.
 *   stream:  an I/O that returns late (longer than stall_ns) or times out is a
 *            stall: what is queued around it is stale (resync). max_stalls
 *            timeouts in a row, or any other error, is a lost device: close it
 *            and open the default device (at once; then as above).
 *   pacing:  an I/O that returned at once (under half a period) came from a
 *            device that may never block: it may run ahead of the clock by the
 *            device buffer only, then the thread sleeps. A blocking I/O
 *            re-anchors the pace; so does falling more than 200 ms behind.
 *   flowing: the device counts as working (its name is shown) from its first
 *            I/O that was neither late nor an error.
 */
#ifndef WZP_AUDIO_DEVICE_POLICY_H
#define WZP_AUDIO_DEVICE_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "common/time.h"

typedef struct wzp_device_policy_config {
    bool want_named;    /* a device was named (else the default is opened first) */
    wzp_ts period;      /* one read/write */
    wzp_ts buffer;      /* the device buffer: how far a never-blocking device may run ahead */
    wzp_ts stall;       /* an I/O longer than this is a stall; 0 = 150 ms */
    int max_stalls;     /* timeouts in a row before the device counts as lost; 0 = 6 */
    wzp_ts backoff_min; /* 0 = 200 ms */
    wzp_ts backoff_max; /* 0 = 2 s */
} wzp_device_policy_config;

typedef enum wzp_device_action {
    WZP_DEVICE_OPEN_WANTED,  /* open the named device */
    WZP_DEVICE_OPEN_DEFAULT, /* open the default device */
    WZP_DEVICE_WAIT,         /* nothing to open now: wait until *until (then ask again) */
    WZP_DEVICE_IO,           /* a device is open: read or write one period */
} wzp_device_action;

typedef enum wzp_device_io_verdict {
    WZP_DEVICE_IO_OK,    /* carry on */
    WZP_DEVICE_IO_STALL, /* carry on, but drop what was queued (resync) */
    WZP_DEVICE_IO_RETRY, /* timed out: nothing moved, try the same device again */
    WZP_DEVICE_IO_LOST,  /* close the device; the next action opens the default */
} wzp_device_io_verdict;

typedef struct wzp_device_policy_stats {
    uint64_t open_failures, stalls, losses;
} wzp_device_policy_stats;

typedef struct wzp_device_policy {
    wzp_device_policy_config cfg;
    bool open, use_default, flowing, resync;
    int timeouts; /* in a row */
    wzp_ts backoff, retry_at;
    wzp_ts anchor;  /* pacing: media time counted from here */
    uint64_t paced; /* pacing: periods since the anchor */
    wzp_device_policy_stats st;
} wzp_device_policy;

/* cfg's zero fields take the defaults above. */
void wzp_device_policy_init(wzp_device_policy *p, const wzp_device_policy_config *cfg);
/* What to do at now. */
wzp_device_action wzp_device_policy_next(wzp_device_policy *p, wzp_ts now, wzp_ts *until);
/* The open asked for came back with rc (0 or an error). */
void wzp_device_policy_opened(wzp_device_policy *p, int rc, wzp_ts now);
/* An I/O ran from started to ended and returned rc (a count or an error). */
wzp_device_io_verdict wzp_device_policy_io(wzp_device_policy *p, int rc, wzp_ts started,
                                           wzp_ts ended);
/* After an OK/STALL I/O that returned at ended: how long to sleep before the next one (0 for
 * none). queued_backlog: the device reported a captured backlog to drain, which is no reason
 * to slow down. */
wzp_ts wzp_device_policy_pace(wzp_device_policy *p, wzp_ts started, wzp_ts ended,
                              bool queued_backlog);
/* The device is open and has moved audio (its name can be shown). */
bool wzp_device_policy_flowing(const wzp_device_policy *p);
/* Whether queued audio is stale (after an open or a stall); cleared by the caller once
 * dropped, with wzp_device_policy_resynced. */
bool wzp_device_policy_resync(const wzp_device_policy *p);
void wzp_device_policy_resynced(wzp_device_policy *p);

#endif
