/* function.c - func.call as a call of an ONNX model-local function.
 *
 * By default every call is inlined (lw_inline_call).  With
 * h2o_options.local_functions = N, a function with at least N call sites
 * becomes a FunctionProto: its body is lowered once, into a graph of its own
 * whose inputs are the function's arguments, and every call site becomes
 * one node of op_type <function name> in the domain OG_FN_DOMAIN.  JAX
 * emits such functions for an inner jax.jit called several times (a layer
 * applied to each block), jax.checkpoint, nnx.jit, ...
 *
 * Call sites are counted in the text (lw_plan_functions), not per
 * expansion: a function called twice from a body that is itself a local
 * function has two call sites, however often that body runs.
 *
 * A body is lowered once for all call sites, so it must not depend on
 * them.  StableHLO gives a call the callee's exact argument types, which is
 * all a converter reads of its operands, except their values when they are
 * constants.  A call site whose types are not the signature's (malformed
 * text) is inlined.  Inside the function the arguments are plain inputs, so
 * a converter that needs a constant operand (a shape, an index) fails
 * there: the attempt is then undone - its diagnostics withdrawn - and the
 * function's calls are inlined, where the constants are known.
 *
 * The passes run on each function's graph as on the main graph (its
 * inputs are not constants), and see a call node as an opaque op: og_is
 * matches ai.onnx ops only.
 */
#include "lower/lower.h"

#include <string.h>

enum { LF_UNTRIED = 0, LF_LOWERING, LF_DONE, LF_INLINE };

typedef struct LocalFn {
  int n_calls;       /* call sites in functions reachable from the entry */
  int state;         /* LF_* */
  OFunction *fn;     /* when LF_DONE */
} LocalFn;

static int func_index(const Module *m, const Func *f) {
  for (int i = 0; i < m->n_funcs; i++)
    if (m->funcs[i] == f) return i;
  return -1;
}

static const Func *callee_of(const Module *m, const Op *op, const char *attr) {
  const Attr *a = ir_op_attr(op, attr);
  if (!a || (a->kind != AK_SYMBOL && a->kind != AK_STRING) || !a->s) return NULL;
  return ir_find_func(m, a->s);
}

/* Counts the calls in a block (regions included) and queues the functions
 * it reaches (calls and composite decompositions) that were not seen. */
static void scan_block(Lower *L, const Block *b, bool *seen, const Func **queue, int *n_queue) {
  const Module *m = L->module;
  for (int i = 0; i < b->n_ops; i++) {
    const Op *op = b->ops[i];
    bool is_call = op->kind == OP_CALL || op->kind == OP_CALL_SHORT;
    const Func *f = callee_of(m, op, is_call ? "callee" : "decomposition");
    int k = f ? func_index(m, f) : -1;
    if (k >= 0) {
      if (is_call && L->local[k].n_calls < 1 << 30) L->local[k].n_calls++;
      if (!seen[k]) {
        seen[k] = true;
        queue[(*n_queue)++] = f;
      }
    }
    for (int r = 0; r < op->n_regions; r++)
      for (int j = 0; j < op->regions[r]->n_blocks; j++)
        scan_block(L, op->regions[r]->blocks[j], seen, queue, n_queue);
  }
}

void lw_plan_functions(Lower *L, const Func *entry) {
  const h2o_options *o = L->c->opts;
  const Module *m = L->module;
  if (!o || o->local_functions <= 0) return;
  Arena *a = L->c->arena;
  L->local = arena_alloc(a, sizeof(LocalFn) * (size_t)(m->n_funcs + 1));
  bool *seen = arena_alloc(a, sizeof(bool) * (size_t)(m->n_funcs + 1));
  const Func **queue = arena_alloc(a, sizeof(Func *) * (size_t)(m->n_funcs + 1));
  int n_queue = 0;
  int k = func_index(m, entry);
  if (k < 0) return;
  seen[k] = true;
  queue[n_queue++] = entry;
  /* breadth first, each function once: no recursion on the C stack */
  for (int i = 0; i < n_queue; i++)
    if (queue[i]->body) scan_block(L, queue[i]->body, seen, queue, &n_queue);
}

