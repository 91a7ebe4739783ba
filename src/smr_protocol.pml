/*
 * smr_protocol.pml -- a Promela model of the SMR protocol of src/smr_epoch.c,
 * src/smr_revoke.c and <cc/smr.h> (epoch-based reclamation, DEBRA style, with the asymmetric
 * "kept announcement + membarrier revocation" mode). Checked with spin by
 * scripts/model-check.sh; see there for the exact runs.
 *
 * WHAT IS CHECKED
 *   A reader that loaded a pointer to the node inside its section never has
 *   the node freed while it is still inside that section:
 *   assert(p == 0 || !freed) in Reader, just before its outermost exit (the
 *   last moment the section may dereference p; `freed` only ever goes 0 -> 1).
 *
 * PROCESSES (three threads plus the store buffers)
 *   Reader   record 0. Up to R_SECTIONS steps, each an outermost section
 *            (cc_smr_enter; load the list head; "dereference"; cc_smr_exit)
 *            or a cc_smr_idle().
 *   Writer   record 1. Up to W_SECTIONS sections; the first that finds the node
 *            linked unlinks it (CAS head 1 -> 0) and retires it with tag =
 *            its section's epoch + 1 (cc_smr_retire -> bag tag a+1). Between
 *            sections, any number of: scan steps without revocation (the DEBRA
 *            step of retire_step, or help()/advance_to() finding no idle
 *            holder) -- each ONE atomic step (load e, fence, both announce
 *            loads, CAS), to keep the state space small; the Revoker's scans
 *            run the same code step by step --, cc_smr_idle(), and
 *            reclaim_own (frees its bag once it reads g_epoch >= tag+2).
 *   Revoker  no record (a thread in advance_to()/help() whose own announcement
 *            does not block: it released it, or it announces e). Any number
 *            of full scans; a scan blocked by a record may call revoke_idle(e)
 *            with the e it loaded at the start of the scan, then re-reads that
 *            record (maybe_revoke) and goes on.
 *   Flusher  x86-TSO store buffers: commits the oldest buffered store of
 *            either thread at any moment.
 *
 * MEMORY MODEL: x86-TSO. Each of Reader and Writer has a FIFO store buffer of
 *   SB entries; a plain store (C relaxed or release store: `mov` on x86) goes
 *   to the buffer (blocking while it is full), a load reads the newest
 *   buffered store to that address, else memory. A locked instruction
 *   (seq_cst exchange `xchg`, any CAS) and a seq_cst fence (`mfence`) first
 *   drain the buffer. Loads are never reordered with loads on TSO, so only the
 *   store buffer is modelled. membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)
 *   (asym_fence) drains the Reader's buffer at one point P_R and then the
 *   Writer's at a later point P_W, both during the call (each thread's full
 *   barrier happens at its own point).
 *
 * C STATEMENT -> MODEL STEP (named by function; src/smr_internal.h maps them to files)
 *   cc_smr_enter (<cc/smr.h>), asymmetric mode (r->asymmetric):
 *     cc__smr_set_depth(r, 1)                          -> st(DEPTH, 1)
 *     load cc__smr_epoch (acquire)                     -> ld(EPOCH, e)
 *     load r->announce == (e<<1)|ACTIVE, e == seen_epoch, load r->lock == 0
 *                                                      -> ld(ANN), ld(LOCK), compare
 *     else cc__smr_set_depth(r, 0); cc__smr_enter_slow -> st(DEPTH, 0); slow_enter
 *   cc_smr_enter, fencing mode (-DFENCE_MODE):
 *     load epoch (relaxed); cc__smr_announce (seq_cst xchg); seq_cst re-load;
 *     e2 == e && e == seen_epoch && lock == 0 -> cc__smr_set_depth(r, 1)
 *                                                      -> ld, xchg, ld, ld(LOCK), st(DEPTH,1)
 *   enter_announce (slow path, via cc__smr_enter_slow):
 *     if asymmetric: cc__smr_set_depth(r, 1)                 -> st(DEPTH, 1)
 *     e = epoch_now(); cc__smr_announce(e|ACTIVE)       -> ld(EPOCH), xchg(ANN)
 *     validation loop: seq_cst re-load, re-announce    -> ld(EPOCH), xchg(ANN)
 *     seq_cst load of r->lock == 0                     -> ld(LOCK) (always 0 here)
 *     cc__smr_set_depth(r, 1); seen_epoch = e          -> st(DEPTH, 1)
 *   cc__smr_leave (cc_smr_exit), asymmetric mode:
 *     store depth = 0 (release)                        -> st(DEPTH, 0)
 *     load cc__smr_epoch != seen_epoch -> store announce = 0 (release)
 *                                                      -> ld(EPOCH), st(ANN, 0)
 *   cc__smr_leave, fencing mode: depth = 0; store announce = 0 (release).
 *   cc_smr_idle / cc__smr_release_own: asymmetric && depth == 0 -> store announce = 0.
 *   cc_smr_retire inside a section announcing a: bag with tag a+1
 *     (cc__smr_fill_chunk / cc__smr_retire_to_bag)               -> tag = seen + 1, with
 *     the unlink CAS of the lock-free structure in the same atomic step.
 *   cc__smr_reclaim_own / cc__smr_take_orphans / barrier: a bag with tag t is freed once the
 *     thread read g_epoch >= t+2                       -> reclaim step.
 *   scan steps (retire_step: epoch_now(); sc_fence(); scan(); cc__smr_full_scan();
 *     cc__smr_advance_to()): load g_epoch = e; seq_cst fence; for each record load
 *     announce (acquire) and stop if announce_blocks_advance(w, e); at the end of the
 *     registry CAS g_epoch e -> e+1                    -> scan()
 *   cc__smr_maybe_revoke -> cc__smr_revoke_idle(e) (full scans and advance_to, asymmetric
 *     mode), e = the value the scan loaded BEFORE:
 *     asym_fence(): membarrier                          -> drain R's, then W's buffer
 *     for each record: w = load announce (acquire)      -> rw = mem[ANN(i)]
 *       revocable? (OLD: announce_blocks_advance(w, e), i.e. ACTIVE && EPOCH_OF(w) != e;
 *                   FIXED announce_revocable: ACTIVE && EPOCH_OF(w) < e)  -> REVOCABLE(rw, e)
 *       load depth (acquire) != 0 -> skip               -> mem[DEPTH(i)]
 *       CAS announce w -> 0 (acq_rel)                   -> cas step
 *     then maybe_revoke re-loads o's announce; the scan continues if it no
 *     longer blocks.
 *
 * ABSTRACTED / LEFT OUT
 *   - Only the stores whose delay matters are buffered: depth = 1 (fast and
 *     slow enter) and, with -DNO_XCHG, the announcement. The stores that make
 *     a thread look LESS active (depth = 0, announce = 0 at exit, idle, fast
 *     path failure) are committed at once (st_now, after the older buffered
 *     stores): delaying them would only let scanners see an older, more
 *     blocking announcement and revokers an older depth, i.e. restrict the
 *     other threads. An earlier version buffering every store did not finish.
 *   - One node, one list head; one retirement. Epochs are the real integers
 *     (no wrap), bounded: no advance past MAXE (default 5 = enough for a
 *     node retired at epoch 2 with tag 3 to be freed at 5). Larger bounds
 *     (R_SECTIONS 4, W_SECTIONS 2, MAXE 6) did not finish in minutes.
 *   - The lock word is loaded where the C loads it but nobody takes it: no
 *     lock_record()/barrier holder, no thread exit, no fork, no orphans, no
 *     chunk bookkeeping, no nesting (only the outermost enter/exit matter).
 *   - The patience timer and maybe_revoke's relaxed depth pre-check are
 *     replaced by nondeterminism (revocation may be tried whenever a full scan
 *     is blocked): a superset of the real behaviours.
 *   - The scan is one pass over the two records (the registry is fixed;
 *     scan() may spread a pass over several retire steps -- the same loads).
 *   - TSO only: it shows store->load reorderings (the ones this protocol
 *     fights on x86), not the weaker orders C11 allows on ARM/POWER. Dropping
 *     the scanner's fence is therefore NOT observable here (the scanner has
 *     no buffered store before its loads); -DNO_SCANNER_FENCE is accepted
 *     and documented as passing.
 *
 * SWITCHES (spin -D...)
 *   OLD_REVOKE_PREDICATE  revoke_idle uses blocks_advance (defect 1): must fail
 *   FENCE_MODE            the fencing mode (asymmetric = 0) instead of asymmetric
 *   NO_XCHG               (with FENCE_MODE) announcement by a plain store
 *                         instead of the seq_cst exchange: must fail
 *   NO_MEMBARRIER         revoke_idle without asym_fence(): must fail
 *   NO_SCANNER_FENCE      scans without their seq_cst fence. Passes, with the
 *                         same state count as the fixed model: here it changes
 *                         nothing (the Revoker has no buffered stores, the
 *                         Writer's scan is one atomic step). Not a check.
 *   R_SECTIONS, W_SECTIONS, MAXE, SB   bounds (defaults 2, 1, 5, 3)
 */

