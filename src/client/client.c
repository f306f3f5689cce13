/*
 * The client runtime (include/wzp/client.h): one event-loop thread driving
 * the sans-I/O core (core.h) with two UDP sockets (IPv4, IPv6-only) and one
 * timer armed at the core's next deadline. Public calls post a job into the
 * loop and wait for it, or run it directly when already on the loop thread
 * (from a callback).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wzp/client.h>
#include <wzp/identity.h>

#include "audio/call_audio.h"
#include "client/core.h"
#include "client/relay_path.h"
#include "common/hostport.h"
#include "common/log.h"
#include "ice/agent.h"
#include "net/clock.h"
#include "net/ifaddrs.h"
#include "net/loop.h"
#include "net/netmon.h"
#include "portmap/mapper.h"
#include "net/resolve.h"
#include "net/udp.h"

/* Fallback re-read of interface addresses where rtnetlink is unavailable (and for missed events).
 */
#define HOST_RESCAN_INTERVAL WZP_SEC(10)

struct wzp_call {
    wzp_client *c;
    uint32_t id;
    char detail[384];
    char peer_fp[WZP_FINGERPRINT_STRLEN];
    char peer_alias[40];
    char code[8];                /* verification code */
    wzp_call_audio *audio;       /* live devices; the loop thread's, NULL until first needed */
    bool audio_failed;           /* no device could be had: the call goes on without */
    wzp_audio_stats audio_final; /* the devices' figures when they were closed */
    unsigned volume;             /* speaker volume, percent */
};

struct wzp_client {
    wzp_client_config cfg;
    char *relay_text, *pin_text, *alias, *home;
    char *audio_backend, *audio_input, *audio_output;
    char fp_text[WZP_FINGERPRINT_STRLEN];
    wzp_identity *id;
    wzp_core *core;
    wzp_relay_path *rpath;   /* datagrams to the relay: UDP or its TCP service */
    unsigned rpath_switches; /* as last seen */
    wzp_loop *loop;
    pthread_t thread;
    bool running;
    int fd[WZP_CORE_SOCKS];
    wzp_io io[WZP_CORE_SOCKS];
    /* Birthday probing's extra IPv4 sockets: core socket WZP_CORE_SOCKS + k. */
    int *aux_fd;
    wzp_io *aux_io;
    unsigned naux;
    wzp_timer timer;
    /* Host address changes (only when a socket is bound to the wildcard). */
    wzp_addr bound[WZP_CORE_SOCKS];
    int nm_fd; /* rtnetlink, -1 if unavailable */
    wzp_io nm_io;
    wzp_timer rescan; /* periodic fallback */
    /* A relay given by name is looked up again before each reconnect (it may have moved), by
     * a worker thread: getaddrinfo blocks, the loop must not. */
    wzp_hostport relay_hp[WZP_CORE_MAX_RELAYS]; /* the relays named (a cluster: several) */
    uint8_t relay_pins[WZP_CORE_MAX_RELAYS][WZP_FINGERPRINT_LEN];
    size_t n_relay_hp;
    pthread_t resolver;
    bool resolver_started, resolver_busy;         /* under mu */
    wzp_core_relay resolved[WZP_CORE_MAX_RELAYS]; /* under mu: the worker's answer */
    int n_resolved;                               /* under mu; < 0: lookup failed */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    wzp_portmapper *pm; /* under mu; NULL: port mapping off (or stopped) */
    wzp_addr mapped;    /* under mu: the mapper's latest answer, for the loop */
};

const char *wzp_path_name(wzp_path_kind kind)
{
    switch (kind) {
    case WZP_PATH_RELAY:
        return "relay";
    case WZP_PATH_DIRECT:
        return "direct";
    default:
        return "none";
    }
}

/* --- loop plumbing ------------------------------------------------------------------------- */

static void send_pkt(void *user, int sock, const wzp_addr *to, const uint8_t *pkt, size_t len)
{
    wzp_client *c = user;
    if (sock >= WZP_CORE_SOCKS) { /* birthday probing: never the relay's transport */
        if ((unsigned)(sock - WZP_CORE_SOCKS) < c->naux)
            wzp_udp_send(c->aux_fd[sock - WZP_CORE_SOCKS], to, pkt, len);
        return;
    }
    wzp_addr relay;
    wzp_core_relay_addr(c->core, &relay);
    if (wzp_addr_equal(to, &relay)) /* over UDP or the relay's TCP service */
        wzp_relay_path_send(c->rpath, c->fd[sock], to, pkt, len, wzp_loop_now(c->loop));
    else if (c->fd[sock] >= 0)
        wzp_udp_send(c->fd[sock], to, pkt, len);
}

static int relay_sock(const wzp_addr *relay)
{
    return wzp_addr_family(relay) == AF_INET6 ? 1 : 0;
}

