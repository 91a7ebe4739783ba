/*
 * src/smr_revoke.c -- asymmetric (membarrier) mode: sections enter without a
 * fence, and the store-load ordering moves to the rare side -- revocation of
 * idle threads' kept announcements, and the record lock.
 *
 * Invariants kept here: (I1') and (I2') below -- a kept announcement is
 * revoked only if it is older than the epoch the revoker read before its
 * membarrier and its owner's depth read 0 after it; revocation takes at most
 * ~1/PATIENCE_COSTS of a reclaiming thread's time.
 *
 * ASYMMETRIC MODE (cc_config_set_smr_fence; g_asymmetric, rec->asymmetric)
 * -----------------------------------------------------------
 * The seq_cst exchange of every outermost enter is most of what a section
 * costs (bench/smr/fence_cost: ~6 ns against ~0.4 ns for plain accesses).
 * In this mode a thread KEEPS its announcement (e << 1) | ACTIVE after its
 * section ends, and the store-load ordering moves to the rare side:
 *  enter (outermost): depth = 1 (relaxed store); compiler barrier; load
 *      g_epoch (acquire), own announce, seen_epoch, lock (acquire). If the
 *      kept announcement names the current epoch (and the lock is free) the
 *      section has begun: no fence, no RMW, no store to a shared line.
 *      Otherwise depth = 0 and the slow path re-announces exactly as in the
 *      fencing mode (depth = 1, seq_cst exchange, validation, lock check).
 *  exit (outermost): depth = 0 (release); the announcement stays, unless the
 *      epoch has moved past it (then announce = 0, release, as in fencing
 *      mode: it would only hold back the next advance).
 *  cc_smr_idle(), the barrier and restore_headroom drop the caller's kept
 *      announcement (release store of 0) when it is outside any section.
 * A scanner at epoch e treats a kept announcement of e like an active one
 * (the advance e -> e+1 is allowed). An older kept announcement blocks the
 * advance, as an active one does, until its owner enters again (and
 * re-announces) or somebody REVOKES it (revoke_idle): cc__smr_asym_fence(), i.e.
 * membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED), which makes every running
 * thread execute a full barrier at some point P during the call; then, for
 * each record with an older kept announcement, load depth (acquire) and, if
 * 0, CAS the announcement to 0.
 * (I1') While R is in a section it began on the fast path with kept
 *   announcement a, g_epoch <= a+1. The advance a+1 -> a+2 needs R's
 *   announcement to read as a+1 (R re-announced: its a-section is over) or 0.
 *   It reads 0 only after R's own exit-time or idle release (section over)
 *   or a revocation. A revoker loaded g_epoch == a+1 before its membarrier;
 *   split R's enter at P: if R's store depth = 1 precedes P, the revoker's
 *   later load sees it (or a later exit) and does not revoke this section; if
 *   it follows P, so does R's load of g_epoch, which then sees >= a+1 (the
 *   barrier at P orders it after the revoker's earlier load), so R's fast path
 *   fails and R re-announces with the full barrier of the fencing mode.
 *   Sections begun on the slow path are covered by (I1) unchanged.
 * (I2') I2 becomes: a <= u+1 (not u >= a) when U's section began on the fast
 *   path. U is in its section at u when it unlinks p, so (I1') g_epoch <= u+1
 *   then; if R had read g_epoch >= u+2, that value was written after U's
 *   section ended, so the unlink happens before R's load of g_epoch (acquire
 *   chain through the advances) and before R's pointer load, which then
 *   cannot read the old link. So tag = u+1 >= a, and a bag with tag t is
 *   freed at g_epoch >= t+2 >= a+2: by (I1')/(I1) R has left. Nothing else
 *   in the argument needs more than tag >= a.
 * Bag exclusivity: the owner touches its bags only while depth >= 1; a lock
 *   holder CASes `lock`, runs cc__smr_asym_fence() and waits for depth 0 (acquire),
 *   and the owner's fast enter stores depth = 1 before loading `lock`. By the
 *   same split at P, either the holder sees depth 1 and waits for the exit,
 *   or the owner's lock load follows P and sees the lock (then depth = 0 and
 *   the slow path waits for the unlock). The slow path stores depth = 1
 *   before its exchange, so holders see it there too.
 * Revocation is PACED, because a membarrier costs tens of microseconds here
 * (fence_cost: ~42 us on this VM; a few us on bare metal): a full scan that is
 * blocked by an idle-looking holder (depth 0, a relaxed hint) starts a timer
 * and revokes only once the block has lasted PATIENCE_COSTS (16) average
 * membarrier costs, at least PATIENCE_MIN_NS (20 us). So revocation takes at
 * most ~1/16 of a reclaiming thread's time, whatever the others do. The
 * barrier revokes after a short spin (it waits anyway). One membarrier serves
 * every idle holder found after it. Thread exit drops the record's
 * announcement; fork children inherit the membarrier registration.
 * Under TSan the mode is the same; the orderings TSan must see (release exit
 * of depth -> acquire load by a revoker or holder; re-announcement) are
 * ordinary atomics.
 */
