/*
 * Internals of <cc/segqueue.h> that tests need (not API): the number of slots
 * of a segment, and the TEST ONLY pause points compiled into the test-hooks
 * library (CC_SEGQUEUE_TEST_HOOK).
 */
#ifndef CC_SEGQUEUE_INTERNAL_H
#define CC_SEGQUEUE_INTERNAL_H

#include <cc/segqueue.h>

/* Slots per segment: a power of two. */
#define CC__SEGQUEUE_SLOTS 1024u
/* The most slots one pop_many claim (one fetch-and-add) takes. */
#define CC__SEGQUEUE_CLAIM_MAX 64u

/* Where the TEST ONLY hook is called (src/segqueue.c):
 *  POP_HEAD      a pop (or pop_many) has loaded the head segment and is about
 *                to read it: a callback that drains and unlinks that segment
 *                leaves this pop holding a pointer into a retired segment.
 *  PUSH_CLAIMED  a push has claimed a slot index (fetch-and-add) and written
 *                its value, before the CAS that publishes it: a callback that
 *                pops meanwhile finds the slot empty and must move on. */
enum { CC__SEGQUEUE_POP_HEAD = 1, CC__SEGQUEUE_PUSH_CLAIMED = 2 };

#endif
