/* transpose.c - moves Transposes through elementwise ops until they meet and
 * cancel.
 *
 * Flax convolutions and pools are NHWC while ONNX's are NCHW, so the lowering
 * wraps each Conv in Transpose(NHWC->NCHW) ... Transpose(NCHW->NHWC).  Between
 * two convolutions sit elementwise ops (bias add, activation), so the pair
 * NCHW->NHWC, NHWC->NCHW never meets directly.  This pass pushes a Transpose
 * down through its single elementwise consumer:
 *
 *   U(Transpose(x, p))                 = Transpose(U(x), p)
 *   B(Transpose(x, p), k)              = Transpose(B(x, Transpose(k, p^-1)), p)
 *   B(Transpose(x, p), Transpose(y, p)) = Transpose(B(x, y), p)
 *
 * (k a constant; a lower-rank k is first given the full rank, as numpy
 * broadcasting would).  The pipeline runs the pass a second time after the
 * fusions, when it also moves a Transpose through a fused Softmax or
 * LogSoftmax (the axis is renamed) and a LayerNormalization whose leading,
 * unnormalised axes it leaves in place (Scale and B are transposed): the
 * NHWC LayerNorm between two NCHW Convs.  A Pad is crossed in both runs (its
 * pads are renamed).  The simplify pass then composes
 * adjacent Transposes and drops identities, and fold computes Transpose(k).
 * Nodes are re-sorted topologically at the end, since a moved Transpose now
 * follows its consumer.  A last pass (pass_unit_transposes, at the end of
 * this file) turns the Transposes left that move only axes of size 1 into
 * Reshapes.
 */
#include "passes/passes.h"

#include <string.h>

/* A Transpose commutes with an elementwise op (onnx_ops.def): of one input,
 * or of two that broadcast, the other one then transposed to match. */
static bool unary_elementwise(const ONode *n) {
  return n && !n->dead && n->n_inputs == 1 && n->n_outputs == 1 &&
         onnx_op_has(n->kind, ONNX_ELEMENTWISE);
}

static bool binary_elementwise(const ONode *n) {
  return n && !n->dead && n->n_inputs == 2 && n->n_outputs == 1 &&
         onnx_op_has(n->kind, ONNX_ELEMENTWISE | ONNX_BROADCASTS);
}

static const OAttr *perm_of(const ONode *t) {
  const OAttr *p = og_get_attr(t, "perm");
  return p && p->n <= MAX_RANK ? p : NULL;
}

static void set_perm_type(Ctx *c, OValue *dst, const OValue *src, const OAttr *perm) {
  dst->type.et = src->type.et;
  dst->type.rank = src->type.rank;
  if (src->type.rank != perm->n) {
    dst->type.rank = -1;
    return;
  }
  dst->type.dims = arena_alloc(c->arena, sizeof(ODim) * (size_t)perm->n);
  for (int i = 0; i < perm->n; i++) dst->type.dims[i] = src->type.dims[perm->ints[i]];
}

/* k as seen by B(x, .) once the Transpose is moved behind B: Transpose(k,
 * p^-1) after padding k's shape with leading 1s to the full rank. */
static OValue *untranspose_constant(Ctx *c, OGraph *g, ONode *at, OValue *k, const OAttr *perm) {
  int rank = perm->n;
  if (k->type.rank < 0 || k->type.rank > rank) return NULL;
  OValue *full = k;
  if (k->type.rank < rank) {
    int64_t shape[MAX_RANK];
    for (int i = 0; i < rank; i++) {
      int ki = i - (rank - k->type.rank);
      shape[i] = ki >= 0 ? k->type.dims[ki].value : 1;
      if (shape[i] < 0) return NULL;
    }
    int64_t *copy = arena_alloc(c->arena, sizeof(int64_t) * (size_t)rank);
    memcpy(copy, shape, sizeof(int64_t) * (size_t)rank);
    int64_t r = rank;
    Data d = {DATA_RAW, copy, sizeof(int64_t) * (size_t)rank};
    OValue *shape_v = og_init(c, g, "shape", ET_I64, 1, &r, d);
    OValue *in[2] = {k, shape_v};
    ONode *reshape = og_node(c, g, onnx_op_info[ONNX_Reshape].name, in, 2, 1);
    reshape->origin = at->origin;
    og_set_type(c, reshape->outputs[0], k->type.et, rank, shape);
    full = reshape->outputs[0];
  }
  int64_t inv[MAX_RANK];
  for (int i = 0; i < rank; i++) inv[perm->ints[i]] = i;
  ONode *t = og_node(c, g, onnx_op_info[ONNX_Transpose].name, &full, 1, 1);
  t->origin = at->origin;
  og_attr_ints(c, t, "perm", inv, rank);
  OAttr fake = {.ints = inv, .n = rank};
  set_perm_type(c, t->outputs[0], full, &fake);
  return t->outputs[0];
}

