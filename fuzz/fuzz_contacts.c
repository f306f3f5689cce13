/*
 * Fuzzes the contacts file parser (src/phone/contacts.c). Beyond "no crash,
 * no leak": what it accepts formats back to a file that parses to the same
 * contacts and formats to the same bytes (one spelling per contact list), an
 * error names a line the input has, and it never reports more contacts than
 * the input has lines.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "phone/contacts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t lines = 0, line = 0;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    wzp_contacts c;
    const char *why = NULL;
    int rv = wzp_contacts_parse(data, size, &c, &line, &why);
    if (rv != 0) {
        if (rv != WZP_ERR_MALFORMED || line == 0 || line > lines + 1 || !why || !why[0])
            abort();
        wzp_contacts_free(&c);
        return 0;
    }
    if (c.n > lines)
        abort();
    char *text, *text2;
    size_t len, len2;
    if (wzp_contacts_format(&c, &text, &len) != 0)
        abort();
    wzp_contacts back;
    if (wzp_contacts_parse((const uint8_t *)text, len, &back, &line, &why) != 0 || back.n != c.n ||
        (c.n && memcmp(back.v, c.v, c.n * sizeof(c.v[0])) != 0))
        abort();
    if (wzp_contacts_format(&back, &text2, &len2) != 0 || len2 != len || memcmp(text, text2, len))
        abort();
    free(text);
    free(text2);
    wzp_contacts_free(&back);
    wzp_contacts_free(&c);
    return 0;
}
