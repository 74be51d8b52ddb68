/* dense.c - dense<...> literals: the constants of a module.
 *
 *   dense ::= 'dense' '<' body? '>' ':' tensor-type
 *   body  ::= element                        a splat: one value for all
 *           | '[' (body (',' body)*)? ']'    nested lists, row-major
 *           | STRING                         "0x..." hex blob of the raw bytes
 *   element ::= scalar | '(' scalar ',' scalar ')'   the latter for complex types
 *   scalar  ::= INT | FLOAT | 'true' | 'false' | HEX (the bit pattern)
 *
 * The type comes after the body, so lists are read twice: once to count and
 * check their shape, and once, knowing the element type, to encode every
 * element into little-endian bytes in the arena.  Hex blobs are not decoded
 * at all: Data points at their digits in the input (DATA_HEX), so a 500 MB
 * weight is never copied; only its digits and length are checked.
 *
 * Floats: f32 and f64 are read straight from the decimal text (one rounding).
 * f16, bf16 and the f8 types round the double to nearest-even (base/elem.c); a decimal that
 * lies exactly between two such values after the first rounding could round
 * differently from a one-step conversion, which JAX's shortest-round-trip
 * printing makes practically impossible.
 */
#include "parse.h"

#include <string.h>

/* ---- element types -------------------------------------------------------------- *
 * Some valid StableHLO element types have no values ONNX Runtime can compute
 * with: the sub-byte integers and floats (i4, ui4, i2, ui2, f4E2M1FN, f6...)
 * and the float8 kinds this file has no encoder for.  Their literals are
 * checked (shape, range, hex length) but their values are not kept: the
 * Dense gets DATA_NONE, and the lowering rejects the op that makes such a
 * tensor as unsupported (status 3), naming the type and the op (lower.c,
 * check_types).  MLIR stores one sub-byte element per byte in a hex blob.
 * Complex literals, (re, im) pairs, are kept: two floats per element. */

static bool is_complex(ElemType et) { return et == ET_C64 || et == ET_C128; }

/* The bits of one element; 0 for types without a fixed width. */
static int elem_bits(ElemType et) {
  switch (et) {
  case ET_I2: case ET_U2: return 2;
  case ET_I4: case ET_U4: case ET_F4E2M1: return 4;
  case ET_F6E2M3: case ET_F6E3M2: return 6;
  default: return 8 * (int)et_size(et);
  }
}

/* Bytes per element in a hex blob. */
static size_t storage_size(ElemType et) {
  return et_size(et) ? et_size(et) : (size_t)(elem_bits(et) + 7) / 8;
}

static bool is_int_elem(ElemType et) { return et_is_int(et) || et == ET_I2 || et == ET_U2; }

static bool keeps_values(ElemType et) {
  uint32_t bits;
  if (et_size(et) == 0) return false;
  return et_is_int(et) || et == ET_BOOL || is_complex(et) || et == ET_F32 || et == ET_F64 ||
         elem_narrow_float_bits(et, 0, &bits);
}

/* ---- elements ------------------------------------------------------------------ */

static void put_le(uint8_t *out, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(v >> (8 * i));
}

