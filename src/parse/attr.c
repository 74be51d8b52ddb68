/* attr.c - types, attribute values, attribute dicts and locations.
 *
 * Types are scanned character by character rather than from tokens, because
 * a shape like 4x?x10xf32 does not split into MLIR tokens the way it reads;
 * parse_type starts at the current token and resumes the lexer behind the
 * type.
 *
 * Attribute values become Attr (ir/ir.h).  The StableHLO enum attributes
 * (#stablehlo<comparison_direction GT>) become AK_ENUM "GT", the struct-like
 * ones (#stablehlo.dot<...>, #stablehlo.gather<...>, #stablehlo.conv<...>)
 * AK_DICT with .s naming them, and whatever else hides in <...> is kept as
 * AK_OPAQUE text, so an attribute we do not understand never stops a parse.
 */
#include "parse.h"

#include <math.h>
#include <string.h>

/* ---- types --------------------------------------------------------------- */

static void skip_spaces(Parser *p, size_t *i) {
  while (*i < p->len && (p->src[*i] == ' ' || p->src[*i] == '\t' ||
                         p->src[*i] == '\n' || p->src[*i] == '\r'))
    (*i)++;
}

static size_t scan_word(Parser *p, size_t i) {
  while (i < p->len && is_ident_char((unsigned char)p->src[i])) i++;
  return i;
}

static bool at_char(Parser *p, size_t i, char ch) { return i < p->len && p->src[i] == ch; }

static void expect_char(Parser *p, size_t *i, char ch, const char *context) {
  skip_spaces(p, i);
  if (!at_char(p, *i, ch)) {
    if (*i >= p->len) parse_fail(p, *i, "expected '%c' %s, got end of input", ch, context);
    parse_fail(p, *i, "expected '%c' %s", ch, context);
  }
  (*i)++;
}

/* Skips a balanced <...>, (...), [...] or {...} starting at *i (at the
 * opening bracket), strings included, '->' not counted as a closer. */
static void skip_balanced(Parser *p, size_t *i) {
  char stack[PARSE_MAX_DEPTH];
  int depth = 0;
  size_t start = *i;
  while (*i < p->len) {
    char ch = p->src[*i];
    if (ch == '"') {
      lex_seek(p, *i); /* the lexer knows string syntax */
      *i = p->tok.off + p->tok.len;
      continue;
    }
    if (ch == '-' && at_char(p, *i + 1, '>')) {
      *i += 2;
      continue;
    }
    if (ch == '<' || ch == '(' || ch == '[' || ch == '{') {
      if (depth == PARSE_MAX_DEPTH)
        parse_fail(p, *i, "nesting is deeper than %d levels", PARSE_MAX_DEPTH);
      stack[depth++] = ch == '<' ? '>' : ch == '(' ? ')' : ch == '[' ? ']' : '}';
    } else if (ch == '>' || ch == ')' || ch == ']' || ch == '}') {
      if (depth == 0 || stack[depth - 1] != ch)
        parse_fail(p, *i, "unbalanced '%c'", ch);
      if (--depth == 0) {
        (*i)++;
        return;
      }
    }
    (*i)++;
  }
  parse_fail(p, start, "'%c' is not closed before the end of the input", p->src[start]);
}

static ElemType elem_type_at(Parser *p, size_t *i) {
  skip_spaces(p, i);
  size_t start = *i;
  if (at_char(p, *i, '!')) {
    size_t end = scan_word(p, *i + 1);
    parse_fail(p, start, "element type '%.*s' is not supported", (int)(end - start),
               p->src + start);
  }
  size_t end = scan_word(p, *i);
  if (end == start) parse_fail(p, start, "expected an element type");
  *i = end;
  if (end - start == 7 && memcmp(p->src + start, "complex", 7) == 0) {
    expect_char(p, i, '<', "after 'complex'");
    skip_spaces(p, i);
    size_t part = *i;
    *i = scan_word(p, part);
    ElemType et = et_from_mlir(p->src + part, *i - part);
    if (et != ET_F32 && et != ET_F64)
      parse_fail(p, part, "complex<%.*s> is not supported", (int)(*i - part), p->src + part);
    expect_char(p, i, '>', "to close complex<...>");
    return et == ET_F32 ? ET_C64 : ET_C128;
  }
  ElemType et = et_from_mlir(p->src + start, end - start);
  if (et == ET_UNDEF)
    parse_fail(p, start, "unknown element type '%.*s'", (int)(end - start), p->src + start);
  return et;
}

static Type type_at(Parser *p, size_t *i);

