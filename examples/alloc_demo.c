/*
 * alloc_demo -- the project's main job for now: the allocation glue under
 * real cross-thread traffic, with statistics on.
 *
 * Producer threads allocate blocks with cc_alloc, cc_calloc, cc_alloc_node and
 * cc_alloc_aligned (sizes from 1 B to 96 KiB, alignments from 8 to 4096),
 * write a pattern into them and hand them through a mutex+condvar queue to
 * consumer threads. A consumer checks the pattern, the alignment and the
 * zeroing, and frees the block: blocks from cc_alloc, cc_calloc and
 * cc_alloc_node with cc_free(p, size) or cc_free_unsized(p) (alternating),
 * aligned blocks with cc_free(p, size). Every block is freed by a different
 * thread than the one that allocated it.
 *
 * After the join it prints the statistics and exits 0 only when they balance
 * exactly: alloc_count == free_count == blocks handed over, alloc_bytes ==
 * free_bytes, current_allocated == 0 and current_blocks == 0.
 *
 * Usage: alloc_demo [--producers N] [--consumers N] [--blocks N] [--quick]
 * The backend follows CONCURRENT_COLLECTIONS_ALLOCATOR (mimalloc, system,
 * debug). Exit status: 0 balanced, 1 statistics do not balance, 2 a block
 * was wrong or an allocation failed, 64 bad usage.
 */
#include <cc/alloc.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum kind { K_ALLOC, K_CALLOC, K_NODE, K_ALIGNED, NKINDS };
static const char *const kind_names[NKINDS] = {"cc_alloc", "cc_calloc", "cc_alloc_node", "cc_alloc_aligned"};

typedef struct {
    unsigned char *ptr;
    size_t size;      /* what cc_free must be given (calloc: count * size) */
    size_t align;     /* required alignment (0: none beyond malloc's) */
    enum kind kind;
    unsigned char tag; /* pattern byte */
} item_t;

/* A bounded multi-producer multi-consumer queue under one mutex. */
#define QUEUE_CAP 512
static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    item_t items[QUEUE_CAP];
    size_t head, count;
    unsigned producers_left;
} queue = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, {{0}}, 0, 0, 0};

static void queue_push(const item_t *it) {
    pthread_mutex_lock(&queue.lock);
    while (queue.count == QUEUE_CAP) pthread_cond_wait(&queue.not_full, &queue.lock);
    queue.items[(queue.head + queue.count) % QUEUE_CAP] = *it;
    queue.count++;
    pthread_cond_signal(&queue.not_empty);
    pthread_mutex_unlock(&queue.lock);
}

/* Returns false once the queue is empty and every producer has finished. */
static bool queue_pop(item_t *it) {
    pthread_mutex_lock(&queue.lock);
    while (queue.count == 0 && queue.producers_left > 0) pthread_cond_wait(&queue.not_empty, &queue.lock);
    if (queue.count == 0) {
        pthread_mutex_unlock(&queue.lock);
        return false;
    }
    *it = queue.items[queue.head];
    queue.head = (queue.head + 1) % QUEUE_CAP;
    queue.count--;
    pthread_cond_signal(&queue.not_full);
    pthread_mutex_unlock(&queue.lock);
    return true;
}

static void producer_done(void) {
    pthread_mutex_lock(&queue.lock);
    if (--queue.producers_left == 0) pthread_cond_broadcast(&queue.not_empty);
    pthread_mutex_unlock(&queue.lock);
}

/* Per-thread tallies, summed after the join. */
typedef struct {
    pthread_t tid;
    unsigned id;
    uint64_t seed;
    uint64_t blocks;                 /* producer: blocks to make */
    uint64_t made[NKINDS];           /* producer */
    uint64_t freed_sized, freed_unsized, bad; /* consumer */
    int alloc_errno;                 /* producer: first failed allocation */
} worker_t;

