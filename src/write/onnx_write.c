/* onnx_write.c - the ONNX graph as a ModelProto, streamed.
 *
 * The writer never builds the model in memory.  It works in three steps:
 *
 *   1. collect: one walk over the graph and its subgraphs checks what the
 *      emitters rely on (names, tensor sizes) and lists every tensor, in
 *      the order they will be written, and every operator domain used;
 *      then the same for each local function a live node calls, in the
 *      order of first call (functions nobody calls any more are left out).
 *   2. plan: decides which tensors go to the external data file and where
 *      (offsets aligned to 4096 bytes, so a loader can mmap them), then
 *      runs the size pass of the whole model.  Past protobuf's 2 GB limit,
 *      every tensor of 1 KiB or more moves out and the size is computed
 *      again.
 *   3. write: the external data file, then the model, each to a temporary
 *      name beside its destination, renamed into place only when both are
 *      complete.  A failure removes the temporaries and leaves whatever
 *      was at the destination before untouched.
 *
 * Each message has one emit_ function that runs in both the size pass and
 * the write pass (see pb.c), so the two cannot drift apart; pb_field_msg
 * checks that they agree.  Tensor bytes go from their source (a caller's
 * buffer, or hex digits in the input text decoded a buffer-full at a time)
 * straight into a 1 MiB output buffer or, when big, straight to write(2).
 *
 * Fields are written in field-number order, as protobuf's own serializers
 * do, and nothing depends on addresses, time or the process: the same
 * OModel always gives the same bytes.  Repeated scalars are packed.
 *
 * A local function (FunctionProto) has no initializers: the constants of
 * its graph are written as Constant nodes at the start of its body, and
 * stay inside the model whatever their size (external data is a property
 * of initializers and of what runtimes load from the main graph).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "write/write.h"

#define OW_BUF_SIZE ((size_t)1 << 20)
#define OW_ALIGN 4096u                        /* external data offsets */
#define OW_PROTO_LIMIT ((uint64_t)INT32_MAX)   /* protobuf's message limit */
#define OW_AUTO_EXTERNAL_MIN 1024u             /* moved out past the limit */
#define OW_PROGRESS_MIN ((uint64_t)64 << 20)   /* show progress above this */
#define OW_DATA_CHUNK ((size_t)16 << 20)       /* progress granularity */
#define OW_MAX_DEPTH 64                        /* nested subgraphs */

/* onnx.proto field numbers. */
enum {
  MODEL_IR_VERSION = 1, MODEL_PRODUCER_NAME = 2, MODEL_PRODUCER_VERSION = 3,
  MODEL_MODEL_VERSION = 5, MODEL_DOC_STRING = 6, MODEL_GRAPH = 7, MODEL_METADATA_PROPS = 14, MODEL_OPSET_IMPORT = 8, MODEL_FUNCTIONS = 25,
  FUNCTION_NAME = 1, FUNCTION_INPUT = 4, FUNCTION_OUTPUT = 5, FUNCTION_NODE = 7,
  FUNCTION_OPSET_IMPORT = 9, FUNCTION_DOMAIN = 10, FUNCTION_VALUE_INFO = 12,
  OPSET_DOMAIN = 1, OPSET_VERSION = 2,
  GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INITIALIZER = 5, GRAPH_INPUT = 11,
  GRAPH_OUTPUT = 12, GRAPH_VALUE_INFO = 13,
  NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP_TYPE = 4,
  NODE_ATTRIBUTE = 5, NODE_DOMAIN = 7, NODE_METADATA_PROPS = 9,
  ATTR_NAME = 1, ATTR_F = 2, ATTR_I = 3, ATTR_S = 4, ATTR_T = 5, ATTR_G = 6,
  ATTR_FLOATS = 7, ATTR_INTS = 8, ATTR_STRINGS = 9, ATTR_TYPE = 20,
  TENSOR_DIMS = 1, TENSOR_DATA_TYPE = 2, TENSOR_NAME = 8, TENSOR_RAW_DATA = 9,
  TENSOR_EXTERNAL_DATA = 13, TENSOR_DATA_LOCATION = 14,
  ENTRY_KEY = 1, ENTRY_VALUE = 2,
  VALUE_INFO_NAME = 1, VALUE_INFO_TYPE = 2,
  TYPE_TENSOR_TYPE = 1, TENSOR_TYPE_ELEM_TYPE = 1, TENSOR_TYPE_SHAPE = 2,
  SHAPE_DIM = 1, DIM_VALUE = 1, DIM_PARAM = 2,
  DATA_LOCATION_EXTERNAL = 1
};

/* ---- IR versions --------------------------------------------------------
 * onnx.helper.VERSION_TABLE: the release that introduced each ai.onnx opset
 * and the IR version it defined.  A model must declare at least that IR
 * version, and declaring more than needed locks out older runtimes, so we
 * write the minimum.  (Opsets 2-4 were never released; opset 1's IR
 * version covers them.)  Future opsets get the newest IR version we know. */
int ow_ir_version(int opset) {
  static const struct { int opset, ir; } table[] = {
      {8, 3},  {9, 4},   {10, 5},  {11, 6},  {14, 7},  {18, 8},
      {20, 9}, {22, 10}, {23, 11}, {24, 12}, {27, 13}, {28, 14},
  };
  int n = (int)(sizeof table / sizeof table[0]);
  for (int i = 0; i < n; i++)
    if (opset <= table[i].opset) return table[i].ir;
  return table[n - 1].ir;
}

