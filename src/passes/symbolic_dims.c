/* symbolic_dims.c - names the dynamic dims of intermediate values.
 *
 * A model exported with a symbolic batch "B" has types like tensor<?x50x32>
 * in StableHLO: the '?' says nothing of what it is.  The graph inputs carry
 * the names ("B"); this pass follows them through the graph, node by node,
 * so that value_info and outputs say "B", or "50*B" where a Reshape merged
 * the batch with the 50 tokens, instead of leaving the dim unnamed.
 *
 * It only fills dims that are unknown, and only where a rule below proves
 * the size: a dim it cannot prove stays unnamed (ONNX's "unknown"), never a
 * wrong name.  A symbolic size is k * base, with `base` a name as the user
 * wrote it ("B", or "T+1" which is kept whole) and k a positive integer; it
 * is written as JAX prints such sizes: "B", "50*B", "2*(T+1)".  A dim a
 * rule proves static (the -1 of [B, 1, 32, 32, 32] -> [0, -1, 32, 32])
 * gets its number.
 *
 * The pipeline runs it twice: first (name_dims), so that simplify can tell
 * an Expand or Reshape that keeps a symbolic shape, and last, for the
 * value_info of what the passes created.  pass_fold_shapes, at the end of
 * this file, uses the same evaluation of shape vectors to turn those whose
 * every element is a static size into constants.
 */
#include "passes/passes.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* A dim as this pass sees it: static (value >= 0), k * base, or unknown. */
typedef struct Sym {
  int64_t value;    /* >= 0: static */
  const char *base; /* symbolic when value < 0 and base != NULL */
  size_t base_len;
  int64_t k;
} Sym;

static const Sym UNKNOWN = {-1, NULL, 0, 0};

static bool is_static(Sym s) { return s.value >= 0; }
static bool is_symbolic(Sym s) { return s.value < 0 && s.base; }

static bool same_sym(Sym a, Sym b) {
  if (is_static(a) || is_static(b)) return a.value == b.value;
  return is_symbolic(a) && is_symbolic(b) && a.k == b.k && a.base_len == b.base_len &&
         memcmp(a.base, b.base, a.base_len) == 0;
}

/* A name with no operator in it: printed without parentheses. */
static bool simple_name(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (strchr("+-*/%() ", s[i])) return false;
  return n > 0;
}

/* Whether s[0..n) is "(...)" with the first '(' closed by the last ')':
 * not "(A) + (B)". */
static bool enclosed(const char *s, size_t n) {
  if (n < 2 || s[0] != '(' || s[n - 1] != ')') return false;
  int depth = 0;
  for (size_t i = 0; i < n; i++) {
    depth += s[i] == '(' ? 1 : s[i] == ')' ? -1 : 0;
    if (depth == 0 && i < n - 1) return false;
  }
  return depth == 0;
}

/* "B" -> 1 * B; "50*B" -> 50 * B; "2*(T+1)" -> 2 * T+1; anything else whole. */
static Sym parse_param(const char *p) {
  Sym s = {-1, p, strlen(p), 1};
  size_t digits = 0;
  while (p[digits] >= '0' && p[digits] <= '9') digits++;
  if (digits == 0 || digits > 15 || p[digits] != '*') return s;
  const char *rest = p + digits + 1;
  size_t n = strlen(rest);
  if (enclosed(rest, n)) {
    rest++;
    n -= 2;
  } else if (!simple_name(rest, n)) {
    return s;
  }
  if (n == 0) return s;
  s.k = strtoll(p, NULL, 10);
  if (s.k <= 0) return (Sym){-1, p, strlen(p), 1};
  s.base = rest;
  s.base_len = n;
  return s;
}

static Sym dim_of(const OValue *v, int i) {
  if (!v || v->type.rank <= i || i < 0) return UNKNOWN;
  const ODim *d = &v->type.dims[i];
  if (d->value >= 0) return (Sym){d->value, NULL, 0, 0};
  return d->param && d->param[0] ? parse_param(d->param) : UNKNOWN;
}

/* s * factor, for a symbolic s and factor > 0; unknown on overflow. */
static Sym scaled(Sym s, int64_t factor) {
  if (!is_symbolic(s) || factor <= 0 || s.k > INT64_MAX / factor) return UNKNOWN;
  s.k *= factor;
  return s;
}

/* Names dim i of v when it is unknown and s is symbolic; whether it did. */
static bool name_dim(Ctx *c, OValue *v, int i, Sym s) {
  if ((!is_symbolic(s) && !is_static(s)) || i >= v->type.rank) return false;
  ODim *d = &v->type.dims[i];
  if (d->value >= 0 || d->param) return false;
  if (is_static(s)) { /* a size the rules proved static (a Reshape's -1) */
    d->value = s.value;
    return true;
  }
  int n = (int)s.base_len;
  if (s.k == 1) d->param = arena_printf(c->arena, "%.*s", n, s.base);
  else if (simple_name(s.base, s.base_len))
    d->param = arena_printf(c->arena, "%lld*%.*s", (long long)s.k, n, s.base);
  else d->param = arena_printf(c->arena, "%lld*(%.*s)", (long long)s.k, n, s.base);
  return true;
}

/* The product of dims [from, to) of v when exactly one of them is symbolic
 * and the others static and not 0; unknown otherwise. */