#ifndef R_SECTIONS
#define R_SECTIONS 2
#endif
#ifndef W_SECTIONS
#define W_SECTIONS 1
#endif
#ifndef MAXE
#define MAXE 5
#endif
#ifndef SB
#define SB 3
#endif

#define NREC 2            /* records: 0 = Reader, 1 = Writer */
/* shared memory addresses */
#define EPOCH 0           /* g_epoch (cc__smr_epoch), starts at 1 */
#define HEAD 1            /* the structure's link to the node: 1 = node, 0 = unlinked */
#define ANN(i) (2 + (i))  /* rec->announce: (epoch << 1) | ACTIVE, or 0 */
#define DEPTH(i) (4 + (i))/* rec->depth */
#define LOCK(i) (6 + (i)) /* rec->lock (never taken in this model) */
#define NMEM 8

#define ACTIVE 1
#define ANNOUNCE(e) (((e) << 1) | ACTIVE)
#define EPOCH_OF(w) ((w) >> 1)
/* blocks_advance (scan, advance_to): an announcement of another epoch */
#define BLOCKS(w, e) (((w) & ACTIVE) && EPOCH_OF(w) != (e))
#ifdef OLD_REVOKE_PREDICATE
#define REVOCABLE(w, e) BLOCKS(w, e)                            /* defect 1 */
#else
#define REVOCABLE(w, e) (((w) & ACTIVE) && EPOCH_OF(w) < (e))   /* the fix */
#endif

