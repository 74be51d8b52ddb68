/* test_verify.c - the graph verifier (src/onnx/verify.c) catches what a
 * pass could break: a stale use count (the fact every fusion's safety rests
 * on), a live node reading a dead node's output, a value produced twice, a
 * producer pointer that names another node, a graph output not marked as
 * one, and an outer value read by a subgraph before it is defined; and
 * og_replace_uses keeps the counts right, graph output slots included.
 *
 * Each case builds a small graph through the og_ functions (which keep the
 * counts), checks that it verifies, breaks one thing and checks that the
 * verifier reports an internal error saying what.  Exit status 0 when every
 * check passed.
 */
#include "onnx/onnx.h"

#include <stdlib.h>
#include <string.h>

static int n_failed;
static const char *current;

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      fprintf(stderr, "%s:%d: [%s] check failed: %s\n", __FILE__, __LINE__, current, \
              #cond);                                                               \
      n_failed++;                                                                   \
    }                                                                               \
  } while (0)

static jmp_buf oom;
static Arena *A;
static Ctx C;
static h2o_options O;

static Ctx *fresh(const char *name) {
  current = name;
  ctx_release(&C);
  ctx_init(&C, A, &oom, "test", NULL, 0, &O);
  return &C;
}

/* x -> Relu -> r -> Neg -> y (output), and r -> Abs -> z (output). */
typedef struct Small {
  OGraph *g;
  OValue *x, *r, *y, *z;
  ONode *relu, *neg, *abs;
} Small;

static void add_output(OGraph *g, OValue *v) {
  v->is_output = true;
  ptrvec_push(A, &g->outputs, v);
}

static Small small(Ctx *c) {
  Small s;
  s.g = og_new(c, "g", NULL);
  s.x = og_value(c, s.g, "x");
  s.x->is_input = true;
  ptrvec_push(A, &s.g->inputs, s.x);
  s.relu = og_node(c, s.g, "Relu", &s.x, 1, 1);
  s.r = s.relu->outputs[0];
  s.neg = og_node(c, s.g, "Neg", &s.r, 1, 1);
  s.y = s.neg->outputs[0];
  s.abs = og_node(c, s.g, "Abs", &s.r, 1, 1);
  s.z = s.abs->outputs[0];
  add_output(s.g, s.y);
  add_output(s.g, s.z);
  og_recount_uses(s.g); /* counts the output slots, as pipeline.c does */
  return s;
}

/* og_verify fails with an internal error whose message contains `what`. */
static void expect_broken(Ctx *c, const OGraph *g, const char *what) {
  CHECK(og_verify(c, g) != 0);
  CHECK(c->status == H2O_EINTERNAL);
  CHECK(c->diag && strstr(c->diag, what));
  if (c->diag && !strstr(c->diag, what)) fprintf(stderr, "  got: %s", c->diag);
}

static void test_intact(void) {
  Ctx *c = fresh("intact");
  Small s = small(c);
  CHECK(s.r->n_uses == 2 && s.y->n_uses == 1 && s.x->n_uses == 1);
  CHECK(og_verify(c, s.g) == 0);
  CHECK(c->status == H2O_OK);
}

/* A pass that rewires a reader without moving the count: the old value
 * looks shared, the new one looks unused - or, worse, single-use when it
 * is read twice, which lets a fusion absorb it. */
static void test_stale_counts(void) {
  Ctx *c = fresh("count too high");
  Small s = small(c);
  s.r->n_uses++;
  expect_broken(c, s.g, "has 2 uses but its use count says 3");

  c = fresh("count too low");
  s = small(c);
  s.r->n_uses = 1; /* og_single_use(r) would wrongly hold */
  expect_broken(c, s.g, "has 2 uses but its use count says 1");

  c = fresh("rewired without counting");
  s = small(c);
  s.abs->inputs[0] = s.x;
  expect_broken(c, s.g, "use count says");

  c = fresh("output slot not counted");
  s = small(c);
  s.y->n_uses = 0;
  expect_broken(c, s.g, "has 1 uses but its use count says 0");

  c = fresh("dead reader still counted");
  s = small(c);
  s.abs->dead = true;
  /* z is still an output, defined by a dead node: caught as undefined */
  expect_broken(c, s.g, "graph output");

  c = fresh("dead reader, counts kept right");
  s = small(c);
  s.abs->dead = true;
  s.g->outputs.len = 1; /* drop z */
  s.z->is_output = false;
  s.r->n_uses--;
  s.z->n_uses--;
  CHECK(og_verify(c, s.g) == 0);
}

