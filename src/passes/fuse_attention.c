/* fuse_attention.c - scaled dot-product attention in the forms onnxruntime
 * runs fastest (bench/attention_micro.py measures them on onnxruntime's CPU
 * provider at 4 heads of 64, 64-256 tokens, batch 1 and 8).
 *
 * pass_attention_masks (every opset).  Keras, Flax and Equinox apply a
 * boolean mask m (padding, causal or both, built once per model) as
 *
 *   p = Softmax(Where(m, s, c))        c a large negative constant
 *   p = Where(m, p, 0)                 (Keras: zero the masked probabilities)
 *
 * onnxruntime's Where broadcasts the [B,1,1,S] or [B,1,S,S] mask over the
 * [B,H,S,S] scores slowly; Add and Mul do it faster.  So the mask becomes
 * additive, A = Where(m, 0, c), and the zeroing a product with F = Cast(m),
 * both computed once per mask (constants when m is: fold computes them):
 *
 *   p = Softmax(Add(s, A));  p = Mul(p, F)
 *
 * Exact for c <= -1e9 as long as |s| is far below |c|: a masked position
 * gives exp(c - max) = 0 and exp(s + c - max) = 0 alike when the row has an
 * unmasked position.  A row masked everywhere differs (uniform against
 * softmax(s + c)), which is why the rewrite needs the zeroing Where after
 * the Softmax (it zeroes that row both ways), a constant mask with an
 * unmasked position in every row, or a fill so large that s + c rounds to
 * c (c <= -1e30, as jax.nn.dot_product_attention's -0.7 * FLT_MAX, Haiku's
 * -1e30 and transformers' FLT_MIN: the float spacing there is 7.6e22, far
 * beyond any score): then a fully masked row is uniform both ways.  With
 * c = -inf the zeroing stays a Where (a fully masked row is NaN before it,
 * and NaN * 0 is NaN).
 *
 * pass_fuse_attention (opset >= 23):
 *
 *   MatMul(Softmax(Add?(Mul?(MatMul(Q, Kt), scale), A)) [* F], V)
 *     -> Attention(Q, Transpose(Kt), V, A', scale=scale) [* R]
 *
 * with Q [B,H,Sq,D], Kt [B,Hk,D,Sk] (Hk = H or 1), V [B,Hk,Sk,Dv], f32.
 * onnxruntime's kernel wants the mask's query axis in full, so A' is A
 * expanded along it (once per mask).  When the probabilities were zeroed by
 * F, the fully masked rows must still give 0: R = ReduceMax(F) over the key
 * axis is 1 for a row with an unmasked key and 0 otherwise.
 */
#include "passes/passes.h"

#include <float.h>
#include <math.h>
#include <string.h>

/* The most negative fill that still counts as "masked out": far beyond any
 * score, so exp(score + fill - max) underflows to 0. */
#define MASK_FILL_MAX (-1e9)
/* A fill at or below this absorbs every score: s + fill == fill in f32 and
 * f64 for |s| below half the float spacing at the fill (3.8e22 in f32), so
 * Add(s, fill) is Where's fill itself, fully masked rows included.  (No f16
 * value is finite and this low.) */
#define MASK_FILL_ABSORBING (-1e30)

/* Masks computed once per graph: the additive, float and row-valid forms of
 * a boolean mask, and the additive masks expanded for Attention. */
typedef enum { MASK_ADDITIVE, MASK_FLOAT, MASK_ROWS, MASK_EXPANDED, MASK_REFILLED } MaskKind;
typedef struct MaskEntry {
  MaskKind kind;
  const OValue *from;
  double fill;
  ElemType et;
  OValue *value;
} MaskEntry;
typedef struct Masks {
  MaskEntry e[64];
  int n;
} Masks;

static OValue *mask_find(Masks *ms, MaskKind kind, const OValue *from, double fill, ElemType et) {
  for (int i = 0; i < ms->n; i++) {
    MaskEntry *e = &ms->e[i];
    if (e->kind == kind && e->from == from && e->et == et &&
        (e->fill == fill || (isinf(e->fill) && isinf(fill))))
      return e->value;
  }
  return NULL;
}

static void mask_keep(Masks *ms, MaskKind kind, const OValue *from, double fill, ElemType et,
                      OValue *value) {
  if (ms->n < (int)(sizeof ms->e / sizeof ms->e[0]))
    ms->e[ms->n++] = (MaskEntry){kind, from, fill, et, value};
}

/* m broadcasts into x without widening it (each dim 1 or x's), symbolic
 * dims included. */
static bool broadcasts_into(const OValue *m, const OValue *x) {
  int rm = m->type.rank, rx = x->type.rank;
  if (rm < 0 || rx < 0 || rm > rx) return false;
  for (int i = 0; i < rm; i++) {
    ODim d = m->type.dims[i], xd = x->type.dims[rx - rm + i];
    if (d.value != 1 && !og_same_dim(d, xd)) return false;
  }
  return true;
}

