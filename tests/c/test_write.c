/* test_write.c - the ONNX writer (src/write/): protobuf primitives, models
 * round-tripping through the `onnx` package, external data, atomic output
 * and write failures.
 *
 * The test builds OModels by hand (every attribute kind, subgraphs, RAW and
 * HEX initializers, bool/f16/bf16/int4 tensors, symbolic and unknown dims,
 * local functions, and seeded random models), writes them to memory and to files, and
 * records in manifest.json what each output must contain, straight from
 * the OModel.  check_written.py then parses every output with onnx and
 * compares each field, checks external data layout, runs onnx.checker and
 * onnxruntime.  Exit code 77 from the checker (no onnx installed) skips
 * that part: this test then exits 77 too, which ctest reports as skipped
 * (SKIP_RETURN_CODE in CMakeLists.txt) when the C checks passed.
 *
 * Usage: test_write [check_written.py]   (run from tests/c by ctest)
 * Environment: PYTHON (default python3), H2O_KEEP_TEST_OUTPUT=1 keeps the
 * output directory, H2O_TEST_SKIP_BIG=1 skips the 2.2 GB model.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "write/write.h"

#define TEST_CONTEXT
#include "test.h"

static char dir[256];

static void reset_opts(void) { memset(&O, 0, sizeof O); }

static char *path_in(const char *name) {
  return arena_printf(A, "%s/%s", dir, name);
}

static bool exists(const char *path) {
  struct stat st;
  return stat(path, &st) == 0;
}

static int count_entries(const char *path) {
  DIR *d = opendir(path);
  if (!d) return -1;
  int n = 0;
  for (struct dirent *e; (e = readdir(d));)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
  closedir(d);
  return n;
}

static bool has_tmp_files(const char *path) {
  DIR *d = opendir(path);
  if (!d) return false;
  bool found = false;
  for (struct dirent *e; (e = readdir(d));)
    if (strstr(e->d_name, ".tmp.")) found = true;
  closedir(d);
  return found;
}

static void write_bytes(const char *path, const void *p, size_t n) {
  FILE *f = fopen(path, "wb");
  CHECK(f && fwrite(p, 1, n, f) == n);
  if (f) fclose(f);
}

/* ---- protobuf primitives ------------------------------------------------ */

static bool mem_is(const PbOut *o, const char *hex) {
  size_t n = strlen(hex) / 2;
  uint8_t want[64];
  hex_decode(hex, n, want);
  return o->len == n && o->n == n && memcmp(o->buf, want, n) == 0;
}

typedef struct Pair {
  int64_t a;
  const char *s;
} Pair;

static void emit_pair(PbOut *o, const void *msg) {
  const Pair *p = msg;
  pb_field_i64(o, 1, p->a);
  pb_field_str(o, 2, p->s);
}

static void emit_nested(PbOut *o, const void *msg) {
  pb_field_msg(o, 3, emit_pair, msg);
  pb_field_msg(o, 3, emit_pair, msg);
}

static void test_pb(void) {
  uint8_t buf[64];
  PbOut o;
  static const struct {
    uint64_t v;
    const char *hex;
  } varints[] = {
      {0, "00"},
      {1, "01"},
      {127, "7f"},
      {128, "8001"},
      {300, "ac02"},
      {16383, "ff7f"},
      {16384, "808001"},
      {(uint64_t)1 << 63, "80808080808080808001"},
      {UINT64_MAX, "ffffffffffffffffff01"},
  };
  for (size_t i = 0; i < sizeof varints / sizeof varints[0]; i++) {
    pb_init_mem(&o, buf, sizeof buf, NULL);
    pb_varint(&o, varints[i].v);
    CHECK(mem_is(&o, varints[i].hex));
    CHECK(pb_varint_size(varints[i].v) == strlen(varints[i].hex) / 2);
  }
  /* int64 -1: ten bytes; a tag; a float; a string; packed fields. */
  pb_init_mem(&o, buf, sizeof buf, NULL);
  pb_field_i64(&o, 3, -1);
  CHECK(mem_is(&o, "18ffffffffffffffffff01"));
  pb_init_mem(&o, buf, sizeof buf, NULL);
  pb_field_f32(&o, 2, 1.0f);
  CHECK(mem_is(&o, "150000803f"));
  pb_init_mem(&o, buf, sizeof buf, NULL);
  pb_field_str(&o, 20, "ab");
  pb_field_str(&o, 21, NULL);
  CHECK(mem_is(&o, "a201026162"));
  pb_init_mem(&o, buf, sizeof buf, NULL);
  const int64_t ints[] = {3, 270, -2};
  pb_field_packed_i64(&o, 8, ints, 3);
  pb_field_packed_i64(&o, 8, ints, 0);
  CHECK(mem_is(&o, "420d038e02feffffffffffffffff01"));
  pb_init_mem(&o, buf, sizeof buf, NULL);
  const float fl[] = {1.0f, -2.0f};
  pb_field_packed_f32(&o, 7, fl, 2);
  CHECK(mem_is(&o, "3a080000803f000000c0"));
  /* Nested messages: sizes first. */
  Pair p = {150, "x"};
  CHECK(pb_msg_size(emit_pair, &p, NULL) == 6);
  pb_init_mem(&o, buf, sizeof buf, NULL);
  emit_nested(&o, &p);
  CHECK(mem_is(&o, "1a06089601120178" "1a06089601120178"));
  CHECK(pb_field_len_size(3, 6) == 8);
  /* A memory destination one byte short. */
  pb_init_mem(&o, buf, 15, NULL);
  emit_nested(&o, &p);
  CHECK(o.err == PB_EOVERFLOW && o.n == 16);

  /* The file path with a tiny buffer: raw blocks bigger and smaller than
   * the buffer, hex decoding across flushes, zeros. */
  char *path = path_in("pb.bin");
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  CHECK(fd >= 0);
  CHECK(pb_init_fd(&o, fd, 3, NULL) == 0);
  uint8_t want[200];
  size_t n = 0;
  for (int i = 0; i < 10; i++) want[n++] = (uint8_t)(i * 7);
  pb_raw(&o, want, 2);
  pb_raw(&o, want + 2, 8);
  static const char hex[] = "00ff10Ab7fC3d2e1";
  hex_decode(hex, 8, want + n);
  n += 8;
  pb_hex(&o, hex, 8);
  memset(want + n, 0, 5);
  n += 5;
  pb_zeros(&o, 5);
  want[n++] = 0x96;
  want[n++] = 0x01;
  pb_varint(&o, 150);
  CHECK(pb_flush(&o) == 0 && o.n == n);
  pb_release(&o);
  close(fd);
  size_t got_len = 0;
  uint8_t *got = read_file(path, &got_len);
  CHECK(got && got_len == n && memcmp(got, want, n) == 0);
  free(got);
  /* Writes that fail: the error sticks, bytes are still counted. */
  fd = open("/dev/full", O_WRONLY);
  if (fd >= 0) {
    CHECK(pb_init_fd(&o, fd, 4, NULL) == 0);
    pb_raw(&o, want, 10);
    pb_raw(&o, want, 10);
    CHECK(pb_flush(&o) == ENOSPC && o.n == 20);
    pb_release(&o);
    close(fd);
  }
}

static void test_ir_versions(FILE *manifest) {
  CHECK(ow_ir_version(20) == 9);
  CHECK(ow_ir_version(21) == 10);
  CHECK(ow_ir_version(17) == 8);
  CHECK(ow_ir_version(13) == 7);
  fprintf(manifest, "\"ir_versions\": [");
  for (int opset = 1; opset <= 40; opset++)
    fprintf(manifest, "%s[%d, %d, %d]", opset > 1 ? ", " : "", opset, ow_ir_version(opset),
            ow_ml_opset(opset));
  fprintf(manifest, "],\n");
}

