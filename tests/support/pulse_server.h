/*
 * A private, headless PulseAudio server for tests: `pulseaudio -n` (no
 * default.pa, so no module-rescue-streams: a stream on an unloaded sink is
 * killed) in a fresh XDG_RUNTIME_DIR, with null sinks that run in real time at
 * 48 kHz mono S16 and whose monitors serve as microphones.
 *
 * Starting points this process's XDG_RUNTIME_DIR at the server, so libpulse
 * (and pactl run through pulse_server_pactl) find it; stopping restores it.
 * The server gets SIGKILL if the test process dies, so a crashed test leaves
 * nothing behind. One server per process at a time.
 *
 * A null sink with nothing asking for low latency renders 2 s ahead, so the
 * first stream on a fresh (or idle) sink waits up to 2 s for data or room. To
 * give tests a sink that moves at once, each sink gets a "keeper" (parec on its
 * monitor at 10 ms latency, output discarded) for the server's life, and start
 * / add_sink wait out the first 2 s block.
 */
#ifndef WZP_TESTS_PULSE_SERVER_H
#define WZP_TESTS_PULSE_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct pulse_server {
    pid_t pid;     /* 0 when not running */
    char dir[64];  /* the XDG_RUNTIME_DIR (also HOME) of the server; server.log inside */
    char *old_xdg; /* XDG_RUNTIME_DIR before start (owned), restored by stop */
    bool had_xdg;
    pid_t keepers[16]; /* parec on each sink's monitor, see pulse_server_start */
    size_t n_keepers;
} pulse_server;

/* True if a `pulseaudio` binary is on PATH (tests skip with 77 otherwise). */
bool pulse_server_installed(void);

/*
 * Starts a server with one null sink per name in sinks[0..n) (sink "NAME", source
 * "NAME.monitor"), makes default_sink / default_source (either may be NULL) the defaults, and
 * waits until it answers (bounded, 10 s). 0, or -1 with the reason printed to stderr (and
 * nothing left running).
 */
int pulse_server_start(pulse_server *ps, const char *const *sinks, size_t n,
                       const char *default_sink, const char *default_source);

/* Sends sig to the server without reaping it (e.g. SIGKILL to test a vanishing server). */
void pulse_server_signal(pulse_server *ps, int sig);

/* Ends the server (SIGTERM, then SIGKILL after 3 s), reaps it, removes its directory, restores
   XDG_RUNTIME_DIR. Safe on a stopped or never-started server. */
void pulse_server_stop(pulse_server *ps);

/* Runs `pactl ARGS` against the server; its stdout (trimmed) into out (may be NULL). Returns
   pactl's exit status, or -1. */
int pulse_server_pactl(const pulse_server *ps, char *out, size_t cap, const char *args);

/* `pactl load-module module-null-sink sink_name=NAME ...` plus its keeper (and the 2 s wait):
   the module index, or -1. */
int pulse_server_add_sink(pulse_server *ps, const char *name);

#endif
