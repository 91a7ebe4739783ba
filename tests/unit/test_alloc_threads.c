/*
 * Concurrency tests of the glue's statistics with real threads (more threads
 * than the machine's cores): per-thread counters must add up exactly once the
 * threads are joined, whoever frees a block and whenever a thread exits.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cc/alloc.h>
#include "cc_test.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static unsigned scale(unsigned n) {
    /* The debug backend serialises on one lock; keep its runs short. */
    return strcmp(cc_alloc_backend(), "debug") == 0 ? n / 8 : n;
}

static int setup(void **state) {
    (void)state;
    cc_alloc_stats_enable(true);
    return 0;
}

/* ---- 8 threads, each allocating and freeing its own blocks --------------- */

typedef struct {
    unsigned rounds;
    uint64_t allocs;
} local_arg_t;

static void *local_worker(void *p) {
    local_arg_t *a = p;
    void *blocks[64];
    size_t sizes[64];
    unsigned seed = (unsigned)(uintptr_t)p;
    for (unsigned r = 0; r < a->rounds; r++) {
        for (int i = 0; i < 64; i++) {
            sizes[i] = 1 + (size_t)(rand_r(&seed) % 600);
            switch (i % 3) {
            case 0: blocks[i] = cc_alloc(sizes[i]); break;
            case 1: blocks[i] = cc_alloc_node(sizes[i]); break;
            default: blocks[i] = cc_calloc(1, sizes[i]); break;
            }
            CC_CHECK(blocks[i] != NULL);
            a->allocs++;
        }
        for (int i = 0; i < 64; i++) {
            if (i % 2) cc_free(blocks[i], sizes[i]);
            else cc_free_unsized(blocks[i]);
        }
    }
    return NULL;
}

static void test_eight_threads_exact_after_join(void **state) {
    (void)state;
    enum { T = 8 };
    pthread_t th[T];
    local_arg_t args[T];
    cc_alloc_stats_reset();
    for (int i = 0; i < T; i++) {
        args[i] = (local_arg_t){scale(2000), 0};
        assert_int_equal(pthread_create(&th[i], NULL, local_worker, &args[i]), 0);
    }
    /* Snapshots while the threads run must keep their invariants. */
    for (int k = 0; k < 200; k++) {
        cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
        assert_true(s.current_blocks <= (uint64_t)T * 64); /* at most 64 live per thread */
    }
    uint64_t total = 0;
    for (int i = 0; i < T; i++) {
        pthread_join(th[i], NULL);
        total += args[i].allocs;
    }
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    assert_int_equal(s.alloc_count, total);
    assert_int_equal(s.free_count, total);
    assert_int_equal(s.alloc_bytes, s.free_bytes);
    assert_int_equal(s.current_allocated, 0);
}

/* ---- cross-thread free: producers allocate, consumers free ---------------- */

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    void *ring[256];
    size_t sizes[256];
    unsigned head, tail, producers_left;
} handoff_t;

static handoff_t hq;
static unsigned per_producer;

static void *producer(void *arg) {
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (unsigned i = 0; i < per_producer; i++) {
        size_t n = 1 + (size_t)(rand_r(&seed) % 300);
        void *p = (i % 2) ? cc_alloc_node(n) : cc_alloc(n);
        CC_CHECK(p != NULL);
        memset(p, 0x11, n);
        pthread_mutex_lock(&hq.mu);
        while (hq.tail - hq.head == 256) pthread_cond_wait(&hq.not_full, &hq.mu);
        hq.ring[hq.tail % 256] = p;
        hq.sizes[hq.tail % 256] = n;
        hq.tail++;
        pthread_cond_signal(&hq.not_empty);
        pthread_mutex_unlock(&hq.mu);
    }
    pthread_mutex_lock(&hq.mu);
    hq.producers_left--;
    pthread_cond_broadcast(&hq.not_empty);
    pthread_mutex_unlock(&hq.mu);
    return NULL;
}

static void *consumer(void *arg) {
    uint64_t *freed = arg;
    for (;;) {
        pthread_mutex_lock(&hq.mu);
        while (hq.tail == hq.head && hq.producers_left > 0) pthread_cond_wait(&hq.not_empty, &hq.mu);
        if (hq.tail == hq.head) {
            pthread_mutex_unlock(&hq.mu);
            return NULL;
        }
        void *p = hq.ring[hq.head % 256];
        size_t n = hq.sizes[hq.head % 256];
        hq.head++;
        pthread_cond_signal(&hq.not_full);
        pthread_mutex_unlock(&hq.mu);
        if (*freed % 2) cc_free(p, n);
        else cc_free_unsized(p);
        (*freed)++;
    }
}

