"""What a user meets first (issue 13): every library's model object taken
directly, the messages of a first try, options checked by name, a `verify`
that runs the arrays it is given, progress and logging.

Models are built from each library's own layers; every converted model goes
through ``onnx.checker.check_model(full_check=True)`` and its outputs are
compared with JAX's (assert_allclose, rtol = atol = 1e-5).
"""

from __future__ import annotations

import functools
import io
import logging
import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import pytest

import hlo2onnx
from hlo2onnx.convert import Progress

from util import check_model, run_cli, run_ort

RTOL = ATOL = 1e-5


def _rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _check(model, expected, *inputs):
    """The model passes the full checker and computes ``expected`` (JAX's
    outputs, a list) from ``inputs``."""
    check_model(model)
    actual = run_ort(model, *inputs)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        np.testing.assert_allclose(a, np.asarray(e), rtol=RTOL, atol=ATOL)


def _init_names(model):
    return {t.name for t in model.graph.initializer}


# ---- every library's model object ------------------------------------------------


def test_keras_model_converts_with_named_weights_in_inference_mode():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("keras was imported with another backend")
    inp = keras.Input((8,))
    x = keras.layers.Dense(16, activation="relu", name="hidden")(inp)
    x = keras.layers.BatchNormalization(name="norm")(x)
    x = keras.layers.Dropout(0.5)(x)
    model = keras.Model(inp, keras.layers.Dense(4, name="head")(x), name="mlp")
    norm = model.get_layer("norm")
    norm.moving_mean.assign(_rand(16, seed=1) * 0.1)
    norm.moving_variance.assign(np.abs(_rand(16, seed=2)) + 0.5)

    m = hlo2onnx.to_onnx(model, [("B", 8)])
    x = _rand(5, 8, seed=3)
    # inference mode: Dropout off, BatchNormalization on its moving statistics
    _check(m, [model(x, training=False)], x)
    names = _init_names(m)
    assert {"hidden.kernel", "head.kernel", "head.bias"} <= names, names
    assert not any(n.startswith("const_") for n in names), names
    assert m.graph.name == "mlp"
    assert hlo2onnx.verify(model, m, [("B", 8)])


def test_keras_model_not_built_is_explained():
    keras = pytest.importorskip("keras")
    if keras.backend.backend() != "jax":
        pytest.skip("keras was imported with another backend")
    with pytest.raises(TypeError, match="not built"):
        hlo2onnx.to_onnx(keras.Sequential([keras.layers.Dense(3)]), [(2, 4)])


def _haiku_net(x, is_training=False):
    import haiku as hk

    x = hk.Linear(16, name="hidden")(x)
    x = hk.LayerNorm(-1, True, True, name="norm")(x)
    return hk.Linear(3, name="head")(jax.nn.gelu(x))


def test_haiku_transformed_with_params():
    hk = pytest.importorskip("haiku")
    net = hk.transform(_haiku_net)
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((2, 8)))
    m = hlo2onnx.to_onnx(net, [("B", 8)], params=params)
    x = _rand(3, 8)
    _check(m, [net.apply(params, None, x)], x)
    assert {"hidden.w", "hidden.b", "head.w", "head.b"} <= _init_names(m)
    assert m.graph.name == "_haiku_net"
    # without_apply_rng: apply takes no rng
    plain = hk.without_apply_rng(net)
    m2 = hlo2onnx.to_onnx(plain, [("B", 8)], params=params)
    _check(m2, [plain.apply(params, x)], x)


