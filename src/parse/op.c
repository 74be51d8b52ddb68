/* op.c - one operation, in whichever form MLIR printed it.
 *
 *   op      ::= (results '=')? (generic | pretty) loc?
 *   results ::= VALUE (':' INT)? (',' VALUE (':' INT)?)*
 *   generic ::= STRING '(' uses? ')' ('<' attr-dict '>')? ('(' region (',' region)* ')')?
 *               attr-dict? ':' function-type
 *   pretty  ::= IDENT item* attr-dict? (':' signature)?
 *   item    ::= VALUE ('[' indices ']')? | IDENT '=' value | IDENT | SYMBOL | STRING
 *             | '(' item* ')' | '<' opaque '>' | '{' region '}' | ','
 *
 * The pretty forms differ per op (StableHLO's custom assembly formats), but
 * most are a comma list of a few kinds of items, so one loop reads them all:
 * value uses, `keyword = value`, bare words (GT, FLOAT), @symbols, "strings",
 * (groups), [slices], <opaque> and attr-dicts.  Afterwards normalise() turns
 * what the pretty form said into the attributes the generic form would carry
 * (names of the StableHLO spec), so converters see one form.  reduce, while
 * and constant have syntax of their own and their own functions.
 *
 * An op we do not know still parses (generic form always, pretty form as far
 * as the item loop understands it) with kind OP_UNKNOWN: the lowering reports
 * every unsupported op at once.  A pretty op without a type signature ends at
 * the end of its line, as the MLIR printer writes one op per line.
 *
 * Types: results get the types of the signature; operand types written in
 * the signature must equal those of the values used (compared exactly).
 */
#include "parse.h"

#include <string.h>

typedef struct ResultGroup {
  const char *name; /* "%0" */
  size_t off;
  int count;        /* %0:2 defines two results */
} ResultGroup;

enum { SIG_NONE, SIG_LIST, SIG_FUNC };

/* An op under construction. */
typedef struct OpBuild {
  Op *op;
  size_t name_off;
  Value **operands;
  size_t *operand_offs;
  int n_operands, cap_operands, cap_offs;
  NamedAttr *attrs;
  int n_attrs, cap_attrs;
  Region **regions;
  int n_regions, cap_regions;
  /* the type signature */
  int sig;
  size_t sig_off;
  Type *ins, *outs; /* SIG_LIST: all types in ins */
  int n_ins, n_outs;
  /* pretty-form items waiting for normalise() */
  int n_words;        /* bare words, named "word0", "word1", ... */
  /* block arguments declared in a pretty group `(%a: T)`, for a region */
  Value **blk_args;
  size_t *blk_offs;
  int n_blk, cap_blk, cap_blk_offs;
  Block *synth; /* the body made up for reduce's `applies` form */
} OpBuild;

static void add_operand(Parser *p, OpBuild *b) {
  size_t off = p->tok.off;
  Value *v = scope_use(p);
  b->operands = parse_grow(p, b->operands, &b->cap_operands, b->n_operands, sizeof(Value *));
  b->operand_offs = parse_grow(p, b->operand_offs, &b->cap_offs, b->n_operands, sizeof(size_t));
  b->operand_offs[b->n_operands] = off;
  b->operands[b->n_operands++] = v;
}

static void add_attr(Parser *p, OpBuild *b, const char *name, Attr *value) {
  push_named(p, &b->attrs, &b->n_attrs, &b->cap_attrs, name, value);
}

static void add_region(Parser *p, OpBuild *b, Region *r) {
  b->regions = parse_grow(p, b->regions, &b->cap_regions, b->n_regions, sizeof(Region *));
  b->regions[b->n_regions++] = r;
}

static NamedAttr *find_attr(OpBuild *b, const char *name) {
  for (int i = 0; i < b->n_attrs; i++)
    if (strcmp(b->attrs[i].name, name) == 0) return &b->attrs[i];
  return NULL;
}

static void remove_attr(OpBuild *b, NamedAttr *na) {
  int i = (int)(na - b->attrs);
  memmove(&b->attrs[i], &b->attrs[i + 1], sizeof(NamedAttr) * (size_t)(b->n_attrs - i - 1));
  b->n_attrs--;
}

/* ---- signatures ------------------------------------------------------------- */

static Type *type_list(Parser *p, int *n, char close) {
  Type *types = NULL;
  int cap = 0;
  *n = 0;
  if (close && tok_punct(p, close)) return NULL;
  for (;;) {
    types = parse_grow(p, types, &cap, *n, sizeof(Type));
    types[(*n)++] = parse_type(p);
    if (!accept_punct(p, ',')) return types;
  }
}

/* '->' then '(' types? ')' or one type. */
static void result_types(Parser *p, OpBuild *b) {
  if (p->tok.kind != T_ARROW)
    parse_fail(p, p->tok.off, "expected '->' in the type signature, got %s", tok_desc(p));
  lex_next(p);
  if (accept_punct(p, '(')) {
    b->outs = type_list(p, &b->n_outs, ')');
    expect_punct(p, ')', "to close the result types");
  } else {
    b->outs = arena_alloc(p->a, sizeof(Type));
    b->outs[0] = parse_type(p);
    b->n_outs = 1;
  }
}

