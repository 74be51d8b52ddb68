"""A jax.export.Exported as input (hlo2onnx/exported.py): the object, the
bytes of Exported.serialize(), and the file a user saved them in, from
to_onnx and from ``python -m hlo2onnx``.

Each model runs in onnxruntime against ``Exported.call`` on random inputs
at several sizes of its symbolic dimensions (f32, rtol = atol = 1e-5) and
passes onnx.checker with full_check.
"""

from __future__ import annotations

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import pytest
from util import check_model, dims_of, run_ort

import hlo2onnx

TOL = dict(rtol=1e-5, atol=1e-5)


def _mlp(params, x):
    h = jnp.tanh(x @ params["layers"][0]["w"] + params["layers"][0]["b"])
    return {"logits": h @ params["head"], "norm": jnp.sqrt((h * h).sum(-1))}


def _params(seed=0):
    rng = np.random.default_rng(seed)
    return {"layers": [{"w": rng.standard_normal((6, 5)).astype(np.float32),
                        "b": rng.standard_normal(5).astype(np.float32)}],
            "head": rng.standard_normal((5, 3)).astype(np.float32)}


def _spec(tree):
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct(np.shape(a), a.dtype), tree)


@pytest.fixture(scope="module")
def mlp_export():
    B, = jax.export.symbolic_shape("B")
    return jax.export.export(jax.jit(_mlp))(_spec(_params()),
                                           jax.ShapeDtypeStruct((B, 6), jnp.float32))


def _check_against_call(model_or_path, exp, params, feeds_for, sizes=(1, 3, 8)):
    """onnxruntime against exp.call at each batch size; feeds_for(b, rng)
    gives (positional args after params, the feed dict)."""
    names = [o.name for o in (onnx.load(model_or_path) if isinstance(model_or_path, (str, os.PathLike))
                              else model_or_path).graph.output]
    for b in sizes:
        rng = np.random.default_rng(b)
        args, feeds = feeds_for(b, rng)
        want = exp.call(params, *args) if params is not None else exp.call(*args)
        want = dict(zip(_flat_names(exp), jax.tree_util.tree_leaves(want)))
        import onnxruntime as ort

        sess = ort.InferenceSession(model_or_path if isinstance(model_or_path, (str, os.PathLike))
                                    else model_or_path.SerializeToString(),
                                    providers=["CPUExecutionProvider"])
        got = sess.run(None, feeds)
        for name, g in zip(names, got):
            np.testing.assert_allclose(g, np.asarray(want[name]), **TOL, err_msg=f"{name} at B={b}")


def _flat_names(exp):
    from hlo2onnx.exported import _output_names

    return _output_names(exp.out_tree)


def _x_feeds(b, rng):
    x = rng.standard_normal((b, 6)).astype(np.float32)
    return [x], {"input_0": x}


@pytest.mark.parametrize("form", ["object", "bytes", "str path", "Path"])
def test_exported_with_params_in_every_form(tmp_path, mlp_export, form):
    """The weights exported as an argument come back as initializers named
    by their paths; the input and outputs are named from the pytrees and
    keep the symbolic batch "B"."""
    blob = mlp_export.serialize()
    saved = tmp_path / "mlp.exported"
    saved.write_bytes(blob)
    source = {"object": mlp_export, "bytes": bytes(blob), "str path": str(saved),
              "Path": saved}[form]
    params = _params()
    out = tmp_path / "mlp.onnx"
    model = hlo2onnx.to_onnx(source, path=out, params=params)
    check_model(out)
    assert [(i.name, dims_of(i)) for i in model.graph.input] == [("input_0", ["B", 6])]
    assert [(o.name, dims_of(o)) for o in model.graph.output] == \
        [("logits", ["B", 3]), ("norm", ["B"])]
    assert {i.name for i in model.graph.initializer} >= {"layers.0.w", "layers.0.b", "head"}
    _check_against_call(out, mlp_export, params, _x_feeds)


def test_exported_without_params_takes_them_as_inputs(mlp_export):
    model = hlo2onnx.to_onnx(mlp_export)
    check_model(model)
    assert [i.name for i in model.graph.input] == \
        ["input_0.head", "input_0.layers.0.b", "input_0.layers.0.w", "input_1"]
    params = _params(3)
    x = np.random.default_rng(1).standard_normal((4, 6)).astype(np.float32)
    got = run_ort(model, params["head"], params["layers"][0]["b"], params["layers"][0]["w"], x)
    want = mlp_export.call(params, x)
    np.testing.assert_allclose(got[0], want["logits"], **TOL)
    np.testing.assert_allclose(got[1], want["norm"], **TOL)


def test_keyword_arguments_tuples_and_unused_inputs():
    """kwargs are named by their names, tuple outputs output_0, output_1
    (with the path inside); an argument the function ignores stays an input
    (jax.export keeps it)."""
    def f(x, unused, *, mask):
        return (x * mask, {"total": (x * mask).sum(axis=1)})

    B, T = jax.export.symbolic_shape("B, T")
    exp = jax.export.export(jax.jit(f))(jax.ShapeDtypeStruct((B, T), jnp.float32),
                                        jax.ShapeDtypeStruct((2,), jnp.float32),
                                        mask=jax.ShapeDtypeStruct((B, T), jnp.float32))
    model = hlo2onnx.to_onnx(exp.serialize())
    check_model(model)
    assert [(i.name, dims_of(i)) for i in model.graph.input] == \
        [("input_0", ["B", "T"]), ("input_1", [2]), ("mask", ["B", "T"])]
    assert [(o.name, dims_of(o)) for o in model.graph.output] == \
        [("output_0", ["B", "T"]), ("output_1.total", ["B"])]
    for b, t in [(1, 1), (3, 5), (8, 2)]:
        rng = np.random.default_rng(b * 10 + t)
        x = rng.standard_normal((b, t)).astype(np.float32)
        m = (rng.random((b, t)) > 0.5).astype(np.float32)
        got = run_ort(model, x, np.zeros(2, np.float32), m)
        want = jax.tree_util.tree_leaves(exp.call(x, np.zeros(2, np.float32), mask=m))
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, np.asarray(w), **TOL)


