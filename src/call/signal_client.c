/*
 * Client-side signaling state machine (see signal_client.h). Calls live in a
 * small fixed table; a slot is released before the event that reports its
 * end, so event handlers may reuse it at once.
 */
#include "call/signal_client.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <wzp/wzp.h>

#include "common/tunnel_addr.h"
#include "common/log.h"

#define MAX_SLOTS 64

/*
 * A call we hung up while its Offer was unanswered: invisible to the user
 * (ENDED was reported), kept only to Cancel the call once the relay names it.
 */
#define CALL_CANCELLING 100

typedef struct sigc_call {
    bool used;
    uint32_t handle;
    int state; /* wzp_sigc_call_state or CALL_CANCELLING */
    bool has_id;
    uint8_t id[WZP_SIG_CALL_ID_LEN];
    uint64_t rid;    /* pending Offer or Accept, 0 if none */
    wzp_ts deadline; /* for rid */
} sigc_call;

struct wzp_sigc {
    wzp_sigc_config cfg;
    wzp_sigc_reg_state reg;
    uint64_t reg_rid;
    wzp_ts reg_deadline;
    wzp_addr reflexive;
    uint64_t next_rid;
    uint32_t next_handle;
    uint64_t dropped;
    sigc_call calls[MAX_SLOTS];
    wzp_ts now; /* of the entry point running: events report it */
};

void wzp_sigc_config_default(wzp_sigc_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->request_timeout = WZP_SEC(10);
    cfg->max_calls = 4;
}

int wzp_sigc_new(wzp_sigc **out, const wzp_sigc_config *cfg)
{
    if (!out || !cfg || !cfg->cb.send || !cfg->cb.event || cfg->max_calls == 0 ||
        cfg->max_calls > MAX_SLOTS || cfg->request_timeout == 0)
        return WZP_ERR_INVALID;
    wzp_sigc *sc = calloc(1, sizeof(*sc));
    if (!sc)
        return WZP_ERR_NOMEM;
    sc->cfg = *cfg;
    sc->next_rid = 1;
    sc->next_handle = 1;
    *out = sc;
    return 0;
}

void wzp_sigc_free(wzp_sigc *sc)
{
    free(sc);
}

/* ---- helpers --------------------------------------------------------------- */

static int send_msg(wzp_sigc *sc, const wzp_sig_msg *m)
{
    uint8_t buf[WZP_SIG_MAX_SIZE];
    int n = wzp_sig_encode(m, buf, sizeof(buf));
    if (n < 0)
        return n;
    sc->cfg.cb.send(sc->cfg.user, buf, (size_t)n);
    return 0;
}

static uint64_t new_rid(wzp_sigc *sc)
{
    return sc->next_rid++;
}

static void emit(wzp_sigc *sc, wzp_sigc_event_type type, uint32_t call, const uint8_t *call_id,
                 int err, wzp_sig_end_reason reason, const wzp_sig_msg *msg)
{
    wzp_sigc_event ev = {type, call, call_id, err, reason, msg, sc->now};
    sc->cfg.cb.event(sc->cfg.user, &ev);
}

static sigc_call *find_handle(wzp_sigc *sc, uint32_t handle)
{
    for (size_t i = 0; i < sc->cfg.max_calls; i++)
        if (sc->calls[i].used && sc->calls[i].handle == handle && handle != 0 &&
            sc->calls[i].state != CALL_CANCELLING)
            return &sc->calls[i];
    return NULL;
}

static sigc_call *find_id(wzp_sigc *sc, const uint8_t *id)
{
    for (size_t i = 0; i < sc->cfg.max_calls; i++)
        if (sc->calls[i].used && sc->calls[i].has_id &&
            memcmp(sc->calls[i].id, id, WZP_SIG_CALL_ID_LEN) == 0)
            return &sc->calls[i];
    return NULL;
}

static sigc_call *find_rid(wzp_sigc *sc, uint64_t rid)
{
    if (rid == 0)
        return NULL;
    for (size_t i = 0; i < sc->cfg.max_calls; i++)
        if (sc->calls[i].used && sc->calls[i].rid == rid)
            return &sc->calls[i];
    return NULL;
}

