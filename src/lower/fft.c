/* fft.c - stablehlo.fft (jnp.fft): FFT, IFFT, RFFT and IRFFT over the last
 * one to three axes, on complex tensors as real pairs (complex.c).
 *
 * A transform over several axes is one 1-D transform per axis: FFT and
 * IFFT over each axis; RFFT first over the last axis (real -> the n/2 + 1
 * bins of the one-sided spectrum), then FFT over the others; IRFFT first
 * IFFT over the leading axes, then the last axis back to n reals.
 *
 * A 1-D transform along one axis is ONNX DFT (inverse = 1 scales by 1/n as
 * jnp.fft.ifft does; onesided = 1 for RFFT, from reals with a trailing axis
 * of 1) when the length is a power of two.  onnxruntime 1.32's DFT is a
 * radix-2 FFT for those lengths, accurate to rounding; for other lengths it
 * falls back to a direct sum whose twiddle factors lose accuracy (measured
 * in f32: 7e-4 absolute error at n = 100, where the FFT's own rounding is
 * 1e-6; relative errors of 0.1 to 2.7 at n = 600 to 1536).  So other
 * lengths never reach it: up to MAX_MATMUL_N they multiply by the DFT
 * matrix (computed in double, a constant of 4 n^2 numbers), a MatMul over
 * the pairs exact to the rounding of an n-term sum; longer ones are
 * Bluestein's convolution of radix-2 DFTs (below).  IRFFT rebuilds the
 * whole spectrum from its Hermitian symmetry (X[n-k] = conj X[k]), takes
 * the inverse DFT and keeps the real part, which ignores the imaginary
 * parts of X[0] and X[n/2] as JAX's does; the MatMul form reads only what a
 * real result depends on, the same way.
 *
 * The DFT's axis: an attribute in opset 17 (whose default, 1, we never
 * rely on), an input in opset 20 and later.
 */
#include "lower/complex.h"

#include <math.h>
#include <string.h>

/* The longest non-power-of-two axis transformed by a MatMul (a constant of
 * 4 n^2 numbers: 4 MiB in f32 at n = 512). */
#define MAX_MATMUL_N 512

typedef enum Dir { C2C_FWD, C2C_INV, R2C, C2R } Dir;

static bool pow2(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

/* t with dims[axis] = n (and element type et). */
static Type with_dim(Lower *L, const Type *t, int axis, int64_t n, ElemType et) {
  Type r = *t;
  int64_t *dims = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(t->rank + 1));
  memcpy(dims, t->dims, sizeof(int64_t) * (size_t)t->rank);
  dims[axis] = n;
  r.dims = dims;
  r.et = et;
  return r;
}

static OValue *typed_as(Lower *L, OValue *v, const Type *t) {
  og_type_from_hlo(L->c, v, t); /* pairs for a complex t */
  return v;
}

/* DFT of x along axis (x: pairs, or for R2C reals with a trailing 1). */
static OValue *dft_node(Lower *L, OValue *x, int64_t axis, bool inverse, bool onesided) {
  ONode *n;
  if (L->opset >= 20) {
    OValue *in[3] = {x, NULL, lw_const_scalar(L, ET_I64, (double)axis)};
    n = lw_node(L, "DFT", 3, in, 1);
  } else {
    n = lw_node(L, "DFT", 1, &x, 1);
    og_attr_int(L->c, n, "axis", axis);
  }
  if (inverse) og_attr_int(L->c, n, "inverse", 1);
  if (onesided) og_attr_int(L->c, n, "onesided", 1);
  return n->outputs[0];
}

/* The DFT matrix of a MatMul over the flattened pairs (rows: the input
 * numbers of one signal, columns: the output ones); twiddle angles from
 * (j k mod n), in double, scaled as each direction needs. */
