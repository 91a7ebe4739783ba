/*
 * The `debug` backend: a checking allocator for tests and for hunting misuse.
 *
 * Every block is a raw malloc() region laid out as
 *     [pad][header][user bytes ...][guard: CC__DEBUG_GUARD bytes of 0xFD]
 * and is known by a registry keyed by the user pointer. The registry, not the
 * header, decides what a pointer is, so a foreign pointer is never read.
 *
 * Invariants (all under `dbg_lock`):
 *  - A pointer is in the registry as LIVE from allocation to free, then as
 *    FREED while it sits in the quarantine ring. Its memory is released to
 *    malloc only when it leaves the quarantine, so a double free of any of the
 *    last CC__DEBUG_QUARANTINE blocks is recognised as such.
 *  - New blocks are filled with 0xCD (unless zeroed), freed ones with 0xDD.
 *  - Misuse prints one line naming the pointer (and sizes) and aborts.
 *  - At exit, the blocks still live are reported on stderr.
 */
#include "alloc_internal.h"

/* Under ASan, blocks in quarantine are poisoned too, so a use after free of
 * a node (say, by a broken SMR) is reported at the faulting access; so are a
 * live block's header and guard, so a read just past (or before) a block is
 * reported where it happens, not only a write at the next free. */
#if defined(__SANITIZE_ADDRESS__)
#define CC__ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CC__ASAN 1
#endif
#endif
#ifdef CC__ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DBG_MAGIC 0xCC0DEB6A110C0000ull
#define DBG_GUARD 16
#define DBG_GUARD_BYTE 0xFD
#define DBG_QUARANTINE 4096
#define DBG_BUCKETS (1u << 16)
#define DBG_PREFIX "concurrent_collections debug allocator: "

typedef struct dbg_entry {
    uintptr_t user;
    size_t size;
    void *raw;
    int freed;
    struct dbg_entry *next;
} dbg_entry_t;

static pthread_mutex_t dbg_lock = PTHREAD_MUTEX_INITIALIZER;
static dbg_entry_t *buckets[DBG_BUCKETS];
static dbg_entry_t *quarantine[DBG_QUARANTINE];
static size_t quarantine_next;
static size_t live_blocks, live_bytes;

/* Fault injection: allocations counted since the last cc_alloc_fail_inject. */
static uint64_t fail_seen, fail_nth, fail_every;

void cc__debug_fail_inject(uint64_t nth, uint64_t every) {
    pthread_mutex_lock(&dbg_lock);
    fail_seen = 0;
    fail_nth = nth;
    fail_every = every;
    pthread_mutex_unlock(&dbg_lock);
}

static bool injected_failure(void) {
    pthread_mutex_lock(&dbg_lock);
    uint64_t n = ++fail_seen;
    bool fail = (fail_nth != 0 && n == fail_nth) || (fail_every != 0 && n % fail_every == 0);
    pthread_mutex_unlock(&dbg_lock);
    return fail;
}

static void dbg_atfork_prepare(void) { pthread_mutex_lock(&dbg_lock); }
static void dbg_atfork_release(void) { pthread_mutex_unlock(&dbg_lock); }

static inline size_t bucket_of(uintptr_t p) {
    uint64_t h = (uint64_t)p * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 48) & (DBG_BUCKETS - 1);
}

static dbg_entry_t **find(uintptr_t p) {
    dbg_entry_t **e = &buckets[bucket_of(p)];
    while (*e && (*e)->user != p) e = &(*e)->next;
    return e;
}

static _Noreturn __attribute__((format(printf, 1, 2))) void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs(DBG_PREFIX, stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fflush(stderr);
    abort();
}

void *cc__debug_alloc(size_t size, size_t align, bool zero) {
    if (align < 16) align = 16;
    size_t header = sizeof(uint64_t) * 2; /* magic, size: just below the block */
    if (size > SIZE_MAX - align - header - DBG_GUARD) return NULL;
    if (injected_failure()) return NULL;
    dbg_entry_t *e = malloc(sizeof *e);
    if (e == NULL) return NULL;
    unsigned char *raw = malloc(size + align + header + DBG_GUARD);
    if (raw == NULL) {
        free(e);
        return NULL;
    }
    uintptr_t user = ((uintptr_t)raw + header + align - 1) & ~(uintptr_t)(align - 1);
    uint64_t *hdr = (uint64_t *)(user - header);
    hdr[0] = DBG_MAGIC;
    hdr[1] = size;
    memset((void *)user, zero ? 0 : CC__DEBUG_FILL_NEW, size);
    memset((void *)(user + size), DBG_GUARD_BYTE, DBG_GUARD);
    POISON(raw, user - (uintptr_t)raw);               /* pad and header */
    POISON((void *)(user + size), DBG_GUARD);         /* guard */
    e->user = user;
    e->size = size;
    e->raw = raw;
    e->freed = 0;
    pthread_mutex_lock(&dbg_lock);
    dbg_entry_t **slot = find(user);
    if (*slot != NULL) { /* an address still in quarantine cannot be handed out */
        pthread_mutex_unlock(&dbg_lock);
        die("internal error: block %p handed out twice", (void *)user);
    }
    e->next = NULL;
    *slot = e;
    live_blocks++;
    live_bytes += size;
    pthread_mutex_unlock(&dbg_lock);
    return (void *)user;
}

