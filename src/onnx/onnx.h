/* onnx/onnx.h - the ONNX graph: values, nodes, graphs, local functions and
 * the model (graph.c), and the verifier run between passes (verify.c).  The
 * lowering builds it, the passes rewrite it, the writer serialises it.
 */
#ifndef H2O_ONNX_ONNX_H
#define H2O_ONNX_ONNX_H

#include "ir/ir.h"

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
  int n_uses;         /* maintained by og_ functions and recomputed by og_recount */
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
  const char *op_type;
  const char *domain;  /* NULL = ai.onnx */
  const char *name;
  OValue **inputs;     /* a NULL entry is an omitted optional input */
  int n_inputs;
  OValue **outputs;
  int n_outputs;
  OAttr *attrs;
  int n_attrs, cap_attrs;
  const Op *origin;    /* the HLO op it came from (position, scope) */
  bool dead;           /* removed by a pass; skipped by the writer */
  /* Every input has the output's shape: true for the ONNX node of a StableHLO
   * elementwise op, whose operands all have one shape.  It lets a pass drop
   * an Expand in front of such a node (ONNX broadcasting restores it) as long
   * as one full-shape input remains; the pass clears it when it does. */
  bool same_shape_inputs;
  /* A call of a model-local function (lower/function.c): op_type is the
   * function's name, domain OG_FN_DOMAIN.  Passes treat it as an opaque op:
   * og_is matches only nodes of the ai.onnx domain. */
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
  PtrVec functions;   /* OFunction*, in the order they were lowered */
} OModel;

OGraph *og_new(Ctx *c, const char *name, OGraph *parent);
OValue *og_value(Ctx *c, OGraph *g, const char *name_hint); /* fresh unique name */
OValue *og_init(Ctx *c, OGraph *g, const char *name_hint, ElemType et, int rank,
                const int64_t *dims, Data data);
ONode *og_node(Ctx *c, OGraph *g, const char *op_type, OValue *const *inputs,
               int n_inputs, int n_outputs);
void og_attr_int(Ctx *c, ONode *n, const char *name, int64_t v);
void og_attr_float(Ctx *c, ONode *n, const char *name, float v);
void og_attr_ints(Ctx *c, ONode *n, const char *name, const int64_t *v, int count);
void og_attr_floats(Ctx *c, ONode *n, const char *name, const float *v, int count);
void og_attr_string(Ctx *c, ONode *n, const char *name, const char *s);
void og_attr_tensor(Ctx *c, ONode *n, const char *name, OValue *t);
void og_attr_graph(Ctx *c, ONode *n, const char *name, OGraph *sub);
const OAttr *og_get_attr(const ONode *n, const char *name);
/* n is a live node of type op_type (false for NULL and dead nodes). */
bool og_is(const ONode *n, const char *op_type);
/* v is read by one node only and is not a graph output: a fusion may absorb it. */
bool og_single_use(const OValue *v);
/* A fresh node name "<op_type>_<n>", unique across g's root graph. */
const char *og_node_name(Ctx *c, OGraph *g, const char *op_type);
void og_set_type(Ctx *c, OValue *v, ElemType et, int rank, const int64_t *dims);
void og_type_from_hlo(Ctx *c, OValue *v, const Type *t); /* '?' dims -> unknown */
/* Replaces every use of `from` by `to` (graph outputs included). */
void og_replace_uses(OGraph *g, OValue *from, OValue *to);
void og_recount_uses(OGraph *g);
/* The initializer data of v when it is a constant (initializer), else NULL. */
const Data *og_const_data(const OValue *v);
void og_dump(FILE *f, const OGraph *g);
/* Makes every value name unique across g and its subgraphs, keeping the
 * names of the graph's inputs and outputs (which must differ: else an error). */
int og_unique_names(Ctx *c, OGraph *root);

/* onnx/verify.c: the graph's invariants (every input defined before use,
 * outputs produced, names and subgraph scopes); 0, or -1 after an internal
 * error naming what is broken.  pipeline.c runs it after every stage. */
int og_verify(Ctx *c, const OGraph *g);

#endif
