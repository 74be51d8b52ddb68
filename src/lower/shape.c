/* shape.c - constants, layout and shape ops: the ops that create, move or
 * select elements without computing new values.
 *
 * Shapes are constants whenever the HLO types make them known, so the graph
 * needs no Shape arithmetic for static models; a '?' dimension is handled
 * either with ONNX's own conventions (Reshape's -1, Expand's broadcasting of
 * a 1) where those are exact, or with the shape operand the dynamic op
 * carries.  Dimensions arrays below use DIM_DYN for '?', as Type does, which
 * og_set_type turns into an unknown dimension.
 */
#include "lower/lower.h"
#include "lower/index_grid.h"

#include <string.h>

/* ---- helpers ------------------------------------------------------------ */

/* A splat constant up to this many bytes is written out in full: small
 * tensors are cheaper as data than as an Expand node, and folding passes
 * see plain initializers.  Larger splats stay one element + Expand. */
#define SMALL_SPLAT_BYTES 256

/* The integer list attribute `name`: its length, or -1 after an error.  An
 * absent optional attribute reads as the empty list. */
static int list_attr(Lower *L, const Op *op, const char *name, bool required, int64_t **out) {
  const Attr *a = ir_op_attr(op, name);
  *out = NULL;
  if (!a) {
    if (!required) return 0;
    return diag_error_op(L->c, H2O_EINPUT, op, "%s: missing attribute '%s'", op->opname, name);
  }
  int n = ir_attr_i64s(L->c, a, out);
  if (n < 0)
    return diag_error_op(L->c, H2O_EINPUT, op, "%s: attribute '%s' is not a list of integers",
                         op->opname, name);
  return n;
}

static int int_attr(Lower *L, const Op *op, const char *name, int64_t *out) {
  const Attr *a = ir_op_attr(op, name);
  if (!a || !ir_attr_int(a, out))
    return diag_error_op(L->c, H2O_EINPUT, op, "%s: missing integer attribute '%s'",
                         op->opname, name);
  return 0;
}

/* Checks that each of the n axes is in [0, rank) and appears once. */
static bool valid_axes(const int64_t *axes, int n, int rank) {
  if (n > rank) return false;
  for (int i = 0; i < n; i++) {
    if (axes[i] < 0 || axes[i] >= rank) return false;
    for (int j = 0; j < i; j++)
      if (axes[j] == axes[i]) return false;
  }
  return true;
}

static bool is_tensor(const Value *v) { return v->type.kind == TK_TENSOR; }

/* An int64 1-D value from an integer shape operand. */
static OValue *shape_i64(Lower *L, const Value *v) {
  OValue *s = lw_cast(L, lw_get(L, v), ET_I64);
  int64_t n = v->type.rank == 1 ? v->type.dims[0] : DIM_DYN;
  return lw_typed(L, s, ET_I64, 1, &n);
}

/* Expand to `shape`, which holds the target dims, with DIM_DYN entries
 * written as 1: Expand broadcasts, so a 1 keeps the operand's own size. */
static OValue *expand_const(Lower *L, OValue *x, ElemType et, int rank, const int64_t *dims) {
  int64_t shape[MAX_RANK];
  for (int i = 0; i < rank; i++) shape[i] = dims[i] == DIM_DYN ? 1 : dims[i];
  return lw_typed(L, lw_op2(L, "Expand", x, lw_const_i64s(L, rank, shape)), et, rank, dims);
}

static OValue *slice(Lower *L, OValue *x, int n, const int64_t *starts, const int64_t *ends,
                     const int64_t *axes, const int64_t *steps) {
  OValue *in[5] = {x, lw_const_i64s(L, n, starts), lw_const_i64s(L, n, ends),
                   lw_const_i64s(L, n, axes), steps ? lw_const_i64s(L, n, steps) : NULL};
  return lw_node(L, "Slice", steps ? 5 : 4, in, 1)->outputs[0];
}

/* ---- constants ---------------------------------------------------------- */

int lower_constant(Lower *L, const Op *op) {
  const Attr *a = ir_op_attr(op, "value");
  if (op->n_results != 1 || !a || a->kind != AK_DENSE || !a->dense)
    return lw_bad_input(L, "expects a dense 'value' attribute and one result");
  const Type *t = &op->results[0]->type;
  const Dense *d = a->dense;
  if (!type_is_static(t)) return lw_bad_input(L, "a constant needs a static type");
  int64_t numel = type_numel(t);
  size_t size = et_size(t->et);
  OValue *v;
  if (!d->splat && size > 0 && (d->data.nbytes % size || d->data.nbytes / size != (uint64_t)numel))
    return lw_bad_input(L, "constant data does not match its type");
  if (!d->splat || numel == 1) {
    v = lw_const_data(L, t->et, t->rank, t->dims, d->data);
  } else if (numel == 0) {
    Data empty = {DATA_RAW, "", 0};
    v = lw_const_data(L, t->et, t->rank, t->dims, empty);
  } else if (size > 0 && (uint64_t)numel <= SMALL_SPLAT_BYTES / size) {
    if (d->data.nbytes != size) return lw_bad_input(L, "splat constant with malformed data");
    const uint8_t *elem = data_bytes(L->c, &d->data);
    uint8_t *buf = arena_alloc(L->c->arena, (size_t)numel * size);
    for (int64_t i = 0; i < numel; i++) memcpy(buf + (size_t)i * size, elem, size);
    Data full = {DATA_RAW, buf, (size_t)numel * size};
    v = lw_const_data(L, t->et, t->rank, t->dims, full);
  } else {
    /* The one stored element (still hex when it came as hex) + Expand. */
    OValue *scalar = lw_const_data(L, t->et, 0, NULL, d->data);
    v = expand_const(L, scalar, t->et, t->rank, t->dims);
  }
  lw_bind(L, op->results[0], v);
  return 0;
}

