/* reduce.c - reductions: stablehlo.reduce to ONNX Reduce* and ArgMax/ArgMin.
 *
 * The body region (the parser gives one even for the `applies stablehlo.add`
 * short form; its arguments are [accumulators..., inputs...]) is recognised
 * structurally, never evaluated:
 *   - each result the reduction of one operand by one binary op
 *     (add/multiply/maximum/minimum; and/or on i1) -> ReduceSum/Prod/Max/Min;
 *   - the (value, iota index) pair JAX emits for argmax/argmin, with its
 *     compare GT/LT, NaN test and smaller-index tie-break -> ArgMax/ArgMin;
 *   - any other associative body (xor; bitwise and/or of integers;
 *     lw_body_is_associative) -> the body itself applied in halving steps
 *     (lower_reduce_by_body).
 * Anything else is reported naming the ops found in the body.  u64 max/min
 * and argmax/argmin, which onnxruntime has no kernels for, compare in i64
 * through an order-preserving map (ordered_i64).
 *
 * JAX semantics kept: an init value that is not the reduction's identity is
 * combined with the result; max/min over floats propagate NaN (onnxruntime's
 * ReduceMax/ArgMax ignore NaN unless it comes first, so a NaN guard is
 * added); argmax picks the first maximum, and the first NaN if any.
 */
#include "lower/lower.h"

#include <math.h>
#include <string.h>

typedef enum RKind { RK_NONE = 0, RK_SUM, RK_PROD, RK_MAX, RK_MIN } RKind;

/* ---- element types onnxruntime reduces ---------------------------------- */

/* The type a reduction of kind k over elements of type et is computed in
 * (cast there and back), from the kernels onnxruntime registers: Sum/Prod
 * take f16/f32/f64/i32/i64, Max/Min also i8/u8 and (opset 20) bool.
 * Narrow integers widen: the cast back wraps as the narrow sum would.
 * u64 max/min compare in i64 through ordered_i64. */
static ElemType reduce_type(Lower *L, RKind k, ElemType et) {
  switch (et) {
  case ET_F32: case ET_F64: case ET_F16: case ET_I32: case ET_I64: return et;
  case ET_BF16: return ET_F32;
  case ET_I8: case ET_U8: return k == RK_MAX || k == RK_MIN ? et : ET_I32;
  case ET_I16: case ET_U16: return ET_I32;
  case ET_U32: return ET_I64;
  case ET_U64: return ET_I64; /* sums: same bits mod 2^64; max/min: ordered_i64 */
  case ET_BOOL: return L->opset >= 20 ? ET_BOOL : ET_U8;
  default: return ET_UNDEF;
  }
}

/* ArgMax/ArgMin kernels: f16/f32/f64/i8/u8/i32/i64. */
static ElemType arg_type(ElemType et) {
  switch (et) {
  case ET_F32: case ET_F64: case ET_F16: case ET_I8: case ET_U8: case ET_I32: case ET_I64:
    return et;
  case ET_BF16: return ET_F32;
  case ET_BOOL: return ET_U8;
  case ET_I16: case ET_U16: return ET_I32;
  case ET_U32: return ET_I64;
  default: return ET_UNDEF;
  }
}

/* onnxruntime has no ReduceMax/ReduceMin/ArgMax/ArgMin for u64.  x + 2^63
 * (wrapping) cast to i64 orders as x does: [0, 2^63) goes to [-2^63, 0),
 * the rest to [0, 2^63); u64 Add and the bit-keeping Cast are exact. */
static OValue *ordered_i64(Lower *L, OValue *x, const Type *t) {
  OValue *shifted = lw_op2(L, "Add", x, lw_const_scalar(L, ET_U64, 0x1p63));
  return lw_cast(L, lw_typed(L, shifted, ET_U64, t->rank, t->dims), ET_I64);
}

static OValue *from_ordered_i64(Lower *L, OValue *m, const Type *t) {
  OValue *u = lw_typed(L, lw_cast(L, m, ET_U64), ET_U64, t->rank, t->dims);
  return lw_typed(L, lw_op2(L, "Add", u, lw_const_scalar(L, ET_U64, 0x1p63)), ET_U64, t->rank,
                  t->dims);
}

/* ---- constants ---------------------------------------------------------- */

/* The value of a scalar constant: floats in *f, integers and bools in *i
 * (unsigned ones as their bits).  False when v is not a constant scalar. */
