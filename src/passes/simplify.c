/* simplify.c - removes what the op-by-op lowering leaves behind.
 *
 * StableHLO has no implicit broadcasting and, with a symbolic batch, spells
 * every shape out as arithmetic on get_dimension_size; ONNX broadcasts and
 * accepts 0 and -1 in shapes.  So, node by node, a few rounds until nothing
 * changes:
 *
 *   - no-ops: Identity, Casts to the same type, Reshapes and Expands that
 *     keep the (symbolic) shape, Transposes that undo each other, Where with
 *     a constant condition, x - 0, x * 1 and x / 1 of constants (never of
 *     weights);
 *   - broadcasts: an Expand in front of a node whose own broadcasting gives
 *     the same shape is dropped (same_shape_inputs, or proven from named
 *     dims), an Expand sinks through unary elementwise ops towards such a
 *     node;
 *   - shapes: a Reshape, Expand or Slice whose shape or ends are computed at
 *     run time gets constants where its output dims are known, so the Shape,
 *     Gather, Concat and Cast chains that computed them die;
 *   - stack then reshape (rotate_half) becomes one Concat.
 *
 * Dims are compared only as known numbers or as the names symbolic_dims
 * proved ("B", "16*B"), never guessed. */
#include "passes/passes.h"

#include <math.h>
#include <string.h>

static bool is_dim_one(ODim d) { return d.value == 1; }

static bool same_shape(const OValue *a, const OValue *b) {
  if (a->type.rank != b->type.rank || a->type.rank < 0) return false;
  for (int i = 0; i < a->type.rank; i++)
    if (!og_same_dim(a->type.dims[i], b->type.dims[i])) return false;
  return true;
}

/* Makes n's output an alias of `to`.  A graph output keeps its name: the
 * node computing `to` then writes the output itself, when `to` is that
 * node's own value and n its only reader (else n stays, to carry the name:
 * e.g. the identity left of the NHWC -> NCHW Transposes of outputs_as_nchw
 * behind a pool). */
static bool bypass(OGraph *g, ONode *n, OValue *to) {
  OValue *out = n->outputs[0];
  if (!out->is_output) {
    og_replace_uses(g, out, to);
    return true;
  }
  ONode *p = to->producer;
  if (!p || p->dead || to->graph != g || to->n_uses != 1 || to->is_output || to->is_input ||
      to->is_init)
    return false;
  for (int j = 0; j < p->n_outputs; j++)
    if (p->outputs[j] == to) {
      p->outputs[j] = out;
      out->producer = p;
      to->producer = NULL;
      to->n_uses = 0;
      n->dead = true;
      return true;
    }
  return false;
}

static bool is_live_expand(const OValue *v) {
  const ONode *p = v ? v->producer : NULL;
  return p && !p->dead && og_is(p, ONNX_Expand);
}

/* Expand(x, shape) feeding an elementwise node whose other inputs have the
 * full shape: the node broadcasts x itself, so it can read x directly.  One
 * input keeps the full shape - the first that is not an Expand, or else the
 * first input - so the node's output shape does not change. */
static bool drop_expands(ONode *n) {
  if (!n->same_shape_inputs || !onnx_op_has(n->kind, ONNX_BROADCASTS)) return false;
  int keep = 0;
  for (int j = 0; j < n->n_inputs; j++)
    if (!is_live_expand(n->inputs[j])) {
      keep = j;
      break;
    }
  bool changed = false;
  for (int j = 0; j < n->n_inputs; j++) {
    OValue *in = n->inputs[j];
    if (j == keep || !is_live_expand(in)) continue;
    OValue *x = in->producer->inputs[0];
    /* numpy broadcasting aligns from the right: x must not outrank in */
    if (x->type.rank < 0 || x->type.rank > in->type.rank) continue;
    n->inputs[j] = x;
    in->n_uses--;
    x->n_uses++;
    changed = true;
  }
  if (changed) n->same_shape_inputs = false;
  return changed;
}

/* Whether numpy broadcasting of n's inputs, with input j read as x, still
 * gives n's output shape: on every output axis some input has the output's
 * dim and every other input has it too or 1 (or no axis there).  Dims are
 * compared as known numbers or proven symbolic sizes, never guessed. */
static bool broadcast_keeps_shape(const ONode *n, int j, const OValue *x) {
  const OType *out = &n->outputs[0]->type;
  int R = out->rank, max_rank = x->type.rank;
  if (R < 0 || x->type.rank < 0 || x->type.rank > R) return false;
  for (int k = 0; k < n->n_inputs; k++)
    if (k != j && n->inputs[k] && n->inputs[k]->type.rank > max_rank) max_rank = n->inputs[k]->type.rank;
  if (max_rank != R) return false; /* the output would lose its leading unit axes */
  for (int i = 0; i < R; i++) {
    ODim want = out->dims[i];
    bool covered = false;
    for (int k = 0; k < n->n_inputs; k++) {
      const OValue *in = k == j ? x : n->inputs[k];
      if (!in || in->type.rank < 0 || in->type.rank > R) return false;
      int a = i - (R - in->type.rank);
      if (a < 0) continue;
      ODim d = in->type.dims[a];
      if (og_same_dim(d, want)) covered = true;
      else if (!is_dim_one(d)) return false;
    }
    if (!covered && !is_dim_one(want)) return false;
  }
  return true;
}

static OValue *neutral_operand_of(Ctx *c, const ONode *n);

/* Expand(x, shape) read by a broadcasting node that yields the same output
 * shape from x itself: JAX's dynamic_broadcast_in_dim of a keepdims
 * reduction or a mask, which ONNX broadcasting does for free.  The same for
 * a node whose only effect on x is such a broadcast (And(mask, true[1, 4,
 * 1, 1]) read by the Where that applies the mask). */
