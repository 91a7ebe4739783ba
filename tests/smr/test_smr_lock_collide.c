/*
 * The record lock's handshake ("tests with teeth"): a barrier that detaches
 * another record's safe bags and that record's owner, whose slow enter
 * detaches the same bags, must never both take one bag. Either would put the
 * bag on its own free queue, and its nodes would be freed twice.
 *
 * Both schedules are forced through tests/smr/smr_script.h and the TEST ONLY
 * step hooks; CC__SMR_STEP_DETACH sits inside cc__smr_detach_safe, after a
 * safe bag's chunks are read and before they are taken out of the bag, so a
 * thread parked there has committed to a bag that is still in place.
 * Nodes are static and counted by their free function: a second free of any
 * node fails the test at once (CC_CHECK), whatever the allocator. A bag taken
 * twice is not always freed twice (the first taker empties the chunk before it
 * recycles it), so the pipeline's counters are checked too, before anything
 * else runs: out_of_bags <= retired for every record (a bag counted out
 * twice breaks it) and queue_freed == queued once everyone is quiescent (a
 * queued chunk that was emptied under its queue breaks it, and would make the
 * next barrier wait for ever).
 *
 * test_barrier_waits_for_active_owner (the holder's wait for the owner):
 *   1. O retires K nodes in a section and goes idle; the epoch moves on so
 *      that they are safe at O's next enter.
 *   2. B's cc_smr_barrier() advances the epoch; it is parked just before its
 *      last advance (CC__SMR_STEP_ADVANCE at epoch E + 2), after its scan.
 *   3. O enters (slow path: a new epoch) and detaches its safe bag: parked at
 *      CC__SMR_STEP_DETACH, inside its section.
 *   4. B goes on: it takes O's lock word, fences, finds O inside a section and
 *      must wait (it reaches the one-by-one lock, CC__SMR_STEP_LOCK_WAIT a
 *      second time). A holder that does not wait for the owner
 *      (fencing: announce; asymmetric: depth) detaches the same bag and frees
 *      its nodes; the test then lets O go on, and O frees them again.
 *
 * test_owner_waits_for_lock_holder (the owner's wait for the holder):
 *   1. As above, O's K nodes are safe at the barrier's epoch.
 *   2. B's barrier takes O's lock, finds O quiescent and is parked inside the
 *      detach of O's bag (CC__SMR_STEP_DETACH).
 *   3. O enters: it must see the lock, step back and wait for it
 *      (CC__SMR_STEP_ENTER_WAIT). An enter that ignores the lock detaches the
 *      same bag, and O's exit frees its nodes; the test then lets B go on,
 *      and B frees them again.
 * Both run in the fencing and (where membarrier works) the asymmetric mode.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "smr_internal.h"
#include "smr_script.h"
#include "smr_test.h"

#include <stdatomic.h>

#define MAGIC 0xB00C1E00u
#define K 3u

typedef struct {
    unsigned magic;
    unsigned idx;
} node_t;

static node_t g_nodes[K];
static _Atomic unsigned g_freed[K];

static void node_free(void *p, size_t size) {
    node_t *n = p;
    CC_CHECK(size == sizeof *n);
    CC_CHECK(atomic_fetch_add(&g_freed[n->idx], 1) == 0); /* freed twice */
    CC_CHECK(n->magic == MAGIC);
    n->magic = 0;
}

static int g_base; /* stages of the current test start here (stages never go back) */
static void go(int s) { script_go(g_base + s); }
static void wait_for(int s) { script_wait(g_base + s); }

enum role { NONE, ROLE_O, ROLE_B };
static __thread enum role t_role;
static int g_schedule;                /* 1: barrier vs active owner; 2: owner vs holder */
static uint64_t g_e;                  /* the epoch when B's barrier starts */
static __thread int t_lock_waits;     /* B: CC__SMR_STEP_LOCK_WAIT reached */
static __thread bool t_parked;        /* parked once already */

enum { O_RETIRED = 1, B_PARKED, O_ENTER, O_PARKED, B_GO, B_STUCK, O_GO, O_WAITING, O_DONE, B_DONE };

static void park(int arrive, int release) {
    t_parked = true;
    go(arrive);
    wait_for(release);
}

