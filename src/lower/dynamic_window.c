/* dynamic_window.c - custom_call @stablehlo.dynamic_reduce_window: a
 * reduce_window whose window sizes, strides, dilations and padding are
 * operands, which JAX emits when they depend on a symbolic dimension.  The
 * common case is a cumulative reduction (jnp.cumsum, cumprod, lax.cummax,
 * cummin, cumlogsumexp; reverse=True too) along a symbolic axis of size n:
 * a window of n elements with n-1 elements of padding in front (or behind).
 *
 * Sums over windows of any size: along each axis whose window is not
 * trivially 1, with stride and dilations 1, pad the axis (with the init
 * value, as the spec pads) and one more leading zero, take the running sum
 * S, and read window i as S[i + w] - S[i].  For a cumulative sum S[i] is a
 * sum of padding zeros, so the difference is exact; other windows lose the
 * precision a difference of two running sums loses.  Box windows are
 * separable, so axes are done one after the other.
 *
 * Other associative reducers (max, min, and, or: idempotent; multiply,
 * xor, jnp.logaddexp: not) are scans by doubling in an ONNX Loop whose
 * length comes from the run-time window (see "scans" below): exact for any
 * window size, ceil(log2 n) steps for a cumulative one.
 *
 * The operands are [x, init, window_dimensions, window_strides,
 * base_dilations, window_dilations, padding] (JAX's order); the vectors'
 * elements that are constants in the HLO (concatenations of constants, as
 * JAX builds them) are read at conversion time, the others at run time.
 */
#include "lower/lower.h"

#include <math.h>
#include <string.h>

/* The reducer: the body of the one function in called_computations. */
static const Block *reducer(const Lower *L, const Op *op) {
  const Attr *calls = ir_op_attr(op, "called_computations");
  if (!calls || calls->kind != AK_ARRAY || calls->n_elems != 1 || !calls->elems[0]->s)
    return NULL;
  const Func *f = ir_find_func(L->module, calls->elems[0]->s);
  return f && f->n_args == 2 && f->body && f->body->n_args == 2 ? f->body : NULL;
}

/* The kind of the one binary op of b's two arguments that b returns
 * (either order), else OP_UNKNOWN. */
static OpKind single_op(const Block *b) {
  if (!b || b->n_ops != 2) return OP_UNKNOWN;
  const Op *f = b->ops[0], *ret = b->ops[1];
  if (f->n_operands != 2 || f->n_results != 1 || ret->n_operands != 1 ||
      ret->operands[0] != f->results[0])
    return OP_UNKNOWN;
  bool args = (f->operands[0] == b->args[0] && f->operands[1] == b->args[1]) ||
              (f->operands[0] == b->args[1] && f->operands[1] == b->args[0]);
  return args ? f->kind : OP_UNKNOWN;
}

typedef struct IntVec {
  const Value *hlo;
  OValue *flat; /* the operand as flat int64, made when first needed */
  int64_t vals[2 * MAX_RANK];
  bool known[2 * MAX_RANK];
} IntVec;

/* The elements of the n-element vector hlo that are known at conversion
 * time (lw_known_ints); the others are read at run time. */
static void intvec_init(Lower *L, IntVec *v, const Value *hlo, int n) {
  memset(v, 0, sizeof *v);
  v->hlo = hlo;
  bool *known;
  int64_t *vals = lw_known_ints(L, hlo, &known);
  if (!vals || type_numel(&hlo->type) != n) return;
  memcpy(v->vals, vals, sizeof(int64_t) * (size_t)n);
  memcpy(v->known, known, sizeof(bool) * (size_t)n);
}

static bool is_known(const IntVec *v, int i, int64_t want) {
  return v->known[i] && v->vals[i] == want;
}

/* Element i as a one-element int64 tensor. */
static OValue *element(Lower *L, IntVec *v, int i) {
  if (v->known[i]) return lw_const_i64s(L, 1, &v->vals[i]);
  if (!v->flat) {
    int64_t all = -1;
    v->flat = lw_op2(L, "Reshape", lw_cast(L, lw_get(L, v->hlo), ET_I64), lw_const_i64s(L, 1, &all));
  }
  int64_t lo = i, hi = i + 1;
  return lw_op3(L, "Slice", v->flat, lw_const_i64s(L, 1, &lo), lw_const_i64s(L, 1, &hi));
}

