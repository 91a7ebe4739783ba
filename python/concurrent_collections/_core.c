/*
 * concurrent_collections._core -- the CPython binding of concurrent-collections.
 *
 * Layer: the top one. It includes <cc/stack.h> and <cc/queue.h> (and through
 * them <cc/smr.h>, <cc/alloc.h>, <cc/config.h>) and is built from the same C
 * sources as the library, so the nodes of LockFreeStack / LockFreeQueue come
 * from cc_alloc_node and are retired through SMR: config.alloc_stats() and
 * config.smr_stats() show them.
 *
 * Design:
 *  - Multi-phase init, module state, heap types (PyType_FromModuleAndSpec).
 *    The module declares Py_mod_gil = Py_MOD_GIL_NOT_USED (3.13+): importing
 *    it on a free-threaded build leaves the GIL off.
 *  - Containers store strong references (void * = PyObject *). push/put take a
 *    new reference; pop/get hand the stored reference to the caller. No lock
 *    is taken around push/pop: the C structures are lock-free.
 *  - GC: tp_traverse walks the nodes with cc_*_foreach, which is not safe
 *    against concurrent changes. It is only called while no other thread can
 *    change the container: on GIL builds every push/pop runs with the GIL held
 *    (the only code that runs without it, the wait in LockFreeQueue.get, does
 *    not touch the queue), and on free-threaded builds the collector (and
 *    gc.get_referents) stops the world, and no thread stops inside a push or
 *    pop (they contain no safe point).
 *  - Blocking LockFreeQueue.get: a waiter count, an event counter (wake_seq)
 *    and a pthread mutex + condvar, used only on the slow path. A getter
 *    registers (waiters++), then in a loop reads wake_seq, tries to pop, and
 *    if that fails waits on the condvar until wake_seq changes. put pushes,
 *    issues a seq_cst fence, and only if waiters > 0 bumps wake_seq and
 *    signals under the mutex. No lost wakeup: either put sees the getter's
 *    registration (and then the bump is after the getter's read of wake_seq,
 *    so its wait ends, or before it, and then the push is visible to its pop),
 *    or it does not, and then by the two seq_cst fences the getter's pop sees
 *    the push. The mutex is never held while Python code can run.
 *  - Per-thread state: this file adds no thread-local storage (the glue's
 *    small initial-exec TLS struct is the only one; see design.md).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h> /* T_ULONGLONG, READONLY on 3.11 */

#include <cc/queue.h>
#include <cc/stack.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#if PY_VERSION_HEX < 0x030B0000
#error "concurrent_collections needs CPython 3.11 or newer"
#endif

#if PY_VERSION_HEX >= 0x030C0000
#define CCPY_T_U64 Py_T_ULONGLONG
#define CCPY_T_SSIZE Py_T_PYSSIZET
#define CCPY_READONLY Py_READONLY
#else
#define CCPY_T_U64 T_ULONGLONG
#define CCPY_T_SSIZE T_PYSSIZET
#define CCPY_READONLY READONLY
#endif

#define CCPY_FASTKW(fn) ((PyCFunction)(void (*)(void))(fn))

/* ---- module state --------------------------------------------------------- */

typedef struct {
    PyTypeObject *stack_type;
    PyTypeObject *queue_type;
    PyTypeObject *config_type;
    PyTypeObject *alloc_stats_type;
    PyTypeObject *smr_stats_type;
    PyObject *empty_error; /* concurrent_collections.Empty (IndexError) */
    PyObject *queue_empty; /* queue.Empty, raised by LockFreeQueue */
    PyObject *config;      /* the config singleton */
    unsigned long main_thread; /* ident of threading.main_thread() at import */
} module_state;

static struct PyModuleDef core_module;

static inline module_state *state_of_module(PyObject *module) {
    return (module_state *)PyModule_GetState(module);
}

/* State from an instance of one of our types (or of a Python subclass). */
static module_state *state_of(PyObject *self) {
    PyObject *module = PyType_GetModuleByDef(Py_TYPE(self), &core_module);
    return module ? state_of_module(module) : NULL;
}

/* ---- argument parsing (messages match Argument Clinic's) ------------------ */

/* Fills out[0..nparams) from a vectorcall (args, nargs, kwnames); parameters
 * not given stay as they were (defaults). The first `required` are required. */
static int parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                      PyObject *kwnames, const char *const *names, int nparams, int required,
                      PyObject **out) {
    if (nargs > nparams) {
        if (nparams == 0)
            PyErr_Format(PyExc_TypeError, "%s() takes no arguments (%zd given)", fname, nargs);
        else
            PyErr_Format(PyExc_TypeError, "%s() takes at most %d argument%s (%zd given)", fname,
                         nparams, nparams == 1 ? "" : "s", nargs);
        return -1;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) out[i] = args[i];
    int given = (int)nargs;
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t k = 0; k < nkw; k++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, k);
            int found = -1;
            for (int i = 0; i < nparams; i++) {
                if (PyUnicode_Check(key) && PyUnicode_CompareWithASCIIString(key, names[i]) == 0) {
                    found = i;
                    break;
                }
            }
            if (found < 0) {
#if PY_VERSION_HEX >= 0x030D0000
                PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'",
                             fname, key);
#else
                PyErr_Format(PyExc_TypeError, "'%S' is an invalid keyword argument for %s()", key,
                             fname);
#endif
                return -1;
            }
            if (found < nargs) {
                PyErr_Format(PyExc_TypeError,
                             "argument for %s() given by name ('%s') and position (%d)", fname,
                             names[found], found + 1);
                return -1;
            }
            out[found] = args[nargs + k];
            given++;
        }
    }
    for (int i = 0; i < required; i++) {
        if (i >= nargs && out[i] == NULL) {
            PyErr_Format(PyExc_TypeError, "%s() missing required argument '%s' (pos %d)", fname,
                         names[i], i + 1);
            return -1;
        }
    }
    (void)given;
    return 0;
}

