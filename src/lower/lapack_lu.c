/* lapack_lu.c - LU with partial pivoting, triangular solves and Cholesky:
 * the LAPACK custom_calls JAX emits on CPU (lapack_{s,d}getrf_ffi,
 * lapack_{s,d}trsm_ffi, lapack_{s,d}potrf_ffi), stablehlo.triangular_solve
 * (which JAX emits for other types on CPU, and for every type when exporting
 * for GPU or TPU), and what an export for GPU or TPU calls instead of LAPACK
 * (cuSOLVER/hipSOLVER getrf and potrf, the pivots-to-permutation call,
 * LuDecomposition, stablehlo.cholesky).  ONNX has none of them as an op, so
 * each is an ONNX Loop over the columns k = 0..K-1 whose body updates the
 * whole matrix at once: rows and columns are selected by masks built from k
 * (Where on Greater/Equal of an iota), never by slicing, so one body serves
 * every k, the graph stays the same size for any n, and leading batch axes
 * (dynamic ones too) ride along through broadcasting.  A dynamic matrix
 * size is read with Shape: the iotas become Ranges and the trip count a
 * value.
 *
 *   getrf  (A = P L U): pivot p = the first row >= k of largest |A[:, k]|
 *          (ArgMax, which returns the first maximum, as LAPACK's i?amax,
 *          and passes over NaNs below row k as it does);
 *          rows k and p swapped (GatherElements of a per-batch row
 *          permutation); multipliers l = A[k+1:, k] * (1 / pivot) (LAPACK
 *          scales by the reciprocal too); rank-1 update of the trailing
 *          block.  A zero pivot leaves the column unscaled, as LAPACK does,
 *          and makes info the first such k + 1.  The pivots (1-based, the
 *          rows swapped at each step, as LAPACK's ipiv) and info are
 *          carried by the Loop with the matrix.
 *   potrf  (A = L L^T, lower; upper through a transpose): d = A[k, k],
 *          failure where d <= 0 (as OpenBLAS: NaN is none), l = A[k:, k] *
 *          (1 / sqrt d), update of the trailing lower triangle only: the
 *          other triangle keeps the input, as LAPACK leaves it.
 *   trsm   (op(A) X = B or X op(A) = B): moved to the left-side form
 *          (X op(A) = B is op(A)^T X^T = B^T), transposed operands read as
 *          the other triangle, then substitution column by column, forward
 *          for lower and backward for upper: x_k = b_k / a_kk (unless the
 *          diagonal is unit), then b_i -= a_ik x_k for the rows still to
 *          solve.  Only the triangle of A the solve reads is read.
 *
 * Each step costs O(m n) elementwise work, so the whole is O(n^3) like
 * LAPACK's unblocked forms; the rounding differs from LAPACK's blocked
 * kernels (other summation orders), not the algorithm.  Complex matrices
 * are refused: complex.c stops them first, naming the call with
 * lw_linalg_name.
 */
#include "lower/lower.h"

#include <string.h>

/* ---- shapes: leading batch axes, then a matrix ---------------------------- */

typedef struct MatShape {
  ElemType et;
  int nb;                     /* batch axes */
  int64_t dims[MAX_RANK + 2]; /* batch dims, rows, cols (DIM_DYN where dynamic) */
} MatShape;

static int mat_shape(Lower *L, const Value *v, MatShape *s, const char *what) {
  const Type *t = &v->type;
  if (t->kind != TK_TENSOR || t->rank < 2 || t->rank > MAX_RANK)
    return lw_unsupported(L, "%s is not a (batch of) matrices", what);
  s->et = t->et;
  s->nb = t->rank - 2;
  memcpy(s->dims, t->dims, sizeof(int64_t) * (size_t)t->rank);
  return 0;
}

static int64_t rows_of(const MatShape *s) { return s->dims[s->nb]; }
static int64_t cols_of(const MatShape *s) { return s->dims[s->nb + 1]; }

/* Whether two sizes may be equal (a dynamic one may be anything). */
static bool may_equal(int64_t a, int64_t b) { return a == b || a == DIM_DYN || b == DIM_DYN; }

/* v typed as the batch dims of s followed by n_tail dims t0, t1. */
static OValue *batch_typed(Lower *L, OValue *v, ElemType et, const MatShape *s, int n_tail,
                           int64_t t0, int64_t t1) {
  int64_t dims[MAX_RANK + 2];
  memcpy(dims, s->dims, sizeof(int64_t) * (size_t)s->nb);
  if (n_tail > 0) dims[s->nb] = t0;
  if (n_tail > 1) dims[s->nb + 1] = t1;
  return lw_typed(L, v, et, s->nb + n_tail, dims);
}

static bool is_float_type(ElemType et) {
  return et == ET_F32 || et == ET_F64 || et == ET_F16 || et == ET_BF16;
}

/* ---- small builders ------------------------------------------------------ */

/* The shape of an iota: [n] (compared with a vector's positions), [n, 1]
 * (a matrix's row numbers), [1, n] (its column numbers). */
typedef enum IotaShape { IOTA_VEC, IOTA_COLUMN, IOTA_ROW } IotaShape;

/* A size: n when static, else DIM_DYN; v its value (int64 scalar), a
 * constant when static. */
typedef struct Size {
  int64_t n;
  OValue *v;
} Size;

static Size known_size(Lower *L, int64_t n) {
  Size z = {n, lw_typed(L, lw_const_scalar(L, ET_I64, (double)n), ET_I64, 0, NULL)};
  return z;
}

/* The size of axis `axis` of x, whose static size is n (or DIM_DYN). */
static Size size_of(Lower *L, OValue *x, int axis, int64_t n) {
  if (n != DIM_DYN) return known_size(L, n);
  Size z = {n, NULL};
  ONode *sh = lw_node(L, "Shape", 1, &x, 1);
  og_attr_int(L->c, sh, "start", axis);
  og_attr_int(L->c, sh, "end", axis + 1);
  int64_t one = 1;
  OValue *dim = lw_typed(L, sh->outputs[0], ET_I64, 1, &one);
  z.v = lw_typed(L, lw_op2(L, "Reshape", dim, lw_const_i64s(L, 0, NULL)), ET_I64, 0, NULL);
  return z;
}

