/*
 * Epoch-based safe memory reclamation in the style of DEBRA (Brown, PODC 2015).
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
 *    seen_epoch) is on the next line, which no other thread touches.
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
 *                     became safe (freed after the section). No RMW, and no
 *                     write to a line another thread writes.
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
 * (I1) While thread R is ACTIVE with announced epoch a, g_epoch <= a+1.
 *   The advance a+1 -> a+2 is done by a scanner that loaded g_epoch == a+1,
 *   then executed a seq_cst fence Z, then loaded R's announce word. If it read
 *   R's announcement (a, ACTIVE) it does not advance. If it read a value older
 *   than that announcement (or missed R's record in the registry, whose
 *   publication precedes R's announcement), then by the C11 fence rule (a load
 *   coherence-ordered before a seq_cst write, with a seq_cst fence before the
 *   load) Z precedes R's announcement X in the seq_cst order S, and R's
 *   seq_cst validation load follows X in S; had it read an epoch older than
 *   the scanner's a+1, it would precede Z in S (a seq_cst load coherence-
 *   ordered before a load that happens before Z). So it sees g_epoch >= a+1
 *   != a and R would have re-announced: contradiction. Otherwise it read R's
 *   exit store or later, i.e. R's section ended. (R's side is one seq_cst
 *   exchange and one seq_cst load; under TSan a store + fence.)
 * (I2) If R, in a section announcing a, loaded a pointer to node p before p was
 *   unlinked, and U retires p in a section announcing u (tag u+1), then a <= u+1.
 *   Same seq_cst rule: R's pointer load is coherence-ordered before the
 *   unlink, R's announcement precedes it and U's announcement follows it (the
 *   unlink happens before U's retire, and U's announcement is validated by a
 *   seq_cst load after its exchange), so
 *   U's validation load sees at least the value R read: u >= a. (Also when U
 *   unlinked inside its section.) Hence tag = u+1 >= a+1 > a.
 * Freeing a bag with tag t requires g_epoch >= t+2 >= a+2 for every reader
 * that could hold a node of it, which by (I1) means each such reader has left
 * that section. The chain of happens-before is: reader's exit store (release)
 * -> scanner's load of the announce word (acquire) -> epoch CAS (acq_rel) ->
 * reclaimer's load of g_epoch (acquire) -> free_fn. A later section of the
 * same reader cannot reach p: it starts after p was unlinked (else a' <= tag by
 * I2 again and the bag would not be safe either).
 * The scan step in retire and the full scans keep the precondition of (I1):
 * the scanner loaded g_epoch == e before a seq_cst fence that precedes its
 * loads of announce words (the step in retire_step loads g_epoch and
 * fences itself; help() and advance_to() do the same).
 * The store-load ordering in enter (announce, then load shared pointers) is
 * exactly the one acquire/release cannot give: hence the seq_cst exchange
 * (design.md "Traps": a seq_cst fence or a seq_cst exchange). The section's
 * pointer loads come after the seq_cst validation load (acquire), which
 * comes after the exchange in S; on x86 the exchange is `xchg`, a full
 * barrier, one locked instruction instead of a store plus a fence (as
 * ck_epoch_begin does on TSO targets). Scanners keep real seq_cst fences.
 * Under TSan (which does not model fences) the announcement is a store plus
 * a seq_cst RMW on cc__smr_tsan_fence.
 *
 * ASYMMETRIC MODE (cc_config_set_smr_fence; g_hold, rec->hold)
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
 * re-announces) or somebody REVOKES it (revoke_idle): asym_fence(), i.e.
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
 *   holder CASes `lock`, runs asym_fence() and waits for depth 0 (acquire),
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
 *
 * WHY EVERY RETIRED NODE IS EVENTUALLY FREED
 * ------------------------------------------
 * The epoch advances whenever every ACTIVE thread has announced the current
 * epoch, which happens as soon as each thread leaves (or re-enters) its section.
 * A bag is freed (a) by its owner at its next enter that sees a new epoch, at
 * its next threshold trigger, or its next poll, or (b) by cc_smr_barrier(),
 * which advances the epoch itself (waiting for sections to end) and frees the
 * bags of EVERY record -- including threads that are idle outside sections and
 * may never call SMR again -- under the record's lock (above), or (c) after the
 * owner exits: its pthread-key destructor moves its bags to the global orphan
 * list (each chunk carries its tag), which polls, threshold triggers and the
 * barrier drain once safe.
 * Bookkeeping allocation never drops a node. When a retire needs a chunk it
 * tries, in order: its cached chunks (two preallocated per record), malloc,
 * freeing its own safe bags to recycle their chunks, the record's built-in
 * spare chunk, a static reserve shared by all threads. If the last of these
 * was used inside a section, `need_headroom` makes the outermost exit restore
 * a cached chunk or the spare (malloc, or wait -- outside any section -- until
 * its oldest bag is safe and free it). So every outermost section starts with
 * a chunk in hand and a section that retires up to one chunk (62 nodes) never
 * fails, whatever malloc does. If everything fails outside a user section the
 * node is freed synchronously after the epoch passes it; only a single user
 * section that retires more than a chunk plus the reserve while malloc fails
 * aborts with a message. tests/smr/test_smr_chunk_fail.c fails malloc for
 * every chunk (hook: src/smr_internal.h) and checks that every node is freed
 * exactly once.
 *
 * MEMORY BOUND
 * ------------
 * While all threads make progress (each section ends within the time a thread
 * takes to do `threshold` retires), every threshold trigger advances the epoch,
 * a thread holds at most three bags (tags a-1, a, a+1) of about `threshold`
 * nodes each, so pending <= ~3 x threads x threshold (+ orphans, which are
 * drained by the next trigger or poll). A single section that retires k nodes
 * holds those k itself. tests/smr/test_smr_stress.c checks the bound.
 * Asymmetric mode: "progress" also means that a thread that stops using SMR
 * for a while says so (cc_smr_idle(), or by leaving after the epoch moved);
 * one that does not holds the epoch back for at most the patience (above)
 * before it is revoked, which adds the nodes retired meanwhile to the bound.
 * The stress test calls cc_smr_idle() before its round barrier and checks the
 * same bound in both modes.
 *
 * A STALLED READER
 * ----------------
 * A thread that stays inside a section announcing a pins g_epoch <= a+1
 * (I1): nothing retired from then on can be freed, by anyone, until it leaves;
 * pending grows without bound and cc_smr_barrier() waits for it. cc_smr_stats()
 * shows it: `stalled_threads` counts ACTIVE records whose announcement is
 * behind g_epoch (they block the next advance; normal threads show up only
 * briefly), and `pending` keeps growing. A later issue bounds this (IBR).
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
 *  rec->retired/freed/unbagged
 *                     statistics: relaxed load+store by the single writer
 *                     (the owner, or the lock holder for `unbagged`), relaxed
 *                     loads by stats. Exact once threads are quiescent. One
 *                     exception: the store that raises `unbagged` in a detach
 *                     is release and the barrier's load of it acquire (the
 *                     detach's `detached` count is then visible).
 *  rec->detached      relaxed (single writer: the owner, or under g_lock).
 *  rec->flushed       store release after the frees it counts, loaded acquire
 *                     by the barrier, which waits until flushed >= detached.
 *  rec->spare_free    store 1 release by whoever freed the spare chunk's nodes
 *                     (its reads of the chunk happen before the owner reuses
 *                     it); owner's load acquire when taking it, store 0
 *                     relaxed (owner only); relaxed in has_headroom (a hint).
 *  g_orphan_nodes     relaxed: written under g_lock, read as a hint/statistic.
 *  g_peak             relaxed CAS-max: a statistic.
 *  g_chunk_fail_every/count  relaxed: a test hook's counters.
 *  cc__smr_tsan_fence seq_cst RMW (TSan builds only): stands for the fence.
 *  Plain fields (exit_work, seen_epoch, hold, need_headroom, since_trigger, bags,
 *  cache, to_free, ...) are owner-only, or handed over under the lock.
 */