byte mem[NMEM];
/* store buffers of threads 0 (Reader) and 1 (Writer): addresses and values,
 * oldest first; unused slots kept 0 so equal buffers are equal states */
byte sba[2 * SB];
byte sbv[2 * SB];
byte sbn[2];

/* ghost state of the node and of the Writer's bag */
bit retired;
bit freed;
byte tag;

byte tk;          /* scratch, only inside d_steps (always 0 between steps) */
byte tf;

/* ---- TSO primitives --------------------------------------------------- */

/* plain store (mov): into the buffer; blocks while it is full */
inline st(me, a, v) {
    d_step {
        sbn[me] < SB;
        sba[me * SB + sbn[me]] = a;
        sbv[me * SB + sbn[me]] = v;
        sbn[me]++
    }
}

/* a store whose delay could only make this thread look MORE active to the
 * others (the exit/idle/"let it in" stores of depth = 0 and announce = 0):
 * committed at once, after the stores buffered before it (a legal TSO
 * behaviour; the delayed ones only add states in which scanners see an older,
 * more blocking announcement and revokers an older depth 1) */
inline st_now(me, a, v) {
    d_step { drain(me); mem[a] = v }
}

/* load: newest buffered store to a, else memory */
inline ld(me, a, v) {
    d_step {
        tk = sbn[me];
        tf = 0;
        do
        :: tk > 0 && !tf ->
            tk--;
            if
            :: sba[me * SB + tk] == a -> v = sbv[me * SB + tk]; tf = 1
            :: else
            fi
        :: else -> break
        od;
        if
        :: !tf -> v = mem[a]
        :: else
        fi;
        tk = 0;
        tf = 0
    }
}

/* commit the oldest buffered store (inside a d_step) */
inline commit1(me) {
    mem[sba[me * SB]] = sbv[me * SB];
    tk = 0;
    do
    :: tk + 1 < sbn[me] ->
        sba[me * SB + tk] = sba[me * SB + tk + 1];
        sbv[me * SB + tk] = sbv[me * SB + tk + 1];
        tk++
    :: else -> break
    od;
    sbn[me]--;
    sba[me * SB + sbn[me]] = 0;
    sbv[me * SB + sbn[me]] = 0;
    tk = 0
}

/* drain the whole buffer (inside a d_step): what mfence / a locked
 * instruction waits for, and what membarrier forces on the other thread */
inline drain(me) {
    do
    :: sbn[me] > 0 -> commit1(me)
    :: else -> break
    od;
    tk = 0
}

/* seq_cst exchange (xchg): drain, then write memory */
inline xchg(me, a, v) {
    d_step { drain(me); mem[a] = v }
}