static uint64_t next_rand(uint64_t *s) { /* xorshift64* */
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

/* Mostly small node-like sizes, some medium, a few large. */
static size_t pick_size(uint64_t *s) {
    uint64_t r = next_rand(s);
    switch (r % 16) {
    case 0: return 1 + (r >> 8) % 8192;          /* medium */
    case 1: return (r >> 8) % 4 == 0 ? 98304 : 1 + (r >> 8) % 2048;
    default: return 1 + (r >> 8) % 256;          /* small */
    }
}

static void *producer(void *arg) {
    worker_t *w = arg;
    for (uint64_t i = 0; i < w->blocks; i++) {
        uint64_t r = next_rand(&w->seed);
        item_t it = {NULL, pick_size(&w->seed), 0, (enum kind)(r % NKINDS), (unsigned char)(1 + r % 251)};
        switch (it.kind) {
        case K_ALLOC: it.ptr = cc_alloc(it.size); break;
        case K_CALLOC: {
            size_t count = 1 + (r >> 16) % 8;
            size_t each = (it.size + count - 1) / count;
            it.size = count * each;
            it.ptr = cc_calloc(count, each);
            break;
        }
        case K_NODE:
            it.ptr = cc_alloc_node(it.size);
            it.align = CC_CACHE_LINE_SIZE;
            break;
        case K_ALIGNED:
            it.align = (size_t)8 << ((r >> 16) % 10); /* 8 .. 4096 */
            if ((r >> 24) % 2) it.size = it.align * (1 + (r >> 32) % 4); /* a multiple of it */
            it.ptr = cc_alloc_aligned(it.size, it.align);
            break;
        default: break;
        }
        if (it.ptr == NULL) {
            w->alloc_errno = errno ? errno : -1;
            fprintf(stderr, "alloc_demo: %s(%zu) failed: %s\n", kind_names[it.kind], it.size, strerror(errno));
            break;
        }
        if (it.kind == K_CALLOC && (it.ptr[0] != 0 || it.ptr[it.size / 2] != 0 || it.ptr[it.size - 1] != 0)) {
            fprintf(stderr, "alloc_demo: cc_calloc block %p of %zu B is not zeroed\n", (void *)it.ptr, it.size);
            w->alloc_errno = -1;
        }
        it.ptr[0] = it.tag;
        it.ptr[it.size - 1] = it.tag;
        w->made[it.kind]++;
        queue_push(&it);
    }
    producer_done();
    return NULL;
}

static void *consumer(void *arg) {
    worker_t *w = arg;
    item_t it;
    while (queue_pop(&it)) {
        if (it.ptr[0] != it.tag || it.ptr[it.size - 1] != it.tag) {
            fprintf(stderr, "alloc_demo: %s block %p of %zu B lost its pattern\n", kind_names[it.kind],
                    (void *)it.ptr, it.size);
            w->bad++;
        }
        if (it.align && ((uintptr_t)it.ptr & (it.align - 1)) != 0) {
            fprintf(stderr, "alloc_demo: %s block %p of %zu B is not %zu-aligned\n", kind_names[it.kind],
                    (void *)it.ptr, it.size, it.align);
            w->bad++;
        }
        /* Aligned blocks need the size; the others alternate sized and unsized. */
        if (it.kind == K_ALIGNED || (w->freed_sized + w->freed_unsized) % 2 == 0) {
            cc_free(it.ptr, it.size);
            w->freed_sized++;
        } else {
            cc_free_unsized(it.ptr);
            w->freed_unsized++;
        }
    }
    return NULL;
}

static unsigned long parse_count(const char *s, const char *opt, unsigned long max) {
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v == 0 || v > max) {
        fprintf(stderr, "alloc_demo: %s wants an integer in [1, %lu], got '%s'\n", opt, max, s);
        exit(64);
    }
    return v;
}

static void usage(FILE *f) {
    fprintf(f, "usage: alloc_demo [--producers N] [--consumers N] [--blocks N] [--quick]\n"
               "  --blocks N   blocks per producer (default 200000; --quick: 20000)\n"
               "  backend: CONCURRENT_COLLECTIONS_ALLOCATOR=mimalloc|system|debug\n");
}

#define MAX_THREADS 64

