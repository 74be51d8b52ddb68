/* conv.c - windowed ops: stablehlo.convolution, dynamic_conv and reduce_window.
 *
 * ONNX's Conv, ConvTranspose and pools work on one layout, N,C,spatial...
 * (kernels O,I,spatial...), while StableHLO names the role of every axis.  So
 * each converter transposes its operands into the ONNX layout, emits the one
 * ONNX op, and transposes the result back.  Transposes that are the identity
 * are not emitted; the ones that remain (NHWC models) are for a later pass to
 * push through elementwise ops and cancel, and constant kernels get theirs
 * folded.  Nothing here marks anything for those passes: they match shapes.
 *
 * convolution
 *   - padding is applied to the (lhs-dilated) input and may be negative:
 *     negative edges crop the input (a Slice before the Conv), which is exact
 *     for any stride, where slicing the output would not be.
 *   - lhs_dilation > 1 is a transposed convolution (jax.lax.conv_transpose,
 *     input gradients).  Writing the HLO conv as a scatter shows it is ONNX
 *     ConvTranspose with strides = lhs_dilation, the kernel flipped in every
 *     spatial axis, pads (k-1)*d - lo and (k-1)*d - hi; a negative pad there
 *     means output positions no input reaches: zeros, added with a Pad.  A
 *     window stride on top subsamples that result (a Slice with steps).
 *   - window_reversal flips kernel axes (Slice with step -1), cancelling the
 *     flip of the transposed case where both apply.  A kernel that is a
 *     stablehlo.reverse of spatial axes (JAX's input gradient) is read from
 *     before the reverse, which cancels against the ConvTranspose flip.
 *   - the kernel goes to I,O,spatial in one Transpose for an ungrouped
 *     ConvTranspose; a grouped one regroups O,I/G into I,O/G (Reshape,
 *     Transpose, Reshape), which needs a kernel of static shape.
 *   - batch_group_count G splits the batch into G groups that meet G groups
 *     of output features: moving the batch groups into the feature axis
 *     (Reshape, Transpose, Reshape) makes it an ONNX Conv with group = G.
 *   - dynamic_conv is a convolution whose padding is an operand: a constant
 *     one is read like the attribute; one the graph computes (JAX's 'SAME'
 *     over a symbolic spatial size) becomes a Pad of the input, which ONNX
 *     defines for negative amounts too.  ConvTranspose has no such input, so
 *     a computed padding with lhs_dilation is refused.
 *   - f16/bf16 are computed in f32 and rounded once at the end, as XLA does
 *     on CPU and cuDNN accumulates on GPU; f64 stays f64 (onnxruntime's CPU
 *     provider has no double Conv: the kernels pass rewrites it as im2col +
 *     an f64 MatMul, passes/conv_matmul.c).  Integer convolutions have no
 *     ONNX Conv and are refused.
 *
 * reduce_window - one input, a body that is one add / maximum / minimum /
 * multiply / and / or of its two arguments, base_dilations 1: steps 1-3
 * below; any other associative body, several inputs or base dilation: 4.
 *   1. A cumulative sum (jnp.cumsum: window >= the axis, padding (n-1, 0) or
 *      (0, n-1), stride 1) becomes CumSum (reverse for the second form).
 *   2. add / max / min over at most three non-trivial axes become pools: the
 *      trivial axes (window 1, stride 1, no padding) play N and C.  max is
 *      MaxPool; min is -MaxPool(-x); add is AveragePool(count_include_pad=1)
 *      times the window size (flax's avg_pool divides that by the window size
 *      again; a fusion pass cancels the pair).  onnxruntime wants pads <
 *      kernel: larger pads are an explicit Pad (zeros for a sum; a max/min
 *      goes to 3., see there).
 *      Types: sums of f16/bf16 accumulate in f32, max/min pool f16 as f16
 *      (exact); integer max/min pool in f32 (8/16-bit) or f64 (32-bit), both
 *      exact.  A window wholly of -inf comes out of onnxruntime's f32 MaxPool
 *      as -FLT_MAX, and its MaxPool may not propagate NaN as
 *      stablehlo.maximum does: onnxruntime quirks, the model is right.
 *   3. Anything else with a small window (up to MAX_UNROLLED_WINDOW
 *      elements; larger ones go to 4.: integer sums, 64-bit integers,
 *      windows over more than 3 axes, f64 sums, which onnxruntime cannot
 *      AveragePool, max/min whose padding covers whole windows, products,
 *      and/or) is the reduction of one strided Slice per window offset of the
 *      padded input: exact for every type (integers narrower than 32 bits
 *      compute in i32 and wrap back on the final Cast, as XLA's do).
 * Padding and the init value follow what XLA computes, which JAX's numbers
 * are: padded cells count as the identity of the reduction (MaxPool skips
 * them, AveragePool counts zeros), and the init value is folded in once at
 * the end (op(result, init), left out when it is the identity), so a window
 * wholly in the padding yields the init.  For max/min that equals padding
 * with the init; for a sum with init 1.5 it does not (the spec's reading
 * would add 1.5 per padded cell), and XLA does the former.
 */
#include "lower/lower.h"

#include <math.h>
#include <string.h>

/* The largest window the slice-per-offset fallback unrolls. */
#define MAX_UNROLLED_WINDOW 256

/* ---- values with their static shape ------------------------------------ */

/* An ONNX value and what we know of its type: the converters below track the
 * shape through every node they emit, so intermediate values carry types. */
typedef struct Tv {
  OValue *v;
  ElemType et;
  int rank;
  int64_t d[MAX_RANK]; /* DIM_DYN when not known */
} Tv;

static void tv_from(Lower *L, Tv *t, const Value *v) {
  t->v = lw_get(L, v);
  t->et = v->type.et;
  t->rank = v->type.rank;
  for (int i = 0; i < t->rank; i++) t->d[i] = v->type.dims[i];
}

static void tv_set(Lower *L, Tv *t, OValue *v) {
  t->v = v;
  og_set_type(L->c, v, t->et, t->rank, t->d);
}

static bool is_identity(const int64_t *perm, int n) {
  for (int i = 0; i < n; i++)
    if (perm[i] != i) return false;
  return true;
}

static void tv_transpose(Lower *L, Tv *t, const int64_t *perm) {
  if (is_identity(perm, t->rank)) return;
  ONode *n = lw_node(L, "Transpose", 1, &t->v, 1);
  og_attr_ints(L->c, n, "perm", perm, t->rank);
  int64_t d[MAX_RANK];
  for (int i = 0; i < t->rank; i++) d[i] = t->d[perm[i]];
  memcpy(t->d, d, sizeof(int64_t) * (size_t)t->rank);
  tv_set(L, t, n->outputs[0]);
}

static void tv_cast(Lower *L, Tv *t, ElemType et) {
  if (t->et == et) return;
  OValue *v = lw_cast(L, t->v, et);
  t->et = et;
  tv_set(L, t, v);
}

static void tv_unary(Lower *L, Tv *t, const char *op_type) {
  tv_set(L, t, lw_op1(L, op_type, t->v));
}

/* The length ONNX Slice gives an axis of length dim. */
static int64_t slice_len(int64_t dim, int64_t start, int64_t end, int64_t step) {
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = start < 0 ? 0 : start > dim ? dim : start;
    end = end < 0 ? 0 : end > dim ? dim : end;
    return end > start ? (end - start + step - 1) / step : 0;
  }
  start = start < 0 ? 0 : start > dim - 1 ? dim - 1 : start;
  end = end < -1 ? -1 : end > dim - 1 ? dim - 1 : end;
  return start > end ? (start - end - step - 1) / -step : 0;
}

static void tv_slice(Lower *L, Tv *t, int n, const int64_t *axes, const int64_t *starts,
                     const int64_t *ends, const int64_t *steps) {
  if (n == 0) return;
  OValue *in[5] = {t->v, lw_const_i64s(L, n, starts), lw_const_i64s(L, n, ends),
                   lw_const_i64s(L, n, axes), lw_const_i64s(L, n, steps)};
  ONode *node = lw_node(L, "Slice", 5, in, 1);
  for (int i = 0; i < n; i++) {
    int64_t *d = &t->d[axes[i]];
    if (*d >= 0) *d = slice_len(*d, starts[i], ends[i], steps[i]);
  }
  tv_set(L, t, node->outputs[0]);
}

/* Pads every axis by lo[i] before and hi[i] after (both >= 0) with `value`
 * (a scalar of t's type), or zeros when value is NULL. */
static void tv_pad(Lower *L, Tv *t, const int64_t *lo, const int64_t *hi, OValue *value) {
  int64_t pads[2 * MAX_RANK];
  bool any = false;
  for (int i = 0; i < t->rank; i++) {
    pads[i] = lo[i];
    pads[t->rank + i] = hi[i];
    any |= lo[i] != 0 || hi[i] != 0;
  }
  if (!any) return;
  OValue *in[3] = {t->v, lw_const_i64s(L, 2 * t->rank, pads), value};
  ONode *n = lw_node(L, "Pad", value ? 3 : 2, in, 1);
  for (int i = 0; i < t->rank; i++)
    if (t->d[i] >= 0) t->d[i] += lo[i] + hi[i];
  tv_set(L, t, n->outputs[0]);
}

/* Reshape to `shape` (ONNX rules: 0 copies the input dimension, -1 is
 * inferred). */
static void tv_reshape(Lower *L, Tv *t, int rank, const int64_t *shape) {
  OValue *v = lw_op2(L, "Reshape", t->v, lw_const_i64s(L, rank, shape));
  int64_t numel = 1, known = 1;
  for (int i = 0; i < t->rank; i++) numel = t->d[i] < 0 || numel < 0 ? -1 : numel * t->d[i];
  int64_t d[MAX_RANK];
  int infer = -1;
  for (int i = 0; i < rank; i++) {
    d[i] = shape[i] > 0 ? shape[i] : shape[i] == 0 ? t->d[i] : DIM_DYN;
    if (shape[i] < 0) infer = i;
    else known = d[i] < 0 || known < 0 ? -1 : known * d[i];
  }
  if (infer >= 0 && numel >= 0 && known > 0) d[infer] = numel / known;
  t->rank = rank;
  memcpy(t->d, d, sizeof(int64_t) * (size_t)rank);
  tv_set(L, t, v);
}

/* Unsqueeze (insert = true) or Squeeze the axes [0, n) counted from `at`. */
static void tv_unit_axes(Lower *L, Tv *t, int at, int n, bool insert) {
  if (n == 0) return;
  int64_t axes[MAX_RANK];
  for (int i = 0; i < n; i++) axes[i] = at + i;
  const char *op_type = insert ? "Unsqueeze" : "Squeeze";
  ONode *node;
  if (L->opset >= 13) {
    OValue *in[2] = {t->v, lw_const_i64s(L, n, axes)};
    node = lw_node(L, op_type, 2, in, 1);
  } else {
    node = lw_node(L, op_type, 1, &t->v, 1);
    og_attr_ints(L->c, node, "axes", axes, n);
  }
  int64_t d[MAX_RANK];
  int r = 0;
  if (insert) {
    for (int i = 0; i < at; i++) d[r++] = t->d[i];
    for (int i = 0; i < n; i++) d[r++] = 1;
    for (int i = at; i < t->rank; i++) d[r++] = t->d[i];
  } else {
    for (int i = 0; i < t->rank; i++)
      if (i < at || i >= at + n) d[r++] = t->d[i];
  }
  t->rank = r;
  memcpy(t->d, d, sizeof(int64_t) * (size_t)r);
  tv_set(L, t, node->outputs[0]);
}

