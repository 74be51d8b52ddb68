/* test_onnx_ops.c - the ONNX op table (src/onnx/onnx_ops.def, onnx/ops.c)
 * and the node kinds that come from it.
 *
 * Checks that the rows are sorted and unique (onnx_op_lookup bisects them),
 * that lookup round-trips and misses what is no ai.onnx op, that the facts
 * are consistent with each other, that every ONNX op the lowering names -
 * the hint column of ir/ops.def and every op-like string literal of
 * src/lower/<file>.c - is a row, and that nodes get, keep and lose their kind
 * through og_node and og_set_op, which og_check_ops verifies.
 *
 * Usage: test_onnx_ops   (run from tests/c by ctest: reads ../../src/lower)
 */
#include <ctype.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "ir/ir.h"
#include "onnx/onnx.h"

#define TEST_CONTEXT
#include "test.h"

static bool is_identifier(const char *s) {
  if (!isupper((unsigned char)*s)) return false;
  for (; *s; s++)
    if (!isalnum((unsigned char)*s)) return false;
  return true;
}

static void test_rows(void) {
  CHECK(onnx_op_info[ONNX_OTHER].name[0] == '\0');
  for (int k = 1; k < ONNX__COUNT; k++) {
    const OnnxOpInfo *op = &onnx_op_info[k];
    CHECK(op->name && is_identifier(op->name));
    if (k > 1 && strcmp(onnx_op_info[k - 1].name, op->name) >= 0) {
      fail("onnx_ops.def: '%s' must come after '%s' (sorted, unique)", onnx_op_info[k - 1].name,
           op->name);
    }
    CHECK(onnx_op_lookup(op->name) == (OnnxOp)k);
    CHECK(0 <= op->min_inputs && op->min_inputs <= op->max_inputs);
    /* the facts hold together */
    if (op->facts & ONNX_BROADCASTS) {
      CHECK(op->facts & ONNX_ELEMENTWISE);
      CHECK(!(op->facts & ONNX_SAME_SHAPE)); /* the broadcast shape, not the first input's */
    }
    if ((op->facts & ONNX_ELEMENTWISE) && !(op->facts & ONNX_BROADCASTS))
      CHECK(op->facts & ONNX_SAME_SHAPE);
    CHECK(!!(op->facts & ONNX_REDUCES) == (strncmp(op->name, "Reduce", 6) == 0));
    if (op->facts & (ONNX_RESHAPES | ONNX_REDUCES | ONNX_KEEPS_BATCH))
      CHECK(!(op->facts & ONNX_BROADCASTS));
  }
  /* facts decided from the ONNX operator documents where the old lists of
   * the passes disagreed */
  CHECK(onnx_op_has(ONNX_Mod, ONNX_BROADCASTS | ONNX_ELEMENTWISE));
  CHECK(onnx_op_has(ONNX_Where, ONNX_BROADCASTS) && onnx_op_info[ONNX_Where].min_inputs == 3);
  CHECK(onnx_op_has(ONNX_BitShift, ONNX_BROADCASTS));
  CHECK(onnx_op_has(ONNX_Sum, ONNX_BROADCASTS) &&
         onnx_op_info[ONNX_Sum].max_inputs == ONNX_VARIADIC);
  CHECK(!onnx_op_has(ONNX_PRelu, ONNX_BROADCASTS) && onnx_op_has(ONNX_PRelu, ONNX_SAME_SHAPE));
  CHECK(onnx_op_has(ONNX_Tan, ONNX_ELEMENTWISE) && onnx_op_has(ONNX_Asin, ONNX_ELEMENTWISE));
  CHECK(!onnx_op_has(ONNX_Softmax, ONNX_ELEMENTWISE));
  CHECK(onnx_op_has(ONNX_Softmax, ONNX_SAME_SHAPE));
  CHECK(!onnx_op_has(ONNX_Clip, ONNX_ELEMENTWISE));
  CHECK(!onnx_op_has(ONNX_Transpose, ONNX_RESHAPES));
}

static void test_lookup_misses(void) {
  const char *not_ops[] = {"", "relu", "ADD", "Add ", "Addd", "Ad", "A", "Zzz", "Bitwise",
                           "Reduce", "hlo2onnx.fn"};
  for (size_t i = 0; i < sizeof not_ops / sizeof *not_ops; i++)
    CHECK(onnx_op_lookup(not_ops[i]) == ONNX_OTHER);
  CHECK(onnx_op_lookup(NULL) == ONNX_OTHER);
}

