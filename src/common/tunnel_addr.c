#include "common/tunnel_addr.h"

#include <string.h>

static const uint8_t MARKER[4] = {0x01, 0x00, 0x7c, 0x70};

void wzp_tunnel_addr_make(wzp_addr *out, const wzp_addr *real, uint64_t id)
{
    wzp_addr u = *real;
    wzp_addr_unmap_v4(&u);
    size_t n = 0;
    const uint8_t *ip = wzp_addr_ip(&u, &n);
    uint8_t b[16] = {0};
    memcpy(b, MARKER, sizeof(MARKER));
    b[4] = n == 4 ? 4 : 6;
    id &= WZP_TUNNEL_ID_MAX;
    b[5] = (uint8_t)(id >> 32);
    b[6] = (uint8_t)(id >> 24);
    b[7] = (uint8_t)(id >> 16);
    if (ip && (n == 4 || n == 16))
        memcpy(b + 8, ip, n == 4 ? 4 : 8);
    wzp_addr_from_ip(out, AF_INET6, b, (uint16_t)id);
}

bool wzp_addr_is_tunnel(const wzp_addr *a)
{
    size_t n = 0;
    const uint8_t *ip = wzp_addr_ip(a, &n);
    return ip && n == 16 && memcmp(ip, MARKER, sizeof(MARKER)) == 0;
}

uint64_t wzp_tunnel_addr_id(const wzp_addr *a)
{
    if (!wzp_addr_is_tunnel(a))
        return 0;
    size_t n = 0;
    const uint8_t *ip = wzp_addr_ip(a, &n);
    return (uint64_t)ip[5] << 32 | (uint64_t)ip[6] << 24 | (uint64_t)ip[7] << 16 | wzp_addr_port(a);
}

size_t wzp_addr_limit_key(const wzp_addr *a, uint8_t key[8])
{
    wzp_addr u = *a;
    wzp_addr_unmap_v4(&u);
    size_t n = 0;
    const uint8_t *ip = wzp_addr_ip(&u, &n);
    if (!ip || (n != 4 && n != 16))
        return 0;
    if (n == 16 && memcmp(ip, MARKER, sizeof(MARKER)) == 0) {
        n = ip[4] == 4 ? 4 : 8;
        memcpy(key, ip + 8, n);
        return n;
    }
    n = n == 16 ? 8 : n;
    memcpy(key, ip, n);
    return n;
}
