/* dynamic_window.c - custom_call @stablehlo.dynamic_reduce_window: a
 * reduce_window whose window sizes, strides, dilations and padding are
 * operands, which JAX emits when they depend on a symbolic dimension.  The
 * common case is jnp.cumsum (and lax.cumsum(reverse=True)) along a
 * symbolic axis of size n: a window of n elements with n-1 elements of
 * padding in front (or behind).
 *
 * Sums over windows of any size: along each axis whose window is not
 * trivially 1, with stride and dilations 1, pad the axis (with the init
 * value, as the spec pads) and one more leading zero, take the running sum
 * S, and read window i as S[i + w] - S[i].  For a cumulative sum S[i] is a
 * sum of padding zeros, so the difference is exact; other windows lose the
 * precision a difference of two running sums loses.  Box windows are
 * separable, so axes are done one after the other.  Other reducers
 * (max, min, ...) are reported as unsupported.
 *
 * The operands are [x, init, window_dimensions, window_strides,
 * base_dilations, window_dilations, padding] (JAX's order); the vectors'
 * elements that are constants in the HLO (concatenations of constants, as
 * JAX builds them) are read at conversion time, the others at run time.
 */
#include "lower/lower.h"

#include <string.h>

/* The reducer function is one stablehlo.add of its two arguments. */
static bool adds(const Lower *L, const Op *op) {
  const Attr *calls = ir_op_attr(op, "called_computations");
  if (!calls || calls->kind != AK_ARRAY || calls->n_elems != 1 || !calls->elems[0]->s)
    return false;
  const Func *f = ir_find_func(L->module, calls->elems[0]->s);
  if (!f || f->n_args != 2 || f->body->n_ops != 2) return false;
  const Op *add = f->body->ops[0], *ret = f->body->ops[1];
  return add->kind == OP_ADD && add->n_operands == 2 && ret->n_operands == 1 &&
         ret->operands[0] == add->results[0] &&
         ((add->operands[0] == f->body->args[0] && add->operands[1] == f->body->args[1]) ||
          (add->operands[0] == f->body->args[1] && add->operands[1] == f->body->args[0]));
}

typedef struct IntVec {
  const Value *hlo;
  OValue *flat; /* the operand as flat int64, made when first needed */
  int64_t vals[2 * MAX_RANK];
  bool known[2 * MAX_RANK];
} IntVec;

/* The elements of the n-element vector hlo that are known at conversion
 * time (lw_known_ints); the others are read at run time. */
static void intvec_init(Lower *L, IntVec *v, const Value *hlo, int n) {
  memset(v, 0, sizeof *v);
  v->hlo = hlo;
  bool *known;
  int64_t *vals = lw_known_ints(L, hlo, &known);
  if (!vals || type_numel(&hlo->type) != n) return;
  memcpy(v->vals, vals, sizeof(int64_t) * (size_t)n);
  memcpy(v->known, known, sizeof(bool) * (size_t)n);
}

static bool is_known(const IntVec *v, int i, int64_t want) {
  return v->known[i] && v->vals[i] == want;
}

/* Element i as a one-element int64 tensor. */
static OValue *element(Lower *L, IntVec *v, int i) {
  if (v->known[i]) return lw_const_i64s(L, 1, &v->vals[i]);
  if (!v->flat) {
    int64_t all = -1;
    v->flat = lw_op2(L, "Reshape", lw_cast(L, lw_get(L, v->hlo), ET_I64), lw_const_i64s(L, 1, &all));
  }
  int64_t lo = i, hi = i + 1;
  return lw_op3(L, "Slice", v->flat, lw_const_i64s(L, 1, &lo), lw_const_i64s(L, 1, &hi));
}

/* Sums of the windows of w elements along `axis` of x (rank r; stride 1),
 * after padding the axis with lo and hi elements of init:
 * S = exclusive running sum of pad(x, lo, hi + 1), out[i] = S[i + w] - S[i].
 * (The one extra element at the end is never summed: S is exclusive.) */
