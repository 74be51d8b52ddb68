"""Contractions (src/lower/linalg.c) and reductions (src/lower/reduce.c),
through the whole pipeline: JAX function -> hlo2onnx.to_onnx -> onnx.checker
(full_check) -> onnxruntime compared with JAX on random inputs (float32:
rtol = atol = 1e-5; integers and booleans exactly).  Symbolic dimensions run
at 1, 3 and 8.

``ops`` (op_type -> count) states the graph a case must produce where that
is the point: a single MatMul for the common matmul shapes, the Transpose
JAX's attention scores need, no Reshape for batched matmuls.  Those counts
are taken on the model converted without the optional fusion passes.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import hlo2onnx
from util import Case, assert_op_counts, convert_and_check, op_counts


def of(dtype, *shape):
    return jax.ShapeDtypeStruct(shape, dtype)


def bf16(x):
    return x.astype(jnp.bfloat16)


def dot_general(lc, rc, lb=(), rb=(), **kw):
    return lambda a, b: lax.dot_general(a, b, ((lc, rc), (lb, rb)), **kw)


# Inputs with many ties (small integers as floats), and with NaNs too.
def ties(rng, shape, dtype, i):
    return rng.integers(0, 3, size=shape).astype(dtype)


def ties_and_nans(rng, shape, dtype, i):
    x = rng.integers(0, 3, size=shape).astype(dtype)
    x[rng.random(shape) < 0.2] = np.nan
    return x


def nans_and_infs(rng, shape, dtype, i):
    x = rng.standard_normal(shape).astype(dtype)
    u = rng.random(shape)
    x[u < 0.15] = np.nan
    x[(u >= 0.15) & (u < 0.25)] = np.inf
    x[(u >= 0.25) & (u < 0.35)] = -np.inf
    return x


LOOSE = dict(rtol=1e-4, atol=1e-4)  # sums of many f32 products, summed in another order
F16 = dict(rtol=2e-2, atol=2e-2)  # f16 results: half an ulp is ~5e-4 relative, sums more

DOT_CASES = [
    Case("matmul_2d", jnp.matmul, [(5, 4), (4, 3)], ops={"MatMul": 1, "Transpose": 0, "Reshape": 0}),
    Case("matmul_dynamic", jnp.matmul, [("B", 30), (30, 20)], ops={"MatMul": 1, "Reshape": 0}),
    Case("matmul_3d_2d", lambda a, b: jnp.einsum("btk,kn->btn", a, b), [("B", 3, 4), (4, 6)],
         ops={"MatMul": 1, "Transpose": 0, "Reshape": 0}),
    Case("rhs_transposed", lambda a, b: a @ b.T, [(5, 4), (6, 4)],
         ops={"MatMul": 1, "Transpose": 1}),
    Case("lhs_transposed", lambda a, b: a.T @ b, [(4, 5), (4, 6)]),
    Case("batched", lambda a, b: jnp.einsum("bij,bjk->bik", a, b), [(2, 3, 4), (2, 4, 5)],
         ops={"MatMul": 1, "Transpose": 0, "Reshape": 0}),
    Case("batched_dynamic", lambda a, b: jnp.einsum("bij,bjk->bik", a, b),
         [("B", 3, 4), ("B", 4, 5)], ops={"MatMul": 1, "Reshape": 0}),
    Case("attention_scores", lambda q, k: jnp.einsum("bhqd,bhkd->bhqk", q, k),
         [(2, 3, 4, 5), (2, 3, 6, 5)], ops={"MatMul": 1, "Transpose": 1, "Reshape": 0}),
    Case("attention_dynamic", lambda q, k: jnp.einsum("bhqd,bhkd->bhqk", q, k),
         [("B", 3, "T", 5), ("B", 3, "T", 5)]),
    Case("attention_values", lambda p, v: jnp.einsum("bhqk,bhkd->bhqd", p, v),
         [(2, 3, 4, 6), (2, 3, 6, 5)], ops={"MatMul": 1, "Transpose": 0}),
    Case("vec_vec", jnp.dot, [(7,), (7,)]),
    Case("mat_vec", jnp.dot, [(5, 7), (7,)]),
    Case("vec_mat", jnp.dot, [(7,), (7, 3)]),
    Case("outer", dot_general((), ()), [(3,), (4,)], ops={"MatMul": 0, "Mul": 1}),
    Case("outer_batched", dot_general((), (), (0,), (0,)), [(2, 3), (2, 4)]),
    Case("outer_matrix", dot_general((), ()), [(2, 3), (4,)]),
    Case("contract_two", dot_general((1, 2), (0, 1)), [(3, 4, 5), (4, 5, 6)], kw=LOOSE),
    Case("contract_shuffled", dot_general((1, 3), (2, 0), (2,), (1,)),
         [(3, 4, 2, 5), (5, 2, 4, 6)], kw=LOOSE),
    Case("batch_not_leading", dot_general((2,), (0,), (1,), (1,)), [(3, 2, 4), (4, 2, 5)]),
    Case("two_batch_dims", dot_general((3,), (2,), (0, 1), (0, 1)),
         [(2, 3, 4, 5), (2, 3, 5, 6)], ops={"MatMul": 1, "Reshape": 0}),
    Case("no_lhs_free", dot_general((1,), (1,), (0,), (0,)), [(2, 4), (2, 4, 3)]),
    Case("no_free_at_all", dot_general((1,), (1,), (0,), (0,)), [(2, 4), (2, 4)]),
    Case("several_free", dot_general((2,), (0,)), [(2, 3, 4), (4, 5, 6)]),
    Case("several_free_dynamic", dot_general((2,), (0,)), [("B", 3, 4), (4, 5, 6)]),
    Case("free_dims_dynamic_both", dot_general((1,), (1,)), [("B", 4), ("C", 4)]),
    Case("contract_dynamic", lambda a, b: a @ b, [(3, "K"), ("K", 2)], kw=LOOSE),
    Case("several_dynamic", dot_general((2,), (0,)), [("B", "T", 4), (4, 5, 6)]),
    Case("empty_contraction", jnp.matmul, [(3, 0), (0, 4)]),
    Case("f64", jnp.matmul, [of(jnp.float64, 5, 4), of(jnp.float64, 4, 3)]),
    Case("f16", jnp.matmul, [of(jnp.float16, 5, 8), of(jnp.float16, 8, 3)], kw=F16),
    # onnxruntime's Python API takes no bfloat16 arrays: bf16 lives inside.
    Case("bf16_to_f32", lambda a, b: jnp.dot(bf16(a), bf16(b).T, preferred_element_type=jnp.float32),
         [(5, 4), (6, 4)], kw=LOOSE),
    Case("bf16", lambda a, b: (bf16(a) @ bf16(b)).astype(jnp.float32), [(5, 8), (8, 3)],
         kw=dict(rtol=2e-2, atol=2e-2)),
    Case("int32", jnp.matmul, [of(jnp.int32, 5, 4), of(jnp.int32, 4, 3)]),
    Case("int8_to_int32", lambda a, b: lax.dot(a, b, preferred_element_type=jnp.int32),
         [of(jnp.int8, 5, 4), of(jnp.int8, 4, 3)]),
    Case("int8_wraps", lambda a, b: lax.dot(a, b),
         [of(jnp.int8, 5, 40), of(jnp.int8, 40, 3)]),
]


REDUCE_CASES = [
    Case("sum", lambda x: jnp.sum(x, axis=1), [(5, 4)], ops={"ReduceSum": 1}),
    Case("sum_axes", lambda x: jnp.sum(x, axis=(0, 2)), [(3, 4, 5)]),
    Case("sum_all", jnp.sum, [(3, 4, 5)], kw=LOOSE),
    Case("sum_keepdims", lambda x: jnp.sum(x, axis=-1, keepdims=True), [(3, 4)]),
    Case("sum_dynamic", lambda x: jnp.sum(x, axis=1), [("B", 4)]),
    Case("sum_over_batch", lambda x: jnp.sum(x, axis=0), [("B", 4)]),
    Case("sum_int", lambda x: jnp.sum(x, axis=0), [of(jnp.int32, 5, 4)]),
    Case("sum_int8", lambda x: lax.reduce(x, np.int8(0), lax.add, (0,)), [of(jnp.int8, 50, 4)]),
    Case("sum_f16", lambda x: jnp.sum(x, axis=1), [of(jnp.float16, 5, 4)], kw=F16),
    Case("sum_init", lambda x: lax.reduce(x, 5.0, lax.add, (1,)), [(5, 6)]),
    Case("sum_no_dims", lambda x: lax.reduce(x, 0.0, lax.add, ()), [(5, 6)]),
    # XLA drops a reduce over no dimensions, init and all: JAX returns x.
    Case("sum_no_dims_init", lambda x: lax.reduce(x, 2.0, lax.add, ()), [(5, 6)]),
    Case("sum_empty", lambda x: jnp.sum(x, axis=0), [(0, 4)]),
    Case("sum_empty_init", lambda x: lax.reduce(x, 3.0, lax.add, (0,)), [(0, 4)]),
    Case("prod", lambda x: jnp.prod(x, axis=1), [(5, 4)]),
    Case("prod_int", lambda x: jnp.prod(x, axis=0), [of(jnp.int32, 3, 4)]),
    Case("max", lambda x: jnp.max(x, axis=1), [(5, 4)]),
    Case("max_axes", lambda x: jnp.max(x, axis=(1, 2)), [(3, 4, 5)]),
    Case("max_nan", lambda x: jnp.max(x, axis=1), [(6, 5)],
         kw=dict(input_generator=nans_and_infs)),
    Case("min_nan", lambda x: jnp.min(x, axis=0), [(6, 5)],
         kw=dict(input_generator=nans_and_infs)),
    Case("max_init", lambda x: lax.reduce(x, 0.5, lax.max, (1,)), [(5, 4)]),
    Case("max_int", lambda x: jnp.max(x, axis=1), [of(jnp.int32, 5, 4)]),
    Case("max_int16", lambda x: jnp.max(x, axis=1), [of(jnp.int16, 5, 4)]),
    Case("max_uint32", lambda x: jnp.max(x, axis=1), [of(jnp.uint32, 5, 4)]),
    Case("max_bf16", lambda x: jnp.max(bf16(x), axis=1).astype(jnp.float32), [(5, 4)]),
    Case("min_dynamic", lambda x: jnp.min(x, axis=1), [("B", 4)]),
    Case("max_empty", lambda x: lax.reduce(x, -jnp.inf, lax.max, (1,)), [(3, 0)]),
    Case("any", lambda x: jnp.any(x, axis=1), [of(jnp.bool_, 5, 4)]),
    Case("all", lambda x: jnp.all(x, axis=1), [of(jnp.bool_, 5, 4)]),
    Case("all_opset17", lambda x: jnp.all(x, axis=(0, 1)), [of(jnp.bool_, 5, 4)],
         kw=dict(opset=17)),
    Case("max_opset17", lambda x: jnp.max(x, axis=0), [(5, 4)], kw=dict(opset=17)),
    Case("softmax", jax.nn.softmax, [(5, 4)]),
    Case("softmax_dynamic", jax.nn.softmax, [("B", 7)]),
    Case("logsumexp", lambda x: jax.nn.logsumexp(x, axis=-1), [("B", 7)]),
    Case("mean_var", lambda x: (jnp.mean(x, axis=0), jnp.var(x, axis=0)), [("B", 4)], kw=LOOSE),
    Case("two_outputs_one_reduce",
         lambda x, y: lax.reduce((x, y), (0.0, 1.0),
                                 lambda a, b: (a[0] + b[0], a[1] * b[1]), (1,)),
         [(5, 4), (5, 4)]),
    # ---- argmax / argmin: JAX's (value, iota) reduce
    # ArgMax, and a second ArgMax over IsNaN: JAX's argmax picks the first NaN.
    Case("argmax", lambda x: jnp.argmax(x, axis=1), [(5, 4)], ops={"ArgMax": 2, "IsNaN": 1}),
    Case("argmax_int_plain", lambda x: jnp.argmax(x, axis=1), [of(jnp.int32, 5, 4)],
         ops={"ArgMax": 1, "IsNaN": 0}),
    Case("argmin_axis0", lambda x: jnp.argmin(x, axis=0), [(5, 4)]),
    Case("argmax_ties", lambda x: jnp.argmax(x, axis=1), [(6, 7)],
         kw=dict(input_generator=ties)),
    Case("argmin_ties", lambda x: jnp.argmin(x, axis=1), [(6, 7)],
         kw=dict(input_generator=ties)),
    Case("argmax_nan", lambda x: jnp.argmax(x, axis=1), [(8, 7)],
         kw=dict(input_generator=ties_and_nans)),
    Case("argmin_nan", lambda x: jnp.argmin(x, axis=0), [(7, 8)],
         kw=dict(input_generator=ties_and_nans)),
    Case("argmax_int", lambda x: jnp.argmax(x, axis=1), [of(jnp.int32, 5, 6)]),
    Case("argmin_int_ties", lambda x: jnp.argmin(x, axis=0), [of(jnp.int32, 5, 6)],
         kw=dict(input_generator=ties)),
    Case("argmax_bool", lambda x: jnp.argmax(x, axis=1), [of(jnp.bool_, 5, 6)]),
    Case("argmax_flat", jnp.argmax, [(3, 4)]),
    Case("argmax_dynamic", lambda x: jnp.argmax(x, axis=-1), [("B", 6)]),
    Case("argmax_over_batch", lambda x: jnp.argmin(x, axis=0), [("B", 6)]),
    Case("argmax_f16", lambda x: jnp.argmax(x, axis=1), [of(jnp.float16, 5, 6)]),
]


def run(case: Case):
    model = convert_and_check(case.fn, case.inputs, **case.kw)
    if case.ops is not None:
        opts = {k: v for k, v in case.kw.items() if k == "opset"}
        assert_op_counts(hlo2onnx.to_onnx(case.fn, case.inputs, optimize=False, **opts),
                         case.ops)
    return model


@pytest.mark.parametrize("case", DOT_CASES, ids=lambda c: c.name)
def test_dot(case: Case):
    run(case)


@pytest.mark.parametrize("case", REDUCE_CASES, ids=lambda c: c.name)
def test_reduce(case: Case):
    run(case)


def test_unrecognised_reduce_body_is_reported():
    # A body that is not one op on (accumulator, element): named in the error.
    fn = lambda x: lax.reduce(x, 0.0, lambda a, b: a + b * b, (1,))  # noqa: E731
    with pytest.raises(hlo2onnx.ConversionError) as e:
        hlo2onnx.to_onnx(fn, [(5, 4)])
    assert "stablehlo.multiply" in str(e.value)


def _values_first(v, w):
    """Attention's value weighting as JAX's dot_product_attention writes it:
    v [B, S, H, D] first, the weights [B, H, T, S] second, and the
    [B, H, D, T] result transposed to [B, T, H, D]."""
    out = lax.dot_general(v, w, (((1,), (3,)), ((0, 2), (0, 1))))
    return jnp.transpose(out, (0, 3, 1, 2))


# (name, fn, inputs, Transposes in the converted model): linalg.c computes a
# batched dot_general as rhs' . lhs' when that moves less data; the
# Transpose back then merges into the result's own transpose.
ORIENTATION = [
    # straight: v and w both transposed (2), plus JAX's; swapped: v only + JAX's
    ("values_first", _values_first, [(2, 6, 3, 4), (2, 3, 5, 6)], 2),
    ("values_first_dynamic", _values_first, [("B", 6, 3, 4), ("B", 3, "T", 6)], 2),
    # as in JAX's grouped attention: w [B, H, G=1, T, S], two free axes
    ("values_first_grouped",
     lambda v, w: jnp.transpose(lax.dot_general(v, w, (((1,), (4,)), ((0, 2), (0, 1)))),
                                (0, 4, 1, 3, 2)),
     [(2, 6, 3, 4), (2, 3, 1, 5, 6)], 2),
    # no transpose after it: the swap would need a Transpose back, so it stays
    ("values_first_untransposed", lambda v, w: lax.dot_general(v, w, (((1,), (3,)), ((0, 2), (0, 1)))),
     [(2, 6, 3, 4), (2, 3, 5, 6)], 2),
    # the usual order needs none
    ("weights_first", lambda w, v: jnp.einsum("bhts,bhsd->bhtd", w, v),
     [(2, 3, 5, 6), (2, 3, 6, 4)], 0),
]


@pytest.mark.parametrize("name,fn,inputs,transposes", ORIENTATION,
                         ids=[c[0] for c in ORIENTATION])
def test_batched_product_orientation(name, fn, inputs, transposes):
    model = convert_and_check(fn, inputs, shape_info=True)  # value_info checked too
    counts = op_counts(model)
    assert counts["MatMul"] == 1
    assert counts["Transpose"] == transposes, dict(counts)