/* tensor<4x?xf32, #encoding> with *i just after "tensor". */
static Type tensor_type_at(Parser *p, size_t *i, size_t start) {
  int64_t dims[MAX_RANK];
  int rank = 0;
  int64_t static_numel = 1;
  bool overflow = false;
  expect_char(p, i, '<', "after 'tensor'");
  for (;;) {
    skip_spaces(p, i);
    size_t at = *i;
    int64_t d;
    if (at_char(p, at, '?')) {
      d = DIM_DYN;
      (*i)++;
    } else if (at < p->len && p->src[at] >= '0' && p->src[at] <= '9') {
      uint64_t v = 0;
      while (*i < p->len && p->src[*i] >= '0' && p->src[*i] <= '9') {
        v = v * 10 + (uint64_t)(p->src[*i] - '0');
        if (v > (uint64_t)INT64_MAX) parse_fail(p, at, "dimension is too large");
        (*i)++;
      }
      d = (int64_t)v;
    } else if (at_char(p, at, '-')) {
      parse_fail(p, at, "negative dimension in tensor type");
    } else if (at_char(p, at, '*')) {
      parse_fail(p, at, "unranked tensors (tensor<*x...>) are not supported");
    } else {
      break; /* the element type */
    }
    if (!at_char(p, *i, 'x'))
      parse_fail(p, *i, "expected 'x' after a dimension of a tensor type");
    (*i)++;
    if (rank == MAX_RANK)
      parse_fail(p, start, "tensor type has more than %d dimensions", MAX_RANK);
    if (d > 0) {
      if (static_numel > INT64_MAX / d) overflow = true;
      else static_numel *= d;
    } else if (d == 0) {
      static_numel = 0;
    }
    dims[rank++] = d;
  }
  if (overflow && static_numel != 0)
    parse_fail(p, start, "tensor type has more than 2^63-1 elements");
  Type t = {.kind = TK_TENSOR, .rank = rank};
  t.et = elem_type_at(p, i);
  /* Byte sizes (numel * element size) must fit in int64 too, so that no
   * later stage needs to check that product. */
  size_t es = et_size(t.et);
  if (es > 1 && static_numel > INT64_MAX / (int64_t)es)
    parse_fail(p, start, "tensor type has more than 2^63-1 bytes");
  skip_spaces(p, i);
  if (at_char(p, *i, ',')) { /* an encoding such as #stablehlo.bounds<?, 3>: ignored */
    (*i)++;
    skip_spaces(p, i);
    while (*i < p->len && p->src[*i] != '>' && p->src[*i] != '<' && p->src[*i] != '\n')
      (*i)++;
    if (at_char(p, *i, '<')) skip_balanced(p, i);
  }
  expect_char(p, i, '>', "to close the tensor type");
  if (rank) {
    int64_t *copy = arena_alloc(p->a, sizeof(int64_t) * (size_t)rank);
    memcpy(copy, dims, sizeof(int64_t) * (size_t)rank);
    t.dims = copy;
  }
  return t;
}

static Type type_at(Parser *p, size_t *i) {
  skip_spaces(p, i);
  size_t start = *i;
  Type t = {.kind = TK_OTHER};
  if (at_char(p, start, '!')) {
    size_t end = scan_word(p, start + 1);
    *i = end;
    if (end - start == 16 && memcmp(p->src + start, "!stablehlo.token", 16) == 0) {
      t.kind = TK_TOKEN;
      return t;
    }
    if (at_char(p, *i, '<')) skip_balanced(p, i);
    return t; /* another dialect's type: kept as TK_OTHER */
  }
  size_t end = scan_word(p, start);
  if (end == start) {
    if (start >= p->len) parse_fail(p, start, "expected a type, got end of input");
    parse_fail(p, start, "expected a type");
  }
  const char *w = p->src + start;
  size_t n = end - start;
  *i = end;
  if (n == 6 && memcmp(w, "tensor", 6) == 0) return tensor_type_at(p, i, start);
  if (n == 5 && memcmp(w, "tuple", 5) == 0) {
    expect_char(p, i, '<', "after 'tuple'");
    parse_enter(p);
    skip_spaces(p, i);
    if (!at_char(p, *i, '>')) {
      for (;;) {
        type_at(p, i);
        skip_spaces(p, i);
        if (!at_char(p, *i, ',')) break;
        (*i)++;
      }
    }
    parse_leave(p);
    expect_char(p, i, '>', "to close the tuple type");
    t.kind = TK_TUPLE;
    return t;
  }
  if ((n == 5 && memcmp(w, "index", 5) == 0) || (n == 4 && memcmp(w, "none", 4) == 0))
    return t;
  if ((n == 6 && memcmp(w, "vector", 6) == 0) || (n == 6 && memcmp(w, "memref", 6) == 0)) {
    skip_spaces(p, i);
    if (at_char(p, *i, '<')) skip_balanced(p, i);
    return t;
  }
  *i = start;
  t.et = elem_type_at(p, i); /* a scalar type such as i64 in `1 : i64` */
  return t;
}

Type parse_type(Parser *p) {
  size_t i = p->tok.off;
  if (p->tok.kind == T_EOF) parse_fail(p, i, "expected a type, got end of input");
  parse_enter(p);
  Type t = type_at(p, &i);
  parse_leave(p);
  lex_seek(p, i);
  return t;
}

static bool word_is(const char *w, size_t n, const char *s) {
  return strlen(s) == n && memcmp(w, s, n) == 0;
}

