/* lower.c - the lowering driver: HLO IR of the entry function to an ONNX graph.
 *
 * The entry function's arguments become graph inputs, or initializers when the
 * caller bound a weight buffer to them (model parameters), or - for the
 * dimension variables of shape-polymorphic lowering (`jax.global_constant`) -
 * values computed from the input shapes.  Ops are lowered in order through
 * op_table; calls are inlined, or become calls of local functions
 * (function.c).  A failing op is reported and its results are
 * "poisoned", so the ops after it are skipped quietly and one run reports
 * every op that cannot be converted, with counts, not only the first.
 */
#include "lower/lower.h"

#include <string.h>

typedef struct Unsupported {
  const char *opname;
  const Op *first;
  const char *call_scope, *call_source; /* of the calls first was inlined from */
  int count;
  struct Unsupported *next;
} Unsupported;

/* ---- builders used by the converters ----------------------------------- */

OValue *lw_get(Lower *L, const Value *v) {
  if (!v->lowered) {
    /* The parser guarantees every use has a definition; a value without an
     * ONNX binding here is a bug of the lowering order. */
    diag_error_op(L->c, H2O_EINTERNAL, L->op,
                  "internal error: value %s has no ONNX value", v->name);
    OValue *p = og_value(L->c, L->g, "poison");
    p->poisoned = true;
    return p;
  }
  return v->lowered;
}

void lw_bind(Lower *L, Value *v, OValue *ov) {
  v->lowered = ov;
  if (ov->type.et == ET_UNDEF || ov->type.rank < 0) og_type_from_hlo(L->c, ov, &v->type);
}


ONode *lw_node(Lower *L, const char *op_type, int n_in, OValue *const *in, int n_out) {
  ONode *n = og_node(L->c, L->g, op_type, in, n_in, n_out);
  n->origin = L->op;
  Ctx *c = L->c;
  if (c->call_scope || c->call_source) {
    n->scope = ir_op_scope(c, L->op);
    if (!L->op || !L->op->source) n->source = c->call_source;
  }
  return n;
}

OValue *lw_op1(Lower *L, const char *op_type, OValue *a) {
  return lw_node(L, op_type, 1, &a, 1)->outputs[0];
}

OValue *lw_op2(Lower *L, const char *op_type, OValue *a, OValue *b) {
  OValue *in[2] = {a, b};
  return lw_node(L, op_type, 2, in, 1)->outputs[0];
}

OValue *lw_op3(Lower *L, const char *op_type, OValue *a, OValue *b, OValue *c) {
  OValue *in[3] = {a, b, c};
  return lw_node(L, op_type, 3, in, 1)->outputs[0];
}

OValue *lw_const_data(Lower *L, ElemType et, int rank, const int64_t *dims, Data data) {
  return og_init(L->c, L->g, "const", et, rank, dims, data);
}

OValue *lw_const_i64s(Lower *L, int n, const int64_t *vals) {
  int64_t *copy = arena_alloc(L->c->arena, sizeof(int64_t) * (size_t)(n ? n : 1));
  if (n) memcpy(copy, vals, sizeof(int64_t) * (size_t)n);
  int64_t dim = n;
  Data d = {DATA_RAW, copy, sizeof(int64_t) * (size_t)n};
  return lw_const_data(L, ET_I64, 1, &dim, d);
}

OValue *lw_const_scalar(Lower *L, ElemType et, double v) {
  size_t size = et_size(et);
  uint8_t *buf = arena_alloc(L->c->arena, size ? size : 1);
  elem_store(buf, et, 0, v); /* narrow floats: one rounding, from the double */
  Data d = {DATA_RAW, buf, size};
  return lw_const_data(L, et, 0, NULL, d);
}

OValue *lw_cast(Lower *L, OValue *v, ElemType et) {
  if (v->type.et == et) return v;
  ONode *n = lw_node(L, "Cast", 1, &v, 1);
  og_attr_int(L->c, n, "to", et);
  OValue *out = n->outputs[0];
  out->type = v->type;
  out->type.et = et;
  return out;
}

