/*
 * Helpers shared by the regression tests (issue 6): sanitizer detection,
 * scaling, clocks, RSS, a small PRNG, thread spawn/join.
 *
 * cmocka's assert_* run only on the test's main thread; workers use CC_CHECK.
 */
#ifndef REG_TEST_H
#define REG_TEST_H

#include <cc/queue.h>
#include <cc/stack.h>
#include "cc_test.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define REG_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define REG_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define REG_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define REG_TSAN 1
#endif
#endif

static inline int reg_is_debug(void) { return strcmp(cc_alloc_backend(), "debug") == 0; }

/* n scaled down for the debug backend (one global mutex) and sanitizers;
 * CC_TEST_SCALE=<percent> scales further. Never below `min`. */
static inline unsigned reg_scale(unsigned n, unsigned min) {
    if (reg_is_debug()) n /= 4;
#ifdef REG_SANITIZED
    n /= 4;
#endif
    const char *s = getenv("CC_TEST_SCALE");
    if (s) n = (unsigned)((unsigned long long)n * strtoul(s, NULL, 10) / 100);
    return n < min ? min : n;
}

static inline double reg_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void reg_sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Resident set size of this process, in bytes (/proc/self/statm, field 2). */
static inline uint64_t reg_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long size = 0, res = 0;
    if (f) {
        if (fscanf(f, "%llu %llu", &size, &res) != 2) res = 0;
        fclose(f);
    }
    return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* xorshift64*: per-thread, deterministic from its seed. */
static inline uint64_t reg_rand(uint64_t *s) {
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

static inline void reg_spawn(pthread_t *t, void *(*fn)(void *), void *arg) {
    CC_CHECK(pthread_create(t, NULL, fn, arg) == 0);
}

static inline void reg_join(pthread_t t) { CC_CHECK(pthread_join(t, NULL) == 0); }

#endif