static bool scalar_value(Lower *L, OValue *v, double *f, int64_t *i) {
  const Data *d = og_const_data(v);
  ElemType et = v->type.et;
  size_t size = et_size(et);
  if (!d || size == 0 || d->nbytes != size) return false;
  const uint8_t *p = data_bytes(L->c, d);
  uint64_t bits = 0;
  memcpy(&bits, p, size); /* little-endian host assumed, as the writer does */
  *f = 0;
  *i = 0;
  switch (et) {
  case ET_F32: case ET_F64: case ET_F16: case ET_BF16: *f = elem_load(p, et, 0); return true;
  case ET_I8: *i = (int8_t)bits; return true;
  case ET_I16: *i = (int16_t)bits; return true;
  case ET_I32: *i = (int32_t)bits; return true;
  case ET_I64: *i = (int64_t)bits; return true;
  case ET_BOOL: *i = bits != 0; return true;
  case ET_U8: case ET_U16: case ET_U32: case ET_U64: memcpy(i, &bits, 8); return true;
  default: return false;
  }
}

/* Whether init is the identity of the reduction, so it can be dropped:
 * 0, 1, the lowest value for max (-inf for floats), the highest for min. */
static bool is_identity(Lower *L, OValue *init, RKind k, ElemType et) {
  double f;
  int64_t i;
  if (!scalar_value(L, init, &f, &i)) return false;
  if (et_is_float(et)) {
    switch (k) {
    case RK_SUM: return f == 0;
    case RK_PROD: return f == 1;
    case RK_MAX: return isinf(f) && f < 0;
    case RK_MIN: return isinf(f) && f > 0;
    default: return false;
    }
  }
  if (et == ET_BOOL) return k == RK_MAX ? i == 0 : (k == RK_MIN && i == 1);
  int bits = (int)et_size(et) * 8;
  uint64_t mask = bits == 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
  uint64_t u = (uint64_t)i & mask;
  bool is_signed = et_is_signed_int(et);
  uint64_t lowest = is_signed ? (uint64_t)1 << (bits - 1) : 0;
  switch (k) {
  case RK_SUM: return u == 0;
  case RK_PROD: return u == 1;
  case RK_MAX: return u == lowest;
  case RK_MIN: return u == ((lowest - 1) & mask);
  default: return false;
  }
}

/* ---- node builders ------------------------------------------------------ */

/* Reduce* with keepdims=0 over the given axes: the axes are an input for
 * ReduceSum (opset 13) and for the others from opset 18, an attribute
 * before that. */
static OValue *reduce_node(Lower *L, const char *onnx_op, OValue *x, const int64_t *axes, int n) {
  bool as_input = L->opset >= 18 || strcmp(onnx_op, "ReduceSum") == 0;
  OValue *in[2] = {x, as_input ? lw_const_i64s(L, n, axes) : NULL};
  ONode *node = lw_node(L, onnx_op, as_input ? 2 : 1, in, 1);
  if (!as_input) og_attr_ints(L->c, node, "axes", axes, n);
  og_attr_int(L->c, node, "keepdims", 0);
  return node->outputs[0];
}

/* Whether any element along the axes is NaN: IsNaN, then ReduceMax over
 * bool (opset 20) or over u8 and back. */
static OValue *any_nan(Lower *L, OValue *x, const int64_t *axes, int n, const Type *ti,
                       const Type *to, OValue **isnan_u8) {
  OValue *m = lw_typed(L, lw_op1(L, "IsNaN", x), ET_BOOL, ti->rank, ti->dims);
  if (!isnan_u8 && L->opset >= 20)
    return lw_typed(L, reduce_node(L, "ReduceMax", m, axes, n), ET_BOOL, to->rank, to->dims);
  m = lw_cast(L, m, ET_U8);
  if (isnan_u8) *isnan_u8 = m;
  OValue *r = lw_typed(L, reduce_node(L, "ReduceMax", m, axes, n), ET_U8, to->rank, to->dims);
  return lw_cast(L, r, ET_BOOL);
}

static const char *combine_op(RKind k, bool logical) {
  switch (k) {
  case RK_SUM: return "Add";
  case RK_PROD: return "Mul";
  case RK_MAX: return logical ? "Or" : "Max";
  case RK_MIN: return logical ? "And" : "Min";
  default: return NULL;
  }
}

/* ---- body recognition --------------------------------------------------- */

static const Op *return_op(const Block *b) {
  if (b->n_ops == 0) return NULL;
  const Op *r = b->ops[b->n_ops - 1];
  return r->kind == OP_RETURN || r->kind == OP_RETURN_SHORT || r->kind == OP_FUNC_RETURN ? r : NULL;
}

/* The ops of a body, for messages: "stablehlo.add, stablehlo.return". */
static const char *body_ops(Lower *L, const Block *b) {
  char *s = "";
  for (int i = 0; i < b->n_ops && i < 12; i++)
    s = arena_printf(L->c->arena, "%s%s%s", s, i ? ", " : "", b->ops[i]->opname);
  return b->n_ops > 12 ? arena_printf(L->c->arena, "%s, ...", s) : s;
}

