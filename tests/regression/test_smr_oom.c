/*
 * SMR bookkeeping under allocation failure (issue 6: "SMR bookkeeping
 * allocations never lose a retired node").
 *
 * SMR's limbo-bag chunks come from the C library's malloc, not from the glue,
 * so cc_alloc_fail_inject cannot reach them. This test is linked with
 * -Wl,--wrap=malloc: every call to malloc from the static library (and this
 * file) goes to __wrap_malloc below, which fails while the calling thread has
 * t_fail set. Nodes are allocated first (flag off), then retired with the flag
 * on, so every chunk allocation fails and src/smr_limbo.c must fall back to its
 * cached chunks, recycling its safe bags, the static reserve and finally a
 * synchronous free (waiting for the epoch) -- without losing a node.
 *
 *  - test_oom_single: one thread retires N nodes outside sections;
 *  - test_oom_in_section: retires 300 nodes inside one user section (fits in
 *    the cache + reserve: 10 chunks x 62; beyond that smr_limbo.c aborts by design);
 *  - test_oom_threads: 4 threads retire with malloc failing while 3 others
 *    (malloc working) run a queue and a stack and retire normally, so the
 *    synchronous fallback must wait for real sections to end.
 * Each: every node freed exactly once (flags), after the barrier nothing
 * pending, the glue's counters back to baseline; the number of failed mallocs
 * and of frees that ran synchronously inside cc_smr_retire are printed (and
 * must be > 0: the fallback paths were taken).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "reg_test.h"

#include <errno.h>
#include <stdatomic.h>

void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);

static __thread int t_fail;
static __thread int t_in_retire;
static _Atomic uint64_t g_malloc_failed;

void *__wrap_malloc(size_t size) {
    if (t_fail) {
        atomic_fetch_add_explicit(&g_malloc_failed, 1, memory_order_relaxed);
        errno = ENOMEM;
        return NULL;
    }
    return __real_malloc(size);
}

#define MAXN 200000u
typedef struct {
    uint32_t id;
    uint32_t magic;
} onode_t;

static _Atomic unsigned char g_freed[MAXN];
static _Atomic uint64_t g_sync_frees;
static _Atomic uint32_t g_next;

static void onode_free(void *p, size_t size) {
    onode_t *n = p;
    CC_CHECK(size == sizeof *n);
    CC_CHECK(n->magic == 0x00DEC0DEu);
    CC_CHECK(n->id < MAXN);
    n->magic = 0;
    CC_CHECK(atomic_fetch_add(&g_freed[n->id], 1) == 0);
    if (t_in_retire) atomic_fetch_add(&g_sync_frees, 1);
    cc_free(p, size);
}

static onode_t **make_nodes(unsigned n) {
    onode_t **v = __real_malloc(n * sizeof *v);
    CC_CHECK(v != NULL);
    for (unsigned i = 0; i < n; i++) {
        v[i] = cc_alloc_node(sizeof(onode_t));
        CC_CHECK(v[i] != NULL);
        v[i]->id = atomic_fetch_add(&g_next, 1);
        CC_CHECK(v[i]->id < MAXN);
        v[i]->magic = 0x00DEC0DEu;
    }
    return v;
}

/* Retires v[0..n) with malloc failing on this thread. */
static void retire_failing(onode_t **v, unsigned n, int in_section) {
    t_fail = 1;
    if (in_section) cc_smr_enter();
    for (unsigned i = 0; i < n; i++) {
        t_in_retire = 1;
        cc_smr_retire(v[i], sizeof(onode_t), onode_free);
        t_in_retire = 0;
    }
    if (in_section) cc_smr_exit();
    t_fail = 0;
    free(v);
}

static cc_alloc_snapshot_t g_base;
static cc_smr_snapshot_t g_smr_base;

static int before_each(void **state) {
    (void)state;
    cc_alloc_stats_enable(true);
    assert_int_equal(cc_smr_barrier(), 0);
    memset((void *)g_freed, 0, sizeof g_freed);
    atomic_store(&g_next, 0);
    atomic_store(&g_sync_frees, 0);
    atomic_store(&g_malloc_failed, 0);
    g_base = cc_alloc_stats_snapshot();
    g_smr_base = cc_smr_stats();
    return 0;
}

