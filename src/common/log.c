#include "common/log.h"

#include <stdarg.h>
#include <stdio.h>

wzp_log_level wzp__log_level = WZP_LOG_WARN;
static wzp_log_cb log_cb;
static void *log_user;

void wzp_set_log_handler(wzp_log_cb cb, void *user)
{
    log_cb = cb;
    log_user = user;
}

void wzp_set_log_level(wzp_log_level level)
{
    wzp__log_level = level;
}

wzp_log_level wzp_get_log_level(void)
{
    return wzp__log_level;
}

void wzp__log(wzp_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"trace", "debug", "info", "warn", "error", "none"};
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (log_cb) {
        log_cb(level, buf, log_user);
        return;
    }
    fprintf(stderr, "wzp %s: %s\n", names[level <= WZP_LOG_NONE ? level : WZP_LOG_NONE], buf);
}
