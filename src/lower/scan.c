/* scan.c - what a stablehlo.while computes, for lower_while (control.c).
 *
 * JAX lowers lax.scan, fori_loop and map to a while loop whose carried
 * values include the scanned-over arrays (`xs`, e.g. a stack of layer
 * weights, returned unchanged each iteration) and one buffer per stacked
 * output (`ys`, written one row per iteration with dynamic_update_slice at
 * the loop counter).  Carried through an ONNX Loop as they are, both cost a
 * copy of the whole array per iteration, i.e. quadratic time in the scan
 * length.  This file finds them, so that control.c can read the invariant
 * arrays from the enclosing graph and emit the buffers as Loop scan outputs:
 *
 *   WL_INVARIANT  the body returns its argument unchanged;
 *   WL_SCAN       the body returns DUS(arg, y[None], c, 0, ..., 0), where the
 *                 counter c counts 0, 1, ..., N-1 (starts at a constant 0, is
 *                 incremented by 1, the condition is c < N) and N is the
 *                 buffer's leading dimension: row c of the result is y of
 *                 iteration c, every row is written exactly once, and the
 *                 buffer is read nowhere else;
 *   WL_SCAN_REVERSE  the same with row N-1-c (lax.scan(reverse=True)).
 *
 * The analysis looks through func.call (JAX puts the index arithmetic and
 * the update into small private functions) by following values from a call
 * result into the callee's return, and from a callee's parameter back to the
 * call's operand.  Anything it does not recognise stays WL_CARRIED, which is
 * always correct.
 */
#include "lower/lower.h"

#include <string.h>

enum { TRACE_MAX_CALLS = 16 };

/* A value and the call sites through which the walk reached it (innermost
 * last): its function is the callee of calls[depth-1], or the loop body. */
typedef struct Trace {
  const Value *v;
  const Op *calls[TRACE_MAX_CALLS];
  int depth;
} Trace;

static bool is_call(const Op *op) {
  return op && (op->kind == OP_CALL || op->kind == OP_CALL_SHORT);
}

static const Func *callee_of(const Lower *L, const Op *call) {
  const Attr *a = ir_op_attr(call, "callee");
  if (!a || !a->s) return NULL;
  const Func *f = ir_find_func(L->module, a->s);
  if (!f || f->n_args != call->n_operands || f->n_results != call->n_results ||
      f->body->n_ops == 0)
    return NULL;
  return f;
}

/* The block a traced value lives in: the innermost callee's body, or root. */
static const Block *trace_block(const Lower *L, const Trace *t, const Block *root) {
  if (t->depth == 0) return root;
  const Func *f = callee_of(L, t->calls[t->depth - 1]);
  return f ? f->body : NULL;
}

/* Uses of v by the ops of b, nested regions included. */
static int count_uses(const Block *b, const Value *v) {
  int n = 0;
  for (int i = 0; i < b->n_ops; i++) {
    const Op *op = b->ops[i];
    for (int j = 0; j < op->n_operands; j++) n += op->operands[j] == v;
    for (int r = 0; r < op->n_regions; r++)
      for (int k = 0; k < op->regions[r]->n_blocks; k++)
        n += count_uses(op->regions[r]->blocks[k], v);
  }
  return n;
}

/* Follows t->v through calls (into the callee's return; unless `outward`)
 * and out of callee parameters (to the call's operand) until it reaches a
 * value defined by another op or an argument of the root block.  With
 * `single_use`, every value passed on the way must have exactly one use in
 * its block (so that nothing else reads what flows along the path); returns
 * false when one has more, or when the walk cannot continue (calls nested
 * deeper than we follow). */
static bool trace_walk(const Lower *L, Trace *t, const Block *root, bool single_use,
                       bool outward) {
  for (int guard = 0; guard < 4 * TRACE_MAX_CALLS; guard++) {
    const Block *b = trace_block(L, t, root);
    if (!b) return false;
    if (single_use && count_uses(b, t->v) != 1) return false;
    const Op *def = t->v->def;
    if (is_call(def) && !outward) {
      const Func *f = callee_of(L, def);
      if (!f || t->depth == TRACE_MAX_CALLS) return false;
      const Op *ret = f->body->ops[f->body->n_ops - 1];
      if (t->v->index >= ret->n_operands) return false;
      t->calls[t->depth++] = def;
      t->v = ret->operands[t->v->index];
      continue;
    }
    if (!def && t->depth > 0) {
      const Op *call = t->calls[t->depth - 1];
      const Func *f = callee_of(L, call);
      if (!f || t->v->index >= f->n_args || f->body->args[t->v->index] != t->v) return false;
      t->v = call->operands[t->v->index];
      t->depth--;
      continue;
    }
    return true;
  }
  return false;
}