static bool same_shape(const OValue *a, const OValue *b) {
  if (a->type.rank < 0 || a->type.rank != b->type.rank) return false;
  for (int i = 0; i < a->type.rank; i++)
    if (!og_same_dim(a->type.dims[i], b->type.dims[i])) return false;
  return true;
}

/* A new node of one output typed `et` with the given dims (copied). */
static OValue *new_node(Ctx *c, OGraph *g, const ONode *at, OnnxOp op, OValue *const *in, int n_in,
                        ElemType et, int rank, const ODim *dims) {
  ONode *n = og_node(c, g, onnx_op_info[op].name, in, n_in, 1);
  n->origin = at->origin;
  OValue *v = n->outputs[0];
  v->type = (OType){et, rank, arena_alloc(c->arena, sizeof(ODim) * (size_t)(rank + 1))};
  for (int i = 0; i < rank; i++) v->type.dims[i] = dims[i];
  return v;
}

static OValue *scalar(Ctx *c, OGraph *g, const char *hint, ElemType et, double value) {
  return fm_new_const(c, g, hint, et, 0, NULL, &value);
}

/* Softmax's axis as a non-negative number. */
static int64_t softmax_axis(const ONode *sm) {
  const OAttr *a = og_get_attr(sm, "axis");
  int64_t axis = a ? a->i : -1;
  int rank = sm->inputs[0]->type.rank;
  return axis < 0 ? axis + rank : axis;
}

/* A constant boolean mask with an unmasked position in every row along
 * `axis` of x (the mask broadcast to x's shape). */
static bool every_row_has_a_key(Ctx *c, const OValue *m, const OValue *x, int64_t axis) {
  const Data *d = og_const_data(m);
  int rank = x->type.rank, off = rank - m->type.rank;
  if (!d || m->type.et != ET_BOOL || axis < off || m->type.rank > MAX_RANK) return false;
  int64_t dims[MAX_RANK], n = 1;
  for (int i = 0; i < m->type.rank; i++) {
    dims[i] = m->type.dims[i].value;
    if (dims[i] < 1 || dims[i] > FM_MAX_SCAN || n > FM_MAX_SCAN / dims[i]) return false;
    n *= dims[i];
  }
  if ((size_t)n != d->nbytes) return false;
  const uint8_t *b = data_bytes(c, d);
  int64_t k = axis - off, inner = 1;
  for (int i = (int)k + 1; i < m->type.rank; i++) inner *= dims[i];
  /* every (outer, inner) row along axis k holds a true element; a key axis
   * of size 1 is broadcast: that one element for every key */
  for (int64_t outer = 0; outer < n / (dims[k] * inner); outer++)
    for (int64_t in = 0; in < inner; in++) {
      bool any = false;
      for (int64_t j = 0; j < dims[k] && !any; j++) any = b[(outer * dims[k] + j) * inner + in];
      if (!any) return false;
    }
  return true;
}

/* v is true everywhere: a splat true constant, or one expanded. */
static bool all_true(Ctx *c, const OValue *v) {
  ONode *e = fm_def(v, ONNX_Expand);
  if (e) v = e->inputs[0];
  const Data *d = og_const_data(v);
  if (!d || v->type.et != ET_BOOL) return false;
  const uint8_t *b = data_bytes(c, d);
  for (size_t i = 0; i < d->nbytes; i++)
    if (!b[i]) return false;
  return true;
}

/* Mask m (broadcast into x) has an unmasked position in every row along
 * axis: a constant that does, or And(that, all true) (jax.nn's
 * dot_product_attention broadcasts a constant mask to the batch so). */
static bool never_masks_a_row(Ctx *c, const OValue *m, const OValue *x, int64_t axis) {
  ONode *and = fm_def(m, ONNX_And);
  if (and) {
    OValue *a = and->inputs[0], *b = and->inputs[1];
    return (all_true(c, a) && never_masks_a_row(c, b, x, axis)) ||
           (all_true(c, b) && never_masks_a_row(c, a, x, axis));
  }
  return every_row_has_a_key(c, m, x, axis);
}

/* ---- masks: Where -> Add and Mul ---------------------------------------- */

/* Where(m, 0, fill) computed now when m is a constant (fold leaves Where
 * alone): the additive mask is then a constant. */
