/* elem.c - one element of tensor data as a double: loading it from the
 * little-endian bytes of any numeric element type, and storing a double
 * back, with the one rounding to the narrow float formats (f16, bf16, the
 * f8 kinds) that the parser, the lowering and the passes all use.
 *
 * Rounding works on the integer significand of the double, so a narrow
 * float is the double rounded once, to nearest, ties to even - never via
 * float, whose own rounding could land on a tie of the narrow format and
 * round a second time the wrong way.
 */
#include "base/base.h"

#include <math.h>
#include <string.h>

/* ---- narrow float formats ------------------------------------------------ */

typedef enum NanStyle {
  NAN_IEEE, /* exponent all ones is inf (mantissa 0) or NaN */
  NAN_FN,   /* no inf; NaN is exponent and mantissa all ones */
  NAN_FNUZ  /* no inf, no -0; NaN is the bit pattern of -0 */
} NanStyle;

typedef struct FloatFormat {
  int ebits, mbits, bias;
  NanStyle nan;
} FloatFormat;

static bool float_format(ElemType et, FloatFormat *f) {
  switch (et) {
  case ET_F16: *f = (FloatFormat){5, 10, 15, NAN_IEEE}; return true;
  case ET_BF16: *f = (FloatFormat){8, 7, 127, NAN_IEEE}; return true;
  case ET_F8E5M2: *f = (FloatFormat){5, 2, 15, NAN_IEEE}; return true;
  case ET_F8E4M3FN: *f = (FloatFormat){4, 3, 7, NAN_FN}; return true;
  case ET_F8E4M3FNUZ: *f = (FloatFormat){4, 3, 8, NAN_FNUZ}; return true;
  case ET_F8E5M2FNUZ: *f = (FloatFormat){5, 2, 16, NAN_FNUZ}; return true;
  default: return false;
  }
}

static uint32_t float_nan(const FloatFormat *f, uint32_t sign) {
  uint32_t emask = (1u << f->ebits) - 1, mmask = (1u << f->mbits) - 1;
  switch (f->nan) {
  case NAN_IEEE: return sign | emask << f->mbits | 1u << (f->mbits - 1);
  case NAN_FN: return sign | emask << f->mbits | mmask;
  default: return 1u << (f->ebits + f->mbits);
  }
}

/* Rounds the double v to the nearest value of format f, ties to even, and
 * returns its bit pattern.  Values beyond the largest finite one round to
 * inf (or NaN where the format has no inf), as IEEE rounding does. */
static uint32_t float_encode(double v, const FloatFormat *f) {
  uint64_t b;
  memcpy(&b, &v, 8);
  uint32_t sign = (uint32_t)(b >> 63) << (f->ebits + f->mbits);
  uint32_t emask = (1u << f->ebits) - 1, mmask = (1u << f->mbits) - 1;
  int dexp = (int)(b >> 52 & 0x7FF);
  uint64_t sig = b & ((1ull << 52) - 1);
  if (dexp == 0x7FF) {
    if (sig) return float_nan(f, sign);
    return f->nan == NAN_IEEE ? sign | emask << f->mbits : float_nan(f, sign);
  }
  if (dexp == 0 && sig == 0) return f->nan == NAN_FNUZ ? 0 : sign;
  int e2; /* v = sig * 2^e2 */
  if (dexp == 0) {
    e2 = -1074;
  } else {
    sig |= 1ull << 52;
    e2 = dexp - 1075;
  }
  int bitlen = 0;
  for (uint64_t s = sig; s; s >>= 1) bitlen++;
  int emin = 1 - f->bias;
  int e = bitlen - 1 + e2; /* v = 1.x * 2^e */
  if (e < emin) e = emin;  /* subnormal: the scale of the smallest normal */
  int shift = e - f->mbits - e2;
  uint64_t r;
  if (shift <= 0) {
    r = sig << -shift; /* exact; only for tiny significands */
  } else if (shift >= 64) {
    r = 0; /* below half the smallest subnormal */
  } else {
    r = sig >> shift;
    uint64_t rem = sig & ((1ull << shift) - 1), half = 1ull << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) r++;
  }
  if (r >> (f->mbits + 1)) { /* rounded up to the next power of two */
    r >>= 1;
    e++;
  }
  uint32_t efield, mant;
  if (r >> f->mbits) {
    efield = (uint32_t)(e + f->bias);
    mant = (uint32_t)r & mmask;
  } else {
    efield = 0;
    mant = (uint32_t)r;
  }
  uint32_t emax_field = f->nan == NAN_IEEE ? emask - 1 : emask;
  if (e + f->bias > (int)emax_field || (f->nan == NAN_FN && efield == emask && mant == mmask))
    return f->nan == NAN_IEEE ? sign | emask << f->mbits : float_nan(f, sign);
  if (f->nan == NAN_FNUZ && efield == 0 && mant == 0) return 0;
  return sign | efield << f->mbits | mant;
}

