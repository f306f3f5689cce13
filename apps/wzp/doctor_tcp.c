/* wzp doctor's TLS-over-TCP check: see doctor_tcp.h. */
#include "doctor_tcp.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include <wzp/wzp.h>

#include "net/clock.h"
#include "net/loop.h"
#include "net/tcp.h"
#include "net/tcp_link.h"

static void ignore_record(void *user, const uint8_t *rec, size_t len)
{
    (void)user, (void)rec, (void)len;
}

/* The connect's outcome once the socket is writable: 0 or an errno. */
static int tcp_connect_error(int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);
    return getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 ? err : errno;
}

void doctor_tcp_check(doctor_tcp *out, const wzp_addr *relay, uint16_t port,
                      const uint8_t pin[WZP_FINGERPRINT_LEN], wzp_ts timeout)
{
    memset(out, 0, sizeof(*out));
    out->tried = true;
    out->port = port;
    wzp_addr to = *relay;
    wzp_addr_set_port(&to, port);
    gnutls_certificate_credentials_t cred = NULL;
    wzp_tcp_link *l = NULL;
    wzp_ts start = wzp_now(), end = start + timeout;
    int fd = wzp_tcp_connect(&to);
    int rc = fd < 0 ? fd : 0;
    if (rc == 0 && gnutls_certificate_allocate_credentials(&cred) != GNUTLS_E_SUCCESS)
        rc = WZP_ERR_NOMEM;
    if (rc == 0) {
        wzp_tcp_link_config lc = {.fd = fd, .cred = cred};
        memcpy(lc.pin, pin, WZP_FINGERPRINT_LEN);
        rc = wzp_tcp_link_new(&l, &lc); /* owns fd from here, even on failure */
        fd = -1;
    }
    while (rc == 0 && !wzp_tcp_link_up(l)) {
        wzp_ts now = wzp_now();
        if (now >= end) {
            snprintf(out->detail, sizeof(out->detail), "%s within %.0f s",
                     out->connected ? "no TLS handshake" : "no TCP connection",
                     (double)timeout / 1e9);
            break;
        }
        unsigned ev = wzp_tcp_link_events(l);
        struct pollfd pf = {
            .fd = wzp_tcp_link_fd(l),
            .events = (short)((ev & WZP_IO_READ ? POLLIN : 0) | (ev & WZP_IO_WRITE ? POLLOUT : 0))};
        int wait = (int)((end - now + WZP_MS(1) - 1) / WZP_MS(1));
        if (poll(&pf, 1, wait) <= 0)
            continue;
        if (!out->connected && (pf.revents & (POLLOUT | POLLERR | POLLHUP))) {
            int err = tcp_connect_error(pf.fd);
            if (err) {
                snprintf(out->detail, sizeof(out->detail), "TCP connect: %s", strerror(err));
                break;
            }
            out->connected = true;
            out->connect = wzp_now() - start;
        }
        rc = wzp_tcp_link_io(l, ignore_record, NULL);
        if (rc == 0 && wzp_tcp_link_up(l)) {
            out->connected = true;
            out->ok = true;
            out->handshake = wzp_now() - start - out->connect;
        }
    }
    if (rc < 0) {
        out->pin_mismatch = rc == WZP_ERR_PIN_MISMATCH;
        const char *why = l ? wzp_tcp_link_error(l) : "";
        snprintf(out->detail, sizeof(out->detail), "%s", why[0] ? why : wzp_strerror(rc));
    }
    wzp_tcp_link_free(l);
    if (cred)
        gnutls_certificate_free_credentials(cred);
}
