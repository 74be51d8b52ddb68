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

#define TEST_CONTEXT
#include "test.h"

/* x -> Relu -> r -> Neg -> y (output), and r -> Abs -> z (output), in a
 * fresh context c. */
typedef struct Small {
  Ctx *c;
  OGraph *g;
  OValue *x, *r, *y, *z;
  ONode *relu, *neg, *abs;
} Small;

static void add_output(OGraph *g, OValue *v) {
  v->is_output = true;
  ptrvec_push(A, &g->outputs, v);
}

/* Starts the case `name`: a fresh context and the small graph, counted. */
static Small small(const char *name) {
  current = name;
  Small s;
  Ctx *c = s.c = ctx();
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
static void expect_broken(const Small *s, const char *what) {
  Ctx *c = s->c;
  CHECK(og_verify(c, s->g) != 0);
  CHECK(c->status == H2O_EINTERNAL);
  CHECK(c->diag && strstr(c->diag, what));
  if (c->diag && !strstr(c->diag, what)) fprintf(stderr, "  got: %s", c->diag);
}

static void test_intact(void) {
  Small s = small("intact");
  CHECK(s.r->n_uses == 2 && s.y->n_uses == 1 && s.x->n_uses == 1);
  CHECK(og_verify(s.c, s.g) == 0);
  CHECK(s.c->status == H2O_OK);
}

/* A pass that rewires a reader without moving the count: the old value
 * looks shared, the new one looks unused - or, worse, single-use when it
 * is read twice, which lets a fusion absorb it. */
static void test_stale_counts(void) {
  Small s = small("count too high");
  s.r->n_uses++;
  expect_broken(&s, "has 2 uses but its use count says 3");

  s = small("count too low");
  s.r->n_uses = 1; /* og_single_use(r) would wrongly hold */
  expect_broken(&s, "has 2 uses but its use count says 1");

  s = small("rewired without counting");
  s.abs->inputs[0] = s.x;
  expect_broken(&s, "use count says");

  s = small("output slot not counted");
  s.y->n_uses = 0;
  expect_broken(&s, "has 1 uses but its use count says 0");

  s = small("dead reader still counted");
  s.abs->dead = true;
  /* z is still an output, defined by a dead node: caught as undefined */
  expect_broken(&s, "graph output");

  s = small("dead reader, counts kept right");
  s.abs->dead = true;
  s.g->outputs.len = 1; /* drop z */
  s.z->is_output = false;
  s.r->n_uses--;
  s.z->n_uses--;
  CHECK(og_verify(s.c, s.g) == 0);
}

/* og_replace_uses keeps the counts, graph output slots included. */
static void test_replace_keeps_counts(void) {
  Small s = small("replace an output");
  og_replace_uses(s.g, s.y, s.r); /* Neg bypassed: r is now the output */
  s.neg->dead = true;
  s.r->n_uses--;
  CHECK(s.r->is_output && !s.y->is_output && s.y->n_uses == 0 && s.r->n_uses == 2);
  CHECK(og_verify(s.c, s.g) == 0);

  s = small("replace in a subgraph's outputs");
  OGraph *body = og_new(s.c, "body", s.g);
  add_output(body, s.r); /* the body yields the outer r itself */
  OValue *cond = s.x;
  ONode *iff = og_node(s.c, s.g, "If", &cond, 1, 1);
  og_attr_graph(s.c, iff, "then_branch", body); /* one branch is enough here */
  og_recount_uses(s.g);
  CHECK(og_verify(s.c, s.g) == 0);
  og_replace_uses(s.g, s.r, s.x);
  s.relu->dead = true;
  s.x->n_uses--;
  CHECK(body->outputs.items[0] == s.x);
  CHECK(og_verify(s.c, s.g) == 0);
}

static void test_structure(void) {
  Small s = small("reads a dead node's output");
  s.relu->dead = true;
  s.x->n_uses--;
  expect_broken(&s, "before it is defined");

  s = small("produced twice");
  s.abs->outputs[0] = s.y;
  expect_broken(&s, "is defined twice");

  s = small("producer names another node");
  s.r->producer = s.neg;
  expect_broken(&s, "names another producer");

  s = small("output not marked");
  s.y->is_output = false; /* og_single_use(y) would hold */
  expect_broken(&s, "is not marked as an output");
}

/* A subgraph reads an outer value: it counts as a use of that value, and
 * the value must be defined before the node owning the subgraph. */
static void test_subgraph(void) {
  Small s = small("subgraph use counted");
  OGraph *body = og_new(s.c, "body", s.g);
  ONode *inner = og_node(s.c, body, "Sqrt", &s.r, 1, 1);
  add_output(body, inner->outputs[0]);
  OValue *cond = og_value(s.c, s.g, "cond");
  cond->is_input = true;
  ptrvec_push(A, &s.g->inputs, cond);
  ONode *iff = og_node(s.c, s.g, "If", &cond, 1, 1);
  og_attr_graph(s.c, iff, "then_branch", body);
  og_attr_graph(s.c, iff, "else_branch", body);
  CHECK(og_verify(s.c, s.g) != 0); /* r's count misses the subgraph's reads */
  og_recount_uses(s.g);
  CHECK(s.r->n_uses == 4); /* Neg, Abs, and Sqrt seen through both branches */
  s.c = ctx();             /* clears the error */
  CHECK(og_verify(s.c, s.g) == 0);
  inner->outputs[0]->n_uses = 0;
  expect_broken(&s, "use count says 0");
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
  return test_summary("test_verify");
}