/* ---- building models ---------------------------------------------------- */

static Data raw(const void *p, size_t n) { return (Data){DATA_RAW, p, n}; }

/* The bytes as HEX data, in mixed case (the parser accepts both). */
static Data hexdata(const void *p, size_t n) {
  static const char digits[] = "0123456789abcdef0123456789ABCDEF";
  char *s = arena_alloc(A, 2 * n + 1);
  const uint8_t *b = p;
  for (size_t i = 0; i < n; i++) {
    int up = (int)(i % 2) * 16;
    s[2 * i] = digits[up + (b[i] >> 4)];
    s[2 * i + 1] = digits[up + (b[i] & 15)];
  }
  return (Data){DATA_HEX, s, n};
}

/* A value with exactly this name (og_value adds a counter). */
static OValue *val(OGraph *g, const char *name, ElemType et, int rank,
                   const int64_t *dims) {
  OValue *v = og_value(&C, g, name);
  v->name = arena_strdup(A, name);
  og_set_type(&C, v, et, rank, dims);
  return v;
}

static OValue *init(OGraph *g, const char *name, ElemType et, int rank,
                    const int64_t *dims, Data d) {
  OValue *v = og_init(&C, g, name, et, rank, dims, d);
  v->name = arena_strdup(A, name);
  return v;
}

/* A tensor for an attribute: like an initializer, but in no graph list. */
static OValue *attr_tensor(OGraph *g, const char *name, ElemType et, int rank,
                           const int64_t *dims, Data d) {
  OValue *v = val(g, name, et, rank, dims);
  v->is_init = true;
  v->data = d;
  return v;
}

static void add_input(OGraph *g, OValue *v) {
  v->is_input = true;
  ptrvec_push(A, &g->inputs, v);
}

static void add_output(OGraph *g, OValue *v) {
  v->is_output = true;
  ptrvec_push(A, &g->outputs, v);
}

static ONode *node(OGraph *g, const char *op, const char *domain, int n_in,
                   OValue *const *in, int n_out) {
  ONode *n = og_node(&C, g, op, in, n_in, n_out);
  n->domain = domain;
  return n;
}

/* The attribute og_attr_* just added (a fresh name goes last). */
static OAttr *last_attr(ONode *n) { return &n->attrs[n->n_attrs - 1]; }

static void name_output(ONode *n, int i, const char *name, ElemType et, int rank,
                        const int64_t *dims) {
  n->outputs[i]->name = arena_strdup(A, name);
  og_set_type(&C, n->outputs[i], et, rank, dims);
}

/* Every attribute kind, subgraphs three deep, every data source. */
static OModel *model_full(void) {
  OGraph *g = og_new(&C, "main_graph", NULL);
  int64_t d_b3[] = {-1, 3};
  OValue *x = val(g, "x", ET_F32, 2, d_b3);
  x->type.dims[0].param = "B";
  add_input(g, x);
  OValue *cond = val(g, "cond", ET_BOOL, 0, NULL);
  add_input(g, cond);
  int64_t d_unk[] = {-1};
  add_input(g, val(g, "s", ET_F16, 1, d_unk)); /* a dim neither number nor name */

  static const float w6[] = {1, 2, 3, 4, 5, 6.5f};
  int64_t d23[] = {2, 3};
  OValue *w_raw = init(g, "w_raw", ET_F32, 2, d23, raw(w6, sizeof w6));
  static const int64_t i4[] = {1, -1, INT64_MAX, INT64_MIN};
  int64_t d4[] = {4};
  init(g, "w_hex", ET_I64, 1, d4, hexdata(i4, sizeof i4));
  static const uint8_t mask[] = {1, 0, 1, 1, 0};
  int64_t d5[] = {5};
  init(g, "mask", ET_BOOL, 1, d5, raw(mask, sizeof mask));
  static const uint16_t half[] = {0x3c00, 0xc000, 0x7e00}; /* 1, -2, NaN */
  int64_t d3[] = {3};
  init(g, "half", ET_F16, 1, d3, hexdata(half, sizeof half));
  static const double pi = 3.141592653589793;
  init(g, "scalar", ET_F64, 0, NULL, raw(&pi, sizeof pi));
  int64_t d04[] = {0, 4};
  init(g, "empty", ET_F32, 2, d04, (Data){DATA_NONE, NULL, 0});
  static const uint8_t nib[] = {0x21, 0x03}; /* 1, 2, 3 */
  init(g, "nibbles", ET_U4, 1, d3, raw(nib, sizeof nib));
  static const uint16_t bf[] = {0x3f80, 0xbf80};
  int64_t d2[] = {2};
  init(g, "bf", ET_BF16, 1, d2, raw(bf, sizeof bf));
  float *f300 = arena_alloc(A, 300 * sizeof(float));
  for (int i = 0; i < 300; i++) f300[i] = (float)i * 0.25f - 7.0f;
  int64_t d300[] = {300};
  init(g, "f300", ET_F32, 1, d300, raw(f300, 300 * sizeof(float)));
  uint8_t *u5000 = arena_alloc(A, 5000);
  for (int i = 0; i < 5000; i++) u5000[i] = (uint8_t)(i * 31 + 7);
  int64_t d5000[] = {5000};
  init(g, "u5000", ET_U8, 1, d5000, hexdata(u5000, 5000));
  init(g, "wé_ß", ET_I8, 1, d2, raw("\x7f\x80", 2)); /* UTF-8 name */

  /* A node with every attribute kind. */
  OValue *ins[] = {x, NULL, w_raw};
  ONode *ev = node(g, "Everything", "test.custom", 3, ins, 3);
  name_output(ev, 0, "ev0", ET_F32, 2, d_b3);
  ev->outputs[0]->type.dims[0].param = "B";
  name_output(ev, 1, "ev1", ET_UNDEF, -1, NULL);
  name_output(ev, 2, "ev2", ET_I32, 0, NULL);
  og_attr_float(&C, ev, "f", 1.5f);
  uint32_t nan_bits = 0x7fc01234u;
  float qnan;
  memcpy(&qnan, &nan_bits, 4);
  og_attr_float(&C, ev, "f_nan", qnan);
  og_attr_float(&C, ev, "f_zero", 0.0f);
  og_attr_int(&C, ev, "i", -7);
  og_attr_int(&C, ev, "i_zero", 0);
  og_attr_int(&C, ev, "i_min", INT64_MIN);
  og_attr_string(&C, ev, "s", "hello");
  og_attr_string(&C, ev, "s_nul", "");
  OAttr *snul = last_attr(ev);
  snul->s = "a\0b";
  snul->s_len = 3;
  og_attr_string(&C, ev, "s_empty", "");
  static const int32_t t2[] = {-5, 70000};
  og_attr_tensor(&C, ev, "t", attr_tensor(g, "t_val", ET_I32, 1, d2, raw(t2, sizeof t2)));
  static const float fl[] = {1.0f, -0.0f, INFINITY, 1e-45f};
  og_attr_floats(&C, ev, "floats", fl, 4);
  og_attr_floats(&C, ev, "floats_empty", NULL, 0);
  static const int64_t il[] = {0, -1, INT64_MAX, (int64_t)1 << 35};
  og_attr_ints(&C, ev, "ints", il, 4);
  og_attr_ints(&C, ev, "ints_empty", NULL, 0);
  static const char *sl[] = {"a", "", "ünï", "x y"};
  og_attr_string(&C, ev, "strings", ""); /* og_ has no strings builder */
  OAttr *strs = last_attr(ev);
  strs->kind = OA_STRINGS;
  strs->strings = sl;
  strs->n = 4;

  /* Its subgraph: inputs of unknown rank and unknown type, a nested graph. */
  OGraph *sub = og_new(&C, "ev_body", g);
  add_input(sub, val(sub, "sb_in_rank", ET_F32, -1, NULL));
  add_input(sub, val(sub, "sb_in_unknown", ET_UNDEF, -1, NULL));
  int64_t d_2q[] = {2, -1};
  add_input(sub, val(sub, "sb_in_shape", ET_UNDEF, 2, d_2q));
  static const float sbw[] = {9, 8};
  OValue *sb_w = init(sub, "sb_w", ET_F32, 1, d2, hexdata(sbw, sizeof sbw));
  OValue *sbi[] = {sb_w};
  ONode *bin = node(sub, "Binarizer", "ai.onnx.ml", 1, sbi, 1);
  name_output(bin, 0, "sb_bin", ET_F32, 1, d2);
  og_attr_float(&C, bin, "threshold", 8.5f);
  OGraph *sub2 = og_new(&C, "ev_body_inner", sub);
  OValue *s2i[] = {x};
  ONode *deep = node(sub2, "Deep", "test.custom", 1, s2i, 1);
  name_output(deep, 0, "deep_out", ET_F32, 2, d_b3);
  static const int64_t dv[] = {42};
  int64_t d1[] = {1};
  og_attr_tensor(&C, deep, "value", attr_tensor(sub2, "deep_t", ET_I64, 1, d1, raw(dv, 8)));
  add_output(sub2, deep->outputs[0]);
  ONode *holder = node(sub, "Holder", "test.custom", 0, NULL, 1);
  name_output(holder, 0, "holder_out", ET_F32, 2, d_b3);
  og_attr_graph(&C, holder, "inner", sub2);
  add_output(sub, bin->outputs[0]);
  og_attr_graph(&C, ev, "g", sub);

  ONode *dead = node(g, "Dead", NULL, 1, s2i, 1);
  dead->dead = true;

  /* ai.onnx spelled out: written without a domain. */
  OValue *ri[] = {ev->outputs[0]};
  ONode *relu = node(g, "Relu", "ai.onnx", 1, ri, 1);
  name_output(relu, 0, "relu_out", ET_F32, 2, d_b3);
  relu->outputs[0]->type.dims[0].param = "B";
  relu->name = "the_relu";
  ONode *noname = node(g, "Identity", "", 1, ri, 1);
  noname->name = NULL;
  name_output(noname, 0, "id_out", ET_F32, -1, NULL);

  /* If with two branches. */
  OValue *ci[] = {cond};
  ONode *iff = node(g, "If", NULL, 1, ci, 1);
  name_output(iff, 0, "if_out", ET_F32, 2, d23);
  OGraph *then_g = og_new(&C, "then_g", g);
  OValue *ti[] = {w_raw};
  ONode *tid = node(then_g, "Identity", NULL, 1, ti, 1);
  name_output(tid, 0, "then_out", ET_F32, 2, d23);
  add_output(then_g, tid->outputs[0]);
  static const float tw[] = {0.5f, 0.25f};
  init(then_g, "then_init", ET_F32, 1, d2, raw(tw, sizeof tw));
  OGraph *else_g = og_new(&C, "else_g", g);
  ONode *cst = node(else_g, "Constant", NULL, 0, NULL, 1);
  name_output(cst, 0, "else_out", ET_UNDEF, -1, NULL);
  static const float cw[] = {6, 5, 4, 3, 2, 1};
  og_attr_tensor(&C, cst, "value", attr_tensor(else_g, "else_t", ET_F32, 2, d23, raw(cw, sizeof cw)));
  add_output(else_g, cst->outputs[0]);
  og_attr_graph(&C, iff, "then_branch", then_g);
  og_attr_graph(&C, iff, "else_branch", else_g);

  add_output(g, ev->outputs[0]);
  add_output(g, iff->outputs[0]);

  OModel *m = arena_alloc(A, sizeof *m);
  m->graph = g;
  m->opset = 21;
  m->doc = "a model with everything";
  return m;
}

