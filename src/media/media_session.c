#include "media/media_session.h"

#include <stdlib.h>
#include <string.h>

#include <wzp/wzp.h>

#include "common/log.h"
#include "common/rand.h"
#include "media/tempo.h"
#include "wire/media_frame.h"
#include "wire/media_parity.h"
#include "wire/media_red.h"

struct wzp_media_tx {
    wzp_opus_enc *enc;
    uint16_t seq;
    uint32_t ts;
    bool mute;
    bool dtx;     /* cfg.opus.dtx: VAD-driven DTX allowed */
    bool in_dtx;  /* last frame was suppressed or announced DTX */
    bool started; /* first frame sent (marker) */
    int quiet;    /* consecutive non-voice frames (saturates) */
    int gap;      /* frames suppressed since the last datagram */
    wzp_media_tx_stats st;
    uint8_t pkt[WZP_OPUS_MAX_PACKET];
    /* The last WZP_MEDIA_RED_REACH packets sent, for redundant copies. */
    struct {
        uint16_t seq;
        uint32_t ts;
        size_t len; /* 0 = none */
        uint8_t data[WZP_OPUS_MAX_PACKET];
    } past[WZP_MEDIA_RED_REACH];
    unsigned past_head;
    uint8_t red[WZP_MEDIA_MAX_PAYLOAD];
};

void wzp_media_tx_config_default(wzp_media_tx_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    wzp_opus_enc_config_default(&cfg->opus);
    uint8_t r[6];
    wzp_random_nonce(r, sizeof(r));
    cfg->initial_seq = (uint16_t)(r[0] << 8 | r[1]);
    cfg->initial_ts = (uint32_t)r[2] << 24 | (uint32_t)r[3] << 16 | (uint32_t)r[4] << 8 | r[5];
}

int wzp_media_tx_new(wzp_media_tx **out, const wzp_media_tx_config *cfg)
{
    if (!out)
        return WZP_ERR_INVALID;
    wzp_media_tx_config def;
    if (!cfg) {
        wzp_media_tx_config_default(&def);
        cfg = &def;
    }
    wzp_media_tx *tx = calloc(1, sizeof(*tx));
    if (!tx)
        return WZP_ERR_NOMEM;
    int err = wzp_opus_enc_new(&tx->enc, &cfg->opus);
    if (err < 0) {
        free(tx);
        return err;
    }
    tx->seq = cfg->initial_seq;
    tx->ts = cfg->initial_ts;
    tx->dtx = cfg->opus.dtx;
    tx->st.bitrate = cfg->opus.bitrate ? cfg->opus.bitrate : WZP_OPUS_DEFAULT_BITRATE;
    tx->st.expected_loss = cfg->opus.fec ? cfg->opus.expected_loss_pct : 0;
    tx->st.redundancy = cfg->redundancy > WZP_MEDIA_RED_MAX ? WZP_MEDIA_RED_MAX : cfg->redundancy;
    if (cfg->parity_span >= 2 && cfg->parity_span <= WZP_MEDIA_PARITY_MAX_SPAN)
        tx->st.parity_span = cfg->parity_span;
    tx->st.red_spacing =
        cfg->red_spacing && cfg->red_spacing * tx->st.redundancy <= WZP_MEDIA_RED_REACH
            ? cfg->red_spacing
            : 1;
    *out = tx;
    return 0;
}

void wzp_media_tx_free(wzp_media_tx *tx)
{
    if (!tx)
        return;
    wzp_opus_enc_free(tx->enc);
    free(tx);
}

int wzp_media_tx_frame(wzp_media_tx *tx, const int16_t pcm[WZP_AUDIO_FRAME_SAMPLES], uint8_t *out,
                       size_t cap)
{
    return wzp_media_tx_frame_vad(tx, pcm, true, out, cap);
}

/* Whether a frame in DTX goes out. Measured on libopus 1.3.1 (default
 * complexity, 28 kbit/s, before the default went to 32): its own DTX fires on (near) digital
 * silence only; -50 dBFS of steady room noise is coded as active forever (every frame 55-65 bytes),
 * so our VAD decides and we thin the stream here. We keep sending the real frames as refreshes
 * rather than feeding the encoder silence, so the receiver decodes the true background (level and
 * shape) and its decoder state stays close to the sender's. */