def test_haiku_transformed_with_state():
    hk = pytest.importorskip("haiku")

    def f(x, is_training=False):
        x = hk.Linear(16, name="hidden")(x)
        x = hk.BatchNorm(True, True, 0.9, name="bn")(x, is_training=is_training)
        return hk.Linear(3, name="head")(jax.nn.relu(x))

    net = hk.transform_with_state(f)
    params, state = net.init(jax.random.PRNGKey(0), jnp.zeros((4, 8)), is_training=True)
    # statistics off their initial values, as after training
    state = jax.tree_util.tree_map(lambda s: s + 0.3 * jnp.abs(jnp.asarray(_rand(*s.shape))),
                                   state)
    m = hlo2onnx.to_onnx(net, [("B", 8)], params=params, state=state)
    x = _rand(5, 8)
    _check(m, [net.apply(params, state, None, x)[0]], x)
    # hidden's weights are folded with the BatchNorm's statistics into new ones
    assert "head.w" in _init_names(m)
    assert hlo2onnx.verify(net, m, [("B", 8)], params=params, state=state)
    with pytest.raises(TypeError, match="params and its state"):
        hlo2onnx.to_onnx(net, [("B", 8)], params=params)
    with pytest.raises(TypeError, match="needs its parameters"):
        hlo2onnx.to_onnx(net, [("B", 8)])


def test_nnx_bound_method_converts_as_the_module():
    from flax import nnx

    class AutoEncoder(nnx.Module):
        def __init__(self, rngs):
            self.enc = nnx.Linear(6, 3, rngs=rngs)
            self.drop = nnx.Dropout(0.5, rngs=rngs)
            self.dec = nnx.Linear(3, 6, rngs=rngs)

        def __call__(self, x):
            return self.dec(self.drop(self.encode(x)))

        def encode(self, x):
            return nnx.relu(self.drop(self.enc(x)))

    model = AutoEncoder(nnx.Rngs(0))
    m = hlo2onnx.to_onnx(model.encode, [("B", 6)])
    x = _rand(4, 6)
    _check(m, [nnx.relu(model.enc(x))], x)
    assert _init_names(m) == {"enc.kernel", "enc.bias"}
    assert m.graph.name == "AutoEncoder.encode"
    assert model.drop.deterministic is False  # the user's module is left as it was


def test_linen_and_equinox_still_convert():
    import flax.linen as linen

    class Net(linen.Module):
        @linen.compact
        def __call__(self, x):
            return linen.Dense(3)(linen.tanh(linen.Dense(5)(x)))

    net = Net()
    variables = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 4)))
    x = _rand(2, 4)
    m = hlo2onnx.to_onnx((net, variables), [("B", 4)])
    _check(m, [net.apply(variables, x)], x)
    assert "params.Dense_0.kernel" in _init_names(m)

    eqx = pytest.importorskip("equinox")
    mlp = eqx.nn.MLP(4, 2, 8, 1, key=jax.random.PRNGKey(1))
    m = hlo2onnx.to_onnx(mlp, [(4,)])
    _check(m, [mlp(x[0])], x[0])


# ---- pytrees of inputs -----------------------------------------------------------


def test_an_input_that_is_a_dict_is_flattened():
    def f(batch, scale):
        return batch["image"] * scale + batch["offset"][0]

    inputs = [{"image": ("B", 4), "offset": [(4,)]}, ()]
    m = hlo2onnx.to_onnx(f, inputs)
    names = [i.name for i in m.graph.input]
    assert len(names) == 3 and len(set(names)) == 3
    image, offset, scale = _rand(3, 4), _rand(4, seed=1), np.asarray(1.5, np.float32)
    # JAX's flattening order: the dict's keys sorted, then the next argument
    _check(m, [f({"image": image, "offset": [offset]}, scale)], image, offset, scale)
    lowered = hlo2onnx.lower_to_text(f, inputs)
    assert lowered.input_paths == [(0, "image"), (0, "offset", "0"), (1,)]
    assert hlo2onnx.verify(f, m, inputs)