/* Sums of the windows of w elements along `axis` of x (rank r; stride 1),
 * after padding the axis with lo and hi elements of init:
 * S = exclusive running sum of pad(x, lo, hi + 1), out[i] = S[i + w] - S[i].
 * (The one extra element at the end is never summed: S is exclusive.) */
static OValue *window_sums(Lower *L, OValue *x, int r, int axis, OValue *w, OValue *lo,
                           OValue *hi, OValue *init) {
  int64_t zero = 0, one = 1, ax = axis, to_end = INT64_MAX;
  OValue *pads[2 * MAX_RANK];
  for (int a = 0; a < 2 * r; a++) pads[a] = a == axis ? lo : lw_const_i64s(L, 1, &zero);
  pads[r + axis] = lw_op2(L, "Add", hi, lw_const_i64s(L, 1, &one));
  ONode *cat = lw_node(L, "Concat", 2 * r, pads, 1);
  og_attr_int(L->c, cat, "axis", 0);
  OValue *pin[3] = {x, cat->outputs[0], init};
  OValue *padded = lw_node(L, "Pad", 3, pin, 1)->outputs[0];
  OValue *cin[2] = {padded, lw_const_scalar(L, ET_I64, (double)axis)};
  ONode *cs = lw_node(L, "CumSum", 2, cin, 1);
  og_attr_int(L->c, cs, "exclusive", 1);
  OValue *s = cs->outputs[0];
  OValue *axes = lw_const_i64s(L, 1, &ax);
  OValue *ain[4] = {s, w, lw_const_i64s(L, 1, &to_end), axes};
  OValue *upper = lw_node(L, "Slice", 4, ain, 1)->outputs[0];
  OValue *bin[4] = {s, lw_const_i64s(L, 1, &zero), lw_op1(L, "Neg", w), axes};
  OValue *lower = lw_node(L, "Slice", 4, bin, 1)->outputs[0];
  return lw_op2(L, "Sub", upper, lower);
}

/* v is a constant whose bytes are all zero (0, 0.0; not -0.0). */
static bool known_zero(Ctx *c, const Value *v) {
  const Op *op = v->def;
  const Attr *a = op && op->kind == OP_CONSTANT ? ir_op_attr(op, "value") : NULL;
  if (!a || a->kind != AK_DENSE || !a->dense) return false;
  const uint8_t *bytes = data_bytes(c, &a->dense->data);
  if (!bytes) return false;
  for (size_t i = 0; i < a->dense->data.nbytes; i++)
    if (bytes[i]) return false;
  return true;
}

/* ---- scans -------------------------------------------------------------- *
 * A window of run-time size w along one axis (stride and dilations 1) over
 * x padded with lo and hi cells of the init, for a body that XLA may apply
 * in any order (lw_body_is_associative; all those are commutative too).
 * Doubling (Hillis-Steele) computes Y_k(j) = body of Q[j-k+1 .. j], the k
 * cells ending at j, where cells before the start read as the init ("the
 * fill"; that is a run of init padding of any length, so the front padding
 * need not be built): Y_2k(j) = body(Y_k(j), Y_k(j - k)), the shift filling
 * with the init.  Window i is Y_w at its last cell.  The Loop steps while
 * the window is longer than what has been folded, so its length follows
 * the run-time w (capped by the axis: longer windows fold the same cells):
 *   - max, min, and, or are idempotent: after floor(log2 w) doublings to
 *     Y_p (p <= w < 2p), Y_w(j) = body(Y_p(j), Y_p(j - (w - p))), two runs
 *     that overlap.  A cumulative reduction over n costs floor(log2 n) + 1
 *     applications, as a plain doubling to the next power of two would.
 *   - multiply, xor, logaddexp fold no cell twice.  When every window is
 *     a prefix of Q (w >= its length: a cumulative reduction), any run at
 *     least as long is the same, so the Loop doubles until the runs cover
 *     Q: ceil(log2 n) applications.  Otherwise (an If chooses at run time)
 *     Y_w is assembled from the binary digits of w, lowest first,
 *     acc_{k+s}(j) = body(acc_k(j - s), Y_s(j)) where digit s is set;
 *     where it is not, the step folds in fill cells: two applications per
 *     step.  Both are exact only when the init is the body's identity (1,
 *     0, -inf: required), the fill cells then changing nothing.
 * Windows that start towards the end (padding behind x, as reverse=True
 * writes it) are done mirrored: shifts from the end, Y ending at the
 * window's first cell.  XLA folds the init in once: body(init, result) for
 * an idempotent body whose init is not known to be its identity (padding
 * with the init changes nothing there). */