/* Result i of the body: op(acc_i, x_i), in either order, with op a binary
 * op we can reduce with over elements of type et. */
static RKind body_kind(const Block *b, const Op *ret, int n, int i, ElemType et) {
  const Value *v = ret->operands[i];
  const Op *d = v->def;
  if (!d || d->n_operands != 2 || d->n_results != 1) return RK_NONE;
  const Value *acc = b->args[i], *x = b->args[n + i];
  if (!((d->operands[0] == acc && d->operands[1] == x) ||
        (d->operands[0] == x && d->operands[1] == acc)))
    return RK_NONE;
  bool logical = et == ET_BOOL;
  switch (d->kind) {
  case OP_ADD: return logical ? RK_MAX : RK_SUM;       /* i1 add is or */
  case OP_MULTIPLY: return logical ? RK_MIN : RK_PROD; /* i1 multiply is and */
  case OP_MAXIMUM: return RK_MAX;
  case OP_MINIMUM: return RK_MIN;
  case OP_OR: return logical ? RK_MAX : RK_NONE;  /* bitwise or: no ONNX reduction */
  case OP_AND: return logical ? RK_MIN : RK_NONE;
  default: return RK_NONE;
  }
}

static bool is_op(const Value *v, OpKind k, const Value **a, const Value **b) {
  const Op *d = v->def;
  if (!d || d->kind != k || d->n_operands != 2) return false;
  *a = d->operands[0];
  *b = d->operands[1];
  return true;
}

static bool is_cmp(const Value *v, const char *dir, const Value *a, const Value *b) {
  const Value *x, *y;
  if (!is_op(v, OP_COMPARE, &x, &y) || x != a || y != b) return false;
  const Attr *c = ir_op_attr(v->def, "comparison_direction");
  return c && c->s && strcmp(c->s, dir) == 0;
}

/* ---- integer sums and products that wrap --------------------------------- */

/* JAX's integer sums and products wrap modulo 2^bits.  onnxruntime's
 * ReduceSum and ReduceProd over i32 and i64 go through double: they
 * saturate on overflow (the i32 sum of [2^31 - 1, 3] is 2^31 - 1), and an
 * i64 sum beyond 2^53 loses its low bits (measured with onnxruntime 1.32).
 * Its CumSum, Gather, Slice and Mul are exact and wrap, so:
 *   - a sum is a CumSum along each reduced axis, of which the last element
 *     is kept (Gather at -1): exact for any length, symbolic ones included
 *     (an axis that may be empty gets a leading 0 first, with a Pad).
 *     CumSum takes i32 and i64: narrower integers sum in i32, u32 and u64
 *     in i64, and the cast back keeps the low bits, which is the wrap;
 *   - a product is computed in the element type itself (Mul takes every
 *     integer type).  Over an axis of static length, a tree: the first half
 *     times the second until one element is left, the odd elements left
 *     over multiplied in at the end (log2(n) Muls).  Over a symbolic axis, a
 *     Loop multiplies in one slice per iteration. */

static int64_t *dims_copy(Lower *L, const int64_t *dims, int rank) {
  int64_t *d = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(rank ? rank : 1));
  if (rank) memcpy(d, dims, sizeof(int64_t) * (size_t)rank);
  return d;
}

/* The sum of x (type ce, dims d, rank r) over the axes, the largest first so
 * that the Gathers, which drop their axis, leave the others in place. */
static OValue *wrapping_sum(Lower *L, OValue *x, ElemType ce, int64_t *d, int r,
                            const int64_t *axes, int n) {
  bool done[MAX_RANK] = {false};
  for (int k = 0; k < n; k++) {
    int a = -1;
    for (int i = 0; i < n; i++)
      if (!done[i] && (a < 0 || axes[i] > axes[a])) a = i;
    done[a] = true;
    int64_t axis = axes[a];
    if (d[axis] < 1) { /* maybe empty at run time: a leading 0 gives Gather a last element */
      int64_t pads[2 * MAX_RANK] = {0};
      pads[axis] = 1;
      d[axis] = d[axis] == 0 ? 1 : DIM_DYN;
      x = lw_typed(L, lw_op2(L, "Pad", x, lw_const_i64s(L, 2 * r, pads)), ce, r, d);
    }
    OValue *sums =
        lw_typed(L, lw_op2(L, "CumSum", x, lw_const_scalar(L, ET_I64, (double)axis)), ce, r, d);
    ONode *last = lw_node(L, "Gather", 2, (OValue *[]){sums, lw_const_scalar(L, ET_I64, -1)}, 1);
    og_attr_int(L->c, last, "axis", axis);
    for (int i = (int)axis; i + 1 < r; i++) d[i] = d[i + 1];
    r--;
    x = lw_typed(L, last->outputs[0], ce, r, d);
  }
  return x;
}

