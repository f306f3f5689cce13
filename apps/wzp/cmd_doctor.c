/*
 * wzp doctor: what this network lets a call do. UDP to the relay and its round
 * trip (each of its addresses), the NAT's mapping, filtering and port
 * allocation (ice/natcheck.h, RFC 5780 against the relay's alternate STUN
 * address), IPv6, which port-mapping protocols the gateway answers, and the
 * TCP fallback. Human text or one JSON object.
 */
#include <arpa/inet.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <wzp/client.h>
#include <wzp/wzp.h>

#include "appconfig.h"
#include "commands.h"
#include "common/hostport.h"
#include "doctor_quic.h"
#include "doctor_tcp.h"
#include "ice/natcheck.h"
#include "net/clock.h"
#include "net/ifaddrs.h"
#include "net/resolve.h"
#include "net/udp.h"
#include "opts.h"
#include "phone.h"
#include "portmap/probe.h"

#define MAX_RELAY_ADDRS    2 /* the first IPv4 and the first IPv6 address */
#define MAX_MORE_RELAYS    7 /* a cluster list's relays after the first */
#define PORTMAP_TIMEOUT_MS 1000
#define HARD_LIMIT         WZP_SEC(15) /* natcheck ends well before (its timeouts) */
#define QUIC_TIMEOUT       WZP_SEC(5)
#define TCP_TIMEOUT        WZP_SEC(2) /* a port whose SYNs are dropped: give up here */

typedef struct probe {
    wzp_addr relay;
    int fd[2];
    wzp_natcheck nc;
    bool started;
    char why[128]; /* why it could not start */
    wzp_natcheck_result res;
} probe;

/* Another relay of the cluster: the checks that differ per relay (the NAT and the gateway
 * are this network's, checked once against the first). */
typedef struct other_relay {
    char relay[WZP_HOST_MAX + 16];
    char why[160]; /* bad pin text, or cannot resolve */
    doctor_quic quic;
    doctor_tcp tcp;
} other_relay;

/* Everything found, for printing. */
typedef struct report {
    const char *relay; /* as given */
    const probe *ps;
    size_t n;
    const wzp_ifaddr *v6; /* this host's IPv6 address, or NULL */
    bool portmap;         /* probed */
    wzp_portmap_report pm;
    bool udp; /* some relay address answered */
    bool pinned;
    doctor_quic quic;
    doctor_tcp tcp;                 /* tried unless no key was known to pin it to */
    const struct other_relay *more; /* a cluster's other relays: key and TCP only */
    size_t n_more;
} report;

static void usage(FILE *out)
{
    fprintf(out, "usage: wzp doctor [--relay HOST[:PORT] [--relay-pin FP]] [--json]\n"
                 "Checks what this network lets a call do: UDP to the relay and its round trip\n"
                 "(each of its addresses), the NAT's mapping and filtering behaviour (RFC 5780;\n"
                 "needs a relay started with --stun-alt), port allocation, IPv6, the gateway's\n"
                 "port-mapping protocols (PCP, NAT-PMP, UPnP) and the TCP fallback.\n"
                 "  --relay HOST[:PORT]    the relay (else $WZP_RELAY, else the config file)\n"
                 "  --relay-pin FP         the relay's key, checked by a QUIC handshake from a\n"
                 "                         throwaway identity (else $WZP_RELAY_PIN or the config\n"
                 "                         file; without one the key is only shown)\n"
                 "  --relay-tcp PORT       the relay's TLS-over-TCP port (else [relay] tcp_port,\n"
                 "                         else 443), checked with a TLS handshake to the key\n"
                 "  --home DIR             where the config file is (default $WZP_HOME)\n"
                 "  --no-portmap           do not probe the gateway for PCP, NAT-PMP and UPnP\n"
                 "  --json                 one JSON object instead of text\n"
                 "Exit status 0 when the relay answered over UDP or TCP, 4 when it did not.\n");
}

