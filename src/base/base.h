/* base/base.h - what every stage of the C core shares: the allocator
 * (alloc.c), arena memory (arena.c), diagnostics with positions (diag.c),
 * element and tensor types (types.c) and tensor data.
 *
 * The core is a pipeline, one directory per stage and one header per layer:
 *
 *   text --parse/-->   HLO IR (ir/ir.h)              "parse"
 *        --lower/-->   ONNX graph (onnx/onnx.h)      "lower"
 *        --passes/-->  ONNX graph, simplified        "fold", "simplify", fusions, "dce"
 *        --write/-->   .onnx protobuf (+ .data)      "write"
 *
 * pipeline.c lists the stages in order.  Each layer includes the header of
 * the layers below it and nothing else: base/base.h, ir/ir.h,
 * onnx/onnx.h, then lower/lower.h, passes/passes.h and write/write.h, which
 * only their own directory (and pipeline.c) include.  Prefixes: h2o_
 * (allocator, public API), arena_, ptrvec_, ctx_, diag_, data_,
 * et_/type_/elem_ (base), lex_/tok_/scope_/parse_ (parse), ir_/op_ (HLO
 * IR), og_/onnx_ (ONNX graph and its op table), lw_/lower_ (lowering
 * helpers/converters), pass_/fm_ (passes), pb_/ow_ (writer).
 */
#ifndef H2O_BASE_BASE_H
#define H2O_BASE_BASE_H


#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "hlo2onnx.h"

#if defined(__GNUC__)
#define H2O_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define H2O_PRINTF(f, a)
#endif

/* Checked int64 arithmetic: true when a + b (a * b) overflows, and *out is
 * then unspecified.  GCC's and clang's builtins where they exist, ISO C
 * checks elsewhere (MSVC). */
static inline bool h2o_add_overflow(int64_t a, int64_t b, int64_t *out) {
#if defined(__GNUC__)
  return __builtin_add_overflow(a, b, out);
#else
  if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b)) return true;
  *out = a + b;
  return false;
#endif
}

static inline bool h2o_mul_overflow(int64_t a, int64_t b, int64_t *out) {
#if defined(__GNUC__)
  return __builtin_mul_overflow(a, b, out);
#else
  if (a > 0 ? (b > 0 ? a > INT64_MAX / b : b < INT64_MIN / a)
            : (b > 0 ? a < INT64_MIN / b : (a != 0 && b < INT64_MAX / a)))
    return true;
  *out = a * b;
  return false;
#endif
}

typedef struct Ctx Ctx;

/* ===================================================================
 * base/alloc.c - the one allocator every other part of the core takes
 * memory from (the arena's chunks included).  NULL when memory runs out;
 * h2o_realloc then leaves the old block as it was.  With H2O_FAIL_ALLOC,
 * tests can make an allocation fail on purpose: h2o_test_alloc_start counts
 * allocations from zero and makes the fail_at-th fail (0: none; sticky:
 * every later one too), h2o_test_alloc_stop stops and returns the count.
 * =================================================================== */
void *h2o_malloc(size_t size);
void *h2o_calloc(size_t count, size_t size);
void *h2o_realloc(void *p, size_t size);
void h2o_free(void *p);
#ifdef H2O_FAIL_ALLOC
void h2o_test_alloc_start(long fail_at, bool sticky);
long h2o_test_alloc_stop(void);
#endif

/* ===================================================================
 * base/arena.c - arena memory.  A conversion owns one arena; everything it
 * builds lives there and is freed at once.  Allocation never returns NULL:
 * when memory runs out the arena longjmps to the handler the pipeline set
 * (Ctx.oom), so callers need no checks.  Large tensor data is never copied
 * into the arena: it points at the caller's buffers or at the input text.
 * =================================================================== */
typedef struct Arena Arena;
Arena *arena_new(jmp_buf *oom);
void arena_free(Arena *a);
void *arena_alloc(Arena *a, size_t size); /* zeroed, 16-byte aligned */
void *arena_realloc(Arena *a, void *old, size_t old_size, size_t new_size);
char *arena_strndup(Arena *a, const char *s, size_t n);
char *arena_strdup(Arena *a, const char *s);
char *arena_printf(Arena *a, const char *fmt, ...) H2O_PRINTF(2, 3);
size_t arena_bytes_used(const Arena *a);

