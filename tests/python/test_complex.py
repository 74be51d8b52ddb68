"""Complex numbers and FFTs (src/lower/complex.c, src/lower/fft.c), through the
whole pipeline, for complex64 and complex128.

The boundary: onnxruntime has no complex kernels, so a complex tensor of
shape S is a real tensor of shape S + (2,) holding (real, imaginary) pairs,
float32 for complex64 and float64 for complex128 - ONNX DFT's layout and the
memory layout of a numpy complex array.  Graph inputs and outputs keep their
names (input ``x`` of complex64[B, 8] is float32[B, 8, 2]); complex weights
are initializers of that form; ``hlo2onnx.verify`` gives complex inputs to
onnxruntime as pairs and compares complex JAX outputs as pairs
(``hlo2onnx.verify.as_pairs``).

Every case is converted, checked with ``onnx.checker`` (full check) and
compared with JAX on random inputs (complex normal: both parts standard
normal).  Tolerances: complex64 rtol = atol = 1e-5 (the project's f32
default); complex128 1e-10 (its formulas compute in f64).  FFT cases say
where they widen it, by the transform's length.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import pytest
from jax import lax

import hlo2onnx
from hlo2onnx import _core
from hlo2onnx.verify import as_pairs
from util import Case, check_model, convert_and_check, op_counts, run_ort

C64, C128 = np.complex64, np.complex128
DTYPES = [pytest.param(C64, id="c64"), pytest.param(C128, id="c128")]
TOL = {C64: 1e-5, C128: 1e-10}


def x64(dtype):
    """complex128 needs jax_enable_x64 (as f64 does in the other tests)."""
    return jax.enable_x64(True) if dtype == C128 else contextlib.nullcontext()


def real_of(dtype):
    return np.float32 if dtype == C64 else np.float64


def check(fn, inputs, cdt, tol=None, **kw):
    """convert_and_check under x64 for complex128, with the dtype's tolerance."""
    t = tol if tol is not None else TOL[cdt]
    with x64(cdt):
        return convert_and_check(fn, inputs, rtol=t, atol=t, **kw)


# ---------------------------------------------------------------------------
# Elementwise: arithmetic and functions, on complex inputs of shape (B, 6)

S = [("B", 6)]
S2 = [("B", 6), ("B", 6)]

ELEMENTWISE = [
    Case("add", lambda a, b: a + b, S2),
    Case("subtract", lambda a, b: a - b, S2),
    Case("multiply", lambda a, b: a * b, S2),
    Case("divide", lambda a, b: a / b, S2),
    Case("negate", lambda a: -a, S),
    Case("exp", jnp.exp, S),
    Case("log", jnp.log, S),
    Case("sqrt", jnp.sqrt, S),
    Case("rsqrt", lax.rsqrt, S),
    Case("pow", lax.pow, S2),
    Case("power_int", lambda a: a ** 3, S),
    Case("sin", jnp.sin, S),
    Case("cos", jnp.cos, S),
    Case("tan", jnp.tan, S),
    Case("sinh", jnp.sinh, S),
    Case("cosh", jnp.cosh, S),
    Case("tanh", jnp.tanh, S),
    Case("sign", jnp.sign, S),
    Case("expm1", jnp.expm1, S),
    Case("log1p", jnp.log1p, S),
    Case("square", jnp.square, S),
    Case("arcsin", jnp.arcsin, S),
    Case("arccos", jnp.arccos, S),
    Case("arctan", jnp.arctan, S),
    Case("arcsinh", jnp.arcsinh, S),
    Case("arccosh", jnp.arccosh, S),
    Case("arctanh", jnp.arctanh, S),
    Case("reciprocal", jnp.reciprocal, S),
    Case("abs", jnp.abs, S),
    Case("real", jnp.real, S),
    Case("imag", jnp.imag, S),
    Case("conj", jnp.conj, S),
    Case("angle", jnp.angle, S),
    Case("equal", lambda a, b: (a == b, a == a, a != b), S2),
    Case("select", lambda a, b: jnp.where(jnp.abs(a) > 1, a, b), S2),
    Case("stop_gradient", lambda a: lax.stop_gradient(a) * 2, S),
    Case("device_put", lambda a: jax.device_put(a), S),
    Case("identity", lambda a: a, S),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ELEMENTWISE, ids=lambda c: c.name)