static OValue *dft_matrix(Lower *L, Dir dir, int64_t n, ElemType et) {
  int64_t m = n / 2 + 1;
  int64_t rows = dir == R2C ? n : dir == C2R ? 2 * m : 2 * n;
  int64_t cols = dir == R2C ? 2 * m : dir == C2R ? n : 2 * n;
  size_t size = et_size(et);
  uint8_t *buf = arena_alloc(L->c->arena, (size_t)(rows * cols) * size);
  const double two_pi = 6.283185307179586476925286766559;
  double sign = dir == C2C_FWD || dir == R2C ? -1.0 : 1.0;
  double scale = dir == C2C_INV || dir == C2R ? 1.0 / (double)n : 1.0;
#define W(r, c, v) elem_store(buf, et, (r) * cols + (c), (v))
  int64_t n_in = dir == R2C ? n : dir == C2R ? m : n, n_out = dir == R2C ? m : n;
  for (int64_t j = 0; j < n_in; j++)
    for (int64_t k = 0; k < n_out; k++) {
      double th = sign * two_pi * (double)((j * k) % n) / (double)n;
      double c = cos(th) * scale, s = sin(th) * scale;
      switch (dir) {
      case C2C_FWD: case C2C_INV: /* (re + i im)(c + i s) */
        W(2 * j, 2 * k, c); W(2 * j + 1, 2 * k, -s);
        W(2 * j, 2 * k + 1, s); W(2 * j + 1, 2 * k + 1, c);
        break;
      case R2C:
        W(j, 2 * k, c); W(j, 2 * k + 1, s);
        break;
      case C2R: { /* bin j, output k: w_j Re(X_j e^{i th}), w_j = 2 but at 0 and n/2 */
        double w = j == 0 || 2 * j == n ? 1.0 : 2.0;
        W(2 * j, k, w * c); W(2 * j + 1, k, -w * s);
        break;
      }
      }
    }
#undef W
  int64_t dims[2] = {rows, cols};
  return lw_const_data(L, et, 2, dims, (Data){DATA_RAW, buf, (size_t)(rows * cols) * size});
}

/* The transform of x (HLO type ti, complex or for R2C real) along axis a
 * (of ti) by a MatMul: the axis moved before the pairs, flattened with
 * them, multiplied, and moved back.  Returns the value of type `to`. */
static OValue *dft_matmul(Lower *L, OValue *x, const Type *ti, int a, Dir dir, int64_t n,
                          const Type *to) {
  int r = ti->rank;
  ElemType et = dir == R2C ? ti->et : et_complex_part(ti->et);
  Type pin = type_as_pairs(L->c->arena, ti);
  int64_t perm[MAX_RANK + 1], inv[MAX_RANK + 1], tdims[MAX_RANK + 1];
  int k = 0;
  for (int i = 0; i < r; i++)
    if (i != a) perm[k++] = i;
  perm[k++] = a;
  if (dir != R2C) perm[k++] = r; /* the pairs stay last */
  int rin = k;
  x = lw_transpose(L, x, et, rin, pin.dims, perm, tdims);
  /* leading axes copied (0), the signal (and its pairs) as one axis */
  int64_t shape[MAX_RANK + 1];
  for (int i = 0; i < r - 1; i++) shape[i] = 0;
  int64_t m = n / 2 + 1;
  shape[r - 1] = dir == R2C ? n : dir == C2R ? 2 * m : 2 * n;
  x = lw_op2(L, "Reshape", x, lw_const_i64s(L, r, shape));
  x = lw_op2(L, "MatMul", x, dft_matrix(L, dir, n, et));
  int64_t out_n = dir == C2R ? n : dir == R2C ? m : n;
  int rout = dir == C2R ? r : r + 1;
  shape[r - 1] = out_n;
  shape[r] = 2;
  x = lw_op2(L, "Reshape", x, lw_const_i64s(L, rout, shape));
  /* back: x's axis i is the result's axis perm[i] (the pairs stay last) */
  Type pout = type_as_pairs(L->c->arena, to);
  for (int i = 0; i < rout; i++) {
    int64_t p = i < r ? perm[i] : r;
    inv[p] = i;
    tdims[i] = pout.dims[p];
  }
  int64_t odims[MAX_RANK + 1];
  og_set_type(L->c, x, pout.et, rout, tdims);
  x = lw_transpose(L, x, pout.et, rout, tdims, inv, odims);
  return typed_as(L, x, to);
}

