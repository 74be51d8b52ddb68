/* cse.c - common subexpression elimination: a node that computes what an
 * earlier node already computed reads the earlier node's outputs instead.
 *
 * JAX repeats work that an ONNX graph need not: every jnp.var recomputes the
 * mean that the caller computed too, and with a symbolic batch each
 * broadcast rebuilds the same shape (Shape, Concat, Cast) from the batch
 * size.  Merging them shrinks the graph and, more importantly, gives the
 * fusions one canonical pattern to recognise: the (x - mean) of a layer norm
 * written with jnp.var is then one value read twice, as in Linen's form.
 *
 * Two nodes are the same computation when they have the same op type,
 * domain, attributes and inputs, where an input is the same when it is the
 * same value, or when both are small constants of equal type and bytes (the
 * lowering makes a fresh constant for every axes list and shape).  Nodes
 * with subgraphs, calls of local functions and Dropout are never merged;
 * neither are the user's weights (named parameters) by value.
 */
#include "passes/passes.h"

#include <string.h>

/* Constants up to this size are compared by value; larger ones (weights)
 * only by identity. */
#define CSE_MAX_CONST_BYTES 256

static uint64_t mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  return h;
}

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
  const unsigned char *b = p;
  for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

static uint64_t hash_str(uint64_t h, const char *s) {
  return s ? hash_bytes(h, s, strlen(s)) : mix(h, 0);
}

static bool same_str(const char *a, const char *b) {
  return a == b || (a && b && strcmp(a, b) == 0);
}

/* The bytes of v when it is a constant small enough to compare by value. */
static const uint8_t *small_const(Ctx *c, const OValue *v, size_t *n) {
  const Data *d = v ? og_const_data(v) : NULL;
  if (!d || v->is_param || v->is_input || v->is_output || d->nbytes > CSE_MAX_CONST_BYTES)
    return NULL;
  *n = d->nbytes;
  return data_bytes(c, d);
}

static bool same_type(const OType *a, const OType *b) {
  if (a->et != b->et || a->rank != b->rank) return false;
  for (int i = 0; i < a->rank; i++)
    if (a->dims[i].value != b->dims[i].value || !same_str(a->dims[i].param, b->dims[i].param))
      return false;
  return true;
}

static bool same_input(Ctx *c, const OValue *a, const OValue *b) {
  if (a == b) return true;
  size_t na = 0, nb = 0;
  const uint8_t *ba = small_const(c, a, &na), *bb = ba && b ? small_const(c, b, &nb) : NULL;
  return ba && bb && na == nb && same_type(&a->type, &b->type) && memcmp(ba, bb, na) == 0;
}

static uint64_t hash_input(Ctx *c, const OValue *v) {
  size_t n;
  const uint8_t *b = small_const(c, v, &n);
  if (!b) return mix(0, (uint64_t)(uintptr_t)v);
  return hash_bytes(mix(0, (uint64_t)v->type.et), b, n);
}

static bool same_attr(const OAttr *a, const OAttr *b) {
  if (!same_str(a->name, b->name) || a->kind != b->kind) return false;
  switch (a->kind) {
  case OA_INT: return a->i == b->i;
  case OA_FLOAT: return memcmp(&a->f, &b->f, sizeof a->f) == 0; /* -0.0 and NaN bits too */
  case OA_STRING: return a->s_len == b->s_len && memcmp(a->s, b->s, a->s_len) == 0;
  case OA_INTS: return a->n == b->n && memcmp(a->ints, b->ints, sizeof(int64_t) * (size_t)a->n) == 0;
  case OA_FLOATS: return a->n == b->n && memcmp(a->floats, b->floats, sizeof(float) * (size_t)a->n) == 0;
  case OA_STRINGS:
    if (a->n != b->n) return false;
    for (int i = 0; i < a->n; i++)
      if (!same_str(a->strings[i], b->strings[i])) return false;
    return true;
  case OA_TENSOR: return a->tensor == b->tensor;
  case OA_GRAPH: return false;
  }
  return false;
}

