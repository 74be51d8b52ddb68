"""Findings of the differential fuzzer (tests/fuzz/differential.py), each the
minimal program hypothesis shrank it to, converted and compared with JAX by
convert_and_check (float32 rtol = atol = 1e-5; integers and booleans
exactly; dtypes must be JAX's).  docs/robustness.md lists them with their
fixes.

Findings that belong to issue 14's other parts (an ONNX op onnxruntime has
no kernel for at that element type, zero-size dims, bfloat16 accumulation)
are xfail here with the reason; their fixes come with those parts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from util import convert_and_check


def test_conv_lhs_dilation_padding_crops_everything():
    """A transposed convolution (lhs_dilation) whose negative padding leaves
    only positions no input reaches on one axis: the ConvTranspose had an
    output length <= 0 there, which onnxruntime refuses.  The result is all
    zeros; the ConvTranspose now keeps one element and Pad makes the zeros."""
    def f(x, w):
        return lax.conv_general_dilated(
            x, w, (2, 2), ((2, -1), (-1, 2)), lhs_dilation=(2, 2), rhs_dilation=(1, 2),
            dimension_numbers=("CNHW", "HWIO", "NCHW"))
    convert_and_check(f, [(1, 2, 1, 6), (2, 3, 1, 1)])


def test_pad_edge_zero_widths():
    """jnp.pad's edge mode makes 1x0 broadcasts even for zero pad widths
    (onnxruntime's Expand of a 1x1 tensor to [1, 0] gives 1x1): fixed by the
    empty-tensor pass of issue 14 part 2."""
    def f(x):
        return jnp.pad(lax.bitcast_convert_type(x, jnp.uint8), ((0, 0),), mode="edge")
    convert_and_check(f, [(1,)], input_dtypes=[np.int8])


def test_pad_uint16():
    """onnxruntime's CPU provider has no uint16 Pad: computed in a wider
    type by the kernel-table pass of issue 14 part 1."""
    convert_and_check(lambda x: lax.pad(x, jnp.uint16(2), ((1, 0, 0),)), [(3,)],
                      input_dtypes=[np.uint16])


_CONV_F64 = [
    ("valid_1d", lambda x, w: lax.conv_general_dilated(x, w, (1,), "VALID"),
     [(1, 1, 5), (1, 1, 3)]),
    ("strided_dilated_padded_2d", lambda x, w: lax.conv_general_dilated(
        x, w, (2, 1), ((1, 2), (0, 1)), rhs_dilation=(1, 2)), [(2, 3, 7, 6), (4, 3, 3, 2)]),
    ("grouped_nhwc", lambda x, w: lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=2), [(2, 5, 4, 4), (3, 3, 2, 6)]),
    ("with_bias", lambda x, w: lax.conv_general_dilated(x, w, (1,), ((1, 1),))
     + jnp.arange(4.0)[None, :, None], [(3, 2, 6), (4, 2, 3)]),
    ("3d", lambda x, w: lax.conv_general_dilated(x, w, (1, 2, 1), "VALID"),
     [(1, 2, 3, 5, 4), (2, 2, 2, 2, 3)]),
    ("symbolic_batch", lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME"),
     [("B", 2, 5, 5), (3, 2, 3, 3)]),
    # transposed convolutions (ONNX ConvTranspose): the Conv they equal
    ("transpose_same", lambda x, w: lax.conv_transpose(
        x, w, (2, 2), "SAME", dimension_numbers=("NCHW", "OIHW", "NCHW")),
     [(1, 2, 5, 4), (3, 2, 3, 3)]),
    ("transpose_grouped_dilated", lambda x, w: lax.conv_general_dilated(
        x, w, (1, 1), ((1, 2), (2, 1)), lhs_dilation=(2, 3), rhs_dilation=(1, 2),
        feature_group_count=2), [(2, 4, 5, 5), (6, 2, 3, 3)]),
    ("transpose_1d_cropped", lambda x, w: lax.conv_general_dilated(
        x, w, (1,), ((0, -1),), lhs_dilation=(3,)), [("B", 2, 4), (2, 2, 2)]),
]


@pytest.mark.parametrize("fn,shapes", [c[1:] for c in _CONV_F64], ids=[c[0] for c in _CONV_F64])
def test_conv_float64(fn, shapes):
    """onnxruntime's CPU provider has no float64 Conv or ConvTranspose: the
    kernels pass writes them as Slices (im2col) and an f64 MatMul
    (passes/conv_matmul.c), which keep float64's precision (rtol = atol =
    1e-12; the sums add the same products in another order)."""
    with jax.enable_x64(True):
        model = convert_and_check(fn, shapes, input_dtypes=[np.float64, np.float64],
                                  rtol=1e-12, atol=1e-12)
    ops = [n.op_type for n in model.graph.node]
    assert "Conv" not in ops and "ConvTranspose" not in ops, ops


def _with_nans(rng, shape, dtype, index):
    """Normal floats with NaN, inf and -inf sprinkled in."""
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    flat[rng.random(flat.size) < 0.3] = np.nan
    flat[rng.random(flat.size) < 0.1] = np.inf
    flat[rng.random(flat.size) < 0.1] = -np.inf
    return x


@pytest.mark.parametrize("how", ["min", "max"])
@pytest.mark.parametrize("dtype", [np.float32, jnp.bfloat16], ids=["f32", "bf16"])
def test_scatter_min_max_propagate_nan(how, dtype):
    """x.at[i].min(u) with a NaN in the updates (or the data) is NaN there,
    as stablehlo.minimum is; onnxruntime's ScatterND min/max let a later
    number win over a NaN.  Indices repeat, and one is dropped."""
    def f(x, u):
        x, u = x.astype(dtype), u.astype(dtype)
        y = getattr(x.at[np.array([0, 0, 5, 0, 1], np.int32)], how)(u, mode="drop")
        return y.astype(jnp.float32)
    convert_and_check(f, [(2, 3, 4), (5, 3, 4)], input_generator=_with_nans, n=5)


def _signed_zeros(rng, shape, dtype, index):
    """-0.0, +0.0 and normal floats."""
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    flat[rng.random(flat.size) < 0.5] = -0.0
    return x


@pytest.mark.parametrize("how", ["add", "subtract"])
def test_scatter_add_dropped_keeps_negative_zero(how):
    """A scatter-add whose windows are all dropped (out of range, mode
    "drop") leaves the data as it is, -0.0 included: 1 / x tells -0.0 from
    +0.0.  Its neutral update -0.0 went through onnxruntime's Where from the
    input that loses the sign of zero."""
    def f(x, u):
        y = getattr(x.at[np.array([1, 1], np.int32)], how)(u, mode="drop")
        return 1 / y
    convert_and_check(f, [(1, 1, 6, 2), (2, 1, 6, 2)], input_generator=_signed_zeros)


@pytest.mark.parametrize("fn", [jax.nn.gelu,
                                lambda x: 0.5 * x * (1 + jnp.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))],
                         ids=["jax.nn.gelu", "written_out"])
def test_gelu_tanh_float64_keeps_its_precision(fn):
    """The tanh GELU of float64 fused into ONNX Gelu, which onnxruntime
    computes to ~4e-7 relative only: float64 stays decomposed, exact to
    float64 rounding (rtol = atol = 1e-12)."""
    with jax.enable_x64(True):
        convert_and_check(fn, [(64,)], input_dtypes=[np.float64], rtol=1e-12, atol=1e-12)


def _u64_extremes(rng, shape, dtype, index):
    """uint64 values across the whole range, the top half included."""
    edge = np.array([0, 1, 2, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 2, 2 ** 64 - 1], np.uint64)
    return edge[rng.integers(0, edge.size, size=shape)]


@pytest.mark.parametrize("how", ["min", "max"])
def test_scatter_min_max_uint64_compares_unsigned(how):
    """A uint64 scatter min/max ran in int64, where 2^64 - 1 is -1 and the
    smallest: the sign bit is flipped around the ScatterND now."""
    def f(x, u):
        return getattr(x.at[np.array([0, 2, 0, 7], np.int32)], how)(u, mode="drop")
    with jax.enable_x64(True):
        convert_and_check(f, [(3, 2), (4, 2)], input_dtypes=[np.uint64, np.uint64],
                          input_generator=_u64_extremes, n=5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lgamma_poles_are_inf(dtype):
    """lgamma at the poles (0, negative integers) is +inf; at -3.4e38 the
    reflection formula gave inf - inf = NaN (lgamma(1 - x) overflows)."""
    fi = np.finfo(dtype)
    x = np.array([-fi.max, -1e30, -2.0 ** 60, -3.0, -1.0, -0.0, 0.0, -2.5, 0.5, 3.0, fi.max,
                  -np.inf, np.inf, np.nan], dtype)
    with jax.enable_x64(dtype == np.float64):
        convert_and_check(lax.lgamma, [x.shape], input_dtypes=[dtype],
                          input_generator=lambda rng, shape, dt, i: x)


def _overflowing(rng, shape, dtype, index):
    """Integers near the ends of their type and small ones, so that sums and
    products overflow (and wrap) in different ways."""
    ii = np.iinfo(dtype)
    small = [0, 1, 2, 3, 7, 2 ** (ii.bits // 2) + 1] + ([-1, -3] if ii.min < 0 else [])
    edge = np.array([int(ii.max), int(ii.max) - 1, int(ii.min), int(ii.min) + 1] + small, object)
    return edge[rng.integers(0, edge.size, size=shape)].astype(dtype)


_INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@pytest.mark.parametrize("how", ["sum", "prod"])
@pytest.mark.parametrize("dtype", _INT_DTYPES, ids=lambda d: np.dtype(d).name)
def test_integer_reduction_wraps(how, dtype):
    """Integer sums and products wrap as JAX's do: onnxruntime's ReduceSum
    and ReduceProd saturate (the i32 sum of [2^31 - 1, 3] was 2^31 - 1) and
    lose the low bits of i64 sums beyond 2^53, so the converter sums with
    CumSum and multiplies with a tree of Muls (lower/reduce.c).  Axis 1 is
    odd (7): the tree's left-over element; both axes together as well."""
    fn = getattr(jnp, how)
    with jax.enable_x64(np.dtype(dtype).itemsize == 8):
        convert_and_check(lambda x: (fn(x, axis=1, dtype=dtype), fn(x, axis=(0, 2), dtype=dtype)),
                          [(3, 7, 4)], input_dtypes=[dtype], input_generator=_overflowing, n=4)


