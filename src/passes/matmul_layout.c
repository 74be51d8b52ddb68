/* matmul_layout.c - MatMuls whose layout costs a Transpose of their input or
 * output get the layout built into their operands instead.
 *
 * dot_general orders its result (batch, lhs free, rhs free); an einsum that
 * wants another order gets a Transpose of the result.  Two such Transposes
 * are large in keras-hub's Gemma and Llama attention (jax.nn's grouped
 * dot_product_attention: 28-30 % of Gemma's onnxruntime kernel time):
 *
 * Scores in key-major order.  Z = MatMul(A, B), A [..., M, K], B [..., K, N],
 * N split by a Reshape into n_1..n_k and a Transpose that keeps the batch
 * axes and moves M last, the n_i in any order before it:
 *
 *   Transpose_p(Reshape(MatMul(A, B)))
 *     = Reshape(MatMul(B', Transpose(A, swap)))
 *     B' = Reshape(Transpose(Reshape(B, [..., K, n_1..n_k]), [..., n_p.., K]), [..., N, K])
 *
 * The Transposes move B and A (N x K and M x K per batch) instead of the
 * M x N product; B's new Transpose usually composes with the one that made
 * B (simplify merges the Reshapes between them, then the Transposes).
 * With a symbolic sequence length no constant Reshape splits the product
 * back, so it is made split instead: A^T gets unit axes that MatMul
 * broadcasts over the n_i (key_major_per_split).
 *
 * Merged axes permuted before a weight.  Z = MatMul(Reshape(Transpose(x, p)),
 * W) with W a constant [K, N] and the Reshape merging the axes p permutes:
 *
 *   MatMul(Reshape(x), W') where W' is W with its rows permuted by p
 *
 * (W' as Reshape/Transpose/Reshape of W, which fold computes.)
 *
 * The weight on the left.  A vmapped Equinox Linear computes W @ x per
 * example: MatMul(W, Reshape(Transpose(x, [r-1, 0, ..]))) split back into
 * [N, d0..] and transposed to [d0.., N] by the next layer.  It becomes
 * x W^T = Gemm(x, W, transB=1) (x flattened to 2-D), seen as [N, d0..]
 * through a Transpose, which the transpose pass then pushes on until it
 * cancels with the next one.
 */
#include "passes/passes.h"

#include <string.h>

static const OAttr *perm_of(const ONode *t) {
  const OAttr *p = og_get_attr(t, "perm");
  return p && p->n == t->inputs[0]->type.rank && p->n <= MAX_RANK ? p : NULL;
}

/* A new node of one output typed et with static dims and, where given,
 * the dims of `lead` for the first n_lead axes. */
static OValue *new_node(Ctx *c, OGraph *g, const ONode *at, OnnxOp op, OValue *const *in, int n_in,
                        ElemType et, int rank, const ODim *lead, int n_lead, const int64_t *dims) {
  ONode *n = og_node(c, g, onnx_op_info[op].name, in, n_in, 1);
  n->origin = at->origin;
  OValue *v = n->outputs[0];
  v->type = (OType){et, rank, arena_alloc(c->arena, sizeof(ODim) * (size_t)(rank + 1))};
  for (int i = 0; i < rank; i++) v->type.dims[i] = i < n_lead ? lead[i] : (ODim){dims[i], NULL};
  return v;
}

/* A new node of one output typed et with the dims `dims`. */
static OValue *typed_node(Ctx *c, OGraph *g, const ONode *at, OnnxOp op, OValue *const *in,
                          int n_in, ElemType et, int rank, const ODim *dims) {
  ONode *n = og_node(c, g, onnx_op_info[op].name, in, n_in, 1);
  n->origin = at->origin;
  OValue *v = n->outputs[0];
  v->type = (OType){et, rank, arena_alloc(c->arena, sizeof(ODim) * (size_t)(rank + 1))};
  memcpy(v->type.dims, dims, sizeof(ODim) * (size_t)rank);
  return v;
}

/* The shape vector [lead..., tail...] with the one dynamic lead dim as -1
 * (not 0, so that simplify may compose the Reshape with the one before);
 * false when more than one lead dim is dynamic. */