static bool dtx_send(wzp_media_tx *tx, bool opus_dtx)
{
    if (!tx->in_dtx)
        return true; /* announce: the gap that follows is deliberate */
    return !opus_dtx && tx->gap + 1 >= WZP_MEDIA_DTX_REFRESH;
}

/* With parity on, f's payload becomes the primary plus the XOR of the
 * frames before it, as many as were sent back to back up to the span (at
 * least 2). Returns the bytes the parity adds. */
static size_t add_parity(wzp_media_tx *tx, wzp_media_frame *f)
{
    uint8_t par[WZP_MEDIA_PARITY_MAX_BYTES];
    size_t plen = 0;
    unsigned span = 0;
    uint16_t len_xor = 0;
    for (unsigned d = 1; d <= tx->st.parity_span; d++) {
        unsigned i = (tx->past_head + WZP_MEDIA_RED_REACH - d) % WZP_MEDIA_RED_REACH;
        size_t len = tx->past[i].len;
        if (!len || len > sizeof(par) || tx->past[i].seq != (uint16_t)(f->seq - d) ||
            tx->past[i].ts != f->timestamp - d * WZP_AUDIO_FRAME_SAMPLES)
            break;
        if (len > plen) {
            memset(par + plen, 0, len - plen);
            plen = len;
        }
        for (size_t b = 0; b < len; b++)
            par[b] ^= tx->past[i].data[b];
        len_xor ^= (uint16_t)len;
        span = d;
    }
    if (span < 2)
        return 0;
    wzp_media_parity p = {.span = span,
                          .len_xor = len_xor,
                          .parity = par,
                          .parity_len = plen,
                          .primary = f->payload,
                          .primary_len = f->payload_len};
    int n = wzp_media_parity_encode(&p, tx->red, sizeof(tx->red));
    if (n < 0)
        return 0; /* too big together: this one goes without */
    f->payload_type = WZP_MEDIA_PT_OPUS_PARITY;
    f->payload = tx->red;
    f->payload_len = (size_t)n;
    return (size_t)n - p.primary_len;
}

/* With redundancy on, f's payload becomes the primary plus copies of the
 * previous frames sent back to back with it (a DTX gap ends the chain).
 * Returns the bytes the copies add. */
static size_t add_redundancy(wzp_media_tx *tx, wzp_media_frame *f)
{
    if (!tx->st.redundancy)
        return 0;
    wzp_media_red r = {.primary = f->payload, .primary_len = f->payload_len};
    size_t added = 0;
    for (unsigned k = 1; k <= tx->st.redundancy; k++) {
        unsigned d = k * tx->st.red_spacing;
        unsigned i = (tx->past_head + WZP_MEDIA_RED_REACH - d) % WZP_MEDIA_RED_REACH;
        if (!tx->past[i].len || tx->past[i].seq != (uint16_t)(f->seq - d) ||
            tx->past[i].ts != f->timestamp - d * WZP_AUDIO_FRAME_SAMPLES)
            break;
        r.block[r.count++] =
            (wzp_media_red_block){.distance = d, .data = tx->past[i].data, .len = tx->past[i].len};
        added += tx->past[i].len + 3;
    }
    if (!r.count)
        return 0;
    int n = wzp_media_red_encode(&r, tx->red, sizeof(tx->red));
    if (n < 0)
        return 0; /* too big together: this one goes without copies */
    f->payload_type = WZP_MEDIA_PT_OPUS_RED;
    f->payload = tx->red;
    f->payload_len = (size_t)n;
    return added + 1;
}

static void remember(wzp_media_tx *tx, uint32_t ts, size_t n)
{
    unsigned i = tx->past_head;
    tx->past[i].seq = tx->seq;
    tx->past[i].ts = ts;
    tx->past[i].len = n;
    memcpy(tx->past[i].data, tx->pkt, n);
    tx->past_head = (i + 1) % WZP_MEDIA_RED_REACH;
}

