/* fuzz_convert.c - libFuzzer target: the whole text -> ONNX path, in memory.
 * Either a model comes out with status 0, or no model and a message. */
#include "hlo2onnx.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  h2o_result res;
  int rc = h2o_convert((const char *)data, size, NULL, NULL, 0, NULL, &res);
  if (rc == 0 && (!res.bytes || !res.nbytes)) abort();
  if (rc != 0 && (res.bytes || !res.message)) abort();
  h2o_result_free(&res);
  return 0;
}
