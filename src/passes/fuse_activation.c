/* fuse_activation.c - jax.nn activations whose StableHLO decomposition the
 * lowering emits op by op, back into their ONNX ops:
 *
 *   Sigmoid    Div(1, Add(1, Exp(Neg(x))))        jax.nn.sigmoid (jax 0.10 lowers
 *                                                  logistic to this)
 *   Softplus   Where(IsNaN(d), Add(x, 0), Add(Max(x, 0), log1p(Exp(Neg(Abs(d))))))
 *              d = Sub(x, 0) or x                  jax.nn.softplus = logaddexp(x, 0)
 *              also Log(Add(Exp(x), 1))
 *   Elu        Where(x > 0, x, alpha * expm1(Where(x > 0, 0, x)))   jax.nn.elu
 *   LeakyRelu  Where(x >= 0, x, alpha * x)          jax.nn.leaky_relu (x > 0 too)
 *   Mish       Mul(x, Tanh(Softplus(x)))            jax.nn.mish (opset 18)
 *   Relu       Max(x, 0)                            jax.nn.relu
 *
 * log1p and expm1 are matched in the accurate forms lower/elementwise.c
 * gives them (Goldberg's log(u) * x / (u - 1), the tanh half-angle, chosen
 * with Where) and in the plain ones.  IsNaN(d) is also recognised as Not(Equal(d, d)) (the
 * lowering of compare NE).  SiLU (x * sigmoid(x)) has no ONNX op before
 * Swish, which our opsets lack, so it stays Mul(x, Sigmoid(x)).
 *
 * The sweeps run in order so that a larger pattern is matched before its
 * parts: Softplus contains Max(x, 0), which is also Relu; Mish contains
 * Softplus.  Each fused op is only emitted for element types onnxruntime's
 * CPU kernels take (the lowering's rule: every node it emits runs there).
 */
#include "passes/passes.h"

#include <math.h>
#include <string.h>

static ONode *binary(FmPat *p, const OValue *v, OnnxOp op) {
  ONode *n = fm_take(p, v, op);
  return n && n->n_inputs == 2 ? n : NULL;
}

/* n = op(k, w) or op(w, k) with k a splat constant equal to want (any value
 * when want is NAN, returned in *got); *w is the other operand. */
static bool with_const(Ctx *c, const ONode *n, double want, OValue **w, double *got) {
  for (int side = 0; side < 2; side++) {
    double v;
    OValue *k = n->inputs[side], *o = n->inputs[1 - side];
    if (!fm_fits(k, o) || !fm_splat(c, k, &v)) continue;
    if (!isnan(want) && !(want == 0 ? v == 0 : fm_near(v, want))) continue;
    *w = o;
    if (got) *got = v;
    return true;
  }
  return false;
}

/* v is -x: Neg(x) or x * -1. */
static bool negated(Ctx *c, FmPat *p, const OValue *v, const OValue *x) {
  ONode *n = fm_take(p, v, ONNX_Neg);
  if (n) return n->inputs[0] == x;
  OValue *w;
  n = binary(p, v, ONNX_Mul);
  return n && with_const(c, n, -1, &w, NULL) && w == x;
}

/* cond is "x > 0" (Greater(x, 0), Less(0, x)); or_equal admits >= too. */
static bool positive(Ctx *c, FmPat *p, const OValue *cond, const OValue *x, bool or_equal) {
  ONode *n = cond->producer;
  if (!n || n->dead || n->n_inputs != 2 || !fm_add(p, n)) return false;
  int xs;
  if (og_is(n, ONNX_Greater) || (or_equal && og_is(n, ONNX_GreaterOrEqual))) xs = 0;
  else if (og_is(n, ONNX_Less) || (or_equal && og_is(n, ONNX_LessOrEqual))) xs = 1;
  else return false;
  return n->inputs[xs] == x && fm_splat_near(c, n->inputs[1 - xs], x, 0);
}

static bool done(Ctx *c, OGraph *g, ONode *root, FmPat *p, OValue *x, OnnxOp op,
                 unsigned types) {
  if (!fm_kernel_type(x->type.et, types) || !fm_same_shape(root->outputs[0], x) ||
      !fm_closed(p, root))
    return false;
  fm_rewrite(c, g, root, op, &x, 1);
  return true;
}

/* ---- Sigmoid ------------------------------------------------------------ */

