/* control.c - functions, returns, and what JAX wraps around the ops:
 * calls (inlined, or calls of local functions: function.c), sharding annotations (no meaning on one device), shape
 * assertions (checked by JAX at export time), composites and custom calls. */
#include "lower/lower.h"

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

/* may_share: the call may become a call of a local function (func.call;
 * a composite's decomposition is always inlined). */
static int call_function(Lower *L, const Op *op, const char *callee, bool may_share) {
  const Func *f = ir_find_func(L->module, callee);
  if (!f)
    return diag_error_op(L->c, H2O_EINPUT, op, "call to undefined function @%s", callee);
  if (f->n_args != op->n_operands || f->n_results != op->n_results)
    return diag_error_op(L->c, H2O_EINPUT, op,
                         "@%s takes %d arguments and returns %d results, but the call "
                         "passes %d and expects %d",
                         callee, f->n_args, f->n_results, op->n_operands, op->n_results);
  OValue **results = arena_alloc(L->c->arena, sizeof(OValue *) * (size_t)(f->n_results + 1));
  OValue **args = operand_values(L, op);
  int rc = may_share ? lw_local_call(L, op, f, args, results) : 1;
  if (rc < 0) return -1;
  if (rc > 0 && lw_inline_call(L, f, args, results) != 0) return -1;
  return bind_results(L, op, results);
}

int lower_call(Lower *L, const Op *op) {
  const Attr *callee = ir_op_attr(op, "callee");
  if (!callee || !callee->s) return lw_unsupported(L, "call without a callee");
  return call_function(L, op, callee->s, true);
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
  if (strcmp(target, "stablehlo.dynamic_reduce_window") == 0)
    return lower_dynamic_reduce_window(L, op);
  if (lw_is_lapack_decomposition(target)) return lower_lapack_decomposition(L, op, target);
  if (strcmp(target, "ApproxTopK") == 0) return lower_approx_top_k(L, op); /* lower/sort.c */
  int lapack_rc = lower_lapack_lu_call(L, op, target); /* 1: not an LU/trsm/potrf call */
  if (lapack_rc <= 0) return lapack_rc;
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
  return call_function(L, op, decomposition, false);
}

/* ---- control flow: regions become ONNX subgraphs ------------------------ */

/* Lowers the single block of `r` into `sub` (which becomes L->g meanwhile);
 * the block's arguments must already be bound.  The returned values are
 * stored in results[0..n). */
static int lower_region_into(Lower *L, OGraph *sub, const Region *r, OValue **results, int n) {
  if (r->n_blocks != 1) return lw_unsupported(L, "a region with %d blocks", r->n_blocks);
  OGraph *saved_g = L->g;
  OValue **saved_ret = L->ret;
  int saved_n = L->n_ret;
  L->g = sub;
  L->ret = results;
  L->n_ret = n;
  int rc = lw_block(L, r->blocks[0]);
  L->g = saved_g;
  L->ret = saved_ret;
  L->n_ret = saved_n;
  for (int i = 0; rc == 0 && i < n; i++)
    if (!results[i]) rc = lw_unsupported(L, "a region returns no value for result %d", i);
  return rc;
}

static void add_outputs(Lower *L, OGraph *sub, OValue **vals, int n) {
  for (int i = 0; i < n; i++) lw_subgraph_output(L, sub, vals[i]);
}

static bool scalar_pred(const Value *v) {
  return v->type.et == ET_BOOL && type_numel(&v->type) == 1;
}

/* stablehlo.while -> Loop.  ONNX evaluates the condition before the first
 * iteration from an input and after each iteration inside the body, so the
 * cond region is lowered twice: once here on the initial values, once in the
 * body graph on the updated ones.  lw_plan_while (scan.c) says which values
 * need not be carried: those the body returns unchanged are read from the
 * enclosing graph, and the buffers of lax.scan's stacked outputs become Loop
 * scan outputs (stacked by the Loop, reversed after it for reverse scans), so
 * a scan costs no copy of its inputs or outputs per iteration. */
