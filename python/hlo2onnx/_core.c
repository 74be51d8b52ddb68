/* _core.c - the CPython binding of the hlo2onnx C core.
 *
 * One function, convert(), wraps h2o_convert (src/hlo2onnx.h).  It is the only
 * place where Python objects meet the core, so it owns three rules:
 *
 *  - Weights are never copied: each parameter is a Python object exporting
 *    the buffer protocol (normally a NumPy view of a JAX array's memory); we
 *    take its buffer with PyObject_GetBuffer and hand the pointer straight to
 *    the core, which streams the bytes into the output.
 *  - The GIL is released for the whole conversion.  Everything the core
 *    reads must then stay valid without Python's help: the buffers stay
 *    acquired until the call returns, and every string (names, paths, option
 *    values) is copied into memory this file owns first, so another thread
 *    mutating the options dict or the lists cannot pull them away.
 *  - Every path frees everything: all allocations go through one Scratch
 *    list, all acquired buffers are counted, and both are released at the
 *    single exit of convert().
 *
 * Errors of the conversion are raised as hlo2onnx.errors classes (built in
 * Python by hlo2onnx.errors._from_result, so the class hierarchy lives in one
 * place); errors in the arguments raise TypeError/ValueError here.
 *
 * Only CPython's limited API of 3.11 is used (the stable ABI: one abi3 wheel
 * serves every CPython >= 3.11).  The wheel build also defines it through
 * CMake (USE_SABI); defining it here keeps every build of this file honest.
 * Hence no tp_name, no PySequence_Fast, no PyTuple_GET_ITEM-style macros.
 */
#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030B0000
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hlo2onnx.h"

/* ------------------------------------------------------------------ */
/* Scratch: a list of malloc'd blocks freed together.                   */

typedef struct Scratch {
  void **blocks;
  size_t len, cap;
} Scratch;

static void *scratch_alloc(Scratch *s, size_t size) {
  if (s->len == s->cap) {
    size_t cap = s->cap ? 2 * s->cap : 16;
    void **grown = realloc(s->blocks, cap * sizeof *grown);
    if (!grown) {
      PyErr_NoMemory();
      return NULL;
    }
    s->blocks = grown;
    s->cap = cap;
  }
  void *p = calloc(1, size ? size : 1);
  if (!p) {
    PyErr_NoMemory();
    return NULL;
  }
  s->blocks[s->len++] = p;
  return p;
}

static void scratch_free(Scratch *s) {
  for (size_t i = 0; i < s->len; i++) free(s->blocks[i]);
  free(s->blocks);
  s->blocks = NULL;
  s->len = s->cap = 0;
}

/* ------------------------------------------------------------------ */
/* Limited-API helpers.                                                  */

/* Raises TypeError "<what>, not <type of obj>" (tp_name is not part of the
 * limited API; PyType_GetName is, since 3.11). */
static void raise_type_error(const char *what, PyObject *obj) {
  PyObject *type_name = PyType_GetName(Py_TYPE(obj));
  if (!type_name) return;
  PyErr_Format(PyExc_TypeError, "%s, not %U", what, type_name);
  Py_DECREF(type_name);
}

/* v as a new reference to a tuple, or NULL with TypeError `msg` when v is
 * not iterable (what PySequence_Fast did; its macros are not in the limited
 * API).  A copy also keeps the items stable while we read them. */
static PyObject *as_tuple(PyObject *v, const char *msg) {
  if (PyTuple_Check(v)) return Py_NewRef(v);
  PyObject *t = PySequence_Tuple(v);
  if (!t && PyErr_ExceptionMatches(PyExc_TypeError))
    PyErr_SetString(PyExc_TypeError, msg);
  return t;
}

/* A copy of a str (UTF-8, must not contain NUL) in scratch memory. */
static const char *scratch_str(Scratch *s, PyObject *obj, const char *what) {
  if (!PyUnicode_Check(obj)) {
    char msg[160];
    snprintf(msg, sizeof msg, "%s must be a str", what);
    raise_type_error(msg, obj);
    return NULL;
  }
  Py_ssize_t n;
  const char *u = PyUnicode_AsUTF8AndSize(obj, &n);
  if (!u) return NULL;
  if (memchr(u, '\0', (size_t)n)) {
    PyErr_Format(PyExc_ValueError, "%s must not contain NUL characters", what);
    return NULL;
  }
  char *copy = scratch_alloc(s, (size_t)n + 1);
  if (!copy) return NULL;
  memcpy(copy, u, (size_t)n);
  return copy;
}

