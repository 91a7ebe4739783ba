/*
 * Bounded soak (issue 6): THREADS threads (16; more than the cores) move a
 * fixed set of VALUES values between one queue and one stack for
 * CC_SOAK_SECONDS seconds (environment; default 5, CTest sets 60 for the
 * mimalloc backend of the normal build). Every value is, at every moment,
 * in the queue, in the stack, or held by exactly one thread (a `held` flag
 * per value, swapped on every pop: a value popped twice is caught at once).
 *
 * Every 0.5 s the main thread samples and prints RSS (/proc/self/statm),
 * cc_smr_stats().pending, the epoch and the operation count, and fails if
 *  - RSS > baseline + RSS_BOUND_MIB MiB, or
 *  - pending > PENDING_BOUND.
 * At the end: every value present exactly once (drain both), nothing pending,
 * and the glue's statistics back to the baseline after destroy + barrier.
 *
 * The pending bound. src/smr_limbo.c states pending <= ~3 x threads x threshold
 * while every thread makes progress: 3 x 17 x 64 = 3,264 here. That premise
 * does not hold with 16 busy threads on 2 cores: most of a thread's time is
 * inside a push/pop section, so a preempted thread usually blocks the epoch
 * until the scheduler runs it again, and every advance waits for a full
 * round of the scheduler. Measured here (mimalloc, 60 s): ~25 epoch advances
 * per second, ~2.3 M retires/s, pending median ~400 k, 90th percentile
 * ~575 k, max sampled ~945 k. PENDING_BOUND = 4,000,000 is ~4x the worst
 * sample (about 1.7 s of retirements with nothing freed); a never-freeing or
 * leaking SMR crosses it within about 2 s. RSS_BOUND_MIB = 512: 4 M pending
 * nodes cost ~4M x (64 B node + 24 B bag entry) = ~350 MB; the worst sample
 * so far used 91 MiB. docs/reliability.md records the measured maxima.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "reg_test.h"

#include <stdatomic.h>

#define THREADS 16u
#define VALUES (THREADS * 4096u)
#define LOCAL_MAX 64u
#define PENDING_BOUND 4000000ull
#define RSS_BOUND_MIB 512ull

static _Atomic unsigned char g_held[VALUES]; /* 1 while a thread holds it */
static _Atomic int g_stop;
static _Atomic uint64_t g_ops;
static cc_queue_t *g_queue;
static cc_stack_t *g_stack;

static void take(void *v) {
    uintptr_t x = (uintptr_t)v;
    CC_CHECK(x >= 1 && x <= VALUES);
    CC_CHECK(atomic_exchange_explicit(&g_held[x - 1], 1, memory_order_relaxed) == 0);
}

static void give(void *v) {
    atomic_store_explicit(&g_held[(uintptr_t)v - 1], 0, memory_order_relaxed);
}

static void *soak_thread(void *arg) {
    unsigned t = (unsigned)(uintptr_t)arg;
    uint64_t seed = 0x1234567ull * (t + 1);
    void *local[LOCAL_MAX];
    unsigned n = 0;
    uint64_t ops = 0;
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        for (unsigned k = 0; k < 256; k++) {
            uint64_t r = reg_rand(&seed);
            bool do_push = n == LOCAL_MAX || (n > 0 && (r & 1));
            if (do_push) {
                void *v = local[--n];
                give(v);
                if (r & 2) CC_CHECK(cc_queue_push(g_queue, v));
                else CC_CHECK(cc_stack_push(g_stack, v));
            } else {
                void *v;
                bool got = (r & 2) ? cc_queue_pop(g_queue, &v) : cc_stack_pop(g_stack, &v);
                if (got) {
                    take(v);
                    local[n++] = v;
                }
            }
            ops++;
        }
        atomic_fetch_add_explicit(&g_ops, 256, memory_order_relaxed);
    }
    while (n > 0) {
        void *v = local[--n];
        give(v);
        CC_CHECK(cc_queue_push(g_queue, v));
    }
    (void)ops;
    return NULL;
}

static unsigned soak_seconds(void) {
    const char *s = getenv("CC_SOAK_SECONDS");
    unsigned long v = s ? strtoul(s, NULL, 10) : 5;
    return v ? (unsigned)v : 5;
}

