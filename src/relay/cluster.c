#include "relay/cluster.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <wzp/wzp.h>

#include "common/hostport.h"
#include "common/log.h"
#include "net/clock.h"

#define BACKOFF_MIN  WZP_MS(100)
#define BACKOFF_MAX  WZP_SEC(5)
#define PING_EVERY   WZP_SEC(1)
#define PING_TIMEOUT WZP_SEC(3) /* Redis silent this long: treated as gone */
#define HEX_ID       (2 * WZP_CLUSTER_ID_LEN + 1)
#define HEX_FP       (2 * WZP_SIG_FP_LEN + 1)

/*
 * Key layout: wzp:fp:<fp hex> -> relay id hex (presence, TTL), wzp:alias:<alias>
 * -> fp hex and wzp:fpalias:<fp hex> -> alias (ownership, TTL alias_ttl),
 * wzp:relay:<id hex> -> "ip:port" forwarding address (TTL); pub/sub channel
 * wzp:r:<id hex> per relay.
 */

/* One alias per key, one key per alias, in one step: a key taking a new alias frees its old. */
static const char LUA_CLAIM[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if cur and cur ~= ARGV[1] then return 0 end\n"
    "local old = redis.call('GET', KEYS[2])\n"
    "if old and old ~= ARGV[3] and redis.call('GET', 'wzp:alias:' .. old) == ARGV[1] then\n"
    "  redis.call('DEL', 'wzp:alias:' .. old) end\n"
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n"
    "redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])\n"
    "return 1\n";
/* Presence goes only if it is still this relay's (the key may have moved on). */
static const char LUA_DOWN[] = "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
                               "  return redis.call('DEL', KEYS[1]) end\n"
                               "return 0\n";
/* Alias or fingerprint -> {fp, relay, forwarding address}; shorter when not found. */
static const char LUA_LOCATE[] =
    "local fp = ARGV[2]\n"
    "if ARGV[1] == 'a' then fp = redis.call('GET', 'wzp:alias:' .. fp)\n"
    "  if not fp then return {} end end\n"
    "local r = redis.call('GET', 'wzp:fp:' .. fp)\n"
    "if not r then return {fp} end\n"
    "local a = redis.call('GET', 'wzp:relay:' .. r)\n"
    "if not a then return {fp} end\n"
    "return {fp, r, a}\n";

/* A re-attaching end (ARGV[1] 'a' caller, 'b' callee) must have the key the call's record has
 * for it; this relay becomes that end's, and the other end's key, relay and forwarding address
 * come back (shorter when unknown; empty: refused). Update and read in one step, so of two ends
 * re-attaching at once the later one sees where the earlier went. */
static const char LUA_REATTACH[] =
    "local o = 'b'\n"
    "if ARGV[1] == 'b' then o = 'a' end\n"
    "if redis.call('HGET', KEYS[1], 'f' .. ARGV[1]) ~= ARGV[2] then return {} end\n"
    "redis.call('HSET', KEYS[1], 'r' .. ARGV[1], ARGV[3])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[4])\n"
    "local fp = redis.call('HGET', KEYS[1], 'f' .. o)\n"
    "if not fp then return {} end\n"
    "local r = redis.call('HGET', KEYS[1], 'r' .. o)\n"
    "if not r then return {fp} end\n"
    "local a = redis.call('GET', 'wzp:relay:' .. r)\n"
    "if not a then return {fp, r} end\n"
    "return {fp, r, a}\n";

/* One hiredis async connection on our loop (the adapter hiredis expects). */
typedef struct rconn {
    struct wzp_cluster *cl;
    redisAsyncContext *ac;
    wzp_io io;
    unsigned want; /* WZP_IO_READ | WZP_IO_WRITE */
    bool started;
    bool ready; /* command connection: AUTH (or PING) answered, commands flow */
    bool sub;   /* the subscription connection */
    bool probe; /* a question to a Sentinel: where is the master? */
} rconn;

#define MAX_SENTINELS 8

struct wzp_cluster {
    wzp_cluster_config cfg;
    wzp_loop *loop;
    bool unix_sock;
    char path[256];
    wzp_hostport hp;
    char user[128], password[256];
    char self_hex[HEX_ID];
    char fwd_text[WZP_ADDR_STRLEN];
    rconn cmd, sub;
    /* With Sentinels: the master's address is asked for before each (re)connect. */
    wzp_hostport sentinels[MAX_SENTINELS];
    size_t n_sentinels, next_sentinel;
    char master_name[128];
    rconn probe;
    wzp_timer reconnect, tick;
    wzp_ts backoff;
    wzp_ts ping_sent; /* 0: none outstanding */
    wzp_ts refreshed;
    wzp_cluster_stats stats;
    bool closing; /* being freed: answers go nowhere */
};

static void hex(char *out, const uint8_t *b, size_t n)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = '\0';
}

static int unhex(uint8_t *out, size_t n, const char *s, size_t len)
{
    if (len != 2 * n)
        return WZP_ERR_MALFORMED;
    for (size_t i = 0; i < 2 * n; i++) {
        int c = tolower((unsigned char)s[i]);
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return WZP_ERR_MALFORMED;
        out[i / 2] = (uint8_t)(i % 2 ? out[i / 2] | v : v << 4);
    }
    return 0;
}

