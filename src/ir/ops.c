/* ops.c - the op table generated from ops.def: names (for the parser), ONNX
 * hints (for the table-driven converters), shape rules (lower/checks.c) and
 * flags.  The converter column is lower/lower.c's lw_converters, so the
 * parser links without the lowering. */
#include "ir/ir.h"

#include <string.h>

const OpInfo op_table[OP__COUNT] = {
    [OP_UNKNOWN] = {"<unknown>", NULL, SHAPE_NONE, 0}, /* reported as unsupported */
#define OP(id, name, fn, hint, shape, flags) [OP_##id] = {name, hint, shape, flags},
#include "ir/ops.def"
#undef OP
};

OpKind op_lookup(const char *name, size_t len) {
  /* ~130 rows, looked up once per op of the input: a linear scan with a
   * length check first costs less than the lexing of the op itself. */
  for (int k = 1; k < OP__COUNT; k++) {
    const char *n = op_table[k].name;
    if (strlen(n) == len && memcmp(n, name, len) == 0) return (OpKind)k;
  }
  return OP_UNKNOWN;
}
