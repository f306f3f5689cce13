/*
 * Signaling codec: wzp_sig_msg <-> protobuf-c Envelope. One validator
 * (check_msg) runs on every decoded message and on every message before it is
 * encoded, so what we send is exactly what a peer's decoder accepts.
 */
#include "wire/signal.h"

#include <stdio.h>
#include <string.h>

#include <wzp/wzp.h>

#include "wzp_signal.pb-c.h"

void wzp_sig_init(wzp_sig_msg *msg, wzp_sig_type type, uint64_t request_id)
{
    memset(msg, 0, sizeof(*msg));
    msg->type = type;
    msg->request_id = request_id;
}

bool wzp_sig_alias_valid(const char *alias)
{
    size_t n = strnlen(alias, WZP_SIG_ALIAS_MAX + 1);
    if (n == 0 || n > WZP_SIG_ALIAS_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = alias[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
            return false;
    }
    return true;
}

/* ---- validation of the C form ------------------------------------------- */

static bool addr_ok(const wzp_addr *a)
{
    int fam = wzp_addr_family(a);
    return (fam == AF_INET || fam == AF_INET6) && wzp_addr_port(a) != 0;
}

static bool opt_alias_ok(const char *alias)
{
    return alias[0] == '\0' || wzp_sig_alias_valid(alias);
}

static bool nat_ok(const wzp_sig_nat *n)
{
    return n->mapping <= WZP_SIG_NAT_MAPPING_MAX && n->filtering <= WZP_SIG_NAT_FILTERING_MAX &&
           n->ports <= WZP_SIG_NAT_PORTS_MAX && n->port_lo <= n->port_hi &&
           n->port_delta >= -WZP_SIG_NAT_DELTA_MAX && n->port_delta <= WZP_SIG_NAT_DELTA_MAX;
}

static bool params_ok(const wzp_sig_params *p)
{
    return p->n_codecs <= WZP_SIG_MAX_CODECS && nat_ok(&p->nat) &&
           (p->probe_key_len == 0 || (p->probe_key_len >= WZP_SIG_PROBE_KEY_MIN &&
                                      p->probe_key_len <= WZP_SIG_PROBE_KEY_MAX));
}

static bool cands_ok(const wzp_sig_candidates *c)
{
    if (c->n > WZP_SIG_MAX_CANDIDATES)
        return false;
    for (size_t i = 0; i < c->n; i++) {
        if (c->c[i].type < WZP_SIG_CAND_HOST || c->c[i].type > WZP_SIG_CAND_MAPPED ||
            !addr_ok(&c->c[i].addr))
            return false;
    }
    return true;
}

static bool end_reason_ok(wzp_sig_end_reason r)
{
    return r >= WZP_SIG_END_HANGUP && r <= WZP_SIG_END_ERROR;
}

static bool check_msg(const wzp_sig_msg *m)
{
    switch (m->type) {
    case WZP_SIG_REGISTER:
        return opt_alias_ok(m->u.reg.alias);
    case WZP_SIG_REGISTERED:
        return addr_ok(&m->u.registered.reflexive) && opt_alias_ok(m->u.registered.alias);
    case WZP_SIG_REFLEXIVE_ADDRESS:
        return addr_ok(&m->u.reflexive.reflexive);
    case WZP_SIG_OFFER:
        return (!m->u.offer.by_alias || wzp_sig_alias_valid(m->u.offer.callee_alias)) &&
               (!m->u.offer.by_alias || !m->u.offer.alias_hint[0]) &&
               opt_alias_ok(m->u.offer.alias_hint) && params_ok(&m->u.offer.params) &&
               cands_ok(&m->u.offer.cands);
    case WZP_SIG_INCOMING_CALL:
        return opt_alias_ok(m->u.incoming.caller_alias) &&
               (m->u.incoming.relay_addr.len == 0 || addr_ok(&m->u.incoming.relay_addr));
    case WZP_SIG_RINGING:
        return m->u.ringing.relay_addr.len == 0 || addr_ok(&m->u.ringing.relay_addr);
    case WZP_SIG_ACCEPT:
        return params_ok(&m->u.accept.params) && cands_ok(&m->u.accept.cands);
    case WZP_SIG_HANGUP:
        return (m->u.end.reason == WZP_SIG_END_HANGUP || m->u.end.reason == WZP_SIG_END_ERROR) &&
               (unsigned)m->u.end.path <= WZP_SIG_PATH_DIRECT;
    case WZP_SIG_CALL_ENDED:
        return end_reason_ok(m->u.end.reason);
    case WZP_SIG_CALL_SETUP:
        return opt_alias_ok(m->u.setup.peer_alias) && params_ok(&m->u.setup.peer_params) &&
               cands_ok(&m->u.setup.peer_cands) &&
               (m->u.setup.role == WZP_SIG_ROLE_CALLER || m->u.setup.role == WZP_SIG_ROLE_CALLEE) &&
               (m->u.setup.relay_addr.len == 0 || addr_ok(&m->u.setup.relay_addr));
    case WZP_SIG_CANDIDATES_UPDATE:
        /* A complete set needs a generation to be ordered by; an add-only one has none. */
        return cands_ok(&m->u.update.cands) && nat_ok(&m->u.update.nat) &&
               (m->u.update.complete ? m->u.update.generation != 0 : m->u.update.generation == 0);
    case WZP_SIG_REATTACH:
        return m->u.reattach.role == WZP_SIG_ROLE_CALLER ||
               m->u.reattach.role == WZP_SIG_ROLE_CALLEE;
    case WZP_SIG_REATTACHED:
        return m->u.reattach.relay_channel != 0 &&
               (m->u.reattach.relay_addr.len == 0 || addr_ok(&m->u.reattach.relay_addr));
    case WZP_SIG_ERROR:
        return strnlen(m->u.error.text, WZP_SIG_TEXT_MAX + 1) <= WZP_SIG_TEXT_MAX;
    case WZP_SIG_AUTH:
        return m->u.auth.key_len >= 1 && m->u.auth.key_len <= WZP_SIG_AUTH_KEY_MAX &&
               m->u.auth.sig_len >= 1 && m->u.auth.sig_len <= WZP_SIG_AUTH_SIG_MAX;
    case WZP_SIG_REJECT:
    case WZP_SIG_BUSY:
    case WZP_SIG_CANCEL:
    case WZP_SIG_PING:
    case WZP_SIG_PONG:
    case WZP_SIG_REHOME:
        return true;
    case WZP_SIG_PARK:
        return m->u.park.keepalive_ms >= 1 && m->u.park.keepalive_ms <= WZP_PARK_KEEPALIVE_MAX_MS;
    case WZP_SIG_NONE:
        break;
    }
    return false;
}

/* ---- encoding ------------------------------------------------------------ */

/* Backing storage for one envelope's sub-messages, so encoding never allocates. */
typedef struct enc_cands {
    Wzp__Candidate c[WZP_SIG_MAX_CANDIDATES];
    Wzp__Address a[WZP_SIG_MAX_CANDIDATES];
    uint8_t ip[WZP_SIG_MAX_CANDIDATES][16];
    Wzp__Candidate *p[WZP_SIG_MAX_CANDIDATES];
} enc_cands;

typedef struct enc_scratch {
    Wzp__Address addr, addr2;
    uint8_t ip[16], ip2[16];
    Wzp__CallParams params;
    Wzp__NatBehaviour nat;
    uint32_t codecs[WZP_SIG_MAX_CODECS];
    uint8_t probe_key[WZP_SIG_PROBE_KEY_MAX];
    uint8_t fp[WZP_SIG_FP_LEN];
    uint8_t call_id[WZP_SIG_CALL_ID_LEN];
    uint8_t park_id[WZP_PARK_ID_LEN];
    uint8_t park_key[WZP_PARK_KEY_LEN];
    wzp_sig_alias alias;
    char text[WZP_SIG_TEXT_MAX + 1];
    enc_cands cands;
    union {
        Wzp__Register reg;
        Wzp__Registered registered;
        Wzp__ReflexiveAddress reflexive;
        Wzp__Offer offer;
        Wzp__IncomingCall incoming;
        Wzp__Ringing ringing;
        Wzp__Accept accept;
        Wzp__Reject reject;
        Wzp__Busy busy;
        Wzp__Cancel cancel;
        Wzp__Hangup hangup;
        Wzp__CallSetup setup;
        Wzp__CallEnded ended;
        Wzp__Error error;
        Wzp__Ping ping;
        Wzp__Reattach reattach;
        Wzp__Reattached reattached;
        Wzp__Rehome rehome;
        Wzp__Park park;
        Wzp__Auth auth;
        Wzp__Pong pong;
        Wzp__CandidatesUpdate update;
    } b;
} enc_scratch;

static void enc_addr(Wzp__Address *pa, uint8_t ipbuf[16], const wzp_addr *a)
{
    size_t iplen = 0;
    const uint8_t *ip = wzp_addr_ip(a, &iplen);
    wzp__address__init(pa);
    memcpy(ipbuf, ip, iplen);
    pa->ip.data = ipbuf;
    pa->ip.len = iplen;
    pa->port = wzp_addr_port(a);
}

static ProtobufCBinaryData enc_bytes(uint8_t *store, const uint8_t *src, size_t n)
{
    ProtobufCBinaryData b;
    memcpy(store, src, n);
    b.data = store;
    b.len = n;
    return b;
}

/* NULL (absent) when all unknown. */
static Wzp__NatBehaviour *enc_nat(enc_scratch *s, const wzp_sig_nat *n)
{
    static const wzp_sig_nat unknown;
    if (memcmp(n, &unknown, sizeof(unknown)) == 0)
        return NULL;
    wzp__nat_behaviour__init(&s->nat);
    s->nat.mapping = (Wzp__NatMapping)n->mapping;
    s->nat.filtering = (Wzp__NatFiltering)n->filtering;
    s->nat.ports = (Wzp__PortAllocation)n->ports;
    s->nat.port_lo = n->port_lo;
    s->nat.port_hi = n->port_hi;
    s->nat.port_delta = n->port_delta;
    s->nat.last_port = n->last_port;
    return &s->nat;
}

static Wzp__CallParams *enc_params(enc_scratch *s, const wzp_sig_params *p)
{
    wzp__call_params__init(&s->params);
    s->params.media_version = p->media_version;
    memcpy(s->codecs, p->codecs, p->n_codecs * sizeof(uint32_t));
    s->params.codecs = s->codecs;
    s->params.n_codecs = p->n_codecs;
    s->params.max_bitrate = p->max_bitrate;
    s->params.probe_key = enc_bytes(s->probe_key, p->probe_key, p->probe_key_len);
    s->params.nat = enc_nat(s, &p->nat);
    return &s->params;
}

static Wzp__Candidate **enc_cand_list(enc_cands *e, const wzp_sig_candidates *c)
{
    for (size_t i = 0; i < c->n; i++) {
        wzp__candidate__init(&e->c[i]);
        e->c[i].type = (Wzp__CandidateType)c->c[i].type;
        e->c[i].priority = c->c[i].priority;
        enc_addr(&e->a[i], e->ip[i], &c->c[i].addr);
        e->c[i].addr = &e->a[i];
        e->p[i] = &e->c[i];
    }
    return e->p;
}

/* protobuf-c wants char * for strings; keep a private copy so the input stays const. */
static char *enc_str(char *store, size_t cap, const char *src)
{
    snprintf(store, cap, "%s", src);
    return store;
}

/* A message's optional forwarding-plane address (len 0: absent). */
static Wzp__Address *enc_relay_addr(enc_scratch *s, const wzp_addr *a)
{
    if (!a->len)
        return NULL;
    enc_addr(&s->addr2, s->ip2, a);
    return &s->addr2;
}

static ProtobufCBinaryData enc_call_id(enc_scratch *s, const uint8_t *id)
{
    return enc_bytes(s->call_id, id, WZP_SIG_CALL_ID_LEN);
}

int wzp_sig_encode(const wzp_sig_msg *m, uint8_t *out, size_t cap)
{
    enc_scratch s;
    Wzp__Envelope env;

    if (!check_msg(m))
        return WZP_ERR_INVALID;
    wzp__envelope__init(&env);
    env.version = WZP_SIG_VERSION;
    env.request_id = m->request_id;

    switch (m->type) {
    case WZP_SIG_REGISTER:
        wzp__register__init(&s.b.reg);
        s.b.reg.alias = enc_str(s.alias, sizeof(s.alias), m->u.reg.alias);
        env.body_case = WZP__ENVELOPE__BODY_REGISTER;
        env.register_ = &s.b.reg;
        break;
    case WZP_SIG_REGISTERED:
        wzp__registered__init(&s.b.registered);
        s.b.registered.fingerprint = enc_bytes(s.fp, m->u.registered.fingerprint, WZP_SIG_FP_LEN);
        enc_addr(&s.addr, s.ip, &m->u.registered.reflexive);
        s.b.registered.reflexive = &s.addr;
        s.b.registered.alias = enc_str(s.alias, sizeof(s.alias), m->u.registered.alias);
        env.body_case = WZP__ENVELOPE__BODY_REGISTERED;
        env.registered = &s.b.registered;
        break;
    case WZP_SIG_REFLEXIVE_ADDRESS:
        wzp__reflexive_address__init(&s.b.reflexive);
        enc_addr(&s.addr, s.ip, &m->u.reflexive.reflexive);
        s.b.reflexive.reflexive = &s.addr;
        env.body_case = WZP__ENVELOPE__BODY_REFLEXIVE_ADDRESS;
        env.reflexive_address = &s.b.reflexive;
        break;
    case WZP_SIG_OFFER:
        wzp__offer__init(&s.b.offer);
        if (m->u.offer.by_alias) {
            s.b.offer.callee_case = WZP__OFFER__CALLEE_CALLEE_ALIAS;
            s.b.offer.callee_alias = enc_str(s.alias, sizeof(s.alias), m->u.offer.callee_alias);
        } else {
            s.b.offer.callee_case = WZP__OFFER__CALLEE_CALLEE_FINGERPRINT;
            s.b.offer.callee_fingerprint = enc_bytes(s.fp, m->u.offer.callee_fp, WZP_SIG_FP_LEN);
            s.b.offer.alias_hint = enc_str(s.alias, sizeof(s.alias), m->u.offer.alias_hint);
        }
        s.b.offer.params = enc_params(&s, &m->u.offer.params);
        s.b.offer.candidates = enc_cand_list(&s.cands, &m->u.offer.cands);
        s.b.offer.n_candidates = m->u.offer.cands.n;
        env.body_case = WZP__ENVELOPE__BODY_OFFER;
        env.offer = &s.b.offer;
        break;
    case WZP_SIG_INCOMING_CALL:
        wzp__incoming_call__init(&s.b.incoming);
        s.b.incoming.call_id = enc_call_id(&s, m->u.incoming.call_id);
        s.b.incoming.caller_fingerprint = enc_bytes(s.fp, m->u.incoming.caller_fp, WZP_SIG_FP_LEN);
        s.b.incoming.caller_alias = enc_str(s.alias, sizeof(s.alias), m->u.incoming.caller_alias);
        s.b.incoming.relay_channel = m->u.incoming.relay_channel;
        s.b.incoming.relay_address = enc_relay_addr(&s, &m->u.incoming.relay_addr);
        env.body_case = WZP__ENVELOPE__BODY_INCOMING_CALL;
        env.incoming_call = &s.b.incoming;
        break;
    case WZP_SIG_RINGING:
        wzp__ringing__init(&s.b.ringing);
        s.b.ringing.call_id = enc_call_id(&s, m->u.ringing.call_id);
        s.b.ringing.relay_channel = m->u.ringing.relay_channel;
        s.b.ringing.relay_address = enc_relay_addr(&s, &m->u.ringing.relay_addr);
        if (m->u.ringing.have_callee_fp)
            s.b.ringing.callee_fingerprint =
                enc_bytes(s.fp, m->u.ringing.callee_fp, WZP_SIG_FP_LEN);
        env.body_case = WZP__ENVELOPE__BODY_RINGING;
        env.ringing = &s.b.ringing;
        break;
    case WZP_SIG_ACCEPT:
        wzp__accept__init(&s.b.accept);
        s.b.accept.call_id = enc_call_id(&s, m->u.accept.call_id);
        s.b.accept.params = enc_params(&s, &m->u.accept.params);
        s.b.accept.candidates = enc_cand_list(&s.cands, &m->u.accept.cands);
        s.b.accept.n_candidates = m->u.accept.cands.n;
        env.body_case = WZP__ENVELOPE__BODY_ACCEPT;
        env.accept = &s.b.accept;
        break;
    case WZP_SIG_REJECT:
        wzp__reject__init(&s.b.reject);
        s.b.reject.call_id = enc_call_id(&s, m->u.call.call_id);
        env.body_case = WZP__ENVELOPE__BODY_REJECT;
        env.reject = &s.b.reject;
        break;
    case WZP_SIG_BUSY:
        wzp__busy__init(&s.b.busy);
        s.b.busy.call_id = enc_call_id(&s, m->u.call.call_id);
        env.body_case = WZP__ENVELOPE__BODY_BUSY;
        env.busy = &s.b.busy;
        break;
    case WZP_SIG_CANCEL:
        wzp__cancel__init(&s.b.cancel);
        s.b.cancel.call_id = enc_call_id(&s, m->u.call.call_id);
        env.body_case = WZP__ENVELOPE__BODY_CANCEL;
        env.cancel = &s.b.cancel;
        break;
    case WZP_SIG_HANGUP:
        wzp__hangup__init(&s.b.hangup);
        s.b.hangup.call_id = enc_call_id(&s, m->u.end.call_id);
        s.b.hangup.reason = (Wzp__EndReason)m->u.end.reason;
        s.b.hangup.path = (Wzp__CallPath)m->u.end.path;
        env.body_case = WZP__ENVELOPE__BODY_HANGUP;
        env.hangup = &s.b.hangup;
        break;
    case WZP_SIG_CALL_SETUP:
        wzp__call_setup__init(&s.b.setup);
        s.b.setup.call_id = enc_call_id(&s, m->u.setup.call_id);
        s.b.setup.peer_fingerprint = enc_bytes(s.fp, m->u.setup.peer_fp, WZP_SIG_FP_LEN);
        s.b.setup.peer_alias = enc_str(s.alias, sizeof(s.alias), m->u.setup.peer_alias);
        s.b.setup.peer_params = enc_params(&s, &m->u.setup.peer_params);
        s.b.setup.peer_candidates = enc_cand_list(&s.cands, &m->u.setup.peer_cands);
        s.b.setup.n_peer_candidates = m->u.setup.peer_cands.n;
        s.b.setup.role = (Wzp__Role)m->u.setup.role;
        s.b.setup.relay_channel = m->u.setup.relay_channel;
        s.b.setup.relay_address = enc_relay_addr(&s, &m->u.setup.relay_addr);
        env.body_case = WZP__ENVELOPE__BODY_CALL_SETUP;
        env.call_setup = &s.b.setup;
        break;
    case WZP_SIG_CALL_ENDED:
        wzp__call_ended__init(&s.b.ended);
        s.b.ended.call_id = enc_call_id(&s, m->u.end.call_id);
        s.b.ended.reason = (Wzp__EndReason)m->u.end.reason;
        if (m->u.end.have_holder)
            s.b.ended.alias_holder = enc_bytes(s.fp, m->u.end.holder_fp, WZP_SIG_FP_LEN);
        env.body_case = WZP__ENVELOPE__BODY_CALL_ENDED;
        env.call_ended = &s.b.ended;
        break;
    case WZP_SIG_ERROR:
        wzp__error__init(&s.b.error);
        s.b.error.code = (Wzp__ErrorCode)m->u.error.code;
        s.b.error.text = enc_str(s.text, sizeof(s.text), m->u.error.text);
        env.body_case = WZP__ENVELOPE__BODY_ERROR;
        env.error = &s.b.error;
        break;
    case WZP_SIG_PING:
        wzp__ping__init(&s.b.ping);
        env.body_case = WZP__ENVELOPE__BODY_PING;
        env.ping = &s.b.ping;
        break;
    case WZP_SIG_PONG:
        wzp__pong__init(&s.b.pong);
        env.body_case = WZP__ENVELOPE__BODY_PONG;
        env.pong = &s.b.pong;
        break;
    case WZP_SIG_CANDIDATES_UPDATE:
        wzp__candidates_update__init(&s.b.update);
        s.b.update.call_id = enc_call_id(&s, m->u.update.call_id);
        s.b.update.candidates = enc_cand_list(&s.cands, &m->u.update.cands);
        s.b.update.n_candidates = m->u.update.cands.n;
        s.b.update.complete = m->u.update.complete;
        s.b.update.generation = m->u.update.generation;
        s.b.update.nat = enc_nat(&s, &m->u.update.nat);
        env.body_case = WZP__ENVELOPE__BODY_CANDIDATES_UPDATE;
        env.candidates_update = &s.b.update;
        break;
    case WZP_SIG_REATTACH:
        wzp__reattach__init(&s.b.reattach);
        s.b.reattach.call_id = enc_call_id(&s, m->u.reattach.call_id);
        s.b.reattach.role = (Wzp__Role)m->u.reattach.role;
        env.body_case = WZP__ENVELOPE__BODY_REATTACH;
        env.reattach = &s.b.reattach;
        break;
    case WZP_SIG_REATTACHED:
        wzp__reattached__init(&s.b.reattached);
        s.b.reattached.call_id = enc_call_id(&s, m->u.reattach.call_id);
        s.b.reattached.relay_channel = m->u.reattach.relay_channel;
        s.b.reattached.relay_address = enc_relay_addr(&s, &m->u.reattach.relay_addr);
        env.body_case = WZP__ENVELOPE__BODY_REATTACHED;
        env.reattached = &s.b.reattached;
        break;
    case WZP_SIG_REHOME:
        wzp__rehome__init(&s.b.rehome);
        env.body_case = WZP__ENVELOPE__BODY_REHOME;
        env.rehome = &s.b.rehome;
        break;
    case WZP_SIG_PARK:
        wzp__park__init(&s.b.park);
        s.b.park.park_id = enc_bytes(s.park_id, m->u.park.park_id, WZP_PARK_ID_LEN);
        s.b.park.key = enc_bytes(s.park_key, m->u.park.key, WZP_PARK_KEY_LEN);
        s.b.park.keepalive_ms = m->u.park.keepalive_ms;
        env.body_case = WZP__ENVELOPE__BODY_PARK;
        env.park = &s.b.park;
        break;
    case WZP_SIG_AUTH:
        /* Borrowed: the envelope is packed before m goes away. */
        wzp__auth__init(&s.b.auth);
        s.b.auth.public_key.data = (uint8_t *)m->u.auth.key;
        s.b.auth.public_key.len = m->u.auth.key_len;
        s.b.auth.signature.data = (uint8_t *)m->u.auth.sig;
        s.b.auth.signature.len = m->u.auth.sig_len;
        env.body_case = WZP__ENVELOPE__BODY_AUTH;
        env.auth = &s.b.auth;
        break;
    case WZP_SIG_NONE:
        return WZP_ERR_INVALID;
    }

    size_t need = wzp__envelope__get_packed_size(&env);
    if (need > WZP_SIG_MAX_SIZE || need > cap)
        return WZP_ERR_TOO_BIG;
    return (int)wzp__envelope__pack(&env, out);
}

/* ---- decoding ------------------------------------------------------------ */

static bool dec_fixed(uint8_t *dst, const ProtobufCBinaryData *b, size_t n)
{
    if (b->len != n)
        return false;
    memcpy(dst, b->data, n);
    return true;
}

static bool dec_addr(wzp_addr *a, const Wzp__Address *pa)
{
    if (!pa || pa->port == 0 || pa->port > 65535)
        return false;
    if (pa->ip.len == 4)
        return wzp_addr_from_ip(a, AF_INET, pa->ip.data, (uint16_t)pa->port) == 0;
    if (pa->ip.len == 16)
        return wzp_addr_from_ip(a, AF_INET6, pa->ip.data, (uint16_t)pa->port) == 0;
    return false;
}

/* An optional alias: "" or a valid one, copied into dst. */
static bool dec_alias(char *dst, const char *src)
{
    if (!src || src[0] == '\0') {
        dst[0] = '\0';
        return true;
    }
    if (!wzp_sig_alias_valid(src))
        return false;
    snprintf(dst, WZP_SIG_ALIAS_MAX + 1, "%s", src);
    return true;
}

/* Unknown enum values (a newer peer's) read as unknown; out-of-range numbers are malformed. */
static bool dec_nat(wzp_sig_nat *n, const Wzp__NatBehaviour *nb)
{
    if (!nb)
        return true;
    if (nb->port_lo > 65535 || nb->port_hi > 65535 || nb->port_lo > nb->port_hi ||
        nb->last_port > 65535 || nb->port_delta < -WZP_SIG_NAT_DELTA_MAX ||
        nb->port_delta > WZP_SIG_NAT_DELTA_MAX)
        return false;
    int mapping = (int)nb->mapping, filtering = (int)nb->filtering, ports = (int)nb->ports;
    n->mapping = mapping >= 0 && mapping <= WZP_SIG_NAT_MAPPING_MAX ? (uint8_t)mapping : 0;
    n->filtering =
        filtering >= 0 && filtering <= WZP_SIG_NAT_FILTERING_MAX ? (uint8_t)filtering : 0;
    n->ports = ports >= 0 && ports <= WZP_SIG_NAT_PORTS_MAX ? (uint8_t)ports : 0;
    n->port_lo = (uint16_t)nb->port_lo;
    n->port_hi = (uint16_t)nb->port_hi;
    n->port_delta = (int8_t)nb->port_delta;
    n->last_port = (uint16_t)nb->last_port;
    return true;
}

static bool dec_params(wzp_sig_params *p, const Wzp__CallParams *pp)
{
    memset(p, 0, sizeof(*p));
    if (!pp)
        return true; /* absent: all defaults */
    if (pp->n_codecs > WZP_SIG_MAX_CODECS || pp->probe_key.len > WZP_SIG_PROBE_KEY_MAX ||
        (pp->probe_key.len != 0 && pp->probe_key.len < WZP_SIG_PROBE_KEY_MIN))
        return false;
    p->media_version = pp->media_version;
    if (pp->n_codecs) /* codecs is NULL when there are none */
        memcpy(p->codecs, pp->codecs, pp->n_codecs * sizeof(uint32_t));
    p->n_codecs = pp->n_codecs;
    p->max_bitrate = pp->max_bitrate;
    if (pp->probe_key.len)
        memcpy(p->probe_key, pp->probe_key.data, pp->probe_key.len);
    p->probe_key_len = pp->probe_key.len;
    return dec_nat(&p->nat, pp->nat);
}

static bool dec_cands(wzp_sig_candidates *c, Wzp__Candidate *const *pc, size_t n)
{
    c->n = 0;
    if (n > WZP_SIG_MAX_CANDIDATES)
        return false;
    for (size_t i = 0; i < n; i++) {
        const Wzp__Candidate *x = pc[i];
        wzp_sig_candidate *d = &c->c[c->n];
        if (!dec_addr(&d->addr, x->addr))
            return false;
        if (x->type < WZP__CANDIDATE_TYPE__CANDIDATE_HOST ||
            x->type > WZP__CANDIDATE_TYPE__CANDIDATE_MAPPED)
            continue; /* a newer peer's candidate type: skip, keep the rest */
        d->type = (wzp_sig_cand_type)x->type;
        d->priority = x->priority;
        c->n++;
    }
    return true;
}

static wzp_sig_end_reason dec_end_reason(int r)
{
    return end_reason_ok((wzp_sig_end_reason)r) ? (wzp_sig_end_reason)r : WZP_SIG_END_ERROR;
}

static bool dec_text(char *dst, const char *src)
{
    size_t n = src ? strnlen(src, WZP_SIG_TEXT_MAX + 1) : 0;
    if (n > WZP_SIG_TEXT_MAX)
        return false;
    /* Text ends up in logs: keep printable ASCII only. */
    for (size_t i = 0; i < n; i++)
        dst[i] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
    dst[n] = '\0';
    return true;
}

static bool dec_body(wzp_sig_msg *m, const Wzp__Envelope *e)
{
    switch (e->body_case) {
    case WZP__ENVELOPE__BODY_REGISTER:
        m->type = WZP_SIG_REGISTER;
        return dec_alias(m->u.reg.alias, e->register_->alias);
    case WZP__ENVELOPE__BODY_REGISTERED:
        m->type = WZP_SIG_REGISTERED;
        return dec_fixed(m->u.registered.fingerprint, &e->registered->fingerprint,
                         WZP_SIG_FP_LEN) &&
               dec_addr(&m->u.registered.reflexive, e->registered->reflexive) &&
               dec_alias(m->u.registered.alias, e->registered->alias);
    case WZP__ENVELOPE__BODY_REFLEXIVE_ADDRESS:
        m->type = WZP_SIG_REFLEXIVE_ADDRESS;
        return dec_addr(&m->u.reflexive.reflexive, e->reflexive_address->reflexive);
    case WZP__ENVELOPE__BODY_OFFER: {
        const Wzp__Offer *o = e->offer;
        m->type = WZP_SIG_OFFER;
        if (o->callee_case == WZP__OFFER__CALLEE_CALLEE_FINGERPRINT) {
            if (!dec_fixed(m->u.offer.callee_fp, &o->callee_fingerprint, WZP_SIG_FP_LEN) ||
                !dec_alias(m->u.offer.alias_hint, o->alias_hint))
                return false;
        } else if (o->callee_case == WZP__OFFER__CALLEE_CALLEE_ALIAS) {
            m->u.offer.by_alias = true;
            if (!o->callee_alias || !wzp_sig_alias_valid(o->callee_alias) ||
                !dec_alias(m->u.offer.callee_alias, o->callee_alias))
                return false;
        } else {
            return false; /* no callee */
        }
        return dec_params(&m->u.offer.params, o->params) &&
               dec_cands(&m->u.offer.cands, o->candidates, o->n_candidates);
    }
    case WZP__ENVELOPE__BODY_INCOMING_CALL:
        m->type = WZP_SIG_INCOMING_CALL;
        m->u.incoming.relay_channel = e->incoming_call->relay_channel;
        if (e->incoming_call->relay_address &&
            !dec_addr(&m->u.incoming.relay_addr, e->incoming_call->relay_address))
            return false;
        return dec_fixed(m->u.incoming.call_id, &e->incoming_call->call_id, WZP_SIG_CALL_ID_LEN) &&
               dec_fixed(m->u.incoming.caller_fp, &e->incoming_call->caller_fingerprint,
                         WZP_SIG_FP_LEN) &&
               dec_alias(m->u.incoming.caller_alias, e->incoming_call->caller_alias);
    case WZP__ENVELOPE__BODY_RINGING: {
        const Wzp__Ringing *r = e->ringing;
        m->type = WZP_SIG_RINGING;
        m->u.ringing.relay_channel = r->relay_channel;
        if (r->relay_address && !dec_addr(&m->u.ringing.relay_addr, r->relay_address))
            return false;
        if (r->callee_fingerprint.len) {
            m->u.ringing.have_callee_fp = true;
            if (!dec_fixed(m->u.ringing.callee_fp, &r->callee_fingerprint, WZP_SIG_FP_LEN))
                return false;
        }
        return dec_fixed(m->u.ringing.call_id, &r->call_id, WZP_SIG_CALL_ID_LEN);
    }
    case WZP__ENVELOPE__BODY_ACCEPT:
        m->type = WZP_SIG_ACCEPT;
        return dec_fixed(m->u.accept.call_id, &e->accept->call_id, WZP_SIG_CALL_ID_LEN) &&
               dec_params(&m->u.accept.params, e->accept->params) &&
               dec_cands(&m->u.accept.cands, e->accept->candidates, e->accept->n_candidates);
    case WZP__ENVELOPE__BODY_REJECT:
        m->type = WZP_SIG_REJECT;
        return dec_fixed(m->u.call.call_id, &e->reject->call_id, WZP_SIG_CALL_ID_LEN);
    case WZP__ENVELOPE__BODY_BUSY:
        m->type = WZP_SIG_BUSY;
        return dec_fixed(m->u.call.call_id, &e->busy->call_id, WZP_SIG_CALL_ID_LEN);
    case WZP__ENVELOPE__BODY_CANCEL:
        m->type = WZP_SIG_CANCEL;
        return dec_fixed(m->u.call.call_id, &e->cancel->call_id, WZP_SIG_CALL_ID_LEN);
    case WZP__ENVELOPE__BODY_HANGUP:
        m->type = WZP_SIG_HANGUP;
        if (e->hangup->reason == WZP__END_REASON__END_UNSPECIFIED)
            m->u.end.reason = WZP_SIG_END_HANGUP;
        else if (e->hangup->reason == WZP__END_REASON__END_HANGUP ||
                 e->hangup->reason == WZP__END_REASON__END_ERROR)
            m->u.end.reason = (wzp_sig_end_reason)e->hangup->reason;
        else
            return false;
        /* A value from a newer client is a report we cannot read: unspecified. */
        if (e->hangup->path == WZP__CALL_PATH__CALL_PATH_RELAYED ||
            e->hangup->path == WZP__CALL_PATH__CALL_PATH_DIRECT)
            m->u.end.path = (wzp_sig_call_path)e->hangup->path;
        return dec_fixed(m->u.end.call_id, &e->hangup->call_id, WZP_SIG_CALL_ID_LEN);
    case WZP__ENVELOPE__BODY_CALL_SETUP: {
        const Wzp__CallSetup *s = e->call_setup;
        m->type = WZP_SIG_CALL_SETUP;
        if (s->role != WZP__ROLE__ROLE_CALLER && s->role != WZP__ROLE__ROLE_CALLEE)
            return false;
        m->u.setup.role = (wzp_sig_role)s->role;
        m->u.setup.relay_channel = s->relay_channel;
        if (s->relay_address && !dec_addr(&m->u.setup.relay_addr, s->relay_address))
            return false;
        return dec_fixed(m->u.setup.call_id, &s->call_id, WZP_SIG_CALL_ID_LEN) &&
               dec_fixed(m->u.setup.peer_fp, &s->peer_fingerprint, WZP_SIG_FP_LEN) &&
               dec_alias(m->u.setup.peer_alias, s->peer_alias) &&
               dec_params(&m->u.setup.peer_params, s->peer_params) &&
               dec_cands(&m->u.setup.peer_cands, s->peer_candidates, s->n_peer_candidates);
    }
    case WZP__ENVELOPE__BODY_CALL_ENDED:
        m->type = WZP_SIG_CALL_ENDED;
        m->u.end.reason = dec_end_reason(e->call_ended->reason);
        if (e->call_ended->alias_holder.len) {
            m->u.end.have_holder = true;
            if (!dec_fixed(m->u.end.holder_fp, &e->call_ended->alias_holder, WZP_SIG_FP_LEN))
                return false;
        }
        return dec_fixed(m->u.end.call_id, &e->call_ended->call_id, WZP_SIG_CALL_ID_LEN);
    case WZP__ENVELOPE__BODY_ERROR: {
        int c = e->error->code;
        m->type = WZP_SIG_ERROR;
        m->u.error.code =
            (c > 0 && c <= WZP_SIG_ERR_FULL) ? (wzp_sig_err)c : WZP_SIG_ERR_UNSPECIFIED;
        return dec_text(m->u.error.text, e->error->text);
    }
    case WZP__ENVELOPE__BODY_PING:
        m->type = WZP_SIG_PING;
        return true;
    case WZP__ENVELOPE__BODY_PONG:
        m->type = WZP_SIG_PONG;
        return true;
    case WZP__ENVELOPE__BODY_CANDIDATES_UPDATE: {
        const Wzp__CandidatesUpdate *u = e->candidates_update;
        m->type = WZP_SIG_CANDIDATES_UPDATE;
        m->u.update.complete = u->complete;
        m->u.update.generation = u->generation;
        return dec_fixed(m->u.update.call_id, &u->call_id, WZP_SIG_CALL_ID_LEN) &&
               dec_cands(&m->u.update.cands, u->candidates, u->n_candidates) &&
               dec_nat(&m->u.update.nat, u->nat);
    }
    case WZP__ENVELOPE__BODY_REATTACH: {
        const Wzp__Reattach *r = e->reattach;
        m->type = WZP_SIG_REATTACH;
        m->u.reattach.role = (wzp_sig_role)r->role;
        return dec_fixed(m->u.reattach.call_id, &r->call_id, WZP_SIG_CALL_ID_LEN);
    }
    case WZP__ENVELOPE__BODY_REATTACHED: {
        const Wzp__Reattached *r = e->reattached;
        m->type = WZP_SIG_REATTACHED;
        m->u.reattach.relay_channel = r->relay_channel;
        if (r->relay_address && !dec_addr(&m->u.reattach.relay_addr, r->relay_address))
            return false;
        return dec_fixed(m->u.reattach.call_id, &r->call_id, WZP_SIG_CALL_ID_LEN);
    }
    case WZP__ENVELOPE__BODY_REHOME:
        m->type = WZP_SIG_REHOME;
        return true;
    case WZP__ENVELOPE__BODY_PARK: {
        const Wzp__Park *p = e->park;
        m->type = WZP_SIG_PARK;
        m->u.park.keepalive_ms = p->keepalive_ms;
        return dec_fixed(m->u.park.park_id, &p->park_id, WZP_PARK_ID_LEN) &&
               dec_fixed(m->u.park.key, &p->key, WZP_PARK_KEY_LEN);
    }
    case WZP__ENVELOPE__BODY_AUTH: {
        const Wzp__Auth *a = e->auth;
        m->type = WZP_SIG_AUTH;
        if (a->public_key.len > WZP_SIG_AUTH_KEY_MAX || a->signature.len > WZP_SIG_AUTH_SIG_MAX)
            return false;
        m->u.auth.key_len = a->public_key.len;
        m->u.auth.sig_len = a->signature.len;
        if (a->public_key.len)
            memcpy(m->u.auth.key, a->public_key.data, a->public_key.len);
        if (a->signature.len)
            memcpy(m->u.auth.sig, a->signature.data, a->signature.len);
        return true;
    }
    default:
        return false; /* no body, or one from a newer protocol */
    }
}

int wzp_sig_decode(const uint8_t *buf, size_t len, wzp_sig_msg *msg)
{
    memset(msg, 0, sizeof(*msg));
    if (len > WZP_SIG_MAX_SIZE)
        return WZP_ERR_TOO_BIG;
    Wzp__Envelope *e = wzp__envelope__unpack(NULL, len, buf);
    if (!e)
        return WZP_ERR_MALFORMED;
    msg->request_id = e->request_id;
    int rc = 0;
    if (e->version == 0)
        rc = WZP_ERR_MALFORMED; /* absent: not a wzp signaling message at all */
    else if (e->version != WZP_SIG_VERSION)
        rc = WZP_ERR_PROTOCOL;
    else if (!dec_body(msg, e) || !check_msg(msg))
        rc = WZP_ERR_MALFORMED;
    wzp__envelope__free_unpacked(e, NULL);
    if (rc) {
        uint64_t rid = msg->request_id;
        memset(msg, 0, sizeof(*msg));
        msg->request_id = rid;
    }
    return rc;
}

/* ---- names --------------------------------------------------------------- */

const char *wzp_sig_type_name(wzp_sig_type t)
{
    static const char *const names[] = {
        "none",       "register",
        "registered", "reflexive_address",
        "offer",      "incoming_call",
        "ringing",    "accept",
        "reject",     "busy",
        "cancel",     "hangup",
        "call_setup", "call_ended",
        "error",      "ping",
        "pong",       "candidates_update",
        "reattach",   "reattached",
        "rehome",     "park",
        "auth",
    };
    return (unsigned)t < sizeof(names) / sizeof(names[0]) ? names[t] : "?";
}

const char *wzp_sig_end_reason_name(wzp_sig_end_reason r)
{
    static const char *const names[] = {
        "?",       "hangup",    "rejected", "busy",         "cancelled",
        "expired", "peer_gone", "offline",  "unknown_peer", "error",
    };
    return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

int wzp_sig_end_reason_error(wzp_sig_end_reason r)
{
    switch (r) {
    case WZP_SIG_END_HANGUP:
        return WZP_ERR_HANGUP;
    case WZP_SIG_END_REJECTED:
        return WZP_ERR_REJECTED;
    case WZP_SIG_END_BUSY:
        return WZP_ERR_BUSY;
    case WZP_SIG_END_CANCELLED:
        return WZP_ERR_CANCELLED;
    case WZP_SIG_END_EXPIRED:
        return WZP_ERR_EXPIRED;
    case WZP_SIG_END_PEER_GONE:
        return WZP_ERR_CLOSED;
    case WZP_SIG_END_OFFLINE:
        return WZP_ERR_OFFLINE;
    case WZP_SIG_END_UNKNOWN_PEER:
        return WZP_ERR_NOT_FOUND;
    case WZP_SIG_END_ERROR:
        break;
    }
    return WZP_ERR_PROTOCOL;
}
