/* elementwise.c - the elementwise ops (stablehlo.abs ... stablehlo.convert,
 * the shifts and bit counts, bitcast_convert, reduce_precision) and the CHLO
 * math ops that JAX leaves in its output.
 *
 * StableHLO elementwise operands all have one shape (no implicit
 * broadcasting; only clamp's bounds and select's predicate may be rank 0),
 * so every value built here has the shape of the op's result, and ONNX
 * broadcasting only ever spreads a rank-0 operand or constant.  The work is
 * in element types and corner cases, where the StableHLO spec, the ONNX
 * operator docs and JAX (XLA on CPU) do not always agree.  JAX's numbers win:
 *
 *   - integer x / 0 is -1 (all ones), x % 0 is x, INT_MIN / -1 wraps to
 *     INT_MIN; onnxruntime fails on a zero divisor and traps on INT_MIN / -1,
 *     so divisors are made safe first and the special results selected after;
 *   - float -> integer conversion saturates and maps NaN to 0, where ONNX Cast
 *     leaves out-of-range values undefined (onnxruntime returns INT_MIN);
 *   - shifts by >= the bit width give 0 (or the sign, for arithmetic right
 *     shifts); ONNX BitShift leaves that undefined and exists only unsigned;
 *   - -0.0 keeps its sign through sign, cbrt, expm1, log1p, rounding, atan2
 *     and the inverse/hyperbolic functions (see "float formulas" for how,
 *     given onnxruntime's Where);
 *   - expm1 and log1p keep their accuracy near 0, which Exp(x)-1 and Log(1+x)
 *     lose: they use the tanh half-angle and Goldberg rewrites.
 *
 * Kernels: ONNX allows element types that onnxruntime's CPU kernels lack -
 * every math op on bf16, f64 Tan/Erf/hyperbolic/inverse trig, Where on bool,
 * 16-bit and 64-bit unsigned ints, Max/Min on 16-bit ints, Pow on narrow
 * ints.  Such ops compute in a type that holds every value exactly (bf16 ->
 * f32, as XLA does on CPU; i16 -> i32; bool -> u8; u64 -> i64 bit for bit)
 * and cast back, so each tensor keeps its HLO element type at the op
 * boundary.  Formulas of several ops compute f16 and bf16 in f32; the f64
 * functions without a kernel get f64 formulas (f64_formula), Erf aside.
 */
#include "lower/lower.h"

#include <float.h>
#include <math.h>
#include <string.h>

static const double PI = 3.14159265358979323846;
static const double LN2 = 0.69314718055994530942;

/* ---- values ------------------------------------------------------------- */

static ElemType in_et(const Op *op, int i) { return op->operands[i]->type.et; }
static ElemType out_et(const Op *op) { return op->results[0]->type.et; }

/* A node of the current op; its output has the shape of the op's result and
 * element type et (so lw_cast and later passes know it). */
static ONode *node(Lower *L, ElemType et, const char *type, int n, OValue *const *in) {
  ONode *nd = lw_node(L, type, n, in, 1);
  /* the op's shape, unless every input is a scalar constant (Abs(1) in
   * atan2(x, 1)): then a scalar, as value_info must say */
  bool scalars = n > 0;
  for (int i = 0; i < n; i++) scalars = scalars && in[i] && in[i]->type.rank == 0;
  if (scalars) og_set_type(L->c, nd->outputs[0], et, 0, NULL);
  else og_type_from_hlo(L->c, nd->outputs[0], &L->op->results[0]->type);
  nd->outputs[0]->type.et = et;
  return nd;
}

static OValue *op1(Lower *L, ElemType et, const char *type, OValue *a) {
  return node(L, et, type, 1, &a)->outputs[0];
}

static OValue *op2(Lower *L, ElemType et, const char *type, OValue *a, OValue *b) {
  OValue *in[2] = {a, b};
  return node(L, et, type, 2, in)->outputs[0];
}

static OValue *op3(Lower *L, ElemType et, const char *type, OValue *a, OValue *b,
                   OValue *c) {
  OValue *in[3] = {a, b, c};
  return node(L, et, type, 3, in)->outputs[0];
}

/* A rank-0 integer (or bool) constant, bit-exact: lw_const_scalar goes
 * through a double, which 64-bit extremes do not survive. */
static OValue *kint(Lower *L, ElemType et, int64_t v) {
  size_t n = et_size(et);
  uint8_t *buf = arena_alloc(L->c->arena, 8);
  for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)((uint64_t)v >> (8 * i));
  Data d = {DATA_RAW, buf, n};
  return lw_const_data(L, et, 0, NULL, d);
}

/* A rank-0 constant of any type (small integers only). */
static OValue *k(Lower *L, ElemType et, double v) {
  return et_is_float(et) ? lw_const_scalar(L, et, v) : kint(L, et, (int64_t)v);
}

static int bits_of(ElemType et) { return (int)et_size(et) * 8; }

/* Binds the op's result to v, cast back to the result's element type. */
static int bind(Lower *L, const Op *op, OValue *v) {
  lw_bind(L, op->results[0], lw_cast(L, v, out_et(op)));
  return 0;
}

/* ---- checks ------------------------------------------------------------- */

enum { K_BOOL = 1, K_SINT = 2, K_UINT = 4, K_FLOAT = 8, K_INT = K_SINT | K_UINT };

/* The element types this file handles: complex, 4-bit and 8-bit float
 * tensors have (almost) no ONNX math ops. */
static int kind_of(ElemType et) {
  if (et == ET_BOOL) return K_BOOL;
  if (et_is_int(et) && et_size(et) > 0) return et_is_signed_int(et) ? K_SINT : K_UINT;
  if (et == ET_F16 || et == ET_BF16 || et == ET_F32 || et == ET_F64) return K_FLOAT;
  return 0;
}

/* Checks the arity, that operands and result are tensors, and that operand
 * `which` has one of `kinds` of element types. */
static int check_at(Lower *L, const Op *op, int n_operands, int which, int kinds) {
  if (op->n_operands != n_operands || op->n_results != 1)
    return diag_error_op(L->c, H2O_EINPUT, op,
                         "%s takes %d operand%s and has 1 result, but this one has %d and %d",
                         op->opname, n_operands, n_operands == 1 ? "" : "s",
                         op->n_operands, op->n_results);
  for (int i = 0; i < n_operands; i++)
    if (op->operands[i]->type.kind != TK_TENSOR)
      return lw_unsupported(L, "operand %d is not a tensor", i);
  if (op->results[0]->type.kind != TK_TENSOR) return lw_unsupported(L, "the result is not a tensor");
  ElemType et = in_et(op, which);
  if (!(kind_of(et) & kinds)) return lw_unsupported(L, "%s tensors are not supported", et_mlir_name(et));
  return 0;
}

static int check(Lower *L, const Op *op, int n_operands, int kinds) {
  return check_at(L, op, n_operands, 0, kinds);
}

/* Ops with bitwise ONNX ops (BitwiseAnd/Or/Xor/Not) need opset 18. */
static int need_opset(Lower *L, int opset, const char *onnx_op) {
  if (L->opset >= opset) return 0;
  return lw_unsupported(L, "needs ONNX %s (opset %d), but the target opset is %d", onnx_op,
                        opset, L->opset);
}

/* ---- compute types: where onnxruntime lacks a kernel --------------------- */

/* Single math ops: no kernel takes bf16; f32 holds every bf16 value. */
static ElemType math_type(ElemType et) { return et == ET_BF16 ? ET_F32 : et; }

/* Formulas of several ops: f16 and bf16 intermediates would round at every
 * step, so these compute in f32 (XLA upcasts them on CPU too). */
static ElemType formula_type(ElemType et) {
  return et == ET_BF16 || et == ET_F16 ? ET_F32 : et;
}

/* Where has no bool, 16-bit, u64 or bf16 kernel: select in a type that
 * holds the values (u64 <-> i64 Casts keep the bits). */
static OValue *where(Lower *L, ElemType et, OValue *c, OValue *a, OValue *b) {
  ElemType wt;
  switch (et) {
  case ET_BOOL: wt = ET_U8; break;
  case ET_I16: case ET_U16: wt = ET_I32; break;
  case ET_U64: wt = ET_I64; break;
  case ET_BF16: wt = ET_F32; break;
  default: return op3(L, et, "Where", c, a, b);
  }
  OValue *r = op3(L, wt, "Where", c, lw_cast(L, a, wt), lw_cast(L, b, wt));
  return lw_cast(L, r, et);
}

/* Max/Min: on bool they are Or/And (the spec's maximum/minimum); there is no
 * 16-bit or bf16 kernel.  Floats propagate NaN in both JAX and onnxruntime;
 * for max(-0.0, +0.0) JAX returns +0.0 and onnxruntime the first operand -
 * equal values, which ONNX leaves unspecified, so left as is. */
static OValue *minmax(Lower *L, ElemType et, bool is_max, OValue *a, OValue *b) {
  if (et == ET_BOOL) return op2(L, et, is_max ? "Or" : "And", a, b);
  ElemType ct = et == ET_I16 || et == ET_U16 ? ET_I32 : math_type(et);
  OValue *r = op2(L, ct, is_max ? "Max" : "Min", lw_cast(L, a, ct), lw_cast(L, b, ct));
  return lw_cast(L, r, et);
}

/* ---- float formulas --------------------------------------------------------
 * Helpers computing in a float type ct, shared by several converters.
 *
 * onnxruntime's Where returns +0.0 when it picks -0.0 from its *true* input
 * (its kernel merges the two selections by adding); a -0.0 from the false
 * input survives.  Formulas that must keep -0.0 put it on the false side -
 * under a condition that is not a Not, which onnxruntime's NotWhereFusion
 * would fold by swapping the inputs back. */

/* r where |x| > 0, else x: keeps ±0 (and NaN). */
static OValue *keep_zero(Lower *L, ElemType ct, OValue *x, OValue *r) {
  OValue *nonzero = op2(L, ET_BOOL, "Greater", op1(L, ct, "Abs", x), k(L, ct, 0));
  return where(L, ct, nonzero, r, x);
}