static OValue *additive_constant(Ctx *c, OGraph *g, const OValue *m, ElemType et, double fill) {
  const Data *d = og_const_data(m);
  if (!d || m->type.rank > MAX_RANK) return NULL;
  int64_t dims[MAX_RANK], n = 1;
  for (int i = 0; i < m->type.rank; i++) {
    dims[i] = m->type.dims[i].value;
    if (dims[i] < 1 || dims[i] > FM_MAX_SCAN || n > FM_MAX_SCAN / dims[i]) return NULL;
    n *= dims[i];
  }
  if ((size_t)n != d->nbytes) return NULL;
  const uint8_t *b = data_bytes(c, d);
  double *vals = arena_alloc(c->arena, sizeof(double) * (size_t)n);
  for (int64_t i = 0; i < n; i++) vals[i] = b[i] ? 0.0 : fill;
  return fm_new_const(c, g, "mask_additive", et, m->type.rank, dims, vals);
}

static bool try_mask(Ctx *c, OGraph *g, ONode *sm, Masks *ms) {
  ONode *w = fm_def(sm->inputs[0], ONNX_Where);
  double fill, zero;
  if (!w || !og_single_use(w->outputs[0])) return false;
  OValue *m = w->inputs[0], *s = w->inputs[1], *p = sm->outputs[0];
  ElemType et = s->type.et;
  if (m->type.et != ET_BOOL || !fm_kernel_type(et, FM_F16 | FM_F32 | FM_F64)) return false;
  if (!fm_splat(c, w->inputs[2], &fill) || !(fill <= MASK_FILL_MAX)) return false;
  if (!broadcasts_into(m, s) || !broadcasts_into(w->inputs[2], s) ||
      !same_shape(w->outputs[0], s))
    return false;
  /* the zeroing Where(m, p, 0) after the Softmax, or a mask that never
   * masks a whole row */
  ONode *post = og_only_reader(g, p);
  bool zeroed = og_is(post, ONNX_Where) && post->inputs[0] == m && post->inputs[1] == p &&
                fm_splat(c, post->inputs[2], &zero) && zero == 0 && !signbit(zero) &&
                broadcasts_into(post->inputs[2], p) && same_shape(post->outputs[0], p);
  bool absorbing = isfinite(fill) && fill <= MASK_FILL_ABSORBING;
  if (!zeroed && !absorbing && !never_masks_a_row(c, m, s, softmax_axis(sm))) return false;

  OValue *add = mask_find(ms, MASK_ADDITIVE, m, fill, et);
  if (!add) {
    add = additive_constant(c, g, m, et, fill);
    if (!add) {
      OValue *in[3] = {m, scalar(c, g, "mask_keep", et, 0.0), scalar(c, g, "mask_fill", et, fill)};
      add = new_node(c, g, w, ONNX_Where, in, 3, et, m->type.rank, m->type.dims);
    }
    mask_keep(ms, MASK_ADDITIVE, m, fill, et, add);
  }
  OValue *sum_in[2] = {s, add};
  fm_rewrite(c, g, w, ONNX_Add, sum_in, 2);
  if (zeroed && isfinite(fill)) {
    OValue *f = mask_find(ms, MASK_FLOAT, m, 0, et);
    if (!f) {
      f = new_node(c, g, post, ONNX_Cast, &m, 1, et, m->type.rank, m->type.dims);
      og_attr_int(c, f->producer, "to", et);
      mask_keep(ms, MASK_FLOAT, m, 0, et, f);
    }
    OValue *mul_in[2] = {p, f};
    fm_rewrite(c, g, post, ONNX_Mul, mul_in, 2);
  }
  return true;
}

static void masks_in(Ctx *c, OGraph *g) {
  Masks ms = {.n = 0};
  bool changed = false;
  int n = g->nodes.len; /* the nodes appended below are no Softmax */
  for (int i = 0; i < n; i++) {
    ONode *sm = g->nodes.items[i];
    if (og_is(sm, ONNX_Softmax) && sm->n_inputs == 1) changed |= try_mask(c, g, sm, &ms);
  }
  if (!changed) return;
  fm_sweep(g);
  og_toposort(c, g);
}

int pass_attention_masks(Ctx *c, OModel *m) {
  masks_in(c, m->graph);
  return 0;
}

/* ---- Attention (opset 23) ------------------------------------------------ */

/* v = Mul(x, k), Mul(k, x) or Div(x, k) with k a splat constant: x and the
 * factor; else v itself and 1. */
static OValue *unscaled(Ctx *c, FmPat *p, OValue *v, double *scale) {
  *scale = 1;
  ONode *n = v->producer;
  double k;
  if (og_is(n, ONNX_Mul) || og_is(n, ONNX_Div)) {
    /* the factor on either side of a Mul, only the divisor of a Div */
    for (int side = og_is(n, ONNX_Div) ? 1 : 0; side < 2; side++) {
      OValue *x = n->inputs[1 - side], *kv = n->inputs[side];
      if (!fm_splat(c, kv, &k) || !broadcasts_into(kv, x) || !same_shape(n->outputs[0], x))
        continue;
      if (og_is(n, ONNX_Div) && (k == 0 || !isfinite(k))) return v;
      if (!fm_add(p, n)) return v;
      *scale = og_is(n, ONNX_Div) ? 1.0 / k : k;
      return x;
    }
  }
  return v;
}

