/*
 * Runtime configuration: the environment, read once, and the C API on top.
 *
 * Invariants:
 *  - The environment is parsed exactly once (pthread_once), on first use.
 *  - A bad value yields one line on stderr and the default; never an abort.
 *  - Settings are atomics read with relaxed loads: each is an independent
 *    value, nothing else is published through them.
 */
#include <cc/config.h>

#include "config_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ENV_ALLOCATOR "CONCURRENT_COLLECTIONS_ALLOCATOR"
#define ENV_STATS "CONCURRENT_COLLECTIONS_ENABLE_STATS"
#define ENV_THRESHOLD "CONCURRENT_COLLECTIONS_RETIRE_THRESHOLD"
#define ENV_FAIL "CONCURRENT_COLLECTIONS_FAIL_ALLOC"
#define ENV_SMR_FENCE "CONCURRENT_COLLECTIONS_SMR_FENCE"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

static const char *const backend_names[] = {"mimalloc", "system", "debug"};

static pthread_once_t env_once = PTHREAD_ONCE_INIT;
static cc_backend_t env_backend = CC_BACKEND_MIMALLOC;
static bool env_stats = false;
static unsigned long long env_fail_nth, env_fail_every;
atomic_size_t cc__config_retire_threshold = CC_RETIRE_THRESHOLD_DEFAULT;
/* The SMR fence mode, plus SMR_FENCE_FROZEN once SMR has fixed it (one word,
 * so a setter racing with the freeze either lands before it or fails). */
#define SMR_FENCE_FROZEN 0x100u
static _Atomic unsigned smr_fence_state = CC_SMR_FENCE_AUTO;
static const char *const smr_fence_names[] = {"auto", "membarrier", "always"};

const char *cc_config_backend_name(cc_backend_t backend) {
    if ((unsigned)backend >= COUNT_OF(backend_names)) return NULL;
    return backend_names[backend];
}

/* Index of `name` in names[0..n), or -1 (also for NULL). */
static int name_index(const char *const *names, unsigned n, const char *name) {
    if (name != NULL)
        for (unsigned i = 0; i < n; i++)
            if (strcmp(name, names[i]) == 0) return (int)i;
    return -1;
}

int cc_config_parse_backend(const char *name, cc_backend_t *out) {
    int i = name_index(backend_names, COUNT_OF(backend_names), name);
    if (i < 0) {
        errno = EINVAL;
        return -1;
    }
    if (out) *out = (cc_backend_t)i;
    return 0;
}

/* Parses a whole decimal integer in [lo, hi]; no sign, no trailing junk. */
static int parse_uint(const char *s, unsigned long long lo, unsigned long long hi,
                      unsigned long long *out) {
    if (s[0] < '0' || s[0] > '9') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static void read_env_fail(void) {
    const char *v = getenv(ENV_FAIL);
    if (v == NULL) return;
    unsigned long long n;
    if (strncmp(v, "every:", 6) == 0 && parse_uint(v + 6, 1, ~0ull, &n) == 0) {
        env_fail_every = n;
    } else if (parse_uint(v, 1, ~0ull, &n) == 0) {
        env_fail_nth = n;
    } else {
        fprintf(stderr,
                "concurrent_collections: ignoring %s='%s': expected N or every:N with N >= 1; "
                "no allocation fails\n",
                ENV_FAIL, v);
    }
}

static void read_env_smr_fence(void) {
    const char *v = getenv(ENV_SMR_FENCE);
    if (v == NULL) return;
    int i = name_index(smr_fence_names, COUNT_OF(smr_fence_names), v);
    if (i >= 0) {
        atomic_store_explicit(&smr_fence_state, (unsigned)i, memory_order_relaxed);
        return;
    }
    fprintf(stderr,
            "concurrent_collections: ignoring %s='%s': expected 'auto', 'membarrier' or "
            "'always'; using 'auto'\n",
            ENV_SMR_FENCE, v);
}

static void read_env(void) {
    const char *v = getenv(ENV_ALLOCATOR);
    if (v != NULL && cc_config_parse_backend(v, &env_backend) != 0) {
        fprintf(stderr,
                "concurrent_collections: ignoring %s='%s': expected 'mimalloc', 'system' or "
                "'debug'; using 'mimalloc'\n",
                ENV_ALLOCATOR, v);
        env_backend = CC_BACKEND_MIMALLOC;
    }
    v = getenv(ENV_STATS);
    if (v != NULL) {
        if (strcmp(v, "1") == 0) {
            env_stats = true;
        } else if (strcmp(v, "0") != 0) {
            fprintf(stderr,
                    "concurrent_collections: ignoring %s='%s': expected '0' or '1'; "
                    "statistics stay off\n",
                    ENV_STATS, v);
        }
    }
    read_env_fail();
    read_env_smr_fence();
    v = getenv(ENV_THRESHOLD);
    if (v != NULL) {
        unsigned long long n;
        if (parse_uint(v, 1, CC_RETIRE_THRESHOLD_MAX, &n) == 0) {
            atomic_store_explicit(&cc__config_retire_threshold, (size_t)n, memory_order_relaxed);
        } else {
            fprintf(stderr,
                    "concurrent_collections: ignoring %s='%s': expected an integer from 1 to "
                    "%u; using %u\n",
                    ENV_THRESHOLD, v, CC_RETIRE_THRESHOLD_MAX, CC_RETIRE_THRESHOLD_DEFAULT);
        }
    }
}

static void ensure_env(void) { pthread_once(&env_once, read_env); }

cc_backend_t cc_config_env_backend(void) {
    ensure_env();
    return env_backend;
}

bool cc_config_env_stats(void) {
    ensure_env();
    return env_stats;
}

size_t cc_config_retire_threshold(void) {
    ensure_env();
    return atomic_load_explicit(&cc__config_retire_threshold, memory_order_relaxed);
}

int cc_config_set_retire_threshold(size_t threshold) {
    ensure_env(); /* so a later first read of the environment cannot undo this */
    if (threshold == 0 || threshold > CC_RETIRE_THRESHOLD_MAX) {
        errno = EINVAL;
        return -1;
    }
    atomic_store_explicit(&cc__config_retire_threshold, threshold, memory_order_relaxed);
    return 0;
}

void cc_config_env_fail_alloc(unsigned long long *nth, unsigned long long *every) {
    ensure_env();
    *nth = env_fail_nth;
    *every = env_fail_every;
}

cc_smr_fence_t cc_config_smr_fence(void) {
    ensure_env();
    return (cc_smr_fence_t)(atomic_load_explicit(&smr_fence_state, memory_order_relaxed) &
                            ~SMR_FENCE_FROZEN);
}

int cc_config_set_smr_fence(cc_smr_fence_t mode) {
    ensure_env();
    if ((unsigned)mode > CC_SMR_FENCE_ALWAYS) {
        errno = EINVAL;
        return -1;
    }
    unsigned cur = atomic_load_explicit(&smr_fence_state, memory_order_relaxed);
    do {
        if (cur & SMR_FENCE_FROZEN) {
            errno = EBUSY;
            return -1;
        }
    } while (!atomic_compare_exchange_weak_explicit(&smr_fence_state, &cur, (unsigned)mode,
                                                    memory_order_relaxed, memory_order_relaxed));
    return 0;
}

cc_smr_fence_t cc__config_smr_fence_freeze(void) {
    ensure_env();
    return (cc_smr_fence_t)(atomic_fetch_or_explicit(&smr_fence_state, SMR_FENCE_FROZEN,
                                                     memory_order_relaxed) &
                            ~SMR_FENCE_FROZEN);
}
