/*
 * alloc_bench -- cost of the allocation glue against raw mimalloc and peers.
 *
 * Workload "pairs": each thread allocates 256 blocks of 64 B (touching one
 * byte of each, keeping the pointers in an array), then frees them, over and
 * over until the measurement window closes. Reported: ns per alloc+free pair
 * per thread, and aggregate M pairs/s, at 1, 2 and 4 threads, for
 *   (a) raw mi_malloc / mi_free
 *   (b) the glue (cc_alloc / cc_free) with statistics off
 *   (c) the glue with statistics on
 *   (d) the seed's statistics: four global relaxed atomic_fetch_add per pair
 *   (e) the glue's `system` backend         (child process: the backend is
 *                                            fixed per process)
 *   (f) glibc, jemalloc, tcmalloc malloc/free (child processes of the peer
 *                                            program alloc_bench_peer, which
 *                                            does not link mimalloc; jemalloc
 *                                            and tcmalloc via LD_PRELOAD)
 * Workload "pc" (cross-thread free): one thread allocates 64 B blocks and
 * hands them through an SPSC ring to another thread, which frees them. The
 * producer publishes its position every PC_CHUNK blocks and the consumer frees
 * all it sees before publishing its own, so the ring's index cache lines cross
 * between cores once per chunk, not once per block.
 * Reported: ns per block.
 *
 * Method: R rounds; every round runs every case once (child cases in their own
 * process), the case order rotating from round to round. Threads start
 * together at a barrier; a run's time is from the first thread's start to the
 * last thread's end (CLOCK_MONOTONIC). Reported: the median over rounds. The
 * "vs (a)" column is the median over rounds of (case / raw in the same round),
 * so slow phases of a noisy machine cancel out.
 *
 * Usage: alloc_bench [--quick] [--rounds N] [--ms N]
 *        alloc_bench --child CASE [--ms N] [--pc-ms N]   (internal)
 * The program exits 0 whatever the targets say; it exits 1 only on errors.
 *
 * Built twice from this file: alloc_bench (links the glue and mimalloc) and,
 * with ALLOC_BENCH_PEER defined, alloc_bench_peer (plain malloc/free only).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../bench_util.h"

#ifndef ALLOC_BENCH_PEER
#include <cc/alloc.h>
#include <mimalloc.h>
#include <spawn.h>
#include <sys/wait.h>
extern char **environ;
#endif

#define BATCH 256         /* blocks per thread per round trip */
#define BLOCK 64          /* bytes per block */
#define MAX_THREADS 4
#define RING_SIZE 1024u   /* SPSC ring slots (power of two) */
#define PC_CHUNK 32u      /* the producer publishes its position every PC_CHUNK blocks */

#define LIKELY(x) __builtin_expect(!!(x), 1)
#define UNLIKELY(x) __builtin_expect(!!(x), 0)

static const int thread_counts[] = {1, 2, 4};
#define NTHREADS ((int)(sizeof thread_counts / sizeof thread_counts[0]))

/* ---- timing and the harness ------------------------------------------------ */

static void sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void cpu_relax(unsigned *spins) {
    if (++*spins < 128) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        *spins = 0;
        sched_yield();
    }
}

static _Noreturn void die(const char *what) {
    fprintf(stderr, "alloc_bench: %s\n", what);
    exit(1);
}

typedef struct {
    _Alignas(64) void *ptrs[BATCH];
    uint64_t ops;              /* pairs (pairs workload) or blocks (pc producer) */
    uint64_t t_start, t_end;
} worker_t;

static worker_t workers[MAX_THREADS];
static _Alignas(64) atomic_bool stop_flag;
static pthread_barrier_t start_barrier;

typedef struct {
    uint64_t elapsed_ns; /* first start to last end */
    uint64_t ops;        /* pairs summed over threads, or blocks handed over */
} run_t;

