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
    one(o, "wzp_relay_alias_bindings", "gauge",
        "Alias bindings held (live, or reserved for a key that left).", c->aliases);

    const char *n = "wzp_relay_registrations_total";
    family(o, n, "counter", "Register requests by result.");
    labelled(o, n, "result", "ok", s->reg_ok);
    labelled(o, n, "result", "replaced", s->reg_replaced);
    labelled(o, n, "result", "alias_taken", s->reg_alias_taken);
    labelled(o, n, "result", "over_cap", s->reg_over_cap);
    one(o, "wzp_relay_registration_timeouts_total", "counter",
        "Connections closed for not registering in time.", s->reg_timeouts);
    one(o, "wzp_relay_connections_over_address_cap_total", "counter",
        "Control connections refused: too many from one address.", s->conn_over_addr_cap);

    n = "wzp_relay_calls";
    family(o, n, "gauge", "Calls now, by state.");
    labelled(o, n, "state", "ringing", c->calls_ringing);
    labelled(o, n, "state", "answered", c->calls_active);
    one(o, "wzp_relay_calls_offered_total", "counter", "Calls that rang.", s->calls_offered);
    one(o, "wzp_relay_calls_answered_total", "counter", "Calls answered.", s->calls_setup);
    one(o, "wzp_relay_calls_over_limit_total", "counter",
        "Offers refused by the per-identity or global call cap.", s->offers_over_limit);
    n = "wzp_relay_calls_ended_total";
    family(o, n, "counter", "Calls ended, by reason.");
    for (int r = WZP_SIG_END_HANGUP; r <= WZP_SIG_END_ERROR; r++)
        labelled(o, n, "reason", wzp_sig_end_reason_name((wzp_sig_end_reason)r), s->calls_ended[r]);

    n = "wzp_relay_call_path_reports_total";
    family(o, n, "counter",
           "Answered calls by how their media went, as the party hanging up reported it "
           "(unspecified: an older client, or no media).");
    labelled(o, n, "path", "direct", s->path_reports[WZP_SIG_PATH_DIRECT]);
    labelled(o, n, "path", "relayed", s->path_reports[WZP_SIG_PATH_RELAYED]);
    labelled(o, n, "path", "unspecified", s->path_reports[WZP_SIG_PATH_UNSPECIFIED]);
    uint64_t d = s->path_reports[WZP_SIG_PATH_DIRECT], r = s->path_reports[WZP_SIG_PATH_RELAYED];
    family(o, "wzp_relay_calls_direct_ratio", "gauge",
           "Share of reported calls that went direct (NaN before any report).");
    if (d + r)
        put(o, "wzp_relay_calls_direct_ratio %.6f\n", (double)d / (double)(d + r));
    else
        put(o, "wzp_relay_calls_direct_ratio NaN\n");

    n = "wzp_relay_signal_messages_total";
    family(o, n, "counter", "Signaling messages, by direction.");
    labelled(o, n, "direction", "in", s->msgs_in);
    labelled(o, n, "direction", "out", s->msgs_out);
    n = "wzp_relay_signal_dropped_total";
    family(o, n, "counter", "Signaling messages not acted on, by reason.");
    labelled(o, n, "reason", "unknown_connection", s->drop_unknown_conn);
    labelled(o, n, "reason", "too_big", s->drop_too_big);
    labelled(o, n, "reason", "malformed", s->drop_malformed);
    labelled(o, n, "reason", "version", s->drop_version);
    labelled(o, n, "reason", "rate_limited", s->drop_rate_limited);
    labelled(o, n, "reason", "not_registered", s->drop_not_registered);
    labelled(o, n, "reason", "unexpected", s->drop_unexpected);
    labelled(o, n, "reason", "no_such_call", s->drop_no_such_call);
    labelled(o, n, "reason", "bad_state", s->drop_bad_state);
}

static void quic(out *o, const wzp_relay_metrics_ctl *c)
{
    const wzp_quic_endpoint_stats *q = &c->quic;
    const char *n = "wzp_relay_quic_handshakes_total";
    family(o, n, "counter", "Control connection handshakes, started and completed.");
    labelled(o, n, "stage", "started", q->conns_accepted);
    labelled(o, n, "stage", "completed", c->handshakes_completed);
    one(o, "wzp_relay_quic_connections", "gauge",
        "QUIC connections held, handshaking ones included.", q->conns_active);
    n = "wzp_relay_quic_retries_total";
    family(o, n, "counter", "Initials answered with a Retry (address validation), by cause.");
    labelled(o, n, "cause", "load", q->retries_sent - q->retries_addr_cap);
    labelled(o, n, "cause", "address_cap", q->retries_addr_cap);
    n = "wzp_relay_quic_dropped_packets_total";
    family(o, n, "counter", "QUIC packets not handed to a connection, by reason.");
    labelled(o, n, "reason", "not_quic", q->rx_not_quic);
    labelled(o, n, "reason", "malformed", q->rx_malformed);
    labelled(o, n, "reason", "bad_version", q->rx_bad_version);
    labelled(o, n, "reason", "unknown_connection", q->rx_unknown_cid);
    labelled(o, n, "reason", "refused", q->rx_refused);
    labelled(o, n, "reason", "closed_connection", q->rx_closed_conn);
    labelled(o, n, "reason", "bad_token", q->rx_bad_token);
    labelled(o, n, "reason", "address_cap", q->rx_addr_capped);
    n = "wzp_relay_quic_stateless_resets_total";
    family(o, n, "counter", "Stateless resets for packets of unknown connections.");
    labelled(o, n, "result", "sent", q->stateless_resets_sent);
    labelled(o, n, "result", "rate_limited", q->stateless_resets_limited);
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
    const char *n = "wzp_relay_dropped_packets_total";
    family(o, n, "counter", "Datagrams dropped by the forwarding plane, by reason.");
    labelled(o, n, "reason", "unknown_channel", f->unknown_channel);
    labelled(o, n, "reason", "wrong_source", f->wrong_source);
    labelled(o, n, "reason", "malformed", f->malformed);
    labelled(o, n, "reason", "stun_rate_limited", f->stun_rate_limited);
    labelled(o, n, "reason", "control_queue_full", f->ctl_full);
    labelled(o, n, "reason", "control_not_quic", ctl_dropped);
    labelled(o, n, "reason", "send_failed", f->send_failed);
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
    quic(&o, &m->c);
    forwarding(&o, &m->fwd, m->c.ctl_dropped);
    workers(&o, m);
    return o.overflow || o.len > INT32_MAX ? WZP_ERR_TOO_BIG : (int)o.len;
}