/* `retired`: how many nodes the test retired since before_each, if it knows
 * exactly (no queue or stack ran), else 0. Every retire -- the synchronous
 * fallback's too -- counts once in `retired` and once in `freed`: compared as
 * deltas, since cc_smr_stats() clamps `freed` to `retired` (an uncounted
 * retire would otherwise hide as pending 0). */
static void check_all_freed(const char *name, uint64_t retired) {
    assert_int_equal(cc_smr_barrier(), 0);
    uint32_t n = atomic_load(&g_next);
    for (uint32_t i = 0; i < n; i++)
        if (atomic_load(&g_freed[i]) != 1) fail_msg("node %u freed %u times", i, (unsigned)atomic_load(&g_freed[i]));
    cc_smr_snapshot_t s = cc_smr_stats();
    if (retired != 0) {
        assert_int_equal(s.retired - g_smr_base.retired, retired);
        assert_int_equal(s.freed - g_smr_base.freed, retired);
    } else {
        assert_true(s.retired - g_smr_base.retired >= n);
    }
    assert_int_equal(s.pending, 0);
    assert_int_equal(s.orphaned, 0);
    cc_alloc_snapshot_t a = cc_alloc_stats_snapshot();
    assert_int_equal(a.current_blocks, g_base.current_blocks);
    assert_int_equal(a.current_allocated, g_base.current_allocated);
    printf("smr_oom %s: %u nodes retired with malloc failing, each freed exactly once; %llu mallocs "
           "failed, %llu frees ran synchronously inside cc_smr_retire\n",
           name, n, (unsigned long long)atomic_load(&g_malloc_failed),
           (unsigned long long)atomic_load(&g_sync_frees));
    assert_true(atomic_load(&g_malloc_failed) > 0);
}

static void test_oom_single(void **state) {
    (void)state;
    unsigned n = reg_scale(20000, 2000);
    retire_failing(make_nodes(n), n, 0);
    assert_true(atomic_load(&g_sync_frees) > 0); /* the last-resort path ran */
    check_all_freed("single", n);
}

static void test_oom_in_section(void **state) {
    (void)state;
    retire_failing(make_nodes(300), 300, 1);
    check_all_freed("in-section", 300);
}

static _Atomic int g_stop;
static cc_queue_t *g_q;
static cc_stack_t *g_s;

static void *failing_retirer(void *arg) {
    unsigned n = (unsigned)(uintptr_t)arg;
    onode_t **v = make_nodes(n);
    retire_failing(v, n, 0);
    return NULL;
}

static void *normal_worker(void *arg) {
    uintptr_t k = 1 + (uintptr_t)arg;
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        void *v;
        CC_CHECK(cc_queue_push(g_q, (void *)k));
        CC_CHECK(cc_stack_push(g_s, (void *)k));
        CC_CHECK(cc_queue_pop(g_q, &v));
        CC_CHECK(cc_stack_pop(g_s, &v));
        onode_t **one = make_nodes(1);
        cc_smr_enter();
        cc_smr_retire(one[0], sizeof(onode_t), onode_free);
        cc_smr_exit();
        free(one);
        if (atomic_load(&g_next) > MAXN - 5000) break;
    }
    return NULL;
}

static void test_oom_threads(void **state) {
    (void)state;
    g_q = cc_queue_new();
    g_s = cc_stack_new();
    assert_non_null(g_q);
    assert_non_null(g_s);
    atomic_store(&g_stop, 0);
    pthread_t w[3], r[4];
    for (unsigned i = 0; i < 3; i++) reg_spawn(&w[i], normal_worker, (void *)(uintptr_t)i);
    unsigned per = reg_scale(10000, 1000);
    for (unsigned i = 0; i < 4; i++) reg_spawn(&r[i], failing_retirer, (void *)(uintptr_t)per);
    for (unsigned i = 0; i < 4; i++) reg_join(r[i]);
    atomic_store(&g_stop, 1);
    for (unsigned i = 0; i < 3; i++) reg_join(w[i]);
    cc_queue_destroy(g_q);
    cc_stack_destroy(g_s);
    check_all_freed("threads", 0);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_oom_single, before_each),
        cmocka_unit_test_setup(test_oom_in_section, before_each),
        cmocka_unit_test_setup(test_oom_threads, before_each),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
