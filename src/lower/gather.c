/* gather.c - indexing: gather, dynamic_gather and scatter.
 *
 * StableHLO's gather and scatter describe every indexing pattern with one
 * set of "dimension numbers"; ONNX has several narrower ops.  We pick the
 * simplest one that is exact for the pattern at hand:
 *
 *   Gather          one indexed axis, the slice whole on every other axis:
 *                   x[idx], jnp.take(x, idx, axis), x[:, idx], x[:, 0]
 *   GatherElements  one indexed axis, every other axis a batching axis in
 *                   the same order: jnp.take_along_axis
 *   GatherND        everything else, from an index grid built here
 *   ScatterND       every scatter, from an index grid built here
 *
 * The index grid.  GatherND and ScatterND address a prefix of the data's
 * axes, one index column per axis, and take the remaining axes whole.  For
 * a general gather or scatter we build that grid: one row per (batch point,
 * window position) and one column per axis of the prefix.  Columns of axes
 * the op indexes are the start indices (clamped, see below), plus
 * arange(window) where the slice is longer than 1; batching axes
 * (operand_batching_dims: vmap) are aranges over their batch axis; axes
 * the slice covers only partly from 0 are aranges over a window axis.  The
 * data itself is never transposed: only the (usually much smaller) result
 * of a gather or updates of a scatter are.  A GatherND with batch_dims
 * replaces the batching aranges when the batching axes lead on both sides.
 *
 * Out-of-bounds start indices.  Gather clamps each start index to
 * [0, dim - slice_size] (spec and XLA agree), so we Clip the indices (at
 * conversion time when they are constants; not at all when the HLO already
 * bounds them).  Scatter differs: the StableHLO spec skips out-of-bounds
 * update *elements*, but XLA - what JAX runs, and so what we match - skips
 * the whole update *window* whose start is outside [0, dim - window].  JAX's
 * default scatter mode (FILL_OR_DROP) relies on that, so `x.at[i].set(v)`
 * with i >= len(x) is a no-op.  ScatterND has no such rule (ORT rejects
 * out-of-range indices), so when the indices are not known to be in range:
 *   - with a reduction (add, mul, max, min) the indices are clamped and the
 *     dropped windows' updates replaced by the reduction's neutral element
 *     (-0.0 for add, so that -0.0 stays -0.0 - though onnxruntime's Where
 *     turns a selected -0.0 into +0.0; 1; -inf; +inf);
 *   - plain replacement has no neutral element, so the data gets a padding
 *     block on the first indexed axis, dropped windows are sent there, and
 *     a Slice removes it again (two copies of the data more: a scatter whose
 *     indices are constants or clamped in the HLO, mode="clip", needs none).
 * Duplicate indices in a replacing scatter are non-deterministic in XLA
 * and in ONNX alike (on the CPU both keep the last write in practice); with
 * a reduction they are summed (etc.) in both.
 *
 * Dynamic dimensions ('?') work wherever the sizes can be read at run time
 * with Shape; window sizes of indexed axes must be static.  dynamic_gather
 * carries its slice sizes as a tensor: sizes the result type fixes are used
 * as constants, and a '?' one is taken whole (no Slice) when it is provably
 * the operand's own dimension (see same-dimension proof below), else the
 * (smaller) result is cut to the run-time size.
 */
#include "lower/lower.h"

#include <math.h>
#include <string.h>

/* Axes of the intermediate tensors: index batch axes, windows, one more. */
#define MAX_AXES (2 * MAX_RANK + 2)

/* Axis labels: an axis of start_indices (S), or an axis of the operand
 * (D); DROP marks a size-1 axis that the result does not have. */
enum { LBL_DROP = -1 };
#define LBL_S(s) (s)
#define LBL_D(d) (MAX_RANK + 1 + (d))

/* ---- small builders ---------------------------------------------------- */

/* The dims of an OValue's type as an int64 array (DIM_DYN when unknown);
 * returns its rank, or -1 when the rank is unknown. */
static int dims_of(const OValue *v, int64_t *dims) {
  if (v->type.rank < 0) return -1;
  for (int i = 0; i < v->type.rank; i++) dims[i] = v->type.dims[i].value;
  return v->type.rank;
}

static OValue *squeeze(Lower *L, OValue *x, const int64_t *axes, int n) {
  if (n == 0) return x;
  int64_t in[MAX_AXES], out[MAX_AXES];
  int r = dims_of(x, in);
  OValue *y = lw_op2(L, "Squeeze", x, lw_const_i64s(L, n, axes));
  if (r < 0) return y;
  bool gone[MAX_AXES] = {false};
  for (int i = 0; i < n; i++) gone[axes[i]] = true;
  int k = 0;
  for (int i = 0; i < r; i++)
    if (!gone[i]) out[k++] = in[i];
  return lw_typed(L, y, x->type.et, k, out);
}

static OValue *transpose(Lower *L, OValue *x, const int64_t *perm, int rank) {
  bool identity = true;
  for (int i = 0; i < rank; i++)
    if (perm[i] != i) identity = false;
  if (identity) return x;
  ONode *n = lw_node(L, "Transpose", 1, &x, 1);
  og_attr_ints(L->c, n, "perm", perm, rank);
  int64_t in[MAX_AXES], out[MAX_AXES];
  if (dims_of(x, in) != rank) return n->outputs[0];
  for (int i = 0; i < rank; i++) out[i] = in[perm[i]];
  return lw_typed(L, n->outputs[0], x->type.et, rank, out);
}

static OValue *concat(Lower *L, OValue **parts, int n, int64_t axis) {
  if (n == 1) return parts[0];
  ONode *c = lw_node(L, "Concat", n, parts, 1);
  og_attr_int(L->c, c, "axis", axis);
  return c->outputs[0];
}

/* Dimension `axis` of x as an int64 [1]: a constant when static. */
static OValue *dim_1d(Lower *L, OValue *x, int64_t static_size, int axis) {
  int64_t one = 1;
  if (static_size != DIM_DYN) return lw_const_i64s(L, 1, &static_size);
  ONode *n = lw_node(L, "Shape", 1, &x, 1);
  og_attr_int(L->c, n, "start", axis);
  og_attr_int(L->c, n, "end", axis + 1);
  return lw_typed(L, n->outputs[0], ET_I64, 1, &one);
}

static OValue *to_scalar(Lower *L, OValue *v1d) {
  OValue *s = lw_op2(L, "Reshape", v1d, lw_const_i64s(L, 0, NULL));
  return lw_typed(L, s, v1d->type.et, 0, NULL);
}

/* An int64 [n] from n int64 [1] pieces. */
static OValue *vector_of(Lower *L, OValue **parts, int n) {
  int64_t nn = n;
  return lw_typed(L, concat(L, parts, n, 0), ET_I64, 1, &nn);
}

static OValue *const_i64_shaped(Lower *L, int rank, const int64_t *dims, const int64_t *vals,
                                int64_t numel) {
  int64_t *copy = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(numel ? numel : 1));
  if (numel) memcpy(copy, vals, sizeof(int64_t) * (size_t)numel);
  Data d = {DATA_RAW, copy, sizeof(int64_t) * (size_t)numel};
  return lw_const_data(L, ET_I64, rank, dims, d);
}

/* ---- dimension-number lists --------------------------------------------- */

/* Field `name` of a dimension-numbers dict as a list (absent: empty).
 * Returns the count, or -1 after an error. */
static int dims_field(Lower *L, const Attr *dict, const char *name, int64_t **out) {
  const Attr *a = ir_dict_field(dict, name);
  *out = NULL;
  if (!a) return 0;
  int n = ir_attr_i64s(L->c, a, out);
  if (n < 0) {
    diag_error_op(L->c, H2O_EINPUT, L->op, "%s: '%s' is not a list of integers",
                  L->op->opname, name);
    return -1;
  }
  return n;
}

static int64_t int_field(const Attr *dict, const char *name) {
  int64_t v = 0;
  const Attr *a = ir_dict_field(dict, name);
  if (a && !ir_attr_int(a, &v)) return -1;
  return v; /* absent: 0, the printer's default */
}

static int index_in(const int64_t *v, int n, int64_t x) {
  for (int i = 0; i < n; i++)
    if (v[i] == x) return i;
  return -1;
}

/* Every entry in [0, limit), no repeats, ascending if `sorted`. */
static bool good_list(const int64_t *v, int n, int64_t limit, bool sorted) {
  for (int i = 0; i < n; i++) {
    if (v[i] < 0 || v[i] >= limit) return false;
    if (index_in(v, i, v[i]) >= 0) return false;
    if (sorted && i > 0 && v[i] < v[i - 1]) return false;
  }
  return true;
}

/* True when every start index is known to lie in [0, hi[k]] for its
 * column k (hi static; DIM_DYN entries make it unknowable). */
static bool starts_in_range(Lower *L, const Value *S, const int64_t *hi, int n_map) {
  int64_t lo, up, min_hi = INT64_MAX;
  for (int k = 0; k < n_map; k++) {
    if (hi[k] == DIM_DYN) return false;
    if (hi[k] < min_hi) min_hi = hi[k];
  }
  if (n_map == 0) return true;
  return lw_int_range(L, S, &lo, &up) && lo >= 0 && up <= min_hi;
}

/* ---- start indices ------------------------------------------------------ */

/* How the start indices are read: the S value, its index vector axis, and
 * the axes that index batch points (all but ivd, in S order). */
typedef struct Starts {
  const Value *S;
  int Rs;               /* rank of S */
  int ivd;              /* index_vector_dim; == Rs: an implicit trailing 1 */
  int n_map;            /* entries of an index vector */
  int nbs;              /* batch axes of S */
  int sax[MAX_RANK];    /* S axis of batch axis i */
  int64_t *cst;         /* S' values when known at conversion time, else NULL */
} Starts;

