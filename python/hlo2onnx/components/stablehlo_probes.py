"""Probe programs for the StableHLO op table (docs/ops.md).

For each StableHLO/CHLO op that JAX can be made to emit, a tiny JAX function
whose lowering contains it.  ``python -m hlo2onnx.tables`` lowers each probe,
checks that the op really is in the text, converts it without the fusion
passes (``optimize=False``: what the op's converter itself emits), and lists
the ONNX ops of the nodes that came from the probe's ``jax.named_scope``
("probe"), so helper ops outside the scope do not count.  Ops without a probe
(or whose probe no longer emits them) fall back to the hint column of
``src/ir/ops.def``.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

SCOPE = "probe"


@dataclasses.dataclass(frozen=True)
class Probe:
    label: str  # what the table shows, e.g. "jnp.abs(x)"
    body: Callable[[], Callable]  # () -> f(*inputs); the op is computed under SCOPE
    inputs: Sequence[Any]
    dtypes: Sequence[str] | None = None


def _scoped(make):
    """() -> f where f(*xs) runs make()(*xs) inside the probe's name scope."""

    def build():
        import jax

        g = make()

        def f(*xs):
            with jax.named_scope(SCOPE):
                return g(*xs)

        return f

    return build


def _jnp():
    import jax.numpy as jnp

    return jnp


def _lax():
    from jax import lax

    return lax


def _jsl():
    import jax.scipy.linalg as jsl

    return jsl


def _unary(label, attr, module=_jnp, shape=(3, 4), dtype="float32", **kw):
    return Probe(label, _scoped(lambda: (lambda x: getattr(module(), attr)(x, **kw))),
                 [shape], [dtype])


def _binary(label, fn, dtype="float32"):
    return Probe(label, _scoped(lambda: fn), [(3, 4), (3, 4)], [dtype, dtype])


def _iota():
    import jax

    def f(x):
        with jax.named_scope(SCOPE):
            i = _lax().iota(_jnp().float32, 4)
        return x + i

    return f


def _dynamic_iota():
    import jax

    def f(x):
        with jax.named_scope(SCOPE):
            i = _lax().iota(_jnp().float32, x.shape[0])
        return x + i

    return f


def _constant():
    import jax
    import numpy as np

    def f(x):
        with jax.named_scope(SCOPE):
            c = _jnp().asarray(np.arange(4, dtype=np.float32))
        return x * c

    return f


def _dynamic_slice():
    return lambda x, i: _lax().dynamic_slice(x, (i, 0), (2, 4))


def _dynamic_update_slice():
    return lambda x, u, i: _lax().dynamic_update_slice(x, u, (i, 0))


def _conv():
    lax = _lax()
    return lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "SAME",
                                                 dimension_numbers=("NCHW", "OIHW", "NCHW"))


def _dynamic_conv():
    lax = _lax()
    return lambda x, w: lax.conv_general_dilated(x, w, (2, 2), "SAME",
                                                 dimension_numbers=("NCHW", "OIHW", "NCHW"))


def _reduce_window():
    lax = _lax()
    jnp = _jnp()
    return lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")


def _while():
    lax = _lax()
    return lambda x: lax.fori_loop(0, 3, lambda i, v: v * 2.0, x)


def _cond():
    lax = _lax()
    return lambda p, x: lax.cond(p, lambda v: v + 1.0, lambda v: v - 1.0, x)


def _switch():
    lax = _lax()
    return lambda i, x: lax.switch(i, [lambda v: v + 1.0, lambda v: v * 2.0, lambda v: -v], x)


def _first_token():
    lax = _lax()
    jnp = _jnp()
    dn = lax.GatherDimensionNumbers(offset_dims=(0, 1), collapsed_slice_dims=(1,),
                                    start_index_map=(1,))
    return lambda x: lax.gather(x, jnp.array([0], jnp.int32), dn,
                                slice_sizes=(x.shape[0], 1, x.shape[2]))


def _rows():
    lax = _lax()
    dn = lax.GatherDimensionNumbers(offset_dims=(1,), collapsed_slice_dims=(0,),
                                    start_index_map=(0,))
    return lambda x, i: lax.gather(x, i, dn, slice_sizes=(1, x.shape[1]))


def _rbg_bits():
    """Random bits from an 'rbg' key (its data: 4 uint32)."""
    import jax

    def f(k):
        key = jax.random.wrap_key_data(k, impl="rbg")
        with jax.named_scope(SCOPE):
            return jax.random.bits(key, (3, 4))

    return f


def _call():
    import jax

    inner = jax.jit(lambda v: v * 2.0)
    return lambda x: inner(x)


def _zeta():
    import jax.scipy.special as sp

    return sp.zeta