static bool drop_proven_expands(Ctx *c, ONode *n) {
  if (!onnx_op_has(n->kind, ONNX_BROADCASTS) || n->n_outputs != 1) return false;
  bool changed = false;
  for (int j = 0; j < n->n_inputs; j++) {
    OValue *in = n->inputs[j];
    OValue *x = is_live_expand(in) ? in->producer->inputs[0]
                : in ? neutral_operand_of(c, in->producer) : NULL;
    if (!x || !broadcast_keeps_shape(n, j, x)) continue;
    n->inputs[j] = x;
    in->n_uses--;
    x->n_uses++;
    changed = true;
  }
  return changed;
}

/* Expand(x, shape computed at run time) read only by a broadcasting node
 * whose other inputs bring some of its dims: the Expand need only make the
 * dims nobody else has, and when those are static its shape is a constant
 * (And(Expand(true, [B, 4, T, T]), mask[B, 1, T, T]) expands to [1, 4, 1, 1]).
 * The node's output is unchanged: every axis set to 1 is covered by an
 * input with the same dim. */
static bool shrink_expand_shape(Ctx *c, OGraph *g, ONode *n) {
  if (!onnx_op_has(n->kind, ONNX_BROADCASTS) || n->n_outputs != 1) return false;
  const OType *out = &n->outputs[0]->type;
  int R = out->rank;
  for (int j = 0; j < n->n_inputs; j++) {
    OValue *in = n->inputs[j];
    if (!is_live_expand(in) || in->n_uses != 1 || in->is_output) continue;
    ONode *e = in->producer;
    const OValue *x = e->inputs[0];
    int RE = in->type.rank, r = x->type.rank;
    if (e->n_inputs != 2 || og_const_data(e->inputs[1]) || RE < 0 || RE > R || r < 0 || r > RE)
      continue;
    int64_t shape[MAX_RANK];
    ODim dims[MAX_RANK]; /* the Expand's output dims with the new shape */
    bool ok = true;
    for (int i = 0; i < RE && ok; i++) {
      ODim d = in->type.dims[i];
      int a = i - (RE - r), o = i + (R - RE); /* the axis of x and of the output */
      bool kept = a >= 0 && og_same_dim(x->type.dims[a], d);
      if (!kept && a >= 0 && !is_dim_one(x->type.dims[a])) {
        ok = false; /* x's dim there unknown: the Expand's output would be too */
        break;
      }
      dims[i] = kept ? d : (ODim){.value = 1};
      bool covered = kept;
      for (int k = 0; k < n->n_inputs && !covered; k++) {
        const OValue *other = n->inputs[k];
        if (k == j || !other || other->type.rank < 0) continue;
        int b = o - (R - other->type.rank);
        covered = b >= 0 && !is_dim_one(other->type.dims[b]) && og_same_dim(other->type.dims[b], d);
      }
      if (covered) shape[i] = 1;
      else if (d.value >= 0) shape[i] = dims[i].value = d.value;
      else ok = false;
    }
    if (!ok) continue;
    og_set_input(e, 1, og_init_i64s(c, g, "shape", RE, shape));
    for (int i = 0; i < RE; i++) in->type.dims[i] = dims[i];
    return true;
  }
  return false;
}

/* Where(cond, a, b) whose condition is a constant, all true or all false:
 * the chosen input, when it already has the output's shape.  (jnp.var's
 * guard against a negative count, max(N - ddof, 0), folds to such a
 * condition.) */
static bool constant_where(Ctx *c, OGraph *g, ONode *n) {
  if (!og_is(n, ONNX_Where) || n->n_inputs != 3) return false;
  const Data *d = og_const_data(n->inputs[0]);
  if (!d || n->inputs[0]->type.et != ET_BOOL || d->nbytes == 0) return false;
  const uint8_t *b = data_bytes(c, d);
  for (size_t i = 1; i < d->nbytes; i++)
    if ((b[i] != 0) != (b[0] != 0)) return false;
  OValue *chosen = n->inputs[b[0] ? 1 : 2];
  if (!chosen || chosen->type.et != n->outputs[0]->type.et || !same_shape(chosen, n->outputs[0]))
    return false;
  return bypass(g, n, chosen);
}

/* U(Expand(x, shape)) for an elementwise op U of one input (a Cast, a Not)
 * is Expand(U(x), shape): the Expand moves towards its consumer, whose own
 * broadcasting may then make it redundant (keras-hub's causal mask is
 * expanded to the batch, then cast for a Min with the padding mask).  The
 * two nodes trade places: the Expand's node computes U on x, U's node
 * expands, so the order of the node list stays topological. */
static bool sink_expand(Ctx *c, ONode *n) {
  if (!onnx_op_has(n->kind, ONNX_ELEMENTWISE) || n->n_inputs != 1 || n->n_outputs != 1)
    return false;
  OValue *mid = n->inputs[0];
  if (!is_live_expand(mid) || !og_single_use(mid) || mid->producer->n_inputs != 2) return false;
  ONode *e = mid->producer;
  OValue *x = e->inputs[0], *shape = e->inputs[1];
  if (x->type.rank < 0) return false;
  /* e becomes U(x): U's op, attributes and name */
  OnnxOp u = n->kind;
  OAttr *attrs = e->attrs;
  int n_attrs = e->n_attrs, cap = e->cap_attrs;
  const char *name = e->name;
  const Op *origin = e->origin;
  og_set_kind(e, u);
  e->attrs = n->attrs, e->n_attrs = n->n_attrs, e->cap_attrs = n->cap_attrs;
  e->name = n->name, e->origin = n->origin;
  e->n_inputs = 1;
  shape->n_uses--;
  ODim *dims = arena_alloc(c->arena, sizeof(ODim) * (size_t)(x->type.rank + 1));
  /* A scalar x has no dims array: memcpy from NULL is undefined even for 0 bytes. */
  if (x->type.rank > 0) memcpy(dims, x->type.dims, sizeof(ODim) * (size_t)x->type.rank);
  mid->type = (OType){n->outputs[0]->type.et, x->type.rank, dims};
  /* n becomes Expand(U(x), shape) */
  og_set_kind(n, ONNX_Expand);
  n->attrs = attrs, n->n_attrs = n_attrs, n->cap_attrs = cap;
  n->name = name, n->origin = origin;
  OValue **in = arena_alloc(c->arena, sizeof(OValue *) * 3);
  in[0] = mid, in[1] = shape;
  n->inputs = in;
  n->n_inputs = 2;
  shape->n_uses++;
  e->same_shape_inputs = n->same_shape_inputs = false;
  return true;
}

