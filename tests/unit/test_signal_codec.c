/* Unit tests for the signaling codec (src/wire/signal.c): round trips, limits, malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "wire/signal.h"
#include "wzp_signal.pb-c.h"

static wzp_addr addr(const char *text)
{
    wzp_addr a;
    assert_int_equal(wzp_addr_parse(&a, text, false), 0);
    return a;
}

static void fill(uint8_t *p, size_t n, uint8_t seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(seed + i * 7);
}

static void some_params(wzp_sig_params *p)
{
    p->media_version = 3;
    p->codecs[0] = 1;
    p->codecs[1] = 9;
    p->n_codecs = 2;
    p->max_bitrate = 32000;
    fill(p->probe_key, 16, 0x40);
    p->probe_key_len = 16;
}

static void some_cands(wzp_sig_candidates *c, size_t n)
{
    static const char *texts[] = {"192.168.1.10:5000", "[2001:db8::5]:5001", "198.51.100.4:6000",
                                  "203.0.113.9:7000"};
    for (size_t i = 0; i < n; i++) {
        c->c[i].type = (wzp_sig_cand_type)(1 + i % 5);
        c->c[i].priority = 1000u - (uint32_t)i;
        c->c[i].addr = addr(texts[i % 4]);
    }
    c->n = n;
}

/* Encodes, decodes and compares field by field (via re-encoding, which is canonical). */
static void round_trip(const wzp_sig_msg *in, wzp_sig_msg *out)
{
    uint8_t buf[WZP_SIG_MAX_SIZE], buf2[WZP_SIG_MAX_SIZE];
    int n = wzp_sig_encode(in, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(wzp_sig_decode(buf, (size_t)n, out), 0);
    assert_int_equal(out->type, in->type);
    assert_true(out->request_id == in->request_id);
    int n2 = wzp_sig_encode(out, buf2, sizeof(buf2));
    assert_int_equal(n2, n);
    assert_memory_equal(buf, buf2, (size_t)n);
}

static void test_round_trip_all_types(void **state)
{
    (void)state;
    wzp_sig_msg m, d;

    wzp_sig_init(&m, WZP_SIG_REGISTER, 7);
    strcpy(m.u.reg.alias, "alice");
    round_trip(&m, &d);
    assert_string_equal(d.u.reg.alias, "alice");

    wzp_sig_init(&m, WZP_SIG_REGISTER, 8);
    round_trip(&m, &d);
    assert_string_equal(d.u.reg.alias, "");

    wzp_sig_init(&m, WZP_SIG_REGISTERED, 7);
    fill(m.u.registered.fingerprint, WZP_SIG_FP_LEN, 1);
    m.u.registered.reflexive = addr("[2001:db8::1]:443");
    strcpy(m.u.registered.alias, "a.b-c_d");
    round_trip(&m, &d);
    assert_memory_equal(d.u.registered.fingerprint, m.u.registered.fingerprint, WZP_SIG_FP_LEN);
    assert_true(wzp_addr_equal(&d.u.registered.reflexive, &m.u.registered.reflexive));
    assert_string_equal(d.u.registered.alias, "a.b-c_d");

    wzp_sig_init(&m, WZP_SIG_REFLEXIVE_ADDRESS, 0);
    m.u.reflexive.reflexive = addr("192.0.2.1:1");
    round_trip(&m, &d);
    assert_true(wzp_addr_equal(&d.u.reflexive.reflexive, &m.u.reflexive.reflexive));

    wzp_sig_init(&m, WZP_SIG_OFFER, UINT64_MAX);
    fill(m.u.offer.callee_fp, WZP_SIG_FP_LEN, 9);
    some_params(&m.u.offer.params);
    some_cands(&m.u.offer.cands, WZP_SIG_MAX_CANDIDATES);
    round_trip(&m, &d);
    assert_false(d.u.offer.by_alias);
    assert_memory_equal(d.u.offer.callee_fp, m.u.offer.callee_fp, WZP_SIG_FP_LEN);
    assert_int_equal(d.u.offer.cands.n, WZP_SIG_MAX_CANDIDATES);
    for (size_t i = 0; i < d.u.offer.cands.n; i++) {
        assert_int_equal(d.u.offer.cands.c[i].type, m.u.offer.cands.c[i].type);
        assert_int_equal(d.u.offer.cands.c[i].priority, m.u.offer.cands.c[i].priority);
        assert_true(wzp_addr_equal(&d.u.offer.cands.c[i].addr, &m.u.offer.cands.c[i].addr));
    }
    assert_int_equal(d.u.offer.params.n_codecs, 2);
    assert_int_equal(d.u.offer.params.codecs[1], 9);
    assert_int_equal(d.u.offer.params.probe_key_len, 16);
    assert_memory_equal(d.u.offer.params.probe_key, m.u.offer.params.probe_key, 16);
    assert_string_equal(d.u.offer.alias_hint, "");
    strcpy(m.u.offer.alias_hint, "carol"); /* the alias a contact's key is known by */
    round_trip(&m, &d);
    assert_string_equal(d.u.offer.alias_hint, "carol");
    m.u.offer.by_alias = true; /* a hint only goes with a key */
    strcpy(m.u.offer.callee_alias, "bob");
    uint8_t buf[WZP_SIG_MAX_SIZE];
    assert_true(wzp_sig_encode(&m, buf, sizeof(buf)) < 0);
    m.u.offer.by_alias = false;
    strcpy(m.u.offer.alias_hint, "Bad Alias");
    assert_true(wzp_sig_encode(&m, buf, sizeof(buf)) < 0);

    wzp_sig_init(&m, WZP_SIG_OFFER, 3);
    m.u.offer.by_alias = true;
    strcpy(m.u.offer.callee_alias, "bob");
    round_trip(&m, &d);
    assert_true(d.u.offer.by_alias);
    assert_string_equal(d.u.offer.callee_alias, "bob");
    assert_int_equal(d.u.offer.cands.n, 0);

    wzp_sig_init(&m, WZP_SIG_INCOMING_CALL, 0);
    fill(m.u.incoming.call_id, WZP_SIG_CALL_ID_LEN, 3);
    fill(m.u.incoming.caller_fp, WZP_SIG_FP_LEN, 4);
    strcpy(m.u.incoming.caller_alias, "alice");
    round_trip(&m, &d);
    assert_memory_equal(d.u.incoming.call_id, m.u.incoming.call_id, WZP_SIG_CALL_ID_LEN);
    assert_int_equal(d.u.incoming.relay_channel, 0);
    assert_int_equal(d.u.incoming.relay_addr.len, 0);
    /* Pre-connected ringing: the callee's channel (and where the forwarding plane is). */
    m.u.incoming.relay_channel = 77;
    m.u.incoming.relay_addr = addr("[2001:db8::1]:4433");
    round_trip(&m, &d);
    assert_int_equal(d.u.incoming.relay_channel, 77);
    assert_true(wzp_addr_equal(&d.u.incoming.relay_addr, &m.u.incoming.relay_addr));

    wzp_sig_init(&m, WZP_SIG_RINGING, 9);
    fill(m.u.ringing.call_id, WZP_SIG_CALL_ID_LEN, 6);
    m.u.ringing.relay_channel = 78;
    m.u.ringing.relay_addr = addr("192.0.2.1:4433");
    m.u.ringing.have_callee_fp = true;
    fill(m.u.ringing.callee_fp, WZP_SIG_FP_LEN, 7);
    round_trip(&m, &d);
    assert_int_equal(d.u.ringing.relay_channel, 78);
    assert_true(wzp_addr_equal(&d.u.ringing.relay_addr, &m.u.ringing.relay_addr));
    assert_true(d.u.ringing.have_callee_fp);
    assert_memory_equal(d.u.ringing.callee_fp, m.u.ringing.callee_fp, WZP_SIG_FP_LEN);

    wzp_sig_type simple[] = {WZP_SIG_RINGING, WZP_SIG_REJECT, WZP_SIG_BUSY, WZP_SIG_CANCEL};
    for (size_t i = 0; i < 4; i++) {
        wzp_sig_init(&m, simple[i], i + 1);
        fill(m.u.call.call_id, WZP_SIG_CALL_ID_LEN, (uint8_t)i);
        round_trip(&m, &d);
        assert_memory_equal(d.u.call.call_id, m.u.call.call_id, WZP_SIG_CALL_ID_LEN);
    }

    wzp_sig_init(&m, WZP_SIG_ACCEPT, 5);
    fill(m.u.accept.call_id, WZP_SIG_CALL_ID_LEN, 5);
    some_params(&m.u.accept.params);
    some_cands(&m.u.accept.cands, 3);
    round_trip(&m, &d);
    assert_int_equal(d.u.accept.cands.n, 3);

    wzp_sig_init(&m, WZP_SIG_HANGUP, 5);
    fill(m.u.end.call_id, WZP_SIG_CALL_ID_LEN, 5);
    m.u.end.reason = WZP_SIG_END_ERROR;
    round_trip(&m, &d);
    assert_int_equal(d.u.end.reason, WZP_SIG_END_ERROR);
    assert_int_equal(d.u.end.path, WZP_SIG_PATH_UNSPECIFIED);
    m.u.end.path = WZP_SIG_PATH_DIRECT;
    round_trip(&m, &d);
    assert_int_equal(d.u.end.path, WZP_SIG_PATH_DIRECT);

    wzp_sig_init(&m, WZP_SIG_CALL_SETUP, 0);
    fill(m.u.setup.call_id, WZP_SIG_CALL_ID_LEN, 6);
    fill(m.u.setup.peer_fp, WZP_SIG_FP_LEN, 6);
    strcpy(m.u.setup.peer_alias, "bob");
    some_params(&m.u.setup.peer_params);
    some_cands(&m.u.setup.peer_cands, 4);
    m.u.setup.role = WZP_SIG_ROLE_CALLEE;
    m.u.setup.relay_channel = 0xdeadbeef;
    m.u.setup.relay_addr = addr("198.51.100.1:3478");
    round_trip(&m, &d);
    assert_int_equal(d.u.setup.role, WZP_SIG_ROLE_CALLEE);
    assert_int_equal(d.u.setup.relay_channel, 0xdeadbeef);
    assert_true(wzp_addr_equal(&d.u.setup.relay_addr, &m.u.setup.relay_addr));
    m.u.setup.relay_addr.len = 0;
    round_trip(&m, &d);
    assert_int_equal(d.u.setup.relay_addr.len, 0);

    for (int r = WZP_SIG_END_HANGUP; r <= WZP_SIG_END_ERROR; r++) {
        wzp_sig_init(&m, WZP_SIG_CALL_ENDED, 1);
        fill(m.u.end.call_id, WZP_SIG_CALL_ID_LEN, 8);
        m.u.end.reason = (wzp_sig_end_reason)r;
        round_trip(&m, &d);
        assert_int_equal(d.u.end.reason, r);
        assert_false(d.u.end.have_holder);
    }
    m.u.end.reason = WZP_SIG_END_OFFLINE;
    m.u.end.have_holder = true;
    fill(m.u.end.holder_fp, WZP_SIG_FP_LEN, 12);
    round_trip(&m, &d);
    assert_true(d.u.end.have_holder);
    assert_memory_equal(d.u.end.holder_fp, m.u.end.holder_fp, WZP_SIG_FP_LEN);

    wzp_sig_init(&m, WZP_SIG_ERROR, 99);
    m.u.error.code = WZP_SIG_ERR_ALIAS_TAKEN;
    strcpy(m.u.error.text, "alias taken");
    round_trip(&m, &d);
    assert_int_equal(d.u.error.code, WZP_SIG_ERR_ALIAS_TAKEN);
    assert_string_equal(d.u.error.text, "alias taken");

    wzp_sig_init(&m, WZP_SIG_CANDIDATES_UPDATE, 12);
    fill(m.u.update.call_id, WZP_SIG_CALL_ID_LEN, 9);
    some_cands(&m.u.update.cands, 5);
    round_trip(&m, &d);
    assert_int_equal(d.u.update.cands.n, 5);
    assert_memory_equal(d.u.update.call_id, m.u.update.call_id, WZP_SIG_CALL_ID_LEN);
    assert_false(d.u.update.complete);
    assert_int_equal(d.u.update.generation, 0);
    /* A complete set (withdraws what it omits), numbered; may be empty. */
    m.u.update.complete = true;
    m.u.update.generation = 0xfffffffe;
    round_trip(&m, &d);
    assert_true(d.u.update.complete);
    assert_int_equal(d.u.update.generation, 0xfffffffe);
    assert_int_equal(d.u.update.cands.n, 5);
    m.u.update.cands.n = 0;
    m.u.update.generation = 1;
    round_trip(&m, &d);
    assert_true(d.u.update.complete);
    assert_int_equal(d.u.update.cands.n, 0);

    wzp_sig_init(&m, WZP_SIG_PING, 11);
    round_trip(&m, &d);
    wzp_sig_init(&m, WZP_SIG_PONG, 11);
    round_trip(&m, &d);

    wzp_sig_init(&m, WZP_SIG_REATTACH, 13);
    fill(m.u.reattach.call_id, WZP_SIG_CALL_ID_LEN, 3);
    m.u.reattach.role = WZP_SIG_ROLE_CALLEE;
    round_trip(&m, &d);
    assert_memory_equal(d.u.reattach.call_id, m.u.reattach.call_id, WZP_SIG_CALL_ID_LEN);
    assert_int_equal(d.u.reattach.role, WZP_SIG_ROLE_CALLEE);
    wzp_sig_init(&m, WZP_SIG_REATTACHED, 13);
    fill(m.u.reattach.call_id, WZP_SIG_CALL_ID_LEN, 3);
    m.u.reattach.relay_channel = 0x80000001u;
    round_trip(&m, &d);
    assert_int_equal(d.u.reattach.relay_channel, 0x80000001u);
    assert_int_equal(d.u.reattach.relay_addr.len, 0);
    m.u.reattach.relay_addr = addr("[2001:db8::1]:4433");
    round_trip(&m, &d);
    assert_true(wzp_addr_equal(&d.u.reattach.relay_addr, &m.u.reattach.relay_addr));
    wzp_sig_init(&m, WZP_SIG_REHOME, 0);
    round_trip(&m, &d);
    wzp_sig_init(&m, WZP_SIG_PARK, 0);
    fill(m.u.park.park_id, WZP_PARK_ID_LEN, 7);
    fill(m.u.park.key, WZP_PARK_KEY_LEN, 9);
    m.u.park.keepalive_ms = 4000;
    round_trip(&m, &d);
    assert_memory_equal(d.u.park.park_id, m.u.park.park_id, WZP_PARK_ID_LEN);
    assert_memory_equal(d.u.park.key, m.u.park.key, WZP_PARK_KEY_LEN);
    assert_int_equal(d.u.park.keepalive_ms, 4000);
    /* The client pings at this interval: none, or rarer than the cap, is not one. */
    uint8_t out[WZP_SIG_MAX_SIZE];
    m.u.park.keepalive_ms = 0;
    assert_int_equal(wzp_sig_encode(&m, out, sizeof(out)), WZP_ERR_INVALID);
    m.u.park.keepalive_ms = WZP_PARK_KEEPALIVE_MAX_MS + 1;
    assert_int_equal(wzp_sig_encode(&m, out, sizeof(out)), WZP_ERR_INVALID);

    wzp_sig_init(&m, WZP_SIG_AUTH, 0);
    m.u.auth.key_len = 44;
    fill(m.u.auth.key, m.u.auth.key_len, 5);
    m.u.auth.sig_len = WZP_SIG_AUTH_SIG_MAX;
    fill(m.u.auth.sig, m.u.auth.sig_len, 9);
    round_trip(&m, &d);
    assert_int_equal(d.u.auth.key_len, 44);
    assert_memory_equal(d.u.auth.key, m.u.auth.key, 44);
    assert_int_equal(d.u.auth.sig_len, WZP_SIG_AUTH_SIG_MAX);
    assert_memory_equal(d.u.auth.sig, m.u.auth.sig, WZP_SIG_AUTH_SIG_MAX);
}

/* A two-byte varint length (128..16383) or a one-byte one. */
static size_t put_len(uint8_t *p, size_t len)
{
    if (len < 128) {
        p[0] = (uint8_t)len;
        return 1;
    }
    p[0] = (uint8_t)(0x80 | (len & 0x7f));
    p[1] = (uint8_t)(len >> 7);
    return 2;
}

/* Envelope{version 1, auth{public_key: key_len bytes, signature: sig_len bytes}}, by hand. */
static size_t auth_envelope(uint8_t *buf, size_t key_len, size_t sig_len)
{
    uint8_t body[600];
    size_t b = 0, n = 0;
    if (key_len) {
        body[b++] = 0x0a;
        b += put_len(body + b, key_len);
        memset(body + b, 0x30, key_len);
        b += key_len;
    }
    if (sig_len) {
        body[b++] = 0x12;
        b += put_len(body + b, sig_len);
        memset(body + b, 0x55, sig_len);
        b += sig_len;
    }
    const uint8_t head[] = {0x08, 0x01, 0xfa, 0x01}; /* version 1; field 31, length-delimited */
    memcpy(buf, head, sizeof(head));
    n = sizeof(head);
    n += put_len(buf + n, b);
    memcpy(buf + n, body, b);
    return n + b;
}

/* Auth needs a key and a signature, each within its bound, both ways. */
static void test_auth_bounds(void **state)
{
    (void)state;
    uint8_t buf[WZP_SIG_MAX_SIZE];
    wzp_sig_msg m, d;
    wzp_sig_init(&m, WZP_SIG_AUTH, 0);
    m.u.auth.key_len = 1;
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID); /* no signature */
    m.u.auth.sig_len = WZP_SIG_AUTH_SIG_MAX + 1;
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID);
    m.u.auth.sig_len = 1;
    m.u.auth.key_len = 0;
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID);

    size_t n = auth_envelope(buf, WZP_SIG_AUTH_KEY_MAX, WZP_SIG_AUTH_SIG_MAX);
    assert_int_equal(wzp_sig_decode(buf, n, &d), 0);
    assert_int_equal(d.type, WZP_SIG_AUTH);
    assert_int_equal(d.u.auth.key_len, WZP_SIG_AUTH_KEY_MAX);
    n = auth_envelope(buf, WZP_SIG_AUTH_KEY_MAX + 1, 1);
    assert_int_equal(wzp_sig_decode(buf, n, &d), WZP_ERR_MALFORMED);
    n = auth_envelope(buf, 1, WZP_SIG_AUTH_SIG_MAX + 1);
    assert_int_equal(wzp_sig_decode(buf, n, &d), WZP_ERR_MALFORMED);
    n = auth_envelope(buf, 44, 0);
    assert_int_equal(wzp_sig_decode(buf, n, &d), WZP_ERR_MALFORMED);
    n = auth_envelope(buf, 0, 64);
    assert_int_equal(wzp_sig_decode(buf, n, &d), WZP_ERR_MALFORMED);
    n = auth_envelope(buf, 44, 64);
    assert_int_equal(wzp_sig_decode(buf, n - 1, &d), WZP_ERR_MALFORMED); /* truncated */
}

