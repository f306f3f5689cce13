/*
 * wzp — encrypted voice calls, direct through NATs when possible, relayed when not.
 *
 * Public API: error codes, logging and version. Feature APIs live beside this
 * header (client, identity, ...) and include it.
 */
#ifndef WZP_WZP_H
#define WZP_WZP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WZP_VERSION_STRING "0.1.0"

/* Marks the functions libwzp exports; the library is built with hidden visibility, so
 * everything else in it stays internal. */
#if defined(__GNUC__) || defined(__clang__)
#define WZP_API __attribute__((visibility("default")))
#else
#define WZP_API
#endif

/* Every fallible call returns 0 (or a count) on success and one of these on failure. */
typedef enum wzp_error {
    WZP_OK = 0,
    WZP_ERR_INVALID = -1,           /* bad argument or configuration */
    WZP_ERR_NOMEM = -2,             /* allocation failed */
    WZP_ERR_MALFORMED = -3,         /* bytes from the network did not parse */
    WZP_ERR_TOO_BIG = -4,           /* message or buffer over its limit */
    WZP_ERR_AGAIN = -5,             /* nothing to do now; try again later */
    WZP_ERR_IO = -6,                /* socket or file I/O failed (see errno in logs) */
    WZP_ERR_TLS = -7,               /* TLS failure other than a pin mismatch */
    WZP_ERR_PIN_MISMATCH = -8,      /* peer presented a certificate with another fingerprint */
    WZP_ERR_TIMEOUT = -9,           /* peer or relay did not answer in time */
    WZP_ERR_CLOSED = -10,           /* connection or call is closed */
    WZP_ERR_NOT_FOUND = -11,        /* no such peer, call, channel or file */
    WZP_ERR_REJECTED = -12,         /* the peer declined the call */
    WZP_ERR_BUSY = -13,             /* the peer is in another call */
    WZP_ERR_OFFLINE = -14,          /* the peer is not registered with the relay */
    WZP_ERR_UNREACHABLE = -15,      /* the relay could not be reached */
    WZP_ERR_RATE_LIMITED = -16,     /* too many requests */
    WZP_ERR_STATE = -17,            /* call not valid in the current state */
    WZP_ERR_PROTOCOL = -18,         /* peer violated the protocol */
    WZP_ERR_IDENTITY = -19,         /* identity missing, unreadable or invalid */
    WZP_ERR_AUDIO = -20,            /* audio file or codec failure */
    WZP_ERR_HANGUP = -21,           /* the peer hung up */
    WZP_ERR_CANCELLED = -22,        /* the caller cancelled before answer */
    WZP_ERR_EXPIRED = -23,          /* an unanswered call expired */
    WZP_ERR_LIMIT = -24,            /* a server-side capacity limit was reached */
    WZP_ERR_INTERNAL = -25,         /* a bug: an invariant did not hold */
    WZP_ERR_ALIAS_TAKEN = -26,      /* the relay binds that alias to another key */
    WZP_ERR_REPLACED = -27,         /* another client registered the same identity */
    WZP_ERR_PEER_UNREACHABLE = -28, /* nothing heard from the peer on any path */
    WZP_ERR_RELAY_FULL = -29,       /* the relay takes no more registrations (from this address) */
    WZP_ERR_DEVICE = -30,           /* sound device missing, busy, or gone */
    WZP_ERR_RESOLVE = -31,          /* a host name does not resolve (DNS) */
    WZP_ERR_EXISTS = -32,           /* the name or key is already stored (contacts) */
    WZP_ERR_KEY_CHANGED = -33,      /* the key called is offline; another holds its alias */
} wzp_error;

/* A short, static, human-readable description of an error code. Never NULL. */
WZP_API const char *wzp_strerror(int err);

typedef enum wzp_log_level {
    WZP_LOG_TRACE = 0,
    WZP_LOG_DEBUG = 1,
    WZP_LOG_INFO = 2,
    WZP_LOG_WARN = 3,
    WZP_LOG_ERROR = 4,
    WZP_LOG_NONE = 5,
} wzp_log_level;

/* Receives each log line (no trailing newline). May be called from any wzp thread. */
typedef void (*wzp_log_cb)(wzp_log_level level, const char *message, void *user);

/*
 * Installs a log hook; NULL restores the default (stderr). Safe while other
 * threads log: it waits for hook calls in progress, so once it returns the old
 * hook is not called again. Must not be called from inside the hook.
 */
WZP_API void wzp_set_log_handler(wzp_log_cb cb, void *user);
/* Messages below this level are dropped before formatting (any thread). Default: WZP_LOG_WARN. */
WZP_API void wzp_set_log_level(wzp_log_level level);
WZP_API wzp_log_level wzp_get_log_level(void);

#ifdef __cplusplus
}
#endif

#endif