/* Moves a group axis across its neighbour: Reshape to `split` (one axis
 * more than t), swap axes a and a + 1, Reshape to `merged`. */
static void tv_regroup(Lower *L, Tv *t, const int64_t *split, int a, const int64_t *merged) {
  int r = t->rank;
  int64_t perm[MAX_RANK];
  tv_reshape(L, t, r + 1, split);
  for (int i = 0; i <= r; i++) perm[i] = i;
  perm[a] = a + 1;
  perm[a + 1] = a;
  tv_transpose(L, t, perm);
  tv_reshape(L, t, r, merged);
}

/* Crops the axes first..first+n-1 where their padding lo[i] or hi[i] is
 * negative (a Slice); positive padding is left to the caller. */
static void tv_crop_negative(Lower *L, Tv *t, int first, int n, const int64_t *lo,
                             const int64_t *hi) {
  int64_t axes[MAX_RANK], starts[MAX_RANK], ends[MAX_RANK], steps[MAX_RANK];
  int k = 0;
  for (int i = 0; i < n; i++)
    if (lo[i] < 0 || hi[i] < 0) {
      axes[k] = first + i;
      starts[k] = lo[i] < 0 ? -lo[i] : 0;
      ends[k] = hi[i] < 0 ? hi[i] : INT64_MAX;
      steps[k++] = 1;
    }
  tv_slice(L, t, k, axes, starts, ends, steps);
}

/* The output length of a window of k elements dilated by dil, moved by
 * stride over an axis of length len (DIM_DYN: unknown) padded by lo + hi. */
static int64_t window_out_len(int64_t len, int64_t lo, int64_t hi, int64_t k, int64_t dil,
                              int64_t stride) {
  int64_t span = (k - 1) * dil + 1, padded = len + lo + hi;
  return len < 0 ? DIM_DYN : padded < span ? 0 : (padded - span) / stride + 1;
}

/* ---- attributes --------------------------------------------------------- */

/* Appends the integers of `a` to out[*n..max): nested arrays are flattened
 * (padding [[lo, hi], ...]), booleans count as 0/1 (window_reversal), dense
 * tensors are read element by element (padding dense<..> : tensor<Nx2xi64>,
 * splats included).  Returns false when `a` holds something else. */
static bool collect_ints(Lower *L, const Attr *a, int64_t *out, int *n, int max) {
  switch (a->kind) {
  case AK_INT:
  case AK_BOOL:
    if (*n >= max) return false;
    out[(*n)++] = a->kind == AK_BOOL ? (int64_t)a->b : a->i;
    return true;
  case AK_ENUM:
  case AK_OPAQUE:
    if (!a->s || *n >= max) return false;
    if (strcmp(a->s, "true") == 0) out[(*n)++] = 1;
    else if (strcmp(a->s, "false") == 0) out[(*n)++] = 0;
    else return false;
    return true;
  case AK_ARRAY:
    for (int i = 0; i < a->n_elems; i++)
      if (!collect_ints(L, a->elems[i], out, n, max)) return false;
    return true;
  case AK_DENSE: {
    const Dense *d = a->dense;
    if (!d || d->numel < 0 || *n + d->numel > max) return false;
    size_t size = et_size(d->et);
    if (!(et_is_int(d->et) || d->et == ET_BOOL) || size == 0 ||
        d->data.nbytes < (d->splat ? 1 : (size_t)d->numel) * size)
      return false;
    const uint8_t *p = data_bytes(L->c, &d->data);
    for (int64_t k = 0; k < d->numel; k++) {
      const uint8_t *e = p + (d->splat ? 0 : (size_t)k * size);
      int64_t v = 0;
      switch (d->et) {
      case ET_BOOL: case ET_U8: v = e[0]; break;
      case ET_I8: v = (int8_t)e[0]; break;
      case ET_I16: { int16_t x; memcpy(&x, e, 2); v = x; break; }
      case ET_U16: { uint16_t x; memcpy(&x, e, 2); v = x; break; }
      case ET_I32: { int32_t x; memcpy(&x, e, 4); v = x; break; }
      case ET_U32: { uint32_t x; memcpy(&x, e, 4); v = x; break; }
      default: memcpy(&v, e, 8); break; /* i64, u64 */
      }
      out[(*n)++] = v;
    }
    return true;
  }
  default: {
    int64_t *vals = NULL;
    int k = ir_attr_i64s(L->c, a, &vals);
    if (k < 0 || *n + k > max) return false;
    for (int i = 0; i < k; i++) out[(*n)++] = vals[i];
    return true;
  }
  }
}

/* Reads attribute `name` of the current op: exactly `count` integers, or
 * `fill` repeated when the attribute is absent.  Reports and returns -1 when
 * it has another form or length. */
static int read_ints(Lower *L, const Attr *a, const char *name, int count, int64_t fill,
                     int64_t *out) {
  if (!a) {
    for (int i = 0; i < count; i++) out[i] = fill;
    return 0;
  }
  int n = 0;
  if (!collect_ints(L, a, out, &n, count) || n != count)
    return lw_unsupported(L, "attribute '%s' is not a list of %d integers", name, count);
  /* Window sizes, strides, dilations and padding within +-(2^31-1), and
   * axes no longer (check_axes): the shape arithmetic below cannot
   * overflow int64 then. */
  for (int i = 0; i < count; i++)
    if (out[i] > INT32_MAX || out[i] < -INT32_MAX)
      return lw_unsupported(L, "attribute '%s': %lld is beyond 2^31-1", name, (long long)out[i]);
  return 0;
}

static int read_int(Lower *L, const Attr *a, const char *name, int64_t fill, int64_t *out) {
  *out = fill;
  if (a && !ir_attr_int(a, out))
    return lw_unsupported(L, "attribute '%s' is not an integer", name);
  if (*out > INT32_MAX || *out < -INT32_MAX)
    return lw_unsupported(L, "attribute '%s': %lld is beyond 2^31-1", name, (long long)*out);
  return 0;
}

/* Axes of windowed ops up to 2^31-1 long (see read_ints). */
static int check_axes(Lower *L, const Type *t) {
  for (int i = 0; i < t->rank; i++)
    if (t->dims[i] > INT32_MAX)
      return lw_unsupported(L, "axes longer than 2^31-1 elements (%lld)", (long long)t->dims[i]);
  return 0;
}

static bool all_equal(const int64_t *v, int n, int64_t x) {
  for (int i = 0; i < n; i++)
    if (v[i] != x) return false;
  return true;
}

static bool dims_equal(const int64_t *a, const int64_t *b, int n) {
  for (int i = 0; i < n; i++)
    if (a[i] >= 0 && b[i] >= 0 && a[i] != b[i]) return false;
  return true;
}

/* The dims we computed disagree with the op's result type: the attributes
 * are inconsistent (bad input) or the arithmetic above is wrong. */
static int check_result(Lower *L, const Tv *y, const Value *res) {
  if (y->rank != res->type.rank || !dims_equal(y->d, res->type.dims, y->rank)) {
    char ts[128];
    return lw_unsupported(L, "the window attributes give another shape than the result type %s",
                          type_str(&res->type, ts, sizeof ts));
  }
  return 0;
}

/* ===================================================================
 * convolution
 * =================================================================== */

typedef struct ConvDims {
  int64_t ib, ifeat, is[MAX_RANK]; /* input batch, feature, spatial */
  int64_t ko, ki, ks[MAX_RANK];    /* kernel output, input feature, spatial */
  int64_t ob, ofeat, os[MAX_RANK]; /* output batch, feature, spatial */
} ConvDims;

/* Reads one role (batch, feature, spatial axes) of the dimension numbers and
 * checks the roles form a permutation of the rank axes. */
static int read_layout(Lower *L, const Attr *dn, int rank, const char *a_name, int64_t *a,
                       const char *b_name, int64_t *b, const char *sp_name, int64_t *sp) {
  const Attr *fa = ir_dict_field(dn, a_name), *fb = ir_dict_field(dn, b_name);
  if (!fa || !fb || !ir_attr_int(fa, a) || !ir_attr_int(fb, b))
    return lw_unsupported(L, "dimension_numbers lack %s or %s", a_name, b_name);
  const Attr *fs = ir_dict_field(dn, sp_name);
  int n = 0;
  if (rank > 2 && (!fs || !collect_ints(L, fs, sp, &n, rank - 2) || n != rank - 2))
    return lw_unsupported(L, "dimension_numbers.%s does not list %d axes", sp_name, rank - 2);
  bool seen[MAX_RANK] = {false};
  int64_t all[MAX_RANK];
  all[0] = *a;
  all[1] = *b;
  for (int i = 0; i < rank - 2; i++) all[2 + i] = sp[i];
  for (int i = 0; i < rank; i++) {
    if (all[i] < 0 || all[i] >= rank || seen[all[i]])
      return lw_unsupported(L, "dimension_numbers (%s, %s, %s) are not a permutation of %d axes",
                            a_name, b_name, sp_name, rank);
    seen[all[i]] = true;
  }
  return 0;
}

static int read_conv_dims(Lower *L, const Op *op, int rank, ConvDims *cd) {
  const Attr *dn = ir_op_attr(op, "dimension_numbers");
  if (!dn || dn->kind != AK_DICT) return lw_unsupported(L, "no dimension_numbers");
  if (read_layout(L, dn, rank, "input_batch_dimension", &cd->ib, "input_feature_dimension",
                  &cd->ifeat, "input_spatial_dimensions", cd->is) != 0 ||
      read_layout(L, dn, rank, "kernel_output_feature_dimension", &cd->ko,
                  "kernel_input_feature_dimension", &cd->ki, "kernel_spatial_dimensions",
                  cd->ks) != 0 ||
      read_layout(L, dn, rank, "output_batch_dimension", &cd->ob, "output_feature_dimension",
                  &cd->ofeat, "output_spatial_dimensions", cd->os) != 0)
    return -1;
  return 0;
}

/* (O, C/G, k...) -> (C, O/G, k...), the weight layout of a grouped
 * ConvTranspose (G > 1; for G = 1 the kernel was transposed to (C, O, k...)
 * at once). */
