/* main.c - the hlo2onnx command: StableHLO MLIR text in, ONNX model out,
 * with no Python involved.  Exit codes are the H2O_* status codes. */
#include "hlo2onnx.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The Python line that made an op, when a message names it ("  from
 * Python: model.py:12", base/diag.c) and the file is readable here: shown
 * under it, as compilers show the source line. */
static void print_python_line(const char *file, long line) {
  FILE *f = fopen(file, "r");
  if (!f) return;
  char buf[512];
  long at = 1;
  bool whole = true; /* buf starts a line */
  while (fgets(buf, sizeof buf, f)) {
    if (whole && at == line) {
      const char *s = buf;
      while (*s == ' ' || *s == '\t') s++;
      size_t n = strcspn(s, "\r\n");
      if (n) fprintf(stderr, "    %.*s\n", (int)n, s);
      break;
    }
    whole = strchr(buf, '\n') != NULL;
    if (whole) at++;
  }
  fclose(f);
}

static void print_messages(const char *messages) {
  static const char from[] = "  from Python: ";
  for (const char *p = messages; *p;) {
    const char *eol = strchr(p, '\n');
    size_t n = eol ? (size_t)(eol - p) : strlen(p);
    fwrite(p, 1, n, stderr);
    fputc('\n', stderr);
    if (n > sizeof from - 1 && strncmp(p, from, sizeof from - 1) == 0) {
      /* "<file>:<line>": the file name may hold ':' itself */
      const char *colon = p + n;
      while (colon > p && colon[-1] != ':') colon--;
      char *end = NULL;
      long line = colon > p + sizeof from - 1 ? strtol(colon, &end, 10) : 0;
      size_t flen = (size_t)(colon - 1 - (p + sizeof from - 1));
      if (line > 0 && end == p + n && flen < 4096) {
        char file[4096];
        memcpy(file, p + sizeof from - 1, flen);
        file[flen] = 0;
        print_python_line(file, line);
      }
    }
    p += n + (eol != NULL);
  }
}

static const char usage[] =
    "usage: hlo2onnx INPUT.mlir -o OUTPUT.onnx [options]\n"
    "\n"
    "Converts the MLIR text of a StableHLO module, as JAX prints it with\n"
    "jax.jit(f).lower(*args).as_text() or\n"
    "jax.export.export(jax.jit(f))(*args).mlir_module(), into an ONNX model.\n"
    "INPUT may be '-' for standard input.  A serialized jax.export.Exported\n"
    "(Exported.serialize()) is converted by 'python -m hlo2onnx', which takes\n"
    "the same options.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE          the ONNX file to write (required); written to a\n"
    "                             temporary name and renamed when complete; never\n"
    "                             the input file; '-' for standard output (not a\n"
    "                             terminal; the model then has no external data)\n"
    "  --opset N                  ai.onnx opset to target, 17..23 (default 20; 0 = default)\n"
    "  --shape-info               write value_info (shapes) for intermediate tensors\n"
    "  --no-optimize              skip the fusion passes (Gemm, LayerNormalization,\n"
    "                             Gelu, Softmax, ...); the graph stays op-for-op\n"
    "  --local-functions[=N]      a function called from N or more places (default\n"
    "                             2) becomes an ONNX local function, lowered once,\n"
    "                             that each call site invokes; 0 inlines every call\n"
    "                             (the default without the option)\n"
    "  --external-threshold BYTES tensors of at least BYTES go to the external data\n"
    "                             file (default 1048576; 0 = only when the model\n"
    "                             would pass the 2 GB protobuf limit)\n"
    "  --external-data NAME       name of the external data file, relative to the\n"
    "                             model (default OUTPUT.data)\n"
    "  --dim ARG:AXIS=NAME        name the dynamic dimension AXIS of entry argument\n"
    "                             ARG (e.g. --dim 0:0=B); repeatable\n"
    "  --input-name NAME          name the next graph input; repeatable\n"
    "  --output-name NAME         name the next graph output; repeatable\n"
    "  --dump-after STAGE         print the graph after STAGE (parse, lower, or a\n"
    "                             pass name; an unknown name lists them) to stderr\n"
    "  -q, --quiet                no progress output and no summary line\n"
    "  -h, --help                 this help\n"
    "  --version                  print the version\n"
    "\n"
    "exit codes: 0 ok, 1 usage error, 2 malformed input, 3 unsupported op or\n"
    "type, 4 I/O error, 5 internal error, 6 out of memory\n";

/* The input text: mapped when it is a regular file (a 1 GB module of hex
 * constants is then never copied), read into memory otherwise. */