static void test_encode_refuses_invalid(void **state)
{
    (void)state;
    uint8_t buf[WZP_SIG_MAX_SIZE];
    wzp_sig_msg m;

    wzp_sig_init(&m, WZP_SIG_REGISTER, 1);
    strcpy(m.u.reg.alias, "Alice"); /* upper case */
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID);
    strcpy(m.u.reg.alias, "-alice");
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID);
    memset(m.u.reg.alias, 'a', WZP_SIG_ALIAS_MAX);
    m.u.reg.alias[WZP_SIG_ALIAS_MAX] = '\0';
    assert_true(wzp_sig_encode(&m, buf, sizeof(buf)) > 0); /* exactly the maximum */

    wzp_sig_init(&m, WZP_SIG_OFFER, 1);
    some_cands(&m.u.offer.cands, 2);
    m.u.offer.cands.n = WZP_SIG_MAX_CANDIDATES + 1;
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID);
    m.u.offer.cands.n = 1;
    wzp_addr_set_port(&m.u.offer.cands.c[0].addr, 0);
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID);
    some_cands(&m.u.offer.cands, 1);
    m.u.offer.params.probe_key_len = 8;
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID);
    m.u.offer.params.probe_key_len = 0;
    m.u.offer.params.n_codecs = WZP_SIG_MAX_CODECS + 1;
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID);
    m.u.offer.params.n_codecs = 0;
    int n = wzp_sig_encode(&m, buf, sizeof(buf));
    assert_true(n > 0);
    assert_int_equal(wzp_sig_encode(&m, buf, (size_t)n - 1), WZP_ERR_TOO_BIG);

    wzp_sig_init(&m, WZP_SIG_CALL_SETUP, 1);
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID); /* no role */
    wzp_sig_init(&m, WZP_SIG_REGISTERED, 1);
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID); /* no address */
    wzp_sig_init(&m, WZP_SIG_HANGUP, 1);
    m.u.end.reason = WZP_SIG_END_BUSY;
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID);
    wzp_sig_init(&m, WZP_SIG_CANDIDATES_UPDATE, 1);
    m.u.update.complete = true; /* a complete set needs a generation */
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID);
    m.u.update.complete = false;
    m.u.update.generation = 3; /* an add-only one has none */
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID);
    wzp_sig_init(&m, WZP_SIG_REATTACH, 1); /* which end? */
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID);
    wzp_sig_init(&m, WZP_SIG_REATTACHED, 1); /* no channel */
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID);
    wzp_sig_init(&m, WZP_SIG_NONE, 1);
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID);
}

