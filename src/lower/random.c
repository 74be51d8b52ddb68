/* random.c - XLA's own random number ops.
 *
 * jax.random with its default implementation (threefry2x32) needs none of
 * them: its bits come from integer adds, shifts and xors on uint32, which
 * the elementwise converters reproduce bit for bit.  The ops here are what
 * the other implementations lower to:
 *
 *   rng_bit_generator  jax.random.key(seed, impl="rbg" / "unsafe_rbg"), and
 *                      lax.rng_bit_generator: XLA's THREE_FRY and PHILOX bit
 *                      generators, rebuilt here from XLA's definition
 *                      (xla/hlo/builder/lib/prng.cc and the expander in
 *                      xla/service/rng_bit_generator_expander.cc): the same
 *                      state layout, counters and output order, so the same
 *                      bits.  DEFAULT is PHILOX, XLA's choice on CPU;
 *                      another backend may choose otherwise.
 *   rng                the legacy lax.rng_uniform/normal: XLA's stateful
 *                      generator, whose numbers depend on the executable's
 *                      hidden state - reported, not converted.
 *
 * Everything is computed on 1-D tensors of the generated length with
 * uint32/uint64 Add, Mul, BitShift and bitwise ops (opset 18), then
 * reshaped to the result's (static) shape.
 */
#include "lower/lower.h"

#include <string.h>

/* ---- small builders: 1-D values of length n, or scalars ----------------- */

typedef struct Gen {
  Lower *L;
  int64_t n; /* the length of the 1-D values being built */
} Gen;

/* A rank-0 constant of unsigned type et, bit-exact. */
static OValue *ku(Gen *g, ElemType et, uint64_t v) {
  size_t size = et_size(et);
  uint8_t *buf = arena_alloc(g->L->c->arena, 8);
  for (size_t i = 0; i < size; i++) buf[i] = (uint8_t)(v >> (8 * i));
  Data d = {DATA_RAW, buf, size};
  return lw_const_data(g->L, et, 0, NULL, d);
}

/* An elementwise node: rank 0 when both inputs are, else [g->n]. */
static OValue *ew(Gen *g, ElemType et, const char *type, OValue *a, OValue *b) {
  OValue *r = lw_op2(g->L, type, a, b);
  bool scalar = a->type.rank == 0 && b->type.rank == 0;
  return lw_typed(g->L, r, et, scalar ? 0 : 1, &g->n);
}

static OValue *cast(Gen *g, OValue *v, ElemType et) {
  OValue *r = lw_cast(g->L, v, et);
  return lw_typed(g->L, r, et, v->type.rank, v->type.rank ? &g->n : NULL);
}

static OValue *shift(Gen *g, ElemType et, OValue *v, int s, const char *dir) {
  OValue *in[2] = {v, ku(g, et, (uint64_t)s)};
  ONode *nd = lw_node(g->L, "BitShift", 2, in, 1);
  og_attr_string(g->L->c, nd, "direction", dir);
  return lw_typed(g->L, nd->outputs[0], et, v->type.rank, v->type.rank ? &g->n : NULL);
}

/* Element i of the 1-D u64 state, as a u64 scalar. */
static OValue *state_at(Gen *g, OValue *state, int64_t i) {
  OValue *in[2] = {state, lw_const_scalar(g->L, ET_I64, (double)i)};
  return lw_typed(g->L, lw_node(g->L, "Gather", 2, in, 1)->outputs[0], ET_U64, 0, NULL);
}

static OValue *low32(Gen *g, OValue *v) { return cast(g, v, ET_U32); } /* Cast wraps */
static OValue *high32(Gen *g, OValue *v) {
  return cast(g, shift(g, ET_U64, v, 32, "RIGHT"), ET_U32);
}
static OValue *join64(Gen *g, OValue *lo, OValue *hi) {
  return ew(g, ET_U64, "BitwiseOr", cast(g, lo, ET_U64),
            shift(g, ET_U64, cast(g, hi, ET_U64), 32, "LEFT"));
}

/* [0, 1, ..., g->n - 1] as u64. */
static OValue *iota_u64(Gen *g) {
  Lower *L = g->L;
  OValue *r = lw_op3(L, "Range", lw_const_scalar(L, ET_I64, 0),
                     lw_const_scalar(L, ET_I64, (double)g->n), lw_const_scalar(L, ET_I64, 1));
  return cast(g, lw_typed(L, r, ET_I64, 1, &g->n), ET_U64);
}

/* ---- the generators --------------------------------------------------------- */

