/*
 * A fetch-and-add segment queue over <cc/smr.h>: unbounded, MPMC,
 * linearizable FIFO of void * values.
 *
 * DESIGN: FAAArrayQueue (Ramalhete & Correia, 2016), the simplest member of
 * the FAA ring family that needs only single-word CAS, FAA and exchange:
 *  - LCRQ needs a double-width CAS per slot; LPRQ (Romanov & Koval) avoids it
 *    but pays a CAS per slot and a ring-closing protocol; SCQ/wCQ bound the
 *    ring and need an extra index queue to carry pointers. A segment that is
 *    used once and then dropped needs none of that: indices only grow, so a
 *    slot is never reused and there is no ABA on slot states.
 *  - crossbeam's SegQueue claims indices with CAS and makes a consumer WAIT
 *    for a producer that claimed a slot but has not written it yet: with more
 *    threads than cores (the normal case here) the producer may be preempted
 *    for a whole time slice. Here the consumer marks such a slot and moves on
 *    (the producer retries at a later index): lock-free.
 * Segments (CC__SEGQUEUE_SLOTS slots) come from cc_alloc_node and are
 * retired through SMR once each, by the consumer whose head CAS unlinks it.
 * Nothing is allocated or retired per item.
 *
 * STRUCTURE. The queue holds `head` (the oldest segment still in use) and
 * `tail` (the newest, or one behind it while a pusher swings it). A segment
 * holds `enq` and `deq`, counters of claimed slot indices (each only grows;
 * both may pass the slot count), `next`, and the slots. A slot is a state
 * word and a value: EMPTY -> FULL (a pusher's CAS) -> TAKEN (a popper's
 * exchange), or EMPTY -> TAKEN (a popper came first; the pusher's CAS then
 * fails). A separate state word lets every void * value, NULL included, be
 * stored (no value is reserved as a marker).
 *
 * OPERATIONS (each inside an SMR section; a batch re-enters its section
 * at every claim, so a huge batch does not hold back reclamation).
 *  push:  i = FAA(tail->enq, 1). i < SLOTS: write the value, CAS the state
 *         EMPTY -> FULL; on failure a popper took the slot first: retry.
 *         i >= SLOTS (segment full): help a lagging tail, or link a new
 *         segment whose slot 0 already holds the value (CAS next NULL -> new),
 *         then swing tail. The loser of that CAS keeps its segment as the
 *         queue's spare (never published, so it needs no SMR) for the next
 *         new segment.
 *  pop:   if slot deq is FULL (a hint that spares reading enq's line) or
 *         deq < enq: claim. Else if next == NULL: empty. To claim,
 *         i = FAA(head->deq, 1).
 *         i < SLOTS: exchange the state to TAKEN; FULL: the value is ours;
 *         EMPTY/TAKEN: its pusher is late (it retries elsewhere): retry.
 *         i >= SLOTS: next == NULL: empty; else swing tail past the segment if
 *         it lags there, CAS head -> next, and the winner retires the segment.
 *  push_many: one FAA claims min(n, left) indices; values go to the claimed
 *         slots in order, each to the next slot whose CAS succeeds (a slot a
 *         popper took first is skipped and the value moves on): per-producer
 *         order holds and no claimed slot is left unattempted. Values left
 *         over go through another claim or a new segment pre-filled with up
 *         to SLOTS of them.
 *  pop_many: before its FAA, a batch counts the FULL slots from deq onwards
 *         (at most CLAIM_MAX, at most max - got, and not past enq) and claims
 *         only that prefix, or one index when slot deq is not FULL and the
 *         batch has no value yet (with values, it returns them instead). `enq - deq`
 *         alone would count indices claimed by pushers, not filled slots: a
 *         batch would sweep a slow push_many's whole claim to TAKEN and send
 *         all of its values to later indices (more segments for the same
 *         items). The scan is a hint: the FAA may still return a later index
 *         than the deq it scanned from (other poppers moved on), and then some
 *         claimed slots may be unfilled; each claimed slot is exchanged to
 *         TAKEN unless FULL, as in pop, so nothing is lost either way.
 *         CLAIM_MAX (64) bounds one claim: a batch popper preempted between
 *         its FAA and its reads hides at most 64 completed pushes from other
 *         poppers for that time (they see deq past them). The operation stays
 *         linearizable (those values are popped by this batch, which is still
 *         running) but a larger claim would make a stalled consumer hold up
 *         to 1023 values out of reach. pop_many loops for more than 64.
 *
 * WHY NOTHING IS LOST OR DUPLICATED. A slot index is claimed by exactly one
 * pusher and one popper (FAA). The state word decides between them: the
 * value is delivered iff the CAS EMPTY -> FULL precedes the exchange, and
 * then only the exchanging popper sees FULL. Otherwise the pusher still holds
 * its value and retries. A pusher whose new segment cannot be allocated
 * claimed only an index >= SLOTS (no slot): it returns false with ENOMEM and
 * no popper ever waits on it (poppers never wait; they see next == NULL).
 *
 * LINEARIZATION. Pushes are NOT linearized at their CAS: A claims index 5,
 * B claims 6, B's CAS lands, then A's, and pops take 5 then 6; ordering the
 * pushes by their CASes (B, A) would make the first pop return A's value
 * while B's push came first, which is not FIFO. Instead, as in the
 * FAAArrayQueue paper, successful pushes are ordered by the index of the
 * slot they filled (slot order within a segment, segment order along
 * `next`), and pops by the index they took the value from. This order is a
 * legal linearization because it respects real time: if push A completes
 * before push B starts, B's FAA comes after A's CAS, so B's index is larger
 * (within a segment, FAA hands out increasing indices; a later segment is
 * linked only after the earlier one's indices are exhausted); and when A's
 * index is below B's while B completed first, A's call overlaps B's
 * (A claimed before B claimed, and A was still running when B returned), so
 * either order respects real time and we pick index order. The same
 * interval argument places each successful pop: a pop's value comes from
 * the slot its own FAA claimed, and pops are ordered by index among
 * themselves and after the push of the value they return. Per-producer
 * FIFO follows: one producer's values take increasing indices.
 * An empty pop linearizes at its load of `next` (== NULL) made after it saw
 * deq >= enq (or claimed an index >= SLOTS) in the last segment. At that
 * instant every index of the queue claimed by a pusher is claimed by a
 * popper too. A value not yet delivered is then either (i) in a slot whose
 * CAS has not happened: that push is still running, so it overlaps the
 * empty pop; if its CAS fails (the slot's popper marked it TAKEN first) the
 * value goes to a later index and the push is ordered after the empty pop,
 * and if it succeeds the slot's popper, also still running, takes the value
 * and both are ordered before the empty pop; or (ii) in a FULL slot claimed
 * by a popper that has not yet read it: that pop is pending, and it is
 * ordered before the empty pop (its FAA came first, the value is already its
 * own). Either way the queue is empty at the empty pop's place in the order.
 *
 * PROGRESS: lock-free, not wait-free. A push fails only when a popper marked
 * its slot TAKEN first, and every such retry costs the pusher one index of
 * the current segment: after at most SLOTS (1024) failed claims the segment
 * is exhausted and the pusher links a new segment whose slot 0 ALREADY holds
 * its value (pre-filled before the linking CAS). Nobody can mark that slot
 * TAKEN, so that push succeeds. Pre-filling is load-bearing: with an empty
 * new segment, poppers could mark the pusher's slot TAKEN in every segment
 * for ever. Each failed attempt of a pusher means a popper's FAA (some
 * operation made progress), and a failed head/tail/next CAS means another
 * thread's succeeded; so some operation completes within a bounded number of
 * steps of any thread. A pop fails to get a value only by marking a slot
 * TAKEN, which is bounded the same way (its pusher then goes to a later
 * index). One pusher can still starve for a long time (other pushers keep
 * linking the new segments before it): the system progresses, not every
 * thread.
 *
 * MEMORY ORDERING.
 *  - FAA on enq/deq, the loads of enq/deq in the empty check: seq_cst. The
 *    linearizability argument above reasons in one total order of claims and
 *    checks (the paper assumes sequential consistency): an empty pop's loads
 *    of deq and enq and a pusher's FAA on enq form a store-load pattern
 *    across two locations, which acquire/release does not order. We have no
 *    rigorous acquire/release proof, so they stay seq_cst. On x86 a seq_cst
 *    load is a plain mov (the FAA is locked anyway); it is NOT free on every
 *    target (POWER emits hwsync before each seq_cst load).
 *  - State CAS EMPTY -> FULL: release (the value written before it is
 *    visible to the popper that reads FULL); failure relaxed (only TAKEN can
 *    be there, and nothing is read after it).
 *  - State load in pop, and exchange -> TAKEN: acquire (pairs with the CAS's
 *    release before the value is read). The FULL-prefix scan of pop_many:
 *    relaxed (a hint for how many to claim; every claimed slot is read again
 *    with acquire before its value is used).
 *  - head/tail/next loads: acquire (we dereference the segment, whose
 *    initialisation the linking CAS published).
 *  - CAS next NULL -> new: release (the new segment's slots, enq and values
 *    are initialised before it is reachable); failure acquire (we use the
 *    winner's segment next).
 *  - CAS tail/head: release (the segment was already published through
 *    `next`; release keeps that chain for readers of tail/head); failure
 *    relaxed (we reload).
 *  - spare exchange: acq_rel (a spare written by one thread is taken by
 *    another).
 * ERRNO. A pop that finds the queue empty leaves errno untouched, and a
 * push that succeeds does too; but the slow paths call into the allocator and
 * SMR (a retire may malloc a chunk, and glibc's failing malloc sets ENOMEM).
 * Those paths save errno when entered and restore it on return, so the fast
 * path pays nothing.
 * SMR: a segment is retired only after `head` no longer points to it, and
 * after `tail` does not either (a pop swings a lagging tail before it moves
 * head), so only threads that loaded it inside their current section can
 * still read it.
 */
