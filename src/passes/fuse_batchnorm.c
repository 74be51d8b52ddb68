/* fuse_batchnorm.c - inference-mode batch normalisation.
 *
 * flax.nnx.BatchNorm in eval mode computes (y - mean) * (rsqrt(var + eps) *
 * scale) + bias with its running statistics; once folded it is
 *
 *   Add(Mul(Sub(y, mean), a), b)      (or Mul(Sub(y, mean), a) without bias)
 *
 * or, as Keras computes it, Add(Mul(y, a), b) with the mean folded into b,
 * or, as Equinox does, Add(Mul(Div(Sub(y, mean), d), a), b) with d =
 * sqrt(var + eps), read as the factor a / d: mean, a, b, d constants that
 * vary along one channel axis.  Two outcomes:
 *
 * 1. y comes from a layer with constant weights - MatMul(x, W) [+ c],
 *    Gemm(x, W, c) or Conv(x, W, c) [+ c], as after nnx.Linear or nnx.Conv
 *    (whose bias Add the lowering leaves separate) - and the channel is
 *    that layer's output axis: the affine map moves into the layer,
 *      W' = W * a   (along the output-channel axis of W)
 *      c' = (c - mean) * a + b
 *    computed here in the weight's element type, one rounding per operation
 *    as the runtime would.  Only when W is an initializer read by that layer
 *    alone and the layer's result feeds nothing but the pattern.
 * 2. Otherwise, with the channel on axis 1 (2-D [N, C] data, or NCHW data
 *    between the Transposes of a convolution), a BatchNormalization with
 *    scale a, B b, mean, var 1 and epsilon 0: (y - mean) / sqrt(1 + 0) * a
 *    + b is the same arithmetic.  Channel-last data of rank > 2 not next to
 *    a layer keeps its three elementwise ops: BatchNormalization would need
 *    a Transpose on either side.
 */
#include "passes/passes.h"

#include <math.h>
#include <string.h>

/* v rounded to et, as one operation of that type would. */
static double rnd(ElemType et, double v) {
  uint8_t b[8];
  elem_store(b, et, 0, v);
  return elem_load(b, et, 0);
}

typedef struct Affine {
  OValue *y;          /* the normalised value */
  OValue *mean, *a, *b; /* constants; b may be NULL */
  OValue *d;          /* a constant divisor (y - mean) / d, or NULL */
  int ch;             /* the channel axis of y */
  int64_t n;          /* channels */
  double *vmean, *va, *vb;
} Affine;

/* The per-channel values of the constants along axis ch; false when one of
 * them varies along another axis. */
static bool channel_values(Ctx *c, Affine *f, int ch) {
  const OValue *y = f->y;
  if (ch < 0 || ch >= y->type.rank || y->type.dims[ch].value <= 0 ||
      y->type.dims[ch].value > FM_MAX_SCAN)
    return false;
  f->ch = ch;
  f->n = y->type.dims[ch].value;
  f->vmean = arena_alloc(c->arena, sizeof(double) * (size_t)f->n);
  f->va = arena_alloc(c->arena, sizeof(double) * (size_t)f->n);
  f->vb = arena_alloc(c->arena, sizeof(double) * (size_t)f->n);
  if (f->mean && !fm_const_slice(c, f->mean, y, ch, ch + 1, f->vmean)) return false;
  if (!fm_const_slice(c, f->a, y, ch, ch + 1, f->va)) return false;
  if (f->b && !fm_const_slice(c, f->b, y, ch, ch + 1, f->vb)) return false;
  if (f->d) { /* the factor is a / d */
    double *vd = arena_alloc(c->arena, sizeof(double) * (size_t)f->n);
    if (!fm_const_slice(c, f->d, y, ch, ch + 1, vd)) return false;
    for (int64_t i = 0; i < f->n; i++) {
      if (vd[i] == 0 || !isfinite(vd[i])) return false;
      f->va[i] = rnd(y->type.et, f->va[i] / vd[i]);
    }
  }
  return true;
}