/* A growable array of pointers, its storage in the arena. */
typedef struct PtrVec {
  void **items;
  int len, cap;
} PtrVec;
void ptrvec_push(Arena *a, PtrVec *v, void *item);

/* ===================================================================
 * base/diag.c - diagnostics.  User errors are values: each is formatted as
 * "file:line:col: error: message", followed by the source line and a caret,
 * and appended to Ctx.diag.  The first error decides Ctx.status.  A broken
 * internal invariant is reported the same way by H2O_CHECK, naming
 * __FILE__:__LINE__; nothing here ever aborts the host process.
 * =================================================================== */
typedef struct SrcPos {
  int line, col; /* 1-based; line 0 = unknown */
} SrcPos;

struct Ctx {
  Arena *arena;
  jmp_buf *oom;            /* where arena_alloc jumps when memory runs out */
  const char *file;        /* name shown in messages */
  const char *src;         /* the input text (not NUL-terminated) */
  size_t src_len;
  const h2o_options *opts;
  /* diagnostics */
  char *diag;              /* malloc'd, grows; NUL-terminated */
  size_t diag_len, diag_cap;
  int n_errors;
  int status;              /* H2O_OK until the first error */
  int max_errors;          /* stop recording after this many (default 50) */
  /* The JAX scope and Python line of the calls the lowering is inlining: a
   * callee's ops carry scopes relative to their call ("max" in @relu,
   * called from "jit(f)/jit(relu)") and often no line of their own, so
   * nodes and messages take these as prefix and fallback. */
  const char *call_scope, *call_source;
};

void ctx_init(Ctx *c, Arena *a, jmp_buf *oom, const char *file, const char *src,
              size_t len, const h2o_options *opts);
void ctx_release(Ctx *c); /* frees diag */
/* Each returns -1 so callers can write `return diag_error_at(...)`. */
int diag_error_at(Ctx *c, int status, SrcPos pos, const char *fmt, ...)
    H2O_PRINTF(4, 5);
int diag_verror_at(Ctx *c, int status, SrcPos pos, const char *fmt, va_list ap);
/* The same with the JAX name scope of what failed appended, when not NULL,
 * and a last line "  from Python: model.py:12" naming the Python line that
 * made it, when known (diag_error_op of ir/ir.h passes an op's). */
int diag_verror_scoped(Ctx *c, int status, SrcPos pos, const char *scope,
                       const char *source, const char *fmt, va_list ap);
int diag_error(Ctx *c, int status, const char *fmt, ...) H2O_PRINTF(3, 4);
int diag_internal(Ctx *c, const char *file, int line, const char *what);
void diag_note(Ctx *c, const char *fmt, ...) H2O_PRINTF(2, 3); /* appends a line */

