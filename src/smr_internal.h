/*
 * src/smr_internal.h -- what the SMR sources share (not API, not installed).
 *
 * The SMR layer is one algorithm in five files, one concern each:
 *   smr_epoch.c     the epoch protocol: enter/exit slow paths, retire pacing,
 *                   scan and advance, and why a node is never freed early
 *   smr_revoke.c    asymmetric (membarrier) mode: revocation and its pacing
 *   smr_limbo.c     limbo storage: bags, chunks, the free queue, orphans,
 *                   and the out-of-memory machinery
 *   smr_registry.c  thread records: registration, the record lock, thread
 *                   exit, fork
 *   smr_barrier.c   cc_smr_poll, cc_smr_barrier, cc_smr_idle, cc_smr_stats
 * A robust (interval-based) mode is meant to be one more file beside these:
 * it changes what a record announces and what makes a bag safe (the two
 * predicates below and detach), not the registry, the limbo storage or the
 * barrier.
 *
 * Names: static functions have short names; functions and globals shared
 * between the files are cc__smr_* (hidden: the library is built with
 * -fvisibility=hidden), with a g_* alias for the globals.
 *
 * MEMORY ORDERING OF EVERY ATOMIC
 * -------------------------------
 *  g_epoch            enter's first load relaxed (its value is only trusted
 *                     once the seq_cst re-load after the exchange confirms
 *                     it; seq_cst: the load side of (I1)).
 *                     Every other load acquire: pairs with the acq_rel advance
 *                     CAS, so a thread that sees epoch E sees the quiescent
 *                     states (and thus the finished sections) the advancer saw.
 *                     CAS acq_rel on success (release: publish that chain;
 *                     acquire: continue it), relaxed on failure (value unused).
 *  rec->announce      enter/re-announce: seq_cst exchange (cc__smr_announce;
 *                     the store side of (I1) and of the lock handshake; under
 *                     TSan a release store + fence). It is also a release:
 *                     a scanner that reads
 *                     this NEW announcement (not the exit store before it)
 *                     must also see the previous section's reads as finished
 *                     (C11's release sequence would cover a same-thread store;
 *                     C++20's does not, and release costs nothing on x86).
 *                     Exit store release (the section's reads and bag writes
 *                     happen before a scanner/lock holder that sees it
 *                     quiescent). Scanner/barrier/lock-holder/stats loads
 *                     acquire (pair with the exit release). The owner's own
 *                     load of its announced epoch in retire: relaxed (it is
 *                     the only writer).
 *  rec->depth         owner: relaxed stores and loads, except the outermost exit
 *                     in asymmetric mode (and the slow path's "let it in"):
 *                     release, pairing with the acquire load of a revoker or
 *                     lock holder (the section's reads and bag writes are
 *                     done). The Dekker ordering of its store before the
 *                     owner's loads comes from the other side's membarrier
 *                     (asymmetric mode); others' relaxed loads are hints.
 *  announce CAS -> 0  revoker (asymmetric mode): acq_rel on success (it read
 *                     depth 0 with acquire; scanners that read 0 continue the
 *                     chain), relaxed on failure.
 *  g_membarriers, g_membarrier_ns
 *                     relaxed: a statistic and a pacing hint.
 *  rec->lock          holder: CAS 0 -> 1 acquire (pairs with the previous
 *                     holder's release unlock: bag contents), failure relaxed;
 *                     pre-check load relaxed (a hint); unlock store release
 *                     (the owner's next enter sees what the holder did to its
 *                     bags). Owner's loads in enter seq_cst (the Dekker load
 *                     side; they acquire too), in the wait acquire,
 *                     pairing with that unlock. The Dekker ordering itself
 *                     comes from the seq_cst exchange and loads on the
 *                     owner's side and the holder's seq_cst fence.
 *  sc_fence()         seq_cst (cc__smr_fence() in <cc/smr.h>): the store-load
 *                     ordering of (I1), (I2) and of the lock handshake.
 *  rec->next, g_head  store release (publishes an initialised record), load
 *                     acquire (traversal sees it initialised).
 *  rec->in_use        written under g_lock; relaxed loads by stats (a count).
 *  rec->retired/freed/out_of_bags
 *                     statistics: relaxed load+store by the single writer
 *                     (the owner, or the lock holder for `out_of_bags`), relaxed
 *                     loads by stats. Exact once threads are quiescent. One
 *                     exception: the store that raises `out_of_bags` in a detach
 *                     is release and the barrier's load of it acquire (the
 *                     detach's `queued` count is then visible).
 *  rec->queued      relaxed (single writer: the owner, or under g_lock).
 *  rec->queue_freed       store release after the frees it counts, loaded acquire
 *                     by the barrier, which waits until queue_freed >= queued.
 *  rec->spare_free    store 1 release by whoever freed the spare chunk's nodes
 *                     (its reads of the chunk happen before the owner reuses
 *                     it); owner's load acquire when taking it, store 0
 *                     relaxed (owner only); relaxed in has_headroom (a hint).
 *  g_orphan_nodes     relaxed: written under g_lock, read as a hint by polls and
 *                     as a statistic; the barrier takes g_lock instead.
 *  g_peak             relaxed CAS-max: a statistic.
 *  g_chunk_fail_every/count  relaxed: a test hook's counters.
 *  cc__smr_tsan_fence seq_cst RMW (TSan builds only): stands for the fence.
 *  Plain fields (exit_work, seen_epoch, asymmetric, need_headroom, since_trigger, bags,
 */
