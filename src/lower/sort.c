/* sort.c - stablehlo.sort and chlo.top_k, as ONNX TopK.
 *
 * ONNX has no sort, but TopK with k = the length of the axis and sorted=1
 * is one, and a stable one: the operator spec breaks ties by the lower
 * index, whether largest is 1 or 0 (onnxruntime does, for every k).  So a
 * stable ascending sort is TopK(largest=0) and a stable descending one
 * TopK(largest=1); an unstable sort may be stable.
 *
 * The comparator region is recognised structurally, never evaluated.  What
 * jax.lax.sort emits is a lexicographic "less than" over the first num_keys
 * operands, each key compared by
 *   key(j) = compare LT canon(a_j), canon(b_j), TOTALORDER   (floats)
 *          | compare LT a_j, b_j, SIGNED/UNSIGNED              (integers)
 *   cmp    = key(j) | or(key(j), and(compare EQ .., cmp))      (more keys)
 * where canon maps -0.0 to +0.0 and every NaN to one NaN (two selects).
 * GT comparators (descending: top_k's decomposition, hand-written HLO) and
 * operands compared in either order are accepted too.  Operands that are no
 * key are carried along.
 *
 * TopK compares with < and ==, where NaN is unordered and -0.0 == +0.0,
 * whereas TOTALORDER puts NaN above +inf and, unless canonicalised, -0.0
 * below +0.0.  A float key is therefore sorted through an order-preserving
 * map into f64, where those become ordinary values:
 *   f16/bf16/f32 x -> f64(x), with +inf -> DBL_MAX, NaN -> +inf and, when
 *                     zeros are ordered, -0.0 -> -DBL_MIN
 *   (f64 has no wider type: an f64 key is two keys, a class - below or at
 *   -0.0, at or above +0.0, NaN - and the value with NaN -> 0.)
 * The sign of a NaN cannot be read in ONNX (no bitcast), so a -NaN counts
 * as a +NaN: last ascending, first descending.  JAX's own sort
 * canonicalises NaNs, so only top_k (-NaN smallest in JAX) differs.
 * Integer keys sort in i32 or i64 (onnxruntime's TopK has no unsigned
 * kernels but u8; u64 keys flip their top bit into i64 order).
 *
 * Several keys are sorted least significant first, each a stable TopK over
 * the keys permuted so far (LSD radix order); the permutations compose by
 * GatherElements.  Every operand is then GatherElements(x, perm); an iota
 * along the sort axis (argsort's second operand) is the permutation itself.
 */
#include "lower/lower.h"

#include <float.h>
#include <math.h>
#include <string.h>

#define MAX_KEYS 16

/* v gets the shape of HLO type t and element type et. */
static OValue *shaped(Lower *L, OValue *v, ElemType et, const Type *t) {
  return lw_typed(L, v, et, t->rank, t->dims);
}

/* ---- comparator recognition ---------------------------------------------- */

typedef struct SortKey {
  int operand;     /* the sort operand compared */
  bool descending; /* compared with GT */
  bool zero_tie;   /* -0.0 == +0.0: canonicalised, or a FLOAT compare */
} SortKey;

/* A scalar float constant of the body: its value. */
static bool body_const(Lower *L, const Value *v, double *out) {
  const Op *d = v->def;
  if (!d || d->kind != OP_CONSTANT) return false;
  const Attr *a = ir_op_attr(d, "value");
  if (!a || a->kind != AK_DENSE || !a->dense) return false;
  const Dense *dn = a->dense;
  size_t size = et_size(dn->et);
  if (size == 0 || dn->data.nbytes < size) return false;
  const uint8_t *p = data_bytes(L->c, &dn->data);
  switch (dn->et) {
  case ET_F32: { float f; memcpy(&f, p, 4); *out = f; return true; }
  case ET_F64: memcpy(out, p, 8); return true;
  case ET_BF16: {
    uint32_t bits = (uint32_t)(p[0] | p[1] << 8) << 16;
    float f;
    memcpy(&f, &bits, 4);
    *out = f;
    return true;
  }
  case ET_F16: {
    unsigned h = (unsigned)(p[0] | p[1] << 8), e = (h >> 10) & 0x1f, m = h & 0x3ff;
    double v0 = e == 0    ? ldexp(m, -24)
                : e == 31 ? (m ? NAN : INFINITY)
                          : ldexp(m | 0x400, (int)e - 25);
    *out = (h & 0x8000) ? -v0 : v0;
    return true;
  }
  default: return false;
  }
}

