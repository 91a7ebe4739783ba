/*
 * libFuzzer harness: random sequences of the public C API, checked against a
 * reference model after every step.
 *
 * Built twice (fuzz/CMakeLists.txt):
 *   fuzz_alloc       the glue only: alloc, calloc, aligned, node, sized and
 *                    unsized free, statistics enable/snapshot/reset
 *   fuzz_api         the glue plus SMR (enter, exit, retire, poll, barrier)
 *                    and the stack, queue and segment queue
 *
 * What the model checks:
 *  - bad input gets NULL/-1 with the documented errno, never a crash;
 *  - blocks have the requested alignment and are writable (ASan watches);
 *  - every allocation adds exactly one to alloc_count and its usable size to
 *    alloc_bytes, and its free removes exactly what its allocation added;
 *  - a node retired inside the current critical section is never freed before
 *    the section ends, each retired node is freed exactly once, and after a
 *    barrier outside a section nothing retired is left;
 *  - the stack is LIFO and the queues FIFO, like a plain array; the segment
 *    queue's batch operations and size/foreach too, also when an allocation
 *    fails (debug backend: cc_alloc_fail_inject): push_many then pushes a
 *    prefix, says how many, sets ENOMEM, and loses nothing.
 * Each input starts and ends with nothing live, so statistics are back at
 * their baseline at the end of every input.
 */
#include <cc/queue.h>
#include <cc/segqueue.h>
#include <cc/smr.h>
#include <cc/stack.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                         \
    do {                                                                                 \
        if (!(c)) {                                                                      \
            fprintf(stderr, "fuzz model mismatch at %s:%d: %s\n", __FILE__, __LINE__, #c); \
            abort();                                                                     \
        }                                                                                \
    } while (0)

enum kind { K_ALLOC, K_CALLOC, K_ALIGNED, K_NODE };
typedef struct {
    unsigned char *p;
    size_t size;
    enum kind kind;
    uint64_t counted; /* bytes its allocation added; 0 if not measured */
} block_t;

#define MAX_BLOCKS 64
#define MAX_RETIRED 4096
#define MAX_ITEMS 4096

static block_t blocks[MAX_BLOCKS];
static size_t nblocks;
/* After a reset, frees of older blocks are absorbed into the baseline and
 * which free gets absorbed is not determined: exact deltas stop there. */
static bool reset_seen;

#ifdef CC_FUZZ_FULL
/* Retired nodes: freed flag set by the free function. */
typedef struct {
    void *node;
    size_t size;
    unsigned section; /* id of the section it was retired in; 0 = outside */
    int freed;
} retired_t;
static retired_t retired[MAX_RETIRED];
static size_t nretired;
static unsigned depth, section_id, current_section;

static void model_free_fn(void *node, size_t size) {
    size_t i;
    for (i = 0; i < nretired; i++)
        if (retired[i].node == node && !retired[i].freed) break;
    CHECK(i < nretired);               /* only retired nodes are freed */
    CHECK(retired[i].size == size);    /* with their size */
    /* never while the section it was retired in is still open */
    CHECK(retired[i].section == 0 || retired[i].section != current_section);
    retired[i].freed = 1;
    cc_free(node, size);
}

#endif

static const uint8_t *in;
static size_t in_left;

static uint64_t take(unsigned bytes) {
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes && in_left > 0; i++, in_left--) v = (v << 8) | *in++;
    return v;
}

static cc_alloc_snapshot_t snap(void) { return cc_alloc_stats_snapshot(); }

static size_t pick_size(void) {
    uint64_t r = take(2);
    switch (r & 7) {
    case 0: return 0;                     /* bad */
    case 1: return SIZE_MAX - (r >> 3);   /* cannot be satisfied */
    case 2: return 1 + (r >> 3) % 8192;   /* beyond the size table */
    default: return 1 + (r >> 3) % 1100;  /* the common case */
    }
}

static void add_block(unsigned char *p, size_t size, enum kind kind, cc_alloc_snapshot_t before) {
    cc_alloc_snapshot_t after = snap();
    CHECK(after.alloc_count == before.alloc_count + 1);
    uint64_t counted = after.alloc_bytes - before.alloc_bytes;
    if (kind != K_ALIGNED) CHECK(counted == cc_alloc_usable_size(p));
    CHECK(cc_alloc_usable_size(p) >= size);
    memset(p, 0xA5, size < 4096 ? size : 4096);
    if (nblocks == MAX_BLOCKS) { /* full: free it at once */
        cc_free(p, size);
        return;
    }
    blocks[nblocks++] = (block_t){p, size, kind, counted};
}

