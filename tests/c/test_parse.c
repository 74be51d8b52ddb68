/* test_parse.c - the parser (src/parse/), one construct at a time.
 *
 * Good inputs are MLIR texts of the kind JAX prints; each test parses one and
 * asserts the IR it must produce: op kinds, operand links, types, normalised
 * attributes, dense bytes, scopes.  Bad inputs are a table, each row the
 * input next to the diagnostic it must produce and where (line:col).
 *
 * Every input is copied into a buffer of exactly its length, without a NUL,
 * so AddressSanitizer catches any read past the end.  Run under ASan+UBSan.
 * Exit status: 0 when every check passed.
 */
#include "parse/parse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"

/* ---- harness ------------------------------------------------------------------ */

/* Where every test arena jumps when memory runs out.  setjmp is called in
 * main(), the one frame live whenever an arena can allocate (the IR helpers
 * the tests call after parsing allocate too). */
static jmp_buf oom;

typedef struct Parsed {
  Arena *arena;
  Ctx c;
  char *buf; /* the input, not NUL-terminated */
  Module *m;
} Parsed;

static Module *parse_text(Parsed *t, const char *text, size_t len) {
  memset(t, 0, sizeof *t);
  t->buf = malloc(len ? len : 1);
  if (len) memcpy(t->buf, text, len);
  t->arena = arena_new(&oom);
  ctx_init(&t->c, t->arena, &oom, "test.mlir", t->buf, len, NULL);
  t->m = parse_module(&t->c);
  if (!t->m && t->c.diag && getenv("SHOW_DIAG")) fputs(t->c.diag, stderr);
  return t->m;
}

static Module *parse(Parsed *t, const char *text) { return parse_text(t, text, strlen(text)); }

static void release(Parsed *t) {
  ctx_release(&t->c);
  arena_free(t->arena);
  free(t->buf);
}

/* Parses a text that must succeed; prints the diagnostic if it does not. */
static Module *parse_ok(Parsed *t, const char *text) {
  Module *m = parse(t, text);
  if (!m) fprintf(stderr, "[%s] unexpected parse error:\n%s", current, t->c.diag ? t->c.diag : "");
  CHECK(m != NULL);
  return m;
}

static Func *main_func(Module *m) { return m ? ir_find_func(m, "main") : NULL; }

/* The i-th op of a function body (negative: from the end). */
static Op *op_at(Func *f, int i) {
  if (!f) return NULL;
  if (i < 0) i += f->body->n_ops;
  return i >= 0 && i < f->body->n_ops ? f->body->ops[i] : NULL;
}

static bool dims_are(const Type *t, int rank, const int64_t *dims) {
  if (t->kind != TK_TENSOR || t->rank != rank) return false;
  for (int i = 0; i < rank; i++)
    if (t->dims[i] != dims[i]) return false;
  return true;
}

static bool ints_are(Ctx *c, const Attr *a, int n, const int64_t *want) {
  int64_t *got;
  int k = ir_attr_i64s(c, a, &got);
  if (k != n) return false;
  for (int i = 0; i < n; i++)
    if (got[i] != want[i]) return false;
  return true;
}

static bool enum_is(const Attr *a, const char *s) {
  return a && a->kind == AK_ENUM && strcmp(a->s, s) == 0;
}

static const uint8_t *dense_bytes(Parsed *t, const Attr *a) {
  return a && a->kind == AK_DENSE ? data_bytes(&t->c, &a->dense->data) : NULL;
}

