/*
 * <cc/alloc.h> -- the allocation glue: node allocation over mimalloc.
 *
 * Layer: includes <cc/config.h> and mimalloc.h, nothing above it.
 *
 * Contract (all functions are thread-safe):
 *  - A size of 0 returns NULL with errno = EINVAL. A size that cannot be
 *    satisfied returns NULL with errno = ENOMEM. cc_calloc returns NULL with
 *    ENOMEM when count * size overflows and EINVAL when either is 0.
 *    cc_alloc_aligned returns NULL with EINVAL when the alignment is not a
 *    power of two or is below sizeof(void *).
 *  - Any block may be freed by any thread. cc_free(NULL, n) and
 *    cc_free_unsized(NULL) do nothing. cc_free takes the size that was passed
 *    at allocation (for cc_calloc: count * size).
 *  - cc_alloc_node returns a block aligned to CC_CACHE_LINE_SIZE, or to the
 *    library's value where that is smaller (see "Compile-time switches").
 *
 * Statistics ("what a byte counts"):
 *  - A counted byte is a byte of the block the backend handed out, i.e. the
 *    block's usable size, cc_alloc_usable_size(p): for mimalloc the size class
 *    it rounds the request up to, for `system` malloc_usable_size(), for
 *    `debug` exactly the requested size.
 *  - The counts balance exactly: once every block counted is freed,
 *    free_count == alloc_count and free_bytes == alloc_bytes, whichever free
 *    function was used -- cc_free with the allocation size, or
 *    cc_free_unsized on blocks from cc_alloc, cc_calloc and cc_alloc_node.
 *    (Blocks from cc_alloc_aligned must be freed with cc_free(p, size) for
 *    exact byte counts: mimalloc may over-allocate them by a varying amount.
 *    Under mimalloc an aligned block counts cc__size_table[size] for an
 *    unambiguous size <= 1024, else its usable size at allocation, which the
 *    library keeps until the sized free: mimalloc 3.0.1's mi_usable_size of
 *    an aligned block later overstates it, and so may cc_alloc_usable_size.)
 *  - What the snapshot fields mean (docs/statistics.md has the reasons):
 *    current_blocks / current_allocated: every block of the glue that is
 *    live now -- whenever it was allocated, with statistics on or off. The
 *    glue counts every allocation and free all the time: mimalloc keeps no
 *    per-block mark, so a free could not tell a counted block from an
 *    uncounted one, and live counts would drift across enable/disable.
 *    A reset does not change them.
 *    alloc_count / alloc_bytes / free_count / free_bytes: the allocations and
 *    frees made while statistics were on, since the last reset (or process
 *    start). free_count may exceed alloc_count: frees of blocks allocated
 *    before the window count as frees. So current_blocks is not in general
 *    alloc_count - free_count; it is when statistics were on and no block
 *    crossed the window's start.
 *    enabled: statistics on when the snapshot was taken.
 *  - Counters are per thread and summed by cc_alloc_stats_snapshot(); counts
 *    of exited threads are kept. A snapshot never writes shared state. Taken
 *    while threads run it is a sum of recent per-thread values (live counts
 *    are clamped at 0 in the returned copy); once all threads are joined it
 *    is exact. Enabling, disabling and resetting while threads allocate
 *    attribute the racing calls to one side or the other.
 *
 * Fast path: the functions below are `static inline`. With the mimalloc
 * backend, once the thread has its counters, they test one per-thread
 * pointer, call mi_malloc_small / mi_free directly and bump one per-thread
 * counter indexed by the size (cc_free_unsized and sized frees of sizes
 * whose class differs from the node class ask mi_usable_size; the latter go
 * out of line while the library keeps aligned blocks' bytes). Everything
 * else (bad sizes, sizes above 1024, other backends, a thread's first call,
 * the first allocation of the process) goes out of line.
 *
 * Compile-time switches:
 *  - CC_CACHE_LINE_SIZE: 64 on x86-64 and most ARM64, 128 on Apple silicon.
 *    Override with -DCC_CACHE_LINE_SIZE=N (a power of two >= 8). It need not
 *    match the value the library was built with: no structure the headers
 *    share with the library depends on it (those are padded to
 *    CC__LAYOUT_LINE, fixed per target). It only sets the rounding and
 *    alignment cc_alloc_node's inline path uses; blocks the library's slow
 *    path makes are aligned to the library's value (so a program built with
 *    a larger value than the library's gets the library's alignment).
 *  - CC_ALLOC_STATS (default 1): whether the inline fast path exists. With 0
 *    every call goes through the library's out-of-line path, which counts:
 *    counts stay exact, code stays small, calls are slower.
 */
#ifndef CC_ALLOC_H
#define CC_ALLOC_H

#include <cc/config.h>

