/*
 * The allocation glue: backend selection, the out-of-line slow paths of
 * <cc/alloc.h>, and statistics.
 *
 * Invariants:
 *  - cc__alloc_mode has CC__MODE_SLOW set until the first allocation of the
 *    process and whenever the backend is not mimalloc; so the inline fast path
 *    only ever serves mimalloc, and cc_alloc_set_backend can still change the
 *    backend while no block exists. The backend never changes after the first
 *    allocation (a block must be freed by the backend that made it).
 *  - Byte counts: every allocation counts F(p, n) and every free of the same
 *    block counts the same F, so counts balance exactly (see alloc.h):
 *      mimalloc: n <= CC__SIZE_TABLE_MAX and n unambiguous -> size_table[n]
 *                an aligned block (alignment > 8) otherwise -> mi_usable_size(p)
 *                  at allocation, kept in the aligned-block table until the
 *                  sized free takes it (mimalloc 3.0.1 changes its answer)
 *                otherwise -> mi_usable_size(p)
 *      system:   malloc_usable_size(p)
 *      debug:    n (the debug header stores it)
 *    For plain blocks size_table[n] == mi_usable_size(p) (tested), which is
 *    why cc_free_unsized can count mi_usable_size(p).
 *  - Per-thread counters (cc__alloc_tls, and the class block it points to)
 *    are written only by their thread.
 *    A registered thread is linked in `threads` under `lock`; its destructor
 *    folds the counts into `exited` under the same lock, so a snapshot never
 *    counts a thread twice or loses one. After the fold, the thread counts in
 *    the `loose` atomics.
 *  - Snapshots report totals minus a baseline; a reset moves the baseline.
 *    Frees beyond allocations (blocks from before an enable or reset) move
 *    the free baseline up instead of showing up as negative usage.
 */
#include "alloc_internal.h"

#include <dlfcn.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

CC_API atomic_uint cc__alloc_mode = CC__MODE_SLOW;
CC_API uint32_t cc__size_table[CC__SIZE_TABLE_MAX + 1];
CC_API __thread cc__alloc_tls_t cc__alloc_tls CC__TLS_IE;

typedef struct {
    uint64_t alloc_count, free_count, alloc_bytes, free_bytes;
} counts_t;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static pthread_key_t exit_key;
/* Guards backend, stats_on, first_alloc_done (writes), threads, exited, base. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* Written under `lock` before the first allocation only; afterwards read-only.
 * Readers that run after an allocation see it through the acquire load of
 * first_alloc_done or of the mode word. */
static cc_backend_t backend = CC_BACKEND_MIMALLOC;
/* Whether statistics are on. Written under `lock`; read without it by
 * cc_alloc_stats_enabled (relaxed: a flag with nothing to publish). */
static atomic_bool stats_on;
/* release/acquire: a thread that sees it set also sees the backend it froze. */
static atomic_bool first_alloc_done;

static cc__alloc_tls_t *threads; /* registered threads, under lock */
static counts_t exited;          /* folded counts of exited threads, under lock */
/* The event window (under lock): the counts of the intervals with statistics
 * on since the last reset are `window` plus, while on, totals() - `mark`. */
static counts_t window, mark;
/* Counts of threads past their exit destructor: relaxed RMW, they are plain
 * counters read under the lock by snapshots. */
static _Atomic uint64_t loose_alloc_count, loose_free_count, loose_alloc_bytes, loose_free_bytes;

/* ---- initialisation and mode ---------------------------------------------- */

static void publish_mode(void) { /* call with lock held */
    unsigned mode = 0;
    if (backend != CC_BACKEND_MIMALLOC || !atomic_load_explicit(&first_alloc_done, memory_order_relaxed))
        mode |= CC__MODE_SLOW;
    /* release: a fast path that reads this mode must also see the size table
     * and backend written before it. */
    atomic_store_explicit(&cc__alloc_mode, mode, memory_order_release);
}

static void thread_exit(void *arg);
static void resolve_libc(void);

static pthread_mutex_t aligned_lock = PTHREAD_MUTEX_INITIALIZER; /* aligned blocks (below); never held while taking `lock` */
static void atfork_prepare(void) {
    pthread_mutex_lock(&lock);
    pthread_mutex_lock(&aligned_lock);
}
static void atfork_release(void) {
    pthread_mutex_unlock(&aligned_lock);
    pthread_mutex_unlock(&lock);
}