/* ------------------------------------------------------------------ */
/* Options: the dict keys are the h2o_options field names.              */

/* `what` names the value in messages, e.g. "option opset". */
static int opt_int(PyObject *v, const char *what, long lo, long hi, int *out) {
  if (!PyLong_Check(v)) { /* bool is a subclass of int: accepted */
    char msg[160];
    snprintf(msg, sizeof msg, "%s must be an int", what);
    raise_type_error(msg, v);
    return -1;
  }
  long x = PyLong_AsLong(v);
  if (x == -1 && PyErr_Occurred()) return -1;
  if (x < lo || x > hi) {
    PyErr_Format(PyExc_ValueError, "%s=%ld is out of range [%ld, %ld]",
                 what, x, lo, hi);
    return -1;
  }
  *out = (int)x;
  return 0;
}

static int opt_bool(PyObject *v, const char *key, int *out) {
  int t = PyObject_IsTrue(v);
  if (t < 0) return -1;
  *out = t;
  return 0;
}

/* A str option; None leaves the default (NULL). */
static int opt_str(Scratch *s, PyObject *v, const char *key, const char **out) {
  if (v == Py_None) {
    *out = NULL;
    return 0;
  }
  char what[64];
  snprintf(what, sizeof what, "option %s", key);
  *out = scratch_str(s, v, what);
  return *out ? 0 : -1;
}

static int opt_names(Scratch *s, PyObject *v, const char *key,
                     const char *const **out, int *n_out) {
  if (v == Py_None) return 0;
  PyObject *seq = as_tuple(v, "names must be a sequence of str");
  if (!seq) return -1;
  Py_ssize_t n = PyTuple_Size(seq);
  if (n > INT_MAX) {
    Py_DECREF(seq);
    PyErr_Format(PyExc_ValueError, "option %s: too many names", key);
    return -1;
  }
  const char **names = scratch_alloc(s, (size_t)n * sizeof *names);
  int rc = names ? 0 : -1;
  for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
    char what[64];
    snprintf(what, sizeof what, "option %s[%zd]", key, i);
    names[i] = scratch_str(s, PyTuple_GetItem(seq, i), what);
    if (!names[i]) rc = -1;
  }
  Py_DECREF(seq);
  if (rc == 0) {
    *out = names;
    *n_out = (int)n;
  }
  return rc;
}

/* A list of (index, axis, name) triples. */
static int opt_dims(Scratch *s, PyObject *v, const char *key,
                    const h2o_dim_name **out, int *n_out) {
  if (v == Py_None) return 0;
  PyObject *seq = as_tuple(v, "dims must be a sequence of (index, axis, name)");
  if (!seq) return -1;
  Py_ssize_t n = PyTuple_Size(seq);
  if (n > INT_MAX) {
    Py_DECREF(seq);
    PyErr_Format(PyExc_ValueError, "option %s: too many entries", key);
    return -1;
  }
  h2o_dim_name *dims = scratch_alloc(s, (size_t)n * sizeof *dims);
  int rc = dims ? 0 : -1;
  for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
    PyObject *item = PyTuple_GetItem(seq, i);
    PyObject *index, *axis, *name;
    if (!PyTuple_Check(item) || PyTuple_Size(item) != 3) {
      PyErr_Format(PyExc_TypeError,
                   "option %s[%zd] must be a tuple (index, axis, name)", key, i);
      rc = -1;
      break;
    }
    index = PyTuple_GetItem(item, 0);
    axis = PyTuple_GetItem(item, 1);
    name = PyTuple_GetItem(item, 2);
    char what[64];
    snprintf(what, sizeof what, "option %s[%zd]", key, i);
    if (opt_int(index, what, 0, INT_MAX, &dims[i].index) < 0 ||
        opt_int(axis, what, 0, INT_MAX, &dims[i].dim) < 0 ||
        !(dims[i].name = scratch_str(s, name, what)))
      rc = -1;
  }
  Py_DECREF(seq);
  if (rc == 0) {
    *out = dims;
    *n_out = (int)n;
  }
  return rc;
}

