/* alloc.c - the one allocator of the core.  Every block the core takes from
 * the C library (arena chunks, the writer's lists and buffers, diagnostics,
 * the result handed to the caller) comes from h2o_malloc, h2o_calloc or
 * h2o_realloc and goes back through h2o_free, so a test can make any one of
 * them fail and check that the conversion still ends in a clean H2O_ENOMEM,
 * as SQLite and Lua test their out-of-memory paths.
 *
 * The blocks are the C library's own (no header in front), so a caller may
 * free what h2o_result hands it with free() as well as with h2o_result_free.
 *
 * The failure injection exists only in builds with H2O_FAIL_ALLOC defined
 * (CMake's H2O_FAIL_ALLOC option, on by default where the C tests are
 * built).  Even there it costs one branch per allocation until a test arms
 * it, and it is not thread-safe: the tests that arm it convert one model at
 * a time.
 */
#include "base/base.h"

#include <stdlib.h>

#ifdef H2O_FAIL_ALLOC
static struct {
  bool counting;  /* armed by h2o_test_alloc_start */
  bool sticky;    /* every allocation after fail_at fails too */
  long count;     /* allocations since h2o_test_alloc_start */
  long fail_at;   /* 1-based; 0 = none fails */
} injection;

void h2o_test_alloc_start(long fail_at, bool sticky) {
  injection.counting = true;
  injection.sticky = sticky;
  injection.count = 0;
  injection.fail_at = fail_at;
}

long h2o_test_alloc_stop(void) {
  injection.counting = false;
  return injection.count;
}

/* Counts one allocation; true when it is to fail. */
static bool injected_failure(void) {
  if (!injection.counting) return false;
  long n = ++injection.count;
  if (injection.fail_at <= 0) return false;
  return n == injection.fail_at || (injection.sticky && n > injection.fail_at);
}
#define FAIL_HERE() injected_failure()
#else
#define FAIL_HERE() false
#endif

void *h2o_malloc(size_t size) {
  if (FAIL_HERE()) return NULL;
  return malloc(size ? size : 1);
}

void *h2o_calloc(size_t count, size_t size) {
  if (FAIL_HERE()) return NULL;
  return calloc(count ? count : 1, size ? size : 1);
}

void *h2o_realloc(void *p, size_t size) {
  if (FAIL_HERE()) return NULL; /* p stays valid, as with realloc */
  return realloc(p, size ? size : 1);
}

void h2o_free(void *p) { free(p); }
