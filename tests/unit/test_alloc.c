/*
 * Unit tests of <cc/alloc.h> and <cc/config.h>: every function, every bad
 * input, alignment on the mimalloc we link against, and exact statistics.
 * Runs under each backend (CONCURRENT_COLLECTIONS_ALLOCATOR, set by CTest).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cc/alloc.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void assert_snapshot_equal(cc_alloc_snapshot_t a, cc_alloc_snapshot_t b) {
    assert_int_equal(a.alloc_count, b.alloc_count);
    assert_int_equal(a.free_count, b.free_count);
    assert_int_equal(a.alloc_bytes, b.alloc_bytes);
    assert_int_equal(a.free_bytes, b.free_bytes);
    assert_int_equal(a.current_allocated, b.current_allocated);
}

static void assert_fails(void *p, int err) {
    assert_null(p);
    assert_int_equal(errno, err);
}

static int setup_stats(void **state) {
    (void)state;
    cc_alloc_stats_enable(true);
    cc_alloc_stats_reset();
    return 0;
}

/* ---- bad input ------------------------------------------------------------- */

static void test_bad_sizes(void **state) {
    (void)state;
    cc_alloc_snapshot_t before = cc_alloc_stats_snapshot();
    errno = 0; assert_fails(cc_alloc(0), EINVAL);
    errno = 0; assert_fails(cc_alloc(SIZE_MAX), ENOMEM);
    errno = 0; assert_fails(cc_alloc((size_t)PTRDIFF_MAX + 1), ENOMEM);
    errno = 0; assert_fails(cc_calloc(0, 8), EINVAL);
    errno = 0; assert_fails(cc_calloc(8, 0), EINVAL);
    errno = 0; assert_fails(cc_calloc(SIZE_MAX / 2, 3), ENOMEM);
    errno = 0; assert_fails(cc_calloc((size_t)1 << 33, (size_t)1 << 33), ENOMEM);
    errno = 0; assert_fails(cc_calloc(1, SIZE_MAX), ENOMEM);
    errno = 0; assert_fails(cc_alloc_node(0), EINVAL);
    errno = 0; assert_fails(cc_alloc_node(SIZE_MAX), ENOMEM);
    errno = 0; assert_fails(cc_alloc_node(SIZE_MAX - 10), ENOMEM);
    errno = 0; assert_fails(cc_alloc_aligned(0, 64), EINVAL);
    errno = 0; assert_fails(cc_alloc_aligned(SIZE_MAX, 64), ENOMEM);
    errno = 0; assert_fails(cc_alloc_aligned(SIZE_MAX - 100, 4096), ENOMEM);
    /* A failed allocation is never counted. */
    assert_snapshot_equal(cc_alloc_stats_snapshot(), before);
}

static void test_bad_alignment(void **state) {
    (void)state;
    static const size_t bad[] = {0, 1, 2, 4, 3, 6, 12, 24, 48, 96, 100, 4095, SIZE_MAX,
                                 ((size_t)1 << 40) + 1};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errno = 0;
        assert_fails(cc_alloc_aligned(64, bad[i]), EINVAL);
    }
    /* Alignment is checked before size: a bad pair reports the alignment. */
    errno = 0; assert_fails(cc_alloc_aligned(0, 3), EINVAL);
}

static void test_free_null(void **state) {
    (void)state;
    cc_alloc_snapshot_t before = cc_alloc_stats_snapshot();
    cc_free(NULL, 0);
    cc_free(NULL, 64);
    cc_free(NULL, SIZE_MAX);
    cc_free_unsized(NULL);
    assert_snapshot_equal(cc_alloc_stats_snapshot(), before);
}

/* ---- what blocks look like ---------------------------------------------------- */

