/* One client in one call, for the CLI: see session.h. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "media/audio_file.h"
#include "phone.h"
#include "session.h"

#include <wzp/identity.h>

#include "common/addr.h"
#include "common/hostport.h"

double session_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *state_name(wzp_call_state st)
{
    switch (st) {
    case WZP_CALL_DIALING:
        return "dialing";
    case WZP_CALL_RINGING:
        return "ringing";
    case WZP_CALL_CONNECTING:
        return "connecting";
    case WZP_CALL_ACTIVE:
        return "active";
    case WZP_CALL_ENDED:
        return "ended";
    }
    return "?";
}

int session_exit_for(int err)
{
    switch (err) {
    case 0:
        return WZP_EXIT_OK;
    case WZP_ERR_UNREACHABLE:
    case WZP_ERR_TIMEOUT:
        return WZP_EXIT_UNREACHABLE;
    case WZP_ERR_NOT_FOUND:
    case WZP_ERR_OFFLINE:
        return WZP_EXIT_PEER_UNAVAIL;
    case WZP_ERR_REJECTED:
    case WZP_ERR_BUSY:
        return WZP_EXIT_REJECTED;
    case WZP_ERR_AUDIO:
        return WZP_EXIT_AUDIO;
    case WZP_ERR_HANGUP:
        return WZP_EXIT_HANGUP;
    case WZP_ERR_PIN_MISMATCH:
        return WZP_EXIT_MITM;
    case WZP_ERR_IDENTITY:
        return WZP_EXIT_IDENTITY;
    case WZP_ERR_ALIAS_TAKEN:
        return WZP_EXIT_ALIAS_TAKEN;
    case WZP_ERR_REPLACED:
        return WZP_EXIT_REPLACED;
    case WZP_ERR_PEER_UNREACHABLE:
        return WZP_EXIT_PEER_GONE;
    case WZP_ERR_RELAY_FULL:
        return WZP_EXIT_RELAY_FULL;
    case WZP_ERR_KEY_CHANGED:
        return WZP_EXIT_KEY_CHANGED;
    default:
        return WZP_EXIT_CALL_FAILED;
    }
}

/* JSON string; our strings are ASCII diagnostics and names. */
static void json_str(FILE *f, const char *s)
{
    phone_json_str(f, s ? s : "");
}

/* Who a key is, for the user: "bob (contact) FP" or "unknown FP" (just FP in the demo). */
static void describe_key(session *s, const char *fp, char *buf, size_t len)
{
    const char *name = phone_contact_name(s->o.contacts, fp);
    if (name)
        snprintf(buf, len, "%s (contact) %s", name, fp);
    else
        snprintf(buf, len, "%s%s", s->o.contacts ? "unknown " : "", fp);
}

static void json_contact(session *s, const char *fp)
{
    if (!s->o.contacts)
        return;
    printf(",\"contact\":");
    phone_json_str(stdout, phone_contact_name(s->o.contacts, fp));
}

static void json_begin(session *s, const char *event)
{
    flockfile(stdout);
    printf("{\"event\":\"%s\"", event);
    if (s->o.label) {
        printf(",\"who\":");
        json_str(stdout, s->o.label);
    }
}

static void json_end(void)
{
    printf("}\n");
    fflush(stdout);
    funlockfile(stdout);
}

static void clear_status(session *s)
{
    if (s->o.status_line)
        fprintf(stderr, "\r\033[K");
}

static void say(session *s, const char *fmt, const char *a, const char *b)
{
    if (s->o.json || s->o.quiet)
        return;
    clear_status(s);
    flockfile(stdout);
    if (s->o.label)
        printf("[%s] ", s->o.label);
    printf(fmt, a, b);
    printf("\n");
    fflush(stdout);
    funlockfile(stdout);
}

/* --- history ----------------------------------------------------------------------------- */

static int64_t wall_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

/* A record for a call with fp (text form, "" or NULL when not known), named by the contacts. */
static void history_rec_init(session *s, wzp_history_rec *r, bool incoming, const char *fp,
                             wzp_history_outcome outcome, const char *reason)
{
    memset(r, 0, sizeof(*r));
    r->start = wall_now_s();
    r->incoming = incoming;
    r->outcome = outcome;
    wzp_history_reason(reason, r->reason);
    if (fp && wzp_fingerprint_parse(fp, r->fp) == 0) {
        r->have_peer = true;
        const char *name = phone_contact_name(s->o.contacts, fp);
        if (name)
            snprintf(r->name, sizeof(r->name), "%s", name);
    }
}

static void history_write(session *s, const wzp_history_rec *r)
{
    if (!s->o.history_dir || s->history_off)
        return;
    size_t line = 0;
    const char *why = "";
    int rc = wzp_history_append(s->o.history_dir, r, &line, &why);
    if (rc == 0)
        return;
    /* Never written over: the user decides what to do with a damaged file; the call goes on. */
    s->history_off = true;
    clear_status(s);
    if (rc == WZP_ERR_MALFORMED)
        fprintf(stderr,
                "%s: warning: %s/%s line %zu: %s; calls are not recorded until it is fixed\n",
                s->o.name, s->o.history_dir, WZP_HISTORY_FILE, line, why);
    else
        fprintf(stderr, "%s: warning: cannot record the call in %s/%s: %s\n", s->o.name,
                s->o.history_dir, WZP_HISTORY_FILE, wzp_strerror(rc));
}

void session_flush_history(session *s)
{
    wzp_history_rec v[SESSION_TURNED_AWAY_MAX];
    pthread_mutex_lock(&s->mu);
    size_t n = s->turned_away_n;
    memcpy(v, s->turned_away, n * sizeof(v[0]));
    s->turned_away_n = 0;
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n; i++)
        history_write(s, &v[i]);
}

/* --- client callbacks (loop thread) ------------------------------------------------------- */

static void cb_registered(wzp_client *c, const char *reflexive, void *user)
{
    session *s = user;
    pthread_mutex_lock(&s->mu);
    s->registered = true;
    snprintf(s->reflexive, sizeof(s->reflexive), "%s", reflexive);
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->o.json) {
        json_begin(s, "registered");
        printf(",\"fingerprint\":\"%s\",\"reflexive\":", wzp_client_fingerprint(c));
        json_str(stdout, reflexive);
        json_end();
    }
}

