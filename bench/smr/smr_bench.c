/*
 * smr_bench: Treiber stack and Michael-Scott queue throughput (Mops/s, a push
 * and a pop count as two operations) at 1, 2 and 4 threads, with the same
 * data-structure code and only the reclamation swapped:
 *
 *   smr      <cc/smr.h> (cc_smr_enter/exit, cc_smr_retire)
 *   leaky    no reclamation during the run (popped nodes are chained on a
 *            per-thread list through a spare field and freed after timing).
 *            Deliberately kept this way: it is the "no reclamation at
 *            all", and its nodes come from the same cc_alloc_node as every
 *            other scheme's. Never freeing means every push takes a fresh,
 *            cache-cold node (400k pairs x 64 B per thread is far beyond the
 *            caches), so leaky is NOT an upper bound on one thread: the
 *            reclaiming schemes reuse hot nodes and usually beat it. It
 *            measures "no reclamation work, but no reuse either"; compare the
 *            schemes with each other, and with leaky mostly at 2-4 threads.
 *   ck       Concurrency Kit ck_epoch 0.7.1: one record per thread,
 *            ck_epoch_begin/end, ck_epoch_call, ck_epoch_poll every
 *            `threshold` retires (the same threshold our SMR uses)
 *   free-now frees at retire: correct only with ONE thread, so measured only
 *            there; the ceiling of any scheme that frees at all (the gap
 *            between it and leaky is the price of freeing itself)
 *   urcu     liburcu call_rcu, memb flavour (read-side lock/unlock inlined
 *            with _LGPL_SOURCE; callbacks run on liburcu's worker thread)
 *
 * Two more schemes take our SMR apart; they run only when named in
 * SMR_BENCH_SCHEMES (scripts/run-bench-smr.sh runs them as a second table):
 *   smr-sections  our cc_smr_enter/exit around each operation, but popped
 *                 nodes are leaked as in leaky: the price of the sections
 *   smr-nofree    sections and cc_smr_retire, but the free callback leaks the
 *                 node instead of freeing it (chains it as leaky does): the
 *                 price of the deferral bookkeeping, without the frees and
 *                 without node reuse
 *   leaky -> smr-sections -> smr-nofree -> smr adds one cost at a time.
 *
 * Nodes for every scheme come from cc_alloc_node and have the same layout
 * (next, value, and a union of the ck/urcu deferral headers). Every cell
 * (one scheme, structure and thread count) runs in a fresh child process, so
 * that no scheme starts from the heap another one left behind (in one
 * process, leaky after a reclaiming scheme measured 33-41 Mops/s on the
 * 2-thread stack and 52-70 after itself). Schemes are interleaved within
 * each round; the table reports the median of the rounds,
 * the ratio to leaky, and the peak pending nodes (retired, not yet freed),
 * sampled by the workers every 256 retires. Before each run every worker
 * allocates and frees as many nodes as it will push (untimed), so that leaky
 * does not pay fresh-page faults the reclaiming schemes avoid.
 *
 * usage: smr_bench [rounds=3] [pairs_per_thread=400000]
 * SMR_BENCH_SCHEMES=smr,ck_epoch (a comma-separated list of scheme names)
 * runs only those (and leaky, the reference); SMR_BENCH_STRUCTURE=stack or
 * queue only that one; SMR_BENCH_NOFORK=1 runs every cell in this process
 * (for profilers that do not follow children).
 */
#define _GNU_SOURCE
#include <cc/smr.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_CK
#include <ck_epoch.h>
#endif
#ifdef HAVE_URCU
#define _LGPL_SOURCE
#include <urcu/urcu-memb.h>
#endif

#include "../bench_util.h"

#define MAX_THREADS 4
#define MAX_ROUNDS 31
#define PREFILL 1024

/* ---- nodes ------------------------------------------------------------------ */

typedef struct bnode {
    _Atomic(struct bnode *) next;
    void *value;
    union {
        struct bnode *leak_next;
#ifdef HAVE_CK
        ck_epoch_entry_t ck;
#endif
#ifdef HAVE_URCU
        struct rcu_head rcu;
#endif
    } u;
} bnode_t;

#define container_of(p, T, m) ((T *)((char *)(p) - offsetof(T, m)))

/* ---- pending counters (per thread, padded) ---------------------------------- */

