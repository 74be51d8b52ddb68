/* complex.c - complex numbers, as real pairs.
 *
 * onnxruntime has no kernels for ONNX's complex types (not even Identity or
 * Cast), so a complex tensor of shape S is carried as a real tensor of shape
 * S + [2] holding (real, imaginary) pairs: f32 pairs for complex<f32>, f64
 * for complex<f64>.  It is the layout ONNX's DFT reads and writes (fft.c),
 * and the memory layout of a numpy complex array, so complex graph inputs,
 * outputs and weights need no conversion: og_type_from_hlo and the entry's
 * parameters (lower.c) give them the pair type (type_as_pairs, base.h), and
 * hlo2onnx.verify views complex arrays as real [..., 2].
 *
 * lw_block sends every op that reads or makes a complex tensor here instead
 * of to its own converter (calls, returns and control flow aside: they pass
 * the pairs along, and the ops inside come here).  By kind of op:
 *
 *   - ops that move elements without computing (transpose, reshape,
 *     broadcast_in_dim, slice, concatenate, reverse) act on the pairs: the
 *     op's own converter lowers a copy of the op whose types are the pair
 *     types, the trailing axis added to the attributes that name axes;
 *   - ops linear in their complex operands that index or pad (gather,
 *     scatter with a sum or replacing body, pad, dynamic slices, sums)
 *     lower twice, on the real and on the imaginary parts, by their own
 *     converter, and the two results are joined;
 *   - dot_general and convolution: (A + iB)(C + iD) = (AC - BD) + i(AD + BC),
 *     four real products by their converter;
 *   - arithmetic and the functions are written with the parts; the real
 *     functions they need (sin, exp, atan2, sinh, expm1, ...) are lowered by
 *     their own converters, so f64 and the corner cases are as for reals;
 *   - anything else is reported, naming the op and its complex type.
 *
 * A copy of an op lowered by another converter ("stand-in" op and values)
 * keeps the op's position, scope, attributes and regions; operands that are
 * not complex (indices, predicates) stay the op's own values, so what the
 * converters know of them (constant indices) is kept.
 */
#include "lower/complex.h"

#include <math.h>
#include <string.h>

/* ---- types and values ------------------------------------------------------ */

static bool is_complex(const Type *t) {
  return t->kind == TK_TENSOR && et_complex_part(t->et) != ET_UNDEF;
}

/* t with element type et. */
static Type with_et(const Type *t, ElemType et) {
  Type r = *t;
  r.et = et;
  return r;
}

OValue *cx_typed(Lower *L, OValue *v, ElemType et, const Type *shape) {
  og_set_type(L->c, v, et, shape->rank, shape->dims);
  return v;
}

static OValue *pairs_typed(Lower *L, OValue *v, const Type *t) {
  Type p = type_as_pairs(L->c->arena, t);
  og_set_type(L->c, v, p.et, p.rank, p.dims);
  return v;
}

/* The two parts of constant pairs, as constants; NULL parts when v is not
 * a constant (or too big to copy). */
static bool split_const(Lower *L, OValue *v, const Type *t, Cx *out) {
  const Data *d = og_const_data(v);
  ElemType et = et_complex_part(t->et);
  size_t size = et_size(et);
  int64_t n = type_numel(t);
  /* weights (parameters) stay one initializer of pairs, under their name */
  if (!d || v->is_param || n < 0 || d->nbytes != (size_t)n * 2 * size ||
      d->nbytes > ((size_t)1 << 26))
    return false;
  const uint8_t *bytes = data_bytes(L->c, d);
  if (!bytes && n) return false;
  uint8_t *re = arena_alloc(L->c->arena, (size_t)n * size + 1);
  uint8_t *im = arena_alloc(L->c->arena, (size_t)n * size + 1);
  for (int64_t i = 0; i < n; i++) {
    memcpy(re + (size_t)i * size, bytes + (size_t)(2 * i) * size, size);
    memcpy(im + (size_t)i * size, bytes + (size_t)(2 * i + 1) * size, size);
  }
  out->re = lw_const_data(L, et, t->rank, t->dims, (Data){DATA_RAW, re, (size_t)n * size});
  out->im = lw_const_data(L, et, t->rank, t->dims, (Data){DATA_RAW, im, (size_t)n * size});
  return true;
}

/* The parts pairs was joined from, when cx_join made it (Concat of two
 * Unsqueezes on the pair axis): chains of complex ops then pass parts from
 * one op to the next, and the join nobody else reads is dead code. */
static bool joined_parts(OValue *pairs, int64_t axis, Cx *out) {
  ONode *n = pairs->producer;
  const OAttr *a = n ? og_get_attr(n, "axis") : NULL;
  if (!og_is(n, ONNX_Concat) || n->n_inputs != 2 || !a || a->i != axis) return false;
  OValue *part[2];
  for (int k = 0; k < 2; k++) {
    ONode *u = n->inputs[k]->producer;
    const Data *d = og_is(u, ONNX_Unsqueeze) && u->n_inputs == 2 ? og_const_data(u->inputs[1]) : NULL;
    if (!d || d->kind != DATA_RAW || d->nbytes != sizeof(int64_t) ||
        *(const int64_t *)d->ptr != axis)
      return false;
    part[k] = u->inputs[0];
  }
  out->re = part[0];
  out->im = part[1];
  return true;
}

Cx cx_split(Lower *L, OValue *pairs, const Type *t) {
  Cx z;
  if (split_const(L, pairs, t, &z) || joined_parts(pairs, t->rank, &z)) return z;
  ElemType et = et_complex_part(t->et);
  OValue *part[2];
  for (int k = 0; k < 2; k++) {
    ONode *n = lw_node(L, "Gather", 2, (OValue *[]){pairs, lw_const_scalar(L, ET_I64, k)}, 1);
    og_attr_int(L->c, n, "axis", t->rank);
    part[k] = cx_typed(L, n->outputs[0], et, t);
  }
  z.re = part[0];
  z.im = part[1];
  return z;
}

OValue *cx_join(Lower *L, Cx z, const Type *t) {
  int64_t axis = t->rank;
  OValue *in[2] = {lw_unsqueeze(L, z.re, &axis, 1), lw_unsqueeze(L, z.im, &axis, 1)};
  ONode *n = lw_node(L, "Concat", 2, in, 1);
  og_attr_int(L->c, n, "axis", axis);
  return pairs_typed(L, n->outputs[0], t);
}

OValue *cx_zeros_like(Lower *L, OValue *x, const Type *shape) {
  ElemType et = x->type.et;
  if (type_is_static(shape)) {
    int64_t n = type_numel(shape);
    if (n >= 0 && n <= 4096) {
      size_t bytes = (size_t)n * et_size(et);
      return lw_const_data(L, et, shape->rank, shape->dims,
                           (Data){DATA_RAW, arena_alloc(L->c->arena, bytes + 1), bytes});
    }
  }
  OValue *dims = lw_op1(L, "Shape", x);
  return cx_typed(L, lw_op2(L, "Expand", lw_const_scalar(L, et, 0), dims), et, shape);
}