int lower_while(Lower *L, const Op *op) {
  if (op->n_regions != 2) return lw_unsupported(L, "expected cond and body regions");
  const Region *cond = op->regions[0], *body = op->regions[1];
  int n = op->n_operands;
  if (cond->n_blocks != 1 || body->n_blocks != 1 || cond->blocks[0]->n_args != n ||
      body->blocks[0]->n_args != n || op->n_results != n)
    return lw_unsupported(L, "regions do not match the %d loop-carried values", n);
  for (int i = 0; i < n; i++)
    if (op->operands[i]->type.kind != TK_TENSOR)
      return lw_unsupported(L, "loop-carried value %d is not a tensor", i);

  Arena *a = L->c->arena;
  WhileRole *role = arena_alloc(a, sizeof(WhileRole) * (size_t)(n + 1));
  const Value **scan_y = arena_alloc(a, sizeof(Value *) * (size_t)(n + 1));
  lw_plan_while(L, op, role, scan_y);
  OValue **init = operand_values(L, op);

  OValue *cond_init[1] = {NULL};
  for (int i = 0; i < n; i++) cond->blocks[0]->args[i]->lowered = init[i];
  if (lower_region_into(L, L->g, cond, cond_init, 1) != 0) return -1;

  if (lw_loop_check_depth(L) != 0) return -1;

  LoopBuilder lp;
  lw_loop_begin(L, &lp, "while_body", NULL);
  int n_carried = 0;
  for (int i = 0; i < n; i++) {
    Value *arg = body->blocks[0]->args[i];
    if (role[i] == WL_CARRIED) {
      /* typed as the HLO has it (complex: real pairs), not as init is */
      arg->lowered = lw_loop_carry(L, &lp, init[i], NULL);
      og_type_from_hlo(L->c, arg->lowered, &op->operands[i]->type);
      n_carried++;
    } else {
      /* invariant: the value itself; a scan buffer: read by nothing the body
       * outputs (scan.c checked), so its update is dead code DCE removes */
      arg->lowered = init[i];
    }
  }
  OValue **outs = arena_alloc(a, sizeof(OValue *) * (size_t)(n + 2));
  if (lower_region_into(L, lp.body, body, outs + 1, n) != 0) return lw_loop_abandon(L, &lp);
  for (int i = 0; i < n; i++)
    cond->blocks[0]->args[i]->lowered = role[i] == WL_CARRIED ? outs[1 + i] : init[i];
  if (lower_region_into(L, lp.body, cond, outs, 1) != 0) return lw_loop_abandon(L, &lp);
  /* body outputs: condition, carried values, then the scan outputs */
  OValue **next = arena_alloc(a, sizeof(OValue *) * (size_t)(n + 1));
  OValue **scan = arena_alloc(a, sizeof(OValue *) * (size_t)(n + 1));
  int n_next = 0, n_scan = 0;
  for (int i = 0; i < n; i++)
    if (role[i] == WL_CARRIED) next[n_next++] = outs[1 + i];
  for (int i = 0; i < n; i++)
    if (role[i] == WL_SCAN || role[i] == WL_SCAN_REVERSE) {
      OValue *y = scan_y[i]->lowered;
      if (!y || y->poisoned) {
        lw_unsupported(L, "scan output %d has no value", i);
        return lw_loop_abandon(L, &lp);
      }
      scan[n_scan++] = y;
    }
  lw_loop_close(L, &lp, outs[0], next, n_scan, scan);
  /* no trip count: the condition decides */
  ONode *loop = lw_loop_node(L, &lp, NULL, cond_init[0]);
  int next_carried = 0, next_scan = n_carried;
  for (int i = 0; i < n; i++) {
    Value *res = op->results[i];
    switch (role[i]) {
    case WL_CARRIED: /* typed as the HLO has it, as the body's input */
      og_type_from_hlo(L->c, loop->outputs[next_carried], &res->type);
      lw_bind(L, res, loop->outputs[next_carried++]);
      break;
    case WL_INVARIANT:
      lw_bind(L, res, init[i]);
      break;
    case WL_SCAN:
      lw_bind(L, res, loop->outputs[next_scan++]);
      break;
    case WL_SCAN_REVERSE: {
      OValue *stacked = loop->outputs[next_scan++];
      og_type_from_hlo(L->c, stacked, &res->type);
      int64_t start = -1, end = INT64_MIN, axis = 0, step = -1;
      OValue *sin[5] = {stacked, lw_const_i64s(L, 1, &start), lw_const_i64s(L, 1, &end),
                        lw_const_i64s(L, 1, &axis), lw_const_i64s(L, 1, &step)};
      lw_bind(L, res, lw_node(L, "Slice", 5, sin, 1)->outputs[0]);
      break;
    }
    }
  }
  return 0;
}

/* One branch region as a graph without inputs (ONNX If branches read the
 * enclosing graph's values directly). */
