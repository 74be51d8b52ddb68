/* fuse_match.c - what the fusion passes (fuse_*.c) share: walking a pattern
 * backwards from its last node, reading constants, and rewriting.
 *
 * A pattern is matched from its root (the node whose output the fused op
 * replaces) towards its inputs; every node it passes is recorded in an
 * FmPat.  The rule of safe fusion (ggml's ggml_can_fuse) is fm_closed: each
 * intermediate value is read only by nodes of the pattern and is no graph
 * output, so replacing the root loses nothing.  The root is then rewritten
 * in place - it keeps its output value, whose name may be a graph output,
 * and its position, which follows every input of the pattern - and the
 * nodes nothing reads any more are swept away.
 *
 * Constants are initializers.  The lowering spells every broadcast out and
 * folding materialises small ones, so a scalar such as 0.5 may arrive as a
 * [2,5,7] tensor of equal values: fm_splat accepts any tensor whose
 * elements are all equal, and fm_fits checks that it broadcasts into the
 * data without widening it.
 */
#include "passes/passes.h"

#include <math.h>
#include <string.h>


ONode *fm_def(const OValue *v, OnnxOp op) {
  ONode *p = v ? v->producer : NULL;
  if (!og_is(p, op)) return NULL;
  return p;
}

bool fm_add(FmPat *p, ONode *n) {
  for (int i = 0; i < p->n; i++)
    if (p->nodes[i] == n) return true;
  if (p->n == FM_MAX_NODES) return false;
  p->nodes[p->n++] = n;
  return true;
}

ONode *fm_take(FmPat *p, const OValue *v, OnnxOp op) {
  ONode *n = fm_def(v, op);
  if (!n || !fm_add(p, n)) return NULL;
  return n;
}

/* How many input slots of the pattern's nodes read v. */
static int uses_within(const FmPat *p, const OValue *v) {
  int k = 0;
  for (int i = 0; i < p->n; i++)
    for (int j = 0; j < p->nodes[i]->n_inputs; j++) k += p->nodes[i]->inputs[j] == v;
  return k;
}

bool fm_closed(const FmPat *p, const ONode *root) {
  for (int i = 0; i < p->n; i++) {
    const ONode *n = p->nodes[i];
    if (n->dead) return false;
    if (n == root) continue;
    for (int j = 0; j < n->n_outputs; j++) {
      const OValue *o = n->outputs[j];
      if (o->is_output || o->n_uses != uses_within(p, o)) return false;
    }
  }
  return true;
}

/* ---- constants ----------------------------------------------------------- */

/* The bytes and element count of a number constant with static dims. */
static const uint8_t *const_bytes(Ctx *c, const OValue *v, int64_t *numel) {
  const Data *d = og_const_data(v);
  ElemType et = v->type.et;
  if (!d || v->type.rank < 0 || v->type.rank > MAX_RANK) return NULL;
  if (et != ET_F32 && et != ET_F64 && et != ET_F16 && et != ET_BF16 && !et_is_int(et)) return NULL;
  int64_t n = 1;
  for (int i = 0; i < v->type.rank; i++) {
    int64_t dim = v->type.dims[i].value;
    if (dim < 1 || dim > FM_MAX_SCAN || n > FM_MAX_SCAN / dim) return NULL;
    n *= dim;
  }
  if ((size_t)n * et_size(et) != d->nbytes) return NULL;
  *numel = n;
  return data_bytes(c, d);
}

bool fm_splat(Ctx *c, const OValue *v, double *out) {
  int64_t n;
  const uint8_t *b = const_bytes(c, v, &n);
  if (!b) return false;
  if (et_is_int(v->type.et)) {
    /* compared as integers; a value a double cannot hold is no splat here */
    int64_t first = elem_load_int(b, v->type.et, 0);
    if (first > ((int64_t)1 << 53) || first < -((int64_t)1 << 53)) return false;
    for (int64_t i = 1; i < n; i++)
      if (elem_load_int(b, v->type.et, i) != first) return false;
    *out = (double)first;
    return true;
  }
  double first = elem_load(b, v->type.et, 0);
  for (int64_t i = 1; i < n; i++) {
    double x = elem_load(b, v->type.et, i);
    if (!(x == first || (isnan(x) && isnan(first)))) return false;
    if (x == 0 && signbit(x) != signbit(first)) return false;
  }
  *out = first;
  return true;
}

