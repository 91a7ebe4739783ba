/*
 * Thread churn (issue 6): 1,000 short-lived threads (at most 32 alive at once,
 * started as soon as a slot frees, so registration and exit overlap) each
 * allocate nodes of varied sizes with cc_alloc_node, retire them through SMR
 * with a counting free function (inside and outside sections), push/pop the
 * shared queue a little, and exit with nodes still in their limbo bags. Four
 * long-lived threads run push/pop on the same queue the whole time. Halfway
 * through, the retire threshold drops to 2 (every other retire scans).
 *
 * Checked afterwards:
 *  - every node freed exactly once, with the size it was retired with and its
 *    payload intact (per-node flag array; a double free or early free/reuse
 *    shows up as a count != 1 or a corrupt pattern);
 *  - every queue value popped exactly once (a per-value flag checked at each
 *    pop catches a duplicate at once; the final drain catches a loss);
 *  - SMR records are reused (threads <= live threads), nothing pending or
 *    orphaned after the barrier;
 *  - cc_alloc_stats_snapshot back to the baseline taken with stats enabled.
 *
 * Compared with tests/smr/test_smr_churn.c: 2.5x the threads, twice the
 * concurrency, overlapping start/exit instead of batches, long-lived queue
 * threads reclaiming orphans concurrently, varied node sizes, a threshold
 * change under load.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "reg_test.h"

#include <stdatomic.h>

#define MAX_THREADS 1000u
#define NODES_PER_THREAD 64u
#define MAX_ALIVE 32u
#define QUEUE_THREADS 4u
#define QCAP (1u << 22) /* distinct queue values; afterwards values recirculate */
#define MAGIC 0x5EED1234u

typedef struct {
    uint32_t id;
    uint32_t magic;
    unsigned char payload[];
} cnode_t;

static _Atomic unsigned char g_node_freed[MAX_THREADS * NODES_PER_THREAD];
static _Atomic unsigned char g_qpopped[QCAP]; /* 1 while popped (held), 0 while in the queue */
static _Atomic uint32_t g_next_value;
static _Atomic uint64_t g_freed_calls;
static _Atomic int g_stop;
static cc_queue_t *g_queue;

static size_t node_size(uint32_t id) { return sizeof(cnode_t) + 8 + (id % 13u) * 16; }

static void cnode_free(void *p, size_t size) {
    cnode_t *n = p;
    CC_CHECK(n->magic == MAGIC);
    CC_CHECK(n->id < MAX_THREADS * NODES_PER_THREAD);
    CC_CHECK(size == node_size(n->id));
    for (size_t i = 0; i < size - sizeof(cnode_t); i++) CC_CHECK(n->payload[i] == (unsigned char)(n->id + i));
    n->magic = 0xDEADu;
    CC_CHECK(atomic_fetch_add(&g_node_freed[n->id], 1) == 0); /* a second free: caught here */
    atomic_fetch_add(&g_freed_calls, 1);
    cc_free(p, size);
}

/* Queue values are 1..QCAP (never NULL). */
static void mark_popped(void *v) {
    uintptr_t x = (uintptr_t)v;
    CC_CHECK(x >= 1 && x <= QCAP);
    CC_CHECK(atomic_exchange(&g_qpopped[x - 1], 1) == 0); /* popped twice: caught here */
}

/* Pushes a new value, or re-pushes `held` once the value space is used up. */
static void push_value(void *held) {
    void *v = held;
    if (v == NULL) {
        uint32_t x = atomic_fetch_add(&g_next_value, 1);
        if (x >= QCAP) return;
        v = (void *)(uintptr_t)(x + 1);
    } else {
        atomic_store(&g_qpopped[(uintptr_t)v - 1], 0);
    }
    CC_CHECK(cc_queue_push(g_queue, v));
}

static void *queue_thread(void *arg) {
    uint64_t seed = 0x9E3779B97F4A7C15ull * ((uintptr_t)arg + 1);
    void *held = NULL;
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        size_t size = cc_queue_size(g_queue);
        bool push = size < 64 ? true : size > 4096 ? false : (reg_rand(&seed) & 1);
        if (push) {
            bool fresh = atomic_load_explicit(&g_next_value, memory_order_relaxed) < QCAP;
            if (fresh) push_value(NULL);
            else if (held) {
                push_value(held);
                held = NULL;
            }
        } else {
            void *v;
            if (cc_queue_pop(g_queue, &v)) {
                mark_popped(v);
                if (held) push_value(held); /* keep at most one value out of the queue */
                held = v;
            }
        }
    }
    if (held) push_value(held);
    return NULL;
}

static void *churn_thread(void *arg) {
    uint32_t t = (uint32_t)(uintptr_t)arg;
    for (uint32_t i = 0; i < NODES_PER_THREAD; i++) {
        uint32_t id = t * NODES_PER_THREAD + i;
        size_t size = node_size(id);
        cnode_t *n = cc_alloc_node(size);
        CC_CHECK(n != NULL);
        CC_CHECK(((uintptr_t)n & (CC_CACHE_LINE_SIZE - 1)) == 0);
        n->id = id;
        n->magic = MAGIC;
        for (size_t k = 0; k < size - sizeof(cnode_t); k++) n->payload[k] = (unsigned char)(id + k);
        switch (i % 3) {
        case 0:
            cc_smr_retire(n, size, cnode_free);
            break;
        case 1:
            cc_smr_enter();
            cc_smr_retire(n, size, cnode_free);
            cc_smr_exit();
            break;
        default: /* nested sections */
            cc_smr_enter();
            cc_smr_enter();
            cc_smr_retire(n, size, cnode_free);
            cc_smr_exit();
            cc_smr_exit();
            break;
        }
        if (i % 8 == 0) {
            push_value(NULL);
            void *v;
            if (cc_queue_pop(g_queue, &v)) {
                mark_popped(v);
                push_value(v);
            }
        }
        if (t % 11 == 0 && i == NODES_PER_THREAD / 2) cc_smr_poll();
    }
    return NULL; /* leaves its last bags to the orphan list */
}

