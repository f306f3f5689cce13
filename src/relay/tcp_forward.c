#include "relay/tcp_forward.h"

#include <string.h>

#include "common/tunnel_addr.h"

static bool no_ctl(void *user, const wzp_addr *from, const uint8_t *p, size_t len)
{
    return false; /* only relay frames are judged here; QUIC is the owner's */
}

void wzp_tcp_forward_init(wzp_tcp_forward *tf, wzp_chan_table *table, wzp_forwarder *fwd,
                          wzp_tcp_listener *tcp)
{
    memset(tf, 0, sizeof(*tf));
    tf->batch = (wzp_fwd_batch){.table = table, .ctl = no_ctl, .ctl_user = tf};
    tf->fwd = fwd;
    tf->tcp = tcp;
}

void wzp_tcp_forward_send(wzp_tcp_forward *tf, const wzp_addr *to, const uint8_t *data, size_t len)
{
    if (wzp_addr_is_tunnel(to)) {
        if (tf->tcp)
            wzp_tcp_listener_send(tf->tcp, to, data, len);
    } else {
        wzp_forwarder_send(tf->fwd, to, data, len);
    }
}

void wzp_tcp_forward_frame(wzp_tcp_forward *tf, const wzp_addr *from, const uint8_t *data,
                           size_t len, wzp_ts now)
{
    uint8_t buf[WZP_FWD_MAX_DGRAM];
    wzp_fwd_out out[1];
    size_t nout = 0;
    if (len > sizeof(buf))
        return;
    memcpy(buf, data, len);
    wzp_fwd_handle(&tf->batch, buf, len, 0, from, now, out, &nout);
    for (size_t i = 0; i < nout; i++)
        wzp_tcp_forward_send(tf, &out[i].peer, out[i].data, out[i].len);
}
