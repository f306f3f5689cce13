#include "media/opus_codec.h"

#include <stdlib.h>
#include <string.h>

#include <opus.h>
#include <wzp/wzp.h>

#include "common/log.h"

struct wzp_opus_enc {
    OpusEncoder *st;
};

struct wzp_opus_dec {
    OpusDecoder *st;
};

void wzp_opus_enc_config_default(wzp_opus_enc_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->bitrate = WZP_OPUS_DEFAULT_BITRATE;
    cfg->fec = true;
    cfg->expected_loss_pct = 10;
    cfg->dtx = false;
    cfg->complexity = -1;
}

int wzp_opus_enc_new(wzp_opus_enc **out, const wzp_opus_enc_config *cfg)
{
    if (!out)
        return WZP_ERR_INVALID;
    wzp_opus_enc_config def;
    if (!cfg) {
        wzp_opus_enc_config_default(&def);
        cfg = &def;
    }
    int bitrate = cfg->bitrate ? cfg->bitrate : WZP_OPUS_DEFAULT_BITRATE;
    if (bitrate < 6000 || bitrate > 510000 || cfg->expected_loss_pct < 0 ||
        cfg->expected_loss_pct > 100 || cfg->complexity < -1 || cfg->complexity > 10)
        return WZP_ERR_INVALID;
    wzp_opus_enc *enc = calloc(1, sizeof(*enc));
    if (!enc)
        return WZP_ERR_NOMEM;
    int oe = 0;
    enc->st = opus_encoder_create(WZP_AUDIO_RATE, 1, OPUS_APPLICATION_VOIP, &oe);
    if (!enc->st || oe != OPUS_OK) {
        WZP_ERROR("opus_encoder_create: %s", opus_strerror(oe));
        free(enc);
        return oe == OPUS_ALLOC_FAIL ? WZP_ERR_NOMEM : WZP_ERR_AUDIO;
    }
    int rc = OPUS_OK;
    rc |= opus_encoder_ctl(enc->st, OPUS_SET_BITRATE(bitrate));
    rc |= opus_encoder_ctl(enc->st, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE));
    rc |= opus_encoder_ctl(enc->st, OPUS_SET_INBAND_FEC(cfg->fec ? 1 : 0));
    rc |= opus_encoder_ctl(enc->st, OPUS_SET_PACKET_LOSS_PERC(cfg->expected_loss_pct));
    rc |= opus_encoder_ctl(enc->st, OPUS_SET_DTX(cfg->dtx ? 1 : 0));
    if (cfg->complexity >= 0)
        rc |= opus_encoder_ctl(enc->st, OPUS_SET_COMPLEXITY(cfg->complexity));
    if (rc != OPUS_OK) {
        wzp_opus_enc_free(enc);
        return WZP_ERR_AUDIO;
    }
    *out = enc;
    return 0;
}

void wzp_opus_enc_free(wzp_opus_enc *enc)
{
    if (!enc)
        return;
    opus_encoder_destroy(enc->st);
    free(enc);
}

static int enc_result(int n)
{
    if (n < 0) {
        WZP_WARN("opus_encode: %s", opus_strerror(n));
        return n == OPUS_BUFFER_TOO_SMALL ? WZP_ERR_TOO_BIG : WZP_ERR_AUDIO;
    }
    return n;
}

static opus_int32 clamp_cap(size_t cap)
{
    return (opus_int32)(cap > WZP_OPUS_MAX_PACKET ? WZP_OPUS_MAX_PACKET : cap);
}

int wzp_opus_encode(wzp_opus_enc *enc, const int16_t pcm[WZP_AUDIO_FRAME_SAMPLES], uint8_t *out,
                    size_t cap)
{
    if (!enc || !pcm || !out || cap == 0)
        return WZP_ERR_INVALID;
    return enc_result(opus_encode(enc->st, pcm, WZP_AUDIO_FRAME_SAMPLES, out, clamp_cap(cap)));
}

int wzp_opus_encode_float(wzp_opus_enc *enc, const float pcm[WZP_AUDIO_FRAME_SAMPLES], uint8_t *out,
                          size_t cap)
{
    if (!enc || !pcm || !out || cap == 0)
        return WZP_ERR_INVALID;
    return enc_result(
        opus_encode_float(enc->st, pcm, WZP_AUDIO_FRAME_SAMPLES, out, clamp_cap(cap)));
}

int wzp_opus_enc_set_bitrate(wzp_opus_enc *enc, int bitrate)
{
    if (!enc || bitrate < 6000 || bitrate > 510000)
        return WZP_ERR_INVALID;
    return opus_encoder_ctl(enc->st, OPUS_SET_BITRATE(bitrate)) == OPUS_OK ? 0 : WZP_ERR_AUDIO;
}

int wzp_opus_enc_set_expected_loss(wzp_opus_enc *enc, int pct)
{
    if (!enc || pct < 0 || pct > 100)
        return WZP_ERR_INVALID;
    return opus_encoder_ctl(enc->st, OPUS_SET_PACKET_LOSS_PERC(pct)) == OPUS_OK ? 0 : WZP_ERR_AUDIO;
}

