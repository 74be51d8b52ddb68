"""Gather and scatter (src/lower/gather.c), through the whole pipeline.

Each case is a JAX function converted with hlo2onnx.to_onnx, checked with
onnx.checker (full_check) and against JAX with onnxruntime (float32:
rtol = atol = 1e-5; exact for integers and booleans).  Inputs with a
symbolic dimension "B" run at B = 1, 3 and 8.

Index inputs are random integers in [-10, 10) unless a case says otherwise,
against axes of length 4 to 6: negative indices (which JAX normalises in
the HLO) and out-of-bounds ones (which gather clamps and scatter drops) are
both exercised.  A replacing scatter with repeated indices is
non-deterministic in XLA and in ONNX alike, so those cases draw distinct
indices (some of them still out of bounds).

A case may state the ONNX ops it expects (``ops``: op_type -> count, on
the model converted without the optional fusion passes) where the form of
the graph is the point: x[idx] is one Gather, take_along_axis one
GatherElements, a scatter-add needs no padding, and so on.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import pytest
from jax import lax

import hlo2onnx
from hlo2onnx import _core
from util import Case, assert_op_counts, check_model, convert_and_check, run_ort


def f32(*shape):
    return jax.ShapeDtypeStruct(shape, jnp.float32)


def of(dtype, *shape):
    return jax.ShapeDtypeStruct(shape, dtype)


def i32(*shape):
    return jax.ShapeDtypeStruct(shape, jnp.int32)


def dtypes(*dts):
    """kw for inputs given as shape tuples (symbolic dims) of these dtypes."""
    return dict(input_dtypes=list(dts))


F, I = jnp.float32, jnp.int32


def distinct(n_axis: int):
    """Index rows (along the last axis) whose targets on an axis of length
    n_axis are distinct after JAX's normalisation of negative indices; about
    a third of them out of bounds (>= n_axis or < -n_axis)."""

    def make(rng, shape, dtype):
        out = np.empty(shape, np.int64)
        flat = out.reshape(-1, shape[-1]) if shape else out.reshape(1, 1)
        for row in flat:
            k = row.shape[0]
            # targets 0..n-1 in range; n.. stand for out-of-bounds values
            t = rng.choice(n_axis + 2 * k, size=k, replace=False)
            for j, v in enumerate(t):
                if v < n_axis:
                    row[j] = v - n_axis if rng.random() < 0.5 else v
                else:
                    row[j] = v if rng.random() < 0.5 else -v - 1
        return out.reshape(shape).astype(dtype)

    return make


def in_range(n_axis: int):
    def make(rng, shape, dtype):
        return rng.integers(0, n_axis, size=shape).astype(dtype)

    return make


def generator(gen: dict[int, Callable]):
    """verify()'s input_generator from per-input generators (the others
    get verify's defaults: normal floats, ints in [-10, 10))."""
    from hlo2onnx.verify import random_array

    def make(rng, shape, dtype, i):
        if i in gen:
            return gen[i](rng, shape, dtype)
        return random_array(rng, shape, dtype)

    return make


# take_along_axis indices must have the operand's size on the other axes.
def tala(axis):
    return lambda x, i: jnp.take_along_axis(x, i, axis=axis)


# A windowed gather with batching dims: vmap of a dynamic slice.
vmap_window = jax.vmap(lambda x, i: lax.dynamic_slice_in_dim(x, i, 2))

# lax.gather with offset dims in front of the batch dims, windows of 2x3
# on both indexed axes of a (5, 6, 4) operand: the result layout differs
# from GatherND's.
GDN = lax.GatherDimensionNumbers(offset_dims=(0, 2), collapsed_slice_dims=(2,),
                                 start_index_map=(0, 1, 2))


def general_gather(x, i):
    return lax.gather(x, i, GDN, slice_sizes=(2, 3, 1),
                      mode=lax.GatherScatterMode.CLIP)


# A gather without start_index_map on the collapsed axis: slice [0:1] of
# axis 1 taken whole-window, indexed on axis 0 only, window 2 on axis 2.
GDN2 = lax.GatherDimensionNumbers(offset_dims=(1,), collapsed_slice_dims=(0, 1),
                                  start_index_map=(0,))


