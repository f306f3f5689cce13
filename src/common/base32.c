#include "common/base32.h"

#include <wzp/wzp.h>

static const char ALPHA[] = "abcdefghijklmnopqrstuvwxyz234567";

int wzp_base32_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
    size_t need = WZP_BASE32_LEN(n);
    if (need >= cap)
        return WZP_ERR_TOO_BIG;
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8 | in[i]) & 0xfff;
        bits += 8;
        while (bits >= 5) {
            out[o++] = ALPHA[(acc >> (bits - 5)) & 31];
            bits -= 5;
        }
    }
    if (bits > 0)
        out[o++] = ALPHA[(acc << (5 - bits)) & 31];
    out[o] = '\0';
    return (int)o;
}

static int b32val(char c)
{
    if (c >= 'a' && c <= 'z')
        return c - 'a';
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= '2' && c <= '7')
        return 26 + (c - '2');
    return -1;
}

int wzp_base32_decode(const char *text, size_t len, uint8_t *out, size_t cap)
{
    size_t o = 0, nchar = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '-' || c == ' ' || c == '\t' || c == '\n' || c == '\r')
            continue;
        int v = b32val(c);
        if (v < 0)
            return WZP_ERR_MALFORMED;
        nchar++;
        acc = (acc << 5 | (uint32_t)v) & 0xfff;
        bits += 5;
        if (bits >= 8) {
            if (o >= cap)
                return WZP_ERR_TOO_BIG;
            out[o++] = (uint8_t)(acc >> (bits - 8));
            bits -= 8;
        }
    }
    /* Leftover bits are padding: fewer than 5 and all zero, else the text was altered. */
    if (nchar != WZP_BASE32_LEN(o) || (acc & ((1u << bits) - 1)) != 0)
        return WZP_ERR_MALFORMED;
    return (int)o;
}