#include "segqueue_internal.h"

#include <errno.h>
#include <string.h>

#define SLOTS CC__SEGQUEUE_SLOTS
/* The most slots one pop_many claim takes (see OPERATIONS, pop_many). */
#define CLAIM_MAX CC__SEGQUEUE_CLAIM_MAX

enum { EMPTY = 0, FULL = 1, TAKEN = 2 };


typedef struct {
    _Atomic uintptr_t state;
    void *value; /* written by the slot's pusher before the release CAS */
} slot_t;

/* enq, deq and next on lines of their own: pushers hammer enq, poppers deq. */
typedef struct seg {
    _Alignas(CC_CACHE_LINE_SIZE) _Atomic uint64_t enq;
    _Alignas(CC_CACHE_LINE_SIZE) _Atomic uint64_t deq;
    _Alignas(CC_CACHE_LINE_SIZE) _Atomic(struct seg *) next;
    _Alignas(CC_CACHE_LINE_SIZE) slot_t slot[SLOTS];
} seg_t;

struct cc_segqueue {
    _Alignas(CC_CACHE_LINE_SIZE) _Atomic(seg_t *) head;
    _Alignas(CC_CACHE_LINE_SIZE) _Atomic(seg_t *) tail;
    _Alignas(CC_CACHE_LINE_SIZE) _Atomic(seg_t *) spare;
};

