/*
 * Issue 15: both queue operations must help a lagging tail.
 *
 * A pusher links its node, then swings `tail`; between the two the tail lags
 * one node behind. A pusher preempted there must not stop anyone else: a
 * push that finds tail->next set swings the tail itself, and a pop that
 * finds head == tail with a successor does too, so head never passes tail.
 * An operation that only waits for the lagging pusher (retries without
 * helping) makes the queue blocking: it spins until that pusher runs again.
 *
 * Deterministic, single-threaded: the test-hooks library's TEST ONLY pause point
 * (src/queue.c, CC_QUEUE_TEST_HOOK) calls back between the link and the swing,
 * and the callback pushes and pops on the same thread while the tail lags by
 * construction. The lagging pusher is this very thread, so an operation that
 * waits for it instead of helping never returns (CTest's TIMEOUT reports
 * it): no luck with scheduling needed. Everything popped is checked, and
 * every node must be freed once the queue is destroyed.
 */
#include <cc/queue.h>
#include "smr_test.h"

#include <stdint.h>
#include <stdio.h>

/* src/queue.c, TEST ONLY. */
extern CC_API void (*_Atomic cc__queue_lag_hook)(cc_queue_t *q);

#define CHECK(c)                                                              \
    do {                                                                      \
        if (!(c)) {                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            exit(1);                                                          \
        }                                                                     \
    } while (0)
#define V(i) ((void *)(uintptr_t)(i))

static unsigned g_hook_calls;

/* (b) push while a push is between its link and its tail swing. */
static void push_during_lag(cc_queue_t *q) {
    atomic_store(&cc__queue_lag_hook, NULL); /* the nested push runs normally */
    g_hook_calls++;
    CHECK(cc_queue_push(q, V(2)));
    CHECK(cc_queue_size(q) == 2);
}

/* (a) pop while the tail lags behind head's successor (head == tail). */
static void pop_during_lag(cc_queue_t *q) {
    atomic_store(&cc__queue_lag_hook, NULL);
    g_hook_calls++;
    void *v = NULL;
    CHECK(cc_queue_pop(q, &v)); /* takes the value the lagging push linked */
    CHECK(v == V(1));
    CHECK(!cc_queue_pop(q, &v)); /* now empty */
    CHECK(cc_queue_push(q, V(2))); /* and a push after head moved past the lag */
}

/* Both, repeatedly, with the queue going empty each time. */
static void pop_push_during_lag(cc_queue_t *q) {
    atomic_store(&cc__queue_lag_hook, NULL);
    g_hook_calls++;
    void *v = NULL;
    CHECK(cc_queue_pop(q, &v));
    CHECK(cc_queue_push(q, v)); /* re-queued after the lagging node */
    CHECK(cc_queue_pop(q, &v));
    CHECK(cc_queue_push(q, v));
}

static void run(void (*hook)(cc_queue_t *), const char *name) {
    cc_queue_t *q = cc_queue_new();
    CHECK(q != NULL);
    g_hook_calls = 0;
    atomic_store(&cc__queue_lag_hook, hook);
    CHECK(cc_queue_push(q, V(1))); /* the hook runs inside this push */
    CHECK(g_hook_calls == 1);
    void *v = NULL;
    CHECK(cc_queue_pop(q, &v));
    CHECK(v == (hook == pop_during_lag ? V(2) : V(1)));
    if (hook == push_during_lag) {
        CHECK(cc_queue_pop(q, &v));
        CHECK(v == V(2));
    }
    CHECK(!cc_queue_pop(q, &v));
    CHECK(cc_queue_size(q) == 0);
    /* The queue still works both ways after the lag. */
    for (uintptr_t i = 10; i < 20; i++) CHECK(cc_queue_push(q, V(i)));
    for (uintptr_t i = 10; i < 20; i++) {
        CHECK(cc_queue_pop(q, &v));
        CHECK(v == V(i));
    }
    CHECK(!cc_queue_pop(q, &v));
    cc_queue_destroy(q);
    printf("ok: %s\n", name);
}

int main(void) {
    cc_alloc_stats_enable(true);
    CHECK(cc_smr_barrier() == 0);
    cc_alloc_snapshot_t a0 = cc_alloc_stats_snapshot();
    run(push_during_lag, "push helps a lagging tail");
    run(pop_during_lag, "pop helps a lagging tail (head == tail, successor linked)");
    run(pop_push_during_lag, "pops and pushes while the tail lags");
    CHECK(cc_smr_barrier() == 0);
    cc_alloc_snapshot_t a = cc_alloc_stats_snapshot();
    CHECK(a.current_blocks == a0.current_blocks);
    CHECK(a.current_allocated == a0.current_allocated);
    return 0;
}
