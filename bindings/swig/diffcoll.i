// SPDX-FileCopyrightText: 2026 the diffcoll authors
// SPDX-License-Identifier: BSD-3-Clause

/*
 * diffcoll.i: the one SWIG interface of diffcoll, used for Python and Go.
 *
 * It %includes the public header itself, so every function, type, enum and
 * constant of capi/include/diffcoll/diffcoll.h is wrapped and nothing can
 * drift. This file only adds typemaps that make the C conventions usable:
 *
 *  - out-pointers (diffcoll_comm_t** and any other T**, int32_t*,
 *    diffcoll_stats_t*) become extra results (Python) or typed
 *    out-parameters (Go);
 *  - the rank list (const int32_t* ranks, int32_t count) is one sequence /
 *    slice argument;
 *  - Python only: two tensor arrays of one count (Ulysses inputs/outputs,
 *    ring buffer0/buffer1) are one argument, a pair of equally long
 *    sequences;
 *  - the fixed arrays shape[]/strides[] of diffcoll_tensor_t read and write
 *    as Python sequences / Go slices (up to DIFFCOLL_MAX_DIMS entries, the
 *    rest zero-filled);
 *  - void* (tensor data, CUDA streams, ncclComm_t) is a plain integer
 *    address (Python int, Go uintptr), None / 0 being NULL;
 *  - the function table diffcoll_api_t is read-only (struct_size and
 *    version only);
 *  - Python only: diffcoll_swig_dlpack_describe() reads a DLPack capsule.
 *  - Python only: a tensor descriptor (alone or in the arrays above) may be
 *    a plain tuple (data, dtype, device_type, device_id, shape, strides),
 *    converted in C: the bindings' per-call path, far cheaper than a
 *    diffcoll_tensor_t object.
 *
 * Every wrapped function keeps its C name and returns the diffcoll_status_t
 * as an integer; the language layers (bindings/python/diffcoll,
 * bindings/go) turn statuses into exceptions / error values using
 * diffcoll_last_error(), which they read on the same OS thread.
 *
 * Python must be generated with -threads: the GIL is released around every
 * call, so that ranks that are threads of one process can block in
 * collectives at the same time.
 */
%module diffcoll_c

%{
#include "diffcoll/diffcoll.h"
#include <stdlib.h>
#include <string.h>
%}

%include <stdint.i>

/* Structs made from the target language start from the header's INIT
 * values (not zeros), exactly like C code that uses DIFFCOLL_CONFIG_INIT and
 * DIFFCOLL_STATS_INIT, in every target language. The config owns a copy of its
 * host string. */
%typemap(memberin) const char* host {
  free((char*)$1);
  $1 = NULL;
  if ($input) {
    size_t n = strlen($input) + 1;
    char* copy = (char*)malloc(n);
    if (copy) memcpy(copy, $input, n);
    $1 = copy;
  }
}
/* The constructor of TYPE: a heap copy of INIT. */
%define DIFFCOLL_INIT_CONSTRUCTOR(TYPE, INIT)
  TYPE() {
    TYPE init = INIT;
    TYPE* made = (TYPE*)malloc(sizeof(TYPE));
    if (made) *made = init;
    return made;
  }
%enddef
%extend diffcoll_config_t {
  DIFFCOLL_INIT_CONSTRUCTOR(diffcoll_config_t, DIFFCOLL_CONFIG_INIT)
  ~diffcoll_config_t() {
    free((char*)$self->host);
    free($self);
  }
}
%extend diffcoll_stats_t { DIFFCOLL_INIT_CONSTRUCTOR(diffcoll_stats_t, DIFFCOLL_STATS_INIT) }
%extend diffcoll_cfg_options_t { DIFFCOLL_INIT_CONSTRUCTOR(diffcoll_cfg_options_t, DIFFCOLL_CFG_OPTIONS_INIT) }
%extend diffcoll_halo_config_t { DIFFCOLL_INIT_CONSTRUCTOR(diffcoll_halo_config_t, DIFFCOLL_HALO_CONFIG_INIT) }
%extend diffcoll_fused_norm_options_t {
  DIFFCOLL_INIT_CONSTRUCTOR(diffcoll_fused_norm_options_t, DIFFCOLL_FUSED_NORM_OPTIONS_INIT)
}
%extend diffcoll_usp_degrees_t { DIFFCOLL_INIT_CONSTRUCTOR(diffcoll_usp_degrees_t, DIFFCOLL_USP_DEGREES_INIT) }
/* After diffcoll_usp_mesh_create a mesh's communicators are the caller's to
 * destroy (diffcoll_usp_mesh_destroy, or diffcoll_comm_destroy each):
 * dropping the struct does not destroy them. */
