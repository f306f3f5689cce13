/*
 * The media half of a call, sans-I/O: what the call layer drives.
 *
 * Sender: one 20 ms PCM frame in -> at most one media datagram out (Opus
 * encoded, seq/timestamp/flags stamped). Receiver: datagrams in (with their
 * arrival time) -> playout buffer; one 20 ms PCM frame out per pull, decoded,
 * rebuilt from FEC, concealed, or silence before audio starts.
 *
 * The receiver does not own a clock: the caller pulls once per 20 ms tick of
 * its audio clock (a timer or a sound card). wzp_media_rx_next_deadline
 * says when the first pull is due (playout start) and, after that, 20 ms
 * after the previous pull.
 */
#ifndef WZP_MEDIA_MEDIA_SESSION_H
#define WZP_MEDIA_MEDIA_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/time.h"
#include "media/audio_format.h"
#include "media/opus_codec.h"
#include "media/playout.h"

/* ---- sender ---- */

typedef struct wzp_media_tx_config {
    wzp_opus_enc_config opus;
    unsigned redundancy;  /* earlier frames copied into each datagram, 0..WZP_MEDIA_RED_MAX */
    unsigned red_spacing; /* frames between copies (0 = 1); redundancy * spacing <= RED_REACH */
    unsigned parity_span; /* instead of copies: XOR parity of this many frames (0, 2..4) */
    uint16_t initial_seq; /* RTP practice is random; tests pin them */
    uint32_t initial_ts;
} wzp_media_tx_config;

typedef struct wzp_media_tx_stats {
    uint64_t frames;      /* PCM frames in */
    uint64_t sent;        /* datagrams out */
    uint64_t bytes;       /* datagram bytes out */
    uint64_t suppressed;  /* DTX frames not sent */
    uint64_t errors;      /* encoder failures (frame skipped) */
    uint64_t refused;     /* made, but refused by the transport (not in sent/bytes) */
    int bitrate;          /* encoder bitrate now, bit/s */
    int expected_loss;    /* encoder FEC strength now, percent */
    unsigned redundancy;  /* earlier frames copied into each datagram now */
    unsigned red_spacing; /* frames between the copies */
    unsigned parity_span; /* frames each datagram's XOR parity covers now (0: none) */
    uint64_t red_bytes;   /* of bytes: redundant copies */
} wzp_media_tx_stats;

typedef struct wzp_media_tx wzp_media_tx;

/* Opus defaults, random initial seq and timestamp. */
void wzp_media_tx_config_default(wzp_media_tx_config *cfg);
/* cfg NULL: defaults. 0 or a negative wzp_error (*out untouched). */
int wzp_media_tx_new(wzp_media_tx **out, const wzp_media_tx_config *cfg);
void wzp_media_tx_free(wzp_media_tx *tx);

/* Encodes one frame into a datagram in out (cap >= WZP_MEDIA_MAX_FRAME is
 * always enough). Returns its length, 0 when there is nothing to send
 * (DTX silence), or an error. Media time advances either way. Same as
 * wzp_media_tx_frame_vad with voice = true: only Opus's own DTX applies. */
int wzp_media_tx_frame(wzp_media_tx *tx, const int16_t pcm[WZP_AUDIO_FRAME_SAMPLES], uint8_t *out,
                       size_t cap);

/* Frames of non-voice after voice still sent as they are (120 ms: word
 * endings the VAD calls too early, and the gaps between syllables, so a
 * talkspurt is not chopped into DTX stretches), and the spacing of
 * comfort-noise refreshes in DTX (libopus's own refresh interval, 400 ms). */
#define WZP_MEDIA_DTX_HANGOVER 6
#define WZP_MEDIA_DTX_REFRESH  20

/* The same with the caller's voice activity decision for this frame (e.g.
 * wzp_voice_proc's VAD). With DTX on (cfg.opus.dtx) a non-voice frame past
 * the hangover is background: the first one goes out flagged
 * WZP_MEDIA_F_DTX, then one every WZP_MEDIA_DTX_REFRESH frames (the real
 * encoded frame, so the receiver's comfort noise follows the sender's
 * background), and the rest stay home. The encoder still sees every frame,
 * so speech resumes without a reset. With DTX off `voice` is ignored. */
int wzp_media_tx_frame_vad(wzp_media_tx *tx, const int16_t pcm[WZP_AUDIO_FRAME_SAMPLES], bool voice,
                           uint8_t *out, size_t cap);
/* While muted, silence is encoded and frames carry WZP_MEDIA_F_MUTE. */
void wzp_media_tx_set_mute(wzp_media_tx *tx, bool mute);
/* Runtime knobs for the call layer's congestion / loss feedback. */
int wzp_media_tx_set_bitrate(wzp_media_tx *tx, int bitrate);
int wzp_media_tx_set_expected_loss(wzp_media_tx *tx, int pct);
/* Copies of `frames` earlier frames (0..WZP_MEDIA_RED_MAX, wire/media_red.h) in
 * every datagram from now on, against bursts of loss; 0 = none. They are
 * `spacing` frames apart (1: the last frames; 2: 2, 4, 6 back, reaching
 * twice as far into a burst for the same bytes); frames * spacing <=
 * WZP_MEDIA_RED_REACH. */
int wzp_media_tx_set_redundancy(wzp_media_tx *tx, unsigned frames, unsigned spacing);
/* Instead of copies: every datagram carries the XOR parity of the `span`
 * frames before it (2..WZP_MEDIA_PARITY_MAX_SPAN, wire/media_parity.h); 0 =
 * none. While on, redundancy copies are not sent. */
