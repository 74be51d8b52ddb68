"""jax.numpy components: add, concat, einsum, matmul, reshape, squeeze, tile,
transpose; and the float functions JAX writes with bit casts: copysign,
frexp, ldexp, nextafter, signbit, spacing.

The bit-level functions reach ``bitcast_convert`` from a float (and
``chlo.next_after``), which ONNX cannot read before opset 26: the conversion
computes a float's fields from its value exactly (src/lower/elementwise.c,
docs/numerics.md), so these results are equal to JAX's bit for bit - the
tests in tests/python/test_bitcast_float.py compare bit patterns on every
kind of value; the cases here are the registry's random-input checks.

JAX lowers ``einsum`` to ``dot_general`` (plus transposes), so it becomes
MatMul rather than ONNX Einsum: a single, well-supported op that every
runtime optimises.  ``tile`` lowers to a broadcast and a reshape, so it
becomes Expand + Reshape (or Tile), and ``squeeze`` to a reshape.
"""

from __future__ import annotations

from hlo2onnx.registry import Case, Component, register

SINCE = "v0.1.0"
JAX_DOCS = "https://docs.jax.dev/en/latest/_autosummary"


def _jnp():
    import jax.numpy as jnp

    return jnp


def _call(name, *args, **kw):
    """A factory of ``lambda *xs: jnp.<name>(*xs, *args, **kw)``."""

    def build():
        f = getattr(_jnp(), name)
        return lambda *xs: f(*xs, *args, **kw)

    return build


register(Component(
    "add", "jax.numpy.add",
    docs_url=f"{JAX_DOCS}/jax.numpy.add.html", since=SINCE,
    onnx_expected=("Add",),
    cases=[Case("add", _call("add"), [("B", 4, 5), (5,)],
                notes="broadcasts a (5,) vector against (B, 4, 5)")]))


def _concat():
    jnp = _jnp()
    return lambda x, y: jnp.concat([x, y], axis=1)


register(Component(
    "concat", "jax.numpy.concat",
    docs_url=f"{JAX_DOCS}/jax.numpy.concat.html", since=SINCE,
    onnx_expected=("Concat",),
    cases=[Case("concat", _concat, [("B", 3), ("B", 5)], notes="along axis 1")]))


def _einsum(spec):
    def build():
        jnp = _jnp()
        return lambda x, y: jnp.einsum(spec, x, y)

    return build


register(Component(
    "einsum", "jax.numpy.einsum",
    docs_url=f"{JAX_DOCS}/jax.numpy.einsum.html", since=SINCE,
    onnx_expected=(("MatMul", "Gemm", "Einsum"),),
    seed_onnx=("Einsum",),
    cases=[
        Case("einsum_attention", _einsum("bhqd,bhkd->bhqk"),
             [("B", 4, 6, 8), ("B", 4, 7, 8)], notes="query-key scores, batched over heads"),
        Case("einsum_batch_matmul", _einsum("bij,bjk->bik"), [(2, 3, 4), (2, 4, 5)]),
        Case("einsum_dynamic_batch_matmul", _einsum("bij,bjk->bik"),
             [("B", 3, 4), ("B", 4, 5)]),
        Case("einsum_dynamic_batch_matmul_batched", _einsum("bhij,bhjk->bhik"),
             [("B", 2, 3, 4), ("B", 2, 4, 5)], notes="two batch axes, one dynamic"),
        Case("einsum_matmul", _einsum("ij,jk->ik"), [("B", 4), (4, 5)]),
        Case("einsum_matmul_static", _einsum("ij,jk->ik"), [(3, 4), (4, 5)]),
    ]))

register(Component(
    "matmul", "jax.numpy.matmul",
    docs_url=f"{JAX_DOCS}/jax.numpy.matmul.html", since=SINCE,
    onnx_expected=(("MatMul", "Gemm"),),
    cases=[
        Case("matmul_2d", _call("matmul"), [("B", 4), (4, 5)]),
        Case("matmul_3d", _call("matmul"), [("B", 3, 4), (4, 5)],
             notes="a batch of matrices times one matrix"),
        Case("matmul_4d", _call("matmul"), [("B", 2, 3, 4), ("B", 2, 4, 5)]),
    ]))


def _reshape(shape):
    """x.reshape(shape), where "B" in ``shape`` is the input's first dim."""

    def build():
        def f(x):
            return x.reshape(tuple(x.shape[0] if d == "B" else d for d in shape))

        return f

    return build