%extend diffcoll_usp_mesh_t { DIFFCOLL_INIT_CONSTRUCTOR(diffcoll_usp_mesh_t, DIFFCOLL_USP_MESH_INIT) }
%extend diffcoll_ulysses_options_t {
  DIFFCOLL_INIT_CONSTRUCTOR(diffcoll_ulysses_options_t, DIFFCOLL_ULYSSES_OPTIONS_INIT)
}
%extend diffcoll_all_gather_options_t {
  DIFFCOLL_INIT_CONSTRUCTOR(diffcoll_all_gather_options_t, DIFFCOLL_ALL_GATHER_OPTIONS_INIT)
}
/* A branch made from the target language owns a copy of its name (arrays
 * made with the *_array helpers below copy the struct, not the name: keep
 * the branch objects alive until the call returns). */
%typemap(memberin) const char* name {
  free((char*)$1);
  $1 = NULL;
  if ($input) {
    size_t n = strlen($input) + 1;
    char* copy = (char*)malloc(n);
    if (copy) memcpy(copy, $input, n);
    $1 = copy;
  }
}
%extend diffcoll_cfg_branch_t {
  ~diffcoll_cfg_branch_t() {
    free((char*)$self->name);
    free($self);
  }
}

/* ------------------------------------------------------------------------ */
/* Python                                                                     */
/* ------------------------------------------------------------------------ */
#ifdef SWIGPYTHON

/* void*: an integer address (None is NULL). */
%typemap(in) void* {
  if ($input == Py_None) {
    $1 = NULL;
  } else if (PyLong_Check($input)) {
    $1 = PyLong_AsVoidPtr($input);
    if (PyErr_Occurred()) SWIG_fail;
  } else {
    PyErr_SetString(PyExc_TypeError, "$symname: expected an integer address or None for '$1_name'");
    SWIG_fail;
  }
}
%typemap(typecheck, precedence=SWIG_TYPECHECK_POINTER) void* {
  $1 = ($input == Py_None || PyLong_Check($input)) ? 1 : 0;
}
%typemap(out) void* { $result = PyLong_FromVoidPtr($1); }
%typemap(memberin) void* { $1 = $input; }

/* T** out (diffcoll_comm_t** and any later handle or table out-pointer):
 * returned as an extra result, None when the library gives no object (e.g.
 * DIFFCOLL_SPLIT_NOCOLOR). The object is not owned by Python: handles are
 * released with their destroy function. */
%typemap(in, numinputs=0) SWIGTYPE** ($*1_ltype temp = NULL) { $1 = &temp; }
%typemap(argout) SWIGTYPE** {
  $result = SWIG_Python_AppendOutput($result,
      SWIG_NewPointerObj(SWIG_as_voidptr(*$1), $*1_descriptor, 0));
}

/* const int32_t* is an input: keep SWIG's plain pointer handling (the
 * int32_t* out typemaps below must not match it). */
%typemap(in) const int32_t* = SWIGTYPE*;
%typemap(argout) const int32_t* "";

/* int32_t* / int64_t* out (size, rank, global rank, ...): an extra integer
 * result. (Arrays have their own typemaps below.) */
%typemap(in, numinputs=0) int32_t* (int32_t temp = 0) { $1 = &temp; }
%typemap(argout) int32_t* {
  $result = SWIG_Python_AppendOutput($result, PyLong_FromLong((long)*$1));
}
%typemap(in) const int64_t* = SWIGTYPE*;
%typemap(argout) const int64_t* "";
%typemap(in, numinputs=0) int64_t* (int64_t temp = 0) { $1 = &temp; }
%typemap(argout) int64_t* {
  $result = SWIG_Python_AppendOutput($result, PyLong_FromLongLong((long long)*$1));
}

