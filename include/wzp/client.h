/*
 * The wzp client: stays registered with a relay, places and answers calls.
 *
 * A client owns one event-loop thread, its UDP sockets (one IPv4, one
 * IPv6-only) and everything riding on them: the control connection to the
 * relay and one end-to-end QUIC connection per call. Every callback runs on
 * that thread; API calls may come from any thread.
 */
#ifndef WZP_CLIENT_H
#define WZP_CLIENT_H

#include <stdbool.h>
#include <stdint.h>

#include <wzp/audio.h>
#include <wzp/wzp.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wzp_client wzp_client;
typedef struct wzp_call wzp_call;

/* Audio is 48 kHz mono signed 16-bit, in 20 ms frames. */
#define WZP_SAMPLE_RATE   48000
#define WZP_FRAME_SAMPLES 960

typedef enum wzp_call_state {
    WZP_CALL_DIALING,    /* offer sent, callee not yet reached */
    WZP_CALL_RINGING,    /* callee reached (caller side) or incoming (callee side) */
    WZP_CALL_CONNECTING, /* accepted; end-to-end handshake in progress */
    WZP_CALL_ACTIVE,     /* handshake done, media flowing */
    WZP_CALL_ENDED,      /* terminal; the reason is an error code (WZP_OK for a local hang-up) */
} wzp_call_state;

typedef enum wzp_path_kind {
    WZP_PATH_NONE = 0,
    WZP_PATH_RELAY,
    WZP_PATH_DIRECT,
} wzp_path_kind;

typedef struct wzp_call_stats {
    wzp_path_kind path;
    char path_desc[96];  /* e.g. "direct 192.0.2.1:4000 -> 198.51.100.2:5000" */
    double rtt_ms;       /* smoothed round trip of the end-to-end connection */
    double loss_pct;     /* media frames lost, percent of expected */
    double bitrate_kbps; /* media bitrate sent */
    uint64_t frames_sent, frames_received, frames_lost;
    int64_t time_to_first_audio_ms; /* answer to first decoded frame on this side, -1 if none */
    int64_t time_to_direct_ms;      /* answer to first direct route, -1 if never */
    uint32_t path_changes;
    /* What the peer reports hearing from us (its Stats message, every 2 s; 0 until then). */
    uint64_t peer_frames_received, peer_frames_lost;
    bool peer_muted;
    int64_t max_gap_ms; /* longest interval between received media frames while active */
    /* What became of the slots played: frames that came too late to play, slots concealed
     * (no frame, no FEC), rebuilt from the next frame's in-band FEC, rebuilt from redundancy. */
    uint64_t frames_late, frames_concealed, frames_fec, frames_redundancy;
    uint64_t frames_refused;     /* made but refused by the transport (not in frames_sent) */
    double playout_delay_ms;     /* now: playout delay above the fastest arrival (jitter buffer) */
    double playout_target_ms;    /* what the playout buffer aims at (jitter + FEC wait) */
    double encoder_bitrate_kbps; /* now: the encoder's bitrate setting */
    int encoder_loss_pct;        /* now: the encoder's expected loss (in-band FEC strength) */
    uint64_t losses_single, losses_single_rebuilt; /* isolated missing slots, of which rebuilt */
    /* isolated missing slots whose next packet carried FEC, of which rebuilt */
    uint64_t losses_single_fec, losses_single_fec_rebuilt;
    /* Birthday probing (behind symmetric NATs): our role ("none", "open", "spray",
     * "predict") and the probes this side sent for it. */
    const char *birthday_role;
    uint64_t birthday_probes;
} wzp_call_stats;