typedef struct Scan {
  Lower *L;
  const Block *body;
  ElemType et;
  int r, axis;
  int64_t dims[MAX_RANK]; /* x's dims, the scanned axis DIM_DYN */
  bool backward;          /* windows laid out from the end (padding behind x) */
  OValue *fill;           /* the init, rank 0 */
} Scan;

static OValue *typed(Scan *sc, OValue *v) { return lw_typed(sc->L, v, sc->et, sc->r, sc->dims); }

static OValue *i64s(Lower *L, OValue *v) {
  int64_t one = 1;
  return lw_typed(L, v, ET_I64, 1, &one);
}

static OValue *imm(Lower *L, int64_t v) { return lw_const_i64s(L, 1, &v); }

/* The length of y along the axis, as a 1-element int64. */
static OValue *axis_len(Scan *sc, OValue *y) {
  ONode *n = lw_node(sc->L, "Shape", 1, &y, 1);
  og_attr_int(sc->L->c, n, "start", sc->axis);
  og_attr_int(sc->L->c, n, "end", sc->axis + 1);
  return i64s(sc->L, n->outputs[0]);
}

/* y[start:end] along the axis (1-element int64 bounds). */
static OValue *span(Scan *sc, OValue *y, OValue *start, OValue *end) {
  OValue *in[4] = {y, start, end, imm(sc->L, sc->axis)};
  return typed(sc, lw_node(sc->L, "Slice", 4, in, 1)->outputs[0]);
}

static OValue *join(Scan *sc, OValue *a, OValue *b) {
  ONode *n = lw_node(sc->L, "Concat", 2, (OValue *[]){a, b}, 1);
  og_attr_int(sc->L->c, n, "axis", sc->axis);
  return typed(sc, n->outputs[0]);
}

/* len cells of the fill, shaped as y elsewhere. */
static OValue *fill_block(Scan *sc, OValue *y, OValue *len) {
  Lower *L = sc->L;
  int64_t rank = sc->r;
  OValue *shape = lw_typed(L, lw_op1(L, "Shape", y), ET_I64, 1, &rank);
  ONode *put = lw_node(L, "ScatterElements", 3, (OValue *[]){shape, imm(L, sc->axis), len}, 1);
  OValue *to = lw_typed(L, put->outputs[0], ET_I64, 1, &rank);
  return typed(sc, lw_op2(L, "Expand", sc->fill, to));
}

/* y (of length ly) moved s cells away from where windows start, the cells
 * left open taken from the fill block F (at least ly long); 0 <= s <= ly. */
static OValue *shift(Scan *sc, OValue *y, OValue *F, OValue *ly, OValue *s) {
  Lower *L = sc->L;
  OValue *zero = imm(L, 0);
  if (sc->backward) return join(sc, span(sc, y, s, ly), span(sc, F, zero, s));
  return join(sc, span(sc, F, zero, s), span(sc, y, zero, i64s(L, lw_op2(L, "Sub", ly, s))));
}

static OValue *apply(Scan *sc, OValue *a, OValue *b) {
  OValue *out;
  if (lw_apply_body(sc->L, sc->body, (OValue *[]){a, b}, sc->r, sc->dims, &out) != 0) return NULL;
  return typed(sc, out);
}

static OValue *scalar_bool(Lower *L, OValue *v) {
  return lw_typed(L, lw_op2(L, "Reshape", v, lw_const_i64s(L, 0, NULL)), ET_BOOL, 0, NULL);
}

static OValue *loop_input(Lower *L, OGraph *g, const char *hint, ElemType et, int rank,
                          const int64_t *dims) {
  OValue *v = og_value(L->c, g, hint);
  og_set_type(L->c, v, et, rank, dims);
  v->is_input = true;
  ptrvec_push(L->c->arena, &g->inputs, v);
  return v;
}