#ifdef CC_SEGQUEUE_TEST_HOOK
/* TEST ONLY (the test-hooks library; tests/smr/test_segqueue_hooks.c). */
CC_API void (*_Atomic cc__segqueue_hook)(cc_segqueue_t *q, int point);
static inline void test_hook(cc_segqueue_t *q, int point) {
    void (*hook)(cc_segqueue_t *, int) = atomic_load_explicit(&cc__segqueue_hook, memory_order_relaxed);
    if (hook) hook(q, point);
}
#define HOOK(q, point) test_hook(q, point)
#else
#define HOOK(q, point) ((void)0)
#endif

#ifdef CC_SEGQUEUE_BROKEN_NO_SMR
/* TEST ONLY negative control: a drained segment is freed at once. */
#define RETIRE_SEGMENT(s) cc_free((s), sizeof(seg_t))
#else
#define RETIRE_SEGMENT(s) cc_smr_retire((s), sizeof(seg_t), NULL)
#endif

static inline uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* A segment with values[0..k) in slots 0..k (k <= SLOTS), the rest EMPTY;
 * NULL with errno = ENOMEM. Takes the queue's spare if there is one. */
static seg_t *new_segment(cc_segqueue_t *q, void *const *values, size_t k) {
    seg_t *s = atomic_exchange_explicit(&q->spare, NULL, memory_order_acq_rel);
    if (s == NULL) {
        s = cc_alloc_node(sizeof *s);
        if (s == NULL) {
            errno = ENOMEM;
            return NULL;
        }
        memset(s->slot, 0, sizeof s->slot); /* EMPTY is 0 */
    }
    for (size_t i = 0; i < k; i++) {
        s->slot[i].value = values[i];
        atomic_store_explicit(&s->slot[i].state, FULL, memory_order_relaxed);
    }
    atomic_store_explicit(&s->enq, k, memory_order_relaxed);
    atomic_store_explicit(&s->deq, 0, memory_order_relaxed);
    atomic_store_explicit(&s->next, NULL, memory_order_relaxed);
    return s; /* published by the release CAS on next */
}

