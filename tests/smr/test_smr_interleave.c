/*
 * Scripted interleavings that pin down the tag arithmetic of the limbo bags,
 * the barrier's wait for in-flight frees and the `stalled_threads` statistic
 * (issue 15, "tests with teeth"). Each schedule is forced through
 * tests/smr/smr_script.h (stages, and the TEST ONLY step hooks where a thread
 * must be caught inside the library); nothing depends on timing.
 *
 * THE EARLY-FREE SCHEDULE (tests 1-4)
 *   1. U enters on the fast path at epoch u (it entered and left once at u
 *      before, so seen_epoch == u).
 *   2. M polls: the epoch moves to u+1 (U's announcement of u does not block).
 *   3. R enters (announcing u+1) and loads p from a shared slot.
 *   4. U unlinks p, retires it (tag u+1: safe at epoch u+3) and leaves.
 *   5. M polls until the epoch is u+2 (R, announcing u+1, blocks u+3); then U
 *      polls (its enter reclaims its own safe bags), or -- the orphan variant
 *      -- U's thread ends, and M's polls take the safe orphans.
 *   While R is still inside, p's free function must not have run. Every bug
 *   that frees one epoch early frees p here (the epoch does reach u+2: the
 *   test asserts it, so the schedule cannot go vacuous):
 *     - detach_safe freeing at tag + 1 <= e               (test_first_retire)
 *     - fill_chunk accepting fill_tag == a, not a + 1: U's previous retire,
 *       in a section at u-1, left its bag of tag u as the fill bag, and p is
 *       appended to it                                     (test_stale_fill_bag)
 *     - retire_to_bag using tag = a                        (test_first_retire:
 *       U's first retire, the slow path with a fresh bag)
 *     - take_orphans freeing at tag + 1 <= e               (test_orphan)
 *   test_inline_retire is the same with p appended on the inline fast path
 *   (U retired another node earlier in the same epoch).
 *   R reads p once more before it leaves: under ASan or the debug backend an
 *   early free is also a use after free.
 *
 * THE BARRIER'S WAIT (test_barrier_waits_for_inflight_free)
 *   T's own flush runs a free function that blocks; cc_smr_barrier() on the
 *   main thread must not return before it has returned. The main thread is
 *   parked at the barrier's wait (CC__SMR_STEP_BARRIER_WAIT) and released
 *   only once T's free function is done; a barrier that does not wait never
 *   parks and returns while T is still inside the free function.
 *
 * STALLED THREADS (test_stalled_threads_counts_only_behind)
 *   A thread inside a section at the current epoch is not stalled; once the
 *   epoch moves past it, it is.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "smr_script.h"
#include "smr_test.h"

#include <stdatomic.h>

#define NODE_SIZE 48
#define MAGIC 0x5AFE5AFEu

typedef struct {
    unsigned magic;
} node_t;

static _Atomic(node_t *) g_slot;
static _Atomic int g_p_freed;
static int g_base; /* stages of the current test start here (stages never go back) */

static void go(int s) { script_go(g_base + s); }
static void wait_for(int s) { script_wait(g_base + s); }

static void p_free(void *p, size_t size) {
    node_t *n = p;
    CC_CHECK(n->magic == MAGIC);
    n->magic = 0;
    atomic_fetch_add(&g_p_freed, 1);
    cc_free(p, size);
}

static node_t *new_node(void) {
    node_t *n = cc_alloc_node(NODE_SIZE);
    CC_CHECK(n != NULL);
    n->magic = MAGIC;
    return n;
}

/* ---- the early-free schedule ---------------------------------------------------- */

enum variant { FIRST_RETIRE, INLINE_RETIRE, STALE_FILL_BAG, ORPHAN };

enum {
    U_WARM = 1,  /* STALE_FILL_BAG: U retired q at u-1 and left */
    U_WARM_DONE, /* M moved the epoch to u */
    U_IN,        /* U is inside, announcing u, entered on the fast path */
    R_ENTER,     /* M moved the epoch to u+1 */
    R_IN,        /* R is inside, holding p */
    U_UNLINK,    /* U: unlink, retire, leave */
    U_OUT,       /* U left its section (or its thread ended: ORPHAN) */
    U_POLL,      /* M moved the epoch to u+2: U polls */
    U_POLLED,
    R_LEAVE,     /* M has checked: R may read p and leave */
    U_END,
};

