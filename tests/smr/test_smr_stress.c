/*
 * Stress: 4-16 threads (more than the machine's cores) on the stack and the
 * queue. Every value pushed is popped exactly once; the queue keeps
 * per-producer FIFO order as seen by each consumer; after destroy + barrier
 * the glue's current_allocated is back to its baseline. A bounded-memory run
 * checks that `pending` stays below the documented bound (3 x threads x
 * threshold) under sustained push/pop.
 *
 * With -DCC_SMR_BROKEN_FREE_ON_RETIRE=ON popped nodes are freed while other
 * poppers still read them: ASan reports a use-after-free (system and debug
 * backends), and reused nodes break the exactly-once / FIFO checks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cc/queue.h>
#include <cc/stack.h>
#include "smr_test.h"

#include <stdatomic.h>
#include <stdio.h>

static _Atomic unsigned char *g_seen;
static unsigned g_iters;
static _Atomic int g_done_producers;

static void see(uintptr_t v, uintptr_t limit) {
    CC_CHECK(v >= 1 && v <= limit);
    unsigned char prev = atomic_fetch_add_explicit(&g_seen[v - 1], 1, memory_order_relaxed);
    if (prev != 0) {
        fprintf(stderr, "value %lu popped twice\n", (unsigned long)v);
        abort();
    }
}

static void check_all_seen(uintptr_t n) {
    for (uintptr_t i = 0; i < n; i++)
        if (atomic_load(&g_seen[i]) != 1) fail_msg("value %lu popped %u times", (unsigned long)i + 1, (unsigned)atomic_load(&g_seen[i]));
}

/* ---- stack -------------------------------------------------------------------- */

static cc_stack_t *g_stack;
static unsigned g_nthreads;

static void *stack_worker(void *arg) {
    uintptr_t t = (uintptr_t)arg, limit = (uintptr_t)g_nthreads * g_iters;
    void *v;
    for (unsigned i = 0; i < g_iters; i++) {
        CC_CHECK(cc_stack_push(g_stack, (void *)(t * g_iters + i + 1)));
        if (i % 4 == 3) { /* bursts keep the stack non-empty and the CAS contended */
            for (int k = 0; k < 4; k++)
                if (cc_stack_pop(g_stack, &v)) see((uintptr_t)v, limit);
        }
    }
    return NULL;
}

static void run_stack(unsigned nthreads, unsigned iters) {
    cc_alloc_stats_enable(true);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_alloc_snapshot_t base = cc_alloc_stats_snapshot();
    g_nthreads = nthreads;
    g_iters = iters;
    uintptr_t n = (uintptr_t)nthreads * iters;
    g_seen = calloc(n, 1);
    assert_non_null(g_seen);
    g_stack = cc_stack_new();
    assert_non_null(g_stack);
    pthread_t th[16];
    for (unsigned t = 0; t < nthreads; t++) smr_spawn(&th[t], stack_worker, (void *)(uintptr_t)t);
    for (unsigned t = 0; t < nthreads; t++) smr_join(th[t]);
    void *v;
    size_t left = cc_stack_size(g_stack);
    size_t popped = 0;
    while (cc_stack_pop(g_stack, &v)) {
        see((uintptr_t)v, n);
        popped++;
    }
    assert_int_equal(popped, left); /* size is exact once quiescent */
    check_all_seen(n);
    cc_stack_destroy(g_stack);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_smr_snapshot_t s = cc_smr_stats();
    assert_int_equal(s.pending, 0);
    assert_true(s.retired >= n);
    cc_alloc_snapshot_t a = cc_alloc_stats_snapshot();
    assert_int_equal(a.current_allocated, base.current_allocated);
    assert_int_equal(a.current_blocks, base.current_blocks);
    free((void *)g_seen);
}

static void test_stack_4(void **state) { (void)state; run_stack(4, smr_scale(100000)); }
static void test_stack_16(void **state) { (void)state; run_stack(16, smr_scale(25000)); }

/* ---- queue -------------------------------------------------------------------- */

static cc_queue_t *g_queue;
static unsigned g_producers;

#define SEQ_BITS 24
static uintptr_t encode(uintptr_t p, uintptr_t seq) { return (p << SEQ_BITS | seq) + 1; }