/* The body's outputs: made in it, once each (an Identity otherwise). */
static void loop_outputs(Lower *L, OGraph *g, OValue **outs, int n) {
  for (int i = 0; i < n; i++) {
    bool local = outs[i]->graph == g && !outs[i]->is_init && !outs[i]->is_input;
    for (int j = 0; local && j < i; j++) local = outs[j] != outs[i];
    if (!local) {
      OValue *id = lw_op1(L, "Identity", outs[i]);
      id->type = outs[i]->type;
      outs[i] = id;
    }
    outs[i]->is_output = true;
    ptrvec_push(L->c->arena, &g->outputs, outs[i]);
  }
}

/* What a Loop of doublings computes. */
typedef enum Runs {
  RUNS_OVERLAP, /* idempotent bodies: to p <= w < 2p, then two runs of p joined */
  RUNS_PREFIX,  /* every window a prefix (w >= lq): until the runs cover Q */
  RUNS_DIGITS   /* a window of the binary digits of w */
} Runs;

/* The Loop body: one doubling step (and one digit of w); -1 after
 * reporting.  outs: cond, folded, runs[, window]. */
static int doubling_step(Scan *sc, Runs mode, OValue *s, OValue *y, OValue *acc, OValue *F,
                         OValue *lq, OValue *w, OValue **outs) {
  Lower *L = sc->L;
  OValue *two = imm(L, 2);
  OValue *s2 = i64s(L, lw_op2(L, "Mul", s, two));
  OValue *more = mode == RUNS_OVERLAP ? lw_op2(L, "LessOrEqual", lw_op2(L, "Mul", s2, two), w)
                 : mode == RUNS_PREFIX ? lw_op2(L, "Less", s2, lq)
                                       : lw_op2(L, "LessOrEqual", s2, w);
  outs[0] = scalar_bool(L, more);
  outs[1] = s2;
  outs[2] = apply(sc, y, shift(sc, y, F, lq, s));
  if (!outs[2]) return -1;
  if (mode == RUNS_DIGITS) {
    /* digit s of w: 1 folds Y_s in after acc, 0 folds in fill cells */
    OValue *digit = i64s(L, lw_op2(L, "Mod", lw_op2(L, "Div", w, s), two));
    OValue *undigit = i64s(L, lw_op2(L, "Sub", imm(L, 1), digit));
    OValue *a = shift(sc, acc, F, lq, i64s(L, lw_op2(L, "Mul", s, digit)));
    OValue *b = shift(sc, y, F, lq, i64s(L, lw_op2(L, "Mul", lq, undigit)));
    outs[3] = apply(sc, a, b);
    if (!outs[3]) return -1;
  }
  return 0;
}

/* The scan of Q (length lq, F its fill block) over windows of w
 * (1 <= w <= lq) cells, in a Loop of L->g; NULL after reporting. */
static OValue *doubling(Scan *sc, OValue *Q, OValue *F, OValue *lq, OValue *w, Runs mode) {
  Lower *L = sc->L;
  int depth = 0;
  for (const OGraph *g = L->g; g->parent; g = g->parent) depth++;
  if (depth >= H2O_MAX_SUBGRAPH_DEPTH) {
    lw_unsupported(L, "a scan over a symbolic axis inside control flow nested %d deep",
                   H2O_MAX_SUBGRAPH_DEPTH);
    return NULL;
  }
  bool digits = mode == RUNS_DIGITS;
  int64_t one = 1;
  OGraph *outer = L->g, *g = og_new(L->c, "scan_step", L->g);
  loop_input(L, g, "iteration", ET_I64, 0, NULL);
  loop_input(L, g, "cond_in", ET_BOOL, 0, NULL);
  OValue *s = loop_input(L, g, "folded", ET_I64, 1, &one);
  OValue *y = loop_input(L, g, "runs", sc->et, sc->r, sc->dims);
  OValue *acc = digits ? loop_input(L, g, "window", sc->et, sc->r, sc->dims) : NULL;
  OValue *outs[4];
  L->g = g;
  int rc = doubling_step(sc, mode, s, y, acc, F, lq, w, outs);
  if (rc == 0) loop_outputs(L, g, outs, digits ? 4 : 3);
  L->g = outer;
  if (rc != 0) return NULL;
  /* the first step, when there is one: runs of 2 fit in w, or do not cover Q;
   * a digits' loop has w >= 1 */
  OValue *first = mode == RUNS_OVERLAP  ? scalar_bool(L, lw_op2(L, "LessOrEqual", imm(L, 2), w))
                  : mode == RUNS_PREFIX ? scalar_bool(L, lw_op2(L, "Less", imm(L, 1), lq))
                                        : lw_const_scalar(L, ET_BOOL, 1);
  OValue *in[5] = {NULL, first, imm(L, 1), Q, F};
  ONode *loop = lw_node(L, "Loop", digits ? 5 : 4, in, digits ? 3 : 2);
  og_attr_graph(L->c, loop, "body", g);
  i64s(L, loop->outputs[0]);
  for (int i = 1; i < loop->n_outputs; i++) typed(sc, loop->outputs[i]);
  if (mode != RUNS_OVERLAP) return loop->outputs[digits ? 2 : 1];
  /* two runs of p (the cells folded) that overlap: body(Y_p(j), Y_p(j - (w - p))) */
  OValue *Y = loop->outputs[1];
  return apply(sc, Y, shift(sc, Y, F, lq, i64s(L, lw_op2(L, "Sub", w, loop->outputs[0]))));
}

