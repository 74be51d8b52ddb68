/* fuse_softmax.c - jax.nn.softmax and jax.nn.log_softmax over one axis back
 * into ONNX Softmax and LogSoftmax (opset 13 semantics: one axis).
 *
 *   d = x - K(max_a x)
 *   softmax      Div(Exp(d), K(ReduceSum_a(Exp(d))))          -> Softmax(x, axis=a)
 *   log_softmax  Sub(d, Log(K(ReduceSum_a(Exp(d)))))          -> LogSoftmax(x, axis=a)
 *
 * K(.) puts the reduced axis back: keepdims=1, or keepdims=0 followed by
 * an Unsqueeze or Reshape inserting exactly axis a, possibly followed by an
 * Expand (the spelled-out broadcast_in_dim; when the other operand has the
 * full shape the broadcast changes nothing).  The max is the stabiliser JAX
 * writes, in any of the forms our lowering gives it:
 *
 *   ReduceMax_a(x)
 *   Where(ReduceMax_a(IsNaN(x)), NaN, ReduceMax_a(x))  (the NaN guard of reduce.c)
 *   Max(-inf, .)                                        (jnp.max's init value)
 *
 * possibly with a Transpose the transpose pass moved into the chain (then x
 * is Transpose(x0) and the max is taken over the matching axis of x0).
 * Only the true row maximum is accepted: a softmax without the subtraction
 * overflows in JAX where Softmax would not, so fusing it would change
 * results.  A NaN anywhere in a row makes the whole row NaN both ways.
 */
#include "passes/passes.h"

#include <math.h>
#include <string.h>

/* n is a Reduce node over exactly the single axis `axis` of its input x. */
static bool reduces_axis(Ctx *c, const ONode *n, const OValue *x, int64_t axis, bool *keepdims) {
  int64_t axes[MAX_RANK];
  if (n->inputs[0] != x) return false;
  return fm_reduce_axes(c, n, axes, keepdims) == 1 && axes[0] == axis;
}

/* v reads a reduction over axis a with the axis in place (the K(.) above):
 * *inner is the reduction's result; true when an Unsqueeze or Reshape put
 * the axis back (so the reduction has keepdims=0), false when it must have
 * kept it. */
static bool reinserted(Ctx *c, FmPat *p, OValue *v, int64_t axis, OValue **inner) {
  v = fm_skip_expand(p, v);
  ONode *r = v->producer;
  *inner = v;
  if (!r || r->dead || !(og_is(r, ONNX_Unsqueeze) || og_is(r, ONNX_Reshape))) return false;
  if (!fm_reinserts(c, r, &axis, 1) || !fm_add(p, r)) return false;
  *inner = r->inputs[0];
  return true;
}

/* The NaN flag of reduce.c: ReduceMax_a(IsNaN(x)), maybe through Casts. */
static bool nan_flag(Ctx *c, FmPat *p, OValue *v, const OValue *x, int64_t axis, bool keepdims) {
  ONode *n;
  while ((n = fm_take(p, v, ONNX_Cast)) != NULL) v = n->inputs[0];
  ONode *r = fm_take(p, v, ONNX_ReduceMax);
  bool kd;
  if (!r) return false;
  v = r->inputs[0];
  while ((n = fm_take(p, v, ONNX_Cast)) != NULL) v = n->inputs[0];
  ONode *isnan = fm_take(p, v, ONNX_IsNaN);
  if (!isnan || isnan->inputs[0] != x) return false;
  int64_t axes[MAX_RANK];
  return fm_reduce_axes(c, r, axes, &kd) == 1 && axes[0] == axis && kd == keepdims;
}

/* The transpose pass may have moved a layout Transpose into the max chain:
 * x = Transpose(x0, P), the max taken over axis P[a] of x0 and permuted into
 * x's layout afterwards.  With keepdims=1 that permutation is P itself;
 * with keepdims=0 it is P without position a (and axes renumbered). */
static bool layout_matches(const OValue *x, const OValue *x0, int64_t axis, int64_t b,
                           const OAttr *q, bool keepdims) {
  if (!q) return x == x0 && b == axis;
  ONode *t = fm_def(x, ONNX_Transpose);
  const OAttr *perm = t ? og_get_attr(t, "perm") : NULL;
  int rank = x->type.rank;
  if (!perm || t->inputs[0] != x0 || perm->n != rank || rank > MAX_RANK) return false;
  if (perm->ints[axis] != b) return false;
  int64_t want[MAX_RANK];
  int n = 0;
  for (int i = 0; i < rank; i++) {
    if (keepdims) want[n++] = perm->ints[i];
    else if (i != axis) want[n++] = perm->ints[i] - (perm->ints[i] > b);
  }
  return q->n == n && memcmp(q->ints, want, sizeof(int64_t) * (size_t)n) == 0;
}

