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
    "INPUT may be '-' for standard input.\n"
    "\n"
    "options:\n"
    "  -o, --output FILE          the ONNX file to write (required); written to a\n"
    "                             temporary name and renamed when complete\n"
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
    "  -q, --quiet                no progress output\n"
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

int main(int argc, char **argv) {
  h2o_options opts;
  h2o_options_init(&opts);
  opts.progress = 1;
  const char *in_path = NULL, *out_path = NULL;
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
    } else if (!strcmp(a, "--external-data")) {
      NEED_VALUE();
      opts.external_data = next;
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
  h2o_result res;
  rc = h2o_convert(in.text, in.len, &opts, NULL, 0, out_path, &res);
  if (res.message) print_messages(res.message);
  h2o_result_free(&res);
  release_input(&in);
out:
  free(dims);
  free(in_names);
  free(out_names);
  return rc;
}
