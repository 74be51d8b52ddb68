/* const_eval.c - integers known at conversion time.
 *
 * Indices, window sizes, slice starts and padding amounts are often
 * computed from constants in the HLO (JAX builds constant indices, negative
 * index normalisation and clamping this way), and a converter that knows
 * them can choose an exact, smaller ONNX form.  This file owns that one
 * evaluator: lw_known_ints follows the integer ops of the HLO down to
 * constants, and reads any value already lowered to an initializer
 * (parameters bound to weights, ops their converter folded).  Values are
 * computed as the HLO computes them: wrapped to the width of their type.
 * lw_int_range bounds the elements of a value from what the HLO states
 * (clamp, min, max, select of constants), for indices that are not
 * constants but provably in range.
 */
#include "lower/lower.h"

#include <string.h>

/* Integer types whose values an int64 holds exactly (not ui64). */
static bool is_index_type(ElemType et) {
  return (et_is_int(et) && et != ET_U64) || et == ET_BOOL;
}

/* v as a value of type et: wrapped to its width, as the HLO computes. */
static int64_t wrap(ElemType et, int64_t v) {
  size_t bits = 8 * et_size(et);
  if (et == ET_BOOL) return v != 0;
  if (bits == 0 || bits >= 64) return v;
  uint64_t mask = ((uint64_t)1 << bits) - 1, u = (uint64_t)v & mask;
  if (et_is_signed_int(et) && (u >> (bits - 1)) & 1) u |= ~mask;
  return (int64_t)u;
}

bool lw_next_pos(int64_t *pos, const int64_t *dims, int rank) {
  for (int i = rank - 1; i >= 0; i--) {
    if (++pos[i] < dims[i]) return true;
    pos[i] = 0;
  }
  return false;
}

/* Every entry in [0, limit), no repeats. */
static bool distinct_axes(const int64_t *v, int n, int64_t limit) {
  for (int i = 0; i < n; i++) {
    if (v[i] < 0 || v[i] >= limit) return false;
    for (int j = 0; j < i; j++)
      if (v[j] == v[i]) return false;
  }
  return true;
}

static int64_t eval_binary(OpKind k, const char *dir, int64_t a, int64_t b) {
  switch (k) {
  case OP_ADD: return (int64_t)((uint64_t)a + (uint64_t)b);
  case OP_SUBTRACT: return (int64_t)((uint64_t)a - (uint64_t)b);
  case OP_MULTIPLY: return (int64_t)((uint64_t)a * (uint64_t)b);
  case OP_MAXIMUM: return a > b ? a : b;
  case OP_MINIMUM: return a < b ? a : b;
  case OP_AND: return a & b;
  case OP_OR: return a | b;
  default: /* OP_COMPARE */
    if (!strcmp(dir, "EQ")) return a == b;
    if (!strcmp(dir, "NE")) return a != b;
    if (!strcmp(dir, "LT")) return a < b;
    if (!strcmp(dir, "LE")) return a <= b;
    if (!strcmp(dir, "GT")) return a > b;
    return a >= b; /* GE */
  }
}

/* Known values of one evaluation: vals[i] where known[i]. */
typedef struct Known {
  int64_t *vals;
  bool *known;
} Known;

/* The elements of the initializer v is lowered to, when it is one of an
 * integer type (ui64 saturates at INT64_MAX: only ever read as an index
 * that is clamped to a dimension). */
static bool from_initializer(Lower *L, const Value *v, int64_t n, Known *k) {
  const OValue *ov = v->lowered;
  const Data *d = og_const_data(ov);
  ElemType et = ov ? ov->type.et : ET_UNDEF;
  size_t size = et_size(et);
  if (!d || !(et_is_int(et) || et == ET_BOOL) || size == 0 || d->nbytes != (size_t)n * size)
    return false;
  const uint8_t *p = data_bytes(L->c, d);
  for (int64_t i = 0; i < n; i++) {
    int64_t x = elem_load_int(p, et, i);
    k->vals[i] = et == ET_U64 && x < 0 ? INT64_MAX : x;
    k->known[i] = true;
  }
  return true;
}

static bool eval(Lower *L, const Value *v, int64_t *budget, Known *k);

