/*
 * <cc/smr.h> -- deferred freeing: epoch-based safe memory reclamation.
 *
 * Layer: includes <cc/alloc.h> (and through it <cc/config.h>).
 *
 * A node unlinked from a shared structure may still be read by threads that
 * loaded a pointer to it before the unlink. cc_smr_retire() hands such a node
 * to this layer, which frees it (through its free function, by default
 * cc_free) only once every thread that could hold it has left its read-side
 * critical section. See src/smr.c for the algorithm and its safety argument.
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
 *  - A thread that exits hands its pending nodes to a global orphan list;
 *    other threads' polls and the barrier free them. Nothing is lost.
 *  - free_fn must not call cc_smr_barrier(). It may call cc_smr_retire().
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
} cc_smr_snapshot_t;

CC_API void cc_smr_enter(void);
CC_API void cc_smr_exit(void);
CC_API void cc_smr_retire(void *node, size_t size, cc_smr_free_fn free_fn);
CC_API size_t cc_smr_poll(void);
/* 0 once every node retired before the call (by any thread) has been freed.
 * Inside a critical section: -1 with errno = EDEADLK. */
CC_API int cc_smr_barrier(void);
CC_API cc_smr_snapshot_t cc_smr_stats(void);

#ifdef __cplusplus
}
#endif
#endif /* CC_SMR_H */
