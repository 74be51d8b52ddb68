"""Convolutions and windowed reductions (src/lower/conv.c).

Each case names a JAX function, its input shapes, and the ONNX ops the graph
must (and must not) contain.  Every model goes through onnx.checker
(full_check) and is compared with JAX on random inputs with
numpy.testing.assert_allclose; a symbolic batch "B" is run at 1, 3 and 8.

Tolerance: float32 rtol = atol = 1e-5.  The convolutions here sum at most
3*3*16 = 144 products of N(0, 1) values; onnxruntime (MLAS) and XLA (Eigen)
sum them in different orders, which stays well inside 1e-5 relative to
results of magnitude ~10.  float16 cases compare at 2e-3 (f16 epsilon is
9.8e-4: one rounding of the f32 accumulation, done by both JAX and us, plus
a last-bit difference of the f32 sums).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import pytest

import hlo2onnx
from util import convert_and_check, op_counts, run_ort

flax = pytest.importorskip("flax")
from flax import nnx  # noqa: E402

lax = jax.lax
BATCH_SIZES = (1, 3, 8)


@dataclasses.dataclass
class Case:
    id: str
    fn: object
    inputs: list  # shape tuples; a str dim is symbolic
    ops: tuple = ()  # ONNX ops the graph must contain
    no_ops: tuple = ()  # ... and must not contain
    dtypes: tuple | None = None  # numpy dtype per input (default float32)
    tol: float = 1e-5


def random_input(rng, shape, dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype)
    if dtype.kind == "b":
        return rng.random(shape) < 0.3
    info = np.iinfo(dtype)
    lo, hi = max(info.min, -1000), min(info.max, 1000)
    return rng.integers(lo, hi, size=shape, endpoint=True).astype(dtype)


def check(case: Case, model: onnx.ModelProto | None = None) -> onnx.ModelProto:
    if model is None:
        model = hlo2onnx.to_onnx(case.fn, case.inputs, input_dtypes=case.dtypes)
    onnx.checker.check_model(model, full_check=True)
    counts = op_counts(model)
    for op in case.ops:
        assert counts[op] >= 1, f"no {op} in {dict(counts)}"
    for op in case.no_ops:
        assert counts[op] == 0, f"unexpected {op} in {dict(counts)}"
    symbolic = any(isinstance(d, str) for shape in case.inputs for d in shape)
    dtypes = case.dtypes or [np.float32] * len(case.inputs)
    rng = np.random.default_rng(0)
    for b in BATCH_SIZES if symbolic else (None,):
        xs = [random_input(rng, tuple(b if isinstance(d, str) else d for d in shape), dt)
              for shape, dt in zip(case.inputs, dtypes)]
        want = np.asarray(case.fn(*xs))
        (got,) = run_ort(model, *xs)
        assert got.dtype == want.dtype, (got.dtype, want.dtype)
        assert got.shape == want.shape, (got.shape, want.shape)
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64),
                                   rtol=case.tol, atol=case.tol, err_msg=f"batch {b}")
    return model


# ---------------------------------------------------------------------------
# lax.conv_general_dilated


NHWC = ("NHWC", "HWIO", "NHWC")
NCHW = ("NCHW", "OIHW", "NCHW")


def conv(dn, strides=(1, 1), padding="SAME", **kw):
    def f(x, w):
        return lax.conv_general_dilated(x, w, strides, padding, dimension_numbers=dn, **kw)
    return f


W_CONST = np.random.default_rng(1).standard_normal((3, 3, 3, 4)).astype(np.float32)

CONV_CASES = [
    Case("nhwc_hwio_same", conv(NHWC), [(2, 9, 9, 3), (3, 3, 3, 4)], ("Conv", "Transpose")),
    Case("nchw_oihw_valid_stride2", conv(NCHW, (2, 2), "VALID"), [(2, 3, 10, 9), (5, 3, 3, 2)],
         ("Conv",), ("Transpose", "Slice", "Pad")),
    Case("explicit_padding", conv(NCHW, (1, 2), ((1, 2), (0, 3))), [(2, 3, 8, 7), (4, 3, 3, 3)],
         ("Conv",), ("Transpose", "Slice")),
    Case("negative_padding", conv(NCHW, (1, 1), ((-1, 2), (1, -2))), [(2, 3, 8, 7), (4, 3, 3, 2)],
         ("Conv", "Slice")),
    Case("negative_padding_strided", conv(NHWC, (2, 3), ((-2, 0), (0, -1))),
         [(1, 11, 12, 2), (3, 2, 2, 3)], ("Conv", "Slice")),
    Case("rhs_dilation", conv(NHWC, (1, 1), "SAME", rhs_dilation=(2, 3)),
         [(2, 10, 11, 3), (3, 3, 3, 4)], ("Conv",)),
    Case("depthwise", conv(NHWC, feature_group_count=4), [(2, 8, 8, 4), (3, 3, 1, 8)], ("Conv",)),
    Case("feature_groups_2", conv(NCHW, feature_group_count=2), [(2, 4, 7, 7), (6, 2, 3, 3)],
         ("Conv",), ("Transpose",)),
    Case("conv1d_same_stride2", conv(("NWC", "WIO", "NWC"), (2,), "SAME"),
         [(2, 11, 3), (3, 3, 5)], ("Conv",)),
    Case("conv3d", conv(("NDHWC", "DHWIO", "NDHWC"), (1, 2, 1), "SAME"),
         [(1, 5, 6, 7, 2), (2, 3, 2, 2, 4)], ("Conv",)),
    Case("mixed_layouts", conv(("NCHW", "HWIO", "NHWC"), (1, 1), "VALID"),
         [(2, 3, 6, 5), (2, 2, 3, 4)], ("Conv",)),
    Case("lhs_dilation_strided", conv(NCHW, (2, 1), ((1, 0), (-1, 2)), lhs_dilation=(2, 3)),
         [(2, 3, 5, 4), (4, 3, 3, 2)], ("ConvTranspose",), ("Conv",)),
    Case("lhs_dilation_wide_padding", conv(NCHW, (1, 1), ((4, 3), (0, 0)), lhs_dilation=(2, 1)),
         [(1, 2, 4, 3), (2, 2, 2, 1)], ("ConvTranspose", "Pad")),
    Case("lhs_dilation_groups", conv(NCHW, (1, 1), ((1, 1), (1, 1)), lhs_dilation=(2, 2),
                                     rhs_dilation=(1, 2), feature_group_count=2),
         [(2, 4, 4, 4), (6, 2, 2, 2)], ("ConvTranspose",)),
    Case("batch_group_count", conv(NCHW, (1, 1), ((1, 0), (0, 1)), batch_group_count=2),
         [(4, 3, 6, 5), (4, 3, 2, 2)], ("Conv",)),
    Case("constant_kernel", lambda x: conv(NHWC)(x, W_CONST), [("B", 7, 7, 3)], ("Conv",)),
    Case("dynamic_batch", conv(NHWC, (2, 2), "SAME"), [("B", 9, 8, 3), (3, 3, 3, 4)], ("Conv",)),
    Case("float16", conv(NHWC), [(2, 6, 6, 3), (3, 3, 3, 4)], ("Conv",),
         dtypes=(np.float16, np.float16), tol=2e-3),
    Case("no_spatial_axes", lambda x, w: lax.conv_general_dilated(
        x, w, (), (), dimension_numbers=("NC", "OI", "NC")), [(3, 4), (5, 4)],
         ("Conv", "Unsqueeze", "Squeeze")),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: c.id)
def test_conv_general_dilated(case):
    check(case)


# jax.lax.conv_transpose: an lhs-dilated convolution -> ConvTranspose.
CONV_TRANSPOSE_CASES = [
    Case(f"conv_transpose_{pad}_{tk}",
         functools.partial(lambda x, w, pad, tk: lax.conv_transpose(
             x, w, (2, 2), pad, dimension_numbers=NHWC, transpose_kernel=tk), pad=pad, tk=tk),
         [("B", 5, 6, 3), (3, 3, 3, 4) if not tk else (3, 3, 4, 3)], ("ConvTranspose",))
    for pad in ("SAME", "VALID") for tk in (False, True)
] + [
    Case("conv_transpose_rhs_dilation",
         lambda x, w: lax.conv_transpose(x, w, (2, 1), ((2, 1), (0, 3)), rhs_dilation=(2, 1),
                                         dimension_numbers=NCHW),
         [(2, 3, 5, 4), (4, 3, 3, 2)], ("ConvTranspose",)),
    Case("conv_transpose_1d",
         lambda x, w: lax.conv_transpose(x, w, (3,), "SAME", dimension_numbers=("NWC", "WIO", "NWC")),
         [(2, 7, 2), (4, 2, 3)], ("ConvTranspose",)),
]


@pytest.mark.parametrize("case", CONV_TRANSPOSE_CASES, ids=lambda c: c.id)
def test_conv_transpose(case):
    check(case)


# Gradients: JAX's kernel gradient convolves with unusual dimension numbers
# ([f, 0, 1, b]x[i, 0, 1, o]->[0, 1, b, f]) and, for a depthwise conv, with
# batch_group_count; the input gradient reverses the kernel and dilates the
# input, and the two flips cancel (no Slice left on the kernel).
def kernel_grad(fgc):
    def f(x, w):
        return jax.grad(lambda w: (conv(NHWC, (2, 2), "SAME", feature_group_count=fgc)(x, w)
                                   ** 2).sum())(w)
    return f


def input_grad(x, w):
    return jax.grad(lambda x: (conv(NHWC, (2, 2), "SAME")(x, w) ** 2).sum())(x)


GRAD_CASES = [
    Case("kernel_grad", kernel_grad(1), [(2, 8, 8, 4), (3, 3, 4, 5)], ("Conv",)),
    Case("kernel_grad_depthwise", kernel_grad(4), [(2, 8, 8, 4), (3, 3, 1, 8)], ("Conv",)),
    Case("input_grad", input_grad, [(2, 8, 8, 4), (3, 3, 4, 5)], ("ConvTranspose",), ("Slice",)),
]


@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: c.id)
def test_conv_gradients(case):
    check(case)


def test_window_reversal():
    """JAX does not emit window_reversal itself: flip it on in the MLIR text
    and compare with JAX on the kernel reversed by hand."""
    f = conv(NCHW, (1, 1), ((1, 1), (0, 2)))
    inputs = [(2, 3, 6, 5), (4, 3, 3, 2)]
    low = hlo2onnx.lower_to_text(f, inputs)
    assert "reverse = [false, false]" in low.text
    low = dataclasses.replace(low, text=low.text.replace("reverse = [false, false]",
                                                         "reverse = [true, false]"))
    model = low.convert()
    check(Case("window_reversal", lambda x, w: f(x, w[:, :, ::-1, :]), inputs, ("Conv", "Slice")),
          model)


def test_integer_convolution_is_refused():
    f = lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=NCHW)  # noqa: E731
    with pytest.raises(hlo2onnx.ConversionError, match="floating-point"):
        hlo2onnx.to_onnx(f, [(1, 2, 4, 4), (3, 2, 2, 2)], input_dtypes=[np.int32, np.int32])


# ---------------------------------------------------------------------------
# stablehlo.dynamic_conv: the padding is an operand.  JAX emits it for
# padding="SAME" over a symbolic spatial dimension (the padding is computed
# from the dimension); a constant padding is Conv's pads, a computed one a
# Pad before the Conv.

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def run_named(model, feeds):
    import onnxruntime as ort
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def test_dynamic_conv_fixture():
    """tests/fixtures/dynamic_conv.mlir: a constant padding with a cropping
    amount (%y0) and one computed from H (%y1), against lax at several H."""
    model = hlo2onnx.mlir_to_onnx(FIXTURES / "dynamic_conv.mlir")
    onnx.checker.check_model(model, full_check=True)
    counts = op_counts(model)
    assert counts["Conv"] == 2 and counts["Pad"] == 1, dict(counts)
    rng = np.random.default_rng(0)
    for h in (1, 4, 5, 8, 11):
        x = rng.standard_normal((2, h, 9, 3)).astype(np.float32)
        k = rng.standard_normal((3, 2, 3, 4)).astype(np.float32)
        y0, y1 = run_named(model, {"input_0": x, "input_1": k})
        want0 = lax.conv_general_dilated(x, k, (2, 1), ((1, 2), (-1, 1)), rhs_dilation=(1, 2),
                                         dimension_numbers=NHWC)
        want1 = lax.conv_general_dilated(x, k, (2, 1), ((h % 2, 1), (2, -1)),
                                         dimension_numbers=NHWC)
        np.testing.assert_allclose(y0, want0, rtol=1e-5, atol=1e-5, err_msg=f"y0, H={h}")
        np.testing.assert_allclose(y1, want1, rtol=1e-5, atol=1e-5, err_msg=f"y1, H={h}")


DYNAMIC_CONV_CASES = [
    # (id, fn, input shapes, sizes for the symbols: a list of {symbol: size})
    ("same_h_symbolic", conv(NHWC, (2, 2), "SAME"), [("B", "H", 8, 3), (3, 3, 3, 4)],
     [dict(B=1, H=5), dict(B=2, H=8), dict(B=3, H=9), dict(B=1, H=1)]),
    ("same_hw_symbolic_nchw", conv(NCHW, (1, 2), "SAME", rhs_dilation=(2, 1)),
     [("B", 3, "H", "W"), (5, 3, 3, 2)],
     [dict(B=1, H=4, W=7), dict(B=2, H=9, W=6), dict(B=3, H=6, W=6)]),
    ("same_1d", conv(("NWC", "WIO", "NWC"), (3,), "SAME"), [(2, "T", 4), (4, 4, 2)],
     [dict(T=1), dict(T=7), dict(T=12)]),
]


@pytest.mark.parametrize("name,fn,inputs,sizes", DYNAMIC_CONV_CASES,
                         ids=[c[0] for c in DYNAMIC_CONV_CASES])
def test_dynamic_conv_from_jax(name, fn, inputs, sizes):
    assert "stablehlo.dynamic_conv" in hlo2onnx.lower_to_text(fn, inputs).text
    model = hlo2onnx.to_onnx(fn, inputs)
    onnx.checker.check_model(model, full_check=True)
    counts = op_counts(model)
    assert counts["Conv"] == 1 and counts["Pad"] == 1, dict(counts)
    rng = np.random.default_rng(0)
    for size in sizes:
        xs = [rng.standard_normal(tuple(size[d] if isinstance(d, str) else d for d in shape))
              .astype(np.float32) for shape in inputs]
        (got,) = run_ort(model, *xs)
        want = np.asarray(fn(*xs))
        assert got.shape == want.shape, (got.shape, want.shape, size)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=str(size))


DYNAMIC_CONV_LHS_DILATED = """
module @m {
  func.func public @main(%x: tensor<1x?x3xf32>, %k: tensor<2x3x4xf32>) -> tensor<1x?x4xf32> {
    %h = stablehlo.get_dimension_size %x, dim = 1 : (tensor<1x?x3xf32>) -> tensor<i32>
    %p = stablehlo.reshape %h : (tensor<i32>) -> tensor<1xi32>
    %pp = stablehlo.concatenate %p, %p, dim = 0 : (tensor<1xi32>, tensor<1xi32>) -> tensor<2xi32>
    %pad = stablehlo.reshape %pp : (tensor<2xi32>) -> tensor<1x2xi32>
    %y = "stablehlo.dynamic_conv"(%x, %k, %pad) <{dimension_numbers = #stablehlo.conv<[b, 0, f]x[0, i, o]->[b, 0, f]>, feature_group_count = 1 : i64, batch_group_count = 1 : i64, lhs_dilation = array<i64: 2>}> : (tensor<1x?x3xf32>, tensor<2x3x4xf32>, tensor<1x2xi32>) -> tensor<1x?x4xf32>
    return %y : tensor<1x?x4xf32>
  }
}
"""


def test_dynamic_conv_transposed_with_computed_padding_is_refused():
    with pytest.raises(hlo2onnx.UnsupportedOpError) as e:
        hlo2onnx.mlir_to_onnx(DYNAMIC_CONV_LHS_DILATED, source_name="t.mlir")
    assert re.search(r"t\.mlir:8:10: error: cannot convert stablehlo\.dynamic_conv: lhs_dilation "
                     r"\(a transposed convolution\) with padding computed at run time",
                     e.value.messages), e.value.messages


def test_dynamic_conv_transposed_with_constant_padding():
    """The same op with a constant padding: a ConvTranspose like convolution's."""
    lines = DYNAMIC_CONV_LHS_DILATED.split("\n")
    text = "\n".join(lines[:3] + ["    %pad = stablehlo.constant dense<[[1, 1]]> : tensor<1x2xi32>"]
                     + lines[7:])
    model = hlo2onnx.mlir_to_onnx(text)
    onnx.checker.check_model(model, full_check=True)
    assert op_counts(model)["ConvTranspose"] == 1
    rng = np.random.default_rng(0)
    for t in (1, 4, 7):
        x = rng.standard_normal((1, t, 3)).astype(np.float32)
        k = rng.standard_normal((2, 3, 4)).astype(np.float32)
        (got,) = run_ort(model, x, k)
        want = lax.conv_general_dilated(x, k, (1,), ((1, 1),), lhs_dilation=(2,),
                                        dimension_numbers=("NWC", "WIO", "NWC"))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=f"T={t}")


