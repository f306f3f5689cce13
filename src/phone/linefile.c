/* Line-based state files: see linefile.h. */
#include "phone/linefile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "common/atomic_file.h"

int wzp_linefile_parse(const wzp_linefile *f, const uint8_t *data, size_t len, void *coll,
                       size_t *line, const char **why)
{
    const char *dummy;
    size_t dline;
    if (!why)
        why = &dummy;
    if (!line)
        line = &dline;
    memset(coll, 0, f->coll_size);
    size_t hl = strlen(f->header), lineno = 1;
    *line = 1;
    *why = "";
    if (len < hl || memcmp(data, f->header, hl) != 0) {
        *why = f->not_header;
        return WZP_ERR_MALFORMED;
    }
    for (size_t off = hl; off < len;) {
        *line = ++lineno;
        const char *p = (const char *)data + off;
        const char *nl = memchr(p, '\n', len - off);
        if (!nl) {
            *why = "cut short (no end of line)";
            return WZP_ERR_MALFORMED;
        }
        size_t n = (size_t)(nl - p);
        off += n + 1;
        if (n == 0 || p[0] == '#')
            continue;
        int rc = f->take_line(coll, p, n, why);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int wzp_linefile_load(const wzp_linefile *f, const char *dir, void *coll, size_t *line,
                      const char **why)
{
    memset(coll, 0, f->coll_size);
    if (line)
        *line = 0;
    if (why)
        *why = "";
    uint8_t *data;
    size_t len;
    int rc = wzp_read_small_file(dir, f->file, f->file_max, &data, &len);
    if (rc == WZP_ERR_NOT_FOUND)
        return 0;
    if (rc < 0)
        return rc;
    rc = wzp_linefile_parse(f, data, len, coll, line, why);
    free(data);
    if (rc < 0)
        f->free(coll);
    return rc;
}

int wzp_linefile_update(const wzp_linefile *f, const char *dir, void *coll,
                        int (*edit)(void *coll, void *user), void *user, size_t *line,
                        const char **why)
{
    if (line)
        *line = 0;
    if (why)
        *why = "";
    /* Two commands at once (a call and a listener, two edits) must not lose each other's
     * change. */
    int fd = wzp_lock_state_file(dir, f->file);
    if (fd < 0)
        return fd;
    int rc = wzp_linefile_load(f, dir, coll, line, why);
    if (rc == 0)
        rc = edit(coll, user);
    char *text = NULL;
    size_t len = 0;
    if (rc == 0)
        rc = f->format(coll, &text, &len);
    if (rc == 0)
        rc = wzp_write_atomic(dir, f->file, text, len, 0600);
    free(text);
    f->free(coll);
    close(fd); /* releases the lock */
    return rc;
}

int wzp_linefile_format(const char *header, size_t line_max, const void *coll, size_t first,
                        size_t n, int (*line)(const void *coll, size_t i, char *buf, size_t cap),
                        char **out, size_t *len)
{
    size_t cap = strlen(header) + 1 + n * line_max, off;
    char *buf = malloc(cap);
    if (!buf)
        return WZP_ERR_NOMEM;
    off = (size_t)snprintf(buf, cap, "%s", header);
    for (size_t i = first; i < first + n; i++) {
        int w = line(coll, i, buf + off, cap - off);
        if (w < 0) {
            free(buf);
            return w;
        }
        off += (size_t)w;
    }
    *out = buf;
    *len = off;
    return 0;
}

bool wzp_linefile_token(const char **p, const char *end, const char **tok, size_t *tl)
{
    if (*p >= end)
        return false;
    const char *sp = memchr(*p, ' ', (size_t)(end - *p));
    const char *stop = sp ? sp : end;
    *tok = *p;
    *tl = (size_t)(stop - *p);
    *p = sp ? sp + 1 : end;
    return true;
}
