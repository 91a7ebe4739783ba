/*
 * Thread churn: hundreds of short-lived threads retire nodes (and push/pop a
 * shared stack and queue) and exit, some of them inside a section. Their
 * pending nodes go to the orphan list; after the barrier every node has been
 * freed exactly once (per-node flags), nothing is pending or orphaned, and the
 * glue's current_allocated is back to its baseline.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cc/queue.h>
#include <cc/stack.h>
#include "smr_test.h"

#include <stdatomic.h>

#define PER_THREAD 40
#define MAX_THREADS 400
#define CONCURRENT 16

typedef struct {
    uint32_t id;
    uint32_t magic;
} cnode_t;

static _Atomic unsigned char g_freed[MAX_THREADS * PER_THREAD];
static cc_stack_t *g_stack;
static cc_queue_t *g_queue;

static void cnode_free(void *p, size_t size) {
    cnode_t *n = p;
    CC_CHECK(size == sizeof(cnode_t));
    CC_CHECK(n->magic == 0xABCD1234u);
    CC_CHECK(n->id < MAX_THREADS * PER_THREAD);
    n->magic = 0;
    atomic_fetch_add(&g_freed[n->id], 1);
    cc_free(p, size);
}

static void *short_thread(void *arg) {
    unsigned t = (unsigned)(uintptr_t)arg;
    void *v;
    for (unsigned i = 0; i < PER_THREAD; i++) {
        cnode_t *n = cc_alloc_node(sizeof *n);
        CC_CHECK(n != NULL);
        n->id = t * PER_THREAD + i;
        n->magic = 0xABCD1234u;
        if (i % 2) {
            cc_smr_enter();
            cc_smr_retire(n, sizeof *n, cnode_free);
            cc_smr_exit();
        } else {
            cc_smr_retire(n, sizeof *n, cnode_free);
        }
        CC_CHECK(cc_stack_push(g_stack, (void *)(uintptr_t)i));
        CC_CHECK(cc_queue_push(g_queue, (void *)(uintptr_t)i));
        if (i % 3 == 0) {
            cc_stack_pop(g_stack, &v);
            cc_queue_pop(g_queue, &v);
        }
        if (t % 7 == 0 && i == PER_THREAD / 2) cc_smr_poll();
    }
    if (t % 5 == 0) cc_smr_enter(); /* exits inside a section: must not pin forever */
    return NULL;
}

static void test_churn(void **state) {
    (void)state;
    cc_alloc_stats_enable(true);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_alloc_snapshot_t base = cc_alloc_stats_snapshot();
    g_stack = cc_stack_new();
    g_queue = cc_queue_new();
    assert_non_null(g_stack);
    assert_non_null(g_queue);
    unsigned nthreads = smr_scale(MAX_THREADS * 8) / 8;
    if (nthreads < 100) nthreads = 100;
    if (nthreads > MAX_THREADS) nthreads = MAX_THREADS;
    pthread_t th[CONCURRENT];
    unsigned started = 0;
    while (started < nthreads) {
        unsigned k = 0;
        for (; k < CONCURRENT && started < nthreads; k++, started++)
            smr_spawn(&th[k], short_thread, (void *)(uintptr_t)started);
        for (unsigned j = 0; j < k; j++) smr_join(th[j]);
    }
    cc_smr_snapshot_t s = cc_smr_stats();
    assert_true(s.threads <= CONCURRENT + 1); /* records are reused, not leaked */
    assert_int_equal(s.stalled_threads, 0);    /* threads that died in a section do not count */
    assert_int_equal(cc_smr_barrier(), 0);
    for (unsigned i = 0; i < nthreads * PER_THREAD; i++) {
        if (atomic_load(&g_freed[i]) != 1) fail_msg("node %u freed %u times", i, (unsigned)atomic_load(&g_freed[i]));
    }
    s = cc_smr_stats();
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.orphaned, 0);
    cc_stack_destroy(g_stack);
    cc_queue_destroy(g_queue);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_alloc_snapshot_t a = cc_alloc_stats_snapshot();
    assert_int_equal(a.current_allocated, base.current_allocated);
    assert_int_equal(a.current_blocks, base.current_blocks);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_churn)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
