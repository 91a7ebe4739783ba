/*
 * src/smr_epoch.c -- the epoch protocol: epoch-based safe memory reclamation
 * in the style of DEBRA (Brown, PODC 2015). Enter and exit slow paths, retire
 * pacing, the scan and the epoch advance.
 *
 * Invariants kept here: (I1) and (I2) below -- a node is freed only after
 * every section that could hold it has ended; g_epoch only grows, by one, and
 * only when every announced record names the current epoch or is quiescent.
 *
 * ALGORITHM
 * ---------
 * State:
 *  - `g_epoch` (exported as cc__smr_epoch for the inline fast path, alone on
 *    its cache line), a global 64-bit epoch counter that only grows.
 *  - One record per thread (heap allocated, found through one initial-exec TLS
 *    pointer, cc__smr_self), linked into an append-only registry list; records
 *    are reused after their thread exits, never freed. Its first cache line is
 *    what other threads read: the `announce` word
 *        (epoch << 1) | ACTIVE      while in a read-side critical section
 *                                   (asymmetric mode: also kept between them)
 *        0                          quiescent
 *    the `lock` word (1: a barrier or the exiting owner is touching the bags)
 *    and the registry link. The owner's hot state (depth, exit_work,
 *    seen_epoch, the fill bag, the budget) is on the next line, which only
 *    the owner writes; other threads read `depth` there (a lock holder or a
 *    revoker, to know whether the owner is in a section) and `retired` (a
 *    statistic).
 *  - Per record, three limbo bags indexed by tag % 3. A bag holds the nodes
 *    retired with one tag (chunked arrays of {node, size, free_fn}, allocated
 *    with the C library's malloc, so SMR bookkeeping never shows up in the
 *    glue's statistics), plus one built-in spare chunk.
 *
 * The description below is the fencing mode (CC_SMR_FENCE_ALWAYS); the
 * asymmetric mode (the default where membarrier(2) works) changes enter and
 * exit, see ASYMMETRIC MODE further down.
 * enter (outermost, inline in <cc/smr.h>): e = load(g_epoch); announce
 *                     = e|ACTIVE by a seq_cst exchange (X below); seq_cst
 *                     re-load of g_epoch ("validation"). Fast path: it reads
 *                     e again, e is the epoch this thread last reclaimed for,
 *                     and `lock` is 0.
 *                     Otherwise the slow path (cc__smr_enter_slow) re-announces
 *                     until validation holds, backs off while a lock holder
 *                     has the record (announce 0, wait for lock 0, retry), and
 *                     when e is new to this thread detaches its bags that
 *                     became safe (freed after the section). The exchange is
 *                     the only RMW; it writes the record's first line, which
 *                     scanners read (and, in asymmetric mode, a revoker may
 *                     CAS to 0).
 *                     Nested enter/exit only count `depth`.
 * exit (outermost, inline): store announce = 0 (release); if the section left
 *                     work (exit_work: detached bags to free, or a spare chunk
 *                     to restore), cc__smr_exit_slow does it.
 * retire(node):       inside a section announcing a (retire outside a section
 *                     opens an internal one), append the node to the bag with
 *                     tag a+1: no atomic RMW, no fence; statistics are
 *                     single-writer counters. The common case is inline in
 *                     <cc/smr.h> (room in the chunk being filled, budget left);
 *                     a per-record budget paces the rest (retire_step). Every
 *                     SCAN_EVERY retires it checks ONE other
 *                     record (round robin scan step); when the scan passes the
 *                     end of the registry with every record quiescent or
 *                     announcing e, it CASes g_epoch e -> e+1. So the epoch
 *                     advances at amortized O(1) cost per retire (enter does
 *                     no scanning: reads of other records' lines are what made
 *                     enter expensive across cores). Every `threshold` retires
 *                     (cc_config_retire_threshold(), re-read at every budget
 *                     grant: a change applies within SCAN_EVERY retires, and
 *                     at once after the thread's next poll or barrier) the
 *                     thread does a full scan, tries to advance the epoch,
 *                     detaches its safe bags and the safe orphans, and samples
 *                     `peak_pending`. cc_smr_poll() and cc_smr_barrier() scan
 *                     and advance by themselves, so epochs move without retires.
 * A bag with tag t is SAFE, and freed, once some thread has read g_epoch >= t+2.
 *
 * WHY A NODE IS NEVER FREED WHILE A THREAD MIGHT HOLD IT
 * ------------------------------------------------------
 * Named events. Reader R, in a section announcing a:
 *   R.X   the exchange that announces (a, ACTIVE)            seq_cst RMW
 *   R.V   the validation re-load of g_epoch, which reads a    seq_cst load
 *   R.P   a load of a shared pointer that yields node p       (after R.V)
 *   R.Q   the exit store of announce = 0                      release
 * Scanner S, advancing e -> e+1:
 *   S.E   its load of g_epoch, which reads e                  acquire
 *   S.F   a seq_cst fence                                     seq_cst
 *   S.W   its load of R's announce word                       acquire
 *   S.C   the CAS g_epoch e -> e+1                            acq_rel
 * Unlinker U, in a section announcing u: U.U unlinks p, U.R retires it into
 * the bag with tag u+1 (U.X and U.V as for R). Reclaimer C: C.E loads
 * g_epoch >= tag+2 (acquire), then C.F runs p's free function.
 * S is the seq_cst total order of C11.
 *
 * (I1) While R is ACTIVE with announced epoch a, g_epoch <= a+1.
 *   1. The advance a+1 -> a+2 is an S.C after S.E read a+1, S.F, and an S.W
 *      of R's word (the full scan reads every record; a record missed by a
 *      traversal was published before its owner's first R.X).
 *   2. If S.W reads (a, ACTIVE), S does not advance.
 *   3. If S.W reads R.Q or later, R's section is over.
 *   4. Otherwise S.W reads a value older than R.X. By the fence rule (a load
 *      coherence-ordered before a seq_cst write, with a seq_cst fence before
 *      the load), S.F precedes R.X in S, so R.V, which follows R.X in S,
 *      follows S.F.
 *   5. S.E happens before S.F and read a+1, so R.V (later in S, a seq_cst
 *      load) cannot read an older value: it reads >= a+1 != a. Then R does
 *      not validate: R re-announces, contradicting "announcing a". So 2 or
 *      3 holds, and g_epoch stays <= a+1 while R is in that section.
 *   (R's side is one seq_cst exchange and one seq_cst load; under TSan a
 *   store and a seq_cst RMW standing for the fence.)
 * (I2) If R.P loads p before U.U, then u >= a (when U's section began with
 *   an exchange; src/smr_revoke.c has (I2') for the asymmetric fast path):
 *   1. R.P reads the link before U.U: R.P is coherence-ordered before U.U.
 *   2. R.X precedes R.V precedes R.P in program order; U.U precedes U.R, and
 *      U's section began with U.X and U.V (or U.U is inside the section).
 *   3. By the same fence rule on the chain R.X -> R.P -> U.U -> U.V, U.V
 *      follows R.V in S and reads at least what R.V read: u >= a.
 *   4. So the bag's tag u+1 >= a+1 > a.
 * Freeing: C.F runs after C.E read g_epoch >= tag+2 >= a+2. By (I1) every
 *   reader announcing a <= tag-1 has left that section (R.Q) by then:
 *   R.Q (release) -> S.W (acquire) -> S.C (acq_rel) -> C.E (acquire) -> C.F
 *   is a happens-before chain, so R's reads of p are done before the free.
 *   A later section of the same reader cannot reach p: it began after U.U
 *   (else step 3 again gives a' <= tag - 1 and the bag is not safe either).
 * The scan step in retire and the full scans keep the precondition of (I1):
 * the scanner loaded g_epoch == e before a seq_cst fence that precedes its
 * loads of announce words (the step in retire_step loads g_epoch and
 * fences itself; cc__smr_full_scan() and cc__smr_advance_to() do the same).
 * The store-load ordering in enter (announce, then load shared pointers) is
 * exactly the one acquire/release cannot give: hence the seq_cst exchange
 * (a seq_cst fence or a seq_cst exchange). The section's
 * pointer loads come after the seq_cst validation load (acquire), which
 * comes after the exchange in S; on x86 the exchange is `xchg`, a full
 * barrier, one locked instruction instead of a store plus a fence (as
 * ck_epoch_begin does on TSO targets). Scanners keep real seq_cst fences.
 * Under TSan (which does not model fences) the announcement is a store plus
 * a seq_cst RMW on cc__smr_tsan_fence.
 *
 */