/* The additive mask A = Where(mb, 0, c) this pass's mask rewrite built,
 * with c finite (else NULL): its boolean mask. */
static OValue *bool_mask_of_additive(Ctx *c, const OValue *a) {
  ONode *w = fm_def(a, ONNX_Where);
  double keep, fill;
  if (!w || !fm_splat(c, w->inputs[1], &keep) || keep != 0) return NULL;
  if (!fm_splat(c, w->inputs[2], &fill) || !(fill <= MASK_FILL_MAX) || !isfinite(fill)) return NULL;
  return w->inputs[0];
}

static bool rank4(const OValue *v) { return v->type.rank == 4; }

/* onnxruntime's Attention takes a mask value equal to the lowest float as
 * -inf: a row masked everywhere gives 0, where softmax(s + lowest) is
 * uniform.  transformers' Flax models fill with the lowest float: the
 * Attention mask is then Where(mb, 0, -0.7 * FLT_MAX), the same result
 * (both absorb the scores, MASK_FILL_ABSORBING).  Returns a (the mask as it
 * was), its refilled form, or NULL when it fills with -inf (NaN rows that
 * would become 0). */
static OValue *kernel_safe_mask(Ctx *c, OGraph *g, const ONode *at, OValue *a, Masks *ms) {
  ONode *w = fm_def(a, ONNX_Where);
  double keep, fill;
  if (!w || !fm_splat(c, w->inputs[1], &keep) || keep != 0 || !fm_splat(c, w->inputs[2], &fill))
    return a;
  if (isinf(fill)) return NULL;
  if (a->type.et != ET_F32 || fill != -FLT_MAX) return a;
  OValue *mb = w->inputs[0];
  OValue *r = mask_find(ms, MASK_REFILLED, mb, fill, ET_F32);
  if (r) return r;
  OValue *in[3] = {mb, scalar(c, g, "mask_keep", ET_F32, 0.0),
                   scalar(c, g, "mask_fill", ET_F32, -0.7 * FLT_MAX)};
  r = new_node(c, g, at, ONNX_Where, in, 3, ET_F32, a->type.rank, a->type.dims);
  mask_keep(ms, MASK_REFILLED, mb, fill, ET_F32, r);
  return r;
}

/* The mask for Attention: A with its query axis expanded to sq, once. */
static OValue *expanded_mask(Ctx *c, OGraph *g, const ONode *at, OValue *a, ODim sq, Masks *ms) {
  int ra = a->type.rank;
  if (og_same_dim(a->type.dims[ra - 2], sq)) return a;
  if (a->type.dims[ra - 2].value != 1 || sq.value < 0) return NULL;
  OValue *e = mask_find(ms, MASK_EXPANDED, a, (double)sq.value, a->type.et);
  if (e) return e;
  int64_t shape[MAX_RANK];
  for (int i = 0; i < ra; i++) shape[i] = 1;
  shape[ra - 2] = sq.value;
  OValue *in[2] = {a, og_init_i64s(c, g, "mask_shape", ra, shape)};
  ODim dims[MAX_RANK];
  for (int i = 0; i < ra; i++) dims[i] = a->type.dims[i];
  dims[ra - 2] = sq;
  e = new_node(c, g, at, ONNX_Expand, in, 2, a->type.et, ra, dims);
  mask_keep(ms, MASK_EXPANDED, a, (double)sq.value, a->type.et, e);
  return e;
}

/* R = ReduceMax(F, key axis, keepdims): 1 for a row with an unmasked key. */
static OValue *rows_with_a_key(Ctx *c, OGraph *g, const ONode *at, OValue *f, Masks *ms) {
  OValue *r = mask_find(ms, MASK_ROWS, f, 0, f->type.et);
  if (r) return r;
  int rank = f->type.rank;
  int64_t axis = rank - 1;
  OValue *in[2] = {f, og_init_i64s(c, g, "mask_key_axis", 1, &axis)};
  ODim dims[MAX_RANK];
  for (int i = 0; i < rank; i++) dims[i] = f->type.dims[i];
  dims[rank - 1] = (ODim){1, NULL};
  r = new_node(c, g, at, ONNX_ReduceMax, in, 2, f->type.et, rank, dims);
  og_attr_int(c, r->producer, "keepdims", 1);
  mask_keep(ms, MASK_ROWS, f, 0, f->type.et, r);
  return r;
}

/* Transpose node t has exactly the permutation want (rank 4). */
static bool has_perm(const ONode *t, const int64_t *want) {
  const OAttr *perm = og_get_attr(t, "perm");
  return perm && perm->n == 4 && memcmp(perm->ints, want, 4 * sizeof(int64_t)) == 0;
}

