/*
 * A stalled reader (issue 6). A thread enters a critical section and blocks on
 * a condition variable while RETIRERS threads (and main) retire nodes with a
 * counting free function and call cc_smr_poll.
 *
 * While it stalls:
 *  - cc_smr_stats().stalled_threads >= 1 (reported);
 *  - none of the nodes retired after it entered is freed (per-node flags),
 *    however often others poll: freeing one would be a use-after-free hazard
 *    for the reader (this is the safety property, with a stalled reader);
 *  - pending >= the number retired since, and keeps growing; the glue's
 *    current_blocks grows with it (the memory is really held);
 *  - a cc_smr_barrier() started on another thread does not return.
 * After the reader leaves: the barrier returns, every node is freed exactly
 * once, stalled_threads is 0, pending is 0, the glue's stats are back.
 * A second case: the reader's thread exits while still inside its section
 * (it never calls cc_smr_exit): the same, once the thread is gone.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "reg_test.h"

#include <stdatomic.h>

#define RETIRERS 3u
#define PER_ROUND 2000u
#define ROUNDS 4u
#define MAXN ((RETIRERS + 1) * PER_ROUND * ROUNDS)

typedef struct {
    uint32_t id;
    uint32_t magic;
} snode_t;

static _Atomic unsigned char g_freed[MAXN];
static _Atomic uint32_t g_next_id;

static void snode_free(void *p, size_t size) {
    snode_t *n = p;
    CC_CHECK(size == sizeof *n);
    CC_CHECK(n->magic == 0x57A11EDu);
    CC_CHECK(n->id < MAXN);
    n->magic = 0;
    CC_CHECK(atomic_fetch_add(&g_freed[n->id], 1) == 0);
    cc_free(p, size);
}

static void retire_some(unsigned count) {
    for (unsigned i = 0; i < count; i++) {
        snode_t *n = cc_alloc_node(sizeof *n);
        CC_CHECK(n != NULL);
        n->id = atomic_fetch_add(&g_next_id, 1);
        CC_CHECK(n->id < MAXN);
        n->magic = 0x57A11EDu;
        if (i % 2) {
            cc_smr_enter();
            cc_smr_retire(n, sizeof *n, snode_free);
            cc_smr_exit();
        } else {
            cc_smr_retire(n, sizeof *n, snode_free);
        }
        if (i % 100 == 0) cc_smr_poll();
    }
}

/* The reader: enters, reports, blocks until released; exits the section or,
 * with `die_inside`, exits the thread inside it. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_cv = PTHREAD_COND_INITIALIZER;
static int g_inside, g_release, g_die_inside;

static void *reader(void *arg) {
    (void)arg;
    cc_smr_enter();
    pthread_mutex_lock(&g_mu);
    g_inside = 1;
    pthread_cond_broadcast(&g_cv);
    while (!g_release) pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
    if (!g_die_inside) cc_smr_exit();
    return NULL;
}

static void *retirer(void *arg) {
    retire_some((unsigned)(uintptr_t)arg);
    return NULL;
}

static _Atomic int g_barrier_done;
static void *barrier_thread(void *arg) {
    (void)arg;
    CC_CHECK(cc_smr_barrier() == 0);
    atomic_store(&g_barrier_done, 1);
    return NULL;
}

static void run_case(int die_inside) {
    memset((void *)g_freed, 0, sizeof g_freed);
    atomic_store(&g_next_id, 0);
    atomic_store(&g_barrier_done, 0);
    g_inside = g_release = 0;
    g_die_inside = die_inside;
    cc_alloc_stats_enable(true);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_alloc_snapshot_t base = cc_alloc_stats_snapshot();
    cc_smr_snapshot_t s0 = cc_smr_stats();
    assert_int_equal(s0.stalled_threads, 0);

    pthread_t rd;
    reg_spawn(&rd, reader, NULL);
    pthread_mutex_lock(&g_mu);
    while (!g_inside) pthread_cond_wait(&g_cv, &g_mu);
    pthread_mutex_unlock(&g_mu);
    /* Everything retired from here on was retired after the reader entered. */

    unsigned per = reg_scale(PER_ROUND, 200);
    uint64_t last_pending = 0, max_stalled = 0;
    pthread_t bt;
    for (unsigned round = 0; round < ROUNDS; round++) {
        pthread_t th[RETIRERS];
        for (unsigned i = 0; i < RETIRERS; i++) reg_spawn(&th[i], retirer, (void *)(uintptr_t)per);
        retire_some(per);
        for (unsigned i = 0; i < RETIRERS; i++) reg_join(th[i]);
        cc_smr_poll();
        uint32_t retired = atomic_load(&g_next_id);
        cc_smr_snapshot_t s = cc_smr_stats();
        cc_alloc_snapshot_t a = cc_alloc_stats_snapshot();
        unsigned freed = 0;
        for (uint32_t i = 0; i < retired; i++) freed += atomic_load(&g_freed[i]);
        printf("stalled%s: round %u: retired since stall %u, freed of them %u, pending %llu, stalled_threads "
               "%llu, epoch %llu (entered at %llu), glue current_blocks +%lld\n",
               die_inside ? " (dies inside)" : "", round, retired, freed, (unsigned long long)s.pending,
               (unsigned long long)s.stalled_threads, (unsigned long long)s.epoch, (unsigned long long)s0.epoch,
               (long long)(a.current_blocks - base.current_blocks));
        assert_int_equal(freed, 0);
        assert_true(s.pending >= retired);
        assert_true(s.pending > last_pending); /* grows while the reader stalls */
        assert_true(a.current_blocks - base.current_blocks >= retired);
        assert_true(s.epoch <= s0.epoch + 2); /* the reader pins the epoch (I1) */
        last_pending = s.pending;
        if (s.stalled_threads > max_stalled) max_stalled = s.stalled_threads;
        if (round == 0) reg_spawn(&bt, barrier_thread, NULL);
    }
    assert_true(max_stalled >= 1);
    assert_true(cc_smr_stats().stalled_threads >= 1);
    reg_sleep_ms(300);
    assert_int_equal(atomic_load(&g_barrier_done), 0); /* the barrier waits for the reader */

    pthread_mutex_lock(&g_mu);
    g_release = 1;
    pthread_cond_broadcast(&g_cv);
    pthread_mutex_unlock(&g_mu);
    reg_join(rd);
    reg_join(bt);
    assert_int_equal(atomic_load(&g_barrier_done), 1);
    assert_int_equal(cc_smr_barrier(), 0);

    uint32_t retired = atomic_load(&g_next_id);
    for (uint32_t i = 0; i < retired; i++)
        if (atomic_load(&g_freed[i]) != 1) fail_msg("node %u freed %u times", i, (unsigned)atomic_load(&g_freed[i]));
    cc_smr_snapshot_t s = cc_smr_stats();
    assert_int_equal(s.stalled_threads, 0);
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.orphaned, 0);
    cc_alloc_snapshot_t a = cc_alloc_stats_snapshot();
    assert_int_equal(a.current_blocks, base.current_blocks);
    assert_int_equal(a.current_allocated, base.current_allocated);
    printf("stalled%s: after release: %u nodes freed exactly once, peak_pending %llu, stalled_threads 0\n",
           die_inside ? " (dies inside)" : "", retired, (unsigned long long)s.peak_pending);
}

static void test_stalled_reader(void **state) {
    (void)state;
    run_case(0);
}

static void test_stalled_reader_dies_inside(void **state) {
    (void)state;
    run_case(1);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stalled_reader),
        cmocka_unit_test(test_stalled_reader_dies_inside),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
