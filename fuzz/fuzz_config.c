/*
 * Fuzzes the settings file parser (src/phone/config.c). Beyond "no crash, no
 * leak": an error names a line that exists and a non-empty reason; a success
 * yields only values the parser promises (booleans -1/0/1, a relay that
 * parses as HOST[:PORT], a canonical pin), and the host:port parser never
 * accepts text its own output would reject.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/hostport.h"
#include "phone/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wzp_phone_config cfg;
    wzp_phone_config_init(&cfg);
    int line = -1;
    char err[WZP_PHONE_CONFIG_ERR_MAX];
    int rc = wzp_phone_config_parse(&cfg, (const char *)data, size, &line, err, sizeof(err));
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    if (rc < 0) {
        if (line < 1 || (size_t)line > lines || !err[0])
            abort();
    } else {
        int8_t b[] = {cfg.aec, cfg.denoise, cfg.agc, cfg.dtx, cfg.auto_answer, cfg.ring};
        for (size_t i = 0; i < sizeof(b); i++)
            if (b[i] < -1 || b[i] > 1)
                abort();
        wzp_hostport hp;
        if (cfg.relay[0] && wzp_hostport_parse(&hp, cfg.relay, WZP_DEFAULT_RELAY_PORT) < 0)
            abort();
        uint8_t fp[WZP_FINGERPRINT_LEN];
        if (cfg.relay_pin[0] && wzp_fingerprint_parse(cfg.relay_pin, fp) < 0)
            abort();
    }
    /* The same bytes as one HOST[:PORT] string. */
    char text[300];
    size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
    memcpy(text, data, n);
    text[n] = '\0';
    wzp_hostport hp;
    if (wzp_hostport_parse(&hp, text, WZP_DEFAULT_RELAY_PORT) == 0) {
        if (!hp.host[0] || hp.port == 0 || (hp.numeric && wzp_addr_port(&hp.addr) != hp.port))
            abort();
    }
    return 0;
}