static Sym product(const OValue *v, int from, int to) {
  Sym sym = UNKNOWN;
  int64_t factor = 1;
  for (int i = from; i < to; i++) {
    Sym d = dim_of(v, i);
    if (is_static(d) && d.value > 0 && factor <= INT64_MAX / d.value) factor *= d.value;
    else if (is_symbolic(d) && !is_symbolic(sym)) sym = d;
    else return UNKNOWN;
  }
  return is_symbolic(sym) ? scaled(sym, factor) : UNKNOWN; /* a static one is known anyway */
}

/* The int64 values of a constant input, or -1. */
static int const_ints(Ctx *c, const OValue *v, const int64_t **out) {
  const Data *d = v ? og_const_data(v) : NULL;
  if (!d || v->type.et != ET_I64) return -1;
  *out = (const int64_t *)data_bytes(c, d);
  return (int)(d->nbytes / 8);
}

static int64_t int_attr(const ONode *n, const char *name, int64_t dflt) {
  const OAttr *a = og_get_attr(n, name);
  return a && a->kind == OA_INT ? a->i : dflt;
}

/* ---- the rules: each fills out[0..rank) of the node's first output ------- */

/* numpy broadcasting of axis i of a rank-`rank` result over vals[0..n): a
 * symbolic dim is the result's when every value has it there, or 1, or no
 * such axis (ranks align at the right). */
static Sym broadcast_axis(const OValue *const *vals, int n, int i, int rank) {
  Sym s = UNKNOWN;
  for (int j = 0; j < n; j++) {
    const OValue *x = vals[j];
    if (!x || x->type.rank < 0) return UNKNOWN;
    int a = i - (rank - x->type.rank);
    if (a < 0) continue;
    Sym d = dim_of(x, a);
    if (is_static(d) && d.value == 1) continue;
    if (!is_symbolic(d) || (is_symbolic(s) && !same_sym(s, d))) return UNKNOWN;
    s = d;
  }
  return s;
}

static bool broadcast(const ONode *n, Sym *out, int rank) {
  for (int i = 0; i < rank; i++)
    out[i] = broadcast_axis((const OValue *const *)n->inputs, n->n_inputs, i, rank);
  return true;
}

static bool copy_input(const ONode *n, Sym *out, int rank) {
  if (n->n_inputs < 1 || !n->inputs[0] || n->inputs[0]->type.rank != rank) return false;
  for (int i = 0; i < rank; i++) out[i] = dim_of(n->inputs[0], i);
  return true;
}

static bool transpose(const ONode *n, Sym *out, int rank) {
  const OAttr *perm = og_get_attr(n, "perm");
  const OValue *x = n->inputs[0];
  if (!x || x->type.rank != rank) return false;
  for (int i = 0; i < rank; i++) {
    int64_t p = perm ? (i < perm->n ? perm->ints[i] : -1) : rank - 1 - i;
    out[i] = p >= 0 && p < rank ? dim_of(x, (int)p) : UNKNOWN;
  }
  return true;
}

/* Reshape to a constant shape: 0 copies the input's dim (unless allowzero),
 * and the -1 is what is left of the input's size once the other target dims
 * are taken out, exactly divisible. */
static int shape_elements(Ctx *c, const OValue *v, Sym *out, int max, int depth);

static bool reshape(Ctx *c, const ONode *n, Sym *out, int rank) {
  const int64_t *shape;
  const OValue *x = n->inputs[0];
  bool allowzero = int_attr(n, "allowzero", 0) == 1;
  if (n->n_inputs >= 2 && allowzero && !og_const_data(n->inputs[1])) {
    /* a shape computed at run time (dynamic_reshape): with allowzero its
     * elements are the dims, a 0 included (a -1 stays unknown) */
    return shape_elements(c, n->inputs[1], out, rank, 0) == rank;
  }
  if (n->n_inputs < 2 || const_ints(c, n->inputs[1], &shape) != rank || !x ||
      x->type.rank < 0)
    return false;
  bool copied[MAX_RANK] = {false};
  int infer = -1;
  int64_t rest = 1; /* product of the static target dims */
  for (int i = 0; i < rank; i++) {
    out[i] = UNKNOWN;
    if (shape[i] == 0 && !allowzero) {
      if (i >= x->type.rank) return false;
      out[i] = dim_of(x, i);
      copied[i] = true;
    } else if (shape[i] == -1) {
      infer = i;
    } else if (shape[i] > 0 && rest <= INT64_MAX / shape[i]) {
      out[i] = (Sym){shape[i], NULL, 0, 0};
      rest *= shape[i];
    } else {
      return false;
    }
  }
  if (infer < 0) return true;
  /* the input's size without the dims copied in place: factor * sym */
  Sym sym = UNKNOWN;
  int64_t factor = 1;
  for (int i = 0; i < x->type.rank; i++) {
    if (i < MAX_RANK && copied[i]) continue;
    Sym d = dim_of(x, i);
    if (is_static(d) && d.value > 0 && factor <= INT64_MAX / d.value) factor *= d.value;
    else if (is_symbolic(d) && !is_symbolic(sym)) sym = d;
    else return true; /* unknown, a second symbol, an empty tensor or overflow */
  }
  if (!is_symbolic(sym)) {
    /* the symbolic dims were all copied: the rest is static ([B, 1, 32, 32, 32]
     * to [0, -1, 32, 32] infers 32) */
    if (rest > 0 && factor % rest == 0) out[infer] = (Sym){factor / rest, NULL, 0, 0};
    return true;
  }
  sym = scaled(sym, factor);
  if (is_symbolic(sym) && rest > 0 && sym.k % rest == 0) {
    sym.k /= rest;
    out[infer] = sym;
  }
  return true;
}

