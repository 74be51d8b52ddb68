/* write/write.h - protobuf encoding (pb.c) and the ONNX writer
 * (onnx_write.c).  Only write/, pipeline.c and the writer's test include it.
 */
#ifndef H2O_WRITE_WRITE_H
#define H2O_WRITE_WRITE_H

#include "onnx/onnx.h"

/* ===================================================================
 * write/ - protobuf encoding (pb.c) and the ONNX writer (onnx_write.c).
 * Message sizes are computed first so tensor bytes stream straight from
 * their source into the output; big tensors go to an external data file.
 * =================================================================== */
/* Both return 0, or -1 after an error.  ow_write_file writes to temporary
 * names and renames them into place when complete (a device or pipe is
 * written directly); tensors go to an external data file as c->opts says,
 * or when the model would pass 2 GB.  ow_write_memory hands back a buffer
 * from h2o_malloc that the caller frees, and never uses external data. */
int ow_write_file(Ctx *c, const OModel *m, const char *path);
int ow_write_memory(Ctx *c, const OModel *m, void **out, size_t *out_len);
/* The lowest ONNX IR version that an ai.onnx opset needs (onnx.helper's
 * VERSION_TABLE); the version of the ai.onnx.ml opset of the same release. */
int ow_ir_version(int opset);
int ow_ml_opset(int opset);

/* pb.c - protobuf wire format.  A PbOut either only counts the bytes it is
 * given (the size pass), or stores them: into a caller's buffer of the
 * exact size, or through a large buffer into a file descriptor.  Writes
 * never fail one by one: the first failure is kept in .err (an errno value,
 * or a PB_E* code) and later writes are only counted. */
enum { PB_VARINT = 0, PB_I64 = 1, PB_LEN = 2, PB_I32 = 5 }; /* wire types */
enum { PB_EOVERFLOW = -1, /* more bytes than the memory destination holds */
       PB_ESIZE = -2 };   /* a message wrote other than its size pass said */

typedef struct PbOut {
  uint64_t n;         /* bytes counted or stored so far */
  bool counting;      /* the size pass: nothing is stored */
  int fd;             /* >= 0: flush .buf there; < 0: .buf is the destination */
  uint8_t *buf;
  size_t len, cap;
  int err;            /* 0, an errno value, or PB_E* */
  void *user;         /* for message functions; inherited by size passes */
} PbOut;

typedef void (*PbMsgFn)(PbOut *o, const void *msg);

void pb_init_count(PbOut *o, void *user);
void pb_init_mem(PbOut *o, void *dst, size_t cap, void *user);
/* Allocates a buffer of bufsize bytes; returns -1 when that fails. */
int pb_init_fd(PbOut *o, int fd, size_t bufsize, void *user);
int pb_flush(PbOut *o);   /* returns .err (0 = fine) */
void pb_release(PbOut *o); /* frees the buffer of pb_init_fd */
size_t pb_varint_size(uint64_t v);
void pb_raw(PbOut *o, const void *p, size_t n);
void pb_hex(PbOut *o, const char *hex, size_t nbytes); /* decodes 2*nbytes digits */
void pb_zeros(PbOut *o, size_t n);
void pb_varint(PbOut *o, uint64_t v);
void pb_tag(PbOut *o, uint32_t field, int wire);
void pb_field_u64(PbOut *o, uint32_t field, uint64_t v);
void pb_field_i64(PbOut *o, uint32_t field, int64_t v); /* two's complement */
void pb_field_f32(PbOut *o, uint32_t field, float v);
void pb_field_bytes(PbOut *o, uint32_t field, const void *p, size_t n);
void pb_field_str(PbOut *o, uint32_t field, const char *s); /* NULL: nothing */
void pb_field_len(PbOut *o, uint32_t field, uint64_t len);  /* contents follow */
void pb_field_packed_i64(PbOut *o, uint32_t field, const int64_t *v, size_t n);
void pb_field_packed_f32(PbOut *o, uint32_t field, const float *v, size_t n);
/* Size of a length-delimited field whose contents take len bytes. */
uint64_t pb_field_len_size(uint32_t field, uint64_t len);
/* An embedded message: a size pass of fn, then tag, length and fn itself. */
void pb_field_msg(PbOut *o, uint32_t field, PbMsgFn fn, const void *msg);
/* The size of fn(msg) on its own. */
uint64_t pb_msg_size(PbMsgFn fn, const void *msg, void *user);

#endif
