/*
 * <cc/smr.h> -- deferred freeing: epoch-based safe memory reclamation.
 *
 * Layer: includes <cc/alloc.h> (and through it <cc/config.h>).
 *
 * A node unlinked from a shared structure may still be read by threads that
 * loaded a pointer to it before the unlink. cc_smr_retire() hands such a node
 * to this layer, which frees it (through its free function, by default
 * cc_free) only once every thread that could hold it has left its read-side
 * critical section. See src/smr_epoch.c for the algorithm and its safety argument
 * (src/smr_internal.h lists the files of the layer).
 *
 * Rules:
 *  - Threads register themselves on first use; there is no register call.
 *  - Shared nodes may only be dereferenced between cc_smr_enter() and
 *    cc_smr_exit(). Sections nest; only the outermost pair matters.
 *  - cc_smr_retire(node, size, free_fn): free_fn(node, size) runs exactly
 *    once, on some thread, after no thread can still be reading the node.
 *    free_fn == NULL means cc_free(node, size); node == NULL does nothing.
 *    Retire may be called inside or outside a critical section.
 *  - A thread that stalls inside a critical section stops reclamation for
 *    everyone: memory retired after it entered grows without bound until it
 *    leaves. cc_smr_stats() shows this (`stalled_threads`, `pending`).
 *  - In asymmetric mode (see cc_config_set_smr_fence) a thread that is idle
 *    outside a section may hold back the epoch until a reclaimer revokes its
 *    kept announcement with membarrier(2); reclaimers wait a short, bounded
 *    while for it to come back first (src/smr_revoke.c, "ASYMMETRIC MODE").
 *  - A thread that exits hands its pending nodes to a global orphan list;
 *    other threads' polls and the barrier free them. Nothing is lost.
 *  - free_fn may call cc_smr_retire(). cc_smr_barrier() from a free function
 *    fails with EDEADLK (its own pending frees cannot run under it). A thread
 *    may end inside a free function (pthread_exit, cancellation): its
 *    remaining frees run at its exit.
 *  - Signal handlers: sections are NOT async-signal-safe. A handler must not
 *    call any function of this library (SMR, the collections, the glue with
 *    statistics on) unless the thread it interrupts is known not to be inside
 *    one (for example, the signal is blocked around every such call). The
 *    outermost enter stores its depth before it validates its announcement;
 *    a handler that arrives in between sees depth >= 1, takes its own enter
 *    for a nested one, and would read without protection. This is not
 *    detected: detection would cost every enter a test.
 */
#ifndef CC_SMR_H
#define CC_SMR_H

#include <cc/alloc.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*cc_smr_free_fn)(void *node, size_t size);

typedef struct {
    uint64_t retired;          /* nodes ever retired                         */
    uint64_t freed;            /* nodes ever freed by SMR                    */
    uint64_t pending;          /* retired - freed                            */
    uint64_t epoch;            /* current global epoch                       */
    /* additions: */
    uint64_t threads;          /* registered threads (live)                  */
    uint64_t orphaned;         /* pending nodes handed over by exited threads */
    uint64_t stalled_threads;  /* threads in a section whose announced epoch is behind the
                                  global one: they block the next advance (a thread stuck
                                  there pins all later retirements; normal threads show
                                  up only briefly) */
    uint64_t peak_pending;     /* highest `pending` sampled (every `threshold` retires
                                  of a thread, and by cc_smr_stats) */
    uint64_t asymmetric;       /* 1: sections enter without a fence (membarrier mode), 0: with one */
    uint64_t membarriers;      /* membarrier(2) calls made to revoke idle threads' announcements
                                  or to lock a record (asymmetric mode only) */
} cc_smr_snapshot_t;

static inline void cc_smr_enter(void);
static inline void cc_smr_exit(void);
static inline void cc_smr_retire(void *node, size_t size, cc_smr_free_fn free_fn);
CC_API size_t cc_smr_poll(void);
/* 0 once every node retired before the call (by any thread) has been freed.
 * Inside a critical section: -1 with errno = EDEADLK. */