/* Runs in onnxruntime: initializers RAW and HEX, a Constant with a tensor
 * attribute, an If whose then-branch has its own initializer. */
typedef struct RunCase {
  float x[6];
  float out1[6], out2[1024], out3[2];
} RunCase;

static OModel *model_run(RunCase *rc) {
  OGraph *g = og_new(&C, "run", NULL);
  int64_t d23[] = {2, 3}, d1024[] = {1024}, d2[] = {2};
  OValue *x = val(g, "x", ET_F32, 2, d23);
  add_input(g, x);
  OValue *flag = val(g, "flag", ET_BOOL, 0, NULL);
  add_input(g, flag);
  float *W = arena_alloc(A, 6 * sizeof(float)), *Wh = arena_alloc(A, 6 * sizeof(float));
  float *big = arena_alloc(A, 1024 * sizeof(float)), *cbig = arena_alloc(A, 1024 * sizeof(float));
  float tb[6];
  for (int i = 0; i < 6; i++) {
    rc->x[i] = (float)i - 2.5f;
    W[i] = (float)i * 0.5f;
    Wh[i] = 3.0f - (float)i;
    tb[i] = 100.0f * (float)i;
  }
  for (int i = 0; i < 1024; i++) {
    big[i] = (float)i;
    cbig[i] = (float)(i % 7) * 0.125f;
    rc->out2[i] = big[i] + cbig[i];
  }
  static const int64_t idx[] = {1023, 5};
  for (int i = 0; i < 2; i++) rc->out3[i] = rc->out2[idx[i]];
  for (int i = 0; i < 6; i++) rc->out1[i] = (rc->x[i] + W[i]) * Wh[i] + tb[i]; /* flag true */

  OValue *Wv = init(g, "W", ET_F32, 2, d23, raw(W, 6 * sizeof(float)));
  OValue *Whv = init(g, "Wh", ET_F32, 2, d23, hexdata(Wh, 6 * sizeof(float)));
  OValue *bigv = init(g, "big", ET_F32, 1, d1024, raw(big, 1024 * sizeof(float)));
  OValue *idxv = init(g, "idx", ET_I64, 1, d2, hexdata(idx, sizeof idx));

  OValue *a_in[] = {x, Wv};
  ONode *add = node(g, "Add", NULL, 2, a_in, 1);
  name_output(add, 0, "a", ET_F32, 2, d23);
  OValue *m_in[] = {add->outputs[0], Whv};
  ONode *mul = node(g, "Mul", NULL, 2, m_in, 1);
  name_output(mul, 0, "b", ET_F32, 2, d23);
  ONode *cst = node(g, "Constant", NULL, 0, NULL, 1);
  name_output(cst, 0, "cbig", ET_F32, 1, d1024);
  og_attr_tensor(&C, cst, "value",
                 attr_tensor(g, "cbig_t", ET_F32, 1, d1024, raw(cbig, 1024 * sizeof(float))));
  OValue *s_in[] = {cst->outputs[0], bigv};
  ONode *sum = node(g, "Add", NULL, 2, s_in, 1);
  name_output(sum, 0, "out2", ET_F32, 1, d1024);
  OValue *g_in[] = {sum->outputs[0], idxv};
  ONode *gat = node(g, "Gather", NULL, 2, g_in, 1);
  og_attr_int(&C, gat, "axis", 0);
  name_output(gat, 0, "out3", ET_F32, 1, d2);

  OValue *f_in[] = {flag};
  ONode *iff = node(g, "If", NULL, 1, f_in, 1);
  name_output(iff, 0, "out1", ET_F32, 2, d23);
  OGraph *then_g = og_new(&C, "then", g);
  OValue *tbv = init(then_g, "tb", ET_F32, 2, d23, hexdata(tb, sizeof tb));
  OValue *t_in[] = {mul->outputs[0], tbv};
  ONode *tadd = node(then_g, "Add", NULL, 2, t_in, 1);
  name_output(tadd, 0, "then_out", ET_F32, 2, d23);
  add_output(then_g, tadd->outputs[0]);
  OGraph *else_g = og_new(&C, "else", g);
  OValue *e_in[] = {mul->outputs[0]};
  ONode *neg = node(else_g, "Neg", NULL, 1, e_in, 1);
  name_output(neg, 0, "else_out", ET_F32, 2, d23);
  add_output(else_g, neg->outputs[0]);
  og_attr_graph(&C, iff, "then_branch", then_g);
  og_attr_graph(&C, iff, "else_branch", else_g);

  add_output(g, iff->outputs[0]);
  add_output(g, sum->outputs[0]);
  add_output(g, gat->outputs[0]);
  OModel *m = arena_alloc(A, sizeof *m);
  m->graph = g;
  m->opset = 20;
  m->producer_name = "test_write";
  m->producer_version = "9.9";
  return m;
}