/* A segment that lost the race to be linked: never published, so it can be
 * reused at once. Its first k slots go back to EMPTY. */
static void keep_spare(cc_segqueue_t *q, seg_t *s, size_t k) {
    for (size_t i = 0; i < k; i++) atomic_store_explicit(&s->slot[i].state, EMPTY, memory_order_relaxed);
    s = atomic_exchange_explicit(&q->spare, s, memory_order_acq_rel);
    if (s) cc_free(s, sizeof *s);
}

CC_API cc_segqueue_t *cc_segqueue_new(void) {
    cc_segqueue_t *q = cc_alloc_node(sizeof *q);
    if (q == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&q->spare, NULL);
    seg_t *s = new_segment(q, NULL, 0);
    if (s == NULL) {
        cc_free(q, sizeof *q);
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&q->head, s);
    atomic_init(&q->tail, s);
    return q;
}

CC_API void cc_segqueue_destroy(cc_segqueue_t *q) {
    if (q == NULL) return;
    seg_t *s = atomic_load_explicit(&q->head, memory_order_acquire);
    while (s) {
        seg_t *next = atomic_load_explicit(&s->next, memory_order_acquire);
        cc_free(s, sizeof *s);
        s = next;
    }
    cc_free(atomic_load_explicit(&q->spare, memory_order_acquire), sizeof(seg_t));
    cc_free(q, sizeof *q);
}

/* s (the tail segment seen by a pusher) is full. Links a new segment holding
 * values[0..k) after it, or helps a lagging tail past it. Returns 1 when the
 * values were linked, 0 to retry, -1 on ENOMEM (nothing linked). Inside a
 * section. */
static int append_segment(cc_segqueue_t *q, seg_t *s, void *const *values, size_t k) {
    seg_t *next = atomic_load_explicit(&s->next, memory_order_acquire);
    if (next == NULL) {
        seg_t *n = new_segment(q, values, k);
        if (n == NULL) return -1;
        if (atomic_compare_exchange_strong_explicit(&s->next, &next, n, memory_order_release,
                                                    memory_order_acquire)) {
            atomic_compare_exchange_strong_explicit(&q->tail, &s, n, memory_order_release,
                                                    memory_order_relaxed);
            return 1;
        }
        keep_spare(q, n, k); /* another pusher linked first: `next` is its segment */
    }
    atomic_compare_exchange_strong_explicit(&q->tail, &s, next, memory_order_release,
                                            memory_order_relaxed);
    return 0;
}

/* The rest of a push whose first claim (index i of segment s) did not
 * deliver: the slot was taken first (i < SLOTS) or s is full. Out of line
 * and cold, so the fast path in cc_segqueue_push stays short (fewer
 * registers to save). Inside the caller's section. */