int wzp_media_tx_frame_vad(wzp_media_tx *tx, const int16_t pcm[WZP_AUDIO_FRAME_SAMPLES], bool voice,
                           uint8_t *out, size_t cap)
{
    if (!tx || !pcm || !out)
        return WZP_ERR_INVALID;
    static const int16_t silence[WZP_AUDIO_FRAME_SAMPLES];
    uint32_t ts = tx->ts;
    tx->ts += WZP_AUDIO_FRAME_SAMPLES; /* media time runs whether or not we send */
    tx->st.frames++;
    int n = wzp_opus_encode(tx->enc, tx->mute ? silence : pcm, tx->pkt, sizeof(tx->pkt));
    if (n < 0) {
        tx->st.errors++;
        return n;
    }
    uint8_t flags = tx->mute ? WZP_MEDIA_F_MUTE : 0;
    tx->quiet = voice ? 0 : tx->quiet + (tx->quiet <= WZP_MEDIA_DTX_HANGOVER);
    bool opus_dtx = wzp_opus_packet_is_dtx((size_t)n);
    if (opus_dtx || (tx->dtx && tx->quiet > WZP_MEDIA_DTX_HANGOVER)) {
        /* The first DTX frame goes out flagged so the receiver knows the
         * silence that follows is deliberate; then only refreshes. */
        if (!dtx_send(tx, opus_dtx)) {
            tx->gap++;
            tx->st.suppressed++;
            return 0;
        }
        tx->in_dtx = true;
        flags |= WZP_MEDIA_F_DTX;
    } else if (tx->in_dtx || !tx->started) {
        tx->in_dtx = false;
        flags |= WZP_MEDIA_F_MARKER;
    }
    if (wzp_opus_packet_has_fec(tx->pkt, (size_t)n))
        flags |= WZP_MEDIA_F_FEC;
    wzp_media_frame f = {
        .version = WZP_MEDIA_VERSION,
        .payload_type = WZP_MEDIA_PT_OPUS,
        .flags = flags,
        .seq = tx->seq,
        .timestamp = ts,
        .payload = tx->pkt,
        .payload_len = (size_t)n,
    };
    size_t red_len = tx->st.parity_span ? add_parity(tx, &f) : add_redundancy(tx, &f);
    int len = wzp_media_frame_encode(&f, out, cap);
    if (len < 0) {
        tx->st.errors++;
        return len;
    }
    remember(tx, ts, (size_t)n);
    tx->st.red_bytes += red_len;
    tx->started = true;
    tx->gap = 0;
    tx->seq++;
    tx->st.sent++;
    tx->st.bytes += (uint64_t)len;
    return len;
}

void wzp_media_tx_set_mute(wzp_media_tx *tx, bool mute)
{
    if (tx)
        tx->mute = mute;
}

int wzp_media_tx_set_bitrate(wzp_media_tx *tx, int bitrate)
{
    if (!tx)
        return WZP_ERR_INVALID;
    int rc = wzp_opus_enc_set_bitrate(tx->enc, bitrate);
    if (rc == 0)
        tx->st.bitrate = bitrate;
    return rc;
}

int wzp_media_tx_set_expected_loss(wzp_media_tx *tx, int pct)
{
    if (!tx)
        return WZP_ERR_INVALID;
    int rc = wzp_opus_enc_set_expected_loss(tx->enc, pct);
    if (rc == 0)
        tx->st.expected_loss = pct;
    return rc;
}

int wzp_media_tx_set_parity(wzp_media_tx *tx, unsigned span)
{
    if (!tx || span == 1 || span > WZP_MEDIA_PARITY_MAX_SPAN)
        return WZP_ERR_INVALID;
    tx->st.parity_span = span;
    return 0;
}

int wzp_media_tx_set_redundancy(wzp_media_tx *tx, unsigned frames, unsigned spacing)
{
    if (!tx || frames > WZP_MEDIA_RED_MAX || spacing < 1 || frames * spacing > WZP_MEDIA_RED_REACH)
        return WZP_ERR_INVALID;
    tx->st.redundancy = frames;
    tx->st.red_spacing = spacing;
    return 0;
}

