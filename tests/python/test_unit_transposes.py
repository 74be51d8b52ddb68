"""Transposes that move only unit axes become Reshapes
(src/passes/transpose.c, pass_unit_transposes), checked against JAX on
random inputs (float32 rtol = atol = 1e-5, integers exactly), onnx.checker
(full_check) and value_info against the shapes onnxruntime computes,
including dynamic dims that are 0 at run time.
"""

from __future__ import annotations

import jax.numpy as jnp
import pytest
from jax import lax

import hlo2onnx
from util import convert_and_check_shapes, op_counts




def _t(perm):
    return lambda x: jnp.transpose(x, perm)


@pytest.mark.parametrize("name,fn,inputs,op", [
    # no one Reshape is exact for these (a -1 next to a copied T, two -1s):
    # Squeeze + Unsqueeze, which move no data either
    ("B1T", _t((1, 0, 2)), [("B", 1, "T")], "Unsqueeze"),
    ("B1T_static_T", _t((1, 0, 2)), [("B", 1, 4)], "Reshape"),
    ("1B", _t((1, 0)), [(1, "B")], "Reshape"),
    ("B1", _t((1, 0)), [("B", 1)], "Reshape"),
    ("11B1", _t((3, 1, 2, 0)), [(1, 1, "B", 1)], "Reshape"),
    ("B11T", _t((1, 0, 3, 2)), [("B", 1, 1, "T")], "Unsqueeze"),
    ("B1T1", _t((0, 3, 2, 1)), [("B", 1, "T", 1)], "Reshape"),  # both in place
    ("1BT", _t((1, 2, 0)), [(1, "B", "T")], "Unsqueeze"),
    # a static result with no elements is a constant (passes/empty.c)
    ("zero", _t((1, 0, 2)), [(0, 1, 3)], "Identity"),
    ("zeroB", _t((1, 0, 2)), [("B", 1, 0)], "Transpose"),
    ("nchw_1channel", lambda x: jnp.transpose(x, (0, 3, 1, 2)) * 2, [("B", 5, 4, 1)], "Reshape"),
    ("nhwc_1channel", lambda x: jnp.transpose(x, (0, 2, 3, 1)) + 1, [("B", 1, 5, 4)], "Reshape"),
])
def test_unit_transposes(name, fn, inputs, op):
    m = convert_and_check_shapes(fn, inputs)
    counts = op_counts(m)
    assert counts[op] == 1, dict(counts)
    if op != "Transpose":
        assert counts["Transpose"] == 0, dict(counts)


@pytest.mark.parametrize("name,fn,inputs", [
    ("B1T", _t((1, 0, 2)), [("B", 1, "T")]),
    ("B1T1", _t((0, 3, 2, 1)), [("B", 1, "T", 1)]),
    ("11B1", _t((3, 1, 2, 0)), [(1, 1, "B", 1)]),
    ("cond", lambda p, x: lax.cond(p.sum() > 0, lambda a: jnp.transpose(a, (1, 0, 2)) * 2,
                                   lambda a: jnp.transpose(a, (1, 0, 2)), x),
     [(2,), ("B", 1, "T")]),
])
def test_unit_transposes_zero_size_at_run_time(name, fn, inputs):
    """[B, 1, T] -> [1, B, T] was Reshape(x, [1, -1, 0]), which onnxruntime
    cannot compute when T is 0 (the -1 is 0 / 0)."""
    m = hlo2onnx.to_onnx(fn, inputs)
    res = hlo2onnx.verify(fn, m, inputs, n=1, batch_sizes=(0, 2))
    assert res.ok, str(res)


@pytest.mark.parametrize("name,fn,inputs", [
    ("rank0", lambda x: jnp.transpose(x) * 2, [()]),
    ("rank1", lambda x: jnp.transpose(x, (0,)) + 1, [("B",)]),
    ("twice", lambda x: (jnp.transpose(x, (1, 0, 2)), jnp.transpose(x, (0, 2, 1)) * 2),
     [("B", 1, 3)]),
    ("through_tanh", lambda x: jnp.transpose(jnp.tanh(jnp.transpose(x, (2, 1, 0))), (1, 0, 2)),
     [(3, 1, "B")]),
    ("int", lambda x: jnp.transpose(x, (2, 0, 1)), [("B", "T", 1)]),
    ("cond", lambda p, x: lax.cond(p.sum() > 0, lambda a: jnp.transpose(a, (1, 0, 2)) * 2,
                                   lambda a: jnp.transpose(a, (1, 0, 2)), x),
     [(2,), ("B", 1, 4)]),
    ("scan", lambda x: lax.scan(lambda c, xi: (c + jnp.transpose(xi, (1, 0, 2)).sum(),
                                               jnp.transpose(xi, (1, 0, 2))), 0.0, x),
     [(4, "B", 1, 3)]),
    ("scan_static", lambda x: lax.scan(
        lambda c, xi: (c + jnp.transpose(xi, (1, 0, 2)), jnp.transpose(xi * c.sum(), (2, 1, 0))),
        jnp.zeros((1, 2, 3)), x), [(4, 2, 1, 3)]),
    ("while", lambda x: lax.fori_loop(
        0, 3, lambda i, v: jnp.transpose(jnp.transpose(v, (1, 0, 2)) * 1.5, (1, 0, 2)), x),
     [("B", 1, "T")]),
])
def test_unit_transposes_more(name, fn, inputs):
    kw = {"dtype": jnp.int32} if name == "int" else {}
    convert_and_check_shapes(fn, inputs, **kw)
