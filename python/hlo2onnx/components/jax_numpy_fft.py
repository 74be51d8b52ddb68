"""jax.numpy.fft components: fft, ifft, rfft, irfft, fft2, rfft2, irfft2, fftn.

Complex tensors are real pairs in the model (a trailing axis of 2, the
layout of ONNX's DFT; see src/lower/complex.c): a complex64 input of shape S
is float32 of shape S + (2,), and ``verify`` compares complex outputs the same
way.  Power-of-two lengths become ONNX DFT; other lengths a MatMul by the
DFT matrix (up to 512) or Bluestein's convolution of power-of-two DFTs
(src/lower/fft.c), because onnxruntime's DFT loses accuracy at other lengths.

Tolerances: an n-point transform sums n products, so its rounding error grows
with n; cases with n > 8 use atol = rtol = 1e-5 * n / 8 (their notes say so).
"""

from __future__ import annotations

from hlo2onnx.registry import Case, Component, register

SINCE = "v0.2.0"
JAX_DOCS = "https://docs.jax.dev/en/latest/_autosummary"
C64 = "complex64"


def _fft(name, **kw):
    def build():
        import jax.numpy as jnp

        f = getattr(jnp.fft, name)
        return lambda x: f(x, **kw)

    return build


def _tol(n):
    return 1e-5 * max(1.0, n / 8)


def _case(name, fn, shape, dtype, n, notes):
    t = _tol(n)
    if t != 1e-5:
        notes = f"{notes}; tolerance 1e-5 * n / 8 for an n = {n} point sum"
    return Case(name, fn, [shape], dtypes=[dtype], rtol=t, atol=t, notes=notes)


def _register(name, expected, cases):
    register(Component(
        f"fft.{name}", f"jax.numpy.fft.{name}",
        docs_url=f"{JAX_DOCS}/jax.numpy.fft.{name}.html", since=SINCE,
        onnx_expected=(expected,), cases=cases))


_register("fft", ("DFT", "MatMul"), [
    _case("fft_pow2", _fft("fft"), ("B", 16), C64, 16, "power of two: one DFT"),
    _case("fft_len6", _fft("fft"), ("B", 6), C64, 6, "other lengths: a DFT-matrix MatMul"),
    _case("fft_axis0", _fft("fft", axis=0), (8, "B"), C64, 8, "along axis 0"),
])
_register("ifft", ("DFT", "MatMul"), [
    _case("ifft_pow2", _fft("ifft"), ("B", 8), C64, 8, "DFT with inverse = 1"),
    _case("ifft_len600", _fft("ifft"), ("B", 600), C64, 600,
          "past 512: Bluestein's algorithm, two DFTs of length 2048"),
])
_register("rfft", ("DFT", "MatMul"), [
    _case("rfft_pow2", _fft("rfft"), ("B", 32), "float32", 32, "DFT with onesided = 1"),
    _case("rfft_len7", _fft("rfft"), ("B", 7), "float32", 7, "odd length"),
])
_register("irfft", ("DFT", "MatMul"), [
    _case("irfft_pow2", _fft("irfft", n=16), ("B", 9), C64, 16,
          "the whole spectrum from its Hermitian symmetry, then an inverse DFT"),
    _case("irfft_odd", _fft("irfft", n=9), ("B", 5), C64, 9, "odd output length"),
])
_register("fft2", ("DFT", "MatMul"), [
    _case("fft2", _fft("fft2"), ("B", 4, 8), C64, 32, "one transform per axis"),
])
_register("rfft2", ("DFT", "MatMul"), [
    _case("rfft2", _fft("rfft2"), ("B", 6, 8), "float32", 48, "rfft, then fft on axis -2"),
])
_register("irfft2", ("DFT", "MatMul"), [
    _case("irfft2", _fft("irfft2", s=(4, 8)), ("B", 4, 5), C64, 32,
          "ifft on axis -2, then irfft"),
])
_register("fftn", ("DFT", "MatMul"), [
    _case("fftn_3d", _fft("fftn"), (2, 4, 6), C64, 48, "three axes, one of them length 6"),
])
