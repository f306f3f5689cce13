/*
 * Fuzzes the call history parser (src/phone/history.c). Beyond "no crash, no
 * leak": what it accepts formats back to a file that parses to the same
 * records and formats to the same bytes, an error names a line the input has,
 * and it never reports more records than the input has lines.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phone/history.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same(const wzp_history_rec *a, const wzp_history_rec *b)
{
    return a->start == b->start && a->incoming == b->incoming && a->outcome == b->outcome &&
           !strcmp(a->reason, b->reason) && a->have_peer == b->have_peer &&
           !memcmp(a->fp, b->fp, sizeof(a->fp)) && !strcmp(a->name, b->name) &&
           a->duration_ms == b->duration_ms && a->path == b->path &&
           a->loss_tenths == b->loss_tenths && a->rtt_ms == b->rtt_ms;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t lines = 0, line = 0;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    wzp_history h;
    const char *why = NULL;
    int rv = wzp_history_parse(data, size, &h, &line, &why);
    if (rv != 0) {
        if (rv != WZP_ERR_MALFORMED || line == 0 || line > lines + 1 || !why || !why[0])
            abort();
        wzp_history_free(&h);
        return 0;
    }
    if (h.n > lines)
        abort();
    char *text, *text2;
    size_t len, len2;
    if (wzp_history_format(&h, 0, &text, &len) != 0)
        abort();
    wzp_history back;
    if (wzp_history_parse((const uint8_t *)text, len, &back, &line, &why) != 0 || back.n != h.n)
        abort();
    for (size_t i = 0; i < h.n; i++)
        if (!same(&h.v[i], &back.v[i]))
            abort();
    if (wzp_history_format(&back, 0, &text2, &len2) != 0 || len2 != len || memcmp(text, text2, len))
        abort();
    free(text);
    free(text2);
    wzp_history_free(&back);
    wzp_history_free(&h);
    return 0;
}