static void *producer(void *arg) {
    uintptr_t p = (uintptr_t)arg;
    for (unsigned i = 0; i < g_iters; i++) CC_CHECK(cc_queue_push(g_queue, (void *)encode(p, i)));
    atomic_fetch_add(&g_done_producers, 1);
    return NULL;
}

typedef struct {
    long last[16];
    unsigned long got;
} consumer_t;

static void consume(consumer_t *c, uintptr_t v) {
    v -= 1;
    uintptr_t p = v >> SEQ_BITS, seq = v & ((1u << SEQ_BITS) - 1);
    CC_CHECK(p < g_producers && seq < g_iters);
    CC_CHECK((long)seq > c->last[p]); /* per-producer FIFO */
    c->last[p] = (long)seq;
    see(p * g_iters + seq + 1, (uintptr_t)g_producers * g_iters);
    c->got++;
}

static void *consumer(void *arg) {
    consumer_t *c = arg;
    void *v;
    for (;;) {
        if (cc_queue_pop(g_queue, &v)) {
            consume(c, (uintptr_t)v);
        } else if (atomic_load(&g_done_producers) == (int)g_producers) {
            if (!cc_queue_pop(g_queue, &v)) break;
            consume(c, (uintptr_t)v);
        } else {
            sched_yield();
        }
    }
    return NULL;
}

/* Threads that both produce and consume. */
static void *prodcons(void *arg) {
    uintptr_t p = (uintptr_t)arg;
    consumer_t *c = calloc(1, sizeof *c);
    CC_CHECK(c != NULL);
    for (int i = 0; i < 16; i++) c->last[i] = -1;
    void *v;
    for (unsigned i = 0; i < g_iters; i++) {
        CC_CHECK(cc_queue_push(g_queue, (void *)encode(p, i)));
        if (i % 2 && cc_queue_pop(g_queue, &v)) consume(c, (uintptr_t)v);
    }
    free(c);
    return NULL;
}

static void run_queue(unsigned producers, unsigned consumers, unsigned iters, bool mixed) {
    cc_alloc_stats_enable(true);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_alloc_snapshot_t base = cc_alloc_stats_snapshot();
    g_producers = producers;
    g_iters = iters;
    atomic_store(&g_done_producers, 0);
    uintptr_t n = (uintptr_t)producers * iters;
    g_seen = calloc(n, 1);
    assert_non_null(g_seen);
    g_queue = cc_queue_new();
    assert_non_null(g_queue);
    pthread_t pt[16], ct[16];
    consumer_t cs[16];
    memset(cs, 0, sizeof cs);
    for (unsigned c = 0; c < consumers; c++)
        for (int i = 0; i < 16; i++) cs[c].last[i] = -1;
    for (unsigned c = 0; c < consumers; c++) smr_spawn(&ct[c], consumer, &cs[c]);
    for (unsigned p = 0; p < producers; p++) smr_spawn(&pt[p], mixed ? prodcons : producer, (void *)(uintptr_t)p);
    for (unsigned p = 0; p < producers; p++) smr_join(pt[p]);
    if (mixed) atomic_store(&g_done_producers, (int)producers);
    for (unsigned c = 0; c < consumers; c++) smr_join(ct[c]);
    consumer_t mine;
    memset(&mine, 0, sizeof mine);
    for (int i = 0; i < 16; i++) mine.last[i] = -1;
    size_t left = cc_queue_size(g_queue);
    void *v;
    while (cc_queue_pop(g_queue, &v)) consume(&mine, (uintptr_t)v);
    assert_int_equal(mine.got, left); /* exact size when quiescent */
    assert_int_equal(cc_queue_size(g_queue), 0);
    check_all_seen(n);
    cc_queue_destroy(g_queue);
    assert_int_equal(cc_smr_barrier(), 0);
    assert_int_equal(cc_smr_stats().pending, 0);
    cc_alloc_snapshot_t a = cc_alloc_stats_snapshot();
    assert_int_equal(a.current_allocated, base.current_allocated);
    assert_int_equal(a.current_blocks, base.current_blocks);
    free((void *)g_seen);
}

