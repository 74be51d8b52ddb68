/* test_elem.c - base/elem.c: element loads and stores, and the rounding of
 * doubles to f16 and bf16.
 *
 * Every one of the 65536 bit patterns of f16 and of bf16 is decoded and
 * compared with a decoder written another way (the value built from its
 * fields by exact multiplications), and must encode back to itself.  The
 * rounding of doubles is checked against a reference that knows nothing of
 * bit layouts: the sorted table of every finite value of the format, a
 * binary search for the two neighbours of the double, and the exact
 * midpoint between them (ties to the neighbour with an even last bit),
 * at every neighbour pair, at their midpoints and just either side of
 * them, at random doubles, through the subnormals, at the overflow
 * threshold and for inf and NaN.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"

#include "test.h"

/* A binary float format described by its field widths, for the reference. */
typedef struct Format {
  const char *name;
  int ebits, mbits;
  uint16_t (*encode)(double);
  double (*decode)(uint16_t);
} Format;

/* The value of bit pattern h, built from its fields: no ldexp, no bit
 * casts, only multiplications by 2 and 1/2 (exact). */
static double reference_decode(const Format *f, uint16_t h) {
  int bias = (1 << (f->ebits - 1)) - 1;
  unsigned e = (unsigned)(h >> f->mbits) & ((1u << f->ebits) - 1);
  unsigned m = h & ((1u << f->mbits) - 1);
  bool neg = (h >> (f->ebits + f->mbits)) & 1;
  double v;
  if (e == (1u << f->ebits) - 1) {
    v = m ? NAN : INFINITY;
  } else {
    double frac = m; /* significand as an integer: value = sig * 2^(exp - mbits) */
    int exp = e == 0 ? 1 - bias : (int)e - bias;
    if (e != 0) frac += (double)(1u << f->mbits);
    for (int i = 0; i < f->mbits; i++) frac *= 0.5;
    for (; exp > 0; exp--) frac *= 2;
    for (; exp < 0; exp++) frac *= 0.5;
    v = frac;
  }
  return neg ? -v : v;
}

/* The non-negative finite values of the format, ascending, with their bits. */
typedef struct Table {
  int n;
  double value[1 << 15];
  uint16_t bits[1 << 15];
  double overflow; /* doubles >= this round to inf: max + half an ulp */
} Table;

static void make_table(const Format *f, Table *t) {
  t->n = 0;
  for (unsigned h = 0; h < (1u << (f->ebits + f->mbits)); h++) {
    double v = reference_decode(f, (uint16_t)h);
    if (isfinite(v)) {
      t->value[t->n] = v;
      t->bits[t->n++] = (uint16_t)h;
    }
  }
  for (int i = 1; i < t->n; i++) CHECK(t->value[i] > t->value[i - 1]);
  double max = t->value[t->n - 1], below = t->value[t->n - 2];
  t->overflow = max + (max - below) / 2;
}

/* v (finite or not) rounded to the format by search: nearest value, ties
 * to the even bit pattern, inf from the overflow threshold on. */
static uint16_t reference_encode(const Format *f, const Table *t, double v) {
  uint16_t sign = (uint16_t)(signbit(v) ? 1u << (f->ebits + f->mbits) : 0);
  uint16_t inf = (uint16_t)(((1u << f->ebits) - 1) << f->mbits);
  double a = fabs(v);
  if (isnan(v)) return (uint16_t)(sign | inf | 1u << (f->mbits - 1));
  if (a >= t->overflow) return sign | inf;
  int lo = 0, hi = t->n - 1; /* value[lo] <= a < value[hi] */
  if (a >= t->value[hi]) return sign | t->bits[hi];
  while (hi - lo > 1) {
    int mid = (lo + hi) / 2;
    if (t->value[mid] <= a) lo = mid;
    else hi = mid;
  }
  double midpoint = (t->value[lo] + t->value[hi]) / 2; /* exact: few significand bits */
  int pick = a < midpoint ? lo : a > midpoint ? hi : (t->bits[lo] & 1) ? hi : lo;
  return sign | t->bits[pick];
}

static uint64_t rng = 0x9E3779B97F4A7C15u;
static uint64_t next_random(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void check_rounds(const Format *f, const Table *t, double v) {
  uint16_t got = f->encode(v), want = reference_encode(f, t, v);
  if (got != want) {
    fail("%s: %.17g encodes to 0x%04x, want 0x%04x", f->name, v, got, want);
  }
}

static void test_format(const Format *f) {
  static Table t;
  make_table(f, &t);
  /* every bit pattern: decode, and encode back */
  for (unsigned h = 0; h < 65536; h++) {
    double want = reference_decode(f, (uint16_t)h), got = f->decode((uint16_t)h);
    if (isnan(want)) {
      CHECK(isnan(got));
      uint16_t back = f->encode(got);
      CHECK(isnan(f->decode(back)));
      CHECK((back >> 15) == (h >> 15)); /* the sign of a NaN is kept */
    } else {
      CHECK(got == want && signbit(got) == signbit(want));
      if (f->encode(got) != h) {
        fail("%s: 0x%04x does not round-trip (0x%04x)", f->name, h, f->encode(got));
      }
    }
  }
  /* neighbours, their midpoints and just beside them, both signs */
  for (int i = 0; i + 1 < t.n; i++) {
    double a = t.value[i], b = t.value[i + 1], mid = (a + b) / 2;
    double cases[] = {a, mid, nextafter(mid, 0), nextafter(mid, INFINITY),
                      mid + (b - a) / 1024, a + (b - a) * 0.25};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
      check_rounds(f, &t, cases[k]);
      check_rounds(f, &t, -cases[k]);
    }
  }
  /* random doubles across the whole range of the format and beyond */
  for (int i = 0; i < 200000; i++) {
    uint64_t r = next_random();
    double m = 1 + (double)(r >> 12) * 0x1p-52; /* [1, 2) with 52 random bits */
    int lo_exp = -(1 << (f->ebits - 1)) - f->mbits - 3, span = (1 << f->ebits) + f->mbits + 6;
    double v = ldexp(m, lo_exp + (int)(next_random() % (uint64_t)span));
    check_rounds(f, &t, (r & 1) ? -v : v);
  }
  /* the edges */
  double specials[] = {0.0, -0.0, INFINITY, -INFINITY, NAN, -NAN, t.overflow,
                       nextafter(t.overflow, 0), t.overflow * 2, 1e300, -1e300,
                       t.value[1] / 2, nextafter(t.value[1] / 2, 1), t.value[1] / 4,
                       0x1p-1074, -0x1p-1074, 0x1p-1022};
  for (size_t k = 0; k < sizeof specials / sizeof specials[0]; k++) {
    double v = specials[k];
    uint16_t got = f->encode(v), want = reference_encode(f, &t, v);
    if (isnan(v)) {
      CHECK(isnan(f->decode(got)));
      CHECK((got >> 15) == (want >> 15));
    } else {
      CHECK(got == want);
    }
  }
}

