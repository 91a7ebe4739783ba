/*
 * <cc/segqueue.h> -- an unbounded MPMC FIFO queue of void * values built from
 * fixed-size segments claimed with fetch-and-add (the design and the argument
 * for its safety open src/segqueue.c).
 *
 * Layer: includes <cc/smr.h>. Segments come from cc_alloc_node and are retired
 * through SMR once each; no allocation or retirement happens per item.
 *
 * Contract (the same as <cc/queue.h>):
 *  - cc_segqueue_new: NULL with errno = ENOMEM when allocation fails.
 *  - cc_segqueue_push: true on success. false with errno = ENOMEM when a new
 *    segment cannot be allocated (the queue is then unchanged and the value
 *    not enqueued), EINVAL for a NULL queue.
 *  - cc_segqueue_pop: true and *value set; false when empty (errno untouched),
 *    or with errno = EINVAL for a NULL queue or value pointer. A successful
 *    push or pop leaves errno untouched too.
 *  - cc_segqueue_push_many: pushes values[0..n) in order, as consecutive
 *    positions when no other pusher interleaves; returns how many were pushed
 *    (fewer than n only on ENOMEM, errno set). EINVAL: NULL queue, or NULL
 *    values with n > 0.
 *  - cc_segqueue_pop_many: pops up to max values into out[0..), in FIFO order;
 *    returns how many (0 when empty, errno untouched; EINVAL as pop). It
 *    claims at most 64 slots at a time (and loops for more), and only as
 *    many as it finds filled, so a batch popper that is preempted hides at
 *    most 64 values from other poppers and does not take slots that pushers
 *    have claimed but not yet filled.
 *  - cc_segqueue_size: exact while no other thread changes the queue.
 *  - cc_segqueue_foreach: calls fn(value, arg) for every value, from the next
 *    to pop to the last. NOT safe against concurrent changes (as
 *    cc_queue_foreach). fn runs inside an SMR section: it must not call
 *    cc_smr_barrier (that fails with EDEADLK) and must not push to the same
 *    queue (the walk would never reach the end). A NULL queue or fn: nothing
 *    is called, errno = EINVAL.
 *  - cc_segqueue_destroy: frees the segments left; the values belong to the
 *    caller. No other thread may use the queue during or after. NULL: no-op.
 * Values pushed by one thread are popped in the order it pushed them, and the
 * queue is linearizable.
 */
#ifndef CC_SEGQUEUE_H
#define CC_SEGQUEUE_H

#include <cc/smr.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_segqueue cc_segqueue_t;

CC_API cc_segqueue_t *cc_segqueue_new(void);
CC_API void cc_segqueue_destroy(cc_segqueue_t *queue);
CC_API bool cc_segqueue_push(cc_segqueue_t *queue, void *value);
CC_API bool cc_segqueue_pop(cc_segqueue_t *queue, void **value);
CC_API size_t cc_segqueue_push_many(cc_segqueue_t *queue, void *const *values, size_t n);
CC_API size_t cc_segqueue_pop_many(cc_segqueue_t *queue, void **out, size_t max);
CC_API size_t cc_segqueue_size(const cc_segqueue_t *queue);
CC_API void cc_segqueue_foreach(const cc_segqueue_t *queue, void (*fn)(void *value, void *arg),
                                void *arg);

#ifdef __cplusplus
}
#endif
#endif /* CC_SEGQUEUE_H */