#ifdef CC_ALLOC_TEST_HOOKS
/* TEST ONLY (the test-hooks library; tests/unit/test_alloc_fork.c): hold or
 * release the glue's registry lock, so that a test can fork while another
 * thread holds it. */
CC_API void cc__alloc_test_hold_lock(bool hold) {
    if (hold) pthread_mutex_lock(&lock);
    else pthread_mutex_unlock(&lock);
}
#endif

/* mimalloc 3 "reclaims on free": a thread that frees a block into an
 * abandoned page takes the whole page into its own heap. Under SMR most frees
 * are cross-thread (a node is freed by whichever thread's poll or barrier
 * runs), so pages pile up, partly used, in the heaps of the freeing threads,
 * where blocks that other threads free into them wait on the page's
 * thread-free list until the owner happens to visit that page again: the
 * 60 s soak grew to 520 MiB resident with about 40 MiB of live blocks.
 * Without it an abandoned page stays shared, is freed by whichever free
 * empties it, and is taken up by the next thread that needs a page. Later
 * mimalloc 3 releases make "no cross-thread reclaim" the default (value 0
 * there too). A MIMALLOC_(PAGE_)RECLAIM_ON_FREE in the environment wins.
 * docs/mimalloc3.md has the measurements. */
static void tune_mimalloc(void) {
#ifdef CC_MI_RECLAIM_OPTION
    if (getenv("MIMALLOC_RECLAIM_ON_FREE") == NULL && getenv("MIMALLOC_PAGE_RECLAIM_ON_FREE") == NULL)
        mi_option_set(CC_MI_RECLAIM_OPTION, 0);
#endif
}

static void init(void) {
    tune_mimalloc();
    for (size_t n = 0; n <= CC__SIZE_TABLE_MAX; n++) {
        size_t good = mi_good_size(n == 0 ? 1 : n);
        size_t rounded = CC__ROUND_LINE(n == 0 ? 1 : n);
        size_t good_rounded = rounded <= CC__SIZE_TABLE_MAX ? mi_good_size(rounded) : 0;
        cc__size_table[n] = (uint32_t)good | (good != good_rounded ? CC__SIZE_AMBIGUOUS : 0);
    }
    cc__size_table[0] = 0;
    pthread_key_create(&exit_key, thread_exit);
    pthread_atfork(atfork_prepare, atfork_release, atfork_release);
    pthread_mutex_lock(&lock);
    resolve_libc();
    backend = cc_config_env_backend();
    atomic_store_explicit(&stats_on, cc_config_env_stats(), memory_order_relaxed);
    publish_mode();
    pthread_mutex_unlock(&lock);
}

static inline void ensure_init(void) { pthread_once(&init_once, init); }

/* The first allocation freezes the backend. */
static void note_allocation(void) {
    if (CC__LIKELY(atomic_load_explicit(&first_alloc_done, memory_order_acquire))) return;
    pthread_mutex_lock(&lock);
    if (!atomic_load_explicit(&first_alloc_done, memory_order_relaxed)) {
        if (backend == CC_BACKEND_DEBUG) cc__debug_activate();
        atomic_store_explicit(&first_alloc_done, true, memory_order_release);
        publish_mode();
    }
    pthread_mutex_unlock(&lock);
}

const char *cc_alloc_backend(void) {
    ensure_init();
    pthread_mutex_lock(&lock);
    const char *name = cc_config_backend_name(backend);
    pthread_mutex_unlock(&lock);
    return name;
}

int cc_alloc_set_backend(const char *name) {
    cc_backend_t wanted;
    if (cc_config_parse_backend(name, &wanted) != 0) return -1; /* EINVAL */
    ensure_init();
    pthread_mutex_lock(&lock);
    if (atomic_load_explicit(&first_alloc_done, memory_order_relaxed)) {
        pthread_mutex_unlock(&lock);
        errno = EBUSY;
        return -1;
    }
    backend = wanted;
    publish_mode();
    pthread_mutex_unlock(&lock);
    return 0;
}