typedef struct {
    _Alignas(64) _Atomic uint64_t retired;
    _Atomic uint64_t freed;
    uint64_t peak;
    bnode_t *leaked;
} slot_t;

static slot_t g_slots[MAX_THREADS];
static _Atomic uint64_t g_freed_ext; /* frees on threads without a slot */
static int g_nthreads;
static __thread slot_t *t_slot;
static unsigned g_threshold;

static inline void count_freed(void) {
    slot_t *s = t_slot;
    if (s) atomic_store_explicit(&s->freed, atomic_load_explicit(&s->freed, memory_order_relaxed) + 1,
                                 memory_order_relaxed);
    else atomic_fetch_add_explicit(&g_freed_ext, 1, memory_order_relaxed);
}

static inline void count_retired(void) {
    slot_t *s = t_slot;
    uint64_t r = atomic_load_explicit(&s->retired, memory_order_relaxed) + 1;
    atomic_store_explicit(&s->retired, r, memory_order_relaxed);
    if ((r & 255) == 0) {
        uint64_t tr = 0, tf = atomic_load_explicit(&g_freed_ext, memory_order_relaxed);
        for (int i = 0; i < g_nthreads; i++) {
            tr += atomic_load_explicit(&g_slots[i].retired, memory_order_relaxed);
            tf += atomic_load_explicit(&g_slots[i].freed, memory_order_relaxed);
        }
        uint64_t p = tr > tf ? tr - tf : 0;
        if (p > s->peak) s->peak = p;
    }
}

static void free_node_cb(void *p, size_t size) {
    cc_free(p, size);
    count_freed();
}

/* ---- reclamation schemes ----------------------------------------------------- */

/* smr */
#define SMR_ENTER() cc_smr_enter()
#define SMR_EXIT() cc_smr_exit()
#define SMR_RETIRE(n) (count_retired(), cc_smr_retire((n), sizeof(bnode_t), free_node_cb))

/* leaky */
#define LEAKY_ENTER() ((void)0)
#define LEAKY_EXIT() ((void)0)
#define LEAKY_RETIRE(n) ((n)->u.leak_next = t_slot->leaked, t_slot->leaked = (n))

/* smr-nofree: the callback leaks the node (on a worker: chained as leaky
 * does, freed after timing); on another thread (the teardown's barrier) it
 * frees it. */
static void leak_node_cb(void *p, size_t size) {
    bnode_t *n = p;
    if (t_slot) {
        n->u.leak_next = t_slot->leaked;
        t_slot->leaked = n;
    } else {
        cc_free(p, size);
    }
    count_freed();
}
#define NOFREE_RETIRE(n) (count_retired(), cc_smr_retire((n), sizeof(bnode_t), leak_node_cb))

/* free-now: frees at retire. Correct ONLY with one thread (nobody else can
 * hold the node), so it runs only there: the ceiling of any scheme that frees. */
#define FREENOW_RETIRE(n) cc_free((n), sizeof(bnode_t))

#ifdef HAVE_CK
static ck_epoch_t g_ck;
static ck_epoch_record_t g_ck_rec[MAX_THREADS];
static __thread ck_epoch_record_t *t_ck;
static __thread unsigned t_ck_n;
static void ck_cb(ck_epoch_entry_t *e) {
    cc_free(container_of(e, bnode_t, u.ck), sizeof(bnode_t));
    count_freed();
}
static inline void ck_retire(bnode_t *n) {
    count_retired();
    ck_epoch_call(t_ck, &n->u.ck, ck_cb);
    if (++t_ck_n >= g_threshold) {
        t_ck_n = 0;
        ck_epoch_poll(t_ck);
    }
}
#define CK_ENTER() ck_epoch_begin(t_ck, NULL)
#define CK_EXIT() ck_epoch_end(t_ck, NULL)
#define CK_RETIRE(n) ck_retire(n)
#endif

#ifdef HAVE_URCU
static void urcu_cb(struct rcu_head *h) {
    cc_free(container_of(h, bnode_t, u.rcu), sizeof(bnode_t));
    count_freed();
}
#define URCU_ENTER() urcu_memb_read_lock()
#define URCU_EXIT() urcu_memb_read_unlock()
#define URCU_RETIRE(n) (count_retired(), urcu_memb_call_rcu(&(n)->u.rcu, urcu_cb))
#endif

