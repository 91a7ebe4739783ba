/*
 * Defect 7: a program compiled with a CC_CACHE_LINE_SIZE other than the
 * library's must still drive SMR correctly.
 *
 * Built twice (tests/smr/CMakeLists.txt): with -DCC_CACHE_LINE_SIZE=128 and
 * with 32, against the library built with the default (64 on x86-64). The
 * inline enter/exit/retire of <cc/smr.h> then run with the program's macros
 * and the library's slow paths, barrier and stats with the library's. When
 * the record layout depended on the macro, the program's `depth` store
 * landed where the library reads another field: the library saw a thread
 * "in a section" forever (barrier: EDEADLK, stats: a stalled thread, nodes
 * never freed).
 *
 * Checks, all behavioural: the record layout the program sees is the fixed
 * one; sections, nested sections and retires on several threads, with a
 * live idle thread parked while the main thread reclaims; afterwards the
 * barrier succeeds, no thread counts as stalled, and every retired node was
 * freed (SMR counts and the allocation statistics balance).
 */
#include <cc/smr.h>
#include "smr_test.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifndef CC_CACHE_LINE_SIZE
#error "built with -DCC_CACHE_LINE_SIZE=N"
#endif

/* Compile-time half of the check: the program's view of the record. */
_Static_assert(offsetof(cc__smr_rec_t, depth) == CC__LAYOUT_LINE, "record layout follows the macro");
_Static_assert(sizeof(cc__smr_rec_t) == 2 * CC__LAYOUT_LINE, "record size follows the macro");

#define CHECK(c)                                                                          \
    do {                                                                                  \
        if (!(c)) {                                                                       \
            fprintf(stderr, "%s:%d: check failed: %s (CC_CACHE_LINE_SIZE=%d)\n", __FILE__, \
                    __LINE__, #c, CC_CACHE_LINE_SIZE);                                    \
            exit(1);                                                                      \
        }                                                                                 \
    } while (0)

enum { NODE = 48, WORKERS = 3 };

static unsigned g_rounds;

/* Sections in every shape the inline paths have: outermost, nested, with
 * retires inside (fast append) and past the retire budget (slow path), and
 * retires outside a section. */
static void churn(void) {
    for (unsigned i = 0; i < g_rounds; i++) {
        cc_smr_enter();
        cc_smr_enter();
        void *a = cc_alloc_node(NODE);
        CC_CHECK(a != NULL);
        CC_CHECK(((uintptr_t)a & (CC_CACHE_LINE_SIZE < 64 ? CC_CACHE_LINE_SIZE - 1 : 63)) == 0);
        cc_smr_retire(a, NODE, NULL);
        cc_smr_exit();
        void *b = cc_alloc(NODE);
        CC_CHECK(b != NULL);
        cc_smr_retire(b, NODE, NULL);
        cc_smr_exit();
        if (i % 64 == 0) {
            void *c = cc_alloc(NODE);
            CC_CHECK(c != NULL);
            cc_smr_retire(c, NODE, NULL); /* outside a section */
            (void)cc_smr_poll();
        }
    }
}

/* Workers churn, then park alive (outside any section) until main has
 * reclaimed: a live thread the library wrongly saw inside a section would
 * block the barrier or show as stalled. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static unsigned parked;
static int release_workers;

static void *worker(void *arg) {
    (void)arg;
    churn();
    pthread_mutex_lock(&mu);
    parked++;
    pthread_cond_broadcast(&cv);
    while (!release_workers) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return NULL;
}

int main(void) {
    cc_alloc_stats_enable(true);
    g_rounds = smr_scale(20000);
    CHECK(cc_smr_barrier() == 0);
    cc_alloc_snapshot_t a0 = cc_alloc_stats_snapshot();
    cc_smr_snapshot_t s0 = cc_smr_stats();

    pthread_t t[WORKERS];
    for (int i = 0; i < WORKERS; i++) CHECK(pthread_create(&t[i], NULL, worker, NULL) == 0);
    churn();
    pthread_mutex_lock(&mu);
    while (parked != WORKERS) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);

    /* Everyone is outside its sections; the workers are alive. */
    errno = 0;
    int rc = cc_smr_barrier();
    if (rc != 0) fprintf(stderr, "cc_smr_barrier: %d errno %d\n", rc, errno);
    CHECK(rc == 0);
    cc_smr_snapshot_t s = cc_smr_stats();
    CHECK(s.stalled_threads == 0);
    CHECK(s.retired - s0.retired == (uint64_t)(WORKERS + 1) * (2 * g_rounds + (g_rounds + 63) / 64));
    CHECK(s.freed - s0.freed == s.retired - s0.retired);
    CHECK(s.pending == 0);
    /* A section still works and nests after all that. */
    cc_smr_enter();
    cc_smr_enter();
    cc_smr_exit();
    CHECK(cc_smr_barrier() == -1 && errno == EDEADLK); /* still inside */
    cc_smr_exit();
    CHECK(cc_smr_barrier() == 0);

    pthread_mutex_lock(&mu);
    release_workers = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < WORKERS; i++) pthread_join(t[i], NULL);
    CHECK(cc_smr_barrier() == 0);
    cc_alloc_snapshot_t a = cc_alloc_stats_snapshot();
    CHECK(a.current_blocks == a0.current_blocks);
    CHECK(a.current_allocated == a0.current_allocated);
    printf("ok: CC_CACHE_LINE_SIZE=%d against the library's layout line %d: %llu retired, all freed\n",
           CC_CACHE_LINE_SIZE, CC__LAYOUT_LINE, (unsigned long long)(s.retired - s0.retired));
    return 0;
}
