/*
 * pipeline -- the project's main job: a three-stage pipeline over the
 * project's own queue (<cc/segqueue.h>), with the allocation glue and SMR
 * statistics watched while it runs.
 *
 *   producers --q1--> workers --q2--> consumers
 *
 * A producer allocates a block (cc_alloc, 16 B .. 4 KiB), writes a pattern
 * derived from its sequence number, and pushes a descriptor (cc_alloc_node)
 * onto q1. A worker takes up to 32 descriptors at once (cc_segqueue_pop_many),
 * checks each pattern, rewrites the block for the next stage and passes the
 * batch on (cc_segqueue_push_many). A consumer checks the second pattern and
 * frees block and descriptor: every block is freed by another thread than
 * the one that allocated it, and each queue segment is retired through SMR.
 *
 * It runs for --seconds (default 5; --quick: 0.5) or until --items items
 * went through, printing progress every second when the run is longer than
 * two. At the end it prints throughput, the allocation statistics and the SMR
 * statistics, and exits 0 only when every item arrived intact exactly once
 * and, after the queues are destroyed and cc_smr_barrier() returns, the glue
 * is back to the blocks it held before the run.
 *
 * Usage: pipeline [--producers N] [--workers N] [--consumers N]
 *                 [--seconds S | --items N] [--quick]
 * The backend follows CONCURRENT_COLLECTIONS_ALLOCATOR. Exit status: 0 OK,
 * 1 statistics do not balance, 2 an item was lost, duplicated or damaged or
 * an allocation failed, 64 bad usage.
 */
#include <cc/segqueue.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_THREADS 64
#define BATCH 32
/* Producers pause while q1 holds this many items: the queue is unbounded, and
 * a pipeline whose first stage outruns the rest would only grow. */
#define HIGH_WATER 65536

typedef struct {
    unsigned char *block;
    size_t size;
    uint64_t seq; /* producer id in the top 8 bits, its counter below */
} item_t;

static cc_segqueue_t *q1, *q2;
static _Atomic int stop;                 /* producers stop (deadline or item count) */
static _Atomic unsigned producers_left, workers_left;
static _Atomic uint64_t through;          /* items freed by consumers (progress only) */
static uint64_t item_limit;              /* 0: run by time */

typedef struct {
    unsigned id;
    pthread_t thread;
    uint64_t made, checked, freed, bad;
    int alloc_errno;
    unsigned char seen_pad[64]; /* keep the counters of two threads off one line */
} worker_t;

static unsigned char pattern(uint64_t seq, size_t i, int stage) {
    return (unsigned char)((seq * 0x9E3779B97F4A7C15ull >> 56) + i * 31u + (unsigned)stage * 101u);
}
static int check_block(const item_t *it, int stage) {
    for (size_t i = 0; i < it->size; i += 61)
        if (it->block[i] != pattern(it->seq, i, stage)) return 0;
    return it->block[it->size - 1] == pattern(it->seq, it->size - 1, stage);
}
static void write_block(item_t *it, int stage) {
    for (size_t i = 0; i < it->size; i += 61) it->block[i] = pattern(it->seq, i, stage);
    it->block[it->size - 1] = pattern(it->seq, it->size - 1, stage);
}

static void *producer(void *arg) {
    worker_t *w = arg;
    uint64_t x = 0x2545F4914F6CDD1Dull ^ w->id; /* xorshift: sizes */
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        if ((w->made & 255) == 0 && cc_segqueue_size(q1) > HIGH_WATER) {
            sched_yield();
            continue;
        }
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        item_t *it = cc_alloc_node(sizeof *it);
        size_t size = 16 + (size_t)(x % 4081);
        unsigned char *block = it ? cc_alloc(size) : NULL;
        if (block == NULL) {
            w->alloc_errno = errno;
            if (it) cc_free(it, sizeof *it);
            break;
        }
        it->block = block;
        it->size = size;
        it->seq = (uint64_t)w->id << 56 | w->made;
        write_block(it, 1);
        if (!cc_segqueue_push(q1, it)) {
            w->alloc_errno = errno;
            cc_free(block, size);
            cc_free(it, sizeof *it);
            break;
        }
        w->made++;
    }
    /* release: a worker that sees the count drop also sees every push above */
    atomic_fetch_sub_explicit(&producers_left, 1, memory_order_release);
    return NULL;
}

