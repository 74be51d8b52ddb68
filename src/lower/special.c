/* special.c - the special functions JAX leaves as CHLO ops: chlo.erf_inv
 * (jax.scipy.special.erfinv, and jax.random.normal, which draws uniform
 * numbers and maps them through erf_inv), chlo.lgamma (gammaln),
 * chlo.digamma, chlo.bessel_i1e (i1e), chlo.zeta (the Hurwitz zeta,
 * jax.scipy.special.zeta) and chlo.polygamma.  ONNX has none of them, so
 * each is a formula of ONNX elementwise ops.
 *
 * The formulas are the approximations XLA expands these ops into, so the
 * numbers follow JAX's closely (not only the true function):
 *   erf_inv  Giles' single-precision approximation ("Approximating the
 *            erfinv function", GPU Computing Gems, 2011): a polynomial in
 *            w = -log(1 - x^2) on two ranges, times x;
 *   lgamma   Lanczos (g = 7, 9 terms) for x >= 0.5, the reflection formula
 *            below;
 *   digamma  the derivative of the same Lanczos sum, and its reflection;
 *   i1e      Chebyshev series on [0, 8] and in 1/x beyond, as XLA's (from
 *            Cephes), with coefficients fitted here (see below).
 * f16 and bf16 compute in f32, as XLA does.  f64 uses Giles'
 * double-precision polynomials for erf_inv (three ranges), and the same
 * Lanczos formulas in f64 (good to ~1e-15 with these terms).
 *
 * Every value built has the shape of the op's result; constants are rank 0
 * and broadcast.
 */
#include "lower/lower.h"

#include <math.h>
#include <string.h>

static const double PI = 3.14159265358979323846;

/* ---- formula builders: ops of one compute type over the result's shape -- */

typedef struct Fx {
  Lower *L;
  ElemType ct;   /* compute type */
  const Type *t; /* the shape (the op's result) */
} Fx;

static OValue *shape_as(Fx *f, OValue *v, ElemType et) {
  og_set_type(f->L->c, v, et, f->t->rank, f->t->dims);
  return v;
}

static OValue *k(Fx *f, double v) { return lw_const_scalar(f->L, f->ct, v); }
static OValue *op1(Fx *f, const char *op, OValue *a) {
  return shape_as(f, lw_op1(f->L, op, a), f->ct);
}
static OValue *op2(Fx *f, const char *op, OValue *a, OValue *b) {
  return shape_as(f, lw_op2(f->L, op, a, b), f->ct);
}
static OValue *test2(Fx *f, const char *op, OValue *a, OValue *b) {
  return shape_as(f, lw_op2(f->L, op, a, b), ET_BOOL);
}
static OValue *where(Fx *f, OValue *c, OValue *a, OValue *b) {
  return shape_as(f, lw_op3(f->L, "Where", c, a, b), f->ct);
}
static OValue *add(Fx *f, OValue *a, OValue *b) { return op2(f, "Add", a, b); }
static OValue *sub(Fx *f, OValue *a, OValue *b) { return op2(f, "Sub", a, b); }
static OValue *mul(Fx *f, OValue *a, OValue *b) { return op2(f, "Mul", a, b); }
static OValue *dvd(Fx *f, OValue *a, OValue *b) { return op2(f, "Div", a, b); }

/* c[0] w^(n-1) + ... + c[n-1], by Horner's rule. */
static OValue *horner(Fx *f, OValue *w, const double *c, int n) {
  OValue *p = k(f, c[0]);
  for (int i = 1; i < n; i++) p = add(f, mul(f, p, w), k(f, c[i]));
  return p;
}

/* log(1 + u), accurate near u = 0 where Log(1 + u) is not:
 * log(a) * (u / (a - 1)) with a = 1 + u rounded (Goldberg), u where a == 1;
 * the ratio first, so that huge u do not overflow. */
static OValue *log1p_of(Fx *f, OValue *u) {
  OValue *a = add(f, k(f, 1), u), *d = sub(f, a, k(f, 1));
  OValue *r = mul(f, op1(f, "Log", a), dvd(f, u, d));
  return where(f, test2(f, "Equal", d, k(f, 0)), u, r);
}

