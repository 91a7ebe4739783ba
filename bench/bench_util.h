/*
 * bench_util.h: the clock and the sort comparator every program in bench/
 * uses (header-only; each program is a single translation unit).
 *
 * The clock is CLOCK_MONOTONIC: never steps back, so differences are
 * durations even across NTP adjustments.
 */
#ifndef CC_BENCH_UTIL_H
#define CC_BENCH_UTIL_H

#include <stdint.h>
#include <time.h>

/* Monotonic time in nanoseconds. */
static inline uint64_t bench_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Monotonic time in seconds. */
static inline double bench_now_s(void) { return (double)bench_now_ns() * 1e-9; }

/* qsort comparator for doubles, ascending. */
static inline int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
