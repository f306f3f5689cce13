#include "ice/natcheck.h"

#include <string.h>

#include <wzp/wzp.h>

/* Short timeouts: a filtered test is expected to go unanswered, and waits this out. */
#define NC_RTO    WZP_MS(250)
#define NC_MAX_TX 4
#define NC_FINAL  4 /* x RTO after the last send: gives up 2.75 s after the first */
/* Pads requests so the relay has room for OTHER-ADDRESS within its amplification bound. */
#define NC_SOFTWARE "wzp doctor (RFC 5780)"
/* New mappings whose ports lie within this much per mapping of each other count as sequential. */
#define NC_SEQ_SPREAD 4
/* Random ports whose estimated range is under this are a "range" (snat to a port range). */
#define NC_RANGE_MAX 16384

const char *wzp_nc_mapping_name(wzp_nc_mapping m)
{
    static const char *const n[] = {"unknown", "EIM", "ADM", "APDM"};
    return (unsigned)m < 4 ? n[m] : "unknown";
}

const char *wzp_nc_filtering_name(wzp_nc_filtering f)
{
    static const char *const n[] = {"unknown", "EIF", "ADF", "APDF"};
    return (unsigned)f < 4 ? n[f] : "unknown";
}

const char *wzp_nc_ports_name(wzp_nc_ports p)
{
    static const char *const n[] = {"unknown", "preserved", "sequential", "range", "random"};
    return (unsigned)p < 5 ? n[p] : "unknown";
}

static int sock_of(int test)
{
    return test >= WZP_NC_F0 ? 1 : 0;
}

static void start(wzp_natcheck *nc, int test, const wzp_addr *to, uint32_t change, wzp_ts now)
{
    wzp_stun_config cfg = {
        .rto = NC_RTO, .max_tx = NC_MAX_TX, .final_wait = NC_FINAL, .software = NC_SOFTWARE};
    nc->t[test].started = wzp_stun_txn_start_change(&nc->t[test].txn, &cfg, to, change, now) == 0;
}

static bool done(const wzp_natcheck *nc, int test)
{
    return nc->t[test].started && nc->t[test].txn.state == WZP_STUN_TXN_DONE;
}

static bool finished(const wzp_natcheck *nc, int test)
{
    return !nc->t[test].started || nc->t[test].txn.state >= WZP_STUN_TXN_DONE;
}

static const wzp_addr *mapped(const wzp_natcheck *nc, int test)
{
    return done(nc, test) ? &nc->t[test].txn.mapped : NULL;
}

/* M2 and M3 agree but M1 differs: ADM, or a symmetric NAT's chance port collision (M4 tells). */
static bool adm_suspected(const wzp_natcheck *nc)
{
    const wzp_addr *m1 = mapped(nc, WZP_NC_M1), *m2 = mapped(nc, WZP_NC_M2),
                   *m3 = mapped(nc, WZP_NC_M3);
    return m1 && m2 && m3 && !wzp_addr_equal(m1, m2) && wzp_addr_equal(m2, m3);
}

/* F0 answered and FI and FP, which it started, are over: the filtering is known. */
static bool filtering_over(const wzp_natcheck *nc)
{
    return done(nc, WZP_NC_F0) && nc->t[WZP_NC_FI].started && finished(nc, WZP_NC_FI) &&
           finished(nc, WZP_NC_FP);
}

/* M4 is due: ADM suspected and the filtering tests over (F0's mapping is there to compare with;
 * before, a send to A2:P1 would open the very hole FP probes). */
static bool m4_due(const wzp_natcheck *nc)
{
    return adm_suspected(nc) && filtering_over(nc);
}

/* Starts the tests whose prerequisites are now met. */
static void advance(wzp_natcheck *nc, wzp_ts now)
{
    if (done(nc, WZP_NC_M1) && !nc->t[WZP_NC_R2].started) {
        start(nc, WZP_NC_R2, &nc->relay, 0, now);
        const wzp_addr *other = &nc->t[WZP_NC_M1].txn.other;
        /* A usable alternate: same family, another IP (else nothing tells mappings apart). */
        if (wzp_addr_family(other) == wzp_addr_family(&nc->relay) &&
            !wzp_addr_ip_equal(other, &nc->relay)) {
            nc->alt_p2 = *other;
            nc->alt_p1 = *other;
            wzp_addr_set_port(&nc->alt_p1, wzp_addr_port(&nc->relay));
            start(nc, WZP_NC_M2, &nc->alt_p1, 0, now);
            start(nc, WZP_NC_M3, &nc->alt_p2, 0, now);
            start(nc, WZP_NC_F0, &nc->alt_p2, 0, now);
        }
    }
    if (finished(nc, WZP_NC_R2) && nc->t[WZP_NC_R2].started && !nc->t[WZP_NC_R3].started)
        start(nc, WZP_NC_R3, &nc->relay, 0, now);
    if (done(nc, WZP_NC_F0) && !nc->t[WZP_NC_FI].started) {
        start(nc, WZP_NC_FI, &nc->alt_p2, WZP_STUN_CHANGE_IP | WZP_STUN_CHANGE_PORT, now);
        start(nc, WZP_NC_FP, &nc->alt_p2, WZP_STUN_CHANGE_PORT, now);
    }
    if (m4_due(nc) && !nc->t[WZP_NC_M4].started)
        start(nc, WZP_NC_M4, &nc->alt_p1, 0, now);
}

