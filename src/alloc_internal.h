/*
 * Internal interface between the glue (alloc.c) and its debug backend
 * (alloc_debug.c). Not installed.
 */
#ifndef CC_ALLOC_INTERNAL_H
#define CC_ALLOC_INTERNAL_H

#include <cc/alloc.h>

/* A block of `size` bytes aligned to `align` (a power of two), filled with
 * CC__DEBUG_FILL_NEW or zeroed. NULL (errno untouched) when out of memory. */
void *cc__debug_alloc(size_t size, size_t align, bool zero);

/* Checks and frees a block. `size` is checked when `sized` is true. On a
 * double free, a pointer it never returned, a size mismatch or a damaged
 * guard it prints one line naming the pointer (and sizes) and aborts.
 * Returns the block's size (what statistics count). */
size_t cc__debug_free(void *ptr, size_t size, bool sized);

/* Size of a live block, or 0 with errno = EINVAL for any other pointer. */
size_t cc__debug_usable_size(const void *ptr);

/* Called once when the debug backend becomes active: registers the
 * at-exit report of blocks still live. */
void cc__debug_activate(void);

/* Fault injection state of the debug backend (see cc_alloc_fail_inject). */
void cc__debug_fail_inject(uint64_t nth, uint64_t every);

#ifdef CC_ALLOC_TEST_HOOKS
/* TEST ONLY (the test-hooks library): take or release the glue's registry
 * lock from a test thread. */
CC_API void cc__alloc_test_hold_lock(bool hold);
#endif

#define CC__DEBUG_FILL_NEW 0xCD
#define CC__DEBUG_FILL_FREED 0xDD

#endif
