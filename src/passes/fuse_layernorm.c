/* fuse_layernorm.c - flax.nnx.LayerNorm's arithmetic back into ONNX
 * LayerNormalization (opset 17).
 *
 * nnx.LayerNorm reduces over trailing axes A (the last by default, several
 * with reduction_axes) and computes
 *
 *   mean = sum_A(x) / N                      (Div, Mul by 1/N, or ReduceMean)
 *   var  = max(0, sum_A(x*x)/N - mean*mean)  (use_fast_variance, the default)
 *        | sum_A(d*d)/N, d = x - K(mean)     (use_fast_variance=False)
 *   y    = (x - K(mean)) * (rsqrt(K(var) + eps) [* scale]) [+ bias]
 *
 * where K(.) puts the reduced axes back (keepdims=1, or an Unsqueeze or
 * Reshape inserting them, maybe followed by an Expand) and rsqrt arrives as
 * Reciprocal(Sqrt(.)).  The match becomes LayerNormalization(x, scale, bias)
 * with axis = the first of A, which must run to the last axis; scale and
 * bias are constants varying only along A (a missing scale becomes ones),
 * rewritten into the normalized shape ONNX requires.
 *
 * ONNX computes the variance as mean((x - mean)^2), never negative and more
 * accurate than JAX's E[x^2] - mean^2: the two agree to ~1e-6 for data of
 * moderate mean (|mean| a few times the standard deviation); for data far
 * from zero JAX's fast variance loses digits that ONNX keeps.
 */
#include "passes/passes.h"

#include <math.h>
#include <string.h>

#define MAX_FACTORS 4

typedef struct Stats {
  const OValue *x;
  int64_t axes[MAX_RANK];
  int n_axes;
  bool keepdims;
} Stats;

static bool same_axes(const Stats *s, const int64_t *axes, int n, bool keepdims) {
  return n == s->n_axes && keepdims == s->keepdims &&
         memcmp(axes, s->axes, sizeof(int64_t) * (size_t)n) == 0;
}

/* v = mean_A(of): ReduceSum(of)/N, ReduceSum(of)*(1/N) or ReduceMean(of),
 * over the axes of s (recorded in s when s->n_axes is 0). */
static bool mean_of(Ctx *c, FmPat *p, OValue *v, const OValue *of, Stats *s) {
  ONode *n = v->producer, *r = NULL;
  if (!n || n->dead) return false;
  double k = 0;
  if (og_is(n, ONNX_ReduceMean)) r = n;
  else if (og_is(n, ONNX_Div) && n->n_inputs == 2 && fm_splat(c, n->inputs[1], &k) && k != 0) {
    r = fm_def(n->inputs[0], ONNX_ReduceSum);
    k = 1 / k;
  } else if (og_is(n, ONNX_Mul) && n->n_inputs == 2) {
    for (int side = 0; side < 2 && !r; side++)
      if (fm_splat(c, n->inputs[side], &k)) r = fm_def(n->inputs[1 - side], ONNX_ReduceSum);
  }
  if (!r || r->inputs[0] != of || !fm_add(p, n) || !fm_add(p, r)) return false;
  int64_t axes[MAX_RANK];
  bool kd;
  int na = fm_reduce_axes(c, r, axes, &kd);
  if (na <= 0) return false;
  if (r != n) {
    /* 1/N for N the number of elements reduced */
    double count = 1;
    for (int i = 0; i < na; i++) {
      int64_t d = of->type.dims[axes[i]].value;
      if (d <= 0) return false;
      count *= (double)d;
    }
    if (!fm_near(k, 1 / count)) return false;
  }
  if (s->n_axes == 0) {
    memcpy(s->axes, axes, sizeof(int64_t) * (size_t)na);
    s->n_axes = na;
    s->keepdims = kd;
    return true;
  }
  return same_axes(s, axes, na, kd);
}

/* v is K(w): w with the reduced axes in place.  Returns w. */
static OValue *kept(Ctx *c, FmPat *p, OValue *v, const Stats *s) {
  v = fm_skip_expand(p, v);
  if (s->keepdims) return v;
  ONode *r = v->producer;
  if (!r || r->dead || !(og_is(r, ONNX_Unsqueeze) || og_is(r, ONNX_Reshape))) return NULL;
  if (!fm_reinserts(c, r, s->axes, s->n_axes) || !fm_add(p, r)) return NULL;
  return r->inputs[0];
}

/* d = Sub(x, K(mean)).  The statistics are learnt from the reduction (when
 * s->n_axes is 0) or checked against s.  Returns the mean value. */