/* A protobuf bytes field over n bytes at p. */
static ProtobufCBinaryData bin(uint8_t *p, size_t n)
{
    ProtobufCBinaryData b = {.len = n, .data = p};
    return b;
}

/* Packs a hand-built envelope (bypassing our encoder's validation). */
static size_t pack(Wzp__Envelope *e, uint8_t *buf)
{
    assert_true(wzp__envelope__get_packed_size(e) <= WZP_SIG_MAX_SIZE);
    return wzp__envelope__pack(e, buf);
}

/* Packs the envelope into buf and decodes it again: the decoder's verdict. */
static int redecode(Wzp__Envelope *e, uint8_t *buf, wzp_sig_msg *d)
{
    return wzp_sig_decode(buf, pack(e, buf), d);
}

static void test_decode_rejects_malformed(void **state)
{
    (void)state;
    uint8_t buf[WZP_SIG_MAX_SIZE * 2];
    wzp_sig_msg d;
    uint8_t b31[31] = {0}, b16[16] = {0}, b15[15] = {0}, b5[5] = {0}, b4[4] = {1, 2, 3, 4};

    /* Too big: rejected before parsing. */
    memset(buf, 0, sizeof(buf));
    assert_int_equal(wzp_sig_decode(buf, WZP_SIG_MAX_SIZE + 1, &d), WZP_ERR_TOO_BIG);
    /* Not protobuf at all / truncated. */
    memset(buf, 0xff, 64);
    assert_int_equal(wzp_sig_decode(buf, 64, &d), WZP_ERR_MALFORMED);

    Wzp__Envelope e = WZP__ENVELOPE__INIT;
    Wzp__Ringing ring = WZP__RINGING__INIT;
    e.version = 1;
    e.request_id = 42;
    /* No body. */
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    size_t n;
    assert_true(d.request_id == 42); /* still correlatable */

    /* Call id of the wrong length. */
    e.body_case = WZP__ENVELOPE__BODY_RINGING;
    e.ringing = &ring;
    ring.call_id = bin(b15, sizeof(b15));
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    ring.call_id = bin(b16, sizeof(b16));
    assert_int_equal(redecode(&e, buf, &d), 0);

    /* A callee fingerprint of the wrong length; a relay address without a port. */
    ring.callee_fingerprint = bin(b31, sizeof(b31));
    assert_int_equal(wzp_sig_decode(buf, pack(&e, buf), &d), WZP_ERR_MALFORMED);
    ring.callee_fingerprint.len = 0;
    Wzp__Address no_port = WZP__ADDRESS__INIT;
    no_port.ip = bin(b4, sizeof(b4));
    ring.relay_address = &no_port;
    assert_int_equal(wzp_sig_decode(buf, pack(&e, buf), &d), WZP_ERR_MALFORMED);
    ring.relay_address = NULL;
    n = pack(&e, buf);

    /* Truncated by one byte. */
    assert_int_equal(wzp_sig_decode(buf, n - 1, &d), WZP_ERR_MALFORMED);

    /* Unknown fields are ignored: append field 99 (varint). */
    buf[n] = (uint8_t)((99 << 3) & 0xff) | 0x80;
    buf[n + 1] = 99 >> 4;
    buf[n + 2] = 5;
    assert_int_equal(wzp_sig_decode(buf, n + 3, &d), 0);
    assert_int_equal(d.type, WZP_SIG_RINGING);

    /* Another version: typed error, request id kept. */
    e.version = 2;
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_PROTOCOL);
    assert_true(d.request_id == 42);
    e.version = 0; /* absent */
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    e.version = 1;

    /* Fingerprint of 31 bytes. */
    Wzp__IncomingCall inc = WZP__INCOMING_CALL__INIT;
    e.body_case = WZP__ENVELOPE__BODY_INCOMING_CALL;
    e.incoming_call = &inc;
    inc.call_id = bin(b16, 16);
    inc.caller_fingerprint = bin(b31, 31);
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    /* Bad alias charset. */
    uint8_t fp[32] = {0};
    inc.caller_fingerprint = bin(fp, 32);
    inc.caller_alias = "bad alias";
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    inc.caller_alias = "ok";
    assert_int_equal(redecode(&e, buf, &d), 0);

    /* Addresses: 5-byte IP, port 0, port > 65535, missing. */
    Wzp__ReflexiveAddress ra = WZP__REFLEXIVE_ADDRESS__INIT;
    Wzp__Address a = WZP__ADDRESS__INIT;
    e.body_case = WZP__ENVELOPE__BODY_REFLEXIVE_ADDRESS;
    e.reflexive_address = &ra;
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    ra.reflexive = &a;
    a.ip = bin(b5, 5);
    a.port = 1;
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    a.ip = bin(b4, 4);
    a.port = 0;
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    a.port = 65536;
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    a.port = 65535;
    assert_int_equal(redecode(&e, buf, &d), 0);

    /* Candidates: too many; unknown type skipped; missing address. */
    Wzp__Accept acc = WZP__ACCEPT__INIT;
    Wzp__Candidate cand[WZP_SIG_MAX_CANDIDATES + 1];
    Wzp__Candidate *cp[WZP_SIG_MAX_CANDIDATES + 1];
    for (size_t i = 0; i < WZP_SIG_MAX_CANDIDATES + 1; i++) {
        wzp__candidate__init(&cand[i]);
        cand[i].type = WZP__CANDIDATE_TYPE__CANDIDATE_HOST;
        cand[i].addr = &a;
        cp[i] = &cand[i];
    }
    e.body_case = WZP__ENVELOPE__BODY_ACCEPT;
    e.accept = &acc;
    acc.call_id = bin(b16, 16);
    acc.candidates = cp;
    acc.n_candidates = WZP_SIG_MAX_CANDIDATES + 1;
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    acc.n_candidates = 3;
    cand[1].type = (Wzp__CandidateType)77;
    assert_int_equal(redecode(&e, buf, &d), 0);
    assert_int_equal(d.u.accept.cands.n, 2);
    cand[1].type = WZP__CANDIDATE_TYPE__CANDIDATE_MAPPED; /* a port mapping: kept */
    assert_int_equal(redecode(&e, buf, &d), 0);
    assert_int_equal(d.u.accept.cands.n, 3);
    assert_int_equal(d.u.accept.cands.c[1].type, WZP_SIG_CAND_MAPPED);
    cand[1].type = (Wzp__CandidateType)77;
    cand[2].addr = NULL;
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    cand[2].addr = &a;

    /* CandidatesUpdate: too many candidates, a bad address, generation and
     * complete not agreeing; an old sender's add-only update still decodes. */
    Wzp__CandidatesUpdate upd = WZP__CANDIDATES_UPDATE__INIT;
    e.body_case = WZP__ENVELOPE__BODY_CANDIDATES_UPDATE;
    e.candidates_update = &upd;
    upd.call_id = bin(b16, 16);
    upd.candidates = cp;
    upd.n_candidates = 2;
    assert_int_equal(redecode(&e, buf, &d), 0);
    assert_false(d.u.update.complete);
    upd.complete = true;
    upd.generation = 9;
    upd.n_candidates = WZP_SIG_MAX_CANDIDATES + 1;
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    upd.n_candidates = 2;
    assert_int_equal(redecode(&e, buf, &d), 0);
    assert_true(d.u.update.complete);
    assert_int_equal(d.u.update.generation, 9);
    upd.generation = 0; /* complete without a generation */
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    upd.complete = false;
    upd.generation = 4; /* a generation on an add-only update */
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    upd.complete = true;
    upd.call_id.len = 15;
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    upd.call_id.len = 16;
    a.port = 0;
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    a.port = 65535;
    e.body_case = WZP__ENVELOPE__BODY_ACCEPT;
    e.accept = &acc; /* the oneof shares storage */

    /* Params: short probe key, too many codecs. */
    Wzp__CallParams cpar = WZP__CALL_PARAMS__INIT;
    uint32_t codecs[WZP_SIG_MAX_CODECS + 1] = {0};
    acc.params = &cpar;
    cpar.probe_key = bin(b5, 5);
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    cpar.probe_key.len = 0;
    cpar.codecs = codecs;
    cpar.n_codecs = WZP_SIG_MAX_CODECS + 1;
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    cpar.n_codecs = WZP_SIG_MAX_CODECS;
    assert_int_equal(redecode(&e, buf, &d), 0);

    /* CallSetup without a valid role. */
    Wzp__CallSetup su = WZP__CALL_SETUP__INIT;
    e.body_case = WZP__ENVELOPE__BODY_CALL_SETUP;
    e.call_setup = &su;
    su.call_id = bin(b16, 16);
    su.peer_fingerprint = bin(fp, 32);
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    su.role = WZP__ROLE__ROLE_CALLER;
    assert_int_equal(redecode(&e, buf, &d), 0);

    /* Unknown end reason reads as ERROR; a Hangup with a reason it may not carry is refused. */
    Wzp__CallEnded ce = WZP__CALL_ENDED__INIT;
    e.body_case = WZP__ENVELOPE__BODY_CALL_ENDED;
    e.call_ended = &ce;
    ce.call_id = bin(b16, 16);
    ce.reason = (Wzp__EndReason)1234;
    assert_int_equal(redecode(&e, buf, &d), 0);
    assert_int_equal(d.u.end.reason, WZP_SIG_END_ERROR);
    Wzp__Hangup hu = WZP__HANGUP__INIT;
    e.body_case = WZP__ENVELOPE__BODY_HANGUP;
    e.hangup = &hu;
    hu.call_id = bin(b16, 16);
    assert_int_equal(redecode(&e, buf, &d), 0);
    assert_int_equal(d.u.end.reason, WZP_SIG_END_HANGUP); /* unspecified = hangup */
    /* A path report from a newer client that we cannot read is only unspecified. */
    hu.path = (Wzp__CallPath)77;
    assert_int_equal(redecode(&e, buf, &d), 0);
    assert_int_equal(d.u.end.path, WZP_SIG_PATH_UNSPECIFIED);
    hu.path = WZP__CALL_PATH__CALL_PATH_RELAYED;
    assert_int_equal(redecode(&e, buf, &d), 0);
    assert_int_equal(d.u.end.path, WZP_SIG_PATH_RELAYED);
    hu.path = WZP__CALL_PATH__CALL_PATH_UNSPECIFIED;
    hu.reason = WZP__END_REASON__END_BUSY;
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);

    /* Offer without a callee. */
    Wzp__Offer of;
    wzp__offer__init(&of);
    e.body_case = WZP__ENVELOPE__BODY_OFFER;
    e.offer = &of;
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    of.callee_case = WZP__OFFER__CALLEE_CALLEE_ALIAS;
    of.callee_alias = "";
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);

    /* Error text: control characters are neutralised; over-long text refused. */
    Wzp__Error er = WZP__ERROR__INIT;
    char longtext[WZP_SIG_TEXT_MAX + 2];
    e.body_case = WZP__ENVELOPE__BODY_ERROR;
    e.error = &er;
    er.code = (Wzp__ErrorCode)999;
    er.text = "a\nb\x1b";
    assert_int_equal(redecode(&e, buf, &d), 0);
    assert_int_equal(d.u.error.code, WZP_SIG_ERR_UNSPECIFIED);
    assert_string_equal(d.u.error.text, "a?b?");
    memset(longtext, 'x', sizeof(longtext) - 1);
    longtext[sizeof(longtext) - 1] = '\0';
    er.text = longtext;
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
}