def test_elementwise(case, dtype):
    check(case.fn, case.inputs, dtype, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_complex_of_reals_and_converts(dtype):
    rt = real_of(dtype)
    check(lambda a, b: lax.complex(a, b) * (a + 0j).astype(dtype), S2, dtype, dtype=rt)
    # complex -> real keeps the real part (JAX warns), real -> complex adds 0i
    check(lambda a: (a * 2).real.astype(np.int32), S, dtype, dtype=dtype)
    check(lambda a: a.astype(dtype) + 1j, S, dtype, dtype=np.int32)


def test_complex64_to_complex128_convert():
    with jax.enable_x64(True):
        check(lambda a: a.astype(C128) * 2, S, C128, input_dtypes=[C64])
        check(lambda a: a.astype(C64) * 2, S, C64, input_dtypes=[C128])


# ---------------------------------------------------------------------------
# Moving elements, indexing, reductions, products


def _scatter_add(x, u):
    return x.at[jnp.array([0, 2, 0])].add(u)


SHAPE_CASES = [
    Case("transpose", lambda a: jnp.transpose(a, (2, 0, 1)), [("B", 3, 4)]),
    Case("reshape", lambda a: a.reshape(a.shape[0], -1), [("B", 3, 4)]),
    Case("broadcast_in_dim", lambda a: jnp.broadcast_to(a[:, None, :], (a.shape[0], 5, 4)),
         [("B", 4)]),
    Case("slice", lambda a: a[:, 1:, ::2], [("B", 3, 5)]),
    Case("concatenate", lambda a, b: jnp.concatenate([a, b, a], axis=1), [("B", 3), ("B", 2)]),
    Case("reverse", lambda a: jnp.flip(a, (0, 1)), [(3, 4)]),
    Case("pad", lambda a: jnp.pad(a, ((1, 2), (0, 1)), constant_values=1 + 2j), [(3, 4)]),
    Case("pad_interior", lambda a: lax.pad(a, jnp.zeros((), a.dtype), [(1, 0, 1), (0, 0, 0)]),
         [(3, 4)]),
    Case("gather", lambda a: a[jnp.array([2, 0, 1, 2])], [(3, 4)]),
    Case("gather_2d", lambda a: a[jnp.array([1, 0]), jnp.array([3, 1])], [(3, 4)]),
    Case("dynamic_slice", lambda a: lax.dynamic_slice_in_dim(a, 1, 2, axis=1), [(3, 4)]),
    Case("dynamic_update_slice", lambda a, u: lax.dynamic_update_slice(a, u, (1, 1)),
         [(3, 4), (2, 2)]),
    Case("scatter_add", _scatter_add, [(3, 4), (3, 4)]),
    Case("scatter_set", lambda x, u: x.at[1:].set(u), [(3, 4), (2, 4)]),
    Case("sum", lambda a: (a.sum(), a.sum(axis=1), a.mean(axis=0)), [(5, 7)]),
    Case("prod", lambda a: (jnp.prod(a, axis=1), jnp.prod(a[:, :4], axis=(0, 1))), [(3, 7)]),
    Case("cumsum", lambda a: jnp.cumsum(a, axis=1), [(3, 5)]),
    Case("matmul", lambda a, b: a @ b, [("B", 4, 5), (5, 3)]),
    Case("einsum", lambda a, b: jnp.einsum("bij,bjk->bik", a, b), [("B", 3, 4), ("B", 4, 2)]),
    Case("vdot", lambda a, b: jnp.vdot(a, b), [(6,), (6,)]),
]

# onnxruntime has no f64 Conv kernel (as for real f64 convolutions,
# test_conv_pool.py): complex128 convolutions are checked by onnx.checker only.
CONV = Case("conv", lambda x, w: lax.conv_general_dilated(x, w, (1,), "SAME"),
            [("B", 2, 9), (3, 2, 3)])


def test_convolution_complex64():
    model = check(CONV.fn, CONV.inputs, C64, dtype=C64)
    # JAX writes a complex convolution as three real ones (Gauss's trick) on
    # real and imag parts; the complex-typed form is test_complex_convolution_text
    assert op_counts(model)["Conv"] == 3


CONV_TEXT = """
func.func public @main(%x: tensor<1x2x5xcomplex<f32>>, %w: tensor<3x2x3xcomplex<f32>>) -> tensor<1x3x5xcomplex<f32>> {
  %0 = stablehlo.convolution(%x, %w) dim_numbers = [b, f, 0]x[o, i, 0]->[b, f, 0], window = {stride = [1], pad = [[1, 1]], lhs_dilate = [1], rhs_dilate = [1], reverse = [false]} {batch_group_count = 1 : i64, feature_group_count = 1 : i64} : (tensor<1x2x5xcomplex<f32>>, tensor<3x2x3xcomplex<f32>>) -> tensor<1x3x5xcomplex<f32>>
  return %0 : tensor<1x3x5xcomplex<f32>>
}"""


def test_complex_convolution_text():
    """A convolution of complex tensors (as JAX does not write it): four real
    convolutions of the parts."""
    model = onnx.load_from_string(_core.convert(CONV_TEXT, [], None, {}))
    check_model(model)
    assert op_counts(model)["Conv"] == 4
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((1, 2, 5)) + 1j * rng.standard_normal((1, 2, 5))).astype(C64)
    w = (rng.standard_normal((3, 2, 3)) + 1j * rng.standard_normal((3, 2, 3))).astype(C64)
    want = np.asarray(lax.conv_general_dilated(x, w, (1,), [(1, 1)]))
    (got,) = run_ort(model, as_pairs(x), as_pairs(w))
    np.testing.assert_allclose(got, as_pairs(want), rtol=1e-5, atol=1e-5)