/* ---- iota --------------------------------------------------------------- */

/* Counts 0..n-1 of type et along `axis` of a tensor of `dims`.  `len` is
 * the int64 scalar n when dims[axis] is dynamic, `shape` the int64 shape
 * when any dim is (else both NULL).  ONNX Range covers f32, f64, i16, i32
 * and i64; other types count in f32 (floats: exact up to 2^24, and the cast
 * rounds as an iota of the narrow type does) or i64, then cast. */
static OValue *iota(Lower *L, ElemType et, int rank, const int64_t *dims, int axis,
                    OValue *len, OValue *shape) {
  ElemType rt = et;
  if (et != ET_F32 && et != ET_F64 && et != ET_I16 && et != ET_I32 && et != ET_I64)
    rt = et_is_float(et) ? ET_F32 : ET_I64;
  int64_t n = dims[axis];
  OValue *limit = len ? lw_cast(L, len, rt) : lw_const_scalar(L, rt, (double)n);
  OValue *r = lw_op3(L, "Range", lw_const_scalar(L, rt, 0), limit, lw_const_scalar(L, rt, 1));
  r = lw_cast(L, lw_typed(L, r, rt, 1, &n), et);
  if (rank == 1) return r;
  int64_t line[MAX_RANK];
  bool need_expand = false;
  for (int i = 0; i < rank; i++) {
    line[i] = i == axis ? (n == DIM_DYN ? -1 : n) : 1;
    if (i != axis && dims[i] != 1) need_expand = true;
  }
  r = lw_op2(L, "Reshape", r, lw_const_i64s(L, rank, line));
  line[axis] = n;
  r = lw_typed(L, r, et, rank, line);
  if (!need_expand) return r;
  if (shape) return lw_typed(L, lw_op2(L, "Expand", r, shape), et, rank, dims);
  return expand_const(L, r, et, rank, dims);
}

int lower_iota(Lower *L, const Op *op) {
  if (op->n_results != 1) return lw_bad_input(L, "expects one result");
  const Type *t = &op->results[0]->type;
  int64_t axis;
  if (int_attr(L, op, "iota_dimension", &axis) != 0) return -1;
  if (axis < 0 || axis >= t->rank) return lw_bad_input(L, "iota_dimension out of range");
  if (!type_is_static(t)) return lw_bad_input(L, "iota needs a static result type");
  lw_bind(L, op->results[0], iota(L, t->et, t->rank, t->dims, (int)axis, NULL, NULL));
  return 0;
}

int lower_dynamic_iota(Lower *L, const Op *op) {
  if (op->n_results != 1) return lw_bad_input(L, "expects one result");
  const Type *t = &op->results[0]->type;
  int64_t axis;
  if (int_attr(L, op, "iota_dimension", &axis) != 0) return -1;
  if (op->n_operands != 1 || axis < 0 || axis >= t->rank)
    return lw_bad_input(L, "expects an output_shape operand and an iota_dimension in range");
  if (type_is_static(t)) {
    lw_bind(L, op->results[0], iota(L, t->et, t->rank, t->dims, (int)axis, NULL, NULL));
    return 0;
  }
  OValue *shape = shape_i64(L, op->operands[0]);
  OValue *len = NULL;
  if (t->dims[axis] == DIM_DYN) {
    len = lw_op2(L, "Gather", shape, lw_const_scalar(L, ET_I64, (double)axis));
    len = lw_typed(L, len, ET_I64, 0, NULL);
  }
  lw_bind(L, op->results[0], iota(L, t->et, t->rank, t->dims, (int)axis, len, shape));
  return 0;
}

/* ---- broadcasts --------------------------------------------------------- */

static bool contains(const int64_t *v, int n, int64_t x) {
  for (int i = 0; i < n; i++)
    if (v[i] == x) return true;
  return false;
}

/* broadcast_in_dim and dynamic_broadcast_in_dim: operand axis i becomes
 * result axis dims[i].  Transpose the operand into result order (dims may
 * be non-monotonic), Unsqueeze the missing axes, Expand to the result.
 * Expand broadcasts numpy-style, so missing leading axes need no Unsqueeze
 * and a '?' result dimension that is known to equal the operand's can be
 * written as 1; otherwise a '?' takes its size from the shape operand. */
