#include "metrics_http.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include <wzp/wzp.h>

/* A scraper is a program or two; these keep a stray client from holding the thread. */
#define MAX_CONNS      8
#define CONN_TIMEOUT_S 10
#define CONTENT_TYPE   "text/plain; version=0.0.4; charset=utf-8"

struct wzp_metrics_http {
    struct MHD_Daemon *d;
    wzp_metrics_render_fn render;
    void *user;
    wzp_addr addr;
};

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *text)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
    enum MHD_Result rv = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rv;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **state)
{
    wzp_metrics_http *h = cls;
    (void)version;
    (void)upload;
    if (*upload_size)
        return reply(conn, MHD_HTTP_BAD_REQUEST, "no request body expected\n");
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return reply(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /metrics\n");
    if (strcmp(url, "/metrics") != 0)
        return reply(conn, MHD_HTTP_NOT_FOUND, "not found; the metrics are at /metrics\n");
    (void)state;
    size_t len = 0;
    char *body = h->render(h->user, &len);
    if (!body)
        return reply(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "cannot render the metrics\n");
    struct MHD_Response *r = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, CONTENT_TYPE);
    enum MHD_Result rv = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rv;
}

int wzp_metrics_http_new(wzp_metrics_http **out, const wzp_addr *bind, wzp_metrics_render_fn render,
                         void *user)
{
    int family = bind ? wzp_addr_family(bind) : AF_UNSPEC;
    if (!out || !render || (family != AF_INET && family != AF_INET6))
        return WZP_ERR_INVALID;
    wzp_metrics_http *h = calloc(1, sizeof(*h));
    if (!h)
        return WZP_ERR_NOMEM;
    h->render = render;
    h->user = user;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    if (family == AF_INET6)
        flags |= MHD_USE_IPv6;
    /* The HTTP thread takes no signals: they belong to the relay's loop (signalfd). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    h->d = MHD_start_daemon(flags, wzp_addr_port(bind), NULL, NULL, on_request, h,
                            MHD_OPTION_SOCK_ADDR, &bind->u.sa, MHD_OPTION_CONNECTION_LIMIT,
                            (unsigned)MAX_CONNS, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)CONN_TIMEOUT_S, MHD_OPTION_END);
    int err = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!h->d) {
        free(h);
        errno = err;
        return WZP_ERR_IO;
    }
    h->addr = *bind;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    if (info)
        wzp_addr_set_port(&h->addr, info->port);
    *out = h;
    return 0;
}

void wzp_metrics_http_free(wzp_metrics_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}

const wzp_addr *wzp_metrics_http_addr(const wzp_metrics_http *h)
{
    return &h->addr;
}
