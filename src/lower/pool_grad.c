/* pool_grad.c - stablehlo.select_and_scatter: the gradient of a max pool,
 * which JAX emits for jax.grad through reduce_window max (nnx.max_pool,
 * lax.reduce_window with lax.max), e.g. when a training step is exported;
 * and its other forms (a min pool's gradient, lax internals).
 *
 * Other forms - select compare GT, LE or LT; scatter multiply, maximum or
 * minimum; integer elements; windows wholly in (or cropped by) the padding;
 * more than 3 windowed axes - select with lw_window_select (lower/conv.c):
 * the select region folds each window over (operand, flat position) pairs
 * as XLA walks it, padding never selected; then ScatterElements with the
 * scatter region's reduction puts each window's source on the selected
 * position.  A window with nothing to select sends its source to a spare
 * slot cut off after.  Among equal values XLA's CPU pick in strided windows
 * follows no fixed order (measured), so only tie-free windows are certain to
 * match there; unstrided ones keep the first in row-major order, as XLA.
 *
 * select_and_scatter picks one element per window with its `select` region
 * and adds the window's source value onto it; elements no window picks get
 * the init value.  For JAX's select - compare GE, which keeps the earlier
 * element on ties, so the first maximum in row-major window order wins -
 * that is exactly ONNX MaxPool's second output: the flat index of each
 * window's first maximum in the (unpadded) input; padded positions are never
 * picked by either.  So:
 *
 *   x -> Transpose(other axes first, window axes last) -> Reshape [M, 1, D..]
 *     -> MaxPool(kernel, strides, pads) indices [M, 1, O..]
 *   out = ScatterElements(Expand(init) over M*prod(D), flat indices,
 *                         flat source, reduction=add)
 *     -> Reshape, Transpose back.
 *
 * Overlapping windows that pick one element add up, as in XLA.  Axes the
 * window spans with window 1, stride 1 and no padding ride along in M, and
 * may be dynamic (a batch: the flat sizes are then read with Shape); the
 * windowed axes must be static.  NaN inside a window is where the two may differ (GE against NaN is
 * false, MaxPool skips NaN); JAX's max pool itself propagates NaN.
 */
#include "lower/lower.h"

#include <string.h>

/* The one op of a region besides its return, when it is `kind` applied to
 * the two block arguments in order (a, b); its op, else NULL. */
static const Op *region_op(const Region *r, OpKind kind) {
  if (r->n_blocks != 1) return NULL;
  const Block *b = r->blocks[0];
  if (b->n_args != 2 || b->n_ops != 2) return NULL;
  const Op *o = b->ops[0], *ret = b->ops[1];
  if (o->kind != kind || o->n_operands != 2 || o->n_results != 1 ||
      o->operands[0] != b->args[0] || o->operands[1] != b->args[1])
    return NULL;
  if (ret->kind != OP_RETURN || ret->n_operands != 1 || ret->operands[0] != o->results[0])
    return NULL;
  return o;
}

static bool select_is_ge(const Region *r) {
  const Op *o = region_op(r, OP_COMPARE);
  const Attr *a = o ? ir_op_attr(o, "comparison_direction") : NULL;
  return a && a->s && strcmp(a->s, "GE") == 0;
}

/* An integer list attribute of n entries (default `dflt` when absent). */
static int ints_attr(Lower *L, const Op *op, const char *name, int n, int64_t dflt, int64_t *out) {
  const Attr *a = ir_op_attr(op, name);
  if (!a) {
    for (int i = 0; i < n; i++) out[i] = dflt;
    return 0;
  }
  int64_t *v;
  if (ir_attr_i64s(L->c, a, &v) != n)
    return diag_error_op(L->c, H2O_EINPUT, op, "select_and_scatter: '%s' needs %d integers",
                         name, n);
  memcpy(out, v, sizeof(int64_t) * (size_t)n);
  return 0;
}

static OValue *transpose(Lower *L, OValue *x, const int64_t *perm, int rank, ElemType et,
                         const int64_t *dims) {
  ONode *n = lw_node(L, "Transpose", 1, &x, 1);
  og_attr_ints(L->c, n, "perm", perm, rank);
  return lw_typed(L, n->outputs[0], et, rank, dims);
}

static OValue *reshape(Lower *L, OValue *x, int rank, const int64_t *dims, ElemType et) {
  return lw_typed(L, lw_op2(L, "Reshape", x, lw_const_i64s(L, rank, dims)), et, rank, dims);
}

/* MaxPool's element types in onnxruntime (bf16 and the rest widen). */
static ElemType pool_type(ElemType et) {
  switch (et) {
  case ET_F16: case ET_F32: case ET_F64: case ET_I8: case ET_U8: return et;
  case ET_BF16: return ET_F32;
  default: return ET_UNDEF;
  }
}