static sigc_call *new_slot(wzp_sigc *sc)
{
    for (size_t i = 0; i < sc->cfg.max_calls; i++) {
        if (!sc->calls[i].used) {
            sigc_call *k = &sc->calls[i];
            memset(k, 0, sizeof(*k));
            k->used = true;
            k->handle = sc->next_handle++;
            if (sc->next_handle == 0)
                sc->next_handle = 1;
            return k;
        }
    }
    return NULL;
}

/* Releases the slot, then reports the end (so the handler may reuse it). */
static void end_call(wzp_sigc *sc, sigc_call *k, int err, wzp_sig_end_reason reason,
                     const wzp_sig_msg *msg)
{
    bool tell = k->state != CALL_CANCELLING;
    uint32_t handle = k->handle;
    bool has_id = k->has_id;
    uint8_t id[WZP_SIG_CALL_ID_LEN];
    memcpy(id, k->id, sizeof(id));
    memset(k, 0, sizeof(*k));
    if (tell)
        emit(sc, WZP_SIGC_EV_ENDED, handle, has_id ? id : NULL, err, reason, msg);
}

static int send_call_msg(wzp_sigc *sc, wzp_sig_type type, const uint8_t *id)
{
    wzp_sig_msg m;
    wzp_sig_init(&m, type, new_rid(sc));
    if (type == WZP_SIG_HANGUP) {
        memcpy(m.u.end.call_id, id, WZP_SIG_CALL_ID_LEN);
        m.u.end.reason = WZP_SIG_END_HANGUP;
    } else {
        memcpy(m.u.call.call_id, id, WZP_SIG_CALL_ID_LEN);
    }
    return send_msg(sc, &m);
}

static int relay_error(wzp_sig_err code)
{
    switch (code) {
    case WZP_SIG_ERR_TOO_BIG:
        return WZP_ERR_TOO_BIG;
    case WZP_SIG_ERR_RATE_LIMITED:
        return WZP_ERR_RATE_LIMITED;
    case WZP_SIG_ERR_NOT_REGISTERED:
    case WZP_SIG_ERR_STATE:
        return WZP_ERR_STATE;
    case WZP_SIG_ERR_ALIAS_TAKEN:
        return WZP_ERR_ALIAS_TAKEN;
    case WZP_SIG_ERR_FULL:
        return WZP_ERR_RELAY_FULL;
    case WZP_SIG_ERR_NO_SUCH_CALL:
        return WZP_ERR_NOT_FOUND;
    case WZP_SIG_ERR_LIMIT:
        return WZP_ERR_LIMIT;
    case WZP_SIG_ERR_INVALID:
        return WZP_ERR_INVALID;
    case WZP_SIG_ERR_MALFORMED:
    case WZP_SIG_ERR_VERSION:
    case WZP_SIG_ERR_UNEXPECTED:
        return WZP_ERR_PROTOCOL;
    default:
        return WZP_ERR_INTERNAL;
    }
}

static bool cands_fit(const wzp_sig_candidate *cands, size_t n)
{
    return n <= WZP_SIG_MAX_CANDIDATES && (n == 0 || cands);
}

/* ---- requests -------------------------------------------------------------- */

int wzp_sigc_register(wzp_sigc *sc, const char *alias, wzp_ts now)
{
    sc->now = now;
    wzp_sig_msg m;
    if (alias && alias[0] && !wzp_sig_alias_valid(alias))
        return WZP_ERR_INVALID;
    wzp_sig_init(&m, WZP_SIG_REGISTER, new_rid(sc));
    if (alias)
        memcpy(m.u.reg.alias, alias, strlen(alias) + 1);
    int err = send_msg(sc, &m);
    if (err < 0)
        return err;
    /* A re-register keeps us registered meanwhile; only the answer changes things. */
    if (sc->reg != WZP_SIGC_REGISTERED)
        sc->reg = WZP_SIGC_REGISTERING;
    sc->reg_rid = m.request_id;
    sc->reg_deadline = now + sc->cfg.request_timeout;
    return 0;
}