/* Seeded random models: odd values in every field. */
static uint64_t rng_state;
static uint64_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}
static int rndn(int n) { return (int)(rnd() % (uint64_t)n); }

static int64_t rnd_i64(void) {
  switch (rndn(5)) {
  case 0: return (int64_t)rndn(300) - 150;
  case 1: return INT64_MIN + rndn(3);
  case 2: return INT64_MAX - rndn(3);
  default: return (int64_t)rnd();
  }
}

static float rnd_f32(void) {
  uint32_t b = (uint32_t)rnd();
  if ((b & 0x7f800000u) == 0x7f800000u && (b & 0x7fffffu)) b |= 0x400000u; /* quiet NaN */
  float f;
  memcpy(&f, &b, 4);
  return f;
}

static char *rnd_str(void) {
  int n = rndn(12);
  char *s = arena_alloc(A, (size_t)n + 1);
  for (int i = 0; i < n; i++) s[i] = (char)(32 + rndn(95));
  return s;
}

static void rnd_type(OValue *v) {
  static const ElemType ets[] = {ET_UNDEF, ET_F32, ET_U8, ET_I64, ET_BOOL, ET_F16,
                                 ET_BF16, ET_F64, ET_C64, ET_U64, ET_F8E4M3FN, ET_I4};
  int rank = rndn(7) - 1;
  int64_t dims[6] = {0};
  for (int i = 0; i < rank; i++)
    dims[i] = rndn(4) == 0 ? -1 : rndn(3) == 0 ? (int64_t)(rnd() >> 2) : rndn(10);
  og_set_type(&C, v, ets[rndn(12)], rank, dims);
  for (int i = 0; i < rank; i++)
    if (v->type.dims[i].value < 0 && rndn(2)) v->type.dims[i].param = rnd_str();
}

static OValue *rnd_tensor(OGraph *g, bool in_list) {
  static const ElemType ets[] = {ET_F32, ET_U8, ET_I64, ET_BOOL, ET_F16, ET_I4, ET_F64};
  ElemType et = ets[rndn(7)];
  int rank = rndn(4);
  int64_t dims[3], numel = 1;
  for (int i = 0; i < rank; i++) numel *= dims[i] = rndn(6);
  size_t nb = et_size(et) ? (size_t)numel * et_size(et) : (size_t)(numel + 1) / 2;
  uint8_t *b = arena_alloc(A, nb ? nb : 1);
  for (size_t i = 0; i < nb; i++) b[i] = (uint8_t)rnd();
  Data d = nb == 0 ? (Data){DATA_NONE, NULL, 0} : rndn(2) ? raw(b, nb) : hexdata(b, nb);
  static int n_tensors;
  char *name = arena_printf(A, "t%d_%s", n_tensors++, rnd_str());
  return in_list ? init(g, name, et, rank, dims, d) : attr_tensor(g, name, et, rank, dims, d);
}

static OGraph *rnd_graph(OGraph *parent, int depth);

static void rnd_attrs(ONode *n, OGraph *g, int depth) {
  int k = rndn(9);
  for (int i = 0; i < k; i++) {
    char *name = arena_printf(A, "a%d", i);
    int cnt = rndn(5);
    switch (rndn(8)) {
    case 0: og_attr_float(&C, n, name, rnd_f32()); break;
    case 1: og_attr_int(&C, n, name, rnd_i64()); break;
    case 2: og_attr_string(&C, n, name, rnd_str()); break;
    case 3: og_attr_tensor(&C, n, name, rnd_tensor(g, false)); break;
    case 4:
      if (depth < 2) og_attr_graph(&C, n, name, rnd_graph(g, depth + 1));
      break;
    case 5: {
      float *f = arena_alloc(A, sizeof(float) * 5);
      for (int j = 0; j < cnt; j++) f[j] = rnd_f32();
      og_attr_floats(&C, n, name, f, cnt);
      break;
    }
    case 6: {
      int64_t *v = arena_alloc(A, sizeof(int64_t) * 5);
      for (int j = 0; j < cnt; j++) v[j] = rnd_i64();
      og_attr_ints(&C, n, name, v, cnt);
      break;
    }
    default: {
      const char **s = arena_alloc(A, sizeof(char *) * 5);
      for (int j = 0; j < cnt; j++) s[j] = rnd_str();
      og_attr_string(&C, n, name, "");
      OAttr *a = last_attr(n);
      a->kind = OA_STRINGS;
      a->strings = s;
      a->n = cnt;
      break;
    }
    }
  }
}

static OGraph *rnd_graph(OGraph *parent, int depth) {
  OGraph *g = og_new(&C, NULL, parent);
  g->name = arena_printf(A, "g%d_%s", depth, rnd_str());
  PtrVec avail = {0};
  for (int i = rndn(4); i > 0; i--) {
    OValue *v = og_value(&C, g, "in");
    rnd_type(v);
    add_input(g, v);
    ptrvec_push(A, &avail, v);
  }
  for (int i = rndn(4); i > 0; i--) ptrvec_push(A, &avail, rnd_tensor(g, true));
  int n_nodes = depth == 0 ? 60 : rndn(5);
  for (int i = 0; i < n_nodes; i++) {
    int n_in = rndn(4), n_out = 1 + rndn(2);
    OValue *ins[4];
    for (int j = 0; j < n_in; j++)
      ins[j] = avail.len && rndn(5) ? avail.items[rndn(avail.len)] : NULL;
    static const char *doms[] = {NULL, "", "fuzz.a", "fuzz.b", "ai.onnx.ml"};
    ONode *n = node(g, rndn(2) ? "Op" : rnd_str(), doms[rndn(5)], n_in, ins, n_out);
    if (!*n->op_type) n->op_type = "X";
    if (rndn(4) == 0) n->name = NULL;
    n->dead = rndn(10) == 0;
    for (int j = 0; j < n_out; j++) {
      rnd_type(n->outputs[j]);
      ptrvec_push(A, &avail, n->outputs[j]);
    }
    rnd_attrs(n, g, depth);
    if (rndn(4) == 0 && !n->dead) add_output(g, n->outputs[0]);
  }
  return g;
}