static void run_cross_thread(unsigned producers, unsigned consumers) {
    pthread_t th[64];
    uint64_t freed[64] = {0};
    memset(&hq, 0, sizeof hq);
    pthread_mutex_init(&hq.mu, NULL);
    pthread_cond_init(&hq.not_empty, NULL);
    pthread_cond_init(&hq.not_full, NULL);
    hq.producers_left = producers;
    per_producer = scale(40000);
    cc_alloc_stats_reset();
    for (unsigned i = 0; i < producers; i++)
        assert_int_equal(pthread_create(&th[i], NULL, producer, (void *)(uintptr_t)(i + 1)), 0);
    for (unsigned i = 0; i < consumers; i++)
        assert_int_equal(pthread_create(&th[producers + i], NULL, consumer, &freed[i]), 0);
    for (unsigned i = 0; i < producers + consumers; i++) pthread_join(th[i], NULL);
    uint64_t total_freed = 0;
    for (unsigned i = 0; i < consumers; i++) total_freed += freed[i];
    assert_int_equal(total_freed, (uint64_t)producers * per_producer);
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    assert_int_equal(s.alloc_count, (uint64_t)producers * per_producer);
    assert_int_equal(s.free_count, s.alloc_count);
    assert_int_equal(s.free_bytes, s.alloc_bytes);
    assert_int_equal(s.current_allocated, 0);
}

static void test_cross_thread_4x4(void **state) {
    (void)state;
    run_cross_thread(4, 4);
}

static void test_cross_thread_16(void **state) {
    (void)state;
    run_cross_thread(8, 8);
}

/* ---- threads that exit before the snapshot ------------------------------------ */

enum { EXIT_THREADS = 32, EXIT_BLOCKS = 100 };
static void *left_behind[EXIT_THREADS][EXIT_BLOCKS];

static void *exiting_worker(void *arg) {
    size_t t = (size_t)(uintptr_t)arg;
    for (int i = 0; i < EXIT_BLOCKS; i++) left_behind[t][i] = cc_alloc(32 + (size_t)i);
    /* free half here; the main thread frees the rest after this thread is gone */
    for (int i = 0; i < EXIT_BLOCKS; i += 2) {
        cc_free(left_behind[t][i], 32 + (size_t)i);
        left_behind[t][i] = NULL;
    }
    return NULL;
}

static void test_exited_threads_keep_their_counts(void **state) {
    (void)state;
    cc_alloc_stats_reset();
    for (int round = 0; round < 4; round++) {
        pthread_t th[EXIT_THREADS / 4];
        for (int i = 0; i < EXIT_THREADS / 4; i++) {
            size_t t = (size_t)round * (EXIT_THREADS / 4) + (size_t)i;
            assert_int_equal(pthread_create(&th[i], NULL, exiting_worker, (void *)(uintptr_t)t), 0);
        }
        for (int i = 0; i < EXIT_THREADS / 4; i++) pthread_join(th[i], NULL);
    }
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    assert_int_equal(s.alloc_count, EXIT_THREADS * EXIT_BLOCKS);
    assert_int_equal(s.free_count, EXIT_THREADS * EXIT_BLOCKS / 2);
    uint64_t live = 0;
    for (int t = 0; t < EXIT_THREADS; t++)
        for (int i = 1; i < EXIT_BLOCKS; i += 2) live += cc_alloc_usable_size(left_behind[t][i]);
    assert_int_equal(s.current_allocated, live);
    for (int t = 0; t < EXIT_THREADS; t++)
        for (int i = 1; i < EXIT_BLOCKS; i += 2) cc_free_unsized(left_behind[t][i]);
    s = cc_alloc_stats_snapshot();
    assert_int_equal(s.free_count, s.alloc_count);
    assert_int_equal(s.current_allocated, 0);
}

/* ---- toggling statistics while threads work ---------------------------------- */

static atomic_bool stop_toggling;

static void *toggler(void *arg) {
    (void)arg;
    while (!atomic_load(&stop_toggling)) {
        cc_alloc_stats_enable(false);
        cc_alloc_stats_enable(true);
        (void)cc_alloc_stats_snapshot();
    }
    return NULL;
}

static void test_toggle_while_working(void **state) {
    (void)state;
    enum { T = 6 };
    pthread_t th[T], tg;
    local_arg_t args[T];
    atomic_store(&stop_toggling, false);
    assert_int_equal(pthread_create(&tg, NULL, toggler, NULL), 0);
    for (int i = 0; i < T; i++) {
        args[i] = (local_arg_t){scale(500), 0};
        assert_int_equal(pthread_create(&th[i], NULL, local_worker, &args[i]), 0);
    }
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    atomic_store(&stop_toggling, true);
    pthread_join(tg, NULL);
    cc_alloc_stats_enable(true);
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    assert_int_equal(s.current_blocks, 0); /* every block freed, whatever the toggling */
    assert_int_equal(s.current_allocated, 0);
    /* With counting on again and nothing running, counts are exact. */
    cc_alloc_stats_reset();
    args[0] = (local_arg_t){10, 0};
    local_worker(&args[0]);
    s = cc_alloc_stats_snapshot();
    assert_int_equal(s.alloc_count, args[0].allocs);
    assert_int_equal(s.free_count, args[0].allocs);
    assert_int_equal(s.current_allocated, 0);
}

