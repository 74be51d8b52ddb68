/* scatter.c - stablehlo.scatter as ScatterND, from the index grid of
 * index_grid.c, with the update computation recognised as a reduction
 * (replace, add, mul, max, min).
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
 *   - with a reduction (integer add; mul, max, min) the indices are clamped
 *     and the dropped windows' updates replaced by the reduction's neutral
 *     element (0; 1; -inf; +inf);
 *   - plain replacement has no neutral element, and a float sum's, -0.0,
 *     does not survive onnxruntime's Where (see neutral_lost), so the data
 *     gets a padding
 *     block on the first indexed axis, dropped windows are sent there, and
 *     a Slice removes it again (two copies of the data more: a scatter whose
 *     indices are constants or clamped in the HLO, mode="clip", needs none).
 * Duplicate indices in a replacing scatter are non-deterministic in XLA
 * and in ONNX alike (on the CPU both keep the last write in practice); with
 * a reduction they are summed (etc.) in both.
 *
 */
#include "lower/index_grid.h"

#include <math.h>
#include <string.h>

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

/* ---- read: the op's attributes, checked --------------------------------- */

/* What lower_scatter reads from the op: the operand x, the start indices S
 * and the updates u, their dimension numbers, and what each operand axis is
 * to the scatter. */
typedef struct ScatterOp {
  Reduction red;
  const Type *tx, *ts, *tu;
  int R, Ru;                 /* ranks of x and u */
  const int64_t *D, *UD;     /* dims of x and u */
  int nbs;                   /* batch axes of S (all but index_vector_dim) */
  int64_t *uwd, *iwd, *ib, *sib, *map; /* the dimension-number lists (see scatter_read) */
  int n_uwd, n_iwd, n_ib, n_sib, n_map;
  int usc[MAX_RANK], n_usc;  /* update scatter axes, paired with st.sax */
  /* Per operand axis d: */
  int role[MAX_RANK];        /* ROLE_OFFSET, ROLE_COLLAPSED (inserted) or ROLE_BATCH */
  int col[MAX_RANK];         /* the start column that indexes it, or -1 */
  int uaxis[MAX_RANK];       /* the update axis that walks it, or -1 */
  int64_t w[MAX_RANK];       /* its window length (1 unless ROLE_OFFSET) */
  Starts st;
} ScatterOp;

/* Operand dims: inserted (window 1), batching, or window dims that take
 * the update's window axes in order. */
static int scatter_roles(Lower *L, ScatterOp *s) {
  s->n_usc = 0;
  for (int a = 0; a < s->Ru; a++)
    if (ix_index_in(s->uwd, s->n_uwd, a) < 0) s->usc[s->n_usc++] = a;
  /* The update's scatter axes are the indices' batch axes (the grid below
   * walks the one and reads rows of the other). */
  for (int i = 0; i < s->n_usc && i < s->st.nbs; i++) {
    int64_t a = s->UD[s->usc[i]], b = s->ts->dims[s->st.sax[i]];
    if (a != DIM_DYN && b != DIM_DYN && a != b)
      return lw_bad_input(L, "the updates' scatter dimensions do not match the indices' batch "
                          "dimensions");
  }
  for (int d = 0, j = 0; d < s->R; d++) {
    s->col[d] = ix_index_in(s->map, s->n_map, d);
    s->uaxis[d] = -1;
    s->w[d] = 1;
    if (ix_index_in(s->iwd, s->n_iwd, d) >= 0) {
      if (ix_index_in(s->ib, s->n_ib, d) >= 0)
        return lw_bad_input(L, "a dimension both inserted and batching");
      s->role[d] = ROLE_COLLAPSED;
    } else if (ix_index_in(s->ib, s->n_ib, d) >= 0) {
      if (s->col[d] >= 0)
        return lw_bad_input(L, "a batching dimension in scatter_dims_to_operand_dims");
      s->role[d] = ROLE_BATCH;
      int sa = (int)s->sib[ix_index_in(s->ib, s->n_ib, d)];
      for (int i = 0; i < s->nbs; i++)
        if (s->st.sax[i] == sa) s->uaxis[d] = s->usc[i];
    } else {
      s->role[d] = ROLE_OFFSET;
      s->uaxis[d] = (int)s->uwd[j++];
      s->w[d] = s->UD[s->uaxis[d]];
      if (s->w[d] != DIM_DYN && s->D[d] != DIM_DYN && s->w[d] > s->D[d])
        return lw_bad_input(L, "an update window larger than the operand");
    }
  }
  return 0;
}