static Size size_min(Lower *L, Size a, Size b) {
  if (a.n != DIM_DYN && b.n != DIM_DYN) return a.n <= b.n ? a : b;
  Size z = {DIM_DYN, lw_typed(L, lw_op2(L, "Min", a.v, b.v), ET_I64, 0, NULL)};
  return z;
}

/* 0, 1, ..., n-1 as int64 of that shape: a constant when n is static, else
 * a Range. */
static OValue *iota_i64(Lower *L, Size n, IotaShape shape) {
  int64_t dims[2] = {shape == IOTA_ROW ? 1 : n.n, shape == IOTA_ROW ? n.n : 1};
  if (n.n != DIM_DYN) {
    int64_t *vals = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(n.n ? n.n : 1));
    for (int64_t i = 0; i < n.n; i++) vals[i] = i;
    Data d = {DATA_RAW, vals, sizeof(int64_t) * (size_t)n.n};
    return lw_const_data(L, ET_I64, shape == IOTA_VEC ? 1 : 2, dims, d);
  }
  OValue *zero = lw_const_scalar(L, ET_I64, 0), *one = lw_const_scalar(L, ET_I64, 1);
  OValue *range = lw_typed(L, lw_op3(L, "Range", zero, n.v, one), ET_I64, 1, &n.n);
  if (shape == IOTA_VEC) return range;
  int64_t axis = shape == IOTA_ROW ? 0 : 1;
  return lw_typed(L, lw_op2(L, "Unsqueeze", range, lw_const_i64s(L, 1, &axis)), ET_I64, 2, dims);
}

static OValue *gather_at(Lower *L, OValue *x, OValue *index, int axis) {
  OValue *in[2] = {x, index};
  ONode *n = lw_node(L, "Gather", 2, in, 1);
  og_attr_int(L->c, n, "axis", axis);
  return n->outputs[0];
}

static OValue *unsqueeze1(Lower *L, OValue *x, int64_t axis) {
  return lw_op2(L, "Unsqueeze", x, lw_const_i64s(L, 1, &axis));
}

/* The matrix axes of x swapped. */
static OValue *transpose_matrix(Lower *L, OValue *x, const MatShape *s, MatShape *out) {
  int64_t perm[MAX_RANK + 2], dims[MAX_RANK + 2];
  for (int i = 0; i < s->nb + 2; i++) perm[i] = i;
  perm[s->nb] = s->nb + 1;
  perm[s->nb + 1] = s->nb;
  *out = *s;
  OValue *r = lw_transpose(L, x, s->et, s->nb + 2, s->dims, perm, dims);
  memcpy(out->dims, dims, sizeof(int64_t) * (size_t)(s->nb + 2));
  return r;
}

/* A mask (bool) of static shape [d0] (rank 1) or [d0, d1]. */
static OValue *mask2(Lower *L, const char *op_type, OValue *a, OValue *b, int rank, int64_t d0,
                     int64_t d1) {
  int64_t dims[2] = {d0, d1};
  return lw_typed(L, lw_op2(L, op_type, a, b), ET_BOOL, rank, dims);
}

/* Zeros of type et and shape [batch of x..., tail] (tail NULL: no tail axis). */
static OValue *batch_zeros(Lower *L, OValue *x, const MatShape *s, const Size *tail, ElemType et) {
  ONode *sh = lw_node(L, "Shape", 1, &x, 1);
  og_attr_int(L->c, sh, "start", 0);
  og_attr_int(L->c, sh, "end", s->nb);
  int64_t nb = s->nb;
  OValue *shape = lw_typed(L, sh->outputs[0], ET_I64, 1, &nb);
  if (tail) {
    int64_t one = 1;
    OValue *tail_v = lw_op2(L, "Reshape", tail->v, lw_const_i64s(L, 1, &one));
    OValue *in[2] = {shape, lw_typed(L, tail_v, ET_I64, 1, &one)};
    ONode *cat = lw_node(L, "Concat", 2, in, 1);
    og_attr_int(L->c, cat, "axis", 0);
    int64_t n1 = nb + 1;
    shape = lw_typed(L, cat->outputs[0], ET_I64, 1, &n1);
  }
  OValue *z = lw_op2(L, "Expand", lw_const_scalar(L, et, 0), shape);
  return batch_typed(L, z, et, s, tail ? 1 : 0, tail ? tail->n : 0, 0);
}

/* ---- getrf: LU with partial pivoting ----------------------------------- */

/* The factorisation of a (shape s, K = min(m, n) steps): the packed LU,
 * the 0-based pivots [batch..., K] and LAPACK's info [batch...]: the first
 * step whose pivot was zero, plus 1, or 0 (both int64).  -1 after a
 * report. */
typedef struct LuParts {
  OValue *lu, *pivots, *info;
} LuParts;

/* The next info of a loop: step k + 1 where info is still 0 and `fails`
 * (bool, [batch..., 1]) holds, else info ([batch...], int64). */
static OValue *next_info(Lower *L, OValue *info, OValue *fails, OValue *k, const MatShape *s) {
  OValue *step = lw_typed(L, lw_op2(L, "Add", k, lw_const_scalar(L, ET_I64, 1)), ET_I64, 0, NULL);
  OValue *first = lw_op2(L, "Equal", info, lw_const_scalar(L, ET_I64, 0));
  first = batch_typed(L, first, ET_BOOL, s, 0, 0, 0);
  int64_t axis = s->nb;
  OValue *fail = lw_op2(L, "Squeeze", fails, lw_const_i64s(L, 1, &axis));
  fail = batch_typed(L, fail, ET_BOOL, s, 0, 0, 0);
  OValue *now = batch_typed(L, lw_op2(L, "And", first, fail), ET_BOOL, s, 0, 0, 0);
  return batch_typed(L, lw_op3(L, "Where", now, step, info), ET_I64, s, 0, 0, 0);
}