static OModel *model_fuzz(uint64_t seed) {
  rng_state = seed;
  OModel *m = arena_alloc(A, sizeof *m);
  m->graph = rnd_graph(NULL, 0);
  m->opset = 10 + rndn(19);
  return m;
}

/* ---- the manifest: what each output must contain ------------------------ */

static void json_str(FILE *f, const char *s, size_t n) {
  fputc('"', f);
  for (size_t i = 0; i < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
    else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
    else fputc(ch, f);
  }
  fputc('"', f);
}

static void json_cstr(FILE *f, const char *s) {
  if (s) json_str(f, s, strlen(s));
  else fputs("null", f);
}

static void json_hex(FILE *f, const void *p, size_t n) {
  const uint8_t *b = p;
  fputc('"', f);
  for (size_t i = 0; i < n; i++) fprintf(f, "%02x", b[i]);
  fputc('"', f);
}

static uint32_t f32_bits(float v) {
  uint32_t u;
  memcpy(&u, &v, 4);
  return u;
}

static void dump_tensor(FILE *f, const OValue *v) {
  fprintf(f, "{\"name\": ");
  json_cstr(f, v->name);
  fprintf(f, ", \"data_type\": %d, \"dims\": [", (int)v->type.et);
  for (int i = 0; i < v->type.rank; i++)
    fprintf(f, "%s%lld", i ? ", " : "", (long long)v->type.dims[i].value);
  fprintf(f, "], \"nbytes\": %zu, \"data\": ", v->data.nbytes);
  if (v->data.nbytes > ((size_t)64 << 20)) {
    fputs("null", f); /* the big model: only its layout is checked */
  } else {
    const uint8_t *b = v->data.kind == DATA_NONE ? NULL : data_bytes(&C, &v->data);
    json_hex(f, b, b ? v->data.nbytes : 0);
  }
  fputc('}', f);
}

static void dump_vi(FILE *f, const OValue *v) {
  fprintf(f, "{\"name\": ");
  json_cstr(f, v->name);
  fprintf(f, ", \"elem_type\": %d, \"shape\": ", (int)v->type.et);
  if (v->type.rank < 0) {
    fputs("null", f);
  } else {
    fputc('[', f);
    for (int i = 0; i < v->type.rank; i++) {
      const ODim *d = &v->type.dims[i];
      if (i) fputs(", ", f);
      if (d->value >= 0) fprintf(f, "%lld", (long long)d->value);
      else if (d->param) json_cstr(f, d->param);
      else fputs("null", f);
    }
    fputc(']', f);
  }
  fputc('}', f);
}

static void dump_graph(FILE *f, const OGraph *g, bool shape_info);

static void dump_attr(FILE *f, const OAttr *a, bool shape_info) {
  fprintf(f, "{\"name\": ");
  json_cstr(f, a->name);
  fprintf(f, ", \"type\": %d, \"value\": ", (int)a->kind);
  switch (a->kind) {
  case OA_FLOAT: fprintf(f, "%u", f32_bits(a->f)); break;
  case OA_INT: fprintf(f, "%lld", (long long)a->i); break;
  case OA_STRING: json_hex(f, a->s, a->s_len); break;
  case OA_TENSOR: dump_tensor(f, a->tensor); break;
  case OA_GRAPH: dump_graph(f, a->graph, shape_info); break;
  case OA_FLOATS:
    fputc('[', f);
    for (int i = 0; i < a->n; i++) fprintf(f, "%s%u", i ? ", " : "", f32_bits(a->floats[i]));
    fputc(']', f);
    break;
  case OA_INTS:
    fputc('[', f);
    for (int i = 0; i < a->n; i++) fprintf(f, "%s%lld", i ? ", " : "", (long long)a->ints[i]);
    fputc(']', f);
    break;
  case OA_STRINGS:
    fputc('[', f);
    for (int i = 0; i < a->n; i++) {
      if (i) fputs(", ", f);
      json_hex(f, a->strings[i], strlen(a->strings[i]));
    }
    fputc(']', f);
    break;
  }
  fputc('}', f);
}

static void dump_vi_list(FILE *f, const char *key, const PtrVec *vs) {
  fprintf(f, ", \"%s\": [", key);
  for (int i = 0; i < vs->len; i++) {
    if (i) fputs(", ", f);
    dump_vi(f, vs->items[i]);
  }
  fputc(']', f);
}

/* The spec of value_info, written out independently of the writer. */
static void dump_graph(FILE *f, const OGraph *g, bool shape_info) {
  fprintf(f, "{\"name\": ");
  json_cstr(f, g->name);
  fprintf(f, ", \"nodes\": [");
  bool first = true;
  for (int i = 0; i < g->nodes.len; i++) {
    const ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    fprintf(f, "%s{\"op_type\": ", first ? "" : ",\n ");
    first = false;
    json_cstr(f, n->op_type);
    fprintf(f, ", \"domain\": ");
    json_cstr(f, n->domain);
    fprintf(f, ", \"name\": ");
    json_cstr(f, n->name);
    fprintf(f, ", \"inputs\": [");
    for (int j = 0; j < n->n_inputs; j++) {
      if (j) fputs(", ", f);
      json_cstr(f, n->inputs[j] ? n->inputs[j]->name : "");
    }
    fprintf(f, "], \"outputs\": [");
    for (int j = 0; j < n->n_outputs; j++) {
      if (j) fputs(", ", f);
      json_cstr(f, n->outputs[j]->name);
    }
    fprintf(f, "], \"attrs\": [");
    for (int j = 0; j < n->n_attrs; j++) {
      if (j) fputs(", ", f);
      dump_attr(f, &n->attrs[j], shape_info);
    }
    fprintf(f, "]}");
  }
  fprintf(f, "], \"inits\": [");
  for (int i = 0; i < g->inits.len; i++) {
    if (i) fputs(", ", f);
    dump_tensor(f, g->inits.items[i]);
  }
  fputc(']', f);
  dump_vi_list(f, "inputs", &g->inputs);
  dump_vi_list(f, "outputs", &g->outputs);
  fprintf(f, ", \"value_info\": [");
  first = true;
  for (int i = 0; shape_info && i < g->nodes.len; i++) {
    const ONode *n = g->nodes.items[i];
    if (n->dead) continue;
    for (int j = 0; j < n->n_outputs; j++) {
      const OValue *v = n->outputs[j];
      if (v->is_output || v->type.et == ET_UNDEF || v->type.rank < 0) continue;
      if (!first) fputs(", ", f);
      first = false;
      dump_vi(f, v);
    }
  }
  fprintf(f, "]}");
}

static void dump_model(FILE *f, const char *key, const OModel *m, bool shape_info) {
  fprintf(f, "\"%s\": {\"opset\": %d, \"producer_name\": ", key, m->opset);
  json_cstr(f, m->producer_name ? m->producer_name : "hlo2onnx");
  fprintf(f, ", \"producer_version\": ");
  json_cstr(f, m->producer_version ? m->producer_version : H2O_VERSION);
  fprintf(f, ", \"doc\": ");
  json_cstr(f, m->doc);
  fprintf(f, ",\n \"graph\": ");
  dump_graph(f, m->graph, shape_info);
  fprintf(f, "},\n");
}

/* One output to check.  ext_min: tensors of at least that many bytes must
 * be external (0: none); data: the external data file name. */
