/* test_api.c - the public C API (hlo2onnx.h) as a caller sees it: the
 * defaults that h2o_options documents.
 *
 * Only hlo2onnx.h is included: nothing here reaches inside the core.
 * Exit status: 0 when every check passed.
 */
#include "hlo2onnx.h"

#include <stdio.h>
#include <string.h>

#include "test.h"

static const char text[] =
    "module @m {\n"
    "  func.func public @main(%arg0: tensor<4xf32>) -> tensor<4xf32> {\n"
    "    %0 = stablehlo.tanh %arg0 : tensor<4xf32>\n"
    "    return %0 : tensor<4xf32>\n"
    "  }\n"
    "}\n";

/* Converts `text` in memory with the given opset; the result is the
 * caller's to free. */
static int convert_with_opset(int opset, h2o_result *res) {
  h2o_options o;
  h2o_options_init(&o);
  o.opset = opset;
  return h2o_convert(text, sizeof text - 1, &o, NULL, 0, NULL, res);
}

static int same_bytes(const h2o_result *a, const h2o_result *b) {
  return a->nbytes == b->nbytes && a->nbytes > 0 && memcmp(a->bytes, b->bytes, a->nbytes) == 0;
}

/* hlo2onnx.h: "opset: 0 = default (H2O_DEFAULT_OPSET)".  0 writes the same
 * model as H2O_DEFAULT_OPSET spelled out, and as NULL options. */
static void test_opset_zero_is_the_default(void) {
  current = "opset 0 = default";
  h2o_result zero, dflt, null_opts;
  CHECK(convert_with_opset(0, &zero) == H2O_OK);
  if (zero.message) fputs(zero.message, stderr);
  CHECK(convert_with_opset(H2O_DEFAULT_OPSET, &dflt) == H2O_OK);
  CHECK(h2o_convert(text, sizeof text - 1, NULL, NULL, 0, NULL, &null_opts) == H2O_OK);
  CHECK(same_bytes(&zero, &dflt));
  CHECK(same_bytes(&null_opts, &dflt));
  h2o_result_free(&zero);
  h2o_result_free(&dflt);
  h2o_result_free(&null_opts);

  h2o_options o;
  h2o_options_init(&o);
  CHECK(o.opset == H2O_DEFAULT_OPSET);
}

/* Outside 17..23 (and not 0): a usage error with a message, no model. */
static void test_opset_out_of_range(void) {
  static const int bad[] = {-1, 1, 16, 24, 1000};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    current = "opset out of range";
    h2o_result res;
    CHECK(convert_with_opset(bad[i], &res) == H2O_EUSAGE);
    CHECK(res.status == H2O_EUSAGE && res.bytes == NULL && res.nbytes == 0);
    CHECK(res.message && strstr(res.message, "is not supported"));
    h2o_result_free(&res);
  }
  for (int opset = 17; opset <= 23; opset++) {
    current = "opset in range";
    h2o_result res;
    CHECK(convert_with_opset(opset, &res) == H2O_OK);
    h2o_result_free(&res);
  }
}

int main(void) {
  test_opset_zero_is_the_default();
  test_opset_out_of_range();
  return test_summary("test_api");
}