#ifndef CC_SMR_INTERNAL_H
#define CC_SMR_INTERNAL_H

#include <cc/smr.h>

#include "config_internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ACTIVE CC__SMR_ACTIVE
#define EPOCH_OF(w) ((w) >> 1)
#define SCAN_EVERY 32u  /* a retire checks one other record every SCAN_EVERY retires */
#define CHUNK_CAP CC__SMR_CHUNK_CAP
#define CACHE_MAX 4u
#define RESERVE_CHUNKS 8u
/* Asymmetric mode: a full scan blocked by an idle thread's kept announcement
 * revokes it once the block has lasted PATIENCE_COSTS membarrier calls (the
 * running average), and at least PATIENCE_MIN_NS: revocation then costs at
 * most 1/PATIENCE_COSTS of the scanning thread's time. */
#define PATIENCE_COSTS 16u
#define PATIENCE_MIN_NS 20000u

/* Entries, chunks and bags are declared in <cc/smr.h> (the inline retire
 * appends to them). A bag's node count is the sum of its chunks' counts,
 * counted when the bag is detached, not at every retire. */
typedef cc__smr_entry_t entry_t;
typedef cc__smr_chunk_t chunk_t;
typedef cc__smr_bag_t bag_t;

typedef struct rec {
    /* Public prefix (<cc/smr.h>): line 1 announce, lock, registry link (read by
     * scanners and the barrier); line 2 depth, exit_work, seen_epoch (owner). */
    cc__smr_rec_t pub;
    /* Owner-only state. */
    uint64_t scan_epoch;    /* epoch the current scan pass is for */
    struct rec *scan_pos;   /* next record to check; NULL = end of registry */
    bool scan_valid;
    uint64_t since_trigger; /* retires since the last full scan, up to the last grant */
    uint64_t blocked_epoch; /* asymmetric mode: the epoch full scans were blocked at, */
    uint64_t blocked_since; /*   since when (ns, CLOCK_MONOTONIC) */
    uint32_t budget_granted; /* pub.retire_budget as last granted (see grant_budget) */
    chunk_t *cache;         /* spare chunks, owner only */
    unsigned ncache;
    chunk_t *free_queue;    /* detached safe chunks, freed after the section (flush) */
    chunk_t *freeing;       /* the chunks cc__smr_flush() is freeing now; entries below */
    uint32_t free_pos;      /*   free_pos of the first have had their free function called, */
    uint32_t free_counted;  /*   free_counted of those are counted in freed/queue_freed */
    bool flushing;          /* running free functions (no nested flush) */
    /* Bags: owner while ACTIVE, or whoever holds LOCK. */
    bag_t bags[3];
    /* Statistics (see the ordering table). */
    /* One pipeline, counted at each stage: a node is retired into a bag;
     * leaves it (out_of_bags: detached into a free queue, orphaned, or freed
     * synchronously; in the bags: retired - out_of_bags); a node detached
     * into this record's free queue is counted in `queued`, and in
     * `queue_freed` once its free function has returned. */
    _Atomic uint64_t out_of_bags;
    _Atomic uint64_t freed;
    _Atomic int in_use;     /* under g_lock */
    /* Nodes moved to free_queue / freed from it, ever (single writer: the
     * owner). A barrier waits until queue_freed >= queued. */
    _Atomic uint64_t queued;
    _Atomic uint64_t queue_freed;
    /* Built-in spare chunk (never malloc'ed, never freed): the last resort of
     * a retire inside a section when malloc fails. spare_free: 1 while it is
     * not in any bag (set by whoever frees its nodes, release; taken by the
     * owner, acquire). need_headroom: the owner used its last spare chunk
     * inside a section; its outermost exit restores one (restore_headroom). */
    _Atomic int spare_free;
    bool need_headroom;
    chunk_t spare;
} rec_t;


