/*
 * _stack.c -- concurrent_collections.LockFreeStack over cc_stack (Treiber).
 *
 * The stack stores strong references (void * = PyObject *): push takes a new
 * reference, pop hands the stored one to the caller. No lock is taken around
 * push/pop: the C stack is lock-free, and nothing here runs Python code
 * between a C operation and its reference bookkeeping.
 *
 * GC: tp_traverse walks the nodes with cc_stack_foreach, which is not safe
 * against concurrent changes. It is only called while no other thread can
 * change the stack: on GIL builds every push/pop runs with the GIL held, and
 * on free-threaded builds the collector (and gc.get_referents) stops the
 * world, and no thread stops inside a push or pop (they contain no safe
 * point).
 */
#include "_core.h"

#include <cc/stack.h>


typedef struct {
    PyObject_HEAD
    cc_stack_t *stack;
    PyObject *weakreflist;
} StackObject;

static PyObject *stack_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    if (ccpy_check_no_args(type, args, kwargs, "LockFreeStack") < 0) return NULL;
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
        ccpy_visit_ctx ctx = {visit, arg, 0};
        cc_stack_foreach(self->stack, ccpy_visit_value, &ctx);
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
    ccpy_clear_weakrefs(op, self->weakreflist);
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
    ccpy_state *st = ccpy_state_of(self);
    if (st != NULL) PyErr_SetString(st->empty_error, "pop from an empty LockFreeStack");
    return NULL;
}

PyDoc_STRVAR(stack_pop_doc, "pop($self, /)\n--\n\n"
                            "Remove and return the item on top of the stack.\n\n"
                            "Raises concurrent_collections.Empty (an IndexError and a queue.Empty)\n"
                            "if it is empty.");
static PyObject *stack_pop(PyObject *op, PyObject *Py_UNUSED(ignored)) {
    StackObject *self = (StackObject *)op;
    void *v;
    if (cc_stack_pop(self->stack, &v)) return (PyObject *)v;
    return stack_empty_error(op);
}

PyDoc_STRVAR(stack_try_pop_doc, "try_pop($self, /, default=None)\n--\n\n"
                                "Remove and return the item on top of the stack, or return default\n"
                                "if the stack is empty.");
static PyObject *stack_try_pop(PyObject *op, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames) {
    StackObject *self = (StackObject *)op;
    PyObject *dflt = NULL;
    if ((nargs != 0 || kwnames != NULL) &&
        ccpy_parse_args("try_pop", args, nargs, kwnames, ccpy_default_names, 1, 0, &dflt) < 0)
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
PyType_Spec ccpy_stack_spec = {
    .name = "concurrent_collections.LockFreeStack",
    .basicsize = sizeof(StackObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC |
             Py_TPFLAGS_IMMUTABLETYPE,
    .slots = stack_slots,
};