/* The compute type of a special function of et: f16/bf16 in f32.
 * ET_UNDEF when the op takes no such elements. */
static ElemType compute_type(ElemType et) {
  switch (et) {
  case ET_F16: case ET_BF16: case ET_F32: return ET_F32;
  case ET_F64: return ET_F64;
  default: return ET_UNDEF;
  }
}

/* Checks a unary float op; sets up f with x cast to the compute type. */
static int setup(Lower *L, const Op *op, Fx *f, OValue **x) {
  if (op->n_operands != 1 || op->n_results != 1 || op->operands[0]->type.kind != TK_TENSOR)
    return diag_error_op(L->c, H2O_EINPUT, op, "%s takes one tensor and has one result",
                         op->opname);
  ElemType et = op->operands[0]->type.et;
  f->L = L;
  f->ct = compute_type(et);
  f->t = &op->results[0]->type;
  if (f->ct == ET_UNDEF) return lw_unsupported(L, "%s elements", et_mlir_name(et));
  *x = lw_cast(L, lw_get(L, op->operands[0]), f->ct);
  return 0;
}

static int bind(Lower *L, const Op *op, OValue *r) {
  lw_bind(L, op->results[0], lw_cast(L, r, op->results[0]->type.et));
  return 0;
}

/* ---- erf_inv -------------------------------------------------------------- */

/* Giles' coefficients, highest power first: w - 2.5 for w < 5, sqrt(w) - 3
 * beyond (|x| > 0.9966). */
static const double ERFINV_CENTRAL[9] = {
    2.81022636e-08,  3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
    -0.00125372503, -0.00417768164,  0.246640727,     1.50140941};
static const double ERFINV_TAIL[9] = {
    -0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
    -0.0076224613,   0.00943887047,  1.00167406,     2.83297682};

/* Giles' double-precision coefficients (same paper): w - 3.125 for
 * w < 6.25, sqrt(w) - 3.25 for w < 16, sqrt(w) - 5 beyond. */
static const double ERFINV64_CENTRAL[23] = {
    -3.6444120640178196996e-21, -1.685059138182016589e-19,  1.2858480715256400167e-18,
    1.115787767802518096e-17,   -1.333171662854620906e-16,  2.0972767875968561637e-17,
    6.6376381343583238325e-15,  -4.0545662729752068639e-14, -8.1519341976054721522e-14,
    2.6335093153082322977e-12,  -1.2975133253453532498e-11, -5.4154120542946279317e-11,
    1.051212273321532285e-09,   -4.1126339803469836976e-09, -2.9070369957882005086e-08,
    4.2347877827932403518e-07,  -1.3654692000834678645e-06, -1.3882523362786468719e-05,
    0.0001867342080340571352,   -0.00074070253416626697512, -0.0060336708714301490533,
    0.24015818242558961693,     1.6536545626831027356};
static const double ERFINV64_MIDDLE[19] = {
    2.2137376921775787049e-09,  9.0756561938885390979e-08,  -2.7517406297064545428e-07,
    1.8239629214389227755e-08,  1.5027403968909827627e-06,  -4.013867526981545969e-06,
    2.9234449089955446044e-06,  1.2475304481671778723e-05,  -4.7318229009055733981e-05,
    6.8284851459573175448e-05,  2.4031110387097893999e-05,  -0.0003550375203628474796,
    0.00095328937973738049703,  -0.0016882755560235047313,  0.0024914420961078508066,
    -0.0037512085075692412107,  0.005370914553590063617,    1.0052589676941592334,
    3.0838856104922207635};
static const double ERFINV64_TAIL[17] = {
    -2.7109920616438573243e-11, -2.5556418169965252055e-10, 1.5076572693500548083e-09,
    -3.7894654401267369937e-09, 7.6157012080783393804e-09,  -1.4960026627149240478e-08,
    2.9147953450901080826e-08,  -6.7711997758452339498e-08, 2.2900482228026654717e-07,
    -9.9298272942317002539e-07, 4.5260625972231537039e-06,  -1.9681778105531670567e-05,
    7.5995277030017761139e-05,  -0.00021503011930044477347, -0.00013871931833623122026,
    1.0103004648645343977,      4.8499064014085844221};

