/*
 * The phone's settings file, $WZP_HOME/config: the default relay and the
 * user's preferences, in INI form (parsed by Debian's inih):
 *
 *   [relay]  host = NAME|ADDRESS[:PORT]   port = 1..65535   pin = FINGERPRINT
 *            tcp_port = 1..65535 (its TLS-over-TCP service)   transport = auto|udp|tcp
 *   [audio]  input = DEVICE  output = DEVICE  backend = auto|pulse|alsa
 *            aec = BOOL  denoise = BOOL  agc = BOOL  dtx = BOOL
 *   [phone]  alias = ALIAS  auto_answer = BOOL  ring = BOOL
 *   [network] portmap = BOOL (ask the gateway to map the call socket: NAT-PMP, UPnP)
 *
 * BOOL is yes/no, true/false, on/off or 1/0. Strict: an unknown section or
 * key, a key given twice, or a bad value is an error naming its line. The
 * parser is sans-I/O (text in, struct out) so it can be fuzzed; the loader
 * only reads the file.
 */
#ifndef WZP_PHONE_CONFIG_H
#define WZP_PHONE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wzp/audio.h>
#include <wzp/identity.h>

#include "common/hostport.h"
#include "wire/signal.h"

/* Larger files are refused: a settings file is a few hundred bytes. */
#define WZP_PHONE_CONFIG_MAX_BYTES 65536
#define WZP_PHONE_CONFIG_ERR_MAX   160

typedef enum wzp_phone_key {
    WZP_PK_RELAY_HOST,
    WZP_PK_RELAY_PORT,
    WZP_PK_RELAY_PIN,
    WZP_PK_RELAY_TCP_PORT,
    WZP_PK_RELAY_TRANSPORT,
    WZP_PK_RELAY_MORE_HOSTS,
    WZP_PK_RELAY_MORE_PINS,
    WZP_PK_AUDIO_INPUT,
    WZP_PK_AUDIO_OUTPUT,
    WZP_PK_AUDIO_BACKEND,
    WZP_PK_AUDIO_AEC,
    WZP_PK_AUDIO_DENOISE,
    WZP_PK_AUDIO_AGC,
    WZP_PK_AUDIO_DTX,
    WZP_PK_PHONE_ALIAS,
    WZP_PK_PHONE_AUTO_ANSWER,
    WZP_PK_PHONE_RING,
    WZP_PK_NETWORK_PORTMAP,
    WZP_PK_COUNT
} wzp_phone_key;

typedef struct wzp_phone_config {
    char relay[WZP_HOST_MAX + 24];     /* host with the port key applied ("" if none); see below */
    char relay_host[WZP_HOST_MAX + 8]; /* [relay] host as written */
    uint16_t relay_port;               /* [relay] port; 0 if not given */
    char relay_pin[WZP_FINGERPRINT_STRLEN]; /* canonical text form */
    uint16_t relay_tcp_port;                /* [relay] tcp_port; 0 if not given */
    int8_t relay_transport;                 /* -1: not given, else a wzp_relay_transport */
    /* [relay] more_hosts / more_pins: the cluster's other relays ("A:P,B:P", "" if none) and
     * their pins in the same order ("" = the pin key's for all); at most 7. */
    char more_hosts[1024];
    char more_pins[7 * WZP_FINGERPRINT_STRLEN];
    char input[WZP_AUDIO_DEVICE_NAME_MAX], output[WZP_AUDIO_DEVICE_NAME_MAX];
    char backend[8];
    char alias[WZP_SIG_ALIAS_MAX + 1];
    /* -1: not given, else 0 or 1 */
    int8_t aec, denoise, agc, dtx, auto_answer;
    int8_t ring;            /* ring and ringback tones on the speaker */
    int8_t portmap;         /* [network] portmap */
    int line[WZP_PK_COUNT]; /* where each key was given; 0 if not */
} wzp_phone_config;

/* Nothing given: empty strings, -1 booleans and transport, ports 0. */
void wzp_phone_config_init(wzp_phone_config *cfg);

/*
 * Parses len bytes of settings text into cfg (which starts from
 * wzp_phone_config_init). 0, or WZP_ERR_INVALID with *err_line (1-based) and
 * a one-phrase reason in err ("unknown key 'foo' in [audio]"). relay is set
 * from relay_host and relay_port: "NAME:PORT" when port is given.
 */
int wzp_phone_config_parse(wzp_phone_config *cfg, const char *text, size_t len, int *err_line,
                           char *err, size_t errlen);

/*
 * Reads and parses the file at path: 1 when it was read, 0 when there is no
 * such file (cfg stays empty), WZP_ERR_INVALID as above, or WZP_ERR_IO
 * (*err_line 0) when it cannot be read or is too large.
 */
int wzp_phone_config_load(wzp_phone_config *cfg, const char *path, int *err_line, char *err,
                          size_t errlen);

/* "host", "pin", ... and "relay", "audio", "phone": a key's name and section. */
const char *wzp_phone_key_name(wzp_phone_key k);
const char *wzp_phone_key_section(wzp_phone_key k);

#endif