static int lu_loop(Lower *L, OValue *a, const MatShape *sp, LuParts *out) {
  const MatShape s = *sp;
  ElemType et = s.et;
  int nb = s.nb;
  int64_t m = rows_of(&s), n = cols_of(&s);
  Size rows = size_of(L, a, nb, m), cols = size_of(L, a, nb + 1, n);
  Size steps = size_min(L, rows, cols);
  int64_t K = steps.n;
  OValue *rows_vec = iota_i64(L, rows, IOTA_VEC), *rows_col = iota_i64(L, rows, IOTA_COLUMN);
  OValue *cols_row = iota_i64(L, cols, IOTA_ROW);
  OValue *below_any = lw_const_scalar(L, et, -1), *zero = lw_const_scalar(L, et, 0);
  OValue *nan_rank = lw_const_scalar(L, et, -0.5);
  int64_t rank = nb + 2;
  OValue *a_shape = lw_typed(L, lw_op1(L, "Shape", a), ET_I64, 1, &rank);
  OValue *step_vec = steps.v == rows.v ? rows_vec : iota_i64(L, steps, IOTA_VEC);
  OValue *pivots0 = batch_zeros(L, a, &s, &steps, ET_I64), *info0 = batch_zeros(L, a, &s, NULL, ET_I64);

  if (lw_loop_check_depth(L) != 0) return -1;
  LoopBuilder lp;
  lw_loop_begin(L, &lp, "lu_step", "k");
  OValue *A = lw_loop_carry(L, &lp, a, NULL), *k = lp.iteration;
  OValue *pivots = lw_loop_carry(L, &lp, pivots0, NULL);
  OValue *info = lw_loop_carry(L, &lp, info0, NULL);
  /* the pivot: first row >= k of largest magnitude in column k.  NaNs as
   * LAPACK's i?amax sees them (a NaN compares as less): row k when it is
   * NaN, else the largest of the numbers below.  So a NaN counts as less
   * than any number but more than the rows above k (ArgMax of a NaN is not
   * defined), and the pivot is a row >= k whatever the input. */
  OValue *col = batch_typed(L, gather_at(L, A, k, nb + 1), et, &s, 1, m, 0);
  OValue *mag = batch_typed(L, lw_op1(L, "Abs", col), et, &s, 1, m, 0);
  OValue *nan = batch_typed(L, lw_op1(L, "IsNaN", col), ET_BOOL, &s, 1, m, 0);
  mag = batch_typed(L, lw_op3(L, "Where", nan, nan_rank, mag), et, &s, 1, m, 0);
  mag = lw_op3(L, "Where", mask2(L, "Less", rows_vec, k, 1, m, 0), below_any, mag);
  batch_typed(L, mag, et, &s, 1, m, 0);
  ONode *argmax = lw_node(L, "ArgMax", 1, &mag, 1);
  og_attr_int(L->c, argmax, "axis", nb);
  og_attr_int(L->c, argmax, "keepdims", 1);
  OValue *p = batch_typed(L, argmax->outputs[0], ET_I64, &s, 1, 1, 0);
  OValue *nan_at_k = batch_typed(L, gather_at(L, nan, k, nb), ET_BOOL, &s, 0, 0, 0);
  nan_at_k = batch_typed(L, unsqueeze1(L, nan_at_k, nb), ET_BOOL, &s, 1, 1, 0);
  p = batch_typed(L, lw_op3(L, "Where", nan_at_k, k, p), ET_I64, &s, 1, 1, 0);
  /* rows k and p swapped: row i of the result is row idx[i] */
  OValue *from_k = lw_op3(L, "Where", lw_op2(L, "Equal", rows_vec, p), k, rows_vec);
  batch_typed(L, from_k, ET_I64, &s, 1, m, 0);
  OValue *idx = lw_op3(L, "Where", mask2(L, "Equal", rows_vec, k, 1, m, 0), p, from_k);
  batch_typed(L, idx, ET_I64, &s, 1, m, 0);
  idx = batch_typed(L, unsqueeze1(L, idx, nb + 1), ET_I64, &s, 2, m, 1);
  idx = batch_typed(L, lw_op2(L, "Expand", idx, a_shape), ET_I64, &s, 2, m, n);
  OValue *gin[2] = {A, idx};
  ONode *swap = lw_node(L, "GatherElements", 2, gin, 1);
  og_attr_int(L->c, swap, "axis", nb);
  OValue *As = batch_typed(L, swap->outputs[0], et, &s, 2, m, n);
  /* the pivot row u, the pivot, and the multipliers l = column k / pivot */
  OValue *u = batch_typed(L, gather_at(L, As, k, nb), et, &s, 1, n, 0);
  OValue *pivot = batch_typed(L, gather_at(L, u, k, nb), et, &s, 0, 0, 0);
  pivot = batch_typed(L, unsqueeze1(L, pivot, nb), et, &s, 1, 1, 0);
  OValue *col_s = batch_typed(L, gather_at(L, As, k, nb + 1), et, &s, 1, m, 0);
  OValue *is_zero = batch_typed(L, lw_op2(L, "Equal", pivot, zero), ET_BOOL, &s, 1, 1, 0);
  OValue *scaled = lw_op2(L, "Mul", col_s, batch_typed(L, lw_op1(L, "Reciprocal", pivot), et,
                                                       &s, 1, 1, 0));
  batch_typed(L, scaled, et, &s, 1, m, 0);
  OValue *l = batch_typed(L, lw_op3(L, "Where", is_zero, col_s, scaled), et, &s, 1, m, 0);
  OValue *l_col = batch_typed(L, unsqueeze1(L, l, nb + 1), et, &s, 2, m, 1);
  OValue *u_row = batch_typed(L, unsqueeze1(L, u, nb), et, &s, 2, 1, n);
  /* the trailing block less l u, and l below the pivot */
  OValue *below = mask2(L, "Greater", rows_col, k, 2, m, 1);
  OValue *trailing = mask2(L, "And", below, mask2(L, "Greater", cols_row, k, 2, 1, n), 2, m, n);
  OValue *at_col = mask2(L, "And", below, mask2(L, "Equal", cols_row, k, 2, 1, n), 2, m, n);
  OValue *outer = batch_typed(L, lw_op2(L, "Mul", l_col, u_row), et, &s, 2, m, n);
  OValue *upd = batch_typed(L, lw_op2(L, "Sub", As, outer), et, &s, 2, m, n);
  OValue *A1 = batch_typed(L, lw_op3(L, "Where", trailing, upd, As), et, &s, 2, m, n);
  OValue *A2 = batch_typed(L, lw_op3(L, "Where", at_col, l_col, A1), et, &s, 2, m, n);
  OValue *next[3] = {A2, lw_op3(L, "Where", mask2(L, "Equal", step_vec, k, 1, K, 0), p, pivots),
                     next_info(L, info, is_zero, k, &s)};
  batch_typed(L, next[1], ET_I64, &s, 1, K, 0);
  lw_loop_close(L, &lp, NULL, next, 0, NULL);
  ONode *loop = lw_loop_node(L, &lp, steps.v, NULL);
  out->lu = loop->outputs[0];
  out->pivots = loop->outputs[1];
  out->info = loop->outputs[2];
  return 0;
}