static bool shape_vector(const ODim *lead, int n_lead, const int64_t *tail, int n_tail,
                         int64_t *out) {
  int dynamic = 0;
  for (int i = 0; i < n_lead; i++) {
    out[i] = lead[i].value;
    if (out[i] < 0) {
      out[i] = -1;
      dynamic++;
    }
  }
  for (int i = 0; i < n_tail; i++) out[n_lead + i] = tail[i];
  return dynamic <= 1;
}

static OValue *reshape_tail(Ctx *c, OGraph *g, const ONode *at, OValue *x, const ODim *lead,
                            int n_lead, const int64_t *tail, int n_tail) {
  int64_t shape[MAX_RANK + 1];
  int rank = n_lead + n_tail;
  shape_vector(lead, n_lead, tail, n_tail, shape);
  OValue *in[2] = {x, og_init_i64s(c, g, "shape", rank, shape)};
  return new_node(c, g, at, ONNX_Reshape, in, 2, x->type.et, rank, lead, n_lead, shape);
}

static OValue *transpose(Ctx *c, OGraph *g, const ONode *at, OValue *x, const int64_t *perm) {
  int rank = x->type.rank;
  ODim dims[MAX_RANK];
  int64_t none[MAX_RANK];
  for (int i = 0; i < rank; i++) {
    dims[i] = x->type.dims[perm[i]];
    none[i] = dims[i].value;
  }
  OValue *t = new_node(c, g, at, ONNX_Transpose, &x, 1, x->type.et, rank, dims, rank, none);
  og_attr_ints(c, t->producer, "perm", perm, rank);
  return t;
}

/* ---- scores in key-major order ------------------------------------------- */

/* A shape vector of `len` elements from a node's output (Shape, Div, Concat). */
static OValue *shape_node(Ctx *c, OGraph *g, const ONode *at, OnnxOp op, OValue *const *in,
                          int n_in, int64_t len) {
  ODim d = {len, NULL};
  return typed_node(c, g, at, op, in, n_in, ET_I64, 1, &d);
}

/* Dims [from, to) of x at run time. */
static OValue *dims_of(Ctx *c, OGraph *g, const ONode *at, OValue *x, int from, int to) {
  OValue *s = shape_node(c, g, at, ONNX_Shape, &x, 1, to - from);
  og_attr_int(c, s->producer, "start", from);
  og_attr_int(c, s->producer, "end", to);
  return s;
}

/* The target [lead.., K, n_1..n_k] of B [lead.., K, N] split, computed at
 * run time where no constant one is exact at every size (the lead copied
 * beside a -1 is 0 / 0 when the batch is empty): the lead dims read from B,
 * the one symbolic n_s as N over the static others.  NULL when two n are
 * symbolic.  For a Reshape with allowzero = 1. */
static OValue *split_target(Ctx *c, OGraph *g, const ONode *at, OValue *b, int nb, int64_t kk,
                            const ODim *n, int k) {
  OValue *parts[MAX_RANK + 2];
  int n_parts = 0, symbolic = -1;
  int64_t others = 1, statics[MAX_RANK + 1];
  for (int i = 0; i < k; i++) {
    if (n[i].value >= 1) others *= n[i].value;
    else if (symbolic >= 0) return NULL;
    else symbolic = i;
  }
  if (symbolic < 0) return NULL;
  if (nb > 0) parts[n_parts++] = dims_of(c, g, at, b, 0, nb);
  statics[0] = kk;
  int n_statics = 1;
  for (int i = 0; i <= k; i++) {
    if (i < k && i != symbolic) {
      statics[n_statics++] = n[i].value;
      continue;
    }
    if (n_statics) parts[n_parts++] = og_init_i64s(c, g, "shape", n_statics, statics);
    n_statics = 0;
    if (i == k) break;
    OValue *div_in[2] = {dims_of(c, g, at, b, nb + 1, nb + 2), og_init_i64s(c, g, "size", 1, &others)};
    parts[n_parts++] = shape_node(c, g, at, ONNX_Div, div_in, 2, 1);
  }
  OValue *shape = shape_node(c, g, at, ONNX_Concat, parts, n_parts, nb + 1 + k);
  og_attr_int(c, shape->producer, "axis", 0);
  return shape;
}

