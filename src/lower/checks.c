/* checks.c - shape rules of StableHLO ops, checked before lowering.
 *
 * The parser checks that each op's operands have the types its signature
 * lists, but a signature may list any types.  An elementwise op whose
 * operands and result differ in shape (add of 2x3 and 3x2), or a transpose,
 * concatenate, slice or reduce whose result type is not what its operands
 * and attributes make, is not valid StableHLO; converted as it is, it gives
 * a model that ONNX rejects, or worse, one that computes something else.
 * lw_block calls lw_check_shapes on every op first, so such input is an
 * error with its position instead.  A '?' dimension matches any size.
 * Attributes out of range are left to the converters, which say so.
 *
 * Which rule an op follows is its shape column in ir/ops.def (OpShape);
 * SHAPE_CUSTOM, SHAPE_UNCHECKED and SHAPE_NONE are not checked here.
 */
#include "lower/lower.h"

static bool same_shape(const Type *a, const Type *b) {
  if (a->rank != b->rank) return false;
  for (int i = 0; i < a->rank; i++)
    if (a->dims[i] != DIM_DYN && b->dims[i] != DIM_DYN && a->dims[i] != b->dims[i]) return false;
  return true;
}

/* SHAPE_ELEMENTWISE, SHAPE_SELECT, SHAPE_CLAMP */
static int check_elementwise(Lower *L, const Op *op, OpShape rule) {
  if (op->n_results != 1) return 0;
  const Type *rt = &op->results[0]->type;
  if (rt->kind != TK_TENSOR) return 0;
  for (int i = 0; i < op->n_operands; i++) {
    const Type *t = &op->operands[i]->type;
    if (t->kind != TK_TENSOR || same_shape(t, rt)) continue;
    bool scalar_ok = (rule == SHAPE_SELECT && i == 0) || (rule == SHAPE_CLAMP && i != 1);
    if (scalar_ok && t->rank == 0) continue;
    char a[64 + 24 * MAX_RANK], b[64 + 24 * MAX_RANK];
    return diag_error_op(L->c, H2O_EINPUT, op,
                         "%s: operand %d has type %s, which does not have the shape of the "
                         "result type %s", op->opname, i, type_str(t, a, sizeof a),
                         type_str(rt, b, sizeof b));
  }
  return 0;
}

static bool dim_fits(int64_t want, int64_t have) {
  return want == DIM_DYN || have == DIM_DYN || want == have;
}

static int result_mismatch(Lower *L, const Op *op, int result, int axis, int64_t want) {
  char b[64 + 24 * MAX_RANK];
  return diag_error_op(L->c, H2O_EINPUT, op,
                       "%s: result %d has type %s, but its operands and attributes make "
                       "axis %d %lld long", op->opname, result,
                       type_str(&op->results[result]->type, b, sizeof b), axis, (long long)want);
}

/* The integer list attribute `name`, or -1 (absent or not a list). */
static int ints(Lower *L, const Op *op, const char *name, int64_t **out) {
  const Attr *a = ir_op_attr(op, name);
  return a ? ir_attr_i64s(L->c, a, out) : -1;
}

static int check_transpose(Lower *L, const Op *op) {
  const Type *ti = &op->operands[0]->type, *to = &op->results[0]->type;
  int64_t *perm;
  int n = ints(L, op, "permutation", &perm);
  if (n != ti->rank || to->rank != n) return 0;
  for (int i = 0; i < n; i++) {
    if (perm[i] < 0 || perm[i] >= n) return 0;
    if (!dim_fits(ti->dims[perm[i]], to->dims[i]))
      return result_mismatch(L, op, 0, i, ti->dims[perm[i]]);
  }
  return 0;
}