static void *unlinker(void *arg) {
    enum variant v = (enum variant)(uintptr_t)arg;
    if (v == STALE_FILL_BAG) {
        cc_smr_enter();
        cc_smr_retire(new_node(), NODE_SIZE, NULL); /* bag u: the fill bag */
        cc_smr_exit();
        go(U_WARM);
        wait_for(U_WARM_DONE);
    }
    cc_smr_enter(); /* seen_epoch = u: the next enter takes the fast path */
    cc_smr_exit();
    if (v == INLINE_RETIRE) {
        cc_smr_enter();
        cc_smr_retire(new_node(), NODE_SIZE, NULL); /* bag u+1: p goes inline after it */
        cc_smr_exit();
    }
    cc_smr_enter();
    go(U_IN);
    wait_for(U_UNLINK);
    node_t *p = atomic_exchange_explicit(&g_slot, NULL, memory_order_acq_rel);
    CC_CHECK(p != NULL);
    cc_smr_retire(p, NODE_SIZE, p_free);
    cc_smr_exit();
    if (v == ORPHAN) return NULL; /* p is orphaned when this thread ends */
    go(U_OUT);
    wait_for(U_POLL);
    for (int i = 0; i < 3; i++) (void)cc_smr_poll();
    go(U_POLLED);
    wait_for(U_END);
    cc_smr_idle();
    return NULL;
}

static void *reader(void *arg) {
    (void)arg;
    wait_for(R_ENTER);
    cc_smr_enter();
    node_t *p = atomic_load_explicit(&g_slot, memory_order_acquire);
    CC_CHECK(p != NULL);
    go(R_IN);
    wait_for(R_LEAVE);
    CC_CHECK(atomic_load(&g_p_freed) == 0); /* freed under a reader */
    CC_CHECK(p->magic == MAGIC);            /* (ASan / debug backend: use after free) */
    cc_smr_exit();
    cc_smr_idle();
    return NULL;
}

static void early_free_schedule(enum variant v) {
    assert_int_equal(cc_smr_barrier(), 0);
    cc_smr_idle();
    g_base += 100;
    script_install();
    atomic_store(&g_p_freed, 0);
    atomic_store_explicit(&g_slot, new_node(), memory_order_release);

    pthread_t u_thr, r_thr;
    smr_spawn(&u_thr, unlinker, (void *)(uintptr_t)v);
    if (v == STALE_FILL_BAG) {
        wait_for(U_WARM);
        (void)cc_smr_poll(); /* u-1 -> u */
        cc_smr_idle();
        go(U_WARM_DONE);
    }
    wait_for(U_IN);
    uint64_t u = cc_smr_stats().epoch;
    (void)cc_smr_poll(); /* u -> u+1: U announces u, which does not block */
    cc_smr_idle();
    assert_int_equal(cc_smr_stats().epoch, u + 1);

    smr_spawn(&r_thr, reader, NULL);
    go(R_ENTER);
    wait_for(R_IN);
    go(U_UNLINK);
    if (v == ORPHAN) {
        smr_join(u_thr); /* U's bags, p's among them, are now orphans */
    } else {
        wait_for(U_OUT);
    }
    for (int i = 0; i < 3; i++) (void)cc_smr_poll(); /* u+1 -> u+2; R blocks u+3 */
    cc_smr_idle();
    if (v != ORPHAN) {
        go(U_POLL);
        wait_for(U_POLLED);
    }
    for (int i = 0; i < 3; i++) (void)cc_smr_poll();
    cc_smr_idle();
    uint64_t epoch_inside = cc_smr_stats().epoch;
    int freed_inside = atomic_load(&g_p_freed);

    go(R_LEAVE);
    smr_join(r_thr);
    go(U_END);
    if (v != ORPHAN) smr_join(u_thr);
    /* The schedule reached the epoch where a bag one epoch early is freed. */
    assert_int_equal(epoch_inside, u + 2);
    assert_int_equal(freed_inside, 0);
    assert_int_equal(cc_smr_barrier(), 0);
    assert_int_equal(atomic_load(&g_p_freed), 1);
}