def test_integer_sum_int64_keeps_low_bits():
    """An i64 sum beyond 2^53: onnxruntime's ReduceSum rounded it through
    double ([2^62 + 1, 2^53 + 1, 7] summed to ...896, not ...905)."""
    x = np.array([[2 ** 62 + 1, 2 ** 53 + 1, 7]], np.int64)
    with jax.enable_x64(True):
        convert_and_check(lambda x: jnp.sum(x, axis=1), [x.shape], input_dtypes=[np.int64],
                          input_generator=lambda rng, shape, dt, i: x)


@pytest.mark.parametrize("how", ["sum", "prod"])
def test_integer_reduction_wraps_symbolic(how):
    """Over a symbolic axis: the sum is a CumSum as for static ones, the
    product a Loop over the axis (run at B = 0, the empty product 1, and at
    B = 1, 3, 8)."""
    fn = getattr(jnp, how)
    convert_and_check(lambda x: (fn(x, axis=0), fn(x, axis=(0, 1))), [("B", 5)],
                      input_dtypes=[np.int32], input_generator=_overflowing, n=3,
                      batch_sizes=(0, 1, 3, 8))


@pytest.mark.parametrize("dtype", [np.int8, np.uint32], ids=["i8", "u32"])
def test_integer_reduction_with_init(dtype):
    """lax.reduce with an init value that is not the identity: combined once
    with the wrapped result, in the element type."""
    def f(x):
        s = lax.reduce(x, dtype(5), lax.add, (1,))
        p = lax.reduce(x, dtype(3), lax.mul, (0, 1))
        return s, p
    convert_and_check(f, [(4, 9)], input_dtypes=[dtype], input_generator=_overflowing, n=4)