int wzp_cluster_key_parse(wzp_cluster_key *key, const char *text)
{
    while (isspace((unsigned char)*text))
        text++;
    size_t n = strlen(text);
    while (n && isspace((unsigned char)text[n - 1]))
        n--;
    if (n % 2 || n / 2 < WZP_CLUSTER_KEY_MIN || n / 2 > WZP_CLUSTER_KEY_MAX ||
        unhex(key->k, n / 2, text, n) < 0)
        return WZP_ERR_INVALID;
    key->len = n / 2;
    return 0;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- the event-loop adapter --------------------------------------------------------- */

static void ev_update(rconn *r)
{
    if (!r->ac)
        return;
    if (!r->want) {
        if (r->started)
            wzp_io_stop(r->cl->loop, &r->io);
        r->started = false;
    } else if (!r->started) {
        r->started = wzp_io_start(r->cl->loop, &r->io, r->ac->c.fd, r->want) == 0;
    } else {
        wzp_io_modify(r->cl->loop, &r->io, r->want);
    }
}

static void ev_want(void *p, unsigned bit, bool on)
{
    rconn *r = p;
    r->want = on ? r->want | bit : r->want & ~bit;
    ev_update(r);
}
static void ev_add_read(void *p)
{
    ev_want(p, WZP_IO_READ, true);
}
static void ev_del_read(void *p)
{
    ev_want(p, WZP_IO_READ, false);
}
static void ev_add_write(void *p)
{
    ev_want(p, WZP_IO_WRITE, true);
}
static void ev_del_write(void *p)
{
    ev_want(p, WZP_IO_WRITE, false);
}
static void ev_cleanup(void *p)
{
    rconn *r = p;
    if (r->started)
        wzp_io_stop(r->cl->loop, &r->io);
    r->started = false;
    r->want = 0;
}

static void on_io(wzp_loop *loop, wzp_io *io, unsigned events)
{
    rconn *r = io->arg;
    (void)loop;
    /* Either call may free the context (connection lost): look again after each. */
    if (r->ac && (events & (WZP_IO_READ | WZP_IO_ERROR)))
        redisAsyncHandleRead(r->ac);
    if (r->ac && (events & WZP_IO_WRITE))
        redisAsyncHandleWrite(r->ac);
}

/* ---- connecting ----------------------------------------------------------------------- */

static void schedule_reconnect(wzp_cluster *cl)
{
    if (wzp_timer_active(&cl->reconnect))
        return;
    wzp_timer_start(cl->loop, &cl->reconnect, wzp_now() + cl->backoff);
    cl->backoff = cl->backoff * 2 > BACKOFF_MAX ? BACKOFF_MAX : cl->backoff * 2;
}

/* The context is gone (hiredis frees it after these callbacks). */
static void lost(rconn *r, const char *why)
{
    wzp_cluster *cl = r->cl;
    bool was_ready = r->ready;
    /* The watcher is hiredis' to stop (ev_cleanup), before it closes the fd. */
    r->ac = NULL;
    r->ready = false;
    if (r == &cl->probe) {
        if (r->probe) { /* no answer: ask another Sentinel next time */
            cl->next_sentinel = (cl->next_sentinel + 1) % cl->n_sentinels;
            schedule_reconnect(cl);
        }
        return;
    }
    if (!r->sub && was_ready) {
        cl->stats.disconnects++;
        WZP_WARN("relay: cluster store lost (%s); serving local registrations only", why);
    }
    cl->ping_sent = 0;
    schedule_reconnect(cl);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    rconn *r = ac->data;
    if (status != REDIS_OK) {
        WZP_DEBUG("relay: cluster store: cannot connect: %s", ac->errstr);
        lost(r, ac->errstr);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    rconn *r = ac->data;
    if (r->ac == ac || r->ac == NULL)
        lost(r, status == REDIS_OK ? "closed" : ac->errstr);
}

static void republish(wzp_cluster *cl);
static void on_sub_message(redisAsyncContext *ac, void *reply, void *priv);

static void on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
    rconn *r = priv;
    redisReply *rep = reply;
    (void)ac;
    if (!rep)
        return;
    if (rep->type == REDIS_REPLY_ERROR) {
        WZP_WARN("relay: cluster store refused our credentials: %s", rep->str);
        return; /* the next command fails too; the watchdog retries */
    }
    if (!r->sub) {
        r->ready = true;
        r->cl->stats.connects++;
        r->cl->backoff = BACKOFF_MIN;
        WZP_INFO("relay: cluster store connected");
        republish(r->cl);
    }
}

static void on_master(redisAsyncContext *ac, void *reply, void *priv);

static void open_conn(wzp_cluster *cl, rconn *r)
{
    const wzp_hostport *hp = r->probe ? &cl->sentinels[cl->next_sentinel] : &cl->hp;
    redisAsyncContext *ac = cl->unix_sock && !r->probe ? redisAsyncConnectUnix(cl->path)
                                                       : redisAsyncConnect(hp->host, hp->port);
    if (!ac)
        return schedule_reconnect(cl);
    if (ac->err) {
        WZP_DEBUG("relay: cluster store: %s", ac->errstr);
        redisAsyncFree(ac);
        return schedule_reconnect(cl);
    }
    r->ac = ac;
    ac->data = r;
    ac->ev.data = r;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    if (r->probe) {
        redisAsyncCommand(ac, on_master, cl, "SENTINEL get-master-addr-by-name %s",
                          cl->master_name);
        ev_add_write(r);
        return;
    }
    /* Commands queue until the connection is up; AUTH goes first. An always-sent
     * AUTH (or a PING) also tells us the connection really works. */
    if (cl->password[0] && cl->user[0])
        redisAsyncCommand(ac, on_auth, r, "AUTH %s %s", cl->user, cl->password);
    else if (cl->password[0])
        redisAsyncCommand(ac, on_auth, r, "AUTH %s", cl->password);
    else
        redisAsyncCommand(ac, on_auth, r, "PING");
    if (r->sub)
        redisAsyncCommand(ac, on_sub_message, cl, "SUBSCRIBE wzp:r:%s", cl->self_hex);
    ev_add_write(r); /* the connect completes on writability */
}

/* The Sentinel named the master: connect there. */
static void on_master(redisAsyncContext *ac, void *reply, void *priv)
{
    wzp_cluster *cl = priv;
    redisReply *rep = reply;
    char text[WZP_HOST_MAX + 8];
    bool ok = !cl->closing && rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
              rep->element[0]->type == REDIS_REPLY_STRING &&
              rep->element[1]->type == REDIS_REPLY_STRING &&
              rep->element[0]->len + rep->element[1]->len + 4 < sizeof(text);
    if (ok) {
        /* "[ip]:port" parses IPv4 and IPv6 literals alike */
        snprintf(text, sizeof(text), strchr(rep->element[0]->str, ':') ? "[%s]:%s" : "%s:%s",
                 rep->element[0]->str, rep->element[1]->str);
        ok = wzp_hostport_parse(&cl->hp, text, 6379) == 0;
    }
    if (cl->closing)
        return;
    /* Done with it: forgotten now (its on_disconnect finds it so and stays quiet). */
    cl->probe.ac = NULL;
    cl->probe.probe = false;
    redisAsyncDisconnect(ac);
    WZP_DEBUG("relay: cluster store: the Sentinel names %s:%u as master", cl->hp.host,
              (unsigned)cl->hp.port);
    if (!ok) {
        WZP_DEBUG("relay: cluster store: the Sentinel does not know master %s", cl->master_name);
        cl->next_sentinel = (cl->next_sentinel + 1) % cl->n_sentinels;
        schedule_reconnect(cl);
        return;
    }
    if (!cl->cmd.ac)
        open_conn(cl, &cl->cmd);
    if (!cl->sub.ac)
        open_conn(cl, &cl->sub);
}

static void on_reconnect(wzp_loop *loop, wzp_timer *t)
{
    wzp_cluster *cl = t->arg;
    (void)loop;
    if (cl->n_sentinels && !cl->cmd.ac) {
        /* The master may have moved: ask first (the sub connection follows). */
        if (cl->probe.ac) { /* still asking: look again later */
            schedule_reconnect(cl);
            return;
        }
        cl->probe.probe = true;
        open_conn(cl, &cl->probe);
        return;
    }
    if (!cl->cmd.ac)
        open_conn(cl, &cl->cmd);
    if (!cl->sub.ac)
        open_conn(cl, &cl->sub);
}

static void drop(rconn *r)
{
    redisAsyncContext *ac = r->ac;
    if (!ac)
        return;
    r->ac = NULL;
    redisAsyncFree(ac); /* runs pending callbacks with no reply, then on_disconnect */
    r->ready = false;
}

bool wzp_cluster_settled(const wzp_cluster *cl)
{
    return !wzp_cluster_up(cl) || cl->cmd.ac->replies.head == NULL;
}

bool wzp_cluster_up(const wzp_cluster *cl)
{
    return cl->cmd.ready && cl->cmd.ac;
}

/* ---- presence --------------------------------------------------------------------------- */

static void on_pong(redisAsyncContext *ac, void *reply, void *priv)
{
    wzp_cluster *cl = priv;
    (void)ac;
    if (reply)
        cl->ping_sent = 0;
}

static void ignore_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    wzp_cluster *cl = priv;
    redisReply *rep = reply;
    (void)ac;
    if (!rep || rep->type != REDIS_REPLY_ERROR)
        return;
    WZP_DEBUG("relay: cluster store: %s", rep->str);
    if (!strncmp(rep->str, "READONLY", 8) && !cl->closing && cl->cmd.ac) {
        /* A replica now (a failover demoted it): find the master again. */
        WZP_WARN("relay: cluster store is a replica now; reconnecting");
        drop(&cl->cmd);
        drop(&cl->sub);
        schedule_reconnect(cl);
    }
}

