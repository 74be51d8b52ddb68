/* onnx/onnx.h - the ONNX graph: the table of the ONNX ops the core knows
 * (onnx_ops.def, ops.c), values, nodes, graphs, local functions and the
 * model (graph.c), and the verifier run between passes (verify.c).  The
 * lowering builds it, the passes rewrite it, the writer serialises it.
 */
#ifndef H2O_ONNX_ONNX_H
#define H2O_ONNX_ONNX_H

#include "ir/ir.h"

/* ===================================================================
 * The ONNX op table (onnx_ops.def, onnx/ops.c): one row per ai.onnx op the
 * core emits or matches, with what a pass needs to know about it.  A node
 * carries its op as an OnnxOp (ONode.kind), so passes switch on it and read
 * the facts from onnx_op_info instead of keeping lists of names.
 * =================================================================== */
enum {
  ONNX_BROADCASTS = 1 << 0,  /* multidirectional broadcasting of every input */
  ONNX_ELEMENTWISE = 1 << 1, /* per element, no axis: commutes with a Transpose */
  ONNX_SAME_SHAPE = 1 << 2,  /* first output has the first input's shape */
  ONNX_RESHAPES = 1 << 3,    /* the input's elements in order, another shape */
  ONNX_REDUCES = 1 << 4,     /* ReduceX(data, axes) with keepdims */
  ONNX_KEEPS_BATCH = 1 << 5, /* convolution, pooling: dim 0 passes through */
};
#define ONNX_VARIADIC 0x7fff /* max inputs of a variadic op */

typedef enum OnnxOp {
  ONNX_OTHER = 0, /* not in the table: a local function's call, another domain */
#define ONNX_OP(name, min_in, max_in, facts) ONNX_##name,
#include "onnx/onnx_ops.def"
#undef ONNX_OP
  ONNX__COUNT
} OnnxOp;

typedef struct OnnxOpInfo {
  const char *name;   /* the op_type; "" for ONNX_OTHER */
  int min_inputs, max_inputs;
  unsigned facts;     /* ONNX_BROADCASTS | ... */
} OnnxOpInfo;
extern const OnnxOpInfo onnx_op_info[ONNX__COUNT];

/* The ai.onnx op named op_type, or ONNX_OTHER. */
OnnxOp onnx_op_lookup(const char *op_type);
static inline bool onnx_op_has(OnnxOp op, unsigned facts) {
  return (onnx_op_info[op].facts & facts) == facts;
}

/* ===================================================================
 * ONNX graph (onnx/graph.c).  The lowering builds it; the passes rewrite it;
 * the writer serialises it.  Values are objects that nodes point to, so a
 * pass can match patterns by pointer and count uses.
 * =================================================================== */
typedef struct ODim {
  int64_t value;      /* >= 0, or -1 when not a number */
  const char *param;  /* symbolic name, e.g. "B"; NULL = unknown */
} ODim;

typedef struct OType {
  ElemType et;        /* ET_UNDEF = unknown */
  int rank;           /* -1 = unknown shape */
  ODim *dims;
} OType;

typedef struct ONode ONode;
typedef struct OGraph OGraph;

struct OValue {
  const char *name;
  OType type;
  ONode *producer;    /* NULL for graph inputs, initializers, outer-scope values */
  int n_uses;         /* live node inputs and graph output slots naming it:
                         kept by og_ functions and passes, recomputed by
                         og_recount_uses, checked by og_verify */
  bool is_input, is_output, is_init;
  bool is_param;      /* an initializer holding a weight the caller passed (h2o_param) */
  bool poisoned;      /* stands for the result of an op that failed to lower */
  Data data;          /* initializers */
  OGraph *graph;      /* the graph that owns it */
  int mark;           /* scratch for passes; each pass sets it before use */
};

typedef enum OAttrKind {
  OA_FLOAT = 1, OA_INT = 2, OA_STRING = 3, OA_TENSOR = 4, OA_GRAPH = 5,
  OA_FLOATS = 6, OA_INTS = 7, OA_STRINGS = 8
} OAttrKind; /* the AttributeProto.AttributeType numbers */

typedef struct OAttr {
  const char *name;
  OAttrKind kind;
  int64_t i;
  float f;
  const char *s;
  size_t s_len;
  const int64_t *ints;
  const float *floats;
  const char **strings;
  int n;
  OValue *tensor;     /* an initializer-like value not in the graph's lists */
  OGraph *graph;
} OAttr;