/* erf_inv(x) = p(w) * x, w = -log1p(-x^2), p chosen by the range of w;
 * +-inf at +-1 (where the tail polynomial overflows), NaN beyond (log1p of
 * < -1) and for NaN. */
int lower_erf_inv(Lower *L, const Op *op) {
  Fx f;
  OValue *x = NULL;
  if (setup(L, op, &f, &x) != 0) return -1;
  OValue *w = op1(&f, "Neg", log1p_of(&f, op1(&f, "Neg", mul(&f, x, x))));
  OValue *sw = op1(&f, "Sqrt", w), *p;
  if (f.ct == ET_F64) {
    OValue *central = horner(&f, sub(&f, w, k(&f, 3.125)), ERFINV64_CENTRAL, 23);
    OValue *middle = horner(&f, sub(&f, sw, k(&f, 3.25)), ERFINV64_MIDDLE, 19);
    OValue *tail = horner(&f, sub(&f, sw, k(&f, 5)), ERFINV64_TAIL, 17);
    p = where(&f, test2(&f, "Less", w, k(&f, 16)), middle, tail);
    p = where(&f, test2(&f, "Less", w, k(&f, 6.25)), central, p);
  } else {
    OValue *central = horner(&f, sub(&f, w, k(&f, 2.5)), ERFINV_CENTRAL, 9);
    OValue *tail = horner(&f, sub(&f, sw, k(&f, 3)), ERFINV_TAIL, 9);
    p = where(&f, test2(&f, "Less", w, k(&f, 5)), central, tail);
  }
  OValue *r = mul(&f, p, x);
  OValue *one = test2(&f, "Equal", op1(&f, "Abs", x), k(&f, 1));
  return bind(L, op, where(&f, one, mul(&f, x, k(&f, INFINITY)), r));
}

/* ---- Lanczos: lgamma and digamma ------------------------------------------ */

/* Gamma(z + 1) = sqrt(2 pi) t^(z + 1/2) e^-t a(z), t = z + g + 1/2,
 * a(z) = c0 + sum c_i / (z + i): Lanczos' approximation with g = 7 and nine
 * terms, good to ~1e-15 for z >= -1/2. */
static const double LANCZOS_G = 7;
static const double LANCZOS[9] = {
    0.99999999999980993,  676.5203681218851,     -1259.1392167224028,
    771.32342877765313,   -176.61502916214059,   12.507343278686905,
    -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7};

/* a(z) and, when da is given, a'(z) = -sum c_i / (z + i)^2. */
static OValue *lanczos_sum(Fx *f, OValue *z, OValue **da) {
  OValue *a = k(f, LANCZOS[0]), *d = NULL;
  for (int i = 1; i < 9; i++) {
    OValue *q = dvd(f, k(f, LANCZOS[i]), add(f, z, k(f, i)));
    a = add(f, a, q);
    if (da) {
      OValue *q2 = dvd(f, q, add(f, z, k(f, i)));
      d = d ? sub(f, d, q2) : op1(f, "Neg", q2);
    }
  }
  if (da) *da = d;
  return a;
}

/* log(t) = log(g + 1/2) + log1p(z / (g + 1/2)): exact in its constant part,
 * where Log(t) would round t first. */
static OValue *lanczos_log_t(Fx *f, OValue *z) {
  double h = LANCZOS_G + 0.5;
  return add(f, k(f, log(h)), log1p_of(f, dvd(f, z, k(f, h))));
}

/* z = x - 1 for x >= 1/2, and z = -x (that is, 1 - x - 1) below, where the
 * reflection formulas need the function at 1 - x. */
static OValue *lanczos_z(Fx *f, OValue *x, OValue *reflect) {
  return where(f, reflect, op1(f, "Neg", x), sub(f, x, k(f, 1)));
}

