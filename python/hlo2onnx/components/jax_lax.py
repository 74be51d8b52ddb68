"""jax.lax components: broadcast, gather, slice; bitcast_convert_type,
nextafter, reduce_precision (bit for bit against JAX in
tests/python/test_bitcast_float.py; lax.rng_bit_generator, whose state is
u64, in tests/python/test_rng_ops.py).

With a symbolic batch "B", JAX lowers these to the dynamic StableHLO forms
(``dynamic_broadcast_in_dim``, ``dynamic_gather``, ``real_dynamic_slice``),
whose shapes are computed at run time; the static cases lower to the plain
forms.  Both kinds are covered.
"""

from __future__ import annotations

import numpy as np

from hlo2onnx.registry import Case, Component, register

SINCE = "v0.1.0"
JAX_DOCS = "https://docs.jax.dev/en/latest/_autosummary"


def _lax():
    from jax import lax

    return lax


register(Component(
    "broadcast", "jax.lax.broadcast",
    docs_url=f"{JAX_DOCS}/jax.lax.broadcast.html", since=SINCE,
    onnx_expected=("Expand",),
    cases=[
        Case("broadcast_a", lambda: lambda x: _lax().broadcast(x, (2, 3)), [(4, 5)],
             notes="two new leading axes, static shapes"),
        Case("broadcast_b", lambda: lambda x: _lax().broadcast(x, (5,)), [("B", 4)],
             notes="one new leading axis in front of a dynamic batch"),
    ]))


def _first_token():
    """x[:, 0, :] written as lax.gather: the class token out of (batch,
    tokens, features), as a ViT's head takes it."""
    import jax.numpy as jnp

    lax = _lax()
    dn = lax.GatherDimensionNumbers(offset_dims=(0, 1), collapsed_slice_dims=(1,),
                                    start_index_map=(1,))

    def take_first_token(x):
        return lax.gather(x, jnp.array([0], jnp.int32), dn,
                          slice_sizes=(x.shape[0], 1, x.shape[2]))

    return take_first_token


def _take_rows():
    """Rows of a table at run-time indices (an embedding lookup)."""
    import jax.numpy as jnp

    return lambda table, idx: jnp.take(table, idx, axis=0, mode="clip")


