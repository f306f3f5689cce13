#include "relay/metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/socket.h>

#include <wzp/wzp.h>

/* Text for the families we always write, with room to spare; per worker on top. */
#define BASE_SIZE       16384
#define PER_WORKER_SIZE 1024

typedef struct out {
    char *buf;
    size_t cap, len;
    bool overflow;
} out;

static void put(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(out *o, const char *fmt, ...)
{
    if (o->overflow)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len)
        o->overflow = true;
    else
        o->len += (size_t)n;
}

static void family(out *o, const char *name, const char *type, const char *help)
{
    put(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One family with a single unlabelled sample. */
static void one(out *o, const char *name, const char *type, const char *help, uint64_t v)
{
    family(o, name, type, help);
    put(o, "%s %llu\n", name, (unsigned long long)v);
}

static void labelled(out *o, const char *name, const char *label, const char *value, uint64_t v)
{
    put(o, "%s{%s=\"%s\"} %llu\n", name, label, value, (unsigned long long)v);
}

typedef struct kv {
    const char *label;
    uint64_t v;
} kv;

/* One family of samples that differ by one label. */
static void group(out *o, const char *name, const char *type, const char *help, const char *label,
                  const kv *items, size_t n)
{
    family(o, name, type, help);
    for (size_t i = 0; i < n; i++)
        labelled(o, name, label, items[i].label, items[i].v);
}
#define GROUP(o, name, type, help, label, ...)                                                     \
    group(o, name, type, help, label, (const kv[]){__VA_ARGS__},                                   \
          sizeof((const kv[]){__VA_ARGS__}) / sizeof(kv))

size_t wzp_relay_metrics_max_size(unsigned n_workers)
{
    return BASE_SIZE + (size_t)n_workers * PER_WORKER_SIZE;
}

static void control_plane(out *o, const wzp_relay_metrics_ctl *c)
{
    const wzp_relay_control_stats *s = &c->ctl;
    one(o, "wzp_relay_control_connections", "gauge",
        "Control connections past their handshake, registered or not.", c->conns);
    one(o, "wzp_relay_registered_identities", "gauge", "Identities registered now.",
        c->registrations);
    one(o, "wzp_relay_parked", "gauge",
        "Registered identities parked: no connection, kept by keyed pings.", c->parked);
    GROUP(o, "wzp_relay_park_offers_total", "counter", "Park offers made, by outcome.", "outcome",
          {"offered", s->parks_offered}, {"taken", s->parks_taken}, {"declined", s->parks_declined},
          {"lapsed", s->parks_lapsed});
    GROUP(o, "wzp_relay_parked_ended_total", "counter",
          "Parked registrations that ended: back on a connection, no pings, or a BYE.", "how",
          {"unparked", s->unparked}, {"expired", s->parks_expired}, {"left", s->parks_left});
    GROUP(o, "wzp_relay_park_pings_total", "counter", "PARK_PING frames, by result.", "result",
          {"ok", s->park.pings[WZP_PARK_PING_OK]},
          {"malformed", s->park.pings[WZP_PARK_PING_MALFORMED]},
          {"unknown", s->park.pings[WZP_PARK_PING_UNKNOWN]},
          {"bad_mac", s->park.pings[WZP_PARK_PING_BAD_MAC]},
          {"replay", s->park.pings[WZP_PARK_PING_REPLAY]});
    one(o, "wzp_relay_park_wakes_total", "counter", "WAKE frames sent to parked clients.",
        s->park.wakes_sent);
    one(o, "wzp_relay_park_wakes_failed_total", "counter",
        "Parked clients woken for 3 s that did not come back.", s->park.wakes_failed);
    GROUP(o, "wzp_relay_park_gone_total", "counter",
          "Pings for parks this relay no longer holds (a restart), by answer: PONG GONE, or "
          "none (over the rate limit).",
          "answer", {"gone", s->park.gone_sent}, {"limited", s->park.gone_limited});
    one(o, "wzp_relay_alias_bindings", "gauge",
        "Alias bindings held (live, or reserved for a key that left).", c->aliases);

    GROUP(o, "wzp_relay_registrations_total", "counter", "Register requests by result.", "result",
          {"ok", s->reg_ok}, {"replaced", s->reg_replaced}, {"alias_taken", s->reg_alias_taken},
          {"over_cap", s->reg_over_cap});
    one(o, "wzp_relay_registration_timeouts_total", "counter",
        "Connections closed for not registering in time.", s->reg_timeouts);
    one(o, "wzp_relay_connections_over_address_cap_total", "counter",
        "Control connections refused: too many from one address.", s->conn_over_addr_cap);

    GROUP(o, "wzp_relay_calls", "gauge", "Calls now, by state.", "state",
          {"ringing", c->calls_ringing}, {"answered", c->calls_active});
    one(o, "wzp_relay_calls_offered_total", "counter", "Calls that rang.", s->calls_offered);
    one(o, "wzp_relay_calls_answered_total", "counter", "Calls answered.", s->calls_setup);
    one(o, "wzp_relay_calls_over_limit_total", "counter",
        "Offers refused by the per-identity or global call cap.", s->offers_over_limit);
    const char *n = "wzp_relay_calls_ended_total";
    family(o, n, "counter", "Calls ended, by reason.");
    for (int r = WZP_SIG_END_HANGUP; r <= WZP_SIG_END_ERROR; r++)
        labelled(o, n, "reason", wzp_sig_end_reason_name((wzp_sig_end_reason)r), s->calls_ended[r]);

    GROUP(o, "wzp_relay_call_path_reports_total", "counter",
          "Answered calls by how their media went, as the party hanging up reported it "
          "(unspecified: an older client, or no media).",
          "path", {"direct", s->path_reports[WZP_SIG_PATH_DIRECT]},
          {"relayed", s->path_reports[WZP_SIG_PATH_RELAYED]},
          {"unspecified", s->path_reports[WZP_SIG_PATH_UNSPECIFIED]});
    uint64_t d = s->path_reports[WZP_SIG_PATH_DIRECT], r = s->path_reports[WZP_SIG_PATH_RELAYED];
    family(o, "wzp_relay_calls_direct_ratio", "gauge",
           "Share of reported calls that went direct (NaN before any report).");
    if (d + r)
        put(o, "wzp_relay_calls_direct_ratio %.6f\n", (double)d / (double)(d + r));
    else
        put(o, "wzp_relay_calls_direct_ratio NaN\n");

    GROUP(o, "wzp_relay_signal_messages_total", "counter", "Signaling messages, by direction.",
          "direction", {"in", s->msgs_in}, {"out", s->msgs_out});
    GROUP(o, "wzp_relay_signal_dropped_total", "counter",
          "Signaling messages not acted on, by reason.", "reason",
          {"unknown_connection", s->drop_unknown_conn}, {"too_big", s->drop_too_big},
          {"malformed", s->drop_malformed}, {"version", s->drop_version},
          {"rate_limited", s->drop_rate_limited}, {"not_registered", s->drop_not_registered},
          {"unexpected", s->drop_unexpected}, {"no_such_call", s->drop_no_such_call},
          {"bad_state", s->drop_bad_state});
}

/* Only a cluster member has these (docs/cluster.md). */
static void cluster(out *o, const wzp_relay_metrics_ctl *c)
{
    if (!c->cluster)
        return;
    const wzp_relay_control_stats *s = &c->ctl;
    const wzp_cluster_stats *k = &c->cluster_stats;
    one(o, "wzp_relay_cluster_store_up", "gauge", "1 while the cluster's Redis answers.",
        c->cluster_up);
    one(o, "wzp_relay_cluster_store_connects_total", "counter",
        "Connections to the cluster's Redis made (the first, and every reconnect).", k->connects);
    GROUP(o, "wzp_relay_cluster_calls_total", "counter",
          "Calls with the other party on another relay, by outcome.", "outcome",
          {"offered_from_here", s->cross_offered}, {"offered_to_here", s->cross_received},
          {"callee_not_found", s->cross_not_found}, {"store_unavailable", s->cross_unavailable});
    GROUP(o, "wzp_relay_cluster_messages_total", "counter", "Relay-to-relay messages, by fate.",
          "fate", {"sent", k->msgs_sent}, {"unsent", k->msgs_unsent},
          {"received", k->msgs_received}, {"refused_bad", k->msgs_refused},
          {"refused_no_such_call", s->cross_refused});
    one(o, "wzp_relay_cluster_alias_claims_refused_total", "counter",
        "Aliases refused because another relay's key holds them.", s->claims_refused);
    GROUP(o, "wzp_relay_cluster_reattach_total", "counter",
          "Ends of answered calls that moved here from a lost relay (Reattach), by outcome.",
          "outcome", {"moved_here", s->reattached}, {"refused", s->reattach_refused});
}

static void quic(out *o, const wzp_relay_metrics_ctl *c)
{
    const wzp_quic_endpoint_stats *q = &c->quic;
    GROUP(o, "wzp_relay_quic_handshakes_total", "counter",
          "Control connection handshakes, started and completed.", "stage",
          {"started", q->conns_accepted}, {"completed", c->handshakes_completed});
    one(o, "wzp_relay_quic_connections", "gauge",
        "QUIC connections held, handshaking ones included.", q->conns_active);
    GROUP(o, "wzp_relay_quic_retries_total", "counter",
          "Initials answered with a Retry (address validation), by cause.", "cause",
          {"load", q->retries_sent - q->retries_addr_cap}, {"address_cap", q->retries_addr_cap});
    GROUP(o, "wzp_relay_quic_dropped_packets_total", "counter",
          "QUIC packets not handed to a connection, by reason.", "reason",
          {"not_quic", q->rx_not_quic}, {"malformed", q->rx_malformed},
          {"bad_version", q->rx_bad_version}, {"unknown_connection", q->rx_unknown_cid},
          {"refused", q->rx_refused}, {"closed_connection", q->rx_closed_conn},
          {"bad_token", q->rx_bad_token}, {"address_cap", q->rx_addr_capped});
    GROUP(o, "wzp_relay_quic_stateless_resets_total", "counter",
          "Stateless resets for packets of unknown connections.", "result",
          {"sent", q->stateless_resets_sent}, {"rate_limited", q->stateless_resets_limited});
    one(o, "wzp_relay_quic_received_packets_total", "counter",
        "QUIC packets handed to a connection.", q->rx_packets);
    one(o, "wzp_relay_quic_sent_packets_total", "counter", "QUIC packets sent.", q->tx_packets);
    one(o, "wzp_relay_quic_sent_bytes_total", "counter", "QUIC bytes sent.", q->tx_bytes);
}

static void forwarding(out *o, const wzp_forwarder_stats *f, uint64_t ctl_dropped)
{
    one(o, "wzp_relay_received_packets_total", "counter",
        "Datagrams received on the relay port (all workers).", f->rx);
    one(o, "wzp_relay_relayed_packets_total", "counter", "Data frames relayed to the partner.",
        f->forwarded);
    one(o, "wzp_relay_relayed_bytes_total", "counter", "Bytes of the frames relayed.",
        f->forwarded_bytes);
    one(o, "wzp_relay_keepalives_total", "counter", "Channel keep-alives answered.", f->keepalives);
    one(o, "wzp_relay_stun_answers_total", "counter", "STUN Binding requests answered.",
        f->stun_answered);
    one(o, "wzp_relay_control_packets_total", "counter",
        "Datagrams handed to the control thread (QUIC).", f->ctl_queued);
    GROUP(o, "wzp_relay_dropped_packets_total", "counter",
          "Datagrams dropped by the forwarding plane, by reason.", "reason",
          {"unknown_channel", f->unknown_channel}, {"wrong_source", f->wrong_source},
          {"malformed", f->malformed}, {"stun_rate_limited", f->stun_rate_limited},
          {"control_queue_full", f->ctl_full}, {"control_not_quic", ctl_dropped},
          {"send_failed", f->send_failed});
}

static void workers(out *o, const wzp_relay_metrics *m)
{
    one(o, "wzp_relay_workers", "gauge", "Forwarding threads.", m->n_workers);
    static const struct {
        const char *name, *help;
        size_t off;
    } per[] = {
        {"wzp_relay_worker_received_packets_total", "Datagrams received, per worker.",
         offsetof(wzp_forwarder_stats, rx)},
        {"wzp_relay_worker_relayed_packets_total", "Data frames relayed, per worker.",
         offsetof(wzp_forwarder_stats, forwarded)},
        {"wzp_relay_worker_coalesce_waits_total",
         "Receive-coalescing waits (taken only under load), per worker.",
         offsetof(wzp_forwarder_stats, coalesce_waits)},
    };
    for (size_t k = 0; k < sizeof(per) / sizeof(per[0]); k++) {
        family(o, per[k].name, "counter", per[k].help);
        for (unsigned i = 0; i < m->n_workers; i++) {
            const wzp_forwarder_worker_stats *w = &m->workers[i];
            uint64_t v = *(const uint64_t *)((const char *)&w->stats + per[k].off);
            put(o, "%s{worker=\"%u\",family=\"%s\"} %llu\n", per[k].name, i,
                w->family == AF_INET6 ? "ipv6" : "ipv4", (unsigned long long)v);
        }
    }
    const char *n = "wzp_relay_worker_cpu_seconds_total";
    family(o, n, "counter", "CPU time used by each forwarding thread.");
    for (unsigned i = 0; i < m->n_workers; i++)
        put(o, "%s{worker=\"%u\",family=\"%s\"} %.6f\n", n, i,
            m->workers[i].family == AF_INET6 ? "ipv6" : "ipv4", (double)m->workers[i].cpu_ns / 1e9);
}

int wzp_relay_metrics_format(const wzp_relay_metrics *m, char *buf, size_t cap)
{
    out o = {.buf = buf, .cap = cap};
    if (!m || !buf || cap == 0)
        return WZP_ERR_INVALID;
    control_plane(&o, &m->c);
    cluster(&o, &m->c);
    quic(&o, &m->c);
    forwarding(&o, &m->fwd, m->c.ctl_dropped);
    GROUP(&o, "wzp_relay_stun_alt_requests_total", "counter",
          "Requests to the alternate STUN address (--stun-alt), answered or over their rate.",
          "result", {"answered", m->c.alt_answered}, {"rate_limited", m->c.alt_limited});
    workers(&o, m);
    return o.overflow || o.len > INT32_MAX ? WZP_ERR_TOO_BIG : (int)o.len;
}
