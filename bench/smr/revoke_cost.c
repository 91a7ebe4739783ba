/*
 * revoke_cost: what the asymmetric mode's revocation costs a thread that
 * reclaims, in the case that needs it most.
 *
 * A "hammer" thread does push+pop pairs on a cc_stack for a fixed time. A
 * second, "sleeper" thread does one push+pop every `gap` microseconds and
 * sleeps in between WITHOUT calling cc_smr_idle(): each time, it leaves its
 * announcement behind, the epoch soon stops advancing, and the hammer must
 * wait out the patience and revoke it with membarrier(2) -- at most once per
 * sleeper operation. The hammer's throughput is reported as a ratio to the
 * same hammer with no sleeper, measured in the same round (rounds interleave
 * the cases; medians over rounds), together with membarriers per second.
 * The pacing in src/smr_revoke.c promises the loss stays near 1/16 (6 %) or less.
 * A case with cc_smr_idle() before the sleep shows that announcing idleness
 * avoids the cost (no membarrier at all).
 *
 * usage: revoke_cost [rounds=5] [ms_per_case=300]
 */
#define _GNU_SOURCE
#include <cc/stack.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "../bench_util.h"

static cc_stack_t *g_stack;
static atomic_bool g_stop;
static long g_gap_us;
static bool g_announce_idle;

static void *sleeper(void *arg) {
    (void)arg;
    void *v;
    while (!atomic_load_explicit(&g_stop, memory_order_relaxed)) {
        cc_stack_push(g_stack, (void *)1);
        cc_stack_pop(g_stack, &v);
        if (g_announce_idle) cc_smr_idle();
        struct timespec ts = {g_gap_us / 1000000, (g_gap_us % 1000000) * 1000};
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* Hammer for `ms` with an optional sleeper; returns M pairs/s, adds the
 * membarrier calls to *mb. */
static double run_case(long gap_us, bool idle, int ms, uint64_t *mb) {
    pthread_t t;
    g_gap_us = gap_us;
    g_announce_idle = idle;
    atomic_store(&g_stop, false);
    if (gap_us > 0 && pthread_create(&t, NULL, sleeper, NULL) != 0) abort();
    uint64_t m0 = cc_smr_stats().membarriers;
    void *v;
    long pairs = 0;
    double t0 = bench_now_s(), end = t0 + ms / 1000.0, t1;
    do {
        for (int i = 0; i < 1000; i++) {
            if (!cc_stack_push(g_stack, (void *)2)) abort();
            cc_stack_pop(g_stack, &v);
        }
        pairs += 1000;
    } while ((t1 = bench_now_s()) < end);
    *mb += cc_smr_stats().membarriers - m0;
    atomic_store(&g_stop, true);
    if (gap_us > 0) pthread_join(t, NULL);
    return (double)pairs / (t1 - t0) / 1e6;
}

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 5;
    int ms = argc > 2 ? atoi(argv[2]) : 300;
    if (rounds < 1 || rounds > 99 || ms < 10) {
        fprintf(stderr, "usage: revoke_cost [rounds 1..99] [ms_per_case >= 10]\n");
        return 2;
    }
    g_stack = cc_stack_new();
    if (!g_stack) return 1;
    struct {
        long gap;
        bool idle;
    } cases[] = {{0, false}, {20, false}, {100, false}, {1000, false}, {10000, false}, {100, true}};
    enum { NC = sizeof cases / sizeof cases[0] };
    double mops[NC][99], ratio[NC][99];
    uint64_t mb[NC] = {0};
    for (int r = 0; r < rounds; r++) {
        for (int c = 0; c < NC; c++) mops[c][r] = run_case(cases[c].gap, cases[c].idle, ms, &mb[c]);
        for (int c = 0; c < NC; c++) ratio[c][r] = mops[c][r] / mops[0][r];
    }
    cc_smr_snapshot_t s = cc_smr_stats();
    printf("# revoke_cost: %d rounds x %d ms per case, mode %s; hammer M pairs/s and its ratio to\n"
           "# no sleeper in the same round (medians over rounds); membarriers per second\n",
           rounds, ms, s.asymmetric ? "asymmetric" : "always (no revocation happens)");
    printf("%-34s %9s %9s %14s\n", "sleeper", "Mpairs/s", "ratio", "membarriers/s");
    for (int c = 0; c < NC; c++) {
        qsort(mops[c], (size_t)rounds, sizeof(double), bench_cmp_double);
        qsort(ratio[c], (size_t)rounds, sizeof(double), bench_cmp_double);
        char name[64];
        if (cases[c].gap == 0) snprintf(name, sizeof name, "none (baseline)");
        else snprintf(name, sizeof name, "1 op / %ld us%s", cases[c].gap,
                      cases[c].idle ? ", cc_smr_idle() first" : "");
        printf("%-34s %9.2f %9.3f %14.0f\n", name, mops[c][rounds / 2], ratio[c][rounds / 2],
               (double)mb[c] / (rounds * ms / 1000.0));
    }
    cc_stack_destroy(g_stack);
    return 0;
}