/* Reshape node r only inserts or removes axes of size 1, or Transpose node
 * r only moves them: the other dims are the same, in the same order (jax.nn.dot_product_attention's grouped
 * form [B,T,K,G,H] with G = 1 heads; Flax NNX). */
static bool unit_reshape(const ONode *r) {
  if (og_is(r, ONNX_Transpose)) { /* one moving unit axes only is one too */
    const OAttr *perm = og_get_attr(r, "perm");
    const OValue *in = r->inputs[0];
    if (!perm || perm->n != in->type.rank) return false;
    int64_t last = -1;
    for (int i = 0; i < perm->n; i++) {
      int64_t from = perm->ints[i];
      if (from < 0 || from >= in->type.rank || in->type.dims[from].value == 1) continue;
      if (from < last) return false;
      last = from;
    }
    return true;
  }
  if (!og_is(r, ONNX_Reshape)) return false;
  const OType *a = &r->inputs[0]->type, *b = &r->outputs[0]->type;
  if (a->rank < 0 || b->rank < 0) return false;
  int i = 0, j = 0;
  for (;;) {
    while (i < a->rank && a->dims[i].value == 1) i++;
    while (j < b->rank && b->dims[j].value == 1) j++;
    if (i == a->rank || j == b->rank) return i == a->rank && j == b->rank;
    if (!og_same_dim(a->dims[i++], b->dims[j++])) return false;
  }
}

/* v beneath single-use unit Reshapes, which join the pattern; *seen when
 * there was one. */
static OValue *through_unit_reshapes(FmPat *p, OValue *v, bool *seen) {
  while (unit_reshape(v->producer) && !v->producer->dead && og_single_use(v->producer->inputs[0])) {
    if (!fm_add(p, v->producer)) return v;
    *seen = true;
    v = v->producer->inputs[0];
  }
  return v;
}

/* The non-unit axes of v, in order, into axes; their count. */
static int non_unit_axes(const OValue *v, int *axes) {
  int n = 0;
  for (int i = 0; i < v->type.rank && i < MAX_RANK; i++)
    if (v->type.dims[i].value != 1) axes[n++] = i;
  return n;
}

/* Transpose t, with unit Reshapes around it (t's input from `from`, its
 * output reaching `to`), moves the axes of `from` as the permutation want
 * (rank 4) would: both have four non-unit axes, to's in the order want
 * gives from's. */
static bool moves_as(const ONode *t, const OValue *from, const OValue *to, const int64_t *want) {
  const OAttr *perm = og_get_attr(t, "perm");
  int u_axes[MAX_RANK], o_axes[MAX_RANK], x_axes[MAX_RANK], v_axes[MAX_RANK];
  const OValue *u = t->inputs[0], *o = t->outputs[0];
  if (!perm || perm->n != u->type.rank || u->type.rank > MAX_RANK) return false;
  if (from->type.rank > MAX_RANK || non_unit_axes(from, x_axes) != 4 ||
      non_unit_axes(to, v_axes) != 4)
    return false;
  int nu = non_unit_axes(u, u_axes), no = non_unit_axes(o, o_axes);
  if (nu != 4 || no != 4) return false;
  for (int k = 0; k < 4; k++) {
    int64_t src = perm->ints[o_axes[k]];
    int rank_in_u = -1;
    for (int m = 0; m < 4; m++)
      if (u_axes[m] == src) rank_in_u = m;
    if (rank_in_u != want[k]) return false;
  }
  return true;
}

/* v4 = Transpose_want(x), possibly as unit Reshape, Transpose, unit Reshape
 * (every node read once; x then has four non-unit axes, maybe unit ones
 * too): x, else NULL. */
static OValue *transposed_from(const OValue *v4, const int64_t *want) {
  ONode *n = v4->producer;
  if (unit_reshape(n) && !n->dead && og_single_use(n->inputs[0])) n = n->inputs[0]->producer;
  if (!og_is(n, ONNX_Transpose) || n->dead) return NULL;
  OValue *x = n->inputs[0];
  if (has_perm(n, want) && v4 == n->outputs[0]) return x;
  if (unit_reshape(x->producer) && !x->producer->dead && og_single_use(x))
    x = x->producer->inputs[0];
  if (x != n->inputs[0] && !og_single_use(x)) return NULL;
  return moves_as(n, x, v4, want) ? x : NULL;
}

/* The heads of v4 as one packed axis:
 *
 *   v4 = Transpose_want(Mul?(Add?(Reshape(x3), b), k))
 *
 * with x3 [B,S,E] reshaped to [B,S,heads,size] (E = heads * size; unit
 * axes may come between, as in jax.nn's [B,S,K,1,size]), b a
 * constant bias of shape [1..,heads,size], k a splat constant, every node
 * read only here.  Sets the packed input (x3, or x3 + b flattened: the new
 * Add is made by packed_input), multiplies k into *scale and returns the
 * number of heads, or 0.  Only Q and K may be scaled (scale NULL for V:
 * a factor of V scales the output, not the scores). */