static void test_alloc_and_calloc(void **state) {
    (void)state;
    for (size_t n = 1; n < 5000; n += (n < 300 ? 1 : 97)) {
        unsigned char *p = cc_alloc(n);
        assert_non_null(p);
        assert_true(cc_alloc_usable_size(p) >= n);
        memset(p, 0xAB, n);
        assert_int_equal((uintptr_t)p % sizeof(void *), 0);
        unsigned char *z = cc_calloc(n, 3);
        assert_non_null(z);
        for (size_t i = 0; i < 3 * n; i++) assert_int_equal(z[i], 0);
        cc_free(p, n);
        cc_free_unsized(z);
    }
    /* Large blocks go through the out-of-line path. */
    size_t big = (size_t)8 << 20;
    unsigned char *p = cc_calloc(big, 1);
    assert_non_null(p);
    assert_int_equal(p[big - 1], 0);
    cc_free(p, big);
}

static void test_alignment_every_power(void **state) {
    (void)state;
    /* Every power of two from 8 to 8192, with sizes that are multiples of the
     * alignment and sizes that are not. mimalloc 2.0.9's mi_malloc_aligned
     * gets some of these wrong (e.g. 512 bytes at 256; 3.0.1's does not,
     * tests/unit/test_mimalloc_facts.c); we must not. */
    for (size_t a = 8; a <= 8192; a *= 2) {
        size_t sizes[] = {1, a - 1, a, a + 1, 2 * a, 3 * a, 4 * a, 3 * a / 2 + 5, 8 * a, 7};
        for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            void *blocks[4];
            for (int k = 0; k < 4; k++) {
                blocks[k] = cc_alloc_aligned(sizes[i], a);
                assert_non_null(blocks[k]);
                if ((uintptr_t)blocks[k] % a != 0)
                    fail_msg("cc_alloc_aligned(%zu, %zu) returned %p", sizes[i], a, blocks[k]);
                memset(blocks[k], 0x5A, sizes[i]);
            }
            for (int k = 0; k < 4; k++) cc_free(blocks[k], sizes[i]);
        }
    }
}

static void test_node_alignment(void **state) {
    (void)state;
    assert_int_equal(CC_CACHE_LINE_SIZE, 64); /* x86-64 */
    for (size_t n = 1; n <= 5000; n += (n < 1100 ? 1 : 131)) {
        void *p = cc_alloc_node(n);
        assert_non_null(p);
        if ((uintptr_t)p % CC_CACHE_LINE_SIZE != 0) fail_msg("cc_alloc_node(%zu) = %p", n, p);
        assert_true(cc_alloc_usable_size(p) >= n);
        memset(p, 1, n);
        if (n % 2) cc_free(p, n);
        else cc_free_unsized(p);
    }
}

/* ---- statistics ----------------------------------------------------------- */

enum kind { K_ALLOC, K_CALLOC, K_NODE, K_ALIGNED };
typedef struct {
    void *p;
    size_t size;
    enum kind kind;
} block_t;

static block_t make(enum kind kind, size_t size) {
    block_t b = {NULL, size, kind};
    switch (kind) {
    case K_ALLOC: b.p = cc_alloc(size); break;
    case K_CALLOC: b.p = cc_calloc(size, 1); break;
    case K_NODE: b.p = cc_alloc_node(size); break;
    case K_ALIGNED: b.p = cc_alloc_aligned(size, 256); break;
    }
    assert_non_null(b.p);
    return b;
}

static void test_stats_balance_every_free_function(void **state) {
    (void)state;
    cc_alloc_stats_reset();
    enum { N = 3 * 700 };
    static block_t blocks[N * 4];
    size_t count = 0;
    uint64_t expected_bytes = 0;
    for (size_t i = 0; i < N; i++) {
        /* sizes cover the size table (with its ambiguous sizes) and beyond */
        size_t size = 1 + (i * 7) % 2100;
        for (int k = K_ALLOC; k <= K_ALIGNED; k++) {
            blocks[count] = make((enum kind)k, size);
            if (k != K_ALIGNED) expected_bytes += cc_alloc_usable_size(blocks[count].p);
            count++;
        }
    }
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    assert_true(s.enabled);
    assert_int_equal(s.alloc_count, count);
    assert_int_equal(s.free_count, 0);
    assert_int_equal(s.current_blocks, count);
    /* A counted byte is a byte of the block: the usable size (aligned blocks
     * are counted by their class and left out of this sum). */
    assert_true(s.alloc_bytes >= expected_bytes);
    for (size_t i = 0; i < count; i++) {
        block_t b = blocks[i];
        /* sized frees for all kinds; unsized for every other non-aligned block */
        if (b.kind != K_ALIGNED && (i / 4) % 2 == 1) cc_free_unsized(b.p);
        else cc_free(b.p, b.size);
    }
    s = cc_alloc_stats_snapshot();
    assert_int_equal(s.alloc_count, count);
    assert_int_equal(s.free_count, count);
    assert_int_equal(s.free_bytes, s.alloc_bytes);
    assert_int_equal(s.current_allocated, 0);
    assert_int_equal(s.current_blocks, 0);
}