OValue *lw_typed(Lower *L, OValue *v, ElemType et, int rank, const int64_t *dims) {
  og_set_type(L->c, v, et, rank, dims);
  return v;
}

OValue *lw_transpose(Lower *L, OValue *x, ElemType et, int rank, const int64_t *dims,
                     const int64_t *perm, int64_t *out_dims) {
  bool identity = true;
  for (int i = 0; i < rank; i++) {
    out_dims[i] = dims[perm[i]];
    if (perm[i] != i) identity = false;
  }
  if (identity) return x;
  ONode *n = lw_node(L, "Transpose", 1, &x, 1);
  og_attr_ints(L->c, n, "perm", perm, rank);
  return lw_typed(L, n->outputs[0], et, rank, out_dims);
}

OValue *lw_unsqueeze(Lower *L, OValue *x, const int64_t *axes, int n) {
  if (n == 0) return x;
  OValue *y = lw_op2(L, "Unsqueeze", x, lw_const_i64s(L, n, axes));
  int r = x->type.rank;
  if (r < 0) return y;
  int64_t out[2 * MAX_RANK + 2];
  bool is_new[2 * MAX_RANK + 2] = {false};
  for (int i = 0; i < n; i++) is_new[axes[i]] = true;
  for (int i = 0, k = 0; i < r + n; i++) out[i] = is_new[i] ? 1 : x->type.dims[k++].value;
  return lw_typed(L, y, x->type.et, r + n, out);
}

int lw_bad_input(Lower *L, const char *what) {
  return diag_error_op(L->c, H2O_EINPUT, L->op, "%s: %s", L->op->opname, what);
}