/* The ONNX op hints of the StableHLO op table (the ops lower_unary,
 * lower_binary and friends emit). */
static void test_ops_def_hints(void) {
  static const char *const hints[] = {
#define OP(id, name, fn, hint, shape, flags) hint,
#include "ir/ops.def"
#undef OP
  };
  for (size_t i = 0; i < sizeof hints / sizeof *hints; i++)
    if (hints[i] && onnx_op_lookup(hints[i]) == ONNX_OTHER) {
      fail("ir/ops.def names the ONNX op '%s', which is not in onnx_ops.def", hints[i]);
    }
}

/* Capitalised string literals of the lowering that are not ONNX ops:
 * attribute values and custom_call targets it compares against. */
static bool lowering_non_op(const char *s) {
  static const char *const words[] = {"DEFAULT", "EQ", "NE", "LT", "LE", "GT", "GE",
                                      "FLOAT", "SIGNED", "UNSIGNED", "TOTALORDER", "LEFT",
                                      "RIGHT", "FFT", "IFFT", "RFFT", "IRFFT", "UNIFORM",
                                      "PHILOX", "Sharding", "SPMDFullToShardShape",
                                      "SPMDShardToFullShape", "ApproxTopK",
                                      "TRANSPOSE", "ADJOINT", /* triangular_solve's transpose_a */
                                      "LuDecomposition"};     /* JAX's LU custom_call on TPU */
  for (size_t i = 0; i < sizeof words / sizeof *words; i++)
    if (strcmp(s, words[i]) == 0) return true;
  return false;
}

/* Every literal "Name" of src/lower/<file>.c that looks like an op type is an op
 * of the table (names built at run time, "Bitwise%s", are checked by
 * og_check_ops when the lowering ends). */
static void test_lowering_literals(void) {
  const char *dir_path = "../../src/lower";
  DIR *d = opendir(dir_path);
  CHECK(d != NULL);
  if (!d) return;
  int files = 0, literals = 0;
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    size_t len = strlen(e->d_name);
    if (len < 3 || strcmp(e->d_name + len - 2, ".c") != 0) continue;
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir_path, e->d_name);
    FILE *f = fopen(path, "rb");
    CHECK(f != NULL);
    if (!f) continue;
    files++;
    char line[4096];
    for (int lineno = 1; fgets(line, sizeof line, f); lineno++) {
      for (char *q = strchr(line, '"'); q; q = strchr(q, '"')) {
        char *end = strchr(q + 1, '"');
        if (!end) break;
        char word[128];
        size_t n = (size_t)(end - q - 1);
        if (n > 0 && n < sizeof word) {
          memcpy(word, q + 1, n);
          word[n] = '\0';
          /* one letter: a dim name in a comment ("B"); no op is that short */
          if (n > 1 && is_identifier(word) && !lowering_non_op(word)) {
            literals++;
            if (onnx_op_lookup(word) == ONNX_OTHER) {
              fail("%s:%d: \"%s\" is not an op of onnx_ops.def", path, lineno, word);
            }
          }
        }
        q = end + 1;
      }
    }
    fclose(f);
  }
  closedir(d);
  CHECK(files > 5 && literals > 50); /* the scan did read the lowering */
}

static OValue *input(Ctx *c, OGraph *g) {
  OValue *v = og_value(c, g, "x");
  int64_t dims[2] = {2, 3};
  og_set_type(c, v, ET_F32, 2, dims);
  v->is_input = true;
  ptrvec_push(c->arena, &g->inputs, v);
  return v;
}