bool tok_starts_type(Parser *p) {
  if (p->tok.kind == T_BANG) return true;
  if (p->tok.kind != T_IDENT) return false;
  const char *w = tok_ptr(p, &p->tok);
  size_t n = p->tok.len;
  if (word_is(w, n, "tensor") || word_is(w, n, "tuple") || word_is(w, n, "complex") ||
      word_is(w, n, "index") || word_is(w, n, "none") || word_is(w, n, "vector") ||
      word_is(w, n, "memref"))
    return true;
  if (et_from_mlir(w, n) != ET_UNDEF) return true;
  /* i7, ui3, si8, f80: integer or float types we may not support, but types */
  size_t k = w[0] == 'u' || w[0] == 's' ? 1 : 0;
  if (n > k + 1 && (w[k] == 'i' || (k == 0 && w[0] == 'f'))) {
    size_t j = k + 1;
    while (j < n && w[j] >= '0' && w[j] <= '9') j++;
    if (j == n) return true;
  }
  return false;
}

const char *type_text(Parser *p, const Type *t) {
  if (t->kind == TK_TUPLE) return "tuple<...>";
  if (t->kind == TK_OTHER)
    return t->et != ET_UNDEF ? et_mlir_name(t->et) : "a non-tensor type";
  char buf[64 + 24 * MAX_RANK];
  return arena_strdup(p->a, type_str(t, buf, sizeof buf));
}

/* ---- attribute values ------------------------------------------------------ */

Attr *new_attr(Parser *p, AttrKind kind, size_t off) {
  Attr *a = arena_alloc(p->a, sizeof *a);
  a->kind = kind;
  a->pos = lex_pos(p, off);
  return a;
}

Attr *attr_int(Parser *p, int64_t v, size_t off) {
  Attr *a = new_attr(p, AK_INT, off);
  a->i = v;
  return a;
}

Attr *attr_array(Parser *p, Attr **elems, int n, size_t off) {
  Attr *a = new_attr(p, AK_ARRAY, off);
  a->elems = elems;
  a->n_elems = n;
  return a;
}

void push_named(Parser *p, NamedAttr **attrs, int *n, int *cap, const char *name,
                Attr *value) {
  *attrs = parse_grow(p, *attrs, cap, *n, sizeof(NamedAttr));
  (*attrs)[(*n)++] = (NamedAttr){name, value};
}

static uint64_t float_bits_limit(ElemType et) {
  size_t bytes = et_size(et);
  return bytes >= 8 ? UINT64_MAX : ((uint64_t)1 << (8 * bytes)) - 1;
}

/* The value of a float of type et given as its bit pattern. */
static double float_from_bits(ElemType et, uint64_t bits) {
  switch (et) {
  case ET_F64: {
    double d;
    memcpy(&d, &bits, 8);
    return d;
  }
  case ET_F32: {
    uint32_t b = (uint32_t)bits;
    float f;
    memcpy(&f, &b, 4);
    return f;
  }
  case ET_BF16: return bf16_to_double((uint16_t)bits);
  case ET_F16: return f16_to_double((uint16_t)bits);
  default:
    return 0; /* f8 attributes do not occur; their dense data is raw bits */
  }
}

/* `: type` after a scalar, in contexts that allow it. */
static void apply_scalar_type(Parser *p, Attr *a, const Token *num) {
  if (!tok_punct(p, ':')) return;
  lex_next(p);
  a->type = parse_type(p);
  ElemType et = a->type.et;
  if (a->kind == AK_INT && et_is_float(et)) {
    a->kind = AK_FLOAT;
    if (tok_is_hex(p, num)) {
      bool neg;
      uint64_t bits;
      tok_int(p, num, &neg, &bits);
      if (neg || bits > float_bits_limit(et))
        parse_fail(p, num->off, "hex value does not fit in %s", et_mlir_name(et));
      a->f = float_from_bits(et, bits);
    } else {
      a->f = tok_double(p, num);
    }
  } else if (a->kind == AK_FLOAT && (et_is_int(et) || et == ET_BOOL)) {
    parse_fail(p, num->off, "expected an integer literal for type %s", et_mlir_name(et));
  }
}

static Attr *parse_number(Parser *p, int flags) {
  Token num = p->tok;
  Attr *a;
  if (num.kind == T_FLOAT) {
    a = new_attr(p, AK_FLOAT, num.off);
    a->f = tok_double(p, &num);
  } else {
    bool neg;
    uint64_t mag;
    tok_int(p, &num, &neg, &mag);
    if (neg && mag > (uint64_t)INT64_MAX + 1)
      parse_fail(p, num.off, "integer literal does not fit in 64 bits");
    a = new_attr(p, AK_INT, num.off);
    /* beyond INT64_MAX (ui64 values) the bits are kept, as two's complement */
    a->i = neg ? (int64_t)(0 - mag) : (int64_t)mag;
    a->f = neg ? -(double)mag : (double)mag;
  }
  lex_next(p);
  if (flags & ATTR_TYPED) apply_scalar_type(p, a, &num);
  return a;
}

/* Captures a balanced <...> (tok at '<') as AK_OPAQUE text starting at from. */
static Attr *parse_opaque_from(Parser *p, size_t from) {
  size_t i = p->tok.off;
  skip_balanced(p, &i);
  Attr *a = new_attr(p, AK_OPAQUE, from);
  a->s = arena_strndup(p->a, p->src + from, i - from);
  a->len = i - from;
  lex_seek(p, i);
  return a;
}