/* ---- globals (each defined in the file named) ------------------------------ */

#define g_epoch cc__smr_epoch /* smr_epoch.c: <cc/smr.h> exports it for the inline enter */
#define t_rec ((rec_t *)cc__smr_self) /* smr_registry.c: the calling thread's record */
/* smr_registry.c */
extern pthread_mutex_t cc__smr_lock; /* registry, orphans, reserve */
#define g_lock cc__smr_lock
extern _Atomic(rec_t *) cc__smr_head;
#define g_head cc__smr_head
/* smr_revoke.c: asymmetric mode (fixed at initialisation, before any record
 * exists), membarrier calls made (a statistic) */
extern bool cc__smr_asymmetric;
#define g_asymmetric cc__smr_asymmetric
extern _Atomic uint64_t cc__smr_membarriers;
#define g_membarriers cc__smr_membarriers
/* smr_limbo.c: nodes on the orphan list (a hint and a statistic) */
extern _Atomic uint64_t cc__smr_orphan_nodes;
#define g_orphan_nodes cc__smr_orphan_nodes
/* smr_barrier.c: highest pending sampled */
extern _Atomic uint64_t cc__smr_peak;
#define g_peak cc__smr_peak

/* ---- small helpers ----------------------------------------------------------- */

static inline void sc_fence(void) { cc__smr_fence(); }

static inline void bump(_Atomic uint64_t *c, int64_t by) {
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + (uint64_t)by,
                          memory_order_relaxed);
}

/* Registry traversal: acquire (a record found is seen initialised). */
static inline rec_t *rec_next(rec_t *o) {
    return (rec_t *)atomic_load_explicit(&o->pub.next, memory_order_acquire);
}

/* Marks whether the outermost exit has work: frees to run (r->free_queue) or a
 * spare chunk to restore. */
static inline void note_work(rec_t *r) { r->pub.exit_work = r->free_queue != NULL || r->need_headroom; }

/* The scan's predicate: whether announce word w stops g_epoch advancing from
 * e -- an announcement (active or kept) of another epoch; quiescent (0) and e
 * itself do not. Precondition (I1): the caller loaded g_epoch == e, then
 * executed a seq_cst fence, then loaded w. (An announcement newer than e
 * blocks too: the epoch has moved, so the advance CAS would fail anyway.) */
static inline bool announce_blocks_advance(uint64_t w, uint64_t e) {
    return (w & ACTIVE) && EPOCH_OF(w) != e;
}

/* The revocation's predicate: whether a revoker may drop announce word w
 * (if its owner's depth then reads 0) -- a kept announcement strictly OLDER
 * than e. Precondition (I1'): the caller loaded g_epoch == e before its
 * cc__smr_asym_fence(), then loaded w. The argument needs "older": a thread whose
 * depth = 1 store follows the fence's point P then loads g_epoch >= e after P
 * and cannot take the fast path on an announcement older than e. An
 * announcement of e or newer may have been made after P (the epoch moved
 * while we fenced or scanned), and its owner may enter on the fast path
 * between our load of its depth and our CAS: revoking it would free nodes
 * under a reader (tests/smr/test_smr_revoke_race.c, src/smr_protocol.pml). */
