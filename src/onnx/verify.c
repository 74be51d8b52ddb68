/* verify.c - the graph verifier pipeline.c runs after the lowering and after
 * every pass: each node input is defined before use (a graph input, an
 * initializer, an earlier node's output, or a value of an enclosing graph;
 * never one of another graph, such as a caller's value read by a local
 * function), no value is produced twice, and no node uses a poisoned value.  A failure
 * is an internal error: it names the pass that broke the graph. */
#include "onnx/onnx.h"

enum { DEFINED = 2 };

/* v belongs to g or to a graph enclosing g. */
static bool in_scope(const OGraph *g, const OValue *v) {
  for (; g; g = g->parent)
    if (v->graph == g) return true;
  return false;
}

static int verify_graph(Ctx *c, const OGraph *g) {
  for (int i = 0; i < g->values.len; i++) ((OValue *)g->values.items[i])->mark = 0;
  for (int i = 0; i < g->inputs.len; i++) ((OValue *)g->inputs.items[i])->mark = DEFINED;
  for (int i = 0; i < g->inits.len; i++) ((OValue *)g->inits.items[i])->mark = DEFINED;
  for (int i = 0; i < g->nodes.len; i++) {
    const ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    for (int j = 0; j < n->n_inputs; j++) {
      const OValue *in = n->inputs[j];
      if (!in) continue;
      /* Values of enclosing graphs keep the marks their own check gave
       * them so far, so a subgraph may only read what is defined before
       * the node that owns it. */
      if (in->poisoned || in->mark != DEFINED || !in_scope(g, in))
        return diag_error(c, H2O_EINTERNAL,
                          "internal error: node %s (%s) uses %s before it is defined",
                          n->name, n->op_type, in->name);
    }
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH && verify_graph(c, n->attrs[j].graph) != 0) return -1;
    for (int j = 0; j < n->n_outputs; j++) {
      OValue *out = n->outputs[j];
      if (out->mark == DEFINED)
        return diag_error(c, H2O_EINTERNAL, "internal error: %s is defined twice", out->name);
      out->mark = DEFINED;
    }
  }
  for (int i = 0; i < g->outputs.len; i++) {
    const OValue *out = g->outputs.items[i];
    if (out->graph == g && out->mark != DEFINED)
      return diag_error(c, H2O_EINTERNAL, "internal error: graph output %s is not defined",
                        out->name);
  }
  return 0;
}

int og_verify(Ctx *c, const OGraph *g) { return verify_graph(c, g); }
