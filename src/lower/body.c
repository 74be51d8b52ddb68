/* body.c - a scalar region applied to whole tensors, element by element.
 *
 * The bodies of reduce, reduce_window and select_and_scatter compute on
 * scalars (block arguments of type tensor<T>).  Where no ONNX reduction
 * matches a body (logaddexp in cumlogsumexp, xor, the (value, tangent) pair
 * of a max pool's jvp), the converters combine whole tensors with the body
 * instead: lw_apply_body lowers a copy of each op of the body whose values
 * have the tensors' shape, by the op's own converter.  Only elementwise ops
 * may read such a widened value (constants and ops on constants keep their
 * rank-0 type and broadcast); anything else in the body is reported.
 */
#include "lower/lower.h"

#include <string.h>

/* A Value standing in for `like` with type (et, rank, dims). */
static Value *stand_in(Lower *L, const Value *like, ElemType et, int rank, const int64_t *dims) {
  Value *v = arena_alloc(L->c->arena, sizeof *v);
  int64_t *d = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(rank + 1));
  if (rank > 0) memcpy(d, dims, sizeof(int64_t) * (size_t)rank);
  v->type.kind = TK_TENSOR;
  v->type.et = et;
  v->type.rank = rank;
  v->type.dims = d;
  v->name = like->name;
  v->index = like->index;
  v->n_uses = like->n_uses;
  return v;
}

static bool elementwise(const Op *op) {
  OpShape s = op_table[op->kind].shape;
  return s == SHAPE_ELEMENTWISE || s == SHAPE_SELECT || s == SHAPE_CLAMP;
}

static bool is_return(const Op *op) {
  return op->kind == OP_RETURN || op->kind == OP_RETURN_SHORT || op->kind == OP_FUNC_RETURN;
}

int lw_apply_body(Lower *L, const Block *b, OValue *const *args, int rank, const int64_t *dims,
                  OValue **results) {
  Arena *a = L->c->arena;
  int cap = b->n_args;
  for (int i = 0; i < b->n_ops; i++) cap += b->ops[i]->n_results;
  const Value **from = arena_alloc(a, sizeof(Value *) * (size_t)(cap + 1));
  Value **to = arena_alloc(a, sizeof(Value *) * (size_t)(cap + 1));
  int n = 0;
  for (int i = 0; i < b->n_args; i++) {
    const Value *arg = b->args[i];
    if (arg->type.kind != TK_TENSOR || arg->type.rank != 0)
      return lw_unsupported(L, "a body whose arguments are not scalars");
    /* an argument given as a rank-0 value (an init) keeps the scalar type */
    bool wide = args[i]->type.rank != 0;
    from[n] = arg;
    to[n] = stand_in(L, arg, arg->type.et, wide ? rank : 0, dims);
    to[n++]->lowered = args[i];
  }
  for (int i = 0; i < b->n_ops; i++) {
    const Op *op = b->ops[i];
    Value **operands = arena_alloc(a, sizeof(Value *) * (size_t)(op->n_operands + 1));
    bool wide = false;
    for (int j = 0; j < op->n_operands; j++) {
      operands[j] = NULL;
      for (int k = n - 1; k >= 0 && !operands[j]; k--)
        if (from[k] == op->operands[j]) operands[j] = to[k];
      if (!operands[j]) /* a value from outside the body: bound already */
        operands[j] = op->operands[j];
      wide |= operands[j]->type.rank != 0;
    }
    if (is_return(op)) {
      if (i != b->n_ops - 1) break;
      for (int j = 0; j < op->n_operands; j++) {
        OValue *v = lw_get(L, operands[j]);
        if (operands[j]->type.rank == 0 && rank > 0) { /* a constant result: broadcast it */
          OValue *shape = lw_op1(L, "Shape", args[0]);
          v = lw_typed(L, lw_op2(L, "Expand", v, shape), operands[j]->type.et, rank, dims);
        }
        results[j] = v;
      }
      return 0;
    }
    if (op->n_regions > 0 || lw_touches_complex(op))
      return lw_unsupported(L, "%s inside the body", op->opname);
    if (wide && !elementwise(op))
      return lw_unsupported(L, "%s inside the body, which is applied element by element",
                            op->opname);
    Op *copy = arena_alloc(a, sizeof *copy);
    *copy = *op;
    copy->operands = operands;
    copy->results = arena_alloc(a, sizeof(Value *) * (size_t)(op->n_results + 1));
    for (int j = 0; j < op->n_results; j++) {
      const Value *res = op->results[j];
      Value *v = stand_in(L, res, res->type.et, wide ? rank : res->type.rank,
                          wide ? dims : res->type.dims);
      v->def = copy;
      copy->results[j] = v;
      from[n] = res;
      to[n++] = v;
    }
    const Op *saved = L->op;
    L->op = copy;
    LowerFn fn = lw_converters[op->kind];
    int rc = fn ? fn(L, copy) : lower_unsupported_op(L, copy);
    L->op = saved;
    if (rc != 0) return -1;
    for (int j = 0; j < op->n_results; j++)
      if (!copy->results[j]->lowered || copy->results[j]->lowered->poisoned) return -1;
  }
  return lw_unsupported(L, "a body that does not end in a return");
}

