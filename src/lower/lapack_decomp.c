/* lapack_decomp.c - the LAPACK decompositions JAX calls on CPU through
 * stablehlo.custom_call @lapack_<s|d><routine>_ffi, written as ONNX: QR
 * (geqrf, orgqr), the symmetric eigensolver (syevd), the SVD (gesdd,
 * gesvd), the Hessenberg and tridiagonal reductions (gehrd, sytrd) and the
 * tridiagonal solve (gtsv), QR with column pivoting (geqp3); the
 * non-symmetric eigensolvers (geev, gees) are refused (`routines` below).
 *
 * ONNX has none of these as ops, so each is an iterative algorithm in an
 * ONNX Loop whose body applies one vectorised step to the whole (batched)
 * matrix; the graph stays small whatever n is.  Matrices are static in
 * their last two axes (they set the trip counts and the rotation schedule);
 * the leading (batch) axes are flattened into one, which may be symbolic.
 *
 * - geqrf: Householder QR, one Loop iteration per column, with LAPACK's
 *   conventions (dlarfg: beta = -sign(alpha) * norm, tau = (beta - alpha) /
 *   beta, v = x / (alpha - beta) with v[0] = 1 implied, tau = 0 when the
 *   column below the diagonal is zero), so the packed reflectors, tau and R
 *   match LAPACK's elementwise.
 * - orgqr: Q = H(0) H(1) ... H(k-1) applied to the first n columns of the
 *   identity, one reflector per iteration from the last.
 * - syevd: cyclic Jacobi in parallel (round-robin) order: each iteration
 *   rotates n/2 disjoint pairs at once (one rotation matrix J, A <- J^T A J,
 *   V <- V J), until the off-diagonal part is below eps * |A|_F or a sweep
 *   cap; eigenvalues ascending (TopK), eigenvectors defined up to sign.
 * - gesdd/gesvd: one-sided Jacobi (Hestenes) on the columns of A (of A^T
 *   when it is wide) in the same parallel order, until every column pair is
 *   orthogonal to eps; singular values descending; U is completed to an
 *   orthonormal basis (full_matrices, zero singular values) by a Householder
 *   QR of the normalised columns.
 * - gehrd/sytrd: geqrf's Householder sweep with the pivot one row below the
 *   diagonal, applied from both sides.
 * - gtsv: LAPACK's elimination with partial pivoting, then back
 *   substitution, one row per iteration.
 * Each iteration runs on the matrix divided by a power of two near its
 * largest entry (exact), so sums of squares neither overflow nor underflow
 * where LAPACK's scaled norms do not.  The custom_calls' info outputs are
 * zeros (the iterations always finish).
 */
#include "lower/lower.h"

#include <math.h>
#include <string.h>

/* Jacobi sweeps at most (a sweep rotates every pair once); cyclic Jacobi
 * converges quadratically, in 6 to 10 sweeps for n up to a few hundred. */
#define JACOBI_MAX_SWEEPS 30

/* The unit roundoff of et (LAPACK's dlamch('E')). */
static double unit_roundoff(ElemType et) { return et == ET_F64 ? 0x1p-53 : 0x1p-24; }

/* ---- small builders ------------------------------------------------------ */

static OValue *fconst(Lower *L, ElemType et, double v) { return lw_const_scalar(L, et, v); }
static OValue *iconst(Lower *L, int64_t v) { return lw_const_scalar(L, ET_I64, (double)v); }

static OValue *add(Lower *L, OValue *a, OValue *b) { return lw_op2(L, "Add", a, b); }
static OValue *sub(Lower *L, OValue *a, OValue *b) { return lw_op2(L, "Sub", a, b); }
static OValue *mul(Lower *L, OValue *a, OValue *b) { return lw_op2(L, "Mul", a, b); }
static OValue *divide(Lower *L, OValue *a, OValue *b) { return lw_op2(L, "Div", a, b); }
static OValue *matmul(Lower *L, OValue *a, OValue *b) { return lw_op2(L, "MatMul", a, b); }
static OValue *where(Lower *L, OValue *c, OValue *a, OValue *b) {
  return lw_op3(L, "Where", c, a, b);
}

static OValue *gather(Lower *L, OValue *x, OValue *index, int64_t axis) {
  OValue *in[2] = {x, index};
  ONode *n = lw_node(L, "Gather", 2, in, 1);
  og_attr_int(L->c, n, "axis", axis);
  return n->outputs[0];
}

static OValue *gather_elements(Lower *L, OValue *x, OValue *index, int64_t axis) {
  OValue *in[2] = {x, index};
  ONode *n = lw_node(L, "GatherElements", 2, in, 1);
  og_attr_int(L->c, n, "axis", axis);
  return n->outputs[0];
}

static OValue *reduce_sum(Lower *L, OValue *x, int64_t axis, bool keepdims) {
  OValue *in[2] = {x, lw_const_i64s(L, 1, &axis)};
  ONode *n = lw_node(L, "ReduceSum", 2, in, 1);
  og_attr_int(L->c, n, "keepdims", keepdims);
  return n->outputs[0];
}

/* The largest element of x (all axes), as a scalar. */
static OValue *reduce_max_all(Lower *L, OValue *x) {
  ONode *n = lw_node(L, "ReduceMax", 1, &x, 1);
  og_attr_int(L->c, n, "keepdims", 0);
  return n->outputs[0];
}

static OValue *unsqueeze(Lower *L, OValue *x, int64_t axis) {
  return lw_op2(L, "Unsqueeze", x, lw_const_i64s(L, 1, &axis));
}

/* Per matrix of a ([B, m, n]): the power of two at or below max |a_ij|
 * ([B, 1, 1]); 1 where a is 0 or not finite.  The iterations run on a
 * divided by it: exact (a power of two), and the largest entry is then
 * near 1, so their sums of squares (norms, rotation angles, convergence
 * tests) neither overflow nor underflow where the entries alone would not,
 * as LAPACK's scaled norms. */
static OValue *power_of_two_scale(Lower *L, ElemType et, OValue *a) {
  static const int64_t axes[2] = {1, 2};
  OValue *abs = lw_op1(L, "Abs", a);
  ONode *n;
  if (L->opset >= 18) {
    OValue *in[2] = {abs, lw_const_i64s(L, 2, axes)};
    n = lw_node(L, "ReduceMax", 2, in, 1);
  } else {
    n = lw_node(L, "ReduceMax", 1, &abs, 1);
    og_attr_ints(L->c, n, "axes", axes, 2);
  }
  og_attr_int(L->c, n, "keepdims", 1);
  OValue *largest = n->outputs[0], *one = lw_const_scalar(L, et, 1.0);
  OValue *usable = lw_op2(L, "And", lw_op2(L, "Greater", largest, lw_const_scalar(L, et, 0.0)),
                          lw_op2(L, "Less", largest, lw_const_scalar(L, et, INFINITY)));
  OValue *log2 = lw_op2(L, "Div", lw_op1(L, "Log", lw_op3(L, "Where", usable, largest, one)),
                        lw_const_scalar(L, et, 0.69314718055994530942)); /* ln 2 */
  return lw_op2(L, "Pow", lw_const_scalar(L, et, 2.0), lw_op1(L, "Floor", log2));
}

/* x ([B, ...]) with its last `n_axes` axes (1 or 2) in reverse order. */
static OValue *reversed(Lower *L, OValue *x, int n_axes) {
  int64_t starts[2] = {-1, -1}, ends[2] = {INT64_MIN, INT64_MIN}, axes[2] = {-1, -2},
          steps[2] = {-1, -1};
  OValue *in[5] = {x, lw_const_i64s(L, n_axes, starts), lw_const_i64s(L, n_axes, ends),
                   lw_const_i64s(L, n_axes, axes), lw_const_i64s(L, n_axes, steps)};
  return lw_node(L, "Slice", 5, in, 1)->outputs[0];
}

/* [B, 1, 1] -> [B, 1]. */
static OValue *squeeze_last(Lower *L, OValue *x) {
  int64_t axis = 2;
  return lw_op2(L, "Squeeze", x, lw_const_i64s(L, 1, &axis));
}

/* a / scale, typed as a. */
static OValue *scaled_down(Lower *L, OValue *a, OValue *scale) {
  OValue *y = lw_op2(L, "Div", a, scale);
  y->type = a->type;
  return y;
}

/* The transpose of the last two axes of a rank-3 tensor (rank 2 if !batched). */
static OValue *transpose_last2(Lower *L, OValue *x, bool batched) {
  static const int64_t perm3[3] = {0, 2, 1}, perm2[2] = {1, 0};
  ONode *n = lw_node(L, "Transpose", 1, &x, 1);
  og_attr_ints(L->c, n, "perm", batched ? perm3 : perm2, batched ? 3 : 2);
  return n->outputs[0];
}

static OValue *typed3(Lower *L, OValue *v, ElemType et, int64_t b, int64_t m, int64_t n) {
  int64_t dims[3] = {b, m, n};
  return lw_typed(L, v, et, 3, dims);
}

/* 0, 1, ..., n-1 (int64) along axis `axis` of a tensor of rank `rank`
 * whose other axes are 1. */
static OValue *index_along(Lower *L, int64_t n, int rank, int axis) {
  int64_t dims[3] = {1, 1, 1};
  dims[axis] = n;
  int64_t *vals = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
  for (int64_t i = 0; i < n; i++) vals[i] = i;
  Data d = {DATA_RAW, vals, sizeof(int64_t) * (size_t)n};
  return lw_const_data(L, ET_I64, rank, dims, d);
}