static void free_block(size_t i, bool sized) {
    block_t b = blocks[i];
    blocks[i] = blocks[--nblocks];
    if (b.kind == K_ALIGNED) sized = true; /* unsized is exact only for the others */
    cc_alloc_snapshot_t before = snap();
    if (sized) cc_free(b.p, b.size);
    else cc_free_unsized(b.p);
    cc_alloc_snapshot_t after = snap();
    if (!reset_seen) {
        CHECK(after.free_count == before.free_count + 1);
        CHECK(after.free_bytes - before.free_bytes == b.counted);
    }
}

static bool last_failed;

static void expect_fail(void *p, int err) {
    CHECK(p == NULL);
    CHECK(errno == err);
    last_failed = true;
}

static void op_alloc(unsigned which) {
    cc_alloc_snapshot_t before = snap();
    size_t size = pick_size();
    errno = 0;
    last_failed = false;
    switch (which) {
    case K_ALLOC: {
        unsigned char *p = cc_alloc(size);
        if (size == 0) expect_fail(p, EINVAL);
        else if (size > PTRDIFF_MAX) expect_fail(p, ENOMEM);
        else { CHECK(p != NULL); add_block(p, size, K_ALLOC, before); }
        break;
    }
    case K_CALLOC: {
        size_t count = (size_t)take(1) % 5, total;
        unsigned char *p = cc_calloc(count, size);
        if (count == 0 || size == 0) expect_fail(p, EINVAL);
        else if (__builtin_mul_overflow(count, size, &total) || total > PTRDIFF_MAX)
            expect_fail(p, ENOMEM);
        else {
            CHECK(p != NULL);
            for (size_t i = 0; i < total; i++) CHECK(p[i] == 0);
            add_block(p, total, K_CALLOC, before);
        }
        break;
    }
    case K_ALIGNED: {
        unsigned shift = (unsigned)take(1) % 16;
        size_t align = (take(1) & 7) == 0 ? (size_t)take(1) : (size_t)1 << shift;
        unsigned char *p = cc_alloc_aligned(size, align);
        bool good_align = align >= sizeof(void *) && (align & (align - 1)) == 0;
        if (!good_align || size == 0) expect_fail(p, EINVAL);
        else if (size > PTRDIFF_MAX) expect_fail(p, ENOMEM);
        else {
            CHECK(p != NULL);
            CHECK(((uintptr_t)p & (align - 1)) == 0);
            add_block(p, size, K_ALIGNED, before);
        }
        break;
    }
    default: {
        unsigned char *p = cc_alloc_node(size);
        if (size == 0) expect_fail(p, EINVAL);
        else if (size > PTRDIFF_MAX - CC_CACHE_LINE_SIZE) expect_fail(p, ENOMEM);
        else {
            CHECK(p != NULL);
            CHECK(((uintptr_t)p & (CC_CACHE_LINE_SIZE - 1)) == 0);
            add_block(p, size, K_NODE, before);
        }
        break;
    }
    }
    if (last_failed) CHECK(snap().alloc_count == before.alloc_count); /* not counted */
}

#ifdef CC_FUZZ_FULL
static cc_stack_t *stack;
static cc_queue_t *queue;
static uintptr_t stack_model[MAX_ITEMS], queue_model[MAX_ITEMS];
static size_t stack_len, queue_head, queue_tail;
static uintptr_t next_value = 1;

/* The segment queue and its model (a FIFO window over seg_model). Its
 * segments hold 1024 slots, so inputs cross segment boundaries through the
 * batch operations. */
#define SEG_MAX_ITEMS 8192
#define SEG_BATCH 1500
static cc_segqueue_t *segq;
static uintptr_t seg_model[SEG_MAX_ITEMS];
static size_t seg_head, seg_tail;
static bool can_inject;

static void seg_collect(void *v, void *arg) {
    size_t *i = arg;
    CHECK(seg_head + *i < seg_tail);
    CHECK((uintptr_t)v == seg_model[(seg_head + *i) % SEG_MAX_ITEMS]);
    ++*i;
}