static void send_kick(wzp_cluster *cl, const uint8_t *relay, const uint8_t *fp)
{
    wzp_cluster_msg m = {.kind = WZP_CLUSTER_KICK};
    memcpy(m.to, relay, WZP_CLUSTER_ID_LEN);
    memcpy(m.fp, fp, WZP_SIG_FP_LEN);
    cl->stats.kicks_sent++;
    wzp_cluster_send(cl, &m);
}

typedef struct up_req {
    wzp_cluster *cl;
    uint8_t fp[WZP_SIG_FP_LEN];
} up_req;

/* The key was registered elsewhere until now: that relay drops its stale connection. */
static void on_presence_up(redisAsyncContext *ac, void *reply, void *priv)
{
    up_req *q = priv;
    redisReply *rep = reply;
    uint8_t prev[WZP_CLUSTER_ID_LEN];
    (void)ac;
    if (rep && rep->type == REDIS_REPLY_STRING &&
        unhex(prev, sizeof(prev), rep->str, rep->len) == 0 &&
        memcmp(prev, q->cl->cfg.self, sizeof(prev)) != 0)
        send_kick(q->cl, prev, q->fp);
    free(q);
}

static void set_relay_record(wzp_cluster *cl)
{
    redisAsyncCommand(cl->cmd.ac, ignore_reply, cl, "SET wzp:relay:%s %s PX %llu", cl->self_hex,
                      cl->fwd_text, (unsigned long long)(cl->cfg.presence_ttl / WZP_MS(1)));
}