# ---------------------------------------------------------------------------
# flax.nnx.Conv


def nnx_conv(cin, cout, strides, padding):
    return nnx.Conv(cin, cout, (3, 3), strides=strides, padding=padding, rngs=nnx.Rngs(0))


NNX_CONV_CASES = [
    Case(f"nnx_conv_{cin}to{cout}_s{s}_{pad}", nnx_conv(cin, cout, s, pad),
         [("B", 12, 11, cin)], ("Conv",))
    for cin, cout in ((1, 8), (3, 16)) for s in (1, 2) for pad in ("SAME", "VALID")
]


@pytest.mark.parametrize("case", NNX_CONV_CASES, ids=lambda c: c.id)
def test_nnx_conv(case):
    check(case)


# ---------------------------------------------------------------------------
# reduce_window: flax pools, cumulative reductions, lax.reduce_window


POOL_CASES = [
    Case(f"nnx_{kind}_pool_w{w[0]}s{s[0]}_{pad}",
         functools.partial(lambda x, kind, w, s, pad: getattr(nnx, kind + "_pool")(
             x, w, strides=s, padding=pad), kind=kind, w=w, s=s, pad=pad),
         [("B", 9, 10, 3)], ("MaxPool",) if kind == "max" else ("AveragePool",))
    for kind in ("max", "avg")
    for w, s in (((2, 2), (2, 2)), ((3, 3), (1, 1)))
    for pad in ("SAME", "VALID")
]


