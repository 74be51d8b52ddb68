/* pipeline.c - the stages of a conversion, in order, in one place:
 *
 *   parse -> lower -> passes (h2o_passes, verifier after each) -> write
 *
 * The graphs of local functions (OModel.functions) go through the same
 * passes and checks as the main graph, each on its own.
 *
 * h2o_convert owns the arena and the diagnostics of one conversion and turns
 * running out of memory (a longjmp from the arena) into H2O_ENOMEM, so no
 * path of a conversion can abort the host process.
 */
#include "lower/lower.h"
#include "passes/passes.h"
#include "write/write.h"

#include <stdlib.h>
#include <string.h>

/* The passes, in the order they run.  Folding first so the fusions see
 * constants; dead code after the fusions so their leftovers disappear
 * (then only the unused function arguments and the naming of dims).  The
 * high-level fusions (fuse_*.c) follow the transpose pass, so that they see
 * NCHW convolutions without their layout Transposes, larger patterns before
 * their parts (LayerNorm's max(0, var) would otherwise become a Relu), and
 * precede gemm, which then turns a batch norm folded into MatMul + Add into
 * one Gemm. */
const Pass h2o_passes[] = {
    /* first, so that folding sees the constants it makes */
    {"empty", pass_empty, false},
    {"fold", pass_fold, false},
    /* shape vectors of static sizes become constants, then dynamic dims
     * are named ("B", "16*B"), so that simplify sees the Expands, Reshapes
     * and Slices that do not change a symbolic shape */
    {"fold_shapes", pass_fold_shapes, true},
    {"name_dims", pass_symbolic_dims, true},
    /* a Shape of a value whose dims are named reads the graph inputs:
     * the value may then have a single reader, as fusions want */
    {"shapes_from_inputs", pass_shapes_from_inputs, true},
    {"simplify", pass_simplify, true},
    {"cse", pass_cse, true},
    /* an Expand whose consumers broadcast anyway: what lies between computes
     * on the small tensor (and folds, when that is a constant) */
    {"late_broadcast", pass_late_broadcast, true},
    /* what simplify freed of Expands (rsqrt(var + eps) * scale) */
    {"fold_after_simplify", pass_fold, false},
    {"push_transposes", pass_push_transposes, true},
    {"simplify_after_transposes", pass_simplify, true},
    {"fold_small_broadcasts", pass_fold_late, false},
    {"keepdims", pass_fuse_keepdims, true},
    {"layernorm", pass_fuse_layernorm, true},
    {"softmax", pass_fuse_softmax, true},
    {"gelu", pass_fuse_gelu, true},
    {"activations", pass_fuse_activations, true},
    /* after softmax: masks applied by Add and Mul, then (opset 23) Attention */
    {"attention_masks", pass_attention_masks, true},
    {"attention", pass_fuse_attention, true},
    /* transposes of scores and of merged heads into the MatMul operands */
    {"matmul_layout", pass_matmul_layout, true},
    /* again, through the fused LayerNormalization, Softmax, Gelu, ... nodes */
    {"push_transposes_after_fusions", pass_push_transposes, true},
    /* what the Transposes moved by then opened up (Equinox's MLP), pushed on */
    {"matmul_layout_again", pass_matmul_layout, true},
    {"push_transposes_again", pass_push_transposes, true},
    {"unit_transposes", pass_unit_transposes, true}, /* after the fusions: see transpose.c */
    {"layout_chains", pass_layout_chains, true},
    {"simplify_after_fusions", pass_simplify, true},
    {"fold_after_fusions", pass_fold, true},
    {"batchnorm", pass_fuse_batchnorm, true},
    {"convbias", pass_fuse_conv_bias, true},
    {"pad", pass_fuse_pad, true},
    {"avgpool", pass_fuse_avgpool, true},
    {"gemm", pass_fuse_gemm, true},
    /* after every pass that writes nodes: each gets a type onnxruntime runs;
     * dce then drops the constants it replaced */
    {"kernels", pass_kernels, false},
    {"dce", pass_dce, false},
    {"function_args", pass_dce_function_args, false}, /* after dce saw each function */
    {"symbolic_dims", pass_symbolic_dims, false}, /* for value_info and outputs */
    {NULL, NULL, false},
};