int lower_broadcast_in_dim(Lower *L, const Op *op) {
  bool dyn_op = op->kind == OP_DYNAMIC_BROADCAST_IN_DIM;
  if (op->n_operands != (dyn_op ? 2 : 1) || op->n_results != 1 || !is_tensor(op->operands[0]))
    return lw_bad_input(L, "wrong number of operands or results");
  const Type *ti = &op->operands[0]->type, *to = &op->results[0]->type;
  int r = ti->rank, R = to->rank;
  int64_t *bd, *nonexp;
  if (list_attr(L, op, "broadcast_dimensions", true, &bd) != r || !valid_axes(bd, r, R))
    return L->c->n_errors ? -1 : lw_bad_input(L, "broadcast_dimensions do not match the ranks");
  int n_nonexp = list_attr(L, op, "known_nonexpanding_dimensions", false, &nonexp);
  if (n_nonexp < 0) return -1;

  /* Operand axes sorted by their result axis (a stable selection sort). */
  int64_t perm[MAX_RANK], sorted[MAX_RANK], tdims[MAX_RANK];
  bool used[MAX_RANK] = {false};
  for (int k = 0; k < r; k++) {
    int best = -1;
    for (int i = 0; i < r; i++)
      if (!used[i] && (best < 0 || bd[i] < bd[best])) best = i;
    used[best] = true;
    perm[k] = best;
    sorted[k] = bd[best];
  }

  /* For each result axis: does the operand already have its size, and can
   * Expand's shape name it as a constant? */
  bool need_expand = false, const_shape = true;
  for (int j = 0; j < R; j++) {
    int64_t dj = to->dims[j];
    int i = -1;
    for (int k = 0; k < r; k++)
      if (bd[k] == j) i = k;
    int64_t di = i >= 0 ? ti->dims[i] : 1;
    if (di != DIM_DYN && di == dj) continue;
    if (di != DIM_DYN && di != 1 && dj == DIM_DYN) continue; /* then it must be di */
    if (di != DIM_DYN && dj != DIM_DYN && di != 1)
      return lw_bad_input(L, "an operand dimension is neither 1 nor the result's");
    /* Equal sizes: a '?' operand axis of the static op (the spec requires
     * it to match), or one the dynamic op declares non-expanding. */
    if (di == DIM_DYN && dj == DIM_DYN && (!dyn_op || contains(nonexp, n_nonexp, i))) continue;
    need_expand = true;
    if (dj == DIM_DYN) const_shape = false;
  }

  OValue *x = lw_get(L, op->operands[0]);
  ElemType et = to->et;
  x = lw_transpose(L, x, et, r, ti->dims, perm, tdims);

  /* Missing axes to unsqueeze: all of them when nothing is expanded (the
   * result is then the reshaped operand), else those after the first
   * operand axis; Expand prepends the leading ones. */
  int first = need_expand && r > 0 ? (int)sorted[0] : 0;
  if (need_expand && r == 0) first = R;
  int64_t axes[MAX_RANK], udims[MAX_RANK];
  int n_axes = 0, k = 0;
  for (int j = first; j < R; j++) {
    if (k < r && sorted[k] == j) {
      udims[j - first] = tdims[k++];
    } else {
      udims[j - first] = 1;
      axes[n_axes++] = j - first;
    }
  }
  if (n_axes) x = lw_typed(L, lw_unsqueeze(L, x, axes, n_axes), et, R - first, udims);

  if (need_expand) {
    if (const_shape) {
      x = expand_const(L, x, et, R, to->dims);
    } else if (dyn_op) {
      x = lw_typed(L, lw_op2(L, "Expand", x, shape_i64(L, op->operands[1])), et, R, to->dims);
    } else {
      return lw_unsupported(L, "a '?' result dimension that is not the operand's");
    }
  }
  lw_bind(L, op->results[0], x);
  return 0;
}

/* broadcast: result = broadcast_sizes ++ operand shape, i.e. numpy-style
 * broadcasting with new leading axes: one Expand. */
int lower_broadcast(Lower *L, const Op *op) {
  if (op->n_operands != 1 || op->n_results != 1) return lw_bad_input(L, "expects one operand");
  const Type *to = &op->results[0]->type;
  int64_t *sizes;
  int n = list_attr(L, op, "broadcast_sizes", true, &sizes);
  if (n < 0) return -1;
  if (n + op->operands[0]->type.rank != to->rank)
    return lw_bad_input(L, "broadcast_sizes do not match the result rank");
  OValue *x = lw_get(L, op->operands[0]);
  if (n > 0) x = expand_const(L, x, to->et, to->rank, to->dims);
  lw_bind(L, op->results[0], x);
  return 0;
}

/* ---- reshape, transpose, concatenate ------------------------------------ */

/* reshape and dynamic_reshape.  A shape the result type determines - all
 * static, or one '?' that Reshape's -1 infers - is a constant; otherwise
 * the shape operand of dynamic_reshape, where a 0 means an empty axis. */
int lower_reshape(Lower *L, const Op *op) {
  bool dyn_op = op->kind == OP_DYNAMIC_RESHAPE;
  if (op->n_operands != (dyn_op ? 2 : 1) || op->n_results != 1)
    return lw_bad_input(L, "wrong number of operands or results");
  const Type *ti = &op->operands[0]->type, *to = &op->results[0]->type;
  OValue *x = lw_get(L, op->operands[0]);
  if (type_is_static(ti) && type_is_static(to) && type_numel(ti) != type_numel(to))
    return diag_error_op(L->c, H2O_EINPUT, op, "%s: the operand has %lld elements, the result "
                         "type %lld", op->opname, (long long)type_numel(ti),
                         (long long)type_numel(to));
  if (type_is_static(ti) && type_equal(ti, to)) {
    lw_bind(L, op->results[0], x);
    return 0;
  }
  int n_dyn = 0;
  bool has_zero = false;
  int64_t shape[MAX_RANK];
  for (int i = 0; i < to->rank; i++) {
    if (to->dims[i] == DIM_DYN) n_dyn++;
    if (to->dims[i] == 0) has_zero = true;
    shape[i] = to->dims[i] == DIM_DYN ? -1 : to->dims[i];
  }
  ONode *n;
  if (n_dyn == 0 || (n_dyn == 1 && !has_zero)) {
    OValue *in[2] = {x, lw_const_i64s(L, to->rank, shape)};
    n = lw_node(L, "Reshape", 2, in, 1);
    if (has_zero) og_attr_int(L->c, n, "allowzero", 1);
  } else if (dyn_op) {
    OValue *in[2] = {x, shape_i64(L, op->operands[1])};
    n = lw_node(L, "Reshape", 2, in, 1);
    og_attr_int(L->c, n, "allowzero", 1);
  } else {
    return lw_unsupported(L, "a reshape to a type with several '?' dimensions");
  }
  lw_bind(L, op->results[0], n->outputs[0]);
  return 0;
}

int lower_transpose(Lower *L, const Op *op) {
  if (op->n_operands != 1 || op->n_results != 1) return lw_bad_input(L, "expects one operand");
  const Type *ti = &op->operands[0]->type;
  int64_t *perm, dims[MAX_RANK];
  int n = list_attr(L, op, "permutation", true, &perm);
  if (n < 0) return -1;
  if (n != ti->rank || !valid_axes(perm, n, n)) return lw_bad_input(L, "bad permutation");
  OValue *x = lw_transpose(L, lw_get(L, op->operands[0]), ti->et, n, ti->dims, perm, dims);
  lw_bind(L, op->results[0], x);
  return 0;
}

