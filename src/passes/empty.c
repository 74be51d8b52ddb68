/* empty.c - a result with no elements is a constant.  A value whose static
 * shape has a zero dimension (a convolution whose window is larger than
 * its input, a slice of nothing, an op on a zero-size input) holds nothing
 * that depends on the inputs, and onnxruntime's kernels do not all accept
 * such shapes (its Conv refuses an output dimension of 0).  So the node's
 * result becomes an empty initializer; the node, once nothing reads it, is
 * removed by dce.  The lowering has already checked the op's operands and
 * attributes (its result type is what they make), so nothing invalid hides
 * behind the constant.
 *
 * The first pass, so that folding sees the constants: an op of an empty
 * operand whose result is not empty (a sum over a zero-size axis, a
 * concatenation) is folded there where it can be, and runs in onnxruntime
 * otherwise (tests/python/test_empty.py).
 *
 * A zero-size result whose batch is symbolic ([B, 8, 0, 0]) from a
 * convolution or pooling (ONNX_KEEPS_BATCH: dim 0 is the input's) is the
 * empty constant [1, 8, 0, 0] expanded to the input's batch.  An Expand
 * to a 0 reads its input sliced to nothing there (expand_to_zero).  Other
 * zero-size values with symbolic dims are left to the graph.
 */
#include "passes/passes.h"

#include <string.h>

/* v's shape is static and holds no element. */
static bool statically_empty(const OValue *v) {
  if (!v || v->type.rank <= 0 || et_size(v->type.et) == 0) return false;
  bool zero = false;
  for (int i = 0; i < v->type.rank; i++) {
    if (v->type.dims[i].value < 0) return false;
    zero |= v->type.dims[i].value == 0;
  }
  return zero;
}

/* The node producing `out` becomes Identity(an empty initializer): out
 * keeps its name, graph output or not, and n gets an unused value in its
 * place.  Identity of a constant is folded or simplified away later where
 * out is no graph output. */
static void make_empty(Ctx *c, OGraph *g, ONode *n, int slot) {
  OValue *out = n->outputs[slot];
  int64_t dims[MAX_RANK];
  for (int i = 0; i < out->type.rank; i++) dims[i] = out->type.dims[i].value;
  static const uint8_t nothing[1];
  OValue *empty = og_init(c, g, "empty", out->type.et, out->type.rank, dims,
                          (Data){DATA_RAW, nothing, 0});
  ONode *id = og_node(c, g, "Identity", &empty, 1, 1);
  id->origin = n->origin;
  OValue *unused = id->outputs[0];
  id->outputs[0] = out;
  out->producer = id;
  unused->producer = n;
  n->outputs[slot] = unused;
}

/* out, of node n (convolution or pooling), is [?, static dims with a 0]. */
static bool empty_but_batch(const ONode *n, const OValue *out) {
  if (!onnx_op_has(n->kind, ONNX_KEEPS_BATCH) || !n->n_inputs || !n->inputs[0] ||
      out->type.rank < 2 || et_size(out->type.et) == 0 || out->type.dims[0].value >= 0)
    return false;
  bool zero = false;
  for (int i = 1; i < out->type.rank; i++) {
    if (out->type.dims[i].value < 0) return false;
    zero |= out->type.dims[i].value == 0;
  }
  return zero;
}