/* The m x n identity (ones on the diagonal), of type et. */
static OValue *eye(Lower *L, ElemType et, int64_t m, int64_t n) {
  size_t size = et_size(et);
  uint8_t *buf = arena_alloc(L->c->arena, size * (size_t)(m * n > 0 ? m * n : 1));
  for (int64_t i = 0; i < m; i++)
    for (int64_t j = 0; j < n; j++) elem_store(buf, et, i * n + j, i == j ? 1.0 : 0.0);
  int64_t dims[2] = {m, n};
  Data d = {DATA_RAW, buf, size * (size_t)(m * n)};
  return lw_const_data(L, et, 2, dims, d);
}

/* x broadcast to the shape of `like` (Expand by Shape(like)). */
static OValue *expand_like(Lower *L, OValue *x, OValue *like) {
  return lw_op2(L, "Expand", x, lw_op1(L, "Shape", like));
}

/* Axis `from`..`to` of the shape of x, as a 1-D int64. */
static OValue *shape_slice(Lower *L, OValue *x, int64_t from, int64_t to) {
  OValue *in[3] = {lw_op1(L, "Shape", x), lw_const_i64s(L, 1, &from), lw_const_i64s(L, 1, &to)};
  return lw_node(L, "Slice", 3, in, 1)->outputs[0];
}

/* Columns [0, n) of x (last axis). */
static OValue *first_columns(Lower *L, OValue *x, int64_t n) {
  int64_t zero = 0, axis = -1;
  OValue *in[4] = {x, lw_const_i64s(L, 1, &zero), lw_const_i64s(L, 1, &n),
                   lw_const_i64s(L, 1, &axis)};
  return lw_node(L, "Slice", 4, in, 1)->outputs[0];
}

/* x padded with `value` after its last `pad_last` entries on the last axis
 * and `pad_rows` on the axis before (x of rank 3). */
static OValue *pad_end(Lower *L, OValue *x, ElemType et, int64_t pad_rows, int64_t pad_last,
                       int rank, double value) {
  int64_t pads[6] = {0};
  pads[rank + rank - 1] = pad_last;
  if (rank >= 2) pads[rank + rank - 2] = pad_rows;
  OValue *in[3] = {x, lw_const_i64s(L, 2 * rank, pads), fconst(L, et, value)};
  return lw_node(L, "Pad", 3, in, 1)->outputs[0];
}

/* ---- batches: [batch..., rows, cols] <-> [B, rows, cols] ----------------- */

typedef struct Batch {
  OValue *source; /* the operand the batch axes are read from when symbolic */
  int n_axes;     /* leading axes */
  const int64_t *dims;
  int64_t count; /* their product, or DIM_DYN */
} Batch;

/* The batch of operand v, whose last `tail` axes are the matrix (2) or
 * vector (1) and must be static. */
static int batch_of(Lower *L, const Value *v, int tail, Batch *b) {
  const Type *t = &v->type;
  if (t->kind != TK_TENSOR || t->rank < tail)
    return lw_unsupported(L, "operand of rank %d where a matrix is expected", t->rank);
  if (t->et != ET_F32 && t->et != ET_F64)
    return lw_unsupported(L, "element type %s (only f32 and f64 are converted)",
                          et_mlir_name(t->et));
  for (int i = t->rank - tail; i < t->rank; i++)
    if (t->dims[i] == DIM_DYN)
      return lw_unsupported(L, "a symbolic matrix size (the iteration counts follow it)");
  b->source = lw_get(L, v);
  b->n_axes = t->rank - tail;
  b->dims = t->dims;
  b->count = 1;
  for (int i = 0; i < b->n_axes; i++)
    b->count = (t->dims[i] == DIM_DYN || b->count == DIM_DYN) ? DIM_DYN : b->count * t->dims[i];
  return 0;
}

/* x ([batch..., tail...]) reshaped to [B, tail...]. */
static OValue *flatten(Lower *L, const Batch *b, OValue *x, ElemType et, int tail,
                       const int64_t *tail_dims) {
  int64_t shape[3] = {b->count == DIM_DYN ? -1 : b->count, 0, 0};
  for (int i = 0; i < tail; i++) shape[1 + i] = tail_dims[i];
  OValue *y = lw_op2(L, "Reshape", x, lw_const_i64s(L, 1 + tail, shape));
  shape[0] = b->count;
  return lw_typed(L, y, et, 1 + tail, shape);
}

/* The opening of most routines: operand v, a batch of static m x n
 * matrices (batch_of), its batch *b, *m and *n, and the matrices flattened
 * to [B, m, n]; NULL after an error. */
static OValue *matrices_of(Lower *L, const Value *v, ElemType et, Batch *b, int64_t *m,
                           int64_t *n) {
  if (batch_of(L, v, 2, b) != 0) return NULL;
  const int64_t *mn = b->dims + b->n_axes;
  *m = mn[0];
  *n = mn[1];
  return flatten(L, b, b->source, et, 2, mn);
}

/* x ([B, tail...]) reshaped to [batch..., tail...]. */
static OValue *unflatten(Lower *L, const Batch *b, OValue *x, int tail, const int64_t *tail_dims) {
  OValue *shape;
  if (b->count != DIM_DYN) {
    int64_t dims[MAX_RANK + 3];
    for (int i = 0; i < b->n_axes; i++) dims[i] = b->dims[i];
    for (int i = 0; i < tail; i++) dims[b->n_axes + i] = tail_dims[i];
    shape = lw_const_i64s(L, b->n_axes + tail, dims);
  } else {
    OValue *in[2] = {shape_slice(L, b->source, 0, b->n_axes), lw_const_i64s(L, tail, tail_dims)};
    ONode *n = lw_node(L, "Concat", 2, in, 1);
    og_attr_int(L->c, n, "axis", 0);
    shape = n->outputs[0];
  }
  return lw_op2(L, "Reshape", x, shape);
}

/* The integer `name` of op's mhlo.backend_config (uplo, mode, ...), else
 * `fallback`, LAPACK's default. */
static int64_t config_int(const Op *op, const char *name, int64_t fallback) {
  const Attr *cfg = ir_op_attr(op, "mhlo.backend_config");
  int64_t v = fallback;
  if (cfg && ir_dict_field(cfg, name)) ir_attr_int(ir_dict_field(cfg, name), &v);
  return v;
}

/* x ([B, m, n]) reshaped to the shape of the operand b is the batch of. */
static OValue *unflatten_like_operand(Lower *L, const Batch *b, OValue *x) {
  return unflatten(L, b, x, 2, b->dims + b->n_axes);
}

/* Zeros of type et and shape [B, tail...], B that of `like` ([B, ...]). */
static OValue *zeros_batch(Lower *L, OValue *like, ElemType et, int tail,
                           const int64_t *tail_dims) {
  OValue *in[2] = {shape_slice(L, like, 0, 1), lw_const_i64s(L, tail, tail_dims)};
  ONode *n = lw_node(L, "Concat", 2, in, 1);
  og_attr_int(L->c, n, "axis", 0);
  return lw_op2(L, "Expand", fconst(L, et, 0.0), n->outputs[0]);
}

/* Result `result` of op: LAPACK's info for each matrix of the batch (a,
 * [B, ...], of type et), int32 zeros: the iterations here always finish. */
static void bind_zero_info(Lower *L, const Op *op, int result, const Batch *b, OValue *a,
                           ElemType et) {
  int64_t none = 0;
  OValue *info = lw_cast(L, zeros_batch(L, a, et, 0, &none), ET_I32);
  lw_bind(L, op->results[result], unflatten(L, b, info, 0, NULL));
}

/* ---- Loops ------------------------------------------------------------- */

#define MAX_CARRIED 6 /* the most any Loop here carries (5: geqp3) */

/* A Loop (lower/loop.c) and its carried values' values in the body. */
typedef struct LoopFrame {
  LoopBuilder loop;
  OValue *carried[MAX_CARRIED];
  int n;
} LoopFrame;

/* Opens the body of a Loop carrying init[0..n): builders then write into
 * it until loop_end.  (lower_lapack_decomposition checked that a Loop may
 * nest here: the Loops of a routine follow one another.) */
static void loop_begin(Lower *L, LoopFrame *f, int n, OValue *const *init) {
  lw_loop_begin(L, &f->loop, "decomposition_step", NULL);
  f->n = n;
  for (int i = 0; i < n; i++) f->carried[i] = lw_loop_carry(L, &f->loop, init[i], NULL);
}

/* Closes the body: next[i] are the carried values after the iteration,
 * keep_going (NULL: always) the condition for another; the body's outputs
 * are typed as the Loop's (the steps' values mostly are not).  Emits the
 * Loop in the enclosing graph (at most max_trips iterations, the first one
 * when first_cond, NULL: always) and stores its outputs in out[0..n). */
static void loop_end(Lower *L, LoopFrame *f, OValue *keep_going, OValue *const *next,
                     int64_t max_trips, OValue *first_cond, OValue **out) {
  lw_loop_close(L, &f->loop, keep_going, next, 0, NULL);
  OValue **body_out = (OValue **)f->loop.body->outputs.items;
  og_set_type(L->c, body_out[0], ET_BOOL, 0, NULL);
  for (int i = 0; i < f->n; i++) body_out[1 + i]->type = ((OValue *)f->loop.init.items[i])->type;
  ONode *loop = lw_loop_node(L, &f->loop, iconst(L, max_trips), first_cond);
  for (int i = 0; i < f->n; i++) out[i] = loop->outputs[i];
}

