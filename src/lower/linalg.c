/* linalg.c - contractions: dot_general (and the legacy dot) to MatMul.
 *
 * dot_general's result is [batch..., lhs free..., rhs free...].  The general
 * lowering transposes lhs to [batch, free, contract] and rhs to [batch,
 * contract, free], collapses each group to one axis so MatMul sees
 * [B..., M, K] x [B..., K, N], and reshapes the product back.  The common
 * shapes get the minimal graph: a single MatMul for [.., M, K] x [K, N]
 * (MatMul broadcasts leading axes) and for batched [B.., M, K] x [B.., K, N];
 * a Transpose only where the contracted axis is not where MatMul wants it
 * (for constant weights a folding pass removes it).  No contracting axes is
 * an outer product: Unsqueeze both sides and Mul.
 *
 * Types: the result type carries JAX's preferred_element_type; operands are
 * cast to the type the product is computed in.  bf16 is computed in f32 (as
 * XLA accumulates it; onnxruntime has no bf16 MatMul on CPU) and narrow
 * integers in i32 (the Cast back wraps, as the integer product does).
 */
#include "lower/lower.h"

#include <string.h>

/* One list of dot_dimension_numbers; an absent field is the empty list. */
static int dim_list(Lower *L, const Attr *dnums, const char *name, int64_t **out) {
  const Attr *a = dnums ? ir_dict_field(dnums, name) : NULL;
  *out = NULL;
  if (!a) return 0;
  int n = ir_attr_i64s(L->c, a, out);
  if (n < 0)
    diag_error_op(L->c, H2O_EINPUT, L->op, "%s: '%s' is not a list of integers",
                  L->op->opname, name);
  return n;
}

/* The type the product is computed in, for a result of type `out`. */
static ElemType compute_type(ElemType out) {
  switch (out) {
  case ET_F32: case ET_F64: case ET_F16: case ET_I32: case ET_I64: case ET_U32: case ET_U64:
    return out;
  case ET_BF16: return ET_F32;
  case ET_I8: case ET_I16: case ET_U8: case ET_U16: return ET_I32;
  default: return ET_UNDEF;
  }
}

/* Product of dims[from..to); DIM_DYN when any is dynamic. */
static int64_t dim_product(const int64_t *dims, int from, int to) {
  int64_t p = 1;
  for (int i = from; i < to; i++) {
    if (dims[i] == DIM_DYN) return DIM_DYN;
    p *= dims[i];
  }
  return p;
}

/* Reshape `in` to a shape made of pieces: its first `keep` axes as they are
 * (their dims `keep_dims`), then one entry per group of axes [start, end)
 * of `src` whose dims are `dims`.  `collapse` multiplies each group into
 * one axis; otherwise the group's axes are kept as they are.  No dim may be
 * a static 0: lower_dot_general handles empty operands before.
 *
 * A dynamic dim may still be 0 at run time, and Reshape's shorthands then
 * go wrong: a computed size 0 reads as "copy", and a -1 cannot be inferred
 * when another target dim is 0 (a copied one).  So the short constant
 * target - 0 copying each kept axis, the static sizes, at most one -1 -
 * is only used where it is exact at any size: no dynamic group, or one
 * dynamic group with every kept dim static (the other dims are then
 * non-zero and the -1 is the input's size divided by them, 0 included).
 * Otherwise the target lists every dim, read from Shape where it is
 * dynamic (ReduceProd of a collapsed group), with allowzero = 1.
 * out_dims / out_rank: the result's dims, DIM_DYN where dynamic. */
typedef struct Group {
  OValue *src;
  const int64_t *dims;
  int start, end;
} Group;