static void cb_unregistered(wzp_client *c, int err, bool fatal, void *user)
{
    session *s = user;
    pthread_mutex_lock(&s->mu);
    s->unregistered = true;
    s->unreg_err = err;
    s->unreg_fatal = fatal;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->o.json) {
        json_begin(s, "unregistered");
        printf(",\"error\":");
        json_str(stdout, wzp_strerror(err));
        printf(",\"fatal\":%s", fatal ? "true" : "false");
        json_end();
    }
}

static void cb_incoming(wzp_client *c, wzp_call *call, const char *fp, const char *alias,
                        void *user)
{
    session *s = user;
    pthread_mutex_lock(&s->mu);
    bool free_line = !s->call && !s->pending;
    bool take = free_line && s->o.auto_answer;
    bool ask = free_line && !take && s->o.ask;
    if (take) {
        s->call = call;
        s->state = WZP_CALL_RINGING;
    }
    if (ask) {
        s->pending = call;
        s->pending_ended = false;
    }
    if (take || ask) {
        s->incoming = true;
        s->started_at = wall_now_s();
        snprintf(s->peer_fp, sizeof(s->peer_fp), "%s", fp ? fp : "");
    } else if (s->turned_away_n < SESSION_TURNED_AWAY_MAX) {
        /* The file is written by the main thread: this is the client's loop. */
        history_rec_init(s, &s->turned_away[s->turned_away_n++], true, fp,
                         free_line ? WZP_HIST_REJECTED : WZP_HIST_MISSED,
                         free_line ? "not answering" : "busy");
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->o.json) {
        json_begin(s, "incoming");
        printf(",\"from\":\"%s\",\"alias\":", fp);
        json_str(stdout, alias);
        json_contact(s, fp);
        printf(",\"answer\":%s", take ? "true" : ask ? "\"asking\"" : "false");
        json_end();
    }
    /* The call is held to this key: a handshake proving another ends it as a possible
     * man-in-the-middle, so the name shown is the one that talks. */
    char who[WZP_CONTACT_NAME_MAX + WZP_FINGERPRINT_STRLEN + 32];
    describe_key(s, fp, who, sizeof(who));
    if (!s->o.json && !ask)
        say(s, "incoming call from %s %s", who, alias ? alias : "");
    if (ask) {
        clear_status(s);
        /* The bell: the terminal may be in the background when a call comes in. */
        fprintf(stderr, "\aincoming call from %s%s%s%s - answer? [y/N] ", who,
                alias && alias[0] ? " (alias '" : "", alias ? alias : "",
                alias && alias[0] ? "' per the relay)" : "");
        return;
    }
    if (take) {
        wzp_call_answer(call);
    } else {
        /* Busy or not answering: decline; rejected calls end at once, drop the handle. */
        wzp_call_reject(call);
        wzp_call_release(call);
    }
}

static void cb_call_state(wzp_client *c, wzp_call *call, wzp_call_state st, int reason, void *user)
{
    session *s = user;
    pthread_mutex_lock(&s->mu);
    if (call == s->pending && st == WZP_CALL_ENDED) {
        s->pending_ended = true; /* the caller gave up before we answered */
        pthread_cond_broadcast(&s->cv);
    }
    if (call != s->call) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    s->state = st;
    if (st == WZP_CALL_ACTIVE && !s->active) {
        s->active = true;
        s->active_at_ms = (int64_t)(session_now_s() * 1000);
    }
    if (st == WZP_CALL_ENDED) {
        s->ended = true;
        s->ended_at_ms = (int64_t)(session_now_s() * 1000);
        s->end_reason = reason;
        snprintf(s->end_detail, sizeof(s->end_detail), "%s", wzp_call_detail(call));
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->o.json) {
        json_begin(s, "state");
        printf(",\"state\":\"%s\"", state_name(st));
        if (st == WZP_CALL_ACTIVE) { /* the key the end-to-end handshake proved */
            printf(",\"peer\":\"%s\"", wzp_call_peer_fingerprint(call));
            json_contact(s, wzp_call_peer_fingerprint(call));
            printf(",\"code\":\"%s\"", wzp_call_verification_code(call));
        }
        if (st == WZP_CALL_ENDED) {
            printf(",\"reason\":");
            json_str(stdout, reason ? wzp_strerror(reason) : "hung up");
            printf(",\"detail\":");
            json_str(stdout, wzp_call_detail(call));
        }
        json_end();
    } else if (st == WZP_CALL_ACTIVE) {
        /* Who answered is the key the handshake proved; an alias is only the relay's word. */
        const char *alias = wzp_call_peer_alias(call);
        char key[WZP_CONTACT_NAME_MAX + WZP_FINGERPRINT_STRLEN + 32], who[200];
        describe_key(s, wzp_call_peer_fingerprint(call), key, sizeof(key));
        snprintf(who, sizeof(who), "%s%s%s%s", key, alias[0] ? " (alias '" : "", alias,
                 alias[0] ? "' per the relay)" : "");
        char verified[96];
        snprintf(verified, sizeof(verified),
                 ", key verified end to end; verification code %s (compare by voice)",
                 wzp_call_verification_code(call));
        say(s, "call active: talking to %s%s", who, verified);
    } else if (st != WZP_CALL_ENDED) {
        say(s, "call %s%s", state_name(st), "");
    }
}

static void cb_path(wzp_client *c, wzp_call *call, const wzp_call_stats *st, void *user)
{
    session *s = user;
    if (s->o.json) {
        json_begin(s, "path");
        struct timespec wall; /* wall clock: scripts line path changes up with their own events */
        clock_gettime(CLOCK_REALTIME, &wall);
        printf(",\"path\":\"%s\",\"at_ms\":%lld,\"desc\":", wzp_path_name(st->path),
               (long long)wall.tv_sec * 1000 + wall.tv_nsec / 1000000);
        json_str(stdout, st->path_desc);
        json_end();
    } else {
        say(s, "path: %s%s", st->path_desc, "");
    }
}

static void push(int16_t **buf, size_t *n, size_t *cap, const int16_t *pcm)
{
    if (*n + WZP_FRAME_SAMPLES > *cap) {
        size_t ncap = *cap ? *cap * 2 : WZP_SAMPLE_RATE * 8;
        int16_t *nb = realloc(*buf, ncap * sizeof(int16_t));
        if (!nb)
            return;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *n, pcm, WZP_FRAME_SAMPLES * sizeof(int16_t));
    *n += WZP_FRAME_SAMPLES;
}