static int check_concatenate(Lower *L, const Op *op) {
  const Type *to = &op->results[0]->type;
  const Attr *a = ir_op_attr(op, "dimension");
  int64_t axis;
  if (!a || !ir_attr_int(a, &axis) || axis < 0 || axis >= to->rank) return 0;
  int64_t sum = 0;
  for (int i = 0; i < op->n_operands; i++) {
    const Type *t = &op->operands[i]->type;
    if (t->kind != TK_TENSOR || t->rank != to->rank) return 0;
    for (int d = 0; d < to->rank; d++)
      if (d != axis && !dim_fits(t->dims[d], to->dims[d]))
        return result_mismatch(L, op, 0, d, t->dims[d]);
    if (sum != DIM_DYN)
      sum = t->dims[axis] == DIM_DYN || h2o_add_overflow(sum, t->dims[axis], &sum)
                ? DIM_DYN : sum;
  }
  if (!dim_fits(sum, to->dims[axis])) return result_mismatch(L, op, 0, (int)axis, sum);
  return 0;
}

static int check_slice(Lower *L, const Op *op) {
  const Type *ti = &op->operands[0]->type, *to = &op->results[0]->type;
  int64_t *start, *limit, *stride = NULL;
  int n1 = ints(L, op, "start_indices", &start), n2 = ints(L, op, "limit_indices", &limit);
  int n3 = ir_op_attr(op, "strides") ? ints(L, op, "strides", &stride) : 0;
  if (n1 != ti->rank || n2 != ti->rank || (n3 != 0 && n3 != ti->rank) || to->rank != ti->rank)
    return 0;
  for (int i = 0; i < ti->rank; i++) {
    int64_t st = stride ? stride[i] : 1;
    if (st < 1 || start[i] < 0 || start[i] > limit[i]) return 0;
    int64_t len = (limit[i] - start[i]) / st + ((limit[i] - start[i]) % st != 0);
    if (!dim_fits(len, to->dims[i])) return result_mismatch(L, op, 0, i, len);
  }
  return 0;
}

static int check_reduce(Lower *L, const Op *op) {
  int64_t *axes;
  int n = ints(L, op, "dimensions", &axes), m = op->n_results;
  if (n < 0 || op->n_operands != 2 * m) return 0;
  for (int r = 0; r < m; r++) {
    const Type *ti = &op->operands[r]->type, *to = &op->results[r]->type;
    if (ti->kind != TK_TENSOR || to->kind != TK_TENSOR || to->rank != ti->rank - n) return 0;
    int k = 0;
    for (int d = 0; d < ti->rank; d++) {
      bool reduced = false;
      for (int a = 0; a < n; a++) reduced |= axes[a] == d;
      if (reduced) continue;
      if (k >= to->rank) return 0;
      if (!dim_fits(ti->dims[d], to->dims[k])) return result_mismatch(L, op, r, k, ti->dims[d]);
      k++;
    }
  }
  return 0;
}

int lw_check_shapes(Lower *L, const Op *op) {
  if (op->n_results < 1 || op->n_operands < 1) return 0;
  for (int i = 0; i < op->n_results; i++)
    if (op->results[i]->type.kind != TK_TENSOR) return 0;
  if (op->operands[0]->type.kind != TK_TENSOR) return 0;
  OpShape rule = op_table[op->kind].shape;
  switch (rule) {
  case SHAPE_ELEMENTWISE: case SHAPE_SELECT: case SHAPE_CLAMP:
    return check_elementwise(L, op, rule);
  case SHAPE_TRANSPOSE: return op->n_operands == 1 ? check_transpose(L, op) : 0;
  case SHAPE_CONCAT: return check_concatenate(L, op);
  case SHAPE_SLICE: return op->n_operands == 1 ? check_slice(L, op) : 0;
  case SHAPE_REDUCE: return check_reduce(L, op);
  case SHAPE_CUSTOM: case SHAPE_UNCHECKED: case SHAPE_NONE: return 0;
  case SHAPE_MISSING: case SHAPE__COUNT: break;
  }
  return diag_internal(L->c, __FILE__, __LINE__, "an op without a shape rule in ops.def");
}