/* An aligned block's bytes balance however full its page gets: mimalloc
 * 3.0.1's mi_usable_size of an over-allocated aligned block grows to the whole
 * block once other blocks are allocated in its page, so a free that asked it
 * counted more than the allocation did. Each aligned block (sizes above the
 * size table and ambiguous ones, alignments 256 to 4096) is followed by plain
 * blocks of its over-allocation's size, which fill its page; each free must
 * count exactly what its allocation counted. */
static void test_stats_aligned_block_balances_in_a_full_page(void **state) {
    (void)state;
    static const size_t sizes[] = {40, 100, 300, 1100, 1500, 3000};
    cc_alloc_stats_reset();
    enum { PER = 48, FILL = 4 };
    for (size_t a = 256; a <= 4096; a *= 2) {
        for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            size_t n = sizes[si];
            void *al[PER], *fill[PER * FILL];
            uint64_t counted[PER];
            for (size_t i = 0; i < PER; i++) {
                uint64_t before = cc_alloc_stats_snapshot().alloc_bytes;
                al[i] = cc_alloc_aligned(n, a);
                assert_non_null(al[i]);
                counted[i] = cc_alloc_stats_snapshot().alloc_bytes - before;
                for (size_t j = 0; j < FILL; j++) fill[i * FILL + j] = cc_alloc(n + a - 1);
            }
            for (size_t i = 0; i < PER; i++) {
                uint64_t before = cc_alloc_stats_snapshot().free_bytes;
                cc_free(al[i], n);
                uint64_t freed = cc_alloc_stats_snapshot().free_bytes - before;
                if (freed != counted[i])
                    fail_msg("cc_alloc_aligned(%zu, %zu) #%zu: allocation counted %llu bytes, the free %llu", n, a,
                             i, (unsigned long long)counted[i], (unsigned long long)freed);
            }
            for (size_t i = 0; i < PER * FILL; i++) cc_free_unsized(fill[i]);
        }
    }
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    assert_int_equal(s.free_count, s.alloc_count);
    assert_int_equal(s.free_bytes, s.alloc_bytes);
}

static void test_stats_bytes_are_usable_sizes(void **state) {
    (void)state;
    for (size_t n = 1; n <= 2100; n++) {
        cc_alloc_stats_reset();
        void *a = cc_alloc(n), *c = cc_calloc(1, n), *d = cc_alloc_node(n);
        cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
        uint64_t want = cc_alloc_usable_size(a) + cc_alloc_usable_size(c) + cc_alloc_usable_size(d);
        if (s.alloc_bytes != want)
            fail_msg("size %zu: counted %llu bytes, blocks hold %llu", n,
                     (unsigned long long)s.alloc_bytes, (unsigned long long)want);
        cc_free_unsized(a);
        cc_free(c, n);
        cc_free(d, n);
        s = cc_alloc_stats_snapshot();
        if (s.current_allocated != 0) fail_msg("size %zu: %llu bytes left", n,
                                               (unsigned long long)s.current_allocated);
        assert_int_equal(s.free_count, 3);
    }
}