/* key = value, ... up to '>' (tok after '<'), as the fields of a dict. */
static Attr *parse_struct_body(Parser *p, const char *name, size_t off) {
  Attr *d = new_attr(p, AK_DICT, off);
  d->s = name;
  int cap = 0;
  while (!tok_punct(p, '>')) {
    if (p->tok.kind != T_IDENT)
      parse_fail(p, p->tok.off, "expected a field name in #%s<...>, got %s", name, tok_desc(p));
    char *key = tok_name(p, &p->tok);
    lex_next(p);
    expect_punct(p, '=', "after a field name");
    push_named(p, &d->fields, &d->n_fields, &cap, key, parse_attr_value(p, ATTR_TYPED));
    if (!accept_punct(p, ',')) break;
  }
  expect_punct(p, '>', "to close the attribute");
  return d;
}

/* Fields that the StableHLO printer leaves out when empty: converters find
 * them all, as empty arrays, in either form. */
static void add_missing_lists(Parser *p, Attr *d, const char *const *names, size_t off) {
  int cap = d->n_fields;
  for (; *names; names++)
    if (!ir_attr(d->fields, d->n_fields, *names))
      push_named(p, &d->fields, &d->n_fields, &cap, *names, attr_array(p, NULL, 0, off));
}

static const char *const dot_lists[] = {
    "lhs_batching_dimensions", "rhs_batching_dimensions",
    "lhs_contracting_dimensions", "rhs_contracting_dimensions", NULL};
static const char *const gather_lists[] = {
    "offset_dims", "collapsed_slice_dims", "operand_batching_dims",
    "start_indices_batching_dims", "start_index_map", NULL};
static const char *const scatter_lists[] = {
    "update_window_dims", "inserted_window_dims", "input_batching_dims",
    "scatter_indices_batching_dims", "scatter_dims_to_operand_dims", NULL};

/* What the body of #name<...> starts with, looked at character by character
 * so that bodies we keep opaque are never tokenised. */
typedef enum BodyShape {
  BODY_EMPTY,     /* <> */
  BODY_WORD,      /* <DEFAULT> or <comparison_direction GT>: an enum */
  BODY_FIELDS,    /* <key = value, ...> */
  BODY_RAW,       /* <raw key = value, ...> (#stablehlo.conv) */
  BODY_LIST,      /* <[...] ...> (#stablehlo.conv) */
  BODY_OTHER
} BodyShape;

static BodyShape body_shape(Parser *p, size_t i, size_t *word, size_t *word_len, size_t *end) {
  skip_spaces(p, &i);
  if (at_char(p, i, '>')) {
    *end = i + 1;
    return BODY_EMPTY;
  }
  if (at_char(p, i, '[')) return BODY_LIST;
  size_t w1 = i, w1_end = scan_word(p, i);
  if (w1_end == w1) return BODY_OTHER;
  i = w1_end;
  skip_spaces(p, &i);
  *word = w1;
  *word_len = w1_end - w1;
  if (at_char(p, i, '>')) {
    *end = i + 1;
    return BODY_WORD;
  }
  if (at_char(p, i, '=')) return BODY_FIELDS;
  size_t w2 = i, w2_end = scan_word(p, i);
  if (w2_end == w2) return BODY_OTHER;
  if (w1_end - w1 == 3 && memcmp(p->src + w1, "raw", 3) == 0) return BODY_RAW;
  i = w2_end;
  skip_spaces(p, &i);
  *word = w2;
  *word_len = w2_end - w2;
  if (at_char(p, i, '>')) {
    *end = i + 1;
    return BODY_WORD;
  }
  return BODY_OTHER;
}

/* #name<...> (tok at the T_HASH): an enum, a struct-like dict, or opaque. */
static Attr *parse_hash_attr(Parser *p) {
  Token h = p->tok;
  char *name = tok_name(p, &h);
  lex_next(p);
  if (!tok_punct(p, '<')) { /* a reference to a top-level alias */
    void **slot = strmap_get(p, &p->attr_aliases, name, strlen(name), false, NULL);
    if (slot && *slot) return *slot;
    Attr *a = new_attr(p, AK_OPAQUE, h.off);
    a->s = arena_strndup(p->a, tok_ptr(p, &h), h.len);
    a->len = h.len;
    return a;
  }
  size_t word = 0, word_len = 0, end = 0;
  BodyShape shape = body_shape(p, p->tok.off + 1, &word, &word_len, &end);
  bool dotted = strchr(name, '.') != NULL;
  if (shape == BODY_WORD) { /* #stablehlo<precision DEFAULT> -> "DEFAULT" */
    Attr *a = new_attr(p, AK_ENUM, h.off);
    a->s = arena_strndup(p->a, p->src + word, word_len);
    lex_seek(p, end);
    return a;
  }
  bool conv = strcmp(name, "stablehlo.conv") == 0 || strcmp(name, "mhlo.conv") == 0;
  if (conv && shape == BODY_LIST) {
    lex_next(p);
    Attr *d = parse_conv_dims(p);
    d->pos = lex_pos(p, h.off);
    expect_punct(p, '>', "to close #stablehlo.conv<...>");
    return d;
  }
  if (!dotted || !(shape == BODY_FIELDS || shape == BODY_RAW || shape == BODY_EMPTY))
    return parse_opaque_from(p, h.off);
  lex_next(p); /* '<' */
  if (shape == BODY_RAW) lex_next(p);
  parse_enter(p);
  Attr *d = parse_struct_body(p, name, h.off);
  parse_leave(p);
  const char *dialect_free = strchr(name, '.') + 1;
  if (strcmp(dialect_free, "dot") == 0) add_missing_lists(p, d, dot_lists, h.off);
  else if (strcmp(dialect_free, "gather") == 0) add_missing_lists(p, d, gather_lists, h.off);
  else if (strcmp(dialect_free, "scatter") == 0) add_missing_lists(p, d, scatter_lists, h.off);
  return d;
}