int main(int argc, char **argv) {
    unsigned long producers = 4, consumers = 4, blocks = 200000;
    bool blocks_given = false, quick = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--producers") == 0 && i + 1 < argc)
            producers = parse_count(argv[++i], "--producers", MAX_THREADS);
        else if (strcmp(argv[i], "--consumers") == 0 && i + 1 < argc)
            consumers = parse_count(argv[++i], "--consumers", MAX_THREADS);
        else if (strcmp(argv[i], "--blocks") == 0 && i + 1 < argc)
            blocks = parse_count(argv[++i], "--blocks", 100000000ul), blocks_given = true;
        else if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            usage(stderr);
            return 64;
        }
    }
    if (quick && !blocks_given) blocks = 20000;

    cc_alloc_stats_enable(true);
    cc_alloc_stats_reset();
    cc_alloc_snapshot_t before = cc_alloc_stats_snapshot();

    static worker_t prod[MAX_THREADS], cons[MAX_THREADS];
    queue.producers_left = (unsigned)producers;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned i = 0; i < producers; i++) {
        prod[i] = (worker_t){.id = i, .seed = 0x9e3779b97f4a7c15ull * (i + 1), .blocks = blocks};
        if (pthread_create(&prod[i].tid, NULL, producer, &prod[i]) != 0) {
            fprintf(stderr, "alloc_demo: pthread_create failed\n");
            return 2;
        }
    }
    for (unsigned i = 0; i < consumers; i++) {
        cons[i] = (worker_t){.id = i};
        if (pthread_create(&cons[i].tid, NULL, consumer, &cons[i]) != 0) {
            fprintf(stderr, "alloc_demo: pthread_create failed\n");
            return 2;
        }
    }
    for (unsigned i = 0; i < producers; i++) pthread_join(prod[i].tid, NULL);
    for (unsigned i = 0; i < consumers; i++) pthread_join(cons[i].tid, NULL);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;

    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();

    uint64_t made[NKINDS] = {0}, total = 0, sized = 0, unsized = 0, bad = 0;
    int alloc_failed = 0;
    for (unsigned i = 0; i < producers; i++) {
        for (int k = 0; k < NKINDS; k++) made[k] += prod[i].made[k], total += prod[i].made[k];
        if (prod[i].alloc_errno) alloc_failed = 1;
    }
    for (unsigned i = 0; i < consumers; i++) {
        sized += cons[i].freed_sized;
        unsized += cons[i].freed_unsized;
        bad += cons[i].bad;
    }

    printf("concurrent-collections: allocation glue demo\n");
    printf("  backend            %s (statistics %s)\n", cc_alloc_backend(), s.enabled ? "on" : "off");
    printf("  threads            %lu producers -> mutex+condvar queue -> %lu consumers\n", producers, consumers);
    printf("  blocks handed over %" PRIu64 " in %.2f s (each freed by another thread)\n", total, secs);
    printf("  allocated with    ");
    for (int k = 0; k < NKINDS; k++) printf(" %s %" PRIu64 "%s", kind_names[k], made[k], k + 1 < NKINDS ? "," : "\n");
    printf("  freed with         cc_free %" PRIu64 ", cc_free_unsized %" PRIu64 "\n\n", sized, unsized);

    struct {
        const char *name;
        uint64_t value;
    } rows[] = {
        {"alloc_count", s.alloc_count},   {"free_count", s.free_count},
        {"alloc_bytes", s.alloc_bytes},   {"free_bytes", s.free_bytes},
        {"current_allocated", s.current_allocated}, {"current_blocks", s.current_blocks},
    };
    printf("  %-20s %20s\n", "statistic", "value");
    printf("  %-20s %20s\n", "--------------------", "--------------------");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) printf("  %-20s %20" PRIu64 "\n", rows[i].name, rows[i].value);
    printf("  (bytes count the blocks' usable sizes, see <cc/alloc.h>)\n\n");

    int status = 0;
    if (before.alloc_count != 0 || before.free_count != 0 || before.current_allocated != 0) {
        printf("  CHECK FAILED: statistics not zero after reset\n");
        status = 1;
    }
    if (s.alloc_count != total || s.free_count != total) {
        printf("  CHECK FAILED: alloc_count %" PRIu64 " / free_count %" PRIu64 " but %" PRIu64 " blocks were handed over\n",
               s.alloc_count, s.free_count, total);
        status = 1;
    }
    if (s.alloc_bytes != s.free_bytes || s.current_allocated != 0 || s.current_blocks != 0) {
        printf("  CHECK FAILED: alloc_bytes %" PRIu64 " != free_bytes %" PRIu64
               " or current_allocated %" PRIu64 " / current_blocks %" PRIu64 " not 0\n",
               s.alloc_bytes, s.free_bytes, s.current_allocated, s.current_blocks);
        status = 1;
    }
    if (s.alloc_bytes < total) {
        printf("  CHECK FAILED: alloc_bytes %" PRIu64 " below one byte per block\n", s.alloc_bytes);
        status = 1;
    }
    if (bad || alloc_failed || total != producers * blocks) {
        printf("  CHECK FAILED: %" PRIu64 " bad blocks, %s\n", bad,
               alloc_failed ? "an allocation failed" : "all allocations succeeded");
        status = 2;
    }
    if (status == 0) printf("  balance: OK (every block counted once allocated and once freed)\n");
    return status;
}