/* progress_fn for a Python callable callback(done, total): the core calls it
 * with the GIL released, so it takes the GIL.  An exception in the callback
 * goes to sys.unraisablehook and the conversion goes on. */
static void progress_trampoline(void *user, uint64_t done, uint64_t total) {
  PyGILState_STATE gil = PyGILState_Ensure();
  PyObject *r = PyObject_CallFunction((PyObject *)user, "KK", (unsigned long long)done,
                                      (unsigned long long)total);
  if (r) Py_DECREF(r);
  else PyErr_WriteUnraisable((PyObject *)user);
  PyGILState_Release(gil);
}

/* A list of (key, value) str pairs: the model's metadata_props.  (The
 * stable ABI has no PySequence_Fast macros: items are fetched one by one.) */
static int opt_metadata(Scratch *s, PyObject *v, const char *key,
                        const h2o_metadata **out, int *n_out) {
  if (v == Py_None) return 0;
  if (!PyList_Check(v) && !PyTuple_Check(v)) {
    PyErr_Format(PyExc_TypeError, "option %s must be a list of (key, value) pairs", key);
    return -1;
  }
  Py_ssize_t n = PySequence_Size(v);
  if (n < 0) return -1;
  if (n > INT_MAX) {
    PyErr_Format(PyExc_ValueError, "option %s: too many entries", key);
    return -1;
  }
  h2o_metadata *items = scratch_alloc(s, (size_t)(n ? n : 1) * sizeof *items);
  int rc = items ? 0 : -1;
  for (Py_ssize_t i = 0; rc == 0 && i < n; i++) {
    PyObject *item = PySequence_GetItem(v, i); /* a new reference */
    if (!item) {
      rc = -1;
      break;
    }
    char what[64];
    snprintf(what, sizeof what, "option %s[%zd]", key, i);
    if (!PyTuple_Check(item) || PyTuple_Size(item) != 2) {
      PyErr_Format(PyExc_TypeError, "%s must be a tuple (key, value)", what);
      rc = -1;
    } else if (!(items[i].key = scratch_str(s, PyTuple_GetItem(item, 0), what)) ||
               !(items[i].value = scratch_str(s, PyTuple_GetItem(item, 1), what))) {
      rc = -1;
    }
    Py_DECREF(item);
  }
  if (rc == 0) {
    *out = items;
    *n_out = (int)n;
  }
  return rc;
}

