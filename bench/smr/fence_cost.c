/*
 * fence_cost: what one read-side section's store-load ordering costs here,
 * and what the asymmetric alternative (membarrier) would cost.
 *
 * An epoch scheme must order a thread's announcement (a store) before its
 * later loads of shared pointers. The "leaky" reference of smr_bench pays
 * nothing for that; every fence-based scheme (ours, ck_epoch) pays one
 * barrier per outermost section. This program measures, in one run, the
 * ns per announce + barrier + load + quiesce sequence for:
 *   none      no barrier (what leaky pays; unsafe for reclamation)
 *   mfence    release store + atomic_thread_fence(seq_cst)
 *   xchg      seq_cst exchange (what cc_smr_enter does on x86)
 * and the ns per membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) call with a
 * second thread spinning (the cost a writer would pay instead, per epoch
 * advance, if readers used only a compiler barrier, as liburcu's memb
 * flavour does), and with it sleeping (what revoking an idle thread costs).
 * Last, the library's own outermost cc_smr_enter() + load + cc_smr_exit()
 * in the mode this process runs in (CONCURRENT_COLLECTIONS_SMR_FENCE):
 * asymmetric (kept announcement, no fence) or always (seq_cst exchange).
 *
 * usage: fence_cost [iterations=20000000] [lib] -- prints medians of 5 runs;
 * with `lib`, only the library line (scripts/run-bench-smr.sh runs it once
 * more with CONCURRENT_COLLECTIONS_SMR_FENCE=always).
 */
#define _GNU_SOURCE
#include <cc/smr.h>

#include <linux/membarrier.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "../bench_util.h"

static _Atomic uint64_t announce, epoch, sink;
static atomic_bool stop_spinner;

#define SECTION_LOOP(BARRIER)                                                          \
    do {                                                                               \
        uint64_t s = 0;                                                                \
        double t0 = (double)bench_now_ns();                                                          \
        for (long i = 0; i < n; i++) {                                                 \
            BARRIER;                                                                   \
            s += atomic_load_explicit(&epoch, memory_order_acquire);                   \
            atomic_store_explicit(&announce, 0, memory_order_release);                 \
        }                                                                              \
        atomic_store_explicit(&sink, s, memory_order_relaxed);                         \
        return ((double)bench_now_ns() - t0) / (double)n;                                            \
    } while (0)

static double run_none(long n) {
    SECTION_LOOP((atomic_store_explicit(&announce, (uint64_t)i | 1, memory_order_release),
                  atomic_signal_fence(memory_order_seq_cst)));
}
static double run_mfence(long n) {
    SECTION_LOOP((atomic_store_explicit(&announce, (uint64_t)i | 1, memory_order_release),
                  atomic_thread_fence(memory_order_seq_cst)));
}
static double run_xchg(long n) {
    SECTION_LOOP((void)atomic_exchange_explicit(&announce, (uint64_t)i | 1, memory_order_seq_cst));
}

static double run_library(long n) {
    uint64_t s = 0;
    double t0 = (double)bench_now_ns();
    for (long i = 0; i < n; i++) {
        cc_smr_enter();
        s += atomic_load_explicit(&epoch, memory_order_acquire);
        cc_smr_exit();
    }
    atomic_store_explicit(&sink, s, memory_order_relaxed);
    return ((double)bench_now_ns() - t0) / (double)n;
}

/* The second thread: spins (arg NULL), or sleeps 100 us at a time, as an
 * idle SMR thread would (its CPU is then mostly idle, and membarrier need
 * not interrupt it). */
static void *spinner(void *arg) {
    while (!atomic_load_explicit(&stop_spinner, memory_order_relaxed)) {
        if (arg) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* Median ns per membarrier call over RUNS runs with a second thread that
 * spins or sleeps (-1: unavailable). */
static double run_membarrier(long n);
static double membarrier_with(bool sleeping, long n, int runs) {
    double mb[16];
    pthread_t th;
    atomic_store(&stop_spinner, false);
    int have = pthread_create(&th, NULL, spinner, sleeping ? (void *)1 : NULL) == 0;
    for (int r = 0; r < runs; r++) mb[r] = run_membarrier(n);
    atomic_store(&stop_spinner, true);
    if (have) pthread_join(th, NULL);
    qsort(mb, (size_t)runs, sizeof(double), bench_cmp_double);
    return mb[runs / 2];
}

static double run_membarrier(long n) {
    if (syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) != 0) return -1;
    double t0 = (double)bench_now_ns();
    for (long i = 0; i < n; i++)
        if (syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) != 0) return -1;
    return ((double)bench_now_ns() - t0) / (double)n;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 20000000;
    if (n < 1000) {
        fprintf(stderr, "usage: fence_cost [iterations >= 1000]\n");
        return 2;
    }
    enum { RUNS = 5 };
    double none[RUNS], mf[RUNS], xc[RUNS], lib[RUNS];
    cc_smr_enter(); /* registers; fixes the mode */
    cc_smr_exit();
    const char *mode = cc_smr_stats().asymmetric ? "asymmetric" : "always";
    for (int r = 0; r < RUNS; r++) lib[r] = run_library(n);
    qsort(lib, RUNS, sizeof(double), bench_cmp_double);
    if (argc > 2 && strcmp(argv[2], "lib") == 0) {
        printf("cc_smr_enter+exit, %-10s %8.2f ns\n", mode, lib[RUNS / 2]);
        return 0;
    }
    for (int r = 0; r < RUNS; r++) {
        none[r] = run_none(n);
        mf[r] = run_mfence(n);
        xc[r] = run_xchg(n);
    }
    long nmb = n / 2000 > 10 ? n / 2000 : 10;
    double mb_spin = membarrier_with(false, nmb, RUNS), mb_sleep = membarrier_with(true, nmb, RUNS);
    qsort(none, RUNS, sizeof(double), bench_cmp_double);
    qsort(mf, RUNS, sizeof(double), bench_cmp_double);
    qsort(xc, RUNS, sizeof(double), bench_cmp_double);
    printf("# fence_cost: ns per announce + barrier + load + quiesce (median of %d runs of %ld)\n", RUNS, n);
    printf("none (leaky, unsafe)      %8.2f ns\n", none[RUNS / 2]);
    printf("store + seq_cst fence     %8.2f ns\n", mf[RUNS / 2]);
    printf("seq_cst exchange          %8.2f ns\n", xc[RUNS / 2]);
    if (mb_spin < 0) {
        printf("membarrier expedited      unavailable\n");
    } else {
        printf("membarrier expedited      %8.0f ns per call (a second thread spinning)\n", mb_spin);
        printf("membarrier expedited      %8.0f ns per call (a second thread sleeping)\n", mb_sleep);
    }
    printf("cc_smr_enter+exit, %-10s %8.2f ns\n", mode, lib[RUNS / 2]);
    return 0;
}