/* A Value standing for `lowered`, of type t, read by a copy of an op. */
static Value *stand_in(Lower *L, const Value *like, Type t, OValue *lowered) {
  Value *v = arena_alloc(L->c->arena, sizeof *v);
  v->type = t;
  v->name = like ? like->name : "%complex_part";
  v->index = like ? like->index : 0;
  v->n_uses = 1;
  v->lowered = lowered;
  return v;
}

/* Lowers a copy of op as an op of `kind` by that kind's converter, with
 * these operands and result types; with `keep`, op's attributes (attrs
 * when not NULL) and regions, else none.  Returns the results' values, or
 * NULL after the converter reported an error. */
static OValue **lower_as(Lower *L, const Op *op, OpKind kind, Value **operands, int n_operands,
                         const Type *result_types, int n_results, bool keep,
                         NamedAttr *attrs, int n_attrs) {
  Arena *a = L->c->arena;
  Op *copy = arena_alloc(a, sizeof *copy);
  *copy = *op;
  copy->kind = kind;
  copy->opname = op_table[kind].name;
  copy->operands = operands;
  copy->n_operands = n_operands;
  copy->results = arena_alloc(a, sizeof(Value *) * (size_t)(n_results + 1));
  copy->n_results = n_results;
  for (int i = 0; i < n_results; i++) {
    copy->results[i] = stand_in(L, i < op->n_results ? op->results[i] : NULL, result_types[i],
                                NULL);
    copy->results[i]->def = copy;
    copy->results[i]->index = i;
  }
  if (!keep) {
    copy->attrs = NULL;
    copy->n_attrs = 0;
    copy->regions = NULL;
    copy->n_regions = 0;
  } else if (attrs) {
    copy->attrs = attrs;
    copy->n_attrs = n_attrs;
  }
  const Op *saved = L->op;
  L->op = copy;
  LowerFn fn = lw_converters[kind];
  int rc = fn ? fn(L, copy) : lower_unsupported_op(L, copy);
  L->op = saved;
  if (rc != 0) return NULL;
  OValue **out = arena_alloc(a, sizeof(OValue *) * (size_t)(n_results + 1));
  for (int i = 0; i < n_results; i++) {
    out[i] = copy->results[i]->lowered;
    if (!out[i] || out[i]->poisoned) return NULL;
  }
  return out;
}

/* ---- arithmetic on parts ----------------------------------------------------- *
 * E: the op being lowered, the real type of the parts and their shape. */
typedef struct E {
  Lower *L;
  const Op *op;
  ElemType et;
  const Type *shape;
  bool failed; /* a real converter reported an error */
} E;

static OValue *typed(E *e, OValue *v) { return cx_typed(e->L, v, e->et, e->shape); }
static OValue *k(E *e, double v) { return lw_const_scalar(e->L, e->et, v); }
static OValue *add(E *e, OValue *a, OValue *b) { return typed(e, lw_op2(e->L, "Add", a, b)); }
static OValue *sub(E *e, OValue *a, OValue *b) { return typed(e, lw_op2(e->L, "Sub", a, b)); }
static OValue *mul(E *e, OValue *a, OValue *b) { return typed(e, lw_op2(e->L, "Mul", a, b)); }
static OValue *dvd(E *e, OValue *a, OValue *b) { return typed(e, lw_op2(e->L, "Div", a, b)); }
static OValue *neg(E *e, OValue *a) { return typed(e, lw_op1(e->L, "Neg", a)); }

static OValue *cmp(E *e, const char *onnx, OValue *a, OValue *b) {
  return cx_typed(e->L, lw_op2(e->L, onnx, a, b), ET_BOOL, e->shape);
}

static OValue *where(E *e, OValue *c, OValue *a, OValue *b) {
  return typed(e, lw_op3(e->L, "Where", c, a, b));
}

/* A real function by its own converter: sin, exp, atan2, ... */
static OValue *fn(E *e, OpKind kind, int n, OValue *a, OValue *b) {
  Type t = with_et(e->shape, e->et);
  t.kind = TK_TENSOR;
  Value *in[2] = {stand_in(e->L, NULL, t, a), stand_in(e->L, NULL, t, b)};
  OValue **r = lower_as(e->L, e->op, kind, in, n, &t, 1, false, NULL, 0);
  if (!r) {
    e->failed = true;
    OValue *p = og_value(e->L->c, e->L->g, "poison");
    p->poisoned = true;
    return p;
  }
  return typed(e, r[0]);
}
static OValue *fn1(E *e, OpKind kind, OValue *a) { return fn(e, kind, 1, a, NULL); }

static Cx z_mul(E *e, Cx z, Cx w) {
  return (Cx){sub(e, mul(e, z.re, w.re), mul(e, z.im, w.im)),
              add(e, mul(e, z.re, w.im), mul(e, z.im, w.re))};
}

/* z / w by Smith's method: divides by the larger part of w first, so that
 * |w|^2 never overflows or underflows where the quotient is representable. */
static Cx z_div(E *e, Cx z, Cx w) {
  OValue *ac = fn1(e, OP_ABS, w.re), *ad = fn1(e, OP_ABS, w.im);
  OValue *re_big = cmp(e, "GreaterOrEqual", ac, ad);
  /* |c| >= |d|: r = d/c, t = c + d*r; x = (a + b*r)/t, y = (b - a*r)/t */
  OValue *r1 = dvd(e, w.im, w.re), *t1 = add(e, w.re, mul(e, w.im, r1));
  OValue *x1 = dvd(e, add(e, z.re, mul(e, z.im, r1)), t1);
  OValue *y1 = dvd(e, sub(e, z.im, mul(e, z.re, r1)), t1);
  /* else: r = c/d, t = c*r + d; x = (a*r + b)/t, y = (b*r - a)/t */
  OValue *r2 = dvd(e, w.re, w.im), *t2 = add(e, mul(e, w.re, r2), w.im);
  OValue *x2 = dvd(e, add(e, mul(e, z.re, r2), z.im), t2);
  OValue *y2 = dvd(e, sub(e, mul(e, z.im, r2), z.re), t2);
  return (Cx){where(e, re_big, x1, x2), where(e, re_big, y1, y2)};
}

/* |z| as hypot: m * sqrt(1 + (s/m)^2) with m, s the larger and smaller of
 * |re|, |im|, so that squares do not overflow; 0 at 0 and inf at inf. */
