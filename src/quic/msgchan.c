/*
 * The message channel: length-prefixed messages on one bidirectional stream.
 * Outgoing messages stay queued until acknowledged (ngtcp2 does not copy
 * stream data); incoming ones are reassembled in a buffer bounded by
 * max_message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/bytes.h"
#include "quic/quic_int.h"

int wzp_quic_conn_send_message(wzp_quic_conn *c, const uint8_t *data, size_t len)
{
    if (!c || (!data && len))
        return WZP_ERR_INVALID;
    if (c->state >= CONN_CLOSING || c->close_requested)
        return WZP_ERR_CLOSED;
    if (len > UINT32_MAX)
        return WZP_ERR_TOO_BIG;
    wzp_quic_msg *m = malloc(sizeof(*m) + 4 + len);
    if (!m)
        return WZP_ERR_NOMEM;
    wzp_wr w = wzp_wr_init(m->data, 4 + len);
    wzp_wr_u32(&w, (uint32_t)len);
    wzp_wr_bytes(&w, data, len);
    m->next = NULL;
    m->len = 4 + len;
    m->sent = 0;
    m->offset = c->tx_offset;
    c->tx_offset += m->len;
    if (c->tx_tail)
        c->tx_tail->next = m;
    else
        c->tx_head = m;
    c->tx_tail = m;
    if (!c->tx_cur)
        c->tx_cur = m;
    wzp_quic_ep_mark_due(c);
    if (len)
        c->st.msgs_sent++;
    return 0;
}

/* Reassembles length-prefixed messages; ngtcp2 delivers stream bytes in order. */
int wzp_quic_msg_rx(wzp_quic_conn *c, const uint8_t *data, size_t len)
{
    wzp_rd r = wzp_rd_init(data, len);
    while (wzp_rd_left(&r) > 0) {
        if (!c->rx_in_body) {
            size_t want = 4 - c->rx_hdr_have, left = wzp_rd_left(&r);
            size_t n = want < left ? want : left;
            wzp_rd_copy(&r, c->rx_hdr + c->rx_hdr_have, n);
            c->rx_hdr_have += n;
            if (c->rx_hdr_have < 4)
                break;
            wzp_rd h = wzp_rd_init(c->rx_hdr, 4);
            uint32_t mlen = wzp_rd_u32(&h);
            c->rx_hdr_have = 0;
            if (mlen > c->opts.max_message) {
                char d[96];
                snprintf(d, sizeof(d), "peer sent a %u-byte message (limit %zu)", mlen,
                         c->opts.max_message);
                wzp_quic_conn_fail_later(c, WZP_ERR_PROTOCOL, NGTCP2_PROTOCOL_VIOLATION, d);
                return NGTCP2_ERR_CALLBACK_FAILURE;
            }
            if (mlen == 0)
                continue; /* the stream opener */
            c->rx_body = malloc(mlen);
            if (!c->rx_body) {
                wzp_quic_conn_fail_later(c, WZP_ERR_NOMEM, NGTCP2_INTERNAL_ERROR, "out of memory");
                return NGTCP2_ERR_CALLBACK_FAILURE;
            }
            c->rx_body_len = mlen;
            c->rx_body_have = 0;
            c->rx_in_body = true;
        }
        size_t want = c->rx_body_len - c->rx_body_have, left = wzp_rd_left(&r);
        size_t n = want < left ? want : left;
        wzp_rd_copy(&r, c->rx_body + c->rx_body_have, n);
        c->rx_body_have += n;
        if (c->rx_body_have == c->rx_body_len) {
            c->st.msgs_recv++;
            if (c->opts.cb.message && !c->close_requested)
                c->opts.cb.message(c->opts.user, c, c->rx_body, c->rx_body_len, c->now);
            free(c->rx_body);
            c->rx_body = NULL;
            c->rx_in_body = false;
        }
    }
    return 0;
}

void wzp_quic_msg_acked(wzp_quic_conn *c, uint64_t acked)
{
    /* Acks arrive in stream order; free whole messages below the offset,
     * never the one still being written. */
    while (c->tx_head && c->tx_head != c->tx_cur && c->tx_head->offset + c->tx_head->len <= acked) {
        wzp_quic_msg *m = c->tx_head;
        c->tx_head = m->next;
        if (c->tx_tail == m)
            c->tx_tail = NULL;
        free(m);
    }
}

void wzp_quic_msg_free_all(wzp_quic_conn *c)
{
    while (c->tx_head) {
        wzp_quic_msg *m = c->tx_head;
        c->tx_head = m->next;
        free(m);
    }
    c->tx_tail = c->tx_cur = NULL;
    free(c->rx_body);
    c->rx_body = NULL;
}