/* Reads the update computation, the types and the dimension numbers, and
 * checks they are consistent: 0, or -1 after reporting the op. */
static int scatter_read(Lower *L, const Op *op, ScatterOp *s) {
  if (op->n_results != 1)
    return lw_unsupported(L, "a scatter of %d operands at once (only one is supported)",
                          op->n_results);
  if (op->n_operands != 3) return lw_bad_input(L, "expects three operands");
  s->red = RED_NONE;
  if (scatter_reduction(L, op, &s->red) != 0) return -1;
  const Attr *dn = ir_op_attr(op, "scatter_dimension_numbers");
  if (!dn || dn->kind != AK_DICT) return lw_bad_input(L, "missing scatter_dimension_numbers");
  const Type *tx = s->tx = &op->operands[0]->type, *ts = s->ts = &op->operands[1]->type,
             *tu = s->tu = &op->operands[2]->type;
  if (tx->kind != TK_TENSOR || ts->kind != TK_TENSOR || tu->kind != TK_TENSOR)
    return lw_bad_input(L, "expects tensors");
  if ((s->n_uwd = ix_dims_field(L, dn, "update_window_dims", &s->uwd)) < 0 ||
      (s->n_iwd = ix_dims_field(L, dn, "inserted_window_dims", &s->iwd)) < 0 ||
      (s->n_ib = ix_dims_field(L, dn, "input_batching_dims", &s->ib)) < 0 ||
      (s->n_sib = ix_dims_field(L, dn, "scatter_indices_batching_dims", &s->sib)) < 0 ||
      (s->n_map = ix_dims_field(L, dn, "scatter_dims_to_operand_dims", &s->map)) < 0)
    return -1;
  int R = s->R = tx->rank, Rs = ts->rank, Ru = s->Ru = tu->rank;
  s->D = tx->dims;
  s->UD = tu->dims;
  int64_t ivd = ix_int_field(dn, "index_vector_dim");
  if (ivd < 0 || ivd > Rs) return lw_bad_input(L, "index_vector_dim out of range");
  int64_t vec = ivd < Rs ? ts->dims[ivd] : 1;
  s->nbs = Rs - (ivd < Rs);
  if ((vec != DIM_DYN && vec != s->n_map) || !ix_good_list(s->uwd, s->n_uwd, Ru, true) ||
      !ix_good_list(s->iwd, s->n_iwd, R, true) || !ix_good_list(s->ib, s->n_ib, R, true) ||
      !ix_good_list(s->map, s->n_map, R, false) || !ix_good_list(s->sib, s->n_sib, Rs, false) ||
      s->n_sib != s->n_ib || ix_index_in(s->sib, s->n_sib, ivd) >= 0 ||
      s->n_uwd + s->n_iwd + s->n_ib != R || Ru != s->nbs + s->n_uwd)
    return lw_bad_input(L, "inconsistent dimension numbers");
  ix_starts_init(L, &s->st, op->operands[1], (int)ivd, s->n_map);
  return scatter_roles(L, s);
}

/* ---- plan: the index grid and the update's layout ----------------------- */

/* How the scatter is emitted: one ScatterND whose index grid walks the
 * update's axes, the update transposed so that the axes ScatterND's slices
 * take whole come last. */
typedef struct ScatterPlan {
  int pre;                 /* operand axes [0, pre) get an index column */
  int n_suffix;            /* axes taken whole, after the grid axes of the update */
  int64_t uperm[MAX_AXES]; /* the update's transpose: grid axes, then whole axes */
  int64_t win[MAX_RANK];   /* per start column: the window it starts */
  Grid *g;                 /* g->starts is left to scatter_emit */
} ScatterPlan;