/* conj(x) of pairs: times [1, -1]. */
static OValue *conj_pairs(Lower *L, OValue *x, const Type *t) {
  ElemType et = et_complex_part(t->et);
  size_t size = et_size(et);
  uint8_t *buf = arena_alloc(L->c->arena, 2 * size);
  elem_store(buf, et, 0, 1.0);
  elem_store(buf, et, 1, -1.0);
  int64_t two = 2;
  return typed_as(L, lw_op2(L, "Mul", x, lw_const_data(L, et, 1, &two, (Data){DATA_RAW, buf, 2 * size})), t);
}

static OValue *slice_axis(Lower *L, OValue *x, int64_t axis, int64_t start, int64_t end,
                          int64_t step, const Type *t) {
  OValue *in[5] = {x, lw_const_i64s(L, 1, &start), lw_const_i64s(L, 1, &end),
                   lw_const_i64s(L, 1, &axis), lw_const_i64s(L, 1, &step)};
  return typed_as(L, lw_node(L, "Slice", 5, in, 1)->outputs[0], t);
}

/* ---- Bluestein: a length-n DFT as a cyclic convolution of length M = 2^k ----- *
 * jk = (j^2 + k^2 - (k - j)^2) / 2, so with w_t = e^{s i pi t^2 / n}:
 * X_k = w_k sum_j (x_j w_j) conj(w_{k-j}), a convolution of x w with the chirp
 * conj(w) that radix-2 DFTs of length M >= 2n - 1 compute exactly to
 * rounding.  The chirp's transform is a constant, computed here in double. */

/* In-place radix-2 DFT of (re, im)[0..m) in double, sign -1 forward;
 * twiddles from cos/sin of each angle, not by recurrence. */
static void fft_double(double *re, double *im, int64_t m) {
  for (int64_t i = 1, j = 0; i < m; i++) {
    int64_t bit = m >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      double t = re[i]; re[i] = re[j]; re[j] = t;
      t = im[i]; im[i] = im[j]; im[j] = t;
    }
  }
  const double two_pi = 6.283185307179586476925286766559;
  for (int64_t len = 2; len <= m; len <<= 1)
    for (int64_t i = 0; i < m; i += len)
      for (int64_t k = 0; k < len / 2; k++) {
        double th = -two_pi * (double)k / (double)len, c = cos(th), sn = sin(th);
        int64_t u = i + k, v = i + k + len / 2;
        double vr = re[v] * c - im[v] * sn, vi = re[v] * sn + im[v] * c;
        re[v] = re[u] - vr; im[v] = im[u] - vi;
        re[u] += vr; im[u] += vi;
      }
}

/* A constant of shape [len, 1, ...] (trailing ones up to rank r from axis a)
 * holding vals, to broadcast along axis a of a rank-r tensor. */
static OValue *along_axis(Lower *L, const double *vals, int64_t len, int a, int r, ElemType et) {
  size_t size = et_size(et);
  uint8_t *buf = arena_alloc(L->c->arena, (size_t)len * size);
  for (int64_t i = 0; i < len; i++) elem_store(buf, et, i, vals[i]);
  int64_t dims[MAX_RANK];
  for (int i = 0; i < r - a; i++) dims[i] = i == 0 ? len : 1;
  return lw_const_data(L, et, r - a, dims, (Data){DATA_RAW, buf, (size_t)len * size});
}

/* z * (cr + i ci), with the constant parts broadcast along the axis. */
static Cx times_const(Lower *L, Cx z, OValue *cr, OValue *ci, ElemType et, const Type *shape) {
  OValue *rr = cx_typed(L, lw_op2(L, "Mul", z.re, cr), et, shape);
  OValue *ii = cx_typed(L, lw_op2(L, "Mul", z.im, ci), et, shape);
  OValue *ri = cx_typed(L, lw_op2(L, "Mul", z.re, ci), et, shape);
  OValue *ir = cx_typed(L, lw_op2(L, "Mul", z.im, cr), et, shape);
  return (Cx){cx_typed(L, lw_op2(L, "Sub", rr, ii), et, shape),
              cx_typed(L, lw_op2(L, "Add", ri, ir), et, shape)};
}