static void dump_case(FILE *f, const char *file, const char *model, uint64_t ext_min,
                      const char *data, const char *checks) {
  static bool first = true;
  fprintf(f, "%s{\"file\": ", first ? "" : ",\n ");
  first = false;
  json_cstr(f, file);
  fprintf(f, ", \"model\": \"%s\", \"external_min\": %llu, \"data_file\": ", model,
          (unsigned long long)ext_min);
  json_cstr(f, data);
  fprintf(f, ", \"checks\": \"%s\"}", checks);
}

static void dump_floats(FILE *f, const char *name, const float *v, int n, const char *shape) {
  fprintf(f, "\"%s\": {\"shape\": %s, \"hex\": ", name, shape);
  json_hex(f, v, (size_t)n * sizeof(float));
  fputc('}', f);
}

/* ---- writing the cases -------------------------------------------------- */

/* Writes m to memory and to `name` (no external data); they must agree
 * byte for byte, and writing again gives the same bytes. */
static void write_plain(const OModel *m, const char *name) {
  void *mem = NULL, *mem2 = NULL;
  size_t len = 0, len2 = 0;
  CHECK(ow_write_memory(ctx(), m, &mem, &len) == 0);
  if (C.status) fprintf(stderr, "%s", C.diag);
  CHECK(ow_write_memory(ctx(), m, &mem2, &len2) == 0);
  CHECK(mem && mem2 && len == len2 && memcmp(mem, mem2, len) == 0);
  char *path = path_in(name);
  CHECK(ow_write_file(ctx(), m, path) == 0);
  if (C.status) fprintf(stderr, "%s", C.diag);
  size_t flen = 0;
  uint8_t *fbytes = read_file(path, &flen);
  CHECK(fbytes && flen == len && memcmp(fbytes, mem, len) == 0);
  free(fbytes);
  free(mem);
  free(mem2);
}

/* Writes m with external data; returns 0 on success. */
static int write_ext(const OModel *m, const char *name, size_t threshold,
                     const char *data_name) {
  O.external_threshold = threshold;
  O.external_data = data_name;
  int rc = ow_write_file(ctx(), m, path_in(name));
  if (rc) fprintf(stderr, "%s", C.diag);
  O.external_threshold = 0;
  O.external_data = NULL;
  return rc;
}

/* ---- local functions ----------------------------------------------------
 * main(x) = twice(x, w) -> (y1, y2); y3 = scale_add(y1, w), where
 * scale_add(a, b) = a * k + b with a constant k of its own, and twice calls
 * scale_add twice.  A function no node calls ("unused") is not written; the
 * functions come in the order of their first call; k stays a Constant node
 * inside the model when w goes to the external data file. */
typedef struct FnCase {
  float x[6], y1[6], y2[6], y3[6];
} FnCase;

static OFunction *function(const char *name, OGraph *g) {
  OFunction *f = arena_alloc(A, sizeof *f);
  f->name = name;
  f->graph = g;
  return f;
}

static ONode *call(OGraph *g, OFunction *f, int n_in, OValue *const *in, int n_out) {
  ONode *n = node(g, f->name, OG_FN_DOMAIN, n_in, in, n_out);
  n->fn = f;
  return n;
}

static OModel *model_functions(FnCase *fc) {
  int64_t d23[] = {2, 3};
  float *w = arena_alloc(A, 6 * sizeof(float)), *k = arena_alloc(A, 6 * sizeof(float));
  for (int i = 0; i < 6; i++) {
    fc->x[i] = (float)i - 2.0f;
    w[i] = 0.25f * (float)i;
    k[i] = 0.5f + (float)i;
  }
  /* scale_add(a, b) = a * k + b */
  OGraph *sg = og_new(&C, "scale_add", NULL);
  OValue *a = val(sg, "a", ET_F32, 2, d23), *b = val(sg, "b", ET_F32, 2, d23);
  add_input(sg, a);
  add_input(sg, b);
  OValue *kv = init(sg, "k", ET_F32, 2, d23, raw(k, 6 * sizeof(float)));
  OValue *mul_in[] = {a, kv};
  ONode *mul = node(sg, "Mul", NULL, 2, mul_in, 1);
  name_output(mul, 0, "m", ET_F32, 2, d23);
  OValue *add_in[] = {mul->outputs[0], b};
  ONode *add = node(sg, "Add", NULL, 2, add_in, 1);
  name_output(add, 0, "out", ET_F32, 2, d23);
  add_output(sg, add->outputs[0]);
  OFunction *scale_add = function("scale_add", sg);
  /* twice(a, b) = (scale_add(scale_add(a, b), b), -scale_add(a, b)) */
  OGraph *tg = og_new(&C, "twice", NULL);
  OValue *ta = val(tg, "a", ET_F32, 2, d23), *tb = val(tg, "b", ET_F32, 2, d23);
  add_input(tg, ta);
  add_input(tg, tb);
  OValue *c1_in[] = {ta, tb};
  ONode *c1 = call(tg, scale_add, 2, c1_in, 1);
  name_output(c1, 0, "t", ET_F32, 2, d23);
  OValue *c2_in[] = {c1->outputs[0], tb};
  ONode *c2 = call(tg, scale_add, 2, c2_in, 1);
  name_output(c2, 0, "o1", ET_F32, 2, d23);
  ONode *neg = node(tg, "Neg", NULL, 1, c1->outputs, 1);
  name_output(neg, 0, "o2", ET_F32, 2, d23);
  add_output(tg, c2->outputs[0]);
  add_output(tg, neg->outputs[0]);
  OFunction *twice = function("twice", tg);
  /* a function nothing calls */
  OGraph *ug = og_new(&C, "unused", NULL);
  OValue *u = val(ug, "u", ET_F32, 2, d23);
  add_input(ug, u);
  ONode *un = node(ug, "Neg", NULL, 1, &u, 1);
  name_output(un, 0, "v", ET_F32, 2, d23);
  add_output(ug, un->outputs[0]);

  OGraph *g = og_new(&C, "fn_main", NULL);
  OValue *x = val(g, "x", ET_F32, 2, d23);
  add_input(g, x);
  OValue *wv = init(g, "w", ET_F32, 2, d23, raw(w, 6 * sizeof(float)));
  OValue *m1_in[] = {x, wv};
  ONode *m1 = call(g, twice, 2, m1_in, 2);
  name_output(m1, 0, "y1", ET_F32, 2, d23);
  name_output(m1, 1, "y2", ET_F32, 2, d23);
  OValue *m2_in[] = {m1->outputs[0], wv};
  ONode *m2 = call(g, scale_add, 2, m2_in, 1);
  name_output(m2, 0, "y3", ET_F32, 2, d23);
  for (int i = 0; i < 3; i++) add_output(g, i < 2 ? m1->outputs[i] : m2->outputs[0]);
  for (int i = 0; i < 6; i++) {
    float t = fc->x[i] * k[i] + w[i];
    fc->y1[i] = t * k[i] + w[i];
    fc->y2[i] = -t;
    fc->y3[i] = fc->y1[i] * k[i] + w[i];
  }
  OModel *m = arena_alloc(A, sizeof *m);
  m->graph = g;
  m->opset = 20;
  ptrvec_push(A, &m->functions, function("unused", ug));
  ptrvec_push(A, &m->functions, scale_add);
  ptrvec_push(A, &m->functions, twice);
  return m;
}