static bool flatten(const ONode *n, Sym *out, int rank) {
  const OValue *x = n->inputs[0];
  if (rank != 2 || !x || x->type.rank < 0) return false;
  int64_t axis = int_attr(n, "axis", 1);
  if (axis < 0) axis += x->type.rank;
  if (axis < 0 || axis > x->type.rank) return false;
  out[0] = product(x, 0, (int)axis);
  out[1] = product(x, (int)axis, x->type.rank);
  return true;
}

/* Marks the axes listed by a constant input or attribute (negative ones
 * counted from `rank`); returns how many, or -1 if they are not known. */
static int listed_axes(Ctx *c, const ONode *n, int input, int rank, bool *axis) {
  const int64_t *v = NULL;
  int count = -1;
  if (n->n_inputs > input && n->inputs[input]) {
    count = const_ints(c, n->inputs[input], &v);
  } else {
    const OAttr *a = og_get_attr(n, "axes");
    if (a && a->kind == OA_INTS) v = a->ints, count = a->n;
    else if (!a) count = 0; /* none given */
  }
  if (count < 0) return -1;
  memset(axis, 0, sizeof(bool) * (size_t)rank);
  for (int i = 0; i < count; i++) {
    int64_t ax = v[i] < 0 ? v[i] + rank : v[i];
    if (ax < 0 || ax >= rank) return -1;
    axis[ax] = true;
  }
  return count;
}

static bool squeeze(Ctx *c, const ONode *n, Sym *out, int rank) {
  const OValue *x = n->inputs[0];
  bool axis[MAX_RANK];
  /* no axes: every axis of size 1, which an unknown dim may be */
  if (!x || x->type.rank < 0 || x->type.rank > MAX_RANK ||
      listed_axes(c, n, 1, x->type.rank, axis) <= 0)
    return false;
  int k = 0;
  for (int i = 0; i < x->type.rank; i++)
    if (!axis[i]) {
      if (k == rank) return false;
      out[k++] = dim_of(x, i);
    }
  return k == rank;
}

static bool unsqueeze(Ctx *c, const ONode *n, Sym *out, int rank) {
  const OValue *x = n->inputs[0];
  bool axis[MAX_RANK];
  if (!x || x->type.rank < 0 || listed_axes(c, n, 1, rank, axis) <= 0) return false;
  int k = 0;
  for (int i = 0; i < rank; i++) {
    if (axis[i]) out[i] = (Sym){1, NULL, 0, 0};
    else out[i] = dim_of(x, k++);
  }
  return k == x->type.rank;
}

static bool reduce(Ctx *c, const ONode *n, Sym *out, int rank) {
  const OValue *x = n->inputs[0];
  bool axis[MAX_RANK];
  if (!x || x->type.rank < 0 || x->type.rank > MAX_RANK) return false;
  int count = listed_axes(c, n, 1, x->type.rank, axis);
  if (count < 0) return false;
  if (count == 0) { /* no axes: all of them, or none with noop_with_empty_axes */
    if (int_attr(n, "noop_with_empty_axes", 0)) return copy_input(n, out, rank);
    for (int i = 0; i < x->type.rank; i++) axis[i] = true;
  }
  bool keep = int_attr(n, "keepdims", 1) != 0;
  int k = 0;
  for (int i = 0; i < x->type.rank; i++) {
    if (axis[i] && !keep) continue;
    if (k == rank) return false;
    out[k++] = axis[i] ? (Sym){1, NULL, 0, 0} : dim_of(x, i);
  }
  return k == rank;
}

static bool arg_reduce(const ONode *n, Sym *out, int rank) {
  const OValue *x = n->inputs[0];
  if (!x || x->type.rank < 0) return false;
  int64_t ax = int_attr(n, "axis", 0);
  if (ax < 0) ax += x->type.rank;
  if (ax < 0 || ax >= x->type.rank) return false;
  bool keep = int_attr(n, "keepdims", 1) != 0;
  int k = 0;
  for (int i = 0; i < x->type.rank; i++) {
    if (i == ax && !keep) continue;
    if (k == rank) return false;
    out[k++] = i == ax ? (Sym){1, NULL, 0, 0} : dim_of(x, i);
  }
  return k == rank;
}

static bool matmul(const ONode *n, Sym *out, int rank) {
  const OValue *a = n->inputs[0], *b = n->n_inputs > 1 ? n->inputs[1] : NULL;
  if (!a || !b || a->type.rank < 2 || b->type.rank < 2) return false;
  int ra = a->type.rank, rb = b->type.rank;
  if (rank != (ra > rb ? ra : rb)) return false;
  /* the batch axes broadcast (both end in their two matrix axes) */
  const OValue *both[2] = {a, b};
  for (int i = 0; i < rank - 2; i++) out[i] = broadcast_axis(both, 2, i, rank);
  out[rank - 2] = dim_of(a, ra - 2);
  out[rank - 1] = dim_of(b, rb - 1);
  return true;
}

static bool gemm(const ONode *n, Sym *out, int rank) {
  if (rank != 2 || n->n_inputs < 2) return false;
  out[0] = dim_of(n->inputs[0], int_attr(n, "transA", 0) ? 1 : 0);
  out[1] = dim_of(n->inputs[1], int_attr(n, "transB", 0) ? 0 : 1);
  return true;
}