static OValue *bluestein(Lower *L, OValue *x, const Type *t, int a, bool inverse) {
  int64_t n = t->dims[a], m = 1;
  while (m < 2 * n - 1) m <<= 1;
  int r = t->rank;
  ElemType et = et_complex_part(t->et);
  double s = inverse ? 1.0 : -1.0, pi = 3.14159265358979323846;
  double *wr = arena_alloc(L->c->arena, sizeof(double) * (size_t)n);
  double *wi = arena_alloc(L->c->arena, sizeof(double) * (size_t)n);
  double *br = arena_alloc(L->c->arena, sizeof(double) * (size_t)m);
  double *bi = arena_alloc(L->c->arena, sizeof(double) * (size_t)m);
  double *sr = arena_alloc(L->c->arena, sizeof(double) * (size_t)n);
  double *si = arena_alloc(L->c->arena, sizeof(double) * (size_t)n);
  double scale = inverse ? 1.0 / (double)n : 1.0;
  for (int64_t j = 0; j < n; j++) {
    double th = s * pi * (double)((j * j) % (2 * n)) / (double)n; /* t^2 mod 2n: exact angle */
    wr[j] = cos(th);
    wi[j] = sin(th);
    sr[j] = wr[j] * scale;
    si[j] = wi[j] * scale;
    br[j] = wr[j];
    bi[j] = -wi[j];
    if (j > 0) {
      br[m - j] = wr[j];
      bi[m - j] = -wi[j];
    }
  }
  fft_double(br, bi, m);
  Cx z = cx_split(L, x, t);
  Type pt = *t; /* the parts' shape: t's */
  z = times_const(L, z, along_axis(L, wr, n, a, r, et), along_axis(L, wi, n, a, r, et), et, &pt);
  /* zero-padded to m along a */
  Type mt = with_dim(L, t, a, m, t->et);
  int64_t pads[2 * MAX_RANK];
  for (int i = 0; i < 2 * r; i++) pads[i] = 0;
  pads[r + a] = m - n;
  OValue *pv = lw_const_i64s(L, 2 * r, pads);
  z.re = cx_typed(L, lw_op2(L, "Pad", z.re, pv), et, &mt);
  z.im = cx_typed(L, lw_op2(L, "Pad", z.im, pv), et, &mt);
  OValue *f = typed_as(L, dft_node(L, cx_join(L, z, &mt), a, false, false), &mt);
  Cx fz = times_const(L, cx_split(L, f, &mt), along_axis(L, br, m, a, r, et),
                      along_axis(L, bi, m, a, r, et), et, &mt);
  OValue *conv = typed_as(L, dft_node(L, cx_join(L, fz, &mt), a, true, false), &mt);
  OValue *head = slice_axis(L, conv, a, 0, n, 1, t);
  Cx y = times_const(L, cx_split(L, head, t), along_axis(L, sr, n, a, r, et),
                     along_axis(L, si, n, a, r, et), et, &pt);
  return cx_join(L, y, t);
}

/* A complex-to-complex transform along axis a of x (complex type t). */
static OValue *c2c(Lower *L, OValue *x, const Type *t, int a, bool inverse) {
  if (pow2(t->dims[a])) return typed_as(L, dft_node(L, x, a, inverse, false), t);
  return bluestein(L, x, t, a, inverse);
}

/* One 1-D transform of x (HLO type ti) along axis a, length n (the result
 * length for C2R); the result has type to. */
static OValue *transform(Lower *L, OValue *x, const Type *ti, int a, Dir dir, int64_t n,
                         const Type *to) {
  if (!pow2(n) && n <= MAX_MATMUL_N) return dft_matmul(L, x, ti, a, dir, n, to);
  switch (dir) {
  case C2C_FWD: case C2C_INV:
    return typed_as(L, c2c(L, x, ti, a, dir == C2C_INV), to);
  case R2C: {
    if (pow2(n)) {
      int64_t last = ti->rank;
      return typed_as(L, dft_node(L, lw_unsqueeze(L, x, &last, 1), a, false, true), to);
    }
    /* the full transform of x + 0i, then its first n/2 + 1 bins */
    Type full = with_dim(L, ti, a, n, to->et);
    OValue *z = cx_join(L, (Cx){x, cx_zeros_like(L, x, ti)}, &full);
    return slice_axis(L, c2c(L, z, &full, a, false), a, 0, n / 2 + 1, 1, to);
  }
  case C2R: {
    /* the whole spectrum: X[0..m) then conj X[n-k] for k = m..n-1 */
    int64_t m = n / 2 + 1;
    Type full = with_dim(L, ti, a, n, ti->et);
    OValue *spec = x;
    if (n - m > 0) {
      Type tail_t = with_dim(L, ti, a, n - m, ti->et);
      OValue *tail = slice_axis(L, x, a, n - m, 0, -1, &tail_t); /* X[n-m], ..., X[1] */
      OValue *in[2] = {x, conj_pairs(L, tail, &tail_t)};
      ONode *c = lw_node(L, "Concat", 2, in, 1);
      og_attr_int(L->c, c, "axis", a);
      spec = typed_as(L, c->outputs[0], &full);
    }
    OValue *y = c2c(L, spec, &full, a, true);
    return cx_split(L, y, &full).re;
  }
  }
  return NULL;
}