static void presence_up(wzp_cluster *cl, const uint8_t *fp, bool get)
{
    char f[HEX_FP];
    hex(f, fp, WZP_SIG_FP_LEN);
    unsigned long long ttl = cl->cfg.presence_ttl / WZP_MS(1);
    up_req *q = get ? malloc(sizeof(*q)) : NULL;
    if (q) {
        q->cl = cl;
        memcpy(q->fp, fp, WZP_SIG_FP_LEN);
        if (redisAsyncCommand(cl->cmd.ac, on_presence_up, q, "SET wzp:fp:%s %s PX %llu GET", f,
                              cl->self_hex, ttl) != REDIS_OK)
            free(q);
    } else {
        redisAsyncCommand(cl->cmd.ac, ignore_reply, cl, "SET wzp:fp:%s %s PX %llu", f, cl->self_hex,
                          ttl);
    }
}

void wzp_cluster_presence(wzp_cluster *cl, const uint8_t *fp, const char *alias, bool up)
{
    (void)alias; /* bound by the claim; kept with its own TTL */
    if (!wzp_cluster_up(cl))
        return; /* published again on reconnect */
    if (up) {
        presence_up(cl, fp, true);
        return;
    }
    char f[HEX_FP];
    hex(f, fp, WZP_SIG_FP_LEN);
    redisAsyncCommand(cl->cmd.ac, ignore_reply, cl, "EVAL %s 1 wzp:fp:%s %s", LUA_DOWN, f,
                      cl->self_hex);
}

typedef struct claim_req {
    wzp_cluster *cl;
    uint64_t conn; /* 0: a republish after reconnect, nobody waits */
    wzp_sig_alias alias;
} claim_req;

static void claim_finish(claim_req *q, wzp_relay_cluster_result res)
{
    wzp_cluster *cl = q->cl;
    if (cl->closing) {
        free(q);
        return;
    }
    if (q->conn) {
        wzp_relay_control_claim_done(cl->cfg.ctl, q->conn, q->alias, res, wzp_now());
        if (cl->cfg.notify)
            cl->cfg.notify(cl->cfg.user);
    } else if (res == WZP_RELAY_CLUSTER_TAKEN) {
        WZP_WARN("relay: alias %s was bound to another key while the cluster store was away",
                 q->alias);
    }
    free(q);
}

static void on_claim(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *rep = reply;
    (void)ac;
    claim_finish(priv, !rep || rep->type != REDIS_REPLY_INTEGER ? WZP_RELAY_CLUSTER_UNAVAILABLE
                       : rep->integer == 1                      ? WZP_RELAY_CLUSTER_OK
                                                                : WZP_RELAY_CLUSTER_TAKEN);
}

/* Deferred: the control plane is not re-entered from inside its own callback. */
static void claim_unavailable(wzp_loop *loop, void *arg)
{
    (void)loop;
    claim_finish(arg, WZP_RELAY_CLUSTER_UNAVAILABLE);
}

static void claim(wzp_cluster *cl, uint64_t conn, const uint8_t *fp, const char *alias)
{
    claim_req *q = calloc(1, sizeof(*q));
    if (!q)
        return;
    q->cl = cl;
    q->conn = conn;
    snprintf(q->alias, sizeof(q->alias), "%s", alias);
    char f[HEX_FP];
    hex(f, fp, WZP_SIG_FP_LEN);
    if (!wzp_cluster_up(cl) ||
        redisAsyncCommand(
            cl->cmd.ac, on_claim, q, "EVAL %s 2 wzp:alias:%s wzp:fpalias:%s %s %llu %s", LUA_CLAIM,
            alias, f, f, (unsigned long long)(cl->cfg.alias_ttl / WZP_MS(1)), alias) != REDIS_OK) {
        if (wzp_loop_post(cl->loop, claim_unavailable, q) < 0)
            free(q);
    }
}