static int scatter_plan(Lower *L, const ScatterOp *s, OValue *u, ScatterPlan *p) {
  /* Axes that need an index column: indexed, batching and inserted ones,
   * and windows that do not cover the whole axis.  The rest after the last
   * such axis are taken whole by ScatterND's slices. */
  int pre = 0;
  for (int d = 0; d < s->R; d++) {
    bool whole = s->role[d] == ROLE_OFFSET && s->col[d] < 0 && s->w[d] != DIM_DYN &&
                 s->w[d] == s->D[d];
    if (!whole) pre = d + 1;
  }
  if (pre == 0) pre = 1;
  p->pre = pre;
  for (int k = 0; k < s->n_map; k++)
    if (s->w[s->map[k]] == DIM_DYN)
      return lw_unsupported(L, "an update window of run-time size on an indexed dimension");

  /* Updates: [grid axes (update order)..., whole axes (operand order)]. */
  Grid *g = p->g = arena_alloc(L->c->arena, sizeof *g);
  g->nbs = s->nbs;
  g->n_map = s->n_map;
  int ulab[MAX_AXES];
  p->n_suffix = 0;
  for (int a = 0; a < s->Ru; a++) {
    int d = -1;
    for (int e = 0; e < s->R; e++)
      if (s->role[e] == ROLE_OFFSET && s->uaxis[e] == a) d = e;
    if (d >= 0 && d >= pre) continue;
    int i = g->n++;
    p->uperm[i] = a;
    ulab[i] = d >= 0 ? LBL_D(d) : -1;
    g->size[i] = s->UD[a];
    g->src[i] = u;
    g->src_axis[i] = a;
    g->s_of[i] = -1;
    if (d < 0)
      for (int k = 0; k < s->n_usc; k++)
        if (s->usc[k] == a) g->s_of[i] = k;
  }
  for (int d = pre; d < s->R; d++) p->uperm[g->n + p->n_suffix++] = s->uaxis[d];

  /* Window of each start column, and where it lies in the grid. */
  for (int k = 0; k < s->n_map; k++) {
    int d = (int)s->map[k];
    p->win[k] = g->win[k] = s->w[d];
    g->win_axis[k] = -1;
    for (int i = 0; i < g->n; i++)
      if (s->role[d] == ROLE_OFFSET && ulab[i] == LBL_D(d)) g->win_axis[k] = i;
  }
  /* One column per operand axis 0..pre-1. */
  g->n_cols = 0;
  for (int d = 0; d < pre; d++) {
    int c = g->n_cols++;
    if (s->col[d] >= 0) {
      g->col_kind[c] = COL_START;
      g->col_arg[c] = s->col[d];
    } else if (s->role[d] == ROLE_COLLAPSED) {
      g->col_kind[c] = COL_ZERO;
    } else {
      g->col_kind[c] = COL_IOTA;
      g->col_arg[c] = -1;
      for (int i = 0; i < g->n; i++)
        if (p->uperm[i] == s->uaxis[d]) g->col_arg[c] = i;
    }
  }
  return 0;
}

/* ---- emit --------------------------------------------------------------- */

/* Whether every start lies in [0, hi[k]] for its column k: from the range
 * the HLO states, or from the values when they are constants. */
static bool starts_in_range(Lower *L, const ScatterOp *s, const int64_t *hi) {
  if (ix_starts_in_range(L, s->st.S, hi, s->n_map)) return true;
  if (!s->st.cst) return false;
  int64_t n = type_numel(s->ts);
  for (int64_t e = 0; e < n; e++) {
    int64_t h = hi[e % s->n_map];
    if (h == DIM_DYN || s->st.cst[e] < 0 || s->st.cst[e] > h) return false;
  }
  return true;
}

/* bad[batch..., 1]: some start of the window is out of range, of S' =
 * `starts` against the upper bounds hv. */
static OValue *dropped_windows(Lower *L, const Starts *st, OValue *starts, OValue *hv) {
  int64_t sd[MAX_RANK + 1];
  int sr = ix_sprime_dims(st, sd);
  OValue *low = lw_op2(L, "Less", starts, lw_const_scalar(L, ET_I64, 0));
  OValue *high = lw_op2(L, "Greater", starts, hv);
  OValue *bad = lw_typed(L, lw_op2(L, "Or", low, high), ET_BOOL, sr, sd);
  sd[st->nbs] = 1;
  if (st->n_map > 1) {
    int64_t last = st->nbs;
    OValue *in[2] = {lw_cast(L, bad, ET_I64), lw_const_i64s(L, 1, &last)};
    ONode *rs = lw_node(L, "ReduceSum", 2, in, 1);
    og_attr_int(L->c, rs, "keepdims", 1);
    OValue *cnt = lw_typed(L, rs->outputs[0], ET_I64, sr, sd);
    bad = lw_typed(L, lw_op2(L, "Greater", cnt, lw_const_scalar(L, ET_I64, 0)), ET_BOOL, sr, sd);
  }
  return bad;
}

