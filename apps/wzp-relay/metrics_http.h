/*
 * The relay's metrics endpoint: an HTTP server (libmicrohttpd, on its own
 * thread) answering GET /metrics with the text render() produces. render runs
 * on the HTTP thread, so it must only read what other threads publish
 * (atomics, snapshots under a short lock): a scrape never holds up
 * forwarding.
 */
#ifndef WZP_APP_METRICS_HTTP_H
#define WZP_APP_METRICS_HTTP_H

#include <stddef.h>

#include "common/addr.h"

typedef struct wzp_metrics_http wzp_metrics_http;

/* Returns a malloc'ed body (the server frees it) and its length, or NULL on failure (500). */
typedef char *(*wzp_metrics_render_fn)(void *user, size_t *len);

/* Listens on bind (port 0: pick one) and starts the thread. 0, WZP_ERR_INVALID
 * (not IPv4/IPv6), WZP_ERR_NOMEM, or WZP_ERR_IO (cannot bind; errno says why). */
int wzp_metrics_http_new(wzp_metrics_http **out, const wzp_addr *bind, wzp_metrics_render_fn render,
                         void *user);
/* Stops the thread (waits for a scrape under way) and frees. NULL is fine. */
void wzp_metrics_http_free(wzp_metrics_http *h);
/* The bound address, with the actual port. */
const wzp_addr *wzp_metrics_http_addr(const wzp_metrics_http *h);

#endif
