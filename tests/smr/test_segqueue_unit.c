/*
 * Unit tests of <cc/segqueue.h>: FIFO order across many segment boundaries,
 * size and foreach (also straddling boundaries), push_many/pop_many across
 * boundaries and with every batch length around them, destroy with items
 * left, NULL arguments (EINVAL), empty pops (errno untouched), and allocation
 * failure at a segment boundary (ENOMEM, nothing lost or duplicated, queue
 * usable; debug backend only, through cc_alloc_fail_inject). Segment memory
 * must return to the glue's baseline after every test (barrier + snapshot).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "segqueue_internal.h"
#include "smr_test.h"

#include <errno.h>

#define N CC__SEGQUEUE_SLOTS
#define V(i) ((void *)(uintptr_t)(i))

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
    cc_alloc_fail_inject(0, 0);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    assert_int_equal(s.current_allocated, g_base.current_allocated);
    assert_int_equal(s.current_blocks, g_base.current_blocks);
    return 0;
}

static bool debug_backend(void) { return strcmp(cc_alloc_backend(), "debug") == 0; }

typedef struct {
    uintptr_t *seen;
    size_t n;
} collect_t;

static void collect(void *v, void *arg) {
    collect_t *c = arg;
    c->seen[c->n++] = (uintptr_t)v;
}

static void test_fifo_many_segments(void **state) {
    (void)state;
    cc_segqueue_t *q = cc_segqueue_new();
    assert_non_null(q);
    void *v = V(77);
    errno = 12345;
    assert_false(cc_segqueue_pop(q, &v));
    assert_int_equal(errno, 12345); /* untouched when empty */
    assert_ptr_equal(v, V(77));
    assert_int_equal(cc_segqueue_size(q), 0);
    const size_t total = 5 * N + 17;
    for (size_t i = 0; i < total; i++) {
        assert_true(cc_segqueue_push(q, V(i)));
        if (i % 97 == 0 || i % N == N - 1 || i % N == 0) assert_int_equal(cc_segqueue_size(q), i + 1);
    }
    assert_true(cc_segqueue_push(q, NULL)); /* NULL is a value like any other */
    assert_int_equal(cc_segqueue_size(q), total + 1);
    collect_t c = {calloc(total + 1, sizeof(uintptr_t)), 0};
    cc_segqueue_foreach(q, collect, &c);
    assert_int_equal(c.n, total + 1);
    for (size_t i = 0; i < total; i++) assert_int_equal(c.seen[i], i);
    assert_int_equal(c.seen[total], 0);
    free(c.seen);
    for (size_t i = 0; i < total; i++) {
        assert_true(cc_segqueue_pop(q, &v));
        assert_ptr_equal(v, V(i));
        if (i % 101 == 0 || i % N == N - 1) assert_int_equal(cc_segqueue_size(q), total - i);
    }
    v = V(5);
    assert_true(cc_segqueue_pop(q, &v));
    assert_null(v);
    assert_false(cc_segqueue_pop(q, &v));
    assert_int_equal(cc_segqueue_size(q), 0);
    /* interleaved, with the queue going empty at and around boundaries */
    for (size_t i = 0; i < 3 * N; i++) {
        assert_true(cc_segqueue_push(q, V(2 * i)));
        assert_true(cc_segqueue_push(q, V(2 * i + 1)));
        assert_true(cc_segqueue_pop(q, &v));
        assert_ptr_equal(v, V(i));
    }
    assert_int_equal(cc_segqueue_size(q), 3 * N);
    for (size_t i = 3 * N; i < 6 * N; i++) {
        assert_true(cc_segqueue_pop(q, &v));
        assert_ptr_equal(v, V(i));
    }
    assert_false(cc_segqueue_pop(q, &v));
    for (size_t i = 0; i < 2 * N + 3; i++) { /* one in, one out: empty every time */
        assert_true(cc_segqueue_push(q, V(i + 1)));
        assert_int_equal(cc_segqueue_size(q), 1);
        assert_true(cc_segqueue_pop(q, &v));
        assert_ptr_equal(v, V(i + 1));
        assert_false(cc_segqueue_pop(q, &v));
        assert_int_equal(cc_segqueue_size(q), 0);
    }
    cc_segqueue_destroy(q);
}

