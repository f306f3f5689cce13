/*
 * Arbitrary bytes fed as one UDP payload to a QUIC server endpoint and to a
 * client endpoint holding an established connection to it. Between inputs
 * the pair keeps talking (keep-alive on a virtual clock), so the fuzzer hits
 * live connections, handshakes in progress and the demultiplexer alike.
 * The same bytes also go to a second server that answers every new client
 * with a Retry (address validation always on, a small per-IP cap), so
 * Retry tokens and their checks get fuzzed; the client holds a connection
 * to it made through a Retry.
 *
 * Stateless reset: unknown short headers make the servers answer with
 * resets (the client's answers reach them back). The first server has a
 * static secret, so inputs that start with 0x6a (a short header; about one
 * in 256 random ones) also go to the client as a Stateless Reset for its
 * connection to that server: the tail replaced by the token of the
 * connection ID the client sends to. That connection then ends and is made
 * again.
 *
 * The connection-ID router of the relay's QUIC shards (wzp_quic_route) reads
 * every input too.
 *
 * WZP_FUZZ_WRITE_SEEDS=DIR makes the first call write real packets of a
 * handshake (client Initial, server Initial, short-header packets) to DIR:
 * that is how fuzz/corpus/quic_demux/ was made.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include "quic/quic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct side {
    wzp_quic_endpoint *ep;
    wzp_addr addr;
    int established, closed;
} side;

static wzp_identity *id_s, *id_c;
static side srv, cli, rsrv;
static wzp_ts now = 1000000000ULL;
static uint8_t fp_s[32];

/* Packets in flight between the two, delivered on the next pump. */
#define QMAX 256
static struct {
    side *from, *to;
    size_t len;
    uint8_t data[WZP_QUIC_MAX_PACKET];
} q[QMAX];
static int qn;
static const char *seed_dir;
/* Stateless reset: srv's secret, the DCID the client last sent to srv. */
static const uint8_t srv_secret[32] = {0x77, 0x7a, 0x70, 0x2f, 0x31};
static uint8_t cli_dcid[WZP_QUIC_CIDLEN];
static int have_cli_dcid, srv_conn_lost;
static int seeds_written;

static const wzp_quic_conn_callbacks conn_cbs;

static int on_accept(void *u, const wzp_addr *l, const wzp_addr *r, wzp_quic_conn_config *o,
                     wzp_ts t)
{
    side *s = u;
    /* Bound what garbage Initials can make us hold. */
    if (wzp_quic_endpoint_conn_count(s->ep) > 32)
        return -1;
    o->pin_mode = WZP_QUIC_PIN_ANY;
    o->keep_alive = WZP_MS(200);
    o->initial_rtt = WZP_MS(10);
    o->cb = conn_cbs;
    o->user = s;
    return 0;
}

static void on_established(void *u, wzp_quic_conn *c, const uint8_t *fp, wzp_ts t)
{
    ((side *)u)->established++;
}

static void on_closed(void *u, wzp_quic_conn *c, const wzp_quic_close_info *i, wzp_ts t)
{
    side *s = u;
    s->closed++;
    wzp_addr r;
    wzp_quic_conn_remote_addr(c, &r);
    if (s == &cli && wzp_addr_equal(&r, &srv.addr))
        srv_conn_lost = 1;
}

static const wzp_quic_callbacks cbs = {.accept = on_accept};
static const wzp_quic_conn_callbacks conn_cbs = {.established = on_established,
                                                 .closed = on_closed};

static void save_seed(const uint8_t *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/pkt-%02d", seed_dir, seeds_written++);
    FILE *f = fopen(path, "wb");
    if (f) {
        fwrite(p, 1, n, f);
        fclose(f);
    }
}

static void on_send(void *u, const wzp_addr *l, const wzp_addr *r, const uint8_t *p, size_t n)
{
    if (qn >= QMAX)
        return; /* the network drops it */
    q[qn].from = u;
    q[qn].to = wzp_addr_equal(r, &srv.addr) ? &srv : wzp_addr_equal(r, &rsrv.addr) ? &rsrv : &cli;
    q[qn].len = n;
    memcpy(q[qn].data, p, n);
    /* (Known to srv: not one of the client's own Stateless Resets.) */
    if (u == &cli && q[qn].to == &srv && n > WZP_QUIC_CIDLEN && !(p[0] & 0x80) &&
        wzp_quic_endpoint_lookup(srv.ep, p, n)) {
        memcpy(cli_dcid, p + 1, WZP_QUIC_CIDLEN);
        have_cli_dcid = 1;
    }
    qn++;
    if (seed_dir && seeds_written < 24)
        save_seed(p, n);
}