/* tp_new helper: instances take no arguments, unless a subclass defines its
 * own __init__ (what SimpleQueue and most builtins do). */
static int check_no_args(PyTypeObject *type, PyObject *args, PyObject *kwargs, const char *name) {
    if (type->tp_init != PyBaseObject_Type.tp_init) return 0;
    if (args != NULL && PyTuple_GET_SIZE(args) != 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes no positional arguments", name);
        return -1;
    }
    if (kwargs != NULL && PyDict_GET_SIZE(kwargs) != 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes no keyword arguments", name);
        return -1;
    }
    return 0;
}

/* Weak references at dealloc. The free-threaded build clears them
 * unconditionally, as CPython's own types do there (FT_CLEAR_WEAKREFS): the
 * list head is not read without the weakref lock. */
static inline void clear_weakrefs(PyObject *op, PyObject *weakreflist) {
#ifdef Py_GIL_DISABLED
    (void)weakreflist;
    PyObject_ClearWeakRefs(op);
#else
    if (weakreflist != NULL) PyObject_ClearWeakRefs(op);
#endif
}

/* ---- GC helpers --------------------------------------------------------------- */

typedef struct {
    visitproc visit;
    void *arg;
    int result;
} visit_ctx;

static void visit_value(void *value, void *arg) {
    visit_ctx *ctx = (visit_ctx *)arg;
    if (ctx->result == 0 && value != NULL) ctx->result = ctx->visit((PyObject *)value, ctx->arg);
}

/* ---- snapshots (AllocStats, SMRStats) -------------------------------------- */

#define SNAP_MAX 10
typedef struct {
    PyObject_HEAD
    const char *const *names;
    int n;
    uint64_t v[SNAP_MAX];
} SnapObject;

static const char *const alloc_names[] = {"alloc_count",       "free_count",
                                          "alloc_bytes",       "free_bytes",
                                          "current_allocated", "current_blocks"};
static const char *const smr_names[] = {"retired",      "freed",      "pending",     "epoch",
                                        "threads",      "orphaned",   "stalled_threads",
                                        "peak_pending", "asymmetric", "membarriers"};
#define N_ALLOC ((int)(sizeof alloc_names / sizeof alloc_names[0]))
#define N_SMR ((int)(sizeof smr_names / sizeof smr_names[0]))

static PyObject *snap_new(PyTypeObject *type, const char *const *names, int n, const uint64_t *v) {
    SnapObject *self = PyObject_New(SnapObject, type);
    if (self == NULL) return NULL;
    self->names = names;
    self->n = n;
    memset(self->v, 0, sizeof self->v);
    memcpy(self->v, v, (size_t)n * sizeof(uint64_t));
    return (PyObject *)self;
}