static uint64_t hash_node(Ctx *c, const ONode *n) {
  uint64_t h = hash_str(hash_str(0xcbf29ce484222325ull, n->op_type), n->domain);
  h = mix(h, (uint64_t)n->n_inputs * 31 + (uint64_t)n->n_outputs);
  for (int i = 0; i < n->n_inputs; i++) h = mix(h, hash_input(c, n->inputs[i]));
  for (int i = 0; i < n->n_attrs; i++) {
    const OAttr *a = &n->attrs[i];
    h = mix(hash_str(h, a->name), (uint64_t)a->kind);
    if (a->kind == OA_INT) h = mix(h, (uint64_t)a->i);
    if (a->kind == OA_INTS) h = hash_bytes(h, a->ints, sizeof(int64_t) * (size_t)a->n);
  }
  return h;
}

/* Attributes are compared as sets: the lowering and the passes may add
 * them in different orders. */
static bool same_attrs(const ONode *a, const ONode *b) {
  if (a->n_attrs != b->n_attrs) return false;
  for (int i = 0; i < a->n_attrs; i++) {
    const OAttr *other = og_get_attr(b, a->attrs[i].name);
    if (!other || !same_attr(&a->attrs[i], other)) return false;
  }
  return true;
}

static bool same_node(Ctx *c, const ONode *a, const ONode *b) {
  if (!same_str(a->op_type, b->op_type) || !same_str(a->domain, b->domain) ||
      a->n_inputs != b->n_inputs || a->n_outputs != b->n_outputs || !same_attrs(a, b))
    return false;
  for (int i = 0; i < a->n_inputs; i++)
    if (!same_input(c, a->inputs[i], b->inputs[i])) return false;
  for (int i = 0; i < a->n_outputs; i++)
    if (a->outputs[i]->type.et != b->outputs[i]->type.et) return false;
  return true;
}

/* Nodes whose result is a function of their inputs and attributes, that
 * this pass may look into: ops of the ONNX op table (which has no random
 * ops but Dropout), not local-function calls or other domains. */
static bool mergeable(const ONode *n) {
  if (n->dead || n->fn || n->n_outputs == 0 || n->kind == ONNX_OTHER || og_is(n, ONNX_Dropout))
    return false;
  for (int i = 0; i < n->n_attrs; i++)
    if (n->attrs[i].kind == OA_GRAPH) return false;
  for (int i = 0; i < n->n_outputs; i++)
    if (n->outputs[i]->is_output) return false;
  return true;
}

/* A merged value's readers are redirected as the walk reaches them: nodes
 * come in topological order, so a value is merged before anything reads it
 * (subgraphs included: they are walked when their If or Loop is reached).
 * OValue.mark holds 1 + the index of the value to read instead, in `into`.
 * Graph outputs never need redirecting: mergeable() leaves their producers
 * alone. */
static void zero_marks(OGraph *g) {
  for (int i = 0; i < g->values.len; i++) ((OValue *)g->values.items[i])->mark = 0;
  for (int i = 0; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH) zero_marks(n->attrs[j].graph);
  }
}

static void cse_graph(Ctx *c, OGraph *g, PtrVec *into) {
  int n_nodes = g->nodes.len;
  size_t cap = 16;
  while (cap < (size_t)n_nodes * 2) cap *= 2;
  ONode **table = arena_alloc(c->arena, sizeof(ONode *) * cap);
  for (int i = 0; i < n_nodes; i++) {
    ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    for (int j = 0; j < n->n_inputs; j++)
      if (n->inputs[j] && n->inputs[j]->mark) n->inputs[j] = into->items[n->inputs[j]->mark - 1];
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH) cse_graph(c, n->attrs[j].graph, into);
    if (!mergeable(n)) continue;
    size_t slot = (size_t)hash_node(c, n) & (cap - 1);
    for (;;) {
      ONode *seen = table[slot];
      if (!seen) {
        table[slot] = n;
        break;
      }
      if (same_node(c, seen, n)) {
        for (int k = 0; k < n->n_outputs; k++) {
          ptrvec_push(c->arena, into, seen->outputs[k]);
          n->outputs[k]->mark = into->len;
        }
        n->dead = true;
        break;
      }
      slot = (slot + 1) & (cap - 1);
    }
  }
}

int pass_cse(Ctx *c, OModel *m) {
  PtrVec into = {0};
  zero_marks(m->graph);
  cse_graph(c, m->graph, &into);
  og_recount_uses(m->graph); /* the redirected reads */
  return 0;
}