void wzp_cluster_claim_alias(wzp_cluster *cl, uint64_t conn, const uint8_t *fp, const char *alias)
{
    claim(cl, conn, fp, alias);
}

/* ---- call records ---------------------------------------------------------------------- */

static void record_call(wzp_cluster *cl, const uint8_t *call_id, const uint8_t *fp_a,
                        const uint8_t *relay_a, const uint8_t *fp_b, const uint8_t *relay_b)
{
    char id[2 * WZP_SIG_CALL_ID_LEN + 1], fa[HEX_FP], fb[HEX_FP], ra[HEX_ID], rb[HEX_ID];
    hex(id, call_id, WZP_SIG_CALL_ID_LEN);
    hex(fa, fp_a, WZP_SIG_FP_LEN);
    hex(fb, fp_b, WZP_SIG_FP_LEN);
    if (relay_a)
        hex(ra, relay_a, WZP_CLUSTER_ID_LEN);
    if (relay_b)
        hex(rb, relay_b, WZP_CLUSTER_ID_LEN);
    redisAsyncCommand(cl->cmd.ac, ignore_reply, cl, "HSET wzp:call:%s fa %s fb %s ra %s rb %s", id,
                      fa, fb, relay_a ? ra : cl->self_hex, relay_b ? rb : cl->self_hex);
    redisAsyncCommand(cl->cmd.ac, ignore_reply, cl, "PEXPIRE wzp:call:%s %llu", id,
                      (unsigned long long)(cl->cfg.presence_ttl / WZP_MS(1)));
}

void wzp_cluster_call_record(wzp_cluster *cl, const uint8_t *call_id, const uint8_t *fp_a,
                             const uint8_t *relay_a, const uint8_t *fp_b, const uint8_t *relay_b,
                             bool live)
{
    if (!wzp_cluster_up(cl))
        return; /* written again with the next refresh */
    if (live) {
        record_call(cl, call_id, fp_a, relay_a, fp_b, relay_b);
        return;
    }
    char id[2 * WZP_SIG_CALL_ID_LEN + 1];
    hex(id, call_id, WZP_SIG_CALL_ID_LEN);
    redisAsyncCommand(cl->cmd.ac, ignore_reply, cl, "DEL wzp:call:%s", id);
}

static void refresh_call(void *user, const uint8_t *call_id, const uint8_t *fp_a,
                         const uint8_t *relay_a, const uint8_t *fp_b, const uint8_t *relay_b)
{
    record_call(user, call_id, fp_a, relay_a, fp_b, relay_b);
}

static void republish_one(void *user, const uint8_t *fp, const char *alias)
{
    wzp_cluster *cl = user;
    presence_up(cl, fp, true);
    if (alias[0])
        claim(cl, 0, fp, alias);
}

static void refresh_one(void *user, const uint8_t *fp, const char *alias)
{
    (void)alias;
    presence_up(user, fp, false);
}

/* After a (re)connect: Redis may have lost everything (a restart without persistence). */
static void republish(wzp_cluster *cl)
{
    set_relay_record(cl);
    wzp_relay_control_foreach_registration(cl->cfg.ctl, republish_one, cl);
    wzp_relay_control_foreach_call(cl->cfg.ctl, refresh_call, cl);
    cl->refreshed = wzp_now();
}

static void on_tick(wzp_loop *loop, wzp_timer *t)
{
    wzp_cluster *cl = t->arg;
    wzp_ts now = wzp_now();
    (void)loop;
    if (wzp_cluster_up(cl)) {
        if (cl->ping_sent && now - cl->ping_sent > PING_TIMEOUT) {
            WZP_WARN("relay: cluster store does not answer; reconnecting");
            drop(&cl->cmd);
            drop(&cl->sub);
            schedule_reconnect(cl);
        } else {
            if (!cl->ping_sent) {
                cl->ping_sent = now;
                redisAsyncCommand(cl->cmd.ac, on_pong, cl, "PING");
            }
            /* Entries live presence_ttl: refreshed three times within it. */
            if (now - cl->refreshed >= cl->cfg.presence_ttl / 3) {
                cl->refreshed = now;
                set_relay_record(cl);
                wzp_relay_control_foreach_registration(cl->cfg.ctl, refresh_one, cl);
                wzp_relay_control_foreach_call(cl->cfg.ctl, refresh_call, cl);
            }
        }
    }
    wzp_timer_start(cl->loop, &cl->tick, now + PING_EVERY);
}

/* ---- locating a callee ---------------------------------------------------------------- */

typedef struct locate_req {
    wzp_cluster *cl;
    uint8_t call_id[WZP_SIG_CALL_ID_LEN];
    bool reattach; /* a Reattach's lookup (LUA_REATTACH), else a callee's (LUA_LOCATE) */
    int end;
    uint64_t conn, request_id;
} locate_req;