static void *worker(void *arg) {
    worker_t *w = arg;
    void *batch[BATCH];
    for (;;) {
        size_t n = cc_segqueue_pop_many(q1, batch, BATCH);
        if (n == 0) {
            /* acquire: pairs with the producers' release; once none is left,
             * one more empty pop means q1 is drained for good */
            if (atomic_load_explicit(&producers_left, memory_order_acquire) != 0) {
                sched_yield();
                continue;
            }
            if ((n = cc_segqueue_pop_many(q1, batch, BATCH)) == 0) break;
        }
        for (size_t i = 0; i < n; i++) {
            item_t *it = batch[i];
            if (!check_block(it, 1)) w->bad++;
            write_block(it, 2);
        }
        w->checked += n;
        size_t pushed = 0;
        while (pushed < n) {
            size_t k = cc_segqueue_push_many(q2, batch + pushed, n - pushed);
            if (k == 0) {
                w->alloc_errno = errno;
                sched_yield(); /* out of memory: consumers free, retry */
            }
            pushed += k;
        }
    }
    atomic_fetch_sub_explicit(&workers_left, 1, memory_order_release);
    return NULL;
}

static void *consumer(void *arg) {
    worker_t *w = arg;
    for (;;) {
        void *v;
        if (!cc_segqueue_pop(q2, &v)) {
            if (atomic_load_explicit(&workers_left, memory_order_acquire) != 0) {
                sched_yield();
                continue;
            }
            if (!cc_segqueue_pop(q2, &v)) break;
        }
        item_t *it = v;
        if (!check_block(it, 2)) w->bad++;
        cc_free(it->block, it->size);
        cc_free(it, sizeof *it);
        if ((++w->freed & 1023) == 0) atomic_fetch_add_explicit(&through, 1024, memory_order_relaxed);
    }
    return NULL;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static unsigned long parse_count(const char *s, const char *opt, unsigned long max) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || v < 1 || v > max || s[0] == '-') {
        fprintf(stderr, "pipeline: %s wants an integer in [1, %lu], got '%s'\n", opt, max, s);
        exit(64);
    }
    return v;
}

static void usage(FILE *f) {
    fprintf(f, "usage: pipeline [--producers N] [--workers N] [--consumers N] [--seconds S | --items N] [--quick]\n");
}

