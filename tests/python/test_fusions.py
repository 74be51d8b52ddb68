"""Fusion passes (src/passes/fuse_*.c): high-level ops recovered from the
op-by-op lowering.

Each case is one row: a JAX function or Flax NNX module, its input shapes
(a str dim is symbolic, run at batch 1, 3 and 8), the exact ONNX op list the
graph must be (or, where the rest of the graph is not this test's business,
ops it must contain and ops it must not), and attributes the fused node must
carry.  Every model goes through onnx.checker (full_check) and is compared
with JAX on random inputs with numpy.testing.assert_allclose.

Tolerance: float32 rtol = atol = 1e-5.  The fused ops compute the same
formulas as the decompositions with the runtime's own kernels (erf, tanh,
exp, log1p), which differ from XLA's in the last bits; LayerNormalization
computes the variance as mean((x - mean)^2) where JAX uses E[x^2] - mean^2,
which agree to ~1e-6 for the N(0, 1) inputs (see test_layernorm_variance
for data off zero).  Activations are also checked on edge values (+-0,
tiny, large, +-inf, NaN), NaN and inf at the same places.

Near misses - an erf of 0.8x, a softmax without its max, an intermediate
that is also a graph output - must stay unfused.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import pytest

import hlo2onnx
from util import convert_and_check, op_counts, op_types, run_ort

flax = pytest.importorskip("flax")
from flax import nnx  # noqa: E402

BATCH_SIZES = (1, 3, 8)
EDGES = np.array([0.0, -0.0, 1e-8, -1e-8, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 30.0, -30.0, 100.0,
                  -100.0, np.inf, -np.inf, np.nan], np.float32)


@dataclasses.dataclass
class Case:
    id: str
    make: Callable[[], object]  # builds the function or module (fresh per test)
    inputs: list  # shape tuples
    ops: list | None = None  # the exact op_type sequence of the main graph
    has: tuple = ()  # ops that must be there (when `ops` is None)
    lacks: tuple = ()  # ops that must not be there
    attrs: dict = dataclasses.field(default_factory=dict)  # {(op, attr): value}
    opset: int | None = None
    edges: bool = False  # also run on EDGES (one-input elementwise functions)
    tol: float = 1e-5


def _bn(n, seed=1, **kw):
    """An nnx.BatchNorm with non-trivial running statistics, in eval mode."""
    bn = nnx.BatchNorm(n, rngs=nnx.Rngs(seed), **kw)
    rng = np.random.default_rng(seed)
    bn.mean[...] = jnp.asarray(rng.standard_normal(n), jnp.float32)
    bn.var[...] = jnp.asarray(rng.uniform(0.5, 2.0, n), jnp.float32)
    if bn.scale is not None:
        bn.scale[...] = jnp.asarray(rng.uniform(0.5, 1.5, n), jnp.float32)
    if bn.bias is not None:
        bn.bias[...] = jnp.asarray(rng.standard_normal(n), jnp.float32)
    return bn


def _ln(n, seed=0, **kw):
    """An nnx.LayerNorm with random scale and bias (when it has them)."""
    ln = nnx.LayerNorm(n, rngs=nnx.Rngs(seed), **kw)
    rng = np.random.default_rng(seed + 10)
    if ln.scale is not None:
        ln.scale[...] = jnp.asarray(rng.uniform(0.5, 1.5, ln.scale.shape), jnp.float32)
    if ln.bias is not None:
        ln.bias[...] = jnp.asarray(rng.standard_normal(ln.bias.shape), jnp.float32)
    return ln


class LinearBN(nnx.Module):
    def __init__(self, fin, fout):
        self.linear = nnx.Linear(fin, fout, rngs=nnx.Rngs(0))
        self.bn = _bn(fout)

    def __call__(self, x):
        return self.bn(self.linear(x))


class ConvBNRelu(nnx.Module):
    def __init__(self):
        self.conv = nnx.Conv(3, 4, (3, 3), rngs=nnx.Rngs(0))
        self.bn = _bn(4)

    def __call__(self, x):
        return nnx.relu(self.bn(self.conv(x)))


class PoolBNRelu(nnx.Module):
    """BatchNorm on NHWC data after a pool: the transpose pass leaves its
    arithmetic in NCHW between the pool's Transposes, channel on axis 1."""

    def __init__(self):
        self.bn = _bn(3)

    def __call__(self, x):
        return nnx.relu(self.bn(nnx.max_pool(x, (2, 2), strides=(2, 2))))


