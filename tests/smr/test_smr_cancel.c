/*
 * A thread cancelled inside cc_smr_barrier() must not leave another thread's
 * record locked. The barrier locks each record with pending nodes and waits
 * for its owner to leave its section; that wait sleeps (nanosleep, a
 * cancellation point). A barrier cancelled there used to die holding the
 * lock, and the owner's next cc_smr_enter() waited for ever.
 *
 * Scripted through the TEST ONLY step hooks:
 *   1. O retires 10 nodes in a section and leaves it (its bags hold them).
 *   2. B calls cc_smr_barrier(). When B is about to advance the epoch to
 *      e0 + 3 (its last advance), O enters a section (announcing e0 + 2,
 *      which does not block that advance) and stays.
 *   3. B locks O's record and, before it waits for O, reaches a cancellation
 *      point (a condition wait in the hook). M cancels B there.
 *   4. O leaves its section and enters again: with the fix (cancellation is
 *      deferred while the barrier may hold a record's lock) it gets in; with
 *      the bug it waits for ever on the lock the dead barrier held. The test
 *      reports that after 20 s rather than hang.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "smr_script.h"
#include "smr_test.h"

#include <errno.h>
#include <stdatomic.h>
#include <time.h>

enum {
    O_RETIRED = 1,
    O_ENTER,      /* B is about to make its last advance: O enters */
    O_INSIDE,
    B_LOCKED,     /* B holds O's lock, at a cancellation point */
    B_CANCELLED,  /* M has called pthread_cancel(B) */
    O_LEAVE,
    O_BACK,       /* O entered again and left */
};

static __thread bool t_is_b;
static uint64_t g_e0;
static bool g_entered; /* B's thread only */

static void hook(enum cc__smr_step step) {
    if (!t_is_b) return;
    if (step == CC__SMR_STEP_ADVANCE && !g_entered &&
        atomic_load_explicit(&cc__smr_epoch, memory_order_relaxed) == g_e0 + 2) {
        g_entered = true;
        script_go(O_ENTER);
        script_wait(O_INSIDE);
    } else if (step == CC__SMR_STEP_LOCK_WAIT) {
        script_go(B_LOCKED);
        script_wait_cancellable(B_CANCELLED);
    }
}

static _Atomic int g_freed;
static void node_free(void *p, size_t size) {
    atomic_fetch_add(&g_freed, 1);
    cc_free(p, size);
}

static void *owner(void *arg) {
    (void)arg;
    cc_smr_enter();
    for (int i = 0; i < 10; i++) cc_smr_retire(cc_alloc_node(32), 32, node_free);
    cc_smr_exit();
    script_go(O_RETIRED);
    script_wait(O_ENTER);
    cc_smr_enter();
    script_go(O_INSIDE);
    script_wait(O_LEAVE);
    cc_smr_exit();
    cc_smr_enter(); /* the bug: waits for ever for the dead barrier's lock */
    cc_smr_exit();
    cc_smr_idle();
    script_go(O_BACK);
    return NULL;
}

static void *barrier_thread(void *arg) {
    (void)arg;
    t_is_b = true;
    g_e0 = cc_smr_stats().epoch;
    (void)cc_smr_barrier();
    pthread_testcancel(); /* the deferred cancellation acts here at the latest */
    return NULL;
}

static void test_cancelled_barrier_releases_locks(void **state) {
    (void)state;
    atomic_store_explicit(&cc__smr_step_hook, hook, memory_order_relaxed);
    pthread_t o, b;
    smr_spawn(&o, owner, NULL);
    script_wait(O_RETIRED);
    smr_spawn(&b, barrier_thread, NULL);
    script_wait(B_LOCKED);
    assert_int_equal(pthread_cancel(b), 0);
    script_go(B_CANCELLED);
    script_go(O_LEAVE);

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 20; /* a hang detector, not a timing assertion */
    pthread_mutex_lock(&script_mu);
    int rc = 0;
    while (script_stage < O_BACK && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&script_cv, &script_mu, &deadline);
    bool back = script_stage >= O_BACK;
    pthread_mutex_unlock(&script_mu);
    if (!back) fail_msg("the owner's enter still waits for the lock of a cancelled barrier");

    void *res;
    assert_int_equal(pthread_join(b, &res), 0);
    assert_true(res == PTHREAD_CANCELED);
    smr_join(o);
    atomic_store_explicit(&cc__smr_step_hook, NULL, memory_order_relaxed);
    assert_int_equal(cc_smr_barrier(), 0);
    assert_int_equal(atomic_load(&g_freed), 10);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cancelled_barrier_releases_locks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
