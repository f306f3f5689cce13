/* Unit tests for the settings file (src/phone/config.c), HOST[:PORT] parsing and the
 * happy-eyeballs address order (src/common/hostport.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wzp/client.h>

#include "common/hostport.h"
#include "phone/config.h"

#define PIN "q22g-r5f5-xfif-2slh-rcbf-7t7q-xbou-qosu-ptb4-hoib-zoqc-oxh4-wviq"

static int parse(wzp_phone_config *c, const char *text, int *line, char *err)
{
    wzp_phone_config_init(c);
    return wzp_phone_config_parse(c, text, strlen(text), line, err, WZP_PHONE_CONFIG_ERR_MAX);
}

static void test_config_good(void **state)
{
    (void)state;
    wzp_phone_config c;
    int line = -1;
    char err[WZP_PHONE_CONFIG_ERR_MAX];
    const char *text = "; my phone\n"
                       "[relay]\n"
                       "host = relay.example.org   ; the relay\n"
                       "port = 5000\n"
                       "pin = " PIN "\n"
                       "more_hosts = r2.example.org:4433, [2001:db8::2]\n"
                       "more_pins = " PIN "," PIN "\n"
                       "\n"
                       "[audio]\n"
                       "input = alsa_input.usb\n"
                       "output = alsa_output.pci\n"
                       "backend = alsa\n"
                       "aec = no\n"
                       "denoise = Off\n"
                       "agc = 1\n"
                       "# dtx left at its default\n"
                       "[phone]\n"
                       "alias = alice\n"
                       "auto_answer = yes\n"
                       "ring = false\n";
    assert_int_equal(parse(&c, text, &line, err), 0);
    assert_int_equal(line, 0);
    assert_string_equal(c.relay, "relay.example.org:5000");
    assert_int_equal(c.relay_port, 5000);
    assert_string_equal(c.relay_pin, PIN);
    assert_string_equal(c.more_hosts, "r2.example.org:4433,[2001:db8::2]");
    assert_string_equal(c.more_pins, PIN "," PIN);
    assert_string_equal(c.input, "alsa_input.usb");
    assert_string_equal(c.output, "alsa_output.pci");
    assert_string_equal(c.backend, "alsa");
    assert_int_equal(c.aec, 0);
    assert_int_equal(c.denoise, 0);
    assert_int_equal(c.agc, 1);
    assert_int_equal(c.dtx, -1);
    assert_string_equal(c.alias, "alice");
    assert_int_equal(c.auto_answer, 1);
    assert_int_equal(c.ring, 0);
    assert_int_equal(c.line[WZP_PK_RELAY_HOST], 3);
    assert_int_equal(c.line[WZP_PK_PHONE_RING], 20);
    assert_int_equal(c.line[WZP_PK_RELAY_MORE_PINS], 7);
    assert_int_equal(c.line[WZP_PK_AUDIO_DTX], 0);

    /* The pin in any spelling comes out canonical; a port inside host; bare and bracketed v6. */
    assert_int_equal(parse(&c,
                           "[relay]\nhost=10.0.0.1:7000\npin="
                           "Q22GR5F5XFIF2SLHRCBF7T7QXBOUQOSUPTB4HOIBZOQCOXH4WVIQ\n",
                           &line, err),
                     0);
    assert_string_equal(c.relay, "10.0.0.1:7000");
    assert_string_equal(c.relay_pin, PIN);
    assert_int_equal(parse(&c, "[relay]\nhost = 2001:db8::1\nport = 9\n", &line, err), 0);
    assert_string_equal(c.relay, "[2001:db8::1]:9");
    assert_int_equal(parse(&c, "[relay]\nhost = [2001:db8::1]:9\n", &line, err), 0);
    assert_string_equal(c.relay, "[2001:db8::1]:9");
    /* Empty text, comments only, CRLF line ends. */
    assert_int_equal(parse(&c, "", &line, err), 0);
    assert_string_equal(c.relay, "");
    assert_int_equal(parse(&c, "[phone]\r\nring = yes\r\n", &line, err), 0);
    assert_int_equal(c.ring, 1);
    assert_int_equal(c.relay_tcp_port, 0);
    assert_int_equal(c.relay_transport, -1);
    /* The relay's TCP service: its port and how to reach the relay. */
    assert_int_equal(parse(&c, "[relay]\ntcp_port = 8443\ntransport = tcp\n", &line, err), 0);
    assert_int_equal(c.relay_tcp_port, 8443);
    assert_int_equal(c.relay_transport, WZP_RELAY_TRANSPORT_TCP);
    assert_int_equal(parse(&c, "[relay]\ntransport = udp\n", &line, err), 0);
    assert_int_equal(c.relay_transport, WZP_RELAY_TRANSPORT_UDP);
    /* Port mapping: not given, then off. */
    assert_int_equal(c.portmap, -1);
    assert_int_equal(parse(&c, "[network]\nportmap = no\n", &line, err), 0);
    assert_int_equal(c.portmap, 0);
    assert_int_equal(c.line[WZP_PK_NETWORK_PORTMAP], 2);
}