static bool cb_source(wzp_client *c, wzp_call *call, int16_t pcm[WZP_FRAME_SAMPLES], void *user)
{
    session *s = user;
    bool have = true;
    switch (s->o.source) {
    case SRC_FILE: {
        if (!s->file_pos)
            s->send_t0 = session_now_s();
        size_t left = s->file_n - s->file_pos,
               take = left < WZP_FRAME_SAMPLES ? left : WZP_FRAME_SAMPLES;
        memset(pcm, 0, WZP_FRAME_SAMPLES * sizeof(int16_t));
        memcpy(pcm, s->file_pcm + s->file_pos, take * sizeof(int16_t));
        s->file_pos += take;
        if (s->file_pos >= s->file_n) {
            pthread_mutex_lock(&s->mu);
            s->source_done = true;
            pthread_cond_broadcast(&s->cv);
            pthread_mutex_unlock(&s->mu);
        }
        have = take > 0;
        break;
    }
    case SRC_TONE:
        wzp_tone_fill_s16(&s->tone, pcm, WZP_FRAME_SAMPLES);
        break;
    case SRC_PROBE:
        wzp_probe_signal_fill_s16(&s->probe, pcm, WZP_FRAME_SAMPLES);
        break;
    default:
        memset(pcm, 0, WZP_FRAME_SAMPLES * sizeof(int16_t));
        have = false;
    }
    if (s->o.keep_sent)
        push(&s->sent, &s->sent_n, &s->sent_cap, pcm);
    return have;
}

static void cb_sink(wzp_client *c, wzp_call *call, const int16_t pcm[WZP_FRAME_SAMPLES],
                    bool concealed, void *user)
{
    session *s = user;
    if (s->o.record_file || s->o.keep_recording) {
        if (!s->rec_n)
            s->play_t0 = session_now_s();
        push(&s->rec, &s->rec_n, &s->rec_cap, pcm);
    }
}

/* --- setup -------------------------------------------------------------------------------------
 */

void session_init(session *s, const session_opts *o)
{
    memset(s, 0, sizeof(*s));
    s->o = *o;
    if (!s->o.register_timeout_s)
        s->o.register_timeout_s = 10;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->volume = 100;
    if (o->source == SRC_TONE)
        wzp_tone_init(&s->tone, o->tone_hz, 0.5f);
    if (o->source == SRC_PROBE)
        wzp_probe_signal_init(&s->probe, o->probe_seed, 0.5f);
    s->live_in = !o->no_audio && o->source == SRC_SILENCE;
    s->live_out = !o->no_audio && !o->record_file && !o->keep_recording;
    s->o.audio.enabled = s->live_in || s->live_out;
}

int session_load_audio(session *s)
{
    if (s->o.source == SRC_FILE) {
        int rc = wzp_audio_read_s16(s->o.send_file, &s->file_pcm, &s->file_n);
        if (rc < 0) {
            fprintf(stderr, "%s: cannot read audio file %s: %s\n", s->o.name, s->o.send_file,
                    rc == WZP_ERR_NOT_FOUND ? "no such file" : wzp_strerror(rc));
            return WZP_EXIT_AUDIO;
        }
    }
    if (s->o.record_file) {
        /* Now, not after the call: a path that cannot be written fails before anyone rings. */
        int e = 0, rc = wzp_wav_recorder_open(&s->recorder, s->o.record_file, &e);
        if (rc < 0) {
            fprintf(stderr, "%s: cannot record to %s: %s\n", s->o.name, s->o.record_file,
                    e ? strerror(e) : wzp_strerror(rc));
            return WZP_EXIT_AUDIO;
        }
    }
    return 0;
}

int session_start(session *s, const wzp_client_config *base)
{
    wzp_client_config cfg = *base;
    /* A file or the test signal must be heard from its start: no early audio while ringing. */
    cfg.hold_audio_until_answer = s->o.source == SRC_FILE || s->o.source == SRC_PROBE;
    cfg.cb = (wzp_client_callbacks){
        .on_registered = cb_registered,
        .on_unregistered = cb_unregistered,
        .on_incoming = cb_incoming,
        .on_call_state = cb_call_state,
        .on_path = cb_path,
        .pcm_source = s->live_in ? NULL : cb_source,
        .pcm_sink = s->live_out ? NULL : cb_sink,
    };
    cfg.audio = s->o.audio;
    cfg.user = s;
    /* Name the bad option precisely before the library's generic WZP_ERR_INVALID. */
    wzp_hostport relay_hp;
    int n_relays = 0, n_pins = 0;
    char list[1024], *save = NULL;
    snprintf(list, sizeof(list), "%s", cfg.relay ? cfg.relay : "");
    for (char *r = strtok_r(list, ", ", &save); r; r = strtok_r(NULL, ", ", &save), n_relays++)
        if (wzp_hostport_parse(&relay_hp, r, WZP_DEFAULT_RELAY_PORT) < 0) {
            fprintf(stderr, "%s: --relay wants HOST[:PORT] (a host name or address), got '%s'\n",
                    s->o.name, r);
            return WZP_EXIT_USAGE;
        }
    if (n_relays == 0 || n_relays > 8) {
        fprintf(stderr, "%s: --relay wants 1 to 8 relays HOST[:PORT], got '%s'\n", s->o.name,
                cfg.relay ? cfg.relay : "");
        return WZP_EXIT_USAGE;
    }
    snprintf(list, sizeof(list), "%s", cfg.relay_pin ? cfg.relay_pin : "");
    for (char *p = strtok_r(list, ", ", &save); p; p = strtok_r(NULL, ", ", &save), n_pins++) {
        uint8_t fp[WZP_FINGERPRINT_LEN];
        if (wzp_fingerprint_parse(p, fp) < 0)
            n_pins = -100;
    }
    if (n_pins <= 0 || (n_pins != 1 && n_pins != n_relays)) {
        fprintf(stderr,
                "%s: --relay-pin wants the relay's fingerprint (as wzp-relay prints it), one per "
                "--relay or one for all\n",
                s->o.name);
        return WZP_EXIT_USAGE;
    }
    int rc = wzp_client_new(&s->client, &cfg);
    if (rc < 0) {
        if (rc == WZP_ERR_IDENTITY) {
            fprintf(stderr, "%s: cannot load or create the identity\n", s->o.name);
            return WZP_EXIT_IDENTITY;
        }
        if (rc == WZP_ERR_RESOLVE) {
            fprintf(stderr, "%s: relay unreachable: host name '%s' does not resolve (DNS)\n",
                    s->o.name, relay_hp.host);
            return WZP_EXIT_UNREACHABLE;
        }
        if (rc == WZP_ERR_INVALID) {
            fprintf(stderr, "%s: bad --alias or local address (--bind/--bind6)\n", s->o.name);
            return WZP_EXIT_USAGE;
        }
        fprintf(stderr, "%s: cannot start the client: %s\n", s->o.name, wzp_strerror(rc));
        return WZP_EXIT_FAILURE;
    }
    rc = wzp_client_start(s->client);
    if (rc < 0) {
        fprintf(stderr, "%s: cannot start the client: %s\n", s->o.name, wzp_strerror(rc));
        return WZP_EXIT_FAILURE;
    }
    return 0;
}