/* ---- Householder QR (geqrf) and the product of reflectors (orgqr) -------- */

/* One Householder step inside a Loop body, on A: [B, m, n] at column j (i64
 * scalar): the reflector H = I - tau v v^T of LAPACK's dlarfg that zeroes
 * column j below row j + below, v with a 1 at that row and zeros above,
 * applied from the left to the columns right of j, and when two_sided
 * first from the right to every row (A H).  Column j then holds the rows
 * above the pivot unchanged, the new pivot (beta) and v below it.
 * rows: [1, m] and cols: [1, 1, n] positions.  Returns the new A; *tau_j:
 * [B]. */
static OValue *householder_step(Lower *L, ElemType et, OValue *A, OValue *j, int64_t below,
                                bool two_sided, OValue *rows, OValue *cols, OValue **tau_out) {
  OValue *zero = fconst(L, et, 0.0), *one = fconst(L, et, 1.0);
  OValue *pivot = below ? add(L, j, iconst(L, below)) : j;
  OValue *x = gather(L, A, j, 2);                    /* column j: [B, m] */
  OValue *alpha = gather(L, x, pivot, 1);            /* [B] */
  OValue *under = lw_op2(L, "Greater", rows, pivot); /* [1, m] */
  OValue *x_below = where(L, under, x, zero);
  OValue *xnorm2 = reduce_sum(L, mul(L, x_below, x_below), 1, false);
  OValue *norm = lw_op1(L, "Sqrt", add(L, mul(L, alpha, alpha), xnorm2));
  OValue *identity = lw_op2(L, "Equal", xnorm2, zero); /* H = I, tau = 0 */
  OValue *beta = where(L, lw_op2(L, "GreaterOrEqual", alpha, zero), lw_op1(L, "Neg", norm), norm);
  OValue *safe_beta = where(L, identity, one, beta);
  OValue *tau_j = where(L, identity, zero, divide(L, sub(L, beta, alpha), safe_beta));
  OValue *scale =
      where(L, identity, zero, divide(L, one, where(L, identity, one, sub(L, alpha, beta))));
  OValue *v_below = mul(L, x_below, unsqueeze(L, scale, 1)); /* [B, m] */
  OValue *on_pivot = lw_op2(L, "Equal", rows, pivot);
  OValue *v = where(L, on_pivot, one, v_below);
  OValue *tau3 = unsqueeze(L, unsqueeze(L, tau_j, 1), 2); /* [B, 1, 1] */
  OValue *right_of_j = lw_op2(L, "Greater", cols, j);
  if (two_sided) {
    /* A -= tau (A v) v^T: only the columns where v is not 0 change */
    OValue *av = matmul(L, A, unsqueeze(L, v, 2)); /* [B, m, 1] */
    A = sub(L, A, mul(L, mul(L, av, tau3), unsqueeze(L, v, 1)));
  }
  /* A -= tau v (v^T A), on the columns right of j */
  OValue *w = matmul(L, unsqueeze(L, v, 1), A); /* [B, 1, n] */
  w = where(L, right_of_j, w, zero);
  OValue *updated = sub(L, A, mul(L, mul(L, unsqueeze(L, v, 2), tau3), w));
  /* column j: rows above the pivot unchanged, beta at it, v below */
  OValue *diag = where(L, identity, alpha, beta);
  OValue *col = where(L, lw_op2(L, "Less", rows, pivot), x,
                      where(L, on_pivot, unsqueeze(L, diag, 1), v_below));
  *tau_out = tau_j;
  return where(L, lw_op2(L, "Equal", cols, j), unsqueeze(L, col, 2), updated);
}

/* The Householder sweep of `steps` steps (householder_step) over a: [B, m,
 * n], below = 0 for QR (geqr2), 1 for the Hessenberg and tridiagonal
 * reductions (gehd2, sytd2, two_sided).  packed: the matrix the steps
 * leave; tau: [B, steps]. */
static void householder_sweep(Lower *L, ElemType et, int64_t b, int64_t m, int64_t n, int64_t steps,
                              int64_t below, bool two_sided, OValue *a, OValue **packed,
                              OValue **tau_out) {
  OValue *tau0 = zeros_batch(L, a, et, 1, &steps);
  og_set_type(L->c, tau0, et, 2, (int64_t[]){b, steps});
  /* reflectors and tau do not change with a's scale; the reduced part (on
   * and above row j + below of column j) scales with it */
  OValue *a_scale = power_of_two_scale(L, et, a);
  OValue *upper = lw_op2(L, "LessOrEqual", index_along(L, m, 3, 1),
                         lw_op2(L, "Add", index_along(L, n, 3, 2), iconst(L, below)));
  a = scaled_down(L, a, a_scale);
  OValue *rows = index_along(L, m, 2, 1);     /* [1, m] */
  OValue *cols = index_along(L, n, 3, 2);     /* [1, 1, n] */
  OValue *taus = index_along(L, steps, 2, 1); /* [1, steps] */
  OValue *init[2] = {a, tau0};
  LoopFrame f;
  loop_begin(L, &f, 2, init);
  OValue *j = f.loop.iteration, *tau_j;
  OValue *next_a = householder_step(L, et, f.carried[0], j, below, two_sided, rows, cols, &tau_j);
  OValue *next_tau = where(L, lw_op2(L, "Equal", taus, j), unsqueeze(L, tau_j, 1), f.carried[1]);
  OValue *next[2] = {next_a, next_tau}, *out[2];
  loop_end(L, &f, NULL, next, steps, NULL, out);
  *packed = where(L, upper, mul(L, out[0], a_scale), out[0]);
  *tau_out = out[1];
}

/* a: [B, m, n].  packed: R on and above the diagonal, the reflectors'
 * vectors below it; tau: [B, min(m, n)] (LAPACK's geqrf). */
static void householder_qr(Lower *L, ElemType et, int64_t b, int64_t m, int64_t n, OValue *a,
                           OValue **packed, OValue **tau_out) {
  householder_sweep(L, et, b, m, n, m < n ? m : n, 0, false, a, packed, tau_out);
}

/* a: [B, m, n] holding reflector vectors below its diagonal (the first k
 * columns), tau: [B, k].  The first n columns of H(0) ... H(k-1). */
static OValue *householder_product(Lower *L, ElemType et, int64_t m, int64_t n, int64_t k,
                                   OValue *a, OValue *tau) {
  OValue *q0 = expand_like(L, eye(L, et, m, n), a);
  q0->type = a->type;
  OValue *rows = index_along(L, m, 2, 1); /* [1, m] */
  OValue *init[1] = {q0};
  LoopFrame f;
  loop_begin(L, &f, 1, init);
  OValue *zero = fconst(L, et, 0.0), *one = fconst(L, et, 1.0);
  OValue *i = sub(L, iconst(L, k - 1), f.loop.iteration); /* the last reflector first */
  OValue *Q = f.carried[0];
  OValue *x = gather(L, a, i, 2); /* [B, m] */
  OValue *v =
      where(L, lw_op2(L, "Greater", rows, i), x, where(L, lw_op2(L, "Equal", rows, i), one, zero));
  OValue *tau_i = gather(L, tau, i, 1);         /* [B] */
  OValue *w = matmul(L, unsqueeze(L, v, 1), Q); /* [B, 1, n] */
  OValue *tv = mul(L, unsqueeze(L, v, 2), unsqueeze(L, unsqueeze(L, tau_i, 1), 2));
  OValue *next[1] = {sub(L, Q, mul(L, tv, w))}, *out[1];
  loop_end(L, &f, NULL, next, k, NULL, out);
  return out[0];
}

/* lapack_?geqrf_ffi(a) -> (packed a, tau) */
static int lower_geqrf(Lower *L, const Op *op, ElemType et) {
  Batch b;
  int64_t m, n;
  OValue *a = matrices_of(L, op->operands[0], et, &b, &m, &n);
  if (!a) return -1;
  int64_t k = m < n ? m : n;
  OValue *packed, *tau;
  if (k == 0) {
    packed = a;
    tau = zeros_batch(L, a, et, 1, &k);
  } else {
    householder_qr(L, et, b.count, m, n, a, &packed, &tau);
  }
  lw_bind(L, op->results[0], unflatten_like_operand(L, &b, packed));
  lw_bind(L, op->results[1], unflatten(L, &b, tau, 1, &k));
  return 0;
}

/* Swaps entries i and p[b] of the last axis of x ([B, ..., n]): positions
 * ([1, .., n]) numbers that axis, p is [B, 1] (vectors) or [B, 1, 1]. */
static OValue *swap_last(Lower *L, OValue *x, OValue *i, OValue *p, OValue *positions, OValue *x_i,
                         OValue *x_p) {
  return where(L, lw_op2(L, "Equal", positions, i), x_p,
               where(L, lw_op2(L, "Equal", positions, p), x_i, x));
}

/* Whether every element of the integer value v is known to be 0: a
 * constant, or (under shape polymorphism) a constant broadcast to a
 * symbolic shape. */
