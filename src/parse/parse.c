/* parse.c - the module: functions, regions, value scopes, and the checks
 * that need the whole file (location aliases, calls).
 *
 *   file   ::= (alias-def | metadata)* (module | func+) (alias-def | metadata)*
 *   module ::= 'module' SYMBOL? ('attributes' attr-dict)? '{' (func | other-op)* '}' loc?
 *   func   ::= 'func.func' visibility? SYMBOL '(' (arg (',' arg)*)? ')'
 *              ('->' results)? ('attributes' attr-dict)? region loc?
 *   arg    ::= VALUE ':' type attr-dict? loc?
 *   results::= type | '(' (type attr-dict? (',' type attr-dict?)*)? ')'
 *   region ::= '{' ('^' IDENT ('(' block-args ')')? ':')? op* '}'
 *
 * Module-level ops other than functions (sdy.mesh, nested modules) are
 * skipped.  Location aliases (#loc3 = loc(...)) may come before or after the
 * module and may be used before they are defined, so an op's scope is
 * resolved after the whole file is read.
 *
 * Value scopes: a function starts empty (functions are isolated from each
 * other); a region sees the values of the regions around it, and what it
 * defines is visible only inside it.  A name defined twice in one scope is
 * an error; an inner region may reuse an outer name (it shadows it).
 */
#include "parse.h"

#include <string.h>

/* ---- value scopes ------------------------------------------------------------ */

struct Binding {
  StrEntry *slot; /* the name's entry in Parser.names */
  Binding *prev;  /* the binding it shadows */
  Value **vals;   /* %0:2 binds two values to one name */
  int n;
  int depth;
  size_t off;
};

static void scope_enter(Parser *p) { p->scope_depth++; }

static void scope_leave(Parser *p) {
  while (p->n_undo > 0 && p->undo[p->n_undo - 1]->depth == p->scope_depth) {
    Binding *b = p->undo[--p->n_undo];
    b->slot->val = b->prev;
  }
  p->scope_depth--;
}

void scope_define(Parser *p, const char *name, size_t len, Value **vals, int n, size_t off) {
  StrEntry *e;
  void **slot = strmap_get(p, &p->names, name, len, true, &e);
  Binding *old = *slot;
  if (old && old->depth == p->scope_depth) {
    SrcPos first = lex_pos(p, old->off);
    parse_fail(p, off, "redefinition of %.*s (first defined at %d:%d)", (int)len, name,
               first.line, first.col);
  }
  Binding *b = arena_alloc(p->a, sizeof *b);
  *b = (Binding){e, old, vals, n, p->scope_depth, off};
  *slot = b;
  p->undo = parse_grow(p, p->undo, &p->cap_undo, p->n_undo, sizeof(Binding *));
  p->undo[p->n_undo++] = b;
}

Value *scope_use(Parser *p) {
  Token t = p->tok;
  if (t.kind != T_VALUE) parse_fail(p, t.off, "expected a value, got %s", tok_desc(p));
  const char *s = tok_ptr(p, &t);
  const char *hash = memchr(s, '#', t.len);
  size_t base = hash ? (size_t)(hash - s) : t.len;
  long idx = -1;
  if (hash) {
    idx = 0;
    for (const char *q = hash + 1; q < s + t.len; q++) {
      idx = idx * 10 + (*q - '0');
      if (idx > 1000000) parse_fail(p, t.off, "result number is too large");
    }
  }
  void **slot = strmap_get(p, &p->names, s, base, false, NULL);
  Binding *b = slot ? *slot : NULL;
  if (!b) parse_fail(p, t.off, "use of undefined value %.*s", (int)base, s);
  Value *v;
  if (idx < 0) {
    if (b->n != 1)
      parse_fail(p, t.off, "%.*s has %d results: use %.*s#0 to %.*s#%d", (int)base, s, b->n,
                 (int)base, s, (int)base, s, b->n - 1);
    v = b->vals[0];
  } else {
    if (idx >= b->n)
      parse_fail(p, t.off, "%.*s has %d result%s, there is no #%ld", (int)base, s, b->n,
                 b->n == 1 ? "" : "s", idx);
    v = b->vals[idx];
  }
  lex_next(p);
  return v;
}

