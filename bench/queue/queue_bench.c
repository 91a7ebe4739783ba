/*
 * queue_bench: hand-over throughput of the segment queue (<cc/segqueue.h>)
 * against cc_queue (Michael-Scott, the baseline), a mutex + growable ring,
 * liburcu's cds_wfcq (blocking dequeue, nodes freed at once) and Concurrency
 * Kit's ck_fifo_mpmc (nodes from cc_alloc_node, dequeued nodes retired
 * through cc_smr). The peers are optional (HAVE_URCU, HAVE_CK).
 *
 * Cells: "pairs" (every thread pushes one value, then pops one) at 1, 2, 4
 * and 8 threads; producer/consumer loads 1P/1C, 1P/3C, 3P/1C, 2P/2C, 4P/4C
 * (producers push their share, consumers pop until everything is popped,
 * yielding after a run of empty pops); and batch cells "b32-*" (the same
 * loads with push_many/pop_many of 32; a queue without a batch API loops
 * over single operations there, so the ratio shows what the batch API buys
 * against cc_queue's single operations). The machine may have fewer cores:
 * more threads than cores is on purpose.
 *
 * Rounds are interleaved (round r runs every cell with every queue, in an
 * order rotated per round) and the median of the rounds is reported, with the
 * ratio to cc_queue's median of the same run. M items/s = values handed over
 * (pushed and popped) per second of wall time.
 *
 *   queue_bench [rounds=7] [items_per_cell=400000] [csv_path]
 * QUEUE_BENCH_QUEUES=segqueue,ccqueue,... picks queues; QUEUE_BENCH_CELLS=pairs-1,...
 * picks cells.
 */
#define _GNU_SOURCE
#include <cc/queue.h>
#include <cc/segqueue.h>

#include "../bench_util.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_URCU
#define _LGPL_SOURCE
#include <urcu/wfcqueue.h>
#endif
#ifdef HAVE_CK
#include <ck_fifo.h>
#endif

/* ---- the queues behind one interface -------------------------------------- */

typedef struct {
    const char *name;
    void *(*make)(void);
    void (*drop)(void *q);
    void (*push)(void *q, void *v);
    int (*pop)(void *q, void **v);
    /* batch API, or NULL (the batch cells then loop over push/pop) */
    size_t (*push_many)(void *q, void *const *v, size_t n);
    size_t (*pop_many)(void *q, void **v, size_t max);
} qops_t;

static void *seg_make(void) { return cc_segqueue_new(); }
static void seg_drop(void *q) { cc_segqueue_destroy(q); }
static void seg_push(void *q, void *v) {
    if (!cc_segqueue_push(q, v)) abort();
}
static int seg_pop(void *q, void **v) { return cc_segqueue_pop(q, v); }
static size_t seg_push_many(void *q, void *const *v, size_t n) {
    if (cc_segqueue_push_many(q, v, n) != n) abort();
    return n;
}
static size_t seg_pop_many(void *q, void **v, size_t max) { return cc_segqueue_pop_many(q, v, max); }

static void *ms_make(void) { return cc_queue_new(); }
static void ms_drop(void *q) { cc_queue_destroy(q); }
static void ms_push(void *q, void *v) {
    if (!cc_queue_push(q, v)) abort();
}
static int ms_pop(void *q, void **v) { return cc_queue_pop(q, v); }

/* A mutex and a power-of-two ring that doubles when full. */
typedef struct {
    pthread_mutex_t lock;
    void **buf;
    size_t cap, head, len;
} ring_t;
static void *ring_make(void) {
    ring_t *r = calloc(1, sizeof *r);
    pthread_mutex_init(&r->lock, NULL);
    r->cap = 1024;
    r->buf = malloc(r->cap * sizeof *r->buf);
    return r;
}
static void ring_drop(void *q) {
    ring_t *r = q;
    pthread_mutex_destroy(&r->lock);
    free(r->buf);
    free(r);
}
static void ring_push(void *q, void *v) {
    ring_t *r = q;
    pthread_mutex_lock(&r->lock);
    if (r->len == r->cap) {
        void **nb = malloc(2 * r->cap * sizeof *nb);
        if (!nb) abort();
        for (size_t i = 0; i < r->len; i++) nb[i] = r->buf[(r->head + i) & (r->cap - 1)];
        free(r->buf);
        r->buf = nb;
        r->head = 0;
        r->cap *= 2;
    }
    r->buf[(r->head + r->len++) & (r->cap - 1)] = v;
    pthread_mutex_unlock(&r->lock);
}
static int ring_pop(void *q, void **v) {
    ring_t *r = q;
    pthread_mutex_lock(&r->lock);
    int ok = r->len > 0;
    if (ok) {
        *v = r->buf[r->head];
        r->head = (r->head + 1) & (r->cap - 1);
        r->len--;
    }
    pthread_mutex_unlock(&r->lock);
    return ok;
}