/* The NAT behaviour in CallParams: round trip, encoder refusals, decoder limits. */
static void test_nat_behaviour(void **state)
{
    (void)state;
    wzp_sig_msg m, d;
    wzp_sig_init(&m, WZP_SIG_ACCEPT, 3);
    fill(m.u.accept.call_id, WZP_SIG_CALL_ID_LEN, 1);
    some_params(&m.u.accept.params);
    round_trip(&m, &d); /* absent: all unknown */
    assert_int_equal(d.u.accept.params.nat.mapping, 0);
    assert_int_equal(d.u.accept.params.nat.ports, 0);
    m.u.accept.params.nat = (wzp_sig_nat){.mapping = 3,
                                          .filtering = 3,
                                          .ports = 2,
                                          .port_delta = -2,
                                          .port_lo = 20000,
                                          .port_hi = 20999,
                                          .last_port = 20017};
    round_trip(&m, &d);
    assert_memory_equal(&d.u.accept.params.nat, &m.u.accept.params.nat, sizeof(wzp_sig_nat));

    /* A CandidatesUpdate carries it too (measured after the Offer/Accept). */
    wzp_sig_msg u;
    wzp_sig_init(&u, WZP_SIG_CANDIDATES_UPDATE, 4);
    fill(u.u.update.call_id, WZP_SIG_CALL_ID_LEN, 2);
    u.u.update.complete = true;
    u.u.update.generation = 2;
    u.u.update.nat = m.u.accept.params.nat;
    round_trip(&u, &d);
    assert_memory_equal(&d.u.update.nat, &u.u.update.nat, sizeof(wzp_sig_nat));

    uint8_t buf[WZP_SIG_MAX_SIZE * 2];
    u.u.update.nat.port_delta = -WZP_SIG_NAT_DELTA_MAX - 1;
    assert_int_equal(wzp_sig_encode(&u, buf, sizeof(buf)), WZP_ERR_INVALID);
    m.u.accept.params.nat.port_lo = 30000; /* lo > hi */
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID);
    m.u.accept.params.nat.port_lo = 20000;
    m.u.accept.params.nat.port_delta = WZP_SIG_NAT_DELTA_MAX + 1;
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID);
    m.u.accept.params.nat.port_delta = 1;
    m.u.accept.params.nat.ports = WZP_SIG_NAT_PORTS_MAX + 1;
    assert_int_equal(wzp_sig_encode(&m, buf, sizeof(buf)), WZP_ERR_INVALID);

    Wzp__Envelope e = WZP__ENVELOPE__INIT;
    Wzp__Accept acc = WZP__ACCEPT__INIT;
    Wzp__CallParams cpar = WZP__CALL_PARAMS__INIT;
    Wzp__NatBehaviour nb = WZP__NAT_BEHAVIOUR__INIT;
    uint8_t id[WZP_SIG_CALL_ID_LEN] = {1};
    e.version = WZP_SIG_VERSION;
    e.body_case = WZP__ENVELOPE__BODY_ACCEPT;
    e.accept = &acc;
    acc.call_id = (ProtobufCBinaryData){sizeof(id), id};
    acc.params = &cpar;
    cpar.nat = &nb;
    nb.mapping = (Wzp__NatMapping)9; /* a newer peer's values: unknown */
    nb.ports = (Wzp__PortAllocation)-3;
    nb.filtering = WZP__NAT_FILTERING__NAT_FILTERING_ADF;
    nb.port_lo = 1024;
    nb.port_hi = 65535;
    assert_int_equal(redecode(&e, buf, &d), 0);
    assert_int_equal(d.u.accept.params.nat.mapping, 0);
    assert_int_equal(d.u.accept.params.nat.ports, 0);
    assert_int_equal(d.u.accept.params.nat.filtering, 2);
    assert_int_equal(d.u.accept.params.nat.port_hi, 65535);
    nb.port_hi = 65536;
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    nb.port_hi = 1000; /* under lo */
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    nb.port_hi = 2000;
    nb.last_port = 70000;
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    nb.last_port = 0;
    nb.port_delta = -65;
    assert_int_equal(redecode(&e, buf, &d), WZP_ERR_MALFORMED);
    nb.port_delta = -64;
    assert_int_equal(redecode(&e, buf, &d), 0);
    assert_int_equal(d.u.accept.params.nat.port_delta, -64);
}