static void deadline_in(struct timespec *ts, double secs)
{
    clock_gettime(CLOCK_REALTIME, ts);
    double t = (double)ts->tv_sec + (double)ts->tv_nsec / 1e9 + secs;
    ts->tv_sec = (time_t)t;
    ts->tv_nsec = (long)((t - (double)ts->tv_sec) * 1e9);
}

int session_wait_registered(session *s)
{
    double end = session_now_s() + s->o.register_timeout_s;
    pthread_mutex_lock(&s->mu);
    while (!s->registered && !s->unregistered && session_now_s() < end) {
        struct timespec ts;
        deadline_in(&ts, 0.1);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    bool ok = s->registered;
    int err = s->unregistered ? s->unreg_err : WZP_ERR_UNREACHABLE;
    pthread_mutex_unlock(&s->mu);
    if (ok)
        return 0;
    return session_unregistered_exit(s, err);
}

int session_unregistered_exit(session *s, int err)
{
    static const struct {
        int err, code;
        const char *why;
    } reasons[] = {
        {WZP_ERR_PIN_MISMATCH, WZP_EXIT_RELAY_PIN,
         "wrong relay pin: the relay at that address presented another key"},
        {WZP_ERR_ALIAS_TAKEN, WZP_EXIT_ALIAS_TAKEN,
         "alias taken: the relay binds it to another key"},
        {WZP_ERR_RELAY_FULL, WZP_EXIT_RELAY_FULL,
         "relay full: it takes no more registrations from this address"},
        {WZP_ERR_REPLACED, WZP_EXIT_REPLACED,
         "signed in elsewhere: another client registered this identity"},
        {WZP_ERR_IDENTITY, WZP_EXIT_IDENTITY, "the relay refused our identity"},
    };
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
        if (reasons[i].err == err) {
            fprintf(stderr, "%s: %s\n", s->o.name, reasons[i].why);
            return reasons[i].code;
        }
    fprintf(stderr, "%s: relay unreachable: no answer from it\n", s->o.name);
    return WZP_EXIT_UNREACHABLE;
}

/* --- running a call -----------------------------------------------------------------------------
 */

/* The sound devices in use once they work (or, with force, whatever there is), and again
 * whenever one is replaced (a device vanished and the default took over). */
static void report_audio(session *s, bool force)
{
    if (!s->o.audio.enabled || !s->call)
        return;
    wzp_audio_stats as;
    if (wzp_call_get_audio_stats(s->call, &as) < 0)
        return;
    bool have_all = (!s->live_in || as.input[0]) && (!s->live_out || as.output[0]);
    if (s->audio_reported) {
        if (!have_all || (!strcmp(as.input, s->audio_in) && !strcmp(as.output, s->audio_out)))
            return;
    } else if (!force && as.live && !have_all) {
        return; /* the device threads are still opening them */
    }
    bool change = s->audio_reported;
    s->audio_reported = true;
    snprintf(s->audio_in, sizeof(s->audio_in), "%s", as.input);
    snprintf(s->audio_out, sizeof(s->audio_out), "%s", as.output);
    if (s->o.json) {
        json_begin(s, "audio");
        printf(",\"live\":%s,\"backend\":", as.live ? "true" : "false");
        json_str(stdout, as.backend);
        printf(",\"input\":");
        json_str(stdout, as.input);
        printf(",\"output\":");
        json_str(stdout, as.output);
        printf(",\"change\":%s", change ? "true" : "false");
        json_end();
        return;
    }
    if (s->o.quiet)
        return;
    clear_status(s);
    if (!as.live)
        fprintf(stderr,
                "%s: no sound device (no sound server answers and ALSA has no usable device); "
                "the call goes on without microphone and speaker\n",
                s->o.name);
    else
        fprintf(stderr, "%s: audio %svia %s: microphone %s, speaker %s\n", s->o.name,
                change ? "now " : "", as.backend,
                !s->live_in   ? "(not used)"
                : as.input[0] ? as.input
                              : "(none working yet)",
                !s->live_out   ? "(not used)"
                : as.output[0] ? as.output
                               : "(none working yet)");
}

/* --- single keys during a call --------------------------------------------------------------
 */

/* The terminal as it was before the first call; restored in this one place, whichever way
 * the call or the program ends, so the user's shell never inherits a no-echo terminal. */
static struct termios term_saved;
static bool term_have_saved, term_raw;

void session_restore_terminal(void)
{
    if (!term_raw)
        return;
    tcsetattr(STDIN_FILENO, TCSANOW, &term_saved);
    term_raw = false;
}

/* Non-canonical, no echo, reads never block: keys arrive one by one without Enter. ISIG stays
 * on, so Ctrl-C still sets the interrupted flag and ends the call the usual way. */
static void keys_on(session *s)
{
    /* A background job (cmd &) would be stopped by SIGTTOU: it gets no keys. */
    if (!s->o.keys || term_raw || tcgetpgrp(STDIN_FILENO) != getpgrp())
        return;
    if (!term_have_saved) {
        if (tcgetattr(STDIN_FILENO, &term_saved) < 0)
            return;
        term_have_saved = true;
        atexit(session_restore_terminal);
    }
    struct termios t = term_saved;
    t.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
    t.c_cc[VMIN] = 0;
    t.c_cc[VTIME] = 0;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0)
        term_raw = true;
}

/* --- rings on the speaker ------------------------------------------------------------------ */

static void ring_start(session *s, wzp_ring_kind kind)
{
    if (!s->o.ring || s->ringer || !s->live_out)
        return;
    /* No sound device: the bell and the line on the terminal still ring. */
    if (wzp_ringer_start(&s->ringer, &s->o.audio, kind, s->volume) < 0)
        s->ringer = NULL;
}

static void ring_stop(session *s)
{
    wzp_ringer_stop(s->ringer);
    s->ringer = NULL;
}

/* +/- steps of the speaker's volume, in percent. */
#define VOLUME_STEP 10