static int convtranspose_weight(Lower *L, Tv *w, int64_t group) {
  int r = w->rank;
  for (int i = 0; i < r; i++)
    if (w->d[i] < 0)
      return lw_unsupported(L, "a grouped transposed convolution needs a kernel of static shape");
  /* (G, O/G, C/G, k...) -> (G, C/G, O/G, k...) */
  int64_t o = w->d[0], cg = w->d[1], split[MAX_RANK], merged[MAX_RANK];
  split[0] = group;
  split[1] = o / group;
  split[2] = cg;
  merged[0] = group * cg;
  merged[1] = o / group;
  for (int i = 2; i < r; i++) split[i + 1] = merged[i] = w->d[i];
  tv_regroup(L, w, split, 1, merged);
  return 0;
}

/* Batch groups into the feature axis: (N, C, s...) -> (N/G, G*C, s...), the
 * group-major order ONNX's grouped Conv splits its channels in. */
static int batch_groups_to_features(Lower *L, Tv *x, int64_t g) {
  int r = x->rank;
  for (int i = 1; i < r; i++)
    if (x->d[i] < 0)
      return lw_unsupported(L, "batch_group_count > 1 needs static feature and spatial sizes");
  /* (G, N/G, C, s...) -> (N/G, G, C, s...) */
  int64_t split[MAX_RANK], merged[MAX_RANK];
  split[0] = g;
  split[1] = -1;
  merged[0] = 0;
  merged[1] = g * x->d[1];
  for (int i = 1; i < r; i++) split[i + 1] = x->d[i];
  for (int i = 2; i < r; i++) merged[i] = x->d[i];
  tv_regroup(L, x, split, 0, merged);
  return 0;
}

/* The value the kernel is read from: k, or, when k is a stablehlo.reverse
 * of spatial kernel axes, its operand, with those axes toggled in flip[]. */
static const Value *kernel_source(Lower *L, const Value *k, const ConvDims *cd, int nsp,
                                  bool *flip) {
  const Op *def = k->def;
  if (!def || def->kind != OP_REVERSE || def->n_operands != 1) return k;
  int64_t dims[MAX_RANK];
  int n = 0;
  const Attr *a = ir_op_attr(def, "dimensions");
  if (!a || !collect_ints(L, a, dims, &n, MAX_RANK)) return k;
  bool toggle[MAX_RANK] = {false};
  for (int j = 0; j < n; j++) {
    int i = 0;
    while (i < nsp && cd->ks[i] != dims[j]) i++;
    if (i == nsp || toggle[i]) return k; /* not a spatial axis: keep the reverse */
    toggle[i] = true;
  }
  const Value *src = def->operands[0];
  if (!src->lowered || src->lowered->poisoned) return k;
  for (int i = 0; i < nsp; i++) flip[i] ^= toggle[i];
  return src;
}

/* Pads the spatial axes of x (N, C, spatial...) by a padding tensor
 * (nsp x 2 integers, [lo, hi] per spatial axis) that the graph computes:
 * one Pad whose pads input is [0, 0, lo..., 0, 0, hi...].  Negative
 * amounts crop, as ONNX Pad removes elements for them. */
static void tv_pad_computed(Lower *L, Tv *x, const Value *padding, int nsp) {
  OValue *p = lw_cast(L, lw_get(L, padding), ET_I64);
  int64_t dims[2] = {nsp, 2};
  og_set_type(L->c, p, ET_I64, 2, dims);
  ONode *t = lw_node(L, "Transpose", 1, &p, 1); /* [lo...], [hi...] */
  og_attr_ints(L->c, t, "perm", (int64_t[]){1, 0}, 2);
  OValue *zeros = lw_const_data(L, ET_I64, 2, (int64_t[]){2, 2},
                                (Data){DATA_RAW, arena_alloc(L->c->arena, 32), 32});
  OValue *in[2] = {zeros, t->outputs[0]};
  ONode *cat = lw_node(L, "Concat", 2, in, 1);
  og_attr_int(L->c, cat, "axis", 1);
  OValue *pads = lw_op2(L, "Reshape", cat->outputs[0], lw_const_i64s(L, 1, (int64_t[]){-1}));
  og_set_type(L->c, pads, ET_I64, 1, (int64_t[]){2 * (nsp + 2)});
  OValue *pin[2] = {x->v, pads};
  ONode *n = lw_node(L, "Pad", 2, pin, 1);
  for (int i = 0; i < nsp; i++) x->d[2 + i] = DIM_DYN;
  tv_set(L, x, n->outputs[0]);
}

/* ---- convolution: read ---------------------------------------------------- */

/* What a convolution op says, checked. */
typedef struct ConvOp {
  const Type *rt;         /* the result type */
  int nsp;                /* spatial axes */
  ConvDims cd;
  int64_t stride[MAX_RANK], pad[2 * MAX_RANK], ldil[MAX_RANK], rdil[MAX_RANK], rev[MAX_RANK];
  int64_t fgc, bgc;       /* feature_group_count, batch_group_count */
  const Value *pad_value; /* padding the graph computes, or NULL */
} ConvOp;

/* The padding is an attribute (pad_attr, absent = none) or a tensor the
 * graph computes (pad_value). */
static int conv_read(Lower *L, const Op *op, const Attr *pad_attr, const Value *pad_value,
                     ConvOp *s) {
  const Type *lt = &op->operands[0]->type, *kt = &op->operands[1]->type;
  const Type *rt = s->rt = &op->results[0]->type;
  if (lt->kind != TK_TENSOR || kt->kind != TK_TENSOR || rt->kind != TK_TENSOR)
    return lw_unsupported(L, "operands and result must be tensors");
  int rank = lt->rank;
  /* < MAX_RANK: batch groups take one more axis on the way. */
  if (rank < 2 || rank >= MAX_RANK || kt->rank != rank || rt->rank != rank)
    return lw_unsupported(L, "operands and result must have one rank, at least 2");
  if (!et_is_float(lt->et) || !et_is_float(kt->et) || !et_is_float(rt->et))
    return lw_unsupported(L, "integer convolution: ONNX Conv takes floating-point tensors only");
  if (ir_op_attr(op, "lhs_quantization") || ir_op_attr(op, "rhs_quantization"))
    return lw_unsupported(L, "quantized convolution");
  if (check_axes(L, lt) != 0 || check_axes(L, kt) != 0 || check_axes(L, rt) != 0) return -1;

  int nsp = s->nsp = rank - 2;
  if (read_conv_dims(L, op, rank, &s->cd) != 0) return -1;
  if (read_ints(L, ir_op_attr(op, "window_strides"), "window_strides", nsp, 1, s->stride) != 0 ||
      read_ints(L, pad_attr, "padding", 2 * nsp, 0, s->pad) != 0 ||
      read_ints(L, ir_op_attr(op, "lhs_dilation"), "lhs_dilation", nsp, 1, s->ldil) != 0 ||
      read_ints(L, ir_op_attr(op, "rhs_dilation"), "rhs_dilation", nsp, 1, s->rdil) != 0 ||
      read_ints(L, ir_op_attr(op, "window_reversal"), "window_reversal", nsp, 0, s->rev) != 0 ||
      read_int(L, ir_op_attr(op, "feature_group_count"), "feature_group_count", 1, &s->fgc) != 0 ||
      read_int(L, ir_op_attr(op, "batch_group_count"), "batch_group_count", 1, &s->bgc) != 0)
    return -1;
  for (int i = 0; i < nsp; i++)
    if (s->stride[i] < 1 || s->ldil[i] < 1 || s->rdil[i] < 1)
      return lw_unsupported(L, "window strides and dilations must be positive");
  if (s->fgc < 1 || s->bgc < 1 || (s->fgc > 1 && s->bgc > 1))
    return lw_unsupported(L, "feature_group_count %lld with batch_group_count %lld",
                          (long long)s->fgc, (long long)s->bgc);
  if (nsp == 0) pad_value = NULL; /* a 0x2 tensor: nothing to pad */
  if (pad_value && !all_equal(s->ldil, nsp, 1))
    return lw_unsupported(L, "lhs_dilation (a transposed convolution) with padding computed at "
                             "run time: ONNX ConvTranspose takes its pads as an attribute");
  s->pad_value = pad_value;
  return 0;
}

/* ---- convolution: plan ---------------------------------------------------- */

/* How a convolution is emitted: Conv, or ConvTranspose for an lhs-dilated
 * one, between transposes to and from the ONNX layout. */
typedef struct ConvPlan {
  bool transposed;       /* lhs_dilation > 1: ConvTranspose */
  ElemType ct;           /* the type the convolution computes in */
  int64_t group;         /* ONNX's group: the batch or the feature groups */
  bool io;               /* the kernel goes to I,O,spatial at once (ungrouped ConvTranspose) */
  const Value *kernel;   /* the kernel's value, from before a reverse of spatial axes */
  bool flip[MAX_RANK];   /* spatial kernel axes to flip */
  int64_t x_perm[MAX_RANK], w_perm[MAX_RANK]; /* input and kernel to the ONNX layout */
  int64_t y_perm[MAX_RANK];                   /* the ONNX result back to the HLO layout */
  /* ONNX's spatial axes: one more than the op's when it has none. */
  int ns;
  int64_t stride[MAX_RANK], ldil[MAX_RANK], rdil[MAX_RANK], lo[MAX_RANK], hi[MAX_RANK];
} ConvPlan;

static void conv_plan(Lower *L, const Op *op, const ConvOp *s, ConvPlan *p) {
  int nsp = s->nsp;
  const ConvDims *cd = &s->cd;
  p->transposed = !all_equal(s->ldil, nsp, 1);
  /* f16/bf16 (and narrower floats) accumulate in f32, f64 stays f64. */
  p->ct = s->rt->et == ET_F64 ? ET_F64 : ET_F32;
  /* JAX's input gradient reverses the kernel (stablehlo.reverse) and then
   * convolves with lhs_dilation, which flips it once more: read the kernel
   * from before the reverse and flip the difference. */
  for (int i = 0; i < MAX_RANK; i++) p->flip[i] = i < nsp && (s->rev[i] != 0) != p->transposed;
  p->kernel = kernel_source(L, op->operands[1], cd, nsp, p->flip);
  p->x_perm[0] = cd->ib;
  p->x_perm[1] = cd->ifeat;
  for (int i = 0; i < nsp; i++) p->x_perm[2 + i] = cd->is[i];
  /* Kernel to O,I,spatial; to I,O,spatial right away for an ungrouped
   * ConvTranspose (the grouped one regroups O,I in convtranspose_weight). */
  p->group = s->bgc > 1 ? s->bgc : s->fgc;
  p->io = p->transposed && p->group == 1;
  p->w_perm[0] = p->io ? cd->ki : cd->ko;
  p->w_perm[1] = p->io ? cd->ko : cd->ki;
  for (int i = 0; i < nsp; i++) p->w_perm[2 + i] = cd->ks[i];
  p->y_perm[cd->ob] = 0;
  p->y_perm[cd->ofeat] = 1;
  for (int i = 0; i < nsp; i++) p->y_perm[cd->os[i]] = 2 + i;

  /* A convolution without spatial axes (a matmul in disguise): ONNX needs
   * one, so both get a unit axis that the result loses again. */
  p->ns = nsp;
  for (int i = 0; i < nsp; i++) {
    p->stride[i] = s->stride[i];
    p->ldil[i] = s->ldil[i];
    p->rdil[i] = s->rdil[i];
    p->lo[i] = s->pad[2 * i];
    p->hi[i] = s->pad[2 * i + 1];
  }
  if (nsp == 0) {
    p->ns = 1;
    p->stride[0] = p->ldil[0] = p->rdil[0] = 1;
    p->lo[0] = p->hi[0] = 0;
  }
}

