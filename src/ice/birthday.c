/*
 * Birthday probing and port prediction; see birthday.h.
 *
 * Tuning (wzp_bday_config_default), and why:
 * - rate 200/s: a voice call's own media is 50 packets/s each way; 200 small
 *   probes/s (~20 kB/s) stay far below what any access link or NAT minds,
 *   yet give the 90 % target in ~6 s against 128 open mappings in the whole
 *   port space (see birthday.h).
 * - duration 15 s: the 10 s target plus slack for a late start; 3000 probes
 *   at most per call.
 * - window 32: covers the other new mappings a side makes before the sweep
 *   (one per peer candidate, a handful) with room to spare, and one sweep
 *   takes 160 ms at 200/s.
 * - reopen 5 s: an OPEN mapping must outlive the spray; NAT UDP timeouts are
 *   30 s or more, so a refresh every 5 s is plenty.
 * - open_rate 1000/s: the spray only hits mappings that exist, so open them
 *   all at once: 256 sockets take 256 ms, a single burst towards one peer
 *   that its NAT drops; then nothing until the refresh.
 */
#include "ice/birthday.h"

#include <string.h>
#include <sys/socket.h>

#include <wzp/wzp.h>

void wzp_bday_config_default(wzp_bday_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->rate = 200;
    cfg->duration = WZP_SEC(15);
    cfg->reopen = WZP_SEC(5);
    cfg->open_rate = 1000;
    cfg->window = 32;
}

const char *wzp_bday_role_name(wzp_bday_role r)
{
    static const char *const n[] = {"none", "open", "spray", "predict"};
    return (unsigned)r < 4 ? n[r] : "none";
}

/* Signalled values (proto NatMapping/NatFiltering/PortAllocation). */
enum { EIM = 1, ADM = 2, APDM = 3 };
enum { APDF = 3 };
enum { SEQUENTIAL = 2, RANGE = 3, RANDOM = 4 };

static bool symmetric(const wzp_sig_nat *n)
{
    return n->mapping == ADM || n->mapping == APDM;
}

/* Only a port-dependent filter (or an unknown one) keeps ordinary checks from working. */
static bool blocks(const wzp_sig_nat *n)
{
    return n->filtering == APDF || n->filtering == 0;
}

static bool predictable(const wzp_sig_nat *n)
{
    return n->ports == SEQUENTIAL && n->last_port && n->port_delta;
}

wzp_bday_role wzp_bday_role_for(const wzp_sig_nat *local, const wzp_sig_nat *peer,
                                unsigned aux_socks)
{
    if (local->mapping == EIM && symmetric(peer) && blocks(local)) {
        if (predictable(peer))
            return WZP_BDAY_PREDICT;
        return peer->ports == RANGE || peer->ports == RANDOM ? WZP_BDAY_SPRAY : WZP_BDAY_NONE;
    }
    if (symmetric(local) && peer->mapping == EIM && blocks(peer))
        /* A sequential NAT needs no extra mappings: the peer predicts our one. */
        return aux_socks && !predictable(local) ? WZP_BDAY_OPEN : WZP_BDAY_NONE;
    if (symmetric(local) && symmetric(peer) && predictable(local) && predictable(peer))
        return WZP_BDAY_PREDICT;
    return WZP_BDAY_NONE;
}

static uint32_t gcd(uint32_t a, uint32_t b)
{
    while (b) {
        uint32_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

int wzp_bday_start(wzp_bday *b, const wzp_bday_config *cfg, wzp_bday_role role,
                   const wzp_addr *peer_addr, const wzp_sig_nat *peer, uint64_t seed, wzp_ts now)
{
    memset(b, 0, sizeof(*b));
    wzp_bday_config_default(&b->cfg);
    if (cfg) {
        b->cfg.aux_socks = cfg->aux_socks;
        if (cfg->rate)
            b->cfg.rate = cfg->rate;
        if (cfg->duration)
            b->cfg.duration = cfg->duration;
        if (cfg->reopen)
            b->cfg.reopen = cfg->reopen;
        if (cfg->window)
            b->cfg.window = cfg->window;
        if (cfg->open_rate)
            b->cfg.open_rate = cfg->open_rate;
    }
    b->end = WZP_TS_NEVER;
    if (!peer_addr || !peer || wzp_addr_family(peer_addr) != AF_INET)
        return WZP_ERR_INVALID;
    switch (role) {
    case WZP_BDAY_OPEN:
        if (!b->cfg.aux_socks)
            return WZP_ERR_INVALID;
        break;
    case WZP_BDAY_SPRAY: {
        uint32_t lo = peer->port_lo ? peer->port_lo : 1024;
        uint32_t hi = peer->port_hi ? peer->port_hi : 65535;
        if (hi < lo)
            return WZP_ERR_INVALID;
        b->lo = (uint16_t)lo;
        b->span = hi - lo + 1;
        /* Any step coprime with the span visits every port once: a cheap permutation. */
        b->off = (uint32_t)(splitmix(&seed) % b->span);
        b->step = (uint32_t)(splitmix(&seed) % b->span) | 1;
        while (gcd(b->step, b->span) != 1)
            b->step += 2;
        break;
    }
    case WZP_BDAY_PREDICT:
        if (!predictable(peer))
            return WZP_ERR_INVALID;
        b->lo = peer->last_port;
        b->delta = peer->port_delta;
        break;
    default:
        return WZP_ERR_INVALID;
    }
    b->role = role;
    b->target = *peer_addr;
    b->start = b->next = now;
    b->end = now + b->cfg.duration;
    b->running = true;
    return 0;
}

static wzp_ts gap(const wzp_bday *b)
{
    return WZP_SEC(1) / b->cfg.rate;
}

bool wzp_bday_poll(wzp_bday *b, wzp_ts now, int *aux, wzp_addr *dest)
{
    if (!b->running || now < b->next)
        return false;
    if (now >= b->end) {
        b->running = false;
        return false;
    }
    *aux = -1;
    *dest = b->target;
    switch (b->role) {
    case WZP_BDAY_OPEN:
        *aux = (int)(b->i % b->cfg.aux_socks);
        b->i++;
        /* A round over every extra socket at the rate, then a pause until the refresh. */
        b->next =
            b->i % b->cfg.aux_socks ? now + WZP_SEC(1) / b->cfg.open_rate : now + b->cfg.reopen;
        break;
    case WZP_BDAY_SPRAY: {
        uint32_t k = (uint32_t)(((uint64_t)b->i * b->step + b->off) % b->span);
        wzp_addr_set_port(dest, (uint16_t)(b->lo + k));
        b->i = (b->i + 1) % b->span;
        b->next = now + gap(b);
        break;
    }
    case WZP_BDAY_PREDICT: {
        int m = (int)(b->cfg.window - b->i % b->cfg.window);
        int p = (int)b->lo + b->delta * m;
        while (p > 65535) /* a NAT wraps around its range; ours is a guess at where */
            p -= 64512;
        while (p < 1024)
            p += 64512;
        wzp_addr_set_port(dest, (uint16_t)p);
        b->i++;
        b->next = now + gap(b);
        break;
    }
    default:
        b->running = false;
        return false;
    }
    b->sent++;
    return true;
}

wzp_ts wzp_bday_deadline(const wzp_bday *b)
{
    if (!b->running)
        return WZP_TS_NEVER;
    return b->next < b->end ? b->next : b->end;
}

void wzp_bday_stop(wzp_bday *b)
{
    b->running = false;
}
