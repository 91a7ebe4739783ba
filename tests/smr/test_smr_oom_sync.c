/*
 * The out-of-memory synchronous fallback of cc__smr_retire_to_bag ("tests
 * with teeth"): a retire outside any section that finds no chunk anywhere --
 * no cached chunk, malloc failing, no safe bag of its own to recycle, its
 * built-in spare chunk in use, the static reserve empty -- leaves its
 * internal section, waits until the node is safe and frees it itself.
 *
 * Every chunk allocation fails (cc__smr_fail_chunk_alloc(1), after the
 * threads registered with their two cached chunks). The schedule, forced
 * through tests/smr/smr_script.h and the TEST ONLY step hooks:
 *   1. U retires, in one user section, its cached chunks' worth of nodes plus
 *      one: the last goes to its spare chunk. Its exit must restore headroom:
 *      malloc fails, so it waits for its oldest bag to become safe. U is
 *      parked at that wait (CC__SMR_STEP_ADVANCE).
 *   2. B's cc_smr_barrier() detaches U's now-safe bags (U is quiescent) into
 *      its own free queue, and is parked before its first free function
 *      (CC__SMR_STEP_FREE): U's spare chunk sits on B's queue.
 *   3. U goes on: its bags are gone, so it ends with no cached chunk and no
 *      free spare (the test checks both).
 *   4. W, in a user section, loads p from a shared slot, then retires enough
 *      nodes to use its cached chunks, its spare and all RESERVE_CHUNKS of
 *      the static reserve, and stays inside.
 *   5. U unlinks p and retires it outside any section: the synchronous
 *      fallback (CC__SMR_STEP_OOM_SYNC, counted). U advances the epoch as far
 *      as W allows (W's epoch + 1) and waits there: only then does W check
 *      that p has not been freed, and leave.
 *   6. U frees p; B is released; a final barrier frees the rest.
 * Checked: the fallback ran exactly once; p was not freed while W, which
 * holds it, was inside; every node was freed exactly once; the statistics'
 * `retired` and `freed` grew by exactly the number of retire calls, and
 * nothing is pending.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "smr_internal.h"
#include "smr_script.h"
#include "smr_test.h"

#include <stdatomic.h>

#define MAGIC 0x0FF1CE00u
#define MAX_NODES 2048u

typedef struct {
    unsigned magic;
    unsigned idx;
} node_t;

/* Nodes are static: a node freed twice is counted twice, never a heap error. */
static node_t g_nodes[MAX_NODES];
static _Atomic unsigned g_freed[MAX_NODES];
static _Atomic(node_t *) g_slot;

enum { U_REG = 1, W_REG, B_REG, FAIL_ON, U_PARKED, B_START, B_PARKED, U_GO, U_RESTORED,
       W_START, W_HOLDS, U_BLOCKED, W_LEFT, U_DONE, B_GO };

enum role { NONE, ROLE_U, ROLE_W };
static __thread enum role t_role;
static _Atomic int g_oom_syncs;         /* U reached the fallback's wait */
static __thread bool t_in_fallback;
static _Atomic uint64_t g_w_epoch;      /* W's announced epoch */
static _Atomic int g_blocked_signalled;

static void node_free(void *p, size_t size) {
    node_t *n = p;
    CC_CHECK(size == sizeof *n);
    CC_CHECK(n->magic == MAGIC);
    CC_CHECK(atomic_fetch_add(&g_freed[n->idx], 1) == 0);
    n->magic = 0;
}

static node_t *node_range(unsigned first, unsigned i) {
    node_t *n = &g_nodes[first + i];
    n->magic = MAGIC;
    n->idx = first + i;
    return n;
}

/* U is waiting in the fallback once it scans a record at the highest epoch
 * W lets through (W's announced epoch + 1). */
static void hook(enum cc__smr_step step) {
    if (t_role == ROLE_U) {
        if (step == CC__SMR_STEP_OOM_SYNC) {
            t_in_fallback = true;
            atomic_fetch_add(&g_oom_syncs, 1);
        } else if (step == CC__SMR_STEP_SCAN_RECORD && t_in_fallback &&
                   atomic_load(&cc__smr_epoch) == atomic_load(&g_w_epoch) + 1 &&
                   !atomic_exchange(&g_blocked_signalled, 1)) {
            script_go(U_BLOCKED);
        }
    }
    script_step_hook(step);
}

static unsigned g_u_first, g_u_count, g_w_first, g_w_count, g_p_idx;

