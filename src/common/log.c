#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>

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

void wzp__log(wzp_log_level level, const char *tag, const char *fmt, ...)
{
    static const char *const names[] = {"trace", "debug", "info", "warn", "error", "none"};
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
        fprintf(stderr, "wzp %s: %s\n", names[level <= WZP_LOG_NONE ? level : WZP_LOG_NONE], buf);
    pthread_rwlock_unlock(&hook_lock);
}
