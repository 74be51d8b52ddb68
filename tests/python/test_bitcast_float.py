"""Float functions written with bit casts (src/lower/elementwise.c, "float
bits"): stablehlo.bitcast_convert from a float, chlo.next_after and
stablehlo.reduce_precision, and the jnp functions JAX writes with them
(copysign, frexp, ldexp, spacing, nextafter, signbit) and
jax.random.truncated_normal.  ONNX (before opset 26) cannot read a float's
bytes, so the conversion computes the fields from the value; the results
are compared with JAX bit for bit - float outputs as their bit patterns -
on normal, subnormal, ±0, ±inf and NaN inputs for every float type.

NaN: the conversion reads every NaN as the positive quiet NaN (the sign and
payload of a NaN cannot be read), so the inputs' NaNs are that NaN (what
jnp.nan is) and NaN outputs are compared as NaN (JAX's own NaN results can
carry either sign: x86 makes negative ones).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from jax import lax

from test_elementwise import BF16, DTYPES, FLOATS, convert, run_onnx

UINT_OF = {2: np.uint16, 4: np.uint32, 8: np.uint64}


def float_specimens(dt: np.dtype, n_random: int = 400, seed: int = 0) -> np.ndarray:
    """Every kind of value of float type dt: ±0, ±inf, NaN, the extremes of
    the normal and subnormal ranges, halfway points, and random bit
    patterns over every exponent (subnormals included, NaN patterns
    excluded: see the module docstring)."""
    fi = ml_dtypes.finfo(dt)
    ut = UINT_OF[dt.itemsize]
    nbits = 8 * dt.itemsize
    m = fi.nmant
    vals = [0.0, 1.0, 0.5, 1.5, 2.0, 3.0, 0.1, 1e-3, 10.0, 100.0, 12345.678,
            float(fi.max), float(fi.tiny), float(fi.smallest_subnormal),
            float(fi.tiny) - float(fi.smallest_subnormal), 2 * float(fi.smallest_subnormal),
            3 * float(fi.smallest_subnormal), np.inf, 1 + float(fi.eps), 1 - float(fi.epsneg)]
    with np.errstate(over="ignore"):
        x = np.array(vals, np.float64).astype(dt)
    x = np.concatenate([x, -x, np.array([np.nan], dt)])
    rng = np.random.default_rng(seed)
    pat = rng.integers(0, 2 ** min(nbits, 63), n_random, dtype=np.uint64)
    if nbits == 64:
        pat = pat | (rng.integers(0, 2, n_random, dtype=np.uint64) << np.uint64(63))
    # every exponent field: the exponent bits drawn uniformly
    exp_field = rng.integers(0, 2 ** (nbits - 1 - m) - 1, n_random, dtype=np.uint64)
    mant_mask = np.uint64((1 << m) - 1)
    sign = pat & np.uint64(1 << (nbits - 1)) if nbits < 64 else pat & np.uint64(1 << 63)
    pat = sign | (exp_field << np.uint64(m)) | (pat & mant_mask)
    r = pat.astype(ut).view(dt)
    return np.concatenate([x, r])


def bit_pattern(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype == BF16:
        a = a.astype(np.float32)
    return a.view(UINT_OF[a.dtype.itemsize])


def assert_bits_equal(actual: np.ndarray, expected: np.ndarray, inputs) -> None:
    """Bit for bit, NaN outputs as NaN."""
    expected = np.asarray(expected)
    if expected.dtype == BF16:
        expected = expected.astype(np.float32)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    if expected.dtype.kind == "f":
        nan_a, nan_e = np.isnan(actual), np.isnan(expected)
        np.testing.assert_array_equal(nan_a, nan_e)
        actual, expected = actual[~nan_e], expected[~nan_e]
        inputs = [x[~nan_e] if x.shape == nan_e.shape else x for x in inputs]
        actual, expected = bit_pattern(actual), bit_pattern(expected)
    bad = actual != expected
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        ins = ", ".join(repr(x[i]) for x in inputs if x.shape == bad.shape)
        raise AssertionError(f"{int(bad.sum())} of {bad.size} differ; first at inputs ({ins}): "
                             f"onnx {actual[i]:#x}, jax {expected[i]:#x}")


def is_subnormal(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a)
    if a.dtype.kind != "f" and a.dtype != BF16:
        return np.zeros(a.shape, bool)
    mag = np.abs(a.astype(np.float64))
    return (mag > 0) & (mag < float(ml_dtypes.finfo(a.dtype).tiny))


def bit_case(fn, xs: list[np.ndarray], ieee_fn=None, **opts):
    """Converts fn, runs it and compares with JAX bit for bit.  XLA on CPU
    computes f32 and f64 (and bf16, in f32) with subnormals flushed to zero
    (FTZ/DAZ): where an input or the result is subnormal, its arithmetic
    parts (frexp's scaling, ldexp's products, next_after's compares) treat
    the value as 0, a property of that runtime.  The ONNX model computes
    the IEEE result there, so those elements are compared with ieee_fn
    (numpy's and ml_dtypes' own frexp, ldexp, nextafter, spacing).  f16 is
    computed in f32 by XLA, where its subnormals are normal: JAX
    everywhere."""
    with jax.enable_x64(True):
        model = convert(fn, [(x.shape[0], x.dtype) for x in xs], **opts)
        expected = [np.asarray(e) for e in jax.tree_util.tree_leaves(jax.jit(fn)(*xs))]
    if ieee_fn is not None and xs[0].dtype != np.float16:
        ieee = ieee_fn(*xs)
        ieee = list(ieee) if isinstance(ieee, tuple) else [ieee]
        flushed = np.zeros(xs[0].shape, bool)
        for x in xs:
            flushed |= is_subnormal(x)
        for r in ieee:
            flushed |= is_subnormal(r)
        expected = [np.where(flushed, np.asarray(r).astype(e.dtype), e)
                    for e, r in zip(expected, ieee)]
    actual = run_onnx(model, xs)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert_bits_equal(a, e, xs)
    return model


def pairs(dt: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of a few specimens (so each kind meets each), and random pairs."""
    few = float_specimens(dt, 30, seed=1)
    a, b = np.repeat(few, len(few)), np.tile(few, len(few))
    many = float_specimens(dt, 300, seed=2)
    rng = np.random.default_rng(5)
    return (np.concatenate([a, many]), np.concatenate([b, rng.permutation(many)]))


# ---------------------------------------------------------------------------
# bitcast_convert from a float


@pytest.mark.parametrize("dname", FLOATS)
@pytest.mark.parametrize("signed", [True, False], ids=["int", "uint"])
def test_bitcast_float_to_int(dname: str, signed: bool):
    dt = DTYPES[dname]
    it = np.dtype(f"{'i' if signed else 'u'}{dt.itemsize}")
    bit_case(lambda v: lax.bitcast_convert_type(v, it), [float_specimens(dt)])


@pytest.mark.parametrize("dname", FLOATS)
def test_bitcast_round_trip(dname: str):
    dt = DTYPES[dname]
    it = UINT_OF[dt.itemsize]
    fn = lambda v: lax.bitcast_convert_type(lax.bitcast_convert_type(v, it) + it(1), dt)  # noqa: E731
    x = float_specimens(dt)
    x = x[np.isfinite(x.astype(np.float64))]  # +1 on inf or NaN bits makes a NaN payload
    bit_case(fn, [x])


def test_bitcast_f16_bf16():
    bit_case(lambda v: lax.bitcast_convert_type(v, BF16), [float_specimens(np.dtype(np.float16))])


def test_bitcast_float_needs_no_bitwise_ops():
    """float -> int is arithmetic only: it converts at opset 17 too."""
    x = float_specimens(np.dtype(np.float32))
    bit_case(lambda v: lax.bitcast_convert_type(v, np.int32), [x], opset=17)


@pytest.mark.parametrize("src,dst", [("f32", "u8"), ("f64", "u16"), ("f64", "f32"), ("f32", "bf16"),
                                     ("f16", "u8"), ("f64", "i8")])
def test_bitcast_float_to_narrower(src: str, dst: str):
    """A float read as several narrower elements (a new last axis, the low
    bytes first)."""
    sdt, ddt = DTYPES[src], DTYPES[dst]
    x = float_specimens(sdt)
    if ddt.kind == "f" or ddt == BF16:  # the halves of a NaN or inf can be NaN patterns
        x = x[np.isfinite(x.astype(np.float64))]
    bit_case(lambda v: lax.bitcast_convert_type(v, ddt), [x])


def test_bitcast_float_to_wider_is_reported():
    import hlo2onnx

    with pytest.raises(hlo2onnx.UnsupportedOpError, match="wider"):
        convert(lambda v: lax.bitcast_convert_type(v.reshape(2, 2), np.uint32),
                [(4, np.float16)])


# ---------------------------------------------------------------------------
# the jnp functions written with bitcasts and next_after

def ieee_spacing(x: np.ndarray) -> np.ndarray:
    """JAX's spacing for f32, f64 and bf16 - nextafter(x, copysign(inf, x))
    - x - in IEEE arithmetic: np.spacing, except that -0.0 gets the
    negative smallest subnormal (as JAX computes it op by op, outside jit),
    where numpy gives the positive one."""
    tiny = ml_dtypes.finfo(x.dtype).smallest_subnormal
    return np.where(x == 0, np.copysign(np.array(tiny, x.dtype), x), np.spacing(x))


# name: (JAX function, IEEE reference for FTZ-affected elements, see bit_case)
UNARY = {"signbit": (jnp.signbit, np.signbit), "frexp": (jnp.frexp, np.frexp),
         "spacing": (jnp.spacing, ieee_spacing),
         "copysign_1": (lambda x: jnp.copysign(jnp.ones_like(x), x), None),
         # compares, no bitcast: here for the same inputs
         "isneginf": (jnp.isneginf, None), "isposinf": (jnp.isposinf, None),
         "isfinite": (jnp.isfinite, None)}
BINARY = {"copysign": (jnp.copysign, np.copysign), "nextafter": (jnp.nextafter, np.nextafter)}


@pytest.mark.parametrize("dname", FLOATS)
@pytest.mark.parametrize("name", list(UNARY))
def test_unary_bit_functions(name: str, dname: str):
    fn, ieee = UNARY[name]
    bit_case(fn, [float_specimens(DTYPES[dname])], ieee)


@pytest.mark.parametrize("dname", FLOATS)
@pytest.mark.parametrize("name", list(BINARY))
def test_binary_bit_functions(name: str, dname: str):
    fn, ieee = BINARY[name]
    bit_case(fn, list(pairs(DTYPES[dname])), ieee)


@pytest.mark.parametrize("dname", FLOATS)
def test_ldexp(dname: str):
    dt = DTYPES[dname]
    x = float_specimens(dt)
    rng = np.random.default_rng(7)
    fi = ml_dtypes.finfo(dt)
    span = 2 * (fi.maxexp - fi.minexp + fi.nmant)
    e = rng.integers(-span, span, len(x)).astype(np.int32)
    e[:40] = np.arange(-20, 20)
    bit_case(jnp.ldexp, [x, e], np.ldexp)


def test_frexp_select_keeps_negative_zero():
    """frexp and ldexp pass ±0 through with select(x == 0 | ..., x, formula):
    -0.0 on the true side of a Where, which onnxruntime turns into +0.0;
    the conversion restores the sign there (lower_select)."""
    x = np.array([-0.0, 0.0, -1.0, 3.0], np.float32)
    bit_case(jnp.frexp, [x])
    bit_case(lambda v: jnp.where(v == 0, v, v * 2), [x])


@pytest.mark.parametrize("dname", ["f32", "f64"])
def test_next_after_chlo(dname: str):
    """chlo.next_after directly (jnp.nextafter): every pair of specimens."""
    a, b = pairs(DTYPES[dname])
    bit_case(lax.nextafter, [a, b], np.nextafter)


# ---------------------------------------------------------------------------
# reduce_precision: any exponent and mantissa bits


_PRECISIONS = [(5, 10), (8, 7), (8, 23), (11, 52), (4, 3), (5, 2), (3, 1), (2, 0), (6, 9),
               (10, 40), (8, 3), (11, 10), (1, 4)]


@pytest.mark.parametrize("dname", FLOATS)
@pytest.mark.parametrize("bits", _PRECISIONS, ids=str)
def test_reduce_precision_any_format(dname: str, bits):
    """XLA's rounding to nearest even into the narrow format, overflow to
    inf, no subnormals in the narrow format (flushed to ±0), NaN kept; on
    every kind of input, halfway points of the narrow mantissa included.
    The input types' own subnormals are compared with the IEEE rounding of
    the same rule (bit_case; XLA flushes them first)."""
    dt = DTYPES[dname]
    e_bits, m_bits = bits
    x = float_specimens(dt)
    fi = ml_dtypes.finfo(dt)
    if m_bits < fi.nmant:  # values halfway between narrow neighbours, and just off
        half = np.array([1 + 2.0 ** -(m_bits + 1), 1 + 3 * 2.0 ** -(m_bits + 1),
                         1 + 2.0 ** -(m_bits + 1) + 2.0 ** -fi.nmant], np.float64)
        x = np.concatenate([x, half.astype(dt), -half.astype(dt)])
    if e_bits < (fi.maxexp - fi.minexp).bit_length():  # around the narrow range's ends
        bias = 2 ** (e_bits - 1) - 1
        ends = np.array([2.0 ** (1 - bias), 2.0 ** (1 - bias) * (1 - 2.0 ** -(m_bits + 2)),
                         2.0 ** -bias, 2.0 ** bias * (2 - 2.0 ** -m_bits),
                         2.0 ** bias * (2 - 2.0 ** -(m_bits + 1)), 2.0 ** (bias + 1)])
        with np.errstate(over="ignore"):
            x = np.concatenate([x, ends.astype(dt), -ends.astype(dt)])
    fn = lambda v: lax.reduce_precision(v, e_bits, m_bits)  # noqa: E731
    bit_case(fn, [x], lambda v: reduce_precision_ref(v, e_bits, m_bits))


def reduce_precision_ref(x: np.ndarray, e_bits: int, m_bits: int) -> np.ndarray:
    """XLA's reduce_precision on the bit pattern, in numpy (for the
    subnormal inputs, which XLA on CPU flushes before it rounds)."""
    fi = ml_dtypes.finfo(x.dtype)
    m, w = fi.nmant, 8 * x.dtype.itemsize
    e = w - 1 - m
    b = x.view(UINT_OF[x.dtype.itemsize]).astype(np.uint64)
    sign = b & np.uint64(1 << (w - 1))
    mag = b & np.uint64((1 << (w - 1)) - 1)
    if m_bits < m:
        shift = np.uint64(m - m_bits)
        last = (mag >> shift) & np.uint64(1)
        mag = (mag + last + np.uint64((1 << (m - m_bits - 1)) - 1)) >> shift << shift
    if e_bits < e:
        bias, nb = 2 ** (e - 1) - 1, 2 ** (e_bits - 1) - 1
        field = mag >> np.uint64(m)
        mag = np.where(field > bias + nb, np.uint64(((1 << e) - 1) << m), mag)
        mag = np.where(field <= bias - nb, np.uint64(0), mag)
    r = (sign | mag).astype(UINT_OF[x.dtype.itemsize]).view(x.dtype)
    return np.where(np.isnan(x), x, r)


@pytest.mark.parametrize("dname", ["f16", "bf16"])
@pytest.mark.parametrize("name", ["bitcast", "nextafter_from", "nextafter_to"])
def test_bits_of_narrow_arithmetic(dname: str, name: str):
    """The bits of an f16 (bf16) sum: onnxruntime computes chains of f16 ops
    in f32 without rounding between them, so the value arrives off the f16
    grid; the reading rounds it again (fuzz finding: bitcast(x + y) one ulp
    low before), and next_after compares the rounded values (a sum equal to
    the target after rounding must return the target)."""
    dt = DTYPES[dname]
    rng = np.random.default_rng(11)
    a, b, c = (rng.standard_normal((3, 3000)) * 10.0 ** rng.uniform(-5, 3, (3, 3000))).astype(dt)
    c[:1000] = (a[:1000].astype(np.float32) + b[:1000].astype(np.float32)).astype(dt)
    it = np.dtype(f"i{dt.itemsize}")
    fn = {"bitcast": lambda x, y, z: (lax.bitcast_convert_type(x + y, it),
                                      lax.bitcast_convert_type(z, it)),
          "nextafter_from": lambda x, y, z: jnp.nextafter(x + y, z),
          "nextafter_to": lambda x, y, z: jnp.nextafter(z, x + y)}[name]
    bit_case(fn, [a, b, c])
