/* conv_matmul.c - a float64 Conv as Slices and one MatMul, for kernels.c:
 * onnxruntime's CPU provider has no float64 Conv, and computing it in f32
 * would lose the precision the type promises, while MatMul has an f64
 * kernel.  The convolution is an im2col:
 *
 *   x [N, C, D...] padded, then for each of the K kernel positions one
 *   strided Slice [N, C, out...] (the inputs that position meets), stacked
 *   into [N, C, K, out...] and seen as [N, G, C/G * K, P] (P = prod(out));
 *   the weights [O, C/G, k...] seen as [G, O/G, C/G * K];
 *   MatMul -> [N, G, O/G, P] = [N, O, out...]; the bias added after.
 *
 * Each output element is then the f64 sum of the same products as the
 * Conv's, in another order: as exact as the f64 Conv of any runtime.
 * Taken when the shapes are static but for N, the kernel has at most
 * CONV_MATMUL_MAX_TAPS positions and no auto_pad; otherwise the Conv stays
 * (a valid model that onnxruntime cannot run, docs/robustness.md says so).
 *
 * A float64 ConvTranspose is first written as the Conv it equals: the
 * input dilated by the strides (each element followed by stride - 1 zeros:
 * Unsqueeze, Pad, Reshape), padded by (k - 1) * dilation - pad at each end
 * (negative amounts crop; output_padding adds at the end), and convolved
 * with stride 1 by the kernel flipped in every spatial axis, its input and
 * output channels swapped within each group.
 */
#include "passes/passes.h"

#include <string.h>

/* Kernel positions unrolled into Slices: as lower/conv.c's windows. */
#define CONV_MATMUL_MAX_TAPS 256

static OValue *typed(Ctx *c, OValue *v, ElemType et, int rank, const int64_t *dims) {
  og_set_type(c, v, et, rank, dims);
  return v;
}

static OValue *i64s(Ctx *c, OGraph *g, int n, const int64_t *vals) {
  return og_init_i64s(c, g, "conv_im2col", n, vals);
}

/* An attribute's ints, or `n` copies of `fallback` when absent; false when
 * it has another length. */
static bool ints_attr(const ONode *n, const char *name, int count, int64_t fallback, int64_t *out) {
  const OAttr *a = og_get_attr(n, name);
  if (!a) {
    for (int i = 0; i < count; i++) out[i] = fallback;
    return true;
  }
  if (a->kind != OA_INTS || a->n != count) return false;
  memcpy(out, a->ints, sizeof(int64_t) * (size_t)count);
  return true;
}

/* What a Conv and a ConvTranspose both need before they can be unrolled:
 * the operands, their static dims (x's batch may be dynamic, its other dims
 * at least min_x_dim), no auto_pad, and the spatial attributes. */
typedef struct ConvParts {
  OValue *x, *w, *bias, *out;
  int r, ns; /* rank, spatial axes */
  int64_t xd[MAX_RANK], wd[MAX_RANK];
  int64_t strides[MAX_RANK], dil[MAX_RANK], pads[2 * MAX_RANK], kshape[MAX_RANK], group;
} ConvParts;

static bool conv_parts(const ONode *n, int64_t min_x_dim, ConvParts *p) {
  memset(p, 0, sizeof *p);
  p->x = n->inputs[0];
  p->w = n->n_inputs > 1 ? n->inputs[1] : NULL;
  p->bias = n->n_inputs > 2 ? n->inputs[2] : NULL;
  p->out = n->outputs[0];
  const OValue *x = p->x, *w = p->w;
  if (!x || !w || x->type.rank < 3 || x->type.rank > MAX_RANK || w->type.rank != x->type.rank)
    return false;
  const OAttr *auto_pad = og_get_attr(n, "auto_pad");
  if (auto_pad && !(auto_pad->s && strcmp(auto_pad->s, "NOTSET") == 0)) return false;
  p->r = x->type.rank;
  p->ns = p->r - 2;
  for (int i = 0; i < p->r; i++) {
    p->xd[i] = x->type.dims[i].value;
    p->wd[i] = w->type.dims[i].value;
    if ((i > 0 && p->xd[i] < min_x_dim) || p->wd[i] < 1) return false;
  }
  const OAttr *ga = og_get_attr(n, "group");
  p->group = ga ? ga->i : 1;
  int ns = p->ns;
  return ints_attr(n, "strides", ns, 1, p->strides) && ints_attr(n, "dilations", ns, 1, p->dil) &&
         ints_attr(n, "pads", 2 * ns, 0, p->pads) &&
         ints_attr(n, "kernel_shape", ns, 0, p->kshape);
}