static bool is_compare(const Value *v, const char *dir, const Value **x, const Value **y) {
  const Op *d = v->def;
  if (!d || d->kind != OP_COMPARE || d->n_operands != 2) return false;
  const Attr *a = ir_op_attr(d, "comparison_direction");
  if (!a || !a->s || strcmp(a->s, dir) != 0) return false;
  *x = d->operands[0];
  *y = d->operands[1];
  return true;
}

static const char *compare_type(const Value *v) {
  const Attr *a = ir_op_attr(v->def, "compare_type");
  return a && a->s ? a->s : NULL;
}

static bool is_binary(const Value *v, OpKind k, const Value **a, const Value **b) {
  const Op *d = v->def;
  if (!d || d->kind != k || d->n_operands != 2) return false;
  *a = d->operands[0];
  *b = d->operands[1];
  return true;
}

/* v without JAX's canonicalisation of a comparator argument:
 *   select(compare EQ x 0, 0, x)   -0.0 -> +0.0  (*zero set)
 *   select(compare NE x x, NaN, x) NaN -> one NaN (changes no TopK order)
 * in either order; each test may read x or the value beneath. */
static const Value *strip_canon_at(Lower *L, const Value *v, bool *zero, int depth) {
  *zero = false;
  const Op *d = v->def;
  if (!d || d->kind != OP_SELECT || d->n_operands != 3 || depth > 4) return v;
  const Value *p = d->operands[0], *t = d->operands[1], *x = d->operands[2], *a, *b;
  bool inner_zero;
  const Value *base = strip_canon_at(L, x, &inner_zero, depth + 1);
  double c, z;
  if (is_compare(p, "NE", &a, &b) && a == b && (a == x || a == base) && body_const(L, t, &c) &&
      isnan(c)) {
    *zero = inner_zero;
    return base;
  }
  const char *ct = is_compare(p, "EQ", &a, &b) ? compare_type(p) : NULL;
  bool float_eq = !ct || strcmp(ct, "TOTALORDER") != 0; /* TOTALORDER: -0.0 != 0 */
  if (is_compare(p, "EQ", &a, &b) && float_eq && body_const(L, t, &c) && c == 0) {
    const Value *other = body_const(L, b, &z) && z == 0   ? a
                         : body_const(L, a, &z) && z == 0 ? b
                                                          : NULL;
    if (other && (other == x || other == base)) {
      *zero = true;
      return base;
    }
  }
  return v;
}

static const Value *strip_canon(Lower *L, const Value *v, bool *zero) {
  return strip_canon_at(L, v, zero, 0);
}

/* The operand j and orientation of a comparison between canon(a_j) and
 * canon(b_j) (the body's arguments 2j and 2j+1); -1 when it is not one. */
static int key_of(Lower *L, const Block *b, const Value *x, const Value *y, bool *swapped,
                  bool *zero) {
  bool zx, zy;
  x = strip_canon(L, x, &zx);
  y = strip_canon(L, y, &zy);
  if (zx != zy) return -1;
  for (int j = 0; 2 * j + 1 < b->n_args; j++) {
    const Value *lhs = b->args[2 * j], *rhs = b->args[2 * j + 1];
    if ((x == lhs && y == rhs) || (x == rhs && y == lhs)) {
      *swapped = x == rhs;
      *zero = zx;
      return j;
    }
  }
  return -1;
}

/* Whether the compare's type orders elements of type et as the element type
 * says (an UNSIGNED compare of signed integers would not). */
