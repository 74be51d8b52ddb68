/* fuse_layernorm.c - layer norms back into ONNX LayerNormalization (opset
 * 17), and RMS norms into RMSNormalization or the chain onnxruntime fuses
 * (below), whichever library wrote them.
 *
 * nnx.LayerNorm reduces over trailing axes A (the last by default, several
 * with reduction_axes) and computes
 *
 *   mean = sum_A(x) / N                      (Div, Mul by 1/N, or ReduceMean)
 *   var  = max(0, sum_A(x*x)/N - mean*mean)  (use_fast_variance, the default)
 *        | sum_A(d*d)/N, d = x - K(mean)     (use_fast_variance=False)
 *   y    = (x - K(mean)) * (rsqrt(K(var) + eps) [* scale]) [+ bias]
 *
 * and the same arithmetic as other libraries spell it: (x - mean) divided by
 * sqrt(var + eps) (jnp.var, Haiku), or distributed as Keras does,
 * x * inv + (bias - mean * inv) with inv = rsqrt(var + eps) * scale.  The
 * additive terms of the root are collected first (Add, Sub, Neg), then the
 * factors of each product, so the order of the operands does not matter;
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

/* The epsilon attribute of LayerNormalization and RMSNormalization is a
 * float32: a float64 norm whose eps float32 cannot hold exactly (0.1,
 * 1e-5) would add another number (0.1 + 1.5e-9), a change of ~1e-9
 * relative where float64 promises 1e-16 (fuzzer, seed 106), so it stays
 * decomposed.  Narrower types compute in float32 anyway. */
static bool eps_fits(ElemType et, double eps) { return et != ET_F64 || (double)(float)eps == eps; }

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

/* var in either form, given the mean value: max(0, E[x^2] - mean^2), or
 * mean((x - K(mean))^2) with or without a max(0, .) or relu (Equinox
 * clamps it, although it cannot be negative). */
static bool variance(Ctx *c, FmPat *p, OValue *var, OValue *mean, Stats *s) {
  ONode *mx = fm_def(var, ONNX_Max), *relu = fm_def(var, ONNX_Relu);
  OValue *clamped = NULL;
  if (relu && og_single_use(var) && fm_add(p, relu)) clamped = relu->inputs[0];
  for (int side = 0; mx && mx->n_inputs == 2 && !clamped && side < 2; side++)
    if (fm_splat_near(c, mx->inputs[side], mx->inputs[1 - side], 0) && og_single_use(var) &&
        fm_add(p, mx))
      clamped = mx->inputs[1 - side];
  ONode *sub = clamped ? fm_def(clamped, ONNX_Sub) : NULL;
  if (sub && sub->n_inputs == 2) {
    /* max(0, E[x^2] - mean^2) */
    fm_add(p, sub);
    ONode *sq = fm_take(p, sub->inputs[1], ONNX_Mul);
    if (!sq || sq->inputs[0] != mean || sq->inputs[1] != mean) return false;
    OValue *msq = sub->inputs[0], *in = mean_input(msq);
    ONode *xx = in ? fm_take(p, in, ONNX_Mul) : NULL;
    if (!xx || xx->inputs[0] != s->x || xx->inputs[1] != s->x) return false;
    return mean_of(c, p, msq, in, s);
  }
  if (clamped) var = clamped;
  /* mean((x - K(mean))^2) */
  OValue *in = mean_input(var);
  ONode *sq = in ? fm_take(p, in, ONNX_Mul) : NULL;
  if (!sq || sq->inputs[0] != sq->inputs[1]) return false;
  Stats s2 = *s;
  return centered(c, p, sq->inputs[0], &s2) == mean && mean_of(c, p, var, in, s);
}