#include <errno.h>
#include <mimalloc.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The line every layout shared between these headers and the library is
 * padded to (struct cc__smr_rec in <cc/smr.h>). Fixed per target and NOT
 * derived from CC_CACHE_LINE_SIZE: the inline paths index those structures
 * with the program's compile-time layout and the library with its own, so
 * a user override of CC_CACHE_LINE_SIZE must not move a single field
 * (defect 7: with 128 against a 64 library, enter wrote `depth` where the
 * library reads something else and a thread looked in a section forever).
 * src/layout.c checks the layout with _Static_assert. */
#if defined(__APPLE__) && defined(__aarch64__)
#define CC__LAYOUT_LINE 128
#else
#define CC__LAYOUT_LINE 64
#endif

#ifndef CC_CACHE_LINE_SIZE
#define CC_CACHE_LINE_SIZE CC__LAYOUT_LINE
#endif
#if (CC_CACHE_LINE_SIZE & (CC_CACHE_LINE_SIZE - 1)) != 0 || CC_CACHE_LINE_SIZE < 8
#error "CC_CACHE_LINE_SIZE must be a power of two >= 8"
#endif

#ifndef CC_ALLOC_STATS
#define CC_ALLOC_STATS 1
#endif

/* ---- public API -------------------------------------------------------- */

typedef struct {
    uint64_t alloc_count;
    uint64_t free_count;
    uint64_t alloc_bytes;
    uint64_t free_bytes;
    uint64_t current_allocated; /* alloc_bytes - free_bytes */
    /* additions to the seed's five fields: */
    uint64_t current_blocks;    /* alloc_count - free_count */
    bool enabled;               /* statistics on when the snapshot was taken */
} cc_alloc_snapshot_t;

static inline void *cc_alloc(size_t size);
static inline void *cc_calloc(size_t count, size_t size);
CC_API void *cc_alloc_aligned(size_t size, size_t alignment);
static inline void *cc_alloc_node(size_t size);
static inline void cc_free(void *ptr, size_t size);
static inline void cc_free_unsized(void *ptr);

/* The usable size of a live block from this glue (what statistics count). */
CC_API size_t cc_alloc_usable_size(const void *ptr);

CC_API void cc_alloc_stats_enable(bool enable);
CC_API bool cc_alloc_stats_enabled(void);
CC_API cc_alloc_snapshot_t cc_alloc_stats_snapshot(void);
CC_API void cc_alloc_stats_reset(void);

/* Name of the active backend: "mimalloc", "system" or "debug". */
CC_API const char *cc_alloc_backend(void);
/* Choose the backend. Only before the first allocation in the process:
 * afterwards -1 with errno = EBUSY; an unknown name -1 with errno = EINVAL. */
CC_API int cc_alloc_set_backend(const char *name);

/* Fault injection (debug backend only): counting from this call, the
 * `nth` allocation fails (0: none), and every `every`-th one (0: none).
 * A failed allocation returns NULL with errno = ENOMEM and is not counted.
 * cc_alloc_fail_inject(0, 0) turns it off. Returns -1 with errno = ENOTSUP
 * under another backend. CONCURRENT_COLLECTIONS_FAIL_ALLOC sets it at start. */
CC_API int cc_alloc_fail_inject(uint64_t nth, uint64_t every);

/* ---- internals the inline fast path needs (not API) ------------------- */

#if defined(__GNUC__) || defined(__clang__)
#define CC__LIKELY(x) __builtin_expect(!!(x), 1)
#define CC__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define CC__TLS_IE __attribute__((tls_model("initial-exec")))
#else
#define CC__LIKELY(x) (x)
#define CC__UNLIKELY(x) (x)
#define CC__TLS_IE
#endif

/* ThreadSanitizer does not see inside mimalloc (or libc's allocator reached
 * through dlsym), so it would miss that a free happens before the next
 * allocation of the same memory, and report the new owner's writes as
 * races with the old owner's reads. Under TSan the glue tells it: a free
 * releases the block's pages, an allocation acquires them. */
#if defined(__SANITIZE_THREAD__)
#define CC__TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CC__TSAN 1
#endif
#endif
#ifdef CC__TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
/* Keyed by every 4 KiB page the block covers, not by its address: glibc and
 * mimalloc may hand the same bytes out again at another start address. */
static inline void cc__tsan_block(void *p, bool release) {
    if (p == NULL) return;
    size_t n = cc_alloc_usable_size(p);
    uintptr_t end = (uintptr_t)p + (n ? n : 1);
    for (uintptr_t a = (uintptr_t)p & ~(uintptr_t)4095; a < end; a += 4096) {
        if (release) __tsan_release((void *)a);
        else __tsan_acquire((void *)a);
    }
}
#define CC__TSAN_ACQUIRE(p) cc__tsan_block((p), false)
#define CC__TSAN_RELEASE(p) cc__tsan_block((p), true)
#else
#define CC__TSAN_ACQUIRE(p) ((void)0)
#define CC__TSAN_RELEASE(p) ((void)0)
#endif

