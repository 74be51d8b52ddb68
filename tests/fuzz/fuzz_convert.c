/* fuzz_convert.c - libFuzzer target: the whole text -> ONNX path, in memory.
 *
 * Every input must give either a model (status 0) or no model and a
 * message saying "error:" - never a crash, a leak or undefined behaviour
 * (the target is built with ASan and UBSan).  A model must be well-formed
 * protobuf at its top level (ModelProto fields with their wire types, every
 * length inside the buffer), and converting the same input again must give
 * the same bytes: uninitialised or address-dependent output would differ.
 * Inputs of odd length are converted with every called function as an ONNX
 * local function (local_functions = 1), the others with calls inlined. */
#include "hlo2onnx.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *v) {
  *v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (*p >= end) return -1;
    uint8_t b = *(*p)++;
    *v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) return 0;
  }
  return -1;
}

/* ModelProto: ir_version 1 (varint), producer_name 2, producer_version 3,
 * domain 4, model_version 5 (varint), doc_string 6, graph 7, opset_import 8,
 * metadata_props 14, training_info 20, functions 25, configuration 26. */
static int valid_model(const uint8_t *p, size_t n) {
  const uint8_t *end = p + n;
  bool graph = false;
  while (p < end) {
    uint64_t key, v;
    if (read_varint(&p, end, &key) != 0) return 0;
    uint64_t field = key >> 3, wire = key & 7;
    bool varint_field = field == 1 || field == 5;
    if (varint_field) {
      if (wire != 0 || read_varint(&p, end, &v) != 0) return 0;
    } else {
      if (wire != 2 || read_varint(&p, end, &v) != 0 || v > (uint64_t)(end - p)) return 0;
      if (field == 7) graph = true;
      p += v;
    }
  }
  return graph;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  h2o_options opts;
  h2o_options_init(&opts);
  opts.local_functions = (int)(size % 2);
  h2o_result res;
  int rc = h2o_convert((const char *)data, size, &opts, NULL, 0, NULL, &res);
  if (rc != res.status) abort();
  if (rc == 0) {
    if (!res.bytes || !res.nbytes || !valid_model(res.bytes, res.nbytes)) abort();
    h2o_result again;
    if (h2o_convert((const char *)data, size, &opts, NULL, 0, NULL, &again) != 0 ||
        again.nbytes != res.nbytes || memcmp(again.bytes, res.bytes, res.nbytes) != 0)
      abort(); /* not deterministic */
    h2o_result_free(&again);
  } else if (res.bytes || !res.message || !strstr(res.message, "error")) {
    abort();
  }
  h2o_result_free(&res);
  return 0;
}
