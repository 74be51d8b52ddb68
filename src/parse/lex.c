/* lex.c - tokens of the MLIR text, their positions, and parse errors.
 *
 * The lexer is pulled by the parser one token at a time (Parser.tok) and can
 * be repositioned (lex_seek): types like tensor<4x?xf32> and opaque <...>
 * bodies are scanned character by character by attr.c, which then resumes
 * the lexer behind them.  Tokens keep their byte offset; lex_pos turns it
 * into line:col through a table of line starts built once.
 *
 * Nothing here reads past src_len: the input is not NUL-terminated.
 *
 * Strings: raw bytes in a string literal must be valid UTF-8 (names flow
 * into ONNX, whose strings are UTF-8); escapes (\XX) may produce any byte,
 * because they say so explicitly.  Comments (//) may contain anything.
 */
#include "parse.h"

#include <limits.h>
#include <locale.h>
#include <stdlib.h>
#include <string.h>

void *parse_grow(Parser *p, void *items, int *cap, int n, size_t elem) {
  if (n < *cap) return items;
  if (*cap > (1 << 28)) parse_fail(p, p->tok.off, "too many items in a list");
  int ncap = *cap ? *cap * 2 : 4;
  items = arena_realloc(p->a, items, elem * (size_t)*cap, elem * (size_t)ncap);
  *cap = ncap;
  return items;
}

/* ---- positions and errors ------------------------------------------------ */