int cc_alloc_fail_inject(uint64_t nth, uint64_t every) {
    ensure_init();
    pthread_mutex_lock(&lock);
    bool debug = backend == CC_BACKEND_DEBUG;
    pthread_mutex_unlock(&lock);
    if (!debug) {
        errno = ENOTSUP;
        return -1;
    }
    cc__debug_fail_inject(nth, every);
    return 0;
}

/* ---- statistics ------------------------------------------------------------ */

/* Adds a thread's counts (its totals and its class block) to *c. */
static void add_thread(counts_t *c, const cc__alloc_tls_t *t) {
    c->alloc_count += atomic_load_explicit(&t->alloc_count, memory_order_relaxed);
    c->free_count += atomic_load_explicit(&t->free_count, memory_order_relaxed);
    c->alloc_bytes += atomic_load_explicit(&t->alloc_bytes, memory_order_relaxed);
    c->free_bytes += atomic_load_explicit(&t->free_bytes, memory_order_relaxed);
    const cc__alloc_classes_t *k = t->classes;
    if (k == NULL) return;
    for (unsigned n = 1; n <= CC__SIZE_TABLE_MAX; n++) {
        uint64_t a = atomic_load_explicit(&k->alloc[n], memory_order_relaxed);
        uint64_t f = atomic_load_explicit(&k->free[n], memory_order_relaxed);
        uint64_t bytes = cc__size_table[n] & ~CC__SIZE_AMBIGUOUS;
        c->alloc_count += a;
        c->alloc_bytes += a * bytes;
        c->free_count += f;
        c->free_bytes += f * bytes;
    }
}

static void thread_exit(void *arg) {
    cc__alloc_tls_t *t = arg;
    pthread_mutex_lock(&lock);
    add_thread(&exited, t);
    if (t->prev) t->prev->next = t->next;
    else threads = t->next;
    if (t->next) t->next->prev = t->prev;
    t->prev = t->next = NULL;
    t->state = 2;
    cc__alloc_classes_t *k = t->classes;
    t->classes = NULL; /* from here the inline paths take the slow path */
    pthread_mutex_unlock(&lock);
    free(k); /* unlinked: no snapshot reads it any more */
}

/* Returns the calling thread's counters, or NULL when it must count in the
 * loose atomics (exiting, or registration impossible). */
static cc__alloc_tls_t *my_counters(void) {
    cc__alloc_tls_t *t = &cc__alloc_tls;
    if (CC__LIKELY(t->state == 1)) return t;
    if (t->state == 2) return NULL;
    if (pthread_setspecific(exit_key, t) != 0) return NULL;
    /* The inline counters: only the mimalloc fast paths use them. If they
     * cannot be had, the thread counts through the library (exact, slower).
     * Callers have made or freed a block, so the backend is frozen and the
     * mode word is 0 for good under mimalloc (what cc__counters() relies on). */
    cc__alloc_classes_t *k = NULL;
    if (backend == CC_BACKEND_MIMALLOC) k = calloc(1, sizeof *k);
    pthread_mutex_lock(&lock);
    t->classes = k;
    t->prev = NULL;
    t->next = threads;
    if (threads) threads->prev = t;
    threads = t;
    t->state = 1;
    pthread_mutex_unlock(&lock);
    return t;
}

static void count_alloc(uint64_t bytes) {
    cc__alloc_tls_t *t = my_counters();
    if (t) {
        cc__bump(&t->alloc_count, 1);
        cc__bump(&t->alloc_bytes, bytes);
    } else {
        atomic_fetch_add_explicit(&loose_alloc_count, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&loose_alloc_bytes, bytes, memory_order_relaxed);
    }
}

static void count_free(uint64_t bytes) {
    cc__alloc_tls_t *t = my_counters();
    if (t) {
        cc__bump(&t->free_count, 1);
        cc__bump(&t->free_bytes, bytes);
    } else {
        atomic_fetch_add_explicit(&loose_free_count, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&loose_free_bytes, bytes, memory_order_relaxed);
    }
}

static counts_t totals(void) { /* call with lock held */
    counts_t c = exited;
    c.alloc_count += atomic_load_explicit(&loose_alloc_count, memory_order_relaxed);
    c.free_count += atomic_load_explicit(&loose_free_count, memory_order_relaxed);
    c.alloc_bytes += atomic_load_explicit(&loose_alloc_bytes, memory_order_relaxed);
    c.free_bytes += atomic_load_explicit(&loose_free_bytes, memory_order_relaxed);
    for (cc__alloc_tls_t *t = threads; t; t = t->next) add_thread(&c, t);
    return c;
}

