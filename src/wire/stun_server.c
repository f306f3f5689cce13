#include "wire/stun_server.h"

#include <wzp/wzp.h>

#include "wire/stun.h"

int wzp_stun_respond(const uint8_t *req, size_t len, const wzp_addr *from, uint8_t *out, size_t cap)
{
    wzp_stun_msg m;
    if (wzp_stun_decode(&m, req, len) < 0)
        return WZP_ERR_MALFORMED;
    if (m.type != WZP_STUN_BINDING_REQUEST)
        return WZP_ERR_INVALID;
    if (wzp_addr_family(from) == AF_UNSPEC)
        return WZP_ERR_INVALID;

    wzp_stun_wr sw;
    if (m.n_unknown) {
        /* RFC 8489 section 6.3.1.1: 420, listing what we did not understand. */
        wzp_stun_begin(&sw, out, cap, WZP_STUN_BINDING_ERROR, m.tid);
        wzp_stun_put_error(&sw, 420, "Unknown");
        wzp_stun_put_unknown_attrs(&sw, m.unknown, m.n_unknown);
    } else {
        wzp_stun_begin(&sw, out, cap, WZP_STUN_BINDING_SUCCESS, m.tid);
        wzp_stun_put_addr(&sw, from, true);
    }
    return wzp_stun_finish(&sw, true);
}
