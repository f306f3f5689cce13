/*
 * Tunnel addresses: how the relay names a client that reaches it over TCP
 * (src/relay/tcp_listener.h) wherever a UDP source address is expected (the
 * QUIC endpoint, the control plane, the channel table). An IPv6 address in
 * 100:7c70::/32 (inside ::/8, reserved by the IETF: never a real source,
 * and UDP datagrams claiming one are dropped) that carries the client's real
 * IPv4 address or IPv6 /64 and a connection number:
 *
 *   bytes 0-3  01 00 7c 70        marker
 *   byte  4    4 or 6             family of the real address
 *   bytes 5-7  connection number, high 24 bits
 *   bytes 8-15 real IPv4 address + 4 zero bytes, or the real IPv6 /64
 *   port       connection number, low 16 bits
 *
 * Per-source limits (wzp_addr_limit_key) count a tunnelled client under its
 * real address, together with what it sends over UDP.
 */
#ifndef WZP_COMMON_TUNNEL_ADDR_H
#define WZP_COMMON_TUNNEL_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/addr.h"

/* Connection numbers are 40 bits. */
#define WZP_TUNNEL_ID_MAX ((1ull << 40) - 1)

/* The tunnel address of connection `id` (masked to 40 bits) from `real`. */
void wzp_tunnel_addr_make(wzp_addr *out, const wzp_addr *real, uint64_t id);
bool wzp_addr_is_tunnel(const wzp_addr *a);
/* The connection number of a tunnel address (0 for any other address). */
uint64_t wzp_tunnel_addr_id(const wzp_addr *a);

/*
 * The key per-source limits count under: an IPv4 address (IPv4-mapped IPv6
 * as IPv4), an IPv6 /64 (one host usually owns a whole /64), or for a tunnel
 * address the real address it carries, keyed the same way. Returns the key
 * length (4 or 8), 0 for no address.
 */
size_t wzp_addr_limit_key(const wzp_addr *a, uint8_t key[8]);

#endif
