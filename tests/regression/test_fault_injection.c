/*
 * Allocation-failure injection through the debug backend (issue 6).
 * Registered for the debug backend only (cc_alloc_fail_inject is ENOTSUP
 * elsewhere; the test checks that too and skips).
 *
 *  - test_sequences: for every in {1, 2, 3, 5, 7, 13} and nth in {1, 17, 100},
 *    a random sequence of pushes and pops on a stack and a queue is checked,
 *    operation by operation, against a model array: a failed push returns
 *    false with errno == ENOMEM and leaves size and contents unchanged; every
 *    pop returns the model's value. At the end everything is popped and
 *    compared. Injected failures are counted (the test fails if none happen).
 *  - test_new_enomem: cc_stack_new/cc_queue_new return NULL + ENOMEM for
 *    every=1 and for a failure of the queue's second (dummy) allocation, and
 *    leave no block behind (glue counters).
 *  - test_threads_every7: THREADS threads (more than the cores) push unique
 *    values to a shared stack and queue and pop from both while every 7th
 *    allocation fails. Per value: pushed-ok / push-failed flags and a popped
 *    count. Afterwards (drain): each value pushed successfully popped exactly
 *    once, no value whose push failed ever popped.
 *  - after each test: injection off, destroy + barrier, glue counters at the
 *    baseline (a failed push that leaked its node, or a node counted but not
 *    freed, breaks this; the debug allocator also reports live blocks at exit).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "reg_test.h"

#include <errno.h>
#include <stdatomic.h>

static cc_alloc_snapshot_t g_base;

static int before_each(void **state) {
    (void)state;
    if (!reg_is_debug()) {
        assert_int_equal(cc_alloc_fail_inject(0, 7), -1);
        assert_int_equal(errno, ENOTSUP);
        printf("skipped: fault injection needs CONCURRENT_COLLECTIONS_ALLOCATOR=debug\n");
        skip();
    }
    cc_alloc_stats_enable(true);
    assert_int_equal(cc_smr_barrier(), 0);
    g_base = cc_alloc_stats_snapshot();
    return 0;
}

static int after_each(void **state) {
    (void)state;
    if (!reg_is_debug()) return 0;
    assert_int_equal(cc_alloc_fail_inject(0, 0), 0);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    assert_int_equal(s.current_blocks, g_base.current_blocks);
    assert_int_equal(s.current_allocated, g_base.current_allocated);
    assert_int_equal(cc_smr_stats().pending, 0);
    return 0;
}

#define V(i) ((void *)(uintptr_t)(i))
#define OPS 3000u

/* One sequence on a stack (lifo=1) or queue; returns the injected failures. */
static unsigned run_sequence(int lifo, uint64_t nth, uint64_t every, uint64_t seed) {
    static uintptr_t model[OPS];
    size_t head = 0, tail = 0; /* model[head..tail) */
    cc_stack_t *s = NULL;
    cc_queue_t *q = NULL;
    if (lifo) s = cc_stack_new();
    else q = cc_queue_new();
    assert_true(s != NULL || q != NULL);
    assert_int_equal(cc_alloc_fail_inject(nth, every), 0);
    unsigned failures = 0, pushes = 0;
    uintptr_t next = 1;
    for (unsigned op = 0; op < OPS; op++) {
        size_t size = lifo ? cc_stack_size(s) : cc_queue_size(q);
        assert_int_equal(size, tail - head);
        if (reg_rand(&seed) % 3 != 0) { /* push, 2 of 3 */
            uintptr_t v = next++;
            pushes++;
            errno = 0;
            bool ok = lifo ? cc_stack_push(s, V(v)) : cc_queue_push(q, V(v));
            if (ok) {
                model[tail++] = v;
            } else {
                assert_int_equal(errno, ENOMEM);
                failures++;
            }
        } else {
            void *got = NULL;
            bool ok = lifo ? cc_stack_pop(s, &got) : cc_queue_pop(q, &got);
            assert_int_equal(ok, tail > head);
            if (ok) {
                uintptr_t want = lifo ? model[--tail] : model[head++];
                assert_ptr_equal(got, V(want));
            }
        }
    }
    assert_int_equal(cc_alloc_fail_inject(0, 0), 0);
    /* A push makes exactly one glue allocation, a pop none: the failures are
     * exactly the injected ones. */
    if (every) assert_int_equal(failures, pushes / every);
    else assert_int_equal(failures, pushes >= nth ? 1 : 0);
    /* Pop everything and compare with the model. */
    void *got;
    while (tail > head) {
        assert_true(lifo ? cc_stack_pop(s, &got) : cc_queue_pop(q, &got));
        uintptr_t want = lifo ? model[--tail] : model[head++];
        assert_ptr_equal(got, V(want));
    }
    assert_false(lifo ? cc_stack_pop(s, &got) : cc_queue_pop(q, &got));
    cc_stack_destroy(s);
    cc_queue_destroy(q);
    return failures;
}

static void test_sequences(void **state) {
    (void)state;
    static const uint64_t everys[] = {1, 2, 3, 5, 7, 13};
    static const uint64_t nths[] = {1, 17, 100};
    unsigned total = 0;
    for (int lifo = 0; lifo <= 1; lifo++) {
        for (size_t i = 0; i < sizeof everys / sizeof *everys; i++) {
            unsigned f = run_sequence(lifo, 0, everys[i], 1000 + i);
            /* ~2/3 of OPS are pushes, one allocation each. */
            assert_true(f >= (OPS * 2 / 3) / everys[i] / 2);
            if (everys[i] == 1) assert_true(f >= OPS / 2);
            total += f;
        }
        for (size_t i = 0; i < sizeof nths / sizeof *nths; i++) {
            unsigned f = run_sequence(lifo, nths[i], 0, 2000 + i);
            assert_int_equal(f, 1);
            total += f;
        }
    }
    printf("fault: sequences of %u ops, %u injected push failures, container == model after each\n", OPS, total);
}