static int parse_options(Scratch *s, PyObject *dict, h2o_options *o) {
  h2o_options_init(o);
  if (dict == Py_None) return 0;
  if (!PyDict_Check(dict)) {
    PyErr_SetString(PyExc_TypeError, "options must be a dict");
    return -1;
  }
  /* Keys are read from a snapshot of the items: the dict may change later
   * (another thread) without affecting what we hand to the core. */
  PyObject *items = PyDict_Items(dict);
  if (!items) return -1;
  int rc = 0;
  for (Py_ssize_t i = 0; rc == 0 && i < PyList_Size(items); i++) {
    PyObject *kv = PyList_GetItem(items, i);
    PyObject *k = PyTuple_GetItem(kv, 0), *v = PyTuple_GetItem(kv, 1);
    const char *key = PyUnicode_Check(k) ? PyUnicode_AsUTF8AndSize(k, NULL) : NULL;
    if (!key) {
      if (!PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "option names must be str");
      rc = -1;
      break;
    }
    if (!strcmp(key, "opset")) {
      rc = v == Py_None ? 0 : opt_int(v, "option opset", 0, 1000, &o->opset);
    } else if (!strcmp(key, "shape_info")) {
      rc = opt_bool(v, key, &o->shape_info);
    } else if (!strcmp(key, "optimize")) {
      rc = opt_bool(v, key, &o->optimize);
    } else if (!strcmp(key, "local_functions")) {
      rc = opt_int(v, "option local_functions", 0, 1000000, &o->local_functions);
    } else if (!strcmp(key, "progress")) {
      rc = opt_bool(v, key, &o->progress);
    } else if (!strcmp(key, "progress_callback")) {
      /* borrowed: core_convert holds a reference for the whole call */
      if (v == Py_None) continue;
      if (!PyCallable_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "option progress_callback must be callable");
        rc = -1;
        break;
      }
      o->progress_fn = progress_trampoline;
      o->progress_user = v;
    } else if (!strcmp(key, "external_threshold")) {
      if (v == Py_None) continue;
      if (!PyLong_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "option external_threshold must be an int");
        rc = -1;
        break;
      }
      unsigned long long x = PyLong_AsUnsignedLongLong(v);
      if (x == (unsigned long long)-1 && PyErr_Occurred()) {
        rc = -1;
        break;
      }
      o->external_threshold = (size_t)x;
    } else if (!strcmp(key, "external_data")) {
      rc = opt_str(s, v, key, &o->external_data);
    } else if (!strcmp(key, "source_name")) {
      rc = opt_str(s, v, key, &o->source_name);
    } else if (!strcmp(key, "graph_name")) {
      rc = opt_str(s, v, key, &o->graph_name);
    } else if (!strcmp(key, "doc_string")) {
      rc = opt_str(s, v, key, &o->doc_string);
    } else if (!strcmp(key, "model_version")) {
      if (v == Py_None) continue;
      if (!PyLong_Check(v)) {
        PyErr_SetString(PyExc_TypeError, "option model_version must be an int");
        rc = -1;
        break;
      }
      o->model_version = PyLong_AsLongLong(v);
      if (o->model_version == -1 && PyErr_Occurred()) rc = -1;
    } else if (!strcmp(key, "metadata")) {
      rc = opt_metadata(s, v, key, &o->metadata, &o->n_metadata);
    } else if (!strcmp(key, "dump_after")) {
      rc = opt_str(s, v, key, &o->dump_after);
    } else if (!strcmp(key, "input_names")) {
      rc = opt_names(s, v, key, &o->input_names, &o->n_input_names);
    } else if (!strcmp(key, "output_names")) {
      rc = opt_names(s, v, key, &o->output_names, &o->n_output_names);
    } else if (!strcmp(key, "input_dims")) {
      rc = opt_dims(s, v, key, &o->input_dims, &o->n_input_dims);
    } else if (!strcmp(key, "output_dims")) {
      rc = opt_dims(s, v, key, &o->output_dims, &o->n_output_dims);
    } else {
      PyErr_Format(PyExc_TypeError, "unknown option %R", k);
      rc = -1;
    }
  }
  Py_DECREF(items);
  return rc;
}

/* ------------------------------------------------------------------ */
/* Errors: hlo2onnx.errors._from_result(status, message, n_errors) builds  */
/* the exception object; we raise it.                                    */

static void raise_conversion_error(const h2o_result *res) {
  PyObject *mod = PyImport_ImportModule("hlo2onnx.errors");
  if (!mod) return;
  PyObject *msg = PyUnicode_DecodeUTF8(res->message ? res->message : "",
                                       res->message ? (Py_ssize_t)strlen(res->message) : 0,
                                       "replace");
  PyObject *exc = msg ? PyObject_CallMethod(mod, "_from_result", "iOi", res->status,
                                            msg, res->n_errors)
                      : NULL;
  Py_XDECREF(msg);
  Py_DECREF(mod);
  if (!exc) return;
  PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
  Py_DECREF(exc);
}

/* Diagnostics of a successful conversion (warnings) become a Python warning. */
static int warn_messages(const h2o_result *res) {
  if (!res->message || !res->message[0]) return 0;
  PyObject *mod = PyImport_ImportModule("hlo2onnx.errors");
  if (!mod) return -1;
  PyObject *cat = PyObject_GetAttrString(mod, "ConversionWarning");
  Py_DECREF(mod);
  if (!cat) return -1;
  int rc = PyErr_WarnEx(cat, res->message, 1);
  Py_DECREF(cat);
  return rc;
}

/* ------------------------------------------------------------------ */
/* convert(text, params, out_path, options) -> bytes | None              */