static int bool_always(Ctx *c, const OValue *v, int depth);

/* v holds one value everywhere (a bool as 1 or 0): a splat constant, or
 * such a constant broadcast, reshaped or transposed (nnx.RMSNorm subtracts
 * a mean of zeros expanded to the batch; JAX's attention ands its mask with
 * a true expanded over the heads). */
static bool splat_through(Ctx *c, const OValue *v, double *out) {
  for (int depth = 0; v && depth < 8; depth++) {
    /* a weight is never dropped for the values it happens to hold now */
    if (v->is_param) return false;
    if (v->type.et == ET_BOOL && og_const_data(v)) { /* 1 or 0 everywhere */
      int always = bool_always(c, v, 0);
      *out = always;
      return always >= 0;
    }
    if (fm_splat(c, v, out)) return true;
    const ONode *p = v->producer;
    if (!p || p->dead || p->n_inputs < 1) return false;
    if (!og_is(p, ONNX_Expand) && !og_is(p, ONNX_Transpose) &&
        !onnx_op_has(p->kind, ONNX_RESHAPES))
      return false;
    v = p->inputs[0];
  }
  return false;
}

/* n = op(x, k) with a constant k that leaves every element of x as it is
 * (identity_operand lists them); k may still widen x's shape, as
 * And(mask, true[1, 4, 1, 1]) does where JAX's attention broadcasts a mask
 * over the heads.  Returns x, or NULL. */
static OValue *neutral_operand_of(Ctx *c, const ONode *n) {
  if (!n || n->dead || n->n_inputs != 2 || n->n_outputs != 1) return NULL;
  ElemType et = n->outputs[0]->type.et;
  bool is_float = et_is_float(et);
  bool add = og_is(n, ONNX_Add), sub = og_is(n, ONNX_Sub), mul = og_is(n, ONNX_Mul),
       div = og_is(n, ONNX_Div), and_op = og_is(n, ONNX_And), or_op = og_is(n, ONNX_Or);
  bool numeric = add || sub || mul || div, logical = and_op || or_op;
  if (numeric ? !is_float && !et_is_int(et) : !(logical && et == ET_BOOL)) return NULL;
  for (int side = (sub || div) ? 1 : 0; side < 2; side++) {
    double k;
    OValue *x = n->inputs[1 - side];
    if (!splat_through(c, n->inputs[side], &k) || x->type.et != et) continue;
    bool neutral = and_op ? k != 0
                 : or_op ? k == 0
                 : (mul || div) ? k == 1
                 : k == 0 && (!is_float || (signbit(k) != 0) == add);
    if (neutral) return x;
  }
  return NULL;
}

/* x - (+0), x + (-0), x * 1 and x / 1 are x, bit for bit (x + (+0) is not:
 * -0 + 0 = +0; for integers x + 0 is), and so are x and true, x or false:
 * when the other operand does not widen x's shape, the node is x. */
static bool identity_operand(Ctx *c, OGraph *g, ONode *n) {
  OValue *x = neutral_operand_of(c, n);
  return x && same_shape(x, n->outputs[0]) && bypass(g, n, x);
}

/* ---- integer ranges -----------------------------------------------------------
 * JAX guards every gather: an index is wrapped (where(i < 0, i + n, i)),
 * clamped into the operand, and for a gather that fills out-of-range slots
 * checked once more (i >= 0 and i <= n - k, else NaN).  Where the index
 * provably lies in range already (an arange, an argmax, a clamp written
 * before) the guards compute nothing: Keras's DeBERTa spends a tenth of its
 * time in them.  So integer values get bounds, which hold for every input;
 * arithmetic is followed only where it cannot wrap, and a weight's values
 * are never relied on. */

typedef struct IntRange {
  int64_t lo, hi;
} IntRange;

/* A bound this far out: no bound.  Every bound lies within +-RANGE_BIG, so
 * the sum or difference of two never overflows int64. */
#define RANGE_BIG ((int64_t)1 << 61)

static IntRange type_range(ElemType et) {
  switch (et) {
  case ET_BOOL: return (IntRange){0, 1};
  case ET_I8: return (IntRange){INT8_MIN, INT8_MAX};
  case ET_U8: return (IntRange){0, UINT8_MAX};
  case ET_I16: return (IntRange){INT16_MIN, INT16_MAX};
  case ET_U16: return (IntRange){0, UINT16_MAX};
  case ET_I32: return (IntRange){INT32_MIN, INT32_MAX};
  case ET_U32: return (IntRange){0, UINT32_MAX};
  case ET_U64: return (IntRange){0, RANGE_BIG};
  default: return (IntRange){-RANGE_BIG, RANGE_BIG};
  }
}

static bool within(IntRange r, IntRange bounds) { return r.lo >= bounds.lo && r.hi <= bounds.hi; }

/* An index along an axis or a size (or a choice among them): smaller than
 * some dim, so it fits the int32 JAX computes indices in. */
