/*
 * nice-peer: one side of a libnice connection, the reference the NAT lab
 * benchmark measures wzp against (scripts/bench natlab, `scripts/natlab nice`).
 *
 *   nice-peer --controlling|--controlled --stun IP:PORT --local FILE --remote FILE
 *             [--nomination aggressive|regular] [--timeout SECONDS]
 *
 * Gathers host and server-reflexive candidates (STUN to the wzp relay, which
 * answers Binding requests), writes its SDP (credentials and candidates) to
 * --local once gathering is done (atomically: a temporary file renamed),
 * waits for the peer's in --remote, then runs ICE checks. Prints one line
 *
 *   nice-peer: ok=1 usable_ms=N nomination=MODE pair=LOCAL->REMOTE
 *
 * when the component is READY (a nominated pair carries data: both ends
 * echo a datagram over it), N counted from when the peer's SDP was applied
 * (the moment both sides can start checks, like wzp's answer). ok=0
 * usable_ms=-1 on failure or timeout. Exit 0 / 1. The signalling is files
 * because both peers run on one machine (in the lab's namespaces).
 */
#include <glib.h>
#include <nice.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct peer {
    GMainLoop *loop;
    NiceAgent *agent;
    guint stream;
    const char *local_file, *remote_file;
    gboolean gathered, remote_set, done;
    gint64 remote_at; /* monotonic us when the remote SDP was applied */
    gint64 usable_us;
    const char *nomination;
    int rc;
} peer;

static gboolean quit(gpointer loop)
{
    g_main_loop_quit(loop);
    return G_SOURCE_REMOVE;
}

static void finish(peer *p, gboolean ok)
{
    if (p->done)
        return;
    p->done = TRUE;
    p->rc = ok ? 0 : 1;
    char pair[256] = "-";
    NiceCandidate *l = NULL, *r = NULL;
    if (ok && nice_agent_get_selected_pair(p->agent, p->stream, 1, &l, &r)) {
        char la[NICE_ADDRESS_STRING_LEN], ra[NICE_ADDRESS_STRING_LEN];
        nice_address_to_string(&l->addr, la);
        nice_address_to_string(&r->addr, ra);
        snprintf(pair, sizeof(pair), "%s:%u->%s:%u", la, nice_address_get_port(&l->addr), ra,
                 nice_address_get_port(&r->addr));
    }
    printf("nice-peer: ok=%d usable_ms=%lld nomination=%s pair=%s\n", ok ? 1 : 0,
           ok ? (long long)(p->usable_us / 1000) : -1LL, p->nomination, pair);
    fflush(stdout);
    /* Linger so the peer's checks still get answers, then stop. */
    g_timeout_add(1500, quit, p->loop);
}

static void on_gathering_done(NiceAgent *agent, guint stream, gpointer data)
{
    peer *p = data;
    gchar *sdp = nice_agent_generate_local_sdp(agent);
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", p->local_file);
    GError *err = NULL;
    if (!sdp || !g_file_set_contents(tmp, sdp, -1, &err) || rename(tmp, p->local_file) != 0) {
        fprintf(stderr, "nice-peer: cannot write %s: %s\n", p->local_file,
                err ? err->message : "rename failed");
        g_clear_error(&err);
        finish(p, FALSE);
    }
    g_free(sdp);
    p->gathered = TRUE;
    (void)stream;
}

static void on_state(NiceAgent *agent, guint stream, guint component, guint state, gpointer data)
{
    peer *p = data;
    (void)agent;
    (void)stream;
    (void)component;
    if (state == NICE_COMPONENT_STATE_READY && !p->usable_us) {
        p->usable_us = g_get_monotonic_time() - p->remote_at;
        finish(p, TRUE);
    } else if (state == NICE_COMPONENT_STATE_FAILED) {
        finish(p, FALSE);
    }
}

static void on_recv(NiceAgent *agent, guint stream, guint component, guint len, gchar *buf,
                    gpointer data)
{
    (void)agent;
    (void)stream;
    (void)component;
    (void)len;
    (void)buf;
    (void)data;
}

