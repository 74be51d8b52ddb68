/* verify.c - the graph verifier pipeline.c runs after the lowering and after
 * every pass.  It checks what the passes rely on and could break:
 *
 *   - scoping: each node input is defined before use (a graph input, an
 *     initializer, an earlier node's output, or a value of an enclosing
 *     graph; never one of another graph, such as a caller's value read by
 *     a local function), and no node uses a poisoned value;
 *   - production: no value is produced twice, every live node's outputs
 *     point back at it (OValue.producer, which the pattern matchers follow)
 *     and belong to its graph, and every graph output is defined;
 *   - use counts: OValue.n_uses equals the number of live node inputs
 *     (subgraphs included) and graph output slots that name the value, as
 *     og_recount_uses computes it, and every graph output is marked
 *     is_output.  Every fusion decides its safety on these (og_single_use),
 *     so a stale count would let a pass absorb a value someone else reads.
 *
 * A live node that reads a dead node's output fails the scoping check: dead
 * nodes define nothing.  A failure is an internal error; pipeline.c adds the
 * name of the pass that broke the graph. */
#include "onnx/onnx.h"

enum { DEFINED = 2 };

/* v belongs to g or to a graph enclosing g. */
static bool in_scope(const OGraph *g, const OValue *v) {
  for (; g; g = g->parent)
    if (v->graph == g) return true;
  return false;
}

static int verify_scopes(Ctx *c, const OGraph *g) {
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
      if (n->attrs[j].kind == OA_GRAPH && verify_scopes(c, n->attrs[j].graph) != 0) return -1;
    for (int j = 0; j < n->n_outputs; j++) {
      OValue *out = n->outputs[j];
      if (out->mark == DEFINED)
        return diag_error(c, H2O_EINTERNAL, "internal error: %s is defined twice", out->name);
      if (out->producer != n || out->graph != g)
        return diag_error(c, H2O_EINTERNAL,
                          "internal error: output %s of node %s (%s) names another "
                          "producer or graph",
                          out->name, n->name, n->op_type);
      out->mark = DEFINED;
    }
  }
  for (int i = 0; i < g->outputs.len; i++) {
    const OValue *out = g->outputs.items[i];
    /* an outer value yielded by a subgraph: defined before the node that
     * owns the subgraph, as for a read */
    if (out->poisoned || out->mark != DEFINED || !in_scope(g, out))
      return diag_error(c, H2O_EINTERNAL, "internal error: graph output %s is not defined",
                        out->name);
    if (!out->is_output)
      return diag_error(c, H2O_EINTERNAL,
                        "internal error: graph output %s is not marked as an output",
                        out->name);
  }
  return 0;
}

/* Each value's use count as og_count_uses recomputed it into .mark, against
 * n_uses. */
static int compare_uses(Ctx *c, const OGraph *g) {
  for (int i = 0; i < g->values.len; i++) {
    const OValue *v = g->values.items[i];
    if (v->n_uses != v->mark)
      return diag_error(c, H2O_EINTERNAL,
                        "internal error: %s has %d uses but its use count says %d",
                        v->name, v->mark, v->n_uses);
  }
  for (int i = 0; i < g->nodes.len; i++) {
    const ONode *n = g->nodes.items[i];
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH && compare_uses(c, n->attrs[j].graph) != 0) return -1;
  }
  return 0;
}

int og_verify(Ctx *c, const OGraph *g) {
  if (og_check_ops(c, g) != 0 || verify_scopes(c, g) != 0) return -1;
  /* Every input of a live node is in scope (checked above), so each count
   * lands on a value og_count_uses zeroed. */
  og_count_uses(g, true);
  return compare_uses(c, g);
}
