/*
 * Unit tests of <cc/stack.h> and <cc/queue.h>: order, sizes, foreach, destroy
 * with nodes left, NULL arguments (EINVAL), empty pops (errno untouched), and
 * allocation failure (ENOMEM, structure unchanged; debug backend only, through
 * cc_alloc_fail_inject). Node memory must return to the glue's baseline.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cc/queue.h>
#include <cc/stack.h>
#include "smr_test.h"

#include <errno.h>

static cc_alloc_snapshot_t g_base;

static int setup(void **state) {
    (void)state;
    cc_alloc_stats_enable(true);
    return 0;
}

static int before_each(void **state) {
    (void)state;
    assert_int_equal(cc_smr_barrier(), 0);
    g_base = cc_alloc_stats_snapshot();
    return 0;
}

static int after_each(void **state) {
    (void)state;
    assert_int_equal(cc_smr_barrier(), 0);
    cc_alloc_fail_inject(0, 0);
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    assert_int_equal(s.current_allocated, g_base.current_allocated);
    assert_int_equal(s.current_blocks, g_base.current_blocks);
    return 0;
}

#define V(i) ((void *)(uintptr_t)(i))

typedef struct {
    uintptr_t seen[300];
    unsigned n;
} collect_t;

static void collect(void *v, void *arg) {
    collect_t *c = arg;
    c->seen[c->n++] = (uintptr_t)v;
}

/* ---- stack ------------------------------------------------------------------- */

static void test_stack_lifo(void **state) {
    (void)state;
    cc_stack_t *s = cc_stack_new();
    assert_non_null(s);
    void *v = V(77);
    errno = 12345;
    assert_false(cc_stack_pop(s, &v));
    assert_int_equal(errno, 12345); /* untouched when empty */
    assert_ptr_equal(v, V(77));
    assert_int_equal(cc_stack_size(s), 0);
    for (uintptr_t i = 1; i <= 200; i++) assert_true(cc_stack_push(s, V(i)));
    assert_true(cc_stack_push(s, NULL)); /* NULL is a value like any other */
    assert_int_equal(cc_stack_size(s), 201);
    collect_t c = {{0}, 0};
    cc_stack_foreach(s, collect, &c);
    assert_int_equal(c.n, 201);
    assert_int_equal(c.seen[0], 0);
    assert_int_equal(c.seen[1], 200);
    assert_int_equal(c.seen[200], 1);
    assert_true(cc_stack_pop(s, &v));
    assert_null(v);
    for (uintptr_t i = 200; i >= 1; i--) {
        assert_true(cc_stack_pop(s, &v));
        assert_ptr_equal(v, V(i));
        assert_int_equal(cc_stack_size(s), i - 1);
    }
    assert_false(cc_stack_pop(s, &v));
    assert_true(cc_stack_push(s, V(5)));
    assert_true(cc_stack_pop(s, NULL)); /* value pointer may be NULL */
    cc_stack_destroy(s);
}

static void test_stack_destroy_nonempty(void **state) {
    (void)state;
    cc_stack_t *s = cc_stack_new();
    assert_non_null(s);
    for (uintptr_t i = 0; i < 100; i++) assert_true(cc_stack_push(s, V(i)));
    void *v;
    for (int i = 0; i < 30; i++) assert_true(cc_stack_pop(s, &v));
    cc_stack_destroy(s); /* 70 nodes left: freed here; 30 via SMR (after_each barrier) */
}

static void test_stack_null(void **state) {
    (void)state;
    void *v;
    errno = 0;
    assert_false(cc_stack_push(NULL, V(1)));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_false(cc_stack_pop(NULL, &v));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(cc_stack_size(NULL), 0);
    cc_stack_destroy(NULL);
    collect_t c = {{0}, 0};
    cc_stack_foreach(NULL, collect, &c);
    assert_int_equal(c.n, 0);
}

static bool debug_backend(void) { return strcmp(cc_alloc_backend(), "debug") == 0; }