static void op_segqueue(unsigned which) {
    static void *buf[SEG_BATCH];
    void *v = NULL;
    size_t room = SEG_MAX_ITEMS - (seg_tail - seg_head);
    switch (which) {
    case 0: /* push */
        if (room > 0) {
            CHECK(cc_segqueue_push(segq, (void *)next_value));
            seg_model[seg_tail++ % SEG_MAX_ITEMS] = next_value++;
        }
        break;
    case 1: /* pop */
        errno = 0;
        if (seg_tail == seg_head) CHECK(!cc_segqueue_pop(segq, &v) && errno == 0);
        else {
            CHECK(cc_segqueue_pop(segq, &v));
            CHECK((uintptr_t)v == seg_model[seg_head++ % SEG_MAX_ITEMS]);
        }
        break;
    case 2: case 3: { /* push_many; with an injected allocation failure (3) */
        size_t k = (size_t)take(2) % SEG_BATCH;
        if (k > room) k = room;
        for (size_t i = 0; i < k; i++) buf[i] = (void *)(next_value + i);
        bool inject = which == 3 && can_inject;
        if (inject) CHECK(cc_alloc_fail_inject(1 + take(1) % 3, 0) == 0);
        errno = 0;
        size_t r = cc_segqueue_push_many(segq, buf, k);
        if (inject) CHECK(cc_alloc_fail_inject(0, 0) == 0);
        CHECK(r <= k);
        if (r < k) CHECK(inject && errno == ENOMEM);
        else CHECK(errno == 0);
        for (size_t i = 0; i < r; i++) seg_model[seg_tail++ % SEG_MAX_ITEMS] = next_value + i;
        next_value += k;
        break;
    }
    case 4: { /* pop_many */
        size_t k = (size_t)take(2) % SEG_BATCH;
        errno = 0;
        size_t r = cc_segqueue_pop_many(segq, buf, k);
        size_t have = seg_tail - seg_head;
        CHECK(r == (k < have ? k : have));
        CHECK(errno == 0);
        for (size_t i = 0; i < r; i++) CHECK((uintptr_t)buf[i] == seg_model[seg_head++ % SEG_MAX_ITEMS]);
        break;
    }
    case 5: { /* a single push with an injected failure */
        if (room == 0 || !can_inject) break;
        CHECK(cc_alloc_fail_inject(1, 0) == 0);
        errno = 0;
        bool ok = cc_segqueue_push(segq, (void *)next_value);
        CHECK(cc_alloc_fail_inject(0, 0) == 0);
        if (ok) seg_model[seg_tail++ % SEG_MAX_ITEMS] = next_value;
        else CHECK(errno == ENOMEM);
        next_value++;
        break;
    }
    default: { /* foreach and bad arguments */
        size_t i = 0;
        cc_segqueue_foreach(segq, seg_collect, &i);
        CHECK(i == seg_tail - seg_head);
        errno = 0;
        CHECK(!cc_segqueue_pop(segq, NULL) && errno == EINVAL);
        errno = 0;
        CHECK(cc_segqueue_push_many(NULL, buf, 1) == 0 && errno == EINVAL);
        errno = 0;
        CHECK(cc_segqueue_pop_many(segq, NULL, 1) == 0 && errno == EINVAL);
        break;
    }
    }
    CHECK(cc_segqueue_size(segq) == seg_tail - seg_head);
}

static void op_smr(unsigned which) {
    switch (which) {
    case 0:
        if (depth < 8) {
            if (depth++ == 0) current_section = ++section_id;
            cc_smr_enter();
        }
        break;
    case 1:
        if (depth > 0) {
            cc_smr_exit();
            if (--depth == 0) current_section = 0;
        }
        break;
    case 2: /* retire a live node block */
        for (size_t i = 0; i < nblocks; i++) {
            if (blocks[i].kind == K_NODE && nretired < MAX_RETIRED) {
                block_t b = blocks[i];
                blocks[i] = blocks[--nblocks];
                retired[nretired++] = (retired_t){b.p, b.size, current_section, 0};
                cc_smr_retire(b.p, b.size, model_free_fn);
                break;
            }
        }
        cc_smr_retire(NULL, 8, NULL); /* does nothing */
        break;
    case 3:
        (void)cc_smr_poll();
        break;
    default: {
        errno = 0;
        int rc = cc_smr_barrier();
        if (depth > 0) {
            CHECK(rc == -1 && errno == EDEADLK);
        } else {
            CHECK(rc == 0);
            for (size_t i = 0; i < nretired; i++) CHECK(retired[i].freed);
            nretired = 0;
        }
        break;
    }
    }
    cc_smr_snapshot_t s = cc_smr_stats();
    CHECK(s.freed <= s.retired);
    CHECK(s.pending == s.retired - s.freed);
}