void h2o_options_init(h2o_options *opts) {
  memset(opts, 0, sizeof *opts);
  opts->opset = H2O_DEFAULT_OPSET;
  opts->optimize = 1;
  opts->external_threshold = 1u << 20;
}

void h2o_result_free(h2o_result *res) {
  if (!res) return;
  h2o_free(res->message);
  h2o_free(res->bytes);
  memset(res, 0, sizeof *res);
}

static bool wants_dump(const h2o_options *o, const char *stage) {
  return o->dump_after && strcmp(o->dump_after, stage) == 0;
}

/* A --dump-after that names no stage would print nothing, silently; say
 * which names there are instead (this list is their one place). */
static int check_dump_stage(Ctx *c) {
  const char *want = c->opts->dump_after;
  if (!want || !strcmp(want, "parse") || !strcmp(want, "lower")) return 0;
  for (const Pass *p = h2o_passes; p->name; p++)
    if (!strcmp(want, p->name)) return 0;
  diag_error(c, H2O_EUSAGE, "no stage is called '%s': dump after one of", want);
  diag_note(c, "  parse, lower (the stages before the passes)");
  for (const Pass *p = h2o_passes; p->name; p++)
    diag_note(c, "  %s%s", p->name, p->optimization ? " (not run without optimization)" : "");
  return -1;
}

/* opts->opset after with_defaults(): 0 has become H2O_DEFAULT_OPSET. */
static int check_opset(Ctx *c) {
  int opset = c->opts->opset;
  if (opset < 17 || opset > 23)
    return diag_error(c, H2O_EUSAGE,
                      "opset %d is not supported: choose between 17 and 23, or 0 for the "
                      "default (%d)",
                      opset, H2O_DEFAULT_OPSET);
  return 0;
}

/* The caller's options with their "0 = default" fields resolved, so that
 * every stage reads the value in effect (hlo2onnx.h: opset 0 = default). */
static h2o_options with_defaults(const h2o_options *opts) {
  h2o_options o;
  if (opts) o = *opts;
  else h2o_options_init(&o);
  if (o.opset == 0) o.opset = H2O_DEFAULT_OPSET;
  return o;
}

static OFunction *function_at(const OModel *m, int i) { return m->functions.items[i]; }

/* The main graph, then each function's graph: "function NAME" + its graph. */
static void dump_model(const OModel *m) {
  og_dump(stderr, m->graph);
  for (int i = 0; i < m->functions.len; i++) {
    fprintf(stderr, "function %s.%s:\n", OG_FN_DOMAIN, function_at(m, i)->name);
    og_dump(stderr, function_at(m, i)->graph);
  }
}

/* The lowering counts the node inputs that read a value as it builds nodes,
 * but not the graph output slots it fills at the end; counting once here
 * sets every use count as og_recount_uses defines it, and from here on every
 * pass keeps them right (the verifier checks it after each). */
static void count_uses(OModel *m) {
  og_recount_uses(m->graph);
  for (int i = 0; i < m->functions.len; i++) og_recount_uses(function_at(m, i)->graph);
}

static int verify_model(Ctx *c, const OModel *m) {
  if (og_verify(c, m->graph) != 0) return -1;
  for (int i = 0; i < m->functions.len; i++)
    if (og_verify(c, function_at(m, i)->graph) != 0) return -1;
  return 0;
}

/* A pass sees one graph at a time: a function's graph as the graph of a
 * model of its own (no functions, same opset). */
static int run_pass(Ctx *c, const Pass *p, OModel *m) {
  if (p->run(c, m) != 0) return -1;
  for (int i = 0; i < m->functions.len; i++) {
    OModel fm = *m;
    fm.graph = function_at(m, i)->graph;
    fm.functions = (PtrVec){0};
    if (p->run(c, &fm) != 0) return -1;
  }
  return 0;
}