/* array<i64: 1, 2> / array<i64> (tok at `array`). */
static Attr *parse_array_attr(Parser *p) {
  size_t off = p->tok.off;
  lex_next(p);
  expect_punct(p, '<', "after 'array'");
  Type et = parse_type(p);
  Attr **elems = NULL;
  int n = 0, cap = 0;
  if (accept_punct(p, ':')) {
    for (;;) {
      Attr *e;
      Token t = p->tok;
      if (tok_ident(p, "true") || tok_ident(p, "false")) {
        e = new_attr(p, AK_BOOL, t.off);
        e->b = tok_ident(p, "true");
        lex_next(p);
      } else if (t.kind == T_INT || t.kind == T_FLOAT) {
        e = parse_number(p, 0);
        e->type = et;
        if (et_is_float(et.et) && e->kind == AK_INT) {
          e->kind = AK_FLOAT;
          e->f = tok_double(p, &t);
        } else if (!et_is_float(et.et) && e->kind == AK_FLOAT) {
          parse_fail(p, t.off, "expected an integer in array<%s: ...>", type_text(p, &et));
        }
      } else {
        parse_fail(p, t.off, "expected an array element, got %s", tok_desc(p));
      }
      elems = parse_grow(p, elems, &cap, n, sizeof *elems);
      elems[n++] = e;
      if (!accept_punct(p, ',')) break;
    }
  }
  expect_punct(p, '>', "to close array<...>");
  return attr_array(p, elems, n, off);
}

Attr *parse_attr_value(Parser *p, int flags) {
  Token t = p->tok;
  Attr *a;
  parse_enter(p);
  switch (t.kind) {
  case T_INT: case T_FLOAT:
    a = parse_number(p, flags);
    break;
  case T_STRING:
    a = new_attr(p, AK_STRING, t.off);
    a->s = tok_string(p, &t, &a->len);
    lex_next(p);
    if ((flags & ATTR_TYPED) && accept_punct(p, ':')) a->type = parse_type(p);
    break;
  case T_SYMBOL: {
    a = new_attr(p, AK_SYMBOL, t.off);
    a->s = tok_name(p, &t);
    lex_next(p);
    while (tok_punct(p, ':')) { /* @outer::@inner */
      Token colon2 = lex_peek(p);
      if (colon2.kind != T_PUNCT || colon2.ch != ':') break;
      lex_next(p);
      lex_next(p);
      if (p->tok.kind != T_SYMBOL)
        parse_fail(p, p->tok.off, "expected a symbol after '::', got %s", tok_desc(p));
      a->s = arena_printf(p->a, "%s::%s", a->s, tok_name(p, &p->tok));
      lex_next(p);
    }
    break;
  }
  case T_HASH:
    a = parse_hash_attr(p);
    break;
  case T_BANG:
    a = new_attr(p, AK_TYPE, t.off);
    a->type = parse_type(p);
    break;
  case T_PUNCT:
    if (t.ch == '[') {
      Attr **elems = NULL;
      int n = 0, cap = 0;
      lex_next(p);
      while (!tok_punct(p, ']')) {
        elems = parse_grow(p, elems, &cap, n, sizeof *elems);
        elems[n++] = parse_attr_value(p, ATTR_TYPED);
        if (!accept_punct(p, ',')) break;
      }
      expect_punct(p, ']', "to close the array");
      a = attr_array(p, elems, n, t.off);
    } else if (t.ch == '{') {
      a = new_attr(p, AK_DICT, t.off);
      int cap = 0;
      parse_attr_dict(p, &a->fields, &a->n_fields, &cap);
    } else if (t.ch == '<') {
      a = parse_opaque_from(p, t.off);
    } else if (t.ch == '(') { /* a function type as a value: kept as text */
      size_t i = t.off;
      skip_balanced(p, &i);
      lex_seek(p, i);
      if (p->tok.kind == T_ARROW) {
        lex_next(p);
        if (tok_punct(p, '(')) {
          i = p->tok.off;
          skip_balanced(p, &i);
          lex_seek(p, i);
        } else {
          parse_type(p);
        }
      }
      a = new_attr(p, AK_OPAQUE, t.off);
      a->len = p->tok.off - t.off;
      a->s = arena_strndup(p->a, p->src + t.off, a->len);
    } else {
      parse_fail(p, t.off, "expected an attribute value, got %s", tok_desc(p));
    }
    break;
  case T_IDENT:
    if (tok_ident(p, "true") || tok_ident(p, "false")) {
      a = new_attr(p, AK_BOOL, t.off);
      a->b = tok_ident(p, "true");
      lex_next(p);
      if ((flags & ATTR_TYPED) && accept_punct(p, ':')) a->type = parse_type(p);
    } else if (tok_ident(p, "unit")) {
      a = new_attr(p, AK_UNIT, t.off);
      lex_next(p);
    } else if (tok_ident(p, "dense")) {
      a = parse_dense(p);
    } else if (tok_ident(p, "array") && lex_peek(p).kind == T_PUNCT && lex_peek(p).ch == '<') {
      a = parse_array_attr(p);
    } else if (tok_starts_type(p)) {
      a = new_attr(p, AK_TYPE, t.off);
      a->type = parse_type(p);
    } else {
      lex_next(p);
      if (tok_punct(p, '<')) { /* dense_resource<...>, affine_map<...>, ... */
        a = parse_opaque_from(p, t.off);
        if ((flags & ATTR_TYPED) && accept_punct(p, ':')) a->type = parse_type(p);
      } else { /* a bare word: DEFAULT, GT, e5m2 */
        a = new_attr(p, AK_ENUM, t.off);
        a->s = tok_name(p, &t);
      }
    }
    break;
  default:
    parse_fail(p, t.off, "expected an attribute value, got %s", tok_desc(p));
  }
  parse_leave(p);
  return a;
}

