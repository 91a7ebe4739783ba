/*
 * <cc/stack.h> -- a Treiber lock-free stack of void * values.
 *
 * Layer: includes <cc/smr.h>. Nodes come from cc_alloc_node; popped nodes are
 * retired through SMR, so a concurrent pop that still reads a node never sees
 * it freed or reused (no use-after-free, no ABA).
 *
 *  - cc_stack_new: NULL with errno = ENOMEM when allocation fails.
 *  - cc_stack_push: false (errno = ENOMEM) when allocation fails; the stack is
 *    then unchanged. false with errno = EINVAL for a NULL stack.
 *  - cc_stack_pop: false when empty (errno untouched) or stack is NULL (EINVAL).
 *  - cc_stack_destroy: frees the nodes left; the values belong to the caller.
 *    No other thread may use the stack during or after destroy. NULL is a no-op.
 *  - cc_stack_size: the size at one instant during the call (linearizable);
 *    other threads may change it before the caller looks.
 */
#ifndef CC_STACK_H
#define CC_STACK_H

#include <cc/smr.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cc_stack cc_stack_t;

CC_API cc_stack_t *cc_stack_new(void);
CC_API void cc_stack_destroy(cc_stack_t *stack);
CC_API bool cc_stack_push(cc_stack_t *stack, void *value);
CC_API bool cc_stack_pop(cc_stack_t *stack, void **value);
CC_API size_t cc_stack_size(const cc_stack_t *stack);
/* Calls fn(value, arg) for each value, from the next one to pop to the last.
 * NOT safe against concurrent changes: the caller must ensure no other thread
 * pushes or pops meanwhile (e.g. a stopped world in a GC traversal). */
CC_API void cc_stack_foreach(const cc_stack_t *stack, void (*fn)(void *value, void *arg), void *arg);

#ifdef __cplusplus
}
#endif
#endif /* CC_STACK_H */