static void starts_init(Lower *L, Starts *st, const Value *S, int ivd, int n_map) {
  st->S = S;
  st->Rs = S->type.rank;
  st->ivd = ivd;
  st->n_map = n_map;
  st->nbs = 0;
  for (int a = 0; a < st->Rs; a++)
    if (a != ivd) st->sax[st->nbs++] = a;
  /* Constant indices, rearranged so the index vector is last (S'). */
  st->cst = NULL;
  int64_t *raw = lw_const_ints(L, S);
  int64_t n = type_numel(&S->type);
  if (!raw) return;
  if (ivd >= st->Rs - 1) {
    st->cst = raw;
    return;
  }
  /* Row-major walk over S' = transpose(S) with ivd moved last. */
  int64_t stride[MAX_RANK], pos[MAX_RANK] = {0};
  int64_t s = 1;
  for (int a = st->Rs - 1; a >= 0; a--) {
    stride[a] = s;
    s *= S->type.dims[a];
  }
  int64_t perm[MAX_RANK], pdims[MAX_RANK];
  for (int i = 0; i < st->nbs; i++) perm[i] = st->sax[i];
  perm[st->nbs] = ivd;
  for (int i = 0; i < st->Rs; i++) pdims[i] = S->type.dims[perm[i]];
  int64_t *out = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(n ? n : 1));
  for (int64_t e = 0; e < n; e++, lw_next_pos(pos, pdims, st->Rs)) {
    int64_t off = 0;
    for (int i = 0; i < st->Rs; i++) off += pos[i] * stride[perm[i]];
    out[e] = raw[off];
  }
  st->cst = out;
}

/* S' dims: [S batch dims..., n_map]. */
static int sprime_dims(const Starts *st, int64_t *dims) {
  for (int i = 0; i < st->nbs; i++) dims[i] = st->S->type.dims[st->sax[i]];
  dims[st->nbs] = st->n_map;
  return st->nbs + 1;
}

/* S' as an int64 graph value: the index vector last. */
static OValue *sprime(Lower *L, const Starts *st) {
  int64_t dims[MAX_RANK + 1];
  int r = sprime_dims(st, dims);
  if (st->cst) return const_i64_shaped(L, r, dims, st->cst, type_numel(&st->S->type));
  OValue *s = lw_cast(L, lw_get(L, st->S), ET_I64);
  if (st->ivd == st->Rs) {
    int64_t axis = st->Rs;
    s = lw_unsqueeze(L, s, &axis, 1);
  } else if (st->ivd != st->Rs - 1) {
    int64_t perm[MAX_RANK];
    for (int i = 0; i < st->nbs; i++) perm[i] = st->sax[i];
    perm[st->nbs] = st->ivd;
    s = transpose(L, s, perm, st->Rs);
  }
  return lw_typed(L, s, ET_I64, r, dims);
}

/* The int64 [n_map] upper bounds dim - window per column: a constant when
 * every bound is static (then also in hi_static), else computed. */
static OValue *upper_bounds(Lower *L, OValue *x, const int64_t *D, const int64_t *K,
                            const int64_t *win, int n_map, int64_t *hi_static) {
  bool all_static = true;
  for (int k = 0; k < n_map; k++) {
    hi_static[k] = D[K[k]] == DIM_DYN ? DIM_DYN : D[K[k]] - win[k];
    if (hi_static[k] == DIM_DYN) all_static = false;
  }
  if (all_static) return lw_const_i64s(L, n_map, hi_static);
  OValue **parts = arena_alloc(L->c->arena, sizeof(OValue *) * (size_t)n_map);
  for (int k = 0; k < n_map; k++) {
    if (hi_static[k] != DIM_DYN) {
      parts[k] = lw_const_i64s(L, 1, &hi_static[k]);
      continue;
    }
    int64_t one = 1;
    OValue *d = dim_1d(L, x, DIM_DYN, (int)K[k]);
    parts[k] = lw_typed(L, lw_op2(L, "Sub", d, lw_const_i64s(L, 1, &win[k])), ET_I64, 1, &one);
  }
  return vector_of(L, parts, n_map);
}

/* Clamps S' column-wise to [0, hi]. */
static OValue *clamp_sprime(Lower *L, const Starts *st, OValue *s, OValue *hi,
                            const int64_t *hi_static) {
  int64_t dims[MAX_RANK + 1];
  int r = sprime_dims(st, dims);
  if (st->cst && og_const_data(hi)) {
    int64_t n = type_numel(&st->S->type);
    int64_t *c = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(n ? n : 1));
    for (int64_t e = 0; e < n; e++) {
      int64_t v = st->cst[e], h = hi_static[e % st->n_map];
      c[e] = v < 0 ? 0 : (v > h ? h : v);
    }
    return const_i64_shaped(L, r, dims, c, n);
  }
  s = lw_typed(L, lw_op2(L, "Max", s, lw_const_scalar(L, ET_I64, 0)), ET_I64, r, dims);
  return lw_typed(L, lw_op2(L, "Min", s, hi), ET_I64, r, dims);
}

/* JAX makes the index vector axis of x[idx] with a broadcast_in_dim (or
 * reshape) that only adds it: then its operand is S without that axis,
 * which saves an Unsqueeze/Squeeze pair.  Else S itself. */
static const Value *without_vector_axis(Lower *L, const Starts *st) {
  const Op *op = st->S->def;
  if (st->ivd >= st->Rs || !op || (op->kind != OP_BROADCAST_IN_DIM && op->kind != OP_RESHAPE))
    return st->S;
  const Value *src = op->operands[0];
  if (src->type.rank != st->nbs || !et_is_int(src->type.et)) return st->S;
  int n_dyn = 0;
  for (int i = 0; i < st->nbs; i++) {
    if (src->type.dims[i] != st->S->type.dims[st->sax[i]]) return st->S;
    if (src->type.dims[i] == DIM_DYN) n_dyn++;
  }
  if (op->kind == OP_RESHAPE) return n_dyn <= 1 ? src : st->S; /* sizes then match */
  /* broadcast_in_dim: operand axis i must go to S axis sax[i] (equal sizes
   * make it a pure relabelling; the spec requires a '?' to match). */
  int64_t *bd;
  if (ir_attr_i64s(L->c, ir_op_attr(op, "broadcast_dimensions"), &bd) != st->nbs) return st->S;
  for (int i = 0; i < st->nbs; i++)
    if (bd[i] != st->sax[i]) return st->S;
  return src;
}

/* The index of each batch point with the index vector removed (for Gather
 * and GatherElements), clamped to [0, hi]; int32 indices stay int32. */
static OValue *single_index(Lower *L, const Starts *st, OValue *x, int64_t D_axis, int axis,
                            bool in_range) {
  int64_t dims[MAX_RANK];
  for (int i = 0; i < st->nbs; i++) dims[i] = st->S->type.dims[st->sax[i]];
  int64_t hi = D_axis == DIM_DYN ? DIM_DYN : D_axis - 1;
  if (st->cst && hi != DIM_DYN) {
    int64_t n = type_numel(&st->S->type);
    int64_t *c = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(n ? n : 1));
    for (int64_t e = 0; e < n; e++) c[e] = st->cst[e] < 0 ? 0 : (st->cst[e] > hi ? hi : st->cst[e]);
    return const_i64_shaped(L, st->nbs, dims, c, n);
  }
  const Value *src = without_vector_axis(L, st);
  ElemType et = src->type.et == ET_I32 ? ET_I32 : ET_I64;
  OValue *s = lw_cast(L, lw_get(L, src), et);
  if (src == st->S && st->ivd < st->Rs) {
    int64_t a = st->ivd;
    s = squeeze(L, s, &a, 1);
  }
  s = lw_typed(L, s, et, st->nbs, dims);
  if (in_range) return s;
  OValue *h;
  if (hi != DIM_DYN) {
    h = lw_const_scalar(L, et, (double)hi);
  } else {
    int64_t one = 1;
    OValue *d = lw_typed(L, lw_op2(L, "Sub", dim_1d(L, x, DIM_DYN, axis), lw_const_i64s(L, 1, &one)),
                      ET_I64, 1, &one);
    h = lw_cast(L, to_scalar(L, d), et);
  }
  return lw_typed(L, lw_op3(L, "Clip", s, lw_const_scalar(L, et, 0), h), et, st->nbs, dims);
}

/* ---- the index grid ----------------------------------------------------- */

enum { COL_START, COL_IOTA, COL_ZERO };

typedef struct Grid {
  int n;                    /* grid axes (the index tensor has n + 1) */
  int64_t size[MAX_AXES];   /* static size, or DIM_DYN: Shape(src)[src_axis] */
  OValue *src[MAX_AXES];
  int src_axis[MAX_AXES];
  int s_of[MAX_AXES];       /* batch axis i of S' it holds, or -1 for a window axis */
  /* the start indices, S' (after clamping or redirection) */
  OValue *starts;
  int nbs, n_map;
  int64_t win[MAX_RANK];    /* per column k: window length (1: none) */
  int win_axis[MAX_RANK];   /* per column k: the grid axis of its window, or -1 */
  /* the columns of the index tensor, one per addressed data axis */
  int n_cols;
  int col_kind[MAX_RANK];
  int col_arg[MAX_RANK];    /* COL_START: k; COL_IOTA: grid axis */
} Grid;

/* The grid's shape plus a trailing 1, as an int64 tensor. */
static OValue *grid_shape(Lower *L, const Grid *g, bool *is_static) {
  int64_t dims[MAX_AXES];
  *is_static = true;
  for (int i = 0; i < g->n; i++) {
    dims[i] = g->size[i];
    if (dims[i] == DIM_DYN) *is_static = false;
  }
  dims[g->n] = 1;
  if (*is_static) return lw_const_i64s(L, g->n + 1, dims);
  OValue *parts[MAX_AXES];
  for (int i = 0; i < g->n; i++) parts[i] = dim_1d(L, g->src[i], g->size[i], g->src_axis[i]);
  parts[g->n] = lw_const_i64s(L, 1, &dims[g->n]);
  return vector_of(L, parts, g->n + 1);
}

/* arange(size of grid axis `axis`) laid along that axis: [1,..,n,..,1, 1]. */
static OValue *grid_iota(Lower *L, const Grid *g, int axis) {
  int64_t dims[MAX_AXES];
  for (int i = 0; i <= g->n; i++) dims[i] = i == axis ? g->size[axis] : 1;
  int64_t n = g->size[axis];
  if (n != DIM_DYN) {
    int64_t *v = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(n ? n : 1));
    for (int64_t i = 0; i < n; i++) v[i] = i;
    return const_i64_shaped(L, g->n + 1, dims, v, n);
  }
  OValue *len = to_scalar(L, dim_1d(L, g->src[axis], DIM_DYN, g->src_axis[axis]));
  OValue *r = lw_op3(L, "Range", lw_const_scalar(L, ET_I64, 0), len, lw_const_scalar(L, ET_I64, 1));
  r = lw_typed(L, r, ET_I64, 1, &n);
  int64_t shape[MAX_AXES];
  for (int i = 0; i <= g->n; i++) shape[i] = i == axis ? -1 : 1;
  return lw_typed(L, lw_op2(L, "Reshape", r, lw_const_i64s(L, g->n + 1, shape)), ET_I64, g->n + 1,
               dims);
}