/* x[start:end] along axis (x of type et, dims d; the result's dims in d). */
static OValue *axis_slice(Lower *L, OValue *x, ElemType et, int64_t *d, int r, int64_t axis,
                          int64_t start, int64_t end) {
  OValue *in[4] = {x, lw_const_i64s(L, 1, &start), lw_const_i64s(L, 1, &end),
                   lw_const_i64s(L, 1, &axis)};
  d[axis] = end - start;
  return lw_typed(L, lw_node(L, "Slice", 4, in, 1)->outputs[0], et, r, d);
}

/* The product of x (dims d, d[axis] static and >= 1) along axis, kept as
 * a unit axis: a tree of Muls. */
static OValue *product_tree(Lower *L, OValue *x, ElemType et, int64_t *d, int r, int64_t axis) {
  OValue *odd = NULL; /* the elements left over by odd lengths, multiplied */
  int64_t *unit = dims_copy(L, d, r);
  unit[axis] = 1;
  for (int64_t len = d[axis]; len > 1; len /= 2) {
    int64_t half = len / 2;
    int64_t *dh = dims_copy(L, d, r);
    if (len % 2) {
      OValue *last = axis_slice(L, x, et, dims_copy(L, d, r), r, axis, len - 1, len);
      odd = odd ? lw_typed(L, lw_op2(L, "Mul", odd, last), et, r, unit) : last;
    }
    OValue *lo = axis_slice(L, x, et, dh, r, axis, 0, half);
    OValue *hi = axis_slice(L, x, et, dims_copy(L, d, r), r, axis, half, 2 * half);
    x = lw_typed(L, lw_op2(L, "Mul", lo, hi), et, r, dh);
    d[axis] = half;
  }
  d[axis] = 1;
  return odd ? lw_typed(L, lw_op2(L, "Mul", x, odd), et, r, unit) : x;
}

/* The same over an axis whose length is known only at run time (or is 0):
 * a Loop over it, carrying the product (ones at first) and multiplying in
 * the slice x[i:i+1] at iteration i.  NULL (reported) when control flow
 * nests too deep already. */
static OValue *product_loop(Lower *L, OValue *x, ElemType et, int64_t *d, int r, int64_t axis) {
  if (lw_loop_check_depth(L) != 0) return NULL;
  int64_t rank = r, one = 1, zero = 0;
  OValue *shape = lw_typed(L, lw_op1(L, "Shape", x), ET_I64, 1, &rank);
  ONode *gl =
      lw_node(L, "Gather", 2, (OValue *[]){shape, lw_const_scalar(L, ET_I64, (double)axis)}, 1);
  og_attr_int(L->c, gl, "axis", 0);
  OValue *len = lw_typed(L, gl->outputs[0], ET_I64, 0, NULL);
  /* the shape of the product: x's with a 1 at axis */
  ONode *put =
      lw_node(L, "ScatterElements", 3,
              (OValue *[]){shape, lw_const_i64s(L, 1, &axis), lw_const_i64s(L, 1, &one)}, 1);
  OValue *unit_shape = lw_typed(L, put->outputs[0], ET_I64, 1, &rank);
  d[axis] = 1;
  OValue *ones = lw_typed(L, lw_op2(L, "Expand", lw_const_scalar(L, et, 1), unit_shape), et, r, d);

  LoopBuilder lp;
  lw_loop_begin(L, &lp, "product_body", NULL);
  OValue *product = lw_loop_carry(L, &lp, ones, "product_in");
  OValue *at = lw_typed(L, lw_op2(L, "Unsqueeze", lp.iteration, lw_const_i64s(L, 1, &zero)),
                        ET_I64, 1, &one);
  ONode *row = lw_node(L, "Gather", 2, (OValue *[]){x, at}, 1);
  og_attr_int(L->c, row, "axis", axis);
  lw_typed(L, row->outputs[0], et, r, d);
  /* the trip count decides: cond_in passed on, made here before the step,
   * which keeps the models' value names */
  OValue *keep_going = lw_typed(L, lw_op1(L, "Identity", lp.cond_in), ET_BOOL, 0, NULL);
  OValue *next = lw_typed(L, lw_op2(L, "Mul", product, row->outputs[0]), et, r, d);
  lw_loop_close(L, &lp, keep_going, &next, 0, NULL);
  ONode *loop = lw_loop_node(L, &lp, len, lw_const_scalar(L, ET_BOOL, 1));
  return lw_typed(L, loop->outputs[0], et, r, d);
}

/* The product of x (type et, dims d, rank r) over the axes, which are then
 * squeezed; NULL (reported) when a Loop would nest too deep. */