/* ScatterElements' add in onnxruntime: f32, f64, i32, i64 (no f16). */
static ElemType scatter_type(ElemType et) {
  switch (et) {
  case ET_F32: case ET_F64: return et;
  case ET_F16: case ET_BF16: return ET_F32;
  default: return ET_I32; /* i8, u8: the cast back wraps as the narrow sums would */
  }
}

/* ---- any other form ------------------------------------------------------ */

/* The select region compares its two arguments GE, GT, LE or LT: a choice
 * that XLA's walk over the window and a fold in any grouping make alike
 * (the first maximum for GE, the last for GT, ...). */
static bool select_is_order(const Region *r) {
  const Op *o = region_op(r, OP_COMPARE);
  const Attr *a = o ? ir_op_attr(o, "comparison_direction") : NULL;
  return a && a->s &&
         (strcmp(a->s, "GE") == 0 || strcmp(a->s, "GT") == 0 || strcmp(a->s, "LE") == 0 ||
          strcmp(a->s, "LT") == 0);
}

/* The type ScatterElements computes `reduction` of et in: onnxruntime's
 * kernels take f32, f64, i32, i64; integers wrap back on the final Cast for
 * add and mul, and keep their order in a wider signed type for max and
 * min (u64 has none).  ET_UNDEF when there is no exact one. */
static ElemType general_scatter_type(ElemType et, const char *reduction) {
  bool ordered = strcmp(reduction, "max") == 0 || strcmp(reduction, "min") == 0;
  switch (et) {
  case ET_F32: case ET_F64: case ET_I32: case ET_I64: return et;
  case ET_F16: case ET_BF16: return ET_F32;
  case ET_I8: case ET_I16: case ET_U8: case ET_U16: return ET_I32;
  case ET_U32: return ET_I64;
  case ET_U64: return ordered ? ET_UNDEF : ET_I64;
  default: return ET_UNDEF;
  }
}

/* Selects with lw_window_select over (operand, its flat positions), then
 * scatters each window's source onto the selected position with
 * ScatterElements and the scatter region's reduction.  A window wholly in
 * the padding selects nothing: its source goes to a spare last slot, cut
 * off after.  The operand's shape must be static. */
static int select_and_scatter_general(Lower *L, const Op *op, const int64_t *win,
                                      const int64_t *str, const int64_t *pad) {
  const Type *t = &op->operands[0]->type, *ts = &op->operands[1]->type;
  int r = t->rank;
  static const struct { OpKind kind; const char *reduction; int opset; } scatters[] = {
      {OP_ADD, "add", 16}, {OP_MULTIPLY, "mul", 16}, {OP_MAXIMUM, "max", 18},
      {OP_MINIMUM, "min", 18}};
  const char *reduction = NULL;
  for (size_t i = 0; i < sizeof scatters / sizeof scatters[0] && !reduction; i++)
    if (region_op(op->regions[1], scatters[i].kind)) {
      if (L->opset < scatters[i].opset)
        return lw_unsupported(L, "a scatter region of %s needs opset %d (ScatterElements' "
                                 "reduction)", op_table[scatters[i].kind].name,
                              scatters[i].opset);
      reduction = scatters[i].reduction;
    }
  if (!reduction)
    return lw_unsupported(L, "a scatter region that is not one add, multiply, maximum or "
                             "minimum of its arguments (ScatterElements' reductions)");
  if (!select_is_order(op->regions[0]))
    return lw_unsupported(L, "a select region that is not one compare GE, GT, LE or LT of its "
                             "arguments");
  ElemType et = t->et, st = general_scatter_type(et, reduction);
  if (st == ET_UNDEF)
    return lw_unsupported(L, "a %s scatter of %s elements", reduction, et_mlir_name(et));
  if (!type_is_static(t) || !type_is_static(ts))
    return lw_unsupported(L, "this select_and_scatter over a dynamic shape");
  int64_t numel = type_numel(t), slots = numel + 1, flat = -1;
  OValue *range = lw_op3(L, "Range", lw_const_scalar(L, ET_I64, 0),
                         lw_const_scalar(L, ET_I64, (double)numel),
                         lw_const_scalar(L, ET_I64, 1));
  lw_typed(L, range, ET_I64, 1, &numel);
  OValue *pos = reshape(L, range, r, t->dims, ET_I64);
  OValue *x[2] = {lw_get(L, op->operands[0]), pos}, *sel[2], *empty;
  ElemType ets[2] = {et, ET_I64};
  int64_t odims[MAX_RANK];
  if (lw_window_select(L, op->regions[0]->blocks[0], 2, x, ets, r, t->dims, win, str, pad, sel,
                       odims, &empty) != 0)
    return -1;
  for (int a = 0; a < r; a++)
    if (odims[a] != ts->dims[a])
      return diag_error_op(L->c, H2O_EINPUT, op, "select_and_scatter: the source has %lld "
                           "windows on axis %d, not %lld", (long long)ts->dims[a], a,
                           (long long)odims[a]);
  OValue *idx = sel[1];
  if (empty)
    idx = lw_typed(L, lw_op3(L, "Where", empty, lw_const_scalar(L, ET_I64, (double)numel), idx),
                   ET_I64, r, odims);
  idx = reshape(L, idx, 1, &flat, ET_I64);
  OValue *src = reshape(L, lw_cast(L, lw_get(L, op->operands[1]), st), 1, &flat, st);
  OValue *base = lw_cast(L, lw_get(L, op->operands[2]), st);
  base = lw_typed(L, lw_op2(L, "Expand", base, lw_const_i64s(L, 1, &slots)), st, 1, &slots);
  ONode *sc = lw_node(L, "ScatterElements", 3, (OValue *[]){base, idx, src}, 1);
  og_attr_int(L->c, sc, "axis", 0);
  og_attr_string(L->c, sc, "reduction", reduction);
  OValue *out = lw_typed(L, sc->outputs[0], st, 1, &slots);
  int64_t zero = 0, ax = 0;
  OValue *in[4] = {out, lw_const_i64s(L, 1, &zero), lw_const_i64s(L, 1, &numel),
                   lw_const_i64s(L, 1, &ax)};
  out = lw_typed(L, lw_node(L, "Slice", 4, in, 1)->outputs[0], st, 1, &numel);
  out = reshape(L, out, r, t->dims, st);
  lw_bind(L, op->results[0], lw_cast(L, out, et));
  return 0;
}