/* function-type ::= '(' types? ')' '->' results   (tok at '(') */
static void function_type(Parser *p, OpBuild *b) {
  b->sig = SIG_FUNC;
  b->sig_off = p->tok.off;
  expect_punct(p, '(', "to open the operand types");
  b->ins = type_list(p, &b->n_ins, ')');
  expect_punct(p, ')', "to close the operand types");
  result_types(p, b);
}

/* signature ::= function-type | type (',' type)* ('->' results)?   (after ':') */
static void pretty_signature(Parser *p, OpBuild *b) {
  if (tok_punct(p, '(')) {
    function_type(p, b);
    return;
  }
  b->sig = SIG_LIST;
  b->sig_off = p->tok.off;
  b->ins = type_list(p, &b->n_ins, 0);
  if (p->tok.kind == T_ARROW) { /* chlo's `T -> T` */
    b->sig = SIG_FUNC;
    result_types(p, b);
  }
}

static void check_operand(Parser *p, OpBuild *b, int i, const Type *want) {
  const Type *have = &b->operands[i]->type;
  if (!type_equal(have, want))
    parse_fail(p, b->operand_offs[i], "operand %d of %s has type %s, expected %s", i,
               b->op->opname, type_text(p, have), type_text(p, want));
}

/* The real type of a complex tensor type: complex<f32> -> f32. */
static Type real_type(const Type *t) {
  Type r = *t;
  r.et = t->et == ET_C128 ? ET_F64 : ET_F32;
  return r;
}

/* Gives the results their types and checks the operands' types. */
static Type *assign_types(Parser *p, OpBuild *b, int n_results) {
  Op *op = b->op;
  const char *name = op->opname;
  bool known = op->kind != OP_UNKNOWN;
  Type *res = n_results ? arena_alloc(p->a, sizeof(Type) * (size_t)n_results) : NULL;
  if (b->sig == SIG_NONE) {
    if (n_results && known)
      parse_fail(p, b->name_off, "%s defines results but has no type signature", name);
    for (int i = 0; i < n_results; i++) res[i] = (Type){.kind = TK_OTHER};
    return res;
  }
  if (b->sig == SIG_FUNC) {
    if (b->n_ins != b->n_operands)
      parse_fail(p, b->sig_off, "%s has %d operands but its type signature lists %d", name,
                 b->n_operands, b->n_ins);
    if (b->n_outs != n_results)
      parse_fail(p, b->sig_off, "%s defines %d results but its type signature has %d", name,
                 n_results, b->n_outs);
    for (int i = 0; i < b->n_operands; i++) check_operand(p, b, i, &b->ins[i]);
    if (n_results) memcpy(res, b->outs, sizeof(Type) * (size_t)n_results);
    return res;
  }
  /* SIG_LIST: what the types stand for depends on the op's printer */
  int n = b->n_ins;
  Type *t = b->ins;
  if (n < n_results)
    parse_fail(p, b->sig_off, "%s defines %d results but its type signature has %d", name,
               n_results, n);
  if (op->kind == OP_TUPLE && n == 1 && n_results == 1) { /* the tuple type only */
    res[0] = t[0];
  } else if (op->kind == OP_COMPLEX && n == 1 && n_results == 1) { /* the complex result */
    Type real = real_type(&t[0]);
    for (int i = 0; i < b->n_operands; i++) check_operand(p, b, i, &real);
    res[0] = t[0];
  } else if (op->kind == OP_SELECT && n == 2 && n_results == 1) { /* pred, result */
    for (int i = 0; i < b->n_operands; i++) check_operand(p, b, i, &t[i == 0 ? 0 : 1]);
    res[0] = t[1];
  } else if (n == 1 && n_results <= 1) { /* one type for every operand and result */
    if (known)
      for (int i = 0; i < b->n_operands; i++) check_operand(p, b, i, &t[0]);
    if (n_results) res[0] = t[0];
  } else if (n_results == 0 || (n == b->n_operands && n == n_results)) { /* pairwise */
    if (n != b->n_operands)
      parse_fail(p, b->sig_off, "%s has %d operands but its type list has %d types", name,
                 b->n_operands, n);
    if (known)
      for (int i = 0; i < n; i++) check_operand(p, b, i, &t[i]);
    if (n_results) memcpy(res, t, sizeof(Type) * (size_t)n_results);
  } else { /* results are the last types */
    if (known)
      parse_fail(p, b->sig_off, "cannot match the type list of %s (%d types) to its %d operands "
                 "and %d results", name, n, b->n_operands, n_results);
    memcpy(res, t + n - n_results, sizeof(Type) * (size_t)n_results);
  }
  return res;
}

/* ---- pretty items ------------------------------------------------------------- */

/* After '{': does a region follow (ops), or an attribute dictionary? */
static bool brace_starts_region(Parser *p) {
  Token t1 = lex_peek(p);
  if (t1.kind == T_VALUE || t1.kind == T_CARET) return true;
  if (t1.kind != T_IDENT && t1.kind != T_STRING) return false;
  size_t save = p->cur;
  Token brace = p->tok;
  lex_next(p);
  lex_next(p);
  Token t2 = p->tok;
  p->tok = brace;
  p->cur = save;
  if (t1.kind == T_STRING) return t2.kind == T_PUNCT && t2.ch == '(';
  return !(t2.kind == T_PUNCT && (t2.ch == '=' || t2.ch == ',' || t2.ch == '}'));
}