static int place_call(wzp_sigc *sc, wzp_sig_msg *m, const wzp_sig_params *params,
                      const wzp_sig_candidate *cands, size_t n_cands, uint32_t *call, wzp_ts now)
{
    if (sc->reg != WZP_SIGC_REGISTERED)
        return WZP_ERR_STATE;
    if (!cands_fit(cands, n_cands) || !call)
        return WZP_ERR_INVALID;
    if (params)
        m->u.offer.params = *params;
    if (n_cands)
        memcpy(m->u.offer.cands.c, cands, n_cands * sizeof(*cands));
    m->u.offer.cands.n = n_cands;
    sigc_call *k = new_slot(sc);
    if (!k)
        return WZP_ERR_LIMIT;
    m->request_id = new_rid(sc);
    int err = send_msg(sc, m);
    if (err < 0) {
        memset(k, 0, sizeof(*k));
        return err;
    }
    k->state = WZP_SIGC_CALL_OFFERING;
    k->rid = m->request_id;
    k->deadline = now + sc->cfg.request_timeout;
    *call = k->handle;
    return 0;
}

int wzp_sigc_call_fp(wzp_sigc *sc, const uint8_t fp[WZP_SIG_FP_LEN], const char *alias_hint,
                     const wzp_sig_params *params, const wzp_sig_candidate *cands, size_t n_cands,
                     uint32_t *call, wzp_ts now)
{
    sc->now = now;
    wzp_sig_msg m;
    if (!fp || (alias_hint && alias_hint[0] && !wzp_sig_alias_valid(alias_hint)))
        return WZP_ERR_INVALID;
    wzp_sig_init(&m, WZP_SIG_OFFER, 0);
    memcpy(m.u.offer.callee_fp, fp, WZP_SIG_FP_LEN);
    if (alias_hint)
        snprintf(m.u.offer.alias_hint, sizeof(m.u.offer.alias_hint), "%s", alias_hint);
    return place_call(sc, &m, params, cands, n_cands, call, now);
}

int wzp_sigc_call_alias(wzp_sigc *sc, const char *alias, const wzp_sig_params *params,
                        const wzp_sig_candidate *cands, size_t n_cands, uint32_t *call, wzp_ts now)
{
    sc->now = now;
    wzp_sig_msg m;
    if (!alias || !wzp_sig_alias_valid(alias))
        return WZP_ERR_INVALID;
    wzp_sig_init(&m, WZP_SIG_OFFER, 0);
    m.u.offer.by_alias = true;
    memcpy(m.u.offer.callee_alias, alias, strlen(alias) + 1);
    return place_call(sc, &m, params, cands, n_cands, call, now);
}

int wzp_sigc_accept(wzp_sigc *sc, uint32_t call, const wzp_sig_params *params,
                    const wzp_sig_candidate *cands, size_t n_cands, wzp_ts now)
{
    sc->now = now;
    sigc_call *k = find_handle(sc, call);
    if (!k)
        return WZP_ERR_NOT_FOUND;
    if (k->state != WZP_SIGC_CALL_INCOMING)
        return WZP_ERR_STATE;
    if (!cands_fit(cands, n_cands))
        return WZP_ERR_INVALID;
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_ACCEPT, new_rid(sc));
    memcpy(m.u.accept.call_id, k->id, WZP_SIG_CALL_ID_LEN);
    if (params)
        m.u.accept.params = *params;
    if (n_cands)
        memcpy(m.u.accept.cands.c, cands, n_cands * sizeof(*cands));
    m.u.accept.cands.n = n_cands;
    int err = send_msg(sc, &m);
    if (err < 0)
        return err;
    k->state = WZP_SIGC_CALL_ACCEPTING;
    k->rid = m.request_id;
    k->deadline = now + sc->cfg.request_timeout;
    return 0;
}

static int decline(wzp_sigc *sc, uint32_t call, wzp_sig_type type)
{
    sigc_call *k = find_handle(sc, call);
    if (!k)
        return WZP_ERR_NOT_FOUND;
    if (k->state != WZP_SIGC_CALL_INCOMING)
        return WZP_ERR_STATE;
    send_call_msg(sc, type, k->id);
    memset(k, 0, sizeof(*k));
    return 0;
}

int wzp_sigc_reject(wzp_sigc *sc, uint32_t call, wzp_ts now)
{
    sc->now = now;
    (void)now;
    return decline(sc, call, WZP_SIG_REJECT);
}

int wzp_sigc_busy(wzp_sigc *sc, uint32_t call, wzp_ts now)
{
    sc->now = now;
    (void)now;
    return decline(sc, call, WZP_SIG_BUSY);
}

