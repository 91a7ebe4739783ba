/*
 * _queue.c -- concurrent_collections.LockFreeQueue: a drop-in for
 * queue.SimpleQueue over cc_segqueue, with a futex-based blocking get,
 * shutdown() and the batch methods put_many / get_many.
 *
 * References. The queue stores strong references (void * = PyObject *). put
 * takes a new reference; a get hands the stored one to the caller. No Python
 * code runs between a C pop and the moment the reference has an owner (the
 * caller, or a list allocated BEFORE the pop in get_many), so an item is never
 * lost, even when allocation fails or a finalizer re-enters the queue.
 *
 * GC. tp_traverse walks the items with cc_segqueue_foreach, which is not safe
 * against concurrent changes. It is only called while no other thread can
 * change the queue: on GIL builds every push/pop runs with the GIL held (the
 * futex wait, run without it, does not touch the queue), and on free-threaded
 * builds the collector stops the world, and no thread stops inside a push or
 * pop (they contain no safe point).
 *
 * Blocking get, first a bounded spin: a get that finds the queue empty (and
 * may wait: timeout 0, get_nowait and try_get never spin) first watches the
 * queue for up to 10 us, then yields the CPU at most twice, before it
 * registers as a waiter. It runs detached (Py_BEGIN_ALLOW_THREADS: on GIL
 * builds the producer needs the GIL), and only reads cc_segqueue_size, which
 * is safe without the GIL and while a collector walks the queue (a pop is
 * not: see GC above); it re-attaches to pop. Measured on 2 CPUs (3.13t and
 * 3.11, bench/python/bench_queue_targets.py): without the yields a spin of
 * 3-30 us gained little, since with threads outnumbering cores the producer
 * often waits for this very CPU; the yields hand it over (and return at once
 * when nothing else is runnable). 10 us is about the futex round trip it
 * saves and far below a time slice. An idle get still sleeps after ~10 us and
 * two yields: one voluntary context switch in all, no polling. A spinning
 * getter is not registered, so puts during the spin pay only the fence and
 * one load.
 *
 * Then the futex path. The wait state is three 32-bit words and no lock.
 *   waiters  getters on the slow path (registered before their last pop try);
 *   wake     the futex word: an event counter, bumped by a put that sees
 *            waiters, by shutdown(), and by a getter that leaves with an
 *            exception while others wait (it may have taken their wakeup);
 *   sleepers getters between their last pop try and the return of their
 *            futex wait: a bump issues FUTEX_WAKE only if it sees one.
 * A getter G: (G1) waiters += 1 (seq_cst RMW), then a seq_cst fence; then in
 * a loop (G2) key = wake (acquire), (G3) pop, and if that fails, (G4) futex
 * wait while wake == key: sleepers += 1 (seq_cst RMW) and a seq_cst fence,
 * futex_wait, sleepers -= 1. A putter P: (P1) push, (P2) a seq_cst fence,
 * (P3) load waiters, and only if it is non-zero (P4) wake += 1 (seq_cst RMW),
 * load sleepers (seq_cst), and only if it is non-zero FUTEX_WAKE one. No
 * lost wakeup: this is Dekker's pattern. The two
 * fences (G1 and P2) are in the single total order of seq_cst operations; if
 * G's fence comes first, P3 sees G's registration, else G3 sees P1's item
 * (store-load ordering needs the seq_cst fences: acquire/release alone would
 * let each side miss the other). When P3 sees G, P4 comes after P1. If G2 read
 * wake before P4, the kernel compares wake with key atomically with respect
 * to FUTEX_WAKE, so G4 either does not sleep (EAGAIN) or is woken. If G2 read
 * wake after P4, it synchronizes with P4's release, and G3 sees the item
 * (or another getter took it, and G rightly waits for the next). A put that
 * sees no waiters pays the fence and one load: no syscall.
 * Skipping FUTEX_WAKE when sleepers == 0 is a second Dekker pair: P does
 * wake += 1 then loads sleepers, G does sleepers += 1, a fence, then the
 * kernel loads wake (futex_wait's compare; the kernel also has a full barrier
 * there). In the seq_cst total order either G's increment comes first, and P
 * sees sleepers != 0 and calls FUTEX_WAKE (the argument above then holds as
 * before), or P's bump comes first, and the kernel's compare sees the bumped
 * wake: if G's key predates the bump, the wait returns EAGAIN at once and G
 * pops again; if not, G2 acquired P4 and G3 saw the item. `wake` is still
 * bumped on every such put, so a getter between G2 and its increment of
 * sleepers cannot sleep on a stale key. The decrement after the wait is
 * relaxed: a stale non-zero count only costs a FUTEX_WAKE that finds nobody.
 * So while the waiters are awake (spinning back to G2, or waiting for the GIL
 * after a wakeup) a put costs one RMW, not a syscall.
 * Every FUTEX_WAKE removes the sleeper it wakes from the kernel's queue, so n
 * puts wake n distinct sleepers. A woken getter that finds the item gone
 * (taken by a getter on the fast path) waits again; one that leaves with an
 * exception (timeout, Ctrl-C, shutdown) passes a wakeup on if others still
 * wait and items remain (the same P4: bump, then FUTEX_WAKE if sleepers).
 *
 * Signals. A sleeper wakes with EINTR when a signal handler ran in its thread.
 * After every wakeup (EINTR or not: the handler may have run while the
 * thread was awake, and then no later wait is interrupted) the getter calls
 * PyErr_CheckSignals: on the main thread of the main interpreter that runs
 * the Python handlers (a KeyboardInterrupt leaves get at once), elsewhere it
 * does nothing and the getter waits again. So Ctrl-C
 * reaches a blocked get as promptly as it reaches SimpleQueue.get, with no
 * polling and no knowledge of which thread is "main" (none is cached). The
 * sleep runs with the thread detached (Py_BEGIN_ALLOW_THREADS): the GIL is
 * released, and on free-threaded builds the collector can stop the world.
 *
 * fork(). A futex word has no owner and no kernel state outside a wait, so
 * the child inherits plain integers. `wake` is only ever compared with itself.
 * `waiters` and `sleepers` may count parent threads that do not exist in the
 * child: they only make the child's puts pay a bump and a FUTEX_WAKE that
 * finds nobody (or wakes a child getter, which is harmless: a spurious wakeup
 * re-checks and waits again); a count too high never skips a wakeup. Nothing can hang: no put ever waits for a getter. shutdown's state
 * is a plain flag. A parent thread that was spinning had not registered.
 *
 * Shutdown (as queue.Queue.shutdown since 3.13): `shut` goes 0 -> 1 (or 2 for
 * immediate) with a seq_cst store, then wake += 1 and FUTEX_WAKE all, whatever
 * `sleepers` says (rare; no second argument needed). A spinning getter sees
 * the flag and goes on to the futex path, which checks it. A getter
 * checks `shut` after a failed pop and before it sleeps: it read `key` before,
 * so either it sees the flag or the bump makes its wait return. A put checks
 * `shut` before it pushes: a put racing with shutdown() may still land, and is
 * then ordered before it. After an immediate shutdown every get raises, and
 * an item a racing put left behind is released (not returned) by the get
 * that pops it, or by the queue's deallocation.
 */