static bool is_index(const OValue *v, int depth) {
  const ONode *p = v ? v->producer : NULL;
  if (!p || p->dead || depth > 8 || p->n_inputs < 1) return false;
  switch (p->kind) {
  case ONNX_Shape: case ONNX_ArgMax: case ONNX_ArgMin: case ONNX_Range: return true;
  case ONNX_Where:
    return p->n_inputs == 3 && is_index(p->inputs[1], depth + 1) && is_index(p->inputs[2], depth + 1);
  case ONNX_Cast: case ONNX_Reshape: case ONNX_Squeeze: case ONNX_Unsqueeze: case ONNX_Gather:
  case ONNX_Slice:
    return et_is_int(p->inputs[0]->type.et) && is_index(p->inputs[0], depth + 1);
  default:
    return false;
  }
}

static IntRange constant_range(Ctx *c, const OValue *v, IntRange any) {
  const Data *d = og_const_data(v);
  size_t es = et_size(v->type.et);
  if (!d || !es || d->nbytes == 0 || d->nbytes / es > 4096 || v->is_param) return any;
  const uint8_t *b = data_bytes(c, d);
  IntRange r = {INT64_MAX, INT64_MIN};
  for (size_t i = 0; i < d->nbytes / es; i++) {
    int64_t x = elem_load_int(b, v->type.et, (int64_t)i);
    if (x < -RANGE_BIG || x > RANGE_BIG) return any; /* and uint64 beyond int64 */
    r.lo = x < r.lo ? x : r.lo;
    r.hi = x > r.hi ? x : r.hi;
  }
  return r;
}

static IntRange int_range(Ctx *c, const OValue *v, int depth);

/* min or max of the inputs, elementwise */
static IntRange extremum_range(Ctx *c, const ONode *p, bool is_max, IntRange any, int depth) {
  IntRange r = int_range(c, p->inputs[0], depth + 1);
  for (int j = 1; j < p->n_inputs; j++) {
    if (!p->inputs[j]) continue;
    IntRange o = int_range(c, p->inputs[j], depth + 1);
    if (is_max) r = (IntRange){o.lo > r.lo ? o.lo : r.lo, o.hi > r.hi ? o.hi : r.hi};
    else r = (IntRange){o.lo < r.lo ? o.lo : r.lo, o.hi < r.hi ? o.hi : r.hi};
  }
  return within(r, any) ? r : any;
}

static IntRange int_range(Ctx *c, const OValue *v, int depth) {
  if (!v) return (IntRange){-RANGE_BIG, RANGE_BIG};
  IntRange any = type_range(v->type.et);
  if (depth > 12 || (!et_is_int(v->type.et) && v->type.et != ET_BOOL)) return any;
  if (og_const_data(v)) return constant_range(c, v, any);
  const ONode *p = v->producer;
  if (!p || p->dead || p->n_inputs < 1 || !p->inputs[0]) return any;
  const OValue *x = p->inputs[0];
  IntRange a = {0, 0}, b = {0, 0}, r;
  bool binary = p->n_inputs == 2 && p->inputs[1];
  if (binary && (og_is(p, ONNX_Add) || og_is(p, ONNX_Sub) || og_is(p, ONNX_Mul)))
    a = int_range(c, x, depth + 1), b = int_range(c, p->inputs[1], depth + 1);
  switch (p->kind) {
  case ONNX_Shape: return (IntRange){0, RANGE_BIG};
  case ONNX_ArgMax: case ONNX_ArgMin: {
    const OAttr *ax = og_get_attr(p, "axis");
    int rank = x->type.rank, k = ax ? (int)ax->i : 0;
    k = k < 0 ? k + rank : k;
    int64_t n = k >= 0 && k < rank ? x->type.dims[k].value : -1;
    return (IntRange){0, n > 0 ? n - 1 : RANGE_BIG};
  }
  case ONNX_Range: {
    /* start + i * delta < limit, for a positive delta */
    IntRange start = int_range(c, x, depth + 1), delta;
    if (p->n_inputs != 3) return any;
    delta = int_range(c, p->inputs[2], depth + 1);
    if (delta.lo <= 0) return any;
    IntRange limit = int_range(c, p->inputs[1], depth + 1);
    r = (IntRange){start.lo, limit.hi >= RANGE_BIG ? RANGE_BIG : limit.hi - 1};
    if (r.hi < start.hi) r.hi = start.hi; /* an empty range has no element: any bound */
    return within(r, any) ? r : any;
  }
  case ONNX_Cast:
    if (!et_is_int(x->type.et) && x->type.et != ET_BOOL) return any;
    r = int_range(c, x, depth + 1);
    /* value-preserving where every value of x's type fits (a bound of
     * RANGE_BIG means none: uint64 to int64 wraps), or x's bounds do */
    if (within(type_range(x->type.et), any) && x->type.et != ET_U64) return r;
    if (r.lo > -RANGE_BIG && r.hi < RANGE_BIG && within(r, any)) return r;
    /* to JAX's int32: an index or a size is smaller than some dim */
    if (r.lo >= 0 && et_size(v->type.et) >= 4 && is_index(x, 0)) return (IntRange){r.lo, any.hi};
    return any;
  case ONNX_Max: case ONNX_Min:
    return extremum_range(c, p, og_is(p, ONNX_Max), any, depth);
  case ONNX_Clip: {
    r = int_range(c, x, depth + 1);
    if (p->n_inputs > 1 && p->inputs[1]) {
      IntRange lo = int_range(c, p->inputs[1], depth + 1);
      r = (IntRange){r.lo > lo.lo ? r.lo : lo.lo, r.hi > lo.hi ? r.hi : lo.hi};
    }
    if (p->n_inputs > 2 && p->inputs[2]) {
      IntRange hi = int_range(c, p->inputs[2], depth + 1);
      r = (IntRange){r.lo < hi.lo ? r.lo : hi.lo, r.hi < hi.hi ? r.hi : hi.hi};
    }
    return within(r, any) ? r : any;
  }
  case ONNX_Where: {
    if (p->n_inputs != 3) return any;
    a = int_range(c, p->inputs[1], depth + 1), b = int_range(c, p->inputs[2], depth + 1);
    return (IntRange){a.lo < b.lo ? a.lo : b.lo, a.hi > b.hi ? a.hi : b.hi};
  }
  case ONNX_Add: /* bounds within 2^61: the sums fit int64; beyond the type it wraps */
    r = binary ? (IntRange){a.lo + b.lo, a.hi + b.hi} : any;
    return within(r, any) && within(a, any) && within(b, any) ? r : any;
  case ONNX_Sub:
    r = binary ? (IntRange){a.lo - b.hi, a.hi - b.lo} : any;
    return within(r, any) && within(a, any) && within(b, any) ? r : any;
  case ONNX_Mul: {
    const int64_t small = (int64_t)1 << 30;
    if (!binary || a.lo < -small || a.hi > small || b.lo < -small || b.hi > small) return any;
    int64_t q[4] = {a.lo * b.lo, a.lo * b.hi, a.hi * b.lo, a.hi * b.hi};
    r = (IntRange){q[0], q[0]};
    for (int i = 1; i < 4; i++) r.lo = q[i] < r.lo ? q[i] : r.lo, r.hi = q[i] > r.hi ? q[i] : r.hi;
    return within(r, any) ? r : any;
  }
  case ONNX_Neg:
    r = int_range(c, x, depth + 1);
    r = (IntRange){-r.hi, -r.lo};
    return within(r, any) ? r : any;
  case ONNX_Concat:
    r = int_range(c, x, depth + 1);
    for (int j = 1; j < p->n_inputs; j++) {
      IntRange o = int_range(c, p->inputs[j], depth + 1);
      r = (IntRange){o.lo < r.lo ? o.lo : r.lo, o.hi > r.hi ? o.hi : r.hi};
    }
    return r;
  case ONNX_Reshape: case ONNX_Squeeze: case ONNX_Unsqueeze: case ONNX_Flatten:
  case ONNX_Transpose: case ONNX_Expand: case ONNX_Slice: case ONNX_Gather:
  case ONNX_GatherElements: case ONNX_GatherND: case ONNX_Identity:
    return int_range(c, x, depth + 1); /* they move x's elements */
  default:
    return any;
  }
}