POOL_CASES.append(Case(
    "nnx_avg_pool_excluding_padding",
    lambda x: nnx.avg_pool(x, (3, 3), strides=(2, 2), padding="SAME", count_include_pad=False),
    [("B", 7, 8, 3)], ("AveragePool",)))


@pytest.mark.parametrize("case", POOL_CASES, ids=lambda c: c.id)
def test_nnx_pools(case):
    check(case)


def cum(fn, axis, **kw):
    return lambda x: fn(x, axis=axis, **kw)


CUMULATIVE_CASES = [
    Case(f"cumsum_axis{a}", cum(jnp.cumsum, a), [(4, 5, 6)], ("CumSum",), ("AveragePool",))
    for a in (0, 1, 2)
] + [
    Case("cumsum_reverse", cum(lax.cumsum, 1, reverse=True), [(4, 5, 6)], ("CumSum",)),
    Case("cumsum_dynamic_batch", cum(jnp.cumsum, 1), [("B", 7)], ("CumSum",)),
    Case("cumsum_int32", cum(jnp.cumsum, 0), [(6, 3)], ("CumSum",), dtypes=(np.int32,)),
    Case("cumsum_long", cum(jnp.cumsum, 0), [(1000,)], ("CumSum",)),
    Case("cummax", cum(lax.cummax, 1), [(3, 6, 2)], ("MaxPool",)),
    Case("cummax_long", cum(lax.cummax, 1), [(2, 300)], ("MaxPool",)),
    Case("cummin_reverse", cum(lax.cummin, 0, reverse=True), [(5, 4)], ("MaxPool", "Neg")),
]