static bool is_tensor(const Type *t) { return t->kind == TK_TENSOR && t->et < ET_NO_ONNX; }

/* The call passes and expects exactly the types of the signature. */
static bool matches_signature(const Op *op, const Func *f) {
  if (f->n_args != op->n_operands || f->n_results != op->n_results || f->n_results < 1)
    return false;
  for (int i = 0; i < f->n_args; i++)
    if (!is_tensor(&f->body->args[i]->type) ||
        !type_equal(&f->body->args[i]->type, &op->operands[i]->type))
      return false;
  for (int i = 0; i < f->n_results; i++)
    if (!is_tensor(&f->result_types[i]) ||
        !type_equal(&f->result_types[i], &op->results[i]->type))
      return false;
  return true;
}

/* An ONNX identifier from the symbol name ([A-Za-z_][A-Za-z0-9_]*), made
 * unique among the functions lowered so far. */
static const char *function_name(Lower *L, const char *symbol) {
  Arena *a = L->c->arena;
  size_t n = strlen(symbol);
  char *base = arena_alloc(a, n + 3);
  char *q = base;
  if (!(*symbol >= 'a' && *symbol <= 'z') && !(*symbol >= 'A' && *symbol <= 'Z') &&
      *symbol != '_')
    *q++ = '_';
  for (const char *p = symbol; *p; p++) {
    bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
              (*p >= '0' && *p <= '9') || *p == '_';
    *q++ = ok ? *p : '_';
  }
  *q = 0;
  const char *name = base;
  for (int k = 2;; k++) {
    bool taken = false;
    for (int i = 0; !taken && i < L->functions.len; i++)
      taken = strcmp(((OFunction *)L->functions.items[i])->name, name) == 0;
    if (!taken) return name;
    name = arena_printf(a, "%s_%d", base, k);
  }
}

/* Inputs and outputs of a function need distinct names: the argument's
 * Python name (loc("x")) when it has one, else arg<i>; outputs out<i>. */
static const char *io_name(Lower *L, OGraph *g, const char *want, const char *fallback, int i) {
  const char *name = want ? want : arena_printf(L->c->arena, "%s%d", fallback, i);
  for (int k = 2;; k++) {
    bool taken = false;
    for (int j = 0; !taken && j < g->inputs.len; j++)
      taken = strcmp(((OValue *)g->inputs.items[j])->name, name) == 0;
    for (int j = 0; !taken && j < g->outputs.len; j++)
      taken = strcmp(((OValue *)g->outputs.items[j])->name, name) == 0;
    if (!taken) return name;
    name = arena_printf(L->c->arena, "%s%d_%d", fallback, i, k);
  }
}

static const char *clean_identifier(Arena *a, const char *s) {
  char *out = arena_strdup(a, s);
  for (char *p = out; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '_' || *p == '.'))
      *p = '_';
  return out;
}

/* The state of the diagnostics, to withdraw those of a failed attempt. */
typedef struct DiagMark {
  size_t len;
  int n_errors, status;
  struct Unsupported *unsupported;
} DiagMark;

static void rewind_diag(Lower *L, const DiagMark *mark) {
  Ctx *c = L->c;
  if (c->diag && c->diag_len > mark->len) c->diag[mark->len] = 0;
  if (c->diag_len > mark->len) c->diag_len = mark->len;
  c->n_errors = mark->n_errors;
  c->status = mark->status;
  L->unsupported = mark->unsupported;
}

/* Lowers f's body into a new function graph: 0; 1 with every trace of the
 * attempt withdrawn (the calls are then inlined, reporting anew); -1 when
 * the attempt ran past H2O_MAX_LOWERED_OPS, which stays reported (the ops
 * it lowered count: inlining after failed attempts cannot go on forever). */
