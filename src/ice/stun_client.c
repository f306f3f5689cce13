#include "ice/stun_client.h"

#include <string.h>

#include <wzp/wzp.h>

#include "common/log.h"
#include "common/rand.h"

void wzp_stun_config_default(wzp_stun_config *cfg)
{
    cfg->rto = WZP_MS(500);
    cfg->max_tx = 7;
    cfg->final_wait = 16;
    cfg->software = NULL;
}

int wzp_stun_txn_start(wzp_stun_txn *t, const wzp_stun_config *cfg, const wzp_addr *server,
                       wzp_ts now)
{
    return wzp_stun_txn_start_change(t, cfg, server, 0, now);
}

int wzp_stun_txn_start_change(wzp_stun_txn *t, const wzp_stun_config *cfg, const wzp_addr *server,
                              uint32_t change, wzp_ts now)
{
    memset(t, 0, sizeof(*t));
    if (cfg)
        t->cfg = *cfg;
    else
        wzp_stun_config_default(&t->cfg);
    if (wzp_addr_family(server) == AF_UNSPEC || t->cfg.rto == 0 || t->cfg.max_tx == 0)
        return WZP_ERR_INVALID;
    /* Unpredictable ids: an off-path attacker must not be able to forge the answer. */
    wzp_random(t->tid, sizeof(t->tid));
    int len =
        wzp_stun_binding_request_change(t->req, sizeof(t->req), t->tid, t->cfg.software, change);
    if (len < 0)
        return len;
    t->req_len = (size_t)len;
    t->server = *server;
    t->change = change;
    t->rto = t->cfg.rto;
    t->next = now;
    t->state = WZP_STUN_TXN_PENDING;
    return 0;
}

wzp_ts wzp_stun_txn_deadline(const wzp_stun_txn *t)
{
    return t->state == WZP_STUN_TXN_PENDING ? t->next : WZP_TS_NEVER;
}

int wzp_stun_txn_poll(wzp_stun_txn *t, wzp_ts now, uint8_t *out, size_t cap, wzp_addr *to)
{
    if (t->state != WZP_STUN_TXN_PENDING || now < t->next)
        return 0;
    if (t->sent >= t->cfg.max_tx) {
        t->state = WZP_STUN_TXN_FAILED;
        t->error = WZP_ERR_TIMEOUT;
        return 0;
    }
    if (cap < t->req_len)
        return WZP_ERR_TOO_BIG;
    memcpy(out, t->req, t->req_len);
    *to = t->server;
    t->sent++;
    if (t->sent == t->cfg.max_tx) {
        t->next = now + t->cfg.rto * t->cfg.final_wait;
    } else {
        t->next = now + t->rto;
        t->rto *= 2;
    }
    return (int)t->req_len;
}

static void fail(wzp_stun_txn *t, int error, uint16_t code)
{
    t->state = WZP_STUN_TXN_FAILED;
    t->error = error;
    t->error_code = code;
}

int wzp_stun_txn_recv(wzp_stun_txn *t, const wzp_addr *from, const uint8_t *data, size_t len,
                      wzp_ts now)
{
    wzp_stun_msg m;
    if (wzp_stun_decode(&m, data, len) < 0)
        return WZP_ERR_MALFORMED;
    /* Ours only if pending, the id matches and it comes from where we sent the request. */
    if (t->state != WZP_STUN_TXN_PENDING || memcmp(m.tid, t->tid, sizeof(t->tid)) != 0 ||
        (!t->change && !wzp_addr_equal(from, &t->server)) ||
        WZP_STUN_METHOD(m.type) != WZP_STUN_METHOD_BINDING)
        return WZP_ERR_NOT_FOUND;
    uint16_t cls = WZP_STUN_CLASS(m.type);
    if (cls != WZP_STUN_CLASS_SUCCESS && cls != WZP_STUN_CLASS_ERROR)
        return WZP_ERR_NOT_FOUND;

    /* RFC 8489 section 6.3.3/6.3.4: unknown comprehension-required attributes fail it. */
    if (m.n_unknown) {
        fail(t, WZP_ERR_PROTOCOL, 0);
        return 0;
    }
    if (cls == WZP_STUN_CLASS_ERROR) {
        WZP_DEBUG("stun: error response %u", m.error_code);
        fail(t, WZP_ERR_REJECTED, m.has_error ? m.error_code : 0);
        return 0;
    }
    if (m.has_xor_mapped) {
        t->mapped = m.xor_mapped;
    } else if (m.has_mapped) {
        t->mapped = m.mapped; /* pre-RFC 5389 servers */
    } else {
        fail(t, WZP_ERR_PROTOCOL, 0);
        return 0;
    }
    t->responder = *from;
    if (m.has_other)
        t->other = m.other;
    t->state = WZP_STUN_TXN_DONE;
    return 0;
}