/* A bool that is the same everywhere, for every input: 1 (true), 0 (false),
 * or -1 when it depends on the values. */
static int bool_always(Ctx *c, const OValue *v, int depth) {
  if (!v || v->type.et != ET_BOOL || depth > 12) return -1;
  if (og_const_data(v)) {
    IntRange r = constant_range(c, v, (IntRange){0, -1});
    return r.lo == r.hi ? (int)r.lo : -1;
  }
  const ONode *p = v->producer;
  if (!p || p->dead || p->n_inputs < 1 || !p->inputs[0]) return -1;
  const OValue *x = p->inputs[0];
  switch (p->kind) {
  case ONNX_Less: case ONNX_LessOrEqual: case ONNX_Greater: case ONNX_GreaterOrEqual:
  case ONNX_Equal: {
    if (p->n_inputs != 2 || !et_is_int(x->type.et)) return -1;
    IntRange a = int_range(c, x, depth + 1), b = int_range(c, p->inputs[1], depth + 1);
    if (og_is(p, ONNX_Greater) || og_is(p, ONNX_GreaterOrEqual)) { /* b < a, b <= a */
      IntRange t = a;
      a = b, b = t;
    }
    if (og_is(p, ONNX_Equal)) return a.hi < b.lo || b.hi < a.lo ? 0 : -1;
    bool strict = og_is(p, ONNX_Less) || og_is(p, ONNX_Greater);
    if (strict ? a.hi < b.lo : a.hi <= b.lo) return 1;
    if (strict ? a.lo >= b.hi : a.lo > b.hi) return 0;
    return -1;
  }
  case ONNX_And: case ONNX_Or: {
    int l = bool_always(c, x, depth + 1), r = p->n_inputs == 2 ? bool_always(c, p->inputs[1], depth + 1) : -1;
    int absorbing = og_is(p, ONNX_And) ? 0 : 1;
    if (l == absorbing || r == absorbing) return absorbing;
    return l >= 0 && r >= 0 ? l : -1;
  }
  case ONNX_Not: {
    int l = bool_always(c, x, depth + 1);
    return l < 0 ? -1 : !l;
  }
  case ONNX_ReduceMin: case ONNX_ReduceMax: {
    /* all or any of a constant: itself, unless a reduced axis is empty
     * (then the identity of the reduction): reduced dims static, > 0 */
    int64_t axes[MAX_RANK];
    int rank = x->type.rank;
    int n_axes = p->n_inputs > 1 && p->inputs[1] ? og_const_i64s(c, p->inputs[1], axes, MAX_RANK) : -1;
    if (rank < 0 || n_axes < 1) return -1; /* all axes, or not known which */
    for (int i = 0; i < n_axes; i++) {
      int64_t a = axes[i] < 0 ? axes[i] + rank : axes[i];
      if (a < 0 || a >= rank || x->type.dims[a].value < 1) return -1;
    }
    return bool_always(c, x, depth + 1);
  }
  case ONNX_Reshape: case ONNX_Squeeze: case ONNX_Unsqueeze: case ONNX_Flatten:
  case ONNX_Transpose: case ONNX_Expand: case ONNX_Slice: case ONNX_Identity:
    return bool_always(c, x, depth + 1);
  default:
    return -1;
  }
}

/* The guards of an index already in range: where(i < 0, i + n, i) of an i
 * that is never negative, where(in_bounds, gathered, NaN) of indices in
 * bounds, and the clamps max(i, k), min(i, k), clip(i, lo, hi) that do not
 * change i. */
