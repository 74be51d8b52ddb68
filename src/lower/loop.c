/* loop.c - the ONNX Loop nodes of the lowering, and the outputs of the
 * subgraphs of control flow.
 *
 * A Loop node's inputs are (trip count M, first condition, initial values
 * of the carried values v...), either of the first two omitted (NULL):
 * then only the other one stops it.  Its `body` graph has the inputs
 * (iteration number, condition in, carried values v...) and the outputs
 * (condition out, next carried values v..., scan outputs...); the Loop's
 * outputs are the carried values after the last iteration, then each scan
 * output stacked along a new leading axis.  What the body reads from the
 * enclosing graph it names directly.  The body runs while the iteration
 * number is below M and the condition is true; ONNX checks the first
 * condition before the first iteration and the body's condition out
 * before each next one.
 *
 * The builder makes that in four steps, the nodes of the body being built
 * in between by the ordinary lw_ builders:
 *   lw_loop_begin    a new body graph, nested in L->g, becomes L->g; its
 *                    inputs iteration (int64 scalar) and cond_in (bool
 *                    scalar) are made;
 *   lw_loop_carry    one more carried value: a body input typed as its
 *                    initial value (in the enclosing graph), kept for the
 *                    Loop's inputs;
 *   lw_loop_close    the body's outputs: the condition out (cond_in passed
 *                    on, when the trip count alone decides), the next
 *                    carried values, the scan outputs; L->g is the
 *                    enclosing graph again;
 *   lw_loop_node     the Loop node in the enclosing graph, its carried
 *                    outputs typed as their initial values.
 * (lw_loop_abandon instead of the last two after an error in the body.)
 * A graph output must be made in its graph and be no other output: a value
 * that is not (an initializer, a value of an enclosing graph, one returned
 * twice) is returned through an Identity (lw_subgraph_output, which the If
 * branches of control.c use too).  Control flow nests at most
 * H2O_MAX_SUBGRAPH_DEPTH deep: lw_loop_check_depth says, once for the
 * Loops a converter builds side by side, whether one more level fits.
 */
#include "lower/lower.h"

int lw_graph_depth(const Lower *L) {
  int depth = 0;
  for (const OGraph *g = L->g; g->parent; g = g->parent) depth++;
  return depth;
}

int lw_check_depth(Lower *L, int depth) {
  if (depth <= H2O_MAX_SUBGRAPH_DEPTH) return 0;
  return diag_error_op(L->c, H2O_EUNSUPPORTED, L->op,
                       "control flow nested more than %d deep: ONNX readers cannot "
                       "load If and Loop subgraphs nested deeper", H2O_MAX_SUBGRAPH_DEPTH);
}

int lw_loop_check_depth(Lower *L) { return lw_check_depth(L, lw_graph_depth(L) + 1); }

static OValue *body_input(Lower *L, OGraph *body, const char *hint, const OType *t) {
  OValue *v = og_value(L->c, body, hint);
  v->type = *t;
  v->is_input = true;
  ptrvec_push(L->c->arena, &body->inputs, v);
  return v;
}

void lw_loop_begin(Lower *L, LoopBuilder *lp, const char *body_name,
                   const char *iteration_hint) {
  lp->outer = L->g;
  lp->body = og_new(L->c, body_name, L->g);
  lp->init = (PtrVec){0};
  OType scalar_i64 = {ET_I64, 0, NULL}, scalar_bool = {ET_BOOL, 0, NULL};
  lp->iteration = body_input(L, lp->body, iteration_hint ? iteration_hint : "iteration",
                             &scalar_i64);
  lp->cond_in = body_input(L, lp->body, "cond_in", &scalar_bool);
  L->g = lp->body;
}

OValue *lw_loop_carry(Lower *L, LoopBuilder *lp, OValue *init, const char *hint) {
  ptrvec_push(L->c->arena, &lp->init, init);
  return body_input(L, lp->body, hint ? hint : "carried", &init->type);
}

int lw_loop_abandon(Lower *L, LoopBuilder *lp) {
  L->g = lp->outer;
  return -1;
}

void lw_subgraph_output(Lower *L, OGraph *sub, OValue *v) {
  bool local = v->graph == sub && !v->is_init;
  for (int i = 0; local && i < sub->outputs.len; i++)
    if (sub->outputs.items[i] == v) local = false;
  if (!local) {
    OGraph *saved = L->g;
    L->g = sub;
    OValue *copy = lw_op1(L, "Identity", v);
    copy->type = v->type;
    v = copy;
    L->g = saved;
  }
  v->is_output = true;
  ptrvec_push(L->c->arena, &sub->outputs, v);
}

void lw_loop_close(Lower *L, LoopBuilder *lp, OValue *keep_going, OValue *const *next,
                   int n_scan, OValue *const *scan) {
  if (!keep_going) { /* cond_in passed on, through an Identity */
    keep_going = lw_op1(L, "Identity", lp->cond_in);
    keep_going->type = lp->cond_in->type;
  }
  lw_subgraph_output(L, lp->body, keep_going);
  for (int i = 0; i < lp->init.len; i++) lw_subgraph_output(L, lp->body, next[i]);
  for (int i = 0; i < n_scan; i++) lw_subgraph_output(L, lp->body, scan[i]);
  L->g = lp->outer;
}

ONode *lw_loop_node(Lower *L, LoopBuilder *lp, OValue *trip_count, OValue *first_cond) {
  int n_carried = lp->init.len, n_out = lp->body->outputs.len - 1;
  OValue **in = arena_alloc(L->c->arena, sizeof(OValue *) * (size_t)(2 + n_carried));
  in[0] = trip_count;
  in[1] = first_cond;
  for (int i = 0; i < n_carried; i++) in[2 + i] = lp->init.items[i];
  ONode *loop = lw_node(L, "Loop", 2 + n_carried, in, n_out);
  og_attr_graph(L->c, loop, "body", lp->body);
  for (int i = 0; i < n_carried; i++) loop->outputs[i]->type = ((OValue *)lp->init.items[i])->type;
  return loop;
}