/* try_key_major when N's split or M is symbolic (a dynamic sequence
 * length): no constant Reshape takes the [.., N, M] product to the
 * Transpose's output [.., n_p.., M] when two of its dims are symbolic
 * (the lead's copies are at other axes).  So the product is made in that
 * shape: B split and transposed to [.., n_p.., K], times A^T with unit
 * axes for the n_p but the last, which MatMul broadcasts.
 *   Transpose_p(Reshape(MatMul(A, B)))
 *     = MatMul(Transpose(Reshape(B, [.., K, n_1..n_k])), Unsqueeze(A^T)) */
static bool key_major_per_split(Ctx *c, OGraph *g, ONode *mm, ONode *t, const OAttr *perm,
                                int k) {
  OValue *a = mm->inputs[0], *b = mm->inputs[1];
  const OValue *y5 = t->inputs[0];
  int r = a->type.rank, nb = r - 2, ry = y5->type.rank;
  if (ry + 1 > MAX_RANK) return false;
  ODim dims[MAX_RANK];
  int64_t shape[MAX_RANK], q[MAX_RANK];
  /* B [.., K, N] -> [.., K, n_1..n_k] */
  for (int i = 0; i < nb; i++) dims[i] = b->type.dims[i];
  dims[nb] = a->type.dims[r - 1];
  for (int i = 0; i < k; i++) dims[nb + 1 + i] = y5->type.dims[r - 1 + i];
  bool constant = og_reshape_target(b, dims, nb + 1 + k, shape);
  OValue *target = constant ? og_init_i64s(c, g, "shape", nb + 1 + k, shape)
                            : split_target(c, g, mm, b, nb, dims[nb].value, dims + nb + 1, k);
  if (!target) return false;
  OValue *b_in[2] = {b, target};
  OValue *b_split = typed_node(c, g, mm, ONNX_Reshape, b_in, 2, b->type.et, nb + 1 + k, dims);
  if (!constant) og_attr_int(c, b_split->producer, "allowzero", 1);
  /* -> [.., n_p.., K] */
  for (int i = 0; i < nb; i++) q[i] = i;
  for (int i = 0; i < k; i++) q[nb + i] = perm->ints[nb + i] - (r - 1) + nb + 1;
  q[nb + k] = nb;
  OValue *b_t = transpose(c, g, mm, b_split, q);
  /* A^T [.., K, M] with k - 1 unit axes before K */
  int64_t swap[MAX_RANK], units[MAX_RANK];
  for (int i = 0; i < r; i++) swap[i] = i;
  swap[r - 1] = r - 2;
  swap[r - 2] = r - 1;
  OValue *a_t = transpose(c, g, mm, a, swap);
  if (k > 1) {
    for (int i = 0; i < k - 1; i++) units[i] = nb + i;
    for (int i = 0; i < nb; i++) dims[i] = a_t->type.dims[i];
    for (int i = 0; i < k - 1; i++) dims[nb + i] = (ODim){1, NULL};
    dims[nb + k - 1] = a_t->type.dims[nb];
    dims[nb + k] = a_t->type.dims[nb + 1];
    OValue *u_in[2] = {a_t, og_init_i64s(c, g, "axes", k - 1, units)};
    a_t = typed_node(c, g, mm, ONNX_Unsqueeze, u_in, 2, a->type.et, nb + k + 1, dims);
  }
  OValue *mm_in[2] = {b_t, a_t};
  fm_rewrite(c, g, t, ONNX_MatMul, mm_in, 2);
  return true;
}