/* Batches of every length around the boundary, from every offset near it. */
static void test_batches_across_boundaries(void **state) {
    (void)state;
    static void *in[3 * N], *out[3 * N + 5];
    const size_t lens[] = {0, 1, 2, 3, N - 1, N, N + 1, 2 * N + 7};
    const size_t offs[] = {0, 1, N - 3, N - 1, N};
    for (size_t a = 0; a < sizeof offs / sizeof *offs; a++)
        for (size_t b = 0; b < sizeof lens / sizeof *lens; b++) {
            cc_segqueue_t *q = cc_segqueue_new();
            assert_non_null(q);
            uintptr_t next_in = 1, next_out = 1;
            for (size_t i = 0; i < offs[a]; i++) assert_true(cc_segqueue_push(q, V(next_in++)));
            for (size_t i = 0; i < offs[a]; i++) { /* move the head up to the offset too */
                void *v;
                assert_true(cc_segqueue_pop(q, &v));
                assert_ptr_equal(v, V(next_out++));
            }
            assert_true(cc_segqueue_push(q, V(next_in++))); /* one ahead of the batch */
            size_t n = lens[b];
            for (size_t i = 0; i < n; i++) in[i] = V(next_in++);
            errno = 12345;
            assert_int_equal(cc_segqueue_push_many(q, in, n), n);
            assert_int_equal(errno, 12345);
            assert_int_equal(cc_segqueue_size(q), n + 1);
            assert_true(cc_segqueue_push(q, V(next_in++))); /* one behind it */
            /* pop in batches of n / 2 + 1, then the rest at once */
            size_t want = n + 2, got = cc_segqueue_pop_many(q, out, n / 2 + 1);
            assert_int_equal(got, n / 2 + 1);
            got += cc_segqueue_pop_many(q, out + got, 3 * N + 5 - got);
            assert_int_equal(got, want);
            for (size_t i = 0; i < got; i++) assert_ptr_equal(out[i], V(next_out++));
            assert_int_equal(next_out, next_in);
            assert_int_equal(cc_segqueue_pop_many(q, out, 10), 0);
            assert_int_equal(cc_segqueue_size(q), 0);
            cc_segqueue_destroy(q);
        }
}

static void test_pop_many_partial_and_zero(void **state) {
    (void)state;
    cc_segqueue_t *q = cc_segqueue_new();
    assert_non_null(q);
    void *out[8];
    errno = 12345;
    assert_int_equal(cc_segqueue_pop_many(q, out, 8), 0);
    assert_int_equal(errno, 12345);
    assert_int_equal(cc_segqueue_pop_many(q, NULL, 0), 0); /* max 0: out may be NULL */
    assert_int_equal(cc_segqueue_push_many(q, NULL, 0), 0); /* n 0: values may be NULL */
    assert_int_equal(errno, 12345);
    for (uintptr_t i = 1; i <= 3; i++) assert_true(cc_segqueue_push(q, V(i)));
    assert_int_equal(cc_segqueue_pop_many(q, out, 0), 0);
    assert_int_equal(cc_segqueue_pop_many(q, out, 8), 3); /* fewer than asked: all there is */
    for (uintptr_t i = 1; i <= 3; i++) assert_ptr_equal(out[i - 1], V(i));
    assert_int_equal(cc_segqueue_size(q), 0);
    cc_segqueue_destroy(q);
}

static void test_destroy_nonempty(void **state) {
    (void)state;
    cc_segqueue_t *q = cc_segqueue_new();
    assert_non_null(q);
    cc_segqueue_destroy(q); /* empty */
    q = cc_segqueue_new();
    assert_non_null(q);
    for (uintptr_t i = 0; i < 3 * N + 5; i++) assert_true(cc_segqueue_push(q, V(i)));
    void *v;
    for (size_t i = 0; i < N + 30; i++) assert_true(cc_segqueue_pop(q, &v));
    cc_segqueue_destroy(q); /* segments left freed here, the drained one through SMR */
}

static void test_null_arguments(void **state) {
    (void)state;
    cc_segqueue_t *q = cc_segqueue_new();
    assert_non_null(q);
    void *v, *vals[2] = {V(1), V(2)};
    errno = 0;
    assert_false(cc_segqueue_push(NULL, V(1)));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_false(cc_segqueue_pop(NULL, &v));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_false(cc_segqueue_pop(q, NULL));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(cc_segqueue_push_many(NULL, vals, 2), 0);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(cc_segqueue_push_many(q, NULL, 2), 0);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(cc_segqueue_pop_many(NULL, vals, 2), 0);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(cc_segqueue_pop_many(q, NULL, 2), 0);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(cc_segqueue_size(NULL), 0);
    cc_segqueue_destroy(NULL);
    errno = 0;
    cc_segqueue_foreach(NULL, NULL, NULL);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    cc_segqueue_foreach(q, NULL, NULL);
    assert_int_equal(errno, EINVAL);
    /* nothing above changed q */
    assert_int_equal(cc_segqueue_size(q), 0);
    assert_true(cc_segqueue_push(q, V(9)));
    assert_true(cc_segqueue_pop(q, &v));
    assert_ptr_equal(v, V(9));
    cc_segqueue_destroy(q);
}

/* Pops everything and checks it is exactly 1..n in order. */
static void drain_expect(cc_segqueue_t *q, uintptr_t n) {
    void *v;
    for (uintptr_t i = 1; i <= n; i++) {
        assert_true(cc_segqueue_pop(q, &v));
        assert_ptr_equal(v, V(i));
    }
    assert_false(cc_segqueue_pop(q, &v));
    assert_int_equal(cc_segqueue_size(q), 0);
}