#include <cc/smr.h>

#include "smr_internal.h"

/* The global epoch, alone on its cache line (read by every enter). */
_Alignas(CC__LAYOUT_LINE) CC_API _Atomic uint64_t cc__smr_epoch = 1;
/* Defined in every build, so code built with TSan links against any build. */
CC_API _Atomic uint64_t cc__smr_tsan_fence;
#ifdef CC_SMR_TEST_HOOKS /* TEST ONLY: see CC__SMR_STEP in <cc/smr.h> */
CC_API _Atomic(cc__smr_step_hook_t) cc__smr_step_hook;
#endif

void cc__smr_backoff(unsigned *spins) {
    if (++*spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else if (*spins < 256) {
        sched_yield();
    } else {
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    }
}

uint64_t cc__smr_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- scan and advance ---------------------------------------------------------- */

/* Checks up to `budget` records for epoch e and advances g_epoch when a pass
 * completes. The caller loaded g_epoch == e BEFORE a seq_cst fence that
 * precedes this call (see I1). `full`: a full scan, which may revoke (above). */
static void scan(rec_t *r, uint64_t e, unsigned budget, bool full) {
    if (!r->scan_valid || r->scan_epoch != e) {
        r->scan_epoch = e;
        r->scan_valid = true;
        r->scan_pos = atomic_load_explicit(&g_head, memory_order_acquire);
    }
    while (budget--) {
        rec_t *o = r->scan_pos;
        if (o == NULL) {
            uint64_t exp = e;
            CC__SMR_STEP(CC__SMR_STEP_ADVANCE);
            atomic_compare_exchange_strong_explicit(&g_epoch, &exp, e + 1, memory_order_acq_rel,
                                                    memory_order_relaxed);
            r->scan_valid = false;
            return;
        }
        CC__SMR_STEP(CC__SMR_STEP_SCAN_RECORD);
        uint64_t w = atomic_load_explicit(&o->pub.announce, memory_order_acquire);
        if (announce_blocks_advance(w, e) && !(full && g_asymmetric && cc__smr_maybe_revoke(r, o, e)))
            return; /* blocked by o; retry later */
        r->scan_pos = rec_next(o);
    }
}

/* Full scan, then detach what is safe (own bags, orphans); r is ACTIVE. */
void cc__smr_full_scan(rec_t *r) {
    uint64_t e = epoch_now();
    sc_fence();
    scan(r, e, UINT32_MAX, true);
    e = epoch_now();
    cc__smr_reclaim_own(r, e);
    cc__smr_take_orphans(r, e, false);
}

static __attribute__((noinline)) void full_scan_and_sample(rec_t *r) {
    cc__smr_full_scan(r);
    cc__smr_update_peak(cc__smr_sum_pending());
    r->since_trigger = 0;
}

/* Waits until g_epoch >= target, advancing it; the caller is quiescent.
 * Asymmetric mode: the caller's own kept announcement is dropped first, and a
 * thread that blocks the advance while outside any section (depth 0, a hint)
 * is revoked after a short spin (revoke_idle). */
static void advance_to_uncancellable(uint64_t target);

/* The wait below sleeps (cc__smr_backoff), and nanosleep is a cancellation
 * point: the waiting thread must not die there. Callers are a barrier (which
 * goes on to lock other records), restore_headroom and the out-of-memory
 * fallback (which holds a node counted as retired): cancellation is deferred
 * until the wait is over. */
void cc__smr_advance_to(uint64_t target) {
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    advance_to_uncancellable(target);
    pthread_setcancelstate(cancel_state, NULL);
}

static void advance_to_uncancellable(uint64_t target) {
    unsigned spins = 0;
    cc__smr_release_own(t_rec);
    for (;;) {
        uint64_t e = epoch_now();
        if (e >= target) return;
        sc_fence();
        rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire);
        while (o) {
            CC__SMR_STEP(CC__SMR_STEP_SCAN_RECORD);
            uint64_t w = atomic_load_explicit(&o->pub.announce, memory_order_acquire);
            if (announce_blocks_advance(w, e)) {
                if (epoch_now() != e) break; /* someone else advanced */
                if (g_asymmetric && spins >= 16 && atomic_load_explicit(&o->pub.depth, memory_order_relaxed) == 0) {
                    cc__smr_revoke_idle(e);
                    spins = 0;
                } else {
                    cc__smr_backoff(&spins);
                }
                continue;
            }
            o = rec_next(o);
        }
        if (o == NULL) {
            uint64_t exp = e;
            CC__SMR_STEP(CC__SMR_STEP_ADVANCE);
            atomic_compare_exchange_strong_explicit(&g_epoch, &exp, e + 1, memory_order_acq_rel,
                                                    memory_order_relaxed);
        }
    }
}

