/* kernels.c - every node runs in onnxruntime: a node whose element type has
 * no kernel in onnxruntime's CPU provider at the model's opset (Pad on i16,
 * Expand on bf16, Where on bool; onnx_has_kernel, from ort_kernels.def)
 * computes in a wider type that has one, its inputs cast there and its
 * results cast back.
 *
 * Only where that gives the same result as the narrow type would:
 *   - a float in a wider float (bf16, f16 -> f32 -> f64): the values are
 *     the same, and an op computed once in f32 and rounded to bf16 or f16
 *     is the correctly rounded result (f32 has more than 2p + 2 bits of
 *     either), which is also how XLA's CPU backend computes them; an
 *     accumulation (ReduceSum, CumSum) adds in f32 and rounds once
 *     (docs/numerics.md);
 *   - an integer in a wider integer (i8 -> i16 -> i32 -> i64; unsigned into
 *     wider unsigned or signed ones): the cast back keeps the low bits, so
 *     wrapping arithmetic gives the narrow type's result;
 *   - for ops that only move, choose or compare values (ONNX_SELECTS:
 *     Pad, Gather, Where, Max, Less, ...), any type that holds every value
 *     as well: integers in floats (i16 in f32, i32 in f64), bool in u8.
 * A float64 Conv or ConvTranspose, which has no wider type, becomes Slices
 * and an f64 MatMul (conv_matmul.c).  And one pair of nodes that
 * onnxruntime fuses into a wrong result, a transposed matrix times a
 * vector, is written as the vector times the matrix; and the residual Add
 * in front of a LayerNormalization, which onnxruntime fuses into a slower
 * and less precise kernel, is written as Sum; an RMS norm with no scale
 * gets a Mul by ones, without which onnxruntime does not fuse it.
 * A node with no such type is left as it is (onnxruntime then names it).
 * Runs after the fusions and before dce, which removes the constants it
 * replaced by wider copies.
 */
#include "passes/passes.h"

#include <string.h>

/* The wider types to try for et, nearest first; ET_UNDEF ends the list. */
static const ElemType *wider_types(ElemType et, bool selects) {
  static const ElemType f16[] = {ET_F32, ET_F64, ET_UNDEF};
  static const ElemType f32[] = {ET_F64, ET_UNDEF};
  static const ElemType none[] = {ET_UNDEF};
  static const ElemType i8[] = {ET_I16, ET_I32, ET_I64, ET_UNDEF};
  static const ElemType i8_sel[] = {ET_I16, ET_I32, ET_I64, ET_F16, ET_F32, ET_F64, ET_UNDEF};
  static const ElemType i16[] = {ET_I32, ET_I64, ET_UNDEF};
  static const ElemType i16_sel[] = {ET_I32, ET_I64, ET_F32, ET_F64, ET_UNDEF};
  static const ElemType i32[] = {ET_I64, ET_UNDEF};
  static const ElemType i32_sel[] = {ET_I64, ET_F64, ET_UNDEF};
  static const ElemType u8[] = {ET_U16, ET_I16, ET_U32, ET_I32, ET_U64, ET_I64, ET_UNDEF};
  static const ElemType u8_sel[] = {ET_U16, ET_I16, ET_U32, ET_I32, ET_U64, ET_I64,
                                    ET_F16, ET_F32, ET_F64, ET_UNDEF};
  static const ElemType u16[] = {ET_U32, ET_I32, ET_U64, ET_I64, ET_UNDEF};
  static const ElemType u16_sel[] = {ET_U32, ET_I32, ET_U64, ET_I64, ET_F32, ET_F64, ET_UNDEF};
  static const ElemType u32[] = {ET_U64, ET_I64, ET_UNDEF};
  static const ElemType u32_sel[] = {ET_U64, ET_I64, ET_F64, ET_UNDEF};
  static const ElemType bool_sel[] = {ET_U8, ET_I8, ET_I32, ET_I64, ET_F32, ET_UNDEF};
  switch (et) {
  case ET_F16: case ET_BF16: return f16;
  case ET_F32: return f32;
  case ET_I8: return selects ? i8_sel : i8;
  case ET_I16: return selects ? i16_sel : i16;
  case ET_I32: return selects ? i32_sel : i32;
  case ET_U8: return selects ? u8_sel : u8;
  case ET_U16: return selects ? u16_sel : u16;
  case ET_U32: return selects ? u32_sel : u32;
  case ET_BOOL: return selects ? bool_sel : none;
  default: return none;
  }
}