#include <cc/smr.h>

#include "config_internal.h"
#include "smr_internal.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

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
    chunk_t *to_free;       /* detached safe chunks, freed after the section */
    chunk_t *freeing;       /* the chunks flush() is freeing now; entries below */
    uint32_t free_pos;      /*   free_pos of the first have had their free function called */
    bool flushing;          /* running free functions (no nested flush) */
    /* Bags: owner while ACTIVE, or whoever holds LOCK. */
    bag_t bags[3];
    /* Statistics (see the ordering table). */
    _Atomic uint64_t unbagged; /* nodes that left the bags (detached, orphaned, or
                                  freed synchronously); in the bags: retired - unbagged */
    _Atomic uint64_t freed;
    _Atomic int in_use;     /* under g_lock */
    /* Nodes moved to to_free / freed from it, ever (single writer: the owner;
     * under g_lock for orphans). A barrier waits until flushed >= detached. */
    _Atomic uint64_t detached;
    _Atomic uint64_t flushed;
    /* Built-in spare chunk (never malloc'ed, never freed): the last resort of
     * a retire inside a section when malloc fails. spare_free: 1 while it is
     * not in any bag (set by whoever frees its nodes, release; taken by the
     * owner, acquire). need_headroom: the owner used its last spare chunk
     * inside a section; its outermost exit restores one (restore_headroom). */
    _Atomic int spare_free;
    bool need_headroom;
    chunk_t spare;
} rec_t;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* registry, orphans, reserve */
/* The global epoch, alone on its cache line (read by every enter). */
_Alignas(CC_CACHE_LINE_SIZE) CC_API _Atomic uint64_t cc__smr_epoch = 1;
#define g_epoch cc__smr_epoch
static _Atomic(rec_t *) g_head;
static rec_t *g_tail;                /* under g_lock */
static chunk_t *g_orphans;           /* under g_lock */
/* Written now and then; kept off g_epoch's line. */
_Alignas(CC_CACHE_LINE_SIZE) static _Atomic uint64_t g_orphan_nodes;
_Alignas(CC_CACHE_LINE_SIZE) static _Atomic uint64_t g_peak;
static chunk_t g_reserve[RESERVE_CHUNKS];
static chunk_t *g_reserve_free;      /* under g_lock */
/* The calling thread's record: one pointer of initial-exec TLS. */
CC_API cc__smr_rec_t cc__smr_unregistered; /* all zero: see <cc/smr.h> */
CC_API __thread cc__smr_rec_t *cc__smr_self CC__TLS_IE = &cc__smr_unregistered;
#define t_rec ((rec_t *)cc__smr_self)
/* Defined in every build, so code built with TSan links against any build. */
CC_API _Atomic uint64_t cc__smr_tsan_fence;
/* Asymmetric mode (fixed in init_once, before any record exists), the number
 * of membarrier calls, and their running average cost (ns). */
