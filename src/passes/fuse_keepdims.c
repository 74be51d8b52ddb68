/* fuse_keepdims.c - ReduceX(x, keepdims=0) followed by an Unsqueeze or
 * Reshape that puts the reduced axes back as size 1 is ReduceX(x,
 * keepdims=1).  JAX's reductions always drop the axes and
 * broadcast_in_dim re-inserts them when the result is combined with the
 * input again (softmax, normalisations).  Only when the reduction's result
 * feeds nothing else and is no graph output.  The Unsqueeze/Reshape node
 * becomes the reduction, so its output keeps its name.
 */
#include "passes/passes.h"

#include <string.h>

static bool try_keepdims(Ctx *c, OModel *m, OGraph *g, ONode *n) {
  (void)m;
  if (!og_is(n, ONNX_Unsqueeze) && !og_is(n, ONNX_Reshape)) return false;
  OValue *r = n->inputs[0];
  ONode *red = r->producer;
  int64_t axes[MAX_RANK];
  bool keepdims;
  if (!red || red->dead || !onnx_op_has(red->kind, ONNX_REDUCES) || !og_single_use(r))
    return false;
  int na = fm_reduce_axes(c, red, axes, &keepdims);
  if (na <= 0 || keepdims || !fm_reinserts(c, n, axes, na)) return false;
  OAttr *attrs = red->attrs;
  int n_attrs = red->n_attrs;
  fm_rewrite(c, g, n, red->kind, red->inputs, red->n_inputs);
  for (int i = 0; i < n_attrs; i++) {
    const OAttr *a = &attrs[i];
    if (strcmp(a->name, "keepdims") == 0) continue;
    if (a->kind == OA_INT) og_attr_int(c, n, a->name, a->i);
    else if (a->kind == OA_INTS) og_attr_ints(c, n, a->name, a->ints, a->n);
  }
  og_attr_int(c, n, "keepdims", 1);
  n->origin = red->origin ? red->origin : n->origin;
  return true;
}

int pass_fuse_keepdims(Ctx *c, OModel *m) {
  fm_each_node(c, m, try_keepdims);
  return 0;
}