#ifdef HAVE_URCU
typedef struct {
    struct cds_wfcq_head head;
    struct cds_wfcq_tail tail;
} wfcq_t;
typedef struct {
    struct cds_wfcq_node n;
    void *value;
} wfcq_node_t;
static void *wfcq_make(void) {
    wfcq_t *w = calloc(1, sizeof *w);
    cds_wfcq_init(&w->head, &w->tail);
    return w;
}
static void wfcq_drop(void *q) {
    wfcq_t *w = q;
    struct cds_wfcq_node *n;
    while ((n = cds_wfcq_dequeue_blocking(&w->head, &w->tail)) != NULL) cc_free(n, sizeof(wfcq_node_t));
    cds_wfcq_destroy(&w->head, &w->tail);
    free(w);
}
static void wfcq_push(void *q, void *v) {
    wfcq_t *w = q;
    wfcq_node_t *n = cc_alloc_node(sizeof *n);
    if (!n) abort();
    cds_wfcq_node_init(&n->n);
    n->value = v;
    cds_wfcq_enqueue(&w->head, &w->tail, &n->n);
}
/* Blocking dequeue (the head mutex): a dequeued node is no longer read by
 * anyone, so it is freed at once. */
static int wfcq_pop(void *q, void **v) {
    wfcq_t *w = q;
    struct cds_wfcq_node *n = cds_wfcq_dequeue_blocking(&w->head, &w->tail);
    if (!n) return 0;
    wfcq_node_t *e = caa_container_of(n, wfcq_node_t, n);
    *v = e->value;
    cc_free(e, sizeof *e);
    return 1;
}
#endif

#ifdef HAVE_CK
typedef struct {
    _Alignas(64) ck_fifo_mpmc_t f;
} ckq_t;
static void *ck_make(void) {
    ckq_t *c = cc_alloc_node(sizeof *c);
    ck_fifo_mpmc_entry_t *stub = cc_alloc_node(sizeof *stub);
    ck_fifo_mpmc_init(&c->f, stub);
    return c;
}
static void ck_drop(void *q) {
    ckq_t *c = q;
    void *v;
    ck_fifo_mpmc_entry_t *g;
    while (ck_fifo_mpmc_dequeue(&c->f, &v, &g)) cc_free(g, sizeof *g);
    ck_fifo_mpmc_deinit(&c->f, &g);
    cc_free(g, sizeof *g);
    cc_free(c, sizeof *c);
}
static void ck_push(void *q, void *v) {
    ckq_t *c = q;
    ck_fifo_mpmc_entry_t *e = cc_alloc_node(sizeof *e);
    if (!e) abort();
    cc_smr_enter(); /* the enqueue reads tail nodes that dequeuers retire */
    ck_fifo_mpmc_enqueue(&c->f, e, v);
    cc_smr_exit();
}
static int ck_pop(void *q, void **v) {
    ckq_t *c = q;
    ck_fifo_mpmc_entry_t *g;
    cc_smr_enter();
    bool ok = ck_fifo_mpmc_dequeue(&c->f, v, &g);
    if (ok) cc_smr_retire(g, sizeof *g, NULL);
    cc_smr_exit();
    return ok;
}
#endif

static const qops_t all_queues[] = {
    {"ccqueue", ms_make, ms_drop, ms_push, ms_pop, NULL, NULL},
    {"segqueue", seg_make, seg_drop, seg_push, seg_pop, seg_push_many, seg_pop_many},
    {"mutex+ring", ring_make, ring_drop, ring_push, ring_pop, NULL, NULL},
#ifdef HAVE_URCU
    {"wfcq", wfcq_make, wfcq_drop, wfcq_push, wfcq_pop, NULL, NULL},
#endif
#ifdef HAVE_CK
    {"ck_fifo", ck_make, ck_drop, ck_push, ck_pop, NULL, NULL},
#endif
};
#define NQ (sizeof all_queues / sizeof *all_queues)

/* ---- cells ------------------------------------------------------------------ */