PyDoc_STRVAR(convert_doc,
"convert(text, params, out_path, options) -> bytes | None\n"
"\n"
"Converts StableHLO MLIR text (str or a bytes-like object) into an ONNX\n"
"model.  params is a list of (arg_index, buffer, name) triples binding\n"
"C-contiguous buffers to arguments of the entry function; they are read in\n"
"place, never copied.  With out_path (str or os.PathLike) the model is\n"
"written there and None is returned; with out_path None the model bytes are\n"
"returned.  options is a dict of h2o_options fields (or None); its\n"
"progress_callback(done, total) receives the tensor bytes written.  The GIL is\n"
"released during the conversion.  Raises hlo2onnx.ConversionError (or a\n"
"subclass) when the core reports an error.");

static PyObject *core_convert(PyObject *self, PyObject *args) {
  PyObject *text_obj, *params_obj, *out_obj, *opts_obj;
  if (!PyArg_ParseTuple(args, "OOOO:convert", &text_obj, &params_obj, &out_obj,
                        &opts_obj))
    return NULL;

  PyObject *ret = NULL;
  Scratch scratch = {0};
  Py_buffer text_view = {0};
  int have_text_view = 0;
  Py_buffer *views = NULL;
  Py_ssize_t n_views = 0;
  PyObject *params_seq = NULL;
  PyObject *out_bytes = NULL;
  PyObject *callback = NULL; /* options["progress_callback"], held during the call */
  h2o_result res;
  memset(&res, 0, sizeof res);

  /* The text: a str (its UTF-8 form, cached by the str object we hold a
   * reference to for the whole call) or any contiguous buffer. */
  const char *text;
  size_t text_len;
  if (PyUnicode_Check(text_obj)) {
    Py_ssize_t n;
    text = PyUnicode_AsUTF8AndSize(text_obj, &n);
    if (!text) goto done;
    text_len = (size_t)n;
  } else {
    if (!PyObject_CheckBuffer(text_obj)) {
      raise_type_error("text must be str or bytes", text_obj);
      goto done;
    }
    if (PyObject_GetBuffer(text_obj, &text_view, PyBUF_C_CONTIGUOUS) < 0) goto done;
    have_text_view = 1;
    text = text_view.buf;
    text_len = (size_t)text_view.len;
  }

  /* The output path: None = in memory. */
  const char *out_path = NULL;
  if (out_obj != Py_None) {
    if (!PyUnicode_FSConverter(out_obj, &out_bytes)) goto done;
    out_path = PyBytes_AsString(out_bytes);
    if (!out_path) goto done;
  }

  h2o_options opts;
  if (parse_options(&scratch, opts_obj, &opts) < 0) goto done;
  callback = (PyObject *)opts.progress_user;
  Py_XINCREF(callback);

  /* Parameters: acquire every buffer; they stay acquired until the end. */
  params_seq = as_tuple(params_obj, "params must be a sequence of (arg_index, buffer, name)");
  if (!params_seq) goto done;
  Py_ssize_t n_params = PyTuple_Size(params_seq);
  if (n_params > INT_MAX) {
    PyErr_SetString(PyExc_ValueError, "too many params");
    goto done;
  }
  h2o_param *params = scratch_alloc(&scratch, (size_t)n_params * sizeof *params);
  views = n_params ? scratch_alloc(&scratch, (size_t)n_params * sizeof *views) : NULL;
  if (!params || (n_params && !views)) goto done;
  for (Py_ssize_t i = 0; i < n_params; i++) {
    PyObject *item = PyTuple_GetItem(params_seq, i);
    if (!PyTuple_Check(item) || PyTuple_Size(item) != 3) {
      PyErr_Format(PyExc_TypeError,
                   "params[%zd] must be a tuple (arg_index, buffer, name)", i);
      goto done;
    }
    char what[48];
    snprintf(what, sizeof what, "params[%zd] arg_index", i);
    if (opt_int(PyTuple_GetItem(item, 0), what, 0, INT_MAX, &params[i].arg_index) < 0)
      goto done;
    PyObject *name = PyTuple_GetItem(item, 2);
    if (name != Py_None) {
      snprintf(what, sizeof what, "params[%zd] name", i);
      if (!(params[i].name = scratch_str(&scratch, name, what))) goto done;
    }
    /* No PyBUF_FORMAT: the core reads raw little-endian bytes, so any
     * element type (bfloat16, float8, bool) is acceptable here. */
    PyObject *buf = PyTuple_GetItem(item, 1);
    if (!PyObject_CheckBuffer(buf)) {
      char msg[200];
      snprintf(msg, sizeof msg, "params[%zd] (%.100s): expected a buffer (e.g. a NumPy array)",
               i, params[i].name ? params[i].name : "unnamed");
      raise_type_error(msg, buf);
      goto done;
    }
    if (PyObject_GetBuffer(buf, &views[i], PyBUF_C_CONTIGUOUS) < 0) {
      PyErr_Format(PyExc_ValueError, "params[%zd] (%s): the buffer must be C-contiguous",
                   i, params[i].name ? params[i].name : "unnamed");
      goto done;
    }
    n_views++;
    params[i].data = views[i].buf;
    params[i].nbytes = (size_t)views[i].len;
  }

  int status;
  Py_BEGIN_ALLOW_THREADS
  status = h2o_convert(text, text_len, &opts, params, (int)n_params, out_path, &res);
  Py_END_ALLOW_THREADS

  if (status != H2O_OK) {
    raise_conversion_error(&res);
    goto done;
  }
  if (warn_messages(&res) < 0) goto done;
  if (out_path) {
    ret = Py_NewRef(Py_None);
  } else {
    ret = PyBytes_FromStringAndSize(res.bytes ? res.bytes : "", (Py_ssize_t)res.nbytes);
  }

done:
  h2o_result_free(&res);
  for (Py_ssize_t i = 0; i < n_views; i++) PyBuffer_Release(&views[i]);
  if (have_text_view) PyBuffer_Release(&text_view);
  Py_XDECREF(params_seq);
  Py_XDECREF(out_bytes);
  Py_XDECREF(callback);
  scratch_free(&scratch);
  return ret;
}