static OValue *z_abs(E *e, Cx z) {
  OValue *ar = fn1(e, OP_ABS, z.re), *ai = fn1(e, OP_ABS, z.im);
  OValue *m = typed(e, lw_op2(e->L, "Max", ar, ai)), *s = typed(e, lw_op2(e->L, "Min", ar, ai));
  OValue *q = dvd(e, s, m);
  q = where(e, cmp(e, "Equal", m, k(e, 0)), k(e, 0), q);
  OValue *h = mul(e, m, fn1(e, OP_SQRT, add(e, k(e, 1), mul(e, q, q))));
  OValue *inf = cx_typed(e->L, lw_op1(e->L, "IsInf", m), ET_BOOL, e->shape);
  return where(e, inf, m, h);
}

static Cx z_exp(E *e, Cx z) {
  OValue *ea = fn1(e, OP_EXPONENTIAL, z.re);
  return (Cx){mul(e, ea, fn1(e, OP_COSINE, z.im)), mul(e, ea, fn1(e, OP_SINE, z.im))};
}

static Cx z_log(E *e, Cx z) {
  return (Cx){fn1(e, OP_LOG, z_abs(e, z)), fn(e, OP_ATAN2, 2, z.im, z.re)};
}

/* The principal square root without cancellation: t = sqrt((|z| + |a|)/2);
 * a >= 0: (t, b/(2t)); a < 0: (|b|/(2t), t with b's sign).  0 at 0. */
static Cx z_sqrt(E *e, Cx z) {
  OValue *aa = fn1(e, OP_ABS, z.re);
  OValue *t = fn1(e, OP_SQRT, mul(e, add(e, z_abs(e, z), aa), k(e, 0.5)));
  OValue *zero = cmp(e, "Equal", t, k(e, 0));
  OValue *other = dvd(e, z.im, mul(e, t, k(e, 2)));
  other = where(e, zero, k(e, 0), other);
  OValue *pos = cmp(e, "GreaterOrEqual", z.re, k(e, 0));
  OValue *neg_b = cmp(e, "Less", z.im, k(e, 0));
  OValue *signed_t = where(e, neg_b, neg(e, t), t);
  return (Cx){where(e, pos, t, fn1(e, OP_ABS, other)), where(e, pos, other, signed_t)};
}

/* cosh and sinh of a real part by their converters */
static OValue *rcosh(E *e, OValue *x) { return fn1(e, OP_CHLO_COSH, x); }
static OValue *rsinh(E *e, OValue *x) { return fn1(e, OP_CHLO_SINH, x); }

/* tanh(z) = (sinh a cosh a + i sin b cos b) / (sinh^2 a + cos^2 b): the
 * usual denominator cosh 2a + cos 2b cancels near the poles, this one does
 * not.  For |a| > 20, where sinh^2 a may overflow, tanh z is sign(a) to
 * within e^-40.  tan(z) = -i tanh(iz): the same with the parts swapped. */
static Cx z_tanh(E *e, OValue *a, OValue *b) {
  OValue *sa = rsinh(e, a), *ca = rcosh(e, a);
  OValue *sb = fn1(e, OP_SINE, b), *cb = fn1(e, OP_COSINE, b);
  OValue *den = add(e, mul(e, sa, sa), mul(e, cb, cb));
  Cx r = {dvd(e, mul(e, sa, ca), den), dvd(e, mul(e, sb, cb), den)};
  OValue *big = cmp(e, "Greater", fn1(e, OP_ABS, a), k(e, 20));
  r.re = where(e, big, fn1(e, OP_SIGN, a), r.re);
  r.im = where(e, big, k(e, 0), r.im);
  return r;
}

/* The inverse functions, from log and sqrt (Kahan's principal branches).
 * asinh(z) = log(z + sqrt(z^2 + 1)) is computed for the z with Re z >= 0,
 * where the sum cannot cancel, and by asinh(-z) = -asinh(z) for the others;
 * asin(z) = -i asinh(iz), acos(z) = pi/2 - asin(z); atanh(z) =
 * (log(1 + z) - log(1 - z)) / 2, atan(z) = -i atanh(iz); acosh(z) =
 * log(z + sqrt(z + 1) sqrt(z - 1)). */
static Cx z_add(E *e, Cx z, Cx w) { return (Cx){add(e, z.re, w.re), add(e, z.im, w.im)}; }
static Cx z_sub(E *e, Cx z, Cx w) { return (Cx){sub(e, z.re, w.re), sub(e, z.im, w.im)}; }
static Cx z_times_i(E *e, Cx z) { return (Cx){neg(e, z.im), z.re}; }
static Cx z_times_minus_i(E *e, Cx z) { return (Cx){z.im, neg(e, z.re)}; }

static Cx z_asinh(E *e, Cx z) {
  OValue *flip = cmp(e, "Less", z.re, k(e, 0));
  Cx p = {where(e, flip, neg(e, z.re), z.re), where(e, flip, neg(e, z.im), z.im)};
  Cx one = {k(e, 1), k(e, 0)};
  Cx r = z_log(e, z_add(e, p, z_sqrt(e, z_add(e, z_mul(e, p, p), one))));
  return (Cx){where(e, flip, neg(e, r.re), r.re), where(e, flip, neg(e, r.im), r.im)};
}

static Cx z_atanh(E *e, Cx z) {
  Cx one = {k(e, 1), k(e, 0)};
  Cx d = z_sub(e, z_log(e, z_add(e, one, z)), z_log(e, z_sub(e, one, z)));
  return (Cx){mul(e, d.re, k(e, 0.5)), mul(e, d.im, k(e, 0.5))};
}