bool fm_near(double v, double want) {
  return v == want || fabs(v - want) <= 1e-6 * fabs(want); /* == for the infinities */
}

bool fm_fits(const OValue *k, const OValue *x) {
  if (k->type.rank < 0 || x->type.rank < 0 || k->type.rank > x->type.rank) return false;
  int off = x->type.rank - k->type.rank;
  for (int i = 0; i < k->type.rank; i++) {
    int64_t d = k->type.dims[i].value, xd = x->type.dims[off + i].value;
    if (d != 1 && (d < 0 || d != xd)) return false;
  }
  return true;
}

bool fm_splat_near(Ctx *c, const OValue *k, const OValue *x, double want) {
  double v;
  return fm_fits(k, x) && fm_splat(c, k, &v) && (want == 0 ? v == 0 : fm_near(v, want));
}

bool fm_same_shape(const OValue *a, const OValue *b) {
  if (a->type.rank < 0 || a->type.rank != b->type.rank) return false;
  for (int i = 0; i < a->type.rank; i++) {
    int64_t da = a->type.dims[i].value, db = b->type.dims[i].value;
    if ((da < 0) != (db < 0) || (da >= 0 && da != db)) return false;
  }
  return true;
}

/* Strides of the dims of k right-aligned to `rank` (0 where k has no such
 * axis or a dim of 1, i.e. where it broadcasts). */
static void bcast_strides(const OValue *k, int rank, int64_t *str) {
  int off = rank - k->type.rank;
  int64_t s = 1;
  for (int i = rank - 1; i >= 0; i--) {
    int ki = i - off;
    int64_t d = ki >= 0 ? k->type.dims[ki].value : 1;
    str[i] = d == 1 ? 0 : s;
    s *= d;
  }
}

bool fm_const_slice(Ctx *c, const OValue *k, const OValue *x, int lo, int hi, double *out) {
  int rank = x->type.rank;
  if (rank < 0 || rank > MAX_RANK) return false;
  int64_t n;
  const uint8_t *b = const_bytes(c, k, &n);
  if (!b || !fm_fits(k, x) || lo < 0 || hi > rank || lo > hi) return false;
  int64_t kdim[MAX_RANK], str[MAX_RANK], idx[MAX_RANK] = {0};
  int off = rank - k->type.rank;
  for (int i = 0; i < rank; i++) kdim[i] = i >= off ? k->type.dims[i - off].value : 1;
  int64_t total = 1;
  for (int i = lo; i < hi; i++) {
    int64_t d = x->type.dims[i].value;
    if (d < 1 || d > FM_MAX_SCAN || total > FM_MAX_SCAN / d) return false;
    total *= d;
  }
  bcast_strides(k, rank, str);
  /* Every element of k must equal the one with the same index on [lo, hi)
   * and 0 elsewhere: k varies only along [lo, hi). */
  for (int64_t e = 0; e < n; e++) {
    int64_t proj = 0;
    for (int i = lo; i < hi; i++) proj += idx[i] * str[i];
    double v = elem_load(b, k->type.et, e), w = elem_load(b, k->type.et, proj);
    if (!(v == w || (isnan(v) && isnan(w)))) return false;
    for (int i = rank - 1; i >= 0; i--) {
      if (++idx[i] < kdim[i]) break;
      idx[i] = 0;
    }
  }
  /* Broadcast the slice to x's dims on [lo, hi), row-major. */
  memset(idx, 0, sizeof idx);
  for (int64_t e = 0; e < total; e++) {
    int64_t src = 0;
    for (int i = lo; i < hi; i++) src += idx[i] * str[i];
    out[e] = elem_load(b, k->type.et, src);
    for (int i = hi - 1; i >= lo; i--) {
      if (++idx[i] < x->type.dims[i].value) break;
      idx[i] = 0;
    }
  }
  return true;
}

/* Users look for their weights by name in a viewer ("norm.scale"), so a
 * constant a fusion computes from one keeps its name: the weight's own when
 * the pattern was its only reader (the weight is about to vanish, so it
 * steps aside as fold.c's moved weights do), else "<weight>/<derived>". */
