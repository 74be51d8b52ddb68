/* tuple.c - stablehlo.tuple and get_tuple_element.
 *
 * ONNX graphs have no tuple values (a Sequence holds one element type), and
 * JAX emits tuples only in legacy forms, where they are packed and unpacked
 * right away.  So a tuple is bound to a placeholder value that no node
 * reads, and the tuple's elements are remembered beside it (L->tuples);
 * get_tuple_element binds its result to the element itself.  That covers a
 * tuple built in one function and unpacked in another it is passed to
 * (calls are inlined, so the argument is bound to the same placeholder).
 * A tuple that reaches an ONNX value boundary - a loop-carried value, an
 * If result, a graph output - has no representation; control.c refuses
 * non-tensor loop values, and any other use of the placeholder fails there.
 */
#include "lower/lower.h"

typedef struct TupleBinding {
  const OValue *handle; /* the placeholder the tuple value is bound to */
  OValue **elems;
  int n;
  struct TupleBinding *next;
} TupleBinding;

int lower_tuple(Lower *L, const Op *op) {
  if (op->n_results != 1)
    return diag_error_op(L->c, H2O_EINPUT, op, "tuple has one result, not %d", op->n_results);
  TupleBinding *b = arena_alloc(L->c->arena, sizeof *b);
  b->n = op->n_operands;
  b->elems = arena_alloc(L->c->arena, sizeof(OValue *) * (size_t)(b->n + 1));
  for (int i = 0; i < b->n; i++) b->elems[i] = lw_get(L, op->operands[i]); /* nested: a handle */
  OValue *h = og_value(L->c, L->g, "tuple");
  b->handle = h;
  b->next = L->tuples;
  L->tuples = b;
  op->results[0]->lowered = h; /* not lw_bind: a tuple type has no ONNX form */
  return 0;
}

int lower_get_tuple_element(Lower *L, const Op *op) {
  int64_t index;
  const Attr *a = ir_op_attr(op, "index");
  if (op->n_operands != 1 || op->n_results != 1 || !a || !ir_attr_int(a, &index))
    return diag_error_op(L->c, H2O_EINPUT, op,
                         "get_tuple_element takes one tuple, an index and has one result");
  const OValue *h = lw_get(L, op->operands[0]);
  for (const TupleBinding *b = L->tuples; b; b = b->next) {
    if (b->handle != h) continue;
    if (index < 0 || index >= b->n)
      return diag_error_op(L->c, H2O_EINPUT, op, "index %lld of a tuple of %d elements",
                           (long long)index, b->n);
    lw_bind(L, op->results[0], b->elems[index]);
    return 0;
  }
  return lw_unsupported(L, "the tuple %s does not come from a stablehlo.tuple of this module "
                           "(tuples passed in from outside or through loops have no ONNX form)",
                        op->operands[0]->name);
}
