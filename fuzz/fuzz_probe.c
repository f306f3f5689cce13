/*
 * Fuzzes the probe decoder and the agent that consumes probes.
 *
 * First byte even: the rest is one datagram, fed to wzp_probe_decode (with
 * the fixed key below) and to an agent's recv.
 * First byte odd: the rest is a script driving an agent, so the fuzzer gets
 * past authentication: besides raw datagrams it can inject probes that the
 * harness signs with the right key (and answers that echo the agent's own
 * transaction ids), advance the virtual clock, note QUIC traffic, add and
 * remove candidates. After every step the route is checked for consistency.
 */
#include <stddef.h>
#include <stdint.h>
#ifdef FUZZ_DEBUG
#include <stdio.h>
#endif
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/addr.h"
#include "ice/agent.h"
#include "wire/probe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t key[WZP_PROBE_KEY_LEN] = {
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
    16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31,
};

typedef struct cursor {
    const uint8_t *p;
    size_t left;
} cursor;

static uint8_t next_u8(cursor *c)
{
    if (!c->left)
        return 0;
    c->left--;
    return *c->p++;
}

/* A small address space, so the fuzzer hits the same pairs again and again. */
static wzp_addr pick_addr(uint8_t sel)
{
    wzp_addr a;
    uint16_t port = (uint16_t)(4000 + (sel & 3));
    if (sel & 0x80) {
        uint8_t ip[16] = {0x20, 0x01, 0x0d, 0xb8};
        ip[15] = (uint8_t)((sel >> 2) & 7);
        wzp_addr_from_ip(&a, AF_INET6, ip, port);
    } else {
        uint8_t ip[4] = {(sel & 0x40) ? 10 : 198, 51, 100, (uint8_t)((sel >> 2) & 7)};
        wzp_addr_from_ip(&a, AF_INET, ip, port);
    }
    return a;
}

static void check_route(const wzp_ice_agent *a)
{
    wzp_ice_route r = wzp_ice_route_get(a);
    if (r.kind == WZP_ROUTE_DIRECT &&
        (r.sock < 0 || r.sock >= WZP_ICE_SOCK_COUNT || wzp_cand_sock_for(&r.remote) != r.sock))
        abort();
    wzp_ice_stats st;
    wzp_ice_get_stats(a, &st);
    if (st.pairs_valid > st.pairs || st.pairs > 64)
        abort();
}

static void drain(wzp_ice_agent *a, wzp_ts now, uint8_t last_txid[WZP_PROBE_TXID_LEN])
{
    uint8_t buf[WZP_PROBE_MAX_LEN];
    wzp_addr dst;
    int sock, n, guard = 0;
    wzp_ice_handle_timer(a, now);
    while ((n = wzp_ice_poll_transmit(a, now, buf, sizeof(buf), &sock, &dst)) > 0) {
        wzp_probe p;
        if (wzp_probe_decode(&p, key, NULL, buf, (size_t)n) != 0)
            abort(); /* the agent must only emit authentic probes */
        if (p.type == WZP_PROBE_REQUEST)
            memcpy(last_txid, p.txid, WZP_PROBE_TXID_LEN);
        if (++guard > 64)
            abort(); /* responses are bounded by the queue, requests by pacing */
    }
    if (n < 0)
        abort();
}