def test_convolution_complex128_checker_only():
    with jax.enable_x64(True):
        check_model(hlo2onnx.to_onnx(CONV.fn, CONV.inputs, dtype=C128))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SHAPE_CASES, ids=lambda c: c.name)
def test_shape_and_linear(case, dtype):
    tol = TOL[dtype]
    if case.name == "prod":
        # a product of 7 (and 12) complex normals: |values| up to ~1e2 and
        # each of the log2(n) complex products rounds once: 1e-5 relative
        # on the parts holds only up to the scale of the larger part
        tol = {C64: 4e-5, C128: 1e-10}[dtype]
    check(case.fn, case.inputs, dtype, tol=tol, dtype=dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_real_times_complex_dot(dtype):
    """A real operand converted to complex (JAX promotes) and one that stays."""
    rt = real_of(dtype)
    check(lambda a, w: a @ w.astype(dtype), [("B", 4), (4, 3)], dtype,
          input_dtypes=[dtype, rt])


# ---------------------------------------------------------------------------
# Control flow carrying complex values


def _while(z):
    def body(i, c):
        return c * (0.5 + 0.25j) + z

    return lax.fori_loop(0, 4, body, jnp.zeros_like(z))


def _cond(z, p):
    return lax.cond(p[0] > 0, lambda w: w * 1j, lambda w: jnp.conj(w), z)


def _scan(z):
    def step(c, x):
        c = c * x
        return c, c + 1

    return lax.scan(step, jnp.ones(z.shape[1:], z.dtype), z)


@pytest.mark.parametrize("dtype", DTYPES)
def test_while_carries_complex(dtype):
    model = check(_while, [("B", 3)], dtype, dtype=dtype)
    assert op_counts(model)["Loop"] == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_cond_carries_complex(dtype):
    rt = real_of(dtype)
    model = check(_cond, [("B", 3), (1,)], dtype, input_dtypes=[dtype, rt])
    assert op_counts(model)["If"] == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_scan_carries_and_stacks_complex(dtype):
    check(_scan, [(5, "B")], dtype, dtype=dtype)


# ---------------------------------------------------------------------------
# Constants, weights and the graph's boundary


@pytest.mark.parametrize("dtype", DTYPES)
def test_constants(dtype):
    table = np.array([1 + 2j, 3 - 1j, 0.5j, 2, -1, 1j], dtype=dtype)
    # a closed-over array, a splat (x * scalar) and a large splat (Expand)
    check(lambda a: a * table + (2 - 3j), S, dtype, dtype=dtype)
    check(lambda a: a.sum() + jnp.full((100, 200), 1 - 1j, dtype), [(3,)], dtype, dtype=dtype)


def test_complex128_hex_constant():
    text = """
    func.func public @main(%x: tensor<2xf64>) -> tensor<2xf64> {
      %c = stablehlo.constant dense<"0x000000000000F03F00000000000000400000000000000840000000000000F0BF"> : tensor<2xcomplex<f64>>
      %i = stablehlo.imag %c : (tensor<2xcomplex<f64>>) -> tensor<2xf64>
      %r = stablehlo.add %x, %i : tensor<2xf64>
      return %r : tensor<2xf64>
    }"""
    model = onnx.load_from_string(_core.convert(text, [], None, {}))
    check_model(model)
    x = np.array([0.5, 0.25])
    (y,) = run_ort(model, x)
    np.testing.assert_array_equal(y, x + np.array([2.0, -1.0]))


@pytest.mark.parametrize("dtype", DTYPES)
def test_boundary_is_real_pairs(dtype):
    """Input x of complex[B, 8] is float[B, 8, 2] named x; the output too;
    complex weights are initializers of pairs named by their path."""
    rt = real_of(dtype)
    w = (np.arange(8) + 1j * np.arange(8)[::-1]).astype(dtype)

    def f(params, x):
        return x * params["w"]

    with x64(dtype):
        model = convert_and_check(f, [("B", 8)], params={"w": w}, dtype=dtype,
                                  input_names=["x"], rtol=TOL[dtype], atol=TOL[dtype])
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(rt))
    (inp,) = model.graph.input
    assert inp.name == "x" and inp.type.tensor_type.elem_type == elem
    assert [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim] == ["B", 8, 2]
    out = model.graph.output[0].type.tensor_type
    assert out.elem_type == elem
    assert [d.dim_param or d.dim_value for d in out.shape.dim] == ["B", 8, 2]
    inits = {t.name: t for t in model.graph.initializer}
    # (the broadcast of w to [1, 8] is folded into the weight, which keeps its name)
    assert list(inits["w"].dims)[-2:] == [8, 2] and inits["w"].data_type == elem
    got = onnx.numpy_helper.to_array(inits["w"])
    np.testing.assert_array_equal(got.reshape(8, 2), as_pairs(w))