/* Conv and the pools: the batch axis is the input's. */
static bool batch_only(const ONode *n, Sym *out, int rank) {
  for (int i = 0; i < rank; i++) out[i] = UNKNOWN;
  if (rank > 0) out[0] = dim_of(n->inputs[0], 0);
  /* pooling keeps the channels too (a convolution makes its weight's) */
  bool pools = og_is(n, ONNX_MaxPool) || og_is(n, ONNX_AveragePool) || og_is(n, ONNX_LpPool) ||
               og_is(n, ONNX_GlobalAveragePool) || og_is(n, ONNX_GlobalMaxPool);
  if (rank > 1 && pools) out[1] = dim_of(n->inputs[0], 1);
  return true;
}

/* Concat: every input has the output's dims off the axis. */
static bool concat(const ONode *n, Sym *out, int rank) {
  int64_t ax = int_attr(n, "axis", 0);
  if (ax < 0) ax += rank;
  for (int i = 0; i < rank; i++) {
    out[i] = UNKNOWN;
    for (int j = 0; j < n->n_inputs && i != ax; j++)
      if (n->inputs[j] && n->inputs[j]->type.rank == rank &&
          is_symbolic(dim_of(n->inputs[j], i)))
        out[i] = dim_of(n->inputs[j], i);
  }
  return true;
}

static bool gather(const ONode *n, Sym *out, int rank) {
  const OValue *x = n->inputs[0], *idx = n->n_inputs > 1 ? n->inputs[1] : NULL;
  if (!x || !idx || x->type.rank < 1 || idx->type.rank < 0) return false;
  int64_t ax = int_attr(n, "axis", 0);
  if (ax < 0) ax += x->type.rank;
  if (ax < 0 || ax >= x->type.rank || rank != x->type.rank - 1 + idx->type.rank) return false;
  int k = 0;
  for (int i = 0; i < ax; i++) out[k++] = dim_of(x, i);
  for (int i = 0; i < idx->type.rank; i++) out[k++] = dim_of(idx, i);
  for (int i = (int)ax + 1; i < x->type.rank; i++) out[k++] = dim_of(x, i);
  return true;
}

/* Slice: the axes it does not slice keep their dims. */
static bool slice(Ctx *c, const ONode *n, Sym *out, int rank) {
  const OValue *x = n->inputs[0];
  bool axis[MAX_RANK];
  if (!x || x->type.rank != rank) return false;
  if (n->n_inputs > 3 && n->inputs[3]) {
    if (listed_axes(c, n, 3, rank, axis) < 0) return false;
  } else {
    for (int i = 0; i < rank; i++) axis[i] = true;
  }
  for (int i = 0; i < rank; i++) out[i] = axis[i] ? UNKNOWN : dim_of(x, i);
  /* A sliced axis keeps its size when the slice runs over all of it: start
   * 0, step 1, end its size or past it (JAX's dynamic slices of a symbolic
   * batch end at B, computed from Shape). */
  Sym starts[MAX_RANK], ends[MAX_RANK];
  const int64_t *axes = NULL, *steps = NULL;
  int m = n->n_inputs > 2 ? shape_elements(c, n->inputs[1], starts, MAX_RANK, 0) : -1;
  if (m < 0 || shape_elements(c, n->inputs[2], ends, MAX_RANK, 0) != m) return true;
  if (n->n_inputs > 3 && n->inputs[3] && const_ints(c, n->inputs[3], &axes) != m) return true;
  if (n->n_inputs > 4 && n->inputs[4] && const_ints(c, n->inputs[4], &steps) != m) return true;
  for (int k = 0; k < m; k++) {
    int64_t i = axes ? (axes[k] < 0 ? axes[k] + rank : axes[k]) : k;
    if (i < 0 || i >= rank || (steps && steps[k] != 1)) continue;
    Sym d = dim_of(x, (int)i);
    bool to_end = same_sym(ends[k], d) || (is_static(ends[k]) && ends[k].value >= ((int64_t)1 << 62));
    if (is_static(starts[k]) && starts[k].value == 0 && to_end) out[i] = d;
  }
  return true;
}

/* The elements of a small 1-D int tensor computed from shapes, as JAX's
 * dynamic_broadcast_in_dim gets them: constants, Shape(x) slices, and Concat,
 * Cast, Gather (constant indices) and Reshape/Squeeze/Unsqueeze of those.
 * Returns the count, or -1. */
