/* test_hex.c - hex decoding (hex_decode in src/base/types.c, pb_hex in
 * src/write/pb.c) against a byte-by-byte reference.
 *
 * The decoder's main loop takes 16 bytes (SSE2) or 8 bytes (64-bit words)
 * per step and the tail byte by byte, so every length from 0 to 300 is
 * decoded from every start offset 0..31 (unaligned loads), with digits of
 * both cases, plus every byte value in both cases.  pb_hex is checked
 * writing to memory and to a file through buffers of odd sizes, so that
 * blocks are split across flushes.  The parser guarantees valid digits, so
 * only valid input is decoded here (invalid digits: test_parse.c and
 * tests/python/test_errors.py).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "write/write.h"

#include "test.h"

static unsigned ref_digit(char ch) {
  if (ch >= '0' && ch <= '9') return (unsigned)(ch - '0');
  if (ch >= 'a' && ch <= 'f') return (unsigned)(ch - 'a' + 10);
  return (unsigned)(ch - 'A' + 10);
}

static void ref_decode(const char *hex, size_t n, uint8_t *out) {
  for (size_t i = 0; i < n; i++) out[i] = (uint8_t)(ref_digit(hex[2 * i]) << 4 | ref_digit(hex[2 * i + 1]));
}

enum { MAXN = 300, MAXOFF = 32 };

static void test_all_bytes(void) {
  static const char *digits[2] = {"0123456789abcdef", "0123456789ABCDEF"};
  for (int c = 0; c < 2; c++) {
    char hex[512];
    uint8_t out[256];
    for (int b = 0; b < 256; b++) {
      hex[2 * b] = digits[c][b >> 4];
      hex[2 * b + 1] = digits[c][b & 15];
    }
    hex_decode(hex, 256, out);
    for (int b = 0; b < 256; b++) CHECK(out[b] == b);
  }
}

static void test_lengths_and_offsets(void) {
  static const char pool[] = "0123456789abcdefABCDEF";
  char *hex = malloc(2 * (MAXN + MAXOFF));
  uint8_t *got = malloc(MAXN + MAXOFF + 1), *want = malloc(MAXN + 1);
  if (!hex || !got || !want) exit(2);
  srand(12);
  for (size_t i = 0; i < 2 * (MAXN + MAXOFF); i++) hex[i] = pool[rand() % 22];
  for (size_t off = 0; off < MAXOFF; off++)
    for (size_t n = 0; n <= MAXN; n++) {
      const char *h = hex + off;
      ref_decode(h, n, want);
      memset(got, 0xA5, n + off + 1);
      hex_decode(h, n, got + off % 8); /* unaligned output as well */
      CHECK(memcmp(got + off % 8, want, n) == 0);
      CHECK(got[off % 8 + n] == 0xA5); /* nothing written past the end */
    }
  free(hex);
  free(got);
  free(want);
}

/* pb_hex into memory and into a file through a small buffer. */
static void test_pb_hex(void) {
  enum { N = 1000 };
  static char hex[2 * N];
  static uint8_t want[N], got[N + 8];
  static const char pool[] = "0123456789abcdefABCDEF";
  for (size_t i = 0; i < 2 * N; i++) hex[i] = pool[(i * 7 + i / 5) % 22];
  ref_decode(hex, N, want);

  PbOut o;
  pb_init_mem(&o, got, sizeof got, NULL);
  pb_raw(&o, "x", 1);
  pb_hex(&o, hex, N);
  CHECK(o.err == 0 && o.len == N + 1 && memcmp(got + 1, want, N) == 0);

  const size_t bufsizes[] = {1, 7, 16, 33, 4096};
  for (size_t k = 0; k < sizeof bufsizes / sizeof bufsizes[0]; k++) {
    FILE *f = tmpfile();
    if (!f) exit(2);
    CHECK(pb_init_fd(&o, fileno(f), bufsizes[k], NULL) == 0);
    pb_raw(&o, "xyz", 3); /* the hex block starts mid-buffer */
    pb_hex(&o, hex, 5);
    pb_hex(&o, hex + 10, N - 5);
    CHECK(pb_flush(&o) == 0);
    pb_release(&o);
    CHECK(o.n == N + 3);
    rewind(f);
    memset(got, 0, sizeof got);
    CHECK(fread(got, 1, N + 3, f) == N + 3);
    CHECK(memcmp(got, "xyz", 3) == 0 && memcmp(got + 3, want, N) == 0);
    fclose(f);
  }
}

int main(void) {
  test_all_bytes();
  test_lengths_and_offsets();
  test_pb_hex();
  return test_summary("test_hex");
}
