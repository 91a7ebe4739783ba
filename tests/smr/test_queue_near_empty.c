/*
 * Issue 15: a queue kept near empty, so head catches up with tail all the
 * time (the lagging-tail paths of push and pop run under contention).
 *
 * Producers push distinct values; as many consumers pop as fast as they can,
 * so most pops find the queue empty or holding the node a producer has just
 * linked, often before that producer swung the tail. More threads than
 * cores, so producers are preempted between their link and their swing.
 * Checks: every value is popped exactly once (nothing lost or duplicated, a
 * freed-and-reused node would show up as a duplicate or a foreign value),
 * each consumer sees each producer's values in push order (FIFO per
 * producer), and every node is freed at the end. Run it under ASan with the
 * debug backend to catch a use-after-free directly.
 *
 * This exercises the paths; the deterministic proof that both operations
 * help a lagging tail is tests/smr/test_queue_lag.c.
 */
#include <cc/queue.h>
#include "smr_test.h"

#include <stdint.h>
#include <stdio.h>

#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            exit(1);                                                          \
        }                                                                     \
    } while (0)

enum { PRODUCERS = 4, CONSUMERS = 4 };

static cc_queue_t *g_q;
static unsigned g_per_producer;
static _Atomic unsigned char *g_seen; /* [producer * per + seq] */
static _Atomic uint64_t g_popped;

/* value = (producer << 32) | (seq + 1): never NULL, and tells its origin. */
static void *encode(unsigned p, unsigned seq) {
    return (void *)(uintptr_t)(((uint64_t)p << 32) | (uint64_t)(seq + 1));
}

static void *producer(void *arg) {
    unsigned p = (unsigned)(uintptr_t)arg;
    for (unsigned i = 0; i < g_per_producer; i++) CC_CHECK(cc_queue_push(g_q, encode(p, i)));
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    uint64_t total = (uint64_t)PRODUCERS * g_per_producer;
    int64_t last[PRODUCERS];
    for (int p = 0; p < PRODUCERS; p++) last[p] = -1;
    while (atomic_load(&g_popped) < total) {
        void *v;
        if (!cc_queue_pop(g_q, &v)) continue;
        uint64_t x = (uint64_t)(uintptr_t)v;
        unsigned p = (unsigned)(x >> 32);
        uint64_t seq1 = x & 0xffffffffu;
        CC_CHECK(p < PRODUCERS && seq1 >= 1 && seq1 <= g_per_producer);
        int64_t seq = (int64_t)seq1 - 1;
        CC_CHECK(seq > last[p]); /* FIFO per producer, as one consumer sees it */
        last[p] = seq;
        CC_CHECK(atomic_fetch_add(&g_seen[(size_t)p * g_per_producer + (size_t)seq], 1) == 0);
        atomic_fetch_add(&g_popped, 1);
    }
    return NULL;
}

int main(void) {
    cc_alloc_stats_enable(true);
    CHECK(cc_smr_barrier() == 0);
    cc_alloc_snapshot_t a0 = cc_alloc_stats_snapshot();
    g_per_producer = smr_scale(100000);
    g_seen = calloc((size_t)PRODUCERS * g_per_producer, 1);
    CHECK(g_seen != NULL);
    g_q = cc_queue_new();
    CHECK(g_q != NULL);

    pthread_t c[CONSUMERS], p[PRODUCERS];
    for (int i = 0; i < CONSUMERS; i++) CHECK(pthread_create(&c[i], NULL, consumer, NULL) == 0);
    for (int i = 0; i < PRODUCERS; i++)
        CHECK(pthread_create(&p[i], NULL, producer, (void *)(uintptr_t)i) == 0);
    for (int i = 0; i < PRODUCERS; i++) pthread_join(p[i], NULL);
    for (int i = 0; i < CONSUMERS; i++) pthread_join(c[i], NULL);

    for (size_t i = 0; i < (size_t)PRODUCERS * g_per_producer; i++) CHECK(atomic_load(&g_seen[i]) == 1);
    void *v;
    CHECK(!cc_queue_pop(g_q, &v));
    CHECK(cc_queue_size(g_q) == 0);
    cc_queue_destroy(g_q);
    CHECK(cc_smr_barrier() == 0);
    cc_alloc_snapshot_t a = cc_alloc_stats_snapshot();
    CHECK(a.current_blocks == a0.current_blocks);
    CHECK(a.current_allocated == a0.current_allocated);
    free((void *)g_seen);
    printf("ok: %u values from %d producers, each popped once, FIFO per producer\n",
           PRODUCERS * g_per_producer, PRODUCERS);
    return 0;
}