/* lgamma(x) = log(sqrt(2 pi)) + (z + 1/2) log(t) - t + log(a(z)), written
 * (z + 1/2 - t / log(t)) log(t) so that huge x overflow no sooner than the
 * result does.  Below 1/2: lgamma(x) = log(pi) - log|sin(pi x)| -
 * lgamma(1 - x), with sin(pi x) taken on |x|'s distance to the nearest
 * integer, exact where pi * x would round.  Non-positive integers and
 * +-inf give +inf; NaN stays NaN. */
static OValue *lgamma_of(Fx *fx, OValue *x) {
  Fx f = *fx;
  Lower *L = f.L;
  OValue *reflect = test2(&f, "Less", x, k(&f, 0.5));
  OValue *z = lanczos_z(&f, x, reflect);
  OValue *t = add(&f, z, k(&f, LANCZOS_G + 0.5)), *log_t = lanczos_log_t(&f, z);
  OValue *body = mul(&f, sub(&f, add(&f, z, k(&f, 0.5)), dvd(&f, t, log_t)), log_t);
  OValue *lg = add(&f, add(&f, k(&f, 0.5 * log(2 * PI)), body),
                   op1(&f, "Log", lanczos_sum(&f, z, NULL)));
  OValue *ax = op1(&f, "Abs", x);
  OValue *frac = sub(&f, ax, op1(&f, "Floor", ax));
  OValue *dist = op2(&f, "Min", frac, sub(&f, k(&f, 1), frac));
  OValue *log_sin = op1(&f, "Log", op1(&f, "Sin", mul(&f, dist, k(&f, PI))));
  OValue *reflected = sub(&f, sub(&f, k(&f, log(PI)), log_sin), lg);
  OValue *r = where(&f, reflect, reflected, lg);
  /* +-inf and the poles (0, negative integers) give +inf, as in JAX; the
   * reflection alone gives inf - inf = NaN at poles where lgamma(1 - x)
   * overflows (x = -3e38). */
  OValue *pole = lw_op2(L, "And", test2(&f, "LessOrEqual", x, k(&f, 0)),
                        test2(&f, "Equal", x, op1(&f, "Floor", x)));
  OValue *inf = shape_as(&f, lw_op2(L, "Or", lw_op1(L, "IsInf", x), pole), ET_BOOL);
  return where(&f, inf, k(&f, INFINITY), r);
}

int lower_lgamma(Lower *L, const Op *op) {
  Fx f;
  OValue *x = NULL;
  if (setup(L, op, &f, &x) != 0) return -1;
  return bind(L, op, lgamma_of(&f, x));
}

/* digamma(x) = d/dx lgamma(x) = log(t) - g / t + a'(z) / a(z), the
 * derivative of the Lanczos form (d/dz of (z + 1/2) log(t) - t is
 * log(t) - g / t).  Below 1/2: digamma(x) = digamma(1 - x) - pi cot(pi x),
 * the cotangent taken at x's distance r to the nearest integer (cot has
 * period pi).  Poles (0, negative integers, -inf) give NaN as in JAX; +inf
 * gives +inf. */
static OValue *digamma_of(Fx *fx, OValue *x) {
  Fx f = *fx;
  Lower *L = f.L;
  OValue *da;
  OValue *reflect = test2(&f, "Less", x, k(&f, 0.5));
  OValue *z = lanczos_z(&f, x, reflect);
  OValue *t = add(&f, z, k(&f, LANCZOS_G + 0.5));
  OValue *a = lanczos_sum(&f, z, &da);
  OValue *y = add(&f, sub(&f, lanczos_log_t(&f, z), dvd(&f, k(&f, LANCZOS_G), t)), dvd(&f, da, a));
  OValue *fl = op1(&f, "Floor", x);
  OValue *r = mul(&f, sub(&f, x, op1(&f, "Floor", add(&f, x, k(&f, 0.5)))), k(&f, PI));
  OValue *cot = dvd(&f, mul(&f, op1(&f, "Cos", r), k(&f, PI)), op1(&f, "Sin", r));
  OValue *res = where(&f, reflect, sub(&f, y, cot), y);
  OValue *pole = shape_as(&f, lw_op2(L, "And", test2(&f, "LessOrEqual", x, k(&f, 0)),
                                      test2(&f, "Equal", x, fl)), ET_BOOL);
  res = where(&f, pole, k(&f, NAN), res);
  OValue *pinf = test2(&f, "Equal", x, k(&f, INFINITY));
  return where(&f, pinf, k(&f, INFINITY), res);
}