static bool try_sigmoid(Ctx *c, OModel *m, OGraph *g, ONode *root) {
  (void)m;
  FmPat p = {.n = 0};
  OValue *den, *e;
  if (!og_is(root, ONNX_Div) || root->n_inputs != 2 || !fm_add(&p, root)) return false;
  if (!fm_splat_near(c, root->inputs[0], root->inputs[1], 1)) return false;
  den = root->inputs[1];
  ONode *add = binary(&p, den, ONNX_Add);
  if (!add || !with_const(c, add, 1, &e, NULL)) return false;
  ONode *exp = fm_take(&p, e, ONNX_Exp);
  if (!exp) return false;
  ONode *neg = exp->inputs[0]->producer;
  OValue *x = NULL;
  if (neg && !neg->dead && og_is(neg, ONNX_Neg)) x = neg->inputs[0];
  else if (neg && !neg->dead && og_is(neg, ONNX_Mul) && neg->n_inputs == 2)
    with_const(c, neg, -1, &x, NULL);
  if (!x || !negated(c, &p, exp->inputs[0], x)) return false;
  return done(c, g, root, &p, x, ONNX_Sigmoid, FM_F16 | FM_F32 | FM_F64);
}

/* ---- log1p, expm1 ------------------------------------------------------- */

/* The accurate lowerings of log1p and expm1 (lower/elementwise.c) pick, with
 * Where, between formulas of the same function: the plain one, a rewrite
 * that is accurate near 0, and exact answers at the edges.  They are
 * recognised by their leaves - each one a known formula - and by their
 * conditions, which may depend only on the function's argument (through
 * comparisons, Abs, Sub, ... and constants).  Which threshold the lowering
 * uses does not matter: every leaf computes the same function. */

#define MAX_LEAVES 8

typedef struct Tree {
  OValue *leaf[MAX_LEAVES], *cond[MAX_LEAVES];
  int n_leaf, n_cond;
} Tree;

static bool where_tree(FmPat *p, OValue *v, Tree *t, int depth) {
  ONode *w = fm_def(v, ONNX_Where);
  if (w && w->n_inputs == 3 && depth < 4) {
    if (!fm_add(p, w) || t->n_cond == MAX_LEAVES) return false;
    t->cond[t->n_cond++] = w->inputs[0];
    return where_tree(p, w->inputs[1], t, depth + 1) && where_tree(p, w->inputs[2], t, depth + 1);
  }
  if (t->n_leaf == MAX_LEAVES) return false;
  t->leaf[t->n_leaf++] = v;
  return true;
}

/* v is computed from src[0..n) and constants by the ops of a selector. */
static bool selector(FmPat *p, const OValue *v, OValue *const *src, int n, int depth) {
  for (int i = 0; i < n; i++)
    if (v == src[i]) return true;
  if (og_const_data(v)) return true;
  ONode *d = v->producer;
  if (depth > 6 || !d || d->dead || d->n_outputs != 1) return false;
  switch (d->kind) { /* the ops a selector is made of */
  case ONNX_IsInf: case ONNX_IsNaN: case ONNX_Equal: case ONNX_Greater: case ONNX_Less:
  case ONNX_GreaterOrEqual: case ONNX_LessOrEqual: case ONNX_Not: case ONNX_And: case ONNX_Or:
  case ONNX_Abs: case ONNX_Neg: case ONNX_Sub: case ONNX_Add: break;
  default: return false;
  }
  if (!fm_add(p, d)) return false;
  for (int j = 0; j < d->n_inputs; j++)
    if (!d->inputs[j] || !selector(p, d->inputs[j], src, n, depth + 1)) return false;
  return true;
}

/* Goldberg's log1p: Mul(Log(u), Div(e, Sub(u, 1))), u = e + 1. */
static bool goldberg(Ctx *c, FmPat *p, const OValue *v, OValue **e, OValue **u) {
  ONode *mul = binary(p, v, ONNX_Mul);
  if (!mul) return false;
  for (int side = 0; side < 2; side++) {
    FmPat q = *p;
    OValue *w;
    ONode *l = fm_take(&q, mul->inputs[side], ONNX_Log);
    ONode *div = binary(&q, mul->inputs[1 - side], ONNX_Div);
    ONode *sub = div ? binary(&q, div->inputs[1], ONNX_Sub) : NULL;
    ONode *add = l ? binary(&q, l->inputs[0], ONNX_Add) : NULL;
    if (!l || !sub || !add || sub->inputs[0] != l->inputs[0] ||
        !fm_splat_near(c, sub->inputs[1], l->inputs[0], 1) || !with_const(c, add, 1, &w, NULL) ||
        w != div->inputs[0])
      continue;
    *p = q;
    *e = w;
    *u = l->inputs[0];
    return true;
  }
  return false;
}

/* v = log1p(e): Log(1 + e), or a Where tree whose leaves are Goldberg's
 * formula, Log(u), u (the answer at u = +inf) or e (where u - 1 == 0). */
