/* dce.c - dead code elimination: nodes none of whose outputs reach a graph
 * output, and initializers nothing uses (e.g. the RNG keys of a Dropout that
 * is deterministic at inference).  Graph inputs stay: they are the model's
 * signature, used or not. */
#include "h2o.h"

enum { NEEDED = 1 };

static void mark_subgraph_uses(OGraph *g);

static void mark_node_inputs(ONode *n) {
  for (int j = 0; j < n->n_inputs; j++)
    if (n->inputs[j]) n->inputs[j]->mark = NEEDED;
  for (int j = 0; j < n->n_attrs; j++)
    if (n->attrs[j].kind == OA_GRAPH) mark_subgraph_uses(n->attrs[j].graph);
}

/* A subgraph may read any value of the enclosing graphs; everything a live
 * subgraph reads is needed.  (Subgraphs are cleaned first, by their own DCE.) */
static void mark_subgraph_uses(OGraph *g) {
  for (int i = 0; i < g->outputs.len; i++) ((OValue *)g->outputs.items[i])->mark = NEEDED;
  for (int i = 0; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    if (!n->dead) mark_node_inputs(n);
  }
}

static int dce_graph(Ctx *c, OGraph *g) {
  /* Subgraphs first: what their dead nodes read from this graph is not
   * needed (e.g. the initial buffer of a scan output, see lower/scan.c). */
  for (int i = 0; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    for (int j = 0; !n->dead && j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH && dce_graph(c, n->attrs[j].graph) != 0) return -1;
  }
  for (int i = 0; i < g->values.len; i++) ((OValue *)g->values.items[i])->mark = 0;
  for (int i = 0; i < g->outputs.len; i++) ((OValue *)g->outputs.items[i])->mark = NEEDED;
  for (int i = g->nodes.len - 1; i >= 0; i--) {
    ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    bool live = false;
    for (int j = 0; j < n->n_outputs; j++) live |= n->outputs[j]->mark == NEEDED;
    if (live) mark_node_inputs(n);
    else n->dead = true;
  }
  /* Compact the lists so later passes and the writer see only what lives. */
  int k = 0;
  for (int i = 0; i < g->nodes.len; i++)
    if (!((ONode *)g->nodes.items[i])->dead) g->nodes.items[k++] = g->nodes.items[i];
  g->nodes.len = k;
  k = 0;
  for (int i = 0; i < g->inits.len; i++) {
    OValue *v = g->inits.items[i];
    if (v->mark == NEEDED) g->inits.items[k++] = v;
  }
  g->inits.len = k;
  og_recount_uses(g);
  return 0;
}

int pass_dce(Ctx *c, OModel *m) { return dce_graph(c, m->graph); }