/* With a reduction: the updates `upd` (type ct) with the dropped windows'
 * ones turned into no-ops; the starts are clamped (into g->starts). */
static OValue *neutralise_dropped(Lower *L, const ScatterOp *s, const ScatterPlan *p,
                                  OValue *bad, OValue *starts, OValue *hv, const int64_t *hi,
                                  ElemType ct, OValue *upd) {
  Grid *g = p->g;
  g->starts = ix_clamp_sprime(L, &s->st, starts, hv, hi);
  /* bad over the updates' axes: 1 on window and whole axes.  Its
   * trailing 1 serves as the first of those when no window axis
   * sits among the batch axes. */
  int64_t last = s->nbs, axes[MAX_AXES];
  int na = 0;
  bool windows = false;
  for (int i = 0; i < g->n; i++)
    if (g->s_of[i] < 0) windows = true;
  OValue *b1 = bad;
  if (windows || p->n_suffix == 0) {
    b1 = ix_squeeze(L, bad, &last, 1);
    for (int i = 0; i < g->n; i++)
      if (g->s_of[i] < 0) axes[na++] = i;
    for (int i = 0; i < p->n_suffix; i++) axes[na++] = g->n + i;
  } else {
    for (int i = 1; i < p->n_suffix; i++) axes[na++] = g->n + i;
  }
  b1 = lw_unsqueeze(L, b1, axes, na);
  return lw_op3(L, "Where", b1, neutral(L, s->red, ct), upd);
}

/* Whether the neutral update of a float sum, -0.0, can come out of
 * onnxruntime's Where as +0.0 (it does when the condition broadcasts), and
 * -0.0 + +0.0 is +0.0: a dropped window would turn the data's -0.0 into
 * +0.0.  Such scatters send the dropped windows to a padding block instead,
 * as a replacing one does. */
static bool neutral_lost(Reduction red, ElemType ct) {
  return et_is_float(ct) && (red == RED_ADD || red == RED_SUB);
}

/* Without one (or for a float sum, see neutral_lost): the data `data`
 * (type ct) with a padding block of the first
 * column's window after its axis, where the dropped windows are sent (into
 * g->starts); scatter_emit removes it again. */
static OValue *redirect_dropped(Lower *L, const ScatterOp *s, const ScatterPlan *p, OValue *x,
                                OValue *bad, OValue *starts, ElemType ct, OValue *data) {
  int n_map = s->n_map, pad_axis = (int)s->map[0];
  int64_t *redirect = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)n_map);
  OValue *rv;
  if (s->D[pad_axis] != DIM_DYN) {
    redirect[0] = s->D[pad_axis];
    rv = lw_const_i64s(L, n_map, redirect);
  } else {
    OValue *parts[2] = {ix_dim_1d(L, x, DIM_DYN, pad_axis), NULL};
    if (n_map > 1) parts[1] = lw_const_i64s(L, n_map - 1, redirect + 1);
    rv = ix_vector_of(L, parts, n_map > 1 ? 2 : 1);
  }
  int64_t sd[MAX_RANK + 1];
  int sr = ix_sprime_dims(&s->st, sd);
  p->g->starts = lw_typed(L, lw_op3(L, "Where", bad, rv, starts), ET_I64, sr, sd);
  int64_t *pads = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(2 * s->R));
  pads[s->R + pad_axis] = p->win[0];
  return lw_op3(L, "Pad", data, lw_const_i64s(L, 2 * s->R, pads), lw_const_scalar(L, ct, 0));
}

/* stablehlo.maximum and minimum propagate NaN; onnxruntime's ScatterND max
 * and min do not (a later update or a NaN in the data loses to a number).
 * y (the ScatterND result) gets a NaN wherever the data or an update
 * scattered there is one: a second ScatterND adds the updates' NaNs, and
 * -0.0 elsewhere, to the data's NaNs, and -0.0 elsewhere; adding -0.0
 * leaves every value as it is, -0.0 and infinities included. */
static OValue *propagate_nan(Lower *L, OValue *y, OValue *data, OValue *index, OValue *upd,
                             ElemType ct) {
  OValue *nan = lw_const_scalar(L, ct, NAN), *mzero = lw_const_scalar(L, ct, -0.0);
  OValue *base = lw_op3(L, "Where", lw_op1(L, "IsNaN", data), nan, mzero);
  OValue *flags = lw_op3(L, "Where", lw_op1(L, "IsNaN", upd), nan, mzero);
  ONode *n = lw_node(L, "ScatterND", 3, (OValue *[]){base, index, flags}, 1);
  og_attr_string(L->c, n, "reduction", "add");
  return lw_op2(L, "Add", y, n->outputs[0]);
}