typedef struct {
    const char *name;
    unsigned pairs; /* threads doing push+pop */
    unsigned prod, cons;
    unsigned batch; /* 0: single operations; else push_many/pop_many of this many */
} cell_t;

static const cell_t all_cells[] = {
    {"pairs-1", 1, 0, 0, 0}, {"pairs-2", 2, 0, 0, 0}, {"pairs-4", 4, 0, 0, 0}, {"pairs-8", 8, 0, 0, 0},
    {"1P/1C", 0, 1, 1, 0},   {"1P/3C", 0, 1, 3, 0},   {"3P/1C", 0, 3, 1, 0},   {"2P/2C", 0, 2, 2, 0},
    {"4P/4C", 0, 4, 4, 0},
    /* batches of 32 (queues without a batch API loop over single operations) */
    {"b32-pairs-2", 2, 0, 0, 32}, {"b32-1P/1C", 0, 1, 1, 32}, {"b32-2P/2C", 0, 2, 2, 32},
};
#define BATCH_MAX 32
#define NC (sizeof all_cells / sizeof *all_cells)

typedef struct {
    const qops_t *ops;
    void *q;
    uint64_t items;       /* per producer / per pairs thread */
    uint64_t total;       /* values consumers must pop */
    _Atomic uint64_t popped;
    _Atomic unsigned ready;
    _Atomic int go;
} run_t;

typedef struct {
    run_t *r;
    int role; /* 0 pairs, 1 producer, 2 consumer */
    unsigned id;
    unsigned batch;
} arg_t;

static void push_batch(const qops_t *o, void *q, void *const *v, size_t n) {
    if (o->push_many) o->push_many(q, v, n);
    else
        for (size_t i = 0; i < n; i++) o->push(q, v[i]);
}
static size_t pop_batch(const qops_t *o, void *q, void **v, size_t max) {
    if (o->pop_many) return o->pop_many(q, v, max);
    size_t n = 0;
    while (n < max && o->pop(q, &v[n])) n++;
    return n;
}

static void wait_go(run_t *r) {
    atomic_fetch_add(&r->ready, 1);
    while (!atomic_load_explicit(&r->go, memory_order_acquire)) sched_yield();
}

static void *thread_main(void *p) {
    arg_t *a = p;
    run_t *r = a->r;
    const qops_t *o = r->ops;
    void *v;
    wait_go(r);
    if (a->batch) {
        void *buf[BATCH_MAX];
        const uint64_t b = a->batch;
        if (a->role == 0) {
            for (uint64_t i = 0; i < r->items; i += b) {
                for (uint64_t j = 0; j < b; j++) buf[j] = (void *)(uintptr_t)(i + j + 1);
                push_batch(o, r->q, buf, b);
                /* pop as many as pushed: others' pops may take ours, ours come */
                for (uint64_t got = 0; got < b;) got += pop_batch(o, r->q, buf, b - got);
            }
        } else if (a->role == 1) {
            for (uint64_t i = 0; i < r->items; i += b) {
                for (uint64_t j = 0; j < b; j++) buf[j] = (void *)(uintptr_t)(i + j + 1);
                push_batch(o, r->q, buf, b);
            }
        } else {
            unsigned misses = 0;
            while (atomic_load_explicit(&r->popped, memory_order_relaxed) < r->total) {
                size_t n = pop_batch(o, r->q, buf, b);
                if (n) {
                    atomic_fetch_add_explicit(&r->popped, n, memory_order_relaxed);
                    misses = 0;
                } else if (++misses >= 64) {
                    sched_yield();
                    misses = 0;
                }
            }
        }
        return NULL;
    }
    if (a->role == 0) {
        for (uint64_t i = 0; i < r->items; i++) {
            o->push(r->q, (void *)(uintptr_t)(i + 1));
            while (!o->pop(r->q, &v)) { /* another thread's pop took it: ours comes */
            }
        }
    } else if (a->role == 1) {
        for (uint64_t i = 0; i < r->items; i++) o->push(r->q, (void *)(uintptr_t)(i + 1));
    } else {
        unsigned misses = 0;
        while (atomic_load_explicit(&r->popped, memory_order_relaxed) < r->total) {
            if (o->pop(r->q, &v)) {
                atomic_fetch_add_explicit(&r->popped, 1, memory_order_relaxed);
                misses = 0;
            } else if (++misses >= 64) {
                sched_yield();
                misses = 0;
            }
        }
    }
    return NULL;
}