struct ONode {
  /* op_type, domain and kind change together, through og_set_op. */
  const char *op_type;
  const char *domain;  /* NULL = ai.onnx */
  OnnxOp kind;         /* op_type looked up in the op table; ONNX_OTHER in other domains */
  const char *name;
  OValue **inputs;     /* a NULL entry is an omitted optional input */
  int n_inputs;
  OValue **outputs;
  int n_outputs;
  OAttr *attrs;
  int n_attrs, cap_attrs;
  /* Where it came from: the HLO op (its position, JAX scope and Python
   * source line); the scope when not origin's: the op's prefixed by the
   * calls it was inlined from, or for a node a fusion made, the JAX scope
   * the nodes it replaced share.  og_node gives a node made while a pass
   * rewrites another the origin of that one (OGraph.rewriting), and
   * og_name_nodes names every node after its scope before writing. */
  const Op *origin;
  const char *scope;
  const char *source; /* the Python line, when not origin's (an inlined call's) */
  bool dead;           /* removed by a pass; skipped by the writer */
  /* Every input has the output's shape: true for the ONNX node of a StableHLO
   * elementwise op, whose operands all have one shape.  It lets a pass drop
   * an Expand in front of such a node (ONNX broadcasting restores it) as long
   * as one full-shape input remains; the pass clears it when it does. */
  bool same_shape_inputs;
  /* A call of a model-local function (lower/function.c): op_type is the
   * function's name, domain OG_FN_DOMAIN.  Passes treat it as an opaque op:
   * its kind is ONNX_OTHER whatever its name. */
  const struct OFunction *fn;
};

struct OGraph {
  const char *name;
  OGraph *parent;      /* enclosing graph of a subgraph (If/Loop body) */
  PtrVec nodes;        /* ONode*, in topological order */
  PtrVec inputs;       /* OValue* */
  PtrVec outputs;      /* OValue* */
  PtrVec inits;        /* OValue* with is_init */
  PtrVec values;       /* every OValue created in this graph */
  int next_id;         /* for fresh names */
  /* The node a pass is rewriting (set on the root graph; fm_each_node sets
   * it around each rewrite): og_node gives the nodes it makes meanwhile
   * that node's origin and scope, so a pass needs no code for it. */
  const ONode *rewriting;
};

/* A model-local function (ONNX FunctionProto): a func.func lowered once into
 * a graph of its own (no parent: it sees nothing of its callers), whose
 * inputs and outputs are the function's; its initializers are written as
 * Constant nodes, which is all a FunctionProto can hold. */
typedef struct OFunction {
  const char *name;   /* a valid identifier, unique in the model */
  OGraph *graph;
} OFunction;
#define OG_FN_DOMAIN "hlo2onnx.fn" /* the operator domain of the call nodes */

typedef struct OModel {
  OGraph *graph;
  int opset;
  const char *producer_name, *producer_version;
  const char *doc;
  int64_t model_version; /* 0: not written */
  const h2o_metadata *metadata; /* metadata_props */
  int n_metadata;
  PtrVec functions;   /* OFunction*, in the order they were lowered */
} OModel;

OGraph *og_new(Ctx *c, const char *name, OGraph *parent);
OValue *og_value(Ctx *c, OGraph *g, const char *name_hint); /* fresh unique name */
OValue *og_init(Ctx *c, OGraph *g, const char *name_hint, ElemType et, int rank,
                const int64_t *dims, Data data);
/* A node of the ai.onnx op op_type (kind looked up in the op table). */
/* A 1-D int64 initializer holding a copy of vals[0..n) (axes, shapes). */
OValue *og_init_i64s(Ctx *c, OGraph *g, const char *name_hint, int n, const int64_t *vals);
/* The elements of v when it is an int64 constant of at most max elements
 * (axes, shapes, starts): their count, else -1. */
int og_const_i64s(Ctx *c, const OValue *v, int64_t *out, int max);
/* Node n reads v at input slot i instead (use counts kept). */
void og_set_input(ONode *n, int i, OValue *v);
ONode *og_node(Ctx *c, OGraph *g, const char *op_type, OValue *const *inputs,
               int n_inputs, int n_outputs);