/* The index tensor as a constant, when the grid is static and small and
 * the starts are constants; else NULL. */
static OValue *const_grid(Lower *L, const Grid *g) {
  const Data *sd = g->n_map ? og_const_data(g->starts) : NULL;
  if (g->n_map && (!sd || sd->kind != DATA_RAW || g->starts->type.et != ET_I64)) return NULL;
  int64_t numel = g->n_cols, dims[MAX_AXES];
  for (int i = 0; i < g->n; i++) {
    if (g->size[i] == DIM_DYN) return NULL;
    dims[i] = g->size[i];
    numel *= dims[i];
    if (numel > LW_MAX_KNOWN_INTS) return NULL;
  }
  dims[g->n] = g->n_cols;
  const int64_t *starts = sd ? sd->ptr : NULL;
  int64_t *v = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(numel ? numel : 1));
  int64_t pos[MAX_AXES] = {0};
  for (int64_t e = 0; e < numel; e += g->n_cols, lw_next_pos(pos, dims, g->n)) {
    /* the row of S' for this grid position: its batch coordinates */
    int64_t row = 0;
    for (int k = 0; k < g->nbs; k++) {
      int64_t coord = 0;
      for (int i = 0; i < g->n; i++)
        if (g->s_of[i] == k) coord = pos[i];
      row = row * g->starts->type.dims[k].value + coord;
    }
    for (int c = 0; c < g->n_cols; c++) {
      int arg = g->col_arg[c];
      if (g->col_kind[c] == COL_START)
        v[e + c] = starts[row * g->n_map + arg] + (g->win_axis[arg] >= 0 ? pos[g->win_axis[arg]] : 0);
      else
        v[e + c] = g->col_kind[c] == COL_IOTA ? pos[arg] : 0;
    }
  }
  return const_i64_shaped(L, g->n + 1, dims, v, numel);
}

/* The index tensor [grid..., n_cols] for GatherND / ScatterND. */
static OValue *build_grid(Lower *L, const Grid *g) {
  OValue *cst = const_grid(L, g);
  if (cst) return cst;
  /* 1. S' laid over the grid: its batch axes in grid order, 1s elsewhere,
   *    plus the window offsets of windowed columns. */
  OValue *kp = NULL;
  bool kp_full = true; /* has every grid axis at full size */
  if (g->n_map > 0) {
    int64_t perm[MAX_AXES], axes[MAX_AXES];
    int np = 0, na = 0;
    for (int i = 0; i < g->n; i++) {
      if (g->s_of[i] >= 0) perm[np++] = g->s_of[i];
      else axes[na++] = i;
    }
    perm[np] = g->nbs;
    kp = transpose(L, g->starts, perm, g->nbs + 1);
    kp = lw_unsqueeze(L, kp, axes, na);
    bool any_win = false;
    for (int k = 0; k < g->n_map; k++)
      if (g->win_axis[k] >= 0 && g->win[k] > 1) any_win = true;
    /* Window axes not of a start column (iota columns) stay 1 in kp. */
    for (int i = 0; i < g->n; i++) {
      if (g->s_of[i] >= 0) continue;
      bool mine = false;
      for (int k = 0; k < g->n_map; k++)
        if (g->win_axis[k] == i) mine = true;
      if (!mine && g->size[i] != 1) kp_full = false;
    }
    if (any_win) {
      /* offsets[pos..., k] = pos[win_axis[k]]: a constant of the windows' size */
      int64_t dims[MAX_AXES], numel = g->n_map;
      for (int i = 0; i < g->n; i++) {
        dims[i] = 1;
        for (int k = 0; k < g->n_map; k++)
          if (g->win_axis[k] == i) dims[i] = g->win[k];
        numel *= dims[i];
      }
      dims[g->n] = g->n_map;
      int64_t *v = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(numel ? numel : 1));
      int64_t pos[MAX_AXES] = {0};
      for (int64_t e = 0; e < numel; e += g->n_map, lw_next_pos(pos, dims, g->n))
        for (int k = 0; k < g->n_map; k++) v[e + k] = g->win_axis[k] >= 0 ? pos[g->win_axis[k]] : 0;
      OValue *off = const_i64_shaped(L, g->n + 1, dims, v, numel);
      int64_t out[MAX_AXES];
      for (int i = 0; i < g->n; i++) {
        int64_t a = kp->type.rank > i ? kp->type.dims[i].value : DIM_DYN;
        out[i] = a == 1 ? dims[i] : a;
      }
      out[g->n] = g->n_map;
      kp = lw_typed(L, lw_op2(L, "Add", kp, off), ET_I64, g->n + 1, out);
    }
  }
  /* 2. The columns, in data-axis order: runs of start columns come from kp
   *    (reordered with a Gather when not k, k+1, ...); the others are
   *    aranges along their grid axis, or zeros. */
  OValue *pieces[MAX_RANK];
  bool full[MAX_RANK];
  int n_pieces = 0;
  for (int c = 0; c < g->n_cols;) {
    if (g->col_kind[c] == COL_START) {
      int64_t ks[MAX_RANK];
      int m = 0;
      bool in_order = true;
      while (c < g->n_cols && g->col_kind[c] == COL_START) {
        ks[m] = g->col_arg[c];
        if (ks[m] != m) in_order = false;
        m++, c++;
      }
      OValue *p = kp;
      if (!(in_order && m == g->n_map)) {
        ONode *n = lw_node(L, "Gather", 2, (OValue *[]){kp, lw_const_i64s(L, m, ks)}, 1);
        og_attr_int(L->c, n, "axis", g->n);
        int64_t dims[MAX_AXES];
        int r = dims_of(kp, dims);
        dims[g->n] = m;
        p = r == g->n + 1 ? lw_typed(L, n->outputs[0], ET_I64, r, dims) : n->outputs[0];
      }
      full[n_pieces] = kp_full;
      pieces[n_pieces++] = p;
      continue;
    }
    if (g->col_kind[c] == COL_IOTA) {
      pieces[n_pieces] = grid_iota(L, g, g->col_arg[c]);
    } else {
      int64_t dims[MAX_AXES], zero = 0;
      for (int i = 0; i <= g->n; i++) dims[i] = 1;
      pieces[n_pieces] = const_i64_shaped(L, g->n + 1, dims, &zero, 1);
    }
    full[n_pieces++] = false;
    c++;
  }
  if (n_pieces == 1 && full[0]) return pieces[0];
  /* 3. Expand every piece to the whole grid and concatenate the columns. */
  bool is_static;
  OValue *shape = grid_shape(L, g, &is_static);
  int64_t dims[MAX_AXES];
  for (int i = 0; i < g->n; i++) dims[i] = g->size[i];
  for (int p = 0; p < n_pieces; p++) {
    if (full[p]) continue;
    dims[g->n] = pieces[p]->type.rank == g->n + 1 ? pieces[p]->type.dims[g->n].value : DIM_DYN;
    pieces[p] = lw_typed(L, lw_op2(L, "Expand", pieces[p], shape), ET_I64, g->n + 1, dims);
  }
  dims[g->n] = g->n_cols;
  return lw_typed(L, concat(L, pieces, n_pieces, g->n), ET_I64, g->n + 1, dims);
}

/* y's axes carry labels lab[0..n) (LBL_DROP: size 1, not in the result);
 * returns y with the result's axis order want[0..rr). */
static OValue *to_result(Lower *L, OValue *y, int n, const int *lab, int rr, const int *want) {
  int64_t drop[MAX_AXES], perm[MAX_AXES];
  int kept[MAX_AXES], n_drop = 0, n_kept = 0;
  for (int i = 0; i < n; i++) {
    if (lab[i] == LBL_DROP) drop[n_drop++] = i;
    else kept[n_kept++] = lab[i];
  }
  if (n_kept != rr) {
    diag_internal(L->c, __FILE__, __LINE__, "gather/scatter axis bookkeeping");
    return NULL;
  }
  y = squeeze(L, y, drop, n_drop);
  for (int r = 0; r < rr; r++) {
    perm[r] = -1;
    for (int i = 0; i < n_kept; i++)
      if (kept[i] == want[r]) perm[r] = i;
    if (perm[r] < 0) {
      diag_internal(L->c, __FILE__, __LINE__, "gather/scatter axis bookkeeping");
      return NULL;
    }
  }
  return transpose(L, y, perm, rr);
}

/* ---- gather ------------------------------------------------------------- */

enum { ROLE_OFFSET, ROLE_COLLAPSED, ROLE_BATCH };

typedef struct GatherPlan {
  int R, Rr;
  const int64_t *D, *RD;
  int64_t *off, *coll, *ob, *sb, *map;
  int n_off, n_coll, n_ob, n_sb, n_map;
  int role[MAX_RANK], col[MAX_RANK], pair[MAX_RANK];
  int64_t size[MAX_RANK]; /* slice sizes; DIM_DYN: only known at run time */
  int res[MAX_RANK];      /* label of each result axis */
  Starts st;
} GatherPlan;

