/*
 * Epoch-based safe memory reclamation in the style of DEBRA (Brown, PODC 2015).
 *
 * ALGORITHM
 * ---------
 * State:
 *  - `g_epoch`, a global 64-bit epoch counter that only grows.
 *  - One record per thread (heap allocated, found through one TLS pointer),
 *    linked into an append-only registry list; records are reused after their
 *    thread exits, never freed. A record's `announce` word packs
 *        (epoch << 2) | LOCK | ACTIVE
 *    ACTIVE: the thread is in a read-side critical section that announced
 *    `epoch`. !ACTIVE: quiescent (the epoch bits are then meaningless).
 *    LOCK: a barrier (or the exiting owner) is touching the record's bags.
 *  - Per record, three limbo bags indexed by tag % 3. A bag holds the nodes
 *    retired with one tag (chunked arrays of {node, size, free_fn}, allocated
 *    with the C library's malloc, so SMR bookkeeping never shows up in the
 *    glue's statistics).
 *
 * enter (outermost):  e = load(g_epoch); CAS announce: quiescent -> (e|ACTIVE);
 *                     seq_cst fence; re-load g_epoch and re-announce until it
 *                     reads e again ("validation"). Then one scan step: check
 *                     ONE record (round robin); when the scan passes the end of
 *                     the registry with every record quiescent or announcing
 *                     e, CAS g_epoch e -> e+1. So the epoch advances at
 *                     amortized O(1) cost per operation. If e is new to this
 *                     thread, it frees its bags that became safe.
 * exit (outermost):   store announce = quiescent (release).
 * retire(node):       inside a section announcing a (retire outside a section
 *                     opens an internal one), put the node into the bag with
 *                     tag a+1. Every `threshold` retires (threshold from
 *                     cc_config_retire_threshold()) the thread does a full scan,
 *                     tries to advance the epoch, frees its safe bags and the
 *                     safe orphans, and samples `peak_pending`.
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
 *   coherence-ordered before a store, with seq_cst fences after the scanner's
 *   earlier load and after R's store) Z precedes R's fence X in the seq_cst
 *   order, so R's validation load after X sees g_epoch >= a+1 != a and R would
 *   have re-announced: contradiction. Otherwise it read R's exit store or later,
 *   i.e. R's section ended.
 * (I2) If R, in a section announcing a, loaded a pointer to node p before p was
 *   unlinked, and U retires p in a section announcing u (tag u+1), then a <= u+1.
 *   Same fence rule: R's pointer load is coherence-ordered before the unlink,
 *   R's fence precedes it and U's enter fence follows it (the unlink happens
 *   before U's retire, and U's announcement is validated after U's fence), so
 *   U's validation load sees at least the value R read: u >= a. (Also when U
 *   unlinked inside its section.) Hence tag = u+1 >= a+1 > a.
 * Freeing a bag with tag t requires g_epoch >= t+2 >= a+2 for every reader
 * that could hold a node of it, which by (I1) means each such reader has left
 * that section. The chain of happens-before is: reader's exit store (release)
 * -> scanner's load of the announce word (acquire) -> epoch CAS (acq_rel) ->
 * reclaimer's load of g_epoch (acquire) -> free_fn. A later section of the
 * same reader cannot reach p: it starts after p was unlinked (else a' <= tag by
 * I2 again and the bag would not be safe either).
 * The store-load ordering in enter (announce, then load shared pointers) is
 * exactly the one acquire/release cannot give: hence the seq_cst fence (see
 * design.md "Traps"). Under TSan (which does not model fences) a seq_cst RMW
 * replaces it.
 *
 * WHY EVERY RETIRED NODE IS EVENTUALLY FREED
 * ------------------------------------------
 * The epoch advances whenever every ACTIVE thread has announced the current
 * epoch, which happens as soon as each thread leaves (or re-enters) its section.
 * A bag is freed (a) by its owner at its next enter that sees a new epoch, at
 * its next threshold trigger, or its next poll, or (b) by cc_smr_barrier(),
 * which advances the epoch itself (waiting for sections to end) and frees the
 * bags of EVERY record -- including threads that are idle outside sections and
 * may never call SMR again -- by taking the record's LOCK bit, which is only
 * possible while the owner is quiescent (the owner touches its bags only while
 * ACTIVE, i.e. inside an internal or user section), or (c) after the owner
 * exits: its pthread-key destructor moves its bags to the global orphan list
 * (each chunk carries its tag), which polls, threshold triggers and the
 * barrier drain once safe. Bookkeeping allocation never drops a node: if a new
 * chunk cannot be malloc'ed, the thread uses a cached chunk (two are
 * preallocated per record), then frees its safe bags to recycle theirs, then a
 * static emergency reserve, then (outside a user section) waits for the epoch
 * to pass and frees the node synchronously; only when all of that fails inside
 * a user section does it abort with a message.
 *
 * MEMORY BOUND
 * ------------
 * While all threads make progress (each section ends within the time a thread
 * takes to do `threshold` retires), every threshold trigger advances the epoch,
 * a thread holds at most three bags (tags a-1, a, a+1) of about `threshold`
 * nodes each, so pending <= ~3 x threads x threshold (+ orphans, which are
 * drained by the next trigger or poll). A single section that retires k nodes
 * holds those k itself. tests/smr/test_smr_stress.c checks the bound.
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
 *  g_epoch            load acquire everywhere: pairs with the acq_rel advance
 *                     CAS, so a thread that sees epoch E sees the quiescent
 *                     states (and thus the finished sections) the advancer saw.
 *                     CAS acq_rel on success (release: publish that chain;
 *                     acquire: continue it), relaxed on failure (value unused).
 *  rec->announce      enter CAS acq_rel: acquire pairs with the LOCK holder's
 *                     release unlock (the owner sees the bags it changed);
 *                     release because a scanner that reads this NEW
 *                     announcement (not the exit store before it) must also
 *                     see the previous section's reads as finished. Failure
 *                     relaxed. Re-announce store (validation) release, for the
 *                     same reason. Exit store release (the section's reads
 *                     happen before a scanner that sees it quiescent advances).
 *                     Scanner/barrier/stats loads acquire (pair with the exit
 *                     release). LOCK CAS acquire (pairs with the owner's exit
 *                     release: bag contents), unlock store release (pairs with
 *                     the owner's enter CAS).
 *  sc_fence()         seq_cst: the store-load ordering of (I1) and (I2).
 *  rec->next, g_head  store release (publishes an initialised record), load
 *                     acquire (traversal sees it initialised).
 *  rec->in_use        written under g_lock; relaxed loads by stats (a count).
 *  rec->retired/freed/bagged, rec->cur
 *                     statistics: relaxed load+store by the single writer
 *                     (the owner, or the LOCK holder for `bagged`), relaxed
 *                     loads by stats. Exact once threads are quiescent.
 *  g_orphan_nodes     relaxed: written under g_lock, read as a hint/statistic.
 *  g_peak             relaxed CAS-max: a statistic.
 *  g_tsan_fence       seq_cst RMW (TSan builds only): stands for the fence.
 */