def test_verify_views_complex_as_pairs():
    z = np.array([[1 + 2j, 3 - 4j]], dtype=C64)
    p = as_pairs(z)
    assert p.dtype == np.float32 and p.shape == (1, 2, 2)
    np.testing.assert_array_equal(p[..., 0], z.real)
    np.testing.assert_array_equal(p[..., 1], z.imag)
    assert as_pairs(np.zeros(3, np.float32)).shape == (3,)


# ---------------------------------------------------------------------------
# FFTs.  An n-point transform sums n products: its rounding error grows with
# the magnitude of the sum (~sqrt(n) for normal inputs) and with log2(n)
# (radix-2) or n (direct sum), so the f32 tolerance is 1e-5 * n / 8 for
# n > 8 (n = 64: 8e-5, on outputs of magnitude up to ~30).


def _fft_tol(dtype, n):
    return TOL[dtype] * max(1.0, n / 8) if dtype == C64 else 1e-9


FFTS = [
    # name, function, input shape (last axes transformed), complex input
    ("fft_8", jnp.fft.fft, ("B", 8), True),
    ("fft_6", jnp.fft.fft, ("B", 6), True),
    ("fft_axis0", lambda x: jnp.fft.fft(x, axis=0), (8, "B"), True),
    ("fft_n_pad", lambda x: jnp.fft.fft(x, n=16), ("B", 10), True),
    ("ifft_8", jnp.fft.ifft, ("B", 8), True),
    ("ifft_12", jnp.fft.ifft, ("B", 12), True),
    ("fft2", jnp.fft.fft2, ("B", 4, 8), True),
    ("fftn_3", jnp.fft.fftn, (2, 4, 6), True),
    ("ifftn_3", jnp.fft.ifftn, (4, 3, 8), True),
    ("fft_ortho", lambda x: jnp.fft.fft(x, norm="ortho"), ("B", 16), True),
    ("rfft_8", jnp.fft.rfft, ("B", 8), False),
    ("rfft_7", jnp.fft.rfft, ("B", 7), False),
    ("rfft_64", jnp.fft.rfft, ("B", 64), False),
    ("rfft2", jnp.fft.rfft2, ("B", 6, 8), False),
    ("rfftn_3", jnp.fft.rfftn, (2, 4, 5), False),
    ("irfft_8", lambda x: jnp.fft.irfft(x, n=8), ("B", 5), True),
    ("irfft_9", lambda x: jnp.fft.irfft(x, n=9), ("B", 5), True),
    ("irfft_odd_n", lambda x: jnp.fft.irfft(x), ("B", 6), True),
    ("irfft2", lambda x: jnp.fft.irfft2(x, s=(4, 8)), ("B", 4, 5), True),
    ("irfftn_3", lambda x: jnp.fft.irfftn(x, s=(3, 4, 6)), (2, 3, 4, 4), True),
    ("roundtrip", lambda x: jnp.fft.irfft(jnp.fft.rfft(x), n=x.shape[-1]), ("B", 10), False),
    # past fft.c's MAX_MATMUL_N (512): Bluestein's convolution of radix-2 DFTs
    ("fft_600_bluestein", jnp.fft.fft, ("B", 600), True),
    ("ifft_513_bluestein", jnp.fft.ifft, ("B", 513), True),
    ("rfft_1000_bluestein", jnp.fft.rfft, ("B", 1000), False),
    ("irfft_1030_bluestein", lambda x: jnp.fft.irfft(x, n=1030), ("B", 516), True),
    ("fftfreq_shift", lambda x: jnp.fft.fftshift(jnp.fft.fft(x), axes=-1), ("B", 8), True),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name,fn,shape,cplx", FFTS, ids=[c[0] for c in FFTS])
def test_fft(name, fn, shape, cplx, dtype):
    n = int(np.prod([d for d in shape[1:] if isinstance(d, int)]))
    in_dtype = dtype if cplx else real_of(dtype)
    model = check(fn, [shape], dtype, tol=_fft_tol(dtype, n), dtype=in_dtype)
    counts = op_counts(model)
    assert counts["DFT"] + counts["MatMul"] >= 1, dict(counts)


@pytest.mark.parametrize("opset", [17, 18, 20])
def test_fft_opsets(opset):
    """The DFT's axis is an attribute before opset 20, an input since."""
    model = check(lambda x: jnp.fft.fft(x, axis=0), [(8, "B")], C64, dtype=C64, opset=opset)
    (dft,) = [n for n in model.graph.node if n.op_type == "DFT"]
    attrs = {a.name for a in dft.attribute}
    if opset < 20:
        assert "axis" in attrs and len(dft.input) == 1
    else:
        assert "axis" not in attrs and len(dft.input) == 3


def test_fft_power_of_two_is_dft_other_lengths_matmul():
    """onnxruntime's DFT is a radix-2 FFT for power-of-two lengths and a
    direct sum that loses accuracy otherwise: other lengths multiply by the
    DFT matrix, or past 512 take Bluestein's algorithm (fft.c)."""
    m8 = hlo2onnx.to_onnx(jnp.fft.fft, [("B", 8)], dtype=C64)
    m6 = hlo2onnx.to_onnx(jnp.fft.fft, [("B", 6)], dtype=C64)
    assert op_counts(m8)["DFT"] == 1 and op_counts(m8)["MatMul"] == 0
    assert op_counts(m6)["DFT"] == 0 and op_counts(m6)["MatMul"] == 1
    # longer: a convolution by radix-2 DFTs of length 2048 >= 2 * 600 - 1
    m600 = hlo2onnx.to_onnx(jnp.fft.fft, [("B", 600)], dtype=C64)
    assert op_counts(m600)["DFT"] == 2 and op_counts(m600)["MatMul"] == 0


# ---------------------------------------------------------------------------
# A Fourier neural operator layer (Li et al.): rfft, the low modes times
# complex weights, irfft, plus a pointwise Dense; converted with its weights.

MODES, WIDTH, N = 5, 4, 16


def _fno_params(dtype):
    rng = np.random.default_rng(3)
    rt = real_of(dtype)
    scale = 1 / (WIDTH * WIDTH)
    w = scale * (rng.standard_normal((MODES, WIDTH, WIDTH))
                 + 1j * rng.standard_normal((MODES, WIDTH, WIDTH)))
    return {"spectral": w.astype(dtype),
            "dense": {"kernel": rng.standard_normal((WIDTH, WIDTH)).astype(rt) / 2,
                      "bias": rng.standard_normal(WIDTH).astype(rt) / 10}}


def fno_layer(params, x):
    """x: [batch, N, WIDTH] real."""
    xf = jnp.fft.rfft(x, axis=1)                                   # [B, N/2+1, W] complex
    low = jnp.einsum("bmi,mio->bmo", xf[:, :MODES], params["spectral"])
    out_f = jnp.zeros_like(xf).at[:, :MODES].set(low)
    y = jnp.fft.irfft(out_f, n=x.shape[1], axis=1)                 # [B, N, W] real
    dense = x @ params["dense"]["kernel"] + params["dense"]["bias"]
    # GELU in f32; tanh in f64, where the fused ONNX Gelu of onnxruntime is
    # not accurate to f64 (about 4e-7 relative, a runtime matter, not FFTs')
    return jax.nn.gelu(y + dense) if x.dtype == np.float32 else jnp.tanh(y + dense)


@pytest.mark.parametrize("dtype", DTYPES)
def test_fno_spectral_layer(dtype):
    params = _fno_params(dtype)
    model = check(fno_layer, [("B", N, WIDTH)], dtype, params=params, dtype=real_of(dtype))
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    assert inits.get("spectral") == [MODES, WIDTH, WIDTH, 2], inits
    counts = op_counts(model)
    assert counts["DFT"] >= 2, dict(counts)  # N = 16: rfft and irfft as DFT


def test_fno_2d_spectral_layer():
    """The 2-D form: rfft2 over (H, W), two corners of modes, irfft2."""
    rng = np.random.default_rng(4)
    m = 3
    w1 = (rng.standard_normal((m, m, 2, 2)) + 1j * rng.standard_normal((m, m, 2, 2))) / 4
    w2 = (rng.standard_normal((m, m, 2, 2)) + 1j * rng.standard_normal((m, m, 2, 2))) / 4
    params = {"w1": w1.astype(C64), "w2": w2.astype(C64)}

    def layer(p, x):  # x: [B, H, W, C]
        xf = jnp.fft.rfft2(x, axes=(1, 2))
        out = jnp.zeros_like(xf)
        out = out.at[:, :m, :m].set(jnp.einsum("bxyi,xyio->bxyo", xf[:, :m, :m], p["w1"]))
        out = out.at[:, -m:, :m].set(jnp.einsum("bxyi,xyio->bxyo", xf[:, -m:, :m], p["w2"]))
        return jnp.fft.irfft2(out, s=x.shape[1:3], axes=(1, 2)) + x

    check(layer, [("B", 8, 8, 2)], C64, params=params)


# ---------------------------------------------------------------------------
# What stays refused: clear errors naming the op and the type


@pytest.mark.parametrize("fn,op", [
    (lambda x: jnp.sort(x), "stablehlo.sort"),
    (lambda x: jnp.cumprod(x), "stablehlo.reduce_window"),
])
def test_refused_complex_ops_are_named(fn, op):
    with pytest.raises(hlo2onnx.UnsupportedOpError) as e:
        hlo2onnx.to_onnx(fn, [(4,)], dtype=C64)
    assert e.value.status == 3
    assert f"cannot convert {op}: " in e.value.messages and "complex" in e.value.messages
