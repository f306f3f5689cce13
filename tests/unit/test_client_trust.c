/*
 * A dishonest relay cannot choose who you talk to (tests/support/simworld.h,
 * virtual clock). The relay here rewrites or reroutes signaling: it sends a
 * call placed to bob's fingerprint to mallory, or announces mallory's call to
 * bob as coming from alice. The end-to-end connection is pinned to the key
 * the user dialled or was shown, so each attempt ends with the
 * man-in-the-middle error and no audio, and an honest call shows both sides
 * the key the handshake proved.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "phone/contacts.h"
#include "support/simworld.h"

typedef struct trio {
    wzp_sim *sim;
    simrelay r;
    simclient a, b, m; /* alice, bob, mallory (registered with the same relay) */
    uint8_t fp_a[WZP_FINGERPRINT_LEN], fp_b[WZP_FINGERPRINT_LEN], fp_m[WZP_FINGERPRINT_LEN];
} trio;

static trio *T; /* the hooks' view of the world */

static bool registered3(simclient *x, simclient *y)
{
    return x->registrations && y->registrations && T->m.registrations;
}

static void trio_start(trio *t, uint64_t seed)
{
    memset(t, 0, sizeof(*t));
    T = t;
    t->sim = wzp_sim_new(seed);
    sim_relay_start(&t->r, t->sim);
    sim_client_start(&t->a, t->sim, &t->r, 0, WZP_SIM_EI, false);
    sim_client_start(&t->b, t->sim, &t->r, 1, WZP_SIM_EI, false);
    sim_client_start(&t->m, t->sim, &t->r, 2, WZP_SIM_EI, false);
    t->b.auto_answer = t->m.auto_answer = true;
    wzp_identity_fingerprint(t->a.id, t->fp_a);
    wzp_identity_fingerprint(t->b.id, t->fp_b);
    wzp_identity_fingerprint(t->m.id, t->fp_m);
    assert_true(sim_run(t->sim, registered3, &t->a, &t->b, WZP_SEC(5)));
}

static void trio_free(trio *t)
{
    sim_client_free(&t->a);
    sim_client_free(&t->b);
    sim_client_free(&t->m);
    sim_relay_free(&t->r);
    wzp_sim_free(t->sim);
    T = NULL;
}

/* `from` calls `to` by fingerprint. */
static void dial(trio *t, simclient *from, simclient *to)
{
    char text[WZP_FINGERPRINT_STRLEN];
    sim_client_fp(to, text);
    assert_int_equal(wzp_core_call(from->core, text, NULL, NULL, &from->call, wzp_sim_now(t->sim)),
                     0);
    sim_client_kick(from);
}

static bool ended(simclient *x, simclient *y)
{
    (void)y;
    return x->state == WZP_CALL_ENDED;
}

static bool is_conn(simrelay *r, uint64_t conn, const uint8_t fp[WZP_FINGERPRINT_LEN])
{
    return wzp_relay_control_lookup(r->ctl, fp) == conn;
}

/* --- the relay reroutes a call placed to a fingerprint -----------------------------------------
 */

static void offer_to_mallory(simrelay *r, uint64_t conn, wzp_sig_msg *m)
{
    if (m->type == WZP_SIG_OFFER && is_conn(r, conn, T->fp_a) &&
        !memcmp(m->u.offer.callee_fp, T->fp_b, WZP_FINGERPRINT_LEN))
        memcpy(m->u.offer.callee_fp, T->fp_m, WZP_FINGERPRINT_LEN);
}