/* The elementwise ops of one or two complex operands with a complex result. */
static int lower_math(Lower *L, const Op *op) {
  const Type *t = &op->results[0]->type;
  E e = {L, op, et_complex_part(t->et), t, false};
  int n = op->n_operands;
  if (n < 1 || n > 2) return lw_bad_input(L, "expects one or two operands");
  for (int i = 0; i < n; i++)
    if (!is_complex(&op->operands[i]->type))
      return lw_unsupported(L, "operand %d is not complex, the result is", i);
  OValue *pa = lw_get(L, op->operands[0]), *pb = n > 1 ? lw_get(L, op->operands[1]) : NULL;
  /* on the pairs themselves */
  switch (op->kind) {
  case OP_ADD: case OP_SUBTRACT:
    if (n != 2) break;
    lw_bind(L, op->results[0],
            pairs_typed(L, lw_op2(L, op->kind == OP_ADD ? "Add" : "Sub", pa, pb), t));
    return 0;
  case OP_NEGATE:
    lw_bind(L, op->results[0], pairs_typed(L, lw_op1(L, "Neg", pa), t));
    return 0;
  default:
    break;
  }
  Cx z = cx_split(L, pa, &op->operands[0]->type), w = {NULL, NULL}, r;
  if (n > 1) w = cx_split(L, pb, &op->operands[1]->type);
  switch (op->kind) {
  case OP_MULTIPLY: if (n != 2) goto arity; r = z_mul(&e, z, w); break;
  case OP_DIVIDE: if (n != 2) goto arity; r = z_div(&e, z, w); break;
  case OP_EXPONENTIAL: r = z_exp(&e, z); break;
  case OP_LOG: r = z_log(&e, z); break;
  case OP_SQRT: r = z_sqrt(&e, z); break;
  case OP_RSQRT: r = z_div(&e, (Cx){k(&e, 1), k(&e, 0)}, z_sqrt(&e, z)); break;
  case OP_POWER: {
    if (n != 2) goto arity;
    /* z^w = exp(w log z); 0^w is 0 (1 when w = 0), as XLA's pow gives for
     * the w with a positive real part it defines */
    r = z_exp(&e, z_mul(&e, w, z_log(&e, z)));
    OValue *z0 = typed(&e, lw_op2(L, "And", cmp(&e, "Equal", z.re, k(&e, 0)),
                                   cmp(&e, "Equal", z.im, k(&e, 0))));
    z0 = cx_typed(L, z0, ET_BOOL, t);
    OValue *w0 = cx_typed(L, lw_op2(L, "And", cmp(&e, "Equal", w.re, k(&e, 0)),
                                    cmp(&e, "Equal", w.im, k(&e, 0))), ET_BOOL, t);
    r.re = where(&e, z0, where(&e, w0, k(&e, 1), k(&e, 0)), r.re);
    r.im = where(&e, z0, k(&e, 0), r.im);
    break;
  }
  case OP_SINE: /* sin a cosh b + i cos a sinh b */
    r = (Cx){mul(&e, fn1(&e, OP_SINE, z.re), rcosh(&e, z.im)),
             mul(&e, fn1(&e, OP_COSINE, z.re), rsinh(&e, z.im))};
    break;
  case OP_COSINE: /* cos a cosh b - i sin a sinh b */
    r = (Cx){mul(&e, fn1(&e, OP_COSINE, z.re), rcosh(&e, z.im)),
             neg(&e, mul(&e, fn1(&e, OP_SINE, z.re), rsinh(&e, z.im)))};
    break;
  case OP_TAN: case OP_CHLO_TAN: { /* tan z = -i tanh(i z), i z = (-b, a) */
    Cx th = z_tanh(&e, neg(&e, z.im), z.re);
    r = (Cx){th.im, neg(&e, th.re)};
    break;
  }
  case OP_TANH: r = z_tanh(&e, z.re, z.im); break;
  case OP_CHLO_SINH: /* sinh a cos b + i cosh a sin b */
    r = (Cx){mul(&e, rsinh(&e, z.re), fn1(&e, OP_COSINE, z.im)),
             mul(&e, rcosh(&e, z.re), fn1(&e, OP_SINE, z.im))};
    break;
  case OP_CHLO_COSH: /* cosh a cos b + i sinh a sin b */
    r = (Cx){mul(&e, rcosh(&e, z.re), fn1(&e, OP_COSINE, z.im)),
             mul(&e, rsinh(&e, z.re), fn1(&e, OP_SINE, z.im))};
    break;
  case OP_EXPM1: {
    /* e^a cos b - 1 = expm1(a) cos b - 2 sin^2(b/2), exact near 0 */
    OValue *cb = fn1(&e, OP_COSINE, z.im), *sh = fn1(&e, OP_SINE, mul(&e, z.im, k(&e, 0.5)));
    r = (Cx){sub(&e, mul(&e, fn1(&e, OP_EXPM1, z.re), cb), mul(&e, k(&e, 2), mul(&e, sh, sh))),
             mul(&e, fn1(&e, OP_EXPONENTIAL, z.re), fn1(&e, OP_SINE, z.im))};
    break;
  }
  case OP_LOG1P: {
    /* log|1 + z| = log1p(a (2 + a) + b^2) / 2, exact near 0; arg = atan2(b, 1 + a) */
    OValue *s = add(&e, mul(&e, z.re, add(&e, k(&e, 2), z.re)), mul(&e, z.im, z.im));
    r = (Cx){mul(&e, fn1(&e, OP_LOG1P, s), k(&e, 0.5)),
             fn(&e, OP_ATAN2, 2, z.im, add(&e, k(&e, 1), z.re))};
    break;
  }
  case OP_SIGN: {
    /* z / |z|, and 0 at 0 */
    OValue *m = z_abs(&e, z);
    OValue *z0 = cmp(&e, "Equal", m, k(&e, 0));
    r = (Cx){where(&e, z0, k(&e, 0), dvd(&e, z.re, m)), where(&e, z0, k(&e, 0), dvd(&e, z.im, m))};
    break;
  }
  case OP_CHLO_SQUARE: r = z_mul(&e, z, z); break;
  case OP_CHLO_ASINH: r = z_asinh(&e, z); break;
  case OP_CHLO_ASIN: r = z_times_minus_i(&e, z_asinh(&e, z_times_i(&e, z))); break;
  case OP_CHLO_ACOS: {
    Cx as = z_times_minus_i(&e, z_asinh(&e, z_times_i(&e, z)));
    r = (Cx){sub(&e, k(&e, 1.57079632679489661923), as.re), neg(&e, as.im)};
    break;
  }
  case OP_CHLO_ATANH: r = z_atanh(&e, z); break;
  case OP_CHLO_ATAN: r = z_times_minus_i(&e, z_atanh(&e, z_times_i(&e, z))); break;
  case OP_CHLO_ACOSH: {
    Cx one = {k(&e, 1), k(&e, 0)};
    Cx s = z_mul(&e, z_sqrt(&e, z_add(&e, z, one)), z_sqrt(&e, z_sub(&e, z, one)));
    r = z_log(&e, z_add(&e, z, s));
    break;
  }
  default:
    return lw_unsupported(L, "%s of complex tensors is not supported", op->opname);
  }
  if (e.failed) return -1;
  lw_bind(L, op->results[0], cx_join(L, r, t));
  return 0;
arity:
  return lw_bad_input(L, "wrong number of operands");
}

/* abs: |z|, a real result */
static int lower_cabs(Lower *L, const Op *op) {
  const Type *t = &op->operands[0]->type;
  E e = {L, op, et_complex_part(t->et), t, false};
  OValue *m = z_abs(&e, cx_split(L, lw_get(L, op->operands[0]), t));
  if (e.failed) return -1;
  lw_bind(L, op->results[0], m);
  return 0;
}