def test_a_dict_of_inputs_gives_keyword_arguments():
    def f(x, *, mask):
        return jnp.where(mask > 0, x, 0.0)

    m = hlo2onnx.to_onnx(f, {"x": ("B", 3), "mask": ("B", 3)})
    assert [i.name for i in m.graph.input] == ["mask", "x"]  # JAX sorts dict keys
    x, mask = _rand(2, 3), _rand(2, 3, seed=1)
    _check(m, [f(x, mask=mask)], mask, x)
    assert hlo2onnx.verify(f, m, {"x": ("B", 3), "mask": ("B", 3)})


# ---- messages of a first try -----------------------------------------------------


def test_function_without_outputs_is_refused():
    with pytest.raises(ValueError, match=r"returns no array .it returned None."):
        hlo2onnx.to_onnx(lambda x: None, [(3,)])
    with pytest.raises(ValueError, match="returns no array"):
        hlo2onnx.to_onnx(lambda x: {}, [(3,)])


def test_static_python_argument_points_to_partial():
    def f(x, n):
        return x * n

    with pytest.raises(TypeError, match=r"Python int 5.*functools\.partial"):
        hlo2onnx.to_onnx(f, [(3,), 5])
    with pytest.raises(TypeError, match=r"missing 1 required positional argument.*functools\.partial"):
        hlo2onnx.to_onnx(f, [(3,)])

    def g(x, training):
        return x if training else -x

    with pytest.raises(TypeError, match=r"used as a Python value.*functools\.partial"):
        hlo2onnx.to_onnx(g, [(3,), ()], dtype=np.bool_)
    x = _rand(3)
    m = hlo2onnx.to_onnx(functools.partial(g, training=False), [(3,)])
    _check(m, [-x], x)


def test_lambda_over_nnx_module_with_dropout_says_what_to_do():
    from flax import nnx

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.lin = nnx.Linear(4, 3, rngs=rngs)
            self.drop = nnx.Dropout(0.5, rngs=rngs)

        def __call__(self, x):
            return self.drop(self.lin(x))

    net = Net(nnx.Rngs(0))
    with pytest.raises(TypeError, match=r"closes over.*to_onnx\(model, inputs\)") as info:
        hlo2onnx.to_onnx(lambda x: net(x), [(2, 4)])
    assert type(info.value.__cause__).__name__ == "TraceContextError"
    # the suggested call works
    x = _rand(2, 4)
    _check(hlo2onnx.to_onnx(net, [(2, 4)]), [net.lin(x)], x)


def test_misspelt_option_suggests_the_right_one():
    with pytest.raises(TypeError, match=r"unknown option 'shape_infos' \(did you mean 'shape_info'\?\)"):
        hlo2onnx.to_onnx(jnp.tanh, [(3,)], shape_infos=True)
    with pytest.raises(TypeError, match=r"unknown option 'batchsizes' \(did you mean 'batch_sizes'\?\)"):
        hlo2onnx.verify(jnp.tanh, hlo2onnx.to_onnx(jnp.tanh, [(3,)]), [(3,)], batchsizes=[1])
    with pytest.raises(TypeError, match="unknown option 'zzz';"):
        hlo2onnx.lower_to_text(jnp.tanh, [(3,)], zzz=1)


def test_jax2onnx_spellings_are_explained():
    with pytest.raises(TypeError, match=r"input_params= is jax2onnx's.*functools\.partial"):
        hlo2onnx.to_onnx(jnp.tanh, [(3,)], input_params={"deterministic": True})
    with pytest.raises(TypeError, match=r"model_name= is jax2onnx's.*graph_name="):
        hlo2onnx.to_onnx(jnp.tanh, [(3,)], model_name="m")
    with pytest.raises(TypeError, match=r"third argument is the output path.*functools\.partial"):
        hlo2onnx.to_onnx(jnp.tanh, [(3,)], {"deterministic": True})


def test_bare_shape_as_inputs_says_to_wrap_it():
    with pytest.raises(TypeError, match=r"for one input, write \[\(3, 4\)\]"):
        hlo2onnx.to_onnx(jnp.tanh, (3, 4))


# ---- verify and allclose ---------------------------------------------------------