static OValue *reshape_groups(Lower *L, OValue *in, int keep, const int64_t *keep_dims,
                              const Group *g, int n_groups, bool collapse, int64_t *out_dims,
                              int *out_rank) {
  int n_dyn = 0; /* entries that are dynamic */
  bool keep_dyn = false;
  for (int i = 0; i < n_groups; i++) {
    if (collapse) n_dyn += dim_product(g[i].dims, g[i].start, g[i].end) == DIM_DYN;
    else
      for (int j = g[i].start; j < g[i].end; j++) n_dyn += g[i].dims[j] == DIM_DYN;
  }
  for (int i = 0; i < keep; i++) {
    out_dims[i] = keep_dims[i];
    keep_dyn |= keep_dims[i] == DIM_DYN;
  }
  int n = keep;
  if (n_dyn == 0 || (n_dyn == 1 && !keep_dyn)) {
    int64_t vals[MAX_RANK] = {0}; /* 0 = copy, for the kept axes */
    for (int i = 0; i < n_groups; i++) {
      if (collapse) {
        int64_t p = dim_product(g[i].dims, g[i].start, g[i].end);
        out_dims[n] = p;
        vals[n++] = p == DIM_DYN ? -1 : p;
      } else {
        for (int j = g[i].start; j < g[i].end; j++) {
          out_dims[n] = g[i].dims[j];
          vals[n++] = g[i].dims[j] == DIM_DYN ? -1 : g[i].dims[j];
        }
      }
    }
    *out_rank = n;
    return lw_op2(L, "Reshape", in, lw_const_i64s(L, n, vals));
  }
  /* Every dim spelled out: Concat of the kept dims and each group's. */
  OValue *parts[MAX_RANK + 1];
  int n_parts = 0;
  if (keep && keep_dyn) {
    ONode *sh = lw_node(L, "Shape", 1, &in, 1);
    og_attr_int(L->c, sh, "start", 0);
    og_attr_int(L->c, sh, "end", keep);
    int64_t keep64 = keep;
    parts[n_parts++] = lw_typed(L, sh->outputs[0], ET_I64, 1, &keep64);
  } else if (keep) {
    parts[n_parts++] = lw_const_i64s(L, keep, keep_dims);
  }
  for (int i = 0; i < n_groups; i++) {
    int len = g[i].end - g[i].start;
    int64_t p = dim_product(g[i].dims, g[i].start, g[i].end);
    if (collapse && p != DIM_DYN) { /* includes the empty group: 1 */
      parts[n_parts++] = lw_const_i64s(L, 1, &p);
      out_dims[n++] = p;
      continue;
    }
    if (!collapse && p != DIM_DYN) {
      if (len) parts[n_parts++] = lw_const_i64s(L, len, g[i].dims + g[i].start);
      for (int j = g[i].start; j < g[i].end; j++) out_dims[n++] = g[i].dims[j];
      continue;
    }
    ONode *sh = lw_node(L, "Shape", 1, &g[i].src, 1);
    og_attr_int(L->c, sh, "start", g[i].start);
    og_attr_int(L->c, sh, "end", g[i].end);
    int64_t one = 1, len64 = len;
    OValue *s = lw_typed(L, sh->outputs[0], ET_I64, 1, &len64);
    if (collapse) {
      ONode *prod = lw_node(L, "ReduceProd", 1, &s, 1);
      og_attr_int(L->c, prod, "keepdims", 1);
      s = lw_typed(L, prod->outputs[0], ET_I64, 1, &one);
      out_dims[n++] = DIM_DYN;
    } else {
      for (int j = g[i].start; j < g[i].end; j++) out_dims[n++] = g[i].dims[j];
    }
    parts[n_parts++] = s;
  }
  *out_rank = n;
  OValue *shape = parts[0];
  if (n_parts > 1) {
    ONode *cat = lw_node(L, "Concat", n_parts, parts, 1);
    og_attr_int(L->c, cat, "axis", 0);
    int64_t n64 = n;
    shape = lw_typed(L, cat->outputs[0], ET_I64, 1, &n64);
  }
  OValue *args[2] = {in, shape};
  ONode *r = lw_node(L, "Reshape", 2, args, 1);
  og_attr_int(L->c, r, "allowzero", 1);
  return r->outputs[0];
}

/* Reshape x (dims `dims`, rank nb + n1 + n2) to [batch..., prod(n1 axes),
 * prod(n2 axes)], unless each group already is one axis. */
static OValue *collapse(Lower *L, OValue *x, ElemType et, const int64_t *dims, int nb, int n1,
                        int n2, int64_t *out_dims) {
  for (int i = 0; i < nb; i++) out_dims[i] = dims[i];
  if (n1 == 1 && n2 == 1) {
    out_dims[nb] = dims[nb];
    out_dims[nb + 1] = dims[nb + 1];
    return x;
  }
  Group g[2] = {{x, dims, nb, nb + n1}, {x, dims, nb + n1, nb + n1 + n2}};
  int rank;
  OValue *r = reshape_groups(L, x, nb, dims, g, 2, true, out_dims, &rank);
  return lw_typed(L, r, et, nb + 2, out_dims);
}