/* compare EQ / NE: both parts equal (NaN parts are unequal, as for reals). */
static int lower_ccompare(Lower *L, const Op *op) {
  const Attr *dir = ir_op_attr(op, "comparison_direction");
  const char *d = dir && dir->s ? dir->s : "";
  bool eq = strcmp(d, "EQ") == 0;
  if (!eq && strcmp(d, "NE") != 0)
    return lw_unsupported(L, "comparison %s of complex numbers (only EQ and NE are defined)", d);
  const Type *t = &op->operands[0]->type;
  E e = {L, op, et_complex_part(t->et), t, false};
  Cx z = cx_split(L, lw_get(L, op->operands[0]), t);
  Cx w = cx_split(L, lw_get(L, op->operands[1]), &op->operands[1]->type);
  OValue *r = cx_typed(L, lw_op2(L, "And", cmp(&e, "Equal", z.re, w.re), cmp(&e, "Equal", z.im, w.im)),
                       ET_BOOL, t);
  if (!eq) r = cx_typed(L, lw_op1(L, "Not", r), ET_BOOL, t);
  lw_bind(L, op->results[0], r);
  return 0;
}

/* ---- complex, real, imag, convert, constant ------------------------------ */

/* The real part type's value of a real operand x (HLO value v) converted to
 * et by the convert converter (saturation, NaN and bool rules included). */
static OValue *convert_real(Lower *L, const Op *op, const Value *v, OValue *x, ElemType et,
                            bool *failed) {
  if (v->type.et == et) return x;
  Value *in = stand_in(L, v, v->type, x);
  Type rt = with_et(&v->type, et);
  OValue **r = lower_as(L, op, OP_CONVERT, &in, 1, &rt, 1, false, NULL, 0);
  if (!r) *failed = true;
  return r ? r[0] : x;
}

static int lower_parts_op(Lower *L, const Op *op) {
  if (op->n_results != 1 || op->n_operands != (op->kind == OP_COMPLEX ? 2 : 1))
    return lw_bad_input(L, "wrong number of operands or results");
  const Type *rt = &op->results[0]->type, *t0 = &op->operands[0]->type;
  if (op->kind == OP_COMPLEX) {
    if (!is_complex(rt)) return lw_bad_input(L, "the result is not complex");
    ElemType et = et_complex_part(rt->et);
    bool failed = false;
    Cx z = {convert_real(L, op, op->operands[0], lw_get(L, op->operands[0]), et, &failed),
            convert_real(L, op, op->operands[1], lw_get(L, op->operands[1]), et, &failed)};
    if (failed) return -1;
    lw_bind(L, op->results[0], cx_join(L, z, rt));
    return 0;
  }
  OValue *x = lw_get(L, op->operands[0]);
  if (!is_complex(t0)) { /* real and imag of a real tensor: itself and zeros */
    lw_bind(L, op->results[0], op->kind == OP_REAL ? x : cx_zeros_like(L, x, t0));
    return 0;
  }
  Cx z = cx_split(L, x, t0);
  lw_bind(L, op->results[0], op->kind == OP_REAL ? z.re : z.im);
  return 0;
}

/* convert: complex -> complex casts the pairs; real -> complex adds a zero
 * imaginary part; complex -> real keeps the real part (as XLA does), then
 * converts it as a real. */
static int lower_cconvert(Lower *L, const Op *op) {
  if (op->n_operands != 1 || op->n_results != 1) return lw_bad_input(L, "expects one operand");
  const Value *v = op->operands[0];
  const Type *ti = &v->type, *to = &op->results[0]->type;
  OValue *x = lw_get(L, v);
  bool failed = false;
  if (is_complex(ti) && is_complex(to)) {
    ElemType et = et_complex_part(to->et);
    lw_bind(L, op->results[0], pairs_typed(L, lw_cast(L, x, et), to));
    return 0;
  }
  if (is_complex(to)) {
    OValue *re = convert_real(L, op, v, x, et_complex_part(to->et), &failed);
    if (failed) return -1;
    Type rt = with_et(to, et_complex_part(to->et));
    lw_bind(L, op->results[0], cx_join(L, (Cx){re, cx_zeros_like(L, re, &rt)}, to));
    return 0;
  }
  Cx z = cx_split(L, x, ti);
  Value *re = stand_in(L, v, with_et(ti, et_complex_part(ti->et)), z.re);
  OValue *r = convert_real(L, op, re, z.re, to->et, &failed);
  if (failed) return -1;
  lw_bind(L, op->results[0], r);
  return 0;
}

/* A complex constant: its bytes are the pairs already; a splat is
 * repeated (small) or expanded from one pair. */
static int lower_cconstant(Lower *L, const Op *op) {
  const Attr *a = ir_op_attr(op, "value");
  if (op->n_results != 1 || !a || a->kind != AK_DENSE || !a->dense)
    return lw_bad_input(L, "expects a dense 'value' attribute and one result");
  const Type *t = &op->results[0]->type;
  if (!type_is_static(t)) return lw_bad_input(L, "a constant needs a static type");
  const Dense *d = a->dense;
  Type p = type_as_pairs(L->c->arena, t);
  int64_t n = type_numel(t);
  size_t pair = 2 * et_size(p.et);
  if (n < 0) return lw_bad_input(L, "a constant of too many elements");
  if (!d->splat || n == 1) {
    if (d->data.nbytes != (size_t)n * pair) return lw_bad_input(L, "constant data does not match its type");
    lw_bind(L, op->results[0], lw_const_data(L, p.et, p.rank, p.dims, d->data));
    return 0;
  }
  if (d->data.nbytes != pair) return lw_bad_input(L, "splat constant with malformed data");
  const uint8_t *one = data_bytes(L->c, &d->data);
  if ((size_t)n * pair <= 65536) {
    uint8_t *buf = arena_alloc(L->c->arena, (size_t)n * pair + 1);
    for (int64_t i = 0; i < n; i++) memcpy(buf + (size_t)i * pair, one, pair);
    lw_bind(L, op->results[0],
            lw_const_data(L, p.et, p.rank, p.dims, (Data){DATA_RAW, buf, (size_t)n * pair}));
    return 0;
  }
  int64_t two = 2;
  OValue *v = lw_const_data(L, p.et, 1, &two, (Data){DATA_RAW, one, pair});
  v = lw_op2(L, "Expand", v, lw_const_i64s(L, p.rank, p.dims));
  lw_bind(L, op->results[0], pairs_typed(L, v, t));
  return 0;
}

/* ---- ops that move elements: on the pairs ----------------------------------- */

/* An integer list attribute of n entries. */
static Attr *ints_attr(Lower *L, const int64_t *vals, int n) {
  Attr *a = arena_alloc(L->c->arena, sizeof *a);
  a->kind = AK_ARRAY;
  a->n_elems = n;
  a->elems = arena_alloc(L->c->arena, sizeof(Attr *) * (size_t)(n + 1));
  for (int i = 0; i < n; i++) {
    Attr *e = arena_alloc(L->c->arena, sizeof *e);
    e->kind = AK_INT;
    e->i = vals[i];
    a->elems[i] = e;
  }
  return a;
}