typedef struct Input {
  char *text;
  size_t len;
  int mapped;
} Input;

static int read_input(const char *path, Input *in) {
  memset(in, 0, sizeof *in);
  int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY);
  if (fd < 0) {
    fprintf(stderr, "hlo2onnx: cannot open %s: %s\n", path, strerror(errno));
    return H2O_EIO;
  }
  struct stat st;
  if (fd != 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p != MAP_FAILED) {
      in->text = p;
      in->len = (size_t)st.st_size;
      in->mapped = 1;
      close(fd);
      return 0;
    }
  }
  size_t cap = 1 << 16;
  in->text = malloc(cap);
  for (;;) {
    if (!in->text) {
      fprintf(stderr, "hlo2onnx: out of memory reading %s\n", path);
      if (fd) close(fd);
      return H2O_ENOMEM;
    }
    ssize_t n = read(fd, in->text + in->len, cap - in->len);
    if (n < 0) {
      fprintf(stderr, "hlo2onnx: cannot read %s: %s\n", path, strerror(errno));
      if (fd) close(fd);
      return H2O_EIO;
    }
    if (n == 0) break;
    in->len += (size_t)n;
    if (in->len == cap) {
      cap *= 2;
      char *grown = realloc(in->text, cap);
      if (!grown) free(in->text);
      in->text = grown;
    }
  }
  if (fd) close(fd);
  return 0;
}

/* What the input is, from its first 64 KiB: MLIR text has no control bytes
 * but tab, newline and carriage return.  Anything else is refused before
 * the parser sees it, so that no line of binary reaches the terminal, with
 * what to do for the binaries users are likely to hand us: a serialized
 * jax.export.Exported (a flatbuffer that embeds the module's MLIR bytecode,
 * which starts with "ML\xefR") or that bytecode on its own.  The same test
 * as hlo2onnx.exported.sniff. */
static const char mlir_bytecode_magic[4] = {'M', 'L', (char)0xEF, 'R'};

static int has_bytecode_magic(const Input *in) {
  for (size_t i = 0; i + sizeof mlir_bytecode_magic <= in->len; i++)
    if (memcmp(in->text + i, mlir_bytecode_magic, sizeof mlir_bytecode_magic) == 0) return 1;
  return 0;
}

static int check_text(const char *path, const Input *in) {
  size_t head = in->len < 65536 ? in->len : 65536, at = 0;
  if (in->len >= sizeof mlir_bytecode_magic &&
      memcmp(in->text, mlir_bytecode_magic, sizeof mlir_bytecode_magic) == 0) {
    fprintf(stderr,
            "hlo2onnx: %s is MLIR bytecode, not MLIR text; hlo2onnx reads the text\n"
            "(jax.jit(f).lower(...).as_text(), or Exported.mlir_module()); a file saved\n"
            "with Exported.serialize() converts with: python -m hlo2onnx FILE -o OUT.onnx\n",
            path);
    return H2O_EINPUT;
  }
  for (; at < head; at++) {
    unsigned char ch = (unsigned char)in->text[at];
    if ((ch < 32 && ch != '\t' && ch != '\n' && ch != '\r') || ch == 127) break;
  }
  if (at == head) return 0;
  if (has_bytecode_magic(in))
    fprintf(stderr,
            "hlo2onnx: %s is a serialized jax.export.Exported (Exported.serialize()),\n"
            "not MLIR text.  Convert it with the Python package, which reads it with\n"
            "jax.export.deserialize and takes the same options:\n"
            "  python -m hlo2onnx %s -o OUT.onnx\n",
            path, path);
  else
    fprintf(stderr,
            "hlo2onnx: %s is not text (byte 0x%02X at offset %zu); hlo2onnx reads the\n"
            "MLIR text of a StableHLO module (jax.jit(f).lower(...).as_text())\n",
            path, (unsigned char)in->text[at], at);
  return H2O_EINPUT;
}

/* The file an output would be written to must not be the input (also
 * through a symbolic or hard link): the model is renamed over it only when
 * complete, but then the input is gone.  Compared by device and inode. */
static int same_file(const struct stat *input, const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && st.st_dev == input->st_dev && st.st_ino == input->st_ino;
}