/* ---- the owner's side (cc_smr_enter / cc_smr_exit / cc_smr_idle) ----- */

/* cc__smr_announce, or a plain store with -DNO_XCHG (broken variant) */
inline announce(me, v) {
#ifdef NO_XCHG
    st(me, ANN(me), v)
#else
    xchg(me, ANN(me), v)
#endif
}

/* announce_active (cc__smr_enter_slow): leaves depth 1 and seen = e */
inline slow_enter(me, e, e2, x, seen) {
#ifndef FENCE_MODE
    st(me, DEPTH(me), 1);                 /* if (r->pub.asymmetric) set_depth(1) */
#endif
    ld(me, EPOCH, e);                     /* e = epoch_now() */
    announce(me, ANNOUNCE(e));            /* cc__smr_announce(e|ACTIVE) */
    do                                    /* validation: see (I1) */
    :: ld(me, EPOCH, e2);
       if
       :: e2 == e -> break
       :: else -> e = e2; announce(me, ANNOUNCE(e))
       fi
    od;
    ld(me, LOCK(me), x);                  /* seq_cst load of r->lock */
    assert(x == 0);                       /* nobody takes locks in this model */
    st(me, DEPTH(me), 1);                 /* set_depth(1) */
    d_step { seen = e; e = 0; e2 = 0; x = 0 }  /* seen_epoch = e (reclaim_own elided) */
}

/* cc_smr_enter, outermost (depth is 0 here) */
inline enter(me, e, e2, w, x, seen) {
#ifndef FENCE_MODE
    st(me, DEPTH(me), 1);                 /* cc__smr_set_depth(r, 1) */
    ld(me, EPOCH, e);                     /* load cc__smr_epoch (acquire) */
    ld(me, ANN(me), w);                   /* load r->announce (relaxed) */
    ld(me, LOCK(me), x);                  /* load r->lock (acquire) */
    if
    :: w == ANNOUNCE(e) && e == seen && x == 0 ->        /* fast path */
        d_step { e = 0; w = 0; x = 0 }
    :: else ->
        st_now(me, DEPTH(me), 0);         /* cc__smr_set_depth(r, 0) */
        slow_enter(me, e, e2, x, seen)
    fi;
#else
    ld(me, EPOCH, e);                     /* relaxed load */
    announce(me, ANNOUNCE(e));            /* cc__smr_announce */
    ld(me, EPOCH, e2);                    /* seq_cst re-load */
    ld(me, LOCK(me), x);                  /* seq_cst load of r->lock */
    if
    :: e2 == e && e == seen && x == 0 ->
        d_step { e = 0; e2 = 0; x = 0 };
        st(me, DEPTH(me), 1)
    :: else -> slow_enter(me, e, e2, x, seen)
    fi
#endif
}

/* cc__smr_leave (cc_smr_exit, outermost) */
inline leave(me, x, seen) {
#ifndef FENCE_MODE
    st_now(me, DEPTH(me), 0);             /* depth = 0 (release) */
    ld(me, EPOCH, x);                     /* load cc__smr_epoch (relaxed) */
    if
    :: x != seen -> x = 0; st_now(me, ANN(me), 0)  /* announce = 0 (release) */
    :: else -> x = 0
    fi
#else
    st(me, DEPTH(me), 0);
    st(me, ANN(me), 0)
#endif
}

/* cc_smr_idle (release_own): outside any section */
inline idle(me) {
#ifndef FENCE_MODE
    st_now(me, ANN(me), 0)
#else
    skip
#endif
}

/* ---- scanning, advancing, revoking ----------------------------------- */

/* seq_cst fence of a scanner (sc_fence) */
inline scan_fence(me) {
#ifndef NO_SCANNER_FENCE
    d_step { drain(me) }
#else
    skip
#endif
}

/* revoke_idle(e): the caller loaded g_epoch == e before calling */
inline revoke_idle(e, i, rw, d) {
#ifndef NO_MEMBARRIER
    d_step { drain(0) };                  /* asym_fence(): point P in the Reader */
    d_step { drain(1) };                  /*   ... and in the Writer */
#endif
    i = 0;
    do
    :: i < NREC ->
        rw = mem[ANN(i)];                 /* load o->announce (acquire) */
        if
        :: REVOCABLE(rw, e) ->
            d = mem[DEPTH(i)];            /* load o->depth (acquire) */
            if
            :: d == 0 ->
                d_step {                  /* CAS announce w -> 0 (acq_rel) */
                    if
                    :: mem[ANN(i)] == rw -> mem[ANN(i)] = 0
                    :: else
                    fi
                }
            :: else
            fi
        :: else
        fi;
        i++
    :: else -> break
    od
}