/* [batch..., x free..., y free...] = x . y, for x permuted by xperm to
 * [batch, x free (nxf), contract (nc)] and y by yperm to [batch, contract,
 * y free (nyf)]: both collapsed to rank nb + 2, one MatMul, and a Reshape
 * back unless each free group is one axis. */
static OValue *batched_product(Lower *L, ElemType ce, OValue *x, const Type *tx,
                               const int64_t *xperm, int nxf, OValue *y, const Type *ty,
                               const int64_t *yperm, int nyf, int nb, int nc) {
  int64_t xd[MAX_RANK], yd[MAX_RANK], d3[MAX_RANK], e3[MAX_RANK], zd[MAX_RANK];
  x = lw_transpose(L, x, ce, tx->rank, tx->dims, xperm, xd);
  y = lw_transpose(L, y, ce, ty->rank, ty->dims, yperm, yd);
  OValue *x3 = collapse(L, x, ce, xd, nb, nxf, nc, d3);
  OValue *y3 = collapse(L, y, ce, yd, nb, nc, nyf, e3);
  OValue *z = lw_op2(L, "MatMul", x3, y3);
  for (int i = 0; i < nb; i++) zd[i] = d3[i] != DIM_DYN ? d3[i] : e3[i];
  zd[nb] = d3[nb];
  zd[nb + 1] = e3[nb + 1];
  z = lw_typed(L, z, ce, nb + 2, zd);
  if (nxf == 1 && nyf == 1) return z;
  Group g[2] = {{x, xd, nb, nb + nxf}, {y, yd, nb + nc, nb + nc + nyf}};
  int64_t od[MAX_RANK];
  int rank;
  return reshape_groups(L, z, nb, zd, g, 2, false, od, &rank);
}

/* Whether a static dim of t is 0. */
static bool has_zero_dim(const Type *t) {
  for (int i = 0; i < t->rank; i++)
    if (t->dims[i] == 0) return true;
  return false;
}

/* The shape of dot_general's result [batch, lhs free, rhs free] as a tensor:
 * the static dims, and the dynamic ones read from the operand axes they come
 * from (lperm / rperm as in lower_dot_general). */
static OValue *result_shape(Lower *L, const Op *op, int nb, int nc, int nlf,
                            const int64_t *lperm, const int64_t *rperm) {
  const Type *to = &op->results[0]->type;
  if (type_is_static(to)) return lw_const_i64s(L, to->rank, to->dims);
  OValue *parts[MAX_RANK];
  for (int i = 0; i < to->rank; i++) {
    if (to->dims[i] != DIM_DYN) {
      parts[i] = lw_const_i64s(L, 1, &to->dims[i]);
      continue;
    }
    int side; /* 0 = lhs, 1 = rhs */
    int64_t axis;
    if (i < nb) {
      side = op->operands[0]->type.dims[lperm[i]] == DIM_DYN ? 0 : 1;
      axis = side == 0 ? lperm[i] : rperm[i];
    } else if (i < nb + nlf) {
      side = 0;
      axis = lperm[i];
    } else {
      side = 1;
      axis = rperm[nc + i - nlf]; /* rhs free j = result axis nb + nlf + j */
    }
    OValue *src = lw_get(L, op->operands[side]);
    ONode *sh = lw_node(L, "Shape", 1, &src, 1);
    og_attr_int(L->c, sh, "start", axis);
    og_attr_int(L->c, sh, "end", axis + 1);
    int64_t one = 1;
    parts[i] = lw_typed(L, sh->outputs[0], ET_I64, 1, &one);
  }
  ONode *cat = lw_node(L, "Concat", to->rank, parts, 1);
  og_attr_int(L->c, cat, "axis", 0);
  int64_t rank = to->rank;
  return lw_typed(L, cat->outputs[0], ET_I64, 1, &rank);
}

/* Whether the Transpose by perm of a tensor of these dims moves data: not
 * when only axes of size 1 change places (then it is a Reshape). */
static bool moves_data(const int64_t *perm, int rank, const int64_t *dims) {
  int64_t last = -1;
  for (int i = 0; i < rank; i++) {
    if (dims[perm[i]] == 1) continue;
    if (perm[i] < last) return true;
    last = perm[i];
  }
  return false;
}

