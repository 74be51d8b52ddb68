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
 * otherwise (tests/python/test_empty.py).  A value whose zero-size shape
 * has a symbolic dimension too ([B, 0]) is left to the graph.
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
      }
  }
  return changed;
}

int pass_empty(Ctx *c, OModel *m) {
  if (empty_graph(c, m->graph)) og_toposort(c, m->graph);
  return 0;
}