__attribute__((noinline, cold)) static bool push_slow(cc_segqueue_t *q, seg_t *s, uint64_t i,
                                                      void *value) {
    for (;;) {
        if (i >= SLOTS) {
            int saved_errno = errno; /* the allocator may write it even on success */
            int r = append_segment(q, s, &value, 1);
            if (r < 0) {
                errno = ENOMEM;
                return false;
            }
            errno = saved_errno;
            if (r > 0) return true;
        }
        s = atomic_load_explicit(&q->tail, memory_order_acquire);
        i = atomic_fetch_add_explicit(&s->enq, 1, memory_order_seq_cst);
        if (i < SLOTS) {
            slot_t *slot = &s->slot[i];
            slot->value = value;
            HOOK(q, CC__SEGQUEUE_PUSH_CLAIMED);
            uintptr_t expect = EMPTY;
            if (atomic_compare_exchange_strong_explicit(&slot->state, &expect, FULL, memory_order_release,
                                                        memory_order_relaxed))
                return true;
            /* a popper took the slot first: claim again */
        }
    }
}

CC_API bool cc_segqueue_push(cc_segqueue_t *q, void *value) {
    if (CC__UNLIKELY(q == NULL)) {
        errno = EINVAL;
        return false;
    }
    bool ok = true;
    cc_smr_enter();
    seg_t *s = atomic_load_explicit(&q->tail, memory_order_acquire);
    uint64_t i = atomic_fetch_add_explicit(&s->enq, 1, memory_order_seq_cst);
    uintptr_t expect = EMPTY;
    if (CC__LIKELY(i < SLOTS)) {
        slot_t *slot = &s->slot[i];
        slot->value = value;
        HOOK(q, CC__SEGQUEUE_PUSH_CLAIMED);
        if (CC__UNLIKELY(!atomic_compare_exchange_strong_explicit(&slot->state, &expect, FULL,
                                                                  memory_order_release,
                                                                  memory_order_relaxed)))
            ok = push_slow(q, s, i, value); /* a popper took the slot first */
    } else {
        ok = push_slow(q, s, i, value); /* s is full */
    }
    cc_smr_exit();
    return ok;
}

CC_API size_t cc_segqueue_push_many(cc_segqueue_t *q, void *const *values, size_t n) {
    if (q == NULL || (values == NULL && n > 0)) {
        errno = EINVAL;
        return 0;
    }
    size_t done = 0;
    int saved_errno = errno; /* restored on success: see ERRNO */
    while (done < n) {
        /* One section per claim (at most one segment): a huge batch does not
         * hold back reclamation for its whole length. */
        cc_smr_enter();
        seg_t *s = atomic_load_explicit(&q->tail, memory_order_acquire);
        size_t want = n - done;
        if (want > SLOTS) want = SLOTS; /* a claim never needs more than a segment */
        uint64_t i = atomic_fetch_add_explicit(&s->enq, want, memory_order_seq_cst);
        if (i < SLOTS) {
            /* Claimed [i, end): each value goes to the next slot whose CAS
             * succeeds; a slot a popper took first is skipped. */
            uint64_t end = min_u64(i + want, SLOTS);
            for (; i < end && done < n; i++) {
                slot_t *slot = &s->slot[i];
                slot->value = values[done];
                HOOK(q, CC__SEGQUEUE_PUSH_CLAIMED);
                uintptr_t expect = EMPTY;
                if (atomic_compare_exchange_strong_explicit(&slot->state, &expect, FULL,
                                                            memory_order_release, memory_order_relaxed))
                    done++;
            }
            cc_smr_exit();
            continue;
        }
        int r = append_segment(q, s, values + done, want);
        cc_smr_exit();
        if (r > 0) done += want;
        if (r < 0) {
            errno = ENOMEM;
            return done;
        }
    }
    errno = saved_errno;
    return done;
}

/* s (the head segment seen by a popper) has every slot claimed by poppers
 * and next != NULL: move head past it; the CAS winner retires it. Inside a
 * section. */
static void advance_head(cc_segqueue_t *q, seg_t *s, seg_t *next) {
    seg_t *t = s;
    /* tail must not point to a retired segment: swing it first if it lags */
    if (atomic_load_explicit(&q->tail, memory_order_acquire) == s)
        atomic_compare_exchange_strong_explicit(&q->tail, &t, next, memory_order_release,
                                                memory_order_relaxed);
    if (atomic_compare_exchange_strong_explicit(&q->head, &s, next, memory_order_release,
                                                memory_order_relaxed))
        RETIRE_SEGMENT(s);
}