/* diffcoll_stats_t* out: the struct_size is filled in here; the result is a
 * new diffcoll_stats_t owned by Python. */
%typemap(in, numinputs=0) diffcoll_stats_t* (diffcoll_stats_t temp) {
  diffcoll_stats_t init = DIFFCOLL_STATS_INIT;
  temp = init;
  $1 = &temp;
}
%typemap(argout) diffcoll_stats_t* {
  diffcoll_stats_t* copy = (diffcoll_stats_t*)malloc(sizeof(diffcoll_stats_t));
  if (!copy) SWIG_exception_fail(SWIG_MemoryError, "out of memory");
  *copy = *$1;
  $result = SWIG_Python_AppendOutput($result,
      SWIG_NewPointerObj(SWIG_as_voidptr(copy), $1_descriptor, SWIG_POINTER_OWN));
}

/* (const int32_t* ranks, int32_t count): one sequence of ints. */
%typemap(in) (const int32_t* ranks, int32_t count) (int32_t* buf = NULL) {
  PyObject* seq = PySequence_Fast($input, "$symname: ranks must be a sequence of ints");
  if (!seq) SWIG_fail;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  if (n > INT32_MAX) {
    Py_DECREF(seq);
    SWIG_exception_fail(SWIG_ValueError, "$symname: too many ranks");
  }
  buf = (int32_t*)malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
  if (!buf) {
    Py_DECREF(seq);
    SWIG_exception_fail(SWIG_MemoryError, "out of memory");
  }
  for (Py_ssize_t i = 0; i < n; ++i) {
    long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(seq, i));
    if (v == -1 && PyErr_Occurred()) {
      Py_DECREF(seq);
      SWIG_fail;
    }
    buf[i] = (int32_t)v;
  }
  Py_DECREF(seq);
  $1 = buf;
  $2 = (int32_t)n;
}
%typemap(freearg) (const int32_t* ranks, int32_t count) { free(buf$argnum); }

/* int64_t shape[DIFFCOLL_MAX_DIMS], strides[...]: sequences of at most
 * DIFFCOLL_MAX_DIMS ints (the rest zero-filled); read back as a tuple. */
%typemap(in) int64_t [ANY] (int64_t temp[$1_dim0]) {
  PyObject* seq = PySequence_Fast($input, "$symname: expected a sequence of ints");
  if (!seq) SWIG_fail;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  if (n > $1_dim0) {
    Py_DECREF(seq);
    SWIG_exception_fail(SWIG_ValueError, "$symname: more than $1_dim0 entries");
  }
  for (Py_ssize_t i = 0; i < $1_dim0; ++i) {
    if (i < n) {
      long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
      if (v == -1 && PyErr_Occurred()) {
        Py_DECREF(seq);
        SWIG_fail;
      }
      temp[i] = (int64_t)v;
    } else {
      temp[i] = 0;
    }
  }
  Py_DECREF(seq);
  $1 = temp;
}
%typemap(memberin) int64_t [ANY] { memcpy($1, $input, sizeof(int64_t) * $1_dim0); }
%typemap(out) int64_t [ANY] {
  $result = PyTuple_New($1_dim0);
  for (Py_ssize_t i = 0; i < $1_dim0; ++i)
    PyTuple_SET_ITEM($result, i, PyLong_FromLongLong((long long)$1[i]));
}

/* Structs passed as inputs (const) keep SWIG's plain pointer handling; the
 * non-const ones below are outputs. */
%typemap(in) const diffcoll_stats_t* = SWIGTYPE*;
%typemap(argout) const diffcoll_stats_t* "";
%typemap(in) const diffcoll_cfg_options_t* = SWIGTYPE*;
%typemap(argout) const diffcoll_cfg_options_t* "";

/* diffcoll_cfg_options_t* out (diffcoll_cfg_policy_get_options): like the
 * stats, a new struct owned by Python. */