int lower_concatenate(Lower *L, const Op *op) {
  int64_t axis;
  if (int_attr(L, op, "dimension", &axis) != 0) return -1;
  if (op->n_operands < 1 || op->n_results != 1 || axis < 0 ||
      axis >= op->results[0]->type.rank)
    return lw_bad_input(L, "expects operands and a dimension in range");
  if (op->n_operands == 1) {
    lw_bind(L, op->results[0], lw_get(L, op->operands[0]));
    return 0;
  }
  OValue **in = arena_alloc(L->c->arena, sizeof(OValue *) * (size_t)op->n_operands);
  for (int i = 0; i < op->n_operands; i++) in[i] = lw_get(L, op->operands[i]);
  ONode *n = lw_node(L, "Concat", op->n_operands, in, 1);
  og_attr_int(L->c, n, "axis", axis);
  lw_bind(L, op->results[0], n->outputs[0]);
  return 0;
}

/* get_dimension_size: the size as a constant when static, else
 * Shape(start, end) -> Cast -> Reshape to a scalar. */
int lower_get_dimension_size(Lower *L, const Op *op) {
  int64_t d;
  if (int_attr(L, op, "dimension", &d) != 0) return -1;
  if (op->n_operands != 1 || op->n_results != 1 || d < 0 || d >= op->operands[0]->type.rank)
    return lw_bad_input(L, "expects one operand and a dimension in range");
  ElemType et = op->results[0]->type.et;
  int64_t size = op->operands[0]->type.dims[d];
  if (size != DIM_DYN) {
    lw_bind(L, op->results[0], lw_const_scalar(L, et, (double)size));
    return 0;
  }
  OValue *x = lw_get(L, op->operands[0]);
  ONode *shape = lw_node(L, "Shape", 1, &x, 1);
  og_attr_int(L->c, shape, "start", d);
  og_attr_int(L->c, shape, "end", d + 1);
  int64_t one = 1;
  OValue *s = lw_cast(L, lw_typed(L, shape->outputs[0], ET_I64, 1, &one), et);
  lw_bind(L, op->results[0], lw_op2(L, "Reshape", s, lw_const_i64s(L, 0, NULL)));
  return 0;
}

/* ---- slices ------------------------------------------------------------- */

int lower_slice(Lower *L, const Op *op) {
  if (op->n_operands != 1 || op->n_results != 1) return lw_bad_input(L, "expects one operand");
  const Type *ti = &op->operands[0]->type;
  int64_t *start, *limit, *stride;
  int n1 = list_attr(L, op, "start_indices", true, &start);
  int n2 = list_attr(L, op, "limit_indices", true, &limit);
  int n3 = list_attr(L, op, "strides", false, &stride);
  if (n1 < 0 || n2 < 0 || n3 < 0) return -1;
  if (n1 != ti->rank || n2 != ti->rank || (n3 != 0 && n3 != ti->rank))
    return lw_bad_input(L, "start_indices, limit_indices and strides must have one entry per axis");
  int64_t s[MAX_RANK], e[MAX_RANK], axes[MAX_RANK], steps[MAX_RANK];
  int n = 0;
  bool unit_steps = true;
  for (int i = 0; i < ti->rank; i++) {
    int64_t st = n3 ? stride[i] : 1, dim = ti->dims[i];
    if (st < 1 || start[i] < 0 || start[i] > limit[i] || (dim != DIM_DYN && limit[i] > dim))
      return lw_bad_input(L, "slice bounds out of range");
    if (start[i] == 0 && st == 1 && limit[i] == dim) continue; /* whole axis */
    s[n] = start[i];
    e[n] = limit[i];
    axes[n] = i;
    steps[n] = st;
    if (st != 1) unit_steps = false;
    n++;
  }
  OValue *x = lw_get(L, op->operands[0]);
  if (n) x = slice(L, x, n, s, e, axes, unit_steps ? NULL : steps);
  lw_bind(L, op->results[0], x);
  return 0;
}


int lower_reverse(Lower *L, const Op *op) {
  if (op->n_operands != 1 || op->n_results != 1) return lw_bad_input(L, "expects one operand");
  const Type *ti = &op->operands[0]->type;
  int64_t *dims;
  int n = list_attr(L, op, "dimensions", true, &dims);
  if (n < 0) return -1;
  if (!valid_axes(dims, n, ti->rank)) return lw_bad_input(L, "dimensions out of range");
  /* Slice backwards: start -1 (the last element), end INT64_MIN (past the
   * first), step -1, on each reversed axis longer than 1. */
  int64_t s[MAX_RANK], e[MAX_RANK], axes[MAX_RANK], steps[MAX_RANK];
  int m = 0;
  for (int k = 0; k < n; k++) {
    int64_t dim = ti->dims[dims[k]];
    if (dim == 0 || dim == 1) continue;
    s[m] = -1;
    e[m] = INT64_MIN;
    axes[m] = dims[k];
    steps[m] = -1;
    m++;
  }
  OValue *x = lw_get(L, op->operands[0]);
  if (m) x = slice(L, x, m, s, e, axes, steps);
  lw_bind(L, op->results[0], x);
  return 0;
}

/* real_dynamic_slice: bounds and strides are 1-D tensors, one entry per
 * axis; the spec leaves them unclamped, as ONNX Slice's own clamping is. */
int lower_real_dynamic_slice(Lower *L, const Op *op) {
  if (op->n_operands != 4 || op->n_results != 1) return lw_bad_input(L, "expects four operands");
  int rank = op->operands[0]->type.rank;
  int64_t axes[MAX_RANK];
  for (int i = 0; i < rank; i++) axes[i] = i;
  OValue *in[5] = {lw_get(L, op->operands[0]), shape_i64(L, op->operands[1]),
                   shape_i64(L, op->operands[2]), lw_const_i64s(L, rank, axes),
                   shape_i64(L, op->operands[3])};
  lw_bind(L, op->results[0], lw_node(L, "Slice", 5, in, 1)->outputs[0]);
  return 0;
}

