/*
 * concurrent_collections._core -- the CPython binding of concurrent-collections:
 * the module itself (multi-phase init, state, the exceptions) and the argument
 * parsing the types share. Each type has its own file (see _core.h).
 *
 * Layer: the top one. It is built from the same C sources as the library, so
 * the nodes and segments of LockFreeStack / LockFreeQueue come from
 * cc_alloc_node and are retired through SMR: config.alloc_stats() and
 * config.smr_stats() show them.
 *
 *  - Multi-phase init, module state, heap types (PyType_FromModuleAndSpec).
 *    The module declares Py_mod_gil = Py_MOD_GIL_NOT_USED (3.13+): importing
 *    it on a free-threaded build leaves the GIL off.
 *  - One exception hierarchy: Empty subclasses both queue.Empty and
 *    IndexError, and is what LockFreeStack.pop and every empty LockFreeQueue
 *    get raise, so `except Empty`, `except queue.Empty` and (for the stack)
 *    `except IndexError` all catch what users expect. ShutDown is
 *    queue.ShutDown where the standard library has it (3.13+), else the
 *    package's own Exception subclass.
 *  - Per-thread state: the extension adds no thread-local storage (the glue's
 *    small initial-exec TLS struct is the only one; see design.md).
 */
#include "_core.h"

#include <cc/alloc.h>

#include <string.h>

const char *const ccpy_default_names[] = {"default"};

/* *result = obj.name or NULL when it has no such attribute; -1 on other errors. */
static int get_optional_attr(PyObject *obj, const char *name,
                                                 PyObject **result) {
#if PY_VERSION_HEX >= 0x030D0000
    return PyObject_GetOptionalAttrString(obj, name, result);
#else
    *result = PyObject_GetAttrString(obj, name);
    if (*result != NULL) return 1;
    if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -1;
    PyErr_Clear();
    return 0;
#endif
}

/* ---- argument parsing (messages match Argument Clinic's) ------------------ */

/* Fills out[0..nparams) from a vectorcall (args, nargs, kwnames); parameters
 * not given stay as they were (defaults). The first `required` are required. */
int ccpy_parse_args(const char *fname, PyObject *const *args, Py_ssize_t nargs,
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
int ccpy_check_no_args(PyTypeObject *type, PyObject *args, PyObject *kwargs, const char *name) {
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

/* ---- the module ----------------------------------------------------------------- */

static int add_type(PyObject *module, PyType_Spec *spec, PyTypeObject **slot) {
    PyObject *t = PyType_FromModuleAndSpec(module, spec, NULL);
    if (t == NULL) return -1;
    *slot = (PyTypeObject *)t;
    return PyModule_AddObjectRef(module, strrchr(spec->name, '.') + 1, t);
}

/* Empty: one class both containers raise (see the header). */
static PyObject *new_empty_error(PyObject *queue_empty) {
    PyObject *bases = PyTuple_Pack(2, queue_empty, PyExc_IndexError);
    if (bases == NULL) return NULL;
    PyObject *e = PyErr_NewExceptionWithDoc(
        "concurrent_collections.Empty",
        "Raised by LockFreeStack.pop() on an empty stack and by LockFreeQueue's gets\n"
        "when no item is available: a subclass of both queue.Empty and IndexError,\n"
        "so `except queue.Empty` (SimpleQueue code), `except IndexError` (list-like\n"
        "stack code) and `except concurrent_collections.Empty` all catch it.",
        bases, NULL);
    Py_DECREF(bases);
    return e;
}

static int module_exec(PyObject *module) {
    ccpy_state *st = ccpy_state_of_module(module);
    if (add_type(module, &ccpy_stack_spec, &st->stack_type) < 0) return -1;
    if (add_type(module, &ccpy_queue_spec, &st->queue_type) < 0) return -1;
    if (add_type(module, &ccpy_config_spec, &st->config_type) < 0) return -1;
    if (ccpy_stats_types_init(module, st) < 0) return -1;

    PyObject *queue_mod = PyImport_ImportModule("queue");
    if (queue_mod == NULL) return -1;
    PyObject *queue_empty = PyObject_GetAttrString(queue_mod, "Empty");
    if (queue_empty == NULL) {
        Py_DECREF(queue_mod);
        return -1;
    }
    st->empty_error = new_empty_error(queue_empty);
    Py_DECREF(queue_empty);
    if (get_optional_attr(queue_mod, "ShutDown", &st->shutdown_error) < 0) {
        Py_DECREF(queue_mod);
        return -1;
    }
    Py_DECREF(queue_mod);
    if (st->shutdown_error == NULL)
        st->shutdown_error = PyErr_NewExceptionWithDoc(
            "concurrent_collections.ShutDown",
            "Raised by LockFreeQueue's put on a queue that was shut down, and by its\n"
            "gets once it is shut down and drained (queue.ShutDown on Python 3.13+,\n"
            "where the standard library has it).",
            PyExc_Exception, NULL);
    if (st->empty_error == NULL || PyModule_AddObjectRef(module, "Empty", st->empty_error) < 0)
        return -1;
    if (st->shutdown_error == NULL ||
        PyModule_AddObjectRef(module, "ShutDown", st->shutdown_error) < 0)
        return -1;

    st->config = st->config_type->tp_alloc(st->config_type, 0);
    if (st->config == NULL || PyModule_AddObjectRef(module, "config", st->config) < 0) return -1;

    /* Read the environment now (allocator, statistics): a bad value is
     * reported at import rather than at some later first use. */
    (void)cc_alloc_stats_enabled();
    return 0;
}

static int module_traverse(PyObject *module, visitproc visit, void *arg) {
    ccpy_state *st = ccpy_state_of_module(module);
    Py_VISIT(st->stack_type);
    Py_VISIT(st->queue_type);
    Py_VISIT(st->config_type);
    Py_VISIT(st->alloc_stats_type);
    Py_VISIT(st->smr_stats_type);
    Py_VISIT(st->empty_error);
    Py_VISIT(st->shutdown_error);
    Py_VISIT(st->config);
    return 0;
}

static int module_clear(PyObject *module) {
    ccpy_state *st = ccpy_state_of_module(module);
    Py_CLEAR(st->stack_type);
    Py_CLEAR(st->queue_type);
    Py_CLEAR(st->config_type);
    Py_CLEAR(st->alloc_stats_type);
    Py_CLEAR(st->smr_stats_type);
    Py_CLEAR(st->empty_error);
    Py_CLEAR(st->shutdown_error);
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

struct PyModuleDef ccpy_core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "concurrent_collections._core",
    .m_doc = module_doc,
    .m_size = sizeof(ccpy_state),
    .m_slots = module_slots,
    .m_traverse = module_traverse,
    .m_clear = module_clear,
    .m_free = module_free,
};

PyMODINIT_FUNC PyInit__core(void) { return PyModuleDef_Init(&ccpy_core_module); }