class Block(nnx.Module):
    """A small transformer block: pre-LayerNorm attention and a GELU MLP."""

    def __init__(self, d=16):
        r = nnx.Rngs(0)
        self.ln1, self.ln2 = _ln(d, 1), _ln(d, 2)
        self.qkv = nnx.Linear(d, 3 * d, rngs=r)
        self.up = nnx.Linear(d, 2 * d, rngs=r)
        self.down = nnx.Linear(2 * d, d, rngs=r)

    def __call__(self, x):
        q, k, v = jnp.split(self.qkv(self.ln1(x)), 3, axis=-1)
        att = jax.nn.softmax(q @ jnp.swapaxes(k, -1, -2) / 4.0, axis=-1)
        x = x + att @ v
        return x + self.down(nnx.gelu(self.up(self.ln2(x))))


def _shared_half(x):
    h = 0.5 * x
    return h * (1 + jax.lax.erf(x * 0.7071067811865476)), h


CASES = [
    # GELU
    Case("gelu_exact", lambda: lambda x: jax.nn.gelu(x, approximate=False), [("B", 5, 7)],
         ops=["Gelu"], edges=True),
    Case("gelu_tanh_nnx", lambda: nnx.gelu, [("B", 5, 7)], ops=["Gelu"],
         attrs={("Gelu", "approximate"): "tanh"}, edges=True),
    Case("gelu_handwritten", lambda: lambda x: x * 0.5 * (1 + jax.lax.erf(x / jnp.sqrt(2.0))),
         [("B", 7)], ops=["Gelu"]),
    Case("gelu_opset19_stays", lambda: lambda x: jax.nn.gelu(x, approximate=False), [("B", 7)],
         has=("Erf",), lacks=("Gelu",), opset=19),
    # Softmax
    Case("softmax_last", lambda: lambda x: jax.nn.softmax(x, axis=-1), [("B", 5, 7)],
         ops=["Softmax"], attrs={("Softmax", "axis"): 2}),
    Case("softmax_axis1", lambda: lambda x: jax.nn.softmax(x, axis=1), [("B", 5, 7)],
         ops=["Softmax"], attrs={("Softmax", "axis"): 1}),
    Case("softmax_static_2d", lambda: lambda x: jax.nn.softmax(x, axis=-1), [(4, 9)],
         ops=["Softmax"], attrs={("Softmax", "axis"): 1}),
    Case("log_softmax_last", lambda: lambda x: jax.nn.log_softmax(x, axis=-1), [("B", 5, 7)],
         ops=["LogSoftmax"], attrs={("LogSoftmax", "axis"): 2}),
    Case("log_softmax_axis1", lambda: lambda x: jax.nn.log_softmax(x, axis=1), [("B", 5, 7)],
         ops=["LogSoftmax"], attrs={("LogSoftmax", "axis"): 1}),
    # Activations
    Case("relu", lambda: jax.nn.relu, [("B", 5, 7)], ops=["Relu"], edges=True),
    Case("elu", lambda: jax.nn.elu, [("B", 5, 7)], ops=["Elu"], attrs={("Elu", "alpha"): 1.0},
         edges=True),
    Case("elu_alpha", lambda: lambda x: jax.nn.elu(x, alpha=0.5), [("B", 7)], ops=["Elu"],
         attrs={("Elu", "alpha"): 0.5}),
    Case("leaky_relu", lambda: jax.nn.leaky_relu, [("B", 5, 7)], ops=["LeakyRelu"],
         attrs={("LeakyRelu", "alpha"): 0.01}, edges=True),
    Case("leaky_relu_02", lambda: lambda x: jax.nn.leaky_relu(x, 0.2), [("B", 7)],
         ops=["LeakyRelu"], attrs={("LeakyRelu", "alpha"): 0.2}),
    Case("softplus", lambda: jax.nn.softplus, [("B", 5, 7)], ops=["Softplus"], edges=True),
    Case("sigmoid", lambda: jax.nn.sigmoid, [("B", 5, 7)], ops=["Sigmoid"], edges=True),
    Case("mish", lambda: jax.nn.mish, [("B", 5, 7)], ops=["Mish"], edges=True),
    Case("mish_opset17", lambda: jax.nn.mish, [("B", 7)], ops=["Softplus", "Tanh", "Mul"],
         opset=17),
    Case("silu", lambda: jax.nn.silu, [("B", 5, 7)], ops=["Sigmoid", "Mul"], edges=True),
    # LayerNorm
    Case("layernorm", lambda: _ln(7), [("B", 5, 7)], ops=["LayerNormalization"],
         attrs={("LayerNormalization", "axis"): 2,
                ("LayerNormalization", "epsilon"): 1e-6}),
    Case("layernorm_2_axes", lambda: _ln(7, reduction_axes=(-2, -1)), [("B", 5, 7)],
         ops=["LayerNormalization"], attrs={("LayerNormalization", "axis"): 1}),
    Case("layernorm_no_scale_bias", lambda: _ln(7, use_scale=False, use_bias=False),
         [("B", 5, 7)], ops=["LayerNormalization"]),
    Case("layernorm_two_pass_variance", lambda: _ln(7, use_fast_variance=False, epsilon=1e-5),
         [("B", 5, 7)], ops=["LayerNormalization"],
         attrs={("LayerNormalization", "epsilon"): 1e-5}),
    Case("layernorm_opset17", lambda: _ln(12), [("B", 12)], ops=["LayerNormalization"],
         opset=17),
    Case("layernorm_static", lambda: _ln(7), [(3, 7)], ops=["LayerNormalization"]),
    # BatchNorm
    Case("linear_batchnorm", lambda: LinearBN(7, 8), [("B", 7)], ops=["Gemm"]),
    Case("linear_batchnorm_3d", lambda: LinearBN(7, 8), [("B", 5, 7)], ops=["MatMul", "Add"]),
    Case("batchnorm_2d", lambda: _bn(7), [("B", 7)], ops=["BatchNormalization"]),
    Case("batchnorm_channel_last_3d", lambda: _bn(7), [("B", 5, 7)], ops=["Sub", "Mul", "Add"]),
    Case("conv_batchnorm_relu", lambda: ConvBNRelu(), [("B", 8, 8, 3)], has=("Conv", "Relu"),
         lacks=("BatchNormalization", "Sub", "Mul", "Add", "Max")),
    Case("max_pool_batchnorm_nhwc", lambda: PoolBNRelu(), [("B", 8, 8, 3)],
         has=("MaxPool", "BatchNormalization", "Relu"), lacks=("Sub", "Mul", "Add")),
    Case("conv_bias", lambda: nnx.Conv(3, 4, (3, 3), rngs=nnx.Rngs(0)), [("B", 8, 8, 3)],
         has=("Conv",), lacks=("Add",)),
    # Pools, reductions
    Case("avg_pool", lambda: lambda x: nnx.avg_pool(x, (2, 2), strides=(1, 1)),
         [("B", 6, 6, 3)], has=("AveragePool",), lacks=("Mul", "Div")),
    Case("sum_keepdims", lambda: lambda x: x * jnp.sum(x, axis=-1, keepdims=True),
         [("B", 5, 7)], has=("ReduceSum",), lacks=("Unsqueeze", "Reshape"),
         attrs={("ReduceSum", "keepdims"): 1}),
    # Attention: the transpose pass moves a layout Transpose into the softmax
    Case("attention_softmax", lambda: lambda q, k, v: nnx.dot_product_attention(q, k, v),
         [("B", 6, 2, 8)] * 3, has=("Softmax",), lacks=("ReduceMax", "ReduceSum", "Exp")),
    # A block with all of it
    Case("transformer_block", lambda: Block(), [("B", 6, 16)],
         has=("LayerNormalization", "Softmax", "Gelu"),
         lacks=("Erf", "Tanh", "ReduceMax", "ReduceSum", "Exp", "Sqrt", "Reciprocal")),
    # Near misses: must stay as they are
    Case("near_gelu_erf_08", lambda: lambda x: x * 0.5 * (1 + jax.lax.erf(x * 0.8)), [("B", 7)],
         has=("Erf",), lacks=("Gelu",)),
    Case("near_gelu_half_06", lambda: lambda x: x * 0.6 * (1 + jax.lax.erf(x / jnp.sqrt(2.0))),
         [("B", 7)], has=("Erf",), lacks=("Gelu",)),
    Case("near_gelu_tanh_coeff", lambda: lambda x: 0.5 * x * (1 + jnp.tanh(
        0.7978845608 * (x + 0.05 * x ** 3))), [("B", 7)], has=("Tanh",), lacks=("Gelu",)),
    Case("near_gelu_shared_output", lambda: _shared_half, [("B", 7)], has=("Erf",),
         lacks=("Gelu",)),
    Case("near_softmax_no_max", lambda: lambda x: jnp.exp(x) / jnp.sum(jnp.exp(x), axis=-1,
                                                                        keepdims=True),
         [("B", 7)], has=("Exp",), lacks=("Softmax",)),
    Case("near_softmax_two_axes", lambda: lambda x: jax.nn.softmax(x, axis=(1, 2)),
         [("B", 5, 7)], has=("Exp",), lacks=("Softmax",)),
    Case("near_relu_max_01", lambda: lambda x: jnp.maximum(x, 0.1), [("B", 7)], ops=["Max"]),
    Case("near_leaky_threshold_1", lambda: lambda x: jnp.where(x >= 1, x, 0.01 * x), [("B", 7)],
         lacks=("LeakyRelu",)),
    Case("near_layernorm_middle_axis", lambda: _ln(7, reduction_axes=1, feature_axes=-1),
         [("B", 5, 7)], lacks=("LayerNormalization",)),
]