static bool needless_guard(Ctx *c, OGraph *g, ONode *n) {
  if (n->n_outputs != 1 || n->n_inputs < 1 || !n->inputs[0]) return false;
  OValue *out = n->outputs[0], *x = n->inputs[0];
  if (og_is(n, ONNX_Where) && n->n_inputs == 3) {
    int always = bool_always(c, n->inputs[0], 0);
    OValue *chosen = always < 0 ? NULL : n->inputs[always ? 1 : 2];
    return chosen && chosen->type.et == out->type.et && same_shape(chosen, out) &&
           bypass(g, n, chosen);
  }
  if (!et_is_int(out->type.et) || x->type.et != out->type.et || !same_shape(x, out)) return false;
  if (og_is(n, ONNX_Clip)) {
    IntRange r = int_range(c, x, 0), bounds = {INT64_MIN, INT64_MAX};
    if (n->n_inputs > 1 && n->inputs[1]) bounds.lo = int_range(c, n->inputs[1], 0).hi;
    if (n->n_inputs > 2 && n->inputs[2]) bounds.hi = int_range(c, n->inputs[2], 0).lo;
    return within(r, bounds) && bypass(g, n, x);
  }
  if ((og_is(n, ONNX_Max) || og_is(n, ONNX_Min)) && n->n_inputs == 2) {
    for (int side = 0; side < 2; side++) {
      OValue *keep = n->inputs[side];
      IntRange r = int_range(c, keep, 0), k = int_range(c, n->inputs[1 - side], 0);
      bool noop = og_is(n, ONNX_Max) ? r.lo >= k.hi : r.hi <= k.lo;
      if (noop && keep->type.et == out->type.et && same_shape(keep, out)) return bypass(g, n, keep);
    }
  }
  return false;
}

/* ---- shape vectors through int32 --------------------------------------------
 * JAX computes sizes in int32: Shape gives int64, which the lowering casts
 * to int32 for JAX's arithmetic and back to int64 where ONNX wants a shape.
 * A size is far below 2^31, so the round trip is the identity:
 * Cast(Cast(s, int32), int64) is s, and Cast(Concat(Cast(s, int32), k),
 * int64) is Concat(s, k) with k widened. */

/* A vector of sizes: Shape(x), or pieces, concatenations and casts of it. */
static bool is_size_vector(const OValue *v, int depth) {
  const ONode *p = v ? v->producer : NULL;
  if (!p || p->dead || depth > 8 || !et_is_int(v->type.et)) return false;
  if (og_is(p, ONNX_Shape)) return true;
  if (og_is(p, ONNX_Gather) || og_is(p, ONNX_Slice) || og_is(p, ONNX_Cast) ||
      onnx_op_has(p->kind, ONNX_RESHAPES))
    return p->n_inputs >= 1 && is_size_vector(p->inputs[0], depth + 1);
  return false;
}

/* v read back in the integer type `et`, when v is Cast(s, int32 or wider)
 * of a size vector s of type et: s itself. */
static OValue *size_before_cast(const OValue *v, ElemType et) {
  const ONode *p = v->producer;
  if (!og_is(p, ONNX_Cast) || p->dead || !et_is_signed_int(v->type.et) || et_size(v->type.et) < 4)
    return NULL;
  OValue *s = p->inputs[0];
  return s->type.et == et && is_size_vector(s, 0) ? s : NULL;
}

static bool size_cast_round_trip(Ctx *c, OGraph *g, ONode *n) {
  if (!og_is(n, ONNX_Cast) || n->n_inputs != 1) return false;
  OValue *x = n->inputs[0], *out = n->outputs[0];
  ElemType et = out->type.et;
  if (!et_is_signed_int(et) || !et_is_signed_int(x->type.et)) return false;
  OValue *s = size_before_cast(x, et);
  if (s && same_shape(s, out)) return bypass(g, n, s);
  ONode *cat = x->producer;
  if (!og_is(cat, ONNX_Concat) || cat->dead || x->type.rank != 1 || cat->n_inputs > MAX_RANK)
    return false;
  OValue *parts[MAX_RANK];
  for (int j = 0; j < cat->n_inputs; j++) {
    OValue *in = cat->inputs[j];
    int64_t vals[MAX_RANK];
    const Data *d = og_const_data(in);
    size_t es = et_size(in->type.et);
    if ((parts[j] = size_before_cast(in, et))) continue;
    if (!d || !es || in->type.rank != 1 || d->nbytes / es > MAX_RANK || et != ET_I64) return false;
    int m = (int)(d->nbytes / es);
    for (int i = 0; i < m; i++) vals[i] = elem_load_int(data_bytes(c, d), in->type.et, i);
    parts[j] = og_init_i64s(c, g, "shape", m, vals);
  }
  /* n becomes the Concat, in the wide type */
  x->n_uses--;
  OValue **in = arena_alloc(c->arena, sizeof(OValue *) * (size_t)(cat->n_inputs + 1));
  for (int j = 0; j < cat->n_inputs; j++) {
    in[j] = parts[j];
    in[j]->n_uses++;
  }
  const OAttr *axis = og_get_attr(cat, "axis");
  og_set_kind(n, ONNX_Concat);
  n->inputs = in;
  n->n_inputs = cat->n_inputs;
  n->n_attrs = 0;
  og_attr_int(c, n, "axis", axis ? axis->i : 0);
  return true;
}

/* Reshape or Expand to a shape computed at run time (Shape, Gather, Concat,
 * Cast: JAX's dynamic shapes) whose output dims are all known, as numbers
 * or as named symbolic sizes: the shape becomes a constant, and the shape
 * arithmetic dies.  Reshape copies an input dim with 0 and infers one dim
 * with -1 (only where no other dim may be 0 at run time, or -1 is 0/0);
 * Expand keeps an input dim with 1. */