/* Runs `fns[i]` on `n` fresh threads for `ms` milliseconds of window. */
static run_t run_threads(void *(*const *fns)(void *), int n, unsigned ms) {
    pthread_t tids[MAX_THREADS];
    atomic_store(&stop_flag, false);
    if (pthread_barrier_init(&start_barrier, NULL, (unsigned)n + 1) != 0) die("pthread_barrier_init failed");
    for (int i = 0; i < n; i++) {
        memset(&workers[i], 0, sizeof workers[i]);
        if (pthread_create(&tids[i], NULL, fns[i], &workers[i]) != 0) die("pthread_create failed");
    }
    pthread_barrier_wait(&start_barrier);
    sleep_ms(ms);
    atomic_store(&stop_flag, true);
    for (int i = 0; i < n; i++) pthread_join(tids[i], NULL);
    pthread_barrier_destroy(&start_barrier);
    run_t r = {0, 0};
    uint64_t first = UINT64_MAX, last = 0;
    for (int i = 0; i < n; i++) {
        if (workers[i].t_start < first) first = workers[i].t_start;
        if (workers[i].t_end > last) last = workers[i].t_end;
        r.ops += workers[i].ops;
    }
    r.elapsed_ns = last - first;
    return r;
}

/* Untimed warm-up of a worker: sets up the thread's heap (and, for the glue,
 * its statistics registration) before the start barrier. */
#define WARM_UP(ALLOC, FREE, w)                                                          \
    do {                                                                                 \
        for (int i = 0; i < BATCH; i++)                                                  \
            if (((w)->ptrs[i] = ALLOC(BLOCK)) == NULL) die("allocation failed");         \
        for (int i = 0; i < BATCH; i++) FREE((w)->ptrs[i]);                              \
    } while (0)

/* One thread of the pairs workload. ALLOC(n) / FREE(p) are inlined per case. */
#define DEFINE_PAIRS(NAME, ALLOC, FREE)                                                  \
    static void *NAME##_pairs(void *arg) {                                               \
        worker_t *w = arg;                                                               \
        void **ptrs = w->ptrs;                                                           \
        WARM_UP(ALLOC, FREE, w);                                                         \
        pthread_barrier_wait(&start_barrier);                                            \
        uint64_t rounds = 0;                                                             \
        w->t_start = bench_now_ns();                                                           \
        do {                                                                             \
            for (int i = 0; i < BATCH; i++) {                                            \
                char *p = ALLOC(BLOCK);                                                  \
                if (UNLIKELY(p == NULL)) die("allocation failed");                       \
                p[0] = (char)i;                                                          \
                ptrs[i] = p;                                                             \
            }                                                                            \
            for (int i = 0; i < BATCH; i++) FREE(ptrs[i]);                               \
            rounds++;                                                                    \
        } while (!atomic_load_explicit(&stop_flag, memory_order_relaxed));               \
        w->t_end = bench_now_ns();                                                             \
        w->ops = rounds * BATCH;                                                         \
        return NULL;                                                                     \
    }

/* SPSC ring for the producer/consumer workload. */
static struct {
    _Alignas(64) atomic_size_t head; /* consumer's position */
    _Alignas(64) atomic_size_t tail; /* producer's position */
    atomic_bool done;
    _Alignas(64) void *slots[RING_SIZE];
} ring;

#define DEFINE_PC(NAME, ALLOC, FREE)                                                     \
    static void *NAME##_producer(void *arg) {                                            \
        worker_t *w = arg;                                                               \
        WARM_UP(ALLOC, FREE, w);                                                         \
        size_t tail = 0, head_seen = 0;                                                  \
        uint64_t n = 0;                                                                  \
        unsigned spins = 0;                                                              \
        pthread_barrier_wait(&start_barrier);                                            \
        w->t_start = bench_now_ns();                                                           \
        do {                                                                             \
            for (int i = 0; i < BATCH; i++) {                                            \
                char *p = ALLOC(BLOCK);                                                  \
                if (UNLIKELY(p == NULL)) die("allocation failed");                       \
                p[0] = (char)i;                                                          \
                while (tail - head_seen >= RING_SIZE) {                                  \
                    head_seen = atomic_load_explicit(&ring.head, memory_order_acquire);  \
                    if (tail - head_seen >= RING_SIZE) cpu_relax(&spins);                \
                }                                                                        \
                ring.slots[tail++ & (RING_SIZE - 1)] = p;                                \
                if (tail % PC_CHUNK == 0)                                                \
                    atomic_store_explicit(&ring.tail, tail, memory_order_release);       \
            }                                                                            \
            n += BATCH;                                                                  \
        } while (!atomic_load_explicit(&stop_flag, memory_order_relaxed));               \
        atomic_store_explicit(&ring.tail, tail, memory_order_release);                   \
        atomic_store_explicit(&ring.done, true, memory_order_release);                   \
        w->t_end = bench_now_ns();                                                             \
        w->ops = n;                                                                      \
        return NULL;                                                                     \
    }                                                                                    \
    static void *NAME##_consumer(void *arg) {                                            \
        worker_t *w = arg;                                                               \
        WARM_UP(ALLOC, FREE, w);                                                         \
        size_t head = 0, tail_seen = 0;                                                  \
        unsigned spins = 0;                                                              \
        pthread_barrier_wait(&start_barrier);                                            \
        w->t_start = bench_now_ns();                                                           \
        for (;;) {                                                                       \
            if (head == tail_seen) {                                                     \
                tail_seen = atomic_load_explicit(&ring.tail, memory_order_acquire);      \
                if (head == tail_seen) {                                                 \
                    if (atomic_load_explicit(&ring.done, memory_order_acquire)) {        \
                        tail_seen = atomic_load_explicit(&ring.tail, memory_order_acquire); \
                        if (head == tail_seen) break;                                    \
                    } else {                                                             \
                        cpu_relax(&spins);                                               \
                    }                                                                    \
                    continue;                                                            \
                }                                                                        \
            }                                                                            \
            /* free everything published so far, then hand the slots back */            \
            while (head != tail_seen) FREE(ring.slots[head++ & (RING_SIZE - 1)]);        \
            atomic_store_explicit(&ring.head, head, memory_order_release);               \
        }                                                                                \
        w->t_end = bench_now_ns();                                                             \
        w->ops = 0;                                                                      \
        return NULL;                                                                     \
    }

