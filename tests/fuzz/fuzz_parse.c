/* fuzz_parse.c - libFuzzer target: the MLIR parser on arbitrary bytes.
 * Every input must either parse or produce diagnostics; nothing may crash,
 * leak or read out of bounds (the target is built with ASan and UBSan). */
#include "ir/ir.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  jmp_buf oom;
  Arena *a = arena_new(&oom);
  if (!a) return 0;
  h2o_options opts;
  h2o_options_init(&opts);
  Ctx c;
  ctx_init(&c, a, &oom, "fuzz.mlir", (const char *)data, size, &opts);
  if (setjmp(oom) == 0) {
    Module *m = parse_module(&c);
    /* a module without errors, or errors without a module: never both */
    if ((m != NULL) == (c.n_errors != 0)) abort();
  }
  ctx_release(&c);
  arena_free(a);
  return 0;
}
