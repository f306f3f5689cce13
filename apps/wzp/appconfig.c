/* The settings file for the commands: see appconfig.h. */
#include "appconfig.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/identity.h>

#include "commands.h"

int app_config_load(const char *home, wzp_phone_config *pc, char *path, size_t pathlen)
{
    char dir[PATH_MAX];
    wzp_phone_config_init(pc);
    snprintf(path, pathlen, "$WZP_HOME/config");
    if (home)
        snprintf(dir, sizeof(dir), "%s", home);
    else if (wzp_identity_default_dir(dir, sizeof(dir)) < 0)
        return 0; /* no home at all: no settings either (the identity check says why) */
    if ((size_t)snprintf(path, pathlen, "%s/config", dir) >= pathlen)
        return 0;
    int line = 0;
    char why[WZP_PHONE_CONFIG_ERR_MAX];
    int rc = wzp_phone_config_load(pc, path, &line, why, sizeof(why));
    if (rc >= 0)
        return 0;
    if (line)
        fprintf(stderr, "wzp: %s:%d: %s\n", path, line, why);
    else
        fprintf(stderr, "wzp: %s: %s\n", path, why);
    return WZP_EXIT_CONFIG;
}

int app_config_apply(const wzp_phone_config *pc, wzp_client_config *cfg, session_opts *so,
                     bool listen)
{
    const char *env_relay = getenv("WZP_RELAY"), *env_pin = getenv("WZP_RELAY_PIN");
    /* The settings file's cluster: host, then more_hosts; pin, then more_pins (or pin for all).
     * One command per process: static. */
    static char relays[sizeof(pc->relay) + sizeof(pc->more_hosts) + 2];
    static char pins[sizeof(pc->relay_pin) + sizeof(pc->more_pins) + 2];
    bool file_relay = !cfg->relay && !(env_relay && env_relay[0]) && pc->relay[0];
    bool file_pin = !cfg->relay_pin && !(env_pin && env_pin[0]) && pc->relay_pin[0];
    if (!cfg->relay)
        cfg->relay = env_relay && env_relay[0] ? env_relay : pc->relay[0] ? pc->relay : NULL;
    if (!cfg->relay_pin)
        cfg->relay_pin = env_pin && env_pin[0] ? env_pin : pc->relay_pin[0] ? pc->relay_pin : NULL;
    if (file_relay && pc->more_hosts[0]) {
        snprintf(relays, sizeof(relays), "%s,%s", pc->relay, pc->more_hosts);
        cfg->relay = relays;
    }
    if (file_relay && file_pin && pc->more_pins[0]) {
        snprintf(pins, sizeof(pins), "%s,%s", pc->relay_pin, pc->more_pins);
        cfg->relay_pin = pins;
    }
    if (!cfg->alias && pc->alias[0])
        cfg->alias = pc->alias;
    if (!cfg->relay_tcp_port)
        cfg->relay_tcp_port = pc->relay_tcp_port;
    if (!so->transport_given && pc->relay_transport >= 0)
        cfg->relay_transport = (wzp_relay_transport)pc->relay_transport;
    wzp_audio_config *a = &so->audio;
    if (!a->input && pc->input[0])
        a->input = pc->input;
    if (!a->output && pc->output[0])
        a->output = pc->output;
    if (!a->backend && pc->backend[0])
        a->backend = pc->backend;
    /* The flags only turn stages off: off in either place is off. */
    a->aec = a->aec && pc->aec != 0;
    a->denoise = a->denoise && pc->denoise != 0;
    a->agc = a->agc && pc->agc != 0;
    a->dtx = a->dtx && pc->dtx != 0;
    so->ring = so->ring && pc->ring != 0;
    cfg->portmap_disabled = cfg->portmap_disabled || pc->portmap == 0;
    if (listen && pc->auto_answer == 1)
        so->auto_answer = true;
    return 0;
}
