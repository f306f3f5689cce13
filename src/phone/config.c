/* The phone's settings file: see config.h. */
#include "phone/config.h"

#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <wzp/client.h>
#include <wzp/wzp.h>

typedef enum kind {
    K_HOST,
    K_PORT,
    K_PIN,
    K_MORE_HOSTS,
    K_MORE_PINS,
    K_TCP_PORT,
    K_TRANSPORT,
    K_DEVICE,
    K_BACKEND,
    K_BOOL,
    K_ALIAS
} kind;

static const struct key {
    const char *section, *name;
    kind kind;
} keys[WZP_PK_COUNT] = {
    [WZP_PK_RELAY_HOST] = {"relay", "host", K_HOST},
    [WZP_PK_RELAY_PORT] = {"relay", "port", K_PORT},
    [WZP_PK_RELAY_PIN] = {"relay", "pin", K_PIN},
    [WZP_PK_RELAY_TCP_PORT] = {"relay", "tcp_port", K_TCP_PORT},
    [WZP_PK_RELAY_TRANSPORT] = {"relay", "transport", K_TRANSPORT},
    [WZP_PK_RELAY_MORE_HOSTS] = {"relay", "more_hosts", K_MORE_HOSTS},
    [WZP_PK_RELAY_MORE_PINS] = {"relay", "more_pins", K_MORE_PINS},
    [WZP_PK_AUDIO_INPUT] = {"audio", "input", K_DEVICE},
    [WZP_PK_AUDIO_OUTPUT] = {"audio", "output", K_DEVICE},
    [WZP_PK_AUDIO_BACKEND] = {"audio", "backend", K_BACKEND},
    [WZP_PK_AUDIO_AEC] = {"audio", "aec", K_BOOL},
    [WZP_PK_AUDIO_DENOISE] = {"audio", "denoise", K_BOOL},
    [WZP_PK_AUDIO_AGC] = {"audio", "agc", K_BOOL},
    [WZP_PK_AUDIO_DTX] = {"audio", "dtx", K_BOOL},
    [WZP_PK_PHONE_ALIAS] = {"phone", "alias", K_ALIAS},
    [WZP_PK_PHONE_AUTO_ANSWER] = {"phone", "auto_answer", K_BOOL},
    [WZP_PK_PHONE_RING] = {"phone", "ring", K_BOOL},
    [WZP_PK_NETWORK_PORTMAP] = {"network", "portmap", K_BOOL},
};

const char *wzp_phone_key_name(wzp_phone_key k)
{
    return k < WZP_PK_COUNT ? keys[k].name : "";
}

const char *wzp_phone_key_section(wzp_phone_key k)
{
    return k < WZP_PK_COUNT ? keys[k].section : "";
}

void wzp_phone_config_init(wzp_phone_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->aec = cfg->denoise = cfg->agc = cfg->dtx = cfg->auto_answer = cfg->ring = cfg->portmap =
        -1;
    cfg->relay_transport = -1;
}

/* The parse in progress: the text left, the line inih is on, the first error. */
typedef struct parser {
    wzp_phone_config *cfg;
    const char *p;
    size_t left;
    int line;
    int err_line; /* 0: none yet */
    char *err;
    size_t errlen;
    bool host_has_port;
} parser;

static void fail(parser *ps, const char *fmt, ...)
{
    if (ps->err_line)
        return; /* the first error is the one reported */
    ps->err_line = ps->line;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ps->err, ps->errlen, fmt, ap);
    va_end(ap);
}

static bool known_section(const char *name, size_t n)
{
    for (size_t i = 0; i < WZP_PK_COUNT; i++)
        if (strlen(keys[i].section) == n && !memcmp(keys[i].section, name, n))
            return true;
    return false;
}

/* inih's fgets-style reader over our buffer. It also counts lines (the handler's errors
 * carry them) and checks section names, which inih passes to no handler. */