# ---- open findings of the last run (2026-12-06), not fixed yet ----------


def test_add_of_expanded_int8_symbolic():
    """An Expand dropped where the node's other inputs lacked its leading
    unit axes: the output lost them and its value_info said otherwise
    (simplify's broadcast_keeps_shape now checks the rank)."""
    convert_and_check(lambda x: x[None, :, :] + x[None, :, :], [("B", 1)],
                      input_dtypes=[np.int8])


def test_logsumexp_keepdims_symbolic():
    """The same as test_add_of_expanded_int8_symbolic, from a keepdims reduction."""
    convert_and_check(lambda x: jax.nn.logsumexp(x, axis=(0,), keepdims=True), [(1, "B")])


def _bools_and_edges(rng, shape, dtype, index):
    """Random booleans (input 0); floats with inf, -inf, NaN, -0.0 and
    negative numbers (input 1)."""
    if index == 0:
        return rng.random(shape) < 0.5
    edge = np.array([np.inf, -np.inf, np.nan, -0.0, 0.0, -3.0, 2.5], np.float64)
    return edge[rng.integers(0, edge.size, size=shape)].astype(dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, jnp.bfloat16],
                         ids=["f16", "f32", "f64", "bf16"])
@pytest.mark.parametrize("order", ["b*x", "x*b"])
def test_bool_times_inf(dtype, order):
    """b * x with a bool b: XLA rewrites multiply(convert(b), x) into
    select(b, x, 0), so JAX gives +0.0 where b is False, even for x = -inf,
    NaN or -3 (the model gave NaN and -0.0); bf16 goes through f32 and stays
    a product in XLA (NaN).  1 / y tells -0.0 from +0.0."""
    def f(b, x):
        x = x.astype(dtype)
        y = b * x if order == "b*x" else x * b
        return (y.astype(jnp.float32), 1 / y.astype(jnp.float32))
    with jax.enable_x64(dtype == np.float64):
        convert_and_check(f, [(3, 4), (3, 4)],
                          input_dtypes=[np.bool_, np.float64 if dtype == np.float64 else np.float32],
                          input_generator=_bools_and_edges, n=4)


