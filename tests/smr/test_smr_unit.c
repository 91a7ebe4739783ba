/*
 * Unit tests of <cc/smr.h>: every function and error path, single-threaded
 * semantics, plus the cases that need one helper thread (orphans of an exited
 * thread, nodes of an idle live thread freed by the barrier) and fork().
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "smr_test.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- a counting free function --------------------------------------------- */

#define TNODE_SIZE 48
typedef struct {
    unsigned id;
    unsigned magic;
} tnode_t;

static _Atomic unsigned long g_freed;          /* calls of count_free */
static _Atomic unsigned char g_flag[100000];   /* per id: times freed */
static _Atomic unsigned long g_bad_size;

static void count_free(void *p, size_t size) {
    tnode_t *n = p;
    if (size != TNODE_SIZE) atomic_fetch_add(&g_bad_size, 1);
    CC_CHECK(n->magic == 0xC0FFEEu);
    atomic_fetch_add(&g_flag[n->id], 1);
    n->magic = 0;
    atomic_fetch_add(&g_freed, 1);
    cc_free(p, size);
}

static _Atomic unsigned g_next_id; /* tnode() runs on several threads */
static tnode_t *tnode(void) {
    tnode_t *n = cc_alloc_node(TNODE_SIZE);
    CC_CHECK(n != NULL);
    n->id = atomic_fetch_add_explicit(&g_next_id, 1, memory_order_relaxed) % 100000;
    atomic_store(&g_flag[n->id], 0);
    n->magic = 0xC0FFEEu;
    return n;
}

static int setup(void **state) {
    (void)state;
    cc_alloc_stats_enable(true);
    assert_int_equal(cc_smr_barrier(), 0);
    return 0;
}

/* ---- tests ------------------------------------------------------------------ */

static void test_retire_null(void **state) {
    (void)state;
    cc_smr_snapshot_t a = cc_smr_stats();
    cc_smr_retire(NULL, 8, NULL);
    cc_smr_retire(NULL, 8, count_free);
    cc_smr_snapshot_t b = cc_smr_stats();
    assert_int_equal(a.retired, b.retired);
    assert_int_equal(cc_smr_barrier(), 0);
}

static void test_retire_custom_fn_once(void **state) {
    (void)state;
    unsigned long f0 = atomic_load(&g_freed);
    tnode_t *n[10];
    for (int i = 0; i < 10; i++) {
        n[i] = tnode();
        cc_smr_retire(n[i], TNODE_SIZE, count_free);
    }
    assert_int_equal(cc_smr_barrier(), 0);
    assert_int_equal(atomic_load(&g_freed) - f0, 10);
    assert_int_equal(atomic_load(&g_bad_size), 0);
    /* Another barrier frees nothing twice. */
    assert_int_equal(cc_smr_barrier(), 0);
    assert_int_equal(atomic_load(&g_freed) - f0, 10);
}

static void test_retire_default_cc_free(void **state) {
    (void)state;
    cc_alloc_snapshot_t base = cc_alloc_stats_snapshot();
    for (size_t sz = 1; sz < 300; sz += 17) {
        void *p = cc_alloc_node(sz);
        assert_non_null(p);
        cc_smr_retire(p, sz, NULL);
        void *q = cc_alloc(sz);
        assert_non_null(q);
        cc_smr_retire(q, sz, NULL);
    }
    assert_true(cc_alloc_stats_snapshot().current_allocated > base.current_allocated);
    assert_int_equal(cc_smr_barrier(), 0);
    assert_int_equal(cc_alloc_stats_snapshot().current_allocated, base.current_allocated);
    assert_int_equal(cc_alloc_stats_snapshot().current_blocks, base.current_blocks);
}