static void test_stats_disabled_counts_nothing(void **state) {
    (void)state;
    cc_alloc_stats_enable(false);
    assert_false(cc_alloc_stats_enabled());
    cc_alloc_stats_reset();
    void *p = cc_alloc(40), *q = cc_alloc_node(40), *r = cc_calloc(2, 20);
    cc_free(p, 40);
    cc_free(q, 40);
    cc_free_unsized(r);
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    assert_false(s.enabled);
    assert_int_equal(s.alloc_count, 0);
    assert_int_equal(s.free_count, 0);
    assert_int_equal(s.alloc_bytes, 0);
    cc_alloc_stats_enable(true);
    assert_true(cc_alloc_stats_enabled());
}

/* The statistics window (issue 12). current_blocks / current_allocated are
 * every live block of the glue, whenever it was allocated and whether
 * statistics were on; alloc_* / free_* count what happened while statistics
 * were on since the last reset. */

/* Repro 1: allocated with statistics on, freed with them off. Bug: 1000 live
 * blocks reported with nothing live. */
static void test_stats_window_alloc_on_free_off(void **state) {
    (void)state;
    enum { N = 1000 };
    static void *b[N];
    cc_alloc_stats_enable(true);
    cc_alloc_snapshot_t base = cc_alloc_stats_snapshot();
    for (int i = 0; i < N; i++) assert_non_null(b[i] = cc_alloc(64));
    assert_int_equal(cc_alloc_stats_snapshot().current_blocks, base.current_blocks + N);
    cc_alloc_stats_enable(false);
    for (int i = 0; i < N; i++) cc_free(b[i], 64);
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    assert_false(s.enabled);
    assert_int_equal(s.current_blocks, base.current_blocks);
    assert_int_equal(s.current_allocated, base.current_allocated);
    cc_alloc_stats_enable(true);
    s = cc_alloc_stats_snapshot();
    assert_int_equal(s.current_blocks, base.current_blocks);
    assert_int_equal(s.current_allocated, base.current_allocated);
    /* the window counted the allocations, not the frees made while off */
    assert_int_equal(s.alloc_count - base.alloc_count, N);
    assert_int_equal(s.free_count, base.free_count);
}

/* Repro 2: allocated before an enable, freed after it, while new blocks are
 * live. Bug: the old frees cancelled the new blocks (1000 live, 0 shown). */
static void test_stats_window_alloc_off_free_on(void **state) {
    (void)state;
    enum { N = 1000 };
    static void *old[N], *fresh[N];
    cc_alloc_stats_enable(false);
    cc_alloc_snapshot_t base = cc_alloc_stats_snapshot();
    for (int i = 0; i < N; i++) assert_non_null(old[i] = cc_alloc(64));
    cc_alloc_stats_enable(true);
    cc_alloc_stats_reset();
    for (int i = 0; i < N; i++) cc_free(old[i], 64);
    for (int i = 0; i < N; i++) assert_non_null(fresh[i] = cc_alloc(64));
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    assert_int_equal(s.current_blocks, base.current_blocks + N);
    assert_int_equal(s.current_allocated, base.current_allocated + N * cc_alloc_usable_size(fresh[0]));
    assert_int_equal(s.alloc_count, N);
    assert_int_equal(s.free_count, N); /* frees while on, of blocks from before the window too */
    for (int i = 0; i < N; i++) cc_free(fresh[i], 64);
    s = cc_alloc_stats_snapshot();
    assert_int_equal(s.current_blocks, base.current_blocks);
    assert_int_equal(s.current_allocated, base.current_allocated);
}

/* Windows: only intervals with statistics on count; a reset empties the
 * window and leaves the live counts alone. */