int lw_unsupported(Lower *L, const char *fmt, ...) {
  char why[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  return diag_error_op(L->c, H2O_EUNSUPPORTED, L->op, "cannot convert %s: %s",
                       L->op ? L->op->opname : "?", why);
}

int lower_unsupported_op(Lower *L, const Op *op) {
  /* Counted, and reported once per op name after the whole module was seen. */
  for (Unsupported *u = L->unsupported; u; u = u->next)
    if (strcmp(u->opname, op->opname) == 0) {
      u->count++;
      return -1;
    }
  Unsupported *u = arena_alloc(L->c->arena, sizeof *u);
  u->opname = op->opname;
  u->first = op;
  u->call_scope = L->c->call_scope;
  u->call_source = L->c->call_source;
  u->count = 1;
  u->next = L->unsupported;
  L->unsupported = u;
  return -1;
}

/* ---- walking blocks ----------------------------------------------------- */

const LowerFn lw_converters[OP__COUNT] = {
#define OP(id, name, fn, hint, shape, flags) [OP_##id] = fn,
#include "ir/ops.def"
#undef OP
};

static void poison_results(Lower *L, const Op *op) {
  for (int i = 0; i < op->n_results; i++) {
    OValue *p = og_value(L->c, L->g, "poison");
    p->poisoned = true;
    op->results[i]->lowered = p;
  }
}

/* Marks the node of an op whose operands all have the result's shape (the
 * StableHLO elementwise ops) when the converter emitted exactly one node
 * reading exactly those operands: see ONode.same_shape_inputs. */
static void mark_same_shape(const Op *op) {
  if (op->n_results != 1 || op->n_operands < 2) return;
  const Type *rt = &op->results[0]->type;
  for (int i = 0; i < op->n_operands; i++) {
    const Type *t = &op->operands[i]->type;
    if (t->rank != rt->rank) return;
    for (int d = 0; d < t->rank; d++)
      if (t->dims[d] != rt->dims[d]) return;
  }
  const OValue *out = op->results[0]->lowered;
  ONode *n = out ? out->producer : NULL;
  if (!n || n->fn || n->n_inputs != op->n_operands) return;
  for (int i = 0; i < n->n_inputs; i++)
    if (n->inputs[i] != op->operands[i]->lowered) return;
  n->same_shape_inputs = true;
}

static bool has_poisoned_operand(const Op *op) {
  for (int i = 0; i < op->n_operands; i++)
    if (op->operands[i]->lowered && op->operands[i]->lowered->poisoned) return true;
  return false;
}

/* ---- element types onnxruntime cannot compute with ------------------------ *
 * Checked once here rather than in every converter: an op reading or making
 * a tensor of such a type is reported with the type, e.g. "cannot convert
 * stablehlo.add: i4 tensors (ONNX INT4): onnxruntime has no kernels ...".
 * Ops that only pass values along (calls, returns, control flow) are not
 * checked: the ops inside them are. */

static const char *type_problem(ElemType et, OpKind kind) {
  switch (et) {
  case ET_C64: case ET_C128:
    (void)kind;
    return NULL; /* real pairs: lower/complex.c converts or reports the op */
  case ET_I4: case ET_U4: case ET_I2: case ET_U2: case ET_F4E2M1: case ET_F6E2M3:
  case ET_F6E3M2: case ET_F8E8M0:
    return "onnxruntime has no kernels for this type outside of quantization ops";
  case ET_F8E4M3FN: case ET_F8E4M3FNUZ: case ET_F8E5M2: case ET_F8E5M2FNUZ:
    /* Cast to and from float8 exists; the convert converter decides */
    if (op_table[kind].flags & OPF_CASTS_FLOAT8) return NULL;
    return "onnxruntime computes with float8 only in Cast and quantization ops";
  default:
    return et >= ET_NO_ONNX ? "ONNX has no such element type" : NULL;
  }
}

static int check_types(Lower *L, const Op *op) {
  if (op_table[op->kind].flags & OPF_PASSES_VALUES_ALONG) return 0;
  for (int i = 0; i < op->n_operands + op->n_results; i++) {
    const Type *t = i < op->n_operands ? &op->operands[i]->type
                                       : &op->results[i - op->n_operands]->type;
    if (t->kind != TK_TENSOR) continue;
    const char *why = type_problem(t->et, op->kind);
    if (!why) continue;
    if (t->et >= ET_NO_ONNX)
      return lw_unsupported(L, "%s tensors: %s", et_mlir_name(t->et), why);
    return lw_unsupported(L, "%s tensors (ONNX %s): %s", et_mlir_name(t->et),
                          et_onnx_name(t->et), why);
  }
  return 0;
}

int lw_block(Lower *L, const Block *b) {
  int rc = 0;
  if (lw_check_depth(L, lw_graph_depth(L)) != 0) return -1;
  for (int i = 0; i < b->n_ops; i++) {
    const Op *op = b->ops[i];
    if (++L->n_lowered > H2O_MAX_LOWERED_OPS) {
      if (L->n_lowered == H2O_MAX_LOWERED_OPS + 1)
        diag_error_op(L->c, H2O_EUNSUPPORTED, op,
                      "the module expands to more than %ld ops once its calls are "
                      "inlined (each call copies its function into the graph)",
                      (long)H2O_MAX_LOWERED_OPS);
      return -1;
    }
    const Op *saved = L->op;
    L->op = op;
    bool poisoned = has_poisoned_operand(op);
    if (poisoned || check_types(L, op) != 0 || lw_check_shapes(L, op) != 0) {
      /* An op without converter is still counted in the report of the
       * unsupported ops when it reads the result of another failed op. */
      LowerFn fn = lw_converters[op->kind];
      if (poisoned && (!fn || fn == lower_unsupported_op)) lower_unsupported_op(L, op);
      poison_results(L, op);
      rc = -1;
    } else {
      /* An op reading or making complex tensors: lower/complex.c maps it
       * onto their real pairs (or reports it) */
      LowerFn fn = lw_touches_complex(op) ? lower_complex : lw_converters[op->kind];
      int r = fn ? fn(L, op) : lower_unsupported_op(L, op);
      if (r != 0) {
        poison_results(L, op);
        rc = -1;
      } else {
        mark_same_shape(op);
      }
    }
    L->op = saved;
  }
  return rc;
}

int lw_inline_call(Lower *L, const Func *f, OValue *const *args, OValue **results) {
  for (int i = 0; i < L->call_depth; i++)
    if (L->call_stack[i] == f)
      return diag_error_op(L->c, H2O_EUNSUPPORTED, L->op,
                           "recursive call to @%s: recursion cannot be inlined", f->name);
  if (L->call_depth == (int)(sizeof L->call_stack / sizeof L->call_stack[0]))
    return diag_error_op(L->c, H2O_EUNSUPPORTED, L->op,
                         "calls nested more than %d deep", L->call_depth);
  L->call_stack[L->call_depth++] = f;
  for (int i = 0; i < f->n_args; i++) {
    Value *arg = f->body->args[i];
    arg->lowered = args[i];
  }
  OValue **saved_ret = L->ret;
  int saved_n = L->n_ret;
  Ctx *c = L->c;
  const char *saved_scope = c->call_scope, *saved_source = c->call_source;
  if (L->op && L->op->scope) c->call_scope = ir_op_scope(c, L->op);
  if (L->op && L->op->source) c->call_source = L->op->source;
  L->ret = results;
  L->n_ret = f->n_results;
  int rc = lw_block(L, f->body);
  L->ret = saved_ret;
  L->n_ret = saved_n;
  c->call_scope = saved_scope;
  c->call_source = saved_source;
  L->call_depth--;
  return rc;
}

/* ---- the entry function ------------------------------------------------- */

static const h2o_param *find_param(const h2o_param *params, int n, int arg) {
  for (int i = 0; i < n; i++)
    if (params[i].arg_index == arg) return &params[i];
  return NULL;
}

/* Names ONNX tools show: keep [A-Za-z0-9_.:/-], map the rest to '_'. */
static char *clean_name(Arena *a, const char *s) {
  char *out = arena_strdup(a, s);
  for (char *p = out; *p; p++)
    if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
          *p == '_' || *p == '.' || *p == ':' || *p == '/' || *p == '-'))
      *p = '_';
  return out;
}