typedef struct Packed {
  OValue *x3, *bias;
  const ONode *reshape;
} Packed;

static int64_t packed_heads(Ctx *c, OValue *v4, const int64_t *want, double *scale, Packed *out) {
  OValue *x = og_single_use(v4) ? transposed_from(v4, want) : NULL;
  if (!x) return 0;
  double k = 1;
  ONode *mul = fm_def(x, ONNX_Mul);
  if (!mul) mul = fm_def(x, ONNX_Div);
  if (mul) {
    if (!scale || !og_single_use(x) || !fm_splat(c, mul->inputs[1], &k) ||
        !broadcasts_into(mul->inputs[1], mul->inputs[0]) || !same_shape(x, mul->inputs[0]))
      return 0;
    if (og_is(mul, ONNX_Div)) {
      if (k == 0 || !isfinite(k)) return 0;
      k = 1.0 / k;
    }
    x = mul->inputs[0];
  }
  OValue *bias = NULL;
  ONode *add = fm_def(x, ONNX_Add);
  if (add && x->type.rank != 4) return 0;
  if (add) {
    bias = add->inputs[1];
    int rb = bias->type.rank;
    if (!og_single_use(x) || !og_const_data(bias) || rb < 2 || !same_shape(x, add->inputs[0]))
      return 0;
    for (int i = 0; i < rb; i++) {
      ODim want_dim = i < rb - 2 ? (ODim){1, NULL} : x->type.dims[x->type.rank - rb + i];
      if (bias->type.dims[i].value != want_dim.value || want_dim.value < 1) return 0;
    }
    x = add->inputs[0];
  }
  ONode *r = fm_def(x, ONNX_Reshape);
  if (!r || !og_single_use(x)) return 0;
  OValue *x3 = r->inputs[0];
  int axes[MAX_RANK];
  ODim d4[4];
  if (x->type.rank > MAX_RANK || non_unit_axes(x, axes) != 4) return 0;
  for (int i = 0; i < 4; i++) d4[i] = x->type.dims[axes[i]];
  const ODim *d3 = x3->type.dims;
  if (x3->type.rank != 3 || !og_same_dim(d3[0], d4[0]) || !og_same_dim(d3[1], d4[1])) return 0;
  if (d4[2].value < 1 || d4[3].value < 1 || d3[2].value != d4[2].value * d4[3].value) return 0;
  if (scale) *scale *= k;
  *out = (Packed){x3, bias, r};
  return d4[2].value;
}

/* The packed input of Attention: x3, or Add(x3, the bias flattened). */
static OValue *packed_input(Ctx *c, OGraph *g, const Packed *pk) {
  if (!pk->bias) return pk->x3;
  int64_t flat = -1;
  OValue *rs_in[2] = {pk->bias, og_init_i64s(c, g, "bias_shape", 1, &flat)};
  ODim e = pk->x3->type.dims[2];
  OValue *b = new_node(c, g, pk->reshape, ONNX_Reshape, rs_in, 2, pk->bias->type.et, 1, &e);
  OValue *add_in[2] = {pk->x3, b};
  return new_node(c, g, pk->reshape, ONNX_Add, add_in, 2, pk->x3->type.et, 3, pk->x3->type.dims);
}

/* The mask a, added to the scores `at` that unit Reshapes make the 4-D
 * scores s4, reshaped the same way: the non-unit axes of `at` are those of
 * s4, in order; a's dim on each (right-aligned, 1 where a is shorter). */
static OValue *squeezed_mask(Ctx *c, OGraph *g, const ONode *node, OValue *a, const OValue *at,
                             const OValue *s4) {
  int at_axes[MAX_RANK], s_axes[MAX_RANK];
  int ra = a->type.rank, rat = at->type.rank;
  if (rat > MAX_RANK || s4->type.rank != 4) return NULL;
  int n = non_unit_axes(at, at_axes);
  if (n != non_unit_axes(s4, s_axes)) return NULL;
  ODim dims[4];
  int64_t shape[4];
  int symbolic = 0;
  for (int j = 0; j < 4; j++) dims[j] = (ODim){1, NULL};
  for (int k = 0; k < n; k++) {
    int i = at_axes[k] - (rat - ra);
    if (i >= 0) dims[s_axes[k]] = a->type.dims[i];
  }
  for (int j = 0; j < 4; j++) {
    shape[j] = dims[j].value;
    if (dims[j].value < 1) {
      shape[j] = -1;
      symbolic++;
    }
  }
  if (symbolic > 1) return NULL;
  OValue *in[2] = {a, og_init_i64s(c, g, "mask_shape", 4, shape)};
  return new_node(c, g, node, ONNX_Reshape, in, 2, a->type.et, 4, dims);
}