static void test_stack_enomem(void **state) {
    (void)state;
    if (!debug_backend()) skip();
    assert_int_equal(cc_alloc_fail_inject(1, 0), 0);
    errno = 0;
    assert_null(cc_stack_new());
    assert_int_equal(errno, ENOMEM);
    cc_stack_t *s = cc_stack_new();
    assert_non_null(s);
    assert_true(cc_stack_push(s, V(1)));
    assert_true(cc_stack_push(s, V(2)));
    assert_int_equal(cc_alloc_fail_inject(1, 0), 0);
    errno = 0;
    assert_false(cc_stack_push(s, V(3)));
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(cc_stack_size(s), 2); /* unchanged */
    void *v;
    assert_true(cc_stack_pop(s, &v));
    assert_ptr_equal(v, V(2));
    assert_true(cc_stack_pop(s, &v));
    assert_ptr_equal(v, V(1));
    assert_false(cc_stack_pop(s, &v));
    cc_stack_destroy(s);
}

/* ---- queue ------------------------------------------------------------------ */

static void test_queue_fifo(void **state) {
    (void)state;
    cc_queue_t *q = cc_queue_new();
    assert_non_null(q);
    void *v = V(77);
    errno = 12345;
    assert_false(cc_queue_pop(q, &v));
    assert_int_equal(errno, 12345);
    assert_ptr_equal(v, V(77));
    assert_int_equal(cc_queue_size(q), 0);
    for (uintptr_t i = 1; i <= 200; i++) {
        assert_true(cc_queue_push(q, V(i)));
        assert_int_equal(cc_queue_size(q), i);
    }
    assert_true(cc_queue_push(q, NULL));
    collect_t c = {{0}, 0};
    cc_queue_foreach(q, collect, &c);
    assert_int_equal(c.n, 201);
    assert_int_equal(c.seen[0], 1);
    assert_int_equal(c.seen[199], 200);
    assert_int_equal(c.seen[200], 0);
    for (uintptr_t i = 1; i <= 200; i++) {
        assert_true(cc_queue_pop(q, &v));
        assert_ptr_equal(v, V(i));
        assert_int_equal(cc_queue_size(q), 201 - i);
    }
    assert_true(cc_queue_pop(q, &v));
    assert_null(v);
    assert_false(cc_queue_pop(q, &v));
    assert_int_equal(cc_queue_size(q), 0);
    /* interleaved */
    for (uintptr_t i = 0; i < 50; i++) {
        assert_true(cc_queue_push(q, V(2 * i)));
        assert_true(cc_queue_push(q, V(2 * i + 1)));
        assert_true(cc_queue_pop(q, &v));
        assert_ptr_equal(v, V(i));
    }
    assert_int_equal(cc_queue_size(q), 50);
    assert_true(cc_queue_pop(q, NULL));
    cc_queue_destroy(q);
}

static void test_queue_destroy_nonempty(void **state) {
    (void)state;
    cc_queue_t *q = cc_queue_new();
    assert_non_null(q);
    cc_queue_destroy(q); /* empty: only the dummy */
    q = cc_queue_new();
    for (uintptr_t i = 0; i < 100; i++) assert_true(cc_queue_push(q, V(i)));
    void *v;
    for (int i = 0; i < 30; i++) assert_true(cc_queue_pop(q, &v));
    cc_queue_destroy(q);
}

static void test_queue_null(void **state) {
    (void)state;
    void *v;
    errno = 0;
    assert_false(cc_queue_push(NULL, V(1)));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_false(cc_queue_pop(NULL, &v));
    assert_int_equal(errno, EINVAL);
    assert_int_equal(cc_queue_size(NULL), 0);
    cc_queue_destroy(NULL);
    collect_t c = {{0}, 0};
    cc_queue_foreach(NULL, collect, &c);
    assert_int_equal(c.n, 0);
}