static void test_barrier_in_section(void **state) {
    (void)state;
    unsigned long f0 = atomic_load(&g_freed);
    cc_smr_enter();
    cc_smr_enter(); /* nested */
    tnode_t *n = tnode();
    cc_smr_retire(n, TNODE_SIZE, count_free);
    errno = 0;
    assert_int_equal(cc_smr_barrier(), -1);
    assert_int_equal(errno, EDEADLK);
    cc_smr_exit();
    /* still inside the outer section */
    errno = 0;
    assert_int_equal(cc_smr_barrier(), -1);
    assert_int_equal(errno, EDEADLK);
    /* Our own section pins the node: polls cannot free it. */
    for (int i = 0; i < 50; i++) cc_smr_poll();
    assert_int_equal(atomic_load(&g_flag[n->id]), 0);
    assert_int_equal(n->magic, 0xC0FFEEu);
    cc_smr_exit();
    assert_int_equal(cc_smr_barrier(), 0);
    assert_int_equal(atomic_load(&g_freed) - f0, 1);
}

static void test_unbalanced_exit_ignored(void **state) {
    (void)state;
    cc_smr_exit();
    cc_smr_exit();
    cc_smr_enter();
    cc_smr_exit();
    assert_int_equal(cc_smr_barrier(), 0); /* not stuck "inside" */
}

static void test_poll_counts(void **state) {
    (void)state;
    assert_int_equal(cc_config_set_retire_threshold(1u << 20), 0); /* no automatic help */
    unsigned long f0 = atomic_load(&g_freed);
    for (int i = 0; i < 200; i++) cc_smr_retire(tnode(), TNODE_SIZE, count_free);
    size_t polled = 0;
    for (int i = 0; i < 100 && atomic_load(&g_freed) - f0 < 200; i++) {
        unsigned long before = atomic_load(&g_freed);
        size_t n = cc_smr_poll();
        assert_int_equal(n, atomic_load(&g_freed) - before);
        polled += n;
    }
    assert_int_equal(atomic_load(&g_freed) - f0, 200);
    assert_true(polled > 0);
    assert_int_equal(cc_smr_poll(), 0);
    assert_int_equal(cc_config_set_retire_threshold(CC_RETIRE_THRESHOLD_DEFAULT), 0);
}

static void test_stats(void **state) {
    (void)state;
    assert_int_equal(cc_smr_barrier(), 0);
    cc_smr_snapshot_t a = cc_smr_stats();
    assert_int_equal(a.pending, 0);
    assert_int_equal(a.retired, a.freed);
    assert_true(a.threads >= 1);
    assert_int_equal(a.stalled_threads, 0);
    assert_int_equal(a.orphaned, 0);
    assert_int_equal(cc_config_set_retire_threshold(1u << 20), 0);
    for (int i = 0; i < 5; i++) cc_smr_retire(tnode(), TNODE_SIZE, count_free);
    cc_smr_snapshot_t b = cc_smr_stats();
    assert_int_equal(b.retired, a.retired + 5);
    assert_int_equal(b.pending, 5);
    assert_true(b.peak_pending >= 5);
    assert_true(b.epoch >= a.epoch);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_smr_snapshot_t c = cc_smr_stats();
    assert_int_equal(c.pending, 0);
    assert_int_equal(c.freed, a.freed + 5);
    assert_true(c.epoch >= b.epoch + 3);
    assert_true(c.peak_pending >= b.peak_pending);
    assert_int_equal(cc_config_set_retire_threshold(CC_RETIRE_THRESHOLD_DEFAULT), 0);
}

/* A free function that retires another node (allowed by the contract). */
static void chain_free(void *p, size_t size) {
    cc_smr_retire(tnode(), TNODE_SIZE, count_free);
    cc_free(p, size);
    atomic_fetch_add(&g_freed, 1);
}

