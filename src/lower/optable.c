/* optable.c - the op table: names (for the parser) and converters (for the
 * lowering), both generated from ops.def. */
#include "h2o.h"

#include <string.h>

const OpInfo op_table[OP__COUNT] = {
    [OP_UNKNOWN] = {"<unknown>", NULL, NULL},
#define OP(id, name, fn, hint) [OP_##id] = {name, fn, hint},
#include "ops.def"
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