/* One scalar token of type et into out (NULL: checked, not kept). */
static void encode_scalar(Parser *p, ElemType et, uint8_t *out) {
  Token t = p->tok;
  size_t size = et_size(et);
  int bits = elem_bits(et);
  uint64_t limit = bits >= 64 ? UINT64_MAX : ((uint64_t)1 << bits) - 1;
  if (et == ET_BOOL) {
    if (tok_ident(p, "true") || tok_ident(p, "false")) {
      out[0] = tok_ident(p, "true");
    } else if (t.kind == T_INT) {
      bool neg;
      uint64_t v;
      tok_int(p, &t, &neg, &v);
      if (neg || v > 1) parse_fail(p, t.off, "expected true or false for an i1 element");
      out[0] = (uint8_t)v;
    } else {
      parse_fail(p, t.off, "expected true or false for an i1 element, got %s", tok_desc(p));
    }
  } else if (is_int_elem(et)) {
    if (t.kind != T_INT)
      parse_fail(p, t.off, "expected an integer element for %s, got %s", et_mlir_name(et),
                 tok_desc(p));
    bool neg;
    uint64_t v;
    tok_int(p, &t, &neg, &v);
    /* Like MLIR, a signless-looking iN also takes 0..2^N-1 (its bit pattern). */
    bool is_signed = et_is_signed_int(et) || et == ET_I2;
    bool fits = neg ? is_signed && v - 1 <= limit >> 1 : v <= limit;
    if (!fits)
      parse_fail(p, t.off, "value %s%llu does not fit in %s", neg ? "-" : "",
                 (unsigned long long)v, et_mlir_name(et));
    if (out) put_le(out, neg ? 0 - v : v, size);
  } else if (tok_is_hex(p, &t)) { /* a float's bit pattern */
    bool neg;
    uint64_t v;
    tok_int(p, &t, &neg, &v);
    if (neg || v > limit) parse_fail(p, t.off, "hex value does not fit in %s", et_mlir_name(et));
    if (out) put_le(out, v, size);
  } else if (t.kind == T_INT || t.kind == T_FLOAT) {
    uint32_t narrow;
    if (!out) {
      /* a float type whose values are not kept: the number is enough */
    } else if (et == ET_F32) {
      float v = tok_float32(p, &t);
      uint32_t b;
      memcpy(&b, &v, 4);
      put_le(out, b, 4);
    } else if (et == ET_F64) {
      double v = tok_double(p, &t);
      uint64_t b;
      memcpy(&b, &v, 8);
      put_le(out, b, 8);
    } else if (elem_narrow_float_bits(et, tok_double(p, &t), &narrow)) {
      put_le(out, narrow, size); /* base/elem.c */
    } else {
      parse_fail(p, t.off, "internal error: no encoder for %s", et_mlir_name(et));
    }
  } else {
    parse_fail(p, t.off, "expected a number for a %s element, got %s", et_mlir_name(et),
               tok_desc(p));
  }
  lex_next(p);
}

/* One element (tok at it): a scalar, or for complex types `(re, im)`. */
static void encode_element(Parser *p, const Type *type, uint8_t *out) {
  ElemType et = type->et;
  if (!is_complex(et)) {
    if (tok_punct(p, '('))
      parse_fail(p, p->tok.off, "a (real, imaginary) element needs a complex type, got %s",
                 type_text(p, type));
    encode_scalar(p, et, out);
    return;
  }
  if (!tok_punct(p, '('))
    parse_fail(p, p->tok.off, "expected a (real, imaginary) pair for a %s element, got %s",
               et_mlir_name(et), tok_desc(p));
  ElemType part = et == ET_C64 ? ET_F32 : ET_F64;
  size_t half = et_size(part);
  lex_next(p);
  encode_scalar(p, part, out);
  expect_punct(p, ',', "between the real and imaginary parts");
  encode_scalar(p, part, out ? out + half : NULL);
  expect_punct(p, ')', "to close a complex element");
}

static bool tok_is_element(Parser *p) {
  return p->tok.kind == T_INT || p->tok.kind == T_FLOAT || tok_ident(p, "true") ||
         tok_ident(p, "false");
}

/* Pass 1 over a complex element `(re, im)` (tok at '('): its form only; the
 * element type is checked in pass 2. */
static void skip_pair(Parser *p) {
  lex_next(p);
  for (int k = 0; k < 2; k++) {
    if (!tok_is_element(p))
      parse_fail(p, p->tok.off, "expected a number in a complex element, got %s", tok_desc(p));
    lex_next(p);
    expect_punct(p, k == 0 ? ',' : ')',
                 k == 0 ? "between the real and imaginary parts" : "to close a complex element");
  }
}