void fm_name_after(Ctx *c, OValue *v, OValue *weight, const char *derived) {
  if (!v || !weight || !weight->is_param || v == weight) return;
  if (weight->n_uses == 1 && !weight->is_output && !weight->is_input) {
    v->name = weight->name;
    weight->name = arena_printf(c->arena, "%s__before_%s", weight->name, derived);
  } else {
    v->name = arena_printf(c->arena, "%s/%s", weight->name, derived);
  }
}

OValue *fm_new_const(Ctx *c, OGraph *g, const char *hint, ElemType et, int rank,
                     const int64_t *dims, const double *vals) {
  int64_t n = 1;
  for (int i = 0; i < rank; i++) n *= dims[i];
  size_t nbytes = (size_t)n * et_size(et);
  uint8_t *b = arena_alloc(c->arena, nbytes ? nbytes : 1);
  for (int64_t i = 0; i < n; i++) elem_store(b, et, i, vals[i]);
  Data d = {DATA_RAW, b, nbytes};
  return og_init(c, g, hint, et, rank, dims, d);
}

bool fm_kernel_type(ElemType et, unsigned mask) {
  return (et == ET_F16 && (mask & FM_F16)) || (et == ET_F32 && (mask & FM_F32)) ||
         (et == ET_F64 && (mask & FM_F64));
}

/* ---- shapes of reductions ------------------------------------------------ */

OValue *fm_skip_expand(FmPat *p, OValue *v) {
  for (ONode *e; (e = fm_def(v, ONNX_Expand)) != NULL;) {
    if (!fm_add(p, e)) return v;
    v = e->inputs[0];
  }
  return v;
}


/* Sorts and normalises axes against rank; false on a duplicate or range error. */
static bool norm_axes(int64_t *axes, int n, int rank) {
  for (int i = 0; i < n; i++) {
    if (axes[i] < 0) axes[i] += rank;
    if (axes[i] < 0 || axes[i] >= rank) return false;
  }
  for (int i = 1; i < n; i++)
    for (int j = i; j > 0 && axes[j - 1] > axes[j]; j--) {
      int64_t t = axes[j];
      axes[j] = axes[j - 1];
      axes[j - 1] = t;
    }
  for (int i = 1; i < n; i++)
    if (axes[i] == axes[i - 1]) return false;
  return true;
}

int fm_reduce_axes(Ctx *c, const ONode *n, int64_t *axes, bool *keepdims) {
  int rank = n->inputs[0] ? n->inputs[0]->type.rank : -1;
  if (rank < 0 || rank > MAX_RANK) return -1;
  const OAttr *kd = og_get_attr(n, "keepdims");
  const OAttr *noop = og_get_attr(n, "noop_with_empty_axes");
  const OAttr *ax = og_get_attr(n, "axes");
  *keepdims = !kd || kd->i != 0;
  int count = 0;
  if (n->n_inputs >= 2 && n->inputs[1]) {
    if ((count = og_const_i64s(c, n->inputs[1], axes, MAX_RANK)) < 0) return -1;
  } else if (ax) {
    if (ax->n > MAX_RANK) return -1;
    count = ax->n;
    memcpy(axes, ax->ints, sizeof(int64_t) * (size_t)count);
  }
  if (count == 0) {
    if (noop && noop->i) return -1; /* reduces nothing: not a reduction */
    for (int i = 0; i < rank; i++) axes[i] = i;
    return rank;
  }
  return norm_axes(axes, count, rank) ? count : -1;
}

bool fm_reinserts(Ctx *c, const ONode *n, const int64_t *axes, int n_axes) {
  const OValue *in = n->inputs[0], *out = n->outputs[0];
  if (in->type.rank < 0 || out->type.rank != in->type.rank + n_axes) return false;
  if (og_is(n, ONNX_Unsqueeze)) {
    int64_t got[MAX_RANK];
    int k = 0;
    if (n->n_inputs < 2 || (k = og_const_i64s(c, n->inputs[1], got, MAX_RANK)) < 0) return false;
    if (k != n_axes || !norm_axes(got, k, out->type.rank)) return false;
    return memcmp(got, axes, sizeof(int64_t) * (size_t)k) == 0;
  }
  if (!og_is(n, ONNX_Reshape)) return false;
  /* The output dims: 1 at the axes, the input's dims in order elsewhere.
   * With one unnamed dynamic dim the element count pins it; with more the
   * types cannot tell a reordering apart unless the dims are named alike
   * ([B, T] -> [B, T, 1]). */
  int j = 0, a = 0, n_unnamed = 0;
  for (int i = 0; i < out->type.rank; i++) {
    ODim d = out->type.dims[i];
    if (a < n_axes && axes[a] == i) {
      if (d.value != 1) return false;
      a++;
      continue;
    }
    ODim e = in->type.dims[j++];
    if ((d.value < 0) != (e.value < 0) || (d.value >= 0 && d.value != e.value)) return false;
    if (d.value >= 0) continue;
    if (d.param && e.param) {
      if (strcmp(d.param, e.param) != 0) return false;
    } else {
      n_unnamed++;
    }
  }
  return a == n_axes && n_unnamed <= 1;
}

