/* fuse_gemm.c - MatMul(A, B) + C -> Gemm(A, B, C) for 2-D A and B: the bias
 * add of a Linear layer in one node, as runtimes and Netron expect it.  A
 * Transpose of B (a weight used as x @ W.T) becomes transB=1.
 *
 * The fusion fires only when the MatMul result has one use (the Add) and is
 * not a graph output, and C broadcasts to [M, N] one-way, as Gemm requires. */
#include "passes/passes.h"

#include <string.h>

static bool gemm_type(ElemType et) { return et == ET_F32 || et == ET_F64 || et == ET_F16; }

/* C of rank <= 2 whose dims are 1 or those of [M, N] (right-aligned). */
static bool bias_fits(const OValue *cv, const OValue *y) {
  if (cv->type.rank < 0 || cv->type.rank > 2 || y->type.rank != 2) return false;
  for (int i = 0; i < cv->type.rank; i++) {
    int64_t d = cv->type.dims[i].value;
    const ODim *yd = &y->type.dims[2 - cv->type.rank + i];
    if (d == 1) continue;
    if (d < 0 || yd->value != d) return false;
  }
  return true;
}

static void fuse_graph(Ctx *c, OGraph *g) {
  for (int i = 0; i < g->nodes.len; i++) {
    ONode *add = g->nodes.items[i];
    if (!og_is(add, "Add") || add->n_inputs != 2) continue;
    for (int side = 0; side < 2; side++) {
      OValue *y = add->inputs[side], *bias = add->inputs[1 - side];
      ONode *mm = y->producer;
      if (!og_is(mm, "MatMul") || y->n_uses != 1 || y->is_output) continue;
      OValue *a = mm->inputs[0], *b = mm->inputs[1];
      if (a->type.rank != 2 || b->type.rank != 2 || !gemm_type(y->type.et)) continue;
      if (bias->type.et != y->type.et || !bias_fits(bias, y)) continue;
      int64_t trans_b = 0;
      ONode *t = b->producer;
      const OAttr *perm = og_is(t, "Transpose") ? og_get_attr(t, "perm") : NULL;
      if (perm && perm->n == 2 && perm->ints[0] == 1 && perm->ints[1] == 0) {
        b->n_uses--;
        b = t->inputs[0];
        b->n_uses++;
        trans_b = 1;
      }
      /* Rewrite the Add in place into the Gemm, so its output (and name,
       * which may be a graph output) stays. */
      OValue **in = arena_alloc(c->arena, sizeof(OValue *) * 3);
      in[0] = a;
      in[1] = b;
      in[2] = bias;
      add->op_type = "Gemm";
      add->inputs = in;
      add->n_inputs = 3;
      add->same_shape_inputs = false;
      if (trans_b) og_attr_int(c, add, "transB", 1);
      add->origin = mm->origin ? mm->origin : add->origin;
      mm->dead = true;
      break;
    }
  }
  og_recount_uses(g);
}

int pass_fuse_gemm(Ctx *c, OModel *m) {
  fuse_graph(c, m->graph);
  return 0;
}
