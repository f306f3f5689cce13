#include "relay/stun_alt.h"

#include <stdlib.h>
#include <unistd.h>

#include <wzp/wzp.h>

#include "common/rand.h"
#include "net/clock.h"
#include "net/udp.h"
#include "relay/fwd_batch.h"
#include "wire/stun.h"
#include "wire/stun_server.h"

#define RX_BATCH 16

enum { P1 = 0, P2 = 1 };

struct wzp_stun_alt {
    wzp_loop *loop;
    wzp_forwarder *fwd;
    int fd[2];
    wzp_addr addr[2];
    wzp_io io[2];
    wzp_fwd_stun_limit limit;
    uint64_t answered, limited;
    uint8_t rx[RX_BATCH][WZP_FWD_MAX_DGRAM];
    wzp_udp_msg msgs[RX_BATCH];
};

int wzp_stun_alt_open(wzp_stun_alt **out, const wzp_addr *ip, unsigned stun_rate)
{
    if (!out || !ip || wzp_addr_family(ip) == AF_UNSPEC)
        return WZP_ERR_INVALID;
    wzp_stun_alt *a = calloc(1, sizeof(*a));
    if (!a)
        return WZP_ERR_NOMEM;
    a->fd[P1] = a->fd[P2] = -1;
    wzp_io_init(&a->io[P1], NULL, a);
    wzp_io_init(&a->io[P2], NULL, a);
    wzp_fwd_stun_limit_init(&a->limit, stun_rate, 0, wzp_random_u64());
    for (int i = 0; i < RX_BATCH; i++)
        a->msgs[i] = (wzp_udp_msg){.data = a->rx[i], .cap = sizeof(a->rx[i])};
    wzp_addr any = *ip;
    wzp_addr_set_port(&any, 0);
    int fd = wzp_udp_open(&any, NULL, &a->addr[P2]);
    if (fd < 0) {
        free(a);
        return fd;
    }
    a->fd[P2] = fd;
    *out = a;
    return 0;
}

const wzp_addr *wzp_stun_alt_other(const wzp_stun_alt *a)
{
    return &a->addr[P2];
}

static void on_readable(wzp_loop *loop, wzp_io *io, unsigned events)
{
    wzp_stun_alt *a = io->arg;
    int k = io == &a->io[P1] ? P1 : P2;
    (void)loop;
    (void)events;
    int n;
    while ((n = wzp_udp_recv_batch(a->fd[k], a->msgs, RX_BATCH)) > 0) {
        wzp_ts now = wzp_now();
        for (int i = 0; i < n; i++) {
            wzp_udp_msg *m = &a->msgs[i];
            uint8_t ans[WZP_STUN_RESPONSE_MAX];
            uint32_t change = 0;
            int len = m->len ? wzp_stun_respond_alt(m->data, m->len, &m->peer, NULL, &change, ans,
                                                    sizeof(ans))
                             : WZP_ERR_MALFORMED;
            if (len <= 0 || (size_t)len > m->len + WZP_STUN_RESPONSE_GROWTH)
                continue; /* not a Binding request: nothing else is served here */
            if (!wzp_fwd_stun_allow(&a->limit, &m->peer, now)) {
                a->limited++;
                continue;
            }
            a->answered++;
            if (change & WZP_STUN_CHANGE_IP)
                wzp_forwarder_send(a->fwd, &m->peer, ans, (size_t)len);
            else
                wzp_udp_send(a->fd[change & WZP_STUN_CHANGE_PORT ? !k : k], &m->peer, ans,
                             (size_t)len);
        }
        if (n < RX_BATCH)
            break;
    }
}

int wzp_stun_alt_start(wzp_stun_alt *a, wzp_loop *loop, wzp_forwarder *fwd)
{
    const wzp_addr *relay = wzp_addr_family(&a->addr[P2]) == AF_INET6
                                ? wzp_forwarder_local_addr6(fwd)
                                : wzp_forwarder_local_addr(fwd);
    if (!relay)
        return WZP_ERR_INVALID; /* the relay does not serve this family */
    wzp_addr p1 = a->addr[P2];
    wzp_addr_set_port(&p1, wzp_addr_port(relay));
    int fd = wzp_udp_open(&p1, NULL, &a->addr[P1]);
    if (fd < 0)
        return fd;
    a->fd[P1] = fd;
    a->loop = loop;
    a->fwd = fwd;
    for (int k = P1; k <= P2; k++) {
        a->io[k].cb = on_readable;
        int rv = wzp_io_start(loop, &a->io[k], a->fd[k], WZP_IO_READ);
        if (rv < 0)
            return rv;
    }
    return 0;
}

void wzp_stun_alt_counts(const wzp_stun_alt *a, uint64_t *answered, uint64_t *limited)
{
    *answered = a->answered;
    *limited = a->limited;
}

void wzp_stun_alt_free(wzp_stun_alt *a)
{
    if (!a)
        return;
    for (int k = P1; k <= P2; k++) {
        if (a->loop && a->io[k].fd >= 0)
            wzp_io_stop(a->loop, &a->io[k]);
        if (a->fd[k] >= 0)
            close(a->fd[k]);
    }
    free(a);
}
