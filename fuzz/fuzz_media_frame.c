/*
 * Media datagrams from the network: the header codec, then a script of
 * inserts and pulls driving a playout buffer and a media receiver (Opus
 * decode, FEC, concealment) with attacker-chosen frames and timing.
 *
 * Input: the whole input is first decoded as one datagram (and re-encoded,
 * which must reproduce it). Then, as a script of records:
 *   op byte: low 2 bits = 0 insert, 1 pull, 2 pull, 3 insert;
 *            high 6 bits = milliseconds to advance the clock first
 *   insert:  1 length byte, then that many datagram bytes
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "media/media_session.h"
#include "media/playout.h"
#include "wire/media_frame.h"

/* Invariants hold in every build (CHECK() vanishes under NDEBUG). */
#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c))                                                                                  \
            abort();                                                                               \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wzp_media_frame f;
    if (wzp_media_frame_decode(&f, data, size) == 0) {
        static uint8_t out[WZP_MEDIA_MAX_FRAME];
        int n = wzp_media_frame_encode(&f, out, sizeof(out));
        CHECK(n == (int)size && memcmp(out, data, size) == 0);
    }
    if (size < 1)
        return 0;

    /* A small buffer so wrap-around of the slot ring is reachable. */
    wzp_playout_config pc = {.target_delay = WZP_MS(20 * (1 + data[0] % 4)),
                             .capacity = 8 + data[0] % 16,
                             .adaptive = (data[0] & 0x80) != 0};
    wzp_playout *pb = NULL;
    wzp_playout_new(&pb, &pc);
    wzp_media_rx_config rc;
    wzp_media_rx_config_default(&rc);
    rc.playout = pc;
    wzp_media_rx *rx = NULL;
    wzp_media_rx_new(&rx, &rc);
    CHECK(pb && rx);

    wzp_ts now = WZP_SEC(1);
    uint64_t pulls = 0;
    int16_t pcm[WZP_AUDIO_FRAME_SAMPLES];
    size_t i = 1;
    while (i < size) {
        uint8_t op = data[i++];
        now += WZP_MS(op >> 2);
        if ((op & 3) == 1 || (op & 3) == 2) {
            wzp_playout_frame fr;
            wzp_playout_pull(pb, now, &fr);
            if (fr.kind != WZP_PLAYOUT_WAIT)
                pulls++;
            if (fr.kind == WZP_PLAYOUT_FRAME)
                CHECK(fr.len <= WZP_MEDIA_MAX_PAYLOAD && (fr.len == 0 || fr.payload));
            int k = wzp_media_rx_pull(rx, now, pcm);
            CHECK(k >= WZP_MEDIA_RX_SILENCE && k <= WZP_MEDIA_RX_COMFORT);
            continue;
        }
        if (i >= size)
            break;
        size_t len = data[i++];
        if (len > size - i)
            len = size - i;
        if (wzp_media_frame_decode(&f, data + i, len) == 0)
            wzp_playout_insert(pb, f.seq, f.timestamp, f.flags, f.payload, f.payload_len, now);
        wzp_media_rx_datagram(rx, data + i, len, now);
        i += len;
        CHECK(wzp_playout_depth(pb) <= pc.capacity);
    }

    wzp_playout_stats st;
    wzp_playout_get_stats(pb, &st);
    CHECK(st.played + st.concealed + st.dtx + st.held == pulls);
    CHECK(st.received + st.duplicate + st.late + st.invalid <= st.inserted);
    wzp_playout_free(pb);
    wzp_media_rx_free(rx);
    return 0;
}