int main(int argc, char **argv) {
    unsigned long np = 2, nw = 2, nc = 2;
    double seconds = 5.0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--producers") == 0 && i + 1 < argc)
            np = parse_count(argv[++i], "--producers", MAX_THREADS);
        else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc)
            nw = parse_count(argv[++i], "--workers", MAX_THREADS);
        else if (strcmp(argv[i], "--consumers") == 0 && i + 1 < argc)
            nc = parse_count(argv[++i], "--consumers", MAX_THREADS);
        else if (strcmp(argv[i], "--seconds") == 0 && i + 1 < argc)
            seconds = (double)parse_count(argv[++i], "--seconds", 86400);
        else if (strcmp(argv[i], "--items") == 0 && i + 1 < argc)
            item_limit = parse_count(argv[++i], "--items", 1000000000ul), seconds = 86400;
        else if (strcmp(argv[i], "--quick") == 0)
            seconds = 0.5;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 64;
        }
    }

    cc_alloc_stats_enable(true);
    cc_alloc_stats_reset();
    cc_alloc_snapshot_t before = cc_alloc_stats_snapshot();
    cc_smr_snapshot_t smr_before = cc_smr_stats();
    q1 = cc_segqueue_new();
    q2 = cc_segqueue_new();
    if (!q1 || !q2) {
        fprintf(stderr, "pipeline: cc_segqueue_new: %s\n", strerror(errno));
        return 2;
    }
    static worker_t prod[MAX_THREADS], work[MAX_THREADS], cons[MAX_THREADS];
    atomic_store(&producers_left, (unsigned)np);
    atomic_store(&workers_left, (unsigned)nw);
    double t0 = now();
    int create_failed = 0;
    for (unsigned i = 0; i < np; i++)
        prod[i].id = i, create_failed |= pthread_create(&prod[i].thread, NULL, producer, &prod[i]);
    for (unsigned i = 0; i < nw; i++) create_failed |= pthread_create(&work[i].thread, NULL, worker, &work[i]);
    for (unsigned i = 0; i < nc; i++) create_failed |= pthread_create(&cons[i].thread, NULL, consumer, &cons[i]);
    if (create_failed) {
        fprintf(stderr, "pipeline: pthread_create failed\n");
        return 2;
    }

    printf("concurrent-collections pipeline: %lu producers -> segqueue -> %lu workers -> segqueue -> %lu consumers\n",
           np, nw, nc);
    printf("  backend %s, statistics on\n", cc_alloc_backend());
    fflush(stdout);
    /* Progress once a second for runs longer than two seconds. */
    bool progress = seconds > 2.0 || item_limit;
    double next = t0 + 1.0, last_t = t0;
    uint64_t last_n = 0;
    for (;;) {
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
        double t = now();
        uint64_t n = atomic_load_explicit(&through, memory_order_relaxed);
        if (t - t0 >= seconds || (item_limit && n >= item_limit)) break;
        if (progress && t >= next) {
            cc_smr_snapshot_t sm = cc_smr_stats();
            cc_alloc_snapshot_t a = cc_alloc_stats_snapshot();
            printf("  %5.1f s  %12" PRIu64 " items  %7.2f M items/s  live blocks %8" PRIu64
                   "  SMR pending %6" PRIu64 " epoch %" PRIu64 "\n",
                   t - t0, n, (double)(n - last_n) / (t - last_t) * 1e-6, a.current_blocks, sm.pending, sm.epoch);
            fflush(stdout);
            last_n = n, last_t = t, next += 1.0;
        }
    }
    atomic_store_explicit(&stop, 1, memory_order_relaxed);
    for (unsigned i = 0; i < np; i++) pthread_join(prod[i].thread, NULL);
    for (unsigned i = 0; i < nw; i++) pthread_join(work[i].thread, NULL);
    for (unsigned i = 0; i < nc; i++) pthread_join(cons[i].thread, NULL);
    double secs = now() - t0;

    uint64_t made = 0, checked = 0, freed = 0, bad = 0;
    int alloc_errno = 0;
    for (unsigned i = 0; i < np; i++) made += prod[i].made, alloc_errno |= prod[i].alloc_errno;
    for (unsigned i = 0; i < nw; i++) checked += work[i].checked, bad += work[i].bad;
    for (unsigned i = 0; i < nc; i++) freed += cons[i].freed, bad += cons[i].bad;
    size_t left1 = cc_segqueue_size(q1), left2 = cc_segqueue_size(q2);
    cc_alloc_snapshot_t during = cc_alloc_stats_snapshot();
    cc_segqueue_destroy(q1);
    cc_segqueue_destroy(q2);
    cc_smr_barrier(); /* every retired segment is freed when it returns */
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    cc_smr_snapshot_t sm = cc_smr_stats();

    printf("\n  items through      %" PRIu64 " in %.2f s: %.2f M items/s, each allocated, checked twice, freed by another thread\n",
           freed, secs, (double)freed / secs * 1e-6);
    printf("\n  %-22s %16s      %-22s %16s\n", "allocation statistic", "value", "SMR statistic", "value");
    struct {
        const char *name;
        uint64_t value;
    } arows[] = {
        {"alloc_count", s.alloc_count},       {"free_count", s.free_count},
        {"alloc_bytes", s.alloc_bytes},       {"free_bytes", s.free_bytes},
        {"live blocks at stop*", during.current_blocks}, {"current_blocks", s.current_blocks},
        {"current_allocated", s.current_allocated},
    }, srows[] = {
        {"retired (segments)", sm.retired - smr_before.retired},
        {"freed", sm.freed - smr_before.freed},
        {"pending", sm.pending},
        {"peak_pending", sm.peak_pending},
        {"epoch", sm.epoch},
        {"membarriers", sm.membarriers},
        {"threads", sm.threads},
    };
    for (size_t i = 0; i < sizeof arows / sizeof arows[0]; i++)
        printf("  %-22s %16" PRIu64 "      %-22s %16" PRIu64 "\n", arows[i].name, arows[i].value, srows[i].name,
               srows[i].value);
    printf("  (* before the queues were destroyed; SMR sections: %s)\n\n",
           sm.asymmetric ? "asymmetric, fence-free" : "fencing");

    int status = 0;
    if (made != checked || checked != freed || left1 || left2) {
        printf("  CHECK FAILED: %" PRIu64 " made, %" PRIu64 " checked, %" PRIu64 " freed, %zu + %zu left\n", made,
               checked, freed, left1, left2);
        status = 2;
    }
    if (bad || alloc_errno) {
        printf("  CHECK FAILED: %" PRIu64 " damaged items%s\n", bad, alloc_errno ? ", an allocation failed" : "");
        status = 2;
    }
    if (status == 0 && (s.alloc_count != s.free_count || s.alloc_bytes != s.free_bytes ||
                        s.current_blocks != before.current_blocks || s.current_allocated != before.current_allocated)) {
        printf("  CHECK FAILED: the glue does not balance (blocks %" PRIu64 " -> %" PRIu64 ")\n", before.current_blocks,
               s.current_blocks);
        status = 1;
    }
    if (status == 0) printf("  OK: every item arrived intact exactly once; after destroy + barrier the glue balances\n");
    return status;
}
