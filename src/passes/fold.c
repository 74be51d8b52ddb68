/* fold.c - constant folding: nodes whose inputs are all initializers are
 * computed now and replaced by an initializer.
 *
 * Like Lua's constfolding, only what cannot change the result is folded:
 * data movement (Reshape, Squeeze, Unsqueeze, Identity share the bytes;
 * Transpose, Expand, Concat and Where copy them), integer Ranges, exact
 * conversions, comparisons and logic, and single IEEE operations (+ - * /,
 * sqrt, reciprocal, neg) in the tensor's own type, which give the same bits
 * at conversion time as at run time.  Integer
 * division and anything that may trap or round differently are left alone.
 * A fold never makes the model noticeably bigger: a result may have more
 * elements than its largest input only in the late run (pass_fold_late) and
 * only when it is tiny; before that a broadcast stays a broadcast, which the
 * simplify pass usually removes altogether.  Transposes of weights are folded up to
 * a cap, since runtimes would otherwise redo them on every inference.
 */
#include "passes/passes.h"

#include <math.h>
#include <string.h>

#define FOLD_MAX_ELEMS (1 << 16)      /* materialised results, e.g. Expand */
#define FOLD_SMALL_GROWTH 256         /* pass_fold_late: a broadcast this small
                                         may be folded once the simplify pass
                                         had its chance to drop it: it costs
                                         less than the Expand node (and
                                         onnxruntime has no Expand for bf16) */
#define FOLD_MAX_TRANSPOSE (1u << 28) /* 256 MiB: weights */

typedef struct Tensor {
  ElemType et;
  int rank;
  int64_t dims[MAX_RANK];
  int64_t numel;
  const Data *data;
  const uint8_t *bytes; /* decoded on demand: see decode_inputs */
} Tensor;

static bool static_tensor(Ctx *c, const OValue *v, Tensor *t) {
  const Data *d = og_const_data(v);
  if (!d || v->type.rank < 0 || v->type.rank > MAX_RANK || !et_size(v->type.et)) return false;
  t->et = v->type.et;
  t->rank = v->type.rank;
  t->numel = 1;
  for (int i = 0; i < t->rank; i++) {
    t->dims[i] = v->type.dims[i].value;
    if (t->dims[i] < 0) return false;
    t->numel *= t->dims[i];
  }
  if ((size_t)t->numel * et_size(t->et) != d->nbytes) return false;
  t->data = d;
  t->bytes = NULL;
  return true;
}

/* The folds that compute need the bytes; decoding a hex blob costs a copy,
 * so it happens only once a fold is certain to be tried, and only for inputs
 * below the size the fold accepts. */
static bool decode_inputs(Ctx *c, Tensor *in, int n, size_t max_bytes) {
  for (int k = 0; k < n; k++)
    if (in[k].data->nbytes > max_bytes) return false;
  for (int k = 0; k < n; k++) in[k].bytes = data_bytes(c, in[k].data);
  return true;
}

/* Replaces node n's only output by a new initializer holding `bytes`. */
static void fold_to_data(Ctx *c, OGraph *g, ONode *n, ElemType et, int rank,
                         const int64_t *dims, Data d) {
  OValue *out = n->outputs[0];
  OValue *k = og_init(c, g, "folded", et, rank, dims, d);
  /* keep the symbolic names the output had, if any */
  for (int i = 0; i < rank && out->type.rank == rank; i++) k->type.dims[i].param = out->type.dims[i].param;
  /* A weight that is only reshaped or transposed keeps its name (users look
   * for "layers.0.kernel" in Netron): the folded copy takes it over when the
   * node was the weight's only user, so the original is about to vanish. */
  OValue *src = n->inputs[0];
  bool moves_data = onnx_op_has(n->kind, ONNX_RESHAPES) || og_is(n, ONNX_Transpose);
  /* a copy of a weight in another layout is that weight (passes never
   * drop it for the values it holds) */
  k->is_param = moves_data && src && src->is_param;
  if (moves_data && src && src->is_init && src->n_uses == 1) {
    k->name = src->name;
    src->name = arena_printf(c->arena, "%s__before_%s", src->name, n->op_type);
  }
  og_replace_uses(g, out, k);
  n->dead = true;
  for (int j = 0; j < n->n_inputs; j++)
    if (n->inputs[j]) n->inputs[j]->n_uses--;
}