static bool at_op_end(Parser *p) {
  if (p->tok.kind == T_EOF || tok_punct(p, ':') || tok_punct(p, '}') || p->tok.bol)
    return true;
  if (tok_ident(p, "loc")) {
    Token next = lex_peek(p);
    return next.kind == T_PUNCT && next.ch == '(';
  }
  return false;
}

/* [1:3, 0:4:2] or [0]: each entry start(:limit(:stride)?)? */
static void bracket_indices(Parser *p, OpBuild *b) {
  size_t off = p->tok.off;
  lex_next(p);
  int cap = 0, n = 0, parts = 0;
  int64_t (*e)[3] = NULL;
  while (!tok_punct(p, ']')) {
    e = parse_grow(p, e, &cap, n, sizeof *e);
    int k = 0;
    e[n][1] = e[n][2] = -1;
    for (;;) {
      if (p->tok.kind != T_INT)
        parse_fail(p, p->tok.off, "expected an integer index, got %s", tok_desc(p));
      bool neg;
      uint64_t v;
      tok_int(p, &p->tok, &neg, &v);
      if (neg || v > (uint64_t)INT64_MAX) parse_fail(p, p->tok.off, "bad index");
      e[n][k++] = (int64_t)v;
      lex_next(p);
      if (k == 3 || !accept_punct(p, ':')) break;
    }
    if (parts && k != parts && !(parts >= 2 && k >= 2))
      parse_fail(p, p->tok.off, "mixed index forms in [...]");
    if (k > parts) parts = k;
    n++;
    if (!accept_punct(p, ',')) break;
  }
  expect_punct(p, ']', "to close the indices");
  if (parts >= 2 || b->op->kind == OP_SLICE) { /* start_indices, limit_indices, strides */
    static const char *const names[3] = {"start_indices", "limit_indices", "strides"};
    for (int k = 0; k < 3; k++) {
      Attr **elems = n ? arena_alloc(p->a, sizeof(Attr *) * (size_t)n) : NULL;
      for (int i = 0; i < n; i++) {
        int64_t v = e[i][k];
        if (k == 1 && v < 0) parse_fail(p, off, "a slice needs start:limit");
        elems[i] = attr_int(p, k == 2 && v < 0 ? 1 : v, off);
      }
      add_attr(p, b, names[k], attr_array(p, elems, n, off));
    }
  } else if (b->op->kind == OP_GET_TUPLE_ELEMENT && n == 1) {
    add_attr(p, b, "index", attr_int(p, e[0][0], off));
  } else {
    Attr **elems = n ? arena_alloc(p->a, sizeof(Attr *) * (size_t)n) : NULL;
    for (int i = 0; i < n; i++) elems[i] = attr_int(p, e[i][0], off);
    add_attr(p, b, "indices", attr_array(p, elems, n, off));
  }
}

/* `keyword = value`, with `[a] x [b]` pairs (dot_general) and the
 * convolution's dim_numbers syntax. */
static void keyword_item(Parser *p, OpBuild *b) {
  Token key = p->tok;
  char *name = tok_name(p, &key);
  lex_next(p);
  expect_punct(p, '=', "after the keyword");
  Attr *value;
  if (strcmp(name, "dim_numbers") == 0 && tok_punct(p, '[')) {
    value = parse_conv_dims(p);
  } else {
    value = parse_attr_value(p, 0);
    if (value->kind == AK_ARRAY && tok_ident(p, "x")) {
      lex_next(p);
      Attr **pair = arena_alloc(p->a, 2 * sizeof(Attr *));
      pair[0] = value;
      if (!tok_punct(p, '['))
        parse_fail(p, p->tok.off, "expected '[' after 'x', got %s", tok_desc(p));
      pair[1] = parse_attr_value(p, 0);
      value = attr_array(p, pair, 2, key.off);
    }
  }
  add_attr(p, b, name, value);
}

static void block_arg_decl(Parser *p, OpBuild *b) {
  Token v = p->tok;
  lex_next(p);
  expect_punct(p, ':', "after the block argument");
  Type t = parse_type(p);
  parse_opt_loc(p, NULL);
  b->blk_args = parse_grow(p, b->blk_args, &b->cap_blk, b->n_blk, sizeof(Value *));
  b->blk_offs = parse_grow(p, b->blk_offs, &b->cap_blk_offs, b->n_blk, sizeof(size_t));
  b->blk_offs[b->n_blk] = v.off;
  b->blk_args[b->n_blk] = new_value(p, tok_name(p, &v), t, NULL, b->n_blk);
  b->n_blk++;
}

static void pretty_items(Parser *p, OpBuild *b, bool in_group);