static bool trace_resolve(const Lower *L, Trace *t, const Block *root, bool single_use) {
  return trace_walk(L, t, root, single_use, false);
}

static Trace trace_at(const Trace *from, const Value *v) {
  Trace t = *from;
  t.v = v;
  return t;
}

/* v as a*counter + b over the integers (scalars or one-element tensors),
 * where counter is an argument of the root block.  False when v is anything
 * else.  Integer overflow is not a concern: the values are loop indices. */
static bool affine(const Lower *L, Trace t, const Block *root, const Value *counter,
                   int64_t *a, int64_t *b, int depth) {
  if (depth > 32 || !trace_resolve(L, &t, root, false)) return false;
  if (t.v == counter && t.depth == 0) {
    *a = 1;
    *b = 0;
    return true;
  }
  const Op *op = t.v->def;
  if (!op || type_numel(&t.v->type) != 1 || !et_is_int(t.v->type.et)) return false;
  int64_t a0, b0, a1, b1;
  switch (op->kind) {
  case OP_CONSTANT:
    *a = 0;
    return ir_attr_int(ir_op_attr(op, "value"), b);
  case OP_CONVERT: case OP_RESHAPE: case OP_BROADCAST_IN_DIM:
    if (op->n_operands != 1 || !et_is_int(op->operands[0]->type.et)) return false;
    return affine(L, trace_at(&t, op->operands[0]), root, counter, a, b, depth + 1);
  case OP_NEGATE:
    if (!affine(L, trace_at(&t, op->operands[0]), root, counter, &a0, &b0, depth + 1))
      return false;
    *a = -a0;
    *b = -b0;
    return true;
  case OP_ADD: case OP_SUBTRACT: case OP_MULTIPLY: {
    if (op->n_operands != 2 ||
        !affine(L, trace_at(&t, op->operands[0]), root, counter, &a0, &b0, depth + 1) ||
        !affine(L, trace_at(&t, op->operands[1]), root, counter, &a1, &b1, depth + 1))
      return false;
    int64_t s = op->kind == OP_SUBTRACT ? -1 : 1;
    if (op->kind != OP_MULTIPLY) {
      *a = a0 + s * a1;
      *b = b0 + s * b1;
      return true;
    }
    if (a0 != 0 && a1 != 0) return false; /* counter^2 */
    *a = a0 * b1 + a1 * b0;
    *b = b0 * b1;
    return true;
  }
  default:
    return false;
  }
}

/* The counter of the loop: carried value k starting at 0, incremented by 1
 * each iteration, with the condition k < N.  Returns k (and N), or -1. */
static int find_counter(const Lower *L, const Op *op, int64_t *trip) {
  const Block *cond = op->regions[0]->blocks[0], *body = op->regions[1]->blocks[0];
  const Op *cret = cond->ops[cond->n_ops - 1];
  const Op *bret = body->ops[body->n_ops - 1];
  if (cret->n_operands != 1 || bret->n_operands != op->n_operands) return -1;
  Trace t = {cret->operands[0], {0}, 0};
  if (!trace_resolve(L, &t, cond, false) || t.depth != 0) return -1;
  const Op *cmp = t.v->def;
  if (!cmp || cmp->kind != OP_COMPARE || cmp->n_operands != 2) return -1;
  const Attr *dir = ir_op_attr(cmp, "comparison_direction");
  if (!dir || !dir->s || strcmp(dir->s, "LT") != 0) return -1;
  for (int k = 0; k < op->n_operands; k++) {
    const Value *carg = cond->args[k];
    int64_t a, b, na, nb;
    if (!affine(L, trace_at(&t, cmp->operands[0]), cond, carg, &a, &b, 0) || a != 1 || b != 0)
      continue;
    if (!affine(L, trace_at(&t, cmp->operands[1]), cond, carg, &na, &nb, 0) || na != 0)
      continue;
    /* starts at 0 ... */
    Trace init = {op->operands[k], {0}, 0};
    int64_t ia, ib;
    if (!op->operands[k]->def || op->operands[k]->def->kind != OP_CONSTANT ||
        !affine(L, init, body, NULL, &ia, &ib, 0) || ia != 0 || ib != 0)
      continue;
    /* ... and steps by 1 */
    Trace next = {bret->operands[k], {0}, 0};
    if (!affine(L, next, body, body->args[k], &a, &b, 0) || a != 1 || b != 1) continue;
    *trip = nb;
    return k;
  }
  return -1;
}

/* y when `update` is y with a leading dimension of 1 added (reshape, or
 * broadcast_in_dim with dimensions [1, ..., r]), else NULL. */
