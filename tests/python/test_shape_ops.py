"""Constants, layout and shape ops (src/lower/shape.c), through the whole
pipeline: each case is a JAX function converted with hlo2onnx.to_onnx,
checked with onnx.checker (full_check) and against JAX with onnxruntime
(float32: rtol = atol = 1e-5; exact for integers and booleans).  Inputs with
a symbolic dimension "B" run at B = 1, 3 and 8.

A case may also state the ONNX ops it expects (``ops``: op_type -> count,
checked on the model converted without the optional fusion passes), where
the shape of the graph is the point (a splat is not materialised, a
static slice needs no Shape arithmetic, ...).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import hlo2onnx
from util import Case, assert_op_counts, convert_and_check

I32 = jax.ShapeDtypeStruct((), jnp.int32)


def f32(*shape):
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def of(dtype, *shape):
    return jax.ShapeDtypeStruct(shape, dtype)


# Bigger than what the fold pass materialises (65536 elements).
SPLAT = np.full((300, 300), 3.0, np.float32)
TABLE = np.arange(20, dtype=np.float32).reshape(5, 4) * 0.5 - 3

CASES = [
    # ---- constant
    Case("const_dense", lambda x: x * TABLE, [(5, 4)]),
    Case("const_nan_inf", lambda x: x + jnp.array([jnp.nan, jnp.inf, -jnp.inf, 0.0]), [(5, 4)]),
    # a big splat stays one element + Expand; no 16 KiB initializer
    Case("const_big_splat", lambda x: x + SPLAT, [(300, 300)], ops={"Expand": 1}),
    Case("const_small_splat", lambda x: x + np.full((4,), 2.0, np.float32), [(5, 4)],
         ops={"Expand": 0}),
    Case("const_bool", lambda x: jnp.where(jnp.array([True, False, True, True]), x, 0.0),
         [(5, 4)]),
    Case("const_int", lambda x: x * np.array([[1, -2, 3, 2 ** 30]], np.int32),
         [of(jnp.int32, 5, 4)]),
    Case("const_f16", lambda x: x * np.array([0.1, 2, 3, 65504], np.float16),
         [of(jnp.float16, 5, 4)], dict(rtol=1e-3, atol=1e-3)),
    Case("const_empty", lambda x: jnp.concatenate([x, jnp.zeros((0, 4), jnp.float32)]),
         [(5, 4)]),
    # ---- iota
    Case("iota_f32", lambda x: x + jnp.arange(4.0), [(5, 4)]),
    Case("iota_i32", lambda x: x * jnp.arange(4, dtype=jnp.int32), [of(jnp.int32, 5, 4)]),
    Case("iota_f16", lambda x: x + jnp.arange(4, dtype=jnp.float16), [of(jnp.float16, 5, 4)],
         dict(rtol=1e-3, atol=1e-3)),
    Case("iota_2d_dim0", lambda x: x + lax.broadcasted_iota(jnp.float32, (5, 4), 0), [(5, 4)]),
    Case("iota_3d_dim1", lambda x: x + lax.broadcasted_iota(jnp.int32, (2, 3, 4), 1),
         [of(jnp.int32, 2, 3, 4)]),
    Case("iota_dynamic", lambda x: x + jnp.arange(x.shape[0], dtype=jnp.float32)[:, None],
         [("B", 4)]),
    # ---- broadcast_in_dim
    Case("bcast_scalar", lambda x: x + 1.5, [(5, 4)]),
    Case("bcast_row", lambda x, b: x + b, [(5, 4), (4,)]),
    Case("bcast_col", lambda x, b: x + b[:, None], [(5, 4), (5,)]),
    Case("bcast_middle", lambda x, b: x + b[None, :, None], [(2, 3, 4), (3,)]),
    Case("bcast_nonmonotonic", lambda x: lax.broadcast_in_dim(x, (3, 4, 5), (2, 0)), [(5, 3)],
         ops={"Transpose": 1}),
    Case("bcast_transpose_only", lambda x: lax.broadcast_in_dim(x, (3, 5), (1, 0)), [(5, 3)],
         ops={"Transpose": 1, "Expand": 0}),
    Case("bcast_unsqueeze_only", lambda x: lax.broadcast_in_dim(x, (5, 1, 3), (0, 2)),
         [(5, 3)], ops={"Expand": 0}),
    Case("bcast_bool", lambda x: jnp.broadcast_to(x, (3, 5, 4)), [of(jnp.bool_, 5, 4)]),
    Case("bcast_dynamic_bias", lambda x, b: x + b, [("B", 4), (4,)]),
    Case("bcast_dynamic_col", lambda x: x * jnp.sum(x, axis=1, keepdims=True), [("B", 4)]),
    Case("bcast_dynamic_3d", lambda x, b: x + b[None, :, None], [("B", 3, 4), (3,)]),
    Case("bcast_dynamic_two", lambda x, y: x[:, None, :] + y[None, :, :],
         [("B", 4), ("C", 4)]),
    # ---- reshape
    Case("reshape", lambda x: x.reshape(4, 5) * 2, [(5, 4)], ops={"Shape": 0}),
    Case("reshape_3d", lambda x: x.reshape(2, 10, 1), [(5, 4)]),
    Case("reshape_zero", lambda x: jnp.concatenate([x.reshape(0, 7), x.reshape(0, 7)]),
         [(0, 7)]),
    Case("reshape_dynamic_flat", lambda x: x.reshape(-1) * 2, [("B", 4)]),
    Case("reshape_dynamic_split", lambda x: x.reshape(-1, 2), [("B", 4)]),
    Case("reshape_dynamic_merge", lambda x: x.reshape(x.shape[0], -1), [("B", 3, 4)]),
    Case("reshape_two_symbols", lambda x: x.reshape(x.shape[0] * x.shape[1], 2),
         [("B", "C", 2)]),
    # ---- transpose
    Case("transpose", lambda x: jnp.transpose(x, (2, 0, 1)), [(2, 3, 4)]),
    Case("transpose_dynamic", lambda x: jnp.transpose(x, (1, 2, 0)) * 1.0, [("B", 3, 4)]),
    # ---- slice and reverse
    Case("slice", lambda x: x[1:3, ::2], [(5, 4)], ops={"Slice": 1}),
    Case("slice_strides", lambda x: x[::3, 1::2, 2:7:4], [(7, 6, 9)]),
    Case("slice_clamped", lambda x: x[2:100, -3:], [(5, 6)]),
    Case("slice_noop", lambda x: x[:, :] * 2, [(5, 6)], ops={"Slice": 0}),
    # with a symbolic operand JAX emits real_dynamic_slice
    Case("slice_dynamic", lambda x: lax.slice_in_dim(x, 1, 3, axis=1), [("B", 4)]),
    Case("slice_dynamic_strided", lambda x: lax.slice(x, (0, 1), (x.shape[0], 4), (2, 2)),
         [("B", 4)]),
    Case("reverse", lambda x: x[::-1, ::-1], [(5, 4)], ops={"Slice": 1}),
    Case("reverse_one_axis", lambda x: lax.rev(x, (1,)), [(2, 5, 4)]),
    Case("reverse_dynamic", lambda x: lax.rev(x, (0,)), [("B", 4)]),
    # ---- concatenate
    Case("concat", lambda a, b, c: jnp.concatenate([a, b, c], axis=1), [(2, 3), (2, 1), (2, 4)]),
    Case("concat_dynamic", lambda a, b: jnp.concatenate([a, b], axis=0), [("B", 3), (2, 3)]),
    Case("concat_int", lambda a, b: jnp.concatenate([a, b]), [of(jnp.int32, 2), of(jnp.int32, 3)]),
    # ---- get_dimension_size (symbolic shapes)
    Case("dim_size", lambda x: x * x.shape[0], [("B", 3)]),
    Case("dim_size_mean", lambda x: jnp.mean(x, axis=0), [("B", 3)]),
    # ---- dynamic_slice: random starts in [-10, 10) exercise the clamping
    Case("dynamic_slice", lambda x, i: lax.dynamic_slice(x, (i, 1), (2, 2)), [(5, 4), I32]),
    Case("dynamic_slice_two", lambda x, i, j: lax.dynamic_slice(x, (i, j), (3, 2)),
         [(5, 4), I32, I32]),
    Case("dynamic_slice_const", lambda x: lax.dynamic_slice(x, (3, 9), (2, 2)), [(5, 4)],
         ops={"Max": 0, "Min": 0}),
    Case("dynamic_slice_index", lambda x, i: x[i], [(5, 4), I32]),
    Case("dynamic_slice_batch", lambda x, i: lax.dynamic_slice_in_dim(x, i, 2, axis=1),
         [("B", 6), I32]),
    # ---- dynamic_update_slice
    Case("dus", lambda x, u, i: lax.dynamic_update_slice(x, u, (i, 1)), [(5, 4), (2, 2), I32]),
    Case("dus_rows", lambda x, u, i: lax.dynamic_update_slice(x, u, (i, 0)), [(6, 4), (2, 4), I32]),
    Case("dus_const", lambda x, u: lax.dynamic_update_slice(x, u, (4, -2)), [(5, 4), (2, 2)]),
    Case("dus_kv_cache", lambda c, u, t: lax.dynamic_update_slice(c, u, (0, t, 0, 0)),
         [(2, 8, 3, 4), (2, 1, 3, 4), I32]),
    Case("dus_kv_cache_dynamic", lambda c, u, t: lax.dynamic_update_slice(c, u, (0, t, 0, 0)),
         [("B", 8, 3, 4), ("B", 1, 3, 4), I32]),
    Case("dus_whole", lambda x, u, i: lax.dynamic_update_slice(x, u, (i, i)),
         [(2, 3), (2, 3), I32]),
    # ---- pad
    Case("pad_edges", lambda x: jnp.pad(x, ((1, 2), (0, 3))), [(5, 4)]),
    Case("pad_value", lambda x: lax.pad(x, -7.0, [(1, 0, 0), (2, 1, 0)]), [(5, 4)]),
    Case("pad_negative", lambda x: lax.pad(x, 0.0, [(-1, -2, 0), (1, -1, 0)]), [(5, 4)]),
    Case("pad_interior", lambda x: lax.pad(x, 9.0, [(0, 0, 2), (1, 1, 1)]), [(3, 4)]),
    Case("pad_mixed", lambda x: lax.pad(x, 0.0, [(1, -1, 2), (-1, 2, 0)]), [(3, 4)]),
    Case("pad_cut_into_padding", lambda x: lax.pad(x, 5.0, [(-3, 2, 0)]), [(2,)]),
    Case("pad_int", lambda x: jnp.pad(x, 2, constant_values=7), [of(jnp.int32, 3, 2)]),
    Case("pad_dynamic", lambda x: lax.pad(x, 1.0, [(0, 0, 0), (1, 2, 1)]), [("B", 3)]),
    Case("pad_dynamic_interior", lambda x: lax.pad(x, 1.0, [(1, 0, 1), (0, 1, 0)]), [("B", 3)]),
    Case("pad_empty_operand", lambda x: lax.pad(x, 2.0, [(1, 1, 0), (0, 1, 3)]), [(0, 3)]),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_shape_op(case: Case):
    kw = dict(case.kw)
    model = convert_and_check(case.fn, case.inputs, **kw)
    # no initializer holds a materialised splat or iota of the input's size
    assert all(np.prod(t.dims) < 65536 for t in model.graph.initializer)
    if case.ops is not None:
        assert_op_counts(hlo2onnx.to_onnx(case.fn, case.inputs, optimize=False), case.ops)
    assert model.graph.node or model.graph.output


# The lowest opset we emit for: axes/pads as inputs, Reshape allowzero and
# Shape start/end all exist by 17.
OPSET17 = ["const_big_splat", "iota_2d_dim0", "bcast_nonmonotonic", "bcast_dynamic_col",
           "reshape_zero", "reshape_dynamic_split", "slice_strides", "reverse", "dim_size",
           "dynamic_slice_two", "dus_kv_cache_dynamic", "pad_mixed", "pad_dynamic_interior"]


@pytest.mark.parametrize("case", [c for c in CASES if c.name in OPSET17], ids=lambda c: c.name)
def test_shape_op_opset17(case: Case):
    convert_and_check(case.fn, case.inputs, opset=17, **case.kw)


def test_iota_exact_beyond_f16_precision():
    # iota of f16 rounds its large values as f16 does; computing in f32 and
    # casting rounds the same way.
    fn = lambda x: x + jnp.arange(4096, dtype=jnp.float16)  # noqa: E731
    convert_and_check(fn, [of(jnp.float16, 4096)], rtol=0, atol=0,
                      input_generator=lambda rng, shape, dt, i: np.zeros(shape, dt))


def _count_everywhere(graph, op_type: str) -> int:
    """Nodes of op_type in graph and its If/Loop subgraphs."""
    n = 0
    for node in graph.node:
        n += node.op_type == op_type
        for a in node.attribute:
            if a.type == a.GRAPH:
                n += _count_everywhere(a.g, op_type)
    return n


def _in_cond(perm):
    return lambda x: lax.cond(jnp.sum(x) > 0, lambda y: jnp.transpose(y, perm) * 2.0,
                              lambda y: jnp.transpose(y, perm), x)


# (name, fn, inputs, Transposes left): a Transpose that moves only axes of
# size 1 becomes a Reshape (passes/transpose.c, pass unit_transposes) when
# its target shape can be written with constants, 0 ("copy the dim in place")
# and one -1; otherwise a Squeeze and an Unsqueeze.  One that moves data stays.
UNIT_TRANSPOSES = [
    ("nchw_to_nhwc_one_channel", lambda x: jnp.transpose(x, (0, 2, 3, 1)) + 1.0,
     [("B", 1, 5, 6)], 0),
    ("dynamic_dim_moves", lambda x: jnp.transpose(x, (1, 0, 2)) + 1.0, [(1, "B", 4)], 0),
    ("two_dynamic_dims_move", lambda x: jnp.transpose(x, (1, 2, 0)) + 1.0, [(1, "B", "T")], 0),
    ("moves_data", lambda x: jnp.transpose(x, (2, 1, 0)) + 1.0, [(3, 1, 4)], 1),
    ("in_cond_branches", _in_cond((0, 2, 1)), [(3, 4, 1)], 0),
    ("empty", lambda x: jnp.transpose(x, (1, 0, 2)) + 1.0, [(1, 0, 3)], None),
]


@pytest.mark.parametrize("name,fn,inputs,left", UNIT_TRANSPOSES, ids=[c[0] for c in UNIT_TRANSPOSES])
def test_unit_axis_transposes_become_reshapes(name, fn, inputs, left):
    model = convert_and_check(fn, inputs)
    if left is not None:
        assert _count_everywhere(model.graph, "Transpose") == left
