/* test.h - what the C tests share: CHECK and the count of checks and
 * failures, fail() for a failure a test describes itself, the closing
 * summary that is the exit status, reading a whole file, and - for a test
 * that defines TEST_CONTEXT before including this header - the arena and
 * the fresh context per case that tests of the core build graphs with.
 *
 * Each test is one .c file that includes this header once, after the
 * headers of what it tests; everything here is static to that test.
 */
#ifndef H2O_TESTS_C_TEST_H
#define H2O_TESTS_C_TEST_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int n_checks, n_failed;
/* What the checks are about (set by each case, NULL for none): failure
 * messages name it. */
static const char *current;
/* Exit once more checks than this fail (0: never), for a test whose
 * checks run in loops over thousands of values. */
static int max_failures;

static inline void count_failure(void) {
  if (++n_failed > max_failures && max_failures > 0) {
    fprintf(stderr, "more than %d failures, stopped\n", max_failures);
    exit(1);
  }
}

static inline void check_failed(const char *file, int line, const char *cond) {
  if (current) fprintf(stderr, "%s:%d: [%s] check failed: %s\n", file, line, current, cond);
  else fprintf(stderr, "%s:%d: check failed: %s\n", file, line, cond);
  count_failure();
}

#define CHECK(cond)                                                   \
  do {                                                                \
    n_checks++;                                                       \
    if (!(cond)) check_failed(__FILE__, __LINE__, #cond);             \
  } while (0)

/* A failure the test says in its own words (one line). */
__attribute__((format(printf, 1, 2))) static inline void fail(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  if (current) fprintf(stderr, "[%s] ", current);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  n_checks++;
  count_failure();
}

/* The exit status of test `name`, said on stderr or stdout. */
static inline int test_summary(const char *name) {
  if (n_failed) {
    fprintf(stderr, "%s: %d of %d checks failed\n", name, n_failed, n_checks);
    return 1;
  }
  printf("%s: all %d checks passed\n", name, n_checks);
  return 0;
}

/* The bytes of the file at `path`, malloc'ed, their count in *len; NULL
 * when it cannot be opened or memory runs out.  Not NUL-terminated. */
static inline void *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  size_t cap = 1 << 16, n = 0;
  char *buf = malloc(cap);
  for (size_t got; buf && (got = fread(buf + n, 1, cap - n, f)) > 0;) {
    n += got;
    if (n < cap) continue;
    char *grown = realloc(buf, cap *= 2);
    if (!grown) free(buf);
    buf = grown;
  }
  fclose(f);
  *len = n;
  return buf;
}

#ifdef TEST_CONTEXT
/* The arena of the whole test (main creates it and calls setjmp(oom), the
 * one frame live whenever it allocates) and the options of the next
 * context. */
static jmp_buf oom;
static Arena *A;
static Ctx C;
static h2o_options O;

/* A fresh context (diagnostics, status) with the options O. */
static Ctx *ctx(void) {
  ctx_release(&C);
  ctx_init(&C, A, &oom, "test", NULL, 0, &O);
  return &C;
}
#endif

#endif