/* ---- convolution: emit ---------------------------------------------------- */

/* The input x (N, C, spatial...) and the kernel w (O, I, spatial..., or
 * I, O for p->io) on the ONNX layout, in the compute type, flipped. */
static int conv_operands(Lower *L, const Op *op, const ConvOp *s, const ConvPlan *p, Tv *x,
                         Tv *w) {
  tv_from(L, x, op->operands[0]);
  tv_from(L, w, p->kernel);
  tv_cast(L, x, p->ct);
  tv_cast(L, w, p->ct);
  tv_transpose(L, x, p->x_perm);
  tv_transpose(L, w, p->w_perm);
  if (s->nsp == 0) {
    tv_unit_axes(L, x, 2, 1, true);
    tv_unit_axes(L, w, 2, 1, true);
  }
  if (s->bgc > 1 && batch_groups_to_features(L, x, s->bgc) != 0) return -1;

  /* Kernel flips: window_reversal, and the flip that makes a transposed
   * convolution out of an lhs-dilated one; the two cancel. */
  int64_t axes[MAX_RANK], starts[MAX_RANK], ends[MAX_RANK], steps[MAX_RANK];
  int n = 0;
  for (int i = 0; i < s->nsp; i++)
    if (p->flip[i]) {
      axes[n] = 2 + i;
      starts[n] = -1;
      ends[n] = INT64_MIN;
      steps[n++] = -1;
    }
  tv_slice(L, w, n, axes, starts, ends, steps);
  return 0;
}

/* The kernel's spatial sizes (w on the ONNX layout): whether all are static. */
static bool kernel_shape(const Tv *w, int ns, int64_t *kshape) {
  bool kstatic = true;
  for (int i = 0; i < ns; i++) {
    kshape[i] = w->d[2 + i];
    kstatic &= kshape[i] >= 0;
  }
  return kstatic;
}

/* Conv; negative padding crops the input first. */
static void emit_conv(Lower *L, const ConvOp *s, const ConvPlan *p, Tv *x, const Tv *w, Tv *y) {
  int ns = p->ns;
  int64_t kshape[MAX_RANK], pads[2 * MAX_RANK];
  bool kstatic = kernel_shape(w, ns, kshape);
  y->et = p->ct;
  y->rank = ns + 2;
  y->d[0] = x->d[0];
  y->d[1] = w->d[0];
  tv_crop_negative(L, x, 2, ns, p->lo, p->hi);
  for (int i = 0; i < ns; i++) {
    pads[i] = p->lo[i] > 0 ? p->lo[i] : 0;
    pads[ns + i] = p->hi[i] > 0 ? p->hi[i] : 0;
  }
  if (s->pad_value) tv_pad_computed(L, x, s->pad_value, s->nsp); /* (lo, hi all 0 then) */
  OValue *in[2] = {x->v, w->v};
  ONode *c = lw_node(L, "Conv", 2, in, 1);
  if (kstatic) og_attr_ints(L->c, c, "kernel_shape", kshape, ns);
  og_attr_ints(L->c, c, "strides", p->stride, ns);
  og_attr_ints(L->c, c, "pads", pads, 2 * ns);
  og_attr_ints(L->c, c, "dilations", p->rdil, ns);
  og_attr_int(L->c, c, "group", p->group);
  for (int i = 0; i < ns; i++)
    y->d[2 + i] = kshape[i] < 0 ? DIM_DYN
                                : window_out_len(x->d[2 + i], pads[i], pads[ns + i], kshape[i],
                                                 p->rdil[i], p->stride[i]);
  tv_set(L, y, c->outputs[0]);
}

/* ConvTranspose with strides = lhs_dilation and pads (k-1)*d - lo and
 * (k-1)*d - hi, then zeros where those are negative, then the window
 * stride. */
static int emit_conv_transpose(Lower *L, const ConvPlan *p, const Tv *x, Tv *w, Tv *y) {
  int ns = p->ns;
  int64_t kshape[MAX_RANK], pads[2 * MAX_RANK];
  if (!kernel_shape(w, ns, kshape))
    return lw_unsupported(L, "lhs_dilation (a transposed convolution) needs a kernel of "
                             "static spatial shape");
  int64_t pb[MAX_RANK], pe[MAX_RANK], extra_lo[MAX_RANK] = {0}, extra_hi[MAX_RANK] = {0};
  /* unreached[i]: the pads crop all of the ConvTranspose result on axis i
   * (onnxruntime refuses an output length <= 0), so every output position
   * lies where no input reaches and the whole result is zeros.  The
   * ConvTranspose then keeps one element of that axis, and the zeros come
   * from the Pad below, with the kept element sliced off again. */
  bool unreached[MAX_RANK] = {false};
  for (int i = 0; i < ns; i++) {
    pb[i] = (kshape[i] - 1) * p->rdil[i] - p->lo[i];
    pe[i] = (kshape[i] - 1) * p->rdil[i] - p->hi[i];
    pads[i] = pb[i] > 0 ? pb[i] : 0;
    pads[ns + i] = pe[i] > 0 ? pe[i] : 0;
    int64_t in_len = x->d[2 + i];
    if (in_len < 0) continue;
    int64_t full = p->ldil[i] * (in_len - 1) + (kshape[i] - 1) * p->rdil[i] + 1;
    if (full - pads[i] - pads[ns + i] < 1 && full - pb[i] - pe[i] >= 1) {
      unreached[i] = true;
      pads[i] = pads[i] < full - 1 ? pads[i] : full - 1;
      pads[ns + i] = full - 1 - pads[i];
    }
  }
  if (!p->io && convtranspose_weight(L, w, p->group) != 0) return -1;
  y->et = p->ct;
  y->rank = ns + 2;
  y->d[0] = x->d[0];
  y->d[1] = w->d[1] < 0 ? DIM_DYN : w->d[1] * p->group;
  OValue *in[2] = {x->v, w->v};
  ONode *c = lw_node(L, "ConvTranspose", 2, in, 1);
  og_attr_ints(L->c, c, "kernel_shape", kshape, ns);
  og_attr_ints(L->c, c, "strides", p->ldil, ns);
  og_attr_ints(L->c, c, "pads", pads, 2 * ns);
  og_attr_ints(L->c, c, "dilations", p->rdil, ns);
  og_attr_int(L->c, c, "group", p->group);
  for (int i = 0; i < ns; i++) {
    int64_t in_len = x->d[2 + i];
    y->d[2 + i] = in_len < 0 ? DIM_DYN
                             : p->ldil[i] * (in_len - 1) + (kshape[i] - 1) * p->rdil[i] + 1 -
                                   pads[i] - pads[ns + i];
  }
  tv_set(L, y, c->outputs[0]);
  /* Output positions before the first or after the last input reaches:
   * zeros. */
  for (int i = 0; i < y->rank; i++) extra_lo[i] = extra_hi[i] = 0;
  for (int i = 0; i < ns; i++) {
    extra_lo[2 + i] = pb[i] < 0 ? -pb[i] : 0;
    extra_hi[2 + i] = pe[i] < 0 ? -pe[i] : 0;
  }
  int64_t axes[MAX_RANK], starts[MAX_RANK], ends[MAX_RANK], steps[MAX_RANK];
  int n = 0;
  for (int i = 0; i < ns; i++)
    if (unreached[i]) { /* [zeros][the kept element][zeros] -> all the zeros */
      int64_t len = x->d[2 + i];
      int64_t zeros = p->ldil[i] * (len - 1) + (kshape[i] - 1) * p->rdil[i] + 1 - pb[i] - pe[i];
      extra_lo[2 + i] = zeros;
      extra_hi[2 + i] = 0;
      axes[n] = 2 + i;
      starts[n] = 0;
      ends[n] = zeros;
      steps[n++] = 1;
    }
  tv_pad(L, y, extra_lo, extra_hi, NULL);
  tv_slice(L, y, n, axes, starts, ends, steps);
  /* A window stride subsamples the stride-1 result. */
  n = 0;
  for (int i = 0; i < ns; i++)
    if (p->stride[i] > 1) {
      axes[n] = 2 + i;
      starts[n] = 0;
      ends[n] = INT64_MAX;
      steps[n++] = p->stride[i];
    }
  tv_slice(L, y, n, axes, starts, ends, steps);
  return 0;
}

/* convolution and dynamic_conv: the padding is an attribute (pad_attr, absent
 * = none) or a tensor the graph computes (pad_value). */
static int conv_lower(Lower *L, const Op *op, const Attr *pad_attr, const Value *pad_value) {
  ConvOp s;
  if (conv_read(L, op, pad_attr, pad_value, &s) != 0) return -1;
  ConvPlan p;
  conv_plan(L, op, &s, &p);
  Tv x, w, y;
  if (conv_operands(L, op, &s, &p, &x, &w) != 0) return -1;
  if (!p.transposed) emit_conv(L, &s, &p, &x, &w, &y);
  else if (emit_conv_transpose(L, &p, &x, &w, &y) != 0) return -1;
  if (s.nsp == 0) tv_unit_axes(L, &y, 2, 1, false);
  tv_transpose(L, &y, p.y_perm);
  tv_cast(L, &y, s.rt->et);
  if (check_result(L, &y, op->results[0]) != 0) return -1;
  lw_bind(L, op->results[0], y.v);
  return 0;
}

int lower_convolution(Lower *L, const Op *op) {
  if (op->n_operands != 2 || op->n_results != 1)
    return lw_unsupported(L, "expected 2 operands and 1 result");
  return conv_lower(L, op, ir_op_attr(op, "padding"), NULL);
}

/* dynamic_conv: a convolution whose padding is its third operand, a
 * tensor<Nx2xiK>.  JAX emits it for padding='SAME' over a symbolic spatial
 * dimension, computing the padding from the dimension.  A constant padding
 * is the attribute of convolution; a computed one becomes a Pad. */
int lower_dynamic_conv(Lower *L, const Op *op) {
  if (op->n_operands != 3 || op->n_results != 1)
    return lw_unsupported(L, "expected 3 operands (lhs, rhs, padding) and 1 result");
  const Value *padding = op->operands[2];
  const Type *pt = &padding->type;
  int nsp = op->operands[0]->type.rank - 2;
  if (pt->kind != TK_TENSOR || !et_is_int(pt->et) || pt->rank != 2 || pt->dims[0] != nsp ||
      pt->dims[1] != 2) {
    char ts[128];
    return lw_unsupported(L, "the padding operand has type %s, expected tensor<%dx2x(integer)>",
                          type_str(pt, ts, sizeof ts), nsp < 0 ? 0 : nsp);
  }
  const Attr *value = padding->def && padding->def->kind == OP_CONSTANT
                          ? ir_op_attr(padding->def, "value")
                          : NULL;
  if (value) return conv_lower(L, op, value, NULL);
  return conv_lower(L, op, NULL, padding);
}