static void rearm(wzp_client *c)
{
    wzp_ts now = wzp_now();
    wzp_addr relay;
    uint8_t pin[WZP_FINGERPRINT_LEN];
    /* What arrives over TCP is fed during the service: flush what it caused (bounded). */
    for (int round = 0; round < 8; round++) {
        wzp_core_flush(c->core, now, send_pkt, c);
        wzp_core_relay_addr(c->core, &relay);
        wzp_core_relay_pin(c->core, pin);
        bool delivered =
            wzp_relay_path_service(c->rpath, c->fd[relay_sock(&relay)], &relay, pin, now);
        unsigned sw = wzp_relay_path_switches(c->rpath);
        if (sw != c->rpath_switches) {
            c->rpath_switches = sw;
            WZP_INFO("client: relay reached over %s now",
                     wzp_relay_path_via_tcp(c->rpath) ? "TCP" : "UDP");
            wzp_core_relay_moved(c->core, now);
            delivered = true; /* flush the ping */
        }
        if (!delivered)
            break;
        now = wzp_now();
    }
    wzp_ts d = wzp_ts_min(wzp_core_next_deadline(c->core), wzp_relay_path_deadline(c->rpath));
    if (d == WZP_TS_NEVER)
        wzp_timer_stop(c->loop, &c->timer);
    else
        wzp_timer_start(c->loop, &c->timer, d);
}

static void on_timer(wzp_loop *loop, wzp_timer *t)
{
    wzp_client *c = t->arg;
    wzp_core_handle_timer(c->core, wzp_now());
    rearm(c);
}

static void on_readable(wzp_loop *loop, wzp_io *io, unsigned events)
{
    wzp_client *c = io->arg;
    int sock = io == &c->io[0] ? 0 : 1;
    if (c->naux && io >= c->aux_io && io < c->aux_io + c->naux)
        sock = WZP_CORE_SOCKS + (int)(io - c->aux_io);
    int fd = sock < WZP_CORE_SOCKS ? c->fd[sock] : c->aux_fd[sock - WZP_CORE_SOCKS];
    static _Thread_local uint8_t bufs[16][2048];
    wzp_udp_msg msgs[16];
    for (int round = 0; round < 8; round++) {
        for (size_t i = 0; i < 16; i++)
            msgs[i] = (wzp_udp_msg){.data = bufs[i], .cap = sizeof(bufs[i])};
        int n = wzp_udp_recv_batch(fd, msgs, 16);
        if (n <= 0)
            break;
        wzp_ts now = wzp_now();
        wzp_addr relay;
        wzp_core_relay_addr(c->core, &relay);
        for (int i = 0; i < n; i++) {
            wzp_addr from = msgs[i].peer;
            wzp_addr_unmap_v4(&from);
            if (msgs[i].len && wzp_addr_equal(&from, &relay) &&
                wzp_relay_path_on_udp_rx(c->rpath, msgs[i].data, msgs[i].len, now))
                continue;
            if (msgs[i].len)
                wzp_core_feed(c->core, sock, &from, msgs[i].data, msgs[i].len, now);
        }
        if (n < 16)
            break;
    }
    rearm(c);
}

/* A datagram from the relay over its TCP service: as if it came over UDP. */
static void relay_tcp_deliver(void *user, const wzp_addr *from, const uint8_t *data, size_t len,
                              wzp_ts now)
{
    wzp_client *c = user;
    wzp_core_feed(c->core, relay_sock(from), from, data, len, now);
}

static void relay_tcp_pin_failed(void *user, const char *detail, wzp_ts now)
{
    wzp_client *c = user;
    wzp_core_relay_pin_failed(c->core, detail, now);
}

static void relay_tcp_wake(void *user)
{
    rearm(user);
}

static void *loop_main(void *arg)
{
    wzp_client *c = arg;
    wzp_loop_run(c->loop);
    return NULL;
}

static bool on_loop_thread(wzp_client *c)
{
    return c->running && pthread_equal(pthread_self(), c->thread);
}

typedef struct job {
    wzp_client *c;
    int (*fn)(struct job *j, wzp_ts now);
    wzp_call *call;
    const char *text;
    const char *text2;
    bool flag;
    uint32_t id;
    wzp_call_stats *stats;
    wzp_audio_stats *audio;
    int rc;
    bool done;
} job;

static void job_run(wzp_loop *loop, void *arg)
{
    job *j = arg;
    wzp_client *c = j->c;
    int rc = j->fn(j, wzp_now());
    pthread_mutex_lock(&c->mu);
    j->rc = rc;
    j->done = true; /* j is the caller's: not touched after this */
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
    /* Only now: the flush runs the relay's TCP link, whose data reaches the callbacks, and
     * a caller may hold its own lock around this call that those callbacks take (the
     * wzp session does: a Ringing already waiting on the link deadlocked it). */
    rearm(c);
}

static int run_job(wzp_client *c, job *j)
{
    j->c = c;
    if (!c->running)
        return WZP_ERR_STATE;
    if (on_loop_thread(c)) {
        int rc = j->fn(j, wzp_now());
        rearm(c);
        return rc;
    }
    int rc = wzp_loop_post(c->loop, job_run, j);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&c->mu);
    while (!j->done)
        pthread_cond_wait(&c->cv, &c->mu);
    pthread_mutex_unlock(&c->mu);
    return j->rc;
}

/* --- live audio ----------------------------------------------------------------------------- */