typedef struct wzp_client_callbacks {
    /* Registration succeeded (again); `reflexive` is the address the relay sees, as text
     * ("tcp" when connected over the relay's TCP service). */
    void (*on_registered)(wzp_client *c, const char *reflexive, void *user);
    /* Registration was lost or failed; the client keeps retrying with backoff unless fatal. */
    void (*on_unregistered)(wzp_client *c, int err, bool fatal, void *user);
    /* Someone calls. Answer, reject, or leave it ringing (the relay expires it). */
    void (*on_incoming)(wzp_client *c, wzp_call *call, const char *caller_fp,
                        const char *caller_alias, void *user);
    /* Every call state change. After WZP_CALL_ENDED the call handle stays valid until
       wzp_call_release(). */
    void (*on_call_state)(wzp_client *c, wzp_call *call, wzp_call_state state, int reason,
                          void *user);
    /* The call's route changed (relay <-> direct). */
    void (*on_path)(wzp_client *c, wzp_call *call, const wzp_call_stats *stats, void *user);
    /* Every 20 ms once media flows: fill `pcm` with the next frame to send; return false for
       silence. A caller's flows from its end-to-end handshake on, while the callee's phone
       rings (the callee plays none of it before its user answers, then hears it at once),
       unless hold_audio_until_answer; a callee's from its answer. */
    bool (*pcm_source)(wzp_client *c, wzp_call *call, int16_t pcm[WZP_FRAME_SAMPLES], void *user);
    /* Every 20 ms while active: the next played-out frame (decoded or concealed). */
    void (*pcm_sink)(wzp_client *c, wzp_call *call, const int16_t pcm[WZP_FRAME_SAMPLES],
                     bool concealed, void *user);
} wzp_client_callbacks;

/* How the client reaches its relay. */
typedef enum wzp_relay_transport {
    WZP_RELAY_TRANSPORT_AUTO = 0, /* UDP, with TLS over TCP tried in parallel; UDP preferred */
    WZP_RELAY_TRANSPORT_UDP,      /* UDP only */
    WZP_RELAY_TRANSPORT_TCP,      /* the relay's TLS-over-TCP service only */
} wzp_relay_transport;

typedef struct wzp_client_config {
    const char *home; /* identity directory; NULL = $WZP_HOME or ~/.config/wzp */
    /* "NAME[:PORT]", "1.2.3.4[:PORT]" or "[v6][:PORT]" (port 4433 by default). A name is
     * resolved by wzp_client_new (blocking; WZP_ERR_RESOLVE if it does not resolve) and again
     * before every reconnect, off the loop; its addresses are tried IPv6 first, alternating
     * families, each for about a second (happy eyeballs). */
    const char *relay;
    /* The relay's fingerprint, text form. A cluster: relay is a comma list of relays (at most 8
     * addresses in all, every address of a name counting), relay_pin one fingerprint per relay
     * in the same order (or one for all). The client measures the RTT to each (one STUN round
     * trip), homes on the lowest and, when its relay is lost, moves to the next best (the lost
     * one rests 1 s doubling to 30 s). */
    const char *relay_pin;
    const char *alias; /* optional, registered with the relay */
    /* For networks that drop UDP: the relay's TLS-over-TCP service on the relay's host at this
     * port (0 = 443), pinned like the relay itself. */
    uint16_t relay_tcp_port;
    wzp_relay_transport relay_transport;
    const char *bind_v4;           /* local IPv4 "HOST:PORT"; NULL = 0.0.0.0:0 */
    const char *bind_v6;           /* local IPv6 "[HOST]:PORT"; NULL = [::]:0; "" = no IPv6 */
    bool host_candidates_loopback; /* offer loopback host addresses only (tests, demos) */
    bool direct_disabled;          /* never probe: always relay (diagnostics) */
    /* Do not ask the gateway (NAT-PMP, UPnP IGD) to map the IPv4 call socket. By default the
     * client does, off its loop thread, and offers the mapping as a candidate; it is renewed
     * while the client runs and deleted by wzp_client_stop. Off anyway with direct_disabled or
     * host_candidates_loopback (nothing leaves the machine). */
    bool portmap_disabled;
    /* Extra IPv4 sockets (0 = none, at most 256) for birthday probing: behind a symmetric
     * NAT they hold that many mappings towards a peer behind a port-restricted cone, which
     * then finds one by probing random ports (docs/client.md, "Symmetric NATs"). */
    unsigned birthday_socks;
    /* The source is a recording (a file, a test signal), not a live microphone: as caller,
     * start it at the answer rather than stream it while the callee's phone rings, so the
     * callee hears it from its beginning (half a relay round trip later). */
    bool hold_audio_until_answer;
    /* Debugging: write the qlog (JSON-SEQ) of every QUIC connection, control and calls, into
     * this directory, one file each; NULL = none. (TLS keys: GnuTLS writes them to the file
     * named by $SSLKEYLOGFILE, NSS key log format.) */
    const char *qlog_dir;
    /* Fixed codec settings: no adaptation to the peer's receiver reports, no redundancy (for
     * comparisons; docs/media.md). */
    bool adaptation_disabled;
    /* Against bursts, send XOR parity over the frames before each datagram instead of
     * copies of them (FEC across frames; docs/media.md compares both). */
    bool parity_repair;
    /* Live sound devices for calls without PCM callbacks. All zero: none (the call is silent
     * and plays to nowhere); wzp_audio_config_default(&cfg.audio) for the default microphone
     * and speaker with every processing stage on. */
    wzp_audio_config audio;
    wzp_client_callbacks cb;
    void *user;
} wzp_client_config;

