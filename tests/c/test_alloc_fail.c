/* test_alloc_fail.c - every allocation of a conversion may fail, and each
 * failure ends in a clean H2O_ENOMEM: no crash, no leak (LeakSanitizer in
 * the sanitizer build), no output or temporary file left behind.  This is
 * how SQLite and Lua test their out-of-memory paths.  No file descriptor
 * stays open either.
 *
 * For each case (a real module, converted to memory and to a file, the
 * latter once with its tensors in an external data file) the test first
 * counts the allocations of a conversion that succeeds, then converts again
 * for every N from 1 to that count with the N-th allocation failing: once
 * with only that one failing (the error message must then say so) and once
 * with every later one failing too (the message may be lost, the status
 * not).  The counts are in the hundreds (arena.c takes 4 KiB chunks in
 * these builds, so that failures hit every stage), so every N runs: a few
 * seconds in all under ASan.  Finally a run
 * with the count plus one as N must succeed and give the same bytes.
 *
 * Needs a build with H2O_FAIL_ALLOC (the default where the C tests are
 * built); without it the test exits 77, which ctest reports as skipped.
 * Runs from tests/c (ctest's working directory).
 */
#include "base/base.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test.h"

#ifndef H2O_FAIL_ALLOC
int main(void) {
  fprintf(stderr, "test_alloc_fail: built without H2O_FAIL_ALLOC, skipped\n");
  return 77;
}
#else

/* What the checks of run_case are about: the case, in words. */
static char case_name[256];

/* The names in dir, joined for a message ("" when empty). */
static int list_dir(const char *dir, char *names, size_t size) {
  DIR *d = opendir(dir);
  int n = 0;
  names[0] = 0;
  if (!d) return -1;
  for (struct dirent *e; (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    n++;
    size_t used = strlen(names);
    snprintf(names + used, size - used, "%s ", e->d_name);
  }
  closedir(d);
  return n;
}

static void empty_dir(const char *dir) {
  DIR *d = opendir(dir);
  if (!d) return;
  char path[512];
  for (struct dirent *e; (e = readdir(d));) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
    unlink(path);
  }
  closedir(d);
}

typedef struct Case {
  const char *fixture;
  int local_functions;
  bool to_file;
  size_t external_threshold; /* to a file: 0 keeps every tensor inside */
} Case;

static char dir[64];

/* Open file descriptors: a failed write must close what it opened. */
static int count_fds(void) {
  char names[4096];
  return list_dir("/proc/self/fd", names, sizeof names);
}

/* One conversion with allocation fail_at failing (0: none); returns its
 * status and how many allocations it made. */
static int convert(const Case *k, const char *text, size_t len, long fail_at, bool sticky,
                   h2o_result *res, long *n_allocs) {
  h2o_options o;
  h2o_options_init(&o);
  o.source_name = k->fixture;
  o.local_functions = k->local_functions;
  o.external_threshold = k->external_threshold;
  char out[128];
  snprintf(out, sizeof out, "%s/model.onnx", dir);
  h2o_test_alloc_start(fail_at, sticky);
  int status = h2o_convert(text, len, &o, NULL, 0, k->to_file ? out : NULL, res);
  *n_allocs = h2o_test_alloc_stop();
  return status;
}

static void run_case(const Case *k) {
  char path[256];
  snprintf(path, sizeof path, "../fixtures/%s", k->fixture);
  size_t len = 0;
  char *text = read_file(path, &len);
  current = case_name;
  snprintf(case_name, sizeof case_name, "%s%s%s%s", k->fixture,
           k->local_functions ? " with local functions" : "",
           k->to_file ? " to a file" : " to memory",
           k->to_file && k->external_threshold ? " with external data" : "");
  CHECK(text != NULL);
  if (!text) return;

  h2o_result ref;
  long total = 0;
  CHECK(convert(k, text, len, 0, false, &ref, &total) == H2O_OK);
  if (ref.status != H2O_OK) fprintf(stderr, "%s", ref.message ? ref.message : "");
  char names[1024];
  int n_files = list_dir(dir, names, sizeof names);
  CHECK(n_files == (k->to_file ? (k->external_threshold ? 2 : 1) : 0));
  empty_dir(dir);
  CHECK(total > 0);

  int n_runs = 0, fds = count_fds();
  for (long n = 1; n <= total; n++) {
    for (int sticky = 0; sticky <= 1; sticky++) {
      h2o_result res;
      long made = 0;
      int status = convert(k, text, len, n, sticky, &res, &made);
      n_runs++;
      if (status != H2O_ENOMEM || res.status != H2O_ENOMEM) {
        fail("allocation %ld of %ld failing%s: status %d, not ENOMEM", n, total,
             sticky ? " (and every later one)" : "", status);
        if (res.message) fputs(res.message, stderr);
      }
      CHECK(res.bytes == NULL && res.nbytes == 0);
      /* only the failed allocation is missing: the message must be there */
      if (!sticky) CHECK(res.message && strstr(res.message, "out of memory"));
      CHECK(made >= n);
      int left = list_dir(dir, names, sizeof names);
      if (left != 0) {
        fail("allocation %ld failing left files behind: %s", n, names);
        empty_dir(dir);
      }
      CHECK(count_fds() == fds);
      h2o_result_free(&res);
    }
  }

  /* one more than it needs: nothing fails, and nothing changes */
  h2o_result again;
  long made = 0;
  CHECK(convert(k, text, len, total + 1, true, &again, &made) == H2O_OK);
  CHECK(made == total);
  CHECK(again.nbytes == ref.nbytes &&
        (ref.nbytes == 0 || memcmp(again.bytes, ref.bytes, ref.nbytes) == 0));
  empty_dir(dir);
  fprintf(stderr, "%s: %ld allocations, %d failing runs\n", current, total, n_runs);
  h2o_result_free(&again);
  h2o_result_free(&ref);
  free(text);
}

int main(void) {
  snprintf(dir, sizeof dir, "/tmp/h2o_alloc_fail.XXXXXX");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  static const Case cases[] = {
      {"mlp_export.mlir", 0, false, 0},
      {"mlp_export.mlir", 0, true, 0},
      {"mlp_export.mlir", 0, true, 1}, /* every tensor in the external data file */
      /* a while loop (a Loop subgraph) and functions called from two places */
      {"calls_shared.mlir", 1, false, 0},
      {"calls_shared.mlir", 1, true, 0},
      {"calls_shared.mlir", 0, true, 0}, /* the same calls inlined */
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(&cases[i]);
  empty_dir(dir);
  rmdir(dir);
  return test_summary("test_alloc_fail");
}
#endif