def test_int32_plus_float16_overflows_to_inf():
    """int32 + float16 casts the int32 to float16 first, where 65520 and
    beyond are inf (JAX gives inf, inf - 100 = inf).  The model says so, as
    ONNX's reference evaluator shows; onnxruntime's CPU provider computes
    the float16 Add in float32 and removes the Cast to float16 in between
    (its cast-removal of "precision free" casts), so it gives 65400 there: an
    onnxruntime bug, documented in docs/robustness.md, not checked here."""
    from onnx.reference import ReferenceEvaluator

    import hlo2onnx
    from util import check_model

    def f(x, y):
        return x + y
    x = np.array([2 ** 31 - 1, -2 ** 31, 65504, 65520, 70000, 2 ** 24 + 1, 32767], np.int32)
    y = np.array([-60000, 60000, 1, -100, -10000, -2 ** 15, 0.5], np.float16)
    model = hlo2onnx.to_onnx(f, [x.shape, y.shape], input_dtypes=[np.int32, np.float16])
    check_model(model)
    names = [i.name for i in model.graph.input]
    (got,) = ReferenceEvaluator(model).run(None, dict(zip(names, [x, y])))
    expected = np.asarray(jax.jit(f)(x, y))
    assert got.dtype == expected.dtype == np.float16
    np.testing.assert_array_equal(got, expected)