/* One branch of an If: the doubling of `mode` in a graph of its own. */
static OGraph *branch(Scan *sc, const char *name, OValue *Q, OValue *F, OValue *lq, OValue *w,
                      Runs mode) {
  Lower *L = sc->L;
  OGraph *outer = L->g, *g = og_new(L->c, name, L->g);
  L->g = g;
  OValue *y = doubling(sc, Q, F, lq, w, mode);
  if (y) loop_outputs(L, g, &y, 1);
  L->g = outer;
  return y ? g : NULL;
}

/* A body that is not idempotent: when every window is a prefix (w >= lq:
 * a cumulative reduction) plain doubling until the runs cover Q, one
 * application per step; else the digits of w, two. */
static OValue *prefix_or_digits(Scan *sc, OValue *Q, OValue *F, OValue *lq, OValue *w) {
  Lower *L = sc->L;
  OGraph *prefix = branch(sc, "prefix_scan", Q, F, lq, w, RUNS_PREFIX);
  OGraph *window = prefix ? branch(sc, "window_scan", Q, F, lq, w, RUNS_DIGITS) : NULL;
  if (!window) return NULL;
  OValue *pred = scalar_bool(L, lw_op2(L, "GreaterOrEqual", w, lq));
  ONode *n = lw_node(L, "If", 1, &pred, 1);
  og_attr_graph(L->c, n, "then_branch", prefix);
  og_attr_graph(L->c, n, "else_branch", window);
  return typed(sc, n->outputs[0]);
}

/* The windows along sc->axis of x: w cells, lo and hi of padding (1-element
 * int64 values; *_zero: known to be 0). */
static OValue *scan_axis(Scan *sc, OValue *x, OValue *w, OValue *lo, OValue *hi, bool lo_zero,
                         bool hi_zero, bool idempotent) {
  Lower *L = sc->L;
  OValue *zero = imm(L, 0), *one = imm(L, 1);
  sc->backward = lo_zero && !hi_zero;
  /* head: the padding on the side windows start from; tail: the other */
  OValue *head = sc->backward ? hi : lo, *tail = sc->backward ? lo : hi;
  bool tail_zero = sc->backward ? lo_zero : hi_zero;
  OValue *Q = x;
  if (!tail_zero) {
    OValue *pad = fill_block(sc, x, i64s(L, lw_op2(L, "Max", tail, zero)));
    Q = sc->backward ? join(sc, pad, x) : join(sc, x, pad);
  }
  OValue *lq = axis_len(sc, Q);
  OValue *F = fill_block(sc, Q, lq);
  OValue *w_eff = i64s(L, lw_op2(L, "Max", lw_op2(L, "Min", w, lq), one));
  OValue *Y = idempotent ? doubling(sc, Q, F, lq, w_eff, RUNS_OVERLAP)
                         : prefix_or_digits(sc, Q, F, lq, w_eff);
  if (!Y) return NULL;
  /* window i ends at Q[i + w - 1 - head]: c windows wholly in the head
   * padding (the fill), then Y from cell d on */
  OValue *first = lw_op2(L, "Sub", lw_op2(L, "Sub", w, one), head);
  OValue *d = i64s(L, lw_op2(L, "Max", first, zero));
  OValue *c = i64s(L, lw_op2(L, "Max", lw_op1(L, "Neg", first), zero));
  /* negative tail padding crops x's far end (the windows there are not read) */
  OValue *crop = tail_zero ? zero : i64s(L, lw_op1(L, "Neg", lw_op2(L, "Min", tail, zero)));
  if (sc->backward)
    return join(sc, span(sc, Y, crop, i64s(L, lw_op2(L, "Max", lw_op2(L, "Sub", lq, d), zero))),
                fill_block(sc, Y, c));
  OValue *end = tail_zero ? lq : i64s(L, lw_op2(L, "Sub", lq, crop));
  return join(sc, fill_block(sc, Y, c), span(sc, Y, d, end));
}