/* Mode word. 0: mimalloc, initialised, first allocation made. CC__MODE_SLOW:
 * every call goes out of line (not initialised yet, no allocation yet, or
 * another backend). Once 0 it stays 0 (the backend is frozen by the first
 * allocation). The inline paths do not read it: see cc__alloc_tls. */
#define CC__MODE_SLOW 2u
extern CC_API atomic_uint cc__alloc_mode;

/* Usable size mimalloc gives a request of n bytes, for n <= CC__SIZE_TABLE_MAX,
 * filled from mi_good_size() by the library's initialisation.
 * CC__SIZE_AMBIGUOUS marks sizes whose class differs once rounded up to a
 * cache line: a sized free of such a size may be a node block, so it asks
 * mimalloc for the block's real size. */
#define CC__SIZE_TABLE_MAX 1024u
#define CC__SIZE_AMBIGUOUS 0x80000000u
extern CC_API uint32_t cc__size_table[CC__SIZE_TABLE_MAX + 1];

/* How many blocks from cc_alloc_aligned the library keeps the counted bytes
 * of (aligned blocks whose sized free would otherwise ask mi_usable_size;
 * see "aligned blocks" in src/alloc.c). While non-zero, sized frees of
 * ambiguous sizes go out of line. */
extern CC_API atomic_size_t cc__alloc_aligned_live;

/* Per-thread counters of the inline paths, indexed by a size n <= 
 * CC__SIZE_TABLE_MAX: one count stands for one block of cc__size_table[n]
 * bytes (a snapshot multiplies). Indexing by the size itself costs no table
 * lookup, and with a constant size the counter's offset folds at compile
 * time. Heap-allocated: 16 KiB is far too much for initial-exec TLS. */
typedef struct {
    _Atomic uint64_t alloc[CC__SIZE_TABLE_MAX + 1];
    _Atomic uint64_t free[CC__SIZE_TABLE_MAX + 1];
} cc__alloc_classes_t;

/* Per-thread state. Counters are written only by the owning thread (relaxed
 * store of load+1: no other thread writes them, so no RMW is needed) and
 * read by snapshots with relaxed loads (a snapshot is a sum of recent
 * values; see cc_alloc_stats_snapshot). `state` is only touched by the
 * owner: 0 = not registered, 1 = registered (counted here), 2 = thread
 * exiting (counted in global atomics instead).
 * `classes` is non-NULL only while state is 1, the backend is mimalloc and
 * the first allocation of the process has been made (so the mode word is 0
 * for good): that one test is all the inline paths check. A thread gets it
 * in its first call, which goes out of line (and through the library's
 * pthread_once, which orders the size table before this thread's reads).
 * Kept small: initial-exec TLS comes out of a surplus shared by every
 * dlopen'ed library. */
typedef struct cc__alloc_tls {
    cc__alloc_classes_t *classes;
    _Atomic uint64_t alloc_count, free_count, alloc_bytes, free_bytes;
    unsigned state;
    struct cc__alloc_tls *prev, *next; /* registry links, under its mutex */
} cc__alloc_tls_t;
extern CC_API __thread cc__alloc_tls_t cc__alloc_tls CC__TLS_IE;

CC_API void *cc__alloc_slow(size_t size);
CC_API void *cc__calloc_slow(size_t count, size_t size);
CC_API void *cc__alloc_node_slow(size_t size);
CC_API void cc__free_slow(void *ptr, size_t size);
CC_API void cc__free_unsized_slow(void *ptr);

static inline void cc__bump(_Atomic uint64_t *counter, uint64_t by) {
    atomic_store_explicit(counter, atomic_load_explicit(counter, memory_order_relaxed) + by,
                          memory_order_relaxed);
}

/* The calling thread's inline counters, or NULL: then the call goes out of
 * line. Non-NULL implies the mimalloc backend and a mode word of 0 for good
 * (see cc__alloc_tls_t), so no load of the mode word is needed here. */
static inline cc__alloc_classes_t *cc__counters(void) {
#if CC_ALLOC_STATS
    return cc__alloc_tls.classes;
#else
    return NULL;
#endif
}

/* acquire: pairs with the release stores of the mode word, so that a thread
 * that sees a mode also sees the size table and backend set up before it.
 * (Used by the library; the inline paths test cc__counters() instead.) */
static inline unsigned cc__mode(void) {
    return atomic_load_explicit(&cc__alloc_mode, memory_order_acquire);
}