static void test_config_errors(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int line;
        const char *says;
    } cases[] = {
        {"[relay]\nhost = a\n[sound]\ninput = x\n", 3, "unknown section [sound]"},
        {"[audio]\nvolume = 3\n", 2, "unknown key 'volume' in [audio]"},
        {"host = a\n", 1, "outside a section"},
        {"[audio]\naec = maybe\n", 2, "aec wants yes or no"},
        {"[phone]\nring = yes\nring = no\n", 3, "given twice (first on line 2)"},
        {"[relay]\nport = 0\n", 2, "port wants a number"},
        {"[relay]\nport = 65536\n", 2, "port wants a number"},
        {"[relay]\nport = 44x\n", 2, "port wants a number"},
        {"[relay]\n\nport = -1\n", 3, "port wants a number"},
        {"[relay]\nhost = bad_host!\n", 2, "host wants NAME or ADDRESS"},
        {"[relay]\nhost = a.example:99999\n", 2, "host wants"},
        {"[relay]\nhost = a:1\nport = 2\n", 3, "port is set and host has a :PORT"},
        {"[relay]\nport = 2\nhost = a:1\n", 3, "host has a :PORT and port is set"},
        {"[relay]\npin = not-a-fingerprint\n", 2, "pin wants the relay's fingerprint"},
        {"[relay]\nmore_hosts = a:1,bad_host!\n", 2, "more_hosts wants up to 7 HOST[:PORT]"},
        {"[relay]\nmore_hosts = a,b,c,d,e,f,g,h\n", 2, "more_hosts wants up to 7"},
        {"[relay]\nmore_pins = x\n", 2, "more_pins wants up to 7 relay fingerprints"},
        {"[relay]\ntcp_port = 0\n", 2, "tcp_port wants a number"},
        {"[relay]\ntransport = quic\n", 2, "transport wants auto, udp or tcp"},
        {"[audio]\nbackend = oss\n", 2, "backend wants auto, pulse or alsa"},
        {"[phone]\nalias = Alice!\n", 2, "alias wants"},
        {"[phone]\nalias =\n", 2, "has no value"},
        {"[relay]\nthis is not a key\n", 2, "syntax error"},
        {"[relay\nhost = a\n", 1, "syntax error"},
        {"[audio]\naec = yes\n  no\n", 3, "given twice"},
        /* The first error wins: the syntax error on 2 before the bad value on 3. */
        {"[audio]\noops\naec = maybe\n", 2, "syntax error"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        wzp_phone_config c;
        int line = -1;
        char err[WZP_PHONE_CONFIG_ERR_MAX];
        int rc = parse(&c, cases[i].text, &line, err);
        if (rc != WZP_ERR_INVALID || line != cases[i].line || !strstr(err, cases[i].says))
            fail_msg("case %zu: rc %d line %d '%s' (want line %d '%s')", i, rc, line, err,
                     cases[i].line, cases[i].says);
    }
    /* A NUL byte and an over-long line. */
    wzp_phone_config c;
    int line = -1;
    char err[WZP_PHONE_CONFIG_ERR_MAX];
    wzp_phone_config_init(&c);
    assert_int_equal(
        wzp_phone_config_parse(&c, "[phone]\nring = y\0s\n", 19, &line, err, sizeof(err)),
        WZP_ERR_INVALID);
    assert_int_equal(line, 2);
    char big[600];
    snprintf(big, sizeof(big), "[audio]\ninput = %0500d\nbad\n", 0);
    assert_int_equal(parse(&c, big, &line, err), WZP_ERR_INVALID);
    assert_int_equal(line, 2);
    assert_non_null(strstr(err, "too long"));
}

static void test_config_load(void **state)
{
    (void)state;
    char dir[] = "/tmp/wzp-conf-XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/config", dir);
    wzp_phone_config c;
    wzp_phone_config_init(&c);
    int line = -1;
    char err[WZP_PHONE_CONFIG_ERR_MAX];
    assert_int_equal(wzp_phone_config_load(&c, path, &line, err, sizeof(err)), 0); /* none */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[phone]\nalias = bob\n", f);
    fclose(f);
    assert_int_equal(wzp_phone_config_load(&c, path, &line, err, sizeof(err)), 1);
    assert_string_equal(c.alias, "bob");
    unlink(path);
    rmdir(dir);
}