int ow_ml_opset(int opset) {
  if (opset <= 10) return 1;
  if (opset <= 15) return 2;
  if (opset <= 19) return 3;
  if (opset <= 20) return 4;
  return 5;
}

/* ---- the writer's state ------------------------------------------------ */

typedef struct TensorPlan {
  const OValue *v;
  uint64_t nbytes;
  bool external;
  bool inline_only; /* a constant of a local function */
  uint64_t offset;  /* in the external data file */
} TensorPlan;

typedef struct Writer {
  Ctx *c;
  const OModel *m;
  int opset;
  bool shape_info;
  TensorPlan *tensors;       /* in writing order */
  size_t n_tensors, cap_tensors;
  size_t *slots;             /* open addressing: tensor index + 1; 0 = free */
  size_t n_slots;
  const char **domains;      /* non-default node domains, first use first */
  size_t n_domains, cap_domains;
  const OFunction **functions; /* the local functions live nodes call */
  size_t n_functions, cap_functions;
  bool in_function;          /* collecting a function's graph */
  uint64_t tensor_bytes;     /* all tensors, inline and external */
  uint64_t data_size;        /* bytes of the external data file */
  size_t n_external;
  const char *location;      /* the external data file, relative to the model */
  /* progress line */
  bool progress;
  uint64_t done;
  struct timespec last;
} Writer;

static bool default_domain(const char *d) {
  return !d || !*d || strcmp(d, "ai.onnx") == 0;
}

static size_t ptr_hash(const void *p, size_t mask) {
  uint64_t h = (uint64_t)(uintptr_t)p;
  h ^= h >> 29;
  h *= 0x9e3779b97f4a7c15u;
  return (size_t)(h >> 17) & mask;
}

static TensorPlan *plan_of(const Writer *w, const OValue *v) {
  if (!w->n_slots) return NULL;
  size_t mask = w->n_slots - 1;
  for (size_t i = ptr_hash(v, mask);; i = (i + 1) & mask) {
    size_t k = w->slots[i];
    if (!k) return NULL;
    if (w->tensors[k - 1].v == v) return &w->tensors[k - 1];
  }
}

static int nomem(Writer *w) {
  return diag_error(w->c, H2O_ENOMEM, "out of memory while writing the model");
}

/* `items` (n used of *cap, each `size` bytes) with room for one more,
 * doubling from `first`; NULL after reporting when memory runs out.  The
 * writer's lists come from h2o_realloc, and are freed when the write ends. */
static void *reserve(Writer *w, void *items, size_t n, size_t *cap, size_t size, size_t first) {
  if (n < *cap) return items;
  size_t want = *cap ? 2 * *cap : first;
  void *p = h2o_realloc(items, want * size);
  if (!p) {
    nomem(w);
    return NULL;
  }
  *cap = want;
  return p;
}

/* Keeps the hash table at most half full. */
static int grow_slots(Writer *w) {
  if (2 * (w->n_tensors + 1) <= w->n_slots) return 0;
  size_t n = w->n_slots ? 2 * w->n_slots : 64;
  size_t *slots = h2o_calloc(n, sizeof *slots);
  if (!slots) return nomem(w);
  for (size_t k = 0; k < w->n_tensors; k++) {
    size_t i = ptr_hash(w->tensors[k].v, n - 1);
    while (slots[i]) i = (i + 1) & (n - 1);
    slots[i] = k + 1;
  }
  h2o_free(w->slots);
  w->slots = slots;
  w->n_slots = n;
  return 0;
}

static int tensor_error(Writer *w, const OValue *v, const char *what) {
  return diag_error(w->c, H2O_EINTERNAL,
                    "internal error: cannot write tensor '%s': %s (please "
                    "report this with the input that caused it)",
                    v->name ? v->name : "?", what);
}

/* Checks a tensor (an initializer or a tensor attribute) and lists it once,
 * however many places refer to it. */
static int add_tensor(Writer *w, const OValue *v) {
  if (plan_of(w, v)) return 0;
  const OType *t = &v->type;
  if (!v->name) return tensor_error(w, v, "it has no name");
  if ((int)t->et <= (int)ET_UNDEF || (int)t->et > (int)ET_F4E2M1)
    return tensor_error(w, v, "unknown element type");
  if (t->et == ET_STRING) return tensor_error(w, v, "string tensors are not supported");
  if (t->rank < 0 || t->rank > MAX_RANK || (t->rank > 0 && !t->dims))
    return tensor_error(w, v, "its shape is unknown");
  uint64_t numel = 1;
  bool overflow = false;
  for (int i = 0; i < t->rank; i++) {
    int64_t d = t->dims[i].value;
    if (d < 0) return tensor_error(w, v, "a dimension is not a number");
    if (d > 0 && numel > UINT64_MAX / (uint64_t)d) overflow = true;
    numel *= (uint64_t)d;
  }
  size_t esize = et_size(t->et);
  uint64_t want;
  if (esize) {
    if (numel > UINT64_MAX / esize) overflow = true;
    want = numel * esize;
  } else {
    want = numel / 2 + numel % 2; /* 4-bit types: two per byte */
  }
  if (overflow) return tensor_error(w, v, "its size overflows");
  uint64_t have = v->data.kind == DATA_NONE ? 0 : (uint64_t)v->data.nbytes;
  if (have != want) {
    char msg[128];
    snprintf(msg, sizeof msg, "it holds %llu bytes but its type takes %llu",
             (unsigned long long)have, (unsigned long long)want);
    return tensor_error(w, v, msg);
  }
  if (have && !v->data.ptr) return tensor_error(w, v, "its data is missing");
  if (v->data.kind != DATA_NONE && v->data.kind != DATA_RAW &&
      v->data.kind != DATA_HEX)
    return tensor_error(w, v, "unknown data kind");
  if (w->tensor_bytes + have < w->tensor_bytes)
    return tensor_error(w, v, "the tensors' total size overflows");
  w->tensor_bytes += have;

  if (grow_slots(w) < 0) return -1;
  TensorPlan *tensors = reserve(w, w->tensors, w->n_tensors, &w->cap_tensors, sizeof *tensors, 64);
  if (!tensors) return -1;
  w->tensors = tensors;
  w->tensors[w->n_tensors] = (TensorPlan){.v = v, .nbytes = have, .inline_only = w->in_function};
  size_t mask = w->n_slots - 1;
  size_t i = ptr_hash(v, mask);
  while (w->slots[i]) i = (i + 1) & mask;
  w->slots[i] = ++w->n_tensors;
  return 0;
}

