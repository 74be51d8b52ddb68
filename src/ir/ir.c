/* ir.c - reading the HLO IR: lookups the lowering needs, and a dump of the
 * IR after parsing (--dump-after parse) in an MLIR-like generic form, one op a line,
 * with each op's position and JAX scope, so a reader can see exactly what
 * the parser made of the text (normalised attribute names included).
 */
#include "ir/ir.h"

#include <inttypes.h>
#include <limits.h>
#include <string.h>

Func *ir_find_func(const Module *m, const char *name) {
  for (int i = 0; i < m->n_funcs; i++)
    if (strcmp(m->funcs[i]->name, name) == 0) return m->funcs[i];
  return NULL;
}

Func *ir_entry_func(const Module *m) {
  Func *only = NULL;
  int n_public = 0;
  for (int i = 0; i < m->n_funcs; i++) {
    Func *f = m->funcs[i];
    if (!f->is_public) continue;
    if (strcmp(f->name, "main") == 0) return f;
    only = f;
    n_public++;
  }
  return n_public == 1 ? only : NULL;
}

const Attr *ir_attr(const NamedAttr *attrs, int n, const char *name) {
  for (int i = 0; i < n; i++)
    if (strcmp(attrs[i].name, name) == 0) return attrs[i].value;
  return NULL;
}

const Attr *ir_op_attr(const Op *op, const char *name) {
  return ir_attr(op->attrs, op->n_attrs, name);
}

const Attr *ir_dict_field(const Attr *dict, const char *name) {
  if (!dict || dict->kind != AK_DICT) return NULL;
  return ir_attr(dict->fields, dict->n_fields, name);
}

/* Element i of little-endian integer data of type et, sign-extended. */
static int64_t read_int(const uint8_t *bytes, ElemType et, int64_t i) {
  size_t size = et_size(et);
  const uint8_t *q = bytes + (size_t)i * size;
  uint64_t v = 0;
  for (size_t k = 0; k < size; k++) v |= (uint64_t)q[k] << (8 * k);
  if (et_is_signed_int(et) && size < 8 && (v >> (8 * size - 1) & 1))
    v |= ~(uint64_t)0 << (8 * size);
  return (int64_t)v;
}

/* Integers with their bytes at hand (sub-byte ones keep none: dense.c). */
static bool is_int_data(ElemType et) {
  return (et_is_int(et) && et_size(et) > 0) || et == ET_BOOL;
}

/* Counts (out == NULL) or writes the integers of a nested array. */
static int flatten_ints(const Attr *a, int64_t *out, int n) {
  for (int i = 0; i < a->n_elems; i++) {
    const Attr *e = a->elems[i];
    if (e->kind == AK_ARRAY) {
      n = flatten_ints(e, out, n);
      if (n < 0) return -1;
    } else if (e->kind == AK_INT || e->kind == AK_BOOL) {
      if (out) out[n] = e->kind == AK_INT ? e->i : e->b;
      if (n == INT_MAX) return -1;
      n++;
    } else {
      return -1;
    }
  }
  return n;
}

int ir_attr_i64s(Ctx *c, const Attr *a, int64_t **out) {
  *out = NULL;
  if (!a) return -1;
  if (a->kind == AK_ARRAY) {
    int n = flatten_ints(a, NULL, 0);
    if (n < 0) return -1;
    *out = arena_alloc(c->arena, sizeof(int64_t) * (size_t)(n ? n : 1));
    flatten_ints(a, *out, 0);
    return n;
  }
  if (a->kind == AK_DENSE && a->dense && is_int_data(a->dense->et)) {
    const Dense *d = a->dense;
    if (d->numel < 0 || d->numel > INT_MAX) return -1;
    int n = (int)d->numel;
    const uint8_t *bytes = data_bytes(c, &d->data);
    if (!bytes && n) return -1;
    *out = arena_alloc(c->arena, sizeof(int64_t) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) (*out)[i] = read_int(bytes, d->et, d->splat ? 0 : i);
    return n;
  }
  return -1;
}

static int hex_nibble(char ch) {
  return ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
}

bool ir_attr_int(const Attr *a, int64_t *out) {
  if (!a) return false;
  if (a->kind == AK_INT) {
    *out = a->i;
    return true;
  }
  if (a->kind == AK_DENSE && a->dense && is_int_data(a->dense->et) &&
      (a->dense->numel == 1 || a->dense->splat)) {
    const Data *d = &a->dense->data;
    uint8_t bytes[8] = {0};
    size_t size = et_size(a->dense->et);
    if (d->nbytes < size || size > 8) return false;
    if (d->kind == DATA_RAW) {
      memcpy(bytes, d->ptr, size);
    } else if (d->kind == DATA_HEX) {
      const char *hex = d->ptr; /* digits checked by the parser */
      for (size_t k = 0; k < size; k++)
        bytes[k] = (uint8_t)(hex_nibble(hex[2 * k]) << 4 | hex_nibble(hex[2 * k + 1]));
    } else {
      return false;
    }
    *out = read_int(bytes, a->dense->et, 0);
    return true;
  }
  return false;
}

