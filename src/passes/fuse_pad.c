/* fuse_pad.c - Conv(Pad(x)) -> Conv(x) with the padding in its pads.
 *
 * Keras writes ZeroPadding2D before a convolution or a max-pool that then
 * pads nothing itself (ResNet's stem and its strided blocks); the Pad costs
 * a copy of the activations that Conv does for free with its own pads.
 *
 *   - Conv: a Pad with zeros of the spatial axes only (none of N and C,
 *     none negative, mode "constant") adds to the Conv's pads (auto_pad
 *     NOTSET).
 *   - MaxPool pads with -inf, not 0: the same only where no input is
 *     negative (a Relu before it) and every window keeps one element of x
 *     (each pad smaller than the kernel), so a padded zero never wins over
 *     nothing but padding.
 */
#include "passes/passes.h"

#include <string.h>

/* The Pad before n's input as spatial pads [begin..., end...] of a rank-R
 * NCHW tensor, when it pads with zeros only there; NULL otherwise.  A
 * Transpose may sit between them (Keras pads the NHWC image before the
 * layout change of the first Conv): *t is then that Transpose, and the
 * pads are read through its permutation. */
static ONode *zero_spatial_pad(Ctx *c, const ONode *n, int64_t *pads, ONode **t) {
  OValue *y = n->inputs[0];
  int rank = y->type.rank;
  int64_t perm[MAX_RANK];
  for (int i = 0; i < MAX_RANK; i++) perm[i] = i;
  *t = fm_def(y, ONNX_Transpose);
  if (*t) {
    const OAttr *p = og_get_attr(*t, "perm");
    if (y->n_uses != 1 || y->is_output || !p || p->n != rank || rank > MAX_RANK) return NULL;
    memcpy(perm, p->ints, sizeof(int64_t) * (size_t)rank);
    y = (*t)->inputs[0];
  }
  ONode *pad = fm_def(y, ONNX_Pad);
  if (!pad || y->n_uses != 1 || y->is_output || rank < 3 || rank > MAX_RANK || pad->n_inputs < 2 ||
      (pad->n_inputs > 3 && pad->inputs[3]))
    return NULL;
  const OAttr *mode = og_get_attr(pad, "mode");
  if (mode && !(mode->s_len == 8 && memcmp(mode->s, "constant", 8) == 0)) return NULL;
  double value = 0;
  if (pad->n_inputs > 2 && pad->inputs[2] && (!fm_splat(c, pad->inputs[2], &value) || value != 0))
    return NULL;
  int64_t all[2 * MAX_RANK];
  if (og_const_i64s(c, pad->inputs[1], all, 2 * MAX_RANK) != 2 * rank) return NULL;
  int s = rank - 2;
  for (int i = 0; i < rank; i++) { /* axis i of n's input is axis perm[i] of the Pad's */
    int64_t b = all[perm[i]], e = all[rank + perm[i]];
    if (b < 0 || e < 0 || (i < 2 && (b || e))) return NULL;
    if (i >= 2) pads[i - 2] = b, pads[s + i - 2] = e;
  }
  return pad;
}

static bool non_negative(const OValue *x) {
  const ONode *p = x->producer;
  return og_is(p, ONNX_Relu);
}

static bool try_pad_into(Ctx *c, OModel *m, OGraph *g, ONode *n) {
  (void)m;
  bool conv = og_is(n, ONNX_Conv), pool = og_is(n, ONNX_MaxPool);
  if ((!conv && !pool) || n->n_inputs < 1 || n->n_outputs < 1) return false;
  if (pool && n->n_outputs > 1) return false; /* the indices would index the padded input */
  const OAttr *ceil_mode = og_get_attr(n, "ceil_mode");
  if (ceil_mode && ceil_mode->i) return false; /* a last window may start in the padding */
  const OAttr *auto_pad = og_get_attr(n, "auto_pad");
  if (auto_pad && !(auto_pad->s_len == 6 && memcmp(auto_pad->s, "NOTSET", 6) == 0)) return false;
  int64_t add[2 * MAX_RANK];
  ONode *t;
  ONode *pad = zero_spatial_pad(c, n, add, &t);
  if (!pad) return false;
  int s = n->inputs[0]->type.rank - 2;
  const OAttr *ks = og_get_attr(n, "kernel_shape"), *old = og_get_attr(n, "pads");
  if (old && old->n != 2 * s) return false;
  int64_t pads[2 * MAX_RANK];
  for (int i = 0; i < 2 * s; i++) pads[i] = add[i] + (old ? old->ints[i] : 0);
  if (pool) {
    if (!ks || ks->n != s || t || !non_negative(pad->inputs[0])) return false;
    for (int i = 0; i < 2 * s; i++)
      if (pads[i] >= ks->ints[i % s]) return false;
  }
  if (t) {
    /* the Transpose reads the unpadded tensor: its spatial dims shrink */
    OValue *tv = t->outputs[0];
    const OAttr *perm = og_get_attr(t, "perm");
    ODim *dims = arena_alloc(c->arena, sizeof(ODim) * (size_t)tv->type.rank);
    for (int i = 0; i < tv->type.rank; i++) dims[i] = pad->inputs[0]->type.dims[perm->ints[i]];
    tv->type.dims = dims;
    og_set_input(t, 0, pad->inputs[0]);
  } else {
    og_set_input(n, 0, pad->inputs[0]);
  }
  og_attr_ints(c, n, "pads", pads, 2 * s);
  return true;
}

int pass_fuse_pad(Ctx *c, OModel *m) {
  fm_each_node(c, m, try_pad_into);
  return 0;
}