static int add_domain(Writer *w, const char *d) {
  if (default_domain(d)) return 0;
  for (size_t i = 0; i < w->n_domains; i++)
    if (strcmp(w->domains[i], d) == 0) return 0;
  const char **domains = reserve(w, w->domains, w->n_domains, &w->cap_domains, sizeof *domains, 4);
  if (!domains) return -1;
  w->domains = domains;
  w->domains[w->n_domains++] = d;
  return 0;
}

/* Lists a called function once; its graph is collected after the main one. */
static int add_function(Writer *w, const OFunction *f) {
  for (size_t i = 0; i < w->n_functions; i++)
    if (w->functions[i] == f) return 0;
  const OFunction **functions =
      reserve(w, w->functions, w->n_functions, &w->cap_functions, sizeof *functions, 4);
  if (!functions) return -1;
  w->functions = functions;
  w->functions[w->n_functions++] = f;
  return 0;
}

static int graph_error(Writer *w, const OGraph *g, const char *what) {
  return diag_error(w->c, H2O_EINTERNAL,
                    "internal error: cannot write graph '%s': %s (please report "
                    "this with the input that caused it)",
                    g->name ? g->name : "?", what);
}

static int check_value_list(Writer *w, const OGraph *g, const PtrVec *vs) {
  for (int i = 0; i < vs->len; i++) {
    const OValue *v = vs->items[i];
    if (!v || !v->name) return graph_error(w, g, "an input or output has no name");
    if (v->type.rank > 0 && !v->type.dims)
      return graph_error(w, g, "a value has a rank but no dimensions");
  }
  return 0;
}

/* Step 1: checks what the emitters rely on; lists tensors and domains in
 * the order the writer meets them. */
static int collect_graph(Writer *w, const OGraph *g, int depth) {
  if (depth > OW_MAX_DEPTH)
    return graph_error(w, g, "subgraphs nest too deeply (a cycle?)");
  if (check_value_list(w, g, &g->inputs) < 0 ||
      check_value_list(w, g, &g->outputs) < 0)
    return -1;
  for (int i = 0; i < g->inits.len; i++)
    if (add_tensor(w, g->inits.items[i]) < 0) return -1;
  for (int i = 0; i < g->nodes.len; i++) {
    const ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    if (!n->op_type || !*n->op_type) return graph_error(w, g, "a node has no op_type");
    if (add_domain(w, n->domain) < 0) return -1;
    if (n->fn && (!n->fn->graph || !n->fn->name || strcmp(n->fn->name, n->op_type) != 0))
      return graph_error(w, g, "a call node does not name its function");
    if (n->fn && add_function(w, n->fn) < 0) return -1;
    if (n->n_inputs < 0 || n->n_outputs < 0 || n->n_attrs < 0 ||
        (n->n_inputs && !n->inputs) || (n->n_outputs && !n->outputs) ||
        (n->n_attrs && !n->attrs))
      return graph_error(w, g, "a node has broken lists");
    for (int j = 0; j < n->n_inputs; j++)
      if (n->inputs[j] && !n->inputs[j]->name)
        return graph_error(w, g, "a node input has no name");
    for (int j = 0; j < n->n_outputs; j++) {
      const OValue *v = n->outputs[j];
      if (v && !v->name) return graph_error(w, g, "a node output has no name");
      if (v && v->type.rank > 0 && !v->type.dims)
        return graph_error(w, g, "a value has a rank but no dimensions");
    }
    for (int j = 0; j < n->n_attrs; j++) {
      const OAttr *a = &n->attrs[j];
      if (!a->name || !*a->name) return graph_error(w, g, "an attribute has no name");
      bool ok = true;
      switch (a->kind) {
      case OA_FLOAT: case OA_INT: break;
      case OA_STRING: ok = a->s || a->s_len == 0; break;
      case OA_TENSOR:
        if (!a->tensor) ok = false;
        else if (add_tensor(w, a->tensor) < 0) return -1;
        break;
      case OA_GRAPH:
        if (!a->graph) ok = false;
        else if (collect_graph(w, a->graph, depth + 1) < 0) return -1;
        break;
      case OA_FLOATS: ok = a->n >= 0 && (a->n == 0 || a->floats); break;
      case OA_INTS: ok = a->n >= 0 && (a->n == 0 || a->ints); break;
      case OA_STRINGS:
        ok = a->n >= 0 && (a->n == 0 || a->strings);
        for (int k = 0; ok && k < a->n; k++) ok = a->strings[k] != NULL;
        break;
      default: ok = false; break;
      }
      if (!ok) return graph_error(w, g, "an attribute has no value or an unknown kind");
    }
  }
  return 0;
}