static OValue *wrapping_product(Lower *L, OValue *x, ElemType et, int64_t *d, int r,
                                const int64_t *axes, int n) {
  for (int k = 0; k < n; k++) {
    x = d[axes[k]] >= 1 ? product_tree(L, x, et, d, r, axes[k])
                        : product_loop(L, x, et, d, r, axes[k]);
    if (!x) return NULL;
  }
  OValue *y = lw_op2(L, "Squeeze", x, lw_const_i64s(L, n, axes));
  int out = 0;
  for (int i = 0; i < r; i++) {
    bool reduced = false;
    for (int k = 0; k < n; k++) reduced |= axes[k] == i;
    if (!reduced) d[out++] = d[i];
  }
  return lw_typed(L, y, et, out, d);
}

/* ---- single reductions -------------------------------------------------- */

/* One reduction of operand x (HLO value xv) by kind k over axes, with
 * init; returns the result of the result type `to`, or NULL after
 * reporting why not. */
static OValue *reduce_one(Lower *L, RKind k, const Value *xv, OValue *init, const int64_t *axes,
                          int n, const Type *to) {
  const Type *ti = &xv->type;
  ElemType et = ti->et, ce = reduce_type(L, k, et);
  bool logical = et == ET_BOOL;
  bool identity = is_identity(L, init, k, et);
  OValue *x = lw_get(L, xv);

  /* An empty reduction is the init value everywhere. */
  bool empty = false;
  for (int a = 0; a < n; a++)
    if (ti->dims[axes[a]] == 0) empty = true;
  if (empty && type_is_static(to)) {
    OValue *shape = lw_const_i64s(L, to->rank, to->dims);
    return lw_typed(L, lw_op2(L, "Expand", init, shape), et, to->rank, to->dims);
  }

  /* Over no dimensions the result is the operand: the spec would apply
   * the body to (init, x) once, but XLA drops such a reduce, taking the
   * init value to be an identity, and JAX's numbers are the reference. */
  if (n == 0) return x;
  if (et_is_int(et) && (k == RK_SUM || k == RK_PROD)) {
    int64_t *d = dims_copy(L, ti->dims, ti->rank);
    OValue *r = k == RK_SUM ? wrapping_sum(L, lw_cast(L, x, ce), ce, d, ti->rank, axes, n)
                            : wrapping_product(L, x, et, d, ti->rank, axes, n);
    if (!r) return NULL; /* reported */
    r = lw_typed(L, lw_cast(L, r, et), et, to->rank, to->dims);
    if (!identity) r = lw_op2(L, combine_op(k, false), r, init);
    return lw_typed(L, r, et, to->rank, to->dims);
  }
  static const char *const names[] = {NULL, "ReduceSum", "ReduceProd", "ReduceMax", "ReduceMin"};
  bool ordered = et == ET_U64 && (k == RK_MAX || k == RK_MIN);
  OValue *xc = ordered ? ordered_i64(L, x, ti) : lw_cast(L, x, ce);
  OValue *r = lw_typed(L, reduce_node(L, names[k], xc, axes, n), ce, to->rank, to->dims);
  if (ordered) { /* back to u64, where the init joins */
    r = from_ordered_i64(L, r, to);
    ce = ET_U64;
  }
  if (et_is_float(et) && (k == RK_MAX || k == RK_MIN)) {
    OValue *nan = any_nan(L, xc, axes, n, ti, to, NULL);
    r = lw_typed(L, lw_op3(L, "Where", nan, lw_const_scalar(L, ce, NAN), r), ce, to->rank,
              to->dims);
  }
  /* A non-identity init joins once, in the compute type; or after the
   * cast back for booleans, which And/Or take. */
  if (!identity && !logical)
    r = lw_typed(L, lw_op2(L, combine_op(k, false), r, lw_cast(L, init, ce)), ce, to->rank,
              to->dims);
  r = lw_cast(L, r, et);
  if (!identity && logical) r = lw_op2(L, combine_op(k, true), r, init);
  return lw_typed(L, r, et, to->rank, to->dims);
}

/* ---- argmax / argmin ---------------------------------------------------- */

/* The body JAX emits for argmax (dir "GT") / argmin ("LT"), args
 * [va, ia, vb, ib]:
 *   p = or(compare dir va vb, compare NE va va)   (the NaN test is optional)
 *   q = or(p, and(compare EQ va vb, compare LT ia ib))
 *   return select(p, va, vb), select(q, ia, ib)
 * Returns "GT"/"LT" (and whether the NaN test is there), or NULL. */
