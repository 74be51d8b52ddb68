/* complex.c - stablehlo.fft, complex, real, imag: reported, not converted.
 *
 * ONNX has complex64/complex128 tensor types, but onnxruntime has no kernels
 * for them (not even Cast or Identity at the boundary), and ONNX's own DFT
 * represents a complex tensor as real numbers with a trailing axis of 2.
 * Converting these ops would mean carrying every complex value of the
 * module in that form through all the other converters; until that is
 * done, each op is reported with the complex type it needs, so the user
 * sees which computation to keep outside the exported function.
 */
#include "lower/lower.h"

/* The first complex type among the op's operands and results, printed. */
static const char *complex_type(Lower *L, const Op *op) {
  for (int i = 0; i < op->n_operands + op->n_results; i++) {
    const Type *t = i < op->n_operands ? &op->operands[i]->type
                                       : &op->results[i - op->n_operands]->type;
    if (t->et == ET_C64 || t->et == ET_C128) {
      /* in the arena, not a static buffer: conversions run in parallel threads */
      size_t size = 64 + 24 * MAX_RANK;
      return type_str(t, arena_alloc(L->c->arena, size), size);
    }
  }
  return NULL;
}

static int report(Lower *L, const Op *op, const char *what) {
  const char *t = complex_type(L, op);
  return lw_unsupported(L, "%s%s%s: complex tensors have no ONNX Runtime kernels (ONNX DFT "
                           "keeps complex numbers as a trailing axis of 2 reals, which hlo2onnx "
                           "does not model); compute complex values outside the exported function",
                        what, t ? " of " : "", t ? t : "");
}

int lower_unsupported_fft(Lower *L, const Op *op) {
  const Attr *a = ir_op_attr(op, "fft_type");
  const char *kind = a && a->s ? a->s : "FFT";
  return report(L, op, arena_printf(L->c->arena, "%s (jnp.fft)", kind));
}

int lower_unsupported_complex(Lower *L, const Op *op) {
  return report(L, op, op->opname);
}
