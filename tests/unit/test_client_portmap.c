/*
 * The gateway's port mapping in the sans-I/O client core (virtual clock,
 * tests/support/simworld.h): a mapping granted mid-call reaches the peer as a
 * MAPPED candidate (its ICE agent pairs it), a withdrawn one is withdrawn at
 * the peer too, and a call placed while a mapping is held offers it at once.
 * (Whether the mapping carries the call through real NATs is the NAT lab's:
 * sym-sym-pm1/pm2 in tests/integration/natlab_e2e.sh.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "support/test_main.h"

#include "client/core.h"
#include "client/core_int.h"
#include "support/netsim.h"
#include "support/simworld.h"

/* The type of the peer's pair to `addr` (-1: none). */
static int remote_type(simclient *c, const wzp_addr *addr)
{
    wzp_ice_agent *ice = wzp_voicecall_ice(wzp_core__voicecall(c->core, c->call));
    if (!ice)
        return -1;
    wzp_ice_pair_info pairs[64];
    size_t n = wzp_ice_pairs(ice, pairs, 64);
    for (size_t i = 0; i < n && i < 64; i++)
        if (wzp_addr_equal(&pairs[i].remote, addr))
            return (int)pairs[i].remote_type;
    return -1;
}

/* Whether c's own candidate set (what it signals) holds `addr` as MAPPED. */
static bool offers_mapped(simclient *c, const wzp_addr *addr)
{
    wzp_sig_candidate local[WZP_SIG_MAX_CANDIDATES];
    size_t n = wzp_voicecall_local_candidates(wzp_core__voicecall(c->core, c->call), local,
                                              WZP_SIG_MAX_CANDIDATES);
    for (size_t i = 0; i < n && i < WZP_SIG_MAX_CANDIDATES; i++)
        if (local[i].type == WZP_SIG_CAND_MAPPED && wzp_addr_equal(&local[i].addr, addr))
            return true;
    return false;
}

/* Symmetric NATs on both sides (the call stays relayed); a's gateway grants, then withdraws. */
static void test_mapped_mid_call(void **state)
{
    (void)state;
    world w;
    world_call(&w, 31, WZP_SIM_APD, WZP_SIM_APD, false);
    wzp_addr mapped = *wzp_sim_router_wan(w.a.rt);
    wzp_addr_set_port(&mapped, 40000);
    wzp_ts now = wzp_sim_now(w.sim);
    assert_int_equal(remote_type(&w.b, &mapped), -1);

    assert_int_equal(wzp_core_set_mapped_addr(w.a.core, &mapped, now), 1);
    assert_int_equal(wzp_core_set_mapped_addr(w.a.core, &mapped, now), 0); /* unchanged */
    wzp_addr bad = mapped;
    wzp_addr_set_port(&bad, 0);
    assert_int_equal(wzp_core_set_mapped_addr(w.a.core, &bad, now), WZP_ERR_INVALID);
    assert_true(offers_mapped(&w.a, &mapped));
    sim_client_kick(&w.a);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(1));
    assert_int_equal(remote_type(&w.b, &mapped), WZP_CAND_MAPPED);

    /* The mapping goes (not renewed, or the client moved): the peer drops the pair. */
    assert_int_equal(wzp_core_set_mapped_addr(w.a.core, NULL, wzp_sim_now(w.sim)), 1);
    assert_int_equal(wzp_core_set_mapped_addr(w.a.core, NULL, wzp_sim_now(w.sim)), 0);
    assert_false(offers_mapped(&w.a, &mapped));
    sim_client_kick(&w.a);
    sim_run(w.sim, NULL, &w.a, &w.b, WZP_SEC(1));
    assert_int_equal(remote_type(&w.b, &mapped), -1);
    assert_int_equal(w.a.state, WZP_CALL_ACTIVE);
    assert_int_equal(w.b.state, WZP_CALL_ACTIVE);
    world_free(&w);
}

/* A mapping held before the call is in the callee's Accept. */
static void test_mapped_before_call(void **state)
{
    (void)state;
    world w;
    world_open(&w, 32, NULL);
    sim_client_start(&w.a, w.sim, &w.r, 0, WZP_SIM_APD, false);
    sim_client_start(&w.b, w.sim, &w.r, 1, WZP_SIM_APD, false);
    wzp_addr mapped = *wzp_sim_router_wan(w.b.rt);
    wzp_addr_set_port(&mapped, 40001);
    assert_int_equal(wzp_core_set_mapped_addr(w.b.core, &mapped, wzp_sim_now(w.sim)), 1);
    world_connect(&w);
    assert_true(offers_mapped(&w.b, &mapped));
    assert_int_equal(remote_type(&w.a, &mapped), WZP_CAND_MAPPED);
    world_free(&w);
}

WZP_TEST_MAIN(NULL, NULL, test_mapped_mid_call, test_mapped_before_call)