static void test_functions(FILE *mf) {
  FnCase fc;
  OModel *m = model_functions(&fc);
  write_plain(m, "fn.onnx");
  CHECK(write_ext(m, "fn_ext.onnx", 16, NULL) == 0);
  /* A call node that does not name its function is a bug, reported. */
  ONode *first = m->graph->nodes.items[0];
  const char *op_type = first->op_type;
  first->op_type = "renamed";
  void *mem = NULL;
  size_t len = 0;
  CHECK(ow_write_memory(ctx(), m, &mem, &len) == -1 && !mem);
  CHECK(C.status == H2O_EINTERNAL && strstr(C.diag, "does not name its function"));
  first->op_type = op_type;
  fprintf(mf, "\"functions\": {\"files\": [\"fn.onnx\", \"fn_ext.onnx\"], \"feeds\": {");
  dump_floats(mf, "x", fc.x, 6, "[2, 3]");
  fprintf(mf, "}, \"expect\": {");
  dump_floats(mf, "y1", fc.y1, 6, "[2, 3]");
  fputs(", ", mf);
  dump_floats(mf, "y2", fc.y2, 6, "[2, 3]");
  fputs(", ", mf);
  dump_floats(mf, "y3", fc.y3, 6, "[2, 3]");
  fprintf(mf, "}},\n");
}

static void test_failures(const OModel *m) {
  /* A directory that does not exist: an error, nothing created. */
  char *missing = path_in("nosuch/dir/m.onnx");
  CHECK(ow_write_file(ctx(), m, missing) == -1);
  CHECK(C.status == H2O_EIO && C.diag && strstr(C.diag, "nosuch/dir/m.onnx") &&
         strstr(C.diag, "No such file or directory"));
  CHECK(!exists(path_in("nosuch")));

  /* The external data file cannot be created: the model is not written. */
  char *sub = path_in("fail");
  mkdir(sub, 0755);
  char *keep = path_in("fail/keep.onnx");
  write_bytes(keep, "OLD", 3);
  O.external_threshold = 16;
  O.external_data = "nodir/keep.data";
  CHECK(ow_write_file(ctx(), m, keep) == -1 && C.status == H2O_EIO);
  /* A bad external data name: a usage error before anything is written. */
  O.external_data = "../escape.data";
  CHECK(ow_write_file(ctx(), m, keep) == -1 && C.status == H2O_EUSAGE);
  O.external_data = "keep.onnx";
  CHECK(ow_write_file(ctx(), m, keep) == -1 && C.status == H2O_EUSAGE);
  /* Renaming the data file into place fails (a directory is in the way):
   * both temporaries go, the old model stays. */
  mkdir(path_in("fail/keep.onnx.data"), 0755);
  O.external_data = NULL;
  CHECK(ow_write_file(ctx(), m, keep) == -1 && C.status == H2O_EIO);
  O.external_threshold = 0;
  size_t len = 0;
  uint8_t *old = read_file(keep, &len);
  CHECK(old && len == 3 && memcmp(old, "OLD", 3) == 0);
  free(old);
  CHECK(!has_tmp_files(sub));
  CHECK(count_entries(sub) == 2);

  /* The disk fills up mid-write (a file size limit stands in for it). */
  struct rlimit saved, lim;
  getrlimit(RLIMIT_FSIZE, &saved);
  lim = saved;
  lim.rlim_cur = 2000;
  void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
  if (setrlimit(RLIMIT_FSIZE, &lim) == 0) {
    CHECK(ow_write_file(ctx(), m, keep) == -1 && C.status == H2O_EIO);
    CHECK(C.diag && strstr(C.diag, "keep.onnx") && strstr(C.diag, "too large"));
    setrlimit(RLIMIT_FSIZE, &saved);
    old = read_file(keep, &len);
    CHECK(old && len == 3 && memcmp(old, "OLD", 3) == 0);
    free(old);
    CHECK(!has_tmp_files(sub));
  }
  signal(SIGXFSZ, old_handler);

  /* A stale temporary with our pid (a crashed run) is neither used nor
   * removed: the writer takes the next free name. */
  char *stale = arena_printf(A, "%s.tmp.%ld", keep, (long)getpid());
  write_bytes(stale, "STALE", 5);
  CHECK(ow_write_file(ctx(), m, keep) == 0);
  old = read_file(stale, &len);
  CHECK(old && len == 5 && memcmp(old, "STALE", 5) == 0);
  free(old);
  unlink(stale);
  CHECK(!has_tmp_files(sub));
  old = read_file(keep, &len);
  CHECK(old && len > 3);
  free(old);

  /* A device: written in place, never renamed over. */
  if (exists("/dev/full")) {
    CHECK(ow_write_file(ctx(), m, "/dev/full") == -1 && C.status == H2O_EIO);
    CHECK(C.diag && strstr(C.diag, "/dev/full") && strstr(C.diag, "No space left"));
    struct stat st;
    CHECK(stat("/dev/full", &st) == 0 && S_ISCHR(st.st_mode));
  }
  if (exists("/dev/null")) {
    O.external_threshold = 16; /* ignored: no data file next to a device */
    CHECK(ow_write_file(ctx(), m, "/dev/null") == 0);
    O.external_threshold = 0;
    CHECK(!exists("/dev/null.data"));
    struct stat st;
    CHECK(stat("/dev/null", &st) == 0 && S_ISCHR(st.st_mode));
  }

  /* A broken tensor is a bug in hlo2onnx, reported, nothing written. */
  OGraph *g = og_new(&C, "bad", NULL);
  int64_t d3[] = {3};
  OValue *t = init(g, "short", ET_F32, 1, d3, raw("abcd", 4));
  add_output(g, t);
  OModel bad = {.graph = g, .opset = 20};
  void *mem = NULL;
  size_t mem_len = 0;
  CHECK(ow_write_memory(ctx(), &bad, &mem, &mem_len) == -1 && !mem);
  CHECK(C.status == H2O_EINTERNAL && strstr(C.diag, "short") && strstr(C.diag, "12"));
  CHECK(ow_write_file(ctx(), &bad, path_in("bad.onnx")) == -1);
  CHECK(!exists(path_in("bad.onnx")));

  /* Past 2 GB in memory: refused after the size pass, data never read. */
  OGraph *g2 = og_new(&C, "huge", NULL);
  int64_t dh[] = {(int64_t)3 << 30};
  OValue *h = init(g2, "huge", ET_U8, 1, dh, raw("x", (size_t)3 << 30));
  add_output(g2, h);
  OModel huge = {.graph = g2, .opset = 20};
  CHECK(ow_write_memory(ctx(), &huge, &mem, &mem_len) == -1 && !mem);
  CHECK(C.status == H2O_EUNSUPPORTED);
  /* ... and to a device, where external data cannot go. */
  CHECK(ow_write_file(ctx(), &huge, "/dev/null") == -1 && C.status == H2O_EUNSUPPORTED);
}

/* A 2.2 GB model: two 1.1 GB tensors (the same zero pages twice) and small
 * ones.  Without a threshold, the writer must notice the size first and
 * move every tensor of 1 KiB or more to the data file. */
