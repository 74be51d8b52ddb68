/* types.c - element types (numbered as ONNX's TensorProto.DataType) and
 * tensor types of the HLO IR. */
#include "base/base.h"

#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

typedef struct ElemInfo {
  const char *mlir, *onnx;
  size_t size;
} ElemInfo;

static const ElemInfo elem_info[] = {
    [ET_UNDEF] = {"?", "UNDEFINED", 0},    [ET_F32] = {"f32", "FLOAT", 4},
    [ET_U8] = {"ui8", "UINT8", 1},         [ET_I8] = {"i8", "INT8", 1},
    [ET_U16] = {"ui16", "UINT16", 2},      [ET_I16] = {"i16", "INT16", 2},
    [ET_I32] = {"i32", "INT32", 4},        [ET_I64] = {"i64", "INT64", 8},
    [ET_STRING] = {"!string", "STRING", 0}, [ET_BOOL] = {"i1", "BOOL", 1},
    [ET_F16] = {"f16", "FLOAT16", 2},      [ET_F64] = {"f64", "DOUBLE", 8},
    [ET_U32] = {"ui32", "UINT32", 4},      [ET_U64] = {"ui64", "UINT64", 8},
    [ET_C64] = {"complex<f32>", "COMPLEX64", 8},
    [ET_C128] = {"complex<f64>", "COMPLEX128", 16},
    [ET_BF16] = {"bf16", "BFLOAT16", 2},
    [ET_F8E4M3FN] = {"f8E4M3FN", "FLOAT8E4M3FN", 1},
    [ET_F8E4M3FNUZ] = {"f8E4M3FNUZ", "FLOAT8E4M3FNUZ", 1},
    [ET_F8E5M2] = {"f8E5M2", "FLOAT8E5M2", 1},
    [ET_F8E5M2FNUZ] = {"f8E5M2FNUZ", "FLOAT8E5M2FNUZ", 1},
    [ET_U4] = {"ui4", "UINT4", 0},         [ET_I4] = {"i4", "INT4", 0},
    [ET_F4E2M1] = {"f4E2M1FN", "FLOAT4E2M1", 0},
    [ET_F8E8M0] = {"f8E8M0FNU", "FLOAT8E8M0", 1},
    [ET_U2] = {"ui2", "UINT2", 0},         [ET_I2] = {"i2", "INT2", 0},
    [ET_F6E2M3] = {"f6E2M3FN", "FLOAT6E2M3", 0},
    [ET_F6E3M2] = {"f6E3M2FN", "FLOAT6E3M2", 0},
    [ET_F8E4M3] = {"f8E4M3", "none", 1},   [ET_F8E3M4] = {"f8E3M4", "none", 1},
    [ET_F8E4M3B11FNUZ] = {"f8E4M3B11FNUZ", "none", 1},
};

#define N_ELEM ((int)(sizeof elem_info / sizeof elem_info[0]))

static const ElemInfo *info(ElemType et) {
  return (et >= 0 && (int)et < N_ELEM && elem_info[et].mlir) ? &elem_info[et] : &elem_info[0];
}

size_t et_size(ElemType et) { return info(et)->size; }
const char *et_mlir_name(ElemType et) { return info(et)->mlir; }
const char *et_onnx_name(ElemType et) { return info(et)->onnx; }

ElemType et_from_mlir(const char *s, size_t n) {
  /* MLIR's `index` (shape arithmetic, e.g. in custom_call operands) has no
   * ONNX counterpart; ONNX computes shapes in int64. */
  if (n == 5 && memcmp(s, "index", 5) == 0) return ET_I64;
  for (int i = 1; i < N_ELEM; i++) { /* (the gap below ET_NO_ONNX has no names) */
    const char *name = elem_info[i].mlir;
    if (name && strlen(name) == n && memcmp(name, s, n) == 0) return (ElemType)i;
  }
  return ET_UNDEF;
}

bool et_is_float(ElemType et) {
  switch (et) {
  case ET_F16: case ET_BF16: case ET_F32: case ET_F64:
  case ET_F8E4M3FN: case ET_F8E4M3FNUZ: case ET_F8E5M2: case ET_F8E5M2FNUZ:
  case ET_F4E2M1:
    return true;
  default:
    return false;
  }
}

bool et_is_signed_int(ElemType et) {
  return et == ET_I8 || et == ET_I16 || et == ET_I32 || et == ET_I64 ||
         et == ET_I4;
}

bool et_is_unsigned_int(ElemType et) {
  return et == ET_U8 || et == ET_U16 || et == ET_U32 || et == ET_U64 ||
         et == ET_U4;
}

bool et_is_int(ElemType et) {
  return et_is_signed_int(et) || et_is_unsigned_int(et);
}

int64_t type_numel(const Type *t) {
  int64_t n = 1;
  for (int i = 0; i < t->rank; i++) {
    int64_t d = t->dims[i];
    if (d < 0) return -1;
    if (d != 0 && n > INT64_MAX / d) return -1;
    n *= d;
  }
  return n;
}

ElemType et_complex_part(ElemType et) {
  return et == ET_C64 ? ET_F32 : et == ET_C128 ? ET_F64 : ET_UNDEF;
}

Type type_as_pairs(Arena *a, const Type *t) {
  Type out = *t;
  if (t->kind != TK_TENSOR || et_complex_part(t->et) == ET_UNDEF) return out;
  int64_t *dims = arena_alloc(a, sizeof(int64_t) * (size_t)(t->rank + 1));
  for (int i = 0; i < t->rank; i++) dims[i] = t->dims[i];
  dims[t->rank] = 2;
  out.et = et_complex_part(t->et);
  out.rank = t->rank + 1;
  out.dims = dims;
  return out;
}