@pytest.mark.parametrize("case", CUMULATIVE_CASES, ids=lambda c: c.id)
def test_cumulative(case):
    check(case)


def rw(init, op, window, strides, padding, **kw):
    return lambda x: lax.reduce_window(x, np.array(init, x.dtype), op, window, strides, padding,
                                       **kw)


REDUCE_WINDOW_CASES = [
    Case("max_over_channels", rw(-np.inf, lax.max, (1, 1, 1, 2), (1, 1, 1, 2), "VALID"),
         [(2, 4, 5, 6)], ("MaxPool", "Reshape")),
    Case("min_pool", rw(np.inf, lax.min, (1, 3, 3, 1), (1, 2, 2, 1), "SAME"),
         [("B", 7, 8, 2)], ("MaxPool", "Neg")),
    Case("sum_window_dilation",
         rw(0.0, lax.add, (1, 1, 3, 2), (1, 1, 1, 2), ((0, 0), (0, 0), (2, 1), (1, 0)),
            window_dilation=(1, 1, 2, 2)), [(2, 3, 9, 8)], ("AveragePool",), ("Transpose",)),
    # XLA counts padded cells as the identity and adds a non-zero init once.
    Case("sum_nonzero_init", rw(1.5, lax.add, (1, 2, 2, 1), (1, 1, 1, 1),
                                ((0, 0), (1, 1), (1, 1), (0, 0))),
         [(2, 5, 5, 3)], ("AveragePool", "Add"), ("Pad",)),
    Case("sum_padding_beyond_window", rw(0.0, lax.add, (1, 2, 2, 1), (1, 1, 1, 1),
                                         ((0, 0), (3, 1), (0, 2), (0, 0))),
         [(2, 5, 5, 3)], ("AveragePool", "Pad")),
    Case("max_init_zero", rw(0.0, lax.max, (1, 3, 3, 1), (1, 2, 2, 1), "SAME"),
         [(2, 7, 7, 3)], ("MaxPool",)),  # then max(., 0): Max, or Relu after fusion
    Case("product_padded_init", rw(2.0, lax.mul, (2, 1), (1, 1), ((1, 1), (0, 0))), [(5, 4)],
         ("Mul", "Pad")),
    Case("max_padding_beyond_window", rw(-np.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1),
                                         ((0, 0), (2, 2), (3, 0), (0, 0))),
         [(2, 5, 5, 3)], ("Max", "Pad"), ("MaxPool",)),
    Case("max_negative_padding", rw(-np.inf, lax.max, (1, 2, 2, 1), (1, 1, 1, 1),
                                    ((0, 0), (-1, 1), (1, -2), (0, 0))),
         [(2, 6, 6, 3)], ("MaxPool", "Slice")),
    Case("max_pool_1d_unbatched", rw(-np.inf, lax.max, (3,), (2,), "SAME"), [(9,)],
         ("MaxPool",)),
    Case("max_pool_int32", rw(np.iinfo(np.int32).min, lax.max, (1, 2, 2, 1), (1, 2, 2, 1),
                              "VALID"), [(2, 6, 6, 3)], ("MaxPool",), dtypes=(np.int32,)),
    Case("max_pool_int8", rw(np.iinfo(np.int8).min, lax.max, (1, 3, 3, 1), (1, 1, 1, 1), "SAME"),
         [(2, 5, 5, 3)], ("MaxPool",), dtypes=(np.int8,)),
    Case("sum_pool_int32", rw(0, lax.add, (1, 2, 2, 1), (1, 1, 1, 1), "SAME"), [(2, 5, 5, 3)],
         ("Add",), ("AveragePool",), dtypes=(np.int32,)),
    Case("product_window", rw(1.0, lax.mul, (2, 1), (1, 1), "VALID"), [(5, 4)], ("Mul",)),
    Case("or_window_bool", rw(False, lax.bitwise_or, (2, 3), (1, 2), "SAME"), [(5, 7)], ("Or",),
         dtypes=(np.bool_,)),
    Case("and_window_int32", rw(-1, lax.bitwise_and, (2, 2), (1, 1), "VALID"), [(5, 4)],
         ("BitwiseAnd",), dtypes=(np.int32,)),
    Case("max_pool_float16", rw(-np.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID"),
         [(2, 6, 6, 3)], ("MaxPool",), ("Cast",), dtypes=(np.float16,)),
    Case("min_float16_padding_beyond_window", rw(np.inf, lax.min, (2, 2), (2, 1),
                                                ((2, 0), (1, 1))),
         [(5, 4)], ("Min", "Pad"), ("Cast",), dtypes=(np.float16,)),
    Case("avg_pool_float16", lambda x: nnx.avg_pool(x, (2, 2), strides=(2, 2)), [(2, 6, 6, 3)],
         ("AveragePool", "Cast"), dtypes=(np.float16,), tol=2e-3),
]