static void test_free_fn_retires(void **state) {
    (void)state;
    unsigned long f0 = atomic_load(&g_freed);
    for (int i = 0; i < 20; i++) {
        void *p = cc_alloc_node(TNODE_SIZE);
        assert_non_null(p);
        cc_smr_retire(p, TNODE_SIZE, chain_free);
    }
    assert_int_equal(cc_smr_barrier(), 0);
    assert_true(atomic_load(&g_freed) - f0 >= 20);
    assert_int_equal(cc_smr_barrier(), 0);
    assert_int_equal(atomic_load(&g_freed) - f0, 40);
    assert_int_equal(cc_smr_stats().pending, 0);
}

static void test_threshold_bounds_single_thread(void **state) {
    (void)state;
    const unsigned th = 8;
    assert_int_equal(cc_config_set_retire_threshold(th), 0);
    assert_int_equal(cc_smr_barrier(), 0);
    uint64_t maxp = 0;
    for (int i = 0; i < 5000; i++) {
        cc_smr_enter();
        cc_smr_retire(tnode(), TNODE_SIZE, count_free);
        cc_smr_exit();
        uint64_t p = cc_smr_stats().pending;
        if (p > maxp) maxp = p;
    }
    /* Documented bound: 3 bags of ~threshold per thread. */
    assert_true(maxp <= 3 * th + 1);
    assert_int_equal(cc_config_set_retire_threshold(CC_RETIRE_THRESHOLD_DEFAULT), 0);
    assert_int_equal(cc_smr_barrier(), 0);
}

/* ---- helper-thread cases ------------------------------------------------------ */

static void *retire_and_exit(void *arg) {
    unsigned n = (unsigned)(uintptr_t)arg;
    for (unsigned i = 0; i < n; i++) cc_smr_retire(tnode(), TNODE_SIZE, count_free);
    return NULL;
}

static void test_exited_thread_orphans(void **state) {
    (void)state;
    assert_int_equal(cc_config_set_retire_threshold(1u << 20), 0);
    assert_int_equal(cc_smr_barrier(), 0);
    unsigned long f0 = atomic_load(&g_freed);
    uint64_t threads0 = cc_smr_stats().threads; /* live registered threads */
    pthread_t t;
    smr_spawn(&t, retire_and_exit, (void *)(uintptr_t)100);
    smr_join(t);
    cc_smr_snapshot_t s = cc_smr_stats();
    assert_int_equal(s.threads, threads0); /* the exited thread is not counted */
    assert_int_equal(s.pending, 100 - (atomic_load(&g_freed) - f0));
    assert_true(s.orphaned > 0);
    assert_int_equal(s.orphaned, s.pending);
    assert_int_equal(cc_smr_barrier(), 0);
    assert_int_equal(atomic_load(&g_freed) - f0, 100);
    s = cc_smr_stats();
    assert_int_equal(s.orphaned, 0);
    assert_int_equal(s.pending, 0);
    /* poll also drains orphans once safe */
    smr_spawn(&t, retire_and_exit, (void *)(uintptr_t)30);
    smr_join(t);
    for (int i = 0; i < 100 && atomic_load(&g_freed) - f0 < 130; i++) cc_smr_poll();
    assert_int_equal(atomic_load(&g_freed) - f0, 130);
    assert_int_equal(cc_config_set_retire_threshold(CC_RETIRE_THRESHOLD_DEFAULT), 0);
}

typedef struct {
    pthread_mutex_t m;
    pthread_cond_t c;
    int phase;
} gate_t;

static gate_t g_gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0};

static void gate_set(int phase) {
    pthread_mutex_lock(&g_gate.m);
    g_gate.phase = phase;
    pthread_cond_broadcast(&g_gate.c);
    pthread_mutex_unlock(&g_gate.m);
}

static void gate_add(int by) {
    pthread_mutex_lock(&g_gate.m);
    g_gate.phase += by;
    pthread_cond_broadcast(&g_gate.c);
    pthread_mutex_unlock(&g_gate.m);
}

static void gate_wait(int phase) {
    pthread_mutex_lock(&g_gate.m);
    while (g_gate.phase < phase) pthread_cond_wait(&g_gate.c, &g_gate.m);
    pthread_mutex_unlock(&g_gate.m);
}

