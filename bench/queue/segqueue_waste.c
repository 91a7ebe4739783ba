/*
 * segqueue_waste: segments the segment queue allocates per segment that the
 * items strictly need, when batch consumers outpace a batch producer. One
 * producer pushes `items` values with push_many(16); three consumers spin on
 * pop_many(32) until all are popped. Every slot a consumer marks TAKEN before
 * its pusher fills it sends that value to a later index, so the ratio
 * (segments allocated / (items / 1024)) is 1.00 when no claimed slot is
 * wasted. Counted with the glue's statistics (one allocation per segment).
 *
 *   segqueue_waste [items=2000000] [runs=5]
 */
#include <cc/segqueue.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#define SLOTS 1024

static cc_segqueue_t *g_q;
static long g_items;
static _Atomic long g_popped;

static void *producer(void *arg) {
    (void)arg;
    void *b[16];
    for (long i = 0; i < g_items; i += 16) {
        for (int j = 0; j < 16; j++) b[j] = (void *)(i + j + 1);
        if (cc_segqueue_push_many(g_q, b, 16) != 16) abort();
    }
    return NULL;
}

static void *consumer(void *arg) {
    (void)arg;
    void *b[32];
    while (atomic_load_explicit(&g_popped, memory_order_relaxed) < g_items) {
        size_t n = cc_segqueue_pop_many(g_q, b, 32);
        if (n) atomic_fetch_add_explicit(&g_popped, (long)n, memory_order_relaxed);
    }
    return NULL;
}

int main(int argc, char **argv) {
    g_items = argc > 1 ? atol(argv[1]) : 2000000;
    int runs = argc > 2 ? atoi(argv[2]) : 5;
    g_items -= g_items % 16;
    if (g_items < SLOTS || runs < 1) {
        fprintf(stderr, "usage: segqueue_waste [items >= 1024] [runs >= 1]\n");
        return 2;
    }
    cc_alloc_stats_enable(true);
    printf("# segqueue_waste: 1 producer push_many(16), 3 consumers pop_many(32), %ld items\n", g_items);
    for (int r = 0; r < runs; r++) {
        g_q = cc_segqueue_new();
        atomic_store(&g_popped, 0);
        cc_alloc_snapshot_t s0 = cc_alloc_stats_snapshot();
        pthread_t t[4];
        if (pthread_create(&t[0], NULL, producer, NULL) != 0) abort();
        for (int i = 1; i < 4; i++)
            if (pthread_create(&t[i], NULL, consumer, NULL) != 0) abort();
        for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
        cc_alloc_snapshot_t s1 = cc_alloc_stats_snapshot();
        double ideal = (double)g_items / SLOTS;
        unsigned long long segs = (unsigned long long)(s1.alloc_count - s0.alloc_count);
        printf("run %d: %llu segments, %.0f needed, ratio %.3f\n", r + 1, segs, ideal, (double)segs / ideal);
        cc_segqueue_destroy(g_q);
    }
    return 0;
}
