/* control.c - functions, returns, and what JAX wraps around the ops:
 * calls (inlined), sharding annotations (no meaning on one device), shape
 * assertions (checked by JAX at export time), composites and custom calls. */
#include "h2o.h"

#include <string.h>

static OValue **operand_values(Lower *L, const Op *op) {
  OValue **vals = arena_alloc(L->c->arena, sizeof(OValue *) * (size_t)(op->n_operands + 1));
  for (int i = 0; i < op->n_operands; i++) vals[i] = lw_get(L, op->operands[i]);
  return vals;
}

static int bind_results(Lower *L, const Op *op, OValue **vals) {
  for (int i = 0; i < op->n_results; i++) {
    if (!vals[i]) return lw_unsupported(L, "result %d has no value", i);
    lw_bind(L, op->results[i], vals[i]);
  }
  return 0;
}

static int call_function(Lower *L, const Op *op, const char *callee) {
  const Func *f = ir_find_func(L->module, callee);
  if (!f)
    return diag_error_op(L->c, H2O_EINPUT, op, "call to undefined function @%s", callee);
  if (f->n_args != op->n_operands || f->n_results != op->n_results)
    return diag_error_op(L->c, H2O_EINPUT, op,
                         "@%s takes %d arguments and returns %d results, but the call "
                         "passes %d and expects %d",
                         callee, f->n_args, f->n_results, op->n_operands, op->n_results);
  OValue **results = arena_alloc(L->c->arena, sizeof(OValue *) * (size_t)(f->n_results + 1));
  if (lw_inline_call(L, f, operand_values(L, op), results) != 0) return -1;
  return bind_results(L, op, results);
}

int lower_call(Lower *L, const Op *op) {
  const Attr *callee = ir_op_attr(op, "callee");
  if (!callee || !callee->s) return lw_unsupported(L, "call without a callee");
  return call_function(L, op, callee->s);
}

int lower_return(Lower *L, const Op *op) {
  if (!L->ret) return lw_unsupported(L, "return outside of a function or region");
  if (op->n_operands != L->n_ret)
    return diag_error_op(L->c, H2O_EINPUT, op, "returns %d values where %d are expected",
                         op->n_operands, L->n_ret);
  for (int i = 0; i < op->n_operands; i++) L->ret[i] = lw_get(L, op->operands[i]);
  return 0;
}

/* Results are the operands, unchanged (sharding constraints, optimisation
 * barriers: they constrain XLA's scheduling or placement, not values). */
int lower_identity(Lower *L, const Op *op) {
  if (op->n_results != op->n_operands)
    return lw_unsupported(L, "%d operands but %d results", op->n_operands, op->n_results);
  return bind_results(L, op, operand_values(L, op));
}

int lower_nothing(Lower *L, const Op *op) {
  (void)L;
  (void)op;
  return 0;
}

static const char *string_of(const Attr *a) {
  return a && (a->kind == AK_STRING || a->kind == AK_SYMBOL) ? a->s : NULL;
}

int lower_custom_call(Lower *L, const Op *op) {
  const char *target = string_of(ir_op_attr(op, "call_target_name"));
  if (!target) return lw_unsupported(L, "custom_call without a target name");
  if (strcmp(target, "shape_assertion") == 0) {
    /* JAX checks these when the exported function is called with concrete
     * shapes; an ONNX graph has no place to raise an error, so they go. */
    return op->n_results == 0 ? 0 : lw_unsupported(L, "shape_assertion with results");
  }
  if (strcmp(target, "mhlo.erf") == 0 && op->n_operands == 1 && op->n_results == 1) {
    lw_bind(L, op->results[0], lw_op1(L, "Erf", lw_get(L, op->operands[0])));
    return 0;
  }
  if ((strcmp(target, "Sharding") == 0 || strcmp(target, "SPMDFullToShardShape") == 0 ||
       strcmp(target, "SPMDShardToFullShape") == 0) &&
      op->n_operands == op->n_results)
    return lower_identity(L, op);
  return lw_unsupported(L, "custom_call target '%s' has no ONNX equivalent", target);
}

/* A composite has a name we may know (then a direct mapping) and always a
 * decomposition function, which we inline otherwise. */
int lower_composite(Lower *L, const Op *op) {
  const char *name = string_of(ir_op_attr(op, "name"));
  if (name && strcmp(name, "chlo.erf") == 0 && op->n_operands == 1 && op->n_results == 1) {
    lw_bind(L, op->results[0], lw_op1(L, "Erf", lw_get(L, op->operands[0])));
    return 0;
  }
  const char *decomposition = string_of(ir_op_attr(op, "decomposition"));
  if (!decomposition)
    return lw_unsupported(L, "composite '%s' has no decomposition", name ? name : "?");
  return call_function(L, op, decomposition);
}