/* lapack_?getrf_ffi (cusolver_getrf_ffi): the packed LU, LAPACK's 1-based
 * pivots and info. */
static int lower_getrf(Lower *L, const Op *op, int n_data) {
  if (n_data != 1 || op->n_results != 3)
    return lw_unsupported(L, "getrf with %d operands and %d results (expected 1 and 3: the "
                             "factors, the pivots and info)", n_data, op->n_results);
  MatShape s;
  if (mat_shape(L, op->operands[0], &s, "the operand") != 0) return -1;
  ElemType piv_et = op->results[1]->type.et, info_et = op->results[2]->type.et;
  int64_t m = rows_of(&s), n = cols_of(&s);
  int64_t K = m == DIM_DYN || n == DIM_DYN ? DIM_DYN : m < n ? m : n;
  OValue *a = lw_get(L, op->operands[0]);
  if (K == 0) {
    Size none = known_size(L, 0);
    lw_bind(L, op->results[0], a);
    lw_bind(L, op->results[1], batch_zeros(L, a, &s, &none, piv_et));
    lw_bind(L, op->results[2], batch_zeros(L, a, &s, NULL, info_et));
    return 0;
  }
  LuParts lu;
  if (lu_loop(L, a, &s, &lu) != 0) return -1;
  lw_bind(L, op->results[0], lu.lu);
  OValue *pivots = lw_op2(L, "Add", lw_cast(L, lu.pivots, piv_et), lw_const_scalar(L, piv_et, 1));
  lw_bind(L, op->results[1], batch_typed(L, pivots, piv_et, &s, 1, K, 0));
  lw_bind(L, op->results[2], batch_typed(L, lw_cast(L, lu.info, info_et), info_et, &s, 0, 0, 0));
  return 0;
}

/* ---- potrf: Cholesky ------------------------------------------------------ */

/* A bool [n, n]: i >= j (a constant when n is static). */
static OValue *lower_triangle_mask(Lower *L, Size size, OValue *rows_col, OValue *cols_row) {
  int64_t n = size.n;
  if (n == DIM_DYN) return mask2(L, "GreaterOrEqual", rows_col, cols_row, 2, n, n);
  uint8_t *vals = arena_alloc(L->c->arena, (size_t)(n > 0 ? n * n : 1));
  for (int64_t i = 0; i < n; i++)
    for (int64_t j = 0; j < n; j++) vals[i * n + j] = i >= j;
  int64_t dims[2] = {n, n};
  return lw_const_data(L, ET_BOOL, 2, dims, (Data){DATA_RAW, vals, (size_t)(n * n)});
}

/* The factor of operand 0 into result 0, and with_info LAPACK's info into
 * result 1. */