static void build_line_table(Parser *p) {
  int n = 1;
  for (const char *q = p->src, *end = p->src + p->len;
       q < end && (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
    if (++n == INT_MAX) { /* SrcPos.line is an int */
      diag_error(p->c, H2O_EINPUT, "the input has more than %d lines", INT_MAX - 1);
      longjmp(*p->bail, 1);
    }
  p->lines = arena_alloc(p->a, sizeof(size_t) * (size_t)n);
  p->n_lines = n;
  int i = 1;
  for (const char *q = p->src, *end = p->src + p->len;
       q < end && (q = memchr(q, '\n', (size_t)(end - q))) != NULL; q++)
    p->lines[i++] = (size_t)(q - p->src) + 1;
}

SrcPos lex_pos(const Parser *p, size_t off) {
  int lo = 0, hi = p->n_lines - 1;
  while (lo < hi) { /* the last line starting at or before off */
    int mid = lo + (hi - lo + 1) / 2;
    if (p->lines[mid] <= off) lo = mid;
    else hi = mid - 1;
  }
  size_t col = off - p->lines[lo] + 1;
  return (SrcPos){lo + 1, col > 1000000000 ? 1000000000 : (int)col};
}

_Noreturn void parse_fail(Parser *p, size_t off, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_verror_at(p->c, H2O_EINPUT, lex_pos(p, off), fmt, ap);
  va_end(ap);
  longjmp(*p->bail, 1);
}

_Noreturn void parse_fail_pos(Parser *p, SrcPos pos, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_verror_at(p->c, H2O_EINPUT, pos, fmt, ap);
  va_end(ap);
  longjmp(*p->bail, 1);
}

void parse_enter(Parser *p) {
  if (++p->depth > PARSE_MAX_DEPTH)
    parse_fail(p, p->tok.off, "nesting is deeper than %d levels", PARSE_MAX_DEPTH);
}

void parse_leave(Parser *p) { p->depth--; }

/* ---- tokens -------------------------------------------------------------- */

bool is_ident_char(int ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
         (ch >= '0' && ch <= '9') || ch == '_' || ch == '$' || ch == '.';
}

static bool is_digit(int ch) { return ch >= '0' && ch <= '9'; }

static bool is_hex_digit(int ch) {
  return is_digit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F');
}

/* Suffix of %name, ^name, !name, #name: MLIR also allows '-' there. */
static bool is_suffix_char(int ch) { return is_ident_char(ch) || ch == '-'; }

/* Length of the UTF-8 sequence at s (at most n bytes), or 0 if invalid. */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
  unsigned c0 = s[0];
  size_t len;
  uint32_t min, cp;
  if (c0 < 0x80) return 1;
  if ((c0 & 0xE0) == 0xC0) len = 2, min = 0x80, cp = c0 & 0x1F;
  else if ((c0 & 0xF0) == 0xE0) len = 3, min = 0x800, cp = c0 & 0x0F;
  else if ((c0 & 0xF8) == 0xF0) len = 4, min = 0x10000, cp = c0 & 0x07;
  else return 0;
  if (len > n) return 0;
  for (size_t i = 1; i < len; i++) {
    if ((s[i] & 0xC0) != 0x80) return 0;
    cp = cp << 6 | (s[i] & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

static size_t lex_string_end(Parser *p, size_t start) {
  size_t i = start + 1;
  const unsigned char *s = (const unsigned char *)p->src;
  while (i < p->len) {
    /* plain ASCII runs (all of a hex blob) in a tight loop: 64 bytes at a
     * time while none of them needs a look (a branch-free test that the
     * compiler vectorizes; a 1 GB weight is 2 GB of digits), then by byte */
    while (p->len - i >= 64) {
      unsigned stop = 0;
      for (int k = 0; k < 64; k++) {
        unsigned char c = s[i + k];
        stop |= (unsigned)(c < 0x20) | (unsigned)(c >= 0x80) | (unsigned)(c == '"') |
                (unsigned)(c == '\\');
      }
      if (stop) break;
      i += 64;
    }
    while (i < p->len && s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\') i++;
    if (i >= p->len) break;
    unsigned char ch = s[i];
    if (ch == '"') return i + 1;
    if (ch == '\n' || ch == '\r')
      parse_fail(p, start, "string literal is not closed on its line");
    if (ch == '\\') {
      if (i + 1 >= p->len) break;
      i += 2;
      continue;
    }
    if (ch >= 0x80) {
      size_t n = utf8_seq_len((const unsigned char *)p->src + i, p->len - i);
      if (!n) parse_fail(p, i, "invalid UTF-8 in string literal");
      i += n;
      continue;
    }
    i++;
  }
  parse_fail(p, start, "string literal is not closed before the end of the input");
}

/* A number at i: [-]digits[.digits][e[+-]digits] or 0x hex digits. */
static size_t lex_number(Parser *p, size_t i, TokKind *kind) {
  const char *s = p->src;
  size_t n = p->len;
  *kind = T_INT;
  if (s[i] == '-') i++;
  if (s[i] == '0' && i + 2 < n && (s[i + 1] == 'x' || s[i + 1] == 'X') &&
      is_hex_digit(s[i + 2])) {
    i += 2;
    while (i < n && is_hex_digit(s[i])) i++;
    return i;
  }
  while (i < n && is_digit(s[i])) i++;
  if (i < n && s[i] == '.') {
    *kind = T_FLOAT;
    i++;
    while (i < n && is_digit(s[i])) i++;
  }
  if (i < n && (s[i] == 'e' || s[i] == 'E')) {
    size_t j = i + 1;
    if (j < n && (s[j] == '+' || s[j] == '-')) j++;
    if (j < n && is_digit(s[j])) {
      *kind = T_FLOAT;
      i = j;
      while (i < n && is_digit(s[i])) i++;
    }
  }
  return i;
}

static void lex_at(Parser *p, size_t i) {
  const char *s = p->src;
  size_t n = p->len;
  bool bol = i == 0;
  for (;;) { /* whitespace and // comments */
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
      if (s[i] == '\n') bol = true;
      i++;
    }
    if (i + 1 < n && s[i] == '/' && s[i + 1] == '/') {
      while (i < n && s[i] != '\n') i++;
      continue;
    }
    break;
  }
  if (i > 0 && !bol) { /* lex_seek may land at a line start */
    size_t j = i;
    while (j > 0 && (s[j - 1] == ' ' || s[j - 1] == '\t')) j--;
    bol = j == 0 || s[j - 1] == '\n';
  }
  Token t = {.off = i, .bol = bol};
  if (i >= n) {
    t.kind = T_EOF;
    p->tok = t;
    p->cur = n;
    return;
  }
  unsigned char ch = (unsigned char)s[i];
  size_t end = i + 1;
  if (is_digit(ch) || (ch == '-' && i + 1 < n && is_digit(s[i + 1]))) {
    end = lex_number(p, i, &t.kind);
  } else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_') {
    t.kind = T_IDENT;
    while (end < n && is_ident_char(s[end])) end++;
  } else if (ch == '%' || ch == '^' || ch == '!' || ch == '#') {
    t.kind = ch == '%' ? T_VALUE : ch == '^' ? T_CARET : ch == '!' ? T_BANG : T_HASH;
    while (end < n && is_suffix_char(s[end])) end++;
    if (end == i + 1) parse_fail(p, i, "expected a name after '%c'", ch);
    if (ch == '%' && end + 1 < n && s[end] == '#' && is_digit(s[end + 1])) {
      end++; /* %0#1: the result number is part of the use */
      while (end < n && is_digit(s[end])) end++;
    }
  } else if (ch == '@') {
    t.kind = T_SYMBOL;
    if (end < n && s[end] == '"') {
      end = lex_string_end(p, end);
    } else {
      while (end < n && is_suffix_char(s[end])) end++;
      if (end == i + 1) parse_fail(p, i, "expected a symbol name after '@'");
    }
  } else if (ch == '"') {
    t.kind = T_STRING;
    end = lex_string_end(p, i);
  } else if (ch == '-' && i + 1 < n && s[i + 1] == '>') {
    t.kind = T_ARROW;
    end = i + 2;
  } else if (strchr("(){}[]<>,:=?*+-|", ch) && ch) {
    t.kind = T_PUNCT;
    t.ch = (char)ch;
  } else if (ch >= 0x20 && ch < 0x7F) {
    parse_fail(p, i, "unexpected character '%c'", ch);
  } else if (ch >= 0x80) {
    parse_fail(p, i, "unexpected byte 0x%02X (non-ASCII text is only allowed in string "
               "literals)", ch);
  } else {
    parse_fail(p, i, "unexpected byte 0x%02X", ch);
  }
  t.len = end - i;
  if (t.len > PARSE_MAX_NAME && t.kind != T_STRING && t.kind != T_INT &&
      t.kind != T_FLOAT && !(t.kind == T_SYMBOL && s[i + 1] == '"'))
    parse_fail(p, i, "name is longer than %d bytes", PARSE_MAX_NAME);
  p->tok = t;
  p->cur = end;
}

void lex_init(Parser *p, Ctx *c, jmp_buf *bail) {
  p->c = c;
  p->a = c->arena;
  p->src = c->src ? c->src : "";
  p->len = c->src ? c->src_len : 0;
  p->bail = bail;
  build_line_table(p);
  lex_at(p, 0);
}

void lex_next(Parser *p) { lex_at(p, p->cur); }

void lex_seek(Parser *p, size_t off) { lex_at(p, off); }

Token lex_peek(Parser *p) {
  Token saved = p->tok;
  size_t cur = p->cur;
  lex_at(p, cur);
  Token next = p->tok;
  p->tok = saved;
  p->cur = cur;
  return next;
}

const char *tok_ptr(const Parser *p, const Token *t) { return p->src + t->off; }

const char *tok_desc(Parser *p) {
  const Token *t = &p->tok;
  if (t->kind == T_EOF) return "end of input";
  size_t n = t->len > 40 ? 40 : t->len;
  return arena_printf(p->a, "'%.*s%s'", (int)n, tok_ptr(p, t), t->len > n ? "..." : "");
}

bool tok_punct(const Parser *p, char ch) {
  return p->tok.kind == T_PUNCT && p->tok.ch == ch;
}

bool tok_ident(const Parser *p, const char *word) {
  size_t n = strlen(word);
  return p->tok.kind == T_IDENT && p->tok.len == n &&
         memcmp(tok_ptr(p, &p->tok), word, n) == 0;
}

bool accept_punct(Parser *p, char ch) {
  if (!tok_punct(p, ch)) return false;
  lex_next(p);
  return true;
}

bool accept_ident(Parser *p, const char *word) {
  if (!tok_ident(p, word)) return false;
  lex_next(p);
  return true;
}

void expect_punct(Parser *p, char ch, const char *context) {
  if (!accept_punct(p, ch))
    parse_fail(p, p->tok.off, "expected '%c' %s, got %s", ch, context, tok_desc(p));
}

/* ---- strings ------------------------------------------------------------- */

static int hex_value(int ch) {
  if (ch >= '0' && ch <= '9') return ch - '0';
  if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
  return -1;
}

/* Decodes the string literal starting at off (at its '"'). */
static char *decode_string(Parser *p, size_t off, size_t *out_len) {
  const char *s = p->src;
  size_t i = off + 1, end = lex_string_end(p, off) - 1;
  char *out = arena_alloc(p->a, end - i + 1);
  size_t n = 0;
  while (i < end) {
    char ch = s[i];
    if (ch != '\\') {
      out[n++] = ch;
      i++;
      continue;
    }
    char e = s[i + 1];
    if (e == '"' || e == '\\') out[n++] = e, i += 2;
    else if (e == 'n') out[n++] = '\n', i += 2;
    else if (e == 't') out[n++] = '\t', i += 2;
    else if (i + 2 < end && hex_value(e) >= 0 && hex_value(s[i + 2]) >= 0) {
      out[n++] = (char)(hex_value(e) << 4 | hex_value(s[i + 2]));
      i += 3;
    } else {
      parse_fail(p, i, "unknown escape '\\%c' in string literal", e);
    }
  }
  out[n] = 0;
  if (out_len) *out_len = n;
  return out;
}

char *tok_string(Parser *p, const Token *t, size_t *len) {
  return decode_string(p, t->off, len);
}

/* A decoded string that becomes a name (symbols, locations): names flow into
 * ONNX string fields, which must be UTF-8, and are C strings from here on.
 * The raw bytes were checked by the lexer; escapes are checked here. */
static char *checked_name(Parser *p, size_t off, char *s, size_t n) {
  if (n > PARSE_MAX_NAME) parse_fail(p, off, "name is longer than %d bytes", PARSE_MAX_NAME);
  if (memchr(s, 0, n)) parse_fail(p, off, "a name must not contain a NUL byte (\\00)");
  for (size_t i = 0; i < n;) {
    size_t k = utf8_seq_len((const unsigned char *)s + i, n - i);
    if (!k) parse_fail(p, off, "name is not valid UTF-8 once its escapes are decoded");
    i += k;
  }
  return s;
}

char *tok_name_string(Parser *p, const Token *t) {
  size_t n;
  char *s = decode_string(p, t->off, &n);
  return checked_name(p, t->off, s, n);
}

char *tok_name(Parser *p, const Token *t) {
  const char *s = tok_ptr(p, t);
  switch (t->kind) {
  case T_SYMBOL:
    if (t->len > 1 && s[1] == '"') {
      size_t n;
      char *name = decode_string(p, t->off + 1, &n);
      return checked_name(p, t->off, name, n);
    }
    return arena_strndup(p->a, s + 1, t->len - 1);
  case T_HASH: case T_BANG: case T_CARET:
    return arena_strndup(p->a, s + 1, t->len - 1);
  default:
    return arena_strndup(p->a, s, t->len);
  }
}

/* ---- numbers ------------------------------------------------------------- */

bool tok_is_hex(const Parser *p, const Token *t) {
  const char *s = tok_ptr(p, t);
  size_t i = s[0] == '-' ? 1 : 0;
  return t->kind == T_INT && t->len > i + 1 && s[i] == '0' && (s[i + 1] == 'x' || s[i + 1] == 'X');
}

void tok_int(Parser *p, const Token *t, bool *neg, uint64_t *mag) {
  const char *s = tok_ptr(p, t);
  size_t i = 0;
  uint64_t v = 0;
  *neg = s[0] == '-';
  if (*neg) i++;
  if (tok_is_hex(p, t)) {
    i += 2;
    for (; i < t->len; i++) {
      if (v >> 60) parse_fail(p, t->off, "integer literal does not fit in 64 bits");
      v = v << 4 | (uint64_t)hex_value(s[i]);
    }
  } else {
    for (; i < t->len; i++) {
      uint64_t d = (uint64_t)(s[i] - '0');
      if (v > (UINT64_MAX - d) / 10)
        parse_fail(p, t->off, "integer literal does not fit in 64 bits");
      v = v * 10 + d;
    }
  }
  *mag = v;
}

/* Copies a number token into buf with '.' replaced by the decimal point of
 * the current locale: strtod is locale-dependent, and a host process (Python
 * with LC_NUMERIC set, say) may have set a locale that writes "1,5". */
static void number_text(Parser *p, const Token *t, char *buf, size_t size) {
  if (t->len + 1 > size) parse_fail(p, t->off, "number literal is too long");
  const char *point = localeconv()->decimal_point;
  char dp = point && point[0] ? point[0] : '.';
  for (size_t i = 0; i < t->len; i++) {
    char ch = tok_ptr(p, t)[i];
    buf[i] = ch == '.' ? dp : ch;
  }
  buf[t->len] = 0;
}

double tok_double(Parser *p, const Token *t) {
  if (t->kind == T_INT) {
    bool neg;
    uint64_t mag;
    tok_int(p, t, &neg, &mag);
    return neg ? -(double)mag : (double)mag;
  }
  char buf[128];
  number_text(p, t, buf, sizeof buf);
  return strtod(buf, NULL); /* overflow gives +-inf, as MLIR's APFloat does */
}

float tok_float32(Parser *p, const Token *t) {
  if (t->kind == T_INT) return (float)tok_double(p, t);
  char buf[128];
  number_text(p, t, buf, sizeof buf);
  return strtof(buf, NULL); /* one rounding, straight from the decimal */
}

/* ---- string maps (value scopes, aliases) ---------------------------------- */

static uint32_t hash_bytes(const char *s, size_t n) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

void **strmap_get(Parser *p, StrMap *m, const char *key, size_t len, bool create,
                  StrEntry **entry) {
  uint32_t h = hash_bytes(key, len);
  if (m->n_buckets) {
    for (StrEntry *e = m->buckets[h & (uint32_t)(m->n_buckets - 1)]; e; e = e->next)
      if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0) {
        if (entry) *entry = e;
        return &e->val;
      }
  }
  if (!create) return NULL;
  if (m->count >= m->n_buckets) { /* keep the load factor at most 1 */
    int nb = m->n_buckets ? m->n_buckets * 2 : 64;
    StrEntry **b = arena_alloc(p->a, sizeof(StrEntry *) * (size_t)nb);
    for (int i = 0; i < m->n_buckets; i++)
      for (StrEntry *e = m->buckets[i], *next; e; e = next) {
        next = e->next;
        e->next = b[e->hash & (uint32_t)(nb - 1)];
        b[e->hash & (uint32_t)(nb - 1)] = e;
      }
    m->buckets = b;
    m->n_buckets = nb;
  }
  StrEntry *e = arena_alloc(p->a, sizeof *e);
  e->key = key;
  e->len = len;
  e->hash = h;
  e->next = m->buckets[h & (uint32_t)(m->n_buckets - 1)];
  m->buckets[h & (uint32_t)(m->n_buckets - 1)] = e;
  m->count++;
  if (entry) *entry = e;
  return &e->val;
}
