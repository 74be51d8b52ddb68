/* graph.c - the ONNX graph the lowering builds and the passes rewrite.
 *
 * Values are objects that nodes point to, so a pass matches patterns by
 * pointer and knows how many nodes use a value (n_uses) without searching.
 * Names are made unique per graph from a hint and a counter.  Each node
 * keeps where it came from (origin, scope, source) through every pass, and
 * is named after its JAX scope before writing (og_name_nodes).
 */
#include "onnx/onnx.h"

#include <string.h>

OGraph *og_new(Ctx *c, const char *name, OGraph *parent) {
  OGraph *g = arena_alloc(c->arena, sizeof *g);
  g->name = name ? arena_strdup(c->arena, name) : "graph";
  g->parent = parent;
  return g;
}

/* The root graph: names must be unique across a graph and its subgraphs,
 * since ONNX subgraphs can see the names of their enclosing graphs. */
static OGraph *og_root(OGraph *g) {
  while (g->parent) g = g->parent;
  return g;
}

OValue *og_value(Ctx *c, OGraph *g, const char *name_hint) {
  OValue *v = arena_alloc(c->arena, sizeof *v);
  OGraph *root = og_root(g);
  v->name = arena_printf(c->arena, "%s_%d", name_hint ? name_hint : "t",
                         root->next_id++);
  v->type.rank = -1;
  v->graph = g;
  ptrvec_push(c->arena, &g->values, v);
  return v;
}

void og_set_type(Ctx *c, OValue *v, ElemType et, int rank, const int64_t *dims) {
  v->type.et = et;
  v->type.rank = rank;
  v->type.dims = NULL;
  if (rank > 0) {
    v->type.dims = arena_alloc(c->arena, sizeof(ODim) * (size_t)rank);
    for (int i = 0; i < rank; i++) {
      v->type.dims[i].value = dims ? dims[i] : -1;
      v->type.dims[i].param = NULL;
    }
  }
}

void og_type_from_hlo(Ctx *c, OValue *v, const Type *t) {
  Type pairs = type_as_pairs(c->arena, t); /* complex tensors: real pairs (base.h) */
  og_set_type(c, v, pairs.et, pairs.rank, pairs.dims);
}

OValue *og_init(Ctx *c, OGraph *g, const char *name_hint, ElemType et, int rank,
                const int64_t *dims, Data data) {
  OValue *v = og_value(c, g, name_hint ? name_hint : "const");
  og_set_type(c, v, et, rank, dims);
  v->is_init = true;
  v->data = data;
  ptrvec_push(c->arena, &g->inits, v);
  return v;
}

OValue *og_init_i64s(Ctx *c, OGraph *g, const char *name_hint, int n, const int64_t *vals) {
  int64_t len = n;
  int64_t *copy = arena_alloc(c->arena, sizeof(int64_t) * (size_t)(n + 1));
  memcpy(copy, vals, sizeof(int64_t) * (size_t)n);
  return og_init(c, g, name_hint, ET_I64, 1, &len, (Data){DATA_RAW, copy, sizeof(int64_t) * (size_t)n});
}

int og_const_i64s(Ctx *c, const OValue *v, int64_t *out, int max) {
  const Data *d = og_const_data(v);
  if (!d || v->type.et != ET_I64 || d->nbytes % 8 || d->nbytes / 8 > (size_t)max) return -1;
  memcpy(out, data_bytes(c, d), d->nbytes);
  return (int)(d->nbytes / 8);
}

bool og_same_dim(ODim a, ODim b) {
  if (a.value >= 0 || b.value >= 0) return a.value == b.value;
  return a.param && b.param && strcmp(a.param, b.param) == 0;
}

bool og_reshape_target(const OValue *x, const ODim *out, int rank, int64_t *shape) {
  int inferred = -1, n_symbolic = 0;
  bool copies = false;
  for (int j = 0; j < rank; j++) n_symbolic += out[j].value < 0;
  for (int j = 0; j < rank; j++) {
    ODim d = out[j];
    bool kept = j < x->type.rank && og_same_dim(x->type.dims[j], d);
    if (d.value > 0) {
      shape[j] = d.value;
    } else if (d.value == 0 || !d.param) {
      return false; /* a literal 0 would copy; an unknown dim has no value */
    } else if (n_symbolic == 1 || (!kept && inferred < 0)) {
      shape[j] = -1;
      inferred = j;
    } else if (kept) {
      shape[j] = 0;
      copies = true;
    } else {
      return false;
    }
  }
  return inferred < 0 || !copies;
}