#include "_core.h"

#include <cc/segqueue.h>

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    PyObject_HEAD
    cc_segqueue_t *queue;
    PyObject *weakreflist;
    atomic_uint waiters; /* getters on the slow path */
    atomic_uint wake;    /* the futex word (an event counter) */
    atomic_uint sleepers; /* getters in (or about to enter) futex_wait */
    atomic_int shut;     /* 0 open, 1 shut down, 2 shut down immediately */
} QueueObject;

enum { OPEN = 0, SHUT = 1, SHUT_IMMEDIATE = 2 };

/* ---- futex and time --------------------------------------------------------- */

/* Sleeps while *word == expected, until woken, a signal, or the absolute
 * CLOCK_MONOTONIC deadline (NULL: none). Returns 0 or the errno (EAGAIN,
 * EINTR, ETIMEDOUT). */
static int futex_wait(atomic_uint *word, unsigned expected, const struct timespec *deadline) {
    long rc = syscall(SYS_futex, (unsigned *)word, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
                      expected, deadline, NULL, FUTEX_BITSET_MATCH_ANY);
    return rc == 0 ? 0 : errno;
}

static void futex_wake(atomic_uint *word, int n) {
    (void)syscall(SYS_futex, (unsigned *)word, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n, NULL, NULL, 0);
}

static int64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A full memory barrier (C11 seq_cst fence). On x86-64 a locked add to the
 * stack is as strong for ordinary memory and cheaper than mfence. */