/* Step 2: tensors of at least min_bytes (0: none) go to the external data
 * file, each at an offset aligned to OW_ALIGN. */
static int plan_external(Writer *w, uint64_t min_bytes) {
  uint64_t end = 0;
  w->n_external = 0;
  w->data_size = 0;
  for (size_t i = 0; i < w->n_tensors; i++) {
    TensorPlan *p = &w->tensors[i];
    p->external = min_bytes > 0 && p->nbytes > 0 && p->nbytes >= min_bytes && !p->inline_only;
    p->offset = 0;
    if (!p->external) continue;
    uint64_t off = (end + OW_ALIGN - 1) / OW_ALIGN * OW_ALIGN;
    if (off < end || off + p->nbytes < off)
      return diag_error(w->c, H2O_EUNSUPPORTED, "external data too large");
    p->offset = off;
    end = off + p->nbytes;
    w->n_external++;
  }
  w->data_size = end;
  return 0;
}

/* ---- progress ---------------------------------------------------------- */

static double seconds_since(const struct timespec *t0, const struct timespec *t1) {
  return (double)(t1->tv_sec - t0->tv_sec) + (double)(t1->tv_nsec - t0->tv_nsec) / 1e9;
}

static void progress_show(const Writer *w) {
  uint64_t done = w->done < w->tensor_bytes ? w->done : w->tensor_bytes;
  if (w->c->opts->progress_fn) {
    w->c->opts->progress_fn(w->c->opts->progress_user, done, w->tensor_bytes);
    return;
  }
  fprintf(stderr, "\rwriting tensors: %llu/%llu MB", (unsigned long long)(done / 1000000),
          (unsigned long long)(w->tensor_bytes / 1000000));
  fflush(stderr);
}

static void progress_add(Writer *w, uint64_t n) {
  w->done += n;
  if (!w->progress) return;
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  if (seconds_since(&w->last, &now) < 0.1) return;
  w->last = now;
  progress_show(w);
}

static void progress_end(Writer *w) {
  if (!w->progress) return;
  w->done = w->tensor_bytes;
  progress_show(w);
  if (!w->c->opts->progress_fn) fputc('\n', stderr);
  w->progress = false;
}

/* ---- emitters: one per message, run by the size and the write pass ----- */

/* A tensor's bytes from their source, in chunks so progress can move. */
static void emit_data(PbOut *o, const Data *d, uint64_t nbytes) {
  Writer *w = o->user;
  size_t done = 0;
  while (done < nbytes) {
    size_t k = nbytes - done < OW_DATA_CHUNK ? (size_t)(nbytes - done) : OW_DATA_CHUNK;
    if (d->kind == DATA_RAW)
      pb_raw(o, (const uint8_t *)d->ptr + done, k);
    else
      pb_hex(o, (const char *)d->ptr + 2 * done, k);
    done += k;
    if (!o->counting) progress_add(w, k);
  }
}

typedef struct Entry {
  const char *key, *value;
} Entry;

static void emit_entry(PbOut *o, const void *msg) {
  const Entry *e = msg;
  pb_field_str(o, ENTRY_KEY, e->key);
  pb_field_str(o, ENTRY_VALUE, e->value);
}

/* Dims as a packed repeated int64 (proto2 parsers accept both forms). */
static void emit_dims_packed(PbOut *o, uint32_t field, const OType *t) {
  if (t->rank <= 0) return;
  uint64_t len = 0;
  for (int i = 0; i < t->rank; i++) len += pb_varint_size((uint64_t)t->dims[i].value);
  pb_field_len(o, field, len);
  for (int i = 0; i < t->rank; i++) pb_varint(o, (uint64_t)t->dims[i].value);
}

static void emit_tensor(PbOut *o, const void *msg) {
  const OValue *v = msg;
  Writer *w = o->user;
  const TensorPlan *p = plan_of(w, v);
  emit_dims_packed(o, TENSOR_DIMS, &v->type); /* a scalar has none */
  pb_field_u64(o, TENSOR_DATA_TYPE, (uint64_t)v->type.et);
  pb_field_str(o, TENSOR_NAME, v->name);
  if (!p || !p->external) {
    /* An empty tensor has no raw_data at all: onnx.checker rejects a
     * 0-element tensor that "contains data", even zero bytes of it. */
    if (p && p->nbytes > 0) {
      pb_field_len(o, TENSOR_RAW_DATA, p->nbytes);
      emit_data(o, &v->data, p->nbytes);
    }
    return;
  }
  char offset[24], length[24];
  snprintf(offset, sizeof offset, "%llu", (unsigned long long)p->offset);
  snprintf(length, sizeof length, "%llu", (unsigned long long)p->nbytes);
  const Entry entries[3] = {
      {"location", w->location}, {"offset", offset}, {"length", length}};
  for (int i = 0; i < 3; i++) pb_field_msg(o, TENSOR_EXTERNAL_DATA, emit_entry, &entries[i]);
  pb_field_u64(o, TENSOR_DATA_LOCATION, DATA_LOCATION_EXTERNAL);
}

static void emit_dim(PbOut *o, const void *msg) {
  const ODim *d = msg;
  if (d->value >= 0)
    pb_field_i64(o, DIM_VALUE, d->value);
  else if (d->param)
    pb_field_str(o, DIM_PARAM, d->param);
  /* neither: an unknown dimension */
}