static void pretty_item(Parser *p, OpBuild *b, bool in_group) {
  Token t = p->tok;
  switch (t.kind) {
  case T_VALUE:
    if (in_group) {
      Token next = lex_peek(p);
      if (next.kind == T_PUNCT && next.ch == ':') {
        block_arg_decl(p, b);
        return;
      }
    }
    add_operand(p, b);
    if (tok_punct(p, '[') && !p->tok.bol) bracket_indices(p, b);
    return;
  case T_IDENT: {
    Token next = lex_peek(p);
    if (next.kind == T_PUNCT && next.ch == '=') {
      keyword_item(p, b);
    } else { /* a bare word such as GT or FLOAT */
      Attr *a = new_attr(p, AK_ENUM, t.off);
      a->s = tok_name(p, &t);
      add_attr(p, b, arena_printf(p->a, "word%d", b->n_words++), a);
      lex_next(p);
    }
    return;
  }
  case T_SYMBOL: case T_STRING: {
    Attr *a = parse_attr_value(p, 0);
    add_attr(p, b, t.kind == T_SYMBOL ? "symbol" : "string", a);
    return;
  }
  case T_PUNCT:
    if (t.ch == '(') {
      lex_next(p);
      parse_enter(p);
      pretty_items(p, b, true);
      parse_leave(p);
      expect_punct(p, ')', "to close the group");
      return;
    }
    if (t.ch == '<') {
      add_attr(p, b, "opaque", parse_attr_value(p, 0));
      return;
    }
    if (t.ch == '[') {
      bracket_indices(p, b);
      return;
    }
    if (t.ch == '{' && brace_starts_region(p)) {
      add_region(p, b, parse_region(p, b->blk_args, b->n_blk, b->blk_offs));
      b->n_blk = 0;
      return;
    }
    break;
  default:
    break;
  }
  parse_fail(p, t.off, "unexpected %s in %s", tok_desc(p), b->op->opname);
}

static void pretty_items(Parser *p, OpBuild *b, bool in_group) {
  for (;;) {
    if (in_group ? tok_punct(p, ')') : at_op_end(p)) return;
    if (!in_group && tok_punct(p, '{') && !brace_starts_region(p)) return;
    if (accept_punct(p, ',')) continue;
    if (in_group && p->tok.kind == T_EOF)
      parse_fail(p, p->tok.off, "expected ')' to close the group, got end of input");
    pretty_item(p, b, in_group);
  }
}

/* ---- normalisation to the generic attribute names ---------------------------------- */

/* The attributes the pretty form spells differently: ATTR_RENAME of ir/ops.def. */
static const struct {
  OpKind kind;
  const char *pretty, *spec;
} renames[] = {
#define ATTR_RENAME(id, pretty, spec) {OP_##id, pretty, spec},
#include "ir/ops.def"
#undef ATTR_RENAME
};

/* pad = [[1, 1], [1, 1]] -> dense<[[1, 1], [1, 1]]> : tensor<2x2xi64>, the
 * form of the generic convolution and reduce_window. */
static Attr *padding_as_dense(Parser *p, Attr *a) {
  if (a->kind != AK_ARRAY) return a;
  int n = a->n_elems;
  for (int i = 0; i < n; i++) {
    Attr *row = a->elems[i];
    if (row->kind != AK_ARRAY || row->n_elems != 2 || row->elems[0]->kind != AK_INT ||
        row->elems[1]->kind != AK_INT)
      return a;
  }
  uint8_t *bytes = arena_alloc(p->a, (size_t)n * 16 + 1);
  for (int i = 0; i < n; i++)
    for (int k = 0; k < 2; k++) {
      uint64_t v = (uint64_t)a->elems[i]->elems[k]->i;
      for (int j = 0; j < 8; j++) bytes[(size_t)(2 * i + k) * 8 + (size_t)j] = (uint8_t)(v >> (8 * j));
    }
  int64_t *dims = arena_alloc(p->a, 2 * sizeof(int64_t));
  dims[0] = n;
  dims[1] = 2;
  Dense *d = arena_alloc(p->a, sizeof *d);
  d->et = ET_I64;
  d->numel = 2 * (int64_t)n;
  d->data = (Data){DATA_RAW, bytes, (size_t)n * 16};
  Attr *out = new_attr(p, AK_DENSE, 0);
  out->pos = a->pos;
  out->type = (Type){.kind = TK_TENSOR, .et = ET_I64, .rank = 2, .dims = dims};
  out->dense = d;
  return out;
}

static void normalise_conv_window(Parser *p, OpBuild *b) {
  NamedAttr *w = find_attr(b, "window");
  if (!w || w->value->kind != AK_DICT) return;
  static const struct { const char *pretty, *spec; } fields[] = {
      {"stride", "window_strides"}, {"pad", "padding"}, {"lhs_dilate", "lhs_dilation"},
      {"rhs_dilate", "rhs_dilation"}, {"reverse", "window_reversal"}};
  Attr *dict = w->value;
  remove_attr(b, w);
  for (int i = 0; i < dict->n_fields; i++) {
    const char *name = dict->fields[i].name;
    Attr *value = dict->fields[i].value;
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++)
      if (strcmp(name, fields[k].pretty) == 0) name = fields[k].spec;
    if (strcmp(name, "padding") == 0) value = padding_as_dense(p, value);
    add_attr(p, b, name, value);
  }
}