def _dims(shape, b):
    return tuple(b if isinstance(d, str) else d for d in shape)


def _attr(node: onnx.NodeProto, name: str):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a).decode() if a.type == a.STRING else \
                onnx.helper.get_attribute_value(a)
    return None


def _reference(fn, *xs):
    out = fn(*[jnp.asarray(x) for x in xs])
    return [np.asarray(o) for o in jax.tree_util.tree_leaves(out)]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_fusion(case: Case):
    fn = case.make()
    if isinstance(fn, nnx.Module):
        fn.eval()
    model = hlo2onnx.to_onnx(fn, case.inputs, opset=case.opset)
    onnx.checker.check_model(model, full_check=True)
    types, counts = op_types(model), op_counts(model)
    if case.ops is not None:
        assert types == case.ops, types
    for op in case.has:
        assert counts[op] >= 1, f"no {op} in {types}"
    for op in case.lacks:
        assert counts[op] == 0, f"unexpected {op} in {types}"
    for (op, name), want in case.attrs.items():
        nodes = [n for n in model.graph.node if n.op_type == op]
        if isinstance(want, float):
            want = pytest.approx(want, rel=1e-6)
        assert nodes and all(_attr(n, name) == want for n in nodes), \
            (op, name, [_attr(n, name) for n in nodes])

    symbolic = any(isinstance(d, str) for s in case.inputs for d in s)
    rng = np.random.default_rng(0)
    for b in BATCH_SIZES if symbolic else (None,):
        xs = [(3 * rng.standard_normal(_dims(s, b))).astype(np.float32) for s in case.inputs]
        got, want = run_ort(model, *xs), _reference(fn, *xs)
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert g.shape == w.shape and g.dtype == w.dtype, (g.shape, w.shape, g.dtype, w.dtype)
            np.testing.assert_allclose(g, w, rtol=case.tol, atol=case.tol, err_msg=f"batch {b}")
    if case.edges:
        x = EDGES.reshape((1,) * (len(case.inputs[0]) - 1) + (-1,))
        m1 = hlo2onnx.to_onnx(fn, [x.shape], opset=case.opset)
        (g,) = run_ort(m1, x)
        (w,) = _reference(fn, x)
        np.testing.assert_allclose(g, w, rtol=case.tol, atol=case.tol, equal_nan=True,
                                   err_msg=f"edges {EDGES}")