register(Component(
    "reshape", "jax.numpy.reshape",
    docs_url=f"{JAX_DOCS}/jax.numpy.reshape.html", since=SINCE,
    onnx_expected=("Reshape",),
    cases=[
        Case("reshapeA", _reshape((30,)), [(3, 10)], notes="flatten, static"),
        Case("reshapeB", _reshape(("B", 3, 4)), [("B", 12)], notes="split the last axis"),
        Case("reshapeC", _reshape(("B", -1)), [("B", 3, 4)], notes="merge with -1"),
        Case("reshapeD", _reshape((4, 6)), [(2, 3, 4)], notes="static regrouping"),
        Case("reshapeE", _reshape((-1, 8)), [("B", 4, 4, 2)],
             notes="the batch merged into the first axis: (B*4, 8)"),
    ]))

register(Component(
    "squeeze", "jax.numpy.squeeze",
    docs_url=f"{JAX_DOCS}/jax.numpy.squeeze.html", since=SINCE,
    onnx_expected=(("Squeeze", "Reshape"),),
    cases=[
        Case("squeeze_dynamic_batch", _call("squeeze", axis=1), [("B", 1, 5)]),
        Case("squeeze_multiple_dims", _call("squeeze", axis=(0, 2)), [(1, 3, 1, 4)]),
        Case("squeeze_single_dim", _call("squeeze", axis=0), [(1, 5)]),
        Case("squeeze_vit_output", _call("squeeze", axis=1), [("B", 1, 10)],
             notes="(batch, 1, classes) -> (batch, classes)"),
    ]))

register(Component(
    "tile", "jax.numpy.tile",
    docs_url=f"{JAX_DOCS}/jax.numpy.tile.html", since=SINCE,
    onnx_expected=(("Tile", "Expand"),),
    seed_onnx=("Tile",),
    cases=[
        Case("tile_a", _call("tile", (1, 2)), [(2, 3)]),
        Case("tile_b", _call("tile", (2, 2, 1)), [(2, 3, 4)]),
        Case("tile_c", _call("tile", (1, 3)), [("B", 4)], notes="dynamic batch"),
    ]))

register(Component(
    "transpose", "jax.numpy.transpose",
    docs_url=f"{JAX_DOCS}/jax.numpy.transpose.html", since=SINCE,
    onnx_expected=("Transpose",),
    cases=[
        Case("transpose_4d", _call("transpose", (0, 2, 3, 1)), [("B", 2, 3, 4)],
             notes="NCHW -> NHWC"),
        Case("transpose_basic", _call("transpose"), [(2, 3)]),
        Case("transpose_high_dim", _call("transpose", (4, 3, 2, 1, 0)), [(2, 3, 4, 5, 6)]),
        Case("transpose_reverse", _call("transpose", (2, 1, 0)), [("B", 3, 4)]),
        Case("transpose_square_matrix", _call("transpose"), [(4, 4)]),
    ]))


# ---- float functions written with bit casts (since v0.2.0) -------------------

BITS_SINCE = "v0.2.0"


def _int_exponents(rng, shape, dtype, index):
    """ldexp's exponents: small integers, negative ones included."""
    return rng.integers(-20, 20, shape).astype(dtype)


def _bits_component(name, cases, expected=()):
    register(Component(
        name, f"jax.numpy.{name}",
        docs_url=f"{JAX_DOCS}/jax.numpy.{name}.html", since=BITS_SINCE,
        onnx_expected=expected, cases=cases))


_bits_component("copysign", [
    Case("copysign", _call("copysign"), [("B", 6), ("B", 6)],
         notes="the sign read as x < 0 or 1/x < 0 (for -0.0)"),
])
_bits_component("frexp", [
    Case("frexp", _call("frexp"), [("B", 6)],
         notes="the exponent found by exact power-of-two scaling; two outputs"),
])
_bits_component("ldexp", [
    Case("ldexp", _call("ldexp"), [("B", 6), ("B", 6)], dtypes=("float32", "int32"),
         input_generator=_int_exponents, notes="exponents in [-20, 20)"),
])
_bits_component("nextafter", [
    Case("nextafter", _call("nextafter"), [("B", 6), ("B", 6)],
         notes="chlo.next_after: the neighbouring float, on the bits"),
])
_bits_component("signbit", [
    Case("signbit", _call("signbit"), [("B", 6)], notes="a bool output"),
])
_bits_component("spacing", [
    Case("spacing", _call("spacing"), [("B", 6)],
         notes="next_after(x, ±inf) - x"),
])