/* ===================================================================
 * reduce_window
 * =================================================================== */

typedef enum Reducer { RED_ADD, RED_MUL, RED_MAX, RED_MIN, RED_AND, RED_OR } Reducer;

/* The body's reduction: one binary op of the two block arguments, returned. */
static bool body_reducer(const Op *op, Reducer *out) {
  if (op->n_regions != 1 || op->regions[0]->n_blocks != 1) return false;
  const Block *b = op->regions[0]->blocks[0];
  if (b->n_args != 2 || b->n_ops != 2) return false;
  const Op *f = b->ops[0], *ret = b->ops[1];
  if (ret->kind != OP_RETURN && ret->kind != OP_FUNC_RETURN && ret->kind != OP_RETURN_SHORT)
    return false;
  if (f->n_operands != 2 || f->n_results != 1 || ret->n_operands != 1 ||
      ret->operands[0] != f->results[0])
    return false;
  const Value *a0 = f->operands[0], *a1 = f->operands[1];
  if (!((a0 == b->args[0] && a1 == b->args[1]) || (a0 == b->args[1] && a1 == b->args[0])))
    return false;
  switch (f->kind) {
  case OP_ADD: *out = RED_ADD; return true;
  case OP_MULTIPLY: *out = RED_MUL; return true;
  case OP_MAXIMUM: *out = RED_MAX; return true;
  case OP_MINIMUM: *out = RED_MIN; return true;
  case OP_AND: *out = RED_AND; return true;
  case OP_OR: *out = RED_OR; return true;
  default: return false;
  }
}

/* One element of type et as a double.  64-bit integers beyond 2^53 are not
 * read (false), except their extremes, which become +-2^63 and 2^64: the
 * identities of max and min stay recognisable and nothing else rounds onto
 * them. */
static bool scalar_of(ElemType et, const uint8_t *p, double *out) {
  switch (et) {
  case ET_F32: case ET_F64: case ET_F16: case ET_BF16: case ET_BOOL: case ET_U8: case ET_I8:
  case ET_I16: case ET_U16: case ET_I32: case ET_U32:
    *out = elem_load(p, et, 0);
    return true;
  case ET_I64: {
    int64_t x;
    memcpy(&x, p, 8);
    if (x != INT64_MIN && x != INT64_MAX && (x > (INT64_C(1) << 53) || x < -(INT64_C(1) << 53)))
      return false;
    *out = (double)x;
    return true;
  }
  case ET_U64: {
    uint64_t x;
    memcpy(&x, p, 8);
    if (x != UINT64_MAX && x > (UINT64_C(1) << 53)) return false;
    *out = (double)x;
    return true;
  }
  default: return false;
  }
}

/* The value of a scalar operand when it is a constant: an initializer, or in
 * the HLO a stablehlo.constant seen through broadcasts and reshapes (JAX
 * writes the init of a pool as broadcast_in_dim of a constant). */
static bool constant_scalar(Lower *L, const Value *v, double *out) {
  const OValue *ov = v->lowered;
  const Data *d = ov ? og_const_data(ov) : NULL;
  if (d && ov->type.rank >= 0 && d->nbytes == et_size(ov->type.et) && d->nbytes > 0)
    return scalar_of(ov->type.et, data_bytes(L->c, d), out);
  for (int hops = 0; v && v->def && hops < 16; hops++) {
    const Op *def = v->def;
    if (def->kind == OP_CONSTANT) {
      const Attr *a = ir_op_attr(def, "value");
      if (!a || a->kind != AK_DENSE || !a->dense || !(a->dense->splat || a->dense->numel == 1) ||
          a->dense->data.nbytes < et_size(a->dense->et) || et_size(a->dense->et) == 0)
        return false;
      return scalar_of(a->dense->et, data_bytes(L->c, &a->dense->data), out);
    }
    if (def->kind != OP_BROADCAST_IN_DIM && def->kind != OP_RESHAPE) return false;
    if (def->n_operands < 1) return false;
    v = def->operands[0];
  }
  return false;
}

/* Is v the identity of the reduction on type et (so it can be left out)?
 * (For 64 bits, 2^63 - 1 and 2^64 - 1 round to what scalar_of gives.) */
static bool is_neutral(Reducer red, ElemType et, double v) {
  int bits = (int)et_size(et) * 8;
  double lowest = et_is_float(et) ? -INFINITY : et_is_signed_int(et) ? -ldexp(1, bits - 1) : 0;
  double highest = et_is_float(et)         ? INFINITY
                   : et == ET_BOOL         ? 1
                   : et_is_signed_int(et) ? ldexp(1, bits - 1) - 1
                                          : ldexp(1, bits) - 1;
  switch (red) {
  case RED_ADD: return v == 0;
  case RED_MUL: return v == 1;
  case RED_MAX: return v == lowest;
  case RED_MIN: return v == highest;
  case RED_AND: return et == ET_BOOL ? v != 0 : et_is_signed_int(et) ? v == -1 : v == highest;
  case RED_OR: return v == 0;
  }
  return false;
}

static const char *reducer_binary_op(Reducer red, ElemType et) {
  switch (red) {
  case RED_ADD: return "Add";
  case RED_MUL: return "Mul";
  case RED_MAX: return et == ET_BOOL ? "Or" : "Max";
  case RED_MIN: return et == ET_BOOL ? "And" : "Min";
  case RED_AND: return et == ET_BOOL ? "And" : "BitwiseAnd";
  case RED_OR: return et == ET_BOOL ? "Or" : "BitwiseOr";
  }
  return "?";
}

typedef struct Window {
  int rank;
  Reducer red;
  ElemType et;
  int64_t win[MAX_RANK], str[MAX_RANK], wdil[MAX_RANK], lo[MAX_RANK], hi[MAX_RANK];
  const Value *init_hlo;
  bool neutral; /* the init is the reduction's identity */
} Window;

static bool trivial_axis(const Window *w, int a) {
  return w->win[a] == 1 && w->str[a] == 1 && w->lo[a] == 0 && w->hi[a] == 0;
}

/* Elements in one window (saturating). */
static int64_t window_count(const Window *w) {
  int64_t n = 1;
  for (int a = 0; a < w->rank; a++)
    n = w->win[a] > INT64_MAX / n ? INT64_MAX : n * w->win[a];
  return n;
}

/* Pads where padding > 0 with what a padded cell counts as: the identity
 * of a sum or product (0, 1), the init value for the idempotent reductions
 * (the same as their identity once the init is folded in, and known). */
static void pad_window(Lower *L, const Window *w, Tv *x) {
  int64_t lo[MAX_RANK], hi[MAX_RANK];
  bool any = false;
  for (int a = 0; a < w->rank; a++) {
    lo[a] = w->lo[a] > 0 ? w->lo[a] : 0;
    hi[a] = w->hi[a] > 0 ? w->hi[a] : 0;
    any |= lo[a] > 0 || hi[a] > 0;
  }
  if (!any) return;
  OValue *value = w->red == RED_ADD   ? lw_const_scalar(L, x->et, 0)
                  : w->red == RED_MUL ? lw_const_scalar(L, x->et, 1)
                                      : lw_cast(L, lw_get(L, w->init_hlo), x->et);
  tv_pad(L, x, lo, hi, value);
}

/* StableHLO folds the init value in once: op(result, init), unless it is
 * the identity. */
static void fold_init(Lower *L, const Window *w, Tv *y) {
  if (w->neutral) return;
  OValue *init = lw_cast(L, lw_get(L, w->init_hlo), y->et);
  tv_set(L, y, lw_op2(L, reducer_binary_op(w->red, y->et), y->v, init));
}

/* 1. Cumulative sums -> CumSum.  Returns 1 when the pattern does not match. */
static int rw_cumsum(Lower *L, const Window *w, Tv *x) {
  if (w->red != RED_ADD || w->et == ET_BOOL) return 1;
  int axis = -1;
  for (int a = 0; a < w->rank; a++) {
    if (trivial_axis(w, a)) continue;
    if (axis >= 0) return 1;
    axis = a;
  }
  if (axis < 0) return 1;
  int64_t n = x->d[axis], k = w->win[axis];
  if (n < 1 || w->str[axis] != 1 || w->wdil[axis] != 1 || k < n) return 1;
  bool reverse;
  if (w->lo[axis] == k - 1 && w->hi[axis] == 0) reverse = false;
  else if (w->lo[axis] == 0 && w->hi[axis] == k - 1) reverse = true;
  else return 1;
  /* onnxruntime's CumSum takes f32/f64/i32/i64; narrower integers sum in
   * i32 and wrap back the same way, unsigned ones in i64. */
  ElemType ct;
  if (et_is_float(w->et)) ct = w->et == ET_F64 ? ET_F64 : ET_F32;
  else if (w->et == ET_I32 || (et_is_int(w->et) && et_size(w->et) < 4)) ct = ET_I32;
  else ct = ET_I64;
  tv_cast(L, x, ct);
  OValue *in[2] = {x->v, lw_const_scalar(L, ET_I64, (double)axis)};
  ONode *node = lw_node(L, "CumSum", 2, in, 1);
  if (reverse) og_attr_int(L->c, node, "reverse", 1);
  tv_set(L, x, node->outputs[0]);
  fold_init(L, w, x);
  tv_cast(L, x, w->et);
  return 0;
}

/* 2. add / max / min as ONNX pools. */

/* The pool a window becomes: its compute type and the role of each axis. */
typedef struct PoolPlan {
  ElemType ct;          /* what onnxruntime pools and what holds the values exactly */
  int tr[MAX_RANK], nt; /* trivial axes: they play N and C */
  int sp[MAX_RANK], ns; /* the window's axes: the pool's spatial axes */
  bool explicit_pad;    /* padding as a Pad: onnxruntime wants pads < kernel */
} PoolPlan;

/* Returns 1 (with *why set) when the window or the type does not suit a
 * pool, else 0 with the plan. */
