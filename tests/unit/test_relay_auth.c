/*
 * Client authentication on the relay's QUIC shards (src/relay/shard.c) over real QUIC on
 * loopback: a client without a certificate registers once its Auth (its key, signed over
 * this connection's TLS exporter) checks out, with the fingerprint of that key; a replayed
 * Auth, a key with another key's signature, anything before Auth or no Auth at all closes
 * the connection. P-256 and Ed25519 identities both prove their keys; older clients that
 * present a certificate still register; relays with one shard or several behave alike.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <stdlib.h>
#include <string.h>

#include <wzp/identity.h>
#include <wzp/wzp.h>

#include "net/clock.h"
#include "support/id_pair.h"
#include "support/relay_client.h"
#include "wire/signal.h"

#define NIDS 3
static wzp_identity *ids[NIDS + 1]; /* the last one: an ECDSA P-256 identity */
static uint8_t fps[NIDS + 1][WZP_FINGERPRINT_LEN];
#define P256 NIDS

#define WAIT_SEC 20 /* generous: the sanitizer build on a shared machine is slow */

static int group_setup(void **state)
{
    (void)state;
    if (id_set_new(ids, fps, NIDS) != 0 || !(ids[P256] = id_p256_new()))
        return -1;
    wzp_identity_fingerprint(ids[P256], fps[P256]);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    id_set_free(ids, NIDS + 1);
    return 0;
}

static void start_relay(relay_thread *rt, unsigned shards)
{
    wzp_relay_server_config cfg;
    wzp_relay_server_config_default(&cfg);
    cfg.workers = 2;
    cfg.control_shards = shards;
    cfg.control.register_timeout = WZP_MS(600); /* the Auth deadline too */
    assert_int_equal(relay_thread_start(rt, &cfg), 0);
}

/* A client of identity id (anonymous: no certificate, Auth first, or `first` instead). */
static relay_client *client_new(relay_thread *rt, int id, bool anonymous, const wzp_sig_msg *first)
{
    relay_client *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    relay_client_opts o = {.auto_register = true, .anonymous = anonymous, .first_msg = first};
    assert_int_equal(relay_client_start(c, ids[id], &rt->addr, rt->fp, &o), 0);
    return c;
}

static void client_del(relay_client *c)
{
    relay_client_free(c);
    free(c);
}

static bool registered(const relay_client *c)
{
    return wzp_sigc_reg_state_get(c->sigc) == WZP_SIGC_REGISTERED;
}

static bool done_registered(void *arg)
{
    return registered(arg);
}

static bool done_closed(void *arg)
{
    return ((relay_client *)arg)->closed > 0;
}

/* c registers, as the key of identity id. */
static void assert_registers(relay_client *c, int id)
{
    relay_client_pump(&c, 1, WZP_SEC(WAIT_SEC), done_registered, c);
    assert_true(registered(c));
    assert_int_equal(c->closed, 0);
    const rc_event *r = relay_client_last(c, WZP_SIGC_EV_REGISTERED);
    assert_non_null(r);
    assert_memory_equal(r->msg.u.registered.fingerprint, fps[id], WZP_FINGERPRINT_LEN);
}

/* The relay closes c for its authentication (why: a piece of the reason), unregistered. */
static void assert_refused(relay_client *c, const char *why)
{
    relay_client_pump(&c, 1, WZP_SEC(WAIT_SEC), done_closed, c);
    assert_int_equal(c->closed, 1);
    assert_true(c->close_by_peer);
    assert_int_equal(c->close_err, 0);
    assert_int_equal(c->close_app, WZP_SIG_CLOSE_AUTH);
    assert_non_null(strstr(c->close_reason, why));
    assert_int_equal(relay_client_count(c, WZP_SIGC_EV_REGISTERED), 0);
}

/* A client of identity id whose first message is `first` is refused for `why`. */
static void assert_first_refused(relay_thread *rt, int id, const wzp_sig_msg *first,
                                 const char *why)
{
    relay_client *c = client_new(rt, id, true, first);
    assert_refused(c, why);
    client_del(c);
}

/* Ed25519 and P-256 clients without certificates, and an older one with its certificate,
 * register as their keys; on one shard and on several. */