static void test_stats_window_enable_disable_reset(void **state) {
    (void)state;
    cc_alloc_stats_enable(true);
    cc_alloc_stats_reset();
    cc_alloc_snapshot_t base = cc_alloc_stats_snapshot();
    assert_int_equal(base.alloc_count, 0);
    assert_int_equal(base.free_count, 0);
    void *a = cc_alloc(100);                  /* on: counted */
    cc_alloc_stats_enable(false);
    void *b = cc_alloc(100), *c = cc_alloc(100); /* off: not in the window */
    cc_free(b, 100);
    cc_alloc_stats_enable(true);
    void *d = cc_alloc_node(100);             /* on again: counted */
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    assert_int_equal(s.alloc_count, 2);
    assert_int_equal(s.free_count, 0);
    assert_int_equal(s.alloc_bytes, cc_alloc_usable_size(a) + cc_alloc_usable_size(d));
    assert_int_equal(s.current_blocks, base.current_blocks + 3); /* a, c, d */
    cc_alloc_stats_reset();
    s = cc_alloc_stats_snapshot();
    assert_int_equal(s.alloc_count, 0);
    assert_int_equal(s.current_blocks, base.current_blocks + 3);
    cc_free(a, 100);
    cc_free_unsized(c);
    cc_free(d, 100);
    s = cc_alloc_stats_snapshot();
    assert_int_equal(s.current_blocks, base.current_blocks);
    assert_int_equal(s.current_allocated, base.current_allocated);
}

static void test_reset(void **state) {
    (void)state;
    cc_alloc_snapshot_t before = cc_alloc_stats_snapshot();
    void *p = cc_alloc(100);
    cc_alloc_stats_reset();
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    assert_int_equal(s.alloc_count, 0);
    assert_int_equal(s.alloc_bytes, 0);
    assert_int_equal(s.free_count, 0);
    /* p is still live: a reset does not hide it */
    assert_int_equal(s.current_allocated, before.current_allocated + cc_alloc_usable_size(p));
    cc_free(p, 100);
    assert_int_equal(cc_alloc_stats_snapshot().current_allocated, before.current_allocated);
}

/* ---- backend and configuration ----------------------------------------------- */

