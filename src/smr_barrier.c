/*
 * src/smr_barrier.c -- cc_smr_poll, cc_smr_barrier, cc_smr_idle and
 * cc_smr_stats.
 *
 * Invariants kept here: cc_smr_barrier() returns 0 only once every node
 * retired before the call, by any thread, has been freed and its free
 * function has returned; it refuses (EDEADLK) where it could not (inside a
 * section or a free function). Statistics never write shared state but the
 * peak.
 *
 * A STALLED READER
 * ----------------
 * A thread that stays inside a section announcing a pins g_epoch <= a+1
 * (I1): nothing retired from then on can be freed, by anyone, until it leaves;
 * pending grows without bound and cc_smr_barrier() waits for it. cc_smr_stats()
 * shows it: `stalled_threads` counts ACTIVE records whose announcement is
 * behind g_epoch (they block the next advance; normal threads show up only
 * briefly), and `pending` keeps growing. A later issue bounds this (IBR).
 */
#include <cc/smr.h>

#include "smr_internal.h"

_Alignas(CC__LAYOUT_LINE) _Atomic uint64_t cc__smr_peak;

void cc__smr_update_peak(uint64_t pending) {
    uint64_t p = atomic_load_explicit(&g_peak, memory_order_relaxed);
    while (pending > p && !atomic_compare_exchange_weak_explicit(&g_peak, &p, pending, memory_order_relaxed,
                                                                 memory_order_relaxed)) {
    }
}

uint64_t cc__smr_sum_pending(void) {
    uint64_t ret = 0, fr = 0;
    for (rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire); o;
         o = rec_next(o)) {
        ret += atomic_load_explicit(&o->pub.retired, memory_order_relaxed);
        fr += atomic_load_explicit(&o->freed, memory_order_relaxed);
    }
    return ret > fr ? ret - fr : 0;
}

CC_API size_t cc_smr_poll(void) {
    cc_smr_enter();
    rec_t *r = t_rec;
    cc__smr_full_scan(r);
    cc__smr_grant_budget(r); /* a new threshold applies from here */
    uint32_t d = cc__smr_depth(&r->pub) - 1;
    if (d == 0) return cc__smr_leave_and_flush(r);
    cc__smr_set_depth(&r->pub, d);
    return cc__smr_flush(r);
}

/* Whether o's bags may hold nodes. A retire that happened before the
 * barrier is visible in `retired`. acquire on `out_of_bags` (read first): a
 * detach's store that made the two equal also makes its `queued` count
 * visible to the barrier's wait for in-flight frees. */
static bool has_bagged(rec_t *o) {
    uint64_t out = atomic_load_explicit(&o->out_of_bags, memory_order_acquire);
    return atomic_load_explicit(&o->pub.retired, memory_order_relaxed) != out;
}

/* o is locked by the barrier of r: detach o's bags that are safe at e into
 * r's free queue (freed by r's flush, counted in r's `queued`: the barrier
 * skips its own record when it waits for in-flight frees), then unlock o.
 * Under g_lock: a fork in the middle of the detach would leave the child a
 * bag both in o and on r's free queue (atfork_prepare takes g_lock). Lock
 * order: a record's lock, then g_lock. */
static void detach_for_barrier(rec_t *r, rec_t *o, uint64_t e) {
    pthread_mutex_lock(&g_lock);
    cc__smr_detach_safe(o, e, &r->free_queue, &r->queued);
    pthread_mutex_unlock(&g_lock);
    cc__smr_unlock_record(o);
}

/* Whether the batch detached o already (what its bags hold now was retired
 * after the barrier began: not the barrier's business). */
static bool in_batch(rec_t *const *batch, unsigned nb, const rec_t *o) {
    for (unsigned i = 0; i < nb; i++)
        if (batch[i] == o) return true;
    return false;
}