%typemap(in, numinputs=0) diffcoll_cfg_options_t* (diffcoll_cfg_options_t temp) {
  diffcoll_cfg_options_t init = DIFFCOLL_CFG_OPTIONS_INIT;
  temp = init;
  $1 = &temp;
}
%typemap(argout) diffcoll_cfg_options_t* {
  diffcoll_cfg_options_t* copy = (diffcoll_cfg_options_t*)malloc(sizeof(diffcoll_cfg_options_t));
  if (!copy) SWIG_exception_fail(SWIG_MemoryError, "out of memory");
  *copy = *$1;
  $result = SWIG_Python_AppendOutput($result,
      SWIG_NewPointerObj(SWIG_as_voidptr(copy), $1_descriptor, SWIG_POINTER_OWN));
}

/* const char** out (a string the library owns): an extra str result (None
 * for NULL), copied. */
%typemap(in, numinputs=0) const char** (const char* temp = NULL) { $1 = ($1_ltype)&temp; }
%typemap(argout) const char** {
  PyObject* o;
  if (*$1) {
    o = PyUnicode_FromString(*$1);
    if (!o) SWIG_fail;
  } else {
    Py_INCREF(Py_None);
    o = Py_None;
  }
  $result = SWIG_Python_AppendOutput($result, o);
}

/* Output arrays (T* values, int32_t capacity): the capacity is the argument,
 * the values come back as an extra list of `capacity` entries. */
%define DIFFCOLL_PY_OUT_ARRAY(TYPE, NAME, CAP, FROM)
%typemap(in) (TYPE* NAME, int32_t CAP) (TYPE* buf = NULL) {
  long n = PyLong_AsLong($input);
  if (n == -1 && PyErr_Occurred()) SWIG_fail;
  if (n < 0 || n > INT32_MAX) SWIG_exception_fail(SWIG_ValueError, "$symname: bad $2_name");
  if (n > 0) {
    buf = (TYPE*)calloc((size_t)n, sizeof(TYPE));
    if (!buf) SWIG_exception_fail(SWIG_MemoryError, "out of memory");
  }
  $1 = buf;
  $2 = (int32_t)n;
}
%typemap(argout) (TYPE* NAME, int32_t CAP) {
  PyObject* list = PyList_New($2);
  if (!list) SWIG_fail;
  for (int32_t i = 0; i < $2; ++i) PyList_SET_ITEM(list, i, FROM($1[i]));
  $result = SWIG_Python_AppendOutput($result, list);
}
%typemap(freearg) (TYPE* NAME, int32_t CAP) { free(buf$argnum); }
%enddef
DIFFCOLL_PY_OUT_ARRAY(int32_t, branches, capacity, PyLong_FromLong)
DIFFCOLL_PY_OUT_ARRAY(double, weights, count, PyFloat_FromDouble)

/* Input arrays of structs (const T* items, int32_t count): a sequence (None
 * or empty: NULL, 0) whose items are T objects or, for branches and terms,
 * tuples (name, role) / (scale, plus, minus). */
%{
typedef int (*diffcoll_swig_item_fn)(PyObject* item, void* dst);

static void* diffcoll_swig_array(PyObject* input, size_t size, swig_type_info* type,
                                 diffcoll_swig_item_fn from_tuple, int32_t* count,
                                 PyObject** keep) {
  *count = 0;
  *keep = NULL;
  if (input == Py_None) return NULL;
  PyObject* seq = PySequence_Fast(input, "expected a sequence");
  if (!seq) return NULL;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  if (n > INT32_MAX) {
    Py_DECREF(seq);
    PyErr_SetString(PyExc_ValueError, "too many items");
    return NULL;
  }
  char* buf = (char*)calloc((size_t)(n > 0 ? n : 1), size);
  if (!buf) {
    Py_DECREF(seq);
    PyErr_NoMemory();
    return NULL;
  }
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* item = PySequence_Fast_GET_ITEM(seq, i);
    void* ptr = NULL;
    if (from_tuple && PyTuple_Check(item)) {
      if (!from_tuple(item, buf + (size_t)i * size)) goto fail;
    } else if (SWIG_IsOK(SWIG_ConvertPtr(item, &ptr, type, 0)) && ptr) {
      memcpy(buf + (size_t)i * size, ptr, size);
    } else {
      PyErr_Format(PyExc_TypeError, "item %zd: expected a %s%s", i, type->str,
                   from_tuple ? " or a tuple" : "");
      goto fail;
    }
  }
  *count = (int32_t)n;
  *keep = seq; /* keeps the items (and the names' UTF-8) alive during the call */
  return buf;
fail:
  free(buf);
  Py_DECREF(seq);
  return NULL;
}