static bool g_hold;
_Alignas(CC_CACHE_LINE_SIZE) static _Atomic uint64_t g_membarriers;
static _Atomic uint64_t g_membarrier_ns;
#ifdef CC_SMR_TEST_HOOKS /* TEST ONLY: see CC__SMR_STEP in <cc/smr.h> */
CC_API _Atomic(cc__smr_step_hook_t) cc__smr_step_hook;
#endif
/* Test hook (src/smr_internal.h): every n-th limbo chunk allocation fails. */
static _Atomic uint64_t g_chunk_fail_every;
static _Atomic uint64_t g_chunk_fail_count;

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

/* Marks whether the outermost exit has work: frees to run (r->to_free) or a
 * spare chunk to restore. */
static inline void note_work(rec_t *r) { r->pub.exit_work = r->to_free != NULL || r->need_headroom; }

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
 * asym_fence(), then loaded w. The argument needs "older": a thread whose
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

static void backoff(unsigned *spins) {
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

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int membarrier_cmd(int cmd) { return (int)syscall(__NR_membarrier, cmd, 0, 0); }

/* The asymmetric fence (asymmetric mode only): when it returns, every thread
 * of the process has executed a full memory barrier at some point P during
 * the call, so each thread's accesses are split at P -- those before P are
 * visible to our later loads, those after P see our earlier stores. This is
 * the half of a Dekker pair that readers no longer execute. Registration was
 * done in init_once (and is inherited by fork); should the kernel ever refuse,
 * re-register, and as a last resort use the (slow) global command. */
static void asym_fence(void) {
    int saved_errno = errno; /* a refused call below is not the caller's error */
    uint64_t t0 = now_ns();
    if (membarrier_cmd(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0 &&
        (membarrier_cmd(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0 ||
         membarrier_cmd(MEMBARRIER_CMD_PRIVATE_EXPEDITED) != 0) &&
        membarrier_cmd(MEMBARRIER_CMD_GLOBAL) != 0) {
        fprintf(stderr, "concurrent_collections: smr: membarrier(2) failed after it had worked\n");
        abort();
    }
    uint64_t dt = now_ns() - t0;
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
static void revoke_idle(uint64_t e) {
    asym_fence();
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

/* The caller is outside any section: in asymmetric mode, drop its own kept
 * announcement so that it does not hold back the epoch it is about to wait
 * for. release: its earlier sections' reads happen before a scanner that
 * reads 0. (A revoker's concurrent CAS also writes 0.) */
static void release_own(rec_t *r) {
    if (r->pub.hold && cc__smr_depth(&r->pub) == 0) /* (the unregistered stand-in: hold 0) */
        atomic_store_explicit(&r->pub.announce, 0, memory_order_release);
}

static inline bool special_chunk(const chunk_t *c) {
    return c->home != NULL || (c >= g_reserve && c < g_reserve + RESERVE_CHUNKS);
}

static void free_chunk_storage(chunk_t *c) {
    if (c->home != NULL) {
        c->next = NULL;
        /* release: our reads of its entries happen before the owner reuses it. */
        atomic_store_explicit(&((rec_t *)c->home)->spare_free, 1, memory_order_release);
    } else if (c >= g_reserve && c < g_reserve + RESERVE_CHUNKS) {
        pthread_mutex_lock(&g_lock);
        c->next = g_reserve_free;
        g_reserve_free = c;
        pthread_mutex_unlock(&g_lock);
    } else {
        free(c);
    }
}

/* A chunk whose entries have all been freed: recycle it into r's cache. */
static void recycle_chunk(rec_t *r, chunk_t *c) {
    c->count = 0;
    if (r->ncache < CACHE_MAX && !special_chunk(c)) {
        c->next = r->cache;
        r->cache = c;
        r->ncache++;
    } else {
        free_chunk_storage(c);
    }
}

/* Counts one entry of r->freeing as freed: `freed` (a statistic) and
 * `flushed` -- release: the free function's effects happen before a barrier
 * that sees the count (it waits until flushed >= detached). */
static inline void count_flushed(rec_t *r) {
    bump(&r->freed, 1);
    atomic_store_explicit(&r->flushed, atomic_load_explicit(&r->flushed, memory_order_relaxed) + 1,
                          memory_order_release);
}

/* Detaches the bags of r that are safe at epoch `e` (tag + 2 <= e) and appends
 * them to *out. Caller is the owner while ACTIVE, or holds r's LOCK. When the
 * chunks go to a to_free list, `detached` is that list's counter: it is bumped
 * before `unbagged` grows (release), so a barrier that reads the higher
 * `unbagged` (acquire) also sees the nodes as in flight. */
static void detach_safe(rec_t *r, uint64_t e, chunk_t **out, _Atomic uint64_t *detached) {
    for (int i = 0; i < 3; i++) {
        bag_t *b = &r->bags[i];
        if (b->head == NULL || b->tag + 2 > e) continue;
        chunk_t *last = b->head;
        uint64_t n = last->count;
        while (last->next) {
            last = last->next;
            n += last->count;
        }
        last->next = *out;
        *out = b->head;
        if (detached) bump(detached, (int64_t)n);
        atomic_store_explicit(&r->unbagged, atomic_load_explicit(&r->unbagged, memory_order_relaxed) + n,
                              memory_order_release);
        b->head = NULL;
    }
}

/* Moves r's safe bags to r->to_free (r is ACTIVE); they are freed by flush(),
 * normally right after the section ends, so that free functions do not
 * lengthen critical sections (a long section delays everyone's reclamation). */
static void reclaim_own(rec_t *r, uint64_t e) {
    detach_safe(r, e, &r->to_free, &r->detached);
    note_work(r);
}

/* Runs the free functions of r->to_free. Not re-entrant: a free function that
 * retires and so detaches more chunks leaves them to the running loop. The
 * list being freed and the position in it live in the record (freeing,
 * free_pos), not on the stack: a thread that exits inside a free function
 * (pthread_exit, cancellation) leaves them where thread_exit() finds them and
 * finishes the job (flush_interrupted), so nothing is lost and the record is
 * clean for its next owner. */
static size_t flush(rec_t *r) {
    if (r->flushing) return 0;
    r->flushing = true;
    size_t n = 0;
    for (;;) {
        if (r->freeing == NULL) {
            r->freeing = r->to_free;
            r->to_free = NULL;
            r->free_pos = 0;
            if (r->freeing == NULL) break;
        }
        chunk_t *c = r->freeing;
        while (r->free_pos < c->count) {
            entry_t *e = &c->e[r->free_pos++]; /* past it before the call: see above */
            CC__SMR_STEP(CC__SMR_STEP_FREE);
            if (e->fn) e->fn(e->node, e->size);
            else cc_free(e->node, e->size);
            count_flushed(r);
            n++;
        }
        r->freeing = c->next;
        r->free_pos = 0;
        recycle_chunk(r, c);
    }
    r->flushing = false;
    note_work(r);
    return n;
}

/* thread_exit(): the thread ended inside a free function that flush() called
 * (r->flushing). That entry's free function ran as far as it chose to: count
 * it, then the next flush() goes on after it. */
static void flush_interrupted(rec_t *r) {
    if (!r->flushing) return;
    if (r->freeing != NULL && r->free_pos > 0) count_flushed(r);
    r->flushing = false;
}

/* Moves the orphan chunks that are safe at epoch e to r->to_free. */
static void take_orphans(rec_t *r, uint64_t e, bool block) {
    if (atomic_load_explicit(&g_orphan_nodes, memory_order_relaxed) == 0) return;
    if (block) pthread_mutex_lock(&g_lock);
    else if (pthread_mutex_trylock(&g_lock) != 0) return;
    chunk_t *keep = NULL, *take = r->to_free, *c = g_orphans;
    uint64_t n = 0;
    while (c) {
        chunk_t *next = c->next;
        if (c->tag + 2 <= e) {
            c->next = take;
            take = c;
            n += c->count;
        } else {
            c->next = keep;
            keep = c;
        }
        c = next;
    }
    g_orphans = keep;
    bump(&r->detached, (int64_t)n);
    atomic_store_explicit(&g_orphan_nodes,
                          atomic_load_explicit(&g_orphan_nodes, memory_order_relaxed) - n,
                          memory_order_relaxed);
    pthread_mutex_unlock(&g_lock);
    r->to_free = take;
    note_work(r);
}

/* Moves all of r's bags to the orphan list and returns how many nodes moved.
 * Caller holds g_lock and excludes other users of r's bags. The nodes are
 * counted from the chunks: in a forked child, r may belong to a thread that
 * stopped between appending an entry and counting it in `retired`, and the
 * chunks' counts are what will actually be freed. */
static uint64_t orphan_bags_locked(rec_t *r) {
    uint64_t moved = 0;
    for (int i = 0; i < 3; i++) {
        bag_t *b = &r->bags[i];
        chunk_t *c = b->head;
        uint64_t n = 0;
        while (c) {
            chunk_t *next = c->next;
            n += c->count;
            c->tag = b->tag;
            c->next = g_orphans;
            g_orphans = c;
            c = next;
        }
        if (n != 0)
            atomic_store_explicit(&g_orphan_nodes,
                                  atomic_load_explicit(&g_orphan_nodes, memory_order_relaxed) + n,
                                  memory_order_relaxed);
        bump(&r->unbagged, (int64_t)n);
        b->head = NULL;
        moved += n;
    }
    return moved;
}

/* ---- epoch advance ---------------------------------------------------------- */

/* Asymmetric mode: a full scan is blocked at epoch e by o, which keeps an
 * older announcement. Revoke it if o looks idle (depth 0, a hint) and the
 * block has lasted the patience. Returns true if o no longer blocks. */
static bool maybe_revoke(rec_t *r, rec_t *o, uint64_t e) {
#ifndef CC_SMR_BROKEN_REVOKE
    if (atomic_load_explicit(&o->pub.depth, memory_order_relaxed) != 0) return false; /* in a section */
#endif
    uint64_t now = now_ns();
    if (r->blocked_epoch != e) {
        r->blocked_epoch = e;
        r->blocked_since = now;
        return false;
    }
    if (now - r->blocked_since < patience_ns()) return false;
    revoke_idle(e);
    uint64_t w = atomic_load_explicit(&o->pub.announce, memory_order_acquire);
    return !announce_blocks_advance(w, e);
}

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
        if (announce_blocks_advance(w, e) && !(full && g_hold && maybe_revoke(r, o, e)))
            return; /* blocked by o; retry later */
        r->scan_pos = rec_next(o);
    }
}

/* ---- registration --------------------------------------------------------- */

static void thread_exit(void *arg);
static size_t flush(rec_t *r);
static void restore_headroom(rec_t *r);
static void grant_budget(rec_t *r);

static void atfork_prepare(void) { pthread_mutex_lock(&g_lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&g_lock); }
/* In the child only the forking thread exists: every other record belongs to a
 * thread that is gone. Orphan their bags and mark them free and quiescent
 * (dropping any LOCK a barrier held), so the epoch can advance in the child. */
static void atfork_child(void) {
    pthread_mutex_init(&g_lock, NULL);
    rec_t *me = t_rec;
    for (rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire); o;
         o = rec_next(o)) {
        atomic_store_explicit(&o->pub.lock, 0, memory_order_relaxed); /* a barrier's, gone */
        if (o == me) continue;
        /* Frees that thread had in flight cannot finish here: leak them
         * (the child's copy) rather than wait for them forever, and count
         * them as freed so that they are not pending for ever. */
        uint64_t detached = atomic_load_explicit(&o->detached, memory_order_relaxed);
        uint64_t flushed = atomic_load_explicit(&o->flushed, memory_order_relaxed);
        if (detached > flushed) bump(&o->freed, (int64_t)(detached - flushed));
        atomic_store_explicit(&o->flushed, detached, memory_order_relaxed);
        o->to_free = NULL;
        o->freeing = NULL;
        o->free_pos = 0;
        o->flushing = false;
        if (atomic_load_explicit(&o->in_use, memory_order_relaxed)) {
            /* Its bags go to the orphan list, which the child's polls and
             * barrier free (counted there). `retired` and `freed` only grow:
             * they are what happened in the parent. That thread may have
             * stopped between appending an entry and counting it (the
             * chunks hold more than retired - unbagged): count it retired.
             * Or between moving chunks to its to_free list and counting them
             * unbagged: those are leaked above, count them freed. */
            orphan_bags_locked(o); /* unbagged += the nodes it held */
            uint64_t retired = atomic_load_explicit(&o->pub.retired, memory_order_relaxed);
            uint64_t unbagged = atomic_load_explicit(&o->unbagged, memory_order_relaxed);
            if (unbagged > retired) atomic_store_explicit(&o->pub.retired, unbagged, memory_order_relaxed);
            else if (unbagged < retired) {
                bump(&o->freed, (int64_t)(retired - unbagged));
                atomic_store_explicit(&o->unbagged, retired, memory_order_relaxed);
            }
            atomic_store_explicit(&o->in_use, 0, memory_order_relaxed);
        }
        atomic_store_explicit(&o->pub.announce, 0, memory_order_relaxed);
        cc__smr_set_depth(&o->pub, 0); /* asymmetric mode waits on depth */
    }
}

/* Asymmetric mode needs MEMBARRIER_CMD_PRIVATE_EXPEDITED (Linux 4.14), and
 * registering for it. One call is made here, which both proves it works and
 * seeds the cost average that paces revocation. */
static bool choose_hold(cc_smr_fence_t want) {
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
    asym_fence(); /* seeds g_membarrier_ns; counted like any other */
    return true;
}

static void init_once(void) {
    if (pthread_key_create(&g_key, thread_exit) != 0) {
        fprintf(stderr, "concurrent_collections: smr: pthread_key_create failed\n");
        abort();
    }
    for (unsigned i = 0; i < RESERVE_CHUNKS; i++) {
        g_reserve[i].next = g_reserve_free;
        g_reserve_free = &g_reserve[i];
    }
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
    /* Applies the environment, so the retire pacing (grant_budget,
     * retire_step) may read the setting directly. */
    (void)cc_config_retire_threshold();
    g_hold = choose_hold(cc__config_smr_fence_freeze());
}

CC_API void cc__smr_fail_chunk_alloc(uint64_t every) {
    atomic_store_explicit(&g_chunk_fail_count, 0, memory_order_relaxed);
    atomic_store_explicit(&g_chunk_fail_every, every, memory_order_relaxed);
}

static chunk_t *new_chunk_malloc(void) {
    uint64_t every = atomic_load_explicit(&g_chunk_fail_every, memory_order_relaxed);
    if (CC__UNLIKELY(every != 0) &&
        (atomic_fetch_add_explicit(&g_chunk_fail_count, 1, memory_order_relaxed) + 1) % every == 0)
        return NULL; /* injected failure (tests only) */
    chunk_t *c = malloc(sizeof *c);
    if (c) {
        c->next = NULL;
        c->home = NULL;
        c->count = 0;
        c->tag = 0;
    }
    return c;
}

static __attribute__((noinline)) rec_t *register_thread(void) {
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
    } else {
        atomic_store_explicit(&r->in_use, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&g_lock);
    /* A barrier may hold the lock right now; the owner's first enter (slow
     * path: seen_epoch 0 never matches) waits for it. */
    cc__smr_set_depth(&r->pub, 0);
    r->pub.hold = g_hold;
    r->pub.exit_work = 0;
    r->pub.seen_epoch = 0;
    r->need_headroom = false;
    r->scan_valid = false;
    r->since_trigger = 0;
    r->blocked_epoch = 0;
    r->budget_granted = 0;
    r->pub.retire_budget = 0;
    grant_budget(r);
    r->pub.fill_bag = &r->bags[0];
    r->pub.fill_tag = 0; /* never a tag (tags are announced epochs + 1 >= 1) */
    while (r->ncache < 2) { /* the preallocated spares */
        chunk_t *c = new_chunk_malloc();
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

static inline bool registered(const cc__smr_rec_t *p) { return p != &cc__smr_unregistered; }

static inline rec_t *get_rec(void) {
    rec_t *r = t_rec;
    if (CC__UNLIKELY(!registered(&r->pub))) r = register_thread();
    return r;
}

/* Exclusive access to a quiescent record's bags (barrier, exiting owner).
 * Takes the record's lock word, then (Dekker, with the owner's enter: store
 * announce; fence; load lock) waits until the owner is quiescent. Holding the
 * lock while waiting is safe: an owner inside a section will leave it, and an
 * owner that saw the lock in its enter stores quiescent and waits (below).
 * Asymmetric mode: the owner's side is "store depth = 1; load lock" with no
 * fence, so ours is asym_fence() and we wait for depth 0 (acquire: pairs with
 * the owner's release exit). The exiting owner locking its own record skips
 * both (it is outside any section, in program order). */
static void lock_record(rec_t *o) {
    unsigned spins = 0;
    for (;;) {
        uint32_t z = 0;
        if (atomic_load_explicit(&o->pub.lock, memory_order_relaxed) == 0 &&
            atomic_compare_exchange_weak_explicit(&o->pub.lock, &z, 1, memory_order_acquire,
                                                  memory_order_relaxed))
            break;
        backoff(&spins);
    }
    if (o == t_rec) return;
    CC__SMR_STEP(CC__SMR_STEP_LOCK_WAIT);
    if (g_hold) {
        asym_fence();
        while (atomic_load_explicit(&o->pub.depth, memory_order_acquire) != 0) backoff(&spins);
        return;
    }
    sc_fence();
    while (atomic_load_explicit(&o->pub.announce, memory_order_acquire) & ACTIVE) backoff(&spins);
}

static void unlock_record(rec_t *o) { atomic_store_explicit(&o->pub.lock, 0, memory_order_release); }

static void thread_exit(void *arg) {
    rec_t *r = arg;
    CC__SMR_STEP(CC__SMR_STEP_THREAD_EXIT);
    /* Leave any section the thread exited inside (the flush's free functions
     * may retire, which needs depth 0), run the last frees, then drop the
     * announcement -- after the flush, since a free function that retired
     * re-announced, and asymmetric mode keeps that: the record must not hold
     * back the epoch once its thread is gone. release: as the exit store. */
    cc__smr_set_depth(&r->pub, 0);
    flush_interrupted(r);
    flush(r);
    atomic_store_explicit(&r->pub.announce, 0, memory_order_release);
    lock_record(r);
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
    orphan_bags_locked(r);
    atomic_store_explicit(&r->in_use, 0, memory_order_relaxed);
    pthread_mutex_unlock(&g_lock);
    /* Unlock last: a new owner's first enter waits for it. */
    unlock_record(r);
}

/* ---- sections ---------------------------------------------------------------- */

/* The outermost enter, full protocol (the inline fast path is its common
 * case). r is quiescent as far as scanners can rely on (depth 0). Returns the
 * announced epoch. */
static uint64_t announce_active(rec_t *r) {
    unsigned spins = 0;
    uint64_t e;
    for (;;) {
        /* Asymmetric mode: depth = 1 before the announcement (a full barrier)
         * and the lock load, so a lock holder or revoker sees us (it reads
         * depth after its membarrier). */
        if (r->pub.hold) cc__smr_set_depth(&r->pub, 1);
        e = epoch_now();
        cc__smr_announce(&r->pub, (e << 1) | ACTIVE);
        CC__SMR_STEP(CC__SMR_STEP_ENTER_VALIDATE);
        for (;;) { /* validation: see (I1) */
            uint64_t e2 = atomic_load_explicit(&g_epoch, memory_order_seq_cst);
            if (e2 == e) break;
            e = e2;
            cc__smr_announce(&r->pub, (e << 1) | ACTIVE);
        }
        /* Dekker with lock_record(): after our announcement, a lock we do
         * not see is one whose holder sees us ACTIVE. seq_cst: the load side
         * of that pair; it also acquires, pairing with the holder's release
         * unlock (we see what it did to our bags). */
        if (atomic_load_explicit(&r->pub.lock, memory_order_seq_cst) == 0) break;
        /* Let it in: quiescent (release, as an exit). */
        if (r->pub.hold) atomic_store_explicit(&r->pub.depth, 0, memory_order_release);
        else atomic_store_explicit(&r->pub.announce, 0, memory_order_release);
        while (atomic_load_explicit(&r->pub.lock, memory_order_acquire) != 0) backoff(&spins);
    }
    cc__smr_set_depth(&r->pub, 1);
    if (e != r->pub.seen_epoch) {
        r->pub.seen_epoch = e;
        if (atomic_load_explicit(&r->pub.retired, memory_order_relaxed) !=
            atomic_load_explicit(&r->unbagged, memory_order_relaxed)) {
            reclaim_own(r, e);
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
    announce_active(r);
}

/* Runs the frees the section detached; the section has ended. */
CC_API void cc__smr_exit_slow(void) {
    rec_t *r = t_rec;
    if (!registered(&r->pub) || cc__smr_depth(&r->pub) != 0) return;
    flush(r);
    if (r->need_headroom && !r->flushing) restore_headroom(r);
}

/* Leaves the outermost section as cc_smr_exit does, then frees what it
 * detached. */
static size_t leave_and_flush(rec_t *r) {
    cc__smr_leave(&r->pub);
    if (r->to_free == NULL || r->flushing) return 0;
    return flush(r);
}

/* ---- retire ----------------------------------------------------------------- */

static void update_peak(uint64_t pending) {
    uint64_t p = atomic_load_explicit(&g_peak, memory_order_relaxed);
    while (pending > p && !atomic_compare_exchange_weak_explicit(&g_peak, &p, pending, memory_order_relaxed,
                                                                 memory_order_relaxed)) {
    }
}

static uint64_t sum_pending(void) {
    uint64_t ret = 0, fr = 0;
    for (rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire); o;
         o = rec_next(o)) {
        ret += atomic_load_explicit(&o->pub.retired, memory_order_relaxed);
        fr += atomic_load_explicit(&o->freed, memory_order_relaxed);
    }
    return ret > fr ? ret - fr : 0;
}

/* Full scan, then detach what is safe (own bags, orphans); r is ACTIVE. */
static void help(rec_t *r) {
    uint64_t e = epoch_now();
    sc_fence();
    scan(r, e, UINT32_MAX, true);
    e = epoch_now();
    reclaim_own(r, e);
    take_orphans(r, e, false);
}

static __attribute__((noinline)) void trigger(rec_t *r) {
    help(r);
    update_peak(sum_pending());
    r->since_trigger = 0;
}

/* Waits until g_epoch >= target, advancing it; the caller is quiescent.
 * Asymmetric mode: the caller's own kept announcement is dropped first, and a
 * thread that blocks the advance while outside any section (depth 0, a hint)
 * is revoked after a short spin (revoke_idle). */
static void advance_to(uint64_t target) {
    unsigned spins = 0;
    release_own(t_rec);
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
                if (g_hold && spins >= 16 && atomic_load_explicit(&o->pub.depth, memory_order_relaxed) == 0) {
                    revoke_idle(e);
                    spins = 0;
                } else {
                    backoff(&spins);
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

static chunk_t *take_reserve(void) {
    pthread_mutex_lock(&g_lock);
    chunk_t *c = g_reserve_free;
    if (c) g_reserve_free = c->next;
    pthread_mutex_unlock(&g_lock);
    if (c) {
        c->next = NULL;
        c->count = 0;
    }
    return c;
}

/* r's built-in spare chunk, if it is free. */
static chunk_t *take_spare(rec_t *r) {
    if (!atomic_load_explicit(&r->spare_free, memory_order_acquire)) return NULL;
    atomic_store_explicit(&r->spare_free, 0, memory_order_relaxed);
    r->spare.next = NULL;
    r->spare.count = 0;
    return &r->spare;
}

static inline bool has_headroom(rec_t *r) {
    return r->ncache > 0 || atomic_load_explicit(&r->spare_free, memory_order_relaxed);
}

/* Outside any section (depth 0): make sure the next section can get a chunk
 * without malloc -- a cached chunk or the free spare. Tries malloc; else waits
 * until r's oldest bag is safe and frees it (its chunk is recycled). Only
 * reached after malloc failed inside a section. */
static void restore_headroom(rec_t *r) {
    r->need_headroom = false;
    note_work(r);
    if (has_headroom(r)) return;
    chunk_t *c = new_chunk_malloc();
    if (c) {
        c->next = r->cache;
        r->cache = c;
        r->ncache++;
        return;
    }
    uint64_t oldest = UINT64_MAX;
    cc_smr_enter(); /* the bags are ours only while ACTIVE (a barrier may hold them) */
    for (int i = 0; i < 3; i++)
        if (r->bags[i].head != NULL && r->bags[i].tag < oldest) oldest = r->bags[i].tag;
    cc_smr_exit(); /* may have freed safe bags into our cache */
    if (has_headroom(r) || oldest == UINT64_MAX) return; /* (MAX: freed elsewhere) */
    advance_to(oldest + 2); /* quiescent: waits for the sections that pin it */
    cc_smr_enter(); /* the bags are ours only while ACTIVE */
    reclaim_own(r, epoch_now());
    cc_smr_exit(); /* runs the frees: their chunks go to our cache / spare */
}

/* A fresh chunk for r: its cache, then malloc. */
static chunk_t *get_chunk(rec_t *r) {
    chunk_t *c;
    if (r->cache) {
        c = r->cache;
        r->cache = c->next;
        r->ncache--;
        c->next = NULL;
        c->count = 0;
        return c;
    }
    return new_chunk_malloc();
}

/* Retire pacing. Every append consumes one unit of pub.retire_budget; the
 * inline retire runs only while more than one is left, so the append that
 * empties it is out of line and runs retire_step(). A grant is at most
 * SCAN_EVERY retires and never runs past the threshold: every `threshold`
 * retires (cc_config_retire_threshold(), re-read at every grant, so a change
 * applies within SCAN_EVERY retires, and at once after a poll or barrier) a
 * full scan, in between DEBRA's step, checking one other record. */
static void account_budget(rec_t *r) {
    r->since_trigger += r->budget_granted - r->pub.retire_budget;
    r->budget_granted = r->pub.retire_budget;
}

static void grant_budget(rec_t *r) {
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
static __attribute__((noinline)) void retire_step(rec_t *r) {
    account_budget(r);
    if (r->since_trigger >= atomic_load_explicit(&cc__config_retire_threshold, memory_order_relaxed)) {
        trigger(r); /* resets since_trigger */
    } else {
        uint64_t e = epoch_now();
        sc_fence();
        scan(r, e, 1, false);
    }
    grant_budget(r);
}

/* Appends to the chunk being filled (see cc__smr_append in <cc/smr.h> and
 * atfork_child for the order of its stores); the append that spends the
 * budget runs the step. */
static inline void append_entry(rec_t *r, chunk_t *h, void *node, size_t size, cc_smr_free_fn free_fn) {
    if (cc__smr_append(&r->pub, h, node, size, free_fn) == 0) retire_step(r);
}

static __attribute__((noinline)) bool retire_slow(rec_t *r, uint64_t a, void *node, size_t size,
                                                  cc_smr_free_fn free_fn, bool internal) {
    uint64_t tag = a + 1;
    bag_t *b = &r->bags[tag % 3];
    bool recycled = false;
    for (;;) {
        if (b->head != NULL && b->tag != tag) {
            /* Same index, older tag: tag' <= tag - 3 <= a - 2, and we read
             * g_epoch >= a, so that bag is safe. */
            detach_safe(r, tag - 1, &r->to_free, &r->detached);
            note_work(r);
        }
        if (b->head == NULL) b->tag = tag;
        if (b->head != NULL && b->head->count < CHUNK_CAP) break;
        chunk_t *c = get_chunk(r);
        if (c == NULL && !recycled) {
            /* Out of memory: free our safe bags to recycle their chunks. Free
             * functions may retire (and change b), so re-check from the top. */
            recycled = true;
            reclaim_own(r, epoch_now());
            flush(r);
            continue;
        }
        if (c == NULL) c = take_spare(r);
        if (c == NULL) c = take_reserve();
        if (c == NULL) {
            if (!internal) {
                fprintf(stderr, "concurrent_collections: smr: out of memory for limbo bags inside a "
                                "critical section; cannot defer the free safely\n");
                abort();
            }
            /* Synchronous fallback: leave the section, wait until the node is
             * safe (g_epoch >= tag + 2) and free it here. */
            bump(&r->pub.retired, 1);
            bump(&r->unbagged, 1); /* never bagged */
            leave_and_flush(r);
            advance_to(tag + 2);
            if (free_fn) free_fn(node, size);
            else cc_free(node, size);
            bump(&r->freed, 1);
            return true;
        }
        c->next = b->head;
        __atomic_store_n(&b->head, c, __ATOMIC_RELEASE); /* linked once complete (fork) */
        if (CC__UNLIKELY(!has_headroom(r))) { /* restored at the outermost exit */
            r->need_headroom = true;
            note_work(r);
        }
        break;
    }
    r->pub.fill_bag = b;
    r->pub.fill_tag = tag;
    append_entry(r, b->head, node, size, free_fn);
    return false;
}

/* Retire inside a section (r ACTIVE): append to the current chunk of the bag
 * for tag a+1 -- no atomic RMW -- or take the general path. */
static inline bool retire_in(rec_t *r, void *node, size_t size, cc_smr_free_fn free_fn, bool internal) {
    chunk_t *h = cc__smr_fill_chunk(&r->pub);
    if (CC__UNLIKELY(h == NULL)) {
        /* Our own announcement: relaxed (single writer, ourselves). */
        uint64_t a = EPOCH_OF(atomic_load_explicit(&r->pub.announce, memory_order_relaxed));
        return retire_slow(r, a, node, size, free_fn, internal);
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

/* ---- poll, barrier, stats --------------------------------------------------- */


CC_API size_t cc_smr_poll(void) {
    cc_smr_enter();
    rec_t *r = t_rec;
    help(r);
    grant_budget(r); /* a new threshold applies from here */
    uint32_t d = cc__smr_depth(&r->pub) - 1;
    if (d == 0) return leave_and_flush(r);
    cc__smr_set_depth(&r->pub, d);
    return flush(r);
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
    grant_budget(r); /* a new threshold applies from here */
    /* Every node retired before this call has tag <= e0 + 1 (its retirer
     * announced a <= e0), so it is safe once g_epoch >= e0 + 3. */
    sc_fence();
    uint64_t e0 = epoch_now();
    advance_to(e0 + 3);
    uint64_t e = epoch_now();
    for (rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire); o;
         o = rec_next(o)) {
        /* A retire that happened before this call is visible in `retired`.
         * acquire on `unbagged` (read first): a detach's store that made the
         * two equal also makes its `detached` count visible to the wait below. */
        uint64_t unbagged = atomic_load_explicit(&o->unbagged, memory_order_acquire);
        if (atomic_load_explicit(&o->pub.retired, memory_order_relaxed) == unbagged) continue;
        lock_record(o);
        /* Freed by our flush() below, counted in our `detached` (the
         * barrier skips its own record when it waits for in-flight frees). */
        detach_safe(o, e, &r->to_free, &r->detached);
        unlock_record(o);
    }
    take_orphans(r, e, true);
    flush(r);
    /* Nodes other threads detached (to free after their section) but may
     * still be freeing: wait until each has freed as many as it detached. */
    for (rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire); o;
         o = rec_next(o)) {
        if (o == r) continue;
        uint64_t d = atomic_load_explicit(&o->detached, memory_order_acquire);
        unsigned spins = 0;
        while (atomic_load_explicit(&o->flushed, memory_order_acquire) < d) backoff(&spins);
    }
    return 0;
}

CC_API void cc_smr_idle(void) { release_own(t_rec); }

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
            (!g_hold || atomic_load_explicit(&o->pub.depth, memory_order_relaxed) != 0))
            s.stalled_threads++;
    }
    s.retired = ret;
    s.freed = fr > ret ? ret : fr;
    s.pending = ret - s.freed;
    s.epoch = e;
    s.orphaned = atomic_load_explicit(&g_orphan_nodes, memory_order_relaxed);
    update_peak(s.pending);
    s.peak_pending = atomic_load_explicit(&g_peak, memory_order_relaxed);
    s.asymmetric = g_hold;
    s.membarriers = atomic_load_explicit(&g_membarriers, memory_order_relaxed);
    return s;
}

#ifdef CC_SMR_TEST_HOOKS
/* TEST ONLY (src/smr_internal.h): one revocation pass as a reclaimer runs it. */
CC_API void cc__smr_revoke_idle_now(void) {
    (void)get_rec();
    if (g_hold) revoke_idle(epoch_now());
}
#endif