void wzp_media_tx_refused(wzp_media_tx *tx, uint64_t n, uint64_t bytes)
{
    if (!tx)
        return;
    if (n > tx->st.sent)
        n = tx->st.sent;
    tx->st.sent -= n;
    tx->st.bytes -= bytes <= tx->st.bytes ? bytes : tx->st.bytes;
    tx->st.refused += n;
}

void wzp_media_tx_get_stats(const wzp_media_tx *tx, wzp_media_tx_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (tx)
        *out = tx->st;
}

/* Time-scaling speeds while the playout buffer sheds or adds delay. Speech
 * more than TEMPO_LOUD too deep (a late first packet) plays 25 % faster (5 ms
 * shed a frame), closer in 10 % (2 ms a frame): a moderate WSOLA speed-up is
 * hard to hear on speech and still sheds 40 ms within a second. Growing
 * (the target rose: more jitter, copies spaced further) plays speech 10 %
 * slower, 15 % when far off. Frames quieter than QUIET_RMS (-40 dBFS) are skipped
 * whole, or scaled at the fast speed: there is nothing to hear in them. */
#define TEMPO_FAST      1.25f
#define TEMPO_MILD      1.1f
#define TEMPO_SLOWER    0.85f
#define TEMPO_MILD_SLOW 0.9f
#define QUIET_RMS       328
/* How far (ns) from the target speech takes the stronger speeds. */
#define TEMPO_LOUD ((int64_t)WZP_MS(60))
/* Decoded samples waiting to be played: one frame plus what the scaler
 * releases at once (it holds up to ~1500 samples at 48 kHz). */
#define FIFO_CAP (4 * WZP_AUDIO_FRAME_SAMPLES)

/* Recent packets and parities kept for rebuilding from parity (frames by
 * timestamp: a slot per frame of the last PAR_KEEP). */
#define PAR_KEEP 8

typedef struct par_pkt {
    bool valid;
    uint32_t ts;
    uint16_t seq;
    uint16_t len;
    uint8_t data[WZP_MEDIA_PARITY_MAX_BYTES];
} par_pkt;

typedef struct par_block {
    bool valid;
    uint32_t ts; /* of the datagram that carried it: covers ts - 960 .. ts - span * 960 */
    uint16_t seq;
    uint8_t span;
    uint16_t len_xor;
    uint16_t len;
    uint8_t data[WZP_MEDIA_PARITY_MAX_BYTES];
} par_block;

struct wzp_media_rx {
    wzp_playout *pb;
    par_pkt par_seen[PAR_KEEP];
    par_block par_rx[PAR_KEEP];
    wzp_opus_dec *dec;
    wzp_tempo *tempo;
    int16_t fifo[FIFO_CAP];
    size_t fifo_len;
    int fifo_kind;      /* kind of the newest frame in the fifo */
    bool prev_missing;  /* the last speech slot had no packet of its own */
    bool prev_rebuilt;  /* ... and was rebuilt */
    uint64_t cur_run;   /* its run so far */
    unsigned run_max;   /* longest run since wzp_media_rx_take_max_run */
    unsigned red_depth; /* redundancy depth of the sender's recent datagrams */
    wzp_ts red_at;      /* when the last datagram with copies came */
    bool use_fec;
    bool comfort_noise;
    bool decoded_any; /* concealment needs a decoder history to extend */
    wzp_ts last_pull;
    wzp_media_rx_stats st;
};

void wzp_media_rx_config_default(wzp_media_rx_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->use_fec = true;
    cfg->comfort_noise = true;
    cfg->playout.adaptive = true;
    cfg->playout.fec_wait = true;
}

int wzp_media_rx_new(wzp_media_rx **out, const wzp_media_rx_config *cfg)
{
    if (!out)
        return WZP_ERR_INVALID;
    wzp_media_rx_config def;
    if (!cfg) {
        wzp_media_rx_config_default(&def);
        cfg = &def;
    }
    wzp_media_rx *rx = calloc(1, sizeof(*rx));
    if (!rx)
        return WZP_ERR_NOMEM;
    int err = wzp_playout_new(&rx->pb, &cfg->playout);
    if (err == 0)
        err = wzp_opus_dec_new(&rx->dec);
    if (err == 0)
        err = wzp_tempo_new(&rx->tempo);
    if (err < 0) {
        wzp_playout_free(rx->pb);
        wzp_opus_dec_free(rx->dec);
        free(rx);
        return err;
    }
    rx->use_fec = cfg->use_fec;
    rx->comfort_noise = cfg->comfort_noise;
    rx->last_pull = WZP_TS_NEVER;
    rx->st.first_datagram = WZP_TS_NEVER;
    rx->st.first_decoded = WZP_TS_NEVER;
    rx->red_at = WZP_TS_NEVER;
    *out = rx;
    return 0;
}