static void hook(enum cc__smr_step step) {
    if (g_schedule == 1) {
        if (t_role == ROLE_B && step == CC__SMR_STEP_ADVANCE && !t_parked &&
            atomic_load(&cc__smr_epoch) == g_e + 2)
            park(B_PARKED, B_GO); /* its scan is done; the CAS to E + 3 next */
        else if (t_role == ROLE_O && step == CC__SMR_STEP_DETACH && !t_parked)
            park(O_PARKED, O_GO);
        else if (t_role == ROLE_B && step == CC__SMR_STEP_LOCK_WAIT && ++t_lock_waits == 2)
            go(B_STUCK); /* the one-by-one lock of O: it waits for O */
    } else if (g_schedule == 2) {
        if (t_role == ROLE_B && step == CC__SMR_STEP_DETACH && !t_parked)
            park(B_PARKED, B_GO);
        else if (t_role == ROLE_O && step == CC__SMR_STEP_ENTER_WAIT)
            go(O_WAITING);
    }
}

/* Counters of one record: nothing counted out of the bags that was not
 * retired; with `flushed`, every queued node freed. Aborts (the next barrier
 * could wait for ever on broken counters). */
static void check_record(rec_t *r, bool flushed) {
    CC_CHECK(atomic_load(&r->out_of_bags) <= atomic_load(&r->pub.retired));
    if (flushed) CC_CHECK(atomic_load(&r->queue_freed) == atomic_load(&r->queued));
}

static void *owner(void *arg) {
    (void)arg;
    t_role = ROLE_O;
    cc_smr_enter();
    for (unsigned i = 0; i < K; i++) cc_smr_retire(&g_nodes[i], sizeof(node_t), node_free);
    cc_smr_exit();
    cc_smr_idle();
    go(O_RETIRED);
    wait_for(O_ENTER);
    cc_smr_enter(); /* schedule 1: parked inside (detach); 2: waits for B, or not */
    cc_smr_exit();
    check_record(t_rec, true);
    go(O_WAITING); /* (an enter that did not wait: it is done) */
    go(O_DONE);
    cc_smr_idle();
    return NULL;
}

static void *barrier_thread(void *arg) {
    (void)arg;
    t_role = ROLE_B;
    CC_CHECK(cc_smr_barrier() == 0);
    go(B_STUCK); /* (a barrier that did not wait: it is done) */
    go(B_DONE);
    cc_smr_idle();
    return NULL;
}

static void start(int schedule, pthread_t *o) {
    assert_int_equal(cc_smr_barrier(), 0);
    cc_smr_idle();
    g_base += 100;
    for (unsigned i = 0; i < K; i++) {
        g_nodes[i] = (node_t){MAGIC, i};
        atomic_store(&g_freed[i], 0);
    }
    g_schedule = schedule;
    atomic_store_explicit(&cc__smr_step_hook, hook, memory_order_relaxed);
    smr_spawn(o, owner, NULL);
    wait_for(O_RETIRED);
    /* O retired at a (tag a + 1); two polls make E >= a + 2, so that O's next
     * enter (at E + 2 or later) finds the bag safe. */
    (void)cc_smr_poll();
    (void)cc_smr_poll();
    cc_smr_idle();
    g_e = cc_smr_stats().epoch;
}

static void finish(pthread_t o, pthread_t b) {
    smr_join(o);
    smr_join(b);
    for (rec_t *r = atomic_load(&g_head); r; r = rec_next(r)) check_record(r, true);
    g_schedule = 0;
    assert_int_equal(cc_smr_barrier(), 0);
    cc_smr_idle();
    for (unsigned i = 0; i < K; i++) assert_int_equal(atomic_load(&g_freed[i]), 1);
}

static void test_barrier_waits_for_active_owner(void **state) {
    (void)state;
    pthread_t o, b;
    start(1, &o);
    smr_spawn(&b, barrier_thread, NULL);
    wait_for(B_PARKED);
    go(O_ENTER);
    wait_for(O_PARKED); /* O is inside its section, committed to its bag */
    go(B_GO);
    wait_for(B_STUCK);  /* B waits for O (or, broken, has freed O's bag) */
    go(O_GO);
    wait_for(B_DONE);
    finish(o, b);
}

static void test_owner_waits_for_lock_holder(void **state) {
    (void)state;
    pthread_t o, b;
    start(2, &o);
    smr_spawn(&b, barrier_thread, NULL);
    wait_for(B_PARKED); /* B holds O's lock, committed to O's bag */
    go(O_ENTER);
    wait_for(O_WAITING); /* O waits for the lock (or, broken, has freed its bag) */
    go(B_GO);
    wait_for(B_DONE);
    wait_for(O_DONE);
    finish(o, b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_barrier_waits_for_active_owner),
        cmocka_unit_test(test_owner_waits_for_lock_holder),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