/* c' = (c - mean) * a + b per channel, in et. */
static OValue *new_bias(Ctx *c, OGraph *g, const Affine *f, const double *cv, ElemType et) {
  double *out = arena_alloc(c->arena, sizeof(double) * (size_t)f->n);
  for (int64_t i = 0; i < f->n; i++) {
    double t = rnd(et, (cv ? cv[i] : 0) - f->vmean[i]);
    t = rnd(et, t * f->va[i]);
    out[i] = rnd(et, t + (f->b ? f->vb[i] : 0));
  }
  OValue *v = fm_new_const(c, g, "bn_bias", et, 1, &f->n, out);
  fm_name_after(c, v, f->b, "with_batchnorm");
  return v;
}

/* W' = W * a along axis wa of W. */
static OValue *new_weight(Ctx *c, OGraph *g, const Affine *f, const OValue *w, int wa) {
  ElemType et = w->type.et;
  int rank = w->type.rank;
  int64_t dims[MAX_RANK], numel = 1, inner = 1;
  for (int i = 0; i < rank; i++) {
    dims[i] = w->type.dims[i].value;
    numel *= dims[i];
    if (i > wa) inner *= dims[i];
  }
  if (dims[wa] != f->n) return NULL;
  const uint8_t *src = data_bytes(c, og_const_data(w));
  size_t nbytes = (size_t)numel * et_size(et);
  uint8_t *dst = arena_alloc(c->arena, nbytes ? nbytes : 1);
  for (int64_t i = 0; i < numel; i++) {
    int64_t ch = (i / inner) % dims[wa];
    elem_store(dst, et, i, elem_load(src, et, i) * f->va[ch]);
  }
  Data nd = {DATA_RAW, dst, nbytes};
  OValue *v = og_init(c, g, "bn_weight", et, rank, dims, nd);
  fm_name_after(c, v, (OValue *)w, "with_batchnorm");
  return v;
}

static bool static_const(const OValue *w) {
  const Data *d = og_const_data(w);
  size_t es = et_size(w->type.et);
  if (!d || !es || w->type.rank < 1 || w->type.rank > MAX_RANK) return false;
  int64_t numel = 1;
  for (int i = 0; i < w->type.rank; i++) {
    int64_t dim = w->type.dims[i].value;
    if (dim < 1 || numel > INT64_MAX / dim) return false;
    numel *= dim;
  }
  return (uint64_t)numel == d->nbytes / es && d->nbytes % es == 0;
}

