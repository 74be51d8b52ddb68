/* layout_chains.c - chains of Transpose, Reshape, Unsqueeze and Squeeze that
 * leave every axis of size > 1 where it was become one Reshape.
 *
 * Equinox's Conv2d and MaxPool2d under jax.vmap lower to NHWC <-> NCHW
 * Transposes with a unit axis (the vmapped batch of one example) inserted
 * and removed between them:
 *
 *   Conv -> Transpose[0,2,3,1] -> Unsqueeze -> Transpose[0,1,4,2,3] -> Reshape -> MaxPool
 *
 * Followed through, the axes of size > 1 come out in the order they went in:
 * the chain only moves data it does not need to move, and is
 * Reshape(x, shape of the chain's output).  The transpose pass cannot see
 * this (the Transposes never meet: Unsqueeze and Reshape sit between them).
 *
 * An axis is followed by its size: a Reshape, Unsqueeze or Squeeze of the
 * chain must keep the sizes > 1 in order (it only adds or drops 1s), a
 * Transpose permutes them.  Dynamic sizes must be named alike ("B") to be
 * followed; a size nothing is known about stops the chain.
 */
#include "passes/passes.h"

#include <string.h>

#define CHAIN_MAX 16

static bool is_link(const ONode *n) {
  return (og_is(n, ONNX_Transpose) || og_is(n, ONNX_Reshape) || og_is(n, ONNX_Unsqueeze) ||
          og_is(n, ONNX_Squeeze)) &&
         n->n_outputs == 1 && n->inputs[0];
}

/* dims[i] is followed: a known size, or a named one. */
static bool followable(ODim d) { return d.value >= 0 || d.param; }

/* Follows x's axes of size > 1 through chain[0..n): true when they come out
 * in their original order. */
static bool keeps_order(ONode *const *chain, int n) {
  const OValue *x = chain[0]->inputs[0];
  int rank = x->type.rank;
  if (rank < 0 || rank > MAX_RANK) return false;
  int ids[MAX_RANK];
  for (int i = 0; i < rank; i++) {
    if (!followable(x->type.dims[i])) return false;
    ids[i] = x->type.dims[i].value == 1 ? -1 : i;
  }
  for (int k = 0; k < n; k++) {
    const OValue *in = chain[k]->inputs[0], *out = chain[k]->outputs[0];
    int ro = out->type.rank;
    if (ro < 0 || ro > MAX_RANK) return false;
    int next[MAX_RANK];
    if (og_is(chain[k], ONNX_Transpose)) {
      const OAttr *perm = og_get_attr(chain[k], "perm");
      if (!perm || perm->n != in->type.rank || ro != perm->n) return false;
      for (int i = 0; i < ro; i++) next[i] = ids[perm->ints[i]];
    } else {
      /* the sizes > 1 of in and out, pairwise equal and in order */
      int j = 0;
      for (int i = 0; i < ro; i++) {
        ODim d = out->type.dims[i];
        if (!followable(d)) return false;
        if (d.value == 1) {
          next[i] = -1;
          continue;
        }
        while (j < in->type.rank && in->type.dims[j].value == 1) j++;
        if (j == in->type.rank || !og_same_dim(in->type.dims[j], d)) return false;
        next[i] = ids[j++];
      }
      while (j < in->type.rank && in->type.dims[j].value == 1) j++;
      if (j != in->type.rank) return false;
    }
    memcpy(ids, next, sizeof(int) * (size_t)ro);
    rank = ro;
  }
  int last = -1;
  for (int i = 0; i < rank; i++) {
    if (ids[i] < 0) continue;
    if (ids[i] < last) return false;
    last = ids[i];
  }
  return true;
}

/* y's dims as a Reshape shape: the one dynamic dim as -1. */
static bool shape_of(const OValue *y, int64_t *shape) {
  int dynamic = 0;
  if (y->type.rank < 0 || y->type.rank > MAX_RANK) return false;
  for (int i = 0; i < y->type.rank; i++) {
    shape[i] = y->type.dims[i].value;
    if (shape[i] < 0) {
      shape[i] = -1;
      dynamic++;
    }
  }
  return dynamic <= 1;
}

static bool try_chain(Ctx *c, OGraph *g, ONode *end) {
  ONode *chain[CHAIN_MAX];
  int n = 0;
  /* back from end while the links are read only by the next one */
  for (ONode *k = end; n < CHAIN_MAX && is_link(k); k = k->inputs[0]->producer) {
    chain[n++] = k;
    if (!og_single_use(k->inputs[0]) || !k->inputs[0]->producer || k->inputs[0]->producer->dead)
      break;
  }
  if (n < 2) return false;
  for (int i = 0; i < n / 2; i++) { /* first link first */
    ONode *t = chain[i];
    chain[i] = chain[n - 1 - i];
    chain[n - 1 - i] = t;
  }
  /* the longest tail of the chain that keeps the order (any chain without
   * a Transpose does: it only reshapes) */
  for (int start = 0; start + 1 < n; start++) {
    bool moves = false;
    for (int k = start; k < n; k++) moves |= og_is(chain[k], ONNX_Transpose);
    if (moves && !keeps_order(chain + start, n - start)) continue;
    OValue *y = end->outputs[0];
    int64_t shape[MAX_RANK];
    if (!shape_of(y, shape)) return false;
    OValue *in[2] = {chain[start]->inputs[0], og_init_i64s(c, g, "shape", y->type.rank, shape)};
    fm_rewrite(c, g, end, ONNX_Reshape, in, 2);
    return true;
  }
  return false;
}

int pass_layout_chains(Ctx *c, OModel *m) {
  OGraph *g = m->graph;
  bool changed = false;
  og_recount_uses(g);
  /* from the last node: the end of a chain comes before its links */
  for (int i = g->nodes.len - 1; i >= 0; i--) {
    ONode *n = g->nodes.items[i];
    if (!n->dead && is_link(n)) changed |= try_chain(c, g, n);
  }
  if (changed) fm_sweep(g);
  return 0;
}
