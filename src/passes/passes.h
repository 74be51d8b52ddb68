/* passes/passes.h - the rewrites of the ONNX graph that pipeline.c runs in
 * order (h2o_passes), and the matching helpers the fusions share
 * (fuse_match.c).  Only passes/ and pipeline.c include it.
 */
#ifndef H2O_PASSES_PASSES_H
#define H2O_PASSES_PASSES_H

#include "onnx/onnx.h"

/* ===================================================================
 * passes/ - rewrites of the ONNX graph, run in order by pipeline.c.  Each
 * returns 0 or -1 after an error; og_verify runs between them.
 * =================================================================== */
int pass_dce(Ctx *c, OModel *m);   /* passes/dce.c: unused nodes and initializers */
int pass_dce_function_args(Ctx *c, OModel *m); /* local functions' unused inputs, results */
int pass_symbolic_dims(Ctx *c, OModel *m); /* passes/symbolic_dims.c: names dynamic dims ("50*B") */
int pass_fold_shapes(Ctx *c, OModel *m);   /* ... and shape vectors of static sizes -> constants */
int pass_shapes_from_inputs(Ctx *c, OModel *m); /* Shape of named dims -> of the graph inputs */
int pass_fold(Ctx *c, OModel *m);  /* passes/fold.c: constant folding */
int pass_fold_late(Ctx *c, OModel *m); /* the same, after simplify: small broadcasts too */
int pass_simplify(Ctx *c, OModel *m); /* passes/simplify.c: no-op and redundant nodes */
int pass_cse(Ctx *c, OModel *m);      /* passes/cse.c: a computation done twice is done once */
int pass_late_broadcast(Ctx *c, OModel *m); /* passes/late_broadcast.c: compute before an Expand, not after */
int pass_fuse_gemm(Ctx *c, OModel *m); /* passes/fuse_gemm.c: MatMul + Add -> Gemm */
int pass_push_transposes(Ctx *c, OModel *m); /* passes/transpose.c: cancel layout Transposes */
int pass_unit_transposes(Ctx *c, OModel *m); /* ... and those moving only unit axes -> Reshape */
/* passes/fuse_*.c: recover the high-level ops JAX decomposes (one file each) */
int pass_fuse_keepdims(Ctx *c, OModel *m);    /* ReduceX(keepdims=0) + Unsqueeze -> keepdims=1 */
int pass_fuse_layernorm(Ctx *c, OModel *m);   /* mean/variance arithmetic -> LayerNormalization */
int pass_fuse_softmax(Ctx *c, OModel *m);     /* exp(x - max) / sum -> Softmax, LogSoftmax */
int pass_attention_masks(Ctx *c, OModel *m);  /* fuse_attention.c: Where masks -> Add, Mul */
int pass_fuse_attention(Ctx *c, OModel *m);   /* ... MatMul/Softmax/MatMul -> Attention (opset 23) */
int pass_matmul_layout(Ctx *c, OModel *m);    /* matmul_layout.c: operand orientation, no result Transpose */
int pass_layout_chains(Ctx *c, OModel *m);    /* layout_chains.c: Transpose/Reshape chains keeping the order -> Reshape */
int pass_fuse_gelu(Ctx *c, OModel *m);        /* erf and tanh forms -> Gelu (opset 20) */
int pass_fuse_activations(Ctx *c, OModel *m); /* Relu, LeakyRelu, Elu, Softplus, Sigmoid, Mish */
int pass_fuse_batchnorm(Ctx *c, OModel *m);   /* (x - m) * a + b -> Gemm weights or BatchNormalization */
int pass_fuse_conv_bias(Ctx *c, OModel *m);   /* Add(Conv(x, W), c) -> Conv(x, W, c) */
int pass_fuse_pad(Ctx *c, OModel *m);         /* Conv(Pad(x)), MaxPool(Pad(Relu)) -> their own pads */
int pass_fuse_avgpool(Ctx *c, OModel *m);     /* AveragePool * N / N -> AveragePool */
/* passes/kernels.c: a node whose type has no onnxruntime kernel computes in
 * a wider type that has one (ort_kernels.def) */
int pass_kernels(Ctx *c, OModel *m);
/* passes/conv_matmul.c: a float64 Conv of g as Slices and one MatMul (im2col);
 * false, with g unchanged, where its shapes or attributes do not allow it */
bool conv_as_matmul(Ctx *c, OGraph *g, ONode *conv);
/* ... and a float64 ConvTranspose, through the Conv it equals */
bool conv_transpose_as_matmul(Ctx *c, OGraph *g, ONode *ct);
int pass_empty(Ctx *c, OModel *m); /* passes/empty.c: a result with no elements -> a constant */

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
ONode *fm_def(const OValue *v, OnnxOp op); /* v's live producer of that op */
bool fm_add(FmPat *p, ONode *n);                     /* false when the pattern is full */
ONode *fm_take(FmPat *p, const OValue *v, OnnxOp op); /* fm_def + fm_add */
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
OValue *fm_new_const(Ctx *c, OGraph *g, const char *hint, ElemType et, int rank,
                     const int64_t *dims, const double *vals);
/* v, a constant computed from `weight`, is named after it (when weight is a
 * weight the caller passed, is_param): weight's own name when the pattern
 * was its only reader, else "<weight>/<derived>". */
void fm_name_after(Ctx *c, OValue *v, OValue *weight, const char *derived);
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
/* Rewrites root into op(in...) in place: same output, no attributes. */
void fm_rewrite(Ctx *c, OGraph *g, ONode *root, OnnxOp op, OValue *const *in, int n_in);
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

#endif
