"""Zero-size tensors, for every op family: results with a zero dimension
(a convolution whose window is larger than its input, a slice of nothing)
become empty constants (passes/empty.c), and ops on zero-size inputs give
what JAX gives (a sum over nothing is 0, a max -inf).  Each case converts,
passes the ONNX checker, loads in onnxruntime and matches JAX.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import onnxruntime as ort
import pytest
from jax import lax

import hlo2onnx
from util import check_model, convert_and_check, op_counts

F32 = np.float32


def conv(x, w, padding="VALID", strides=(1, 1)):
    return lax.conv_general_dilated(x, w, strides, padding)


# (name, fn, input shapes (f32 unless a dtype follows), the result is a constant)
# ---- empty results of non-empty inputs: constants -------------------------
EMPTY_RESULTS = [
    ("conv_window_larger", conv, [(1, 1, 3, 3), (1, 1, 5, 5)]),
    ("conv_window_larger_strided", lambda x, w: conv(x, w, strides=(2, 2)),
     [(2, 3, 4, 4), (5, 3, 6, 2)]),
    ("slice_nothing", lambda x: x[2:2], [(4, 3)]),
    ("slice_then_math", lambda x: jnp.sin(x[:, 3:]) * 2, [(4, 3)]),
    ("reduce_window_larger", lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (1, 5), (1, 1),
                                                         "VALID"), [(2, 3)]),
    ("avg_pool_larger", lambda x: lax.reduce_window(x, 0.0, lax.add, (1, 1, 4, 4), (1, 1, 1, 1),
                                                    "VALID") / 16, [(1, 2, 3, 3)]),
    ("pad_negative", lambda x: lax.pad(x, 0.0, ((0, -3, 0), (0, 0, 0))), [(3, 4)]),
    ("dynamic_slice_zero", lambda x, i: lax.dynamic_slice(x, (i, 0), (0, 4)),
     [(3, 4), ((), np.int32)]),
    ("gather_no_indices", lambda x: x[jnp.zeros((0,), jnp.int32)], [(3, 4)]),
    ("dot_zero_rows", lambda x, y: x[:0] @ y, [(3, 4), (4, 5)]),
    ("concat_empties", lambda x: jnp.concatenate([x[:0], x[1:1]], axis=0), [(3, 4)]),
    ("sort_empty", lambda x: jnp.sort(x[:, :0], axis=1), [(3, 4)]),
    ("cumsum_empty", lambda x: jnp.cumsum(x[:0], axis=0), [(3, 4)]),
    ("iota_empty", lambda x: x[0, 0] + jnp.arange(0, dtype=F32), [(3, 4)]),
    ("broadcast_empty", lambda x: jnp.broadcast_to(x[:0, None, :], (0, 2, 4)), [(3, 4)]),
    ("cond_empty", lambda x, p: lax.cond(p > 0, lambda a: a[:0] + 1, lambda a: a[1:1] * 2, x),
     [(3, 4), ((), np.int32)]),
    ("top_k_of_empty_rows", lambda x: lax.top_k(x[:0], 2)[0], [(3, 4)]),
    ("argmax_empty_rows", lambda x: jnp.argmax(x[:0], axis=1), [(3, 4)]),
    ("int_empty", lambda x: x[:0] * 3, [((3, 4), np.int16)]),
    ("bf16_empty", lambda x: (x.astype(jnp.bfloat16)[:0] + 1).astype(F32), [(3, 4)]),
]

# ---- zero-size inputs ------------------------------------------------------
EMPTY_INPUTS = [
    ("elementwise", lambda x: jnp.exp(x) + 1, [(0, 4)]),
    ("sum_over_nothing", lambda x: jnp.sum(x, axis=0), [(0, 4)]),
    ("max_over_nothing", lambda x: jnp.max(x, axis=0, initial=-jnp.inf), [(0, 4)]),
    ("prod_over_nothing", lambda x: jnp.prod(x, axis=1), [(4, 0)]),
    ("mean_over_nothing", lambda x: jnp.mean(x, axis=0), [(0, 3)]),
    ("dot_k_zero", lambda x, y: x @ y, [(3, 0), (0, 5)]),
    ("einsum_k_zero", lambda x, y: jnp.einsum("bik,bkj->bij", x, y), [(2, 3, 0), (2, 0, 4)]),
    ("concat_with_empty", lambda x, y: jnp.concatenate([x, y], axis=0), [(0, 4), (2, 4)]),
    ("pad_empty", lambda x: jnp.pad(x, ((1, 1), (0, 0)), constant_values=2.0), [(0, 4)]),
    ("broadcast_from_empty", lambda x: jnp.broadcast_to(x, (3, 0, 4)), [(0, 4)]),
    ("transpose_reshape", lambda x: x.T.reshape(2, 0, 2), [(0, 4)]),
    ("gather_from_empty_rows", lambda x: x[:, jnp.array([1, 0])], [(0, 4)]),
    ("scatter_into_empty", lambda x: x.at[:, 1].set(3.0), [(0, 4)]),
    ("conv_empty_batch", conv, [(0, 2, 5, 5), (3, 2, 2, 2)]),
    ("cumsum_empty_input", lambda x: jnp.cumsum(x, axis=1), [(0, 4)]),
    ("sort_empty_input", lambda x: jnp.sort(x, axis=0), [(0, 4)]),
    ("where_empty", lambda x, y: jnp.where(x > 0, x, y), [(0, 4), (0, 4)]),
    ("softmax_empty_rows", lambda x: jax.nn.softmax(x, axis=-1), [(0, 4)]),
    ("layernorm_empty_rows", lambda x: (x - x.mean(-1, keepdims=True)) / jnp.sqrt(
        x.var(-1, keepdims=True) + 1e-5), [(0, 4)]),
    ("fori_empty", lambda x: lax.fori_loop(0, 2, lambda i, a: a * 2, x), [(0, 3)]),
    ("int_sum_over_nothing", lambda x: jnp.sum(x, axis=0), [((0, 4), np.int32)]),
]


def _specs(shapes):
    return [jax.ShapeDtypeStruct(s[0], s[1]) if isinstance(s[0], tuple)
            else jax.ShapeDtypeStruct(s, F32) for s in shapes]


def _check(fn, shapes):
    specs = _specs(shapes)
    model = hlo2onnx.to_onnx(fn, specs)
    check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    xs = [(rng.integers(0, 3, s.shape) if jnp.issubdtype(s.dtype, jnp.integer)
           else rng.normal(size=s.shape)).astype(s.dtype) for s in specs]
    got = sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), xs)})
    want = jax.jit(fn)(*xs)
    want = list(want) if isinstance(want, (tuple, list)) else [want]
    for g, w in zip(got, want):
        w = np.asarray(w)
        assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, g.dtype, w.shape, w.dtype)
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    return model


@pytest.mark.parametrize("name,fn,shapes", EMPTY_RESULTS, ids=[c[0] for c in EMPTY_RESULTS])
def test_empty_result_is_a_constant(name, fn, shapes):
    model = _check(fn, shapes)
    # the result is computed from nothing: no Conv, pool or math node is left
    # that onnxruntime would run on it (an Identity may name the output)
    counts = op_counts(model)
    left = {k: v for k, v in counts.items() if k not in ("Identity", "Cast")}
    assert not left, dict(counts)
    assert all(i.dims and 0 in i.dims for i in model.graph.initializer if i.name.startswith("empty"))


@pytest.mark.parametrize("name,fn,shapes", EMPTY_INPUTS, ids=[c[0] for c in EMPTY_INPUTS])
def test_zero_size_input(name, fn, shapes):
    _check(fn, shapes)


# ---- zero-size with a symbolic batch -----------------------------------------
SYMBOLIC = [
    # the convolution's [B, 1, 0, 0] is an empty [1, 1, 0, 0] expanded to B
    ("conv_window_larger_batch", conv, [("B", 1, 3, 3), (1, 1, 5, 5)], {"Conv": 0}),
    ("max_pool_larger_batch", lambda x: lax.reduce_window(
        x, -jnp.inf, lax.max, (1, 1, 4, 4), (1, 1, 1, 1), "VALID"), [("B", 2, 3, 3)],
     {"MaxPool": 0}),
    ("elementwise_B0", lambda x: jnp.exp(x) + 1, [("B", 0, 4)], {}),
    ("slice_nothing_B", lambda x: x[:, 2:2] * 3, [("B", 4)], {}),
    ("sum_over_nothing_B", lambda x: jnp.sum(x, axis=1), [("B", 0)], {}),
]


@pytest.mark.parametrize("name,fn,shapes,ops", SYMBOLIC, ids=[c[0] for c in SYMBOLIC])
def test_symbolic_batch(name, fn, shapes, ops):
    model = convert_and_check(fn, shapes)
    counts = op_counts(model)
    assert all(counts[k] == v for k, v in ops.items()), dict(counts)