/* One run: M items/s. */
static double run_cell(const qops_t *ops, const cell_t *c, uint64_t items_per_cell) {
    unsigned n = c->pairs ? c->pairs : c->prod + c->cons;
    run_t r = {.ops = ops, .q = ops->make()};
    if (!r.q) abort();
    unsigned workers = c->pairs ? c->pairs : c->prod;
    r.items = items_per_cell / workers;
    if (c->batch) r.items -= r.items % c->batch; /* whole batches */
    r.total = c->pairs ? 0 : r.items * c->prod;
    pthread_t t[16];
    arg_t a[16];
    for (unsigned i = 0; i < n; i++) {
        a[i] = (arg_t){&r, c->pairs ? 0 : (i < c->prod ? 1 : 2), i, c->batch};
        if (pthread_create(&t[i], NULL, thread_main, &a[i]) != 0) abort();
    }
    while (atomic_load(&r.ready) < n) sched_yield();
    uint64_t t0 = bench_now_ns();
    atomic_store_explicit(&r.go, 1, memory_order_release);
    for (unsigned i = 0; i < n; i++) pthread_join(t[i], NULL);
    uint64_t t1 = bench_now_ns();
    ops->drop(r.q);
    cc_smr_poll();
    return (double)(r.items * workers) / ((double)(t1 - t0) * 1e-3);
}

static int selected(const char *env, const char *name) {
    const char *s = getenv(env);
    if (!s || !*s) return 1;
    size_t len = strlen(name);
    for (const char *p = s; (p = strstr(p, name)) != NULL; p += len)
        if ((p == s || p[-1] == ',') && (p[len] == ',' || p[len] == '\0')) return 1;
    return 0;
}

int main(int argc, char **argv) {
    unsigned rounds = argc > 1 ? (unsigned)atoi(argv[1]) : 7;
    uint64_t items = argc > 2 ? strtoull(argv[2], NULL, 10) : 400000;
    const char *csv = argc > 3 ? argv[3] : NULL;
    if (rounds < 1 || rounds > 99 || items < 8) {
        fprintf(stderr, "usage: queue_bench [rounds 1..99] [items_per_cell >= 8] [csv]\n");
        return 2;
    }
    const qops_t *qs[NQ];
    const cell_t *cs[NC];
    unsigned nq = 0, nc = 0;
    for (unsigned i = 0; i < NQ; i++)
        if (i == 0 || selected("QUEUE_BENCH_QUEUES", all_queues[i].name)) qs[nq++] = &all_queues[i];
    for (unsigned i = 0; i < NC; i++)
        if (selected("QUEUE_BENCH_CELLS", all_cells[i].name)) cs[nc++] = &all_cells[i];
    static double res[NC][NQ][99];
    for (unsigned r = 0; r < rounds; r++)
        for (unsigned c = 0; c < nc; c++)
            for (unsigned k = 0; k < nq; k++) {
                unsigned q = (k + r + c) % nq; /* rotate the order */
                res[c][q][r] = run_cell(qs[q], cs[c], items);
            }
    printf("# queue_bench: %u rounds (interleaved), %llu items per cell; median M items/s (ratio to ccqueue)\n",
           rounds, (unsigned long long)items);
    printf("%-11s %4s", "cell", "thr");
    for (unsigned q = 0; q < nq; q++) printf(" %18s", qs[q]->name);
    printf("\n");
    FILE *f = csv ? fopen(csv, "w") : NULL;
    if (f) fprintf(f, "cell,threads,queue,median_mitems_s,ratio_vs_ccqueue,rounds,min,max\n");
    for (unsigned c = 0; c < nc; c++) {
        unsigned thr = cs[c]->pairs ? cs[c]->pairs : cs[c]->prod + cs[c]->cons;
        double med[NQ];
        for (unsigned q = 0; q < nq; q++) {
            qsort(res[c][q], rounds, sizeof(double), bench_cmp_double);
            med[q] = res[c][q][rounds / 2];
        }
        printf("%-11s %4u", cs[c]->name, thr);
        for (unsigned q = 0; q < nq; q++) {
            char buf[40];
            snprintf(buf, sizeof buf, "%.2f (%.2fx)", med[q], med[q] / med[0]);
            printf(" %18s", buf);
            if (f)
                fprintf(f, "%s,%u,%s,%.3f,%.3f,%u,%.3f,%.3f\n", cs[c]->name, thr, qs[q]->name, med[q],
                        med[q] / med[0], rounds, res[c][q][0], res[c][q][rounds - 1]);
        }
        printf("\n");
    }
    if (f) fclose(f);
    return 0;
}