/* x < 0 or x is -0.0 (1/x = -inf); false for NaN. */
static OValue *sign_set(Lower *L, ElemType ct, OValue *x) {
  OValue *zero = k(L, ct, 0);
  return op2(L, ET_BOOL, "Or", op2(L, ET_BOOL, "Less", x, zero),
             op2(L, ET_BOOL, "Less", op1(L, ct, "Reciprocal", x), zero));
}

/* x > 0 or x is +0.0; false for NaN. */
static OValue *sign_clear(Lower *L, ElemType ct, OValue *x) {
  OValue *zero = k(L, ct, 0);
  return op2(L, ET_BOOL, "And", op2(L, ET_BOOL, "GreaterOrEqual", x, zero),
             op2(L, ET_BOOL, "GreaterOrEqual", op1(L, ct, "Reciprocal", x), zero));
}

/* r (>= 0 or NaN) with the sign of x, including x = -0.0. */
static OValue *copy_sign(Lower *L, ElemType ct, OValue *r, OValue *x) {
  return where(L, ct, sign_clear(L, ct, x), r, op1(L, ct, "Neg", r));
}

/* exp(x) - 1 cancels for small |x|; there expm1(x) = 2t / (1 - t) with
 * t = tanh(x/2) is accurate to a few ulp (and keeps -0.0).  For |x| >= 0.5
 * (and ±inf) the plain form loses at most a bit. */
static OValue *expm1_of(Lower *L, ElemType ct, OValue *x) {
  OValue *t = op1(L, ct, "Tanh", op2(L, ct, "Mul", x, k(L, ct, 0.5)));
  OValue *near = op2(L, ct, "Div", op2(L, ct, "Add", t, t), op2(L, ct, "Sub", k(L, ct, 1), t));
  OValue *far = op2(L, ct, "Sub", op1(L, ct, "Exp", x), k(L, ct, 1));
  OValue *big = op2(L, ET_BOOL, "GreaterOrEqual", op1(L, ct, "Abs", x), k(L, ct, 0.5));
  return where(L, ct, big, far, near);
}

/* log(1 + x) loses the low bits of x in the addition; Goldberg's rewrite
 * log(u) * x / (u - 1), u = 1 + x, cancels the rounding error of u.  u == 1
 * gives x itself (keeping -0.0); u == +inf gives +inf, not inf/inf. */
static OValue *log1p_of(Lower *L, ElemType ct, OValue *x) {
  OValue *u = op2(L, ct, "Add", x, k(L, ct, 1));
  OValue *d = op2(L, ct, "Sub", u, k(L, ct, 1));
  OValue *r = op2(L, ct, "Mul", op1(L, ct, "Log", u), op2(L, ct, "Div", x, d));
  ONode *inf = node(L, ET_BOOL, "IsInf", 1, &u);
  og_attr_int(L->c, inf, "detect_negative", 0);
  r = where(L, ct, inf->outputs[0], u, r);
  return where(L, ct, op2(L, ET_BOOL, "Greater", op1(L, ct, "Abs", d), k(L, ct, 0)), r, x);
}

/* atan(a) for a in [0, 1] (or NaN).  onnxruntime has Atan for f16 and f32
 * only: in f64 the f32 result is refined by one Newton step on
 * sin(t) - a cos(t) = 0, which squares its relative error (~1e-8). */
static OValue *atan01(Lower *L, ElemType ct, OValue *a) {
  if (ct != ET_F64) return op1(L, ct, "Atan", a);
  OValue *t = lw_cast(L, op1(L, ET_F32, "Atan", lw_cast(L, a, ET_F32)), ct);
  OValue *s = op1(L, ct, "Sin", t), *c = op1(L, ct, "Cos", t);
  OValue *f = op2(L, ct, "Sub", s, op2(L, ct, "Mul", a, c));
  OValue *df = op2(L, ct, "Add", c, op2(L, ct, "Mul", a, s));
  return op2(L, ct, "Sub", t, op2(L, ct, "Div", f, df));
}

/* atan2(y, x) from atan of a ratio in [0, 1] (accurate, no overflow), then
 * the octant: pi/2 - r where |y| > |x|, pi - r where x is negative or -0.0,
 * and the sign of y (also of ±0).  0/0 and inf/inf take the ratios 0 and 1,
 * as IEEE atan2 does; NaN propagates. */
static OValue *atan2_of(Lower *L, ElemType ct, OValue *y, OValue *x) {
  OValue *ax = op1(L, ct, "Abs", x), *ay = op1(L, ct, "Abs", y);
  OValue *lo = op2(L, ct, "Min", ax, ay), *hi = op2(L, ct, "Max", ax, ay);
  OValue *ratio = op2(L, ct, "Div", lo, hi);
  ratio = where(L, ct, op2(L, ET_BOOL, "Equal", hi, k(L, ct, 0)), k(L, ct, 0), ratio);
  ratio = where(L, ct, op1(L, ET_BOOL, "IsInf", lo), k(L, ct, 1), ratio);
  OValue *r = atan01(L, ct, ratio);
  r = where(L, ct, op2(L, ET_BOOL, "Greater", ay, ax), op2(L, ct, "Sub", k(L, ct, PI / 2), r), r);
  r = where(L, ct, sign_set(L, ct, x), op2(L, ct, "Sub", k(L, ct, PI), r), r);
  return copy_sign(L, ct, r, y);
}

/* e^|x| / 2 as h * (h / 2) with h = e^(|x|/2): finite as long as the result
 * is (exp(|x|) alone overflows from 709.8, cosh only from 710.5). */
static OValue *half_exp_abs(Lower *L, ElemType ct, OValue *x) {
  OValue *h = op1(L, ct, "Exp", op2(L, ct, "Mul", op1(L, ct, "Abs", x), k(L, ct, 0.5)));
  return op2(L, ct, "Mul", h, op2(L, ct, "Mul", h, k(L, ct, 0.5)));
}

/* The f64 forms of the ops onnxruntime has no f64 kernel for (Erf aside):
 * built from Exp, Log, Sqrt, Tanh, Sin, Cos and the helpers above, accurate
 * to ~1e-15 relative.  Returns NULL for an op without such a form. */
static OValue *f64_formula(Lower *L, const char *t, OValue *x) {
  const ElemType ct = ET_F64;
  OValue *one = k(L, ct, 1);
  if (strcmp(t, "Tan") == 0) return op2(L, ct, "Div", op1(L, ct, "Sin", x), op1(L, ct, "Cos", x));
  if (strcmp(t, "Atan") == 0) return atan2_of(L, ct, x, one);
  if (strcmp(t, "Asin") == 0) { /* atan2(x, sqrt((1 - x)(1 + x))) */
    OValue *c = op2(L, ct, "Mul", op2(L, ct, "Sub", one, x), op2(L, ct, "Add", one, x));
    return atan2_of(L, ct, x, op1(L, ct, "Sqrt", c));
  }
  if (strcmp(t, "Acos") == 0) { /* 2 atan2(sqrt(1 - x), sqrt(1 + x)) */
    OValue *r = atan2_of(L, ct, op1(L, ct, "Sqrt", op2(L, ct, "Sub", one, x)),
                         op1(L, ct, "Sqrt", op2(L, ct, "Add", one, x)));
    return op2(L, ct, "Add", r, r);
  }
  if (strcmp(t, "Cosh") == 0) { /* e^|x|/2 + e^-|x|/2 */
    OValue *p = half_exp_abs(L, ct, x);
    return op2(L, ct, "Add", p, op2(L, ct, "Div", k(L, ct, 0.25), p));
  }
  if (strcmp(t, "Sinh") == 0) {
    /* |x| < 0.5: 2t / (1 - t^2) with t = tanh(x/2), no cancellation;
     * else copysign(e^|x|/2 - e^-|x|/2, x). */
    OValue *th = op1(L, ct, "Tanh", op2(L, ct, "Mul", x, k(L, ct, 0.5)));
    OValue *near = op2(L, ct, "Div", op2(L, ct, "Add", th, th),
                       op2(L, ct, "Sub", one, op2(L, ct, "Mul", th, th)));
    OValue *p = half_exp_abs(L, ct, x);
    OValue *far = op2(L, ct, "Sub", p, op2(L, ct, "Div", k(L, ct, 0.25), p));
    far = where(L, ct, op2(L, ET_BOOL, "Less", x, k(L, ct, 0)), op1(L, ct, "Neg", far), far);
    OValue *big = op2(L, ET_BOOL, "GreaterOrEqual", op1(L, ct, "Abs", x), k(L, ct, 0.5));
    return where(L, ct, big, far, near);
  }
  if (strcmp(t, "Asinh") == 0) {
    /* copysign(log1p(a + a^2 / (1 + sqrt(1 + a^2))), x), a = |x|; above
     * 1e150 (a^2 would overflow) log(a) + log(2). */
    OValue *a = op1(L, ct, "Abs", x), *a2 = op2(L, ct, "Mul", a, a);
    OValue *s = op2(L, ct, "Add", one, op1(L, ct, "Sqrt", op2(L, ct, "Add", one, a2)));
    OValue *r = log1p_of(L, ct, op2(L, ct, "Add", a, op2(L, ct, "Div", a2, s)));
    OValue *huge = op2(L, ct, "Add", op1(L, ct, "Log", a), k(L, ct, LN2));
    r = where(L, ct, op2(L, ET_BOOL, "Greater", a, k(L, ct, 1e150)), huge, r);
    return copy_sign(L, ct, r, x);
  }
  if (strcmp(t, "Acosh") == 0) {
    /* log1p(t + sqrt(t) sqrt(x + 1)), t = x - 1 (exact near 1); above
     * 1e150 log(x) + log(2).  x < 1 gives NaN through Sqrt(t). */
    OValue *tm = op2(L, ct, "Sub", x, one);
    OValue *s = op2(L, ct, "Mul", op1(L, ct, "Sqrt", tm),
                    op1(L, ct, "Sqrt", op2(L, ct, "Add", x, one)));
    OValue *r = log1p_of(L, ct, op2(L, ct, "Add", tm, s));
    OValue *huge = op2(L, ct, "Add", op1(L, ct, "Log", x), k(L, ct, LN2));
    return where(L, ct, op2(L, ET_BOOL, "Greater", x, k(L, ct, 1e150)), huge, r);
  }
  if (strcmp(t, "Atanh") == 0) { /* log1p(2x / (1 - x)) / 2: ±1 -> ±inf, |x| > 1 -> NaN */
    OValue *q = op2(L, ct, "Div", op2(L, ct, "Add", x, x), op2(L, ct, "Sub", one, x));
    return op2(L, ct, "Mul", log1p_of(L, ct, q), k(L, ct, 0.5));
  }
  return NULL;
}