static void locate_finish(locate_req *q, wzp_relay_cluster_result res, const uint8_t *fp,
                          const uint8_t *relay, const wzp_addr *fwd)
{
    wzp_cluster *cl = q->cl;
    if (!cl->closing) {
        if (q->reattach)
            wzp_relay_control_reattach_found(cl->cfg.ctl, q->conn, q->request_id, q->call_id,
                                             q->end, res, fp, relay, fwd, wzp_now());
        else
            wzp_relay_control_located(cl->cfg.ctl, q->call_id, res, fp, relay, fwd, wzp_now());
        if (cl->cfg.notify)
            cl->cfg.notify(cl->cfg.user);
    }
    free(q);
}

/* An answer {fp, relay, forwarding address}, shorter when the store knows less: how many
 * leading fields are valid (0: none, or not what a relay wrote). What Redis holds was written
 * by relays, but it is checked like any input. */
static size_t parse_where(const redisReply *rep, uint8_t *fp, uint8_t *relay, wzp_addr *fwd)
{
    char text[WZP_ADDR_STRLEN];
    if (rep->elements > 3)
        return 0;
    for (size_t i = 0; i < rep->elements; i++)
        if (rep->element[i]->type != REDIS_REPLY_STRING)
            return 0;
    if (rep->elements < 1 || unhex(fp, WZP_SIG_FP_LEN, rep->element[0]->str, rep->element[0]->len))
        return 0;
    if (rep->elements < 2 ||
        unhex(relay, WZP_CLUSTER_ID_LEN, rep->element[1]->str, rep->element[1]->len))
        return 1;
    if (rep->elements < 3 || rep->element[2]->len >= sizeof(text))
        return 2;
    memcpy(text, rep->element[2]->str, rep->element[2]->len);
    text[rep->element[2]->len] = '\0';
    return wzp_addr_parse(fwd, text, false) == 0 ? 3 : 2;
}

static void on_locate(redisAsyncContext *ac, void *reply, void *priv)
{
    locate_req *q = priv;
    redisReply *rep = reply;
    uint8_t fp[WZP_SIG_FP_LEN] = {0}, relay[WZP_CLUSTER_ID_LEN] = {0};
    wzp_addr fwd;
    (void)ac;
    wzp_addr_clear(&fwd);
    if (!rep || rep->type != REDIS_REPLY_ARRAY)
        return locate_finish(q, WZP_RELAY_CLUSTER_UNAVAILABLE, fp, relay, &fwd);
    size_t n = parse_where(rep, fp, relay, &fwd);
    bool here = n >= 2 && memcmp(relay, q->cl->cfg.self, sizeof(relay)) == 0;
    bool ok;
    if (q->reattach) {
        ok = n >= 1; /* the other end's key at least; its relay if known and not this one */
        if (n < 2)
            memset(relay, 0, sizeof(relay));
        if (n < 3 || here)
            wzp_addr_clear(&fwd);
    } else {
        ok = n == 3 && !here; /* here: stale */
    }
    locate_finish(q, ok ? WZP_RELAY_CLUSTER_OK : WZP_RELAY_CLUSTER_NOT_FOUND, fp, relay, &fwd);
}

static void locate_deferred(wzp_loop *loop, void *arg)
{
    (void)loop;
    wzp_addr none;
    uint8_t z[WZP_SIG_FP_LEN] = {0};
    wzp_addr_clear(&none);
    locate_finish(arg, WZP_RELAY_CLUSTER_UNAVAILABLE, z, z, &none);
}

/* Runs q's script; without Redis, q is answered UNAVAILABLE from the loop. */
static void locate_run(wzp_cluster *cl, locate_req *q, int rv)
{
    if (rv != REDIS_OK && wzp_loop_post(cl->loop, locate_deferred, q) < 0)
        free(q);
}

void wzp_cluster_locate(wzp_cluster *cl, const uint8_t *call_id, bool by_alias, const uint8_t *fp,
                        const char *alias)
{
    locate_req *q = calloc(1, sizeof(*q));
    if (!q)
        return; /* the call expires unanswered */
    q->cl = cl;
    memcpy(q->call_id, call_id, WZP_SIG_CALL_ID_LEN);
    char f[HEX_FP];
    hex(f, fp, WZP_SIG_FP_LEN);
    locate_run(cl, q,
               wzp_cluster_up(cl)
                   ? redisAsyncCommand(cl->cmd.ac, on_locate, q, "EVAL %s 0 %s %s", LUA_LOCATE,
                                       by_alias ? "a" : "f", by_alias ? alias : f)
                   : REDIS_ERR);
}