/* A scalar constant of the HLO (through broadcast_in_dim and reshape, as
 * JAX writes an init), as a double. */
static bool known_scalar(Ctx *c, const Value *v, double *out) {
  for (int hops = 0; v && v->def && hops < 8; hops++) {
    const Op *op = v->def;
    if (op->kind == OP_CONSTANT) {
      const Attr *a = ir_op_attr(op, "value");
      if (!a || a->kind != AK_DENSE || !a->dense || a->dense->data.nbytes < et_size(a->dense->et) ||
          et_size(a->dense->et) == 0)
        return false;
      const uint8_t *bytes = data_bytes(c, &a->dense->data);
      if (!bytes) return false;
      *out = elem_load(bytes, a->dense->et, 0);
      return a->dense->splat || a->dense->numel == 1;
    }
    if ((op->kind != OP_BROADCAST_IN_DIM && op->kind != OP_RESHAPE) || op->n_operands < 1)
      return false;
    v = op->operands[0];
  }
  return false;
}

/* The windows of a body other than an add (scans above); axis_on: the
 * axes with a window other than 1 (strides and dilations 1). */
static int lower_scan(Lower *L, const Op *op, const Block *body, OpKind kind, IntVec *win,
                      IntVec *pad, const bool *axis_on) {
  const Value *xv = op->operands[0];
  bool idempotent = kind == OP_MAXIMUM || kind == OP_MINIMUM || kind == OP_AND || kind == OP_OR;
  if (!idempotent && !lw_body_is_associative(body))
    return lw_unsupported(L, "a dynamic_reduce_window body that is not one add, multiply, "
                             "maximum, minimum, and, or, xor of its arguments nor logaddexp: "
                             "XLA folds each window in order, and no other order is known to "
                             "give its result");
  double init = 0;
  bool known = known_scalar(L->c, op->operands[1], &init);
  if (!idempotent) {
    /* the identity, which the fill must be: 1, 0, -inf (logaddexp) */
    double identity = kind == OP_MULTIPLY ? 1 : kind == OP_XOR ? 0 : -INFINITY;
    if (!known || init != identity)
      return lw_unsupported(L, "a dynamic_reduce_window whose init is not the identity of its "
                               "body (%s), which XLA folds in once",
                               kind == OP_MULTIPLY ? "1" : kind == OP_XOR ? "0" : "-inf");
  }
  Scan sc = {.L = L, .body = body, .et = xv->type.et, .r = xv->type.rank};
  sc.fill = lw_get(L, op->operands[1]);
  OValue *x = lw_get(L, xv);
  for (int a = 0; a < sc.r; a++) {
    if (!axis_on[a]) continue;
    sc.axis = a;
    for (int i = 0; i < sc.r; i++) sc.dims[i] = xv->type.dims[i];
    for (int i = 0; i <= a; i++)
      if (axis_on[i]) sc.dims[i] = DIM_DYN; /* (the axes scanned so far change length) */
    x = scan_axis(&sc, x, element(L, win, a), element(L, pad, 2 * a),
                  element(L, pad, 2 * a + 1), is_known(pad, 2 * a, 0),
                  is_known(pad, 2 * a + 1, 0), idempotent);
    if (!x) return -1;
  }
  /* XLA starts each window from the init: body(init, window), which an
   * idempotent body with its identity for init leaves as it is */
  bool identity = !idempotent; /* (checked above) */
  if (known && idempotent) {
    ElemType et = sc.et;
    int bits = (int)et_size(et) * 8;
    bool max = kind == OP_MAXIMUM || (kind == OP_OR && et == ET_BOOL);
    bool min = kind == OP_MINIMUM || (kind == OP_AND && et == ET_BOOL);
    if (et_is_float(et)) identity = max ? init == -INFINITY : min && init == INFINITY;
    else if (max) identity = init == (et_is_signed_int(et) ? -ldexp(1, bits - 1) : 0);
    else if (min && bits < 64) /* (the largest 64-bit integers are not doubles) */
      identity = init == (et == ET_BOOL ? 1 : et_is_signed_int(et) ? ldexp(1, bits - 1) - 1
                                                                    : ldexp(1, bits) - 1);
    else if (kind == OP_OR) identity = init == 0;
  }
  if (!identity) {
    OValue *out;
    if (lw_apply_body(L, body, (OValue *[]){sc.fill, x}, sc.r, sc.dims, &out) != 0) return -1;
    x = out;
  }
  lw_bind(L, op->results[0], x);
  return 0;
}