static void test_soak(void **state) {
    (void)state;
    unsigned seconds = soak_seconds();
    cc_alloc_stats_enable(true);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_alloc_snapshot_t base = cc_alloc_stats_snapshot();
    g_queue = cc_queue_new();
    g_stack = cc_stack_new();
    assert_non_null(g_queue);
    assert_non_null(g_stack);
    for (uintptr_t x = 1; x <= VALUES; x++) {
        if (x % 2) assert_true(cc_queue_push(g_queue, (void *)x));
        else assert_true(cc_stack_push(g_stack, (void *)x));
    }
    uint64_t rss0 = reg_rss_bytes();
    uint64_t rss_bound = rss0 + (RSS_BOUND_MIB << 20);
    printf("soak: %u threads, %u values, %u s, backend %s, threshold %zu; bounds: RSS <= %.1f MiB "
           "(baseline %.1f + %llu), pending <= %llu (SMR's own figure 3 x %u x %zu = %zu while all "
           "threads progress)\n",
           THREADS, VALUES, seconds, cc_alloc_backend(), cc_config_retire_threshold(), rss_bound / 1048576.0,
           rss0 / 1048576.0, RSS_BOUND_MIB, PENDING_BOUND, THREADS + 1, cc_config_retire_threshold(),
           3 * (THREADS + 1) * cc_config_retire_threshold());

    pthread_t th[THREADS];
    for (unsigned i = 0; i < THREADS; i++) reg_spawn(&th[i], soak_thread, (void *)(uintptr_t)i);
    double t0 = reg_now();
    uint64_t max_rss = 0, max_pending = 0, samples = 0;
    const char *failure = NULL;
    while (reg_now() - t0 < seconds) {
        reg_sleep_ms(500);
        uint64_t rss = reg_rss_bytes();
        cc_smr_snapshot_t s = cc_smr_stats();
        samples++;
        if (rss > max_rss) max_rss = rss;
        if (s.pending > max_pending) max_pending = s.pending;
        /* live: the glue's blocks (nodes, pending ones included); commit:
         * what mimalloc has committed from the OS (mi_process_info). RSS far
         * above both is memory the allocator keeps resident but unused. */
        size_t commit = 0;
        mi_process_info(NULL, NULL, NULL, NULL, NULL, &commit, NULL, NULL);
        uint64_t live = cc_alloc_stats_snapshot().current_allocated;
        printf("soak: t=%5.1f s rss=%7.1f MiB live=%7.1f MiB commit=%7.1f MiB pending=%8llu stalled=%llu "
               "epoch=%llu ops=%llu\n",
               reg_now() - t0, rss / 1048576.0, live / 1048576.0, commit / 1048576.0, (unsigned long long)s.pending,
               (unsigned long long)s.stalled_threads, (unsigned long long)s.epoch,
               (unsigned long long)atomic_load(&g_ops));
        if (rss > rss_bound) {
            failure = "RSS above its bound";
            break;
        }
        if (s.pending > PENDING_BOUND) {
            failure = "pending above its bound";
            break;
        }
    }
    atomic_store(&g_stop, 1);
    for (unsigned i = 0; i < THREADS; i++) reg_join(th[i]);
    double elapsed = reg_now() - t0;
    cc_smr_snapshot_t s = cc_smr_stats();
    printf("soak: done after %.1f s: %llu samples, max RSS %.1f MiB (baseline %.1f), max sampled pending "
           "%llu, peak_pending %llu, %llu ops (%.2f M ops/s), retired %llu\n",
           elapsed, (unsigned long long)samples, max_rss / 1048576.0, rss0 / 1048576.0,
           (unsigned long long)max_pending, (unsigned long long)s.peak_pending,
           (unsigned long long)atomic_load(&g_ops), atomic_load(&g_ops) / elapsed / 1e6,
           (unsigned long long)s.retired);
    if (failure) fail_msg("%s", failure);

    /* Every value exactly once. */
    static unsigned char seen[VALUES];
    void *v;
    size_t count = 0;
    while (cc_queue_pop(g_queue, &v) || cc_stack_pop(g_stack, &v)) {
        uintptr_t x = (uintptr_t)v;
        assert_true(x >= 1 && x <= VALUES);
        if (seen[x - 1]++) fail_msg("value %lu found twice", (unsigned long)x);
        assert_int_equal(atomic_load(&g_held[x - 1]), 0);
        count++;
    }
    if (count != VALUES) {
        for (unsigned x = 0; x < VALUES; x++)
            if (!seen[x]) fail_msg("value %u lost (%zu of %u found)", x + 1, count, VALUES);
    }
    cc_queue_destroy(g_queue);
    cc_stack_destroy(g_stack);
    assert_int_equal(cc_smr_barrier(), 0);
    s = cc_smr_stats();
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.orphaned, 0);
    cc_alloc_snapshot_t a = cc_alloc_stats_snapshot();
    assert_int_equal(a.current_blocks, base.current_blocks);
    assert_int_equal(a.current_allocated, base.current_allocated);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_soak)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
