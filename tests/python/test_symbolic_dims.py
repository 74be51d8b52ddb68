"""Dynamic dims of intermediate values and outputs named after the inputs'
symbols (src/passes/symbolic_dims.c), checked against JAX on random inputs
(float32 rtol = atol = 1e-5), onnx.checker (full_check) and value_info
against the shapes onnxruntime computes, with each symbol at a different
size too (one size for all cannot tell "B" from "T").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import onnx
import pytest
from jax import lax

from hlo2onnx.convert import _eval_dim
from util import convert_and_check_shapes, dims_of, run_cli




def _conv_pool(x):  # NHWC
    w = jnp.ones((3, 3, x.shape[-1], 4), x.dtype) * 0.1
    y = lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = lax.reduce_window(y, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
    return y.reshape(y.shape[0], -1)


def _ln_mlp(x):
    m = x.mean(-1, keepdims=True)
    s = ((x - m) ** 2).mean(-1, keepdims=True)
    y = (x - m) / jnp.sqrt(s + 1e-5)
    return jax.nn.gelu(y @ jnp.ones((x.shape[-1], 6)) * 0.1).reshape(x.shape[0], -1)


def _cond(x, y):
    return lax.cond(x.sum() > 0, lambda a, b: (a.reshape(-1) * 2, b.T),
                    lambda a, b: (a.reshape(-1), b.T * 3), x, y)


SYMBOLIC = [
    ("merge", lambda x: jnp.tanh(x.reshape(-1, 8)).reshape(x.shape[0], 2, -1), [("B", 4, 2)]),
    ("merge_two_symbols", lambda x: x.reshape(-1) * 2, [("B", "T", 3)]),
    ("split_2T", lambda x: (x.reshape(x.shape[0], x.shape[1] // 2, 2, 3) + 1).sum(-1),
     [("B", "2*T", 3)]),
    ("two_symbols", lambda x, y: (jnp.tanh(x) @ y, (x[:, :, None] * y[None]).sum(1)),
     [("B", "T"), ("T", "B")]),
    ("broadcast_1", lambda x, y: (x + y, jnp.maximum(x, y[0])), [("B", 1, 4), (1, "T", 4)]),
    ("broadcast_T", lambda x, y: x * y, [("B", "T", 4), (1, "T", 1)]),
    ("broadcast_BT", lambda x, y: x * y, [("B", 1, 3), ("T", 3)]),
    ("reduce_keepdims", lambda x: (x - x.mean(1, keepdims=True)) / x.max((0, 2), keepdims=True),
     [("B", "T", 4)]),
    ("concat", lambda x, y: jnp.concatenate([x, y], 1) * 2, [("B", 3), ("B", "T")]),
    ("concat_axis0", lambda x, y: jnp.concatenate([x, y], 0).reshape(-1, 2), [("B", 4), ("T", 4)]),
    ("concat_B_B1", lambda x, y: jnp.concatenate([x, y]).reshape(-1) * 2, [("B", 3), ("B+1", 3)]),
    ("slice", lambda x: x[:, 1:3, ::2] * 2, [("B", 4, 4)]),
    ("strided_slice", lambda x: x[::2] + 1, [("B", 4)]),  # floordiv(B + 1, 2)
    ("expand", lambda x: jnp.broadcast_to(x[:, None, :], (x.shape[0], 3, x.shape[1])) + 1,
     [("B", "T")]),
    ("squeeze_unsqueeze", lambda x: jnp.squeeze(x, 1)[:, None, :, None] * 2, [("B", 1, "T")]),
    ("matmul", lambda x, w: jnp.tanh(x @ w), [("B", "T", 4), (4, 5)]),
    ("matmul_batched", lambda x, w: jnp.einsum("btk,bkn->btn", x, w),
     [("B", "T", 4), ("B", 4, 5)]),
    ("matmul_broadcast_batch", lambda x, y: jnp.matmul(x, y).reshape(-1, 5),
     [("B", 1, 3, 4), ("T", 4, 5)]),
    ("square", lambda x, y: (x + y).reshape(-1), [("B", 1), (1, "B")]),  # B^2
    ("conv_pool", _conv_pool, [("B", 8, 8, 2)]),
    ("ln_mlp", _ln_mlp, [("B", "T", 4)]),
    ("attention", jax.nn.dot_product_attention,
     [("B", "T", 2, 4), ("B", "S", 2, 4), ("B", "S", 2, 4)]),
    ("cond", _cond, [("B", 3), ("T", 2)]),
    ("user_2B", lambda x, y: (x.reshape(-1, 3, 2).sum(0), x[: x.shape[0] // 2] + y),
     [("2*B", 6), ("B", 6)]),
    ("user_2B_merge", lambda x: (jnp.tanh(x).reshape(-1, 2, 3).sum(1), x.reshape(-1)),
     [("2*B", 3)]),
    ("user_B1", lambda x: (x[1:] * 2, x.reshape(-1)), [("B+1", 4)]),
    ("user_B1_split", lambda x: jnp.tanh(x).reshape(2, -1), [("B+1", 4)]),
    ("argmax", lambda x: jnp.argmax(x, axis=1) + jnp.argmin(x, 1), [("B", "T", 3)]),
    ("softmax", lambda x: jax.nn.softmax(x.reshape(x.shape[0], -1)), [("B", "T", 3)]),
    ("transpose_flatten", lambda x: jnp.transpose(x, (1, 0, 2)).reshape(x.shape[1], -1),
     [("B", "T", 3)]),
    ("outer", lambda x, y: jnp.outer(x, y).reshape(-1), [("B",), ("T",)]),
    ("split_heads", lambda x: x.reshape(x.shape[0], 3, -1).transpose(1, 0, 2)[0], [("B", 12)]),
]


@pytest.mark.parametrize("name,fn,inputs", SYMBOLIC, ids=[c[0] for c in SYMBOLIC])
@pytest.mark.parametrize("opset", [17, 21])
def test_symbolic_dims(name, fn, inputs, opset):
    convert_and_check_shapes(fn, inputs, opset=opset, optimize=opset == 21, batch_sizes=(2, 5))


def test_symbolic_dims_names():
    """Names the pass must find (an unknown dim would be acceptable, but these
    are the point of the pass)."""
    m = convert_and_check_shapes(_cond, [("B", 3), ("T", 2)])
    named = {vi.name: dims_of(vi) for vi in [*m.graph.value_info, *m.graph.output]}
    assert named["output_0"] == ["3*B"] and named["output_1"] == [2, "T"]
    m = convert_and_check_shapes(lambda x: jnp.tanh(x.reshape(-1, 8)).reshape(x.shape[0], 2, -1), [("B", 4, 2)])
    assert any(d == ["B", 8] for d in named_dims(m))


def named_dims(m):
    return [dims_of(vi) for vi in [*m.graph.value_info, *m.graph.output]]


def test_eval_dim_as_jax_prints():
    """JAX names sizes "B^2" and "floordiv(B + 1, 2)"; value_info_true and
    verify evaluate them (they raised "cannot evaluate")."""
    assert _eval_dim("B^2", {"B": 3}) == 9
    assert _eval_dim("2*B^2 + 1", {"B": 3}) == 19
    assert _eval_dim("floordiv(B + 1, 2)", {"B": 4}) == 2
    assert _eval_dim("mod(B, 3) + max(B, 2)", {"B": 4}) == 5


_DOT_MLIR = """module @m {
  func.func public @main(%arg1: tensor<2x3x?x4xf32>, %arg2: tensor<2x4x5xf32>) -> (tensor<2x3x?x5xf32>) {
    %0 = stablehlo.dot_general %arg1, %arg2, batching_dims = [0] x [0], contracting_dims = [3] x [1] : (tensor<2x3x?x4xf32>, tensor<2x4x5xf32>) -> tensor<2x3x?x5xf32>
    return %0 : tensor<2x3x?x5xf32>
  }
}
"""


@pytest.mark.parametrize("name,merged", [
    ("2*B", "6*B"),
    ("2*(B + 1)", "6*(B + 1)"),
    # "2*(...)" only when the parentheses enclose the rest: these were read
    # as 2 * "A) + (B" and named "6*(A) + (B)" = 6A + B
    ("2*(A) + (B)", "3*(2*(A) + (B))"),
    ("2*(A + 1)*(B + 1)", "3*(2*(A + 1)*(B + 1))"),
])
def test_symbolic_dims_cli_names(tmp_path, name, merged):
    """--dim names the batch dim of a dot_general whose free group [3, N]
    is merged into one axis: the merged axis is 3 * N."""
    src, out = tmp_path / "dot.mlir", tmp_path / "dot.onnx"
    src.write_text(_DOT_MLIR)
    r = run_cli(src, "-o", out, "--shape-info", "-q", "--dim", f"0:2={name}")
    assert r.returncode == 0, r.stderr
    m = onnx.load(str(out))
    assert [2, merged, 4] in named_dims(m), named_dims(m)
