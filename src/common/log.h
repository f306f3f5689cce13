/*
 * Internal logging: a cheap level check before any formatting, safe from any
 * thread (the level is atomic; the hook is swapped under a lock that log
 * calls only read-hold). WZP_LOGX names what a line is about (a call, a
 * connection, a channel) with a short tag, so one call can be followed
 * through a busy relay's log: "wzp info: [call 3fa2c1d0] ringing".
 */
#ifndef WZP_COMMON_LOG_H
#define WZP_COMMON_LOG_H

#include <stdatomic.h>

#include <wzp/wzp.h>

extern _Atomic int wzp__log_level;

void wzp__log(wzp_log_level level, const char *tag, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define WZP_LOG_ON(level)                                                                          \
    ((int)(level) >= atomic_load_explicit(&wzp__log_level, memory_order_relaxed))

#define WZP_LOG(level, ...)                                                                        \
    do {                                                                                           \
        if (WZP_LOG_ON(level))                                                                     \
            wzp__log((level), NULL, __VA_ARGS__);                                                  \
    } while (0)
/* A line about `tag` (e.g. from wzp_log_tag_id), printed as "[tag] ...". */
#define WZP_LOGX(level, tag, ...)                                                                  \
    do {                                                                                           \
        if (WZP_LOG_ON(level))                                                                     \
            wzp__log((level), (tag), __VA_ARGS__);                                                 \
    } while (0)
#define WZP_TRACE(...) WZP_LOG(WZP_LOG_TRACE, __VA_ARGS__)
#define WZP_DEBUG(...) WZP_LOG(WZP_LOG_DEBUG, __VA_ARGS__)
#define WZP_INFO(...)  WZP_LOG(WZP_LOG_INFO, __VA_ARGS__)
#define WZP_WARN(...)  WZP_LOG(WZP_LOG_WARN, __VA_ARGS__)
#define WZP_ERROR(...) WZP_LOG(WZP_LOG_ERROR, __VA_ARGS__)

/*
 * A log handler (wzp_set_log_handler(wzp_log_json_handler, FILE *)) writing
 * one JSON object a line: {"ts":"2026-12-06T04:36:00.123Z","level":"info",
 * "tag":"call 3fa2c1d0","msg":"..."} ("tag" only for lines about something).
 * For log collectors: --log-json in wzp and wzp-relay.
 */
void wzp_log_json_handler(wzp_log_level level, const char *message, void *file);

/* Tag buffer size for wzp_log_tag_id: "call " + 8 hex digits + NUL, with room to spare. */
#define WZP_LOG_TAG_MAX 32

/* "kind hhhhhhhh" from the first 4 bytes of an id (a call id, a connection id). */
const char *wzp_log_tag_id(char out[WZP_LOG_TAG_MAX], const char *kind, const uint8_t *id,
                           size_t len);

#endif