static bool all_zeros(Lower *L, const Value *v) {
  while (v->def && v->def->kind == OP_DYNAMIC_BROADCAST_IN_DIM && v->def->n_operands > 0)
    v = v->def->operands[0];
  const int64_t *ints = lw_const_ints(L, v);
  int64_t count = type_numel(&v->type);
  if (!ints || count < 0) return false;
  for (int64_t i = 0; i < count; i++)
    if (ints[i] != 0) return false;
  return true;
}

/* lapack_?geqp3_ffi(a, jpvt) -> (packed a, jpvt, tau): QR with column
 * pivoting (jax.scipy.linalg.qr(pivoting=True)), LAPACK's laqp2 step by
 * step: before step i the remaining column of largest partial norm (the
 * first of equal ones) is swapped into place; after it the partial norms
 * are downdated (vn1 *= sqrt(1 - (|a_ij| / vn1)^2)) or, where that has
 * lost too much (LAPACK's test against sqrt(eps)), recomputed.  JAX passes
 * jpvt = 0 (every column free); other jpvt are refused. */
static int lower_geqp3(Lower *L, const Op *op, ElemType et) {
  Batch b;
  int64_t m, n;
  OValue *a = matrices_of(L, op->operands[0], et, &b, &m, &n);
  if (!a) return -1;
  int64_t k = m < n ? m : n;
  if (!all_zeros(L, op->operands[1]))
    return lw_unsupported(L, "QR with columns fixed in front (a jpvt not known to be all 0; "
                             "JAX passes zeros)");
  int64_t *ones_based = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(n + 1));
  for (int64_t i = 0; i < n; i++) ones_based[i] = i + 1;
  int64_t row_dims[2] = {1, n};
  OValue *order = lw_const_data(L, ET_I64, 2, row_dims,
                                (Data){DATA_RAW, ones_based, sizeof(int64_t) * (size_t)n});
  OValue *packed = a, *tau, *jpvt;
  /* [B, n] of 1, 2, ..., n: LAPACK numbers columns from 1 */
  OValue *jpvt0 = lw_op2(L, "Add", lw_cast(L, zeros_batch(L, a, et, 1, &n), ET_I64), order);
  og_set_type(L->c, jpvt0, ET_I64, 2, (int64_t[]){b.count, n});
  if (k == 0) {
    tau = zeros_batch(L, a, et, 1, &k);
    jpvt = jpvt0;
  } else {
    OValue *a_scale = power_of_two_scale(L, et, a);
    OValue *upper = lw_op2(L, "LessOrEqual", index_along(L, m, 3, 1), index_along(L, n, 3, 2));
    OValue *as = scaled_down(L, a, a_scale);
    OValue *norms = lw_op1(L, "Sqrt", reduce_sum(L, mul(L, as, as), 1, false));
    og_set_type(L->c, norms, et, 2, (int64_t[]){b.count, n});
    OValue *tau0 = zeros_batch(L, a, et, 1, &k);
    og_set_type(L->c, tau0, et, 2, (int64_t[]){b.count, k});
    OValue *rows = index_along(L, m, 2, 1), *rows3 = index_along(L, m, 3, 1);
    OValue *cols = index_along(L, n, 2, 1), *cols3 = index_along(L, n, 3, 2);
    OValue *taus = index_along(L, k, 2, 1);
    double tol3z = sqrt(unit_roundoff(et));
    OValue *init[5] = {as, tau0, norms, norms, jpvt0};
    LoopFrame f;
    loop_begin(L, &f, 5, init);
    OValue *i = f.loop.iteration, *A = f.carried[0], *vn1 = f.carried[2], *vn2 = f.carried[3];
    OValue *jp = f.carried[4];
    OValue *zero = fconst(L, et, 0.0), *one = fconst(L, et, 1.0);
    /* the pivot: the first largest partial norm among columns i.. */
    OValue *candidates = where(L, lw_op2(L, "GreaterOrEqual", cols, i), vn1, fconst(L, et, -1.0));
    ONode *argmax = lw_node(L, "ArgMax", 1, &candidates, 1);
    og_attr_int(L->c, argmax, "axis", 1);
    og_attr_int(L->c, argmax, "keepdims", 1);
    OValue *p = argmax->outputs[0];                      /* [B, 1] */
    OValue *p3 = unsqueeze(L, p, 1);                     /* [B, 1, 1] */
    OValue *col_i = unsqueeze(L, gather(L, A, i, 2), 2); /* [B, m, 1] */
    OValue *col_p = gather_elements(L, A, expand_like(L, p3, col_i), 2);
    A = swap_last(L, A, i, p3, cols3, col_i, col_p);
    OValue *swapped[3];
    OValue *vecs[3] = {vn1, vn2, jp};
    for (int v = 0; v < 3; v++)
      swapped[v] = swap_last(L, vecs[v], i, p, cols, unsqueeze(L, gather(L, vecs[v], i, 1), 1),
                             gather_elements(L, vecs[v], p, 1));
    vn1 = swapped[0];
    vn2 = swapped[1];
    OValue *tau_i;
    OValue *next_a = householder_step(L, et, A, i, 0, false, rows, cols3, &tau_i);
    OValue *next_tau = where(L, lw_op2(L, "Equal", taus, i), unsqueeze(L, tau_i, 1), f.carried[1]);
    /* the partial norms of the columns right of i, without row i */
    OValue *row_i = lw_op1(L, "Abs", gather(L, next_a, i, 1)); /* [B, n] */
    OValue *nonzero = lw_op1(L, "Not", lw_op2(L, "Equal", vn1, zero));
    OValue *ratio = divide(L, row_i, where(L, nonzero, vn1, one));
    OValue *temp = lw_op2(L, "Max", sub(L, one, mul(L, ratio, ratio)), zero);
    OValue *vn_ratio = divide(L, vn1, where(L, lw_op2(L, "Equal", vn2, zero), one, vn2));
    OValue *temp2 = mul(L, temp, mul(L, vn_ratio, vn_ratio));
    OValue *refresh = lw_op2(L, "LessOrEqual", temp2, fconst(L, et, tol3z));
    OValue *below2 = where(L, lw_op2(L, "Greater", rows3, i), mul(L, next_a, next_a), zero);
    OValue *recomputed = lw_op1(L, "Sqrt", reduce_sum(L, below2, 1, false)); /* [B, n] */
    OValue *update = lw_op2(L, "And", lw_op2(L, "Greater", cols, i), nonzero);
    OValue *next_vn1 =
        where(L, update, where(L, refresh, recomputed, mul(L, vn1, lw_op1(L, "Sqrt", temp))), vn1);
    OValue *next_vn2 = where(L, lw_op2(L, "And", update, refresh), recomputed, vn2);
    OValue *next[5] = {next_a, next_tau, next_vn1, next_vn2, swapped[2]}, *out[5];
    loop_end(L, &f, NULL, next, k, NULL, out);
    packed = where(L, upper, mul(L, out[0], a_scale), out[0]);
    tau = out[1];
    jpvt = out[4];
  }
  lw_bind(L, op->results[0], unflatten_like_operand(L, &b, packed));
  lw_bind(L, op->results[1], unflatten(L, &b, lw_cast(L, jpvt, op->results[1]->type.et), 1, &n));
  lw_bind(L, op->results[2], unflatten(L, &b, tau, 1, &k));
  return 0;
}

/* lapack_?orgqr_ffi(a, tau) -> q (householder_product) */
static int lower_orgqr(Lower *L, const Op *op, ElemType et) {
  Batch b;
  int64_t m, n;
  OValue *a = matrices_of(L, op->operands[0], et, &b, &m, &n);
  if (!a) return -1;
  const Type *tt = &op->operands[1]->type;
  if (tt->rank != b.n_axes + 1 || tt->dims[tt->rank - 1] == DIM_DYN)
    return lw_unsupported(L, "tau is not a static vector per matrix");
  int64_t k = tt->dims[tt->rank - 1];
  if (k > n || n > m) return lw_bad_input(L, "orgqr needs k <= n <= m");
  OValue *q;
  if (k == 0) {
    q = expand_like(L, eye(L, et, m, n), a);
  } else {
    OValue *tau = flatten(L, &b, lw_get(L, op->operands[1]), et, 1, &k);
    q = householder_product(L, et, m, n, k, a, tau);
  }
  lw_bind(L, op->results[0], unflatten_like_operand(L, &b, q));
  return 0;
}

/* lapack_?gehrd_ffi(a) -> (packed a, tau [n-1], info): the Hessenberg
 * reduction Q^T A Q (jax.scipy.linalg.hessenberg), gehd2's two-sided
 * sweep; JAX passes ilo = low = 1, ihi = high = n (the whole matrix). */
static int lower_gehrd(Lower *L, const Op *op, ElemType et) {
  Batch b;
  int64_t m, n;
  OValue *a = matrices_of(L, op->operands[0], et, &b, &m, &n);
  if (!a) return -1;
  if (m != n) return lw_bad_input(L, "gehrd of a non-square matrix");
  int64_t low = config_int(op, "low", 1), high = config_int(op, "high", n);
  if (low != 1 || high != n)
    return lw_unsupported(L, "a Hessenberg reduction of rows %lld..%lld only (ilo, ihi)",
                          (long long)low, (long long)high);
  int64_t steps = n > 1 ? n - 1 : 0;
  OValue *packed = a, *tau;
  if (steps == 0) tau = zeros_batch(L, a, et, 1, &steps);
  else householder_sweep(L, et, b.count, n, n, steps, 1, true, a, &packed, &tau);
  lw_bind(L, op->results[0], unflatten_like_operand(L, &b, packed));
  lw_bind(L, op->results[1], unflatten(L, &b, tau, 1, &steps));
  bind_zero_info(L, op, 2, &b, a, et);
  return 0;
}