static bool log1p_of(Ctx *c, FmPat *p, OValue *v, OValue **e) {
  Tree t = {.n_leaf = 0};
  OValue *u = NULL;
  if (!where_tree(p, v, &t, 0)) return false;
  for (int i = 0; i < t.n_leaf && !u; i++) {
    FmPat q = *p;
    if (goldberg(c, &q, t.leaf[i], e, &u)) *p = q;
  }
  if (!u) {
    /* the plain form, alone */
    ONode *log = fm_take(p, v, ONNX_Log);
    ONode *add = log ? binary(p, log->inputs[0], ONNX_Add) : NULL;
    return t.n_leaf == 1 && add && with_const(c, add, 1, e, NULL);
  }
  for (int i = 0; i < t.n_leaf; i++) {
    OValue *e2, *u2;
    ONode *log = fm_def(t.leaf[i], ONNX_Log);
    if (t.leaf[i] == u || t.leaf[i] == *e) continue;
    if (log && log->inputs[0] == u && fm_add(p, log)) continue;
    if (!goldberg(c, p, t.leaf[i], &e2, &u2) || e2 != *e || u2 != u) return false;
  }
  OValue *src[2] = {*e, u};
  for (int i = 0; i < t.n_cond; i++)
    if (!selector(p, t.cond[i], src, 2, 0)) return false;
  return true;
}

/* One formula of expm1(t): Sub(Exp(t), 1), or the tanh half-angle
 * Div(Add(h, h), Sub(1, h)), h = Tanh(Mul(t, 0.5)). */
static bool expm1_leaf(Ctx *c, FmPat *p, const OValue *v, OValue **t) {
  ONode *sub = binary(p, v, ONNX_Sub);
  if (sub) {
    ONode *exp = fm_take(p, sub->inputs[0], ONNX_Exp);
    if (!exp || !fm_splat_near(c, sub->inputs[1], sub->inputs[0], 1)) return false;
    *t = exp->inputs[0];
    return true;
  }
  ONode *div = binary(p, v, ONNX_Div);
  ONode *add = div ? binary(p, div->inputs[0], ONNX_Add) : NULL;
  ONode *den = div ? binary(p, div->inputs[1], ONNX_Sub) : NULL;
  if (!add || !den || add->inputs[0] != add->inputs[1] || den->inputs[1] != add->inputs[0] ||
      !fm_splat_near(c, den->inputs[0], den->inputs[1], 1))
    return false;
  ONode *tanh = fm_take(p, add->inputs[0], ONNX_Tanh);
  ONode *half = tanh ? binary(p, tanh->inputs[0], ONNX_Mul) : NULL;
  return half && with_const(c, half, 0.5, t, NULL);
}

/* v = expm1(t): one formula, or a Where tree of them selected by t. */
static bool expm1_of(Ctx *c, FmPat *p, OValue *v, OValue **t) {
  Tree tr = {.n_leaf = 0};
  if (!where_tree(p, v, &tr, 0)) return false;
  *t = NULL;
  for (int i = 0; i < tr.n_leaf; i++) {
    OValue *ti;
    if (!expm1_leaf(c, p, tr.leaf[i], &ti) || (*t && ti != *t)) return false;
    *t = ti;
  }
  for (int i = 0; i < tr.n_cond; i++)
    if (!selector(p, tr.cond[i], t, 1, 0)) return false;
  return *t != NULL;
}

/* ---- Softplus ----------------------------------------------------------- */

/* cond = isnan(d): IsNaN(d) or Not(Equal(d, d)); returns d. */
static OValue *nan_test_of(FmPat *p, const OValue *cond) {
  ONode *n = fm_take(p, cond, ONNX_IsNaN);
  if (n) return n->inputs[0];
  n = fm_take(p, cond, ONNX_Not);
  ONode *eq = n ? binary(p, n->inputs[0], ONNX_Equal) : NULL;
  return eq && eq->inputs[0] == eq->inputs[1] ? eq->inputs[0] : NULL;
}