/* The call's devices, opened the first time it needs them (loop thread). */
static wzp_call_audio *call_audio(wzp_client *c, wzp_call *call)
{
    if (call->audio || call->audio_failed)
        return call->audio;
    bool capture = !c->cfg.cb.pcm_source, playback = !c->cfg.cb.pcm_sink;
    int rc = wzp_call_audio_new(&call->audio, &c->cfg.audio, capture, playback);
    if (rc == 0)
        wzp_call_audio_set_volume(call->audio, call->volume);
    if (rc < 0) {
        call->audio_failed = true;
        WZP_WARN("no sound device for this call (%s): it goes on without microphone and speaker",
                 wzp_strerror(rc));
    }
    return call->audio;
}

static void call_audio_close(wzp_call *call)
{
    if (call->audio)
        wzp_call_audio_get_stats(call->audio, &call->audio_final);
    wzp_call_audio_free(call->audio);
    call->audio = NULL;
}

/* --- relay name lookups ------------------------------------------------------------------------
 */

static void on_resolved(wzp_loop *loop, void *arg)
{
    wzp_client *c = arg;
    wzp_core_relay addrs[WZP_CORE_MAX_RELAYS];
    pthread_mutex_lock(&c->mu);
    int n = c->n_resolved;
    if (n > 0)
        memcpy(addrs, c->resolved, (size_t)n * sizeof(addrs[0]));
    pthread_mutex_unlock(&c->mu);
    /* A failed lookup keeps the addresses we had: the relay may still be there. */
    if (n > 0 && wzp_core_set_relays(c->core, addrs, (size_t)n) == 0)
        rearm(c);
}

/* Every address of every relay named, with its pin, in the order given (each name's own
 * addresses in happy-eyeballs order); names that do not resolve are left out (logged, or
 * *why); < 0 when none resolves. */
static int resolve_relays(wzp_client *c, wzp_core_relay *out, char *why, size_t whylen)
{
    int n = 0, err = WZP_ERR_UNREACHABLE;
    for (size_t h = 0; h < c->n_relay_hp && n < WZP_CORE_MAX_RELAYS; h++) {
        wzp_addr addrs[WZP_CORE_MAX_RELAYS];
        int k = wzp_resolve(&c->relay_hp[h], c->bound[0].len > 0, c->bound[1].len > 0, addrs,
                            (size_t)(WZP_CORE_MAX_RELAYS - n), why, whylen);
        if (k < 0) {
            WZP_INFO("client: relay %s does not resolve now (%s)", c->relay_hp[h].host, why);
            err = c->relay_hp[h].numeric ? WZP_ERR_INVALID : k;
            continue;
        }
        for (int i = 0; i < k; i++) {
            out[n].addr = addrs[i];
            memcpy(out[n].pin, c->relay_pins[h], WZP_FINGERPRINT_LEN);
            n++;
        }
    }
    return n > 0 ? n : err;
}

static void *resolver_main(void *arg)
{
    wzp_client *c = arg;
    wzp_core_relay addrs[WZP_CORE_MAX_RELAYS];
    char why[128];
    int n = resolve_relays(c, addrs, why, sizeof(why));
    pthread_mutex_lock(&c->mu);
    c->n_resolved = n;
    if (n > 0)
        memcpy(c->resolved, addrs, (size_t)n * sizeof(addrs[0]));
    c->resolver_busy = false;
    pthread_mutex_unlock(&c->mu);
    wzp_loop_post(c->loop, on_resolved, c);
    return NULL;
}

/* Before a reconnect (loop thread): look the relay's name up again, unless a lookup runs. */
static void resolve_again(wzp_client *c)
{
    bool numeric = true;
    for (size_t h = 0; h < c->n_relay_hp; h++)
        numeric = numeric && c->relay_hp[h].numeric;
    if (numeric)
        return;
    pthread_mutex_lock(&c->mu);
    bool busy = c->resolver_busy;
    bool join = !busy && c->resolver_started;
    if (!busy)
        c->resolver_busy = true;
    pthread_mutex_unlock(&c->mu);
    if (busy)
        return;
    if (join)
        pthread_join(c->resolver, NULL); /* finished: it cleared busy on its way out */
    c->resolver_started = pthread_create(&c->resolver, NULL, resolver_main, c) == 0;
    if (!c->resolver_started) {
        pthread_mutex_lock(&c->mu);
        c->resolver_busy = false;
        pthread_mutex_unlock(&c->mu);
    }
}

static wzp_call *call_new(wzp_client *c)
{
    wzp_call *call = calloc(1, sizeof(*call));
    if (call) {
        call->c = c;
        call->volume = 100;
    }
    return call;
}

/* --- core events -> public callbacks ---------------------------------------------------------- */