/* ---- the data structures, one copy per scheme ------------------------------ */

typedef struct {
    _Alignas(64) _Atomic(bnode_t *) head;
    char pad[64 - sizeof(void *)];
    _Alignas(64) _Atomic(bnode_t *) tail;
} ds_t;

static ds_t g_ds;

#define DEFINE_DS(X, ENTER, EXIT, RETIRE)                                                     \
    static inline void stack_push_##X(void *v) {                                              \
        bnode_t *n = cc_alloc_node(sizeof *n);                                                \
        if (!n) abort();                                                                      \
        n->value = v;                                                                         \
        bnode_t *h = atomic_load_explicit(&g_ds.head, memory_order_relaxed);                  \
        do {                                                                                  \
            atomic_store_explicit(&n->next, h, memory_order_relaxed);                         \
        } while (!atomic_compare_exchange_weak_explicit(&g_ds.head, &h, n,                    \
                                                        memory_order_release,                 \
                                                        memory_order_relaxed));               \
    }                                                                                         \
    static inline bool stack_pop_##X(void **v) {                                              \
        ENTER();                                                                              \
        bnode_t *h = atomic_load_explicit(&g_ds.head, memory_order_acquire);                  \
        while (h) {                                                                           \
            bnode_t *next = atomic_load_explicit(&h->next, memory_order_relaxed);             \
            if (atomic_compare_exchange_weak_explicit(&g_ds.head, &h, next,                   \
                                                      memory_order_acquire,                   \
                                                      memory_order_acquire))                  \
                break;                                                                        \
        }                                                                                     \
        if (!h) {                                                                             \
            EXIT();                                                                           \
            return false;                                                                     \
        }                                                                                     \
        *v = h->value;                                                                        \
        RETIRE(h);                                                                            \
        EXIT();                                                                               \
        return true;                                                                          \
    }                                                                                         \
    static inline void queue_push_##X(void *v) {                                              \
        bnode_t *n = cc_alloc_node(sizeof *n);                                                \
        if (!n) abort();                                                                      \
        n->value = v;                                                                         \
        atomic_store_explicit(&n->next, NULL, memory_order_relaxed);                          \
        ENTER();                                                                              \
        for (;;) {                                                                            \
            bnode_t *t = atomic_load_explicit(&g_ds.tail, memory_order_acquire);              \
            bnode_t *next = atomic_load_explicit(&t->next, memory_order_acquire);             \
            if (t != atomic_load_explicit(&g_ds.tail, memory_order_acquire)) continue;        \
            if (next == NULL) {                                                               \
                if (atomic_compare_exchange_weak_explicit(&t->next, &next, n,                 \
                                                          memory_order_release,               \
                                                          memory_order_acquire)) {            \
                    atomic_compare_exchange_strong_explicit(&g_ds.tail, &t, n,                \
                                                            memory_order_release,             \
                                                            memory_order_relaxed);            \
                    break;                                                                    \
                }                                                                             \
            } else {                                                                          \
                atomic_compare_exchange_strong_explicit(&g_ds.tail, &t, next,                 \
                                                        memory_order_release,                 \
                                                        memory_order_relaxed);                \
            }                                                                                 \
        }                                                                                     \
        EXIT();                                                                               \
    }                                                                                         \
    static inline bool queue_pop_##X(void **v) {                                              \
        ENTER();                                                                              \
        for (;;) {                                                                            \
            bnode_t *h = atomic_load_explicit(&g_ds.head, memory_order_acquire);              \
            bnode_t *t = atomic_load_explicit(&g_ds.tail, memory_order_acquire);              \
            bnode_t *next = atomic_load_explicit(&h->next, memory_order_acquire);             \
            if (h != atomic_load_explicit(&g_ds.head, memory_order_acquire)) continue;        \
            if (next == NULL) {                                                               \
                EXIT();                                                                       \
                return false;                                                                 \
            }                                                                                 \
            if (h == t) {                                                                     \
                atomic_compare_exchange_strong_explicit(&g_ds.tail, &t, next,                 \
                                                        memory_order_release,                 \
                                                        memory_order_relaxed);                \
                continue;                                                                     \
            }                                                                                 \
            *v = next->value;                                                                 \
            if (atomic_compare_exchange_strong_explicit(&g_ds.head, &h, next,                 \
                                                        memory_order_acquire,                 \
                                                        memory_order_relaxed)) {              \
                RETIRE(h);                                                                    \
                break;                                                                        \
            }                                                                                 \
        }                                                                                     \
        EXIT();                                                                               \
        return true;                                                                          \
    }                                                                                         \
    static void run_stack_##X(long pairs) {                                                   \
        void *v;                                                                              \
        for (long i = 0; i < pairs; i++) {                                                    \
            stack_push_##X((void *)(uintptr_t)i);                                             \
            stack_pop_##X(&v);                                                                \
        }                                                                                     \
    }                                                                                         \
    static void run_queue_##X(long pairs) {                                                   \
        void *v;                                                                              \
        for (long i = 0; i < pairs; i++) {                                                    \
            queue_push_##X((void *)(uintptr_t)i);                                             \
            queue_pop_##X(&v);                                                                \
        }                                                                                     \
    }