static int factor_cholesky(Lower *L, const Op *op, bool lower, bool with_info) {
  MatShape s;
  if (mat_shape(L, op->operands[0], &s, "the operand") != 0) return -1;
  if (!is_float_type(s.et))
    return lw_unsupported(L, "a Cholesky factorisation of element type other than f16, bf16, "
                             "f32 or f64");
  ElemType et = s.et, info_et = with_info ? op->results[1]->type.et : ET_I32;
  int nb = s.nb;
  int64_t n = rows_of(&s);
  if (!may_equal(cols_of(&s), n)) return lw_bad_input(L, "the matrix is not square");
  OValue *a = lw_get(L, op->operands[0]);
  if (n == 0) {
    lw_bind(L, op->results[0], a);
    if (with_info) lw_bind(L, op->results[1], batch_zeros(L, a, &s, NULL, info_et));
    return 0;
  }
  /* upper: A = U^T U reads the upper triangle, which is the lower one of A^T */
  MatShape st = s;
  if (!lower) a = transpose_matrix(L, a, &s, &st);
  Size size = size_of(L, a, nb, n);
  OValue *rows_vec = iota_i64(L, size, IOTA_VEC), *rows_col = iota_i64(L, size, IOTA_COLUMN);
  OValue *cols_row = iota_i64(L, size, IOTA_ROW);
  OValue *tril = lower_triangle_mask(L, size, rows_col, cols_row);
  OValue *zero = lw_const_scalar(L, et, 0);

  OValue *info0 = batch_zeros(L, a, &s, NULL, ET_I64);

  if (lw_loop_check_depth(L) != 0) return -1;
  LoopBuilder lp;
  lw_loop_begin(L, &lp, "cholesky_step", "k");
  OValue *A = lw_loop_carry(L, &lp, a, NULL), *k = lp.iteration;
  OValue *info = lw_loop_carry(L, &lp, info0, NULL);
  OValue *col = batch_typed(L, gather_at(L, A, k, nb + 1), et, &s, 1, n, 0);
  OValue *d = batch_typed(L, gather_at(L, col, k, nb), et, &s, 0, 0, 0);
  d = batch_typed(L, unsqueeze1(L, d, nb), et, &s, 1, 1, 0);
  /* failure where d <= 0.  A NaN d is no failure: reference LAPACK reports
   * one, but OpenBLAS's potrf, which jaxlib calls (through scipy), does not
   * and goes on with NaNs - and JAX returns those, not its all-NaN result. */
  OValue *fails = batch_typed(L, lw_op2(L, "LessOrEqual", d, zero), ET_BOOL, &s, 1, 1, 0);
  OValue *root = batch_typed(L, lw_op1(L, "Sqrt", d), et, &s, 1, 1, 0);
  OValue *inv = batch_typed(L, lw_op1(L, "Reciprocal", root), et, &s, 1, 1, 0);
  OValue *l = batch_typed(L, lw_op2(L, "Mul", col, inv), et, &s, 1, n, 0);
  /* column k from the diagonal down: sqrt(d), then l */
  OValue *new_col = lw_op3(L, "Where", mask2(L, "Equal", rows_vec, k, 1, n, 0), root, l);
  batch_typed(L, new_col, et, &s, 1, n, 0);
  OValue *l_col = batch_typed(L, unsqueeze1(L, l, nb + 1), et, &s, 2, n, 1);
  OValue *l_row = batch_typed(L, unsqueeze1(L, l, nb), et, &s, 2, 1, n);
  OValue *trailing = mask2(L, "And", mask2(L, "Greater", rows_col, k, 2, n, 1),
                           mask2(L, "Greater", cols_row, k, 2, 1, n), 2, n, n);
  trailing = mask2(L, "And", trailing, tril, 2, n, n);
  OValue *at_col = mask2(L, "And", mask2(L, "GreaterOrEqual", rows_col, k, 2, n, 1),
                         mask2(L, "Equal", cols_row, k, 2, 1, n), 2, n, n);
  OValue *outer = batch_typed(L, lw_op2(L, "Mul", l_col, l_row), et, &s, 2, n, n);
  OValue *upd = batch_typed(L, lw_op2(L, "Sub", A, outer), et, &s, 2, n, n);
  OValue *A1 = batch_typed(L, lw_op3(L, "Where", trailing, upd, A), et, &s, 2, n, n);
  OValue *col_new = batch_typed(L, unsqueeze1(L, new_col, nb + 1), et, &s, 2, n, 1);
  OValue *A2 = batch_typed(L, lw_op3(L, "Where", at_col, col_new, A1), et, &s, 2, n, n);
  OValue *next[2] = {A2, next_info(L, info, fails, k, &s)};
  lw_loop_close(L, &lp, NULL, next, 0, NULL);
  ONode *loop = lw_loop_node(L, &lp, size.v, NULL);

  OValue *factor = loop->outputs[0];
  if (!lower) factor = transpose_matrix(L, factor, &st, &st);
  lw_bind(L, op->results[0], factor);
  if (with_info) {
    OValue *info_out = lw_cast(L, loop->outputs[1], info_et);
    lw_bind(L, op->results[1], batch_typed(L, info_out, info_et, &s, 0, 0, 0));
  }
  return 0;
}

static int lower_potrf(Lower *L, const Op *op, int n_data, bool lower) {
  if (n_data != 1 || op->n_results != 2)
    return lw_unsupported(L, "potrf with %d operands and %d results (expected 1 and 2: the "
                             "factor and info)", n_data, op->n_results);
  return factor_cholesky(L, op, lower, true);
}

/* stablehlo.cholesky (JAX's export for TPU): the factor alone.  Where the
 * matrix is not positive definite the spec leaves the result to the
 * implementation; here it holds the NaNs of the square root of d <= 0. */
int lower_cholesky(Lower *L, const Op *op) {
  if (op->n_operands != 1 || op->n_results != 1)
    return lw_unsupported(L, "expected one operand and one result");
  if (!type_equal(&op->results[0]->type, &op->operands[0]->type))
    return lw_bad_input(L, "the result's type is not the operand's");
  const Attr *lower = ir_op_attr(op, "lower");
  if (lower && lower->kind != AK_BOOL) return lw_bad_input(L, "lower is not a boolean");
  return factor_cholesky(L, op, lower && lower->b, false);
}

/* ---- triangular solves ----------------------------------------------------- */

typedef struct TriSolve {
  bool left_side, lower, transpose_a, unit_diagonal;
} TriSolve;

/* X with op(A) X = B (left side) or X op(A) = B, A [batch..., n, n]
 * triangular, B [batch..., r, c]; the result has B's type. */