static char *reader(char *str, int num, void *stream)
{
    parser *ps = stream;
    if (ps->left == 0 || num < 2)
        return NULL;
    const char *nl = memchr(ps->p, '\n', ps->left);
    size_t line_len = nl ? (size_t)(nl - ps->p) + 1 : ps->left;
    ps->line++;
    size_t n = line_len;
    if (n > (size_t)num - 1) {
        fail(ps, "line too long (at most %d characters)", num - 3);
        n = (size_t)num - 1;
    }
    memcpy(str, ps->p, n);
    str[n] = '\0';
    ps->p += line_len; /* the rest of an over-long line is dropped, not read as a line */
    ps->left -= line_len;
    const char *s = str;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '[') {
        const char *end = strchr(s, ']');
        if (end && !known_section(s + 1, (size_t)(end - s - 1)))
            fail(ps, "unknown section [%.*s] (want [relay], [audio], [phone] or [network])",
                 (int)(end - s - 1 > 40 ? 40 : end - s - 1), s + 1);
    }
    return str;
}

static int parse_bool(const char *v)
{
    static const char *yes[] = {"yes", "true", "on", "1"}, *no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(v, yes[i]))
            return 1;
        if (!strcasecmp(v, no[i]))
            return 0;
    }
    return -1;
}

static bool copy_str(char *dst, size_t cap, const char *v)
{
    size_t n = strlen(v);
    if (n >= cap)
        return false;
    memcpy(dst, v, n + 1);
    return true;
}

