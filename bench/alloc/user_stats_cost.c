/*
 * user_stats_cost -- what the glue costs a program built against the
 * INSTALLED package, the way a user builds it:
 *     cc -O2 user_stats_cost.c $(pkg-config --cflags --libs concurrent_collections)
 * (scripts/run-bench-alloc-user.sh does that out of tree and runs it.)
 *
 * Workload: each thread allocates 256 blocks of 64 B (touching one byte of
 * each), then frees them, over and over.
 *
 *   user_stats_cost CASE THREADS MS     timed run, prints "CASE THREADS ns_per_pair"
 *   user_stats_cost CASE THREADS -N     exactly N loops per thread (for callgrind)
 *
 * CASE: raw (mi_malloc / mi_free), off (cc_alloc / cc_free, statistics off),
 * on (the same with statistics on). One case per process: the glue's mode is
 * per process, and a fresh process per run keeps runs independent.
 * Time: from the first thread's start to the last thread's end (threads
 * start together at a barrier), divided by the pairs one thread made.
 */
#define _GNU_SOURCE
#include <cc/alloc.h>
#include <mimalloc.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BLOCKS = 256, SIZE = 64, MAX_THREADS = 16 };
enum { CASE_RAW, CASE_OFF, CASE_ON };

static int which;
static long loops_fixed; /* > 0: run exactly this many loops */
static double ms;
static pthread_barrier_t start_line;
static _Atomic int stop;

typedef struct {
    uint64_t loops;
    double t0, t1;
} result_t;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The two loops are kept separate so each is exactly what a user writes. */
static void loop_raw(void **b) {
    for (int i = 0; i < BLOCKS; i++) {
        b[i] = mi_malloc(SIZE);
        *(volatile char *)b[i] = 1;
    }
    for (int i = 0; i < BLOCKS; i++) mi_free(b[i]);
}

static void loop_glue(void **b) {
    for (int i = 0; i < BLOCKS; i++) {
        b[i] = cc_alloc(SIZE);
        *(volatile char *)b[i] = 1;
    }
    for (int i = 0; i < BLOCKS; i++) cc_free(b[i], SIZE);
}

static void *worker(void *arg) {
    result_t *r = arg;
    void *b[BLOCKS];
    /* warm up: the thread's first calls set up mimalloc's heap (and the
     * glue's per-thread counters) */
    for (int w = 0; w < 100; w++) which == CASE_RAW ? loop_raw(b) : loop_glue(b);
    pthread_barrier_wait(&start_line);
    r->t0 = now();
    uint64_t n = 0;
    if (loops_fixed > 0) {
        for (long k = 0; k < loops_fixed; k++) which == CASE_RAW ? loop_raw(b) : loop_glue(b);
        n = (uint64_t)loops_fixed;
    } else if (which == CASE_RAW) {
        while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
            for (int k = 0; k < 64; k++) loop_raw(b);
            n += 64;
        }
    } else {
        while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
            for (int k = 0; k < 64; k++) loop_glue(b);
            n += 64;
        }
    }
    r->t1 = now();
    r->loops = n;
    return NULL;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: %s raw|off|on THREADS MS|-LOOPS\n", argv[0]);
        return 2;
    }
    if (strcmp(argv[1], "raw") == 0) which = CASE_RAW;
    else if (strcmp(argv[1], "off") == 0) which = CASE_OFF;
    else if (strcmp(argv[1], "on") == 0) which = CASE_ON;
    else {
        fprintf(stderr, "unknown case %s\n", argv[1]);
        return 2;
    }
    int threads = atoi(argv[2]);
    if (threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "threads must be 1..%d\n", MAX_THREADS);
        return 2;
    }
    double arg = atof(argv[3]);
    if (arg < 0) loops_fixed = (long)-arg;
    else ms = arg;
    if (which != CASE_RAW) cc_alloc_stats_enable(which == CASE_ON);

    pthread_t th[MAX_THREADS];
    result_t res[MAX_THREADS];
    pthread_barrier_init(&start_line, NULL, (unsigned)threads + 1);
    for (int i = 0; i < threads; i++) pthread_create(&th[i], NULL, worker, &res[i]);
    pthread_barrier_wait(&start_line);
    if (loops_fixed == 0) {
        struct timespec d = {(time_t)(ms / 1000), (long)((ms - 1000 * (time_t)(ms / 1000)) * 1e6)};
        nanosleep(&d, NULL); /* the measurement window, not a synchronisation */
        atomic_store(&stop, 1);
    }
    double t0 = 1e300, t1 = 0;
    uint64_t loops = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        if (res[i].t0 < t0) t0 = res[i].t0;
        if (res[i].t1 > t1) t1 = res[i].t1;
        loops += res[i].loops;
    }
    double pairs_per_thread = (double)loops * BLOCKS / threads;
    printf("%s %d %.3f\n", argv[1], threads, (t1 - t0) * 1e9 / pairs_per_thread);
    if (which == CASE_ON) {
        cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
        if (s.alloc_count < (uint64_t)loops * BLOCKS || s.current_blocks != 0) {
            fprintf(stderr, "statistics wrong: alloc_count %llu current_blocks %llu\n",
                    (unsigned long long)s.alloc_count, (unsigned long long)s.current_blocks);
            return 1;
        }
    }
    return 0;
}
