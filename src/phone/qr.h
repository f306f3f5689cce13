/*
 * A QR code for the terminal (libqrencode): two module rows per text line
 * with Unicode half blocks, light modules drawn as blocks (the quiet zone
 * too), so on the usual light-on-dark terminal it shows dark-on-light, the
 * way scanners expect.
 */
#ifndef WZP_PHONE_QR_H
#define WZP_PHONE_QR_H

#include <stddef.h>
#include <stdint.h>

#define WZP_QR_QUIET 2 /* quiet zone, modules (the standard's 4 is more than phones need) */

/* Encodes text (error correction M) and renders it; *out is malloc'ed, NUL-terminated, lines
 * end in LF. *width (may be NULL) is the symbol's size in modules, without the quiet zone.
 * 0, WZP_ERR_TOO_BIG (text too long for a QR code), WZP_ERR_NOMEM. */
int wzp_qr_render(const char *text, char **out, int *width);

/* The rendering alone, from a width x width matrix (bit 0 of each byte: dark). */
int wzp_qr_render_matrix(const uint8_t *modules, int width, char **out);

#endif