static bool type_fits(const char *ct, ElemType et, bool *total) {
  *total = ct && strcmp(ct, "TOTALORDER") == 0;
  if (!ct) return true;
  if (et_is_float(et)) return *total || strcmp(ct, "FLOAT") == 0;
  if (et_is_signed_int(et)) return strcmp(ct, "SIGNED") == 0;
  return strcmp(ct, "UNSIGNED") == 0; /* unsigned integers, i1 */
}

/* compare LT/GT between the arguments of one operand: fills *k. */
static bool less_key(Lower *L, const Block *b, const Value *v, SortKey *k) {
  const Value *x, *y;
  bool gt = false, swapped, zero, total;
  if (!is_compare(v, "LT", &x, &y)) {
    if (!is_compare(v, "GT", &x, &y)) return false;
    gt = true;
  }
  int j = key_of(L, b, x, y, &swapped, &zero);
  if (j < 0 || !type_fits(compare_type(v), b->args[2 * j]->type.et, &total)) return false;
  k->operand = j;
  k->descending = gt != swapped;
  k->zero_tie = zero || !total; /* a FLOAT compare has -0.0 == +0.0 */
  return true;
}

/* compare EQ between the same operand's arguments, with the same view of
 * zeros as the less-than it goes with. */
static bool equal_key(Lower *L, const Block *b, const Value *v, const SortKey *k) {
  const Value *x, *y;
  bool swapped, zero, total;
  if (!is_compare(v, "EQ", &x, &y)) return false;
  int j = key_of(L, b, x, y, &swapped, &zero);
  return j == k->operand && type_fits(compare_type(v), b->args[2 * j]->type.et, &total) &&
         (zero || !total) == k->zero_tie;
}

/* The keys of a comparator, most significant first; their count, or -1. */
static int comparator_keys(Lower *L, const Block *b, SortKey *keys) {
  if (b->n_ops == 0) return -1;
  const Op *ret = b->ops[b->n_ops - 1];
  if (ret->kind != OP_RETURN || ret->n_operands != 1) return -1;
  const Value *v = ret->operands[0];
  int n = 0;
  while (n < MAX_KEYS) {
    if (less_key(L, b, v, &keys[n])) return n + 1;
    /* or(less_j, and(equal_j, rest)), either operand order at each level */
    const Value *p, *q, *e, *r;
    if (!is_binary(v, OP_OR, &p, &q)) return -1;
    if (!less_key(L, b, p, &keys[n])) {
      const Value *t = p;
      p = q;
      q = t;
      if (!less_key(L, b, p, &keys[n])) return -1;
    }
    if (!is_binary(q, OP_AND, &e, &r)) return -1;
    if (!equal_key(L, b, e, &keys[n])) {
      const Value *t = e;
      e = r;
      r = t;
      if (!equal_key(L, b, e, &keys[n])) return -1;
    }
    n++;
    v = r;
  }
  return -1;
}

/* The ops of a body, for messages. */
static const char *body_ops(Lower *L, const Block *b) {
  char *s = "";
  for (int i = 0; i < b->n_ops && i < 12; i++)
    s = arena_printf(L->c->arena, "%s%s%s", s, i ? ", " : "", b->ops[i]->opname);
  return b->n_ops > 12 ? arena_printf(L->c->arena, "%s, ...", s) : s;
}

/* ---- sort keys as TopK inputs -------------------------------------------- */

typedef struct SortPass {
  OValue *key;  /* what TopK compares */
  bool largest; /* descending */
} SortPass;

/* -0.0 (as opposed to +0.0) in x. */
static OValue *negative_zero(Lower *L, OValue *x, const Type *t) {
  ElemType et = x->type.et;
  OValue *zero = shaped(L, lw_op2(L, "Equal", x, lw_const_scalar(L, et, 0)), ET_BOOL, t);
  OValue *neg = shaped(L, lw_op2(L, "Less", shaped(L, lw_op1(L, "Reciprocal", x), et, t),
                                 lw_const_scalar(L, et, 0)),
                       ET_BOOL, t);
  return shaped(L, lw_op2(L, "And", zero, neg), ET_BOOL, t);
}