/* out = Expand(empty [1, dims...], Concat(Shape(x)[0:1], dims...)). */
static void make_empty_batch(Ctx *c, OGraph *g, ONode *n, int slot) {
  OValue *out = n->outputs[slot];
  int rank = out->type.rank;
  int64_t dims[MAX_RANK];
  dims[0] = 1;
  for (int i = 1; i < rank; i++) dims[i] = out->type.dims[i].value;
  static const uint8_t nothing[1];
  OValue *empty = og_init(c, g, "empty", out->type.et, rank, dims, (Data){DATA_RAW, nothing, 0});
  ONode *shape = og_node(c, g, "Shape", &n->inputs[0], 1, 1);
  og_attr_int(c, shape, "start", 0);
  og_attr_int(c, shape, "end", 1);
  int64_t one = 1;
  og_set_type(c, shape->outputs[0], ET_I64, 1, &one);
  OValue *parts[2] = {shape->outputs[0], og_init_i64s(c, g, "empty_dims", rank - 1, dims + 1)};
  ONode *cat = og_node(c, g, "Concat", parts, 2, 1);
  og_attr_int(c, cat, "axis", 0);
  int64_t r = rank;
  og_set_type(c, cat->outputs[0], ET_I64, 1, &r);
  OValue *in[2] = {empty, cat->outputs[0]};
  ONode *expand = og_node(c, g, "Expand", in, 2, 1);
  shape->origin = cat->origin = expand->origin = n->origin;
  OValue *unused = expand->outputs[0];
  expand->outputs[0] = out;
  out->producer = expand;
  unused->producer = n;
  n->outputs[slot] = unused;
}

/* Expand(x, shape) whose result has a static 0 where x has a 1 (a
 * zero-size piece of jnp.pad's edge mode, with a symbolic size elsewhere):
 * broadcasting 1 to 0 gives 0 in ONNX as in numpy, but onnxruntime's
 * Expand gives 1.  x sliced to nothing along those axes first makes the 0
 * in every runtime. */
static bool expand_to_zero(Ctx *c, OGraph *g, ONode *n) {
  if (!og_is(n, ONNX_Expand) || n->n_inputs != 2 || n->n_outputs != 1) return false;
  OValue *x = n->inputs[0], *out = n->outputs[0];
  int R = out->type.rank, r = x->type.rank;
  if (R < 0 || r < 0 || r > R || R > MAX_RANK) return false;
  int64_t axes[MAX_RANK], zeros[MAX_RANK] = {0};
  int n_axes = 0;
  for (int i = 0; i < r; i++)
    if (out->type.dims[i + (R - r)].value == 0 && x->type.dims[i].value == 1) axes[n_axes++] = i;
  if (n_axes == 0) return false;
  OValue *in[4] = {x, og_init_i64s(c, g, "starts", n_axes, zeros),
                   og_init_i64s(c, g, "ends", n_axes, zeros), og_init_i64s(c, g, "axes", n_axes, axes)};
  ONode *slice = og_node(c, g, "Slice", in, 4, 1);
  slice->origin = n->origin;
  ODim *dims = arena_alloc(c->arena, sizeof(ODim) * (size_t)(r + 1));
  if (r > 0) memcpy(dims, x->type.dims, sizeof(ODim) * (size_t)r);
  for (int k = 0; k < n_axes; k++) dims[axes[k]] = (ODim){0, NULL};
  slice->outputs[0]->type = (OType){x->type.et, r, dims};
  og_set_input(n, 0, slice->outputs[0]);
  return true;
}

static bool empty_graph(Ctx *c, OGraph *g) {
  bool changed = false;
  int n_nodes = g->nodes.len;
  for (int i = 0; i < n_nodes; i++) {
    ONode *n = g->nodes.items[i];
    if (n->dead || og_is(n, ONNX_Identity)) continue;
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH && empty_graph(c, n->attrs[j].graph))
        og_toposort(c, n->attrs[j].graph);
    for (int k = 0; k < n->n_outputs; k++)
      if (statically_empty(n->outputs[k])) {
        make_empty(c, g, n, k);
        changed = true;
      } else if (n->outputs[k] && empty_but_batch(n, n->outputs[k])) {
        make_empty_batch(c, g, n, k);
        changed = true;
      } else if (expand_to_zero(c, g, n)) {
        changed = true;
      }
  }
  return changed;
}

int pass_empty(Ctx *c, OModel *m) {
  if (empty_graph(c, m->graph)) og_toposort(c, m->graph);
  return 0;
}