/* Fills k (n = numel of v) from v's op; false when nothing is known. */
static bool eval_op(Lower *L, const Value *v, int64_t n, int64_t *budget, Known *k) {
  const Op *op = v->def;
  const Type *t = &v->type;
  bool any = false;
  switch (op->kind) {
  case OP_CONSTANT: {
    int64_t *vals;
    int m = ir_attr_i64s(L->c, ir_op_attr(op, "value"), &vals);
    if (m < 0 || (m != n && m != 1)) return false;
    for (int64_t i = 0; i < n; i++) {
      k->vals[i] = vals[m == 1 ? 0 : i];
      k->known[i] = true;
    }
    return true;
  }
  case OP_IOTA: {
    int64_t axis, pos[MAX_RANK] = {0};
    if (!ir_attr_int(ir_op_attr(op, "iota_dimension"), &axis) || axis < 0 || axis >= t->rank)
      return false;
    for (int64_t i = 0; i < n; i++, lw_next_pos(pos, t->dims, t->rank)) {
      k->vals[i] = pos[axis];
      k->known[i] = true;
    }
    return true;
  }
  case OP_BROADCAST_IN_DIM: {
    const Value *src = op->operands[0];
    int64_t *bd, pos[MAX_RANK] = {0};
    Known x;
    int nb = ir_attr_i64s(L->c, ir_op_attr(op, "broadcast_dimensions"), &bd);
    if (nb != src->type.rank || !distinct_axes(bd, nb, t->rank)) return false;
    if (!eval(L, op->operands[0], budget, &x)) return false;
    for (int64_t i = 0; i < n; i++, lw_next_pos(pos, t->dims, t->rank)) {
      int64_t off = 0;
      for (int d = 0; d < nb; d++)
        off = off * src->type.dims[d] + (src->type.dims[d] == 1 ? 0 : pos[bd[d]]);
      k->vals[i] = x.vals[off];
      any |= k->known[i] = x.known[off];
    }
    return any;
  }
  case OP_RESHAPE: case OP_CONVERT: {
    Known x;
    if (type_numel(&op->operands[0]->type) != n || !eval(L, op->operands[0], budget, &x))
      return false;
    for (int64_t i = 0; i < n; i++) {
      k->vals[i] = wrap(t->et, x.vals[i]);
      any |= k->known[i] = x.known[i];
    }
    return any;
  }
  case OP_CONCATENATE: {
    int64_t axis;
    if (!ir_attr_int(ir_op_attr(op, "dimension"), &axis) || axis < 0 || axis >= t->rank)
      return false;
    int64_t outer = 1, at = 0;
    for (int i = 0; i < axis; i++) outer *= t->dims[i];
    int64_t row = outer ? n / outer : 0;
    for (int j = 0; j < op->n_operands; j++) {
      int64_t m = type_numel(&op->operands[j]->type);
      int64_t part = outer && m > 0 ? m / outer : 0;
      Known x;
      if (m < 0) return false;
      if (eval(L, op->operands[j], budget, &x)) {
        for (int64_t o = 0; o < outer; o++) {
          memcpy(k->vals + o * row + at, x.vals + o * part, sizeof(int64_t) * (size_t)part);
          memcpy(k->known + o * row + at, x.known + o * part, sizeof(bool) * (size_t)part);
        }
        any = true;
      } else if (*budget < 0) {
        return false;
      }
      at += part;
    }
    return any;
  }
  case OP_ADD: case OP_SUBTRACT: case OP_MULTIPLY: case OP_MAXIMUM: case OP_MINIMUM:
  case OP_AND: case OP_OR: case OP_COMPARE: case OP_SELECT: case OP_CLAMP: case OP_NEGATE:
  case OP_NOT: {
    /* elementwise; select's predicate and clamp's bounds may be scalars */
    Known in[3];
    int64_t m[3] = {0, 0, 0};
    if (op->n_operands > 3) return false;
    for (int j = 0; j < op->n_operands; j++) {
      m[j] = type_numel(&op->operands[j]->type);
      if (m[j] != n && m[j] != 1) return false;
      if (!eval(L, op->operands[j], budget, &in[j])) return false;
    }
    const Attr *dir = ir_op_attr(op, "comparison_direction");
    const char *d = dir && dir->s ? dir->s : "EQ";
    if (op->kind == OP_COMPARE && !et_is_signed_int(op->operands[0]->type.et) &&
        op->operands[0]->type.et != ET_BOOL)
      return false; /* unsigned order on int64 values: not worth it */
    for (int64_t i = 0; i < n; i++) {
      int64_t x[3] = {0, 0, 0};
      bool known = true;
      for (int j = 0; j < op->n_operands; j++) {
        int64_t at = m[j] == 1 ? 0 : i;
        x[j] = in[j].vals[at];
        known &= in[j].known[at];
      }
      int64_t r;
      switch (op->kind) {
      case OP_SELECT: r = x[0] ? x[1] : x[2]; break;
      case OP_CLAMP: r = x[1] < x[0] ? x[0] : (x[1] > x[2] ? x[2] : x[1]); break;
      case OP_NEGATE: r = (int64_t)(0 - (uint64_t)x[0]); break;
      case OP_NOT: r = t->et == ET_BOOL ? !x[0] : ~x[0]; break;
      default: r = eval_binary(op->kind, d, x[0], x[1]); break;
      }
      k->vals[i] = wrap(t->et, r);
      any |= k->known[i] = known;
    }
    return any;
  }
  default:
    return false;
  }
}

/* Evaluates v into a fresh k; false when nothing of it is known, or when
 * the work budget (elements visited) runs out: a DAG of shared
 * subexpressions must not cost exponential time. */
