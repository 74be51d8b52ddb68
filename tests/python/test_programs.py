"""Whole programs: control flow, masks and indexing, random numbers, mixed
precision, several symbolic dimensions, and models from other libraries.

Each case of the table is a JAX program converted with hlo2onnx.to_onnx,
checked with onnx.checker (full_check) and against JAX with onnxruntime
(float32: rtol = atol = 1e-5 unless the case says why; integers and
booleans exactly; output dtypes must be JAX's).  Symbolic dimensions run at
batch sizes 1, 3 and 8 - with two symbols, three (B, T) pairs, no two
equal.  A case may state ONNX op counts (``ops``: op_type -> count, over
the main graph and its subgraphs; 0 = absent) and a ``check`` on the model.

How control flow converts (src/lower/control.c, src/lower/scan.c):
``while`` -> Loop; ``if`` -> If; ``case`` -> a chain of Ifs; calls are
inlined.  Of the values a while loop carries, those the body returns
unchanged (the ``xs`` of lax.scan: a stack of layer weights) are read from
the enclosing graph, and the buffers of lax.scan's stacked outputs
(``ys``, written one row per iteration) become Loop scan outputs, so that no
iteration copies them.

Decisions documented here:
  * Dropout: an nnx.Module or equinox.Module is converted in inference mode
    (Dropout off), whatever mode it is in.  A forward pass in training mode,
    written as a function of the model state, converts as it is: the mask
    comes from JAX's counter-based PRNG on the key in the state, computed in
    the graph, so the model is deterministic and equals JAX for that state.
  * Types onnxruntime cannot compute with (2/4/6-bit types, float8
    outside Cast, float8 kinds ONNX lacks) are errors naming the type and
    the op (UnsupportedOpError).
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import pytest
from jax import lax

import hlo2onnx
from util import (Case, assert_op_counts, check_model, convert_and_check, dims_of, op_counts,
                  run_cli, run_ort)

I32 = jax.ShapeDtypeStruct((), jnp.int32)


def of(dtype, *shape):
    return jax.ShapeDtypeStruct(shape, dtype)


def weights(*shape, seed=0, scale=0.3):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def ints_in(lo, hi, *, only=None):
    """An input_generator: integers in [lo, hi) for the inputs `only` (all
    integer inputs when None), normal floats otherwise."""
    def gen(rng, shape, dtype, index):
        dt = np.dtype(dtype)
        if dt.kind in "iu" and (only is None or index in only):
            return rng.integers(lo, hi, size=shape).astype(dt)
        if dt.kind == "b":
            return rng.random(shape) < 0.5
        return rng.standard_normal(shape).astype(dt)
    return gen


# ---------------------------------------------------------------------------
# Programs with loops.

LAYERS = weights(4, 8, 8)


def scan_layers(x):
    """lax.scan over a stack of layers; per-layer outputs stacked (ys)."""
    def layer(h, w):
        h = jnp.tanh(h @ w)
        return h, h.sum(-1)
    return lax.scan(layer, x, LAYERS)


def scan_layers_reverse(x):
    def layer(h, w):
        h = jnp.tanh(h @ w) + h
        return h, h
    return lax.scan(layer, x, LAYERS, reverse=True)


def scan_two_ys(x):
    """Two stacked outputs of one shape: JAX writes both with one function."""
    def layer(h, w):
        h = jnp.tanh(h @ w)
        return h, (h, 2 * h)
    return lax.scan(layer, x, LAYERS)


def scan_no_xs(x):
    def step(c, _):
        return c * 0.5 + 1.0, c.sum()
    return lax.scan(step, x, None, length=5)


def scan_ys_read_back(x):
    """ys is written and also read inside the loop: it stays carried."""
    def body(i, carry):
        h, buf = carry
        h = jnp.tanh(h @ LAYERS[0]) + buf.sum()
        return h, lax.dynamic_update_index_in_dim(buf, h[0], i, 0)
    buf = jnp.zeros((4, 8), jnp.float32)
    return lax.fori_loop(0, 4, body, (x, buf))


def block_params():
    rng = np.random.default_rng(7)
    L, D = 3, 8
    return {
        "wq": rng.standard_normal((L, D, D)).astype(np.float32) * 0.3,
        "wk": rng.standard_normal((L, D, D)).astype(np.float32) * 0.3,
        "wv": rng.standard_normal((L, D, D)).astype(np.float32) * 0.3,
        "w1": rng.standard_normal((L, D, 16)).astype(np.float32) * 0.3,
        "w2": rng.standard_normal((L, 16, D)).astype(np.float32) * 0.3,
        "scale": (1 + 0.1 * rng.standard_normal((L, D))).astype(np.float32),
    }


def transformer_stack(p, x):
    """A pre-norm attention + MLP block, scanned over 3 layers of weights
    (initializers); LayerNorm, softmax and gelu inside the Loop body."""
    def block(h, w):
        mu = h.mean(-1, keepdims=True)
        var = ((h - mu) ** 2).mean(-1, keepdims=True)
        n = (h - mu) / jnp.sqrt(var + 1e-5) * w["scale"]
        q, k, v = n @ w["wq"], n @ w["wk"], n @ w["wv"]
        a = jax.nn.softmax(q @ jnp.swapaxes(k, -1, -2) / np.sqrt(8.0), axis=-1)
        h = h + a @ v
        h = h + jax.nn.gelu(h @ w["w1"], approximate=False) @ w["w2"]
        return h, None
    return lax.scan(block, x, p)[0]


def fori_dynamic_trip(x, n):
    """fori_loop with a trip count from an input: a while loop."""
    return lax.fori_loop(0, n, lambda i, h: h * 0.5 + i.astype(jnp.float32), x)


def while_data_dependent(x):
    """Halve until the norm drops below 1: the trip count depends on x."""
    def cond(c):
        return jnp.sum(c[0] ** 2) > 1.0
    def body(c):
        return c[0] * 0.5, c[1] + 1
    return lax.while_loop(cond, body, (x * 10.0, jnp.int32(0)))


def newton_sqrt(x):
    def cond(c):
        y, i = c
        return jnp.logical_and(jnp.max(jnp.abs(y * y - x)) > 1e-4, i < 50)
    def body(c):
        y, i = c
        return 0.5 * (y + x / y), i + 1
    return lax.while_loop(cond, body, (jnp.ones_like(x), 0))


def cond_two_outputs(x):
    return lax.cond(x.sum() > 0, lambda v: (v * 2, v.max()), lambda v: (-v, v.min()), x)


def cond_mixed_types(x, k):
    return lax.cond(k > 2, lambda v, k: (v + 1.0, k * 2), lambda v, k: (v - 1.0, k - 1), x, k)


def switch3(x, i):
    return lax.switch(i, [lambda v: v + 1, lambda v: v * 2, jnp.sin], x)


def cond_in_scan(x):
    def layer(h, w):
        h = lax.cond(h.sum() > 0, lambda a: jnp.tanh(a @ w), lambda a: a - 1, h)
        return h, h.max()
    return lax.scan(layer, x, LAYERS)


def scan_in_scan(x):
    def inner(h, w):
        return jnp.tanh(h @ w), h.sum()
    def outer(h, _):
        h, ys = lax.scan(inner, h, LAYERS)
        return h, ys
    return lax.scan(outer, x, None, length=3)


def while_in_cond(x):
    def loop(v):
        return lax.while_loop(lambda c: c.sum() < 100.0, lambda c: c * 2 + 1, v)
    return lax.cond(x.sum() > 0, loop, lambda v: v, jnp.abs(x) + 0.1)


def switch_in_fori(x):
    def body(i, h):
        return lax.switch(i % 3, [lambda v: v + 1, lambda v: v * 0.5, jnp.cos], h)
    return lax.fori_loop(0, 7, body, x)


@jax.jit
def _block(h):
    return jnp.tanh(h @ LAYERS[1]) + 0.1


def called_many_times(x):
    """One jitted function, six calls here and one more inside a scan."""
    for _ in range(6):
        x = _block(x)
    return lax.scan(lambda h, _: (_block(h), None), x, None, length=2)[0]


def sampling_loop(x):
    """Draw 4 categorical samples with a fixed key, one per iteration."""
    def body(i, c):
        key, counts = c
        key, sub = jax.random.split(key)
        s = jax.random.categorical(sub, counts * 0.5 + x, axis=-1)
        return key, counts + jax.nn.one_hot(s, x.shape[-1])
    return lax.fori_loop(0, 4, body, (jax.random.key(0), jnp.zeros_like(x)))[1]


def sample_with_key(key_data, logits):
    """Sampling with the key as a model input (uint32 key data)."""
    key = jax.random.wrap_key_data(key_data)
    return jax.random.categorical(key, logits, axis=-1), jax.random.uniform(key, logits.shape)


# ---------------------------------------------------------------------------
# Indexing, masks, sorting.


def masked_mean(x, mask):
    m = mask.astype(x.dtype)
    return (x * m).sum(-1) / jnp.maximum(m.sum(-1), 1.0)


def masked_updates(x):
    """x.at[mask].set(v) written with where (boolean indexing with a traced
    mask has no static shape in JAX), plus static and dynamic .at updates."""
    y = jnp.where(x < 0, 0.5, x)
    y = y.at[:, 2].set(-1.0)
    return y.at[0].add(x[-1]), jnp.where(x > 1, x, 0)


def dynamic_at(x, i):
    return x.at[i].set(0.0), x.at[i].add(1.0), x[i]


def positions_from_mask(mask):
    """Token positions from a padding mask: a cumulative sum along T."""
    m = mask.astype(jnp.int32)
    return jnp.cumsum(m, axis=1) * m - 1


PROGRAMS = [
    Case("scan_layers", scan_layers, [("B", 8)], ops={"Loop": 1, "ScatterND": 0}),
    Case("scan_layers_reverse", scan_layers_reverse, [("B", 8)], ops={"Loop": 1, "ScatterND": 0}),
    Case("scan_two_ys", scan_two_ys, [("B", 8)], ops={"Loop": 1, "ScatterND": 0}),
    Case("scan_no_xs", scan_no_xs, [("B", 3)], ops={"Loop": 1, "ScatterND": 0}),
    Case("scan_ys_read_back", scan_ys_read_back, [(4, 8)], ops={"Loop": 1}),
    Case("transformer_stack", transformer_stack, [("B", "T", 8)],
         dict(params=block_params(), rtol=1e-4, atol=1e-4), ops={"Loop": 1}),
    Case("fori_loop", lambda x: lax.fori_loop(0, 5, lambda i, h: h * 0.9 + i, x), [("B", 4)],
         ops={"Loop": 1}),
    Case("fori_dynamic_trip", fori_dynamic_trip, [("B", 4), I32],
         dict(input_generator=ints_in(0, 6)), ops={"Loop": 1}),
    Case("while_data_dependent", while_data_dependent, [(5,)], ops={"Loop": 1}),
    Case("newton_sqrt", newton_sqrt, [("B",)],
         dict(input_generator=lambda rng, s, dt, i: rng.uniform(0.5, 4.0, s).astype(dt)),
         ops={"Loop": 1}),
    Case("cond", lambda x: lax.cond(x.sum() > 0, lambda v: v * 2, lambda v: -v, x), [("B", 4)],
         ops={"If": 1}),
    Case("cond_two_outputs", cond_two_outputs, [("B", 4)], ops={"If": 1}),
    Case("cond_mixed_types", cond_mixed_types, [(3,), I32], dict(input_generator=ints_in(0, 5)),
         ops={"If": 1}),
    # Index -2..5 for 3 branches: lax.switch clamps it (as XLA does for case).
    Case("switch", switch3, [("B", 4), I32], dict(input_generator=ints_in(-2, 6)),
         ops={"If": 2}),
    Case("cond_in_scan", cond_in_scan, [("B", 8)], ops={"Loop": 1, "If": 1}),
    Case("scan_in_scan", scan_in_scan, [("B", 8)], ops={"Loop": 2, "ScatterND": 0}),
    Case("while_in_cond", while_in_cond, [(6,)], ops={"If": 1, "Loop": 1}),
    Case("switch_in_fori", switch_in_fori, [("B", 3)], ops={"Loop": 1, "If": 2}),
    Case("called_many_times", called_many_times, [("B", 8)], ops={"Tanh": 7, "Loop": 1}),
    # (JAX's threefry has loops of its own: no op counts)
    Case("sampling_loop", sampling_loop, [("B", 6)]),
    Case("sample_with_key", sample_with_key, [of(jnp.uint32, 2), ("B", 5)],
         dict(input_generator=lambda rng, s, dt, i: (rng.integers(0, 2**32, s, dtype=np.uint64)
                                                     .astype(dt) if i == 0 else
                                                     rng.standard_normal(s).astype(dt)))),
    # Indexing and masks.
    Case("argmax", lambda x: (jnp.argmax(x, -1), jnp.argmin(x, 0)), [("B", 7)]),
    Case("cumsum", lambda x: (jnp.cumsum(x, 0), jnp.cumsum(x, 1), lax.cumsum(x, 0, reverse=True)),
         [("B", 5)], dict(rtol=1e-5, atol=1e-5)),
    Case("positions_from_mask", positions_from_mask, [("B", "T")],
         dict(input_dtypes=[np.bool_])),
    Case("take", lambda x, i: (jnp.take(x, i, axis=0), jnp.take(x, i, axis=1, mode="clip")),
         [(6, 6), ("K",)], dict(input_dtypes=[np.float32, np.int32],
                                input_generator=ints_in(0, 6))),
    Case("take_along_axis", lambda x: jnp.take_along_axis(x, jnp.argsort(x, -1)[:, :2], -1),
         [("B", 5)]),
    Case("where", lambda x, y: jnp.where(x > y, x, y * 2), [("B", 4), ("B", 4)]),
    Case("masked_mean", masked_mean, [("B", "T"), ("B", "T")],
         dict(input_dtypes=[np.float32, np.bool_])),
    Case("masked_updates", masked_updates, [("B", 4)]),
    Case("dynamic_at", dynamic_at, [(5, 3), I32], dict(input_generator=ints_in(-6, 6))),
    Case("boolean_mask_count", lambda x: ((x > 0).sum(-1), (x > 0).any(-1), (x > 0).all(0)),
         [("B", 4)]),
    # Slices along symbolic axes: dynamic_gather with run-time sizes.
    Case("shift_along_t", lambda x: x[:, 1:] - x[:, :-1], [("B", "T")],
         dict(shape_constraints=["T >= 1"])),
    Case("first_half", lambda x: x[: x.shape[0] // 2] + x[x.shape[0] // 2: 2 * (x.shape[0] // 2)],
         [("B", 3)]),
    Case("dynamic_slice_along_t", lambda x, i: lax.dynamic_slice_in_dim(x, i, 2, axis=1),
         [("B", "T"), I32], dict(shape_constraints=["T >= 2"], batch_sizes=(2, 3, 8),
                                 input_generator=ints_in(-3, 9))),
    Case("sort", lambda x: (jnp.sort(x, -1), jnp.argsort(x, 0)), [("B", 5)]),
    Case("top_k", lambda x: lax.top_k(x, 3), [("B", 6)]),
]


@pytest.mark.parametrize("case", PROGRAMS, ids=lambda c: c.name)
def test_program(case):
    model = convert_and_check(case.fn, case.inputs, **case.kw)
    if case.ops is not None:
        assert_op_counts(model, case.ops)
    if case.check is not None:
        case.check(model)


# ---------------------------------------------------------------------------
# How loops are built: nothing copied per iteration.


def _loops(model):
    return [n for n in model.graph.node if n.op_type == "Loop"]


def test_scan_reads_xs_from_outside_and_stacks_ys():
    """The stack of layers is no loop-carried value (the body reads it from
    the main graph); ys is a scan output: Loop has the counter and h as
    carried values, and one scan output."""
    model = hlo2onnx.to_onnx(scan_layers, [("B", 8)])
    (loop,) = _loops(model)
    body = next(a.g for a in loop.attribute if a.name == "body")
    carried = len(loop.input) - 2
    assert carried == 2, list(loop.input)
    assert len(body.output) == 1 + carried + 1
    assert len(loop.output) == carried + 1
    stack = [t.name for t in model.graph.initializer if list(t.dims) == [4, 8, 8]]
    assert stack and stack[0] not in loop.input
    # the zero-filled initial buffer of ys is gone with the ScatterND
    assert op_counts(model)["ScatterND"] == 0
    assert dims_of(model.graph.output[1]) == [4, "B"]


def test_long_scan_runs_in_linear_time():
    """2000 layers of 32x32: with carried copies of the 8 MB stack and of the
    ys buffer this took seconds; reading them in place, milliseconds."""
    import time

    import onnxruntime as ort

    stack = weights(2000, 32, 32, scale=0.1)

    def f(x):
        return lax.scan(lambda h, w: (jnp.tanh(h @ w), h), x, stack)

    model = hlo2onnx.to_onnx(f, [(4, 32)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((4, 32)).astype(np.float32)
    sess.run(None, {"x": x})  # the input is named after f's parameter
    t = time.perf_counter()
    h, ys = sess.run(None, {"x": x})
    elapsed = time.perf_counter() - t
    want_h, want_ys = jax.jit(f)(x)
    np.testing.assert_allclose(h, want_h, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ys, want_ys, rtol=1e-5, atol=1e-5)
    assert elapsed < 2.0, f"{elapsed:.2f} s for 2000 iterations"


def test_switch_out_of_range_index_takes_last_branch(tmp_path):
    """stablehlo.case itself (without JAX's clamp) sends an index outside
    [0, n) to the last branch, as XLA does."""
    text = """
module @m {
  func.func public @main(%x: tensor<3xf32>, %i: tensor<i32>) -> tensor<3xf32> {
    %r = "stablehlo.case"(%i) ({
      %a = stablehlo.add %x, %x : tensor<3xf32>
      stablehlo.return %a : tensor<3xf32>
    }, {
      %b = stablehlo.multiply %x, %x : tensor<3xf32>
      stablehlo.return %b : tensor<3xf32>
    }, {
      %c = stablehlo.negate %x : tensor<3xf32>
      stablehlo.return %c : tensor<3xf32>
    }) : (tensor<i32>) -> tensor<3xf32>
    return %r : tensor<3xf32>
  }
}
"""
    src = tmp_path / "case.mlir"
    src.write_text(text)
    out = tmp_path / "case.onnx"
    proc = run_cli(src, "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    check_model(out)
    x = np.array([1.0, -2.0, 3.0], np.float32)
    for i, want in [(0, x + x), (1, x * x), (2, -x), (3, -x), (7, -x), (-1, -x)]:
        (got,) = run_ort(out, x, np.array(i, np.int32))
        np.testing.assert_array_equal(got, want, err_msg=f"index {i}")


# ---------------------------------------------------------------------------
# Mixed precision: each tensor keeps its JAX dtype.


def _mixed_params():
    rng = np.random.default_rng(0)
    return {"w1": jnp.asarray(rng.standard_normal((8, 16)) * 0.3, jnp.bfloat16),
            "w2": jnp.asarray(rng.standard_normal((16, 4)) * 0.3, jnp.float16)}


def _mixed(p, x):
    h = jnp.dot(x.astype(jnp.bfloat16), p["w1"], preferred_element_type=jnp.float32)
    h = jax.nn.relu(h)
    y = jnp.dot(h.astype(jnp.float16), p["w2"], preferred_element_type=jnp.float32)
    return y, y.astype(jnp.float16), h.astype(jnp.bfloat16)


def test_mixed_precision_keeps_dtypes():
    """bf16 and f16 weights with f32 accumulation: the initializers stay
    bf16/f16, outputs are f32, f16 and bf16 as in JAX."""
    T = onnx.TensorProto
    model = hlo2onnx.to_onnx(_mixed, [("B", 8)], params=_mixed_params())
    check_model(model)
    assert [o.type.tensor_type.elem_type for o in model.graph.output] == \
        [T.FLOAT, T.FLOAT16, T.BFLOAT16]
    inits = {t.name: t.data_type for t in model.graph.initializer}
    assert inits["w1"] == T.BFLOAT16 and inits["w2"] == T.FLOAT16, inits
    # onnxruntime's Python API cannot return bfloat16 arrays: the numbers
    # are checked on the f32 and f16 outputs (f16 rounding: 1e-2).
    convert_and_check(lambda p, x: _mixed(p, x)[:2], [("B", 8)], params=_mixed_params(),
                      rtol=1e-2, atol=1e-2)


def test_f16_program_stays_f16():
    def f(x):
        h = lax.scan(lambda h, w: (jnp.tanh(h @ w), None), x, LAYERS.astype(np.float16))[0]
        return h, jnp.argmax(h, -1)
    model = convert_and_check(f, [("B", 8)], dtype=np.float16, rtol=1e-2, atol=1e-2)
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16


# ---------------------------------------------------------------------------
# Several symbolic dimensions.

W_BT = weights(8, 16, seed=5)


def bt_program(x, mask):
    """(B, T, 8) -> reshape to (B*T, 8) -> dense -> back to (B, T, 16);
    a masked mean over T and a cumulative sum along T."""
    B, T, D = x.shape
    h = jax.nn.relu(x.reshape(B * T, D) @ W_BT).reshape(B, T, 16)
    m = mask.astype(h.dtype)[..., None]
    pooled = (h * m).sum(1) / jnp.maximum(m.sum(1), 1.0)
    return h.mean(-1), pooled, jnp.cumsum(h[..., 0] * m[..., 0], axis=1)


def test_symbolic_b_and_t():
    model = convert_and_check(bt_program, [("B", "T", 8), ("B", "T")],
                              input_dtypes=[np.float32, np.bool_], batch_sizes=(1, 2, 5, 7))
    g = model.graph
    assert dims_of(g.input[0]) == ["B", "T", 8]
    assert dims_of(g.input[1]) == ["B", "T"]
    assert [dims_of(o) for o in g.output] == [["B", "T"], ["B", 16], ["B", "T"]]
    # B*T and the shapes back are computed in the graph from the inputs.
    assert op_counts(model)["Shape"] >= 1
    assert len(g.input) == 2  # no dimension variable became an input


def test_symbolic_product_dim_input():
    """An input of dimension "B*T" beside one of ("B", "T")."""
    def f(x, y):
        B, T = x.shape
        return x.reshape(B * T) + y[:, 0], y.reshape(B, T, 3).sum(1)
    model = convert_and_check(f, [("B", "T"), ("B*T", 3)])
    assert dims_of(model.graph.input[1]) == ["B*T", 3]
    assert dims_of(model.graph.output[1]) == ["B", 3]


# Inputs whose dimensions are expressions of a symbol that no input has on
# its own: jit passes B to the module as a dimension variable, which the
# graph computes from the input dimension, B = (dim - c) / a.  The graph
# inputs and outputs carry the expressions as JAX prints them.
EXPRESSION_DIM_CASES = [
    ("2*B", lambda x: jnp.sin(x) * 2.0 + x.shape[0], [("2*B", 3)], [["2*B", 3]], [["2*B", 3]]),
    ("B+1", lambda x: jnp.cumsum(x, axis=0) / x.shape[0], [("B+1", 3)], [["B + 1", 3]],
     [["B + 1", 3]]),
    ("2*B+1 reshaped", lambda x: x[1:].reshape(-1, 2, 3).sum(1), [("2*B+1", 3)],
     [["2*B + 1", 3]], [["B", 3]]),
    ("B-1 and 3*B", lambda x, y: (x.sum(0) + y.reshape(3, -1, 2).mean((0, 1)).sum(),
                                  jnp.concatenate([x, y[:x.shape[0]]], axis=0)),
     [("B-1", 2), ("3*B", 2)], [["B - 1", 2], ["3*B", 2]], [[2], ["2*B - 2", 2]]),
    ("B*4 with T", lambda x, y: x.reshape(-1, 4, x.shape[1]).sum(1) @ y,
     [("B*4", "T"), ("T", 5)], [["4*B", "T"], ["T", 5]], [["B", 5]]),
]


@pytest.mark.parametrize("name,fn,inputs,in_dims,out_dims", EXPRESSION_DIM_CASES,
                         ids=[c[0] for c in EXPRESSION_DIM_CASES])
def test_expression_dims_in_inputs(name, fn, inputs, in_dims, out_dims):
    # the sizes B takes: every expression is >= 1 there
    model = convert_and_check(fn, inputs, batch_sizes=(2, 3, 8))
    g = model.graph
    assert [dims_of(i) for i in g.input] == in_dims
    assert [dims_of(o) for o in g.output] == out_dims
    assert len(g.input) == len(inputs)  # B is computed, not an input


def test_expression_dim_via_cli_option(tmp_path):
    """The same through the CLI: --dim 0:0=2*B names the input dimension and
    the dimension variable B is computed from it."""
    text = hlo2onnx.lower_to_text(lambda x: jnp.tanh(x) * x.shape[0], [("2*B", 3)]).text
    src = tmp_path / "t.mlir"
    src.write_text(text)
    out = tmp_path / "t.onnx"
    proc = run_cli(src, "-o", out, "-q")
    assert proc.returncode == 1 and "dimension variable 'B'" in proc.stderr, proc.stderr
    proc = run_cli(src, "-o", out, "-q", "--dim", "1:0=2*B")
    assert proc.returncode == 0, proc.stderr
    check_model(out)
    model = onnx.load(out)
    assert dims_of(model.graph.input[0]) == ["2*B", 3]
    for b in (1, 4, 7):
        x = np.random.default_rng(b).standard_normal((2 * b, 3)).astype(np.float32)
        (got,) = run_ort(out, x)
        np.testing.assert_allclose(got, np.tanh(x) * 2 * b, rtol=1e-5, atol=1e-5)


def _export_program(x, m):
    def step(h, w):
        h = jnp.tanh(h @ w)
        return h, h.mean(-1)
    h, ys = lax.scan(step, x, LAYERS)
    pos = jnp.cumsum(m, axis=1)
    return jnp.where(m > 0, h.sum(-1) + pos, 0.0), ys


def test_jax_export_with_symbolic_dims_via_cli(tmp_path):
    """jax.export: @main computes B and T with get_dimension_size and calls
    @_wrapped_jax_export_main.  The graph inputs get the dimension names B
    and T, and the Python names x and m, without --dim."""
    B, T = jax.export.symbolic_shape("B, T")
    exp = jax.export.export(jax.jit(_export_program))(of(jnp.float32, B, T, 8),
                                                      of(jnp.float32, B, T))
    src = tmp_path / "prog.mlir"
    src.write_text(exp.mlir_module())
    out = tmp_path / "prog.onnx"
    proc = run_cli(src, "-o", out, "-q")
    assert proc.returncode == 0, proc.stderr
    check_model(out)
    model = onnx.load(out)
    assert [(i.name, dims_of(i)) for i in model.graph.input] == \
        [("x", ["B", "T", 8]), ("m", ["B", "T"])]
    assert [o.name for o in model.graph.output] == ["output_0", "output_1"]
    for b, t in [(1, 3), (3, 8), (8, 1)]:
        rng = np.random.default_rng(b * 10 + t)
        x = rng.standard_normal((b, t, 8)).astype(np.float32)
        m = (rng.random((b, t)) > 0.5).astype(np.float32)
        got = run_ort(out, x, m)
        for g, want in zip(got, _export_program(x, m)):
            np.testing.assert_allclose(g, np.asarray(want), rtol=1e-5, atol=1e-5)


def test_cummax_along_symbolic_axis():
    """A scan in a Loop (test_dynamic_cumulative.py has every op and dtype)."""
    model = convert_and_check(lambda x: lax.cummax(x, axis=0), [("B", 4)],
                              batch_sizes=(1, 3, 8, 100))
    assert op_counts(model)["Loop"] == 1


# ---------------------------------------------------------------------------
# Models from other libraries.


def test_equinox_mlp():
    eqx = pytest.importorskip("equinox")

    class Net(eqx.Module):
        mlp: eqx.nn.MLP
        drop: eqx.nn.Dropout

        def __init__(self, key):
            self.mlp = eqx.nn.MLP(6, 3, 16, 2, key=key)
            self.drop = eqx.nn.Dropout(0.5)

        def __call__(self, x):  # x: (B, 6)
            return jax.vmap(lambda r: self.drop(self.mlp(r)))(x)

    net = Net(jax.random.key(0))
    model = convert_and_check(net, [("B", 6)])
    names = {t.name for t in model.graph.initializer}
    assert {"mlp.layers.0.weight", "mlp.layers.2.weight"} <= names, names
    assert "Dropout" not in op_counts(model)
    # a single-example module (no vmap) converts too
    convert_and_check(eqx.nn.MLP(4, 2, 8, 2, key=jax.random.key(1)), [(4,)])


def test_flax_linen_model():
    linen = pytest.importorskip("flax.linen")

    class Net(linen.Module):
        @linen.compact
        def __call__(self, x):
            x = linen.LayerNorm()(linen.Dense(16)(x))
            return linen.Dense(3)(linen.gelu(x))

    net = Net()
    variables = net.init(jax.random.key(0), jnp.ones((1, 5)))
    model = convert_and_check((net, variables), [("B", 5)])
    names = {t.name for t in model.graph.initializer}
    assert "params.Dense_1.kernel" in names, names
    same = convert_and_check(net, [("B", 5)], params=variables)
    assert len(same.graph.node) == len(model.graph.node)
    with pytest.raises(TypeError, match="needs its variables"):
        hlo2onnx.to_onnx(net, [("B", 5)])


def test_seed_mlp_training_mode_converts_for_inference():
    """The seed MLP in training mode (Dropout on, BatchNorm on batch
    statistics) converts as in eval mode: no random ops in the graph, and
    the outputs are the eval-mode outputs."""
    from flax import nnx

    from hlo2onnx.examples.mlp import make_mlp

    mlp = make_mlp()
    mlp.train()
    model = hlo2onnx.to_onnx(mlp, [("B", 30)])
    counts = op_counts(model)
    assert not {"Dropout", "RandomUniform", "RandomUniformLike", "Loop"} & set(counts), counts
    x = np.random.default_rng(0).standard_normal((4, 30)).astype(np.float32)
    graphdef, state = nnx.split(mlp)
    evaluated = nnx.merge(graphdef, state)
    evaluated.eval()
    (got,) = run_ort(model, x)
    np.testing.assert_allclose(got, np.asarray(evaluated(x)), rtol=1e-5, atol=1e-5)


def test_seed_mlp_training_forward_is_deterministic():
    """The training-mode forward pass, as a function of the model state:
    the dropout mask is computed in the graph from the state's RNG key, so
    the model always draws the mask JAX draws for that state."""
    from flax import nnx

    from hlo2onnx.examples.mlp import make_mlp

    mlp = make_mlp()
    mlp.train()
    graphdef, state = nnx.split(mlp)

    def train_forward(st, x):
        return nnx.merge(graphdef, st)(x)

    model = convert_and_check(train_forward, [("B", 30)], params=state)
    again = hlo2onnx.to_onnx(train_forward, [("B", 30)], params=state)
    assert again == model
    # some activations were dropped: the mask is there
    x = np.random.default_rng(1).standard_normal((8, 30)).astype(np.float32)
    (with_dropout,) = run_ort(model, x)
    evaluated = nnx.merge(graphdef, state)
    evaluated.eval()
    assert not np.allclose(with_dropout, np.asarray(evaluated(x)), atol=1e-3)


# ---------------------------------------------------------------------------
# Types onnxruntime cannot compute with: errors naming the type and the op.

UNSUPPORTED_TYPES = [
    ("complex64_sort", lambda x: jnp.sort(x.astype(jnp.complex64)).real,
     [(4,)], r"stablehlo\.sort.*complex"),
    ("int4", lambda x: x.astype(jnp.int8).astype(jnp.int4), [(4,)], r"stablehlo\.convert.*i4"),
    ("int4_input", lambda x: x.astype(jnp.int8), [of(jnp.int4, 4)], r"stablehlo\.convert.*i4"),
    ("uint4", lambda x: x.astype(jnp.uint4), [(4,)], r"stablehlo\.convert.*ui4"),
    ("float8_arith", lambda x: x * x, [of(jnp.float8_e4m3fn, 4)],
     r"stablehlo\.multiply.*f8E4M3FN"),
    ("float8_e5m2_cast", lambda x: x.astype(jnp.float8_e5m2), [(4,)],
     r"stablehlo\.convert.*f8E5M2"),
    ("float8_e3m4", lambda x: x.astype(jnp.float8_e3m4), [(4,)],
     r"stablehlo\.convert.*f8E3M4.*ONNX has no such element type"),
    ("float8_e4m3b11fnuz", lambda x: x.astype(jnp.float8_e4m3b11fnuz), [(4,)],
     r"stablehlo\.convert.*f8E4M3B11FNUZ"),
    ("float4", lambda x: x.astype(jnp.float4_e2m1fn), [(4,)], r"stablehlo\.convert.*f4E2M1FN"),
]


@pytest.mark.parametrize("name,fn,inputs,pattern", UNSUPPORTED_TYPES,
                         ids=[c[0] for c in UNSUPPORTED_TYPES])
def test_unsupported_type_is_named(name, fn, inputs, pattern):
    with pytest.raises(hlo2onnx.UnsupportedOpError, match=pattern):
        hlo2onnx.to_onnx(fn, inputs)


def test_unsupported_type_input_without_onnx_type(tmp_path):
    text = """
module @m {
  func.func public @main(%x: tensor<4xf8E3M4>, %y: tensor<4xf32>) -> tensor<4xf32> {
    return %y : tensor<4xf32>
  }
}
"""
    src = tmp_path / "t.mlir"
    src.write_text(text)
    proc = run_cli(src, "-o", tmp_path / "t.onnx", "-q")
    assert proc.returncode == 3, proc.stderr
    assert "argument 0 of @main has element type f8E3M4" in proc.stderr


def test_complex_op_without_lowering_is_reported_with_its_type():
    """Complex tensors convert (as real pairs: test_complex.py); an op with
    no lowering for them is unsupported (status 3), naming the op and type."""
    with pytest.raises(hlo2onnx.UnsupportedOpError) as e:
        hlo2onnx.to_onnx(lambda x: jnp.sort(x * (1 + 2j)).real, [(4,)])
    assert e.value.status == 3
    # at the Python line (the lowered text's position follows)
    assert re.search(r":\d+: error: cannot convert stablehlo\.sort: no lowering of this op for "
                     r"complex tensors \(tensor<4xcomplex<f32>>\)", e.value.messages), e.value.messages


@pytest.mark.parametrize("dtype,name", [(jnp.int4, "i4"), (jnp.uint4, "ui4"),
                                        (jnp.int2, "i2"), (jnp.uint2, "ui2")])
def test_sub_byte_constant_is_reported_with_its_type(dtype, name):
    """A closed-over sub-byte constant: unsupported (3), not malformed input."""
    table = jnp.asarray(np.arange(8) % 2, dtype=dtype)
    with pytest.raises(hlo2onnx.UnsupportedOpError) as e:
        hlo2onnx.to_onnx(lambda x: x + table.astype(jnp.float32), [(8,)])
    assert re.search(rf":\d+: error: cannot convert stablehlo\.constant: {name} tensors",
                     e.value.messages), e.value.messages