#include <cc/smr.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__SANITIZE_THREAD__)
#define CC__SMR_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CC__SMR_TSAN 1
#endif
#endif

#define ACTIVE ((uint64_t)1)
#define LOCK ((uint64_t)2)
#define EPOCH_OF(w) ((w) >> 2)
#define CHUNK_CAP 62u   /* 62 * 24 + header = 1512 bytes */
#define CACHE_MAX 4u
#define RESERVE_CHUNKS 8u

typedef struct {
    void *node;
    size_t size;
    cc_smr_free_fn fn;
} entry_t;

typedef struct chunk {
    struct chunk *next;
    uint64_t tag;
    uint32_t count;
    entry_t e[CHUNK_CAP];
} chunk_t;

typedef struct {
    chunk_t *head; /* the chunk being filled first; NULL when empty */
    uint64_t tag;
    size_t count;
} bag_t;

typedef struct rec {
    /* Read by every scanner: its own cache line, with the registry link. */
    _Alignas(CC_CACHE_LINE_SIZE) _Atomic uint64_t announce;
    _Atomic(struct rec *) next;
    /* Owner-only hot state. */
    _Alignas(CC_CACHE_LINE_SIZE) unsigned depth;
    uint64_t qval;          /* the quiescent announce value the owner expects */
    uint64_t seen_epoch;    /* last epoch whose safe bags were freed at enter */
    uint64_t scan_epoch;    /* epoch the current scan pass is for */
    struct rec *scan_pos;   /* next record to check; NULL = end of registry */
    bool scan_valid;
    uint64_t next_trigger;  /* `bagged` value that triggers the next full scan */
    chunk_t *cache;         /* spare chunks, owner only */
    unsigned ncache;
    chunk_t *to_free;       /* detached safe chunks, freed after the section */
    bool flushing;          /* running free functions (no nested flush) */
    /* Bags: owner while ACTIVE, or whoever holds LOCK. */
    bag_t bags[3];
    /* Statistics (see the ordering table). */
    _Atomic uint64_t cur;   /* announced epoch while active */
    _Atomic uint64_t bagged;
    _Atomic uint64_t retired;
    _Atomic uint64_t freed;
    _Atomic int in_use;     /* under g_lock */
    /* Nodes moved to to_free / freed from it, ever (single writer: the owner;
     * under g_lock for orphans). A barrier waits until flushed >= detached. */
    _Atomic uint64_t detached;
    _Atomic uint64_t flushed;
} rec_t;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER; /* registry, orphans, reserve */
static _Atomic uint64_t g_epoch = 1;
static _Atomic(rec_t *) g_head;
static rec_t *g_tail;                /* under g_lock */
static chunk_t *g_orphans;           /* under g_lock */
static _Atomic uint64_t g_orphan_nodes;
static _Atomic uint64_t g_peak;
static chunk_t g_reserve[RESERVE_CHUNKS];
static chunk_t *g_reserve_free;      /* under g_lock */
static __thread rec_t *t_rec CC__TLS_IE; /* one pointer of initial-exec TLS */
#ifdef CC__SMR_TSAN
static _Atomic uint64_t g_tsan_fence;
#endif

