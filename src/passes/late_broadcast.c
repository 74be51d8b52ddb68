/* late_broadcast.c - computes on a tensor before it is broadcast, not after.
 *
 * Keras's DeBERTa broadcasts its relative-position embeddings to the batch
 * ([1, 1, 64, 256] -> [1, B, 64, 256]) and then projects them in every
 * layer, with MatMuls of [B, 64, 256] x [256, 256]: B times the work of
 * projecting them once, and nothing onnxruntime can fold at load time
 * because B is only known at run time.  The projected values meet the
 * queries in a MatMul, which broadcasts its batch axes by itself.
 *
 * So an Expand whose result flows only through ops that commute with
 * broadcasting (elementwise ops, MatMul, Transpose, Reshapes that keep the
 * broadcast axes apart) into nodes that broadcast anyway is removed: the
 * nodes in between compute on the small tensor.  Every reader of every
 * value on the way must be one of these, and the nodes where the path ends
 * must give the shape they gave before, or nothing changes.
 *
 * The Expand's input must have static dims, so that each Reshape on the
 * way gets a constant shape.  Dims are compared as numbers or as the names
 * symbolic_dims proved, never guessed.
 */
#include "passes/passes.h"

#include <string.h>

static bool is_one(ODim d) { return d.value == 1; }

/* A value on the way from the Expand: its dims when computed from the
 * Expand's input (OValue.mark indexes the table, 0 = not on the way). */
typedef struct SmallValue {
  OValue *v;
  int rank;
  ODim dims[MAX_RANK];
} SmallValue;

#define MAX_SMALL 64

typedef struct Flow {
  SmallValue vals[MAX_SMALL + 1]; /* [0] unused: mark 0 means "not here" */
  int n;
  ONode *rewritten[MAX_SMALL]; /* the nodes whose output joined, in order */
  int64_t reads[MAX_SMALL + 1]; /* node inputs reading each value */
} Flow;

static const SmallValue *small_of(const Flow *r, const OValue *v) {
  return v && v->mark > 0 && v->mark <= r->n && r->vals[v->mark].v == v ? &r->vals[v->mark] : NULL;
}

/* The dims node input j has after the rewrite. */
static int input_dims(const Flow *r, const OValue *in, ODim *dims) {
  const SmallValue *s = small_of(r, in);
  if (s) {
    memcpy(dims, s->dims, sizeof(ODim) * (size_t)s->rank);
    return s->rank;
  }
  if (in->type.rank < 0 || in->type.rank > MAX_RANK) return -1;
  if (in->type.rank > 0) memcpy(dims, in->type.dims, sizeof(ODim) * (size_t)in->type.rank);
  return in->type.rank;
}

/* numpy broadcasting of dims a (rank ra) and b (rank rb) into out, right
 * aligned; false where two dims differ and neither is 1. */
static bool broadcast_dims(const ODim *a, int ra, const ODim *b, int rb, ODim *out, int *rank) {
  int R = ra > rb ? ra : rb;
  for (int i = 0; i < R; i++) {
    int ia = i - (R - ra), ib = i - (R - rb);
    ODim da = ia >= 0 ? a[ia] : (ODim){1, NULL}, db = ib >= 0 ? b[ib] : (ODim){1, NULL};
    if (is_one(da)) out[i] = db;
    else if (is_one(db) || og_same_dim(da, db)) out[i] = da;
    else return false;
  }
  *rank = R;
  return true;
}

static bool elementwise(const Flow *r, const ONode *n, ODim *out, int *rank) {
  *rank = 0;
  for (int j = 0; j < n->n_inputs; j++) {
    ODim in[MAX_RANK], acc[MAX_RANK];
    if (!n->inputs[j]) return false;
    int ri = input_dims(r, n->inputs[j], in);
    if (ri < 0 || !broadcast_dims(out, *rank, in, ri, acc, rank)) return false;
    memcpy(out, acc, sizeof(ODim) * (size_t)*rank);
  }
  return true;
}

/* MatMul of [..., M, K] and [..., K, N]: batch axes broadcast. */
static bool matmul(const Flow *r, const ONode *n, ODim *out, int *rank) {
  ODim a[MAX_RANK], b[MAX_RANK];
  int ra = input_dims(r, n->inputs[0], a), rb = input_dims(r, n->inputs[1], b);
  if (ra < 2 || rb < 2 || !og_same_dim(a[ra - 1], b[rb - 2])) return false;
  if (!broadcast_dims(a, ra - 2, b, rb - 2, out, rank)) return false;
  out[*rank] = a[ra - 2];
  out[*rank + 1] = b[rb - 1];
  *rank += 2;
  return true;
}

