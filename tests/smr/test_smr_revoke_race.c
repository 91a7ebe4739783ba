/*
 * Revocation must never drop the announcement of a thread inside a section
 * (asymmetric mode). A scripted interleaving through the TEST ONLY step hooks
 * forces the schedule that freed nodes under a reader when revocation used the
 * scan's predicate ("another epoch") instead of its own ("an older epoch"):
 *
 *   1. R enters and exits at epoch E: it keeps its announcement of E.
 *   2. V starts a revocation pass for E: it loads g_epoch == E, runs the
 *      membarrier, and is parked before it looks at any record.
 *   3. M advances the epoch to E+1 (cc_smr_poll).
 *   4. R enters (slow path: it re-announces E+1) and exits, keeping E+1.
 *   5. V goes on. R's announcement (E+1) is not older than E, so V must skip
 *      it. The broken predicate revokes it: V reads R's depth as 0 and is
 *      parked just before its CAS of R's announcement.
 *   6. R enters again, on the fast path (its kept E+1 matches g_epoch), and
 *      loads node p from a shared slot.
 *   7. V resumes (the broken predicate: its CAS drops R's announcement).
 *   8. M unlinks p, retires it and polls eight times.
 *   Then p must not have been freed: R is still inside the section in which
 *   it loaded p. With the broken predicate the polls advance the epoch past
 *   p's tag and free it, and this test fails every time
 *   (CC_SMR_BROKEN_REVOKE_EPOCH, in the negative-control stage).
 *
 * In the fencing mode there is no revocation; the test then only checks that
 * the schedule runs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "smr_script.h"
#include "smr_test.h"
#include "smr_internal.h"

#include <stdatomic.h>

#define NODE_SIZE 48
#define MAGIC 0x5AFE5AFEu

typedef struct {
    unsigned magic;
} node_t;

static _Atomic(node_t *) g_slot;
static _Atomic int g_freed;

static void node_free(void *p, size_t size) {
    node_t *n = p;
    CC_CHECK(n->magic == MAGIC);
    n->magic = 0;
    atomic_fetch_add(&g_freed, 1);
    cc_free(p, size);
}

enum {
    R_KEPT = 1,         /* R kept its announcement of E */
    V_FENCED,           /* V parked after its membarrier (arrive) */
    R_REANNOUNCE,       /* M advanced to E+1: R re-announces */
    R_REANNOUNCED,      /* R kept its announcement of E+1 */
    V_GO,               /* V released from the first park */
    V_AT_CAS_OR_DONE,   /* V parked before a CAS (broken) or finished (fixed) */
    R_ENTER,            /* R enters on the fast path and loads p */
    R_INSIDE,           /* R is inside, holding p */
    V_CAS,              /* V released from the second park */
    R_LEAVE,            /* M is done checking: R may leave */
};

static void *reader(void *arg) {
    (void)arg;
    cc_smr_enter();
    cc_smr_exit();
    script_go(R_KEPT);
    script_wait(R_REANNOUNCE);
    cc_smr_enter();
    cc_smr_exit();
    script_go(R_REANNOUNCED);
    script_wait(R_ENTER);
    cc_smr_enter();
    node_t *p = atomic_load_explicit(&g_slot, memory_order_acquire);
    CC_CHECK(p != NULL);
    script_go(R_INSIDE);
    script_wait(R_LEAVE);
    CC_CHECK(p->magic == MAGIC); /* under ASan / the debug backend: no use after free */
    cc_smr_exit();
    cc_smr_idle();
    return NULL;
}

static void *revoker(void *arg) {
    (void)arg;
    script_mark_parkable();
    cc__smr_revoke_idle_now();
    script_go(V_AT_CAS_OR_DONE); /* (fixed predicate: it never parks at the CAS) */
    cc_smr_idle();
    return NULL;
}

static void test_revoke_skips_newer_announcement(void **state) {
    (void)state;
    assert_int_equal(cc_smr_barrier(), 0);
    script_install();
    node_t *p = cc_alloc_node(NODE_SIZE);
    assert_non_null(p);
    p->magic = MAGIC;
    atomic_store_explicit(&g_slot, p, memory_order_release);

    pthread_t r, v;
    smr_spawn(&r, reader, NULL);
    script_wait(R_KEPT);
    uint64_t e = cc_smr_stats().epoch;

    script_park_at(CC__SMR_STEP_REVOKE_FENCED, V_FENCED, V_GO);
    smr_spawn(&v, revoker, NULL);
    script_wait(V_FENCED);
    bool asymmetric = cc_smr_stats().asymmetric != 0;

    (void)cc_smr_poll();
    assert_int_equal(cc_smr_stats().epoch, e + 1);
    script_park_at(CC__SMR_STEP_REVOKE_CAS, V_AT_CAS_OR_DONE, V_CAS);
    script_go(R_REANNOUNCE);
    script_wait(R_REANNOUNCED);
    script_go(V_GO);
    script_wait(V_AT_CAS_OR_DONE);
    script_go(R_ENTER);
    script_wait(R_INSIDE);
    script_go(V_CAS);
    smr_join(v);

    /* Unlink p and retire it; it must survive while R is inside. */
    atomic_store_explicit(&g_slot, NULL, memory_order_release);
    cc_smr_retire(p, NODE_SIZE, node_free);
    for (int i = 0; i < 8; i++) (void)cc_smr_poll();
    int freed_while_inside = atomic_load(&g_freed);
    script_go(R_LEAVE);
    smr_join(r);
    assert_int_equal(freed_while_inside, 0);
    if (asymmetric) /* V's pass skipped R: it never reached the CAS */
        assert_int_equal(script_parked_count(), 1);

    assert_int_equal(cc_smr_barrier(), 0);
    assert_int_equal(atomic_load(&g_freed), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_revoke_skips_newer_announcement),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