static void fold_to(Ctx *c, OGraph *g, ONode *n, ElemType et, int rank, const int64_t *dims,
                    const void *bytes, size_t nbytes) {
  fold_to_data(c, g, n, et, rank, dims, (Data){DATA_RAW, bytes, nbytes});
}

static bool read_i64s(Tensor *t, int64_t *out, int max) {
  if (t->rank > 1 || t->numel > max) return false;
  for (int64_t i = 0; i < t->numel; i++) {
    if (t->et == ET_I64) memcpy(&out[i], t->bytes + 8 * i, 8);
    else if (t->et == ET_I32) {
      int32_t v;
      memcpy(&v, t->bytes + 4 * i, 4);
      out[i] = v;
    } else return false;
  }
  return true;
}

/* Strides of a row-major shape. */
static void strides_of(const int64_t *dims, int rank, int64_t *strides) {
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; i--) {
    strides[i] = s;
    s *= dims[i];
  }
}

/* Copies src (shape sdims, broadcast into out dims per numpy rules, or
 * permuted by perm when perm is non-NULL) element by element. */
static void gather_copy(const Tensor *src, const int64_t *odims, int orank, const int64_t *perm,
                        uint8_t *out) {
  size_t es = et_size(src->et);
  int64_t sstr[MAX_RANK], istr[MAX_RANK] = {0}, idx[MAX_RANK] = {0};
  strides_of(src->dims, src->rank, sstr);
  for (int i = 0; i < orank; i++) {
    if (perm) istr[i] = sstr[perm[i]];
    else {
      int si = i - (orank - src->rank);
      istr[i] = (si >= 0 && src->dims[si] != 1) ? sstr[si] : 0;
    }
  }
  int64_t numel = 1;
  for (int i = 0; i < orank; i++) numel *= odims[i];
  int64_t off = 0;
  for (int64_t k = 0; k < numel; k++) {
    /* constant sizes: one load and store, not a memcpy call per element
     * (a transposed embedding is tens of millions of elements) */
    uint8_t *d = out + (size_t)k * es;
    const uint8_t *s = src->bytes + (size_t)off * es;
    switch (es) {
    case 4: memcpy(d, s, 4); break;
    case 2: memcpy(d, s, 2); break;
    case 8: memcpy(d, s, 8); break;
    case 1: *d = *s; break;
    default: memcpy(d, s, es); break;
    }
    for (int i = orank - 1; i >= 0; i--) {
      idx[i]++;
      off += istr[i];
      if (idx[i] < odims[i]) break;
      off -= istr[i] * idx[i];
      idx[i] = 0;
    }
  }
}

static double load(ElemType et, const uint8_t *p) {
  switch (et) {
  case ET_F32: { float f; memcpy(&f, p, 4); return f; }
  case ET_F64: { double f; memcpy(&f, p, 8); return f; }
  default: return 0;
  }
}

static void store(ElemType et, uint8_t *p, double v) {
  if (et == ET_F32) { float f = (float)v; memcpy(p, &f, 4); }
  else if (et == ET_F64) memcpy(p, &v, 8);
}

static int64_t shape_numel(const int64_t *dims, int rank) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= dims[i];
  return n;
}

/* The folds.  Each returns true when it replaced the node. */