static void core_event(void *user, const wzp_core_event *ev)
{
    wzp_client *c = user;
    const wzp_client_callbacks *cb = &c->cfg.cb;
    wzp_call *call = ev->call_user;
    switch (ev->type) {
    case WZP_CORE_EV_REGISTERED:
        if (cb->on_registered)
            cb->on_registered(c, ev->text, c->cfg.user);
        break;
    case WZP_CORE_EV_UNREGISTERED:
        if (!ev->fatal)
            resolve_again(c);
        if (cb->on_unregistered)
            cb->on_unregistered(c, ev->err, ev->fatal, c->cfg.user);
        break;
    case WZP_CORE_EV_INCOMING:
        call = call_new(c);
        if (!call) {
            wzp_core_reject(c->core, ev->call, wzp_now());
            break;
        }
        call->id = ev->call;
        snprintf(call->peer_fp, sizeof(call->peer_fp), "%s", ev->peer_fp ? ev->peer_fp : "");
        snprintf(call->peer_alias, sizeof(call->peer_alias), "%s",
                 ev->peer_alias ? ev->peer_alias : "");
        wzp_core_set_call_user(c->core, ev->call, call);
        if (cb->on_incoming)
            cb->on_incoming(c, call, call->peer_fp, call->peer_alias, c->cfg.user);
        else
            wzp_core_reject(c->core, ev->call, wzp_now());
        break;
    case WZP_CORE_EV_CALL_STATE:
        if (!call)
            break;
        if (ev->peer_fp && ev->peer_fp[0])
            snprintf(call->peer_fp, sizeof(call->peer_fp), "%s", ev->peer_fp);
        if (ev->peer_alias && ev->peer_alias[0])
            snprintf(call->peer_alias, sizeof(call->peer_alias), "%s", ev->peer_alias);
        if (ev->code && ev->code[0])
            snprintf(call->code, sizeof(call->code), "%s", ev->code);
        if (ev->state == WZP_CALL_ENDED) {
            snprintf(call->detail, sizeof(call->detail), "%s", ev->text ? ev->text : "");
            call_audio_close(call);
        }
        if (cb->on_call_state)
            cb->on_call_state(c, call, ev->state, ev->err, c->cfg.user);
        break;
    case WZP_CORE_EV_PATH:
        if (call && cb->on_path) {
            wzp_call_stats st;
            wzp_core_get_call_stats(c->core, ev->call, &st, wzp_now());
            cb->on_path(c, call, &st, c->cfg.user);
        }
        break;
    case WZP_CORE_EV_PCM:
        if (call && cb->pcm_sink)
            cb->pcm_sink(c, call, ev->pcm, ev->concealed, c->cfg.user);
        else if (call && c->cfg.audio.enabled && call_audio(c, call))
            wzp_call_audio_play(call->audio, ev->pcm);
        break;
    }
}

static wzp_pcm_kind core_pcm_source(void *user, uint32_t id, void *call_user, int16_t *pcm)
{
    wzp_client *c = user;
    wzp_call *call = call_user;
    if (!call)
        return WZP_PCM_SILENCE;
    if (c->cfg.cb.pcm_source)
        return c->cfg.cb.pcm_source(c, call, pcm, c->cfg.user) ? WZP_PCM_VOICE : WZP_PCM_SILENCE;
    if (!c->cfg.audio.enabled || !call_audio(c, call))
        return WZP_PCM_SILENCE;
    return wzp_call_audio_capture(call->audio, pcm, wzp_now()) ? WZP_PCM_VOICE : WZP_PCM_BACKGROUND;
}

/* --- lifetime ------------------------------------------------------------------------------------
 */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* Host candidates: the bound address itself if specific, else every usable interface address.
 * With host_candidates_loopback only loopback addresses are offered, so a test or demo on one
 * machine never sends a packet to any other interface's address. Returns how many, or a negative
 * wzp_error if the interfaces could not be read. */
static int collect_hosts(const wzp_client *c, wzp_addr *out, int cap)
{
    int k = 0;
    bool need_ifaddrs = false;
    for (int s = 0; s < WZP_CORE_SOCKS; s++) {
        if (c->bound[s].len == 0)
            continue;
        if (wzp_addr_is_any(&c->bound[s]))
            need_ifaddrs = true;
        else if (wzp_addr_is_loopback(&c->bound[s]) == c->cfg.host_candidates_loopback && k < cap)
            out[k++] = c->bound[s];
    }
    if (!need_ifaddrs)
        return k;
    wzp_ifaddr ifs[32];
    int n = wzp_ifaddrs_get(ifs, 32, c->cfg.host_candidates_loopback ? WZP_IFADDR_LOOPBACK : 0);
    if (n < 0)
        return n;
    for (int i = 0; i < n && k < cap; i++) {
        int s = wzp_addr_family(&ifs[i].addr) == AF_INET ? 0 : 1;
        if (c->cfg.host_candidates_loopback && !wzp_addr_is_loopback(&ifs[i].addr))
            continue;
        if (c->bound[s].len && wzp_addr_is_any(&c->bound[s]))
            out[k++] = ifs[i].addr;
    }
    return k;
}

static bool wildcard_bound(const wzp_client *c)
{
    for (int s = 0; s < WZP_CORE_SOCKS; s++)
        if (c->bound[s].len && wzp_addr_is_any(&c->bound[s]))
            return true;
    return false;
}

/* The addresses or routes changed: maybe another gateway now. */
static void network_changed(wzp_client *c)
{
    pthread_mutex_lock(&c->mu);
    wzp_portmapper_network_changed(c->pm);
    pthread_mutex_unlock(&c->mu);
    rearm(c);
}

/* Re-reads the interface addresses; the core re-gathers (and signals) only if they changed. */
static void rescan_hosts(wzp_client *c)
{
    wzp_addr hosts[32];
    int n = collect_hosts(c, hosts, 32);
    /* A failed read is not "no addresses": keep the current set. */
    if (n >= 0 && wzp_core_set_host_addrs(c->core, hosts, (size_t)n, wzp_now()) > 0)
        network_changed(c);
}