static bool try_key_major(Ctx *c, OGraph *g, ONode *mm) {
  OValue *z = mm->outputs[0], *a = mm->inputs[0], *b = mm->inputs[1];
  int r = z->type.rank;
  if (r < 3 || a->type.rank != r || b->type.rank != r || !og_single_use(z)) return false;
  ONode *rs = NULL, *t = NULL;
  for (int i = 0; i < g->nodes.len && !rs; i++) {
    ONode *n = g->nodes.items[i];
    for (int j = 0; !n->dead && j < n->n_inputs; j++)
      if (n->inputs[j] == z) rs = n;
  }
  if (!og_is(rs, ONNX_Reshape) || !og_single_use(rs->outputs[0])) return false;
  OValue *y5 = rs->outputs[0];
  for (int i = 0; i < g->nodes.len && !t; i++) {
    ONode *n = g->nodes.items[i];
    for (int j = 0; !n->dead && j < n->n_inputs; j++)
      if (n->inputs[j] == y5) t = n;
  }
  const OAttr *perm = og_is(t, ONNX_Transpose) ? perm_of(t) : NULL;
  int ry = y5->type.rank, k = ry - r + 1; /* N split into k axes */
  if (!perm || k < 2 || ry > MAX_RANK) return false;
  const ODim *zd = z->type.dims, *yd = y5->type.dims;
  /* the Reshape keeps the batch axes and M, and splits N into known dims
   * (whose product is N: the Reshape is valid) */
  for (int i = 0; i < r - 1; i++)
    if (!og_same_dim(zd[i], yd[i])) return false;
  int64_t n_total = 1, kk = a->type.dims[r - 1].value;
  bool split_static = true;
  for (int i = r - 1; i < ry; i++) {
    if (yd[i].value < 1 && !(yd[i].value < 0 && yd[i].param)) return false;
    split_static &= yd[i].value >= 1;
    if (yd[i].value >= 1) n_total *= yd[i].value;
  }
  if (kk < 1 || !og_same_dim(b->type.dims[r - 2], a->type.dims[r - 1])) return false;
  if (split_static && zd[r - 1].value != n_total) return false;
  /* batch axes in place, M (axis r-2) last */
  for (int i = 0; i < r - 2; i++)
    if (perm->ints[i] != i) return false;
  if (perm->ints[ry - 1] != r - 2) return false;
  /* the batch dims of A and B are the product's (no broadcasting) */
  for (int i = 0; i < r - 2; i++)
    if (!og_same_dim(a->type.dims[i], zd[i]) || !og_same_dim(b->type.dims[i], zd[i])) return false;

  const ODim *lead = zd;
  int nb = r - 2;
  const ODim *td = t->outputs[0]->type.dims;
  int64_t out_shape[MAX_RANK + 1], out_tail[MAX_RANK];
  for (int i = nb; i < ry; i++) out_tail[i - nb] = td[i].value;
  if (!split_static || td[ry - 1].value < 1 || !shape_vector(lead, nb, out_tail, ry - nb, out_shape))
    return key_major_per_split(c, g, mm, t, perm, k);
  /* B' = Reshape(Transpose(Reshape(B, [.., K, n..]), [.., n_p.., K]), [.., N, K]) */
  int64_t split[MAX_RANK], q[MAX_RANK];
  split[0] = kk;
  for (int i = 0; i < k; i++) split[1 + i] = yd[r - 1 + i].value;
  OValue *b_split = reshape_tail(c, g, mm, b, lead, nb, split, k + 1);
  for (int i = 0; i < nb; i++) q[i] = i;
  for (int i = 0; i < k; i++) q[nb + i] = perm->ints[nb + i] - (r - 1) + nb + 1;
  q[nb + k] = nb;
  OValue *b_t = transpose(c, g, mm, b_split, q);
  int64_t nk[2] = {n_total, kk};
  OValue *b2 = reshape_tail(c, g, mm, b_t, lead, nb, nk, 2);
  int64_t swap[MAX_RANK];
  for (int i = 0; i < r; i++) swap[i] = i;
  swap[r - 1] = r - 2;
  swap[r - 2] = r - 1;
  OValue *a_t = transpose(c, g, mm, a, swap);
  /* the product [.., N, M] reshaped to the Transpose's output */
  OValue *mm_in[2] = {b2, a_t};
  int64_t nm[2] = {n_total, zd[r - 2].value};
  ODim pd[MAX_RANK];
  for (int i = 0; i < r; i++) pd[i] = i < nb ? lead[i] : (ODim){nm[i - nb], NULL};
  ONode *prod = og_node(c, g, "MatMul", mm_in, 2, 1);
  prod->origin = mm->origin;
  OValue *pv = prod->outputs[0];
  pv->type = (OType){z->type.et, r, arena_alloc(c->arena, sizeof(ODim) * (size_t)(r + 1))};
  memcpy(pv->type.dims, pd, sizeof(ODim) * (size_t)r);
  OValue *rs_in[2] = {pv, og_init_i64s(c, g, "shape", ry, out_shape)};
  fm_rewrite(c, g, t, ONNX_Reshape, rs_in, 2);
  return true;
}