CC_API int cc_smr_barrier(void) {
    rec_t *r = get_rec();
    /* Inside a section the epoch cannot pass our own announcement; inside a
     * free function our own flush cannot run, so nodes retired before the
     * call could stay pending: both would deadlock or break the contract. */
    if (cc__smr_depth(&r->pub) > 0 || r->flushing) {
        errno = EDEADLK;
        return -1;
    }
    cc__smr_grant_budget(r); /* a new threshold applies from here */
    /* No cancellation while we may hold another record's lock (its owner's
     * next enter would wait for ever): deferred until the frees below, which
     * run user code and may be cancelled like any other. */
    int cancel_state;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &cancel_state);
    /* Every node retired before this call has tag <= e0 + 1 (its retirer
     * announced a <= e0), so it is safe once g_epoch >= e0 + 3. */
    sc_fence();
    uint64_t e0 = epoch_now();
    cc__smr_advance_to(e0 + 3);
    uint64_t e = epoch_now();
    /* Every record with nodes in its bags: take its lock and detach its safe
     * bags. Batched: try the lock words of up to BATCH records, then ONE fence
     * (one membarrier in asymmetric mode) serves them all; the owners found
     * quiescent are done at once. A record whose lock word is taken, or whose
     * owner is inside a section, or beyond the batch, goes the one-by-one way
     * (cc__smr_lock_record). We never wait while holding a record's lock
     * other than the one whose owner we wait for: holding several could
     * deadlock with owners that wait for each other outside SMR. */
    enum { BATCH = 64 };
    rec_t *batch[BATCH];
    unsigned nb = 0;
    for (rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire); o; o = rec_next(o)) {
        if (!has_bagged(o)) continue;
        if (o == r) { /* our own bags: no owner to wait for */
            cc__smr_lock_record(r);
            detach_for_barrier(r, o, e);
            continue;
        }
        if (nb < BATCH && cc__smr_try_lock_word(o)) batch[nb++] = o;
    }
    if (nb > 0) {
        CC__SMR_STEP(CC__SMR_STEP_LOCK_WAIT);
        cc__smr_lock_fence();
    }
    for (unsigned i = 0; i < nb; i++) {
        if (cc__smr_owner_quiescent(batch[i])) {
            detach_for_barrier(r, batch[i], e);
        } else {
            cc__smr_unlock_record(batch[i]); /* one by one, below */
            batch[i] = NULL;
        }
    }
    for (rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire); o; o = rec_next(o)) {
        if (o == r || !has_bagged(o) || in_batch(batch, nb, o)) continue;
        cc__smr_lock_record(o);
        detach_for_barrier(r, o, e);
    }
    cc__smr_take_orphans(r, e, true);
    pthread_setcancelstate(cancel_state, NULL);
    cc__smr_flush(r);
    /* Nodes other threads detached (to free after their section) but may
     * still be freeing: wait until each has freed as many as it detached. */
    for (rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire); o;
         o = rec_next(o)) {
        if (o == r) continue;
        uint64_t d = atomic_load_explicit(&o->queued, memory_order_acquire);
        unsigned spins = 0;
        while (atomic_load_explicit(&o->queue_freed, memory_order_acquire) < d) {
            CC__SMR_STEP(CC__SMR_STEP_BARRIER_WAIT);
            cc__smr_backoff(&spins);
        }
    }
    return 0;
}

CC_API void cc_smr_idle(void) { cc__smr_release_own(t_rec); }

CC_API cc_smr_snapshot_t cc_smr_stats(void) {
    cc_smr_snapshot_t s;
    memset(&s, 0, sizeof s);
    uint64_t e = epoch_now();
    uint64_t ret = 0, fr = 0;
    for (rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire); o;
         o = rec_next(o)) {
        ret += atomic_load_explicit(&o->pub.retired, memory_order_relaxed);
        fr += atomic_load_explicit(&o->freed, memory_order_relaxed);
        if (atomic_load_explicit(&o->in_use, memory_order_relaxed)) s.threads++;
        uint64_t w = atomic_load_explicit(&o->pub.announce, memory_order_acquire);
        /* (asymmetric mode: a kept announcement of a thread outside any
         * section is not a stall; depth is read relaxed, a statistic) */
        if ((w & ACTIVE) && EPOCH_OF(w) < e &&
            (!g_asymmetric || atomic_load_explicit(&o->pub.depth, memory_order_relaxed) != 0))
            s.stalled_threads++;
    }
    s.retired = ret;
    s.freed = fr > ret ? ret : fr;
    s.pending = ret - s.freed;
    s.epoch = e;
    s.orphaned = atomic_load_explicit(&g_orphan_nodes, memory_order_relaxed);
    cc__smr_update_peak(s.pending);
    s.peak_pending = atomic_load_explicit(&g_peak, memory_order_relaxed);
    s.asymmetric = g_asymmetric;
    s.membarriers = atomic_load_explicit(&g_membarriers, memory_order_relaxed);
    return s;
}