DEFINE_DS(smr, SMR_ENTER, SMR_EXIT, SMR_RETIRE)
DEFINE_DS(leaky, LEAKY_ENTER, LEAKY_EXIT, LEAKY_RETIRE)
DEFINE_DS(freenow, LEAKY_ENTER, LEAKY_EXIT, FREENOW_RETIRE)
DEFINE_DS(sections, SMR_ENTER, SMR_EXIT, LEAKY_RETIRE)
DEFINE_DS(nofree, SMR_ENTER, SMR_EXIT, NOFREE_RETIRE)
#ifdef HAVE_CK
DEFINE_DS(ck, CK_ENTER, CK_EXIT, CK_RETIRE)
#endif
#ifdef HAVE_URCU
DEFINE_DS(urcu, URCU_ENTER, URCU_EXIT, URCU_RETIRE)
#endif

/* ---- harness ------------------------------------------------------------------ */

enum { S_SMR, S_LEAKY, S_CK, S_URCU, S_FREENOW, S_SECTIONS, S_NOFREE, NSCHEMES };
static const char *scheme_name[NSCHEMES] = {"smr",      "leaky",        "ck_epoch",  "urcu(memb)",
                                            "free-now", "smr-sections", "smr-nofree"};
static bool scheme_on[NSCHEMES] = {true, true,
#ifdef HAVE_CK
                                   true,
#else
                                   false,
#endif
#ifdef HAVE_URCU
                                   true,
#else
                                   false,
#endif
                                   true, false, false};

/* Whether scheme s uses our SMR (registers, and ends with a barrier). */
static bool uses_smr(int s) { return s == S_SMR || s == S_SECTIONS || s == S_NOFREE; }

/* Whether scheme s is measured at this thread count (free-now: one only). */
static bool cell_on(int s, int nthreads) { return scheme_on[s] && (s != S_FREENOW || nthreads == 1); }

typedef struct {
    int id, scheme, queue;
    long pairs;
    double start, end; /* this worker's timed run (CLOCK_MONOTONIC, s) */
} warg_t;

static pthread_barrier_t g_start;


