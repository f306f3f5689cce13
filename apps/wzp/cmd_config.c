/* wzp config: the settings in effect and where each one comes from. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "appconfig.h"
#include "commands.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: wzp config [--home DIR]\n"
                 "Shows the settings 'wzp call' and 'wzp listen' use when no flag says otherwise,\n"
                 "and where each comes from: $WZP_HOME/config (default ~/.config/wzp/config),\n"
                 "the environment ($WZP_RELAY, $WZP_RELAY_PIN) or the built-in default.\n"
                 "The file (every key optional; ';' starts a comment):\n"
                 "  [relay]\n"
                 "  host = relay.example.org     ; a name or address, optionally :PORT\n"
                 "  port = 4433                  ; default 4433\n"
                 "  pin = FINGERPRINT            ; what wzp-relay prints\n"
                 "  tcp_port = 443               ; its TLS-over-TCP service (default 443)\n"
                 "  transport = auto             ; auto (UDP, TCP in parallel), udp or tcp\n"
                 "  [audio]\n"
                 "  input = DEVICE               ; see 'wzp devices'\n"
                 "  output = DEVICE\n"
                 "  backend = pulse              ; auto, pulse or alsa\n"
                 "  aec = yes                    ; also denoise, agc, dtx: yes or no\n"
                 "  [phone]\n"
                 "  alias = alice                ; registered with the relay\n"
                 "  auto_answer = no             ; wzp listen answers by itself\n"
                 "  ring = yes                   ; ring and ringback tones on the speaker\n");
}

static void row(const char *name, const char *value, const wzp_phone_config *pc, wzp_phone_key k,
                const char *env, const char *path)
{
    if (env) {
        printf("%-12s %-40s (environment %s)\n", name, value, env);
    } else if (k < WZP_PK_COUNT && pc->line[k]) {
        printf("%-12s %-40s (%s:%d)\n", name, value, path, pc->line[k]);
    } else if (k == WZP_PK_RELAY_HOST && pc->line[WZP_PK_RELAY_PORT]) {
        printf("%-12s %-40s (%s:%d)\n", name, value, path, pc->line[WZP_PK_RELAY_PORT]);
    } else {
        printf("%-12s %-40s (default)\n", name, value);
    }
}

static const char *yn(int8_t v, bool dflt)
{
    return (v < 0 ? dflt : v) ? "yes" : "no";
}

int wzp_cmd_config(int argc, char **argv)
{
    static const struct option opts[] = {
        {"home", required_argument, NULL, 'H'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *home = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'H') {
            home = optarg;
        } else if (c == 'h') {
            usage(stdout);
            return WZP_EXIT_OK;
        } else {
            usage(stderr);
            return WZP_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "wzp config: unexpected argument '%s'\n", argv[optind]);
        return WZP_EXIT_USAGE;
    }
    wzp_phone_config pc;
    char path[PATH_MAX];
    int code = app_config_load(home, &pc, path, sizeof(path));
    if (code)
        return code;
    const char *er = getenv("WZP_RELAY"), *ep = getenv("WZP_RELAY_PIN");
    er = er && er[0] ? er : NULL;
    ep = ep && ep[0] ? ep : NULL;
    printf("%-12s %s\n", "file", path);
    row("relay",
        er            ? er
        : pc.relay[0] ? pc.relay
                      : "(none: give --relay)",
        &pc, WZP_PK_RELAY_HOST, er ? "WZP_RELAY" : NULL, path);
    row("relay pin",
        ep                ? ep
        : pc.relay_pin[0] ? pc.relay_pin
                          : "(none: give --relay-pin)",
        &pc, WZP_PK_RELAY_PIN, ep ? "WZP_RELAY_PIN" : NULL, path);
    row("more_hosts", pc.more_hosts[0] ? pc.more_hosts : "(none)", &pc, WZP_PK_RELAY_MORE_HOSTS,
        NULL, path);
    row("more_pins", pc.more_pins[0] ? pc.more_pins : "(pin, for all)", &pc, WZP_PK_RELAY_MORE_PINS,
        NULL, path);
    char tcp_port[8];
    snprintf(tcp_port, sizeof(tcp_port), "%u", pc.relay_tcp_port ? pc.relay_tcp_port : 443u);
    row("tcp_port", tcp_port, &pc, WZP_PK_RELAY_TCP_PORT, NULL, path);
    static const char *const transports[] = {"auto", "udp", "tcp"};
    row("transport", transports[pc.relay_transport >= 0 ? pc.relay_transport : 0], &pc,
        WZP_PK_RELAY_TRANSPORT, NULL, path);
    row("alias", pc.alias[0] ? pc.alias : "(none)", &pc, WZP_PK_PHONE_ALIAS, NULL, path);
    row("auto_answer", yn(pc.auto_answer, false), &pc, WZP_PK_PHONE_AUTO_ANSWER, NULL, path);
    row("ring", yn(pc.ring, true), &pc, WZP_PK_PHONE_RING, NULL, path);
    row("input", pc.input[0] ? pc.input : "(system default)", &pc, WZP_PK_AUDIO_INPUT, NULL, path);
    row("output", pc.output[0] ? pc.output : "(system default)", &pc, WZP_PK_AUDIO_OUTPUT, NULL,
        path);
    row("backend", pc.backend[0] ? pc.backend : "auto", &pc, WZP_PK_AUDIO_BACKEND, NULL, path);
    row("aec", yn(pc.aec, true), &pc, WZP_PK_AUDIO_AEC, NULL, path);
    row("denoise", yn(pc.denoise, true), &pc, WZP_PK_AUDIO_DENOISE, NULL, path);
    row("agc", yn(pc.agc, true), &pc, WZP_PK_AUDIO_AGC, NULL, path);
    row("dtx", yn(pc.dtx, true), &pc, WZP_PK_AUDIO_DTX, NULL, path);
    row("portmap", yn(pc.portmap, true), &pc, WZP_PK_NETWORK_PORTMAP, NULL, path);
    return WZP_EXIT_OK;
}
