/* hexbench.c - the hex decoder alone against memcpy, in one process.
 *
 * Built and run by zoo.py (cli part) against a build tree's libh2o.a:
 *     cc -O2 -std=c11 -Isrc bench/hexbench.c build/dev/libh2o.a -lm -o hexbench
 * Prints JSON: for an output size that stays in the caches (1 MiB, the CLI
 * writer's buffer) and one that does not (64 MiB), hex_decode's rate in
 * bytes of output per second and memcpy's rate for as many bytes, medians of
 * several runs of about 1 GiB each.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "h2o.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

enum { RUNS = 7 };

int main(void) {
  const size_t sizes[2] = {(size_t)1 << 20, (size_t)64 << 20};
  const size_t total = (size_t)1 << 30;
  printf("{\"bytes\": %zu, \"runs\": %d, \"cases\": {", sizes[1], RUNS);
  for (int s = 0; s < 2; s++) {
    size_t n = sizes[s];
    char *hex = malloc(2 * n);
    unsigned char *out = malloc(n), *src = malloc(n);
    if (!hex || !out || !src) return 1;
    static const char digits[] = "0123456789ABCDEFabcdef";
    unsigned r = 1;
    for (size_t i = 0; i < 2 * n; i++) {
      r = r * 1103515245u + 12345u;
      hex[i] = digits[(r >> 16) % 22];
    }
    memset(src, 7, n);
    memset(out, 0, n);
    double th[RUNS], tm[RUNS];
    for (int k = 0; k < RUNS; k++) {
      double t0 = now();
      for (size_t done = 0; done < total; done += n) hex_decode(hex, n, out);
      th[k] = now() - t0;
      t0 = now();
      for (size_t done = 0; done < total; done += n) {
        memcpy(out, src, n);
        __asm__ volatile("" ::: "memory"); /* keep every copy */
      }
      tm[k] = now() - t0;
    }
    qsort(th, RUNS, sizeof th[0], cmp);
    qsort(tm, RUNS, sizeof tm[0], cmp);
    printf("%s\"%s\": {\"hex_gbs\": %.3f, \"memcpy_gbs\": %.3f}", s ? ", " : "",
           s ? "64 MiB" : "1 MiB", (double)total / th[RUNS / 2] / 1e9,
           (double)total / tm[RUNS / 2] / 1e9);
    free(hex);
    free(out);
    free(src);
  }
  printf("}}\n");
  return 0;
}