def test_no_optimize_keeps_decomposition():
    """optimize=False skips every fusion."""
    model = hlo2onnx.to_onnx(lambda x: jax.nn.gelu(jax.nn.softmax(x), approximate=False),
                             [("B", 7)], optimize=False)
    counts = op_counts(model)
    assert counts["Gelu"] == 0 and counts["Softmax"] == 0 and counts["Erf"] == 1


def test_layernorm_variance():
    """ONNX's variance E[(x - mean)^2] against JAX's fast E[x^2] - mean^2 on
    data off zero: equal within 1e-5 while |mean| stays within a few
    standard deviations; far from zero JAX's formula cancels digits (a
    difference of the conversion's result from JAX, not an error in it)."""
    ln = _ln(64)
    model = hlo2onnx.to_onnx(ln, [("B", 64)])
    assert op_types(model) == ["LayerNormalization"]
    rng = np.random.default_rng(1)
    for offset in (0.0, 1.0, 3.0):
        x = (rng.standard_normal((8, 64)) + offset).astype(np.float32)
        (got,) = run_ort(model, x)
        np.testing.assert_allclose(got, np.asarray(ln(x)), rtol=1e-5, atol=1e-5,
                                   err_msg=f"offset {offset}")


def _body_op_types(model: onnx.ModelProto) -> list[str]:
    """The op types of the nodes inside the If/Loop/Scan bodies of the main graph."""
    out = []

    def walk(graph, inside):
        for n in graph.node:
            if inside:
                out.append(n.op_type)
            for a in n.attribute:
                for g in ([a.g] if a.type == a.GRAPH else list(a.graphs)):
                    walk(g, True)

    walk(model.graph, False)
    return out


@pytest.mark.parametrize("loop", ["fori_loop", "while_loop"])
def test_gemm_in_loop_body(loop):
    """A dense layer applied in a loop: the MatMul + Add of the body becomes a
    Gemm like one outside a loop (fuse_gemm walks the If/Loop bodies too)."""
    rng = np.random.default_rng(3)
    w = jnp.asarray(rng.standard_normal((8, 8)) / 3, jnp.float32)
    b = jnp.asarray(rng.standard_normal(8), jnp.float32)

    def layer(h):
        return jnp.tanh(h @ w + b)

    if loop == "fori_loop":
        def fn(x):
            return jax.lax.fori_loop(0, 3, lambda i, h: layer(h), x)
    else:
        def fn(x):
            return jax.lax.while_loop(lambda s: s[0] < 3, lambda s: (s[0] + 1, layer(s[1])),
                                      (jnp.int32(0), x))[1]

    model = convert_and_check(fn, [("B", 8)])
    body = _body_op_types(model)
    assert "Gemm" in body and "MatMul" not in body, body