/* lapack_?sytrd_ffi(a) -> (packed a, d [n], e [n-1], tau [n-1], info): the
 * tridiagonal reduction Q^T A Q of the symmetric matrix of a's lower
 * triangle (uplo = 'L', jax.lax.linalg.tridiagonal's default; 'U' below):
 * the same two-sided sweep as gehrd on the whole symmetric matrix.  LAPACK leaves
 * the strict upper triangle as it was and puts d on the diagonal, e below
 * it and the reflectors under that. */
static int lower_sytrd(Lower *L, const Op *op, ElemType et) {
  Batch b;
  int64_t m, n;
  OValue *a = matrices_of(L, op->operands[0], et, &b, &m, &n);
  if (!a) return -1;
  if (m != n) return lw_bad_input(L, "sytrd of a non-square matrix");
  int64_t uplo = config_int(op, "uplo", 'L');
  /* uplo = 'U' (sytd2 from the last column up, the reflectors above the
   * superdiagonal) is uplo = 'L' on the matrix with its rows and columns
   * in reverse order, and its results reversed back */
  bool upper = uplo == 'U';
  int64_t steps = n > 1 ? n - 1 : 0;
  if (upper) a = typed3(L, reversed(L, a, 2), et, b.count, n, n);
  OValue *rows = index_along(L, n, 3, 1), *cols = index_along(L, n, 3, 2);
  OValue *zero = fconst(L, et, 0.0);
  OValue *tri = where(L, lw_op2(L, "GreaterOrEqual", rows, cols), a, zero);
  OValue *strict = where(L, lw_op2(L, "Equal", rows, cols), zero, tri);
  OValue *sym = typed3(L, add(L, tri, transpose_last2(L, strict, true)), et, b.count, n, n);
  OValue *reduced = sym, *tau;
  if (steps == 0) tau = zeros_batch(L, a, et, 1, &steps);
  else householder_sweep(L, et, b.count, n, n, steps, 1, true, sym, &reduced, &tau);
  OValue *d = reduce_sum(L, mul(L, reduced, eye(L, et, n, n)), 2, false); /* [B, n] */
  OValue *e;
  if (steps == 0) {
    e = zeros_batch(L, a, et, 1, &steps);
  } else {
    /* the subdiagonal: the diagonal of rows 1.., columns ..n-1 */
    int64_t starts[2] = {1, 0}, ends[2] = {n, n - 1}, axes[2] = {1, 2};
    OValue *in[4] = {reduced, lw_const_i64s(L, 2, starts), lw_const_i64s(L, 2, ends),
                     lw_const_i64s(L, 2, axes)};
    OValue *shifted = lw_node(L, "Slice", 4, in, 1)->outputs[0];
    e = reduce_sum(L, mul(L, shifted, eye(L, et, n - 1, n - 1)), 2, false);
  }
  OValue *packed = where(L, lw_op2(L, "Greater", cols, rows), a, reduced);
  if (upper) {
    packed = reversed(L, packed, 2);
    d = reversed(L, d, 1);
    e = reversed(L, e, 1);
    tau = reversed(L, tau, 1);
  }
  lw_bind(L, op->results[0], unflatten_like_operand(L, &b, packed));
  lw_bind(L, op->results[1], unflatten(L, &b, d, 1, &n));
  lw_bind(L, op->results[2], unflatten(L, &b, e, 1, &steps));
  lw_bind(L, op->results[3], unflatten(L, &b, tau, 1, &steps));
  bind_zero_info(L, op, 4, &b, a, et);
  return 0;
}

/* ---- Jacobi rotations in parallel order -------------------------------- */

/* The round-robin schedule of n indices (one more, a dummy numbered n, when
 * n is odd): steps of n'/2 disjoint pairs that together pair every index
 * with every other once.  Index 0 stays, the others rotate.  p and q:
 * [steps, n'/2] int64 constants. */
typedef struct Schedule {
  int64_t steps, pairs;
  OValue *p, *q;
} Schedule;

static Schedule round_robin(Lower *L, int64_t n) {
  int64_t players = n + (n & 1), steps = players - 1, pairs = players / 2;
  Arena *ar = L->c->arena;
  int64_t *ring = arena_alloc(ar, sizeof(int64_t) * (size_t)players);
  int64_t *p = arena_alloc(ar, sizeof(int64_t) * (size_t)(steps * pairs));
  int64_t *q = arena_alloc(ar, sizeof(int64_t) * (size_t)(steps * pairs));
  for (int64_t i = 0; i < players; i++) ring[i] = i;
  for (int64_t s = 0; s < steps; s++) {
    for (int64_t i = 0; i < pairs; i++) {
      int64_t x = ring[i], y = ring[players - 1 - i];
      p[s * pairs + i] = x < y ? x : y;
      q[s * pairs + i] = x < y ? y : x;
    }
    int64_t last = ring[players - 1]; /* rotate ring[1..] by one */
    for (int64_t i = players - 1; i > 1; i--) ring[i] = ring[i - 1];
    ring[1] = last;
  }
  int64_t dims[2] = {steps, pairs};
  Schedule sch = {steps, pairs, NULL, NULL};
  sch.p = lw_const_data(L, ET_I64, 2, dims,
                        (Data){DATA_RAW, p, sizeof(int64_t) * (size_t)(steps * pairs)});
  sch.q = lw_const_data(L, ET_I64, 2, dims,
                        (Data){DATA_RAW, q, sizeof(int64_t) * (size_t)(steps * pairs)});
  return sch;
}

/* The rows selecting this step's p (or q) indices: [pairs, n] of 0/1 (the
 * dummy index n selects nothing, so its pairs rotate nothing). */
static OValue *selector(Lower *L, ElemType et, OValue *indices, OValue *step, OValue *positions) {
  OValue *idx = unsqueeze(L, gather(L, indices, step, 0), 1); /* [pairs, 1] */
  return lw_cast(L, lw_op2(L, "Equal", idx, positions), et);
}

/* The rotation (c, s) that makes the (p, q) entry of J^T [[app, apq], [apq,
 * aqq]] J zero, J = [[c, s], [-s, c]]: t = tan = sign(theta) / (|theta| +
 * sqrt(theta^2 + 1)), theta = (aqq - app) / (2 apq), the smaller of the two
 * angles; none where apq is 0. */
static void jacobi_rotation(Lower *L, ElemType et, OValue *app, OValue *aqq, OValue *apq,
                            OValue **c, OValue **s) {
  OValue *zero = fconst(L, et, 0.0), *one = fconst(L, et, 1.0);
  OValue *rotate = lw_op1(L, "Not", lw_op2(L, "Equal", apq, zero));
  OValue *theta =
      divide(L, sub(L, aqq, app), mul(L, fconst(L, et, 2.0), where(L, rotate, apq, one)));
  OValue *sign = where(L, lw_op2(L, "GreaterOrEqual", theta, zero), one, fconst(L, et, -1.0));
  OValue *root = lw_op1(L, "Sqrt", add(L, mul(L, theta, theta), one));
  OValue *t = where(L, rotate, divide(L, sign, add(L, lw_op1(L, "Abs", theta), root)), zero);
  *c = divide(L, one, lw_op1(L, "Sqrt", add(L, mul(L, t, t), one)));
  *s = mul(L, t, *c);
}

/* J = I + P^T diag(c - 1) P + Q^T diag(c - 1) Q + P^T diag(s) Q - Q^T diag(s) P
 * for the selectors P, Q ([pairs, n]) and c, s ([B, pairs]): [B, n, n]. */
static OValue *rotation_matrix(Lower *L, ElemType et, OValue *sel_p, OValue *sel_q, OValue *c,
                               OValue *s, OValue *identity) {
  OValue *c1 = unsqueeze(L, sub(L, c, fconst(L, et, 1.0)), 2), *s1 = unsqueeze(L, s, 2);
  OValue *rows_p = add(L, mul(L, c1, sel_p), mul(L, s1, sel_q)); /* [B, pairs, n] */
  OValue *rows_q = sub(L, mul(L, c1, sel_q), mul(L, s1, sel_p));
  OValue *pt = transpose_last2(L, sel_p, false), *qt = transpose_last2(L, sel_q, false);
  return add(L, identity, add(L, matmul(L, pt, rows_p), matmul(L, qt, rows_q)));
}

/* ---- syevd: cyclic Jacobi -------------------------------------------- */

/* Eigen-decomposition of the symmetric a [B, n, n] (n >= 1): eigenvalues
 * ascending [B, n], eigenvectors as columns [B, n, n] when wanted. */