def test_verify_runs_the_given_arrays():
    seen = []

    def f(x):
        jax.debug.callback(lambda v: seen.append(np.asarray(v)), x)
        return x * 2

    m = hlo2onnx.to_onnx(lambda x: x * 2, [np.array([[1, 2, 3]], np.int32)])
    given = np.array([[1, 2, 3]], np.int32)
    r = hlo2onnx.verify(f, m, [given])
    assert r and r.runs == 1 and r.given_inputs
    assert "1 run on the given inputs" in str(r)
    assert len(seen) == 1 and np.array_equal(seen[0], given)
    # shapes: random inputs, n draws per size
    r = hlo2onnx.verify(lambda x: x * 2, m, [(1, 3)], dtype=np.int32)
    assert r and r.runs == 3 and not r.given_inputs


def test_verify_with_an_array_of_another_dtype_says_so():
    m = hlo2onnx.to_onnx(lambda x: x * 2, [(1, 3)])
    with pytest.raises(TypeError, match="given as int32, but the model's input 'x' is float32"):
        hlo2onnx.verify(lambda x: x * 2, m, [np.array([[1, 2, 3]], np.int32)])


def test_allclose_says_why_it_fails():
    x = np.array([[1.0, 2.0, 3.0]], np.float32)
    wrong = hlo2onnx.to_onnx(lambda x: x * 2.001, [(1, 3)], output_names=["doubled"])
    r = hlo2onnx.allclose(lambda x: x * 2, wrong, [x])
    assert not r and not r.ok
    text = str(r)
    assert text.startswith("MISMATCH: 1 run on the given inputs")
    assert "output 0 'doubled' at (0, 2)" in text  # the largest difference: where
    assert "max rel diff 0.0005" in text
    assert r.max_abs_diff == pytest.approx(0.003, rel=1e-3)
    ok, message = r  # jax2onnx's (ok, message)
    assert ok is False and message == text
    right = hlo2onnx.allclose(lambda x: x * 2, hlo2onnx.to_onnx(lambda x: x * 2, [(1, 3)]), [x])
    assert right and str(right).startswith("OK")


def test_to_onnx_verify_true(tmp_path):
    from flax import nnx

    mlp = nnx.Sequential(nnx.Linear(5, 8, rngs=nnx.Rngs(0)), nnx.gelu,
                         nnx.Linear(8, 2, rngs=nnx.Rngs(1)))
    path = tmp_path / "mlp.onnx"
    m = hlo2onnx.to_onnx(mlp, [("B", 5)], path, verify=True)
    check_model(path)
    x = _rand(3, 5)
    _check(m, [mlp(x)], x)
    # a bound nothing can meet: the mismatch raises with the report
    with pytest.raises(hlo2onnx.VerificationError, match="does not match JAX") as info:
        hlo2onnx.to_onnx(lambda x: jnp.exp(jnp.sin(x) * 3.7), [(64,)], path,
                         verify={"rtol": 0.0, "atol": 0.0, "check_dtype": True})
    assert not info.value.result.ok
    assert "MISMATCH" in str(info.value)
    assert info.value.path == path and path.exists()


# ---- warnings, logging, progress --------------------------------------------------


def test_float64_input_warns():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = hlo2onnx.to_onnx(lambda x: x * 2, [np.zeros((2,), np.float64)])
    hits = [w for w in caught if issubclass(w.category, hlo2onnx.ConversionWarning)]
    assert len(hits) == 1, [str(w.message) for w in caught]
    assert "float64, which JAX computes as float32" in str(hits[0].message)
    assert hits[0].filename == __file__  # the user's line, not ours
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    x = np.arange(2, dtype=np.float32)
    _check(m, [x * 2], x)