static int gather_plan(Lower *L, const Op *op, GatherPlan *p) {
  const Attr *dn = ir_op_attr(op, "dimension_numbers");
  if (!dn || dn->kind != AK_DICT) return lw_bad_input(L, "missing dimension_numbers");
  const Type *tx = &op->operands[0]->type, *ts = &op->operands[1]->type,
             *tr = &op->results[0]->type;
  if (tx->kind != TK_TENSOR || ts->kind != TK_TENSOR || tr->kind != TK_TENSOR)
    return lw_bad_input(L, "expects tensors");
  p->R = tx->rank;
  p->Rr = tr->rank;
  p->D = tx->dims;
  p->RD = tr->dims;
  if ((p->n_off = dims_field(L, dn, "offset_dims", &p->off)) < 0 ||
      (p->n_coll = dims_field(L, dn, "collapsed_slice_dims", &p->coll)) < 0 ||
      (p->n_ob = dims_field(L, dn, "operand_batching_dims", &p->ob)) < 0 ||
      (p->n_sb = dims_field(L, dn, "start_indices_batching_dims", &p->sb)) < 0 ||
      (p->n_map = dims_field(L, dn, "start_index_map", &p->map)) < 0)
    return -1;
  int64_t ivd = int_field(dn, "index_vector_dim");
  int Rs = ts->rank;
  if (ivd < 0 || ivd > Rs) return lw_bad_input(L, "index_vector_dim out of range");
  int64_t vec = ivd < Rs ? ts->dims[ivd] : 1;
  if (vec != DIM_DYN && vec != p->n_map)
    return lw_bad_input(L, "start_index_map does not match the index vector length");
  int nbs = Rs - (ivd < Rs);
  if (!good_list(p->off, p->n_off, p->Rr, true) || !good_list(p->coll, p->n_coll, p->R, true) ||
      !good_list(p->ob, p->n_ob, p->R, true) || !good_list(p->map, p->n_map, p->R, false) ||
      !good_list(p->sb, p->n_sb, Rs, false) || p->n_sb != p->n_ob ||
      index_in(p->sb, p->n_sb, ivd) >= 0 || p->n_off + p->n_coll + p->n_ob != p->R ||
      p->Rr != nbs + p->n_off)
    return lw_bad_input(L, "inconsistent dimension numbers");
  for (int d = 0; d < p->R; d++) {
    p->col[d] = index_in(p->map, p->n_map, d);
    p->pair[d] = -1;
    if (index_in(p->coll, p->n_coll, d) >= 0) {
      if (index_in(p->ob, p->n_ob, d) >= 0) return lw_bad_input(L, "a dimension both collapsed and batching");
      p->role[d] = ROLE_COLLAPSED;
    } else if (index_in(p->ob, p->n_ob, d) >= 0) {
      if (p->col[d] >= 0) return lw_bad_input(L, "a batching dimension in start_index_map");
      p->role[d] = ROLE_BATCH;
      p->pair[d] = (int)p->sb[index_in(p->ob, p->n_ob, d)];
      int64_t a = tx->dims[d], b = ts->dims[p->pair[d]];
      if (a != DIM_DYN && b != DIM_DYN && a != b)
        return lw_bad_input(L, "batching dimensions of different sizes");
    } else {
      p->role[d] = ROLE_OFFSET;
    }
  }
  starts_init(L, &p->st, op->operands[1], (int)ivd, p->n_map);
  /* Result axes: offset_dims take the offset operand dims in order, the
   * others the batch axes of the start indices in order. */
  int j = 0, i = 0;
  for (int r = 0; r < p->Rr; r++) {
    if (index_in(p->off, p->n_off, r) >= 0) {
      while (p->role[j] != ROLE_OFFSET) j++;
      p->res[r] = LBL_D(j++);
    } else {
      p->res[r] = LBL_S(p->st.sax[i++]);
    }
  }
  return 0;
}

/* Slice sizes of a static gather, checked against the types. */
static int gather_sizes(Lower *L, const Op *op, GatherPlan *p) {
  int64_t *sizes;
  const Attr *a = ir_op_attr(op, "slice_sizes");
  int n = a ? ir_attr_i64s(L->c, a, &sizes) : -1;
  if (n != p->R) return lw_bad_input(L, "slice_sizes must have one entry per operand dimension");
  for (int d = 0; d < p->R; d++) {
    if (sizes[d] < 0) return lw_bad_input(L, "negative slice size");
    p->size[d] = sizes[d];
  }
  return 0;
}

/* Checks slice sizes against the operand and result types. */
static int check_sizes(Lower *L, const GatherPlan *p) {
  for (int d = 0; d < p->R; d++) {
    int64_t s = p->size[d];
    if (s == DIM_DYN) continue;
    if (s < 0 || (p->D[d] != DIM_DYN && s > p->D[d])) return lw_bad_input(L, "slice size out of range");
    if (p->role[d] != ROLE_OFFSET && s != 1)
      return lw_bad_input(L, "collapsed and batching dimensions need slice size 1");
  }
  for (int r = 0; r < p->Rr; r++) {
    if (p->res[r] < LBL_D(0)) { /* a batch axis: the start indices' axis */
      int64_t s = p->st.S->type.dims[p->res[r]];
      if (s != DIM_DYN && p->RD[r] != DIM_DYN && s != p->RD[r])
        return lw_bad_input(L, "the result type does not match the start indices' batch dimensions");
      continue;
    }
    int64_t s = p->size[p->res[r] - LBL_D(0)];
    if (s != DIM_DYN && p->RD[r] != DIM_DYN && s != p->RD[r])
      return lw_bad_input(L, "the result type does not match slice_sizes");
  }
  return 0;
}

/* Slices the operand to [0, size) on the axes that are neither indexed nor
 * batching (their start is 0), so that afterwards they are taken whole.
 * DD gets the dims after slicing.  Run-time sizes (dynamic_gather) are
 * left to postslice, which cuts the smaller result instead. */
static OValue *preslice(Lower *L, const GatherPlan *p, OValue *x, int64_t *DD) {
  int64_t axes[MAX_RANK], starts[MAX_RANK], ends[MAX_RANK];
  int m = 0;
  for (int d = 0; d < p->R; d++) {
    DD[d] = p->D[d];
    if (p->col[d] >= 0 || p->role[d] == ROLE_BATCH || p->size[d] == DIM_DYN) continue;
    DD[d] = p->size[d];
    if (p->D[d] != DIM_DYN && p->size[d] == p->D[d]) continue;
    axes[m] = d;
    starts[m] = 0;
    ends[m++] = p->size[d];
  }
  if (m == 0) return x;
  OValue *in[4] = {x, lw_const_i64s(L, m, starts), lw_const_i64s(L, m, ends),
                   lw_const_i64s(L, m, axes)};
  OValue *y = lw_node(L, "Slice", 4, in, 1)->outputs[0];
  return lw_typed(L, y, x->type.et, p->R, DD);
}

/* ---- dynamic_gather: the same-dimension proof ----------------------------
 *
 * JAX gives a gather on a symbolic dimension, such as the ViT's x[:, 0] on
 * (B, T, D), slice sizes computed from the dimension variable B.  The slice
 * is then the whole dimension, but only if the operand's dimension is B as
 * well, which the types ('?') do not say.  We prove it on the HLO: the size
 * element and the operand's dimension are each followed back to "leaves" -
 * a dimension variable (jax.global_constant "B"), or a dimension of a
 * function argument - through ops that keep the dimension (elementwise ops,
 * broadcasts, transposes, concatenations along other axes, reductions of
 * other axes, dot_general, calls) and through the shape operands of the
 * dynamic ops.  Equal leaves prove equal sizes; an entry argument's
 * dimension named "B" (by the caller) equals the variable B. */

typedef struct DimLeaf {
  const char *sym;   /* a dimension variable, or NULL */
  const Value *arg;  /* else: dimension `axis` of this block argument */
  int axis;
} DimLeaf;

typedef struct CallFrame {
  const Op *call;
  const Func *f;
  const struct CallFrame *up;
} CallFrame;

#define MAX_LEAVES 16

typedef struct DimSearch {
  Lower *L;
  int budget;
  DimLeaf leaf[MAX_LEAVES];
  int n;
  const DimLeaf *targets; /* when set: stop at the first leaf equal to one */
  int n_targets;
  bool hit;
} DimSearch;

/* The function whose body has argument v, and v's index. */
static const Func *arg_owner(const Lower *L, const Value *v, int *index) {
  for (int i = 0; i < L->module->n_funcs; i++) {
    const Func *f = L->module->funcs[i];
    if (f->body && v->index >= 0 && v->index < f->body->n_args && f->body->args[v->index] == v) {
      *index = v->index;
      return f;
    }
  }
  return NULL;
}

static const char *dim_variable(const Func *f, int i) {
  const Attr *a = ir_attr(f->arg_attrs[i], f->arg_n_attrs[i], "jax.global_constant");
  return a && a->kind == AK_STRING ? a->s : NULL;
}

static bool leaf_equal(const Lower *L, const DimLeaf *a, const DimLeaf *b) {
  if (a->sym && b->sym) return strcmp(a->sym, b->sym) == 0;
  if (!a->sym && !b->sym && a->arg == b->arg && a->axis == b->axis) return true;
  /* a dimension of an entry argument, named by the caller */
  const Func *entry = ir_entry_func(L->module);
  const char *na = a->sym, *nb = b->sym;
  int i;
  if (!na && arg_owner(L, a->arg, &i) == entry && a->arg->lowered &&
      a->arg->lowered->type.rank > a->axis)
    na = a->arg->lowered->type.dims[a->axis].param;
  if (!nb && arg_owner(L, b->arg, &i) == entry && b->arg->lowered &&
      b->arg->lowered->type.rank > b->axis)
    nb = b->arg->lowered->type.dims[b->axis].param;
  return na && nb && strcmp(na, nb) == 0;
}

static void add_leaf(DimSearch *s, DimLeaf leaf) {
  for (int i = 0; i < s->n_targets; i++)
    if (leaf_equal(s->L, &leaf, &s->targets[i])) s->hit = true;
  if (s->n < MAX_LEAVES) s->leaf[s->n++] = leaf;
}

static bool is_elementwise(OpKind k) {
  switch (k) {
  case OP_ABS: case OP_CEIL: case OP_FLOOR: case OP_COSINE: case OP_SINE: case OP_TAN:
  case OP_EXPONENTIAL: case OP_LOG: case OP_NEGATE: case OP_SQRT: case OP_TANH:
  case OP_LOGISTIC: case OP_RSQRT: case OP_CBRT: case OP_EXPM1: case OP_LOG1P: case OP_SIGN:
  case OP_ROUND_EVEN: case OP_ROUND_AFZ: case OP_NOT: case OP_IS_FINITE: case OP_ADD:
  case OP_SUBTRACT: case OP_MULTIPLY: case OP_DIVIDE: case OP_REMAINDER: case OP_MAXIMUM:
  case OP_MINIMUM: case OP_POWER: case OP_ATAN2: case OP_AND: case OP_OR: case OP_XOR:
  case OP_COMPARE: case OP_SELECT: case OP_CLAMP: case OP_CONVERT: case OP_CHLO_ERF:
  case OP_CHLO_ERFC: case OP_CHLO_SQUARE: case OP_CHLO_TAN: case OP_CHLO_SINH:
  case OP_CHLO_COSH: case OP_CHLO_ASIN: case OP_CHLO_ACOS: case OP_CHLO_ATAN:
  case OP_CHLO_ASINH: case OP_CHLO_ACOSH: case OP_CHLO_ATANH: case OP_CHLO_IS_INF:
  case OP_OPTIMIZATION_BARRIER:
    return true;
  default:
    return false;
  }
}