static void op_collection(unsigned which) {
    void *v = NULL;
    switch (which) {
    case 0:
        if (stack_len < MAX_ITEMS) {
            CHECK(cc_stack_push(stack, (void *)next_value));
            stack_model[stack_len++] = next_value++;
        }
        break;
    case 1:
        if (stack_len == 0) CHECK(!cc_stack_pop(stack, &v));
        else {
            CHECK(cc_stack_pop(stack, &v));
            CHECK((uintptr_t)v == stack_model[--stack_len]);
        }
        break;
    case 2:
        if (queue_tail - queue_head < MAX_ITEMS) {
            CHECK(cc_queue_push(queue, (void *)next_value));
            queue_model[queue_tail++ % MAX_ITEMS] = next_value++;
        }
        break;
    default:
        if (queue_tail == queue_head) CHECK(!cc_queue_pop(queue, &v));
        else {
            CHECK(cc_queue_pop(queue, &v));
            CHECK((uintptr_t)v == queue_model[queue_head++ % MAX_ITEMS]);
        }
        break;
    }
    CHECK(cc_stack_size(stack) == stack_len);
    CHECK(cc_queue_size(queue) == queue_tail - queue_head);
    errno = 0;
    CHECK(!cc_stack_push(NULL, v) && errno == EINVAL);
    errno = 0;
    CHECK(!cc_queue_pop(NULL, &v) && errno == EINVAL);
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static bool started;
    if (!started) {
        cc_alloc_stats_enable(true);
        started = true;
    }
    in = data;
    in_left = size;
    nblocks = 0;
    cc_alloc_snapshot_t start = snap();
#ifdef CC_FUZZ_FULL
    stack = cc_stack_new();
    queue = cc_queue_new();
    segq = cc_segqueue_new();
    CHECK(stack && queue && segq);
    stack_len = queue_head = queue_tail = 0;
    seg_head = seg_tail = 0;
    can_inject = strcmp(cc_alloc_backend(), "debug") == 0;
    nretired = 0;
    depth = 0;
    current_section = 0;
#endif
    reset_seen = false;
    while (in_left > 0) {
        unsigned op = (unsigned)take(1);
        switch (op % 16) {
        case 0: case 1: case 2: case 3: op_alloc(op % 4); break;
        case 4: if (nblocks) free_block((size_t)take(1) % nblocks, true); break;
        case 5: if (nblocks) free_block((size_t)take(1) % nblocks, false); break;
        case 6: { /* reset: blocks from before it no longer have exact deltas */
            /* a reset empties the window; live counts cover every live
             * block, so it leaves them alone */
            cc_alloc_snapshot_t r = snap();
            cc_alloc_stats_reset();
            for (size_t i = 0; i < nblocks; i++) blocks[i].counted = 0;
            reset_seen = true;
            cc_alloc_snapshot_t s = snap();
            CHECK(s.alloc_count == 0 && s.free_count == 0);
            CHECK(s.current_allocated == r.current_allocated && s.current_blocks == r.current_blocks);
            break;
        }
#ifdef CC_FUZZ_FULL
        case 7: case 8: case 9: case 10: case 11: op_smr(op % 5); break;
        default:
            /* bit 4 picks the segment queue (bits 5-7 its operation) */
            if (op & 16) op_segqueue((op >> 5) % 7);
            else op_collection(op % 4);
            break;
#else
        default: if (nblocks) free_block((size_t)take(1) % nblocks, op & 1); break;
#endif
        }
        cc_alloc_snapshot_t s = snap();
        CHECK(s.current_blocks >= nblocks); /* every live block of this input is counted */
    }
    /* end of input: nothing may stay live */
#ifdef CC_FUZZ_FULL
    while (depth > 0) { cc_smr_exit(); depth--; }
    current_section = 0;
    cc_stack_destroy(stack);
    cc_queue_destroy(queue);
    cc_segqueue_destroy(segq);
#endif
    while (nblocks) free_block(0, true);
#ifdef CC_FUZZ_FULL
    CHECK(cc_smr_barrier() == 0);
    for (size_t i = 0; i < nretired; i++) CHECK(retired[i].freed);
#endif
    cc_alloc_snapshot_t end = snap();
    if (!reset_seen) {
        CHECK(end.alloc_count - start.alloc_count == end.free_count - start.free_count);
        CHECK(end.current_allocated == start.current_allocated);
    }
    /* every block of this input is freed: live counts are back where they began */
    CHECK(end.current_allocated == start.current_allocated && end.current_blocks == start.current_blocks);
    return 0;
}