#define H2O_CHECK(ctx, cond)                                   \
  do {                                                         \
    if (!(cond)) return diag_internal((ctx), __FILE__, __LINE__, #cond); \
  } while (0)

/* ===================================================================
 * base/types.c - element types and tensor types.  ElemType values are the
 * ONNX TensorProto.DataType numbers, so the writer needs no mapping.
 * =================================================================== */
typedef enum ElemType {
  ET_UNDEF = 0, ET_F32 = 1, ET_U8 = 2, ET_I8 = 3, ET_U16 = 4, ET_I16 = 5,
  ET_I32 = 6, ET_I64 = 7, ET_STRING = 8, ET_BOOL = 9, ET_F16 = 10,
  ET_F64 = 11, ET_U32 = 12, ET_U64 = 13, ET_C64 = 14, ET_C128 = 15,
  ET_BF16 = 16, ET_F8E4M3FN = 17, ET_F8E4M3FNUZ = 18, ET_F8E5M2 = 19,
  ET_F8E5M2FNUZ = 20, ET_U4 = 21, ET_I4 = 22, ET_F4E2M1 = 23,
  ET_F8E8M0 = 24, ET_U2 = 25, ET_I2 = 26, ET_F6E2M3 = 27, ET_F6E3M2 = 28,
  /* MLIR types without an ONNX counterpart: known so that the lowering can
   * name them in its error (et_onnx_name is "none") */
  ET_NO_ONNX = 100, ET_F8E4M3 = ET_NO_ONNX, ET_F8E3M4, ET_F8E4M3B11FNUZ
} ElemType;

size_t et_size(ElemType et);          /* bytes per element; 0 for sub-byte/undef */
const char *et_mlir_name(ElemType et); /* "f32", "i1", "ui8", ... */
const char *et_onnx_name(ElemType et); /* "FLOAT", "BOOL", ... */
ElemType et_from_mlir(const char *s, size_t n); /* ET_UNDEF when unknown */
bool et_is_float(ElemType et);
bool et_is_signed_int(ElemType et);   /* i8..i64 */
bool et_is_unsigned_int(ElemType et); /* ui8..ui64 (not bool) */
bool et_is_int(ElemType et);          /* signed or unsigned, not bool */
/* Complex numbers in ONNX: a complex tensor is a real tensor with a trailing
 * axis of 2 (real, imaginary), the layout of ONNX's DFT, because onnxruntime
 * has no kernels for ONNX's complex types.  et_complex_part: f32 for
 * complex<f32>, f64 for complex<f64>, ET_UNDEF for the other types. */
ElemType et_complex_part(ElemType et);

#define DIM_DYN (-1) /* a '?' dimension */
#define MAX_RANK 64

typedef enum TypeKind { TK_TENSOR = 0, TK_TOKEN, TK_TUPLE, TK_OTHER } TypeKind;

typedef struct Type {
  TypeKind kind;
  ElemType et;
  int rank;
  const int64_t *dims; /* rank entries, DIM_DYN for '?'; arena-owned */
} Type;

int64_t type_numel(const Type *t);  /* -1 when a dim is dynamic or on overflow */
bool type_is_static(const Type *t);
bool type_equal(const Type *a, const Type *b);
/* The type of t's ONNX value: a complex tensor as real pairs (dims + [2],
 * dims in the arena), any other type as it is. */
Type type_as_pairs(Arena *a, const Type *t);
/* "tensor<4x?xf32>" into buf; returns buf. */
char *type_str(const Type *t, char *buf, size_t size);

/* ===================================================================
 * Tensor data.  Bytes are little-endian, row-major.  DATA_HEX points at the
 * hex digits of a dense<"0x..."> blob in the input text: it is decoded while
 * writing, so the CLI path never holds a second copy of big constants.
 * Booleans take one byte each, as in both MLIR blobs and ONNX raw_data.
 * =================================================================== */
typedef enum DataKind { DATA_NONE = 0, DATA_RAW, DATA_HEX } DataKind;

typedef struct Data {
  DataKind kind;
  const void *ptr; /* RAW: the bytes; HEX: the first hex digit */
  size_t nbytes;   /* size of the decoded bytes */
} Data;

/* The decoded bytes: RAW as is, HEX decoded into the arena once (the Data
 * then becomes RAW, so later calls cost nothing). */
const uint8_t *data_bytes(Ctx *c, const Data *d);
/* Decodes HEX digits (2*n of them) into out[0..n). */
void hex_decode(const char *hex, size_t n, uint8_t *out);

/* ===================================================================
 * base/elem.c - element i of tensor data (little-endian bytes of type et)
 * as a double, and back.  Stores round a double once to the nearest value
 * of a narrow float (ties to even, overflow to inf); integers are
 * truncated as C converts them, bool is v != 0.  Types without values
 * (string, sub-byte, complex) load as NaN and store zero bytes.
 * =================================================================== */
double elem_load(const uint8_t *data, ElemType et, int64_t i);
/* Integers and bool as int64 (ui64 as its bit pattern); 0 for others. */
int64_t elem_load_int(const uint8_t *data, ElemType et, int64_t i);
void elem_store(uint8_t *data, ElemType et, int64_t i, double v);
uint16_t f16_from_double(double v);
double f16_to_double(uint16_t h);
uint16_t bf16_from_double(double v);
double bf16_to_double(uint16_t h);
/* The bit pattern of v rounded to a narrow float type (f16, bf16, f8E5M2,
 * f8E4M3FN, f8E4M3FNUZ, f8E5M2FNUZ); false for other types. */
bool elem_narrow_float_bits(ElemType et, double v, uint32_t *bits);

#endif