/* ---- merged axes permuted before a weight -------------------------------- */

static bool try_weight_rows(Ctx *c, OGraph *g, ONode *mm) {
  OValue *rv = mm->inputs[0], *w = mm->inputs[1];
  ONode *rs = fm_def(rv, ONNX_Reshape);
  if (!rs || !og_single_use(rv) || !og_const_data(w) || w->type.rank != 2) return false;
  OValue *tv = rs->inputs[0];
  ONode *t = fm_def(tv, ONNX_Transpose);
  const OAttr *perm = t ? perm_of(t) : NULL;
  if (!perm || !og_single_use(tv)) return false;
  int rt = tv->type.rank, rr = rv->type.rank;
  int j = rr - 1; /* the axes j.. of the Transpose merge into the last axis */
  if (j < 0 || j >= rt - 1) return false;
  for (int i = 0; i < j; i++)
    if (!og_same_dim(tv->type.dims[i], rv->type.dims[i]) || perm->ints[i] != i) return false;
  int64_t merged = 1, tail[MAX_RANK + 1], q[MAX_RANK + 1];
  for (int i = j; i < rt; i++) {
    if (tv->type.dims[i].value < 1) return false;
    tail[i - j] = tv->type.dims[i].value;
    merged *= tail[i - j];
  }
  int nt = rt - j;
  if (merged != rv->type.dims[rr - 1].value || merged != w->type.dims[0].value) return false;
  int64_t n_out = w->type.dims[1].value;
  /* W' rows in x's order: W' = Reshape(Transpose(Reshape(W, [t_j.., N]), q), [K, N])
   * with q[a - j] = p^-1[a] - j */
  for (int i = j; i < rt; i++) q[perm->ints[i] - j] = i - j;
  q[nt] = nt;
  tail[nt] = n_out;
  OValue *w_in[2] = {w, og_init_i64s(c, g, "shape", nt + 1, tail)};
  OValue *w_split = new_node(c, g, mm, ONNX_Reshape, w_in, 2, w->type.et, nt + 1, NULL, 0, tail);
  OValue *w_t = transpose(c, g, mm, w_split, q);
  int64_t kn[2] = {merged, n_out};
  OValue *w2_in[2] = {w_t, og_init_i64s(c, g, "shape", 2, kn)};
  OValue *w2 = new_node(c, g, mm, ONNX_Reshape, w2_in, 2, w->type.et, 2, NULL, 0, kn);
  /* Reshape(x) to the merged shape, W' in place of W */
  og_set_input(rs, 0, t->inputs[0]);
  og_set_input(mm, 1, w2);
  return true;
}

/* ---- the weight on the left ---------------------------------------------- */

/* The one live node reading v, or NULL. */
static ONode *reader_of(OGraph *g, const OValue *v) {
  if (!og_single_use(v)) return NULL;
  for (int i = 0; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    for (int j = 0; !n->dead && j < n->n_inputs; j++)
      if (n->inputs[j] == v) return n;
  }
  return NULL;
}