static int diffcoll_swig_branch_from_tuple(PyObject* t, void* dst) {
  diffcoll_cfg_branch_t* b = (diffcoll_cfg_branch_t*)dst;
  PyObject* name;
  int role;
  if (!PyArg_ParseTuple(t, "Ui", &name, &role)) return 0;
  b->name = PyUnicode_AsUTF8(name); /* owned by the str, which the tuple keeps */
  b->role = role;
  return b->name != NULL;
}

static int diffcoll_swig_term_from_tuple(PyObject* t, void* dst) {
  diffcoll_cfg_term_t* term = (diffcoll_cfg_term_t*)dst;
  int plus, minus;
  if (!PyArg_ParseTuple(t, "dii", &term->scale, &plus, &minus)) return 0;
  term->plus = plus;
  term->minus = minus;
  return 1;
}

/* A tensor descriptor may also be a tuple (data, dtype, device_type,
 * device_id, shape, strides): what the Python layer builds for every call,
 * because making and filling a diffcoll_tensor_t object costs more than the
 * call itself. data is an integer address (None: NULL), shape and strides are
 * sequences of at most DIFFCOLL_MAX_DIMS ints of one length (strides in
 * elements). Returns 0 with a Python exception set when the tuple is not
 * one. */
static int diffcoll_swig_dims(PyObject* input, int64_t* dims, int32_t* ndim, const char* what) {
  PyObject* seq = PySequence_Fast(input, "a tensor tuple's shape and strides must be sequences");
  if (!seq) return 0;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
  if (n > DIFFCOLL_MAX_DIMS) {
    Py_DECREF(seq);
    PyErr_Format(PyExc_ValueError, "a tensor tuple's %s has %zd entries, at most %d", what, n,
                 DIFFCOLL_MAX_DIMS);
    return 0;
  }
  for (Py_ssize_t i = 0; i < DIFFCOLL_MAX_DIMS; ++i) {
    if (i >= n) {
      dims[i] = 0;
      continue;
    }
    long long v = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(seq, i));
    if (v == -1 && PyErr_Occurred()) {
      Py_DECREF(seq);
      return 0;
    }
    dims[i] = (int64_t)v;
  }
  Py_DECREF(seq);
  *ndim = (int32_t)n;
  return 1;
}

static int diffcoll_swig_tensor_from_tuple(PyObject* t, void* dst) {
  diffcoll_tensor_t* d = (diffcoll_tensor_t*)dst;
  if (PyTuple_GET_SIZE(t) != 6) {
    PyErr_SetString(PyExc_TypeError,
                    "a tensor tuple is (data, dtype, device_type, device_id, shape, strides)");
    return 0;
  }
  PyObject* data = PyTuple_GET_ITEM(t, 0);
  d->data = data == Py_None ? NULL : PyLong_AsVoidPtr(data);
  d->dtype = (int32_t)PyLong_AsLong(PyTuple_GET_ITEM(t, 1));
  d->device_type = (int32_t)PyLong_AsLong(PyTuple_GET_ITEM(t, 2));
  d->device_id = (int32_t)PyLong_AsLong(PyTuple_GET_ITEM(t, 3));
  if (PyErr_Occurred()) return 0;
  int32_t nstrides = 0;
  if (!diffcoll_swig_dims(PyTuple_GET_ITEM(t, 4), d->shape, &d->ndim, "shape") ||
      !diffcoll_swig_dims(PyTuple_GET_ITEM(t, 5), d->strides, &nstrides, "strides"))
    return 0;
  if (nstrides != d->ndim) {
    PyErr_Format(PyExc_ValueError, "a tensor tuple has %d dimensions but %d strides",
                 (int)d->ndim, (int)nstrides);
    return 0;
  }
  return 1;
}
%}

/* const diffcoll_tensor_t* (one tensor): a tensor tuple (see above), a
 * diffcoll_tensor_t object, or None (NULL). */