static int pool_plan(Lower *L, const Window *w, const Tv *x, bool can_unroll, const char **why,
                     PoolPlan *p) {
  int r = w->rank;
  if (w->red != RED_ADD && w->red != RED_MAX && w->red != RED_MIN) {
    *why = "no ONNX pool multiplies or takes logical and/or";
    return 1;
  }
  /* Compute type: what onnxruntime pools and what holds the values exactly. */
  ElemType et = w->et;
  if (et_is_float(et)) {
    /* Max and min are exact in any precision: f16 pools as f16; a sum is
     * accumulated in f32. */
    p->ct = et == ET_F64 ? ET_F64 : et == ET_F16 && w->red != RED_ADD ? ET_F16 : ET_F32;
    if (p->ct == ET_F64 && w->red == RED_ADD && can_unroll) {
      *why = "onnxruntime has no f64 AveragePool";
      return 1;
    }
  } else if (et_is_int(et) && w->red != RED_ADD && et_size(et) <= 4) {
    p->ct = et_size(et) <= 2 ? ET_F32 : ET_F64; /* both exact */
  } else {
    *why = "ONNX pools take floating-point tensors (and 8-bit MaxPool), and integer "
           "sums or 64-bit integers do not convert exactly";
    return 1;
  }
  p->nt = p->ns = 0;
  for (int a = 0; a < r; a++) {
    if (trivial_axis(w, a)) p->tr[p->nt++] = a;
    else p->sp[p->ns++] = a;
  }
  if (p->ns == 0 || p->ns > 3) {
    *why = p->ns == 0 ? "the window reduces nothing" : "ONNX pools have at most 3 spatial axes";
    return 1;
  }
  if (w->red == RED_ADD && !all_equal(w->wdil, r, 1) && L->opset < 19) {
    *why = "AveragePool takes dilations from opset 19 on";
    return 1;
  }
  /* More than two trivial axes: the ones after the first merge into C, which
   * needs static sizes for them and for the spatial axes. */
  if (p->nt > 2) {
    for (int i = 1; i < p->nt; i++)
      if (x->d[p->tr[i]] < 0) {
        *why = "merging the non-window axes into one needs their static sizes";
        return 1;
      }
    for (int i = 0; i < p->ns; i++)
      if (x->d[p->sp[i]] < 0) {
        *why = "merging the non-window axes into one needs static window axes";
        return 1;
      }
  }

  /* Padding: MaxPool skips padded cells and AveragePool counts them as
   * zeros, which is what XLA does.  Where onnxruntime's pads < kernel rule
   * fails, pad explicitly. */
  p->explicit_pad = false;
  for (int a = 0; a < r; a++)
    p->explicit_pad |= w->lo[a] >= w->win[a] || w->hi[a] >= w->win[a];
  /* A window wholly in explicit -inf padding comes out of onnxruntime's f32
   * MaxPool as -FLT_MAX, not -inf: the unrolled form gets the init exactly. */
  if (p->explicit_pad && w->red != RED_ADD && can_unroll) {
    *why = "the padding covers whole windows";
    return 1;
  }
  return 0;
}

/* x to the pool's layout (N, C, spatial...): the trivial axes first, then
 * unit axes added or the trivial axes after the first merged into C (their
 * sizes kept in kept[] for pool_layout_back). */
static void pool_layout(Lower *L, const PoolPlan *p, Tv *x, int64_t *kept) {
  int64_t perm[MAX_RANK], shape[MAX_RANK];
  for (int i = 0; i < p->nt; i++) perm[i] = p->tr[i];
  for (int i = 0; i < p->ns; i++) perm[p->nt + i] = p->sp[i];
  tv_transpose(L, x, perm);
  if (p->nt < 2) {
    tv_unit_axes(L, x, 0, 2 - p->nt, true);
  } else if (p->nt > 2) {
    for (int i = 0; i < x->rank; i++) kept[i] = x->d[i];
    shape[0] = 0;
    shape[1] = -1;
    for (int i = 0; i < p->ns; i++) shape[2 + i] = x->d[p->nt + i];
    tv_reshape(L, x, p->ns + 2, shape);
  }
}

/* The pool's result back to the operand's layout (rank r). */
static void pool_layout_back(Lower *L, const PoolPlan *p, Tv *x, int r, const int64_t *kept) {
  int64_t perm[MAX_RANK], inv[MAX_RANK], shape[MAX_RANK];
  if (p->nt < 2) {
    tv_unit_axes(L, x, 0, 2 - p->nt, false);
  } else if (p->nt > 2) {
    shape[0] = 0;
    for (int i = 1; i < p->nt; i++) shape[i] = kept[i];
    for (int i = 0; i < p->ns; i++) shape[p->nt + i] = x->d[2 + i];
    tv_reshape(L, x, r, shape);
  }
  for (int i = 0; i < p->nt; i++) perm[i] = p->tr[i];
  for (int i = 0; i < p->ns; i++) perm[p->nt + i] = p->sp[i];
  for (int i = 0; i < r; i++) inv[perm[i]] = i;
  tv_transpose(L, x, inv);
}

/* MaxPool or AveragePool of x (N, C, spatial...): max is MaxPool, min is
 * -MaxPool(-x) (x came negated), add is AveragePool times the window size. */
static void emit_pool(Lower *L, const Window *w, const PoolPlan *p, Tv *x) {
  int ns = p->ns;
  int64_t kernel[3], strides[3], dil[3], pads[6];
  for (int i = 0; i < ns; i++) {
    int a = p->sp[i];
    kernel[i] = w->win[a];
    strides[i] = w->str[a];
    dil[i] = w->wdil[a];
    pads[i] = p->explicit_pad || w->lo[a] < 0 ? 0 : w->lo[a];
    pads[ns + i] = p->explicit_pad || w->hi[a] < 0 ? 0 : w->hi[a];
  }
  bool is_max = w->red != RED_ADD;
  ONode *n = lw_node(L, is_max ? "MaxPool" : "AveragePool", 1, &x->v, 1);
  og_attr_ints(L->c, n, "kernel_shape", kernel, ns);
  og_attr_ints(L->c, n, "strides", strides, ns);
  og_attr_ints(L->c, n, "pads", pads, 2 * ns);
  if (is_max || !all_equal(dil, ns, 1)) og_attr_ints(L->c, n, "dilations", dil, ns);
  if (!is_max) og_attr_int(L->c, n, "count_include_pad", 1);
  for (int i = 0; i < ns; i++)
    x->d[2 + i] = window_out_len(x->d[2 + i], pads[i], pads[ns + i], kernel[i], dil[i], strides[i]);
  tv_set(L, x, n->outputs[0]);
  if (w->red == RED_ADD) {
    double size = 1;
    for (int i = 0; i < ns; i++) size *= (double)kernel[i];
    tv_set(L, x, lw_op2(L, "Mul", x->v, lw_const_scalar(L, p->ct, size)));
  } else if (w->red == RED_MIN) {
    tv_unary(L, x, "Neg");
  }
}

/* Returns 1 (with *why set) when the window or the type does not suit a
 * pool. */
static int rw_pool(Lower *L, const Window *w, Tv *x, bool can_unroll, const char **why) {
  PoolPlan p;
  if (pool_plan(L, w, x, can_unroll, why, &p) != 0) return 1;
  int64_t kept[MAX_RANK] = {0};
  tv_cast(L, x, p.ct);
  tv_crop_negative(L, x, 0, w->rank, w->lo, w->hi);
  if (p.explicit_pad) pad_window(L, w, x);
  if (w->red == RED_MIN) tv_unary(L, x, "Neg");
  pool_layout(L, &p, x, kept);
  emit_pool(L, w, &p, x);
  pool_layout_back(L, &p, x, w->rank, kept);
  fold_init(L, w, x);
  tv_cast(L, x, w->et);
  return 0;
}

/* 3. The reduction of one strided Slice of the padded input per window
 * offset: exact for every type. */
static int rw_unrolled(Lower *L, const Window *w, Tv *x, const char *why_not_pool) {
  int r = w->rank;
  int64_t count = window_count(w);
  if (count > MAX_UNROLLED_WINDOW)
    return lw_unsupported(L, "the window is not an ONNX pool (%s), and its %lld elements "
                             "are more than the %d this converter unrolls",
                          why_not_pool, (long long)count, MAX_UNROLLED_WINDOW);
  ElemType et = w->et, ct;
  if (et == ET_BOOL) {
    if (w->red == RED_ADD || w->red == RED_MUL)
      return lw_unsupported(L, "arithmetic reduction of booleans");
    ct = ET_BOOL;
  } else if (et_is_float(et)) {
    if (w->red == RED_AND || w->red == RED_OR)
      return lw_unsupported(L, "logical reduction of floating-point values");
    ct = et == ET_F64 ? ET_F64 : et == ET_F16 && w->red != RED_ADD && w->red != RED_MUL ? ET_F16
                                                                                       : ET_F32;
  } else if (et_is_int(et) && (w->red == RED_AND || w->red == RED_OR)) {
    if (L->opset < 18) return lw_unsupported(L, "bitwise and/or need opset 18");
    ct = et;
  } else if (et_is_int(et)) {
    /* onnxruntime's Add/Mul/Max/Min take 32- and 64-bit integers; narrower
     * ones compute in i32 and wrap back the same way on the final Cast. */
    ct = et_size(et) < 4 ? ET_I32 : et;
  } else {
    return lw_unsupported(L, "element type %s", et_mlir_name(et));
  }
  tv_cast(L, x, ct);
  tv_crop_negative(L, x, 0, w->rank, w->lo, w->hi);
  pad_window(L, w, x);

  /* Offset o of axis a reads o*dil, o*dil + stride, ...: the end is counted
   * from the back (the window's span after o), so it holds for dynamic
   * sizes too. */
  OValue **parts = arena_alloc(L->c->arena, sizeof(OValue *) * (size_t)count);
  int64_t off[MAX_RANK] = {0};
  int64_t out_d[MAX_RANK];
  for (int k = 0; k < count; k++) {
    Tv s = *x;
    int64_t axes[MAX_RANK], starts[MAX_RANK], ends[MAX_RANK], steps[MAX_RANK];
    int n = 0;
    for (int a = 0; a < r; a++) {
      if (w->win[a] == 1 && w->str[a] == 1) continue;
      int64_t span = (w->win[a] - 1) * w->wdil[a] + 1, start = off[a] * w->wdil[a];
      axes[n] = a;
      starts[n] = start;
      ends[n] = span - 1 - start == 0 ? INT64_MAX : -(span - 1 - start);
      steps[n++] = w->str[a];
    }
    tv_slice(L, &s, n, axes, starts, ends, steps);
    parts[k] = s.v;
    memcpy(out_d, s.d, sizeof(int64_t) * (size_t)r);
    for (int a = r - 1; a >= 0; a--) { /* next offset, last axis fastest */
      if (++off[a] < w->win[a]) break;
      off[a] = 0;
    }
  }
  memcpy(x->d, out_d, sizeof(int64_t) * (size_t)r);
  const char *variadic = NULL;
  if (et_is_float(ct) && w->red == RED_ADD) variadic = "Sum";
  else if (ct != ET_BOOL && (w->red == RED_MAX || w->red == RED_MIN))
    variadic = w->red == RED_MAX ? "Max" : "Min";
  if (count == 1) {
    x->v = parts[0];
  } else if (variadic) {
    tv_set(L, x, lw_node(L, variadic, (int)count, parts, 1)->outputs[0]);
  } else {
    OValue *acc = parts[0];
    for (int k = 1; k < count; k++) {
      acc = lw_op2(L, reducer_binary_op(w->red, ct), acc, parts[k]);
      og_set_type(L->c, acc, ct, r, out_d);
    }
    x->v = acc;
  }
  fold_init(L, w, x);
  tv_cast(L, x, et);
  return 0;
}