/* Option 1: y = layer(x, W) [+ c] with constant weights. */
static bool fold_into_layer(Ctx *c, OGraph *g, ONode *root, FmPat *p, Affine *f) {
  OValue *y = f->y, *bias = NULL, *out = y;
  int r = y->type.rank;
  ONode *layer = y->producer;
  if (!layer || layer->dead || !og_single_use(y)) return false;
  if (og_is(layer, ONNX_Add) && layer->n_inputs == 2) {
    for (int side = 0; side < 2 && !bias; side++) {
      ONode *l = layer->inputs[1 - side]->producer;
      if (og_const_data(layer->inputs[side]) && l && !l->dead &&
          (og_is(l, ONNX_MatMul) || og_is(l, ONNX_Conv))) {
        bias = layer->inputs[side];
        out = layer->inputs[1 - side];
      }
    }
    if (!bias || !og_single_use(out) || !fm_add(p, layer)) return false;
    layer = out->producer;
  }
  ElemType et = y->type.et;
  if (!fm_kernel_type(et, FM_F16 | FM_F32 | FM_F64)) return false;
  OValue *w;
  int ch, wa;
  if (og_is(layer, ONNX_MatMul)) {
    w = layer->inputs[1];
    ch = r - 1;
    wa = 1;
    if (w->type.rank != 2 || r < 1) return false;
  } else if (og_is(layer, ONNX_Gemm)) {
    const OAttr *alpha = og_get_attr(layer, "alpha"), *beta = og_get_attr(layer, "beta");
    const OAttr *tb = og_get_attr(layer, "transB");
    if ((alpha && alpha->f != 1) || (beta && beta->f != 1) || bias) return false;
    w = layer->inputs[1];
    ch = 1;
    wa = tb && tb->i ? 0 : 1;
    if (w->type.rank != 2 || r != 2) return false;
    if (layer->n_inputs > 2 && layer->inputs[2]) bias = layer->inputs[2];
  } else if (og_is(layer, ONNX_Conv)) {
    w = layer->inputs[1];
    ch = 1;
    wa = 0;
    if (layer->n_inputs > 2 && layer->inputs[2]) {
      if (bias) return false;
      bias = layer->inputs[2];
    }
  } else {
    return false;
  }
  if (!static_const(w) || w->n_uses != 1 || w->is_output || w->type.et != et ||
      wa >= w->type.rank || !fm_add(p, layer))
    return false;
  if (!fm_closed(p, root) || !channel_values(c, f, ch)) return false;
  double *cv = NULL;
  if (bias) {
    /* the bias as the layer's output sees it: varying along ch only */
    const OValue *ref = layer->outputs[0];
    cv = arena_alloc(c->arena, sizeof(double) * (size_t)f->n);
    if (bias->type.et != et) return false;
    if (og_is(layer, ONNX_Conv) && bias == layer->inputs[2]) {
      if (bias->type.rank != 1 || bias->type.dims[0].value != f->n ||
          !fm_const_slice(c, bias, bias, 0, 1, cv))
        return false;
    } else if (!fm_const_slice(c, bias, ref, ch, ch + 1, cv)) {
      return false;
    }
  }
  OValue *nw = new_weight(c, g, f, w, wa);
  if (!nw) return false;
  OValue *nb = new_bias(c, g, f, cv, et);
  if (og_is(layer, ONNX_MatMul)) {
    layer->inputs[1] = nw;
    w->n_uses--;
    nw->n_uses++;
    OValue *in[2] = {layer->outputs[0], nb};
    fm_rewrite(c, g, root, ONNX_Add, in, 2);
    return true;
  }
  /* Gemm, Conv: the root becomes the layer, with its attributes. */
  OAttr *attrs = layer->attrs;
  int n_attrs = layer->n_attrs;
  OValue *in[3] = {layer->inputs[0], nw, nb};
  fm_rewrite(c, g, root, layer->kind, in, 3);
  for (int i = 0; i < n_attrs; i++) {
    const OAttr *a = &attrs[i];
    if (a->kind == OA_INT) og_attr_int(c, root, a->name, a->i);
    else if (a->kind == OA_FLOAT) og_attr_float(c, root, a->name, a->f);
    else if (a->kind == OA_INTS) og_attr_ints(c, root, a->name, a->ints, a->n);
    else if (a->kind == OA_STRING) og_attr_string(c, root, a->name, a->s);
  }
  root->origin = layer->origin ? layer->origin : root->origin;
  return true;
}

/* k is per-channel along y's axis ch: it varies (channel_values has checked
 * that it varies along ch only), or its shape is [C] on ch and 1 elsewhere,
 * as a parameter reshaped for broadcasting.  A scalar is no channel. */
static bool per_channel(Ctx *c, const OValue *k, const OValue *y, int ch) {
  double v;
  if (!fm_splat(c, k, &v)) return true;
  int off = y->type.rank - k->type.rank;
  if (ch < off || y->type.dims[ch].value <= 1) return false;
  for (int i = 0; i < k->type.rank; i++)
    if (k->type.dims[i].value != (i + off == ch ? y->type.dims[ch].value : 1)) return false;
  return true;
}

/* Option 2: BatchNormalization over axis 1.  Not for scalar constants:
 * (x - 0.5) * 2 is no batch normalisation, whatever its arithmetic. */