/* --- the gateway's port mapping ---------------------------------------------------------------
 */

static void on_mapped(wzp_loop *loop, void *arg)
{
    wzp_client *c = arg;
    pthread_mutex_lock(&c->mu);
    wzp_addr a = c->mapped;
    pthread_mutex_unlock(&c->mu);
    if (wzp_core_set_mapped_addr(c->core, &a, wzp_loop_now(loop)) > 0)
        rearm(c);
}

/* The mapper's worker thread: hand over to the loop. */
static void mapper_changed(void *user, const wzp_addr *mapped)
{
    wzp_client *c = user;
    pthread_mutex_lock(&c->mu);
    c->mapped = *mapped;
    pthread_mutex_unlock(&c->mu);
    wzp_loop_post(c->loop, on_mapped, c);
}

static void portmap_start(wzp_client *c)
{
    const wzp_client_config *cfg = &c->cfg;
    if (cfg->portmap_disabled || cfg->direct_disabled || cfg->host_candidates_loopback ||
        c->bound[0].len == 0 || wzp_addr_is_loopback(&c->bound[0]))
        return;
    wzp_portmapper_config pc = {
        .port = wzp_addr_port(&c->bound[0]), .changed = mapper_changed, .user = c};
    wzp_portmapper *pm = NULL;
    if (wzp_portmapper_start(&pm, &pc) < 0) {
        WZP_INFO("client: no port mapping (could not start its thread)");
        return;
    }
    pthread_mutex_lock(&c->mu);
    c->pm = pm;
    pthread_mutex_unlock(&c->mu);
}

static void on_netmon(wzp_loop *loop, wzp_io *io, unsigned events)
{
    wzp_client *c = io->arg;
    (void)loop;
    (void)events;
    if (!wzp_netmon_drain(c->nm_fd))
        return;
    wzp_addr hosts[32];
    int n = collect_hosts(c, hosts, 32);
    wzp_ts now = wzp_now();
    if (n >= 0 && wzp_core_set_host_addrs(c->core, hosts, (size_t)n, now) > 0) {
        network_changed(c);
        return;
    }
    /* Same addresses, other routes (a new default route): our public address may have
     * moved all the same. */
    wzp_core_network_changed(c->core, now);
    network_changed(c);
}

static void on_rescan(wzp_loop *loop, wzp_timer *t)
{
    wzp_client *c = t->arg;
    rescan_hosts(c);
    wzp_timer_start(loop, &c->rescan, wzp_now() + HOST_RESCAN_INTERVAL);
}

/* The next item of a comma (or blank) separated list into item; false at the end or when an
 * item does not fit. */
static bool next_item(const char **p, char *item, size_t cap, bool *ok)
{
    while (**p == ',' || **p == ' ')
        (*p)++;
    size_t len = strcspn(*p, ", ");
    if (len == 0)
        return false;
    *ok = len < cap;
    if (*ok) {
        memcpy(item, *p, len);
        item[len] = '\0';
    }
    *p += len;
    return *ok;
}

/* "HOST:PORT,HOST:PORT..." with "PIN" (for all) or "PIN,PIN..." (one per relay, in order). */
static int parse_relays(wzp_client *c, const char *relays, const char *pins)
{
    char item[WZP_HOST_MAX + 16];
    size_t n = 0, np = 0;
    bool ok = true;
    for (const char *p = relays; next_item(&p, item, sizeof(item), &ok);)
        if (n >= WZP_CORE_MAX_RELAYS ||
            wzp_hostport_parse(&c->relay_hp[n++], item, WZP_DEFAULT_RELAY_PORT) < 0)
            return WZP_ERR_INVALID;
    for (const char *p = pins; ok && next_item(&p, item, sizeof(item), &ok);)
        if (np >= WZP_CORE_MAX_RELAYS || wzp_fingerprint_parse(item, c->relay_pins[np++]) < 0)
            return WZP_ERR_INVALID;
    if (!ok || n == 0 || np == 0 || (np != 1 && np != n))
        return WZP_ERR_INVALID;
    for (size_t i = np; i < n; i++)
        memcpy(c->relay_pins[i], c->relay_pins[0], WZP_FINGERPRINT_LEN);
    c->n_relay_hp = n;
    return 0;
}

static int open_sockets(wzp_client *c, const wzp_client_config *cfg, wzp_addr bound[WZP_CORE_SOCKS])
{
    wzp_addr a;
    const char *v4 = cfg->bind_v4 ? cfg->bind_v4 : "0.0.0.0:0";
    if (wzp_addr_parse(&a, v4, false) < 0 || wzp_addr_family(&a) != AF_INET)
        return WZP_ERR_INVALID;
    c->fd[0] = wzp_udp_open(&a, NULL, &bound[0]);
    if (c->fd[0] < 0)
        return c->fd[0];
    const char *v6 = cfg->bind_v6;
    if (v6 && !v6[0])
        return 0;
    if (wzp_addr_parse(&a, v6 ? v6 : "[::]:0", false) < 0 || wzp_addr_family(&a) != AF_INET6)
        return WZP_ERR_INVALID;
    c->fd[1] = wzp_udp_open(&a, NULL, &bound[1]);
    if (c->fd[1] < 0) {
        int rc = c->fd[1];
        wzp_addr_clear(&bound[1]);
        c->fd[1] = -1;
        return v6 ? rc : 0; /* no IPv6 on this host is fine unless asked for */
    }
    return 0;
}