int wzp_natcheck_start(wzp_natcheck *nc, const wzp_addr *relay, const wzp_addr *local_main,
                       const wzp_addr *local_filter, wzp_ts now)
{
    memset(nc, 0, sizeof(*nc));
    int fam = wzp_addr_family(relay);
    if (fam == AF_UNSPEC || wzp_addr_family(local_main) != fam ||
        wzp_addr_family(local_filter) != fam)
        return WZP_ERR_INVALID;
    nc->relay = *relay;
    nc->local[0] = *local_main;
    nc->local[1] = *local_filter;
    start(nc, WZP_NC_M1, relay, 0, now);
    return nc->t[WZP_NC_M1].started ? 0 : WZP_ERR_INVALID;
}

int wzp_natcheck_poll(wzp_natcheck *nc, wzp_ts now, uint8_t *out, size_t cap, int *sock,
                      wzp_addr *to)
{
    advance(nc, now);
    for (int i = 0; i < WZP_NC_TESTS; i++) {
        if (!nc->t[i].started)
            continue;
        int n = wzp_stun_txn_poll(&nc->t[i].txn, now, out, cap, to);
        if (n > 0) {
            if (nc->t[i].txn.sent == 1)
                nc->t[i].first_sent = now;
            *sock = sock_of(i);
            return n;
        }
        if (n < 0)
            return n;
    }
    advance(nc, now); /* a test that just gave up may unblock another */
    return 0;
}

wzp_ts wzp_natcheck_deadline(const wzp_natcheck *nc)
{
    wzp_ts t = WZP_TS_NEVER;
    for (int i = 0; i < WZP_NC_TESTS; i++)
        if (nc->t[i].started)
            t = wzp_ts_min(t, wzp_stun_txn_deadline(&nc->t[i].txn));
    return t;
}

void wzp_natcheck_recv(wzp_natcheck *nc, int sock, const wzp_addr *from, const uint8_t *data,
                       size_t len, wzp_ts now)
{
    for (int i = 0; i < WZP_NC_TESTS; i++) {
        if (!nc->t[i].started || sock_of(i) != sock)
            continue;
        if (wzp_stun_txn_recv(&nc->t[i].txn, from, data, len, now) != 0)
            continue;
        if (nc->t[i].txn.state == WZP_STUN_TXN_DONE && nc->t[i].txn.sent == 1)
            nc->t[i].rtt = now - nc->t[i].first_sent;
        break;
    }
    advance(nc, now);
}

bool wzp_natcheck_done(const wzp_natcheck *nc)
{
    for (int i = 0; i < WZP_NC_TESTS; i++)
        if (!finished(nc, i))
            return false;
    /* Follow-ups of a test that just finished may not have started yet. */
    if (done(nc, WZP_NC_M1) && !nc->t[WZP_NC_R3].started)
        return false;
    if (done(nc, WZP_NC_F0) && !nc->t[WZP_NC_FI].started)
        return false;
    return !m4_due(nc) || nc->t[WZP_NC_M4].started;
}

bool wzp_natcheck_mapping_done(const wzp_natcheck *nc)
{
    return done(nc, WZP_NC_M1) && nc->t[WZP_NC_M2].started && finished(nc, WZP_NC_M2) &&
           finished(nc, WZP_NC_M3) && finished(nc, WZP_NC_F0);
}

/* Port allocation from the distinct external ports of our new mappings, in the order they were
 * made. */
