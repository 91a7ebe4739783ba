/*
 * src/smr_registry.c -- thread records: registration, the record lock that
 * gives a barrier or an exiting owner the bags, thread exit, fork.
 *
 * Invariants kept here: records are appended to the registry and never freed
 * or unlinked (a traversal needs no protection); a record is in use by at most
 * one thread; a lock holder and an ACTIVE owner never touch the bags at the
 * same time; a record handed to a new thread has empty bags, an empty free
 * queue and no announcement.
 *
 * EXCLUSIVE ACCESS TO THE BAGS
 * ----------------------------
 * The owner touches its bags only while ACTIVE (inside a user or internal
 * section). A barrier (or the exiting owner) takes the record's `lock` word
 * (CAS 0 -> 1), executes a seq_cst fence, then waits until announce is not
 * ACTIVE, holding the lock. The owner's enter exchanges announce (seq_cst),
 * then loads `lock` (seq_cst): a store-buffering (Dekker) pair, seq_cst on
 * both sides, so at least one sees the other. If the owner sees the lock it
 * stores announce = 0 and waits for lock == 0 before retrying; if it does not, the
 * holder sees it ACTIVE and waits for its exit. If the holder's last load
 * read the owner's exit store (or an earlier quiescent value), any later
 * announce by the owner comes after it in the announce word's modification
 * order, so by the fence rule the holder's fence precedes the owner's and the
 * owner's load sees the lock. So holder and an ACTIVE owner never overlap,
 * and holding the lock while waiting cannot deadlock (an owner that saw it
 * is quiescent, one that did not will leave its section).
 */
#include <cc/smr.h>

#include "smr_internal.h"

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
pthread_mutex_t cc__smr_lock = PTHREAD_MUTEX_INITIALIZER;
_Atomic(rec_t *) cc__smr_head;
static rec_t *g_tail; /* under g_lock */
/* The calling thread's record: one pointer of initial-exec TLS. */
CC_API cc__smr_rec_t cc__smr_unregistered; /* all zero: see <cc/smr.h> */
CC_API __thread cc__smr_rec_t *cc__smr_self CC__TLS_IE = &cc__smr_unregistered;

static void thread_exit(void *arg);

static void atfork_prepare(void) { pthread_mutex_lock(&g_lock); }

static void atfork_parent(void) { pthread_mutex_unlock(&g_lock); }

/* In the child only the forking thread exists: every other record belongs to a
 * thread that is gone. Orphan their bags and mark them free and quiescent
 * (dropping any LOCK a barrier held), so the epoch can advance in the child. */
static void atfork_child(void) {
    pthread_mutex_init(&g_lock, NULL);
    rec_t *me = t_rec, *dead = NULL;
    for (rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire); o;
         o = rec_next(o)) {
        atomic_store_explicit(&o->pub.lock, 0, memory_order_relaxed); /* a barrier's, gone */
        if (o == me) continue;
        /* Frees that thread had queued cannot run here (src/smr_limbo.c). */
        cc__smr_drop_queues_in_child(o);
        if (atomic_load_explicit(&o->in_use, memory_order_relaxed)) {
            /* Its bags go to the orphan list, which the child's polls and
             * barrier free (counted there). */
            cc__smr_orphan_bags_locked(o);
            atomic_store_explicit(&o->in_use, 0, memory_order_relaxed);
        }
        atomic_store_explicit(&o->pub.announce, 0, memory_order_relaxed);
        cc__smr_set_depth(&o->pub, 0); /* asymmetric mode waits on depth */
        dead = o;
    }
    /* The counters of gone threads need not match their chunks (they may
     * have stopped anywhere): reconcile the totals with what the child holds,
     * then mark their bags empty (out_of_bags = retired). */
    cc__smr_reconcile_in_child(registered(&me->pub) ? me : NULL, dead);
    for (rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire); o; o = rec_next(o))
        if (o != me)
            atomic_store_explicit(&o->out_of_bags, atomic_load_explicit(&o->pub.retired, memory_order_relaxed),
                                  memory_order_relaxed);
}