/* Up to n extra IPv4 sockets on the main socket's address, each on a port of its own; fewer
 * if the system runs out (birthday probing works with what there is). */
static int open_aux(wzp_client *c, unsigned n, wzp_addr *first)
{
    if (!n)
        return 0;
    n = n > WZP_ICE_AUX_MAX ? WZP_ICE_AUX_MAX : n;
    c->aux_fd = calloc(n, sizeof(*c->aux_fd));
    c->aux_io = calloc(n, sizeof(*c->aux_io));
    if (!c->aux_fd || !c->aux_io)
        return WZP_ERR_NOMEM;
    wzp_addr a = c->bound[0];
    wzp_addr_set_port(&a, 0);
    for (unsigned k = 0; k < n; k++) {
        wzp_addr b;
        int fd = wzp_udp_open(&a, NULL, &b);
        if (fd < 0) {
            WZP_WARN("client: %u of %u birthday sockets: %s", k, n, wzp_strerror(fd));
            break;
        }
        if (k == 0)
            *first = b;
        c->aux_fd[k] = fd;
        wzp_io_init(&c->aux_io[k], on_readable, c);
        c->naux = k + 1;
    }
    return 0;
}

void wzp_client_config_default(wzp_client_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
}

int wzp_client_new(wzp_client **out, const wzp_client_config *cfg)
{
    if (!cfg || !out || !cfg->relay || !cfg->relay_pin)
        return WZP_ERR_INVALID;
    wzp_core_config cc = {0};
    wzp_client *c = calloc(1, sizeof(*c));
    if (!c)
        return WZP_ERR_NOMEM;
    c->fd[0] = c->fd[1] = -1;
    c->nm_fd = -1;
    int rc = parse_relays(c, cfg->relay, cfg->relay_pin);
    if (rc < 0) {
        free(c);
        return rc;
    }
    memcpy(cc.relay_pin, c->relay_pins[0], sizeof(cc.relay_pin));
    wzp_timer_init(&c->rescan, on_rescan, c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->cfg = *cfg;
    c->relay_text = dup_or_null(cfg->relay);
    c->pin_text = dup_or_null(cfg->relay_pin);
    c->alias = dup_or_null(cfg->alias);
    c->home = dup_or_null(cfg->home);
    c->cfg.relay = c->relay_text;
    c->cfg.relay_pin = c->pin_text;
    c->cfg.alias = c->alias;
    c->cfg.home = c->home;
    c->audio_backend = dup_or_null(cfg->audio.backend);
    c->audio_input = dup_or_null(cfg->audio.input);
    c->audio_output = dup_or_null(cfg->audio.output);
    c->cfg.audio.backend = c->audio_backend;
    c->cfg.audio.input = c->audio_input;
    c->cfg.audio.output = c->audio_output;
    c->cfg.bind_v4 = c->cfg.bind_v6 = NULL; /* only used below */

    char dir[4096];
    if (cfg->home)
        snprintf(dir, sizeof(dir), "%s", cfg->home);
    else if ((rc = wzp_identity_default_dir(dir, sizeof(dir))) < 0)
        goto fail;
    if ((rc = wzp_identity_load_or_create(dir, &c->id, NULL)) < 0) {
        rc = WZP_ERR_IDENTITY;
        goto fail;
    }
    uint8_t fp[WZP_FINGERPRINT_LEN];
    wzp_identity_fingerprint(c->id, fp);
    wzp_fingerprint_format(fp, c->fp_text, sizeof(c->fp_text));

    wzp_addr *bound = c->bound;
    rc = open_sockets(c, cfg, bound);
    if (rc < 0)
        goto fail;
    /* The first lookup blocks the caller (the loop does not run yet); later ones are the
     * worker's. A numeric address is taken as it is. */
    wzp_core_relay relays[WZP_CORE_MAX_RELAYS];
    char why[128];
    int n_relays = resolve_relays(c, relays, why, sizeof(why));
    if (n_relays < 0) {
        WZP_WARN("client: relay %s: %s", c->n_relay_hp == 1 ? c->relay_hp[0].host : "list", why);
        rc = n_relays;
        goto fail;
    }
    cc.relay = relays[0].addr;
    cc.id = c->id;
    cc.alias = cfg->alias;
    cc.direct_disabled = cfg->direct_disabled;
    cc.qlog_dir = cfg->qlog_dir;
    cc.hold_audio_until_answer = cfg->hold_audio_until_answer;
    cc.no_adapt = cfg->adaptation_disabled;
    cc.parity = cfg->parity_repair;
    cc.no_park = cfg->relay_transport == WZP_RELAY_TRANSPORT_TCP; /* parking is UDP's */
    /* Only our own microphone path says which frames are background. */
    cc.dtx = cfg->audio.enabled && cfg->audio.dtx && !cfg->cb.pcm_source;
    cc.local[0] = bound[0];
    cc.local[1] = bound[1];
    if (!cfg->direct_disabled && (rc = open_aux(c, cfg->birthday_socks, &cc.aux_local)) < 0)
        goto fail;
    cc.aux_socks = c->naux;
    cc.event = core_event;
    cc.pcm_source = core_pcm_source;
    cc.user = c;
    if ((rc = wzp_core_new(&c->core, &cc)) < 0 ||
        (rc = wzp_core_set_relays(c->core, relays, (size_t)n_relays)) < 0)
        goto fail;
    {
        wzp_addr hosts[32];
        int n = collect_hosts(c, hosts, 32);
        for (int i = 0; i < n; i++)
            wzp_core_add_host_addr(c->core, &hosts[i]);
    }
    if ((rc = wzp_loop_new(&c->loop)) < 0)
        goto fail;
    wzp_timer_init(&c->timer, on_timer, c);
    {
        wzp_relay_path_config rp = {.loop = c->loop,
                                    .mode = cfg->relay_transport,
                                    .tcp_port = cfg->relay_tcp_port,
                                    .deliver = relay_tcp_deliver,
                                    .wake = relay_tcp_wake,
                                    .pin_failed = relay_tcp_pin_failed,
                                    .user = c};
        if ((rc = wzp_relay_path_new(&c->rpath, &rp)) < 0)
            goto fail;
    }
    for (int s = 0; s < WZP_CORE_SOCKS; s++)
        wzp_io_init(&c->io[s], on_readable, c);
    for (int s = 0; s < WZP_CORE_SOCKS; s++)
        if (c->fd[s] >= 0 && (rc = wzp_io_start(c->loop, &c->io[s], c->fd[s], WZP_IO_READ)) < 0)
            goto fail;
    for (unsigned k = 0; k < c->naux; k++)
        if ((rc = wzp_io_start(c->loop, &c->aux_io[k], c->aux_fd[k], WZP_IO_READ)) < 0)
            goto fail;
    if (wildcard_bound(c)) {
        /* Interface addresses can change under a wildcard socket: watch them. */
        wzp_io_init(&c->nm_io, on_netmon, c);
        c->nm_fd = wzp_netmon_open();
        if (c->nm_fd >= 0 && wzp_io_start(c->loop, &c->nm_io, c->nm_fd, WZP_IO_READ) < 0) {
            wzp_netmon_close(c->nm_fd);
            c->nm_fd = -1;
        }
        if (c->nm_fd < 0)
            WZP_INFO("client: no rtnetlink; host addresses re-read every %d s",
                     (int)(HOST_RESCAN_INTERVAL / WZP_SEC(1)));
        wzp_timer_start(c->loop, &c->rescan, wzp_now() + HOST_RESCAN_INTERVAL);
    }
    *out = c;
    return 0;
fail:
    wzp_client_free(c);
    return rc;
}

static int do_start(job *j, wzp_ts now)
{
    return wzp_core_start(j->c->core, now);
}

int wzp_client_start(wzp_client *c)
{
    if (!c || c->running)
        return WZP_ERR_STATE;
    if (pthread_create(&c->thread, NULL, loop_main, c) != 0)
        return WZP_ERR_NOMEM;
    c->running = true;
    job j = {.fn = do_start};
    int rc = run_job(c, &j);
    if (rc == 0)
        portmap_start(c);
    return rc;
}

static int do_shutdown(job *j, wzp_ts now)
{
    wzp_core_shutdown(j->c->core, now);
    return 0;
}

void wzp_client_stop(wzp_client *c)
{
    if (!c || !c->running)
        return;
    if (on_loop_thread(c)) {
        WZP_ERROR("client: wzp_client_stop called from a callback (ignored)");
        return;
    }
    job j = {.fn = do_shutdown};
    run_job(c, &j); /* the flush after it sends every CONNECTION_CLOSE */
    /* The mapping is deleted (bounded wait); its worker may post into the loop: it ends first. */
    pthread_mutex_lock(&c->mu);
    wzp_portmapper *pm = c->pm;
    c->pm = NULL;
    pthread_mutex_unlock(&c->mu);
    wzp_portmapper_stop(pm);
    /* A lookup under way posts into the loop: it must end first (at most the resolver's
     * timeout). The core ignores new addresses once stopping. */
    if (c->resolver_started)
        pthread_join(c->resolver, NULL);
    c->resolver_started = false;
    wzp_loop_stop(c->loop);
    pthread_join(c->thread, NULL);
    c->running = false;
}

void wzp_client_free(wzp_client *c)
{
    if (!c)
        return;
    wzp_client_stop(c);
    for (int s = 0; s < WZP_CORE_SOCKS; s++)
        if (c->loop && c->fd[s] >= 0)
            wzp_io_stop(c->loop, &c->io[s]);
    for (unsigned k = 0; k < c->naux; k++)
        if (c->loop)
            wzp_io_stop(c->loop, &c->aux_io[k]);
    if (c->loop && c->nm_fd >= 0)
        wzp_io_stop(c->loop, &c->nm_io);
    if (c->loop) {
        wzp_timer_stop(c->loop, &c->timer);
        wzp_timer_stop(c->loop, &c->rescan);
    }
    wzp_netmon_close(c->nm_fd);
    wzp_relay_path_free(c->rpath);
    wzp_core_free(c->core);
    wzp_loop_free(c->loop);
    for (int s = 0; s < WZP_CORE_SOCKS; s++)
        if (c->fd[s] >= 0)
            close(c->fd[s]);
    for (unsigned k = 0; k < c->naux; k++)
        close(c->aux_fd[k]);
    free(c->aux_fd);
    free(c->aux_io);
    wzp_identity_free(c->id);
    free(c->relay_text);
    free(c->pin_text);
    free(c->alias);
    free(c->home);
    free(c->audio_backend);
    free(c->audio_input);
    free(c->audio_output);
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c);
}