def partial_window_gather(x, i):
    return lax.gather(x, i, GDN2, slice_sizes=(1, 1, 2), mode=lax.GatherScatterMode.CLIP)


# Windowed scatters: XLA drops a whole window whose start is out of range
# (the StableHLO spec would drop only its out-of-range elements).
SDN = lax.ScatterDimensionNumbers(update_window_dims=(1, 2), inserted_window_dims=(),
                                  scatter_dims_to_operand_dims=(0,))


def window_scatter_add(x, i, u):
    return lax.scatter_add(x, i, u, SDN)


def window_scatter_set(x, i, u):
    return lax.scatter(x, i, u, SDN)


# Window on an indexed axis and a partial window on another axis.
SDN2 = lax.ScatterDimensionNumbers(update_window_dims=(1, 2), inserted_window_dims=(1,),
                                   scatter_dims_to_operand_dims=(0, 1))


def window_scatter_mul(x, i, u):
    return lax.scatter_mul(x, i, u, SDN2)


# The seed's gather_tf_out (jax2onnx v0.1.0): index 0 of axis 1 of
# (1, 50, 256), i.e. the ViT's class token, as jax.lax.gather.
TF_OUT = lax.GatherDimensionNumbers(offset_dims=(0, 1), collapsed_slice_dims=(1,),
                                    start_index_map=(1,))


def gather_tf_out(x):
    return lax.gather(x, jnp.array([0]), TF_OUT, slice_sizes=(x.shape[0], 1, x.shape[2]))


