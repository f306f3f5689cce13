/* wzp-relay: the rendezvous and forwarding server clients stay registered with. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wzp/identity.h>
#include <wzp/wzp.h>

#include "common/log.h"
#include "metrics_http.h"
#include "common/hostport.h"
#include "relay/server.h"

enum { EXIT_USAGE = 2, EXIT_IDENTITY = 3, EXIT_BIND = 4, EXIT_ALIASES = 5 };

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: wzp-relay [--listen HOST:PORT] [--home DIR] [options]\n"
        "  --listen HOST:PORT     UDP port for QUIC, STUN and relayed frames (0.0.0.0:4433)\n"
        "  --listen6 [HOST]:PORT  also serve IPv6 here (with an IPv4 --listen): dual stack\n"
        "  --listen-tcp HOST:PORT TLS over TCP for clients whose networks drop UDP (default:\n"
        "                         the --listen host, port 443, or any free port when\n"
        "                         --listen asks for port 0; 'none' = off)\n"
        "  --max-tcp-per-ip N     TCP connections per source IPv4 address or IPv6 /64 (16)\n"
        "  --home DIR             identity directory (default $WZP_HOME or ~/.config/wzp)\n"
        "  --workers N            forwarding threads (default: one per core)\n"
        "  --control-shards N     threads for control connections' QUIC and TLS (1-64;\n"
        "                         default 0: one per core; 1: all on the control thread)\n"
        "  --coalesce-us US       under load, wait up to US for more packets per wake-up\n"
        "                         (default 250; 0 = off: lowest latency, most CPU)\n"
        "  --stun-rate N          STUN answers per second per source IPv4 address or IPv6\n"
        "                         /64, burst 2N (10; 0 = no limit): not a reflector\n"
        "  --ring-timeout SEC     unanswered calls expire after this (60)\n"
        "  --max-registrations N  registered identities (100000)\n"
        "  --max-calls N          concurrent calls (100000)\n"
        "  --retry-threshold N    while N connections handshake, new clients first get a\n"
        "                         QUIC Retry (address validation; default 1000, 0 = always,\n"
        "                         'never' = off)\n"
        "  --max-handshakes-per-ip N\n"
        "                         handshaking connections per source IPv4 address or IPv6\n"
        "                         /64 and control shard (16; 0 = no cap)\n"
        "  --max-conns-per-ip N   control connections per source IPv4 address or IPv6 /64,\n"
        "                         registered or not (64; 0 = no cap). Over it: 'relay full'\n"
        "  --park-after MS        a registered client idle this long is offered to park:\n"
        "                         no connection, kept by small keyed pings, woken for a\n"
        "                         call (2000; 0 = never)\n"
        "  --alias-reclaim DURATION\n"
        "                         an alias stays bound to its key this long after the key\n"
        "                         disconnects, across restarts (HOME/aliases): 30d, 12h,\n"
        "                         90m, 45s or seconds; 0 = released at disconnect (30d)\n"
        "  --stun-alt ADDRESS     a second IP address of this host (one per family; may\n"
        "                         be repeated): answers RFC 5780 NAT behaviour discovery\n"
        "                         (wzp doctor) on ADDRESS:PORT and ADDRESS:another port\n"
        "  --metrics HOST:PORT    serve Prometheus metrics at http://HOST:PORT/metrics\n"
        "                         (loopback only unless --metrics-public; port 0: pick one)\n"
        "  --metrics-public       allow --metrics on a non-loopback address (the counters\n"
        "                         show load and usage: firewall it)\n"
        "  --redis URL            join a relay cluster on this Redis server (docs/cluster.md):\n"
        "                         redis://[[USER]:PASSWORD@]HOST[:PORT], HOST:PORT or\n"
        "                         unix:PATH; needs --cluster-key\n"
        "  --redis-user NAME      Redis ACL user (with --redis-password-file)\n"
        "  --redis-password-file FILE\n"
        "                         Redis password, first line of FILE (or $WZP_REDIS_PASSWORD)\n"
        "  --cluster-key FILE     the key the cluster's relays share (32-128 hex digits):\n"
        "                         relay-to-relay messages carry its HMAC\n"
        "  --cluster-addr HOST:PORT\n"
        "                         where other relays reach this one's relay port (default:\n"
        "                         the --listen address, which must then not be 0.0.0.0)\n"
        "  --log-json             log lines as JSON objects (ts, level, tag, msg)\n"
        "  --qlog DIR             write every control connection's qlog into DIR\n"
        "                         (debugging; TLS keys: $SSLKEYLOGFILE)\n"
        "  --verbose, -v          more logging (repeat for more)\n"
        "exit status: 0 stopped by a signal, 2 usage, 3 identity, 4 cannot listen,\n"
        "  5 HOME/aliases unreadable or corrupt (fix or remove it)\n");
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return -1;
    unsigned long v = strtoul(s, &end, 10);
    if (*end || v > max)
        return -1;
    *out = v;
    return 0;
}

/* DURATION: digits with an optional unit s, m, h or d (seconds by default). */
static int parse_duration(const char *s, wzp_ts *out)
{
    char *end;
    if (!s || *s < '0' || *s > '9')
        return -1;
    unsigned long long v = strtoull(s, &end, 10), unit = 1;
    if (*end && end[1])
        return -1;
    switch (*end) {
    case '\0':
    case 's':
        break;
    case 'm':
        unit = 60;
        break;
    case 'h':
        unit = 3600;
        break;
    case 'd':
        unit = 86400;
        break;
    default:
        return -1;
    }
    /* Ten years is plenty and keeps the nanosecond arithmetic far from overflow. */
    if (v > 10ull * 366 * 86400 / unit)
        return -1;
    *out = WZP_SEC(v * unit);
    return 0;
}