static OValue *where(Lower *L, OValue *c, OValue *a, OValue *b, ElemType et, const Type *t) {
  return shaped(L, lw_op3(L, "Where", c, a, b), et, t);
}

/* Appends the TopK passes that sort by key k of operand x (HLO type t),
 * most significant first; their count, or -1 when the type cannot be. */
static int key_passes(Lower *L, OValue *x, const Type *t, const SortKey *k, SortPass *out) {
  ElemType et = t->et;
  bool big = k->descending;
  switch (et) {
  case ET_F16: case ET_BF16: case ET_F32: {
    OValue *f = lw_cast(L, et == ET_BF16 ? lw_cast(L, x, ET_F32) : x, ET_F64);
    ONode *inf = lw_node(L, "IsInf", 1, &f, 1);
    og_attr_int(L->c, inf, "detect_negative", 0);
    shaped(L, inf->outputs[0], ET_BOOL, t);
    f = where(L, inf->outputs[0], lw_const_scalar(L, ET_F64, DBL_MAX), f, ET_F64, t);
    OValue *nan = shaped(L, lw_op1(L, "IsNaN", f), ET_BOOL, t);
    f = where(L, nan, lw_const_scalar(L, ET_F64, INFINITY), f, ET_F64, t);
    if (!k->zero_tie)
      f = where(L, negative_zero(L, f, t), lw_const_scalar(L, ET_F64, -DBL_MIN), f, ET_F64, t);
    out[0] = (SortPass){f, big};
    return 1;
  }
  case ET_F64: {
    /* class: 0 below or at -0.0, 1 at or above +0.0 (one class when zeros
     * tie), 2 NaN; then the value, NaN made harmless */
    OValue *nan = shaped(L, lw_op1(L, "IsNaN", x), ET_BOOL, t);
    OValue *cls = lw_cast(L, nan, ET_I32);
    if (!k->zero_tie) {
      OValue *low = shaped(L, lw_op2(L, "Less", x, lw_const_scalar(L, ET_F64, 0)), ET_BOOL, t);
      low = shaped(L, lw_op2(L, "Or", low, negative_zero(L, x, t)), ET_BOOL, t);
      OValue *sign = where(L, low, lw_const_scalar(L, ET_I32, 0), lw_const_scalar(L, ET_I32, 1),
                           ET_I32, t);
      cls = where(L, nan, lw_const_scalar(L, ET_I32, 2), sign, ET_I32, t);
    }
    out[0] = (SortPass){cls, big};
    out[1] = (SortPass){where(L, nan, lw_const_scalar(L, ET_F64, 0), x, ET_F64, t), big};
    return 2;
  }
  case ET_I32: case ET_I64:
    out[0] = (SortPass){x, big};
    return 1;
  case ET_I8: case ET_I16: case ET_U8: case ET_U16: case ET_BOOL:
    out[0] = (SortPass){lw_cast(L, x, ET_I32), big};
    return 1;
  case ET_U32:
    out[0] = (SortPass){lw_cast(L, x, ET_I64), big};
    return 1;
  case ET_U64: {
    /* x + 2^63 (wrapping) as i64 of the same bits: the top bit flipped, so
     * unsigned order becomes signed (u64 Add and Cast at every opset) */
    OValue *s = shaped(L, lw_op2(L, "Add", x, lw_const_scalar(L, ET_U64, 0x1p63)), ET_U64, t);
    out[0] = (SortPass){shaped(L, lw_cast(L, s, ET_I64), ET_I64, t), big};
    return 1;
  }
  default:
    return -1;
  }
}

/* The length of `axis` of x as TopK's K (a 1-D int64 of one element). */
static OValue *axis_length(Lower *L, OValue *x, const Type *t, int axis) {
  if (t->dims[axis] != DIM_DYN) return lw_const_i64s(L, 1, &t->dims[axis]);
  ONode *n = lw_node(L, "Shape", 1, &x, 1);
  og_attr_int(L->c, n, "start", axis);
  og_attr_int(L->c, n, "end", axis + 1);
  int64_t one = 1;
  return lw_typed(L, n->outputs[0], ET_I64, 1, &one);
}