static int run_stages(Ctx *c, const h2o_param *params, int n_params, const char *out_path,
                      h2o_result *res) {
  const h2o_options *o = c->opts;
  if (check_opset(c) != 0 || check_dump_stage(c) != 0) return -1;
  Module *m = parse_module(c);
  if (!m) return -1;
  if (wants_dump(o, "parse")) ir_dump_module(stderr, m);
  OModel *model = lower_module(c, m, params, n_params);
  if (!model) return -1;
  count_uses(model);
  if (wants_dump(o, "lower")) dump_model(model);
  if (verify_model(c, model) != 0) return -1;
  for (const Pass *p = h2o_passes; p->name; p++) {
    if (p->optimization && !o->optimize) continue;
    if (run_pass(c, p, model) != 0) return -1;
    if (verify_model(c, model) != 0) {
      diag_note(c, "  (the graph was broken by the pass '%s')", p->name);
      return -1;
    }
    if (wants_dump(o, p->name)) dump_model(model);
  }
  if (og_unique_names(c, model->graph) != 0) return -1;
  for (int i = 0; i < model->functions.len; i++)
    if (og_unique_names(c, function_at(model, i)->graph) != 0) return -1;
  /* what the CLI's summary line reports */
  res->opset = model->opset > 0 ? model->opset : H2O_DEFAULT_OPSET;
  for (int i = 0; i < model->graph->nodes.len; i++)
    res->n_nodes += !((ONode *)model->graph->nodes.items[i])->dead;
  og_name_nodes(c, model->graph);
  for (int i = 0; i < model->functions.len; i++) og_name_nodes(c, function_at(model, i)->graph);
  model->doc = o->doc_string;
  model->model_version = o->model_version;
  model->metadata = o->metadata;
  model->n_metadata = o->n_metadata;
  if (out_path) return ow_write_file(c, model, out_path);
  return ow_write_memory(c, model, &res->bytes, &res->nbytes);
}

/* Memory ran out before the diagnostics exist: the message, if even that
 * much memory is left, is the one line they would have held. */
static int early_out_of_memory(const h2o_options *opts, h2o_result *res) {
  const char *file = opts->source_name ? opts->source_name : "<input>";
  static const char what[] = ": error: out of memory\n";
  size_t n = strlen(file);
  res->message = h2o_malloc(n + sizeof what);
  if (res->message) {
    memcpy(res->message, file, n);
    memcpy(res->message + n, what, sizeof what);
  }
  res->status = H2O_ENOMEM;
  res->n_errors = 1;
  return res->status;
}

int h2o_convert(const char *text, size_t len, const h2o_options *opts,
                const h2o_param *params, int n_params, const char *out_path,
                h2o_result *res) {
  memset(res, 0, sizeof *res);
  const h2o_options effective = with_defaults(opts);
  opts = &effective;
  jmp_buf oom;
  Arena *arena = arena_new(&oom);
  /* volatile: read after a longjmp back into this frame */
  Ctx *volatile c = arena ? h2o_calloc(1, sizeof(Ctx)) : NULL;
  if (!c) {
    arena_free(arena);
    return early_out_of_memory(opts, res);
  }
  ctx_init(c, arena, &oom, opts->source_name, text, len, opts);
  if (setjmp(oom) == 0) {
    if (run_stages(c, params, n_params, out_path, res) != 0 && c->status == H2O_OK)
      diag_error(c, H2O_EINTERNAL, "internal error: a stage failed without a message");
  } else {
    c->status = H2O_ENOMEM;
    diag_note(c, "%s: error: out of memory (%zu bytes in use by the conversion)", c->file,
              arena_bytes_used(arena));
    h2o_free(res->bytes);
    res->bytes = NULL;
    res->nbytes = 0;
  }
  res->status = c->status;
  res->n_errors = c->n_errors;
  res->message = c->diag; /* ownership moves to the caller */
  c->diag = NULL;
  arena_free(arena);
  h2o_free(c);
  return res->status;
}