/* The double-rounding case the encoder once had (double -> float -> f16):
 * a double just above an f16 midpoint, close enough that the float rounding
 * lands on the midpoint itself, must still round up. */
static void test_one_rounding(void) {
  double a = 1.0, b = 1.0 + 0x1p-10, mid = (a + b) / 2; /* 1 + 2^-11 */
  double v = mid + 0x1p-40;                              /* float(v) == mid */
  CHECK((double)(float)v == mid);
  CHECK(f16_from_double(v) == 0x3c01); /* b, not the even a (0x3c00) */
  CHECK(f16_from_double(mid) == 0x3c00);
  double bm = 1.0 + 0x1p-8; /* bf16 midpoint of 1 and 1 + 2^-7 */
  CHECK(bf16_from_double(bm + 0x1p-40) == 0x3f81);
  CHECK(bf16_from_double(bm) == 0x3f80);
}

static void test_elements(void) {
  uint8_t buf[64];
  static const ElemType types[] = {ET_F32, ET_F64, ET_F16, ET_BF16, ET_I8, ET_U8, ET_I16,
                                   ET_U16, ET_I32, ET_U32, ET_I64, ET_U64};
  for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
    ElemType et = types[k];
    double vals[] = {0, 1, 2, 7, 100};
    for (int i = 0; i < 5; i++) elem_store(buf, et, i, vals[i]);
    for (int i = 0; i < 5; i++) CHECK(elem_load(buf, et, i) == vals[i]);
    for (int i = 0; i < 5; i++) CHECK(elem_load_int(buf, et, i) == (int64_t)vals[i] || et_is_float(et));
    if (et_is_signed_int(et) || et_is_float(et)) {
      elem_store(buf, et, 3, -5);
      CHECK(elem_load(buf, et, 3) == -5);
    }
  }
  elem_store(buf, ET_F32, 0, 0.1);
  float f;
  memcpy(&f, buf, 4);
  CHECK(f == 0.1f);
  elem_store(buf, ET_I8, 0, -1);
  CHECK(buf[0] == 0xff && elem_load(buf, ET_I8, 0) == -1 && elem_load(buf, ET_U8, 0) == 255);
  elem_store(buf, ET_U16, 0, 65535);
  CHECK(elem_load_int(buf, ET_U16, 0) == 65535 && elem_load_int(buf, ET_I16, 0) == -1);
  elem_store(buf, ET_BOOL, 0, 0.5);
  CHECK(buf[0] == 1 && elem_load(buf, ET_BOOL, 0) == 1);
  elem_store(buf, ET_F16, 1, 65504);
  CHECK(buf[2] == 0xff && buf[3] == 0x7b);
  elem_store(buf, ET_BF16, 2, -2);
  CHECK(buf[4] == 0x00 && buf[5] == 0xc0);
  uint64_t big = UINT64_MAX;
  memcpy(buf, &big, 8);
  CHECK(elem_load_int(buf, ET_U64, 0) == -1); /* its bit pattern */
  CHECK(elem_load(buf, ET_U64, 0) == 0x1p64);
  /* the f8 kinds: largest finite values, 1 and what lies beyond the range */
  uint32_t bits;
  CHECK(elem_narrow_float_bits(ET_F8E4M3FN, 448, &bits) && bits == 0x7e);
  CHECK(elem_narrow_float_bits(ET_F8E4M3FN, 1, &bits) && bits == 0x38);
  CHECK(elem_narrow_float_bits(ET_F8E4M3FN, 1e6, &bits) && bits == 0x7f); /* NaN: no inf */
  CHECK(elem_narrow_float_bits(ET_F8E5M2, 57344, &bits) && bits == 0x7b);
  CHECK(elem_narrow_float_bits(ET_F8E5M2, 1e6, &bits) && bits == 0x7c);
  CHECK(elem_narrow_float_bits(ET_F8E4M3FNUZ, -0.0, &bits) && bits == 0);
  CHECK(!elem_narrow_float_bits(ET_F32, 1, &bits));
  elem_store(buf, ET_F8E5M2, 0, 2);
  CHECK(buf[0] == 0x40);
}

int main(void) {
  max_failures = 20; /* one rounding bug fails thousands of values */
  Format f16 = {"f16", 5, 10, f16_from_double, f16_to_double};
  Format bf16 = {"bf16", 8, 7, bf16_from_double, bf16_to_double};
  test_format(&f16);
  test_format(&bf16);
  test_one_rounding();
  test_elements();
  return test_summary("test_elem");
}