CC_API int cc_smr_barrier(void);
CC_API cc_smr_snapshot_t cc_smr_stats(void);
/* The calling thread is about to wait (a lock, I/O, a condition variable)
 * outside any section: in asymmetric mode it drops its kept announcement, so
 * reclamation neither waits for it nor spends a membarrier(2) on it. One
 * release store; a no-op inside a section, in the fencing mode, and for a
 * thread that never used SMR. Never required for correctness. */
CC_API void cc_smr_idle(void);

/* ---- internals the inline fast path needs (not API) ------------------- */
/*
 * cc_smr_enter/cc_smr_exit are `static inline`: nested pairs touch only the
 * calling thread's record. In asymmetric mode (the default where membarrier(2)
 * works, see cc_config_set_smr_fence) the outermost enter stores depth = 1 and
 * checks that the announcement it kept still names the global epoch: no
 * fence, no atomic RMW; the outermost exit is one release store of depth.
 * Otherwise the outermost enter is a seq_cst exchange of the announcement and
 * a seq_cst re-load of the global epoch (no write to a line another thread
 * writes), and the outermost exit one release store of the announcement.
 * Everything else (first use, a barrier holding the record, an epoch that
 * moved, frees to run after the section) goes to the library.
 * src/smr_epoch.c has the algorithm and the safety argument, src/smr_internal.h
 * the ordering table.
 *
 * cc_smr_retire is `static inline` too: inside a section, with room in the
 * chunk being filled and retires left before the next scan step, it appends
 * (node, size, free_fn) to that chunk with plain stores (no atomic RMW, no
 * fence) and counts it. Everything else goes to cc__smr_retire_slow().
 *
 * Limbo storage: a bag is a list of chunks of entries, all retired in
 * sections that announced the same epoch (tag = that epoch + 1).
 */
#define CC__SMR_CHUNK_CAP 62u /* 62 * 24 + header = 1512 bytes */
typedef struct {
    void *node;
    size_t size;
    cc_smr_free_fn fn;
} cc__smr_entry_t;
typedef struct cc__smr_chunk {
    struct cc__smr_chunk *next;
    void *home;     /* a record's built-in spare chunk: its record; else NULL */
    uint64_t tag;   /* the bag's tag, once orphaned */
    uint32_t count; /* entries in use; each is written before the count covers it */
    cc__smr_entry_t e[CC__SMR_CHUNK_CAP];
} cc__smr_chunk_t;
typedef struct {
    cc__smr_chunk_t *head; /* the chunk being filled first; NULL when empty */
    uint64_t tag;
} cc__smr_bag_t;

/* The record's public prefix. Its first cache line is what other threads
 * read (scanners, barrier); the second is the owner's (other threads read
 * `retired`, a statistic, and `depth` when they must know whether the owner
 * is inside a section: a lock holder, or a revoker in asymmetric mode). */
typedef struct cc__smr_rec {
    _Alignas(CC__LAYOUT_LINE) _Atomic uint64_t announce; /* (epoch << 1) | 1: announced (in a section,
                                                              or held in asymmetric mode); 0: quiescent */
    _Atomic uint32_t lock;                /* 1: a barrier / the exiting owner holds the bags */
    _Atomic(struct cc__smr_rec *) next;   /* registry link */
    _Alignas(CC__LAYOUT_LINE) _Atomic uint32_t depth; /* section nesting (written by the owner only) */
    uint32_t exit_work;                   /* the outermost exit must call the library */
    uint64_t seen_epoch;                  /* last epoch the owner reclaimed for */
    cc__smr_bag_t *fill_bag;              /* the bag retires go to while the announced */
    uint64_t fill_tag;                    /*   epoch + 1 == fill_tag (never NULL) */
    uint32_t retire_budget;               /* retires before the out-of-line step (>= 1) */
    uint32_t asymmetric;                        /* asymmetric mode: keep the announcement between sections */
    _Atomic uint64_t retired;             /* nodes ever retired by this record */
} cc__smr_rec_t;