static int lower_tri_solve(Lower *L, const Op *op, const TriSolve *ts) {
  MatShape sa, sb;
  if (mat_shape(L, op->operands[0], &sa, "the triangular matrix") != 0 ||
      mat_shape(L, op->operands[1], &sb, "the right-hand side") != 0)
    return -1;
  if (!is_float_type(sa.et) || sb.et != sa.et)
    return lw_unsupported(L, "a triangular solve of element type other than f16, bf16, f32 "
                             "or f64");
  int64_t n = rows_of(&sa);
  if (!may_equal(cols_of(&sa), n) || sa.nb != sb.nb ||
      !may_equal(ts->left_side ? rows_of(&sb) : cols_of(&sb), n))
    return lw_bad_input(L, "the operands' shapes do not match a triangular solve");
  OValue *a = lw_get(L, op->operands[0]), *b = lw_get(L, op->operands[1]);
  if (n == 0 || rows_of(&sb) == 0 || cols_of(&sb) == 0) {
    lw_bind(L, op->results[0], b);
    return 0;
  }
  /* X op(A) = B is op(A)^T X^T = B^T: solve on the left for X^T.  A is
   * transposed where op(A) or the move asks for it (not when both do), and
   * a transposed triangle is the other one. */
  bool lower = ts->lower;
  MatShape s = sb;
  if (!ts->left_side) b = transpose_matrix(L, b, &sb, &s);
  if (ts->transpose_a != !ts->left_side) {
    a = transpose_matrix(L, a, &sa, &sa);
    lower = !lower;
  }
  ElemType et = s.et;
  int nb = s.nb;
  int64_t m = cols_of(&s);
  Size size = size_of(L, a, nb, n);
  OValue *rows_col = iota_i64(L, size, IOTA_COLUMN);
  OValue *last = lw_op2(L, "Sub", size.v, lw_const_scalar(L, ET_I64, 1));
  last = lw_typed(L, last, ET_I64, 0, NULL);

  if (lw_loop_check_depth(L) != 0) return -1;
  LoopBuilder lp;
  lw_loop_begin(L, &lp, "substitution_step", "k");
  OValue *X = lw_loop_carry(L, &lp, b, NULL);
  /* forward for lower (row k at step k), backward for upper (row n-1-k) */
  OValue *k = lower ? lp.iteration
                    : lw_typed(L, lw_op2(L, "Sub", last, lp.iteration), ET_I64, 0, NULL);
  OValue *a_col = batch_typed(L, gather_at(L, a, k, nb + 1), et, &sa, 1, n, 0);
  OValue *x = batch_typed(L, gather_at(L, X, k, nb), et, &s, 1, m, 0);
  if (!ts->unit_diagonal) {
    OValue *akk = batch_typed(L, gather_at(L, a_col, k, nb), et, &sa, 0, 0, 0);
    akk = batch_typed(L, unsqueeze1(L, akk, nb), et, &sa, 1, 1, 0);
    x = batch_typed(L, lw_op2(L, "Div", x, akk), et, &s, 1, m, 0);
  }
  OValue *x_row = batch_typed(L, unsqueeze1(L, x, nb), et, &s, 2, 1, m);
  OValue *a_colv = batch_typed(L, unsqueeze1(L, a_col, nb + 1), et, &sa, 2, n, 1);
  OValue *outer = batch_typed(L, lw_op2(L, "Mul", a_colv, x_row), et, &s, 2, n, m);
  OValue *upd = batch_typed(L, lw_op2(L, "Sub", X, outer), et, &s, 2, n, m);
  OValue *rest = mask2(L, lower ? "Greater" : "Less", rows_col, k, 2, n, 1);
  OValue *X1 = batch_typed(L, lw_op3(L, "Where", rest, upd, X), et, &s, 2, n, m);
  OValue *X2 = lw_op3(L, "Where", mask2(L, "Equal", rows_col, k, 2, n, 1), x_row, X1);
  batch_typed(L, X2, et, &s, 2, n, m);
  lw_loop_close(L, &lp, NULL, &X2, 0, NULL);
  ONode *loop = lw_loop_node(L, &lp, size.v, NULL);

  OValue *x_out = loop->outputs[0];
  if (!ts->left_side) x_out = transpose_matrix(L, x_out, &s, &s);
  lw_bind(L, op->results[0], x_out);
  return 0;
}

/* stablehlo.triangular_solve: the attributes say the form. */
int lower_triangular_solve(Lower *L, const Op *op) {
  if (op->n_operands != 2 || op->n_results != 1)
    return lw_unsupported(L, "expected two operands and one result");
  if (!type_equal(&op->results[0]->type, &op->operands[1]->type))
    return lw_bad_input(L, "the result's type is not the right-hand side's");
  TriSolve ts = {0};
  const Attr *left = ir_op_attr(op, "left_side"), *lower = ir_op_attr(op, "lower");
  const Attr *unit = ir_op_attr(op, "unit_diagonal"), *tr = ir_op_attr(op, "transpose_a");
  if (!left || left->kind != AK_BOOL || !lower || lower->kind != AK_BOOL || !unit ||
      unit->kind != AK_BOOL || !tr || !tr->s)
    return lw_bad_input(L, "left_side, lower, unit_diagonal (booleans) and transpose_a are "
                           "required");
  ts.left_side = left->b;
  ts.lower = lower->b;
  ts.unit_diagonal = unit->b;
  if (strcmp(tr->s, "NO_TRANSPOSE") == 0) ts.transpose_a = false;
  else if (strcmp(tr->s, "TRANSPOSE") == 0 || strcmp(tr->s, "ADJOINT") == 0)
    ts.transpose_a = true; /* the adjoint of a real matrix is its transpose */
  else return lw_bad_input(L, "transpose_a is not NO_TRANSPOSE, TRANSPOSE or ADJOINT");
  return lower_tri_solve(L, op, &ts);
}

/* ---- the custom_call targets ----------------------------------------------- */

/* One character of the LAPACK call's backend_config (uplo = 76 : ui8 is
 * 'L'), or def when absent. */
static int config_char(const Op *op, const char *field, int def) {
  const Attr *cfg = ir_op_attr(op, "mhlo.backend_config");
  const Attr *f = cfg && cfg->kind == AK_DICT ? ir_dict_field(cfg, field) : NULL;
  int64_t v;
  return f && ir_attr_int(f, &v) ? (int)v : def;
}