static Attr *pair_side(Parser *p, NamedAttr *pair, int side, size_t off) {
  if (!pair) return attr_array(p, NULL, 0, off);
  Attr *a = pair->value;
  if (a->kind != AK_ARRAY || a->n_elems != 2 || a->elems[side]->kind != AK_ARRAY)
    parse_fail(p, off, "expected `%s = [...] x [...]`", pair->name);
  return a->elems[side];
}

static void normalise_dot_general(Parser *p, OpBuild *b) {
  NamedAttr *batch = find_attr(b, "batching_dims");
  NamedAttr *contract = find_attr(b, "contracting_dims");
  if (find_attr(b, "dot_dimension_numbers")) return; /* already generic */
  size_t off = b->name_off;
  Attr *d = new_attr(p, AK_DICT, off);
  d->s = "stablehlo.dot";
  int cap = 0;
  push_named(p, &d->fields, &d->n_fields, &cap, "lhs_batching_dimensions", pair_side(p, batch, 0, off));
  push_named(p, &d->fields, &d->n_fields, &cap, "rhs_batching_dimensions", pair_side(p, batch, 1, off));
  push_named(p, &d->fields, &d->n_fields, &cap, "lhs_contracting_dimensions", pair_side(p, contract, 0, off));
  push_named(p, &d->fields, &d->n_fields, &cap, "rhs_contracting_dimensions", pair_side(p, contract, 1, off));
  if (batch) remove_attr(b, batch);
  if ((contract = find_attr(b, "contracting_dims")) != NULL) remove_attr(b, contract);
  add_attr(p, b, "dot_dimension_numbers", d);
}

/* format = e5m2 -> exponent_bits = 5, mantissa_bits = 2 */
static void normalise_reduce_precision(Parser *p, OpBuild *b) {
  NamedAttr *f = find_attr(b, "format");
  if (!f) return;
  Attr *a = f->value;
  const char *s = a->kind == AK_ENUM ? a->s : "";
  int64_t e = 0, m = 0;
  const char *q = s;
  bool ok = *q++ == 'e' && *q >= '0' && *q <= '9';
  while (ok && *q >= '0' && *q <= '9' && e < 1000) e = e * 10 + (*q++ - '0');
  ok = ok && *q++ == 'm' && *q >= '0' && *q <= '9';
  while (ok && *q >= '0' && *q <= '9' && m < 1000) m = m * 10 + (*q++ - '0');
  if (!ok || *q)
    parse_fail(p, p->tok.off, "expected a format like e5m2 in reduce_precision");
  size_t off = b->name_off;
  remove_attr(b, f);
  Attr *ea = attr_int(p, e, off), *ma = attr_int(p, m, off);
  ea->pos = ma->pos = a->pos;
  ea->type = ma->type = (Type){.kind = TK_OTHER, .et = ET_I32};
  add_attr(p, b, "exponent_bits", ea);
  add_attr(p, b, "mantissa_bits", ma);
}

static void normalise(Parser *p, OpBuild *b) {
  OpKind kind = b->op->kind;
  for (size_t i = 0; i < sizeof renames / sizeof renames[0]; i++) {
    if (renames[i].kind != kind) continue;
    NamedAttr *na = find_attr(b, renames[i].pretty);
    if (!na) continue;
    na->name = renames[i].spec;
    if (kind == OP_CUSTOM_CALL && na->value->kind == AK_SYMBOL) {
      Attr *s = new_attr(p, AK_STRING, 0);
      s->pos = na->value->pos;
      s->s = na->value->s;
      s->len = strlen(s->s);
      na->value = s;
    }
  }
  switch (kind) {
  case OP_CONVOLUTION: normalise_conv_window(p, b); break;
  case OP_DOT_GENERAL: normalise_dot_general(p, b); break;
  case OP_REDUCE_PRECISION: normalise_reduce_precision(p, b); break;
  default: break;
  }
}

/* ---- ops with syntax of their own ------------------------------------------------- */

/* constant ::= attr-dict? attr-value   (the value carries the result type) */
static void pretty_constant(Parser *p, OpBuild *b) {
  if (tok_punct(p, '{')) parse_attr_dict(p, &b->attrs, &b->n_attrs, &b->cap_attrs);
  size_t off = p->tok.off;
  Attr *value = parse_attr_value(p, ATTR_TYPED);
  if (value->type.kind != TK_TENSOR)
    parse_fail(p, off, "stablehlo.constant needs a value with a tensor type");
  add_attr(p, b, "value", value);
  b->sig = SIG_LIST;
  b->sig_off = off;
  b->ins = arena_alloc(p->a, sizeof(Type));
  b->ins[0] = value->type;
  b->n_ins = 1;
}

static Value *region_arg(Parser *p, Token *name, Type t, int index) {
  return new_value(p, tok_name(p, name), t, NULL, index);
}

/* The body of `applies stablehlo.add`: what the generic form would contain,
 *   ^bb0(%lhs0..., %rhs0...): %r_i = <op> %lhs_i, %rhs_i; stablehlo.return %r...
 * with one op per input, so converters only ever see regions. */