static void emit_shape(PbOut *o, const void *msg) {
  const OType *t = msg;
  for (int i = 0; i < t->rank; i++) pb_field_msg(o, SHAPE_DIM, emit_dim, &t->dims[i]);
}

static void emit_tensor_type(PbOut *o, const void *msg) {
  const OType *t = msg;
  if (t->et != ET_UNDEF) pb_field_u64(o, TENSOR_TYPE_ELEM_TYPE, (uint64_t)t->et);
  /* No shape field at all means an unknown rank; an empty one, a scalar. */
  if (t->rank >= 0) pb_field_msg(o, TENSOR_TYPE_SHAPE, emit_shape, t);
}

static void emit_type(PbOut *o, const void *msg) {
  pb_field_msg(o, TYPE_TENSOR_TYPE, emit_tensor_type, msg);
}

static void emit_value_info(PbOut *o, const void *msg) {
  const OValue *v = msg;
  pb_field_str(o, VALUE_INFO_NAME, v->name);
  if (v->type.et != ET_UNDEF || v->type.rank >= 0)
    pb_field_msg(o, VALUE_INFO_TYPE, emit_type, &v->type);
}

static void emit_graph(PbOut *o, const void *msg);

static void emit_attr(PbOut *o, const void *msg) {
  const OAttr *a = msg;
  pb_field_str(o, ATTR_NAME, a->name);
  switch (a->kind) {
  case OA_FLOAT: pb_field_f32(o, ATTR_F, a->f); break;
  case OA_INT: pb_field_i64(o, ATTR_I, a->i); break;
  case OA_STRING: {
    size_t len = a->s_len ? a->s_len : (a->s ? strlen(a->s) : 0);
    pb_field_bytes(o, ATTR_S, a->s ? a->s : "", len);
    break;
  }
  case OA_TENSOR: pb_field_msg(o, ATTR_T, emit_tensor, a->tensor); break;
  case OA_GRAPH: pb_field_msg(o, ATTR_G, emit_graph, a->graph); break;
  case OA_FLOATS: pb_field_packed_f32(o, ATTR_FLOATS, a->floats, (size_t)a->n); break;
  case OA_INTS: pb_field_packed_i64(o, ATTR_INTS, a->ints, (size_t)a->n); break;
  case OA_STRINGS:
    for (int i = 0; i < a->n; i++) pb_field_str(o, ATTR_STRINGS, a->strings[i]);
    break;
  }
  pb_field_u64(o, ATTR_TYPE, (uint64_t)a->kind);
}

static void emit_node(PbOut *o, const void *msg) {
  const ONode *n = msg;
  /* An omitted optional input (or output) is an empty name. */
  for (int i = 0; i < n->n_inputs; i++)
    pb_field_str(o, NODE_INPUT, n->inputs[i] ? n->inputs[i]->name : "");
  for (int i = 0; i < n->n_outputs; i++)
    pb_field_str(o, NODE_OUTPUT, n->outputs[i] ? n->outputs[i]->name : "");
  pb_field_str(o, NODE_NAME, n->name);
  pb_field_str(o, NODE_OP_TYPE, n->op_type);
  for (int i = 0; i < n->n_attrs; i++) pb_field_msg(o, NODE_ATTRIBUTE, emit_attr, &n->attrs[i]);
  if (!default_domain(n->domain)) pb_field_str(o, NODE_DOMAIN, n->domain);
  /* Where the node came from, under the keys torch.onnx uses too: the JAX
   * name scope (the module path of the layer) and the Python line.
   * NodeProto.metadata_props came with IR version 10; written at the lower
   * IR version of an older opset too, where readers skip it as an unknown
   * field (onnx.checker and onnxruntime accept it: tests/python/test_names.py). */
  const char *scope = og_node_scope(n), *source = og_node_source(n);
  if (scope) pb_field_msg(o, NODE_METADATA_PROPS, emit_entry, &(Entry){"namespace", scope});
  if (source) pb_field_msg(o, NODE_METADATA_PROPS, emit_entry, &(Entry){"source", source});
}

/* value_info: what we know of each intermediate value's type, so a
 * runtime or a viewer need not infer it. */
static bool wants_value_info(const OValue *v) {
  return v && !v->is_output && v->type.et != ET_UNDEF && v->type.rank >= 0;
}

static void emit_graph(PbOut *o, const void *msg) {
  const OGraph *g = msg;
  const Writer *w = o->user;
  for (int i = 0; i < g->nodes.len; i++) {
    const ONode *n = g->nodes.items[i];
    if (!n->dead) pb_field_msg(o, GRAPH_NODE, emit_node, n);
  }
  /* onnx.checker wants every graph named. */
  pb_field_str(o, GRAPH_NAME, g->name && *g->name ? g->name : "graph");
  for (int i = 0; i < g->inits.len; i++)
    pb_field_msg(o, GRAPH_INITIALIZER, emit_tensor, g->inits.items[i]);
  for (int i = 0; i < g->inputs.len; i++)
    pb_field_msg(o, GRAPH_INPUT, emit_value_info, g->inputs.items[i]);
  for (int i = 0; i < g->outputs.len; i++)
    pb_field_msg(o, GRAPH_OUTPUT, emit_value_info, g->outputs.items[i]);
  if (!w->shape_info) return;
  for (int i = 0; i < g->nodes.len; i++) {
    const ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    for (int j = 0; j < n->n_outputs; j++)
      if (wants_value_info(n->outputs[j]))
        pb_field_msg(o, GRAPH_VALUE_INFO, emit_value_info, n->outputs[j]);
  }
}

