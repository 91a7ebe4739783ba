/*
 * A Treiber lock-free stack over <cc/smr.h>.
 *
 * Nodes come from cc_alloc_node(sizeof(node_t)) and go back with the same
 * size. pop reads head->next inside an SMR critical section and retires the
 * node it unlinked there, so the node it read cannot be freed (and reused)
 * under it: no use-after-free, and no ABA on the head CAS (a node whose
 * address is in `head` cannot be recycled while a popper that loaded it is
 * still in its section).
 *
 * Size without a shared counter: each node records the number of nodes at
 * and below it (`depth`, set before the node is published and never changed),
 * so the size is head->depth, read inside a section. No extra atomic RMW on
 * push or pop. The size is linearizable -- the stack's size at the instant
 * of the load of head -- but only that: other threads may change the stack
 * before the caller uses the number. The price: push reads the old head's
 * depth, so it runs inside a section too.
 *
 * Memory ordering:
 *  - push: node fields are plain/relaxed stores; the head CAS is release (the
 *    node is initialised before it is reachable); failure acquire (we read
 *    the depth of the head it returns, published by its pusher's release).
 *  - pop: head loads and CAS failure are acquire (we dereference the node: its
 *    `next` and `value` written before the pushing release CAS must be
 *    visible); the successful CAS is acquire too (value read after it).
 *  - size: acquire load of head (we read its depth).
 */
#include <cc/stack.h>

#include <errno.h>

/* Aligned (so sized) to a whole line: cc_alloc_node hands out a whole line
 * anyway, and with sizeof(node_t) a multiple of the line the size passed to
 * cc_free by the SMR free names the block's size class exactly, so the glue
 * need not ask mimalloc for the usable size at every free (see the
 * "ambiguous size" rule in <cc/alloc.h>). */
typedef struct node {
    _Alignas(CC_CACHE_LINE_SIZE) _Atomic(struct node *) next;
    void *value;
    size_t depth; /* nodes from this one to the bottom, this one included */
} node_t;

struct cc_stack {
    _Alignas(CC_CACHE_LINE_SIZE) _Atomic(node_t *) head;
};

#ifdef CC_STACK_TEST_HOOK
/* TEST ONLY (the test-hooks library; tests/smr/test_stack_window.c): when set,
 * pop calls it right after leaving its section (the node it popped may be
 * freed from then on) and size calls it between its load of head and its read
 * of head->depth, so a test can pop and free nodes in exactly those windows. */
enum { CC__STACK_HOOK_POP_LEFT = 0, CC__STACK_HOOK_SIZE_LOADED = 1 };
CC_API void (*_Atomic cc__stack_test_hook)(const cc_stack_t *s, int point);
static inline void stack_hook(const cc_stack_t *s, int point) {
    void (*hook)(const cc_stack_t *, int) = atomic_load_explicit(&cc__stack_test_hook, memory_order_relaxed);
    if (hook) hook(s, point);
}
#define STACK_HOOK(s, point) stack_hook((s), CC__STACK_HOOK_##point)
#else
#define STACK_HOOK(s, point) ((void)0)
#endif

CC_API cc_stack_t *cc_stack_new(void) {
    cc_stack_t *s = cc_alloc_node(sizeof *s);
    if (s == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&s->head, NULL);
    return s;
}

CC_API void cc_stack_destroy(cc_stack_t *s) {
    if (s == NULL) return;
    node_t *n = atomic_load_explicit(&s->head, memory_order_acquire);
    while (n) {
        node_t *next = atomic_load_explicit(&n->next, memory_order_relaxed);
        cc_free(n, sizeof *n);
        n = next;
    }
    cc_free(s, sizeof *s);
}

CC_API bool cc_stack_push(cc_stack_t *s, void *value) {
    if (s == NULL) {
        errno = EINVAL;
        return false;
    }
    node_t *n = cc_alloc_node(sizeof *n);
    if (n == NULL) {
        errno = ENOMEM;
        return false;
    }
    n->value = value;
    cc_smr_enter(); /* h->depth is read: h must not be freed meanwhile */
    node_t *h = atomic_load_explicit(&s->head, memory_order_acquire);
    do {
        atomic_store_explicit(&n->next, h, memory_order_relaxed);
        n->depth = h ? h->depth + 1 : 1;
    } while (!atomic_compare_exchange_weak_explicit(&s->head, &h, n, memory_order_release,
                                                    memory_order_acquire));
    cc_smr_exit();
    return true;
}

CC_API bool cc_stack_pop(cc_stack_t *s, void **value) {
    if (s == NULL) {
        errno = EINVAL;
        return false;
    }
    cc_smr_enter();
    node_t *h = atomic_load_explicit(&s->head, memory_order_acquire);
    while (h != NULL) {
        node_t *next = atomic_load_explicit(&h->next, memory_order_relaxed);
        if (atomic_compare_exchange_weak_explicit(&s->head, &h, next, memory_order_acquire,
                                                  memory_order_acquire))
            break;
    }
    if (h == NULL) {
        cc_smr_exit();
        return false;
    }
    void *v = h->value;
    cc_smr_retire(h, sizeof *h, NULL); /* inside the section: no extra enter */
    cc_smr_exit();
    STACK_HOOK(s, POP_LEFT);
    if (value) *value = v;
    return true;
}

CC_API size_t cc_stack_size(const cc_stack_t *s) {
    if (s == NULL) return 0;
    cc_smr_enter();
    node_t *h = atomic_load_explicit(&((cc_stack_t *)s)->head, memory_order_acquire);
    STACK_HOOK(s, SIZE_LOADED);
    size_t n = h ? h->depth : 0;
    cc_smr_exit();
    return n;
}

CC_API void cc_stack_foreach(const cc_stack_t *s, void (*fn)(void *value, void *arg), void *arg) {
    if (s == NULL || fn == NULL) return;
    for (node_t *n = atomic_load_explicit(&((cc_stack_t *)s)->head, memory_order_acquire); n;
         n = atomic_load_explicit(&n->next, memory_order_relaxed))
        fn(n->value, arg);
}