static const char *string_attr(const NamedAttr *attrs, int n, const char *name) {
  const Attr *a = ir_attr(attrs, n, name);
  return a && a->kind == AK_STRING ? a->s : NULL;
}

static void name_dims(Ctx *c, OValue *v, const h2o_dim_name *names, int n, int index) {
  for (int i = 0; i < n; i++)
    if (names[i].index == index && names[i].dim >= 0 && names[i].dim < v->type.rank &&
        v->type.dims[names[i].dim].value < 0)
      v->type.dims[names[i].dim].param = arena_strdup(c->arena, names[i].name);
}

/* A dimension named by an expression linear in the one symbol `name`, as
 * jax.export prints them and users write them: "2*B", "B + 1", "2*B - 3",
 * "B*4".  Sets dim = a*name + c (a != 0) and returns true; false for any
 * other form (other symbols, products of symbols, floordiv, ...). */
static bool linear_in(const char *expr, const char *name, int64_t *a, int64_t *c) {
  size_t name_len = strlen(name);
  int64_t ca = 0, cc = 0;
  const char *p = expr;
  bool first = true;
  for (;;) {
    while (*p == ' ') p++;
    int64_t sign = 1;
    if (*p == '+' || *p == '-') {
      sign = *p == '-' ? -1 : 1;
      p++;
      while (*p == ' ') p++;
    } else if (!first) {
      return false;
    }
    first = false;
    /* a term: INT, SYM, INT*SYM or SYM*INT */
    int64_t k = 1;
    bool has_int = false, has_sym = false;
    for (int f = 0; f < 2; f++) {
      if (f == 1) {
        while (*p == ' ') p++;
        if (*p != '*') break;
        p++;
        while (*p == ' ') p++;
      }
      if (*p >= '0' && *p <= '9') {
        if (has_int) return false;
        int64_t v = 0;
        while (*p >= '0' && *p <= '9') {
          v = v * 10 + (*p++ - '0');
          if (v > INT32_MAX) return false;
        }
        k = v;
        has_int = true;
      } else if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_') {
        const char *s = p;
        while ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
               *p == '_')
          p++;
        if (has_sym || (size_t)(p - s) != name_len || memcmp(s, name, name_len) != 0)
          return false;
        has_sym = true;
      } else {
        return false;
      }
    }
    if (has_sym) ca += sign * k;
    else cc += sign * k;
    if (ca > INT32_MAX || ca < -INT32_MAX || cc > INT32_MAX || cc < -INT32_MAX) return false;
    while (*p == ' ') p++;
    if (!*p) break;
  }
  if (ca == 0) return false;
  *a = ca;
  *c = cc;
  return true;
}

