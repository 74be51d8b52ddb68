/* gather.c - gather and dynamic_gather (scatter.c: scatter; index_grid.c:
 * the index grid and start indices both build on).
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
 * Dynamic dimensions ('?') work wherever the sizes can be read at run time
 * with Shape; window sizes of indexed axes must be static.  dynamic_gather
 * carries its slice sizes as a tensor: sizes the result type fixes are used
 * as constants, and a '?' one is taken whole (no Slice) when it is provably
 * the operand's own dimension (see same-dimension proof below), else the
 * (smaller) result is cut to the run-time size.
 */
#include "lower/index_grid.h"

#include <string.h>

/* ---- gather ------------------------------------------------------------- */

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
  if ((p->n_off = ix_dims_field(L, dn, "offset_dims", &p->off)) < 0 ||
      (p->n_coll = ix_dims_field(L, dn, "collapsed_slice_dims", &p->coll)) < 0 ||
      (p->n_ob = ix_dims_field(L, dn, "operand_batching_dims", &p->ob)) < 0 ||
      (p->n_sb = ix_dims_field(L, dn, "start_indices_batching_dims", &p->sb)) < 0 ||
      (p->n_map = ix_dims_field(L, dn, "start_index_map", &p->map)) < 0)
    return -1;
  int64_t ivd = ix_int_field(dn, "index_vector_dim");
  int Rs = ts->rank;
  if (ivd < 0 || ivd > Rs) return lw_bad_input(L, "index_vector_dim out of range");
  int64_t vec = ivd < Rs ? ts->dims[ivd] : 1;
  if (vec != DIM_DYN && vec != p->n_map)
    return lw_bad_input(L, "start_index_map does not match the index vector length");
  int nbs = Rs - (ivd < Rs);
  if (!ix_good_list(p->off, p->n_off, p->Rr, true) || !ix_good_list(p->coll, p->n_coll, p->R, true) ||
      !ix_good_list(p->ob, p->n_ob, p->R, true) || !ix_good_list(p->map, p->n_map, p->R, false) ||
      !ix_good_list(p->sb, p->n_sb, Rs, false) || p->n_sb != p->n_ob ||
      ix_index_in(p->sb, p->n_sb, ivd) >= 0 || p->n_off + p->n_coll + p->n_ob != p->R ||
      p->Rr != nbs + p->n_off)
    return lw_bad_input(L, "inconsistent dimension numbers");
  for (int d = 0; d < p->R; d++) {
    p->col[d] = ix_index_in(p->map, p->n_map, d);
    p->pair[d] = -1;
    if (ix_index_in(p->coll, p->n_coll, d) >= 0) {
      if (ix_index_in(p->ob, p->n_ob, d) >= 0) return lw_bad_input(L, "a dimension both collapsed and batching");
      p->role[d] = ROLE_COLLAPSED;
    } else if (ix_index_in(p->ob, p->n_ob, d) >= 0) {
      if (p->col[d] >= 0) return lw_bad_input(L, "a batching dimension in start_index_map");
      p->role[d] = ROLE_BATCH;
      p->pair[d] = (int)p->sb[ix_index_in(p->ob, p->n_ob, d)];
      int64_t a = tx->dims[d], b = ts->dims[p->pair[d]];
      if (a != DIM_DYN && b != DIM_DYN && a != b)
        return lw_bad_input(L, "batching dimensions of different sizes");
    } else {
      p->role[d] = ROLE_OFFSET;
    }
  }
  ix_starts_init(L, &p->st, op->operands[1], (int)ivd, p->n_map);
  /* Result axes: offset_dims take the offset operand dims in order, the
   * others the batch axes of the start indices in order. */
  int j = 0, i = 0;
  for (int r = 0; r < p->Rr; r++) {
    if (ix_index_in(p->off, p->n_off, r) >= 0) {
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
      if (ix_index_in(list, n, k) < 0 && j++ == d) dim_leaves(s, op->operands[0], k, cf);
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
        if ((cnt[side] && ix_index_in(dims[side], cnt[side], k) >= 0) ||
            (cnt[2 + side] && ix_index_in(dims[2 + side], cnt[2 + side], k) >= 0))
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
  OValue *in[4] = {y, lw_const_i64s(L, m, starts), ix_vector_of(L, ends, m),
                   lw_const_i64s(L, m, axes)};
  return lw_node(L, "Slice", 4, in, 1)->outputs[0];
}

/* Gather(axis a): one collapsed indexed axis, no batching. */
static OValue *gather_by_axis(Lower *L, const GatherPlan *p, OValue *x, const int64_t *DD) {
  int a = (int)p->map[0];
  int64_t hi = p->D[a] == DIM_DYN ? DIM_DYN : p->D[a] - 1;
  bool in_range = ix_starts_in_range(L, p->st.S, &hi, 1);
  OValue *idx = ix_single_index(L, &p->st, x, p->D[a], a, in_range);
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
  return ix_to_result(L, y, k, lab, p->Rr, p->res);
}

/* GatherElements: take_along_axis, where every other axis is batching and
 * the batch axes of the indices line up with the operand's. */
static bool elements_form(const GatherPlan *p) {
  if (p->n_map != 1 || p->n_off != 0 || p->st.nbs != p->R) return false;
  int a = (int)p->map[0];
  if (p->role[a] != ROLE_COLLAPSED) return false;
  for (int d = 0; d < p->R; d++) {
    if (d == a) {
      if (ix_index_in(p->sb, p->n_sb, p->st.sax[d]) >= 0) return false;
    } else if (p->role[d] != ROLE_BATCH || p->pair[d] != p->st.sax[d]) {
      return false;
    }
  }
  return true;
}

static OValue *gather_elements(Lower *L, const GatherPlan *p, OValue *x) {
  int a = (int)p->map[0];
  int64_t hi = p->D[a] == DIM_DYN ? DIM_DYN : p->D[a] - 1;
  bool in_range = ix_starts_in_range(L, p->st.S, &hi, 1);
  OValue *idx = ix_single_index(L, &p->st, x, p->D[a], a, in_range);
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
    OValue *hv = ix_upper_bounds(L, x0, p->D, p->map, g->win, p->n_map, hi);
    OValue *s = ix_sprime(L, st);
    g->starts = ix_starts_in_range(L, st->S, hi, p->n_map) ? s : ix_clamp_sprime(L, st, s, hv, hi);
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
  OValue *index = ix_build_grid(L, g);
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
  return ix_to_result(L, y, k, lab, p->Rr, p->res);
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
  int n_off = ix_dims_field(L, dn, "offset_dims", &offset);
  int n_col = ix_dims_field(L, dn, "collapsed_slice_dims", &collapsed);
  int n_map = ix_dims_field(L, dn, "start_index_map", &map);
  int n_ob = ix_dims_field(L, dn, "operand_batching_dims", &ob);
  int n_sb = ix_dims_field(L, dn, "start_indices_batching_dims", &sb);
  if (n_off != R || n_col != 0 || n_ob != 0 || n_sb != 0 || n_map != ts->dims[0] ||
      ix_int_field(dn, "index_vector_dim") != 0 || !ix_good_list(map, n_map, R, false))
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
    int k = ix_index_in(map, n_map, d);
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
