"""The whole pipeline through the Python API and the CLI.

JAX function or Flax NNX module -> MLIR text (weights as arguments) -> C core
-> ONNX file, checked with onnx.checker (full_check) and numerically against
JAX with onnxruntime.  Tolerance: float32, rtol = atol = 1e-5.
"""

from __future__ import annotations

import collections

import os
import re
import threading

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import hlo2onnx
from hlo2onnx import _core
from hlo2onnx.examples.mlp import make_mlp
from util import (check_model, convert_and_check, dims_of, op_counts, op_types, opset_of,
                  run_cli, run_ort)

flax = pytest.importorskip("flax")
from flax import nnx  # noqa: E402


def mlp_param_names():
    return {"layers.0.kernel", "layers.0.bias", "layers.1.scale", "layers.1.bias",
            "layers.1.mean", "layers.1.var", "layers.4.kernel", "layers.4.bias"}


def nnx_arrays(module) -> dict[str, jax.Array]:
    """name -> array of every variable of an nnx module."""
    _, state = nnx.split(module)
    out = {}
    for path, var in nnx.to_flat_state(state):
        out[".".join(map(str, path))] = var.get_value()
    return out


# ---------------------------------------------------------------------------
# The seed's MLP (Linear -> BatchNorm -> Dropout -> exact gelu -> Linear).


def test_mlp_static_batch(tmp_path):
    mlp = make_mlp()
    path = tmp_path / "mlp.onnx"
    model = convert_and_check(mlp, [(5, 30)], path=path)
    g = model.graph
    assert [i.name for i in g.input] == ["x"]  # MLP.__call__(self, x): test_names.py
    assert [o.name for o in g.output] == ["output_0"]
    assert dims_of(g.input[0]) == [5, 30]
    assert dims_of(g.output[0]) == [5, 10]
    assert opset_of(model) == hlo2onnx.DEFAULT_OPSET
    # Dropout is gone in inference mode.
    assert "Dropout" not in op_types(model)
    # Parameters are initializers named by their paths, holding the weights.
    # The optimizer may fuse BatchNorm into the first kernel; the last kernel
    # stays as it is.
    weights = nnx_arrays(mlp)
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    np.testing.assert_array_equal(inits["layers.4.kernel"], np.asarray(weights["layers.4.kernel"]))
    # Without the fusion passes, both kernels are there untouched.
    plain = hlo2onnx.to_onnx(mlp, [(5, 30)], optimize=False)
    check_model(plain)
    inits = {t.name: numpy_helper.to_array(t) for t in plain.graph.initializer}
    for name in ("layers.0.kernel", "layers.4.kernel"):
        assert name in inits, sorted(inits)
        np.testing.assert_array_equal(inits[name], np.asarray(weights[name]))


@pytest.mark.parametrize("shape", [(5, 30), ("B", 30)], ids=["static", "dynamic"])
def test_mlp_gelu_is_one_node(shape):
    """chlo.erfc from the exact gelu is fused back into one Gelu (opset 20)."""
    model = hlo2onnx.to_onnx(make_mlp(), [shape])
    assert op_counts(model)["Gelu"] == 1, op_types(model)
    assert op_counts(model)["Erf"] == 0, op_types(model)


def test_no_constant_grows_with_the_batch():
    """Folding must not materialize broadcasts: no initializer of the static
    model may be larger than the biggest parameter (the 30x20 kernel)."""
    model = hlo2onnx.to_onnx(make_mlp(), [(64, 30)])
    sizes = {t.name: int(np.prod(t.dims)) for t in model.graph.initializer}
    assert max(sizes.values()) <= 30 * 20, sizes


def test_mlp_dynamic_batch(tmp_path):
    mlp = make_mlp()
    path = tmp_path / "mlp_dyn.onnx"
    model = convert_and_check(mlp, [("B", 30)], path=path, batch_sizes=(1, 3, 8))
    assert dims_of(model.graph.input[0]) == ["B", 30]
    assert dims_of(model.graph.output[0]) == ["B", 10]
    # The dimension variable of `lower()` is computed, not a graph input.
    assert len(model.graph.input) == 1
    # The returned model is the file, loaded without external data.
    assert onnx.load(path, load_external_data=False) == model