bool og_transpose_moves_only_unit_axes(const ONode *t) {
  const OAttr *perm = og_get_attr(t, "perm");
  const OType *x = &t->inputs[0]->type;
  if (!perm || x->rank < 0 || perm->n != x->rank) return false;
  int64_t last = -1;
  for (int i = 0; i < perm->n; i++) {
    int64_t from = perm->ints[i];
    if (from < 0 || from >= x->rank) return false;
    if (x->dims[from].value == 1) continue;
    if (from < last) return false;
    last = from;
  }
  return true;
}

void og_set_input(ONode *n, int i, OValue *v) {
  if (n->inputs[i]) n->inputs[i]->n_uses--;
  n->inputs[i] = v;
  if (v) v->n_uses++;
}

ONode *og_node(Ctx *c, OGraph *g, const char *op_type, OValue *const *inputs,
               int n_inputs, int n_outputs) {
  ONode *n = arena_alloc(c->arena, sizeof *n);
  og_set_op(n, op_type, NULL);
  n->n_inputs = n_inputs;
  n->inputs = arena_alloc(c->arena, sizeof(OValue *) * (size_t)(n_inputs + 1));
  for (int i = 0; i < n_inputs; i++) {
    n->inputs[i] = inputs[i];
    if (inputs[i]) inputs[i]->n_uses++;
  }
  n->n_outputs = n_outputs;
  n->outputs = arena_alloc(c->arena, sizeof(OValue *) * (size_t)(n_outputs + 1));
  for (int i = 0; i < n_outputs; i++) {
    OValue *out = og_value(c, g, NULL);
    out->producer = n;
    n->outputs[i] = out;
  }
  n->name = og_node_name(c, g, op_type);
  const ONode *rewriting = og_root(g)->rewriting;
  if (rewriting) og_inherit_origin(n, rewriting);
  ptrvec_push(c->arena, &g->nodes, n);
  return n;
}

const char *og_node_name(Ctx *c, OGraph *g, const char *op_type) {
  return arena_printf(c->arena, "%s_%d", op_type, og_root(g)->next_id++);
}

/* Only ai.onnx ops have a kind: a node of another domain, such as the call
 * of a model-local function, may be named like one ("Relu") but is opaque
 * to every pass. */
void og_set_op(ONode *n, const char *op_type, const char *domain) {
  n->op_type = op_type;
  n->domain = domain;
  n->kind = !domain || !*domain ? onnx_op_lookup(op_type) : ONNX_OTHER;
}

void og_set_kind(ONode *n, OnnxOp kind) { og_set_op(n, onnx_op_info[kind].name, NULL); }

bool og_is(const ONode *n, OnnxOp kind) {
  return n && !n->dead && n->kind == kind && kind != ONNX_OTHER;
}

bool og_single_use(const OValue *v) { return v->n_uses == 1 && !v->is_output; }

ONode *og_only_reader(const OGraph *g, const OValue *v) {
  if (!og_single_use(v)) return NULL;
  for (int i = 0; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    for (int j = 0; j < n->n_inputs; j++)
      if (n->inputs[j] == v) return n;
  }
  return NULL;
}

static OAttr *og_add_attr(Ctx *c, ONode *n, const char *name, OAttrKind kind) {
  for (int i = 0; i < n->n_attrs; i++)
    if (strcmp(n->attrs[i].name, name) == 0) {
      memset(&n->attrs[i], 0, sizeof n->attrs[i]);
      n->attrs[i].name = name;
      n->attrs[i].kind = kind;
      return &n->attrs[i];
    }
  if (n->n_attrs == n->cap_attrs) {
    int cap = n->cap_attrs ? n->cap_attrs * 2 : 4;
    n->attrs = arena_realloc(c->arena, n->attrs, sizeof(OAttr) * (size_t)n->cap_attrs,
                             sizeof(OAttr) * (size_t)cap);
    n->cap_attrs = cap;
  }
  OAttr *a = &n->attrs[n->n_attrs++];
  a->name = name;
  a->kind = kind;
  return a;
}