static OGraph *branch_graph(Lower *L, const Op *op, const Region *r, const char *name) {
  OGraph *sub = og_new(L->c, name, L->g);
  OValue **outs = arena_alloc(L->c->arena, sizeof(OValue *) * (size_t)(op->n_results + 1));
  if (r->n_blocks == 1 && r->blocks[0]->n_args != 0) {
    lw_unsupported(L, "a branch with block arguments");
    return NULL;
  }
  if (lower_region_into(L, sub, r, outs, op->n_results) != 0) return NULL;
  add_outputs(L, sub, outs, op->n_results);
  return sub;
}

/* If(pred) over then/else graphs; returns the If node, built in L->g. */
static ONode *emit_if(Lower *L, const Op *op, OValue *pred, OGraph *then_g, OGraph *else_g) {
  ONode *n = lw_node(L, "If", 1, &pred, op->n_results);
  og_attr_graph(L->c, n, "then_branch", then_g);
  og_attr_graph(L->c, n, "else_branch", else_g);
  for (int i = 0; i < op->n_results; i++) og_type_from_hlo(L->c, n->outputs[i], &op->results[i]->type);
  return n;
}

int lower_if(Lower *L, const Op *op) {
  if (op->n_regions != 2 || op->n_operands != 1 || !scalar_pred(op->operands[0]))
    return lw_unsupported(L, "expected a scalar i1 predicate and two branches");
  OGraph *then_g = branch_graph(L, op, op->regions[0], "then");
  OGraph *else_g = then_g ? branch_graph(L, op, op->regions[1], "else") : NULL;
  if (!else_g) return -1;
  OValue *pred = lw_get(L, op->operands[0]);
  ONode *n = emit_if(L, op, pred, then_g, else_g);
  for (int i = 0; i < op->n_results; i++) lw_bind(L, op->results[i], n->outputs[i]);
  return 0;
}

/* stablehlo.case -> a chain of Ifs: index == 0 ? b0 : (index == 1 ? b1 :
 * ... b[n-1]).  The spec sends an out-of-range index to the last branch,
 * which the chain does by construction. */

static OValue *index_equals(Lower *L, OValue *index, int k) {
  OValue *pred = lw_op2(L, "Equal", index, lw_const_scalar(L, index->type.et, k));
  og_set_type(L->c, pred, ET_BOOL, 0, NULL);
  return pred;
}

/* A graph computing branches first..n-1: the last branch alone, or
 * If(index == first, branch first, the chain of the rest). */
static OGraph *case_chain(Lower *L, const Op *op, OValue *index, int first) {
  if (first == op->n_regions - 1) return branch_graph(L, op, op->regions[first], "case_branch");
  OGraph *g = og_new(L->c, "case_chain", L->g);
  OGraph *saved = L->g;
  L->g = g;
  OGraph *then_g = branch_graph(L, op, op->regions[first], "case_branch");
  OGraph *else_g = then_g ? case_chain(L, op, index, first + 1) : NULL;
  if (else_g) {
    ONode *n = emit_if(L, op, index_equals(L, index, first), then_g, else_g);
    add_outputs(L, g, n->outputs, op->n_results);
  }
  L->g = saved;
  return else_g ? g : NULL;
}

int lower_case(Lower *L, const Op *op) {
  if (op->n_operands != 1 || op->n_regions < 1 || type_numel(&op->operands[0]->type) != 1)
    return lw_unsupported(L, "expected a scalar index and at least one branch");
  if (op->n_regions == 1) {
    /* a single branch always runs: inline it */
    OValue **outs = arena_alloc(L->c->arena, sizeof(OValue *) * (size_t)(op->n_results + 1));
    if (lower_region_into(L, L->g, op->regions[0], outs, op->n_results) != 0) return -1;
    for (int i = 0; i < op->n_results; i++) lw_bind(L, op->results[i], outs[i]);
    return 0;
  }
  OValue *index = lw_get(L, op->operands[0]);
  if (index->type.rank > 0) {
    index = lw_op2(L, "Reshape", index, lw_const_i64s(L, 0, NULL));
    og_set_type(L->c, index, op->operands[0]->type.et, 0, NULL);
  }
  OGraph *then_g = branch_graph(L, op, op->regions[0], "case_branch");
  OGraph *else_g = then_g ? case_chain(L, op, index, 1) : NULL;
  if (!else_g) return -1;
  ONode *n = emit_if(L, op, index_equals(L, index, 0), then_g, else_g);
  for (int i = 0; i < op->n_results; i++) lw_bind(L, op->results[i], n->outputs[i]);
  return 0;
}