static void test_enomem(void **state) {
    (void)state;
    if (!debug_backend()) skip();
    /* new: the header fails, then the first segment fails (header freed) */
    assert_int_equal(cc_alloc_fail_inject(1, 0), 0);
    errno = 0;
    assert_null(cc_segqueue_new());
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(cc_alloc_fail_inject(2, 0), 0);
    errno = 0;
    assert_null(cc_segqueue_new());
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(cc_alloc_fail_inject(0, 0), 0);

    /* push at a segment boundary: fails, nothing changes, several times over
     * (each failed push claims an index past the end), then it works */
    cc_segqueue_t *q = cc_segqueue_new();
    assert_non_null(q);
    uintptr_t next = 1;
    for (size_t i = 0; i < N; i++) assert_true(cc_segqueue_push(q, V(next++)));
    for (int k = 0; k < 3; k++) {
        assert_int_equal(cc_alloc_fail_inject(1, 0), 0);
        errno = 0;
        assert_false(cc_segqueue_push(q, V(999999)));
        assert_int_equal(errno, ENOMEM);
        assert_int_equal(cc_segqueue_size(q), N);
    }
    /* a pop meanwhile sees the full segment and no successor: no wait */
    void *v;
    assert_true(cc_segqueue_pop(q, &v));
    assert_ptr_equal(v, V(1));
    assert_true(cc_segqueue_push(q, V(next++)));
    assert_int_equal(cc_segqueue_size(q), N);
    /* drain everything: 2..next-1 */
    for (uintptr_t i = 2; i < next; i++) {
        assert_true(cc_segqueue_pop(q, &v));
        assert_ptr_equal(v, V(i));
    }
    assert_false(cc_segqueue_pop(q, &v));

    /* push_many across a boundary: the part that fits goes in, the rest
     * fails with ENOMEM, and the count says which prefix was pushed */
    cc_segqueue_destroy(q);
    q = cc_segqueue_new();
    assert_non_null(q);
    static void *in[N + 50];
    next = 1;
    for (size_t i = 0; i < N - 20; i++) assert_true(cc_segqueue_push(q, V(next++)));
    for (size_t i = 0; i < 70; i++) in[i] = V(next + i);
    assert_int_equal(cc_alloc_fail_inject(1, 0), 0);
    errno = 0;
    assert_int_equal(cc_segqueue_push_many(q, in, 70), 20);
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(cc_alloc_fail_inject(0, 0), 0);
    next += 20;
    assert_int_equal(cc_segqueue_size(q), N);
    /* pop all but one: the queue stays on the full segment */
    for (uintptr_t i = 1; i < N; i++) {
        assert_true(cc_segqueue_pop(q, &v));
        assert_ptr_equal(v, V(i));
    }
    /* the rest of the batch, retried, lands after what is there */
    for (size_t i = 0; i < 50; i++) in[i] = V(next + i);
    assert_int_equal(cc_segqueue_push_many(q, in, 50), 50);
    next += 50;
    for (uintptr_t i = N; i < next; i++) {
        assert_true(cc_segqueue_pop(q, &v));
        assert_ptr_equal(v, V(i));
    }
    assert_false(cc_segqueue_pop(q, &v));
    assert_int_equal(cc_segqueue_size(q), 0);

    /* a failure after a new segment was linked by the same batch */
    cc_segqueue_destroy(q);
    q = cc_segqueue_new();
    assert_non_null(q);
    /* batch of 2N + 10: a new segment (N values), then a second one fails */
    static void *big[2 * N + 10];
    for (size_t i = 0; i < 2 * N + 10; i++) big[i] = V(i + 1);
    assert_true(cc_segqueue_push(q, V(0)));
    for (size_t i = 1; i < N; i++) assert_true(cc_segqueue_push(q, V(0)));
    assert_int_equal(cc_alloc_fail_inject(2, 0), 0); /* first new segment ok, second fails */
    errno = 0;
    assert_int_equal(cc_segqueue_push_many(q, big, 2 * N + 10), N);
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(cc_alloc_fail_inject(0, 0), 0);
    assert_int_equal(cc_segqueue_size(q), 2 * N);
    for (size_t i = 0; i < N; i++) {
        assert_true(cc_segqueue_pop(q, &v));
        assert_null(v);
    }
    drain_expect(q, N);
    cc_segqueue_destroy(q);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fifo_many_segments, before_each, after_each),
        cmocka_unit_test_setup_teardown(test_batches_across_boundaries, before_each, after_each),
        cmocka_unit_test_setup_teardown(test_pop_many_partial_and_zero, before_each, after_each),
        cmocka_unit_test_setup_teardown(test_destroy_nonempty, before_each, after_each),
        cmocka_unit_test_setup_teardown(test_null_arguments, before_each, after_each),
        cmocka_unit_test_setup_teardown(test_enomem, before_each, after_each),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
