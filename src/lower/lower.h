/* lower/lower.h - what the files of the lowering share: the Lower state,
 * the lw_ node builders and the converters named in ir/ops.def.  Only
 * lower/ and pipeline.c (lower_module) include it.
 */
#ifndef H2O_LOWER_LOWER_H
#define H2O_LOWER_LOWER_H

#include "onnx/onnx.h"

typedef struct Lower Lower;

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
/* Unsqueeze of x at the n (sorted) output axes `axes`, typed when x's rank
 * is known; x itself when n is 0. */
OValue *lw_unsqueeze(Lower *L, OValue *x, const int64_t *axes, int n);
/* Reports "<op>: what" as bad input at the current op; returns -1. */
int lw_bad_input(Lower *L, const char *what);
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

/* lower/const_eval.c: integers known at conversion time.  lw_known_ints
 * returns the row-major elements of the integer (or boolean) value v, where
 * (*known)[i] says element i is known, or NULL when none is (or v is not
 * static, or has more than LW_MAX_KNOWN_INTS elements).  It follows
 * constants, iota, broadcast_in_dim, reshape, convert, concatenate and
 * integer arithmetic, compare, select and clamp - as JAX builds constant
 * and normalised indices - and reads values lowered to initializers
 * (parameters, folded ops).  lw_const_ints: the same when every element is
 * known, else NULL.  lw_int_range: bounds of every element of v that the
 * HLO states (constants, and clamp/min/max/select of bounds, as
 * mode="clip" indices are written). */
#define LW_MAX_KNOWN_INTS 65536 /* larger index tensors are left to the graph */
int64_t *lw_known_ints(Lower *L, const Value *v, bool **known);
int64_t *lw_const_ints(Lower *L, const Value *v);
bool lw_int_range(Lower *L, const Value *v, int64_t *lo, int64_t *hi);
/* Whether v numbers the positions along `axis` from 0 (an iota or
 * dynamic_iota along it, or a 1-D iota broadcast into it): argsort's and
 * argmax's index operands. */
bool lw_is_position_iota(const Value *v, int64_t axis);
/* Row-major coordinates: advances pos over dims; false after the last. */
bool lw_next_pos(int64_t *pos, const int64_t *dims, int rank);

/* lower/loop.c: ONNX Loop nodes (the file's header says what a body needs
 * and how these make it).  lw_graph_depth: how many subgraphs deep L->g
 * is (0: the main graph or a function's).  lw_check_depth: 0 when a graph
 * `depth` deep may be built, else -1 after reporting that ONNX readers
 * would not load it; lw_loop_check_depth: the same for a Loop body in
 * L->g, which lw_loop_begin expects checked.  lw_subgraph_output: v
 * becomes the next output of sub (through an Identity made in sub unless
 * v is a value of sub other than an initializer, and no output yet). */
int lw_graph_depth(const Lower *L);
int lw_check_depth(Lower *L, int depth);
int lw_loop_check_depth(Lower *L);
void lw_subgraph_output(Lower *L, OGraph *sub, OValue *v);
typedef struct LoopBuilder {
  OGraph *outer, *body; /* the graph the Loop goes into, its body */
  OValue *iteration;    /* in the body: the iteration number, int64 scalar 0, 1, ... */
  OValue *cond_in;      /* in the body: the condition, bool scalar */
  PtrVec init;          /* OValue*: the carried values' initial values, in outer */
} LoopBuilder;
/* Opens the body (L->g from now on), named body_name, its iteration input
 * named after iteration_hint (NULL: "iteration"). */
void lw_loop_begin(Lower *L, LoopBuilder *lp, const char *body_name, const char *iteration_hint);
/* One more carried value, starting at init: its body input (hint NULL:
 * "carried"), of init's type. */
OValue *lw_loop_carry(Lower *L, LoopBuilder *lp, OValue *init, const char *hint);
/* Closes the body (L->g is outer again) with its outputs: keep_going (NULL:
 * cond_in passed on), next[i] for each carried value, scan[0..n_scan). */
void lw_loop_close(Lower *L, LoopBuilder *lp, OValue *keep_going, OValue *const *next,
                   int n_scan, OValue *const *scan);