def test_mlp_in_memory_equals_file(tmp_path):
    mlp = make_mlp()
    # one call site: each node records the Python line that converted it
    convert = lambda path=None: hlo2onnx.to_onnx(mlp, [("B", 30)], path)  # noqa: E731
    in_memory = convert()
    from_file = convert(tmp_path / "m.onnx")
    assert in_memory == from_file
    check_model(in_memory)


def test_user_module_is_not_changed():
    mlp = make_mlp()
    before = {k: np.array(v) for k, v in nnx_arrays(mlp).items()
              if not jax.dtypes.issubdtype(v.dtype, jax.dtypes.prng_key)}
    hlo2onnx.to_onnx(mlp, [(2, 30)])
    assert mlp.layers[2].deterministic is False  # still in training mode
    assert mlp.layers[1].use_running_average is False
    after = nnx_arrays(mlp)
    for k, v in before.items():
        np.testing.assert_array_equal(np.asarray(after[k]), v)


def test_training_mode_module_converts_in_eval_mode():
    """A module in training mode still converts as inference: Dropout off,
    BatchNorm on running statistics (set here to non-trivial values)."""
    mlp = make_mlp()
    mlp.layers[1].mean.set_value(jnp.linspace(-1, 1, 20))
    mlp.layers[1].var.set_value(jnp.linspace(0.5, 2, 20))
    convert_and_check(mlp, [("B", 30)])