static void dim_leaves(DimSearch *s, const Value *v, int d, const CallFrame *cf);

/* The returned value of a call's callee, entered with a new frame. */
static const Value *callee_result(const Lower *L, const Op *call, const Value *v, CallFrame *frame,
                                  const CallFrame *cf) {
  const Attr *callee = ir_op_attr(call, "callee");
  const Func *f = callee && callee->s ? ir_find_func(L->module, callee->s) : NULL;
  if (!f || !f->body || f->body->n_ops == 0 || f->n_args != call->n_operands) return NULL;
  const Op *ret = f->body->ops[f->body->n_ops - 1];
  if (v->index < 0 || v->index >= ret->n_operands) return NULL;
  frame->call = call;
  frame->f = f;
  frame->up = cf;
  return ret->operands[v->index];
}

/* Leaves of element idx of a 1-D integer (shape) value. */
static void elem_leaves(DimSearch *s, const Value *v, int64_t idx, const CallFrame *cf) {
  while (!s->hit && --s->budget >= 0) {
    const Op *op = v->def;
    if (!op) {
      int i;
      const Func *f = arg_owner(s->L, v, &i);
      if (!f) return;
      const char *sym = dim_variable(f, i);
      if (sym) {
        add_leaf(s, (DimLeaf){sym, NULL, -1});
        return;
      }
      if (!cf || cf->f != f) return;
      v = cf->call->operands[i];
      cf = cf->up;
      continue;
    }
    switch (op->kind) {
    case OP_RESHAPE: case OP_CONVERT: case OP_BROADCAST_IN_DIM:
      if (op->kind == OP_BROADCAST_IN_DIM && type_numel(&op->operands[0]->type) != 1) return;
      if (type_numel(&op->operands[0]->type) == 1) idx = 0;
      v = op->operands[0];
      continue;
    case OP_CONCATENATE: {
      int64_t base = 0;
      const Value *next = NULL;
      for (int j = 0; j < op->n_operands && !next; j++) {
        const Type *t = &op->operands[j]->type;
        int64_t len = t->rank == 1 ? t->dims[0] : -1;
        if (len < 0) return;
        if (idx < base + len) next = op->operands[j];
        else base += len;
      }
      if (!next) return;
      idx -= base;
      v = next;
      continue;
    }
    case OP_GET_DIMENSION_SIZE: {
      int64_t k;
      if (ir_attr_int(ir_op_attr(op, "dimension"), &k)) dim_leaves(s, op->operands[0], (int)k, cf);
      return;
    }
    case OP_CALL: case OP_CALL_SHORT: {
      CallFrame frame;
      const Value *r = callee_result(s->L, op, v, &frame, cf);
      if (r) elem_leaves(s, r, idx, &frame);
      return;
    }
    default:
      return;
    }
  }
}

static void dim_leaves(DimSearch *s, const Value *v, int d, const CallFrame *cf) {
  if (s->hit || --s->budget < 0 || d < 0 || d >= v->type.rank) return;
  if (v->type.dims[d] != DIM_DYN) return;
  const Op *op = v->def;
  Lower *L = s->L;
  if (!op) {
    int i;
    const Func *f = arg_owner(L, v, &i);
    if (f && cf && cf->f == f) dim_leaves(s, cf->call->operands[i], d, cf->up);
    else if (f) add_leaf(s, (DimLeaf){NULL, v, d});
    return;
  }
  int64_t *list;
  int n;
  if (is_elementwise(op->kind)) {
    for (int i = 0; i < op->n_operands; i++)
      if (op->operands[i]->type.rank == v->type.rank) dim_leaves(s, op->operands[i], d, cf);
    return;
  }
  switch (op->kind) {
  case OP_BROADCAST_IN_DIM:
    n = ir_attr_i64s(L->c, ir_op_attr(op, "broadcast_dimensions"), &list);
    for (int k = 0; k < n; k++)
      if (list[k] == d) dim_leaves(s, op->operands[0], k, cf); /* a '?' must match */
    return;
  case OP_DYNAMIC_BROADCAST_IN_DIM: case OP_DYNAMIC_RESHAPE:
    if (op->n_operands == 2) elem_leaves(s, op->operands[1], d, cf);
    return;
  case OP_DYNAMIC_IOTA:
    if (op->n_operands == 1) elem_leaves(s, op->operands[0], d, cf);
    return;
  case OP_TRANSPOSE:
    n = ir_attr_i64s(L->c, ir_op_attr(op, "permutation"), &list);
    if (n == v->type.rank) dim_leaves(s, op->operands[0], (int)list[d], cf);
    return;
  case OP_CONCATENATE: {
    int64_t dim;
    if (!ir_attr_int(ir_op_attr(op, "dimension"), &dim) || dim == d) return;
    for (int i = 0; i < op->n_operands; i++) dim_leaves(s, op->operands[i], d, cf);
    return;
  }
  case OP_REDUCE: {
    /* each result keeps the operand axes not reduced, in order */
    n = ir_attr_i64s(L->c, ir_op_attr(op, "dimensions"), &list);
    if (n < 0 || op->n_operands < 1) return;
    for (int k = 0, j = 0; k < op->operands[0]->type.rank; k++)
      if (index_in(list, n, k) < 0 && j++ == d) dim_leaves(s, op->operands[0], k, cf);
    return;
  }
  case OP_DOT_GENERAL: {
    /* result: batch dims, lhs free dims, rhs free dims */
    const Attr *dn = ir_op_attr(op, "dot_dimension_numbers");
    int64_t *dims[4];
    static const char *const names[4] = {"lhs_batching_dimensions", "rhs_batching_dimensions",
                                         "lhs_contracting_dimensions",
                                         "rhs_contracting_dimensions"};
    int cnt[4];
    if (!dn || dn->kind != AK_DICT) return;
    for (int k = 0; k < 4; k++) {
      const Attr *a = ir_dict_field(dn, names[k]);
      cnt[k] = a ? ir_attr_i64s(L->c, a, &dims[k]) : 0;
      if (cnt[k] < 0) return;
    }
    if (cnt[0] != cnt[1]) return;
    if (d < cnt[0]) {
      dim_leaves(s, op->operands[0], (int)dims[0][d], cf);
      dim_leaves(s, op->operands[1], (int)dims[1][d], cf);
      return;
    }
    for (int side = 0, j = cnt[0]; side < 2; side++) {
      const Value *o = op->operands[side];
      for (int k = 0; k < o->type.rank; k++) {
        if ((cnt[side] && index_in(dims[side], cnt[side], k) >= 0) ||
            (cnt[2 + side] && index_in(dims[2 + side], cnt[2 + side], k) >= 0))
          continue;
        if (j++ == d) dim_leaves(s, o, k, cf);
      }
    }
    return;
  }
  case OP_CALL: case OP_CALL_SHORT: {
    CallFrame frame;
    const Value *r = callee_result(L, op, v, &frame, cf);
    if (r) dim_leaves(s, r, d, &frame);
    return;
  }
  default:
    return;
  }
}

/* dynamic_gather: for each offset dimension whose size is only known at
 * run time, decide whether it is provably the operand's whole dimension;
 * sets post[d] for those that are not (postslice cuts them). */
static void runtime_sizes(Lower *L, const GatherPlan *p, const Value *operand,
                          const Value *sizes, bool *post) {
  for (int d = 0; d < p->R; d++) {
    post[d] = false;
    if (p->size[d] != DIM_DYN || p->col[d] >= 0 || p->role[d] != ROLE_OFFSET) continue;
    DimSearch want = {.L = L, .budget = 256};
    elem_leaves(&want, sizes, d, NULL);
    DimSearch have = {.L = L, .budget = 4096, .targets = want.leaf, .n_targets = want.n};
    if (want.n) dim_leaves(&have, operand, d, NULL);
    post[d] = !have.hit;
  }
}

/* Cuts the result axes of the dimensions marked in post to their run-time
 * slice size. */
static OValue *postslice(Lower *L, const GatherPlan *p, OValue *y, OValue *sizes_rt,
                         const bool *post) {
  int64_t axes[MAX_RANK], starts[MAX_RANK];
  OValue *ends[MAX_RANK];
  int m = 0;
  for (int r = 0; r < p->Rr; r++) {
    if (p->res[r] < LBL_D(0) || !post[p->res[r] - LBL_D(0)]) continue;
    int64_t d = p->res[r] - LBL_D(0);
    ends[m] = lw_op2(L, "Gather", sizes_rt, lw_const_i64s(L, 1, &d));
    axes[m] = r;
    starts[m++] = 0;
  }
  if (m == 0) return y;
  OValue *in[4] = {y, lw_const_i64s(L, m, starts), vector_of(L, ends, m),
                   lw_const_i64s(L, m, axes)};
  return lw_node(L, "Slice", 4, in, 1)->outputs[0];
}

/* Gather(axis a): one collapsed indexed axis, no batching. */
static OValue *gather_by_axis(Lower *L, const GatherPlan *p, OValue *x, const int64_t *DD) {
  int a = (int)p->map[0];
  int64_t hi = p->D[a] == DIM_DYN ? DIM_DYN : p->D[a] - 1;
  bool in_range = starts_in_range(L, p->st.S, &hi, 1);
  OValue *idx = single_index(L, &p->st, x, p->D[a], a, in_range);
  ONode *n = lw_node(L, "Gather", 2, (OValue *[]){x, idx}, 1);
  og_attr_int(L->c, n, "axis", a);
  int lab[MAX_AXES], k = 0;
  int64_t dims[MAX_AXES];
  for (int d = 0; d < a; d++, k++) {
    lab[k] = p->role[d] == ROLE_COLLAPSED ? LBL_DROP : LBL_D(d);
    dims[k] = DD[d];
  }
  for (int i = 0; i < p->st.nbs; i++, k++) {
    lab[k] = LBL_S(p->st.sax[i]);
    dims[k] = p->st.S->type.dims[p->st.sax[i]];
  }
  for (int d = a + 1; d < p->R; d++, k++) {
    lab[k] = p->role[d] == ROLE_COLLAPSED ? LBL_DROP : LBL_D(d);
    dims[k] = DD[d];
  }
  OValue *y = lw_typed(L, n->outputs[0], x->type.et, k, dims);
  return to_result(L, y, k, lab, p->Rr, p->res);
}