int lower_dynamic_reduce_window(Lower *L, const Op *op) {
  if (op->n_operands != 7 || op->n_results != 1)
    return lw_unsupported(L, "dynamic_reduce_window over more than one input");
  const Value *xv = op->operands[0];
  const Type *t = &xv->type;
  int r = t->rank;
  if (t->kind != TK_TENSOR || r < 1 || r > MAX_RANK || op->results[0]->type.rank != r)
    return lw_unsupported(L, "operand and result must be tensors of one rank");
  const Block *body = reducer(L, op);
  if (!body) return lw_bad_input(L, "called_computations must name one function of two arguments");
  OpKind kind = single_op(body);
  bool sums = kind == OP_ADD;
  if (sums && !et_is_float(t->et) && !et_is_int(t->et))
    return lw_unsupported(L, "sums of %s", et_mlir_name(t->et));
  IntVec win, str, bdil, wdil, pad;
  intvec_init(L, &win, op->operands[2], r);
  intvec_init(L, &str, op->operands[3], r);
  intvec_init(L, &bdil, op->operands[4], r);
  intvec_init(L, &wdil, op->operands[5], r);
  intvec_init(L, &pad, op->operands[6], 2 * r);
  int n_axes = 0;
  bool axis_on[MAX_RANK];
  for (int a = 0; a < r; a++) {
    axis_on[a] = !(is_known(&win, a, 1) && is_known(&pad, 2 * a, 0) &&
                   is_known(&pad, 2 * a + 1, 0) && is_known(&str, a, 1));
    if (!axis_on[a]) continue;
    n_axes++;
    if (!is_known(&str, a, 1) || !is_known(&bdil, a, 1) || !is_known(&wdil, a, 1))
      return lw_unsupported(L, "window strides and dilations other than constant 1s");
  }
  if (!sums) return lower_scan(L, op, body, kind, &win, &pad, axis_on);
  bool zero_init = known_zero(L->c, op->operands[1]);
  if (n_axes > 1 && !zero_init)
    return lw_unsupported(L, "windows along several axes with a nonzero init value");

  /* onnxruntime's CumSum takes f32/f64/i32/i64 */
  ElemType et = t->et, ct;
  if (et_is_float(et)) ct = et == ET_F64 ? ET_F64 : ET_F32;
  else if (et == ET_I32 || et_size(et) < 4) ct = ET_I32;
  else ct = ET_I64;
  OValue *x = lw_cast(L, lw_get(L, xv), ct);
  OValue *init = lw_cast(L, lw_get(L, op->operands[1]), ct);
  for (int a = 0; a < r; a++)
    if (axis_on[a])
      x = window_sums(L, x, r, a, element(L, &win, a), element(L, &pad, 2 * a),
                      element(L, &pad, 2 * a + 1), init);
  if (!zero_init) x = lw_op2(L, "Add", x, init);
  if (ct != et) { /* (x's type is not set: lw_cast would not know) */
    ONode *cast = lw_node(L, "Cast", 1, &x, 1);
    og_attr_int(L->c, cast, "to", et);
    x = cast->outputs[0];
  }
  lw_bind(L, op->results[0], x);
  return 0;
}