static float f32_at(const uint8_t *b, int i) {
  uint32_t u = (uint32_t)b[4 * i] | (uint32_t)b[4 * i + 1] << 8 | (uint32_t)b[4 * i + 2] << 16 |
               (uint32_t)b[4 * i + 3] << 24;
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static unsigned u16_at(const uint8_t *b, int i) { return (unsigned)b[2 * i] | (unsigned)b[2 * i + 1] << 8; }

/* A module with one function `main(%arg0: tensor<4xf32>) -> tensor<4xf32>`
 * around BODY (ops, each line starting with 4 spaces); BODY is line 3. */
#define MAIN(body)                                                                 \
  "module @m {\n"                                                                  \
  "  func.func public @main(%arg0: tensor<4xf32>) -> tensor<4xf32> {\n" body      \
  "    return %arg0 : tensor<4xf32>\n"                                             \
  "  }\n"                                                                          \
  "}\n"

/* ---- module, functions, locations ----------------------------------------------- */

static void test_module_structure(void) {
  current = "module structure";
  static const char text[] =
      "#loc = loc(unknown)\n"
      "#loc4 = loc(\"leaves[0]\")\n"
      "module @jit_f attributes {mhlo.num_partitions = 1 : i32, jax.flag = true} {\n"
      "  sdy.mesh @empty_mesh = <[]> {stablehlo.mesh = {axes = []}} loc(#loc)\n"
      "  func.func public @main(%arg0: tensor<10xf32> loc(unknown), %arg1: tensor<i32> "
      "{jax.global_constant = \"B\"} loc(\"x\")) -> (tensor<10xf32> {jax.result_info = \"result\"}) {\n"
      "    %0 = call @f(%arg0) : (tensor<10xf32>) -> tensor<10xf32> loc(#loc2)\n"
      "    return %0 : tensor<10xf32> loc(#loc)\n"
      "  } loc(#loc)\n"
      "  func.func private @f(%arg0: tensor<10xf32> loc(#loc4)) -> tensor<10xf32> {\n"
      "    return %arg0 : tensor<10xf32>\n"
      "  }\n"
      "  func.func @empty() -> () {\n"
      "    return\n"
      "  }\n"
      "} loc(#loc)\n"
      "#loc2 = loc(\"jit(f)/call\"(#loc3))\n"
      "#loc3 = loc(\"f.py\":12:3 to :9)\n";
  Parsed t;
  Module *m = parse_ok(&t, text);
  if (!m) {
    release(&t);
    return;
  }
  CHECK(strcmp(m->name, "jit_f") == 0);
  CHECK(m->n_attrs == 2);
  const Attr *np = ir_attr(m->attrs, m->n_attrs, "mhlo.num_partitions");
  CHECK(np && np->kind == AK_INT && np->i == 1 && np->type.et == ET_I32);
  CHECK(m->n_funcs == 3);
  Func *f = main_func(m);
  CHECK(f && f->is_public && f->n_args == 2 && f->n_results == 1);
  CHECK(f->pos.line == 5 && f->pos.col == 3);
  CHECK(strcmp(f->body->args[0]->name, "%arg0") == 0 && f->body->args[0]->def == NULL);
  CHECK(f->body->args[1]->type.rank == 0 && f->body->args[1]->type.et == ET_I32);
  CHECK(f->arg_n_attrs[0] == 0 && f->arg_n_attrs[1] == 1);
  const Attr *gc = ir_attr(f->arg_attrs[1], f->arg_n_attrs[1], "jax.global_constant");
  CHECK(gc && gc->kind == AK_STRING && strcmp(gc->s, "B") == 0);
  CHECK(f->arg_loc_names[0] == NULL && strcmp(f->arg_loc_names[1], "x") == 0);
  const Attr *ri = ir_attr(f->result_attrs[0], f->result_n_attrs[0], "jax.result_info");
  CHECK(ri && strcmp(ri->s, "result") == 0);
  Op *call = op_at(f, 0);
  CHECK(call && call->kind == OP_CALL_SHORT && strcmp(call->opname, "call") == 0);
  CHECK(call->scope && strcmp(call->scope, "jit(f)/call") == 0);
  const Attr *callee = ir_op_attr(call, "callee");
  CHECK(callee && callee->kind == AK_SYMBOL && strcmp(callee->s, "f") == 0);
  CHECK(op_at(f, 1)->kind == OP_RETURN_SHORT && op_at(f, 1)->operands[0] == call->results[0]);
  CHECK(op_at(f, 1)->scope == NULL); /* loc(unknown) */
  Func *g = ir_find_func(m, "f");
  CHECK(g && !g->is_public && strcmp(g->arg_loc_names[0], "leaves[0]") == 0);
  CHECK(g->n_results == 1 && g->result_types[0].dims[0] == 10);
  Func *e = ir_find_func(m, "empty");
  CHECK(e && e->is_public && e->n_args == 0 && e->n_results == 0);
  CHECK(ir_entry_func(m) == f);
  release(&t);
}

static void test_module_variants(void) {
  current = "module without name, implicit module";
  Parsed t;
  Module *m = parse_ok(&t, "module {\n}\n");
  CHECK(m && m->name == NULL && m->n_funcs == 0 && ir_entry_func(m) == NULL);
  release(&t);
  m = parse_ok(&t, "func.func @only(%a: tensor<f32>) -> tensor<f32> {\n  return %a : tensor<f32>\n}\n");
  CHECK(m && m->n_funcs == 1 && ir_entry_func(m) == m->funcs[0]);
  release(&t);
  /* comments and a resource section at the end are skipped */
  m = parse_ok(&t, "// a comment\nmodule @x { // trailing\n}\n{-# dialect_resources: { builtin: {} } #-}\n");
  CHECK(m && strcmp(m->name, "x") == 0);
  release(&t);
}

static void test_locations(void) {
  current = "locations";
  static const char text[] =
      "module {\n"
      "  func.func @main(%arg0: tensor<f32> loc(#loc9)) -> tensor<f32> {\n"
      "    %0 = stablehlo.negate %arg0 : tensor<f32> loc(#loc30)\n"
      "    %1 = stablehlo.negate %0 : tensor<f32> loc(\"direct\"(\"a.py\":1:2))\n"
      "    %2 = stablehlo.negate %1 : tensor<f32> loc(callsite(#loc31 at #loc30))\n"
      "    %3 = stablehlo.negate %2 : tensor<f32> loc(\"a.py\":3:4)\n"
      "    %4 = stablehlo.negate %3 : tensor<f32> loc(fused[\"a.py\":1:1, \"in_fused\"])\n"
      "    %5 = stablehlo.negate %4 : tensor<f32> loc(unknown)\n"
      "    %6 = stablehlo.negate %5 : tensor<f32> loc(\"a.py\":1:2 to 3:4)\n"
      "    %7 = stablehlo.negate %6 : tensor<f32>\n"
      "    return %7 : tensor<f32>\n"
      "  }\n"
      "}\n"
      "#loc9 = loc(\"x\"(#loc27))\n"
      "#loc27 = loc(callsite(#loc28 at #loc29))\n"
      "#loc28 = loc(\"f.py\":1:2)\n"
      "#loc29 = loc(\"<module>\"(#loc28))\n"
      "#loc30 = loc(\"jit(f)/erfc\"(#loc27))\n"
      "#loc31 = loc(\"inner\")\n";
  Parsed t;
  Func *f = main_func(parse_ok(&t, text));
  if (!f) {
    release(&t);
    return;
  }
  CHECK(strcmp(f->arg_loc_names[0], "x") == 0);
  CHECK(strcmp(op_at(f, 0)->scope, "jit(f)/erfc") == 0);
  CHECK(strcmp(op_at(f, 1)->scope, "direct") == 0);
  CHECK(strcmp(op_at(f, 2)->scope, "inner") == 0); /* callsite: the callee's */
  CHECK(op_at(f, 3)->scope == NULL);                /* a file location */
  CHECK(strcmp(op_at(f, 4)->scope, "in_fused") == 0);
  CHECK(op_at(f, 5)->scope == NULL);
  CHECK(op_at(f, 6)->scope == NULL);
  CHECK(op_at(f, 7)->scope == NULL);
  /* the Python line: the innermost file location (the callee's, else the
   * caller's), the first one of a fused location */
  static const char *const sources[] = {"f.py:1", "a.py:1", "f.py:1", "a.py:3",
                                        "a.py:1", NULL, "a.py:1", NULL};
  for (int i = 0; i < 8; i++)
    CHECK(sources[i] ? op_at(f, i)->source && strcmp(op_at(f, i)->source, sources[i]) == 0
                     : op_at(f, i)->source == NULL);
  release(&t);
}

/* A chain of 5000 location aliases, defined after the module in reverse
 * order: resolved without recursion. */
static void test_long_alias_chain(void) {
  current = "long alias chain";
  size_t cap = 400000, n = 0;
  char *text = malloc(cap);
  n += (size_t)snprintf(text + n, cap - n,
                        "module {\n  func.func @main(%%a: tensor<f32>) -> tensor<f32> {\n"
                        "    %%0 = stablehlo.negate %%a : tensor<f32> loc(#l0)\n"
                        "    return %%0 : tensor<f32>\n  }\n}\n");
  for (int i = 0; i < 5000; i++)
    n += (size_t)snprintf(text + n, cap - n, "#l%d = loc(callsite(#l%d at \"f.py\":1:1))\n", i, i + 1);
  n += (size_t)snprintf(text + n, cap - n, "#l5000 = loc(\"deep\"(\"f.py\":2:2))\n");
  Parsed t;
  Func *f = main_func(parse_text(&t, text, n));
  CHECK(f && op_at(f, 0)->scope && strcmp(op_at(f, 0)->scope, "deep") == 0);
  release(&t);
  free(text);
}

/* ---- values and scopes ------------------------------------------------------------- */

static void test_values_and_scopes(void) {
  current = "values and scopes";
  static const char text[] =
      "module {\n"
      "  func.func @main(%arg0: tensor<i32>, %arg1: tensor<4xf32>) -> (tensor<4xf32>, tensor<i32>) {\n"
      "    %cst_3 = stablehlo.constant dense<1.0> : tensor<f32>\n"
      "    %0:2 = stablehlo.optimization_barrier %arg1, %arg0 : tensor<4xf32>, tensor<i32>\n"
      "    %1 = \"stablehlo.case\"(%0#1) ({\n"
      "      %2 = stablehlo.broadcast_in_dim %cst_3, dims = [] : (tensor<f32>) -> tensor<4xf32>\n"
      "      stablehlo.return %2 : tensor<4xf32>\n"
      "    }, {\n"
      "      %2 = stablehlo.negate %0#0 : tensor<4xf32>\n"
      "      stablehlo.return %2 : tensor<4xf32>\n"
      "    }) : (tensor<i32>) -> tensor<4xf32>\n"
      "    %2 = stablehlo.add %1, %0#0 : tensor<4xf32>\n"
      "    return %2, %0#1 : tensor<4xf32>, tensor<i32>\n"
      "  }\n"
      "  func.func @other(%arg0: tensor<f32>) -> tensor<f32> {\n"
      "    %0 = stablehlo.negate %arg0 : tensor<f32>\n"
      "    %1 = stablehlo.negate %0 : tensor<f32>\n"
      "    return %1 : tensor<f32>\n"
      "  }\n"
      "}\n";
  Parsed t;
  Func *f = main_func(parse_ok(&t, text));
  if (!f) {
    release(&t);
    return;
  }
  Op *cst = op_at(f, 0), *bar = op_at(f, 1), *cs = op_at(f, 2), *add = op_at(f, 3);
  CHECK(strcmp(cst->results[0]->name, "%cst_3") == 0);
  CHECK(bar->kind == OP_OPTIMIZATION_BARRIER && bar->n_results == 2);
  CHECK(strcmp(bar->results[0]->name, "%0#0") == 0 && strcmp(bar->results[1]->name, "%0#1") == 0);
  CHECK(bar->results[1]->index == 1 && bar->results[1]->def == bar);
  CHECK(bar->results[1]->type.et == ET_I32 && bar->results[0]->type.et == ET_F32);
  CHECK(cs->kind == OP_CASE && cs->n_regions == 2 && cs->operands[0] == bar->results[1]);
  Block *b0 = cs->regions[0]->blocks[0], *b1 = cs->regions[1]->blocks[0];
  CHECK(b0->n_args == 0 && b0->n_ops == 2 && b1->n_ops == 2);
  CHECK(b0->ops[0]->operands[0] == cst->results[0]); /* a region sees enclosing values */
  CHECK(b1->ops[0]->operands[0] == bar->results[0]);
  CHECK(b0->ops[1]->operands[0] == b0->ops[0]->results[0]); /* %2 of its own region */
  CHECK(b1->ops[1]->operands[0] == b1->ops[0]->results[0]);
  CHECK(add->operands[0] == cs->results[0] && add->operands[1] == bar->results[0]);
  CHECK(strcmp(add->results[0]->name, "%2") == 0); /* %2 reused after the regions */
  Func *o = ir_find_func(t.m, "other");
  CHECK(o && op_at(o, 0)->operands[0] == o->body->args[0]); /* names reused per function */
  release(&t);
}

/* ---- pretty forms ------------------------------------------------------------------------ */

static void test_elementwise_and_signatures(void) {
  current = "signatures";
  static const char text[] = MAIN(
      "    %0 = stablehlo.add %arg0, %arg0 : tensor<4xf32>\n"
      "    %1 = stablehlo.convert %0 : (tensor<4xf32>) -> tensor<4xi32>\n"
      "    %2 = stablehlo.compare GT, %0, %arg0, FLOAT : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xi1>\n"
      "    %3 = stablehlo.compare LT, %1, %1 : (tensor<4xi32>, tensor<4xi32>) -> tensor<4xi1>\n"
      "    %4 = stablehlo.select %2, %arg0, %0 : tensor<4xi1>, tensor<4xf32>\n"
      "    %5 = chlo.erfc %4 : tensor<4xf32> -> tensor<4xf32>\n"
      "    %6 = stablehlo.convert %5 : tensor<4xf32>\n"
      "    %7 = stablehlo.clamp %arg0, %6, %arg0 : tensor<4xf32>\n"
      "    %8 = stablehlo.complex %arg0, %arg0 : tensor<4xcomplex<f32>>\n"
      "    %9 = stablehlo.tuple %arg0, %1 : tuple<tensor<4xf32>, tensor<4xi32>>\n"
      "    %10 = stablehlo.get_tuple_element %9[1] : (tuple<tensor<4xf32>, tensor<4xi32>>) -> tensor<4xi32>\n");
  Parsed t;
  Func *f = main_func(parse_ok(&t, text));
  if (!f) {
    release(&t);
    return;
  }
  Op *add = op_at(f, 0);
  CHECK(add->kind == OP_ADD && add->n_operands == 2 && add->n_results == 1);
  CHECK(add->operands[0] == f->body->args[0] && add->operands[1] == f->body->args[0]);
  CHECK(add->pos.line == 3 && add->pos.col == 10);
  int64_t four[] = {4};
  CHECK(dims_are(&add->results[0]->type, 1, four) && add->results[0]->type.et == ET_F32);
  Op *conv = op_at(f, 1);
  CHECK(conv->kind == OP_CONVERT && conv->results[0]->type.et == ET_I32);
  Op *cmp = op_at(f, 2);
  CHECK(cmp->kind == OP_COMPARE && cmp->results[0]->type.et == ET_BOOL);
  CHECK(enum_is(ir_op_attr(cmp, "comparison_direction"), "GT"));
  CHECK(enum_is(ir_op_attr(cmp, "compare_type"), "FLOAT"));
  Op *cmp2 = op_at(f, 3);
  CHECK(enum_is(ir_op_attr(cmp2, "comparison_direction"), "LT") && !ir_op_attr(cmp2, "compare_type"));
  Op *sel = op_at(f, 4);
  CHECK(sel->kind == OP_SELECT && sel->n_operands == 3 && sel->results[0]->type.et == ET_F32);
  Op *erfc = op_at(f, 5);
  CHECK(erfc->kind == OP_CHLO_ERFC && erfc->results[0]->type.et == ET_F32);
  CHECK(op_at(f, 7)->kind == OP_CLAMP);
  Op *cplx = op_at(f, 8);
  CHECK(cplx->kind == OP_COMPLEX && cplx->results[0]->type.et == ET_C64);
  Op *tup = op_at(f, 9);
  CHECK(tup->kind == OP_TUPLE && tup->results[0]->type.kind == TK_TUPLE);
  Op *gte = op_at(f, 10);
  int64_t idx;
  CHECK(gte->kind == OP_GET_TUPLE_ELEMENT && ir_attr_int(ir_op_attr(gte, "index"), &idx) && idx == 1);
  CHECK(gte->results[0]->type.et == ET_I32);
  release(&t);
}

static void test_shape_ops(void) {
  current = "shape ops";
  static const char text[] =
      "module {\n"
      "  func.func @main(%arg0: tensor<5x4xf32>, %i: tensor<i32>, %s: tensor<2xi32>) -> tensor<5x4xf32> {\n"
      "    %0 = stablehlo.iota dim = 0 : tensor<4xf32>\n"
      "    %1 = stablehlo.broadcast_in_dim %0, dims = [1] : (tensor<4xf32>) -> tensor<5x4xf32>\n"
      "    %2 = stablehlo.transpose %arg0, dims = [1, 0] : (tensor<5x4xf32>) -> tensor<4x5xf32>\n"
      "    %3 = stablehlo.slice %arg0 [1:3, 0:4:2] : (tensor<5x4xf32>) -> tensor<2x2xf32>\n"
      "    %4 = stablehlo.concatenate %arg0, %1, dim = 0 : (tensor<5x4xf32>, tensor<5x4xf32>) -> tensor<10x4xf32>\n"
      "    %5 = stablehlo.reverse %arg0, dims = [0] : tensor<5x4xf32>\n"
      "    %cst = stablehlo.constant dense<0.0> : tensor<f32>\n"
      "    %6 = stablehlo.pad %arg0, %cst, low = [0, 1], high = [1, 0], interior = [0, 0] : (tensor<5x4xf32>, tensor<f32>) -> tensor<6x5xf32>\n"
      "    %7 = stablehlo.dynamic_slice %arg0, %i, %i, sizes = [1, 2] : (tensor<5x4xf32>, tensor<i32>, tensor<i32>) -> tensor<1x2xf32>\n"
      "    %8 = stablehlo.get_dimension_size %arg0, dim = 1 : (tensor<5x4xf32>) -> tensor<i32>\n"
      "    %9 = stablehlo.dynamic_broadcast_in_dim %0, %s, dims = [1] : (tensor<4xf32>, tensor<2xi32>) -> tensor<?x4xf32>\n"
      "    %10 = stablehlo.dynamic_iota %s, dim = 0 : (tensor<2xi32>) -> tensor<?x4xf32>\n"
      "    %11 = stablehlo.reduce_precision %arg0, format = e5m2 : tensor<5x4xf32>\n"
      "    return %11 : tensor<5x4xf32>\n"
      "  }\n"
      "}\n";
  Parsed t;
  Func *f = main_func(parse_ok(&t, text));
  if (!f) {
    release(&t);
    return;
  }
  Ctx *c = &t.c;
  int64_t v;
  CHECK(op_at(f, 0)->kind == OP_IOTA && op_at(f, 0)->n_operands == 0);
  CHECK(ir_attr_int(ir_op_attr(op_at(f, 0), "iota_dimension"), &v) && v == 0);
  CHECK(ints_are(c, ir_op_attr(op_at(f, 1), "broadcast_dimensions"), 1, (int64_t[]){1}));
  CHECK(ints_are(c, ir_op_attr(op_at(f, 2), "permutation"), 2, (int64_t[]){1, 0}));
  Op *sl = op_at(f, 3);
  CHECK(ints_are(c, ir_op_attr(sl, "start_indices"), 2, (int64_t[]){1, 0}));
  CHECK(ints_are(c, ir_op_attr(sl, "limit_indices"), 2, (int64_t[]){3, 4}));
  CHECK(ints_are(c, ir_op_attr(sl, "strides"), 2, (int64_t[]){1, 2}));
  CHECK(ir_attr_int(ir_op_attr(op_at(f, 4), "dimension"), &v) && v == 0);
  CHECK(ints_are(c, ir_op_attr(op_at(f, 5), "dimensions"), 1, (int64_t[]){0}));
  Op *pad = op_at(f, 7);
  CHECK(ints_are(c, ir_op_attr(pad, "edge_padding_low"), 2, (int64_t[]){0, 1}));
  CHECK(ints_are(c, ir_op_attr(pad, "edge_padding_high"), 2, (int64_t[]){1, 0}));
  CHECK(ints_are(c, ir_op_attr(pad, "interior_padding"), 2, (int64_t[]){0, 0}));
  CHECK(ints_are(c, ir_op_attr(op_at(f, 8), "slice_sizes"), 2, (int64_t[]){1, 2}));
  CHECK(op_at(f, 8)->n_operands == 3);
  CHECK(ir_attr_int(ir_op_attr(op_at(f, 9), "dimension"), &v) && v == 1);
  Op *dbd = op_at(f, 10);
  CHECK(dbd->kind == OP_DYNAMIC_BROADCAST_IN_DIM && dbd->operands[1] == f->body->args[2]);
  CHECK(ints_are(c, ir_op_attr(dbd, "broadcast_dimensions"), 1, (int64_t[]){1}));
  CHECK(dbd->results[0]->type.dims[0] == DIM_DYN && dbd->results[0]->type.dims[1] == 4);
  CHECK(ir_attr_int(ir_op_attr(op_at(f, 11), "iota_dimension"), &v) && v == 0);
  Op *rp = op_at(f, 12);
  CHECK(ir_attr_int(ir_op_attr(rp, "exponent_bits"), &v) && v == 5);
  CHECK(ir_attr_int(ir_op_attr(rp, "mantissa_bits"), &v) && v == 2);
  CHECK(!ir_op_attr(rp, "format"));
  release(&t);
}

static void test_dot_general(void) {
  current = "dot_general";
  static const char text[] =
      "module {\n"
      "  func.func @main(%a: tensor<2x3x4xf32>, %b: tensor<2x4x5xf32>, %m: tensor<4x30xf32>, %n: tensor<30x20xf32>) -> tensor<2x3x5xf32> {\n"
      "    %0 = stablehlo.dot_general %a, %b, batching_dims = [0] x [0], contracting_dims = [2] x [1], precision = [DEFAULT, HIGHEST] : (tensor<2x3x4xf32>, tensor<2x4x5xf32>) -> tensor<2x3x5xf32>\n"
      "    %1 = stablehlo.dot_general %m, %n, contracting_dims = [1] x [0] : (tensor<4x30xf32>, tensor<30x20xf32>) -> tensor<4x20xf32>\n"
      "    %2 = \"stablehlo.dot_general\"(%m, %n) <{dot_dimension_numbers = #stablehlo.dot<lhs_contracting_dimensions = [1], rhs_contracting_dimensions = [0]>, precision_config = [#stablehlo<precision DEFAULT>, #stablehlo<precision DEFAULT>]}> : (tensor<4x30xf32>, tensor<30x20xf32>) -> tensor<4x20xf32>\n"
      "    return %0 : tensor<2x3x5xf32>\n"
      "  }\n"
      "}\n";
  Parsed t;
  Func *f = main_func(parse_ok(&t, text));
  if (!f) {
    release(&t);
    return;
  }
  Ctx *c = &t.c;
  for (int i = 0; i < 3; i++) {
    const Attr *d = ir_op_attr(op_at(f, i), "dot_dimension_numbers");
    CHECK(d && d->kind == AK_DICT && strcmp(d->s, "stablehlo.dot") == 0);
    bool batched = i == 0;
    CHECK(ints_are(c, ir_dict_field(d, "lhs_batching_dimensions"), batched, (int64_t[]){0}));
    CHECK(ints_are(c, ir_dict_field(d, "rhs_batching_dimensions"), batched, (int64_t[]){0}));
    CHECK(ints_are(c, ir_dict_field(d, "lhs_contracting_dimensions"), 1, (int64_t[]){batched ? 2 : 1}));
    CHECK(ints_are(c, ir_dict_field(d, "rhs_contracting_dimensions"), 1, (int64_t[]){batched ? 1 : 0}));
    CHECK(!ir_op_attr(op_at(f, i), "contracting_dims") && !ir_op_attr(op_at(f, i), "batching_dims"));
  }
  const Attr *prec = ir_op_attr(op_at(f, 0), "precision_config");
  CHECK(prec && prec->kind == AK_ARRAY && prec->n_elems == 2 && enum_is(prec->elems[1], "HIGHEST"));
  prec = ir_op_attr(op_at(f, 2), "precision_config");
  CHECK(prec && prec->n_elems == 2 && enum_is(prec->elems[0], "DEFAULT"));
  CHECK(!ir_op_attr(op_at(f, 1), "precision_config"));
  release(&t);
}

static void test_reduce(void) {
  current = "reduce";
  static const char text[] =
      "module {\n"
      "  func.func @main(%arg0: tensor<5x4xf32>) -> tensor<5xi32> {\n"
      "    %cst = stablehlo.constant dense<0xFF800000> : tensor<f32>\n"
      "    %0 = stablehlo.reduce(%arg0 init: %cst) applies stablehlo.maximum across dimensions = [1] : (tensor<5x4xf32>, tensor<f32>) -> tensor<5xf32> loc(\"jit(f)/reduce_max\")\n"
      "    %1 = stablehlo.iota dim = 1 : tensor<5x4xi32>\n"
      "    %c = stablehlo.constant dense<0> : tensor<i32>\n"
      "    %2:2 = stablehlo.reduce(%arg0 init: %cst), (%1 init: %c) across dimensions = [1] : (tensor<5x4xf32>, tensor<5x4xi32>, tensor<f32>, tensor<i32>) -> (tensor<5xf32>, tensor<5xi32>)\n"
      "     reducer(%arg1: tensor<f32> loc(\"r\"), %arg3: tensor<f32>) (%arg2: tensor<i32>, %arg4: tensor<i32>)  {\n"
      "      %3 = stablehlo.compare GT, %arg1, %arg3, FLOAT : (tensor<f32>, tensor<f32>) -> tensor<i1>\n"
      "      %4 = stablehlo.select %3, %arg1, %arg3 : tensor<i1>, tensor<f32>\n"
      "      %5 = stablehlo.select %3, %arg2, %arg4 : tensor<i1>, tensor<i32>\n"
      "      stablehlo.return %4, %5 : tensor<f32>, tensor<i32>\n"
      "    }\n"
      "    return %2#1 : tensor<5xi32>\n"
      "  }\n"
      "}\n";
  Parsed t;
  Func *f = main_func(parse_ok(&t, text));
  if (!f) {
    release(&t);
    return;
  }
  Op *r = op_at(f, 1);
  CHECK(r->kind == OP_REDUCE && r->n_operands == 2 && r->n_results == 1 && r->n_regions == 1);
  CHECK(r->operands[0] == f->body->args[0] && r->operands[1] == op_at(f, 0)->results[0]);
  CHECK(ints_are(&t.c, ir_op_attr(r, "dimensions"), 1, (int64_t[]){1}));
  Block *body = r->regions[0]->blocks[0]; /* synthesised from `applies` */
  CHECK(body->n_args == 2 && body->args[0]->type.rank == 0 && body->args[1]->type.et == ET_F32);
  CHECK(body->n_ops == 2 && body->ops[0]->kind == OP_MAXIMUM && body->ops[1]->kind == OP_RETURN);
  CHECK(body->ops[0]->operands[0] == body->args[0] && body->ops[0]->operands[1] == body->args[1]);
  CHECK(body->ops[1]->operands[0] == body->ops[0]->results[0]);
  CHECK(body->ops[0]->pos.line == 4 && body->ops[0]->pos.col == 53);
  CHECK(strcmp(r->scope, "jit(f)/reduce_max") == 0 && strcmp(body->ops[0]->scope, r->scope) == 0);
  Op *r2 = op_at(f, 4);
  CHECK(r2->kind == OP_REDUCE && r2->n_operands == 4 && r2->n_results == 2);
  /* operands: inputs, then inits */
  CHECK(r2->operands[1] == op_at(f, 2)->results[0] && r2->operands[2] == op_at(f, 0)->results[0]);
  CHECK(r2->operands[3] == op_at(f, 3)->results[0]);
  Block *rb = r2->regions[0]->blocks[0];
  /* block arguments in the spec's order: %arg1, %arg2 (accumulators), %arg3, %arg4 */
  CHECK(rb->n_args == 4);
  CHECK(strcmp(rb->args[0]->name, "%arg1") == 0 && strcmp(rb->args[1]->name, "%arg2") == 0);
  CHECK(strcmp(rb->args[2]->name, "%arg3") == 0 && strcmp(rb->args[3]->name, "%arg4") == 0);
  CHECK(rb->args[1]->type.et == ET_I32 && rb->args[2]->type.et == ET_F32);
  CHECK(rb->ops[0]->operands[0] == rb->args[0] && rb->ops[0]->operands[1] == rb->args[2]);
  CHECK(rb->ops[2]->operands[1] == rb->args[1] && rb->ops[2]->operands[2] == rb->args[3]);
  CHECK(r2->results[1]->type.et == ET_I32 && r2->results[1]->type.dims[0] == 5);
  CHECK(op_at(f, 5)->operands[0] == r2->results[1]);
  release(&t);
}

static void test_convolution(void) {
  current = "convolution";
  static const char text[] =
      "module {\n"
      "  func.func @main(%a: tensor<2x8x8x3xf32>, %k: tensor<3x3x3x4xf32>) -> tensor<2x8x8x4xf32> {\n"
      "    %0 = stablehlo.convolution(%a, %k) dim_numbers = [b, 0, 1, f]x[0, 1, i, o]->[b, 0, 1, f], window = {stride = [1, 2], pad = [[1, 1], [0, 2]], lhs_dilate = [1, 1], rhs_dilate = [2, 1], reverse = [false, true]} {batch_group_count = 1 : i64, feature_group_count = 1 : i64, precision_config = [#stablehlo<precision DEFAULT>, #stablehlo<precision DEFAULT>]} : (tensor<2x8x8x3xf32>, tensor<3x3x3x4xf32>) -> tensor<2x8x8x4xf32>\n"
      "    %1 = \"stablehlo.convolution\"(%a, %k) <{dimension_numbers = #stablehlo.conv<raw input_batch_dimension = 0, input_feature_dimension = 3, input_spatial_dimensions = [1, 2], kernel_input_feature_dimension = 2, kernel_output_feature_dimension = 3, kernel_spatial_dimensions = [0, 1], output_batch_dimension = 0, output_feature_dimension = 3, output_spatial_dimensions = [1, 2]>, feature_group_count = 1 : i64, batch_group_count = 1 : i64}> : (tensor<2x8x8x3xf32>, tensor<3x3x3x4xf32>) -> tensor<2x8x8x4xf32>\n"
      "    %2 = \"stablehlo.convolution\"(%a, %k) {dimension_numbers = #stablehlo.conv<[b, 0, 1, f]x[0, 1, i, o]->[b, 0, 1, f]>, feature_group_count = 1 : i64, batch_group_count = 1 : i64, padding = dense<[[1, 1], [0, 2]]> : tensor<2x2xi64>} : (tensor<2x8x8x3xf32>, tensor<3x3x3x4xf32>) -> tensor<2x8x8x4xf32>\n"
      "    return %0 : tensor<2x8x8x4xf32>\n"
      "  }\n"
      "}\n";
  Parsed t;
  Func *f = main_func(parse_ok(&t, text));
  if (!f) {
    release(&t);
    return;
  }
  Ctx *c = &t.c;
  for (int i = 0; i < 3; i++) {
    const Attr *d = ir_op_attr(op_at(f, i), "dimension_numbers");
    int64_t v;
    CHECK(d && d->kind == AK_DICT && strcmp(d->s, "stablehlo.conv") == 0);
    CHECK(ir_attr_int(ir_dict_field(d, "input_batch_dimension"), &v) && v == 0);
    CHECK(ir_attr_int(ir_dict_field(d, "input_feature_dimension"), &v) && v == 3);
    CHECK(ints_are(c, ir_dict_field(d, "input_spatial_dimensions"), 2, (int64_t[]){1, 2}));
    CHECK(ir_attr_int(ir_dict_field(d, "kernel_input_feature_dimension"), &v) && v == 2);
    CHECK(ir_attr_int(ir_dict_field(d, "kernel_output_feature_dimension"), &v) && v == 3);
    CHECK(ints_are(c, ir_dict_field(d, "kernel_spatial_dimensions"), 2, (int64_t[]){0, 1}));
    CHECK(ir_attr_int(ir_dict_field(d, "output_batch_dimension"), &v) && v == 0);
    CHECK(ir_attr_int(ir_dict_field(d, "output_feature_dimension"), &v) && v == 3);
    CHECK(ints_are(c, ir_dict_field(d, "output_spatial_dimensions"), 2, (int64_t[]){1, 2}));
  }
  Op *cv = op_at(f, 0);
  CHECK(cv->kind == OP_CONVOLUTION && cv->n_operands == 2);
  CHECK(ints_are(c, ir_op_attr(cv, "window_strides"), 2, (int64_t[]){1, 2}));
  CHECK(ints_are(c, ir_op_attr(cv, "lhs_dilation"), 2, (int64_t[]){1, 1}));
  CHECK(ints_are(c, ir_op_attr(cv, "rhs_dilation"), 2, (int64_t[]){2, 1}));
  CHECK(ints_are(c, ir_op_attr(cv, "window_reversal"), 2, (int64_t[]){0, 1}));
  const Attr *pad = ir_op_attr(cv, "padding"); /* the generic form's dense<..> : tensor<Nx2xi64> */
  CHECK(pad && pad->kind == AK_DENSE && pad->type.rank == 2 && pad->type.dims[0] == 2 &&
        pad->type.et == ET_I64);
  CHECK(ints_are(c, pad, 4, (int64_t[]){1, 1, 0, 2}));
  CHECK(ints_are(c, ir_op_attr(op_at(f, 2), "padding"), 4, (int64_t[]){1, 1, 0, 2}));
  CHECK(!ir_op_attr(cv, "window"));
  int64_t v;
  CHECK(ir_attr_int(ir_op_attr(cv, "feature_group_count"), &v) && v == 1);
  release(&t);
}

static void test_while(void) {
  current = "while";
  static const char text[] =
      "module {\n"
      "  func.func @main(%arg0: tensor<5x4xf32>) -> tensor<5x4xf32> {\n"
      "    %c = stablehlo.constant dense<0> : tensor<i32>\n"
      "    %0:2 = stablehlo.while(%iterArg = %c, %iterArg_0 = %arg0) : tensor<i32>, tensor<5x4xf32>\n"
      "    cond {\n"
      "      %c_1 = stablehlo.constant dense<3> : tensor<i32>\n"
      "      %1 = stablehlo.compare LT, %iterArg, %c_1, SIGNED : (tensor<i32>, tensor<i32>) -> tensor<i1>\n"
      "      stablehlo.return %1 : tensor<i1>\n"
      "    } do {\n"
      "      %1 = func.call @twice(%iterArg_0) : (tensor<5x4xf32>) -> tensor<5x4xf32>\n"
      "      %c_1 = stablehlo.constant dense<1> : tensor<i32>\n"
      "      %2 = stablehlo.add %iterArg, %c_1 : tensor<i32>\n"
      "      stablehlo.return %2, %1 : tensor<i32>, tensor<5x4xf32>\n"
      "    }\n"
      "    return %0#1 : tensor<5x4xf32>\n"
      "  }\n"
      "  func.func private @twice(%arg0: tensor<5x4xf32>) -> tensor<5x4xf32> {\n"
      "    %0 = stablehlo.add %arg0, %arg0 : tensor<5x4xf32>\n"
      "    return %0 : tensor<5x4xf32>\n"
      "  }\n"
      "}\n";
  Parsed t;
  Func *f = main_func(parse_ok(&t, text));
  if (!f) {
    release(&t);
    return;
  }
  Op *w = op_at(f, 1);
  CHECK(w->kind == OP_WHILE && w->n_operands == 2 && w->n_results == 2 && w->n_regions == 2);
  CHECK(w->operands[0] == op_at(f, 0)->results[0] && w->operands[1] == f->body->args[0]);
  CHECK(w->results[0]->type.et == ET_I32 && w->results[1]->type.rank == 2);
  Block *cond = w->regions[0]->blocks[0], *body = w->regions[1]->blocks[0];
  CHECK(cond->n_args == 2 && body->n_args == 2 && cond->args[0] != body->args[0]);
  CHECK(strcmp(cond->args[1]->name, "%iterArg_0") == 0 && cond->args[1]->type.rank == 2);
  CHECK(cond->ops[1]->operands[0] == cond->args[0]);
  Op *call = body->ops[0];
  CHECK(call->kind == OP_CALL && call->operands[0] == body->args[1]);
  const Attr *callee = ir_op_attr(call, "callee");
  CHECK(callee && callee->kind == AK_SYMBOL && strcmp(callee->s, "twice") == 0);
  CHECK(body->ops[3]->kind == OP_RETURN && body->ops[3]->operands[1] == call->results[0]);
  release(&t);
}

static void test_calls_and_specials(void) {
  current = "custom_call, composite, sdy, unknown ops";
  static const char text[] =
      "module {\n"
      "  func.func @main(%arg0: tensor<4xf32>, %arg10: tensor<2xui32>) -> (tensor<4xf32>, tensor<2xi32>) {\n"
      "    %c = stablehlo.constant dense<1> : tensor<i32>\n"
      "    %p = stablehlo.compare GE, %c, %c, SIGNED : (tensor<i32>, tensor<i32>) -> tensor<i1>\n"
      "    stablehlo.custom_call @shape_assertion(%p, %c) {api_version = 2 : i32, error_message = \"Expected \\\"B\\\" >= 1\\0A\", has_side_effect = true} : (tensor<i1>, tensor<i32>) -> ()\n"
      "    %0 = stablehlo.composite \"chlo.erf\" %arg0 {decomposition = @chlo.erf.impl, version = 1 : i32} : (tensor<4xf32>) -> tensor<4xf32>\n"
      "    %1 = sdy.sharding_constraint %arg10 <@empty_mesh, [{}]> : tensor<2xui32>\n"
      "    %values, %indices = chlo.top_k(%0, k = 2) : tensor<4xf32> -> (tensor<2xf32>, tensor<2xi32>)\n"
      "    %2 = \"mydialect.frob\"(%0, %values) {level = 3 : i64} : (tensor<4xf32>, tensor<2xf32>) -> tensor<4xf32>\n"
      "    %3 = other.pretty %2, %2, mode = fast : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>\n"
      "    %4 = stablehlo.custom_call @\"foo-not-id\"(%3) {backend_config = \"\"} : (tensor<4xf32>) -> tensor<4xf32>\n"
      "    return %4, %indices : tensor<4xf32>, tensor<2xi32>\n"
      "  }\n"
      "  func.func private @chlo.erf.impl(%arg0: tensor<4xf32>) -> tensor<4xf32> {\n"
      "    return %arg0 : tensor<4xf32>\n"
      "  }\n"
      "}\n";
  Parsed t;
  Func *f = main_func(parse_ok(&t, text));
  if (!f) {
    release(&t);
    return;
  }
  Op *cc = op_at(f, 2);
  CHECK(cc->kind == OP_CUSTOM_CALL && cc->n_results == 0 && cc->n_operands == 2);
  const Attr *target = ir_op_attr(cc, "call_target_name");
  CHECK(target && target->kind == AK_STRING && strcmp(target->s, "shape_assertion") == 0);
  const Attr *msg = ir_op_attr(cc, "error_message");
  CHECK(msg && msg->kind == AK_STRING && strcmp(msg->s, "Expected \"B\" >= 1\n") == 0);
  const Attr *hse = ir_op_attr(cc, "has_side_effect");
  CHECK(hse && hse->kind == AK_BOOL && hse->b);
  Op *comp = op_at(f, 3);
  const Attr *name = ir_op_attr(comp, "name");
  CHECK(comp->kind == OP_COMPOSITE && name && name->kind == AK_STRING && strcmp(name->s, "chlo.erf") == 0);
  const Attr *dec = ir_op_attr(comp, "decomposition");
  CHECK(dec && dec->kind == AK_SYMBOL && strcmp(dec->s, "chlo.erf.impl") == 0);
  Op *sh = op_at(f, 4);
  const Attr *sharding = ir_op_attr(sh, "sharding");
  CHECK(sh->kind == OP_SDY_SHARDING_CONSTRAINT && sharding && sharding->kind == AK_OPAQUE);
  CHECK(sharding && strcmp(sharding->s, "<@empty_mesh, [{}]>") == 0);
  CHECK(sh->results[0]->type.et == ET_U32);
  Op *topk = op_at(f, 5);
  CHECK(topk->kind == OP_CHLO_TOP_K && topk->n_results == 2 && topk->n_operands == 1);
  CHECK(strcmp(topk->results[1]->name, "%indices") == 0 && topk->results[1]->type.et == ET_I32);
  int64_t k;
  CHECK(ir_attr_int(ir_op_attr(topk, "k"), &k) && k == 2);
  Op *frob = op_at(f, 6);
  CHECK(frob->kind == OP_UNKNOWN && strcmp(frob->opname, "mydialect.frob") == 0);
  CHECK(frob->operands[1] == topk->results[0]);
  Op *pretty = op_at(f, 7);
  CHECK(pretty->kind == OP_UNKNOWN && strcmp(pretty->opname, "other.pretty") == 0);
  CHECK(pretty->n_operands == 2 && enum_is(ir_op_attr(pretty, "mode"), "fast"));
  const Attr *t2 = ir_op_attr(op_at(f, 8), "call_target_name");
  CHECK(t2 && strcmp(t2->s, "foo-not-id") == 0);
  release(&t);
}

/* An unknown op in pretty form with a region and block arguments (shardy's
 * manual_computation): parsed by the generic item loop. */
static void test_unknown_pretty_region(void) {
  current = "unknown pretty op with a region";
  static const char text[] =
      "module @m {\n"
      "  sdy.mesh @mesh = <[\"x\"=2]>\n"
      "  func.func public @main(%arg0: tensor<8xf32>) -> tensor<8xf32> {\n"
      "    %0 = sdy.manual_computation(%arg0) in_shardings=[<@mesh, [{\"x\"}]>] out_shardings=[<@mesh, [{\"x\"}]>] manual_axes={\"x\"} (%arg1: tensor<4xf32>) {\n"
      "      %1 = stablehlo.sine %arg1 : tensor<4xf32>\n"
      "      sdy.return %1 : tensor<4xf32>\n"
      "    } : (tensor<8xf32>) -> tensor<8xf32>\n"
      "    return %0 : tensor<8xf32>\n"
      "  }\n"
      "}\n";
  Parsed t;
  Func *f = main_func(parse_ok(&t, text));
  if (!f) {
    release(&t);
    return;
  }
  Op *mc = op_at(f, 0);
  CHECK(mc->kind == OP_UNKNOWN && strcmp(mc->opname, "sdy.manual_computation") == 0);
  CHECK(mc->n_operands == 1 && mc->n_regions == 1 && mc->results[0]->type.dims[0] == 8);
  const Attr *ins = ir_op_attr(mc, "in_shardings");
  CHECK(ins && ins->kind == AK_ARRAY && ins->elems[0]->kind == AK_OPAQUE);
  Block *b = mc->regions[0]->blocks[0];
  CHECK(b->n_args == 1 && b->args[0]->type.dims[0] == 4 && b->ops[0]->operands[0] == b->args[0]);
  CHECK(b->ops[1]->kind == OP_UNKNOWN && b->ops[1]->operands[0] == b->ops[0]->results[0]);
  release(&t);
}

/* ---- generic forms -------------------------------------------------------------------------- */

static void test_generic_forms(void) {
  current = "generic forms";
  static const char text[] =
      "module {\n"
      "  func.func @main(%arg0: tensor<5x4xf32>, %arg1: tensor<2x1xi32>) -> tensor<2x4xf32> {\n"
      "    %6 = \"stablehlo.gather\"(%arg0, %arg1) <{dimension_numbers = #stablehlo.gather<offset_dims = [1], collapsed_slice_dims = [0], start_index_map = [0], index_vector_dim = 1>, indices_are_sorted = false, slice_sizes = array<i64: 1, 4>}> : (tensor<5x4xf32>, tensor<2x1xi32>) -> tensor<2x4xf32>\n"
      "    %cst = \"stablehlo.constant\"() <{value = dense<0.000000e+00> : tensor<f32>}> : () -> tensor<f32>\n"
      "    %1 = \"stablehlo.reduce_window\"(%arg0, %cst) <{padding = dense<0> : tensor<2x2xi64>, window_dimensions = array<i64: 2, 2>}> ({\n"
      "    ^bb0(%arg2: tensor<f32> loc(\"x\"), %arg3: tensor<f32>):\n"
      "      %4 = stablehlo.add %arg2, %arg3 : tensor<f32>\n"
      "      stablehlo.return %4 : tensor<f32>\n"
      "    }) {extra = unit} : (tensor<5x4xf32>, tensor<f32>) -> tensor<4x3xf32>\n"
      "    %2 = \"stablehlo.compare\"(%cst, %cst) {comparison_direction = #stablehlo<comparison_direction GT>} : (tensor<f32>, tensor<f32>) -> tensor<i1>\n"
      "    \"func.return\"(%6) : (tensor<2x4xf32>) -> ()\n"
      "  }\n"
      "}\n";
  Parsed t;
  Func *f = main_func(parse_ok(&t, text));
  if (!f) {
    release(&t);
    return;
  }
  Ctx *c = &t.c;
  Op *g = op_at(f, 0);
  CHECK(g->kind == OP_GATHER && g->n_operands == 2 && g->pos.line == 3 && g->pos.col == 10);
  const Attr *dn = ir_op_attr(g, "dimension_numbers");
  CHECK(dn && dn->kind == AK_DICT && strcmp(dn->s, "stablehlo.gather") == 0);
  CHECK(ints_are(c, ir_dict_field(dn, "offset_dims"), 1, (int64_t[]){1}));
  CHECK(ints_are(c, ir_dict_field(dn, "operand_batching_dims"), 0, NULL)); /* filled in */
  int64_t v;
  CHECK(ir_attr_int(ir_dict_field(dn, "index_vector_dim"), &v) && v == 1);
  CHECK(ints_are(c, ir_op_attr(g, "slice_sizes"), 2, (int64_t[]){1, 4}));
  const Attr *sorted = ir_op_attr(g, "indices_are_sorted");
  CHECK(sorted && sorted->kind == AK_BOOL && !sorted->b);
  Op *rw = op_at(f, 2);
  CHECK(rw->kind == OP_REDUCE_WINDOW && rw->n_regions == 1);
  Block *b = rw->regions[0]->blocks[0];
  CHECK(b->n_args == 2 && strcmp(b->args[1]->name, "%arg3") == 0);
  CHECK(b->ops[0]->operands[0] == b->args[0]);
  const Attr *pad = ir_op_attr(rw, "padding");
  CHECK(pad && pad->kind == AK_DENSE && pad->dense->splat && pad->dense->numel == 4);
  CHECK(ints_are(c, pad, 4, (int64_t[]){0, 0, 0, 0}));
  const Attr *extra = ir_op_attr(rw, "extra");
  CHECK(extra && extra->kind == AK_UNIT);
  CHECK(enum_is(ir_op_attr(op_at(f, 3), "comparison_direction"), "GT"));
  CHECK(op_at(f, 4)->kind == OP_FUNC_RETURN);
  release(&t);
}

/* ---- types --------------------------------------------------------------------------------- */

static void test_types(void) {
  current = "types";
  static const struct { const char *text; ElemType et; } elems[] = {
      {"i1", ET_BOOL}, {"i8", ET_I8}, {"i16", ET_I16}, {"i32", ET_I32}, {"i64", ET_I64},
      {"ui8", ET_U8}, {"ui16", ET_U16}, {"ui32", ET_U32}, {"ui64", ET_U64}, {"f16", ET_F16},
      {"bf16", ET_BF16}, {"f32", ET_F32}, {"f64", ET_F64}, {"f8E4M3FN", ET_F8E4M3FN},
      {"f8E5M2", ET_F8E5M2}, {"f8E4M3FNUZ", ET_F8E4M3FNUZ}, {"f8E5M2FNUZ", ET_F8E5M2FNUZ},
      {"i4", ET_I4}, {"ui4", ET_U4}, {"complex<f32>", ET_C64}, {"complex<f64>", ET_C128},
  };
  for (size_t i = 0; i < sizeof elems / sizeof elems[0]; i++) {
    char text[512];
    snprintf(text, sizeof text,
             "module {\n  func.func @main(%%a: tensor<2x?x3x%s>) -> tensor<2x?x3x%s> {\n"
             "    return %%a : tensor<2x?x3x%s>\n  }\n}\n",
             elems[i].text, elems[i].text, elems[i].text);
    Parsed t;
    Func *f = main_func(parse_ok(&t, text));
    int64_t dims[] = {2, DIM_DYN, 3};
    CHECK(f && f->body->args[0]->type.et == elems[i].et && dims_are(&f->body->args[0]->type, 3, dims));
    release(&t);
  }
  static const char text[] =
      "module {\n"
      "  func.func @main(%t: !stablehlo.token, %u: tuple<tensor<f32>, tuple<>>, %s: tensor<f32>, "
      "%b: tensor<?x3xf32, #stablehlo.bounds<8, ?>>, %z: tensor<0x4xi32>) -> !stablehlo.token {\n"
      "    return %t : !stablehlo.token\n"
      "  }\n"
      "}\n";
  Parsed t;
  Func *f = main_func(parse_ok(&t, text));
  if (f) {
    CHECK(f->body->args[0]->type.kind == TK_TOKEN && f->result_types[0].kind == TK_TOKEN);
    CHECK(f->body->args[1]->type.kind == TK_TUPLE);
    CHECK(f->body->args[2]->type.kind == TK_TENSOR && f->body->args[2]->type.rank == 0);
    int64_t bdims[] = {DIM_DYN, 3}, zdims[] = {0, 4};
    CHECK(dims_are(&f->body->args[3]->type, 2, bdims)); /* the encoding is ignored */
    CHECK(dims_are(&f->body->args[4]->type, 2, zdims) && type_numel(&f->body->args[4]->type) == 0);
  }
  release(&t);
}

/* ---- attribute values ------------------------------------------------------------------------- */

static void test_attribute_values(void) {
  current = "attribute values";
  static const char text[] =
      "module attributes {a.int = -42 : i64, a.hex = 0x10 : i32, a.big = 18446744073709551615 : ui64,"
      " a.f1 = 1.000000e+00 : f32, a.f2 = -0.37612626 : f32, a.f3 = 9.99999974E-6 : f64,"
      " a.nan = 0x7FC00000 : f32, a.inf = 0xFF800000 : f32, a.f16 = 0x3C00 : f16, a.t = true, a.fl = false,"
      " a.s = \"q\\\"b\\\\s\\n\\0A\\00z\", a.utf8 = \"caf\xc3\xa9\", a.sym = @foo, a.nested = @outer::@inner,"
      " a.arr = [1, [2, 3], \"x\"], a.i64 = array<i64: 1, -2>, a.empty = array<i64>, a.bools = array<i1: true, false>,"
      " a.dict = {x = 1, flag}, a.enum = #stablehlo<comparison_direction GT>,"
      " a.type = tensor<2xf32>, a.scalar_type = i64, a.unit = unit, a.word = DEFAULT,"
      " a.opaque = #foo.bar<weird [stuff] (here) -> x>, a.generic = affine_map<(d0) -> (d0)>,"
      " a.scatter = #stablehlo.scatter<update_window_dims = [0], inserted_window_dims = [0], scatter_dims_to_operand_dims = [0]>,"
      " a.acc = #stablehlo.result_accuracy<atol = 0.0, ulps = 1, mode = #stablehlo.result_accuracy_mode<DEFAULT>>,"
      " a.odd = #foo.bar<a & b ; `c`>, a.alg = <lhs_precision_type = tf32>,"
      " \"quoted.key\" = 1} {\n"
      "}\n";
  Parsed t;
  Module *m = parse_ok(&t, text);
  if (!m) {
    release(&t);
    return;
  }
#define A(name) ir_attr(m->attrs, m->n_attrs, name)
  CHECK(A("a.int")->kind == AK_INT && A("a.int")->i == -42 && A("a.int")->type.et == ET_I64);
  CHECK(A("a.hex")->i == 16 && A("a.hex")->type.et == ET_I32);
  CHECK(A("a.big")->kind == AK_INT && (uint64_t)A("a.big")->i == UINT64_MAX);
  CHECK(A("a.f1")->kind == AK_FLOAT && A("a.f1")->f == 1.0);
  CHECK(A("a.f2")->kind == AK_FLOAT && fabs(A("a.f2")->f + 0.37612626) < 1e-12);
  CHECK(fabs(A("a.f3")->f - 9.99999974e-6) < 1e-18);
  CHECK(A("a.nan")->kind == AK_FLOAT && isnan(A("a.nan")->f));
  CHECK(A("a.inf")->kind == AK_FLOAT && isinf(A("a.inf")->f) && A("a.inf")->f < 0);
  CHECK(A("a.f16")->kind == AK_FLOAT && A("a.f16")->f == 1.0);
  CHECK(A("a.t")->kind == AK_BOOL && A("a.t")->b && !A("a.fl")->b);
  const Attr *s = A("a.s");
  CHECK(s->kind == AK_STRING && s->len == 9 && memcmp(s->s, "q\"b\\s\n\n\0z", 9) == 0);
  CHECK(strcmp(A("a.utf8")->s, "caf\xc3\xa9") == 0);
  CHECK(A("a.sym")->kind == AK_SYMBOL && strcmp(A("a.sym")->s, "foo") == 0);
  CHECK(strcmp(A("a.nested")->s, "outer::inner") == 0);
  const Attr *arr = A("a.arr");
  CHECK(arr->kind == AK_ARRAY && arr->n_elems == 3 && arr->elems[1]->kind == AK_ARRAY);
  CHECK(arr->elems[2]->kind == AK_STRING && ir_attr_i64s(&t.c, arr, &(int64_t *){0}) == -1);
  CHECK(ints_are(&t.c, A("a.i64"), 2, (int64_t[]){1, -2}));
  CHECK(ints_are(&t.c, A("a.empty"), 0, NULL));
  CHECK(A("a.bools")->n_elems == 2 && A("a.bools")->elems[0]->kind == AK_BOOL);
  const Attr *d = A("a.dict");
  CHECK(d->kind == AK_DICT && d->n_fields == 2 && ir_dict_field(d, "flag")->kind == AK_UNIT);
  CHECK(enum_is(A("a.enum"), "GT") && enum_is(A("a.word"), "DEFAULT"));
  CHECK(A("a.type")->kind == AK_TYPE && A("a.type")->type.kind == TK_TENSOR);
  CHECK(A("a.scalar_type")->kind == AK_TYPE && A("a.scalar_type")->type.et == ET_I64);
  CHECK(A("a.unit")->kind == AK_UNIT);
  CHECK(A("a.opaque")->kind == AK_OPAQUE && strcmp(A("a.opaque")->s, "#foo.bar<weird [stuff] (here) -> x>") == 0);
  CHECK(A("a.generic")->kind == AK_OPAQUE);
  const Attr *sc = A("a.scatter");
  CHECK(sc->kind == AK_DICT && strcmp(sc->s, "stablehlo.scatter") == 0 &&
        ir_dict_field(sc, "input_batching_dims") != NULL);
  CHECK(A("quoted.key") && A("quoted.key")->i == 1);
  const Attr *acc = A("a.acc");
  CHECK(acc->kind == AK_DICT && enum_is(ir_dict_field(acc, "mode"), "DEFAULT"));
  CHECK(ir_dict_field(acc, "atol")->kind == AK_FLOAT);
  CHECK(A("a.odd")->kind == AK_OPAQUE && strcmp(A("a.odd")->s, "#foo.bar<a & b ; `c`>") == 0);
  CHECK(A("a.alg")->kind == AK_OPAQUE);
  CHECK(A("a.int")->pos.line == 1 && A("a.int")->pos.col == 28);
#undef A
  release(&t);
}

/* ---- dense literals ----------------------------------------------------------------------------- */

static const Attr *const_value(Func *f, int i) {
  Op *op = op_at(f, i);
  return op ? ir_op_attr(op, "value") : NULL;
}

static void test_dense(void) {
  current = "dense literals";
  static const char text[] =
      "module {\n"
      "  func.func @main() -> tensor<i1> {\n"
      "    %0 = stablehlo.constant dense<1.0> : tensor<2x3xf32>\n"
      "    %1 = stablehlo.constant dense<0xFF800000> : tensor<f32>\n"
      "    %2 = stablehlo.constant dense<[[1, 2], [3, -4]]> : tensor<2x2xi32>\n"
      "    %3 = stablehlo.constant dense<[0x7FC00000, 0x7F800000, 1.0, -2.5E-1]> : tensor<4xf32>\n"
      "    %4 = stablehlo.constant dense<[true, false, true]> : tensor<3xi1>\n"
      "    %5 = stablehlo.constant dense<true> : tensor<i1>\n"
      "    %6 = stablehlo.constant dense<\"0x0000803F00000040\"> : tensor<2xf32>\n"
      "    %7 = stablehlo.constant dense<\"0x0000803F\"> : tensor<3xf32>\n"
      "    %8 = stablehlo.constant dense<[1.5, -2.5, 65504.0, 1.0e-7, 70000.0]> : tensor<5xf16>\n"
      "    %9 = stablehlo.constant dense<[1.0, 3.14159274, -0.0, 1.00390625]> : tensor<4xbf16>\n"
      "    %10 = stablehlo.constant dense<[-128, 127, 255]> : tensor<3xi8>\n"
      "    %11 = stablehlo.constant dense<[4294967295, 0]> : tensor<2xui32>\n"
      "    %12 = stablehlo.constant dense<[0.1, -1]> : tensor<2xf64>\n"
      "    %13 = stablehlo.constant dense<[-9223372036854775808, 18446744073709551615]> : tensor<2xi64>\n"
      "    %14 = stablehlo.constant dense<> : tensor<0xf32>\n"
      "    %15 = stablehlo.constant dense<[[]]> : tensor<1x0xi32>\n"
      "    %16 = stablehlo.constant dense<[448.0, 500.0, 0.0078125]> : tensor<3xf8E4M3FN>\n"
      "    %17 = stablehlo.constant dense<7> : tensor<ui16>\n"
      "    return %5 : tensor<i1>\n"
      "  }\n"
      "}\n";
  Parsed t;
  Func *f = main_func(parse_ok(&t, text));
  if (!f) {
    release(&t);
    return;
  }
  const Attr *a = const_value(f, 0);
  CHECK(a->kind == AK_DENSE && a->dense->splat && a->dense->numel == 6 && a->dense->et == ET_F32);
  CHECK(a->dense->data.kind == DATA_RAW && a->dense->data.nbytes == 4 && f32_at(dense_bytes(&t, a), 0) == 1.0f);
  int64_t d23[] = {2, 3};
  CHECK(dims_are(&op_at(f, 0)->results[0]->type, 2, d23));
  a = const_value(f, 1);
  CHECK(a->dense->numel == 1 && !a->dense->splat && isinf(f32_at(dense_bytes(&t, a), 0)));
  a = const_value(f, 2);
  CHECK(!a->dense->splat && a->dense->data.nbytes == 16 && ints_are(&t.c, a, 4, (int64_t[]){1, 2, 3, -4}));
  a = const_value(f, 3);
  const uint8_t *b = dense_bytes(&t, a);
  CHECK(b && isnan(f32_at(b, 0)) && isinf(f32_at(b, 1)) && f32_at(b, 2) == 1.0f && f32_at(b, 3) == -0.25f);
  a = const_value(f, 4);
  b = dense_bytes(&t, a);
  CHECK(a->dense->data.nbytes == 3 && b[0] == 1 && b[1] == 0 && b[2] == 1);
  a = const_value(f, 5);
  CHECK(a->dense->data.nbytes == 1 && dense_bytes(&t, a)[0] == 1 && a->dense->et == ET_BOOL);
  a = const_value(f, 6); /* hex blob: points into the input, decoded on demand */
  CHECK(a->dense->data.kind == DATA_HEX && a->dense->data.nbytes == 8 && !a->dense->splat);
  CHECK((const char *)a->dense->data.ptr > t.buf && (const char *)a->dense->data.ptr < t.buf + strlen(text));
  CHECK(memcmp(a->dense->data.ptr, "0000803F", 8) == 0);
  b = dense_bytes(&t, a);
  CHECK(f32_at(b, 0) == 1.0f && f32_at(b, 1) == 2.0f);
  a = const_value(f, 7); /* a one-element blob is a splat */
  CHECK(a->dense->data.kind == DATA_HEX && a->dense->splat && a->dense->numel == 3 && a->dense->data.nbytes == 4);
  b = dense_bytes(&t, const_value(f, 8)); /* f16, round to nearest even */
  CHECK(u16_at(b, 0) == 0x3E00 && u16_at(b, 1) == 0xC100 && u16_at(b, 2) == 0x7BFF);
  CHECK(u16_at(b, 3) == 0x0002 && u16_at(b, 4) == 0x7C00); /* subnormal; overflow to inf */
  b = dense_bytes(&t, const_value(f, 9)); /* bf16 */
  CHECK(u16_at(b, 0) == 0x3F80 && u16_at(b, 1) == 0x4049 && u16_at(b, 2) == 0x8000);
  CHECK(u16_at(b, 3) == 0x3F80); /* 1.00390625 is a tie: rounds to even */
  b = dense_bytes(&t, const_value(f, 10));
  CHECK(b[0] == 0x80 && b[1] == 0x7F && b[2] == 0xFF);
  CHECK(ints_are(&t.c, const_value(f, 11), 2, (int64_t[]){4294967295LL, 0}));
  b = dense_bytes(&t, const_value(f, 12));
  double d0, d1;
  memcpy(&d0, b, 8);
  memcpy(&d1, b + 8, 8);
  CHECK(d0 == 0.1 && d1 == -1.0);
  CHECK(ints_are(&t.c, const_value(f, 13), 2, (int64_t[]){INT64_MIN, -1}));
  a = const_value(f, 14);
  CHECK(a->dense->numel == 0 && a->dense->data.nbytes == 0);
  CHECK(const_value(f, 15)->dense->numel == 0);
  b = dense_bytes(&t, const_value(f, 16)); /* f8E4M3FN: no inf, 500 is NaN */
  CHECK(b[0] == 0x7E && b[1] == 0x7F && b[2] == 0x04);
  int64_t v;
  CHECK(ir_attr_int(const_value(f, 17), &v) && v == 7);
  release(&t);
}

/* ---- the ir helpers and the dump ------------------------------------------------------------------ */

static void test_ir_helpers(void) {
  current = "ir helpers and dump";
  static const char text[] =
      "module @d attributes {x = dense<\"0x0100000002000000\"> : tensor<2xi32>} {\n"
      "  func.func private @helper() -> () {\n    return\n  }\n"
      "  func.func public @entry(%a: tensor<2xf32>) -> tensor<2xf32> {\n"
      "    %0 = stablehlo.sine %a : tensor<2xf32> loc(\"jit(g)/sin\")\n"
      "    return %0 : tensor<2xf32>\n"
      "  }\n"
      "}\n";
  Parsed t;
  Module *m = parse_ok(&t, text);
  if (!m) {
    release(&t);
    return;
  }
  CHECK(ir_entry_func(m) == ir_find_func(m, "entry")); /* the only public one */
  CHECK(ir_find_func(m, "nope") == NULL);
  CHECK(ints_are(&t.c, ir_attr(m->attrs, m->n_attrs, "x"), 2, (int64_t[]){1, 2}));
  int64_t v;
  CHECK(!ir_attr_int(ir_attr(m->attrs, m->n_attrs, "x"), &v));
  CHECK(ir_attr(m->attrs, m->n_attrs, "missing") == NULL && ir_dict_field(NULL, "x") == NULL);
  FILE *f = tmpfile();
  if (f) {
    ir_dump_module(f, m);
    long n = ftell(f);
    rewind(f);
    char buf[2048] = {0};
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    CHECK(n > 0 && got > 0);
    CHECK(strstr(buf, "stablehlo.sine(%a)") && strstr(buf, "jit(g)/sin") && strstr(buf, "@entry"));
    fclose(f);
  }
  release(&t);
}

/* Real JAX output, abridged: jax.export of a small MLP with a symbolic batch. */
static void test_jax_export_sample(void) {
  current = "jax.export sample";
  static const char text[] =
      "#loc = loc(unknown)\n"
      "#loc4 = loc(\"leaves[0]\")\n"
      "module @jit_f attributes {jax.uses_shape_polymorphism = true, mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32} {\n"
      "  func.func public @main(%arg0: tensor<10xf32> loc(unknown), %arg1: tensor<?x30xf32> loc(unknown)) -> (tensor<?x10xf32> {jax.result_info = \"result\"}) {\n"
      "    %c = stablehlo.constant dense<1> : tensor<i32> loc(#loc)\n"
      "    %0 = stablehlo.get_dimension_size %arg1, dim = 0 : (tensor<?x30xf32>) -> tensor<i32> loc(#loc1)\n"
      "    %1 = stablehlo.compare  GE, %0, %c,  SIGNED : (tensor<i32>, tensor<i32>) -> tensor<i1> loc(#loc2)\n"
      "    stablehlo.custom_call @shape_assertion(%1, %0) {api_version = 2 : i32, error_message = \"Input shapes do not match\", has_side_effect = true} : (tensor<i1>, tensor<i32>) -> () loc(#loc3)\n"
      "    %2 = call @_wrapped_jax_export_main(%0, %arg0, %arg1) : (tensor<i32>, tensor<10xf32>, tensor<?x30xf32>) -> tensor<?x10xf32> loc(#loc)\n"
      "    return %2 : tensor<?x10xf32> loc(#loc)\n"
      "  } loc(#loc)\n"
      "  sdy.mesh @empty_mesh = <[]> {stablehlo.mesh = {axes = []}} loc(#loc)\n"
      "  func.func private @_wrapped_jax_export_main(%arg0: tensor<i32> {jax.global_constant = \"B\"} loc(unknown), %arg1: tensor<10xf32> loc(\"leaves[0]\"), %arg2: tensor<?x30xf32> loc(\"x\")) -> (tensor<?x10xf32> {jax.result_info = \"result\"}) {\n"
      "    %cst = stablehlo.constant dense<-0.37612626> : tensor<f32> loc(#loc30)\n"
      "    %0 = stablehlo.slice %arg2 [0:1, 0:10] : (tensor<?x30xf32>) -> tensor<?x10xf32> loc(#loc32)\n"
      "    %1 = stablehlo.dynamic_broadcast_in_dim %cst, %arg0, dims = [] : (tensor<f32>, tensor<i32>) -> tensor<?x10xf32> loc(#loc30)\n"
      "    %2 = chlo.erfc %1 : tensor<?x10xf32> -> tensor<?x10xf32> loc(#loc30)\n"
      "    %3 = stablehlo.add %0, %2 : tensor<?x10xf32> loc(#loc32)\n"
      "    return %3 : tensor<?x10xf32> loc(#loc26)\n"
      "  } loc(#loc)\n"
      "} loc(#loc)\n"
      "#loc1 = loc(\"dimension_size\")\n"
      "#loc2 = loc(\"ge\")\n"
      "#loc3 = loc(\"shape_assertion\")\n"
      "#loc17 = loc(\"/tmp/x/mlp.py\":24:4 to :81)\n"
      "#loc22 = loc(\"<module>\"(#loc17))\n"
      "#loc26 = loc(\"jit(f)\"(#loc22))\n"
      "#loc27 = loc(callsite(#loc26 at #loc22))\n"
      "#loc30 = loc(\"jit(f)/erfc\"(#loc27))\n"
      "#loc32 = loc(\"jit(f)/dot_general\"(#loc29))\n"
      "#loc29 = loc(callsite(#loc27 at #loc22))\n";
  Parsed t;
  Module *m = parse_ok(&t, text);
  if (!m) {
    release(&t);
    return;
  }
  Func *main = main_func(m), *w = ir_find_func(m, "_wrapped_jax_export_main");
  CHECK(m->n_funcs == 2 && main && w && ir_entry_func(m) == main);
  CHECK(strcmp(op_at(main, 1)->scope, "dimension_size") == 0);
  CHECK(strcmp(op_at(main, 3)->scope, "shape_assertion") == 0 && op_at(main, 3)->n_results == 0);
  CHECK(strcmp(op_at(w, 0)->scope, "jit(f)/erfc") == 0);
  CHECK(strcmp(op_at(w, 1)->scope, "jit(f)/dot_general") == 0);
  CHECK(strcmp(op_at(w, -1)->scope, "jit(f)") == 0);
  CHECK(w->arg_loc_names[0] == NULL && strcmp(w->arg_loc_names[2], "x") == 0);
  CHECK(op_at(w, 3)->kind == OP_CHLO_ERFC && op_at(w, 3)->results[0]->type.dims[0] == DIM_DYN);
  release(&t);
}

/* Valid StableHLO that ONNX Runtime cannot compute with: complex literals
 * are kept as (re, im) pairs; sub-byte and unencoded float8 literals are
 * checked and parsed without their values (DATA_NONE).  The lowering
 * rejects the ops making them as unsupported (status 3, not a parse error):
 * tests/python/test_errors.py checks that through the CLI. */
static void test_dense_unusable_types(void) {
  current = "complex and sub-byte dense literals";
  static const char text[] =
      "module {\n"
      "  func.func @main() -> tensor<i1> {\n"
      "    %0 = stablehlo.constant dense<(1.0,-2.5)> : tensor<2xcomplex<f32>>\n"
      "    %1 = stablehlo.constant dense<[(0.5, 0x7FC00000), (3, 4.0)]> : tensor<2xcomplex<f64>>\n"
      "    %2 = stablehlo.constant dense<\"0x0000803F00000040\"> : tensor<complex<f32>>\n"
      "    %3 = stablehlo.constant dense<[1, -8, 7, 15]> : tensor<4xi4>\n"
      "    %4 = stablehlo.constant dense<\"0x000102030405060708090A0B0C0D0E0F\"> : tensor<16xui4>\n"
      "    %5 = stablehlo.constant dense<[-2, 1, 3]> : tensor<3xi2>\n"
      "    %6 = stablehlo.constant dense<3> : tensor<5xui2>\n"
      "    %7 = stablehlo.constant dense<[0.5, 6.0]> : tensor<2xf4E2M1FN>\n"
      "    %8 = stablehlo.constant dense<[1.0, 0x7F]> : tensor<2xf8E3M4>\n"
      "    %9 = stablehlo.constant dense<[[(1.0,2.0)], [(3.0,4.0)]]> : tensor<2x1xcomplex<f32>>\n"
      "    %10 = stablehlo.constant dense<true> : tensor<i1>\n"
      "    return %10 : tensor<i1>\n"
      "  }\n"
      "}\n";
  Parsed t;
  Func *f = main_func(parse_ok(&t, text));
  if (!f) {
    release(&t);
    return;
  }
  const Attr *a = const_value(f, 0); /* a complex splat: one pair */
  CHECK(a->dense->et == ET_C64 && a->dense->splat && a->dense->numel == 2 && a->dense->data.nbytes == 8);
  const uint8_t *b = dense_bytes(&t, a);
  CHECK(f32_at(b, 0) == 1.0f && f32_at(b, 1) == -2.5f);
  a = const_value(f, 1);
  b = dense_bytes(&t, a);
  double z[4];
  memcpy(z, b, sizeof z);
  CHECK(a->dense->et == ET_C128 && a->dense->data.nbytes == 32);
  CHECK(z[0] == 0.5 && z[2] == 3.0 && z[3] == 4.0);
  uint64_t bits;
  memcpy(&bits, &z[1], 8);
  CHECK(bits == 0x7FC00000u); /* a hex part is the bit pattern of the f64 */
  a = const_value(f, 2);
  CHECK(a->dense->data.kind == DATA_HEX && a->dense->numel == 1 && a->dense->data.nbytes == 8);
  for (int i = 3; i <= 8; i++) { /* checked, values not kept */
    a = const_value(f, i);
    CHECK(a->kind == AK_DENSE && a->dense->data.kind == DATA_NONE && a->dense->data.nbytes == 0);
    int64_t v;
    int64_t *vs;
    CHECK(!ir_attr_int(a, &v) && ir_attr_i64s(&t.c, a, &vs) < 0);
  }
  CHECK(const_value(f, 3)->dense->et == ET_I4 && const_value(f, 3)->dense->numel == 4);
  CHECK(const_value(f, 4)->dense->et == ET_U4 && const_value(f, 4)->dense->numel == 16);
  CHECK(const_value(f, 6)->dense->et == ET_U2 && const_value(f, 6)->dense->splat);
  a = const_value(f, 9);
  b = dense_bytes(&t, a);
  CHECK(a->dense->numel == 2 && f32_at(b, 2) == 3.0f && f32_at(b, 3) == 4.0f);
  release(&t);
}

/* ---- bad inputs ------------------------------------------------------------------------------------ */

typedef struct BadCase {
  const char *what;
  const char *text;
  const char *message; /* a substring of the diagnostic */
  int line, col;
} BadCase;

/* MAIN() puts the body on line 3; "    %0 = " puts the op name at column 10. */
static const BadCase bad_cases[] = {
    {"empty file", "", "the input is empty", 1, 1},
    {"only blanks", "  \n\n", "the input is empty", 1, 1},
    {"garbage", "hello world", "expected a module, got 'hello'", 1, 1},
    {"stray character", "module { ` }", "unexpected character '`'", 1, 10},
    {"NUL byte", "module {\n\0}", "unexpected byte 0x00", 2, 1},
    {"truncated module", "module {\n  func.func @main() -> () {\n    return\n",
     "expected '}' to close the region opened at 2:27, got end of input", 4, 1},
    {"module not closed", "module {\n", "expected '}' to close the module opened at 1:1", 2, 1},
    {"unbalanced closing brace", "module {\n}\n}\n", "unexpected '}' after the module", 3, 1},
    {"two modules", "module {\n}\nmodule {\n}\n", "unexpected 'module' after the module", 3, 1},
    {"unknown element type", MAIN("    %0 = stablehlo.convert %arg0 : (tensor<4xf32>) -> tensor<4xf31>\n"),
     "unknown element type 'f31'", 3, 64},
    {"unknown element type (arg)", "module {\n  func.func @f(%a: tensor<i7>) -> () {\n    return\n  }\n}\n",
     "unknown element type 'i7'", 2, 27},
    {"dense count", MAIN("    %0 = stablehlo.constant dense<[1.0, 2.0, 3.0]> : tensor<4xf32>\n"),
     "dense literal has 3 elements, tensor<4xf32> needs 4", 3, 29},
    {"dense ragged", MAIN("    %0 = stablehlo.constant dense<[[1, 2], [3]]> : tensor<2x2xi32>\n"),
     "rows of different lengths", 3, 46},
    {"dense mixed nesting", MAIN("    %0 = stablehlo.constant dense<[1, [2]]> : tensor<2xi32>\n"),
     "mixes lists and elements", 3, 39},
    {"hex blob length", MAIN("    %0 = stablehlo.constant dense<\"0x0000803F0000\"> : tensor<2xf32>\n"),
     "hex dense literal has 6 bytes, tensor<2xf32> needs 8 (or 4 for a splat)", 3, 35},
    {"hex blob odd digits", MAIN("    %0 = stablehlo.constant dense<\"0x000\"> : tensor<f32>\n"),
     "odd number of digits", 3, 35},
    {"hex blob bad digit", MAIN("    %0 = stablehlo.constant dense<\"0x00G0\"> : tensor<i16>\n"),
     "invalid hex digit 'G'", 3, 40},
    {"string dense", MAIN("    %0 = stablehlo.constant dense<\"abc\"> : tensor<f32>\n"),
     "string dense literals are not supported", 3, 35},
    /* complex and sub-byte literals parse (test_dense_unusable_types); only
     * malformed ones are errors here */
    {"complex dense without a pair", MAIN("    %0 = stablehlo.constant dense<1.0> : tensor<complex<f32>>\n"),
     "expected a (real, imaginary) pair for a complex<f32> element, got '1.0'", 3, 35},
    {"complex pair for a real type", MAIN("    %0 = stablehlo.constant dense<[(1.0,2.0)]> : tensor<1xf32>\n"),
     "a (real, imaginary) element needs a complex type, got tensor<1xf32>", 3, 36},
    {"complex pair without comma", MAIN("    %0 = stablehlo.constant dense<(1.0 2.0)> : tensor<complex<f32>>\n"),
     "expected ',' between the real and imaginary parts, got '2.0'", 3, 40},
    {"complex pair not closed", MAIN("    %0 = stablehlo.constant dense<[(1.0, 2.0, 3.0)]> : tensor<1xcomplex<f32>>\n"),
     "expected ')' to close a complex element, got ','", 3, 45},
    {"dense int out of range", MAIN("    %0 = stablehlo.constant dense<[1, 300]> : tensor<2xi8>\n"),
     "value 300 does not fit in i8", 3, 39},
    {"dense negative unsigned", MAIN("    %0 = stablehlo.constant dense<-1> : tensor<ui8>\n"),
     "value -1 does not fit in ui8", 3, 35},
    {"dense float for int", MAIN("    %0 = stablehlo.constant dense<1.5> : tensor<i32>\n"),
     "expected an integer element for i32", 3, 35},
    {"dense hex too wide", MAIN("    %0 = stablehlo.constant dense<0x7FC00000> : tensor<f16>\n"),
     "hex value does not fit in f16", 3, 35},
    {"dense dynamic type", MAIN("    %0 = stablehlo.constant dense<1.0> : tensor<?xf32>\n"),
     "a dense literal needs a static shape", 3, 42},
    {"dense i4 out of range", MAIN("    %0 = stablehlo.constant dense<[1, -9]> : tensor<2xi4>\n"),
     "value -9 does not fit in i4", 3, 39},
    {"dense ui4 out of range", MAIN("    %0 = stablehlo.constant dense<16> : tensor<2xui4>\n"),
     "value 16 does not fit in ui4", 3, 35},
    {"dense ui2 negative", MAIN("    %0 = stablehlo.constant dense<-1> : tensor<ui2>\n"),
     "value -1 does not fit in ui2", 3, 35},
    {"dense sub-byte hex length", MAIN("    %0 = stablehlo.constant dense<\"0x0102\"> : tensor<4xi4>\n"),
     "hex dense literal has 2 bytes, tensor<4xi4> needs 4 (or 1 for a splat)", 3, 35},
    {"dense f4 hex too wide", MAIN("    %0 = stablehlo.constant dense<[0x1F]> : tensor<1xf4E2M1FN>\n"),
     "hex value does not fit in f4E2M1FN", 3, 36},
    {"undefined value", MAIN("    %0 = stablehlo.add %arg0, %5 : tensor<4xf32>\n"),
     "use of undefined value %5", 3, 31},
    {"duplicate definition", MAIN("    %0 = stablehlo.negate %arg0 : tensor<4xf32>\n"
                                  "    %0 = stablehlo.negate %arg0 : tensor<4xf32>\n"),
     "redefinition of %0 (first defined at 3:5)", 4, 5},
    {"duplicate argument", "module {\n  func.func @f(%a: tensor<f32>, %a: tensor<f32>) -> () {\n    return\n  }\n}\n",
     "redefinition of %a (first defined at 2:16)", 2, 33},
    {"region value used outside", MAIN("    %0 = \"stablehlo.case\"(%c) ({\n"
                                       "      %1 = stablehlo.negate %arg0 : tensor<4xf32>\n"
                                       "      stablehlo.return %1 : tensor<4xf32>\n"
                                       "    }) : (tensor<i32>) -> tensor<4xf32>\n"),
     "use of undefined value %c", 3, 27},
    {"sibling region value", "module {\n  func.func @f(%p: tensor<i32>, %x: tensor<f32>) -> tensor<f32> {\n"
                             "    %0 = \"stablehlo.case\"(%p) ({\n"
                             "      %1 = stablehlo.negate %x : tensor<f32>\n"
                             "      stablehlo.return %1 : tensor<f32>\n"
                             "    }, {\n"
                             "      stablehlo.return %1 : tensor<f32>\n"
                             "    }) : (tensor<i32>) -> tensor<f32>\n"
                             "    return %0 : tensor<f32>\n  }\n}\n",
     "use of undefined value %1", 7, 24},
    {"result number out of range", MAIN("    %0:2 = stablehlo.optimization_barrier %arg0, %arg0 : tensor<4xf32>, tensor<4xf32>\n"
                                        "    %1 = stablehlo.negate %0#2 : tensor<4xf32>\n"),
     "%0 has 2 results, there is no #2", 4, 27},
    {"multi-result used whole", MAIN("    %0:2 = stablehlo.optimization_barrier %arg0, %arg0 : tensor<4xf32>, tensor<4xf32>\n"
                                     "    %1 = stablehlo.negate %0 : tensor<4xf32>\n"),
     "%0 has 2 results: use %0#0 to %0#1", 4, 27},
    {"negative dimension", MAIN("    %0 = stablehlo.reshape %arg0 : (tensor<4xf32>) -> tensor<-1x4xf32>\n"),
     "negative dimension", 3, 62},
    {"huge dimension", MAIN("    %0 = stablehlo.reshape %arg0 : (tensor<4xf32>) -> tensor<99999999999999999999xf32>\n"),
     "dimension is too large", 3, 62},
    {"too many elements", MAIN("    %0 = stablehlo.reshape %arg0 : (tensor<4xf32>) -> tensor<4294967296x4294967296xf32>\n"),
     "tensor type has more than 2^63-1 elements", 3, 55},
    {"rank too large",
     MAIN("    %0 = stablehlo.reshape %arg0 : (tensor<4xf32>) -> tensor<1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x"
          "1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1x1xf32>\n"),
     "more than 64 dimensions", 3, 55},
    {"unranked tensor", MAIN("    %0 = stablehlo.reshape %arg0 : (tensor<4xf32>) -> tensor<*xf32>\n"),
     "unranked tensors", 3, 62},
    {"operand type mismatch", MAIN("    %0 = stablehlo.add %arg0, %arg0 : tensor<3xf32>\n"),
     "operand 0 of stablehlo.add has type tensor<4xf32>, expected tensor<3xf32>", 3, 24},
    {"operand type mismatch (function type)",
     MAIN("    %0 = stablehlo.convert %arg0 : (tensor<4xi32>) -> tensor<4xf32>\n"),
     "operand 0 of stablehlo.convert has type tensor<4xf32>, expected tensor<4xi32>", 3, 28},
    {"operand count vs signature", MAIN("    %0 = stablehlo.add %arg0, %arg0 : (tensor<4xf32>) -> tensor<4xf32>\n"),
     "stablehlo.add has 2 operands but its type signature lists 1", 3, 39},
    {"result count vs signature", MAIN("    %0:2 = stablehlo.add %arg0, %arg0 : tensor<4xf32>\n"),
     "defines 2 results but its type signature has 1", 3, 41},
    {"no results but a result type", MAIN("    stablehlo.custom_call @f(%arg0) : (tensor<4xf32>) -> tensor<4xf32>\n"),
     "defines 0 results but its type signature has 1", 3, 39},
    {"known op without signature", MAIN("    %0 = stablehlo.negate %arg0\n"),
     "stablehlo.negate defines results but has no type signature", 3, 10},
    {"invalid UTF-8 in a string", MAIN("    %0 = stablehlo.negate %arg0 : tensor<4xf32> loc(\"ab\xff\")\n"),
     "invalid UTF-8 in string literal", 3, 56},
    {"overlong UTF-8 in an attribute", "module attributes {a = \"\xc0\xaf\"} {\n}\n",
     "invalid UTF-8 in string literal", 1, 25},
    {"escaped invalid UTF-8 in a location name",
     MAIN("    %0 = stablehlo.negate %arg0 : tensor<4xf32> loc(\"ab\\FF\")\n"),
     "name is not valid UTF-8 once its escapes are decoded", 3, 53},
    {"NUL in a symbol name", "module @\"a\\00b\" {\n}\n", "must not contain a NUL byte", 1, 8},
    {"non-ASCII outside a string", "module @caf\xc3\xa9 {\n}\n",
     "non-ASCII text is only allowed in string literals", 1, 12},
    {"byte size overflow", "module {\n  func.func @f(%a: tensor<2305843009213693952xf64>) -> () {\n    return\n  }\n}\n",
     "tensor type has more than 2^63-1 bytes", 2, 20},
    {"unterminated string", "module attributes {a = \"abc} {\n}\n",
     "string literal is not closed on its line", 1, 24},
    {"unknown escape", "module attributes {a = \"a\\qb\"} {\n}\n", "unknown escape '\\q'", 1, 26},
    {"integer overflow", "module attributes {a = 99999999999999999999 : i64} {\n}\n",
     "integer literal does not fit in 64 bits", 1, 24},
    {"undefined location alias", MAIN("    %0 = stablehlo.negate %arg0 : tensor<4xf32> loc(#loc9)\n"),
     "undefined location alias #loc9", 3, 53},
    {"location alias cycle", "#a = loc(#b)\n#b = loc(#a)\n" MAIN("    %0 = stablehlo.negate %arg0 : tensor<4xf32> loc(#a)\n"),
     "location alias #a refers to itself", 1, 1},
    {"call to undefined function", MAIN("    %0 = call @nope(%arg0) : (tensor<4xf32>) -> tensor<4xf32>\n"),
     "call to undefined function @nope", 3, 10},
    {"call argument type",
     "module {\n  func.func @main(%a: tensor<4xf32>) -> tensor<4xf32> {\n"
     "    %0 = call @g(%a) : (tensor<4xf32>) -> tensor<4xf32>\n    return %0 : tensor<4xf32>\n  }\n"
     "  func.func private @g(%a: tensor<3xf32>) -> tensor<4xf32> {\n    %0 = stablehlo.constant dense<0.0> : tensor<4xf32>\n"
     "    return %0 : tensor<4xf32>\n  }\n}\n",
     "argument 0 of the call to @g has type tensor<4xf32>, the function takes tensor<3xf32>", 3, 10},
    {"redefined function", "module {\n  func.func @f() -> () {\n    return\n  }\n  func.func @f() -> () {\n    return\n  }\n}\n",
     "redefinition of function @f", 5, 3},
    {"missing return", "module {\n  func.func @f(%a: tensor<f32>) -> tensor<f32> {\n    %0 = stablehlo.negate %a : tensor<f32>\n  }\n}\n",
     "function @f does not end with a return", 3, 10},
    {"return type", "module {\n  func.func @f(%a: tensor<f32>) -> tensor<i32> {\n    return %a : tensor<f32>\n  }\n}\n",
     "result 0 of @f has type tensor<f32>, its signature says tensor<i32>", 3, 5},
    {"multi-block region", "module {\n  func.func @f(%a: tensor<f32>) -> tensor<f32> {\n    return %a : tensor<f32>\n  ^bb1:\n"
                           "    return %a : tensor<f32>\n  }\n}\n",
     "regions with more than one block are not supported", 4, 3},
    {"deep nesting",
     "module attributes {a = [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["
     "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
     "nesting is deeper than 256 levels", 1, 279},
    {"bad conv dims", MAIN("    %0 = \"stablehlo.x\"() {d = #stablehlo.conv<[b, 0, 1]x[0, 1, i, o]->[b, 0, 1, f]>} : () -> ()\n"),
     "convolution dimension numbers need both 'b' and 'f'", 3, 47},
    {"nested complex", "module {\n  func.func @f(%a: tensor<complex<complex<f32>>>) -> () {\n    return\n  }\n}\n",
     "complex<complex> is not supported", 2, 35},
    {"type alias", "!t = tensor<f32>\nmodule {\n}\n", "type aliases (!name = type) are not supported", 1, 1},
    {"missing signature arrow", MAIN("    %0 = \"stablehlo.negate\"(%arg0) : (tensor<4xf32>) tensor<4xf32>\n"),
     "expected '->' in the type signature, got 'tensor'", 3, 54},
    {"unclosed bracket in opaque", "module attributes {a = #foo.bar<x [y>} {\n}\n", "unbalanced '>'", 1, 37},
};

static int count_lines_and_check(const BadCase *bc, const char *diag) {
  char head[96];
  snprintf(head, sizeof head, "test.mlir:%d:%d: error: ", bc->line, bc->col);
  return strncmp(diag, head, strlen(head)) == 0 && strstr(diag, bc->message) != NULL &&
         strchr(diag, '^') != NULL;
}

static void test_bad_inputs(void) {
  for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
    const BadCase *bc = &bad_cases[i];
    current = bc->what;
    Parsed t;
    size_t len = strcmp(bc->what, "NUL byte") == 0 ? 11 : strlen(bc->text);
    Module *m = parse_text(&t, bc->text, len);
    CHECK(m == NULL);
    CHECK(t.c.status == H2O_EINPUT && t.c.n_errors == 1);
    const char *diag = t.c.diag ? t.c.diag : "";
    bool ok = count_lines_and_check(bc, diag);
    if (!ok)
      fprintf(stderr, "[%s] expected test.mlir:%d:%d: ...%s...\n  got: %s\n", bc->what, bc->line,
              bc->col, bc->message, diag);
    CHECK(ok);
    release(&t);
  }
}

