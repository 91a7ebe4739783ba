/*
 * <cc/config.h> -- runtime configuration of concurrent-collections.
 *
 * The lowest layer: it includes nothing of ours. It owns the environment
 * variables and the knobs of the layers above it:
 *
 *   CONCURRENT_COLLECTIONS_ALLOCATOR         mimalloc | system | debug
 *   CONCURRENT_COLLECTIONS_ENABLE_STATS      0 | 1
 *   CONCURRENT_COLLECTIONS_RETIRE_THRESHOLD  integer in [1, CC_RETIRE_THRESHOLD_MAX]
 *   CONCURRENT_COLLECTIONS_SMR_FENCE         auto | membarrier | always
 *   CONCURRENT_COLLECTIONS_FAIL_ALLOC        N | every:N   (debug backend only:
 *                                            fail the Nth allocation, or every Nth)
 *
 * Invariants:
 *  - The environment is read once per process, lazily, on first use of any
 *    cc_config_* function or of the allocation glue.
 *  - A bad value prints one line on stderr naming the variable, the value and
 *    what is accepted; the setting keeps its default. Nothing aborts.
 *  - The C API overrides the environment. Setters validate their input and
 *    return -1 with errno = EINVAL on bad input, leaving the setting as it was.
 */
#ifndef CC_CONFIG_H
#define CC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CC_API __attribute__((visibility("default")))
#else
#define CC_API
#endif

/* The allocator backends of <cc/alloc.h>. */
typedef enum cc_backend {
    CC_BACKEND_MIMALLOC = 0, /* Debian's libmimalloc (the default)          */
    CC_BACKEND_SYSTEM = 1,   /* the C library's malloc / aligned_alloc      */
    CC_BACKEND_DEBUG = 2     /* checking allocator: aborts on misuse        */
} cc_backend_t;

#define CC_RETIRE_THRESHOLD_DEFAULT 64u
#define CC_RETIRE_THRESHOLD_MAX (1u << 20)

/* Name of a backend ("mimalloc", "system", "debug"), or NULL if out of range. */
CC_API const char *cc_config_backend_name(cc_backend_t backend);

/* Parse a backend name. Returns 0 and stores it, or -1 with errno = EINVAL. */
CC_API int cc_config_parse_backend(const char *name, cc_backend_t *out);

/* The backend the environment asks for (CC_BACKEND_MIMALLOC when unset or bad). */
CC_API cc_backend_t cc_config_env_backend(void);

/* Whether the environment asks for statistics at start. */
CC_API bool cc_config_env_stats(void);

/*
 * SMR retire threshold: every this many retires a thread runs a full scan
 * (tries to advance the epoch and frees what is safe). Defaults to
 * CC_RETIRE_THRESHOLD_DEFAULT or CONCURRENT_COLLECTIONS_RETIRE_THRESHOLD.
 * The setter rejects 0 and values above CC_RETIRE_THRESHOLD_MAX (EINVAL).
 * A change takes effect for each thread within 32 of its retires, and at
 * once after its next cc_smr_poll() or cc_smr_barrier().
 */
CC_API size_t cc_config_retire_threshold(void);
CC_API int cc_config_set_retire_threshold(size_t threshold);

/*
 * How SMR orders a reader's announcement before its pointer loads (see
 * src/smr_revoke.c, "ASYMMETRIC MODE"):
 *  - ALWAYS: every outermost cc_smr_enter() is a full barrier (x86 `xchg`).
 *  - MEMBARRIER: a thread keeps its announcement between sections, so an
 *    outermost enter is plain loads and stores while the epoch has not moved;
 *    a reclaimer that needs an idle thread's announcement out of its way calls
 *    membarrier(2) (MEMBARRIER_CMD_PRIVATE_EXPEDITED) instead. If the kernel
 *    refuses it, one line on stderr and ALWAYS is used.
 *  - AUTO (the default): MEMBARRIER when the kernel offers it, else ALWAYS.
 * The mode is fixed when SMR registers its first thread; from then on the
 * setter fails with EBUSY. Bad input: -1 with errno = EINVAL. The getter
 * returns the setting (cc_smr_stats().asymmetric tells the mode in effect).
 */
typedef enum cc_smr_fence {
    CC_SMR_FENCE_AUTO = 0,
    CC_SMR_FENCE_MEMBARRIER = 1,
    CC_SMR_FENCE_ALWAYS = 2
} cc_smr_fence_t;
CC_API cc_smr_fence_t cc_config_smr_fence(void);
CC_API int cc_config_set_smr_fence(cc_smr_fence_t mode);

/* Fault injection asked for by CONCURRENT_COLLECTIONS_FAIL_ALLOC: the Nth
 * allocation fails (*nth, 0 = none) or every Nth one (*every, 0 = none). */
CC_API void cc_config_env_fail_alloc(unsigned long long *nth, unsigned long long *every);

#ifdef __cplusplus
}
#endif
#endif /* CC_CONFIG_H */