/* The value v (static dims) seen with other dims: a new initializer on the
 * same bytes when v is a constant, else a Reshape. */
static OValue *reshaped(Ctx *c, OGraph *g, OValue *v, int rank, const int64_t *dims) {
  const Data *d = og_const_data(v);
  if (d && !v->is_param) return og_init(c, g, "conv_weights", v->type.et, rank, dims, *d);
  OValue *in[2] = {v, i64s(c, g, rank, dims)};
  return typed(c, og_node(c, g, "Reshape", in, 2, 1)->outputs[0], v->type.et, rank, dims);
}

bool conv_as_matmul(Ctx *c, OGraph *g, ONode *conv) {
  ConvParts cp;
  if (!conv_parts(conv, 0, &cp)) return false;
  OValue *x = cp.x, *w = cp.w, *bias = cp.bias, *out = cp.out;
  int r = cp.r, ns = cp.ns;
  ElemType et = x->type.et;
  const int64_t *xd = cp.xd, *wd = cp.wd, *strides = cp.strides, *dil = cp.dil, *pads = cp.pads,
                *kshape = cp.kshape;
  int64_t group = cp.group;
  int64_t C = xd[1], O = wd[0], Cg = wd[1];
  if (group < 1 || C != Cg * group || O % group) return false;
  int64_t taps = 1, P = 1, outd[MAX_RANK], padded[MAX_RANK];
  for (int i = 0; i < ns; i++) {
    int64_t k = wd[2 + i];
    if ((kshape[i] && kshape[i] != k) || strides[i] < 1 || dil[i] < 1 || pads[i] < 0 ||
        pads[ns + i] < 0)
      return false;
    taps *= k;
    if (taps > CONV_MATMUL_MAX_TAPS) return false;
    padded[i] = xd[2 + i] + pads[i] + pads[ns + i];
    int64_t span = (k - 1) * dil[i] + 1;
    if (padded[i] < span) return false;
    outd[i] = (padded[i] - span) / strides[i] + 1;
    P *= outd[i];
  }

  /* the nodes below take the Conv's origin and scope */
  OGraph *root = g;
  while (root->parent) root = root->parent;
  const ONode *saved_rewriting = root->rewriting;
  root->rewriting = conv;

  int64_t dims[MAX_RANK + 1];
  dims[0] = xd[0];
  dims[1] = C;
  OValue *xp = x;
  bool any_pad = false;
  for (int i = 0; i < 2 * ns; i++) any_pad |= pads[i] != 0;
  if (any_pad) {
    int64_t pv[2 * MAX_RANK] = {0};
    for (int i = 0; i < ns; i++) {
      pv[2 + i] = pads[i];
      pv[r + 2 + i] = pads[ns + i];
      dims[2 + i] = padded[i];
    }
    OValue *in[2] = {x, i64s(c, g, 2 * r, pv)};
    xp = typed(c, og_node(c, g, "Pad", in, 2, 1)->outputs[0], et, r, dims);
  }

  /* one strided Slice per kernel position, the last axis fastest (the
   * weights' order), each with a unit axis 2 to stack them on */
  OValue **cols = arena_alloc(c->arena, sizeof(OValue *) * (size_t)taps);
  int64_t off[MAX_RANK] = {0}, axes[MAX_RANK], starts[MAX_RANK], ends[MAX_RANK], two = 2;
  for (int i = 0; i < ns; i++) axes[i] = 2 + i;
  int64_t col_dims[MAX_RANK + 1] = {xd[0], C, 1};
  for (int i = 0; i < ns; i++) col_dims[3 + i] = outd[i];
  for (int64_t t = 0; t < taps; t++) {
    for (int i = 0; i < ns; i++) {
      starts[i] = off[i] * dil[i];
      ends[i] = starts[i] + (outd[i] - 1) * strides[i] + 1;
      dims[2 + i] = outd[i];
    }
    OValue *in[5] = {xp, i64s(c, g, ns, starts), i64s(c, g, ns, ends), i64s(c, g, ns, axes),
                     i64s(c, g, ns, strides)};
    OValue *s = typed(c, og_node(c, g, "Slice", in, 5, 1)->outputs[0], et, r, dims);
    OValue *uin[2] = {s, i64s(c, g, 1, &two)};
    cols[t] = typed(c, og_node(c, g, "Unsqueeze", uin, 2, 1)->outputs[0], et, r + 1, col_dims);
    for (int i = ns - 1; i >= 0; i--) { /* next position */
      if (++off[i] < wd[2 + i]) break;
      off[i] = 0;
    }
  }
  OValue *stacked = cols[0];
  if (taps > 1) {
    ONode *cat = og_node(c, g, "Concat", cols, (int)taps, 1);
    og_attr_int(c, cat, "axis", 2);
    col_dims[2] = taps;
    stacked = typed(c, cat->outputs[0], et, r + 1, col_dims);
  }
  int64_t Og = O / group;
  int64_t xm[4] = {0, group, Cg * taps, P}, xm_dims[4] = {xd[0], group, Cg * taps, P};
  OValue *rin[2] = {stacked, i64s(c, g, 4, xm)};
  OValue *x4 = typed(c, og_node(c, g, "Reshape", rin, 2, 1)->outputs[0], et, 4, xm_dims);
  int64_t wm[3] = {group, Og, Cg * taps};
  OValue *min[2] = {reshaped(c, g, w, 3, wm), x4};
  int64_t prod_dims[4] = {xd[0], group, Og, P};
  OValue *prod = typed(c, og_node(c, g, "MatMul", min, 2, 1)->outputs[0], et, 4, prod_dims);
  int64_t yshape[MAX_RANK], yd[MAX_RANK];
  yshape[0] = 0;
  yd[0] = xd[0];
  yshape[1] = yd[1] = O;
  for (int i = 0; i < ns; i++) yshape[2 + i] = yd[2 + i] = outd[i];
  OValue *yin[2] = {prod, i64s(c, g, r, yshape)};
  ONode *last = og_node(c, g, "Reshape", yin, 2, 1);
  if (bias) {
    OValue *y = typed(c, last->outputs[0], et, r, yd);
    int64_t bd[MAX_RANK];
    bd[0] = O;
    for (int i = 1; i < r - 1; i++) bd[i] = 1;
    OValue *ain[2] = {y, reshaped(c, g, bias, r - 1, bd)};
    last = og_node(c, g, "Add", ain, 2, 1);
  }
  /* the last node produces the Conv's output itself: its name and readers
   * stay; the dead Conv keeps the fresh value og_node made instead, which
   * nothing reads (so no sort places a reader after the dead Conv) */
  OValue *fresh = last->outputs[0];
  last->outputs[0] = out;
  out->producer = last;
  conv->outputs[0] = fresh;
  fresh->producer = conv;
  conv->dead = true;
  for (int i = 0; i < conv->n_inputs; i++)
    if (conv->inputs[i]) conv->inputs[i]->n_uses--;
  root->rewriting = saved_rewriting;
  return true;
}