typedef struct {
    void *(*pairs)(void *);
    void *(*producer)(void *);
    void *(*consumer)(void *);
} loops_t;

static run_t run_pairs(const loops_t *l, int n, unsigned ms) {
    void *(*fns[MAX_THREADS])(void *);
    for (int i = 0; i < n; i++) fns[i] = l->pairs;
    return run_threads(fns, n, ms);
}

static run_t run_pc(const loops_t *l, unsigned ms) {
    atomic_store(&ring.head, 0);
    atomic_store(&ring.tail, 0);
    atomic_store(&ring.done, false);
    void *(*fns[2])(void *) = {l->producer, l->consumer};
    return run_threads(fns, 2, ms);
}

/* Which object provides the malloc this process calls. */
static const char *malloc_provider(void) {
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    if (sym != NULL && dladdr(sym, &info) != 0 && info.dli_fname != NULL) return info.dli_fname;
    return "unknown";
}

/* Child side: run 1/2/4 threads and the pc workload, print machine-readable
 * lines: "R threads elapsed_ns pairs", "P elapsed_ns blocks", "M provider". */
static void child_run(const loops_t *l, unsigned ms, unsigned pc_ms, const char *provider) {
    printf("M %s\n", provider);
    for (int t = 0; t < NTHREADS; t++) {
        run_t r = run_pairs(l, thread_counts[t], ms);
        printf("R %d %llu %llu\n", thread_counts[t], (unsigned long long)r.elapsed_ns,
               (unsigned long long)r.ops);
    }
    run_t r = run_pc(l, pc_ms);
    printf("P %llu %llu\n", (unsigned long long)r.elapsed_ns, (unsigned long long)r.ops);
    fflush(stdout);
}

static unsigned parse_uint(const char *s, const char *what) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0 || v > 100000) {
        fprintf(stderr, "alloc_bench: bad value for %s: '%s'\n", what, s);
        exit(1);
    }
    return (unsigned)v;
}

/* ======================================================================== */
#ifdef ALLOC_BENCH_PEER
/* The peer program: plain malloc/free, whatever malloc the process has. */

static inline void plain_free(void *p) { free(p); }
DEFINE_PAIRS(plain, malloc, plain_free)
DEFINE_PC(plain, malloc, plain_free)

int main(int argc, char **argv) {
    unsigned ms = 200, pc_ms = 200;
    const char *mode = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--child") == 0 && i + 1 < argc) mode = argv[++i];
        else if (strcmp(argv[i], "--ms") == 0 && i + 1 < argc) ms = parse_uint(argv[++i], "--ms");
        else if (strcmp(argv[i], "--pc-ms") == 0 && i + 1 < argc) pc_ms = parse_uint(argv[++i], "--pc-ms");
        else mode = NULL, i = argc;
    }
    if (mode == NULL || strcmp(mode, "malloc") != 0) {
        fprintf(stderr, "usage: %s --child malloc [--ms N] [--pc-ms N]\n"
                        "(started by alloc_bench, with or without LD_PRELOAD)\n", argv[0]);
        return 2;
    }
    loops_t l = {plain_pairs, plain_producer, plain_consumer};
    child_run(&l, ms, pc_ms, malloc_provider());
    return 0;
}

