/* The truncated HMAC-SHA256 that authenticates our small datagrams (probes, park frames). */
#ifndef WZP_WIRE_MAC_H
#define WZP_WIRE_MAC_H

#include <stddef.h>
#include <stdint.h>

/* out = the first outlen (<= 32) bytes of HMAC-SHA256(key, buf). 0 or WZP_ERR_INTERNAL. */
int wzp_mac_trunc(const uint8_t *key, size_t keylen, const uint8_t *buf, size_t len, uint8_t *out,
                  size_t outlen);

#endif
