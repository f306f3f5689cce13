#include "net/udp.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "common/log.h"

void wzp_udp_config_default(wzp_udp_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
}

int wzp_udp_open(const wzp_addr *bind_addr, const wzp_udp_config *opts, wzp_addr *bound)
{
    int family = wzp_addr_family(bind_addr);
    if (family == AF_UNSPEC)
        return WZP_ERR_INVALID;
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        WZP_WARN("socket: %s", strerror(errno));
        return WZP_ERR_IO;
    }
    int one = 1;
    if (family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
        goto fail;
    if (opts && opts->reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    if (opts && opts->rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &opts->rcvbuf, sizeof(opts->rcvbuf));
    if (opts && opts->sndbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &opts->sndbuf, sizeof(opts->sndbuf));
    if (bind(fd, &bind_addr->u.sa, bind_addr->len) < 0)
        goto fail;
    if (bound) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
            wzp_addr_from_sockaddr(bound, (struct sockaddr *)&ss, len) < 0)
            goto fail;
    }
    return fd;
fail : {
    char buf[WZP_ADDR_STRLEN];
    WZP_WARN("udp socket on %s: %s", wzp_addr_format(bind_addr, buf, sizeof(buf)), strerror(errno));
    close(fd);
    return WZP_ERR_IO;
}
}

int wzp_udp_recv_batch(int fd, wzp_udp_msg *msgs, size_t n)
{
    struct mmsghdr hdr[WZP_UDP_BATCH];
    struct iovec iov[WZP_UDP_BATCH];
    if (n > WZP_UDP_BATCH)
        n = WZP_UDP_BATCH;
    memset(hdr, 0, n * sizeof(hdr[0]));
    for (size_t i = 0; i < n; i++) {
        iov[i].iov_base = msgs[i].data;
        iov[i].iov_len = msgs[i].cap;
        hdr[i].msg_hdr.msg_iov = &iov[i];
        hdr[i].msg_hdr.msg_iovlen = 1;
        hdr[i].msg_hdr.msg_name = &msgs[i].peer.u.ss;
        hdr[i].msg_hdr.msg_namelen = sizeof(msgs[i].peer.u.ss);
    }
    int got;
    do {
        got = recvmmsg(fd, hdr, (unsigned)n, MSG_DONTWAIT, NULL);
    } while (got < 0 && errno == EINTR);
    if (got < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        /* ICMP errors from earlier sends surface here on Linux; they are not fatal. */
        if (errno == ECONNREFUSED || errno == EHOSTUNREACH || errno == ENETUNREACH)
            return 0;
        return WZP_ERR_IO;
    }
    for (int i = 0; i < got; i++) {
        msgs[i].peer.len = hdr[i].msg_hdr.msg_namelen;
        wzp_addr_unmap_v4(&msgs[i].peer);
        msgs[i].len = (hdr[i].msg_hdr.msg_flags & MSG_TRUNC) ? 0 : hdr[i].msg_len;
    }
    return got;
}

bool wzp_udp_send_skippable(int e)
{
    return e == ECONNREFUSED || e == EHOSTUNREACH || e == ENETUNREACH || e == EAFNOSUPPORT ||
           e == EINVAL || e == EPERM || e == EMSGSIZE || e == EDESTADDRREQ || e == EADDRNOTAVAIL;
}

int wzp_udp_send_batch(int fd, const wzp_udp_msg *msgs, size_t n)
{
    struct mmsghdr hdr[WZP_UDP_BATCH];
    struct iovec iov[WZP_UDP_BATCH];
    size_t done = 0;
    if (n > WZP_UDP_BATCH)
        n = WZP_UDP_BATCH;
    memset(hdr, 0, n * sizeof(hdr[0]));
    for (size_t i = 0; i < n; i++) {
        iov[i].iov_base = msgs[i].data;
        iov[i].iov_len = msgs[i].len;
        hdr[i].msg_hdr.msg_iov = &iov[i];
        hdr[i].msg_hdr.msg_iovlen = 1;
        hdr[i].msg_hdr.msg_name = (void *)&msgs[i].peer.u.ss;
        hdr[i].msg_hdr.msg_namelen = msgs[i].peer.len;
    }
    while (done < n) {
        int sent = sendmmsg(fd, hdr + done, (unsigned)(n - done), MSG_DONTWAIT);
        if (sent > 0) {
            done += (size_t)sent;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
            break;
        if (wzp_udp_send_skippable(errno)) {
            done++;
            continue;
        }
        return done ? (int)done : WZP_ERR_IO;
    }
    return (int)done;
}

int wzp_udp_send(int fd, const wzp_addr *to, const uint8_t *data, size_t len)
{
    wzp_udp_msg m = {.data = (uint8_t *)data, .cap = len, .len = len, .peer = *to};
    int rv = wzp_udp_send_batch(fd, &m, 1);
    if (rv < 0)
        return rv;
    return rv == 1 ? 0 : WZP_ERR_AGAIN;
}