static void test_auth_registers_the_proven_key(void **state)
{
    (void)state;
    for (unsigned shards = 1; shards <= 2; shards++) {
        relay_thread rt;
        start_relay(&rt, shards);
        relay_client *a = client_new(&rt, 0, true, NULL);
        relay_client *p = client_new(&rt, P256, true, NULL);
        relay_client *old = client_new(&rt, 1, false, NULL);
        assert_registers(a, 0);
        assert_int_equal(a->auth.type, WZP_SIG_AUTH);
        assert_int_equal(a->auth.u.auth.sig_len, 64);
        assert_registers(p, P256);
        assert_int_not_equal(p->auth.u.auth.sig_len, 64); /* ECDSA, DER */
        assert_registers(old, 1);
        /* The connection goes on as any other: Ping, Pong. */
        assert_int_equal(wzp_sigc_ping(a->sigc, wzp_now()), 0);
        relay_client *cs[] = {a, p, old};
        wzp_ts end = wzp_now() + WZP_SEC(WAIT_SEC);
        while (relay_client_count(a, WZP_SIGC_EV_PONG) == 0 && wzp_now() < end)
            relay_client_pump(cs, 3, WZP_MS(20), NULL, NULL);
        assert_int_equal(relay_client_count(a, WZP_SIGC_EV_PONG), 1);
        client_del(a);
        client_del(p);
        client_del(old);
        relay_thread_stop(&rt);
    }
}

/* A proof is good for its own connection only: the Auth of one connection sent on
 * another (a relay replaying it, or anyone who saw it) is refused; so is one key with
 * another key's signature, and a key that does not parse. */
static void test_replayed_or_mixed_auth_refused(void **state)
{
    (void)state;
    relay_thread rt;
    start_relay(&rt, 1);
    relay_client *a = client_new(&rt, 0, true, NULL);
    relay_client *b = client_new(&rt, 1, true, NULL);
    assert_registers(a, 0);
    assert_registers(b, 1);

    assert_first_refused(&rt, 0, &a->auth, "signature does not verify");

    wzp_sig_msg mixed = a->auth; /* A's key, B's signature over B's connection */
    memcpy(mixed.u.auth.sig, b->auth.u.auth.sig, b->auth.u.auth.sig_len);
    mixed.u.auth.sig_len = b->auth.u.auth.sig_len;
    assert_first_refused(&rt, 1, &mixed, "signature does not verify");

    wzp_sig_msg junk = a->auth;
    junk.u.auth.key_len = 20;
    assert_first_refused(&rt, 0, &junk, "public key");

    /* A and B were never disturbed. */
    relay_client *cs[] = {a, b};
    relay_client_pump(cs, 2, WZP_MS(100), NULL, NULL);
    assert_true(registered(a) && registered(b));
    assert_int_equal(a->closed + b->closed, 0);
    client_del(a);
    client_del(b);
    relay_thread_stop(&rt);
}

/* Anything but Auth first closes the connection; so does silence past the deadline. */
static void test_message_before_auth_or_none_closes(void **state)
{
    (void)state;
    relay_thread rt;
    start_relay(&rt, 2);
    wzp_sig_msg reg;
    wzp_sig_init(&reg, WZP_SIG_REGISTER, 7);
    assert_first_refused(&rt, 0, &reg, "the first message must be Auth");

    wzp_sig_msg none;
    wzp_sig_init(&none, WZP_SIG_NONE, 0);
    relay_client *quiet = calloc(1, sizeof(*quiet));
    assert_non_null(quiet);
    relay_client_opts o = {.anonymous = true, .first_msg = &none}; /* and no Register */
    assert_int_equal(relay_client_start(quiet, ids[1], &rt.addr, rt.fp, &o), 0);
    assert_refused(quiet, "no Auth in time");
    assert_int_equal(quiet->established, 1);
    client_del(quiet);
    relay_thread_stop(&rt);
}

WZP_TEST_MAIN(group_setup, group_teardown, test_auth_registers_the_proven_key,
              test_replayed_or_mixed_auth_refused, test_message_before_auth_or_none_closes)