static Region *synth_reducer(Parser *p, OpBuild *b, int n, Token opname) {
  Block *blk = arena_alloc(p->a, sizeof *blk);
  blk->n_args = 2 * n;
  blk->args = arena_alloc(p->a, sizeof(Value *) * (size_t)(2 * n));
  for (int i = 0; i < 2 * n; i++) {
    Type t = b->operands[n + i % n]->type; /* the init values' types */
    blk->args[i] = new_value(p, arena_printf(p->a, "%%%s%d", i < n ? "lhs" : "rhs", i % n), t,
                             NULL, i);
  }
  blk->ops = arena_alloc(p->a, sizeof(Op *) * (size_t)(n + 1));
  blk->n_ops = n + 1;
  const char *name = tok_name(p, &opname);
  Value **rets = arena_alloc(p->a, sizeof(Value *) * (size_t)n);
  for (int i = 0; i < n; i++) {
    Op *op = arena_alloc(p->a, sizeof *op);
    op->kind = op_lookup(name, strlen(name));
    op->opname = name;
    op->pos = lex_pos(p, opname.off);
    op->n_operands = 2;
    op->operands = arena_alloc(p->a, 2 * sizeof(Value *));
    op->operands[0] = blk->args[i];
    op->operands[1] = blk->args[n + i];
    op->n_results = 1;
    op->results = arena_alloc(p->a, sizeof(Value *));
    op->results[0] = rets[i] =
        new_value(p, arena_printf(p->a, "%%reduced%d", i), blk->args[i]->type, op, 0);
    blk->ops[i] = op;
  }
  Op *ret = arena_alloc(p->a, sizeof *ret);
  ret->kind = OP_RETURN;
  ret->opname = "stablehlo.return";
  ret->pos = lex_pos(p, opname.off);
  ret->operands = rets;
  ret->n_operands = n;
  blk->ops[n] = ret;
  Region *r = arena_alloc(p->a, sizeof *r);
  r->blocks = arena_alloc(p->a, sizeof(Block *));
  r->blocks[0] = blk;
  r->n_blocks = 1;
  return r;
}

/* reduce ::= '(' VALUE 'init' ':' VALUE ')' (',' '(' ... ')')*
 *            ('applies' OPNAME)? 'across' 'dimensions' '=' '[' INT* ']' attr-dict?
 *            ':' function-type
 *            ('reducer' ('(' VALUE ':' type ',' VALUE ':' type ')')+ region)?
 *
 * Operands are the inputs, then the init values (the spec's order).  The
 * pretty reducer lists its block arguments in pairs, (lhs_i, rhs_i) for input
 * i; the region takes them in the spec's order [lhs_0..lhs_n-1, rhs_0..rhs_n-1]
 * (accumulators first, then the elements), as the generic form has them. */
static void pretty_reduce(Parser *p, OpBuild *b) {
  Value **inits = NULL;
  size_t *init_offs = NULL;
  int n = 0, cap = 0, cap_offs = 0;
  do {
    expect_punct(p, '(', "before a reduce input");
    if (p->tok.kind != T_VALUE)
      parse_fail(p, p->tok.off, "expected a value to reduce, got %s", tok_desc(p));
    add_operand(p, b);
    if (!accept_ident(p, "init"))
      parse_fail(p, p->tok.off, "expected 'init:' in reduce, got %s", tok_desc(p));
    expect_punct(p, ':', "after 'init'");
    if (p->tok.kind != T_VALUE)
      parse_fail(p, p->tok.off, "expected the init value, got %s", tok_desc(p));
    init_offs = parse_grow(p, init_offs, &cap_offs, n, sizeof(size_t));
    init_offs[n] = p->tok.off;
    inits = parse_grow(p, inits, &cap, n, sizeof(Value *));
    inits[n++] = scope_use(p);
    expect_punct(p, ')', "after the init value");
  } while (accept_punct(p, ','));
  for (int i = 0; i < n; i++) { /* inits after the inputs */
    b->operands = parse_grow(p, b->operands, &b->cap_operands, b->n_operands, sizeof(Value *));
    b->operand_offs = parse_grow(p, b->operand_offs, &b->cap_offs, b->n_operands, sizeof(size_t));
    b->operand_offs[b->n_operands] = init_offs[i];
    b->operands[b->n_operands++] = inits[i];
  }
  Token applied = {0};
  bool applies = accept_ident(p, "applies");
  if (applies) {
    applied = p->tok;
    if (applied.kind != T_IDENT)
      parse_fail(p, p->tok.off, "expected an op name after 'applies', got %s", tok_desc(p));
    lex_next(p);
  }
  if (!accept_ident(p, "across") || !accept_ident(p, "dimensions"))
    parse_fail(p, p->tok.off, "expected 'across dimensions = [...]' in reduce, got %s",
               tok_desc(p));
  size_t dims_off = p->tok.off;
  expect_punct(p, '=', "after 'dimensions'");
  if (!tok_punct(p, '['))
    parse_fail(p, p->tok.off, "expected '[' after 'dimensions =', got %s", tok_desc(p));
  Attr *dims = parse_attr_value(p, 0);
  dims->pos = lex_pos(p, dims_off);
  add_attr(p, b, "dimensions", dims);
  if (tok_punct(p, '{')) parse_attr_dict(p, &b->attrs, &b->n_attrs, &b->cap_attrs);
  expect_punct(p, ':', "before the type signature of reduce");
  pretty_signature(p, b);
  if (applies) {
    Region *r = synth_reducer(p, b, n, applied);
    b->synth = r->blocks[0];
    add_region(p, b, r);
    return;
  }
  if (!accept_ident(p, "reducer"))
    parse_fail(p, p->tok.off, "expected 'applies' or 'reducer' in reduce, got %s", tok_desc(p));
  Value **args = arena_alloc(p->a, sizeof(Value *) * (size_t)(2 * n));
  size_t *offs = arena_alloc(p->a, sizeof(size_t) * (size_t)(2 * n));
  for (int i = 0; i < n; i++) {
    expect_punct(p, '(', "before a pair of reducer arguments");
    for (int k = 0; k < 2; k++) {
      if (k) expect_punct(p, ',', "between reducer arguments");
      Token v = p->tok;
      if (v.kind != T_VALUE)
        parse_fail(p, v.off, "expected a reducer argument, got %s", tok_desc(p));
      lex_next(p);
      expect_punct(p, ':', "after the reducer argument");
      Type t = parse_type(p);
      parse_opt_loc(p, NULL);
      int slot = k * n + i;
      args[slot] = region_arg(p, &v, t, slot);
      offs[slot] = v.off;
    }
    expect_punct(p, ')', "after a pair of reducer arguments");
  }
  if (!tok_punct(p, '{'))
    parse_fail(p, p->tok.off, "expected '{' to open the reducer body, got %s", tok_desc(p));
  add_region(p, b, parse_region(p, args, 2 * n, offs));
}