static OValue *centered(Ctx *c, FmPat *p, OValue *d, Stats *s) {
  ONode *sub = fm_take(p, d, ONNX_Sub);
  if (!sub || sub->n_inputs != 2) return NULL;
  const OValue *x = sub->inputs[0];
  if (s->x && s->x != x) return NULL;
  s->x = x;
  OValue *mean = fm_skip_expand(p, sub->inputs[1]);
  ONode *r = mean->producer;
  bool reinsert = r && !r->dead && (og_is(r, ONNX_Unsqueeze) || og_is(r, ONNX_Reshape));
  if (reinsert) mean = r->inputs[0];
  if (!mean_of(c, p, mean, x, s) || reinsert == s->keepdims) return NULL;
  if (reinsert && (!fm_reinserts(c, r, s->axes, s->n_axes) || !fm_add(p, r))) return NULL;
  return mean;
}

/* What a mean_of form reduces: the input of its ReduceSum or ReduceMean
 * (the full check is mean_of's). */
static OValue *mean_input(const OValue *v) {
  ONode *n = v->producer;
  if (!n || n->dead) return NULL;
  if (og_is(n, ONNX_ReduceMean)) return n->inputs[0];
  if (n->n_inputs != 2 || !(og_is(n, ONNX_Div) || og_is(n, ONNX_Mul))) return NULL;
  for (int j = 0; j < (og_is(n, ONNX_Div) ? 1 : 2); j++) {
    ONode *r = fm_def(n->inputs[j], ONNX_ReduceSum);
    if (r) return r->inputs[0];
  }
  return NULL;
}

/* var in either form, given the mean value. */
static bool variance(Ctx *c, FmPat *p, OValue *var, OValue *mean, Stats *s) {
  ONode *mx = fm_def(var, ONNX_Max);
  if (mx && mx->n_inputs == 2) {
    /* max(0, E[x^2] - mean^2) */
    int side = fm_splat_near(c, mx->inputs[0], mx->inputs[1], 0) ? 0
               : fm_splat_near(c, mx->inputs[1], mx->inputs[0], 0) ? 1 : -1;
    if (side < 0 || !fm_add(p, mx)) return false;
    ONode *sub = fm_take(p, mx->inputs[1 - side], ONNX_Sub);
    if (!sub || sub->n_inputs != 2) return false;
    ONode *sq = fm_take(p, sub->inputs[1], ONNX_Mul);
    if (!sq || sq->inputs[0] != mean || sq->inputs[1] != mean) return false;
    OValue *msq = sub->inputs[0], *in = mean_input(msq);
    ONode *xx = in ? fm_take(p, in, ONNX_Mul) : NULL;
    if (!xx || xx->inputs[0] != s->x || xx->inputs[1] != s->x) return false;
    return mean_of(c, p, msq, in, s);
  }
  /* mean((x - K(mean))^2) */
  OValue *in = mean_input(var);
  ONode *sq = in ? fm_take(p, in, ONNX_Mul) : NULL;
  if (!sq || sq->inputs[0] != sq->inputs[1]) return false;
  Stats s2 = *s;
  return centered(c, p, sq->inputs[0], &s2) == mean && mean_of(c, p, var, in, s);
}

/* r = rsqrt(K(var) + eps); returns eps. */
static bool inv_std(Ctx *c, FmPat *p, OValue *r, OValue *mean, Stats *s, double *eps) {
  ONode *n = r->producer;
  OValue *u = NULL;
  double k;
  if (!n || n->dead || !og_single_use(r)) return false;
  if (og_is(n, ONNX_Reciprocal) ||
      (og_is(n, ONNX_Div) && fm_splat(c, n->inputs[0], &k) && k == 1)) {
    ONode *sq = fm_def(n->inputs[n->n_inputs - 1], ONNX_Sqrt);
    if (!sq || !fm_add(p, n) || !fm_add(p, sq)) return false;
    u = sq->inputs[0];
  } else if (og_is(n, ONNX_Pow) && fm_splat(c, n->inputs[1], &k) && k == -0.5) {
    if (!fm_add(p, n)) return false;
    u = n->inputs[0];
  } else {
    return false;
  }
  ONode *add = fm_take(p, u, ONNX_Add);
  if (!add || add->n_inputs != 2) return false;
  for (int side = 0; side < 2; side++) {
    OValue *e = add->inputs[side], *kv = add->inputs[1 - side];
    if (!fm_splat(c, e, eps) || !fm_fits(e, kv) || !(*eps >= 0) || !isfinite(*eps)) continue;
    OValue *var = kept(c, p, kv, s);
    return var && variance(c, p, var, mean, s);
  }
  return false;
}