static bool transpose(const Flow *r, const ONode *n, ODim *out, int *rank) {
  ODim in[MAX_RANK];
  int ri = input_dims(r, n->inputs[0], in);
  const OAttr *perm = og_get_attr(n, "perm");
  if (ri < 0 || !perm || perm->n != ri) return false;
  for (int i = 0; i < ri; i++) out[i] = in[perm->ints[i]];
  *rank = ri;
  return true;
}

/* A Reshape, Squeeze or Unsqueeze, followed by groups of axes: an axis
 * that maps to one axis of the same size (a named one only so), unit axes
 * dropped or inserted, and static axes split or merged among themselves.
 * A broadcast axis (1 now, larger before) must map to one axis alone,
 * which becomes 1; the other groups keep their dims. */
static bool reshape(const Flow *r, const ONode *n, ODim *out, int *rank) {
  const OValue *x = n->inputs[0], *y = n->outputs[0];
  const SmallValue *s = small_of(r, x);
  int ri = x->type.rank, ro = y->type.rank;
  if (!s || ri < 0 || ro < 0 || ro > MAX_RANK || s->rank != ri) return false;
  const ODim *was = x->type.dims, *now = s->dims, *to = y->type.dims;
  int i = 0, j = 0;
  while (i < ri || j < ro) {
    if (i < ri && j < ro && og_same_dim(was[i], to[j]) && (was[i].value != 1)) {
      out[j++] = now[i++]; /* one axis to one: broadcast or not */
    } else if (i < ri && is_one(was[i])) {
      i++; /* a unit axis dropped */
    } else if (j < ro && is_one(to[j])) {
      out[j++] = (ODim){1, NULL}; /* a unit axis inserted */
    } else {
      /* static axes split or merged; none of them broadcast */
      int64_t pi = 1, pj = 1;
      do {
        if (i < ri && (pi <= pj || j >= ro)) {
          if (was[i].value < 0 || !og_same_dim(was[i], now[i])) return false;
          pi *= was[i++].value;
        } else if (j < ro) {
          if (to[j].value < 0) return false;
          pj *= to[j].value;
          out[j] = to[j];
          j++;
        } else {
          return false;
        }
        if (pi > ((int64_t)1 << 40) || pj > ((int64_t)1 << 40)) return false;
      } while (pi != pj || pi == 1);
    }
  }
  *rank = ro;
  return true;
}

/* The dims of n's output when its inputs on the way are small; false when
 * n is not an op that commutes with broadcasting. */
static bool infer_small(const Flow *r, const ONode *n, ODim *out, int *rank) {
  if (n->n_outputs != 1 || n->kind == ONNX_OTHER) return false;
  if (onnx_op_has(n->kind, ONNX_BROADCASTS)) return elementwise(r, n, out, rank);
  if (onnx_op_has(n->kind, ONNX_ELEMENTWISE) && n->n_inputs == 1) return elementwise(r, n, out, rank);
  switch (n->kind) {
  case ONNX_MatMul: return n->n_inputs == 2 && matmul(r, n, out, rank);
  case ONNX_Transpose: return transpose(r, n, out, rank);
  case ONNX_Reshape: case ONNX_Squeeze: case ONNX_Unsqueeze:
    /* the shape or axes must not be on the way themselves */
    for (int j = 1; j < n->n_inputs; j++)
      if (small_of(r, n->inputs[j])) return false;
    return reshape(r, n, out, rank);
  default: return false;
  }
}

static bool same_dims(const ODim *a, int ra, const OType *t) {
  if (ra != t->rank) return false;
  for (int i = 0; i < ra; i++)
    if (!og_same_dim(a[i], t->dims[i])) return false;
  return true;
}

static bool all_static(const ODim *d, int rank) {
  for (int i = 0; i < rank; i++)
    if (d[i].value < 0) return false;
  return true;
}

/* Follows expand's output through the nodes after it (the node list is in
 * topological order); true when every reader was covered. */
