/* Internal logging: cheap level check before any formatting. */
#ifndef WZP_COMMON_LOG_H
#define WZP_COMMON_LOG_H

#include <wzp/wzp.h>

extern wzp_log_level wzp__log_level;

void wzp__log(wzp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define WZP_LOG(level, ...)                                                                        \
    do {                                                                                           \
        if ((level) >= wzp__log_level)                                                             \
            wzp__log((level), __VA_ARGS__);                                                        \
    } while (0)
#define WZP_TRACE(...) WZP_LOG(WZP_LOG_TRACE, __VA_ARGS__)
#define WZP_DEBUG(...) WZP_LOG(WZP_LOG_DEBUG, __VA_ARGS__)
#define WZP_INFO(...)  WZP_LOG(WZP_LOG_INFO, __VA_ARGS__)
#define WZP_WARN(...)  WZP_LOG(WZP_LOG_WARN, __VA_ARGS__)
#define WZP_ERROR(...) WZP_LOG(WZP_LOG_ERROR, __VA_ARGS__)

#endif