/* The local address the kernel would send to `to` from (no packet is sent). */
static int route_source(const wzp_addr *to, wzp_addr *out)
{
    int fd = socket(wzp_addr_family(to), SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return WZP_ERR_IO;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    int rv =
        connect(fd, &to->u.sa, to->len) == 0 && getsockname(fd, (struct sockaddr *)&ss, &len) == 0
            ? wzp_addr_from_sockaddr(out, (struct sockaddr *)&ss, len)
            : WZP_ERR_UNREACHABLE;
    close(fd);
    if (rv == 0)
        wzp_addr_set_port(out, 0);
    return rv;
}

static void probe_start(probe *p, const wzp_addr *relay)
{
    p->relay = *relay;
    p->fd[0] = p->fd[1] = -1;
    wzp_addr src, bound[2];
    if (route_source(relay, &src) < 0) {
        snprintf(p->why, sizeof(p->why), "no route to it from this host");
        return;
    }
    for (int i = 0; i < 2; i++) {
        p->fd[i] = wzp_udp_open(&src, NULL, &bound[i]);
        if (p->fd[i] < 0) {
            snprintf(p->why, sizeof(p->why), "cannot open a UDP socket: %s",
                     wzp_strerror(p->fd[i]));
            return;
        }
    }
    p->started = wzp_natcheck_start(&p->nc, relay, &bound[0], &bound[1], wzp_now()) == 0;
}

static void probe_send(probe *p, wzp_ts now)
{
    uint8_t buf[WZP_STUN_REQ_MAX];
    wzp_addr to;
    int sock, n;
    while ((n = wzp_natcheck_poll(&p->nc, now, buf, sizeof(buf), &sock, &to)) > 0)
        wzp_udp_send(p->fd[sock], &to, buf, (size_t)n); /* a lost request is retransmitted */
}

static void probe_recv(probe *p, int sock)
{
    uint8_t buf[2048];
    wzp_udp_msg m = {.data = buf, .cap = sizeof(buf)};
    while (wzp_udp_recv_batch(p->fd[sock], &m, 1) == 1)
        if (m.len)
            wzp_natcheck_recv(&p->nc, sock, &m.peer, m.data, m.len, wzp_now());
}

/* Runs every probe until done (each is bounded by its STUN timeouts). */
static void run_probes(probe *ps, size_t n)
{
    wzp_ts end = wzp_now() + HARD_LIMIT;
    for (;;) {
        struct pollfd pfd[2 * MAX_RELAY_ADDRS];
        size_t nfd = 0;
        wzp_ts now = wzp_now(), next = end;
        bool busy = false;
        for (size_t i = 0; i < n; i++) {
            if (!ps[i].started || wzp_natcheck_done(&ps[i].nc))
                continue;
            probe_send(&ps[i], now);
            if (wzp_natcheck_done(&ps[i].nc))
                continue;
            busy = true;
            next = wzp_ts_min(next, wzp_natcheck_deadline(&ps[i].nc));
            for (int k = 0; k < 2; k++)
                pfd[nfd++] = (struct pollfd){.fd = ps[i].fd[k], .events = POLLIN};
        }
        if (!busy || now >= end)
            break;
        int wait = next > now ? (int)((next - now + WZP_MS(1) - 1) / WZP_MS(1)) : 0;
        if (poll(pfd, nfd, wait) <= 0)
            continue;
        for (size_t i = 0, f = 0; i < n; i++) {
            if (!ps[i].started || wzp_natcheck_done(&ps[i].nc))
                continue;
            for (int k = 0; k < 2; k++, f++)
                if (f < nfd && pfd[f].fd == ps[i].fd[k] && (pfd[f].revents & POLLIN))
                    probe_recv(&ps[i], k);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (ps[i].started)
            wzp_natcheck_get_result(&ps[i].nc, &ps[i].res);
        for (int k = 0; k < 2; k++)
            if (ps[i].fd[k] >= 0)
                close(ps[i].fd[k]);
    }
}

static void *portmap_thread(void *arg)
{
    wzp_portmap_probe(arg, PORTMAP_TIMEOUT_MS);
    return NULL;
}

static const char *mapping_text(wzp_nc_mapping m)
{
    switch (m) {
    case WZP_NC_MAPPING_EIM:
        return "endpoint-independent (EIM): one public port for every peer";
    case WZP_NC_MAPPING_ADM:
        return "address-dependent (ADM): a new public port per peer address";
    case WZP_NC_MAPPING_APDM:
        return "address and port-dependent (APDM, \"symmetric\"): a new public port per peer";
    default:
        return "unknown";
    }
}

static const char *filtering_text(wzp_nc_filtering f)
{
    switch (f) {
    case WZP_NC_FILTERING_EIF:
        return "endpoint-independent (EIF): anyone may answer";
    case WZP_NC_FILTERING_ADF:
        return "address-dependent (ADF): only addresses we sent to";
    case WZP_NC_FILTERING_APDF:
        return "address and port-dependent (APDF): only the exact address and port";
    default:
        return "unknown";
    }
}

/* What the NAT behaviour means for calls, in one line. */
static const char *verdict(const wzp_natcheck_result *r)
{
    if (!r->udp)
        return "UDP to the relay is blocked: calls cannot work from here";
    if (r->mapping == WZP_NC_MAPPING_EIM)
        return "direct calls work with most peers";
    if (r->mapping == WZP_NC_MAPPING_UNKNOWN)
        return "calls work through the relay; direct paths not assessed";
    return "direct calls only with peers whose NAT lets anyone or any port of an address in "
           "(EIF/ADF); else through the relay";
}

static void print_ms(const char *key, wzp_ts t, bool have)
{
    if (have)
        printf(",\"%s\":%.3f", key, (double)t / 1e6);
    else
        printf(",\"%s\":null", key);
}

/* The address alone, without its port. */
static const char *ip_text(const wzp_addr *a, char *buf, size_t len)
{
    size_t n;
    const uint8_t *ip = wzp_addr_ip(a, &n);
    if (!ip || !inet_ntop(n == 4 ? AF_INET : AF_INET6, ip, buf, (socklen_t)len))
        snprintf(buf, len, "?");
    return buf;
}

static void json_addr(const char *key, const wzp_addr *a)
{
    char buf[WZP_ADDR_STRLEN];
    printf(",\"%s\":", key);
    if (a && a->len)
        phone_json_str(stdout, wzp_addr_format(a, buf, sizeof(buf)));
    else
        printf("null");
}

static void print_json(const report *rep)
{
    const probe *ps = rep->ps;
    size_t n = rep->n;
    const wzp_ifaddr *v6 = rep->v6;
    const wzp_portmap_report *pm = &rep->pm;
    printf("{\"event\":\"doctor\",\"relay\":");
    phone_json_str(stdout, rep->relay);
    printf(",\"udp\":%s,\"relays\":[", rep->udp ? "true" : "false");
    const probe *nat4 = NULL;
    for (size_t i = 0; i < n; i++) {
        const probe *p = &ps[i];
        const wzp_natcheck_result *r = &p->res;
        char buf[WZP_ADDR_STRLEN];
        printf("%s{\"address\":", i ? "," : "");
        phone_json_str(stdout, wzp_addr_format(&p->relay, buf, sizeof(buf)));
        printf(",\"family\":\"%s\",\"reachable\":%s",
               wzp_addr_family(&p->relay) == AF_INET6 ? "ipv6" : "ipv4", r->udp ? "true" : "false");
        if (!p->started) {
            printf(",\"error\":");
            phone_json_str(stdout, p->why);
        }
        print_ms("rtt_ms", r->rtt_min, r->rtt_samples > 0);
        print_ms("rtt_max_ms", r->rtt_max, r->rtt_samples > 0);
        printf(",\"rtt_samples\":%u", r->rtt_samples);
        json_addr("mapped", r->udp ? &r->mapped : NULL);
        json_addr("alternate", r->alt ? &r->alt_addr : NULL);
        printf(",\"nat\":%s,\"mapping\":\"%s\",\"filtering\":\"%s\",\"ports\":\"%s\"}",
               !r->udp  ? "null"
               : r->nat ? "true"
                        : "false",
               wzp_nc_mapping_name(r->mapping), wzp_nc_filtering_name(r->filtering),
               wzp_nc_ports_name(r->ports));
        if (!nat4 && r->udp && wzp_addr_family(&p->relay) == AF_INET)
            nat4 = p;
    }
    printf("]");
    /* The IPv4 NAT is what matters for most peers; IPv6 is usually not translated. */
    const probe *nat = nat4 ? nat4 : n && ps[0].res.udp ? &ps[0] : NULL;
    if (nat)
        printf(",\"nat\":{\"present\":%s,\"mapping\":\"%s\",\"filtering\":\"%s\",\"ports\":\"%s\"}",
               nat->res.nat ? "true" : "false", wzp_nc_mapping_name(nat->res.mapping),
               wzp_nc_filtering_name(nat->res.filtering), wzp_nc_ports_name(nat->res.ports));
    else
        printf(",\"nat\":null");
    bool relay6 = false, tried6 = false;
    for (size_t i = 0; i < n; i++)
        if (wzp_addr_family(&ps[i].relay) == AF_INET6) {
            tried6 = true;
            relay6 |= ps[i].res.udp;
        }
    char ip[WZP_ADDR_STRLEN];
    printf(",\"ipv6\":{\"local\":%s,\"address\":", v6 ? "true" : "false");
    if (v6)
        phone_json_str(stdout, ip_text(&v6->addr, ip, sizeof(ip)));
    else
        printf("null");
    printf(",\"relay\":%s}", tried6 ? (relay6 ? "true" : "false") : "null");
    if (rep->portmap) {
        printf(",\"portmap\":{\"gateway\":");
        if (pm->gateway[0])
            phone_json_str(stdout, pm->gateway);
        else
            printf("null");
        printf(",\"pcp\":%s,\"natpmp\":%s,\"upnp\":%s", pm->pcp ? "true" : "false",
               pm->natpmp ? "true" : "false", pm->upnp ? "true" : "false");
        printf("}");
    } else {
        printf(",\"portmap\":null");
    }
    const doctor_quic *q = &rep->quic;
    if (q->tried) {
        printf(",\"quic\":{\"ok\":%s,\"pin\":\"%s\"", q->ok ? "true" : "false",
               q->pin_mismatch ? "mismatch"
               : !rep->pinned  ? "none"
               : q->ok         ? "match"
                               : "unknown");
        print_ms("handshake_ms", q->handshake, q->ok);
        printf(",\"fingerprint\":");
        if (q->fp[0])
            phone_json_str(stdout, q->fp);
        else
            printf("null");
        printf(",\"error\":");
        if (q->detail[0])
            phone_json_str(stdout, q->detail);
        else
            printf("null");
        printf("}");
    } else {
        printf(",\"quic\":null");
    }
    const doctor_tcp *t = &rep->tcp;
    if (t->tried) {
        printf(",\"tcp_fallback\":{\"port\":%u,\"ok\":%s,\"connected\":%s,\"pin_mismatch\":%s",
               t->port, t->ok ? "true" : "false", t->connected ? "true" : "false",
               t->pin_mismatch ? "true" : "false");
        if (t->connected)
            printf(",\"connect_ms\":%.1f", (double)t->connect / 1e6);
        if (t->ok)
            printf(",\"handshake_ms\":%.1f", (double)t->handshake / 1e6);
        printf(",\"error\":");
        if (t->detail[0])
            phone_json_str(stdout, t->detail);
        else
            printf("null");
        printf("}");
    } else {
        printf(",\"tcp_fallback\":null");
    }
    printf(",\"more_relays\":[");
    for (size_t i = 0; i < rep->n_more; i++) {
        const other_relay *o = &rep->more[i];
        printf("%s{\"relay\":", i ? "," : "");
        phone_json_str(stdout, o->relay);
        printf(",\"error\":");
        phone_json_str(stdout, o->why[0] ? o->why : o->quic.detail[0] ? o->quic.detail : NULL);
        printf(",\"quic_ok\":%s,\"pin_mismatch\":%s", o->quic.ok ? "true" : "false",
               o->quic.pin_mismatch || o->tcp.pin_mismatch ? "true" : "false");
        print_ms("handshake_ms", o->quic.handshake, o->quic.ok);
        printf(",\"tcp_ok\":%s}", !o->tcp.tried ? "null" : o->tcp.ok ? "true" : "false");
    }
    printf("]}\n");
}

static void print_text(const report *rep)
{
    const probe *ps = rep->ps;
    size_t n = rep->n;
    const wzp_ifaddr *v6 = rep->v6;
    const wzp_portmap_report *pm = &rep->pm;
    char a[WZP_ADDR_STRLEN], b[WZP_ADDR_STRLEN];
    printf("relay %s\n", rep->relay);
    printf("  UDP:             %s\n",
           rep->udp ? "ok (the relay answers STUN)" : "blocked: no answer");
    const probe *nat = NULL;
    for (size_t i = 0; i < n; i++) {
        const probe *p = &ps[i];
        const wzp_natcheck_result *r = &p->res;
        wzp_addr_format(&p->relay, a, sizeof(a));
        if (!p->started)
            printf("  %-16s %s\n", a, p->why);
        else if (!r->udp)
            printf("  %-16s no answer over UDP\n", a);
        else if (r->rtt_samples)
            printf("  %-16s rtt %.2f ms (best of %u; worst %.2f ms)\n", a, (double)r->rtt_min / 1e6,
                   r->rtt_samples, (double)r->rtt_max / 1e6);
        else
            printf("  %-16s answers, rtt unknown (only retransmissions were answered)\n", a);
        if (r->udp && (!nat || (wzp_addr_family(&p->relay) == AF_INET &&
                                wzp_addr_family(&nat->relay) != AF_INET)))
            nat = p;
    }
    if (nat) {
        const wzp_natcheck_result *r = &nat->res;
        const char *fam = wzp_addr_family(&nat->relay) == AF_INET6 ? "IPv6" : "IPv4";
        if (r->nat)
            printf("NAT (%s):        yes: the relay sees us at %s\n", fam,
                   wzp_addr_format(&r->mapped, a, sizeof(a)));
        else
            printf("NAT (%s):        none: the relay sees our own address %s\n", fam,
                   wzp_addr_format(&r->mapped, a, sizeof(a)));
        if (!r->alt)
            printf("  (the relay has no alternate STUN address, --stun-alt: mapping and "
                   "filtering cannot be told)\n");
        else
            printf("  probed via:      %s and %s\n", wzp_addr_format(&nat->relay, a, sizeof(a)),
                   wzp_addr_format(&r->alt_addr, b, sizeof(b)));
        printf("  mapping:         %s\n", mapping_text(r->mapping));
        printf("  filtering:       %s\n", filtering_text(r->filtering));
        printf("  port allocation: %s\n", wzp_nc_ports_name(r->ports));
        printf("  verdict:         %s\n", verdict(r));
    }
    bool relay6 = false, tried6 = false;
    for (size_t i = 0; i < n; i++)
        if (wzp_addr_family(&ps[i].relay) == AF_INET6) {
            tried6 = true;
            relay6 |= ps[i].res.udp;
        }
    printf("IPv6:              %s%s; relay over IPv6: %s\n", v6 ? "this host has " : "no address",
           v6 ? ip_text(&v6->addr, a, sizeof(a)) : "",
           !tried6  ? "the relay has no IPv6 address"
           : relay6 ? "ok"
                    : "no answer");
    if (rep->portmap)
        printf("port mapping:      gateway %s: PCP %s, NAT-PMP %s%s%s, UPnP IGD %s%s%s\n",
               pm->gateway[0] ? pm->gateway : "(none found)", pm->pcp ? "answers" : "no answer",
               pm->natpmp ? "answers" : "no answer", pm->natpmp_public[0] ? " (public " : "",
               pm->natpmp_public[0] ? pm->natpmp_public : "", pm->upnp ? "found" : "none",
               pm->upnp_public[0] ? ", external " : "", pm->upnp_public);
    else
        printf("port mapping:      not probed (--no-portmap)\n");
    const doctor_quic *q = &rep->quic;
    if (q->ok && rep->pinned)
        printf("relay key:         verified: the relay proved the pinned key (QUIC handshake "
               "%.1f ms)\n",
               (double)q->handshake / 1e6);
    else if (q->ok)
        printf("relay key:         not pinned; the relay proved %s (QUIC handshake %.1f ms)\n",
               q->fp, (double)q->handshake / 1e6);
    else if (q->pin_mismatch)
        printf("relay key:         WRONG: the relay at that address presented another key than "
               "the pin\n");
    else if (q->tried)
        printf("relay key:         not checked: %s\n", q->detail);
    const doctor_tcp *t = &rep->tcp;
    if (!t->tried)
        printf("TCP fallback:      not checked: no key to pin it to (give --relay-pin)\n");
    else if (t->ok)
        printf("TCP fallback:      works: TLS to port %u, the relay's key verified (connect %.1f "
               "ms, handshake %.1f ms)\n",
               t->port, (double)t->connect / 1e6, (double)t->handshake / 1e6);
    else if (t->pin_mismatch)
        printf("TCP fallback:      WRONG: port %u presented another key than the relay's\n",
               t->port);
    else
        printf("TCP fallback:      NOT working on port %u: %s\n", t->port, t->detail);
    for (size_t i = 0; i < rep->n_more; i++) {
        const other_relay *o = &rep->more[i];
        printf("also relay %s: ", o->relay);
        if (o->why[0])
            printf("%s\n", o->why);
        else if (o->quic.ok)
            printf("key verified (QUIC handshake %.1f ms); TCP fallback %s\n",
                   (double)o->quic.handshake / 1e6,
                   o->tcp.ok             ? "works"
                   : o->tcp.pin_mismatch ? "WRONG: another key"
                                         : "NOT working");
        else if (o->quic.pin_mismatch)
            printf("WRONG: it presented another key than its pin\n");
        else
            printf("NOT reached: %s\n", o->quic.detail);
    }
}

/* A cluster's other relays (the list after the first), each to its own pin (or the one pin
 * for all). */
static size_t check_more(const char *relays, const char *pins, uint16_t tcp_port, other_relay *out,
                         size_t cap)
{
    const char *r = strchr(relays, ','), *p = pins ? strchr(pins, ',') : NULL;
    size_t n = 0;
    for (; r && n < cap; r = strchr(r + 1, ','), p = p ? strchr(p + 1, ',') : NULL) {
        other_relay *o = &out[n++];
        memset(o, 0, sizeof(*o));
        snprintf(o->relay, sizeof(o->relay), "%.*s", (int)strcspn(r + 1, ","), r + 1);
        const char *pt = p ? p + 1 : pins; /* one pin: for all */
        uint8_t pin[WZP_FINGERPRINT_LEN];
        char pin_text[WZP_FINGERPRINT_STRLEN + 1];
        snprintf(pin_text, sizeof(pin_text), "%.*s", pt ? (int)strcspn(pt, ",") : 0, pt ? pt : "");
        wzp_hostport hp;
        wzp_addr a;
        char why[128];
        if (pt && wzp_fingerprint_parse(pin_text, pin) < 0)
            snprintf(o->why, sizeof(o->why), "its pin is not a fingerprint");
        else if (wzp_hostport_parse(&hp, o->relay, WZP_DEFAULT_RELAY_PORT) < 0)
            snprintf(o->why, sizeof(o->why), "not HOST[:PORT]");
        else if (wzp_resolve(&hp, true, true, &a, 1, why, sizeof(why)) < 1)
            snprintf(o->why, sizeof(o->why), "cannot resolve: %s", why);
        if (o->why[0])
            continue;
        doctor_quic_check(&o->quic, &a, pt ? pin : NULL, QUIC_TIMEOUT);
        if (pt || o->quic.ok) {
            if (!pt)
                wzp_fingerprint_parse(o->quic.fp, pin);
            doctor_tcp_check(&o->tcp, &a, tcp_port ? tcp_port : WZP_DEFAULT_RELAY_TCP_PORT, pin,
                             TCP_TIMEOUT);
        }
    }
    return n;
}

int wzp_cmd_doctor(int argc, char **argv)
{
    static const struct option opts[] = {
        {"relay", required_argument, NULL, 'r'},
        {"relay-pin", required_argument, NULL, 'p'},
        {"home", required_argument, NULL, 'H'},
        {"json", no_argument, NULL, 'j'},
        {"no-portmap", no_argument, NULL, 'P'},
        {"verbose", no_argument, NULL, 'v'},
        {"relay-tcp", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    wzp_client_config cfg = {0};
    session_opts so = {.name = "wzp doctor"};
    bool json = false, portmap = true;
    int c, verbose = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = true;
            break;
        case 'P':
            portmap = false;
            break;
        case 'T':
            if (wzp_opt_port(so.name, "--relay-tcp", optarg, &cfg.relay_tcp_port))
                return WZP_EXIT_USAGE;
            break;
        case 'v':
            verbose++;
            break;
        default:
            if (!wzp_opt_relay(c, optarg, &cfg))
                return wzp_opt_other(c, usage);
        }
    }
    int code = wzp_opt_no_operands(so.name, argc, argv);
    if (code)
        return code;
    wzp_set_log_level(verbose >= 2 ? WZP_LOG_DEBUG : verbose ? WZP_LOG_INFO : WZP_LOG_ERROR);
    wzp_phone_config pc;
    char conf[PATH_MAX];
    if ((code = app_config_load(cfg.home, &pc, conf, sizeof(conf))) != 0 ||
        (code = app_config_apply(&pc, &cfg, &so, false)) != 0)
        return code;
    if (!cfg.relay) {
        fprintf(stderr, "wzp doctor: no relay: give --relay (or set it in %s)\n", conf);
        return WZP_EXIT_USAGE;
    }
    /* A cluster's list (repeated --relay, more_hosts): the first relay gets every check, the
     * others their key and TCP service. */
    static other_relay more[MAX_MORE_RELAYS];
    size_t n_more = check_more(cfg.relay, cfg.relay_pin, cfg.relay_tcp_port, more,
                               sizeof(more) / sizeof(more[0]));
    static char first_relay[1024], first_pin[256];
    snprintf(first_relay, sizeof(first_relay), "%.*s", (int)strcspn(cfg.relay, ","), cfg.relay);
    cfg.relay = first_relay;
    if (cfg.relay_pin) {
        snprintf(first_pin, sizeof(first_pin), "%.*s", (int)strcspn(cfg.relay_pin, ","),
                 cfg.relay_pin);
        cfg.relay_pin = first_pin;
    }
    uint8_t pin[WZP_FINGERPRINT_LEN];
    if (cfg.relay_pin && wzp_fingerprint_parse(cfg.relay_pin, pin) < 0) {
        fprintf(stderr, "wzp doctor: --relay-pin wants a fingerprint, got '%s'\n", cfg.relay_pin);
        return WZP_EXIT_USAGE;
    }
    wzp_hostport hp;
    if (wzp_hostport_parse(&hp, cfg.relay, WZP_DEFAULT_RELAY_PORT) < 0) {
        fprintf(stderr, "wzp doctor: --relay wants HOST[:PORT], got '%s'\n", cfg.relay);
        return WZP_EXIT_USAGE;
    }
    wzp_addr addrs[8];
    char why[256];
    int na = wzp_resolve(&hp, true, true, addrs, 8, why, sizeof(why));
    if (na < 0) {
        fprintf(stderr, "wzp doctor: cannot resolve the relay '%s': %s\n", cfg.relay, why);
        return WZP_EXIT_UNREACHABLE;
    }
    /* The first address of each family: what a client would use. */
    probe ps[MAX_RELAY_ADDRS];
    size_t n = 0;
    for (int fam = 0; fam < 2; fam++)
        for (int i = 0; i < na; i++)
            if (wzp_addr_family(&addrs[i]) == (fam ? AF_INET6 : AF_INET)) {
                memset(&ps[n], 0, sizeof(ps[n]));
                probe_start(&ps[n++], &addrs[i]);
                break;
            }
    report rep = {.relay = cfg.relay,
                  .ps = ps,
                  .n = n,
                  .portmap = portmap,
                  .pinned = cfg.relay_pin != NULL,
                  .more = more,
                  .n_more = n_more};
    pthread_t th;
    bool threaded = portmap && pthread_create(&th, NULL, portmap_thread, &rep.pm) == 0;
    run_probes(ps, n);
    /* The relay's key, over the first address that answered (IPv4 first). */
    for (size_t i = 0; i < n && !rep.quic.tried; i++)
        if (ps[i].res.udp)
            doctor_quic_check(&rep.quic, &ps[i].relay, cfg.relay_pin ? pin : NULL, QUIC_TIMEOUT);
    /* TLS over TCP, pinned to the key given, else to the one QUIC just proved (so only the
     * TCP path is in question). The relay's first address, whether UDP reached it or not. */
    uint8_t tcp_pin[WZP_FINGERPRINT_LEN];
    bool have_pin = false;
    if (cfg.relay_pin) {
        memcpy(tcp_pin, pin, sizeof(tcp_pin));
        have_pin = true;
    } else if (rep.quic.ok) {
        have_pin = wzp_fingerprint_parse(rep.quic.fp, tcp_pin) == 0;
    }
    if (n && have_pin)
        doctor_tcp_check(&rep.tcp, &ps[0].relay,
                         cfg.relay_tcp_port ? cfg.relay_tcp_port : WZP_DEFAULT_RELAY_TCP_PORT,
                         tcp_pin, TCP_TIMEOUT);
    if (threaded)
        pthread_join(th, NULL);

    wzp_ifaddr ifs[32];
    int nif = wzp_ifaddrs_get(ifs, 32, 0);
    const wzp_ifaddr *v6 = NULL;
    for (int i = 0; i < nif && !v6; i++)
        if (wzp_addr_family(&ifs[i].addr) == AF_INET6)
            v6 = &ifs[i];
    rep.v6 = v6;
    for (size_t i = 0; i < n; i++)
        rep.udp |= ps[i].res.udp;
    if (json)
        print_json(&rep);
    else
        print_text(&rep);
    bool more_ok = false, more_wrong = false;
    for (size_t i = 0; i < n_more; i++) {
        more_ok |= more[i].quic.ok || more[i].tcp.ok;
        more_wrong |= more[i].quic.pin_mismatch || more[i].tcp.pin_mismatch;
    }
    /* A cluster works while one relay does; a wrong key anywhere is an attack or a typo. */
    return rep.quic.pin_mismatch || rep.tcp.pin_mismatch || more_wrong ? WZP_EXIT_RELAY_PIN
           : !rep.udp && !rep.tcp.ok && !more_ok                       ? WZP_EXIT_UNREACHABLE
                                                                       : WZP_EXIT_OK;
}
