/* hlo2onnx.h - the public C API of the hlo2onnx core.
 *
 * One call converts the MLIR text of a StableHLO module (as JAX prints it)
 * into an ONNX model, written to a file or returned in memory.  Weights that
 * the caller holds in memory (model parameters passed to the lowered function
 * as arguments) are given as borrowed buffers: they are streamed into the
 * output and never copied into the text or into an intermediate model.
 *
 * Everything the library allocates for a conversion lives in one arena that
 * is freed before h2o_convert returns; only h2o_result.message and
 * h2o_result.bytes are handed to the caller (free them with h2o_result_free).
 */
#ifndef HLO2ONNX_H
#define HLO2ONNX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define H2O_VERSION "0.1.0"

/* Status codes; the CLI uses them as exit codes. */
enum {
  H2O_OK = 0,
  H2O_EUSAGE = 1,       /* bad options */
  H2O_EINPUT = 2,       /* malformed input text */
  H2O_EUNSUPPORTED = 3, /* valid input we cannot express in ONNX (yet) */
  H2O_EIO = 4,          /* reading or writing a file failed */
  H2O_EINTERNAL = 5,    /* a broken invariant inside hlo2onnx: a bug */
  H2O_ENOMEM = 6
};

/* A weight buffer bound to an argument of the entry function. */
typedef struct h2o_param {
  int arg_index;     /* index among the entry function's arguments */
  const void *data;  /* little-endian, row-major, as the argument's type says */
  size_t nbytes;     /* must equal the byte size of the argument's type */
  const char *name;  /* initializer name, e.g. "layers.0.kernel"; may be NULL */
} h2o_param;

/* A symbolic name for a dynamic ('?') dimension of an input or output. */
typedef struct h2o_dim_name {
  int index;        /* entry-function argument index, or result index */
  int dim;          /* axis */
  const char *name; /* ONNX dim_param, e.g. "B" */
} h2o_dim_name;

/* One entry of the model's metadata_props (ModelProto). */
typedef struct h2o_metadata {
  const char *key, *value;
} h2o_metadata;

typedef struct h2o_options {
  int opset;                    /* ai.onnx opset; 0 = default (H2O_DEFAULT_OPSET) */
  int shape_info;               /* write value_info for intermediate tensors */
  int optimize;                 /* run the fusion passes (default on: 1) */
  size_t external_threshold;    /* tensors of at least this many bytes go to the
                                   external data file; 0 = never, unless the model
                                   would pass 2 GB */
  const char *external_data;    /* external data file name (relative to the model);
                                   NULL = "<model file name>.data" */
  const char *source_name;      /* file name used in messages; NULL = "<input>" */
  const char *graph_name;       /* NULL = the module's name */
  const char *const *input_names;  /* names of the graph inputs (entry arguments
                                      not bound to params), in order; may be NULL */
  int n_input_names;
  const char *const *output_names;
  int n_output_names;
  const h2o_dim_name *input_dims;  /* index = entry argument index */
  int n_input_dims;
  const h2o_dim_name *output_dims; /* index = result index */
  int n_output_dims;
  int progress;                 /* print progress on stderr while writing tensors
                                   (when stderr is a terminal and the tensors
                                   pass 64 MB), or call progress_fn */
  /* With progress on: called instead of printing, whatever stderr is and
   * whatever the size, with the tensor bytes written so far and their total,
   * at most every 0.1 s and once at the end (done == total).  Lets a host
   * (Python, a notebook, a log) show progress its own way. */
  void (*progress_fn)(void *user, uint64_t done, uint64_t total);
  void *progress_user;
  const char *dump_after;       /* debug: print the graph after this stage
                                   ("parse", "lower", or a pass name) to stderr */
  int local_functions;          /* 0 = inline every call (default); N >= 1 = a
                                   function with at least N call sites becomes
                                   an ONNX model-local function (FunctionProto)
                                   that each call site invokes */
  const char *doc_string;       /* the model's doc_string (what was converted);
                                   NULL = none */
  long long model_version;      /* the model's model_version; 0 = not written */
  const h2o_metadata *metadata; /* the model's metadata_props, in this order */
  int n_metadata;
} h2o_options;

#define H2O_DEFAULT_OPSET 20

typedef struct h2o_result {
  int status;       /* H2O_OK or one of the error codes */
  char *message;    /* all diagnostics, "file:line:col: error: ..." lines; may be NULL */
  void *bytes;      /* the model, when converting to memory */
  size_t nbytes;
  int n_errors;
  int n_nodes;      /* on success: nodes of the main graph written */
  int opset;        /* on success: the ai.onnx opset of the model */
} h2o_result;

void h2o_options_init(h2o_options *opts);

/* Converts `text` (length `len`, need not be NUL-terminated).  When out_path
 * is non-NULL the model is written there (atomically: to a temporary name,
 * renamed into place when complete); otherwise it is returned in res->bytes.
 * Returns res->status. */
int h2o_convert(const char *text, size_t len, const h2o_options *opts,
                const h2o_param *params, int n_params, const char *out_path,
                h2o_result *res);

void h2o_result_free(h2o_result *res);

#ifdef __cplusplus
}
#endif
#endif