static void test_queue_enomem(void **state) {
    (void)state;
    if (!debug_backend()) skip();
    /* new: the queue header fails, then the dummy fails (header freed). */
    assert_int_equal(cc_alloc_fail_inject(1, 0), 0);
    errno = 0;
    assert_null(cc_queue_new());
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(cc_alloc_fail_inject(2, 0), 0);
    errno = 0;
    assert_null(cc_queue_new());
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(cc_alloc_fail_inject(0, 0), 0);
    cc_queue_t *q = cc_queue_new();
    assert_non_null(q);
    assert_true(cc_queue_push(q, V(1)));
    assert_int_equal(cc_alloc_fail_inject(1, 0), 0);
    errno = 0;
    assert_false(cc_queue_push(q, V(2)));
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(cc_queue_size(q), 1);
    assert_true(cc_queue_push(q, V(3)));
    void *v;
    assert_true(cc_queue_pop(q, &v));
    assert_ptr_equal(v, V(1));
    assert_true(cc_queue_pop(q, &v));
    assert_ptr_equal(v, V(3));
    assert_false(cc_queue_pop(q, &v));
    cc_queue_destroy(q);
}

/* Sizes carry no shared counter (stack: depth in each node; queue: position
 * in each node): after concurrent pushes and pops, once quiescent, both are
 * exact. */
#define SZ_THREADS 4
#define SZ_OPS 3000
static cc_stack_t *g_sz_stack;
static cc_queue_t *g_sz_queue;
static _Atomic long g_sz_stack_n, g_sz_queue_n;

static void *size_worker(void *arg) {
    unsigned t = (unsigned)(uintptr_t)arg;
    void *v;
    long sn = 0, qn = 0;
    for (unsigned i = 0; i < SZ_OPS; i++) {
        CC_CHECK(cc_stack_push(g_sz_stack, V(i + 1)));
        CC_CHECK(cc_queue_push(g_sz_queue, V(i + 1)));
        sn++;
        qn++;
        if ((i + t) % 3 == 0) {
            if (cc_stack_pop(g_sz_stack, &v)) sn--;
            if (cc_queue_pop(g_sz_queue, &v)) qn--;
        }
        (void)cc_stack_size(g_sz_stack); /* concurrent reads must be safe */
        (void)cc_queue_size(g_sz_queue);
    }
    atomic_fetch_add(&g_sz_stack_n, sn);
    atomic_fetch_add(&g_sz_queue_n, qn);
    return NULL;
}

static void test_sizes_after_concurrent_use(void **state) {
    (void)state;
    g_sz_stack = cc_stack_new();
    g_sz_queue = cc_queue_new();
    assert_non_null(g_sz_stack);
    assert_non_null(g_sz_queue);
    atomic_store(&g_sz_stack_n, 0);
    atomic_store(&g_sz_queue_n, 0);
    pthread_t th[SZ_THREADS];
    for (unsigned t = 0; t < SZ_THREADS; t++) smr_spawn(&th[t], size_worker, (void *)(uintptr_t)t);
    for (unsigned t = 0; t < SZ_THREADS; t++) smr_join(th[t]);
    assert_int_equal(cc_stack_size(g_sz_stack), (size_t)atomic_load(&g_sz_stack_n));
    assert_int_equal(cc_queue_size(g_sz_queue), (size_t)atomic_load(&g_sz_queue_n));
    void *v;
    size_t k = 0;
    while (cc_stack_pop(g_sz_stack, &v)) k++;
    assert_int_equal(k, (size_t)atomic_load(&g_sz_stack_n));
    assert_int_equal(cc_stack_size(g_sz_stack), 0);
    k = 0;
    while (cc_queue_pop(g_sz_queue, &v)) k++;
    assert_int_equal(k, (size_t)atomic_load(&g_sz_queue_n));
    assert_int_equal(cc_queue_size(g_sz_queue), 0);
    cc_stack_destroy(g_sz_stack);
    cc_queue_destroy(g_sz_queue);
}

#define T(f) cmocka_unit_test_setup_teardown(f, before_each, after_each)

int main(void) {
    const struct CMUnitTest tests[] = {
        T(test_stack_lifo),  T(test_stack_destroy_nonempty), T(test_stack_null),
        T(test_stack_enomem), T(test_queue_fifo),             T(test_queue_destroy_nonempty),
        T(test_queue_null),  T(test_queue_enomem),           T(test_sizes_after_concurrent_use),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
