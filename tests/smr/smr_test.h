/*
 * Helpers shared by the SMR and collection tests.
 */
#ifndef SMR_TEST_H
#define SMR_TEST_H

#include <cc/smr.h>
#include "cc_test.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define SMR_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define SMR_TEST_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define SMR_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SMR_TEST_TSAN 1
#endif
#endif

/* Iteration counts scale down for the debug backend (one global mutex) and
 * for sanitizer builds; CC_TEST_SCALE=<percent> scales further. */
static inline unsigned smr_scale(unsigned n) {
    if (strcmp(cc_alloc_backend(), "debug") == 0) n /= 8;
#ifdef SMR_TEST_SANITIZED
    n /= 4;
#endif
    const char *s = getenv("CC_TEST_SCALE");
    if (s) n = (unsigned)((unsigned long long)n * strtoul(s, NULL, 10) / 100);
    return n ? n : 1;
}

static inline void smr_sleep_ms(unsigned ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static inline void smr_spawn(pthread_t *t, void *(*fn)(void *), void *arg) {
    CC_CHECK(pthread_create(t, NULL, fn, arg) == 0);
}

static inline void smr_join(pthread_t t) { CC_CHECK(pthread_join(t, NULL) == 0); }

#endif
