/*
 * SMR bookkeeping allocation failures never lose a retired node (issue 6).
 *
 * The limbo bags' chunks come from the C library's malloc. The internal hook
 * cc__smr_fail_chunk_alloc(every) (src/smr_internal.h) makes every `every`-th
 * chunk allocation fail. Under that, worker threads retire nodes (outside and
 * inside sections, with the stack and queue running too), while a reader
 * enters and leaves sections and some workers exit with pending nodes. The
 * retire path must fall back (cached chunks, recycling its safe bags, the
 * static reserve, finally waiting for the epoch and freeing synchronously)
 * and never abort or drop a node: after the barrier every node has been
 * freed exactly once, nothing is pending or orphaned, and the glue's
 * current_allocated is back to its baseline.
 *
 * Phases: every = 1 (every chunk allocation fails; retires outside sections,
 * so the synchronous fallback is allowed), then every = 3 and every = 2 with
 * half the retires inside a user section (no abort: cached and recycled
 * chunks and the reserve carry them).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cc/queue.h>
#include <cc/stack.h>
#include "smr_internal.h"
#include "smr_test.h"

#include <stdatomic.h>

#define WORKERS 4
#define MAX_PER_THREAD 4000u
#define ROUNDS 3

typedef struct {
    uint32_t id;
    uint32_t magic;
} fnode_t;

static _Atomic unsigned char g_freed[ROUNDS][WORKERS][MAX_PER_THREAD];
static _Atomic int g_stop;
static cc_stack_t *g_stack;
static cc_queue_t *g_queue;
static unsigned g_per_thread;
static int g_round;
static int g_in_section; /* retire half the nodes inside a user section */

static void fnode_free(void *p, size_t size) {
    fnode_t *n = p;
    CC_CHECK(size == sizeof(fnode_t));
    CC_CHECK(n->magic == 0xFEEDF00Du);
    unsigned r = n->id >> 24, t = (n->id >> 16) & 0xff, i = n->id & 0xffff;
    CC_CHECK(r < ROUNDS && t < WORKERS && i < MAX_PER_THREAD);
    n->magic = 0;
    atomic_fetch_add(&g_freed[r][t][i], 1);
    cc_free(p, size);
}

static void *reader(void *arg) {
    (void)arg;
    void *v;
    while (!atomic_load(&g_stop)) {
        cc_smr_enter();
        cc_stack_pop(g_stack, &v);
        cc_smr_exit();
        cc_queue_pop(g_queue, &v);
    }
    return NULL;
}

static void *worker(void *arg) {
    unsigned t = (unsigned)(uintptr_t)arg;
    for (unsigned i = 0; i < g_per_thread; i++) {
        fnode_t *n = cc_alloc_node(sizeof *n);
        CC_CHECK(n != NULL);
        n->id = ((unsigned)g_round << 24) | (t << 16) | i;
        n->magic = 0xFEEDF00Du;
        if (g_in_section && i % 2) {
            cc_smr_enter();
            cc_smr_retire(n, sizeof *n, fnode_free);
            cc_smr_exit();
        } else {
            cc_smr_retire(n, sizeof *n, fnode_free);
        }
        CC_CHECK(cc_stack_push(g_stack, (void *)(uintptr_t)i));
        CC_CHECK(cc_queue_push(g_queue, (void *)(uintptr_t)i));
        if (i % 97 == 0) cc_smr_poll();
    }
    return NULL; /* exits with pending nodes: they become orphans */
}

static void run_round(int round, uint64_t every, int in_section) {
    g_round = round;
    g_in_section = in_section;
    atomic_store(&g_stop, 0);
    cc__smr_fail_chunk_alloc(every);
    pthread_t rd, w[WORKERS];
    smr_spawn(&rd, reader, NULL);
    for (unsigned t = 0; t < WORKERS; t++) smr_spawn(&w[t], worker, (void *)(uintptr_t)t);
    for (unsigned t = 0; t < WORKERS; t++) smr_join(w[t]);
    atomic_store(&g_stop, 1);
    smr_join(rd);
    assert_int_equal(cc_smr_barrier(), 0); /* still failing: the barrier needs no chunk */
    cc__smr_fail_chunk_alloc(0);
    for (unsigned t = 0; t < WORKERS; t++)
        for (unsigned i = 0; i < g_per_thread; i++)
            if (atomic_load(&g_freed[round][t][i]) != 1)
                fail_msg("round %d: node %u/%u freed %u times", round, t, i,
                         (unsigned)atomic_load(&g_freed[round][t][i]));
    cc_smr_snapshot_t s = cc_smr_stats();
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.orphaned, 0);
}

static void test_chunk_failures(void **state) {
    (void)state;
    g_per_thread = smr_scale(MAX_PER_THREAD * 4) / 4;
    if (g_per_thread < 400) g_per_thread = 400;
    if (g_per_thread > MAX_PER_THREAD) g_per_thread = MAX_PER_THREAD;
    assert_int_equal(cc_config_set_retire_threshold(16), 0);
    cc_alloc_stats_enable(true);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_alloc_snapshot_t base = cc_alloc_stats_snapshot();
    cc_smr_snapshot_t s0 = cc_smr_stats();
    g_stack = cc_stack_new();
    g_queue = cc_queue_new();
    assert_non_null(g_stack);
    assert_non_null(g_queue);
    run_round(0, 1, 0);
    run_round(1, 3, 1);
    run_round(2, 2, 1);
    cc_smr_snapshot_t s = cc_smr_stats();
    assert_int_equal(s.retired - s0.retired, s.freed - s0.freed);
    assert_true(s.retired - s0.retired >= (uint64_t)ROUNDS * WORKERS * g_per_thread);
    cc_stack_destroy(g_stack);
    cc_queue_destroy(g_queue);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_alloc_snapshot_t a = cc_alloc_stats_snapshot();
    assert_int_equal(a.current_allocated, base.current_allocated);
    assert_int_equal(a.current_blocks, base.current_blocks);
    assert_int_equal(cc_config_set_retire_threshold(CC_RETIRE_THRESHOLD_DEFAULT), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_chunk_failures)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