/* ---- sections ---------------------------------------------------------------- */

/* The outermost enter, full protocol (the inline fast path is its common
 * case). r is quiescent as far as scanners can rely on (depth 0). Returns the
 * announced epoch. */
static uint64_t enter_announce(rec_t *r) {
    unsigned spins = 0;
    uint64_t e;
    for (;;) {
        /* Asymmetric mode: depth = 1 before the announcement (a full barrier)
         * and the lock load, so a lock holder or revoker sees us (it reads
         * depth after its membarrier). */
        if (r->pub.asymmetric) cc__smr_set_depth(&r->pub, 1);
        e = epoch_now();
        cc__smr_announce(&r->pub, (e << 1) | ACTIVE);
        CC__SMR_STEP(CC__SMR_STEP_ENTER_VALIDATE);
        for (;;) { /* validation: see (I1) */
            uint64_t e2 = atomic_load_explicit(&g_epoch, memory_order_seq_cst);
            if (e2 == e) break;
            e = e2;
            cc__smr_announce(&r->pub, (e << 1) | ACTIVE);
        }
        /* Dekker with cc__smr_lock_record(): after our announcement, a lock we do
         * not see is one whose holder sees us ACTIVE. seq_cst: the load side
         * of that pair; it also acquires, pairing with the holder's release
         * unlock (we see what it did to our bags). */
        if (atomic_load_explicit(&r->pub.lock, memory_order_seq_cst) == 0) break;
        /* Let it in: quiescent (release, as an exit). */
        if (r->pub.asymmetric) atomic_store_explicit(&r->pub.depth, 0, memory_order_release);
        else atomic_store_explicit(&r->pub.announce, 0, memory_order_release);
        CC__SMR_STEP(CC__SMR_STEP_ENTER_WAIT);
        while (atomic_load_explicit(&r->pub.lock, memory_order_acquire) != 0) cc__smr_backoff(&spins);
    }
    cc__smr_set_depth(&r->pub, 1);
    if (e != r->pub.seen_epoch) {
        r->pub.seen_epoch = e;
        if (atomic_load_explicit(&r->pub.retired, memory_order_relaxed) !=
            atomic_load_explicit(&r->out_of_bags, memory_order_relaxed)) {
            cc__smr_reclaim_own(r, e);
            note_work(r);
        }
    }
    return e;
}