size_t cc__debug_free(void *ptr, size_t size, bool sized) {
    uintptr_t user = (uintptr_t)ptr;
    pthread_mutex_lock(&dbg_lock);
    dbg_entry_t *e = *find(user);
    if (e == NULL) {
        pthread_mutex_unlock(&dbg_lock);
        die("free of %p, a pointer this allocator never returned (or freed long ago)", ptr);
    }
    if (e->freed) {
        pthread_mutex_unlock(&dbg_lock);
        die("double free of %p (a block of %zu bytes, already freed)", ptr, e->size);
    }
    if (sized && size != e->size) {
        pthread_mutex_unlock(&dbg_lock);
        die("size mismatch freeing %p: cc_free was given %zu bytes, the block was allocated "
            "with %zu",
            ptr, size, e->size);
    }
    const unsigned char *guard = (const unsigned char *)(user + e->size);
    UNPOISON((void *)guard, DBG_GUARD);
    UNPOISON(e->raw, user - (uintptr_t)e->raw);
    for (size_t i = 0; i < DBG_GUARD; i++) {
        if (guard[i] != DBG_GUARD_BYTE) {
            pthread_mutex_unlock(&dbg_lock);
            die("buffer overrun: the guard after block %p (%zu bytes) was overwritten at offset "
                "%zu",
                ptr, e->size, e->size + i);
        }
    }
    const uint64_t *hdr = (const uint64_t *)(user - 2 * sizeof(uint64_t));
    if (hdr[0] != DBG_MAGIC || hdr[1] != e->size) {
        pthread_mutex_unlock(&dbg_lock);
        die("buffer underrun: the header before block %p (%zu bytes) was overwritten", ptr,
            e->size);
    }
    size_t bytes = e->size;
    memset(ptr, CC__DEBUG_FILL_FREED, bytes);
    POISON(ptr, bytes);
    e->freed = 1;
    live_blocks--;
    live_bytes -= bytes;
    /* Quarantine: the oldest freed block leaves the registry and goes back. */
    dbg_entry_t *old = quarantine[quarantine_next];
    quarantine[quarantine_next] = e;
    quarantine_next = (quarantine_next + 1) % DBG_QUARANTINE;
    if (old != NULL) {
        dbg_entry_t **slot = find(old->user);
        *slot = old->next;
    }
    pthread_mutex_unlock(&dbg_lock);
    if (old != NULL) {
        UNPOISON(old->raw, old->user + old->size + DBG_GUARD - (uintptr_t)old->raw);
        free(old->raw);
        free(old);
    }
    return bytes;
}

size_t cc__debug_usable_size(const void *ptr) {
    pthread_mutex_lock(&dbg_lock);
    dbg_entry_t *e = *find((uintptr_t)ptr);
    size_t size = (e != NULL && !e->freed) ? e->size : 0;
    pthread_mutex_unlock(&dbg_lock);
    if (size == 0) errno = EINVAL;
    return size;
}

static void report_live(void) {
    pthread_mutex_lock(&dbg_lock);
    if (live_blocks != 0) {
        fprintf(stderr, DBG_PREFIX "%zu block(s), %zu bytes, still live at exit\n", live_blocks,
                live_bytes);
        unsigned shown = 0;
        for (size_t b = 0; b < DBG_BUCKETS && shown < 10; b++) {
            for (dbg_entry_t *e = buckets[b]; e && shown < 10; e = e->next) {
                if (!e->freed) {
                    fprintf(stderr, "  %p: %zu bytes\n", (void *)e->user, e->size);
                    shown++;
                }
            }
        }
        if (live_blocks > shown) fprintf(stderr, "  ... and %zu more\n", live_blocks - shown);
    }
    pthread_mutex_unlock(&dbg_lock);
}

void cc__debug_activate(void) {
    unsigned long long nth, every;
    cc_config_env_fail_alloc(&nth, &every);
    if (nth != 0 || every != 0) cc__debug_fail_inject(nth, every);
    atexit(report_live);
    pthread_atfork(dbg_atfork_prepare, dbg_atfork_release, dbg_atfork_release);
}
