/* pb.c - the protobuf wire format, written by hand.
 *
 * Everything the ONNX writer emits goes through a PbOut.  The same message
 * function runs in two modes: the size pass (o->counting) only adds up
 * lengths, which is what a length-delimited field needs before its
 * contents; the write pass stores the bytes.  That lets a tensor's bytes go
 * from their source (a caller's buffer, or hex digits in the input text)
 * straight into the output: nothing is ever encoded whole in memory.
 *
 * Wire format reminders: a tag is varint(field << 3 | wire type); varints
 * are little-endian base 128; int64 is encoded as its two's complement
 * uint64 (negative numbers take ten bytes); float is fixed32, little-endian;
 * strings, bytes, embedded messages and packed repeated scalars are
 * varint(length) followed by the contents.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "write/write.h"

void pb_init_count(PbOut *o, void *user) {
  memset(o, 0, sizeof *o);
  o->counting = true;
  o->fd = -1;
  o->user = user;
}

void pb_init_mem(PbOut *o, void *dst, size_t cap, void *user) {
  memset(o, 0, sizeof *o);
  o->fd = -1;
  o->buf = dst;
  o->cap = cap;
  o->user = user;
}

int pb_init_fd(PbOut *o, int fd, size_t bufsize, void *user) {
  memset(o, 0, sizeof *o);
  o->fd = fd;
  o->user = user;
  o->cap = bufsize ? bufsize : 1;
  o->buf = h2o_malloc(o->cap);
  return o->buf ? 0 : -1;
}

void pb_release(PbOut *o) {
  if (o->fd >= 0) h2o_free(o->buf);
  o->buf = NULL;
  o->len = o->cap = 0;
}

/* write(2) until everything is out; records the first failure. */
static void write_all(PbOut *o, const uint8_t *p, size_t n) {
  while (n > 0 && !o->err) {
    /* Some kernels refuse single writes above 2 GB; stay well below. */
    size_t chunk = n < ((size_t)1 << 30) ? n : ((size_t)1 << 30);
    ssize_t k = write(o->fd, p, chunk);
    if (k < 0) {
      if (errno == EINTR) continue;
      o->err = errno ? errno : EIO;
    } else if (k == 0) {
      o->err = EIO;
    } else {
      p += k;
      n -= (size_t)k;
    }
  }
}

int pb_flush(PbOut *o) {
  if (o->fd >= 0 && o->len > 0) {
    write_all(o, o->buf, o->len);
    o->len = 0;
  }
  return o->err;
}

/* Room for n more bytes in o->buf, flushing when it writes to a file.
 * Returns false (after setting o->err) when the bytes cannot be stored. */
static bool reserve(PbOut *o, size_t n) {
  if (o->err) return false;
  if (o->cap - o->len >= n) return true;
  if (o->fd < 0) {
    o->err = PB_EOVERFLOW;
    return false;
  }
  pb_flush(o);
  return !o->err && o->cap - o->len >= n;
}

void pb_raw(PbOut *o, const void *p, size_t n) {
  o->n += n;
  if (o->counting || n == 0 || o->err) return;
  const uint8_t *s = p;
  if (o->fd >= 0 && n >= o->cap) {
    /* Big blocks (tensor data) skip the buffer. */
    pb_flush(o);
    write_all(o, s, n);
    return;
  }
  if (o->fd >= 0) {
    while (n > 0 && !o->err) {
      if (o->len == o->cap) pb_flush(o);
      size_t k = o->cap - o->len < n ? o->cap - o->len : n;
      memcpy(o->buf + o->len, s, k);
      o->len += k;
      s += k;
      n -= k;
    }
    return;
  }
  if (!reserve(o, n)) return;
  memcpy(o->buf + o->len, s, n);
  o->len += n;
}

