/*
 * A socket address of either family, by value. Plain data, so the sans-I/O
 * core can carry, compare and hash addresses without touching sockets.
 */
#ifndef WZP_COMMON_ADDR_H
#define WZP_COMMON_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

typedef struct wzp_addr {
    union {
        struct sockaddr sa;
        struct sockaddr_in v4;
        struct sockaddr_in6 v6;
        struct sockaddr_storage ss;
    } u;
    socklen_t len; /* 0 for "no address" */
} wzp_addr;

/* "[HOST]:PORT" text form is at most this long, NUL included. */
#define WZP_ADDR_STRLEN 64

void wzp_addr_clear(wzp_addr *a);
/* From a sockaddr of len bytes; WZP_ERR_INVALID for another family or a short len. */
int wzp_addr_from_sockaddr(wzp_addr *a, const struct sockaddr *sa, socklen_t len);
/* Raw IPv4 (4 bytes) or IPv6 (16 bytes) address plus host-order port. */
int wzp_addr_from_ip(wzp_addr *a, int family, const uint8_t *ip, uint16_t port);
/*
 * Parses a numeric "1.2.3.4:5", "[::1]:5" (no DNS). With allow_no_port,
 * "1.2.3.4" and "::1" give port 0.
 */
int wzp_addr_parse(wzp_addr *a, const char *text, bool allow_no_port);
/* "1.2.3.4:5" or "[::1]:5"; returns buf. */
const char *wzp_addr_format(const wzp_addr *a, char *buf, size_t buflen);

int wzp_addr_family(const wzp_addr *a); /* AF_INET, AF_INET6 or AF_UNSPEC */
uint16_t wzp_addr_port(const wzp_addr *a);
void wzp_addr_set_port(wzp_addr *a, uint16_t port);
/* Pointer to the 4 or 16 raw address bytes; *len receives the length. */
const uint8_t *wzp_addr_ip(const wzp_addr *a, size_t *len);

bool wzp_addr_equal(const wzp_addr *a, const wzp_addr *b);    /* address and port */
bool wzp_addr_ip_equal(const wzp_addr *a, const wzp_addr *b); /* address only */
bool wzp_addr_is_loopback(const wzp_addr *a);
bool wzp_addr_is_link_local(const wzp_addr *a);
bool wzp_addr_is_private(const wzp_addr *a); /* RFC 1918, RFC 6598 CGN, IPv6 ULA */
bool wzp_addr_is_any(const wzp_addr *a);
/* An IPv4-mapped IPv6 address becomes plain IPv4; anything else is unchanged. */
void wzp_addr_unmap_v4(wzp_addr *a);
uint64_t wzp_addr_hash(const wzp_addr *a, uint64_t seed);

#endif
