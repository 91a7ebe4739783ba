/*
 * _config.c -- concurrent_collections.config (the Config singleton) and the
 * two snapshot types it returns, AllocStats and SMRStats.
 *
 * The snapshots are struct sequences (as os.stat_result): tuples with named,
 * read-only fields, so they iterate, unpack, compare, hash and pickle like
 * tuples. _asdict() (a namedtuple habit users and tests rely on) is added to
 * each type as a method. A snapshot is built from one cc_*_snapshot call and
 * never changes afterwards.
 *
 * Config holds no state of its own: every getter and setter goes straight to
 * the C library (<cc/config.h>, <cc/alloc.h>, <cc/smr.h>), whose settings are
 * process-wide and safe to read and write from any thread.
 */
#include "_core.h"

#include <cc/alloc.h>
#include <cc/config.h>
#include <cc/smr.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>

/* ---- snapshots (AllocStats, SMRStats) -------------------------------------- */

static PyStructSequence_Field alloc_fields[] = {
    {"alloc_count", "Blocks allocated while statistics were on, since the last reset."},
    {"free_count", "Blocks freed while statistics were on, since the last reset (may exceed alloc_count)."},
    {"alloc_bytes", "Bytes allocated in the same window: the usable size of each block."},
    {"free_bytes", "Bytes freed in the same window: the usable size of each block."},
    {"current_allocated", "Bytes of every live block, whenever allocated (a reset leaves it)."},
    {"current_blocks", "Every live block, whenever allocated (a reset leaves it)."},
    {NULL, NULL},
};

static PyStructSequence_Field smr_fields[] = {
    {"retired", "Nodes ever retired to safe memory reclamation."},
    {"freed", "Retired nodes ever freed."},
    {"pending", "Retired nodes not freed yet (retired - freed)."},
    {"epoch", "The current global epoch."},
    {"threads", "Threads registered with SMR (live)."},
    {"orphaned", "Pending nodes handed over by exited threads."},
    {"stalled_threads", "Threads in a critical section whose epoch is behind the global one."},
    {"peak_pending", "Highest 'pending' sampled."},
    {"asymmetric", "1 if critical sections enter without a fence (membarrier mode)."},
    {"membarriers", "membarrier(2) calls made by the asymmetric mode."},
    {NULL, NULL},
};

#define N_ALLOC ((int)(sizeof alloc_fields / sizeof alloc_fields[0]) - 1)
#define N_SMR ((int)(sizeof smr_fields / sizeof smr_fields[0]) - 1)

static PyStructSequence_Desc alloc_stats_desc = {
    "concurrent_collections.AllocStats",
    "AllocStats: an immutable snapshot of the allocation statistics.\n\n"
    "Returned by config.alloc_stats(). A struct sequence (as os.stat_result):\n"
    "a tuple of ints with the read-only attributes alloc_count, free_count,\n"
    "alloc_bytes, free_bytes, current_allocated and current_blocks; _asdict()\n"
    "returns them as a dict. Bytes are usable sizes of the blocks. current_*\n"
    "count every live block; the other four count the calls made while\n"
    "statistics were on since the last reset.\n"
    "Exact once the threads that allocated have been joined.",
    alloc_fields,
    N_ALLOC,
};

static PyStructSequence_Desc smr_stats_desc = {
    "concurrent_collections.SMRStats",
    "SMRStats: an immutable snapshot of safe-memory-reclamation statistics.\n\n"
    "Returned by config.smr_stats(). A struct sequence (as os.stat_result):\n"
    "a tuple of ints with the read-only attributes retired, freed, pending,\n"
    "epoch, threads, orphaned, stalled_threads, peak_pending, asymmetric and\n"
    "membarriers; _asdict() returns them as a dict.",
    smr_fields,
    N_SMR,
};

PyDoc_STRVAR(snap_asdict_doc, "_asdict($self, /)\n--\n\n"
                              "Return the snapshot as a new dict {field name: int}, in field order.");
static PyObject *snap_asdict(PyObject *self, PyObject *Py_UNUSED(ignored)) {
    PyTypeObject *tp = Py_TYPE(self);
    const PyStructSequence_Field *fields =
        tp->tp_name != NULL && strcmp(tp->tp_name, alloc_stats_desc.name) == 0 ? alloc_fields
                                                                               : smr_fields;
    PyObject *d = PyDict_New();
    if (d == NULL) return NULL;
    for (Py_ssize_t i = 0; fields[i].name != NULL && i < PyTuple_GET_SIZE(self); i++) {
        if (PyDict_SetItemString(d, fields[i].name, PyStructSequence_GetItem(self, i)) < 0) {
            Py_DECREF(d);
            return NULL;
        }
    }
    return d;
}

static PyMethodDef snap_asdict_def = {"_asdict", snap_asdict, METH_NOARGS, snap_asdict_doc};

static PyTypeObject *new_stats_type(PyObject *module, PyStructSequence_Desc *desc) {
    PyTypeObject *tp = PyStructSequence_NewType(desc);
    if (tp == NULL) return NULL;
    PyObject *method = PyDescr_NewMethod(tp, &snap_asdict_def);
    if (method == NULL || PyObject_SetAttrString((PyObject *)tp, "_asdict", method) < 0 ||
        PyModule_AddObjectRef(module, strrchr(desc->name, '.') + 1, (PyObject *)tp) < 0) {
        Py_XDECREF(method);
        Py_DECREF(tp);
        return NULL;
    }
    Py_DECREF(method);
    return tp;
}

int ccpy_stats_types_init(PyObject *module, ccpy_state *st) {
    st->alloc_stats_type = new_stats_type(module, &alloc_stats_desc);
    if (st->alloc_stats_type == NULL) return -1;
    st->smr_stats_type = new_stats_type(module, &smr_stats_desc);
    return st->smr_stats_type == NULL ? -1 : 0;
}

static PyObject *snap_new(PyTypeObject *type, int n, const uint64_t *v) {
    PyObject *self = PyStructSequence_New(type);
    if (self == NULL) return NULL;
    for (int i = 0; i < n; i++) {
        PyObject *x = PyLong_FromUnsignedLongLong(v[i]);
        if (x == NULL) {
            Py_DECREF(self);
            return NULL;
        }
        PyStructSequence_SetItem(self, i, x); /* steals x */
    }
    return self;
}

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
    ccpy_state *st = ccpy_state_of(self);
    if (st == NULL) return NULL;
    cc_alloc_snapshot_t s = cc_alloc_stats_snapshot();
    uint64_t v[N_ALLOC] = {s.alloc_count, s.free_count,        s.alloc_bytes,
                           s.free_bytes,  s.current_allocated, s.current_blocks};
    return snap_new(st->alloc_stats_type, N_ALLOC, v);
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
    ccpy_state *st = ccpy_state_of(self);
    if (st == NULL) return NULL;
    cc_smr_snapshot_t s = cc_smr_stats();
    uint64_t v[N_SMR] = {s.retired,      s.freed,      s.pending,    s.epoch,
                         s.threads,      s.orphaned,   s.stalled_threads,
                         s.peak_pending, s.asymmetric, s.membarriers};
    return snap_new(st->smr_stats_type, N_SMR, v);
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
PyType_Spec ccpy_config_spec = {
    .name = "concurrent_collections.Config",
    .basicsize = sizeof(ConfigObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = config_slots,
};

