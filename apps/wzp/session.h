/*
 * One client taking part in one call, for the CLI commands (listen, call,
 * reflect) and the demo (two of them in one process): audio source and
 * recording, JSON events, the terminal status line, the final summary and
 * the mapping of what happened to an exit code.
 */
#ifndef WZP_APP_SESSION_H
#define WZP_APP_SESSION_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include <wzp/client.h>

#include "media/audio_file.h"
#include "media/tone.h"
#include "phone/history.h"

typedef enum session_source {
    SRC_SILENCE = 0,
    SRC_FILE,
    SRC_TONE,
    SRC_PROBE, /* media/tone.h probe signal (demo) */
} session_source;

typedef struct session_opts {
    const char *name;  /* command name for messages ("wzp call") */
    const char *label; /* demo: "alice"/"bob" in JSON events, NULL otherwise */
    bool json;
    bool status_line; /* live status on stderr (terminals) */
    bool quiet;       /* no human-readable lines on stdout */
    bool auto_answer;
    bool ask;  /* without auto_answer: ask on the terminal (else incoming calls are rejected) */
    bool keys; /* single keys on the terminal during a call: m mute, h/q hang up */
    bool ring; /* the ring (incoming) and ringback (outgoing) on the speaker */
    bool transport_given; /* --relay-transport was given: the config file's does not apply */
    session_source source;
    const char *send_file;
    double tone_hz;
    uint64_t probe_seed;
    const char *record_file;
    bool keep_recording; /* keep the received PCM in memory (demo compare) */
    bool keep_sent;      /* keep the sent PCM in memory (demo compare) */
    double duration_s;   /* after the call is active; 0 = until it ends / the file ends */
    /* Sound devices: the microphone when nothing else is sent, the speaker when nothing is
       recorded (unless no_audio); audio.enabled says whether either is in use. */
    bool no_audio;
    wzp_audio_config audio;
    double register_timeout_s;
    /* wzp listen/call: names callers by their keys ("unknown" when not a contact); NULL in the
       demo. peer_label: who `call` dials, for "calling ..." (else the peer as given). */
    const struct wzp_contacts *contacts;
    const char *peer_label;
    const char *contact;       /* the contact `call` dials, NULL if none */
    const char *contact_alias; /* its alias, NULL if none: its key is dialled with it as a hint */
    /* wzp listen/call: every call is recorded in history_dir/history; NULL (demo): none. */
    const char *history_dir;
} session_opts;

/* Incoming calls turned away on the loop thread, recorded later by the main thread. */
#define SESSION_TURNED_AWAY_MAX 16

typedef struct session {
    session_opts o;
    wzp_client *client;
    pthread_mutex_t mu;
    pthread_cond_t cv;

    /* audio */
    int16_t *file_pcm;
    size_t file_n, file_pos;
    wzp_tone tone;
    wzp_probe_signal probe;
    int16_t *rec;
    size_t rec_n, rec_cap;
    wzp_wav_recorder *recorder; /* --record: opened before the call, written by session_finish */
    int16_t *sent;
    size_t sent_n, sent_cap;
    bool source_done; /* the file has been sent completely */
    bool live_in, live_out;
    bool audio_reported; /* the devices in use were told to the user: */
    char audio_in[WZP_AUDIO_DEVICE_NAME_MAX], audio_out[WZP_AUDIO_DEVICE_NAME_MAX];

    /* state, under mu */
    bool registered, unregistered, unreg_fatal;
    int unreg_err;
    char reflexive[64];
    wzp_call *call;
    wzp_call *pending; /* incoming, waiting for the user's answer */
    bool pending_ended;
    wzp_call_state state;
    bool active, ended;
    int end_reason;
    char end_detail[400];
    wzp_call_stats last;
    bool we_hung_up;
    bool muted, peer_muted;    /* main thread only */
    bool keys_shown;           /* the key help was printed for this call */
    unsigned volume;           /* the speaker's, percent (main thread; every call of the session) */
    struct wzp_ringer *ringer; /* ringing now (main thread) */
    int64_t active_at_ms, ended_at_ms;
    /* Monotonic seconds of the first file frame handed to the call and of the first frame
     * recorded (0 = none): with the recording's lag against the file, the delay from send to
     * play (bench/media-quality.sh). */
    double send_t0, play_t0;

    /* history of the current call */
    bool incoming;
    int64_t started_at;                   /* wall clock, seconds */
    char peer_fp[WZP_FINGERPRINT_STRLEN]; /* as the call came in ("" when not known) */
    wzp_history_rec turned_away[SESSION_TURNED_AWAY_MAX]; /* under mu */
    size_t turned_away_n;
    bool history_off; /* the file is damaged or unwritable: warned once, not written */
} session;

/* The exit code and one-line message for an error (used by every command). */
int session_exit_for(int err);

void session_init(session *s, const session_opts *o);
/* Loads the audio file and opens the recording (if any), before any call:
 * 0 or an exit code (message printed). */
int session_load_audio(session *s);
/* Creates and starts the client: 0 or an exit code (message printed). */
int session_start(session *s, const wzp_client_config *base);
/* Waits for registration: 0 or an exit code (message printed). */
int session_wait_registered(session *s);
/* Prints why the relay registration ended for good; returns the exit code. */
int session_unregistered_exit(session *s, int err);
/* Places a call and runs it to the end; returns the exit code. */
int session_run_call(session *s, const char *peer, volatile sig_atomic_t *interrupted);
/* Waits for one incoming call and runs it to the end; returns the exit code. */
int session_run_listen(session *s, volatile sig_atomic_t *interrupted);
/* Records the call that just ended (or, with no call, a `wzp call` to `dialled` that failed
 * with exit_code before it was placed) in the history, and any calls turned away. A damaged
 * or unwritable history file gets one warning and is left alone. */
void session_record(session *s, int exit_code, const char *dialled);
/* Records the calls turned away meanwhile (busy, not answering). */
void session_flush_history(session *s);
/* After session_record: forgets the ended call so session_run_listen can take the next one. */
void session_next_call(session *s);
/* Prints the summary (JSON or text). */
void session_summary(session *s, int exit_code);
/* Stops the client, writes the recording (if the call got anywhere; else
 * nothing is written); returns exit_code or an audio error code. */
int session_finish(session *s, int exit_code);

double session_now_s(void);

/* Puts the terminal back as it was before a call's single-key mode (idempotent; also run
 * at exit). */
void session_restore_terminal(void);

#endif