static OValue *gather_elements(Lower *L, OValue *x, OValue *idx, int axis, ElemType et,
                               const Type *t) {
  ONode *n = lw_node(L, "GatherElements", 2, (OValue *[]){x, idx}, 1);
  og_attr_int(L->c, n, "axis", axis);
  return shaped(L, n->outputs[0], et, t);
}

/* TopK of key along axis; its indices (int64, type t), values in *vals. */
static OValue *topk(Lower *L, OValue *key, OValue *k, int axis, bool largest, const Type *t,
                    OValue **vals) {
  ONode *n = lw_node(L, "TopK", 2, (OValue *[]){key, k}, 2);
  og_attr_int(L->c, n, "axis", axis);
  og_attr_int(L->c, n, "largest", largest);
  og_attr_int(L->c, n, "sorted", 1);
  if (vals) *vals = shaped(L, n->outputs[0], key->type.et, t);
  return shaped(L, n->outputs[1], ET_I64, t);
}

/* The permutation (int64 indices, type t) that sorts stably by the passes,
 * most significant first: one TopK per pass, least significant first. */
static OValue *stable_permutation(Lower *L, const SortPass *p, int n, OValue *k, int axis,
                                  const Type *t, OValue **vals) {
  OValue *perm = NULL;
  for (int i = n - 1; i >= 0; i--) {
    OValue *key = p[i].key;
    if (perm) key = gather_elements(L, key, perm, axis, key->type.et, t);
    OValue *idx = topk(L, key, k, axis, p[i].largest, t, vals);
    perm = perm ? gather_elements(L, perm, idx, axis, ET_I64, t) : idx;
  }
  return perm;
}

/* ---- stablehlo.sort --------------------------------------------------------- */

int lower_sort(Lower *L, const Op *op) {
  int n = op->n_operands;
  if (n < 1 || op->n_results != n || op->n_regions != 1 || op->regions[0]->n_blocks != 1 ||
      op->regions[0]->blocks[0]->n_args != 2 * n)
    return diag_error_op(L->c, H2O_EINPUT, op,
                         "sort expects N operands, N results and a comparator of 2N arguments");
  const Type *t = &op->operands[0]->type;
  for (int i = 0; i < n; i++)
    if (op->operands[i]->type.kind != TK_TENSOR || op->operands[i]->type.rank != t->rank)
      return diag_error_op(L->c, H2O_EINPUT, op, "sort operands must be tensors of one shape");
  int64_t dim = 0;
  const Attr *da = ir_op_attr(op, "dimension");
  if (da && !ir_attr_int(da, &dim))
    return diag_error_op(L->c, H2O_EINPUT, op, "sort: 'dimension' is not an integer");
  if (dim < 0) dim += t->rank;
  if (t->rank < 1 || dim < 0 || dim >= t->rank)
    return diag_error_op(L->c, H2O_EINPUT, op, "sort dimension out of range");
  int axis = (int)dim;

  const Block *body = op->regions[0]->blocks[0];
  SortKey keys[MAX_KEYS];
  int nk = comparator_keys(L, body, keys);
  if (nk < 0)
    return lw_unsupported(L, "a comparator that is not a lexicographic less-than or "
                             "greater-than over operands (found: %s)", body_ops(L, body));

  /* Sorting an axis of length 0 or 1 moves nothing. */
  if (t->dims[axis] == 0 || t->dims[axis] == 1) {
    for (int i = 0; i < n; i++) lw_bind(L, op->results[i], lw_get(L, op->operands[i]));
    return 0;
  }

  SortPass passes[2 * MAX_KEYS];
  int np = 0;
  for (int i = 0; i < nk; i++) {
    const Value *xv = op->operands[keys[i].operand];
    int m = key_passes(L, lw_get(L, xv), &xv->type, &keys[i], passes + np);
    if (m < 0)
      return lw_unsupported(L, "sorting by %s keys", et_mlir_name(xv->type.et));
    np += m;
  }
  OValue *vals = NULL;
  OValue *k = axis_length(L, lw_get(L, op->operands[0]), t, axis);
  OValue *perm = stable_permutation(L, passes, np, k, axis, t, &vals);

  for (int i = 0; i < n; i++) {
    const Value *xv = op->operands[i];
    OValue *x = lw_get(L, xv), *r;
    ElemType et = xv->type.et;
    if (np == 1 && passes[0].key == x)
      r = vals; /* sorted by itself, untransformed: TopK's values are the result */
    else if (et_is_int(et) && lw_is_position_iota(xv, axis))
      r = lw_cast(L, perm, et); /* argsort's iota: the permutation itself */
    else
      r = gather_elements(L, x, perm, axis, et, &xv->type);
    lw_bind(L, op->results[i], r);
  }
  return 0;
}