/* Flattens the product below v (single-use Muls, Expands looked through). */
static bool factors(FmPat *p, OValue *v, OValue **out, int *n, bool top) {
  v = top ? v : fm_skip_expand(p, v);
  ONode *d = v->producer;
  if ((top || og_single_use(v)) && d && !d->dead && og_is(d, ONNX_Mul) && d->n_inputs == 2) {
    if (!fm_add(p, d)) return false;
    return factors(p, d->inputs[0], out, n, false) && factors(p, d->inputs[1], out, n, false);
  }
  if (*n == MAX_FACTORS) return false;
  out[(*n)++] = v;
  return true;
}

/* The values of constant k over the normalized axes, as a new initializer
 * of the normalized shape; NULL when k varies along other axes. */
static OValue *normalized_const(Ctx *c, OGraph *g, OValue *k, const OValue *x, int axis,
                                double fill) {
  int rank = x->type.rank;
  int64_t dims[MAX_RANK], total = 1;
  for (int i = axis; i < rank; i++) {
    dims[i - axis] = x->type.dims[i].value;
    if (dims[i - axis] < 1 || total > FM_MAX_SCAN / dims[i - axis]) return NULL;
    total *= dims[i - axis];
  }
  double *vals = arena_alloc(c->arena, sizeof(double) * (size_t)total);
  if (k) {
    if (!fm_const_slice(c, k, x, axis, rank, vals)) return NULL;
  } else {
    for (int64_t i = 0; i < total; i++) vals[i] = fill;
  }
  return fm_new_const(c, g, fill == 1 ? "ln_scale" : "ln_bias", x->type.et, rank - axis, dims,
                      vals);
}

static bool try_layernorm(Ctx *c, OModel *m, OGraph *g, ONode *root) {
  (void)m;
  if (!(og_is(root, ONNX_Add) || og_is(root, ONNX_Mul)) || root->n_inputs != 2) return false;
  FmPat p = {.n = 0};
  fm_add(&p, root);
  OValue *bias = NULL, *y = root->outputs[0];
  if (og_is(root, ONNX_Add)) {
    for (int side = 0; side < 2 && !bias; side++)
      if (og_const_data(root->inputs[side]) && !og_const_data(root->inputs[1 - side])) {
        bias = root->inputs[side];
        y = root->inputs[1 - side];
      }
    if (!bias || !og_single_use(y) || !fm_def(y, ONNX_Mul)) return false;
  }
  OValue *fs[MAX_FACTORS];
  int nf = 0;
  if (!factors(&p, y, fs, &nf, true)) return false;
  OValue *d = NULL, *r = NULL, *scale = NULL;
  for (int i = 0; i < nf; i++) {
    if (og_const_data(fs[i])) {
      if (scale) return false;
      scale = fs[i];
    } else if (fm_def(fs[i], ONNX_Sub) && !d) {
      d = fs[i];
    } else if (!r) {
      r = fs[i];
    } else {
      return false;
    }
  }
  if (!d || !r) return false;
  Stats s = {.x = NULL, .n_axes = 0};
  OValue *mean = centered(c, &p, d, &s);
  double eps;
  if (!mean || !inv_std(c, &p, r, mean, &s, &eps)) return false;
  OValue *x = (OValue *)s.x;
  int rank = x->type.rank, axis = (int)s.axes[0];
  /* the axes run from `axis` to the last */
  for (int i = 0; i < s.n_axes; i++)
    if (s.axes[i] != axis + i) return false;
  if (axis + s.n_axes != rank || !fm_same_shape(root->outputs[0], x)) return false;
  if (!fm_kernel_type(x->type.et, FM_F16 | FM_F32 | FM_F64)) return false;
  if ((scale && scale->type.et != x->type.et) || (bias && bias->type.et != x->type.et))
    return false;
  if (!fm_closed(&p, root)) return false;
  OValue *sc = normalized_const(c, g, scale, x, axis, 1);
  OValue *bi = bias ? normalized_const(c, g, bias, x, axis, 0) : NULL;
  if (!sc || (bias && !bi)) return false;
  OValue *in[3] = {x, sc, bi};
  fm_rewrite(c, g, root, ONNX_LayerNormalization, in, bi ? 3 : 2);
  og_attr_int(c, root, "axis", axis);
  og_attr_float(c, root, "epsilon", (float)eps);
  if (x->type.et == ET_F64) og_attr_int(c, root, "stash_type", ET_F64);
  return true;
}

int pass_fuse_layernorm(Ctx *c, OModel *m) {
  fm_each_node(c, m, try_layernorm);
  return 0;
}
