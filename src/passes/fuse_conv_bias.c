/* fuse_conv_bias.c - Add(Conv(x, W[, B]), c) -> Conv(x, W, B + c).
 *
 * flax's Conv adds its bias after lax.conv_general_dilated, so the lowering
 * emits Conv and a separate Add (behind the NHWC Transposes, which the
 * transpose pass moves past it).  When c is a constant that varies only
 * along the channel axis (1) and the Conv's result feeds nothing but the
 * Add, the bias moves into the Conv's B input; an existing constant B is
 * added to, in its element type.  ConvTranspose alike.
 */
#include "passes/passes.h"

#include <string.h>

static bool try_conv_bias(Ctx *c, OModel *m, OGraph *g, ONode *add) {
  (void)m;
  if (!og_is(add, ONNX_Add) || add->n_inputs != 2) return false;
  for (int side = 0; side < 2; side++) {
    OValue *k = add->inputs[side], *y = add->inputs[1 - side];
    ONode *conv = y->producer;
    if (!og_const_data(k) || !conv || conv->dead || y->n_uses != 1 || y->is_output) continue;
    if (!og_is(conv, ONNX_Conv) && !og_is(conv, ONNX_ConvTranspose)) continue;
    ElemType et = y->type.et;
    int64_t n = y->type.rank >= 3 ? y->type.dims[1].value : -1;
    if (n < 1 || n > FM_MAX_SCAN || k->type.et != et) continue;
    if (!fm_kernel_type(et, FM_F16 | FM_F32 | FM_F64) || !fm_same_shape(add->outputs[0], y))
      continue;
    double *vals = arena_alloc(c->arena, sizeof(double) * (size_t)n);
    double *old = arena_alloc(c->arena, sizeof(double) * (size_t)n);
    if (!fm_const_slice(c, k, y, 1, 2, vals)) continue;
    OValue *b = conv->n_inputs > 2 ? conv->inputs[2] : NULL;
    if (b) {
      /* B is [n]: read it as a tensor of its own shape */
      if (b->type.et != et || b->type.rank != 1 || b->type.dims[0].value != n ||
          !fm_const_slice(c, b, b, 0, 1, old))
        continue;
      for (int64_t i = 0; i < n; i++) {
        uint8_t tmp[8];
        elem_store(tmp, et, 0, old[i] + vals[i]); /* one rounding, as the runtime's add */
        vals[i] = elem_load(tmp, et, 0);
      }
    }
    OValue *nb = fm_new_const(c, g, "conv_bias", et, 1, &n, vals);
    fm_name_after(c, nb, b && b->is_param ? b : k, "conv_bias");
    OAttr *attrs = conv->attrs;
    int n_attrs = conv->n_attrs;
    OValue *in[3] = {conv->inputs[0], conv->inputs[1], nb};
    fm_rewrite(c, g, add, conv->kind, in, 3);
    for (int i = 0; i < n_attrs; i++) {
      const OAttr *a = &attrs[i];
      if (a->kind == OA_INT) og_attr_int(c, add, a->name, a->i);
      else if (a->kind == OA_INTS) og_attr_ints(c, add, a->name, a->ints, a->n);
      else if (a->kind == OA_STRING) og_attr_string(c, add, a->name, a->s);
      else if (a->kind == OA_FLOAT) og_attr_float(c, add, a->name, a->f);
    }
    add->origin = conv->origin ? conv->origin : add->origin;
    return true;
  }
  return false;
}

int pass_fuse_conv_bias(Ctx *c, OModel *m) {
  fm_each_node(c, m, try_conv_bias);
  return 0;
}