int lower_digamma(Lower *L, const Op *op) {
  Fx f;
  OValue *x = NULL;
  if (setup(L, op, &f, &x) != 0) return -1;
  return bind(L, op, digamma_of(&f, x));
}

/* ---- zeta and polygamma --------------------------------------------------- */

/* B_2j / (2j)! for j = 1..12: the Euler-Maclaurin coefficients. */
static const double ZETA_EM[12] = {
    1.0 / 12, -1.0 / 720, 1.0 / 30240, -1.0 / 1209600, 1.0 / 47900160,
    -691.0 / 1307674368000.0, 1.0 / 74724249600.0, -3617.0 / 10670622842880000.0,
    43867.0 / 5109094217170944000.0, -174611.0 / 802857662698291200000.0,
    854513.0 / 155112100433309859840000.0, -236364091.0 / 1693824136731743669452800000.0};
#define ZETA_TERMS 10 /* terms summed before the Euler-Maclaurin tail */

/* Hurwitz zeta(x, q) = sum_k (q + k)^-x, as XLA expands chlo.zeta: the
 * first ZETA_TERMS terms, then from a = q + ZETA_TERMS the Euler-Maclaurin
 * tail a^(1-x)/(x-1) + a^-x/2 + sum_j B_2j/(2j)! x(x+1)..(x+2j-2) a^(-x-2j+1),
 * its 12 terms by Horner's rule in (x+2j-1)(x+2j)/a^2.  Then XLA's domain:
 * x = 1 gives +inf, x < 1 NaN; q <= 0 needs an integer x (else NaN), and at
 * the poles (q a non-positive integer) the result is +inf for even x, NaN
 * otherwise. */
static OValue *zeta_of(Fx *fx, OValue *x, OValue *q) {
  Fx f = *fx;
  Lower *L = f.L;
  OValue *negx = op1(&f, "Neg", x);
  OValue *sum = op2(&f, "Pow", q, negx), *a = q;
  for (int i = 1; i < ZETA_TERMS; i++)
    sum = add(&f, sum, op2(&f, "Pow", add(&f, q, k(&f, i)), negx));
  a = add(&f, q, k(&f, ZETA_TERMS));
  OValue *a_negx = op2(&f, "Pow", a, negx);
  OValue *inv_a2 = dvd(&f, k(&f, 1), mul(&f, a, a));
  OValue *h = k(&f, ZETA_EM[11]);
  for (int j = 11; j >= 1; j--) { /* h = c_j + (x+2j-1)(x+2j)/a^2 h */
    OValue *fac = mul(&f, add(&f, x, k(&f, 2 * j - 1)), add(&f, x, k(&f, 2 * j)));
    h = add(&f, k(&f, ZETA_EM[j - 1]), mul(&f, mul(&f, fac, inv_a2), h));
  }
  OValue *tail = mul(&f, a_negx, add(&f, add(&f, dvd(&f, a, sub(&f, x, k(&f, 1))), k(&f, 0.5)),
                                     mul(&f, dvd(&f, x, a), h)));
  OValue *r = add(&f, sum, tail);
  r = where(&f, test2(&f, "Equal", x, k(&f, 1)), k(&f, INFINITY), r);
  r = where(&f, test2(&f, "Less", x, k(&f, 1)), k(&f, NAN), r);
  OValue *q_le0 = test2(&f, "LessOrEqual", q, k(&f, 0));
  OValue *x_frac = test2(&f, "Equal", x, op1(&f, "Floor", x));
  x_frac = shape_as(&f, lw_op1(L, "Not", x_frac), ET_BOOL);
  r = where(&f, shape_as(&f, lw_op2(L, "And", q_le0, x_frac), ET_BOOL), k(&f, NAN), r);
  OValue *pole = shape_as(&f, lw_op2(L, "And", q_le0, test2(&f, "Equal", q, op1(&f, "Floor", q))),
                          ET_BOOL);
  OValue *half = mul(&f, x, k(&f, 0.5));
  OValue *even = test2(&f, "Equal", half, op1(&f, "Floor", half));
  return where(&f, pole, where(&f, even, k(&f, INFINITY), k(&f, NAN)), r);
}