def test_bfloat16_pad_of_untyped_value():
    """A bfloat16 Pad (the padding block of a scatter with dropped windows)
    whose data input is an Unsqueeze of unrecorded element type: the kernels
    pass took the node's type from that input alone (unknown) and left the
    Pad in bfloat16, which onnxruntime has no kernel for before opset 21.
    It now reads the type from any typed slot (here the padding value)."""
    def f(x, u):
        v = jnp.expand_dims(x.astype(jnp.bfloat16), 0)
        y = lax.scatter(v, np.array([2], np.int32).reshape((1,)), u.astype(jnp.bfloat16),
                        lax.ScatterDimensionNumbers(update_window_dims=(), inserted_window_dims=(0,),
                                                    scatter_dims_to_operand_dims=(0,)),
                        mode=lax.GatherScatterMode.FILL_OR_DROP)
        return y.astype(jnp.float32)
    convert_and_check(f, [(), ()])


@pytest.mark.parametrize("c", [0.0, -0.0, -3.0, 3.0, np.inf])
def test_bool_divided_by_constant(c):
    """p.astype(float32) / c with a constant c: XLA makes it a product with
    1 / c and then select(p, 1 / c, 0), so JAX gives +0.0 where p is False,
    for c = 0 too (the model gave NaN, fuzzer seed 103) and c < 0 (-0.0).
    A divisor that is no constant stays a division (0 / 0 is NaN in JAX)."""
    def f(p, y):
        x = p.astype(jnp.float32)
        q = x / c
        return q, 1 / q, x / y
    convert_and_check(f, [(2, 3), (2, 3)], input_dtypes=[np.bool_, np.float32],
                      input_generator=lambda rng, shape, dt, i: (
                          rng.random(shape) < 0.5 if i == 0 else np.zeros(shape, np.float32)), n=3)


def _u64_indices(rng, shape, dtype, index):
    """Data (input 0) small; uint64 indices (input 1) across the whole
    range: in range, past the end, and 2^63 and more (negative as int64)."""
    if index == 0:
        return rng.integers(0, 100, size=shape).astype(dtype)
    edge = np.array([0, 1, 2, 5, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 2, 2 ** 64 - 1], np.uint64)
    return edge[rng.integers(0, edge.size, size=shape)]


_U64_INDEXING = [
    ("take_clip", lambda x, i: jnp.take(x, i, axis=0, mode="clip")),
    ("take_fill", lambda x, i: jnp.take(x, i, axis=0, mode="fill", fill_value=7)),
    ("at_set_drop", lambda x, i: x.at[i].set(x[:1] + 1, mode="drop")),
    ("at_add_clip", lambda x, i: x.at[i].add(x[:1], mode="clip")),
    ("dynamic_slice", lambda x, i: lax.dynamic_slice(x, (i[0], i[1] * 0), (2, 3))),
    ("dynamic_update_slice", lambda x, i: lax.dynamic_update_slice(x, x[:2] * 2, (i[1], i[0] * 0))),
    # (a constant uint64 start of dynamic_slice is left out: XLA's constant
    # folding reads 2^63 as negative and starts at 0, while the same start
    # computed at run time starts at the end, as the spec says and the
    # converter does for both)
    ("constant_indices", lambda x, i: jnp.take(x, np.array([2 ** 64 - 2, 1], np.uint64), axis=0,
                                               mode="clip")),
]