static void pump(int rounds)
{
    for (int i = 0; i < rounds; i++) {
        now += WZP_MS(5);
        wzp_quic_endpoint_handle_expiry(srv.ep, now);
        wzp_quic_endpoint_handle_expiry(rsrv.ep, now);
        wzp_quic_endpoint_handle_expiry(cli.ep, now);
        wzp_quic_endpoint_flush(srv.ep, now, on_send, &srv);
        wzp_quic_endpoint_flush(rsrv.ep, now, on_send, &rsrv);
        wzp_quic_endpoint_flush(cli.ep, now, on_send, &cli);
        int n = qn;
        qn = 0;
        for (int k = 0; k < n; k++) {
            side *d = q[k].to, *s = q[k].from;
            wzp_quic_endpoint_feed(d->ep, &d->addr, &s->addr, q[k].data, q[k].len, now, NULL);
        }
    }
}

static void connect_pair(const side *to)
{
    wzp_quic_conn_config o;
    wzp_quic_conn_config_default(&o);
    memcpy(o.pin, fp_s, 32);
    o.keep_alive = WZP_MS(200);
    o.initial_rtt = WZP_MS(10);
    o.cb = conn_cbs;
    o.user = &cli;
    wzp_quic_conn *c;
    int before = cli.established;
    if (wzp_quic_connect(cli.ep, &cli.addr, &to->addr, &o, now, &c) != 0)
        abort();
    for (int i = 0; i < 100 && cli.established == before; i++)
        pump(1);
}

static void setup(void)
{
    seed_dir = getenv("WZP_FUZZ_WRITE_SEEDS");
    if (wzp_identity_generate(&id_s) || wzp_identity_generate(&id_c))
        abort();
    wzp_identity_fingerprint(id_s, fp_s);
    wzp_addr_parse(&srv.addr, "10.0.0.1:443", false);
    wzp_addr_parse(&cli.addr, "10.0.0.2:5000", false);
    wzp_addr_parse(&rsrv.addr, "10.0.0.3:443", false);
    wzp_quic_endpoint_config cfg;
    wzp_quic_endpoint_config_default(&cfg);
    cfg.id = id_s;
    cfg.server = true;
    cfg.cb = cbs;
    cfg.user = &srv;
    cfg.have_static_secret = true;
    memcpy(cfg.static_secret, srv_secret, sizeof(srv_secret));
    if (wzp_quic_endpoint_new(&srv.ep, &cfg))
        abort();
    wzp_quic_endpoint_config_default(&cfg);
    cfg.id = id_s;
    cfg.server = true;
    cfg.cb = cbs;
    cfg.user = &rsrv;
    cfg.retry_threshold = 0;
    cfg.max_handshakes_per_addr = 4;
    if (wzp_quic_endpoint_new(&rsrv.ep, &cfg))
        abort();
    wzp_quic_endpoint_config_default(&cfg);
    cfg.id = id_c;
    cfg.cb = cbs;
    cfg.user = &cli;
    if (wzp_quic_endpoint_new(&cli.ep, &cfg))
        abort();
    connect_pair(&srv);
    connect_pair(&rsrv);
    seed_dir = NULL;
}

static void cleanup(void)
{
    wzp_quic_endpoint_free(srv.ep);
    wzp_quic_endpoint_free(rsrv.ep);
    wzp_quic_endpoint_free(cli.ep);
    wzp_identity_free(id_s);
    wzp_identity_free(id_c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setup();
        atexit(cleanup);
        ready = 1;
    }
    wzp_addr stranger;
    wzp_addr_parse(&stranger, "192.0.2.1:1234", false);
    wzp_quic_endpoint_feed(srv.ep, &srv.addr, &stranger, data, size, now, NULL);
    wzp_quic_endpoint_feed(srv.ep, &srv.addr, &cli.addr, data, size, now, NULL);
    wzp_quic_endpoint_feed(rsrv.ep, &rsrv.addr, &stranger, data, size, now, NULL);
    wzp_quic_endpoint_feed(rsrv.ep, &rsrv.addr, &cli.addr, data, size, now, NULL);
    wzp_quic_endpoint_feed(cli.ep, &cli.addr, &srv.addr, data, size, now, NULL);
    /* The relay's shard router reads the same bytes on its worker threads. */
    if (wzp_quic_route(0x5eed, 3, data, size) >= 3)
        abort();
    static uint8_t sr[WZP_QUIC_MAX_PACKET];
    if (have_cli_dcid && size >= 21 && size <= sizeof(sr) && data[0] == 0x6a) {
        /* The same bytes as a Stateless Reset srv would send for the client's connection. */
        ngtcp2_cid cid;
        ngtcp2_cid_init(&cid, cli_dcid, sizeof(cli_dcid));
        memcpy(sr, data, size);
        ngtcp2_crypto_generate_stateless_reset_token(sr + size - NGTCP2_STATELESS_RESET_TOKENLEN,
                                                     srv_secret, sizeof(srv_secret), &cid);
        wzp_quic_endpoint_lookup(cli.ep, sr, size);
        wzp_quic_endpoint_feed(cli.ep, &cli.addr, &srv.addr, sr, size, now, NULL);
    }
    pump(2);
    /* If the input managed to end the connection, start another. */
    if (srv_conn_lost || wzp_quic_endpoint_conn_count(cli.ep) == 0) {
        srv_conn_lost = 0;
        connect_pair(&srv);
    }
    return 0;
}