int wzp_sigc_cancel(wzp_sigc *sc, uint32_t call, wzp_ts now)
{
    sc->now = now;
    sigc_call *k = find_handle(sc, call);
    if (!k)
        return WZP_ERR_NOT_FOUND;
    if (k->state != WZP_SIGC_CALL_OFFERING && k->state != WZP_SIGC_CALL_RINGING)
        return WZP_ERR_STATE;
    return wzp_sigc_hangup(sc, call, false, WZP_SIG_PATH_UNSPECIFIED, now);
}

int wzp_sigc_hangup(wzp_sigc *sc, uint32_t call, bool error, wzp_sig_call_path path, wzp_ts now)
{
    sc->now = now;
    (void)now;
    sigc_call *k = find_handle(sc, call);
    if (!k)
        return WZP_ERR_NOT_FOUND;
    switch (k->state) {
    case WZP_SIGC_CALL_OFFERING:
        /* No call id yet: keep the slot, hidden, until the relay names the call. */
        k->state = CALL_CANCELLING;
        return 0;
    case WZP_SIGC_CALL_RINGING:
        send_call_msg(sc, WZP_SIG_CANCEL, k->id);
        break;
    case WZP_SIGC_CALL_INCOMING:
        send_call_msg(sc, WZP_SIG_REJECT, k->id);
        break;
    default: {
        wzp_sig_msg m;
        wzp_sig_init(&m, WZP_SIG_HANGUP, new_rid(sc));
        memcpy(m.u.end.call_id, k->id, WZP_SIG_CALL_ID_LEN);
        m.u.end.reason = error ? WZP_SIG_END_ERROR : WZP_SIG_END_HANGUP;
        m.u.end.path = path;
        send_msg(sc, &m);
        break;
    }
    }
    memset(k, 0, sizeof(*k));
    return 0;
}

/* A CandidatesUpdate for a set-up call: add-only (generation 0) or the complete set. */
static int send_update(wzp_sigc *sc, uint32_t call, bool complete, uint32_t generation,
                       const wzp_sig_candidate *cands, size_t n_cands, const wzp_sig_nat *nat)
{
    sigc_call *k = find_handle(sc, call);
    if (!k)
        return WZP_ERR_NOT_FOUND;
    if (k->state != WZP_SIGC_CALL_SETUP)
        return WZP_ERR_STATE;
    if (!cands_fit(cands, n_cands) || (complete ? generation == 0 : n_cands == 0))
        return WZP_ERR_INVALID;
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_CANDIDATES_UPDATE, new_rid(sc));
    memcpy(m.u.update.call_id, k->id, WZP_SIG_CALL_ID_LEN);
    if (n_cands)
        memcpy(m.u.update.cands.c, cands, n_cands * sizeof(*cands));
    m.u.update.cands.n = n_cands;
    m.u.update.complete = complete;
    m.u.update.generation = complete ? generation : 0;
    if (nat)
        m.u.update.nat = *nat;
    return send_msg(sc, &m);
}

int wzp_sigc_update_candidates(wzp_sigc *sc, uint32_t call, const wzp_sig_candidate *cands,
                               size_t n_cands, wzp_ts now)
{
    sc->now = now;
    (void)now;
    return send_update(sc, call, false, 0, cands, n_cands, NULL);
}

int wzp_sigc_send_candidate_set(wzp_sigc *sc, uint32_t call, uint32_t generation,
                                const wzp_sig_candidate *cands, size_t n_cands,
                                const wzp_sig_nat *nat, wzp_ts now)
{
    sc->now = now;
    (void)now;
    return send_update(sc, call, true, generation, cands, n_cands, nat);
}

int wzp_sigc_ping(wzp_sigc *sc, wzp_ts now)
{
    sc->now = now;
    (void)now;
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_PING, new_rid(sc));
    return send_msg(sc, &m);
}

