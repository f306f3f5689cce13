/* wzp listen / call / reflect: one client, one relay; call takes part in one call, listen in
 * one after another (one with --once). Every call is recorded in the history. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wzp/client.h>
#include <wzp/identity.h>

#include "appconfig.h"
#include "commands.h"
#include "common/log.h"
#include "opts.h"
#include "phone.h"
#include "session.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

enum { CMD_LISTEN, CMD_CALL, CMD_REFLECT };

static void usage(FILE *out, int cmd)
{
    const char *common =
        "  --relay HOST[:PORT]    the relay: host name or address, port 4433 by default\n"
        "                         (else $WZP_RELAY, else [relay] host in the config file);\n"
        "                         a cluster: repeat it or give a comma list, the client homes\n"
        "                         on the lowest RTT and moves when its relay fails\n"
        "  --relay-pin FP         the relay's fingerprint (wzp-relay prints it; else\n"
        "                         $WZP_RELAY_PIN, else [relay] pin in the config file);\n"
        "                         one per --relay, in the same order (or one for all)\n"
        "  --relay-tcp PORT       the relay's TLS-over-TCP service, for networks that drop\n"
        "                         UDP (default 443 on the relay's host)\n"
        "  --relay-transport udp|tcp|auto\n"
        "                         how to reach the relay (auto: UDP and TCP in parallel,\n"
        "                         UDP preferred; calls move back to UDP when it works again)\n"
        "  --home DIR             identity directory (default $WZP_HOME, else ~/.config/wzp)\n"
        "  --alias NAME           register under this alias too\n"
        "  --bind HOST:PORT       local IPv4 address (default 0.0.0.0:0)\n"
        "  --bind6 [HOST]:PORT    local IPv6 address (default [::]:0; \"\" for none)\n"
        "  --json                 one JSON object per line per event, then a summary\n"
        "  --log-json             log lines (-v) as JSON objects on stderr\n"
        "  --qlog DIR             write each QUIC connection's qlog into DIR (debugging;\n"
        "                         else $WZP_QLOG_DIR; TLS keys go to $SSLKEYLOGFILE)\n"
        "  --verbose, -v          log more (repeat for more)\n";
    const char *media =
        "  --send FILE            send this audio file (any format libsndfile reads)\n"
        "  --tone HZ              send a sine tone instead (20..20000 Hz)\n"
        "  --record FILE.wav      record what the peer sends (48 kHz mono WAV; checked\n"
        "                         before the call, written when it ends)\n"
        "  --duration SECONDS     hang up this long after the call is up (up to a week)\n"
        "Without --send/--tone the microphone is sent; without --record the speaker plays.\n"
        "  --input DEVICE         microphone (default: the system's; see 'wzp devices')\n"
        "  --output DEVICE        speaker (default: the system's)\n"
        "  --audio-backend NAME   pulse or alsa (default: PulseAudio if a server answers)\n"
        "  --no-audio             no sound devices: send silence, play nothing\n"
        "  --no-aec, --no-denoise, --no-agc, --no-dtx\n"
        "                         turn off echo cancellation, noise suppression, automatic\n"
        "                         gain, or silence suppression (DTX with comfort noise)\n"
        "  --no-ring              no ring or ringback tone on the speaker ([phone] ring)\n"
        "  --no-adapt             fixed codec settings: no adaptation to the peer's\n"
        "                         reports, no redundancy (a reference for comparisons)\n"
        "  --parity               against loss bursts, send XOR parity over earlier frames\n"
        "                         instead of copies of them (for comparisons)\n"
        "  --no-direct            never try a direct path (always through the relay)\n"
        "  --no-portmap           do not ask the gateway (NAT-PMP, UPnP) to map the call\n"
        "                         socket ([network] portmap = no)\n"
        "  --birthday-socks N     extra UDP sockets for direct calls from behind a\n"
        "                         symmetric NAT (0..256, default 256; 0: none)\n"
        "  --loopback-candidates  offer only loopback addresses (tests on one host)\n"
        "Defaults for the relay, alias, devices and processing come from $WZP_HOME/config\n"
        "(see 'wzp config'); flags override it.\n";
    switch (cmd) {
    case CMD_LISTEN:
        fprintf(
            out,
            "usage: wzp listen [--relay HOST[:PORT] --relay-pin FP] [--auto-answer] [options]\n"
            "Stays registered and takes calls one after another until Ctrl-C; a caller\n"
            "while a call is on is turned away as busy. Every call goes into 'wzp history'.\n"
            "  --auto-answer          answer incoming calls (else calls are rejected;\n"
            "                         [phone] auto_answer = yes in the config)\n"
            "  --once                 take one call and exit when it ends (its exit code)\n%s%s",
            common, media);
        break;
    case CMD_CALL:
        fprintf(out,
                "usage: wzp call PEER [--relay HOST[:PORT] --relay-pin FP] [options]\n"
                "PEER is a contact (its key is dialled; see 'wzp contacts'), an invite (its key,\n"
                "relay and pin), a fingerprint or an alias. A contact or invite with a relay\n"
                "(or the settings file) needs no --relay. Without --duration the call lasts until "
                "the file is sent,\n"
                "the peer hangs up or Ctrl-C.\n%s%s",
                common, media);
        break;
    default:
        fprintf(out,
                "usage: wzp reflect [--relay HOST[:PORT] --relay-pin FP] [--json]\n"
                "Prints the address the relay sees this host at.\n%s",
                common);
    }
}

/* Named devices and backends are checked before the relay is contacted: a typo is a clear
 * error, not a call that silently uses another device. */