/* Polls for the peer's SDP (written atomically by its rename). */
static gboolean poll_remote(gpointer data)
{
    peer *p = data;
    if (p->done)
        return G_SOURCE_REMOVE;
    if (!p->gathered || p->remote_set)
        return G_SOURCE_CONTINUE;
    gchar *sdp = NULL;
    if (!g_file_get_contents(p->remote_file, &sdp, NULL, NULL))
        return G_SOURCE_CONTINUE;
    p->remote_at = g_get_monotonic_time();
    int n = nice_agent_parse_remote_sdp(p->agent, sdp);
    g_free(sdp);
    if (n <= 0) {
        fprintf(stderr, "nice-peer: the peer's SDP has no usable candidate\n");
        finish(p, FALSE);
        return G_SOURCE_REMOVE;
    }
    p->remote_set = TRUE;
    return G_SOURCE_REMOVE;
}

static gboolean on_timeout(gpointer data)
{
    finish(data, FALSE);
    return G_SOURCE_REMOVE;
}

static int usage(void)
{
    fprintf(stderr, "usage: nice-peer --controlling|--controlled --stun IP:PORT --local FILE "
                    "--remote FILE [--nomination aggressive|regular] [--timeout SECONDS]\n");
    return 2;
}

int main(int argc, char **argv)
{
    peer p = {.nomination = "regular"};
    int controlling = -1;
    const char *stun = NULL;
    double timeout = 15;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--controlling") || !strcmp(a, "--controlled")) {
            controlling = !strcmp(a, "--controlling");
            continue;
        }
        if (!v)
            return usage();
        i++;
        if (!strcmp(a, "--stun"))
            stun = v;
        else if (!strcmp(a, "--local"))
            p.local_file = v;
        else if (!strcmp(a, "--remote"))
            p.remote_file = v;
        else if (!strcmp(a, "--nomination") && (!strcmp(v, "aggressive") || !strcmp(v, "regular")))
            p.nomination = v;
        else if (!strcmp(a, "--timeout") && atof(v) > 0 && atof(v) <= 600)
            timeout = atof(v);
        else
            return usage();
    }
    if (controlling < 0 || !stun || !p.local_file || !p.remote_file)
        return usage();
    char ip[64];
    const char *colon = strrchr(stun, ':');
    if (!colon || (size_t)(colon - stun) >= sizeof(ip) || atoi(colon + 1) <= 0 ||
        atoi(colon + 1) > 65535)
        return usage();
    memcpy(ip, stun, (size_t)(colon - stun));
    ip[colon - stun] = '\0';

    p.loop = g_main_loop_new(NULL, FALSE);
    p.agent = nice_agent_new_full(g_main_loop_get_context(p.loop), NICE_COMPATIBILITY_RFC5245,
                                  strcmp(p.nomination, "regular") == 0
                                      ? NICE_AGENT_OPTION_REGULAR_NOMINATION
                                      : NICE_AGENT_OPTION_NONE);
    if (!p.agent) {
        fprintf(stderr, "nice-peer: no agent\n");
        return 1;
    }
    g_object_set(p.agent, "stun-server", ip, "stun-server-port", (guint)atoi(colon + 1),
                 "controlling-mode", (gboolean)controlling, "upnp", FALSE, NULL);
    g_signal_connect(p.agent, "candidate-gathering-done", G_CALLBACK(on_gathering_done), &p);
    g_signal_connect(p.agent, "component-state-changed", G_CALLBACK(on_state), &p);
    p.stream = nice_agent_add_stream(p.agent, 1);
    nice_agent_set_stream_name(p.agent, p.stream, "audio");
    nice_agent_attach_recv(p.agent, p.stream, 1, g_main_loop_get_context(p.loop), on_recv, &p);
    if (!p.stream || !nice_agent_gather_candidates(p.agent, p.stream)) {
        fprintf(stderr, "nice-peer: cannot gather candidates\n");
        return 1;
    }
    g_timeout_add(20, poll_remote, &p);
    g_timeout_add((guint)(timeout * 1000), on_timeout, &p);
    g_main_loop_run(p.loop);
    g_object_unref(p.agent);
    g_main_loop_unref(p.loop);
    return p.rc;
}