/* while ::= '(' (VALUE '=' VALUE (',' VALUE '=' VALUE)*)? ')' ':' types
 *           ('attributes' attr-dict)? 'cond' region 'do' region
 * Both regions take the iteration values (%iterArg...) as block arguments;
 * regions[0] is cond, regions[1] the body. */
static void pretty_while(Parser *p, OpBuild *b) {
  Token *names = NULL;
  int n = 0, cap = 0;
  expect_punct(p, '(', "after stablehlo.while");
  while (!tok_punct(p, ')')) {
    if (p->tok.kind != T_VALUE)
      parse_fail(p, p->tok.off, "expected an iteration value, got %s", tok_desc(p));
    names = parse_grow(p, names, &cap, n, sizeof(Token));
    names[n++] = p->tok;
    lex_next(p);
    expect_punct(p, '=', "after the iteration value");
    add_operand(p, b);
    if (!accept_punct(p, ',')) break;
  }
  expect_punct(p, ')', "to close the iteration values");
  expect_punct(p, ':', "before the types of stablehlo.while");
  b->sig = SIG_LIST;
  b->sig_off = p->tok.off;
  if (!tok_ident(p, "cond")) b->ins = type_list(p, &b->n_ins, 0);
  if (b->n_ins != n)
    parse_fail(p, b->sig_off, "stablehlo.while has %d iteration values but %d types", n,
               b->n_ins);
  if (accept_ident(p, "attributes") || tok_punct(p, '{'))
    parse_attr_dict(p, &b->attrs, &b->n_attrs, &b->cap_attrs);
  for (int r = 0; r < 2; r++) {
    if (!accept_ident(p, r == 0 ? "cond" : "do"))
      parse_fail(p, p->tok.off, "expected '%s' in stablehlo.while, got %s", r == 0 ? "cond" : "do",
                 tok_desc(p));
    Value **args = n ? arena_alloc(p->a, sizeof(Value *) * (size_t)n) : NULL;
    size_t *offs = n ? arena_alloc(p->a, sizeof(size_t) * (size_t)n) : NULL;
    for (int i = 0; i < n; i++) {
      args[i] = region_arg(p, &names[i], b->ins[i], i);
      offs[i] = names[i].off;
    }
    if (!tok_punct(p, '{'))
      parse_fail(p, p->tok.off, "expected '{' to open a region of stablehlo.while, got %s",
                 tok_desc(p));
    add_region(p, b, parse_region(p, args, n, offs));
  }
}

/* ---- the generic form ---------------------------------------------------------------- */

static void generic_op(Parser *p, OpBuild *b) {
  expect_punct(p, '(', "to open the operands of a generic op");
  while (!tok_punct(p, ')')) {
    if (p->tok.kind != T_VALUE)
      parse_fail(p, p->tok.off, "expected an operand, got %s", tok_desc(p));
    add_operand(p, b);
    if (!accept_punct(p, ',')) break;
  }
  expect_punct(p, ')', "to close the operands");
  if (tok_punct(p, '['))
    parse_fail(p, p->tok.off, "ops with block successors are not supported");
  if (accept_punct(p, '<')) { /* properties */
    if (!tok_punct(p, '{'))
      parse_fail(p, p->tok.off, "expected '{' after '<' (properties), got %s", tok_desc(p));
    parse_attr_dict(p, &b->attrs, &b->n_attrs, &b->cap_attrs);
    expect_punct(p, '>', "to close the properties");
  }
  if (accept_punct(p, '(')) { /* regions */
    parse_enter(p);
    for (;;) {
      if (!tok_punct(p, '{'))
        parse_fail(p, p->tok.off, "expected '{' to open a region, got %s", tok_desc(p));
      add_region(p, b, parse_region(p, NULL, 0, NULL));
      if (!accept_punct(p, ',')) break;
    }
    parse_leave(p);
    expect_punct(p, ')', "to close the regions");
  }
  if (tok_punct(p, '{')) parse_attr_dict(p, &b->attrs, &b->n_attrs, &b->cap_attrs);
  expect_punct(p, ':', "before the type of a generic op");
  if (!tok_punct(p, '('))
    parse_fail(p, p->tok.off, "expected a function type such as (tensor<f32>) -> tensor<f32>, "
               "got %s", tok_desc(p));
  function_type(p, b);
}