/* ---- rewriting ----------------------------------------------------------- */

void fm_rewrite(Ctx *c, OGraph *g, ONode *root, OnnxOp op, OValue *const *in, int n_in) {
  for (int j = 0; j < root->n_inputs; j++)
    if (root->inputs[j]) root->inputs[j]->n_uses--;
  OValue **ins = arena_alloc(c->arena, sizeof(OValue *) * (size_t)(n_in + 1));
  for (int j = 0; j < n_in; j++) {
    ins[j] = in[j];
    if (in[j]) in[j]->n_uses++;
  }
  root->inputs = ins;
  root->n_inputs = n_in;
  og_set_kind(root, op);
  root->n_attrs = 0;
  root->same_shape_inputs = false;
  root->name = og_node_name(c, g, root->op_type);
}

static bool has_subgraph(const ONode *n) {
  for (int j = 0; j < n->n_attrs; j++)
    if (n->attrs[j].kind == OA_GRAPH) return true;
  return false;
}

/* Marks dead the nodes nothing reads; `heir` (when not NULL), the root a
 * rewrite just replaced them with, takes the scope they share. */
static void sweep(Ctx *c, OGraph *g, ONode *heir) {
  for (int i = g->nodes.len - 1; i >= 0; i--) {
    ONode *n = g->nodes.items[i];
    if (n->dead || has_subgraph(n)) continue;
    bool used = false;
    for (int j = 0; j < n->n_outputs; j++)
      used |= n->outputs[j]->n_uses > 0 || n->outputs[j]->is_output;
    if (used) continue;
    n->dead = true;
    if (heir) og_merge_scope(c, heir, n);
    for (int j = 0; j < n->n_inputs; j++)
      if (n->inputs[j]) n->inputs[j]->n_uses--;
  }
}

void fm_sweep(OGraph *g) { sweep(NULL, g, NULL); }

/* From the last node to the first: the root of a pattern comes after the
 * nodes it reads, so the outermost match (LayerNorm's bias Add rather than
 * the Mul below it) is tried first.  A node inserted before the root lands
 * at an index already passed.  While fn runs, the nodes it makes take the
 * root's origin (OGraph.rewriting); after a rewrite, the root takes the
 * scope it shares with the nodes it absorbed (those the sweep removes), so
 * a LayerNormalization is named after the layer, not its last Add. */
static void each_node(Ctx *c, OModel *m, OGraph *g, FmRootFn fn) {
  OGraph *root = m->graph;
  for (int i = g->nodes.len - 1; i >= 0; i--) {
    ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH) each_node(c, m, n->attrs[j].graph, fn);
    root->rewriting = n;
    bool rewritten = fn(c, m, g, n);
    root->rewriting = NULL;
    if (rewritten) sweep(c, g, n);
  }
}

/* Earlier passes leave nodes nobody reads (simplify bypasses a node without
 * deleting it), which would still count as uses: sweep them first. */
static void sweep_all(OGraph *g) {
  for (int i = 0; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    for (int j = 0; j < n->n_attrs && !n->dead; j++)
      if (n->attrs[j].kind == OA_GRAPH) sweep_all(n->attrs[j].graph);
  }
  fm_sweep(g);
}

void fm_each_node(Ctx *c, OModel *m, FmRootFn fn) {
  og_recount_uses(m->graph);
  sweep_all(m->graph);
  each_node(c, m, m->graph, fn);
  og_recount_uses(m->graph);
}
