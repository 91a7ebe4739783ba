/*
 * What the glue assumes about the mimalloc it is linked against, checked on
 * that mimalloc (2.0.9 on Debian 12, 3.0.1 on Debian 13; scripts/test.sh runs
 * this against both). docs/mimalloc3.md records the answers.
 *
 * Asserted (the glue relies on them):
 *  - mi_usable_size(mi_malloc(n)) == mi_good_size(n) for every n up to
 *    CC__SIZE_TABLE_MAX: the statistics count size_table[n] on allocation and
 *    mi_usable_size(p) in cc_free_unsized, and the two must balance;
 *  - mi_malloc_aligned_at(n, a, 0) is a-aligned (cc_alloc_aligned's path);
 *  - mi_malloc sets errno = ENOMEM when memory runs out (RLIMIT_AS);
 *  - with mimalloc 3, the glue has turned off cross-thread reclaim on free
 *    (src/alloc.c, tune_mimalloc) unless the environment sets it.
 * Printed only (the glue checks for itself, so either answer is safe):
 *  - mi_malloc_aligned(n, a) misalignments (upstream issue 700 in 2.0.9);
 *  - errno after mi_malloc(SIZE_MAX), a mi_calloc overflow and a
 *    non-power-of-two alignment; mi_malloc(0);
 *  - how many multiples of 64 bytes mi_malloc returns 64-byte aligned
 *    (cc_alloc_node's fast path; a miss takes the slow path).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cc/alloc.h>
#include <mimalloc.h>

static void test_version(void **state) {
    (void)state;
    /* The header and the library loaded at run time must agree on the major
     * version: the inline fast paths were compiled against the header. */
    printf("mimalloc: header MI_MALLOC_VERSION %d, loaded library mi_version() %d\n", MI_MALLOC_VERSION,
           mi_version());
    assert_int_equal(mi_version() / 100, MI_MALLOC_VERSION / 100);
}

static void test_usable_size_is_good_size(void **state) {
    (void)state;
    for (size_t n = 1; n <= CC__SIZE_TABLE_MAX; n++) {
        void *p = mi_malloc(n);
        assert_non_null(p);
        if (mi_usable_size(p) != mi_good_size(n))
            fail_msg("mi_usable_size(mi_malloc(%zu)) = %zu, mi_good_size = %zu", n, mi_usable_size(p),
                     mi_good_size(n));
        mi_free(p);
    }
}

static void test_aligned(void **state) {
    (void)state;
    unsigned plain_misses = 0, at_misses = 0, cases = 0;
    for (size_t a = 16; a <= 8192; a *= 2) {
        for (size_t n = a / 2; n <= 4 * a; n += a / 2) {
            void *p = mi_malloc_aligned(n, a);
            void *q = mi_malloc_aligned_at(n, a, 0);
            assert_non_null(p);
            assert_non_null(q);
            cases++;
            if ((uintptr_t)p % a) {
                if (plain_misses++ < 8) printf("mi_malloc_aligned(%zu, %zu) = %p: misaligned\n", n, a, p);
            }
            if ((uintptr_t)q % a) {
                at_misses++;
                printf("mi_malloc_aligned_at(%zu, %zu, 0) = %p: misaligned\n", n, a, q);
            }
            mi_free(p);
            mi_free(q);
        }
    }
    printf("mimalloc: mi_malloc_aligned misaligned %u of %u requests; mi_malloc_aligned_at(.., 0) %u\n",
           plain_misses, cases, at_misses);
    assert_int_equal(at_misses, 0);
}

static void test_lines_aligned(void **state) {
    (void)state;
    unsigned aligned = 0, total = 0;
    for (size_t n = 64; n <= CC__SIZE_TABLE_MAX; n += 64) {
        for (int k = 0; k < 16; k++) {
            void *p = mi_malloc(n);
            assert_non_null(p);
            total++;
            aligned += ((uintptr_t)p % 64) == 0;
            mi_free(p);
        }
    }
    printf("mimalloc: mi_malloc(multiple of 64 <= %u) 64-byte aligned in %u of %u\n", CC__SIZE_TABLE_MAX,
           aligned, total);
}

static void test_errno(void **state) {
    (void)state;
    volatile size_t huge = SIZE_MAX; /* volatile: not a constant the compiler warns about */
    errno = 0;
    void *p = mi_malloc(huge);
    int e1 = errno;
    assert_null(p);
    errno = 0;
    p = mi_calloc(huge / 2, 3);
    int e2 = errno;
    assert_null(p);
    errno = 0;
    p = mi_malloc_aligned(64, 48);
    int e3 = errno;
    if (p) mi_free(p);
    void *z1 = mi_malloc(0), *z2 = mi_malloc(0);
    printf("mimalloc: errno after mi_malloc(SIZE_MAX) %d, mi_calloc overflow %d, alignment 48 %d (%s); "
           "mi_malloc(0) %s\n",
           e1, e2, e3, p ? "a block" : "NULL", z1 && z2 && z1 != z2 ? "unique blocks" : "NULL or shared");
    mi_free(z1);
    mi_free(z2);
    /* Running out for real (RLIMIT_AS 256 MiB above the current mappings, in a child): src/mutations.txt
     * (alloc-enomem) counts on mimalloc setting ENOMEM itself then. */
    fflush(stdout);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* 256 MiB above what the process maps already (mimalloc 3 reserves
         * a 1 GiB arena up front). */
        unsigned long long pages = 0;
        FILE *f = fopen("/proc/self/statm", "r");
        if (f == NULL || fscanf(f, "%llu", &pages) != 1) _exit(2);
        fclose(f);
        rlim_t limit = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (256u << 20);
        struct rlimit rl = {limit, limit};
        setrlimit(RLIMIT_AS, &rl);
        unsigned long blocks = 0;
        errno = 0;
        while (mi_malloc(1000) != NULL) blocks++;
        printf("mimalloc: with RLIMIT_AS 256 MiB above its mappings mi_malloc(1000) returned NULL after %lu blocks, errno %d\n",
               blocks, errno);
        _exit(errno == ENOMEM ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The glue's own contract: EINVAL / ENOMEM whatever mimalloc does. */
    errno = 0;
    assert_null(cc_alloc(huge));
    assert_int_equal(errno, ENOMEM);
}

static void test_reclaim_on_free_off(void **state) {
    (void)state;
    cc_free(cc_alloc(8), 8); /* initialises the glue */
#ifdef CC_MI_RECLAIM_OPTION
    long v = mi_option_get(CC_MI_RECLAIM_OPTION);
    printf("mimalloc: reclaim on free = %ld\n", v);
    if (getenv("MIMALLOC_RECLAIM_ON_FREE") == NULL && getenv("MIMALLOC_PAGE_RECLAIM_ON_FREE") == NULL)
        assert_int_equal(v, 0);
#else
    assert_true(MI_MALLOC_VERSION < 300); /* mimalloc 3 has the option: the build must find it */
    printf("mimalloc: no reclaim-on-free option (before 3.0)\n");
#endif
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_usable_size_is_good_size),
        cmocka_unit_test(test_aligned),
        cmocka_unit_test(test_lines_aligned),
        cmocka_unit_test(test_errno),
        cmocka_unit_test(test_reclaim_on_free_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