static int shape_elements(Ctx *c, const OValue *v, Sym *out, int max, int depth) {
  if (!v || depth > 16 || v->type.rank > 1) return -1;
  const Data *d = og_const_data(v);
  if (d) {
    bool wide = v->type.et == ET_I64;
    if (!wide && v->type.et != ET_I32) return -1;
    int n = (int)(d->nbytes / (wide ? 8 : 4));
    if (n > max) return -1;
    const uint8_t *bytes = data_bytes(c, d);
    for (int i = 0; i < n; i++) {
      int64_t x;
      int32_t x32;
      if (wide) memcpy(&x, bytes + 8 * i, 8);
      else memcpy(&x32, bytes + 4 * i, 4), x = x32;
      out[i] = x >= 0 ? (Sym){x, NULL, 0, 0} : UNKNOWN;
    }
    return n;
  }
  const ONode *n = v->producer;
  if (!n || n->dead || n->n_inputs < 1 || !n->inputs[0]) return -1;
  const OValue *x = n->inputs[0];
  if (og_is(n, ONNX_Shape)) {
    int r = x->type.rank;
    if (r < 0) return -1;
    int64_t start = int_attr(n, "start", 0), end = int_attr(n, "end", r);
    if (start < 0) start += r;
    if (end < 0) end += r;
    start = start < 0 ? 0 : start > r ? r : start;
    end = end < start ? start : end > r ? r : end;
    if (end - start > max) return -1;
    for (int64_t i = start; i < end; i++) out[i - start] = dim_of(x, (int)i);
    return (int)(end - start);
  }
  if (og_is(n, ONNX_Concat)) {
    int k = 0;
    for (int j = 0; j < n->n_inputs; j++) {
      int m = shape_elements(c, n->inputs[j], out + k, max - k, depth + 1);
      if (m < 0) return -1;
      k += m;
    }
    return k;
  }
  if (og_is(n, ONNX_Cast) || onnx_op_has(n->kind, ONNX_RESHAPES)) {
    if (og_is(n, ONNX_Cast) && v->type.et != ET_I64 && v->type.et != ET_I32) return -1;
    return shape_elements(c, x, out, max, depth + 1); /* the same elements */
  }
  if (og_is(n, ONNX_Slice) && n->n_inputs >= 3 && v->type.rank <= 1) {
    /* a constant range of a shape vector: Shape(x)[2:3] */
    Sym all[MAX_RANK];
    const int64_t *st, *en, *ax = NULL, *stp = NULL;
    int m = shape_elements(c, x, all, MAX_RANK, depth + 1);
    if (m < 0 || const_ints(c, n->inputs[1], &st) != 1 || const_ints(c, n->inputs[2], &en) != 1 ||
        (n->n_inputs > 3 && n->inputs[3] && (const_ints(c, n->inputs[3], &ax) != 1 || ax[0] != 0)) ||
        (n->n_inputs > 4 && n->inputs[4] && (const_ints(c, n->inputs[4], &stp) != 1 || stp[0] != 1)))
      return -1;
    int64_t a = st[0] < 0 ? st[0] + m : st[0], b = en[0] < 0 ? en[0] + m : en[0];
    a = a < 0 ? 0 : a > m ? m : a;
    b = b < a ? a : b > m ? m : b;
    if (b - a > max) return -1;
    for (int64_t i = a; i < b; i++) out[i - a] = all[i];
    return (int)(b - a);
  }
  if (og_is(n, ONNX_Max) && n->n_inputs == 2 && v->type.rank <= 1) {
    /* max(min(a, y), b) with constants a <= b is b, whatever y: the clamp
     * of a dynamic slice's constant start, 0, into [0, size - T] */
    for (int side = 0; side < 2; side++) {
      const OValue *lo = n->inputs[side], *hi = n->inputs[1 - side];
      const ONode *mn = lo ? lo->producer : NULL;
      Sym b[MAX_RANK], a[MAX_RANK];
      if (!og_is(mn, ONNX_Min) || mn->dead || mn->n_inputs != 2 ||
          shape_elements(c, hi, b, MAX_RANK, depth + 1) != 1 || !is_static(b[0]))
        continue;
      for (int k = 0; k < 2; k++)
        if (shape_elements(c, mn->inputs[k], a, MAX_RANK, depth + 1) == 1 && is_static(a[0]) &&
            a[0].value <= b[0].value && lo->type.rank <= 1 && max >= 1) {
          int m = lo->type.rank == 1 && lo->type.dims[0].value >= 0 ? (int)lo->type.dims[0].value : 1;
          if (m > max) return -1;
          for (int i = 0; i < m; i++) out[i] = b[0];
          return m;
        }
    }
  }
  if ((og_is(n, ONNX_Add) || og_is(n, ONNX_Sub) || og_is(n, ONNX_Mul) || og_is(n, ONNX_Min) ||
       og_is(n, ONNX_Max)) && n->n_inputs == 2 && v->type.rank <= 1) {
    /* arithmetic of static sizes (the clamps of a dynamic slice's start):
     * an element is static when both operands' are and the result is not
     * negative; anything else is unknown */
    Sym l[MAX_RANK], r[MAX_RANK];
    int ml = shape_elements(c, n->inputs[0], l, MAX_RANK, depth + 1);
    int mr = shape_elements(c, n->inputs[1], r, MAX_RANK, depth + 1);
    if (ml < 0 || mr < 0 || (ml != mr && ml != 1 && mr != 1)) return -1;
    int m = ml > mr ? ml : mr;
    if (m > max) return -1;
    for (int i = 0; i < m; i++) {
      Sym a = l[ml == 1 ? 0 : i], b = r[mr == 1 ? 0 : i];
      out[i] = UNKNOWN;
      /* x + 0, 0 + x, x - 0, x * 1, 1 * x: x, symbolic or not */
      bool a0 = is_static(a) && a.value == 0, b0 = is_static(b) && b.value == 0;
      bool a1 = is_static(a) && a.value == 1, b1 = is_static(b) && b.value == 1;
      if ((og_is(n, ONNX_Add) && b0) || (og_is(n, ONNX_Sub) && b0) || (og_is(n, ONNX_Mul) && b1)) {
        out[i] = a;
        continue;
      }
      if ((og_is(n, ONNX_Add) && a0) || (og_is(n, ONNX_Mul) && a1)) {
        out[i] = b;
        continue;
      }
      if (!is_static(a) || !is_static(b) || a.value > ((int64_t)1 << 40) || b.value > ((int64_t)1 << 40))
        continue;
      int64_t x2 = og_is(n, ONNX_Add) ? a.value + b.value
                   : og_is(n, ONNX_Sub) ? a.value - b.value
                   : og_is(n, ONNX_Mul) ? a.value * b.value
                   : og_is(n, ONNX_Min) ? (a.value < b.value ? a.value : b.value)
                                        : (a.value > b.value ? a.value : b.value);
      if (x2 >= 0) out[i] = (Sym){x2, NULL, 0, 0};
    }
    return m;
  }
  if (og_is(n, ONNX_ReduceProd) && x->type.rank == 1 && v->type.rank <= 1 && max >= 1 &&
      n->n_inputs == 1 && int_attr(n, "noop_with_empty_axes", 0) == 0) {
    /* the size of merged axes (dot_general's [B, 4, T*1, 8]): static sizes
     * multiply, one symbolic size is scaled by the others */
    Sym all[MAX_RANK];
    int m = shape_elements(c, x, all, MAX_RANK, depth + 1);
    if (m < 0) return -1;
    const int64_t limit = (int64_t)1 << 40;
    Sym p = {1, NULL, 0, 0};
    for (int i = 0; i < m && (is_static(p) || is_symbolic(p)); i++) {
      Sym e = all[i];
      if (is_static(e) && is_static(p))
        p = e.value > 0 && p.value > limit / e.value ? UNKNOWN : (Sym){p.value * e.value, NULL, 0, 0};
      else if (is_static(e) && is_symbolic(p) && e.value > 0) p = scaled(p, e.value);
      else if (is_symbolic(e) && is_static(p) && p.value > 0) p = scaled(e, p.value);
      else p = UNKNOWN;
    }
    out[0] = p;
    return 1;
  }
  if (og_is(n, ONNX_Gather) && int_attr(n, "axis", 0) == 0 && n->n_inputs == 2) {
    Sym all[MAX_RANK];
    const int64_t *idx;
    int m = shape_elements(c, x, all, MAX_RANK, depth + 1);
    int k = const_ints(c, n->inputs[1], &idx);
    if (m < 0 || k < 0 || k > max) return -1;
    for (int i = 0; i < k; i++) {
      int64_t j = idx[i] < 0 ? idx[i] + m : idx[i];
      if (j < 0 || j >= m) return -1;
      out[i] = all[j];
    }
    return k;
  }
  return -1;
}