static bool fold_view(Ctx *c, OGraph *g, ONode *n, Tensor *x) {
  /* Reshape / Squeeze / Unsqueeze / Identity: same bytes, the output's shape. */
  const OType *ot = &n->outputs[0]->type;
  if (ot->rank < 0) return false;
  int64_t dims[MAX_RANK];
  for (int i = 0; i < ot->rank; i++) {
    dims[i] = ot->dims[i].value;
    if (dims[i] < 0) return false;
  }
  if (shape_numel(dims, ot->rank) != x->numel) return false;
  fold_to_data(c, g, n, x->et, ot->rank, dims, *x->data); /* the same bytes, hex or not */
  return true;
}

static bool fold_transpose(Ctx *c, OGraph *g, ONode *n, Tensor *x) {
  const OAttr *perm_attr = og_get_attr(n, "perm");
  int64_t perm[MAX_RANK], dims[MAX_RANK];
  for (int i = 0; i < x->rank; i++) perm[i] = x->rank - 1 - i;
  if (perm_attr) {
    if (perm_attr->n != x->rank) return false;
    memcpy(perm, perm_attr->ints, sizeof(int64_t) * (size_t)x->rank);
  }
  size_t nbytes = (size_t)x->numel * et_size(x->et);
  if (nbytes > FOLD_MAX_TRANSPOSE) return false;
  /* A weight that other nodes read too (a tied embedding: Gather reads it,
   * the output projection its transpose) would be written twice: the model
   * grows by the copy (+31 % for GPT-2), and making the copy costs more time
   * than the rest of the conversion.  The runtime folds it once at load. */
  if (n->inputs[0]->n_uses > 1 && x->numel > FOLD_MAX_ELEMS) return false;
  for (int i = 0; i < x->rank; i++) {
    if (perm[i] < 0 || perm[i] >= x->rank) return false;
    dims[i] = x->dims[perm[i]];
  }
  uint8_t *out = arena_alloc(c->arena, nbytes ? nbytes : 1);
  gather_copy(x, dims, x->rank, perm, out);
  fold_to(c, g, n, x->et, x->rank, dims, out, nbytes);
  return true;
}

static bool fold_expand(Ctx *c, OGraph *g, ONode *n, Tensor *x, Tensor *shape,
                        int64_t max_growth) {
  int64_t target[MAX_RANK], dims[MAX_RANK];
  if (!read_i64s(shape, target, MAX_RANK)) return false;
  int rank = (int)shape->numel > x->rank ? (int)shape->numel : x->rank;
  for (int i = 0; i < rank; i++) {
    int ti = i - (rank - (int)shape->numel), xi = i - (rank - x->rank);
    int64_t a = ti >= 0 ? target[ti] : 1, b = xi >= 0 ? x->dims[xi] : 1;
    if (a != b && a != 1 && b != 1) return false;
    dims[i] = a == 1 ? b : a;
  }
  int64_t numel = shape_numel(dims, rank);
  if (numel > FOLD_MAX_ELEMS || (numel > x->numel && numel > max_growth)) return false;
  size_t nbytes = (size_t)numel * et_size(x->et);
  uint8_t *out = arena_alloc(c->arena, nbytes ? nbytes : 1);
  gather_copy(x, dims, rank, NULL, out);
  fold_to(c, g, n, x->et, rank, dims, out, nbytes);
  return true;
}

/* The result shape of numpy broadcasting of in[0..n_in), or false. */
static bool broadcast_dims(const Tensor *in, int n_in, int *rank, int64_t *dims) {
  *rank = 0;
  for (int k = 0; k < n_in; k++)
    if (in[k].rank > *rank) *rank = in[k].rank;
  for (int i = 0; i < *rank; i++) {
    dims[i] = 1;
    for (int k = 0; k < n_in; k++) {
      int xi = i - (*rank - in[k].rank);
      int64_t d = xi >= 0 ? in[k].dims[xi] : 1;
      if (d != 1 && dims[i] != 1 && d != dims[i]) return false;
      if (d != 1) dims[i] = d;
    }
  }
  return true;
}