Value *new_value(Parser *p, const char *name, Type type, Op *def, int index) {
  Value *v = arena_alloc(p->a, sizeof *v);
  v->name = name;
  v->type = type;
  v->def = def;
  v->index = index;
  return v;
}

/* ---- regions ------------------------------------------------------------------ */

/* block-label ::= '^' IDENT ('(' VALUE ':' type loc? (',' ...)* ')')? ':' */
static int parse_block_label(Parser *p, Value ***args, size_t **offs) {
  lex_next(p); /* ^bb0 */
  Value **a = NULL;
  size_t *o = NULL;
  int n = 0, cap = 0, cap_o = 0;
  if (accept_punct(p, '(')) {
    while (!tok_punct(p, ')')) {
      Token v = p->tok;
      if (v.kind != T_VALUE || memchr(tok_ptr(p, &v), '#', v.len))
        parse_fail(p, v.off, "expected a block argument, got %s", tok_desc(p));
      lex_next(p);
      expect_punct(p, ':', "after the block argument");
      Type t = parse_type(p);
      parse_opt_loc(p, NULL);
      a = parse_grow(p, a, &cap, n, sizeof *a);
      o = parse_grow(p, o, &cap_o, n, sizeof *o);
      o[n] = v.off;
      a[n] = new_value(p, tok_name(p, &v), t, NULL, n);
      n++;
      if (!accept_punct(p, ',')) break;
    }
    expect_punct(p, ')', "to close the block arguments");
  }
  expect_punct(p, ':', "after the block label");
  *args = a;
  *offs = o;
  return n;
}

Region *parse_region(Parser *p, Value **args, int n_args, size_t *arg_offs) {
  size_t open = p->tok.off;
  expect_punct(p, '{', "to open a region");
  parse_enter(p);
  scope_enter(p);
  if (p->tok.kind == T_CARET) {
    if (n_args) parse_fail(p, p->tok.off, "this region's arguments are already declared");
    n_args = parse_block_label(p, &args, &arg_offs);
  }
  Block *blk = arena_alloc(p->a, sizeof *blk);
  blk->args = args;
  blk->n_args = n_args;
  for (int i = 0; i < n_args; i++)
    scope_define(p, args[i]->name, strlen(args[i]->name), &blk->args[i], 1, arg_offs[i]);
  PtrVec ops = {0};
  while (!tok_punct(p, '}')) {
    if (p->tok.kind == T_EOF) {
      SrcPos o = lex_pos(p, open);
      parse_fail(p, p->tok.off, "expected '}' to close the region opened at %d:%d, got end of input",
                 o.line, o.col);
    }
    if (p->tok.kind == T_CARET)
      parse_fail(p, p->tok.off, "regions with more than one block are not supported");
    parse_op(p, &ops);
  }
  lex_next(p);
  scope_leave(p);
  parse_leave(p);
  blk->ops = (Op **)ops.items;
  blk->n_ops = ops.len;
  Region *r = arena_alloc(p->a, sizeof *r);
  r->blocks = arena_alloc(p->a, sizeof(Block *));
  r->blocks[0] = blk;
  r->n_blocks = 1;
  return r;
}

/* ---- functions ------------------------------------------------------------------ */

typedef struct FuncArgs {
  Value **vals;
  size_t *offs;
  NamedAttr **attrs;
  int *n_attrs;
  Loc **locs;
  int n, cap[5];
} FuncArgs;