static counts_t add_counts(counts_t a, counts_t b) {
    return (counts_t){a.alloc_count + b.alloc_count, a.free_count + b.free_count,
                      a.alloc_bytes + b.alloc_bytes, a.free_bytes + b.free_bytes};
}

/* a - b for counters that only grow: totals() taken later under the lock
 * reads every per-thread counter at or after the value an earlier call read
 * (the lock orders the two reads), and folds keep sums, so a >= b. */
static counts_t sub_counts(counts_t a, counts_t b) {
    return (counts_t){a.alloc_count - b.alloc_count, a.free_count - b.free_count,
                      a.alloc_bytes - b.alloc_bytes, a.free_bytes - b.free_bytes};
}

void cc_alloc_stats_enable(bool enable) {
    ensure_init();
    pthread_mutex_lock(&lock);
    bool was = atomic_load_explicit(&stats_on, memory_order_relaxed);
    if (enable && !was) mark = totals();
    if (!enable && was) window = add_counts(window, sub_counts(totals(), mark));
    atomic_store_explicit(&stats_on, enable, memory_order_relaxed);
    pthread_mutex_unlock(&lock);
}

bool cc_alloc_stats_enabled(void) {
    ensure_init();
    return atomic_load_explicit(&stats_on, memory_order_relaxed);
}

cc_alloc_snapshot_t cc_alloc_stats_snapshot(void) {
    ensure_init();
    cc_alloc_snapshot_t s;
    pthread_mutex_lock(&lock);
    counts_t all = totals();
    counts_t w = window;
    s.enabled = atomic_load_explicit(&stats_on, memory_order_relaxed);
    if (s.enabled) w = add_counts(w, sub_counts(all, mark));
    pthread_mutex_unlock(&lock);
    /* A snapshot only reads shared state. The per-thread counters are read
     * one after the other while their threads run, so the sum may hold a
     * consumer's frees of blocks whose allocations it read before they were
     * made: the live counts are clamped at 0 in the returned copy only. (Writing it into
     * shared state made every such snapshot lose frees for good.) */
    s.alloc_count = w.alloc_count;
    s.alloc_bytes = w.alloc_bytes;
    s.free_count = w.free_count; /* may exceed alloc_count: frees of older blocks */
    s.free_bytes = w.free_bytes;
    s.current_blocks = all.alloc_count > all.free_count ? all.alloc_count - all.free_count : 0;
    s.current_allocated = all.alloc_bytes > all.free_bytes ? all.alloc_bytes - all.free_bytes : 0;
    return s;
}

void cc_alloc_stats_reset(void) {
    ensure_init();
    pthread_mutex_lock(&lock);
    window = (counts_t){0, 0, 0, 0};
    mark = totals();
    pthread_mutex_unlock(&lock);
}

/* ---- backends ---------------------------------------------------------------- */

static inline bool is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

/* Bytes counted for a mimalloc block: see the invariants at the top. */
static inline size_t mi_counted(const void *p, size_t n) {
    if (n - 1 < CC__SIZE_TABLE_MAX && !(cc__size_table[n] & CC__SIZE_AMBIGUOUS))
        return cc__size_table[n];
    return mi_usable_size(p);
}