static void volume_step(session *s, int dir)
{
    int v = (int)s->volume + dir * VOLUME_STEP;
    s->volume = v < 0 ? 0 : v > WZP_VOLUME_MAX ? WZP_VOLUME_MAX : (unsigned)v;
    wzp_call_set_volume(s->call, s->volume);
    clear_status(s);
    fprintf(stderr, "volume %u%%\n", s->volume);
}

/* The keys typed since the last look: m toggles mute (from the first ring on), + and - set the
 * volume (once active), h or q hangs up (true). */
static bool keys_read(session *s)
{
    if (!term_raw)
        return false;
    struct pollfd pf = {STDIN_FILENO, POLLIN, 0};
    if (poll(&pf, 1, 0) <= 0 || !(pf.revents & POLLIN))
        return false;
    char buf[32];
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    bool hang = false;
    for (ssize_t i = 0; i < n; i++) {
        char k = buf[i];
        if (k == 'h' || k == 'H' || k == 'q' || k == 'Q') {
            hang = true;
        } else if (k == 'm' || k == 'M') {
            /* Also while it rings or connects: the call carries the state into its media and
             * tells the peer once the connection is up. */
            s->muted = !s->muted;
            wzp_call_set_mute(s->call, s->muted);
            clear_status(s);
            fprintf(stderr, "%s\n", s->muted ? "muted" : "unmuted");
        } else if ((k == '+' || k == '=') && s->active) {
            volume_step(s, +1);
        } else if ((k == '-' || k == '_') && s->active) {
            volume_step(s, -1);
        }
    }
    return hang;
}

/* A level meter of LEVEL_BAR characters: -60 dBFS and below empty, 0 dBFS full. */
#define LEVEL_BAR 8

static void level_bar(double db, char out[LEVEL_BAR + 1])
{
    int n = (int)((db + 60.0) / 60.0 * LEVEL_BAR + 0.5);
    for (int i = 0; i < LEVEL_BAR; i++)
        out[i] = i < n ? '#' : '.';
    out[LEVEL_BAR] = 0;
}

static void print_status(session *s, bool show)
{
    wzp_call_stats st;
    if (!s->call || wzp_call_get_stats(s->call, &st) < 0)
        return;
    pthread_mutex_lock(&s->mu);
    if (st.rtt_ms > 0 || s->last.rtt_ms == 0)
        s->last = st;
    else {
        double rtt = s->last.rtt_ms;
        s->last = st;
        s->last.rtt_ms = rtt;
    }
    pthread_mutex_unlock(&s->mu);
    if (st.peer_muted != s->peer_muted) {
        s->peer_muted = st.peer_muted;
        if (s->o.json) {
            json_begin(s, "peer_mute");
            printf(",\"muted\":%s", st.peer_muted ? "true" : "false");
            json_end();
        } else {
            say(s, "the peer %s%s", st.peer_muted ? "muted their microphone" : "unmuted", "");
        }
    }
    if (!show || !s->o.status_line)
        return;
    /* The devices: how loud the microphone and the speaker are, and any trouble (frames the
     * devices or the call thread lost). */
    char audio[160] = "";
    wzp_audio_stats as;
    if (s->o.audio.enabled && wzp_call_get_audio_stats(s->call, &as) == 0 && as.live) {
        char in[LEVEL_BAR + 1], out[LEVEL_BAR + 1];
        level_bar(as.input_level_db, in);
        level_bar(as.output_level_db, out);
        size_t n = 0;
        if (s->live_in)
            n += (size_t)snprintf(audio + n, sizeof(audio) - n, " | mic %s", in);
        if (s->live_out && n < sizeof(audio))
            n += (size_t)snprintf(audio + n, sizeof(audio) - n, " | spk %s", out);
        if (as.volume_pct != 100 && n < sizeof(audio))
            n += (size_t)snprintf(audio + n, sizeof(audio) - n, " vol %u%%", as.volume_pct);
        unsigned long long xruns = as.capture_overruns + as.capture_underruns +
                                   as.playback_overruns + as.playback_underruns;
        if ((xruns || as.device_losses) && n < sizeof(audio))
            snprintf(audio + n, sizeof(audio) - n, " | audio dropouts %llu, devices lost %llu",
                     xruns, (unsigned long long)as.device_losses);
    }
    fprintf(stderr,
            "\r\033[K%s%s%s | rtt %.1f ms | loss %.1f%% | %.1f kbps (codec %.0f, fec %d%%) | "
            "sent %llu recv %llu | late %llu fec %llu concealed %llu | playout %.0f ms%s%s%s",
            s->o.label ? s->o.label : "", s->o.label ? ": " : "", wzp_path_name(st.path), st.rtt_ms,
            st.loss_pct, st.bitrate_kbps, st.encoder_bitrate_kbps, st.encoder_loss_pct,
            (unsigned long long)st.frames_sent, (unsigned long long)st.frames_received,
            (unsigned long long)st.frames_late,
            (unsigned long long)(st.frames_fec + st.frames_redundancy),
            (unsigned long long)st.frames_concealed, st.playout_delay_ms, audio,
            s->muted ? " | MUTED" : "", st.peer_muted ? " | peer muted" : "");
}

/* Runs an accepted/placed call until it ends, the duration passes, the file
 * ends or the user interrupts. Returns the exit code. */
static int run_until_end(session *s, volatile sig_atomic_t *interrupted, bool caller)
{
    double last_status = 0, active_since = 0, done_since = 0;
    keys_on(s);
    if (s->volume != 100)
        wzp_call_set_volume(s->call, s->volume);
    for (;;) {
        pthread_mutex_lock(&s->mu);
        struct timespec ts;
        deadline_in(&ts, 0.05);
        if (!s->ended)
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        bool ended = s->ended, active = s->active, done = s->source_done;
        bool ringing = s->state == WZP_CALL_RINGING;
        pthread_mutex_unlock(&s->mu);
        /* The caller hears the other phone ring until it answers. */
        if (caller && ringing && !active)
            ring_start(s, WZP_RING_BACK);
        else if (s->ringer)
            ring_stop(s);
        if (ended)
            break;
        session_flush_history(s);
        double now = session_now_s();
        if (active && !active_since)
            active_since = now;
        if (done && !done_since)
            done_since = now;
        if (active && term_raw && !s->keys_shown) {
            s->keys_shown = true;
            clear_status(s);
            fprintf(stderr, "keys: m mute, +/- volume, h hang up\n");
        }
        /* After the file: let the peer's playout buffer drain before hanging up. */
        bool stop = keys_read(s) || (interrupted && *interrupted) ||
                    (active && s->o.duration_s > 0 && now - active_since >= s->o.duration_s) ||
                    (active && s->o.duration_s <= 0 && done && now - done_since >= 0.3);
        if (stop) {
            pthread_mutex_lock(&s->mu);
            s->we_hung_up = true;
            pthread_mutex_unlock(&s->mu);
            print_status(s, false);
            wzp_call_hangup(s->call);
            continue;
        }
        if (active && now - last_status >= (s->o.status_line ? 0.5 : 1.0)) {
            last_status = now;
            report_audio(s, now - active_since > 5);
            print_status(s, true);
        }
    }
    ring_stop(s);
    session_restore_terminal();
    print_status(s, false);
    clear_status(s);
    if (s->active)
        say(s, "call ended%s%s", s->we_hung_up ? " (hung up here)" : "", "");
    int reason = s->end_reason;
    if (reason == 0)
        return WZP_EXIT_OK;
    if (reason == WZP_ERR_HANGUP)
        return caller ? WZP_EXIT_HANGUP : WZP_EXIT_OK; /* a listener's call ends that way */
    return session_exit_for(reason);
}