static void test_thread_churn(void **state) {
    (void)state;
    const size_t threshold0 = cc_config_retire_threshold();
    cc_alloc_stats_enable(true);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_alloc_snapshot_t base = cc_alloc_stats_snapshot();
    cc_smr_snapshot_t s0 = cc_smr_stats();
    unsigned nthreads = reg_scale(MAX_THREADS, 200);
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;

    double t0 = reg_now();
    g_queue = cc_queue_new();
    assert_non_null(g_queue);
    pthread_t qth[QUEUE_THREADS];
    for (unsigned i = 0; i < QUEUE_THREADS; i++) reg_spawn(&qth[i], queue_thread, (void *)(uintptr_t)i);

    pthread_t ring[MAX_ALIVE];
    unsigned started = 0, joined = 0;
    uint64_t max_threads_seen = 0;
    while (started < nthreads) {
        if (started - joined == MAX_ALIVE) { /* join the oldest, start the next in its slot */
            reg_join(ring[joined % MAX_ALIVE]);
            joined++;
        }
        if (started == nthreads / 2) assert_int_equal(cc_config_set_retire_threshold(2), 0);
        reg_spawn(&ring[started % MAX_ALIVE], churn_thread, (void *)(uintptr_t)started);
        started++;
        if (started % 64 == 0) {
            cc_smr_snapshot_t s = cc_smr_stats();
            if (s.threads > max_threads_seen) max_threads_seen = s.threads;
        }
    }
    while (joined < started) {
        reg_join(ring[joined % MAX_ALIVE]);
        joined++;
    }
    double t_churn = reg_now() - t0;
    cc_smr_snapshot_t s = cc_smr_stats();
    /* Records of exited threads are reused: main + 4 queue threads are live. */
    printf("churn: %u threads done in %.2f s; smr threads now %llu (max sampled %llu), pending %llu, "
           "orphaned %llu, peak_pending %llu\n",
           nthreads, t_churn, (unsigned long long)s.threads, (unsigned long long)max_threads_seen,
           (unsigned long long)s.pending, (unsigned long long)s.orphaned, (unsigned long long)s.peak_pending);
    assert_true(s.threads <= 1 + QUEUE_THREADS);
    assert_true(max_threads_seen <= 1 + QUEUE_THREADS + MAX_ALIVE);

    /* Let the queue threads run a little longer on their own, then stop. */
    reg_sleep_ms(200);
    atomic_store(&g_stop, 1);
    for (unsigned i = 0; i < QUEUE_THREADS; i++) reg_join(qth[i]);
    assert_int_equal(cc_config_set_retire_threshold(threshold0), 0);

    /* Queue: every value ever pushed is popped exactly once. */
    void *v;
    while (cc_queue_pop(g_queue, &v)) {
        uintptr_t x = (uintptr_t)v;
        assert_true(x >= 1 && x <= QCAP);
        if (atomic_exchange(&g_qpopped[x - 1], 1) != 0) fail_msg("queue value %lu popped twice", (unsigned long)x);
    }
    uint32_t nvalues = atomic_load(&g_next_value);
    if (nvalues > QCAP) nvalues = QCAP;
    for (uint32_t x = 0; x < nvalues; x++)
        if (atomic_load(&g_qpopped[x]) != 1) fail_msg("queue value %u lost", x + 1);
    assert_int_equal(cc_queue_size(g_queue), 0);

    /* Nodes: after the barrier, every one freed exactly once. */
    assert_int_equal(cc_smr_barrier(), 0);
    unsigned nnodes = nthreads * NODES_PER_THREAD;
    for (unsigned i = 0; i < nnodes; i++)
        if (atomic_load(&g_node_freed[i]) != 1)
            fail_msg("node %u freed %u times", i, (unsigned)atomic_load(&g_node_freed[i]));
    assert_int_equal(atomic_load(&g_freed_calls), nnodes);
    s = cc_smr_stats();
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.orphaned, 0);
    assert_int_equal(s.stalled_threads, 0);
    assert_true(s.retired - s0.retired >= nnodes);

    cc_queue_destroy(g_queue);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_alloc_snapshot_t a = cc_alloc_stats_snapshot();
    printf("churn: %u nodes freed once each; %u queue values exactly once; alloc_count +%llu, "
           "current_blocks %llu (baseline %llu), current_allocated %llu (baseline %llu); total %.2f s\n",
           nnodes, nvalues, (unsigned long long)(a.alloc_count - base.alloc_count),
           (unsigned long long)a.current_blocks, (unsigned long long)base.current_blocks,
           (unsigned long long)a.current_allocated, (unsigned long long)base.current_allocated, reg_now() - t0);
    assert_int_equal(a.current_blocks, base.current_blocks);
    assert_int_equal(a.current_allocated, base.current_allocated);
    assert_int_equal(a.alloc_count - base.alloc_count, a.free_count - base.free_count);
    assert_int_equal(cc_smr_stats().pending, 0);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_thread_churn)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