/* The permutation of stablehlo.transpose t, of rank `rank`; false if it is
 * not one (t may not have been checked yet: it may follow the op). */
static bool transpose_perm(Lower *L, const Op *t, int rank, int64_t *perm) {
  const Attr *a = ir_op_attr(t, "permutation");
  int64_t *p;
  bool seen[MAX_RANK] = {false};
  if (!a || ir_attr_i64s(L->c, a, &p) != rank) return false;
  for (int i = 0; i < rank; i++) {
    if (p[i] < 0 || p[i] >= rank || seen[p[i]]) return false;
    seen[p[i]] = true;
    perm[i] = p[i];
  }
  return true;
}

/* Whether reading operand v with perm moves data, after the transpose pass
 * has merged perm into the transpose that made v, when there is one. */
static bool operand_moves_data(Lower *L, const Value *v, const int64_t *perm, int rank) {
  const Op *t = v->def;
  int64_t first[MAX_RANK], composed[MAX_RANK];
  if (t && t->kind == OP_TRANSPOSE && v->n_uses == 1 && t->n_operands == 1 &&
      t->operands[0]->type.rank == rank && transpose_perm(L, t, rank, first)) {
    for (int i = 0; i < rank; i++) composed[i] = first[perm[i]];
    return moves_data(composed, rank, t->operands[0]->type.dims);
  }
  return moves_data(perm, rank, v->type.dims);
}

/* The permutations for computing a batched dot_general the other way round,
 * as rhs' . lhs' with rhs' [batch, rhs free, contract] and lhs' [batch,
 * contract, lhs free], and the Transpose `back` from its [batch, rhs free,
 * lhs free] result to the dot_general's [batch, lhs free, rhs free]. */
static void swapped_perms(int nb, int nc, int nlf, int nrf, const int64_t *lperm,
                          const int64_t *rperm, int64_t *lperm2, int64_t *rperm2,
                          int64_t *back) {
  for (int i = 0; i < nb; i++) lperm2[i] = lperm[i], rperm2[i] = rperm[i], back[i] = i;
  for (int i = 0; i < nc; i++) lperm2[nb + i] = lperm[nb + nlf + i];
  for (int i = 0; i < nlf; i++) lperm2[nb + nc + i] = lperm[nb + i];
  for (int i = 0; i < nrf; i++) rperm2[nb + i] = rperm[nb + nc + i];
  for (int i = 0; i < nc; i++) rperm2[nb + nrf + i] = rperm[nb + i];
  for (int i = 0; i < nlf; i++) back[nb + i] = nb + nrf + i;
  for (int i = 0; i < nrf; i++) back[nb + nlf + i] = nb + i;
}

/* Whether to compute the product as rhs' . lhs' (swapped_perms): when that
 * needs fewer Transposes that move data.  Attention's value weighting, as
 * JAX writes it (v first, the weights second, the result transposed), is the
 * case: lhs . rhs would transpose both operands, rhs' . lhs' only v, and its
 * Transpose back merges into the one JAX applies to the result. */
static bool swap_operands(Lower *L, const Op *op, int nb, int nc, int nlf, int nrf,
                          const int64_t *lperm, const int64_t *rperm) {
  const Type *tl = &op->operands[0]->type, *tr = &op->operands[1]->type;
  const Type *to = &op->results[0]->type;
  int64_t lperm2[MAX_RANK], rperm2[MAX_RANK], back[MAX_RANK], zd[MAX_RANK], after[MAX_RANK];
  swapped_perms(nb, nc, nlf, nrf, lperm, rperm, lperm2, rperm2, back);
  int straight = operand_moves_data(L, op->operands[0], lperm, tl->rank) +
                 operand_moves_data(L, op->operands[1], rperm, tr->rank);
  int swapped = operand_moves_data(L, op->operands[0], lperm2, tl->rank) +
                operand_moves_data(L, op->operands[1], rperm2, tr->rank);
  if (swapped >= straight) return false;
  /* The Transpose back costs nothing when it merges into the result's
   * transpose and the two together move no more data than that one. */
  for (int i = 0; i < to->rank; i++) zd[back[i]] = to->dims[i]; /* result axis i = zd's back[i] */
  const Value *res = op->results[0];
  const Op *t = res->n_uses == 1 ? res->user : NULL;
  if (t && t->kind == OP_TRANSPOSE && transpose_perm(L, t, to->rank, after)) {
    int64_t merged[MAX_RANK];
    for (int i = 0; i < to->rank; i++) merged[i] = back[after[i]];
    swapped += moves_data(merged, to->rank, zd) - moves_data(after, to->rank, to->dims);
  } else {
    swapped += moves_data(back, to->rank, zd);
  }
  return swapped < straight;
}