/* GatherElements: take_along_axis, where every other axis is batching and
 * the batch axes of the indices line up with the operand's. */
static bool elements_form(const GatherPlan *p) {
  if (p->n_map != 1 || p->n_off != 0 || p->st.nbs != p->R) return false;
  int a = (int)p->map[0];
  if (p->role[a] != ROLE_COLLAPSED) return false;
  for (int d = 0; d < p->R; d++) {
    if (d == a) {
      if (index_in(p->sb, p->n_sb, p->st.sax[d]) >= 0) return false;
    } else if (p->role[d] != ROLE_BATCH || p->pair[d] != p->st.sax[d]) {
      return false;
    }
  }
  return true;
}

static OValue *gather_elements(Lower *L, const GatherPlan *p, OValue *x) {
  int a = (int)p->map[0];
  int64_t hi = p->D[a] == DIM_DYN ? DIM_DYN : p->D[a] - 1;
  bool in_range = starts_in_range(L, p->st.S, &hi, 1);
  OValue *idx = single_index(L, &p->st, x, p->D[a], a, in_range);
  ONode *n = lw_node(L, "GatherElements", 2, (OValue *[]){x, idx}, 1);
  og_attr_int(L->c, n, "axis", a);
  return n->outputs[0];
}

/* The general case: GatherND over an index grid. */
static OValue *gather_nd(Lower *L, const GatherPlan *p, OValue *x0, OValue *x, const int64_t *DD) {
  const Starts *st = &p->st;
  /* GatherND's batch_dims: when the batching axes are the leading operand
   * axes, paired in order, and an indexed axis remains after them. */
  int b = 0;
  if (p->n_map > 0) {
    while (b < p->n_ob && p->ob[b] == b) b++;
    if (b < p->n_ob) b = 0;
  }
  int last = -1;
  for (int d = 0; d < p->R; d++)
    if (p->col[d] >= 0 || (p->role[d] == ROLE_BATCH && d >= b)) last = d;
  int pre = last + 1 > b + 1 ? last + 1 : b + 1; /* data axes the index addresses */

  /* Grid axes: the b paired batch axes first, then, in result order, the
   * other batch axes of S and the windows of offset axes in the prefix. */
  Grid *g = arena_alloc(L->c->arena, sizeof *g);
  g->nbs = st->nbs;
  g->n_map = p->n_map;
  int lab[MAX_AXES];
  int pos_of_s[MAX_RANK + 1];
  for (int i = 0; i <= MAX_RANK; i++) pos_of_s[i] = -1;
  OValue *S = lw_get(L, st->S);
  for (int i = 0; i < b; i++) {
    int s = (int)p->sb[i];
    pos_of_s[s] = g->n;
    lab[g->n] = LBL_S(s);
    g->n++;
  }
  for (int r = 0; r < p->Rr; r++) {
    int l = p->res[r];
    if (l < LBL_D(0)) {
      if (pos_of_s[l] < 0) {
        pos_of_s[l] = g->n;
        lab[g->n++] = l;
      }
    } else if (l - LBL_D(0) < pre) {
      lab[g->n++] = l;
    }
  }
  for (int i = 0; i < g->n; i++) {
    g->s_of[i] = -1;
    if (lab[i] < LBL_D(0)) {
      int s = lab[i];
      for (int k = 0; k < st->nbs; k++)
        if (st->sax[k] == s) g->s_of[i] = k;
      g->size[i] = st->S->type.dims[s];
      g->src[i] = S;
      g->src_axis[i] = s;
    } else {
      int d = lab[i] - LBL_D(0);
      g->size[i] = p->col[d] >= 0 ? p->size[d] : DD[d];
      g->src[i] = x;
      g->src_axis[i] = d;
    }
  }
  for (int k = 0; k < p->n_map; k++) {
    int d = (int)p->map[k];
    g->win[k] = p->size[d];
    g->win_axis[k] = -1;
    if (p->role[d] != ROLE_OFFSET) continue;
    if (p->size[d] == DIM_DYN) {
      lw_unsupported(L, "a gather window of run-time size on an indexed dimension");
      return NULL;
    }
    for (int i = 0; i < g->n; i++)
      if (lab[i] == LBL_D(d)) g->win_axis[k] = i;
  }
  /* The start indices, clamped unless known to be in range. */
  if (p->n_map > 0) {
    int64_t hi[MAX_RANK];
    OValue *hv = upper_bounds(L, x0, p->D, p->map, g->win, p->n_map, hi);
    OValue *s = sprime(L, st);
    g->starts = starts_in_range(L, st->S, hi, p->n_map) ? s : clamp_sprime(L, st, s, hv, hi);
  }
  /* One column per data axis b..pre-1. */
  g->n_cols = 0;
  for (int d = b; d < pre; d++) {
    int c = g->n_cols++;
    if (p->col[d] >= 0) {
      g->col_kind[c] = COL_START;
      g->col_arg[c] = p->col[d];
    } else if (p->role[d] == ROLE_BATCH) {
      g->col_kind[c] = COL_IOTA;
      g->col_arg[c] = pos_of_s[p->pair[d]];
    } else if (p->role[d] == ROLE_OFFSET) {
      g->col_kind[c] = COL_IOTA;
      g->col_arg[c] = -1;
      for (int i = 0; i < g->n; i++)
        if (lab[i] == LBL_D(d)) g->col_arg[c] = i;
    } else {
      g->col_kind[c] = COL_ZERO;
    }
  }
  OValue *index = build_grid(L, g);
  ONode *n = lw_node(L, "GatherND", 2, (OValue *[]){x, index}, 1);
  if (b) og_attr_int(L->c, n, "batch_dims", b);
  int64_t dims[MAX_AXES];
  for (int i = 0; i < g->n; i++) dims[i] = g->size[i];
  int k = g->n;
  for (int d = pre; d < p->R; d++, k++) {
    lab[k] = p->role[d] == ROLE_OFFSET ? LBL_D(d) : LBL_DROP;
    dims[k] = DD[d];
  }
  OValue *y = lw_typed(L, n->outputs[0], x->type.et, k, dims);
  return to_result(L, y, k, lab, p->Rr, p->res);
}

static int gather_common(Lower *L, const Op *op, GatherPlan *p, OValue *sizes_rt) {
  if (check_sizes(L, p) != 0) return -1;
  const Type *tr = &op->results[0]->type;
  if (type_is_static(tr) && type_numel(tr) == 0) {
    Data empty = {DATA_RAW, "", 0};
    lw_bind(L, op->results[0], lw_const_data(L, tr->et, tr->rank, tr->dims, empty));
    return 0;
  }
  OValue *x0 = lw_get(L, op->operands[0]);
  int64_t DD[MAX_RANK];
  bool post[MAX_RANK] = {false};
  if (sizes_rt) runtime_sizes(L, p, op->operands[0], op->operands[2], post);
  OValue *y;
  if (p->n_map == 1 && p->role[p->map[0]] == ROLE_COLLAPSED && p->n_ob == 0) {
    y = gather_by_axis(L, p, preslice(L, p, x0, DD), DD);
  } else if (elements_form(p)) {
    y = gather_elements(L, p, x0);
  } else {
    y = gather_nd(L, p, x0, preslice(L, p, x0, DD), DD);
  }
  if (y && sizes_rt) y = postslice(L, p, y, sizes_rt, post);
  if (!y) return -1;
  og_type_from_hlo(L->c, y, tr);
  lw_bind(L, op->results[0], y);
  return 0;
}

int lower_gather(Lower *L, const Op *op) {
  if (op->n_operands != 2 || op->n_results != 1) return lw_bad_input(L, "expects two operands");
  GatherPlan p;
  if (gather_plan(L, op, &p) != 0 || gather_sizes(L, op, &p) != 0) return -1;
  return gather_common(L, op, &p, NULL);
}

/* dynamic_gather: slice_sizes is an operand.  The sizes of collapsed and
 * batching dimensions are 1; those of offset dimensions are the result's,
 * or the constant operand's, or - for a '?' one - read at run time. */
/* A dynamic_gather that is a slice of run-time size: one start index
 * vector, every result axis a window axis (x[:n], x[:, 1:] on a symbolic
 * axis, as jnp indexing with symbolic shapes emits).  Slice from the
 * clamped starts: start in [0, dim - size], as gather clamps.  Returns 1
 * when the op is not such a slice. */