static void snap_dealloc(PyObject *op) {
    PyTypeObject *tp = Py_TYPE(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static PyObject *snap_repr(PyObject *op) {
    SnapObject *self = (SnapObject *)op;
    const char *tname = Py_TYPE(op)->tp_name;
    const char *dot = strrchr(tname, '.');
    char buf[1024];
    size_t len = (size_t)snprintf(buf, sizeof buf, "%s(", dot ? dot + 1 : tname);
    for (int i = 0; i < self->n && len < sizeof buf; i++)
        len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s=%llu", i ? ", " : "",
                                self->names[i], (unsigned long long)self->v[i]);
    if (len < sizeof buf) snprintf(buf + len, sizeof buf - len, ")");
    return PyUnicode_FromString(buf);
}

PyDoc_STRVAR(snap_asdict_doc, "_asdict($self, /)\n--\n\n"
                              "Return the snapshot as a new dict {field name: int}, in field order.");
static PyObject *snap_asdict(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    SnapObject *self = (SnapObject *)op;
    PyObject *d = PyDict_New();
    if (d == NULL) return NULL;
    for (int i = 0; i < self->n; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(self->v[i]);
        if (v == NULL || PyDict_SetItemString(d, self->names[i], v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(v);
    }
    return d;
}

static PyObject *snap_richcompare(PyObject *a, PyObject *b, int op) {
    if ((op != Py_EQ && op != Py_NE) || Py_TYPE(a) != Py_TYPE(b)) Py_RETURN_NOTIMPLEMENTED;
    SnapObject *x = (SnapObject *)a, *y = (SnapObject *)b;
    int eq = x->n == y->n && memcmp(x->v, y->v, (size_t)x->n * sizeof(uint64_t)) == 0;
    return PyBool_FromLong(op == Py_EQ ? eq : !eq);
}

static Py_hash_t snap_hash(PyObject *op) {
    SnapObject *self = (SnapObject *)op;
    Py_uhash_t h = 0x345678UL;
    for (int i = 0; i < self->n; i++) h = (h ^ (Py_uhash_t)self->v[i]) * 1000003UL;
    Py_hash_t r = (Py_hash_t)h;
    return r == -1 ? -2 : r;
}

static PyMethodDef snap_methods[] = {
    {"_asdict", snap_asdict, METH_NOARGS, snap_asdict_doc},
    {NULL, NULL, 0, NULL},
};

#define SNAP_MEMBER(i, name, doc) {name, CCPY_T_U64, offsetof(SnapObject, v) + (i) * sizeof(uint64_t), CCPY_READONLY, doc}

static PyMemberDef alloc_stats_members[] = {
    SNAP_MEMBER(0, "alloc_count", "Blocks allocated while statistics were on, since the last reset."),
    SNAP_MEMBER(1, "free_count", "Blocks freed while statistics were on, since the last reset (may exceed alloc_count)."),
    SNAP_MEMBER(2, "alloc_bytes", "Bytes allocated in the same window: the usable size of each block."),
    SNAP_MEMBER(3, "free_bytes", "Bytes freed in the same window: the usable size of each block."),
    SNAP_MEMBER(4, "current_allocated", "Bytes of every live block, whenever allocated (a reset leaves it)."),
    SNAP_MEMBER(5, "current_blocks", "Every live block, whenever allocated (a reset leaves it)."),
    {NULL, 0, 0, 0, NULL},
};

static PyMemberDef smr_stats_members[] = {
    SNAP_MEMBER(0, "retired", "Nodes ever retired to safe memory reclamation."),
    SNAP_MEMBER(1, "freed", "Retired nodes ever freed."),
    SNAP_MEMBER(2, "pending", "Retired nodes not freed yet (retired - freed)."),
    SNAP_MEMBER(3, "epoch", "The current global epoch."),
    SNAP_MEMBER(4, "threads", "Threads registered with SMR (live)."),
    SNAP_MEMBER(5, "orphaned", "Pending nodes handed over by exited threads."),
    SNAP_MEMBER(6, "stalled_threads", "Threads in a critical section whose epoch is behind the global one."),
    SNAP_MEMBER(7, "peak_pending", "Highest 'pending' sampled."),
    SNAP_MEMBER(8, "asymmetric", "1 if critical sections enter without a fence (membarrier mode)."),
    SNAP_MEMBER(9, "membarriers", "membarrier(2) calls made by the asymmetric mode."),
    {NULL, 0, 0, 0, NULL},
};

PyDoc_STRVAR(alloc_stats_doc,
             "AllocStats: an immutable snapshot of the allocation statistics.\n\n"
             "Returned by config.alloc_stats(). Read-only int attributes alloc_count,\n"
             "free_count, alloc_bytes, free_bytes, current_allocated and current_blocks;\n"
             "_asdict() returns them as a dict. Bytes are usable sizes of the blocks.\n"
             "current_* count every live block; the other four count the calls made\n"
             "while statistics were on since the last reset.\n"
             "Exact once the threads that allocated have been joined.");
PyDoc_STRVAR(smr_stats_doc,
             "SMRStats: an immutable snapshot of safe-memory-reclamation statistics.\n\n"
             "Returned by config.smr_stats(). Read-only int attributes retired, freed,\n"
             "pending, epoch, threads, orphaned, stalled_threads, peak_pending,\n"
             "asymmetric and membarriers;\n"
             "_asdict() returns them as a dict.");

static PyType_Slot alloc_stats_slots[] = {
    {Py_tp_dealloc, snap_dealloc},   {Py_tp_repr, snap_repr},
    {Py_tp_richcompare, snap_richcompare}, {Py_tp_hash, snap_hash},
    {Py_tp_methods, snap_methods},   {Py_tp_members, alloc_stats_members},
    {Py_tp_doc, (void *)alloc_stats_doc}, {0, NULL},
};
static PyType_Slot smr_stats_slots[] = {
    {Py_tp_dealloc, snap_dealloc},   {Py_tp_repr, snap_repr},
    {Py_tp_richcompare, snap_richcompare}, {Py_tp_hash, snap_hash},
    {Py_tp_methods, snap_methods},   {Py_tp_members, smr_stats_members},
    {Py_tp_doc, (void *)smr_stats_doc}, {0, NULL},
};
static PyType_Spec alloc_stats_spec = {
    .name = "concurrent_collections.AllocStats",
    .basicsize = sizeof(SnapObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = alloc_stats_slots,
};
static PyType_Spec smr_stats_spec = {
    .name = "concurrent_collections.SMRStats",
    .basicsize = sizeof(SnapObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = smr_stats_slots,
};

/* ---- Config ------------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
} ConfigObject;

static int config_traverse(PyObject *self, visitproc visit, void *arg) {
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static void config_dealloc(PyObject *self) {
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *config_repr(PyObject *Py_UNUSED(self)) {
    return PyUnicode_FromFormat("<concurrent_collections.config allocator=%s "
                                "enable_alloc_statistics=%s>",
                                cc_alloc_backend(), cc_alloc_stats_enabled() ? "True" : "False");
}

static PyObject *config_get_stats(PyObject *Py_UNUSED(self), void *Py_UNUSED(closure)) {
    return PyBool_FromLong(cc_alloc_stats_enabled());
}

static int config_set_stats(PyObject *Py_UNUSED(self), PyObject *value, void *Py_UNUSED(closure)) {
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "cannot delete enable_alloc_statistics");
        return -1;
    }
    if (!PyBool_Check(value)) {
        PyErr_Format(PyExc_TypeError, "enable_alloc_statistics must be True or False, not %.200s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    cc_alloc_stats_enable(value == Py_True);
    return 0;
}

static PyObject *config_get_allocator(PyObject *Py_UNUSED(self), void *Py_UNUSED(closure)) {
    return PyUnicode_FromString(cc_alloc_backend());
}

static PyObject *config_get_threshold(PyObject *Py_UNUSED(self), void *Py_UNUSED(closure)) {
    return PyLong_FromSize_t(cc_config_retire_threshold());
}

static int config_set_threshold(PyObject *Py_UNUSED(self), PyObject *value, void *Py_UNUSED(closure)) {
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "cannot delete retire_threshold");
        return -1;
    }
    if (!PyLong_Check(value) || PyBool_Check(value)) {
        PyErr_Format(PyExc_TypeError, "retire_threshold must be an int, not %.200s",
                     Py_TYPE(value)->tp_name);
        return -1;
    }
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (overflow || v < 1 || (unsigned long long)v > CC_RETIRE_THRESHOLD_MAX ||
        cc_config_set_retire_threshold((size_t)v) != 0) {
        PyErr_Format(PyExc_ValueError, "retire_threshold must be in [1, %u]",
                     (unsigned)CC_RETIRE_THRESHOLD_MAX);
        return -1;
    }
    return 0;
}

static PyGetSetDef config_getset[] = {
    {"enable_alloc_statistics", config_get_stats, config_set_stats,
     "Whether allocation statistics are counted (bool).\n\n"
     "Only True or False may be assigned; anything else raises TypeError and\n"
     "changes nothing. Starts False unless CONCURRENT_COLLECTIONS_ENABLE_STATS=1.",
     NULL},
    {"allocator", config_get_allocator, NULL,
     "The allocator backend in use: 'mimalloc', 'system' or 'debug' (read-only).\n\n"
     "Chosen by CONCURRENT_COLLECTIONS_ALLOCATOR before the first allocation.",
     NULL},
    {"retire_threshold", config_get_threshold, config_set_threshold,
     "SMR retire threshold (int in [1, 2**20]): a thread scans for reclaimable\n"
     "nodes once it holds this many retired nodes. Bad values raise ValueError.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyDoc_STRVAR(config_alloc_stats_doc,
             "alloc_stats($self, /)\n--\n\n"
             "Return an AllocStats snapshot of the allocation statistics.\n\n"
             "current_allocated and current_blocks cover every live block; the\n"
             "alloc_*/free_* counts cover the calls made while statistics were on,\n"
             "since the last reset_alloc_stats(). Exact once threads are joined.");
static PyObject *config_alloc_stats(PyObject *self, PyObject *Py_UNUSED(ignored)) {
    module_state *st = state_of(self);
    if (st == NULL) return NULL;
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    uint64_t v[N_ALLOC] = {s.alloc_count, s.free_count,        s.alloc_bytes,
                           s.free_bytes,  s.current_allocated, s.current_blocks};
    return snap_new(st->alloc_stats_type, alloc_names, N_ALLOC, v);
}

PyDoc_STRVAR(config_reset_doc, "reset_alloc_stats($self, /)\n--\n\n"
                               "Reset the allocation statistics to zero.\n\n"
                               "Frees of blocks allocated before the reset are not counted.");
static PyObject *config_reset(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(ignored)) {
    cc_alloc_stats_reset();
    Py_RETURN_NONE;
}

PyDoc_STRVAR(config_smr_barrier_doc,
             "smr_barrier($self, /)\n--\n\n"
             "Wait until every node retired so far (by any thread) has been freed.\n\n"
             "Releases the GIL (on builds that have one) while it waits. Raises OSError\n"
             "if the library reports an error.");
static PyObject *config_smr_barrier(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(ignored)) {
    int rc, err;
    Py_BEGIN_ALLOW_THREADS
    errno = 0;
    rc = cc_smr_barrier();
    err = errno;
    Py_END_ALLOW_THREADS
    if (rc != 0) {
        errno = err ? err : EIO;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(config_smr_stats_doc,
             "smr_stats($self, /)\n--\n\n"
             "Return an SMRStats snapshot of the safe-memory-reclamation statistics.");
static PyObject *config_smr_stats(PyObject *self, PyObject *Py_UNUSED(ignored)) {
    module_state *st = state_of(self);
    if (st == NULL) return NULL;
    cc_smr_snapshot_t s = cc_smr_stats();
    uint64_t v[N_SMR] = {s.retired,      s.freed,      s.pending,    s.epoch,
                         s.threads,      s.orphaned,   s.stalled_threads,
                         s.peak_pending, s.asymmetric, s.membarriers};
    return snap_new(st->smr_stats_type, smr_names, N_SMR, v);
}

static PyMethodDef config_methods[] = {
    {"alloc_stats", config_alloc_stats, METH_NOARGS, config_alloc_stats_doc},
    {"reset_alloc_stats", config_reset, METH_NOARGS, config_reset_doc},
    {"smr_barrier", config_smr_barrier, METH_NOARGS, config_smr_barrier_doc},
    {"smr_stats", config_smr_stats, METH_NOARGS, config_smr_stats_doc},
    {NULL, NULL, 0, NULL},
};

PyDoc_STRVAR(config_doc,
             "Config: the type of concurrent_collections.config, the runtime configuration.\n\n"
             "There is one instance, concurrent_collections.config; it cannot be created\n"
             "from Python. Its settings are process-wide.");

static PyType_Slot config_slots[] = {
    {Py_tp_dealloc, config_dealloc}, {Py_tp_traverse, config_traverse},
    {Py_tp_repr, config_repr},       {Py_tp_getset, config_getset},
    {Py_tp_methods, config_methods}, {Py_tp_doc, (void *)config_doc},
    {0, NULL},
};
static PyType_Spec config_spec = {
    .name = "concurrent_collections.Config",
    .basicsize = sizeof(ConfigObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = config_slots,
};

/* ---- LockFreeStack ------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    cc_stack_t *stack;
    PyObject *weakreflist;
} StackObject;

static PyObject *stack_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (check_no_args(type, args, kwargs, "LockFreeStack") < 0) return NULL;
    StackObject *self = (StackObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    self->stack = cc_stack_new();
    if (self->stack == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    return (PyObject *)self;
}

static int stack_traverse(PyObject *op, visitproc visit, void *arg) {
    StackObject *self = (StackObject *)op;
    Py_VISIT(Py_TYPE(op));
    if (self->stack != NULL) {
        visit_ctx ctx = {visit, arg, 0};
        cc_stack_foreach(self->stack, visit_value, &ctx);
        if (ctx.result) return ctx.result;
    }
    return 0;
}

static int stack_clear(PyObject *op) {
    StackObject *self = (StackObject *)op;
    void *v;
    /* Each DECREF may run arbitrary code (even a push here): pop until empty. */
    while (self->stack != NULL && cc_stack_pop(self->stack, &v)) Py_DECREF((PyObject *)v);
    return 0;
}

static void stack_dealloc(PyObject *op) {
    StackObject *self = (StackObject *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    Py_TRASHCAN_BEGIN(op, stack_dealloc)
    clear_weakrefs(op, self->weakreflist);
    (void)stack_clear(op);
    cc_stack_destroy(self->stack);
    self->stack = NULL;
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

PyDoc_STRVAR(stack_push_doc, "push($self, item, /)\n--\n\n"
                             "Push item on top of the stack (keeps a strong reference).\n\n"
                             "Raises MemoryError, leaving the stack unchanged, when no node can be\n"
                             "allocated.");
static PyObject *stack_push(PyObject *op, PyObject *item) {
    StackObject *self = (StackObject *)op;
    Py_INCREF(item);
    if (!cc_stack_push(self->stack, item)) {
        Py_DECREF(item);
        return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

static PyObject *stack_empty_error(PyObject *self) {
    module_state *st = state_of(self);
    if (st != NULL) PyErr_SetString(st->empty_error, "pop from an empty LockFreeStack");
    return NULL;
}

PyDoc_STRVAR(stack_pop_doc, "pop($self, /)\n--\n\n"
                            "Remove and return the item on top of the stack.\n\n"
                            "Raises concurrent_collections.Empty (an IndexError) if it is empty.");
static PyObject *stack_pop(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    StackObject *self = (StackObject *)op;
    void *v;
    if (cc_stack_pop(self->stack, &v)) return (PyObject *)v;
    return stack_empty_error(op);
}

static const char *const default_names[] = {"default"};

PyDoc_STRVAR(stack_try_pop_doc, "try_pop($self, /, default=None)\n--\n\n"
                                "Remove and return the item on top of the stack, or return default\n"
                                "if the stack is empty.");
static PyObject *stack_try_pop(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
    StackObject *self = (StackObject *)op;
    PyObject *dflt = NULL;
    if ((nargs != 0 || kwnames != NULL) &&
        parse_args("try_pop", args, nargs, kwnames, default_names, 1, 0, &dflt) < 0)
        return NULL;
    void *v;
    if (cc_stack_pop(self->stack, &v)) return (PyObject *)v;
    return Py_NewRef(dflt ? dflt : Py_None);
}

static Py_ssize_t stack_len(PyObject *op) {
    StackObject *self = (StackObject *)op;
    size_t n = cc_stack_size(self->stack);
    return n > (size_t)PY_SSIZE_T_MAX ? 0 : (Py_ssize_t)n;
}

static int stack_bool(PyObject *op) { return stack_len(op) > 0; }

static PyMethodDef stack_methods[] = {
    {"push", stack_push, METH_O, stack_push_doc},
    {"pop", stack_pop, METH_NOARGS, stack_pop_doc},
    {"try_pop", CCPY_FASTKW(stack_try_pop), METH_FASTCALL | METH_KEYWORDS, stack_try_pop_doc},
    {"__class_getitem__", Py_GenericAlias, METH_O | METH_CLASS,
     "LockFreeStack is generic over the type of its items."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef stack_members[] = {
    {"__weaklistoffset__", CCPY_T_SSIZE, offsetof(StackObject, weakreflist), CCPY_READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

PyDoc_STRVAR(stack_doc,
             "LockFreeStack()\n--\n\n"
             "A lock-free LIFO stack (Treiber stack) safe to share between threads.\n\n"
             "push() and pop() take no lock: on free-threaded CPython they run in\n"
             "parallel. Items are kept as strong references until popped or until the\n"
             "stack is destroyed; the stack takes part in garbage collection.\n\n"
             "len(stack) is exact while no other thread changes the stack, and\n"
             "approximate (a recent value) while others push or pop; bool(stack) is\n"
             "len(stack) > 0.");

static PyType_Slot stack_slots[] = {
    {Py_tp_new, stack_new},         {Py_tp_dealloc, stack_dealloc},
    {Py_tp_traverse, stack_traverse}, {Py_tp_clear, stack_clear},
    {Py_tp_methods, stack_methods}, {Py_tp_members, stack_members},
    {Py_sq_length, stack_len},      {Py_nb_bool, stack_bool},
    {Py_tp_doc, (void *)stack_doc}, {0, NULL},
};
static PyType_Spec stack_spec = {
    .name = "concurrent_collections.LockFreeStack",
    .basicsize = sizeof(StackObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = stack_slots,
};

/* ---- LockFreeQueue ------------------------------------------------------------ */

typedef struct {
    PyObject_HEAD
    cc_queue_t *queue;
    PyObject *weakreflist;
    atomic_long waiters;          /* getters on the slow path */
    atomic_uint_fast64_t wake_seq; /* bumped (under mutex) by a put that saw waiters */
    pthread_mutex_t mutex;
    pthread_cond_t cond; /* CLOCK_MONOTONIC */
    int sync_ready;      /* mutex and cond initialised */
} QueueObject;

/* A full memory barrier: C11 seq_cst fence. On x86-64 a locked add to the
 * stack is cheaper than mfence and is just as strong for ordinary memory. */
static inline void full_fence(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    __asm__ __volatile__("lock; addl $0,-4(%%rsp)" ::: "memory", "cc");
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* The fence between a successful cc_queue_push and put's load of `waiters`.
 * On x86-64 the push publishes the node with a locked CAS (lock cmpxchg),
 * and every locked instruction drains the store buffer: no later load can be
 * satisfied before the node is visible to all CPUs (x86-TSO), so only the
 * compiler needs a barrier (and the call is opaque to it anyway). Elsewhere
 * a real seq_cst fence. */
static inline void fence_after_push(void) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    atomic_signal_fence(memory_order_seq_cst);
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
}

static int64_t monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static PyObject *queue_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (check_no_args(type, args, kwargs, "LockFreeQueue") < 0) return NULL;
    QueueObject *self = (QueueObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    atomic_init(&self->waiters, 0);
    atomic_init(&self->wake_seq, 0);
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc == 0) {
        rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        if (rc == 0) rc = pthread_cond_init(&self->cond, &attr);
        pthread_condattr_destroy(&attr);
    }
    if (rc == 0) {
        rc = pthread_mutex_init(&self->mutex, NULL);
        if (rc != 0) pthread_cond_destroy(&self->cond);
    }
    if (rc != 0) {
        Py_DECREF(self);
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    self->sync_ready = 1;
    self->queue = cc_queue_new();
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
        visit_ctx ctx = {visit, arg, 0};
        cc_queue_foreach(self->queue, visit_value, &ctx);
        if (ctx.result) return ctx.result;
    }
    return 0;
}

static int queue_clear(PyObject *op) {
    QueueObject *self = (QueueObject *)op;
    void *v;
    while (self->queue != NULL && cc_queue_pop(self->queue, &v)) Py_DECREF((PyObject *)v);
    return 0;
}

static void queue_dealloc(PyObject *op) {
    QueueObject *self = (QueueObject *)op;
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    Py_TRASHCAN_BEGIN(op, queue_dealloc)
    clear_weakrefs(op, self->weakreflist);
    (void)queue_clear(op);
    cc_queue_destroy(self->queue);
    self->queue = NULL;
    if (self->sync_ready) {
        pthread_cond_destroy(&self->cond);
        pthread_mutex_destroy(&self->mutex);
        self->sync_ready = 0;
    }
    tp->tp_free(op);
    Py_DECREF(tp);
    Py_TRASHCAN_END
}

/* Wake one waiting getter. Never runs Python code while holding the mutex. */
static void queue_wake_one(QueueObject *self) {
    pthread_mutex_lock(&self->mutex);
    atomic_fetch_add_explicit(&self->wake_seq, 1, memory_order_release);
    pthread_cond_signal(&self->cond);
    pthread_mutex_unlock(&self->mutex);
}

static inline int queue_put_item(QueueObject *self, PyObject *item) {
    Py_INCREF(item);
    if (!cc_queue_push(self->queue, item)) {
        Py_DECREF(item);
        PyErr_NoMemory();
        return -1;
    }
    /* Order the push before the load of `waiters` (store-load: seq_cst). */
    fence_after_push();
    if (atomic_load_explicit(&self->waiters, memory_order_relaxed) > 0) queue_wake_one(self);
    return 0;
}

static PyObject *queue_empty_error(PyObject *self) {
    module_state *st = state_of(self);
    if (st != NULL) PyErr_SetNone(st->queue_empty);
    return NULL;
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

/* The slow path of a blocking get: nothing was in the queue. timeout_ns < 0
 * waits forever. Waits in slices (50 ms on the main thread, 1 s elsewhere)
 * and checks for signals between them, so Ctrl-C interrupts a get. */
static PyObject *queue_get_wait(QueueObject *self, int64_t timeout_ns) {
    module_state *st = state_of((PyObject *)self);
    if (st == NULL) return NULL;
    int64_t deadline = -1;
    if (timeout_ns >= 0) {
        int64_t now = monotonic_ns();
        deadline = timeout_ns > INT64_MAX - now ? INT64_MAX : now + timeout_ns;
    }
    const int64_t slice =
        PyThread_get_thread_ident() == st->main_thread ? 50000000 : 1000000000;
    PyObject *result = NULL;
    void *v;

    atomic_fetch_add_explicit(&self->waiters, 1, memory_order_seq_cst);
    full_fence(); /* registration before the loads of the pop below */
    for (;;) {
        uint_fast64_t key = atomic_load_explicit(&self->wake_seq, memory_order_acquire);
        if (cc_queue_pop(self->queue, &v)) {
            result = (PyObject *)v;
            break;
        }
        int64_t now = monotonic_ns();
        if (deadline >= 0 && now >= deadline) {
            PyErr_SetNone(st->queue_empty);
            break;
        }
        int64_t until = now + slice;
        if (deadline >= 0 && deadline < until) until = deadline;
        struct timespec ts = {(time_t)(until / 1000000000), (long)(until % 1000000000)};
        cc_smr_idle(); /* about to sleep: reclamation need not wait for this thread */
        Py_BEGIN_ALLOW_THREADS
        pthread_mutex_lock(&self->mutex);
        while (atomic_load_explicit(&self->wake_seq, memory_order_relaxed) == key) {
            if (pthread_cond_timedwait(&self->cond, &self->mutex, &ts) == ETIMEDOUT) break;
        }
        pthread_mutex_unlock(&self->mutex);
        Py_END_ALLOW_THREADS
        if (PyErr_CheckSignals() < 0) {
            /* We may have taken a wakeup meant for an item: pass it on. */
            atomic_fetch_sub_explicit(&self->waiters, 1, memory_order_seq_cst);
            if (atomic_load_explicit(&self->waiters, memory_order_relaxed) > 0)
                queue_wake_one(self);
            return NULL;
        }
    }
    atomic_fetch_sub_explicit(&self->waiters, 1, memory_order_seq_cst);
    return result;
}

static const char *const put_names[] = {"item", "block", "timeout"};
static const char *const get_names[] = {"block", "timeout"};

PyDoc_STRVAR(queue_put_doc,
             "put($self, /, item, block=True, timeout=None)\n--\n\n"
             "Put the item on the queue.\n\n"
             "The optional 'block' and 'timeout' arguments are ignored, as this\n"
             "method never blocks. They are provided for compatibility with the\n"
             "Queue class. Raises MemoryError, leaving the queue unchanged, when no\n"
             "node can be allocated.");
static PyObject *queue_put(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames) {
    QueueObject *self = (QueueObject *)op;
    PyObject *item;
    if (nargs == 1 && kwnames == NULL) {
        item = args[0];
    } else {
        PyObject *a[3] = {NULL, NULL, NULL};
        if (parse_args("put", args, nargs, kwnames, put_names, 3, 1, a) < 0) return NULL;
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
    } else if (parse_args("put_nowait", args, nargs, kwnames, put_names, 1, 1, &item) < 0) {
        return NULL;
    }
    if (queue_put_item(self, item) < 0) return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(queue_get_doc,
             "get($self, /, block=True, timeout=None)\n--\n\n"
             "Remove and return an item from the queue.\n\n"
             "If optional args 'block' is true and 'timeout' is None (the\n"
             "default), block if necessary until an item is available. If\n"
             "'timeout' is a non-negative number, it blocks at most 'timeout'\n"
             "seconds and raises the queue.Empty exception if no item was available\n"
             "within that time.\n"
             "Otherwise ('block' is false), return an item if one is immediately\n"
             "available, else raise the queue.Empty exception ('timeout' is ignored\n"
             "in that case). Waiting does not spin: it sleeps (without the GIL).");
static PyObject *queue_get(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                           PyObject *kwnames) {
    QueueObject *self = (QueueObject *)op;
    void *v;
    int64_t timeout_ns = -1;
    if (nargs != 0 || kwnames != NULL) {
        PyObject *a[2] = {NULL, NULL};
        if (parse_args("get", args, nargs, kwnames, get_names, 2, 0, a) < 0) return NULL;
        int block = 1;
        if (a[0] != NULL && (block = PyObject_IsTrue(a[0])) < 0) return NULL;
        if (!block) {
            if (cc_queue_pop(self->queue, &v)) return (PyObject *)v;
            return queue_empty_error(op);
        }
        if (a[1] != NULL && a[1] != Py_None) {
            if (timeout_to_ns(a[1], &timeout_ns) < 0) return NULL;
            if (timeout_ns < 0) {
                PyErr_SetString(PyExc_ValueError, "'timeout' must be a non-negative number");
                return NULL;
            }
        }
    }
    if (cc_queue_pop(self->queue, &v)) return (PyObject *)v;
    if (timeout_ns == 0) return queue_empty_error(op);
    return queue_get_wait(self, timeout_ns);
}

PyDoc_STRVAR(queue_get_nowait_doc,
             "get_nowait($self, /)\n--\n\n"
             "Remove and return an item from the queue without blocking.\n\n"
             "Only get an item if one is immediately available. Otherwise\n"
             "raise the queue.Empty exception.");
static PyObject *queue_get_nowait(PyObject *op, PyObject *const *Py_UNUSED(args),
                                  Py_ssize_t nargs, PyObject *kwnames) {
    QueueObject *self = (QueueObject *)op;
    void *v;
    if (nargs != 0) { /* SimpleQueue's message */
        PyErr_SetString(PyExc_TypeError, "get_nowait() takes no arguments");
        return NULL;
    }
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) != 0) {
        /* 3.13's SimpleQueue says the same; 3.11/3.12's silently ignore them. */
        PyErr_SetString(PyExc_TypeError, "get_nowait() takes no arguments");
        return NULL;
    }
    if (cc_queue_pop(self->queue, &v)) return (PyObject *)v;
    return queue_empty_error(op);
}

PyDoc_STRVAR(queue_try_get_doc, "try_get($self, /, default=None)\n--\n\n"
                                "Remove and return an item from the queue if one is immediately\n"
                                "available, else return default (never raises queue.Empty).");
static PyObject *queue_try_get(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
    QueueObject *self = (QueueObject *)op;
    PyObject *dflt = NULL;
    if ((nargs != 0 || kwnames != NULL) &&
        parse_args("try_get", args, nargs, kwnames, default_names, 1, 0, &dflt) < 0)
        return NULL;
    void *v;
    if (cc_queue_pop(self->queue, &v)) return (PyObject *)v;
    return Py_NewRef(dflt ? dflt : Py_None);
}

PyDoc_STRVAR(queue_empty_doc, "empty($self, /)\n--\n\n"
                              "Return True if the queue is empty, False otherwise (not reliable!).\n\n"
                              "Exact while no other thread changes the queue.");
static PyObject *queue_empty(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    QueueObject *self = (QueueObject *)op;
    return PyBool_FromLong(cc_queue_size(self->queue) == 0);
}

PyDoc_STRVAR(queue_qsize_doc, "qsize($self, /)\n--\n\n"
                              "Return the approximate size of the queue (not reliable!).\n\n"
                              "Exact while no other thread changes the queue.");
static PyObject *queue_qsize(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    QueueObject *self = (QueueObject *)op;
    size_t n = cc_queue_size(self->queue);
    return PyLong_FromSsize_t(n > (size_t)PY_SSIZE_T_MAX ? 0 : (Py_ssize_t)n);
}

static PyMethodDef queue_methods[] = {
    {"put", CCPY_FASTKW(queue_put), METH_FASTCALL | METH_KEYWORDS, queue_put_doc},
    {"put_nowait", CCPY_FASTKW(queue_put_nowait), METH_FASTCALL | METH_KEYWORDS,
     queue_put_nowait_doc},
    {"get", CCPY_FASTKW(queue_get), METH_FASTCALL | METH_KEYWORDS, queue_get_doc},
    {"get_nowait", CCPY_FASTKW(queue_get_nowait), METH_FASTCALL | METH_KEYWORDS,
     queue_get_nowait_doc},
    {"try_get", CCPY_FASTKW(queue_try_get), METH_FASTCALL | METH_KEYWORDS, queue_try_get_doc},
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
             "Simple, unbounded, reentrant FIFO queue: a lock-free (Michael-Scott)\n"
             "MPMC queue that can replace queue.SimpleQueue unchanged.\n\n"
             "It has SimpleQueue's methods, signatures, exceptions (queue.Empty) and\n"
             "edge cases, plus try_get(). put() and non-blocking get() take no lock: on\n"
             "free-threaded CPython they run in parallel. A blocking get() that finds\n"
             "the queue empty sleeps on a condition variable (no spinning, without the\n"
             "GIL) and can be interrupted with Ctrl-C. Items put by one thread are got\n"
             "in the order it put them. Items are kept as strong references; the queue\n"
             "takes part in garbage collection.");

static PyType_Slot queue_slots[] = {
    {Py_tp_new, queue_new},         {Py_tp_dealloc, queue_dealloc},
    {Py_tp_traverse, queue_traverse}, {Py_tp_clear, queue_clear},
    {Py_tp_methods, queue_methods}, {Py_tp_members, queue_members},
    {Py_tp_doc, (void *)queue_doc}, {0, NULL},
};
static PyType_Spec queue_spec = {
    .name = "concurrent_collections.LockFreeQueue",
    .basicsize = sizeof(QueueObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = queue_slots,
};

/* ---- the module ----------------------------------------------------------------- */

static int add_type(PyObject *module, PyType_Spec *spec, PyTypeObject **slot) {
    PyObject *t = PyType_FromModuleAndSpec(module, spec, NULL);
    if (t == NULL) return -1;
    *slot = (PyTypeObject *)t;
    return PyModule_AddObjectRef(module, strrchr(spec->name, '.') + 1, t);
}

static unsigned long main_thread_ident(void) {
    unsigned long ident = PyThread_get_thread_ident();
    PyObject *threading = PyImport_ImportModule("threading");
    if (threading == NULL) {
        PyErr_Clear();
        return ident;
    }
    PyObject *main = PyObject_CallMethod(threading, "main_thread", NULL);
    Py_DECREF(threading);
    PyObject *id = main ? PyObject_GetAttrString(main, "ident") : NULL;
    Py_XDECREF(main);
    if (id != NULL && PyLong_Check(id)) {
        unsigned long v = PyLong_AsUnsignedLong(id);
        if (!(v == (unsigned long)-1 && PyErr_Occurred())) ident = v;
    }
    Py_XDECREF(id);
    PyErr_Clear();
    return ident;
}

static int module_exec(PyObject *module) {
    module_state *st = state_of_module(module);
    if (add_type(module, &stack_spec, &st->stack_type) < 0) return -1;
    if (add_type(module, &queue_spec, &st->queue_type) < 0) return -1;
    if (add_type(module, &config_spec, &st->config_type) < 0) return -1;
    if (add_type(module, &alloc_stats_spec, &st->alloc_stats_type) < 0) return -1;
    if (add_type(module, &smr_stats_spec, &st->smr_stats_type) < 0) return -1;

    st->empty_error = PyErr_NewExceptionWithDoc(
        "concurrent_collections.Empty",
        "Raised by LockFreeStack.pop() on an empty stack (a subclass of IndexError).",
        PyExc_IndexError, NULL);
    if (st->empty_error == NULL || PyModule_AddObjectRef(module, "Empty", st->empty_error) < 0)
        return -1;

    PyObject *queue_mod = PyImport_ImportModule("queue");
    if (queue_mod == NULL) return -1;
    st->queue_empty = PyObject_GetAttrString(queue_mod, "Empty");
    Py_DECREF(queue_mod);
    if (st->queue_empty == NULL) return -1;

    st->config = st->config_type->tp_alloc(st->config_type, 0);
    if (st->config == NULL || PyModule_AddObjectRef(module, "config", st->config) < 0) return -1;

    st->main_thread = main_thread_ident();
    /* Read the environment now (allocator, statistics): a bad value is
     * reported at import rather than at some later first use. */
    (void)cc_alloc_stats_enabled();
    return 0;
}

static int module_traverse(PyObject *module, visitproc visit, void *arg) {
    module_state *st = state_of_module(module);
    Py_VISIT(st->stack_type);
    Py_VISIT(st->queue_type);
    Py_VISIT(st->config_type);
    Py_VISIT(st->alloc_stats_type);
    Py_VISIT(st->smr_stats_type);
    Py_VISIT(st->empty_error);
    Py_VISIT(st->queue_empty);
    Py_VISIT(st->config);
    return 0;
}

static int module_clear(PyObject *module) {
    module_state *st = state_of_module(module);
    Py_CLEAR(st->stack_type);
    Py_CLEAR(st->queue_type);
    Py_CLEAR(st->config_type);
    Py_CLEAR(st->alloc_stats_type);
    Py_CLEAR(st->smr_stats_type);
    Py_CLEAR(st->empty_error);
    Py_CLEAR(st->queue_empty);
    Py_CLEAR(st->config);
    return 0;
}

static void module_free(void *module) { (void)module_clear((PyObject *)module); }

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, (void *)module_exec},
#if PY_VERSION_HEX >= 0x030C0000
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#if PY_VERSION_HEX >= 0x030D0000
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

PyDoc_STRVAR(module_doc, "The C extension of concurrent_collections (see the package).");

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "concurrent_collections._core",
    .m_doc = module_doc,
    .m_size = sizeof(module_state),
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__core(void) { return PyModuleDef_Init(&core_module); }