/* The rest of a pop whose fast path found no value at segment s: i is the
 * index it claimed (i < SLOTS: the slot was not FULL yet; else past the
 * end), or NO_CLAIM when s looked drained (deq >= enq) and nothing was
 * claimed. Out of line and cold, so the fast path stays short. Inside the
 * caller's section. */
#define NO_CLAIM UINT64_MAX
__attribute__((noinline, cold)) static bool pop_slow(cc_segqueue_t *q, void **value, seg_t *s,
                                                     uint64_t i) {
    bool got = false, slow = false;
    int saved_errno = 0;
    for (;;) {
        if (i == NO_CLAIM) {
            if (atomic_load_explicit(&s->next, memory_order_acquire) == NULL) break; /* empty */
            i = atomic_fetch_add_explicit(&s->deq, 1, memory_order_seq_cst);
        }
        if (i < SLOTS) {
            slot_t *slot = &s->slot[i];
            uintptr_t st = atomic_load_explicit(&slot->state, memory_order_acquire);
            if (st != FULL) st = atomic_exchange_explicit(&slot->state, TAKEN, memory_order_acquire);
            if (st == FULL) {
                *value = slot->value;
                got = true;
                break;
            }
            /* its pusher is late: it retries at a later index */
        } else {
            seg_t *next = atomic_load_explicit(&s->next, memory_order_acquire);
            if (next == NULL) break; /* empty */
            if (!slow) { /* see ERRNO: a retire may write errno */
                slow = true;
                saved_errno = errno;
            }
            advance_head(q, s, next);
        }
        s = atomic_load_explicit(&q->head, memory_order_acquire);
        HOOK(q, CC__SEGQUEUE_POP_HEAD);
        uint64_t d = atomic_load_explicit(&s->deq, memory_order_seq_cst);
        if (d >= atomic_load_explicit(&s->enq, memory_order_seq_cst))
            i = NO_CLAIM;
        else
            i = atomic_fetch_add_explicit(&s->deq, 1, memory_order_seq_cst);
    }
    if (slow) errno = saved_errno;
    return got;
}

CC_API bool cc_segqueue_pop(cc_segqueue_t *q, void **value) {
    if (CC__UNLIKELY(q == NULL || value == NULL)) {
        errno = EINVAL;
        return false;
    }
    bool got;
    cc_smr_enter();
    seg_t *s = atomic_load_explicit(&q->head, memory_order_acquire);
    HOOK(q, CC__SEGQUEUE_POP_HEAD);
    uint64_t i = NO_CLAIM;
    uint64_t d = atomic_load_explicit(&s->deq, memory_order_seq_cst);
    /* Not empty when slot d is FULL (a hint: relaxed, and d may be stale, in
     * which case the claim below may find its slot unfilled, as with a stale
     * enq): then enq's line, which pushers keep writing, need not be read. */
    if (CC__LIKELY(d < SLOTS && atomic_load_explicit(&s->slot[d].state, memory_order_relaxed) == FULL) ||
        d < atomic_load_explicit(&s->enq, memory_order_seq_cst)) {
        i = atomic_fetch_add_explicit(&s->deq, 1, memory_order_seq_cst);
        /* FULL already: the slot is ours alone (one popper per index) and no
         * pusher writes it again, so no RMW is needed. */
        if (CC__LIKELY(i < SLOTS) &&
            CC__LIKELY(atomic_load_explicit(&s->slot[i].state, memory_order_acquire) == FULL)) {
            *value = s->slot[i].value;
            cc_smr_exit();
            return true;
        }
    }
    got = pop_slow(q, value, s, i);
    cc_smr_exit();
    return got;
}