/* The element type that selects n's kernel: the first of its kernel slots
 * whose value has a known type (a pass may leave an output's type
 * unrecorded); ET_UNDEF when none. */
static ElemType kernel_type(const ONode *n) {
  const OnnxKernels *k = &onnx_kernels[n->kind];
  for (int i = 0; i < n->n_inputs; i++)
    if (onnx_kernel_slot(k->kernel_inputs, i) && n->inputs[i] && n->inputs[i]->type.et != ET_UNDEF)
      return n->inputs[i]->type.et;
  for (int i = 0; i < n->n_outputs; i++)
    if (onnx_kernel_slot(k->kernel_outputs, i) && n->outputs[i] &&
        n->outputs[i]->type.et != ET_UNDEF)
      return n->outputs[i]->type.et;
  return ET_UNDEF;
}

/* The nodes' kernel slots all have one element type (as the schemas'
 * shared type constraint requires): the casts below keep them equal.  A
 * value whose type no pass recorded (ET_UNDEF) has that type too. */
static bool slots_agree(const ONode *n, ElemType et) {
  const OnnxKernels *k = &onnx_kernels[n->kind];
  for (int i = 0; i < n->n_inputs; i++)
    if (onnx_kernel_slot(k->kernel_inputs, i) && n->inputs[i] && n->inputs[i]->type.et != et &&
        n->inputs[i]->type.et != ET_UNDEF)
      return false;
  for (int i = 0; i < n->n_outputs; i++)
    if (onnx_kernel_slot(k->kernel_outputs, i) && n->outputs[i] && n->outputs[i]->type.et != et &&
        n->outputs[i]->type.et != ET_UNDEF)
      return false;
  return true;
}

static ONode *cast_node(Ctx *c, OGraph *g, OValue *x, ElemType to, const ONode *site) {
  ONode *cast = og_node(c, g, "Cast", &x, 1, 1);
  og_attr_int(c, cast, "to", to);
  cast->origin = site->origin;
  OValue *y = cast->outputs[0];
  og_set_type(c, y, to, x->type.rank, NULL);
  if (x->type.rank > 0) memcpy(y->type.dims, x->type.dims, sizeof(ODim) * (size_t)x->type.rank);
  return cast;
}

/* A small constant that is no weight (a Pad's constant_value, a Clip's
 * bounds) is converted here instead of cast at run time.  Every value of
 * the types widened (at most 32-bit integers, narrow floats) is a double. */
#define KERNELS_MAX_CONST 4096
static OValue *widened_const(Ctx *c, OGraph *g, OValue *v, ElemType wide) {
  const Data *d = og_const_data(v);
  size_t from = et_size(v->type.et), to = et_size(wide);
  if (!d || v->is_param || v->type.rank < 0 || !from || !to || d->nbytes % from ||
      d->nbytes / from > KERNELS_MAX_CONST)
    return NULL;
  size_t count = d->nbytes / from;
  const uint8_t *src = data_bytes(c, d);
  uint8_t *dst = arena_alloc(c->arena, count * to + 1);
  for (size_t i = 0; i < count; i++) elem_store(dst, wide, (int64_t)i, elem_load(src, v->type.et, (int64_t)i));
  int64_t dims[MAX_RANK];
  for (int i = 0; i < v->type.rank; i++) dims[i] = v->type.dims[i].value;
  return og_init(c, g, "wide_const", wide, v->type.rank, dims, (Data){DATA_RAW, dst, count * to});
}

/* n computes in `wide`: each kernel input through a Cast to it, each kernel
 * output produced in it and cast back to et into the value the graph reads. */
static void widen(Ctx *c, OGraph *g, ONode *n, ElemType et, ElemType wide) {
  const OnnxKernels *k = &onnx_kernels[n->kind];
  for (int i = 0; i < n->n_inputs; i++) {
    OValue *in = n->inputs[i];
    if (!onnx_kernel_slot(k->kernel_inputs, i) || !in) continue;
    OValue *w = widened_const(c, g, in, wide);
    og_set_input(n, i, w ? w : cast_node(c, g, in, wide, n)->outputs[0]);
  }
  for (int i = 0; i < n->n_outputs; i++) {
    OValue *out = n->outputs[i];
    if (!onnx_kernel_slot(k->kernel_outputs, i) || !out) continue;
    OValue *w = og_value(c, g, "wide");
    og_set_type(c, w, wide, out->type.rank, NULL);
    if (out->type.rank > 0)
      memcpy(w->type.dims, out->type.dims, sizeof(ODim) * (size_t)out->type.rank);
    w->producer = n;
    n->outputs[i] = w;
    /* the Cast back produces `out` itself: its name and readers stay */
    ONode *back = cast_node(c, g, w, et, n);
    g->values.len--; /* forget the fresh output og_node made last: `out` replaces it */
    back->outputs[0] = out;
    out->producer = back;
  }
}