#define CC__SMR_ACTIVE ((uint64_t)1)

/* TEST ONLY (CMake option CC_SMR_TEST_HOOKS; never in an installed build):
 * named points of the protocol where a test can pause a thread or inject a
 * delay -- the deterministic interleaving tests and the torture test. Each
 * step is reached just BEFORE the action its name describes. Compiled out
 * (no code at all) otherwise. */
enum cc__smr_step {
    CC__SMR_STEP_ENTER_LOAD,      /* outermost enter: depth = 1 stored (asymmetric fast path); loads next */
    CC__SMR_STEP_ENTER_VALIDATE,  /* enter: announcement exchanged; validation load next */
    CC__SMR_STEP_EXIT,            /* outermost exit: depth / announcement stores next */
    CC__SMR_STEP_RETIRE,          /* retire: the append next */
    CC__SMR_STEP_SCAN_RECORD,     /* scan / advance_to: load of a record's announcement next */
    CC__SMR_STEP_ADVANCE,         /* the epoch CAS next */
    CC__SMR_STEP_REVOKE_FENCED,   /* revoke_idle: membarrier done; the records next */
    CC__SMR_STEP_REVOKE_CAS,      /* revoke_idle: depth read 0; CAS of the announcement next */
    CC__SMR_STEP_LOCK_WAIT,       /* lock_record: lock taken; wait for the owner next */
    CC__SMR_STEP_FREE,            /* a free function next (flush, barrier, orphans) */
    CC__SMR_STEP_THREAD_EXIT,     /* thread_exit: the record's hand-over next */
    CC__SMR_STEP_BARRIER_WAIT,    /* barrier: another record's in-flight frees unfinished; waits next */
    CC__SMR_STEP_ENTER_WAIT,      /* enter: a lock holder has the record; quiescent, waits for it next */
    CC__SMR_STEP_DETACH,          /* detach_safe: a safe bag's chunks read; taking them out of it next */
    CC__SMR_STEP_OOM_SYNC,        /* out-of-memory fallback: the wait for the node's safety next */
    CC__SMR_STEP_COUNT
};
#ifdef CC_SMR_TEST_HOOKS
typedef void (*cc__smr_step_hook_t)(enum cc__smr_step step);
/* relaxed: a test installs the hook before it starts the threads that run it. */
extern CC_API _Atomic(cc__smr_step_hook_t) cc__smr_step_hook;
#define CC__SMR_STEP(s)                                                                            \
    do {                                                                                           \
        cc__smr_step_hook_t cc__h = atomic_load_explicit(&cc__smr_step_hook, memory_order_relaxed); \
        if (cc__h) cc__h(s);                                                                       \
    } while (0)
#else
#define CC__SMR_STEP(s) ((void)0)
#endif

/* The calling thread's record (one pointer of initial-exec TLS). A thread
 * that has none points at cc__smr_unregistered: depth 0 and seen_epoch 0
 * (never an epoch), so enter takes the slow path, which registers; exit and
 * retire see depth 0. It is never in the registry. (A shared stand-in
 * instead of NULL saves the fast paths a test.) */
extern CC_API __thread cc__smr_rec_t *cc__smr_self CC__TLS_IE;
extern CC_API cc__smr_rec_t cc__smr_unregistered;
/* The global epoch (on its own cache line). */
extern CC_API _Atomic uint64_t cc__smr_epoch;
CC_API void cc__smr_enter_slow(void);
CC_API void cc__smr_exit_slow(void);
CC_API void cc__smr_retire_slow(void *node, size_t size, cc_smr_free_fn free_fn);

#if defined(__SANITIZE_THREAD__)
#define CC__SMR_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CC__SMR_TSAN 1
#endif
#endif
/* TSan does not model fences: under it a seq_cst RMW on this word stands for one. */
extern CC_API _Atomic uint64_t cc__smr_tsan_fence;