void wzp_media_rx_free(wzp_media_rx *rx)
{
    if (!rx)
        return;
    wzp_playout_free(rx->pb);
    wzp_opus_dec_free(rx->dec);
    wzp_tempo_free(rx->tempo);
    free(rx);
}

static unsigned par_slot(uint32_t ts)
{
    return (ts / WZP_AUDIO_FRAME_SAMPLES) % PAR_KEEP;
}

static const par_pkt *par_find(const wzp_media_rx *rx, uint32_t ts)
{
    const par_pkt *p = &rx->par_seen[par_slot(ts)];
    return p->valid && p->ts == ts ? p : NULL;
}

/* Remembers a packet parity may need (its own, a copy or a rebuilt one). */
static void par_keep(wzp_media_rx *rx, uint16_t seq, uint32_t ts, const uint8_t *data, size_t len)
{
    if (!len || len > WZP_MEDIA_PARITY_MAX_BYTES)
        return;
    par_pkt *p = &rx->par_seen[par_slot(ts)];
    p->valid = true;
    p->ts = ts;
    p->seq = seq;
    p->len = (uint16_t)len;
    memcpy(p->data, data, len);
}

/* Peeling: a parity whose span misses exactly one packet rebuilds it (XOR of
 * the parity and the others), which may complete another parity's span. */
static void par_peel(wzp_media_rx *rx)
{
    for (bool progress = true; progress;) {
        progress = false;
        for (unsigned i = 0; i < PAR_KEEP; i++) {
            par_block *b = &rx->par_rx[i];
            if (!b->valid)
                continue;
            unsigned missing = 0, miss_d = 0;
            for (unsigned d = 1; d <= b->span; d++)
                if (!par_find(rx, b->ts - d * WZP_AUDIO_FRAME_SAMPLES)) {
                    missing++;
                    miss_d = d;
                }
            if (missing != 1) {
                b->valid = missing != 0; /* nothing left to rebuild: done with it */
                continue;
            }
            uint8_t out[WZP_MEDIA_PARITY_MAX_BYTES];
            memcpy(out, b->data, b->len);
            unsigned len = b->len_xor;
            for (unsigned d = 1; d <= b->span; d++) {
                if (d == miss_d)
                    continue;
                const par_pkt *p = par_find(rx, b->ts - d * WZP_AUDIO_FRAME_SAMPLES);
                len ^= p->len;
                for (size_t k = 0; k < p->len && k < b->len; k++)
                    out[k] ^= p->data[k];
            }
            b->valid = false;
            if (len == 0 || len > b->len)
                continue; /* inconsistent: the parity or a packet was not what the sender had */
            uint32_t ts = b->ts - miss_d * WZP_AUDIO_FRAME_SAMPLES;
            uint16_t seq = (uint16_t)(b->seq - miss_d);
            par_keep(rx, seq, ts, out, len);
            if (wzp_playout_insert_redundant(rx->pb, seq, ts, 0, out, len) == 0)
                rx->st.parity_rebuilt++;
            progress = true;
        }
    }
}

/* The playout wait parity needs: a burst of b <= span frames is rebuilt by
 * the datagram span + b - 1 frames after its first (and the ones between). */
static unsigned parity_wait(unsigned span)
{
    unsigned w = 2 * span - 1;
    return w > WZP_MEDIA_RED_REACH ? WZP_MEDIA_RED_REACH : w;
}