static void jacobi_eigh(Lower *L, ElemType et, int64_t b, int64_t n, OValue *a, bool vectors,
                        OValue **values, OValue **vecs) {
  Schedule sch = round_robin(L, n);
  OValue *identity = eye(L, et, n, n);
  OValue *off_mask = sub(L, fconst(L, et, 1.0), identity);
  OValue *positions = index_along(L, n, 2, 1); /* [1, n] */
  double tol = unit_roundoff(et);
  /* stop when |offdiag(A)|_F <= tol |A|_F (per matrix; all of them) */
  OValue *fro2 = reduce_sum(L, reduce_sum(L, mul(L, a, a), 2, false), 1, false);
  OValue *limit = mul(L, fro2, fconst(L, et, tol * tol));
  OValue *off0 = mul(L, a, off_mask);
  OValue *first = lw_op2(
      L, "Greater",
      reduce_max_all(
          L, sub(L, reduce_sum(L, reduce_sum(L, mul(L, off0, off0), 2, false), 1, false), limit)),
      fconst(L, et, 0.0));
  OValue *v0 = expand_like(L, identity, a);
  v0->type = a->type;
  OValue *init[2] = {a, v0};
  LoopFrame f;
  loop_begin(L, &f, 2, init);
  OValue *A = f.carried[0], *V = f.carried[1];
  OValue *step = lw_op2(L, "Mod", f.loop.iteration, iconst(L, sch.steps));
  OValue *sel_p = selector(L, et, sch.p, step, positions);
  OValue *sel_q = selector(L, et, sch.q, step, positions);
  OValue *ap = matmul(L, sel_p, A);                         /* rows p: [B, pairs, n] */
  OValue *app = reduce_sum(L, mul(L, ap, sel_p), 2, false); /* [B, pairs] */
  OValue *apq = reduce_sum(L, mul(L, ap, sel_q), 2, false);
  OValue *aqq = reduce_sum(L, mul(L, matmul(L, sel_q, A), sel_q), 2, false);
  OValue *c, *s;
  jacobi_rotation(L, et, app, aqq, apq, &c, &s);
  OValue *J = rotation_matrix(L, et, sel_p, sel_q, c, s, identity);
  OValue *next_a = matmul(L, transpose_last2(L, J, true), matmul(L, A, J));
  /* keep it symmetric: the rounding of the two products differs */
  next_a = mul(L, add(L, next_a, transpose_last2(L, next_a, true)), fconst(L, et, 0.5));
  OValue *next_v = matmul(L, V, J);
  OValue *off = mul(L, next_a, off_mask);
  OValue *off2 = reduce_sum(L, reduce_sum(L, mul(L, off, off), 2, false), 1, false);
  OValue *keep_going =
      lw_op2(L, "Greater", reduce_max_all(L, sub(L, off2, limit)), fconst(L, et, 0.0));
  OValue *next[2] = {next_a, next_v}, *out[2];
  loop_end(L, &f, keep_going, next, JACOBI_MAX_SWEEPS * sch.steps, first, out);
  OValue *diag = reduce_sum(L, mul(L, out[0], identity), 2, false); /* [B, n] */
  int64_t nn = n;
  OValue *tin[2] = {diag, lw_const_i64s(L, 1, &nn)};
  ONode *topk = lw_node(L, "TopK", 2, tin, 2);
  og_attr_int(L->c, topk, "largest", 0);
  og_attr_int(L->c, topk, "sorted", 1);
  *values = topk->outputs[0];
  if (vectors) {
    OValue *order = expand_like(L, unsqueeze(L, topk->outputs[1], 1), out[1]);
    *vecs = gather_elements(L, out[1], order, 2);
  }
  (void)b;
}

/* lapack_?syevd_ffi(a) -> (eigenvectors, eigenvalues, info); reads the
 * lower triangle (uplo = 'L') as LAPACK does. */
static int lower_syevd(Lower *L, const Op *op, ElemType et) {
  Batch b;
  int64_t m, n;
  OValue *a = matrices_of(L, op->operands[0], et, &b, &m, &n);
  if (!a) return -1;
  if (m != n) return lw_bad_input(L, "syevd of a non-square matrix");
  int64_t uplo = config_int(op, "uplo", 'L'), mode = config_int(op, "mode", 'V');
  OValue *values, *vecs = NULL;
  if (n == 0) {
    values = zeros_batch(L, a, et, 1, &n);
    vecs = a;
  } else {
    /* the symmetric matrix of the triangle LAPACK reads */
    OValue *rows = index_along(L, n, 3, 1), *cols = index_along(L, n, 3, 2);
    OValue *in_triangle = uplo == 'U' ? lw_op2(L, "LessOrEqual", rows, cols)
                                      : lw_op2(L, "GreaterOrEqual", rows, cols);
    OValue *tri = where(L, in_triangle, a, fconst(L, et, 0.0));
    OValue *strict = where(L, lw_op2(L, "Equal", rows, cols), fconst(L, et, 0.0), tri);
    OValue *sym = typed3(L, add(L, tri, transpose_last2(L, strict, true)), et, b.count, n, n);
    OValue *scale = power_of_two_scale(L, et, sym);
    jacobi_eigh(L, et, b.count, n, scaled_down(L, sym, scale), mode != 'N', &values, &vecs);
    values = mul(L, values, squeeze_last(L, scale));
    if (!vecs) vecs = sym;
  }
  int64_t nn[2] = {n, n};
  lw_bind(L, op->results[0], unflatten(L, &b, vecs, 2, nn));
  lw_bind(L, op->results[1], unflatten(L, &b, values, 1, &n));
  bind_zero_info(L, op, 2, &b, a, et);
  return 0;
}

/* ---- gesdd / gesvd: one-sided Jacobi ---------------------------------- */

/* x: [B, p, q], p >= q >= 1.  Rotates column pairs until they are
 * orthogonal: x J = U diag(s), with V = J accumulated.  Returns the
 * singular values descending [B, q], the columns of x sorted alike, and V
 * ([B, q, q], when wanted) sorted alike. */
static void one_sided_jacobi(Lower *L, ElemType et, int64_t b, int64_t p, int64_t q, OValue *x,
                             bool want_v, OValue **sigma, OValue **x_sorted, OValue **v_sorted) {
  Schedule sch = round_robin(L, q);
  OValue *identity = eye(L, et, q, q);
  OValue *off_mask = sub(L, fconst(L, et, 1.0), identity);
  OValue *positions = index_along(L, q, 2, 1);
  double tol = unit_roundoff(et) * (double)q;
  OValue *zero = fconst(L, et, 0.0);
  OValue *tol2 = fconst(L, et, tol * tol);
  /* any |x_i . x_j| > tol |x_i| |x_j|, i != j */
  OValue *x_init = x, *v0 = NULL;
  OValue *init[2] = {x_init, NULL};
  int n_carried = 1;
  if (want_v) {
    v0 = typed3(L, expand_like(L, identity, zeros_batch(L, x, et, 2, (int64_t[]){q, q})), et, b, q,
                q);
    init[1] = v0;
    n_carried = 2;
  }
  OValue *g0 = matmul(L, transpose_last2(L, x, true), x);
  OValue *d0 = reduce_sum(L, mul(L, g0, identity), 2, false);
  OValue *dd0 = mul(L, unsqueeze(L, d0, 2), unsqueeze(L, d0, 1));
  OValue *first =
      lw_op2(L, "Greater",
             reduce_max_all(L, sub(L, mul(L, mul(L, g0, g0), off_mask), mul(L, dd0, tol2))), zero);
  LoopFrame f;
  loop_begin(L, &f, n_carried, init);
  OValue *X = f.carried[0];
  OValue *step = lw_op2(L, "Mod", f.loop.iteration, iconst(L, sch.steps));
  OValue *sel_p = selector(L, et, sch.p, step, positions);
  OValue *sel_q = selector(L, et, sch.q, step, positions);
  OValue *xp = matmul(L, X, transpose_last2(L, sel_p, false)); /* [B, p, pairs] */
  OValue *xq = matmul(L, X, transpose_last2(L, sel_q, false));
  OValue *alpha = reduce_sum(L, mul(L, xp, xp), 1, false); /* [B, pairs] */
  OValue *beta = reduce_sum(L, mul(L, xq, xq), 1, false);
  OValue *gamma = reduce_sum(L, mul(L, xp, xq), 1, false);
  OValue *c, *s;
  jacobi_rotation(L, et, alpha, beta, gamma, &c, &s);
  OValue *J = rotation_matrix(L, et, sel_p, sel_q, c, s, identity);
  OValue *next_x = matmul(L, X, J);
  OValue *g = matmul(L, transpose_last2(L, next_x, true), next_x);
  OValue *d = reduce_sum(L, mul(L, g, identity), 2, false);
  OValue *dd = mul(L, unsqueeze(L, d, 2), unsqueeze(L, d, 1));
  OValue *keep_going =
      lw_op2(L, "Greater",
             reduce_max_all(L, sub(L, mul(L, mul(L, g, g), off_mask), mul(L, dd, tol2))), zero);
  OValue *next[2] = {next_x, want_v ? matmul(L, f.carried[1], J) : NULL}, *out[2];
  loop_end(L, &f, keep_going, next, JACOBI_MAX_SWEEPS * sch.steps, first, out);
  OValue *norms = lw_op1(L, "Sqrt", reduce_sum(L, mul(L, out[0], out[0]), 1, false)); /* [B, q] */
  int64_t qq = q;
  OValue *tin[2] = {norms, lw_const_i64s(L, 1, &qq)};
  ONode *topk = lw_node(L, "TopK", 2, tin, 2);
  og_attr_int(L->c, topk, "largest", 1);
  og_attr_int(L->c, topk, "sorted", 1);
  *sigma = topk->outputs[0];
  OValue *order = unsqueeze(L, topk->outputs[1], 1); /* [B, 1, q] */
  *x_sorted = gather_elements(L, out[0], expand_like(L, order, out[0]), 2);
  *v_sorted = want_v ? gather_elements(L, out[1], expand_like(L, order, out[1]), 2) : NULL;
}

