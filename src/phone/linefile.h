/*
 * The mechanics the line-based state files (contacts, history) share: a
 * header line, then one record a line, blank lines and '#' comments skipped;
 * read whole with a size limit, changed under a lock and written atomically.
 * What a line holds is the caller's, through the callbacks in wzp_linefile.
 */
#ifndef WZP_PHONE_LINEFILE_H
#define WZP_PHONE_LINEFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wzp_linefile {
    const char *file;       /* its name in the state directory */
    size_t file_max;        /* longest file read */
    const char *header;     /* the first line, LF included */
    const char *not_header; /* why, when the first line is something else */
    size_t coll_size;       /* sizeof the collection: zeroed before a parse */
    /* One line (not blank, no comment, LF dropped) into the collection: 0, or WZP_ERR_MALFORMED
     * with *why set, or another error. */
    int (*take_line)(void *coll, const char *p, size_t n, const char **why);
    /* The whole file's text, as wzp_linefile_format makes it. */
    int (*format)(const void *coll, char **out, size_t *len);
    void (*free)(void *coll);
} wzp_linefile;

/* Parses a file's bytes into coll: 0, WZP_ERR_MALFORMED with *line (1-based) and *why, or
 * another error. coll may hold records on failure: free it. line and why may be NULL. */
int wzp_linefile_parse(const wzp_linefile *f, const uint8_t *data, size_t len, void *coll,
                       size_t *line, const char **why);

/* Reads and parses dir/f->file; a missing file is an empty collection. As wzp_linefile_parse,
 * but coll is freed on failure. */
int wzp_linefile_load(const wzp_linefile *f, const char *dir, void *coll, size_t *line,
                      const char **why);

/* Under the file's lock: load into coll, edit(coll, user), format and write back atomically.
 * 0, the load's or edit's error, or a format or write error. */
int wzp_linefile_update(const wzp_linefile *f, const char *dir, void *coll,
                        int (*edit)(void *coll, void *user), void *user, size_t *line,
                        const char **why);

/* The file's text: header, then line(coll, i, ...) for i in [first, first + n), each writing one
 * line of at most line_max bytes (LF and NUL included) and returning its length or an error.
 * 0 with *out (free() it) and *len, or the first error. */
int wzp_linefile_format(const char *header, size_t line_max, const void *coll, size_t first,
                        size_t n, int (*line)(const void *coll, size_t i, char *buf, size_t cap),
                        char **out, size_t *len);

/* The next space-separated token of [*p, end): its start and length; false at the end. */
bool wzp_linefile_token(const char **p, const char *end, const char **tok, size_t *tl);

#endif