static const char *argminmax_body(const Block *b, const Op *ret, bool *nan_test) {
  if (b->n_args != 4 || ret->n_operands != 2) return NULL;
  const Value *va = b->args[0], *ia = b->args[1], *vb = b->args[2], *ib = b->args[3];
  const Op *sv = ret->operands[0]->def, *si = ret->operands[1]->def;
  if (!sv || !si || sv->kind != OP_SELECT || si->kind != OP_SELECT || sv->n_operands != 3 ||
      si->n_operands != 3 || sv->operands[1] != va || sv->operands[2] != vb ||
      si->operands[1] != ia || si->operands[2] != ib)
    return NULL;
  const Value *p = sv->operands[0], *q = si->operands[0], *x, *y;
  static const char *const dirs[] = {"GT", "LT"};
  const char *dir = NULL;
  *nan_test = false;
  for (int d = 0; d < 2 && !dir; d++) {
    if (is_cmp(p, dirs[d], va, vb)) {
      dir = dirs[d];
    } else if (is_op(p, OP_OR, &x, &y) &&
               ((is_cmp(x, dirs[d], va, vb) && is_cmp(y, "NE", va, va)) ||
                (is_cmp(y, dirs[d], va, vb) && is_cmp(x, "NE", va, va)))) {
      dir = dirs[d];
      *nan_test = true;
    }
  }
  if (!dir || !is_op(q, OP_OR, &x, &y)) return NULL;
  const Value *tie = x == p ? y : (y == p ? x : NULL), *e, *l;
  if (!tie || !is_op(tie, OP_AND, &e, &l)) return NULL;
  if ((is_cmp(e, "EQ", va, vb) && is_cmp(l, "LT", ia, ib)) ||
      (is_cmp(l, "EQ", va, vb) && is_cmp(e, "LT", ia, ib)))
    return dir;
  return NULL;
}

static int lower_argminmax(Lower *L, const Op *op, const Block *body, const Op *ret,
                           const int64_t *axes, int n) {
  bool nan_test;
  const char *dir = argminmax_body(body, ret, &nan_test);
  if (!dir)
    return lw_unsupported(L, "a reduce of 2 operands whose body is not JAX's argmax/argmin (found: %s)",
                          body_ops(L, body));
  if (n != 1) return lw_unsupported(L, "argmax/argmin over %d dimensions", n);
  bool is_max = dir[0] == 'G';
  const Value *xv = op->operands[0], *iv = op->operands[1];
  const Type *ti = &xv->type, *tv = &op->results[0]->type, *tidx = &op->results[1]->type;
  if (!lw_is_position_iota(iv, axes[0]))
    return lw_unsupported(L, "argmax/argmin whose index operand is not an iota along dimension %lld",
                          (long long)axes[0]);
  OValue *vinit = lw_get(L, op->operands[2]), *iinit = lw_get(L, op->operands[3]);
  double f;
  int64_t i0;
  if (!is_identity(L, vinit, is_max ? RK_MAX : RK_MIN, ti->et) ||
      !scalar_value(L, iinit, &f, &i0) || i0 != 0)
    return lw_unsupported(L, "argmax/argmin with init values other than (%s, 0)",
                          is_max ? "lowest" : "highest");
  bool ordered = ti->et == ET_U64;
  ElemType ce = ordered ? ET_I64 : arg_type(ti->et);
  if (ce == ET_UNDEF)
    return lw_unsupported(L, "argmax/argmin over %s", et_mlir_name(ti->et));

  if (ti->dims[axes[0]] == 0 && type_is_static(tv)) { /* empty: the inits */
    OValue *shape = lw_const_i64s(L, tv->rank, tv->dims);
    lw_bind(L, op->results[0], lw_op2(L, "Expand", vinit, shape));
    lw_bind(L, op->results[1], lw_op2(L, "Expand", iinit, shape));
    return 0;
  }
  OValue *x = ordered ? ordered_i64(L, lw_get(L, xv), ti) : lw_cast(L, lw_get(L, xv), ce);
  ONode *arg = lw_node(L, is_max ? "ArgMax" : "ArgMin", 1, &x, 1);
  og_attr_int(L->c, arg, "axis", axes[0]);
  og_attr_int(L->c, arg, "keepdims", 0);
  og_attr_int(L->c, arg, "select_last_index", 0); /* ties: the first, as JAX's body */
  OValue *idx = lw_typed(L, arg->outputs[0], ET_I64, tv->rank, tv->dims);
  OValue *val = lw_typed(L, reduce_node(L, is_max ? "ReduceMax" : "ReduceMin", x, axes, 1), ce,
                      tv->rank, tv->dims);
  if (nan_test && et_is_float(ti->et)) {
    /* JAX: a NaN wins, the first one; onnxruntime's ArgMax ignores NaN. */
    OValue *isnan_u8;
    OValue *any = any_nan(L, x, axes, 1, ti, tv, &isnan_u8);
    ONode *first = lw_node(L, "ArgMax", 1, &isnan_u8, 1);
    og_attr_int(L->c, first, "axis", axes[0]);
    og_attr_int(L->c, first, "keepdims", 0);
    lw_typed(L, first->outputs[0], ET_I64, tv->rank, tv->dims);
    idx = lw_typed(L, lw_op3(L, "Where", any, first->outputs[0], idx), ET_I64, tv->rank, tv->dims);
    val = lw_typed(L, lw_op3(L, "Where", any, lw_const_scalar(L, ce, NAN), val), ce, tv->rank,
                tv->dims);
  }
  if (ordered) val = from_ordered_i64(L, val, tv);
  lw_bind(L, op->results[0], lw_cast(L, val, tv->et));
  lw_bind(L, op->results[1], lw_cast(L, idx, tidx->et));
  return 0;
}