static bool follow(OGraph *g, int from, ONode *expand, Flow *r) {
  OValue *x = expand->inputs[0], *y = expand->outputs[0];
  r->n = 1;
  r->vals[1].v = y;
  r->vals[1].rank = x->type.rank;
  memcpy(r->vals[1].dims, x->type.dims, sizeof(ODim) * (size_t)x->type.rank);
  r->reads[1] = 0;
  y->mark = 1;
  int n_rewritten = 0;
  for (int i = from + 1; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    bool reads = false;
    for (int j = 0; j < n->n_inputs; j++) {
      const SmallValue *s = small_of(r, n->inputs[j]);
      if (s) {
        reads = true;
        r->reads[n->inputs[j]->mark]++;
      }
    }
    if (!reads) continue;
    ODim dims[MAX_RANK];
    int rank;
    if (!infer_small(r, n, dims, &rank)) return false;
    OValue *out = n->outputs[0];
    if (same_dims(dims, rank, &out->type)) continue; /* it broadcasts: the path ends here */
    if (r->n >= MAX_SMALL || out->is_output || out->type.rank != rank) return false;
    /* a Reshape on the way gets a constant shape */
    if (og_is(n, ONNX_Reshape) && !all_static(dims, rank)) return false;
    SmallValue *s = &r->vals[++r->n];
    s->v = out;
    s->rank = rank;
    memcpy(s->dims, dims, sizeof(ODim) * (size_t)rank);
    r->reads[r->n] = 0;
    out->mark = r->n;
    r->rewritten[n_rewritten++] = n;
  }
  /* every use seen: none in a subgraph, none a graph output */
  for (int k = 1; k <= r->n; k++)
    if (r->vals[k].v->is_output || r->reads[k] != r->vals[k].v->n_uses) return false;
  return true;
}

static bool unbroadcast(Ctx *c, OGraph *g, int at, Flow *r) {
  ONode *e = g->nodes.items[at];
  if (!og_is(e, ONNX_Expand) || e->n_inputs != 2 || e->n_outputs != 1) return false;
  OValue *x = e->inputs[0], *y = e->outputs[0];
  if (x->type.rank != y->type.rank || x->type.rank < 1 || x->type.rank > MAX_RANK ||
      !all_static(x->type.dims, x->type.rank) || y->is_output)
    return false;
  for (int i = 0; i < g->values.len; i++) ((OValue *)g->values.items[i])->mark = 0;
  if (!follow(g, at, e, r)) return false;
  /* the Expand's readers read its input */
  for (int i = at + 1; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    for (int j = 0; j < n->n_inputs; j++)
      if (n->inputs[j] == y) og_set_input(n, j, x);
  }
  for (int k = 2; k <= r->n; k++) {
    SmallValue *s = &r->vals[k];
    ODim *dims = arena_alloc(c->arena, sizeof(ODim) * (size_t)s->rank);
    memcpy(dims, s->dims, sizeof(ODim) * (size_t)s->rank);
    s->v->type.dims = dims;
  }
  for (int k = 0; k + 2 <= r->n; k++) {
    ONode *n = r->rewritten[k];
    n->same_shape_inputs = false;
    if (og_is(n, ONNX_Reshape)) {
      const OType *t = &n->outputs[0]->type;
      int64_t shape[MAX_RANK];
      for (int i = 0; i < t->rank; i++) shape[i] = t->dims[i].value;
      og_set_input(n, 1, og_init_i64s(c, g, "shape", t->rank, shape));
      og_attr_int(c, n, "allowzero", 0); /* no 0 in the shape: dims are >= 1 */
    }
  }
  /* the nodes where the path ended read smaller inputs than before */
  for (int i = at + 1; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    for (int j = 0; !n->dead && j < n->n_inputs; j++)
      if (n->inputs[j] && (n->inputs[j] == x || small_of(r, n->inputs[j]))) n->same_shape_inputs = false;
  }
  e->dead = true;
  e->inputs[1]->n_uses--;
  return true;
}

static void unbroadcast_graph(Ctx *c, OGraph *g, Flow *scratch) {
  for (int i = 0; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    unbroadcast(c, g, i, scratch);
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH) unbroadcast_graph(c, n->attrs[j].graph, scratch);
  }
}

int pass_late_broadcast(Ctx *c, OModel *m) {
  og_recount_uses(m->graph);
  unbroadcast_graph(c, m->graph, arena_alloc(c->arena, sizeof(Flow)));
  og_recount_uses(m->graph);
  return 0;
}