static void func_args(Parser *p, FuncArgs *fa) {
  expect_punct(p, '(', "to open the function arguments");
  while (!tok_punct(p, ')')) {
    Token v = p->tok;
    if (v.kind != T_VALUE || memchr(tok_ptr(p, &v), '#', v.len))
      parse_fail(p, v.off, "expected a function argument such as %%arg0, got %s", tok_desc(p));
    lex_next(p);
    expect_punct(p, ':', "after the argument name");
    int i = fa->n;
    fa->vals = parse_grow(p, fa->vals, &fa->cap[0], i, sizeof *fa->vals);
    fa->offs = parse_grow(p, fa->offs, &fa->cap[1], i, sizeof *fa->offs);
    fa->attrs = parse_grow(p, fa->attrs, &fa->cap[2], i, sizeof *fa->attrs);
    fa->n_attrs = parse_grow(p, fa->n_attrs, &fa->cap[3], i, sizeof *fa->n_attrs);
    fa->locs = parse_grow(p, fa->locs, &fa->cap[4], i, sizeof *fa->locs);
    fa->vals[i] = new_value(p, tok_name(p, &v), parse_type(p), NULL, i);
    fa->offs[i] = v.off;
    fa->attrs[i] = NULL;
    fa->n_attrs[i] = 0;
    if (tok_punct(p, '{')) {
      int cap = 0;
      parse_attr_dict(p, &fa->attrs[i], &fa->n_attrs[i], &cap);
    }
    fa->locs[i] = parse_opt_loc_node(p);
    fa->n++;
    if (!accept_punct(p, ',')) break;
  }
  expect_punct(p, ')', "to close the function arguments");
}

static void func_results(Parser *p, Func *f) {
  if (p->tok.kind != T_ARROW) return;
  lex_next(p);
  int cap[3] = {0};
  if (!accept_punct(p, '(')) {
    f->result_types = arena_alloc(p->a, sizeof(Type));
    f->result_types[0] = parse_type(p);
    f->result_attrs = arena_alloc(p->a, sizeof(NamedAttr *));
    f->result_n_attrs = arena_alloc(p->a, sizeof(int));
    f->n_results = 1;
    return;
  }
  while (!tok_punct(p, ')')) {
    int i = f->n_results;
    f->result_types = parse_grow(p, f->result_types, &cap[0], i, sizeof(Type));
    f->result_attrs = parse_grow(p, f->result_attrs, &cap[1], i, sizeof(NamedAttr *));
    f->result_n_attrs = parse_grow(p, f->result_n_attrs, &cap[2], i, sizeof(int));
    f->result_types[i] = parse_type(p);
    f->result_attrs[i] = NULL;
    f->result_n_attrs[i] = 0;
    if (tok_punct(p, '{')) {
      int dcap = 0;
      parse_attr_dict(p, &f->result_attrs[i], &f->result_n_attrs[i], &dcap);
    }
    f->n_results++;
    if (!accept_punct(p, ',')) break;
  }
  expect_punct(p, ')', "to close the function results");
}

/* JAX ends the reducer functions of custom calls such as
 * @stablehlo.dynamic_reduce_window with stablehlo.return, not func.return. */
static bool is_return(const Op *op) {
  return op->kind == OP_FUNC_RETURN || op->kind == OP_RETURN_SHORT || op->kind == OP_RETURN;
}

/* The body ends with a return whose operands have the function's result types. */
static void check_func_return(Parser *p, Func *f) {
  Block *body = f->body;
  Op *ret = body->n_ops ? body->ops[body->n_ops - 1] : NULL;
  if (!ret || !is_return(ret))
    parse_fail_pos(p, ret ? ret->pos : f->pos, "function @%s does not end with a return",
                   f->name);
  if (ret->n_operands != f->n_results)
    parse_fail_pos(p, ret->pos, "@%s returns %d values, its signature says %d", f->name,
                   ret->n_operands, f->n_results);
  for (int i = 0; i < f->n_results; i++)
    if (!type_equal(&ret->operands[i]->type, &f->result_types[i]))
      parse_fail_pos(p, ret->pos, "result %d of @%s has type %s, its signature says %s", i,
                     f->name, type_text(p, &ret->operands[i]->type),
                     type_text(p, &f->result_types[i]));
}

