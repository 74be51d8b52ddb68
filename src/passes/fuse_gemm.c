/* fuse_gemm.c - MatMul(A, B) + C -> Gemm(A, B, C) for 2-D A and B: the bias
 * add of a Linear layer in one node, as runtimes and Netron expect it.  A
 * Transpose of B (a weight used as x @ W.T) becomes transB=1.
 *
 * The fusion fires only when the MatMul result has one use (the Add) and is
 * not a graph output, and C broadcasts to [M, N] one-way, as Gemm requires.
 * Like the other fusions it runs on every graph through fm_each_node, the
 * bodies of If and Loop (a dense layer in a scan or while loop) included. */
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

/* add = Add(MatMul(a, b), bias) or Add(bias, MatMul(a, b)) becomes
 * Gemm(a, b, bias) in place, so its output (and name, which may be a graph
 * output) stays. */
static bool try_gemm(Ctx *c, OModel *m, OGraph *g, ONode *add) {
  (void)m;
  (void)g;
  if (!og_is(add, ONNX_Add) || add->n_inputs != 2) return false;
  for (int side = 0; side < 2; side++) {
    OValue *y = add->inputs[side], *bias = add->inputs[1 - side];
    ONode *mm = fm_def(y, ONNX_MatMul);
    if (!mm || !og_single_use(y)) continue;
    OValue *a = mm->inputs[0], *b = mm->inputs[1];
    if (a->type.rank != 2 || b->type.rank != 2 || !gemm_type(y->type.et)) continue;
    if (bias->type.et != y->type.et || !bias_fits(bias, y)) continue;
    int64_t trans_b = 0;
    ONode *t = fm_def(b, ONNX_Transpose);
    const OAttr *perm = t ? og_get_attr(t, "perm") : NULL;
    if (perm && perm->n == 2 && perm->ints[0] == 1 && perm->ints[1] == 0) {
      b = t->inputs[0];
      trans_b = 1;
    }
    /* In place, keeping the node's name too (fm_rewrite would draw a new
     * one): a Gemm named after the Add it was.  Use counts follow, so that
     * fm_sweep removes the MatMul and a Transpose nothing else reads. */
    OValue **in = arena_alloc(c->arena, sizeof(OValue *) * 3);
    in[0] = a;
    in[1] = b;
    in[2] = bias;
    for (int j = 0; j < 3; j++) in[j]->n_uses++;
    for (int j = 0; j < 2; j++) add->inputs[j]->n_uses--;
    og_set_kind(add, ONNX_Gemm);
    add->inputs = in;
    add->n_inputs = 3;
    add->same_shape_inputs = false;
    add->origin = mm->origin ? mm->origin : add->origin;
    if (trans_b) og_attr_int(c, add, "transB", 1);
    return true;
  }
  return false;
}

int pass_fuse_gemm(Ctx *c, OModel *m) {
  fm_each_node(c, m, try_gemm);
  return 0;
}