/* MatMul(Transpose(A), v) with the Transpose swapping A's last two axes and
 * a 1-D v: onnxruntime (1.32) fuses the pair into its FusedMatMul with
 * transA, which computes something else when B is 1-D (A^T v of a 4 x 3 A
 * is wrong in every element).  v @ A is the same product (MatMul reads a
 * 1-D first operand as a row), without the Transpose.  Returns whether it
 * rewired n. */
static bool transposed_matrix_times_vector(ONode *n) {
  if (n->kind != ONNX_MatMul || n->n_inputs != 2 || !n->inputs[0] || !n->inputs[1] ||
      n->inputs[1]->type.rank != 1)
    return false;
  ONode *t = n->inputs[0]->producer;
  if (!og_is(t, ONNX_Transpose) || t->n_inputs != 1 || !t->inputs[0]) return false;
  const OAttr *perm = og_get_attr(t, "perm");
  int r = t->inputs[0]->type.rank;
  if (!perm || perm->kind != OA_INTS || perm->n != r || r < 2) return false;
  for (int i = 0; i < r - 2; i++)
    if (perm->ints[i] != i) return false;
  if (perm->ints[r - 2] != r - 1 || perm->ints[r - 1] != r - 2) return false;
  OValue *a = t->inputs[0], *v = n->inputs[1];
  og_set_input(n, 0, v);
  og_set_input(n, 1, a);
  return true;
}

/* Add(x, y) -> LayerNormalization: onnxruntime (1.32) fuses the pair into
 * its SkipLayerNormalization, whose CPU kernel is a scalar loop that takes
 * the variance as E[x^2] - E[x]^2: 3.5x the time of the Add and the
 * LayerNormalization it replaces ([8, 256, 128] f32, 2 threads: 0.68 ms
 * against 0.19), about 10 % of a BERT's time at batch 8, and it loses
 * digits where the mean is large against the spread.  Its fusion matches
 * the op type Add only; Sum of the same two inputs is the same sum (ONNX
 * broadcasting alike) with a kernel as fast as Add's, in every runtime. */
static void residual_before_layernorm(ONode *n, int opset) {
  if (!og_is(n, ONNX_LayerNormalization) || n->n_inputs < 1 || !n->inputs[0]) return;
  ONode *add = n->inputs[0]->producer;
  if (!og_is(add, ONNX_Add) || !og_single_use(add->outputs[0]) ||
      !onnx_has_kernel(ONNX_Sum, opset, add->outputs[0]->type.et))
    return;
  og_set_op(add, "Sum", NULL);
}

/* The producer of v when it is a live single-use node of the op `kind`. */
static ONode *single_use_def(const OValue *v, OnnxOp kind) {
  return v && og_is(v->producer, kind) && og_single_use(v) ? v->producer : NULL;
}

/* Div(x, Sqrt(Add(ReduceMean(Pow(x, 2), last axis), eps))) with no scale
 * after it, the RMS norm fuse_layernorm writes below opset 23 when the
 * scale is 1 (or the norm has none: Linen's RMSNorm(use_scale=False)):
 * onnxruntime fuses the chain into its SimplifiedLayerNormalization kernel,
 * one pass instead of five (0.04 against 0.06 ms on [8, 64, 256] f32), only
 * when a Mul by the scale ends it.  A Mul by ones gives it one; the Mul
 * computes into the Div's value, whose name and readers stay.  f32 only:
 * the kernel computes narrower types in f32, which the chain does not. */