static Func *parse_func(Parser *p) {
  Func *f = arena_alloc(p->a, sizeof *f);
  f->pos = lex_pos(p, p->tok.off);
  lex_next(p); /* func.func */
  f->is_public = true; /* MLIR's default visibility */
  if (accept_ident(p, "private") || accept_ident(p, "nested")) f->is_public = false;
  else accept_ident(p, "public");
  if (p->tok.kind != T_SYMBOL)
    parse_fail(p, p->tok.off, "expected the function name (@name), got %s", tok_desc(p));
  f->name = tok_name(p, &p->tok);
  lex_next(p);
  FuncArgs fa = {0};
  func_args(p, &fa);
  /* loc("leaves[0]") names an argument: resolved with the op scopes */
  f->arg_loc_names = fa.n ? arena_alloc(p->a, sizeof(const char *) * (size_t)fa.n) : NULL;
  for (int i = 0; i < fa.n; i++)
    if (fa.locs[i]) add_pending_loc(p, &f->arg_loc_names[i], fa.locs[i]);
  func_results(p, f);
  if (accept_ident(p, "attributes")) {
    NamedAttr *ignored = NULL;
    int n = 0, cap = 0;
    parse_attr_dict(p, &ignored, &n, &cap);
  }
  if (!tok_punct(p, '{'))
    parse_fail(p, p->tok.off, "expected '{' to open the body of @%s (declarations without a "
               "body are not supported), got %s", f->name, tok_desc(p));
  Region *r = parse_region(p, fa.vals, fa.n, fa.offs);
  f->body = r->blocks[0];
  f->n_args = fa.n;
  f->arg_attrs = fa.attrs;
  f->arg_n_attrs = fa.n_attrs;
  parse_opt_loc(p, NULL);
  check_func_return(p, f);
  return f;
}

/* ---- the module ------------------------------------------------------------------- */

/* A module-level op we do not use (sdy.mesh, a nested module): skipped up to
 * the end of its line, brackets balanced. */
static void skip_toplevel_op(Parser *p) {
  int depth = 0;
  lex_next(p);
  while (p->tok.kind != T_EOF) {
    if (depth == 0 && (p->tok.bol || tok_punct(p, '}'))) return;
    if (p->tok.kind == T_PUNCT) {
      char ch = p->tok.ch;
      if (ch == '(' || ch == '[' || ch == '{' || ch == '<') depth++;
      else if (ch == ')' || ch == ']' || ch == '}' || ch == '>') {
        if (--depth < 0) parse_fail(p, p->tok.off, "unbalanced '%c'", ch);
      }
    }
    lex_next(p);
  }
  if (depth) parse_fail(p, p->tok.off, "unexpected end of input inside a module-level op");
}

static bool tok_is_func(Parser *p) { return tok_ident(p, "func.func") || tok_ident(p, "func"); }

static void add_func(Parser *p, Module *m, PtrVec *funcs, Func *f, size_t off) {
  for (int i = 0; i < funcs->len; i++)
    if (strcmp(((Func *)funcs->items[i])->name, f->name) == 0)
      parse_fail(p, off, "redefinition of function @%s", f->name);
  ptrvec_push(p->a, funcs, f);
  m->funcs = (Func **)funcs->items;
  m->n_funcs = funcs->len;
}

static void parse_module_op(Parser *p, Module *m, PtrVec *funcs) {
  size_t open_off = p->tok.off;
  lex_next(p); /* module */
  if (p->tok.kind == T_SYMBOL) {
    m->name = tok_name(p, &p->tok);
    lex_next(p);
  }
  if (accept_ident(p, "attributes")) {
    int cap = 0;
    parse_attr_dict(p, &m->attrs, &m->n_attrs, &cap);
  }
  expect_punct(p, '{', "to open the module body");
  while (!tok_punct(p, '}')) {
    if (p->tok.kind == T_EOF) {
      SrcPos o = lex_pos(p, open_off);
      parse_fail(p, p->tok.off, "expected '}' to close the module opened at %d:%d, got end of "
                 "input", o.line, o.col);
    }
    size_t off = p->tok.off;
    if (tok_is_func(p)) add_func(p, m, funcs, parse_func(p), off);
    else if (p->tok.kind == T_IDENT || p->tok.kind == T_STRING || p->tok.kind == T_VALUE)
      skip_toplevel_op(p);
    else
      parse_fail(p, off, "expected a function in the module, got %s", tok_desc(p));
  }
  lex_next(p);
  parse_opt_loc(p, NULL);
}

