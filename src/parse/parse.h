/* parse/parse.h - what the files of the parser share, and nothing else needs.
 *
 * The parser reads the MLIR text of a StableHLO module (as JAX prints it)
 * into the HLO IR of ir/ir.h.  It is split by subject:
 *
 *   lex.c    tokens, positions, numbers and strings, and parse_fail
 *   attr.c   types, attribute values, attribute dicts and locations
 *   dense.c  dense<...> literals and the float encoders they need
 *   op.c     one operation: generic form, pretty forms, normalisation
 *   parse.c  module, functions, regions, value scopes, location scopes
 *
 * Errors: the parser stops at the first one.  parse_fail reports it with its
 * position and longjmps back to parse_module, which returns NULL; everything
 * built so far lives in the arena and is freed with it.  This keeps every
 * parse function free of error plumbing, the way the arena keeps it free of
 * NULL checks.
 *
 * Recursion (regions in ops, attributes in attributes, tuple types, nested
 * locations, nested dense lists) goes through parse_enter/parse_leave, which
 * bound it at PARSE_MAX_DEPTH so a hostile input cannot overflow the stack.
 */
#ifndef H2O_PARSE_H
#define H2O_PARSE_H

#include "ir/ir.h"

#define PARSE_MAX_DEPTH 256
/* The longest name: identifiers, %values, @symbols (quoted ones once
 * decoded), #aliases and location names.  String literals are otherwise
 * unbounded (a hex blob is as long as its tensor), numbers are bounded by
 * their value or, for floats, by lex.c's buffer. */
#define PARSE_MAX_NAME 4096

/* ---- lex.c ------------------------------------------------------------ */

typedef enum TokKind {
  T_EOF,
  T_IDENT,  /* bare identifier: stablehlo.add, tensor, dense, GT, x */
  T_VALUE,  /* %0, %arg1, %0#1 (the #N suffix is part of the token) */
  T_SYMBOL, /* @main, @"quoted name" */
  T_HASH,   /* #loc3, #stablehlo.dot, #stablehlo */
  T_CARET,  /* ^bb0 */
  T_BANG,   /* !stablehlo.token */
  T_INT,    /* 12, -3, 0x7FC00000 */
  T_FLOAT,  /* 1.0, -2.5e-3, 9.99999974E-6 */
  T_STRING, /* "text" with its quotes; escapes are decoded on demand */
  T_ARROW,  /* -> */
  T_PUNCT   /* one character: ( ) { } [ ] < > , : = ? * + - | */
} TokKind;

typedef struct Token {
  TokKind kind;
  size_t off; /* offset of its first byte in the source */
  size_t len;
  char ch;    /* T_PUNCT: the character */
  bool bol;   /* first token on its line */
} Token;

typedef struct StrEntry {
  const char *key; /* not NUL-terminated; points into the source or the arena */
  size_t len;
  uint32_t hash;
  void *val;
  struct StrEntry *next;
} StrEntry;

typedef struct StrMap {
  StrEntry **buckets;
  int n_buckets, count;
} StrMap;

typedef struct Loc Loc;
typedef struct Binding Binding;

typedef struct PendingLoc {
  const char **target; /* where the resolved scope goes (Op.scope, ...) */
  const char **source; /* where its Python "file:line" goes (Op.source), or NULL */
  Loc *loc;
} PendingLoc;

typedef struct Parser {
  Ctx *c;
  Arena *a;
  const char *src;
  size_t len;
  size_t cur;       /* where the lexer continues: just after tok */
  Token tok;        /* the current token */
  size_t *lines;    /* offset of the first byte of each line */
  int n_lines;
  jmp_buf *bail;    /* parse_fail jumps here */
  int depth;        /* current nesting, bounded by PARSE_MAX_DEPTH */
  /* value names in scope (parse.c) */
  StrMap names;
  Binding **undo;   /* bindings in definition order, popped by scope_leave */
  int n_undo, cap_undo;
  int scope_depth;
  /* location aliases (#loc3 = loc(...)) and the locs that wait for them */
  StrMap loc_aliases;
  StrMap attr_aliases; /* #name = <attribute> defined at the top */
  PendingLoc *pending;
  int n_pending, cap_pending;
  PtrVec calls;     /* call ops, checked against their callees at the end */
} Parser;

void lex_init(Parser *p, Ctx *c, jmp_buf *bail);
void lex_next(Parser *p);
void lex_seek(Parser *p, size_t off); /* re-lex starting at off */
Token lex_peek(Parser *p);            /* the token after tok */
SrcPos lex_pos(const Parser *p, size_t off);
_Noreturn void parse_fail(Parser *p, size_t off, const char *fmt, ...)
    H2O_PRINTF(3, 4);
/* The same at a position already converted (an op's, a function's). */
_Noreturn void parse_fail_pos(Parser *p, SrcPos pos, const char *fmt, ...)
    H2O_PRINTF(3, 4);
/* The current token, quoted and shortened, for "expected X, got Y". */
const char *tok_desc(Parser *p);
const char *tok_ptr(const Parser *p, const Token *t);
bool tok_punct(const Parser *p, char ch);
bool tok_ident(const Parser *p, const char *word);
bool accept_punct(Parser *p, char ch);
bool accept_ident(Parser *p, const char *word);
void expect_punct(Parser *p, char ch, const char *context);
void parse_enter(Parser *p);
void parse_leave(Parser *p);
/* Decodes a T_STRING token (escapes \" \\ \n \t \XX); NUL-terminated copy. */
char *tok_string(Parser *p, const Token *t, size_t *len);
/* The same for a string that becomes a name (a location's): fails unless
 * the decoded bytes are UTF-8 without NUL. */