void wzp_cluster_reattach(wzp_cluster *cl, uint64_t conn, uint64_t request_id,
                          const uint8_t *call_id, int end, const uint8_t *fp)
{
    locate_req *q = calloc(1, sizeof(*q));
    if (!q)
        return; /* the client gets no answer and gives up on the call */
    q->cl = cl;
    q->reattach = true;
    q->conn = conn;
    q->request_id = request_id;
    q->end = end;
    memcpy(q->call_id, call_id, WZP_SIG_CALL_ID_LEN);
    char id[2 * WZP_SIG_CALL_ID_LEN + 1], f[HEX_FP];
    hex(id, call_id, WZP_SIG_CALL_ID_LEN);
    hex(f, fp, WZP_SIG_FP_LEN);
    locate_run(cl, q,
               wzp_cluster_up(cl)
                   ? redisAsyncCommand(cl->cmd.ac, on_locate, q,
                                       "EVAL %s 1 wzp:call:%s %s %s %s %llu", LUA_REATTACH, id,
                                       end ? "b" : "a", f, cl->self_hex,
                                       (unsigned long long)(cl->cfg.presence_ttl / WZP_MS(1)))
                   : REDIS_ERR);
}

/* ---- relay-to-relay messages -------------------------------------------------------------- */

/* Zero receivers: the callee's relay died before its presence expired. */
static void on_offer_published(redisAsyncContext *ac, void *reply, void *priv)
{
    locate_req *q = priv;
    redisReply *rep = reply;
    (void)ac;
    if (!q->cl->closing && rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0) {
        wzp_relay_control_offer_unheard(q->cl->cfg.ctl, q->call_id, wzp_now());
        if (q->cl->cfg.notify)
            q->cl->cfg.notify(q->cl->cfg.user);
    }
    free(q);
}

void wzp_cluster_send(wzp_cluster *cl, wzp_cluster_msg *m)
{
    uint8_t buf[WZP_CLUSTER_MAX_SIZE];
    memcpy(m->from, cl->cfg.self, WZP_CLUSTER_ID_LEN);
    m->ts_ms = wall_ms();
    int n = wzp_cluster_msg_encode(m, &cl->cfg.key, buf, sizeof(buf));
    char to[HEX_ID];
    hex(to, m->to, WZP_CLUSTER_ID_LEN);
    /* An OFFER wants to know that a relay heard it (PUBLISH counts the receivers). */
    locate_req *q = m->kind == WZP_CLUSTER_OFFER ? calloc(1, sizeof(*q)) : NULL;
    if (q) {
        q->cl = cl;
        memcpy(q->call_id, m->call_id, WZP_SIG_CALL_ID_LEN);
    }
    if (n < 0 || !wzp_cluster_up(cl) ||
        redisAsyncCommand(cl->cmd.ac, q ? on_offer_published : ignore_reply, q ? (void *)q : cl,
                          "PUBLISH wzp:r:%s %b", to, buf, (size_t)n) != REDIS_OK) {
        free(q);
        cl->stats.msgs_unsent++;
        WZP_DEBUG("relay: cluster message for %s not sent (%s)", to,
                  n < 0 ? wzp_strerror(n) : "store unreachable");
        return;
    }
    cl->stats.msgs_sent++;
}

static void on_sub_message(redisAsyncContext *ac, void *reply, void *priv)
{
    wzp_cluster *cl = priv;
    redisReply *rep = reply;
    (void)ac;
    if (cl->closing || !rep || rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[0]->type != REDIS_REPLY_STRING || strcmp(rep->element[0]->str, "message") ||
        rep->element[2]->type != REDIS_REPLY_STRING)
        return; /* subscribe confirmations */
    wzp_cluster_msg m;
    int rv = wzp_cluster_msg_decode((const uint8_t *)rep->element[2]->str, rep->element[2]->len,
                                    &cl->cfg.key, cl->cfg.self, wall_ms(), &m);
    if (rv < 0) {
        cl->stats.msgs_refused++;
        WZP_DEBUG("relay: cluster message refused: %s", wzp_strerror(rv));
        return;
    }
    cl->stats.msgs_received++;
    wzp_relay_control_on_cluster(cl->cfg.ctl, &m, wzp_now());
    if (cl->cfg.notify)
        cl->cfg.notify(cl->cfg.user);
}

/* ---- lifetime ------------------------------------------------------------------------------ */

/* "[USER]:PASSWORD" or "PASSWORD" before the '@' at `at`. */
static int parse_userinfo(wzp_cluster *cl, const char *url, const char *at)
{
    const char *colon = memchr(url, ':', (size_t)(at - url));
    size_t ulen = colon ? (size_t)(colon - url) : 0;
    const char *pw = colon ? colon + 1 : url;
    size_t plen = (size_t)(at - pw);
    if (ulen >= sizeof(cl->user) || plen >= sizeof(cl->password))
        return WZP_ERR_INVALID;
    memcpy(cl->user, url, ulen);
    cl->user[ulen] = '\0';
    memcpy(cl->password, pw, plen);
    cl->password[plen] = '\0';
    return 0;
}