int wzp_sigc_reattach(wzp_sigc *sc, const uint8_t call_id[WZP_SIG_CALL_ID_LEN], bool caller,
                      uint32_t *call, wzp_ts now)
{
    sc->now = now;
    if (!call_id || !call)
        return WZP_ERR_INVALID;
    if (sc->reg != WZP_SIGC_REGISTERED)
        return WZP_ERR_STATE;
    if (find_id(sc, call_id))
        return WZP_ERR_STATE;
    sigc_call *k = new_slot(sc);
    if (!k)
        return WZP_ERR_LIMIT;
    wzp_sig_msg m;
    wzp_sig_init(&m, WZP_SIG_REATTACH, new_rid(sc));
    memcpy(m.u.reattach.call_id, call_id, WZP_SIG_CALL_ID_LEN);
    m.u.reattach.role = caller ? WZP_SIG_ROLE_CALLER : WZP_SIG_ROLE_CALLEE;
    /* SETUP at once: the call was set up, only its relay changes (hang-up, candidates). */
    k->state = WZP_SIGC_CALL_SETUP;
    k->has_id = true;
    memcpy(k->id, call_id, WZP_SIG_CALL_ID_LEN);
    k->rid = m.request_id;
    k->deadline = now + sc->cfg.request_timeout;
    *call = k->handle;
    return send_msg(sc, &m);
}

/* ---- input ----------------------------------------------------------------- */

static int on_registered(wzp_sigc *sc, const wzp_sig_msg *m)
{
    if (sc->reg == WZP_SIGC_UNREGISTERED || m->request_id != sc->reg_rid)
        return WZP_ERR_STATE; /* stale or unsolicited */
    sc->reg = WZP_SIGC_REGISTERED;
    sc->reg_rid = 0;
    sc->reg_deadline = WZP_TS_NEVER;
    /* Over the relay's TCP service the relay sees a tunnel address: no candidate. */
    if (wzp_addr_is_tunnel(&m->u.registered.reflexive))
        wzp_addr_clear(&sc->reflexive);
    else
        sc->reflexive = m->u.registered.reflexive;
    emit(sc, WZP_SIGC_EV_REGISTERED, 0, NULL, 0, 0, m);
    return 0;
}

static int on_incoming(wzp_sigc *sc, const wzp_sig_msg *m)
{
    if (find_id(sc, m->u.incoming.call_id))
        return WZP_ERR_STATE; /* duplicate */
    sigc_call *k = new_slot(sc);
    if (!k) {
        /* No room for another call: say so at once rather than let it ring out. */
        send_call_msg(sc, WZP_SIG_BUSY, m->u.incoming.call_id);
        return 0;
    }
    k->state = WZP_SIGC_CALL_INCOMING;
    k->has_id = true;
    memcpy(k->id, m->u.incoming.call_id, WZP_SIG_CALL_ID_LEN);
    emit(sc, WZP_SIGC_EV_INCOMING, k->handle, m->u.incoming.call_id, 0, 0, m);
    return 0;
}

static int on_ringing(wzp_sigc *sc, const wzp_sig_msg *m)
{
    sigc_call *k = find_rid(sc, m->request_id);
    if (!k || (k->state != WZP_SIGC_CALL_OFFERING && k->state != CALL_CANCELLING)) {
        /* The answer to an offer we gave up on (timed out): withdraw the call. */
        if (!find_id(sc, m->u.call.call_id))
            send_call_msg(sc, WZP_SIG_CANCEL, m->u.call.call_id);
        return WZP_ERR_STATE;
    }
    if (k->state == CALL_CANCELLING) {
        send_call_msg(sc, WZP_SIG_CANCEL, m->u.call.call_id);
        memset(k, 0, sizeof(*k));
        return 0;
    }
    k->state = WZP_SIGC_CALL_RINGING;
    k->has_id = true;
    memcpy(k->id, m->u.call.call_id, WZP_SIG_CALL_ID_LEN);
    k->rid = 0;
    k->deadline = WZP_TS_NEVER;
    emit(sc, WZP_SIGC_EV_RINGING, k->handle, k->id, 0, 0, m);
    return 0;
}

static int on_setup(wzp_sigc *sc, const wzp_sig_msg *m)
{
    sigc_call *k = find_id(sc, m->u.setup.call_id);
    if (!k)
        return WZP_ERR_STATE;
    bool ok = (k->state == WZP_SIGC_CALL_RINGING && m->u.setup.role == WZP_SIG_ROLE_CALLER) ||
              (k->state == WZP_SIGC_CALL_ACCEPTING && m->u.setup.role == WZP_SIG_ROLE_CALLEE);
    if (!ok)
        return WZP_ERR_STATE;
    k->state = WZP_SIGC_CALL_SETUP;
    k->rid = 0;
    k->deadline = WZP_TS_NEVER;
    emit(sc, WZP_SIGC_EV_SETUP, k->handle, k->id, 0, 0, m);
    return 0;
}

