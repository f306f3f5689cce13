/*
 * Pre-connected ringing on the simulated network (tests/support/simworld.h,
 * virtual clock): while b's phone rings, the end-to-end handshake already
 * runs through the relay channel, so answering starts audio at once in both
 * directions (within half a relay-path round trip plus the playout start).
 * Nothing is played before the answer, no address is revealed before it, and
 * declining, withdrawing and expiry end both sides with their own reasons.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "client/core_int.h"
#include "support/simworld.h"

static bool b_ringing(simclient *a, simclient *b)
{
    return b->state == WZP_CALL_RINGING && a->state == WZP_CALL_RINGING;
}

/* a calls b (by fingerprint, relay only so the path is fixed); b rings, unanswered. */
static void ring(world *w, uint64_t seed)
{
    w->sim = wzp_sim_new(seed);
    sim_relay_start(&w->r, w->sim);
    sim_client_start(&w->a, w->sim, &w->r, 0, WZP_SIM_EI, true);
    sim_client_start(&w->b, w->sim, &w->r, 1, WZP_SIM_EI, true);
    assert_true(sim_run(w->sim, both_registered, &w->a, &w->b, WZP_SEC(5)));
    char text[WZP_FINGERPRINT_STRLEN];
    sim_client_fp(&w->b, text);
    assert_int_equal(wzp_core_call(w->a.core, text, NULL, NULL, &w->a.call, wzp_sim_now(w->sim)),
                     0);
    sim_client_kick(&w->a);
    assert_true(sim_run(w->sim, b_ringing, &w->a, &w->b, WZP_SEC(5)));
}

static bool e2e_up(simclient *c)
{
    wzp_voicecall *vc = wzp_core__voicecall(c->core, c->call); /* white-box: its connection */
    wzp_voicecall_status st;
    if (!vc)
        return false;
    wzp_voicecall_get_status(vc, &st);
    return st.link == WZP_VOICECALL_LINK_UP;
}

static bool both_first_audio(simclient *a, simclient *b)
{
    return sim_stats(a).time_to_first_audio_ms >= 0 && sim_stats(b).time_to_first_audio_ms >= 0;
}

static void test_answer_starts_audio_at_once(void **state)
{
    world w;
    ring(&w, 31);
    /* Ringing for a while: the connection is up on both sides, the caller's audio already
     * flows, the callee plays none of it and has not been told where the caller is. */
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(2));
    assert_true(e2e_up(&w.a));
    assert_true(e2e_up(&w.b));
    assert_int_equal(w.b.state, WZP_CALL_RINGING);
    assert_true(sim_stats(&w.a).frames_sent > 50);
    assert_int_equal(w.b.frames_played, 0);
    assert_int_equal(w.a.frames_played, 0);
    wzp_voicecall *bc = wzp_core__voicecall(w.b.core, w.b.call);
    assert_null(wzp_voicecall_ice(bc)); /* no candidates (addresses) before the answer */
    wzp_voicecall_status st;
    wzp_voicecall_get_status(wzp_core__voicecall(w.a.core, w.a.call), &st);
    assert_int_equal(st.media, WZP_VOICECALL_MEDIA_EARLY);
    wzp_voicecall_get_status(bc, &st);
    assert_int_equal(st.media, WZP_VOICECALL_MEDIA_OFF);

    wzp_ts rtt = 2 * wzp_core_relay_rtt(w.a.core); /* peer -> relay -> peer and back */
    wzp_ts answer = wzp_sim_now(w.sim);
    assert_int_equal(wzp_core_answer(w.b.core, w.b.call, answer), 0);
    sim_client_kick(&w.b);
    assert_true(sim_run(w.sim, both_first_audio, &w.a, &w.b, WZP_SEC(2)));
    /* From the callee's answer, on one clock (white-box: when each side played audio). */
    wzp_voicecall_status sa, sb;
    wzp_voicecall_get_status(wzp_core__voicecall(w.a.core, w.a.call), &sa);
    wzp_voicecall_get_status(wzp_core__voicecall(w.b.core, w.b.call), &sb);
    wzp_ts heard_a = sa.first_audio_at - answer, heard_b = sb.first_audio_at - answer;
    printf("answer -> first audio: caller %.1f ms, callee %.1f ms; relay-path rtt %.1f ms\n",
           (double)heard_a / 1e6, (double)heard_b / 1e6, (double)rtt / 1e6);
    /* The target: half a relay-path round trip plus 30 ms (playout start, frame spacing). */
    assert_true(heard_a <= rtt / 2 + WZP_MS(30));
    assert_true(heard_b <= rtt / 2 + WZP_MS(30));
    assert_true(both_active(&w.a, &w.b));
    world_free(&w);
}

/* A recorded source (hold_audio_until_answer) waits for the answer: nothing is sent while the
 * phone rings, and the answer starts it from its beginning. */
static void test_recorded_source_waits_for_answer(void **state)
{
    world w;
    ring(&w, 36);
    /* white-box: every call the core makes from now on borrows this */
    w.a.core->env.hold_audio_until_answer = true;
    wzp_core_hangup(w.a.core, w.a.call, wzp_sim_now(w.sim));
    sim_client_kick(&w.a);
    assert_true(sim_run(w.sim, both_ended, &w.a, &w.b, WZP_SEC(5)));
    char text[WZP_FINGERPRINT_STRLEN];
    sim_client_fp(&w.b, text);
    assert_int_equal(wzp_core_call(w.a.core, text, NULL, NULL, &w.a.call, wzp_sim_now(w.sim)), 0);
    sim_client_kick(&w.a);
    assert_true(sim_run(w.sim, b_ringing, &w.a, &w.b, WZP_SEC(5)));
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(1));
    wzp_voicecall_status st;
    wzp_voicecall_get_status(wzp_core__voicecall(w.a.core, w.a.call), &st);
    assert_int_equal(st.link, WZP_VOICECALL_LINK_UP); /* still pre-connected */
    assert_int_equal(st.media, WZP_VOICECALL_MEDIA_OFF);
    assert_int_equal(sim_stats(&w.a).frames_sent, 0);
    assert_int_equal(wzp_core_answer(w.b.core, w.b.call, wzp_sim_now(w.sim)), 0);
    sim_client_kick(&w.b);
    assert_true(sim_run(w.sim, both_first_audio, &w.a, &w.b, WZP_SEC(2)));
    assert_true(sim_stats(&w.a).frames_sent > 0);
    world_free(&w);
}