/* ---- small helpers ----------------------------------------------------------- */

static inline void sc_fence(void) {
#ifdef CC__SMR_TSAN
    atomic_fetch_add_explicit(&g_tsan_fence, 0, memory_order_seq_cst);
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

static inline void bump(_Atomic uint64_t *c, int64_t by) {
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + (uint64_t)by,
                          memory_order_relaxed);
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

static void free_chunk_storage(chunk_t *c) {
    if (c >= g_reserve && c < g_reserve + RESERVE_CHUNKS) {
        pthread_mutex_lock(&g_lock);
        c->next = g_reserve_free;
        g_reserve_free = c;
        pthread_mutex_unlock(&g_lock);
    } else {
        free(c);
    }
}

/* Runs the free functions of a detached list of chunks; recycles the chunks
 * into r's cache. Counts into r's `freed`. free_fn may call cc_smr_retire. */
static size_t free_chunks(rec_t *r, chunk_t *list) {
    size_t n = 0;
    while (list) {
        chunk_t *c = list;
        list = c->next;
        for (uint32_t i = 0; i < c->count; i++) {
            entry_t *e = &c->e[i];
            if (e->fn) e->fn(e->node, e->size);
            else cc_free(e->node, e->size);
        }
        n += c->count;
        bump(&r->freed, (int64_t)c->count);
        c->count = 0;
        if (r->ncache < CACHE_MAX && !(c >= g_reserve && c < g_reserve + RESERVE_CHUNKS)) {
            c->next = r->cache;
            r->cache = c;
            r->ncache++;
        } else {
            free_chunk_storage(c);
        }
    }
    return n;
}

/* Detaches the bags of r that are safe at epoch `e` (tag + 2 <= e) and appends
 * them to *out. Caller is the owner while ACTIVE, or holds r's LOCK. When the
 * chunks go to a to_free list, `detached` is that list's counter: it is bumped
 * before `bagged` drops (release), so a barrier that reads the lower `bagged`
 * (acquire) also sees the nodes as in flight. */
static void detach_safe(rec_t *r, uint64_t e, chunk_t **out, _Atomic uint64_t *detached) {
    for (int i = 0; i < 3; i++) {
        bag_t *b = &r->bags[i];
        if (b->count == 0 || b->tag + 2 > e) continue;
        chunk_t *last = b->head;
        while (last->next) last = last->next;
        last->next = *out;
        *out = b->head;
        if (detached) bump(detached, (int64_t)b->count);
        atomic_store_explicit(&r->bagged, atomic_load_explicit(&r->bagged, memory_order_relaxed) - b->count,
                              memory_order_release);
        b->head = NULL;
        b->count = 0;
    }
}

/* Moves r's safe bags to r->to_free (r is ACTIVE); they are freed by flush(),
 * normally right after the section ends, so that free functions do not
 * lengthen critical sections (a long section delays everyone's reclamation). */
static void reclaim_own(rec_t *r, uint64_t e) { detach_safe(r, e, &r->to_free, &r->detached); }

/* Runs the free functions of r->to_free. Not re-entrant: a free function that
 * retires and so detaches more chunks leaves them to the running loop. */
static size_t flush(rec_t *r) {
    if (r->flushing) return 0;
    r->flushing = true;
    size_t n = 0;
    while (r->to_free) {
        chunk_t *list = r->to_free;
        r->to_free = NULL;
        size_t k = free_chunks(r, list);
        n += k;
        /* release: these frees happen before a barrier that sees the count. */
        atomic_store_explicit(&r->flushed, atomic_load_explicit(&r->flushed, memory_order_relaxed) + k,
                              memory_order_release);
    }
    r->flushing = false;
    return n;
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
}

/* Moves all of r's bags to the orphan list. Caller holds g_lock and excludes
 * other users of r's bags. */
static void orphan_bags_locked(rec_t *r) {
    for (int i = 0; i < 3; i++) {
        bag_t *b = &r->bags[i];
        if (b->count == 0) continue;
        chunk_t *c = b->head;
        while (c) {
            chunk_t *next = c->next;
            c->tag = b->tag;
            c->next = g_orphans;
            g_orphans = c;
            c = next;
        }
        atomic_store_explicit(&g_orphan_nodes,
                              atomic_load_explicit(&g_orphan_nodes, memory_order_relaxed) + b->count,
                              memory_order_relaxed);
        bump(&r->bagged, -(int64_t)b->count);
        b->head = NULL;
        b->count = 0;
    }
}

/* ---- epoch advance ---------------------------------------------------------- */

/* Checks up to `budget` records for epoch e and advances g_epoch when a pass
 * completes. The caller loaded g_epoch == e BEFORE a seq_cst fence that
 * precedes this call (see I1). */
static void scan(rec_t *r, uint64_t e, unsigned budget) {
    if (!r->scan_valid || r->scan_epoch != e) {
        r->scan_epoch = e;
        r->scan_valid = true;
        r->scan_pos = atomic_load_explicit(&g_head, memory_order_acquire);
    }
    while (budget--) {
        rec_t *o = r->scan_pos;
        if (o == NULL) {
            uint64_t exp = e;
            atomic_compare_exchange_strong_explicit(&g_epoch, &exp, e + 1, memory_order_acq_rel,
                                                    memory_order_relaxed);
            r->scan_valid = false;
            return;
        }
        uint64_t w = atomic_load_explicit(&o->announce, memory_order_acquire);
        if ((w & ACTIVE) && EPOCH_OF(w) != e) return; /* blocked by o; retry later */
        r->scan_pos = atomic_load_explicit(&o->next, memory_order_acquire);
    }
}

/* ---- registration --------------------------------------------------------- */

static void thread_exit(void *arg);
static void leave(rec_t *r);
static size_t flush(rec_t *r);

static void atfork_prepare(void) { pthread_mutex_lock(&g_lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&g_lock); }
/* In the child only the forking thread exists: every other record belongs to a
 * thread that is gone. Orphan their bags and mark them free and quiescent
 * (dropping any LOCK a barrier held), so the epoch can advance in the child. */
static void atfork_child(void) {
    pthread_mutex_init(&g_lock, NULL);
    rec_t *me = t_rec;
    for (rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire); o;
         o = atomic_load_explicit(&o->next, memory_order_acquire)) {
        if (o == me) {
            uint64_t w = atomic_load_explicit(&o->announce, memory_order_relaxed) & ~LOCK;
            atomic_store_explicit(&o->announce, w, memory_order_relaxed);
            continue;
        }
        /* Frees that thread had in flight cannot finish here: leak them
         * (the child's copy) rather than wait for them forever. */
        o->to_free = NULL;
        o->flushing = false;
        atomic_store_explicit(&o->flushed, atomic_load_explicit(&o->detached, memory_order_relaxed),
                              memory_order_relaxed);
        if (atomic_load_explicit(&o->in_use, memory_order_relaxed)) {
            orphan_bags_locked(o);
            atomic_store_explicit(&o->in_use, 0, memory_order_relaxed);
        }
        atomic_store_explicit(&o->announce, 0, memory_order_relaxed);
        o->qval = 0;
    }
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
}