static void test_alias_syntax(void **state)
{
    (void)state;
    assert_true(wzp_sig_alias_valid("a"));
    assert_true(wzp_sig_alias_valid("0day.user_name-x"));
    assert_false(wzp_sig_alias_valid(""));
    assert_false(wzp_sig_alias_valid(".a"));
    assert_false(wzp_sig_alias_valid("a b"));
    assert_false(wzp_sig_alias_valid("A"));
    assert_false(wzp_sig_alias_valid("\xc3\xa9"));
    assert_false(wzp_sig_alias_valid("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")); /* 33 */
}

static void test_names_and_errors(void **state)
{
    (void)state;
    assert_string_equal(wzp_sig_type_name(WZP_SIG_CALL_SETUP), "call_setup");
    assert_string_equal(wzp_sig_end_reason_name(WZP_SIG_END_UNKNOWN_PEER), "unknown_peer");
    assert_int_equal(wzp_sig_end_reason_error(WZP_SIG_END_BUSY), WZP_ERR_BUSY);
    assert_int_equal(wzp_sig_end_reason_error(WZP_SIG_END_OFFLINE), WZP_ERR_OFFLINE);
    assert_int_equal(wzp_sig_end_reason_error(WZP_SIG_END_EXPIRED), WZP_ERR_EXPIRED);
}

WZP_TEST_MAIN(NULL, NULL, test_round_trip_all_types, test_auth_bounds, test_encode_refuses_invalid,
              test_decode_rejects_malformed, test_nat_behaviour, test_alias_syntax,
              test_names_and_errors)