/* ---- chlo.top_k ------------------------------------------------------------- */

/* The k largest elements along the last axis, largest first, ties in index
 * order, and their indices - JAX's lax.top_k, whose order is TOTALORDER's
 * (NaN largest, +0.0 above -0.0): as a sort by one descending key. */
/* The k first elements of x (result 0) and their positions (result 1)
 * along `axis` in the order of `key`. */
static int emit_top_k(Lower *L, const Op *op, const char *what, int axis, int64_t kk,
                      const SortKey *key) {
  const Value *xv = op->operands[0];
  const Type *t = &xv->type, *tv = &op->results[0]->type, *ti = &op->results[1]->type;
  OValue *x = lw_get(L, xv);
  SortPass passes[2];
  int np = key_passes(L, x, t, key, passes);
  if (np < 0)
    return lw_unsupported(L, "%s of %s elements", what, et_mlir_name(t->et));
  OValue *vals = NULL, *idx;
  if (np == 1) {
    idx = topk(L, passes[0].key, lw_const_i64s(L, 1, &kk), axis, passes[0].largest, tv, &vals);
  } else {
    /* two passes sort the whole axis; the first k positions are the result */
    OValue *perm = stable_permutation(L, passes, np, axis_length(L, x, t, axis), axis, t, NULL);
    int64_t zero = 0, ax = axis;
    OValue *in[4] = {perm, lw_const_i64s(L, 1, &zero), lw_const_i64s(L, 1, &kk),
                     lw_const_i64s(L, 1, &ax)};
    idx = shaped(L, lw_node(L, "Slice", 4, in, 1)->outputs[0], ET_I64, tv);
  }
  OValue *v = np == 1 && passes[0].key == x ? vals : gather_elements(L, x, idx, axis, t->et, tv);
  lw_bind(L, op->results[0], v);
  lw_bind(L, op->results[1], lw_cast(L, idx, ti->et));
  return 0;
}

int lower_top_k(Lower *L, const Op *op) {
  int64_t kk;
  const Attr *ka = ir_op_attr(op, "k");
  if (op->n_operands != 1 || op->n_results != 2 || !ka || !ir_attr_int(ka, &kk))
    return diag_error_op(L->c, H2O_EINPUT, op, "top_k expects one operand, k and two results");
  const Value *xv = op->operands[0];
  const Type *t = &xv->type, *tv = &op->results[0]->type, *ti = &op->results[1]->type;
  if (t->kind != TK_TENSOR || t->rank < 1 || tv->rank != t->rank || ti->rank != t->rank)
    return diag_error_op(L->c, H2O_EINPUT, op, "top_k needs a tensor of rank >= 1");
  int axis = t->rank - 1;
  if (kk < 0 || (t->dims[axis] != DIM_DYN && kk > t->dims[axis]))
    return diag_error_op(L->c, H2O_EINPUT, op, "top_k: k = %lld does not fit the last axis",
                         (long long)kk);
  SortKey key = {0, true, false};
  return emit_top_k(L, op, "top_k", axis, kk, &key);
}