/* One key = value: 1 to go on, 0 after recording an error (inih counts it). */
static int handler(void *user, const char *section, const char *name, const char *value)
{
    parser *ps = user;
    wzp_phone_config *cfg = ps->cfg;
    size_t k = 0;
    while (k < WZP_PK_COUNT && (strcmp(keys[k].section, section) || strcmp(keys[k].name, name)))
        k++;
    if (!section[0]) {
        fail(ps, "'%.40s' outside a section (put it under [relay], [audio], [phone] or [network])",
             name);
        return 0;
    }
    if (k == WZP_PK_COUNT) {
        /* An unknown section was reported at its header already. */
        if (known_section(section, strlen(section)))
            fail(ps, "unknown key '%.40s' in [%s]", name, section);
        return 0;
    }
    if (cfg->line[k]) {
        fail(ps, "'%s' given twice (first on line %d)", name, cfg->line[k]);
        return 0;
    }
    cfg->line[k] = ps->line;
    if (!value[0]) {
        fail(ps, "'%s' has no value", name);
        return 0;
    }
    uint8_t fp[WZP_FINGERPRINT_LEN];
    wzp_hostport hp;
    int b;
    switch (keys[k].kind) {
    case K_HOST:
        if (wzp_hostport_parse(&hp, value, WZP_DEFAULT_RELAY_PORT) < 0 ||
            !copy_str(cfg->relay_host, sizeof(cfg->relay_host), value)) {
            fail(ps, "host wants NAME or ADDRESS, optionally with :PORT, got '%.60s'", value);
            return 0;
        }
        ps->host_has_port = hp.has_port;
        if (hp.has_port && cfg->relay_port) {
            fail(ps, "host has a :PORT and port is set too (line %d)",
                 cfg->line[WZP_PK_RELAY_PORT]);
            return 0;
        }
        return 1;
    case K_PORT:
        if (strlen(value) <= 5 && strspn(value, "0123456789") == strlen(value)) {
            long v = strtol(value, NULL, 10);
            if (v >= 1 && v <= 65535) {
                cfg->relay_port = (uint16_t)v;
                if (ps->host_has_port) {
                    fail(ps, "port is set and host has a :PORT too (line %d)",
                         cfg->line[WZP_PK_RELAY_HOST]);
                    return 0;
                }
                return 1;
            }
        }
        fail(ps, "port wants a number 1..65535, got '%.60s'", value);
        return 0;
    case K_PIN:
        if (wzp_fingerprint_parse(value, fp) < 0) {
            fail(ps, "pin wants the relay's fingerprint (as wzp-relay prints it)");
            return 0;
        }
        wzp_fingerprint_format(fp, cfg->relay_pin, sizeof(cfg->relay_pin));
        return 1;
    case K_MORE_HOSTS:
    case K_MORE_PINS: {
        /* A comma list, each item checked; stored canonical (pins) or as written (hosts). */
        bool hosts = keys[k].kind == K_MORE_HOSTS;
        char *out = hosts ? cfg->more_hosts : cfg->more_pins;
        size_t cap = hosts ? sizeof(cfg->more_hosts) : sizeof(cfg->more_pins), n = 0, o = 0;
        out[0] = '\0';
        for (const char *p = value; *p;) {
            p += strspn(p, ", \t");
            size_t len = strcspn(p, ", \t");
            if (!len)
                break;
            char item[WZP_HOST_MAX + 16], canon[WZP_FINGERPRINT_STRLEN];
            bool ok = len < sizeof(item) && ++n <= 7;
            if (ok) {
                memcpy(item, p, len);
                item[len] = '\0';
                ok = hosts ? wzp_hostport_parse(&hp, item, WZP_DEFAULT_RELAY_PORT) == 0
                           : wzp_fingerprint_parse(item, fp) == 0;
            }
            if (ok && !hosts)
                wzp_fingerprint_format(fp, canon, sizeof(canon));
            int w =
                ok ? snprintf(out + o, cap - o, "%s%s", o ? "," : "", hosts ? item : canon) : -1;
            if (w < 0 || (size_t)w >= cap - o) {
                fail(ps, "%s wants up to 7 %s separated by commas, got '%.60s'", name,
                     hosts ? "HOST[:PORT]" : "relay fingerprints", value);
                return 0;
            }
            o += (size_t)w;
            p += len;
        }
        return 1;
    }
    case K_TCP_PORT:
        if (strlen(value) <= 5 && strspn(value, "0123456789") == strlen(value)) {
            long v = strtol(value, NULL, 10);
            if (v >= 1 && v <= 65535) {
                cfg->relay_tcp_port = (uint16_t)v;
                return 1;
            }
        }
        fail(ps, "tcp_port wants a number 1..65535, got '%.60s'", value);
        return 0;
    case K_TRANSPORT:
        if (!strcmp(value, "auto"))
            cfg->relay_transport = WZP_RELAY_TRANSPORT_AUTO;
        else if (!strcmp(value, "udp"))
            cfg->relay_transport = WZP_RELAY_TRANSPORT_UDP;
        else if (!strcmp(value, "tcp"))
            cfg->relay_transport = WZP_RELAY_TRANSPORT_TCP;
        else {
            fail(ps, "transport wants auto, udp or tcp, got '%.60s'", value);
            return 0;
        }
        return 1;
    case K_DEVICE:
        if (!copy_str(k == WZP_PK_AUDIO_INPUT ? cfg->input : cfg->output, sizeof(cfg->input),
                      value)) {
            fail(ps, "%s: device name too long", name);
            return 0;
        }
        return 1;
    case K_BACKEND:
        if (strcmp(value, "auto") && strcmp(value, "pulse") && strcmp(value, "alsa")) {
            fail(ps, "backend wants auto, pulse or alsa, got '%.60s'", value);
            return 0;
        }
        copy_str(cfg->backend, sizeof(cfg->backend), value);
        return 1;
    case K_ALIAS:
        if (!wzp_sig_alias_valid(value) || !copy_str(cfg->alias, sizeof(cfg->alias), value)) {
            fail(ps, "alias wants 1..32 of a-z 0-9 . _ - (starting with a letter or digit)");
            return 0;
        }
        return 1;
    case K_BOOL:
        if ((b = parse_bool(value)) < 0) {
            fail(ps, "%s wants yes or no, got '%.60s'", name, value);
            return 0;
        }
        int8_t *dst[WZP_PK_COUNT] = {
            [WZP_PK_AUDIO_AEC] = &cfg->aec,
            [WZP_PK_AUDIO_DENOISE] = &cfg->denoise,
            [WZP_PK_AUDIO_AGC] = &cfg->agc,
            [WZP_PK_AUDIO_DTX] = &cfg->dtx,
            [WZP_PK_PHONE_AUTO_ANSWER] = &cfg->auto_answer,
            [WZP_PK_PHONE_RING] = &cfg->ring,
            [WZP_PK_NETWORK_PORTMAP] = &cfg->portmap,
        };
        *dst[k] = (int8_t)b;
        return 1;
    }
    return 0;
}

