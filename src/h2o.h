/* h2o.h - the one internal header of the hlo2onnx C core.
 *
 * The pipeline, one directory per stage:
 *
 *   text --parse/-->   HLO IR (Module)          "parse"
 *        --lower/-->   ONNX graph (OGraph)      "lower"
 *        --passes/-->  ONNX graph, simplified   "fold", "simplify", fusions, "dce"
 *        --write/-->   .onnx protobuf (+ .data) "write"
 *
 * pipeline.c lists the stages in order.  Each section of this header belongs
 * to one file (or directory) and says what it owns.  Prefixes: arena_, diag_,
 * et_/type_ (base), lex_/parse_ (parse), ir_ (HLO IR helpers), lw_ (lowering),
 * og_ (ONNX graph), pass_ (passes), pb_/ow_ (writer).
 */
#ifndef H2O_H
#define H2O_H

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hlo2onnx.h"

#if defined(__GNUC__)
#define H2O_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define H2O_PRINTF(f, a)
#endif

typedef struct Ctx Ctx;
typedef struct Lower Lower;

/* ===================================================================
 * base/arena.c - arena memory.  A conversion owns one arena; everything it
 * builds lives there and is freed at once.  Allocation never returns NULL:
 * when memory runs out the arena longjmps to the handler the pipeline set
 * (Ctx.oom), so callers need no checks.  Large tensor data is never copied
 * into the arena: it points at the caller's buffers or at the input text.
 * =================================================================== */
typedef struct Arena Arena;
Arena *arena_new(jmp_buf *oom);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t size); /* zeroed, 16-byte aligned */
void *arena_realloc(Arena *a, void *old, size_t old_size, size_t new_size);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_strdup(Arena *a, const char *s);
char *arena_printf(Arena *a, const char *fmt, ...) H2O_PRINTF(2, 3);
size_t arena_bytes_used(const Arena *a);

/* A growable array of pointers, its storage in the arena. */
typedef struct PtrVec {
  void **items;
  int len, cap;
} PtrVec;
void ptrvec_push(Arena *a, PtrVec *v, void *item);

/* ===================================================================
 * base/diag.c - diagnostics.  User errors are values: each is formatted as
 * "file:line:col: error: message", followed by the source line and a caret,
 * and appended to Ctx.diag.  The first error decides Ctx.status.  A broken
 * internal invariant is reported the same way by H2O_CHECK, naming
 * __FILE__:__LINE__; nothing here ever aborts the host process.
 * =================================================================== */
typedef struct SrcPos {
  int line, col; /* 1-based; line 0 = unknown */
} SrcPos;

typedef struct Op Op;

struct Ctx {
  Arena *arena;
  jmp_buf *oom;            /* where arena_alloc jumps when memory runs out */
  const char *file;        /* name shown in messages */
  const char *src;         /* the input text (not NUL-terminated) */
  size_t src_len;
  const h2o_options *opts;
  /* diagnostics */
  char *diag;              /* malloc'd, grows; NUL-terminated */
  size_t diag_len, diag_cap;
  int n_errors;
  int status;              /* H2O_OK until the first error */
  int max_errors;          /* stop recording after this many (default 50) */
};

void ctx_init(Ctx *c, Arena *a, jmp_buf *oom, const char *file, const char *src,
              size_t len, const h2o_options *opts);
void ctx_release(Ctx *c); /* frees diag */
/* Each returns -1 so callers can write `return diag_error_at(...)`. */
int diag_error_at(Ctx *c, int status, SrcPos pos, const char *fmt, ...)
    H2O_PRINTF(4, 5);
int diag_verror_at(Ctx *c, int status, SrcPos pos, const char *fmt, va_list ap);
/* An error about an op: its position, and its JAX name scope when known. */
int diag_error_op(Ctx *c, int status, const Op *op, const char *fmt, ...)
    H2O_PRINTF(4, 5);
int diag_error(Ctx *c, int status, const char *fmt, ...) H2O_PRINTF(3, 4);
int diag_internal(Ctx *c, const char *file, int line, const char *what);
void diag_note(Ctx *c, const char *fmt, ...) H2O_PRINTF(2, 3); /* appends a line */