/* Expand: the output's dim is the shape's where the input has 1 or no axis
 * there (or the same dim), and the input's where the shape says 1. */
static bool expand(Ctx *c, const ONode *n, Sym *out, int rank) {
  Sym shape[MAX_RANK];
  const OValue *x = n->inputs[0];
  int m = n->n_inputs > 1 ? shape_elements(c, n->inputs[1], shape, MAX_RANK, 0) : -1;
  if (!x || x->type.rank < 0 || m < 0 || rank < m || rank < x->type.rank) return false;
  for (int i = 0; i < rank; i++) {
    int a = i - (rank - x->type.rank), s = i - (rank - m);
    Sym d = a >= 0 ? dim_of(x, a) : (Sym){1, NULL, 0, 0};
    if (s < 0 || (is_static(shape[s]) && shape[s].value == 1)) out[i] = d;
    else if ((is_static(d) && d.value == 1) || same_sym(d, shape[s])) out[i] = shape[s];
    else out[i] = UNKNOWN;
  }
  return true;
}

/* Range(0, n, 1) has n elements: jnp.arange(x.shape[0]), whose limit is
 * a size read from a shape (the batch indices of x[jnp.arange(B), i]). */
static bool range(Ctx *c, const ONode *n, Sym *out, int rank) {
  Sym start, limit, delta;
  if (rank != 1 || n->n_inputs != 3 || shape_elements(c, n->inputs[0], &start, 1, 0) != 1 ||
      shape_elements(c, n->inputs[1], &limit, 1, 0) != 1 ||
      shape_elements(c, n->inputs[2], &delta, 1, 0) != 1)
    return false;
  bool unit = is_static(start) && start.value == 0 && is_static(delta) && delta.value == 1;
  out[0] = unit && (is_static(limit) || is_symbolic(limit)) ? limit : UNKNOWN;
  return true;
}

/* Pad with constant pads: an axis padded by nothing keeps its size. */
static bool pad(Ctx *c, const ONode *n, Sym *out, int rank) {
  const OValue *x = n->inputs[0];
  const int64_t *pads;
  if (!x || x->type.rank != rank || n->n_inputs < 2 || (n->n_inputs > 3 && n->inputs[3]) ||
      const_ints(c, n->inputs[1], &pads) != 2 * rank)
    return false;
  for (int i = 0; i < rank; i++) {
    Sym d = dim_of(x, i);
    int64_t add = pads[i] + pads[i + rank];
    out[i] = add == 0 ? d : is_static(d) && d.value + add >= 0 ? (Sym){d.value + add, NULL, 0, 0}
                                                               : UNKNOWN;
  }
  return true;
}