/* og_replace_uses keeps the counts, graph output slots included. */
static void test_replace_keeps_counts(void) {
  Ctx *c = fresh("replace an output");
  Small s = small(c);
  og_replace_uses(s.g, s.y, s.r); /* Neg bypassed: r is now the output */
  s.neg->dead = true;
  s.r->n_uses--;
  CHECK(s.r->is_output && !s.y->is_output && s.y->n_uses == 0 && s.r->n_uses == 2);
  CHECK(og_verify(c, s.g) == 0);

  c = fresh("replace in a subgraph's outputs");
  s = small(c);
  OGraph *body = og_new(c, "body", s.g);
  add_output(body, s.r); /* the body yields the outer r itself */
  OValue *cond = s.x;
  ONode *iff = og_node(c, s.g, "If", &cond, 1, 1);
  og_attr_graph(c, iff, "then_branch", body); /* one branch is enough here */
  og_recount_uses(s.g);
  CHECK(og_verify(c, s.g) == 0);
  og_replace_uses(s.g, s.r, s.x);
  s.relu->dead = true;
  s.x->n_uses--;
  CHECK(body->outputs.items[0] == s.x);
  CHECK(og_verify(c, s.g) == 0);
}

static void test_structure(void) {
  Ctx *c = fresh("reads a dead node's output");
  Small s = small(c);
  s.relu->dead = true;
  s.x->n_uses--;
  expect_broken(c, s.g, "before it is defined");

  c = fresh("produced twice");
  s = small(c);
  s.abs->outputs[0] = s.y;
  expect_broken(c, s.g, "is defined twice");

  c = fresh("producer names another node");
  s = small(c);
  s.r->producer = s.neg;
  expect_broken(c, s.g, "names another producer");

  c = fresh("output not marked");
  s = small(c);
  s.y->is_output = false; /* og_single_use(y) would hold */
  expect_broken(c, s.g, "is not marked as an output");
}

/* A subgraph reads an outer value: it counts as a use of that value, and
 * the value must be defined before the node owning the subgraph. */
static void test_subgraph(void) {
  Ctx *c = fresh("subgraph use counted");
  Small s = small(c);
  OGraph *body = og_new(c, "body", s.g);
  ONode *inner = og_node(c, body, "Sqrt", &s.r, 1, 1);
  add_output(body, inner->outputs[0]);
  OValue *cond = og_value(c, s.g, "cond");
  cond->is_input = true;
  ptrvec_push(A, &s.g->inputs, cond);
  ONode *iff = og_node(c, s.g, "If", &cond, 1, 1);
  og_attr_graph(c, iff, "then_branch", body);
  og_attr_graph(c, iff, "else_branch", body);
  CHECK(og_verify(c, s.g) != 0); /* r's count misses the subgraph's reads */
  og_recount_uses(s.g);
  CHECK(s.r->n_uses == 4); /* Neg, Abs, and Sqrt seen through both branches */
  fresh("subgraph use counted");
  CHECK(og_verify(c, s.g) == 0);
  inner->outputs[0]->n_uses = 0;
  expect_broken(c, s.g, "use count says 0");
}

int main(void) {
  A = arena_new(&oom);
  if (!A || setjmp(oom)) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  test_intact();
  test_stale_counts();
  test_replace_keeps_counts();
  test_structure();
  test_subgraph();
  ctx_release(&C);
  arena_free(A);
  if (n_failed) fprintf(stderr, "%d checks failed\n", n_failed);
  return n_failed ? 1 : 0;
}