/* 4. Any other associative body (cumlogsumexp's logaddexp; the (value,
 * tangent) selection of a max pool's jvp, over two inputs), and windows on
 * a base-dilated input, with the body itself (lw_apply_body), one axis at a
 * time, the last first (XLA walks a window in row-major order):
 *   - the axis is laid out as XLA reads it, base dilation and padding
 *     included, by one Gather; a constant mask says which positions hold an
 *     element (padding and holes hold none: XLA skips them);
 *   - R_1 = x and R_2k(i) = body(R_k(i), R_k(i + k*dil)) fold runs of 1, 2,
 *     4, ... elements; the window size's binary digits join those runs in
 *     order: ceil(log2 window) + popcount - 1 applications;
 *   - where one side holds no element, the other is taken as it is (Where
 *     on the masks), so padding never meets the body;
 *   - the stride is a Slice with steps at the end.
 * After the last axis the init joins as XLA starts from it, body(init, r),
 * and windows without any element are the init.  Windowed axes must be
 * static. */

/* The longest axis laid out for the body (base dilation and padding
 * included): its positions become a constant of Gather indices. */
#define MAX_LAID_OUT (INT64_C(1) << 24)

/* The windows of an axis of length n (static), -1 after reporting an
 * axis too long to lay out. */
static int64_t rw_axis_windows(Lower *L, int64_t n, int64_t win, int64_t str, int64_t wdil,
                               int64_t bdil, int64_t lo, int64_t hi) {
  int64_t dilated = n == 0 ? 0 : (n - 1) * bdil + 1, len = dilated + lo + hi;
  if (len > MAX_LAID_OUT) {
    lw_unsupported(L, "an axis of %lld elements once dilated and padded (at most %lld)",
                   (long long)len, (long long)MAX_LAID_OUT);
    return -1;
  }
  int64_t n_out = len - ((win - 1) * wdil + 1) + 1;
  return n_out < 1 ? 0 : (n_out - 1) / str + 1;
}

/* Where(c, a, b) for values of type et: onnxruntime has no u64 Where, and
 * i64 of the same bits (Cast keeps them) chooses alike. */
static OValue *where_of(Lower *L, OValue *c, const Tv *a, OValue *b) {
  if (a->et != ET_U64) return lw_op3(L, "Where", c, a->v, b);
  /* b may be a rank-0 init: each cast keeps its operand's shape */
  OValue *ai = lw_cast(L, a->v, ET_I64), *bi = lw_cast(L, b, ET_I64);
  OValue *w = lw_typed(L, lw_op3(L, "Where", c, ai, bi), ET_I64, a->rank, a->d);
  return lw_cast(L, w, ET_U64);
}

/* Booleans of shape [1.., n at axis, ..1] (rank r) as a constant. */
static OValue *axis_mask(Lower *L, const bool *m, int64_t n, int axis, int r) {
  int64_t d[MAX_RANK];
  for (int i = 0; i < r; i++) d[i] = i == axis ? n : 1;
  uint8_t *buf = arena_alloc(L->c->arena, (size_t)n + 1);
  for (int64_t i = 0; i < n; i++) buf[i] = m[i];
  return lw_const_data(L, ET_BOOL, r, d, (Data){DATA_RAW, buf, (size_t)n});
}

typedef struct BodyFold {
  Lower *L;
  const Block *body;   /* combines n values with n values */
  const Block *select; /* or: picks a side by the first values (select_and_scatter) */
  ElemType select_et;  /* what select reads; the keys travel as their bits in i64 for u64 */
  int n;  /* inputs */
  int r;  /* rank */
  int axis;
} BodyFold;

/* body(a, b) over n inputs each, where both hold elements (ma & mb at each
 * position, of length len), else whichever does.  out[] gets the values;
 * returns -1 after reporting. */
static int fold_pair(BodyFold *f, Tv *a, Tv *b, const bool *ma, const bool *mb, int64_t len,
                     Tv *out) {
  Lower *L = f->L;
  OValue **args = arena_alloc(L->c->arena, sizeof(OValue *) * (size_t)(2 * f->n));
  OValue **res = arena_alloc(L->c->arena, sizeof(OValue *) * (size_t)f->n);
  for (int i = 0; i < f->n; i++) {
    args[i] = a[i].v;
    args[f->n + i] = b[i].v;
  }
  if (f->select) { /* select(a, b) keeps a, else b: every value follows the keys */
    OValue *keep;
    OValue *ka = lw_cast(L, a[0].v, f->select_et), *kb = lw_cast(L, b[0].v, f->select_et);
    if (lw_apply_body(L, f->select, (OValue *[]){ka, kb}, a[0].rank, a[0].d, &keep) != 0)
      return -1;
    for (int i = 0; i < f->n; i++) {
      res[i] = where_of(L, keep, &a[i], b[i].v);
      og_set_type(L->c, res[i], a[i].et, a[i].rank, a[i].d);
    }
  } else if (lw_apply_body(L, f->body, args, a[0].rank, a[0].d, res) != 0) {
    return -1;
  }
  bool *both = arena_alloc(L->c->arena, (size_t)len + 1);
  bool all = true;
  for (int64_t p = 0; p < len; p++) {
    both[p] = ma[p] && mb[p];
    all &= both[p];
  }
  OValue *mboth = all ? NULL : axis_mask(L, both, len, f->axis, f->r);
  OValue *mfirst = all ? NULL : axis_mask(L, ma, len, f->axis, f->r);
  for (int i = 0; i < f->n; i++) {
    out[i] = a[i];
    tv_set(L, &out[i], res[i]);
    if (all) continue;
    Tv one = a[i];
    tv_set(L, &one, where_of(L, mfirst, &a[i], b[i].v));
    Tv folded = a[i];
    folded.v = res[i];
    tv_set(L, &out[i], where_of(L, mboth, &folded, one.v));
  }
  return 0;
}

/* Slices [start, start + len) of axis f->axis of n values into out. */
static void slice_all(BodyFold *f, const Tv *x, int64_t start, int64_t len, Tv *out) {
  int64_t ax = f->axis, end = start + len, step = 1;
  for (int i = 0; i < f->n; i++) {
    out[i] = x[i];
    tv_slice(f->L, &out[i], 1, &ax, &start, &end, &step);
  }
}

/* One axis: lays it out (Gather), folds windows of `win` elements spaced
 * by `wdil`, strides.  *mask_out gets which of the n_out windows hold an
 * element (NULL when all do). */
static int fold_axis(BodyFold *f, Tv *x, int64_t win, int64_t str, int64_t wdil, int64_t bdil,
                     int64_t lo, int64_t hi, bool **mask_out) {
  Lower *L = f->L;
  Arena *ar = L->c->arena;
  int axis = f->axis;
  int64_t n = x[0].d[axis];
  int64_t dilated = n == 0 ? 0 : (n - 1) * bdil + 1, len = dilated + lo + hi;
  int64_t span = (win - 1) * wdil + 1, n_out = len - span + 1;
  /* callers pass axes with at least one window (rw_axis_windows) */
  H2O_CHECK(L->c, n_out >= 1 && len <= MAX_LAID_OUT);
  bool *valid = arena_alloc(ar, (size_t)(len > 0 ? len : 0) + 1);
  int64_t *idx = arena_alloc(ar, sizeof(int64_t) * (size_t)((len > 0 ? len : 0) + 1));
  bool moved = bdil != 1 || lo != 0 || hi != 0;
  for (int64_t p = 0; p < len; p++) {
    int64_t q = p - lo;
    valid[p] = q >= 0 && q < dilated && q % bdil == 0;
    idx[p] = valid[p] ? q / bdil : 0; /* a hole reads any element: masked */
  }
  if (moved) {
    OValue *ind = lw_const_data(L, ET_I64, 1, &len,
                                (Data){DATA_RAW, (uint8_t *)idx, sizeof(int64_t) * (size_t)len});
    for (int i = 0; i < f->n; i++) {
      ONode *g = lw_node(L, "Gather", 2, (OValue *[]){x[i].v, ind}, 1);
      og_attr_int(L->c, g, "axis", axis);
      x[i].d[axis] = len;
      tv_set(L, &x[i], g->outputs[0]);
    }
  }
  /* R_1, R_2, R_4, ...: levels[j] folds runs of 2^j elements; lens[j] of them */
  int top = 0;
  while (((int64_t)2 << top) <= win) top++;
  Tv **levels = arena_alloc(ar, sizeof(Tv *) * (size_t)(top + 1));
  bool **masks = arena_alloc(ar, sizeof(bool *) * (size_t)(top + 1));
  int64_t *lens = arena_alloc(ar, sizeof(int64_t) * (size_t)(top + 1));
  levels[0] = x;
  masks[0] = valid;
  lens[0] = len;
  for (int j = 0; j < top; j++) {
    int64_t step = ((int64_t)1 << j) * wdil, l = lens[j] - step;
    Tv *a = arena_alloc(ar, sizeof(Tv) * (size_t)f->n);
    Tv *b = arena_alloc(ar, sizeof(Tv) * (size_t)f->n);
    levels[j + 1] = arena_alloc(ar, sizeof(Tv) * (size_t)f->n);
    slice_all(f, levels[j], 0, l, a);
    slice_all(f, levels[j], step, l, b);
    if (fold_pair(f, a, b, masks[j], masks[j] + step, l, levels[j + 1]) != 0) return -1;
    masks[j + 1] = arena_alloc(ar, (size_t)l + 1);
    for (int64_t p = 0; p < l; p++) masks[j + 1][p] = masks[j][p] || masks[j][p + step];
    lens[j + 1] = l;
  }
  Tv *acc = arena_alloc(ar, sizeof(Tv) * (size_t)f->n);
  bool *macc = arena_alloc(ar, (size_t)n_out + 1);
  slice_all(f, levels[top], 0, n_out, acc);
  memcpy(macc, masks[top], (size_t)n_out);
  int64_t off = (int64_t)1 << top;
  for (int j = top - 1; j >= 0; j--) {
    if (!(win >> j & 1)) continue;
    Tv *b = arena_alloc(ar, sizeof(Tv) * (size_t)f->n);
    Tv *next = arena_alloc(ar, sizeof(Tv) * (size_t)f->n);
    slice_all(f, levels[j], off * wdil, n_out, b);
    if (fold_pair(f, acc, b, macc, masks[j] + off * wdil, n_out, next) != 0) return -1;
    for (int64_t p = 0; p < n_out; p++) macc[p] = macc[p] || masks[j][p + off * wdil];
    acc = next;
    off += (int64_t)1 << j;
  }
  /* stride */
  int64_t n_str = (n_out - 1) / str + 1;
  bool *mout = arena_alloc(ar, (size_t)n_str + 1), all = true;
  for (int64_t p = 0; p < n_str; p++) all &= mout[p] = macc[p * str];
  for (int i = 0; i < f->n; i++) {
    x[i] = acc[i];
    if (str > 1) {
      int64_t ax = axis, start = 0, end = n_out, step = str;
      tv_slice(L, &x[i], 1, &ax, &start, &end, &step);
    }
  }
  *mask_out = all ? NULL : mout;
  return 0;
}