static chunk_t *new_chunk_malloc(void) {
    chunk_t *c = malloc(sizeof *c);
    if (c) {
        c->next = NULL;
        c->count = 0;
        c->tag = 0;
    }
    return c;
}

static __attribute__((noinline)) rec_t *register_thread(void) {
    pthread_once(&g_once, init_once);
    pthread_mutex_lock(&g_lock);
    rec_t *r = NULL;
    for (rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire); o;
         o = atomic_load_explicit(&o->next, memory_order_acquire)) {
        if (!atomic_load_explicit(&o->in_use, memory_order_relaxed)) {
            r = o;
            break;
        }
    }
    if (r == NULL) {
        r = aligned_alloc(CC_CACHE_LINE_SIZE, sizeof *r);
        if (r == NULL) {
            pthread_mutex_unlock(&g_lock);
            fprintf(stderr, "concurrent_collections: smr: out of memory registering a thread\n");
            abort();
        }
        memset((void *)r, 0, sizeof *r);
        atomic_init(&r->announce, 0);
        atomic_init(&r->next, NULL);
        atomic_init(&r->in_use, 1);
        /* release: a traversal that finds r sees it initialised. */
        if (g_tail) atomic_store_explicit(&g_tail->next, r, memory_order_release);
        else atomic_store_explicit(&g_head, r, memory_order_release);
        g_tail = r;
    } else {
        atomic_store_explicit(&r->in_use, 1, memory_order_relaxed);
    }
    pthread_mutex_unlock(&g_lock);
    /* A barrier may hold LOCK right now; the owner's first enter waits for it. */
    r->qval = atomic_load_explicit(&r->announce, memory_order_relaxed) & ~(LOCK | ACTIVE);
    r->depth = 0;
    r->scan_valid = false;
    r->seen_epoch = 0;
    r->next_trigger = cc_config_retire_threshold();
    while (r->ncache < 2) { /* the preallocated spares */
        chunk_t *c = new_chunk_malloc();
        if (!c) break;
        c->next = r->cache;
        r->cache = c;
        r->ncache++;
    }
    t_rec = r;
    pthread_setspecific(g_key, r);
    return r;
}