/* attr-dict ::= '{' (entry (',' entry)*)? '}'
 * entry     ::= (IDENT | STRING) ('=' attr-value)? */
void parse_attr_dict(Parser *p, NamedAttr **attrs, int *n, int *cap) {
  expect_punct(p, '{', "to open an attribute dictionary");
  parse_enter(p);
  while (!tok_punct(p, '}')) {
    Token key = p->tok;
    char *name;
    if (key.kind == T_IDENT) name = tok_name(p, &key);
    else if (key.kind == T_STRING) name = tok_string(p, &key, NULL);
    else parse_fail(p, key.off, "expected an attribute name, got %s", tok_desc(p));
    lex_next(p);
    Attr *value;
    if (accept_punct(p, '=')) {
      value = parse_attr_value(p, ATTR_TYPED);
    } else {
      value = new_attr(p, AK_UNIT, key.off);
    }
    push_named(p, attrs, n, cap, name, value);
    if (!accept_punct(p, ',')) break;
  }
  expect_punct(p, '}', "to close the attribute dictionary");
  parse_leave(p);
}

/* ---- convolution dimension numbers ------------------------------------------ */

typedef struct ConvSide {
  int64_t batch, feature; /* b/f, or i/o for the kernel */
  int64_t spatial[MAX_RANK];
  int n_spatial;
} ConvSide;

/* One of `[b, 0, 1, f]`: letters name dims; digits number spatial dims. */
static void conv_side(Parser *p, ConvSide *s, char first, char second) {
  size_t open = p->tok.off;
  expect_punct(p, '[', "to open convolution dimension numbers");
  bool seen[MAX_RANK] = {false};
  int pos = 0, max_spatial = -1;
  s->batch = s->feature = -1;
  while (!tok_punct(p, ']')) {
    Token t = p->tok;
    if (pos == MAX_RANK) parse_fail(p, t.off, "too many dimensions");
    if (t.kind == T_INT) {
      bool neg;
      uint64_t v;
      tok_int(p, &t, &neg, &v);
      if (neg || v >= MAX_RANK || seen[v])
        parse_fail(p, t.off, "bad or repeated spatial dimension");
      seen[v] = true;
      s->spatial[v] = pos;
      if ((int)v > max_spatial) max_spatial = (int)v;
    } else if (t.kind == T_IDENT && t.len == 1 &&
               (tok_ptr(p, &t)[0] == first || tok_ptr(p, &t)[0] == second)) {
      int64_t *slot = tok_ptr(p, &t)[0] == first ? &s->batch : &s->feature;
      if (*slot >= 0) parse_fail(p, t.off, "'%c' appears twice", tok_ptr(p, &t)[0]);
      *slot = pos;
    } else {
      parse_fail(p, t.off, "expected '%c', '%c' or a spatial dimension number, got %s",
                 first, second, tok_desc(p));
    }
    pos++;
    lex_next(p);
    if (!accept_punct(p, ',')) break;
  }
  expect_punct(p, ']', "to close convolution dimension numbers");
  if (s->batch < 0 || s->feature < 0)
    parse_fail(p, open, "convolution dimension numbers need both '%c' and '%c'", first, second);
  s->n_spatial = max_spatial + 1;
  for (int d = 0; d < s->n_spatial; d++)
    if (!seen[d]) parse_fail(p, open, "spatial dimension %d is missing", d);
}

static Attr *int_list(Parser *p, const int64_t *v, int n, size_t off) {
  Attr **elems = n ? arena_alloc(p->a, sizeof(Attr *) * (size_t)n) : NULL;
  for (int i = 0; i < n; i++) elems[i] = attr_int(p, v[i], off);
  return attr_array(p, elems, n, off);
}