%typemap(in) const diffcoll_tensor_t* (diffcoll_tensor_t temp, void* argp = NULL, int res = 0) {
  if (PyTuple_Check($input)) {
    if (!diffcoll_swig_tensor_from_tuple($input, &temp)) SWIG_fail;
    $1 = &temp;
  } else {
    res = SWIG_ConvertPtr($input, &argp, $1_descriptor, 0);
    if (!SWIG_IsOK(res)) {
      SWIG_exception_fail(SWIG_ArgError(res),
                          "in method '$symname', argument $argnum: expected a tensor tuple, a diffcoll_tensor_t or None");
    }
    $1 = ($1_ltype)argp;
  }
}
%define DIFFCOLL_PY_IN_ARRAY(TYPE, NAME, COUNT, FROM_TUPLE)
%typemap(in) (const TYPE* NAME, int32_t COUNT) (void* buf = NULL, PyObject* keep = NULL) {
  buf = diffcoll_swig_array($input, sizeof(TYPE), $1_descriptor, FROM_TUPLE, &$2, &keep);
  if (!buf && PyErr_Occurred()) SWIG_fail;
  $1 = ($1_ltype)buf;
}
%typemap(freearg) (const TYPE* NAME, int32_t COUNT) {
  free(buf$argnum);
  Py_XDECREF(keep$argnum);
}
%typemap(typecheck) (const TYPE* NAME, int32_t COUNT) {
  $1 = ($input == Py_None || PySequence_Check($input)) ? 1 : 0;
}
%enddef
DIFFCOLL_PY_IN_ARRAY(diffcoll_cfg_branch_t, branches, num_branches, diffcoll_swig_branch_from_tuple)
DIFFCOLL_PY_IN_ARRAY(diffcoll_cfg_term_t, terms, num_terms, diffcoll_swig_term_from_tuple)
DIFFCOLL_PY_IN_ARRAY(diffcoll_tensor_t, preds, num_preds, diffcoll_swig_tensor_from_tuple)
DIFFCOLL_PY_IN_ARRAY(diffcoll_tensor_t, local_preds, local_count, diffcoll_swig_tensor_from_tuple)

/* Two input arrays of one count (const T* A, const T* B, int32_t count):
 * one argument, a pair (A, B) of sequences of equal length. (SWIG's Python
 * module converts one target-language argument per typemap, so the two
 * sequences travel as one pair.) */
%define DIFFCOLL_PY_IN_ARRAY_PAIR(TYPE, NAME_A, NAME_B, COUNT, FROM_TUPLE)
%typemap(in) (const TYPE* NAME_A, const TYPE* NAME_B, int32_t COUNT)
    (void* buf_a = NULL, PyObject* keep_a = NULL, void* buf_b = NULL, PyObject* keep_b = NULL) {
  PyObject* a;
  PyObject* b;
  int32_t count_b = 0;
  if (!PyArg_ParseTuple($input, "OO:$symname", &a, &b)) SWIG_fail;
  buf_a = diffcoll_swig_array(a, sizeof(TYPE), $1_descriptor, FROM_TUPLE, &$3, &keep_a);
  if (!buf_a && PyErr_Occurred()) SWIG_fail;
  buf_b = diffcoll_swig_array(b, sizeof(TYPE), $2_descriptor, FROM_TUPLE, &count_b, &keep_b);
  if (!buf_b && PyErr_Occurred()) SWIG_fail;
  if (count_b != $3) {
    PyErr_Format(PyExc_ValueError, "$symname: %d $1_name but %d $2_name", (int)$3, (int)count_b);
    SWIG_fail;
  }
  $1 = ($1_ltype)buf_a;
  $2 = ($2_ltype)buf_b;
}
%typemap(freearg) (const TYPE* NAME_A, const TYPE* NAME_B, int32_t COUNT) {
  free(buf_a$argnum);
  Py_XDECREF(keep_a$argnum);
  free(buf_b$argnum);
  Py_XDECREF(keep_b$argnum);
}
%typemap(typecheck) (const TYPE* NAME_A, const TYPE* NAME_B, int32_t COUNT) {
  $1 = (PyTuple_Check($input) && PyTuple_GET_SIZE($input) == 2) ? 1 : 0;
}
%enddef
DIFFCOLL_PY_IN_ARRAY_PAIR(diffcoll_tensor_t, inputs, outputs, count, diffcoll_swig_tensor_from_tuple)
DIFFCOLL_PY_IN_ARRAY_PAIR(diffcoll_tensor_t, buffer0, buffer1, count, diffcoll_swig_tensor_from_tuple)