bool type_is_static(const Type *t) {
  for (int i = 0; i < t->rank; i++)
    if (t->dims[i] < 0) return false;
  return true;
}

bool type_equal(const Type *a, const Type *b) {
  if (a->kind != b->kind || a->et != b->et || a->rank != b->rank) return false;
  for (int i = 0; i < a->rank; i++)
    if (a->dims[i] != b->dims[i]) return false;
  return true;
}

char *type_str(const Type *t, char *buf, size_t size) {
  if (!size) return buf;
  if (t->kind == TK_TOKEN) {
    snprintf(buf, size, "!stablehlo.token");
    return buf;
  }
  size_t n = (size_t)snprintf(buf, size, "tensor<");
  for (int i = 0; i < t->rank && n < size; i++) {
    if (t->dims[i] < 0)
      n += (size_t)snprintf(buf + n, size - n, "?x");
    else
      n += (size_t)snprintf(buf + n, size - n, "%lldx", (long long)t->dims[i]);
  }
  if (n < size) snprintf(buf + n, size - n, "%s>", et_mlir_name(t->et));
  return buf;
}

/* ---- hex decoding -------------------------------------------------------
 * A 1 GB weight is 2 GB of digits, so this is the inner loop of the CLI path.
 * The parser has already checked every digit (parse_hex_blob) and that there
 * is an even number of them, so the decoder assumes valid input and has no
 * branch per byte: a digit's value is (ch & 0xF) + 9 * bit 6 of ch ('0'-'9'
 * are 0x30-0x39, 'A'-'F' and 'a'-'f' are 0x41-0x46 and 0x61-0x66, whose bit
 * 6 adds the 9).  The main loop turns 32 digits into 16 bytes with SSE2
 * (baseline on x86-64) or 16 digits into 8 bytes in 64-bit words elsewhere;
 * it does not depend on the compiler's vectorizer, which only runs at -O3
 * (at -O2 the plain loop decodes under 1 GB/s, the SSE2 loop 8-9 GB/s: about
 * as fast as memcpy once the data leaves the caches). */
static unsigned hex_nibble(unsigned char ch) { return (ch & 0xFu) + 9u * (ch >> 6); }

#if defined(__SSE2__)
/* 16 digits -> 8 bytes, each in the low half of a 16-bit lane: digit 2k is
 * the high nibble of byte k, digit 2k + 1 the low one. */
static __m128i hex_pairs_sse2(__m128i ch) {
  const __m128i low4 = _mm_set1_epi8(0x0F), bit = _mm_set1_epi8(1), low8 = _mm_set1_epi16(0xFF);
  __m128i b6 = _mm_and_si128(_mm_srli_epi16(ch, 6), bit);
  __m128i v = _mm_add_epi8(_mm_and_si128(ch, low4), _mm_add_epi8(b6, _mm_slli_epi16(b6, 3)));
  return _mm_and_si128(_mm_or_si128(_mm_slli_epi16(v, 4), _mm_srli_epi16(v, 8)), low8);
}
#elif defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HEX_SWAR 1
/* 8 digits (a little-endian word) -> 4 bytes, the same arithmetic on 8 lanes. */
static uint32_t hex_word_swar(const unsigned char *h) {
  uint64_t ch;
  memcpy(&ch, h, 8);
  uint64_t v = (ch & 0x0F0F0F0F0F0F0F0Full) + 9 * ((ch >> 6) & 0x0101010101010101ull);
  v = ((v << 4) | (v >> 8)) & 0x00FF00FF00FF00FFull; /* byte k in 16-bit lane k */
  v = (v | (v >> 8)) & 0x0000FFFF0000FFFFull;
  return (uint32_t)(v | (v >> 16));
}
#endif

void hex_decode(const char *hex, size_t n, uint8_t *out) {
  const unsigned char *h = (const unsigned char *)hex;
  size_t i = 0;
#if defined(__SSE2__)
  for (; n - i >= 16; i += 16) {
    __m128i a = hex_pairs_sse2(_mm_loadu_si128((const __m128i *)(const void *)(h + 2 * i)));
    __m128i b = hex_pairs_sse2(_mm_loadu_si128((const __m128i *)(const void *)(h + 2 * i + 16)));
    _mm_storeu_si128((__m128i *)(void *)(out + i), _mm_packus_epi16(a, b));
  }
#elif defined(HEX_SWAR)
  for (; n - i >= 8; i += 8) {
    uint64_t w = (uint64_t)hex_word_swar(h + 2 * i) | (uint64_t)hex_word_swar(h + 2 * i + 8) << 32;
    memcpy(out + i, &w, 8);
  }
#endif
  for (; i < n; i++)
    out[i] = (uint8_t)(hex_nibble(h[2 * i]) << 4 | hex_nibble(h[2 * i + 1]));
}

const uint8_t *data_bytes(Ctx *c, const Data *d) {
  if (d->kind == DATA_RAW) return d->ptr;
  if (d->kind == DATA_HEX) {
    uint8_t *out = arena_alloc(c->arena, d->nbytes ? d->nbytes : 1);
    hex_decode(d->ptr, d->nbytes, out);
    /* Decode once: the Data now points at the bytes.  Every Data lives in a
     * mutable arena object (an OValue or a Dense); `const` here only says
     * the caller does not change the tensor's value, which stays the same. */
    Data *cached = (Data *)d;
    cached->kind = DATA_RAW;
    cached->ptr = out;
    return out;
  }
  return NULL;
}
