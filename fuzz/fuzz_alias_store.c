/*
 * Fuzzes the relay's alias bindings file parser (src/relay/alias_store.c).
 * Beyond "no crash, no leak": every entry it accepts formats back to a line
 * that parses to the same entry, and it never reports more entries than
 * the input has lines.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay/alias_store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same_entry(void *user, const wzp_alias_entry *e)
{
    const wzp_alias_entry *want = user;
    if (strcmp(e->alias, want->alias) != 0 || memcmp(e->fp, want->fp, sizeof(e->fp)) != 0 ||
        e->expires != want->expires)
        abort();
    return 0;
}

static int check_entry(void *user, const wzp_alias_entry *e)
{
    size_t *n = user;
    (*n)++;
    char buf[sizeof(WZP_ALIAS_STORE_HEADER) + WZP_ALIAS_STORE_LINE_MAX];
    size_t hl = strlen(WZP_ALIAS_STORE_HEADER);
    memcpy(buf, WZP_ALIAS_STORE_HEADER, hl);
    int len = wzp_alias_store_format(e, buf + hl, sizeof(buf) - hl);
    if (len <= 0 || strlen(e->alias) == 0)
        abort();
    size_t line = 0;
    if (wzp_alias_store_parse((const uint8_t *)buf, hl + (size_t)len, same_entry, (void *)e,
                              &line) != 0)
        abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = 0, line = 0, lines = 0;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';
    int rv = wzp_alias_store_parse(data, size, check_entry, &n, &line);
    if (n > lines || (rv != 0 && (line == 0 || line > lines + 1)))
        abort();
    return 0;
}
