"""Names a person can read in Netron, and errors at the user's line (issue 13).

On the seed's MLP and ViT examples and on a Flax Linen, a Keras and a Haiku
model, each converted here: graph inputs carry the function's parameter
names, outputs the result pytree's paths, initializers the weights' module
paths (through every fusion), and every node its JAX name scope as its name
and, in ``metadata_props``, that scope (``namespace``) and the Python line
that made it (``source``: a line of this file).  The model carries what was
converted and the versions.  An unsupported op is reported at this file's
line.  Every model passes ``onnx.checker`` (full check) and matches JAX in
onnxruntime (rtol = atol = 1e-5).
"""

from __future__ import annotations

import inspect
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import pytest

import hlo2onnx
from hlo2onnx import naming

from util import check_model, run_cli

HERE = os.path.abspath(__file__)


def _line() -> int:
    """The line of the caller (the next line is where a to_onnx call is)."""
    return inspect.currentframe().f_back.f_lineno


def _lines_of(obj) -> set[int]:
    src, first = inspect.getsourcelines(obj)
    return set(range(first, first + len(src)))


def _nodes(graph):
    for n in graph.node:
        yield n
        for a in n.attribute:
            if a.type == onnx.AttributeProto.GRAPH:
                yield from _nodes(a.g)
            for g in a.graphs:
                yield from _nodes(g)


def _check_nodes(model, lines: set[int]):
    """Every node: named '<namespace>/<op_type>' (a suffix '_k' where that
    is taken), its namespace a JAX scope, its source a line of this file."""
    names = set()
    for n in _nodes(model.graph):
        meta = {p.key: p.value for p in n.metadata_props}
        assert set(meta) == {"namespace", "source"}, (n.name, meta)
        scope = meta["namespace"]
        assert scope.startswith("jit("), (n.name, scope)
        assert re.fullmatch(re.escape(f"{scope}/{n.op_type}") + r"(_\d+)?", n.name), (n.name, scope)
        file, line = meta["source"].rsplit(":", 1)
        assert file == HERE and int(line) in lines, (n.name, meta["source"], sorted(lines))
        assert n.name not in names, n.name
        names.add(n.name)


def _check_metadata(model, doc: str, library: str | None):
    assert model.doc_string == doc
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["hlo2onnx.version"] == hlo2onnx.__version__
    assert meta["jax.version"] == jax.__version__
    assert meta["symbolic_dims"] == "B"
    if library:
        import importlib
        assert meta[f"{library}.version"] == importlib.import_module(library).__version__


def _verify(fn, model, inputs, **kw):
    check_model(model)
    result = hlo2onnx.verify(fn, model, inputs, rtol=1e-5, atol=1e-5, **kw)
    assert result.ok, str(result)


def _fused_weights(model, op_type: str, n: int) -> list[str]:
    return [name for node in model.graph.node if node.op_type == op_type
            for name in node.input[1:n + 1]]


def _nnx_paths(module) -> set[str]:
    from flax import nnx
    return {".".join(str(k) for k in path) for path, _ in nnx.to_flat_state(nnx.state(module))}


# ---------------------------------------------------------------------------
# The seed's examples (their code is hlo2onnx's: the line is the call's).


def test_seed_mlp_names():
    from hlo2onnx.examples.mlp import make_mlp

    mlp = make_mlp()
    call = _line() + 1
    model = hlo2onnx.to_onnx(mlp, [("B", 30)], model_version=7)
    _verify(mlp, model, [("B", 30)])
    assert [i.name for i in model.graph.input] == ["x"]  # MLP.__call__(self, x)
    assert [o.name for o in model.graph.output] == ["output_0"]
    # BatchNorm folds into the first Linear: the Gemm keeps that Linear's names
    paths = _nnx_paths(mlp)
    assert {i.name for i in model.graph.initializer} <= paths, \
        [i.name for i in model.graph.initializer]
    assert _fused_weights(model, "Gemm", 2) == ["layers.0.kernel", "layers.1.bias",
                                                "layers.4.kernel", "layers.4.bias"]
    _check_nodes(model, {call})
    _check_metadata(model, "hlo2onnx.examples.models.MLP", "flax")
    assert model.model_version == 7