/* {-# dialect_resources: ... #-} at the end of a file: skipped. */
static bool skip_metadata(Parser *p) {
  size_t i = p->tok.off;
  if (!(i + 2 < p->len && p->src[i] == '{' && p->src[i + 1] == '-' && p->src[i + 2] == '#'))
    return false;
  for (size_t j = i + 3; j + 2 < p->len; j++)
    if (p->src[j] == '#' && p->src[j + 1] == '-' && p->src[j + 2] == '}') {
      lex_seek(p, j + 3);
      return true;
    }
  parse_fail(p, i, "'{-#' is not closed by '#-}'");
}

/* ---- whole-file checks ---------------------------------------------------------------- */

/* Every call names a function of the module and matches its signature. */
static void check_calls(Parser *p, const Module *m) {
  for (int i = 0; i < p->calls.len; i++) {
    Op *op = p->calls.items[i];
    const Attr *callee = ir_op_attr(op, "callee");
    if (!callee || callee->kind != AK_SYMBOL)
      parse_fail_pos(p, op->pos, "%s needs a callee (@name)", op->opname);
    const Func *f = ir_find_func(m, callee->s);
    const char *err = NULL;
    if (!f) {
      err = arena_printf(p->a, "call to undefined function @%s", callee->s);
    } else if (op->n_operands != f->n_args) {
      err = arena_printf(p->a, "call to @%s passes %d arguments, the function takes %d",
                         f->name, op->n_operands, f->n_args);
    } else if (op->n_results != f->n_results) {
      err = arena_printf(p->a, "call to @%s expects %d results, the function returns %d",
                         f->name, op->n_results, f->n_results);
    } else {
      for (int k = 0; k < f->n_args && !err; k++)
        if (!type_equal(&op->operands[k]->type, &f->body->args[k]->type))
          err = arena_printf(p->a, "argument %d of the call to @%s has type %s, the function "
                             "takes %s", k, f->name, type_text(p, &op->operands[k]->type),
                             type_text(p, &f->body->args[k]->type));
      for (int k = 0; k < f->n_results && !err; k++)
        if (!type_equal(&op->results[k]->type, &f->result_types[k]))
          err = arena_printf(p->a, "result %d of the call to @%s has type %s, the function "
                             "returns %s", k, f->name, type_text(p, &op->results[k]->type),
                             type_text(p, &f->result_types[k]));
    }
    if (err) parse_fail_pos(p, op->pos, "%s", err);
  }
}

static Module *parse_file(Parser *p) {
  Module *m = arena_alloc(p->a, sizeof *m);
  PtrVec funcs = {0};
  bool have_module = false, implicit = false;
  if (p->tok.kind == T_EOF) parse_fail(p, 0, "the input is empty: expected a module");
  while (p->tok.kind != T_EOF) {
    Token next = lex_peek(p);
    bool defines = next.kind == T_PUNCT && next.ch == '=';
    if (p->tok.kind == T_HASH && defines) {
      parse_alias_def(p);
    } else if (p->tok.kind == T_BANG && defines) {
      parse_fail(p, p->tok.off, "type aliases (!name = type) are not supported");
    } else if (tok_punct(p, '{') && skip_metadata(p)) {
      continue;
    } else if (tok_ident(p, "module") && !have_module && !implicit) {
      have_module = true;
      parse_module_op(p, m, &funcs);
    } else if (tok_is_func(p) && !have_module) {
      implicit = true; /* functions without a module around them */
      size_t off = p->tok.off;
      add_func(p, m, &funcs, parse_func(p), off);
    } else if (have_module || implicit) {
      parse_fail(p, p->tok.off, "unexpected %s after the module", tok_desc(p));
    } else {
      parse_fail(p, p->tok.off, "expected a module, got %s", tok_desc(p));
    }
  }
  if (!have_module && !implicit) parse_fail(p, p->tok.off, "expected a module, got end of input");
  resolve_locs(p);
  check_calls(p, m);
  return m;
}

Module *parse_module(Ctx *c) {
  jmp_buf bail;
  Parser p;
  memset(&p, 0, sizeof p);
  if (setjmp(bail)) return NULL;
  lex_init(&p, c, &bail);
  Module *m = parse_file(&p);
  if (m) ir_count_uses(m);
  return m;
}