/* The operands of an elementwise fold broadcast to their common shape, and
 * the buffer for its result. */
typedef struct Broadcast {
  int rank;
  int64_t dims[MAX_RANK];
  int64_t numel;
  uint8_t *in[3]; /* arena copies of the operands, numel elements each */
  uint8_t *out;   /* numel elements of the result's type */
} Broadcast;

/* Broadcasts in[0..n_in) (3 at most) to their common shape and allocates a
 * result of type out_et, unless the result would be larger than folds allow
 * (see FOLD_MAX_ELEMS and max_growth). */
static bool broadcast_inputs(Ctx *c, Tensor *in, int n_in, int64_t max_growth, ElemType out_et,
                             Broadcast *b) {
  if (n_in > (int)(sizeof b->in / sizeof b->in[0]) || !broadcast_dims(in, n_in, &b->rank, b->dims))
    return false;
  int64_t largest = 0;
  b->numel = shape_numel(b->dims, b->rank);
  for (int k = 0; k < n_in; k++)
    if (in[k].numel > largest) largest = in[k].numel;
  if (b->numel > FOLD_MAX_ELEMS || (b->numel > largest && b->numel > max_growth)) return false;
  for (int k = 0; k < n_in; k++) {
    b->in[k] = arena_alloc(c->arena, (size_t)b->numel * et_size(in[k].et) + 1);
    gather_copy(&in[k], b->dims, b->rank, NULL, b->in[k]);
  }
  b->out = arena_alloc(c->arena, (size_t)b->numel * et_size(out_et) + 1);
  return true;
}

/* The arithmetic fold_arith computes: one or two operands, one element each. */
static bool is_arith(OnnxOp op) {
  switch (op) {
  case ONNX_Add: case ONNX_Sub: case ONNX_Mul: case ONNX_Div: case ONNX_Neg: case ONNX_Sqrt:
  case ONNX_Reciprocal: return true;
  default: return false;
  }
}

/* In double for f32 too: for + - * / and sqrt of two floats, the double
 * result rounded once to float (store) is the float result, bit for bit (53
 * bits are more than 2 * 24 + 2: that double rounding is innocuous), so
 * the folded bits match a float32 runtime. */
static double arith(OnnxOp op, double a, double b) {
  switch (op) {
  case ONNX_Add: return a + b;
  case ONNX_Sub: return a - b;
  case ONNX_Mul: return a * b;
  case ONNX_Div: return a / b;
  case ONNX_Neg: return -a;
  case ONNX_Sqrt: return sqrt(a);
  case ONNX_Reciprocal: return 1.0 / a;
  default: return NAN; /* not is_arith */
  }
}

static bool fold_arith(Ctx *c, OGraph *g, ONode *n, Tensor *in, int n_in, int64_t max_growth) {
  ElemType et = in[0].et;
  if (et != ET_F32 && et != ET_F64) return false;
  for (int k = 0; k < n_in; k++)
    if (in[k].et != et) return false;
  Broadcast bc;
  if (!broadcast_inputs(c, in, n_in, max_growth, et, &bc)) return false;
  size_t es = et_size(et);
  for (int64_t i = 0; i < bc.numel; i++) {
    double a = load(et, bc.in[0] + i * (int64_t)es);
    double b = n_in > 1 ? load(et, bc.in[1] + i * (int64_t)es) : 0;
    store(et, bc.out + i * (int64_t)es, arith(n->kind, a, b));
  }
  fold_to(c, g, n, et, bc.rank, bc.dims, bc.out, (size_t)bc.numel * es);
  return true;
}

/* A number of one of the types fold reads exactly: an integer (bool
 * included) or a float. */
typedef struct Num {
  bool is_float;
  int64_t i;
  double f;
} Num;

static bool num_type(ElemType et) {
  return et == ET_BOOL || et == ET_I8 || et == ET_I16 || et == ET_I32 || et == ET_I64 ||
         et == ET_U8 || et == ET_U16 || et == ET_U32 || et == ET_F32 || et == ET_F64;
}