@pytest.mark.parametrize("case", REDUCE_WINDOW_CASES, ids=lambda c: c.id)
def test_reduce_window(case):
    check(case)


# 64-bit types (jax_enable_x64).  onnxruntime has MaxPool and CumSum for
# f64 but no f64 AveragePool (sums are unrolled) or Conv (checker only).
X64_CASES = [
    Case("max_window_int64", rw(np.iinfo(np.int64).min, lax.max, (1, 3), (1, 1), "SAME"),
         [(4, 6)], ("Max",), ("MaxPool",), dtypes=(np.int64,)),
    Case("max_pool_float64", rw(-np.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "SAME"),
         [(2, 5, 5, 3)], ("MaxPool",), ("Cast",), dtypes=(np.float64,)),
    Case("sum_pool_float64", rw(0.0, lax.add, (1, 2, 2, 1), (1, 1, 1, 1), "SAME"),
         [(2, 5, 5, 3)], ("Sum",), ("AveragePool", "Cast"), dtypes=(np.float64,)),
    Case("cumsum_float64", cum(jnp.cumsum, 1), [(3, 9)], ("CumSum",), ("Cast",),
         dtypes=(np.float64,)),
]


@pytest.mark.parametrize("case", X64_CASES, ids=lambda c: c.id)
def test_x64(case):
    with jax.enable_x64(True):
        check(case)