/* ---- bodies whose order of application does not matter ------------------ *
 * XLA folds the elements of a reduce or a window one after the other; the
 * converters that apply a body in a tree or by doubling reach the same
 * result only when the body is associative.  These are the forms known to
 * be (NaN aside, where their order shows as in XLA's own parallel paths). */

static const Value *operand_of(const Value *v, OpKind kind, int i) {
  const Op *d = v->def;
  return d && d->kind == kind && d->n_operands > i ? d->operands[i] : NULL;
}

static bool both_args(const Op *d, const Value *a, const Value *b) {
  return d && d->n_operands == 2 &&
         ((d->operands[0] == a && d->operands[1] == b) ||
          (d->operands[0] == b && d->operands[1] == a));
}

/* op(a, b) in either order, op one of the associative binary ops. */
static bool associative_op(const Value *v, const Value *a, const Value *b) {
  const Op *d = v->def;
  if (!both_args(d, a, b)) return false;
  switch (d->kind) {
  case OP_ADD: case OP_MULTIPLY: case OP_MAXIMUM: case OP_MINIMUM: case OP_AND: case OP_OR:
  case OP_XOR:
    return true;
  default: return false;
  }
}

/* jnp.logaddexp as JAX writes it (cumlogsumexp's body):
 *   d = a - b;  select(d != d, a + b, max(a, b) + log1p(exp(-|d|))) */
static bool is_logaddexp(const Value *v, const Value *a, const Value *b) {
  const Op *sel = v->def;
  if (!sel || sel->kind != OP_SELECT || sel->n_operands != 3) return false;
  const Op *nan = sel->operands[0]->def;
  const Attr *dir = nan && nan->kind == OP_COMPARE ? ir_op_attr(nan, "comparison_direction") : NULL;
  if (!dir || !dir->s || strcmp(dir->s, "NE") != 0 || nan->n_operands != 2 ||
      nan->operands[0] != nan->operands[1])
    return false;
  const Value *d = nan->operands[0];
  const Op *sub = d->def;
  if (!sub || sub->kind != OP_SUBTRACT || !both_args(sub, a, b)) return false;
  const Op *sum = sel->operands[1]->def;
  if (!sum || sum->kind != OP_ADD || !both_args(sum, a, b)) return false;
  const Op *out = sel->operands[2]->def;
  if (!out || out->kind != OP_ADD || out->n_operands != 2) return false;
  for (int i = 0; i < 2; i++) {
    const Op *mx = out->operands[i]->def;
    if (!mx || mx->kind != OP_MAXIMUM || !both_args(mx, a, b)) continue;
    const Value *t = operand_of(out->operands[1 - i], OP_LOG1P, 0);
    t = t ? operand_of(t, OP_EXPONENTIAL, 0) : NULL;
    t = t ? operand_of(t, OP_NEGATE, 0) : NULL;
    t = t ? operand_of(t, OP_ABS, 0) : NULL;
    if (t == d) return true;
  }
  return false;
}

/* The (key, payload...) selection of a max or min with its companions:
 *   p = compare DIR(k_a, k_b);  return select(p, k_a, k_b), select(p, x_a, x_b)...
 * (the jvp of a max pool: reduce_window over values and tangents). */
static bool is_select_pair(const Block *b, const Op *ret, int n) {
  const Value *p = NULL;
  for (int i = 0; i < n; i++) {
    const Op *s = ret->operands[i]->def;
    if (!s || s->kind != OP_SELECT || s->n_operands != 3 || s->operands[1] != b->args[i] ||
        s->operands[2] != b->args[n + i])
      return false;
    if (p && s->operands[0] != p) return false;
    p = s->operands[0];
  }
  const Op *c = p ? p->def : NULL;
  const Attr *dir = c && c->kind == OP_COMPARE ? ir_op_attr(c, "comparison_direction") : NULL;
  if (!dir || !dir->s || c->n_operands != 2 || c->operands[0] != b->args[0] ||
      c->operands[1] != b->args[n])
    return false;
  return strcmp(dir->s, "GE") == 0 || strcmp(dir->s, "GT") == 0 || strcmp(dir->s, "LE") == 0 ||
         strcmp(dir->s, "LT") == 0;
}

bool lw_body_is_associative(const Block *b) {
  if (b->n_ops == 0 || b->n_args % 2 != 0) return false;
  const Op *ret = b->ops[b->n_ops - 1];
  int n = b->n_args / 2;
  if (!is_return(ret) || ret->n_operands != n) return false;
  if (n > 1) return is_select_pair(b, ret, n);
  const Value *v = ret->operands[0], *a = b->args[0], *x = b->args[1];
  return associative_op(v, a, x) || is_logaddexp(v, a, x);
}
