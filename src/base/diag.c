/* diag.c - diagnostics: user errors as values, with their positions.
 *
 * Every message is one "file:line:col: error: text" line, followed by the
 * source line and a caret under the column when the position is known, as
 * compilers print them; an error about an op whose location names the
 * Python line that made it ends with "  from Python: model.py:12" (the
 * Python package leads with that line instead: hlo2onnx/naming.py).  Messages accumulate in Ctx.diag (an h2o_malloc'd
 * string the caller receives), so one run can report every problem it
 * finds; the first error decides Ctx.status.  When memory runs out, a
 * message is cut short or lost, never the status.
 */
#include "base/base.h"

#include <stdlib.h>
#include <string.h>

void ctx_init(Ctx *c, Arena *a, jmp_buf *oom, const char *file, const char *src,
              size_t len, const h2o_options *opts) {
  memset(c, 0, sizeof *c);
  c->arena = a;
  c->oom = oom;
  c->file = file ? file : "<input>";
  c->src = src;
  c->src_len = len;
  c->opts = opts;
  c->max_errors = 50;
}

void ctx_release(Ctx *c) {
  h2o_free(c->diag);
  c->diag = NULL;
  c->diag_len = c->diag_cap = 0;
}

static void diag_append(Ctx *c, const char *s, size_t n) {
  if (c->diag_len + n + 1 > c->diag_cap) {
    size_t cap = c->diag_cap ? c->diag_cap : 256;
    while (cap < c->diag_len + n + 1) cap *= 2;
    char *p = h2o_realloc(c->diag, cap);
    if (!p) return; /* keep what we have; the status still says it failed */
    c->diag = p;
    c->diag_cap = cap;
  }
  memcpy(c->diag + c->diag_len, s, n);
  c->diag_len += n;
  c->diag[c->diag_len] = 0;
}

static void diag_vappendf(Ctx *c, const char *fmt, va_list ap) {
  char buf[1024];
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(buf, sizeof buf, fmt, ap);
  if (n < 0) {
    va_end(ap2);
    return;
  }
  if ((size_t)n < sizeof buf) {
    diag_append(c, buf, (size_t)n);
  } else {
    char *big = h2o_malloc((size_t)n + 1);
    if (big) {
      vsnprintf(big, (size_t)n + 1, fmt, ap2);
      diag_append(c, big, (size_t)n);
      h2o_free(big);
    }
  }
  va_end(ap2);
}

static void diag_appendf(Ctx *c, const char *fmt, ...) H2O_PRINTF(2, 3);
static void diag_appendf(Ctx *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_vappendf(c, fmt, ap);
  va_end(ap);
}

/* Appends the source line of `pos` and a caret under its column.  Tabs are
 * kept so the caret lines up in a terminal; bytes that are not printable
 * ASCII are shown as '?' so a binary input cannot garble the terminal. */
static void diag_show_line(Ctx *c, SrcPos pos) {
  if (!c->src || pos.line <= 0) return;
  const char *p = c->src, *end = c->src + c->src_len;
  for (int line = 1; line < pos.line && p < end; p++)
    if (*p == '\n') line++;
  const char *eol = p;
  while (eol < end && *eol != '\n') eol++;
  size_t n = (size_t)(eol - p);
  if (n > 400) n = 400; /* a 1 MB line of hex is not worth printing */
  char *shown = h2o_malloc(n + 1);
  if (!shown) return;
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)p[i];
    shown[i] = (ch == '\t' || (ch >= 32 && ch < 127)) ? (char)ch : '?';
  }
  shown[n] = 0;
  diag_appendf(c, "  %s\n  ", shown);
  for (int i = 1; i < pos.col && (size_t)(i - 1) < n; i++)
    diag_append(c, p[i - 1] == '\t' ? "\t" : " ", 1);
  diag_append(c, "^\n", 2);
  h2o_free(shown);
}

static bool diag_count(Ctx *c, int status) {
  if (c->status == H2O_OK) c->status = status;
  c->n_errors++;
  if (c->n_errors == c->max_errors + 1)
    diag_appendf(c, "%s: error: too many errors, stopping here\n", c->file);
  return c->n_errors <= c->max_errors;
}

int diag_verror_scoped(Ctx *c, int status, SrcPos pos, const char *scope,
                       const char *source, const char *fmt, va_list ap) {
  if (!diag_count(c, status)) return -1;
  if (pos.line > 0)
    diag_appendf(c, "%s:%d:%d: error: ", c->file, pos.line, pos.col);
  else
    diag_appendf(c, "%s: error: ", c->file);
  diag_vappendf(c, fmt, ap);
  if (scope) diag_appendf(c, " (JAX scope: %s)", scope);
  diag_append(c, "\n", 1);
  diag_show_line(c, pos);
  if (source) diag_appendf(c, "  from Python: %s\n", source);
  return -1;
}

int diag_verror_at(Ctx *c, int status, SrcPos pos, const char *fmt, va_list ap) {
  return diag_verror_scoped(c, status, pos, NULL, NULL, fmt, ap);
}

int diag_error_at(Ctx *c, int status, SrcPos pos, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_verror_at(c, status, pos, fmt, ap);
  va_end(ap);
  return -1;
}

int diag_error(Ctx *c, int status, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_verror_at(c, status, (SrcPos){0, 0}, fmt, ap);
  va_end(ap);
  return -1;
}

int diag_internal(Ctx *c, const char *file, int line, const char *what) {
  return diag_error(c, H2O_EINTERNAL,
                    "internal error at %s:%d: check failed: %s (please report "
                    "this with the input that caused it)",
                    file, line, what);
}

void diag_note(Ctx *c, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  diag_vappendf(c, fmt, ap);
  va_end(ap);
  diag_append(c, "\n", 1);
}