static bool emit_batchnorm(Ctx *c, OGraph *g, ONode *root, FmPat *p, Affine *f) {
  OValue *y = f->y;
  ElemType et = y->type.et;
  if (y->type.rank < 2 || !fm_kernel_type(et, FM_F16 | FM_F32 | FM_F64)) return false;
  if (!fm_closed(p, root) || !channel_values(c, f, 1)) return false;
  if (!f->mean && !f->b) return false; /* y * a stays a Mul */
  if (!(f->mean && per_channel(c, f->mean, y, 1)) && !per_channel(c, f->a, y, 1) &&
      !(f->b && per_channel(c, f->b, y, 1)) && !(f->d && per_channel(c, f->d, y, 1)))
    return false;
  double *ones = arena_alloc(c->arena, sizeof(double) * (size_t)f->n);
  double *zeros = arena_alloc(c->arena, sizeof(double) * (size_t)f->n);
  for (int64_t i = 0; i < f->n; i++) ones[i] = 1;
  OValue *in[5] = {
      y,
      fm_new_const(c, g, "bn_scale", et, 1, &f->n, f->va),
      fm_new_const(c, g, "bn_bias", et, 1, &f->n, f->b ? f->vb : zeros),
      fm_new_const(c, g, "bn_mean", et, 1, &f->n, f->vmean),
      fm_new_const(c, g, "bn_var", et, 1, &f->n, ones),
  };
  fm_name_after(c, in[1], f->a, "per_channel");
  fm_name_after(c, in[2], f->b, "per_channel");
  fm_name_after(c, in[3], f->mean, "per_channel");
  fm_rewrite(c, g, root, ONNX_BatchNormalization, in, 5);
  og_attr_float(c, root, "epsilon", 0.0f);
  return true;
}

/* n = op(w, k) or op(k, w) with k a constant fitting w. */
static bool const_operand(const ONode *n, OValue **w, OValue **k, bool commutes) {
  for (int side = 0; side < (commutes ? 2 : 1); side++) {
    OValue *kv = n->inputs[1 - side], *wv = n->inputs[side];
    if (og_const_data(kv) && !og_const_data(wv) && fm_fits(kv, wv)) {
      *w = wv;
      *k = kv;
      return true;
    }
  }
  return false;
}

static bool try_batchnorm(Ctx *c, OModel *m, OGraph *g, ONode *root) {
  (void)m;
  if (root->n_inputs != 2 || root->n_outputs != 1) return false;
  FmPat p = {.n = 0};
  Affine f = {0};
  OValue *mv = root->outputs[0];
  fm_add(&p, root);
  if (og_is(root, ONNX_Add)) {
    if (!const_operand(root, &mv, &f.b, true) || !og_single_use(mv)) return false;
  }
  ONode *mul = fm_take(&p, mv, ONNX_Mul);
  OValue *dv;
  if (!mul || mul->n_inputs != 2 || !const_operand(mul, &dv, &f.a, true) || !og_single_use(dv))
    return false;
  ONode *div = fm_def(dv, ONNX_Div);
  OValue *nv;
  if (div && div->n_inputs == 2 && const_operand(div, &nv, &f.d, false) && og_single_use(nv)) {
    fm_add(&p, div);
    dv = nv;
  }
  ONode *sub = fm_def(dv, ONNX_Sub);
  if (sub && sub->n_inputs == 2 && const_operand(sub, &f.y, &f.mean, false)) {
    fm_add(&p, sub);
  } else {
    /* y * a + b: the mean already folded into b, as Keras computes it */
    f.y = dv;
    f.mean = NULL;
  }
  if (!fm_same_shape(root->outputs[0], f.y)) return false;
  ElemType et = f.y->type.et;
  if (f.a->type.et != et || (f.mean && f.mean->type.et != et) || (f.b && f.b->type.et != et) ||
      (f.d && f.d->type.et != et))
    return false;
  FmPat q = p;
  if (fold_into_layer(c, g, root, &q, &f)) return true;
  return emit_batchnorm(c, g, root, &p, &f);
}

int pass_fuse_batchnorm(Ctx *c, OModel *m) {
  fm_each_node(c, m, try_batchnorm);
  return 0;
}