void og_attr_int(Ctx *c, ONode *n, const char *name, int64_t v) {
  og_add_attr(c, n, name, OA_INT)->i = v;
}

void og_attr_float(Ctx *c, ONode *n, const char *name, float v) {
  og_add_attr(c, n, name, OA_FLOAT)->f = v;
}

void og_attr_ints(Ctx *c, ONode *n, const char *name, const int64_t *v, int count) {
  OAttr *a = og_add_attr(c, n, name, OA_INTS);
  int64_t *copy = arena_alloc(c->arena, sizeof(int64_t) * (size_t)(count + 1));
  if (count) memcpy(copy, v, sizeof(int64_t) * (size_t)count);
  a->ints = copy;
  a->n = count;
}

void og_attr_floats(Ctx *c, ONode *n, const char *name, const float *v, int count) {
  OAttr *a = og_add_attr(c, n, name, OA_FLOATS);
  float *copy = arena_alloc(c->arena, sizeof(float) * (size_t)(count + 1));
  if (count) memcpy(copy, v, sizeof(float) * (size_t)count);
  a->floats = copy;
  a->n = count;
}

void og_attr_string(Ctx *c, ONode *n, const char *name, const char *s) {
  OAttr *a = og_add_attr(c, n, name, OA_STRING);
  a->s = arena_strdup(c->arena, s);
  a->s_len = strlen(s);
}

void og_attr_tensor(Ctx *c, ONode *n, const char *name, OValue *t) {
  og_add_attr(c, n, name, OA_TENSOR)->tensor = t;
}

void og_attr_graph(Ctx *c, ONode *n, const char *name, OGraph *sub) {
  og_add_attr(c, n, name, OA_GRAPH)->graph = sub;
}

const OAttr *og_get_attr(const ONode *n, const char *name) {
  for (int i = 0; i < n->n_attrs; i++)
    if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
  return NULL;
}

/* Also re-points g's output slots, so that a subgraph yielding `from`
 * itself (an outer value) yields `to`; each slot counts as a use, as in
 * og_recount_uses.  Returns whether an output slot named `from`. */
static bool og_replace_in_graph(OGraph *g, OValue *from, OValue *to) {
  bool was_output = false;
  for (int i = 0; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    for (int j = 0; j < n->n_inputs; j++)
      if (n->inputs[j] == from) {
        n->inputs[j] = to;
        from->n_uses--;
        to->n_uses++;
      }
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH)
        was_output |= og_replace_in_graph(n->attrs[j].graph, from, to);
  }
  for (int i = 0; i < g->outputs.len; i++)
    if (g->outputs.items[i] == from) {
      /* A graph output keeps its name: the caller decides whether to rename
       * `to`; here we only re-point the slot. */
      g->outputs.items[i] = to;
      from->n_uses--;
      to->n_uses++;
      was_output = true;
    }
  return was_output;
}

void og_replace_uses(OGraph *g, OValue *from, OValue *to) {
  /* the node now computing what `from` was takes its place in the model's
   * story too, unless it has a place of its own */
  ONode *heir = to->producer;
  if (heir && !heir->origin && !heir->scope && from->producer)
    og_inherit_origin(heir, from->producer);
  if (og_replace_in_graph(g, from, to)) {
    to->is_output = true;
    from->is_output = false;
  }
}

/* Where og_count_uses counts the uses of v. */
static int *og_use_counter(OValue *v, bool into_mark) { return into_mark ? &v->mark : &v->n_uses; }

static void og_count_graph(const OGraph *g, bool into_mark) {
  for (int i = 0; i < g->nodes.len; i++) {
    const ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    for (int j = 0; j < n->n_inputs; j++)
      if (n->inputs[j]) ++*og_use_counter(n->inputs[j], into_mark);
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH) og_count_graph(n->attrs[j].graph, into_mark);
  }
  for (int i = 0; i < g->outputs.len; i++) ++*og_use_counter(g->outputs.items[i], into_mark);
}