static void test_queue_2p2c(void **state) { (void)state; run_queue(2, 2, smr_scale(150000), false); }
static void test_queue_8p8c(void **state) { (void)state; run_queue(8, 8, smr_scale(30000), false); }
static void test_queue_mixed_12(void **state) { (void)state; run_queue(12, 4, smr_scale(25000), true); }

/* ---- bounded memory ----------------------------------------------------------- */

/* The bound holds "while all threads make progress". On a shared 2-core
 * machine a worker can be preempted inside a section at any time, which is a
 * stall and pins memory by design; so the workers run in rounds separated by a
 * pthread barrier (everyone leaves its sections at each round end), and the
 * pending count is sampled at every round end. Each worker retires 2 x ROUND
 * nodes per round, and the bound must hold at every sample. */
#define BOUND_WORKERS 4
#define ROUND 32
static pthread_barrier_t g_round;
static unsigned g_rounds;
static uint64_t g_bound, g_maxp, g_over;

static void *bounded_worker(void *arg) {
    (void)arg;
    void *v;
    uintptr_t i = 0;
    for (unsigned r = 0; r < g_rounds; r++) {
        for (int k = 0; k < ROUND; k++) {
            CC_CHECK(cc_stack_push(g_stack, (void *)++i));
            CC_CHECK(cc_queue_push(g_queue, (void *)i));
        }
        for (int k = 0; k < ROUND; k++) {
            cc_stack_pop(g_stack, &v);
            cc_queue_pop(g_queue, &v);
        }
        cc_smr_idle(); /* about to wait: asymmetric mode must not count on us */
        if (pthread_barrier_wait(&g_round) == PTHREAD_BARRIER_SERIAL_THREAD) {
            uint64_t p = cc_smr_stats().pending;
            if (p > g_maxp) g_maxp = p;
            if (p > g_bound) g_over++;
        }
        pthread_barrier_wait(&g_round);
    }
    return NULL;
}

static void test_bounded_pending(void **state) {
    (void)state;
    const unsigned threshold = 64;
    assert_int_equal(cc_config_set_retire_threshold(threshold), 0);
    assert_int_equal(cc_smr_barrier(), 0);
    g_stack = cc_stack_new();
    g_queue = cc_queue_new();
    g_rounds = smr_scale(4000);
    g_bound = 3ull * BOUND_WORKERS * threshold; /* documented in src/smr_limbo.c */
    g_maxp = g_over = 0;
    uint64_t r0 = cc_smr_stats().retired;
    assert_int_equal(pthread_barrier_init(&g_round, NULL, BOUND_WORKERS), 0);
    pthread_t th[BOUND_WORKERS];
    for (unsigned t = 0; t < BOUND_WORKERS; t++) smr_spawn(&th[t], bounded_worker, NULL);
    for (unsigned t = 0; t < BOUND_WORKERS; t++) smr_join(th[t]);
    pthread_barrier_destroy(&g_round);
    cc_smr_snapshot_t s = cc_smr_stats();
    printf("bounded: %u rounds, max pending %lu (bound %lu, over %lu), peak_pending %lu, retired %lu\n",
           g_rounds, (unsigned long)g_maxp, (unsigned long)g_bound, (unsigned long)g_over,
           (unsigned long)s.peak_pending, (unsigned long)(s.retired - r0));
    assert_true(s.retired - r0 >= (uint64_t)g_rounds * BOUND_WORKERS * ROUND);
    assert_int_equal(g_over, 0);
    cc_stack_destroy(g_stack);
    cc_queue_destroy(g_queue);
    assert_int_equal(cc_config_set_retire_threshold(CC_RETIRE_THRESHOLD_DEFAULT), 0);
    assert_int_equal(cc_smr_barrier(), 0);
}

/* ---- readers traversing while writers retire ------------------------------ */

/* A test-local Treiber list whose nodes carry a magic word that the free
 * function poisons before cc_free. Readers walk the whole list inside a
 * section and check every node; writers pop (retire) and push continuously.
 * With working SMR no reader ever sees a poisoned or freed node; with
 * CC_SMR_BROKEN_FREE_ON_RETIRE they do within milliseconds (check fails, or
 * ASan reports the use-after-free where the allocator is instrumented). */