static bool write_big(FILE *mf) {
  size_t n = (size_t)1100 << 20;
  struct statvfs fs;
  if (statvfs(dir, &fs) == 0 && (uint64_t)fs.f_bavail * fs.f_frsize < ((uint64_t)3 << 30)) {
    fprintf(stderr, "test_write: less than 3 GB free in %s, skipped the big model\n", dir);
    return false;
  }
  int zfd = open("/dev/zero", O_RDONLY);
  if (zfd < 0) return false;
  void *zeros = mmap(NULL, n, PROT_READ, MAP_PRIVATE, zfd, 0);
  close(zfd);
  if (zeros == MAP_FAILED) return false;
  OGraph *g = og_new(&C, "big", NULL);
  int64_t dn[] = {(int64_t)n}, d256[] = {256}, d255[] = {255};
  static uint8_t small[1024];
  for (int i = 0; i < 1024; i++) small[i] = (uint8_t)i;
  add_output(g, init(g, "z1", ET_U8, 1, dn, raw(zeros, n)));
  add_output(g, init(g, "k1", ET_F32, 1, d256, raw(small, 1024))); /* 1 KiB: out */
  add_output(g, init(g, "z2", ET_U8, 1, dn, raw(zeros, n)));
  add_output(g, init(g, "b1", ET_U8, 1, d255, raw(small, 255)));   /* stays */
  OModel m = {.graph = g, .opset = 20};
  CHECK(ow_write_file(ctx(), &m, path_in("big.onnx")) == 0);
  if (C.status) fprintf(stderr, "%s", C.diag);
  struct stat st;
  /* z1 at 0, k1 at n, z2 at the next 4096 boundary; b1 (255 bytes) inline. */
  CHECK(stat(path_in("big.onnx.data"), &st) == 0 &&
         (uint64_t)st.st_size == 2 * (uint64_t)n + 4096);
  CHECK(stat(path_in("big.onnx"), &st) == 0 && st.st_size < 4096);
  munmap(zeros, n);
  dump_model(mf, "big", &m, false);
  return true;
}

int main(int argc, char **argv) {
  A = arena_new(&oom);
  if (setjmp(oom)) {
    fprintf(stderr, "out of memory\n");
    return 1;
  }
  ctx();
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/h2o_write_XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!mkdtemp(dir)) {
    perror("mkdtemp");
    return 1;
  }
  char *mpath = path_in("manifest.json");
  FILE *mf = fopen(mpath, "w");
  if (!mf) return 1;
  fprintf(mf, "{\n");

  test_pb();
  test_ir_versions(mf);

  /* The full model: memory, file, and two external layouts. */
  reset_opts();
  OModel *full = model_full();
  write_plain(full, "full.onnx");
  CHECK(write_ext(full, "full_ext.onnx", 1024, NULL) == 0);
  mkdir(path_in("w"), 0755);
  CHECK(write_ext(full, "full_ext16.onnx", 16, "w/weights.bin") == 0);
  struct stat st;
  CHECK(stat(path_in("w/weights.bin"), &st) == 0 && st.st_size > 0);
  CHECK(!exists(path_in("full.onnx.data")));
  O.shape_info = 1;
  write_plain(full, "full_si.onnx");
  O.shape_info = 0;
  dump_model(mf, "full", full, false);
  dump_model(mf, "full_si", full, true);

  /* The runnable model. */
  RunCase rc;
  OModel *run = model_run(&rc);
  O.shape_info = 1;
  write_plain(run, "run.onnx");
  CHECK(write_ext(run, "run_ext.onnx", 16, NULL) == 0);
  /* Writing over an existing model and data file gives the same bytes. */
  size_t len1 = 0, dlen1 = 0, len2 = 0, dlen2 = 0;
  uint8_t *m1 = read_file(path_in("run_ext.onnx"), &len1);
  uint8_t *d1 = read_file(path_in("run_ext.onnx.data"), &dlen1);
  CHECK(write_ext(run, "run_ext.onnx", 16, NULL) == 0);
  uint8_t *m2 = read_file(path_in("run_ext.onnx"), &len2);
  uint8_t *d2 = read_file(path_in("run_ext.onnx.data"), &dlen2);
  CHECK(m1 && m2 && len1 == len2 && memcmp(m1, m2, len1) == 0);
  CHECK(d1 && d2 && dlen1 == dlen2 && memcmp(d1, d2, dlen1) == 0);
  free(m1);
  free(m2);
  free(d1);
  free(d2);
  O.shape_info = 0;
  dump_model(mf, "run", run, true);
  fprintf(mf, "\"run_io\": {\"feeds\": {");
  dump_floats(mf, "x", rc.x, 6, "[2, 3]");
  fprintf(mf, ", \"flag\": {\"shape\": [], \"hex\": \"01\", \"dtype\": \"bool\"}}, \"expect\": {");
  dump_floats(mf, "out1", rc.out1, 6, "[2, 3]");
  fputs(", ", mf);
  dump_floats(mf, "out2", rc.out2, 1024, "[1024]");
  fputs(", ", mf);
  dump_floats(mf, "out3", rc.out3, 2, "[2]");
  fprintf(mf, "}},\n");

  /* Random models, some with external data. */
  for (int seed = 1; seed <= 12; seed++) {
    OModel *fz = model_fuzz((uint64_t)seed * 0x9E3779B97F4A7C15u);
    O.shape_info = seed % 2;
    char *name = arena_printf(A, "fuzz%d.onnx", seed);
    write_plain(fz, name);
    CHECK(write_ext(fz, arena_printf(A, "fuzz%d_ext.onnx", seed), 8, NULL) == 0);
    dump_model(mf, arena_printf(A, "fuzz%d", seed), fz, O.shape_info);
    O.shape_info = 0;
  }

  test_failures(full);
  reset_opts();
  test_functions(mf);

  const char *skip_big = getenv("H2O_TEST_SKIP_BIG");
  bool big = !(skip_big && *skip_big == '1') && write_big(mf);

  fprintf(mf, "\"cases\": [");
  dump_case(mf, "full.onnx", "full", 0, NULL, "checker");
  dump_case(mf, "full_ext.onnx", "full", 1024, "full_ext.onnx.data", "checker");
  dump_case(mf, "full_ext16.onnx", "full", 16, "w/weights.bin", "checker");
  dump_case(mf, "full_si.onnx", "full_si", 0, NULL, "checker");
  dump_case(mf, "run.onnx", "run", 0, NULL, "checker full run");
  dump_case(mf, "run_ext.onnx", "run", 16, "run_ext.onnx.data", "checker full run");
  for (int seed = 1; seed <= 12; seed++) {
    dump_case(mf, arena_printf(A, "fuzz%d.onnx", seed), arena_printf(A, "fuzz%d", seed), 0,
              NULL, "");
    dump_case(mf, arena_printf(A, "fuzz%d_ext.onnx", seed), arena_printf(A, "fuzz%d", seed),
              8, arena_printf(A, "fuzz%d_ext.onnx.data", seed), "");
  }
  if (big) dump_case(mf, "big.onnx", "big", 1024, "big.onnx.data", "nodata");
  fprintf(mf, "]\n}\n");
  fclose(mf);

  /* The onnx-side checks. */
  const char *script = argc > 1 ? argv[1] : "check_written.py";
  const char *python = getenv("PYTHON");
  int status = 0;
  bool onnx_skipped = false;
  if (exists(script)) {
    char *cmd = arena_printf(A, "'%s' '%s' '%s'", python && *python ? python : "python3",
                             script, dir);
    status = system(cmd);
    int code = status >= 0 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == 77) {
      fprintf(stderr, "test_write: onnx not installed, skipped the onnx checks\n");
      onnx_skipped = true;
    } else if (code != 0) {
      fail("test_write: %s failed (exit %d)", script, code);
    }
  } else {
    fprintf(stderr, "test_write: %s not found, skipped the onnx checks\n", script);
    onnx_skipped = true;
  }

  const char *keep = getenv("H2O_KEEP_TEST_OUTPUT");
  if (keep && *keep == '1' ? true : n_failed > 0) {
    fprintf(stderr, "test_write: output kept in %s\n", dir);
  } else {
    system(arena_printf(A, "rm -rf '%s'", dir));
  }
  ctx_release(&C);
  arena_free(A);
  if (n_failed || !onnx_skipped) return test_summary("test_write");
  printf("test_write: the C checks passed; the onnx checks were skipped\n");
  return 77;
}