/* The first `cols` (q or p) columns of an orthonormal basis whose first q
 * columns are those of u ([B, p, q], orthonormal or zero columns): the Q
 * of u's Householder QR, its columns' signs made u's. */
static OValue *complete_basis(Lower *L, ElemType et, int64_t b, int64_t p, int64_t q, int64_t cols,
                              OValue *u) {
  OValue *packed, *tau;
  householder_qr(L, et, b, p, q, u, &packed, &tau);
  if (cols > q) packed = typed3(L, pad_end(L, packed, et, 0, cols - q, 3, 0.0), et, b, p, cols);
  OValue *Q = householder_product(L, et, p, cols, q, packed, tau);
  OValue *dots = reduce_sum(L, mul(L, first_columns(L, Q, q), u), 1, false); /* [B, q] */
  OValue *sign = where(L, lw_op2(L, "Less", dots, fconst(L, et, 0.0)), fconst(L, et, -1.0),
                       fconst(L, et, 1.0));
  if (cols > q) sign = pad_end(L, sign, et, 0, cols - q, 2, 1.0);
  return mul(L, Q, unsqueeze(L, sign, 1));
}

/* lapack_?gesdd_ffi / lapack_?gesvd_ffi (a) -> (a, s, u, vt, info); mode
 * 'A' (full U, V), 'S' (thin), 'N' (none: u and vt are zeros here). */
static int lower_svd(Lower *L, const Op *op, ElemType et) {
  Batch b;
  int64_t m, n;
  OValue *a = matrices_of(L, op->operands[0], et, &b, &m, &n);
  if (!a) return -1;
  int64_t k = m < n ? m : n;
  int64_t mode = config_int(op, "mode", 'A');
  if (mode != 'A' && mode != 'S' && mode != 'N')
    return lw_unsupported(L, "SVD mode '%c'", (char)mode);
  const Type *ut = &op->results[2]->type, *vt_t = &op->results[3]->type;
  if (ut->rank != b.n_axes + 2 || vt_t->rank != b.n_axes + 2)
    return lw_unsupported(L, "u and vt are not matrices");
  int64_t u_cols = ut->dims[ut->rank - 1], vt_rows = vt_t->dims[vt_t->rank - 2];
  int64_t u_rows = ut->dims[ut->rank - 2], vt_cols = vt_t->dims[vt_t->rank - 1];
  bool wide = m < n;
  int64_t p = wide ? n : m, q = k;
  OValue *sigma, *u = NULL, *vt = NULL;
  if (k == 0) {
    sigma = zeros_batch(L, a, et, 1, &k);
    mode = 'N';
  } else {
    OValue *x = wide ? typed3(L, transpose_last2(L, a, true), et, b.count, n, m) : a;
    OValue *xs, *vs;
    OValue *scale = power_of_two_scale(L, et, x);
    one_sided_jacobi(L, et, b.count, p, q, scaled_down(L, x, scale), mode != 'N', &sigma, &xs, &vs);
    if (mode != 'N') {
      /* xs and sigma are both scaled: their ratio is not */
      OValue *inv = where(L, lw_op2(L, "Greater", sigma, fconst(L, et, 0.0)),
                          divide(L, fconst(L, et, 1.0), sigma), fconst(L, et, 0.0));
      OValue *un = typed3(L, mul(L, xs, unsqueeze(L, inv, 1)), et, b.count, p, q);
      /* x = un diag(sigma) vs^T, un completed to `cols` columns */
      int64_t cols = wide ? vt_rows : u_cols;
      if (cols != q && cols != p) return lw_unsupported(L, "u/vt of %lld columns", (long long)cols);
      OValue *basis = complete_basis(L, et, b.count, p, q, cols, un);
      if (wide) {
        u = vs;
        vt = transpose_last2(L, basis, true);
      } else {
        u = basis;
        vt = transpose_last2(L, vs, true);
      }
    }
    sigma = mul(L, sigma, squeeze_last(L, scale));
  }
  if (mode == 'N') {
    u = zeros_batch(L, a, et, 2, (int64_t[]){u_rows, u_cols});
    vt = zeros_batch(L, a, et, 2, (int64_t[]){vt_rows, vt_cols});
  }
  lw_bind(L, op->results[0], b.source);
  lw_bind(L, op->results[1], unflatten(L, &b, sigma, 1, &k));
  lw_bind(L, op->results[2], unflatten(L, &b, u, 2, (int64_t[]){u_rows, u_cols}));
  lw_bind(L, op->results[3], unflatten(L, &b, vt, 2, (int64_t[]){vt_rows, vt_cols}));
  bind_zero_info(L, op, 4, &b, a, et);
  return 0;
}

/* ---- gtsv: the tridiagonal solve ------------------------------------- */

/* lapack_?gtsv_ffi(dl, d, du, b) -> (dl, d, du, x, info), as JAX passes
 * them: dl[i] = A[i, i-1] (dl[0] unused), d[i] = A[i, i], du[i] = A[i, i+1]
 * (du[n-1] unused), b [n, nrhs].  LAPACK's gtsv: Gaussian elimination with
 * partial pivoting (a row swap where |A[i+1, i]| > |d[i]|, which fills a
 * second superdiagonal), one Loop iteration per row, then back substitution
 * in a second Loop.  info: the number of zero pivots (LAPACK's is the
 * first one's row; JAX reads only whether it is 0). */
static int lower_gtsv(Lower *L, const Op *op, ElemType et) {
  Batch b;
  if (batch_of(L, op->operands[3], 2, &b) != 0) return -1;
  const int64_t *system = b.dims + b.n_axes; /* [n, nrhs] */
  int64_t n = system[0], r = system[1];
  for (int i = 0; i < 3; i++) {
    const Type *t = &op->operands[i]->type;
    if (t->rank != b.n_axes + 1 || t->dims[t->rank - 1] != n)
      return lw_unsupported(L, "diagonal %d is not a vector of %lld per system", i, (long long)n);
  }
  OValue *dl = flatten(L, &b, lw_get(L, op->operands[0]), et, 1, &n);
  OValue *d0 = flatten(L, &b, lw_get(L, op->operands[1]), et, 1, &n);
  OValue *du0 = flatten(L, &b, lw_get(L, op->operands[2]), et, 1, &n);
  OValue *rhs = flatten(L, &b, b.source, et, 2, system);
  OValue *d = d0, *du = du0, *fill = NULL, *x = rhs;
  OValue *zero = fconst(L, et, 0.0);
  if (n > 1) {
    /* forward elimination: row i eliminates A[i+1, i] */
    OValue *pos = index_along(L, n, 2, 1), *pos3 = index_along(L, n, 3, 1);
    OValue *fill0 = zeros_batch(L, d0, et, 1, &n);
    og_set_type(L->c, fill0, et, 2, (int64_t[]){b.count, n});
    OValue *init[4] = {d0, du0, fill0, rhs};
    LoopFrame f;
    loop_begin(L, &f, 4, init);
    OValue *i = f.loop.iteration, *i1 = add(L, i, iconst(L, 1));
    OValue *D = f.carried[0], *DU = f.carried[1], *F = f.carried[2], *R = f.carried[3];
    OValue *di = gather(L, D, i, 1), *di1 = gather(L, D, i1, 1); /* [B] */
    OValue *li = gather(L, dl, i1, 1), *dui = gather(L, DU, i, 1);
    /* du[i+1] (0 past the last row: LAPACK has no du[n-1]) */
    OValue *dui1 = where(L, lw_op2(L, "Less", i1, iconst(L, n - 1)), gather(L, DU, i1, 1), zero);
    OValue *bi = gather(L, R, i, 1), *bi1 = gather(L, R, i1, 1); /* [B, r] */
    OValue *keep = lw_op2(L, "GreaterOrEqual", lw_op1(L, "Abs", di), lw_op1(L, "Abs", li));
    OValue *keep2 = unsqueeze(L, keep, 1);
    OValue *fact = where(L, keep, divide(L, li, di), divide(L, di, li));
    OValue *fact2 = unsqueeze(L, fact, 1);
    OValue *new_di = where(L, keep, di, li);
    OValue *new_di1 =
        where(L, keep, sub(L, di1, mul(L, fact, dui)), sub(L, dui, mul(L, fact, di1)));
    OValue *new_dui = where(L, keep, dui, di1);
    OValue *new_fi = where(L, keep, zero, dui1);
    OValue *new_dui1 = where(L, keep, dui1, mul(L, lw_op1(L, "Neg", fact), dui1));
    OValue *new_bi = where(L, keep2, bi, bi1);
    OValue *new_bi1 =
        where(L, keep2, sub(L, bi1, mul(L, fact2, bi)), sub(L, bi, mul(L, fact2, bi1)));
    OValue *at_i = lw_op2(L, "Equal", pos, i), *at_i1 = lw_op2(L, "Equal", pos, i1);
    OValue *at3_i = lw_op2(L, "Equal", pos3, i), *at3_i1 = lw_op2(L, "Equal", pos3, i1);
    OValue *next[4] = {
        where(L, at_i, unsqueeze(L, new_di, 1), where(L, at_i1, unsqueeze(L, new_di1, 1), D)),
        where(L, at_i, unsqueeze(L, new_dui, 1),
              where(L, lw_op2(L, "And", at_i1, lw_op2(L, "Less", pos, iconst(L, n - 1))),
                    unsqueeze(L, new_dui1, 1), DU)),
        where(L, at_i, unsqueeze(L, new_fi, 1), F),
        where(L, at3_i, unsqueeze(L, new_bi, 1), where(L, at3_i1, unsqueeze(L, new_bi1, 1), R)),
    };
    OValue *out[4];
    loop_end(L, &f, NULL, next, n - 1, NULL, out);
    d = out[0];
    du = out[1];
    fill = out[2];
    x = out[3];
  }
  /* back substitution, on x padded with two zero rows (x[i+1], x[i+2]) */
  {
    OValue *padded = typed3(L, pad_end(L, x, et, 2, 0, 3, 0.0), et, b.count, n + 2, r);
    OValue *init[1] = {padded};
    LoopFrame f;
    loop_begin(L, &f, 1, init);
    OValue *X = f.carried[0];
    OValue *i = sub(L, iconst(L, n - 1), f.loop.iteration);
    OValue *i1 = add(L, i, iconst(L, 1)), *i2 = add(L, i, iconst(L, 2));
    OValue *term = sub(L, gather(L, X, i, 1),
                       mul(L, unsqueeze(L, gather(L, du, i, 1), 1), gather(L, X, i1, 1)));
    if (fill)
      term = sub(L, term, mul(L, unsqueeze(L, gather(L, fill, i, 1), 1), gather(L, X, i2, 1)));
    OValue *xi = divide(L, term, unsqueeze(L, gather(L, d, i, 1), 1)); /* [B, r] */
    OValue *rows = index_along(L, n + 2, 3, 1);
    OValue *next[1] = {where(L, lw_op2(L, "Equal", rows, i), unsqueeze(L, xi, 1), X)}, *out[1];
    loop_end(L, &f, NULL, next, n, NULL, out);
    int64_t start = 0, end = n, axis = 1;
    OValue *in[4] = {out[0], lw_const_i64s(L, 1, &start), lw_const_i64s(L, 1, &end),
                     lw_const_i64s(L, 1, &axis)};
    x = lw_node(L, "Slice", 4, in, 1)->outputs[0];
  }
  /* LAPACK's dl holds the fill (second superdiagonal) from index 0; JAX's
   * dl is offset by one; JAX reads neither, nor d and du */
  OValue *dl_out = dl;
  if (fill) {
    int64_t start = 0, end = n, axis = 1;
    OValue *pads_in[3] = {fill, lw_const_i64s(L, 4, (int64_t[]){0, 1, 0, 0}), zero};
    OValue *shifted = lw_node(L, "Pad", 3, pads_in, 1)->outputs[0];
    OValue *in[4] = {shifted, lw_const_i64s(L, 1, &start), lw_const_i64s(L, 1, &end),
                     lw_const_i64s(L, 1, &axis)};
    dl_out = lw_node(L, "Slice", 4, in, 1)->outputs[0];
  }
  lw_bind(L, op->results[0], unflatten(L, &b, dl_out, 1, &n));
  lw_bind(L, op->results[1], unflatten(L, &b, d, 1, &n));
  lw_bind(L, op->results[2], unflatten(L, &b, du, 1, &n));
  lw_bind(L, op->results[3], unflatten_like_operand(L, &b, x));
  /* LAPACK stops at a zero pivot with info > 0 (JAX then returns NaN):
   * here the count of zero pivots, 0 when there is none */
  OValue *zero_pivot = lw_cast(L, lw_op2(L, "Equal", d, zero), ET_I32);
  OValue *info = reduce_sum(L, zero_pivot, 1, false);
  lw_bind(L, op->results[4], unflatten(L, &b, info, 0, NULL));
  return 0;
}

