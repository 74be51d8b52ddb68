/* fuse_gelu.c - the two GELU formulas back into ONNX Gelu (opset 20).
 *
 *   exact  x * 0.5 * (1 + erf(x / sqrt 2))        -> Gelu(x)
 *   tanh   x * 0.5 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))
 *                                                  -> Gelu(x, approximate="tanh")
 *
 * jax.nn.gelu(approximate=False) is 0.5x * erfc(-x * 0.7071), and chlo.erfc
 * lowers to 1 - Erf, so the exact form arrives as
 *   Mul(Mul(0.5, x), Sub(1, Erf(Mul(Neg(x), 0.7071))));
 * approximate=True (flax's nnx.gelu default) as
 *   Mul(x, Mul(0.5, Add(1, Tanh(Mul(0.7978, Add(x, Mul(0.044715, x*x*x))))))).
 * Rather than list arrangements, the root's product is flattened into its
 * factors (x, constants, and one 1 +- erf/tanh term), and the argument of
 * erf/tanh is read as a polynomial in x of degree <= 3 whose coefficients
 * must be those of the formula within 1e-6 (relative).  Anything else - an
 * erf of 0.8x, a missing half - is left alone.  So is float64: onnxruntime
 * computes its Gelu at float32 precision.  Before opset 20 there is no Gelu
 * and the decomposition stays.
 */
#include "passes/passes.h"

#include <math.h>
#include <string.h>

#define MAX_FACTORS 6

/* The intermediate v may be folded into the pattern: read only once. */
/* Flattens the product tree below v into factors; divisions by a constant
 * become the factor 1/k (a constant recorded in *scale). */
static bool factors(Ctx *c, FmPat *p, OValue *v, OValue **out, int *n, double *scale,
                    bool top) {
  ONode *d = v->producer;
  double k;
  if ((top || og_single_use(v)) && d && !d->dead && d->n_inputs == 2) {
    if (og_is(d, ONNX_Mul)) {
      if (!fm_add(p, d)) return false;
      return factors(c, p, d->inputs[0], out, n, scale, false) &&
             factors(c, p, d->inputs[1], out, n, scale, false);
    }
    if (og_is(d, ONNX_Div) && fm_splat(c, d->inputs[1], &k) && k != 0) {
      if (!fm_add(p, d)) return false;
      *scale /= k;
      return factors(c, p, d->inputs[0], out, n, scale, false);
    }
  }
  if (*n == MAX_FACTORS) return false;
  out[(*n)++] = v;
  return true;
}

/* A polynomial of degree <= 3 in x. */
typedef struct Poly {
  double a[4];
} Poly;

static bool poly_of(Ctx *c, FmPat *p, const OValue *v, const OValue *x, Poly *r, int depth);

static bool poly_binary(Ctx *c, FmPat *p, ONode *d, const OValue *x, Poly *r, int depth) {
  Poly u, w;
  double k;
  OValue *a = d->inputs[0], *b = d->inputs[1];
  memset(r, 0, sizeof *r);
  if (og_is(d, ONNX_Add) || og_is(d, ONNX_Sub)) {
    if (!poly_of(c, p, a, x, &u, depth) || !poly_of(c, p, b, x, &w, depth)) return false;
    double sign = og_is(d, ONNX_Sub) ? -1 : 1;
    for (int i = 0; i < 4; i++) r->a[i] = u.a[i] + sign * w.a[i];
    return true;
  }
  if (og_is(d, ONNX_Div)) {
    if (!fm_splat(c, b, &k) || k == 0 || !poly_of(c, p, a, x, &u, depth)) return false;
    for (int i = 0; i < 4; i++) r->a[i] = u.a[i] / k;
    return true;
  }
  if (og_is(d, ONNX_Mul)) {
    if (!poly_of(c, p, a, x, &u, depth) || !poly_of(c, p, b, x, &w, depth)) return false;
    for (int i = 0; i < 4; i++)
      for (int j = 0; j < 4; j++) {
        double t = u.a[i] * w.a[j];
        if (t == 0) continue;
        if (i + j > 3) return false;
        r->a[i + j] += t;
      }
    return true;
  }
  if (og_is(d, ONNX_Pow)) {
    /* x ** 3 as Pow with a constant integer exponent 1..3 */
    if (!fm_splat(c, b, &k) || (k != 1 && k != 2 && k != 3)) return false;
    if (!poly_of(c, p, a, x, &u, depth)) return false;
    Poly acc = {{1, 0, 0, 0}};
    for (int e = 0; e < (int)k; e++) {
      Poly nx = {{0, 0, 0, 0}};
      for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
          double t = acc.a[i] * u.a[j];
          if (t == 0) continue;
          if (i + j > 3) return false;
          nx.a[i + j] += t;
        }
      acc = nx;
    }
    *r = acc;
    return true;
  }
  return false;
}