static bool eval(Lower *L, const Value *v, int64_t *budget, Known *k) {
  int64_t n = type_numel(&v->type);
  if (n < 0 || n > LW_MAX_KNOWN_INTS) return false;
  if ((*budget -= n + 1) < 0) return false;
  size_t count = (size_t)(n ? n : 1);
  k->vals = arena_alloc(L->c->arena, sizeof(int64_t) * count);
  k->known = arena_alloc(L->c->arena, sizeof(bool) * count); /* zeroed: unknown */
  if (v->def && is_index_type(v->type.et) && eval_op(L, v, n, budget, k)) return true;
  if (*budget < 0) return false;
  return from_initializer(L, v, n, k);
}

int64_t *lw_known_ints(Lower *L, const Value *v, bool **known) {
  int64_t budget = 4 * LW_MAX_KNOWN_INTS; /* a DAG may share subexpressions */
  Known k;
  *known = NULL;
  if (!eval(L, v, &budget, &k)) return NULL;
  *known = k.known;
  return k.vals;
}

int64_t *lw_const_ints(Lower *L, const Value *v) {
  bool *known;
  int64_t *vals = lw_known_ints(L, v, &known);
  int64_t n = type_numel(&v->type);
  if (!vals) return NULL;
  for (int64_t i = 0; i < n; i++)
    if (!known[i]) return NULL;
  return vals;
}

/* ---- bounds -------------------------------------------------------------- */

static bool const_range(Lower *L, const Value *v, int64_t *lo, int64_t *hi) {
  int64_t *vals = lw_const_ints(L, v);
  int64_t n = type_numel(&v->type);
  if (!vals || n <= 0) return false;
  *lo = *hi = vals[0];
  for (int64_t i = 1; i < n; i++) {
    if (vals[i] < *lo) *lo = vals[i];
    if (vals[i] > *hi) *hi = vals[i];
  }
  return true;
}

/* A bound of every element of v: the lowest (upper false) or the highest
 * (upper true) the ops computing v allow; false when they do not tell, or
 * when budget (ops visited) runs out. */
static bool int_bound(Lower *L, const Value *v, bool upper, int64_t *bound, int *budget) {
  const Op *op = v->def;
  int64_t lo, hi, a, b;
  if (!op || --*budget < 0) return false;
  if (const_range(L, v, &lo, &hi)) {
    *bound = upper ? hi : lo;
    return true;
  }
  switch (op->kind) {
  case OP_BROADCAST_IN_DIM: case OP_BROADCAST: case OP_RESHAPE: case OP_TRANSPOSE:
  case OP_SLICE:
    return int_bound(L, op->operands[0], upper, bound, budget);
  case OP_CLAMP: /* min <= clamp(min, x, max) <= max */
    return int_bound(L, op->operands[upper ? 2 : 0], upper, bound, budget);
  case OP_MAXIMUM: case OP_MINIMUM: case OP_SELECT: {
    /* The bound of max(x, y) is the larger of the operands' bounds, of
     * min(x, y) the smaller, of select(pred, x, y) the looser.  Maximum
     * raises a lower bound and minimum lowers an upper one, so there one
     * operand's bound is enough. */
    bool one_suffices = op->kind == (upper ? OP_MINIMUM : OP_MAXIMUM);
    bool larger = op->kind == OP_MAXIMUM || (op->kind == OP_SELECT && upper);
    int first = op->kind == OP_SELECT;
    bool ka = int_bound(L, op->operands[first], upper, &a, budget);
    if (!ka && !one_suffices) return false;
    bool kb = int_bound(L, op->operands[first + 1], upper, &b, budget);
    if (!kb && (!one_suffices || !ka)) return false;
    *bound = !ka ? b : !kb ? a : larger == (a > b) ? a : b;
    return true;
  }
  default:
    return false;
  }
}

bool lw_int_range(Lower *L, const Value *v, int64_t *lo, int64_t *hi) {
  int budget = 64;
  if (!int_bound(L, v, false, lo, &budget)) return false;
  budget = 64;
  return int_bound(L, v, true, hi, &budget);
}

/* ---- iotas ---------------------------------------------------------------- */

/* A dynamic_iota numbers positions just as an iota does: its shape operand
 * is the result's shape, whatever that is at run time. */
bool lw_is_position_iota(const Value *v, int64_t axis) {
  const Op *d = v->def;
  int64_t a;
  if (!d) return false;
  if (d->kind == OP_IOTA || d->kind == OP_DYNAMIC_IOTA) {
    const Attr *at = ir_op_attr(d, "iota_dimension");
    return at && ir_attr_int(at, &a) && a == axis;
  }
  if (d->kind == OP_BROADCAST_IN_DIM && d->n_operands == 1 && d->operands[0]->type.rank == 1) {
    const Attr *bd = ir_op_attr(d, "broadcast_dimensions");
    const Op *src = d->operands[0]->def;
    const Attr *at = src && src->kind == OP_IOTA ? ir_op_attr(src, "iota_dimension") : NULL;
    return bd && bd->kind == AK_ARRAY && bd->n_elems == 1 && ir_attr_int(bd->elems[0], &a) &&
           a == axis && at && ir_attr_int(at, &a) && a == 0;
  }
  return false;
}