def _polygamma():
    import jax.scipy.special as sp

    return sp.polygamma


F32, I32 = "float32", "int32"

PROBES: dict[str, Probe] = {
    # elementwise
    "stablehlo.abs": _unary("jnp.abs(x)", "abs"),
    "stablehlo.ceil": _unary("jnp.ceil(x)", "ceil"),
    "stablehlo.floor": _unary("jnp.floor(x)", "floor"),
    "stablehlo.cosine": _unary("jnp.cos(x)", "cos"),
    "stablehlo.sine": _unary("jnp.sin(x)", "sin"),
    "stablehlo.tan": _unary("jnp.tan(x)", "tan"),
    "stablehlo.exponential": _unary("jnp.exp(x)", "exp"),
    "stablehlo.log": _unary("jnp.log(x)", "log"),
    "stablehlo.negate": _unary("jnp.negative(x)", "negative"),
    "stablehlo.sqrt": _unary("jnp.sqrt(x)", "sqrt"),
    "stablehlo.tanh": _unary("jnp.tanh(x)", "tanh"),
    "stablehlo.logistic": _unary("lax.logistic(x)", "logistic", _lax),
    "stablehlo.rsqrt": _unary("lax.rsqrt(x)", "rsqrt", _lax),
    "stablehlo.cbrt": _unary("jnp.cbrt(x)", "cbrt"),
    "stablehlo.exponential_minus_one": _unary("jnp.expm1(x)", "expm1"),
    "stablehlo.log_plus_one": _unary("jnp.log1p(x)", "log1p"),
    "stablehlo.sign": _unary("jnp.sign(x)", "sign"),
    "stablehlo.round_nearest_even": _unary("jnp.round(x)", "round"),
    "stablehlo.round_nearest_afz": Probe(
        "lax.round(x)", _scoped(lambda: _lax().round), [(3, 4)], [F32]),
    "stablehlo.not": _unary("jnp.logical_not(p)", "logical_not", dtype="bool"),
    "stablehlo.is_finite": _unary("jnp.isfinite(x)", "isfinite"),
    "stablehlo.popcnt": _unary("lax.population_count(i)", "population_count", _lax, dtype=I32),
    "stablehlo.count_leading_zeros": _unary("lax.clz(i)", "clz", _lax, dtype=I32),
    "stablehlo.add": _binary("x + y", lambda x, y: x + y),
    "stablehlo.subtract": _binary("x - y", lambda x, y: x - y),
    "stablehlo.multiply": _binary("x * y", lambda x, y: x * y),
    "stablehlo.divide": _binary("x / y", lambda x, y: x / y),
    "stablehlo.remainder": _binary("lax.rem(x, y)", lambda x, y: _lax().rem(x, y)),
    "stablehlo.maximum": _binary("jnp.maximum(x, y)", lambda x, y: _jnp().maximum(x, y)),
    "stablehlo.minimum": _binary("jnp.minimum(x, y)", lambda x, y: _jnp().minimum(x, y)),
    "stablehlo.power": _binary("lax.pow(x, y)", lambda x, y: _lax().pow(x, y)),
    "stablehlo.atan2": _binary("jnp.arctan2(x, y)", lambda x, y: _jnp().arctan2(x, y)),
    "stablehlo.and": _binary("p & q", lambda x, y: x & y, "bool"),
    "stablehlo.or": _binary("p | q", lambda x, y: x | y, "bool"),
    "stablehlo.xor": _binary("p ^ q", lambda x, y: x ^ y, "bool"),
    "stablehlo.shift_left": _binary("lax.shift_left(i, j)",
                                    lambda x, y: _lax().shift_left(x, y), I32),
    "stablehlo.shift_right_arithmetic": _binary(
        "lax.shift_right_arithmetic(i, j)", lambda x, y: _lax().shift_right_arithmetic(x, y), I32),
    "stablehlo.shift_right_logical": _binary(
        "lax.shift_right_logical(i, j)", lambda x, y: _lax().shift_right_logical(x, y), I32),
    "stablehlo.compare": _binary("x < y", lambda x, y: x < y),
    "stablehlo.select": Probe("lax.select(p, x, y)", _scoped(lambda: _lax().select),
                              [(3, 4)] * 3, ["bool", F32, F32]),
    "stablehlo.clamp": Probe("lax.clamp(lo, x, hi)", _scoped(lambda: _lax().clamp),
                             [(3, 4)] * 3, [F32] * 3),
    "stablehlo.convert": Probe("x.astype(jnp.int32)",
                               _scoped(lambda: (lambda x: x.astype(_jnp().int32))),
                               [(3, 4)], [F32]),
    "stablehlo.bitcast_convert": Probe(
        "lax.bitcast_convert_type(x, jnp.int32)",
        _scoped(lambda: (lambda x: _lax().bitcast_convert_type(x, _jnp().int32))), [(3, 4)], [F32]),
    "stablehlo.reduce_precision": Probe(
        "lax.reduce_precision(x, 5, 10)",
        _scoped(lambda: (lambda x: _lax().reduce_precision(x, 5, 10))), [(3, 4)], [F32]),
    "chlo.erf": _unary("lax.erf(x)", "erf", _lax),
    "chlo.erfc": _unary("lax.erfc(x)", "erfc", _lax),
    "chlo.square": _unary("lax.square(x)", "square", _lax),
    "chlo.tan": _unary("lax.tan(x)", "tan", _lax),
    "chlo.sinh": _unary("jnp.sinh(x)", "sinh"),
    "chlo.cosh": _unary("jnp.cosh(x)", "cosh"),
    "chlo.asin": _unary("jnp.arcsin(x)", "arcsin"),
    "chlo.acos": _unary("jnp.arccos(x)", "arccos"),
    "chlo.atan": _unary("jnp.arctan(x)", "arctan"),
    "chlo.asinh": _unary("jnp.arcsinh(x)", "arcsinh"),
    "chlo.acosh": _unary("lax.acosh(x)", "acosh", _lax),
    "chlo.atanh": _unary("jnp.arctanh(x)", "arctanh"),
    "chlo.lgamma": _unary("lax.lgamma(x)", "lgamma", _lax),
    "chlo.digamma": _unary("lax.digamma(x)", "digamma", _lax),
    "chlo.erf_inv": _unary("lax.erf_inv(x)", "erf_inv", _lax),
    "chlo.bessel_i1e": _unary("lax.bessel_i1e(x)", "bessel_i1e", _lax),
    "chlo.zeta": Probe("jax.scipy.special.zeta(x, q)", _scoped(lambda: _zeta()),
                       [(3, 4), (3, 4)], [F32, F32]),
    "chlo.polygamma": Probe("jax.scipy.special.polygamma(n, x)", _scoped(lambda: _polygamma()),
                            [(3, 4), (3, 4)], [I32, F32]),
    "chlo.is_inf": _unary("jnp.isinf(x)", "isinf"),
    "chlo.next_after": _binary("lax.nextafter(x, y)", lambda x, y: _lax().nextafter(x, y)),
    "chlo.top_k": Probe("lax.top_k(x, 2)", _scoped(lambda: (lambda x: _lax().top_k(x, 2))),
                        [(3, 4)], [F32]),
    "stablehlo.rng_bit_generator": Probe(
        "jax.random.bits(rbg key, (3, 4))", _rbg_bits, [(4,)], ["uint32"]),
    # shapes and layout
    "stablehlo.constant": Probe("a NumPy array", _constant, [(3, 4)], [F32]),
    "stablehlo.iota": Probe("lax.iota(f32, 4)", _iota, [(3, 4)], [F32]),
    "stablehlo.dynamic_iota": Probe("lax.iota(f32, B)", _dynamic_iota, [("B",)], [F32]),
    "stablehlo.broadcast_in_dim": Probe(
        "jnp.broadcast_to(x, (3, 4))",
        _scoped(lambda: (lambda x: _jnp().broadcast_to(x, (3, 4)))), [(4,)], [F32]),
    "stablehlo.dynamic_broadcast_in_dim": Probe(
        "jnp.broadcast_to(x, (B, 4))",
        _scoped(lambda: (lambda x, y: _jnp().broadcast_to(x, y.shape))), [(4,), ("B", 4)],
        [F32, F32]),
    "stablehlo.reshape": Probe("x.reshape(12)", _scoped(lambda: (lambda x: x.reshape(12))),
                               [(3, 4)], [F32]),
    "stablehlo.dynamic_reshape": Probe(
        "x.reshape(4 * B)", _scoped(lambda: (lambda x: x.reshape(-1))), [("B", 4)], [F32]),
    "stablehlo.transpose": Probe("x.T", _scoped(lambda: (lambda x: x.T)), [(3, 4)], [F32]),
    "stablehlo.slice": Probe("x[1:3, ::2]", _scoped(lambda: (lambda x: x[1:3, ::2])),
                             [(3, 4)], [F32]),
    "stablehlo.dynamic_slice": Probe("lax.dynamic_slice(x, (i, 0), (2, 4))",
                                     _scoped(_dynamic_slice), [(3, 4), ()], [F32, I32]),
    "stablehlo.real_dynamic_slice": Probe(
        "lax.slice(x, (1, 0), (B, 4))",
        _scoped(lambda: (lambda x: _lax().slice(x, (1, 0), (x.shape[0], 4)))), [("B", 4)], [F32]),
    "stablehlo.dynamic_update_slice": Probe(
        "lax.dynamic_update_slice(x, u, (i, 0))", _scoped(_dynamic_update_slice),
        [(3, 4), (1, 4), ()], [F32, F32, I32]),
    "stablehlo.concatenate": Probe(
        "jnp.concat([x, y])", _scoped(lambda: (lambda x, y: _jnp().concat([x, y]))),
        [(3, 4), (2, 4)], [F32, F32]),
    "stablehlo.pad": Probe("lax.pad(x, 0.0, [(1, 1, 0), (0, 2, 1)])",
                           _scoped(lambda: (lambda x: _lax().pad(x, 0.0, [(1, 1, 0), (0, 2, 1)]))),
                           [(3, 4)], [F32]),
    "stablehlo.reverse": Probe("lax.rev(x, (0,))", _scoped(lambda: (lambda x: _lax().rev(x, (0,)))),
                               [(3, 4)], [F32]),
    # contractions
    "stablehlo.dot_general": Probe("x @ y", _scoped(lambda: (lambda x, y: x @ y)),
                                   [(3, 4), (4, 5)], [F32, F32]),
    "stablehlo.convolution": Probe("lax.conv_general_dilated (NCHW)", _scoped(_conv),
                                   [(1, 2, 5, 5), (3, 2, 3, 3)], [F32, F32]),
    # SAME padding over a symbolic size: the padding is computed from H and W
    "stablehlo.dynamic_conv": Probe("lax.conv_general_dilated (SAME, stride 2, symbolic H, W)",
                                    _scoped(_dynamic_conv), [(1, 2, "H", "W"), (3, 2, 3, 3)],
                                    [F32, F32]),
    "stablehlo.fft": Probe("jnp.fft.rfft(x)", _scoped(lambda: (lambda x: _jnp().fft.rfft(x))),
                           [(3, 4)], [F32]),
    # triangular solves: on the CPU JAX emits the op for types LAPACK lacks
    "stablehlo.triangular_solve": Probe(
        "jax.scipy.linalg.solve_triangular(a, b, lower=True) (float16)",
        _scoped(lambda: (lambda a, b: _jsl().solve_triangular(a, b, lower=True))),
        [(4, 4), (4, 2)], ["float16", "float16"]),
    # complex numbers (real pairs in the model)
    "stablehlo.complex": Probe("lax.complex(x, y)",
                               _scoped(lambda: (lambda x, y: _lax().complex(x, y))),
                               [(3, 4), (3, 4)], [F32, F32]),
    "stablehlo.real": _unary("jnp.real(z)", "real", dtype="complex64"),
    "stablehlo.imag": _unary("jnp.imag(z)", "imag", dtype="complex64"),
    # reductions
    "stablehlo.reduce": Probe("jnp.sum(x, axis=1)",
                              _scoped(lambda: (lambda x: _jnp().sum(x, axis=1))), [(3, 4)], [F32]),
    "stablehlo.reduce_window": Probe("lax.reduce_window(x, -inf, max, 2x2)",
                                     _scoped(_reduce_window), [(1, 2, 4, 4)], [F32]),
    "stablehlo.sort": Probe("jnp.sort(x)", _scoped(lambda: (lambda x: _jnp().sort(x))),
                            [(3, 4)], [F32]),
    # indexing
    "stablehlo.gather": Probe("rows of x as lax.gather", _scoped(_rows),
                              [(3, 4), (2, 1)], [F32, I32]),
    "stablehlo.dynamic_gather": Probe("x[:, 0, :] as lax.gather", _scoped(_first_token),
                                      [("B", 5, 4)], [F32]),
    "stablehlo.scatter": Probe("x.at[i].set(y)",
                               _scoped(lambda: (lambda x, i, y: x.at[i].set(y))),
                               [(3, 4), (), (4,)], [F32, I32, F32]),
    # control flow
    "func.call": Probe("a nested jax.jit", _scoped(_call), [(3, 4)], [F32]),
    "stablehlo.while": Probe("lax.fori_loop", _scoped(_while), [(3, 4)], [F32]),
    "stablehlo.if": Probe("lax.cond", _scoped(_cond), [(), (3, 4)], ["bool", F32]),
    "stablehlo.case": Probe("lax.switch", _scoped(_switch), [(), (3, 4)], [I32, F32]),
    "stablehlo.optimization_barrier": Probe(
        "lax.optimization_barrier(x)",
        _scoped(lambda: _lax().optimization_barrier), [(3, 4)], [F32]),
}