/* op's attributes, with the integer lists named in names[] extended by
 * one entry each: extra[] (or, when extra is NULL, the rank of the
 * operand, i.e. the pair axis). */
static NamedAttr *attrs_plus(Lower *L, const Op *op, const char *const *names, const int64_t *extra,
                             int n_names, bool *ok) {
  NamedAttr *out = arena_alloc(L->c->arena, sizeof(NamedAttr) * (size_t)(op->n_attrs + 1));
  *ok = true;
  for (int i = 0; i < op->n_attrs; i++) {
    out[i] = op->attrs[i];
    for (int j = 0; j < n_names; j++) {
      if (strcmp(op->attrs[i].name, names[j]) != 0) continue;
      int64_t *vals;
      int n = ir_attr_i64s(L->c, op->attrs[i].value, &vals);
      if (n < 0 || n >= MAX_RANK) {
        *ok = false;
        continue;
      }
      int64_t *more = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(n + 1));
      memcpy(more, vals, sizeof(int64_t) * (size_t)n);
      more[n] = extra[j];
      out[i].value = ints_attr(L, more, n + 1);
    }
  }
  return out;
}

/* Lowers op by its own converter on the pairs: operands and results of
 * pair types, the attributes in names[] extended by extra[]. */
static int lower_on_pairs(Lower *L, const Op *op, const char *const *names, const int64_t *extra,
                          int n_names) {
  Arena *a = L->c->arena;
  Value **in = arena_alloc(a, sizeof(Value *) * (size_t)(op->n_operands + 1));
  Type *rt = arena_alloc(a, sizeof(Type) * (size_t)(op->n_results + 1));
  for (int i = 0; i < op->n_operands; i++) {
    const Value *v = op->operands[i];
    if (!is_complex(&v->type)) return lw_unsupported(L, "operand %d is not complex", i);
    in[i] = stand_in(L, v, type_as_pairs(a, &v->type), lw_get(L, v));
  }
  for (int i = 0; i < op->n_results; i++) {
    if (!is_complex(&op->results[i]->type)) return lw_unsupported(L, "result %d is not complex", i);
    rt[i] = type_as_pairs(a, &op->results[i]->type);
  }
  bool ok;
  NamedAttr *attrs = attrs_plus(L, op, names, extra, n_names, &ok);
  if (!ok) return lw_bad_input(L, "an axis list attribute is not a list of integers");
  OValue **r = lower_as(L, op, op->kind, in, op->n_operands, rt, op->n_results, true, attrs,
                        op->n_attrs);
  if (!r) return -1;
  for (int i = 0; i < op->n_results; i++) lw_bind(L, op->results[i], r[i]);
  return 0;
}

/* select(pred, a, b): Where with the predicate over the pairs. */
static int lower_cselect(Lower *L, const Op *op) {
  if (op->n_operands != 3 || op->n_results != 1) return lw_bad_input(L, "expects 3 operands");
  const Type *pt = &op->operands[0]->type, *t = &op->results[0]->type;
  if (pt->et != ET_BOOL) return lw_unsupported(L, "the predicate is not i1");
  OValue *pred = lw_get(L, op->operands[0]);
  if (pt->rank > 0) {
    int64_t axis = pt->rank;
    pred = lw_unsqueeze(L, pred, &axis, 1);
  }
  OValue *r = lw_op3(L, "Where", pred, lw_get(L, op->operands[1]), lw_get(L, op->operands[2]));
  lw_bind(L, op->results[0], pairs_typed(L, r, t));
  return 0;
}

/* ---- linear ops: twice, on each part ---------------------------------------- */

/* The body of a reduce, reduce_window or scatter, when it is a sum of the
 * two halves of its arguments (or, for scatter, returns the update). */
static bool linear_body(const Op *op) {
  if (op->n_regions != 1 || op->regions[0]->n_blocks != 1) return false;
  const Block *b = op->regions[0]->blocks[0];
  if (b->n_ops < 1 || b->n_args != 2) return false;
  const Op *ret = b->ops[b->n_ops - 1];
  if (ret->n_operands != 1) return false;
  const Value *v = ret->operands[0];
  if (op->kind == OP_SCATTER && v == b->args[1] && b->n_ops == 1) return true;
  const Op *d = v->def;
  return b->n_ops == 2 && d && d->kind == OP_ADD && d->n_operands == 2 &&
         ((d->operands[0] == b->args[0] && d->operands[1] == b->args[1]) ||
          (d->operands[0] == b->args[1] && d->operands[1] == b->args[0]));
}

/* Lowers op by its own converter on the real parts, then on the imaginary
 * parts, of its complex operands (other operands are shared), and joins
 * each complex result. */
static int lower_per_part(Lower *L, const Op *op) {
  Arena *a = L->c->arena;
  int n = op->n_operands, m = op->n_results;
  Cx *parts = arena_alloc(a, sizeof(Cx) * (size_t)(n + 1));
  Type *rt = arena_alloc(a, sizeof(Type) * (size_t)(m + 1));
  for (int i = 0; i < n; i++)
    if (is_complex(&op->operands[i]->type))
      parts[i] = cx_split(L, lw_get(L, op->operands[i]), &op->operands[i]->type);
  for (int i = 0; i < m; i++) {
    const Type *t = &op->results[i]->type;
    if (!is_complex(t)) return lw_unsupported(L, "result %d is not complex", i);
    rt[i] = with_et(t, et_complex_part(t->et));
  }
  OValue **res[2];
  for (int p = 0; p < 2; p++) {
    Value **in = arena_alloc(a, sizeof(Value *) * (size_t)(n + 1));
    for (int i = 0; i < n; i++) {
      Value *v = op->operands[i];
      if (!is_complex(&v->type)) {
        in[i] = v;
        continue;
      }
      in[i] = stand_in(L, v, with_et(&v->type, et_complex_part(v->type.et)),
                       p == 0 ? parts[i].re : parts[i].im);
    }
    res[p] = lower_as(L, op, op->kind, in, n, rt, m, true, NULL, 0);
    if (!res[p]) return -1;
  }
  for (int i = 0; i < m; i++)
    lw_bind(L, op->results[i], cx_join(L, (Cx){res[0][i], res[1][i]}, &op->results[i]->type));
  return 0;
}

/* ---- products: dot_general, convolution ------------------------------------ */

/* (A + iB)(C + iD) = (AC - BD) + i(AD + BC), each product by the op's own
 * converter; a real operand has no imaginary products. */