/* ---- uses ---------------------------------------------------------------- */

static void count_block_uses(const Block *b) {
  for (int i = 0; i < b->n_ops; i++) {
    const Op *op = b->ops[i];
    for (int k = 0; k < op->n_operands; k++) {
      Value *v = op->operands[k];
      if (v->user == op) continue; /* f(x, x) is one use of x */
      v->n_uses++;
      v->user = op;
    }
    for (int r = 0; r < op->n_regions; r++)
      for (int j = 0; j < op->regions[r]->n_blocks; j++)
        count_block_uses(op->regions[r]->blocks[j]);
  }
}

void ir_count_uses(Module *m) {
  for (int i = 0; i < m->n_funcs; i++) count_block_uses(m->funcs[i]->body);
}

/* ---- the dump ----------------------------------------------------------------- */

static void dump_type(FILE *f, const Type *t) {
  char buf[64 + 24 * MAX_RANK];
  if (t->kind == TK_TUPLE) fputs("tuple<...>", f);
  else if (t->kind == TK_OTHER) fputs(t->et ? et_mlir_name(t->et) : "<other type>", f);
  else fputs(type_str(t, buf, sizeof buf), f);
}

static void dump_string(FILE *f, const char *s, size_t len) {
  fputc('"', f);
  size_t n = len > 200 ? 200 : len;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
    else if (ch < 32 || ch == 127) fprintf(f, "\\%02X", ch);
    else fputc(ch, f);
  }
  if (n < len) fputs("...", f);
  fputc('"', f);
}

/* A float that reads as one: 2.0, not 2. */
static void dump_float(FILE *f, double v, int digits) {
  char buf[64];
  snprintf(buf, sizeof buf, "%.*g", digits, v);
  fputs(buf, f);
  if (!strpbrk(buf, ".enia")) fputs(".0", f); /* not 1e+10, nan, inf */
}

static void dump_dense(FILE *f, const Attr *a) {
  const Dense *d = a->dense;
  size_t size = et_size(d->et);
  int64_t shown = d->splat ? 1 : d->numel;
  if (d->data.kind == DATA_RAW && shown <= 8 && size) {
    const uint8_t *bytes = d->data.ptr;
    fputs(d->splat || d->numel == 1 ? "dense<" : "dense<[", f);
    for (int64_t i = 0; i < shown; i++) {
      if (i) fputs(", ", f);
      if (is_int_data(d->et)) {
        fprintf(f, "%" PRId64, read_int(bytes, d->et, i));
      } else if (d->et == ET_F32 || d->et == ET_F64) {
        if (d->et == ET_F32) {
          float v;
          memcpy(&v, bytes + 4 * i, 4);
          dump_float(f, v, 9);
        } else {
          double v;
          memcpy(&v, bytes + 8 * i, 8);
          dump_float(f, v, 17);
        }
      } else {
        fputs("0x", f);
        for (size_t k = size; k-- > 0;) fprintf(f, "%02X", bytes[(size_t)i * size + k]);
      }
    }
    fputs(d->splat || d->numel == 1 ? ">" : "]>", f);
  } else if (d->data.kind == DATA_NONE) {
    fputs("dense<values not kept>", f);
  } else {
    fprintf(f, "dense<%s%zu bytes%s>", d->data.kind == DATA_HEX ? "hex blob, " : "",
            d->data.nbytes, d->splat ? ", splat" : "");
  }
  fputs(" : ", f);
  dump_type(f, &a->type);
}

static void dump_attr(FILE *f, const Attr *a) {
  switch (a->kind) {
  case AK_UNIT: fputs("unit", f); break;
  case AK_BOOL: fputs(a->b ? "true" : "false", f); break;
  case AK_INT: fprintf(f, "%" PRId64, a->i); break;
  case AK_FLOAT: dump_float(f, a->f, 17); break;
  case AK_STRING: dump_string(f, a->s, a->len); break;
  case AK_SYMBOL: fprintf(f, "@%s", a->s); break;
  case AK_ENUM: fputs(a->s, f); break;
  case AK_TYPE: dump_type(f, &a->type); break;
  case AK_OPAQUE: fprintf(f, "%s", a->s); break;
  case AK_DENSE: dump_dense(f, a); break;
  case AK_ARRAY:
    fputc('[', f);
    for (int i = 0; i < a->n_elems; i++) {
      if (i) fputs(", ", f);
      dump_attr(f, a->elems[i]);
    }
    fputc(']', f);
    break;
  case AK_DICT:
    if (a->s) fprintf(f, "#%s", a->s);
    fputc('{', f);
    for (int i = 0; i < a->n_fields; i++) {
      fprintf(f, "%s%s = ", i ? ", " : "", a->fields[i].name);
      dump_attr(f, a->fields[i].value);
    }
    fputc('}', f);
    break;
  }
}