def _valid_indices(rng, shape, dtype, index):
    if index == 1:  # the indices: rows of the 6-row table
        return rng.integers(0, 6, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


register(Component(
    "gather", "jax.lax.gather",
    docs_url=f"{JAX_DOCS}/jax.lax.gather.html", since=SINCE,
    onnx_expected=(("Gather", "GatherND", "Slice"),),
    cases=[
        Case("gather_tf_out", _first_token, [("B", 5, 16)],
             notes="the first token out: x[:, 0, :] as a gather with a constant index"),
        Case("gather_rows", _take_rows, [(6, 4), ("B",)], dtypes=("float32", "int32"),
             input_generator=_valid_indices, expect_ops=(("Gather", "GatherND"),),
             notes="rows of a (6, 4) table at B run-time indices"),
    ]))


def _slice(start, limit, strides=None):
    def build():
        lax = _lax()

        def f(x):
            lim = tuple(x.shape[i] if v is None else v for i, v in enumerate(limit))
            return lax.slice(x, start, lim, strides)

        return f

    return build


def _getitem(index):
    return lambda: lambda x: x[index]


register(Component(
    "slice", "jax.lax.slice",
    docs_url=f"{JAX_DOCS}/jax.lax.slice.html", since=SINCE,
    onnx_expected=("Slice",),
    cases=[
        Case("slice_basic", _slice((1, 1), (3, 4)), [(4, 5)], notes="x[1:3, 1:4]"),
        Case("slice_last_column", _slice((0, 4), (None, 5)), [("B", 5)],
             notes="x[:, 4:5] with a dynamic batch"),
        Case("slice_out_of_bounds", _getitem(np.s_[2:100, :]), [(5, 3)],
             notes="x[2:100]: numpy slicing clamps the limit to the size before lax.slice"),
        Case("slice_single_element", _slice((1, 2), (2, 3)), [(4, 5)], notes="x[1:2, 2:3]"),
        Case("slice_with_stride", _slice((0, 1), (5, 6), (2, 2)), [(5, 6)],
             notes="x[0:5:2, 1:6:2]"),
    ]))


# ---- float bits (since v0.2.0) ---------------------------------------

BITS_SINCE = "v0.2.0"


def _bitcast(dtype):
    return lambda: lambda x: _lax().bitcast_convert_type(x, dtype)


def _reduce_precision(exponent_bits, mantissa_bits):
    return lambda: lambda x: _lax().reduce_precision(x, exponent_bits, mantissa_bits)


register(Component(
    "bitcast_convert_type", "jax.lax.bitcast_convert_type",
    docs_url=f"{JAX_DOCS}/jax.lax.bitcast_convert_type.html", since=BITS_SINCE,
    cases=[
        Case("bitcast_f32_to_i32", _bitcast(np.int32), [("B", 8)],
             notes="a float's bits computed from its value (sign, exponent by "
                   "power-of-two scaling, significand as an exact integer)"),
    ]))

register(Component(
    "nextafter", "jax.lax.nextafter",
    docs_url=f"{JAX_DOCS}/jax.lax.nextafter.html", since=BITS_SINCE,
    cases=[
        Case("lax_nextafter", lambda: lambda x, y: _lax().nextafter(x, y),
             [("B", 6), ("B", 6)], notes="chlo.next_after on the float's bits"),
    ]))

register(Component(
    "reduce_precision", "jax.lax.reduce_precision",
    docs_url=f"{JAX_DOCS}/jax.lax.reduce_precision.html", since=BITS_SINCE,
    cases=[
        Case("reduce_precision_f16", _reduce_precision(5, 10), [("B", 8)],
             notes="to the f16 format: a Cast pair, values below f16's smallest "
                   "normal flushed as XLA does"),
        Case("reduce_precision_e4m3", _reduce_precision(4, 3), [("B", 8)],
             notes="to any format: XLA's rounding on the bits"),
    ]))

# ---- ops that need more than one ONNX op (issue 15, part 4) ----------------

def _cumlogsumexp(**kw):
    def build():
        return lambda x: _lax().cumlogsumexp(x, **kw)

    return build


register(Component(
    "cumlogsumexp", "jax.lax.cumlogsumexp",
    docs_url=f"{JAX_DOCS}/jax.lax.cumlogsumexp.html", since="v0.2.0",
    onnx_expected=("Exp", "Where"),
    table_note="reduce_window with a logaddexp body, folded in log2(n) doubling steps",
    cases=[
        Case("cumlogsumexp_rows", _cumlogsumexp(axis=1), [("B", 12)],
             notes="along a static axis of 12: 4 doubling steps"),
        Case("cumlogsumexp_reverse", _cumlogsumexp(axis=0, reverse=True), [(9, "B")],
             notes="reverse, along the first axis"),
    ]))


def _bits(rng, shape, dtype, index):
    """Integers over the whole range of the type (booleans at random)."""
    dt = np.dtype(dtype)
    if dt == np.bool_:
        return rng.random(shape) < 0.5
    info = np.iinfo(dt)
    return rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True)


def _reduce_bitwise(name):
    def build():
        prim = getattr(_lax(), f"reduce_{name}_p")
        return lambda x: prim.bind(x, axes=(1,))

    return build


for _name, _bitwise, _logical in (("xor", "BitwiseXor", "Xor"), ("and", "BitwiseAnd", "And"),
                                  ("or", "BitwiseOr", "Or")):
    register(Component(
        f"reduce_{_name}", f"jax.lax.reduce_{_name}",
        docs_url=f"{JAX_DOCS}/jax.lax.reduce_{_name}.html", since="v0.2.0",
        table_note="integers: the body applied in halving steps (no ONNX reduction is "
                   "bitwise)",
        cases=[
            Case(f"reduce_{_name}_int32", _reduce_bitwise(_name), [("B", 9)], dtypes=("int32",),
                 input_generator=_bits, expect_ops=(_bitwise,),
                 notes="over 9 elements: 4 halving steps"),
            Case(f"reduce_{_name}_bool", _reduce_bitwise(_name), [("B", 6)], dtypes=("bool",),
                 input_generator=_bits,
                 expect_ops=((_logical,) if _name == "xor" else
                             ("ReduceMin" if _name == "and" else "ReduceMax",)),
                 notes="booleans: xor halving with Xor; and/or are ReduceMin/ReduceMax"),
        ]))


def _approx(name, k, **kw):
    def build():
        f = getattr(_lax(), name)
        return lambda x: f(x, k, **kw)

    return build


for _name in ("approx_max_k", "approx_min_k"):
    register(Component(
        _name, f"jax.lax.{_name}",
        docs_url=f"{JAX_DOCS}/jax.lax.{_name}.html", since="v0.2.0",
        onnx_expected=("TopK",),
        table_note="exact top k (recall_target only lets a TPU miss some)",
        cases=[
            Case(f"{_name}_last", _approx(_name, 4), [("B", 17)],
                 notes="along the last axis"),
            Case(f"{_name}_axis0", _approx(_name, 3, reduction_dimension=0), [(11, "B")],
                 notes="along the first axis"),
        ]))