static void og_zero_graph(const OGraph *g, bool into_mark) {
  for (int i = 0; i < g->values.len; i++) *og_use_counter(g->values.items[i], into_mark) = 0;
  for (int i = 0; i < g->nodes.len; i++) {
    const ONode *n = g->nodes.items[i];
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH) og_zero_graph(n->attrs[j].graph, into_mark);
  }
}

void og_count_uses(const OGraph *g, bool into_mark) {
  og_zero_graph(g, into_mark);
  og_count_graph(g, into_mark);
}

void og_recount_uses(OGraph *g) { og_count_uses(g, false); }

const Data *og_const_data(const OValue *v) {
  return (v && v->is_init && v->data.kind != DATA_NONE) ? &v->data : NULL;
}

static void og_dump_type(FILE *f, const OType *t) {
  if (t->rank < 0) {
    fprintf(f, "%s[?]", et_mlir_name(t->et));
    return;
  }
  fprintf(f, "%s[", et_mlir_name(t->et));
  for (int i = 0; i < t->rank; i++) {
    if (i) fputc(',', f);
    if (t->dims[i].param) fputs(t->dims[i].param, f);
    else if (t->dims[i].value >= 0) fprintf(f, "%lld", (long long)t->dims[i].value);
    else fputc('?', f);
  }
  fputc(']', f);
}

static void og_dump_indent(FILE *f, const OGraph *g, int indent) {
  fprintf(f, "%*sgraph %s(", indent, "", g->name);
  for (int i = 0; i < g->inputs.len; i++) {
    const OValue *v = g->inputs.items[i];
    fprintf(f, "%s%s: ", i ? ", " : "", v->name);
    og_dump_type(f, &v->type);
  }
  fprintf(f, ")  %d initializers\n", g->inits.len);
  for (int i = 0; i < g->nodes.len; i++) {
    const ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    fprintf(f, "%*s  ", indent, "");
    for (int j = 0; j < n->n_outputs; j++) {
      fprintf(f, "%s%s: ", j ? ", " : "", n->outputs[j]->name);
      og_dump_type(f, &n->outputs[j]->type);
    }
    fprintf(f, " = %s(", n->op_type);
    for (int j = 0; j < n->n_inputs; j++)
      fprintf(f, "%s%s", j ? ", " : "", n->inputs[j] ? n->inputs[j]->name : "");
    fputc(')', f);
    for (int j = 0; j < n->n_attrs; j++) {
      const OAttr *a = &n->attrs[j];
      fprintf(f, " %s=", a->name);
      switch (a->kind) {
      case OA_INT: fprintf(f, "%lld", (long long)a->i); break;
      case OA_FLOAT: fprintf(f, "%g", (double)a->f); break;
      case OA_STRING: fprintf(f, "\"%s\"", a->s); break;
      case OA_INTS:
        fputc('[', f);
        for (int k = 0; k < a->n; k++) fprintf(f, "%s%lld", k ? "," : "", (long long)a->ints[k]);
        fputc(']', f);
        break;
      default: fputs("...", f); break;
      }
    }
    fputc('\n', f);
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH) og_dump_indent(f, n->attrs[j].graph, indent + 4);
  }
  fprintf(f, "%*s  return ", indent, "");
  for (int i = 0; i < g->outputs.len; i++)
    fprintf(f, "%s%s", i ? ", " : "", ((const OValue *)g->outputs.items[i])->name);
  fputc('\n', f);
}

void og_dump(FILE *f, const OGraph *g) { og_dump_indent(f, g, 0); }

/* ---- unique names --------------------------------------------------------
 * ONNX resolves every tensor by name across a graph and its subgraphs, and an
 * initializer named like a graph input silently becomes that input's default.
 * Generated names ("t_12", "const_3") could meet names users chose (inputs,
 * outputs, parameters), so before writing, the names users chose are kept and
 * any other value whose name is taken gets a suffix. */

typedef struct NameSet {
  const char **slots;
  size_t cap, len;
} NameSet;