static void test_hostport(void **state)
{
    (void)state;
    wzp_hostport hp;
    char buf[WZP_ADDR_STRLEN];
    assert_int_equal(wzp_hostport_parse(&hp, "relay.example.org", 4433), 0);
    assert_string_equal(hp.host, "relay.example.org");
    assert_int_equal(hp.port, 4433);
    assert_false(hp.has_port);
    assert_false(hp.numeric);
    assert_int_equal(wzp_hostport_parse(&hp, "localhost:5000", 4433), 0);
    assert_string_equal(hp.host, "localhost");
    assert_int_equal(hp.port, 5000);
    assert_true(hp.has_port);
    assert_int_equal(wzp_hostport_parse(&hp, "relay.example.org.", 4433), 0);
    assert_int_equal(wzp_hostport_parse(&hp, "192.0.2.7:99", 4433), 0);
    assert_true(hp.numeric);
    assert_string_equal(wzp_addr_format(&hp.addr, buf, sizeof(buf)), "192.0.2.7:99");
    assert_int_equal(wzp_hostport_parse(&hp, "192.0.2.7", 4433), 0);
    assert_string_equal(wzp_addr_format(&hp.addr, buf, sizeof(buf)), "192.0.2.7:4433");
    assert_int_equal(wzp_hostport_parse(&hp, "[::1]:7", 4433), 0);
    assert_true(hp.numeric);
    assert_string_equal(wzp_addr_format(&hp.addr, buf, sizeof(buf)), "[::1]:7");
    assert_int_equal(wzp_hostport_parse(&hp, "[2001:db8::2]", 4433), 0);
    assert_int_equal(hp.port, 4433);
    assert_int_equal(wzp_hostport_parse(&hp, "2001:db8::2", 4433), 0); /* bare: no port */
    assert_true(hp.numeric);
    assert_int_equal(hp.port, 4433);
    static const char *bad[] = {
        "",        ":4433", "host:",      "host:0",      "host:65536", "host:+5",
        "host: 5", "[::1",  "[::1]x",     "[host]:5",    "-host-:5x",  "a..b",
        ".a",      "a b",   "host:5:6:x", "[1.2.3.4]:5", "h\xc3\xa9",  "a/b"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (wzp_hostport_parse(&hp, bad[i], 4433) == 0)
            fail_msg("accepted '%s'", bad[i]);
    char longname[300];
    memset(longname, 'a', sizeof(longname));
    longname[64] = '\0'; /* one label of 64 */
    assert_int_not_equal(wzp_hostport_parse(&hp, longname, 1), 0);
    longname[63] = '\0';
    assert_int_equal(wzp_hostport_parse(&hp, longname, 1), 0);
}

static wzp_addr A(const char *s)
{
    wzp_addr a;
    assert_int_equal(wzp_addr_parse(&a, s, false), 0);
    return a;
}

static void test_eyeballs_order(void **state)
{
    (void)state;
    /* The resolver's order within a family is kept; v6 first, then alternate. */
    wzp_addr a[] = {A("192.0.2.1:1"),         A("192.0.2.2:1"), A("192.0.2.3:1"),
                    A("[2001:db8::1]:1"),     A("192.0.2.1:1"), A("[2001:db8::2]:1"),
                    A("[::ffff:192.0.2.4]:1")};
    const char *want[] = {"[2001:db8::1]:1", "192.0.2.1:1", "[2001:db8::2]:1",
                          "192.0.2.2:1",     "192.0.2.3:1", "192.0.2.4:1"};
    size_t n = wzp_addr_order_eyeballs(a, 7, true, true);
    assert_int_equal(n, 6);
    char buf[WZP_ADDR_STRLEN];
    for (size_t i = 0; i < n; i++)
        assert_string_equal(wzp_addr_format(&a[i], buf, sizeof(buf)), want[i]);
    /* No IPv6 socket: IPv4 only. */
    wzp_addr b[] = {A("[2001:db8::1]:1"), A("192.0.2.1:1")};
    assert_int_equal(wzp_addr_order_eyeballs(b, 2, true, false), 1);
    assert_string_equal(wzp_addr_format(&b[0], buf, sizeof(buf)), "192.0.2.1:1");
    assert_int_equal(wzp_addr_order_eyeballs(b, 1, false, false), 0);
}

WZP_TEST_MAIN(NULL, NULL, test_config_good, test_config_errors, test_config_load, test_hostport,
              test_eyeballs_order)