static bool try_softplus(Ctx *c, OModel *m, OGraph *g, ONode *root) {
  (void)m;
  FmPat p = {.n = 0};
  OValue *x = NULL, *w, *e;
  if (!fm_add(&p, root)) return false;
  if (og_is(root, ONNX_Log) && root->n_inputs == 1) {
    /* log(exp(x) + 1) */
    ONode *add = binary(&p, root->inputs[0], ONNX_Add);
    ONode *exp = add && with_const(c, add, 1, &w, NULL) ? fm_take(&p, w, ONNX_Exp) : NULL;
    if (!exp) return false;
    return done(c, g, root, &p, exp->inputs[0], ONNX_Softplus, FM_F16 | FM_F32);
  }
  if (!og_is(root, ONNX_Where) || root->n_inputs != 3) return false;
  /* the NaN branch: x + 0 */
  ONode *nanb = binary(&p, root->inputs[1], ONNX_Add);
  if (!nanb || !with_const(c, nanb, 0, &x, NULL)) return false;
  /* isnan(d), d = x - 0 (or x itself, once simplify dropped the - 0) */
  OValue *d = nan_test_of(&p, root->inputs[0]);
  if (!d) return false;
  if (d != x) {
    ONode *dn = binary(&p, d, ONNX_Sub);
    if (!dn || dn->inputs[0] != x || !fm_splat_near(c, dn->inputs[1], x, 0)) return false;
  }
  /* max(x, 0) + log1p(exp(-|d|)) */
  ONode *sum = binary(&p, root->inputs[2], ONNX_Add);
  if (!sum) return false;
  for (int side = 0; side < 2; side++) {
    FmPat q = p;
    ONode *mx = binary(&q, sum->inputs[side], ONNX_Max);
    if (!mx || !with_const(c, mx, 0, &w, NULL) || w != x) continue;
    if (!log1p_of(c, &q, sum->inputs[1 - side], &e)) continue;
    ONode *exp = fm_take(&q, e, ONNX_Exp);
    ONode *abs = NULL;
    if (exp) {
      ONode *neg = fm_take(&q, exp->inputs[0], ONNX_Neg);
      abs = neg ? fm_take(&q, neg->inputs[0], ONNX_Abs) : NULL;
    }
    if (!abs || abs->inputs[0] != d) continue;
    return done(c, g, root, &q, x, ONNX_Softplus, FM_F16 | FM_F32);
  }
  return false;
}

/* ---- Elu, LeakyRelu ----------------------------------------------------- */

static bool try_where_act(Ctx *c, OModel *m, OGraph *g, ONode *root) {
  (void)m;
  FmPat p = {.n = 0};
  if (!og_is(root, ONNX_Where) || root->n_inputs != 3 || !fm_add(&p, root)) return false;
  OValue *x = root->inputs[1], *neg = root->inputs[2], *w, *t;
  double alpha = 1;
  /* LeakyRelu: Where(x >= 0, x, alpha * x) */
  ONode *mul = binary(&p, neg, ONNX_Mul);
  FmPat q = p;
  if (mul && with_const(c, mul, NAN, &w, &alpha) && w == x && isfinite(alpha) &&
      positive(c, &q, root->inputs[0], x, true)) {
    if (!done(c, g, root, &q, x, ONNX_LeakyRelu, FM_F16 | FM_F32)) return false;
    og_attr_float(c, root, "alpha", (float)alpha);
    return true;
  }
  /* Elu: Where(x > 0, x, [alpha *] expm1(Where(x > 0, 0, x) or x)) */
  p.n = 1;
  OValue *em = neg;
  mul = binary(&p, neg, ONNX_Mul);
  if (mul) {
    if (!with_const(c, mul, NAN, &em, &alpha) || !isfinite(alpha)) return false;
  }
  if (!positive(c, &p, root->inputs[0], x, false) || !expm1_of(c, &p, em, &t)) return false;
  if (t != x) {
    ONode *safe = fm_take(&p, t, ONNX_Where);
    if (!safe || safe->n_inputs != 3 || safe->inputs[2] != x ||
        !fm_splat_near(c, safe->inputs[1], x, 0) || !positive(c, &p, safe->inputs[0], x, false))
      return false;
  }
  if (!done(c, g, root, &p, x, ONNX_Elu, FM_F16 | FM_F32)) return false;
  og_attr_float(c, root, "alpha", (float)alpha);
  return true;
}

/* ---- Mish, Relu --------------------------------------------------------- */

static bool try_mish(Ctx *c, OModel *m, OGraph *g, ONode *root) {
  if (m->opset < 18 || !og_is(root, ONNX_Mul) || root->n_inputs != 2) return false;
  for (int side = 0; side < 2; side++) {
    FmPat p = {.n = 0};
    OValue *x = root->inputs[side];
    fm_add(&p, root);
    ONode *tanh = fm_take(&p, root->inputs[1 - side], ONNX_Tanh);
    ONode *sp = tanh ? fm_take(&p, tanh->inputs[0], ONNX_Softplus) : NULL;
    if (sp && sp->inputs[0] == x) return done(c, g, root, &p, x, ONNX_Mish, FM_F16 | FM_F32);
  }
  return false;
}

static bool try_relu(Ctx *c, OModel *m, OGraph *g, ONode *root) {
  (void)m;
  FmPat p = {.n = 0};
  OValue *x;
  if (!og_is(root, ONNX_Max) || root->n_inputs != 2 || !fm_add(&p, root)) return false;
  if (!with_const(c, root, 0, &x, NULL)) return false;
  return done(c, g, root, &p, x, ONNX_Relu, FM_F16 | FM_F32 | FM_F64);
}

int pass_fuse_activations(Ctx *c, OModel *m) {
  fm_each_node(c, m, try_sigmoid);
  fm_each_node(c, m, try_softplus);
  fm_each_node(c, m, try_where_act);
  fm_each_node(c, m, try_mish);
  fm_each_node(c, m, try_relu);
  return 0;
}