/* The one way to change a node's op: sets op_type, domain (NULL = ai.onnx)
 * and the kind that follows from them.  og_set_kind: an op of the table. */
void og_set_op(ONode *n, const char *op_type, const char *domain);
void og_set_kind(ONode *n, OnnxOp kind);
void og_attr_int(Ctx *c, ONode *n, const char *name, int64_t v);
void og_attr_float(Ctx *c, ONode *n, const char *name, float v);
void og_attr_ints(Ctx *c, ONode *n, const char *name, const int64_t *v, int count);
void og_attr_floats(Ctx *c, ONode *n, const char *name, const float *v, int count);
void og_attr_string(Ctx *c, ONode *n, const char *name, const char *s);
void og_attr_tensor(Ctx *c, ONode *n, const char *name, OValue *t);
void og_attr_graph(Ctx *c, ONode *n, const char *name, OGraph *sub);
const OAttr *og_get_attr(const ONode *n, const char *name);
/* n is a live node of the ai.onnx op `kind` (false for NULL and dead nodes). */
bool og_is(const ONode *n, OnnxOp kind);
/* v is read by one node only and is not a graph output: a fusion may absorb it. */
bool og_single_use(const OValue *v);
/* A fresh node name "<op_type>_<n>", unique across g's root graph. */
const char *og_node_name(Ctx *c, OGraph *g, const char *op_type);
/* The JAX name scope of n (its own, else its origin's) and the Python line
 * that made it ("model.py:12"), or NULL. */
const char *og_node_scope(const ONode *n);
const char *og_node_source(const ONode *n);
/* n, which replaces `absorbed` (a fusion), takes the scope both share: the
 * common '/'-separated prefix of their scopes, when they have one. */
void og_merge_scope(Ctx *c, ONode *n, const ONode *absorbed);
/* n comes from where `from` came from (origin, scope, source). */
void og_inherit_origin(ONode *n, const ONode *from);
/* Before writing: every live node of root, its subgraphs included, is named
 * after its scope, "jit(f)/dense/Gemm" (a suffix "_<k>" when taken); a node
 * no origin reached takes that of the node producing its first input that
 * has one, else that of a node reading it. */
void og_name_nodes(Ctx *c, OGraph *root);
void og_set_type(Ctx *c, OValue *v, ElemType et, int rank, const int64_t *dims);
/* '?' dims -> unknown; a complex type -> real pairs (type_as_pairs) */
void og_type_from_hlo(Ctx *c, OValue *v, const Type *t);
/* Replaces every use of `from` by `to` (graph outputs included). */
void og_replace_uses(OGraph *g, OValue *from, OValue *to);
/* The use count of every value of g and its subgraphs (the live node
 * inputs and graph output slots that name it), into OValue.n_uses or, for
 * og_verify to compare with n_uses, into OValue.mark.  A value of an
 * enclosing graph read here is counted on, not zeroed. */
void og_count_uses(const OGraph *g, bool into_mark);
void og_recount_uses(OGraph *g); /* og_count_uses into n_uses */
/* Re-sorts g's nodes topologically (stable), after a pass appended nodes
 * that earlier nodes read; value marks are scratch. */
void og_toposort(Ctx *c, OGraph *g);
/* The initializer data of v when it is a constant (initializer), else NULL. */
const Data *og_const_data(const OValue *v);
void og_dump(FILE *f, const OGraph *g);
/* Makes every value name unique across g and its subgraphs, keeping the
 * names of the graph's inputs and outputs (which must differ: else an error). */
int og_unique_names(Ctx *c, OGraph *root);

/* onnx/ops.c: every live node of g and its subgraphs has the kind its
 * op_type and domain name, an ai.onnx node is one of the table's ops and
 * has as many inputs as the table allows; 0, or -1 after an internal error
 * naming the node.  og_verify runs it: after the lowering and every pass. */
int og_check_ops(Ctx *c, const OGraph *g);

/* onnx/verify.c: the graph's invariants (every input defined before use,
 * subgraph scopes, outputs produced once and by the node they name, use
 * counts as og_recount_uses computes them); 0, or -1 after an internal
 * error naming what is broken.  pipeline.c runs it after every stage. */
int og_verify(Ctx *c, const OGraph *g);

#endif