static bool poly_of(Ctx *c, FmPat *p, const OValue *v, const OValue *x, Poly *r, int depth) {
  double k;
  memset(r, 0, sizeof *r);
  if (v == x) {
    r->a[1] = 1;
    return true;
  }
  if (fm_splat(c, v, &k) && fm_fits(v, x)) {
    r->a[0] = k;
    return isfinite(k);
  }
  ONode *d = v->producer;
  if (depth > 12 || !d || d->dead || !fm_add(p, d)) return false;
  if (og_is(d, ONNX_Neg) && d->n_inputs == 1) {
    Poly u;
    if (!poly_of(c, p, d->inputs[0], x, &u, depth + 1)) return false;
    for (int i = 0; i < 4; i++) r->a[i] = -u.a[i];
    return true;
  }
  if (d->n_inputs != 2) return false;
  return poly_binary(c, p, d, x, r, depth + 1);
}

static bool poly_is(const Poly *q, double a1, double a3) {
  return q->a[0] == 0 && q->a[2] == 0 && fm_near(q->a[1], a1) &&
         (a3 == 0 ? q->a[3] == 0 : fm_near(q->a[3], a3));
}

/* t is 1 + f(z) (sign +1) or 1 - f(z) (sign -1) with f = Erf or Tanh; *z
 * is the argument of f. */
static bool one_plus(Ctx *c, FmPat *p, const OValue *x, OValue *t, OnnxOp f, OValue **z,
                     double *sign) {
  ONode *d = t->producer;
  if (!d || d->dead || d->n_inputs != 2 || !og_single_use(t)) return false;
  bool add = og_is(d, ONNX_Add), sub = og_is(d, ONNX_Sub);
  if (!add && !sub) return false;
  for (int side = 0; side < (add ? 2 : 1); side++) {
    OValue *one = d->inputs[side], *fv = d->inputs[1 - side];
    ONode *fn = fm_def(fv, f);
    if (!fn || !og_single_use(fv) || !fm_splat_near(c, one, x, 1.0)) continue;
    if (!fm_add(p, d) || !fm_add(p, fn)) return false;
    *z = fn->inputs[0];
    *sign = sub ? -1 : 1;
    return true;
  }
  return false;
}

static bool try_gelu(Ctx *c, OModel *m, OGraph *g, ONode *root) {
  if (m->opset < 20 || !og_is(root, ONNX_Mul) || root->n_inputs != 2) return false;
  OValue *out = root->outputs[0];
  FmPat p = {.n = 0};
  OValue *fs[MAX_FACTORS];
  int nf = 0;
  double scale = 1;
  fm_add(&p, root);
  if (!factors(c, &p, out, fs, &nf, &scale, true)) return false;
  /* The factors: one 1 +- erf/tanh term, x once, and constants making 0.5. */
  for (int ti = 0; ti < nf; ti++) {
    for (int kind = 0; kind < 2; kind++) {
      OnnxOp f = kind == 0 ? ONNX_Erf : ONNX_Tanh;
      OValue *x = NULL;
      double k = scale, sign = 0;
      bool ok = true;
      for (int i = 0; i < nf && ok; i++) {
        double v;
        if (i == ti) continue;
        if (fm_splat(c, fs[i], &v)) k *= v;
        else if (!x) x = fs[i];
        else ok = false;
      }
      if (!ok || !x || !fm_near(k, 0.5) || !fm_same_shape(out, x)) continue;
      /* onnxruntime's float64 Gelu (tanh) is only accurate to ~4e-7 relative,
       * float32's precision: float64 keeps its decomposition. */
      if (!fm_kernel_type(x->type.et, FM_F16 | FM_F32)) continue;
      for (int i = 0; i < nf; i++)
        if (i != ti && fs[i] != x && !fm_fits(fs[i], x)) ok = false;
      FmPat q = p;
      OValue *z;
      Poly poly;
      if (!ok || !one_plus(c, &q, x, fs[ti], f, &z, &sign) || !poly_of(c, &q, z, x, &poly, 0))
        continue;
      const double sqrt_half = 0.70710678118654752440, sqrt_2_pi = 0.79788456080286535588;
      bool match = kind == 0 ? poly_is(&poly, sign * sqrt_half, 0)
                             : sign > 0 && poly_is(&poly, sqrt_2_pi, sqrt_2_pi * 0.044715);
      if (!match || !fm_closed(&q, root)) continue;
      fm_rewrite(c, g, root, ONNX_Gelu, &x, 1);
      if (kind == 1) og_attr_string(c, root, "approximate", "tanh");
      return true;
    }
  }
  return false;
}

int pass_fuse_gelu(Ctx *c, OModel *m) {
  fm_each_node(c, m, try_gelu);
  return 0;
}