static Num num_load(ElemType et, const uint8_t *p) {
  Num v = {false, 0, 0};
  switch (et) {
  case ET_BOOL: v.i = *p != 0; break;
  case ET_U8: v.i = *p; break;
  case ET_I8: { int8_t x; memcpy(&x, p, 1); v.i = x; break; }
  case ET_I16: { int16_t x; memcpy(&x, p, 2); v.i = x; break; }
  case ET_U16: { uint16_t x; memcpy(&x, p, 2); v.i = x; break; }
  case ET_I32: { int32_t x; memcpy(&x, p, 4); v.i = x; break; }
  case ET_U32: { uint32_t x; memcpy(&x, p, 4); v.i = x; break; }
  case ET_I64: memcpy(&v.i, p, 8); break;
  default: v.is_float = true; v.f = load(et, p); break;
  }
  return v;
}

static bool int_fits(ElemType et, int64_t v) {
  switch (et) {
  case ET_BOOL: return v == 0 || v == 1;
  case ET_I8: return v >= INT8_MIN && v <= INT8_MAX;
  case ET_U8: return v >= 0 && v <= UINT8_MAX;
  case ET_I16: return v >= INT16_MIN && v <= INT16_MAX;
  case ET_U16: return v >= 0 && v <= UINT16_MAX;
  case ET_I32: return v >= INT32_MIN && v <= INT32_MAX;
  case ET_U32: return v >= 0 && v <= (int64_t)UINT32_MAX;
  default: return true;
  }
}

static void int_store(ElemType et, uint8_t *p, int64_t v) {
  size_t es = et_size(et);
  uint8_t le[8];
  for (size_t b = 0; b < 8; b++) le[b] = (uint8_t)((uint64_t)v >> (8 * b));
  memcpy(p, le, es); /* little-endian, as tensor bytes are */
}

/* Cast converts a value the way a runtime's static_cast does: IEEE rounding
 * to nearest between numbers, truncation from float to integer.  Only what
 * C computes the same way is folded: no integer overflow (runtimes wrap or
 * saturate), no NaN or out-of-range float to integer (undefined). */
static bool fold_cast(Ctx *c, OGraph *g, ONode *n, Tensor *x) {
  const OAttr *to = og_get_attr(n, "to");
  if (!to || x->numel > FOLD_MAX_ELEMS) return false;
  ElemType et = (ElemType)to->i;
  if (!num_type(et) || !num_type(x->et)) return false;
  size_t es = et_size(et), xs = et_size(x->et);
  uint8_t *out = arena_alloc(c->arena, (size_t)x->numel * es + 1);
  for (int64_t i = 0; i < x->numel; i++) {
    Num v = num_load(x->et, x->bytes + (size_t)i * xs);
    uint8_t *o = out + (size_t)i * es;
    if (et == ET_F32) {
      float f = v.is_float ? (float)v.f : (float)v.i; /* one rounding, from the source */
      memcpy(o, &f, 4);
    } else if (et == ET_F64) {
      double d = v.is_float ? v.f : (double)v.i;
      memcpy(o, &d, 8);
    } else if (et == ET_BOOL) {
      if (v.is_float && isnan(v.f)) return false;
      *o = v.is_float ? v.f != 0 : v.i != 0;
    } else {
      int64_t w;
      if (v.is_float) {
        if (!(v.f > -9.2e18 && v.f < 9.2e18)) return false; /* NaN too */
        w = (int64_t)v.f;
      } else {
        w = v.i;
      }
      if (!int_fits(et, w)) return false;
      int_store(et, o, w);
    }
  }
  fold_to(c, g, n, et, x->rank, x->dims, out, (size_t)x->numel * es);
  return true;
}

/* Comparisons and boolean logic of constants: exact in any type (a float
 * comparison involving NaN is false in C as in IEEE and ONNX). */