static bool ended2(simclient *a, simclient *b)
{
    return both_ended(a, b);
}

/* While pre-connected, the callee declines or the caller withdraws: each side ends with its
 * reason (whichever of the e2e close and the relay's CallEnded comes first), nothing was
 * played, and only the relay connections remain. */
static void end_before_answer(uint64_t seed, bool callee_declines)
{
    world w;
    ring(&w, seed);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(1));
    simclient *quits = callee_declines ? &w.b : &w.a;
    assert_true(e2e_up(quits));
    wzp_ts now = wzp_sim_now(w.sim);
    assert_int_equal(callee_declines ? wzp_core_reject(w.b.core, w.b.call, now)
                                     : wzp_core_hangup(w.a.core, w.a.call, now),
                     0);
    sim_client_kick(quits);
    assert_true(sim_run(w.sim, ended2, &w.a, &w.b, WZP_SEC(5)));
    assert_int_equal(w.a.reason, callee_declines ? WZP_ERR_REJECTED : 0);
    assert_int_equal(w.b.reason, callee_declines ? 0 : WZP_ERR_CANCELLED);
    assert_int_equal(w.b.frames_played, 0);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(1));
    assert_int_equal(wzp_quic_endpoint_conn_count(w.a.core->ep), 1); /* only the relay's */
    assert_int_equal(wzp_quic_endpoint_conn_count(w.b.core->ep), 1);
    world_free(&w);
}

static void test_decline_while_preconnected(void **state)
{
    end_before_answer(32, true);
}

static void test_withdraw_while_preconnected(void **state)
{
    end_before_answer(33, false);
}

static void test_unanswered_expires(void **state)
{
    world w;
    ring(&w, 34);
    assert_true(sim_run(w.sim, ended2, &w.a, &w.b, WZP_SEC(70))); /* the relay rings for 60 s */
    assert_int_equal(w.a.reason, WZP_ERR_EXPIRED);
    assert_int_equal(w.b.reason, WZP_ERR_EXPIRED);
    assert_int_equal(w.b.frames_played, 0);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(1));
    assert_int_equal(wzp_quic_endpoint_conn_count(w.a.core->ep), 1);
    assert_int_equal(wzp_quic_endpoint_conn_count(w.b.core->ep), 1);
    world_free(&w);
}

/* --- one call, followed through the relay's and both clients' logs by one tag ------------- */

static char log_lines[64][256];
static size_t n_log_lines;

static void keep_line(wzp_log_level level, const char *msg, void *user)
{
    if (n_log_lines < 64)
        snprintf(log_lines[n_log_lines++], sizeof(log_lines[0]), "%s", msg);
}

static size_t lines_with(const char *a, const char *b)
{
    size_t n = 0;
    for (size_t i = 0; i < n_log_lines; i++)
        n += strstr(log_lines[i], a) && strstr(log_lines[i], b);
    return n;
}

static void test_call_followed_through_logs(void **state)
{
    n_log_lines = 0;
    wzp_set_log_handler(keep_line, NULL);
    wzp_set_log_level(WZP_LOG_INFO);
    world w;
    ring(&w, 35);
    assert_int_equal(wzp_core_answer(w.b.core, w.b.call, wzp_sim_now(w.sim)), 0);
    sim_client_kick(&w.b);
    assert_true(sim_run(w.sim, both_active, &w.a, &w.b, WZP_SEC(2)));
    assert_int_equal(wzp_core_hangup(w.a.core, w.a.call, wzp_sim_now(w.sim)), 0);
    sim_client_kick(&w.a);
    assert_true(sim_run(w.sim, ended2, &w.a, &w.b, WZP_SEC(2)));
    wzp_set_log_level(WZP_LOG_WARN);
    wzp_set_log_handler(NULL, NULL);
    /* The relay names the call by its id; both clients use the same tag. */
    char tag[32] = "";
    for (size_t i = 0; i < n_log_lines && !tag[0]; i++)
        if (strstr(log_lines[i], "relay: ringing"))
            sscanf(log_lines[i], "[%31[^]]]", tag);
    printf("tag: %s (%zu lines)\n", tag, n_log_lines);
    assert_int_equal(strncmp(tag, "call ", 5), 0);
    assert_int_equal(lines_with(tag, "relay: answered"), 1);
    assert_int_equal(lines_with(tag, "relay: call ended"), 1);
    assert_true(lines_with(tag, "ringing, connecting through the relay") >= 1); /* caller */
    assert_true(lines_with(tag, "incoming from") >= 1);                         /* callee */
    assert_int_equal(lines_with(tag, "client: call") >= 4, 1);
    world_free(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answer_starts_audio_at_once),
        cmocka_unit_test(test_decline_while_preconnected),
        cmocka_unit_test(test_withdraw_while_preconnected),
        cmocka_unit_test(test_unanswered_expires),
        cmocka_unit_test(test_call_followed_through_logs),
        cmocka_unit_test(test_recorded_source_waits_for_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