#ifdef __cplusplus
static_assert(CC__SIZE_TABLE_MAX <= MI_SMALL_SIZE_MAX, "size table range must fit mi_malloc_small");
#else
_Static_assert(CC__SIZE_TABLE_MAX <= MI_SMALL_SIZE_MAX, "size table range must fit mi_malloc_small");
#endif

#define CC__ROUND_LINE(n) (((n) + (CC_CACHE_LINE_SIZE - 1)) & ~(size_t)(CC_CACHE_LINE_SIZE - 1))

/* ---- inline fast paths ------------------------------------------------- */
/* Every path counts: statistics are always kept, so that live-block counts
 * are exact whenever statistics are switched on (see the contract above). */

static inline void *cc_alloc(size_t size) {
    cc__alloc_classes_t *k = cc__counters();
    if (CC__LIKELY(k != NULL && size - 1 < CC__SIZE_TABLE_MAX)) {
        void *p = mi_malloc_small(size);
        if (CC__LIKELY(p != NULL)) {
            CC__TSAN_ACQUIRE(p);
            cc__bump(&k->alloc[size], 1);
            return p;
        }
    }
    return cc__alloc_slow(size);
}

static inline void *cc_calloc(size_t count, size_t size) {
#ifndef CC__TSAN /* mi_zalloc's memset would run before the acquire: zero out of line */
    size_t total;
    cc__alloc_classes_t *k = cc__counters();
    if (CC__LIKELY(k != NULL && count != 0 && !__builtin_mul_overflow(count, size, &total) &&
                   total - 1 < CC__SIZE_TABLE_MAX)) {
        void *p = mi_zalloc_small(total);
        if (CC__LIKELY(p != NULL)) {
            cc__bump(&k->alloc[total], 1);
            return p;
        }
    }
#endif
    return cc__calloc_slow(count, size);
}

/* A node block is a request rounded up to whole cache lines. mimalloc's size
 * classes for multiples of 64 bytes are 64-byte aligned in 2.0.9 and 3.0.1
 * (tests/unit/test_alloc.c, test_mimalloc_facts.c), so plain mi_malloc serves them; the alignment is
 * still checked and a miss goes to the slow path (mi_malloc_aligned_at). */
static inline void *cc_alloc_node(size_t size) {
    cc__alloc_classes_t *k = cc__counters();
    if (CC__LIKELY(k != NULL && size - 1 < CC__SIZE_TABLE_MAX && CC_CACHE_LINE_SIZE == 64)) {
        size_t rounded = CC__ROUND_LINE(size); /* <= CC__SIZE_TABLE_MAX */
        void *p = mi_malloc_small(rounded);
        if (CC__LIKELY(p != NULL && ((uintptr_t)p & (CC_CACHE_LINE_SIZE - 1)) == 0)) {
            CC__TSAN_ACQUIRE(p);
            /* Count what cc_free(p, size) and cc_free_unsized(p) will count:
             * `size` when its class is the block's, else the block's size. */
            cc__bump(&k->alloc[(cc__size_table[size] & CC__SIZE_AMBIGUOUS) ? rounded : size], 1);
            return p;
        }
        mi_free(p);
    }
    return cc__alloc_node_slow(size);
}

static inline void cc_free(void *ptr, size_t size) {
    cc__alloc_classes_t *k = cc__counters();
    if (CC__LIKELY(k != NULL && ptr != NULL && size - 1 < CC__SIZE_TABLE_MAX)) {
        size_t n = size;
        if (CC__UNLIKELY(cc__size_table[size] & CC__SIZE_AMBIGUOUS)) {
            /* An ambiguous size may be a node block: count its real size (a
             * class size, so it stands for the bytes its allocation counted).
             * It may also be an aligned block, whose bytes the library keeps
             * (mi_usable_size of it is not stable): out of line while any
             * such block is live. */
            n = atomic_load_explicit(&cc__alloc_aligned_live, memory_order_relaxed) == 0 ? mi_usable_size(ptr) : 0;
        }
        if (CC__LIKELY(n - 1 < CC__SIZE_TABLE_MAX)) { /* (an aligned block may be larger) */
            cc__bump(&k->free[n], 1);
            CC__TSAN_RELEASE(ptr);
            mi_free(ptr);
            return;
        }
    }
    cc__free_slow(ptr, size);
}

static inline void cc_free_unsized(void *ptr) {
    cc__alloc_classes_t *k = cc__counters();
    if (CC__LIKELY(k != NULL && ptr != NULL)) {
        size_t n = mi_usable_size(ptr);
        if (CC__LIKELY(n - 1 < CC__SIZE_TABLE_MAX)) {
            cc__bump(&k->free[n], 1);
            CC__TSAN_RELEASE(ptr);
            mi_free(ptr);
            return;
        }
    }
    cc__free_unsized_slow(ptr);
}

#ifdef __cplusplus
}
#endif
#endif /* CC_ALLOC_H */
