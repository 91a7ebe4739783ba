/*
 * Safety: a reader inside a critical section holds a pointer to a node that
 * another thread unlinks and retires. While the reader stays inside, many
 * retirements and polls by other threads must not free it (its free function
 * is not called, and its contents stay intact when the reader reads it). Once
 * the reader leaves, the node is freed, exactly once.
 *
 * Against a broken SMR (-DCC_SMR_BROKEN_FREE_ON_RETIRE=ON) this fails: the
 * free function runs at retire (the checks below fail), and the reader's read
 * is a use-after-free (ASan reports it under the system/debug backends).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "smr_test.h"

#include <stdatomic.h>

#define MAGIC 0x5AFE5AFE5AFE5AFEull
typedef struct {
    _Atomic uint64_t magic;
    _Atomic uint64_t payload[5];
} snode_t;

static _Atomic(snode_t *) g_slot;
static snode_t *_Atomic g_target;
static _Atomic int g_target_freed;
static _Atomic unsigned long g_other_freed;
static _Atomic int g_phase;      /* 0 start, 1 reader holds, 2 checked, 3 reader done */
static _Atomic uint64_t g_reader_sum;

static void snode_free(void *p, size_t size) {
    CC_CHECK(size == sizeof(snode_t));
    snode_t *n = p;
    CC_CHECK(atomic_load(&n->magic) == MAGIC);
    atomic_store(&n->magic, 0xDEADull);
    if (n == atomic_load(&g_target)) atomic_fetch_add(&g_target_freed, 1);
    else atomic_fetch_add(&g_other_freed, 1);
    cc_free(p, size);
}

static snode_t *snode_new(void) {
    snode_t *n = cc_alloc_node(sizeof *n);
    CC_CHECK(n != NULL);
    atomic_store(&n->magic, MAGIC);
    for (int i = 0; i < 5; i++) atomic_store(&n->payload[i], (uint64_t)i);
    return n;
}

static void wait_phase(int p) {
    while (atomic_load(&g_phase) < p) smr_sleep_ms(1);
}

static void *reader(void *arg) {
    (void)arg;
    cc_smr_enter();
    snode_t *n = atomic_load_explicit(&g_slot, memory_order_acquire);
    CC_CHECK(n != NULL);
    atomic_store(&g_phase, 1);
    /* Hold the node while others retire and poll; keep reading it. */
    uint64_t sum = 0;
    while (atomic_load(&g_phase) < 2) {
        CC_CHECK(atomic_load(&n->magic) == MAGIC);
        sum += atomic_load(&n->payload[3]);
        sched_yield();
    }
    CC_CHECK(atomic_load(&n->magic) == MAGIC);
    atomic_store(&g_reader_sum, sum);
    cc_smr_exit();
    atomic_store(&g_phase, 3);
    return NULL;
}

static unsigned g_churn_iters;
static void *churner(void *arg) {
    (void)arg;
    for (unsigned i = 0; i < g_churn_iters; i++) {
        cc_smr_enter();
        cc_smr_retire(snode_new(), sizeof(snode_t), snode_free);
        cc_smr_exit();
        if (i % 16 == 0) cc_smr_poll();
    }
    return NULL;
}

static void test_reader_pins_retired_node(void **state) {
    (void)state;
    cc_alloc_stats_enable(true);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_alloc_snapshot_t base = cc_alloc_stats_snapshot();
    g_churn_iters = smr_scale(20000);
    snode_t *target = snode_new();
    atomic_store(&g_target, target);
    atomic_store_explicit(&g_slot, target, memory_order_release);
    atomic_store(&g_phase, 0);

    pthread_t r;
    smr_spawn(&r, reader, NULL);
    wait_phase(1);
    /* Unlink and retire while the reader holds it. */
    atomic_store_explicit(&g_slot, NULL, memory_order_release);
    cc_smr_retire(target, sizeof *target, snode_free);
    assert_int_equal(atomic_load(&g_target_freed), 0);

    pthread_t c[3];
    for (int i = 0; i < 3; i++) smr_spawn(&c[i], churner, NULL);
    for (int i = 0; i < 200; i++) {
        cc_smr_poll();
        assert_int_equal(atomic_load(&g_target_freed), 0);
    }
    for (int i = 0; i < 3; i++) smr_join(c[i]);
    for (int i = 0; i < 50; i++) cc_smr_poll();
    cc_smr_snapshot_t s = cc_smr_stats();
    assert_int_equal(atomic_load(&g_target_freed), 0);
    assert_true(s.pending >= 1);
    assert_true(s.stalled_threads >= 1); /* the reader blocks the epoch */
    /* The reader's section also pins every node retired after it entered. */
    assert_int_equal(atomic_load(&g_other_freed), 0);

    atomic_store(&g_phase, 2);
    wait_phase(3);
    assert_int_equal(atomic_load(&g_target_freed), 0); /* leaving does not free by itself */
    for (int i = 0; i < 20 && atomic_load(&g_target_freed) == 0; i++) cc_smr_poll();
    assert_int_equal(cc_smr_barrier(), 0);
    assert_int_equal(atomic_load(&g_target_freed), 1);
    assert_int_equal(atomic_load(&g_other_freed), 3ul * g_churn_iters);
    smr_join(r);
    assert_int_equal(cc_smr_barrier(), 0);
    assert_int_equal(atomic_load(&g_target_freed), 1); /* exactly once */
    assert_int_equal(cc_smr_stats().pending, 0);
    assert_int_equal(cc_alloc_stats_snapshot().current_allocated, base.current_allocated);
    assert_int_equal(atomic_load(&g_reader_sum) % 3, 0);
}

/* The barrier waits for a reader's section to end before freeing its node. */
static void *late_reader(void *arg) {
    (void)arg;
    cc_smr_enter();
    snode_t *n = atomic_load_explicit(&g_slot, memory_order_acquire);
    atomic_store(&g_phase, 1);
    smr_sleep_ms(100);
    CC_CHECK(atomic_load(&n->magic) == MAGIC);
    CC_CHECK(atomic_load(&g_target_freed) == 0);
    cc_smr_exit();
    return NULL;
}

static void test_barrier_waits_for_reader(void **state) {
    (void)state;
    snode_t *target = snode_new();
    atomic_store(&g_target, target);
    atomic_store(&g_target_freed, 0);
    atomic_store_explicit(&g_slot, target, memory_order_release);
    atomic_store(&g_phase, 0);
    pthread_t r;
    smr_spawn(&r, late_reader, NULL);
    wait_phase(1);
    atomic_store_explicit(&g_slot, NULL, memory_order_release);
    cc_smr_retire(target, sizeof *target, snode_free);
    assert_int_equal(cc_smr_barrier(), 0); /* returns only after the reader left */
    assert_int_equal(atomic_load(&g_target_freed), 1);
    smr_join(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_pins_retired_node),
        cmocka_unit_test(test_barrier_waits_for_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
