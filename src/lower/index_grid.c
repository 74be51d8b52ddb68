/* index_grid.c - what gather.c and scatter.c share: the dimension-number
 * lists, the start indices (read, made constant where known, clamped) and
 * the index grid GatherND and ScatterND address the data with.
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
 * Gather clamps each start index to [0, dim - slice_size] (spec and XLA
 * agree): ix_clamp_sprime Clips the indices, at conversion time when they
 * are constants, not at all when the HLO already bounds them
 * (ix_starts_in_range).  Scatter's rule differs: see scatter.c.
 */
#include "lower/index_grid.h"

#include <string.h>

/* ---- small builders ---------------------------------------------------- */

/* The dims of an OValue's type as an int64 array (DIM_DYN when unknown);
 * returns its rank, or -1 when the rank is unknown. */
static int dims_of(const OValue *v, int64_t *dims) {
  if (v->type.rank < 0) return -1;
  for (int i = 0; i < v->type.rank; i++) dims[i] = v->type.dims[i].value;
  return v->type.rank;
}

OValue *ix_squeeze(Lower *L, OValue *x, const int64_t *axes, int n) {
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

OValue *ix_transpose(Lower *L, OValue *x, const int64_t *perm, int rank) {
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
OValue *ix_dim_1d(Lower *L, OValue *x, int64_t static_size, int axis) {
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
OValue *ix_vector_of(Lower *L, OValue **parts, int n) {
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
int ix_dims_field(Lower *L, const Attr *dict, const char *name, int64_t **out) {
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

int64_t ix_int_field(const Attr *dict, const char *name) {
  int64_t v = 0;
  const Attr *a = ir_dict_field(dict, name);
  if (a && !ir_attr_int(a, &v)) return -1;
  return v; /* absent: 0, the printer's default */
}

int ix_index_in(const int64_t *v, int n, int64_t x) {
  for (int i = 0; i < n; i++)
    if (v[i] == x) return i;
  return -1;
}

/* Every entry in [0, limit), no repeats, ascending if `sorted`. */
bool ix_good_list(const int64_t *v, int n, int64_t limit, bool sorted) {
  for (int i = 0; i < n; i++) {
    if (v[i] < 0 || v[i] >= limit) return false;
    if (ix_index_in(v, i, v[i]) >= 0) return false;
    if (sorted && i > 0 && v[i] < v[i - 1]) return false;
  }
  return true;
}

/* True when every start index is known to lie in [0, hi[k]] for its
 * column k (hi static; DIM_DYN entries make it unknowable). */
bool ix_starts_in_range(Lower *L, const Value *S, const int64_t *hi, int n_map) {
  int64_t lo, up, min_hi = INT64_MAX;
  for (int k = 0; k < n_map; k++) {
    if (hi[k] == DIM_DYN) return false;
    if (hi[k] < min_hi) min_hi = hi[k];
  }
  if (n_map == 0) return true;
  return lw_int_range(L, S, &lo, &up) && lo >= 0 && up <= min_hi;
}

/* ---- start indices ------------------------------------------------------ */


void ix_starts_init(Lower *L, Starts *st, const Value *S, int ivd, int n_map) {
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
  if (S->type.et == ET_U64) { /* a copy: lw_const_ints may share its array */
    int64_t *copy = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(n ? n : 1));
    if (n) memcpy(copy, raw, sizeof(int64_t) * (size_t)n);
    ix_unsigned_index_consts(copy, n, ET_U64);
    raw = copy;
  }
  if (ivd >= st->Rs - 1) {
    st->cst = raw;
    return;
  }
  /* Row-major walk over S' = ix_transpose(S) with ivd moved last. */
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
int ix_sprime_dims(const Starts *st, int64_t *dims) {
  for (int i = 0; i < st->nbs; i++) dims[i] = st->S->type.dims[st->sax[i]];
  dims[st->nbs] = st->n_map;
  return st->nbs + 1;
}

OValue *ix_index_i64(Lower *L, OValue *v, ElemType et) {
  OValue *s = lw_cast(L, v, ET_I64);
  if (et != ET_U64) return s;
  OValue *wrapped = lw_op2(L, "Less", s, lw_const_scalar(L, ET_I64, 0));
  og_set_type(L->c, wrapped, ET_BOOL, s->type.rank, NULL);
  if (s->type.rank > 0)
    memcpy(wrapped->type.dims, s->type.dims, sizeof(ODim) * (size_t)s->type.rank);
  int64_t *top = arena_alloc(L->c->arena, sizeof(int64_t));
  *top = INT64_MAX;
  OValue *huge = lw_const_data(L, ET_I64, 0, NULL, (Data){DATA_RAW, top, sizeof(int64_t)});
  OValue *r = lw_op3(L, "Where", wrapped, huge, s);
  r->type = s->type;
  return r;
}

void ix_unsigned_index_consts(int64_t *v, int64_t n, ElemType et) {
  if (et != ET_U64) return;
  for (int64_t i = 0; i < n; i++)
    if (v[i] < 0) v[i] = INT64_MAX;
}

/* S' as an int64 graph value: the index vector last. */
OValue *ix_sprime(Lower *L, const Starts *st) {
  int64_t dims[MAX_RANK + 1];
  int r = ix_sprime_dims(st, dims);
  if (st->cst) return const_i64_shaped(L, r, dims, st->cst, type_numel(&st->S->type));
  OValue *s = ix_index_i64(L, lw_get(L, st->S), st->S->type.et);
  if (st->ivd == st->Rs) {
    int64_t axis = st->Rs;
    s = lw_unsqueeze(L, s, &axis, 1);
  } else if (st->ivd != st->Rs - 1) {
    int64_t perm[MAX_RANK];
    for (int i = 0; i < st->nbs; i++) perm[i] = st->sax[i];
    perm[st->nbs] = st->ivd;
    s = ix_transpose(L, s, perm, st->Rs);
  }
  return lw_typed(L, s, ET_I64, r, dims);
}

/* The int64 [n_map] upper bounds dim - window per column: a constant when
 * every bound is static (then also in hi_static), else computed. */
OValue *ix_upper_bounds(Lower *L, OValue *x, const int64_t *D, const int64_t *K,
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
    OValue *d = ix_dim_1d(L, x, DIM_DYN, (int)K[k]);
    parts[k] = lw_typed(L, lw_op2(L, "Sub", d, lw_const_i64s(L, 1, &win[k])), ET_I64, 1, &one);
  }
  return ix_vector_of(L, parts, n_map);
}

/* Clamps S' column-wise to [0, hi]. */
OValue *ix_clamp_sprime(Lower *L, const Starts *st, OValue *s, OValue *hi,
                        const int64_t *hi_static) {
  int64_t dims[MAX_RANK + 1];
  int r = ix_sprime_dims(st, dims);
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
OValue *ix_single_index(Lower *L, const Starts *st, OValue *x, int64_t D_axis, int axis,
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
  OValue *s = et == ET_I32 ? lw_get(L, src) : ix_index_i64(L, lw_get(L, src), src->type.et);
  if (src == st->S && st->ivd < st->Rs) {
    int64_t a = st->ivd;
    s = ix_squeeze(L, s, &a, 1);
  }
  s = lw_typed(L, s, et, st->nbs, dims);
  if (in_range) return s;
  OValue *h;
  if (hi != DIM_DYN) {
    h = lw_const_scalar(L, et, (double)hi);
  } else {
    int64_t one = 1;
    OValue *d = lw_typed(L, lw_op2(L, "Sub", ix_dim_1d(L, x, DIM_DYN, axis), lw_const_i64s(L, 1, &one)),
                      ET_I64, 1, &one);
    h = lw_cast(L, to_scalar(L, d), et);
  }
  return lw_typed(L, lw_op3(L, "Clip", s, lw_const_scalar(L, et, 0), h), et, st->nbs, dims);
}

/* ---- the index grid ----------------------------------------------------- */


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
  for (int i = 0; i < g->n; i++) parts[i] = ix_dim_1d(L, g->src[i], g->size[i], g->src_axis[i]);
  parts[g->n] = lw_const_i64s(L, 1, &dims[g->n]);
  return ix_vector_of(L, parts, g->n + 1);
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
  OValue *len = to_scalar(L, ix_dim_1d(L, g->src[axis], DIM_DYN, g->src_axis[axis]));
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
OValue *ix_build_grid(Lower *L, const Grid *g) {
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
    kp = ix_transpose(L, g->starts, perm, g->nbs + 1);
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
OValue *ix_to_result(Lower *L, OValue *y, int n, const int *lab, int rr, const int *want) {
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
  y = ix_squeeze(L, y, drop, n_drop);
  for (int r = 0; r < rr; r++) {
    perm[r] = -1;
    for (int i = 0; i < n_kept; i++)
      if (kept[i] == want[r]) perm[r] = i;
    if (perm[r] < 0) {
      diag_internal(L->c, __FILE__, __LINE__, "gather/scatter axis bookkeeping");
      return NULL;
    }
  }
  return ix_transpose(L, y, perm, rr);
}