static int report_end(session *s, int code)
{
    if (code == WZP_EXIT_OK)
        return code;
    const char *detail = s->end_detail;
    switch (s->end_reason) {
    case WZP_ERR_NOT_FOUND:
        fprintf(stderr, "%s: unknown peer: no client is registered under that name\n", s->o.name);
        break;
    case WZP_ERR_OFFLINE:
        /* The relay cannot be asked which key an alias has now without ringing it, so a
         * contact's new key is only suggested, never looked up or followed. */
        if (s->o.contact)
            fprintf(stderr,
                    "%s: %s is offline: no client with that contact's key is registered with the "
                    "relay (if %s has a new key, verify it and re-add the contact)\n",
                    s->o.name, s->o.contact, s->o.contact);
        else
            fprintf(stderr, "%s: the peer is offline (not registered with the relay)\n", s->o.name);
        break;
    case WZP_ERR_KEY_CHANGED:
        /* The relay's word only: never followed, the pinned key stays. */
        fprintf(stderr,
                "%s: %s's key changed? %s; nobody was called. If %s really has a new key, "
                "verify it with them and re-add the contact (wzp contacts add)\n",
                s->o.name, s->o.contact ? s->o.contact : "the contact", detail,
                s->o.contact ? s->o.contact : "they");
        break;
    case WZP_ERR_REJECTED:
        fprintf(stderr, "%s: the peer rejected the call\n", s->o.name);
        break;
    case WZP_ERR_BUSY:
        fprintf(stderr, "%s: the peer is busy in another call\n", s->o.name);
        break;
    case WZP_ERR_HANGUP:
        fprintf(stderr, "%s: the peer hung up\n", s->o.name);
        break;
    case WZP_ERR_PIN_MISMATCH:
        fprintf(stderr, "%s: %s\n", s->o.name, detail);
        break;
    case WZP_ERR_UNREACHABLE:
        fprintf(stderr, "%s: lost the connection to the relay%s%s\n", s->o.name,
                detail[0] ? ": " : "", detail);
        break;
    case WZP_ERR_PEER_UNREACHABLE:
        fprintf(stderr, "%s: %s\n", s->o.name, detail[0] ? detail : "peer unreachable");
        break;
    case WZP_ERR_INVALID:
        /* The detail is the relay's reason text when it gave one, else just the code's
         * name again ("invalid argument"): only a different one is worth printing. */
        if (detail[0] && strcmp(detail, wzp_strerror(WZP_ERR_INVALID)))
            fprintf(stderr, "%s: the relay refused the call: %s\n", s->o.name, detail);
        else
            fprintf(stderr, "%s: the relay refused the call as invalid (is that your own alias?)\n",
                    s->o.name);
        break;
    default:
        fprintf(stderr, "%s: call failed: %s%s%s\n", s->o.name, wzp_strerror(s->end_reason),
                detail[0] ? ": " : "", detail);
    }
    return code;
}

int session_run_call(session *s, const char *peer, volatile sig_atomic_t *interrupted)
{
    wzp_call *call;
    pthread_mutex_lock(&s->mu);
    s->incoming = false;
    s->started_at = wall_now_s();
    int rc = wzp_client_call_key(s->client, peer, s->o.contact_alias, &call);
    if (rc == 0)
        s->call = call; /* set under the lock: callbacks for it wait for it */
    pthread_mutex_unlock(&s->mu);
    if (rc < 0) {
        if (rc == WZP_ERR_INVALID)
            fprintf(stderr, "%s: '%s' is neither a fingerprint nor an alias\n", s->o.name, peer);
        else
            fprintf(stderr, "%s: cannot place the call: %s\n", s->o.name, wzp_strerror(rc));
        return rc == WZP_ERR_INVALID ? WZP_EXIT_USAGE : WZP_EXIT_FAILURE;
    }
    say(s, "calling %s%s", s->o.peer_label ? s->o.peer_label : peer, "");
    return report_end(s, run_until_end(s, interrupted, true));
}

/* The user's answer to a ringing call: 1 answer, 0 reject, -1 none yet. Single keys where
 * the terminal gives them (y answers; n or Enter rejects; other keys are ignored), else a line. */
static int answer_key(session *s)
{
    struct pollfd pf = {STDIN_FILENO, POLLIN, 0};
    if (poll(&pf, 1, 100) <= 0)
        return -1;
    if (!term_raw) {
        char line[64] = "";
        return fgets(line, sizeof(line), stdin) && (line[0] == 'y' || line[0] == 'Y');
    }
    char buf[16];
    ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));
    if (n == 0)
        return 0; /* the terminal went away: nobody can answer */
    for (ssize_t i = 0; i < n; i++) {
        if (buf[i] == 'y' || buf[i] == 'Y')
            return 1;
        if (buf[i] == 'n' || buf[i] == 'N' || buf[i] == '\n' || buf[i] == '\r')
            return 0;
    }
    return -1;
}