/* ---- any other body: halving by the body itself ------------------------- */

/* x[start:end:step] along `axis`, typed (et, rank, dims). */
static OValue *slice_axis(Lower *L, OValue *x, int64_t axis, int64_t start, int64_t end,
                          int64_t step, ElemType et, int rank, const int64_t *dims) {
  OValue *in[5] = {x, lw_const_i64s(L, 1, &start), lw_const_i64s(L, 1, &end),
                   lw_const_i64s(L, 1, &axis), lw_const_i64s(L, 1, &step)};
  return lw_typed(L, lw_node(L, "Slice", 5, in, 1)->outputs[0], et, rank, dims);
}

/* A reduce whose body is no ONNX reduction (xor; bitwise and/or of
 * integers; several results that depend on each other): each reduced axis
 * is halved by the body, body(x[0::2], x[1::2]) with an odd last element
 * carried along, until one element is left: ceil(log2 n) applications of
 * the body.  Pairing neighbours keeps the elements in order, so any
 * associative body (XLA assumes one; the spec leaves the order open) gives
 * XLA's result; axes are folded last first, row-major as XLA walks them.
 * Then body(init, r): XLA starts from the init.  Reduced axes must be
 * static. */
static int lower_reduce_by_body(Lower *L, const Op *op, const Block *body, const int64_t *axes,
                                int n) {
  int m = op->n_results;
  const Type *t0 = &op->operands[0]->type;
  int r = t0->rank;
  int64_t dims[MAX_RANK];
  memcpy(dims, t0->dims, sizeof(int64_t) * (size_t)r);
  for (int i = 1; i < m; i++) {
    const Type *ti = &op->operands[i]->type;
    if (ti->rank != r || memcmp(ti->dims, t0->dims, sizeof(int64_t) * (size_t)r) != 0)
      return diag_error_op(L->c, H2O_EINPUT, op, "reduce inputs of different shapes");
  }
  if (!lw_body_is_associative(body))
    return lw_unsupported(L, "a reduce body that is not a single add/multiply/maximum/minimum/"
                             "and/or/xor per result, argmax/argmin or another associative form "
                             "(found: %s): XLA folds the elements in order, and no other order "
                             "is known to give its result", body_ops(L, body));
  for (int a = 0; a < n; a++)
    if (dims[axes[a]] == DIM_DYN)
      return lw_unsupported(L, "a reduce body that is no ONNX reduction (%s) over the dynamic "
                               "dimension %lld", body_ops(L, body), (long long)axes[a]);
  Arena *ar = L->c->arena;
  OValue **xs = arena_alloc(ar, sizeof(OValue *) * (size_t)m);
  OValue **out = arena_alloc(ar, sizeof(OValue *) * (size_t)m);
  OValue **args = arena_alloc(ar, sizeof(OValue *) * (size_t)(2 * m));
  for (int i = 0; i < m; i++) xs[i] = lw_get(L, op->operands[i]);
  if (n == 0) { /* as reduce_one: XLA drops a reduce over no dimensions */
    for (int i = 0; i < m; i++) lw_bind(L, op->results[i], xs[i]);
    return 0;
  }
  const Type *to = &op->results[0]->type;
  for (int a = 0; a < n; a++)
    if (dims[axes[a]] == 0) { /* empty: the inits */
      if (!type_is_static(to)) return lw_unsupported(L, "an empty reduce of dynamic shape");
      OValue *shape = lw_const_i64s(L, to->rank, to->dims);
      for (int i = 0; i < m; i++)
        lw_bind(L, op->results[i], lw_op2(L, "Expand", lw_get(L, op->operands[m + i]), shape));
      return 0;
    }
  int64_t order[MAX_RANK];
  memcpy(order, axes, sizeof(int64_t) * (size_t)n);
  for (int a = 0; a < n; a++) /* descending: the last axis first */
    for (int b = a + 1; b < n; b++)
      if (order[b] > order[a]) {
        int64_t tmp = order[a];
        order[a] = order[b];
        order[b] = tmp;
      }
  for (int a = 0; a < n; a++) {
    int64_t ax = order[a];
    while (dims[ax] > 1) {
      int64_t len = dims[ax], half = len / 2;
      int64_t hdims[MAX_RANK];
      memcpy(hdims, dims, sizeof(int64_t) * (size_t)r);
      hdims[ax] = half;
      for (int i = 0; i < m; i++) {
        ElemType et = op->operands[i]->type.et;
        args[i] = slice_axis(L, xs[i], ax, 0, 2 * half, 2, et, r, hdims);
        args[m + i] = slice_axis(L, xs[i], ax, 1, 2 * half, 2, et, r, hdims);
      }
      if (lw_apply_body(L, body, args, r, hdims, out) != 0) return -1;
      dims[ax] = half + len % 2;
      for (int i = 0; i < m; i++) {
        ElemType et = op->operands[i]->type.et;
        if (len % 2) {
          hdims[ax] = 1;
          OValue *tail = slice_axis(L, xs[i], ax, len - 1, len, 1, et, r, hdims);
          ONode *cat = lw_node(L, "Concat", 2, (OValue *[]){out[i], tail}, 1);
          og_attr_int(L->c, cat, "axis", ax);
          out[i] = cat->outputs[0];
        }
        xs[i] = lw_typed(L, out[i], et, r, dims);
      }
    }
  }
  /* drop the reduced axes (now of length 1), then join the inits */
  for (int i = 0; i < m; i++) {
    ElemType et = op->operands[i]->type.et;
    OValue *in[2] = {xs[i], lw_const_i64s(L, n, axes)};
    ONode *sq = lw_node(L, "Squeeze", L->opset >= 13 ? 2 : 1, in, 1);
    if (L->opset < 13) og_attr_ints(L->c, sq, "axes", axes, n);
    args[i] = lw_get(L, op->operands[m + i]);
    args[m + i] = lw_typed(L, sq->outputs[0], et, to->rank, to->dims);
  }
  if (lw_apply_body(L, body, args, to->rank, to->dims, out) != 0) return -1;
  for (int i = 0; i < m; i++) lw_bind(L, op->results[i], out[i]);
  return 0;
}