def test_example_script(tmp_path):
    """`python -m hlo2onnx.examples.mlp` converts, verifies and reports."""
    import subprocess
    import sys

    out = tmp_path / "example.onnx"
    proc = subprocess.run([sys.executable, "-m", "hlo2onnx.examples.mlp", "-o", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert str(out) in proc.stdout
    assert re.search(r"largest abs diff: \S+", proc.stdout)
    assert re.search(r"largest rel diff: \S+", proc.stdout)
    assert "OK: 9 runs" in proc.stdout
    check_model(out)


# ---------------------------------------------------------------------------
# Parameters: arguments in the text, initializers in the model, never copied.


def test_params_are_arguments_not_literals():
    mlp = make_mlp(din=64, dmid=256, dout=32)
    lowered = hlo2onnx.lower_to_text(mlp, [("B", 64)])
    text = lowered.text
    # No big literal: every dense<...> is a short scalar-ish constant.
    literals = re.findall(r"dense<(.*?)>\s*:", text)
    assert literals, "expected at least the small constants of BatchNorm/gelu"
    assert max(len(s) for s in literals) < 40, max(literals, key=len)
    assert 'dense<"0x' not in text
    weights_bytes = sum(b.nbytes for _, b, _ in lowered.params)
    assert weights_bytes > 64 * 256 * 4
    assert len(text) < weights_bytes / 4
    # The parameters are bound to the entry arguments after the "B" argument.
    assert [n for _, _, n in lowered.params] and \
        {n for _, _, n in lowered.params} == mlp_param_names()
    assert lowered.n_dim_args == 1
    assert [a for a, _, _ in lowered.params] == list(range(1, 1 + len(lowered.params)))
    assert lowered.options["input_dims"] == [(1 + len(lowered.params), 0, "B")]
    assert lowered.options["output_dims"] == [(0, 0, "B")]


def test_params_reach_c_without_copies():
    """The buffer handed to the C core is the JAX array's own memory."""
    mlp = make_mlp()
    arrays = nnx_arrays(mlp)
    lowered = hlo2onnx.lower_to_text(mlp, [(4, 30)])
    assert lowered.params
    for _, buf, name in lowered.params:
        addr, nbytes = _core._buffer_info(buf)
        arr = arrays[name]
        assert nbytes == arr.nbytes
        assert addr == arr.unsafe_buffer_pointer(), f"{name} was copied"


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_big_param_is_streamed_not_copied(tmp_path):
    """Converting a 64 MB weight to a file raises the peak RSS by far less
    than 64 MB: no copy in Python, in the extension, or in the core."""
    w = jax.random.normal(jax.random.key(0), (4096, 4096), jnp.float32).block_until_ready()
    lowered = hlo2onnx.lower_to_text(lambda p, x: x @ p["w"], [("B", 4096)], params={"w": w})
    assert len(lowered.text) < 4096
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak RSS to the current RSS
    before = _peak_rss_mb()
    lowered.convert(tmp_path / "big.onnx")
    grown = _peak_rss_mb() - before
    assert (tmp_path / "big.onnx.data").stat().st_size >= 4096 * 4096 * 4
    assert grown < 24, f"peak RSS grew by {grown:.0f} MB while writing a 64 MB weight"


def test_large_params_stream_to_external_data(tmp_path):
    """Weights above the threshold go to the .data file, in order, intact."""
    rngs = nnx.Rngs(0)
    model = nnx.Sequential(nnx.Linear(128, 512, rngs=rngs), nnx.relu,
                           nnx.Linear(512, 16, rngs=rngs))
    path = tmp_path / "big.onnx"
    onnx_model = convert_and_check(model, [("B", 128)], path=path, external_threshold=4096,
                                   rtol=1e-5, atol=1e-5)
    data_file = tmp_path / "big.onnx.data"
    assert data_file.exists()
    external = [t.name for t in onnx_model.graph.initializer
                if t.data_location == onnx.TensorProto.EXTERNAL]
    assert "layers.0.kernel" in external
    full = onnx.load(path)  # with the external data
    inits = {t.name: numpy_helper.to_array(t) for t in full.graph.initializer}
    np.testing.assert_array_equal(inits["layers.0.kernel"],
                                  np.asarray(model.layers[0].kernel.get_value()))


def test_params_pytree_function():
    """fn(params, x) with a params pytree (e.g. a Flax Linen `apply`)."""
    rng = np.random.default_rng(1)
    params = {"dense": {"w": rng.standard_normal((6, 4)).astype(np.float32),
                        "b": jnp.asarray(rng.standard_normal(4).astype(np.float32))},
              "scale": np.float32(0.5)}

    def fn(p, x):
        return jnp.tanh(x @ p["dense"]["w"] + p["dense"]["b"]) * p["scale"]

    model = convert_and_check(fn, [("N", 6)], params=params)
    names = {t.name for t in model.graph.initializer}
    assert "dense.w" in names, names


def test_linen_apply_with_variables():
    linen = pytest.importorskip("flax.linen")

    class Net(linen.Module):
        @linen.compact
        def __call__(self, x):
            return linen.Dense(3)(linen.relu(linen.Dense(8)(x)))

    net = Net()
    variables = net.init(jax.random.key(0), jnp.ones((1, 5)))
    model = convert_and_check(net.apply, [("B", 5)], params=variables)
    assert "params.Dense_0.kernel" in {t.name for t in model.graph.initializer}


# ---------------------------------------------------------------------------
# Plain functions with closed-over constants of every kind.


def test_function_with_constants(tmp_path):
    rng = np.random.default_rng(0)
    table = rng.standard_normal((4, 96)).astype(np.float32)  # printed as a hex blob
    nested = jnp.array([[1.0, -2.0, 0.5, 0.0], [3.0, 4.0, -0.0, 1e-30]])
    special = jnp.array([np.nan, np.inf, -np.inf, 2.0], jnp.float32)
    mask = jnp.array([True, False, False, True])
    ints = jnp.array([[1, 2, 3, 4]], jnp.int32)

    def f(x, y):
        a = x @ nested.T                        # (B, 2)
        b = jnp.where(mask, y, special)         # NaN/inf survive where mask is False
        c = y @ table                           # (B, 96) from the big constant
        d = (y * ints).sum(axis=-1)             # int constant, float result
        return a, b, c, d

    lowered = hlo2onnx.lower_to_text(f, [("B", 4), ("B", 4)])
    assert 'dense<"0x' in lowered.text, "the big constant should print as a hex blob"
    assert "0x7FC00000" in lowered.text, "NaN prints as its bit pattern"
    model = convert_and_check(f, [("B", 4), ("B", 4)], path=tmp_path / "consts.onnx")
    assert len(model.graph.output) == 4
    assert [o.name for o in model.graph.output] == ["output_0", "output_1", "output_2",
                                                      "output_3"]


def test_function_bool_and_int_inputs():
    def f(x, m, k):
        return jnp.where(m, x, -x) * k.astype(jnp.float32), m.sum(axis=-1), k + 1

    convert_and_check(f, [("B", 3), ("B", 3), ("B", 3)],
                      input_dtypes=[np.float32, np.bool_, np.int32])


def test_shared_and_distinct_symbols():
    def f(x, y):
        return x @ y, x.sum(axis=0)

    model = convert_and_check(f, [("B", "K"), ("K", 5)], batch_sizes=(2, 3, 7))
    g = model.graph
    assert dims_of(g.input[0]) == ["B", "K"]
    assert dims_of(g.input[1]) == ["K", 5]
    assert dims_of(g.output[0]) == ["B", 5]
    assert dims_of(g.output[1]) == ["K"]


def test_names_and_opset_options():
    def f(x):
        return jax.nn.gelu(x, approximate=False), jnp.exp(x)

    model = convert_and_check(f, [("B", 8)], input_names=["features"],
                              output_names=["gelu", "exp"], opset=17)
    assert [i.name for i in model.graph.input] == ["features"]
    assert [o.name for o in model.graph.output] == ["gelu", "exp"]
    assert opset_of(model) == 17
    assert "Gelu" not in op_types(model)  # Gelu arrives in opset 20


def test_shape_info_option():
    def f(x):
        return jnp.tanh(x * 2.0 + 1.0).sum(axis=-1)

    plain = convert_and_check(f, [("B", 8)])
    shaped = convert_and_check(f, [("B", 8)], shape_info=True)
    assert len(shaped.graph.value_info) >= len(plain.graph.value_info)
    if len(shaped.graph.node) > 1:
        assert len(shaped.graph.value_info) > 0


def test_shape_info_names_dynamic_dims():
    """value_info names the dims derived from the inputs' symbols (passes/
    symbolic_dims.c): "B" through elementwise ops, MatMul, Transpose and
    reductions, "50*B" where a Reshape merges B with the 50 tokens, "T" of a
    second symbol, and each named dim is checked against the sizes
    onnxruntime computes at several B and T (value_info_true)."""
    from hlo2onnx.components.examples import value_info_true

    w = np.random.default_rng(0).standard_normal((32, 16)).astype(np.float32)

    def f(x, y):
        flat = x.reshape(-1, 32) @ w                 # [50*B, 16]
        back = jnp.tanh(flat).reshape(x.shape[0], 50, 16)
        pooled = back.mean(axis=1)                   # [B, 16]
        # a broadcast to a shape computed from B: Expand(c, Concat(Shape(x)[0:1], ...))
        tokens = jnp.broadcast_to(w[:1, None, :], (x.shape[0], 1, 16)) + pooled[:, None, :]
        return pooled.T, jnp.concatenate([y, y], axis=1).max(axis=-1), tokens  # [16, B], [T]

    model = convert_and_check(f, [("B", 50, 32), ("T", 4)], shape_info=True)
    named = collections.Counter(d for vi in model.graph.value_info for d in dims_of(vi)
                                if isinstance(d, str))
    assert named["B"] > 0 and named["50*B"] > 0 and named["T"] > 0, named
    assert not [vi.name for vi in model.graph.value_info if None in dims_of(vi)]
    assert dims_of(model.graph.output[0]) == [16, "B"]
    # the broadcast to [B, 1, 16] is the Add's own: no Expand is left
    # (simplify drops an Expand whose consumer broadcasts to the same shape)
    assert "Expand" not in op_types(model)
    assert value_info_true(batch_sizes=(1, 3, 8))(model) == []


def test_shape_info_names_dims_of_a_dynamic_reshape():
    """A reshape to sizes read from another input (dynamic_reshape: a
    Reshape with allowzero=1 and a shape computed from Shape) names its
    dims too; B and T take different sizes, B = 0 included."""
    from hlo2onnx.components.examples import value_info_true

    def f(flat, x):
        b, t = x.shape
        return flat.reshape(b, t, 4).sum(axis=1) + x.sum(axis=1, keepdims=True)

    model = convert_and_check(f, [("B*T", 4), ("B", "T")], shape_info=True)
    assert ["B", "T", 4] in [dims_of(vi) for vi in model.graph.value_info]
    sizes = [dict(B=2, T=3), dict(B=1, T=5), dict(B=0, T=3)]
    assert value_info_true(size_sets=sizes)(model) == []


def test_example_array_and_shape_dtype_struct_inputs():
    x = np.ones((2, 3), np.float32)
    B, = jax.export.symbolic_shape("B")
    s = jax.ShapeDtypeStruct((B, 3), jnp.float32)
    model = convert_and_check(lambda a, b: a + b, [s, s])
    assert dims_of(model.graph.input[0]) == ["B", 3]
    convert_and_check(lambda a: a * 2, [x])


def test_conversion_runs_in_threads():
    """The GIL is released during the conversion; two threads converting at
    once both succeed."""
    mlp = make_mlp()
    results, errors = [None, None], []

    def work(i):
        try:
            results[i] = hlo2onnx.to_onnx(mlp, [("B", 30)])
        except Exception as e:  # noqa: BLE001  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert results[0] == results[1]


# ---------------------------------------------------------------------------
# verify() itself, and argument checking.


def test_verify_reports_a_mismatch():
    model = hlo2onnx.to_onnx(jnp.sin, [("B", 4)])
    result = hlo2onnx.verify(jnp.cos, model, [("B", 4)])
    assert not result.ok and not result
    assert result.max_abs_diff > 0.01
    assert "MISMATCH" in str(result) and "output 0" in str(result)
    assert not hlo2onnx.allclose(jnp.cos, model, [("B", 4)])
    good = hlo2onnx.verify(jnp.sin, model, [("B", 4)])
    assert good.ok and good.runs == 9 and "B=1" in str(good)


def test_inputs_must_be_a_list():
    with pytest.raises(TypeError, match="one entry per input"):
        hlo2onnx.to_onnx(jnp.sin, (5, 30))


# ---------------------------------------------------------------------------
# The CLI on text written by JAX: jit(...).lower() and jax.export.


def _small_model():
    rng = np.random.default_rng(3)
    w1 = rng.standard_normal((6, 8)).astype(np.float32)
    b1 = rng.standard_normal(8).astype(np.float32)
    w2 = rng.standard_normal((8, 3)).astype(np.float32)

    def f(x):
        h = jax.nn.gelu(x @ w1 + b1, approximate=False)
        return jax.nn.softmax(h @ w2, axis=-1)

    return f


@pytest.mark.parametrize("how", ["lower", "export"])
def test_cli_on_jax_text(tmp_path, how):
    f = _small_model()
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    spec = jax.ShapeDtypeStruct(x.shape, x.dtype)
    if how == "lower":
        text = jax.jit(f).lower(spec).as_text()
    else:
        text = jax.export.export(jax.jit(f))(spec).mlir_module()
    src = tmp_path / f"{how}.mlir"
    src.write_text(text)
    out = tmp_path / f"{how}.onnx"
    proc = run_cli(src, "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    check_model(out)
    (got,) = run_ort(out, x)
    np.testing.assert_allclose(got, np.asarray(f(x)), rtol=1e-5, atol=1e-5)


def test_cli_dynamic_batch_from_export(tmp_path):
    f = _small_model()
    B, = jax.export.symbolic_shape("B")
    text = jax.export.export(jax.jit(f))(jax.ShapeDtypeStruct((B, 6), jnp.float32)).mlir_module()
    src = tmp_path / "dyn.mlir"
    src.write_text(text)
    out = tmp_path / "dyn.onnx"
    proc = run_cli(src, "-o", out, "--dim", "0:0=B", "-q")
    assert proc.returncode == 0, proc.stderr
    check_model(out)
    assert dims_of(onnx.load(out).graph.input[0]) == ["B", 6]
    for n in (1, 3, 8):
        x = np.random.default_rng(n).standard_normal((n, 6)).astype(np.float32)
        (got,) = run_ort(out, x)
        np.testing.assert_allclose(got, np.asarray(f(x)), rtol=1e-5, atol=1e-5)


def test_cli_version_and_help():
    proc = run_cli("--version")
    assert proc.returncode == 0 and hlo2onnx.__version__ in proc.stdout
    proc = run_cli("--help")
    assert proc.returncode == 0 and "usage: hlo2onnx" in proc.stdout


# ---------------------------------------------------------------------------
# Errors: clean, positioned, and leaving no file behind.


def _sort_complex(x):
    # a sort of complex numbers: not lowered (complex tensors are, as real pairs)
    return jnp.sort(x).real


UNSUPPORTED = {
    # name: (function, input shape, dtype, the op the core must name)
    "sort_complex": (_sort_complex, (4, 8), np.complex64, "stablehlo.sort"),
}


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_unsupported_op_is_reported_with_position(tmp_path, case):
    fn, shape, dtype, opname = UNSUPPORTED[case]
    path = tmp_path / f"{case}.onnx"
    mlir = tmp_path / f"{case}.mlir"
    with pytest.raises(hlo2onnx.UnsupportedOpError) as info:
        hlo2onnx.to_onnx(fn, [shape], path, dtype=dtype, save_mlir=mlir)
    err = info.value
    assert isinstance(err, hlo2onnx.ConversionError) and isinstance(err, ValueError)
    assert err.status == 3
    assert opname in err.ops, err.messages
    # the error leads with the Python line (as test_names.py checks), then the op's
    # position in the saved text
    assert re.match(re.escape(__file__) + r":\d+: error: .*" + re.escape(opname), err.messages), \
        err.messages
    m = re.search(re.escape(str(mlir)) + r":(\d+):(\d+): the op in the lowered MLIR text",
                  err.messages)
    assert m, err.messages
    line = mlir.read_text().splitlines()[int(m.group(1)) - 1]
    assert opname in line[int(m.group(2)) - 1:], line
    assert list(tmp_path.iterdir()) == [mlir], "no output (or temporary) file may remain"


def test_unsupported_op_default_source_name():
    with pytest.raises(hlo2onnx.UnsupportedOpError) as info:
        hlo2onnx.to_onnx(_sort_complex, [(4, 8)], dtype=np.complex64)
    assert re.match(re.escape(__file__) + r":\d+: error: .*stablehlo\.sort", info.value.messages), \
        info.value.messages
    assert re.search(r"<jit__sort_complex>:\d+:\d+: the op in the lowered MLIR text",
                     info.value.messages), \
        info.value.messages
    assert str(info.value).startswith("unsupported (status 3")


def test_custom_call_is_unsupported_not_malformed():
    """A LAPACK custom_call that ONNX cannot express (the Schur decomposition,
    gees, on the CPU; eigh and the other decompositions convert: lower/
    lapack_decomp.c) is valid input: status 3 naming the op, not a parse
    error on its attributes (`dense<[0, 1]> : tensor<2xindex>` in
    operand_layouts)."""
    import jax.scipy.linalg

    with pytest.raises(hlo2onnx.UnsupportedOpError) as info:
        hlo2onnx.to_onnx(lambda x: jax.scipy.linalg.schur(x @ x.T)[0], [(4, 4)])
    assert "stablehlo.custom_call" in info.value.messages, info.value.messages


@pytest.mark.parametrize("case", sorted(UNSUPPORTED))
def test_unsupported_op_cli(tmp_path, case):
    fn, shape, dtype, opname = UNSUPPORTED[case]
    src = tmp_path / f"{case}.mlir"
    src.write_text(jax.jit(fn).lower(jax.ShapeDtypeStruct(shape, dtype)).as_text())
    out = tmp_path / f"{case}.onnx"
    proc = run_cli(src, "-o", out, "-q")
    assert proc.returncode == 3, proc.stderr
    assert re.search(re.escape(str(src)) + r":\d+:\d+: error: .*" + re.escape(opname),
                     proc.stderr), proc.stderr
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [src.name]


MALFORMED = {
    "truncated": ("module @m {\n  func.func public @main(%arg0: tensor<2xf32>) -> tensor<2xf32> {\n"
                  "    %0 = stablehlo.add %arg0, %arg0 : tensor<2xf32>\n"),
    "bad_type": ("module @m {\n  func.func public @main(%arg0: tensor<2xf33>) -> tensor<2xf32> {\n"
                 "    return %arg0 : tensor<2xf32>\n  }\n}\n"),
    "undefined_value": ("module @m {\n  func.func public @main(%arg0: tensor<2xf32>) -> tensor<2xf32> {\n"
                        "    %0 = stablehlo.add %arg0, %nope : tensor<2xf32>\n"
                        "    return %0 : tensor<2xf32>\n  }\n}\n"),
    "garbage": "this is not MLIR @@@ {",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_text_gives_positions(tmp_path, name):
    text = MALFORMED[name]
    out = tmp_path / "bad.onnx"
    with pytest.raises(hlo2onnx.InputError) as info:
        _core.convert(text, [], str(out), {"source_name": "bad.mlir"})
    assert info.value.status == 2
    m = re.search(r"bad\.mlir:(\d+):(\d+): error: ", info.value.messages)
    assert m, info.value.messages
    assert 1 <= int(m.group(1)) <= text.count("\n") + 1
    assert not out.exists()
    # The same through the CLI: exit code 2, the position on stderr.
    src = tmp_path / "bad.mlir"
    src.write_text(text)
    proc = run_cli(src, "-o", out, "-q")
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert re.search(re.escape(str(src)) + r":\d+:\d+: error: ", proc.stderr), proc.stderr
    assert not out.exists()


def test_bad_option_is_a_usage_error():
    text = jax.jit(jnp.sin).lower(jax.ShapeDtypeStruct((2,), jnp.float32)).as_text()
    with pytest.raises(hlo2onnx.ConversionError) as info:
        _core.convert(text, [], None, {"opset": 3})
    assert info.value.status == 1 and isinstance(info.value, hlo2onnx.UsageError)


def test_opset_zero_is_the_default():
    """hlo2onnx.h documents opset 0 as the default (H2O_DEFAULT_OPSET): the
    same model as no opset and as the default spelled out."""
    fn = lambda x: jax.nn.gelu(x, approximate=False) * 2  # noqa: E731
    model = convert_and_check(fn, [("B", 6)], opset=0)
    assert opset_of(model) == hlo2onnx.DEFAULT_OPSET == _core.DEFAULT_OPSET
    same = [hlo2onnx.to_onnx(fn, [("B", 6)], **kw).SerializeToString()
            for kw in ({}, {"opset": hlo2onnx.DEFAULT_OPSET})]
    assert same == [model.SerializeToString()] * 2
    for bad in (16, 24):
        with pytest.raises(hlo2onnx.UsageError, match=f"opset {bad} is not supported"):
            hlo2onnx.to_onnx(fn, [("B", 6)], opset=bad)


def test_cli_opset_zero_is_the_default(tmp_path):
    """--opset 0 means the default opset, as in the C API and to_onnx; a
    negative one is a usage error."""
    src = tmp_path / "f.mlir"
    src.write_text(jax.jit(jnp.sin).lower(jax.ShapeDtypeStruct((2,), jnp.float32)).as_text())
    written = []
    for i, extra in enumerate((["--opset", "0"], [])):
        out = tmp_path / f"f{i}.onnx"
        proc = run_cli(src, "-o", out, "-q", *extra)
        assert proc.returncode == 0, proc.stderr
        check_model(str(out))
        written.append(out.read_bytes())
    assert written[0] == written[1]
    assert opset_of(onnx.load(tmp_path / "f0.onnx")) == hlo2onnx.DEFAULT_OPSET
    proc = run_cli(src, "-o", tmp_path / "g.onnx", "-q", "--opset", "-1")
    assert proc.returncode == 1 and "bad --opset value" in proc.stderr


@pytest.mark.parametrize("spec", ["4294967296:0=B", "0:2147483648=B",
                                  "0:99999999999999999999999=B"])
def test_cli_dim_beyond_int_is_a_usage_error(tmp_path, spec):
    """--dim ARG and AXIS are ints in h2o_dim_name: a larger value was cut
    to its low bits (4294967296 named argument 0)."""
    src, out = tmp_path / "f.mlir", tmp_path / "f.onnx"
    src.write_text(jax.jit(jnp.sin).lower(jax.ShapeDtypeStruct((2,), jnp.float32)).as_text())
    proc = run_cli(src, "-o", out, "-q", "--dim", spec)
    assert proc.returncode == 1, proc.stderr
    assert f"bad --dim '{spec}': ARG and AXIS must be at most 2147483647" in proc.stderr
    assert not out.exists()


def test_write_error_is_an_io_error(tmp_path):
    with pytest.raises(hlo2onnx.ConversionIOError):
        hlo2onnx.to_onnx(jnp.sin, [(2,)], tmp_path / "no" / "such" / "dir" / "m.onnx")


def test_param_size_mismatch_is_reported():
    text = jax.jit(lambda w, x: x @ w).lower(jax.ShapeDtypeStruct((3, 2), jnp.float32),
                                              jax.ShapeDtypeStruct((1, 3), jnp.float32)).as_text()
    with pytest.raises(hlo2onnx.ConversionError):
        _core.convert(text, [(0, np.zeros(5, np.float32), "w")], None, {})
