/*
 * A Michael-Scott lock-free MPMC queue over <cc/smr.h>.
 *
 * `head` points to a dummy node; the values live in the nodes after it. push
 * links a node after the last one (CAS on last->next) and swings `tail`
 * (helping a lagging tail first). pop reads head, tail and head->next, reads
 * the value from head->next BEFORE the CAS that moves head (classic MS: after
 * the CAS another popper may retire that node), and retires the old dummy.
 * Both operations run inside an SMR section, so every node they read stays
 * allocated: no use-after-free and no ABA on head/tail/next CASes.
 *
 * Memory ordering:
 *  - next CAS (link) release: the node's value/next are visible to whoever
 *    reads the link with acquire. Failure acquire (we read the node found).
 *  - loads of head, tail and next acquire (we dereference what they give).
 *  - tail CAS release/relaxed: publishes a node already published via next.
 *  - head CAS acquire: orders nothing new except our later reads; release not
 *    needed (the node contents were published by the link).
 *
 * Size without shared counters: each node carries its position `seq` (the
 * dummy created by new has 0; push sets n->seq = last->seq + 1 before the
 * link CAS publishes n, and it never changes). The size is last->seq -
 * head->seq, read inside a section: exact while no other thread changes the
 * queue (then tail is the last node), approximate otherwise. No atomic RMW
 * is added to push or pop.
 */
#include <cc/queue.h>

#include <errno.h>

/* Aligned (so sized) to a whole line, as the stack's node (src/stack.c). */
typedef struct qnode {
    _Alignas(CC_CACHE_LINE_SIZE) _Atomic(struct qnode *) next;
    void *value;
    size_t seq; /* position: written before the node is published, then fixed */
} qnode_t;

struct cc_queue {
    _Alignas(CC_CACHE_LINE_SIZE) _Atomic(qnode_t *) head;
    _Alignas(CC_CACHE_LINE_SIZE) _Atomic(qnode_t *) tail;
};

#ifdef CC_QUEUE_TEST_HOOK
/* TEST ONLY (the test-hooks library; tests/smr/test_queue_lag.c): when set, push
 * calls it between linking its node and swinging `tail`, so a test can run
 * pops and pushes while the tail lags by construction -- the state that a
 * preempted pusher leaves, which otherwise shows up only by chance. */
CC_API void (*_Atomic cc__queue_lag_hook)(cc_queue_t *q);
static inline void lag_hook(cc_queue_t *q) {
    void (*hook)(cc_queue_t *) = atomic_load_explicit(&cc__queue_lag_hook, memory_order_relaxed);
    if (hook) hook(q);
}
#define LAG_HOOK(q) lag_hook(q)
#else
#define LAG_HOOK(q) ((void)0)
#endif

CC_API cc_queue_t *cc_queue_new(void) {
    cc_queue_t *q = cc_alloc_node(sizeof *q);
    if (q == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    qnode_t *d = cc_alloc_node(sizeof *d);
    if (d == NULL) {
        cc_free(q, sizeof *q);
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&d->next, NULL);
    d->value = NULL;
    d->seq = 0;
    atomic_init(&q->head, d);
    atomic_init(&q->tail, d);
    return q;
}

CC_API void cc_queue_destroy(cc_queue_t *q) {
    if (q == NULL) return;
    qnode_t *n = atomic_load_explicit(&q->head, memory_order_acquire);
    while (n) {
        qnode_t *next = atomic_load_explicit(&n->next, memory_order_acquire);
        cc_free(n, sizeof *n);
        n = next;
    }
    cc_free(q, sizeof *q);
}

CC_API bool cc_queue_push(cc_queue_t *q, void *value) {
    if (q == NULL) {
        errno = EINVAL;
        return false;
    }
    qnode_t *n = cc_alloc_node(sizeof *n);
    if (n == NULL) {
        errno = ENOMEM;
        return false;
    }
    n->value = value;
    atomic_store_explicit(&n->next, NULL, memory_order_relaxed);
    cc_smr_enter();
    for (;;) {
        qnode_t *t = atomic_load_explicit(&q->tail, memory_order_acquire);
        qnode_t *next = atomic_load_explicit(&t->next, memory_order_acquire);
        if (t != atomic_load_explicit(&q->tail, memory_order_acquire)) continue;
        if (next == NULL) {
            n->seq = t->seq + 1; /* t is protected by the section */
            if (atomic_compare_exchange_weak_explicit(&t->next, &next, n, memory_order_release,
                                                      memory_order_acquire)) {
                LAG_HOOK(q);
                atomic_compare_exchange_strong_explicit(&q->tail, &t, n, memory_order_release,
                                                        memory_order_relaxed);
                break;
            }
        } else {
            atomic_compare_exchange_strong_explicit(&q->tail, &t, next, memory_order_release,
                                                    memory_order_relaxed);
        }
    }
    cc_smr_exit();
    return true;
}

CC_API bool cc_queue_pop(cc_queue_t *q, void **value) {
    if (q == NULL) {
        errno = EINVAL;
        return false;
    }
    void *v;
    cc_smr_enter();
    for (;;) {
        qnode_t *h = atomic_load_explicit(&q->head, memory_order_acquire);
        qnode_t *t = atomic_load_explicit(&q->tail, memory_order_acquire);
        qnode_t *next = atomic_load_explicit(&h->next, memory_order_acquire);
        if (h != atomic_load_explicit(&q->head, memory_order_acquire)) continue;
        if (next == NULL) {
            cc_smr_exit();
            return false;
        }
        if (h == t) { /* tail lags behind: help it */
            atomic_compare_exchange_strong_explicit(&q->tail, &t, next, memory_order_release,
                                                    memory_order_relaxed);
            continue;
        }
        v = next->value; /* before the CAS: afterwards `next` may be retired */
        if (atomic_compare_exchange_strong_explicit(&q->head, &h, next, memory_order_acquire,
                                                    memory_order_relaxed)) {
            cc_smr_retire(h, sizeof *h, NULL);
            break;
        }
    }
    cc_smr_exit();
    if (value) *value = v;
    return true;
}

CC_API size_t cc_queue_size(const cc_queue_t *q) {
    if (q == NULL) return 0;
    cc_queue_t *m = (cc_queue_t *)q;
    cc_smr_enter();
    qnode_t *h = atomic_load_explicit(&m->head, memory_order_acquire);
    qnode_t *t = atomic_load_explicit(&m->tail, memory_order_acquire);
    /* tail may lag behind the last node; a bounded walk catches it up (with
     * pushes going on, the result is approximate anyway). */
    for (int i = 0; i < 64; i++) {
        qnode_t *next = atomic_load_explicit(&t->next, memory_order_acquire);
        if (next == NULL) break;
        t = next;
    }
    size_t n = t->seq > h->seq ? t->seq - h->seq : 0;
    cc_smr_exit();
    return n;
}

CC_API void cc_queue_foreach(const cc_queue_t *q, void (*fn)(void *value, void *arg), void *arg) {
    if (q == NULL || fn == NULL) return;
    qnode_t *n = atomic_load_explicit(&((cc_queue_t *)q)->head, memory_order_acquire);
    for (n = atomic_load_explicit(&n->next, memory_order_acquire); n;
         n = atomic_load_explicit(&n->next, memory_order_acquire))
        fn(n->value, arg);
}
