/*
 * _core.h -- private to the extension concurrent_collections._core: the module
 * state every type reaches through PyType_GetModuleByDef, the type specs each
 * file defines, and helpers the files share. Not installed.
 *
 * Files: _core.c (module init, state, argument parsing), _config.c (Config,
 * AllocStats, SMRStats), _stack.c (LockFreeStack), _queue.c (LockFreeQueue
 * and its blocking protocol).
 */
#ifndef CCPY_CORE_H
#define CCPY_CORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h> /* T_PYSSIZET, READONLY on 3.11 */

#if PY_VERSION_HEX < 0x030B0000
#error "concurrent_collections needs CPython 3.11 or newer"
#endif

#if PY_VERSION_HEX >= 0x030C0000
#define CCPY_T_SSIZE Py_T_PYSSIZET
#define CCPY_READONLY Py_READONLY
#else
#define CCPY_T_SSIZE T_PYSSIZET
#define CCPY_READONLY READONLY
#endif

#define CCPY_FASTKW(fn) ((PyCFunction)(void (*)(void))(fn))

typedef struct {
    PyTypeObject *stack_type;
    PyTypeObject *queue_type;
    PyTypeObject *config_type;
    PyTypeObject *alloc_stats_type; /* PyStructSequence types */
    PyTypeObject *smr_stats_type;
    PyObject *empty_error; /* concurrent_collections.Empty(queue.Empty, IndexError) */
    PyObject *shutdown_error; /* queue.ShutDown (3.13+) or the package's ShutDown */
    PyObject *config;      /* the config singleton */
} ccpy_state;

extern struct PyModuleDef ccpy_core_module;

static inline ccpy_state *ccpy_state_of_module(PyObject *module) {
    return (ccpy_state *)PyModule_GetState(module);
}

/* State from an instance of one of our types (or of a Python subclass). */
static inline ccpy_state *ccpy_state_of(PyObject *self) {
    PyObject *module = PyType_GetModuleByDef(Py_TYPE(self), &ccpy_core_module);
    return module ? ccpy_state_of_module(module) : NULL;
}

/* Fills out[0..nparams) from a vectorcall (args, nargs, kwnames) with
 * Argument Clinic's messages; parameters not given stay as they were
 * (defaults). The first `required` are required. */
int ccpy_parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames, const char *const *names, int nparams, int required,
                    PyObject **out);

/* tp_new helper: instances take no arguments unless a subclass defines its
 * own __init__ (what SimpleQueue and most builtins do). */
int ccpy_check_no_args(PyTypeObject *type, PyObject *args, PyObject *kwargs, const char *name);

/* Weak references at dealloc. The free-threaded build clears them
 * unconditionally, as CPython's own types do there (FT_CLEAR_WEAKREFS): the
 * list head is not read without the weakref lock. */
static inline void ccpy_clear_weakrefs(PyObject *op, PyObject *weakreflist) {
#ifdef Py_GIL_DISABLED
    (void)weakreflist;
    PyObject_ClearWeakRefs(op);
#else
    if (weakreflist != NULL) PyObject_ClearWeakRefs(op);
#endif
}

/* tp_traverse over a C container: cc_*_foreach(container, ccpy_visit_value, &ctx). */
typedef struct {
    visitproc visit;
    void *arg;
    int result;
} ccpy_visit_ctx;

static inline void ccpy_visit_value(void *value, void *arg) {
    ccpy_visit_ctx *ctx = (ccpy_visit_ctx *)arg;
    if (ctx->result == 0 && value != NULL) ctx->result = ctx->visit((PyObject *)value, ctx->arg);
}

extern const char *const ccpy_default_names[]; /* {"default"} */

/* Each file's types, created by module_exec in _core.c. */
extern PyType_Spec ccpy_stack_spec;
extern PyType_Spec ccpy_queue_spec;
extern PyType_Spec ccpy_config_spec;
/* AllocStats / SMRStats: struct sequences, with _asdict added. 0 or -1. */
int ccpy_stats_types_init(PyObject *module, ccpy_state *st);

#endif /* CCPY_CORE_H */