int wzp_media_rx_datagram(wzp_media_rx *rx, const uint8_t *dg, size_t len, wzp_ts now)
{
    if (!rx || (len && !dg))
        return WZP_ERR_INVALID;
    rx->st.datagrams++;
    wzp_media_frame f;
    int rc = wzp_media_frame_decode(&f, dg, len);
    if (rc < 0) {
        rx->st.malformed++;
        return rc;
    }
    if (f.payload_type != WZP_MEDIA_PT_OPUS && f.payload_type != WZP_MEDIA_PT_OPUS_RED &&
        f.payload_type != WZP_MEDIA_PT_OPUS_PARITY) {
        rx->st.unsupported++;
        return WZP_ERR_PROTOCOL;
    }
    if (f.payload_type == WZP_MEDIA_PT_OPUS_RED) {
        wzp_media_red r;
        if (wzp_media_red_decode(&r, f.payload, f.payload_len) < 0) {
            rx->st.malformed++;
            return WZP_ERR_MALFORMED;
        }
        rc = wzp_playout_insert(rx->pb, f.seq, f.timestamp, f.flags, r.primary, r.primary_len, now);
        unsigned depth = 0;
        for (unsigned i = 0; i < r.count; i++) {
            const wzp_media_red_block *b = &r.block[i];
            wzp_playout_insert_redundant(rx->pb, (uint16_t)(f.seq - b->distance),
                                         f.timestamp - b->distance * WZP_AUDIO_FRAME_SAMPLES,
                                         f.flags & WZP_MEDIA_F_MUTE, b->data, b->len);
            if (b->distance > depth)
                depth = b->distance;
        }
        par_keep(rx, f.seq, f.timestamp, r.primary, r.primary_len);
        if (depth > rx->red_depth || rx->red_at == WZP_TS_NEVER) {
            rx->red_depth = depth;
            /* Wait for the copies as for the next frame's FEC. */
            wzp_playout_set_wait(rx->pb, depth);
        }
        rx->red_at = now;
    } else if (f.payload_type == WZP_MEDIA_PT_OPUS_PARITY) {
        wzp_media_parity p;
        if (wzp_media_parity_decode(&p, f.payload, f.payload_len) < 0) {
            rx->st.malformed++;
            return WZP_ERR_MALFORMED;
        }
        rc = wzp_playout_insert(rx->pb, f.seq, f.timestamp, f.flags, p.primary, p.primary_len, now);
        par_keep(rx, f.seq, f.timestamp, p.primary, p.primary_len);
        par_block *b = &rx->par_rx[par_slot(f.timestamp)];
        b->valid = true;
        b->ts = f.timestamp;
        b->seq = f.seq;
        b->span = (uint8_t)p.span;
        b->len_xor = p.len_xor;
        b->len = (uint16_t)p.parity_len;
        if (p.parity_len)
            memcpy(b->data, p.parity, p.parity_len);
        par_peel(rx);
        unsigned depth = parity_wait(p.span);
        if (depth > rx->red_depth || rx->red_at == WZP_TS_NEVER) {
            rx->red_depth = depth;
            wzp_playout_set_wait(rx->pb, depth);
        }
        rx->red_at = now;
    } else {
        rc = wzp_playout_insert(rx->pb, f.seq, f.timestamp, f.flags, f.payload, f.payload_len, now);
        par_keep(rx, f.seq, f.timestamp, f.payload, f.payload_len);
        par_peel(rx);
        /* 10 s without copies: the sender stopped them, wait for FEC alone again
         * (not sooner: a sender that goes back and forth should not move the delay). */
        if (rx->red_depth && now - rx->red_at > WZP_SEC(10)) {
            rx->red_depth = 0;
            rx->red_at = WZP_TS_NEVER;
            wzp_playout_set_wait(rx->pb, 1);
        }
    }
    if (rc == 0 && rx->st.first_datagram == WZP_TS_NEVER)
        rx->st.first_datagram = now;
    return rc;
}