def test_seed_vit_names():
    from flax import nnx

    from hlo2onnx.examples.models import ViT

    vit = ViT(rngs=nnx.Rngs(3))
    inputs = [("B", 28, 28, 1)]
    call = _line() + 1
    model = hlo2onnx.to_onnx(vit, inputs)
    _verify(vit, model, inputs, batch_sizes=(1, 3))
    assert [i.name for i in model.graph.input] == ["x"]
    assert [o.name for o in model.graph.output] == ["output_0"]
    # every LayerNormalization reads its module's scale and bias
    norms = _fused_weights(model, "LayerNormalization", 2)
    assert len(norms) == 2 * 6, norms  # the embedding's, two per block (two blocks), the final one
    assert set(norms) <= _nnx_paths(vit), norms
    assert "norm.scale" in norms and "norm.bias" in norms
    assert not [i.name for i in model.graph.initializer
                if re.match(r"(ln|bn)_|conv_bias", i.name)]
    _check_nodes(model, {call})
    _check_metadata(model, "hlo2onnx.examples.models.ViT", "flax")


# ---------------------------------------------------------------------------
# Models of the user's own code, in three libraries: the lines are theirs.


def test_linen_names():
    import flax.linen as nn

    class LinenNet(nn.Module):
        @nn.compact
        def __call__(self, image):
            x = nn.Dense(16)(image)
            x = nn.LayerNorm()(x)
            return nn.Dense(4)(nn.relu(x))

    net = LinenNet()
    variables = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 8)))
    model = hlo2onnx.to_onnx((net, variables), [("B", 8)])
    _verify((net, variables), model, [("B", 8)])
    assert [i.name for i in model.graph.input] == ["image"]
    assert _fused_weights(model, "LayerNormalization", 2) == ["params.LayerNorm_0.scale",
                                                              "params.LayerNorm_0.bias"]
    assert _fused_weights(model, "Gemm", 2) == ["params.Dense_0.kernel", "params.Dense_0.bias",
                                                "params.Dense_1.kernel", "params.Dense_1.bias"]
    # Linen's modules are JAX name scopes
    scopes = {n.op_type: n.name for n in model.graph.node}
    assert scopes["LayerNormalization"] == "jit(LinenNet)/LinenNet/LayerNorm_0/LayerNormalization"
    assert "/LinenNet/Dense_0/" in model.graph.node[0].name
    _check_nodes(model, _lines_of(LinenNet.__call__) - {min(_lines_of(LinenNet.__call__))})
    _check_metadata(model, f"{__name__}.test_linen_names.<locals>.LinenNet", "flax")


def _keras_model():
    import keras

    inp = keras.Input((8,))
    x = keras.layers.Dense(16, activation="relu")(inp)
    x = keras.layers.LayerNormalization()(x)
    model = keras.Model(inp, keras.layers.Dense(4)(x))
    for v in model.trainable_variables:  # off their defaults (ones, zeros)
        v.assign(np.random.default_rng(len(v.path)).uniform(-1, 1, v.shape).astype(np.float32))
    return model


def test_keras_names():
    kmodel = _keras_model()
    order = [v.path for v in kmodel.trainable_variables]
    params = {v.path: v.value for v in kmodel.trainable_variables}

    def classify(params, features):
        return kmodel.stateless_call([params[p] for p in order], [], features, training=False)[0]

    model = hlo2onnx.to_onnx(classify, [("B", 8)], params=params)
    _verify(classify, model, [("B", 8)], params=params)
    assert [i.name for i in model.graph.input] == ["features"]
    assert {i.name for i in model.graph.initializer} == set(order)
    # Keras numbers its layers' names per process ("layer_normalization_1")
    import keras
    norm = next(la for la in kmodel.layers if isinstance(la, keras.layers.LayerNormalization))
    assert _fused_weights(model, "LayerNormalization", 2) == [norm.gamma.path, norm.beta.path]
    # Keras names its layers' scopes
    assert [n.name for n in model.graph.node if n.op_type == "LayerNormalization"] == \
        [f"jit(classify)/{norm.name}/LayerNormalization"]
    _check_nodes(model, _lines_of(classify))
    _check_metadata(model, f"{__name__}.test_keras_names.<locals>.classify", None)