/* ---- aligned blocks: the bytes they were counted by ------------------------- *
 *
 * mimalloc serves an aligned request it cannot serve from a naturally aligned
 * block by over-allocating and returning a pointer inside the block; it marks
 * the page, and mi_usable_size(p) is then the block's size minus the offset.
 * mimalloc 3.0.1 does not keep that answer: once other blocks are allocated
 * in the same page, mi_usable_size(p) of such a pointer reports the whole
 * block's size, as if p were its start (tests/unit/test_mimalloc_facts.c;
 * docs/mimalloc3.md). Nearly every block from mi_malloc_aligned_at(n, a, 0)
 * with a >= 256 changes so; 2.0.9's answer never changes.
 *
 * Sized frees of sizes the size table cannot count (ambiguous ones and those
 * above CC__SIZE_TABLE_MAX) count mi_usable_size(p), so they must not ask it
 * of such a block. Nothing public tells an interior pointer from a block
 * start, or gives the block's size stably; and plain mi_malloc of a size
 * rounded to the alignment is not aligned often enough to avoid mimalloc's
 * over-allocation (never for alignments >= 2048 on 3.0.1). So the glue
 * remembers what it counted: every block from cc_alloc_aligned with an
 * alignment above 8 (mi_malloc_aligned_at) whose size would make the free ask
 * mi_usable_size is entered here with its counted bytes (its usable size at
 * allocation); the sized free of such a size looks the pointer up first. The
 * inline cc_free sends those sizes out of line while any entry is live
 * (cc__alloc_aligned_live), so its path for unambiguous sizes is unchanged.
 * Aligned blocks of unambiguous sizes <= CC__SIZE_TABLE_MAX are counted by the
 * size table at both ends and are not entered. A relaxed load of the count
 * suffices: the block's entry was made before the block was returned, so any
 * free of it (which happens after) reads a count that includes it.
 * The table is open addressing with linear probing and backward-shift
 * deletion, under its own mutex, allocated with mi_malloc (not counted). */
CC_API atomic_size_t cc__alloc_aligned_live;
typedef struct {
    const void *p;
    uint64_t bytes;
} aligned_entry_t;
static aligned_entry_t *aligned_tab;
static size_t aligned_cap; /* a power of two, or 0 */

static inline size_t aligned_slot(const void *p, size_t cap) {
    uint64_t h = (uint64_t)(uintptr_t)p * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 20) & (cap - 1);
}

static bool aligned_put(const void *p, uint64_t bytes) { /* call with aligned_lock held */
    size_t live = atomic_load_explicit(&cc__alloc_aligned_live, memory_order_relaxed);
    if ((live + 1) * 2 > aligned_cap) {
        size_t cap = aligned_cap ? aligned_cap * 2 : 64;
        aligned_entry_t *tab = mi_calloc(cap, sizeof *tab);
        if (tab == NULL) return false;
        for (size_t i = 0; i < aligned_cap; i++) {
            if (aligned_tab[i].p == NULL) continue;
            size_t j = aligned_slot(aligned_tab[i].p, cap);
            while (tab[j].p != NULL) j = (j + 1) & (cap - 1);
            tab[j] = aligned_tab[i];
        }
        mi_free(aligned_tab);
        aligned_tab = tab;
        aligned_cap = cap;
    }
    size_t j = aligned_slot(p, aligned_cap);
    while (aligned_tab[j].p != NULL && aligned_tab[j].p != p) j = (j + 1) & (aligned_cap - 1);
    if (aligned_tab[j].p == NULL) atomic_store_explicit(&cc__alloc_aligned_live, live + 1, memory_order_relaxed);
    /* (an entry for p already there: a block freed unsized, against the contract) */
    aligned_tab[j] = (aligned_entry_t){p, bytes};
    return true;
}

/* Removes p's entry; returns whether there was one, and its bytes. */
static bool aligned_take(const void *p, uint64_t *bytes) {
    bool found = false;
    pthread_mutex_lock(&aligned_lock);
    if (aligned_cap != 0) {
        size_t mask = aligned_cap - 1, i = aligned_slot(p, aligned_cap);
        while (aligned_tab[i].p != NULL && aligned_tab[i].p != p) i = (i + 1) & mask;
        if (aligned_tab[i].p == p) {
            found = true;
            *bytes = aligned_tab[i].bytes;
            /* backward-shift deletion: move up later entries of the cluster
             * whose home slot is not cyclically in (i, j] */
            for (size_t j = (i + 1) & mask; aligned_tab[j].p != NULL; j = (j + 1) & mask) {
                size_t home = aligned_slot(aligned_tab[j].p, aligned_cap);
                if (((j - home) & mask) >= ((j - i) & mask)) {
                    aligned_tab[i] = aligned_tab[j];
                    i = j;
                }
            }
            aligned_tab[i].p = NULL;
            atomic_store_explicit(&cc__alloc_aligned_live,
                                  atomic_load_explicit(&cc__alloc_aligned_live, memory_order_relaxed) - 1,
                                  memory_order_relaxed);
        }
    }
    pthread_mutex_unlock(&aligned_lock);
    return found;
}