/* Out-of-line part of cc_smr_enter (first use, lock seen, epoch moved). */
CC_API void cc__smr_enter_slow(void) {
    rec_t *r = get_rec();
    uint32_t d = cc__smr_depth(&r->pub);
    if (d != 0) {
        cc__smr_set_depth(&r->pub, d + 1);
        return;
    }
    enter_announce(r);
}

/* Runs the frees the section detached; the section has ended. */
CC_API void cc__smr_exit_slow(void) {
    rec_t *r = t_rec;
    if (!registered(&r->pub) || cc__smr_depth(&r->pub) != 0) return;
    cc__smr_flush(r);
    if (r->need_headroom && !r->flushing) cc__smr_restore_headroom(r);
}

/* Leaves the outermost section as cc_smr_exit does, then frees what it
 * detached. */
size_t cc__smr_leave_and_flush(rec_t *r) {
    cc__smr_leave(&r->pub);
    if (r->free_queue == NULL || r->flushing) return 0;
    return cc__smr_flush(r);
}

/* ---- retire ----------------------------------------------------------------- */

/* Retire pacing. Every append consumes one unit of pub.retire_budget; the
 * inline retire runs only while more than one is left, so the append that
 * empties it is out of line and runs cc__smr_retire_step(). A grant is at most
 * SCAN_EVERY retires and never runs past the threshold: every `threshold`
 * retires (cc_config_retire_threshold(), re-read at every grant, so a change
 * applies within SCAN_EVERY retires, and at once after a poll or barrier) a
 * full scan, in between DEBRA's step, checking one other record. */