static void test_rerouted_fingerprint_call(void **state)
{
    trio t;
    trio_start(&t, 11);
    t.r.rewrite_in = offer_to_mallory;
    dial(&t, &t.a, &t.b);
    assert_true(sim_run(t.sim, ended, &t.a, NULL, WZP_SEC(10)));
    printf("rerouted: %s\n", t.a.detail);
    /* Mallory was rung and answered; alice's phone refused her key before any audio. */
    assert_int_not_equal(t.m.call, 0);
    assert_int_equal(t.a.reason, WZP_ERR_PIN_MISMATCH);
    assert_non_null(strstr(t.a.detail, "man-in-the-middle"));
    char b_text[WZP_FINGERPRINT_STRLEN];
    sim_client_fp(&t.b, b_text);
    assert_non_null(strstr(t.a.detail, b_text));
    assert_int_equal(sim_stats(&t.a).frames_received, 0);
    /* Mallory's side never gets a call either. */
    sim_run(t.sim, NULL, NULL, NULL, WZP_SEC(2));
    assert_int_not_equal(t.m.state, WZP_CALL_ACTIVE);
    assert_int_equal(sim_stats(&t.m).frames_received, 0);
    trio_free(&t);
}

/* A contact called by name: the name is turned into the stored key before dialing, so the
 * same rerouting is caught, whatever the relay says the name or an alias stands for. */
static void test_contact_called_by_name(void **state)
{
    trio t;
    trio_start(&t, 15);
    char b_text[WZP_FINGERPRINT_STRLEN], file[256];
    sim_client_fp(&t.b, b_text);
    /* The contacts file as `wzp contacts add bob FP` writes it, read back like `wzp call`. */
    snprintf(file, sizeof(file), "%sbob %s alias=bob\n", WZP_CONTACTS_HEADER, b_text);
    wzp_contacts cs;
    size_t line;
    assert_int_equal(wzp_contacts_parse((const uint8_t *)file, strlen(file), &cs, &line, NULL), 0);
    long at = wzp_contacts_find(&cs, "Bob");
    assert_true(at >= 0);
    char dial_text[WZP_FINGERPRINT_STRLEN];
    wzp_fingerprint_format(cs.v[at].fp, dial_text, sizeof(dial_text));
    wzp_contacts_free(&cs);
    t.r.rewrite_in = offer_to_mallory;
    assert_int_equal(wzp_core_call(t.a.core, dial_text, NULL, NULL, &t.a.call, wzp_sim_now(t.sim)),
                     0);
    sim_client_kick(&t.a);
    assert_true(sim_run(t.sim, ended, &t.a, NULL, WZP_SEC(10)));
    printf("contact by name: %s\n", t.a.detail);
    assert_int_equal(t.a.reason, WZP_ERR_PIN_MISMATCH);
    assert_non_null(strstr(t.a.detail, "man-in-the-middle"));
    assert_non_null(strstr(t.a.detail, b_text));
    assert_int_equal(sim_stats(&t.a).frames_received, 0);
    trio_free(&t);
}

/* --- the relay announces the caller as someone else --------------------------------------------
 */

static bool forge_setup_too;

/* Mallory calls bob; bob is told alice is calling (and, with forge_setup_too, CallSetup names
 * alice as well, so only the end-to-end handshake can tell). */
static void announce_alice(simrelay *r, uint64_t conn, wzp_sig_msg *m)
{
    if (!is_conn(r, conn, T->fp_b))
        return;
    if (m->type == WZP_SIG_INCOMING_CALL) {
        memcpy(m->u.incoming.caller_fp, T->fp_a, WZP_FINGERPRINT_LEN);
        snprintf(m->u.incoming.caller_alias, sizeof(m->u.incoming.caller_alias), "alice");
    }
    if (m->type == WZP_SIG_CALL_SETUP && forge_setup_too) {
        memcpy(m->u.setup.peer_fp, T->fp_a, WZP_FINGERPRINT_LEN);
        snprintf(m->u.setup.peer_alias, sizeof(m->u.setup.peer_alias), "alice");
    }
}

