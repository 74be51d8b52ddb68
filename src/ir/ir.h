/* ir/ir.h - the HLO IR the parser builds and the lowering reads, and the
 * op table that names its ops.
 *
 *   ops.def  one row per StableHLO/CHLO op we know (X-macro)
 *   ops.c    the tables generated from it, and op_lookup
 *   ir.c     readers of the IR: attributes, functions, use counts, dump
 *
 * parse/ builds the IR (parse_module); lower/ consumes it.
 */
#ifndef H2O_IR_IR_H
#define H2O_IR_IR_H

#include "base/base.h"

typedef struct Op Op;

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
 * op_table below (names the parser looks up, hints, shape rules, flags), the
 * converter table of the lowering (lw_converters, lower/lower.h) and the
 * parser's attribute renames.
 * =================================================================== */
typedef enum OpKind {
  OP_UNKNOWN = 0,
#define OP(id, name, fn, hint, shape, flags) OP_##id,
#include "ir/ops.def"
#undef OP
  OP__COUNT
} OpKind;

/* How lower/checks.c checks an op's result type against its operands. */
typedef enum OpShape {
  SHAPE_MISSING = 0, /* never in ops.def: tests/c/test_ops.c fails on it */
  SHAPE_ELEMENTWISE, /* every operand has the result's shape */
  SHAPE_SELECT,      /* elementwise, but the predicate may be a scalar */
  SHAPE_CLAMP,       /* elementwise, but min and max may be scalars */
  SHAPE_TRANSPOSE,   /* result axis i is operand axis permutation[i] */
  SHAPE_CONCAT,      /* the operands' axes, summed along `dimension` */
  SHAPE_SLICE,       /* (limit - start) / stride, rounded up, per axis */
  SHAPE_REDUCE,      /* each input without the reduced `dimensions` */
  SHAPE_CUSTOM,      /* the converter checks the result type itself */
  SHAPE_UNCHECKED,   /* the result type is taken as written: a rule is owed */
  SHAPE_NONE,        /* nothing to check (the reason: a comment in ops.def) */
  SHAPE__COUNT
} OpShape;

/* Per-op flags, or'ed in the flags column of ops.def. */
enum {
  OPF_PASSES_VALUES_ALONG = 1 << 0, /* calls, returns, control flow: the ops
                                       inside are checked, not this one */
  OPF_CASTS_FLOAT8 = 1 << 2,        /* float8 allowed: ONNX Cast converts it */
};

typedef struct OpInfo {
  const char *name;      /* MLIR op name, e.g. "stablehlo.add" */
  const char *onnx_hint; /* for table-driven converters: the ONNX op, or NULL */
  OpShape shape;         /* its shape rule */
  unsigned flags;        /* OPF_* */
} OpInfo;

extern const OpInfo op_table[OP__COUNT];
OpKind op_lookup(const char *name, size_t len);

/* ===================================================================
 * HLO IR (parse/ builds it, ir/ir.c reads it): Module > Func > Block > Op.
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
  const char *source; /* the Python line that made it, from loc(...): "model.py:12" */
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

/* ir/ir.c */
/* The JAX scope of op where the lowering meets it: its own, after the
 * scope of the calls being inlined (Ctx.call_scope); NULL when neither. */
const char *ir_op_scope(Ctx *c, const Op *op);
/* An error about an op: its position, its JAX name scope and its Python
 * line (the inlined calls' when it has none) when known. */
int diag_error_op(Ctx *c, int status, const Op *op, const char *fmt, ...)
    H2O_PRINTF(4, 5);
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

#endif