const char *wzp_client_fingerprint(const wzp_client *c)
{
    return c ? c->fp_text : "";
}

/* --- calls
 * ----------------------------------------------------------------------------------------- */

static int do_call(job *j, wzp_ts now)
{
    return wzp_core_call(j->c->core, j->text, j->text2, j->call, &j->call->id, now);
}

int wzp_client_call(wzp_client *c, const char *peer, wzp_call **out)
{
    return wzp_client_call_key(c, peer, NULL, out);
}

int wzp_client_call_key(wzp_client *c, const char *peer, const char *alias, wzp_call **out)
{
    if (!c || !peer || !out)
        return WZP_ERR_INVALID;
    wzp_call *call = call_new(c);
    if (!call)
        return WZP_ERR_NOMEM;
    job j = {.fn = do_call, .call = call, .text = peer, .text2 = alias};
    int rc = run_job(c, &j);
    if (rc < 0) {
        free(call);
        return rc;
    }
    *out = call;
    return 0;
}

static int do_answer(job *j, wzp_ts now)
{
    return wzp_core_answer(j->c->core, j->id, now);
}
static int do_reject(job *j, wzp_ts now)
{
    return wzp_core_reject(j->c->core, j->id, now);
}
static int do_hangup(job *j, wzp_ts now)
{
    return wzp_core_hangup(j->c->core, j->id, now);
}
static int do_mute(job *j, wzp_ts now)
{
    return wzp_core_set_mute(j->c->core, j->id, j->flag);
}
static int do_stats(job *j, wzp_ts now)
{
    return wzp_core_get_call_stats(j->c->core, j->id, j->stats, now);
}
static int do_release(job *j, wzp_ts now)
{
    wzp_core_release(j->c->core, j->id, now);
    return 0;
}