/* Threefry-2x32 with 20 rounds (Salmon et al., SC 2011), as XLA writes it:
 * the key schedule k0, k1, k0 ^ k1 ^ 0x1BD11BDA injected every 4 rounds
 * with the injection count added to the second word. */
static void threefry2x32(Gen *g, OValue **x, OValue *k0, OValue *k1) {
  static const int rot[8] = {13, 15, 26, 6, 17, 29, 16, 24};
  OValue *ks[3] = {
      k0, k1,
      ew(g, ET_U32, "BitwiseXor", ew(g, ET_U32, "BitwiseXor", k0, k1), ku(g, ET_U32, 0x1BD11BDA))};
  x[0] = ew(g, ET_U32, "Add", x[0], ks[0]);
  x[1] = ew(g, ET_U32, "Add", x[1], ks[1]);
  for (int block = 0; block < 5; block++) {
    for (int r = 0; r < 4; r++) {
      int s = rot[(block % 2) * 4 + r];
      x[0] = ew(g, ET_U32, "Add", x[0], x[1]);
      OValue *rotl = ew(g, ET_U32, "BitwiseOr", shift(g, ET_U32, x[1], s, "LEFT"),
                        shift(g, ET_U32, x[1], 32 - s, "RIGHT"));
      x[1] = ew(g, ET_U32, "BitwiseXor", x[0], rotl);
    }
    x[0] = ew(g, ET_U32, "Add", x[0], ks[(block + 1) % 3]);
    x[1] = ew(g, ET_U32, "Add", x[1],
              ew(g, ET_U32, "Add", ks[(block + 2) % 3], ku(g, ET_U32, (uint64_t)block + 1)));
  }
}

/* Philox-4x32 with 10 rounds, the key raised by the Weyl constants after
 * each; the 32x32 -> 64-bit products are u64 Muls. */
static void philox4x32(Gen *g, OValue **x, OValue *k0, OValue *k1) {
  for (int round = 0; round < 10; round++) {
    OValue *p0 = ew(g, ET_U64, "Mul", cast(g, x[0], ET_U64), ku(g, ET_U64, 0xD2511F53));
    OValue *p1 = ew(g, ET_U64, "Mul", cast(g, x[2], ET_U64), ku(g, ET_U64, 0xCD9E8D57));
    OValue *y[4] = {
        ew(g, ET_U32, "BitwiseXor", ew(g, ET_U32, "BitwiseXor", high32(g, p1), x[1]), k0),
        low32(g, p1),
        ew(g, ET_U32, "BitwiseXor", ew(g, ET_U32, "BitwiseXor", high32(g, p0), x[3]), k1),
        low32(g, p0)};
    for (int i = 0; i < 4; i++) x[i] = y[i];
    k0 = ew(g, ET_U32, "Add", k0, ku(g, ET_U32, 0x9E3779B9));
    k1 = ew(g, ET_U32, "Add", k1, ku(g, ET_U32, 0xBB67AE85));
  }
}

/* The 1-D values parts[0..k) of length n interleaved into one of length
 * k * n (element k*j + i is parts[i][j]), cut to `keep`. */
static OValue *interleave(Gen *g, ElemType et, OValue *const *parts, int k, int64_t keep) {
  Lower *L = g->L;
  OValue *cols[4];
  int64_t col_dims[2] = {g->n, 1}, all_dims[2] = {g->n, k}, total = g->n * k;
  for (int i = 0; i < k; i++) {
    int64_t one = 1;
    cols[i] = lw_typed(L, lw_unsqueeze(L, parts[i], &one, 1), et, 2, col_dims);
  }
  OValue *r = parts[0];
  if (k > 1) {
    ONode *cat = lw_node(L, "Concat", k, cols, 1);
    og_attr_int(L->c, cat, "axis", 1);
    r = lw_typed(L, cat->outputs[0], et, 2, all_dims);
    r = lw_typed(L, lw_op2(L, "Reshape", r, lw_const_i64s(L, 1, &total)), et, 1, &total);
  }
  if (keep != total) {
    int64_t zero = 0;
    OValue *in[3] = {r, lw_const_i64s(L, 1, &zero), lw_const_i64s(L, 1, &keep)};
    r = lw_typed(L, lw_node(L, "Slice", 3, in, 1)->outputs[0], et, 1, &keep);
  }
  return r;
}

/* THREE_FRY: state [key, counter].  64-bit outputs: element i from the
 * counter + i, its two words joined.  32-bit (and narrower) outputs: the
 * shape is halved along its first even dimension (else its largest), each
 * counter of the half shape giving the pair of elements 2j, 2j+1 along
 * it.  The counter advances by the number of counters used. */