/* Every prefix of a valid module is either valid or a clean error: no crash,
 * no read past the end (ASan), exactly one diagnostic. */
static void test_truncations(void) {
  current = "every truncation";
  static const char text[] =
      "#loc1 = loc(\"a\"(#loc2))\n"
      "module @m attributes {k = [1, 2]} {\n"
      "  func.func @main(%arg0: tensor<2xf32> loc(\"x\"), %arg1: tensor<2x2xi32>) -> (tensor<2xf32> {r = \"s\"}) {\n"
      "    %cst = stablehlo.constant dense<[1.5, 0x7FC00000]> : tensor<2xf32>\n"
      "    %h = stablehlo.constant dense<\"0x0000803F0000803F\"> : tensor<2xf32>\n"
      "    %0 = stablehlo.reduce(%arg0 init: %cst) applies stablehlo.add across dimensions = [0] : (tensor<2xf32>, tensor<2xf32>) -> tensor<f32>\n"
      "    %1 = stablehlo.slice %arg1 [0:1, 0:2:1] : (tensor<2x2xi32>) -> tensor<1x2xi32>\n"
      "    %2 = stablehlo.add %arg0, %cst : tensor<2xf32> loc(#loc1)\n"
      "    return %2 : tensor<2xf32>\n"
      "  }\n"
      "}\n"
      "#loc2 = loc(callsite(\"f\" at \"g.py\":1:2 to :3))\n";
  size_t n = strlen(text);
  int ok = 0;
  for (size_t len = 0; len <= n; len++) {
    Parsed t;
    Module *m = parse_text(&t, text, len);
    if (m) ok++;
    else CHECK(t.c.n_errors == 1 && t.c.status == H2O_EINPUT);
    release(&t);
  }
  CHECK(ok >= 1); /* at least the whole text */
}

int main(void) {
  if (setjmp(oom)) {
    fprintf(stderr, "test_parse: [%s] out of memory\n", current);
    return 2;
  }
  test_module_structure();
  test_module_variants();
  test_locations();
  test_long_alias_chain();
  test_values_and_scopes();
  test_elementwise_and_signatures();
  test_shape_ops();
  test_dot_general();
  test_reduce();
  test_convolution();
  test_while();
  test_calls_and_specials();
  test_unknown_pretty_region();
  test_generic_forms();
  test_types();
  test_attribute_values();
  test_dense();
  test_dense_unusable_types();
  test_ir_helpers();
  test_jax_export_sample();
  test_bad_inputs();
  test_truncations();
  return test_summary("test_parse");
}