#define H2O_CHECK(ctx, cond)                                   \
  do {                                                         \
    if (!(cond)) return diag_internal((ctx), __FILE__, __LINE__, #cond); \
  } while (0)

/* ===================================================================
 * base/types.c - element types and tensor types.  ElemType values are the
 * ONNX TensorProto.DataType numbers, so the writer needs no mapping.
 * =================================================================== */
typedef enum ElemType {
  ET_UNDEF = 0, ET_F32 = 1, ET_U8 = 2, ET_I8 = 3, ET_U16 = 4, ET_I16 = 5,
  ET_I32 = 6, ET_I64 = 7, ET_STRING = 8, ET_BOOL = 9, ET_F16 = 10,
  ET_F64 = 11, ET_U32 = 12, ET_U64 = 13, ET_C64 = 14, ET_C128 = 15,
  ET_BF16 = 16, ET_F8E4M3FN = 17, ET_F8E4M3FNUZ = 18, ET_F8E5M2 = 19,
  ET_F8E5M2FNUZ = 20, ET_U4 = 21, ET_I4 = 22, ET_F4E2M1 = 23,
  ET_F8E8M0 = 24, ET_U2 = 25, ET_I2 = 26, ET_F6E2M3 = 27, ET_F6E3M2 = 28,
  /* MLIR types without an ONNX counterpart: known so that the lowering can
   * name them in its error (et_onnx_name is "none") */
  ET_NO_ONNX = 100, ET_F8E4M3 = ET_NO_ONNX, ET_F8E3M4, ET_F8E4M3B11FNUZ
} ElemType;

size_t et_size(ElemType et);          /* bytes per element; 0 for sub-byte/undef */
const char *et_mlir_name(ElemType et); /* "f32", "i1", "ui8", ... */
const char *et_onnx_name(ElemType et); /* "FLOAT", "BOOL", ... */
ElemType et_from_mlir(const char *s, size_t n); /* ET_UNDEF when unknown */
bool et_is_float(ElemType et);
bool et_is_signed_int(ElemType et);   /* i8..i64 */
bool et_is_unsigned_int(ElemType et); /* ui8..ui64 (not bool) */
bool et_is_int(ElemType et);          /* signed or unsigned, not bool */

#define DIM_DYN (-1) /* a '?' dimension */
#define MAX_RANK 64

typedef enum TypeKind { TK_TENSOR = 0, TK_TOKEN, TK_TUPLE, TK_OTHER } TypeKind;

typedef struct Type {
  TypeKind kind;
  ElemType et;
  int rank;
  const int64_t *dims; /* rank entries, DIM_DYN for '?'; arena-owned */
} Type;

int64_t type_numel(const Type *t);  /* -1 when a dim is dynamic or on overflow */
bool type_is_static(const Type *t);
bool type_equal(const Type *a, const Type *b);
/* "tensor<4x?xf32>" into buf; returns buf. */
char *type_str(const Type *t, char *buf, size_t size);

/* ===================================================================
 * Tensor data.  Bytes are little-endian, row-major.  DATA_HEX points at the
 * hex digits of a dense<"0x..."> blob in the input text: it is decoded while
 * writing, so the CLI path never holds a second copy of big constants.
 * Booleans take one byte each, as in both MLIR blobs and ONNX raw_data.
 * =================================================================== */
typedef enum DataKind { DATA_NONE = 0, DATA_RAW, DATA_HEX } DataKind;

typedef struct Data {
  DataKind kind;
  const void *ptr; /* RAW: the bytes; HEX: the first hex digit */
  size_t nbytes;   /* size of the decoded bytes */
} Data;

/* The decoded bytes: RAW as is, HEX decoded into the arena once (the Data
 * then becomes RAW, so later calls cost nothing). */
const uint8_t *data_bytes(Ctx *c, const Data *d);
/* Decodes HEX digits (2*n of them) into out[0..n). */
void hex_decode(const char *hex, size_t n, uint8_t *out);

/* ===================================================================
 * Attributes of HLO ops, normalised by the parser: whichever form the op was
 * printed in (pretty or generic), attributes carry the names of the StableHLO
 * spec, e.g. broadcast_in_dim has "broadcast_dimensions", dot_general has a
 * dict "dot_dimension_numbers" with "lhs_contracting_dimensions" etc.
 * =================================================================== */
typedef enum AttrKind {
  AK_UNIT,   /* a name without value: `unit` or a flag */
  AK_BOOL,   /* true / false */
  AK_INT,    /* 3 : i64 (type in .type when given) */
  AK_FLOAT,  /* 1.0 : f32 */
  AK_STRING, /* "text" (.s, .len; may contain NUL after unescaping) */
  AK_SYMBOL, /* @name (.s without '@') */
  AK_ENUM,   /* a bare word: GT, FLOAT, DEFAULT, #stablehlo<comparison_direction GT> -> "GT" */
  AK_ARRAY,  /* [a, b], array<i64: 1, 2> (.elems) */
  AK_DENSE,  /* dense<...> : tensor<...> (.type, .dense) */
  AK_DICT,   /* {a = 1, b}; also #stablehlo.dot<...> etc. with .s = "stablehlo.dot" */
  AK_TYPE,   /* a type used as a value */
  AK_OPAQUE  /* anything else we keep as text (.s) but do not interpret */
} AttrKind;

typedef struct Attr Attr;
typedef struct NamedAttr {
  const char *name;
  Attr *value;
} NamedAttr;

typedef struct Dense {
  ElemType et;
  int64_t numel;  /* elements of the tensor type */
  bool splat;     /* one element stored, repeated numel times */
  Data data;      /* splat ? one element : numel elements */
} Dense;

struct Attr {
  AttrKind kind;
  SrcPos pos;
  bool b;
  int64_t i;
  double f;
  const char *s;
  size_t len;            /* AK_STRING */
  Type type;             /* AK_INT/AK_FLOAT when typed, AK_DENSE, AK_TYPE */
  Attr **elems;          /* AK_ARRAY */
  int n_elems;
  NamedAttr *fields;     /* AK_DICT */
  int n_fields;
  Dense *dense;          /* AK_DENSE */
};

/* ===================================================================
 * The op table (ops.def): one row per op we know.  It feeds the OpKind enum,
 * the name table the parser uses, and the converter table of the lowering.
 * =================================================================== */
typedef int (*LowerFn)(Lower *L, const Op *op);

typedef enum OpKind {
  OP_UNKNOWN = 0,
#define OP(id, name, fn, hint) OP_##id,
#include "ops.def"
#undef OP
  OP__COUNT
} OpKind;

typedef struct OpInfo {
  const char *name;      /* MLIR op name, e.g. "stablehlo.add" */
  LowerFn lower;         /* NULL: known but not convertible */
  const char *onnx_hint; /* for table-driven converters: the ONNX op, or NULL */
} OpInfo;

extern const OpInfo op_table[OP__COUNT];

/* The converters named in ops.def, declared once per row (a converter that
 * serves several rows is declared several times, which C allows). */
#define OP(id, name, fn, hint) int fn(Lower *L, const Op *op);
#include "ops.def"
#undef OP
OpKind op_lookup(const char *name, size_t len);

/* ===================================================================
 * HLO IR (parse/ builds it, parse/ir.c reads it): Module > Func > Block > Op.
 * Values are SSA; each has a Type.  Regions hold one block (StableHLO's rule).
 * =================================================================== */
typedef struct Value Value;
typedef struct Block Block;
typedef struct Region Region;
typedef struct Func Func;
typedef struct Module Module;
typedef struct OValue OValue;

struct Value {
  Type type;
  const char *name; /* as written, e.g. "%3", "%0#1", "%arg2" (for messages) */
  Op *def;          /* NULL for block arguments */
  int index;        /* result index, or argument index */
  int n_uses;       /* ops reading it (f(x, x) reads x once) */
  const Op *user;   /* the last op reading it: the only one if n_uses == 1 */
  OValue *lowered;  /* bound by the lowering */
};

struct Op {
  OpKind kind;
  const char *opname; /* as written, e.g. "stablehlo.add" */
  Value **operands;
  int n_operands;
  Value **results;
  int n_results;
  NamedAttr *attrs;
  int n_attrs;
  Region **regions;
  int n_regions;
  SrcPos pos;         /* of the op name */
  const char *scope;  /* JAX name scope from loc(...), e.g. "jit(f)/dot_general" */
};

struct Block {
  Value **args;
  int n_args;
  Op **ops;
  int n_ops;
};

struct Region {
  Block **blocks;
  int n_blocks;
};

struct Func {
  const char *name;   /* without '@' */
  bool is_public;
  Block *body;        /* body->args are the arguments */
  NamedAttr **arg_attrs; /* per argument (n_attrs in arg_n_attrs) */
  int *arg_n_attrs;
  const char **arg_loc_names; /* loc("x") on an argument, or NULL */
  int n_args;
  Type *result_types;
  NamedAttr **result_attrs;
  int *result_n_attrs;
  int n_results;
  SrcPos pos;
};

struct Module {
  const char *name;   /* @jit_f -> "jit_f"; may be NULL */
  NamedAttr *attrs;
  int n_attrs;
  Func **funcs;
  int n_funcs;
};

/* parse/ (lex.c, attr.c, dense.c, op.c, parse.c): the MLIR text of a module
 * into the IR.  Returns NULL after reporting the first error with its
 * position.  What converters can rely on, whichever form the op was printed in:
 *  - attribute names are the spec's (pretty `dims` of broadcast_in_dim is
 *    "broadcast_dimensions", compare's words are "comparison_direction" and
 *    "compare_type", dot_general has the dict "dot_dimension_numbers" with all
 *    four lists, convolution "dimension_numbers" (.s "stablehlo.conv"),
 *    "window_strides", "padding" (AK_DENSE tensor<Nx2xi64>), ...);
 *  - reduce always has its body region, made up for `applies stablehlo.add`;
 *    its block arguments are [acc_0..acc_n-1, x_0..x_n-1], its operands
 *    [inputs..., inits...]; while has regions[0] = cond, regions[1] = body;
 *  - a scalar type outside a tensor (`1 : i64`) is TK_OTHER with .et set;
 *  - unknown ops keep their opname, kind OP_UNKNOWN; unnamed pretty items of
 *    unknown ops are "word0", "symbol", "string", "indices", "opaque". */
Module *parse_module(Ctx *c);

/* parse/ir.c */
Func *ir_find_func(const Module *m, const char *name);
Func *ir_entry_func(const Module *m); /* public "main", else the only public func */
const Attr *ir_attr(const NamedAttr *attrs, int n, const char *name);
const Attr *ir_op_attr(const Op *op, const char *name);
const Attr *ir_dict_field(const Attr *dict, const char *name);
/* Reads an integer list from [1, 2], array<i64: 1, 2> or dense<[1, 2]>.
 * Returns the count, or -1 if the attribute is not such a list. */
int ir_attr_i64s(Ctx *c, const Attr *a, int64_t **out);
bool ir_attr_int(const Attr *a, int64_t *out);
void ir_dump_module(FILE *f, const Module *m);
/* Sets n_uses and user of every value of m (parse_module calls it). */
void ir_count_uses(Module *m);

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

/* ===================================================================
 * lower/ - HLO IR to ONNX graph.  lower.c walks the entry function, inlines
 * calls (or calls local functions: function.c) and dispatches each op
 * through op_table; the families live in
 * lower/<family>.c.  A converter reads the op, emits nodes with the lw_
 * builders below, and binds each HLO result to an ONNX value.  It returns 0,
 * or -1 after reporting an error with lw_unsupported / diag_error_op.
 * =================================================================== */
struct Lower {
  Ctx *c;
  const Module *module;
  OGraph *g;          /* the graph being built (a subgraph inside control flow) */
  int opset;
  const Op *op;       /* the op being lowered: names and positions for nodes */
  const Func *call_stack[64]; /* functions being inlined, to refuse recursion */
  int call_depth;
  OValue **ret;       /* where the next `return` stores its operands */
  int n_ret;
  struct Unsupported *unsupported; /* ops without converter: name, count, first */
  long n_lowered;     /* ops lowered so far, those of inlined calls included */
  struct TupleBinding *tuples; /* lower/tuple.c: the elements of tuple values */
  struct LocalFn *local;       /* lower/function.c: per function of the module */
  PtrVec functions;            /* OFunction*, the local functions lowered so far */
};

/* The most ops a module may lower to, counting each inlined call anew: a
 * small text whose functions each call the next twice would otherwise
 * expand exponentially (2^40 ops from 40 functions).  Fuzz builds lower it. */
#ifndef H2O_MAX_LOWERED_OPS
#define H2O_MAX_LOWERED_OPS (1L << 21)
#endif
/* Control flow nests at most this deep: ONNX If/Loop subgraphs within
 * subgraphs.  Each level nests three protobuf messages (node, attribute,
 * graph), and protobuf readers (onnx, onnxruntime) refuse messages nested
 * deeper than 100: the innermost value_info's dimension sits at level
 * 7 + 3 * depth, so 31 is the deepest model they can load. */
#define H2O_MAX_SUBGRAPH_DEPTH 31
/* lower/limits.c: the ops `entry` expands to with its calls inlined (and
 * regions included), counted without lowering; saturates at LONG_MAX.
 * *where = the op of entry's body at which the count passes limit. */
long lw_expanded_ops(Ctx *c, const Module *m, const Func *entry, long limit,
                     const Op **where);
/* lower/checks.c: 0, or -1 after reporting an op whose result shape is not
 * what its operands and attributes make (elementwise ops, transpose,
 * concatenate, slice, reduce): possible in a valid-looking signature. */
int lw_check_shapes(Lower *L, const Op *op);

/* The ONNX value of an HLO value (its binding). */
OValue *lw_get(Lower *L, const Value *v);
/* Binds result `v` to `ov`, giving ov v's type. */
void lw_bind(Lower *L, Value *v, OValue *ov);
/* A node of the current op; outputs get fresh names and unknown types. */
ONode *lw_node(Lower *L, const char *op_type, int n_in, OValue *const *in,
               int n_out);
/* One-output conveniences. */
OValue *lw_op1(Lower *L, const char *op_type, OValue *a);
OValue *lw_op2(Lower *L, const char *op_type, OValue *a, OValue *b);
OValue *lw_op3(Lower *L, const char *op_type, OValue *a, OValue *b, OValue *c);
/* Constants (initializers). */
OValue *lw_const_i64s(Lower *L, int n, const int64_t *vals); /* 1-D int64 */
OValue *lw_const_scalar(Lower *L, ElemType et, double v);   /* rank 0 */
OValue *lw_const_data(Lower *L, ElemType et, int rank, const int64_t *dims,
                      Data data);
/* Casts to `et` unless already of that type (known from its OType). */
OValue *lw_cast(Lower *L, OValue *v, ElemType et);
/* Sets v's type (dims: DIM_DYN where unknown) and returns v. */
OValue *lw_typed(Lower *L, OValue *v, ElemType et, int rank, const int64_t *dims);
/* Transpose of x (type et, dims `dims`) unless perm is the identity;
 * out_dims gets the permuted dims either way. */
OValue *lw_transpose(Lower *L, OValue *x, ElemType et, int rank, const int64_t *dims,
                     const int64_t *perm, int64_t *out_dims);
/* Reports "unsupported: <op> ...: reason" at the current op; returns -1. */
int lw_unsupported(Lower *L, const char *fmt, ...) H2O_PRINTF(2, 3);
/* Lowers every op of a block in order (used for function bodies and regions).
 * Ops that fail are reported and their results poisoned, so one run reports
 * every unsupported op. */
int lw_block(Lower *L, const Block *b);
/* Inlines `f` with its arguments bound to `args`; its returned values are
 * stored in results[0..f->n_results). */
int lw_inline_call(Lower *L, const Func *f, OValue *const *args, OValue **results);
/* lower/function.c: h2o_options.local_functions.  lw_plan_functions counts
 * the call sites of each function reachable from the entry (before any
 * lowering); lw_local_call then emits a call of the function's ONNX
 * function, lowering its body first when this is the first call.  It
 * returns 1 when the call is to be inlined instead (too few call sites,
 * types not the signature's, or a body that cannot be lowered on its own). */
void lw_plan_functions(Lower *L, const Func *entry);
int lw_local_call(Lower *L, const Op *op, const Func *f, OValue *const *args,
                  OValue **results);
/* A converter for ops that cannot be converted: reports the op. */
int lower_unsupported_op(Lower *L, const Op *op);

/* lower/scan.c: the role of each loop-carried value of a stablehlo.while
 * (role[i] for operand i).  For WL_SCAN and WL_SCAN_REVERSE, scan_value[i]
 * is the value of the body block that the iteration writes into its row. */
typedef enum WhileRole {
  WL_CARRIED = 0, /* a Loop-carried value */
  WL_INVARIANT,   /* returned unchanged: read from the enclosing graph */
  WL_SCAN,        /* row c of a buffer written at counter c: a scan output */
  WL_SCAN_REVERSE /* row N-1-c: a scan output, reversed after the loop */
} WhileRole;
void lw_plan_while(const Lower *L, const Op *op, WhileRole *role, const Value **scan_value);
/* lower/dynamic_window.c: custom_call @stablehlo.dynamic_reduce_window
 * (sums, e.g. jnp.cumsum along a symbolic axis); called by lower_custom_call. */
int lower_dynamic_reduce_window(Lower *L, const Op *op);

/* Lowers the entry function of m into a model. */
OModel *lower_module(Ctx *c, const Module *m, const h2o_param *params,
                     int n_params);

/* ===================================================================
 * passes/ - rewrites of the ONNX graph, run in order by pipeline.c.  Each
 * returns 0 or -1 after an error; og_verify runs between them.
 * =================================================================== */
int og_verify(Ctx *c, const OGraph *g);
int pass_dce(Ctx *c, OModel *m);   /* passes/dce.c: unused nodes and initializers */
int pass_dce_function_args(Ctx *c, OModel *m); /* local functions' unused inputs, results */
int pass_symbolic_dims(Ctx *c, OModel *m); /* passes/symbolic_dims.c: names dynamic dims ("50*B") */
int pass_fold(Ctx *c, OModel *m);  /* passes/fold.c: constant folding */
int pass_fold_late(Ctx *c, OModel *m); /* the same, after simplify: small broadcasts too */
int pass_simplify(Ctx *c, OModel *m); /* passes/simplify.c: no-op and redundant nodes */
int pass_fuse_gemm(Ctx *c, OModel *m); /* passes/fuse_gemm.c: MatMul + Add -> Gemm */
int pass_push_transposes(Ctx *c, OModel *m); /* passes/transpose.c: cancel layout Transposes */
int pass_unit_transposes(Ctx *c, OModel *m); /* ... and those moving only unit axes -> Reshape */
/* passes/fuse_*.c: recover the high-level ops JAX decomposes (one file each) */
int pass_fuse_keepdims(Ctx *c, OModel *m);    /* ReduceX(keepdims=0) + Unsqueeze -> keepdims=1 */
int pass_fuse_layernorm(Ctx *c, OModel *m);   /* mean/variance arithmetic -> LayerNormalization */
int pass_fuse_softmax(Ctx *c, OModel *m);     /* exp(x - max) / sum -> Softmax, LogSoftmax */
int pass_fuse_gelu(Ctx *c, OModel *m);        /* erf and tanh forms -> Gelu (opset 20) */
int pass_fuse_activations(Ctx *c, OModel *m); /* Relu, LeakyRelu, Elu, Softplus, Sigmoid, Mish */
int pass_fuse_batchnorm(Ctx *c, OModel *m);   /* (x - m) * a + b -> Gemm weights or BatchNormalization */
int pass_fuse_conv_bias(Ctx *c, OModel *m);   /* Add(Conv(x, W), c) -> Conv(x, W, c) */
int pass_fuse_avgpool(Ctx *c, OModel *m);     /* AveragePool * N / N -> AveragePool */

/* passes/fuse_match.c - matching helpers of the fusion passes.  A pattern is
 * matched from its root towards its inputs, recording the nodes it passes in
 * an FmPat; fm_closed is the safe-fusion rule (every intermediate is read
 * only inside the pattern and is no graph output).  The root is rewritten in
 * place (fm_rewrite) so its output keeps its name, and fm_sweep removes the
 * nodes nothing reads any more. */
#define FM_MAX_NODES 64
typedef struct FmPat {
  ONode *nodes[FM_MAX_NODES];
  int n;
} FmPat;
enum { FM_F16 = 1, FM_F32 = 2, FM_F64 = 4 }; /* element types, for fm_kernel_type */
ONode *fm_def(const OValue *v, const char *op_type); /* v's live producer of that type */
bool fm_add(FmPat *p, ONode *n);                     /* false when the pattern is full */
ONode *fm_take(FmPat *p, const OValue *v, const char *op_type); /* fm_def + fm_add */
bool fm_closed(const FmPat *p, const ONode *root);
/* v is a float initializer whose elements all equal *out. */
bool fm_splat(Ctx *c, const OValue *v, double *out);
bool fm_near(double v, double want); /* within 1e-6, relative */
/* k broadcasts into x's shape without widening it (dims 1 or equal). */
bool fm_fits(const OValue *k, const OValue *x);
/* fm_fits + fm_splat + the value (exactly when want is 0, else fm_near). */
bool fm_splat_near(Ctx *c, const OValue *k, const OValue *x, double want);
bool fm_same_shape(const OValue *a, const OValue *b); /* equal static dims, dynamic alike */
/* Constant k, broadcast to x's shape, varies only along axes [lo, hi): its
 * values there (row-major over x's dims lo..hi-1, which must be static and
 * hold at most FM_MAX_SCAN elements, the size `out` needs at most). */
#define FM_MAX_SCAN (1 << 22)
bool fm_const_slice(Ctx *c, const OValue *k, const OValue *x, int lo, int hi, double *out);
double fm_load(const uint8_t *bytes, ElemType et, int64_t i); /* f16/bf16/f32/f64 */
void fm_store(uint8_t *bytes, ElemType et, int64_t i, double v); /* f16/f32/f64 */
OValue *fm_new_const(Ctx *c, OGraph *g, const char *hint, ElemType et, int rank,
                     const int64_t *dims, const double *vals);
bool fm_kernel_type(ElemType et, unsigned mask); /* et is one of the FM_* in mask */
/* Follows Expand producers back to the expanded value (adding them to p).
 * Only where the consumer's other operand fixes the output shape, as the
 * StableHLO types of the lowered elementwise ops guarantee. */
OValue *fm_skip_expand(FmPat *p, OValue *v);
/* The sorted, non-negative axes a Reduce* node reduces (from its axes input
 * or attribute; all axes when none); -1 when they are not constants. */
int fm_reduce_axes(Ctx *c, const ONode *n, int64_t *axes, bool *keepdims);
/* Unsqueeze or Reshape node n inserts size-1 dims exactly at `axes` of its
 * output (the reduced axes of its input), keeping the other dims in order. */
bool fm_reinserts(Ctx *c, const ONode *n, const int64_t *axes, int n_axes);
/* Rewrites root into op_type(in...) in place: same output, no attributes. */
void fm_rewrite(Ctx *c, OGraph *g, ONode *root, const char *op_type, OValue *const *in,
                int n_in);
void fm_sweep(OGraph *g); /* marks dead the nodes whose outputs nothing reads */
/* Calls fn on every live node of the model's graphs (uses recounted first);
 * fn returns true when it rewrote the node, and the graph is then swept. */
typedef bool (*FmRootFn)(Ctx *c, OModel *m, OGraph *g, ONode *n);
void fm_each_node(Ctx *c, OModel *m, FmRootFn fn);

/* pipeline.c: the stages in order; the CLI and the Python extension call
 * h2o_convert (hlo2onnx.h), which runs this. */
typedef struct Pass {
  const char *name;
  int (*run)(Ctx *c, OModel *m);
  bool optimization; /* skipped when h2o_options.optimize is 0 */
} Pass;
extern const Pass h2o_passes[];

/* ===================================================================
 * write/ - protobuf encoding (pb.c) and the ONNX writer (onnx_write.c).
 * Message sizes are computed first so tensor bytes stream straight from
 * their source into the output; big tensors go to an external data file.
 * =================================================================== */
/* Both return 0, or -1 after an error.  ow_write_file writes to temporary
 * names and renames them into place when complete (a device or pipe is
 * written directly); tensors go to an external data file as c->opts says,
 * or when the model would pass 2 GB.  ow_write_memory hands back a malloc'd
 * buffer the caller frees, and never uses external data. */
int ow_write_file(Ctx *c, const OModel *m, const char *path);
int ow_write_memory(Ctx *c, const OModel *m, void **out, size_t *out_len);
/* The lowest ONNX IR version that an ai.onnx opset needs (onnx.helper's
 * VERSION_TABLE); the version of the ai.onnx.ml opset of the same release. */
int ow_ir_version(int opset);
int ow_ml_opset(int opset);

/* pb.c - protobuf wire format.  A PbOut either only counts the bytes it is
 * given (the size pass), or stores them: into a caller's buffer of the
 * exact size, or through a large buffer into a file descriptor.  Writes
 * never fail one by one: the first failure is kept in .err (an errno value,
 * or a PB_E* code) and later writes are only counted. */
enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 }; /* wire types */
enum { PB_EOVERFLOW = -1, /* more bytes than the memory destination holds */
       PB_ESIZE = -2 };   /* a message wrote other than its size pass said */

