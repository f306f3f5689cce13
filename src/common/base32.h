/*
 * RFC 4648 base32, lowercase, without padding, for text a person copies
 * (invites). Decoding takes either case and skips whitespace and '-', so a
 * line wrapped by a mail client or grouped for reading still decodes.
 */
#ifndef WZP_COMMON_BASE32_H
#define WZP_COMMON_BASE32_H

#include <stddef.h>
#include <stdint.h>

/* Characters needed for n bytes (no NUL). */
#define WZP_BASE32_LEN(n) (((n)*8 + 4) / 5)

/* Encodes n bytes into out (WZP_BASE32_LEN(n) + 1 bytes with the NUL). Returns the length or
 * WZP_ERR_TOO_BIG. */
int wzp_base32_encode(const uint8_t *in, size_t n, char *out, size_t cap);

/* Decodes text[0..len) into out. Returns the byte count, or WZP_ERR_MALFORMED for a character
 * outside the alphabet, a length no encoding produces or non-zero padding bits (every byte
 * string has exactly one spelling up to case), WZP_ERR_TOO_BIG if cap is too small. */
int wzp_base32_decode(const char *text, size_t len, uint8_t *out, size_t cap);

#endif