static int lower_trsm_call(Lower *L, const Op *op, int n_data) {
  if (n_data != 2 || op->n_results != 1)
    return lw_unsupported(L, "trsm with %d operands and %d results (expected the matrix and "
                             "the right-hand side, and the solution)", n_data,
                          op->n_results);
  int side = config_char(op, "side", 'L'), uplo = config_char(op, "uplo", 'L');
  int trans = config_char(op, "trans_x", 'N'), diag = config_char(op, "diag", 'N');
  if ((side != 'L' && side != 'R') || (uplo != 'L' && uplo != 'U') ||
      (trans != 'N' && trans != 'T' && trans != 'C') || (diag != 'N' && diag != 'U'))
    return lw_bad_input(L, "backend_config: side, uplo, trans_x or diag is not a LAPACK flag");
  TriSolve ts = {side == 'L', uplo == 'L', trans != 'N', diag == 'U'};
  return lower_tri_solve(L, op, &ts);
}


static int lower_potrf_call(Lower *L, const Op *op, int n_data) {
  int uplo = config_char(op, "uplo", 'L');
  if (uplo != 'L' && uplo != 'U') return lw_bad_input(L, "backend_config: uplo is not L or U");
  return lower_potrf(L, op, n_data, uplo == 'L');
}

/* The routine after "lapack_" and the type letter; its converter. */
static const struct {
  const char *routine;
  int (*lower)(Lower *L, const Op *op, int n_data);
} lapack_routines[] = {
    {"getrf_ffi", lower_getrf},
    {"trsm_ffi", lower_trsm_call},
    {"potrf_ffi", lower_potrf_call},
};

/* The row of lapack_routines for target, or -1; *type_letter = s, d, c, z. */
static int lapack_routine(const char *target, char *type_letter) {
  if (strncmp(target, "lapack_", 7) != 0 || !target[7] || !strchr("sdcz", target[7]))
    return -1;
  *type_letter = target[7];
  for (size_t i = 0; i < sizeof lapack_routines / sizeof lapack_routines[0]; i++)
    if (strcmp(target + 8, lapack_routines[i].routine) == 0) return (int)i;
  return -1;
}

/* ---- the same calls as JAX exports them for GPUs and TPUs ------------------
 * cuSOLVER (hipSOLVER on ROCm) getrf and potrf take and give what LAPACK's
 * do, potrf naming its triangle with a boolean `lower`; JAX turns the
 * pivots into a permutation with a call of its own (on the CPU, a while
 * loop), lowered here as one more Loop: perm = 0..P-1, then for each k,
 * perm[k] and perm[pivots[k]] swapped.  For TPUs, LuDecomposition gives the
 * packed LU, the 0-based pivots and that permutation. */

static int lower_gpu_potrf(Lower *L, const Op *op, int n_data) {
  const Attr *cfg = ir_op_attr(op, "mhlo.backend_config");
  const Attr *lower = cfg && cfg->kind == AK_DICT ? ir_dict_field(cfg, "lower") : NULL;
  if (lower && lower->kind != AK_BOOL)
    return lw_bad_input(L, "backend_config: lower is not a boolean");
  return lower_potrf(L, op, n_data, lower ? lower->b : true);
}

/* perm = 0..P-1, then for k < K perm[k] and perm[pivots[k]] swapped:
 * pivots [batch of s..., K] int64, 0-based; P is axis perm_axis of
 * perm_src.  The result [batch..., P] int64, or NULL after a report. */
static OValue *permutation_of_pivots(Lower *L, OValue *pivots, const MatShape *s, int64_t K,
                                     OValue *perm_src, int perm_axis, int64_t P) {
  int nb = s->nb;
  Size size = size_of(L, perm_src, perm_axis, P), steps = size_of(L, pivots, nb, K);
  OValue *positions = iota_i64(L, size, IOTA_VEC);
  Size one = known_size(L, 1);
  OValue *perm = lw_op2(L, "Add", batch_zeros(L, pivots, s, &one, ET_I64), positions);
  perm = batch_typed(L, perm, ET_I64, s, 1, P, 0);
  if (K == 0 || P == 0) return perm;
  if (lw_loop_check_depth(L) != 0) return NULL;
  LoopBuilder lp;
  lw_loop_begin(L, &lp, "pivot_step", "k");
  OValue *cur = lw_loop_carry(L, &lp, perm, NULL), *k = lp.iteration;
  OValue *j = batch_typed(L, gather_at(L, pivots, k, nb), ET_I64, s, 0, 0, 0);
  j = batch_typed(L, unsqueeze1(L, j, nb), ET_I64, s, 1, 1, 0);
  OValue *at_k = batch_typed(L, gather_at(L, cur, k, nb), ET_I64, s, 0, 0, 0);
  at_k = batch_typed(L, unsqueeze1(L, at_k, nb), ET_I64, s, 1, 1, 0);
  OValue *gin[2] = {cur, j};
  ONode *g = lw_node(L, "GatherElements", 2, gin, 1);
  og_attr_int(L->c, g, "axis", nb);
  OValue *at_j = batch_typed(L, g->outputs[0], ET_I64, s, 1, 1, 0);
  OValue *is_j = batch_typed(L, lw_op2(L, "Equal", positions, j), ET_BOOL, s, 1, P, 0);
  OValue *next = batch_typed(L, lw_op3(L, "Where", is_j, at_k, cur), ET_I64, s, 1, P, 0);
  next = lw_op3(L, "Where", mask2(L, "Equal", positions, k, 1, P, 0), at_j, next);
  next = batch_typed(L, next, ET_I64, s, 1, P, 0);
  lw_loop_close(L, &lp, NULL, &next, 0, NULL);
  return lw_loop_node(L, &lp, steps.v, NULL)->outputs[0];
}