static int check_devices(const char *cmd, const session_opts *so)
{
    const wzp_audio_config *a = &so->audio;
    if (a->backend && strcmp(a->backend, "pulse") && strcmp(a->backend, "alsa") &&
        strcmp(a->backend, "auto")) {
        fprintf(stderr, "%s: --audio-backend wants pulse or alsa, got '%s'\n", cmd, a->backend);
        return WZP_EXIT_USAGE;
    }
    if (so->no_audio || (!a->input && !a->output))
        return 0;
    enum { MAX = 256 };
    wzp_audio_device *devs = calloc(MAX, sizeof(*devs));
    if (!devs)
        return WZP_EXIT_FAILURE;
    const char *used = NULL;
    int n = wzp_audio_list_devices(a->backend, devs, MAX, &used);
    int code = 0;
    if (n < 0) {
        fprintf(stderr, "%s: no sound system to open --input/--output on (%s)\n", cmd,
                wzp_strerror(n));
        code = WZP_EXIT_AUDIO;
    }
    const char *want[2] = {a->input, a->output};
    for (int k = 0; k < 2 && !code; k++) {
        bool found = !want[k];
        for (int i = 0; i < n && i < MAX && !found; i++)
            found = devs[i].input == (k == 0) && !strcmp(devs[i].name, want[k]);
        if (!found) {
            fprintf(stderr, "%s: no %s device '%s' in %s (see 'wzp devices')\n", cmd,
                    k == 0 ? "input" : "output", want[k], used);
            code = WZP_EXIT_AUDIO;
        }
    }
    free(devs);
    return code;
}