static OValue *window_sums(Lower *L, OValue *x, int r, int axis, OValue *w, OValue *lo,
                           OValue *hi, OValue *init) {
  int64_t zero = 0, one = 1, ax = axis, to_end = INT64_MAX;
  OValue *pads[2 * MAX_RANK];
  for (int a = 0; a < 2 * r; a++) pads[a] = a == axis ? lo : lw_const_i64s(L, 1, &zero);
  pads[r + axis] = lw_op2(L, "Add", hi, lw_const_i64s(L, 1, &one));
  ONode *cat = lw_node(L, "Concat", 2 * r, pads, 1);
  og_attr_int(L->c, cat, "axis", 0);
  OValue *pin[3] = {x, cat->outputs[0], init};
  OValue *padded = lw_node(L, "Pad", 3, pin, 1)->outputs[0];
  OValue *cin[2] = {padded, lw_const_scalar(L, ET_I64, (double)axis)};
  ONode *cs = lw_node(L, "CumSum", 2, cin, 1);
  og_attr_int(L->c, cs, "exclusive", 1);
  OValue *s = cs->outputs[0];
  OValue *axes = lw_const_i64s(L, 1, &ax);
  OValue *ain[4] = {s, w, lw_const_i64s(L, 1, &to_end), axes};
  OValue *upper = lw_node(L, "Slice", 4, ain, 1)->outputs[0];
  OValue *bin[4] = {s, lw_const_i64s(L, 1, &zero), lw_op1(L, "Neg", w), axes};
  OValue *lower = lw_node(L, "Slice", 4, bin, 1)->outputs[0];
  return lw_op2(L, "Sub", upper, lower);
}

/* v is a constant whose bytes are all zero (0, 0.0; not -0.0). */
static bool known_zero(Ctx *c, const Value *v) {
  const Op *op = v->def;
  const Attr *a = op && op->kind == OP_CONSTANT ? ir_op_attr(op, "value") : NULL;
  if (!a || a->kind != AK_DENSE || !a->dense) return false;
  const uint8_t *bytes = data_bytes(c, &a->dense->data);
  if (!bytes) return false;
  for (size_t i = 0; i < a->dense->data.nbytes; i++)
    if (bytes[i]) return false;
  return true;
}

int lower_dynamic_reduce_window(Lower *L, const Op *op) {
  if (op->n_operands != 7 || op->n_results != 1)
    return lw_unsupported(L, "dynamic_reduce_window over more than one input");
  const Value *xv = op->operands[0];
  const Type *t = &xv->type;
  int r = t->rank;
  if (t->kind != TK_TENSOR || r < 1 || r > MAX_RANK || op->results[0]->type.rank != r)
    return lw_unsupported(L, "operand and result must be tensors of one rank");
  if (!adds(L, op))
    return lw_unsupported(L, "only sums are supported (the reducer of a dynamic window is not "
                             "one stablehlo.add): cummax, cummin and cumprod along a symbolic "
                             "axis would need a scan over a run-time length (an ONNX Loop), "
                             "which is not written yet");
  if (!et_is_float(t->et) && !et_is_int(t->et))
    return lw_unsupported(L, "sums of %s", et_mlir_name(t->et));
  IntVec win, str, bdil, wdil, pad;
  intvec_init(L, &win, op->operands[2], r);
  intvec_init(L, &str, op->operands[3], r);
  intvec_init(L, &bdil, op->operands[4], r);
  intvec_init(L, &wdil, op->operands[5], r);
  intvec_init(L, &pad, op->operands[6], 2 * r);
  int n_axes = 0;
  bool axis_on[MAX_RANK];
  for (int a = 0; a < r; a++) {
    axis_on[a] = !(is_known(&win, a, 1) && is_known(&pad, 2 * a, 0) &&
                   is_known(&pad, 2 * a + 1, 0) && is_known(&str, a, 1));
    if (!axis_on[a]) continue;
    n_axes++;
    if (!is_known(&str, a, 1) || !is_known(&bdil, a, 1) || !is_known(&wdil, a, 1))
      return lw_unsupported(L, "window strides and dilations other than constant 1s");
  }
  bool zero_init = known_zero(L->c, op->operands[1]);
  if (n_axes > 1 && !zero_init)
    return lw_unsupported(L, "windows along several axes with a nonzero init value");

  /* onnxruntime's CumSum takes f32/f64/i32/i64 */
  ElemType et = t->et, ct;
  if (et_is_float(et)) ct = et == ET_F64 ? ET_F64 : ET_F32;
  else if (et == ET_I32 || et_size(et) < 4) ct = ET_I32;
  else ct = ET_I64;
  OValue *x = lw_cast(L, lw_get(L, xv), ct);
  OValue *init = lw_cast(L, lw_get(L, op->operands[1]), ct);
  for (int a = 0; a < r; a++)
    if (axis_on[a])
      x = window_sums(L, x, r, a, element(L, &win, a), element(L, &pad, 2 * a),
                      element(L, &pad, 2 * a + 1), init);
  if (!zero_init) x = lw_op2(L, "Add", x, init);
  if (ct != et) { /* (x's type is not set: lw_cast would not know) */
    ONode *cast = lw_node(L, "Cast", 1, &x, 1);
    og_attr_int(L->c, cast, "to", et);
    x = cast->outputs[0];
  }
  lw_bind(L, op->results[0], x);
  return 0;
}