static void test_backend(void **state) {
    (void)state;
    const char *env = getenv("CONCURRENT_COLLECTIONS_ALLOCATOR");
    const char *name = cc_alloc_backend();
    assert_non_null(name);
    assert_string_equal(name, env ? env : "mimalloc");
    /* Allocations have happened: no backend may be chosen any more. */
    errno = 0;
    assert_int_equal(cc_alloc_set_backend("system"), -1);
    assert_int_equal(errno, EBUSY);
    errno = 0;
    assert_int_equal(cc_alloc_set_backend(name), -1);
    assert_int_equal(errno, EBUSY);
    errno = 0;
    assert_int_equal(cc_alloc_set_backend("jemalloc"), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(cc_alloc_set_backend(NULL), -1);
    assert_int_equal(errno, EINVAL);
    assert_string_equal(cc_alloc_backend(), name);
    /* The blocks really come from the named allocator. Debian's libmimalloc
     * also exports malloc(), so `system` must reach past it to glibc's. */
    void *p = cc_alloc(64);
    bool in_mimalloc = mi_check_owned(p);
    cc_free(p, 64);
    if (strcmp(name, "mimalloc") == 0) assert_true(in_mimalloc);
    if (strcmp(name, "system") == 0) assert_false(in_mimalloc);
    /* debug wraps the process's malloc(), whichever that is, so that ASan and
     * valgrind see its blocks */
}

static void test_config(void **state) {
    (void)state;
    cc_backend_t b;
    assert_int_equal(cc_config_parse_backend("debug", &b), 0);
    assert_int_equal(b, CC_BACKEND_DEBUG);
    errno = 0;
    assert_int_equal(cc_config_parse_backend("Debug", &b), -1);
    assert_int_equal(errno, EINVAL);
    assert_string_equal(cc_config_backend_name(CC_BACKEND_SYSTEM), "system");
    assert_null(cc_config_backend_name((cc_backend_t)7));

    size_t old = cc_config_retire_threshold();
    assert_true(old >= 1);
    errno = 0;
    assert_int_equal(cc_config_set_retire_threshold(0), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(cc_config_set_retire_threshold(CC_RETIRE_THRESHOLD_MAX + 1), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(cc_config_retire_threshold(), old);
    assert_int_equal(cc_config_set_retire_threshold(17), 0);
    assert_int_equal(cc_config_retire_threshold(), 17);
    assert_int_equal(cc_config_set_retire_threshold(old), 0);
}

static void test_fail_inject(void **state) {
    (void)state;
    if (strcmp(cc_alloc_backend(), "debug") != 0) {
        errno = 0;
        assert_int_equal(cc_alloc_fail_inject(1, 0), -1);
        assert_int_equal(errno, ENOTSUP);
        return;
    }
    cc_alloc_stats_reset();
    cc_alloc_snapshot_t base = cc_alloc_stats_snapshot();
    /* the 3rd allocation from now fails, once */
    assert_int_equal(cc_alloc_fail_inject(3, 0), 0);
    void *a = cc_alloc(10), *b = cc_alloc_node(10);
    errno = 0;
    assert_fails(cc_calloc(1, 10), ENOMEM);
    void *c = cc_alloc_aligned(10, 128);
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    /* every 2nd one */
    assert_int_equal(cc_alloc_fail_inject(0, 2), 0);
    int failures = 0;
    void *blocks[10];
    for (int i = 0; i < 10; i++) {
        blocks[i] = cc_alloc(16);
        failures += blocks[i] == NULL;
    }
    assert_int_equal(failures, 5);
    assert_int_equal(cc_alloc_fail_inject(0, 0), 0);
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    assert_int_equal(s.alloc_count, 3 + 5); /* failures are not counted */
    for (int i = 0; i < 10; i++) cc_free(blocks[i], 16);
    cc_free(a, 10);
    cc_free(b, 10);
    cc_free(c, 10);
    assert_int_equal(cc_alloc_stats_snapshot().current_allocated, base.current_allocated);
}

/* A size no backend can satisfy, with statistics off as well as on: NULL and
 * ENOMEM from every allocation function (the inline fast paths included),
 * and nothing counted. */
static void test_enomem_stats_off_and_on(void **state) {
    (void)state;
    const size_t huge = (size_t)1 << 60; /* beyond any address space here */
    for (int on = 0; on < 2; on++) {
        cc_alloc_stats_enable(on != 0);
        cc_alloc_snapshot_t s0 = cc_alloc_stats_snapshot();
        errno = 0;
        assert_null(cc_alloc(huge));
        assert_int_equal(errno, ENOMEM);
        errno = 0;
        assert_null(cc_alloc_node(huge));
        assert_int_equal(errno, ENOMEM);
        errno = 0;
        assert_null(cc_calloc(1, huge));
        assert_int_equal(errno, ENOMEM);
        errno = 0;
        assert_null(cc_alloc_aligned(huge, 64));
        assert_int_equal(errno, ENOMEM);
        cc_alloc_snapshot_t s1 = cc_alloc_stats_snapshot();
        assert_int_equal(s1.current_blocks, s0.current_blocks);
        assert_int_equal(s1.alloc_count, s0.alloc_count);
    }
    cc_alloc_stats_enable(false);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_sizes),
        cmocka_unit_test(test_bad_alignment),
        cmocka_unit_test(test_free_null),
        cmocka_unit_test(test_alloc_and_calloc),
        cmocka_unit_test(test_alignment_every_power),
        cmocka_unit_test(test_node_alignment),
        cmocka_unit_test(test_stats_balance_every_free_function),
        cmocka_unit_test(test_stats_aligned_block_balances_in_a_full_page),
        cmocka_unit_test(test_stats_bytes_are_usable_sizes),
        cmocka_unit_test(test_stats_disabled_counts_nothing),
        cmocka_unit_test(test_stats_window_alloc_on_free_off),
        cmocka_unit_test(test_stats_window_alloc_off_free_on),
        cmocka_unit_test(test_stats_window_enable_disable_reset),
        cmocka_unit_test(test_reset),
        cmocka_unit_test(test_backend),
        cmocka_unit_test(test_config),
        cmocka_unit_test(test_fail_inject),
        cmocka_unit_test(test_enomem_stats_off_and_on),
    };
    return cmocka_run_group_tests(tests, setup_stats, NULL);
}
