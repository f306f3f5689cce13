#include "phone/qr.h"

#include <ctype.h>
#include <errno.h>
#include <qrencode.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

/* Each cell is 3 bytes of UTF-8 or a space. */
static const char *cell(bool top_light, bool bottom_light)
{
    if (top_light && bottom_light)
        return "\xe2\x96\x88"; /* U+2588 full block */
    if (top_light)
        return "\xe2\x96\x80"; /* U+2580 upper half */
    if (bottom_light)
        return "\xe2\x96\x84"; /* U+2584 lower half */
    return " ";
}

static bool light(const uint8_t *m, int width, int x, int y)
{
    x -= WZP_QR_QUIET;
    y -= WZP_QR_QUIET;
    if (x < 0 || y < 0 || x >= width || y >= width)
        return true; /* quiet zone */
    return !(m[(size_t)y * (size_t)width + (size_t)x] & 1);
}

int wzp_qr_render_matrix(const uint8_t *modules, int width, char **out)
{
    if (width <= 0 || width > 177)
        return WZP_ERR_INVALID;
    int full = width + 2 * WZP_QR_QUIET, rows = (full + 1) / 2;
    size_t cap = (size_t)rows * ((size_t)full * 3 + 1) + 1, off = 0;
    char *buf = malloc(cap);
    if (!buf)
        return WZP_ERR_NOMEM;
    for (int r = 0; r < rows; r++) {
        for (int x = 0; x < full; x++) {
            /* An odd last row pairs with a dark (absent) one: the bottom half stays empty. */
            bool bottom = 2 * r + 1 < full && light(modules, width, x, 2 * r + 1);
            const char *c = cell(light(modules, width, x, 2 * r), bottom);
            size_t l = strlen(c);
            memcpy(buf + off, c, l);
            off += l;
        }
        buf[off++] = '\n';
    }
    buf[off] = '\0';
    *out = buf;
    return 0;
}

int wzp_qr_render(const char *text, char **out, int *width)
{
    /* Upper case lets the encoder use alphanumeric mode for base32 (a smaller code); invites
     * are read in any case. */
    size_t n = strlen(text);
    char *up = malloc(n + 1);
    if (!up)
        return WZP_ERR_NOMEM;
    for (size_t i = 0; i <= n; i++)
        up[i] = (char)toupper((unsigned char)text[i]);
    errno = 0;
    QRcode *qr = QRcode_encodeString(up, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    free(up);
    if (!qr)
        return errno == ERANGE   ? WZP_ERR_TOO_BIG
               : errno == ENOMEM ? WZP_ERR_NOMEM
                                 : WZP_ERR_INVALID;
    int rc = wzp_qr_render_matrix(qr->data, qr->width, out);
    if (rc == 0 && width)
        *width = qr->width;
    QRcode_free(qr);
    return rc;
}
