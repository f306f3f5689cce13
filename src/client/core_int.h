/* Internals shared by core.c (endpoint, relay connection, demux) and core_call.c (calls). */
#ifndef WZP_CLIENT_CORE_INT_H
#define WZP_CLIENT_CORE_INT_H

#include "call/signal_client.h"
#include "client/core.h"
#include "ice/agent.h"
#include "media/media_session.h"
#include "quic/quic.h"
#include "wire/signal.h"

#define CORE_MAX_CALLS 16
#define CORE_MAX_HOSTS 12

/* Application close codes of the end-to-end connection. Before the answer the
 * connection already exists (pre-connected ringing), so declining and
 * withdrawing a call have their own codes: whichever of them or the relay's
 * CallEnded arrives first, the call ends for the same reason. */
#define CORE_CLOSE_HANGUP   0x100
#define CORE_CLOSE_ERROR    0x101
#define CORE_CLOSE_DECLINE  0x102 /* the callee did not take the call */
#define CORE_CLOSE_WITHDRAW 0x103 /* the caller gave up before the answer */

typedef struct core_call {
    struct wzp_core *core;
    uint32_t id;
    void *user;
    uint32_t sig; /* signal client handle; 0 once signaling is over */
    bool outgoing;
    bool released;     /* the owner dropped its handle */
    bool need_connect; /* caller: start the e2e connection outside callbacks */
    bool answered;     /* callee: our user answered; caller: the peer's Answer or CallSetup */
    wzp_call_state state;
    int end_err;
    char detail[384];

    uint8_t peer_fp[WZP_FINGERPRINT_LEN];
    bool have_peer_fp;
    char peer_fp_text[WZP_FINGERPRINT_STRLEN];
    char peer_alias[WZP_SIG_ALIAS_MAX + 1];

    uint32_t chan;    /* our relay channel, 0 before setup */
    wzp_addr relay;   /* where relay frames go */
    uint16_t vport;   /* virtual remote port */
    wzp_addr vremote; /* [100::2]:vport */
    wzp_quic_conn *conn;

    wzp_ice_agent *ice;
    bool keyed;
    uint8_t tag[WZP_PROBE_TAG_LEN];
    wzp_sig_candidate local[WZP_SIG_MAX_CANDIDATES];
    size_t n_local;
    bool cands_stale;  /* hosts changed after our Offer/Accept went out, before setup */
    uint32_t cand_gen; /* generation of the last complete candidate set sent to the peer */

    wzp_media_tx *tx;
    wzp_media_rx *rx;
    bool mute, peer_mute;
    wzp_ts tx_next, rx_next;
    wzp_ts answered_at, active_at, first_audio_at, direct_at;
    uint32_t path_changes;
    wzp_ts last_rx_at, max_gap; /* media datagrams: latest, longest interval */
    /* Callee: the caller's latest frame while ringing (not played), so the answer can
     * start playout from live audio instead of waiting for the next frame. */
    uint8_t ring_dg[WZP_QUIC_MAX_DATAGRAM];
    size_t ring_dg_len;
    wzp_ts ring_dg_at;
    uint64_t tail_lost;         /* frames never heard after the peer fell silent for good */
    wzp_ts next_keepalive, next_stats;
    uint64_t peer_frames_received, peer_frames_lost;
} core_call;

struct wzp_core {
    wzp_core_config cfg;
    char alias[WZP_SIG_ALIAS_MAX + 1];
    wzp_quic_endpoint *ep;
    wzp_sigc *sc;
    wzp_quic_conn *ctrl;
    bool ctrl_up;
    bool ever_registered;
    int relay_sock;
    wzp_ts reconnect_at, backoff;
    bool started, stopping, fatal;
    bool fatal_reported;  /* the UNREGISTERED event for the fatal error went out */
    wzp_ts last_relay_rx; /* the latest packet from the relay (control or frames) */
    wzp_addr hosts[CORE_MAX_HOSTS];
    size_t n_hosts;
    core_call *calls[CORE_MAX_CALLS];
    uint32_t next_id;
    uint16_t next_vport;
    wzp_addr vlocal;
    wzp_ts now; /* time of the current entry point (QUIC callbacks carry none) */
    wzp_core_counters counters;
};

void wzp_core__emit(wzp_core *core, const wzp_core_event *ev);
core_call *wzp_core__find(const wzp_core *core, uint32_t id);
core_call *wzp_core__find_sig(const wzp_core *core, uint32_t sig);
core_call *wzp_core__find_chan(const wzp_core *core, uint32_t chan);
core_call *wzp_core__find_vport(const wzp_core *core, uint16_t vport);
bool wzp_core__is_virtual(const wzp_addr *a);

/* core_call.c */
core_call *wzp_core__call_new(wzp_core *core, bool outgoing, void *user);
void wzp_core__call_free(wzp_core *core, core_call *call);
void wzp_core__call_end(wzp_core *core, core_call *call, int err, const char *detail);
void wzp_core__call_hosts_changed(wzp_core *core, core_call *call, wzp_ts now);
void wzp_core__call_reflexive(wzp_core *core, core_call *call, const wzp_addr *refl);
void wzp_core__call_sig_event(wzp_core *core, core_call *call, const wzp_sigc_event *ev);
int wzp_core__accept(wzp_core *core, const wzp_addr *remote, wzp_quic_conn_opts *opts);
void wzp_core__call_established(wzp_core *core, core_call *call, wzp_quic_conn *c,
                                const uint8_t *peer_fp);
void wzp_core__call_datagram(wzp_core *core, core_call *call, const uint8_t *d, size_t len);
void wzp_core__call_message(wzp_core *core, core_call *call, const uint8_t *d, size_t len);
void wzp_core__call_closed(wzp_core *core, core_call *call, const wzp_quic_close_info *info);
void wzp_core__call_after(wzp_core *core, core_call *call, wzp_ts now);
void wzp_core__call_timer(wzp_core *core, core_call *call, wzp_ts now);
wzp_ts wzp_core__call_deadline(const core_call *call);
void wzp_core__call_flush(wzp_core *core, core_call *call, wzp_ts now, wzp_core_send_fn send,
                          void *user);
void wzp_core__call_route(wzp_core *core, core_call *call, const uint8_t *pkt, size_t len,
                          wzp_core_send_fn send, void *user);
void wzp_core__call_stats(wzp_core *core, core_call *call, wzp_call_stats *out, wzp_ts now);

#endif