#else /* ====================================================================== */

/* (d) The seed's statistics, as in ../shared/seed/mimalloc_glue-design.md:
 * one global struct, four relaxed atomic_fetch_add per alloc+free pair. */
static _Alignas(64) struct {
    _Atomic uint64_t alloc_count;
    _Atomic uint64_t free_count;
    _Atomic uint64_t alloc_bytes;
    _Atomic uint64_t free_bytes;
    bool statistics_enabled;
} g_alloc_stats;

static inline void *seed_alloc(size_t size) {
    void *ptr = mi_malloc(size);
    if (ptr && g_alloc_stats.statistics_enabled) {
        atomic_fetch_add_explicit(&g_alloc_stats.alloc_count, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&g_alloc_stats.alloc_bytes, size, memory_order_relaxed);
    }
    return ptr;
}

static inline void seed_free(void *ptr, size_t size) {
    if (ptr) {
        if (g_alloc_stats.statistics_enabled) {
            atomic_fetch_add_explicit(&g_alloc_stats.free_count, 1, memory_order_relaxed);
            atomic_fetch_add_explicit(&g_alloc_stats.free_bytes, size, memory_order_relaxed);
        }
        mi_free(ptr);
    }
}

static inline void glue_free(void *p) { cc_free(p, BLOCK); }
static inline void seed_free64(void *p) { seed_free(p, BLOCK); }

DEFINE_PAIRS(raw, mi_malloc, mi_free)
DEFINE_PC(raw, mi_malloc, mi_free)
DEFINE_PAIRS(glue, cc_alloc, glue_free)
DEFINE_PC(glue, cc_alloc, glue_free)
DEFINE_PAIRS(seed, seed_alloc, seed_free64)
DEFINE_PC(seed, seed_alloc, seed_free64)

static const loops_t raw_loops = {raw_pairs, raw_producer, raw_consumer};
static const loops_t glue_loops = {glue_pairs, glue_producer, glue_consumer};
static const loops_t seed_loops = {seed_pairs, seed_producer, seed_consumer};

enum { C_RAW, C_GLUE_OFF, C_GLUE_ON, C_SEED, C_SYSTEM, C_GLIBC, C_JEMALLOC, C_TCMALLOC, NCASES };

typedef struct {
    const char *label;
    const char *child_arg; /* NULL: in-process */
    bool peer;             /* child is alloc_bench_peer */
    const char *preload;   /* LD_PRELOAD for the child ("" none); NULL: absent */
    const char *expect;    /* substring expected in the child's malloc provider */
    const char *skip;      /* reason the case is skipped, or NULL */
    char provider[512];    /* what the child reported */
} case_t;

static case_t cases[NCASES] = {
    [C_RAW] = {"(a) raw mi_malloc/mi_free", NULL, false, "", NULL, NULL, ""},
    [C_GLUE_OFF] = {"(b) glue, stats off", NULL, false, "", NULL, NULL, ""},
    [C_GLUE_ON] = {"(c) glue, stats on", NULL, false, "", NULL, NULL, ""},
    [C_SEED] = {"(d) seed global atomics", NULL, false, "", NULL, NULL, ""},
    [C_SYSTEM] = {"(e) glue, system backend", "system", false, "", NULL, NULL, ""},
    [C_GLIBC] = {"(f) glibc malloc/free", "malloc", true, "", "libc.so", NULL, ""},
    [C_JEMALLOC] = {"(f) jemalloc", "malloc", true, NULL, "jemalloc", NULL, ""},
    [C_TCMALLOC] = {"(f) tcmalloc", "malloc", true, NULL, "tcmalloc", NULL, ""},
};

#define MAX_ROUNDS 15
static double pair_ns[NCASES][NTHREADS][MAX_ROUNDS]; /* ns per pair per thread; <0: missing */
static double pair_mps[NCASES][NTHREADS][MAX_ROUNDS];
static double pc_ns[NCASES][MAX_ROUNDS];

static void record_pairs(int c, int t, int round, run_t r) {
    pair_ns[c][t][round] = r.ops ? (double)r.elapsed_ns * thread_counts[t] / (double)r.ops : -1;
    pair_mps[c][t][round] = r.elapsed_ns ? (double)r.ops * 1e3 / (double)r.elapsed_ns : -1;
}

