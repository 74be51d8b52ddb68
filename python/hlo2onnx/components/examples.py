"""The example models of jax2onnx v0.1.0's "Examples" table (``kind="example"``).

The models are in :mod:`hlo2onnx.examples.models`.  Every test case comes in
the four variants of the seed's "Supported Configurations" table, named as
the seed names its ONNX files:

====  ===============  ====================================================
code  batch dimension  intermediate shapes (``value_info``)
====  ===============  ====================================================
00    static (5)       none
10    static (5)       written (``shape_info=True``)
01    symbolic "B"     none
11    symbolic "B"     written; a dimension that depends on "B" says so
                       (as "B", an expression of it, or unknown), never a
                       wrong number
====  ===============  ====================================================

so the case ``mnist_cnn_1`` is registered as ``mnist_cnn_1_00`` ...
``mnist_cnn_1_11``.  The dynamic variants run at batch sizes 1, 3 and 8.
Models whose input is an image are converted with ``inputs_as_nchw=True``:
the ONNX model takes NCHW images, as ONNX users expect, while the Flax model
is NHWC.

Besides the checks every registry case gets (onnx.checker, expected and
forbidden ops, onnxruntime against JAX), each variant checks its batch
dimension and its value_info: present and true at run time (every shape
compared with what onnxruntime computes, at each batch size) with shape
info, absent without.

``python -m hlo2onnx.tables`` writes the passing variants' ONNX files to
``docs/onnx/<case>.onnx`` (:func:`write_onnx_files`), and the
examples table of docs/components.md links each pass mark to its file.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import Any, Callable, Sequence

from hlo2onnx import checks
from hlo2onnx.registry import Case, Component, register

SINCE = "v0.1.0"
SEED_EXAMPLES = "https://github.com/enpasos/jax2onnx/tree/v0.1.0#examples"

STATIC_BATCH = 5  # the batch size of the static variants (no other axis has it)
ONNX_DIR = "docs/onnx"  # relative to the repository; docs/components.md links


@dataclasses.dataclass(frozen=True)
class Variant:
    code: str
    dynamic: bool
    shape_info: bool
    title: str


# In the seed's order of its table: first digit shape info, second dynamic.
VARIANTS = (
    Variant("00", False, False, "static batch dim"),
    Variant("10", False, True, "static batch dim + shape info"),
    Variant("01", True, False, "dynamic batch dim"),
    Variant("11", True, True, "dynamic batch dim + shape info"),
)
_VARIANT_NAME = re.compile(r"^(.*)_(\d\d)$")


def split_case_name(name: str) -> tuple[str, Variant | None]:
    """``"mnist_cnn_1_01"`` -> ``("mnist_cnn_1", <dynamic batch dim>)``;
    a name without a variant suffix -> ``(name, None)``."""
    m = _VARIANT_NAME.match(name)
    if m:
        for v in VARIANTS:
            if v.code == m.group(2):
                return m.group(1), v
    return name, None


# ---------------------------------------------------------------------------
# Building the models quickly, with random weights.


def materialize(make: Callable[[], Any], seed: int = 1):
    """``make()``, built without running Flax's initializers, then given
    random weights by :func:`hlo2onnx.components.flax_nnx.randomized`.

    Flax's initializers compile one XLA program per parameter shape, which
    costs tens of seconds for a model on a small machine; ``nnx.eval_shape``
    builds the module with abstract values instead.  Parameters are filled
    with zeros (then randomized: non-zero biases, LayerNorm scales != 1),
    RNG keys with a fixed key (Dropout is off in inference mode anyway).
    """
    import jax
    import numpy as np
    from flax import nnx

    from .flax_nnx import randomized

    graphdef, abstract = nnx.split(nnx.eval_shape(make))

    def concrete(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return jax.random.key(0) if x.shape == () else jax.random.split(
                jax.random.key(0), int(np.prod(x.shape))).reshape(x.shape)
        return jax.numpy.asarray(np.zeros(x.shape, x.dtype))

    state = jax.tree_util.tree_map(concrete, abstract)
    return randomized(nnx.merge(graphdef, state), seed)


# ---------------------------------------------------------------------------
# Graph checks of the variants.


def _dims(vi) -> list | None:
    """Per axis: an int (dim_value), a str (dim_param) or None (unknown); None
    for a value without a shape."""
    t = vi.type.tensor_type
    if not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in t.shape.dim]


def batch_dim(dynamic: bool) -> checks.GraphCheck:
    """Axis 0 of every graph input and output is "B" (dynamic) or
    STATIC_BATCH (static), and nothing else is symbolic."""
    want = "B" if dynamic else STATIC_BATCH

    def fn(model):
        g = model.graph
        init = {t.name for t in g.initializer}
        problems = []
        for vi in [*(i for i in g.input if i.name not in init), *g.output]:
            dims = _dims(vi)
            if not dims or dims[0] != want:
                problems.append(f"{vi.name}: shape {dims}, axis 0 should be {want!r}")
            elif any(not isinstance(d, int) for d in dims[1:]):
                problems.append(f"{vi.name}: shape {dims}, only axis 0 may be symbolic")
        return problems

    return checks.GraphCheck(f"batch dimension {want!r}", fn)


def no_value_info() -> checks.GraphCheck:
    """The variants without shape info have no value_info."""

    def fn(model):
        n = len(model.graph.value_info)
        return [f"{n} value_info entries (expected none)"] if n else []

    return checks.GraphCheck("no value_info", fn)


def _intermediates(model) -> list[str]:
    g = model.graph
    outputs = {o.name for o in g.output}
    return [o for n in g.node for o in n.output if o and o not in outputs]


def value_info_complete() -> checks.GraphCheck:
    """Every intermediate value of the main graph has a value_info with its
    element type and rank."""

    def fn(model):
        have = {vi.name: vi for vi in model.graph.value_info}
        missing = [v for v in _intermediates(model) if v not in have]
        untyped = [vi.name for vi in have.values()
                   if not vi.type.tensor_type.elem_type or _dims(vi) is None]
        producer = {o: n for n in model.graph.node for o in n.output}
        problems = []
        if missing:
            problems.append(f"{len(missing)} intermediate values without value_info: " + ", ".join(
                f"{v} ({producer[v].op_type})" for v in missing[:8]))
        if untyped:
            problems.append(f"{len(untyped)} value_info without element type or shape: "
                            + ", ".join(untyped[:8]))
        return problems

    return checks.GraphCheck("value_info on every intermediate", fn)


def _symbols(expr: str) -> set[str]:
    return set(re.findall(r"[A-Za-z_]\w*", expr)) - {"floordiv", "mod", "max", "min"}


def value_info_true(batch_sizes: Sequence[int] = (1, 3, 8), seed: int = 0,
                    size_sets: Sequence[dict[str, int]] | None = None) -> checks.GraphCheck:
    """Every value_info and graph output shape agrees with the shapes
    onnxruntime computes, for each batch size (a static model: once): every
    symbol of the inputs takes that size, or, with ``size_sets``, the sizes
    of each dict in turn (to tell "B" from "T").  bfloat16 values are not
    checked (onnxruntime cannot hand them to numpy).

    The model is copied with every value_info added as a graph output, and
    run on random inputs.  A dim_value must equal the actual size; a
    dim_param over the graph inputs' symbols (``"B"``, ``"B*49"``) must
    evaluate to it; any other dim_param must have one size throughout the
    run; an unknown dimension is always right.  Element types and ranks must
    match."""

    def fn(model):
        import numpy as np
        import onnx
        import onnxruntime as ort

        from hlo2onnx.convert import _eval_dim
        from hlo2onnx.verify import random_array

        g = model.graph
        init = {t.name for t in g.initializer}
        inputs = [i for i in g.input if i.name not in init]
        # the symbols inside the input dims: "2*T" and "B + 1" are sizes of T and B
        symbols = sorted({s for i in inputs for d in (_dims(i) or []) if isinstance(d, str)
                          for s in _symbols(d)})
        declared = {vi.name: vi for vi in [*g.value_info, *g.output]}

        probe = onnx.ModelProto()
        probe.CopyFrom(model)
        del probe.graph.output[:]
        names = [n for n, vi in declared.items()
                 if vi.type.tensor_type.elem_type != onnx.TensorProto.BFLOAT16]
        for name in names:
            elem = declared[name].type.tensor_type.elem_type
            probe.graph.output.append(onnx.helper.make_tensor_value_info(name, elem, None))
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        # No graph optimisations: every value keeps its own tensor.
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(probe.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(seed)
        problems: list[str] = []
        if size_sets is None:
            size_sets_ = [dict.fromkeys(symbols, size) for size in batch_sizes] if symbols else [{}]
        else:
            size_sets_ = list(size_sets)
        for sizes in size_sets_:
            feeds = {}
            for vi in inputs:
                shape = [d if isinstance(d, int) else _eval_dim(d, sizes) for d in _dims(vi)]
                dtype = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
                feeds[vi.name] = random_array(rng, shape, dtype)
            values = dict(zip(names, sess.run(names, feeds)))
            named: dict[str, int] = {}
            at = f" ({', '.join(f'{k}={v}' for k, v in sizes.items())})" if sizes else ""
            for name in names:
                vi, actual = declared[name], np.asarray(values[name])
                want_dt = onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type)
                if actual.dtype != want_dt:
                    problems.append(f"{name}: says {want_dt}, is {actual.dtype}{at}")
                dims = _dims(vi)
                if dims is None:
                    continue
                if len(dims) != actual.ndim:
                    problems.append(f"{name}: says rank {len(dims)} {dims}, is "
                                    f"{list(actual.shape)}{at}")
                    continue
                for axis, (d, n) in enumerate(zip(dims, actual.shape)):
                    if d is None:
                        continue
                    if isinstance(d, int):
                        ok = d == n
                    elif _symbols(d) <= set(sizes):
                        ok = _eval_dim(d, sizes) == n
                    else:
                        ok = named.setdefault(d, n) == n
                    if not ok:
                        problems.append(f"{name} axis {axis}: says {d!r}, is {n} "
                                        f"(shape {list(actual.shape)}){at}")
        return problems

    return checks.GraphCheck("value_info true at run time", fn)


# ---------------------------------------------------------------------------
# The examples.


def _image(height: int = 28, width: int = 28, channels: int = 1):
    return [("B", height, width, channels)]


def _variants(name: str, make: Callable[[], Any], inputs: Sequence[tuple], *,
              nchw: bool = False, notes: str = "", **kw) -> list[Case]:
    """The four variants of one test case (see the module docstring)."""

    def factory():
        return materialize(make)

    cases = []
    for v in VARIANTS:
        shapes = [tuple(d if v.dynamic or d != "B" else STATIC_BATCH for d in s)
                  for s in inputs]
        options = {"shape_info": v.shape_info}
        if nchw:
            options["inputs_as_nchw"] = True
        variant_checks = [batch_dim(v.dynamic)]
        variant_checks += ([value_info_complete(), value_info_true()] if v.shape_info
                           else [no_value_info()])
        cases.append(Case(f"{name}_{v.code}", factory, shapes, options=options,
                          checks=tuple(variant_checks), notes=f"{notes}; {v.title}".lstrip("; "),
                          **kw))
    return cases


def _models():
    from hlo2onnx.examples import models

    return models


def _nnx():
    from flax import nnx

    return nnx


# Leftovers of fusions that must have happened: the unfused exact GELU,
# LayerNorm, softmax, and training-mode Dropout.
FUSED = ("Erf", "ReduceMean", "Sqrt", "Exp", "ReduceMax", "Dropout")
# Between Conv/pool layers nothing may undo a Transpose (NCHW <-> NHWC).
LAYOUT = (checks.no_cancelling_transposes(),)
LINEAR = ("Gemm", "MatMul")

register(Component(
    "CNN", "CNN", docs_url=SEED_EXAMPLES, since=SINCE, kind="example",
    description="A MNIST CNN model with convolutional and linear layers.",
    children=("flax.nnx.Conv", "flax.nnx.Linear", "flax.nnx.relu", "flax.nnx.avg_pool",
              "flax.nnx.reshape", "flax.nnx.log_softmax"),
    onnx_expected=("Conv", "Relu", "AveragePool", LINEAR, "LogSoftmax"),
    forbid_ops=FUSED, checks=LAYOUT,
    cases=_variants("mnist_cnn_1", lambda: _models().CNN(rngs=_nnx().Rngs(0)), _image(),
                    nchw=True, notes="(Conv 3x3 -> relu -> avg_pool) x 2, 1 -> 8 -> 16 "
                                     "channels; Linear 784 -> 32 -> 10")))

register(Component(
    "CNN2", "CNN2", docs_url=SEED_EXAMPLES, since=SINCE, kind="example",
    description="A MNIST CNN model with convolutional, layer norm, pooling, dropout, and "
                "linear layers.",
    children=("flax.nnx.Conv", "flax.nnx.Linear", "flax.nnx.relu", "flax.nnx.avg_pool",
              "flax.nnx.reshape", "flax.nnx.log_softmax", "flax.nnx.LayerNorm",
              "flax.nnx.Dropout", "flax.nnx.max_pool"),
    onnx_expected=("Conv", "LayerNormalization", "Relu", "MaxPool", "AveragePool", LINEAR,
                   "LogSoftmax"),
    forbid_ops=FUSED, checks=LAYOUT,
    cases=_variants("mnist_cnn_2", lambda: _models().CNN2(rngs=_nnx().Rngs(0)), _image(),
                    nchw=True, notes="LayerNorm over each whole (H, W, C) map, as the seed")))

register(Component(
    "ConvEmbedding", "ConvEmbedding", docs_url=SEED_EXAMPLES, since=SINCE, kind="example",
    description="Convolutional Token Embedding for MNIST with hierarchical downsampling.",
    children=("flax.nnx.Conv", "flax.nnx.LayerNorm", "jax.numpy.Reshape", "jax.nn.relu"),
    onnx_expected=("Conv", "Relu", "LayerNormalization"),
    forbid_ops=FUSED, checks=LAYOUT,
    cases=_variants("mnist_conv_embedding",
                    lambda: _models().ConvEmbedding(rngs=_nnx().Rngs(0)), _image(), nchw=True,
                    notes="3 convs (strides 1, 2, 2), 49 tokens of 32")))

register(Component(
    "MLP", "MLP", docs_url=SEED_EXAMPLES, since=SINCE, kind="example",
    description="A simple Multi-Layer Perceptron (MLP) with BatchNorm, Dropout, and GELU "
                "activation.",
    children=("flax.nnx.Linear", "flax.nnx.BatchNorm", "flax.nnx.Dropout", "flax.nnx.gelu"),
    onnx_expected=(LINEAR, "Gelu"),
    forbid_ops=FUSED,
    cases=_variants("mlp", lambda: _models().MLP(30, 20, 10, rngs=_nnx().Rngs(17)),
                    [("B", 30)], notes="30 -> 20 -> 10, as in the seed's README")))

register(Component(
    "MLPBlock", "MLPBlock", docs_url=SEED_EXAMPLES, since=SINCE, kind="example",
    description="MLP in Transformer",
    children=("flax.nnx.Linear", "flax.nnx.Dropout", "flax.nnx.gelu"),
    onnx_expected=(LINEAR, "Gelu"),
    forbid_ops=FUSED,
    cases=_variants("mlp_block", lambda: _models().MLPBlock(32, 64, rngs=_nnx().Rngs(0)),
                    [("B", 10, 32)], notes="10 tokens, 32 -> 64 -> 32")))

register(Component(
    "PatchEmbedding", "PatchEmbedding", docs_url=SEED_EXAMPLES, since=SINCE, kind="example",
    description="Cutting the image into patches and linearly embedding them.",
    children=("flax.nnx.Linear", "jax.numpy.Transpose", "jax.numpy.Reshape"),
    onnx_expected=(LINEAR, "Transpose", "Reshape"),
    forbid_ops=FUSED, checks=LAYOUT,
    cases=_variants("patch_embedding",
                    lambda: _models().PatchEmbedding(28, 28, 4, 32, 1, rngs=_nnx().Rngs(0)),
                    _image(), nchw=True, notes="4x4 patches -> 49 tokens of 32")))

register(Component(
    "TransformerBlock", "TransformerBlock", docs_url=SEED_EXAMPLES, since=SINCE,
    kind="example",
    description="Transformer from 'Attention Is All You Need.'",
    children=("flax.nnx.MultiHeadAttention", "flax.nnx.LayerNorm", "MLPBlock",
              "flax.nnx.Dropout"),
    onnx_expected=("LayerNormalization", LINEAR, "Softmax", "Gelu"),
    forbid_ops=FUSED, checks=LAYOUT,
    cases=_variants("transformer_block",
                    lambda: _models().TransformerBlock(32, 4, 64, rngs=_nnx().Rngs(0)),
                    [("B", 10, 32)], notes="width 32, 4 heads, MLP 64, 10 tokens")))

register(Component(
    "ViT", "ViT", docs_url=SEED_EXAMPLES, since=SINCE, kind="example",
    description="A MNIST Vision Transformer (ViT) model",
    children=("ConvEmbedding", "PatchEmbedding", "TransformerBlock", "flax.nnx.Linear",
              "flax.nnx.LayerNorm", "jax.lax.gather"),
    onnx_expected=("LayerNormalization", LINEAR, "Softmax", "Gelu", "LogSoftmax"),
    forbid_ops=FUSED, checks=LAYOUT,
    cases=[
        *_variants("mnist_vit_conv",
                   lambda: _models().ViT(embedding="conv", rngs=_nnx().Rngs(0)), _image(),
                   nchw=True, expect_ops=("Conv",),
                   notes="ConvEmbedding, 2 blocks of width 32, 4 heads"),
        *_variants("mnist_vit_patch",
                   lambda: _models().ViT(embedding="patch", rngs=_nnx().Rngs(0)), _image(),
                   nchw=True, notes="PatchEmbedding (4x4), 2 blocks of width 32, 4 heads"),
    ]))


# ---------------------------------------------------------------------------
# The ONNX files the examples table (docs/components.md) links to.


def onnx_file(case_name: str) -> str:
    """A case's file, relative to the repository (the examples table links it
    relative to docs/)."""
    return f"{ONNX_DIR}/{case_name}.onnx"


def write_onnx_files(root: str | os.PathLike, progress=None) -> list[Path]:
    """Writes every passing example variant's model to
    ``<root>/docs/onnx/<case>.onnx`` and removes files of cases that no
    longer pass or exist; returns the files written."""
    from hlo2onnx import registry

    folder = Path(root) / ONNX_DIR
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for comp, case in registry.all_cases("example"):
        res = registry.run_case(comp, case)
        path = Path(root) / onnx_file(case.name)
        if res.ok:
            data = res.model.SerializeToString()
            if not path.is_file() or path.read_bytes() != data:
                tmp = path.with_suffix(".onnx.tmp")
                tmp.write_bytes(data)
                os.replace(tmp, path)
                if progress:
                    progress(f"wrote {path}")
            written.append(path)
    for stale in set(folder.glob("*.onnx")) - set(written):
        stale.unlink()
        if progress:
            progress(f"removed {stale}")
    return written