static int dynamic_gather_slice(Lower *L, const Op *op) {
  const Type *tx = &op->operands[0]->type, *ts = &op->operands[1]->type;
  const Type *tz = &op->operands[2]->type, *tr = &op->results[0]->type;
  int R = tx->rank;
  if (R < 1 || tr->rank != R || ts->rank != 1 || ts->dims[0] < 1 || tz->rank != 1 ||
      tz->dims[0] != R)
    return 1;
  const Attr *dn = ir_op_attr(op, "dimension_numbers");
  int64_t *offset, *collapsed, *map, *ob, *sb;
  int n_off = dims_field(L, dn, "offset_dims", &offset);
  int n_col = dims_field(L, dn, "collapsed_slice_dims", &collapsed);
  int n_map = dims_field(L, dn, "start_index_map", &map);
  int n_ob = dims_field(L, dn, "operand_batching_dims", &ob);
  int n_sb = dims_field(L, dn, "start_indices_batching_dims", &sb);
  if (n_off != R || n_col != 0 || n_ob != 0 || n_sb != 0 || n_map != ts->dims[0] ||
      int_field(dn, "index_vector_dim") != 0 || !good_list(map, n_map, R, false))
    return 1;
  for (int d = 0; d < R; d++)
    if (offset[d] != d) return 1;
  int64_t one = 1, zero = 0, all = R;
  OValue *x = lw_get(L, op->operands[0]);
  OValue *idx = lw_typed(L, lw_cast(L, lw_get(L, op->operands[1]), ET_I64), ET_I64, 1, &ts->dims[0]);
  OValue *sizes = lw_typed(L, lw_cast(L, lw_get(L, op->operands[2]), ET_I64), ET_I64, 1, &all);
  OValue *shape = lw_typed(L, lw_op1(L, "Shape", x), ET_I64, 1, &all);
  OValue *starts[MAX_RANK];
  for (int d = 0; d < R; d++) {
    int k = index_in(map, n_map, d);
    if (k < 0) {
      starts[d] = lw_const_i64s(L, 1, &zero);
      continue;
    }
    int64_t at = k, at1 = k + 1, dd = d, dd1 = d + 1;
    OValue *s = lw_op3(L, "Slice", idx, lw_const_i64s(L, 1, &at), lw_const_i64s(L, 1, &at1));
    OValue *lim = lw_op2(L, "Sub",
                         lw_op3(L, "Slice", shape, lw_const_i64s(L, 1, &dd),
                                lw_const_i64s(L, 1, &dd1)),
                         lw_op3(L, "Slice", sizes, lw_const_i64s(L, 1, &dd),
                                lw_const_i64s(L, 1, &dd1)));
    starts[d] = lw_op2(L, "Max", lw_op2(L, "Min", s, lim), lw_const_i64s(L, 1, &zero));
    lw_typed(L, starts[d], ET_I64, 1, &one);
  }
  ONode *cat = lw_node(L, "Concat", R, starts, 1);
  og_attr_int(L->c, cat, "axis", 0);
  OValue *begin = lw_typed(L, cat->outputs[0], ET_I64, 1, &all);
  OValue *end = lw_typed(L, lw_op2(L, "Add", begin, sizes), ET_I64, 1, &all);
  lw_bind(L, op->results[0], lw_op3(L, "Slice", x, begin, end));
  return 0;
}

int lower_dynamic_gather(Lower *L, const Op *op) {
  if (op->n_operands != 3 || op->n_results != 1) return lw_bad_input(L, "expects three operands");
  if (!lw_const_ints(L, op->operands[2])) { /* run-time slice sizes */
    int rc = dynamic_gather_slice(L, op);
    if (rc != 1) return rc;
  }
  GatherPlan p;
  if (gather_plan(L, op, &p) != 0) return -1;
  const Type *tz = &op->operands[2]->type;
  if (tz->rank != 1 || (tz->dims[0] != DIM_DYN && tz->dims[0] != p.R))
    return lw_bad_input(L, "slice_sizes must have one entry per operand dimension");
  int64_t *cst = lw_const_ints(L, op->operands[2]);
  for (int d = 0; d < p.R; d++) p.size[d] = p.role[d] == ROLE_OFFSET ? DIM_DYN : 1;
  for (int r = 0; r < p.Rr; r++)
    if (p.res[r] >= LBL_D(0)) p.size[p.res[r] - LBL_D(0)] = p.RD[r];
  if (cst)
    for (int d = 0; d < p.R; d++) p.size[d] = cst[d];
  OValue *sizes = lw_cast(L, lw_get(L, op->operands[2]), ET_I64);
  int64_t nr = p.R;
  return gather_common(L, op, &p, lw_typed(L, sizes, ET_I64, 1, &nr));
}

/* ---- scatter ------------------------------------------------------------ */

typedef enum Reduction { RED_NONE, RED_ADD, RED_SUB, RED_MUL, RED_MAX, RED_MIN } Reduction;

/* Recognises the update computation: returns the update (replace), or one
 * binary op of the current value and the update. */
static int scatter_reduction(Lower *L, const Op *op, Reduction *red) {
  if (op->n_regions != 1 || op->regions[0]->n_blocks != 1)
    return lw_bad_input(L, "expects one update computation");
  const Block *b = op->regions[0]->blocks[0];
  if (b->n_args != 2 || b->n_ops < 1) return lw_bad_input(L, "malformed update computation");
  const Op *ret = b->ops[b->n_ops - 1];
  if (ret->n_operands != 1) return lw_bad_input(L, "malformed update computation");
  const Value *cur = b->args[0], *upd = b->args[1], *v = ret->operands[0];
  if (v == upd && b->n_ops == 1) {
    *red = RED_NONE;
    return 0;
  }
  const Op *f = v->def;
  if (b->n_ops == 2 && f && f == b->ops[0] && f->n_operands == 2) {
    const Value *a0 = f->operands[0], *a1 = f->operands[1];
    bool both = (a0 == cur && a1 == upd) || (a0 == upd && a1 == cur);
    bool is_bool = cur->type.et == ET_BOOL;
    switch (f->kind) {
    case OP_ADD: if (both) { *red = RED_ADD; return 0; } break;
    case OP_MULTIPLY: if (both) { *red = RED_MUL; return 0; } break;
    case OP_MAXIMUM: if (both) { *red = RED_MAX; return 0; } break;
    case OP_MINIMUM: if (both) { *red = RED_MIN; return 0; } break;
    case OP_OR: if (both && is_bool) { *red = RED_MAX; return 0; } break;
    case OP_AND: if (both && is_bool) { *red = RED_MIN; return 0; } break;
    case OP_SUBTRACT: if (a0 == cur && a1 == upd) { *red = RED_SUB; return 0; } break;
    default: break;
    }
  }
  return lw_unsupported(L, "the update computation is not a replacement, add, subtract, "
                           "multiply, max or min of the current value and the update");
}

/* The element type the ScatterND runs in: ORT's reductions lack f16/bf16
 * and bool, and its Where (for dropped windows) lacks small integers. */
static ElemType scatter_type(ElemType et, Reduction red) {
  if (red == RED_NONE) return et;
  switch (et) {
  case ET_F16: case ET_BF16: return ET_F32;
  case ET_BOOL: return ET_U8;
  case ET_I8: case ET_I16: case ET_U16: return ET_I32;
  case ET_U32: case ET_U64: return ET_I64;
  default: return et;
  }
}

/* An int64 scalar constant (INT64_MAX is not a double). */
static OValue *const_i64_scalar(Lower *L, int64_t v) {
  int64_t *m = arena_alloc(L->c->arena, sizeof *m);
  *m = v;
  Data d = {DATA_RAW, m, sizeof *m};
  return lw_const_data(L, ET_I64, 0, NULL, d);
}

/* The update that leaves the current value as it is, in the scatter's
 * computation type (see scatter_type). */
static OValue *neutral(Lower *L, Reduction red, ElemType et) {
  bool fl = et_is_float(et);
  switch (red) {
  case RED_ADD: case RED_SUB: return lw_const_scalar(L, et, fl ? -0.0 : 0.0);
  case RED_MUL: return lw_const_scalar(L, et, 1.0);
  case RED_MAX:
    if (fl) return lw_const_scalar(L, et, -HUGE_VAL);
    if (et == ET_I64) return const_i64_scalar(L, INT64_MIN);
    return lw_const_scalar(L, et, et == ET_I32 ? (double)INT32_MIN : 0.0);
  case RED_MIN:
    if (fl) return lw_const_scalar(L, et, HUGE_VAL);
    if (et == ET_I64) return const_i64_scalar(L, INT64_MAX);
    return lw_const_scalar(L, et, et == ET_I32 ? (double)INT32_MAX : 255.0);
  default: return NULL;
  }
}