static int lower_pivots_to_permutation(Lower *L, const Op *op, int n_data) {
  if (n_data != 1 || op->n_results != 1)
    return lw_unsupported(L, "expected the pivots and the permutation");
  const Type *pt = &op->operands[0]->type, *rt = &op->results[0]->type;
  if (pt->rank < 1 || rt->rank != pt->rank || !et_is_int(pt->et) || !et_is_int(rt->et))
    return lw_bad_input(L, "the pivots and the permutation are not integer vectors of the "
                           "same batch");
  MatShape s = {0}; /* the batch, for typing */
  s.nb = pt->rank - 1;
  memcpy(s.dims, pt->dims, sizeof(int64_t) * (size_t)s.nb);
  int64_t K = pt->dims[s.nb], P = rt->dims[s.nb];
  if (K == DIM_DYN || P == DIM_DYN)
    return lw_unsupported(L, "the count of pivots or the permutation's size is dynamic");
  OValue *pivots = batch_typed(L, lw_cast(L, lw_get(L, op->operands[0]), ET_I64), ET_I64, &s,
                               1, K, 0);
  OValue *perm = permutation_of_pivots(L, pivots, &s, K, pivots, 0, P); /* P is static */
  if (!perm) return -1;
  lw_bind(L, op->results[0], batch_typed(L, lw_cast(L, perm, rt->et), rt->et, &s, 1, P, 0));
  return 0;
}

/* LuDecomposition (JAX's export for TPU): the packed LU, the 0-based pivots
 * and the row permutation, without info. */
static int lower_lu_decomposition(Lower *L, const Op *op, int n_data) {
  if (n_data != 1 || op->n_results != 3)
    return lw_unsupported(L, "LuDecomposition with %d operands and %d results (expected 1 "
                             "and 3: the factors, the pivots and the permutation)",
                          n_data, op->n_results);
  MatShape s;
  if (mat_shape(L, op->operands[0], &s, "the operand") != 0) return -1;
  ElemType piv_et = op->results[1]->type.et, perm_et = op->results[2]->type.et;
  int64_t m = rows_of(&s), n = cols_of(&s);
  int64_t K = m == DIM_DYN || n == DIM_DYN ? DIM_DYN : m < n ? m : n;
  OValue *a = lw_get(L, op->operands[0]);
  Size none = known_size(L, 0);
  LuParts lu = {a, batch_zeros(L, a, &s, &none, ET_I64), NULL};
  if (K != 0 && lu_loop(L, a, &s, &lu) != 0) return -1;
  OValue *perm = permutation_of_pivots(L, lu.pivots, &s, K, a, s.nb, m);
  if (!perm) return -1;
  lw_bind(L, op->results[0], lu.lu);
  lw_bind(L, op->results[1], batch_typed(L, lw_cast(L, lu.pivots, piv_et), piv_et, &s, 1, K, 0));
  lw_bind(L, op->results[2], batch_typed(L, lw_cast(L, perm, perm_et), perm_et, &s, 1, m, 0));
  return 0;
}

static const struct {
  const char *target;
  int (*lower)(Lower *L, const Op *op, int n_data);
} accelerator_targets[] = {
    {"cusolver_getrf_ffi", lower_getrf},
    {"hipsolver_getrf_ffi", lower_getrf},
    {"cusolver_potrf_ffi", lower_gpu_potrf},
    {"hipsolver_potrf_ffi", lower_gpu_potrf},
    {"cu_lu_pivots_to_permutation", lower_pivots_to_permutation},
    {"hip_lu_pivots_to_permutation", lower_pivots_to_permutation},
    {"LuDecomposition", lower_lu_decomposition}, /* TPU */
};

static int accelerator_target(const char *target) {
  for (size_t i = 0; i < sizeof accelerator_targets / sizeof accelerator_targets[0]; i++)
    if (strcmp(target, accelerator_targets[i].target) == 0) return (int)i;
  return -1;
}

const char *lw_linalg_name(const Op *op) {
  if (op->kind == OP_TRIANGULAR_SOLVE) return "triangular_solve";
  if (op->kind == OP_CHOLESKY) return "cholesky";
  if (op->kind != OP_CUSTOM_CALL) return NULL;
  const Attr *t = ir_op_attr(op, "call_target_name");
  if (!t || !t->s) return NULL;
  return strncmp(t->s, "lapack_", 7) == 0 || accelerator_target(t->s) >= 0 ? t->s : NULL;
}

/* With dynamic dims, JAX passes the shapes of the results as operands after
 * the data ones (indices_of_shape_operands); the ONNX ops take their shapes
 * from the data, so they are not read.  The count of data operands, or -1. */
static int data_operand_count(Lower *L, const Op *op) {
  const Attr *a = ir_op_attr(op, "indices_of_shape_operands");
  if (!a) return op->n_operands;
  int64_t *idx;
  int k = ir_attr_i64s(L->c, a, &idx);
  if (k < 0 || k > op->n_operands) return -1;
  for (int i = 0; i < k; i++)
    if (idx[i] != op->n_operands - k + i) return -1;
  return op->n_operands - k;
}

int lower_lapack_lu_call(Lower *L, const Op *op, const char *target) {
  char letter;
  int row = lapack_routine(target, &letter), accel_row = row < 0 ? accelerator_target(target) : -1;
  if (row < 0 && accel_row < 0) return 1;
  if (op->n_operands < 1) return lw_bad_input(L, "no operand");
  ElemType et = op->operands[0]->type.et;
  if (row >= 0 && (letter == 'c' || letter == 'z'))
    return lw_unsupported(L, "complex linear algebra (%s) is not supported", target);
  if (row >= 0 && et != (letter == 's' ? ET_F32 : ET_F64))
    return lw_bad_input(L, "the operand's element type is not the one the target names");
  bool reads_matrix = accel_row < 0 || accelerator_targets[accel_row].lower != lower_pivots_to_permutation;
  if (accel_row >= 0 && reads_matrix && et != ET_F32 && et != ET_F64)
    return lw_unsupported(L, "a factorisation of element type other than f32 or f64");
  int n_data = data_operand_count(L, op);
  if (n_data < 0)
    return lw_unsupported(L, "indices_of_shape_operands does not name the trailing operands");
  return row >= 0 ? lapack_routines[row].lower(L, op, n_data)
                  : accelerator_targets[accel_row].lower(L, op, n_data);
}