static void forged_caller(bool setup_too)
{
    trio t;
    trio_start(&t, setup_too ? 13 : 12);
    forge_setup_too = setup_too;
    t.r.rewrite_out = announce_alice;
    dial(&t, &t.m, &t.b);
    assert_true(sim_run(t.sim, ended, &t.b, NULL, WZP_SEC(20)));
    printf("forged caller%s: %s\n", setup_too ? " (setup too)" : "", t.b.detail);
    char a_text[WZP_FINGERPRINT_STRLEN];
    sim_client_fp(&t.a, a_text);
    assert_string_equal(t.b.incoming_fp, a_text);       /* what bob was shown ... */
    assert_int_equal(t.b.reason, WZP_ERR_PIN_MISMATCH); /* ... is what the call was held to */
    assert_non_null(strstr(t.b.detail, "man-in-the-middle"));
    assert_int_equal(sim_stats(&t.b).frames_received, 0);
    assert_true(sim_run(t.sim, ended, &t.m, NULL, WZP_SEC(20)));
    assert_int_equal(sim_stats(&t.m).frames_received, 0);
    trio_free(&t);
}

static void test_forged_caller_announcement(void **state)
{
    forged_caller(false);
}

static void test_forged_caller_everywhere(void **state)
{
    forged_caller(true);
}

/* --- an honest relay: both sides see the key the handshake proved ------------------------------
 */

static bool active_ab(simclient *x, simclient *y)
{
    return x->state == WZP_CALL_ACTIVE && y->state == WZP_CALL_ACTIVE;
}

static void test_honest_call_shows_proven_keys(void **state)
{
    trio t;
    trio_start(&t, 14);
    dial(&t, &t.a, &t.b);
    assert_true(sim_run(t.sim, active_ab, &t.a, &t.b, WZP_SEC(5)));
    char a_text[WZP_FINGERPRINT_STRLEN], b_text[WZP_FINGERPRINT_STRLEN];
    sim_client_fp(&t.a, a_text);
    sim_client_fp(&t.b, b_text);
    assert_string_equal(t.a.peer_fp, b_text);
    assert_string_equal(t.b.peer_fp, a_text);
    assert_string_equal(t.b.incoming_fp, a_text);
    assert_true(sim_run(t.sim, NULL, &t.a, &t.b, WZP_SEC(1)));
    assert_true(sim_stats(&t.b).frames_received > 20);
    trio_free(&t);
}

/* The verification code: both ends of one connection show the same one; the next call (a new
 * connection, as a man-in-the-middle's second handshake would be) shows another. */
static void test_verification_code(void **state)
{
    trio t;
    trio_start(&t, 16);
    char codes[2][8];
    for (int i = 0; i < 2; i++) {
        memset(t.a.code, 0, sizeof(t.a.code));
        memset(t.b.code, 0, sizeof(t.b.code));
        dial(&t, &t.a, &t.b);
        assert_true(sim_run(t.sim, active_ab, &t.a, &t.b, WZP_SEC(5)));
        printf("call %d: alice sees %s, bob sees %s\n", i, t.a.code, t.b.code);
        assert_int_equal(strlen(t.a.code), 7);
        assert_string_equal(t.a.code, t.b.code);
        memcpy(codes[i], t.a.code, sizeof(codes[i]));
        assert_int_equal(wzp_core_hangup(t.a.core, t.a.call, wzp_sim_now(t.sim)), 0);
        sim_client_kick(&t.a);
        assert_true(sim_run(t.sim, both_ended, &t.a, &t.b, WZP_SEC(5)));
        wzp_core_release(t.a.core, t.a.call, wzp_sim_now(t.sim));
        wzp_core_release(t.b.core, t.b.call, wzp_sim_now(t.sim));
        t.a.call = t.b.call = 0;
        sim_run(t.sim, NULL, NULL, NULL, WZP_SEC(1));
    }
    assert_string_not_equal(codes[0], codes[1]);
    trio_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rerouted_fingerprint_call),
        cmocka_unit_test(test_contact_called_by_name),
        cmocka_unit_test(test_forged_caller_announcement),
        cmocka_unit_test(test_forged_caller_everywhere),
        cmocka_unit_test(test_honest_call_shows_proven_keys),
        cmocka_unit_test(test_verification_code),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