static bool fold_logic(Ctx *c, OGraph *g, ONode *n, Tensor *in, int n_in, int64_t max_growth) {
  enum { GT, LT, GE, LE, EQ, AND, OR, XOR, NOT } op;
  if (og_is(n, ONNX_Greater)) op = GT;
  else if (og_is(n, ONNX_Less)) op = LT;
  else if (og_is(n, ONNX_GreaterOrEqual)) op = GE;
  else if (og_is(n, ONNX_LessOrEqual)) op = LE;
  else if (og_is(n, ONNX_Equal)) op = EQ;
  else if (og_is(n, ONNX_And)) op = AND;
  else if (og_is(n, ONNX_Or)) op = OR;
  else if (og_is(n, ONNX_Xor)) op = XOR;
  else if (og_is(n, ONNX_Not)) op = NOT;
  else return false;
  if (n_in != (op == NOT ? 1 : 2) || !num_type(in[0].et)) return false;
  if (n_in == 2 && in[1].et != in[0].et) return false;
  if (op >= AND && in[0].et != ET_BOOL) return false;
  Broadcast bc;
  if (!broadcast_inputs(c, in, n_in, max_growth, ET_BOOL, &bc)) return false;
  size_t es = et_size(in[0].et);
  for (int64_t i = 0; i < bc.numel; i++) {
    Num a = num_load(in[0].et, bc.in[0] + (size_t)i * es);
    Num b = n_in > 1 ? num_load(in[0].et, bc.in[1] + (size_t)i * es) : a;
    bool r;
    if (a.is_float) {
      switch (op) {
      case GT: r = a.f > b.f; break;
      case LT: r = a.f < b.f; break;
      case GE: r = a.f >= b.f; break;
      case LE: r = a.f <= b.f; break;
      case EQ: r = a.f == b.f; break;
      default: return false;
      }
    } else {
      switch (op) {
      case GT: r = a.i > b.i; break;
      case LT: r = a.i < b.i; break;
      case GE: r = a.i >= b.i; break;
      case LE: r = a.i <= b.i; break;
      case EQ: r = a.i == b.i; break;
      case AND: r = a.i && b.i; break;
      case OR: r = a.i || b.i; break;
      case XOR: r = (a.i != 0) != (b.i != 0); break;
      case NOT: r = !a.i; break;
      default: return false;
      }
    }
    bc.out[i] = r;
  }
  fold_to(c, g, n, ET_BOOL, bc.rank, bc.dims, bc.out, (size_t)bc.numel);
  return true;
}

static bool fold_concat(Ctx *c, OGraph *g, ONode *n, Tensor *in, int n_in) {
  /* 1-D integer concatenations: the shapes built for Reshape and Expand. */
  int64_t vals[MAX_RANK * 4];
  int64_t total = 0;
  ElemType et = in[0].et;
  for (int k = 0; k < n_in; k++) {
    if (in[k].rank != 1 || in[k].et != et || total + in[k].numel > (int64_t)(sizeof vals / sizeof vals[0]))
      return false;
    if (!read_i64s(&in[k], vals + total, (int)in[k].numel)) return false;
    total += in[k].numel;
  }
  size_t es = et_size(et);
  uint8_t *out = arena_alloc(c->arena, (size_t)total * es + 1);
  for (int64_t i = 0; i < total; i++) {
    if (et == ET_I64) memcpy(out + 8 * i, &vals[i], 8);
    else { int32_t w = (int32_t)vals[i]; memcpy(out + 4 * i, &w, 4); }
  }
  fold_to(c, g, n, et, 1, &total, out, (size_t)total * es);
  return true;
}

/* Where of constants picks elements without computing: exact in any type
 * (with Range, the causal mask Haiku users build in the model: jnp.tril). */