/* Start indices of dynamic_slice and dynamic_update_slice: scalar operands
 * starts[axes[k]] for the m axes listed, clamped as JAX requires to
 * [0, dim - size[k]].  Returns an int64 [m] value.  When every start and
 * bound is a constant, the clamping is done here: *is_const is set, the
 * values are stored in cst and NULL is returned (callers build the
 * constants they need from them).  `upper` is
 * the int64 [m] value dim - size when some of it is dynamic, else NULL and
 * hi holds it. */
static OValue *clamped_starts(Lower *L, Value *const *starts, const int64_t *axes, int m,
                              OValue *upper, const int64_t *hi, int64_t *cst, bool *is_const) {
  *is_const = upper == NULL;
  for (int k = 0; k < m && *is_const; k++) {
    const Value *start = starts[axes[k]];
    int64_t *v = type_numel(&start->type) == 1 ? lw_const_ints(L, start) : NULL;
    int64_t start_value = v ? *v : 0;
    if (v) ix_unsigned_index_consts(&start_value, 1, start->type.et);
    if (!v) *is_const = false;
    else cst[k] = start_value < 0 ? 0 : (start_value > hi[k] ? hi[k] : start_value);
  }
  if (*is_const) return NULL;

  int64_t one = 1, mm = m;
  OValue **parts = arena_alloc(L->c->arena, sizeof(OValue *) * (size_t)m);
  for (int k = 0; k < m; k++) {
    OValue *s = ix_index_i64(L, lw_get(L, starts[axes[k]]), starts[axes[k]]->type.et);
    parts[k] = lw_typed(L, lw_op2(L, "Reshape", s, lw_const_i64s(L, 1, &one)), ET_I64, 1, &one);
  }
  OValue *v = parts[0];
  if (m > 1) {
    ONode *cat = lw_node(L, "Concat", m, parts, 1);
    og_attr_int(L->c, cat, "axis", 0);
    v = lw_typed(L, cat->outputs[0], ET_I64, 1, &mm);
  }
  if (!upper) upper = lw_const_i64s(L, m, hi);
  v = lw_typed(L, lw_op2(L, "Max", v, lw_const_scalar(L, ET_I64, 0)), ET_I64, 1, &mm);
  return lw_typed(L, lw_op2(L, "Min", v, upper), ET_I64, 1, &mm);
}

/* The sizes of the listed axes of x as an int64 [m] value. */
static OValue *gather_dims(Lower *L, OValue *x, const int64_t *axes, int m) {
  int64_t mm = m;
  OValue *shape = lw_typed(L, lw_op1(L, "Shape", x), ET_I64, 1, NULL);
  return lw_typed(L, lw_op2(L, "Gather", shape, lw_const_i64s(L, m, axes)), ET_I64, 1, &mm);
}

/* dynamic_slice: Slice from the clamped starts to starts + slice_sizes. */
int lower_dynamic_slice(Lower *L, const Op *op) {
  if (op->n_operands < 1 || op->n_results != 1) return lw_bad_input(L, "expects an operand");
  const Type *tx = &op->operands[0]->type;
  int64_t *sizes;
  int n = list_attr(L, op, "slice_sizes", true, &sizes);
  if (n < 0) return -1;
  if (n != tx->rank || op->n_operands != 1 + n)
    return lw_bad_input(L, "needs one start index and one slice size per axis");
  /* An axis the slice covers whole starts at 0 after clamping: skip it. */
  int64_t axes[MAX_RANK], sz[MAX_RANK], hi[MAX_RANK], cst[MAX_RANK], e[MAX_RANK];
  int m = 0;
  bool static_hi = true;
  for (int i = 0; i < n; i++) {
    int64_t dim = tx->dims[i];
    if (sizes[i] < 0 || (dim != DIM_DYN && sizes[i] > dim))
      return lw_bad_input(L, "slice size out of range");
    if (sizes[i] == dim) continue;
    axes[m] = i;
    sz[m] = sizes[i];
    if (dim == DIM_DYN) static_hi = false;
    else hi[m] = dim - sizes[i];
    m++;
  }
  OValue *x = lw_get(L, op->operands[0]);
  if (m == 0) {
    lw_bind(L, op->results[0], x);
    return 0;
  }
  int64_t mm = m;
  OValue *upper = NULL;
  if (!static_hi)
    upper = lw_typed(L, lw_op2(L, "Sub", gather_dims(L, x, axes, m), lw_const_i64s(L, m, sz)),
                  ET_I64, 1, &mm);
  bool is_const;
  OValue *starts = clamped_starts(L, op->operands + 1, axes, m, upper, hi, cst, &is_const);
  if (is_const) {
    for (int k = 0; k < m; k++) e[k] = cst[k] + sz[k];
    x = slice(L, x, m, cst, e, axes, NULL);
  } else {
    OValue *ends = lw_typed(L, lw_op2(L, "Add", starts, lw_const_i64s(L, m, sz)), ET_I64, 1, &mm);
    OValue *in[4] = {x, starts, ends, lw_const_i64s(L, m, axes)};
    x = lw_node(L, "Slice", 4, in, 1)->outputs[0];
  }
  lw_bind(L, op->results[0], x);
  return 0;
}

/* Whether axis i of a and b has the same symbolic size (as graph inputs
 * with named dimensions do): then an update covers that axis whole. */
static bool same_symbol(const OValue *a, const OValue *b, int i) {
  if (a->type.rank <= i || b->type.rank <= i) return false;
  const char *pa = a->type.dims[i].param, *pb = b->type.dims[i].param;
  return pa && pb && strcmp(pa, pb) == 0;
}