int wzp_phone_config_parse(wzp_phone_config *cfg, const char *text, size_t len, int *err_line,
                           char *err, size_t errlen)
{
    char dummy[1];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    int line_dummy;
    if (!err_line)
        err_line = &line_dummy;
    *err_line = 0;
    if (!cfg || (!text && len))
        return WZP_ERR_INVALID;
    parser ps = {.cfg = cfg, .p = text, .left = len, .err = err, .errlen = errlen};
    /* inih reads C strings: a NUL byte would end a line early and hide the rest. */
    const char *nul = len ? memchr(text, '\0', len) : NULL;
    if (nul) {
        int line = 1;
        for (const char *q = text; q < nul; q++)
            line += *q == '\n';
        *err_line = line;
        snprintf(err, errlen, "NUL byte in the file");
        return WZP_ERR_INVALID;
    }
    int rc = ini_parse_stream(reader, &ps, handler, &ps);
    if (rc < 0) {
        snprintf(err, errlen, "out of memory");
        return WZP_ERR_NOMEM;
    }
    /* inih reports the first line it or the handler rejected; a line it rejected by itself
     * (no '=', no ']') has no message of ours. */
    if (rc > 0 && (!ps.err_line || rc < ps.err_line)) {
        ps.err_line = rc;
        snprintf(err, errlen, "syntax error (want [section], key = value, or a ; comment)");
    }
    if (ps.err_line) {
        *err_line = ps.err_line;
        return WZP_ERR_INVALID;
    }
    if (cfg->relay_host[0]) {
        if (cfg->relay_port && cfg->relay_host[0] != '[' && strchr(cfg->relay_host, ':'))
            snprintf(cfg->relay, sizeof(cfg->relay), "[%s]:%u", cfg->relay_host,
                     (unsigned)cfg->relay_port); /* a bare IPv6 address */
        else if (cfg->relay_port)
            snprintf(cfg->relay, sizeof(cfg->relay), "%s:%u", cfg->relay_host,
                     (unsigned)cfg->relay_port);
        else
            snprintf(cfg->relay, sizeof(cfg->relay), "%s", cfg->relay_host);
    }
    return 0;
}

int wzp_phone_config_load(wzp_phone_config *cfg, const char *path, int *err_line, char *err,
                          size_t errlen)
{
    if (err_line)
        *err_line = 0;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "cannot read it: %s", strerror(errno));
        return WZP_ERR_IO;
    }
    char *buf = malloc(WZP_PHONE_CONFIG_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, WZP_PHONE_CONFIG_MAX_BYTES + 1, f) : 0;
    bool bad = !buf || ferror(f);
    fclose(f);
    if (bad || n > WZP_PHONE_CONFIG_MAX_BYTES) {
        snprintf(err, errlen, bad ? "cannot read it" : "larger than %d bytes",
                 WZP_PHONE_CONFIG_MAX_BYTES);
        free(buf);
        return WZP_ERR_IO;
    }
    int rc = wzp_phone_config_parse(cfg, buf, n, err_line, err, errlen);
    free(buf);
    return rc < 0 ? rc : 1;
}