static bool fold_where(Ctx *c, OGraph *g, ONode *n, Tensor *in, int64_t max_growth) {
  ElemType et = in[1].et;
  if (in[0].et != ET_BOOL || in[2].et != et) return false;
  Broadcast bc;
  if (!broadcast_inputs(c, in, 3, max_growth, et, &bc)) return false;
  size_t es = et_size(et);
  for (int64_t i = 0; i < bc.numel; i++)
    memcpy(bc.out + (size_t)i * es, bc.in[bc.in[0][i] ? 1 : 2] + (size_t)i * es, es);
  fold_to(c, g, n, et, bc.rank, bc.dims, bc.out, (size_t)bc.numel * es);
  return true;
}

/* Range of integer scalars, the iota of a mask built at run time: exact.  A
 * float Range is left alone: runtimes add delta again and again or multiply
 * it by the index, which round differently. */
static bool fold_range(Ctx *c, OGraph *g, ONode *n, Tensor *in, int64_t max_growth) {
  ElemType et = in[0].et;
  if ((et != ET_I32 && et != ET_I64) || in[1].et != et || in[2].et != et) return false;
  int64_t v[3]; /* start, limit, delta */
  const int64_t big = (int64_t)1 << 61; /* below: limit - start + delta fits */
  for (int k = 0; k < 3; k++) {
    if (in[k].numel != 1) return false;
    v[k] = num_load(et, in[k].bytes).i;
    if (v[k] <= -big || v[k] >= big) return false;
  }
  int64_t start = v[0], limit = v[1], delta = v[2], count = 0;
  if (delta > 0 && limit > start) count = (limit - start + delta - 1) / delta;
  else if (delta < 0 && limit < start) count = (start - limit - delta - 1) / -delta;
  else if (delta == 0) return false; /* an error at run time */
  if (count > FOLD_MAX_ELEMS || (count > 1 && count > max_growth)) return false;
  size_t es = et_size(et);
  uint8_t *out = arena_alloc(c->arena, (size_t)count * es + 1);
  for (int64_t i = 0; i < count; i++) int_store(et, out + (size_t)i * es, start + i * delta);
  fold_to(c, g, n, et, 1, &count, out, (size_t)count * es);
  return true;
}

/* Integer arithmetic of constants (the clamps and offsets of JAX's dynamic
 * slices and gathers): + - * min max and negation of int32 or int64, exact
 * unless it overflows, which is left to the runtime. */
static bool fold_int_arith(Ctx *c, OGraph *g, ONode *n, Tensor *in, int n_in, int64_t max_growth) {
  OnnxOp op = n->kind;
  bool unary = op == ONNX_Neg;
  if (!unary && op != ONNX_Add && op != ONNX_Sub && op != ONNX_Mul && op != ONNX_Min &&
      op != ONNX_Max)
    return false;
  ElemType et = in[0].et;
  if ((et != ET_I32 && et != ET_I64) || n_in != (unary ? 1 : 2) || (n_in == 2 && in[1].et != et))
    return false;
  Broadcast bc;
  if (!broadcast_inputs(c, in, n_in, max_growth, et, &bc)) return false;
  size_t es = et_size(et);
  const int64_t small = (int64_t)1 << 31; /* |a|, |b| below: a * b fits */
  for (int64_t i = 0; i < bc.numel; i++) {
    int64_t a = num_load(et, bc.in[0] + (size_t)i * es).i;
    int64_t b = unary ? 0 : num_load(et, bc.in[1] + (size_t)i * es).i, r;
    switch (op) {
    case ONNX_Neg: if (a == INT64_MIN) return false; r = -a; break;
    case ONNX_Add:
      if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b)) return false;
      r = a + b;
      break;
    case ONNX_Sub:
      if ((b < 0 && a > INT64_MAX + b) || (b > 0 && a < INT64_MIN + b)) return false;
      r = a - b;
      break;
    case ONNX_Mul:
      if (a <= -small || a >= small || b <= -small || b >= small) return false;
      r = a * b;
      break;
    case ONNX_Min: r = a < b ? a : b; break;
    default: r = a > b ? a : b; break; /* ONNX_Max */
    }
    if (!int_fits(et, r)) return false;
    int_store(et, bc.out + (size_t)i * es, r);
  }
  fold_to(c, g, n, et, bc.rank, bc.dims, bc.out, (size_t)bc.numel * es);
  return true;
}