/* ---- snapshots racing a producer/consumer pair (issue 12) -------------------- */

/* A producer allocates 64 B blocks and hands them through a single-producer
 * single-consumer ring to a consumer that frees them, while the test thread
 * takes snapshots in a loop. A snapshot reads the threads' counters one after
 * the other, so it may see the consumer's frees of blocks whose allocations
 * it read before they happened. The consumer is created first (the registry
 * lists newest threads first, so the producer is read first): that is the
 * order that shows frees ahead of allocations; a thread registers at its
 * first counted call, so the consumer makes one before the producer starts. A snapshot must not write
 * that skew into shared state: once both threads are joined the counts must
 * be exact. (Bug: every such snapshot raised the shared free baseline, and
 * free_count stayed short of alloc_count for good.) */
enum { RING = 16 };
static struct {
    void *slot[RING];
    _Atomic uint64_t head, tail; /* head: next to free; tail: next to fill */
    atomic_bool consumer_ready, producer_done;
    uint64_t blocks;
} pc;

static void *pc_producer(void *arg) {
    (void)arg;
    for (uint64_t i = 0; i < pc.blocks; i++) {
        void *p = cc_alloc(64);
        CC_CHECK(p != NULL);
        /* acquire: the slot we overwrite was read by the consumer (its
         * release store of head) */
        while (i - atomic_load_explicit(&pc.head, memory_order_acquire) == RING) sched_yield();
        pc.slot[i % RING] = p;
        /* release: publishes the slot to the consumer */
        atomic_store_explicit(&pc.tail, i + 1, memory_order_release);
    }
    atomic_store(&pc.producer_done, true);
    return NULL;
}

static void *pc_consumer(void *arg) {
    (void)arg;
    /* Register this thread's counters (a thread registers at its first
     * counted call) before the producer exists: see above. */
    cc_free(cc_alloc(64), 64);
    atomic_store(&pc.consumer_ready, true);
    for (uint64_t i = 0; i < pc.blocks; i++) {
        /* acquire: pairs with the producer's release of tail (the slot) */
        while (atomic_load_explicit(&pc.tail, memory_order_acquire) == i) sched_yield();
        cc_free(pc.slot[i % RING], 64);
        /* release: our read of the slot happens before the producer reuses it */
        atomic_store_explicit(&pc.head, i + 1, memory_order_release);
    }
    return NULL;
}

static void test_snapshots_racing_producer_consumer(void **state) {
    (void)state;
    pthread_t prod, cons;
    atomic_store(&pc.head, 0);
    atomic_store(&pc.tail, 0);
    atomic_store(&pc.producer_done, false);
    atomic_store(&pc.consumer_ready, false);
    pc.blocks = scale(1000000);
    cc_alloc_stats_reset();
    assert_int_equal(pthread_create(&cons, NULL, pc_consumer, NULL), 0);
    while (!atomic_load(&pc.consumer_ready)) sched_yield();
    assert_int_equal(pthread_create(&prod, NULL, pc_producer, NULL), 0);
    uint64_t snapshots = 0;
    while (!atomic_load(&pc.producer_done)) {
        cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
        /* live counts are clamped in the copy, never "negative" */
        assert_true(s.current_blocks <= pc.blocks + 1);
        snapshots++;
    }
    pthread_join(prod, NULL);
    pthread_join(cons, NULL);
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    if (s.alloc_count != pc.blocks + 1 || s.free_count != pc.blocks + 1)
        fail_msg("after %llu snapshots: alloc_count=%llu free_count=%llu current_blocks=%llu (want %llu, %llu, 0)",
                 (unsigned long long)snapshots, (unsigned long long)s.alloc_count,
                 (unsigned long long)s.free_count, (unsigned long long)s.current_blocks,
                 (unsigned long long)pc.blocks + 1, (unsigned long long)pc.blocks + 1);
    assert_int_equal(s.alloc_bytes, s.free_bytes);
    assert_int_equal(s.current_allocated, 0);
    assert_int_equal(s.current_blocks, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eight_threads_exact_after_join),
        cmocka_unit_test(test_cross_thread_4x4),
        cmocka_unit_test(test_cross_thread_16),
        cmocka_unit_test(test_exited_threads_keep_their_counts),
        cmocka_unit_test(test_toggle_while_working),
        cmocka_unit_test(test_snapshots_racing_producer_consumer),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