static bool infer(Ctx *c, const ONode *n, Sym *out, int rank) {
  /* a call of a local function (its own domain) may bear any op's name */
  if (n->kind == ONNX_OTHER) return false;
  if (n->n_inputs < 1 || !n->inputs[0]) return false;
  unsigned facts = onnx_op_info[n->kind].facts; /* onnx_ops.def */
  if (facts & ONNX_BROADCASTS) return broadcast(n, out, rank);
  if (facts & ONNX_SAME_SHAPE) return copy_input(n, out, rank);
  if (facts & ONNX_KEEPS_BATCH) return batch_only(n, out, rank);
  if (facts & ONNX_REDUCES) return reduce(c, n, out, rank);
  switch (n->kind) {
  case ONNX_ArgMax: case ONNX_ArgMin: return arg_reduce(n, out, rank);
  case ONNX_Transpose: return transpose(n, out, rank);
  case ONNX_Reshape: return reshape(c, n, out, rank);
  case ONNX_Flatten: return flatten(n, out, rank);
  case ONNX_Squeeze: return squeeze(c, n, out, rank);
  case ONNX_Unsqueeze: return unsqueeze(c, n, out, rank);
  case ONNX_MatMul: return matmul(n, out, rank);
  case ONNX_Gemm: return gemm(n, out, rank);
  case ONNX_Concat: return concat(n, out, rank);
  case ONNX_Gather: return gather(n, out, rank);
  case ONNX_Slice: return slice(c, n, out, rank);
  case ONNX_Expand: return expand(c, n, out, rank);
  case ONNX_Pad: return pad(c, n, out, rank);
  case ONNX_Range: return range(c, n, out, rank);
  case ONNX_GatherElements: /* the output has the indices' shape */
    if (n->n_inputs != 2 || !n->inputs[1] || n->inputs[1]->type.rank != rank) return false;
    for (int i = 0; i < rank; i++) out[i] = dim_of(n->inputs[1], i);
    return true;
  default: return false;
  }
}

/* The node of a StableHLO elementwise op (ONode.same_shape_inputs): every
 * input has the output's shape at run time, whatever ONNX broadcasting
 * would allow, so a dim named on one of them is everyone's, inputs
 * included.  This is how the size of `pos[:T]` (a dynamic slice, whose
 * size no rule can prove without JAX's `T <= 32`) becomes T: it is added
 * to a [B, T, 32] value.  Returns how many dims it named. */
static int name_same_shape(Ctx *c, ONode *n) {
  OValue *v = n->outputs[0];
  int rank = v->type.rank, named = 0;
  for (int i = 0; i < n->n_inputs; i++)
    if (!n->inputs[i] || n->inputs[i]->type.rank != rank) return 0;
  for (int d = 0; d < rank; d++) {
    Sym s = dim_of(v, d);
    for (int i = 0; i < n->n_inputs && !is_symbolic(s); i++) s = dim_of(n->inputs[i], d);
    named += name_dim(c, v, d, s);
    for (int i = 0; i < n->n_inputs; i++) named += name_dim(c, n->inputs[i], d, s);
  }
  return named;
}

/* One walk in graph order; how many dims it named. */
static int name_graph(Ctx *c, OGraph *g) {
  int named = 0;
  for (int i = 0; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH) named += name_graph(c, n->attrs[j].graph);
    if (n->n_outputs < 1 || !n->outputs[0]) continue;
    OValue *v = n->outputs[0];
    int rank = v->type.rank;
    if (rank <= 0 || rank > MAX_RANK) continue;
    /* lower.c marks any one-node op whose operand types equal its result's
     * ('?' matching '?'): only an elementwise op proves equal sizes */
    if (n->same_shape_inputs && onnx_op_has(n->kind, ONNX_BROADCASTS)) named += name_same_shape(c, n);
    bool unnamed = false;
    for (int d = 0; d < rank; d++) unnamed |= v->type.dims[d].value < 0 && !v->type.dims[d].param;
    Sym out[MAX_RANK];
    if (!unnamed || !infer(c, n, out, rank)) continue;
    for (int d = 0; d < rank; d++) named += name_dim(c, v, d, out[d]);
  }
  return named;
}

int pass_symbolic_dims(Ctx *c, OModel *m) {
  /* A dim named backwards (an input of a same-shape node) reaches the nodes
   * before it in graph order on the next walk. */
  for (int walk = 0; walk < 4 && name_graph(c, m->graph) > 0; walk++) {
  }
  return 0;
}

/* ---- shape vectors that are constants --------------------------------------
 * A small integer vector computed from shapes whose every element is a
 * static size (Shape(x)[2:3] of a symbolic-batch x, the clamps of a dynamic
 * slice's start) is a constant: replacing it lets the folds and simplify
 * turn the dynamic slice or reshape it feeds into a static one. */

static void fold_shapes_in(Ctx *c, OGraph *g) {
  for (int i = 0; i < g->nodes.len; i++) {
    ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH) fold_shapes_in(c, n->attrs[j].graph);
    if (n->n_outputs != 1 || n->kind == ONNX_OTHER || og_is(n, ONNX_Shape)) continue;
    OValue *v = n->outputs[0];
    ElemType et = v->type.et;
    if (v->is_output || (et != ET_I64 && et != ET_I32) || v->type.rank > 1) continue;
    Sym e[MAX_RANK];
    int m = shape_elements(c, v, e, MAX_RANK, 0);
    if (m <= 0 || (v->type.rank == 0 && m != 1)) continue;
    bool all_static = true;
    for (int k = 0; k < m; k++) all_static &= is_static(e[k]);
    if (!all_static) continue;
    size_t es = et_size(et);
    uint8_t *bytes = arena_alloc(c->arena, (size_t)m * es);
    for (int k = 0; k < m; k++) {
      if (et == ET_I32 && e[k].value > INT32_MAX) return;
      if (et == ET_I64) memcpy(bytes + 8 * k, &e[k].value, 8);
      else { int32_t w = (int32_t)e[k].value; memcpy(bytes + 4 * k, &w, 4); }
    }
    int64_t len = m;
    OValue *kv = og_init(c, g, "shape", et, v->type.rank, &len,
                         (Data){DATA_RAW, bytes, (size_t)m * es});
    og_replace_uses(g, v, kv);
    n->dead = true;
  }
}

