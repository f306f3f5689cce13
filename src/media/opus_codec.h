/*
 * libopus for calls: 48 kHz mono, 20 ms frames (WZP_AUDIO_FRAME_SAMPLES),
 * VOIP application. The encoder carries in-band FEC (LBRR) tuned by the
 * expected loss, so a receiver can rebuild a lost frame from the next one.
 */
#ifndef WZP_MEDIA_OPUS_CODEC_H
#define WZP_MEDIA_OPUS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "media/audio_format.h"

#define WZP_OPUS_DEFAULT_BITRATE 32000
/* Bounds one encoded frame; equal to the media datagram payload limit. */
#define WZP_OPUS_MAX_PACKET 1000

typedef struct wzp_opus_enc_config {
    int bitrate;           /* bit/s, 6000..510000; 0 = WZP_OPUS_DEFAULT_BITRATE */
    bool fec;              /* in-band FEC (needs expected_loss_pct > 0 to be used) */
    int expected_loss_pct; /* 0..100: how much redundancy the encoder spends */
    bool dtx;              /* discontinuous transmission during silence */
    int complexity;        /* 0..10; -1 = libopus default */
} wzp_opus_enc_config;

/* bitrate default, FEC on with 10 % expected loss, DTX off, default complexity. */
void wzp_opus_enc_config_default(wzp_opus_enc_config *cfg);

typedef struct wzp_opus_enc wzp_opus_enc;
typedef struct wzp_opus_dec wzp_opus_dec;

/* cfg NULL: defaults. 0, or WZP_ERR_INVALID, WZP_ERR_NOMEM, WZP_ERR_AUDIO (*out untouched). */
int wzp_opus_enc_new(wzp_opus_enc **out, const wzp_opus_enc_config *cfg);
void wzp_opus_enc_free(wzp_opus_enc *enc);

/* Encodes exactly one frame. Returns the packet length (>= 1) or an error.
 * With DTX, packets of <= 2 bytes mean "silence, need not be sent"
 * (wzp_opus_packet_is_dtx). */
int wzp_opus_encode(wzp_opus_enc *enc, const int16_t pcm[WZP_AUDIO_FRAME_SAMPLES], uint8_t *out,
                    size_t cap);
int wzp_opus_encode_float(wzp_opus_enc *enc, const float pcm[WZP_AUDIO_FRAME_SAMPLES], uint8_t *out,
                          size_t cap);

int wzp_opus_enc_set_bitrate(wzp_opus_enc *enc, int bitrate);
int wzp_opus_enc_set_expected_loss(wzp_opus_enc *enc, int pct);
/* Samples the encoder delays its output by (look-ahead), e.g. 312 at 48 kHz. */
int wzp_opus_enc_lookahead(wzp_opus_enc *enc);

bool wzp_opus_packet_is_dtx(size_t len);

/* 48 kHz mono: nothing to configure. 0, or WZP_ERR_NOMEM, WZP_ERR_AUDIO. */
int wzp_opus_dec_new(wzp_opus_dec **out);
void wzp_opus_dec_free(wzp_opus_dec *dec);

/* Each decode call writes exactly one frame (WZP_AUDIO_FRAME_SAMPLES) and
 * returns that count, or WZP_ERR_AUDIO for a corrupt packet (pcm is then
 * filled by concealment, so the caller can always play it). */
int wzp_opus_decode(wzp_opus_dec *dec, const uint8_t *pkt, size_t len,
                    int16_t pcm[WZP_AUDIO_FRAME_SAMPLES]);
/* Packet loss concealment for one missing frame (libopus "decode NULL"). */
int wzp_opus_decode_plc(wzp_opus_dec *dec, int16_t pcm[WZP_AUDIO_FRAME_SAMPLES]);
/* Rebuilds the missing frame *before* `next_pkt` from its in-band FEC. When
 * next_pkt holds no FEC, libopus falls back to concealment. Decode next_pkt
 * itself normally afterwards. */
int wzp_opus_decode_fec(wzp_opus_dec *dec, const uint8_t *next_pkt, size_t len,
                        int16_t pcm[WZP_AUDIO_FRAME_SAMPLES]);
/* True if the packet carries in-band FEC (LBRR) data for the previous frame. */
bool wzp_opus_packet_has_fec(const uint8_t *pkt, size_t len);

#endif
