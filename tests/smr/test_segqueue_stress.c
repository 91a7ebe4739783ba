/*
 * MPMC stress of <cc/segqueue.h>: 4 to 16 real threads (more than the cores
 * on purpose) pushing and popping with single and batch operations, over
 * many segment boundaries. Checked:
 *  - every value pushed is popped exactly once (a per-value counter);
 *  - per-producer FIFO: each consumer sees each producer's values in
 *    increasing order (within a pop_many batch too);
 *  - the glue's current_allocated/current_blocks return to their baseline
 *    after destroy + cc_smr_barrier() (every segment retired and freed).
 * Run under ASan+UBSan and TSan too (scripts/test.sh).
 */
#include <cc/segqueue.h>
#include "smr_test.h"

#include <stdatomic.h>
#include <stdint.h>

#define MAX_THREADS 16
#define BATCH 37 /* not a divisor of the segment size: batches straddle boundaries */

typedef struct {
    cc_segqueue_t *q;
    unsigned nprod;               /* threads 0..nprod-1 push (mixed threads too) */
    uint64_t per_producer;
    _Atomic uint64_t popped;      /* values popped so far, all threads */
    uint64_t total;
    _Atomic uint8_t *seen[MAX_THREADS];
} ctx_t;

typedef struct {
    ctx_t *c;
    unsigned id;
    int push, pop; /* roles */
    uint64_t last[MAX_THREADS];   /* last sequence seen per producer, +1 */
} worker_t;

#define VAL(p, s) ((void *)(uintptr_t)(((uint64_t)(p) << 40) | ((s) + 1)))

static void consume(worker_t *w, void *v) {
    uint64_t x = (uint64_t)(uintptr_t)v;
    unsigned p = (unsigned)(x >> 40);
    uint64_t s = (x & ((1ull << 40) - 1)) - 1;
    CC_CHECK(p < w->c->nprod && s < w->c->per_producer);
    CC_CHECK(s + 1 > w->last[p]); /* per-producer FIFO */
    w->last[p] = s + 1;
    CC_CHECK(atomic_fetch_add_explicit(&w->c->seen[p][s], 1, memory_order_relaxed) == 0);
}

static int try_pop(worker_t *w, unsigned round) {
    ctx_t *c = w->c;
    void *out[BATCH];
    size_t n;
    if (round % 3 == 0) {
        n = cc_segqueue_pop_many(c->q, out, 1 + round % BATCH);
    } else {
        n = cc_segqueue_pop(c->q, out) ? 1 : 0;
    }
    for (size_t i = 0; i < n; i++) consume(w, out[i]);
    if (n) atomic_fetch_add_explicit(&c->popped, n, memory_order_relaxed);
    return (int)n;
}

static void *worker(void *arg) {
    worker_t *w = arg;
    ctx_t *c = w->c;
    uint64_t s = 0;
    unsigned round = w->id;
    while (w->push && s < c->per_producer) {
        if (round % 4 == 0) { /* a batch */
            void *in[BATCH];
            size_t k = 1 + round % BATCH;
            if (k > c->per_producer - s) k = c->per_producer - s;
            for (size_t i = 0; i < k; i++) in[i] = VAL(w->id, s + i);
            CC_CHECK(cc_segqueue_push_many(c->q, in, k) == k);
            s += k;
        } else {
            CC_CHECK(cc_segqueue_push(c->q, VAL(w->id, s)));
            s++;
        }
        if (w->pop) (void)try_pop(w, round);
        round++;
    }
    while (w->pop && atomic_load_explicit(&c->popped, memory_order_relaxed) < c->total) {
        if (!try_pop(w, round++)) sched_yield();
    }
    return NULL;
}

/* nprod producers (of which `mixed` also pop) and ncons pure consumers. */
static void run(unsigned nprod, unsigned mixed, unsigned ncons, uint64_t per) {
    CC_CHECK(nprod + ncons <= MAX_THREADS && mixed <= nprod);
    CC_CHECK(cc_smr_barrier() == 0);
    cc_alloc_snapshot_t a0 = cc_alloc_stats_snapshot();
    static ctx_t c;
    static worker_t w[MAX_THREADS];
    memset(&c, 0, sizeof c);
    c.q = cc_segqueue_new();
    CC_CHECK(c.q != NULL);
    c.nprod = nprod;
    c.per_producer = per;
    c.total = per * nprod;
    for (unsigned p = 0; p < nprod; p++) c.seen[p] = calloc(per, 1);
    pthread_t t[MAX_THREADS];
    for (unsigned i = 0; i < nprod + ncons; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i] = (worker_t){.c = &c, .id = i, .push = i < nprod, .pop = i >= nprod || i < mixed};
        smr_spawn(&t[i], worker, &w[i]);
    }
    for (unsigned i = 0; i < nprod + ncons; i++) smr_join(t[i]);
    CC_CHECK(atomic_load(&c.popped) == c.total);
    void *v;
    CC_CHECK(!cc_segqueue_pop(c.q, &v));
    CC_CHECK(cc_segqueue_size(c.q) == 0);
    for (unsigned p = 0; p < nprod; p++) {
        for (uint64_t s = 0; s < per; s++) CC_CHECK(c.seen[p][s] == 1);
        free(c.seen[p]);
    }
    /* leave some items behind for destroy */
    for (uintptr_t i = 0; i < 3000; i++) CC_CHECK(cc_segqueue_push(c.q, (void *)i));
    cc_segqueue_destroy(c.q);
    CC_CHECK(cc_smr_barrier() == 0);
    cc_alloc_snapshot_t a = cc_alloc_stats_snapshot();
    CC_CHECK(a.current_allocated == a0.current_allocated);
    CC_CHECK(a.current_blocks == a0.current_blocks);
    printf("ok: %u producers (%u also pop), %u consumers, %llu values each\n", nprod, mixed, ncons,
           (unsigned long long)per);
}

int main(void) {
    cc_alloc_stats_enable(true);
    uint64_t per = smr_scale(200000);
    run(2, 0, 2, per);         /* 4 threads */
    run(1, 0, 3, per);         /* 1P/3C */
    run(3, 0, 1, per);         /* 3P/1C */
    run(8, 8, 0, per / 2);     /* 8 threads, each push + pop */
    run(6, 2, 10, per / 4);    /* 16 threads */
    return 0;
}