static void *worker(void *p) {
    warg_t *a = p;
    t_slot = &g_slots[a->id];
#ifdef HAVE_CK
    t_ck = &g_ck_rec[a->id];
    t_ck_n = 0;
#endif
#ifdef HAVE_URCU
    if (a->scheme == S_URCU) urcu_memb_register_thread();
#endif
    if (uses_smr(a->scheme)) { /* register */
        cc_smr_enter();
        cc_smr_exit();
    }
    /* Warm-up (untimed, every scheme): fault in as many node pages as a run
     * that never frees needs, so `leaky` does not pay page faults. */
    bnode_t **warm = malloc(sizeof *warm * (size_t)a->pairs);
    if (warm) {
        for (long i = 0; i < a->pairs; i++) warm[i] = cc_alloc_node(sizeof(bnode_t));
        for (long i = 0; i < a->pairs; i++) cc_free(warm[i], sizeof(bnode_t));
        free(warm);
    }
    pthread_barrier_wait(&g_start);
    a->start = bench_now_s();
    switch (a->scheme * 2 + a->queue) {
    case S_SMR * 2: run_stack_smr(a->pairs); break;
    case S_SMR * 2 + 1: run_queue_smr(a->pairs); break;
    case S_LEAKY * 2: run_stack_leaky(a->pairs); break;
    case S_LEAKY * 2 + 1: run_queue_leaky(a->pairs); break;
    case S_FREENOW * 2: run_stack_freenow(a->pairs); break;
    case S_FREENOW * 2 + 1: run_queue_freenow(a->pairs); break;
    case S_SECTIONS * 2: run_stack_sections(a->pairs); break;
    case S_SECTIONS * 2 + 1: run_queue_sections(a->pairs); break;
    case S_NOFREE * 2: run_stack_nofree(a->pairs); break;
    case S_NOFREE * 2 + 1: run_queue_nofree(a->pairs); break;
#ifdef HAVE_CK
    case S_CK * 2: run_stack_ck(a->pairs); break;
    case S_CK * 2 + 1: run_queue_ck(a->pairs); break;
#endif
#ifdef HAVE_URCU
    case S_URCU * 2: run_stack_urcu(a->pairs); break;
    case S_URCU * 2 + 1: run_queue_urcu(a->pairs); break;
#endif
    }
    a->end = bench_now_s();
    pthread_barrier_wait(&g_start); /* every worker is done */
#ifdef HAVE_URCU
    if (a->scheme == S_URCU) urcu_memb_unregister_thread();
#endif
    t_slot = NULL;
    return NULL;
}

static void ds_init(void) {
    bnode_t *d = cc_alloc_node(sizeof *d);
    atomic_store(&d->next, NULL);
    atomic_store(&g_ds.head, NULL);
    atomic_store(&g_ds.tail, d);
}

/* One measurement; returns Mops/s and the peak pending nodes. */
static double measure(int scheme, int queue, int nthreads, long pairs, uint64_t *peak) {
    memset(g_slots, 0, sizeof g_slots);
    atomic_store(&g_freed_ext, 0);
    g_nthreads = nthreads;
    /* Set up: the queue uses head/tail with a dummy; the stack only head. */
    if (queue) {
        ds_init();
        atomic_store(&g_ds.head, atomic_load(&g_ds.tail));
    } else {
        atomic_store(&g_ds.head, NULL);
    }
    for (int i = 0; i < PREFILL; i++) {
        bnode_t *n = cc_alloc_node(sizeof *n);
        n->value = NULL;
        if (queue) {
            atomic_store(&n->next, NULL);
            atomic_store(&atomic_load(&g_ds.tail)->next, n);
            atomic_store(&g_ds.tail, n);
        } else {
            atomic_store(&n->next, atomic_load(&g_ds.head));
            atomic_store(&g_ds.head, n);
        }
    }
    pthread_barrier_init(&g_start, NULL, (unsigned)nthreads + 1);
    pthread_t th[MAX_THREADS];
    warg_t args[MAX_THREADS];
    for (int i = 0; i < nthreads; i++) {
        args[i] = (warg_t){i, scheme, queue, pairs, 0, 0};
        pthread_create(&th[i], NULL, worker, &args[i]);
    }
    /* The timed region runs from the first worker's start to the last one's
     * end, as the workers clock them: this thread may be descheduled at the
     * barrier, so its own clock could miss part of the run. */
    pthread_barrier_wait(&g_start);
    pthread_barrier_wait(&g_start);
    for (int i = 0; i < nthreads; i++) pthread_join(th[i], NULL);
    double t0 = args[0].start, t1 = args[0].end;
    for (int i = 1; i < nthreads; i++) {
        if (args[i].start < t0) t0 = args[i].start;
        if (args[i].end > t1) t1 = args[i].end;
    }
    pthread_barrier_destroy(&g_start);
    *peak = 0;
    for (int i = 0; i < nthreads; i++)
        if (g_slots[i].peak > *peak) *peak = g_slots[i].peak;
    /* Tear down (untimed): free what is left and everything deferred. */
    bnode_t *n = atomic_load(&g_ds.head);
    while (n) {
        bnode_t *next = atomic_load(&n->next);
        cc_free(n, sizeof *n);
        n = next;
    }
    for (int i = 0; i < nthreads; i++) {
        bnode_t *l = g_slots[i].leaked;
        while (l) {
            bnode_t *next = l->u.leak_next;
            cc_free(l, sizeof *l);
            l = next;
        }
        g_slots[i].leaked = NULL;
    }
    if (uses_smr(scheme)) cc_smr_barrier();
#ifdef HAVE_CK
    if (scheme == S_CK)
        for (int i = 0; i < MAX_THREADS; i++) ck_epoch_barrier(&g_ck_rec[i]);
#endif
#ifdef HAVE_URCU
    if (scheme == S_URCU) urcu_memb_barrier();
#endif
    return 2.0 * (double)pairs * nthreads / (t1 - t0) / 1e6;
}