/* A dimension variable (jax.global_constant = "B") from the first graph
 * input that has a dimension named B: Shape -> Cast -> Reshape to a scalar.
 * Without one, from a dimension named by an expression linear in B ("2*B",
 * "B+1": jit does not compute the variables the way jax.export does):
 * B = (dim - c) / a, exact for the sizes the expression allows. */
static OValue *dimension_variable(Lower *L, const char *name, const Type *t) {
  for (int pass = 0; pass < 2; pass++)
    for (int i = 0; i < L->g->inputs.len; i++) {
      OValue *in = L->g->inputs.items[i];
      for (int d = 0; d < in->type.rank; d++) {
        const char *param = in->type.dims[d].param;
        int64_t a = 1, c = 0;
        if (!param || (pass == 0 ? strcmp(param, name) != 0 : !linear_in(param, name, &a, &c)))
          continue;
        ONode *shape = lw_node(L, "Shape", 1, &in, 1);
        og_attr_int(L->c, shape, "start", d);
        og_attr_int(L->c, shape, "end", d + 1);
        int64_t one = 1;
        OValue *dim = shape->outputs[0];
        og_set_type(L->c, dim, ET_I64, 1, &one);
        if (c != 0) {
          dim = lw_op2(L, "Sub", dim, lw_const_i64s(L, 1, &c));
          og_set_type(L->c, dim, ET_I64, 1, &one);
        }
        if (a != 1) {
          dim = lw_op2(L, "Div", dim, lw_const_i64s(L, 1, &a));
          og_set_type(L->c, dim, ET_I64, 1, &one);
        }
        OValue *cast = lw_cast(L, dim, t->et);
        OValue *scalar = lw_op2(L, "Reshape", cast, lw_const_i64s(L, 0, NULL));
        og_set_type(L->c, scalar, t->et, 0, NULL);
        return scalar;
      }
    }
  return NULL;
}

/* ---- jax.export: naming the input dimensions ---------------------------- *
 * The @main of jax.export computes each dimension variable from an input
 * dimension (get_dimension_size) and passes it to @_wrapped_jax_export_main,
 * whose parameter says its name (jax.global_constant = "B"); the other
 * dimensions of that name are tied to it by shape assertions (EQ).  Those
 * dimensions of the graph inputs get the name as their dim_param, so the
 * model shows "B" where it would show an anonymous dimension. */

/* The graph input and axis v measures, when v = get_dimension_size(input). */
static OValue *measured_input(const Block *entry, const Value *v, int64_t *axis) {
  const Op *op = v ? v->def : NULL;
  if (op && op->kind == OP_CONVERT && op->n_operands == 1) op = op->operands[0]->def;
  if (!op || op->kind != OP_GET_DIMENSION_SIZE || op->n_operands != 1 ||
      !ir_attr_int(ir_op_attr(op, "dimension"), axis))
    return NULL;
  const Value *x = op->operands[0];
  if (x->def || x->index < 0 || x->index >= entry->n_args || entry->args[x->index] != x)
    return NULL;
  OValue *in = x->lowered;
  if (!in || !in->is_input || *axis < 0 || *axis >= in->type.rank) return NULL;
  return in;
}