static inline void full_fence(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __asm__ __volatile__("lock; addl $0,-4(%%rsp)" ::: "memory", "cc");
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* P4: bump the event counter (seq_cst: ordered after the push that precedes
 * it, for a getter that acquires the new value, and before the load of
 * `sleepers`, the second Dekker pair) and wake up to n sleepers, if any. */
static void queue_wake(QueueObject *self, int n) {
    atomic_fetch_add_explicit(&self->wake, 1, memory_order_seq_cst);
    if (atomic_load_explicit(&self->sleepers, memory_order_seq_cst) != 0)
        futex_wake(&self->wake, n);
}

/* P2 + P3 + P4, after a successful push of n items. */
static inline void queue_notify(QueueObject *self, size_t n) {
    full_fence(); /* P2: the push before the load of waiters (store-load) */
    if (atomic_load_explicit(&self->waiters, memory_order_relaxed) != 0)
        queue_wake(self, n > INT_MAX ? INT_MAX : (int)n);
}

/* ---- errors ------------------------------------------------------------------ */

static PyObject *raise_empty(PyObject *self) {
    ccpy_state *st = ccpy_state_of(self);
    if (st != NULL) PyErr_SetNone(st->empty_error);
    return NULL;
}

static PyObject *raise_shutdown(PyObject *self) {
    ccpy_state *st = ccpy_state_of(self);
    if (st != NULL) PyErr_SetNone(st->shutdown_error);
    return NULL;
}

static inline int is_shut(QueueObject *self) {
    return atomic_load_explicit(&self->shut, memory_order_acquire);
}

/* timeout (seconds, int or float) -> ns, rounding up, with the checks and
 * messages of CPython's _PyTime_FromSecondsObject(..., _PyTime_ROUND_CEILING). */
#if PY_VERSION_HEX >= 0x030D0000
#define CCPY_TIME_T_NAME "PyTime_t"
#else
#define CCPY_TIME_T_NAME "_PyTime_t"
#endif
static int timeout_to_ns(PyObject *obj, int64_t *out) {
    if (PyFloat_Check(obj)) {
        double d = PyFloat_AsDouble(obj);
        if (isnan(d)) {
            PyErr_SetString(PyExc_ValueError, "Invalid value NaN (not a number)");
            return -1;
        }
        volatile double x = d * 1e9;
        x = ceil(x);
        if (!((double)INT64_MIN <= x && x < -(double)INT64_MIN)) {
            PyErr_SetString(PyExc_OverflowError, "timestamp out of range for platform time_t");
            return -1;
        }
        *out = (int64_t)x;
        return 0;
    }
    long long sec = PyLong_AsLongLong(obj);
    if (sec == -1 && PyErr_Occurred()) {
        if (PyErr_ExceptionMatches(PyExc_OverflowError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_OverflowError,
                            "timestamp too large to convert to C " CCPY_TIME_T_NAME);
        }
        return -1;
    }
    if (sec > INT64_MAX / 1000000000 || sec < INT64_MIN / 1000000000) {
        PyErr_SetString(PyExc_OverflowError,
                        "timestamp too large to convert to C " CCPY_TIME_T_NAME);
        return -1;
    }
    *out = (int64_t)sec * 1000000000;
    return 0;
}

/* ---- lifetime and GC ----------------------------------------------------------- */

static PyObject *queue_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (ccpy_check_no_args(type, args, kwargs, "LockFreeQueue") < 0) return NULL;
    QueueObject *self = (QueueObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    atomic_init(&self->waiters, 0);
    atomic_init(&self->wake, 0);
    atomic_init(&self->sleepers, 0);
    atomic_init(&self->shut, OPEN);
    self->queue = cc_segqueue_new();
    if (self->queue == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static int queue_traverse(PyObject *op, visitproc visit, void *arg) {
    QueueObject *self = (QueueObject *)op;
    Py_VISIT(Py_TYPE(op));
    if (self->queue != NULL) {
        ccpy_visit_ctx ctx = {visit, arg, 0};
        cc_segqueue_foreach(self->queue, ccpy_visit_value, &ctx);
        if (ctx.result) return ctx.result;
    }
    return 0;
}

/* Pops and releases every item. Each DECREF may run arbitrary code (even a
 * put here), so it pops one at a time until empty. */
static int queue_clear(PyObject *op) {
    QueueObject *self = (QueueObject *)op;
    void *v;
    while (self->queue != NULL && cc_segqueue_pop(self->queue, &v)) Py_DECREF((PyObject *)v);
    return 0;
}

/* No getter can be waiting: a thread inside a method holds a reference. */
static void queue_dealloc(PyObject *op) {
    QueueObject *self = (QueueObject *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    Py_TRASHCAN_BEGIN(op, queue_dealloc)
    ccpy_clear_weakrefs(op, self->weakreflist);
    (void)queue_clear(op);
    cc_segqueue_destroy(self->queue);
    self->queue = NULL;
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

/* ---- the blocking slow path --------------------------------------------------- */

static inline size_t pop_into(QueueObject *self, void **out, size_t max) {
    return max == 1 ? (size_t)cc_segqueue_pop(self->queue, out)
                    : cc_segqueue_pop_many(self->queue, out, max);
}

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("isb" ::: "memory");
#else
    atomic_signal_fence(memory_order_seq_cst);
#endif
}

/* The spin's budget (the header says why): 10 us of pause + size checks,
 * then at most 2 sched_yield (each followed by more checks). */
#define SPIN_NS 10000
#define SPIN_YIELDS 2

/* The bounded spin before the futex path (see the header): up to SPIN_NS,
 * never past the deadline, the thread detached, it watches the queue's size
 * (a read, safe without the GIL and while a collector walks the queue) and
 * pops only once re-attached. Returns what it popped (0: nothing). */
static size_t spin_pop(QueueObject *self, void **out, size_t max, int64_t deadline_ns) {
    int64_t end = monotonic_ns() + SPIN_NS;
    if (deadline_ns >= 0 && deadline_ns < end) end = deadline_ns;
    int yields = SPIN_YIELDS;
    for (;;) {
        int seen = 0;
        Py_BEGIN_ALLOW_THREADS
        for (unsigned i = 1;; i++) {
            cpu_relax();
            if (cc_segqueue_size(self->queue) != 0 ||
                atomic_load_explicit(&self->shut, memory_order_relaxed) != OPEN) {
                seen = 1;
                break;
            }
            if ((i & 7) == 0 && monotonic_ns() >= end) {
                if (yields == 0) break;
                yields--;
                sched_yield();
            }
        }
        Py_END_ALLOW_THREADS
        if (!seen) return 0;
        size_t got = pop_into(self, out, max);
        if (got > 0 || is_shut(self) || monotonic_ns() >= end) return got;
    }
}

/* Waits for items: pops up to max into out and returns how many (>= 1), or
 * -1 with Empty (deadline passed; deadline_ns < 0 waits forever), ShutDown or
 * the exception of a signal handler set. The protocol is in the header. */
static Py_ssize_t queue_wait_pop(QueueObject *self, void **out, size_t max, int64_t deadline_ns) {
    size_t got = spin_pop(self, out, max, deadline_ns);
    if (got > 0) return (Py_ssize_t)got;
    /* A signal that arrived during the spin interrupts no futex wait: run the
     * handlers now (a flag test when none is pending). */
    if (PyErr_CheckSignals() < 0) return -1;
    int err = 0; /* 1 Empty, 2 ShutDown, 3 exception set */
    atomic_fetch_add_explicit(&self->waiters, 1, memory_order_seq_cst); /* G1 */
    full_fence(); /* G1: the registration before the loads of the pop (store-load) */
    for (;;) {
        unsigned key = atomic_load_explicit(&self->wake, memory_order_acquire); /* G2 */
        if ((got = pop_into(self, out, max)) > 0) break;                        /* G3 */
        if (is_shut(self)) {
            err = 2;
            break;
        }
        struct timespec ts, *deadline = NULL;
        if (deadline_ns >= 0) {
            if (monotonic_ns() >= deadline_ns) {
                err = 1;
                break;
            }
            ts.tv_sec = (time_t)(deadline_ns / 1000000000);
            ts.tv_nsec = (long)(deadline_ns % 1000000000);
            deadline = &ts;
        }
        int rc;
        cc_smr_idle(); /* about to sleep: reclamation need not wait for this thread */
        Py_BEGIN_ALLOW_THREADS
        atomic_fetch_add_explicit(&self->sleepers, 1, memory_order_seq_cst); /* G4 */
        full_fence(); /* G4: the count before the kernel's load of wake (store-load) */
        rc = futex_wait(&self->wake, key, deadline); /* G4 */
        atomic_fetch_sub_explicit(&self->sleepers, 1, memory_order_relaxed);
        Py_END_ALLOW_THREADS
        /* After every wakeup, not only EINTR: a signal whose C handler ran
         * while this thread was awake (after a put woke it, or while it took
         * the GIL back) interrupts no later wait, and the item that woke it
         * may go to another getter; checking only on EINTR would send the
         * thread back to sleep with the signal pending. */
        (void)rc;
        if (PyErr_CheckSignals() < 0) {
            err = 3;
            break;
        }
    }
    unsigned left = atomic_fetch_sub_explicit(&self->waiters, 1, memory_order_seq_cst) - 1;
    if (err == 0) return (Py_ssize_t)got;
    /* Leaving without an item: a wakeup meant for an item may have been ours. */
    if (left != 0 && cc_segqueue_size(self->queue) != 0) queue_wake(self, 1);
    if (err == 1) raise_empty((PyObject *)self);
    if (err == 2) raise_shutdown((PyObject *)self);
    return -1;
}

/* deadline from a timeout in ns (< 0: none), saturating. */
static int64_t deadline_after(int64_t timeout_ns) {
    if (timeout_ns < 0) return -1;
    int64_t now = monotonic_ns();
    return timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
}

/* Parses get's (block, timeout) pair. *timeout_ns: -1 forever, 0 no wait. */
static int parse_block_timeout(PyObject *block_obj, PyObject *timeout_obj, int64_t *timeout_ns) {
    int block = 1;
    *timeout_ns = -1;
    if (block_obj != NULL && (block = PyObject_IsTrue(block_obj)) < 0) return -1;
    if (!block) {
        *timeout_ns = 0;
        return 0;
    }
    if (timeout_obj != NULL && timeout_obj != Py_None) {
        if (timeout_to_ns(timeout_obj, timeout_ns) < 0) return -1;
        if (*timeout_ns < 0) {
            PyErr_SetString(PyExc_ValueError, "'timeout' must be a non-negative number");
            return -1;
        }
    }
    return 0;
}

/* An item popped after an immediate shutdown was put by a put racing with
 * it: release it and raise, as if the shutdown had discarded it. */
static PyObject *item_or_shutdown(QueueObject *self, PyObject *item) {
    if (atomic_load_explicit(&self->shut, memory_order_relaxed) != SHUT_IMMEDIATE) return item;
    Py_DECREF(item);
    return raise_shutdown((PyObject *)self);
}

/* A failed non-blocking pop: ShutDown once shut down and drained, else Empty. */
static PyObject *raise_empty_or_shutdown(QueueObject *self) {
    if (is_shut(self)) return raise_shutdown((PyObject *)self);
    return raise_empty((PyObject *)self);
}

/* ---- put ------------------------------------------------------------------------ */

static inline int queue_put_item(QueueObject *self, PyObject *item) {
    if (atomic_load_explicit(&self->shut, memory_order_relaxed) != OPEN) {
        raise_shutdown((PyObject *)self);
        return -1;
    }
    Py_INCREF(item);
    if (!cc_segqueue_push(self->queue, item)) { /* P1 */
        Py_DECREF(item);
        PyErr_NoMemory();
        return -1;
    }
    queue_notify(self, 1);
    return 0;
}

static const char *const put_names[] = {"item", "block", "timeout"};
static const char *const get_names[] = {"block", "timeout"};
static const char *const get_many_names[] = {"max_items", "block", "timeout"};
static const char *const shutdown_names[] = {"immediate"};

PyDoc_STRVAR(queue_put_doc,
             "put($self, /, item, block=True, timeout=None)\n--\n\n"
             "Put the item on the queue.\n\n"
             "The optional 'block' and 'timeout' arguments are ignored, as this\n"
             "method never blocks. They are provided for compatibility with the\n"
             "Queue class. Raises MemoryError, leaving the queue unchanged, when no\n"
             "room can be allocated, and ShutDown once the queue is shut down.");
static PyObject *queue_put(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames) {
    QueueObject *self = (QueueObject *)op;
    PyObject *item;
    if (nargs == 1 && kwnames == NULL) {
        item = args[0];
    } else {
        PyObject *a[3] = {NULL, NULL, NULL};
        if (ccpy_parse_args("put", args, nargs, kwnames, put_names, 3, 1, a) < 0) return NULL;
        if (a[1] != NULL && PyObject_IsTrue(a[1]) < 0) return NULL; /* as SimpleQueue */
        item = a[0];
    }
    if (queue_put_item(self, item) < 0) return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(queue_put_nowait_doc,
             "put_nowait($self, /, item)\n--\n\n"
             "Put an item into the queue without blocking.\n\n"
             "This is exactly equivalent to `put(item)` and is only provided\n"
             "for compatibility with the Queue class.");
static PyObject *queue_put_nowait(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                                  PyObject *kwnames) {
    QueueObject *self = (QueueObject *)op;
    PyObject *item = NULL;
    if (nargs == 1 && kwnames == NULL) {
        item = args[0];
    } else if (ccpy_parse_args("put_nowait", args, nargs, kwnames, put_names, 1, 1, &item) < 0) {
        return NULL;
    }
    if (queue_put_item(self, item) < 0) return NULL;
    Py_RETURN_NONE;
}

#define PUT_MANY_CHUNK 64
/* get_many: the list a waiting call starts with holds up to this many. */
#define GET_MANY_WAIT_ITEMS 64

/* Pushes buf[0..n) (owned references) in order and wakes getters. On failure
 * releases what was not pushed and returns -1 with the exception set. */
static int put_chunk(QueueObject *self, PyObject **buf, size_t n) {
    if (n == 0) return 0;
    size_t pushed = 0;
    if (atomic_load_explicit(&self->shut, memory_order_relaxed) == OPEN)
        pushed = cc_segqueue_push_many(self->queue, (void *const *)buf, n);
    else
        raise_shutdown((PyObject *)self);
    if (pushed > 0) queue_notify(self, pushed);
    if (pushed == n) return 0;
    for (size_t i = pushed; i < n; i++) Py_DECREF(buf[i]);
    if (!PyErr_Occurred()) PyErr_NoMemory();
    return -1;
}

PyDoc_STRVAR(queue_put_many_doc,
             "put_many($self, items, /)\n--\n\n"
             "Put every item of the iterable on the queue, in order.\n\n"
             "Equivalent to `for item in items: put(item)`, in fewer steps: items\n"
             "go in in batches (consecutive unless another thread puts at the\n"
             "same time). If iterating raises, or MemoryError or ShutDown is\n"
             "raised, the items before the failure are on the queue and the rest\n"
             "are not.");
static PyObject *queue_put_many(PyObject *op, PyObject *iterable) {
    QueueObject *self = (QueueObject *)op;
    if (atomic_load_explicit(&self->shut, memory_order_relaxed) != OPEN)
        return raise_shutdown(op);
    PyObject *it = PyObject_GetIter(iterable);
    if (it == NULL) return NULL;
    PyObject *buf[PUT_MANY_CHUNK];
    size_t n = 0;
    PyObject *item;
    /* The iterator may run arbitrary code, but never while a C pointer of
     * the queue is held: buf holds plain owned references. */
    while ((item = PyIter_Next(it)) != NULL) {
        buf[n++] = item;
        if (n == PUT_MANY_CHUNK) {
            int rc = put_chunk(self, buf, n);
            n = 0;
            if (rc < 0) break;
        }
    }
    Py_DECREF(it);
    if (PyErr_Occurred()) {
        /* Iteration failed: the items before the failure still go in. */
#if PY_VERSION_HEX >= 0x030C0000
        PyObject *exc = PyErr_GetRaisedException();
        (void)put_chunk(self, buf, n);
        PyErr_Clear();
        PyErr_SetRaisedException(exc);
#else
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        (void)put_chunk(self, buf, n);
        PyErr_Clear();
        PyErr_Restore(type, value, tb);
#endif
        return NULL;
    }
    if (put_chunk(self, buf, n) < 0) return NULL;
    Py_RETURN_NONE;
}

/* ---- get ------------------------------------------------------------------------ */

PyDoc_STRVAR(queue_get_doc,
             "get($self, /, block=True, timeout=None)\n--\n\n"
             "Remove and return an item from the queue.\n\n"
             "If optional args 'block' is true and 'timeout' is None (the\n"
             "default), block if necessary until an item is available. If\n"
             "'timeout' is a non-negative number, it blocks at most 'timeout'\n"
             "seconds and raises the Empty exception if no item was available\n"
             "within that time.\n"
             "Otherwise ('block' is false), return an item if one is immediately\n"
             "available, else raise the Empty exception ('timeout' is ignored\n"
             "in that case). Empty is concurrent_collections.Empty, a subclass of\n"
             "queue.Empty. Once the queue is shut down and drained (at once after\n"
             "shutdown(immediate=True)) it raises ShutDown, and blocked calls\n"
             "return. Waiting sleeps on a futex (no polling, without the GIL) and\n"
             "Ctrl-C interrupts it.");
static PyObject *queue_get(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames) {
    QueueObject *self = (QueueObject *)op;
    void *v;
    int64_t timeout_ns = -1;
    if (nargs != 0 || kwnames != NULL) {
        PyObject *a[2] = {NULL, NULL};
        if (ccpy_parse_args("get", args, nargs, kwnames, get_names, 2, 0, a) < 0) return NULL;
        if (parse_block_timeout(a[0], a[1], &timeout_ns) < 0) return NULL;
    }
    if (cc_segqueue_pop(self->queue, &v)) return item_or_shutdown(self, (PyObject *)v);
    if (timeout_ns == 0) return raise_empty_or_shutdown(self);
    if (queue_wait_pop(self, &v, 1, deadline_after(timeout_ns)) < 0) return NULL;
    return item_or_shutdown(self, (PyObject *)v);
}

PyDoc_STRVAR(queue_get_nowait_doc,
             "get_nowait($self, /)\n--\n\n"
             "Remove and return an item from the queue without blocking.\n\n"
             "Only get an item if one is immediately available. Otherwise\n"
             "raise the Empty exception (ShutDown once shut down and drained).");
static PyObject *queue_get_nowait(PyObject *op, PyObject *const *Py_UNUSED(args),
                                  Py_ssize_t nargs, PyObject *kwnames) {
    QueueObject *self = (QueueObject *)op;
    void *v;
    if (nargs != 0 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0)) {
        /* 3.13's SimpleQueue message; 3.11/3.12's silently ignore keywords. */
        PyErr_SetString(PyExc_TypeError, "get_nowait() takes no arguments");
        return NULL;
    }
    if (cc_segqueue_pop(self->queue, &v)) return item_or_shutdown(self, (PyObject *)v);
    return raise_empty_or_shutdown(self);
}

PyDoc_STRVAR(queue_try_get_doc, "try_get($self, /, default=None)\n--\n\n"
                                "Remove and return an item from the queue if one is immediately\n"
                                "available, else return default (never raises Empty; raises\n"
                                "ShutDown once the queue is shut down and drained).");
static PyObject *queue_try_get(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
    QueueObject *self = (QueueObject *)op;
    PyObject *dflt = NULL;
    if ((nargs != 0 || kwnames != NULL) &&
        ccpy_parse_args("try_get", args, nargs, kwnames, ccpy_default_names, 1, 0, &dflt) < 0)
        return NULL;
    void *v;
    if (cc_segqueue_pop(self->queue, &v)) return item_or_shutdown(self, (PyObject *)v);
    if (is_shut(self)) return raise_shutdown(op);
    return Py_NewRef(dflt ? dflt : Py_None);
}

PyDoc_STRVAR(queue_get_many_doc,
             "get_many($self, /, max_items, block=True, timeout=None)\n--\n\n"
             "Remove and return a list of 1 to max_items items, in FIFO order.\n\n"
             "Waits as get() does until at least one item is available, then takes\n"
             "what is there, up to max_items, without waiting for more. Raises\n"
             "Empty (or ShutDown) exactly where get() would, and ValueError if\n"
             "max_items < 1.");
static PyObject *queue_get_many(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
    QueueObject *self = (QueueObject *)op;
    PyObject *a[3] = {NULL, NULL, NULL};
    int64_t timeout_ns;
    if (ccpy_parse_args("get_many", args, nargs, kwnames, get_many_names, 3, 1, a) < 0)
        return NULL;
    if (!PyIndex_Check(a[0])) {
        PyErr_Format(PyExc_TypeError, "max_items must be an int, not %.200s",
                     Py_TYPE(a[0])->tp_name);
        return NULL;
    }
    Py_ssize_t max_items = PyNumber_AsSsize_t(a[0], NULL); /* clamps on overflow */
    if (max_items == -1 && PyErr_Occurred()) return NULL;
    if (max_items < 1) {
        PyErr_SetString(PyExc_ValueError, "max_items must be at least 1");
        return NULL;
    }
    if (parse_block_timeout(a[1], a[2], &timeout_ns) < 0) return NULL;
    if (atomic_load_explicit(&self->shut, memory_order_relaxed) == SHUT_IMMEDIATE)
        return raise_shutdown(op);

    /* The list exists before anything is popped: popped items go straight
     * into it, so none is ever held without an owner. Its length is what the
     * queue holds now (at least 1, at most max_items); the pops fill a prefix. */
    size_t size = cc_segqueue_size(self->queue);
    Py_ssize_t cap = size == 0 ? 1 : size > (size_t)max_items ? max_items : (Py_ssize_t)size;
    PyObject *list = PyList_New(cap);
    if (list == NULL) return NULL;
    void **out = (void **)((PyListObject *)list)->ob_item;
    Py_ssize_t got = (Py_ssize_t)pop_into(self, out, (size_t)cap);
    if (got == 0) {
        if (timeout_ns == 0) {
            Py_DECREF(list);
            return raise_empty_or_shutdown(self);
        }
        /* About to wait: the list was sized for an empty queue. Size it for a
         * batch, so that a put_many that wakes this call is taken at once. */
        Py_ssize_t wait_cap = max_items < GET_MANY_WAIT_ITEMS ? max_items : GET_MANY_WAIT_ITEMS;
        if (wait_cap > cap) {
            Py_DECREF(list); /* nothing popped into it yet */
            if ((list = PyList_New(wait_cap)) == NULL) return NULL;
            out = (void **)((PyListObject *)list)->ob_item;
            cap = wait_cap;
        }
        got = queue_wait_pop(self, out, (size_t)cap, deadline_after(timeout_ns));
        if (got < 0) {
            Py_DECREF(list);
            return NULL;
        }
        /* A full batch after a wait: more may have come meanwhile. Move the
         * items into a longer list (a failed allocation just returns these). */
        size_t more = got == cap && cap < max_items ? cc_segqueue_size(self->queue) : 0;
        if (more > 0) {
            Py_ssize_t extra = more > (size_t)(max_items - cap) ? max_items - cap : (Py_ssize_t)more;
            PyObject *longer = PyList_New(cap + extra);
            if (longer != NULL) {
                void **dst = (void **)((PyListObject *)longer)->ob_item;
                memcpy(dst, out, (size_t)got * sizeof *dst);
                Py_SET_SIZE(list, 0); /* its items moved: none is released twice */
                Py_DECREF(list);
                list = longer;
                got += (Py_ssize_t)pop_into(self, dst + got, (size_t)extra);
            } else {
                PyErr_Clear();
            }
        }
    }
    Py_SET_SIZE(list, got); /* the slots past it stay NULL */
    if (atomic_load_explicit(&self->shut, memory_order_relaxed) == SHUT_IMMEDIATE) {
        Py_DECREF(list); /* items of a put racing with shutdown(immediate=True) */
        return raise_shutdown(op);
    }
    return list;
}

/* ---- shutdown, size ------------------------------------------------------------ */

PyDoc_STRVAR(queue_shutdown_doc,
             "shutdown($self, /, immediate=False)\n--\n\n"
             "Shut down the queue, as queue.Queue.shutdown does (Python 3.13+).\n\n"
             "Afterwards put() and put_many() raise ShutDown, and gets raise ShutDown\n"
             "once the queue is empty; every blocked get returns. With\n"
             "immediate=True the items left are discarded (their references\n"
             "released) and every get raises ShutDown at once. ShutDown is\n"
             "queue.ShutDown where the standard library has it.");
static PyObject *queue_shutdown(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                                PyObject *kwnames) {
    QueueObject *self = (QueueObject *)op;
    PyObject *imm_obj = NULL;
    if ((nargs != 0 || kwnames != NULL) &&
        ccpy_parse_args("shutdown", args, nargs, kwnames, shutdown_names, 1, 0, &imm_obj) < 0)
        return NULL;
    int immediate = imm_obj == NULL ? 0 : PyObject_IsTrue(imm_obj);
    if (immediate < 0) return NULL;
    if (immediate) {
        atomic_store_explicit(&self->shut, SHUT_IMMEDIATE, memory_order_seq_cst);
    } else {
        int open = OPEN; /* never downgrade an immediate shutdown */
        atomic_compare_exchange_strong_explicit(&self->shut, &open, SHUT, memory_order_seq_cst,
                                                memory_order_relaxed);
    }
    /* After the flag: a getter that read `wake` before this bump either sees
     * the flag after its failed pop or has its wait end here. */
    atomic_fetch_add_explicit(&self->wake, 1, memory_order_seq_cst);
    futex_wake(&self->wake, INT_MAX); /* all, sleepers or not: shutdown is rare */
    if (immediate) (void)queue_clear(op);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(queue_empty_doc, "empty($self, /)\n--\n\n"
                              "Return True if the queue is empty, False otherwise (not reliable!).\n\n"
                              "Exact while no other thread changes the queue.");
static PyObject *queue_empty(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    QueueObject *self = (QueueObject *)op;
    return PyBool_FromLong(cc_segqueue_size(self->queue) == 0);
}

PyDoc_STRVAR(queue_qsize_doc, "qsize($self, /)\n--\n\n"
                              "Return the approximate size of the queue (not reliable!).\n\n"
                              "Exact while no other thread changes the queue.");
static PyObject *queue_qsize(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    QueueObject *self = (QueueObject *)op;
    size_t n = cc_segqueue_size(self->queue);
    return PyLong_FromSsize_t(n > (size_t)PY_SSIZE_T_MAX ? PY_SSIZE_T_MAX : (Py_ssize_t)n);
}

static PyObject *queue_is_shutdown(PyObject *op, void *Py_UNUSED(closure)) {
    return PyBool_FromLong(is_shut((QueueObject *)op) != OPEN);
}

static PyGetSetDef queue_getset[] = {
    {"is_shutdown", queue_is_shutdown, NULL,
     "True once shutdown() has been called (as queue.Queue.is_shutdown).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef queue_methods[] = {
    {"put", CCPY_FASTKW(queue_put), METH_FASTCALL | METH_KEYWORDS, queue_put_doc},
    {"put_nowait", CCPY_FASTKW(queue_put_nowait), METH_FASTCALL | METH_KEYWORDS,
     queue_put_nowait_doc},
    {"put_many", queue_put_many, METH_O, queue_put_many_doc},
    {"get", CCPY_FASTKW(queue_get), METH_FASTCALL | METH_KEYWORDS, queue_get_doc},
    {"get_nowait", CCPY_FASTKW(queue_get_nowait), METH_FASTCALL | METH_KEYWORDS,
     queue_get_nowait_doc},
    {"try_get", CCPY_FASTKW(queue_try_get), METH_FASTCALL | METH_KEYWORDS, queue_try_get_doc},
    {"get_many", CCPY_FASTKW(queue_get_many), METH_FASTCALL | METH_KEYWORDS, queue_get_many_doc},
    {"shutdown", CCPY_FASTKW(queue_shutdown), METH_FASTCALL | METH_KEYWORDS, queue_shutdown_doc},
    {"empty", queue_empty, METH_NOARGS, queue_empty_doc},
    {"qsize", queue_qsize, METH_NOARGS, queue_qsize_doc},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     "LockFreeQueue is generic over the type of its items."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef queue_members[] = {
    {"__weaklistoffset__", CCPY_T_SSIZE, offsetof(QueueObject, weakreflist), CCPY_READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

PyDoc_STRVAR(queue_doc,
             "LockFreeQueue()\n--\n\n"
             "Simple, unbounded, reentrant FIFO queue: a lock-free MPMC queue of\n"
             "fixed-size segments that can replace queue.SimpleQueue unchanged.\n\n"
             "It has SimpleQueue's methods, signatures and edge cases, plus\n"
             "try_get(), put_many(), get_many() and shutdown() (as queue.Queue's).\n"
             "Empty gets raise concurrent_collections.Empty, a subclass of\n"
             "queue.Empty. put() and non-blocking gets take no lock: on free-threaded\n"
             "CPython they run in parallel. A blocking get() that finds the queue\n"
             "empty sleeps on a futex (no polling, without the GIL) until a put wakes\n"
             "it, and Ctrl-C interrupts it. Items put by one thread are got in the\n"
             "order it put them. Like SimpleQueue it has no len() and is always\n"
             "true: emptiness changes under other threads, so ask qsize() or\n"
             "empty() explicitly. Items are kept as strong references; the queue\n"
             "takes part in garbage collection.");

static PyType_Slot queue_slots[] = {
    {Py_tp_new, queue_new},           {Py_tp_dealloc, queue_dealloc},
    {Py_tp_traverse, queue_traverse}, {Py_tp_clear, queue_clear},
    {Py_tp_methods, queue_methods},   {Py_tp_members, queue_members},
    {Py_tp_getset, queue_getset},     {Py_tp_doc, (void *)queue_doc},
    {0, NULL},
};
PyType_Spec ccpy_queue_spec = {
    .name = "concurrent_collections.LockFreeQueue",
    .basicsize = sizeof(QueueObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = queue_slots,
};