static void test_new_enomem(void **state) {
    (void)state;
    cc_alloc_snapshot_t b = cc_alloc_stats_snapshot();
    assert_int_equal(cc_alloc_fail_inject(0, 1), 0);
    for (int i = 0; i < 10; i++) {
        errno = 0;
        assert_null(cc_stack_new());
        assert_int_equal(errno, ENOMEM);
        errno = 0;
        assert_null(cc_queue_new());
        assert_int_equal(errno, ENOMEM);
    }
    /* every 2nd: the queue header succeeds and its dummy node fails. */
    assert_int_equal(cc_alloc_fail_inject(0, 2), 0);
    void *p = cc_alloc(8); /* allocation 1 succeeds */
    assert_non_null(p);
    errno = 0;
    assert_null(cc_queue_new()); /* 2: header fails */
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_null(cc_queue_new()); /* 3: header ok, 4: dummy fails -> header freed */
    assert_int_equal(errno, ENOMEM);
    cc_free(p, 8);
    assert_int_equal(cc_alloc_fail_inject(0, 0), 0);
    cc_alloc_snapshot_t a = cc_alloc_stats_snapshot();
    assert_int_equal(a.current_blocks, b.current_blocks);
    assert_int_equal(a.current_allocated, b.current_allocated);
}

#define THREADS 8u
#define PER_THREAD 20000u
#define NV (THREADS * PER_THREAD)

static _Atomic unsigned char g_push_ok[NV + 1], g_push_failed[NV + 1], g_popped[NV + 1];
static _Atomic uint64_t g_failures;
static cc_stack_t *g_s;
static cc_queue_t *g_q;
static unsigned g_per;

static void popped(void *v) {
    uintptr_t x = (uintptr_t)v;
    CC_CHECK(x >= 1 && x <= NV);
    CC_CHECK(atomic_fetch_add(&g_popped[x], 1) == 0);
}

static void *mt_worker(void *arg) {
    unsigned t = (unsigned)(uintptr_t)arg;
    uint64_t seed = 31 + t;
    for (unsigned i = 0; i < g_per; i++) {
        uintptr_t x = (uintptr_t)t * PER_THREAD + i + 1;
        bool to_stack = reg_rand(&seed) & 1;
        errno = 0;
        bool ok = to_stack ? cc_stack_push(g_s, V(x)) : cc_queue_push(g_q, V(x));
        if (ok) {
            atomic_store(&g_push_ok[x], 1);
        } else {
            CC_CHECK(errno == ENOMEM);
            atomic_store(&g_push_failed[x], 1);
            atomic_fetch_add(&g_failures, 1);
        }
        if (reg_rand(&seed) % 4 == 0) {
            void *v;
            if (cc_stack_pop(g_s, &v)) popped(v);
            if (cc_queue_pop(g_q, &v)) popped(v);
        }
    }
    return NULL;
}

static void test_threads_every7(void **state) {
    (void)state;
    g_s = cc_stack_new();
    g_q = cc_queue_new();
    assert_non_null(g_s);
    assert_non_null(g_q);
    g_per = reg_scale(PER_THREAD * 4, 500) / 4;
    if (g_per > PER_THREAD) g_per = PER_THREAD;
    assert_int_equal(cc_alloc_fail_inject(0, 7), 0);
    pthread_t th[THREADS];
    for (unsigned i = 0; i < THREADS; i++) reg_spawn(&th[i], mt_worker, (void *)(uintptr_t)i);
    for (unsigned i = 0; i < THREADS; i++) reg_join(th[i]);
    assert_int_equal(cc_alloc_fail_inject(0, 0), 0);
    void *v;
    while (cc_stack_pop(g_s, &v)) popped(v);
    while (cc_queue_pop(g_q, &v)) popped(v);
    unsigned ok = 0, failed = 0;
    for (unsigned t = 0; t < THREADS; t++) {
        for (unsigned i = 0; i < g_per; i++) {
            uintptr_t x = (uintptr_t)t * PER_THREAD + i + 1;
            unsigned pok = atomic_load(&g_push_ok[x]), pf = atomic_load(&g_push_failed[x]);
            unsigned pp = atomic_load(&g_popped[x]);
            assert_int_equal(pok + pf, 1);
            if (pok && pp != 1) fail_msg("value %lu pushed but popped %u times", (unsigned long)x, pp);
            if (pf && pp != 0) fail_msg("value %lu: push failed but it was popped", (unsigned long)x);
            ok += pok;
            failed += pf;
        }
    }
    printf("fault: %u threads, %u pushes, %u failed with ENOMEM (every 7th allocation), %u delivered "
           "exactly once\n",
           THREADS, THREADS * g_per, failed, ok);
    assert_true(failed > 0);
    assert_int_equal(failed, atomic_load(&g_failures));
    /* One glue allocation per push attempt, nothing else: exactly every 7th. */
    assert_int_equal(failed, (THREADS * g_per) / 7);
    cc_stack_destroy(g_s);
    cc_queue_destroy(g_q);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sequences, before_each, after_each),
        cmocka_unit_test_setup_teardown(test_new_enomem, before_each, after_each),
        cmocka_unit_test_setup_teardown(test_threads_every7, before_each, after_each),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