static void init_once(void) {
    if (pthread_key_create(&g_key, thread_exit) != 0) {
        fprintf(stderr, "concurrent_collections: smr: pthread_key_create failed\n");
        abort();
    }
    cc__smr_limbo_init();
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    /* Applies the environment, so the retire pacing (grant_budget,
     * retire_step) may read the setting directly. */
    (void)cc_config_retire_threshold();
    g_asymmetric = cc__smr_choose_asymmetric(cc__config_smr_fence_freeze());
}

rec_t *cc__smr_register_thread(void) {
    /* The caller's errno survives registration: the first SMR use may probe
     * membarrier(2), which fails with EPERM under seccomp or gVisor, and
     * malloc may fail; neither is the caller's error (an empty pop, for
     * one, must leave errno alone). */
    int saved_errno = errno;
    pthread_once(&g_once, init_once);
    pthread_mutex_lock(&g_lock);
    rec_t *r = NULL;
    for (rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire); o;
         o = rec_next(o)) {
        if (!atomic_load_explicit(&o->in_use, memory_order_relaxed)) {
            r = o;
            break;
        }
    }
    if (r == NULL) {
        r = aligned_alloc(_Alignof(rec_t), sizeof *r); /* rec_t's alignment is its pub's */
        if (r == NULL) {
            pthread_mutex_unlock(&g_lock);
            fprintf(stderr, "concurrent_collections: smr: out of memory registering a thread\n");
            abort();
        }
        memset((void *)r, 0, sizeof *r);
        r->spare.home = r;
        atomic_init(&r->spare_free, 1);
        atomic_init(&r->pub.announce, 0);
        atomic_init(&r->pub.lock, 0);
        atomic_init(&r->pub.next, NULL);
        atomic_init(&r->in_use, 1);
        /* release: a traversal that finds r sees it initialised. */
        if (g_tail) atomic_store_explicit(&g_tail->pub.next, &r->pub, memory_order_release);
        else atomic_store_explicit(&g_head, r, memory_order_release);
        g_tail = r;
        /* seq_cst: the publication is ordered before this thread's first
         * announcement (its exchange) in S, so a scanner whose traversal
         * missed r (it read the old link, after its own fence) precedes that
         * announcement in S -- step 1 of (I1), src/smr_epoch.c. A release
         * store and an exchange on another location do not give that. */
        sc_fence();
    } else {
        atomic_store_explicit(&r->in_use, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&g_lock);
    /* A barrier may hold the lock right now; the owner's first enter (slow
     * path: seen_epoch 0 never matches) waits for it. */
    cc__smr_set_depth(&r->pub, 0);
    r->pub.asymmetric = g_asymmetric;
    r->pub.exit_work = 0;
    r->pub.seen_epoch = 0;
    r->need_headroom = false;
    r->scan_valid = false;
    r->since_trigger = 0;
    r->blocked_epoch = 0;
    r->budget_granted = 0;
    r->pub.retire_budget = 0;
    cc__smr_grant_budget(r);
    r->pub.fill_bag = &r->bags[0];
    r->pub.fill_tag = 0; /* never a tag (tags are announced epochs + 1 >= 1) */
    while (r->ncache < 2) { /* the preallocated spares */
        chunk_t *c = cc__smr_new_chunk();
        if (!c) break;
        c->next = r->cache;
        r->cache = c;
        r->ncache++;
    }
    cc__smr_self = &r->pub;
    pthread_setspecific(g_key, r);
    errno = saved_errno;
    return r;
}