Attr *parse_conv_dims(Parser *p) {
  size_t off = p->tok.off;
  ConvSide in, kernel, out;
  conv_side(p, &in, 'b', 'f');
  if (!accept_ident(p, "x"))
    parse_fail(p, p->tok.off, "expected 'x' between convolution dimension numbers, got %s",
               tok_desc(p));
  conv_side(p, &kernel, 'i', 'o');
  if (p->tok.kind != T_ARROW)
    parse_fail(p, p->tok.off, "expected '->' in convolution dimension numbers, got %s",
               tok_desc(p));
  lex_next(p);
  conv_side(p, &out, 'b', 'f');
  if (in.n_spatial != kernel.n_spatial || in.n_spatial != out.n_spatial)
    parse_fail(p, off, "convolution dimension numbers disagree on the spatial rank");
  Attr *d = new_attr(p, AK_DICT, off);
  d->s = "stablehlo.conv";
  int cap = 0;
  struct { const char *name; Attr *value; } fields[] = {
      {"input_batch_dimension", attr_int(p, in.batch, off)},
      {"input_feature_dimension", attr_int(p, in.feature, off)},
      {"input_spatial_dimensions", int_list(p, in.spatial, in.n_spatial, off)},
      {"kernel_input_feature_dimension", attr_int(p, kernel.batch, off)},
      {"kernel_output_feature_dimension", attr_int(p, kernel.feature, off)},
      {"kernel_spatial_dimensions", int_list(p, kernel.spatial, kernel.n_spatial, off)},
      {"output_batch_dimension", attr_int(p, out.batch, off)},
      {"output_feature_dimension", attr_int(p, out.feature, off)},
      {"output_spatial_dimensions", int_list(p, out.spatial, out.n_spatial, off)},
  };
  for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
    push_named(p, &d->fields, &d->n_fields, &cap, fields[i].name, fields[i].value);
  return d;
}

/* ---- locations ---------------------------------------------------------------- */

static Loc *new_loc(Parser *p, LocKind kind, size_t off) {
  Loc *l = arena_alloc(p->a, sizeof *l);
  l->kind = kind;
  l->off = off;
  return l;
}

static LocAlias *loc_alias(Parser *p, const Token *t) {
  const char *name = tok_ptr(p, t) + 1;
  void **slot = strmap_get(p, &p->loc_aliases, name, t->len - 1, true, NULL);
  if (!*slot) {
    LocAlias *al = arena_alloc(p->a, sizeof *al);
    al->name = arena_strndup(p->a, name, t->len - 1);
    al->ref_off = t->off;
    *slot = al;
  }
  return *slot;
}

/* location ::= 'unknown' | '#alias' | STRING (':' INT ':' INT range?)?
 *            | STRING '(' location ')' | 'callsite' '(' location 'at' location ')'
 *            | 'fused' ('<' attr '>')? '[' location (',' location)* ']' */
static Loc *parse_location(Parser *p) {
  Token t = p->tok;
  Loc *l;
  parse_enter(p);
  if (t.kind == T_HASH) {
    l = new_loc(p, LOC_ALIAS, t.off);
    l->alias = loc_alias(p, &t);
    lex_next(p);
  } else if (t.kind == T_STRING) {
    char *name = tok_name_string(p, &t);
    lex_next(p);
    if (accept_punct(p, ':')) { /* "file.py":12:3 (to (L:)?C)? */
      l = new_loc(p, LOC_FILE, t.off);
      l->name = name;
      if (p->tok.kind != T_INT) parse_fail(p, p->tok.off, "expected a line number");
      bool neg;
      uint64_t line;
      tok_int(p, &p->tok, &neg, &line);
      l->line = !neg && line <= INT32_MAX ? (int)line : 0;
      lex_next(p);
      expect_punct(p, ':', "between line and column");
      if (p->tok.kind != T_INT) parse_fail(p, p->tok.off, "expected a column number");
      lex_next(p);
      if (accept_ident(p, "to")) {
        if (p->tok.kind == T_INT) lex_next(p);
        expect_punct(p, ':', "in a location range");
        if (p->tok.kind != T_INT) parse_fail(p, p->tok.off, "expected a column number");
        lex_next(p);
      }
    } else {
      l = new_loc(p, LOC_NAME, t.off);
      l->name = name;
      if (accept_punct(p, '(')) {
        l->child = parse_location(p);
        expect_punct(p, ')', "to close the named location");
      }
    }
  } else if (accept_ident(p, "unknown")) {
    l = new_loc(p, LOC_UNKNOWN, t.off);
  } else if (accept_ident(p, "callsite")) {
    l = new_loc(p, LOC_CALLSITE, t.off);
    expect_punct(p, '(', "after 'callsite'");
    l->child = parse_location(p);
    if (!accept_ident(p, "at"))
      parse_fail(p, p->tok.off, "expected 'at' in callsite location, got %s", tok_desc(p));
    l->caller = parse_location(p);
    expect_punct(p, ')', "to close the callsite location");
  } else if (accept_ident(p, "fused")) {
    l = new_loc(p, LOC_FUSED, t.off);
    if (tok_punct(p, '<')) {
      size_t i = p->tok.off;
      skip_balanced(p, &i);
      lex_seek(p, i);
    }
    expect_punct(p, '[', "after 'fused'");
    int cap = 0;
    while (!tok_punct(p, ']')) {
      l->elems = parse_grow(p, l->elems, &cap, l->n_elems, sizeof(Loc *));
      l->elems[l->n_elems++] = parse_location(p);
      if (!accept_punct(p, ',')) break;
    }
    expect_punct(p, ']', "to close the fused location");
  } else {
    parse_fail(p, t.off, "expected a location, got %s", tok_desc(p));
  }
  parse_leave(p);
  return l;
}

