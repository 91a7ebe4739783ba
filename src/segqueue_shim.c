/*
 * TEMP shim: the <cc/segqueue.h> API over cc_queue (Michael-Scott), so that
 * the Python binding can be written against cc_segqueue_* before the segment
 * queue lands. Not the real thing: one node per item. Removed when the segq
 * branch is merged.
 */
#include <cc/queue.h>
#include <cc/segqueue.h>

#include <errno.h>

cc_segqueue_t *cc_segqueue_new(void) {
    return (cc_segqueue_t *)cc_queue_new(); /* the handle is the cc_queue itself */
}

void cc_segqueue_destroy(cc_segqueue_t *queue) { cc_queue_destroy((cc_queue_t *)queue); }

bool cc_segqueue_push(cc_segqueue_t *queue, void *value) {
    return cc_queue_push((cc_queue_t *)queue, value);
}

bool cc_segqueue_pop(cc_segqueue_t *queue, void **value) {
    return cc_queue_pop((cc_queue_t *)queue, value);
}

size_t cc_segqueue_push_many(cc_segqueue_t *queue, void *const *values, size_t n) {
    if (queue == NULL || (values == NULL && n > 0)) {
        errno = EINVAL;
        return 0;
    }
    size_t i = 0;
    while (i < n && cc_queue_push((cc_queue_t *)queue, values[i])) i++;
    return i;
}

size_t cc_segqueue_pop_many(cc_segqueue_t *queue, void **out, size_t max) {
    if (queue == NULL || out == NULL) {
        errno = EINVAL;
        return 0;
    }
    size_t i = 0;
    while (i < max && cc_queue_pop((cc_queue_t *)queue, &out[i])) i++;
    return i;
}

size_t cc_segqueue_size(const cc_segqueue_t *queue) {
    return cc_queue_size((const cc_queue_t *)queue);
}

void cc_segqueue_foreach(const cc_segqueue_t *queue, void (*fn)(void *value, void *arg),
                         void *arg) {
    cc_queue_foreach((const cc_queue_t *)queue, fn, arg);
}