/* DLPack: read a "dltensor" capsule without taking ownership (the capsule
 * keeps the producer's DLManagedTensor alive; the caller keeps the capsule
 * alive for the duration of the diffcoll call). Returns (data, device_type,
 * device_id, code, bits, lanes, shape, strides_or_None); data already
 * includes byte_offset. */
%{
typedef struct {
  void* data;
  struct { int32_t device_type; int32_t device_id; } device;
  int32_t ndim;
  struct { uint8_t code; uint8_t bits; uint16_t lanes; } dtype;
  int64_t* shape;
  int64_t* strides;
  uint64_t byte_offset;
} diffcoll_swig_dltensor;

static PyObject* diffcoll_swig_dlpack_describe(PyObject* capsule) {
  if (!PyCapsule_IsValid(capsule, "dltensor")) {
    PyErr_SetString(PyExc_ValueError,
                    "expected an unconsumed DLPack capsule named \"dltensor\"");
    return NULL;
  }
  /* DLManagedTensor starts with its DLTensor. */
  diffcoll_swig_dltensor* t = (diffcoll_swig_dltensor*)PyCapsule_GetPointer(capsule, "dltensor");
  if (!t) return NULL;
  PyObject* shape = PyTuple_New(t->ndim > 0 ? t->ndim : 0);
  if (!shape) return NULL;
  for (int32_t i = 0; i < t->ndim; ++i)
    PyTuple_SET_ITEM(shape, i, PyLong_FromLongLong((long long)t->shape[i]));
  PyObject* strides;
  if (t->strides && t->ndim > 0) {
    strides = PyTuple_New(t->ndim);
    if (!strides) { Py_DECREF(shape); return NULL; }
    for (int32_t i = 0; i < t->ndim; ++i)
      PyTuple_SET_ITEM(strides, i, PyLong_FromLongLong((long long)t->strides[i]));
  } else {
    Py_INCREF(Py_None);
    strides = Py_None;
  }
  void* data = (char*)t->data + t->byte_offset;
  return Py_BuildValue("(NiiiiiNN)", PyLong_FromVoidPtr(data), (int)t->device.device_type,
                       (int)t->device.device_id, (int)t->dtype.code, (int)t->dtype.bits,
                       (int)t->dtype.lanes, shape, strides);
}
%}
/* Runs with the GIL held (it uses the Python C API). */
%nothread diffcoll_swig_dlpack_describe;
PyObject* diffcoll_swig_dlpack_describe(PyObject* capsule);

#endif /* SWIGPYTHON */

/* ------------------------------------------------------------------------ */
/* Go                                                                         */
/* ------------------------------------------------------------------------ */
#ifdef SWIGGO

/* T** out: a pointer to the Swigcptr type SWIG makes for T, which the
 * library writes the address to (0 when it gives no object). Any later T**
 * without its own line here falls back to *uintptr. */
%typemap(gotype) SWIGTYPE** "*uintptr"
%typemap(gotype) diffcoll_comm_t** "*SwigcptrStruct_SS_diffcoll_comm"
%typemap(gotype) const diffcoll_api_t** "*SwigcptrDiffcoll_api_t"
%typemap(gotype) diffcoll_cfg_policy_t** "*SwigcptrStruct_SS_diffcoll_cfg_policy"
%typemap(gotype) diffcoll_halo_plan_t** "*SwigcptrStruct_SS_diffcoll_halo_plan"
%typemap(in) SWIGTYPE** %{ $1 = *($&1_ltype)&$input; %}

/* int32_t* / int64_t* out: a *int32 / *int64 (Go memory holding no
 * pointers, so cgo allows it). */
%typemap(gotype) int32_t* "*int32"
%typemap(in) int32_t* %{ $1 = *(int32_t**)&$input; %}
%typemap(gotype) int64_t* "*int64"
%typemap(in) int64_t* %{ $1 = *(int64_t**)&$input; %}

/* const char** out (a string the library owns): a *string, copied into Go
 * memory. */