/* ---- ConvTranspose ------------------------------------------------------ */

static OValue *node_out(Ctx *c, OGraph *g, const char *op, OValue **in, int n, ElemType et,
                        int rank, const int64_t *dims) {
  return typed(c, og_node(c, g, op, in, n, 1)->outputs[0], et, rank, dims);
}

bool conv_transpose_as_matmul(Ctx *c, OGraph *g, ONode *ct) {
  ConvParts cp;
  int64_t outpad[MAX_RANK];
  if (og_get_attr(ct, "output_shape") || !conv_parts(ct, 1, &cp) ||
      !ints_attr(ct, "output_padding", cp.ns, 0, outpad))
    return false;
  OValue *x = cp.x, *w = cp.w, *bias = cp.bias, *out = cp.out;
  int r = cp.r, ns = cp.ns;
  ElemType et = x->type.et;
  const int64_t *xd = cp.xd, *wd = cp.wd, *strides = cp.strides, *dil = cp.dil, *pads = cp.pads,
                *kshape = cp.kshape;
  int64_t group = cp.group;
  int64_t Cin = xd[1], Cout_g = wd[1];
  if (group < 1 || wd[0] != Cin || Cin % group) return false;
  int64_t taps = 1, lo[MAX_RANK], hi[MAX_RANK], dilated[MAX_RANK];
  for (int i = 0; i < ns; i++) {
    int64_t k = wd[2 + i], span = (k - 1) * dil[i];
    if ((kshape[i] && kshape[i] != k) || strides[i] < 1 || dil[i] < 1 || outpad[i] < 0)
      return false;
    taps *= k;
    if (taps > CONV_MATMUL_MAX_TAPS) return false;
    dilated[i] = xd[2 + i] * strides[i]; /* stride - 1 zeros after the last one too */
    lo[i] = span - pads[i];
    hi[i] = span - pads[ns + i] + outpad[i] - (strides[i] - 1);
    if (dilated[i] + lo[i] + hi[i] < span + 1) return false; /* no output */
  }

  OGraph *root = g;
  while (root->parent) root = root->parent;
  const ONode *saved_rewriting = root->rewriting;
  root->rewriting = ct;

  /* the input dilated by the strides, then padded (or cropped) */
  int64_t d[MAX_RANK + 1];
  memcpy(d, xd, sizeof(int64_t) * (size_t)r);
  OValue *v = x;
  for (int i = 0; i < ns; i++) {
    if (strides[i] == 1) continue;
    int64_t axis = 3 + i, ud[MAX_RANK + 1], pv[2 * (MAX_RANK + 1)] = {0}, shape[MAX_RANK];
    OValue *uin[2] = {v, i64s(c, g, 1, &axis)};
    for (int j = 0, k = 0; j <= r; j++) ud[j] = j == axis ? 1 : d[k++];
    v = node_out(c, g, "Unsqueeze", uin, 2, et, r + 1, ud);
    pv[(r + 1) + axis] = strides[i] - 1;
    ud[axis] = strides[i];
    OValue *pin[2] = {v, i64s(c, g, 2 * (r + 1), pv)};
    v = node_out(c, g, "Pad", pin, 2, et, r + 1, ud);
    d[2 + i] = dilated[i];
    for (int j = 0; j < r; j++) shape[j] = j == 0 ? 0 : d[j];
    OValue *rin[2] = {v, i64s(c, g, r, shape)};
    v = node_out(c, g, "Reshape", rin, 2, et, r, d);
  }
  int64_t pv[2 * MAX_RANK] = {0};
  bool any_pad = false;
  for (int i = 0; i < ns; i++) {
    pv[2 + i] = lo[i];
    pv[r + 2 + i] = hi[i];
    any_pad |= lo[i] != 0 || hi[i] != 0;
    d[2 + i] += lo[i] + hi[i];
  }
  if (any_pad) {
    OValue *pin[2] = {v, i64s(c, g, 2 * r, pv)};
    v = node_out(c, g, "Pad", pin, 2, et, r, d);
  }

  /* the kernel [Cin, Cout/G, k...] -> [Cout, Cin/G, k...], flipped */
  int64_t Cin_g = Cin / group, w5[MAX_RANK + 1], w5t[MAX_RANK + 1], perm[MAX_RANK + 1],
          wk[MAX_RANK];
  w5[0] = group;
  w5[1] = Cin_g;
  w5[2] = Cout_g;
  for (int i = 0; i < ns; i++) w5[3 + i] = wd[2 + i];
  for (int j = 0; j <= r; j++) perm[j] = j;
  perm[1] = 2;
  perm[2] = 1;
  for (int j = 0; j <= r; j++) w5t[j] = w5[perm[j]];
  OValue *win[2] = {w, i64s(c, g, r + 1, w5)};
  OValue *wv = node_out(c, g, "Reshape", win, 2, et, r + 1, w5);
  ONode *tr = og_node(c, g, "Transpose", &wv, 1, 1);
  og_attr_ints(c, tr, "perm", perm, r + 1);
  wv = typed(c, tr->outputs[0], et, r + 1, w5t);
  wk[0] = group * Cout_g;
  wk[1] = Cin_g;
  for (int i = 0; i < ns; i++) wk[2 + i] = wd[2 + i];
  OValue *kin[2] = {wv, i64s(c, g, r, wk)};
  wv = node_out(c, g, "Reshape", kin, 2, et, r, wk);
  int64_t starts[MAX_RANK], ends[MAX_RANK], axes[MAX_RANK], steps[MAX_RANK];
  for (int i = 0; i < ns; i++) {
    starts[i] = -1;
    ends[i] = INT64_MIN;
    axes[i] = 2 + i;
    steps[i] = -1;
  }
  OValue *sin[5] = {wv, i64s(c, g, ns, starts), i64s(c, g, ns, ends), i64s(c, g, ns, axes),
                    i64s(c, g, ns, steps)};
  wv = node_out(c, g, "Slice", sin, 5, et, r, wk);

  /* the Conv, which takes the ConvTranspose's output, then its im2col */
  OValue *cin[3] = {v, wv, bias};
  ONode *conv = og_node(c, g, "Conv", cin, bias ? 3 : 2, 1);
  og_attr_ints(c, conv, "dilations", dil, ns);
  og_attr_int(c, conv, "group", group);
  OValue *fresh = conv->outputs[0];
  conv->outputs[0] = out;
  out->producer = conv;
  ct->outputs[0] = fresh;
  fresh->producer = ct;
  ct->dead = true;
  for (int i = 0; i < ct->n_inputs; i++)
    if (ct->inputs[i]) ct->inputs[i]->n_uses--;
  root->rewriting = saved_rewriting;
  /* its shapes and attributes were checked above; were it refused, the
   * f64 Conv would stay, as valid a model as the ConvTranspose */
  (void)conv_as_matmul(c, g, conv);
  return true;
}