static bool constant_shape(Ctx *c, OGraph *g, ONode *n) {
  bool reshape = og_is(n, ONNX_Reshape), expand = og_is(n, ONNX_Expand);
  if ((!reshape && !expand) || n->n_inputs != 2 || og_const_data(n->inputs[1])) return false;
  const OValue *x = n->inputs[0], *out = n->outputs[0];
  int R = out->type.rank, r = x->type.rank;
  if (R < 0 || R > MAX_RANK || r < 0 || (expand && r > R)) return false;
  int64_t shape[MAX_RANK];
  if (reshape && !og_reshape_target(x, out->type.dims, R, shape)) return false;
  for (int j = 0; expand && j < R; j++) {
    ODim d = out->type.dims[j];
    int a = j - (R - r); /* the input axis this dim lines up with */
    if (a >= 0 && og_same_dim(x->type.dims[a], d)) shape[j] = 1;
    else if (d.value >= 0) shape[j] = d.value;
    else return false;
  }
  og_set_input(n, 1, og_init_i64s(c, g, "shape", R, shape));
  /* JAX's dynamic reshapes say allowzero=1 (a size computed as 0 is 0); the
   * new shape holds no literal 0, and a dim it copies is the input's even
   * when that is 0, so the copying form computes the same. */
  const OAttr *az = og_get_attr(n, "allowzero");
  if (reshape && az && az->i) og_attr_int(c, n, "allowzero", 0);
  return true;
}

/* Reshape to a computed shape that only inserts or only removes unit axes
 * ([B, 4, T, T] -> [B, 4, T, 1, T], dot_general's split of merged free
 * axes) is an Unsqueeze or a Squeeze with constant axes: constant_shape
 * cannot write it when it would need both a copied dim (0) and an inferred
 * one (-1).  Dims are matched in order, named dims by name. */
static bool unit_axes_reshape(Ctx *c, OGraph *g, ONode *n) {
  if (!og_is(n, ONNX_Reshape) || n->n_inputs != 2 || og_const_data(n->inputs[1])) return false;
  const OValue *x = n->inputs[0], *out = n->outputs[0];
  int r = x->type.rank, R = out->type.rank;
  if (r < 0 || R < 0 || r == R || r > MAX_RANK || R > MAX_RANK) return false;
  const OValue *longer = R > r ? out : x, *shorter = R > r ? x : out;
  int64_t axes[MAX_RANK];
  int n_axes = 0, j = 0;
  for (int i = 0; i < longer->type.rank; i++) {
    ODim d = longer->type.dims[i];
    bool known = d.value >= 0 || d.param;
    if (j < shorter->type.rank && known && og_same_dim(d, shorter->type.dims[j])) j++;
    else if (is_dim_one(d)) axes[n_axes++] = i;
    else return false;
  }
  if (j != shorter->type.rank) return false;
  og_set_kind(n, R > r ? ONNX_Unsqueeze : ONNX_Squeeze);
  og_set_input(n, 1, og_init_i64s(c, g, "axes", n_axes, axes));
  n->n_attrs = 0; /* allowzero is Reshape's */
  return true;
}

/* Slice(x, starts, ends) whose ends are computed at run time (JAX's dynamic
 * slices end at B): with constant starts and unit steps, the output dims
 * give the ends, "to the end" where an axis keeps its size. */
static bool constant_slice_ends(Ctx *c, OGraph *g, ONode *n) {
  if (!og_is(n, ONNX_Slice) || n->n_inputs < 3 || og_const_data(n->inputs[2])) return false;
  const OValue *x = n->inputs[0], *out = n->outputs[0];
  int r = x->type.rank;
  int64_t starts[MAX_RANK], axes[MAX_RANK], steps[MAX_RANK], ends[MAX_RANK];
  int m = og_const_i64s(c, n->inputs[1], starts, MAX_RANK);
  if (m <= 0 || r < 0 || out->type.rank != r) return false;
  if (n->n_inputs > 3 && n->inputs[3]) {
    if (og_const_i64s(c, n->inputs[3], axes, MAX_RANK) != m) return false;
  } else {
    for (int k = 0; k < m; k++) axes[k] = k;
  }
  if (n->n_inputs > 4 && n->inputs[4] && og_const_i64s(c, n->inputs[4], steps, MAX_RANK) != m)
    return false;
  for (int k = 0; k < m; k++) {
    int64_t a = axes[k] < 0 ? axes[k] + r : axes[k];
    if (a < 0 || a >= r || (n->n_inputs > 4 && n->inputs[4] && steps[k] != 1) || starts[k] < 0)
      return false;
    ODim in = x->type.dims[a], o = out->type.dims[a];
    if (starts[k] == 0 && og_same_dim(in, o)) ends[k] = INT64_MAX;
    else if (o.value >= 0 && in.value >= 0 && starts[k] + o.value <= in.value) ends[k] = starts[k] + o.value;
    else return false;
  }
  og_set_input(n, 2, og_init_i64s(c, g, "ends", m, ends));
  return true;
}

/* Reshape(Concat(Unsqueeze(a_1, k), ..., Unsqueeze(a_n, k), axis = k)) that
 * merges the new axis k with the next one is Concat(a_1, ..., a_n, axis = k):
 * jnp.stack then reshape, as rotary embeddings' rotate_half writes it. */