static void *thread_u(void *arg) {
    (void)arg;
    t_role = ROLE_U;
    cc_smr_enter(); /* registers: two cached chunks, malloc still works */
    cc_smr_exit();
    cc_smr_idle();
    rec_t *r = t_rec;
    CC_CHECK(r->ncache == 2 && atomic_load(&r->spare_free) == 1);
    g_u_count = r->ncache * CHUNK_CAP + 1; /* the last one goes to the spare */
    script_go(U_REG);
    script_wait(FAIL_ON);
    cc_smr_enter();
    for (unsigned i = 0; i < g_u_count; i++) cc_smr_retire(node_range(g_u_first, i), sizeof(node_t), node_free);
    CC_CHECK(atomic_load(&r->spare_free) == 0 && r->ncache == 0);
    /* The exit restores headroom: it waits for the oldest bag; parked there. */
    script_park_at(CC__SMR_STEP_ADVANCE, U_PARKED, U_GO);
    script_mark_parkable();
    cc_smr_exit();
    script_parkable = false;
    /* B took the bags (spare included) before U's wait ended. */
    CC_CHECK(r->ncache == 0 && atomic_load(&r->spare_free) == 0);
    script_go(U_RESTORED);
    script_wait(W_HOLDS);
    node_t *p = atomic_exchange(&g_slot, NULL);
    CC_CHECK(p != NULL);
    cc_smr_retire(p, sizeof *p, node_free); /* outside a section: the fallback */
    CC_CHECK(atomic_load(&g_freed[g_p_idx]) == 1); /* freed synchronously */
    script_go(U_DONE);
    cc_smr_idle();
    return NULL;
}

static void *thread_w(void *arg) {
    (void)arg;
    t_role = ROLE_W;
    cc_smr_enter();
    cc_smr_exit();
    cc_smr_idle();
    rec_t *r = t_rec;
    CC_CHECK(r->ncache == 2 && atomic_load(&r->spare_free) == 1);
    g_w_count = (r->ncache + 1 + RESERVE_CHUNKS) * CHUNK_CAP; /* cache, spare, reserve */
    script_go(W_REG);
    script_wait(W_START);
    cc_smr_enter();
    atomic_store(&g_w_epoch, atomic_load(&r->pub.announce) >> 1);
    node_t *p = atomic_load(&g_slot);
    CC_CHECK(p != NULL);
    for (unsigned i = 0; i < g_w_count; i++) cc_smr_retire(node_range(g_w_first, i), sizeof(node_t), node_free);
    script_go(W_HOLDS);
    script_wait(U_BLOCKED); /* U waits in the fallback for us to leave */
    CC_CHECK(atomic_load(&g_oom_syncs) == 1);
    CC_CHECK(atomic_load(&g_freed[p->idx]) == 0); /* not freed under a reader */
    CC_CHECK(p->magic == MAGIC);
    cc_smr_exit();
    script_go(W_LEFT);
    cc_smr_idle();
    return NULL;
}

static void *thread_b(void *arg) {
    (void)arg;
    cc_smr_enter();
    cc_smr_exit();
    cc_smr_idle();
    script_go(B_REG);
    script_wait(B_START);
    script_mark_parkable(); /* parked at its first free function: U's spare chunk */
    CC_CHECK(cc_smr_barrier() == 0);
    cc_smr_idle();
    return NULL;
}

static void test_oom_sync_fallback(void **state) {
    (void)state;
    assert_int_equal(cc_smr_barrier(), 0);
    cc_smr_idle();
    atomic_store_explicit(&cc__smr_step_hook, hook, memory_order_relaxed);
    cc_smr_snapshot_t before = cc_smr_stats();

    pthread_t u, w, b;
    g_u_first = 0;
    smr_spawn(&u, thread_u, NULL);
    script_wait(U_REG);
    g_w_first = g_u_first + g_u_count;
    smr_spawn(&w, thread_w, NULL);
    script_wait(W_REG);
    g_p_idx = g_w_first + g_w_count;
    assert_true(g_p_idx < MAX_NODES);
    atomic_store(&g_slot, node_range(g_p_idx, 0));
    smr_spawn(&b, thread_b, NULL);
    script_wait(B_REG);

    cc__smr_fail_chunk_alloc(1); /* every chunk allocation fails from here on */
    script_go(FAIL_ON);
    script_wait(U_PARKED);
    script_park_at(CC__SMR_STEP_FREE, B_PARKED, B_GO);
    script_go(B_START);
    script_wait(B_PARKED);
    script_go(U_GO);
    script_wait(U_RESTORED);
    script_go(W_START);
    script_wait(U_DONE);
    script_wait(W_LEFT);
    script_go(B_GO);
    smr_join(u);
    smr_join(w);
    smr_join(b);
    cc__smr_fail_chunk_alloc(0);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_smr_idle();

    unsigned total = g_p_idx + 1;
    assert_int_equal(atomic_load(&g_oom_syncs), 1);
    for (unsigned i = 0; i < total; i++) assert_int_equal(atomic_load(&g_freed[i]), 1);
    cc_smr_snapshot_t after = cc_smr_stats();
    assert_int_equal(after.retired - before.retired, total); /* one per retire call */
    assert_int_equal(after.freed - before.freed, total);
    assert_int_equal(after.pending, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_oom_sync_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