static void test_node_kinds(void) {
  Ctx *c = ctx();
  OGraph *g = og_new(c, "g", NULL);
  OValue *x = input(c, g);
  OValue *xy[2] = {x, x};
  ONode *add = og_node(c, g, "Add", xy, 2, 1);
  CHECK(add->kind == ONNX_Add && og_is(add, ONNX_Add) && !og_is(add, ONNX_Sub));
  CHECK(!og_is(NULL, ONNX_Add));
  CHECK(og_check_ops(c, g) == 0);

  /* a rewrite changes the kind with the op_type */
  og_set_kind(add, ONNX_Mul);
  CHECK(strcmp(add->op_type, "Mul") == 0 && og_is(add, ONNX_Mul));
  /* a call of a local function named like an op is no op of the table */
  ONode *call = og_node(c, g, "Relu", &x, 1, 1);
  og_set_op(call, call->op_type, OG_FN_DOMAIN);
  CHECK(call->kind == ONNX_OTHER && !og_is(call, ONNX_Relu));
  CHECK(og_check_ops(c, g) == 0);
  /* ... and back into ai.onnx */
  og_set_op(call, "Relu", NULL);
  CHECK(og_is(call, ONNX_Relu));
  /* dead nodes match nothing */
  call->dead = true;
  CHECK(!og_is(call, ONNX_Relu));
  CHECK(c->n_errors == 0);

  /* og_check_ops: an op outside the table */
  c = ctx();
  ONode *bad = og_node(c, g, "NoSuchOp", &x, 1, 1);
  CHECK(bad->kind == ONNX_OTHER);
  CHECK(og_check_ops(c, g) != 0 && c->status == H2O_EINTERNAL);
  CHECK(c->diag && strstr(c->diag, "NoSuchOp"));
  bad->dead = true;
  /* ... an op_type written past og_set_op */
  c = ctx();
  add->op_type = "Sub";
  CHECK(og_check_ops(c, g) != 0 && strstr(c->diag, "og_set_op"));
  og_set_op(add, "Sub", NULL);
  /* ... a wrong number of inputs */
  c = ctx();
  ONode *where = og_node(c, g, "Where", xy, 2, 1);
  CHECK(og_check_ops(c, g) != 0 && strstr(c->diag, "Where"));
  where->dead = true;
  c = ctx();
  CHECK(og_check_ops(c, g) == 0);

  /* subgraphs are checked too */
  OGraph *body = og_new(c, "body", g);
  ONode *inner = og_node(c, body, "Tanh", &x, 1, 1);
  ONode *iff = og_node(c, g, "If", &x, 1, 1);
  og_attr_graph(c, iff, "then_branch", body);
  CHECK(og_check_ops(c, g) == 0);
  inner->op_type = "Tanhh";
  c = ctx();
  CHECK(og_check_ops(c, g) != 0);
}

/* ort_kernels.def has a row for every op (generated from onnx_ops.def's
 * names: a row missing would read as "no kernel for any type"), and says
 * what the issue that led to it found: Pad has no i16, u16 kernel, and bf16
 * only from opset 21; Expand has no bf16 kernel. */
static void test_kernel_rows(void) {
  for (int k = 1; k < ONNX__COUNT; k++) {
    uint32_t any = 0;
    for (int o = ONNX_KERNEL_MIN_OPSET; o <= ONNX_KERNEL_MAX_OPSET; o++)
      any |= onnx_kernels[k].types[o - ONNX_KERNEL_MIN_OPSET];
    if (!any) fail("ort_kernels.def: no row (or no kernel at any opset) for %s", onnx_op_info[k].name);
  }
  CHECK(!onnx_has_kernel(ONNX_Pad, 19, ET_I16) && !onnx_has_kernel(ONNX_Pad, 23, ET_U16));
  CHECK(!onnx_has_kernel(ONNX_Pad, 20, ET_BF16) && onnx_has_kernel(ONNX_Pad, 21, ET_BF16));
  CHECK(onnx_has_kernel(ONNX_Pad, 19, ET_I32) && onnx_has_kernel(ONNX_Pad, 17, ET_F32));
  CHECK(!onnx_has_kernel(ONNX_Expand, 20, ET_BF16) && onnx_has_kernel(ONNX_Expand, 20, ET_I16));
  CHECK(onnx_has_kernel(ONNX_OTHER, 20, ET_BF16)); /* nothing known: nothing to move */
  CHECK(onnx_has_kernel(ONNX_Pad, 30, ET_I16));   /* an opset outside the table */
  /* the slots that carry the kernel's type: Where's X and Y, Pad's data and
   * constant_value, every input of a variadic Concat */
  CHECK(onnx_kernels[ONNX_Where].kernel_inputs == 0x6);
  CHECK(onnx_kernels[ONNX_Pad].kernel_inputs == 0x5);
  CHECK(onnx_kernel_slot(onnx_kernels[ONNX_Concat].kernel_inputs, 40));
  CHECK(!onnx_kernel_slot(onnx_kernels[ONNX_Gather].kernel_inputs, 1));
  CHECK(onnx_kernels[ONNX_ArgMax].kernel_outputs == 0); /* int64 indices */
}

int main(void) {
  A = arena_new(&oom);
  if (setjmp(oom)) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  ctx();
  test_rows();
  test_lookup_misses();
  test_ops_def_hints();
  test_lowering_literals();
  test_node_kinds();
  test_kernel_rows();
  ctx_release(&C);
  arena_free(A);
  return test_summary("test_onnx_ops");
}