def test_several_platforms_take_the_cpu_branch():
    """An Exported for several platforms switches on a platform index: the
    model takes CPU's branch, whatever the order of the platforms."""
    def f(x):
        return jax.lax.platform_dependent(x, cpu=lambda x: x * 2.0, default=lambda x: x - 1.0)

    exp = jax.export.export(jax.jit(f), platforms=("cuda", "cpu"))(
        jax.ShapeDtypeStruct((3, 4), jnp.float32))
    model = hlo2onnx.to_onnx(exp)
    check_model(model)
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    (got,) = run_ort(model, x)
    np.testing.assert_allclose(got, x * 2.0, **TOL)
    assert [i.name for i in model.graph.input] == ["input_0"]


def test_linen_model_exported_with_its_variables(tmp_path):
    """The usual way to export a Flax Linen model: apply(variables, x).
    The variables passed back as params= are initializers named
    params.Dense_0.kernel, ... as to_onnx(net.apply, params=) names them."""
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(3)(nn.gelu(nn.Dense(8)(x)))

    net = Net()
    variables = net.init(jax.random.key(0), jnp.zeros((1, 5)))
    B, = jax.export.symbolic_shape("B")
    exp = jax.export.export(jax.jit(net.apply))(_spec(variables),
                                               jax.ShapeDtypeStruct((B, 5), jnp.float32))
    saved = tmp_path / "net.exported"
    saved.write_bytes(exp.serialize())
    model = hlo2onnx.to_onnx(saved, params=variables)
    check_model(model)
    assert sorted(i.name for i in model.graph.initializer if i.name.startswith("params.")) == [
        "params.Dense_0.bias", "params.Dense_0.kernel", "params.Dense_1.bias",
        "params.Dense_1.kernel"]
    for b in (1, 3, 8):
        x = np.random.default_rng(b).standard_normal((b, 5)).astype(np.float32)
        (got,) = run_ort(model, x)
        np.testing.assert_allclose(got, np.asarray(net.apply(variables, x)), **TOL)


def test_exported_options_and_names(mlp_export, tmp_path):
    model = hlo2onnx.to_onnx(mlp_export, params=_params(), input_names=["x"],
                             output_names=["y", "n"], opset=17, shape_info=True)
    check_model(model)
    assert [i.name for i in model.graph.input] == ["x"]
    assert [o.name for o in model.graph.output] == ["y", "n"]
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]


def test_exported_errors(mlp_export, tmp_path):
    with pytest.raises(TypeError, match=r"without inputs \(to write the model to 'm.onnx', "
                                        r"pass path=\)"):
        hlo2onnx.to_onnx(mlp_export, "m.onnx")
    with pytest.raises(TypeError, match="params= has the structure"):
        hlo2onnx.to_onnx(mlp_export, params={"head": np.zeros((5, 3), np.float32)})
    bad = _params()
    bad["head"] = bad["head"][:, :2]
    with pytest.raises(TypeError, match=r"params= leaf 'head' is float32\[5, 2\], but _mlp was "
                                        r"exported with float32\[5, 3\]"):
        hlo2onnx.to_onnx(mlp_export, params=bad)
    with pytest.raises(TypeError, match="inputs_as_nchw= does not apply"):
        hlo2onnx.to_onnx(mlp_export, inputs_as_nchw=True)
    with pytest.raises(FileNotFoundError, match="read as the file of a serialized"):
        hlo2onnx.to_onnx(str(tmp_path / "missing.exported"))
    text = tmp_path / "f.mlir"
    text.write_text(mlp_export.mlir_module())
    with pytest.raises(ValueError, match=r"not a serialized jax.export.Exported but text .*"
                                         r"mlir_to_onnx\(input_path=...\)"):
        hlo2onnx.to_onnx(text)
    with pytest.raises(ValueError, match="MLIR bytecode"):
        hlo2onnx.to_onnx(bytes(mlp_export.mlir_module_serialized))


def _python_cli(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "hlo2onnx", *map(str, args)],
                          capture_output=True, timeout=300, **kw)


def test_python_m_hlo2onnx_converts_a_saved_exported(tmp_path, mlp_export):
    saved = tmp_path / "mlp.exported"
    saved.write_bytes(mlp_export.serialize())
    out = tmp_path / "mlp.onnx"
    proc = _python_cli(saved, "-o", out, "-q", "--opset", "18")
    assert proc.returncode == 0, proc.stderr.decode()
    check_model(out)
    model = onnx.load(out)
    # No values for the weights on the command line: they are graph inputs.
    assert [i.name for i in model.graph.input][-1] == "input_1"
    params = _params(5)
    x = np.random.default_rng(2).standard_normal((3, 6)).astype(np.float32)
    got = run_ort(out, params["head"], params["layers"][0]["b"], params["layers"][0]["w"], x)
    np.testing.assert_allclose(got[0], mlp_export.call(params, x)["logits"], **TOL)
    # and to standard output, from standard input
    with open(saved, "rb") as f:
        proc = _python_cli("-", "-o", "-", "-q", stdin=f)
    assert proc.returncode == 0, proc.stderr.decode()
    assert onnx.load_from_string(proc.stdout).graph.output[0].name == "logits"