static const char *measured_name(const Block *entry, const Value *v) {
  int64_t axis;
  OValue *in = measured_input(entry, v, &axis);
  return in ? in->type.dims[axis].param : NULL;
}

static void name_measured(Ctx *c, const Block *entry, const Value *v, const char *name) {
  int64_t axis;
  OValue *in = measured_input(entry, v, &axis);
  if (in && name && !in->type.dims[axis].param && in->type.dims[axis].value < 0)
    in->type.dims[axis].param = arena_strdup(c->arena, name);
}

/* Also the names: @main's arguments are loc(unknown), the wrapped
 * function's parameters carry the Python names (loc("x")).  An input named
 * by neither the options nor its own location takes its parameter's name. */
static void name_exported_dims(Lower *L, const Func *f, bool *default_name) {
  const Block *b = f->body;
  for (int i = 0; i < b->n_ops; i++) {
    const Op *op = b->ops[i];
    if (op->kind != OP_CALL && op->kind != OP_CALL_SHORT) continue;
    const Attr *callee = ir_op_attr(op, "callee");
    const Func *g = callee && callee->s ? ir_find_func(L->module, callee->s) : NULL;
    if (!g || g->n_args != op->n_operands) continue;
    for (int k = 0; k < g->n_args; k++) {
      const Value *x = op->operands[k];
      name_measured(L->c, b, x,
                    string_attr(g->arg_attrs[k], g->arg_n_attrs[k], "jax.global_constant"));
      if (!x->def && x->index >= 0 && x->index < b->n_args && b->args[x->index] == x &&
          default_name[x->index] && g->arg_loc_names && g->arg_loc_names[k] && x->lowered &&
          x->lowered->is_input) {
        x->lowered->name = clean_name(L->c->arena, g->arg_loc_names[k]);
        /* a second call passing it keeps the first name */
        default_name[x->index] = false;
      }
    }
  }
  for (int i = 0; i < b->n_ops; i++) {
    const Op *op = b->ops[i];
    const Attr *target = ir_op_attr(op, "call_target_name");
    if (op->kind != OP_CUSTOM_CALL || op->n_operands < 1 || !target || !target->s ||
        strcmp(target->s, "shape_assertion") != 0)
      continue;
    const Op *cmp = op->operands[0]->def;
    const Attr *dir = cmp ? ir_op_attr(cmp, "comparison_direction") : NULL;
    if (!cmp || cmp->kind != OP_COMPARE || cmp->n_operands != 2 || !dir || !dir->s ||
        strcmp(dir->s, "EQ") != 0)
      continue;
    name_measured(L->c, b, cmp->operands[0], measured_name(b, cmp->operands[1]));
    name_measured(L->c, b, cmp->operands[1], measured_name(b, cmp->operands[0]));
  }
}