/* ---- unary ops ------------------------------------------------------------ */

/* onnxruntime has these only for f16 and f32, not f64. */
static bool no_f64_kernel(const char *t) {
  static const char *const names[] = {"Tan",  "Erf",   "Sinh",  "Cosh",  "Asin",
                                      "Acos", "Atan",  "Asinh", "Acosh", "Atanh"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (strcmp(t, names[i]) == 0) return true;
  return false;
}

/* One ONNX op, named by the hint (Ceil, Exp, Tanh, Erf, IsInf, ...). */
int lower_unary(Lower *L, const Op *op) {
  const char *t = op_table[op->kind].onnx_hint;
  bool neg = strcmp(t, "Neg") == 0;
  if (check(L, op, 1, neg ? K_INT | K_FLOAT : K_FLOAT)) return -1;
  ElemType et = in_et(op, 0);
  OValue *x = lw_get(L, op->operands[0]);
  /* ONNX Neg is for signed types; 0 - x wraps as JAX's negation does. */
  if (neg && et_is_unsigned_int(et)) return bind(L, op, op2(L, et, "Sub", kint(L, et, 0), x));
  ElemType ct = math_type(et);
  if (et == ET_F64 && no_f64_kernel(t)) {
    OValue *r = f64_formula(L, t, x);
    if (r) return bind(L, op, r);
    ct = ET_F32; /* Erf: no f64 form; computed in f32 (~1e-7 relative) */
  }
  ElemType rt = out_et(op) == ET_BOOL ? ET_BOOL : ct; /* IsInf */
  return bind(L, op, op1(L, rt, t, lw_cast(L, x, ct)));
}

/* abs of a signed int keeps INT_MIN, as ONNX Abs does. */
int lower_abs(Lower *L, const Op *op) {
  if (check(L, op, 1, K_INT | K_FLOAT)) return -1;
  ElemType ct = math_type(in_et(op, 0));
  return bind(L, op, op1(L, ct, "Abs", lw_cast(L, lw_get(L, op->operands[0]), ct)));
}

/* 1 / sqrt(x); f16 in f32 so that only the final result rounds to f16. */
int lower_rsqrt(Lower *L, const Op *op) {
  if (check(L, op, 1, K_FLOAT)) return -1;
  ElemType ct = formula_type(in_et(op, 0));
  OValue *x = lw_cast(L, lw_get(L, op->operands[0]), ct);
  return bind(L, op, op1(L, ct, "Reciprocal", op1(L, ct, "Sqrt", x)));
}

/* sign(x) * |x|^(1/3).  1/3 is not exact in binary, which costs at most
 * |ln x| * 1e-8 relative in f32 (< 1e-6); ±0 stays ±0. */
int lower_cbrt(Lower *L, const Op *op) {
  if (check(L, op, 1, K_FLOAT)) return -1;
  ElemType ct = formula_type(in_et(op, 0));
  OValue *x = lw_cast(L, lw_get(L, op->operands[0]), ct);
  OValue *mag = op2(L, ct, "Pow", op1(L, ct, "Abs", x), k(L, ct, 1.0 / 3.0));
  return bind(L, op, keep_zero(L, ct, x, op2(L, ct, "Mul", op1(L, ct, "Sign", x), mag)));
}

/* exp(x) - 1 and log(1 + x) accurate near 0: see expm1_of and log1p_of. */
int lower_expm1(Lower *L, const Op *op) {
  if (check(L, op, 1, K_FLOAT)) return -1;
  ElemType ct = formula_type(in_et(op, 0));
  return bind(L, op, expm1_of(L, ct, lw_cast(L, lw_get(L, op->operands[0]), ct)));
}

int lower_log1p(Lower *L, const Op *op) {
  if (check(L, op, 1, K_FLOAT)) return -1;
  ElemType ct = formula_type(in_et(op, 0));
  return bind(L, op, log1p_of(L, ct, lw_cast(L, lw_get(L, op->operands[0]), ct)));
}

/* ONNX Sign returns +0 for -0.0, JAX keeps -0.0; NaN stays NaN in both. */
int lower_sign(Lower *L, const Op *op) {
  if (check(L, op, 1, K_INT | K_FLOAT)) return -1;
  ElemType et = in_et(op, 0), ct = math_type(et);
  OValue *x = lw_cast(L, lw_get(L, op->operands[0]), ct);
  OValue *s = op1(L, ct, "Sign", x);
  return bind(L, op, et_is_float(et) ? keep_zero(L, ct, x, s) : s);
}

/* Ties away from zero.  ONNX Round breaks ties to even; where x is exactly
 * halfway (|x - Round(x)| == 0.5) the answer is x + copysign(0.5, x), which
 * is exact.  Floor(|x| + 0.5) would be wrong for 0.49999997 and for odd
 * integers above 2^23, where the addition itself rounds. */
int lower_round_afz(Lower *L, const Op *op) {
  if (check(L, op, 1, K_FLOAT)) return -1;
  ElemType ct = math_type(in_et(op, 0));
  OValue *x = lw_cast(L, lw_get(L, op->operands[0]), ct);
  OValue *even = op1(L, ct, "Round", x);
  OValue *tie = op2(L, ET_BOOL, "Equal", op1(L, ct, "Abs", op2(L, ct, "Sub", x, even)),
                    k(L, ct, 0.5));
  OValue *away = op2(L, ct, "Add", x, op2(L, ct, "Mul", op1(L, ct, "Sign", x), k(L, ct, 0.5)));
  return bind(L, op, where(L, ct, tie, away, even));
}

/* Logical not on i1, bitwise not on integers. */
int lower_not(Lower *L, const Op *op) {
  if (check(L, op, 1, K_BOOL | K_INT)) return -1;
  ElemType et = in_et(op, 0);
  OValue *x = lw_get(L, op->operands[0]);
  if (et == ET_BOOL) return bind(L, op, op1(L, et, "Not", x));
  if (need_opset(L, 18, "BitwiseNot")) return -1;
  return bind(L, op, op1(L, et, "BitwiseNot", x));
}

/* |x| < inf: false for ±inf and NaN (any comparison with NaN is false). */
int lower_is_finite(Lower *L, const Op *op) {
  if (check(L, op, 1, K_FLOAT)) return -1;
  ElemType ct = math_type(in_et(op, 0));
  OValue *x = lw_cast(L, lw_get(L, op->operands[0]), ct);
  return bind(L, op, op2(L, ET_BOOL, "Less", op1(L, ct, "Abs", x), k(L, ct, INFINITY)));
}

/* erfc(x) = 1 - erf(x).  For x > ~4 erfc is below f32's resolution of 1 and
 * this gives 0 where JAX gives a tiny positive number: an absolute error
 * below 1e-7.  f16/bf16/f64 compute in f32 (no f64 Erf kernel). */
int lower_erfc(Lower *L, const Op *op) {
  if (check(L, op, 1, K_FLOAT)) return -1;
  ElemType ct = ET_F32;
  OValue *x = lw_cast(L, lw_get(L, op->operands[0]), ct);
  return bind(L, op, op2(L, ct, "Sub", k(L, ct, 1), op1(L, ct, "Erf", x)));
}

/* x * x (chlo.square). */
int lower_square(Lower *L, const Op *op) {
  if (check(L, op, 1, K_INT | K_FLOAT)) return -1;
  ElemType ct = math_type(in_et(op, 0));
  OValue *x = lw_cast(L, lw_get(L, op->operands[0]), ct);
  return bind(L, op, op2(L, ct, "Mul", x, x));
}

/* ---- binary ops ----------------------------------------------------------- */

/* The predicate p of v = convert(p : i1), else NULL. */
static const Value *converted_pred(const Value *v) {
  const Op *d = v->def;
  return d && d->kind == OP_CONVERT && d->n_operands == 1 && d->operands[0]->type.et == ET_BOOL
             ? d->operands[0]
             : NULL;
}

/* Add, Sub, Mul (the hint).  Integers wrap in both.  On i1 the spec makes
 * add logical or and multiply logical and.
 * multiply(convert(p), x) over f16, f32 or f64 is select(p, x, 0) in JAX:
 * XLA's algebraic simplifier rewrites it so, and 0 * inf or 0 * NaN then
 * gives +0.0 (and 0 * -3 +0.0), not NaN (and -0.0) as the spec's multiply
 * would (bf16 is computed in f32 through another convert, which XLA leaves
 * as a product).  Here Where(Xor(p, true), 0, x): x from Where's last
 * input, which onnxruntime takes with the sign of a -0.0 (its second one
 * loses it); a Not would be fused with the Where by onnxruntime, which
 * swaps the inputs back. */
int lower_binary(Lower *L, const Op *op) {
  const char *t = op_table[op->kind].onnx_hint;
  bool is_sub = strcmp(t, "Sub") == 0;
  if (check(L, op, 2, K_INT | K_FLOAT | (is_sub ? 0 : K_BOOL))) return -1;
  ElemType et = in_et(op, 0), ct = math_type(et);
  if (op->kind == OP_MULTIPLY && (et == ET_F16 || et == ET_F32 || et == ET_F64))
    for (int i = 0; i < 2; i++) {
      const Value *p = converted_pred(op->operands[i]);
      if (!p) continue;
      OValue *off = op2(L, ET_BOOL, "Xor", lw_get(L, p), lw_const_scalar(L, ET_BOOL, 1));
      return bind(L, op,
                  where(L, et, off, lw_const_scalar(L, et, 0), lw_get(L, op->operands[1 - i])));
    }
  OValue *a = lw_cast(L, lw_get(L, op->operands[0]), ct);
  OValue *b = lw_cast(L, lw_get(L, op->operands[1]), ct);
  if (et == ET_BOOL) t = strcmp(t, "Add") == 0 ? "Or" : "And";
  return bind(L, op, op2(L, ct, t, a, b));
}

/* The type integer division and remainder compute in: 8- and 16-bit ints in
 * i32, where INT_MIN / -1 cannot overflow and the Casts back wrap as XLA. */
static ElemType int_div_type(ElemType et) {
  return bits_of(et) < 32 ? ET_I32 : et;
}

/* A constant: stablehlo.constant, through broadcasts and reshapes. */
static bool is_constant(const Value *v) {
  for (int hops = 0; v && v->def && hops < 8; hops++) {
    const Op *d = v->def;
    if (d->kind == OP_CONSTANT) return true;
    if ((d->kind != OP_BROADCAST_IN_DIM && d->kind != OP_RESHAPE) || d->n_operands < 1)
      return false;
    v = d->operands[0];
  }
  return false;
}

/* divide(convert(p), c) over f16, f32 or f64 with a constant c: XLA makes
 * it convert(p) * (1 / c), then select(p, 1 / c, 0) (see lower_binary), so
 * JAX gives +0.0 where p is false, also for c = 0 (not NaN) and c < 0. */
static bool pred_times_constant(const Op *op) {
  ElemType et = in_et(op, 0);
  return (et == ET_F16 || et == ET_F32 || et == ET_F64) && converted_pred(op->operands[0]) &&
         is_constant(op->operands[1]);
}

/* Integer division truncates toward zero in both; XLA defines x / 0 = -1
 * (all ones) and INT_MIN / -1 = INT_MIN, where onnxruntime fails on the
 * first and traps on the second.  The divisor becomes 1 in both cases and
 * the quotient is selected: -x for y == -1, all ones for y == 0. */
int lower_divide(Lower *L, const Op *op) {
  if (check(L, op, 2, K_INT | K_FLOAT)) return -1;
  ElemType et = in_et(op, 0);
  OValue *x = lw_get(L, op->operands[0]), *y = lw_get(L, op->operands[1]);
  if (et_is_float(et)) {
    ElemType ct = math_type(et);
    OValue *q = op2(L, ct, "Div", lw_cast(L, x, ct), lw_cast(L, y, ct));
    const Value *p = pred_times_constant(op) ? converted_pred(op->operands[0]) : NULL;
    if (p)
      q = where(L, ct, op2(L, ET_BOOL, "Xor", lw_get(L, p), lw_const_scalar(L, ET_BOOL, 1)),
                lw_const_scalar(L, ct, 0), q);
    return bind(L, op, q);
  }
  ElemType ct = int_div_type(et);
  x = lw_cast(L, x, ct);
  y = lw_cast(L, y, ct);
  OValue *zero = op2(L, ET_BOOL, "Equal", y, kint(L, ct, 0));
  bool wraps = et_is_signed_int(et) && ct == et; /* INT_MIN / -1 possible */
  OValue *minus1 = wraps ? op2(L, ET_BOOL, "Equal", y, kint(L, ct, -1)) : NULL;
  OValue *bad = wraps ? op2(L, ET_BOOL, "Or", zero, minus1) : zero;
  OValue *q = op2(L, ct, "Div", x, where(L, ct, bad, kint(L, ct, 1), y));
  if (wraps) q = where(L, ct, minus1, op1(L, ct, "Neg", x), q);
  /* all ones of the HLO type: -1 signed, 2^n - 1 unsigned (in i32 for narrow) */
  int64_t ones = et_is_signed_int(et) || ct == et ? -1 : (int64_t)((UINT64_C(1) << bits_of(et)) - 1);
  return bind(L, op, where(L, ct, zero, kint(L, ct, ones), q));
}

/* Remainder has the sign of the dividend: ONNX Mod with fmod=1 (required for
 * floats; C's % for integers).  XLA gives x % 0 = x and INT_MIN % -1 = 0;
 * divisors 0 and -1 become 1 (x % 1 = x % -1 = 0). */
int lower_remainder(Lower *L, const Op *op) {
  if (check(L, op, 2, K_INT | K_FLOAT)) return -1;
  ElemType et = in_et(op, 0);
  OValue *x = lw_get(L, op->operands[0]), *y = lw_get(L, op->operands[1]);
  ElemType ct = et_is_float(et) ? math_type(et) : int_div_type(et);
  x = lw_cast(L, x, ct);
  y = lw_cast(L, y, ct);
  OValue *zero = NULL;
  if (!et_is_float(et)) {
    zero = op2(L, ET_BOOL, "Equal", y, kint(L, ct, 0));
    OValue *bad = zero;
    if (et_is_signed_int(et) && ct == et)
      bad = op2(L, ET_BOOL, "Or", zero, op2(L, ET_BOOL, "Equal", y, kint(L, ct, -1)));
    y = where(L, ct, bad, kint(L, ct, 1), y);
  }
  OValue *in[2] = {x, y};
  ONode *mod = node(L, ct, "Mod", 2, in);
  og_attr_int(L->c, mod, "fmod", 1);
  OValue *r = mod->outputs[0];
  if (zero) r = where(L, ct, zero, x, r);
  return bind(L, op, r);
}

int lower_minmax(Lower *L, const Op *op) {
  if (check(L, op, 2, K_BOOL | K_INT | K_FLOAT)) return -1;
  bool is_max = strcmp(op_table[op->kind].onnx_hint, "Max") == 0;
  return bind(L, op, minmax(L, in_et(op, 0), is_max, lw_get(L, op->operands[0]),
                            lw_get(L, op->operands[1])));
}

/* Floats: Pow (same special values as JAX: pow(x, 0) = 1, pow(1, nan) = 1).
 * Integers: onnxruntime's integer Pow goes through double and has only i32
 * and i64 kernels, so all integers compute in i64 and wrap when cast back:
 * exact while |result| < 2^53.  (JAX itself never emits an integer power:
 * jnp.power unrolls it into multiplies.)  A negative exponent gives 0 except
 * for bases 1 and -1 - as the double does - but 0^-n must be 0, not inf. */
int lower_power(Lower *L, const Op *op) {
  if (check(L, op, 2, K_INT | K_FLOAT)) return -1;
  ElemType et = in_et(op, 0);
  ElemType ct = et_is_float(et) ? math_type(et) : ET_I64;
  OValue *x = lw_cast(L, lw_get(L, op->operands[0]), ct);
  OValue *y = lw_cast(L, lw_get(L, op->operands[1]), ct);
  if (!et_is_float(et)) {
    OValue *zero_neg = op2(L, ET_BOOL, "And", op2(L, ET_BOOL, "Equal", x, kint(L, ct, 0)),
                           op2(L, ET_BOOL, "Less", y, kint(L, ct, 0)));
    y = where(L, ct, zero_neg, kint(L, ct, 1), y);
  }
  return bind(L, op, op2(L, ct, "Pow", x, y));
}

/* See atan2_of; f16 and bf16 compute in f32. */
int lower_atan2(Lower *L, const Op *op) {
  if (check(L, op, 2, K_FLOAT)) return -1;
  ElemType ct = formula_type(in_et(op, 0));
  OValue *y = lw_cast(L, lw_get(L, op->operands[0]), ct);
  OValue *x = lw_cast(L, lw_get(L, op->operands[1]), ct);
  return bind(L, op, atan2_of(L, ct, y, x));
}

/* And/Or/Xor (the hint) on i1; BitwiseAnd/Or/Xor on integers. */
int lower_logical(Lower *L, const Op *op) {
  if (check(L, op, 2, K_BOOL | K_INT)) return -1;
  ElemType et = in_et(op, 0);
  const char *t = op_table[op->kind].onnx_hint;
  if (et != ET_BOOL) {
    t = arena_printf(L->c->arena, "Bitwise%s", t);
    if (need_opset(L, 18, t)) return -1;
  }
  return bind(L, op, op2(L, et, t, lw_get(L, op->operands[0]), lw_get(L, op->operands[1])));
}

/* ---- compare, select, clamp ---------------------------------------------- */

typedef enum Dir { D_EQ, D_NE, D_GE, D_GT, D_LE, D_LT } Dir;

/* x < y in IEEE totalOrder: -0.0 < +0.0 (1/x < 1/y where x == y == 0) and
 * NaN above everything.  Without a bitcast in ONNX the sign and payload of
 * a NaN cannot be read: every NaN counts as +NaN (JAX's sort puts NaNs last
 * too). */
static OValue *total_less(Lower *L, ElemType ct, OValue *x, OValue *y) {
  OValue *lt = op2(L, ET_BOOL, "Less", x, y);
  OValue *zeros = op2(L, ET_BOOL, "And", op2(L, ET_BOOL, "Equal", x, y),
                      op2(L, ET_BOOL, "Less", op1(L, ct, "Reciprocal", x),
                          op1(L, ct, "Reciprocal", y)));
  OValue *nan = op2(L, ET_BOOL, "And", op1(L, ET_BOOL, "Not", op1(L, ET_BOOL, "IsNaN", x)),
                    op1(L, ET_BOOL, "IsNaN", y));
  return op2(L, ET_BOOL, "Or", op2(L, ET_BOOL, "Or", lt, zeros), nan);
}

/* x == y in totalOrder: equal and of one sign (±inf have 1/x = ±0, equal),
 * or both NaN. */
static OValue *total_equal(Lower *L, ElemType ct, OValue *x, OValue *y) {
  OValue *eq = op2(L, ET_BOOL, "And", op2(L, ET_BOOL, "Equal", x, y),
                   op2(L, ET_BOOL, "Equal", op1(L, ct, "Reciprocal", x),
                       op1(L, ct, "Reciprocal", y)));
  OValue *nan = op2(L, ET_BOOL, "And", op1(L, ET_BOOL, "IsNaN", x), op1(L, ET_BOOL, "IsNaN", y));
  return op2(L, ET_BOOL, "Or", eq, nan);
}

static int parse_dir(const Attr *a, Dir *d) {
  static const char *const names[] = {"EQ", "NE", "GE", "GT", "LE", "LT"};
  if (!a || !a->s) return -1;
  for (int i = 0; i < 6; i++)
    if (strcmp(a->s, names[i]) == 0) {
      *d = (Dir)i;
      return 0;
    }
  return -1;
}

/* EQ Equal, NE Not(Equal) (true for NaN != NaN), GT Greater, GE
 * GreaterOrEqual, LT Less, LE LessOrEqual.  Integer signedness is the
 * element type's, as compare_type must say.  Ordering bools (no kernel)
 * compare as u8: false < true. */
int lower_compare(Lower *L, const Op *op) {
  if (check(L, op, 2, K_BOOL | K_INT | K_FLOAT)) return -1;
  Dir d;
  const Attr *dir = ir_op_attr(op, "comparison_direction");
  if (parse_dir(dir, &d) != 0)
    return lw_unsupported(L, "comparison_direction '%s' is not one of EQ, NE, GE, GT, LE, LT",
                          dir && dir->s ? dir->s : "(missing)");
  const Attr *ctype = ir_op_attr(op, "compare_type");
  bool total = ctype && ctype->s && strcmp(ctype->s, "TOTALORDER") == 0;
  ElemType et = in_et(op, 0);
  ElemType ct = et == ET_BOOL && d != D_EQ && d != D_NE ? ET_U8 : math_type(et);
  OValue *x = lw_cast(L, lw_get(L, op->operands[0]), ct);
  OValue *y = lw_cast(L, lw_get(L, op->operands[1]), ct);
  if (total && et_is_float(et)) {
    OValue *r;
    switch (d) {
    case D_EQ: r = total_equal(L, ct, x, y); break;
    case D_NE: r = op1(L, ET_BOOL, "Not", total_equal(L, ct, x, y)); break;
    case D_LT: r = total_less(L, ct, x, y); break;
    case D_GT: r = total_less(L, ct, y, x); break;
    case D_LE: r = op1(L, ET_BOOL, "Not", total_less(L, ct, y, x)); break;
    default: r = op1(L, ET_BOOL, "Not", total_less(L, ct, x, y)); break; /* GE */
    }
    return bind(L, op, r);
  }
  static const char *const onnx[] = {"Equal", "Equal", "GreaterOrEqual", "Greater",
                                     "LessOrEqual", "Less"};
  OValue *r = op2(L, ET_BOOL, onnx[d], x, y);
  if (d == D_NE) r = op1(L, ET_BOOL, "Not", r);
  return bind(L, op, r);
}

/* select(pred, on_true, on_false); pred may be rank 0. */
/* v without the Expands (broadcast_in_dim) and widening float Casts (bf16
 * compares compute in f32) it was made by: ops that keep which elements
 * are zero. */
static const OValue *source_of(const OValue *v) {
  for (const ONode *n; (n = v->producer) != NULL; v = n->inputs[0]) {
    bool widens = og_is(n, ONNX_Cast) && et_is_float(v->type.et) &&
                  et_is_float(n->inputs[0]->type.et) &&
                  et_size(v->type.et) > et_size(n->inputs[0]->type.et);
    if (!og_is(n, ONNX_Expand) && !widens) break;
  }
  return v;
}

/* Whether v is a float constant whose every element is ±0.0. */
static bool is_float_zero_const(Lower *L, const OValue *v) {
  v = source_of(v);
  const Data *d = og_const_data(v);
  size_t w = et_size(v->type.et);
  if (!d || !et_is_float(v->type.et) || w == 0 || d->nbytes % w) return false;
  const uint8_t *b = data_bytes(L->c, d);
  for (size_t i = 0; i < d->nbytes; i++)
    if (b[i] & (i % w == w - 1 ? 0x7f : 0xff)) return false;
  return true;
}

/* Whether the predicate c is true wherever a == 0: c is Equal(a, ±0), or
 * an Or with such a term (a few levels deep). */
static bool true_where_zero(Lower *L, const OValue *c, const OValue *a, int depth) {
  const ONode *n = c->producer;
  if (!n || depth > 4 || n->n_inputs != 2) return false;
  if (og_is(n, ONNX_Or))
    return true_where_zero(L, n->inputs[0], a, depth + 1) ||
           true_where_zero(L, n->inputs[1], a, depth + 1);
  a = source_of(a);
  return og_is(n, ONNX_Equal) &&
         ((source_of(n->inputs[0]) == a && is_float_zero_const(L, n->inputs[1])) ||
          (source_of(n->inputs[1]) == a && is_float_zero_const(L, n->inputs[0])));
}

/* select.  JAX's functions pass special inputs through with
 * select(isinf(x) | isnan(x) | x == 0, x, formula) (frexp, ldexp), which
 * puts a -0.0 input on the true side of a Where: there onnxruntime returns
 * +0.0 (see "float formulas").  In that form, where x is -0.0 the result
 * is multiplied by -1 (and by 1 elsewhere: exact, whichever side it came
 * from). */
int lower_select(Lower *L, const Op *op) {
  if (check_at(L, op, 3, 1, K_BOOL | K_INT | K_FLOAT)) return -1;
  if (in_et(op, 0) != ET_BOOL)
    return lw_unsupported(L, "the predicate is %s, not i1", et_mlir_name(in_et(op, 0)));
  ElemType et = in_et(op, 1);
  OValue *c = lw_get(L, op->operands[0]), *a = lw_get(L, op->operands[1]);
  OValue *r = where(L, et, c, a, lw_get(L, op->operands[2]));
  if (et_is_float(et) && true_where_zero(L, c, a, 0)) {
    ElemType ct = formula_type(et);
    OValue *ac = lw_cast(L, a, ct), *zero = k(L, ct, 0);
    OValue *neg_zero = op2(L, ET_BOOL, "And", op2(L, ET_BOOL, "Equal", ac, zero),
                           op2(L, ET_BOOL, "Less", op1(L, ct, "Reciprocal", ac), zero));
    r = op2(L, ct, "Mul", lw_cast(L, r, ct), where(L, ct, neg_zero, k(L, ct, -1), k(L, ct, 1)));
  }
  return bind(L, op, r);
}

/* clamp(min, x, max) = minimum(maximum(x, min), max) by the spec: NaN in any
 * of the three gives NaN, min > max gives max - as JAX.  Max/Min take the
 * rank-0 and the full-shape bounds alike (ONNX Clip takes rank-0 only). */
int lower_clamp(Lower *L, const Op *op) {
  if (check_at(L, op, 3, 1, K_BOOL | K_INT | K_FLOAT)) return -1;
  ElemType et = in_et(op, 1);
  OValue *lo = lw_get(L, op->operands[0]), *x = lw_get(L, op->operands[1]);
  OValue *hi = lw_get(L, op->operands[2]);
  return bind(L, op, minmax(L, et, false, minmax(L, et, true, x, lo), hi));
}

/* ---- convert -------------------------------------------------------------- */

/* Float to integer: truncation toward zero (ONNX Cast does that), but XLA
 * saturates out-of-range values and maps NaN to 0, where Cast is undefined
 * (onnxruntime: INT_MIN, or wrapped for narrow types).  So: NaN -> 0, clip
 * to [min, the largest float <= max], cast.  When max = 2^k - 1 is not a
 * float (k > the float's precision: i32 from f32, i64, ...), the clip bound
 * is 2^k - 2^(k-p) and values above it get the rest added (Where has no
 * u64 kernel; Add and Mul have all). */
static OValue *float_to_int(Lower *L, OValue *x, ElemType ft, ElemType it) {
  x = lw_cast(L, x, ft);
  bool is_signed = et_is_signed_int(it);
  int kbits = bits_of(it) - (is_signed ? 1 : 0); /* max = 2^kbits - 1 */
  int p = ft == ET_F64 ? DBL_MANT_DIG : FLT_MANT_DIG;
  bool exact = kbits <= p;
  double lo = is_signed ? -ldexp(1, kbits) : 0; /* a power of two: exact */
  double hi = exact ? ldexp(1, kbits) - 1 : ldexp(1, kbits) - ldexp(1, kbits - p);
  x = where(L, ft, op1(L, ET_BOOL, "IsNaN", x), k(L, ft, 0), x);
  OValue *in[3] = {x, k(L, ft, lo), k(L, ft, hi)};
  OValue *r = lw_cast(L, node(L, ft, "Clip", 3, in)->outputs[0], it);
  if (!exact) {
    int64_t rest = (int64_t)((UINT64_C(1) << (kbits - p)) - 1);
    OValue *over = lw_cast(L, op2(L, ET_BOOL, "Greater", x, k(L, ft, hi)), it);
    r = op2(L, it, "Add", r, op2(L, it, "Mul", over, kint(L, it, rest)));
  }
  return r;
}

/* Element type conversion.  int -> int wraps (Cast does); float -> bool is
 * x != 0 (NaN is true, as Cast); bf16 <-> f16 and conversions touching bf16
 * go through f32, which holds both. */
int lower_convert(Lower *L, const Op *op) {
  if (check(L, op, 1, K_BOOL | K_INT | K_FLOAT)) return -1;
  ElemType from = in_et(op, 0), to = out_et(op);
  if (!kind_of(to)) return lw_unsupported(L, "conversion to %s is not supported", et_mlir_name(to));
  OValue *x = lw_get(L, op->operands[0]);
  if (from == to) return bind(L, op, x);
  if (et_is_float(from) && et_is_int(to))
    return bind(L, op, float_to_int(L, x, from == ET_F64 ? ET_F64 : ET_F32, to));
  if ((from == ET_BF16 || to == ET_BF16) && from != ET_F32 && to != ET_F32)
    x = lw_cast(L, x, ET_F32);
  return bind(L, op, lw_cast(L, x, to));
}

/* ---- bits: shifts, popcnt, count_leading_zeros ----------------------------
 * ONNX BitShift exists only for unsigned types, so these work on the bits as
 * the unsigned type of the same width (Casts between the two keep them). */

static ElemType unsigned_of(ElemType et) {
  switch (et) {
  case ET_I8: return ET_U8;
  case ET_I16: return ET_U16;
  case ET_I32: return ET_U32;
  case ET_I64: return ET_U64;
  default: return et;
  }
}

static OValue *bit_shift(Lower *L, ElemType ut, OValue *x, OValue *amount, const char *dir) {
  OValue *in[2] = {x, amount};
  ONode *n = node(L, ut, "BitShift", 2, in);
  og_attr_string(L->c, n, "direction", dir);
  return n->outputs[0];
}

/* x >> s or x << s with XLA's rule for amounts past the width (s read as
 * unsigned, so negative amounts are too): the result is 0.  BitShift by >=
 * the width is undefined (x86 masks the amount), so the amount goes in
 * modulo the width and such results are multiplied by 0. */
static OValue *shift_u(Lower *L, ElemType ut, OValue *x, OValue *s, const char *dir) {
  OValue *width = kint(L, ut, bits_of(ut));
  OValue *r = bit_shift(L, ut, x, op2(L, ut, "Mod", s, width), dir);
  return op2(L, ut, "Mul", r, lw_cast(L, op2(L, ET_BOOL, "Less", s, width), ut));
}

/* shift_left, shift_right_logical, shift_right_arithmetic (by op kind).  The
 * arithmetic shift reads the top bit as the sign, for unsigned types too:
 * with m all ones where it is set, x >>a s = m ^ ((x ^ m) >> s), which also
 * gives m for amounts past the width. */
int lower_shift(Lower *L, const Op *op) {
  if (check(L, op, 2, K_INT)) return -1;
  ElemType ut = unsigned_of(in_et(op, 0));
  OValue *x = lw_cast(L, lw_get(L, op->operands[0]), ut);
  OValue *s = lw_cast(L, lw_get(L, op->operands[1]), ut);
  if (op->kind == OP_SHIFT_LEFT) return bind(L, op, shift_u(L, ut, x, s, "LEFT"));
  if (op->kind == OP_SHIFT_RIGHT_LOGICAL) return bind(L, op, shift_u(L, ut, x, s, "RIGHT"));
  if (need_opset(L, 18, "BitwiseXor")) return -1;
  OValue *top = op2(L, ET_BOOL, "GreaterOrEqual", x,
                    kint(L, ut, (int64_t)(UINT64_C(1) << (bits_of(ut) - 1))));
  OValue *m = op2(L, ut, "Sub", kint(L, ut, 0), lw_cast(L, top, ut)); /* 0 or ~0 */
  OValue *r = shift_u(L, ut, op2(L, ut, "BitwiseXor", x, m), s, "RIGHT");
  return bind(L, op, op2(L, ut, "BitwiseXor", r, m));
}

/* A constant with the byte b repeated over the width of ut. */
static OValue *bytes_of(Lower *L, ElemType ut, unsigned b) {
  return kint(L, ut, (int64_t)(UINT64_C(0x0101010101010101) * b));
}

/* The number of set bits of x (unsigned ut): the classic SWAR sums of 2, 4
 * and 8 bits, then the bytes added by a multiply into the top byte. */
static OValue *popcount_u(Lower *L, ElemType ut, OValue *x) {
  int n = bits_of(ut);
  OValue *v = op2(L, ut, "Sub", x, op2(L, ut, "BitwiseAnd", bit_shift(L, ut, x, kint(L, ut, 1), "RIGHT"),
                                       bytes_of(L, ut, 0x55)));
  OValue *m2 = bytes_of(L, ut, 0x33);
  v = op2(L, ut, "Add", op2(L, ut, "BitwiseAnd", v, m2),
          op2(L, ut, "BitwiseAnd", bit_shift(L, ut, v, kint(L, ut, 2), "RIGHT"), m2));
  v = op2(L, ut, "BitwiseAnd", op2(L, ut, "Add", v, bit_shift(L, ut, v, kint(L, ut, 4), "RIGHT")),
          bytes_of(L, ut, 0x0f));
  if (n > 8)
    v = bit_shift(L, ut, op2(L, ut, "Mul", v, bytes_of(L, ut, 0x01)), kint(L, ut, n - 8), "RIGHT");
  return v;
}

int lower_popcnt(Lower *L, const Op *op) {
  if (check(L, op, 1, K_INT) || need_opset(L, 18, "BitwiseAnd")) return -1;
  ElemType ut = unsigned_of(in_et(op, 0));
  return bind(L, op, popcount_u(L, ut, lw_cast(L, lw_get(L, op->operands[0]), ut)));
}

/* Leading zeros: smear the highest set bit into every lower one
 * (v |= v >> 1, 2, 4, ...), then width - popcount. */
int lower_count_leading_zeros(Lower *L, const Op *op) {
  if (check(L, op, 1, K_INT) || need_opset(L, 18, "BitwiseOr")) return -1;
  ElemType ut = unsigned_of(in_et(op, 0));
  OValue *v = lw_cast(L, lw_get(L, op->operands[0]), ut);
  for (int s = 1; s < bits_of(ut); s *= 2)
    v = op2(L, ut, "BitwiseOr", v, bit_shift(L, ut, v, kint(L, ut, s), "RIGHT"));
  return bind(L, op, op2(L, ut, "Sub", kint(L, ut, bits_of(ut)), popcount_u(L, ut, v)));
}

/* ---- float bits: bitcast_convert, next_after, reduce_precision -------------
 * ONNX has no way to read the bytes of a float before opset 26 (BitCast),
 * but every field of an IEEE float is a function of its value that exact
 * arithmetic recovers, and the value is a function of the fields:
 *
 *   float -> bits  the sign is x < 0 or 1/x < 0 (for -0.0); the exponent is
 *                  found by scaling |x| into [1, 2) with multiplications by
 *                  powers of two, each kept only when the result stays in
 *                  [0, 2) - every product is exact, subnormals included;
 *                  the significand is then an exact integer (n * 2^m, or
 *                  |x| * 2^(bias - 1 + m) below the normal range);
 *   bits -> float  (2^m + mantissa) * 2^(exponent - bias - m), subnormals
 *                  without the implicit bit, all-ones exponents inf or NaN.
 *
 * The fields are int64 values (the magnitude bits, the sign apart), so the
 * ops on them are plain Add/Mul/Div, at any opset.  What cannot be read is a
 * NaN's sign and payload: every NaN reads as the positive quiet NaN
 * (0x7fc00000 for f32, what jnp.nan is), and a NaN bit pattern becomes
 * that NaN.  So signbit/copysign of a negative NaN, or a bitcast of a
 * NaN's bits, differ from JAX (docs/numerics.md); every other value is
 * bit-exact.  Computed in f32 (f64 for f64), which hold every f16 and bf16
 * value and power of two met here. */

/* Mantissa and exponent bits of a float type (0 for others). */
static void float_layout(ElemType et, int *m, int *e) {
  switch (et) {
  case ET_F16: *m = 10; *e = 5; break;
  case ET_BF16: *m = 7; *e = 8; break;
  case ET_F32: *m = 23; *e = 8; break;
  case ET_F64: *m = 52; *e = 11; break;
  default: *m = 0; *e = 0; break;
  }
}

static ElemType bits_compute_type(ElemType ft) { return ft == ET_F64 ? ET_F64 : ET_F32; }

/* The bits of the positive quiet NaN and of +inf of a float type. */
static int64_t quiet_nan_bits(int m, int e) {
  return ((((int64_t)1 << e) - 1) << m) | ((int64_t)1 << (m - 1));
}
static int64_t inf_bits(int m, int e) { return (((int64_t)1 << e) - 1) << m; }

/* The bits of |x| (x of float type ft, already in the compute type) as
 * int64: exact for every finite value and inf, the quiet NaN for NaN. */
static OValue *magnitude_bits(Lower *L, OValue *x, ElemType ft) {
  int m, e;
  float_layout(ft, &m, &e);
  int64_t bias = ((int64_t)1 << (e - 1)) - 1;
  ElemType ct = bits_compute_type(ft);
  /* f16 and bf16 are read in f32, where x may not be on their grid:
   * onnxruntime runs a chain of f16 ops (Add, then the Cast to f32 here) in
   * f32 without rounding in between - not even at an explicit Cast pair
   * f32 -> f16 -> f32 - so the rounding to f16 is redone here: to nearest
   * even of the significand below, overflow from half an ulp past the
   * largest finite value (values on the grid are unchanged). */
  bool regrid = ct != ft;
  double largest = ldexp(2.0 - ldexp(1, -m), (int)bias);
  double inf_from = regrid ? ldexp(2.0 - ldexp(1, -m - 1), (int)bias) : largest;
  OValue *a = op1(L, ct, "Abs", x);
  OValue *finite = op2(L, ET_BOOL, regrid ? "Less" : "LessOrEqual", a, k(L, ct, inf_from));
  a = where(L, ct, finite, a, k(L, ct, 0)); /* inf and NaN: fixed at the end */
  /* Scale n = a into [1, 2), ex = floor(log2 a).  Down: n >= 2^s keeps
   * n * 2^-s >= 1.  Up: n < 2^(1-s) keeps n * 2^s < 2.  Each step takes
   * s off the distance to [1, 2) when it is at least s, so powers of two
   * from the largest needed down to 1 cover it; the largest step is
   * bounded (2^s a normal number of ct) and repeated instead. */
  OValue *n = a, *ex = k(L, ct, 0);
  int down = 1;
  while (2 * down <= bias) down *= 2;
  for (int s = down; s >= 1; s /= 2) {
    OValue *c = op2(L, ET_BOOL, "GreaterOrEqual", n, k(L, ct, ldexp(1, s)));
    n = where(L, ct, c, op2(L, ct, "Mul", n, k(L, ct, ldexp(1, -s))), n);
    ex = op2(L, ct, "Add", ex, where(L, ct, c, k(L, ct, s), k(L, ct, 0)));
  }
  int64_t deficit = bias - 1 + m; /* the smallest subnormal is 2^-deficit */
  int64_t step_cap = ct == ET_F64 ? 512 : 64, up = 1, steps[64];
  while (2 * up <= step_cap && 2 * up <= deficit) up *= 2;
  int n_steps = 0;
  for (int64_t r = deficit / up; r > 1; r--) steps[n_steps++] = up;
  for (int64_t s = up; s >= 1; s /= 2) steps[n_steps++] = s;
  for (int i = 0; i < n_steps; i++) {
    int64_t s = steps[i];
    OValue *c = op2(L, ET_BOOL, "Less", n, k(L, ct, ldexp(1, (int)(1 - s))));
    n = where(L, ct, c, op2(L, ct, "Mul", n, k(L, ct, ldexp(1, (int)s))), n);
    ex = op2(L, ct, "Sub", ex, where(L, ct, c, k(L, ct, (double)s), k(L, ct, 0)));
  }
  /* normal: (ex + bias) * 2^m + (n - 1) * 2^m; below: |x| * 2^(bias-1+m),
   * in two exact steps (2^149 is not an f32).  Zero lands below. */
  OValue *normal = op2(L, ET_BOOL, "GreaterOrEqual", ex, k(L, ct, (double)(1 - bias)));
  OValue *sub = op2(L, ct, "Mul", op2(L, ct, "Mul", a, k(L, ct, ldexp(1, m))),
                    k(L, ct, ldexp(1, (int)bias - 1)));
  OValue *sig = where(L, ct, normal, op2(L, ct, "Mul", n, k(L, ct, ldexp(1, m))), sub);
  if (regrid) sig = op1(L, ct, "Round", sig); /* a carry to 2^(m+1) makes the next exponent */
  OValue *field =
      where(L, ct, normal, op2(L, ct, "Add", ex, k(L, ct, (double)(bias - 1))), k(L, ct, 0));
  OValue *bits =
      op2(L, ET_I64, "Add", lw_cast(L, sig, ET_I64),
          op2(L, ET_I64, "Mul", lw_cast(L, field, ET_I64), kint(L, ET_I64, (int64_t)1 << m)));
  OValue *special = where(L, ET_I64, op1(L, ET_BOOL, "IsNaN", x),
                          kint(L, ET_I64, quiet_nan_bits(m, e)), kint(L, ET_I64, inf_bits(m, e)));
  return where(L, ET_I64, finite, bits, special);
}

/* The bits of x (float type ft) as the unsigned type of its width. */
static OValue *float_to_bits(Lower *L, OValue *x, ElemType ft) {
  ElemType ct = bits_compute_type(ft);
  OValue *xc = lw_cast(L, lw_cast(L, x, ft), ct);
  OValue *mag = magnitude_bits(L, xc, ft);
  int w = (int)et_size(ft) * 8;
  int64_t sign_bit = w == 64 ? INT64_MIN : (int64_t)1 << (w - 1);
  OValue *bits = where(L, ET_I64, sign_set(L, ct, xc),
                       op2(L, ET_I64, "Add", mag, kint(L, ET_I64, sign_bit)), mag);
  return lw_cast(L, bits, w == 64 ? ET_U64 : w == 32 ? ET_U32 : ET_U16);
}

/* The float (in its compute type) whose magnitude bits are mag (int64) and
 * whose sign is clear where `pos`.  NaN payloads are not kept. */
static OValue *float_from_fields(Lower *L, OValue *mag, OValue *pos, ElemType ft) {
  int m, e;
  float_layout(ft, &m, &e);
  int64_t bias = ((int64_t)1 << (e - 1)) - 1, emax = ((int64_t)1 << e) - 1;
  ElemType ct = bits_compute_type(ft);
  OValue *unit = kint(L, ET_I64, (int64_t)1 << m);
  OValue *ex = op2(L, ET_I64, "Div", mag, unit); /* mag >= 0: the floor */
  OValue *mant = op2(L, ET_I64, "Sub", mag, op2(L, ET_I64, "Mul", ex, unit));
  OValue *mf = lw_cast(L, mant, ct), *ef = lw_cast(L, ex, ct);
  OValue *sig = where(L, ct, op2(L, ET_BOOL, "Equal", ex, kint(L, ET_I64, 0)), mf,
                      op2(L, ct, "Add", mf, k(L, ct, ldexp(1, m))));
  /* Pow(2, k) is exact for the integer k met here, as is the product */
  OValue *p = op2(L, ct, "Sub", op2(L, ct, "Max", ef, k(L, ct, 1)), k(L, ct, (double)(bias + m)));
  OValue *v = op2(L, ct, "Mul", sig, op2(L, ct, "Pow", k(L, ct, 2), p));
  OValue *special = where(L, ct, op2(L, ET_BOOL, "Equal", mant, kint(L, ET_I64, 0)),
                          k(L, ct, INFINITY), k(L, ct, NAN));
  v = where(L, ct, op2(L, ET_BOOL, "Equal", ex, kint(L, ET_I64, emax)), special, v);
  return where(L, ct, pos, v, op1(L, ct, "Neg", v)); /* -0.0 on the false side */
}

/* The float whose bits are b (unsigned ut, as wide as ft). */
static OValue *float_from_bits(Lower *L, OValue *b, ElemType ut, ElemType ft) {
  int w = bits_of(ut);
  OValue *i = lw_cast(L, b, ET_I64); /* zero-extends; u64 keeps its bits */
  OValue *mag = op2(L, ET_I64, "BitwiseAnd", i,
                    kint(L, ET_I64, w == 64 ? INT64_MAX : ((int64_t)1 << (w - 1)) - 1));
  OValue *pos = op2(L, ET_BOOL, "Equal", i, mag);
  return lw_cast(L, float_from_fields(L, mag, pos, ft), ft);
}

/* The unsigned integer type of a width in bytes. */
static ElemType uint_of_size(size_t bytes) {
  return bytes == 1 ? ET_U8 : bytes == 2 ? ET_U16 : bytes == 4 ? ET_U32 : ET_U64;
}

/* Width-changing bitcasts (jax.random's 'rbg' keys: u32[..., 2] <-> u64[...]):
 * the narrow elements along the last axis are the wide one's bytes in
 * little-endian order.  Computed on the bits in u64 (BitShift has few
 * kernels); a float result is built from its fields. */
static int bitcast_resize(Lower *L, const Op *op, ElemType from, ElemType to) {
  if (need_opset(L, 18, "BitwiseOr")) return -1;
  const Type *ti = &op->operands[0]->type, *tr = &op->results[0]->type;
  size_t wf = et_size(from), wt = et_size(to);
  OValue *x = lw_get(L, op->operands[0]);
  OValue *r;
  if (et_is_float(from)) {
    /* float_to_bits builds values of the result's shape (node()), so the
     * float is first spread over it: [...] -> [..., k] copies, whose bits
     * are shifted down by 0, w, 2w, ... along the new axis and cut. */
    int64_t k = (int64_t)(wf / wt), axis = ti->rank;
    if (wf < wt || !type_is_static(tr))
      return lw_unsupported(L,
                            "bitcast from %s to the %s %s: a float is read as bits only for "
                            "the same width or narrower elements of a static shape",
                            et_mlir_name(from), wf < wt ? "wider" : "narrower", et_mlir_name(to));
    if (tr->rank != ti->rank + 1 || tr->dims[axis] != k)
      return lw_bad_input(L, "the result's last dimension is not the ratio of the widths");
    OValue *spread =
        lw_op2(L, "Expand", lw_unsqueeze(L, x, &axis, 1), lw_const_i64s(L, tr->rank, tr->dims));
    og_type_from_hlo(L->c, spread, tr);
    spread->type.et = from;
    uint8_t *amounts = arena_alloc(L->c->arena, (size_t)k * 8); /* u64, little-endian */
    for (int64_t j = 0; j < k; j++)
      for (int b = 0; b < 8; b++) amounts[8 * j + b] = (uint8_t)(((uint64_t)j * 8 * wt) >> (8 * b));
    Data d = {DATA_RAW, amounts, (size_t)k * 8};
    OValue *bits = lw_cast(L, float_to_bits(L, spread, from), ET_U64);
    r = bit_shift(L, ET_U64, bits, lw_const_data(L, ET_U64, 1, &k, d), "RIGHT");
  } else if (wf < wt) { /* [..., k] -> [...]: or the shifted parts */
    OValue *wide = lw_cast(L, lw_cast(L, x, uint_of_size(wf)), ET_U64);
    int64_t k = (int64_t)(wt / wf);
    if (ti->rank < 1 || ti->dims[ti->rank - 1] != k)
      return lw_bad_input(L, "the last dimension is not the ratio of the widths");
    r = NULL;
    for (int64_t j = 0; j < k; j++) {
      OValue *in[2] = {wide, lw_const_scalar(L, ET_I64, (double)j)};
      ONode *g = lw_node(L, "Gather", 2, in, 1);
      og_attr_int(L->c, g, "axis", ti->rank - 1);
      og_type_from_hlo(L->c, g->outputs[0], tr);
      g->outputs[0]->type.et = ET_U64;
      OValue *part =
          bit_shift(L, ET_U64, g->outputs[0], kint(L, ET_U64, j * 8 * (int64_t)wf), "LEFT");
      r = r ? op2(L, ET_U64, "BitwiseOr", r, part) : part;
    }
  } else { /* [...] -> [..., k]: the parts, shifted down and cut, side by side */
    OValue *wide = lw_cast(L, lw_cast(L, x, uint_of_size(wf)), ET_U64);
    int64_t k = (int64_t)(wf / wt), axis = ti->rank;
    if (tr->rank != ti->rank + 1 || tr->dims[axis] != k)
      return lw_bad_input(L, "the result's last dimension is not the ratio of the widths");
    OValue *parts[8];
    for (int64_t j = 0; j < k; j++) {
      OValue *in[2] = {wide, kint(L, ET_U64, j * 8 * (int64_t)wt)};
      ONode *sh = lw_node(L, "BitShift", 2, in, 1);
      og_attr_string(L->c, sh, "direction", "RIGHT");
      og_type_from_hlo(L->c, sh->outputs[0], ti);
      sh->outputs[0]->type.et = ET_U64;
      parts[j] = lw_unsqueeze(L, lw_cast(L, sh->outputs[0], uint_of_size(wt)), &axis, 1);
    }
    ONode *cat = lw_node(L, "Concat", (int)k, parts, 1);
    og_attr_int(L->c, cat, "axis", axis);
    og_type_from_hlo(L->c, cat->outputs[0], tr);
    r = cat->outputs[0];
    r->type.et = uint_of_size(wt);
  }
  ElemType ut = uint_of_size(wt);
  r = lw_cast(L, r, ut);
  if (et_is_float(to)) return bind(L, op, float_from_bits(L, r, ut, to));
  return bind(L, op, r);
}

/* Same-width bitcasts: integer <-> integer is a Cast (it keeps the bits);
 * float <-> integer go through the fields above; the width-changing forms
 * split or join the bits (bitcast_resize). */
int lower_bitcast_convert(Lower *L, const Op *op) {
  if (check(L, op, 1, K_INT | K_FLOAT | K_BOOL)) return -1;
  ElemType from = in_et(op, 0), to = out_et(op);
  OValue *x = lw_get(L, op->operands[0]);
  if (from == to) return bind(L, op, x);
  if (!kind_of(to) || from == ET_BOOL || to == ET_BOOL)
    return lw_unsupported(L,
                          "bitcast from %s to %s: only integer and float bitcasts are "
                          "supported",
                          et_mlir_name(from), et_mlir_name(to));
  if (et_size(from) != et_size(to)) return bitcast_resize(L, op, from, to);
  if (et_is_float(from) && et_is_float(to)) /* f16 <-> bf16 */
    return need_opset(L, 18, "BitwiseAnd")
               ? -1
               : bind(L, op, float_from_bits(L, float_to_bits(L, x, from), ET_U16, to));
  if (et_is_float(from)) return bind(L, op, float_to_bits(L, x, from));
  if (et_is_int(to)) return bind(L, op, lw_cast(L, x, to));
  if (need_opset(L, 18, "BitwiseAnd")) return -1;
  ElemType ut = unsigned_of(from);
  return bind(L, op, float_from_bits(L, lw_cast(L, x, ut), ut, to));
}

/* chlo.next_after(x, y): the float after x in the direction of y - on the
 * magnitude bits, +1 when |y| > |x| with the same sign, else -1 (which may
 * reach ±0 or ±inf, as the bits do); ±(smallest subnormal) with y's sign
 * from ±0; y when x == y (so next_after(0, -0) = -0); NaN when either is.
 * The selections are on the int64 bits and the sign, which are free of
 * onnxruntime's Where and -0.0 (see "float formulas"). */
int lower_next_after(Lower *L, const Op *op) {
  if (check(L, op, 2, K_FLOAT)) return -1;
  ElemType ft = in_et(op, 0), ct = bits_compute_type(ft);
  int m, e;
  float_layout(ft, &m, &e);
  OValue *x = lw_cast(L, lw_get(L, op->operands[0]), ct);
  OValue *y = lw_cast(L, lw_get(L, op->operands[1]), ct);
  OValue *mx = magnitude_bits(L, x, ft);
  if (ct != ft) { /* compare the values on the f16 (bf16) grid: see magnitude_bits */
    x = float_from_fields(L, mx, sign_clear(L, ct, x), ft);
    y = float_from_fields(L, magnitude_bits(L, y, ft), sign_clear(L, ct, y), ft);
  }
  OValue *xpos = sign_clear(L, ct, x), *ypos = sign_clear(L, ct, y);
  OValue *x_is_zero = op2(L, ET_BOOL, "Equal", x, k(L, ct, 0));
  OValue *equal = op2(L, ET_BOOL, "Equal", x, y);
  OValue *away =
      op2(L, ET_BOOL, "And", op2(L, ET_BOOL, "Greater", op1(L, ct, "Abs", y), op1(L, ct, "Abs", x)),
          op2(L, ET_BOOL, "Equal", xpos, ypos));
  OValue *step = where(L, ET_I64, away, kint(L, ET_I64, 1), kint(L, ET_I64, -1));
  OValue *mag = where(L, ET_I64, x_is_zero, kint(L, ET_I64, 1), op2(L, ET_I64, "Add", mx, step));
  mag = where(L, ET_I64, equal, mx, mag); /* |y| = |x| */
  OValue *nan = op2(L, ET_BOOL, "Or", op1(L, ET_BOOL, "IsNaN", x), op1(L, ET_BOOL, "IsNaN", y));
  mag = where(L, ET_I64, nan, kint(L, ET_I64, quiet_nan_bits(m, e)), mag);
  OValue *pos = where(L, ET_BOOL, op2(L, ET_BOOL, "Or", equal, x_is_zero), ypos, xpos);
  return bind(L, op, float_from_fields(L, mag, pos, ft));
}

/* XLA's reduce_precision to e exponent and m mantissa bits, on the bits of
 * the input: the mantissa rounded to m bits, to nearest even (a carry may
 * raise the exponent); then exponents above the narrow format's range give
 * ±inf and those at or below its smallest normal's minus one give ±0 - the
 * narrow format has no subnormals.  NaN stays NaN.  For the formats that are
 * ONNX types - (5, 10) f16, (8, 7) bf16, (8, 23) f32 - a Cast rounds the
 * same way (nearest even, overflow to inf) and only the flush below the
 * smallest normal 2^(1-bias) is added: magnitudes below it less half a unit
 * of the m+1-bit mantissa there become ±0. */
int lower_reduce_precision(Lower *L, const Op *op) {
  if (check(L, op, 1, K_FLOAT)) return -1;
  int64_t eb, mb;
  if (!ir_attr_int(ir_op_attr(op, "exponent_bits"), &eb) ||
      !ir_attr_int(ir_op_attr(op, "mantissa_bits"), &mb))
    return lw_unsupported(L, "exponent_bits or mantissa_bits missing");
  if (eb < 1 || mb < 0)
    return lw_bad_input(L, "exponent_bits must be at least 1 and mantissa_bits at least 0");
  ElemType et = in_et(op, 0);
  OValue *x = lw_get(L, op->operands[0]);
  int m, e;
  float_layout(et, &m, &e);
  if (eb >= e && mb >= m) return bind(L, op, x);
  ElemType nt = eb == 5 && mb == 10 ? ET_F16 : eb == 8 && mb == 7 ? ET_BF16
              : eb == 8 && mb == 23 ? ET_F32 : ET_UNDEF;
  /* onnxruntime casts f64 to f16 and bf16 through f32: rounded twice */
  bool one_rounding = et == ET_F32 ? nt == ET_F16 || nt == ET_BF16 : et == ET_F64 && nt == ET_F32;
  if (one_rounding) {
    OValue *y = lw_cast(L, lw_cast(L, x, nt), et);
    if (eb < e) {
      double bias = ldexp(1, (int)eb - 1) - 1;
      double keep_from = ldexp(1, (int)(1 - bias)) - ldexp(1, (int)(1 - bias - mb - 2));
      ElemType ct = math_type(et);
      OValue *xc = lw_cast(L, x, ct);
      OValue *keep = op2(L, ET_BOOL, "GreaterOrEqual", op1(L, ct, "Abs", xc), k(L, ct, keep_from));
      y = where(L, ct, keep, lw_cast(L, y, ct), op2(L, ct, "Mul", xc, k(L, ct, 0)));
    }
    return bind(L, op, y);
  }
  ElemType ct = bits_compute_type(et);
  OValue *xc = lw_cast(L, x, ct);
  OValue *mag = magnitude_bits(L, xc, et);
  if (mb < m) {
    int64_t unit = (int64_t)1 << (m - mb);
    OValue *ku = kint(L, ET_I64, unit);
    OValue *q = op2(L, ET_I64, "Div", mag, ku);
    OValue *odd = op2(
        L, ET_I64, "Sub", q,
        op2(L, ET_I64, "Mul", op2(L, ET_I64, "Div", q, kint(L, ET_I64, 2)), kint(L, ET_I64, 2)));
    OValue *biased =
        op2(L, ET_I64, "Add", mag, op2(L, ET_I64, "Add", odd, kint(L, ET_I64, unit / 2 - 1)));
    mag = op2(L, ET_I64, "Mul", op2(L, ET_I64, "Div", biased, ku), ku);
  }
  if (eb < e) {
    int64_t bias = ((int64_t)1 << (e - 1)) - 1, narrow_bias = ((int64_t)1 << (eb - 1)) - 1;
    OValue *field = op2(L, ET_I64, "Div", mag, kint(L, ET_I64, (int64_t)1 << m));
    OValue *over = op2(L, ET_BOOL, "Greater", field, kint(L, ET_I64, bias + narrow_bias));
    OValue *under = op2(L, ET_BOOL, "LessOrEqual", field, kint(L, ET_I64, bias - narrow_bias));
    mag = where(L, ET_I64, over, kint(L, ET_I64, inf_bits(m, e)), mag);
    mag = where(L, ET_I64, under, kint(L, ET_I64, 0), mag);
  }
  mag = where(L, ET_I64, op1(L, ET_BOOL, "IsNaN", xc), kint(L, ET_I64, quiet_nan_bits(m, e)), mag);
  return bind(L, op, float_from_fields(L, mag, sign_clear(L, ct, xc), et));
}