void pb_hex(PbOut *o, const char *hex, size_t nbytes) {
  o->n += nbytes;
  if (o->counting || o->err) return;
  if (o->fd < 0) {
    if (!reserve(o, nbytes)) return;
    hex_decode(hex, nbytes, o->buf + o->len);
    o->len += nbytes;
    return;
  }
  /* Decode into the free part of the buffer, one buffer-full at a time. */
  while (nbytes > 0 && !o->err) {
    if (o->len == o->cap) pb_flush(o);
    size_t k = o->cap - o->len < nbytes ? o->cap - o->len : nbytes;
    hex_decode(hex, k, o->buf + o->len);
    o->len += k;
    hex += 2 * k;
    nbytes -= k;
  }
}

void pb_zeros(PbOut *o, size_t n) {
  static const uint8_t zeros[256];
  while (n > 0) {
    size_t k = n < sizeof zeros ? n : sizeof zeros;
    pb_raw(o, zeros, k);
    n -= k;
  }
}

size_t pb_varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    n++;
  }
  return n;
}

void pb_varint(PbOut *o, uint64_t v) {
  uint8_t b[10];
  size_t n = 0;
  while (v >= 0x80) {
    b[n++] = (uint8_t)(v | 0x80);
    v >>= 7;
  }
  b[n++] = (uint8_t)v;
  pb_raw(o, b, n);
}

void pb_tag(PbOut *o, uint32_t field, int wire) {
  pb_varint(o, (uint64_t)field << 3 | (uint64_t)wire);
}

void pb_field_u64(PbOut *o, uint32_t field, uint64_t v) {
  pb_tag(o, field, PB_VARINT);
  pb_varint(o, v);
}

void pb_field_i64(PbOut *o, uint32_t field, int64_t v) {
  pb_field_u64(o, field, (uint64_t)v);
}

static void put_f32(PbOut *o, float v) {
  uint32_t u;
  memcpy(&u, &v, sizeof u);
  uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16),
                  (uint8_t)(u >> 24)};
  pb_raw(o, b, 4);
}

void pb_field_f32(PbOut *o, uint32_t field, float v) {
  pb_tag(o, field, PB_I32);
  put_f32(o, v);
}

void pb_field_len(PbOut *o, uint32_t field, uint64_t len) {
  pb_tag(o, field, PB_LEN);
  pb_varint(o, len);
}

uint64_t pb_field_len_size(uint32_t field, uint64_t len) {
  return pb_varint_size((uint64_t)field << 3 | PB_LEN) + pb_varint_size(len) +
         len;
}

void pb_field_bytes(PbOut *o, uint32_t field, const void *p, size_t n) {
  pb_field_len(o, field, n);
  pb_raw(o, p, n);
}

void pb_field_str(PbOut *o, uint32_t field, const char *s) {
  if (s) pb_field_bytes(o, field, s, strlen(s));
}

void pb_field_packed_i64(PbOut *o, uint32_t field, const int64_t *v, size_t n) {
  if (n == 0) return;
  uint64_t len = 0;
  for (size_t i = 0; i < n; i++) len += pb_varint_size((uint64_t)v[i]);
  pb_field_len(o, field, len);
  for (size_t i = 0; i < n; i++) pb_varint(o, (uint64_t)v[i]);
}

void pb_field_packed_f32(PbOut *o, uint32_t field, const float *v, size_t n) {
  if (n == 0) return;
  pb_field_len(o, field, (uint64_t)n * 4);
  for (size_t i = 0; i < n; i++) put_f32(o, v[i]);
}

uint64_t pb_msg_size(PbMsgFn fn, const void *msg, void *user) {
  PbOut count;
  pb_init_count(&count, user);
  fn(&count, msg);
  return count.n;
}

void pb_field_msg(PbOut *o, uint32_t field, PbMsgFn fn, const void *msg) {
  uint64_t size = pb_msg_size(fn, msg, o->user);
  pb_field_len(o, field, size);
  if (o->counting) {
    o->n += size;
    return;
  }
  uint64_t start = o->n;
  fn(o, msg);
  /* The size pass and the write pass must agree, or every enclosing
   * length is wrong: a bug in a message function. */
  if (o->n - start != size && !o->err) o->err = PB_ESIZE;
}