static bool rms_norm_scale_of_one(Ctx *c, OGraph *g, ONode *div) {
  if (!og_is(div, ONNX_Div) || div->n_inputs != 2 || div->n_outputs != 1) return false;
  OValue *x = div->inputs[0], *out = div->outputs[0];
  int rank = x ? x->type.rank : -1;
  if (rank < 1 || x->type.et != ET_F32 || x->type.dims[rank - 1].value < 1) return false;
  ONode *sqrt = single_use_def(div->inputs[1], ONNX_Sqrt);
  ONode *add = sqrt ? single_use_def(sqrt->inputs[0], ONNX_Add) : NULL;
  if (!add || add->n_inputs != 2) return false;
  double k;
  int e = og_const_data(add->inputs[1]) ? 1 : 0;
  ONode *mean = single_use_def(add->inputs[1 - e], ONNX_ReduceMean);
  if (!fm_splat(c, add->inputs[e], &k) || !mean || mean->n_inputs < 1) return false;
  const OAttr *keep = og_get_attr(mean, "keepdims");
  int64_t axes[2];
  int n_axes = mean->n_inputs > 1 ? og_const_i64s(c, mean->inputs[1], axes, 2) : -1;
  if ((keep && keep->i != 1) || n_axes != 1 || (axes[0] != -1 && axes[0] != rank - 1)) return false;
  ONode *pow = single_use_def(mean->inputs[0], ONNX_Pow);
  if (!pow || pow->inputs[0] != x || !fm_splat(c, pow->inputs[1], &k) || k != 2) return false;
  ONode *reader = og_only_reader(g, out);
  if (reader && og_is(reader, ONNX_Mul) && (og_const_data(reader->inputs[0]) ||
                                             og_const_data(reader->inputs[1])))
    return false; /* a scale already */
  int64_t d = x->type.dims[rank - 1].value;
  float *ones = arena_alloc(c->arena, sizeof(float) * (size_t)d);
  for (int64_t i = 0; i < d; i++) ones[i] = 1.0f;
  OValue *scale = og_init(c, g, "ones", ET_F32, 1, &d, (Data){DATA_RAW, ones, sizeof(float) * (size_t)d});
  OValue *normed = og_value(c, g, "rms");
  og_set_type(c, normed, ET_F32, rank, NULL);
  memcpy(normed->type.dims, out->type.dims, sizeof(ODim) * (size_t)rank);
  normed->producer = div;
  div->outputs[0] = normed;
  OValue *mul_in[2] = {normed, scale};
  ONode *mul = og_node(c, g, "Mul", mul_in, 2, 1);
  mul->origin = div->origin;
  mul->scope = div->scope;
  mul->source = div->source;
  g->values.len--; /* forget the fresh output og_node made last: `out` replaces it */
  mul->outputs[0] = out;
  out->producer = mul;
  return true;
}

/* Moves the nodes of g (and its subgraphs) that lack a kernel; returns
 * whether it appended any Cast (g then needs re-sorting). */
static bool widen_graph(Ctx *c, OGraph *g, int opset) {
  bool changed = false;
  int n_nodes = g->nodes.len; /* the Casts appended below need nothing */
  for (int i = 0; i < n_nodes; i++) {
    ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH && widen_graph(c, n->attrs[j].graph, opset))
        og_toposort(c, n->attrs[j].graph);
    if (n->kind == ONNX_OTHER) continue;
    if (transposed_matrix_times_vector(n)) changed = true;
    residual_before_layernorm(n, opset);
    if (rms_norm_scale_of_one(c, g, n)) changed = true;
    const OnnxKernels *k = &onnx_kernels[n->kind];
    if (!k->kernel_inputs && !k->kernel_outputs) continue;
    ElemType et = kernel_type(n);
    if (et == ET_UNDEF || onnx_has_kernel(n->kind, opset, et) || !slots_agree(n, et)) continue;
    if (et == ET_F64 && ((n->kind == ONNX_Conv && conv_as_matmul(c, g, n)) ||
                         (n->kind == ONNX_ConvTranspose && conv_transpose_as_matmul(c, g, n)))) {
      changed = true; /* no wider type than f64: Slices and a MatMul */
      continue;
    }
    for (const ElemType *w = wider_types(et, onnx_op_has(n->kind, ONNX_SELECTS)); *w; w++)
      if (onnx_has_kernel(n->kind, opset, *w)) {
        widen(c, g, n, et, *w);
        changed = true;
        break;
      }
  }
  return changed;
}

int pass_kernels(Ctx *c, OModel *m) {
  if (widen_graph(c, m->graph, m->opset)) og_toposort(c, m->graph);
  return 0;
}