static int on_ended(wzp_sigc *sc, const wzp_sig_msg *m)
{
    sigc_call *k = find_id(sc, m->u.end.call_id);
    if (!k) {
        /* A failed Offer: the relay names the call in its CallEnded reply. */
        k = find_rid(sc, m->request_id);
        if (!k || (k->state != WZP_SIGC_CALL_OFFERING && k->state != CALL_CANCELLING))
            return WZP_ERR_STATE;
        k->has_id = true;
        memcpy(k->id, m->u.end.call_id, WZP_SIG_CALL_ID_LEN);
    }
    end_call(sc, k, wzp_sig_end_reason_error(m->u.end.reason), m->u.end.reason, m);
    return 0;
}

static int on_error(wzp_sigc *sc, const wzp_sig_msg *m)
{
    int err = relay_error(m->u.error.code);
    WZP_DEBUG("signal client: relay error %d (%s) for request %llu", (int)m->u.error.code,
              m->u.error.text, (unsigned long long)m->request_id);
    if (m->request_id && m->request_id == sc->reg_rid) {
        sc->reg_rid = 0;
        sc->reg_deadline = WZP_TS_NEVER;
        if (sc->reg == WZP_SIGC_REGISTERING)
            sc->reg = WZP_SIGC_UNREGISTERED;
        emit(sc, WZP_SIGC_EV_REGISTER_FAILED, 0, NULL, err, 0, m);
        return 0;
    }
    sigc_call *k = find_rid(sc, m->request_id);
    if (k) {
        if (k->state == WZP_SIGC_CALL_ACCEPTING)
            send_call_msg(sc, WZP_SIG_HANGUP, k->id); /* make sure the relay lets go too */
        end_call(sc, k, err, 0, m);
        return 0;
    }
    emit(sc, WZP_SIGC_EV_ERROR, 0, NULL, err, 0, m);
    return 0;
}

int wzp_sigc_on_message(wzp_sigc *sc, const uint8_t *bytes, size_t len, wzp_ts now)
{
    sc->now = now;
    (void)now;
    wzp_sig_msg m;
    int err = wzp_sig_decode(bytes, len, &m);
    if (err == 0) {
        switch (m.type) {
        case WZP_SIG_REGISTERED:
            err = on_registered(sc, &m);
            break;
        case WZP_SIG_REFLEXIVE_ADDRESS:
            if (sc->reg != WZP_SIGC_REGISTERED) {
                err = WZP_ERR_STATE;
            } else if (!wzp_addr_is_tunnel(&m.u.reflexive.reflexive) &&
                       !wzp_addr_equal(&sc->reflexive, &m.u.reflexive.reflexive)) {
                sc->reflexive = m.u.reflexive.reflexive;
                emit(sc, WZP_SIGC_EV_REFLEXIVE, 0, NULL, 0, 0, &m);
            }
            break;
        case WZP_SIG_INCOMING_CALL:
            err = on_incoming(sc, &m);
            break;
        case WZP_SIG_RINGING:
            err = on_ringing(sc, &m);
            break;
        case WZP_SIG_CALL_SETUP:
            err = on_setup(sc, &m);
            break;
        case WZP_SIG_CALL_ENDED:
            err = on_ended(sc, &m);
            break;
        case WZP_SIG_ERROR:
            err = on_error(sc, &m);
            break;
        case WZP_SIG_PONG:
            emit(sc, WZP_SIGC_EV_PONG, 0, NULL, 0, 0, &m);
            break;
        case WZP_SIG_REATTACHED: {
            sigc_call *k = find_id(sc, m.u.reattach.call_id);
            if (!k || !k->rid || k->rid != m.request_id) {
                err = WZP_ERR_STATE;
                break;
            }
            k->rid = 0;
            k->deadline = WZP_TS_NEVER;
            emit(sc, WZP_SIGC_EV_REATTACHED, k->handle, k->id, 0, 0, &m);
            break;
        }
        case WZP_SIG_REHOME:
            if (sc->reg != WZP_SIGC_REGISTERED)
                err = WZP_ERR_STATE;
            else
                emit(sc, WZP_SIGC_EV_REHOME, 0, NULL, 0, 0, &m);
            break;
        case WZP_SIG_PARK:
            if (sc->reg != WZP_SIGC_REGISTERED)
                err = WZP_ERR_STATE;
            else
                emit(sc, WZP_SIGC_EV_PARK, 0, NULL, 0, 0, &m);
            break;
        case WZP_SIG_CANDIDATES_UPDATE: {
            sigc_call *k = find_id(sc, m.u.update.call_id);
            if (!k || k->state != WZP_SIGC_CALL_SETUP)
                err = WZP_ERR_STATE;
            else
                emit(sc, WZP_SIGC_EV_CANDIDATES, k->handle, k->id, 0, 0, &m);
            break;
        }
        default:
            err = WZP_ERR_PROTOCOL; /* a client->relay message sent to us */
            break;
        }
    }
    if (err < 0)
        sc->dropped++;
    return err;
}