/* ---- the converter ------------------------------------------------------ */

int lower_reduce(Lower *L, const Op *op) {
  int m = op->n_results;
  if (m < 1 || op->n_operands != 2 * m || op->n_regions != 1 || op->regions[0]->n_blocks != 1)
    return diag_error_op(L->c, H2O_EINPUT, op,
                         "reduce expects N inputs, N init values, N results and a body");
  const Block *body = op->regions[0]->blocks[0];
  const Op *ret = return_op(body);
  if (!ret || ret->n_operands != m || body->n_args != 2 * m)
    return diag_error_op(L->c, H2O_EINPUT, op, "reduce body does not take and return %d values", m);
  const Attr *da = ir_op_attr(op, "dimensions");
  int64_t *axes = NULL;
  int n = da ? ir_attr_i64s(L->c, da, &axes) : -1;
  if (n < 0) return diag_error_op(L->c, H2O_EINPUT, op, "reduce without 'dimensions'");
  for (int i = 0; i < m; i++) {
    const Type *ti = &op->operands[i]->type;
    if (ti->rank > MAX_RANK || n > ti->rank || op->results[i]->type.rank != ti->rank - n)
      return diag_error_op(L->c, H2O_EINPUT, op, "reduce dimensions do not fit the types");
    for (int a = 0; a < n; a++) {
      if (axes[a] < 0 || axes[a] >= ti->rank)
        return diag_error_op(L->c, H2O_EINPUT, op, "reduce dimension out of range");
      for (int b = 0; b < a; b++)
        if (axes[a] == axes[b])
          return diag_error_op(L->c, H2O_EINPUT, op, "reduce dimension repeated");
    }
  }

  /* Independent reductions, one per result (almost always just one). */
  RKind kinds[MAX_RANK];
  bool independent = m <= MAX_RANK;
  for (int i = 0; i < m && independent; i++) {
    kinds[i] = body_kind(body, ret, m, i, op->operands[i]->type.et);
    if (!kinds[i]) independent = false;
  }
  if (independent) {
    for (int i = 0; i < m; i++) {
      const Type *ti = &op->operands[i]->type;
      if (n > 0 && reduce_type(L, kinds[i], ti->et) == ET_UNDEF)
        return lw_unsupported(L, "this reduction over %s", et_mlir_name(ti->et));
    }
    for (int i = 0; i < m; i++) {
      OValue *r = reduce_one(L, kinds[i], op->operands[i], lw_get(L, op->operands[m + i]), axes,
                             n, &op->results[i]->type);
      if (!r) return -1;
      lw_bind(L, op->results[i], r);
    }
    return 0;
  }
  bool nan_test;
  if (m == 2 && argminmax_body(body, ret, &nan_test))
    return lower_argminmax(L, op, body, ret, axes, n);
  return lower_reduce_by_body(L, op, body, axes, n);
}