/* Whether a sized free of n counts mi_usable_size (see mi_counted). */
static inline bool counts_usable_size(size_t n) {
    return !(n - 1 < CC__SIZE_TABLE_MAX && !(cc__size_table[n] & CC__SIZE_AMBIGUOUS));
}

static void *fail(int err) {
    errno = err;
    return NULL;
}

/* The C library's allocator. Debian's libmimalloc.so exports malloc, free
 * and friends, so in a program linked with -lmimalloc the plain names are
 * mimalloc's. The `system` backend asks libc.so.6 for its own functions. */
typedef struct {
    void *(*malloc)(size_t);
    void *(*calloc)(size_t, size_t);
    void *(*aligned_alloc)(size_t, size_t);
    void (*free)(void *);
    size_t (*usable_size)(void *);
} libc_alloc_t;
static libc_alloc_t libc_alloc = {malloc, calloc, aligned_alloc, free, malloc_usable_size};

static void resolve_libc(void) {
    void *libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
    if (libc == NULL) return; /* not glibc: the plain names are the C library's */
    libc_alloc_t found = {dlsym(libc, "malloc"), dlsym(libc, "calloc"), dlsym(libc, "aligned_alloc"),
                          dlsym(libc, "free"), dlsym(libc, "malloc_usable_size")};
    if (found.malloc && found.calloc && found.aligned_alloc && found.free && found.usable_size) {
        libc_alloc = found;
        /* glibc initialises its malloc lazily, at the first call, and that
         * is not thread-safe: it attaches the calling thread to the main
         * arena without counting it. In a normal process the first call comes
         * from the main thread at start-up; here Debian's mimalloc has taken
         * over `malloc`, so the first call to glibc's would be ours, possibly
         * from several threads at once -- and two threads attached to one
         * arena with one count abort in glibc at thread exit ("malloc
         * assertion failure in __malloc_arena_thread_freeres"). One call
         * here, under init's pthread_once, initialises it before any other. */
        found.free(found.malloc(1));
    }
    dlclose(libc);
}

/* mimalloc 2.0.9 misaligns some mi_malloc_aligned results (upstream issue
 * 700); 3.0.1 does not, and mi_malloc_aligned_at(n, a, 0) is right on both
 * (tests/unit/test_mimalloc_facts.c). Alignments up to 16 are what
 * mi_malloc already guarantees. The result is checked all the same. */
static void *mi_aligned(size_t size, size_t align) {
    /* mi_malloc only guarantees 8 bytes for small blocks (a 1-byte block sits
     * in the 8-byte class), so anything stricter asks for it. */
    void *p = align <= sizeof(void *) ? mi_malloc(size) : mi_malloc_aligned_at(size, align, 0);
    if (p != NULL && ((uintptr_t)p & (align - 1)) != 0) {
        mi_free(p);
        p = NULL;
    }
    return p;
}

/* Allocates `size` bytes aligned to `align` (0: natural), zeroed or not, from
 * the active backend; returns NULL with errno set. Counts on success. */