typedef struct PbOut {
  uint64_t n;         /* bytes counted or stored so far */
  bool counting;      /* the size pass: nothing is stored */
  int fd;             /* >= 0: flush .buf there; < 0: .buf is the destination */
  uint8_t *buf;
  size_t len, cap;
  int err;            /* 0, an errno value, or PB_E* */
  void *user;         /* for message functions; inherited by size passes */
} PbOut;

typedef void (*PbMsgFn)(PbOut *o, const void *msg);

void pb_init_count(PbOut *o, void *user);
void pb_init_mem(PbOut *o, void *dst, size_t cap, void *user);
/* Allocates a buffer of bufsize bytes; returns -1 when that fails. */
int pb_init_fd(PbOut *o, int fd, size_t bufsize, void *user);
int pb_flush(PbOut *o);   /* returns .err (0 = fine) */
void pb_release(PbOut *o); /* frees the buffer of pb_init_fd */
size_t pb_varint_size(uint64_t v);
void pb_raw(PbOut *o, const void *p, size_t n);
void pb_hex(PbOut *o, const char *hex, size_t nbytes); /* decodes 2*nbytes digits */
void pb_zeros(PbOut *o, size_t n);
void pb_varint(PbOut *o, uint64_t v);
void pb_tag(PbOut *o, uint32_t field, int wire);
void pb_field_u64(PbOut *o, uint32_t field, uint64_t v);
void pb_field_i64(PbOut *o, uint32_t field, int64_t v); /* two's complement */
void pb_field_f32(PbOut *o, uint32_t field, float v);
void pb_field_bytes(PbOut *o, uint32_t field, const void *p, size_t n);
void pb_field_str(PbOut *o, uint32_t field, const char *s); /* NULL: nothing */
void pb_field_len(PbOut *o, uint32_t field, uint64_t len);  /* contents follow */
void pb_field_packed_i64(PbOut *o, uint32_t field, const int64_t *v, size_t n);
void pb_field_packed_f32(PbOut *o, uint32_t field, const float *v, size_t n);
/* Size of a length-delimited field whose contents take len bytes. */
uint64_t pb_field_len_size(uint32_t field, uint64_t len);
/* An embedded message: a size pass of fn, then tag, length and fn itself. */
void pb_field_msg(PbOut *o, uint32_t field, PbMsgFn fn, const void *msg);
/* The size of fn(msg) on its own. */
uint64_t pb_msg_size(PbMsgFn fn, const void *msg, void *user);

#endif