/* Pass 1 over a nested list (tok at '['): checks that it is rectangular and
 * counts its elements. */
static int64_t count_list(Parser *p) {
  int64_t count[PARSE_MAX_DEPTH + 1], expect[PARSE_MAX_DEPTH + 1];
  int level = 0, max_level = 0, leaf_level = -1;
  int64_t leaves = 0;
  for (;;) {
    if (tok_punct(p, '[')) {
      if (level == PARSE_MAX_DEPTH)
        parse_fail(p, p->tok.off, "dense literal is nested deeper than %d levels",
                   PARSE_MAX_DEPTH);
      if (level > 0) count[level]++;
      if (leaf_level >= 0 && level >= leaf_level)
        parse_fail(p, p->tok.off, "dense literal mixes lists and elements at one level");
      level++;
      count[level] = 0;
      if (level > max_level) { /* the first list at this depth sets its length */
        max_level = level;
        expect[level] = -1;
      }
      lex_next(p);
      if (!tok_punct(p, ']')) continue;
    } else if (tok_is_element(p) || tok_punct(p, '(')) {
      if (leaf_level < 0) leaf_level = level;
      else if (leaf_level != level)
        parse_fail(p, p->tok.off, "dense literal mixes lists and elements at one level");
      count[level]++;
      leaves++;
      if (tok_punct(p, '(')) skip_pair(p);
      else lex_next(p);
    } else {
      parse_fail(p, p->tok.off, "expected a dense element, got %s", tok_desc(p));
    }
    /* after an element or a list: ',' continues, ']' closes lists */
    for (;;) {
      if (accept_punct(p, ',')) break;
      if (!tok_punct(p, ']'))
        parse_fail(p, p->tok.off, "expected ',' or ']' in dense literal, got %s", tok_desc(p));
      if (expect[level] < 0) expect[level] = count[level];
      else if (expect[level] != count[level])
        parse_fail(p, p->tok.off, "dense literal has rows of different lengths (%lld and %lld)",
                   (long long)expect[level], (long long)count[level]);
      level--;
      lex_next(p);
      if (level == 0) return leaves;
    }
  }
}

static Type dense_type(Parser *p, size_t dense_off) {
  if (!accept_punct(p, ':'))
    parse_fail(p, p->tok.off, "expected ':' and the type of the dense literal, got %s",
               tok_desc(p));
  size_t type_off = p->tok.off;
  Type t = parse_type(p);
  if (t.kind != TK_TENSOR)
    parse_fail(p, type_off, "a dense literal needs a tensor type, got %s", type_text(p, &t));
  if (!type_is_static(&t))
    parse_fail(p, type_off, "a dense literal needs a static shape, got %s", type_text(p, &t));
  if (storage_size(t.et) == 0)
    parse_fail(p, dense_off, "dense literals of %s are not supported", et_mlir_name(t.et));
  return t;
}

static Attr *dense_attr(Parser *p, size_t off, Type t, Dense *d) {
  Attr *a = new_attr(p, AK_DENSE, off);
  a->type = t;
  a->dense = d;
  return a;
}

/* 1 unless c is 0-9, a-f or A-F; branch-free ((c | 0x20) folds A-F onto a-f). */
static unsigned not_hex_digit(unsigned char c) {
  return (unsigned)((unsigned char)(c - '0') > 9) &
         (unsigned)((unsigned char)((c | 0x20) - 'a') > 5);
}