static void record_pc(int c, int round, run_t r) {
    pc_ns[c][round] = r.ops ? (double)r.elapsed_ns / (double)r.ops : -1;
}

/* ---- child processes ------------------------------------------------------ */

static char self_path[PATH_MAX], peer_path[PATH_MAX];

static bool env_is(const char *entry, const char *name) {
    size_t n = strlen(name);
    return strncmp(entry, name, n) == 0 && entry[n] == '=';
}

/* Spawns a child case and records its lines for `round`. Returns false (and
 * sets the case's skip reason) when the child fails. */
static bool run_child(int c, int round, unsigned ms, unsigned pc_ms) {
    case_t *cs = &cases[c];
    size_t n = 0;
    while (environ[n]) n++;
    char **envp = calloc(n + 4, sizeof *envp);
    if (envp == NULL) die("out of memory");
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!env_is(environ[i], "LD_PRELOAD") && !env_is(environ[i], "CONCURRENT_COLLECTIONS_ALLOCATOR") &&
            !env_is(environ[i], "CONCURRENT_COLLECTIONS_ENABLE_STATS"))
            envp[k++] = environ[i];
    char preload[PATH_MAX + 16];
    if (cs->preload && cs->preload[0]) {
        snprintf(preload, sizeof preload, "LD_PRELOAD=%s", cs->preload);
        envp[k++] = preload;
    }
    if (c == C_SYSTEM) envp[k++] = "CONCURRENT_COLLECTIONS_ALLOCATOR=system";
    envp[k] = NULL;

    char ms_s[16], pc_s[16];
    snprintf(ms_s, sizeof ms_s, "%u", ms);
    snprintf(pc_s, sizeof pc_s, "%u", pc_ms);
    const char *exe = cs->peer ? peer_path : self_path;
    char *argv[] = {(char *)exe, "--child", (char *)cs->child_arg, "--ms", ms_s, "--pc-ms", pc_s, NULL};

    int fds[2];
    if (pipe(fds) != 0) die("pipe failed");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    posix_spawn_file_actions_addclose(&fa, fds[1]);
    pid_t pid;
    int err = posix_spawn(&pid, exe, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    free(envp);
    if (err != 0) {
        close(fds[0]);
        cs->skip = "could not start the child process";
        return false;
    }
    FILE *in = fdopen(fds[0], "r");
    char line[512];
    int got = 0;
    while (in && fgets(line, sizeof line, in)) {
        int t;
        unsigned long long e, o;
        if (line[0] == 'M' && line[1] == ' ') {
            line[strcspn(line, "\n")] = '\0';
            snprintf(cs->provider, sizeof cs->provider, "%s", line + 2);
        } else if (sscanf(line, "R %d %llu %llu", &t, &e, &o) == 3) {
            for (int ti = 0; ti < NTHREADS; ti++)
                if (thread_counts[ti] == t) record_pairs(c, ti, round, (run_t){e, o}), got++;
        } else if (sscanf(line, "P %llu %llu", &e, &o) == 2) {
            record_pc(c, round, (run_t){e, o});
            got++;
        } else if (line[0] == 'E') {
            fprintf(stderr, "alloc_bench: child %s: %s", cs->label, line + 2);
        }
    }
    if (in) fclose(in);
    else close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || got != NTHREADS + 1) {
        cs->skip = "child process failed (see stderr)";
        return false;
    }
    if (cs->expect && strstr(cs->provider, cs->expect) == NULL) {
        static char why[400];
        snprintf(why, sizeof why, "child's malloc comes from %s, not %s", cs->provider, cs->expect);
        cs->skip = why;
        return false;
    }
    return true;
}

/* ---- in-process cases ------------------------------------------------------ */

static void stats_check(void) {
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    if (s.alloc_count != s.free_count || s.alloc_bytes != s.free_bytes || s.current_allocated != 0)
        fprintf(stderr, "alloc_bench: WARNING: glue statistics do not balance after (c): "
                        "alloc %llu/%llu B, free %llu/%llu B\n",
                (unsigned long long)s.alloc_count, (unsigned long long)s.alloc_bytes,
                (unsigned long long)s.free_count, (unsigned long long)s.free_bytes);
}