def test_logger_reports_the_conversion(caplog, tmp_path):
    from flax import nnx

    net = nnx.Sequential(nnx.Linear(4, 8, rngs=nnx.Rngs(0)), nnx.LayerNorm(8, rngs=nnx.Rngs(1)))
    with caplog.at_level(logging.INFO, logger="hlo2onnx"):
        m = hlo2onnx.to_onnx(net, [("B", 4)], tmp_path / "n.onnx")
    text = "\n".join(r.getMessage() for r in caplog.records if r.name == "hlo2onnx")
    assert "lowered Sequential with JAX in" in text
    assert f"{len(m.graph.node)} nodes, opset 20, wrote {tmp_path / 'n.onnx'}" in text
    assert "LayerNormalization 1" in text and "Gemm 1" in text
    x = _rand(2, 4)
    _check(m, [net(x)], x)


def test_progress_lines_where_stderr_is_not_a_terminal(tmp_path, capsys):
    from flax import nnx

    net = nnx.Linear(4, 3, rngs=nnx.Rngs(0))
    hlo2onnx.to_onnx(net, [(2, 4)], tmp_path / "p.onnx", progress=True)
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("hlo2onnx: lowered Linear with JAX (")
    assert err[1].startswith(f"hlo2onnx: wrote {tmp_path / 'p.onnx'} (")
    assert len(err) == 2
    hlo2onnx.to_onnx(net, [(2, 4)], tmp_path / "q.onnx")
    assert capsys.readouterr().err == ""


def test_progress_shows_tensor_bytes_from_the_core(tmp_path):
    """A model over 64 MB: the core reports the bytes written through the
    callback (whatever stderr is); elsewhere than a terminal that is a few
    lines, on a terminal one line rewritten in place."""
    w = jnp.asarray(np.random.default_rng(0).standard_normal((4200, 4200), np.float32))
    # one-hot rows: each output element is one weight, exactly
    for tty in (False, True):
        stream = io.StringIO()
        stream.isatty = lambda tty=tty: tty
        shown = Progress(True, stream)
        lowered = hlo2onnx.lower_to_text(lambda p, x: x @ p, [(2, 4200)], params=w)
        lowered.options["progress"] = True
        lowered.options["progress_callback"] = shown.tensors
        lowered.convert(tmp_path / "big.onnx")
        shown.finish("done")
        out = stream.getvalue()
        if tty:
            assert out.count("\n") == 1 and out.count("\r") >= 2
            assert "\rhlo2onnx: writing tensors: 70/70 MB" in out
        else:
            lines = out.splitlines()
            assert 2 <= len(lines) <= 6, lines
            assert lines[-2] == "hlo2onnx: writing tensors: 70/70 MB"
            assert "\r" not in out
    x = np.zeros((2, 4200), np.float32)
    x[0, 17] = x[1, 4000] = 1.0
    np.testing.assert_allclose(run_ort(tmp_path / "big.onnx", x)[0], np.asarray(x @ w),
                               rtol=RTOL, atol=ATOL)
    check_model(tmp_path / "big.onnx")


# ---- the CLI's summary line --------------------------------------------------------


def test_cli_prints_one_summary_line(tmp_path):
    text = jax.jit(lambda x: jnp.tanh(x) * 2).lower(
        jax.ShapeDtypeStruct((4, 8), jnp.float32)).as_text()
    src = tmp_path / "f.mlir"
    src.write_text(text)
    out = tmp_path / "f.onnx"
    r = run_cli(str(src), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", r.stderr
    lines = r.stdout.splitlines()
    n_nodes = len(onnx.load(out).graph.node)
    assert lines == [f"hlo2onnx: wrote {out} ({os.path.getsize(out)} bytes, {n_nodes} nodes, "
                     "opset 20)"], lines
    r = run_cli(str(src), "-o", str(out), "-q")
    assert r.returncode == 0 and r.stdout == "" and r.stderr == ""
    x = _rand(4, 8)
    check_model(out)
    np.testing.assert_allclose(run_ort(out, x)[0], np.tanh(x) * 2, rtol=RTOL, atol=ATOL)