/* measure() in a fresh child process (see the header). The parent starts no
 * thread and allocates no node; its ck_epoch records are plain memory. */
static double measure_isolated(int scheme, int queue, int nthreads, long pairs, uint64_t *peak) {
    static int nofork = -1;
    if (nofork < 0) nofork = getenv("SMR_BENCH_NOFORK") && *getenv("SMR_BENCH_NOFORK") == '1';
    if (nofork) return measure(scheme, queue, nthreads, pairs, peak);
    struct {
        double mops;
        uint64_t peak;
    } res;
    int fd[2];
    if (pipe(fd) != 0) {
        perror("smr_bench: pipe");
        exit(1);
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        perror("smr_bench: fork");
        exit(1);
    }
    if (pid == 0) {
        close(fd[0]);
        res.mops = measure(scheme, queue, nthreads, pairs, &res.peak);
        _exit(write(fd[1], &res, sizeof res) == (ssize_t)sizeof res ? 0 : 1);
    }
    close(fd[1]);
    ssize_t got = read(fd[0], &res, sizeof res);
    close(fd[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (got != (ssize_t)sizeof res || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "smr_bench: the child measuring %s (%s, %d threads) failed (status %d)\n",
                scheme_name[scheme], queue ? "queue" : "stack", nthreads, status);
        exit(1);
    }
    *peak = res.peak;
    return res.mops;
}

/* Whether `name` is one of the comma-separated names in `list`. */
static bool listed(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncmp(p, name, n) == 0) return true;
        if (!end) break;
        p = end + 1;
    }
    return false;
}

