/* A user's program: built only from the installed headers and libraries. */
#include <cc/alloc.h>
#include <cc/queue.h>
#include <cc/segqueue.h>
#include <cc/stack.h>

#include <stdio.h>

int main(void) {
    cc_alloc_stats_enable(true);
    void *p = cc_alloc_node(40);
    cc_queue_t *q = cc_queue_new();
    int ok = p != NULL && q != NULL && cc_queue_push(q, p);
    void *out = NULL;
    ok = ok && cc_queue_pop(q, &out) && out == p;
    cc_queue_destroy(q);
    cc_segqueue_t *sq = cc_segqueue_new();
    ok = ok && sq != NULL && cc_segqueue_push(sq, p) && cc_segqueue_pop(sq, &out) && out == p;
    cc_segqueue_destroy(sq);
    cc_free(p, 40);
    cc_smr_barrier();
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    printf("backend=%s allocs=%llu current=%llu\n", cc_alloc_backend(),
           (unsigned long long)s.alloc_count, (unsigned long long)s.current_allocated);
    return ok && s.current_allocated == 0 ? 0 : 1;
}