static void *retire_and_idle(void *arg) {
    (void)arg;
    cc_smr_enter(); /* one section: nothing can be freed before it ends */
    for (unsigned i = 0; i < 50; i++) cc_smr_retire(tnode(), TNODE_SIZE, count_free);
    cc_smr_exit();
    gate_set(1);
    gate_wait(2); /* alive, idle, outside any section */
    return NULL;
}

static void test_barrier_frees_idle_thread(void **state) {
    (void)state;
    assert_int_equal(cc_config_set_retire_threshold(1u << 20), 0);
    assert_int_equal(cc_smr_barrier(), 0);
    g_gate.phase = 0;
    unsigned long f0 = atomic_load(&g_freed);
    pthread_t t;
    smr_spawn(&t, retire_and_idle, NULL);
    gate_wait(1);
    assert_int_equal(atomic_load(&g_freed) - f0, 0);
    assert_int_equal(cc_smr_barrier(), 0);
    assert_int_equal(atomic_load(&g_freed) - f0, 50);
    assert_int_equal(cc_smr_stats().orphaned, 0);
    gate_set(2);
    smr_join(t);
    assert_int_equal(cc_smr_barrier(), 0);
    assert_int_equal(atomic_load(&g_freed) - f0, 50);
    assert_int_equal(cc_config_set_retire_threshold(CC_RETIRE_THRESHOLD_DEFAULT), 0);
}

/* ---- the fence mode (asymmetric: membarrier) --------------------------------- */

/* What the mode should be in this process: the environment's setting, and
 * whether the kernel offers private expedited membarrier. */
static bool expect_asymmetric(void) {
    const char *m = getenv("CONCURRENT_COLLECTIONS_SMR_FENCE");
    if (m && strcmp(m, "always") == 0) return false;
    long cmds = syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    return cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED);
}