static void dump_attrs(FILE *f, const NamedAttr *attrs, int n) {
  if (!n) return;
  fputs(" {", f);
  for (int i = 0; i < n; i++) {
    fprintf(f, "%s%s = ", i ? ", " : "", attrs[i].name);
    dump_attr(f, attrs[i].value);
  }
  fputc('}', f);
}

static void dump_block(FILE *f, const Block *b, int indent, bool header);

static void dump_op(FILE *f, const Op *op, int indent) {
  fprintf(f, "%*s", indent, "");
  for (int i = 0; i < op->n_results; i++)
    fprintf(f, "%s%s", i ? ", " : "", op->results[i]->name);
  if (op->n_results) fputs(" = ", f);
  fprintf(f, "%s%s(", op->opname, op->kind == OP_UNKNOWN ? " /*unknown*/" : "");
  for (int i = 0; i < op->n_operands; i++)
    fprintf(f, "%s%s", i ? ", " : "", op->operands[i]->name);
  fputc(')', f);
  dump_attrs(f, op->attrs, op->n_attrs);
  if (op->n_regions) {
    fputs(" (", f);
    for (int r = 0; r < op->n_regions; r++) {
      fputs(r ? ", {\n" : "{\n", f);
      for (int k = 0; k < op->regions[r]->n_blocks; k++)
        dump_block(f, op->regions[r]->blocks[k], indent + 2, true);
      fprintf(f, "%*s}", indent, "");
    }
    fputc(')', f);
  }
  fputs(" : (", f);
  for (int i = 0; i < op->n_operands; i++) {
    if (i) fputs(", ", f);
    dump_type(f, &op->operands[i]->type);
  }
  fputs(") -> (", f);
  for (int i = 0; i < op->n_results; i++) {
    if (i) fputs(", ", f);
    dump_type(f, &op->results[i]->type);
  }
  fprintf(f, ")  // %d:%d", op->pos.line, op->pos.col);
  if (op->scope) fprintf(f, " %s", op->scope);
  fputc('\n', f);
}

static void dump_block(FILE *f, const Block *b, int indent, bool header) {
  if (header && b->n_args) {
    fprintf(f, "%*s^(", indent > 2 ? indent - 2 : 0, "");
    for (int i = 0; i < b->n_args; i++) {
      fprintf(f, "%s%s: ", i ? ", " : "", b->args[i]->name);
      dump_type(f, &b->args[i]->type);
    }
    fputs("):\n", f);
  }
  for (int i = 0; i < b->n_ops; i++) dump_op(f, b->ops[i], indent);
}

void ir_dump_module(FILE *f, const Module *m) {
  fprintf(f, "module%s%s", m->name ? " @" : "", m->name ? m->name : "");
  dump_attrs(f, m->attrs, m->n_attrs);
  fputc('\n', f);
  for (int i = 0; i < m->n_funcs; i++) {
    const Func *fn = m->funcs[i];
    fprintf(f, "func %s @%s(", fn->is_public ? "public" : "private", fn->name);
    for (int k = 0; k < fn->n_args; k++) {
      fprintf(f, "%s%s: ", k ? ", " : "", fn->body->args[k]->name);
      dump_type(f, &fn->body->args[k]->type);
      dump_attrs(f, fn->arg_attrs[k], fn->arg_n_attrs[k]);
      if (fn->arg_loc_names && fn->arg_loc_names[k]) fprintf(f, " loc(\"%s\")", fn->arg_loc_names[k]);
    }
    fputs(") -> (", f);
    for (int k = 0; k < fn->n_results; k++) {
      if (k) fputs(", ", f);
      dump_type(f, &fn->result_types[k]);
      dump_attrs(f, fn->result_attrs[k], fn->result_n_attrs[k]);
    }
    fprintf(f, ")  // %d:%d\n", fn->pos.line, fn->pos.col);
    dump_block(f, fn->body, 2, false); /* its arguments are on the func line */
  }
}

const char *ir_op_scope(Ctx *c, const Op *op) {
  const char *own = op ? op->scope : NULL;
  if (own && c->call_scope) return arena_printf(c->arena, "%s/%s", c->call_scope, own);
  return own ? own : c->call_scope;
}

int diag_error_op(Ctx *c, int status, const Op *op, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  const char *source = op && op->source ? op->source : c->call_source;
  diag_verror_scoped(c, status, op ? op->pos : (SrcPos){0, 0}, ir_op_scope(c, op), source,
                     fmt, ap);
  va_end(ap);
  return -1;
}