static bool try_fold(Ctx *c, OGraph *g, ONode *n, int64_t max_growth) {
  if (n->n_outputs != 1 || n->outputs[0]->is_output || n->n_inputs > 8 || n->n_inputs == 0) return false;
  Tensor in[8];
  for (int j = 0; j < n->n_inputs; j++)
    if (!n->inputs[j] || !static_tensor(c, n->inputs[j], &in[j])) return false;
  if (onnx_op_has(n->kind, ONNX_RESHAPES)) return fold_view(c, g, n, &in[0]);
  if (og_is(n, ONNX_Transpose))
    return decode_inputs(c, in, 1, FOLD_MAX_TRANSPOSE) && fold_transpose(c, g, n, &in[0]);
  if (!decode_inputs(c, in, n->n_inputs, (size_t)FOLD_MAX_ELEMS * 8)) return false;
  if (og_is(n, ONNX_Expand) && n->n_inputs == 2) return fold_expand(c, g, n, &in[0], &in[1], max_growth);
  if (og_is(n, ONNX_Cast)) return fold_cast(c, g, n, &in[0]);
  if (fold_logic(c, g, n, in, n->n_inputs, max_growth) ||
      fold_int_arith(c, g, n, in, n->n_inputs, max_growth))
    return true;
  if (og_is(n, ONNX_Concat)) return fold_concat(c, g, n, in, n->n_inputs);
  if (og_is(n, ONNX_Where) && n->n_inputs == 3) return fold_where(c, g, n, in, max_growth);
  if (og_is(n, ONNX_Range) && n->n_inputs == 3) return fold_range(c, g, n, in, max_growth);
  if (n->n_inputs <= 2 && is_arith(n->kind))
    return fold_arith(c, g, n, in, n->n_inputs, max_growth);
  return false;
}

/* Shape(x) of a statically shaped x is a constant too. */
static bool fold_shape(Ctx *c, OGraph *g, ONode *n) {
  if (!og_is(n, ONNX_Shape) || n->outputs[0]->is_output) return false;
  const OType *t = &n->inputs[0]->type;
  if (t->rank < 0) return false;
  int64_t start = 0, end = t->rank;
  const OAttr *a = og_get_attr(n, "start");
  if (a) start = a->i < 0 ? a->i + t->rank : a->i;
  a = og_get_attr(n, "end");
  if (a) end = a->i < 0 ? a->i + t->rank : (a->i > t->rank ? t->rank : a->i);
  if (start < 0) start = 0;
  if (end < start) end = start;
  int64_t count = end - start;
  int64_t *vals = arena_alloc(c->arena, sizeof(int64_t) * (size_t)(count + 1));
  for (int64_t i = 0; i < count; i++) {
    vals[i] = t->dims[start + i].value;
    if (vals[i] < 0) return false;
  }
  fold_to(c, g, n, ET_I64, 1, &count, vals, sizeof(int64_t) * (size_t)count);
  return true;
}

static void fold_graph(Ctx *c, OGraph *g, int64_t max_growth) {
  for (int i = 0; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    if (!try_fold(c, g, n, max_growth)) fold_shape(c, g, n);
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH) fold_graph(c, n->attrs[j].graph, max_growth);
  }
}

int pass_fold(Ctx *c, OModel *m) {
  fold_graph(c, m->graph, 0);
  return 0;
}

int pass_fold_late(Ctx *c, OModel *m) {
  fold_graph(c, m->graph, FOLD_SMALL_GROWTH);
  return 0;
}