static uint64_t name_hash(const char *s) {
  uint64_t h = 1469598103934665603u; /* FNV-1a */
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
  return h;
}

static bool nameset_has(const NameSet *set, const char *name) {
  for (size_t i = name_hash(name) & (set->cap - 1);; i = (i + 1) & (set->cap - 1)) {
    if (!set->slots[i]) return false;
    if (strcmp(set->slots[i], name) == 0) return true;
  }
}

static void nameset_add(Ctx *c, NameSet *set, const char *name) {
  if (2 * (set->len + 1) > set->cap) {
    NameSet bigger = {NULL, set->cap ? set->cap * 2 : 256, 0};
    bigger.slots = arena_alloc(c->arena, sizeof(char *) * bigger.cap);
    for (size_t i = 0; i < set->cap; i++)
      if (set->slots[i]) nameset_add(c, &bigger, set->slots[i]);
    *set = bigger;
  }
  size_t i = name_hash(name) & (set->cap - 1);
  while (set->slots[i]) i = (i + 1) & (set->cap - 1);
  set->slots[i] = name;
  set->len++;
}

static void claim_name(Ctx *c, NameSet *set, OValue *v) {
  if (nameset_has(set, v->name)) {
    const char *base = v->name;
    for (int k = 1;; k++) {
      const char *candidate = arena_printf(c->arena, "%s__%d", base, k);
      if (!nameset_has(set, candidate)) {
        v->name = candidate;
        break;
      }
    }
  }
  nameset_add(c, set, v->name);
}

static void claim_graph_names(Ctx *c, NameSet *set, OGraph *g) {
  for (int i = 0; i < g->values.len; i++) {
    OValue *v = g->values.items[i];
    if (!(g->parent == NULL && (v->is_input || v->is_output))) claim_name(c, set, v);
  }
  for (int i = 0; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH) claim_graph_names(c, set, n->attrs[j].graph);
  }
}

int og_unique_names(Ctx *c, OGraph *root) {
  NameSet set = {NULL, 0, 0};
  nameset_add(c, &set, ""); /* the empty name means "omitted input" */
  for (int pass = 0; pass < 2; pass++) {
    PtrVec *list = pass == 0 ? &root->inputs : &root->outputs;
    for (int i = 0; i < list->len; i++) {
      OValue *v = list->items[i];
      if (nameset_has(&set, v->name))
        return diag_error(c, H2O_EUSAGE, "two graph inputs or outputs are both named '%s'",
                          v->name);
      nameset_add(c, &set, v->name);
    }
  }
  claim_graph_names(c, &set, root);
  return 0;
}

/* An If or Loop reads values of g from inside its subgraphs without listing
 * them as inputs: it may only be placed once those are available too. */
static bool captures_ready(const ONode *node, const OGraph *g) {
  for (int j = 0; j < node->n_attrs; j++) {
    if (node->attrs[j].kind != OA_GRAPH) continue;
    const OGraph *sub = node->attrs[j].graph;
    for (int i = 0; i < sub->nodes.len; i++) {
      const ONode *n = sub->nodes.items[i];
      if (n->dead) continue;
      for (int k = 0; k < n->n_inputs; k++)
        if (n->inputs[k] && n->inputs[k]->graph == g && n->inputs[k]->mark == 1) return false;
      if (!captures_ready(n, g)) return false;
    }
  }
  return true;
}

/* Kahn's algorithm over the node list, stable for nodes already in order
 * (a pass that appends nodes feeding earlier ones calls it). */