int lower_dot_general(Lower *L, const Op *op) {
  if (op->n_operands != 2 || op->n_results != 1)
    return diag_error_op(L->c, H2O_EINPUT, op, "%s expects two operands", op->opname);
  const Type *tl = &op->operands[0]->type, *tr = &op->operands[1]->type;
  const Type *to = &op->results[0]->type;
  int64_t *lb = NULL, *rb = NULL, *lc = NULL, *rc = NULL, dot_lc, dot_rc = 0;
  int nb, nb2, nc, nc2;
  const Attr *dnums = ir_op_attr(op, "dot_dimension_numbers");
  if (op->kind == OP_DOT && !dnums) {
    /* dot: [M,] K x K [, N], contracting lhs's last axis with rhs's first. */
    if (tl->rank < 1 || tl->rank > 2 || tr->rank < 1 || tr->rank > 2)
      return diag_error_op(L->c, H2O_EINPUT, op, "dot takes operands of rank 1 or 2");
    dot_lc = tl->rank - 1;
    lc = &dot_lc;
    rc = &dot_rc;
    nb = nb2 = 0;
    nc = nc2 = 1;
  } else {
    if (!dnums) return diag_error_op(L->c, H2O_EINPUT, op, "missing dot_dimension_numbers");
    nb = dim_list(L, dnums, "lhs_batching_dimensions", &lb);
    nb2 = dim_list(L, dnums, "rhs_batching_dimensions", &rb);
    nc = dim_list(L, dnums, "lhs_contracting_dimensions", &lc);
    nc2 = dim_list(L, dnums, "rhs_contracting_dimensions", &rc);
    if (nb < 0 || nb2 < 0 || nc < 0 || nc2 < 0) return -1;
  }

  /* Validate, and find the free axes: lhs role 0 = free, 1 = batch, 2 = contract. */
  int lrole[MAX_RANK] = {0}, rrole[MAX_RANK] = {0};
  bool ok = nb == nb2 && nc == nc2 && tl->rank + tr->rank - nb - 2 * nc == to->rank;
  for (int i = 0; ok && i < nb + nc; i++) {
    int64_t a = i < nb ? lb[i] : lc[i - nb], b = i < nb ? rb[i] : rc[i - nb];
    if (a < 0 || a >= tl->rank || b < 0 || b >= tr->rank || lrole[a] || rrole[b]) {
      ok = false;
      break;
    }
    lrole[a] = rrole[b] = i < nb ? 1 : 2;
    int64_t da = tl->dims[a], db = tr->dims[b];
    if (da != DIM_DYN && db != DIM_DYN && da != db) ok = false;
  }
  if (!ok)
    return diag_error_op(L->c, H2O_EINPUT, op,
                         "%s: dimension numbers do not fit the operand and result types",
                         op->opname);
  ElemType ce = compute_type(to->et);
  if (ce == ET_UNDEF)
    return lw_unsupported(L, "a product of element type %s", et_mlir_name(to->et));

  /* Permutations: lhs [batch, free, contract], rhs [batch, contract, free]. */
  int64_t lperm[MAX_RANK], rperm[MAX_RANK];
  int nlf = 0, nrf = 0;
  for (int i = 0; i < nb; i++) {
    lperm[i] = lb[i];
    rperm[i] = rb[i];
  }
  for (int i = 0; i < tl->rank; i++)
    if (!lrole[i]) lperm[nb + nlf++] = i;
  for (int i = 0; i < nc; i++) {
    lperm[nb + nlf + i] = lc[i];
    rperm[nb + i] = rc[i];
  }
  for (int i = 0; i < tr->rank; i++)
    if (!rrole[i]) rperm[nb + nc + nrf++] = i;

  OValue *x = lw_cast(L, lw_get(L, op->operands[0]), ce);
  OValue *y = lw_cast(L, lw_get(L, op->operands[1]), ce);
  int64_t ld[MAX_RANK], rd[MAX_RANK];
  OValue *z;

  if (has_zero_dim(tl) || has_zero_dim(tr)) {
    /* An empty operand: sums over nothing are 0, or the result is empty.
     * (The Reshapes below would read a static 0 as "copy".) */
    z = lw_op2(L, "Expand", lw_const_scalar(L, ce, 0),
               result_shape(L, op, nb, nc, nlf, lperm, rperm));
  } else if (nc == 0) {
    /* Outer product: lhs [B, Lf, 1..] * rhs [B, 1.., Rf]. */
    int64_t axes[MAX_RANK];
    x = lw_transpose(L, x, ce, nb + nlf, tl->dims, lperm, ld);
    y = lw_transpose(L, y, ce, nb + nrf, tr->dims, rperm, rd);
    for (int i = 0; i < nrf; i++) axes[i] = nb + nlf + i;
    if (nrf) x = lw_op2(L, "Unsqueeze", x, lw_const_i64s(L, nrf, axes));
    for (int i = 0; i < nlf; i++) axes[i] = nb + i;
    if (nlf) y = lw_op2(L, "Unsqueeze", y, lw_const_i64s(L, nlf, axes));
    z = lw_op2(L, "Mul", x, y);
  } else if (nb == 0) {
    /* [Lf.., C..] x [C.., Rf..]: MatMul broadcasts lhs's leading axes and
     * takes a vector on either side as numpy.matmul does, so lhs keeps its
     * free axes; only several contracted axes, or several rhs free axes,
     * are merged (and the latter split again with 0s copying lhs's). */
    x = lw_transpose(L, x, ce, tl->rank, tl->dims, lperm, ld);
    y = lw_transpose(L, y, ce, tr->rank, tr->dims, rperm, rd);
    OValue *yt = y; /* rhs free dims are read from here when dynamic */
    int64_t md[MAX_RANK];
    int rank;
    if (nc > 1) {
      Group g = {x, ld, nlf, nlf + nc};
      x = reshape_groups(L, x, nlf, ld, &g, 1, true, md, &rank);
      x = lw_typed(L, x, ce, nlf + 1, md);
    }
    if (nc > 1 || nrf > 1) {
      Group g[2] = {{y, rd, 0, nc}, {y, rd, nc, nc + nrf}};
      y = reshape_groups(L, y, 0, NULL, g, nrf ? 2 : 1, true, md, &rank);
      y = lw_typed(L, y, ce, rank, md);
    }
    z = lw_op2(L, "MatMul", x, y);
    if (nrf > 1) {
      /* [Lf.., prod(Rf)] before the split, typed for value_info */
      int64_t zd[MAX_RANK], merged = 1;
      memcpy(zd, ld, sizeof(int64_t) * (size_t)nlf);
      for (int i = nc; i < nc + nrf; i++)
        merged = (merged == DIM_DYN || rd[i] == DIM_DYN) ? DIM_DYN : merged * rd[i];
      zd[nlf] = merged;
      z = lw_typed(L, z, ce, nlf + 1, zd);
      Group g = {yt, rd, nc, nc + nrf};
      z = reshape_groups(L, z, nlf, ld, &g, 1, false, md, &rank);
    }
  } else if (!swap_operands(L, op, nb, nc, nlf, nrf, lperm, rperm)) {
    z = batched_product(L, ce, x, tl, lperm, nlf, y, tr, rperm, nrf, nb, nc);
  } else {
    /* (lhs . rhs) = (rhs^T . lhs^T)^T over the last two axes */
    int64_t lperm2[MAX_RANK], rperm2[MAX_RANK], back[MAX_RANK], zd[MAX_RANK], td[MAX_RANK];
    swapped_perms(nb, nc, nlf, nrf, lperm, rperm, lperm2, rperm2, back);
    z = batched_product(L, ce, y, tr, rperm2, nrf, x, tl, lperm2, nlf, nb, nc);
    for (int i = 0; i < to->rank; i++) zd[back[i]] = to->dims[i]; /* result axis i = zd's back[i] */
    z = lw_transpose(L, lw_typed(L, z, ce, to->rank, zd), ce, to->rank, zd, back, td);
  }
  z = lw_typed(L, z, ce, to->rank, to->dims);
  lw_bind(L, op->results[0], lw_cast(L, z, to->et));
  return 0;
}
