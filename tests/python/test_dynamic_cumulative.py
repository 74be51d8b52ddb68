"""Cumulative max, min, product and logsumexp along a symbolic axis.

JAX exports lax.cummax / cummin / cumprod / cumlogsumexp (and jnp.cumprod)
along an axis of symbolic size T as custom_call
@stablehlo.dynamic_reduce_window: a window of T cells with T-1 cells of
padding in front (behind for reverse=True), the window sizes and padding
computed at run time.  src/lower/dynamic_window.c scans them by doubling
in an ONNX Loop.  Each case converts once with T symbolic and runs
onnxruntime against JAX at T = 1, 2, 3, 7, 64, 100 (JAX's symbolic
dimensions are at least 1: T = 0 is refused by its shape assertions).

What is compared, and why:
* max and min: exactly (NaN where JAX has NaN: its maximum propagates
  NaN; +-inf; the extremes of each integer type).
* integer products: exactly, wrapping modulo 2**bits as JAX's do (random
  factors in [-5, 5] overflow long before T = 100).  A product mod 2**bits
  is the same in any order, so the doubling's order does not show.
* float products: on factors +-2**k whose running exponent stays small,
  with 0, +-inf and NaN mixed in, every partial product is exact in any
  order, so the comparison is exact too, f16 and bf16 included; random
  f32/f64 factors differ from JAX's left-to-right order by rounding only:
  each side rounds at most T - 1 times, so |ours - jax| <= 2 (T - 1) u
  |result| with u = 2**-24 (f32), 2**-53 (f64): rtol 2 * 99 * 2**-24 =
  1.2e-5 for f32 at T = 100.
* logsumexp: f32 and f64 at rtol = atol = 1e-5 (results of order 1..5,
  each of JAX's T steps and our log2(T) steps rounds once); f16 and bf16
  round every step in the narrow type on both sides (JAX's StableHLO
  computes the body in it): JAX's error alone reaches T ulps of the result,
  so the bound is (T + log2 T + 2) ulp(|result|) of the narrow type.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import onnxruntime as ort
import pytest
from jax import lax

import hlo2onnx
from util import check_model, op_counts

SIZES = (1, 2, 3, 7, 64, 100)
FLOATS = {"f32": np.float32, "f64": np.float64, "f16": np.float16, "bf16": ml_dtypes.bfloat16}
INTS = {"i8": np.int8, "u8": np.uint8, "i16": np.int16, "u16": np.uint16, "i32": np.int32,
        "u32": np.uint32, "i64": np.int64, "u64": np.uint64}
DTYPES = {**FLOATS, **INTS}
WIDE = ("f64", "i64", "u64")  # need jax_enable_x64

OPS = {
    "cummax": lax.cummax,
    "cummin": lax.cummin,
    "cumprod": lax.cumprod,
    "cumlogsumexp": lax.cumlogsumexp,
}


def _fn(op, axis, reverse, dt_name):
    f = lambda a: OPS[op](a, axis=axis, reverse=reverse)  # noqa: E731
    if dt_name != "bf16":
        return f
    # onnxruntime's Python API takes and returns no bfloat16 arrays: the
    # model's input and output are f32 holding bf16 values
    return lambda a: f(a.astype(jnp.bfloat16)).astype(jnp.float32)


def _walk_exponents(rng, shape, axis):
    """Exponents in {-1, 0, 1} whose running sum along axis stays in
    [-6, 6]: every product of consecutive factors 2**e is then within
    2**+-12, exact in f16 (and wider) in any order."""
    steps = rng.integers(-1, 2, shape)
    steps = np.moveaxis(steps, axis, -1).copy()
    run = np.zeros(steps.shape[:-1], np.int64)
    for i in range(steps.shape[-1]):
        s = steps[..., i]
        s = np.where(np.abs(run + s) > 6, -s, s)
        steps[..., i] = s
        run += s
    return np.moveaxis(steps, -1, axis)


def _inputs(op, dt_name, shape, axis, rng):
    dt = DTYPES[dt_name]
    if dt_name in INTS:
        info = np.iinfo(dt)
        if op == "cumprod":  # overflows: the wrap is checked
            lo = 0 if info.min == 0 else -5
            return rng.integers(lo, 6, shape).astype(dt)
        x = rng.integers(max(info.min, -1000), min(info.max, 1000), shape).astype(dt)
        flat = x.reshape(-1)  # the extremes, where there is room
        if flat.size >= 4:
            flat[rng.choice(flat.size, 2, replace=False)] = [info.min, info.max]
        return x
    if op == "cumprod":
        signs = rng.choice([-1.0, 1.0], shape)
        x = signs * np.exp2(_walk_exponents(rng, shape, axis).astype(np.float64))
    else:
        x = rng.standard_normal(shape) * 3
    flat = x.reshape(-1)
    if flat.size >= 8:  # NaN, +-inf (and a zero for products)
        at = rng.choice(flat.size, 4, replace=False)
        flat[at] = [np.nan, np.inf, -np.inf, 0.0]
    # exact values of the type (bf16 travels as f32)
    x = x.astype(dt)
    return x.astype(np.float32) if dt_name == "bf16" else x


def _tolerance(op, dt_name, jax_out, T):
    """(rtol, atol) per the module docstring; None: exact."""
    if op in ("cummax", "cummin") or dt_name in INTS or op == "cumprod":
        return None
    if dt_name in ("f32", "f64"):
        return 1e-5, np.full(jax_out.shape, 1e-5)
    fi = jnp.finfo(jnp.bfloat16 if dt_name == "bf16" else jnp.float16)
    mag = np.nan_to_num(np.abs(jax_out.astype(np.float64)), posinf=0, neginf=0)
    ulp = 2.0 ** (np.floor(np.log2(np.maximum(mag, float(fi.smallest_normal)))) - fi.nmant)
    return 0.0, (T + np.log2(max(T, 1)) + 2) * ulp


def _session(fn, shape, dtype):
    """fn converted for an input of the symbolic shape ("2,T"), checked
    (full_check), in an onnxruntime session."""
    spec = jax.ShapeDtypeStruct(jax.export.symbolic_shape(shape), dtype)
    model = hlo2onnx.to_onnx(fn, [spec])
    check_model(model)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _check(op, dt_name, symbolic, axis, reverse, seed=0, fn=None, sizes=SIZES):
    """Converts fn (the op) once over `symbolic` (a tuple with "T"), then
    compares onnxruntime with JAX at each size of T."""
    dt = DTYPES[dt_name]
    fn = fn or _fn(op, axis, reverse, dt_name)
    in_dt = np.float32 if dt_name == "bf16" else dt
    spec = jax.ShapeDtypeStruct(jax.export.symbolic_shape(",".join(map(str, symbolic))), in_dt)
    model = hlo2onnx.to_onnx(fn, [spec])
    check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    rng = np.random.default_rng(seed)
    for T in sizes:
        shape = tuple(T if d == "T" else d for d in symbolic)
        x = _inputs(op, dt_name, shape, axis, rng)
        want = np.asarray(jax.jit(fn)(x))
        got = sess.run(None, {name: x})[0]
        assert got.shape == want.shape and got.dtype == want.dtype, (T, got.dtype, want.dtype)
        tol = _tolerance(op, dt_name, want, T)
        if tol is None:
            np.testing.assert_array_equal(got, want, err_msg=f"T={T}")
        else:
            g, w = got.astype(np.float64), want.astype(np.float64)
            np.testing.assert_array_equal(np.isnan(g), np.isnan(w), err_msg=f"T={T}")
            np.testing.assert_array_equal(g[np.isinf(w)], w[np.isinf(w)], err_msg=f"T={T}")
            finite = np.isfinite(w)
            err = np.abs(g[finite] - w[finite])
            bound = tol[0] * np.abs(w[finite]) + tol[1][finite]
            assert np.all(err <= bound), (
                f"T={T}: max error {np.max(err / bound):.2f} x the bound")
    return model


CASES = [(op, dt, rev) for op in OPS for dt in DTYPES for rev in (False, True)
         if op != "cumlogsumexp" or dt in FLOATS]


@pytest.mark.parametrize("op,dt_name,reverse", CASES,
                         ids=[f"{o}-{d}-{'rev' if r else 'fwd'}" for o, d, r in CASES])
def test_cumulative_symbolic_axis(op, dt_name, reverse):
    with jax.enable_x64(dt_name in WIDE):
        model = _check(op, dt_name, (2, "T", 3), 1, reverse)
    # a scan: one Loop; products and logsumexp choose at run time between
    # the prefix doubling and a window of the digits of T (an If of two)
    counts = op_counts(model)
    if op in ("cummax", "cummin"):
        assert (counts["Loop"], counts["If"]) == (1, 0)
    else:
        assert (counts["Loop"], counts["If"]) == (2, 1)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("op", ["cummax", "cumprod"])
def test_any_axis(op, axis):
    symbolic = [2, 3, 4]
    symbolic[axis] = "T"
    _check(op, "f32", tuple(symbolic), axis, False, seed=axis)
    _check(op, "i32", tuple(symbolic), axis, True, seed=axis)


def test_batch_and_axis_symbolic():
    """Both dimensions symbolic: the batch B is read at run time too."""
    fn = lambda a: (lax.cummax(a, axis=1), jnp.cumprod(a, axis=1))  # noqa: E731
    sess = _session(fn, "B,T", np.int32)
    rng = np.random.default_rng(5)
    for B, T in [(1, 1), (5, 7), (2, 100)]:
        x = rng.integers(-4, 5, (B, T)).astype(np.int32)
        for got, want in zip(sess.run(None, {sess.get_inputs()[0].name: x}), jax.jit(fn)(x)):
            np.testing.assert_array_equal(got, np.asarray(want))


def _window(a, init, op, T):
    """A window of T cells over an axis of 2T (a sliding window, not a
    cumulative one), with T - 1 cells of padding in front."""
    return lax.reduce_window(a, jnp.array(init, a.dtype), op, (1, T), (1, 1),
                             ((0, 0), (T - 1, 0)))


@pytest.mark.parametrize("op", ["max", "mul"])
def test_sliding_symbolic_window(op):
    """A window shorter than the axis: the doubling stops at the window's
    length (max: two overlapping runs; mul: the binary digits of T)."""
    body, init = {"max": (lax.max, -np.inf), "mul": (lax.mul, 1.0)}[op]

    def fn(a):
        T = a.shape[1]
        return _window(jnp.concatenate([a, a[:, ::-1]], 1), init, body, T)

    sess = _session(fn, "2,T", np.float32)
    rng = np.random.default_rng(7)
    for T in SIZES:
        # powers of two: products exact in any order
        x = (rng.choice([-1.0, 1.0], (2, T)) *
             np.exp2(_walk_exponents(rng, (2, T), 1))).astype(np.float32)
        want = np.asarray(jax.jit(fn)(x))
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        np.testing.assert_array_equal(got, want, err_msg=f"T={T}")


PADDINGS = {
    "crop_end": lambda T: (T - 1, -2),      # negative padding crops the far end
    "crop_front": lambda T: (-1, T - 1),    # ... and the near end, scanned from the end
    "both_sides": lambda T: (2, T - 1),
    "wider_than_window": lambda T: (T + 1, 3),
}


@pytest.mark.parametrize("op", ["max", "mul"])
@pytest.mark.parametrize("padding", list(PADDINGS))
def test_symbolic_window_paddings(op, padding):
    """Padding on either side, negative too: windows wholly in the padding
    are the init, cropped cells are never read."""
    body, init = {"max": (lax.max, -np.inf), "mul": (lax.mul, 1.0)}[op]

    def fn(a):
        T = a.shape[1]
        return lax.reduce_window(a, jnp.array(init, a.dtype), body, (1, T), (1, 1),
                                 ((0, 0), PADDINGS[padding](T)))

    sess = _session(fn, "2,T", np.float32)
    rng = np.random.default_rng(13)
    for T in (3, 7, 64):
        x = rng.choice([0.5, 1.0, 2.0, -1.0], (2, T)).astype(np.float32)
        want = np.asarray(jax.jit(fn)(x))
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        np.testing.assert_array_equal(got, want, err_msg=f"T={T}")


@pytest.mark.parametrize("op", ["max", "mul", "min_init"])
def test_window_along_two_symbolic_axes(op):
    """A box window: the axes are scanned one after the other (forward
    along the first, from the end along the second)."""
    body, init = {"max": (lax.max, -np.inf), "mul": (lax.mul, 1.0),
                  "min_init": (lax.min, 0.25)}[op]

    def fn(a):
        T = a.shape[1]
        return lax.reduce_window(a, jnp.array(init, a.dtype), body, (T, T), (1, 1),
                                 ((T - 1, 0), (0, T - 1)))

    sess = _session(fn, "T,T", np.float32)
    rng = np.random.default_rng(17)
    for T in (1, 2, 7, 20):
        x = rng.choice([0.5, 1.0, 2.0, -1.0], (T, T)).astype(np.float32)
        want = np.asarray(jax.jit(fn)(x))
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        np.testing.assert_array_equal(got, want, err_msg=f"T={T}")


def test_max_with_an_init_that_is_not_the_identity():
    """XLA starts each window from the init: max(0.5, window)."""
    fn = lambda a: _window(a, 0.5, lax.max, a.shape[1])  # noqa: E731
    sess = _session(fn, "3,T", np.float32)
    rng = np.random.default_rng(9)
    for T in SIZES:
        x = (rng.standard_normal((3, T)) - 1).astype(np.float32)
        want = np.asarray(jax.jit(fn)(x))
        np.testing.assert_array_equal(sess.run(None, {sess.get_inputs()[0].name: x})[0], want)


def test_product_with_an_init_that_is_not_one_is_refused():
    """XLA folds a product's init in once; the doubling would fold it into
    every padded cell: refused with the reason."""
    fn = lambda a: _window(a, 2.0, lax.mul, a.shape[1])  # noqa: E731
    spec = jax.ShapeDtypeStruct(jax.export.symbolic_shape("3,T"), np.float32)
    with pytest.raises(hlo2onnx.UnsupportedOpError, match="init is not the identity"):
        hlo2onnx.to_onnx(fn, [spec])


def test_random_float_products_differ_by_rounding_only():
    """Random f32 factors: the doubling multiplies in another order than
    JAX's left to right, each side rounding at most T - 1 times."""
    fn = lambda a: jnp.cumprod(a, axis=1)  # noqa: E731
    sess = _session(fn, "4,T", np.float32)
    rng = np.random.default_rng(11)
    for T in SIZES:
        x = rng.uniform(0.9, 1.1, (4, T)).astype(np.float32)
        want = np.asarray(jax.jit(fn)(x))
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        np.testing.assert_allclose(got, want, rtol=2 * max(T - 1, 1) * 2.0**-24, atol=0)