static OValue *three_fry(Gen *g, OValue *state, const Type *t, int bits, OValue **new_state) {
  Lower *L = g->L;
  int64_t numel = type_numel(t);
  OValue *key = state_at(g, state, 0), *counter = state_at(g, state, 1);
  OValue *k0 = low32(g, key), *k1 = high32(g, key);
  if (bits == 64) {
    g->n = numel;
    OValue *c = ew(g, ET_U64, "Add", counter, iota_u64(g));
    OValue *x[2] = {low32(g, c), high32(g, c)};
    threefry2x32(g, x, k0, k1);
    *new_state = ew(g, ET_U64, "Add", counter, ku(g, ET_U64, (uint64_t)numel));
    return join64(g, x[0], x[1]);
  }
  int split = -1;
  for (int i = 0; i < t->rank && split < 0; i++)
    if (t->dims[i] % 2 == 0) split = i;
  if (split < 0) /* no even dimension: the (first) largest */
    for (int i = 0; i < t->rank; i++)
      if (split < 0 || t->dims[i] > t->dims[split]) split = i;
  int64_t outer = 1, inner = 1, d = t->rank ? t->dims[split] : 1, half = (d + 1) / 2;
  for (int i = 0; i < t->rank; i++) {
    if (i < split) outer *= t->dims[i];
    if (i > split) inner *= t->dims[i];
  }
  g->n = outer * half * inner;
  OValue *c = ew(g, ET_U64, "Add", counter, iota_u64(g));
  OValue *x[2] = {low32(g, c), high32(g, c)};
  threefry2x32(g, x, k0, k1);
  *new_state = ew(g, ET_U64, "Add", counter, ku(g, ET_U64, (uint64_t)g->n));
  if (t->rank == 0) return x[0];
  /* [outer, half, 1, inner] twice -> [outer, half, 2, inner] -> [outer, 2*half, inner] */
  int64_t part_dims[4] = {outer, half, 1, inner}, both[4] = {outer, half, 2, inner};
  int64_t pairs[3] = {outer, 2 * half, inner};
  OValue *p[2];
  for (int i = 0; i < 2; i++)
    p[i] = lw_typed(L, lw_op2(L, "Reshape", x[i], lw_const_i64s(L, 4, part_dims)), ET_U32, 4,
                    part_dims);
  ONode *cat = lw_node(L, "Concat", 2, p, 1);
  og_attr_int(L->c, cat, "axis", 2);
  OValue *r = lw_typed(L, cat->outputs[0], ET_U32, 4, both);
  r = lw_typed(L, lw_op2(L, "Reshape", r, lw_const_i64s(L, 3, pairs)), ET_U32, 3, pairs);
  if (2 * half != d) {
    int64_t zero = 0, one = 1, out3[3] = {outer, d, inner};
    OValue *in[4] = {r, lw_const_i64s(L, 1, &zero), lw_const_i64s(L, 1, &d),
                     lw_const_i64s(L, 1, &one)};
    r = lw_typed(L, lw_node(L, "Slice", 4, in, 1)->outputs[0], ET_U32, 3, out3);
  }
  return lw_typed(L, lw_op2(L, "Reshape", r, lw_const_i64s(L, 1, &numel)), ET_U32, 1, &numel);
}

/* PHILOX: state [key, counter_lo, counter_hi], or [key, counter_lo] with
 * the key doubling as the counter's high word (XLA reverses a 2-element
 * state).  Each 128-bit counter gives four 32-bit words, used in order
 * (two 64-bit values per counter for 64-bit outputs). */
static OValue *philox(Gen *g, OValue *state, int64_t state_len, const Type *t, int bits,
                      OValue **new_state) {
  int64_t numel = type_numel(t);
  OValue *key = state_at(g, state, 0);
  OValue *lo = state_at(g, state, 1), *hi = state_len >= 3 ? state_at(g, state, 2) : key;
  int64_t words = bits == 64 ? 2 * numel : numel;
  g->n = (words + 3) / 4;
  OValue *c_lo = ew(g, ET_U64, "Add", lo, iota_u64(g));
  OValue *carry = cast(g, ew(g, ET_BOOL, "Less", c_lo, lo), ET_U64);
  OValue *c_hi = ew(g, ET_U64, "Add", hi, carry);
  OValue *x[4] = {low32(g, c_lo), high32(g, c_lo), low32(g, c_hi), high32(g, c_hi)};
  philox4x32(g, x, low32(g, key), high32(g, key));
  OValue *n_lo = ew(g, ET_U64, "Add", lo, ku(g, ET_U64, (uint64_t)g->n));
  new_state[0] = n_lo; /* a 2-element state keeps only the low word */
  new_state[1] = NULL;
  if (state_len >= 3) {
    OValue *n_carry = cast(g, ew(g, ET_BOOL, "Less", n_lo, lo), ET_U64);
    new_state[1] = ew(g, ET_U64, "Add", hi, n_carry);
  }
  if (bits == 64) {
    OValue *w[2] = {join64(g, x[0], x[1]), join64(g, x[2], x[3])};
    return interleave(g, ET_U64, w, 2, numel);
  }
  return interleave(g, ET_U32, x, 4, numel);
}