%typemap(gotype) const char** "*string"
%typemap(imtype) const char** "*string"
%typemap(in) const char** (const char* temp = NULL) %{ $1 = ($1_ltype)&temp; %}
%typemap(argout) const char**
%{
  if ($input) *$input = Swig_AllocateString(temp$argnum ? temp$argnum : "", temp$argnum ? strlen(temp$argnum) : 0);
%}
%typemap(goargout) const char**
%{
  if $input != nil {
    *$input = swigCopyString(*$input)
  }
%}

/* Output arrays (T* values, int32_t capacity): a slice whose length is the
 * capacity. */
%typemap(gotype) (int32_t* branches, int32_t capacity) "[]int32"
%typemap(gotype) (double* weights, int32_t count) "[]float64"
%typemap(in) (int32_t* branches, int32_t capacity), (double* weights, int32_t count)
%{
  $1 = ($1_ltype)$input.array;
  $2 = ($2_ltype)$input.len;
%}

/* Input arrays of structs (branches, terms, tensors): C arrays made with the
 * *_array helpers below (new_*_array, *_array_setitem, delete_*_array),
 * passed with their count. */

/* (const int32_t* ranks, int32_t count): a []int32. */
%typemap(gotype) (const int32_t* ranks, int32_t count) "[]int32"
%typemap(in) (const int32_t* ranks, int32_t count)
%{
  $1 = ($1_ltype)$input.array;
  $2 = ($2_ltype)$input.len;
%}

/* int64_t shape[DIFFCOLL_MAX_DIMS], strides[...]: a []int64 of at most
 * DIFFCOLL_MAX_DIMS entries (the rest zero-filled); read back as a fresh
 * []int64 of DIFFCOLL_MAX_DIMS entries. */
%typemap(gotype) int64_t [ANY] "[]int64"
%typemap(imtype) int64_t [ANY] "*int64"
%typemap(goin) int64_t [ANY]
%{
  {
    if len($input) > $1_dim0 {
      panic("diffcoll: more than $1_dim0 dimensions")
    }
    var full [$1_dim0]int64
    copy(full[:], $input)
    $result = &full[0]
  }
%}
%typemap(in) int64_t [ANY] %{ $1 = *($1_ltype*)&$input; %}
%typemap(memberin) int64_t [ANY] %{ memcpy($1, $input, sizeof(int64_t) * $1_dim0); %}
%typemap(out) int64_t [ANY] %{ *($1_ltype*)&$result = $1; %}
%typemap(goout) int64_t [ANY]
%{
  {
    src := (*[$1_dim0]int64)(unsafe.Pointer($1))
    $result = make([]int64, $1_dim0)
    copy($result, src[:])
  }
%}

/* The library is found through cgo's flags: CGO_CFLAGS=-I<include dir>
 * and CGO_LDFLAGS=-L<lib dir> when it is not installed system-wide. */
%insert(cgo_comment_typedefs) %{
#cgo LDFLAGS: -ldiffcoll
%}

#endif /* SWIGGO */

/* The function table (diffcoll_get_api) serves C programs that dlopen the
 * library; here it is read-only and opaque but for its struct_size and
 * version: its function pointers (every field named diffcoll_*, including
 * those added later) are not callable from Python or Go, and the table
 * belongs to the library. */
%rename("$ignore", regextarget=1, fullname=1) "^diffcoll_api_t::diffcoll_";
%immutable diffcoll_api_t::struct_size;
%immutable diffcoll_api_t::version;
%nodefaultctor diffcoll_api_t;
%nodefaultdtor diffcoll_api_t;

%include "diffcoll/diffcoll.h"

/* C arrays of the structs that functions take as arrays (and of int32_t and
 * double), for Go and for raw use: new_tensor_array(n),
 * tensor_array_setitem(a, i, t), tensor_array_getitem(a, i),
 * delete_tensor_array(a), and so on. */
%include <carrays.i>
/* A copy out of a branch array would share (and free) the original's name. */
%ignore cfg_branch_array_getitem;
%array_functions(diffcoll_tensor_t, tensor_array)
%array_functions(diffcoll_cfg_branch_t, cfg_branch_array)
%array_functions(diffcoll_cfg_term_t, cfg_term_array)
