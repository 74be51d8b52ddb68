/* ops.c - the ONNX op table generated from onnx_ops.def (names, arity and
 * facts the passes read), the lookup og_node uses to give a node its kind,
 * og_check_ops, which holds the lowering to the table, and onnxruntime's
 * kernel types per op (ort_kernels.def).
 */
#include "onnx/onnx.h"

#include <string.h>

const OnnxOpInfo onnx_op_info[ONNX__COUNT] = {
    [ONNX_OTHER] = {"", 0, ONNX_VARIADIC, 0},
#define ONNX_OP(name, min_in, max_in, facts) [ONNX_##name] = {#name, min_in, max_in, facts},
#include "onnx/onnx_ops.def"
#undef ONNX_OP
};

/* Every op of onnx_ops.def has a row in ort_kernels.def (the generator
 * reads the op names from it); tests/c/test_onnx_ops.c checks it. */
const OnnxKernels onnx_kernels[ONNX__COUNT] = {
#define ORT_KERNEL(name, ins, outs, o17, o18, o19, o20, o21, o22, o23) \
  [ONNX_##name] = {ins, outs, {o17, o18, o19, o20, o21, o22, o23}},
#include "onnx/ort_kernels.def"
#undef ORT_KERNEL
};

bool onnx_has_kernel(OnnxOp op, int opset, ElemType et) {
  if (op == ONNX_OTHER || opset < ONNX_KERNEL_MIN_OPSET || opset > ONNX_KERNEL_MAX_OPSET ||
      et <= ET_UNDEF || et >= 32)
    return true;
  return (onnx_kernels[op].types[opset - ONNX_KERNEL_MIN_OPSET] >> et) & 1u;
}

/* The rows are sorted by name (strcmp order), so bisection finds one. */
OnnxOp onnx_op_lookup(const char *op_type) {
  if (!op_type) return ONNX_OTHER;
  int lo = ONNX_OTHER + 1, hi = ONNX__COUNT - 1;
  while (lo <= hi) {
    int mid = lo + (hi - lo) / 2;
    int cmp = strcmp(op_type, onnx_op_info[mid].name);
    if (cmp == 0) return (OnnxOp)mid;
    if (cmp < 0) hi = mid - 1;
    else lo = mid + 1;
  }
  return ONNX_OTHER;
}

static int check_node(Ctx *c, const ONode *n) {
  bool ai_onnx = !n->domain || !*n->domain;
  OnnxOp want = ai_onnx ? onnx_op_lookup(n->op_type) : ONNX_OTHER;
  if (n->kind != want)
    return diag_error(c, H2O_EINTERNAL,
                      "internal error: node %s has op_type '%s' but the kind of '%s' "
                      "(an op_type set without og_set_op)",
                      n->name, n->op_type, onnx_op_info[n->kind].name);
  if (!ai_onnx) return 0;
  const OnnxOpInfo *info = &onnx_op_info[n->kind];
  if (n->kind == ONNX_OTHER)
    return diag_error(c, H2O_EINTERNAL,
                      "internal error: node %s emits the ONNX op '%s', which is not in "
                      "src/onnx/onnx_ops.def",
                      n->name, n->op_type);
  if (n->n_inputs < info->min_inputs || n->n_inputs > info->max_inputs)
    return diag_error(c, H2O_EINTERNAL,
                      "internal error: node %s (%s) has %d inputs; onnx_ops.def allows %d to %d",
                      n->name, n->op_type, n->n_inputs, info->min_inputs, info->max_inputs);
  return 0;
}

int og_check_ops(Ctx *c, const OGraph *g) {
  for (int i = 0; i < g->nodes.len; i++) {
    const ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    if (check_node(c, n) != 0) return -1;
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH && og_check_ops(c, n->attrs[j].graph) != 0) return -1;
  }
  return 0;
}
