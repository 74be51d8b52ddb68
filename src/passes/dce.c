/* dce.c - dead code elimination: nodes none of whose outputs reach a graph
 * output, and initializers nothing uses (e.g. the RNG keys of a Dropout that
 * is deterministic at inference).  Graph inputs stay: they are the model's
 * signature, used or not; but the inputs of local functions that nothing
 * reads, and the results no call uses, go (with the calls' arguments and
 * results). */
#include "passes/passes.h"

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

/* ---- what no function reads, what no caller uses --------------------------
 * Once its own dead code is gone, a local function may not read all of its
 * inputs: the dimension variable JAX passes along with a symbolic shape,
 * an argument only a folded expression read.  And no call may use some of
 * its results: nnx.jit returns the module's state along with the result.
 * Such an input or result is dropped from the function and from every call
 * of it; the function's dead code and what computed the argument in the
 * callers then go too.  That may free more inputs and results in turn, so
 * this repeats until nothing changes (each round drops at least one). */

/* What the calls of f do with f's results: used[j] when some call's result
 * j is read (or is a graph output); returns the number of live calls. */
static int scan_calls(OGraph *g, const OFunction *f, bool *used) {
  int n_calls = 0;
  for (int i = 0; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    if (n->fn == f) {
      n_calls++;
      for (int j = 0; j < n->n_outputs; j++)
        used[j] |= n->outputs[j]->n_uses > 0 || n->outputs[j]->is_output;
    }
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH) n_calls += scan_calls(n->attrs[j].graph, f, used);
  }
  return n_calls;
}

/* Removes inputs (drop_in) and results (keep_out false) from f's calls. */
static void drop_call_args(OGraph *g, const OFunction *f, const bool *drop_in,
                           const bool *keep_out) {
  for (int i = 0; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    if (n->fn == f) {
      int k = 0;
      for (int j = 0; j < n->n_inputs; j++)
        if (!drop_in[j]) n->inputs[k++] = n->inputs[j];
      n->n_inputs = k;
      k = 0;
      for (int j = 0; j < n->n_outputs; j++)
        if (keep_out[j]) n->outputs[k++] = n->outputs[j];
        else n->outputs[j]->producer = NULL;
      n->n_outputs = k;
    }
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH) drop_call_args(n->attrs[j].graph, f, drop_in, keep_out);
  }
}

static int scan_all_calls(OModel *m, const OFunction *f, bool *used) {
  int n = scan_calls(m->graph, f, used);
  for (int i = 0; i < m->functions.len; i++)
    n += scan_calls(((OFunction *)m->functions.items[i])->graph, f, used);
  return n;
}

static bool drop_unused_args(Ctx *c, OModel *m, OFunction *f) {
  PtrVec *in = &f->graph->inputs, *out = &f->graph->outputs;
  bool *drop_in = arena_alloc(c->arena, sizeof(bool) * (size_t)(in->len + 1));
  bool *keep_out = arena_alloc(c->arena, sizeof(bool) * (size_t)(out->len + 1));
  bool any = false;
  for (int j = 0; j < in->len; j++) {
    OValue *v = in->items[j];
    drop_in[j] = v->n_uses == 0 && !v->is_output;
    any |= drop_in[j];
  }
  /* results: only while some call is left (else the function goes anyway),
   * and one at least, so every call keeps an output */
  int n_kept = 0;
  if (scan_all_calls(m, f, keep_out) > 0)
    for (int j = 0; j < out->len; j++) n_kept += keep_out[j];
  if (n_kept == 0)
    for (int j = 0; j < out->len; j++) keep_out[j] = true;
  any |= n_kept > 0 && n_kept < out->len;
  if (!any) return false;
  drop_call_args(m->graph, f, drop_in, keep_out);
  for (int i = 0; i < m->functions.len; i++)
    drop_call_args(((OFunction *)m->functions.items[i])->graph, f, drop_in, keep_out);
  int k = 0;
  for (int j = 0; j < in->len; j++) {
    OValue *v = in->items[j];
    if (drop_in[j]) v->is_input = false;
    else in->items[k++] = v;
  }
  in->len = k;
  k = 0;
  for (int j = 0; j < out->len; j++) {
    OValue *v = out->items[j];
    if (keep_out[j]) out->items[k++] = v;
    else v->is_output = false;
  }
  out->len = k;
  return true;
}

int pass_dce_function_args(Ctx *c, OModel *m) {
  for (bool changed = true; changed;) {
    changed = false;
    for (int i = 0; i < m->functions.len; i++)
      changed |= drop_unused_args(c, m, m->functions.items[i]);
    if (!changed) break;
    if (dce_graph(c, m->graph) != 0) return -1;
    for (int i = 0; i < m->functions.len; i++)
      if (dce_graph(c, ((OFunction *)m->functions.items[i])->graph) != 0) return -1;
  }
  return 0;
}