static int lower_bilinear(Lower *L, const Op *op) {
  if (op->n_operands != 2 || op->n_results != 1) return lw_unsupported(L, "expects two operands");
  const Type *t = &op->results[0]->type;
  if (!is_complex(t)) return lw_unsupported(L, "a real result of complex operands");
  ElemType et = et_complex_part(t->et);
  Type rt = with_et(t, et);
  Cx x[2];
  for (int i = 0; i < 2; i++) {
    const Value *v = op->operands[i];
    OValue *ov = lw_get(L, v);
    if (is_complex(&v->type)) {
      x[i] = cx_split(L, ov, &v->type);
    } else {
      x[i].re = lw_cast(L, ov, et);
      x[i].im = NULL;
    }
  }
  Type lt = with_et(&op->operands[0]->type, et), rht = with_et(&op->operands[1]->type, et);
  OValue *prod[2][2] = {{NULL, NULL}, {NULL, NULL}}; /* [lhs part][rhs part] */
  for (int p = 0; p < 2; p++)
    for (int q = 0; q < 2; q++) {
      OValue *l = p ? x[0].im : x[0].re, *r = q ? x[1].im : x[1].re;
      if (!l || !r) continue;
      Value *in[2] = {stand_in(L, op->operands[0], lt, l), stand_in(L, op->operands[1], rht, r)};
      OValue **o = lower_as(L, op, op->kind, in, 2, &rt, 1, true, NULL, 0);
      if (!o) return -1;
      prod[p][q] = cx_typed(L, o[0], et, t);
    }
  E e = {L, op, et, t, false};
  OValue *re = prod[0][0], *im = NULL;
  if (prod[1][1]) re = sub(&e, re, prod[1][1]);
  if (prod[0][1]) im = prod[0][1];
  if (prod[1][0]) im = im ? add(&e, im, prod[1][0]) : prod[1][0];
  if (!im) im = cx_zeros_like(L, re, t);
  lw_bind(L, op->results[0], cx_join(L, (Cx){re, im}, t));
  return 0;
}

/* ---- reduce with multiply: a tree of complex products ---------------------- */

/* The kept axes of a product (type kept) and one more of len elements. */
static Type with_line(Lower *L, const Type *kept, int64_t len) {
  Type t = *kept;
  int64_t *dims = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(kept->rank + 1));
  memcpy(dims, kept->dims, sizeof(int64_t) * (size_t)kept->rank);
  dims[kept->rank] = len;
  t.rank = kept->rank + 1;
  t.dims = dims;
  return t;
}

/* Elements [from, to) along the last axis of both parts of z (type t). */
static Cx slice_last(Lower *L, Cx z, int64_t from, int64_t to, const Type *t) {
  int64_t axis = t->rank - 1;
  OValue *part[2] = {z.re, z.im};
  for (int q = 0; q < 2; q++) {
    OValue *in[4] = {part[q], lw_const_i64s(L, 1, &from), lw_const_i64s(L, 1, &to),
                     lw_const_i64s(L, 1, &axis)};
    part[q] = cx_typed(L, lw_node(L, "Slice", 4, in, 1)->outputs[0], t->et, t);
  }
  return (Cx){part[0], part[1]};
}

/* reduce with multiply: the reduced axes moved last and flattened into one
 * line of len elements, then halved log2(len) times by complex products of
 * its two halves (an odd element waits for the next round), as a tree
 * reduction rounds; then times the init value. */
static int lower_cprod(Lower *L, const Op *op) {
  const Value *xv = op->operands[0];
  const Type *ti = &xv->type, *to = &op->results[0]->type;
  ElemType et = et_complex_part(ti->et);
  int64_t *axes;
  int n = ir_attr_i64s(L->c, ir_op_attr(op, "dimensions"), &axes);
  int r = ti->rank, rk = to->rank;
  if (n < 0 || n > r || rk != r - n) return lw_bad_input(L, "reduce dimensions do not fit the types");
  int64_t perm[MAX_RANK], len = 1;
  bool reduced[MAX_RANK] = {false};
  for (int i = 0; i < n; i++) {
    if (axes[i] < 0 || axes[i] >= r || reduced[axes[i]]) return lw_bad_input(L, "bad reduce dimensions");
    reduced[axes[i]] = true;
  }
  int kk = 0;
  for (int i = 0; i < r; i++)
    if (!reduced[i]) perm[kk++] = i;
  for (int i = 0; i < n; i++) {
    perm[kk++] = axes[i];
    if (ti->dims[axes[i]] == DIM_DYN)
      return lw_unsupported(L, "a complex product over a '?' dimension");
    len *= ti->dims[axes[i]];
  }
  Cx z = cx_split(L, lw_get(L, xv), ti);
  Cx init = cx_split(L, lw_get(L, op->operands[1]), &op->operands[1]->type);
  Type kept = with_et(to, et);
  if (len == 0) { /* an empty product: the init value everywhere */
    if (!type_is_static(&kept)) return lw_unsupported(L, "an empty complex product of '?' shape");
    OValue *dims = lw_const_i64s(L, rk, to->dims);
    Cx full = {cx_typed(L, lw_op2(L, "Expand", init.re, dims), et, &kept),
               cx_typed(L, lw_op2(L, "Expand", init.im, dims), et, &kept)};
    lw_bind(L, op->results[0], cx_join(L, full, to));
    return 0;
  }
  int64_t shape[MAX_RANK + 1];
  for (int i = 0; i < rk; i++) shape[i] = 0; /* Reshape copies the kept axes */
  shape[rk] = len;
  Type line = with_line(L, &kept, len);
  OValue *part[2] = {z.re, z.im};
  for (int p = 0; p < 2; p++) {
    int64_t tdims[MAX_RANK];
    part[p] = lw_transpose(L, part[p], et, r, ti->dims, perm, tdims);
    part[p] = cx_typed(L, lw_op2(L, "Reshape", part[p], lw_const_i64s(L, rk + 1, shape)), et, &line);
  }
  Cx acc = {part[0], part[1]};
  int64_t axis = rk;
  while (len > 1) {
    int64_t half = len / 2, odd = len - 2 * half;
    Type ht = with_line(L, &kept, half);
    E eh = {L, op, et, &ht, false};
    Cx prod = z_mul(&eh, slice_last(L, acc, 0, half, &ht), slice_last(L, acc, half, 2 * half, &ht));
    if (odd) {
      Type ot = with_line(L, &kept, 1), nt = with_line(L, &kept, half + 1);
      Cx last = slice_last(L, acc, 2 * half, len, &ot);
      OValue *in[2][2] = {{prod.re, last.re}, {prod.im, last.im}};
      for (int q = 0; q < 2; q++) {
        ONode *c = lw_node(L, "Concat", 2, in[q], 1);
        og_attr_int(L->c, c, "axis", axis);
        *(q ? &prod.im : &prod.re) = cx_typed(L, c->outputs[0], et, &nt);
      }
    }
    acc = prod;
    len = half + odd;
  }
  OValue *squeeze_axes = lw_const_i64s(L, 1, &axis);
  acc.re = cx_typed(L, lw_op2(L, "Squeeze", acc.re, squeeze_axes), et, &kept);
  acc.im = cx_typed(L, lw_op2(L, "Squeeze", acc.im, squeeze_axes), et, &kept);
  E e = {L, op, et, &kept, false};
  Cx res = z_mul(&e, acc, init);
  if (e.failed) return -1;
  lw_bind(L, op->results[0], cx_join(L, res, to));
  return 0;
}