/* A debugging aid for the tests: the address and size of the buffer that
 * convert() would hand to the core for `obj`, to check that no copy was made
 * on the way from a JAX array. */
static PyObject *core_buffer_info(PyObject *self, PyObject *obj) {
  Py_buffer view;
  if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS) < 0) return NULL;
  PyObject *r = Py_BuildValue("(Kn)", (unsigned long long)(uintptr_t)view.buf, view.len);
  PyBuffer_Release(&view);
  return r;
}

static PyMethodDef core_methods[] = {
    {"convert", core_convert, METH_VARARGS, convert_doc},
    {"_buffer_info", core_buffer_info, METH_O,
     "_buffer_info(obj) -> (address, nbytes) of obj's C-contiguous buffer"},
    {NULL, NULL, 0, NULL}};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT, "hlo2onnx._core",
    "The hlo2onnx C core: StableHLO MLIR text to ONNX (see hlo2onnx.h).", -1,
    core_methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__core(void) {
  PyObject *m = PyModule_Create(&core_module);
  if (!m) return NULL;
  if (PyModule_AddStringConstant(m, "VERSION", H2O_VERSION) < 0 ||
      PyModule_AddIntConstant(m, "DEFAULT_OPSET", H2O_DEFAULT_OPSET) < 0 ||
      PyModule_AddIntConstant(m, "OK", H2O_OK) < 0 ||
      PyModule_AddIntConstant(m, "EUSAGE", H2O_EUSAGE) < 0 ||
      PyModule_AddIntConstant(m, "EINPUT", H2O_EINPUT) < 0 ||
      PyModule_AddIntConstant(m, "EUNSUPPORTED", H2O_EUNSUPPORTED) < 0 ||
      PyModule_AddIntConstant(m, "EIO", H2O_EIO) < 0 ||
      PyModule_AddIntConstant(m, "EINTERNAL", H2O_EINTERNAL) < 0 ||
      PyModule_AddIntConstant(m, "ENOMEM", H2O_ENOMEM) < 0) {
    Py_DECREF(m);
    return NULL;
  }
  return m;
}