CASES = [
    Case("gather_tf_out", gather_tf_out, [(1, 50, 256)], ops={"Gather": 1, "Clip": 0}),
    Case("gather_tf_out_B", gather_tf_out, [("B", 50, 256)],
         ops={"Gather": 1, "Clip": 0, "Slice": 0}),
    Case("gather_tf_out_take", lambda x: jnp.take(x, 0, axis=1), [("B", 50, 256)]),
    # ---- gather: one indexed axis -> Gather
    Case("take_rows", lambda x, i: x[i], [(5, 4), i32(3)],
         ops={"Gather": 1, "GatherND": 0, "Squeeze": 0, "Transpose": 0}),
    Case("take_rows_2d_index", lambda x, i: x[i], [(5, 4), i32(2, 3)], ops={"Gather": 1}),
    Case("take_axis0", lambda x, i: jnp.take(x, i, axis=0), [(4, 5, 6), i32(3)],
         ops={"Gather": 1}),
    Case("take_axis1", lambda x, i: jnp.take(x, i, axis=1), [(4, 5, 6), i32(3)],
         ops={"Gather": 1}),
    Case("take_axis2", lambda x, i: jnp.take(x, i, axis=2), [(4, 5, 6), i32(2, 2)],
         ops={"Gather": 1}),
    Case("take_clip", lambda x, i: jnp.take(x, i, axis=1, mode="clip"), [(4, 5), i32(7)]),
    Case("take_wrap", lambda x, i: jnp.take(x, i, axis=1, mode="wrap"), [(4, 5), i32(7)]),
    Case("columns", lambda x, i: x[:, i], [(5, 4), i32(3)], ops={"Gather": 1}),
    Case("last_axis", lambda x, i: x[..., i], [(3, 4, 5), i32(2)], ops={"Gather": 1}),
    Case("ellipsis_zero", lambda x: x[..., 0], [(3, 4, 5)]),
    Case("scalar_index", lambda x, i: x[i], [(5, 4), i32()]),
    # constant indices (normalised by JAX with add/select) need no Clip
    Case("const_indices", lambda x: x[np.array([1, -2, 4])], [(5, 4)],
         ops={"Gather": 1, "Clip": 0}),
    Case("const_range", lambda x: x[jnp.arange(1, 3)], [(5, 4)], ops={"Clip": 0}),
    Case("const_index_pairs", lambda x: x[np.array([0, 4]), np.array([3, -1])], [(5, 4)],
         ops={"GatherND": 1, "Max": 0, "Min": 0}),
    # with static shapes JAX slices the class token (with "B" it gathers)
    Case("class_token", lambda x: x[:, 0], [(2, 7, 4)]),
    Case("index_from_input_float", lambda x, i: x[i.astype(jnp.int32)], [(5, 4), (3,)]),
    # ---- take_along_axis -> GatherElements
    Case("tala_2d_axis1", tala(1), [(5, 4), i32(5, 3)],
         ops={"GatherElements": 1, "GatherND": 0}),
    Case("tala_2d_axis0", tala(0), [(5, 4), i32(2, 4)], ops={"GatherElements": 1}),
    Case("tala_3d_axis1", tala(1), [(2, 5, 4), i32(2, 3, 4)], ops={"GatherElements": 1}),
    Case("tala_3d_last", tala(-1), [(2, 5, 4), i32(2, 5, 6)], ops={"GatherElements": 1}),
    # ---- several indexed axes -> GatherND
    Case("two_arrays", lambda x, i, j: x[i, j], [(5, 4), i32(3), i32(3)],
         ops={"GatherND": 1, "Transpose": 0}),
    Case("two_arrays_rows", lambda x, i, j: x[i, j], [(5, 4, 3), i32(2, 3), i32(2, 3)],
         ops={"GatherND": 1}),
    Case("split_arrays", lambda x, i, j: x[i, :, j], [(5, 3, 4), i32(2), i32(2)]),
    Case("middle_arrays", lambda x, i, j: x[:, i, j], [(2, 5, 4), i32(3), i32(3)],
         ops={"GatherND": 1, "Transpose": 0}),
    Case("scalar_pair", lambda x, i, j: x[i, j], [(5, 4), i32(), i32()]),
    Case("general_gather", general_gather, [(5, 6, 4), i32(3, 3)]),
    Case("partial_window", partial_window_gather, [(5, 3, 4), i32(2, 1)]),
    # ---- batching dims (vmap)
    Case("vmap_take", jax.vmap(lambda x, i: x[i]), [(2, 5, 4), i32(2, 3)],
         ops={"GatherND": 1}),
    Case("vmap_take_axis1", jax.vmap(lambda x, i: x[i], in_axes=(1, 0)),
         [(5, 2, 4), i32(2, 3)]),
    Case("vmap_window", vmap_window, [(3, 6), i32(3)], ops={"GatherND": 1}),
    Case("vmap_vmap", jax.vmap(jax.vmap(lambda x, i: x[i])), [(2, 3, 5), i32(2, 3, 4)]),
    # ---- dtypes
    Case("gather_f16", lambda x, i: x[i], [of(jnp.float16, 5, 4), i32(3)]),
    Case("gather_i32", lambda x, i: x[:, i], [of(jnp.int32, 5, 4), i32(3)]),
    Case("gather_bool", lambda x, i, j: x[i, j], [of(jnp.bool_, 5, 4), i32(3), i32(3)]),
    Case("gather_i16_index", lambda x, i: x[i], [(5, 4), of(jnp.int16, 3)]),
    Case("gather_u8_index", lambda x, i: jnp.take_along_axis(x, i, axis=1),
         [(5, 4), of(jnp.uint8, 5, 3)]),
    # ---- symbolic dims
    Case("class_token_B", lambda x: x[:, 0], [("B", 7, 4)],
         ops={"Gather": 1, "Slice": 0, "GatherND": 0}),
    # the class token of a computed (B, T, D): still taken whole on B
    Case("class_token_B_intermediate", lambda x: jnp.tanh(x)[:, 0], [("B", 7, 4)],
         ops={"Gather": 1, "GatherND": 0, "Slice": 0}),
    Case("class_token_B_layernorm",
         lambda x, w: jax.nn.standardize(x @ w + 1.0, axis=-1)[:, 0], [("B", 7, 4), (4, 4)],
         ops={"Gather": 1, "Slice": 0}),
    # a run-time slice size not provably the operand's (2*B): the result is
    # cut to it after the Gather
    Case("class_token_2B", lambda x: jnp.concatenate([x, x])[:, 0], [("B", 7, 4)],
         ops={"Gather": 2, "Slice": 1}),
    Case("rows_B", lambda x, i: x[i], [("B", 4), i32(3)], ops={"Gather": 1}),
    Case("columns_B", lambda x, i: x[:, i], [("B", 4), i32(3)], ops={"Gather": 1}),
    Case("index_B", lambda x, i: x[i], [(5, 4), ("B",)], kw=dtypes(F, I), ops={"Gather": 1}),
    Case("tala_B", tala(1), [("B", 5), ("B", 3)], kw=dtypes(F, I),
         ops={"GatherElements": 1}),
    Case("vmap_take_B", jax.vmap(lambda x, i: x[i]), [("B", 5, 4), ("B", 3)], kw=dtypes(F, I),
         ops={"GatherND": 1}),
    Case("two_arrays_B", lambda x, i, j: x[i, j], [(5, 4), ("B",), ("B",)],
         kw=dtypes(F, I, I)),
    Case("vmap_window_B", vmap_window, [("B", 6), ("B",)], kw=dtypes(F, I)),
    Case("take_B_axis1", lambda x, i: jnp.take(x, i, axis=1), [("B", 5, 3), ("B",)],
         kw=dtypes(F, I)),

    # ---- scatter: x.at[...]
    Case("set_rows", lambda x, i, v: x.at[i].set(v), [(5, 4), i32(3), (3, 4)],
         ops={"ScatterND": 1, "Pad": 1}, gen={1: distinct(5)}),
    Case("set_scalar", lambda x, i: x.at[i].set(1.5), [(5, 4), i32(3)],
         gen={1: distinct(5)}),
    Case("set_in_range", lambda x, i, v: x.at[i].set(v, mode="promise_in_bounds"),
         [(5, 4), i32(3), (3, 4)], gen={1: distinct(5)}),
    Case("set_clip", lambda x, i, v: x.at[i].set(v, mode="clip"), [(5, 4), i32(1), (1, 4)],
         ops={"ScatterND": 1, "Pad": 0}),
    # a float sum sends its dropped windows to a padding block, as set does:
    # the neutral -0.0 would lose its sign in onnxruntime's Where
    # (test_fuzz_findings.py::test_scatter_add_dropped_keeps_negative_zero)
    Case("add_rows", lambda x, i, v: x.at[i].add(v), [(5, 4), i32(6), (6, 4)],
         ops={"ScatterND": 1, "Pad": 1}),
    Case("add_rows_int", lambda x, i, v: x.at[i].add(v), [(5, 4), i32(6), (6, 4)],
         kw=dtypes(I, I, I), ops={"ScatterND": 1, "Pad": 0}),
    Case("add_const", lambda x: x.at[1].add(2.0), [(5, 4)],
         ops={"ScatterND": 1, "Where": 0, "Pad": 0, "Concat": 0}),
    Case("add_duplicates", lambda x, v: x.at[np.array([1, 3, 1, 1])].add(v), [(5, 4), (4, 4)]),
    Case("mul_rows", lambda x, i, v: x.at[i].multiply(v), [(5, 4), i32(6), (6, 4)]),
    Case("min_rows", lambda x, i, v: x.at[i].min(v), [(5, 4), i32(6), (6, 4)]),
    Case("max_rows", lambda x, i, v: x.at[i].max(v), [(5, 4), i32(6), (6, 4)]),
    Case("subtract_rows", lambda x, i, v: x.at[i].subtract(v), [(5, 4), i32(6), (6, 4)]),
    Case("max_scalar", lambda x, i: x.at[i].max(0.5), [(5, 4), i32(6)]),
    Case("set_column", lambda x, v: x.at[:, 1].set(v), [(5, 4), (5,)],
         ops={"ScatterND": 1, "Concat": 0, "Transpose": 0}),
    Case("add_column_idx", lambda x, i, v: x.at[:, i].add(v), [(5, 4), i32(3), (5, 3)]),
    Case("set_pairs", lambda x, i, v: x.at[i, 2].set(v), [(5, 4), i32(3), (3,)],
         gen={1: distinct(5)}),
    Case("add_pairs", lambda x, i, j, v: x.at[i, j].add(v), [(5, 4), i32(6), i32(6), (6,)]),
    Case("set_block", lambda x, v: x.at[1:3, 2].set(v), [(5, 4), (2,)]),
    Case("index_from_input_float", lambda x, i: x.at[i.astype(jnp.int32)].add(1.0),
         [(5, 4), (3,)]),
    Case("vmap_set", jax.vmap(lambda x, i, v: x.at[i].set(v)), [(2, 5, 4), i32(2, 3), (2, 3, 4)],
         gen={1: distinct(5)}),
    Case("vmap_add", jax.vmap(lambda x, i, v: x.at[i].add(v)), [(2, 5, 4), i32(2, 3), (2, 3, 4)]),
    Case("vmap_add_axis1", jax.vmap(lambda x, i, v: x.at[:, i].add(v), in_axes=(1, 0, 0)),
         [(4, 2, 5), i32(2, 3), (2, 4, 3)]),
    Case("window_add", window_scatter_add, [(5, 3), i32(3, 1), (3, 2, 3)]),
    Case("window_set", window_scatter_set, [(5, 3), i32(2, 1), (2, 2, 3)],
         gen={1: lambda rng, shape, dt: np.array([[rng.choice([-1, 0])], [rng.choice([2, 4])]],
                                                 dt)}),
    Case("window_mul", window_scatter_mul, [(6, 5, 4), i32(3, 2), (3, 2, 3)]),
    # ---- dtypes
    Case("add_f16", lambda x, i, v: x.at[i].add(v), [of(jnp.float16, 5, 4), i32(6),
                                                      of(jnp.float16, 6, 4)],
         kw=dict(rtol=1e-2, atol=1e-2)),
    Case("set_f16", lambda x, i, v: x.at[i].set(v), [of(jnp.float16, 5, 4), i32(3),
                                                      of(jnp.float16, 3, 4)],
         gen={1: distinct(5)}),
    Case("add_i32", lambda x, i, v: x.at[i].add(v), [of(jnp.int32, 5, 4), i32(6),
                                                      of(jnp.int32, 6, 4)]),
    Case("max_i32", lambda x, i, v: x.at[i].max(v), [of(jnp.int32, 5, 4), i32(6),
                                                      of(jnp.int32, 6, 4)]),
    Case("min_i8", lambda x, i, v: x.at[i].min(v), [of(jnp.int8, 5, 4), i32(6),
                                                     of(jnp.int8, 6, 4)]),
    Case("set_bool", lambda x, i: x.at[i].set(True), [of(jnp.bool_, 5, 4), i32(3)],
         gen={1: distinct(5)}),
    Case("or_bool", lambda x, i, v: x.at[i].max(v), [of(jnp.bool_, 5, 4), i32(6),
                                                      of(jnp.bool_, 6, 4)]),
    Case("and_bool", lambda x, i, v: x.at[i].min(v), [of(jnp.bool_, 5, 4), i32(6),
                                                       of(jnp.bool_, 6, 4)]),
    # ---- symbolic dims
    Case("set_rows_B", lambda x, i, v: x.at[i].set(v), [("B", 4), i32(3), (3, 4)],
         gen={1: distinct(3)}),
    Case("add_rows_B", lambda x, i, v: x.at[i].add(v), [("B", 4), i32(3), (3, 4)]),
    Case("set_column_B", lambda x, v: x.at[:, 1].set(v), [("B", 4), ("B",)]),
    Case("add_updates_B", lambda x, i, v: x.at[i].add(v), [(5, 4), ("B",), ("B", 4)],
         kw=dtypes(F, I, F)),
    Case("vmap_add_B", jax.vmap(lambda x, i, v: x.at[i].add(v)),
         [("B", 5, 4), ("B", 3), ("B", 3, 4)], kw=dtypes(F, I, F)),
    Case("vmap_set_B", jax.vmap(lambda x, i, v: x.at[i].set(v)),
         [("B", 5, 4), ("B", 3), ("B", 3, 4)], kw=dtypes(F, I, F), gen={1: distinct(5)}),
    Case("set_column_idx_B", lambda x, i, v: x.at[:, i].set(v), [("B", 5), (2,), ("B", 2)],
         kw=dtypes(F, I, F), gen={1: distinct(5)}),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_gather_scatter(case: Case):
    kw = dict(case.kw)
    if case.gen:
        kw["input_generator"] = generator(case.gen)
    convert_and_check(case.fn, case.inputs, **kw)
    if case.ops is not None:
        shared = {k: v for k, v in case.kw.items() if k == "input_dtypes"}
        assert_op_counts(hlo2onnx.to_onnx(case.fn, case.inputs, optimize=False, **shared),
                         case.ops)


def test_class_token_is_one_gather():
    """The seed's gather_tf_out: the ViT's x[:, 0] on (B, T, D), which JAX
    lowers to a dynamic_gather with slice sizes (B, 1, D) when B is
    symbolic, is a single Gather with a constant index."""
    model = hlo2onnx.to_onnx(lambda x: x[:, 0], [("B", 7, 4)])
    assert [n.op_type for n in model.graph.node] == ["Gather"]
    (gather,) = model.graph.node
    assert onnx.helper.get_attribute_value(gather.attribute[0]) == 1  # axis
    assert [init.dims for init in model.graph.initializer] == [[]]  # the scalar index 0


def test_runtime_slice_sizes():
    """dynamic_gather with slice sizes from an input: the offset axis is cut
    to the run-time size (here 2 of 5 rows)."""
    text = """
func.func public @main(%x: tensor<?x4xf32>, %i: tensor<3x1xi32>, %sizes: tensor<2xi64>)
    -> tensor<?x3xf32> {
  %r = "stablehlo.dynamic_gather"(%x, %i, %sizes) {
    dimension_numbers = #stablehlo.gather<offset_dims = [0], collapsed_slice_dims = [1],
                                          start_index_map = [1], index_vector_dim = 1>,
    indices_are_sorted = false
  } : (tensor<?x4xf32>, tensor<3x1xi32>, tensor<2xi64>) -> tensor<?x3xf32>
  return %r : tensor<?x3xf32>
}
"""
    model = convert_text(text)
    x = np.arange(20, dtype=np.float32).reshape(5, 4)
    i = np.array([[3], [-1], [9]], np.int32)
    (got,) = run_ort(model, x, i, np.array([2, 1], np.int64))
    np.testing.assert_array_equal(got, x[:2][:, [3, 0, 3]])


def test_vmap_take_uses_batch_dims():
    model = hlo2onnx.to_onnx(jax.vmap(lambda x, i: x[i]), [(2, 5, 4), i32(2, 3)])
    (node,) = [n for n in model.graph.node if n.op_type == "GatherND"]
    assert {a.name: a.i for a in node.attribute} == {"batch_dims": 1}


def test_out_of_bounds_scatter_is_dropped():
    """JAX drops updates whose index is out of bounds (after normalising
    negative indices): rows 9 and -7 of a 5-row operand change nothing."""
    fn = lambda x, i, v: x.at[i].set(v)  # noqa: E731
    model = hlo2onnx.to_onnx(fn, [(5, 4), i32(3), (3, 4)])
    x = np.zeros((5, 4), np.float32)
    i = np.array([9, -7, -1], np.int32)
    v = np.ones((3, 4), np.float32)
    (got,) = run_ort(model, x, i, v)
    want = np.asarray(jax.jit(fn)(x, i, v))
    np.testing.assert_array_equal(got, want)
    assert want[:4].sum() == 0 and want[4].sum() == 4


def test_window_drop_follows_xla():
    """A window that sticks out of the operand is dropped whole (XLA), not
    clipped element by element (the letter of the StableHLO spec)."""
    x = np.zeros((5, 3), np.float32)
    i = np.array([[4], [-1], [1]], np.int32)
    u = np.ones((3, 2, 3), np.float32) * np.array([1, 2, 3], np.float32)[:, None, None]
    model = hlo2onnx.to_onnx(window_scatter_add, [(5, 3), i32(3, 1), (3, 2, 3)])
    (got,) = run_ort(model, x, i, u)
    want = np.asarray(jax.jit(window_scatter_add)(x, i, u))
    np.testing.assert_array_equal(got, want)
    assert got[4].sum() == 0  # the window at row 4 was dropped, not cut


def test_add_keeps_negative_zero():
    """Dropped updates of a scatter-add become -0.0, which leaves -0.0 alone.
    Checked with the ONNX reference implementation: onnxruntime's Where
    returns +0.0 for a selected -0.0 (so there x[2] would become +0.0)."""
    from onnx.reference import ReferenceEvaluator

    fn = lambda x, i, v: x.at[i].add(v)  # noqa: E731
    model = hlo2onnx.to_onnx(fn, [(3,), i32(2), (2,)])
    x = np.array([-0.0, 1.0, -0.0], np.float32)
    i = np.array([7, 1], np.int32)
    v = np.array([5.0, 2.0], np.float32)
    (got,) = ReferenceEvaluator(model).run(None, {"x": x, "i": i, "v": v})  # fn's parameters
    np.testing.assert_array_equal(np.signbit(got), [True, False, True])
    np.testing.assert_array_equal(got, [0.0, 3.0, 0.0])


@pytest.mark.parametrize("opset", [17, 18, 20])
def test_scatter_opsets(opset):
    fn = lambda x, i, v: x.at[i].add(v)  # noqa: E731
    convert_and_check(fn, [(5, 4), i32(3), (3, 4)], opset=opset)
    fn_max = lambda x, i, v: x.at[i].max(v)  # noqa: E731
    if opset >= 18:
        convert_and_check(fn_max, [(5, 4), i32(3), (3, 4)], opset=opset)
    else:
        with pytest.raises(hlo2onnx.UnsupportedOpError, match="opset 18"):
            hlo2onnx.to_onnx(fn_max, [(5, 4), i32(3), (3, 4)], opset=opset)


def test_x64_int64():
    with jax.enable_x64(True):
        fn = lambda x, i, v: x.at[i].add(v)[i]  # noqa: E731
        convert_and_check(fn, [of(jnp.int64, 5, 4), of(jnp.int64, 3), of(jnp.int64, 3, 4)])
        convert_and_check(lambda x, i: jnp.take_along_axis(x, i, axis=0),
                          [of(jnp.float64, 5, 4), of(jnp.int64, 3, 4)])


def test_unsupported_update_computation():
    fn = lambda x, i: x.at[i].apply(jnp.sin)  # noqa: E731
    with pytest.raises(hlo2onnx.UnsupportedOpError, match="update computation"):
        hlo2onnx.to_onnx(fn, [(5, 4), i32(3)])


# ---- the examples of the StableHLO spec, as MLIR text ----------------------

SPEC_OPERAND = np.arange(1, 49, dtype=np.int64).reshape(2, 3, 4, 2)
SPEC_INDICES = np.array([[[[0, 0], [1, 0], [2, 1]], [[0, 1], [1, 1], [0, 9]]],
                         [[[0, 0], [2, 1], [2, 2]], [[1, 2], [0, 1], [1, 0]]]], np.int64)

SPEC_GATHER = """
func.func public @main(%operand: tensor<2x3x4x2xi64>, %start_indices: tensor<2x2x3x2xi64>)
    -> tensor<2x2x3x2x2xi64> {
  %result = "stablehlo.gather"(%operand, %start_indices) {
    dimension_numbers = #stablehlo.gather<
      offset_dims = [3, 4],
      collapsed_slice_dims = [1],
      operand_batching_dims = [0],
      start_indices_batching_dims = [1],
      start_index_map = [2, 1],
      index_vector_dim = 3>,
    slice_sizes = array<i64: 1, 1, 2, 2>,
    indices_are_sorted = false
  } : (tensor<2x3x4x2xi64>, tensor<2x2x3x2xi64>) -> tensor<2x2x3x2x2xi64>
  return %result : tensor<2x2x3x2x2xi64>
}
"""

SPEC_GATHER_RESULT = [
    [[[[1, 2], [3, 4]], [[3, 4], [5, 6]], [[13, 14], [15, 16]]],
     [[[33, 34], [35, 36]], [[35, 36], [37, 38]], [[41, 42], [43, 44]]]],
    [[[[1, 2], [3, 4]], [[13, 14], [15, 16]], [[21, 22], [23, 24]]],
     [[[43, 44], [45, 46]], [[33, 34], [35, 36]], [[27, 28], [29, 30]]]]]

SPEC_SCATTER = """
func.func public @main(%input: tensor<2x3x4x2xi64>, %scatter_indices: tensor<2x2x3x2xi64>,
                       %update: tensor<2x2x3x2x2xi64>) -> tensor<2x3x4x2xi64> {
  %result = "stablehlo.scatter"(%input, %scatter_indices, %update) ({
    ^bb0(%arg0: tensor<i64>, %arg1: tensor<i64>):
      %0 = "stablehlo.add"(%arg0, %arg1) : (tensor<i64>, tensor<i64>) -> tensor<i64>
      "stablehlo.return"(%0) : (tensor<i64>) -> ()
  }) {
    scatter_dimension_numbers = #stablehlo.scatter<
      update_window_dims = [3, 4],
      inserted_window_dims = [1],
      input_batching_dims = [0],
      scatter_indices_batching_dims = [1],
      scatter_dims_to_operand_dims = [2, 1],
      index_vector_dim = 3>,
    indices_are_sorted = false,
    unique_indices = false
  } : (tensor<2x3x4x2xi64>, tensor<2x2x3x2xi64>, tensor<2x2x3x2x2xi64>) -> tensor<2x3x4x2xi64>
  return %result : tensor<2x3x4x2xi64>
}
"""

SPEC_SCATTER_RESULT = [
    [[[3, 4], [6, 7], [6, 7], [7, 8]],
     [[9, 10], [11, 12], [15, 16], [17, 18]],
     [[17, 18], [19, 20], [22, 23], [24, 25]]],
    [[[25, 26], [28, 29], [30, 31], [31, 32]],
     [[35, 36], [38, 39], [38, 39], [39, 40]],
     [[41, 42], [44, 45], [46, 47], [47, 48]]]]


def convert_text(text: str, **options) -> onnx.ModelProto:
    model = onnx.load_from_string(_core.convert(text, [], None, options))
    check_model(model)
    return model


def test_spec_gather_example():
    model = convert_text(SPEC_GATHER)
    (got,) = run_ort(model, SPEC_OPERAND, SPEC_INDICES)
    np.testing.assert_array_equal(got, SPEC_GATHER_RESULT)


def test_spec_scatter_example():
    model = convert_text(SPEC_SCATTER)
    (got,) = run_ort(model, SPEC_OPERAND, SPEC_INDICES, np.ones((2, 2, 3, 2, 2), np.int64))
    np.testing.assert_array_equal(got, SPEC_SCATTER_RESULT)


def test_variadic_scatter_is_reported():
    text = """
func.func public @main(%a: tensor<4xf32>, %b: tensor<4xi32>, %i: tensor<2x1xi32>,
                       %u: tensor<2xf32>, %v: tensor<2xi32>) -> (tensor<4xf32>, tensor<4xi32>) {
  %r:2 = "stablehlo.scatter"(%a, %b, %i, %u, %v) ({
    ^bb0(%x0: tensor<f32>, %x1: tensor<i32>, %y0: tensor<f32>, %y1: tensor<i32>):
      "stablehlo.return"(%y0, %y1) : (tensor<f32>, tensor<i32>) -> ()
  }) {
    scatter_dimension_numbers = #stablehlo.scatter<inserted_window_dims = [0],
      scatter_dims_to_operand_dims = [0], index_vector_dim = 1>
  } : (tensor<4xf32>, tensor<4xi32>, tensor<2x1xi32>, tensor<2xf32>, tensor<2xi32>)
      -> (tensor<4xf32>, tensor<4xi32>)
  return %r#0, %r#1 : tensor<4xf32>, tensor<4xi32>
}
"""
    with pytest.raises(hlo2onnx.UnsupportedOpError, match="2 operands"):
        convert_text(text)
