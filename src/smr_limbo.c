/*
 * src/smr_limbo.c -- limbo storage: the bags of retired nodes, their chunks,
 * the free queue (free_queue) that cc__smr_flush() empties after a section, the orphan
 * list, and the out-of-memory machinery.
 *
 * Invariants kept here: a bag holds only nodes retired under one tag, and is
 * detached only once safe (tag + 2 <= an epoch read from g_epoch); every
 * retired node is freed exactly once, whatever malloc does; the counters
 * retired >= out_of_bags and queued >= queue_freed describe one pipeline:
 * a node is retired into a bag, leaves it (out_of_bags: detached into a free
 * queue, orphaned, or freed synchronously), and a queued node is freed by
 * cc__smr_flush() (queue_freed).
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
 */
#include <cc/smr.h>

#include "smr_internal.h"

static chunk_t *g_orphans;           /* under g_lock */
/* Written now and then; kept off g_epoch's line. */
_Alignas(CC__LAYOUT_LINE) _Atomic uint64_t cc__smr_orphan_nodes;
static chunk_t g_reserve[RESERVE_CHUNKS];
static chunk_t *g_reserve_free;      /* under g_lock */
/* Test hook (src/smr_internal.h): every n-th limbo chunk allocation fails. */
static _Atomic uint64_t g_chunk_fail_every;
static _Atomic uint64_t g_chunk_fail_count;

/* Puts the static reserve on its free list (once, from init_once). */
void cc__smr_limbo_init(void) {
    for (unsigned i = 0; i < RESERVE_CHUNKS; i++) {
        g_reserve[i].next = g_reserve_free;
        g_reserve_free = &g_reserve[i];
    }
}

CC_API void cc__smr_fail_chunk_alloc(uint64_t every) {
    atomic_store_explicit(&g_chunk_fail_count, 0, memory_order_relaxed);
    atomic_store_explicit(&g_chunk_fail_every, every, memory_order_relaxed);
}