static int lower_function(Lower *L, const Func *f, LocalFn *lf) {
  Ctx *c = L->c;
  if (L->call_depth == (int)(sizeof L->call_stack / sizeof L->call_stack[0])) return 1;
  DiagMark mark = {c->diag_len, c->n_errors, c->status, L->unsupported};
  OGraph *g = og_new(c, function_name(L, f->name), NULL);
  for (int i = 0; i < f->n_args; i++) {
    Value *arg = f->body->args[i];
    OValue *v = og_value(c, g, "arg");
    og_type_from_hlo(c, v, &arg->type);
    const char *loc = f->arg_loc_names ? f->arg_loc_names[i] : NULL;
    v->name = io_name(L, g, loc ? clean_identifier(c->arena, loc) : NULL, "arg", i);
    v->is_input = true;
    ptrvec_push(c->arena, &g->inputs, v);
    arg->lowered = v;
  }
  OValue **results = arena_alloc(c->arena, sizeof(OValue *) * (size_t)(f->n_results + 1));
  OGraph *saved_g = L->g;
  OValue **saved_ret = L->ret;
  int saved_n = L->n_ret;
  const Op *saved_op = L->op;
  L->g = g;
  L->ret = results;
  L->n_ret = f->n_results;
  L->unsupported = NULL;
  L->call_stack[L->call_depth++] = f;
  lf->state = LF_LOWERING;
  int rc = lw_block(L, f->body);
  if (rc == 0 && (L->unsupported || c->n_errors > mark.n_errors)) rc = -1;
  for (int i = 0; rc == 0 && i < f->n_results; i++)
    if (!results[i] || results[i]->poisoned) rc = -1;
  L->op = NULL;
  for (int i = 0; rc == 0 && i < f->n_results; i++) {
    /* outputs are values of their own, computed in the body (as for the
     * main graph's outputs) */
    OValue *v = results[i];
    if (v->is_input || v->is_init || v->is_output || !v->producer) {
      OValue *in = v;
      v = lw_op1(L, "Identity", in);
      v->type = in->type;
    }
    og_type_from_hlo(c, v, &f->result_types[i]);
    v->name = io_name(L, g, NULL, "out", i);
    v->is_output = true;
    ptrvec_push(c->arena, &g->outputs, v);
  }
  L->call_depth--;
  L->g = saved_g;
  L->ret = saved_ret;
  L->n_ret = saved_n;
  L->op = saved_op;
  if (rc != 0) {
    lf->state = LF_INLINE;
    if (L->n_lowered > H2O_MAX_LOWERED_OPS) {
      L->unsupported = mark.unsupported;
      return -1;
    }
    rewind_diag(L, &mark);
    return 1;
  }
  L->unsupported = mark.unsupported;
  lf->fn = arena_alloc(c->arena, sizeof *lf->fn);
  lf->fn->name = g->name;
  lf->fn->graph = g;
  ptrvec_push(c->arena, &L->functions, lf->fn);
  lf->state = LF_DONE;
  return 0;
}

int lw_local_call(Lower *L, const Op *op, const Func *f, OValue *const *args,
                  OValue **results) {
  const h2o_options *o = L->c->opts;
  int k = L->local ? func_index(L->module, f) : -1;
  if (k < 0 || !f->body || L->local[k].n_calls < o->local_functions) return 1;
  LocalFn *lf = &L->local[k];
  /* LF_LOWERING: a recursive call, which the inlining reports */
  if (lf->state == LF_INLINE || lf->state == LF_LOWERING || !matches_signature(op, f)) return 1;
  if (lf->state == LF_UNTRIED) {
    int rc = lower_function(L, f, lf);
    if (rc != 0) return rc;
  }
  ONode *n = lw_node(L, lf->fn->name, f->n_args, args, f->n_results);
  og_set_op(n, n->op_type, OG_FN_DOMAIN);
  n->fn = lf->fn;
  for (int i = 0; i < f->n_results; i++) {
    og_type_from_hlo(L->c, n->outputs[i], &f->result_types[i]);
    results[i] = n->outputs[i];
  }
  return 0;
}