static bool stack_as_concat(Ctx *c, ONode *n) {
  if (!og_is(n, ONNX_Reshape) || n->n_inputs != 2) return false;
  OValue *cat_v = n->inputs[0], *out = n->outputs[0];
  ONode *cat = cat_v->producer;
  if (!og_is(cat, ONNX_Concat) || !og_single_use(cat_v) || cat->n_inputs < 1) return false;
  const OAttr *ax = og_get_attr(cat, "axis");
  int R = cat_v->type.rank;
  if (!ax || R < 2 || out->type.rank != R - 1) return false;
  int64_t k = ax->i < 0 ? ax->i + R : ax->i;
  if (k < 0 || k >= R - 1) return false;
  int64_t merged = 0;
  for (int i = 0; i < cat->n_inputs; i++) {
    OValue *u = cat->inputs[i];
    ONode *un = u ? u->producer : NULL;
    int64_t uax[2];
    if (!og_is(un, ONNX_Unsqueeze) || un->n_inputs != 2 || !og_single_use(u) ||
        og_const_i64s(c, un->inputs[1], uax, 2) != 1 || (uax[0] < 0 ? uax[0] + R : uax[0]) != k)
      return false;
    int64_t d = un->inputs[0]->type.rank == R - 1 ? un->inputs[0]->type.dims[k].value : -1;
    if (d < 0) return false;
    merged += d;
  }
  for (int j = 0; j < R - 1; j++) {
    ODim want = j < k ? cat_v->type.dims[j] : j == k ? (ODim){merged, NULL} : cat_v->type.dims[j + 1];
    if (!og_same_dim(out->type.dims[j], want)) return false;
  }
  OValue **in = arena_alloc(c->arena, sizeof(OValue *) * (size_t)(cat->n_inputs + 1));
  for (int i = 0; i < cat->n_inputs; i++) {
    in[i] = cat->inputs[i]->producer->inputs[0];
    in[i]->n_uses++;
  }
  n->inputs[0]->n_uses--;
  n->inputs[1]->n_uses--;
  og_set_kind(n, ONNX_Concat);
  n->inputs = in;
  n->n_inputs = cat->n_inputs;
  n->n_attrs = 0;
  og_attr_int(c, n, "axis", k);
  return true;
}

static bool identity_perm(const OAttr *perm) {
  for (int i = 0; i < perm->n; i++)
    if (perm->ints[i] != i) return false;
  return true;
}

static bool simplify_node(Ctx *c, OGraph *g, ONode *n) {
  /* Every rewrite runs (no short-circuit), hence |= rather than ||. */
  bool changed = false;
  if (n->n_outputs != 1 || n->n_inputs < 1 || !n->inputs[0]) {
    changed |= drop_expands(n);
    changed |= drop_proven_expands(c, n);
    return changed;
  }
  OValue *x = n->inputs[0], *out = n->outputs[0];
  if (og_is(n, ONNX_Identity)) return bypass(g, n, x);
  if (constant_where(c, g, n) || identity_operand(c, g, n) || constant_shape(c, g, n) ||
      unit_axes_reshape(c, g, n) || constant_slice_ends(c, g, n) || needless_guard(c, g, n) ||
      size_cast_round_trip(c, g, n))
    return true;
  if (og_is(n, ONNX_Cast) && x->type.et != ET_UNDEF && x->type.et == out->type.et)
    return bypass(g, n, x);
  if ((og_is(n, ONNX_Reshape) || og_is(n, ONNX_Expand)) && same_shape(x, out))
    return bypass(g, n, x);
  if (og_is(n, ONNX_Transpose)) {
    const OAttr *perm = og_get_attr(n, "perm");
    if (perm && identity_perm(perm)) return bypass(g, n, x);
    ONode *p = x->producer;
    const OAttr *inner = p && !p->dead && og_is(p, ONNX_Transpose) ? og_get_attr(p, "perm") : NULL;
    if (perm && inner && inner->n == perm->n && perm->n <= MAX_RANK) {
      /* Transpose(Transpose(y, q), r) = Transpose(y, q[r[i]]) */
      int64_t composed[MAX_RANK];
      for (int i = 0; i < perm->n; i++) composed[i] = inner->ints[perm->ints[i]];
      OValue *y = p->inputs[0];
      x->n_uses--;
      n->inputs[0] = y;
      y->n_uses++;
      if (x->n_uses == 0 && !x->is_output) { /* n was its only reader */
        p->dead = true;
        y->n_uses--;
      }
      og_attr_ints(c, n, "perm", composed, perm->n);
      return true;
    }
  }
  if (og_is(n, ONNX_Reshape) && n->n_inputs == 2) {
    ONode *p = x->producer;
    if (p && !p->dead && og_is(p, ONNX_Reshape) && p->n_inputs == 2) {
      /* Reshape(Reshape(y, s1), s2) = Reshape(y, s2) when each 0 of s2
       * copies a symbolic dim y has at the same axis (a 0 copies a dim of
       * the intermediate shape; one with a static dim gets its number) */
      const OAttr *az = og_get_attr(n, "allowzero");
      const Data *s2 = og_const_data(n->inputs[1]);
      const OType *inner = &p->inputs[0]->type;
      bool safe = az && az->i == 1;
      if (!safe && s2) {
        const int64_t *v = (const int64_t *)data_bytes(c, s2);
        safe = n->inputs[1]->type.et == ET_I64;
        for (int i = 0; safe && i < (int)(s2->nbytes / 8); i++)
          safe = v[i] != 0 || (i < inner->rank && i < x->type.rank && x->type.dims[i].value < 0 &&
                               og_same_dim(inner->dims[i], x->type.dims[i]));
      }
      if (safe) {
        OValue *y = p->inputs[0];
        x->n_uses--;
        n->inputs[0] = y;
        y->n_uses++;
        return true;
      }
    }
  }
  changed |= drop_expands(n);
  changed |= drop_proven_expands(c, n);
  changed |= shrink_expand_shape(c, g, n);
  changed |= sink_expand(c, n);
  changed |= stack_as_concat(c, n);
  return changed;
}

/* A few rounds until nothing changes, then each subgraph once: nested loops
 * cost one visit per level, not one per round of every enclosing level. */
static void simplify_graph(Ctx *c, OGraph *g) {
  for (int round = 0; round < 4; round++) {
    bool changed = false;
    for (int i = 0; i < g->nodes.len; i++) {
      ONode *n = g->nodes.items[i];
      if (!n->dead) changed |= simplify_node(c, g, n);
    }
    if (!changed) break;
  }
  for (int i = 0; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH) simplify_graph(c, n->attrs[j].graph);
  }
}

int pass_simplify(Ctx *c, OModel *m) {
  simplify_graph(c, m->graph);
  og_recount_uses(m->graph);
  return 0;
}