/* --- mapping behaviour ---------------------------------------------------------------- */

const char *wzp_nat_mapping_name(wzp_nat_mapping m)
{
    switch (m) {
    case WZP_NAT_MAPPING_INDEPENDENT:
        return "endpoint-independent";
    case WZP_NAT_MAPPING_DEPENDENT:
        return "endpoint-dependent";
    default:
        return "unknown";
    }
}

wzp_nat_mapping wzp_nat_mapping_classify(const wzp_addr *mapped_a, const wzp_addr *mapped_b)
{
    if (!mapped_a || !mapped_b)
        return WZP_NAT_MAPPING_UNKNOWN;
    int fa = wzp_addr_family(mapped_a);
    if (fa == AF_UNSPEC || fa != wzp_addr_family(mapped_b))
        return WZP_NAT_MAPPING_UNKNOWN;
    return wzp_addr_equal(mapped_a, mapped_b) ? WZP_NAT_MAPPING_INDEPENDENT
                                              : WZP_NAT_MAPPING_DEPENDENT;
}

int wzp_nat_probe_start(wzp_nat_probe *p, const wzp_stun_config *cfg, const wzp_addr *server_a,
                        const wzp_addr *server_b, wzp_ts now)
{
    if (wzp_addr_equal(server_a, server_b))
        return WZP_ERR_INVALID;
    int rv = wzp_stun_txn_start(&p->txn[0], cfg, server_a, now);
    if (rv == 0)
        rv = wzp_stun_txn_start(&p->txn[1], cfg, server_b, now);
    return rv;
}

int wzp_nat_probe_poll(wzp_nat_probe *p, wzp_ts now, uint8_t *out, size_t cap, wzp_addr *to)
{
    for (int i = 0; i < 2; i++) {
        int rv = wzp_stun_txn_poll(&p->txn[i], now, out, cap, to);
        if (rv != 0)
            return rv;
    }
    return 0;
}

wzp_ts wzp_nat_probe_deadline(const wzp_nat_probe *p)
{
    return wzp_ts_min(wzp_stun_txn_deadline(&p->txn[0]), wzp_stun_txn_deadline(&p->txn[1]));
}

int wzp_nat_probe_recv(wzp_nat_probe *p, const wzp_addr *from, const uint8_t *data, size_t len,
                       wzp_ts now)
{
    int rv = wzp_stun_txn_recv(&p->txn[0], from, data, len, now);
    if (rv == WZP_ERR_NOT_FOUND)
        rv = wzp_stun_txn_recv(&p->txn[1], from, data, len, now);
    return rv;
}

bool wzp_nat_probe_done(const wzp_nat_probe *p)
{
    return p->txn[0].state >= WZP_STUN_TXN_DONE && p->txn[1].state >= WZP_STUN_TXN_DONE;
}

wzp_nat_mapping wzp_nat_probe_result(const wzp_nat_probe *p)
{
    if (!wzp_nat_probe_done(p))
        return WZP_NAT_MAPPING_UNKNOWN;
    const wzp_addr *a = p->txn[0].state == WZP_STUN_TXN_DONE ? &p->txn[0].mapped : NULL;
    const wzp_addr *b = p->txn[1].state == WZP_STUN_TXN_DONE ? &p->txn[1].mapped : NULL;
    return wzp_nat_mapping_classify(a, b);
}
