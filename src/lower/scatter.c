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
  if ((n_uwd = ix_dims_field(L, dn, "update_window_dims", &uwd)) < 0 ||
      (n_iwd = ix_dims_field(L, dn, "inserted_window_dims", &iwd)) < 0 ||
      (n_ib = ix_dims_field(L, dn, "input_batching_dims", &ib)) < 0 ||
      (n_sib = ix_dims_field(L, dn, "scatter_indices_batching_dims", &sib)) < 0 ||
      (n_map = ix_dims_field(L, dn, "scatter_dims_to_operand_dims", &map)) < 0)
    return -1;
  int R = tx->rank, Rs = ts->rank, Ru = tu->rank;
  const int64_t *D = tx->dims, *UD = tu->dims;
  int64_t ivd = ix_int_field(dn, "index_vector_dim");
  if (ivd < 0 || ivd > Rs) return lw_bad_input(L, "index_vector_dim out of range");
  int64_t vec = ivd < Rs ? ts->dims[ivd] : 1;
  int nbs = Rs - (ivd < Rs);
  if ((vec != DIM_DYN && vec != n_map) || !ix_good_list(uwd, n_uwd, Ru, true) ||
      !ix_good_list(iwd, n_iwd, R, true) || !ix_good_list(ib, n_ib, R, true) ||
      !ix_good_list(map, n_map, R, false) || !ix_good_list(sib, n_sib, Rs, false) ||
      n_sib != n_ib || ix_index_in(sib, n_sib, ivd) >= 0 || n_uwd + n_iwd + n_ib != R ||
      Ru != nbs + n_uwd)
    return lw_bad_input(L, "inconsistent dimension numbers");

  Starts st;
  ix_starts_init(L, &st, op->operands[1], (int)ivd, n_map);
  /* Operand dims: inserted (window 1), batching, or window dims that take
   * the update's window axes in order. */
  int role[MAX_RANK], col[MAX_RANK], uaxis[MAX_RANK];
  int64_t w[MAX_RANK];
  int usc[MAX_RANK], n_usc = 0; /* update scatter axes, paired with st.sax */
  for (int a = 0; a < Ru; a++)
    if (ix_index_in(uwd, n_uwd, a) < 0) usc[n_usc++] = a;
  /* The update's scatter axes are the indices' batch axes (the grid below
   * walks the one and reads rows of the other). */
  for (int i = 0; i < n_usc && i < st.nbs; i++) {
    int64_t a = UD[usc[i]], b = ts->dims[st.sax[i]];
    if (a != DIM_DYN && b != DIM_DYN && a != b)
      return lw_bad_input(L, "the updates' scatter dimensions do not match the indices' batch "
                          "dimensions");
  }
  for (int d = 0, j = 0; d < R; d++) {
    col[d] = ix_index_in(map, n_map, d);
    uaxis[d] = -1;
    w[d] = 1;
    if (ix_index_in(iwd, n_iwd, d) >= 0) {
      if (ix_index_in(ib, n_ib, d) >= 0) return lw_bad_input(L, "a dimension both inserted and batching");
      role[d] = ROLE_COLLAPSED;
    } else if (ix_index_in(ib, n_ib, d) >= 0) {
      if (col[d] >= 0) return lw_bad_input(L, "a batching dimension in scatter_dims_to_operand_dims");
      role[d] = ROLE_BATCH;
      int s = (int)sib[ix_index_in(ib, n_ib, d)];
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
  OValue *ut = ix_transpose(L, u, uperm, Ru);

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
  OValue *hv = n_map ? ix_upper_bounds(L, x, D, map, win, n_map, hi) : NULL;
  bool in_range = ix_starts_in_range(L, st.S, hi, n_map);
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
    OValue *s = ix_sprime(L, &st);
    int64_t sd[MAX_RANK + 1];
    int sr = ix_sprime_dims(&st, sd);
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
        g->starts = ix_clamp_sprime(L, &st, s, hv, hi);
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
          b1 = ix_squeeze(L, bad, &last, 1);
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
          OValue *parts[2] = {ix_dim_1d(L, x, DIM_DYN, pad_axis), NULL};
          if (n_map > 1) parts[1] = lw_const_i64s(L, n_map - 1, redirect + 1);
          rv = ix_vector_of(L, parts, n_map > 1 ? 2 : 1);
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
  OValue *index = ix_build_grid(L, g);
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