/* r = rsqrt(v + eps) with rsqrt as Reciprocal(Sqrt(.)), 1 / Sqrt(.) or
 * Pow(., -0.5); sqrt(v + eps) when the product divides by r (`divides`).
 * An Unsqueeze or Reshape around it (K after the normalizer) is returned
 * in *k_after for the caller to check.  Returns v, and eps in *eps.  r may
 * have several readers: the distributed form without a scale multiplies
 * both x and the mean by r itself (Keras with gamma = 1 folded away);
 * fm_closed then checks that they all belong to the norm. */
static OValue *rsqrt_of_sum(Ctx *c, FmPat *p, OValue *r, bool divides, ONode **k_after,
                            double *eps) {
  ONode *n = r->producer;
  OValue *u;
  double k;
  *k_after = NULL;
  if (!n || n->dead) return NULL;
  if (og_is(n, ONNX_Unsqueeze) || og_is(n, ONNX_Reshape)) {
    *k_after = n;
    r = n->inputs[0];
    if (!fm_add(p, n) || !(n = r->producer) || n->dead) return NULL;
  }
  if (divides) {
    if (!og_is(n, ONNX_Sqrt) || !fm_add(p, n)) return NULL;
    u = n->inputs[0];
  } else if (og_is(n, ONNX_Reciprocal) ||
             (og_is(n, ONNX_Div) && fm_splat(c, n->inputs[0], &k) && k == 1)) {
    ONode *sq = fm_def(n->inputs[n->n_inputs - 1], ONNX_Sqrt);
    if (!sq || !fm_add(p, n) || !fm_add(p, sq)) return NULL;
    u = sq->inputs[0];
  } else if (og_is(n, ONNX_Pow) && fm_splat(c, n->inputs[1], &k) && k == -0.5) {
    if (!fm_add(p, n)) return NULL;
    u = n->inputs[0];
  } else {
    return NULL;
  }
  ONode *add = fm_take(p, u, ONNX_Add);
  if (!add || add->n_inputs != 2) return NULL;
  for (int side = 0; side < 2; side++) {
    OValue *e = add->inputs[side], *v = add->inputs[1 - side];
    if (fm_splat(c, e, eps) && fm_fits(e, v) && *eps >= 0 && isfinite(*eps)) return v;
  }
  return NULL;
}

/* r = rsqrt(K(var) + eps) or K(rsqrt(var + eps)) (sqrt when the product
 * divides by r); returns eps. */
static bool inv_std(Ctx *c, FmPat *p, OValue *r, bool divides, OValue *mean, Stats *s,
                    double *eps) {
  ONode *k_after;
  OValue *kv = rsqrt_of_sum(c, p, r, divides, &k_after, eps);
  if (!kv) return false;
  if (k_after && (s->keepdims || !fm_reinserts(c, k_after, s->axes, s->n_axes))) return false;
  OValue *var = k_after ? kv : kept(c, p, kv, s);
  return var && variance(c, p, var, mean, s);
}

/* A product as a list of factors: f[0] * f[1] * ... / divisor * sign. */
typedef struct Product {
  OValue *f[MAX_FACTORS];
  int n;
  OValue *divisor; /* at most one: the sqrt a jnp.var norm divides by */
  int sign;
} Product;

/* Flattens the product below v: single-use Muls, Negs (a sign), a Div by a
 * non-constant (the divisor), Expands looked through. */
static bool factors(FmPat *p, OValue *v, Product *out, bool top) {
  v = top ? v : fm_skip_expand(p, v);
  ONode *d = v->producer;
  bool open = (top || og_single_use(v)) && d && !d->dead;
  if (open && og_is(d, ONNX_Mul) && d->n_inputs == 2) {
    if (!fm_add(p, d)) return false;
    return factors(p, d->inputs[0], out, false) && factors(p, d->inputs[1], out, false);
  }
  if (open && og_is(d, ONNX_Neg) && d->n_inputs == 1) {
    out->sign = -out->sign;
    return fm_add(p, d) && factors(p, d->inputs[0], out, false);
  }
  if (open && og_is(d, ONNX_Div) && d->n_inputs == 2 && !out->divisor &&
      !og_const_data(d->inputs[1])) {
    out->divisor = d->inputs[1];
    return fm_add(p, d) && factors(p, d->inputs[0], out, false);
  }
  if (out->n == MAX_FACTORS) return false;
  out->f[out->n++] = v;
  return true;
}