/* ---- shape reads moved to the graph inputs -------------------------------
 * A Shape of an intermediate value whose dims in range are all known
 * (static, or k * V with V the dim of a graph input) reads the same numbers
 * from that input: constants, and Shape(input)[axis] times k.  The value
 * then has one reader less, so a rewrite that wants a single reader sees it
 * (matmul_layout's key-major scores when the sequence length is dynamic
 * too, whose splitting Reshape measures the product it splits), and the
 * shape arithmetic of dynamic reshapes no longer waits for the tensors it
 * measures.  Names are proven sizes (symbolic_dims), never guesses. */

/* The graph input and axis whose dim is named `base` exactly. */
static OValue *named_input(const OGraph *root, const char *base, size_t len, int *axis) {
  for (int i = 0; i < root->inputs.len; i++) {
    OValue *in = root->inputs.items[i];
    for (int d = 0; d < in->type.rank; d++) {
      const char *p = in->type.dims[d].param;
      if (in->type.dims[d].value < 0 && p && strlen(p) == len && !memcmp(p, base, len)) {
        *axis = d;
        return in;
      }
    }
  }
  return NULL;
}

static OValue *shape_vector_node(Ctx *c, OGraph *g, const ONode *at, const char *op,
                                 OValue *const *in, int n_in, int64_t len) {
  ONode *n = og_node(c, g, op, in, n_in, 1);
  n->origin = at->origin;
  n->scope = at->scope;
  n->source = at->source;
  OValue *v = n->outputs[0];
  v->type = (OType){ET_I64, 1, arena_alloc(c->arena, 2 * sizeof(ODim))};
  v->type.dims[0] = (ODim){len, NULL};
  return v;
}

/* Rewrites Shape node n of g to read the graph inputs of root; whether it did. */
static bool shape_from_inputs(Ctx *c, const OGraph *root, OGraph *g, ONode *n) {
  OValue *x = n->inputs[0];
  int rank = x ? x->type.rank : -1;
  if (rank < 1 || rank > MAX_RANK || x->is_input || n->outputs[0]->is_output) return false;
  int64_t from = int_attr(n, "start", 0), to = int_attr(n, "end", rank);
  from = from < 0 ? from + rank : from;
  to = to < 0 ? to + rank : to;
  from = from < 0 ? 0 : from > rank ? rank : from;
  to = to < from ? from : to > rank ? rank : to;
  /* every dim in range static or a multiple of a graph input's, one at least */
  bool symbolic = false;
  int axis;
  for (int64_t i = from; i < to; i++) {
    Sym d = dim_of(x, (int)i);
    if (is_static(d)) continue;
    if (!is_symbolic(d) || !named_input(root, d.base, d.base_len, &axis)) return false;
    symbolic = true;
  }
  if (!symbolic) return false; /* static: fold_shapes made it a constant */
  OValue *parts[MAX_RANK];
  int64_t run[MAX_RANK];
  int n_parts = 0, n_run = 0;
  for (int64_t i = from; i < to; i++) {
    Sym d = dim_of(x, (int)i);
    if (is_static(d)) {
      run[n_run++] = d.value;
      continue;
    }
    if (n_run) parts[n_parts++] = og_init_i64s(c, g, "shape", n_run, run);
    n_run = 0;
    OValue *in = named_input(root, d.base, d.base_len, &axis);
    OValue *dim = shape_vector_node(c, g, n, "Shape", &in, 1, 1);
    og_attr_int(c, dim->producer, "start", axis);
    og_attr_int(c, dim->producer, "end", axis + 1);
    if (d.k != 1) {
      OValue *mul_in[2] = {dim, og_init_i64s(c, g, "size", 1, &d.k)};
      dim = shape_vector_node(c, g, n, "Mul", mul_in, 2, 1);
    }
    parts[n_parts++] = dim;
  }
  if (n_run) parts[n_parts++] = og_init_i64s(c, g, "shape", n_run, run);
  OValue *out = parts[0];
  if (n_parts > 1) {
    out = shape_vector_node(c, g, n, "Concat", parts, n_parts, to - from);
    og_attr_int(c, out->producer, "axis", 0);
  }
  og_replace_uses(g, n->outputs[0], out);
  n->dead = true;
  return true;
}

/* Whether it changed g or a subgraph of g. */
static bool shapes_from_inputs_in(Ctx *c, const OGraph *root, OGraph *g) {
  bool here = false, below = false;
  int n_nodes = g->nodes.len;
  for (int i = 0; i < n_nodes; i++) {
    ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    for (int j = 0; j < n->n_attrs; j++)
      if (n->attrs[j].kind == OA_GRAPH) below |= shapes_from_inputs_in(c, root, n->attrs[j].graph);
    if (og_is(n, ONNX_Shape) && n->n_inputs == 1) here |= shape_from_inputs(c, root, g, n);
  }
  if (here) og_toposort(c, g); /* the new nodes came last */
  return here || below;
}

int pass_shapes_from_inputs(Ctx *c, OModel *m) {
  if (shapes_from_inputs_in(c, m->graph, m->graph)) og_recount_uses(m->graph);
  return 0;
}

int pass_fold_shapes(Ctx *c, OModel *m) {
  fold_shapes_in(c, m->graph);
  og_recount_uses(m->graph);
  return 0;
}