/* One slot from the playout buffer, decoded, rebuilt or concealed into pcm. */
static int next_frame(wzp_media_rx *rx, wzp_ts now, int16_t pcm[WZP_AUDIO_FRAME_SAMPLES],
                      wzp_playout_frame *out)
{
    wzp_playout_frame fr;
    wzp_playout_pull(rx->pb, now, &fr);
    *out = fr;
    if (fr.kind != WZP_PLAYOUT_WAIT)
        rx->last_pull = now;
    switch (fr.kind) {
    case WZP_PLAYOUT_FRAME: {
        int rc = wzp_opus_decode(rx->dec, fr.payload, fr.len, pcm);
        rx->decoded_any = true;
        if (rc < 0) {
            rx->st.decode_errors++;
            return WZP_MEDIA_RX_CONCEALED;
        }
        if (!fr.len) { /* empty payload: the sender had nothing, conceal */
            rx->st.plc++;
            return WZP_MEDIA_RX_CONCEALED;
        }
        if (fr.redundant) {
            rx->st.redundancy_recovered++;
            return WZP_MEDIA_RX_FEC;
        }
        rx->st.decoded++;
        if (rx->st.first_decoded == WZP_TS_NEVER)
            rx->st.first_decoded = now;
        return WZP_MEDIA_RX_DECODED;
    }
    case WZP_PLAYOUT_MISSING:
        if (!rx->decoded_any)
            break;
        if (fr.dtx) {
            /* Decode even when the noise is not wanted: the decoder then
             * resumes from the background, not from a stale frame. */
            wzp_opus_decode_plc(rx->dec, pcm);
            if (!rx->comfort_noise)
                memset(pcm, 0, WZP_AUDIO_FRAME_SAMPLES * sizeof(*pcm));
            rx->st.comfort++;
            return WZP_MEDIA_RX_COMFORT;
        }
        if (rx->use_fec && !fr.dtx && !fr.hold && fr.next_payload &&
            wzp_opus_packet_has_fec(fr.next_payload, fr.next_len) &&
            wzp_opus_decode_fec(rx->dec, fr.next_payload, fr.next_len, pcm) > 0) {
            rx->st.fec_recovered++;
            return WZP_MEDIA_RX_FEC;
        }
        wzp_opus_decode_plc(rx->dec, pcm);
        rx->st.plc++;
        return WZP_MEDIA_RX_CONCEALED;
    case WZP_PLAYOUT_WAIT:
        break;
    }
    memset(pcm, 0, WZP_AUDIO_FRAME_SAMPLES * sizeof(*pcm));
    rx->st.silence++;
    return WZP_MEDIA_RX_SILENCE;
}

/* Loss as the listener meets it, for receiver reports: speech slots that
 * had no packet of their own in time, and how they bunch up. */
static void account(wzp_media_rx *rx, int kind, const wzp_playout_frame *pf)
{
    if (kind == WZP_MEDIA_RX_SILENCE || kind == WZP_MEDIA_RX_COMFORT || pf->hold) {
        if (kind != WZP_MEDIA_RX_SILENCE || pf->kind == WZP_PLAYOUT_WAIT)
            rx->prev_missing = false;
        return;
    }
    rx->st.slots++;
    bool missing = pf->kind == WZP_PLAYOUT_MISSING || pf->redundant;
    if (!missing) {
        if (rx->prev_missing && rx->cur_run == 1) {
            rx->st.single++;
            rx->st.single_rebuilt += rx->prev_rebuilt;
            if (pf->kind == WZP_PLAYOUT_FRAME && wzp_opus_packet_has_fec(pf->payload, pf->len)) {
                rx->st.single_fec++;
                rx->st.single_fec_rebuilt += rx->prev_rebuilt;
            }
        }
        rx->prev_missing = false;
        return;
    }
    rx->prev_rebuilt = kind == WZP_MEDIA_RX_FEC;
    rx->st.missing++;
    rx->cur_run = rx->prev_missing ? rx->cur_run + 1 : 1;
    if (!rx->prev_missing)
        rx->st.runs++;
    if (rx->cur_run > rx->st.max_run)
        rx->st.max_run = rx->cur_run;
    if (rx->cur_run > rx->run_max)
        rx->run_max = (unsigned)rx->cur_run;
    rx->prev_missing = true;
}