static inline rec_t *get_rec(void) {
    rec_t *r = t_rec;
    if (CC__UNLIKELY(r == NULL)) r = register_thread();
    return r;
}

/* Exclusive access to a quiescent record's bags (barrier, exiting owner).
 * Waits while the owner is inside a section or another holder has LOCK. */
static uint64_t lock_record(rec_t *o) {
    unsigned spins = 0;
    for (;;) {
        uint64_t w = atomic_load_explicit(&o->announce, memory_order_acquire);
        if (!(w & (ACTIVE | LOCK)) &&
            atomic_compare_exchange_weak_explicit(&o->announce, &w, w | LOCK, memory_order_acquire,
                                                  memory_order_relaxed))
            return w;
        backoff(&spins);
    }
}

static void unlock_record(rec_t *o, uint64_t w) {
    atomic_store_explicit(&o->announce, w, memory_order_release);
}

static void thread_exit(void *arg) {
    rec_t *r = arg;
    uint64_t w;
    if (r->depth > 0) { /* exited inside a section: leave it */
        r->depth = 0;
        leave(r);
    }
    flush(r);
    w = lock_record(r);
    /* Owner fields first: once in_use drops (under g_lock) a new thread may
     * claim the record and write them; g_lock orders our writes before its. */
    while (r->cache) {
        chunk_t *c = r->cache;
        r->cache = c->next;
        free(c);
    }
    r->ncache = 0;
    r->scan_valid = false;
    t_rec = NULL;
    pthread_mutex_lock(&g_lock);
    orphan_bags_locked(r);
    atomic_store_explicit(&r->in_use, 0, memory_order_relaxed);
    pthread_mutex_unlock(&g_lock);
    /* Unlock last: a new owner's first enter waits for it. */
    unlock_record(r, w);
}

/* ---- sections ---------------------------------------------------------------- */