char *tok_name_string(Parser *p, const Token *t);
/* The text of an identifier-like token (T_IDENT, the name of a T_SYMBOL
 * without '@', T_HASH without '#'), NUL-terminated in the arena. */
char *tok_name(Parser *p, const Token *t);
/* A T_INT token: magnitude and sign.  Fails on overflow past 2^64-1. */
void tok_int(Parser *p, const Token *t, bool *neg, uint64_t *mag);
bool tok_is_hex(const Parser *p, const Token *t);
/* A T_INT or T_FLOAT token as a double (decimal, correctly rounded). */
double tok_double(Parser *p, const Token *t);
float tok_float32(Parser *p, const Token *t);
bool is_ident_char(int ch);
void *parse_grow(Parser *p, void *items, int *cap, int n, size_t elem);
void **strmap_get(Parser *p, StrMap *m, const char *key, size_t len, bool create,
                  StrEntry **entry);

/* ---- attr.c ----------------------------------------------------------- */

/* A scalar type used outside a tensor (`1 : i64`, `array<i64: ...>`) is
 * TK_OTHER with .et set and rank 0; `index`, `none` and dialect types are
 * TK_OTHER with ET_UNDEF. */
Type parse_type(Parser *p);
bool tok_starts_type(Parser *p);
/* Prints a type for messages, including tuple and other types. */
const char *type_text(Parser *p, const Type *t);

enum { ATTR_TYPED = 1 }; /* `value : type` may follow (not in pretty ops) */
Attr *parse_attr_value(Parser *p, int flags);
Attr *new_attr(Parser *p, AttrKind kind, size_t off);
Attr *attr_int(Parser *p, int64_t v, size_t off);
Attr *attr_array(Parser *p, Attr **elems, int n, size_t off);
/* `{a = 1, b}` (tok at '{') appended to *attrs. */
void parse_attr_dict(Parser *p, NamedAttr **attrs, int *n, int *cap);
void push_named(Parser *p, NamedAttr **attrs, int *n, int *cap,
                const char *name, Attr *value);
/* `[b, 0, 1, f]x[0, 1, i, o]->[b, 0, 1, f]` into a "stablehlo.conv" dict. */
Attr *parse_conv_dims(Parser *p);

typedef enum LocKind {
  LOC_UNKNOWN, LOC_NAME, LOC_FILE, LOC_CALLSITE, LOC_FUSED, LOC_ALIAS
} LocKind;

typedef struct LocAlias {
  const char *name;
  Loc *def;       /* NULL until `#name = loc(...)` is seen */
  size_t ref_off; /* where it was first seen, for "undefined alias" */
} LocAlias;

struct Loc {
  LocKind kind;
  const char *name; /* LOC_NAME */
  Loc *child;       /* LOC_NAME: the child location; LOC_CALLSITE: the callee */
  Loc *caller;      /* LOC_CALLSITE */
  Loc **elems;      /* LOC_FUSED */
  int n_elems;
  LocAlias *alias;  /* LOC_ALIAS */
  int line;         /* LOC_FILE: "name":line:col */
  size_t off;
};

/* `loc(...)` with tok at `loc`. */
Loc *parse_loc(Parser *p);
/* An optional loc(...): NULL when there is none. */
Loc *parse_opt_loc_node(Parser *p);
/* An optional trailing loc(...) whose scope goes to *target (may be NULL:
 * then its aliases are still checked). */
void parse_opt_loc(Parser *p, const char **target);
/* *target = the scope of loc, once the whole file is read. */
void add_pending_loc(Parser *p, const char **target, Loc *loc);
/* The same for an op: its scope and its source (Op.scope, Op.source). */
void add_pending_op_loc(Parser *p, Op *op, Loc *loc);
/* `#name = loc(...)` or `#name = <attribute>` at the top of the file. */
void parse_alias_def(Parser *p);
/* Sets every pending target to its scope: the outermost name of its
 * location, following aliases; NULL for unknown and file locations.  An
 * op's source is its innermost file location ("model.py:12"): JAX writes
 * the Python frames of the op as callsite(callee at caller) chains inside
 * the scope's name, innermost first. */
void resolve_locs(Parser *p);

/* ---- dense.c ---------------------------------------------------------- */

/* `dense<...> : tensor<...>` with tok at `dense`. */
Attr *parse_dense(Parser *p);

/* ---- op.c ------------------------------------------------------------- */

/* One operation of a block, appended to *ops. */
void parse_op(Parser *p, PtrVec *ops);

/* ---- parse.c ---------------------------------------------------------- */

void scope_define(Parser *p, const char *name, size_t len, Value **vals, int n,
                  size_t off);
/* A use `%x` or `%x#2` (tok at it); fails when undefined. */
Value *scope_use(Parser *p);
Value *new_value(Parser *p, const char *name, Type type, Op *def, int index);
/* `{ ... }` with tok at '{'.  args (or those of a `^bb0(...)` label when
 * args is empty) become the block's arguments, defined in the region's scope. */
Region *parse_region(Parser *p, Value **args, int n_args, size_t *arg_offs);

#endif