/* The additive terms of v: single-use Add, Sub and Neg flattened (the root
 * itself always), each with its sign. */
#define MAX_TERMS 4
typedef struct Terms {
  OValue *v[MAX_TERMS];
  int sign[MAX_TERMS];
  int n;
} Terms;

static bool terms(FmPat *p, OValue *v, int sign, Terms *out, bool top) {
  ONode *d = v->producer;
  bool open = (top || og_single_use(v)) && d && !d->dead && !og_const_data(v);
  if (open && (og_is(d, ONNX_Add) || og_is(d, ONNX_Sub)) && d->n_inputs == 2) {
    return fm_add(p, d) && terms(p, d->inputs[0], sign, out, false) &&
           terms(p, d->inputs[1], og_is(d, ONNX_Sub) ? -sign : sign, out, false);
  }
  if (open && og_is(d, ONNX_Neg) && d->n_inputs == 1 && !top)
    return fm_add(p, d) && terms(p, d->inputs[0], -sign, out, false);
  if (out->n == MAX_TERMS) return false;
  out->v[out->n] = v;
  out->sign[out->n++] = sign;
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
  /* a weight already of the normalized shape is used as it is: it keeps
   * its name ("norm.scale") */
  bool fits = k && k->type.rank == rank - axis && k->type.et == x->type.et;
  for (int i = 0; fits && i < rank - axis; i++) fits = k->type.dims[i].value == dims[i];
  if (fits) return k;
  double *vals = arena_alloc(c->arena, sizeof(double) * (size_t)total);
  if (k) {
    if (!fm_const_slice(c, k, x, axis, rank, vals)) return NULL;
  } else {
    for (int64_t i = 0; i < total; i++) vals[i] = fill;
  }
  OValue *v = fm_new_const(c, g, fill == 1 ? "ln_scale" : "ln_bias", x->type.et, rank - axis,
                           dims, vals);
  v->is_param = k && k->is_param; /* the weight in another shape: never dropped */
  fm_name_after(c, v, k, "reshaped");
  return v;
}

/* Splits a product's factors into one constant (the scale), the
 * normalizer r and, when `want_d`, the centered value d = x - K(mean). */
static bool split_factors(const Product *pr, OValue **scale, OValue **r, OValue **d) {
  for (int i = 0; i < pr->n; i++) {
    OValue *f = pr->f[i];
    if (og_const_data(f)) {
      if (*scale) return false;
      *scale = f;
    } else if (d && !*d && fm_def(f, ONNX_Sub)) {
      *d = f;
    } else if (!*r && !pr->divisor) {
      *r = f;
    } else {
      return false;
    }
  }
  if (pr->divisor) *r = pr->divisor;
  return *r != NULL;
}

/* The distributed form: x * inv - K(mean) * inv [+ bias], both products
 * reading one inv = r [* scale].  Returns the mean value (s learnt). */