CC_API size_t cc_segqueue_pop_many(cc_segqueue_t *q, void **out, size_t max) {
    if (q == NULL || (out == NULL && max > 0)) {
        errno = EINVAL;
        return 0;
    }
    size_t got = 0;
    bool slow = false;
    int saved_errno = 0;
    while (got < max) {
        /* One section per claim (at most CLAIM_MAX slots): a huge max does
         * not hold back reclamation for the whole batch. */
        cc_smr_enter();
        seg_t *s = atomic_load_explicit(&q->head, memory_order_acquire);
        HOOK(q, CC__SEGQUEUE_POP_HEAD);
        uint64_t d = atomic_load_explicit(&s->deq, memory_order_seq_cst);
        uint64_t e = atomic_load_explicit(&s->enq, memory_order_seq_cst);
        if (d >= e && atomic_load_explicit(&s->next, memory_order_acquire) == NULL) {
            cc_smr_exit();
            break;
        }
        /* Claim the FULL prefix from d (see OPERATIONS, pop_many); when it
         * is empty, one index, like pop, unless this batch already has
         * values (then it returns them rather than take an unfilled slot). */
        uint64_t k = 0;
        if (d < e && d < SLOTS) {
            uint64_t limit = min_u64(min_u64(max - got, CLAIM_MAX), min_u64(e, SLOTS) - d);
            while (k < limit && atomic_load_explicit(&s->slot[d + k].state, memory_order_relaxed) == FULL)
                k++;
        }
        if (k == 0) {
            if (got > 0 && d < SLOTS) {
                cc_smr_exit();
                break;
            }
            k = 1;
        }
        uint64_t i = atomic_fetch_add_explicit(&s->deq, k, memory_order_seq_cst);
        if (CC__LIKELY(i < SLOTS)) {
            uint64_t end = min_u64(i + k, SLOTS);
            for (; i < end; i++) {
                slot_t *slot = &s->slot[i];
                uintptr_t st = atomic_load_explicit(&slot->state, memory_order_acquire);
                if (st != FULL) st = atomic_exchange_explicit(&slot->state, TAKEN, memory_order_acquire);
                if (st == FULL) out[got++] = slot->value;
            }
            cc_smr_exit();
            continue;
        }
        seg_t *next = atomic_load_explicit(&s->next, memory_order_acquire);
        if (next != NULL) {
            if (!slow) { /* see ERRNO */
                slow = true;
                saved_errno = errno;
            }
            advance_head(q, s, next);
        }
        cc_smr_exit();
        if (next == NULL) break;
    }
    if (slow) errno = saved_errno;
    return got;
}

/* The unclaimed range of slots of s: [lo, hi). */
static void seg_range(const seg_t *s, uint64_t *lo, uint64_t *hi) {
    seg_t *m = (seg_t *)s;
    *lo = min_u64(atomic_load_explicit(&m->deq, memory_order_acquire), SLOTS);
    *hi = min_u64(atomic_load_explicit(&m->enq, memory_order_acquire), SLOTS);
}

/* While no thread changes the queue, every slot between deq and enq is FULL
 * (a claimed slot is either filled by its pusher or taken by a popper, and
 * push_many leaves no claimed slot unattempted), so the size is the sum of
 * the ranges: O(segments), no slot is read. */
CC_API size_t cc_segqueue_size(const cc_segqueue_t *q) {
    if (q == NULL) return 0;
    size_t n = 0;
    cc_smr_enter();
    for (seg_t *s = atomic_load_explicit(&((cc_segqueue_t *)q)->head, memory_order_acquire); s;
         s = atomic_load_explicit(&s->next, memory_order_acquire)) {
        uint64_t lo, hi;
        seg_range(s, &lo, &hi);
        if (hi > lo) n += hi - lo;
    }
    cc_smr_exit();
    return n;
}

CC_API void cc_segqueue_foreach(const cc_segqueue_t *q, void (*fn)(void *value, void *arg), void *arg) {
    if (q == NULL || fn == NULL) {
        errno = EINVAL;
        return;
    }
    cc_smr_enter();
    for (seg_t *s = atomic_load_explicit(&((cc_segqueue_t *)q)->head, memory_order_acquire); s;
         s = atomic_load_explicit(&s->next, memory_order_acquire)) {
        uint64_t lo, hi;
        seg_range(s, &lo, &hi);
        for (uint64_t i = lo; i < hi; i++)
            if (atomic_load_explicit(&s->slot[i].state, memory_order_acquire) == FULL)
                fn(s->slot[i].value, arg);
    }
    cc_smr_exit();
}