static void *backend_alloc(size_t size, size_t align, bool zero, bool node) {
    ensure_init();
    if (size == 0) return fail(EINVAL);
    if (size > PTRDIFF_MAX) return fail(ENOMEM);
    note_allocation();
    void *p;
    size_t bytes = 0;
    switch (backend) {
    case CC_BACKEND_MIMALLOC:
        if (node) {
            size_t rounded = CC__ROUND_LINE(size);
            p = mi_malloc(rounded);
            if (p != NULL && ((uintptr_t)p & (CC_CACHE_LINE_SIZE - 1)) != 0) {
                mi_free(p);
                p = mi_aligned(rounded, CC_CACHE_LINE_SIZE);
            }
        } else if (align != 0) {
            p = mi_aligned(size, align);
            if (p != NULL && align > sizeof(void *) && counts_usable_size(size)) {
                /* see "aligned blocks" above: remember what is counted */
                bytes = mi_usable_size(p);
                pthread_mutex_lock(&aligned_lock);
                bool ok = aligned_put(p, bytes);
                pthread_mutex_unlock(&aligned_lock);
                if (!ok) {
                    mi_free(p);
                    return fail(ENOMEM);
                }
                break;
            }
        } else {
#ifdef CC__TSAN
            p = mi_malloc(size); /* zeroed below, after TSan learns the block is ours */
#else
            p = zero ? mi_zalloc(size) : mi_malloc(size);
#endif
        }
        if (p == NULL) return fail(ENOMEM);
        bytes = mi_counted(p, size);
        break;
    case CC_BACKEND_SYSTEM:
        if (align != 0) {
            /* C11 aligned_alloc wants a size that is a multiple of the alignment. */
            size_t rounded = (size + align - 1) & ~(align - 1);
            if (rounded < size) return fail(ENOMEM);
            p = libc_alloc.aligned_alloc(align, rounded);
            if (p != NULL && zero) memset(p, 0, rounded);
        } else {
            p = zero ? libc_alloc.calloc(1, size) : libc_alloc.malloc(size);
        }
        if (p == NULL) return fail(ENOMEM);
        bytes = libc_alloc.usable_size(p);
        break;
    default: /* CC_BACKEND_DEBUG */
        p = cc__debug_alloc(size, align, zero);
        if (p == NULL) return fail(ENOMEM);
        bytes = size;
        break;
    }
    count_alloc(bytes); /* always: see <cc/alloc.h>, "Statistics" */
    /* (TSan sees the debug backend's malloc itself; annotating memory it
     * manages would race with its own bookkeeping of that memory.) */
    if (backend != CC_BACKEND_DEBUG) CC__TSAN_ACQUIRE(p);
#ifdef CC__TSAN
    if (zero && backend == CC_BACKEND_MIMALLOC) memset(p, 0, size);
#endif
    return p;
}

static void backend_free(void *ptr, size_t size, bool sized) {
    if (ptr == NULL) return;
    ensure_init();
    size_t bytes = 0;
    if (backend != CC_BACKEND_DEBUG) CC__TSAN_RELEASE(ptr);
    /* The backend cannot change once a block exists, so a relaxed read is
     * enough: this block's allocation synchronised with the freeze. */
    switch (backend) {
    case CC_BACKEND_MIMALLOC:
        if (!sized) {
            bytes = mi_usable_size(ptr);
        } else {
            uint64_t b;
            if (counts_usable_size(size) && atomic_load_explicit(&cc__alloc_aligned_live, memory_order_relaxed) != 0 &&
                aligned_take(ptr, &b))
                bytes = b; /* an aligned block: what its allocation counted */
            else
                bytes = mi_counted(ptr, size);
        }
        mi_free(ptr);
        break;
    case CC_BACKEND_SYSTEM:
        bytes = libc_alloc.usable_size(ptr);
        libc_alloc.free(ptr);
        break;
    default:
        bytes = cc__debug_free(ptr, size, sized);
        break;
    }
    count_free(bytes); /* always */
}

/* ---- the out-of-line entry points ------------------------------------------ */

void *cc__alloc_slow(size_t size) { return backend_alloc(size, 0, false, false); }

void *cc__calloc_slow(size_t count, size_t size) {
    size_t total;
    if (count == 0 || size == 0) return fail(EINVAL);
    if (__builtin_mul_overflow(count, size, &total)) return fail(ENOMEM);
    return backend_alloc(total, 0, true, false);
}

void *cc__alloc_node_slow(size_t size) {
    if (size > PTRDIFF_MAX - CC_CACHE_LINE_SIZE) return fail(ENOMEM); /* size 0: backend_alloc */
    return backend_alloc(size, CC_CACHE_LINE_SIZE, false, true);
}

void *cc_alloc_aligned(size_t size, size_t alignment) {
    if (!is_pow2(alignment) || alignment < sizeof(void *)) return fail(EINVAL);
    return backend_alloc(size, alignment, false, false);
}

void cc__free_slow(void *ptr, size_t size) { backend_free(ptr, size, true); }

void cc__free_unsized_slow(void *ptr) { backend_free(ptr, 0, false); }

size_t cc_alloc_usable_size(const void *ptr) {
    if (ptr == NULL) return 0;
    ensure_init();
    switch (backend) {
    case CC_BACKEND_MIMALLOC: return mi_usable_size(ptr);
    case CC_BACKEND_SYSTEM: return libc_alloc.usable_size((void *)ptr);
    default: return cc__debug_usable_size(ptr);
    }
}