static OValue *distributed(Ctx *c, FmPat *p, const Terms *t, Stats *s, OValue **scale,
                           OValue **r, bool *divides) {
  if (t->n != 2) return NULL;
  Product pr[2] = {{.sign = 1}, {.sign = 1}};
  for (int k = 0; k < 2; k++)
    if (!factors(p, t->v[k], &pr[k], true) || pr[k].n != 2 || pr[k].divisor) return NULL;
  /* the shared factor: inv */
  OValue *inv = NULL;
  int other[2];
  for (int i = 0; i < 2 && !inv; i++)
    for (int j = 0; j < 2 && !inv; j++)
      if (pr[0].f[i] == pr[1].f[j]) {
        inv = pr[0].f[i];
        other[0] = 1 - i;
        other[1] = 1 - j;
      }
  if (!inv) return NULL;
  /* + x * inv and - mean * inv, in either order */
  int pos = t->sign[0] * pr[0].sign > 0 ? 0 : 1;
  if (t->sign[pos] * pr[pos].sign <= 0 || t->sign[1 - pos] * pr[1 - pos].sign >= 0) return NULL;
  OValue *x = pr[pos].f[other[pos]];
  OValue *mean = fm_skip_expand(p, pr[1 - pos].f[other[1 - pos]]);
  ONode *re = mean->producer;
  bool reinsert = re && !re->dead && (og_is(re, ONNX_Unsqueeze) || og_is(re, ONNX_Reshape));
  if (reinsert) mean = re->inputs[0];
  s->x = x;
  if (!mean_of(c, p, mean, x, s) || reinsert == s->keepdims) return NULL;
  if (reinsert && (!fm_reinserts(c, re, s->axes, s->n_axes) || !fm_add(p, re))) return NULL;
  Product ip = {.sign = 1};
  if (!factors(p, inv, &ip, true) || ip.sign < 0 || !split_factors(&ip, scale, r, NULL))
    return NULL;
  *divides = ip.divisor != NULL;
  return mean;
}