static void test_first_retire(void **state) {
    (void)state;
    early_free_schedule(FIRST_RETIRE);
}

static void test_inline_retire(void **state) {
    (void)state;
    early_free_schedule(INLINE_RETIRE);
}

static void test_stale_fill_bag(void **state) {
    (void)state;
    early_free_schedule(STALE_FILL_BAG);
}

static void test_orphan(void **state) {
    (void)state;
    early_free_schedule(ORPHAN);
}

/* ---- stalled_threads ---------------------------------------------------------- */

enum { S_IN = 1, S_LEAVE };

static void *sitter(void *arg) {
    (void)arg;
    cc_smr_enter();
    go(S_IN);
    wait_for(S_LEAVE);
    cc_smr_exit();
    cc_smr_idle();
    return NULL;
}

static void test_stalled_threads_counts_only_behind(void **state) {
    (void)state;
    assert_int_equal(cc_smr_barrier(), 0);
    cc_smr_idle();
    g_base += 100;
    pthread_t s;
    smr_spawn(&s, sitter, NULL);
    wait_for(S_IN);
    cc_smr_snapshot_t at = cc_smr_stats(); /* S announces the current epoch */
    (void)cc_smr_poll();                    /* moves past it: S is now behind */
    cc_smr_idle();
    cc_smr_snapshot_t behind = cc_smr_stats();
    go(S_LEAVE);
    smr_join(s);
    assert_int_equal(behind.epoch, at.epoch + 1);
    assert_int_equal(at.stalled_threads, 0);
    assert_int_equal(behind.stalled_threads, 1);
    assert_int_equal(cc_smr_stats().stalled_threads, 0);
}

/* ---- the barrier waits for other threads' in-flight frees ---------------------- */

enum { T_IN_FREE = 1, B_WAITING, T_FREED };

static _Atomic int g_slow_done;

static void slow_free(void *p, size_t size) {
    go(T_IN_FREE);
    wait_for(B_WAITING); /* the barrier is waiting for this very call */
    atomic_store(&g_slow_done, 1);
    cc_free(p, size);
    go(T_FREED);
}

static void *slow_freer(void *arg) {
    (void)arg;
    cc_smr_enter();
    cc_smr_retire(new_node(), NODE_SIZE, slow_free);
    cc_smr_exit();
    /* Its own polls detach the bag and its own flush runs slow_free. */
    while (!atomic_load(&g_slow_done)) (void)cc_smr_poll();
    cc_smr_idle();
    return NULL;
}

static void test_barrier_waits_for_inflight_free(void **state) {
    (void)state;
    assert_int_equal(cc_smr_barrier(), 0);
    cc_smr_idle();
    g_base += 100;
    script_install();
    atomic_store(&g_slow_done, 0);
    pthread_t t;
    smr_spawn(&t, slow_freer, NULL);
    wait_for(T_IN_FREE);
    script_mark_parkable();
    script_park_at(CC__SMR_STEP_BARRIER_WAIT, g_base + B_WAITING, g_base + T_FREED);
    assert_int_equal(cc_smr_barrier(), 0);
    int done_at_return = atomic_load(&g_slow_done);
    go(B_WAITING); /* (a barrier that did not wait: let T finish) */
    smr_join(t);
    assert_int_equal(done_at_return, 1);
    assert_int_equal(script_parked_count(), 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_first_retire),
        cmocka_unit_test(test_inline_retire),
        cmocka_unit_test(test_stale_fill_bag),
        cmocka_unit_test(test_orphan),
        cmocka_unit_test(test_stalled_threads_counts_only_behind),
        cmocka_unit_test(test_barrier_waits_for_inflight_free), /* last: leaves main parkable */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
