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
 * (d) a batch pop claims only the filled prefix: a push_many has claimed 10
 *     slots and filled 3 when the callback runs pop_many(16). The batch
 *     takes the 3 values and claims no slot past them, so the push_many
 *     fills the other 7 where it claimed them (10 claim attempts in all, not
 *     10 + 7). When no slot is filled, the batch behaves as pop: one index
 *     per claim, each unfilled one marked TAKEN, and then it reports empty.
 * (e) a batch claim is capped: pop_many(200) of 200 FULL slots takes them in
 *     claims of at most CC__SEGQUEUE_CLAIM_MAX (4 head loads for 200 / 64).
 * (f) errno across the slow path: a pop retires the drained head segment and
 *     then finds the next segment empty (the callback took its value between
 *     the head CAS and the read). The callback writes errno, standing in for
 *     an allocator or SMR call on the retire path that fails (glibc's malloc
 *     sets ENOMEM); the empty pop must still return with errno untouched.
 * Memory returns to the baseline after destroy + barrier.
 */
#include "segqueue_internal.h"
#include "smr_test.h"

#include <errno.h>
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

/* (d): at the claim of the batch's 4th slot (slots 0..2 FULL, 3..9 claimed
 * and unfilled), pop_many(16) must take exactly the 3 filled ones. */
static unsigned g_claims;
static void batch_pop_at_fourth_claim(cc_segqueue_t *q, int point) {
    if (point != CC__SEGQUEUE_PUSH_CLAIMED) return;
    if (++g_claims != 4) return;
    void *out[16];
    CHECK(cc_segqueue_pop_many(q, out, 16) == 3);
    for (uintptr_t i = 0; i < 3; i++) CHECK(out[i] == V(100 + i));
}

/* (d), at the first claim: nothing is filled, so the batch claims one slot
 * at a time. */
static void batch_pop_at_first_claim(cc_segqueue_t *q, int point) {
    if (point != CC__SEGQUEUE_PUSH_CLAIMED) return;
    if (++g_claims != 1) return;
    void *out[16];
    CHECK(cc_segqueue_pop_many(q, out, 16) == 0);
}

static void test_batch_pop_claims_filled_prefix(void) {
    cc_segqueue_t *q = cc_segqueue_new();
    CHECK(q != NULL);
    void *in[10], *out[16], *v;
    for (uintptr_t i = 0; i < 10; i++) in[i] = V(100 + i);
    g_claims = 0;
    atomic_store(&cc__segqueue_hook, batch_pop_at_fourth_claim);
    CHECK(cc_segqueue_push_many(q, in, 10) == 10);
    atomic_store(&cc__segqueue_hook, NULL);
    CHECK(g_claims == 10); /* no slot of the claim was taken: no value moved on */
    CHECK(cc_segqueue_size(q) == 7);
    CHECK(cc_segqueue_pop_many(q, out, 16) == 7);
    for (uintptr_t i = 0; i < 7; i++) CHECK(out[i] == V(103 + i));
    CHECK(!cc_segqueue_pop(q, &v));

    g_claims = 0;
    atomic_store(&cc__segqueue_hook, batch_pop_at_first_claim);
    CHECK(cc_segqueue_push_many(q, in, 10) == 10);
    atomic_store(&cc__segqueue_hook, NULL);
    /* nothing filled: like pop, the batch takes the unfilled slots one
     * claim at a time (it never waits) and reports empty; push_many then
     * claims 10 new slots */
    CHECK(g_claims == 20);
    CHECK(cc_segqueue_pop_many(q, out, 16) == 10);
    for (uintptr_t i = 0; i < 10; i++) CHECK(out[i] == V(100 + i));
    cc_segqueue_destroy(q);
    printf("ok: a batch pop claims only the filled prefix of a pending push_many\n");
}

static unsigned g_heads;
static void count_heads(cc_segqueue_t *q, int point) {
    (void)q;
    if (point == CC__SEGQUEUE_POP_HEAD) g_heads++;
}

static void test_batch_claim_capped(void) {
    cc_segqueue_t *q = cc_segqueue_new();
    CHECK(q != NULL);
    static void *in[200], *out[200];
    for (uintptr_t i = 0; i < 200; i++) in[i] = V(i + 1);
    CHECK(cc_segqueue_push_many(q, in, 200) == 200);
    g_heads = 0;
    atomic_store(&cc__segqueue_hook, count_heads);
    CHECK(cc_segqueue_pop_many(q, out, 200) == 200);
    atomic_store(&cc__segqueue_hook, NULL);
    CHECK(g_heads == (200 + CC__SEGQUEUE_CLAIM_MAX - 1) / CC__SEGQUEUE_CLAIM_MAX);
    for (uintptr_t i = 0; i < 200; i++) CHECK(out[i] == V(i + 1));
    cc_segqueue_destroy(q);
    printf("ok: one batch claim takes at most %u slots\n", CC__SEGQUEUE_CLAIM_MAX);
}

/* (f): on the pop's second head load (after it moved head and retired the
 * drained segment), take the only value and clobber errno. */
static void steal_and_clobber(cc_segqueue_t *q, int point) {
    if (point != CC__SEGQUEUE_POP_HEAD) return;
    if (++g_calls != 2) return;
    atomic_store(&cc__segqueue_hook, NULL);
    void *v;
    CHECK(cc_segqueue_pop(q, &v));
    CHECK(v == V(N + 1));
    errno = ENOMEM;
}

static void test_empty_pop_after_retire_keeps_errno(void) {
    for (int batch = 0; batch < 2; batch++) {
        cc_segqueue_t *q = cc_segqueue_new();
        CHECK(q != NULL);
        void *v;
        for (uintptr_t i = 1; i <= N + 1; i++) CHECK(cc_segqueue_push(q, V(i)));
        for (uintptr_t i = 1; i <= N; i++) CHECK(cc_segqueue_pop(q, &v));
        g_calls = 0;
        atomic_store(&cc__segqueue_hook, steal_and_clobber);
        errno = 12345;
        if (batch) CHECK(cc_segqueue_pop_many(q, &v, 1) == 0);
        else CHECK(!cc_segqueue_pop(q, &v));
        CHECK(g_calls == 2);
        CHECK(errno == 12345);
        cc_segqueue_destroy(q);
    }
    printf("ok: an empty pop that retired a segment leaves errno untouched\n");
}

int main(void) {
    cc_alloc_stats_enable(true);
    CHECK(cc_smr_barrier() == 0);
    cc_alloc_snapshot_t a0 = cc_alloc_stats_snapshot();
    test_retire_while_held();
    test_pop_overtakes_push();
    test_batch_pop_claims_filled_prefix();
    test_batch_claim_capped();
    test_empty_pop_after_retire_keeps_errno();
    CHECK(cc_smr_barrier() == 0);
    cc_alloc_snapshot_t a = cc_alloc_stats_snapshot();
    CHECK(a.current_blocks == a0.current_blocks);
    CHECK(a.current_allocated == a0.current_allocated);
    return 0;
}