/* "0x..." (tok at the string): checks digits and length, keeps a pointer. */
static Attr *parse_hex_blob(Parser *p, size_t dense_off) {
  Token s = p->tok;
  const char *q = tok_ptr(p, &s) + 1;
  size_t n = s.len - 2;
  if (n < 2 || q[0] != '0' || (q[1] != 'x' && q[1] != 'X'))
    parse_fail(p, s.off, "string dense literals are not supported (expected a \"0x...\" hex blob)");
  q += 2;
  n -= 2;
  /* Blobs run to gigabytes: 64 digits at a time with byte arithmetic the
   * compiler vectorizes, then by byte from the first block that has a bad
   * digit (to say where) and for the tail. */
  size_t i = 0;
  for (; n - i >= 64; i += 64) {
    unsigned bad = 0;
    for (int k = 0; k < 64; k++) bad |= not_hex_digit((unsigned char)q[i + k]);
    if (bad) break;
  }
  for (; i < n; i++)
    if (not_hex_digit((unsigned char)q[i]))
      parse_fail(p, s.off + 3 + i, "invalid hex digit '%c' in dense literal", q[i]);
  if (n % 2)
    parse_fail(p, s.off, "hex dense literal has an odd number of digits (%zu)", n);
  lex_next(p);
  expect_punct(p, '>', "to close dense<...>");
  Type t = dense_type(p, dense_off);
  int64_t numel = type_numel(&t);
  size_t es = storage_size(t.et), bytes = n / 2;
  bool splat = bytes == es && numel != 1;
  if (!splat && (bytes % es != 0 || (uint64_t)numel != bytes / es))
    parse_fail(p, s.off, "hex dense literal has %zu bytes, %s needs %llu (or %zu for a splat)",
               bytes, type_text(p, &t), (unsigned long long)numel * es, es);
  Dense *d = arena_alloc(p->a, sizeof *d);
  d->et = t.et;
  d->numel = numel;
  d->splat = splat;
  /* not kept: see "element types" above */
  d->data = keeps_values(t.et) ? (Data){DATA_HEX, q, bytes} : (Data){DATA_NONE, NULL, 0};
  return dense_attr(p, dense_off, t, d);
}

Attr *parse_dense(Parser *p) {
  size_t off = p->tok.off;
  lex_next(p); /* dense */
  expect_punct(p, '<', "after 'dense'");
  if (p->tok.kind == T_STRING) return parse_hex_blob(p, off);
  size_t body = p->tok.off;
  int64_t count;
  bool splat = false;
  if (tok_punct(p, '>')) {
    count = 0;
  } else if (tok_punct(p, '[')) {
    count = count_list(p);
  } else if (tok_is_element(p) || tok_punct(p, '(')) {
    count = 1;
    splat = true;
    if (tok_punct(p, '(')) skip_pair(p);
    else lex_next(p);
  } else {
    parse_fail(p, p->tok.off, "expected a dense literal, got %s", tok_desc(p));
  }
  expect_punct(p, '>', "to close dense<...>");
  Type t = dense_type(p, off);
  size_t after = p->tok.off;
  int64_t numel = type_numel(&t);
  if (!splat && count != numel)
    parse_fail(p, off, "dense literal has %lld elements, %s needs %lld", (long long)count,
               type_text(p, &t), (long long)numel);
  bool keep = keeps_values(t.et);
  size_t es = keep ? et_size(t.et) : 0;
  if (keep && (uint64_t)count > SIZE_MAX / es) parse_fail(p, off, "dense literal is too large");
  uint8_t *bytes = keep ? arena_alloc(p->a, (size_t)count * es + 1) : NULL;
  lex_seek(p, body); /* pass 2: encode (or only check, for values not kept) */
  for (int64_t i = 0; i < count;) {
    if (tok_punct(p, '[') || tok_punct(p, ']') || tok_punct(p, ',')) {
      lex_next(p);
      continue;
    }
    encode_element(p, &t, keep ? bytes + (size_t)i * es : NULL);
    i++;
  }
  lex_seek(p, after);
  Dense *d = arena_alloc(p->a, sizeof *d);
  d->et = t.et;
  d->numel = numel;
  d->splat = splat && numel != 1;
  d->data = keep ? (Data){DATA_RAW, bytes, (size_t)count * es} : (Data){DATA_NONE, NULL, 0};
  return dense_attr(p, off, t, d);
}