/* Moves Transpose t (output tv) behind its consumer u.  u's inputs are
 * already rewritten by the caller to read the un-transposed values. */
static void move_behind(Ctx *c, ONode *t, ONode *u) {
  OValue *uout = u->outputs[0];
  OValue *tin = t->inputs[0];
  /* u now computes in the un-transposed layout into the old Transpose
   * output value; t transposes that into u's old output value. */
  OValue *mid = t->outputs[0];
  u->outputs[0] = mid;
  mid->producer = u;
  const OAttr *perm = perm_of(t);
  int64_t inv[MAX_RANK];
  for (int i = 0; i < perm->n; i++) inv[perm->ints[i]] = i;
  OAttr fake = {.ints = inv, .n = perm->n};
  set_perm_type(c, mid, uout, &fake);
  if (mid->type.rank >= 0) mid->type.et = uout->type.et;
  else mid->type.et = ET_UNDEF;
  tin->n_uses--;
  t->inputs[0] = mid;
  t->outputs[0] = uout;
  uout->producer = t;
  mid->n_uses = 1;
  t->origin = u->origin;
}

/* The axis attribute of u in [0, rank), or -1 when out of range. */
static int64_t axis_of(const ONode *u, int rank) {
  const OAttr *ax = og_get_attr(u, "axis");
  int64_t a = ax ? ax->i : -1;
  if (a < -rank || a >= rank) return -1;
  return a < 0 ? a + rank : a;
}

/* Softmax and LogSoftmax normalise along one axis (opset >= 13), which the
 * Transpose only renames: S(Transpose(x, p), a) = Transpose(S(x, p[a]), p). */
static bool push_through_softmax(Ctx *c, ONode *t, ONode *u, const OAttr *perm) {
  int64_t a = axis_of(u, perm->n);
  if (u->n_inputs != 1 || u->n_outputs != 1 || a < 0) return false;
  og_attr_int(c, u, "axis", perm->ints[a]);
  u->inputs[0] = t->inputs[0];
  t->inputs[0]->n_uses++;
  move_behind(c, t, u);
  return true;
}

/* LayerNormalization normalises over the axes [a, rank).  A Transpose that
 * keeps every axis before a in place only reorders the normalised axes among
 * themselves: mean and variance are unchanged and only Scale and B, indexed
 * by those axes, move.  With q the permutation p restricted to them,
 * LN(Transpose(x, p), s, b) = Transpose(LN(x, Transpose(s, q^-1),
 * Transpose(b, q^-1)), p). */
static bool push_through_layernorm(Ctx *c, OGraph *g, ONode *t, ONode *u, const OAttr *perm) {
  int rank = perm->n;
  int64_t a = axis_of(u, rank);
  if (u->n_inputs < 2 || u->n_inputs > 3 || u->n_outputs != 1 || a < 0) return false;
  for (int i = 0; i < a; i++)
    if (perm->ints[i] != i) return false;
  int64_t tail[MAX_RANK];
  for (int i = (int)a; i < rank; i++) tail[i - a] = perm->ints[i] - a;
  OAttr tail_perm = {.ints = tail, .n = rank - (int)a};
  for (int j = 1; j < u->n_inputs; j++) {
    const OValue *k = u->inputs[j];
    if (!k) continue; /* B omitted */
    if (!k->is_init || k->type.rank < 0 || k->type.rank > tail_perm.n) return false;
    for (int d = 0; d < k->type.rank; d++)
      if (k->type.dims[d].value < 0) return false;
  }
  for (int j = 1; j < u->n_inputs; j++) {
    OValue *k = u->inputs[j];
    if (!k) continue;
    OValue *moved = untranspose_constant(c, g, u, k, &tail_perm);
    k->n_uses--;
    u->inputs[j] = moved;
    moved->n_uses++;
  }
  u->inputs[0] = t->inputs[0];
  t->inputs[0]->n_uses++;
  move_behind(c, t, u);
  return true;
}