int lower_fft(Lower *L, const Op *op) {
  const Attr *ta = ir_op_attr(op, "fft_type");
  const char *kind = ta && ta->s ? ta->s : "";
  int64_t *len;
  const Attr *la = ir_op_attr(op, "fft_length");
  int k = la ? ir_attr_i64s(L->c, la, &len) : -1;
  if (op->n_operands != 1 || op->n_results != 1 || k < 1)
    return lw_bad_input(L, "expects one operand, one result and an fft_length");
  Dir first;
  if (strcmp(kind, "FFT") == 0) first = C2C_FWD;
  else if (strcmp(kind, "IFFT") == 0) first = C2C_INV;
  else if (strcmp(kind, "RFFT") == 0) first = R2C;
  else if (strcmp(kind, "IRFFT") == 0) first = C2R;
  else return lw_bad_input(L, "fft_type is not FFT, IFFT, RFFT or IRFFT");
  const Type *ti = &op->operands[0]->type, *to = &op->results[0]->type;
  int r = ti->rank;
  bool in_complex = first != R2C, out_complex = first != C2R;
  if (k > r || to->rank != r || (et_complex_part(ti->et) != ET_UNDEF) != in_complex ||
      (et_complex_part(to->et) != ET_UNDEF) != out_complex ||
      (!in_complex && et_complex_part(to->et) != ti->et) ||
      (!out_complex && et_complex_part(ti->et) != to->et) ||
      (in_complex && out_complex && ti->et != to->et))
    return lw_bad_input(L, "operand and result types do not fit the fft_type");
  for (int i = 0; i < r; i++) {
    int j = i - (r - k); /* index into fft_length, or < 0 */
    int64_t want_in = j < 0 ? to->dims[i] : len[j], want_out = want_in;
    if (j == k - 1 && first == R2C) want_out = len[j] / 2 + 1;
    if (j == k - 1 && first == C2R) want_in = len[j] / 2 + 1;
    if (j >= 0 && len[j] < 1) return lw_unsupported(L, "an FFT of length %lld", (long long)len[j]);
    if ((ti->dims[i] != DIM_DYN && ti->dims[i] != want_in) ||
        (to->dims[i] != DIM_DYN && to->dims[i] != want_out))
      return lw_bad_input(L, "operand or result dimensions do not fit fft_length");
    if (j >= 0 && (ti->dims[i] == DIM_DYN || to->dims[i] == DIM_DYN))
      return lw_bad_input(L, "a transformed axis of '?' size");
  }
  OValue *x = lw_get(L, op->operands[0]);
  Type cur = *ti;
  if (first == R2C) {
    ElemType cet = to->et;
    Type next = k == 1 ? *to : with_dim(L, ti, r - 1, len[k - 1] / 2 + 1, cet);
    x = transform(L, x, &cur, r - 1, R2C, len[k - 1], &next);
    cur = next;
  }
  /* the axes transformed complex to complex */
  int end = first == C2C_FWD || first == C2C_INV ? r : r - 1;
  Dir d = first == C2C_INV || first == C2R ? C2C_INV : C2C_FWD;
  for (int a = r - k; a < end; a++) x = transform(L, x, &cur, a, d, len[a - (r - k)], &cur);
  if (first == C2R) x = transform(L, x, &cur, r - 1, C2R, len[k - 1], to);
  if (!x) return lw_unsupported(L, "this FFT");
  lw_bind(L, op->results[0], x);
  return 0;
}
