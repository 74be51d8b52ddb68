"""XLA's random number ops (src/lower/random.c): rng_bit_generator's THREE_FRY
and PHILOX generators (and DEFAULT, which is PHILOX on CPU) give XLA's bits
exactly - state, counters and output order - for every output width and
shape; jax.random with the 'rbg' and 'unsafe_rbg' implementations (which
use them, with width-changing bitcasts of the key) and with the default
threefry implementation match JAX.  The legacy stateful stablehlo.rng
(lax.rng_uniform) is refused with its reason.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import pytest
from jax import lax

import hlo2onnx
from test_elementwise import _xla_run, run_onnx
from util import check_model

A = lax.RandomAlgorithm
STATES = [np.array([123456789012345, 987654321], np.uint64),
          np.array([2 ** 64 - 1, 2 ** 64 - 3], np.uint64)]  # counters that wrap
SHAPES = [(), (1,), (5,), (4, 3), (3, 5), (3, 5, 7), (2, 1, 3)]  # even, odd, all-odd splits


def convert(fn, inputs, **opts) -> onnx.ModelProto:
    with jax.enable_x64(True):
        model = hlo2onnx.to_onnx(fn, inputs, **opts)
    check_model(model)
    return model


def assert_same_bits(fn, xs):
    model = convert(fn, xs)
    with jax.enable_x64(True):
        expected = [np.asarray(e) for e in jax.tree_util.tree_leaves(jax.jit(fn)(*xs))]
    actual = run_onnx(model, xs)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype and a.shape == e.shape
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("alg", [A.RNG_THREE_FRY, A.RNG_PHILOX, A.RNG_DEFAULT],
                         ids=["three_fry", "philox", "default"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64],
                         ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_rng_bit_generator(alg, dtype, shape):
    for state in STATES:
        assert_same_bits(lambda s: lax.rng_bit_generator(s, shape, dtype=dtype, algorithm=alg),
                         [state])


@pytest.mark.parametrize("bits", ["ui32", "ui64"])
def test_philox_three_word_state(bits: str):
    """PHILOX with a u64[3] state (key, 128-bit counter) - which JAX does not
    emit but XLA accepts - compared with XLA on the StableHLO text; the
    counter's low word carries into the high one."""
    out = f"tensor<3x5x{bits}>"
    text = (f"module @m {{\n  func.func public @main(%s: tensor<3xui64>) -> "
            f"(tensor<3xui64>, {out}) {{\n"
            f"    %0, %1 = stablehlo.rng_bit_generator %s, algorithm = PHILOX : "
            f"(tensor<3xui64>) -> (tensor<3xui64>, {out})\n"
            f"    return %0, %1 : tensor<3xui64>, {out}\n  }}\n}}\n")
    from hlo2onnx import _core
    state = np.array([5, 2 ** 64 - 2, 7], np.uint64)
    model = onnx.load_from_string(_core.convert(text, [], None, {}))
    check_model(model)
    expected = _xla_run(text, [state])
    actual = run_onnx(model, [state])
    for a, e in zip(actual, expected):
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("impl", ["rbg", "unsafe_rbg"])
@pytest.mark.parametrize("name", ["uniform", "bits", "split", "fold_in", "randint", "normal"])
def test_rbg_keys(impl: str, name: str):
    """jax.random with the rbg implementations: rng_bit_generator behind
    bitcasts of the u32[4] key to u64[2] and back."""
    key = np.asarray(jax.random.key_data(jax.random.key(7, impl=impl)))
    wrap = lambda k: jax.random.wrap_key_data(k, impl=impl)  # noqa: E731
    fns = {
        "uniform": lambda k: jax.random.uniform(wrap(k), (5, 3)),
        "bits": lambda k: jax.random.bits(wrap(k), (7,)),
        "split": lambda k: jax.random.key_data(jax.random.split(wrap(k), 3)),
        "fold_in": lambda k: jax.random.bits(jax.random.fold_in(wrap(k), 3), (5,)),
        "randint": lambda k: jax.random.randint(wrap(k), (100,), 0, 10),
        "normal": lambda k: jax.random.normal(wrap(k), (1001,)),
    }
    fn = fns[name]
    if name != "normal":
        assert_same_bits(fn, [key])
        return
    # the normal's erf_inv is a polynomial evaluated by each runtime: ulps apart
    model = convert(fn, [key])
    with jax.enable_x64(True):  # as convert: f64 by default
        expected = np.asarray(jax.jit(fn)(key))
    np.testing.assert_allclose(run_onnx(model, [key])[0], expected, rtol=1e-5, atol=1e-5)


def test_width_changing_integer_bitcasts():
    x = np.arange(24, dtype=np.uint8).reshape(3, 8) * np.uint8(37)
    assert_same_bits(lambda v: lax.bitcast_convert_type(v, np.uint64), [x])
    assert_same_bits(lambda v: lax.bitcast_convert_type(v.reshape(3, 2, 4), np.int32), [x])
    y = np.array([2 ** 64 - 5, 12345678901234567, 0], np.uint64)
    assert_same_bits(lambda v: lax.bitcast_convert_type(v, np.uint16), [y])
    z = np.array([[0x3F800000, 0x7F800000], [0x00000001, 0x80000000]], np.uint32)
    assert_same_bits(lambda v: lax.bitcast_convert_type(v.reshape(2, 2), jnp.float64), [z])


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float16], ids=["f32", "f16"])
def test_truncated_normal_default_prng(dtype):
    """truncated_normal (threefry keys) reaches chlo.next_after and the float
    bitcasts; the rest is the erf/erf_inv arithmetic of each runtime."""
    key = np.asarray(jax.random.key_data(jax.random.key(42)))
    fn = lambda k: jax.random.truncated_normal(jax.random.wrap_key_data(k), -1.5, 2.0,  # noqa: E731
                                               (1000,), dtype)
    model = convert(fn, [key])
    actual = run_onnx(model, [key])[0]
    with jax.enable_x64(True):
        expected = np.asarray(jax.jit(fn)(key))
    # f16: XLA evaluates the f16 transform (erf, erf_inv, log) in f32 and
    # rounds once; the converted formulas round to f16 at more steps: up to
    # 4 f16 ulps of the largest values (2^-9 each at |x| near 2)
    rtol, atol = (1e-5, 1e-5) if dtype == jnp.float32 else (0.0, 4 * 2.0 ** -9)
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64),
                               rtol=rtol, atol=atol)
    assert ((actual >= -1.5) & (actual <= 2.0)).all()


def test_rng_bit_generator_needs_opset_18():
    with pytest.raises(hlo2onnx.UnsupportedOpError, match="opset 18"):
        convert(lambda s: lax.rng_bit_generator(s, (3,), dtype=np.uint32),
                [jax.ShapeDtypeStruct((2,), np.uint64)], opset=17)


def test_legacy_rng_is_refused_with_reason():
    with pytest.raises(hlo2onnx.UnsupportedOpError, match=r"stablehlo.rng: .*hidden generator state"):
        convert(lambda x: x + lax.rng_uniform(0.0, 1.0, (3,)), [jax.ShapeDtypeStruct((3,), np.float32)])