static int call_job(wzp_call *call, int (*fn)(job *, wzp_ts), bool flag, wzp_call_stats *st)
{
    if (!call)
        return WZP_ERR_INVALID;
    job j = {.fn = fn, .id = call->id, .flag = flag, .stats = st};
    return run_job(call->c, &j);
}

int wzp_call_answer(wzp_call *call)
{
    return call_job(call, do_answer, false, NULL);
}
int wzp_call_reject(wzp_call *call)
{
    return call_job(call, do_reject, false, NULL);
}
int wzp_call_hangup(wzp_call *call)
{
    return call_job(call, do_hangup, false, NULL);
}
int wzp_call_set_mute(wzp_call *call, bool mute)
{
    return call_job(call, do_mute, mute, NULL);
}
int wzp_call_get_stats(wzp_call *call, wzp_call_stats *out)
{
    if (!out)
        return WZP_ERR_INVALID;
    return call_job(call, do_stats, false, out);
}

void wzp_call_release(wzp_call *call)
{
    if (!call)
        return;
    call_job(call, do_release, false, NULL); /* fails harmlessly once the client stopped */
    /* The core no longer knows the call, so the loop will not touch its audio again. */
    call_audio_close(call);
    free(call);
}

static int do_rtt(job *j, wzp_ts now)
{
    j->rc = 0;
    return (int)(wzp_core_relay_rtt(j->c->core) / 1000); /* microseconds */
}

double wzp_client_relay_rtt_ms(wzp_client *c)
{
    job j = {.fn = do_rtt};
    int us = run_job(c, &j);
    return us > 0 ? us / 1000.0 : 0.0;
}

static int do_audio_stats(job *j, wzp_ts now)
{
    if (j->call->audio)
        wzp_call_audio_get_stats(j->call->audio, j->audio);
    else
        *j->audio = j->call->audio_final;
    if (!j->audio->live)
        j->audio->volume_pct = j->call->volume;
    return 0;
}

static int do_volume(job *j, wzp_ts now)
{
    j->call->volume = j->id;
    if (j->call->audio)
        wzp_call_audio_set_volume(j->call->audio, j->id);
    return 0;
}

int wzp_call_set_volume(wzp_call *call, unsigned percent)
{
    if (!call || percent > WZP_VOLUME_MAX)
        return WZP_ERR_INVALID;
    job j = {.fn = do_volume, .call = call, .id = percent};
    return run_job(call->c, &j);
}

int wzp_call_get_audio_stats(wzp_call *call, wzp_audio_stats *out)
{
    if (!call || !out)
        return WZP_ERR_INVALID;
    job j = {.fn = do_audio_stats, .call = call, .audio = out};
    return run_job(call->c, &j);
}

const char *wzp_call_detail(const wzp_call *call)
{
    return call ? call->detail : "";
}

const char *wzp_call_peer_fingerprint(const wzp_call *call)
{
    return call ? call->peer_fp : "";
}

const char *wzp_call_verification_code(const wzp_call *call)
{
    return call ? call->code : "";
}

const char *wzp_call_peer_alias(const wzp_call *call)
{
    return call ? call->peer_alias : "";
}