/* Median over rounds of num[r] / den[r]. */
static double median_ratio(const double *num, const double *den, int rounds) {
    double v[MAX_ROUNDS];
    for (int r = 0; r < rounds; r++) v[r] = den[r] > 0 ? num[r] / den[r] : 0;
    qsort(v, (size_t)rounds, sizeof(double), bench_cmp_double);
    return v[rounds / 2];
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    long pairs = argc > 2 ? atol(argv[2]) : 400000;
    if (rounds < 1 || rounds > MAX_ROUNDS || pairs < 1) {
        fprintf(stderr, "usage: smr_bench [rounds 1..%d] [pairs_per_thread]\n", MAX_ROUNDS);
        return 2;
    }
    /* SMR_BENCH_SCHEMES=smr,ck_epoch,... runs only those (and leaky). */
    const char *only = getenv("SMR_BENCH_SCHEMES");
    if (only && *only)
        for (int s = 0; s < NSCHEMES; s++)
            if (s != S_LEAKY) scheme_on[s] = listed(only, scheme_name[s]);
    g_threshold = (unsigned)cc_config_retire_threshold();
#ifdef HAVE_CK
    ck_epoch_init(&g_ck);
    for (int i = 0; i < MAX_THREADS; i++) ck_epoch_register(&g_ck, &g_ck_rec[i], NULL);
#else
    printf("# ck_epoch: libck not found at build time, skipped\n");
#endif
#ifndef HAVE_URCU
    printf("# urcu: liburcu-memb not found at build time, skipped\n");
#endif
    static const int threads[] = {1, 2, 4};
    static double mops[2][3][NSCHEMES][MAX_ROUNDS];
    static uint64_t peaks[2][3][NSCHEMES][MAX_ROUNDS];
    /* SMR_BENCH_STRUCTURE=stack|queue measures only that one (for profiling). */
    const char *only_ds = getenv("SMR_BENCH_STRUCTURE");
    int q_first = only_ds && strcmp(only_ds, "queue") == 0, q_last = only_ds && strcmp(only_ds, "stack") == 0 ? 0 : 1;
    for (int r = 0; r < rounds; r++)
        for (int q = q_first; q <= q_last; q++)
            for (int t = 0; t < 3; t++)
                for (int k = 0; k < NSCHEMES; k++) {
                    int s = (k + r + t) % NSCHEMES; /* rotate the order between rounds */
                    if (!cell_on(s, threads[t])) continue;
                    mops[q][t][s][r] = measure_isolated(s, q, threads[t], pairs, &peaks[q][t][s][r]);
                }
    printf("# smr_bench: %d rounds, %ld push+pop pairs per thread, retire threshold %u, "
           "allocator %s\n",
           rounds, pairs, g_threshold, cc_alloc_backend());
    printf("# Mops/s: median over rounds. 'vs leaky' and 'smr vs it': medians over rounds of the\n"
           "# ratio of two schemes measured in the same round (slow phases of a noisy machine\n"
           "# cancel out); 'smr vs it' > 1 means our SMR was faster. 'min-max': the range of\n"
           "# Mops/s over rounds (leaky's follows the kernel's cost of faulting in fresh pages).\n");
    printf("%-9s %7s  %-12s %9s %13s %9s %10s %13s\n", "structure", "threads", "scheme", "Mops/s", "min-max",
           "vs leaky", "smr vs it", "peak pending");
    int misses = 0, checks = 0;
    char verdicts[2 * 3 * NSCHEMES][160];
    int nverdicts = 0;
    for (int q = q_first; q <= q_last; q++)
        for (int t = 0; t < 3; t++) {
            double med[NSCHEMES], lo[NSCHEMES], hi[NSCHEMES];
            uint64_t pk[NSCHEMES];
            for (int s = 0; s < NSCHEMES; s++) {
                if (!cell_on(s, threads[t])) continue;
                double v[MAX_ROUNDS];
                memcpy(v, mops[q][t][s], sizeof(double) * (size_t)rounds);
                qsort(v, (size_t)rounds, sizeof(double), bench_cmp_double);
                med[s] = v[rounds / 2];
                lo[s] = v[0];
                hi[s] = v[rounds - 1];
                pk[s] = 0;
                for (int r = 0; r < rounds; r++)
                    if (peaks[q][t][s][r] > pk[s]) pk[s] = peaks[q][t][s][r];
            }
            for (int s = 0; s < NSCHEMES; s++) {
                if (!cell_on(s, threads[t])) continue;
                char pkbuf[32];
                if (s == S_LEAKY || s == S_SECTIONS) snprintf(pkbuf, sizeof pkbuf, "(all)");
                else if (s == S_FREENOW) snprintf(pkbuf, sizeof pkbuf, "0");
                else snprintf(pkbuf, sizeof pkbuf, "%lu", (unsigned long)pk[s]);
                double vs_leaky = median_ratio(mops[q][t][s], mops[q][t][S_LEAKY], rounds);
                double smr_vs = scheme_on[S_SMR] ? median_ratio(mops[q][t][S_SMR], mops[q][t][s], rounds) : 0;
                char range[32];
                snprintf(range, sizeof range, "%.1f-%.1f", lo[s], hi[s]);
                printf("%-9s %7d  %-12s %9.2f %13s %9.2f %10.2f %13s\n", q ? "queue" : "stack", threads[t],
                       scheme_name[s], med[s], range, vs_leaky, smr_vs, pkbuf);
                if (!scheme_on[S_SMR] || s == S_SMR || s == S_FREENOW || s == S_SECTIONS || s == S_NOFREE)
                    continue; /* (no target) */
                /* Targets: smr >= 0.9 x leaky, and ahead of ck_epoch and urcu. */
                double need = s == S_LEAKY ? 0.9 : 1.0;
                bool pass = smr_vs >= need;
                checks++;
                misses += !pass;
                snprintf(verdicts[nverdicts++], sizeof verdicts[0],
                         "  %s %d thread%s: smr / %s = %.3f (target >= %.2f) %s", q ? "queue" : "stack",
                         threads[t], threads[t] == 1 ? "" : "s", scheme_name[s], smr_vs, need,
                         pass ? "PASS" : "MISS");
            }
        }
    if (checks) {
        printf("\ntargets (informational; medians of per-round ratios): %d of %d met\n", checks - misses,
               checks);
        for (int i = 0; i < nverdicts; i++) puts(verdicts[i]);
    }
    return 0;
}