static bool try_layernorm(Ctx *c, OModel *m, OGraph *g, ONode *root) {
  (void)m;
  if (!(og_is(root, ONNX_Add) || og_is(root, ONNX_Sub) || og_is(root, ONNX_Mul) || og_is(root, ONNX_Div)) ||
      root->n_inputs != 2)
    return false;
  FmPat p = {.n = 0};
  Terms t = {.n = 0};
  if (!terms(&p, root->outputs[0], 1, &t, true)) return false;
  /* at most one constant term, added: the bias */
  OValue *bias = NULL;
  for (int k = 0; k < t.n; k++) {
    if (!og_const_data(t.v[k])) continue;
    if (bias || t.sign[k] < 0) return false;
    bias = t.v[k];
    t.v[k] = t.v[--t.n];
    t.sign[k] = t.sign[t.n];
    k--;
  }
  OValue *scale = NULL, *r = NULL, *mean = NULL;
  bool divides = false;
  Stats s = {.x = NULL, .n_axes = 0};
  if (t.n == 1) {
    /* (x - K(mean)) * r [* scale], or (x - K(mean)) / sqrt(..) [* scale] */
    Product pr = {.sign = 1};
    OValue *d = NULL;
    if (!factors(&p, t.v[0], &pr, true) || pr.sign * t.sign[0] < 0 ||
        !split_factors(&pr, &scale, &r, &d) || !d)
      return false;
    divides = pr.divisor != NULL;
    mean = centered(c, &p, d, &s);
  } else {
    mean = distributed(c, &p, &t, &s, &scale, &r, &divides);
  }
  double eps;
  if (!mean || !inv_std(c, &p, r, divides, mean, &s, &eps)) return false;
  OValue *x = (OValue *)s.x;
  int rank = x->type.rank, axis = (int)s.axes[0];
  /* the axes run from `axis` to the last */
  for (int i = 0; i < s.n_axes; i++)
    if (s.axes[i] != axis + i) return false;
  if (axis + s.n_axes != rank || !fm_same_shape(root->outputs[0], x)) return false;
  if (!fm_kernel_type(x->type.et, FM_F16 | FM_F32 | FM_F64) || !eps_fits(x->type.et, eps))
    return false;
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

/* ---- RMS norms ----------------------------------------------------------
 *
 *   y = x * rsqrt(mean_A(x*x) + eps) [* scale]     (Haiku, Equinox, nnx,
 *       x / sqrt(mean_A(x^2) + eps)  [* scale]      Keras, Llama, Gemma)
 *
 * with the same spellings of the mean, of rsqrt and of K(.) as the layer
 * norm (K may also come after the rsqrt).  At opset 23 this becomes ONNX
 * RMSNormalization; before, the form onnxruntime fuses into its own
 * SimplifiedLayerNormalization kernel when it loads the model:
 * Pow(x, 2) -> ReduceMean -> Add(eps) -> Sqrt -> Div(x, .) [-> Mul(., scale)].
 */

/* v = x * x or Pow(x, 2). */
static bool squares(Ctx *c, FmPat *p, const OValue *v, const OValue *x) {
  ONode *n = v->producer;
  double k;
  if (!n || n->dead || n->n_inputs != 2 || n->inputs[0] != x) return false;
  if (og_is(n, ONNX_Mul) && n->inputs[1] == x) return fm_add(p, n);
  return og_is(n, ONNX_Pow) && fm_splat(c, n->inputs[1], &k) && k == 2 && fm_add(p, n);
}

/* r = rsqrt(K(ms) + eps) or K(rsqrt(ms + eps)) (sqrt when the product
 * divides by r), ms = mean_A(x^2).  Learns the axes into s; returns eps. */
static bool inv_rms(Ctx *c, FmPat *p, OValue *r, bool divides, const OValue *x, Stats *s,
                    double *eps) {
  ONode *k_after;
  OValue *ms = rsqrt_of_sum(c, p, r, divides, &k_after, eps);
  if (!ms) return false;
  ms = fm_skip_expand(p, ms);
  ONode *k_before = ms->producer;
  if (k_after || !k_before || k_before->dead ||
      !(og_is(k_before, ONNX_Unsqueeze) || og_is(k_before, ONNX_Reshape)))
    k_before = NULL;
  if (k_before) ms = k_before->inputs[0];
  OValue *in = mean_input(ms);
  s->x = x;
  if (!in || !squares(c, p, in, x) || !mean_of(c, p, ms, in, s)) return false;
  ONode *kn = k_after ? k_after : k_before;
  if ((kn != NULL) == s->keepdims) return false;
  return !kn || (fm_reinserts(c, kn, s->axes, s->n_axes) && fm_add(p, kn));
}

/* A new node of the chain in front of root, typed like `like` with the
 * reduced axes (when any) of size 1. */
static OValue *chain_node(Ctx *c, OGraph *g, const ONode *root, OnnxOp op, OValue *const *in,
                          int n_in, const OValue *like, const Stats *reduced) {
  ONode *n = og_node(c, g, onnx_op_info[op].name, in, n_in, 1);
  n->origin = root->origin;
  OValue *v = n->outputs[0];
  int rank = like->type.rank;
  v->type = (OType){like->type.et, rank, arena_alloc(c->arena, sizeof(ODim) * (size_t)(rank + 1))};
  for (int i = 0; i < rank; i++) v->type.dims[i] = like->type.dims[i];
  for (int i = 0; reduced && i < reduced->n_axes; i++)
    v->type.dims[reduced->axes[i]] = (ODim){1, NULL};
  return v;
}

static bool try_rmsnorm(Ctx *c, OModel *m, OGraph *g, ONode *root) {
  if (!(og_is(root, ONNX_Mul) || og_is(root, ONNX_Div)) || root->n_inputs != 2) return false;
  FmPat p = {.n = 0};
  Product pr = {.sign = 1};
  if (!factors(&p, root->outputs[0], &pr, true) || pr.sign < 0) return false;
  OValue *scale = NULL, *vars[2];
  int nv = 0;
  for (int i = 0; i < pr.n; i++) {
    if (og_const_data(pr.f[i])) {
      if (scale) return false;
      scale = pr.f[i];
    } else if (nv < 2) {
      vars[nv++] = pr.f[i];
    } else {
      return false;
    }
  }
  if (nv != (pr.divisor ? 1 : 2)) return false;
  for (int pick = 0; pick < nv; pick++) {
    OValue *x = vars[pick], *r = pr.divisor ? pr.divisor : vars[1 - pick];
    FmPat q = p;
    Stats s = {.x = NULL, .n_axes = 0};
    double eps;
    if (!inv_rms(c, &q, r, pr.divisor != NULL, x, &s, &eps)) continue;
    int rank = x->type.rank, axis = (int)s.axes[0];
    for (int i = 0; i < s.n_axes; i++)
      if (s.axes[i] != axis + i) return false;
    if (axis + s.n_axes != rank || !fm_same_shape(root->outputs[0], x)) return false;
    if (!fm_kernel_type(x->type.et, FM_F16 | FM_F32 | FM_F64) || !eps_fits(x->type.et, eps))
      return false;
    if ((scale && scale->type.et != x->type.et) || !fm_closed(&q, root)) return false;
    OValue *sc = scale ? normalized_const(c, g, scale, x, axis, 1) : NULL;
    if (scale && !sc) return false;
    ElemType et = x->type.et;
    if (m->opset >= 23) {
      if (!sc) sc = normalized_const(c, g, NULL, x, axis, 1);
      if (!sc) return false;
      OValue *in[2] = {x, sc};
      fm_rewrite(c, g, root, ONNX_RMSNormalization, in, 2);
      og_attr_int(c, root, "axis", axis);
      og_attr_float(c, root, "epsilon", (float)eps);
      if (et == ET_F64) og_attr_int(c, root, "stash_type", ET_F64);
      return true;
    }
    double two = 2;
    OValue *in[2] = {x, fm_new_const(c, g, "two", et, 0, NULL, &two)};
    OValue *sq = chain_node(c, g, root, ONNX_Pow, in, 2, x, NULL);
    ONode *mean;
    OValue *ms;
    if (m->opset >= 18) {
      OValue *rin[2] = {sq, og_init_i64s(c, g, "axes", s.n_axes, s.axes)};
      ms = chain_node(c, g, root, ONNX_ReduceMean, rin, 2, x, &s);
      mean = ms->producer;
    } else {
      ms = chain_node(c, g, root, ONNX_ReduceMean, &sq, 1, x, &s);
      mean = ms->producer;
      og_attr_ints(c, mean, "axes", s.axes, s.n_axes);
    }
    og_attr_int(c, mean, "keepdims", 1);
    OValue *ein[2] = {ms, fm_new_const(c, g, "eps", et, 0, NULL, &eps)};
    OValue *var = chain_node(c, g, root, ONNX_Add, ein, 2, ms, NULL);
    OValue *rms = chain_node(c, g, root, ONNX_Sqrt, &var, 1, ms, NULL);
    OValue *din[2] = {x, rms};
    if (!sc) {
      fm_rewrite(c, g, root, ONNX_Div, din, 2);
    } else {
      OValue *min[2] = {chain_node(c, g, root, ONNX_Div, din, 2, x, NULL), sc};
      fm_rewrite(c, g, root, ONNX_Mul, min, 2);
    }
    return true; /* the new nodes are at the end: pass_fuse_layernorm re-sorts */
  }
  return false;
}

/* Nodes in g and its subgraphs, dead ones included (passes mark nodes dead,
 * they never remove them from the lists). */
static long count_nodes(const OGraph *g) {
  long total = g->nodes.len;
  for (int i = 0; i < g->nodes.len; i++) {
    const ONode *n = g->nodes.items[i];
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH) total += count_nodes(n->attrs[j].graph);
  }
  return total;
}

/* try_rmsnorm appends the nodes of its chain at the end of the graph. */
static void sort_all(Ctx *c, OGraph *g) {
  og_toposort(c, g);
  for (int i = 0; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    for (int j = 0; j < n->n_attrs && !n->dead; j++)
      if (n->attrs[j].kind == OA_GRAPH) sort_all(c, n->attrs[j].graph);
  }
}

int pass_fuse_layernorm(Ctx *c, OModel *m) {
  fm_each_node(c, m, try_layernorm);
  long before = count_nodes(m->graph);
  fm_each_node(c, m, try_rmsnorm);
  if (count_nodes(m->graph) != before) sort_all(c, m->graph); /* only after a chain */
  return 0;
}