int lower_scatter(Lower *L, const Op *op) {
  if (op->n_results != 1)
    return lw_unsupported(L, "a scatter of %d operands at once (only one is supported)",
                          op->n_results);
  if (op->n_operands != 3) return lw_bad_input(L, "expects three operands");
  Reduction red = RED_NONE;
  if (scatter_reduction(L, op, &red) != 0) return -1;
  const Attr *dn = ir_op_attr(op, "scatter_dimension_numbers");
  if (!dn || dn->kind != AK_DICT) return lw_bad_input(L, "missing scatter_dimension_numbers");
  const Type *tx = &op->operands[0]->type, *ts = &op->operands[1]->type,
             *tu = &op->operands[2]->type;
  if (tx->kind != TK_TENSOR || ts->kind != TK_TENSOR || tu->kind != TK_TENSOR)
    return lw_bad_input(L, "expects tensors");
  int64_t *uwd, *iwd, *ib, *sib, *map;
  int n_uwd, n_iwd, n_ib, n_sib, n_map;
  if ((n_uwd = dims_field(L, dn, "update_window_dims", &uwd)) < 0 ||
      (n_iwd = dims_field(L, dn, "inserted_window_dims", &iwd)) < 0 ||
      (n_ib = dims_field(L, dn, "input_batching_dims", &ib)) < 0 ||
      (n_sib = dims_field(L, dn, "scatter_indices_batching_dims", &sib)) < 0 ||
      (n_map = dims_field(L, dn, "scatter_dims_to_operand_dims", &map)) < 0)
    return -1;
  int R = tx->rank, Rs = ts->rank, Ru = tu->rank;
  const int64_t *D = tx->dims, *UD = tu->dims;
  int64_t ivd = int_field(dn, "index_vector_dim");
  if (ivd < 0 || ivd > Rs) return lw_bad_input(L, "index_vector_dim out of range");
  int64_t vec = ivd < Rs ? ts->dims[ivd] : 1;
  int nbs = Rs - (ivd < Rs);
  if ((vec != DIM_DYN && vec != n_map) || !good_list(uwd, n_uwd, Ru, true) ||
      !good_list(iwd, n_iwd, R, true) || !good_list(ib, n_ib, R, true) ||
      !good_list(map, n_map, R, false) || !good_list(sib, n_sib, Rs, false) ||
      n_sib != n_ib || index_in(sib, n_sib, ivd) >= 0 || n_uwd + n_iwd + n_ib != R ||
      Ru != nbs + n_uwd)
    return lw_bad_input(L, "inconsistent dimension numbers");

  Starts st;
  starts_init(L, &st, op->operands[1], (int)ivd, n_map);
  /* Operand dims: inserted (window 1), batching, or window dims that take
   * the update's window axes in order. */
  int role[MAX_RANK], col[MAX_RANK], uaxis[MAX_RANK];
  int64_t w[MAX_RANK];
  int usc[MAX_RANK], n_usc = 0; /* update scatter axes, paired with st.sax */
  for (int a = 0; a < Ru; a++)
    if (index_in(uwd, n_uwd, a) < 0) usc[n_usc++] = a;
  /* The update's scatter axes are the indices' batch axes (the grid below
   * walks the one and reads rows of the other). */
  for (int i = 0; i < n_usc && i < st.nbs; i++) {
    int64_t a = UD[usc[i]], b = ts->dims[st.sax[i]];
    if (a != DIM_DYN && b != DIM_DYN && a != b)
      return lw_bad_input(L, "the updates' scatter dimensions do not match the indices' batch "
                          "dimensions");
  }
  for (int d = 0, j = 0; d < R; d++) {
    col[d] = index_in(map, n_map, d);
    uaxis[d] = -1;
    w[d] = 1;
    if (index_in(iwd, n_iwd, d) >= 0) {
      if (index_in(ib, n_ib, d) >= 0) return lw_bad_input(L, "a dimension both inserted and batching");
      role[d] = ROLE_COLLAPSED;
    } else if (index_in(ib, n_ib, d) >= 0) {
      if (col[d] >= 0) return lw_bad_input(L, "a batching dimension in scatter_dims_to_operand_dims");
      role[d] = ROLE_BATCH;
      int s = (int)sib[index_in(ib, n_ib, d)];
      for (int i = 0; i < nbs; i++)
        if (st.sax[i] == s) uaxis[d] = usc[i];
    } else {
      role[d] = ROLE_OFFSET;
      uaxis[d] = (int)uwd[j++];
      w[d] = UD[uaxis[d]];
      if (w[d] != DIM_DYN && D[d] != DIM_DYN && w[d] > D[d])
        return lw_bad_input(L, "an update window larger than the operand");
    }
  }
  const Type *tr = &op->results[0]->type;
  OValue *x = lw_get(L, op->operands[0]), *u = lw_get(L, op->operands[2]);
  if (type_numel(tu) == 0) { /* nothing to update */
    lw_bind(L, op->results[0], x);
    return 0;
  }
  if (red == RED_MAX || red == RED_MIN) {
    if (L->opset < 18)
      return lw_unsupported(L, "ScatterND reduction max/min needs opset 18 (target %d)", L->opset);
  }

  /* Axes that need an index column: indexed, batching and inserted ones,
   * and windows that do not cover the whole axis.  The rest after the last
   * such axis are taken whole by ScatterND's slices. */
  int pre = 0;
  for (int d = 0; d < R; d++) {
    bool whole = role[d] == ROLE_OFFSET && col[d] < 0 && w[d] != DIM_DYN && w[d] == D[d];
    if (!whole) pre = d + 1;
  }
  if (pre == 0) pre = 1;
  for (int k = 0; k < n_map; k++)
    if (w[map[k]] == DIM_DYN)
      return lw_unsupported(L, "an update window of run-time size on an indexed dimension");

  /* Updates: [grid axes (update order)..., whole axes (operand order)]. */
  Grid *g = arena_alloc(L->c->arena, sizeof *g);
  g->nbs = nbs;
  g->n_map = n_map;
  int64_t uperm[MAX_AXES];
  int ulab[MAX_AXES], n_suffix = 0;
  for (int a = 0; a < Ru; a++) {
    int d = -1;
    for (int e = 0; e < R; e++)
      if (role[e] == ROLE_OFFSET && uaxis[e] == a) d = e;
    if (d >= 0 && d >= pre) continue;
    int i = g->n++;
    uperm[i] = a;
    ulab[i] = d >= 0 ? LBL_D(d) : -1;
    g->size[i] = UD[a];
    g->src[i] = u;
    g->src_axis[i] = a;
    g->s_of[i] = -1;
    if (d < 0)
      for (int k = 0; k < n_usc; k++)
        if (usc[k] == a) g->s_of[i] = k;
  }
  for (int d = pre; d < R; d++) uperm[g->n + n_suffix++] = uaxis[d];
  OValue *ut = transpose(L, u, uperm, Ru);

  /* Window of each start column, and where it lies in the grid. */
  int64_t win[MAX_RANK];
  for (int k = 0; k < n_map; k++) {
    int d = (int)map[k];
    win[k] = g->win[k] = w[d];
    g->win_axis[k] = -1;
    for (int i = 0; i < g->n; i++)
      if (role[d] == ROLE_OFFSET && ulab[i] == LBL_D(d)) g->win_axis[k] = i;
  }
  int64_t hi[MAX_RANK];
  OValue *hv = n_map ? upper_bounds(L, x, D, map, win, n_map, hi) : NULL;
  bool in_range = starts_in_range(L, st.S, hi, n_map);
  if (!in_range && st.cst) {
    in_range = true;
    int64_t n = type_numel(ts);
    for (int64_t e = 0; e < n; e++) {
      int64_t h = hi[e % n_map];
      if (h == DIM_DYN || st.cst[e] < 0 || st.cst[e] > h) in_range = false;
    }
  }

  ElemType et = tx->et, ct = scatter_type(et, red);
  OValue *data = lw_cast(L, x, ct), *upd = lw_cast(L, ut, ct);
  if (red == RED_SUB)
    upd = et_is_unsigned_int(ct) ? lw_op2(L, "Sub", lw_const_scalar(L, ct, 0), upd)
                                 : lw_op1(L, "Neg", upd);
  int64_t pad_w = 0;
  int pad_axis = -1;
  if (n_map > 0) {
    OValue *s = sprime(L, &st);
    int64_t sd[MAX_RANK + 1];
    int sr = sprime_dims(&st, sd);
    if (in_range) {
      g->starts = s;
    } else {
      /* bad[batch..., 1]: some start of the window is out of range. */
      OValue *low = lw_op2(L, "Less", s, lw_const_scalar(L, ET_I64, 0));
      OValue *high = lw_op2(L, "Greater", s, hv);
      OValue *bad = lw_typed(L, lw_op2(L, "Or", low, high), ET_BOOL, sr, sd);
      sd[nbs] = 1;
      if (n_map > 1) {
        int64_t last = nbs;
        OValue *in[2] = {lw_cast(L, bad, ET_I64), lw_const_i64s(L, 1, &last)};
        ONode *rs = lw_node(L, "ReduceSum", 2, in, 1);
        og_attr_int(L->c, rs, "keepdims", 1);
        OValue *cnt = lw_typed(L, rs->outputs[0], ET_I64, sr, sd);
        bad = lw_typed(L, lw_op2(L, "Greater", cnt, lw_const_scalar(L, ET_I64, 0)), ET_BOOL, sr, sd);
      }
      if (red != RED_NONE) {
        /* Clamp, and turn the dropped windows' updates into no-ops. */
        g->starts = clamp_sprime(L, &st, s, hv, hi);
        /* bad over the updates' axes: 1 on window and whole axes.  Its
         * trailing 1 serves as the first of those when no window axis
         * sits among the batch axes. */
        int64_t last = nbs, axes[MAX_AXES];
        int na = 0;
        bool windows = false;
        for (int i = 0; i < g->n; i++)
          if (g->s_of[i] < 0) windows = true;
        OValue *b1 = bad;
        if (windows || n_suffix == 0) {
          b1 = squeeze(L, bad, &last, 1);
          for (int i = 0; i < g->n; i++)
            if (g->s_of[i] < 0) axes[na++] = i;
          for (int i = 0; i < n_suffix; i++) axes[na++] = g->n + i;
        } else {
          for (int i = 1; i < n_suffix; i++) axes[na++] = g->n + i;
        }
        b1 = lw_unsqueeze(L, b1, axes, na);
        upd = lw_op3(L, "Where", b1, neutral(L, red, ct), upd);
      } else {
        /* Send the dropped windows into a padding block after the first
         * indexed axis, removed again after the scatter. */
        pad_axis = (int)map[0];
        pad_w = win[0];
        int64_t *redirect = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)n_map);
        OValue *rv;
        if (D[pad_axis] != DIM_DYN) {
          redirect[0] = D[pad_axis];
          rv = lw_const_i64s(L, n_map, redirect);
        } else {
          OValue *parts[2] = {dim_1d(L, x, DIM_DYN, pad_axis), NULL};
          if (n_map > 1) parts[1] = lw_const_i64s(L, n_map - 1, redirect + 1);
          rv = vector_of(L, parts, n_map > 1 ? 2 : 1);
        }
        sd[nbs] = n_map;
        g->starts = lw_typed(L, lw_op3(L, "Where", bad, rv, s), ET_I64, sr, sd);
        int64_t *pads = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(2 * R));
        pads[R + pad_axis] = pad_w;
        data = lw_op3(L, "Pad", data, lw_const_i64s(L, 2 * R, pads), lw_const_scalar(L, ct, 0));
      }
    }
  }
  /* One column per operand axis 0..pre-1. */
  g->n_cols = 0;
  for (int d = 0; d < pre; d++) {
    int c = g->n_cols++;
    if (col[d] >= 0) {
      g->col_kind[c] = COL_START;
      g->col_arg[c] = col[d];
    } else if (role[d] == ROLE_COLLAPSED) {
      g->col_kind[c] = COL_ZERO;
    } else {
      g->col_kind[c] = COL_IOTA;
      g->col_arg[c] = -1;
      for (int i = 0; i < g->n; i++)
        if (uperm[i] == uaxis[d]) g->col_arg[c] = i;
    }
  }
  OValue *index = build_grid(L, g);
  ONode *n = lw_node(L, "ScatterND", 3, (OValue *[]){data, index, upd}, 1);
  static const char *const names[] = {"none", "add", "add", "mul", "max", "min"};
  if (red != RED_NONE) og_attr_string(L->c, n, "reduction", names[red]);
  OValue *y = n->outputs[0];
  if (pad_axis >= 0) {
    int64_t zero = 0, end = -pad_w, axis = pad_axis;
    OValue *in[4] = {y, lw_const_i64s(L, 1, &zero), lw_const_i64s(L, 1, &end),
                     lw_const_i64s(L, 1, &axis)};
    y = lw_node(L, "Slice", 4, in, 1)->outputs[0];
  }
  y = lw_typed(L, y, ct, R, D);
  y = lw_cast(L, y, et);
  og_type_from_hlo(L->c, y, tr);
  lw_bind(L, op->results[0], y);
  return 0;
}