static const loops_t *set_up_in_process(int c) {
    switch (c) {
    case C_RAW: return &raw_loops;
    case C_GLUE_OFF: cc_alloc_stats_enable(false); return &glue_loops;
    case C_GLUE_ON:
        cc_alloc_stats_reset();
        cc_alloc_stats_enable(true);
        return &glue_loops;
    default: g_alloc_stats.statistics_enabled = true; return &seed_loops;
    }
}

static void tear_down_in_process(int c) {
    if (c == C_GLUE_ON) {
        cc_alloc_stats_enable(false);
        stats_check();
    }
}

static void run_in_process(int c, int round, unsigned ms, unsigned pc_ms) {
    for (int t = 0; t < NTHREADS; t++) {
        const loops_t *l = set_up_in_process(c);
        record_pairs(c, t, round, run_pairs(l, thread_counts[t], ms));
        tear_down_in_process(c);
    }
    const loops_t *l = set_up_in_process(c);
    record_pc(c, round, run_pc(l, pc_ms));
    tear_down_in_process(c);
}

/* ---- statistics over rounds ------------------------------------------------ */

/* Median of the valid (>= 0) values; -1 if none. */
static double median(const double *v, int n) {
    double tmp[MAX_ROUNDS];
    int k = 0;
    for (int i = 0; i < n; i++)
        if (v[i] >= 0) tmp[k++] = v[i];
    if (k == 0) return -1;
    qsort(tmp, (size_t)k, sizeof tmp[0], bench_cmp_double);
    return k % 2 ? tmp[k / 2] : (tmp[k / 2 - 1] + tmp[k / 2]) / 2;
}

static double min_of(const double *v, int n, bool want_max) {
    double m = -1;
    for (int i = 0; i < n; i++)
        if (v[i] >= 0 && (m < 0 || (want_max ? v[i] > m : v[i] < m))) m = v[i];
    return m;
}

/* Median over rounds of num[r] / den[r]. */
static double median_ratio(const double *num, const double *den, int n) {
    double r[MAX_ROUNDS];
    for (int i = 0; i < n; i++) r[i] = (num[i] > 0 && den[i] > 0) ? num[i] / den[i] : -1;
    return median(r, n);
}

/* ---- the parent ------------------------------------------------------------ */

static const char *find_lib(const char *const *names) {
    static const char *const dirs[] = {"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64",
                                       "/usr/lib", "/usr/local/lib"};
    static char found[4][PATH_MAX];
    static int used;
    for (const char *const *n = names; *n; n++)
        for (size_t d = 0; d < sizeof dirs / sizeof dirs[0]; d++) {
            char path[PATH_MAX];
            snprintf(path, sizeof path, "%s/%s", dirs[d], *n);
            if (access(path, R_OK) == 0 && used < 4) {
                snprintf(found[used], sizeof found[used], "%s", path);
                return found[used++];
            }
        }
    return NULL;
}

static void find_peers(void) {
    if (readlink("/proc/self/exe", self_path, sizeof self_path - 1) < 0) die("cannot read /proc/self/exe");
    snprintf(peer_path, sizeof peer_path, "%s", self_path);
    char *slash = strrchr(peer_path, '/');
    snprintf(slash ? slash + 1 : peer_path, sizeof peer_path - (size_t)(slash ? slash + 1 - peer_path : 0),
             "alloc_bench_peer");
    bool have_peer = access(peer_path, X_OK) == 0;

    const char *je = getenv("ALLOC_BENCH_JEMALLOC");
    if (je == NULL) je = find_lib((const char *const[]){"libjemalloc.so.2", "libjemalloc.so", NULL});
    const char *tc = getenv("ALLOC_BENCH_TCMALLOC");
    if (tc == NULL)
        tc = find_lib((const char *const[]){"libtcmalloc_minimal.so.4", "libtcmalloc.so.4", NULL});
    cases[C_JEMALLOC].preload = je;
    cases[C_TCMALLOC].preload = tc;
    if (je == NULL) cases[C_JEMALLOC].skip = "libjemalloc.so.2 not found (apt-get install libjemalloc2)";
    if (tc == NULL)
        cases[C_TCMALLOC].skip = "libtcmalloc_minimal.so.4 not found (apt-get install libgoogle-perftools4)";
    for (int c = C_GLIBC; c <= C_TCMALLOC; c++)
        if (!have_peer) cases[c].skip = "alloc_bench_peer not found next to alloc_bench";
}

static void print_row_value(double v, const char *fmt, int width) {
    if (v < 0) printf("%*s", width, "-");
    else printf(fmt, width, v);
}