#define LIVE 0x11FE11FE11FE11FEull
#define DEAD 0xDEADDEADDEADDEADull
typedef struct tnode {
    _Atomic(struct tnode *) next;
    _Atomic uint64_t magic;
    uint64_t value;
} tnode_t;
static _Atomic(tnode_t *) g_list;
static _Atomic int g_writers_done;

static void tnode_free(void *p, size_t size) {
    tnode_t *n = p;
    CC_CHECK(size == sizeof(tnode_t));
    CC_CHECK(atomic_load_explicit(&n->magic, memory_order_relaxed) == LIVE);
    atomic_store_explicit(&n->magic, DEAD, memory_order_relaxed);
    cc_free(p, size);
}

static void tlist_push(uint64_t v) {
    tnode_t *n = cc_alloc_node(sizeof *n);
    CC_CHECK(n != NULL);
    atomic_store_explicit(&n->magic, LIVE, memory_order_relaxed);
    n->value = v;
    tnode_t *h = atomic_load_explicit(&g_list, memory_order_relaxed);
    do {
        atomic_store_explicit(&n->next, h, memory_order_relaxed);
    } while (!atomic_compare_exchange_weak_explicit(&g_list, &h, n, memory_order_release, memory_order_relaxed));
}

static void *tlist_writer(void *arg) {
    (void)arg;
    for (unsigned i = 0; i < g_iters; i++) {
        cc_smr_enter();
        tnode_t *h = atomic_load_explicit(&g_list, memory_order_acquire);
        while (h && !atomic_compare_exchange_weak_explicit(
                        &g_list, &h, atomic_load_explicit(&h->next, memory_order_relaxed),
                        memory_order_acquire, memory_order_acquire)) {
        }
        if (h) cc_smr_retire(h, sizeof *h, tnode_free);
        cc_smr_exit();
        tlist_push(i);
    }
    atomic_fetch_add(&g_writers_done, 1);
    return NULL;
}

static void *tlist_reader(void *arg) {
    unsigned writers = (unsigned)(uintptr_t)arg;
    unsigned long walks = 0;
    while (atomic_load(&g_writers_done) < (int)writers || walks < 10) {
        cc_smr_enter();
        for (tnode_t *n = atomic_load_explicit(&g_list, memory_order_acquire); n;
             n = atomic_load_explicit(&n->next, memory_order_acquire)) {
            if (atomic_load_explicit(&n->magic, memory_order_relaxed) != LIVE) {
                fprintf(stderr, "reader saw a freed node %p (magic %#llx)\n", (void *)n,
                        (unsigned long long)atomic_load_explicit(&n->magic, memory_order_relaxed));
                abort();
            }
        }
        cc_smr_exit();
        walks++;
    }
    return NULL;
}

static void test_readers_vs_retire(void **state) {
    (void)state;
    cc_alloc_stats_enable(true);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_alloc_snapshot_t base = cc_alloc_stats_snapshot();
    const unsigned writers = 3, readers = 3;
    g_iters = smr_scale(100000);
    atomic_store(&g_writers_done, 0);
    for (int i = 0; i < 64; i++) tlist_push((uint64_t)i);
    pthread_t w[3], r[3];
    for (unsigned i = 0; i < readers; i++) smr_spawn(&r[i], tlist_reader, (void *)(uintptr_t)writers);
    for (unsigned i = 0; i < writers; i++) smr_spawn(&w[i], tlist_writer, NULL);
    for (unsigned i = 0; i < writers; i++) smr_join(w[i]);
    for (unsigned i = 0; i < readers; i++) smr_join(r[i]);
    tnode_t *n = atomic_load(&g_list);
    unsigned left = 0;
    while (n) {
        tnode_t *next = atomic_load(&n->next);
        cc_smr_retire(n, sizeof *n, tnode_free);
        n = next;
        left++;
    }
    atomic_store(&g_list, NULL);
    assert_int_equal(left, 64);
    assert_int_equal(cc_smr_barrier(), 0);
    assert_int_equal(cc_alloc_stats_snapshot().current_allocated, base.current_allocated);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stack_4),        cmocka_unit_test(test_stack_16),
        cmocka_unit_test(test_queue_2p2c),     cmocka_unit_test(test_queue_8p8c),
        cmocka_unit_test(test_queue_mixed_12), cmocka_unit_test(test_bounded_pending),
        cmocka_unit_test(test_readers_vs_retire),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
