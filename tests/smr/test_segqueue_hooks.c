/*
 * Deterministic interleavings of the segment queue through its TEST ONLY
 * pause points (src/segqueue.c, CC_SEGQUEUE_TEST_HOOK, compiled into the
 * test-hooks library). Single-threaded: the callback runs on the thread that
 * is paused, so no scheduling luck is needed.
 *
 * (a) retire while held: a pop has loaded the head segment (inside its SMR
 *     section) when the callback drains that segment and moves head past it,
 *     which retires it. The paused pop then reads the segment. With SMR the
 *     segment is still allocated (the thread is inside its section); the
 *     negative control (CC_SEGQUEUE_BROKEN_NO_SMR: freed at once) is a
 *     heap-use-after-free that ASan reports every time.
 * (b) a popper overtakes a claimed slot: a push has claimed an index and not
 *     yet published its value when the callback pops. The pop must not wait
 *     for the paused pusher (it would wait for ever: same thread) and must
 *     report empty; the push then retries at a later index, and the value
 *     arrives exactly once.
 * (c) the same for push_many: the callback's pop finds every slot of the
 *     batch's claim unpublished, marks each taken and reports empty; the
 *     batch claims new indices and every value still arrives, in order.
 * Memory returns to the baseline after destroy + barrier.
 */
#include "segqueue_internal.h"
#include "smr_test.h"

#include <stdint.h>
#include <stdio.h>

extern CC_API void (*_Atomic cc__segqueue_hook)(cc_segqueue_t *q, int point);

#define CHECK(c)                                                                  \
    do {                                                                          \
        if (!(c)) {                                                               \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            exit(1);                                                              \
        }                                                                         \
    } while (0)
#define V(i) ((void *)(uintptr_t)(i))
#define N CC__SEGQUEUE_SLOTS

static unsigned g_calls;

/* (a): drain the whole head segment and step past it (retires it). */
static void drain_head(cc_segqueue_t *q, int point) {
    if (point != CC__SEGQUEUE_POP_HEAD) return;
    atomic_store(&cc__segqueue_hook, NULL);
    g_calls++;
    void *v;
    for (uintptr_t i = 1; i <= N; i++) {
        CHECK(cc_segqueue_pop(q, &v));
        CHECK(v == V(i));
    }
    CHECK(cc_segqueue_pop(q, &v)); /* moves head to the second segment */
    CHECK(v == V(N + 1));
}

static void test_retire_while_held(void) {
    cc_segqueue_t *q = cc_segqueue_new();
    CHECK(q != NULL);
    for (uintptr_t i = 1; i <= N + 2; i++) CHECK(cc_segqueue_push(q, V(i)));
    g_calls = 0;
    atomic_store(&cc__segqueue_hook, drain_head);
    void *v = NULL;
    CHECK(cc_segqueue_pop(q, &v)); /* reads the retired segment, then takes N + 2 */
    CHECK(g_calls == 1);
    CHECK(v == V(N + 2));
    CHECK(!cc_segqueue_pop(q, &v));
    cc_segqueue_destroy(q);
    printf("ok: a pop holding a drained, retired segment\n");
}

/* (b), (c): pop while a push has claimed a slot but not published it. */
static void pop_at_claim(cc_segqueue_t *q, int point) {
    if (point != CC__SEGQUEUE_PUSH_CLAIMED) return;
    atomic_store(&cc__segqueue_hook, NULL);
    g_calls++;
    void *v = V(12345);
    CHECK(!cc_segqueue_pop(q, &v)); /* the only claimed slot is unpublished: empty, no wait */
    CHECK(v == V(12345));
}

static void test_pop_overtakes_push(void) {
    cc_segqueue_t *q = cc_segqueue_new();
    CHECK(q != NULL);
    void *v;
    for (int round = 0; round < 3; round++) { /* also at index 0 of a fresh segment */
        g_calls = 0;
        atomic_store(&cc__segqueue_hook, pop_at_claim);
        CHECK(cc_segqueue_push(q, V(7)));
        CHECK(g_calls == 1);
        CHECK(cc_segqueue_size(q) == 1);
        CHECK(cc_segqueue_pop(q, &v));
        CHECK(v == V(7));
        CHECK(!cc_segqueue_pop(q, &v));
    }
    /* push_many: the first claimed slot is overtaken, the batch moves on */
    void *in[10], *out[16];
    for (uintptr_t i = 0; i < 10; i++) in[i] = V(100 + i);
    g_calls = 0;
    atomic_store(&cc__segqueue_hook, pop_at_claim);
    /* the pop in the callback claims the batch's indices, all unpublished */
    CHECK(cc_segqueue_push_many(q, in, 10) == 10);
    CHECK(g_calls == 1);
    CHECK(cc_segqueue_size(q) == 10);
    CHECK(cc_segqueue_pop_many(q, out, 16) == 10);
    for (uintptr_t i = 0; i < 10; i++) CHECK(out[i] == V(100 + i));
    CHECK(!cc_segqueue_pop(q, &v));
    cc_segqueue_destroy(q);
    printf("ok: pops overtake a claimed, unpublished slot; the value arrives once\n");
}

int main(void) {
    cc_alloc_stats_enable(true);
    CHECK(cc_smr_barrier() == 0);
    cc_alloc_snapshot_t a0 = cc_alloc_stats_snapshot();
    test_retire_while_held();
    test_pop_overtakes_push();
    CHECK(cc_smr_barrier() == 0);
    cc_alloc_snapshot_t a = cc_alloc_stats_snapshot();
    CHECK(a.current_blocks == a0.current_blocks);
    CHECK(a.current_allocated == a0.current_allocated);
    return 0;
}
