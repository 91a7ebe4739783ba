/*
 * <cc/queue.h> -- a Michael-Scott lock-free MPMC FIFO queue of void * values.
 *
 * Layer: includes <cc/smr.h>. Nodes come from cc_alloc_node; dequeued dummy
 * nodes are retired through SMR (no use-after-free, no ABA).
 *
 *  - cc_queue_new: NULL with errno = ENOMEM when allocation fails.
 *  - cc_queue_push: false (errno = ENOMEM) when allocation fails; the queue is
 *    then unchanged. false with errno = EINVAL for a NULL queue.
 *  - cc_queue_pop: false when empty (errno untouched) or queue is NULL (EINVAL).
 *    Values pushed by one thread are popped in the order it pushed them.
 *  - cc_queue_destroy: frees the nodes left; the values belong to the caller.
 *    No other thread may use the queue during or after destroy. NULL is a no-op.
 *  - cc_queue_size: exact while no other thread changes the queue.
 */
#ifndef CC_QUEUE_H
#define CC_QUEUE_H

#include <cc/smr.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_queue cc_queue_t;

CC_API cc_queue_t *cc_queue_new(void);
CC_API void cc_queue_destroy(cc_queue_t *queue);
CC_API bool cc_queue_push(cc_queue_t *queue, void *value);
CC_API bool cc_queue_pop(cc_queue_t *queue, void **value);
CC_API size_t cc_queue_size(const cc_queue_t *queue);
/* Calls fn(value, arg) for each value, from the next one to pop to the last.
 * NOT safe against concurrent changes: the caller must ensure no other thread
 * pushes or pops meanwhile (e.g. a stopped world in a GC traversal). */
CC_API void cc_queue_foreach(const cc_queue_t *queue, void (*fn)(void *value, void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif /* CC_QUEUE_H */