def test_conv_float64_stays_float64():
    """f64 convolutions keep f64 (no Cast): onnxruntime's CPU provider has
    no double Conv, so the kernels pass writes it as Slices and one f64
    MatMul (passes/conv_matmul.c), exact to f64 rounding."""
    with jax.enable_x64(True):
        model = convert_and_check(conv(NHWC), [(1, 5, 5, 2), (3, 3, 2, 4)],
                                  input_dtypes=[np.float64, np.float64], rtol=1e-12, atol=1e-12)
    counts = op_counts(model)
    assert counts["Conv"] == 0 and counts["MatMul"] == 1 and counts["Cast"] == 0, dict(counts)


def test_base_dilation():
    # no ONNX pool dilates its input: the body is applied to the laid-out
    # input instead (more cases in test_refused_ops.py)
    f = rw(0.0, lax.add, (1, 2), (1, 1), "VALID", base_dilation=(1, 2))
    convert_and_check(f, [(3, 4)])


def test_dilated_sum_pool_before_opset_19():
    """AveragePool takes dilations from opset 19 on: before, the window is
    unrolled into strided Slices and a Sum."""
    case = Case("sum_window_dilation_opset17",
                rw(0.0, lax.add, (1, 1, 3, 2), (1, 1, 1, 2), ((0, 0), (0, 0), (2, 1), (1, 0)),
                   window_dilation=(1, 1, 2, 2)), [(2, 3, 9, 8)], ("Sum", "Slice"),
                ("AveragePool",))
    check(case, hlo2onnx.to_onnx(case.fn, case.inputs, opset=17))


def test_large_window_over_four_axes():
    # no pool (4 axes) and too large to unroll (625 elements): folded by
    # doubling along each axis (lower/conv.c, step 4)
    f = rw(0.0, lax.add, (5, 5, 5, 5), (1, 1, 1, 1), "VALID")
    convert_and_check(f, [(6, 6, 6, 6)])