chunk_t *cc__smr_new_chunk(void) {
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
 * `queue_freed` -- release: the free function's effects happen before a barrier
 * that sees the count (it waits until queue_freed >= queued). */
static inline void count_queue_freed(rec_t *r, uint32_t n) {
    bump(&r->freed, n);
    atomic_store_explicit(&r->queue_freed, atomic_load_explicit(&r->queue_freed, memory_order_relaxed) + n,
                          memory_order_release);
}

/* Detaches the bags of r that are safe at epoch `e` (tag + 2 <= e) and appends
 * them to *out. Caller is the owner while ACTIVE, or holds r's LOCK. When the
 * chunks go to a free queue, `queued` is that list's counter: it is bumped
 * before `out_of_bags` grows (release), so a barrier that reads the higher
 * `out_of_bags` (acquire) also sees the nodes as in flight. */
void cc__smr_detach_safe(rec_t *r, uint64_t e, chunk_t **out, _Atomic uint64_t *queued) {
    for (int i = 0; i < 3; i++) {
        bag_t *b = &r->bags[i];
        if (b->head == NULL || b->tag + 2 > e) continue;
        chunk_t *last = b->head;
        uint64_t n = last->count;
        while (last->next) {
            last = last->next;
            n += last->count;
        }
        chunk_t *first = b->head;
        CC__SMR_STEP(CC__SMR_STEP_DETACH);
        /* Out of the bag first, then onto the list: a child forked at any
         * instruction never finds a chunk in both (atfork_child would free it
         * twice); in between it is in neither, which the child's accounting
         * counts as leaked (cc__smr_reconcile_in_child). */
        b->head = NULL;
        atomic_signal_fence(memory_order_seq_cst);
        last->next = *out;
        *out = first;
        if (queued) bump(queued, (int64_t)n);
        atomic_store_explicit(&r->out_of_bags, atomic_load_explicit(&r->out_of_bags, memory_order_relaxed) + n,
                              memory_order_release);
    }
}

/* Nodes in r's bags, counted from the chunks (the child only). */
static uint64_t bag_nodes(const rec_t *r) {
    uint64_t n = 0;
    for (int i = 0; i < 3; i++)
        for (const chunk_t *c = r->bags[i].head; c != NULL; c = c->next) n += c->count;
    return n;
}

/* atfork_child, after every gone thread's bags and queues are orphans: make
 * the counters say what the child holds. The threads that are gone may have
 * stopped anywhere -- between appending an entry and counting it retired,
 * between taking chunks out of a bag and putting them on a queue (leaked in
 * the child), in the middle of counting frees -- so the counters need not
 * match the chunks. The chunks are the truth: pending = the nodes on the
 * orphan list + the forking thread's bags + its queued, uncounted frees.
 * `retired` and `freed` only grow: the difference goes to a gone thread's
 * record (`dead`), as retired (entries not counted yet) or freed (leaked). */
void cc__smr_reconcile_in_child(rec_t *me, rec_t *dead) {
    uint64_t orphans = 0;
    for (const chunk_t *c = g_orphans; c != NULL; c = c->next) orphans += c->count;
    atomic_store_explicit(&g_orphan_nodes, orphans, memory_order_relaxed);
    uint64_t pending = orphans;
    if (me != NULL)
        pending += bag_nodes(me) + atomic_load_explicit(&me->queued, memory_order_relaxed) -
                   atomic_load_explicit(&me->queue_freed, memory_order_relaxed);
    uint64_t retired = 0, freed = 0;
    for (rec_t *o = atomic_load_explicit(&g_head, memory_order_acquire); o; o = rec_next(o)) {
        retired += atomic_load_explicit(&o->pub.retired, memory_order_relaxed);
        freed += atomic_load_explicit(&o->freed, memory_order_relaxed);
    }
    if (dead == NULL) return;
    if (retired - freed > pending) bump(&dead->freed, (int64_t)(retired - freed - pending));
    else if (retired - freed < pending) bump(&dead->pub.retired, (int64_t)(pending - (retired - freed)));
}

/* Moves r's safe bags to r->free_queue (r is ACTIVE); they are freed by cc__smr_flush(),
 * normally right after the section ends, so that free functions do not
 * lengthen critical sections (a long section delays everyone's reclamation). */
void cc__smr_reclaim_own(rec_t *r, uint64_t e) {
    cc__smr_detach_safe(r, e, &r->free_queue, &r->queued);
    note_work(r);
}

/* Runs the free functions of r->free_queue. Not re-entrant: a free function that
 * retires and so detaches more chunks leaves them to the running loop. The
 * list being freed and the position in it live in the record (freeing,
 * free_pos), not on the stack: a thread that exits inside a free function
 * (pthread_exit, cancellation) leaves them where thread_exit() finds them and
 * finishes the job (flush_interrupted), so nothing is lost and the record is
 * clean for its next owner. */
size_t cc__smr_flush(rec_t *r) {
    if (r->flushing) return 0;
    r->flushing = true;
    size_t n = 0;
    for (;;) {
        if (r->freeing == NULL) {
            r->freeing = r->free_queue;
            r->free_queue = NULL;
            r->free_pos = 0;
            r->free_counted = 0;
            if (r->freeing == NULL) break;
        }
        chunk_t *c = r->freeing;
        while (r->free_pos < c->count) {
            entry_t *e = &c->e[r->free_pos++]; /* past it before the call: see above */
            CC__SMR_STEP(CC__SMR_STEP_FREE);
            if (e->fn) e->fn(e->node, e->size);
            else cc_free(e->node, e->size);
        }
        /* Counted once per chunk (the barrier waits for whole chunks). */
        count_queue_freed(r, c->count - r->free_counted);
        n += c->count - r->free_counted;
        r->freeing = c->next;
        r->free_pos = 0;
        r->free_counted = 0;
        recycle_chunk(r, c);
    }
    r->flushing = false;
    note_work(r);
    return n;
}

/* thread_exit(): the thread ended inside a free function that cc__smr_flush() called
 * (r->flushing). That entry's free function ran as far as it chose to: count
 * it, then the next cc__smr_flush() goes on after it. */
void cc__smr_flush_interrupted(rec_t *r) {
    if (!r->flushing) return;
    if (r->freeing != NULL) { /* the entries called so far, the interrupted one included */
        count_queue_freed(r, r->free_pos - r->free_counted);
        r->free_counted = r->free_pos;
    }
    r->flushing = false;
}

/* atfork_child: a special chunk (a record's spare, or one of the static
 * reserve) found on a gone thread's free queue goes back where it belongs,
 * once: the thread may have stopped with a chunk on two lists at once (the
 * flush moves chunks between them with plain stores), so each is checked. */
static void give_back_in_child(chunk_t *c) {
    if (c->home != NULL) {
        rec_t *home = c->home;
        if (!atomic_load_explicit(&home->spare_free, memory_order_relaxed)) free_chunk_storage(c);
        return;
    }
    for (chunk_t *f = g_reserve_free; f != NULL; f = f->next)
        if (f == c) return;
    free_chunk_storage(c);
}

/* atfork_child: o belongs to a thread that does not exist in the child. The
 * frees it had queued cannot run there: the flush that was running keeps its
 * list and position in several plain fields, and a fork may have caught them
 * half updated (a chunk finished but still listed, a position from the
 * previous chunk), so nothing in them can be trusted enough to run a free
 * function. They are leaked -- the child's copy of those nodes -- and
 * cc__smr_reconcile_in_child counts them as freed. Special chunks go back
 * (give_back_in_child); the cache's chunks, which the thread only ever adds
 * whole chunks to, are freed. The child is single-threaded here. */
void cc__smr_drop_queues_in_child(rec_t *o) {
    chunk_t *lists[2] = {o->freeing, o->free_queue};
    for (int i = 0; i < 2; i++) {
        chunk_t *next;
        unsigned guard = 0;
        for (chunk_t *c = lists[i]; c != NULL && guard < (1u << 24); c = next, guard++) {
            next = c->next;
            if (special_chunk(c)) give_back_in_child(c);
        }
    }
    atomic_store_explicit(&o->queue_freed, atomic_load_explicit(&o->queued, memory_order_relaxed),
                          memory_order_relaxed);
    o->free_queue = NULL;
    o->freeing = NULL;
    o->free_pos = 0;
    o->free_counted = 0;
    o->flushing = false;
    while (o->cache != NULL) {
        chunk_t *c = o->cache;
        o->cache = c->next;
        free(c);
    }
    o->ncache = 0;
}

/* Moves the orphan chunks that are safe at epoch e to r->free_queue. */
void cc__smr_take_orphans(rec_t *r, uint64_t e, bool block) {
    /* block (the barrier): always take g_lock, never trust the relaxed hint.
     * The mutex orders us after every earlier orphaning (thread exit) and
     * every earlier take by another thread (whose `queued` we then see, and
     * wait for); a relaxed 0 read here could be stale on a weakly ordered
     * CPU, and the barrier would return with orphans pending. */
    if (!block && atomic_load_explicit(&g_orphan_nodes, memory_order_relaxed) == 0) return;
    if (block) pthread_mutex_lock(&g_lock);
    else if (pthread_mutex_trylock(&g_lock) != 0) return;
    chunk_t *keep = NULL, *take = r->free_queue, *c = g_orphans;
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
    bump(&r->queued, (int64_t)n);
    atomic_store_explicit(&g_orphan_nodes,
                          atomic_load_explicit(&g_orphan_nodes, memory_order_relaxed) - n,
                          memory_order_relaxed);
    pthread_mutex_unlock(&g_lock);
    r->free_queue = take;
    note_work(r);
}

/* Moves all of r's bags to the orphan list and returns how many nodes moved.
 * Caller holds g_lock and excludes other users of r's bags. The nodes are
 * counted from the chunks: in a forked child, r may belong to a thread that
 * stopped between appending an entry and counting it in `retired`, and the
 * chunks' counts are what will actually be freed. */
uint64_t cc__smr_orphan_bags_locked(rec_t *r) {
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
        bump(&r->out_of_bags, (int64_t)n);
        b->head = NULL;
        moved += n;
    }
    return moved;
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
void cc__smr_restore_headroom(rec_t *r) {
    r->need_headroom = false;
    note_work(r);
    if (has_headroom(r)) return;
    chunk_t *c = cc__smr_new_chunk();
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
    cc__smr_advance_to(oldest + 2); /* quiescent: waits for the sections that pin it */
    cc_smr_enter(); /* the bags are ours only while ACTIVE */
    cc__smr_reclaim_own(r, epoch_now());
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
    return cc__smr_new_chunk();
}

bool cc__smr_retire_to_bag(rec_t *r, uint64_t a, void *node, size_t size,
                                                  cc_smr_free_fn free_fn, bool internal) {
    uint64_t tag = a + 1;
    bag_t *b = &r->bags[tag % 3];
    bool recycled = false;
    for (;;) {
        if (b->head != NULL && b->tag != tag) {
            /* Same index, older tag: tag' <= tag - 3 <= a - 2, and we read
             * g_epoch >= a, so that bag is safe. */
            cc__smr_detach_safe(r, tag - 1, &r->free_queue, &r->queued);
            note_work(r);
        }
        if (b->head == NULL) b->tag = tag;
        if (b->head != NULL && b->head->count < CHUNK_CAP) break;
        chunk_t *c = get_chunk(r);
        if (c == NULL && !recycled) {
            /* Out of memory: free our safe bags to recycle their chunks. Free
             * functions may retire (and change b), so re-check from the top. */
            recycled = true;
            cc__smr_reclaim_own(r, epoch_now());
            cc__smr_flush(r);
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
            bump(&r->out_of_bags, 1); /* never bagged */
            cc__smr_leave_and_flush(r);
            CC__SMR_STEP(CC__SMR_STEP_OOM_SYNC);
            cc__smr_advance_to(tag + 2);
            r->flushing = true; /* a barrier from this free function: EDEADLK */
            if (free_fn) free_fn(node, size);
            else cc_free(node, size);
            r->flushing = false;
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