/* Exclusive access to a quiescent record's bags (barrier, exiting owner).
 * Takes the record's lock word, then (Dekker, with the owner's enter: store
 * announce; fence; load lock) waits until the owner is quiescent. Holding the
 * lock while waiting is safe: an owner inside a section will leave it, and an
 * owner that saw the lock in its enter stores quiescent and waits (below).
 * Asymmetric mode: the owner's side is "store depth = 1; load lock" with no
 * fence, so ours is cc__smr_asym_fence() and we wait for depth 0 (acquire: pairs with
 * the owner's release exit). The exiting owner locking its own record skips
 * both (it is outside any section, in program order). */
void cc__smr_lock_record(rec_t *o) {
    unsigned spins = 0;
    while (!cc__smr_try_lock_word(o)) cc__smr_backoff(&spins);
    if (o == t_rec) return;
    CC__SMR_STEP(CC__SMR_STEP_LOCK_WAIT);
    cc__smr_lock_fence();
    while (!cc__smr_owner_quiescent(o)) cc__smr_backoff(&spins);
}

/* The pieces of cc__smr_lock_record, for a barrier that takes several lock
 * words and then issues ONE fence for all of them (in asymmetric mode one
 * membarrier instead of one per record). The handshake is per record --
 * "take o's lock word; fence; load o's owner state" against the owner's
 * "store depth = 1 (or announce); load lock" -- and one fence after several
 * lock words serves each of them. */

/* CAS 0 -> 1, acquire: pairs with the previous holder's release unlock (we
 * see what it did to the bags). The relaxed pre-check is a hint. */
bool cc__smr_try_lock_word(rec_t *o) {
    uint32_t z = 0;
    return atomic_load_explicit(&o->pub.lock, memory_order_relaxed) == 0 &&
           atomic_compare_exchange_strong_explicit(&o->pub.lock, &z, 1, memory_order_acquire,
                                                   memory_order_relaxed);
}

/* The holder's fence of the handshake. */
void cc__smr_lock_fence(void) {
    if (g_asymmetric) cc__smr_asym_fence();
    else sc_fence();
}

/* After the fence: whether o's owner is outside any section, so that the
 * holder may touch its bags. acquire: pairs with the owner's release exit
 * (its section's reads and bag writes happen before). */
bool cc__smr_owner_quiescent(rec_t *o) {
    if (g_asymmetric) return atomic_load_explicit(&o->pub.depth, memory_order_acquire) == 0;
    return !(atomic_load_explicit(&o->pub.announce, memory_order_acquire) & ACTIVE);
}

void cc__smr_unlock_record(rec_t *o) { atomic_store_explicit(&o->pub.lock, 0, memory_order_release); }

static void thread_exit(void *arg) {
    rec_t *r = arg;
    CC__SMR_STEP(CC__SMR_STEP_THREAD_EXIT);
    /* Leave any section the thread exited inside (the flush's free functions
     * may retire, which needs depth 0), run the last frees, then drop the
     * announcement -- after the flush, since a free function that retired
     * re-announced, and asymmetric mode keeps that: the record must not hold
     * back the epoch once its thread is gone. release: as the exit store. */
    cc__smr_set_depth(&r->pub, 0);
    cc__smr_flush_interrupted(r);
    cc__smr_flush(r);
    atomic_store_explicit(&r->pub.announce, 0, memory_order_release);
    cc__smr_lock_record(r);
    /* Owner fields first: once in_use drops (under g_lock) a new thread may
     * claim the record and write them; g_lock orders our writes before its. */
    while (r->cache) {
        chunk_t *c = r->cache;
        r->cache = c->next;
        free(c);
    }
    r->ncache = 0;
    r->scan_valid = false;
    cc__smr_self = &cc__smr_unregistered;
    pthread_mutex_lock(&g_lock);
    cc__smr_orphan_bags_locked(r);
    atomic_store_explicit(&r->in_use, 0, memory_order_relaxed);
    pthread_mutex_unlock(&g_lock);
    /* Unlock last: a new owner's first enter waits for it. */
    cc__smr_unlock_record(r);
}