static int bind_entry_args(Lower *L, const Func *f, const h2o_param *params, int n_params) {
  Ctx *c = L->c;
  const h2o_options *o = c->opts;
  int n_inputs = 0, rc = 0;
  bool *default_name = arena_alloc(c->arena, sizeof(bool) * (size_t)(f->n_args + 1));
  /* Inputs and parameters first, so dimension variables can refer to them. */
  for (int i = 0; i < f->n_args; i++) {
    Value *arg = f->body->args[i];
    const Type *t = &arg->type;
    if (string_attr(f->arg_attrs[i], f->arg_n_attrs[i], "jax.global_constant")) continue;
    const h2o_param *p = find_param(params, n_params, i);
    if (p) {
      int64_t numel = type_numel(t);
      if (numel < 0 || (size_t)numel * et_size(t->et) != p->nbytes) {
        char ts[128];
        rc = diag_error(c, H2O_EUSAGE,
                        "parameter for argument %d has %zu bytes, but its type %s needs %lld",
                        i, p->nbytes, type_str(t, ts, sizeof ts),
                        (long long)(numel < 0 ? -1 : numel * (int64_t)et_size(t->et)));
        continue;
      }
      Data d = {DATA_RAW, p->data, p->nbytes};
      /* complex weights: their bytes are already (real, imaginary) pairs */
      Type pt = type_as_pairs(c->arena, t);
      OValue *v = og_init(c, L->g, "param", pt.et, pt.rank, pt.dims, d);
      v->is_param = true;
      if (p->name) v->name = clean_name(c->arena, p->name);
      arg->lowered = v;
      continue;
    }
    if (t->et >= ET_NO_ONNX) {
      rc = diag_error(c, H2O_EUNSUPPORTED, "argument %d of @%s has element type %s, which ONNX "
                      "has no type for", i, f->name, et_mlir_name(t->et));
      continue;
    }
    OValue *v = og_value(c, L->g, "input");
    og_type_from_hlo(c, v, t);
    if (o && n_inputs < o->n_input_names && o->input_names[n_inputs]) {
      v->name = arena_strdup(c->arena, o->input_names[n_inputs]);
    } else if (f->arg_loc_names && f->arg_loc_names[i]) {
      v->name = clean_name(c->arena, f->arg_loc_names[i]);
    } else {
      v->name = arena_printf(c->arena, "input_%d", n_inputs);
      default_name[i] = true;
    }
    if (o) name_dims(c, v, o->input_dims, o->n_input_dims, i);
    v->is_input = true;
    ptrvec_push(c->arena, &L->g->inputs, v);
    arg->lowered = v;
    n_inputs++;
  }
  name_exported_dims(L, f, default_name);
  for (int i = 0; i < f->n_args; i++) {
    const char *dimvar = string_attr(f->arg_attrs[i], f->arg_n_attrs[i], "jax.global_constant");
    if (!dimvar) continue;
    Value *arg = f->body->args[i];
    OValue *v = dimension_variable(L, dimvar, &arg->type);
    if (!v) {
      rc = diag_error(c, H2O_EUSAGE,
                      "dimension variable '%s' (argument %d of @%s) is not the name of "
                      "any input dimension, nor in one of the form a*%s + c; name the "
                      "symbolic dimensions of the inputs "
                      "(e.g. --dim %d:0=%s) or export with jax.export, which computes it",
                      dimvar, i, f->name, dimvar, i + 1, dimvar);
      continue;
    }
    arg->lowered = v;
  }
  return rc;
}

/* "output_0_logits" for the pytree path JAX gives as jax.result_info,
 * "result[0]['logits']" (or "[0]['logits']" before JAX 0.4.36): "output",
 * then each run of letters, digits and '_' after an underscore. */
static char *output_name(Arena *a, const char *info) {
  if (strncmp(info, "result", 6) == 0) info += 6;
  size_t n = strlen(info);
  char *out = arena_alloc(a, n + 8 + n / 2 + 1), *q = out;
  memcpy(q, "output", 6);
  q += 6;
  bool sep = true;
  for (const char *p = info; *p; p++) {
    bool word = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                *p == '_';
    if (!word) {
      sep = true;
      continue;
    }
    if (sep) *q++ = '_';
    sep = false;
    *q++ = *p;
  }
  *q = 0;
  return out;
}

/* Graph outputs need names of their own: a value that is an input, an
 * initializer, or already an output is passed through an Identity. */
static int bind_entry_results(Lower *L, const Func *f, OValue **results) {
  Ctx *c = L->c;
  const h2o_options *o = c->opts;
  for (int i = 0; i < f->n_results; i++) {
    OValue *v = results[i];
    if (!v) return diag_error(c, H2O_EINPUT, "@%s returns no value for result %d", f->name, i);
    if (v->is_input || v->is_init || v->is_output || !v->producer) {
      OValue *in = v;
      L->op = NULL;
      v = lw_op1(L, "Identity", in);
      v->type = in->type;
    }
    const char *info = string_attr(f->result_attrs[i], f->result_n_attrs[i], "jax.result_info");
    if (o && i < o->n_output_names && o->output_names[i])
      v->name = arena_strdup(c->arena, o->output_names[i]);
    else if (info && *info && strcmp(info, "result") != 0 && strcmp(info, "") != 0 &&
             (f->n_results > 1 || strchr(info, '[')))
      v->name = output_name(c->arena, info);
    else
      v->name = arena_printf(c->arena, "output_%d", i);
    og_type_from_hlo(c, v, &f->result_types[i]);
    if (o) name_dims(c, v, o->output_dims, o->n_output_dims, i);
    v->is_output = true;
    ptrvec_push(c->arena, &L->g->outputs, v);
  }
  return 0;
}

