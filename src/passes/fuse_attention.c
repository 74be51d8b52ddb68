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
 * -1e30 and transformers' -FLT_MAX: the float spacing there is 7.6e22, far
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
 * axis is 1 for a row with an unmasked key and 0 otherwise.  Reshapes and
 * Transposes that only add, drop or move unit axes may sit between these
 * nodes (jax.nn.dot_product_attention's [B,T,K,G,D] with G = 1: Flax NNX).
 * Where Q, K and V are the projections' [B,S,H*D] split into heads and the
 * output goes back to it, the 3-D form reads and writes them as they are.
 * onnxruntime takes a mask value of -FLT_MAX as -inf (a fully masked row
 * gives 0, not uniform): such a fill becomes -0.7 * FLT_MAX.
 *
 * try_grouped_attention: jax.nn.dot_product_attention with G > 1 query
 * heads per kv head (GQA) moves the query axis's factors T and G around
 * the Softmax; following the scores' axes as atoms through those moves
 * shows an attention with K heads over T*G queries, or, when Q, K, V and
 * the output are the projections' [B,S,(K,G,D)], one with
 * q_num_heads = K*G and kv_num_heads = K (see there).  Below opset 23 the
 * same regrouping gives MatMul, Softmax, MatMul over [B,K,T*G,S] scores,
 * without their Transposes (pass_fuse_attention runs at every opset for
 * this; try_attention only from 23).
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
  if (og_is(r, ONNX_Transpose)) return og_transpose_moves_only_unit_axes(r);
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

/* ---- Attention over regrouped scores (GQA) --------------------------------
 *
 * jax.nn.dot_product_attention with G = N/K > 1 query heads per kv head
 * computes the scores of Q [B,K,(T,G),D] and Kt [B,K,D,S] as one MatMul,
 * then moves the query axis's factors T and G around the Softmax (scores
 * [G,B,K,T,S]) and multiplies with V as MatMul(Vt, P') (P' [B,K,S,(G,T)]).
 * That is attention with K heads over T*G queries in some order: the
 * Attention takes Q with its query axis in P''s order, the mask moved the
 * same way, and gives P''s result.  To check the moves, the scores' axes
 * [b,h,m,s] are tracked as atoms through the Reshapes and Transposes; an
 * atom splits in two when a Reshape divides it (m into T and G). */
#define MAX_ATOMS 16
typedef struct Atoms {
  int64_t size[MAX_ATOMS]; /* -1 for the one symbolic atom (b) */
  int child[MAX_ATOMS];    /* split: outer child; inner = child + 1; else -1 */
  int n;
  ODim sym; /* the symbolic atom's dim */
} Atoms;
typedef struct Layout {
  int rank;
  int n[MAX_RANK];
  int atom[MAX_RANK][MAX_ATOMS];
} Layout;

static int atom_new(Atoms *at, int64_t size) {
  if (at->n == MAX_ATOMS) return -1;
  at->size[at->n] = size;
  at->child[at->n] = -1;
  return at->n++;
}

/* The atoms of one axis with the split ones replaced by their parts; count. */
static int axis_atoms(const Atoms *at, const Layout *l, int axis, int *out) {
  int stack[MAX_ATOMS * 2], top = 0, n = 0;
  for (int i = l->n[axis] - 1; i >= 0; i--) stack[top++] = l->atom[axis][i];
  while (top > 0) {
    int a = stack[--top];
    if (at->child[a] < 0) {
      if (n == MAX_ATOMS) return -1;
      out[n++] = a;
    } else if (top + 2 <= MAX_ATOMS * 2) {
      stack[top++] = at->child[a] + 1;
      stack[top++] = at->child[a];
    } else {
      return -1;
    }
  }
  return n;
}

/* l after Reshape to v's dims (atoms split as needed), false when the
 * Reshape would mix atoms otherwise. */
static bool layout_reshape(Atoms *at, Layout *l, const OValue *v) {
  int seq[MAX_ATOMS], n = 0, tmp[MAX_ATOMS];
  for (int i = 0; i < l->rank; i++) {
    int k = axis_atoms(at, l, i, tmp);
    if (k < 0 || n + k > MAX_ATOMS) return false;
    for (int j = 0; j < k; j++) seq[n++] = tmp[j];
  }
  Layout r = {.rank = v->type.rank};
  if (r.rank < 0 || r.rank > MAX_RANK) return false;
  int next = 0;
  for (int i = 0; i < r.rank; i++) {
    ODim d = v->type.dims[i];
    r.n[i] = 0;
    if (d.value == 1) continue;
    if (d.value < 1) { /* the symbolic atom, whole */
      if (next == n || at->size[seq[next]] >= 0 || !og_same_dim(d, at->sym)) return false;
      r.atom[i][r.n[i]++] = seq[next++];
      continue;
    }
    int64_t p = 1;
    while (p < d.value) {
      if (next == n || at->size[seq[next]] < 0 || d.value % p) return false;
      int a = seq[next];
      int64_t want = d.value / p;
      if (at->size[a] > want) { /* split a: its outer part ends this axis */
        if (at->size[a] % want || at->n + 2 > MAX_ATOMS) return false;
        at->child[a] = atom_new(at, want);
        atom_new(at, at->size[a] / want);
        seq[next] = at->child[a] + 1;
        a = at->child[a];
      } else {
        next++;
      }
      r.atom[i][r.n[i]++] = a;
      p *= at->size[a];
    }
    if (p != d.value) return false;
  }
  if (next != n) return false;
  *l = r;
  return true;
}

static bool layout_transpose(Layout *l, const ONode *t) {
  const OAttr *perm = og_get_attr(t, "perm");
  if (!perm || perm->n != l->rank) return false;
  Layout r = {.rank = l->rank};
  for (int i = 0; i < l->rank; i++) {
    int64_t from = perm->ints[i];
    if (from < 0 || from >= l->rank) return false;
    r.n[i] = l->n[from];
    memcpy(r.atom[i], l->atom[from], sizeof r.atom[i]);
  }
  *l = r;
  return true;
}

/* l after node n (a Reshape or a Transpose). */
static bool layout_step(Atoms *at, Layout *l, const ONode *n) {
  if (og_is(n, ONNX_Reshape)) return layout_reshape(at, l, n->outputs[0]);
  return og_is(n, ONNX_Transpose) && layout_transpose(l, n);
}

/* axis of l holds exactly the atoms want[0..n) (expanded) */
static bool axis_is(const Atoms *at, const Layout *l, int axis, const int *want, int n) {
  int got[MAX_ATOMS];
  int k = axis_atoms(at, l, axis, got);
  return k == n && (n == 0 || memcmp(got, want, sizeof(int) * (size_t)n) == 0);
}

/* v rearranged: Reshape to the atoms `from` (sizes; -1 for the symbolic
 * one), Transpose by perm, Reshape to `to` (NULL: skipped), each only when
 * it changes something (n <= MAX_RANK: the callers check). */
static OValue *rearranged(Ctx *c, OGraph *g, const ONode *at_node, OValue *v, int n,
                          const int64_t *from, const ODim *from_dims, const int64_t *perm,
                          int rank_to, const int64_t *to, const ODim *to_dims) {
  bool identity = true;
  for (int i = 0; i < n; i++) identity &= perm[i] == i;
  if (identity && to) {
    OValue *in[2] = {v, og_init_i64s(c, g, "regroup_shape", rank_to, to)};
    return new_node(c, g, at_node, ONNX_Reshape, in, 2, v->type.et, rank_to, to_dims);
  }
  OValue *in[2] = {v, og_init_i64s(c, g, "atoms_shape", n, from)};
  v = new_node(c, g, at_node, ONNX_Reshape, in, 2, v->type.et, n, from_dims);
  if (!identity) {
    ODim dims[MAX_RANK];
    for (int i = 0; i < n; i++) dims[i] = from_dims[perm[i]];
    v = new_node(c, g, at_node, ONNX_Transpose, &v, 1, v->type.et, n, dims);
    og_attr_ints(c, v->producer, "perm", perm, n);
  }
  if (!to) return v;
  OValue *in2[2] = {v, og_init_i64s(c, g, "regroup_shape", rank_to, to)};
  return new_node(c, g, at_node, ONNX_Reshape, in2, 2, v->type.et, rank_to, to_dims);
}

static ODim atom_dim(const Atoms *at, int a, ODim symbolic) {
  return at->size[a] < 0 ? symbolic : (ODim){at->size[a], NULL};
}

/* The additive mask a, added to the scores `masked` (layout l), moved to
 * [g0, g1, g2, g3] (each group of atoms as one axis of group_dims[i], or 1
 * where a broadcasts over the whole group; g2 the queries, as Attention
 * wants them expanded): the atoms of a's non-broadcast axes put in the
 * groups' order.  A group partly broadcast (a causal mask, the same for the
 * T*G queries that differ in G) is expanded first. */
static OValue *regrouped_mask(Ctx *c, OGraph *g, const ONode *root, OValue *a,
                              const OValue *masked, const Atoms *at, const Layout *l,
                              const int *const *groups, const int *group_n,
                              const ODim *group_dims, bool for_attention, Masks *ms) {
  for (int attempt = 0; attempt < 2; attempt++) {
    int ra = a->type.rank, rs = masked->type.rank, off = rs - ra;
    int present[MAX_ATOMS], n_present = 0, tmp[MAX_ATOMS];
    if (rs > MAX_RANK) return NULL;
    for (int i = 0; i < ra; i++) {
      if (a->type.dims[i].value == 1) continue;
      int k = axis_atoms(at, l, off + i, tmp);
      if (k < 0 || n_present + k > MAX_ATOMS) return NULL;
      for (int j = 0; j < k; j++) present[n_present++] = tmp[j];
    }
    int64_t perm[MAX_ATOMS], to[4];
    int n_order = 0;
    bool partial[4], any_partial = false;
    ODim to_dims[4];
    for (int gi = 0; gi < 4; gi++) {
      int found = 0;
      for (int j = 0; j < group_n[gi]; j++)
        for (int i = 0; i < n_present; i++)
          if (present[i] == groups[gi][j]) {
            perm[n_order++] = i;
            found++;
          }
      partial[gi] = found != 0 && found != group_n[gi];
      any_partial |= partial[gi];
      to_dims[gi] = found ? group_dims[gi] : (ODim){1, NULL};
      to[gi] = to_dims[gi].value < 1 ? -1 : to_dims[gi].value;
    }
    if (any_partial) {
      /* Expand along the axes of the scores holding an atom of a partly
       * present group (static sizes: the symbolic atom is whole) */
      if (attempt > 0) return NULL;
      int64_t shape[MAX_RANK];
      ODim dims[MAX_RANK];
      for (int i = 0; i < rs; i++) {
        int k = axis_atoms(at, l, i, tmp);
        bool fill = false;
        for (int j = 0; j < k; j++)
          for (int gi = 0; gi < 4; gi++)
            for (int t = 0; t < group_n[gi] && partial[gi]; t++) fill |= tmp[j] == groups[gi][t];
        dims[i] = i >= off ? a->type.dims[i - off] : (ODim){1, NULL};
        shape[i] = 1;
        if (fill && dims[i].value == 1) {
          dims[i] = masked->type.dims[i];
          shape[i] = dims[i].value;
          if (shape[i] < 1) return NULL;
        }
      }
      OValue *in[2] = {a, og_init_i64s(c, g, "mask_groups", rs, shape)};
      a = new_node(c, g, root, ONNX_Expand, in, 2, a->type.et, rs, dims);
      continue;
    }
    if (n_order != n_present || n_present > MAX_RANK) return NULL;
    int64_t sizes[MAX_ATOMS];
    ODim dims[MAX_ATOMS];
    for (int i = 0; i < n_present; i++) {
      sizes[i] = at->size[present[i]];
      dims[i] = atom_dim(at, present[i], group_dims[0]);
    }
    OValue *m = rearranged(c, g, root, a, n_present, sizes, dims, perm, 4, to, to_dims);
    return for_attention ? expanded_mask(c, g, root, m, group_dims[2], ms) : m;
  }
  return NULL;
}

/* Axis `axis` of l holds the atoms atoms[0..n) (put_atom: one, or none for
 * -1). */
static void put_atoms(Layout *l, int axis, const int *atoms, int n) {
  l->n[axis] = n;
  for (int i = 0; i < n; i++) l->atom[axis][i] = atoms[i];
}

static void put_atom(Layout *l, int axis, int atom) { put_atoms(l, axis, &atom, atom >= 0); }

/* Up from v through Reshapes and Transposes read once, l following: the
 * first value made otherwise (l its layout). */
static OValue *walk_up(Atoms *at, Layout *l, OValue *v) {
  for (;;) {
    ONode *n = v->producer;
    if (!(og_is(n, ONNX_Reshape) || og_is(n, ONNX_Transpose)) || !og_single_use(v)) return v;
    Layout r = {.rank = n->inputs[0]->type.rank};
    if (og_is(n, ONNX_Transpose)) {
      const OAttr *perm = og_get_attr(n, "perm");
      if (!perm || perm->n != l->rank || r.rank != l->rank) return v;
      for (int i = 0; i < l->rank; i++) {
        int64_t from = perm->ints[i];
        if (from < 0 || from >= r.rank) return v;
        r.n[from] = l->n[i];
        memcpy(r.atom[from], l->atom[i], sizeof r.atom[i]);
      }
    } else {
      r = *l;
      if (!layout_reshape(at, &r, n->inputs[0])) return v;
    }
    *l = r;
    v = n->inputs[0];
  }
}

/* Down from v through Reshapes and Transposes, each v's only reader: the
 * last of them (NULL when none), l following. */
static ONode *walk_down(const OGraph *g, Atoms *at, Layout *l, const OValue *v) {
  ONode *last = NULL;
  for (;;) {
    ONode *n = og_only_reader(g, v);
    if (!(og_is(n, ONNX_Reshape) || og_is(n, ONNX_Transpose)) || n->inputs[0] != v) return last;
    Layout r = *l;
    if (!layout_step(at, &r, n)) return last;
    *l = r;
    last = n;
    v = n->outputs[0];
  }
}

/* l as n atoms of one axis. */
static Layout one_axis(const int *atoms, int n) {
  Layout l = {.rank = 1, .n = {n}};
  for (int i = 0; i < n; i++) l.atom[0][i] = atoms[i];
  return l;
}

/* The packed form of the grouped attention: Q [B,T,(h,G,D)], K [B,S,(h,D)],
 * V [B,S,(h,Dv)] as the projections give them and the output wanted as
 * [B,T,(h,G,Dv)]: Attention with h*G query heads and h kv heads (query
 * head i reads kv head i / G, as jax.nn's grouping does), no Transpose. */
static bool packed_grouped(Ctx *c, OGraph *g, ONode *root, int side, Atoms *at,
                           const int *m_parts, const int *mp, int n_m, int ab, int ah, int as, OValue *q, OValue *kt, OValue *vv,
                           OValue *additive, const OValue *masked, const Layout *at_mask,
                           double scale, Masks *ms) {
  const ODim *qd = q->type.dims, *vd = vv->type.dims;
  if (ab < 0 || qd[3].value < 1) return false;
  int ad = atom_new(at, qd[3].value), adv = atom_new(at, vd[side == 0 ? 3 : 2].value);
  if (ad < 0 || adv < 0 || at->size[adv] < 1) return false;
  int hd[2] = {ah, ad}, hv[2] = {ah, adv}, one[1];
  Layout lq = {.rank = 4}, lk = {.rank = 4}, lv = {.rank = 4}, lo = {.rank = 4};
  int vs = side == 0 ? 2 : 3, vd_axis = 5 - vs; /* V's S and Dv axes */
  int mo = side == 0 ? 2 : 3, do_axis = 5 - mo; /* the output's M' and Dv axes */
  for (int i = 0; i < 2; i++) { /* b, h: alike in all four */
    put_atom(&lq, i, i ? ah : ab);
    put_atom(&lk, i, i ? ah : ab);
    put_atom(&lv, i, i ? ah : ab);
    put_atom(&lo, i, i ? ah : ab);
  }
  put_atoms(&lq, 2, m_parts, n_m); /* Q [b, h, m (its parts), d] */
  put_atom(&lq, 3, ad);
  put_atom(&lk, 2, ad); /* Kt [b, h, d, s] */
  put_atom(&lk, 3, as);
  put_atom(&lv, vs, as);
  put_atom(&lv, vd_axis, adv);
  put_atoms(&lo, mo, mp, n_m); /* the output, M' in P''s order */
  put_atom(&lo, do_axis, adv);
  OValue *xq = walk_up(at, &lq, q), *xk = walk_up(at, &lk, kt), *xv = walk_up(at, &lv, vv);
  ONode *end = walk_down(g, at, &lo, root->outputs[0]);
  if (!end || xq->type.rank != 3 || xk->type.rank != 3 || xv->type.rank != 3 || lo.rank != 3)
    return false;
  /* Q [b, T, (h, G, d)]: T and G split the queries' parts between them */
  int t_atoms[MAX_ATOMS], q_heads[MAX_ATOMS], n_t, n_qh, o_heads[MAX_ATOMS];
  one[0] = ab;
  n_t = axis_atoms(at, &lq, 1, t_atoms);
  n_qh = axis_atoms(at, &lq, 2, q_heads);
  int h_off = ah >= 0;
  if (!axis_is(at, &lq, 0, one, 1) || n_t < 1 || n_qh < 1 + h_off || q_heads[n_qh - 1] != ad ||
      (ah >= 0 && q_heads[0] != ah) || n_t + n_qh - 1 - h_off != n_m)
    return false;
  int *g_atoms = q_heads + h_off, n_g = n_qh - 1 - h_off;
  for (int i = 0; i < n_m; i++) { /* each part of the queries once, in T or G */
    int seen = 0;
    for (int j = 0; j < n_t; j++) seen += t_atoms[j] == mp[i];
    for (int j = 0; j < n_g; j++) seen += g_atoms[j] == mp[i];
    if (seen != 1) return false;
  }
  /* K [b, S, (h, d)], V [b, S, (h, dv)], the output [b, T, (h, G, dv)] */
  Layout want_o = one_axis(q_heads, n_qh);
  want_o.atom[0][n_qh - 1] = adv;
  if (axis_atoms(at, &want_o, 0, o_heads) != n_qh) return false;
  if (!axis_is(at, &lk, 0, one, 1) || !axis_is(at, &lk, 1, &as, 1) ||
      !axis_is(at, &lk, 2, hd + 1 - h_off, 1 + h_off) || !axis_is(at, &lv, 0, one, 1) ||
      !axis_is(at, &lv, 1, &as, 1) || !axis_is(at, &lv, 2, hv + 1 - h_off, 1 + h_off) ||
      !axis_is(at, &lo, 0, one, 1) || !axis_is(at, &lo, 1, t_atoms, n_t) ||
      !axis_is(at, &lo, 2, o_heads, n_qh))
    return false;
  int64_t kv_heads = ah >= 0 ? at->size[ah] : 1, group = 1, queries = 1;
  for (int i = 0; i < n_g; i++) group *= at->size[g_atoms[i]];
  for (int i = 0; i < n_t; i++) queries *= at->size[t_atoms[i]];
  OValue *mask = NULL;
  if (additive) {
    int heads[MAX_ATOMS];
    for (int i = 0; i < n_qh - 1; i++) heads[i] = q_heads[i];
    const int *groups[4] = {one, heads, t_atoms, &as};
    int group_n[4] = {1, n_qh - 1, n_t, 1};
    ODim group_dims[4] = {qd[0], {kv_heads * group, NULL}, {queries, NULL}, kt->type.dims[3]};
    mask = regrouped_mask(c, g, root, additive, masked, at, at_mask, groups, group_n, group_dims,
                          true, ms);
    if (!mask) return false;
  }
  OValue *in[4] = {xq, xk, xv, mask};
  const OType *et = &end->outputs[0]->type;
  OValue *out = new_node(c, g, root, ONNX_Attention, in, mask ? 4 : 3, q->type.et, 3, et->dims);
  og_attr_float(c, out->producer, "scale", (float)scale);
  og_attr_int(c, out->producer, "q_num_heads", kv_heads * group);
  og_attr_int(c, out->producer, "kv_num_heads", kv_heads);
  int64_t same[3] = {0, 0, -1};
  OValue *rs_in[2] = {out, og_init_i64s(c, g, "heads_shape", 3, same)};
  fm_rewrite(c, g, end, ONNX_Reshape, rs_in, 2);
  return true;
}

/* attention_op: opset 23's Attention; else the same regrouping with MatMul,
 * Softmax, MatMul over [b,h,M',s] scores (no Transpose of the scores). */
static bool try_grouped_attention(Ctx *c, OGraph *g, ONode *root, bool attention_op, Masks *ms) {
  if (!og_is(root, ONNX_MatMul) || root->n_inputs != 2 || !rank4(root->outputs[0])) return false;
  /* down from the Softmax: P' = root's operand, through Reshapes/Transposes */
  int side = -1;
  const ONode *down[8];
  int n_down = 0;
  ONode *sm = NULL;
  for (int s = 0; s < 2 && !sm; s++) {
    OValue *v = root->inputs[s];
    n_down = 0;
    while ((og_is(v->producer, ONNX_Reshape) || og_is(v->producer, ONNX_Transpose)) &&
           n_down < 8 && og_single_use(v)) {
      down[n_down++] = v->producer;
      v = v->producer->inputs[0];
    }
    if (og_is(v->producer, ONNX_Softmax) && og_single_use(v) && n_down > 0) {
      sm = v->producer;
      side = s;
    }
  }
  if (!sm || sm->n_inputs != 1) return false;
  OValue *x = sm->inputs[0], *additive = NULL, *masked = NULL;
  if (softmax_axis(sm) != x->type.rank - 1 || !og_single_use(x)) return false;
  ONode *add = fm_def(x, ONNX_Add);
  if (add) {
    additive = add->inputs[1];
    x = masked = add->inputs[0];
    if (!broadcasts_into(additive, x) || !same_shape(add->outputs[0], x) || !og_single_use(x) ||
        additive->type.et != x->type.et)
      return false;
  }
  /* up to the scores' MatMul: Reshapes, Transposes and splat factors */
  const ONode *up[8];
  int n_up = 0;
  double scale = 1;
  while (!og_is(x->producer, ONNX_MatMul)) {
    ONode *n = x->producer;
    double k;
    if (og_is(n, ONNX_Reshape) || og_is(n, ONNX_Transpose)) {
      if (n_up == 8) return false;
      up[n_up++] = n;
      x = n->inputs[0];
    } else if ((og_is(n, ONNX_Mul) || og_is(n, ONNX_Div)) && fm_splat(c, n->inputs[1], &k) &&
               broadcasts_into(n->inputs[1], n->inputs[0]) && same_shape(x, n->inputs[0]) &&
               isfinite(k) && k != 0) {
      scale *= og_is(n, ONNX_Div) ? 1.0 / k : k;
      x = n->inputs[0];
    } else {
      return false;
    }
    if (!og_single_use(x)) return false;
  }
  ONode *qk = x->producer;
  OValue *q = qk->inputs[0], *kt = qk->inputs[1];
  if (!rank4(q) || !rank4(kt) || !rank4(x) || !fm_kernel_type(q->type.et, FM_F32)) return false;
  if (kt->type.et != q->type.et || root->outputs[0]->type.et != q->type.et) return false;
  const ODim *qd = q->type.dims, *kd = kt->type.dims;
  if (!og_same_dim(qd[0], kd[0]) || !og_same_dim(qd[1], kd[1]) || !og_same_dim(qd[3], kd[2]))
    return false;
  if (qd[1].value < 1 || qd[2].value < 1 || qd[3].value < 1 || kd[3].value < 1) return false;

  /* the scores [b,h,m,s] as atoms, through the moves */
  Atoms at = {.n = 0, .sym = qd[0]};
  Layout l = {.rank = 4};
  int ab = -1, ah = -1, am, as;
  if (qd[0].value != 1) ab = atom_new(&at, qd[0].value < 1 ? -1 : qd[0].value);
  if (qd[1].value != 1) ah = atom_new(&at, qd[1].value);
  am = qd[2].value != 1 ? atom_new(&at, qd[2].value) : -1;
  as = atom_new(&at, kd[3].value);
  if (kd[3].value == 1 || am < 0) return false;
  int ids[4] = {ab, ah, am, as};
  for (int i = 0; i < 4; i++) {
    l.n[i] = ids[i] >= 0;
    l.atom[i][0] = ids[i];
  }
  for (int i = n_up - 1; i >= 0; i--)
    if (!layout_step(&at, &l, up[i])) return false;
  if (!axis_is(&at, &l, l.rank - 1, &as, 1)) return false;
  Layout at_mask = l;
  for (int i = n_down - 1; i >= 0; i--)
    if (!layout_step(&at, &l, down[i])) return false;
  /* P' is [b,h,M',s] (root = P' V) or [b,h,s,M'] (root = Vt P'), M' the
   * parts of m in some order */
  int m_parts[MAX_ATOMS], mp[MAX_ATOMS];
  int n_m = axis_atoms(&at, &(Layout){.rank = 1, .n = {1}, .atom = {{am}}}, 0, m_parts);
  if (l.rank != 4 || n_m < 1 || !axis_is(&at, &l, 0, &ab, ab >= 0) ||
      !axis_is(&at, &l, 1, &ah, ah >= 0) || !axis_is(&at, &l, side == 0 ? 3 : 2, &as, 1))
    return false;
  int m_axis = side == 0 ? 2 : 3;
  if (axis_atoms(&at, &l, m_axis, mp) != n_m) return false;
  int64_t q_perm[MAX_ATOMS];
  for (int i = 0; i < n_m; i++) {
    q_perm[i] = -1;
    for (int j = 0; j < n_m; j++)
      if (m_parts[j] == mp[i]) q_perm[i] = j;
    if (q_perm[i] < 0) return false;
  }
  OValue *vv = root->inputs[1 - side];
  const ODim *vd = vv->type.dims, *pd = root->inputs[side]->type.dims;
  if (!rank4(vv) || vv->type.et != q->type.et || !og_same_dim(vd[0], pd[0]) ||
      !og_same_dim(vd[1], pd[1]) || !og_same_dim(vd[side == 0 ? 2 : 3], kd[3]))
    return false;
  if (attention_op && additive && !(additive = kernel_safe_mask(c, g, root, additive, ms)))
    return false;

  /* (the packed form's walks may split atoms: undone when it fails) */
  Atoms before = at;
  if (attention_op && packed_grouped(c, g, root, side, &at, m_parts, mp, n_m, ab, ah, as, q, kt,
                                     vv, additive, masked, &at_mask, scale, ms))
    return true;
  at = before;

  /* the mask moved to [b|1, h|1, M', s|1] */
  OValue *mask = NULL;
  const int *groups[4] = {&ab, &ah, mp, &as};
  int group_n[4] = {ab >= 0, ah >= 0, n_m, 1};
  ODim group_dims[4] = {qd[0], qd[1], qd[2], kd[3]};
  if (additive && !(mask = regrouped_mask(c, g, root, additive, masked, &at, &at_mask, groups,
                                          group_n, group_dims, attention_op, ms)))
    return false;

  /* Q with its query axis in M''s order; K and V as Attention takes them */
  OValue *q_in = q;
  bool q_moved = false;
  for (int i = 0; i < n_m; i++) q_moved |= q_perm[i] != i;
  if (q_moved && n_m + 3 > MAX_RANK) return false;
  if (q_moved) {
    int64_t sizes[MAX_ATOMS + 3], perm[MAX_ATOMS + 3];
    ODim dims[MAX_ATOMS + 3];
    int n = 0;
    for (int i = 0; i < 2; i++, n++) { /* b (0: copied), h */
      sizes[n] = qd[i].value < 1 ? 0 : qd[i].value;
      dims[n] = qd[i];
      perm[n] = n;
    }
    for (int i = 0; i < n_m; i++, n++) {
      sizes[n] = at.size[m_parts[i]];
      dims[n] = (ODim){sizes[n], NULL};
      perm[n] = 2 + q_perm[i];
    }
    sizes[n] = qd[3].value;
    dims[n] = qd[3];
    perm[n] = n;
    n++;
    int64_t to[4] = {0, qd[1].value, qd[2].value, qd[3].value};
    q_in = rearranged(c, g, root, q, n, sizes, dims, perm, 4, to, qd);
  }
  static const int64_t swap_last[4] = {0, 1, 3, 2};
  OValue *v_in = vv;
  if (side == 1) {
    ODim v_dims[4] = {vd[0], vd[1], vd[3], vd[2]};
    v_in = new_node(c, g, root, ONNX_Transpose, &vv, 1, vv->type.et, 4, v_dims);
    og_attr_ints(c, v_in->producer, "perm", swap_last, 4);
  }
  const ODim *rd = root->outputs[0]->type.dims;
  ODim o_dims[4] = {rd[0], rd[1], rd[side == 0 ? 2 : 3], rd[side == 0 ? 3 : 2]};
  OValue *out;
  if (attention_op) {
    ODim k_dims[4] = {kd[0], kd[1], kd[3], kd[2]};
    OValue *k_in = new_node(c, g, root, ONNX_Transpose, &kt, 1, kt->type.et, 4, k_dims);
    og_attr_ints(c, k_in->producer, "perm", swap_last, 4);
    OValue *in[4] = {q_in, k_in, v_in, mask};
    out = new_node(c, g, root, ONNX_Attention, in, mask ? 4 : 3, q->type.et, 4, o_dims);
    og_attr_float(c, out->producer, "scale", (float)scale);
  } else {
    ODim s_dims[4] = {qd[0], qd[1], qd[2], kd[3]};
    OValue *qk_in[2] = {q_in, kt};
    OValue *scores = new_node(c, g, root, ONNX_MatMul, qk_in, 2, q->type.et, 4, s_dims);
    if (scale != 1) {
      OValue *mul_in[2] = {scores, scalar(c, g, "attention_scale", q->type.et, scale)};
      scores = new_node(c, g, root, ONNX_Mul, mul_in, 2, q->type.et, 4, s_dims);
    }
    if (mask) {
      OValue *add_in[2] = {scores, mask};
      scores = new_node(c, g, root, ONNX_Add, add_in, 2, q->type.et, 4, s_dims);
    }
    OValue *probs = new_node(c, g, root, ONNX_Softmax, &scores, 1, q->type.et, 4, s_dims);
    og_attr_int(c, probs->producer, "axis", 3);
    OValue *pv_in[2] = {probs, v_in};
    out = new_node(c, g, root, ONNX_MatMul, pv_in, 2, q->type.et, 4, o_dims);
  }
  if (side == 0) {
    fm_rewrite(c, g, root, ONNX_Identity, &out, 1);
    return true;
  }
  fm_rewrite(c, g, root, ONNX_Transpose, &out, 1);
  og_attr_ints(c, root, "perm", swap_last, 4);
  return true;
}

int pass_fuse_attention(Ctx *c, OModel *m) {
  bool attention_op = m->opset >= 23;
  OGraph *g = m->graph;
  Masks ms = {.n = 0};
  bool changed = false;
  int n = g->nodes.len; /* the nodes appended below are no roots */
  for (int i = 0; i < n; i++) {
    ONode *root = g->nodes.items[i];
    if (!root->dead)
      changed |= (attention_op && try_attention(c, g, root, &ms)) ||
                 try_grouped_attention(c, g, root, attention_op, &ms);
  }
  if (!changed) return 0;
  fm_sweep(g);
  og_toposort(c, g);
  return 0;
}