/* All zero: default home and bind addresses, no alias, no callbacks (set relay, relay_pin). */
WZP_API void wzp_client_config_default(wzp_client_config *cfg);
/* 0, or a negative wzp_error (*out untouched); relay and relay_pin are required,
 * so there is no NULL config. */
WZP_API int wzp_client_new(wzp_client **out, const wzp_client_config *cfg);
/* Starts the loop thread and connects to the relay. */
WZP_API int wzp_client_start(wzp_client *c);
/* Hangs up every call, closes the relay connection and joins the thread. */
WZP_API void wzp_client_stop(wzp_client *c);
WZP_API void wzp_client_free(wzp_client *c);
/* This client's fingerprint, text form. */
WZP_API const char *wzp_client_fingerprint(const wzp_client *c);
/* Smoothed round trip to the relay (control connection), 0 before a sample. */
WZP_API double wzp_client_relay_rtt_ms(wzp_client *c);

/* Places a call to a fingerprint (text form) or alias. */
WZP_API int wzp_client_call(wzp_client *c, const char *peer, wzp_call **out);
/* Calls a key (a fingerprint) known by an alias, e.g. a contact's: only that key may answer,
 * and if it is offline while the relay says another key holds the alias, the call ends with
 * WZP_ERR_KEY_CHANGED (wzp_call_detail names that key; nobody is rung). alias NULL or "":
 * wzp_client_call. */
WZP_API int wzp_client_call_key(wzp_client *c, const char *fingerprint, const char *alias,
                                wzp_call **out);
WZP_API int wzp_call_answer(wzp_call *call);
WZP_API int wzp_call_reject(wzp_call *call);
WZP_API int wzp_call_hangup(wzp_call *call);
WZP_API int wzp_call_set_mute(wzp_call *call, bool mute);
/* The speaker's volume for this call, 0..WZP_VOLUME_MAX percent (100: as received); ramped, so
 * a change never clicks. Only the call's own sound devices: a pcm_sink gets the audio as is. */
WZP_API int wzp_call_set_volume(wzp_call *call, unsigned percent);
WZP_API int wzp_call_get_stats(wzp_call *call, wzp_call_stats *out);
/* The call's sound devices (out->live false when it uses none or none could be opened); after
 * the call ended, their figures when they were closed. */
WZP_API int wzp_call_get_audio_stats(wzp_call *call, wzp_audio_stats *out);
/* Frees a call's handle (a call not yet ended is hung up first). */
WZP_API void wzp_call_release(wzp_call *call);
/* After WZP_CALL_ENDED: a one-line explanation ("" when we hung up), e.g. the
 * man-in-the-middle warning for WZP_ERR_PIN_MISMATCH. */
WZP_API const char *wzp_call_detail(const wzp_call *call);
/* The peer's fingerprint (text form; "" until known) and alias ("" if none).
 * Read them from callbacks or after the call ended. */
WZP_API const char *wzp_call_peer_fingerprint(const wzp_call *call);
WZP_API const char *wzp_call_peer_alias(const wzp_call *call);
/* A short code ("123 456") both users read to each other to confirm no one sits in the
 * middle: derived from both fingerprints and the end-to-end connection's TLS exporter, so
 * the two sides of one connection show the same code and any other connection (a
 * man-in-the-middle's, or the next call) another. "" until the end-to-end handshake is done;
 * read it from on_call_state (ACTIVE) or later. */
WZP_API const char *wzp_call_verification_code(const wzp_call *call);

WZP_API const char *wzp_path_name(wzp_path_kind kind);

#ifdef __cplusplus
}
#endif

#endif