/* Index grids for ScatterND with more than this many int64 entries are
 * computed in the graph (Range/Expand) instead of stored. */
#define MAX_CONST_GRID (1 << 16)

/* dynamic_update_slice: ScatterND of the update at the clamped starts.
 * Trailing axes the update covers whole need no index (ScatterND's indices
 * may address slices), so the indices grid is [u_0..u_{q-1}, q] over the
 * leading q axes only; for a KV-cache update [B,1,H,D] at (0,t,0,0) it is
 * [B,1,2]. */
typedef struct UpdateSlice {
  const Type *tx, *tu;
  OValue *x, *u;
  int q;                       /* the leading axes that get an index (0: u replaces x) */
  /* plan (update_slice_plan) */
  int64_t axes[MAX_RANK];      /* 0..q-1 */
  bool static_hi;              /* hi[] holds dim x - dim u, the largest start, per axis */
  int64_t hi[MAX_RANK];
  bool static_grid;            /* the grid's size is known: grid entries */
  int64_t grid;
  int64_t gdims[MAX_RANK + 1]; /* the index grid: [u_0..u_{q-1}, q] */
} UpdateSlice;

/* Reads the operands: 0, or -1 after reporting the op. */
static int update_slice_read(Lower *L, const Op *op, UpdateSlice *s) {
  if (op->n_operands < 2 || op->n_results != 1) return lw_bad_input(L, "expects two operands");
  const Type *tx = s->tx = &op->operands[0]->type, *tu = s->tu = &op->operands[1]->type;
  int R = tx->rank;
  if (tu->rank != R || op->n_operands != 2 + R)
    return lw_bad_input(L, "needs an update of the operand's rank and one start index per axis");
  s->x = lw_get(L, op->operands[0]);
  s->u = lw_get(L, op->operands[1]);
  s->q = 0;
  for (int i = 0; i < R; i++) {
    int64_t dx = tx->dims[i], du = tu->dims[i];
    if (dx != DIM_DYN && du != DIM_DYN && du > dx) return lw_bad_input(L, "update larger than operand");
    if (!(dx != DIM_DYN && du == dx) && !same_symbol(s->x, s->u, i)) s->q = i + 1;
  }
  return 0;
}

/* The bounds of the starts and the size of the index grid, where static. */
static void update_slice_plan(UpdateSlice *s) {
  const int64_t *dx = s->tx->dims, *du = s->tu->dims;
  int q = s->q;
  s->static_grid = s->static_hi = true;
  s->grid = q;
  for (int k = 0; k < q; k++) {
    s->axes[k] = k;
    if (du[k] == DIM_DYN) s->static_grid = false;
    else s->grid *= du[k];
    if (dx[k] == DIM_DYN || du[k] == DIM_DYN) s->static_hi = false;
    else s->hi[k] = dx[k] - du[k];
    s->gdims[k] = du[k];
  }
  s->gdims[q] = q;
}

/* The positions of the update as a constant grid (a row-major walk), plus
 * the starts: added here when constant (cst), else one broadcasting Add of
 * the [q] start vector. */
static OValue *update_grid_const(Lower *L, const UpdateSlice *s, OValue *starts,
                                 const int64_t *cst) {
  int q = s->q;
  int64_t *g = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(s->grid ? s->grid : 1));
  int64_t pos[MAX_RANK] = {0};
  for (int64_t e = 0; e < s->grid; e += q) {
    for (int k = 0; k < q; k++) g[e + k] = (cst ? cst[k] : 0) + pos[k];
    for (int k = q - 1; k >= 0; k--) {
      if (++pos[k] < s->tu->dims[k]) break;
      pos[k] = 0;
    }
  }
  Data d = {DATA_RAW, g, sizeof(int64_t) * (size_t)s->grid};
  OValue *indices = lw_const_data(L, ET_I64, q + 1, s->gdims, d);
  if (!cst) indices = lw_typed(L, lw_op2(L, "Add", indices, starts), ET_I64, q + 1, s->gdims);
  return indices;
}

/* Dimensions [start, end) of x as an int64 [end - start]. */
static OValue *shape_part(Lower *L, OValue *x, int start, int end) {
  ONode *sh = lw_node(L, "Shape", 1, &x, 1);
  og_attr_int(L->c, sh, "start", start);
  og_attr_int(L->c, sh, "end", end);
  int64_t n = end - start;
  return lw_typed(L, sh->outputs[0], ET_I64, 1, &n);
}

/* Axis k of the grid: arange(u_k) + start_k shaped [1..u_k..1, 1], then
 * expanded to `gshape` [u_0..u_{q-1}, 1] unless NULL (q = 1). */
static OValue *update_grid_axis(Lower *L, const UpdateSlice *s, int k, OValue *starts,
                                const int64_t *cst, OValue *gshape) {
  int q = s->q;
  int64_t n = s->tu->dims[k], line[MAX_RANK + 1];
  OValue *r;
  if (n != DIM_DYN) {
    int64_t *ar = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) ar[i] = i;
    r = lw_const_i64s(L, (int)n, ar);
  } else {
    OValue *dim = shape_part(L, s->u, k, k + 1);
    OValue *len = lw_op2(L, "Reshape", dim, lw_const_i64s(L, 0, NULL));
    r = lw_op3(L, "Range", lw_const_scalar(L, ET_I64, 0), lw_typed(L, len, ET_I64, 0, NULL),
               lw_const_scalar(L, ET_I64, 1));
    r = lw_typed(L, r, ET_I64, 1, &n);
  }
  int64_t kk = k;
  int64_t one = 1;
  OValue *sk = cst ? lw_const_scalar(L, ET_I64, (double)cst[k])
                   : lw_typed(L, lw_op2(L, "Gather", starts, lw_const_i64s(L, 1, &kk)),
                              ET_I64, 1, &one);
  r = lw_typed(L, lw_op2(L, "Add", r, sk), ET_I64, 1, &n);
  for (int j = 0; j <= q; j++) line[j] = j == k ? -1 : 1;
  r = lw_op2(L, "Reshape", r, lw_const_i64s(L, q + 1, line));
  for (int j = 0; j <= q; j++) line[j] = j == k ? n : 1;
  r = lw_typed(L, r, ET_I64, q + 1, line);
  if (gshape) {
    line[q] = 1;
    for (int j = 0; j < q; j++) line[j] = s->gdims[j];
    r = lw_typed(L, lw_op2(L, "Expand", r, gshape), ET_I64, q + 1, line);
  }
  return r;
}