static void account_budget(rec_t *r) {
    r->since_trigger += r->budget_granted - r->pub.retire_budget;
    r->budget_granted = r->pub.retire_budget;
}

void cc__smr_grant_budget(rec_t *r) {
    account_budget(r);
    /* relaxed: an independent setting; init_once applied the environment. */
    uint64_t th = atomic_load_explicit(&cc__config_retire_threshold, memory_order_relaxed);
    uint64_t left = th > r->since_trigger ? th - r->since_trigger : 1;
    r->budget_granted = (uint32_t)(left < SCAN_EVERY ? left : SCAN_EVERY);
    r->pub.retire_budget = r->budget_granted;
}

/* The budget ran out (r is ACTIVE). A full scan every `threshold` retires,
 * else DEBRA's step. The step's own fence after its load of g_epoch is the
 * precondition of scan() (one fence per SCAN_EVERY retires). */
void cc__smr_retire_step(rec_t *r) {
    account_budget(r);
    if (r->since_trigger >= atomic_load_explicit(&cc__config_retire_threshold, memory_order_relaxed)) {
        full_scan_and_sample(r); /* resets since_trigger */
    } else {
        uint64_t e = epoch_now();
        sc_fence();
        scan(r, e, 1, false);
    }
    cc__smr_grant_budget(r);
}

/* Retire inside a section (r ACTIVE): append to the current chunk of the bag
 * for tag a+1 -- no atomic RMW -- or take the general path. */
static inline bool retire_in(rec_t *r, void *node, size_t size, cc_smr_free_fn free_fn, bool internal) {
    chunk_t *h = cc__smr_fill_chunk(&r->pub);
    if (CC__UNLIKELY(h == NULL)) {
        /* Our own announcement: relaxed (single writer, ourselves). */
        uint64_t a = EPOCH_OF(atomic_load_explicit(&r->pub.announce, memory_order_relaxed));
        return cc__smr_retire_to_bag(r, a, node, size, free_fn, internal);
    }
    append_entry(r, h, node, size, free_fn);
    return false;
}

/* Retire outside any section: inside an internal one. */
static __attribute__((noinline)) void retire_outside(void *node, size_t size, cc_smr_free_fn free_fn) {
    cc_smr_enter();
    if (!retire_in(t_rec, node, size, free_fn, true)) cc_smr_exit();
}

/* Out-of-line part of cc_smr_retire (<cc/smr.h>): NULL, outside a section,
 * the budget's last unit, a new tag or a full chunk. */
CC_API void cc__smr_retire_slow(void *node, size_t size, cc_smr_free_fn free_fn) {
    if (node == NULL) return;
#ifdef CC_SMR_BROKEN_FREE_ON_RETIRE
    /* TEST ONLY: frees at once, so readers hit freed memory. */
    {
        rec_t *br = get_rec();
        bump(&br->pub.retired, 1);
        if (free_fn) free_fn(node, size);
        else cc_free(node, size);
        bump(&br->freed, 1);
        return;
    }
#endif
    cc__smr_rec_t *p = cc__smr_self;
    if (CC__UNLIKELY(cc__smr_depth(p) == 0)) { /* also an unregistered thread (its stand-in's depth is 0) */
        retire_outside(node, size, free_fn);
        return;
    }
    (void)retire_in((rec_t *)p, node, size, free_fn, false); /* a user section: never leaves it */
}