/* Leaves the body after an error in it (L->g is outer again); returns -1. */
int lw_loop_abandon(Lower *L, LoopBuilder *lp);
/* The Loop node, in L->g (the outer graph): trip_count (int64 scalar) and
 * first_cond (bool scalar) may be NULL; outputs: the final carried values
 * (typed as their initial values), then the scan outputs (untyped). */
ONode *lw_loop_node(Lower *L, LoopBuilder *lp, OValue *trip_count, OValue *first_cond);

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
 * (sums and scans of associative bodies, e.g. jnp.cumsum, cumprod,
 * lax.cummax along a symbolic axis); called by lower_custom_call. */
int lower_dynamic_reduce_window(Lower *L, const Op *op);
/* lower/lapack_decomp.c: custom_call @lapack_<s|d><routine>_ffi of the QR,
 * eigh and SVD routines (and the refused eig, schur, ...); called by
 * lower_custom_call when lw_is_lapack_decomposition(target). */
bool lw_is_lapack_decomposition(const char *target);
int lower_lapack_decomposition(Lower *L, const Op *op, const char *target);
/* The same for a custom_call that complex.c lowers (eig's results are
 * complex): refused with the reason; 1 when op is none of those calls. */
int lower_complex_lapack_decomposition(Lower *L, const Op *op);
/* lower/sort.c: custom_call @ApproxTopK (lax.approx_max_k / approx_min_k),
 * as an exact top k; called by lower_custom_call. */
int lower_approx_top_k(Lower *L, const Op *op);

/* lower/body.c: the block b of scalars (a reduce or reduce_window body)
 * applied element by element: args[i] (one per block argument) are tensors
 * of shape (rank, dims), or rank-0 values that broadcast (an init);
 * results[i] gets the value of the return's operand i, of that shape.
 * Returns 0, or -1 after reporting (an op that is not elementwise). */
int lw_apply_body(Lower *L, const Block *b, OValue *const *args, int rank, const int64_t *dims,
                  OValue **results);
/* Whether b is a body known to be associative (one add, multiply, max,
 * min, and, or, xor of its arguments; jnp.logaddexp; a selection of
 * (key, companions) by a comparison of the keys), so that applying it in
 * a tree gives what XLA's element-by-element fold does. */
bool lw_body_is_associative(const Block *b);
/* lower/conv.c: select_and_scatter's selection over windows (win, str,
 * pad: 2 per axis) of the static-windowed tensors x[0] (keys) and
 * x[1..n) (carried along): out[i] the selected value per window, of
 * out_dims; *empty the windows wholly in the padding (a bool constant),
 * NULL when there are none. */
int lw_window_select(Lower *L, const Block *select, int n, OValue *const *x,
                     const ElemType *ets, int rank, const int64_t *dims, const int64_t *win,
                     const int64_t *str, const int64_t *pad, OValue **out, int64_t *out_dims,
                     OValue **empty);

/* lower/lapack_lu.c: the custom_calls of LU, triangular solves and Cholesky
 * (lapack_?getrf_ffi, ?trsm_ffi, ?potrf_ffi; the cuSOLVER/hipSOLVER ones of
 * GPU exports, LuDecomposition of TPU ones); returns 1 when `target` is
 * none of them.  lw_linalg_name: the target of a LAPACK call or of one of
 * those, "triangular_solve", "cholesky", or NULL for other ops (complex.c
 * refuses the complex ones by it). */
int lower_lapack_lu_call(Lower *L, const Op *op, const char *target);
const char *lw_linalg_name(const Op *op);

/* lower/complex.c: whether op reads or makes a complex tensor (calls,
 * returns and control flow aside, which pass values along); lw_block then
 * lowers it by lower_complex instead of its own converter. */
bool lw_touches_complex(const Op *op);

/* Lowers the entry function of m into a model. */
OModel *lower_module(Ctx *c, const Module *m, const h2o_param *params,
                     int n_params);


/* The converter of each op kind, from the converter column of ir/ops.def
 * (lower.c); NULL for OP_UNKNOWN. */
typedef int (*LowerFn)(Lower *L, const Op *op);
extern const LowerFn lw_converters[OP__COUNT];

/* The converters named in ops.def, declared once per row (a converter that
 * serves several rows is declared several times, which C allows). */
#define OP(id, name, fn, hint, shape, flags) int fn(Lower *L, const Op *op);
#include "ir/ops.def"
#undef OP

#endif