static bool try_weight_left(Ctx *c, OGraph *g, ONode *mm) {
  OValue *w = mm->inputs[0], *yv = mm->inputs[1], *z = mm->outputs[0];
  ONode *rs = fm_def(yv, ONNX_Reshape);
  /* (Y may feed several projections: rewritten one by one, it dies) */
  if (!rs || !og_const_data(w) || w->type.rank != 2 || z->type.rank != 2) return false;
  ONode *t = fm_def(rs->inputs[0], ONNX_Transpose);
  const OAttr *perm = t ? perm_of(t) : NULL;
  if (!perm) return false;
  OValue *x = t->inputs[0];
  int r = x->type.rank;
  if (r < 2 || perm->ints[0] != r - 1) return false;
  for (int i = 1; i < r; i++)
    if (perm->ints[i] != i - 1) return false;
  int64_t k = x->type.dims[r - 1].value;
  if (k < 1 || w->type.dims[1].value != k || yv->type.dims[0].value != k) return false;
  /* the product split back into [N, d0..]: as x's leading dims */
  ONode *split = reader_of(g, z);
  if (!og_is(split, ONNX_Reshape)) return false;
  OValue *sv = split->outputs[0];
  if (sv->type.rank != r || !og_same_dim(sv->type.dims[0], z->type.dims[0])) return false;
  for (int i = 1; i < r; i++)
    if (!og_same_dim(sv->type.dims[i], x->type.dims[i - 1])) return false;
  /* x W^T [d0.., N] as Gemm(x, W, transB=1), which reads W as it is (a
   * transposed copy of a large weight would double the memory a conversion
   * takes), x flattened to 2-D around it; seen as [N, d0..] through a
   * Transpose */
  int64_t lead_shape[MAX_RANK + 1], n_out = w->type.dims[0].value, flat[2] = {-1, k};
  /* the product's shape [d0.., N]: a constant, or read from x when more than
   * one of x's dims is dynamic (B and T: no constant is exact at every size) */
  bool constant = shape_vector(x->type.dims, r - 1, &n_out, 1, lead_shape);
  OValue *x2 = x;
  if (r != 2) {
    OValue *rin[2] = {x, og_init_i64s(c, g, "shape", 2, flat)};
    ODim fd[2] = {{-1, NULL}, {k, NULL}};
    x2 = new_node(c, g, mm, ONNX_Reshape, rin, 2, x->type.et, 2, fd, 2, flat);
  }
  OValue *gin[2] = {x2, w};
  ODim gd[2] = {x2->type.dims[0], w->type.dims[0]};
  int64_t gnone[2] = {gd[0].value, gd[1].value};
  OValue *prod = new_node(c, g, mm, ONNX_Gemm, gin, 2, z->type.et, 2, gd, 2, gnone);
  og_attr_int(c, prod->producer, "transB", 1);
  if (r != 2) {
    ODim dims[MAX_RANK];
    for (int i = 0; i < r; i++) dims[i] = i < r - 1 ? x->type.dims[i] : w->type.dims[0];
    OValue *target;
    if (constant) {
      target = og_init_i64s(c, g, "shape", r, lead_shape);
    } else {
      OValue *parts[2] = {dims_of(c, g, mm, x, 0, r - 1), og_init_i64s(c, g, "shape", 1, &n_out)};
      target = shape_node(c, g, mm, ONNX_Concat, parts, 2, r);
      og_attr_int(c, target->producer, "axis", 0);
    }
    OValue *rin[2] = {prod, target};
    prod = typed_node(c, g, mm, ONNX_Reshape, rin, 2, z->type.et, r, dims);
    if (!constant) og_attr_int(c, prod->producer, "allowzero", 1);
  }
  int64_t back[MAX_RANK];
  back[0] = r - 1;
  for (int i = 1; i < r; i++) back[i] = i - 1;
  fm_rewrite(c, g, split, ONNX_Transpose, &prod, 1);
  og_attr_ints(c, split, "perm", back, r);
  return true;
}

int pass_matmul_layout(Ctx *c, OModel *m) {
  OGraph *g = m->graph;
  bool changed = false;
  int n = g->nodes.len;
  og_recount_uses(g);
  for (int i = 0; i < n; i++) {
    ONode *mm = g->nodes.items[i];
    if (!og_is(mm, ONNX_MatMul) || mm->n_inputs != 2) continue;
    if (try_weight_rows(c, g, mm) || try_weight_left(c, g, mm)) changed = true;
    else if (try_key_major(c, g, mm)) changed = true;
  }
  if (!changed) return 0;
  fm_sweep(g);
  og_toposort(c, g);
  return 0;
}