/* ReduceX(Transpose(x, perm), axes) without keepdims, whose kept axes stay
 * in x's order (a global pool of NHWC data, summed over H and W): the
 * reduction reads x over perm[axes], and the Transpose disappears. */
static bool absorb_into_reduce(Ctx *c, OGraph *g, ONode *t, ONode *u, const OAttr *perm) {
  int64_t axes[MAX_RANK];
  bool keepdims, reduced[MAX_RANK] = {false};
  int n = fm_reduce_axes(c, u, axes, &keepdims);
  if (n <= 0 || keepdims || perm->n > MAX_RANK) return false;
  for (int i = 0; i < n; i++) reduced[axes[i]] = true;
  int64_t last = -1, mapped[MAX_RANK];
  for (int i = 0; i < perm->n; i++) {
    if (reduced[i]) continue;
    if (perm->ints[i] < last) return false; /* the kept axes would change order */
    last = perm->ints[i];
  }
  bool in_x[MAX_RANK] = {false};
  for (int i = 0; i < n; i++) in_x[perm->ints[axes[i]]] = true;
  int k = 0;
  for (int i = 0; i < perm->n; i++)
    if (in_x[i]) mapped[k++] = i; /* sorted */
  if (u->n_inputs >= 2 && u->inputs[1]) {
    og_set_input(u, 1, og_init_i64s(c, g, "axes", n, mapped));
  } else if (og_get_attr(u, "axes")) {
    og_attr_ints(c, u, "axes", mapped, n);
  } else {
    return false; /* all axes: nothing to map, but nothing is kept either */
  }
  OValue *tv = t->outputs[0];
  u->inputs[0] = t->inputs[0];
  t->inputs[0]->n_uses++;
  tv->n_uses--;
  if (tv->n_uses == 0 && !tv->is_output) {
    t->dead = true;
    t->inputs[0]->n_uses--;
  }
  return true;
}

/* Pad pads each axis on its own, so a Transpose only renames the axes:
 * Pad(Transpose(x, p), pads) = Transpose(Pad(x, pads'), p) with axis p[j]
 * of x padded as axis j was (Keras's ZeroPadding2D between NCHW Convs). */
static bool push_through_pad(Ctx *c, OGraph *g, ONode *t, ONode *u, const OAttr *perm) {
  int rank = perm->n;
  int64_t pads[2 * MAX_RANK], moved[2 * MAX_RANK];
  if (u->n_inputs < 2 || (u->n_inputs > 3 && u->inputs[3]) || u->n_outputs != 1 ||
      og_const_i64s(c, u->inputs[1], pads, 2 * MAX_RANK) != 2 * rank)
    return false;
  for (int j = 0; j < rank; j++) {
    moved[perm->ints[j]] = pads[j];
    moved[rank + perm->ints[j]] = pads[rank + j];
  }
  og_set_input(u, 1, og_init_i64s(c, g, "pads", 2 * rank, moved));
  u->inputs[0] = t->inputs[0];
  t->inputs[0]->n_uses++;
  move_behind(c, t, u);
  return true;
}

/* Transpose(Transpose(y, q), p) reads y with one permutation, q[p[i]]: then
 * the inner one may have one reader left, and move on (the shortcut of a
 * ResNet block reads the activations the padded path reads). */