int lower_select_and_scatter(Lower *L, const Op *op) {
  if (op->n_operands != 3 || op->n_results != 1 || op->n_regions != 2)
    return diag_error_op(L->c, H2O_EINPUT, op,
                         "select_and_scatter takes operand, source, init and two regions");
  const Type *t = &op->operands[0]->type, *ts = &op->operands[1]->type;
  int r = t->rank;
  if (r < 1 || r > MAX_RANK || ts->rank != r)
    return diag_error_op(L->c, H2O_EINPUT, op, "select_and_scatter: operand and source ranks");
  int64_t win[MAX_RANK], str[MAX_RANK], pad[2 * MAX_RANK];
  if (ints_attr(L, op, "window_dimensions", r, 1, win) != 0 ||
      ints_attr(L, op, "window_strides", r, 1, str) != 0 ||
      ints_attr(L, op, "padding", 2 * r, 0, pad) != 0)
    return -1;
  ElemType et = t->et, ct = pool_type(et);
  bool pool_form = select_is_ge(op->regions[0]) && region_op(op->regions[1], OP_ADD) &&
                   ct != ET_UNDEF && et_is_float(et);
  for (int d = 0; d < r && pool_form; d++)
    pool_form = win[d] >= 1 && str[d] >= 1 && pad[2 * d] >= 0 && pad[2 * d + 1] >= 0 &&
                pad[2 * d] < win[d] && pad[2 * d + 1] < win[d];
  if (!pool_form) return select_and_scatter_general(L, op, win, str, pad);

  /* Window axes last, in order; the others first, in order. */
  int64_t perm[MAX_RANK], inv[MAX_RANK], tdims[MAX_RANK], sdims[MAX_RANK];
  int nsp = 0, np = 0;
  for (int d = 0; d < r; d++)
    if (win[d] == 1 && str[d] == 1 && pad[2 * d] == 0 && pad[2 * d + 1] == 0) perm[np++] = d;
  int n_other = np;
  for (int d = 0; d < r; d++)
    if (!(win[d] == 1 && str[d] == 1 && pad[2 * d] == 0 && pad[2 * d + 1] == 0)) perm[np++] = d;
  nsp = r - n_other;
  if (nsp > 3) return select_and_scatter_general(L, op, win, str, pad); /* MaxPool: 3 at most */

  /* M is -1 (for Reshape) when an unwindowed axis is dynamic */
  int64_t m = 1, kernel[3], strides[3], pads[6], pool_in[5], pool_out[5];
  for (int i = 0; i < n_other; i++)
    m = m < 0 || t->dims[perm[i]] == DIM_DYN ? -1 : m * t->dims[perm[i]];
  pool_in[0] = pool_out[0] = m;
  pool_in[1] = pool_out[1] = 1;
  for (int i = 0; i < nsp; i++) {
    int d = (int)perm[n_other + i];
    int64_t lo = pad[2 * d], hi = pad[2 * d + 1];
    if (t->dims[d] == DIM_DYN || ts->dims[d] == DIM_DYN)
      return lw_unsupported(L, "a dynamic windowed axis (%d)", d);
    if (win[d] < 1 || str[d] < 1 || lo < 0 || hi < 0 || lo >= win[d] || hi >= win[d])
      return lw_unsupported(L, "window %lld, stride %lld, padding (%lld, %lld) on axis %d: "
                               "windows must not lie wholly in the padding",
                            (long long)win[d], (long long)str[d], (long long)lo, (long long)hi, d);
    kernel[i] = win[d];
    strides[i] = str[d];
    pads[i] = lo;
    pads[nsp + i] = hi;
    pool_in[2 + i] = t->dims[d];
    pool_out[2 + i] = (t->dims[d] + lo + hi - win[d]) / str[d] + 1;
    if (t->dims[d] + lo + hi < win[d] || ts->dims[d] != pool_out[2 + i])
      return diag_error_op(L->c, H2O_EINPUT, op,
                           "select_and_scatter: the source has %lld windows on axis %d, not %lld",
                           (long long)ts->dims[d], d, (long long)pool_out[2 + i]);
  }
  for (int i = 0; i < n_other; i++)
    if (ts->dims[perm[i]] != t->dims[perm[i]])
      return diag_error_op(L->c, H2O_EINPUT, op, "select_and_scatter: source and operand "
                                                 "differ on the unwindowed axis %d", (int)perm[i]);
  for (int i = 0; i < r; i++) {
    inv[perm[i]] = i;
    tdims[i] = t->dims[perm[i]];
    sdims[i] = ts->dims[perm[i]];
  }

  if (nsp == 0) { /* every element is its own window */
    ElemType at = scatter_type(ct);
    OValue *s = lw_cast(L, lw_get(L, op->operands[1]), at);
    OValue *init = lw_cast(L, lw_get(L, op->operands[2]), at);
    lw_bind(L, op->results[0], lw_cast(L, lw_typed(L, lw_op2(L, "Add", s, init), at, r, t->dims), et));
    return 0;
  }

  OValue *x_t = transpose(L, lw_cast(L, lw_get(L, op->operands[0]), ct), perm, r, ct, tdims);
  OValue *x = reshape(L, x_t, 2 + nsp, pool_in, ct);
  ONode *pool = lw_node(L, "MaxPool", 1, &x, 2);
  og_attr_ints(L->c, pool, "kernel_shape", kernel, nsp);
  og_attr_ints(L->c, pool, "strides", strides, nsp);
  og_attr_ints(L->c, pool, "pads", pads, 2 * nsp);
  lw_typed(L, pool->outputs[0], ct, 2 + nsp, pool_out);
  OValue *idx = lw_typed(L, pool->outputs[1], ET_I64, 2 + nsp, pool_out);

  /* Flat sizes: constants, or read with Shape when M is dynamic. */
  int64_t n_in = m < 0 ? -1 : type_numel(t), n_src = m < 0 ? -1 : type_numel(ts), flat = -1;
  ElemType st = scatter_type(ct);
  OValue *s = lw_cast(L, lw_get(L, op->operands[1]), st);
  s = reshape(L, transpose(L, s, perm, r, st, sdims), 1, &n_src, st);
  idx = reshape(L, idx, 1, &flat, ET_I64);
  OValue *in_size = lw_const_i64s(L, 1, &n_in), *in_shape = lw_const_i64s(L, r, tdims);
  if (m < 0) {
    int64_t one = 1;
    in_shape = lw_typed(L, lw_op1(L, "Shape", x_t), ET_I64, 1, (int64_t[]){r});
    in_size = lw_typed(L, lw_op1(L, "Shape", reshape(L, x_t, 1, &flat, ct)), ET_I64, 1, &one);
  }
  OValue *base = lw_cast(L, lw_get(L, op->operands[2]), st);
  base = lw_typed(L, lw_op2(L, "Expand", base, in_size), st, 1, &n_in);
  ONode *sc = lw_node(L, "ScatterElements", 3, (OValue *[]){base, idx, s}, 1);
  og_attr_int(L->c, sc, "axis", 0);
  og_attr_string(L->c, sc, "reduction", "add");
  OValue *out = lw_typed(L, sc->outputs[0], st, 1, &n_in);
  out = lw_typed(L, lw_op2(L, "Reshape", out, in_shape), st, r, tdims);
  out = transpose(L, out, inv, r, st, t->dims);
  lw_bind(L, op->results[0], lw_cast(L, out, et));
  return 0;
}