static void announce_active(rec_t *r) {
    uint64_t e = epoch_now();
    uint64_t q = r->qval;
    unsigned spins = 0;
    while (!atomic_compare_exchange_weak_explicit(&r->announce, &q, (e << 2) | ACTIVE,
                                                  memory_order_acq_rel, memory_order_relaxed)) {
        q = r->qval; /* fails while a barrier holds LOCK (or spuriously) */
        backoff(&spins);
        e = epoch_now();
    }
    sc_fence();
    for (;;) { /* validation: see (I1) */
        uint64_t e2 = epoch_now();
        if (e2 == e) break;
        e = e2;
        atomic_store_explicit(&r->announce, (e << 2) | ACTIVE, memory_order_release);
        sc_fence();
    }
    atomic_store_explicit(&r->cur, e, memory_order_relaxed);
    scan(r, e, 1);
    if (e != r->seen_epoch) {
        r->seen_epoch = e;
        if (atomic_load_explicit(&r->bagged, memory_order_relaxed)) reclaim_own(r, e);
    }
}

static void leave(rec_t *r) {
    uint64_t q = atomic_load_explicit(&r->cur, memory_order_relaxed) << 2;
    r->qval = q;
    atomic_store_explicit(&r->announce, q, memory_order_release);
}

/* Leaves the outermost section, then frees what the section detached. */
static size_t leave_and_flush(rec_t *r) {
    if (r->to_free == NULL || r->flushing) {
        leave(r);
        return 0;
    }
    leave(r);
    return flush(r);
}

CC_API void cc_smr_enter(void) {
    rec_t *r = get_rec();
    if (r->depth++ == 0) announce_active(r);
}

CC_API void cc_smr_exit(void) {
    rec_t *r = t_rec;
    if (r == NULL || r->depth == 0) return; /* unbalanced exit: ignored */
    if (--r->depth == 0) leave_and_flush(r);
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
         o = atomic_load_explicit(&o->next, memory_order_acquire)) {
        ret += atomic_load_explicit(&o->retired, memory_order_relaxed);
        fr += atomic_load_explicit(&o->freed, memory_order_relaxed);
    }
    return ret > fr ? ret - fr : 0;
}

/* Full scan, then detach what is safe (own bags, orphans); r is ACTIVE. */
static void help(rec_t *r) {
    uint64_t e = epoch_now();
    sc_fence();
    scan(r, e, UINT32_MAX);
    e = epoch_now();
    reclaim_own(r, e);
    take_orphans(r, e, false);
}

static void trigger(rec_t *r) {
    help(r);
    update_peak(sum_pending());
    r->next_trigger = atomic_load_explicit(&r->bagged, memory_order_relaxed) + cc_config_retire_threshold();
}