typedef struct OpsetId {
  const char *domain;
  int version;
} OpsetId;

static void emit_opset(PbOut *o, const void *msg) {
  const OpsetId *id = msg;
  pb_field_str(o, OPSET_DOMAIN, id->domain);
  pb_field_u64(o, OPSET_VERSION, (uint64_t)id->version);
}

static int domain_version(const Writer *w, const char *domain) {
  if (strcmp(domain, "ai.onnx.ml") == 0) return ow_ml_opset(w->opset);
  return 1; /* com.microsoft, ai.onnx.preview.training, ...: version 1 */
}

/* A constant of a function's graph: Constant(value = the tensor). */
static void emit_constant_attr(PbOut *o, const void *msg) {
  pb_field_str(o, ATTR_NAME, "value");
  pb_field_msg(o, ATTR_T, emit_tensor, msg);
  pb_field_u64(o, ATTR_TYPE, OA_TENSOR);
}

static void emit_constant_node(PbOut *o, const void *msg) {
  const OValue *v = msg;
  pb_field_str(o, NODE_OUTPUT, v->name);
  pb_field_str(o, NODE_OP_TYPE, "Constant");
  pb_field_msg(o, NODE_ATTRIBUTE, emit_constant_attr, v);
}

/* The opsets a function's body relies on: those of the model, whose
 * versions a function must share (onnx.checker). */
static void emit_opsets(PbOut *o, const Writer *w, uint32_t field) {
  OpsetId id = {NULL, w->opset};
  pb_field_msg(o, field, emit_opset, &id);
  for (size_t i = 0; i < w->n_domains; i++) {
    id.domain = w->domains[i];
    id.version = domain_version(w, id.domain);
    pb_field_msg(o, field, emit_opset, &id);
  }
}

static void emit_function(PbOut *o, const void *msg) {
  const OFunction *f = msg;
  const OGraph *g = f->graph;
  const Writer *w = o->user;
  pb_field_str(o, FUNCTION_NAME, f->name);
  for (int i = 0; i < g->inputs.len; i++)
    pb_field_str(o, FUNCTION_INPUT, ((const OValue *)g->inputs.items[i])->name);
  for (int i = 0; i < g->outputs.len; i++)
    pb_field_str(o, FUNCTION_OUTPUT, ((const OValue *)g->outputs.items[i])->name);
  for (int i = 0; i < g->inits.len; i++)
    pb_field_msg(o, FUNCTION_NODE, emit_constant_node, g->inits.items[i]);
  for (int i = 0; i < g->nodes.len; i++) {
    const ONode *n = g->nodes.items[i];
    if (!n->dead) pb_field_msg(o, FUNCTION_NODE, emit_node, n);
  }
  emit_opsets(o, w, FUNCTION_OPSET_IMPORT);
  pb_field_str(o, FUNCTION_DOMAIN, OG_FN_DOMAIN);
  /* FunctionProto.value_info came with IR version 10 */
  if (!w->shape_info || ow_ir_version(w->opset) < 10) return;
  for (int i = 0; i < g->nodes.len; i++) {
    const ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    for (int j = 0; j < n->n_outputs; j++)
      if (wants_value_info(n->outputs[j]))
        pb_field_msg(o, FUNCTION_VALUE_INFO, emit_value_info, n->outputs[j]);
  }
}

static void emit_model(PbOut *o, const void *msg) {
  const Writer *w = msg;
  const OModel *m = w->m;
  pb_field_u64(o, MODEL_IR_VERSION, (uint64_t)ow_ir_version(w->opset));
  pb_field_str(o, MODEL_PRODUCER_NAME, m->producer_name ? m->producer_name : "hlo2onnx");
  pb_field_str(o, MODEL_PRODUCER_VERSION,
               m->producer_version ? m->producer_version : H2O_VERSION);
  if (m->model_version) pb_field_i64(o, MODEL_MODEL_VERSION, m->model_version);
  if (m->doc) pb_field_str(o, MODEL_DOC_STRING, m->doc);
  pb_field_msg(o, MODEL_GRAPH, emit_graph, m->graph);
  emit_opsets(o, w, MODEL_OPSET_IMPORT);
  for (int i = 0; i < m->n_metadata; i++) {
    Entry e = {m->metadata[i].key, m->metadata[i].value};
    if (e.key) pb_field_msg(o, MODEL_METADATA_PROPS, emit_entry, &e);
  }
  for (size_t i = 0; i < w->n_functions; i++)
    pb_field_msg(o, MODEL_FUNCTIONS, emit_function, w->functions[i]);
}

static uint64_t model_size(Writer *w) { return pb_msg_size(emit_model, w, w); }

/* ---- setup shared by both entry points --------------------------------- */

static void writer_free(Writer *w) {
  h2o_free(w->tensors);
  h2o_free(w->slots);
  h2o_free(w->domains);
  h2o_free(w->functions);
  memset(w, 0, sizeof *w);
}