static inline bool announce_revocable(uint64_t w, uint64_t e) {
#ifdef CC_SMR_BROKEN_REVOKE_EPOCH /* TEST ONLY (scripts/test.sh, negative controls) */
    return announce_blocks_advance(w, e);
#else
    return (w & ACTIVE) && EPOCH_OF(w) < e;
#endif
}

static inline uint64_t epoch_now(void) { return atomic_load_explicit(&g_epoch, memory_order_acquire); }

/* ---- across the files -------------------------------------------------------- */

/* smr_epoch.c */
void cc__smr_backoff(unsigned *spins);
uint64_t cc__smr_now_ns(void);
void cc__smr_advance_to(uint64_t target);
void cc__smr_full_scan(rec_t *r);
size_t cc__smr_leave_and_flush(rec_t *r);
void cc__smr_grant_budget(rec_t *r);
void cc__smr_retire_step(rec_t *r);
/* smr_revoke.c */
bool cc__smr_choose_asymmetric(cc_smr_fence_t want);
void cc__smr_asym_fence(void);
void cc__smr_revoke_idle(uint64_t e);
bool cc__smr_maybe_revoke(rec_t *r, rec_t *o, uint64_t e);
void cc__smr_release_own(rec_t *r);
/* smr_limbo.c */
void cc__smr_limbo_init(void);
chunk_t *cc__smr_new_chunk(void);
void cc__smr_detach_safe(rec_t *r, uint64_t e, chunk_t **out, _Atomic uint64_t *queued);
void cc__smr_reclaim_own(rec_t *r, uint64_t e);
size_t cc__smr_flush(rec_t *r);
void cc__smr_flush_interrupted(rec_t *r);
void cc__smr_take_orphans(rec_t *r, uint64_t e, bool block);
void cc__smr_drop_queues_in_child(rec_t *o);
void cc__smr_reconcile_in_child(rec_t *me, rec_t *dead);
uint64_t cc__smr_orphan_bags_locked(rec_t *r);
void cc__smr_restore_headroom(rec_t *r);
bool cc__smr_retire_to_bag(rec_t *r, uint64_t a, void *node, size_t size, cc_smr_free_fn free_fn,
                           bool internal);
/* smr_registry.c */
rec_t *cc__smr_register_thread(void);
void cc__smr_lock_record(rec_t *o);
bool cc__smr_try_lock_word(rec_t *o);
void cc__smr_lock_fence(void);
bool cc__smr_owner_quiescent(rec_t *o);
void cc__smr_unlock_record(rec_t *o);
/* smr_barrier.c */
void cc__smr_update_peak(uint64_t pending);
uint64_t cc__smr_sum_pending(void);

static inline bool registered(const cc__smr_rec_t *p) { return p != &cc__smr_unregistered; }

/* The calling thread's record, registering it on first use. */
static inline rec_t *get_rec(void) {
    rec_t *r = t_rec;
    if (CC__UNLIKELY(!registered(&r->pub))) r = cc__smr_register_thread();
    return r;
}

/* Appends to the chunk being filled (see cc__smr_append in <cc/smr.h> and
 * atfork_child for the order of its stores); the append that spends the
 * budget runs the step. */
static inline void append_entry(rec_t *r, chunk_t *h, void *node, size_t size, cc_smr_free_fn free_fn) {
    if (cc__smr_append(&r->pub, h, node, size, free_fn) == 0) cc__smr_retire_step(r);
}

/* ---- test hooks ---------------------------------------------------------------- */

/* From this call on, every `every`-th allocation of a limbo chunk (SMR
 * bookkeeping, from the C library) fails as if out of memory; 0 turns it off.
 * Any backend. Used to test that bookkeeping failures never lose a node. */
CC_API void cc__smr_fail_chunk_alloc(uint64_t every);

#ifdef CC_SMR_TEST_HOOKS
/* TEST ONLY (CMake CC_SMR_TEST_HOOKS): registers the caller if needed, loads
 * g_epoch and runs one asymmetric-mode revocation pass (revoke_idle) for it,
 * as a blocked reclaimer does. Does nothing in the fencing mode. */
CC_API void cc__smr_revoke_idle_now(void);
#endif

#endif /* CC_SMR_INTERNAL_H */