/* ---- the table ------------------------------------------------------- */

typedef int (*DecompFn)(Lower *L, const Op *op, ElemType et);

/* The routines by LAPACK name (without the type letter), with the operands
 * and results of their custom_call (checked before fn runs); fn NULL:
 * refused with `why`. */
static const struct {
  const char *routine;
  DecompFn fn;
  int n_operands, n_results;
  const char *why;
} routines[] = {
    {"geqrf", lower_geqrf, 1, 2, NULL},
    {"orgqr", lower_orgqr, 2, 1, NULL},
    {"syevd", lower_syevd, 1, 3, NULL},
    {"gesdd", lower_svd, 1, 5, NULL},
    {"gesvd", lower_svd, 1, 5, NULL},
    {"geev", NULL, 0, 0,
     "no ONNX equivalent of a non-symmetric eigensolver with complex results "
     "(jnp.linalg.eig); not converted"},
    {"gees", NULL, 0, 0,
     "no ONNX equivalent of a Schur decomposition (jax.scipy.linalg.schur: "
     "a non-symmetric QR iteration with complex results); not converted"},
    {"geqp3", lower_geqp3, 2, 3, NULL},
    {"gehrd", lower_gehrd, 1, 3, NULL},
    {"sytrd", lower_sytrd, 1, 5, NULL},
    {"gtsv", lower_gtsv, 4, 5, NULL},
};

/* Runs row's fn on op once its operands and results are counted. */
static int lower_routine(Lower *L, const Op *op, int row, ElemType et) {
  int n_in = routines[row].n_operands, n_out = routines[row].n_results;
  if (op->n_operands != n_in || op->n_results != n_out)
    return lw_unsupported(L, "expected %d operand%s and %d result%s", n_in, n_in == 1 ? "" : "s",
                          n_out, n_out == 1 ? "" : "s");
  return routines[row].fn(L, op, et);
}

/* "lapack_<t><routine>_ffi" -> its row, *et from the type letter. */
static int routine_of(const char *target, ElemType *et, char *type_letter) {
  /* the complex routines' names: unitary (un) and Hermitian (he) for
   * orthogonal (or) and symmetric (sy) */
  static const char *const complex_spelling[][2] = {
      {"ungqr", "orgqr"}, {"heevd", "syevd"}, {"hetrd", "sytrd"}};
  size_t len = strlen(target);
  if (strncmp(target, "lapack_", 7) != 0 || len < 7 + 1 + 4 ||
      strcmp(target + len - 4, "_ffi") != 0)
    return -1;
  *type_letter = target[7];
  *et = *type_letter == 's' ? ET_F32 : *type_letter == 'd' ? ET_F64 : ET_UNDEF;
  char routine[16];
  size_t rlen = len - 8 - 4;
  if (rlen >= sizeof routine) return -1;
  memcpy(routine, target + 8, rlen);
  routine[rlen] = '\0';
  for (size_t i = 0; i < sizeof complex_spelling / sizeof complex_spelling[0]; i++)
    if (strcmp(routine, complex_spelling[i][0]) == 0) strcpy(routine, complex_spelling[i][1]);
  for (int i = 0; i < (int)(sizeof routines / sizeof routines[0]); i++)
    if (strcmp(routines[i].routine, routine) == 0) return i;
  return -1;
}

int lower_complex_lapack_decomposition(Lower *L, const Op *op) {
  const Attr *a = op->kind == OP_CUSTOM_CALL ? ir_op_attr(op, "call_target_name") : NULL;
  const char *target = a && (a->kind == AK_STRING || a->kind == AK_SYMBOL) ? a->s : NULL;
  if (!target || !lw_is_lapack_decomposition(target)) return 1;
  return lower_lapack_decomposition(L, op, target);
}

bool lw_is_lapack_decomposition(const char *target) {
  ElemType et;
  char letter;
  return routine_of(target, &et, &letter) >= 0;
}

static bool any_complex(const Op *op) {
  for (int i = 0; i < op->n_operands + op->n_results; i++) {
    ElemType et =
        i < op->n_operands ? op->operands[i]->type.et : op->results[i - op->n_operands]->type.et;
    if (et == ET_C64 || et == ET_C128) return true;
  }
  return false;
}

int lower_lapack_decomposition(Lower *L, const Op *op, const char *target) {
  ElemType et;
  char letter;
  int row = routine_of(target, &et, &letter);
  H2O_CHECK(L->c, row >= 0);
  if (!routines[row].fn) return lw_unsupported(L, "%s: %s", target, routines[row].why);
  if (et == ET_UNDEF || any_complex(op))
    return lw_unsupported(L, "%s: complex matrices are not converted (only f32 and f64)", target);
  if (lw_loop_check_depth(L) != 0) return -1;
  /* under shape polymorphism JAX appends the result dims as operands
   * (indices_of_shape_operands); the values are static here but for the
   * batch axes, which come from the matrix operand's shape */
  const Attr *shape_ops = ir_op_attr(op, "indices_of_shape_operands");
  if (!shape_ops) return lower_routine(L, op, row, et);
  int64_t *skip = NULL;
  int n_skip = ir_attr_i64s(L->c, shape_ops, &skip);
  if (n_skip < 0) return lw_bad_input(L, "indices_of_shape_operands is not a list of integers");
  Op *data_op = arena_alloc(L->c->arena, sizeof(Op));
  *data_op = *op;
  data_op->operands = arena_alloc(L->c->arena, sizeof(Value *) * (size_t)(op->n_operands + 1));
  data_op->n_operands = 0;
  for (int i = 0; i < op->n_operands; i++) {
    bool is_shape = false;
    for (int j = 0; j < n_skip; j++) is_shape |= skip[j] == i;
    if (!is_shape) data_op->operands[data_op->n_operands++] = op->operands[i];
  }
  return lower_routine(L, data_op, row, et);
}