/* The first line of a small file (secrets: keys, passwords), without its newline. */
static int read_first_line(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    bool ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    if (!ok)
        return -1;
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

static char *render_metrics(void *user, size_t *len)
{
    return wzp_relay_server_metrics_text(user, len);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},
        {"listen6", required_argument, NULL, '6'},
        {"listen-tcp", required_argument, NULL, 't'},
        {"max-tcp-per-ip", required_argument, NULL, 1001},
        {"home", required_argument, NULL, 'H'},
        {"workers", required_argument, NULL, 'w'},
        {"control-shards", required_argument, NULL, 1002},
        {"coalesce-us", required_argument, NULL, 'c'},
        {"stun-rate", required_argument, NULL, 'S'},
        {"ring-timeout", required_argument, NULL, 'r'},
        {"max-registrations", required_argument, NULL, 'R'},
        {"max-calls", required_argument, NULL, 'C'},
        {"retry-threshold", required_argument, NULL, 'T'},
        {"max-handshakes-per-ip", required_argument, NULL, 'P'},
        {"max-conns-per-ip", required_argument, NULL, 'I'},
        {"alias-reclaim", required_argument, NULL, 'A'},
        {"park-after", required_argument, NULL, 1003},
        {"stun-alt", required_argument, NULL, 'X'},
        {"metrics", required_argument, NULL, 'M'},
        {"metrics-public", no_argument, NULL, 'U'},
        {"redis", required_argument, NULL, 1010},
        {"redis-user", required_argument, NULL, 1011},
        {"redis-password-file", required_argument, NULL, 1012},
        {"cluster-key", required_argument, NULL, 1013},
        {"cluster-addr", required_argument, NULL, 1014},
        {"log-json", no_argument, NULL, 'J'},
        {"qlog", required_argument, NULL, 'Q'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    wzp_relay_server_config cfg;
    wzp_relay_server_config_default(&cfg);
    int verbose = 0, c;
    wzp_addr metrics = {0};
    bool metrics_public = false;
    static char redis_password[256];
    bool tcp_given = false, tcp_off = false;
    unsigned long v;

    /* Our last line may meet a closed stdout pipe: that must not turn a clean exit into a kill. */
    signal(SIGPIPE, SIG_IGN);
    opterr = 0; /* one line of our own instead of getopt's message plus the usage */
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            if (wzp_addr_parse(&cfg.listen, optarg, false) < 0) {
                fprintf(stderr, "wzp-relay: --listen wants a numeric HOST:PORT, got '%s'\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case '6':
            if (wzp_addr_parse(&cfg.listen6, optarg, false) < 0 ||
                wzp_addr_family(&cfg.listen6) != AF_INET6) {
                fprintf(stderr, "wzp-relay: --listen6 wants a numeric [HOST]:PORT, got '%s'\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'H':
            cfg.home = optarg;
            break;
        case 'w':
            if (parse_uint(optarg, 256, &v) < 0) {
                fprintf(stderr, "wzp-relay: --workers wants 0..256\n");
                return EXIT_USAGE;
            }
            cfg.workers = (unsigned)v;
            break;
        case 1002:
            if (parse_uint(optarg, 64, &v) < 0) {
                fprintf(stderr, "wzp-relay: --control-shards wants 0..64\n");
                return EXIT_USAGE;
            }
            cfg.control_shards = (unsigned)v;
            break;
        case 'c':
            if (parse_uint(optarg, 10000, &v) < 0) {
                fprintf(stderr, "wzp-relay: --coalesce-us wants 0..10000\n");
                return EXIT_USAGE;
            }
            cfg.coalesce_us = v == 0 ? -1 : (int)v;
            break;
        case 'S':
            if (parse_uint(optarg, 1000000, &v) < 0) {
                fprintf(stderr, "wzp-relay: --stun-rate wants 0..1000000\n");
                return EXIT_USAGE;
            }
            cfg.stun_rate = v == 0 ? -1 : (int)v;
            break;
        case 'r':
            if (parse_uint(optarg, 86400, &v) < 0 || v == 0) {
                fprintf(stderr, "wzp-relay: --ring-timeout wants 1..86400 seconds\n");
                return EXIT_USAGE;
            }
            cfg.control.ring_timeout = WZP_SEC(v);
            break;
        case 'R':
            if (parse_uint(optarg, 10000000, &v) < 0 || v == 0) {
                fprintf(stderr, "wzp-relay: --max-registrations wants 1..10000000\n");
                return EXIT_USAGE;
            }
            cfg.control.max_registrations = (uint32_t)v;
            cfg.max_conns = (uint32_t)v * 2;
            break;
        case 'C':
            if (parse_uint(optarg, 10000000, &v) < 0 || v == 0) {
                fprintf(stderr, "wzp-relay: --max-calls wants 1..10000000\n");
                return EXIT_USAGE;
            }
            cfg.control.max_calls = (uint32_t)v;
            break;
        case 'T':
            if (strcmp(optarg, "never") == 0) {
                cfg.retry_threshold = WZP_QUIC_RETRY_NEVER;
                break;
            }
            if (parse_uint(optarg, 10000000, &v) < 0) {
                fprintf(stderr, "wzp-relay: --retry-threshold wants 0..10000000 or 'never'\n");
                return EXIT_USAGE;
            }
            cfg.retry_threshold = (size_t)v;
            break;
        case 'P':
            if (parse_uint(optarg, 1000000, &v) < 0) {
                fprintf(stderr, "wzp-relay: --max-handshakes-per-ip wants 0..1000000\n");
                return EXIT_USAGE;
            }
            cfg.max_handshakes_per_addr = (uint32_t)v;
            break;
        case 'I':
            if (parse_uint(optarg, 10000000, &v) < 0) {
                fprintf(stderr, "wzp-relay: --max-conns-per-ip wants 0..10000000\n");
                return EXIT_USAGE;
            }
            cfg.control.max_conns_per_addr = (uint32_t)v;
            break;
        case 1003:
            if (parse_uint(optarg, 86400000, &v) < 0) {
                fprintf(stderr, "wzp-relay: --park-after wants 0..86400000 milliseconds\n");
                return EXIT_USAGE;
            }
            cfg.control.park_after = WZP_MS(v);
            break;
        case 't':
            tcp_given = true;
            tcp_off = strcmp(optarg, "none") == 0;
            if (!tcp_off && wzp_addr_parse(&cfg.listen_tcp, optarg, false) < 0) {
                fprintf(stderr,
                        "wzp-relay: --listen-tcp wants a numeric HOST:PORT or 'none', got '%s'\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 1001:
            if (parse_uint(optarg, 1000000, &v) < 0 || v == 0) {
                fprintf(stderr, "wzp-relay: --max-tcp-per-ip wants 1..1000000\n");
                return EXIT_USAGE;
            }
            cfg.tcp_max_per_addr = (uint32_t)v;
            break;
        case 'A':
            if (parse_duration(optarg, &cfg.control.alias_reclaim) < 0) {
                fprintf(stderr, "wzp-relay: --alias-reclaim wants a duration like 30d, 12h, 90s "
                                "or 0 (at most 10 years)\n");
                return EXIT_USAGE;
            }
            break;
        case 'X': {
            wzp_addr a;
            if (wzp_addr_parse(&a, optarg, true) < 0) {
                fprintf(stderr, "wzp-relay: --stun-alt wants a numeric IP address, got '%s'\n",
                        optarg);
                return EXIT_USAGE;
            }
            *(wzp_addr_family(&a) == AF_INET6 ? &cfg.stun_alt6 : &cfg.stun_alt) = a;
            break;
        }
        case 1010:
            cfg.redis = optarg;
            break;
        case 1011:
            cfg.redis_user = optarg;
            break;
        case 1012:
            if (read_first_line(optarg, redis_password, sizeof(redis_password)) < 0) {
                fprintf(stderr, "wzp-relay: cannot read --redis-password-file '%s': %s\n", optarg,
                        strerror(errno));
                return EXIT_USAGE;
            }
            cfg.redis_password = redis_password;
            break;
        case 1013: {
            char text[256];
            if (read_first_line(optarg, text, sizeof(text)) < 0 ||
                wzp_cluster_key_parse(&cfg.cluster_key, text) < 0) {
                fprintf(stderr,
                        "wzp-relay: --cluster-key '%s' is not a file holding 32 to 128 hex "
                        "digits\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        }
        case 1014:
            if (wzp_addr_parse(&cfg.cluster_addr, optarg, false) < 0 ||
                wzp_addr_is_any(&cfg.cluster_addr)) {
                fprintf(stderr, "wzp-relay: --cluster-addr wants a numeric HOST:PORT, got '%s'\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'M':
            if (wzp_addr_parse(&metrics, optarg, false) < 0) {
                fprintf(stderr, "wzp-relay: --metrics wants a numeric HOST:PORT, got '%s'\n",
                        optarg);
                return EXIT_USAGE;
            }
            cfg.metrics = true;
            break;
        case 'U':
            metrics_public = true;
            break;
        case 'J':
            wzp_set_log_handler(wzp_log_json_handler, stderr);
            break;
        case 'Q':
            cfg.qlog_dir = optarg;
            break;
        case 'v':
            verbose++;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr,
                    "wzp-relay: bad option '%s' (unknown or missing its value); see --help\n",
                    argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (cfg.listen6.len && wzp_addr_family(&cfg.listen) != AF_INET) {
        fprintf(stderr, "wzp-relay: --listen6 goes with an IPv4 --listen\n");
        return EXIT_USAGE;
    }
    /* An alternate STUN address answers "change IP" from the relay port of its family. */
    bool serves4 = wzp_addr_family(&cfg.listen) == AF_INET,
         serves6 = wzp_addr_family(&cfg.listen) == AF_INET6 || cfg.listen6.len;
    if ((cfg.stun_alt.len && !serves4) || (cfg.stun_alt6.len && !serves6)) {
        fprintf(stderr, "wzp-relay: --stun-alt %s needs the relay to listen on that family too\n",
                cfg.stun_alt.len && !serves4 ? "IPv4" : "IPv6");
        return EXIT_USAGE;
    }
    if (cfg.metrics && !metrics_public && !wzp_addr_is_loopback(&metrics)) {
        char text[WZP_ADDR_STRLEN];
        fprintf(stderr,
                "wzp-relay: --metrics %s is not a loopback address; add --metrics-public to "
                "serve the metrics there\n",
                wzp_addr_format(&metrics, text, sizeof(text)));
        return EXIT_USAGE;
    }
    if (cfg.qlog_dir && access(cfg.qlog_dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "wzp-relay: cannot write qlog files into '%s': %s\n", cfg.qlog_dir,
                strerror(errno));
        return EXIT_USAGE;
    }
    if (!cfg.redis_password && getenv("WZP_REDIS_PASSWORD"))
        cfg.redis_password = getenv("WZP_REDIS_PASSWORD");
    if (cfg.redis && !cfg.cluster_key.len) {
        fprintf(stderr, "wzp-relay: --redis needs --cluster-key FILE (shared by the cluster)\n");
        return EXIT_USAGE;
    }
    if (cfg.redis && !cfg.cluster_addr.len && wzp_addr_is_any(&cfg.listen)) {
        fprintf(stderr, "wzp-relay: --redis with a wildcard --listen needs --cluster-addr\n");
        return EXIT_USAGE;
    }
    if (optind != argc) {
        fprintf(stderr, "wzp-relay: unexpected argument '%s'; see --help\n", argv[optind]);
        return EXIT_USAGE;
    }
    wzp_set_log_level(verbose >= 2 ? WZP_LOG_DEBUG : verbose ? WZP_LOG_INFO : WZP_LOG_WARN);

    if (!tcp_given) {
        cfg.listen_tcp = cfg.listen;
        wzp_addr_set_port(&cfg.listen_tcp,
                          wzp_addr_port(&cfg.listen) ? WZP_DEFAULT_RELAY_TCP_PORT : 0);
    } else if (tcp_off) {
        wzp_addr_clear(&cfg.listen_tcp);
    }

    wzp_relay_server *srv;
    int rv = wzp_relay_server_new(&srv, &cfg);
    if (rv == WZP_ERR_IO && !tcp_given) {
        /* The default TCP port may be taken or privileged: the relay still serves UDP. */
        char buf[WZP_ADDR_STRLEN];
        fprintf(stderr, "wzp-relay: no TCP service (cannot listen on %s; see --listen-tcp)\n",
                wzp_addr_format(&cfg.listen_tcp, buf, sizeof(buf)));
        wzp_addr_clear(&cfg.listen_tcp);
        rv = wzp_relay_server_new(&srv, &cfg);
    }
    if (rv < 0) {
        char buf[WZP_ADDR_STRLEN];
        if (rv == WZP_ERR_IDENTITY) {
            fprintf(stderr, "wzp-relay: cannot load or create the identity: %s\n",
                    wzp_strerror(rv));
            return EXIT_IDENTITY;
        }
        if (rv == WZP_ERR_INVALID && cfg.redis) {
            fprintf(stderr, "wzp-relay: bad --redis address '%s' (see --help)\n", cfg.redis);
            return EXIT_USAGE;
        }
        if (rv == WZP_ERR_MALFORMED) {
            fprintf(stderr, "wzp-relay: cannot load the alias bindings file (see above)\n");
            return EXIT_ALIASES;
        }
        fprintf(stderr, "wzp-relay: cannot listen on %s: %s\n",
                wzp_addr_format(&cfg.listen, buf, sizeof(buf)), wzp_strerror(rv));
        return EXIT_BIND;
    }
    uint8_t fp[WZP_FINGERPRINT_LEN];
    char fptext[WZP_FINGERPRINT_STRLEN], addr[WZP_ADDR_STRLEN];
    wzp_metrics_http *http = NULL;
    if (cfg.metrics && (rv = wzp_metrics_http_new(&http, &metrics, render_metrics, srv)) < 0) {
        fprintf(stderr, "wzp-relay: cannot serve metrics on %s: %s\n",
                wzp_addr_format(&metrics, addr, sizeof(addr)),
                rv == WZP_ERR_IO ? strerror(errno) : wzp_strerror(rv));
        wzp_relay_server_free(srv);
        return EXIT_BIND;
    }
    wzp_relay_server_fingerprint(srv, fp);
    wzp_fingerprint_format(fp, fptext, sizeof(fptext));
    /* Stable lines that scripts parse: keep their shape. */
    printf("wzp-relay: listening on %s\n",
           wzp_addr_format(wzp_relay_server_addr(srv), addr, sizeof(addr)));
    if (wzp_relay_server_addr6(srv))
        printf("wzp-relay: listening on %s\n",
               wzp_addr_format(wzp_relay_server_addr6(srv), addr, sizeof(addr)));
    if (http)
        printf("wzp-relay: metrics on http://%s/metrics\n",
               wzp_addr_format(wzp_metrics_http_addr(http), addr, sizeof(addr)));
    if (wzp_relay_server_tcp_addr(srv))
        printf("wzp-relay: tcp %s\n",
               wzp_addr_format(wzp_relay_server_tcp_addr(srv), addr, sizeof(addr)));
    printf("wzp-relay: fingerprint %s\n", fptext);
    fflush(stdout);
    rv = wzp_relay_server_run(srv, true);
    wzp_metrics_http_free(http); /* first: its scrapes read the server */
    wzp_relay_server_free(srv);
    printf("wzp-relay: stopped\n");
    return rv < 0 ? 1 : 0;
}