static int rw_by_body(Lower *L, const Op *op, const int64_t *win, const int64_t *str,
                      const int64_t *wdil, const int64_t *bdil, const int64_t *pad) {
  int n = op->n_operands / 2;
  const Block *body = op->regions[0]->blocks[0];
  if (!lw_body_is_associative(body))
    return lw_unsupported(L, "a reduce_window body that is neither one add, multiply, maximum, "
                             "minimum, and or or of its arguments nor another associative form "
                             "(logaddexp; a selection by comparison): XLA folds each window in "
                             "order, and no other order is known to give its result");
  const Type *t0 = &op->operands[0]->type;
  int r = t0->rank;
  Tv *x = arena_alloc(L->c->arena, sizeof(Tv) * (size_t)n);
  for (int i = 0; i < n; i++) {
    const Type *ti = &op->operands[i]->type, *to = &op->results[i]->type;
    if (ti->kind != TK_TENSOR || ti->rank != r || to->rank != r ||
        !dims_equal(ti->dims, t0->dims, r))
      return lw_unsupported(L, "reduce_window inputs of different shapes");
    tv_from(L, &x[i], op->operands[i]);
  }
  /* the result's shape, checked; no window at all: the inits */
  int64_t out_d[MAX_RANK];
  bool empty = false;
  for (int a = 0; a < r; a++) {
    bool trivial = win[a] == 1 && str[a] == 1 && bdil[a] == 1 && pad[2 * a] == 0 &&
                   pad[2 * a + 1] == 0;
    if (trivial) {
      out_d[a] = x[0].d[a];
    } else if (x[0].d[a] == DIM_DYN) {
      return lw_unsupported(L, "a window over the dynamic dimension %d (this body is folded "
                               "with static lengths)", a);
    } else {
      out_d[a] = rw_axis_windows(L, x[0].d[a], win[a], str[a], wdil[a], bdil[a], pad[2 * a],
                                 pad[2 * a + 1]);
      if (out_d[a] < 0) return -1;
    }
    empty |= out_d[a] == 0;
  }
  for (int i = 0; i < n; i++) {
    Tv expect = x[i];
    memcpy(expect.d, out_d, sizeof(int64_t) * (size_t)r);
    if (check_result(L, &expect, op->results[i]) != 0) return -1;
  }
  if (empty) {
    for (int i = 0; i < n; i++)
      lw_bind(L, op->results[i], lw_op2(L, "Expand", lw_get(L, op->operands[n + i]),
                                        lw_const_i64s(L, r, out_d)));
    return 0;
  }
  bool **masks = arena_alloc(L->c->arena, sizeof(bool *) * (size_t)r);
  BodyFold f = {L, body, NULL, ET_UNDEF, n, r, 0};
  for (int a = r - 1; a >= 0; a--) {
    masks[a] = NULL;
    bool trivial = win[a] == 1 && str[a] == 1 && bdil[a] == 1 && pad[2 * a] == 0 &&
                   pad[2 * a + 1] == 0;
    if (trivial) continue;
    f.axis = a;
    if (fold_axis(&f, x, win[a], str[a], wdil[a], bdil[a], pad[2 * a], pad[2 * a + 1],
                  &masks[a]) != 0)
      return -1;
  }
  /* XLA starts from the init: body(init, r); no element at all: the init */
  OValue **args = arena_alloc(L->c->arena, sizeof(OValue *) * (size_t)(2 * n));
  OValue **res = arena_alloc(L->c->arena, sizeof(OValue *) * (size_t)n);
  for (int i = 0; i < n; i++) {
    args[i] = lw_get(L, op->operands[n + i]);
    args[n + i] = x[i].v;
  }
  if (lw_apply_body(L, body, args, r, x[0].d, res) != 0) return -1;
  for (int i = 0; i < n; i++) {
    tv_set(L, &x[i], res[i]);
    for (int a = 0; a < r; a++)
      if (masks[a])
        tv_set(L, &x[i], where_of(L, axis_mask(L, masks[a], x[i].d[a], a, r), &x[i], args[i]));
    if (check_result(L, &x[i], op->results[i]) != 0) return -1;
  }
  for (int i = 0; i < n; i++) lw_bind(L, op->results[i], x[i].v);
  return 0;
}

int lower_reduce_window(Lower *L, const Op *op) {
  int n_in = op->n_operands / 2;
  if (n_in < 1 || op->n_operands != 2 * n_in || op->n_results != n_in || op->n_regions != 1 ||
      op->regions[0]->n_blocks != 1 || op->regions[0]->blocks[0]->n_args != 2 * n_in)
    return diag_error_op(L->c, H2O_EINPUT, op, "reduce_window expects N inputs, N init values, "
                                               "N results and a body of 2N arguments");
  Window w;
  memset(&w, 0, sizeof w);
  bool by_body = n_in != 1 || !body_reducer(op, &w.red);
  const Value *xv = op->operands[0];
  Value *res = op->results[0];
  if (xv->type.kind != TK_TENSOR || res->type.kind != TK_TENSOR ||
      xv->type.rank != res->type.rank || xv->type.rank > MAX_RANK)
    return lw_unsupported(L, "operand and result must be tensors of one rank");
  if (check_axes(L, &xv->type) != 0 || check_axes(L, &res->type) != 0) return -1;
  int r = w.rank = xv->type.rank;
  w.et = xv->type.et;
  w.init_hlo = op->operands[1];
  int64_t bdil[MAX_RANK], pad[2 * MAX_RANK];
  if (read_ints(L, ir_op_attr(op, "window_dimensions"), "window_dimensions", r, 1, w.win) != 0 ||
      read_ints(L, ir_op_attr(op, "window_strides"), "window_strides", r, 1, w.str) != 0 ||
      read_ints(L, ir_op_attr(op, "base_dilations"), "base_dilations", r, 1, bdil) != 0 ||
      read_ints(L, ir_op_attr(op, "window_dilations"), "window_dilations", r, 1, w.wdil) != 0 ||
      read_ints(L, ir_op_attr(op, "padding"), "padding", 2 * r, 0, pad) != 0)
    return -1;
  if (!ir_op_attr(op, "window_dimensions")) return lw_unsupported(L, "no window_dimensions");
  for (int a = 0; a < r; a++) {
    w.lo[a] = pad[2 * a];
    w.hi[a] = pad[2 * a + 1];
    if (w.win[a] < 1 || w.str[a] < 1 || w.wdil[a] < 1 || bdil[a] < 1)
      return lw_unsupported(L, "window sizes, strides and dilations must be positive");
  }
  if (by_body || !all_equal(bdil, r, 1))
    return rw_by_body(L, op, w.win, w.str, w.wdil, bdil, pad);
  double init;
  w.neutral = constant_scalar(L, w.init_hlo, &init) && is_neutral(w.red, w.et, init);

  /* The result shape the attributes give, checked against the result type. */
  Tv x;
  tv_from(L, &x, xv);
  Tv expect = x;
  for (int a = 0; a < r; a++)
    expect.d[a] = window_out_len(x.d[a], w.lo[a], w.hi[a], w.win[a], w.wdil[a], w.str[a]);
  if (check_result(L, &expect, res) != 0) return -1;

  int rc = rw_cumsum(L, &w, &x);
  const char *why = "";
  if (rc == 1) rc = rw_pool(L, &w, &x, window_count(&w) <= MAX_UNROLLED_WINDOW, &why);
  /* a window too large to unroll (a long cumprod, cummax of i64): doubling */
  if (rc == 1 && window_count(&w) > MAX_UNROLLED_WINDOW)
    return rw_by_body(L, op, w.win, w.str, w.wdil, bdil, pad);
  if (rc == 1) rc = rw_unrolled(L, &w, &x, why);
  if (rc != 0) return -1;
  if (check_result(L, &x, res) != 0) return -1;
  lw_bind(L, res, x.v);
  return 0;
}

/* select_and_scatter's selection (lower/pool_grad.c): x[0] the keys, x[1..n)
 * what follows them (the positions), folded over each window by the
 * `select` region as rw_by_body folds a body: select(a, b) keeps a, else b,
 * as XLA walks a window.  Padding is never selected.  out[i] get the
 * selected values per window (out_dims); *empty the windows wholly in the
 * padding as a bool constant, NULL when there are none.  Windowed axes
 * must be static. */
int lw_window_select(Lower *L, const Block *select, int n, OValue *const *x,
                     const ElemType *ets, int rank, const int64_t *dims, const int64_t *win,
                     const int64_t *str, const int64_t *pad, OValue **out, int64_t *out_dims,
                     OValue **empty) {
  Tv *t = arena_alloc(L->c->arena, sizeof(Tv) * (size_t)n);
  for (int i = 0; i < n; i++) {
    /* onnxruntime has no u64 Where: u64 keys travel as i64 of the same bits */
    t[i].et = ets[i] == ET_U64 ? ET_I64 : ets[i];
    t[i].v = lw_cast(L, x[i], t[i].et);
    t[i].rank = rank;
    memcpy(t[i].d, dims, sizeof(int64_t) * (size_t)rank);
  }
  bool *masks[MAX_RANK] = {0};
  BodyFold f = {L, NULL, select, ets[0], n, rank, 0};
  for (int a = rank - 1; a >= 0; a--) { /* row-major: the last axis first */
    if (win[a] == 1 && str[a] == 1 && pad[2 * a] == 0 && pad[2 * a + 1] == 0) continue;
    if (dims[a] == DIM_DYN)
      return lw_unsupported(L, "a window over the dynamic dimension %d", a);
    int64_t windows = rw_axis_windows(L, dims[a], win[a], str[a], 1, 1, pad[2 * a],
                                      pad[2 * a + 1]);
    if (windows < 0) return -1;
    if (windows == 0) return lw_unsupported(L, "no window on axis %d", a);
    f.axis = a;
    if (fold_axis(&f, t, win[a], str[a], 1, 1, pad[2 * a], pad[2 * a + 1], &masks[a]) != 0)
      return -1;
  }
  for (int i = 0; i < n; i++) out[i] = lw_cast(L, t[i].v, ets[i]);
  memcpy(out_dims, t[0].d, sizeof(int64_t) * (size_t)rank);
  *empty = NULL;
  bool any = false;
  for (int a = 0; a < rank; a++) any |= masks[a] != NULL;
  if (!any) return 0;
  int64_t numel = 1;
  for (int a = 0; a < rank; a++) {
    if (out_dims[a] < 0) return lw_unsupported(L, "padding over a dynamic dimension");
    numel *= out_dims[a];
  }
  uint8_t *buf = arena_alloc(L->c->arena, (size_t)numel + 1);
  int64_t pos[MAX_RANK] = {0};
  for (int64_t e = 0; e < numel; e++) {
    bool full = true;
    for (int a = 0; a < rank; a++) full &= !masks[a] || masks[a][pos[a]];
    buf[e] = !full;
    lw_next_pos(pos, out_dims, rank);
  }
  *empty = lw_const_data(L, ET_BOOL, rank, out_dims, (Data){DATA_RAW, buf, (size_t)numel});
  return 0;
}