Loc *parse_loc(Parser *p) {
  lex_next(p); /* loc */
  expect_punct(p, '(', "after 'loc'");
  Loc *l = parse_location(p);
  expect_punct(p, ')', "to close the location");
  return l;
}

Loc *parse_opt_loc_node(Parser *p) {
  if (!tok_ident(p, "loc")) return NULL;
  Token next = lex_peek(p);
  if (next.kind != T_PUNCT || next.ch != '(') return NULL;
  return parse_loc(p);
}

void add_pending_loc(Parser *p, const char **target, Loc *loc) {
  p->pending = parse_grow(p, p->pending, &p->cap_pending, p->n_pending, sizeof(PendingLoc));
  p->pending[p->n_pending++] = (PendingLoc){target, NULL, loc};
}

void add_pending_op_loc(Parser *p, Op *op, Loc *loc) {
  add_pending_loc(p, &op->scope, loc);
  p->pending[p->n_pending - 1].source = &op->source;
}

void parse_opt_loc(Parser *p, const char **target) {
  Loc *l = parse_opt_loc_node(p);
  if (!l) return;
  if (!target) target = arena_alloc(p->a, sizeof *target); /* aliases still checked */
  add_pending_loc(p, target, l);
}

void parse_alias_def(Parser *p) {
  Token name = p->tok;
  lex_next(p);
  expect_punct(p, '=', "after the alias name");
  if (tok_ident(p, "loc")) {
    Loc *l = parse_loc(p);
    LocAlias *al = loc_alias(p, &name);
    if (al->def) parse_fail(p, name.off, "redefinition of location alias #%s", al->name);
    al->def = l;
    return;
  }
  Attr *value = parse_attr_value(p, ATTR_TYPED);
  void **slot = strmap_get(p, &p->attr_aliases, tok_ptr(p, &name) + 1, name.len - 1, true, NULL);
  if (*slot) parse_fail(p, name.off, "redefinition of attribute alias %.*s", (int)name.len,
                        tok_ptr(p, &name));
  *slot = value;
}

/* The outermost name of a location.  Iterative along callsites and aliases
 * (alias chains can be long, and cyclic in a hostile input: an alias visited
 * more often than there are aliases means a cycle); fused locations, whose
 * textual nesting parse_location bounded, recurse with a depth count. */
static const char *loc_scope(Parser *p, Loc *l, int depth) {
  if (depth > PARSE_MAX_DEPTH)
    parse_fail(p, l->off, "locations nest deeper than %d levels", PARSE_MAX_DEPTH);
  for (int alias_visits = 0;;) {
    switch (l->kind) {
    case LOC_NAME:
      return l->name;
    case LOC_CALLSITE:
      l = l->child;
      continue;
    case LOC_ALIAS: {
      LocAlias *al = l->alias;
      if (!al->def) parse_fail(p, al->ref_off, "undefined location alias #%s", al->name);
      if (++alias_visits > p->loc_aliases.count)
        parse_fail(p, al->ref_off, "location alias #%s refers to itself", al->name);
      l = al->def;
      continue;
    }
    case LOC_FUSED:
      for (int i = 0; i < l->n_elems; i++) {
        const char *s = loc_scope(p, l->elems[i], depth + 1);
        if (s) return s;
      }
      return NULL;
    default:
      return NULL;
    }
  }
}

/* The innermost file location: into names and callees, the caller when
 * the callee has none, the first element of a fused location that has one.
 * loc_scope has checked the aliases (defined, no cycle) already; depth
 * bounds the walk. */
static const Loc *loc_file(const Loc *l, int depth) {
  while (l && depth <= PARSE_MAX_DEPTH) {
    switch (l->kind) {
    case LOC_FILE:
      return l;
    case LOC_NAME:
      l = l->child;
      continue;
    case LOC_CALLSITE: {
      const Loc *f = loc_file(l->child, depth + 1);
      if (f) return f;
      l = l->caller;
      depth++;
      continue;
    }
    case LOC_ALIAS:
      l = l->alias->def;
      depth++; /* an alias chain is bounded like a nesting */
      continue;
    case LOC_FUSED:
      for (int i = 0; i < l->n_elems; i++) {
        const Loc *f = loc_file(l->elems[i], depth + 1);
        if (f) return f;
      }
      return NULL;
    default:
      return NULL;
    }
  }
  return NULL;
}

void resolve_locs(Parser *p) {
  for (int i = 0; i < p->n_pending; i++) {
    *p->pending[i].target = loc_scope(p, p->pending[i].loc, 0);
    if (!p->pending[i].source) continue;
    const Loc *f = loc_file(p->pending[i].loc, 0);
    if (f && f->name && *f->name)
      *p->pending[i].source = f->line > 0 ? arena_printf(p->a, "%s:%d", f->name, f->line)
                                           : f->name;
  }
}