/* v is K(max_a x) in one of the forms above. */
static bool row_max(Ctx *c, FmPat *p, OValue *v, const OValue *x, int64_t axis) {
  OValue *m, *flag = NULL;
  const OAttr *q = NULL; /* a Transpose in the chain */
  bool kd0 = !reinserted(c, p, v, axis, &m); /* keepdims of the reductions */
  for (int guard = 0; guard < 5; guard++) {
    ONode *n = m->producer;
    if (!n || n->dead) return false;
    if (og_is(n, ONNX_Max) && n->n_inputs == 2) {
      int side = fm_splat_near(c, n->inputs[0], n->inputs[1], -INFINITY) ? 0
                 : fm_splat_near(c, n->inputs[1], n->inputs[0], -INFINITY) ? 1 : -1;
      if (side < 0 || !fm_add(p, n)) return false;
      m = n->inputs[1 - side];
      continue;
    }
    if (og_is(n, ONNX_Where) && n->n_inputs == 3 && !flag) {
      double nan;
      if (!fm_splat(c, n->inputs[1], &nan) || !isnan(nan) || !fm_fits(n->inputs[1], n->inputs[2]))
        return false;
      if (!fm_add(p, n)) return false;
      flag = n->inputs[0];
      m = n->inputs[2];
      continue;
    }
    if (og_is(n, ONNX_Transpose) && !q && !flag) {
      /* (below a Where the NaN flag would be in the other layout) */
      q = og_get_attr(n, "perm");
      if (!q || !fm_add(p, n)) return false;
      m = n->inputs[0];
      continue;
    }
    if (og_is(n, ONNX_ReduceMax)) {
      int64_t axes[MAX_RANK];
      bool kd;
      OValue *x0 = n->inputs[0];
      if (!fm_add(p, n) || fm_reduce_axes(c, n, axes, &kd) != 1 || kd != kd0) return false;
      if (!layout_matches(x, x0, axis, axes[0], q, kd0)) return false;
      return !flag || nan_flag(c, p, flag, x0, axes[0], kd0);
    }
    return false;
  }
  return false;
}

/* s is K(ReduceSum_a(e)). */
static bool row_sum(Ctx *c, FmPat *p, OValue *s, const OValue *e, int64_t axis) {
  OValue *r;
  bool kd0 = !reinserted(c, p, s, axis, &r);
  ONode *n = fm_take(p, r, ONNX_ReduceSum);
  bool kd;
  return n && reduces_axis(c, n, e, axis, &kd) && kd == kd0;
}

/* The axis of the softmax: the one the ReduceSum of e reduces. */
static bool sum_axis(Ctx *c, OValue *s, int64_t *axis) {
  FmPat scratch = {.n = 0};
  s = fm_skip_expand(&scratch, s);
  ONode *n = s->producer;
  if (n && !n->dead && (og_is(n, ONNX_Unsqueeze) || og_is(n, ONNX_Reshape))) s = n->inputs[0];
  n = fm_def(s, ONNX_ReduceSum);
  bool kd;
  int64_t axes[MAX_RANK];
  if (!n || fm_reduce_axes(c, n, axes, &kd) != 1) return false;
  *axis = axes[0];
  return true;
}

/* d = Sub(x, K(max_a x)); returns x. */
static OValue *shifted(Ctx *c, FmPat *p, OValue *d, int64_t axis) {
  ONode *sub = fm_take(p, d, ONNX_Sub);
  if (!sub || sub->n_inputs != 2) return NULL;
  OValue *x = sub->inputs[0];
  if (!row_max(c, p, sub->inputs[1], x, axis)) return NULL;
  return x;
}

static bool emit(Ctx *c, OGraph *g, ONode *root, FmPat *p, OValue *x, int64_t axis,
                 OnnxOp op) {
  if (!x || !fm_same_shape(root->outputs[0], x) || !fm_closed(p, root)) return false;
  if (!fm_kernel_type(x->type.et, FM_F16 | FM_F32 | FM_F64)) return false;
  fm_rewrite(c, g, root, op, &x, 1);
  og_attr_int(c, root, "axis", axis);
  return true;
}

static bool try_softmax(Ctx *c, OModel *m, OGraph *g, ONode *root) {
  (void)m;
  if (root->n_inputs != 2) return false;
  FmPat p = {.n = 0};
  int64_t axis;
  fm_add(&p, root);
  if (og_is(root, ONNX_Div)) {
    OValue *e = root->inputs[0];
    ONode *exp = fm_take(&p, e, ONNX_Exp);
    if (!exp || !sum_axis(c, root->inputs[1], &axis) || !row_sum(c, &p, root->inputs[1], e, axis))
      return false;
    return emit(c, g, root, &p, shifted(c, &p, exp->inputs[0], axis), axis, ONNX_Softmax);
  }
  if (og_is(root, ONNX_Sub)) {
    OValue *d = root->inputs[0];
    OValue *l = fm_skip_expand(&p, root->inputs[1]);
    ONode *log = fm_take(&p, l, ONNX_Log);
    if (!log || !sum_axis(c, log->inputs[0], &axis)) return false;
    /* the ReduceSum's input is Exp(d) with the same d */
    FmPat scratch = {.n = 0};
    OValue *s = fm_skip_expand(&scratch, log->inputs[0]);
    ONode *k = s->producer;
    if (k && !k->dead && (og_is(k, ONNX_Unsqueeze) || og_is(k, ONNX_Reshape))) s = k->inputs[0];
    ONode *sum = fm_def(s, ONNX_ReduceSum);
    ONode *exp = sum ? fm_take(&p, sum->inputs[0], ONNX_Exp) : NULL;
    if (!exp || exp->inputs[0] != d || !row_sum(c, &p, log->inputs[0], exp->outputs[0], axis))
      return false;
    return emit(c, g, root, &p, shifted(c, &p, d, axis), axis, ONNX_LogSoftmax);
  }
  return false;
}

int pass_fuse_softmax(Ctx *c, OModel *m) {
  fm_each_node(c, m, try_softmax);
  return 0;
}
