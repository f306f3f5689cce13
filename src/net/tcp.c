#include "net/tcp.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <string.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "common/log.h"

/* A non-blocking TCP socket of addr's family: the fd or a negative wzp_error. */
static int tcp_socket(const wzp_addr *addr)
{
    int fam = wzp_addr_family(addr);
    if (fam == AF_UNSPEC)
        return WZP_ERR_INVALID;
    int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    return fd < 0 ? WZP_ERR_IO : fd;
}

int wzp_tcp_listen(const wzp_addr *addr, wzp_addr *bound)
{
    int fd = tcp_socket(addr);
    if (fd < 0)
        return fd;
    int one = 1;
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (wzp_addr_family(addr) == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, &addr->u.sa, addr->len) < 0 || listen(fd, 1024) < 0) {
        char buf[WZP_ADDR_STRLEN];
        WZP_ERROR("tcp: cannot listen on %s: %s", wzp_addr_format(addr, buf, sizeof(buf)),
                  strerror(errno));
        close(fd);
        return WZP_ERR_IO;
    }
    if (bound) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
            wzp_addr_from_sockaddr(bound, (struct sockaddr *)&ss, len) < 0) {
            close(fd);
            return WZP_ERR_IO;
        }
    }
    return fd;
}

int wzp_tcp_connect(const wzp_addr *addr)
{
    int fd = tcp_socket(addr);
    if (fd < 0)
        return fd;
    if (connect(fd, &addr->u.sa, addr->len) < 0 && errno != EINPROGRESS) {
        close(fd);
        return WZP_ERR_UNREACHABLE;
    }
    return fd;
}