/* A call waits for the user's y/N on the terminal, ringing: true once it was answered. */
static bool ask_user(session *s)
{
    keys_on(s);
    ring_start(s, WZP_RING_INCOMING);
    bool answered = false;
    for (;;) {
        pthread_mutex_lock(&s->mu);
        wzp_call *p = s->pending;
        bool gone = s->pending_ended;
        pthread_mutex_unlock(&s->mu);
        if (!p)
            break;
        wzp_history_rec r;
        if (gone) {
            fprintf(stderr, "\nmissed call (the caller hung up)\n");
            history_rec_init(s, &r, true, s->peer_fp, WZP_HIST_MISSED, "caller hung up");
            history_write(s, &r);
            break;
        }
        int key = answer_key(s);
        if (key < 0)
            continue;
        if (key == 0) {
            fprintf(stderr, "\nrejected\n");
            wzp_call_reject(p);
            history_rec_init(s, &r, true, s->peer_fp, WZP_HIST_REJECTED, "declined");
            r.start = s->started_at;
            history_write(s, &r);
            break;
        }
        fprintf(stderr, "\n");
        pthread_mutex_lock(&s->mu);
        s->call = p;
        s->pending = NULL;
        s->state = WZP_CALL_RINGING;
        pthread_mutex_unlock(&s->mu);
        answered = true;
        break;
    }
    ring_stop(s);
    if (answered) {
        wzp_call_answer(s->call);
        return true;
    }
    session_restore_terminal();
    pthread_mutex_lock(&s->mu);
    wzp_call *p = s->pending;
    s->pending = NULL;
    pthread_mutex_unlock(&s->mu);
    wzp_call_release(p);
    return false;
}

int session_run_listen(session *s, volatile sig_atomic_t *interrupted)
{
    say(s, "listening as %s%s", wzp_client_fingerprint(s->client), "");
    for (;;) {
        pthread_mutex_lock(&s->mu);
        struct timespec ts;
        deadline_in(&ts, 0.1);
        if (!s->call && !s->pending)
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        bool have = s->call != NULL, pending = s->pending != NULL;
        bool fatal = s->unregistered && s->unreg_fatal;
        int unreg_err = s->unreg_err;
        pthread_mutex_unlock(&s->mu);
        if (have)
            break;
        session_flush_history(s);
        if (pending && ask_user(s))
            break;
        if (fatal)
            return session_unregistered_exit(s, unreg_err);
        if (interrupted && *interrupted)
            return WZP_EXIT_OK;
    }
    return report_end(s, run_until_end(s, interrupted, false));
}

/* The call's figures at its end: the last round trip measured if the final one has none. */
static void final_stats(session *s, wzp_call_stats *st)
{
    *st = s->last;
    wzp_call_stats now;
    if (s->call && wzp_call_get_stats(s->call, &now) == 0) {
        double rtt = st->rtt_ms;
        *st = now;
        if (st->rtt_ms == 0)
            st->rtt_ms = rtt;
    }
}

/* Why a `wzp call` that was never placed failed, from its exit code. */
static const char *exit_reason(int code)
{
    switch (code) {
    case WZP_EXIT_UNREACHABLE:
        return "relay unreachable";
    case WZP_EXIT_RELAY_PIN:
        return "wrong relay pin";
    case WZP_EXIT_IDENTITY:
        return "identity";
    case WZP_EXIT_USAGE:
        return "bad peer";
    case WZP_EXIT_ALIAS_TAKEN:
        return "alias taken";
    case WZP_EXIT_RELAY_FULL:
        return "relay full";
    case WZP_EXIT_REPLACED:
        return "signed in elsewhere";
    default:
        return "cannot place the call";
    }
}

void session_record(session *s, int exit_code, const char *dialled)
{
    session_flush_history(s);
    wzp_history_rec r;
    if (!s->call) {
        if (!dialled)
            return;
        history_rec_init(s, &r, false, dialled, WZP_HIST_FAILED, exit_reason(exit_code));
        if (s->started_at)
            r.start = s->started_at;
        history_write(s, &r);
        return;
    }
    pthread_mutex_lock(&s->mu);
    bool active = s->active;
    int reason = s->end_reason;
    int64_t dur =
        s->active && s->ended_at_ms > s->active_at_ms ? s->ended_at_ms - s->active_at_ms : 0;
    pthread_mutex_unlock(&s->mu);
    /* The key the handshake proved, else the one that called or was dialled. */
    const char *fp = wzp_call_peer_fingerprint(s->call);
    if (!fp || !fp[0])
        fp = s->incoming ? s->peer_fp : dialled;
    wzp_history_outcome o = WZP_HIST_FAILED;
    const char *why = reason ? wzp_strerror(reason) : s->we_hung_up ? "hung up" : "";
    if (active) {
        o = WZP_HIST_ANSWERED;
    } else if (reason == WZP_ERR_REJECTED) {
        o = WZP_HIST_REJECTED;
        why = "";
    } else if (reason == WZP_ERR_BUSY) {
        o = s->incoming ? WZP_HIST_MISSED : WZP_HIST_BUSY;
        why = "busy";
    } else if (s->incoming && (reason == WZP_ERR_CANCELLED || reason == WZP_ERR_EXPIRED)) {
        o = WZP_HIST_MISSED;
    }
    history_rec_init(s, &r, s->incoming, fp, o, why);
    r.start = s->started_at ? s->started_at : r.start;
    if (active) {
        wzp_call_stats st;
        final_stats(s, &st);
        r.duration_ms = (uint64_t)dur;
        if (r.duration_ms > WZP_HISTORY_DUR_MAX_MS)
            r.duration_ms = WZP_HISTORY_DUR_MAX_MS;
        r.path = st.path == WZP_PATH_DIRECT ? WZP_HIST_PATH_DIRECT : WZP_HIST_PATH_RELAY;
        double loss = st.loss_pct < 0 ? 0 : st.loss_pct > 100 ? 100 : st.loss_pct;
        r.loss_tenths = (uint32_t)(loss * 10 + 0.5);
        double rtt = st.rtt_ms < 0                        ? 0
                     : st.rtt_ms > WZP_HISTORY_RTT_MAX_MS ? WZP_HISTORY_RTT_MAX_MS
                                                          : st.rtt_ms;
        r.rtt_ms = (uint32_t)(rtt + 0.5);
    }
    history_write(s, &r);
}

void session_next_call(session *s)
{
    pthread_mutex_lock(&s->mu);
    wzp_call *old = s->call;
    s->call = NULL;
    s->state = 0;
    s->active = s->ended = s->we_hung_up = s->source_done = false;
    s->muted = s->peer_muted = s->keys_shown = false;
    s->end_reason = 0;
    s->end_detail[0] = '\0';
    memset(&s->last, 0, sizeof(s->last));
    s->active_at_ms = s->ended_at_ms = 0;
    s->incoming = false;
    s->started_at = 0;
    s->peer_fp[0] = '\0';
    pthread_mutex_unlock(&s->mu);
    /* The next call sends the file from its start and reports its own devices. */
    s->file_pos = 0;
    s->send_t0 = s->play_t0 = 0;
    s->audio_reported = false;
    wzp_call_release(old);
}