/* The grid computed in the graph (too large to store, or of run-time
 * size): one update_grid_axis per axis, concatenated on the last axis. */
static OValue *update_grid_computed(Lower *L, const UpdateSlice *s, OValue *starts,
                                    const int64_t *cst) {
  int q = s->q;
  OValue *gshape = NULL;
  if (q > 1) {
    if (s->static_grid) {
      int64_t g[MAX_RANK + 1];
      for (int k = 0; k < q; k++) g[k] = s->gdims[k];
      g[q] = 1;
      gshape = lw_const_i64s(L, q + 1, g);
    } else {
      int64_t one = 1, q1 = q + 1;
      OValue *dims = shape_part(L, s->u, 0, q);
      OValue *in[2] = {dims, lw_const_i64s(L, 1, &one)};
      ONode *cat = lw_node(L, "Concat", 2, in, 1);
      og_attr_int(L->c, cat, "axis", 0);
      gshape = lw_typed(L, cat->outputs[0], ET_I64, 1, &q1);
    }
  }
  OValue **parts = arena_alloc(L->c->arena, sizeof(OValue *) * (size_t)q);
  for (int k = 0; k < q; k++) parts[k] = update_grid_axis(L, s, k, starts, cst, gshape);
  if (q == 1) return parts[0];
  ONode *cat = lw_node(L, "Concat", q, parts, 1);
  og_attr_int(L->c, cat, "axis", q);
  return lw_typed(L, cat->outputs[0], ET_I64, q + 1, s->gdims);
}

int lower_dynamic_update_slice(Lower *L, const Op *op) {
  UpdateSlice s;
  if (update_slice_read(L, op, &s) != 0) return -1;
  if (s.q == 0) { /* the update replaces everything */
    lw_bind(L, op->results[0], s.u);
    return 0;
  }
  update_slice_plan(&s);
  int q = s.q;
  int64_t qq = q, cst[MAX_RANK];
  OValue *upper = NULL;
  if (!s.static_hi)
    upper = lw_typed(L, lw_op2(L, "Sub", gather_dims(L, s.x, s.axes, q),
                               gather_dims(L, s.u, s.axes, q)),
                     ET_I64, 1, &qq);
  bool is_const;
  OValue *starts = clamped_starts(L, op->operands + 2, s.axes, q, upper, s.hi, cst, &is_const);
  OValue *indices = s.static_grid && s.grid <= MAX_CONST_GRID
                        ? update_grid_const(L, &s, starts, is_const ? cst : NULL)
                        : update_grid_computed(L, &s, starts, is_const ? cst : NULL);
  lw_bind(L, op->results[0], lw_op3(L, "ScatterND", s.x, indices, s.u));
  return 0;
}

/* pad: interior padding first (per axis: Unsqueeze a new axis after it,
 * Pad that axis by `interior`, merge the two with Reshape, drop the
 * trailing `interior` elements), then Pad for the positive edges and
 * Slice for the negative ones - in that order, since a negative low edge
 * may cut into padding added on the high side of a short axis. */
static OValue *pad(Lower *L, OValue *x, OValue *value, ElemType et, int R, const int64_t *in_dims,
                   const int64_t *lo, const int64_t *hi, const int64_t *interior) {
  int64_t dims[MAX_RANK + 1];
  memcpy(dims, in_dims, sizeof(int64_t) * (size_t)R);
  for (int k = 0; k < R; k++) {
    int64_t it = interior[k], n = dims[k];
    if (it == 0 || n == 0 || n == 1) continue;
    int64_t up[MAX_RANK + 1], axis = k + 1, pads[2 * (MAX_RANK + 1)] = {0};
    for (int j = 0; j <= R; j++) up[j] = j < axis ? dims[j] : (j == axis ? 1 : dims[j - 1]);
    OValue *y = lw_typed(L, lw_unsqueeze(L, x, &axis, 1), et, R + 1, up);
    pads[(R + 1) + axis] = it;
    up[axis] = 1 + it;
    y = lw_typed(L, lw_op3(L, "Pad", y, lw_const_i64s(L, 2 * (R + 1), pads), value), et, R + 1, up);
    /* Merge axes k and k+1: 0 copies a leading dim, -1 infers a '?' one. */
    int64_t shape[MAX_RANK];
    bool dyn_tail = false;
    for (int j = 0; j < R; j++) {
      if (j < k) shape[j] = 0;
      else if (j == k) shape[j] = n == DIM_DYN ? -1 : n * (1 + it);
      else if ((shape[j] = dims[j]) == DIM_DYN) dyn_tail = true;
    }
    OValue *target = lw_const_i64s(L, dyn_tail ? k + 1 : R, shape);
    if (dyn_tail) {
      ONode *sh = lw_node(L, "Shape", 1, &y, 1);
      og_attr_int(L->c, sh, "start", k + 2);
      OValue *in[2] = {target, sh->outputs[0]};
      ONode *cat = lw_node(L, "Concat", 2, in, 1);
      og_attr_int(L->c, cat, "axis", 0);
      target = cat->outputs[0];
    }
    up[k] = n == DIM_DYN ? DIM_DYN : n * (1 + it);
    for (int j = k + 1; j < R; j++) up[j] = dims[j];
    y = lw_typed(L, lw_op2(L, "Reshape", y, target), et, R, up);
    int64_t zero = 0, end = -it, ax = k;
    x = slice(L, y, 1, &zero, &end, &ax, NULL);
    dims[k] = n == DIM_DYN ? DIM_DYN : n + (n - 1) * it;
    x = lw_typed(L, x, et, R, dims);
  }
  int64_t pads[2 * MAX_RANK];
  bool any_pos = false;
  for (int k = 0; k < R; k++) {
    pads[k] = lo[k] > 0 ? lo[k] : 0;
    pads[R + k] = hi[k] > 0 ? hi[k] : 0;
    if (pads[k] || pads[R + k]) any_pos = true;
    if (dims[k] != DIM_DYN) dims[k] += pads[k] + pads[R + k];
  }
  if (any_pos) x = lw_typed(L, lw_op3(L, "Pad", x, lw_const_i64s(L, 2 * R, pads), value), et, R, dims);
  int64_t s[MAX_RANK], e[MAX_RANK], axes[MAX_RANK];
  int m = 0;
  for (int k = 0; k < R; k++) {
    if (lo[k] >= 0 && hi[k] >= 0) continue;
    s[m] = lo[k] < 0 ? -lo[k] : 0;
    e[m] = hi[k] >= 0 ? INT64_MAX : (dims[k] != DIM_DYN ? dims[k] + hi[k] : hi[k]);
    axes[m++] = k;
  }
  if (m) x = slice(L, x, m, s, e, axes, NULL);
  return x;
}