/* "sentinel://[[USER]:PASSWORD@]HOST:PORT[,HOST:PORT...]/MASTER" */
static int parse_sentinels(wzp_cluster *cl, const char *url)
{
    const char *at = strrchr(url, '@');
    const char *hosts = at ? at + 1 : url;
    const char *slash = strchr(hosts, '/');
    if (!slash || !slash[1] || strlen(slash + 1) >= sizeof(cl->master_name))
        return WZP_ERR_INVALID;
    snprintf(cl->master_name, sizeof(cl->master_name), "%s", slash + 1);
    for (const char *p = hosts; p < slash;) {
        const char *end = memchr(p, ',', (size_t)(slash - p));
        if (!end)
            end = slash;
        char one[WZP_HOST_MAX + 8];
        size_t n = (size_t)(end - p);
        if (!n || n >= sizeof(one) || cl->n_sentinels == MAX_SENTINELS)
            return WZP_ERR_INVALID;
        memcpy(one, p, n);
        one[n] = '\0';
        if (wzp_hostport_parse(&cl->sentinels[cl->n_sentinels++], one, 26379) < 0)
            return WZP_ERR_INVALID;
        p = end + 1;
    }
    return cl->n_sentinels ? 0 : WZP_ERR_INVALID;
}

static int parse_redis(wzp_cluster *cl, const char *url)
{
    if (!strncmp(url, "sentinel://", 11)) {
        url += 11;
        const char *at = strrchr(url, '@');
        if (at && parse_userinfo(cl, url, at) < 0) /* credentials are the master's */
            return WZP_ERR_INVALID;
        return parse_sentinels(cl, url);
    }
    if (!strncmp(url, "unix:", 5) || url[0] == '/') {
        const char *p = url[0] == '/' ? url : url + 5;
        if (!p[0] || strlen(p) >= sizeof(cl->path))
            return WZP_ERR_INVALID;
        cl->unix_sock = true;
        snprintf(cl->path, sizeof(cl->path), "%s", p);
        return 0;
    }
    if (!strncmp(url, "redis://", 8))
        url += 8;
    const char *at = strrchr(url, '@');
    if (at) {
        if (parse_userinfo(cl, url, at) < 0)
            return WZP_ERR_INVALID;
        url = at + 1;
    }
    size_t n = strlen(url);
    if (n && url[n - 1] == '/')
        n--; /* "redis://host:port/" */
    char hostport[WZP_HOST_MAX + 8];
    if (!n || n >= sizeof(hostport))
        return WZP_ERR_INVALID;
    memcpy(hostport, url, n);
    hostport[n] = '\0';
    return wzp_hostport_parse(&cl->hp, hostport, 6379);
}

int wzp_cluster_new(wzp_cluster **out, const wzp_cluster_config *cfg, wzp_loop *loop)
{
    if (!cfg->redis || !cfg->ctl || cfg->key.len < WZP_CLUSTER_KEY_MIN ||
        cfg->key.len > WZP_CLUSTER_KEY_MAX || !cfg->fwd_addr.len || wzp_addr_is_any(&cfg->fwd_addr))
        return WZP_ERR_INVALID;
    wzp_cluster *cl = calloc(1, sizeof(*cl));
    if (!cl)
        return WZP_ERR_NOMEM;
    cl->cfg = *cfg;
    cl->loop = loop;
    if (parse_redis(cl, cfg->redis) < 0) {
        free(cl);
        return WZP_ERR_INVALID;
    }
    if (cfg->redis_user)
        snprintf(cl->user, sizeof(cl->user), "%s", cfg->redis_user);
    if (cfg->redis_password)
        snprintf(cl->password, sizeof(cl->password), "%s", cfg->redis_password);
    if (!cl->cfg.presence_ttl)
        cl->cfg.presence_ttl = WZP_SEC(30);
    if (!cl->cfg.alias_ttl)
        cl->cfg.alias_ttl = WZP_SEC(30ull * 86400);
    hex(cl->self_hex, cfg->self, WZP_CLUSTER_ID_LEN);
    wzp_addr_format(&cfg->fwd_addr, cl->fwd_text, sizeof(cl->fwd_text));
    cl->cmd = (rconn){.cl = cl};
    cl->sub = (rconn){.cl = cl, .sub = true};
    cl->probe = (rconn){.cl = cl};
    wzp_io_init(&cl->cmd.io, on_io, &cl->cmd);
    wzp_io_init(&cl->sub.io, on_io, &cl->sub);
    wzp_io_init(&cl->probe.io, on_io, &cl->probe);
    wzp_timer_init(&cl->reconnect, on_reconnect, cl);
    wzp_timer_init(&cl->tick, on_tick, cl);
    cl->backoff = BACKOFF_MIN;
    on_reconnect(loop, &cl->reconnect);
    wzp_timer_start(loop, &cl->tick, wzp_now() + PING_EVERY);
    *out = cl;
    return 0;
}

void wzp_cluster_free(wzp_cluster *cl)
{
    if (!cl)
        return;
    wzp_timer_stop(cl->loop, &cl->reconnect);
    wzp_timer_stop(cl->loop, &cl->tick);
    /* Pending callbacks run now with no reply: they must not reach a control plane
     * being torn down. */
    cl->closing = true;
    drop(&cl->cmd);
    drop(&cl->sub);
    drop(&cl->probe);
    wzp_timer_stop(cl->loop, &cl->reconnect);
    free(cl);
}

void wzp_cluster_get_stats(const wzp_cluster *cl, wzp_cluster_stats *out)
{
    *out = cl->stats;
}