static int writer_init(Writer *w, Ctx *c, const OModel *m) {
  memset(w, 0, sizeof *w);
  w->c = c;
  w->m = m;
  H2O_CHECK(c, m && m->graph);
  w->opset = m->opset > 0 ? m->opset : H2O_DEFAULT_OPSET;
  w->shape_info = c->opts && c->opts->shape_info;
  if (collect_graph(w, m->graph, 0) < 0) return -1;
  /* the list grows while it is walked: functions calling functions */
  w->in_function = true;
  for (size_t i = 0; i < w->n_functions; i++)
    if (collect_graph(w, w->functions[i]->graph, 0) < 0) return -1;
  w->in_function = false;
  w->progress = c->opts && c->opts->progress &&
                (c->opts->progress_fn ||
                 (w->tensor_bytes > OW_PROGRESS_MIN && isatty(STDERR_FILENO)));
  if (w->progress) clock_gettime(CLOCK_MONOTONIC, &w->last);
  return 0;
}

/* Turns a PbOut failure into a message. */
static int write_error(Ctx *c, int err, const char *path) {
  if (err == PB_ESIZE || err == PB_EOVERFLOW)
    return diag_error(c, H2O_EINTERNAL,
                      "internal error: the size and write passes of the ONNX "
                      "writer disagree (please report this)");
  return diag_error(c, H2O_EIO, "cannot write %s: %s", path, strerror(err));
}

int ow_write_memory(Ctx *c, const OModel *m, void **out, size_t *out_len) {
  *out = NULL;
  *out_len = 0;
  Writer w;
  int rc = -1;
  uint8_t *buf = NULL;
  if (writer_init(&w, c, m) < 0) goto done;
  if (plan_external(&w, 0) < 0) goto done;
  uint64_t size = model_size(&w);
  if (size > OW_PROTO_LIMIT || size > SIZE_MAX) {
    diag_error(c, H2O_EUNSUPPORTED,
               "the model takes %llu bytes, more than the 2 GB a protobuf "
               "message can hold; write it to a file, where big tensors go to "
               "an external data file",
               (unsigned long long)size);
    goto done;
  }
  buf = h2o_malloc(size ? (size_t)size : 1);
  if (!buf) {
    nomem(&w);
    goto done;
  }
  PbOut o;
  pb_init_mem(&o, buf, (size_t)size, &w);
  emit_model(&o, &w);
  progress_end(&w);
  if (o.err || o.n != size) {
    write_error(c, o.err ? o.err : PB_ESIZE, "<memory>");
    goto done;
  }
  *out = buf;
  *out_len = (size_t)size;
  buf = NULL;
  rc = 0;
done:
  h2o_free(buf);
  writer_free(&w);
  return rc;
}

/* ---- files ------------------------------------------------------------- */

/* An output file: the temporary we write, and where it goes at the end.
 * A destination that exists and is not a regular file (/dev/null, a pipe),
 * or lies under /dev or /proc (/dev/stdout redirected to a file), is
 * written directly: renaming over it would replace the device or link. */
typedef struct OutFile {
  const char *path;  /* the destination, for messages */
  char *tmp;         /* malloc'd temporary name; NULL when direct */
  int fd;
} OutFile;

static bool is_special(const char *path) {
  struct stat st;
  if (strncmp(path, "/dev/", 5) == 0 || strncmp(path, "/proc/", 6) == 0)
    return stat(path, &st) == 0;
  return stat(path, &st) == 0 && !S_ISREG(st.st_mode);
}

static int out_open(Ctx *c, OutFile *f, const char *path) {
  f->path = path;
  f->tmp = NULL;
  f->fd = -1;
  if (is_special(path)) {
    f->fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (f->fd < 0) return diag_error(c, H2O_EIO, "cannot write %s: %s", path, strerror(errno));
    return 0;
  }
  size_t cap = strlen(path) + 64;
  f->tmp = h2o_malloc(cap);
  if (!f->tmp) return diag_error(c, H2O_ENOMEM, "out of memory while writing the model");
  /* O_EXCL: never write into a file someone else owns; a stale temporary
   * of a crashed run with our pid only moves us to the next number. */
  for (int attempt = 0; attempt < 100; attempt++) {
    if (attempt == 0)
      snprintf(f->tmp, cap, "%s.tmp.%ld", path, (long)getpid());
    else
      snprintf(f->tmp, cap, "%s.tmp.%ld.%d", path, (long)getpid(), attempt);
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (f->fd >= 0 || errno != EEXIST) break;
  }
  if (f->fd < 0) {
    int e = errno;
    h2o_free(f->tmp);
    f->tmp = NULL;
    return diag_error(c, H2O_EIO, "cannot write %s: %s", path, strerror(e));
  }
  return 0;
}

/* Flushes the data to the disk and closes; the file stays a temporary. */
static int out_close(Ctx *c, OutFile *f) {
  int err = 0;
  if (f->tmp && fsync(f->fd) < 0 && errno != EINVAL && errno != EROFS &&
      errno != ENOTSUP)
    err = errno;
  if (close(f->fd) < 0 && !err && errno != EINTR) err = errno;
  f->fd = -1;
  if (err) return diag_error(c, H2O_EIO, "cannot write %s: %s", f->path, strerror(err));
  return 0;
}

/* Gives up: closes and removes the temporary. */
static void out_discard(OutFile *f) {
  if (f->fd >= 0) close(f->fd);
  f->fd = -1;
  if (f->tmp) unlink(f->tmp);
  h2o_free(f->tmp);
  f->tmp = NULL;
}

static int out_commit(Ctx *c, OutFile *f) {
  if (f->tmp && rename(f->tmp, f->path) < 0)
    return diag_error(c, H2O_EIO, "cannot write %s: %s", f->path, strerror(errno));
  h2o_free(f->tmp);
  f->tmp = NULL;
  return 0;
}