static bool quiet(const int16_t pcm[WZP_AUDIO_FRAME_SAMPLES])
{
    int64_t e = 0;
    for (unsigned i = 0; i < WZP_AUDIO_FRAME_SAMPLES; i++)
        e += (int64_t)pcm[i] * pcm[i];
    return e < (int64_t)QUIET_RMS * QUIET_RMS * WZP_AUDIO_FRAME_SAMPLES;
}

int wzp_media_rx_pull(wzp_media_rx *rx, wzp_ts now, int16_t pcm[WZP_AUDIO_FRAME_SAMPLES])
{
    if (!rx || !pcm)
        return WZP_ERR_INVALID;
    /* Frames go through the fifo: time-scaling makes one pull need more or
     * less than one frame. Bounded: a pull takes at most a few slots. */
    for (int guard = 0; rx->fifo_len < WZP_AUDIO_FRAME_SAMPLES && guard < 4; guard++) {
        int16_t f[WZP_AUDIO_FRAME_SAMPLES];
        wzp_playout_frame pf;
        wzp_playout_set_backlog(rx->pb, (wzp_ts)rx->fifo_len * WZP_SEC(1) / WZP_AUDIO_RATE);
        int kind = next_frame(rx, now, f, &pf);
        account(rx, kind, &pf);
        if (kind == WZP_MEDIA_RX_SILENCE) {
            if (!rx->fifo_len) {
                memcpy(pcm, f, sizeof(f));
                return kind;
            }
            break; /* playout restarts: the rest of this pull is silence */
        }
        float speed = 1.0f;
        bool sound = kind == WZP_MEDIA_RX_DECODED || kind == WZP_MEDIA_RX_FEC ||
                     kind == WZP_MEDIA_RX_CONCEALED;
        /* Quiet frames take any correction; loud ones a moderate one. */
        bool q = sound && pf.tempo && quiet(f);
        if (pf.tempo > 0 && sound) {
            if (pf.excess >= (int64_t)WZP_MS(WZP_AUDIO_FRAME_MS) && q) {
                rx->st.quiet_skipped++;
                continue;
            }
            speed = q || pf.excess > TEMPO_LOUD ? TEMPO_FAST : TEMPO_MILD;
            rx->st.faster++;
        } else if (pf.tempo < 0 && sound) {
            speed = q || pf.excess < -TEMPO_LOUD ? TEMPO_SLOWER : TEMPO_MILD_SLOW;
            rx->st.slower++;
        }
        rx->fifo_len += wzp_tempo_feed(rx->tempo, f, WZP_AUDIO_FRAME_SAMPLES, speed,
                                       rx->fifo + rx->fifo_len, FIFO_CAP - rx->fifo_len);
        rx->fifo_kind = kind;
    }
    size_t n = rx->fifo_len < WZP_AUDIO_FRAME_SAMPLES ? rx->fifo_len : WZP_AUDIO_FRAME_SAMPLES;
    memcpy(pcm, rx->fifo, n * sizeof(*pcm));
    memset(pcm + n, 0, (WZP_AUDIO_FRAME_SAMPLES - n) * sizeof(*pcm));
    rx->fifo_len -= n;
    memmove(rx->fifo, rx->fifo + n, rx->fifo_len * sizeof(*pcm));
    return rx->fifo_kind;
}

wzp_ts wzp_media_rx_next_deadline(const wzp_media_rx *rx)
{
    if (!rx)
        return WZP_TS_NEVER;
    if (!wzp_playout_playing(rx->pb) || rx->last_pull == WZP_TS_NEVER)
        return wzp_playout_start_time(rx->pb);
    return rx->last_pull + WZP_MS(WZP_AUDIO_FRAME_MS);
}

unsigned wzp_media_rx_take_max_run(wzp_media_rx *rx)
{
    if (!rx)
        return 0;
    unsigned m = rx->run_max;
    rx->run_max = 0;
    return m;
}

unsigned wzp_media_rx_redundancy(const wzp_media_rx *rx)
{
    return rx ? rx->red_depth : 0;
}

void wzp_media_rx_get_stats(const wzp_media_rx *rx, wzp_media_rx_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!rx)
        return;
    *out = rx->st;
    wzp_playout_get_stats(rx->pb, &out->playout);
    out->delay = out->playout.delay; /* the fifo's backlog included */
}