/* Waits until g_epoch >= target, advancing it; the caller is quiescent. */
static void advance_to(uint64_t target) {
    unsigned spins = 0;
    for (;;) {
        uint64_t e = epoch_now();
        if (e >= target) return;
        sc_fence();
        rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire);
        while (o) {
            uint64_t w = atomic_load_explicit(&o->announce, memory_order_acquire);
            if ((w & ACTIVE) && EPOCH_OF(w) != e) {
                if (epoch_now() != e) break; /* someone else advanced */
                backoff(&spins);
                continue;
            }
            o = atomic_load_explicit(&o->next, memory_order_acquire);
        }
        if (o == NULL) {
            uint64_t exp = e;
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

CC_API void cc_smr_retire(void *node, size_t size, cc_smr_free_fn free_fn) {
    if (node == NULL) return;
#ifdef CC_SMR_BROKEN_FREE_ON_RETIRE
    /* TEST ONLY: frees at once, so readers hit freed memory. */
    {
        rec_t *br = get_rec();
        bump(&br->retired, 1);
        if (free_fn) free_fn(node, size);
        else cc_free(node, size);
        bump(&br->freed, 1);
        return;
    }
#endif
    rec_t *r = get_rec();
    if (r->depth++ == 0) announce_active(r);
    uint64_t tag = atomic_load_explicit(&r->cur, memory_order_relaxed) + 1;
    bag_t *b = &r->bags[tag % 3];
    bool recycled = false;
    for (;;) {
        if (b->count != 0 && b->tag != tag) {
            /* Same index, older tag: tag' <= tag - 3 <= cur - 2, and we read
             * g_epoch >= cur, so that bag is safe. */
            detach_safe(r, tag - 1, &r->to_free, &r->detached);
        }
        if (b->count == 0) b->tag = tag;
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
        if (c == NULL) c = take_reserve();
        if (c == NULL) {
            if (r->depth > 1) {
                fprintf(stderr, "concurrent_collections: smr: out of memory for limbo bags inside a "
                                "critical section; cannot defer the free safely\n");
                abort();
            }
            /* Synchronous fallback: leave the section, wait until the node is
             * safe (g_epoch >= tag + 2) and free it here. */
            bump(&r->retired, 1);
            r->depth = 0;
            leave_and_flush(r);
            advance_to(tag + 2);
            if (free_fn) free_fn(node, size);
            else cc_free(node, size);
            bump(&r->freed, 1);
            return;
        }
        c->next = b->head;
        b->head = c;
        break;
    }
    chunk_t *h = b->head;
    h->e[h->count++] = (entry_t){node, size, free_fn};
    b->count++;
    bump(&r->retired, 1);
    bump(&r->bagged, 1);
    if (atomic_load_explicit(&r->bagged, memory_order_relaxed) >= r->next_trigger) trigger(r);
    if (--r->depth == 0) leave_and_flush(r);
}

/* ---- poll, barrier, stats --------------------------------------------------- */

CC_API size_t cc_smr_poll(void) {
    rec_t *r = get_rec();
    bool outer = r->depth++ == 0;
    if (outer) announce_active(r);
    help(r);
    if (--r->depth == 0) return leave_and_flush(r);
    return flush(r);
}

CC_API int cc_smr_barrier(void) {
    rec_t *r = get_rec();
    if (r->depth > 0) {
        errno = EDEADLK;
        return -1;
    }
    /* Every node retired before this call has tag <= e0 + 1 (its retirer
     * announced a <= e0), so it is safe once g_epoch >= e0 + 3. */
    sc_fence();
    uint64_t e0 = epoch_now();
    advance_to(e0 + 3);
    uint64_t e = epoch_now();
    for (rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire); o;
         o = atomic_load_explicit(&o->next, memory_order_acquire)) {
        /* A retire that happened before this call is visible in `bagged`. */
        /* acquire: a zero written by a detach makes that detach's `detached`
         * count visible to the wait below. */
        if (atomic_load_explicit(&o->bagged, memory_order_acquire) == 0) continue;
        uint64_t w = lock_record(o);
        chunk_t *list = NULL;
        detach_safe(o, e, &list, NULL);
        unlock_record(o, w);
        if (list) free_chunks(r, list);
    }
    take_orphans(r, e, true);
    flush(r);
    /* Nodes other threads detached (to free after their section) but may
     * still be freeing: wait until each has freed as many as it detached. */
    for (rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire); o;
         o = atomic_load_explicit(&o->next, memory_order_acquire)) {
        if (o == r) continue;
        uint64_t d = atomic_load_explicit(&o->detached, memory_order_acquire);
        unsigned spins = 0;
        while (atomic_load_explicit(&o->flushed, memory_order_acquire) < d) backoff(&spins);
    }
    return 0;
}

CC_API cc_smr_snapshot_t cc_smr_stats(void) {
    cc_smr_snapshot_t s;
    memset(&s, 0, sizeof s);
    uint64_t e = epoch_now();
    uint64_t ret = 0, fr = 0;
    for (rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire); o;
         o = atomic_load_explicit(&o->next, memory_order_acquire)) {
        ret += atomic_load_explicit(&o->retired, memory_order_relaxed);
        fr += atomic_load_explicit(&o->freed, memory_order_relaxed);
        if (atomic_load_explicit(&o->in_use, memory_order_relaxed)) s.threads++;
        uint64_t w = atomic_load_explicit(&o->announce, memory_order_acquire);
        if ((w & ACTIVE) && EPOCH_OF(w) < e) s.stalled_threads++;
    }
    s.retired = ret;
    s.freed = fr > ret ? ret : fr;
    s.pending = ret - s.freed;
    s.epoch = e;
    s.orphaned = atomic_load_explicit(&g_orphan_nodes, memory_order_relaxed);
    update_peak(s.pending);
    s.peak_pending = atomic_load_explicit(&g_peak, memory_order_relaxed);
    return s;
}