def test_haiku_names():
    import haiku as hk

    def forward(x):
        h = hk.Linear(16)(x)
        h = hk.LayerNorm(-1, create_scale=True, create_offset=True)(h)
        return hk.Linear(4)(jax.nn.relu(h))

    net = hk.without_apply_rng(hk.transform(forward))
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 8)))
    params = jax.tree_util.tree_map(lambda p: p + 0.25 * jnp.cos(jnp.arange(p.size) * 1.0)
                                    .reshape(p.shape), params)

    def apply(params, x):
        return net.apply(params, x)

    model = hlo2onnx.to_onnx(apply, [("B", 8)], params=params)
    _verify(apply, model, [("B", 8)], params=params)
    assert [i.name for i in model.graph.input] == ["x"]
    assert _fused_weights(model, "LayerNormalization", 2) == ["layer_norm.scale",
                                                              "layer_norm.offset"]
    assert _fused_weights(model, "Gemm", 2) == ["linear.w", "linear.b", "linear_1.w",
                                                "linear_1.b"]
    assert [n.name for n in model.graph.node if n.op_type == "LayerNormalization"] == \
        ["jit(apply)/layer_norm/LayerNormalization"]
    _check_nodes(model, _lines_of(forward) - {min(_lines_of(forward))})
    _check_metadata(model, f"{__name__}.test_haiku_names.<locals>.apply", None)


# ---------------------------------------------------------------------------
# Inputs and outputs.


def test_outputs_named_after_the_result_pytree():
    w = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)

    def f(params, tokens, mask):
        y = tokens @ params["w"]
        return {"sum": jnp.tanh(y) + mask.sum(), "pair": (y, y * 2)}

    inputs = [("B", 3), (5,)]
    model = hlo2onnx.to_onnx(f, inputs, params={"w": w})
    _verify(f, model, inputs, params={"w": w})
    assert [i.name for i in model.graph.input] == ["tokens", "mask"]
    assert [o.name for o in model.graph.output] == ["output_pair_0", "output_pair_1",
                                                    "output_sum"]
    assert [i.name for i in model.graph.initializer if i.name == "w"] == ["w"]
    _check_nodes(model, _lines_of(f))
    # a single dict entry is named too, as the command names it
    single = hlo2onnx.to_onnx(lambda x: {"logits": 2 * x}, [(3,)])
    assert [o.name for o in single.graph.output] == ["output_logits"]
    # input_names= and output_names= still decide
    named = hlo2onnx.to_onnx(f, inputs, params={"w": w}, input_names=["a", "b"],
                             output_names=["p", "q", "r"])
    assert [i.name for i in named.graph.input] == ["a", "b"]
    assert [o.name for o in named.graph.output] == ["p", "q", "r"]


def test_input_names_from_signatures():
    assert naming.input_names(lambda *xs: xs, None, 2) == ["xs_0", "xs_1"]
    assert naming.input_names(lambda p, x: x, {"w": 1}, 1) == ["x"]
    assert naming.input_names(lambda x: x, None, 2) == ["x", "input_1"]
    assert naming.input_names(jnp.tanh, None, 1) == ["x"]
    assert naming.leaf_name("batch", (jax.tree_util.DictKey("image"),)) == "batch.image"


# ---------------------------------------------------------------------------
# Errors at the user's line.


def test_unsupported_op_names_the_users_line():
    def spectrum(x):  # complex numbers convert, sorting them does not (yet)
        return jnp.sort(jnp.fft.fft(x)).real

    line = _lines_of(spectrum)
    with pytest.raises(hlo2onnx.UnsupportedOpError) as info:
        hlo2onnx.to_onnx(spectrum, [(4, 8)])
    first = info.value.messages.splitlines()
    want = f"{HERE}:{max(line)}: error: "
    assert first[0].startswith(want), info.value.messages
    assert "(JAX scope: jit(spectrum)/" in first[0] and "sort" in first[0]
    assert first[1].strip() == "return jnp.sort(jnp.fft.fft(x)).real"  # the user's code
    assert re.match(r"  <jit_spectrum>:\d+:\d+: the op in the lowered MLIR text", first[2])


def test_cli_shows_the_python_line(tmp_path):
    def spectrum(x):  # complex numbers convert, sorting them does not (yet)
        return jnp.sort(jnp.fft.fft(x)).real

    src = tmp_path / "spectrum.mlir"
    src.write_text(jax.jit(spectrum).lower(jax.ShapeDtypeStruct((4, 8), np.float32))
                   .as_text(debug_info=True))
    proc = run_cli(src, "-o", tmp_path / "spectrum.onnx", "-q")
    assert proc.returncode == 3, proc.stderr
    assert re.search(re.escape(str(src)) + r":\d+:\d+: error: .*JAX scope: jit\(spectrum\)",
                     proc.stderr), proc.stderr
    # the Python line of the loc, and its code
    assert f"  from Python: {HERE}:{max(_lines_of(spectrum))}\n" \
        "    return jnp.sort(jnp.fft.fft(x)).real\n" in proc.stderr, proc.stderr