@pytest.mark.parametrize("fn", [c[1] for c in _U64_INDEXING], ids=[c[0] for c in _U64_INDEXING])
def test_uint64_indices_past_int64(fn):
    """uint64 indices of 2^63 and more (fuzzer, seed 102: jnp.take(v, i,
    mode="clip") with i = 2^64 - 2 read row 0): the int64 cast made them
    negative, clamped to 0.  They are past every dimension, so JAX clamps
    them to the end or drops them; the converter maps them to INT64_MAX."""
    with jax.enable_x64(True):
        convert_and_check(fn, [(4, 3), (2,)], input_dtypes=[np.uint64, np.uint64],
                          input_generator=_u64_indices, n=6)


@pytest.mark.parametrize("eps,fused", [(0.1, False), (1e-5, False), (0.5, True), (2.0 ** -20, True)])
@pytest.mark.parametrize("norm", ["layer", "rms"])
def test_float64_norm_epsilon(eps, fused, norm):
    """A float64 layer or RMS norm fused into LayerNormalization took eps as
    its float32 attribute: 0.1 became 0.10000000149, ~1e-9 relative off the
    float64 result (fuzzer, seed 106).  float64 norms fuse only when float32
    holds eps exactly; the others stay decomposed (rtol = atol = 1e-12)."""
    def f(x, s):
        if norm == "layer":
            y = (x - jnp.mean(x, axis=-1, keepdims=True)) / jnp.sqrt(
                jnp.var(x, axis=-1, keepdims=True) + eps)
        else:
            y = x * lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps)
        return y * s + 0.5
    with jax.enable_x64(True):
        model = convert_and_check(f, [(2, 3, 8), (8,)], input_dtypes=[np.float64, np.float64],
                                  rtol=1e-12, atol=1e-12, opset=23)
    ops = [n.op_type for n in model.graph.node]
    assert (("LayerNormalization" if norm == "layer" else "RMSNormalization") in ops) == fused, ops


_TRANSPOSED_TIMES_VECTOR = [
    ("sort_then_dot", lambda x, v: lax.dot_general(jnp.sort(x, axis=0), v, (((0,), (0,)), ((), ()))),
     [(4, 3), (4,)]),
    ("sort_then_dot_symbolic", lambda x, v: lax.dot_general(jnp.sort(x, axis=0), v,
                                                             (((0,), (0,)), ((), ()))),
     [(4, "B"), (4,)]),
    ("x_T_at_v", lambda x, v: jnp.tanh(x).T @ v, [(5, 2), (5,)]),
    ("einsum_batched", lambda x, v: jnp.einsum("bij,i->bj", jnp.exp(x), v), [(2, 4, 3), (4,)]),
]


@pytest.mark.parametrize("fn,shapes", [c[1:] for c in _TRANSPOSED_TIMES_VECTOR],
                         ids=[c[0] for c in _TRANSPOSED_TIMES_VECTOR])
def test_transposed_matrix_times_vector(fn, shapes):
    """MatMul(Transpose(A), v) with a 1-D v: onnxruntime fuses the pair into
    FusedMatMul(transA=1), which gives wrong numbers for a 1-D B (fuzzer,
    seed 109: every element of sort(x, 0).T @ v was off).  The kernels pass
    writes it as v @ A, the same product without the Transpose."""
    model = convert_and_check(fn, shapes)
    assert "Transpose" not in [n.op_type for n in model.graph.node]


# ---- jnp.pad's edge mode with a symbolic dim (fuzzer seeds 104 and 108) ---------


@pytest.mark.parametrize("pads", [((0, 2), (0, 0)), ((3, 0), (0, 0)), ((1, 2), (2, 0))])
def test_pad_edge_symbolic(pads):
    """Edge padding builds each side by broadcasting the edge row, a zero-size
    piece where a side pads nothing: onnxruntime's Expand broadcast 1 to 1
    there instead of 0, one row too many ((9, 1) where JAX gives (8, 1)).
    passes/empty.c slices the input to nothing first."""
    convert_and_check(lambda x: jnp.pad(x, pads, mode="edge"), [(6, "B")])