/* custom_call @ApproxTopK (lax.approx_max_k / approx_min_k): operands x,
 * the iota of positions along reduction_dim and two init values (the TPU
 * algorithm's padding); the comparator (GT: max, LT: min) is
 * called_computations[0]; mhlo.backend_config holds top_k and
 * reduction_dim (with a symbolic batch, two result-shape operands
 * follow).  recall_target only lets the TPU miss some of the true top k:
 * the exact top k, which XLA's CPU fallback computes too, is a valid
 * answer, and the one JAX gives here. */
int lower_approx_top_k(Lower *L, const Op *op) {
  const Attr *cfg = ir_op_attr(op, "mhlo.backend_config");
  const Attr *ka = cfg ? ir_dict_field(cfg, "top_k") : NULL;
  const Attr *da = cfg ? ir_dict_field(cfg, "reduction_dim") : NULL;
  int64_t kk, dim;
  /* a symbolic shape adds the result shapes as operands 4 and 5
   * (indices_of_shape_operands); TopK needs none of them */
  bool shape_operands = op->n_operands == 6 && ir_op_attr(op, "indices_of_shape_operands");
  if ((op->n_operands != 4 && !shape_operands) || op->n_results != 2 || !ka || !da ||
      !ir_attr_int(ka, &kk) || !ir_attr_int(da, &dim))
    return lw_unsupported(L, "ApproxTopK without the operands (x, iota, init, init) and the "
                             "top_k and reduction_dim of its mhlo.backend_config");
  const Type *t = &op->operands[0]->type;
  /* aggregate_to_topk = false returns more than top_k (XLA's choice, e.g.
   * 256): the exact top of that many, as the CPU fallback gives */
  if (dim >= 0 && dim < op->results[0]->type.rank &&
      op->results[0]->type.dims[dim] != DIM_DYN)
    kk = op->results[0]->type.dims[dim];
  if (t->kind != TK_TENSOR || dim < 0 || dim >= t->rank || kk < 0 ||
      (t->dims[dim] != DIM_DYN && kk > t->dims[dim]) ||
      op->results[0]->type.rank != t->rank || op->results[1]->type.rank != t->rank)
    return diag_error_op(L->c, H2O_EINPUT, op, "ApproxTopK: top_k %lld or reduction_dim %lld "
                         "does not fit the operand", (long long)kk, (long long)dim);
  if (!lw_is_position_iota(op->operands[1], dim))
    return lw_unsupported(L, "ApproxTopK whose second operand is not the iota of positions "
                             "along dimension %lld", (long long)dim);
  const Attr *calls = ir_op_attr(op, "called_computations");
  const Func *f = calls && calls->kind == AK_ARRAY && calls->n_elems == 1 && calls->elems[0]->s
                      ? ir_find_func(L->module, calls->elems[0]->s)
                      : NULL;
  const Op *cmp = f && f->body->n_ops == 2 ? f->body->ops[0] : NULL;
  const Attr *dir = cmp && cmp->kind == OP_COMPARE ? ir_op_attr(cmp, "comparison_direction") : NULL;
  bool greater = dir && dir->s && strcmp(dir->s, "GT") == 0;
  if (!dir || !dir->s || !(greater || strcmp(dir->s, "LT") == 0) || cmp->n_operands != 2 ||
      f->n_args < 2 || cmp->operands[0] != f->body->args[0] ||
      cmp->operands[1] != f->body->args[1] || f->body->ops[1]->n_operands != 1 ||
      f->body->ops[1]->operands[0] != cmp->results[0])
    return lw_unsupported(L, "ApproxTopK whose comparator is not compare GT or LT of its "
                             "first two arguments");
  /* a FLOAT compare: -0.0 and +0.0 tie, the lower position first */
  SortKey key = {0, greater, true};
  return emit_top_k(L, op, greater ? "approx_max_k" : "approx_min_k", (int)dim, kk, &key);
}