static int check_not_input(const char *in_path, const char *out_path, const char *external) {
  struct stat in_st;
  int have = strcmp(in_path, "-") == 0 ? fstat(0, &in_st) == 0 && S_ISREG(in_st.st_mode)
                                        : stat(in_path, &in_st) == 0;
  if (!have) return 0; /* read_input reports a missing input */
  const char *shown = strcmp(in_path, "-") == 0 ? "standard input" : in_path;
  if (same_file(&in_st, out_path)) {
    fprintf(stderr,
            "hlo2onnx: the output %s is the input (%s): refusing to overwrite\n"
            "the input; choose another -o\n",
            out_path, shown);
    return H2O_EUSAGE;
  }
  /* The external data file: NAME (default OUTPUT.data) beside the model. */
  const char *slash = strrchr(out_path, '/');
  size_t dir = slash ? (size_t)(slash - out_path + 1) : 0;
  size_t n = external ? dir + strlen(external) : strlen(out_path) + 5;
  char *data_path = malloc(n + 1);
  if (!data_path) return H2O_ENOMEM;
  if (external) {
    memcpy(data_path, out_path, dir);
    strcpy(data_path + dir, external);
  } else {
    strcpy(data_path, out_path);
    strcat(data_path, ".data");
  }
  int clash = same_file(&in_st, data_path);
  if (clash)
    fprintf(stderr,
            "hlo2onnx: the external data file %s is the input (%s): refusing to\n"
            "overwrite the input; choose another --external-data or -o\n",
            data_path, shown);
  free(data_path);
  return clash ? H2O_EUSAGE : 0;
}

/* -o -: the whole model, converted in memory, to standard output. */
static int write_stdout(const void *bytes, size_t n) {
  const char *p = bytes;
  while (n > 0) {
    ssize_t w = write(1, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      fprintf(stderr, "hlo2onnx: cannot write the model to standard output: %s\n",
              strerror(errno));
      return H2O_EIO;
    }
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

static void release_input(Input *in) {
  if (in->mapped) munmap(in->text, in->len);
  else free(in->text);
}

/* ARG:AXIS=NAME.  -1: not of that form; -2: ARG or AXIS does not fit the
 * int of h2o_dim_name (strtol gives LONG_MAX on overflow: caught here too). */
static int parse_dim(const char *spec, h2o_dim_name *out) {
  char *end;
  long arg = strtol(spec, &end, 10);
  if (end == spec || *end != ':') return -1;
  const char *axis_s = end + 1;
  long axis = strtol(axis_s, &end, 10);
  if (end == axis_s || *end != '=' || !end[1] || arg < 0 || axis < 0) return -1;
  if (arg > INT_MAX || axis > INT_MAX) return -2;
  out->index = (int)arg;
  out->dim = (int)axis;
  out->name = end + 1;
  return 0;
}

static int usage_error(const char *fmt, const char *arg) {
  fprintf(stderr, "hlo2onnx: ");
  fprintf(stderr, fmt, arg);
  fprintf(stderr, "\n(see hlo2onnx --help)\n");
  return H2O_EUSAGE;
}

/* The one line a successful conversion prints (unless -q): where, how big,
 * what.  On stdout, the result of the command; stderr has only diagnostics
 * (and progress on a terminal). */
static void print_summary(const char *out_path, const h2o_result *res) {
  struct stat st;
  long long size = stat(out_path, &st) == 0 ? (long long)st.st_size : -1;
  printf("hlo2onnx: wrote %s (%lld bytes, %d node%s, opset %d)\n", out_path, size,
          res->n_nodes, res->n_nodes == 1 ? "" : "s", res->opset);
}

int main(int argc, char **argv) {
  h2o_options opts;
  h2o_options_init(&opts);
  opts.progress = 1;
  const char *in_path = NULL, *out_path = NULL;
  int external_option = 0; /* --external-data or --external-threshold given */
  /* at most argc of each repeatable option */
  h2o_dim_name *dims = calloc((size_t)argc, sizeof *dims);
  const char **in_names = calloc((size_t)argc, sizeof *in_names);
  const char **out_names = calloc((size_t)argc, sizeof *out_names);
  if (!dims || !in_names || !out_names) return H2O_ENOMEM;
  int n_dims = 0, n_in = 0, n_out = 0, rc = 0;

  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *next = i + 1 < argc ? argv[i + 1] : NULL;
#define NEED_VALUE() \
  do { if (!next) { rc = usage_error("%s needs a value", a); goto out; } i++; } while (0)
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
      fputs(usage, stdout);
      goto out;
    } else if (!strcmp(a, "--version")) {
      printf("hlo2onnx %s\n", H2O_VERSION);
      goto out;
    } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
      NEED_VALUE();
      out_path = next;
    } else if (!strcmp(a, "--opset")) {
      NEED_VALUE();
      char *end = NULL;
      long v = strtol(next, &end, 10);
      /* 0 is the default opset, as in h2o_options and to_onnx */
      if (*end || end == next || v < 0 || v > 1000) { rc = usage_error("bad --opset value '%s'", next); goto out; }
      opts.opset = (int)v;
    } else if (!strcmp(a, "--shape-info")) {
      opts.shape_info = 1;
    } else if (!strcmp(a, "--no-optimize")) {
      opts.optimize = 0;
    } else if (!strcmp(a, "--local-functions")) {
      opts.local_functions = 2;
    } else if (!strncmp(a, "--local-functions=", 18)) {
      char *end = NULL;
      long v = strtol(a + 18, &end, 10);
      if (!a[18] || *end || v < 0 || v > 1000000) {
        rc = usage_error("bad --local-functions value '%s': expected a call count >= 0", a + 18);
        goto out;
      }
      opts.local_functions = (int)v;
    } else if (!strcmp(a, "--external-threshold")) {
      NEED_VALUE();
      char *end = NULL;
      unsigned long long v = strtoull(next, &end, 10);
      if (*end || next[0] == '-') { rc = usage_error("bad --external-threshold '%s'", next); goto out; }
      opts.external_threshold = (size_t)v;
      external_option = 1;
    } else if (!strcmp(a, "--external-data")) {
      NEED_VALUE();
      opts.external_data = next;
      external_option = 1;
    } else if (!strcmp(a, "--dim")) {
      NEED_VALUE();
      int bad = parse_dim(next, &dims[n_dims]);
      if (bad == -2) {
        fprintf(stderr, "hlo2onnx: bad --dim '%s': ARG and AXIS must be at most %d\n"
                        "(see hlo2onnx --help)\n", next, INT_MAX);
        rc = H2O_EUSAGE;
        goto out;
      }
      if (bad != 0) {
        rc = usage_error("bad --dim '%s': expected ARG:AXIS=NAME, e.g. 0:0=B", next);
        goto out;
      }
      n_dims++;
    } else if (!strcmp(a, "--input-name")) {
      NEED_VALUE();
      in_names[n_in++] = next;
    } else if (!strcmp(a, "--output-name")) {
      NEED_VALUE();
      out_names[n_out++] = next;
    } else if (!strcmp(a, "--dump-after")) {
      NEED_VALUE();
      opts.dump_after = next;
    } else if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
      opts.progress = 0;
    } else if (a[0] == '-' && a[1]) {
      rc = usage_error("unknown option '%s'", a);
      goto out;
    } else if (!in_path) {
      in_path = a;
    } else {
      rc = usage_error("more than one input file ('%s')", a);
      goto out;
    }