/* The seq_cst fence of the safety argument (store-load ordering). */
static inline void cc__smr_fence(void) {
#ifdef CC__SMR_TSAN
    atomic_fetch_add_explicit(&cc__smr_tsan_fence, 0, memory_order_seq_cst);
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* Publishes an announcement with the store-load ordering the argument needs:
 * the loads that follow (the epoch re-load and the lock, both seq_cst, then
 * the section's pointer loads) are ordered after the announcement. A seq_cst
 * exchange does it (x86 `xchg`, a full barrier: one locked instruction where
 * a store + fence is two; a seq_cst fence or a seq_cst exchange gives it). Under TSan, which
 * does not model fences, the store + fence stand-in is kept. */
static inline void cc__smr_announce(cc__smr_rec_t *r, uint64_t word) {
#ifdef CC__SMR_TSAN
    atomic_store_explicit(&r->announce, word, memory_order_release);
    cc__smr_fence();
#else
    (void)atomic_exchange_explicit(&r->announce, word, memory_order_seq_cst);
#endif
}

/* The owner's section depth: relaxed (only the owner writes it; see the
 * stores in enter/exit for what other threads learn from it). */
static inline uint32_t cc__smr_depth(cc__smr_rec_t *r) {
    return atomic_load_explicit(&r->depth, memory_order_relaxed);
}
static inline void cc__smr_set_depth(cc__smr_rec_t *r, uint32_t d) {
    atomic_store_explicit(&r->depth, d, memory_order_relaxed);
}

static inline void cc_smr_enter(void) {
    cc__smr_rec_t *r = cc__smr_self;
    uint32_t d = cc__smr_depth(r);
    if (d != 0) {
        cc__smr_set_depth(r, d + 1);
        return;
    }
    if (CC__LIKELY(r->asymmetric)) {
        /* Asymmetric mode: the announcement from an earlier section still
         * stands. depth = 1 first, then the loads: a Dekker pair whose other
         * side (a revoker or lock holder) runs membarrier(2) between its store
         * and its load of `depth`, so no fence here; the signal fence keeps the
         * compiler from reordering. acquire on g_epoch and lock: the section's
         * loads stay after them; lock's pairs with the holder's unlock. */
        cc__smr_set_depth(r, 1);
        atomic_signal_fence(memory_order_seq_cst);
        CC__SMR_STEP(CC__SMR_STEP_ENTER_LOAD);
        uint64_t e = atomic_load_explicit(&cc__smr_epoch, memory_order_acquire);
        if (CC__LIKELY(atomic_load_explicit(&r->announce, memory_order_relaxed) ==
                           ((e << 1) | CC__SMR_ACTIVE) &&
                       e == r->seen_epoch && atomic_load_explicit(&r->lock, memory_order_acquire) == 0))
            return;
        cc__smr_set_depth(r, 0);
    } else {
        uint64_t e = atomic_load_explicit(&cc__smr_epoch, memory_order_relaxed);
        cc__smr_announce(r, (e << 1) | CC__SMR_ACTIVE);
        CC__SMR_STEP(CC__SMR_STEP_ENTER_VALIDATE);
        /* seq_cst: these two loads are the "load" side of the store-load pairs
         * (I1) in src/smr_epoch.c and the lock handshake in src/smr_registry.c. */
        uint64_t e2 = atomic_load_explicit(&cc__smr_epoch, memory_order_seq_cst);
        if (CC__LIKELY(e2 == e && e == r->seen_epoch &&
                       atomic_load_explicit(&r->lock, memory_order_seq_cst) == 0)) {
            cc__smr_set_depth(r, 1);
            return;
        }
    }
    cc__smr_enter_slow(); /* also: first use (r is cc__smr_unregistered, asymmetric 0) */
}

/* Leaves the outermost section (cc_smr_exit, and the library's own exits). */
static inline void cc__smr_leave(cc__smr_rec_t *r) {
    CC__SMR_STEP(CC__SMR_STEP_EXIT);
    if (r->asymmetric) {
        /* release: the section's reads (and bag writes) happen before a
         * revoker or lock holder that reads depth 0 (acquire). The kept
         * announcement is dropped (release, as in the fencing mode) once
         * the epoch has moved past it: it would only hold back the next
         * advance, and re-announcing costs the next enter one exchange. */
        atomic_store_explicit(&r->depth, 0, memory_order_release);
        if (CC__UNLIKELY(atomic_load_explicit(&cc__smr_epoch, memory_order_relaxed) != r->seen_epoch))
            atomic_store_explicit(&r->announce, 0, memory_order_release);
    } else {
        cc__smr_set_depth(r, 0);
        atomic_store_explicit(&r->announce, 0, memory_order_release);
    }
}

static inline void cc_smr_exit(void) {
    cc__smr_rec_t *r = cc__smr_self;
    uint32_t d = cc__smr_depth(r);
    if (CC__LIKELY(d == 1)) { /* the outermost exit */
        cc__smr_leave(r);
        if (CC__UNLIKELY(r->exit_work)) cc__smr_exit_slow();
    } else if (d > 1) {
        cc__smr_set_depth(r, d - 1);
    } /* else an unbalanced exit: ignored */
}

/* Retire internals, shared with src/smr_limbo.c. Owner-only fields are written by
 * the owner while ACTIVE, or by a barrier holding `lock` while the owner is
 * quiescent (src/smr_registry.c, "exclusive access to the bags"): these run only
 * inside the owner's section (depth != 0). */

/* The chunk retires append to now, or NULL (none, full, or being filled for
 * another epoch). `fill_bag`'s head is non-NULL only while that bag holds
 * tag fill_tag: retire_slow is the only writer of bag tags and sets
 * fill_bag/fill_tag with them. */
static inline cc__smr_chunk_t *cc__smr_fill_chunk(cc__smr_rec_t *r) {
    cc__smr_chunk_t *h = r->fill_bag->head;
    /* Our own announcement: relaxed (we are its only writer). */
    uint64_t a = atomic_load_explicit(&r->announce, memory_order_relaxed) >> 1;
    return h != NULL && r->fill_tag == a + 1 && h->count < CC__SMR_CHUNK_CAP ? h : NULL;
}

/* Appends an entry to h (from cc__smr_fill_chunk), counts it, and returns
 * the retire budget left. The chunk count is a release store after the entry
 * (a plain store on x86): a child forked at any instruction sees only
 * complete entries. */
static inline uint32_t cc__smr_append(cc__smr_rec_t *r, cc__smr_chunk_t *h, void *node, size_t size,
                                      cc_smr_free_fn free_fn) {
    uint32_t n = h->count;
    h->e[n] = (cc__smr_entry_t){node, size, free_fn};
    __atomic_store_n(&h->count, n + 1, __ATOMIC_RELEASE);
    atomic_store_explicit(&r->retired, atomic_load_explicit(&r->retired, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    return --r->retire_budget;
}

/* The last unit of budget is spent out of line, where it runs the scan step. */
static inline void cc_smr_retire(void *node, size_t size, cc_smr_free_fn free_fn) {
    CC__SMR_STEP(CC__SMR_STEP_RETIRE);
#ifndef CC_SMR_BROKEN_FREE_ON_RETIRE
    cc__smr_rec_t *r = cc__smr_self;
    if (CC__LIKELY(cc__smr_depth(r) != 0 && node != NULL && r->retire_budget > 1)) {
        cc__smr_chunk_t *h = cc__smr_fill_chunk(r);
        if (CC__LIKELY(h != NULL)) {
            (void)cc__smr_append(r, h, node, size, free_fn);
            return;
        }
    }
#endif
    cc__smr_retire_slow(node, size, free_fn);
}

#ifdef __cplusplus
}
#endif
#endif /* CC_SMR_H */