/* The 1-D u64 state [key, rest...] as a tensor. */
static OValue *concat_state(Lower *L, OValue *key, OValue *const *rest, int n_rest) {
  OValue *parts[3];
  int64_t one = 1, n = 1 + n_rest, zero = 0;
  parts[0] = lw_typed(L, lw_unsqueeze(L, key, &zero, 1), ET_U64, 1, &one);
  for (int i = 0; i < n_rest; i++)
    parts[1 + i] = lw_typed(L, lw_unsqueeze(L, rest[i], &zero, 1), ET_U64, 1, &one);
  ONode *cat = lw_node(L, "Concat", (int)n, parts, 1);
  og_attr_int(L->c, cat, "axis", 0);
  return lw_typed(L, cat->outputs[0], ET_U64, 1, &n);
}

int lower_rng_bit_generator(Lower *L, const Op *op) {
  const Attr *a = ir_op_attr(op, "rng_algorithm");
  const char *alg = a && a->s ? a->s : "DEFAULT";
  if (op->n_operands != 1 || op->n_results != 2)
    return lw_bad_input(L, "rng_bit_generator takes 1 operand and has 2 results");
  const Type *st = &op->operands[0]->type, *t = &op->results[1]->type;
  bool three_fry_alg = !strcmp(alg, "THREE_FRY");
  if (!three_fry_alg && strcmp(alg, "PHILOX") && strcmp(alg, "DEFAULT"))
    return lw_unsupported(L, "the %s bit generator is not XLA's THREE_FRY or PHILOX", alg);
  if (st->kind != TK_TENSOR || st->rank != 1 || st->et != ET_U64 || st->dims[0] == DIM_DYN ||
      st->dims[0] < 2 || (three_fry_alg && st->dims[0] != 2) || st->dims[0] > 3)
    return lw_unsupported(L,
                          "the state is not the ui64 vector of 2 (THREE_FRY) or 2-3 (PHILOX) "
                          "elements XLA's generators read");
  if (t->kind != TK_TENSOR || !et_is_int(t->et) || et_size(t->et) == 0)
    return lw_unsupported(L, "%s results: only integer bits are generated", et_mlir_name(t->et));
  if (!type_is_static(t) || type_numel(t) <= 0)
    return lw_unsupported(L, "the result's shape is not static (or is empty)");
  if (L->opset < 18)
    return lw_unsupported(L, "needs ONNX BitwiseXor (opset 18), but the target opset is %d",
                          L->opset);
  int bits = (int)et_size(t->et) * 8;
  Gen g = {L, 1};
  OValue *state = lw_get(L, op->operands[0]);
  OValue *key = state_at(&g, state, 0);
  OValue *value, *rest[2];
  int n_rest = 1;
  if (three_fry_alg) {
    value = three_fry(&g, state, t, bits, &rest[0]);
  } else {
    value = philox(&g, state, st->dims[0], t, bits, rest);
    n_rest = st->dims[0] >= 3 ? 2 : 1;
  }
  ElemType ut = bits == 64 ? ET_U64 : bits == 32 ? ET_U32 : bits == 16 ? ET_U16 : ET_U8;
  int64_t numel = type_numel(t);
  value = lw_typed(L, lw_cast(L, value, ut), ut, 1, &numel); /* narrower: the low bits */
  if (t->rank != 1) {
    value = lw_op2(L, "Reshape", value, lw_const_i64s(L, t->rank, t->dims));
    og_type_from_hlo(L->c, value, t);
    value->type.et = ut;
  }
  lw_bind(L, op->results[0], concat_state(L, key, rest, n_rest));
  lw_bind(L, op->results[1], lw_cast(L, value, t->et));
  return 0;
}

int lower_unsupported_rng(Lower *L, const Op *op) {
  const Attr *a = ir_op_attr(op, "rng_distribution");
  return lw_unsupported(L,
                        "XLA's stateful %s random numbers (lax.rng_uniform) depend on the "
                        "compiled program's hidden generator state, which ONNX cannot "
                        "reproduce; use jax.random with an explicit key",
                        a && a->s ? a->s : "UNIFORM");
}
