/* limits.c - how big a module becomes once its calls are inlined.
 *
 * The lowering copies a function into the graph at every call, so a small
 * text whose functions each call the next twice expands to 2^n ops: 40
 * functions would ask for a trillion nodes.  Before lowering anything,
 * lower_module counts the ops the entry function expands to, each
 * function's count computed once (so this is linear in the text, whatever
 * the expansion), and refuses a module beyond H2O_MAX_LOWERED_OPS with a
 * message at the op of the entry function that crosses the limit.
 *
 * Recursion and calls nested deeper than Lower.call_stack holds are left to
 * lw_inline_call, which reports them at the offending call; here they only
 * stop the count, so it cannot loop or overflow the C stack.
 */
#include "lower/lower.h"

#include <limits.h>

enum { NEW = 0, VISITING, DONE };

typedef struct Counter {
  const Module *m;
  long *ops;   /* per function of m (same index): its expanded op count */
  char *state; /* NEW, VISITING, DONE */
  int depth;   /* calls being counted */
} Counter;

static long add_sat(long a, long b) { return a > LONG_MAX - b ? LONG_MAX : a + b; }

static long func_ops(Counter *k, const Func *f);

/* The function an op inlines: a call's callee, a composite's decomposition. */
static const Func *inlined_func(const Counter *k, const Op *op) {
  static const char *const attrs[] = {"callee", "decomposition"};
  for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
    const Attr *a = ir_op_attr(op, attrs[i]);
    if (a && (a->kind == AK_SYMBOL || a->kind == AK_STRING) && a->s)
      return ir_find_func(k->m, a->s);
  }
  return NULL;
}

static long block_ops(Counter *k, const Block *b);

static long op_ops(Counter *k, const Op *op) {
  long n = 1;
  const Func *f = inlined_func(k, op);
  if (f) n = add_sat(n, func_ops(k, f));
  for (int r = 0; r < op->n_regions; r++)
    for (int i = 0; i < op->regions[r]->n_blocks; i++)
      n = add_sat(n, block_ops(k, op->regions[r]->blocks[i]));
  return n;
}

static long block_ops(Counter *k, const Block *b) {
  long n = 0;
  for (int i = 0; i < b->n_ops && n < LONG_MAX; i++) n = add_sat(n, op_ops(k, b->ops[i]));
  return n;
}

static long func_ops(Counter *k, const Func *f) {
  int idx = 0;
  while (idx < k->m->n_funcs && k->m->funcs[idx] != f) idx++;
  if (idx == k->m->n_funcs || !f->body) return 0;
  if (k->state[idx] == DONE) return k->ops[idx];
  /* recursion, or deeper than lw_inline_call goes: its error, not ours */
  if (k->state[idx] == VISITING || k->depth >= 64) return 0;
  k->state[idx] = VISITING;
  k->depth++;
  long n = block_ops(k, f->body);
  k->depth--;
  k->state[idx] = DONE;
  k->ops[idx] = n;
  return n;
}

long lw_expanded_ops(Ctx *c, const Module *m, const Func *entry, long limit,
                     const Op **where) {
  Counter k = {m, arena_alloc(c->arena, sizeof(long) * (size_t)(m->n_funcs + 1)),
               arena_alloc(c->arena, (size_t)m->n_funcs + 1), 0};
  *where = NULL;
  long n = 0;
  for (int i = 0; i < m->n_funcs; i++)
    if (m->funcs[i] == entry) k.state[i] = VISITING;
  for (int i = 0; entry->body && i < entry->body->n_ops; i++) {
    n = add_sat(n, op_ops(&k, entry->body->ops[i]));
    if (n > limit && !*where) *where = entry->body->ops[i];
  }
  return n;
}