static void report_unsupported(Lower *L) {
  /* The list is newest first; report in source order of first use. */
  int n = 0;
  for (Unsupported *u = L->unsupported; u; u = u->next) n++;
  Unsupported **all = arena_alloc(L->c->arena, sizeof(Unsupported *) * (size_t)(n + 1));
  int k = n;
  for (Unsupported *u = L->unsupported; u; u = u->next) all[--k] = u;
  for (int i = 0; i < n; i++) {
    Unsupported *u = all[i];
    bool known = op_lookup(u->opname, strlen(u->opname)) != OP_UNKNOWN;
    L->c->call_scope = u->call_scope;
    L->c->call_source = u->call_source;
    diag_error_op(L->c, H2O_EUNSUPPORTED, u->first,
                  "%s op '%s' (%d use%s in the module; first one here)",
                  known ? "no ONNX conversion yet for" : "unknown", u->opname, u->count,
                  u->count == 1 ? "" : "s");
    L->c->call_scope = L->c->call_source = NULL;
  }
}

OModel *lower_module(Ctx *c, const Module *m, const h2o_param *params, int n_params) {
  const Func *entry = ir_entry_func(m);
  if (!entry) {
    diag_error(c, H2O_EINPUT, "the module has no public entry function (@main)");
    return NULL;
  }
  const h2o_options *o = c->opts;
  Lower L = {0};
  L.c = c;
  L.module = m;
  L.opset = o && o->opset ? o->opset : H2O_DEFAULT_OPSET;
  const char *gname = o && o->graph_name ? o->graph_name : (m->name ? m->name : "hlo2onnx");
  L.g = og_new(c, gname, NULL);
  for (int i = 0; i < n_params; i++)
    if (params[i].arg_index < 0 || params[i].arg_index >= entry->n_args) {
      diag_error(c, H2O_EUSAGE, "parameter %d is bound to argument %d, but @%s has %d arguments",
                 i, params[i].arg_index, entry->name, entry->n_args);
      return NULL;
    }
  const Op *where;
  if (lw_expanded_ops(c, m, entry, H2O_MAX_LOWERED_OPS, &where) > H2O_MAX_LOWERED_OPS) {
    diag_error_op(c, H2O_EUNSUPPORTED, where,
                  "the module expands to more than %ld ops once its calls are inlined "
                  "(each call copies its function into the graph)",
                  (long)H2O_MAX_LOWERED_OPS);
    return NULL;
  }
  if (bind_entry_args(&L, entry, params, n_params) != 0) return NULL;
  lw_plan_functions(&L, entry);

  OValue **results = arena_alloc(c->arena, sizeof(OValue *) * (size_t)(entry->n_results + 1));
  L.ret = results;
  L.n_ret = entry->n_results;
  L.call_stack[L.call_depth++] = entry;
  int rc = lw_block(&L, entry->body);
  report_unsupported(&L);
  if (rc != 0 || c->n_errors) {
    if (!c->n_errors) diag_error(c, H2O_EINTERNAL, "internal error: lowering failed without a message");
    return NULL;
  }
  if (bind_entry_results(&L, entry, results) != 0) return NULL;

  OModel *model = arena_alloc(c->arena, sizeof *model);
  model->graph = L.g;
  model->opset = L.opset;
  model->producer_name = "hlo2onnx";
  model->producer_version = H2O_VERSION;
  model->functions = L.functions;
  return model;
}