static int lower_creduce(Lower *L, const Op *op) {
  if (op->n_operands != 2 || op->n_results != 1 || op->n_regions != 1 ||
      op->regions[0]->n_blocks != 1)
    return lw_unsupported(L, "a reduce of several complex operands");
  if (linear_body(op)) return lower_per_part(L, op);
  const Block *b = op->regions[0]->blocks[0];
  const Op *ret = b->n_ops ? b->ops[b->n_ops - 1] : NULL;
  const Op *d = ret && ret->n_operands == 1 ? ret->operands[0]->def : NULL;
  if (b->n_ops == 2 && d && d->kind == OP_MULTIPLY && b->n_args == 2 &&
      ((d->operands[0] == b->args[0] && d->operands[1] == b->args[1]) ||
       (d->operands[0] == b->args[1] && d->operands[1] == b->args[0])))
    return lower_cprod(L, op);
  return lw_unsupported(L, "a reduce of complex numbers whose body is not a sum or a product");
}

/* ---- the converter ----------------------------------------------------------- */

static const char *first_complex_type(Lower *L, const Op *op) {
  for (int i = 0; i < op->n_operands + op->n_results; i++) {
    const Type *t = i < op->n_operands ? &op->operands[i]->type
                                       : &op->results[i - op->n_operands]->type;
    if (is_complex(t)) {
      size_t size = 64 + 24 * MAX_RANK; /* in the arena: conversions run in parallel threads */
      return type_str(t, arena_alloc(L->c->arena, size), size);
    }
  }
  return "";
}

bool lw_touches_complex(const Op *op) {
  if (op_table[op->kind].flags & OPF_PASSES_VALUES_ALONG) return false;
  for (int i = 0; i < op->n_operands; i++)
    if (is_complex(&op->operands[i]->type)) return true;
  for (int i = 0; i < op->n_results; i++)
    if (is_complex(&op->results[i]->type)) return true;
  return false;
}

int lower_complex(Lower *L, const Op *op) {
  for (int i = 0; i < op->n_operands + op->n_results; i++) {
    const Type *t = i < op->n_operands ? &op->operands[i]->type
                                       : &op->results[i - op->n_operands]->type;
    if (is_complex(t) && t->rank >= MAX_RANK)
      return lw_unsupported(L, "a complex tensor of rank %d: its real pairs would have more "
                               "than %d axes", t->rank, MAX_RANK);
  }
  int decomposition = lower_complex_lapack_decomposition(L, op); /* 1: not one */
  if (decomposition <= 0) return decomposition;
  const char *linalg = lw_linalg_name(op); /* lapack_lu.c: real matrices only */
  if (linalg)
    return lw_unsupported(L, "complex linear algebra (%s of %s): hlo2onnx factors and solves "
                             "real matrices only", linalg, first_complex_type(L, op));
  static const char *const bdims[] = {"broadcast_dimensions"};
  static const char *const perm[] = {"permutation"};
  static const char *const slice[] = {"start_indices", "limit_indices", "strides"};
  switch (op->kind) {
  case OP_COMPLEX: case OP_REAL: case OP_IMAG: return lower_parts_op(L, op);
  case OP_CONVERT: return lower_cconvert(L, op);
  case OP_CONSTANT: return lower_cconstant(L, op);
  case OP_FFT: return lower_fft(L, op);
  case OP_ABS: return lower_cabs(L, op);
  case OP_COMPARE: return lower_ccompare(L, op);
  case OP_SELECT: return lower_cselect(L, op);
  case OP_ADD: case OP_SUBTRACT: case OP_MULTIPLY: case OP_DIVIDE: case OP_NEGATE:
  case OP_EXPONENTIAL: case OP_LOG: case OP_SQRT: case OP_RSQRT: case OP_POWER:
  case OP_SINE: case OP_COSINE: case OP_TAN: case OP_CHLO_TAN: case OP_TANH:
  case OP_CHLO_SINH: case OP_CHLO_COSH: case OP_EXPM1: case OP_LOG1P: case OP_SIGN:
  case OP_CHLO_SQUARE: case OP_CHLO_ASIN: case OP_CHLO_ACOS: case OP_CHLO_ATAN:
  case OP_CHLO_ASINH: case OP_CHLO_ACOSH: case OP_CHLO_ATANH:
    return lower_math(L, op);
  /* moving elements: on the pairs */
  case OP_RESHAPE: case OP_CONCATENATE: case OP_REVERSE:
    return lower_on_pairs(L, op, NULL, NULL, 0);
  case OP_TRANSPOSE: {
    int64_t axis = op->operands[0]->type.rank;
    return lower_on_pairs(L, op, perm, &axis, 1);
  }
  case OP_BROADCAST_IN_DIM: {
    int64_t axis = op->results[0]->type.rank;
    return lower_on_pairs(L, op, bdims, &axis, 1);
  }
  case OP_SLICE: {
    int64_t extra[3] = {0, 2, 1};
    return lower_on_pairs(L, op, slice, extra, 3);
  }
  /* linear: per part */
  case OP_GATHER: case OP_DYNAMIC_GATHER: case OP_DYNAMIC_SLICE: case OP_REAL_DYNAMIC_SLICE:
  case OP_DYNAMIC_UPDATE_SLICE: case OP_PAD: case OP_DYNAMIC_PAD: case OP_BROADCAST:
  case OP_DYNAMIC_BROADCAST_IN_DIM: case OP_DYNAMIC_RESHAPE:
    return lower_per_part(L, op);
  case OP_SCATTER: case OP_REDUCE_WINDOW:
    if (!linear_body(op))
      return lw_unsupported(L, "a %s of complex numbers whose body is not a sum%s",
                            op->kind == OP_SCATTER ? "scatter" : "reduce_window",
                            op->kind == OP_SCATTER ? " or a replacement" : "");
    return lower_per_part(L, op);
  case OP_REDUCE: return lower_creduce(L, op);
  case OP_DOT_GENERAL: case OP_DOT: case OP_CONVOLUTION: return lower_bilinear(L, op);
  /* tuples hold the pairs like any value */
  case OP_TUPLE: case OP_GET_TUPLE_ELEMENT: return lw_converters[op->kind](L, op);
  default:
    return lw_unsupported(L, "no lowering of this op for complex tensors (%s); hlo2onnx "
                             "carries complex tensors as real pairs and lowers the ops that "
                             "lower/complex.c lists", first_complex_type(L, op));
  }
}