static bool compose_with_producer(Ctx *c, ONode *t, const OAttr *perm) {
  ONode *p = t->inputs[0]->producer;
  const OAttr *inner = og_is(p, ONNX_Transpose) ? perm_of(p) : NULL;
  if (!inner || inner->n != perm->n) return false;
  int64_t composed[MAX_RANK];
  for (int i = 0; i < perm->n; i++) composed[i] = inner->ints[perm->ints[i]];
  OValue *mid = t->inputs[0];
  og_set_input(t, 0, p->inputs[0]);
  if (mid->n_uses == 0 && !mid->is_output) {
    p->dead = true;
    p->inputs[0]->n_uses--;
  }
  og_attr_ints(c, t, "perm", composed, perm->n);
  return true;
}

static bool push_one(Ctx *c, OGraph *g, ONode *t) {
  const OAttr *perm = perm_of(t);
  if (!perm) return false;
  if (compose_with_producer(c, t, perm)) return true;
  OValue *tv = t->outputs[0];
  ONode *u = og_only_reader(g, tv);
  if (!u) return false;
  if ((og_is(u, ONNX_Softmax) || og_is(u, ONNX_LogSoftmax)) && u->inputs[0] == tv)
    return push_through_softmax(c, t, u, perm);
  if (og_is(u, ONNX_LayerNormalization) && u->inputs[0] == tv)
    return push_through_layernorm(c, g, t, u, perm);
  if (onnx_op_has(u->kind, ONNX_REDUCES) && u->inputs[0] == tv)
    return absorb_into_reduce(c, g, t, u, perm);
  if (og_is(u, ONNX_Pad) && u->inputs[0] == tv) return push_through_pad(c, g, t, u, perm);
  if (unary_elementwise(u)) {
    u->inputs[0] = t->inputs[0];
    t->inputs[0]->n_uses++;
    move_behind(c, t, u);
    return true;
  }
  if (!binary_elementwise(u)) return false;
  int side = u->inputs[0] == tv ? 0 : 1;
  OValue *other = u->inputs[1 - side];
  ONode *ot = other->producer;
  OValue *replacement = NULL;
  if (og_is(ot, ONNX_Transpose) && other->n_uses == 1 && perm_of(ot) &&
      perm_of(ot)->n == perm->n &&
      memcmp(perm_of(ot)->ints, perm->ints, sizeof(int64_t) * (size_t)perm->n) == 0) {
    replacement = ot->inputs[0];
    ot->dead = true; /* replacement's use count stays: u reads it instead of ot */
  } else if (other->is_init) {
    replacement = untranspose_constant(c, g, u, other, perm);
    if (!replacement) return false;
    replacement->n_uses++;
  } else {
    return false;
  }
  other->n_uses--;
  u->inputs[1 - side] = replacement;
  u->inputs[side] = t->inputs[0];
  t->inputs[0]->n_uses++;
  u->same_shape_inputs = false;
  move_behind(c, t, u);
  return true;
}

int pass_push_transposes(Ctx *c, OModel *m) {
  OGraph *g = m->graph;
  og_recount_uses(g);
  bool moved_any = false;
  for (int round = 0; round < 64; round++) {
    bool moved = false;
    for (int i = 0; i < g->nodes.len; i++) {
      ONode *t = g->nodes.items[i];
      if (og_is(t, ONNX_Transpose) && push_one(c, g, t)) moved = true;
    }
    if (!moved) break;
    moved_any = true;
  }
  if (moved_any) og_toposort(c, g);
  og_recount_uses(g);
  return 0;
}

/* ---- Transposes that move only axes of size 1 ---------------------------- *
 * They keep the elements in memory order, so they are Reshapes: an NCHW ->
 * NHWC move of a 1-channel image, or the unit "group" axis that JAX's
 * attention puts next to the query axis.  Run after the fusions, which
 * match JAX's unit-axis transposes as written (Softmax's max and sum). */

/* The Transpose t of x of static unit axes that unit_transpose_to_reshape
 * cannot write as one Reshape ([B, 4, T, 1, S] -> [1, B, 4, T, S]: two
 * symbolic dims move): Squeeze of those axes, then Unsqueeze where the
 * output has them.  The caller checked that the perm keeps the order of
 * x's other axes. */