/* One scan pass for the epoch read at its start, advancing on success.
 * me: the scanning thread's store buffer (2: none). can_revoke: full scan
 * in asymmetric mode (maybe_revoke); j, i, rw, d scratch locals. */
inline scan(me, e, w, j, i, rw, d, can_revoke) {
    e = mem[EPOCH];                       /* epoch_now() (acquire) */
    if
    :: me < 2 -> scan_fence(me)           /* sc_fence() */
    :: else
    fi;
    j = 0;
    do
    :: j < NREC ->
        if
        :: me < 2 -> ld(me, ANN(j), w)    /* load o->announce (acquire) */
        :: else -> w = mem[ANN(j)]
        fi;
        if
        :: BLOCKS(w, e) ->
            if
            :: can_revoke ->              /* maybe_revoke(r, o, e) */
                revoke_idle(e, i, rw, d);
                w = mem[ANN(j)];          /* re-load o->announce */
                if
                :: BLOCKS(w, e) -> break  /* still blocked: retry later */
                :: else -> j++
                fi
            :: true -> break              /* blocked: retry later */
            fi
        :: else -> j++
        fi
    :: else ->                            /* end of registry: CAS e -> e+1 */
        d_step {
            if
            :: me < 2 -> drain(me)
            :: else
            fi;
            if
            :: mem[EPOCH] == e && e < MAXE -> mem[EPOCH] = e + 1
            :: else
            fi
        };
        break
    od;
    atomic { e = 0; w = 0; j = 0; i = 0; rw = 0; d = 0 }
}

/* ---- the threads ---------------------------------------------------------- */

proctype Reader() {
    byte e, e2, w, x, seen, p, n;
    do
    :: n < R_SECTIONS ->
        enter(0, e, e2, w, x, seen);
        ld(0, HEAD, p);                   /* the section loads a pointer to the node */
        /* ... and dereferences it until its exit: */
        d_step { assert(p == 0 || !freed); p = 0 }  /* SAFETY: not freed while we are inside */
        leave(0, x, seen);
        n++
    :: n < R_SECTIONS ->
        idle(0);
        n++
    :: else -> break
    od
}

proctype Writer() {
    byte e, e2, w, x, seen, n, j, i, rw, d;
end:
    do
    :: n < W_SECTIONS ->
        enter(1, e, e2, w, x, seen);
        d_step {                          /* unlink (CAS head) and cc_smr_retire */
            drain(1);
            if
            :: mem[HEAD] == 1 -> mem[HEAD] = 0; retired = 1; tag = seen + 1
            :: else
            fi
        };
        leave(1, x, seen);
        n++
    :: d_step {                           /* retire_step's scan step, in one atomic step: */
           drain(1);                          /* epoch_now(); sc_fence(); */
           if                                 /* announce loads; CAS e -> e+1 */
           :: !BLOCKS(mem[ANN(0)], mem[EPOCH]) && !BLOCKS(mem[ANN(1)], mem[EPOCH]) &&
              mem[EPOCH] < MAXE -> mem[EPOCH] = mem[EPOCH] + 1
           :: else
           fi
       }
#ifndef FENCE_MODE
    :: idle(1)                            /* cc_smr_idle (a no-op in fencing mode) */
#endif
    :: d_step {                           /* reclaim_own: bag tag t safe at g_epoch >= t+2 */
           retired && !freed && mem[EPOCH] >= tag + 2 -> freed = 1
       }
    od
}

proctype Revoker() {
    byte e, w, j, i, rw, d;
end:
    do
    :: mem[EPOCH] < MAXE ->
#ifndef FENCE_MODE
        scan(2, e, w, j, i, rw, d, true)  /* full scan (help / advance_to) */
#else
        scan(2, e, w, j, i, rw, d, false)
#endif
    od
}

proctype Flusher() {
end:
    do
    :: d_step { sbn[0] > 0 -> commit1(0) }
    :: d_step { sbn[1] > 0 -> commit1(1) }
    od
}

init {
    atomic {
        mem[EPOCH] = 1;                   /* cc__smr_epoch starts at 1 */
        mem[HEAD] = 1;                    /* the node is linked */
        run Reader();
        run Writer();
        run Revoker();
        run Flusher()
    }
}