/* The external data file's name as the model records it: opts->external_data,
 * or "<model file name>.data".  It is relative to the model's directory and
 * may not leave it: runtimes refuse such paths. */
static int data_location(Writer *w, const char *path, char **location, char **data_path) {
  Ctx *c = w->c;
  const char *slash = strrchr(path, '/');
  const char *base = slash ? slash + 1 : path;
  size_t dir_len = slash ? (size_t)(slash - path) + 1 : 0;
  const char *opt = c->opts ? c->opts->external_data : NULL;
  if (!*base) return diag_error(c, H2O_EUSAGE, "cannot write %s: not a file name", path);
  if (opt) {
    bool bad = !*opt || opt[0] == '/' || opt[strlen(opt) - 1] == '/' ||
               strcmp(opt, base) == 0;
    for (const char *p = opt; !bad && *p;) {
      const char *end = strchr(p, '/');
      size_t n = end ? (size_t)(end - p) : strlen(p);
      if (n == 2 && p[0] == '.' && p[1] == '.') bad = true;
      p += n + (end ? 1 : 0);
    }
    if (bad)
      return diag_error(c, H2O_EUSAGE,
                        "external data file name '%s' must be a relative path "
                        "inside the model's directory, other than the model's",
                        opt);
  }
  size_t loc_len = opt ? strlen(opt) : strlen(base) + 5;
  *location = h2o_malloc(loc_len + 1);
  *data_path = h2o_malloc(dir_len + loc_len + 1);
  if (!*location || !*data_path) return nomem(w);
  if (opt)
    memcpy(*location, opt, loc_len + 1);
  else
    snprintf(*location, loc_len + 1, "%s.data", base);
  memcpy(*data_path, path, dir_len);
  memcpy(*data_path + dir_len, *location, loc_len + 1);
  return 0;
}

/* Plans the external data and runs the size pass; the size depends on the
 * external data file's name, which is worked out (and checked) only when
 * some tensor goes there. */
static int plan_sized(Writer *w, uint64_t min_bytes, const char *path,
                      char **location, char **data_path, uint64_t *size) {
  if (plan_external(w, min_bytes) < 0) return -1;
  if (w->n_external > 0 && !*location) {
    if (data_location(w, path, location, data_path) < 0) return -1;
    w->location = *location;
  }
  *size = model_size(w);
  return 0;
}

/* The external tensors, back to back at their planned offsets. */
static int write_data_file(Writer *w, OutFile *f) {
  PbOut o;
  if (pb_init_fd(&o, f->fd, OW_BUF_SIZE, w) < 0) return nomem(w);
  for (size_t i = 0; i < w->n_tensors && !o.err; i++) {
    const TensorPlan *p = &w->tensors[i];
    if (!p->external) continue;
    pb_zeros(&o, (size_t)(p->offset - o.n));
    emit_data(&o, &p->v->data, p->nbytes);
  }
  pb_flush(&o);
  pb_release(&o);
  if (o.err || o.n != w->data_size) return write_error(w->c, o.err ? o.err : PB_ESIZE, f->path);
  return 0;
}

static int write_model_file(Writer *w, OutFile *f, uint64_t size) {
  PbOut o;
  if (pb_init_fd(&o, f->fd, OW_BUF_SIZE, w) < 0) return nomem(w);
  emit_model(&o, w);
  pb_flush(&o);
  pb_release(&o);
  if (o.err || o.n != size) return write_error(w->c, o.err ? o.err : PB_ESIZE, f->path);
  return 0;
}

int ow_write_file(Ctx *c, const OModel *m, const char *path) {
  Writer w;
  OutFile model = {path, NULL, -1}, data = {NULL, NULL, -1};
  char *location = NULL, *data_path = NULL;
  int rc = -1;
  if (writer_init(&w, c, m) < 0) goto done;
  bool special = is_special(path);
  size_t threshold = c->opts ? c->opts->external_threshold : 0;

  /* Sizes first: the threshold's choice, then everything from 1 KiB up
   * when the model would not fit in a protobuf message. */
  uint64_t size;
  if (plan_sized(&w, special ? 0 : threshold, path, &location, &data_path, &size) < 0)
    goto done;
  if (size > OW_PROTO_LIMIT && !special &&
      (threshold == 0 || threshold > OW_AUTO_EXTERNAL_MIN) &&
      plan_sized(&w, OW_AUTO_EXTERNAL_MIN, path, &location, &data_path, &size) < 0)
    goto done;
  if (size > OW_PROTO_LIMIT) {
    diag_error(c, H2O_EUNSUPPORTED,
               "cannot write %s: the model takes %llu bytes%s, more than the "
               "2 GB a protobuf message can hold",
               path, (unsigned long long)size,
               special ? " (no external data next to a device or pipe)"
                       : " even with its tensors in an external data file");
    goto done;
  }

  if (w.n_external > 0) {
    if (out_open(c, &data, data_path) < 0) goto done;
    if (write_data_file(&w, &data) < 0 || out_close(c, &data) < 0) goto done;
  }
  if (out_open(c, &model, path) < 0) goto done;
  if (write_model_file(&w, &model, size) < 0 || out_close(c, &model) < 0) goto done;
  /* Data first: once the model appears under its name, its data is there. */
  if (w.n_external > 0 && out_commit(c, &data) < 0) goto done;
  if (out_commit(c, &model) < 0) goto done;
  rc = 0;
done:
  progress_end(&w);
  out_discard(&data);
  out_discard(&model);
  h2o_free(location);
  h2o_free(data_path);
  writer_free(&w);
  return rc;
}