static void test_fence_mode_config(void **state) {
    (void)state;
    const char *m = getenv("CONCURRENT_COLLECTIONS_SMR_FENCE");
    /* (a bad value is ignored: auto) */
    cc_smr_fence_t want = m && strcmp(m, "always") == 0       ? CC_SMR_FENCE_ALWAYS
                          : m && strcmp(m, "membarrier") == 0 ? CC_SMR_FENCE_MEMBARRIER
                                                              : CC_SMR_FENCE_AUTO;
    assert_int_equal(cc_config_smr_fence(), want);
    errno = 0;
    assert_int_equal(cc_config_set_smr_fence((cc_smr_fence_t)3), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(cc_config_set_smr_fence((cc_smr_fence_t)-1), -1);
    assert_int_equal(errno, EINVAL);
    /* SMR is in use (setup ran a barrier): the mode is fixed. */
    errno = 0;
    assert_int_equal(cc_config_set_smr_fence(CC_SMR_FENCE_ALWAYS), -1);
    assert_int_equal(errno, EBUSY);
    assert_int_equal(cc_config_smr_fence(), want);
    cc_smr_snapshot_t s = cc_smr_stats();
    printf("fence mode: %s, membarriers so far %lu\n", s.asymmetric ? "asymmetric" : "always",
           (unsigned long)s.membarriers);
    assert_int_equal(s.asymmetric, expect_asymmetric());
    if (!s.asymmetric) assert_int_equal(s.membarriers, 0);
}

/* One section, then idle WITHOUT telling SMR (phase 1 -> wait for 2), or
 * after cc_smr_idle() (arg != NULL). */
static void *hold_and_idle(void *arg) {
    cc_smr_enter();
    cc_smr_exit();
    if (arg) cc_smr_idle();
    gate_set(1);
    gate_wait(2);
    return NULL;
}

/* Retires and polls on this thread until `want` of its nodes are freed or
 * 5 s pass; returns how many were freed. */
static unsigned long retire_until_freed(unsigned long want) {
    unsigned long f0 = atomic_load(&g_freed);
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        for (int i = 0; i < 64; i++) cc_smr_retire(tnode(), TNODE_SIZE, count_free);
        cc_smr_poll();
        unsigned long got = atomic_load(&g_freed) - f0;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if (got >= want || (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 > 5000)
            return got;
    }
}

/* Asymmetric mode: a live thread that keeps an old announcement and never
 * enters again must not stop reclamation: polls revoke it with membarrier(2)
 * (after the patience) and free. Without revocation nothing retired here
 * could ever be freed while the holder lives. With cc_smr_idle() first, no
 * membarrier is needed at all. */
static void idle_holder(bool announced_idle) {
    if (!cc_smr_stats().asymmetric) {
        printf("skipped: the fencing mode keeps no announcement between sections\n");
        return;
    }
    assert_int_equal(cc_smr_barrier(), 0);
    g_gate.phase = 0;
    pthread_t t;
    smr_spawn(&t, hold_and_idle, announced_idle ? (void *)1 : NULL);
    gate_wait(1);
    uint64_t m0 = cc_smr_stats().membarriers;
    unsigned long got = retire_until_freed(10000);
    uint64_t m1 = cc_smr_stats().membarriers;
    printf("idle holder%s: freed %lu, membarriers %lu\n", announced_idle ? " (cc_smr_idle)" : "", got,
           (unsigned long)(m1 - m0));
    assert_true(got >= 10000);
    if (announced_idle) assert_int_equal(m1 - m0, 0);
    else assert_true(m1 > m0);
    gate_set(2);
    smr_join(t);
    assert_int_equal(cc_smr_barrier(), 0);
}

static void test_idle_holder_revoked(void **state) { (void)state; idle_holder(false); }
static void test_idle_announced(void **state) { (void)state; idle_holder(true); }

/* Frees like count_free and, the first time, retires one more node: a free
 * function that retires (allowed), here run by the thread-exit flush. */
static _Atomic int g_retire_once;
static void retiring_free(void *p, size_t size) {
    count_free(p, size);
    if (atomic_exchange(&g_retire_once, 0)) cc_smr_retire(tnode(), TNODE_SIZE, count_free);
}

/* Retires, lets the epoch pass its nodes while idle, then enters (which
 * detaches them for freeing after the section) and exits the THREAD inside
 * that section: thread_exit's flush runs retiring_free. */
static void *retire_then_die_with_frees(void *arg) {
    (void)arg;
    cc_smr_enter();
    for (unsigned i = 0; i < 20; i++) cc_smr_retire(tnode(), TNODE_SIZE, retiring_free);
    cc_smr_exit();
    cc_smr_idle();
    gate_set(1);
    gate_wait(2);
    cc_smr_enter(); /* new epoch: detaches the safe bags (freed after the section) */
    pthread_exit(NULL); /* ... which never ends: the exit flush frees them */
}

/* Asymmetric mode: the exited thread's record must not keep an
 * announcement (re-made by a free function that retired during the exit
 * flush), or reclamation would have to revoke it with membarrier(2). */
static void test_exit_flush_leaves_no_announcement(void **state) {
    (void)state;
    if (!cc_smr_stats().asymmetric) {
        printf("skipped: the fencing mode keeps no announcement between sections\n");
        return;
    }
    assert_int_equal(cc_smr_barrier(), 0);
    g_gate.phase = 0;
    atomic_store(&g_retire_once, 1);
    unsigned long f0 = atomic_load(&g_freed);
    pthread_t t;
    smr_spawn(&t, retire_then_die_with_frees, NULL);
    gate_wait(1);
    uint64_t e0 = cc_smr_stats().epoch;
    while (cc_smr_stats().epoch < e0 + 3) cc_smr_poll(); /* the thread is idle (cc_smr_idle) */
    gate_set(2);
    smr_join(t);
    assert_int_equal(atomic_load(&g_retire_once), 0); /* the free function did retire */
    assert_true(atomic_load(&g_freed) - f0 >= 20);
    uint64_t m0 = cc_smr_stats().membarriers;
    unsigned long got = retire_until_freed(10000);
    uint64_t m1 = cc_smr_stats().membarriers;
    printf("after the exit flush: freed %lu, membarriers %lu\n", got, (unsigned long)(m1 - m0));
    assert_true(got >= 10000);
    assert_int_equal(m1 - m0, 0);
    assert_int_equal(cc_smr_barrier(), 0);
}

static void *sit_in_section(void *arg) {
    (void)arg;
    cc_smr_enter();
    gate_set(1);
    gate_wait(2);
    cc_smr_exit();
    return NULL;
}

/* fork while another thread sits inside a section: the child (where that
 * thread does not exist) must still reclaim and pass a barrier. */
static void test_fork_child_reclaims(void **state) {
    (void)state;
#ifdef SMR_TEST_TSAN
    skip(); /* TSan does not support fork() with live threads */
#endif
    g_gate.phase = 0;
    pthread_t t;
    smr_spawn(&t, sit_in_section, NULL);
    gate_wait(1);
    assert_true(cc_smr_stats().threads >= 2);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(20);
        unsigned long f0 = atomic_load(&g_freed);
        for (int i = 0; i < 10; i++) cc_smr_retire(tnode(), TNODE_SIZE, count_free);
        int rc = cc_smr_barrier();
        if (rc != 0 || atomic_load(&g_freed) - f0 != 10) {
            fprintf(stderr, "child: barrier %d, freed %lu of 10\n", rc, atomic_load(&g_freed) - f0);
            _exit(1);
        }
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    gate_set(2);
    smr_join(t);
    assert_int_equal(cc_smr_barrier(), 0);
}

/* ---- a thread that ends inside a free function (pthread_exit, cancel) ------- */

static _Atomic int g_end_how; /* 1: pthread_exit, 2: cancellation */
static _Atomic int g_end_armed, g_ended_in_free;

/* Once armed, the first call ends its thread (the node is freed all the same). */
static void ending_free(void *p, size_t size) {
    count_free(p, size);
    if (!atomic_load(&g_end_armed) || atomic_exchange(&g_ended_in_free, 1) != 0) return;
    if (atomic_load(&g_end_how) == 1) pthread_exit(NULL);
    pthread_cancel(pthread_self());
    pthread_testcancel(); /* a cancellation point inside the free function */
}

static void *retire_then_flush(void *arg) {
    unsigned n = *(unsigned *)arg;
    for (unsigned i = 0; i < n; i++) cc_smr_retire(tnode(), TNODE_SIZE, ending_free);
    atomic_store(&g_end_armed, 1);
    cc_smr_barrier(); /* runs the frees in this thread: the first ends it */
    CC_CHECK(!"the free function should have ended this thread");
    return NULL;
}

static void *retire_many(void *arg) {
    unsigned n = *(unsigned *)arg;
    for (unsigned i = 0; i < n; i++) cc_smr_retire(tnode(), TNODE_SIZE, count_free);
    CC_CHECK(cc_smr_barrier() == 0);
    return NULL;
}

/* The record of a thread that ended inside a free function is handed over
 * clean: its remaining frees run (exactly once), and the next thread that
 * reuses the record frees too. (Before the fix its record stayed `flushing`
 * with its frees queued: the next owner never freed again.) */
static void thread_ends_in_free(int how) {
    assert_int_equal(cc_smr_barrier(), 0);
    atomic_store(&g_end_how, how);
    atomic_store(&g_ended_in_free, 0);
    atomic_store(&g_end_armed, 0);
    cc_smr_snapshot_t s0 = cc_smr_stats();
    unsigned long f0 = atomic_load(&g_freed);
    unsigned n = 200;
    pthread_t t;
    smr_spawn(&t, retire_then_flush, &n);
    smr_join(t);
    assert_int_equal(atomic_load(&g_ended_in_free), 1);
    assert_int_equal(cc_smr_barrier(), 0);
    assert_int_equal(atomic_load(&g_freed) - f0, n);
    unsigned m = 20000;
    smr_spawn(&t, retire_many, &m); /* reuses the record */
    smr_join(t);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_smr_snapshot_t s1 = cc_smr_stats();
    assert_int_equal(atomic_load(&g_freed) - f0, n + m);
    assert_int_equal(s1.retired - s0.retired, n + m);
    assert_int_equal(s1.freed - s0.freed, n + m);
    assert_int_equal(s1.pending, 0);
    assert_int_equal(g_bad_size, 0);
}

static void test_thread_exits_in_free(void **state) { (void)state; thread_ends_in_free(1); }
static void test_thread_cancelled_in_free(void **state) { (void)state; thread_ends_in_free(2); }

/* ---- cc_smr_barrier() from a free function ------------------------------------ */

static _Atomic int g_inner_rc = 1, g_inner_errno;
static void barrier_free(void *p, size_t size) {
    errno = 0;
    atomic_store(&g_inner_rc, cc_smr_barrier());
    atomic_store(&g_inner_errno, errno);
    count_free(p, size);
}

static void test_barrier_in_free_fn(void **state) {
    (void)state;
    assert_int_equal(cc_smr_barrier(), 0);
    unsigned long f0 = atomic_load(&g_freed);
    cc_smr_retire(tnode(), TNODE_SIZE, barrier_free);
    assert_int_equal(cc_smr_barrier(), 0); /* runs barrier_free here */
    assert_int_equal(atomic_load(&g_freed) - f0, 1);
    assert_int_equal(atomic_load(&g_inner_rc), -1);
    assert_int_equal(atomic_load(&g_inner_errno), EDEADLK);
}

/* ---- statistics in a fork child ------------------------------------------------- */

static void *retire_idle_retire(void *arg) {
    (void)arg;
    for (unsigned i = 0; i < 100; i++) cc_smr_retire(tnode(), TNODE_SIZE, count_free);
    gate_set(1);
    gate_wait(2); /* the main thread's barrier frees these 100 (counted there) */
    cc_smr_enter();
    for (unsigned i = 0; i < 50; i++) cc_smr_retire(tnode(), TNODE_SIZE, count_free);
    cc_smr_exit();
    gate_set(3);
    gate_wait(4); /* alive in the parent, gone in the child, 50 pending */
    return NULL;
}

/* In a fork child `retired` and `freed` only grow, the gone thread's pending
 * nodes are orphans, and the child's barrier frees them. */
static void test_fork_child_stats(void **state) {
    (void)state;
#ifdef SMR_TEST_TSAN
    skip(); /* TSan does not support fork() with live threads */
#endif
    assert_int_equal(cc_config_set_retire_threshold(1u << 20), 0);
    assert_int_equal(cc_smr_barrier(), 0);
    g_gate.phase = 0;
    cc_smr_snapshot_t s0 = cc_smr_stats();
    pthread_t t;
    smr_spawn(&t, retire_idle_retire, NULL);
    gate_wait(1);
    assert_int_equal(cc_smr_barrier(), 0);
    gate_set(2);
    gate_wait(3);
    cc_smr_snapshot_t p = cc_smr_stats();
    assert_int_equal(p.retired - s0.retired, 150);
    assert_int_equal(p.freed - s0.freed, 100);
    uint64_t pending0 = s0.pending;
    assert_int_equal(p.pending - pending0, 50);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        alarm(20);
        cc_smr_snapshot_t c = cc_smr_stats();
        int bad = c.retired - s0.retired != 150 || c.freed - s0.freed != 100 || c.pending - pending0 != 50;
        int rc = cc_smr_barrier();
        cc_smr_snapshot_t d = cc_smr_stats();
        bad |= rc != 0 || d.retired - s0.retired != 150 || d.freed - s0.freed != 150 || d.pending != pending0;
        if (bad) {
            fprintf(stderr, "child: before the barrier retired %llu freed %llu pending %llu; after: %llu %llu %llu\n",
                    (unsigned long long)(c.retired - s0.retired), (unsigned long long)(c.freed - s0.freed),
                    (unsigned long long)(c.pending - pending0), (unsigned long long)(d.retired - s0.retired),
                    (unsigned long long)(d.freed - s0.freed), (unsigned long long)(d.pending - pending0));
            _exit(1);
        }
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    gate_set(4);
    smr_join(t);
    assert_int_equal(cc_smr_barrier(), 0);
    assert_int_equal(cc_config_set_retire_threshold(CC_RETIRE_THRESHOLD_DEFAULT), 0);
}

/* ---- the barrier's lock handshake: one fence for all idle records ------------ */

#define IDLE_THREADS 8
static void *retire_idle_then_wait(void *arg) {
    (void)arg;
    cc_smr_enter();
    for (unsigned i = 0; i < 10; i++) cc_smr_retire(tnode(), TNODE_SIZE, count_free);
    cc_smr_exit();
    cc_smr_idle(); /* no revocation needed: only the lock handshake fences */
    gate_add(1);
    gate_wait(2 * IDLE_THREADS); /* alive, idle, nodes in its bags */
    return NULL;
}

/* A barrier that frees the bags of 8 idle threads locks their 8 records with
 * one fence: in asymmetric mode one membarrier(2), not 8 (about 40 us each
 * on a VM). */
static void test_barrier_one_fence_for_idle_records(void **state) {
    (void)state;
    assert_int_equal(cc_config_set_retire_threshold(1u << 20), 0);
    assert_int_equal(cc_smr_barrier(), 0);
    g_gate.phase = 0;
    unsigned long f0 = atomic_load(&g_freed);
    pthread_t t[IDLE_THREADS];
    for (int i = 0; i < IDLE_THREADS; i++) smr_spawn(&t[i], retire_idle_then_wait, NULL);
    gate_wait(IDLE_THREADS);
    cc_smr_idle();
    uint64_t m0 = cc_smr_stats().membarriers;
    assert_int_equal(cc_smr_barrier(), 0);
    uint64_t m1 = cc_smr_stats().membarriers;
    assert_int_equal(atomic_load(&g_freed) - f0, 10 * IDLE_THREADS);
    if (cc_smr_stats().asymmetric) assert_int_equal(m1 - m0, 1);
    gate_set(2 * IDLE_THREADS);
    for (int i = 0; i < IDLE_THREADS; i++) smr_join(t[i]);
    assert_int_equal(cc_config_set_retire_threshold(CC_RETIRE_THRESHOLD_DEFAULT), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_retire_null),
        cmocka_unit_test(test_retire_custom_fn_once),
        cmocka_unit_test(test_retire_default_cc_free),
        cmocka_unit_test(test_barrier_in_section),
        cmocka_unit_test(test_unbalanced_exit_ignored),
        cmocka_unit_test(test_poll_counts),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_free_fn_retires),
        cmocka_unit_test(test_threshold_bounds_single_thread),
        cmocka_unit_test(test_exited_thread_orphans),
        cmocka_unit_test(test_barrier_frees_idle_thread),
        cmocka_unit_test(test_fork_child_reclaims),
        cmocka_unit_test(test_fence_mode_config),
        cmocka_unit_test(test_idle_holder_revoked),
        cmocka_unit_test(test_idle_announced),
        cmocka_unit_test(test_exit_flush_leaves_no_announcement),
        cmocka_unit_test(test_thread_exits_in_free),
        cmocka_unit_test(test_thread_cancelled_in_free),
        cmocka_unit_test(test_barrier_in_free_fn),
        cmocka_unit_test(test_fork_child_stats),
        cmocka_unit_test(test_barrier_one_fence_for_idle_records),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