/* The update in grid order, the start indices (dropped windows taken care
 * of), ScatterND, and its result in the operand's type tr. */
static OValue *scatter_emit(Lower *L, const ScatterOp *s, const ScatterPlan *p, OValue *x,
                            OValue *u, const Type *tr) {
  OValue *ut = ix_transpose(L, u, p->uperm, s->Ru);
  int64_t hi[MAX_RANK];
  OValue *hv = s->n_map ? ix_upper_bounds(L, x, s->D, s->map, p->win, s->n_map, hi) : NULL;
  bool in_range = starts_in_range(L, s, hi);

  ElemType et = s->tx->et, ct = scatter_type(et, s->red);
  OValue *data = lw_cast(L, x, ct), *upd = lw_cast(L, ut, ct);
  /* u64 computes in i64 (see scatter_type): sums and products wrap alike,
   * but max and min compare signed.  Flipping the sign bit maps the
   * unsigned order onto the signed one (and back). */
  bool flip = et == ET_U64 && (s->red == RED_MAX || s->red == RED_MIN);
  if (flip) {
    data = lw_op2(L, "BitwiseXor", data, const_i64_scalar(L, INT64_MIN));
    upd = lw_op2(L, "BitwiseXor", upd, const_i64_scalar(L, INT64_MIN));
  }
  if (s->red == RED_SUB)
    upd = et_is_unsigned_int(ct) ? lw_op2(L, "Sub", lw_const_scalar(L, ct, 0), upd)
                                 : lw_op1(L, "Neg", upd);
  bool padded = false;
  if (s->n_map > 0) {
    OValue *starts = ix_sprime(L, &s->st);
    if (in_range) {
      p->g->starts = starts;
    } else {
      OValue *bad = dropped_windows(L, &s->st, starts, hv);
      if (s->red != RED_NONE && !neutral_lost(s->red, ct)) {
        upd = neutralise_dropped(L, s, p, bad, starts, hv, hi, ct, upd);
      } else {
        data = redirect_dropped(L, s, p, x, bad, starts, ct, data);
        padded = true;
      }
    }
  }
  OValue *index = ix_build_grid(L, p->g);
  ONode *n = lw_node(L, "ScatterND", 3, (OValue *[]){data, index, upd}, 1);
  static const char *const names[] = {"none", "add", "add", "mul", "max", "min"};
  if (s->red != RED_NONE) og_attr_string(L->c, n, "reduction", names[s->red]);
  OValue *y = n->outputs[0];
  if ((s->red == RED_MAX || s->red == RED_MIN) && et_is_float(ct))
    y = propagate_nan(L, y, data, index, upd, ct);
  if (padded) { /* remove the padding block again */
    int64_t zero = 0, end = -p->win[0], axis = s->map[0];
    OValue *in[4] = {y, lw_const_i64s(L, 1, &zero), lw_const_i64s(L, 1, &end),
                     lw_const_i64s(L, 1, &axis)};
    y = lw_node(L, "Slice", 4, in, 1)->outputs[0];
  }
  if (flip) y = lw_op2(L, "BitwiseXor", y, const_i64_scalar(L, INT64_MIN));
  y = lw_typed(L, y, ct, s->R, s->D);
  y = lw_cast(L, y, et);
  og_type_from_hlo(L->c, y, tr);
  return y;
}

int lower_scatter(Lower *L, const Op *op) {
  ScatterOp s;
  if (scatter_read(L, op, &s) != 0) return -1;
  OValue *x = lw_get(L, op->operands[0]), *u = lw_get(L, op->operands[2]);
  if (type_numel(s.tu) == 0) { /* nothing to update */
    lw_bind(L, op->results[0], x);
    return 0;
  }
  if ((s.red == RED_MAX || s.red == RED_MIN) && L->opset < 18)
    return lw_unsupported(L, "ScatterND reduction max/min needs opset 18 (target %d)", L->opset);
  ScatterPlan p;
  if (scatter_plan(L, &s, u, &p) != 0) return -1;
  lw_bind(L, op->results[0], scatter_emit(L, &s, &p, x, u, &op->results[0]->type));
  return 0;
}