/* Checks a binary float op; sets up f with both operands in the compute type. */
static int setup2(Lower *L, const Op *op, Fx *f, OValue **a, OValue **b) {
  if (op->n_operands != 2 || op->n_results != 1 || op->operands[0]->type.kind != TK_TENSOR)
    return diag_error_op(L->c, H2O_EINPUT, op, "%s takes two tensors and has one result",
                         op->opname);
  ElemType et = op->operands[0]->type.et;
  f->L = L;
  f->ct = compute_type(et);
  f->t = &op->results[0]->type;
  if (f->ct == ET_UNDEF || op->operands[1]->type.et != et)
    return lw_unsupported(L, "%s elements", et_mlir_name(et));
  *a = lw_cast(L, lw_get(L, op->operands[0]), f->ct);
  *b = lw_cast(L, lw_get(L, op->operands[1]), f->ct);
  return 0;
}

int lower_zeta(Lower *L, const Op *op) {
  Fx f;
  OValue *x = NULL, *q = NULL;
  if (setup2(L, op, &f, &x, &q) != 0) return -1;
  return bind(L, op, zeta_of(&f, x, q));
}

/* polygamma(n, x) = (-1)^(n+1) n! zeta(n + 1, x) for n >= 1 (n! as
 * exp(lgamma(n + 1))), digamma(x) for n = 0, NaN where n is not a natural
 * number: XLA's expansion of chlo.polygamma (n comes as a float). */
int lower_polygamma(Lower *L, const Op *op) {
  Fx f;
  OValue *n = NULL, *x = NULL;
  if (setup2(L, op, &f, &n, &x) != 0) return -1;
  OValue *n1 = add(&f, n, k(&f, 1));
  OValue *half = mul(&f, n, k(&f, 0.5));
  OValue *odd = test2(&f, "Equal", half, op1(&f, "Floor", half));
  OValue *sign = where(&f, odd, k(&f, -1), k(&f, 1)); /* n even: -1 */
  OValue *fact = op1(&f, "Exp", lgamma_of(&f, n1));
  OValue *r = mul(&f, mul(&f, sign, fact), zeta_of(&f, n1, x));
  r = where(&f, test2(&f, "Equal", n, k(&f, 0)), digamma_of(&f, x), r);
  OValue *bad = shape_as(&f, lw_op2(L, "Or", test2(&f, "Less", n, k(&f, 0)),
                                     shape_as(&f, lw_op1(L, "Not", test2(&f, "Equal", n,
                                                                         op1(&f, "Floor", n))),
                                              ET_BOOL)),
                         ET_BOOL);
  return bind(L, op, where(&f, bad, k(&f, NAN), r));
}

/* ---- bessel_i1e ----------------------------------------------------------- */

/* Chebyshev coefficients of i1e(x) / x in t = x/4 - 1 for |x| <= 8, and of
 * i1e(x) sqrt(x) in t = 16/|x| - 1 beyond; i1e(x) = e^-|x| I1(x).  Computed
 * with mpmath (40 digits) by interpolation at 64 Chebyshev nodes, cut where
 * the terms fall below 1e-17 of the sum.  f32 takes the first 18 and 8
 * terms (the rest are below its precision). */