static void port_allocation(const wzp_natcheck *nc, wzp_natcheck_result *out)
{
    out->ports = WZP_NC_PORTS_PRESERVED;
    if (!out->nat)
        return;
    const wzp_addr *m1 = mapped(nc, WZP_NC_M1), *f0 = mapped(nc, WZP_NC_F0);
    uint16_t l0 = wzp_addr_port(&nc->local[0]), l1 = wzp_addr_port(&nc->local[1]);
    if (m1 && f0 && l0 && l1 && wzp_addr_port(m1) == l0 && wzp_addr_port(f0) == l1)
        return;
    out->ports = WZP_NC_PORTS_UNKNOWN;
    static const int tests[] = {WZP_NC_M1, WZP_NC_M2, WZP_NC_M3, WZP_NC_F0};
    uint16_t ports[4];
    unsigned n = 0, lo = 65535, hi = 0;
    for (size_t i = 0; i < 4; i++) {
        const wzp_addr *m = mapped(nc, tests[i]);
        if (!m)
            continue;
        uint16_t p = wzp_addr_port(m);
        bool seen = false;
        for (unsigned k = 0; k < n; k++)
            seen |= ports[k] == p;
        if (seen)
            continue;
        ports[n++] = p;
        lo = p < lo ? p : lo;
        hi = p > hi ? p : hi;
    }
    if (n)
        out->last_port = ports[n - 1];
    if (n < 2)
        return;
    if (hi - lo <= NC_SEQ_SPREAD * n) {
        out->ports = WZP_NC_PORTS_SEQUENTIAL;
        int d = ((int)ports[n - 1] - (int)ports[0]) / (int)(n - 1);
        out->port_delta = d ? d : (ports[n - 1] > ports[0] ? 1 : -1);
        return;
    }
    /* n uniform samples span (n-1)/(n+1) of their range on average: widen by that. */
    unsigned width = (hi - lo) * (n + 1) / (n - 1);
    unsigned pad = (width - (hi - lo)) / 2;
    out->port_lo = (uint16_t)(lo > 1024 + pad ? lo - pad : 1024);
    out->port_hi = (uint16_t)(hi + pad < 65535 ? hi + pad : 65535);
    out->ports = width < NC_RANGE_MAX ? WZP_NC_PORTS_RANGE : WZP_NC_PORTS_RANDOM;
    if (out->ports == WZP_NC_PORTS_RANDOM) {
        out->port_lo = 1024;
        out->port_hi = 65535;
    }
}

void wzp_natcheck_to_sig(const wzp_natcheck_result *r, wzp_sig_nat *out)
{
    memset(out, 0, sizeof(*out));
    if (!r->udp)
        return;
    out->mapping = (uint8_t)r->mapping;
    out->filtering = (uint8_t)r->filtering;
    out->ports = (uint8_t)r->ports;
    int d = r->port_delta;
    out->port_delta = (int8_t)(d > WZP_SIG_NAT_DELTA_MAX    ? WZP_SIG_NAT_DELTA_MAX
                               : d < -WZP_SIG_NAT_DELTA_MAX ? -WZP_SIG_NAT_DELTA_MAX
                                                            : d);
    out->port_lo = r->port_lo;
    out->port_hi = r->port_hi;
    out->last_port = r->last_port;
}

void wzp_natcheck_get_result(const wzp_natcheck *nc, wzp_natcheck_result *out)
{
    memset(out, 0, sizeof(*out));
    const wzp_addr *m1 = mapped(nc, WZP_NC_M1);
    out->udp = m1 != NULL;
    if (!m1)
        return;
    out->mapped = *m1;
    out->nat = !wzp_addr_equal(m1, &nc->local[0]);
    out->alt = nc->alt_p2.len != 0;
    out->alt_addr = nc->alt_p2;
    for (int i = WZP_NC_M1; i <= WZP_NC_R3; i++) {
        wzp_ts r = nc->t[i].rtt;
        if (!r)
            continue;
        out->rtt_min = out->rtt_samples && out->rtt_min < r ? out->rtt_min : r;
        out->rtt_max = out->rtt_max > r ? out->rtt_max : r;
        out->rtt_samples++;
    }
    const wzp_addr *m2 = mapped(nc, WZP_NC_M2), *m3 = mapped(nc, WZP_NC_M3);
    if (m2) {
        const wzp_addr *f0 = mapped(nc, WZP_NC_F0), *m4 = mapped(nc, WZP_NC_M4);
        /* A second agreement where one was seen: else the first was a port collision. */
        bool eim = wzp_addr_equal(m1, m2) && (!m3 || wzp_addr_equal(m2, m3));
        bool adm = adm_suspected(nc) && (!m4 || !f0 || wzp_addr_equal(f0, m4));
        out->mapping = eim   ? WZP_NC_MAPPING_EIM
                       : adm ? WZP_NC_MAPPING_ADM
                       : m3  ? WZP_NC_MAPPING_APDM
                             : WZP_NC_MAPPING_UNKNOWN;
    } else if (!out->nat)
        out->mapping = WZP_NC_MAPPING_EIM; /* no translation: the same mapping everywhere */
    if (filtering_over(nc)) {
        /* An answer that came from where we sent says the server ignored the change. */
        bool fi =
            done(nc, WZP_NC_FI) && !wzp_addr_ip_equal(&nc->t[WZP_NC_FI].txn.responder, &nc->alt_p2);
        bool fp =
            done(nc, WZP_NC_FP) && !wzp_addr_equal(&nc->t[WZP_NC_FP].txn.responder, &nc->alt_p2);
        out->filtering = fi   ? WZP_NC_FILTERING_EIF
                         : fp ? WZP_NC_FILTERING_ADF
                              : WZP_NC_FILTERING_APDF;
    }
    port_allocation(nc, out);
}
