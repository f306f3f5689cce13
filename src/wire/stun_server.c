#include "wire/stun_server.h"

#include <wzp/wzp.h>

#include "wire/stun.h"

static int answer(const wzp_stun_msg *m, const wzp_addr *from, const wzp_addr *other, uint8_t *out,
                  size_t cap)
{
    wzp_stun_wr sw;
    wzp_stun_begin(&sw, out, cap, WZP_STUN_BINDING_SUCCESS, m->tid);
    wzp_stun_put_addr(&sw, from, true);
    if (other)
        wzp_stun_put_addr_attr(&sw, WZP_STUN_ATTR_OTHER_ADDRESS, other, false);
    return wzp_stun_finish(&sw, true);
}

int wzp_stun_respond_alt(const uint8_t *req, size_t len, const wzp_addr *from,
                         const wzp_addr *other, uint32_t *change, uint8_t *out, size_t cap)
{
    wzp_stun_msg m;
    if (wzp_stun_decode(&m, req, len) < 0)
        return WZP_ERR_MALFORMED;
    if (m.type != WZP_STUN_BINDING_REQUEST)
        return WZP_ERR_INVALID;
    if (wzp_addr_family(from) == AF_UNSPEC)
        return WZP_ERR_INVALID;
    if (change)
        *change = 0;
    /* A CHANGE-REQUEST we cannot honour is, to the client, an attribute we do not know. */
    if (m.has_change && m.change && !change && m.n_unknown < WZP_STUN_MAX_UNKNOWN)
        m.unknown[m.n_unknown++] = WZP_STUN_ATTR_CHANGE_REQUEST;

    if (m.n_unknown) {
        /* RFC 8489 section 6.3.1.1: 420, listing what we did not understand. */
        wzp_stun_wr sw;
        wzp_stun_begin(&sw, out, cap, WZP_STUN_BINDING_ERROR, m.tid);
        wzp_stun_put_error(&sw, 420, "Unknown");
        wzp_stun_put_unknown_attrs(&sw, m.unknown, m.n_unknown);
        return wzp_stun_finish(&sw, true);
    }
    if (change && m.has_change)
        *change = m.change & (WZP_STUN_CHANGE_IP | WZP_STUN_CHANGE_PORT);
    int n = other && wzp_addr_family(other) != AF_UNSPEC ? answer(&m, from, other, out, cap)
                                                         : WZP_ERR_TOO_BIG;
    /* OTHER-ADDRESS only where it keeps the answer within the amplification bound. */
    if (n < 0 || (size_t)n > len + WZP_STUN_RESPONSE_GROWTH)
        n = answer(&m, from, NULL, out, cap);
    return n;
}

int wzp_stun_respond(const uint8_t *req, size_t len, const wzp_addr *from, uint8_t *out, size_t cap)
{
    return wzp_stun_respond_alt(req, len, from, NULL, NULL, out, cap);
}