static const double I1E_SMALL[28] = {
    0.12629359322181682, -0.17641651835783406, 0.10264365868984709, -0.052945981208094989,
    0.024726449030626516, -0.010564084894626197, 0.0041564229443128882, -0.0015135724506312532,
    0.00051228595616857576, -0.00016176081582589674, 4.7815651075500542e-05,
    -1.3273163656039436e-05, 3.4702513081376785e-06, -8.5687202646954547e-07,
    2.0032947535521353e-07, -4.4450591287963281e-08, 9.3815373864957726e-09,
    -1.8872497517228294e-09, 3.6255902815521172e-10, -6.6634897235020271e-11,
    1.1736186298890901e-11, -1.9839743977649436e-12, 3.2237933659455748e-13,
    -5.0421855047279118e-14, 7.6006842947354077e-15, -1.1055969477353862e-15,
    1.5536319577362005e-16, -2.111421214358166e-17,
};
static const double I1E_LARGE[26] = {
    0.38928811750914005, -0.0097610974913614687, -0.00011058893876262371,
    -3.8825648088776906e-06, -2.5122362378702088e-07, -2.6314688468895196e-08,
    -3.835380385964237e-09, -5.5897434621965838e-10, -1.8974958123505413e-11,
    3.2526035830154884e-11, 1.4125807436613782e-11, 2.0356285441470896e-12,
    -7.1985517762459084e-13, -4.0835511110921974e-13, -2.1015418427726643e-14,
    4.272440016711951e-14, 1.0420276984128802e-14, -3.8144030724370075e-15,
    -1.8803547755107825e-15, 3.3082023109209285e-16, 2.9626289976459501e-16,
    -3.2095259219934238e-17, -4.6503053684893586e-17, 4.4143483230717077e-18,
    7.5172963108421052e-18, -9.3141788673268842e-19,
};

/* c[0] + c[1] T1(t) + ... + c[n-1] T(n-1)(t), n >= 2, by Clenshaw's
 * recurrence b(j) = 2t b(j+1) - b(j+2) + c[j] (stable, unlike the power
 * form of the same polynomial). */
static OValue *chebyshev(Fx *f, OValue *t, const double *c, int n) {
  OValue *t2 = add(f, t, t), *b1 = k(f, c[n - 1]), *b2 = NULL;
  for (int j = n - 2; j >= 1; j--) {
    OValue *b0 = mul(f, t2, b1);
    if (b2) b0 = sub(f, b0, b2);
    b2 = b1;
    b1 = add(f, b0, k(f, c[j]));
  }
  OValue *s = mul(f, t, b1);
  if (b2) s = sub(f, s, b2);
  return add(f, s, k(f, c[0]));
}

/* i1e is odd: its magnitude at |x| times the sign of x, -1 also for -0
 * (1/x < 0) so that -0 and -inf give -0 as in JAX; the sign is applied by
 * Mul, not picked by Where: onnxruntime's Where makes a -0 picked from its
 * true input +0.  NaN stays NaN. */
int lower_bessel_i1e(Lower *L, const Op *op) {
  Fx f;
  OValue *x = NULL;
  if (setup(L, op, &f, &x) != 0) return -1;
  bool f64 = f.ct == ET_F64;
  OValue *a = op1(&f, "Abs", x);
  OValue *t_small = sub(&f, mul(&f, a, k(&f, 0.25)), k(&f, 1));
  OValue *small = mul(&f, chebyshev(&f, t_small, I1E_SMALL, f64 ? 28 : 18), a);
  OValue *t_large = sub(&f, dvd(&f, k(&f, 16), a), k(&f, 1));
  OValue *large = dvd(&f, chebyshev(&f, t_large, I1E_LARGE, f64 ? 26 : 8), op1(&f, "Sqrt", a));
  OValue *magnitude = where(&f, test2(&f, "Greater", a, k(&f, 8)), large, small);
  OValue *negative = shape_as(&f, lw_op2(L, "Or", test2(&f, "Less", x, k(&f, 0)),
                                         test2(&f, "Less", dvd(&f, k(&f, 1), x), k(&f, 0))),
                              ET_BOOL);
  return bind(L, op, mul(&f, magnitude, where(&f, negative, k(&f, -1), k(&f, 1))));
}
