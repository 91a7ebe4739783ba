/*
 * The stack reads a node only inside its section ("tests with teeth").
 *
 * Two windows of a few instructions, made wide by the TEST ONLY pause points
 * of src/stack.c (CC_STACK_TEST_HOOK, compiled into the test-hooks library):
 *   - pop, right after it leaves its section: the node it popped is retired
 *     and may be freed from here on, so its value must already be read
 *     (test_pop_value_read_inside);
 *   - size, between its load of head and its read of head->depth: that node
 *     must stay allocated, so size must be inside a section
 *     (test_size_reads_inside).
 * In each window the thread is parked (it calls cc_smr_idle() first, as a
 * thread about to wait should; inside a section that is a no-op) while the
 * main thread pops and forces frees: cc_smr_barrier() after pop, polls after
 * size (a barrier would wait for the parked section). Under the debug backend
 * a freed node is filled with 0xDD, and under ASan it is poisoned, so a read
 * after the free returns a wrong value or is reported; the test checks the
 * values, so a stack that reads outside its section fails every time there.
 * (Under mimalloc the freed node usually keeps its bytes.)
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <cc/stack.h>
#include "smr_script.h"
#include "smr_test.h"

#include <stdatomic.h>
#include <stdint.h>

/* src/stack.c, TEST ONLY. */
enum { CC__STACK_HOOK_POP_LEFT = 0, CC__STACK_HOOK_SIZE_LOADED = 1 };
extern CC_API void (*_Atomic cc__stack_test_hook)(const cc_stack_t *s, int point);

#define V(i) ((void *)(uintptr_t)(0x5EED0000u + (i)))

static int g_base;
static void go(int s) { script_go(g_base + s); }
static void wait_for(int s) { script_wait(g_base + s); }

enum { IN_WINDOW = 1, FREED, OUT };

static int g_point; /* the window to park in */
static _Atomic int g_hits;

static void park_in_window(const cc_stack_t *s, int point) {
    (void)s;
    if (point != g_point) return;
    atomic_fetch_add(&g_hits, 1);
    cc_smr_idle();
    go(IN_WINDOW);
    wait_for(FREED);
}

static cc_stack_t *g_s;

static void *popper(void *arg) {
    (void)arg;
    void *v = NULL;
    CC_CHECK(cc_stack_pop(g_s, &v));
    CC_CHECK(v == V(3)); /* the value, read before the node could be freed */
    cc_smr_idle();
    go(OUT);
    return NULL;
}

static void *sizer(void *arg) {
    (void)arg;
    size_t n = cc_stack_size(g_s);
    CC_CHECK(n == 3); /* the size at its load of head (3 nodes then) */
    cc_smr_idle();
    go(OUT);
    return NULL;
}

static void setup_stack(int point) {
    assert_int_equal(cc_smr_barrier(), 0);
    cc_smr_idle();
    g_base += 100;
    g_s = cc_stack_new();
    assert_non_null(g_s);
    for (unsigned i = 1; i <= 3; i++) assert_true(cc_stack_push(g_s, V(i)));
    g_point = point;
    atomic_store(&g_hits, 0);
    atomic_store(&cc__stack_test_hook, park_in_window);
}

static void teardown_stack(void) {
    atomic_store(&cc__stack_test_hook, NULL);
    assert_int_equal(atomic_load(&g_hits), 1);
    void *v;
    while (cc_stack_pop(g_s, &v)) {
    }
    cc_stack_destroy(g_s);
    assert_int_equal(cc_smr_barrier(), 0);
    cc_smr_idle();
    assert_int_equal(cc_smr_stats().pending, 0);
}

static void test_pop_value_read_inside(void **state) {
    (void)state;
    setup_stack(CC__STACK_HOOK_POP_LEFT);
    pthread_t t;
    smr_spawn(&t, popper, NULL);
    wait_for(IN_WINDOW);
    /* The popped node is retired and its popper out of its section: free it. */
    assert_int_equal(cc_smr_barrier(), 0);
    cc_smr_idle();
    assert_int_equal(cc_smr_stats().pending, 0);
    go(FREED);
    wait_for(OUT);
    smr_join(t);
    teardown_stack();
}

static void test_size_reads_inside(void **state) {
    (void)state;
    setup_stack(CC__STACK_HOOK_SIZE_LOADED);
    pthread_t t;
    smr_spawn(&t, sizer, NULL);
    wait_for(IN_WINDOW);
    /* Pop the node the sizer loaded, then poll: three advances free it unless
     * a section holds the epoch back (the sizer's, if it is in one). */
    void *v = NULL;
    assert_true(cc_stack_pop(g_s, &v));
    assert_ptr_equal(v, V(3));
    for (int i = 0; i < 4; i++) (void)cc_smr_poll();
    cc_smr_idle();
    go(FREED);
    wait_for(OUT);
    smr_join(t);
    teardown_stack();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pop_value_read_inside),
        cmocka_unit_test(test_size_reads_inside),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