static void run_script(cursor *c)
{
    wzp_ice_config cfg;
    wzp_ice_config_default(&cfg);
    memset(cfg.agent_id, 0xaa, sizeof(cfg.agent_id));
    wzp_ice_agent *a = NULL;
    if (wzp_ice_new(&a, &cfg) < 0)
        return;
    wzp_ts now = 1000000000ULL;
    wzp_addr l4 = pick_addr(0), l6 = pick_addr(0x80);
    wzp_ice_add_local(a, WZP_CAND_HOST, &l4);
    wzp_ice_add_local(a, WZP_CAND_HOST, &l6);
    wzp_ice_set_key(a, key, now);
    uint8_t last_txid[WZP_PROBE_TXID_LEN] = {0};
    uint8_t buf[WZP_PROBE_MAX_LEN + 64];

    for (int steps = 0; c->left && steps < 512; steps++) {
        uint8_t op = next_u8(c);
        wzp_addr from = pick_addr(next_u8(c));
        int sock = wzp_cand_sock_for(&from);
        switch (op % 8) {
        case 0: /* time passes */
            now += (wzp_ts)next_u8(c) * 1000000ULL * ((op >> 3) + 1);
            break;
        case 1: { /* raw datagram */
            size_t len = next_u8(c) % (sizeof(buf) + 1);
            if (len > c->left)
                len = c->left;
            memcpy(buf, c->p, len);
            c->p += len;
            c->left -= len;
            wzp_ice_recv(a, sock, &from, buf, len, now);
            break;
        }
        case 2: { /* an authentic probe */
            wzp_probe p;
            memset(&p, 0, sizeof(p));
            uint8_t sel = next_u8(c);
            p.type = (sel & 1) ? WZP_PROBE_RESPONSE : WZP_PROBE_REQUEST;
            p.flags = next_u8(c);
            memcpy(p.tag, wzp_ice_tag(a), WZP_PROBE_TAG_LEN);
            if (sel & 2)
                memcpy(p.txid, last_txid, sizeof(p.txid));
            else
                p.txid[0] = next_u8(c);
            memset(p.sender, (sel & 4) ? 0xaa : 0xbb, sizeof(p.sender)); /* 0xaa = reflected */
            p.observed = pick_addr(next_u8(c));
            int n = wzp_probe_encode(&p, key, buf, sizeof(buf));
            if (n > 0)
                wzp_ice_recv(a, sock, &from, buf, (size_t)n, now);
            break;
        }
        case 3:
            wzp_ice_note_rx(a, sock, &from, now);
            break;
        case 4:
            wzp_ice_add_remote(a, (wzp_cand_type)(op >> 3) % 4, &from, now);
            break;
        case 5:
            wzp_ice_remove_remote(a, &from, now);
            break;
        case 6:
            if (op & 8)
                wzp_ice_network_changed(a, now);
            else
                wzp_ice_add_local(a, (wzp_cand_type)(op >> 4) % 4, &from);
            break;
        case 7: { /* run to the next deadline */
            wzp_ts d = wzp_ice_next_deadline(a);
            if (d != WZP_TS_NEVER && d > now && d - now < 60000000000ULL)
                now = d;
            break;
        }
        }
        drain(a, now, last_txid);
        check_route(a);
    }
#ifdef FUZZ_DEBUG
    wzp_ice_stats st;
    wzp_ice_get_stats(a, &st);
    fprintf(stderr, "route %d valid %u prflx %u req %llu/%llu resp %llu/%llu\n",
            wzp_ice_route_get(a).kind, st.pairs_valid, st.prflx_learned,
            (unsigned long long)st.requests_sent, (unsigned long long)st.requests_rcvd,
            (unsigned long long)st.responses_sent, (unsigned long long)st.responses_rcvd);
#endif
    wzp_ice_free(a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    cursor c = {data + 1, size - 1};
    if (data[0] & 1) {
        run_script(&c);
        return 0;
    }
    wzp_probe p;
    uint8_t tag[WZP_PROBE_TAG_LEN];
    wzp_probe_derive_tag(key, tag);
    int rc = wzp_probe_decode(&p, key, tag, c.p, c.left);
    if (rc == 0) {
        /* Whatever decodes re-encodes to the same bytes. */
        uint8_t out[WZP_PROBE_MAX_LEN];
        int n = wzp_probe_encode(&p, key, out, sizeof(out));
        if (n < 0 || (size_t)n != c.left || memcmp(out, c.p, c.left) != 0)
            abort();
    }
    wzp_probe_peek_tag(c.p, c.left, tag);

    wzp_ice_agent *a = NULL;
    if (wzp_ice_new(&a, NULL) < 0)
        return 0;
    wzp_ice_set_key(a, key, 1);
    wzp_addr from = pick_addr(c.left ? c.p[0] : 0);
    wzp_ice_recv(a, wzp_cand_sock_for(&from), &from, c.p, c.left, 2);
    wzp_ice_free(a);
    return 0;
}