bool elem_narrow_float_bits(ElemType et, double v, uint32_t *bits) {
  FloatFormat f;
  if (!float_format(et, &f)) return false;
  *bits = float_encode(v, &f);
  return true;
}

uint16_t f16_from_double(double v) {
  uint32_t bits = 0;
  elem_narrow_float_bits(ET_F16, v, &bits);
  return (uint16_t)bits;
}

uint16_t bf16_from_double(double v) {
  uint32_t bits = 0;
  elem_narrow_float_bits(ET_BF16, v, &bits);
  return (uint16_t)bits;
}

double f16_to_double(uint16_t h) {
  int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? (double)NAN : (double)INFINITY)
                                              : ldexp(m + 1024, e - 25);
  return (h & 0x8000) ? -v : v;
}

double bf16_to_double(uint16_t h) {
  uint32_t bits = (uint32_t)h << 16; /* bf16 is the top half of an f32 */
  float f;
  memcpy(&f, &bits, 4);
  return f;
}

/* ---- elements ------------------------------------------------------------ */

int64_t elem_load_int(const uint8_t *data, ElemType et, int64_t i) {
  const uint8_t *p = data + (size_t)i * et_size(et);
  switch (et) {
  case ET_BOOL: return p[0] != 0;
  case ET_U8: return p[0];
  case ET_I8: return (int8_t)p[0];
  case ET_I16: { int16_t x; memcpy(&x, p, 2); return x; }
  case ET_U16: { uint16_t x; memcpy(&x, p, 2); return x; }
  case ET_I32: { int32_t x; memcpy(&x, p, 4); return x; }
  case ET_U32: { uint32_t x; memcpy(&x, p, 4); return x; }
  case ET_I64: case ET_U64: { int64_t x; memcpy(&x, p, 8); return x; }
  default: return 0;
  }
}

double elem_load(const uint8_t *data, ElemType et, int64_t i) {
  const uint8_t *p = data + (size_t)i * et_size(et);
  switch (et) {
  case ET_F32: { float x; memcpy(&x, p, 4); return x; }
  case ET_F64: { double x; memcpy(&x, p, 8); return x; }
  case ET_F16: { uint16_t h; memcpy(&h, p, 2); return f16_to_double(h); }
  case ET_BF16: { uint16_t h; memcpy(&h, p, 2); return bf16_to_double(h); }
  case ET_U64: { uint64_t x; memcpy(&x, p, 8); return (double)x; }
  default: /* the other integers and bool are exact as int64 */
    return et_is_int(et) || et == ET_BOOL ? (double)elem_load_int(data, et, i) : NAN;
  }
}

void elem_store(uint8_t *data, ElemType et, int64_t i, double v) {
  uint8_t *p = data + (size_t)i * et_size(et);
  switch (et) {
  case ET_F32: { float f = (float)v; memcpy(p, &f, 4); break; }
  case ET_F64: memcpy(p, &v, 8); break;
  case ET_F16: { uint16_t h = f16_from_double(v); memcpy(p, &h, 2); break; }
  case ET_BF16: { uint16_t h = bf16_from_double(v); memcpy(p, &h, 2); break; }
  case ET_BOOL: p[0] = v != 0; break;
  case ET_I8: case ET_U8: p[0] = (uint8_t)(int64_t)v; break;
  case ET_I16: case ET_U16: { uint16_t x = (uint16_t)(int64_t)v; memcpy(p, &x, 2); break; }
  case ET_I32: case ET_U32: { uint32_t x = (uint32_t)(int64_t)v; memcpy(p, &x, 4); break; }
  case ET_I64: { int64_t x = (int64_t)v; memcpy(p, &x, 8); break; }
  case ET_U64: { uint64_t x = (uint64_t)v; memcpy(p, &x, 8); break; }
  default: {
    uint32_t bits; /* the f8 kinds; nothing for types without values */
    if (et_size(et) == 1 && elem_narrow_float_bits(et, v, &bits)) p[0] = (uint8_t)bits;
    else memset(p, 0, et_size(et));
    break;
  }
  }
}