static const Value *unit_row_source(const Lower *L, const Value *update) {
  const Op *op = update->def;
  if (!op || op->n_operands < 1) return NULL;
  const Value *y = op->operands[0];
  const Type *ut = &update->type, *yt = &y->type;
  if (ut->rank != yt->rank + 1 || ut->dims[0] != 1 || ut->et != yt->et) return NULL;
  for (int d = 0; d < yt->rank; d++)
    if (yt->dims[d] != ut->dims[d + 1]) return NULL;
  if (op->kind == OP_RESHAPE || op->kind == OP_DYNAMIC_RESHAPE) return y;
  if (op->kind != OP_BROADCAST_IN_DIM && op->kind != OP_DYNAMIC_BROADCAST_IN_DIM) return NULL;
  int64_t *dims;
  if (ir_attr_i64s(L->c, ir_op_attr(op, "broadcast_dimensions"), &dims) != yt->rank) return NULL;
  for (int d = 0; d < yt->rank; d++)
    if (dims[d] != d + 1) return NULL;
  return y;
}

/* Carried value i as a scan output: the role, and y (a value of the body
 * block) when it is one. */
static WhileRole scan_role(const Lower *L, const Op *op, int i, int counter, int64_t trip,
                           const Value **y_out) {
  const Block *cond = op->regions[0]->blocks[0], *body = op->regions[1]->blocks[0];
  const Op *bret = body->ops[body->n_ops - 1];
  const Type *bt = &op->operands[i]->type;
  if (bt->rank < 1 || bt->dims[0] != trip || trip < 1) return WL_CARRIED;
  if (count_uses(cond, cond->args[i]) != 0) return WL_CARRIED;
  /* the body's result is a dynamic_update_slice, read by nothing else */
  Trace t = {bret->operands[i], {0}, 0};
  if (count_uses(body, t.v) != 1 || !trace_resolve(L, &t, body, true)) return WL_CARRIED;
  const Op *dus = t.v->def;
  if (!dus || dus->kind != OP_DYNAMIC_UPDATE_SLICE || dus->n_operands != bt->rank + 2)
    return WL_CARRIED;
  /* ... of the carried buffer itself, which nothing else reads */
  Trace buf = trace_at(&t, dus->operands[0]);
  if (!trace_resolve(L, &buf, body, true) || buf.depth != 0 || buf.v != body->args[i])
    return WL_CARRIED;
  /* ... at row c or N-1-c, column 0 */
  int64_t a, b;
  if (!affine(L, trace_at(&t, dus->operands[2]), body, body->args[counter], &a, &b, 0))
    return WL_CARRIED;
  WhileRole role;
  if (a == 1 && b == 0) role = WL_SCAN;
  else if (a == -1 && b == trip - 1) role = WL_SCAN_REVERSE;
  else return WL_CARRIED;
  for (int k = 3; k < dus->n_operands; k++)
    if (!affine(L, trace_at(&t, dus->operands[k]), body, body->args[counter], &a, &b, 0) ||
        a != 0 || b != 0)
      return WL_CARRIED;
  /* ... with one whole row: y[None], y a value of the body itself */
  Trace upd = trace_at(&t, dus->operands[1]);
  if (!trace_resolve(L, &upd, body, false)) return WL_CARRIED;
  const Value *y = unit_row_source(L, upd.v);
  if (!y) return WL_CARRIED;
  const Type *yt = &y->type;
  if (yt->rank != bt->rank - 1) return WL_CARRIED;
  for (int d = 0; d < yt->rank; d++)
    if (yt->dims[d] != bt->dims[d + 1]) return WL_CARRIED;
  /* (y itself is often a call's result: stop there, in the body) */
  Trace ys = trace_at(&upd, y);
  if (!trace_walk(L, &ys, body, false, true) || ys.depth != 0) return WL_CARRIED;
  *y_out = ys.v;
  return role;
}

void lw_plan_while(const Lower *L, const Op *op, WhileRole *role, const Value **scan_value) {
  int n = op->n_operands;
  const Block *cond = op->regions[0]->blocks[0], *body = op->regions[1]->blocks[0];
  for (int i = 0; i < n; i++) {
    role[i] = WL_CARRIED;
    scan_value[i] = NULL;
  }
  if (body->n_ops == 0 || cond->n_ops == 0) return;
  const Op *bret = body->ops[body->n_ops - 1];
  if (bret->n_operands != n) return;
  for (int i = 0; i < n; i++)
    if (bret->operands[i] == body->args[i]) role[i] = WL_INVARIANT;
  int64_t trip = 0;
  int counter = find_counter(L, op, &trip);
  if (counter < 0) return;
  for (int i = 0; i < n; i++)
    if (i != counter && role[i] == WL_CARRIED)
      role[i] = scan_role(L, op, i, counter, trip, &scan_value[i]);
}