static bool unit_transpose_to_squeezes(Ctx *c, OGraph *g, ONode *t) {
  OValue *x = t->inputs[0], *y = t->outputs[0];
  int rank = x->type.rank;
  int64_t from[MAX_RANK], to[MAX_RANK];
  int n_from = 0, n_to = 0;
  ODim kept[MAX_RANK];
  for (int i = 0; i < rank; i++) {
    if (x->type.dims[i].value == 1) from[n_from++] = i;
    else kept[i - n_from] = x->type.dims[i];
    if (y->type.dims[i].value == 1) to[n_to++] = i;
  }
  if (n_from == 0 || n_from != n_to) return false;
  OValue *sq_in[2] = {x, og_init_i64s(c, g, "axes", n_from, from)};
  ONode *sq = og_node(c, g, "Squeeze", sq_in, 2, 1); /* at the end: the caller sorts */
  sq->origin = t->origin;
  sq->scope = t->scope;
  sq->source = t->source;
  OValue *mid = sq->outputs[0];
  int mid_rank = rank - n_from;
  mid->type = (OType){x->type.et, mid_rank,
                      arena_alloc(c->arena, sizeof(ODim) * (size_t)(mid_rank + 1))};
  memcpy(mid->type.dims, kept, sizeof(ODim) * (size_t)mid_rank);
  OValue *un_in[2] = {mid, og_init_i64s(c, g, "axes", n_to, to)};
  fm_rewrite(c, g, t, ONNX_Unsqueeze, un_in, 2);
  return true;
}

/* Rewrites Transpose t in place into Reshape(x, shape) when its perm keeps
 * the order of x's axes of size other than 1 and the target can be written
 * with one -1 at most (a dynamic dim that stays in place is a 0, "copy"), and
 * not both: [B, 1, T] -> [1, B, T] as [1, -1, 0] fails when T is 0. */
static bool unit_transpose_to_reshape(Ctx *c, OGraph *g, ONode *t) {
  const OAttr *perm = perm_of(t);
  OValue *x = t->inputs[0];
  int rank = x->type.rank;
  if (!perm || !og_transpose_moves_only_unit_axes(t)) return false;
  int64_t shape[MAX_RANK];
  int n_inferred = 0, n_copied = 0;
  for (int i = 0; i < rank; i++) {
    int64_t p = perm->ints[i];
    int64_t d = x->type.dims[p].value;
    if (d == 1) {
      shape[i] = 1;
      continue;
    }
    if (d == 0) return false; /* an empty tensor, where 0 and -1 would mislead */
    if (d > 0) shape[i] = d;
    else if (p == i) shape[i] = 0, n_copied++;
    else shape[i] = -1, n_inferred++;
  }
  /* Reshape cannot infer the -1 when a copied dim is 0 at run time (0 / 0) */
  if (n_inferred > 1 || (n_inferred == 1 && n_copied > 0)) return unit_transpose_to_squeezes(c, g, t);
  int64_t *vals = arena_alloc(c->arena, sizeof(int64_t) * (size_t)rank);
  memcpy(vals, shape, sizeof(int64_t) * (size_t)rank);
  int64_t len = rank;
  Data d = {DATA_RAW, vals, sizeof(int64_t) * (size_t)rank};
  OValue **in = arena_alloc(c->arena, 2 * sizeof(OValue *));
  in[0] = x;
  in[1] = og_init(c, g, "shape", ET_I64, 1, &len, d);
  in[1]->n_uses = 1;
  t->inputs = in;
  t->n_inputs = 2;
  og_set_kind(t, ONNX_Reshape);
  t->n_attrs = 0;
  return true;
}

static void unit_transposes_in(Ctx *c, OGraph *g) {
  int n_nodes = g->nodes.len;
  for (int i = 0; i < n_nodes; i++) {
    ONode *n = g->nodes.items[i];
    if (og_is(n, ONNX_Transpose)) unit_transpose_to_reshape(c, g, n);
    if (n->dead) continue;
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH) unit_transposes_in(c, n->attrs[j].graph);
  }
  if (g->nodes.len != n_nodes) og_toposort(c, g); /* the Squeezes came last */
}

int pass_unit_transposes(Ctx *c, OModel *m) {
  unit_transposes_in(c, m->graph);
  return 0;
}