static int run(int cmd, int argc, char **argv)
{
    static const struct option opts[] = {
        {"relay", required_argument, NULL, 'r'},
        {"relay-pin", required_argument, NULL, 'p'},
        {"home", required_argument, NULL, 'H'},
        {"alias", required_argument, NULL, 'a'},
        {"bind", required_argument, NULL, 'b'},
        {"bind6", required_argument, NULL, 'B'},
        {"json", no_argument, NULL, 'j'},
        {"auto-answer", no_argument, NULL, 'A'},
        {"send", required_argument, NULL, 's'},
        {"tone", required_argument, NULL, 't'},
        {"record", required_argument, NULL, 'R'},
        {"duration", required_argument, NULL, 'd'},
        {"no-direct", no_argument, NULL, 'n'},
        {"loopback-candidates", no_argument, NULL, 'L'},
        {"input", required_argument, NULL, 'I'},
        {"output", required_argument, NULL, 'O'},
        {"audio-backend", required_argument, NULL, 'K'},
        {"no-audio", no_argument, NULL, 'N'},
        {"no-aec", no_argument, NULL, 1001},
        {"no-denoise", no_argument, NULL, 1002},
        {"no-agc", no_argument, NULL, 1003},
        {"no-dtx", no_argument, NULL, 1004},
        {"no-adapt", no_argument, NULL, 1020},
        {"no-portmap", no_argument, NULL, 1021},
        {"parity", no_argument, NULL, 1022},
        {"birthday-socks", required_argument, NULL, 1040},
        {"once", no_argument, NULL, 1005},
        {"no-ring", no_argument, NULL, 1006},
        {"log-json", no_argument, NULL, 1007},
        {"qlog", required_argument, NULL, 1008},
        {"relay-tcp", required_argument, NULL, 1009},
        {"relay-transport", required_argument, NULL, 1010},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *names[] = {"wzp listen", "wzp call", "wzp reflect"};
    int code;
    session_opts so = {.name = names[cmd], .ring = true};
    wzp_audio_config_default(&so.audio);
    wzp_client_config cfg = {0};
    cfg.birthday_socks = 256; /* the birthday paradox needs many; see docs/client.md */
    int c, verbose = 0;
    bool once = false;
    optind = 1;
    while ((c = getopt_long(argc, argv, "vh", opts, NULL)) != -1) {
        switch (c) {
        case 'a':
            cfg.alias = optarg;
            break;
        case 'b':
            cfg.bind_v4 = optarg;
            break;
        case 'B':
            cfg.bind_v6 = optarg;
            break;
        case 'j':
            so.json = true;
            break;
        case 'A':
            so.auto_answer = true;
            break;
        case 's':
            so.source = SRC_FILE;
            so.send_file = optarg;
            break;
        case 't':
            so.source = SRC_TONE;
            if (wzp_opt_double(so.name, "--tone", optarg, WZP_OPT_TONE_MIN_HZ, WZP_OPT_TONE_MAX_HZ,
                               "a frequency in 20..20000 Hz", &so.tone_hz))
                return WZP_EXIT_USAGE;
            break;
        case 'R':
            so.record_file = optarg;
            break;
        case 'd':
            if (wzp_opt_double(so.name, "--duration", optarg, WZP_OPT_DURATION_MIN_S,
                               WZP_OPT_DURATION_MAX_S, "0.02..604800 seconds (up to a week)",
                               &so.duration_s))
                return WZP_EXIT_USAGE;
            break;
        case 'n':
            cfg.direct_disabled = true;
            break;
        case 1020:
            cfg.adaptation_disabled = true;
            break;
        case 1021:
            cfg.portmap_disabled = true;
            break;
        case 1022:
            cfg.parity_repair = true;
            break;
        case 1040: {
            double n;
            if (wzp_opt_double(so.name, "--birthday-socks", optarg, 0, 256, "0..256", &n))
                return WZP_EXIT_USAGE;
            cfg.birthday_socks = (unsigned)n;
            break;
        }
        case 'L':
            cfg.host_candidates_loopback = true;
            break;
        case 'I':
            so.audio.input = optarg;
            break;
        case 'O':
            so.audio.output = optarg;
            break;
        case 'K':
            so.audio.backend = optarg;
            break;
        case 'N':
            so.no_audio = true;
            break;
        case 1001:
            so.audio.aec = false;
            break;
        case 1002:
            so.audio.denoise = false;
            break;
        case 1003:
            so.audio.agc = false;
            break;
        case 1004:
            so.audio.dtx = false;
            break;
        case 1005:
            if (cmd != CMD_LISTEN) {
                fprintf(stderr, "%s: --once is for wzp listen\n", so.name);
                return WZP_EXIT_USAGE;
            }
            once = true;
            break;
        case 1006:
            so.ring = false;
            break;
        case 1007:
            wzp_set_log_handler(wzp_log_json_handler, stderr);
            break;
        case 1008:
            cfg.qlog_dir = optarg;
            break;
        case 1009:
            if (wzp_opt_port(so.name, "--relay-tcp", optarg, &cfg.relay_tcp_port))
                return WZP_EXIT_USAGE;
            break;
        case 1010:
            so.transport_given = true;
            if (strcmp(optarg, "auto") == 0) {
                cfg.relay_transport = WZP_RELAY_TRANSPORT_AUTO;
            } else if (strcmp(optarg, "udp") == 0) {
                cfg.relay_transport = WZP_RELAY_TRANSPORT_UDP;
            } else if (strcmp(optarg, "tcp") == 0) {
                cfg.relay_transport = WZP_RELAY_TRANSPORT_TCP;
            } else {
                fprintf(stderr, "%s: --relay-transport wants udp, tcp or auto, got '%s'\n", so.name,
                        optarg);
                return WZP_EXIT_USAGE;
            }
            break;
        case 'v':
            verbose++;
            break;
        case 'h':
            usage(stdout, cmd);
            return WZP_EXIT_OK;
        default:
            if (wzp_opt_relay(c, optarg, &cfg))
                break;
            usage(stderr, cmd);
            return WZP_EXIT_USAGE;
        }
    }
    const char *peer = NULL;
    if (cmd == CMD_CALL) {
        if (optind >= argc) {
            fprintf(stderr, "wzp call: which peer? (a contact, invite, fingerprint or alias)\n");
            usage(stderr, cmd);
            return WZP_EXIT_USAGE;
        }
        peer = argv[optind++];
    }
    if (optind != argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", so.name, argv[optind]);
        return WZP_EXIT_USAGE;
    }
    if (!cfg.qlog_dir && getenv("WZP_QLOG_DIR") && getenv("WZP_QLOG_DIR")[0])
        cfg.qlog_dir = getenv("WZP_QLOG_DIR");
    if (cfg.qlog_dir && access(cfg.qlog_dir, W_OK | X_OK) != 0) {
        fprintf(stderr, "%s: cannot write qlog files into '%s': %s\n", so.name, cfg.qlog_dir,
                strerror(errno));
        return WZP_EXIT_USAGE;
    }
    /* Flags beat an invite's or a contact's relay; those beat the settings file's. */
    bool relay_flags = cfg.relay || cfg.relay_pin;
    wzp_phone_config pc; /* outlives cfg and so: they point into it */
    char conf[PATH_MAX];
    if ((code = app_config_load(cfg.home, &pc, conf, sizeof(conf))) != 0 ||
        (code = app_config_apply(&pc, &cfg, &so, cmd == CMD_LISTEN)) != 0)
        return code;
    char home[PATH_MAX], why[2 * PATH_MAX + 128];
    if (cfg.home)
        snprintf(home, sizeof(home), "%s", cfg.home);
    /* Contacts name callers and turn PEER into a key; static: lives as long as the client. */
    static wzp_contacts contacts;
    static phone_target target;
    if (cmd != CMD_REFLECT && (cfg.home || wzp_identity_default_dir(home, sizeof(home)) == 0)) {
        if ((code = phone_load_contacts(so.name, home, &contacts)) != 0)
            return code;
        so.contacts = &contacts;
        so.history_dir = home;
    }
    if (peer) {
        code = phone_resolve(so.name, peer, &contacts, cfg.relay || cfg.relay_pin, &target);
        if (code)
            return code;
        peer = target.peer;
        so.peer_label = target.label;
        so.contact = target.contact[0] ? target.contact : NULL;
        so.contact_alias = target.contact_alias[0] ? target.contact_alias : NULL;
        if (!relay_flags && target.relay[0]) {
            cfg.relay = target.relay;
            cfg.relay_pin = target.relay_pin;
        }
    }
    if (!cfg.relay || !cfg.relay_pin) {
        fprintf(stderr, "%s: no relay: give --relay and --relay-pin (or set them in %s)\n", so.name,
                conf);
        return WZP_EXIT_USAGE;
    }
    /* A certificate without its key: say so in one line (the client would only say "identity"). */
    if ((cfg.home || wzp_identity_default_dir(home, sizeof(home)) == 0) &&
        wzp_identity_check_dir(home, why, sizeof(why))) {
        fprintf(stderr, "%s: %s\n", so.name, why);
        return WZP_EXIT_IDENTITY;
    }
    if (cmd != CMD_REFLECT && (code = check_devices(so.name, &so)) != 0)
        return code;
    wzp_set_log_level(verbose >= 2 ? WZP_LOG_DEBUG : verbose ? WZP_LOG_INFO : WZP_LOG_ERROR);
    so.status_line = !so.json && cmd != CMD_REFLECT && isatty(STDERR_FILENO);
    so.ask = cmd == CMD_LISTEN && !so.auto_answer && isatty(STDIN_FILENO);
    /* Keys only where someone types them: scripts (--json, pipes) keep stdin as it is. */
    so.keys = !so.json && cmd != CMD_REFLECT && isatty(STDIN_FILENO);
    /* Rings are for a person at a terminal, and only on the speaker the call itself uses. */
    so.ring = so.ring && so.status_line && so.keys && !so.no_audio && !so.record_file;

    session s;
    session_init(&s, &so);
    code = session_load_audio(&s);
    if (code) {
        session_finish(&s, code);
        return code;
    }
    catch_signals();
    code = session_start(&s, &cfg);
    uint8_t own[WZP_FINGERPRINT_LEN], want[WZP_FINGERPRINT_LEN];
    /* Before dialing: the relay would only answer "invalid argument". Compared as bytes,
     * so any spelling of the fingerprint (case, dashes) counts. */
    if (!code && peer && wzp_fingerprint_parse(peer, want) == 0 &&
        wzp_fingerprint_parse(wzp_client_fingerprint(s.client), own) == 0 &&
        !memcmp(own, want, sizeof(own))) {
        fprintf(stderr, "%s: you cannot call yourself (that is this identity's fingerprint)\n",
                so.name);
        code = WZP_EXIT_USAGE;
    }
    if (!code)
        code = session_wait_registered(&s);
    if (code) {
        if (cmd == CMD_CALL && s.client && code != WZP_EXIT_USAGE)
            session_record(&s, code, peer); /* a call that could not be placed */
        return session_finish(&s, code);
    }
    if (cmd == CMD_REFLECT) {
        if (so.json)
            printf("{\"event\":\"reflexive\",\"address\":\"%s\"}\n", s.reflexive);
        else
            printf("%s\n", s.reflexive);
        return session_finish(&s, WZP_EXIT_OK);
    }
    if (!so.json)
        printf("registered as %s%s%s\n", wzp_client_fingerprint(s.client),
               cfg.alias ? " alias " : "", cfg.alias ? cfg.alias : "");
    fflush(stdout);
    for (;;) {
        code = cmd == CMD_CALL ? session_run_call(&s, peer, &interrupted)
                               : session_run_listen(&s, &interrupted);
        bool had_call = s.call != NULL;
        if (had_call && (so.json || s.active))
            session_summary(&s, code);
        session_record(&s, code, peer);
        /* Listening on: a call's own failure is in its summary and history, not the exit. */
        if (cmd == CMD_CALL || once || !had_call || interrupted)
            break;
        session_next_call(&s);
        if (!so.json)
            fflush(stdout);
    }
    if (cmd == CMD_LISTEN && !once && interrupted)
        code = WZP_EXIT_OK;
    return session_finish(&s, code);
}

int wzp_cmd_listen(int argc, char **argv)
{
    return run(CMD_LISTEN, argc, argv);
}

int wzp_cmd_call(int argc, char **argv)
{
    return run(CMD_CALL, argc, argv);
}

int wzp_cmd_reflect(int argc, char **argv)
{
    return run(CMD_REFLECT, argc, argv);
}
