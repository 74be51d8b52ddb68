/* fuse_avgpool.c - AveragePool(x) * N / N -> AveragePool(x).
 *
 * StableHLO has no average pool: flax's avg_pool is reduce_window(add)
 * divided by the window size N.  The lowering maps the windowed sum to
 * AveragePool * N (a sum is what reduce_window computes), so the division
 * that follows gives back the AveragePool.  Both constants must be the same
 * splat value, and the product must feed nothing but the division: then
 * the pair is dropped.  (The result is the average the runtime computes
 * directly, without the round trip through the sum.)
 */
#include "passes/passes.h"

#include <string.h>

static bool try_avgpool(Ctx *c, OModel *m, OGraph *g, ONode *div) {
  (void)m;
  if (!og_is(div, ONNX_Div) || div->n_inputs != 2) return false;
  FmPat p = {.n = 0};
  double k1, k2;
  fm_add(&p, div);
  ONode *mul = fm_take(&p, div->inputs[0], ONNX_Mul);
  if (!mul || mul->n_inputs != 2 || !fm_splat(c, div->inputs[1], &k2) || !(k2 > 0)) return false;
  for (int side = 0; side < 2; side++) {
    OValue *pool = mul->inputs[side], *k = mul->inputs[1 - side];
    if (!fm_def(pool, ONNX_AveragePool) || !fm_splat(c, k, &k1) || k1 != k2) continue;
    if (!fm_fits(k, pool) || !fm_fits(div->inputs[1], pool)) continue;
    if (!fm_same_shape(div->outputs[0], pool) || !fm_closed(&p, div)) continue;
    OValue *out = div->outputs[0];
    if (out->is_output) {
      fm_rewrite(c, g, div, ONNX_Identity, &pool, 1); /* the output keeps its name */
    } else {
      og_replace_uses(g, out, pool);
      div->dead = true;
      for (int j = 0; j < div->n_inputs; j++) div->inputs[j]->n_uses--;
    }
    return true;
  }
  return false;
}

int pass_fuse_avgpool(Ctx *c, OModel *m) {
  fm_each_node(c, m, try_avgpool);
  return 0;
}