static const char *pass(bool ok) { return ok ? "PASS" : "MISS"; }

int main(int argc, char **argv) {
    unsigned rounds = 5, ms = 250, pc_ms = 250;
    bool quick = false, ms_given = false;
    const char *child = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) quick = true;
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) rounds = parse_uint(argv[++i], "--rounds");
        else if (strcmp(argv[i], "--ms") == 0 && i + 1 < argc) ms = parse_uint(argv[++i], "--ms"), ms_given = true;
        else if (strcmp(argv[i], "--pc-ms") == 0 && i + 1 < argc) pc_ms = parse_uint(argv[++i], "--pc-ms");
        else if (strcmp(argv[i], "--child") == 0 && i + 1 < argc) child = argv[++i];
        else {
            fprintf(stderr,
                    "usage: %s [--quick] [--rounds N] [--ms N]\n"
                    "  default: 5 rounds, 250 ms per run (~45 s); --quick: 3 rounds, 50 ms (~6 s)\n",
                    argv[0]);
            return strcmp(argv[i], "--help") == 0 ? 0 : 2;
        }
    }

    /* One warm-up allocation: the glue's fast path needs the first allocation
     * of the process to have happened (it freezes the backend). */
    void *warm = cc_alloc(BLOCK);
    if (warm == NULL) die("warm-up cc_alloc failed");
    cc_free(warm, BLOCK);

    if (child != NULL) { /* internal: one case in this process */
        const loops_t *l;
        if (strcmp(child, "system") == 0 || strcmp(child, "glue") == 0) l = &glue_loops;
        else if (strcmp(child, "raw") == 0) l = &raw_loops;
        else if (strcmp(child, "seed") == 0) l = &seed_loops, g_alloc_stats.statistics_enabled = true;
        else {
            printf("E unknown child case '%s'\n", child);
            return 2;
        }
        char provider[300];
        snprintf(provider, sizeof provider, "%s", malloc_provider());
        if (strcmp(child, "system") == 0) {
            if (strcmp(cc_alloc_backend(), "system") != 0) {
                printf("E backend is '%s', not 'system'\n", cc_alloc_backend());
                return 1;
            }
            /* Debian's libmimalloc.so exports malloc: check where blocks come from. */
            void *p = cc_alloc(BLOCK);
            bool in_mimalloc = p != NULL && mi_is_in_heap_region(p);
            cc_free(p, BLOCK);
            snprintf(provider, sizeof provider, "system backend; its blocks come from %s",
                     in_mimalloc ? "MIMALLOC's heap (malloc is interposed by libmimalloc.so)" : "outside mimalloc's heap (libc)");
        }
        child_run(l, ms, pc_ms, provider);
        return 0;
    }

    if (quick) {
        rounds = rounds == 5 ? 3 : rounds;
        if (!ms_given) ms = 50;
        pc_ms = ms;
    } else if (ms_given) {
        pc_ms = ms;
    }
    if (rounds > MAX_ROUNDS) rounds = MAX_ROUNDS;
    if (strcmp(cc_alloc_backend(), "mimalloc") != 0) die("the in-process cases need the mimalloc backend");
    cc_alloc_stats_enable(false);
    find_peers();

    time_t wall = time(NULL);
    char when[64];
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %Z", localtime(&wall));
    printf("alloc_bench: %s\n", when);
    printf("command: ");
    for (int i = 0; i < argc; i++) printf("%s%s", i ? " " : "", argv[i]);
    printf("\nworkload: per thread, %d blocks of %d B allocated then freed, repeatedly; "
           "%u rounds x %u ms per run, cases interleaved, medians shown\n",
           BATCH, BLOCK, rounds, ms);
    printf("machine: %ld online CPUs; mimalloc %d; glue backend %s\n", sysconf(_SC_NPROCESSORS_ONLN),
           mi_version(), cc_alloc_backend());
    for (int c = 0; c < NCASES; c++)
        if (cases[c].preload && cases[c].preload[0]) printf("peer %s: LD_PRELOAD=%s\n", cases[c].label, cases[c].preload);
    fflush(stdout);

    for (int c = 0; c < NCASES; c++)
        for (int t = 0; t < NTHREADS; t++)
            for (int r = 0; r < MAX_ROUNDS; r++) pair_ns[c][t][r] = pair_mps[c][t][r] = pc_ns[c][r] = -1;

    /* Warm up the in-process cases (thread heaps, page faults), not recorded. */
    for (int c = C_RAW; c <= C_SEED; c++) {
        const loops_t *l = set_up_in_process(c);
        run_pairs(l, 2, 20);
        tear_down_in_process(c);
    }

    uint64_t t0 = bench_now_ns();
    for (unsigned r = 0; r < rounds; r++) {
        for (int k = 0; k < NCASES; k++) {
            int c = (int)((r + (unsigned)k) % NCASES); /* rotate the order each round */
            if (cases[c].skip) continue;
            if (cases[c].child_arg) run_child(c, (int)r, ms, pc_ms);
            else run_in_process(c, (int)r, ms, pc_ms);
        }
        fprintf(stderr, "alloc_bench: round %u/%u done (%.1f s)\n", r + 1, rounds, (double)(bench_now_ns() - t0) / 1e9);
    }

    int R = (int)rounds;
    printf("\nalloc+free pairs (64 B, 256 live per thread); ns/pair is per thread; "
           "'vs (a)' = median over rounds of ns(case)/ns(a) in the same round\n");
    printf("%-28s %7s %9s %11s %8s %19s\n", "case", "threads", "ns/pair", "M pairs/s", "vs (a)",
           "ns/pair min..max");
    for (int c = 0; c < NCASES; c++) {
        if (cases[c].skip) {
            printf("%-28s skipped: %s\n", cases[c].label, cases[c].skip);
            continue;
        }
        for (int t = 0; t < NTHREADS; t++) {
            printf("%-28s %7d ", cases[c].label, thread_counts[t]);
            print_row_value(median(pair_ns[c][t], R), "%*.2f", 9);
            printf(" ");
            print_row_value(median(pair_mps[c][t], R), "%*.1f", 11);
            printf(" ");
            print_row_value(median_ratio(pair_ns[c][t], pair_ns[C_RAW][t], R), "%*.3f", 8);
            printf(" %9.2f..%-8.2f\n", min_of(pair_ns[c][t], R, false), min_of(pair_ns[c][t], R, true));
        }
    }

    printf("\ncross-thread free: 1 producer allocates 64 B blocks, 1 consumer frees them "
           "(SPSC ring of %u, published every %u); ns per block\n", RING_SIZE, PC_CHUNK);
    printf("%-28s %9s %8s %19s\n", "case", "ns/block", "vs (a)", "ns/block min..max");
    for (int c = 0; c < NCASES; c++) {
        if (cases[c].skip) {
            printf("%-28s skipped: %s\n", cases[c].label, cases[c].skip);
            continue;
        }
        printf("%-28s ", cases[c].label);
        print_row_value(median(pc_ns[c], R), "%*.2f", 9);
        printf(" ");
        print_row_value(median_ratio(pc_ns[c], pc_ns[C_RAW], R), "%*.3f", 8);
        printf(" %9.2f..%-8.2f\n", min_of(pc_ns[c], R, false), min_of(pc_ns[c], R, true));
    }

    printf("\nmalloc in the child processes:\n");
    for (int c = 0; c < NCASES; c++)
        if (cases[c].child_arg && cases[c].provider[0])
            printf("  %-28s %s\n", cases[c].label, cases[c].provider);

    printf("\ntargets (informational; ratios are medians of per-round ratios):\n");
    for (int t = 0; t < NTHREADS; t++) {
        double b = median_ratio(pair_ns[C_GLUE_OFF][t], pair_ns[C_RAW][t], R);
        printf("  (b)/(a) <= 1.05 at %d thread%s: %.3f %s\n", thread_counts[t], thread_counts[t] > 1 ? "s" : "",
               b, pass(b > 0 && b <= 1.05));
    }
    double c1 = median_ratio(pair_ns[C_GLUE_ON][0], pair_ns[C_RAW][0], R);
    printf("  (c)/(a) <= 1.20 at 1 thread: %.3f %s\n", c1, pass(c1 > 0 && c1 <= 1.20));
    for (int t = 1; t < NTHREADS; t++) {
        double cb = median_ratio(pair_mps[C_GLUE_ON][t], pair_mps[C_GLUE_OFF][t], R);
        printf("  throughput (c) >= 0.9 x (b) at %d threads: (c)/(b) = %.3f %s\n", thread_counts[t], cb,
               pass(cb > 0 && cb >= 0.9));
    }
    printf("total time %.1f s\n", (double)(bench_now_ns() - t0) / 1e9);
    return 0;
}
#endif
