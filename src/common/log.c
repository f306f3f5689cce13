#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

_Atomic int wzp__log_level = WZP_LOG_WARN;

/* Log calls hold it for reading (many at once); swapping the hook waits for
 * them. Writer-preferring where the C library offers it, so busy logging
 * threads cannot starve a swap. */
#ifdef PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP
static pthread_rwlock_t hook_lock = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
#else
static pthread_rwlock_t hook_lock = PTHREAD_RWLOCK_INITIALIZER;
#endif
static wzp_log_cb log_cb;
static void *log_user;

void wzp_set_log_handler(wzp_log_cb cb, void *user)
{
    pthread_rwlock_wrlock(&hook_lock);
    log_cb = cb;
    log_user = user;
    pthread_rwlock_unlock(&hook_lock);
}

void wzp_set_log_level(wzp_log_level level)
{
    atomic_store(&wzp__log_level, (int)level);
}

wzp_log_level wzp_get_log_level(void)
{
    return (wzp_log_level)atomic_load(&wzp__log_level);
}

const char *wzp_log_tag_id(char out[WZP_LOG_TAG_MAX], const char *kind, const uint8_t *id,
                           size_t len)
{
    int n = snprintf(out, WZP_LOG_TAG_MAX, "%s ", kind);
    for (size_t i = 0; i < len && i < 4 && n > 0 && n + 3 <= WZP_LOG_TAG_MAX; i++)
        n += snprintf(out + n, (size_t)(WZP_LOG_TAG_MAX - n), "%02x", id[i]);
    return out;
}

static const char *const level_names[] = {"trace", "debug", "info", "warn", "error", "none"};

/* Appends s[0..len) as JSON string content: quotes, backslashes and control characters
 * escaped, bytes above 0x7f as \u00XX so the line is valid JSON whatever the text. */
static size_t json_escape(char *out, size_t cap, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < len && n + 7 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\') {
            out[n++] = '\\';
            out[n++] = (char)ch;
        } else if (ch < 0x20 || ch > 0x7e) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", ch);
        } else {
            out[n++] = (char)ch;
        }
    }
    return n;
}

void wzp_log_json_handler(wzp_log_level level, const char *message, void *file)
{
    char line[8192]; /* wzp__log messages are < 1 KiB: escaped (x6) they still fit */
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof(line), "{\"ts\":\"%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(line + n, sizeof(line) - n, ".%03ldZ\",\"level\":\"%s\"",
                          ts.tv_nsec / 1000000,
                          level_names[level <= WZP_LOG_NONE ? level : WZP_LOG_NONE]);
    /* wzp__log wrote a tag as "[tag] message": give it its own field. */
    const char *end = message[0] == '[' ? strstr(message, "] ") : NULL;
    if (end) {
        n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"tag\":\"");
        n = json_escape(line, sizeof(line), n, message + 1, (size_t)(end - message - 1));
        line[n++] = '"';
        message = end + 2;
    }
    n += (size_t)snprintf(line + n, sizeof(line) - n, ",\"msg\":\"");
    n = json_escape(line, sizeof(line), n, message, strlen(message));
    snprintf(line + n, sizeof(line) - n, "\"}\n");
    fputs(line, file ? file : stderr); /* one write per line: lines from threads do not mix */
}

void wzp__log(wzp_log_level level, const char *tag, const char *fmt, ...)
{
    char buf[1024];
    int n = tag ? snprintf(buf, sizeof(buf), "[%s] ", tag) : 0;
    if (n < 0 || (size_t)n >= sizeof(buf))
        n = 0;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
    va_end(ap);
    pthread_rwlock_rdlock(&hook_lock);
    if (log_cb)
        log_cb(level, buf, log_user);
    else
        fprintf(stderr, "wzp %s: %s\n", level_names[level <= WZP_LOG_NONE ? level : WZP_LOG_NONE],
                buf);
    pthread_rwlock_unlock(&hook_lock);
}