int wzp_opus_enc_lookahead(wzp_opus_enc *enc)
{
    opus_int32 la = 0;
    if (!enc || opus_encoder_ctl(enc->st, OPUS_GET_LOOKAHEAD(&la)) != OPUS_OK)
        return WZP_ERR_INVALID;
    return (int)la;
}

bool wzp_opus_packet_is_dtx(size_t len)
{
    /* libopus documents DTX frames as packets of 1 or 2 bytes. */
    return len <= 2;
}

int wzp_opus_dec_new(wzp_opus_dec **out)
{
    if (!out)
        return WZP_ERR_INVALID;
    wzp_opus_dec *dec = calloc(1, sizeof(*dec));
    if (!dec)
        return WZP_ERR_NOMEM;
    int oe = 0;
    dec->st = opus_decoder_create(WZP_AUDIO_RATE, 1, &oe);
    if (!dec->st || oe != OPUS_OK) {
        free(dec);
        return oe == OPUS_ALLOC_FAIL ? WZP_ERR_NOMEM : WZP_ERR_AUDIO;
    }
    *out = dec;
    return 0;
}

void wzp_opus_dec_free(wzp_opus_dec *dec)
{
    if (!dec)
        return;
    opus_decoder_destroy(dec->st);
    free(dec);
}

/* Every decode path yields exactly one frame: a packet holding more or less
 * than 20 ms (another sender's framing, or garbage) is concealed instead, so
 * the playout clock never slips. */
static int dec_run(wzp_opus_dec *dec, const uint8_t *pkt, size_t len, int fec,
                   int16_t pcm[WZP_AUDIO_FRAME_SAMPLES])
{
    if (!dec || !pcm || (len && !pkt) || len > WZP_OPUS_MAX_PACKET)
        return WZP_ERR_INVALID;
    if (pkt && len) {
        int ns = opus_decoder_get_nb_samples(dec->st, pkt, (opus_int32)len);
        if (ns == WZP_AUDIO_FRAME_SAMPLES) {
            int n = opus_decode(dec->st, pkt, (opus_int32)len, pcm, WZP_AUDIO_FRAME_SAMPLES, fec);
            if (n == WZP_AUDIO_FRAME_SAMPLES)
                return n;
        }
        /* Corrupt or wrong duration: conceal, and tell the caller. */
        int n = opus_decode(dec->st, NULL, 0, pcm, WZP_AUDIO_FRAME_SAMPLES, 0);
        if (n != WZP_AUDIO_FRAME_SAMPLES)
            memset(pcm, 0, WZP_AUDIO_FRAME_SAMPLES * sizeof(*pcm));
        return WZP_ERR_AUDIO;
    }
    int n = opus_decode(dec->st, NULL, 0, pcm, WZP_AUDIO_FRAME_SAMPLES, 0);
    if (n != WZP_AUDIO_FRAME_SAMPLES) {
        memset(pcm, 0, WZP_AUDIO_FRAME_SAMPLES * sizeof(*pcm));
        return WZP_ERR_AUDIO;
    }
    return n;
}

int wzp_opus_decode(wzp_opus_dec *dec, const uint8_t *pkt, size_t len,
                    int16_t pcm[WZP_AUDIO_FRAME_SAMPLES])
{
    return dec_run(dec, pkt, len, 0, pcm);
}

int wzp_opus_decode_plc(wzp_opus_dec *dec, int16_t pcm[WZP_AUDIO_FRAME_SAMPLES])
{
    return dec_run(dec, NULL, 0, 0, pcm);
}

int wzp_opus_decode_fec(wzp_opus_dec *dec, const uint8_t *next_pkt, size_t len,
                        int16_t pcm[WZP_AUDIO_FRAME_SAMPLES])
{
    return dec_run(dec, next_pkt, len, 1, pcm);
}

bool wzp_opus_packet_has_fec(const uint8_t *pkt, size_t len)
{
    if (!pkt || len == 0 || len > WZP_OPUS_MAX_PACKET)
        return false;
    /* Only SILK and hybrid frames carry LBRR. libopus has no query for it,
     * but the SILK header's VAD and LBRR flags are patched into the top bits
     * of the frame's first byte (RFC 6716 4.2.3). */
    const unsigned char *frames[48];
    opus_int16 sizes[48];
    unsigned char toc;
    int payload_off;
    int nf = opus_packet_parse(pkt, (opus_int32)len, &toc, frames, sizes, &payload_off);
    if (nf <= 0 || sizes[0] == 0)
        return false;
    if ((toc >> 3) >= 16) /* CELT-only */
        return false;
    /* Mono SILK: bit 7 = VAD of frame 1 (for 20 ms, one SILK frame), bit 6 = LBRR flag. */
    return (frames[0][0] & 0x40) != 0;
}