#undef NEED_VALUE
  }
  if (!in_path) { rc = usage_error("%s", "no input file"); goto out; }
  if (!out_path) { rc = usage_error("%s", "no output file: use -o OUTPUT.onnx"); goto out; }
  int to_stdout = strcmp(out_path, "-") == 0;
  if (to_stdout && external_option) {
    rc = usage_error("%s", "-o - writes the whole model to standard output: it cannot have an "
                           "external data file\n(--external-data, --external-threshold); "
                           "write to a file with -o FILE");
    goto out;
  }
  if (to_stdout && isatty(1)) {
    rc = usage_error("%s", "-o -: standard output is a terminal, and an ONNX model is binary; "
                           "redirect it\n(hlo2onnx IN -o - > OUT.onnx) or write to a file "
                           "with -o FILE");
    goto out;
  }
  if (!to_stdout && (rc = check_not_input(in_path, out_path, opts.external_data)) != 0) goto out;

  opts.source_name = strcmp(in_path, "-") == 0 ? "<stdin>" : in_path;
  opts.input_dims = dims;
  opts.n_input_dims = n_dims;
  opts.input_names = in_names;
  opts.n_input_names = n_in;
  opts.output_names = out_names;
  opts.n_output_names = n_out;

  Input in;
  rc = read_input(in_path, &in);
  if (rc) goto out;
  if ((rc = check_text(opts.source_name, &in)) != 0) {
    release_input(&in);
    goto out;
  }
  h2o_result res;
  rc = h2o_convert(in.text, in.len, &opts, NULL, 0, to_stdout ? NULL : out_path, &res);
  if (res.message) print_messages(res.message);
  if (rc == 0 && to_stdout) rc = write_stdout(res.bytes, res.nbytes);
  /* the summary goes to stdout too: not when stdout is the model */
  else if (rc == H2O_OK && opts.progress) print_summary(out_path, &res);
  h2o_result_free(&res);
  release_input(&in);
out:
  free(dims);
  free(in_names);
  free(out_names);
  return rc;
}