void og_toposort(Ctx *c, OGraph *g) {
  int n = g->nodes.len;
  for (int i = 0; i < g->values.len; i++) ((OValue *)g->values.items[i])->mark = 0;
  for (int i = 0; i < n; i++) {
    ONode *node = g->nodes.items[i];
    for (int j = 0; j < node->n_outputs; j++) node->outputs[j]->mark = 1; /* not yet available */
  }
  void **sorted = arena_alloc(c->arena, sizeof(void *) * (size_t)(n + 1));
  bool *placed = arena_alloc(c->arena, (size_t)(n + 1));
  int k = 0;
  while (k < n) {
    bool progress = false;
    for (int i = 0; i < n; i++) {
      if (placed[i]) continue;
      ONode *node = g->nodes.items[i];
      bool ready = true;
      for (int j = 0; j < node->n_inputs && ready; j++)
        if (node->inputs[j] && node->inputs[j]->graph == g && node->inputs[j]->mark == 1) ready = false;
      if (!ready || !captures_ready(node, g)) continue;
      for (int j = 0; j < node->n_outputs; j++) node->outputs[j]->mark = 0;
      placed[i] = true;
      sorted[k++] = node;
      progress = true;
    }
    if (!progress) break; /* a cycle cannot arise from these rewrites; keep order */
  }
  if (k == n) memcpy(g->nodes.items, sorted, sizeof(void *) * (size_t)n);
}

/* ---- node names and origins ------------------------------------------------
 * A node is named after the JAX name scope of the op it came from, so a
 * viewer shows the user's module structure ("jit(Net)/encoder/dense/Gemm")
 * whichever pass made the node; the writer also puts the scope and the
 * Python line into the node's metadata_props. */

const char *og_node_scope(const ONode *n) {
  return n->scope ? n->scope : n->origin ? n->origin->scope : NULL;
}

const char *og_node_source(const ONode *n) {
  return n->source ? n->source : n->origin ? n->origin->source : NULL;
}

void og_inherit_origin(ONode *n, const ONode *from) {
  n->origin = from->origin;
  n->scope = from->scope;
  n->source = from->source;
}

void og_merge_scope(Ctx *c, ONode *n, const ONode *absorbed) {
  const char *a = og_node_scope(n), *b = og_node_scope(absorbed);
  if (!a) {
    if (!n->origin) og_inherit_origin(n, absorbed);
    n->scope = b;
    return;
  }
  if (!b || a == b) return;
  size_t common = 0; /* the length of the shared whole components */
  for (size_t i = 0;; i++) {
    bool end_a = a[i] == 0 || a[i] == '/', end_b = b[i] == 0 || b[i] == '/';
    if (end_a && end_b) {
      common = i;
      if (a[i] == 0 || b[i] == 0) break;
      continue;
    }
    if (a[i] != b[i]) break;
  }
  /* nothing shared: the root's scope stays (the op the fused node replaces) */
  if (common > 0 && a[common] != 0) n->scope = arena_strndup(c->arena, a, common);
}

/* Forward: a node no origin reached (a shape computation a pass added)
 * takes that of the producer of its first input that has one; backward,
 * what remains (a node reading only graph inputs) that of a reader. */
static void inherit_origins(OGraph *g) {
  for (int i = 0; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH) inherit_origins(n->attrs[j].graph);
    if (n->origin || n->scope) continue;
    for (int j = 0; j < n->n_inputs; j++) {
      const ONode *p = n->inputs[j] ? n->inputs[j]->producer : NULL;
      if (p && (p->origin || p->scope)) {
        og_inherit_origin(n, p);
        break;
      }
    }
  }
  for (int i = g->nodes.len - 1; i >= 0; i--) {
    const ONode *n = g->nodes.items[i];
    if (n->dead || !(n->origin || n->scope)) continue;
    for (int j = 0; j < n->n_inputs; j++) {
      ONode *p = n->inputs[j] ? n->inputs[j]->producer : NULL;
      if (p && !p->dead && !p->origin && !p->scope) og_inherit_origin(p, n);
    }
  }
}

static void name_graph_nodes(Ctx *c, NameSet *set, OGraph *g) {
  for (int i = 0; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    const char *scope = og_node_scope(n);
    const char *base = scope ? arena_printf(c->arena, "%s/%s", scope, n->op_type) : n->op_type;
    const char *name = base;
    for (int k = 1; nameset_has(set, name); k++) name = arena_printf(c->arena, "%s_%d", base, k);
    nameset_add(c, set, name);
    n->name = name;
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH) name_graph_nodes(c, set, n->attrs[j].graph);
  }
}

void og_name_nodes(Ctx *c, OGraph *root) {
  inherit_origins(root);
  NameSet set = {NULL, 0, 0};
  nameset_add(c, &set, "");
  name_graph_nodes(c, &set, root);
}