/* Checks pad amounts and, for an operand with no elements, gives the
 * result: the padding value everywhere (Expand); otherwise NULL. */
static int check_pad(Lower *L, const Op *op, const int64_t *lo, const int64_t *hi,
                     const int64_t *interior, OValue **empty_result) {
  const Type *ti = &op->operands[0]->type, *to = &op->results[0]->type;
  *empty_result = NULL;
  const int64_t big = (int64_t)1 << 62;
  for (int k = 0; k < ti->rank; k++) {
    if (interior[k] < 0) return lw_bad_input(L, "negative interior padding");
    /* Bounds that keep pad()'s arithmetic in int64: each amount below
     * 2^62 in magnitude, and every length it computes checked. */
    if (lo[k] <= -big || lo[k] >= big || hi[k] <= -big || hi[k] >= big || interior[k] >= big)
      return lw_bad_input(L, "padding amounts beyond 2^62");
    if (ti->dims[k] == DIM_DYN) continue;
    int64_t n = ti->dims[k], spread, grown, with_edges, total;
    if (h2o_mul_overflow(n, 1 + interior[k], &spread) ||
        h2o_add_overflow(n + (n > 0 ? n - 1 : 0) * interior[k],
                         (lo[k] > 0 ? lo[k] : 0) + (hi[k] > 0 ? hi[k] : 0), &with_edges) ||
        h2o_add_overflow(n + (n > 0 ? n - 1 : 0) * interior[k], lo[k] + hi[k], &grown))
      return lw_bad_input(L, "padded axis longer than 2^63-1");
    total = grown;
    if (total < 0) return lw_bad_input(L, "padding removes more than the axis has");
    if (to->rank == ti->rank && to->dims[k] != DIM_DYN && to->dims[k] != total)
      return diag_error_op(L->c, H2O_EINPUT, op,
                           "%s: axis %d of the result type is %lld, the padding makes it %lld",
                           op->opname, k, (long long)to->dims[k], (long long)total);
  }
  if (type_numel(ti) == 0 && type_is_static(to))
    *empty_result = expand_const(L, lw_get(L, op->operands[1]), to->et, to->rank, to->dims);
  return 0;
}

int lower_pad(Lower *L, const Op *op) {
  if (op->n_operands != 2 || op->n_results != 1) return lw_bad_input(L, "expects two operands");
  const Type *ti = &op->operands[0]->type;
  int64_t *lo, *hi, *it;
  int n1 = list_attr(L, op, "edge_padding_low", true, &lo);
  int n2 = list_attr(L, op, "edge_padding_high", true, &hi);
  int n3 = list_attr(L, op, "interior_padding", true, &it);
  if (n1 < 0 || n2 < 0 || n3 < 0) return -1;
  if (n1 != ti->rank || n2 != ti->rank || n3 != ti->rank)
    return lw_bad_input(L, "padding lists must have one entry per axis");
  OValue *x;
  if (check_pad(L, op, lo, hi, it, &x) != 0) return -1;
  if (!x)
    x = pad(L, lw_get(L, op->operands[0]), lw_get(L, op->operands[1]), ti->et, ti->rank,
            ti->dims, lo, hi, it);
  lw_bind(L, op->results[0], x);
  return 0;
}

/* dynamic_pad: the pad amounts are operands; supported when they are
 * constants (as JAX emits them), which makes it a pad. */
int lower_dynamic_pad(Lower *L, const Op *op) {
  if (op->n_operands != 5 || op->n_results != 1) return lw_bad_input(L, "expects five operands");
  const Type *ti = &op->operands[0]->type;
  int64_t amounts[3][MAX_RANK];
  for (int i = 0; i < 3; i++) {
    const Value *v = op->operands[2 + i];
    int64_t *vals = v->type.rank == 1 && type_numel(&v->type) == ti->rank ? lw_const_ints(L, v) : NULL;
    if (!vals) return lw_unsupported(L, "padding amounts that are not constants");
    memcpy(amounts[i], vals, sizeof(int64_t) * (size_t)ti->rank);
  }
  OValue *x;
  if (check_pad(L, op, amounts[0], amounts[1], amounts[2], &x) != 0) return -1;
  if (!x)
    x = pad(L, lw_get(L, op->operands[0]), lw_get(L, op->operands[1]), ti->et, ti->rank,
            ti->dims, amounts[0], amounts[1], amounts[2]);
  lw_bind(L, op->results[0], x);
  return 0;
}