static bool try_attention(Ctx *c, OGraph *g, ONode *root, Masks *ms) {
  if (!og_is(root, ONNX_MatMul) || root->n_inputs != 2) return false;
  FmPat pat = {.n = 0};
  fm_add(&pat, root);
  OValue *probs = root->inputs[0], *v = root->inputs[1];
  /* the zeroing of masked probabilities: Mul(p, F), F = Cast(mb) */
  OValue *zero_mask = NULL, *zero_f = NULL;
  ONode *mul = fm_def(probs, ONNX_Mul);
  if (mul) {
    ONode *cast = fm_def(mul->inputs[1], ONNX_Cast);
    if (!cast || cast->inputs[0]->type.et != ET_BOOL || !fm_add(&pat, mul)) return false;
    zero_mask = cast->inputs[0];
    zero_f = mul->inputs[1];
    probs = mul->inputs[0];
  }
  /* the scores may pass through Reshapes that only add or drop unit axes
   * (jax.nn.dot_product_attention's [B,T,K,G,H] with G = 1) */
  bool unit_axes = false;
  if (!rank4(probs)) return false;
  probs = through_unit_reshapes(&pat, probs, &unit_axes);
  ONode *sm = fm_take(&pat, probs, ONNX_Softmax);
  int sm_rank = probs->type.rank;
  if (!sm || softmax_axis(sm) != sm_rank - 1 || probs->type.dims[sm_rank - 1].value == 1)
    return false;
  OValue *x = sm->inputs[0], *additive = NULL, *masked = NULL;
  ONode *add = fm_def(x, ONNX_Add);
  if (add) {
    for (int side = 1; side >= 0 && !additive; side--) {
      OValue *a = add->inputs[side], *s = add->inputs[1 - side];
      if (!(fm_def(s, ONNX_MatMul) || fm_def(s, ONNX_Mul) || fm_def(s, ONNX_Div) ||
            unit_reshape(s->producer)))
        continue;
      if (!broadcasts_into(a, s) || !same_shape(add->outputs[0], s)) continue;
      additive = a;
      x = masked = s;
    }
    if (!additive || !fm_add(&pat, add)) return false;
  }
  double scale;
  x = through_unit_reshapes(&pat, x, &unit_axes);
  x = unscaled(c, &pat, x, &scale);
  x = through_unit_reshapes(&pat, x, &unit_axes);
  ONode *qk = fm_take(&pat, x, ONNX_MatMul);
  if (!qk || !fm_closed(&pat, root)) return false;
  if (unit_axes && zero_mask) return false;
  OValue *q = qk->inputs[0], *kt = qk->inputs[1];
  if (!rank4(q) || !rank4(kt) || !rank4(v) || !fm_kernel_type(q->type.et, FM_F32)) return false;
  if (kt->type.et != q->type.et || v->type.et != q->type.et) return false;
  if (additive && (additive->type.et != q->type.et || additive->type.rank < 2)) return false;
  /* Attention does not broadcast the batch; the kv heads may be 1 (GQA) */
  const ODim *qd = q->type.dims, *kd = kt->type.dims, *vd = v->type.dims;
  if (!og_same_dim(qd[0], kd[0]) || !og_same_dim(qd[0], vd[0])) return false;
  if (!og_same_dim(kd[1], vd[1]) || !(og_same_dim(qd[1], kd[1]) || kd[1].value == 1)) return false;
  if (!og_same_dim(qd[3], kd[2]) || !og_same_dim(kd[3], vd[2])) return false;
  if (zero_mask && zero_f->type.rank < 1) return false;
  /* zeroed probabilities: only with the additive mask of the same mask */
  if (zero_mask && (!additive || bool_mask_of_additive(c, additive) != zero_mask)) return false;
  if (additive && !zero_mask && !(additive = kernel_safe_mask(c, g, root, additive, ms)))
    return false;
  if (additive && unit_axes && !(additive = squeezed_mask(c, g, root, additive, masked, x)))
    return false;
  OValue *mask = additive ? expanded_mask(c, g, root, additive, qd[2], ms) : NULL;
  if (additive && !mask) return false;

  /* Q, K and V with the heads packed in the last axis ([B,S,H*D], as the
   * projections computed them) and the output read only by the Transpose
   * back to [B,S,H,Dv]: the 3-D form, without any of these Transposes */
  static const int64_t to_heads[4] = {0, 2, 1, 3}, k_to_heads[4] = {0, 2, 3, 1};
  double scale3 = scale;
  Packed pq, pk, pv;
  /* the output's way back to [B,S,H,Dv] (unit Reshapes around it allowed),
   * ending in `end` */
  ONode *t_out = og_only_reader(g, root->outputs[0]), *end = NULL;
  if (unit_reshape(t_out)) t_out = og_only_reader(g, t_out->outputs[0]);
  if (og_is(t_out, ONNX_Transpose)) {
    end = t_out;
    ONode *after = og_only_reader(g, t_out->outputs[0]);
    if (unit_reshape(after)) end = after;
    if (!moves_as(t_out, root->outputs[0], end->outputs[0], to_heads)) end = NULL;
  }
  int64_t hq = packed_heads(c, q, to_heads, &scale3, &pq);
  int64_t hk = hq ? packed_heads(c, kt, k_to_heads, &scale3, &pk) : 0;
  int64_t hv = hk ? packed_heads(c, v, to_heads, NULL, &pv) : 0;
  bool rows_fit = !zero_mask || zero_f->type.rank == 4;
  bool plain_end = end && end == t_out && has_perm(t_out, to_heads);
  if (hv && hk == hv && end && (plain_end || !zero_mask) && rows_fit) {
    const ODim *root_d = root->outputs[0]->type.dims;
    ODim od[4] = {root_d[0], root_d[2], root_d[1], root_d[3]};
    ODim d3[3] = {od[0], od[1], {od[2].value * od[3].value, NULL}};
    if (od[2].value < 1 || od[3].value < 1) return false;
    /* [B,S,H*Dv] to end's shape: B and S copied (0), the rest static */
    const OType *et = &end->outputs[0]->type;
    int64_t split[MAX_RANK];
    if (et->rank > MAX_RANK) return false;
    for (int i = 0; i < et->rank; i++) {
      split[i] = et->dims[i].value;
      if (split[i] >= 1) continue;
      if (i > 1 || !og_same_dim(et->dims[i], od[i])) return false;
      split[i] = 0;
    }
    OValue *in3[4] = {packed_input(c, g, &pq), packed_input(c, g, &pk), packed_input(c, g, &pv),
                      mask};
    OValue *out = new_node(c, g, root, ONNX_Attention, in3, mask ? 4 : 3, q->type.et, 3, d3);
    og_attr_float(c, out->producer, "scale", (float)scale3);
    og_attr_int(c, out->producer, "q_num_heads", hq);
    og_attr_int(c, out->producer, "kv_num_heads", hk);
    OValue *rs_in[2] = {out, og_init_i64s(c, g, "heads_shape", et->rank, split)};
    if (!zero_mask) {
      fm_rewrite(c, g, end, ONNX_Reshape, rs_in, 2);
      return true;
    }
    OValue *heads = new_node(c, g, root, ONNX_Reshape, rs_in, 2, q->type.et, 4, od);
    OValue *r = rows_with_a_key(c, g, root, zero_f, ms);
    ODim rd[4] = {r->type.dims[0], r->type.dims[2], r->type.dims[1], r->type.dims[3]};
    OValue *rt = new_node(c, g, root, ONNX_Transpose, &r, 1, r->type.et, 4, rd);
    og_attr_ints(c, rt->producer, "perm", to_heads, 4);
    OValue *prod[2] = {heads, rt};
    fm_rewrite(c, g, t_out, ONNX_Mul, prod, 2);
    return true;
  }

  static const int64_t swap_last[4] = {0, 1, 3, 2};
  ODim k_dims[4] = {kd[0], kd[1], kd[3], kd[2]};
  OValue *k = new_node(c, g, root, ONNX_Transpose, &kt, 1, kt->type.et, 4, k_dims);
  og_attr_ints(c, k->producer, "perm", swap_last, 4);
  OValue *in[4] = {q, k, v, mask};
  if (!zero_mask) {
    fm_rewrite(c, g, root, ONNX_Attention, in, mask ? 4 : 3);
    og_attr_float(c, root, "scale", (float)scale);
    return true;
  }
  OValue *out = new_node(c, g, root, ONNX_Attention, in, 4, q->type.et, 4, root->outputs[0]->type.dims);
  og_attr_float(c, out->producer, "scale", (float)scale);
  OValue *prod[2] = {out, rows_with_a_key(c, g, root, zero_f, ms)};
  fm_rewrite(c, g, root, ONNX_Mul, prod, 2);
  return true;
}

int pass_fuse_attention(Ctx *c, OModel *m) {
  if (m->opset < 23) return 0;
  OGraph *g = m->graph;
  Masks ms = {.n = 0};
  bool changed = false;
  int n = g->nodes.len; /* the nodes appended below are no roots */
  for (int i = 0; i < n; i++) {
    ONode *root = g->nodes.items[i];
    if (!root->dead) changed |= try_attention(c, g, root, &ms);
  }
  if (!changed) return 0;
  fm_sweep(g);
  og_toposort(c, g);
  return 0;
}