void session_summary(session *s, int exit_code)
{
    wzp_call_stats st;
    final_stats(s, &st);
    if (s->o.json) {
        json_begin(s, "summary");
        printf(",\"path\":\"%s\"", st.path == WZP_PATH_DIRECT ? "direct" : "relay");
        if (st.time_to_first_audio_ms >= 0)
            printf(",\"time_to_first_audio_ms\":%lld", (long long)st.time_to_first_audio_ms);
        else
            printf(",\"time_to_first_audio_ms\":null");
        if (st.time_to_direct_ms >= 0)
            printf(",\"time_to_direct_ms\":%lld", (long long)st.time_to_direct_ms);
        else
            printf(",\"time_to_direct_ms\":null");
        printf(",\"frames_sent\":%llu,\"frames_received\":%llu,\"frames_lost\":%llu",
               (unsigned long long)st.frames_sent, (unsigned long long)st.frames_received,
               (unsigned long long)st.frames_lost);
        printf(",\"rtt_ms\":%.3f,\"path_changes\":%u,\"loss_pct\":%.2f,\"bitrate_kbps\":%.1f",
               st.rtt_ms, st.path_changes, st.loss_pct, st.bitrate_kbps);
        printf(",\"max_gap_ms\":%lld", (long long)st.max_gap_ms);
        printf(",\"birthday_role\":\"%s\",\"birthday_probes\":%llu",
               st.birthday_role ? st.birthday_role : "none",
               (unsigned long long)st.birthday_probes);
        printf(",\"frames_late\":%llu,\"frames_concealed\":%llu,\"frames_fec\":%llu"
               ",\"frames_redundancy\":%llu,\"frames_refused\":%llu",
               (unsigned long long)st.frames_late, (unsigned long long)st.frames_concealed,
               (unsigned long long)st.frames_fec, (unsigned long long)st.frames_redundancy,
               (unsigned long long)st.frames_refused);
        printf(",\"playout_delay_ms\":%.1f,\"playout_target_ms\":%.1f"
               ",\"encoder_bitrate_kbps\":%.1f,\"encoder_loss_pct\":%d",
               st.playout_delay_ms, st.playout_target_ms, st.encoder_bitrate_kbps,
               st.encoder_loss_pct);
        printf(",\"losses_single\":%llu,\"losses_single_rebuilt\":%llu"
               ",\"losses_single_fec\":%llu,\"losses_single_fec_rebuilt\":%llu",
               (unsigned long long)st.losses_single, (unsigned long long)st.losses_single_rebuilt,
               (unsigned long long)st.losses_single_fec,
               (unsigned long long)st.losses_single_fec_rebuilt);
        if (s->send_t0 > 0)
            printf(",\"send_started_ms\":%.3f", s->send_t0 * 1000);
        if (s->play_t0 > 0)
            printf(",\"play_started_ms\":%.3f", s->play_t0 * 1000);
        wzp_audio_stats as;
        if (s->o.audio.enabled && s->call && wzp_call_get_audio_stats(s->call, &as) == 0) {
            printf(",\"audio\":{\"live\":%s,\"capture_overruns\":%llu,\"capture_underruns\":%llu",
                   as.live ? "true" : "false", (unsigned long long)as.capture_overruns,
                   (unsigned long long)as.capture_underruns);
            printf(",\"playback_overruns\":%llu,\"playback_underruns\":%llu",
                   (unsigned long long)as.playback_overruns,
                   (unsigned long long)as.playback_underruns);
            printf(",\"device_losses\":%llu,\"device_stalls\":%llu",
                   (unsigned long long)as.device_losses, (unsigned long long)as.device_stalls);
            printf(",\"capture_drift_ppm\":%.1f,\"playback_drift_ppm\":%.1f,\"voice_frames\":%llu}",
                   as.capture_drift_ppm, as.playback_drift_ppm,
                   (unsigned long long)as.voice_frames);
        }
        printf(",\"end\":");
        json_str(stdout, s->end_reason ? wzp_strerror(s->end_reason) : "hung up");
        printf(",\"exit_code\":%d", exit_code);
        json_end();
        return;
    }
    if (s->o.quiet)
        return;
    flockfile(stdout);
    if (s->o.label)
        printf("[%s] ", s->o.label);
    char direct[32] = "never";
    if (st.time_to_direct_ms >= 0)
        snprintf(direct, sizeof(direct), "%lld ms", (long long)st.time_to_direct_ms);
    printf("summary: path %s (direct after %s), first audio %lld ms after answer, sent %llu, "
           "received %llu, lost %llu, rtt %.2f ms, path changes %u\n",
           st.path == WZP_PATH_DIRECT ? "direct" : "relay", direct,
           (long long)st.time_to_first_audio_ms, (unsigned long long)st.frames_sent,
           (unsigned long long)st.frames_received, (unsigned long long)st.frames_lost, st.rtt_ms,
           st.path_changes);
    fflush(stdout);
    funlockfile(stdout);
}

int session_finish(session *s, int exit_code)
{
    session_restore_terminal();
    if (s->client) {
        wzp_client_stop(s->client);
        if (s->call)
            wzp_call_release(s->call);
        if (s->pending)
            wzp_call_release(s->pending);
        s->call = s->pending = NULL;
        wzp_client_free(s->client);
        s->client = NULL;
    }
    if (s->recorder && !s->active && !s->rec_n) {
        /* No call, no recording: leave the target (maybe an older recording) alone. */
        wzp_wav_recorder_abort(s->recorder);
    } else if (s->recorder) {
        int e = 0, rc = wzp_wav_recorder_commit(s->recorder, s->rec, s->rec_n, &e);
        if (rc < 0) {
            fprintf(stderr, "%s: cannot write the recording %s: %s\n", s->o.name, s->o.record_file,
                    e ? strerror(e) : wzp_strerror(rc));
            if (exit_code == WZP_EXIT_OK)
                exit_code = WZP_EXIT_AUDIO;
        }
    }
    s->recorder = NULL;
    free(s->file_pcm);
    if (!s->o.keep_recording) {
        free(s->rec);
        s->rec = NULL;
    }
    if (!s->o.keep_sent) {
        free(s->sent);
        s->sent = NULL;
    }
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    return exit_code;
}