#include <cc/smr.h>

#include "smr_internal.h"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

bool cc__smr_asymmetric;
_Alignas(CC__LAYOUT_LINE) _Atomic uint64_t cc__smr_membarriers;
static _Atomic uint64_t g_membarrier_ns; /* running average cost of a call (ns) */

static int membarrier_cmd(int cmd) { return (int)syscall(__NR_membarrier, cmd, 0, 0); }

/* The asymmetric fence (asymmetric mode only): when it returns, every thread
 * of the process has executed a full memory barrier at some point P during
 * the call, so each thread's accesses are split at P -- those before P are
 * visible to our later loads, those after P see our earlier stores. This is
 * the half of a Dekker pair that readers no longer execute. Registration was
 * done in init_once (and is inherited by fork); should the kernel ever refuse,
 * re-register, and as a last resort use the (slow) global command. */
void cc__smr_asym_fence(void) {
    int saved_errno = errno; /* a refused call below is not the caller's error */
    uint64_t t0 = cc__smr_now_ns();
    if (membarrier_cmd(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
        (membarrier_cmd(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0 ||
         membarrier_cmd(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0) &&
        membarrier_cmd(MEMBARRIER_CMD_GLOBAL) != 0) {
        fprintf(stderr, "concurrent_collections: smr: membarrier(2) failed after it had worked\n");
        abort();
    }
    uint64_t dt = cc__smr_now_ns() - t0;
    /* relaxed: statistics and a pacing hint. Average over ~8 calls. */
    uint64_t avg = atomic_load_explicit(&g_membarrier_ns, memory_order_relaxed);
    atomic_store_explicit(&g_membarrier_ns, avg == 0 ? dt : avg - avg / 8 + dt / 8, memory_order_relaxed);
    atomic_fetch_add_explicit(&g_membarriers, 1, memory_order_relaxed);
    errno = saved_errno;
}

static uint64_t patience_ns(void) {
    uint64_t p = PATIENCE_COSTS * atomic_load_explicit(&g_membarrier_ns, memory_order_relaxed);
    return p > PATIENCE_MIN_NS ? p : PATIENCE_MIN_NS;
}

/* Asymmetric mode: releases the kept announcements older than e of threads
 * that are outside any section. The caller loaded g_epoch == e before calling.
 * After asym_fence (point P in each thread), a thread whose depth we read as 0
 * either entered no section before P -- any later enter loads g_epoch after P,
 * sees >= e, no match with an announcement older than e, and takes the slow
 * path, which re-announces with a full barrier -- or left it before our load.
 * A depth of 1 written before P is visible to us: we skip that thread. The CAS
 * fails if the owner re-announced meanwhile (it never re-announces the old
 * value: its slow path reads g_epoch >= e). acquire on depth pairs with the
 * owner's release exit (its reads are done); acq_rel on the CAS continues
 * that chain to scanners that read 0 (acquire). */
void cc__smr_revoke_idle(uint64_t e) {
    cc__smr_asym_fence();
    CC__SMR_STEP(CC__SMR_STEP_REVOKE_FENCED);
    for (rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire); o;
         o = rec_next(o)) {
        uint64_t w = atomic_load_explicit(&o->pub.announce, memory_order_acquire);
        if (!announce_revocable(w, e)) continue;
#ifndef CC_SMR_BROKEN_REVOKE /* TEST ONLY (scripts/test.sh, negative controls) */
        if (atomic_load_explicit(&o->pub.depth, memory_order_acquire) != 0) continue;
#endif
        CC__SMR_STEP(CC__SMR_STEP_REVOKE_CAS);
        (void)atomic_compare_exchange_strong_explicit(&o->pub.announce, &w, 0, memory_order_acq_rel,
                                                      memory_order_relaxed);
    }
}

/* Asymmetric mode: a full scan is blocked at epoch e by o, which keeps an
 * older announcement. Revoke it if o looks idle (depth 0, a hint) and the
 * block has lasted the patience. Returns true if o no longer blocks. */
bool cc__smr_maybe_revoke(rec_t *r, rec_t *o, uint64_t e) {
#ifndef CC_SMR_BROKEN_REVOKE
    if (atomic_load_explicit(&o->pub.depth, memory_order_relaxed) != 0) return false; /* in a section */
#endif
    uint64_t now = cc__smr_now_ns();
    if (r->blocked_epoch != e) {
        r->blocked_epoch = e;
        r->blocked_since = now;
        return false;
    }
    if (now - r->blocked_since < patience_ns()) return false;
    cc__smr_revoke_idle(e);
    uint64_t w = atomic_load_explicit(&o->pub.announce, memory_order_acquire);
    return !announce_blocks_advance(w, e);
}

/* The caller is outside any section: in asymmetric mode, drop its own kept
 * announcement so that it does not hold back the epoch it is about to wait
 * for. release: its earlier sections' reads happen before a scanner that
 * reads 0. (A revoker's concurrent CAS also writes 0.) */
void cc__smr_release_own(rec_t *r) {
    if (r->pub.asymmetric && cc__smr_depth(&r->pub) == 0) /* (the unregistered stand-in: asymmetric 0) */
        atomic_store_explicit(&r->pub.announce, 0, memory_order_release);
}

/* Asymmetric mode needs MEMBARRIER_CMD_PRIVATE_EXPEDITED (Linux 4.14), and
 * registering for it. One call is made here, which both proves it works and
 * seeds the cost average that paces revocation. */
bool cc__smr_choose_asymmetric(cc_smr_fence_t want) {
    if (want == CC_SMR_FENCE_ALWAYS) return false;
    int cmds = membarrier_cmd(MEMBARRIER_CMD_QUERY);
    bool ok = cmds > 0 && (cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) &&
              membarrier_cmd(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0 &&
              membarrier_cmd(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0;
    if (!ok) {
        if (want == CC_SMR_FENCE_MEMBARRIER)
            fprintf(stderr, "concurrent_collections: smr: membarrier(2) private expedited is not "
                            "available; every section will fence (mode 'always')\n");
        return false;
    }
    cc__smr_asym_fence(); /* seeds g_membarrier_ns; counted like any other */
    return true;
}

#ifdef CC_SMR_TEST_HOOKS
/* TEST ONLY (src/smr_internal.h): one revocation pass as a reclaimer runs it. */
CC_API void cc__smr_revoke_idle_now(void) {
    (void)get_rec();
    if (g_asymmetric) cc__smr_revoke_idle(epoch_now());
}
#endif