void wzp_sigc_on_disconnect(wzp_sigc *sc, wzp_ts now)
{
    sc->now = now;
    (void)now;
    bool was_registering = sc->reg == WZP_SIGC_REGISTERING;
    sc->reg = WZP_SIGC_UNREGISTERED;
    sc->reg_rid = 0;
    sc->reg_deadline = WZP_TS_NEVER;
    wzp_addr_clear(&sc->reflexive);
    for (size_t i = 0; i < sc->cfg.max_calls; i++)
        if (sc->calls[i].used)
            end_call(sc, &sc->calls[i], WZP_ERR_UNREACHABLE, 0, NULL);
    if (was_registering)
        emit(sc, WZP_SIGC_EV_REGISTER_FAILED, 0, NULL, WZP_ERR_UNREACHABLE, 0, NULL);
}

void wzp_sigc_handle_timer(wzp_sigc *sc, wzp_ts now)
{
    sc->now = now;
    if (sc->reg_rid && sc->reg_deadline <= now) {
        sc->reg_rid = 0;
        sc->reg_deadline = WZP_TS_NEVER;
        if (sc->reg == WZP_SIGC_REGISTERING)
            sc->reg = WZP_SIGC_UNREGISTERED;
        emit(sc, WZP_SIGC_EV_REGISTER_FAILED, 0, NULL, WZP_ERR_TIMEOUT, 0, NULL);
    }
    for (size_t i = 0; i < sc->cfg.max_calls; i++) {
        sigc_call *k = &sc->calls[i];
        if (!k->used || !k->rid || k->deadline > now)
            continue;
        if (k->state == WZP_SIGC_CALL_ACCEPTING)
            send_call_msg(sc, WZP_SIG_HANGUP, k->id);
        /* A timed-out Offer has no id to cancel; a late Ringing is cancelled then. */
        end_call(sc, k, WZP_ERR_TIMEOUT, 0, NULL);
    }
}

wzp_ts wzp_sigc_next_deadline(const wzp_sigc *sc)
{
    wzp_ts t = sc->reg_rid ? sc->reg_deadline : WZP_TS_NEVER;
    for (size_t i = 0; i < sc->cfg.max_calls; i++)
        if (sc->calls[i].used && sc->calls[i].rid)
            t = wzp_ts_min(t, sc->calls[i].deadline);
    return t;
}

wzp_sigc_reg_state wzp_sigc_reg_state_get(const wzp_sigc *sc)
{
    return sc->reg;
}

const wzp_addr *wzp_sigc_reflexive(const wzp_sigc *sc)
{
    return &sc->reflexive;
}

int wzp_sigc_call_state_get(const wzp_sigc *sc, uint32_t call)
{
    sigc_call *k = find_handle((wzp_sigc *)sc, call);
    return k ? k->state : WZP_ERR_NOT_FOUND;
}

bool wzp_sigc_idle(const wzp_sigc *sc)
{
    if (sc->reg != WZP_SIGC_REGISTERED || sc->reg_rid)
        return false;
    for (size_t i = 0; i < sc->cfg.max_calls; i++)
        if (sc->calls[i].used)
            return false;
    return true;
}

uint64_t wzp_sigc_dropped(const wzp_sigc *sc)
{
    return sc->dropped;
}