int wzp_media_tx_set_parity(wzp_media_tx *tx, unsigned span);
/* The transport refused `n` datagrams of `bytes` bytes in all that this
 * sender made (its queue was full, or it took them and dropped them later):
 * they move from sent to refused. */
void wzp_media_tx_refused(wzp_media_tx *tx, uint64_t n, uint64_t bytes);
void wzp_media_tx_get_stats(const wzp_media_tx *tx, wzp_media_tx_stats *out);

/* ---- receiver ---- */

typedef struct wzp_media_rx_config {
    wzp_playout_config playout;
    bool use_fec; /* rebuild a lost frame from the next one's in-band FEC */
    /* Sender-DTX slots: comfort noise, or digital silence when false. The
     * noise is libopus's own: decoding "nothing" after the sender's
     * background frames (the DTX announcement and the 400 ms refreshes)
     * continues that background, spectrally shaped by its last LPC, at
     * 3-5 dB under the sender's level and without decaying (measured,
     * libopus 1.3.1, -40..-50 dBFS room noise; see test_media_session), so
     * no generator of our own is needed. */
    bool comfort_noise;
} wzp_media_rx_config;

typedef struct wzp_media_rx_stats {
    uint64_t datagrams;            /* offered */
    uint64_t malformed;            /* did not parse */
    uint64_t unsupported;          /* parsed, but not an Opus payload */
    uint64_t decoded;              /* frames decoded from their own packet */
    uint64_t fec_recovered;        /* missing frames rebuilt from the next packet's FEC */
    uint64_t plc;                  /* missing frames concealed (not sender DTX) */
    uint64_t comfort;              /* sender-DTX slots filled with comfort noise */
    uint64_t decode_errors;        /* corrupt packets (concealed instead) */
    uint64_t silence;              /* pulls before audio started */
    uint64_t redundancy_recovered; /* missing frames rebuilt from a later packet's redundancy */
    uint64_t parity_rebuilt;       /* of which: packets rebuilt from parity (in time or not) */
    uint64_t faster;               /* frames played faster (time-compressed) to shed delay */
    uint64_t slower;               /* frames played slower (time-stretched) to add delay */
    uint64_t quiet_skipped;        /* quiet frames skipped to shed delay */
    wzp_ts delay;                  /* playout delay above the fastest arrival, at the last pull */
    /* Slots of sent speech (not DTX, not holds) played; of which without their own packet
     * (rebuilt or concealed); runs of such slots; the longest run. */
    uint64_t slots, missing, runs, max_run;
    /* Runs of exactly one missing slot, and how many of those were rebuilt (FEC or copy). */
    uint64_t single, single_rebuilt;
    /* Of the single ones, those whose next packet (it came, late or not) carries in-band FEC
     * (Opus leaves it out of some frames, e.g. silence), and of those the rebuilt ones: how
     * often the playout buffer had waited long enough for FEC. */
    uint64_t single_fec, single_fec_rebuilt;
    wzp_ts first_datagram; /* arrival of the first accepted datagram, or WZP_TS_NEVER */
    wzp_ts first_decoded;  /* pull time of the first decoded frame, or WZP_TS_NEVER */
    wzp_playout_stats playout;
} wzp_media_rx_stats;

typedef enum wzp_media_rx_out {
    WZP_MEDIA_RX_SILENCE = 0, /* nothing received / still buffering: zeros */
    WZP_MEDIA_RX_DECODED,
    WZP_MEDIA_RX_FEC, /* rebuilt: in-band FEC or a redundant copy */
    WZP_MEDIA_RX_CONCEALED,
    WZP_MEDIA_RX_COMFORT, /* sender in DTX: comfort noise (or zeros with it off) */
} wzp_media_rx_out;

typedef struct wzp_media_rx wzp_media_rx;

/* Playout defaults with adaptive delay, FEC and comfort noise on. */
void wzp_media_rx_config_default(wzp_media_rx_config *cfg);
/* cfg NULL: defaults. 0 or a negative wzp_error (*out untouched). */
int wzp_media_rx_new(wzp_media_rx **out, const wzp_media_rx_config *cfg);
void wzp_media_rx_free(wzp_media_rx *rx);

/* One received datagram. 0 = buffered, 1 = dropped (duplicate, late, ...),
 * WZP_ERR_MALFORMED / WZP_ERR_TOO_BIG / WZP_ERR_PROTOCOL (not Opus): counted. */
int wzp_media_rx_datagram(wzp_media_rx *rx, const uint8_t *dg, size_t len, wzp_ts now);
/* Writes one frame of PCM and returns what it is (wzp_media_rx_out; with
 * adaptive playout a pull may blend the end of one frame with the next, and
 * tells the kind of the newest). */
int wzp_media_rx_pull(wzp_media_rx *rx, wzp_ts now, int16_t pcm[WZP_AUDIO_FRAME_SAMPLES]);
wzp_ts wzp_media_rx_next_deadline(const wzp_media_rx *rx);
/* The longest run of missing speech slots since the previous call (for
 * receiver reports). */
unsigned wzp_media_rx_take_max_run(wzp_media_rx *rx);
/* Redundancy depth the sender's datagrams carried lately (0 = none). */
unsigned wzp_media_rx_redundancy(const wzp_media_rx *rx);
void wzp_media_rx_get_stats(const wzp_media_rx *rx, wzp_media_rx_stats *out);

#endif