/* ---- one op ----------------------------------------------------------------------- */

static ResultGroup *result_groups(Parser *p, int *n_groups, int *n_results) {
  ResultGroup *g = NULL;
  int cap = 0;
  *n_groups = *n_results = 0;
  while (p->tok.kind == T_VALUE) {
    Token t = p->tok;
    if (memchr(tok_ptr(p, &t), '#', t.len))
      parse_fail(p, t.off, "a result name cannot have a '#' suffix");
    int count = 1;
    lex_next(p);
    if (accept_punct(p, ':')) {
      Token c = p->tok;
      bool neg;
      uint64_t v = 0;
      if (c.kind == T_INT) tok_int(p, &c, &neg, &v);
      if (c.kind != T_INT || neg || v < 1 || v > 65536)
        parse_fail(p, c.off, "expected a result count (1 to 65536) after ':'");
      count = (int)v;
      lex_next(p);
    }
    g = parse_grow(p, g, &cap, *n_groups, sizeof *g);
    g[(*n_groups)++] = (ResultGroup){arena_strndup(p->a, tok_ptr(p, &t), t.len), t.off, count};
    *n_results += count;
    if (*n_results > 65536) parse_fail(p, t.off, "too many results");
    if (!accept_punct(p, ',')) break;
    if (p->tok.kind != T_VALUE)
      parse_fail(p, p->tok.off, "expected a result name after ',', got %s", tok_desc(p));
  }
  if (*n_groups) expect_punct(p, '=', "after the result names");
  return g;
}

void parse_op(Parser *p, PtrVec *ops) {
  int n_groups, n_results;
  ResultGroup *groups = result_groups(p, &n_groups, &n_results);
  OpBuild b = {0};
  Op *op = b.op = arena_alloc(p->a, sizeof *op);
  Token name = p->tok;
  b.name_off = name.off;
  op->pos = lex_pos(p, name.off);
  if (name.kind == T_STRING) {
    op->opname = tok_string(p, &name, NULL);
    op->kind = op_lookup(op->opname, strlen(op->opname));
    lex_next(p);
    generic_op(p, &b);
  } else if (name.kind == T_IDENT) {
    op->opname = tok_name(p, &name);
    op->kind = op_lookup(op->opname, name.len);
    lex_next(p);
    if (op->kind == OP_REDUCE && tok_punct(p, '(')) {
      pretty_reduce(p, &b);
    } else if (op->kind == OP_WHILE && tok_punct(p, '(')) {
      pretty_while(p, &b);
    } else if (op->kind == OP_CONSTANT && !at_op_end(p)) {
      pretty_constant(p, &b);
    } else {
      pretty_items(p, &b, false);
      if (tok_punct(p, '{')) parse_attr_dict(p, &b.attrs, &b.n_attrs, &b.cap_attrs);
      if (accept_punct(p, ':')) pretty_signature(p, &b);
      normalise(p, &b);
    }
  } else {
    parse_fail(p, name.off, "expected an operation, got %s", tok_desc(p));
  }
  Type *types = assign_types(p, &b, n_results);
  op->operands = b.operands;
  op->n_operands = b.n_operands;
  op->attrs = b.attrs;
  op->n_attrs = b.n_attrs;
  op->regions = b.regions;
  op->n_regions = b.n_regions;
  op->n_results = n_results;
  op->results = n_results ? arena_alloc(p->a, sizeof(Value *) * (size_t)n_results) : NULL;
  Loc *loc = parse_opt_loc_node(p);
  if (loc) {
    add_pending_op_loc(p, op, loc);
    /* the body made up for `applies` shares the reduce's location */
    for (int i = 0; b.synth && i < b.synth->n_ops; i++)
      add_pending_op_loc(p, b.synth->ops[i], loc);
  }
  int k = 0;
  for (int g = 0; g < n_groups; g++) {
    Value **vals = &op->results[k];
    for (int i = 0; i < groups[g].count; i++, k++) {
      const char *vname = groups[g].count == 1
                              ? groups[g].name
                              : arena_printf(p->a, "%s#%d", groups[g].name, i);
      op->results[k] = new_value(p, vname, types[k], op, k);
    }
    scope_define(p, groups[g].name, strlen(groups[g].name), vals, groups[g].count, groups[g].off);
  }
  if (op->kind == OP_CALL || op->kind == OP_CALL_SHORT) ptrvec_push(p->a, &p->calls, op);
  ptrvec_push(p->a, ops, op);
}
