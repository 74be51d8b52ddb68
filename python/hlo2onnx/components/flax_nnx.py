"""flax.nnx components: layers and activation functions.

Modules are built with fixed seeds, and their parameters and batch statistics
are then replaced by random values (:func:`randomized`): Flax initialises
biases to 0, BatchNorm statistics to mean 0 / variance 1 and LayerNorm scales
to 1, which would let a converter that drops or misplaces them pass.

Flax convolutions and pools are NHWC; ONNX's Conv and pools are NCHW.  Their
cases check that the layout change happens once at the graph boundary, not as
a Transpose pair around each Conv (:mod:`hlo2onnx.checks`).
"""

from __future__ import annotations

from hlo2onnx import checks
from hlo2onnx.registry import Case, Component, register

SINCE = "v0.1.0"
FLAX_DOCS = "https://flax.readthedocs.io/en/latest/api_reference/flax.nnx"
ACTIVATIONS = f"{FLAX_DOCS}/nn/activations.html"
LINEN_LAYERS = "https://flax-linen.readthedocs.io/en/latest/api_reference/flax.linen/layers.html"


def _nnx():
    from flax import nnx

    return nnx


def randomized(module, seed: int = 1):
    """``module`` with every Param and BatchStat replaced by random values of
    the same shape: kernels normal / sqrt(fan-in) (all axes but the last; as a
    trained layer keeps activations near unit scale, so float32 rounding stays
    comparable to JAX's), other values normal * 0.5 (scales: 1 + that),
    variances uniform in [0.5, 1.5].  Returns the module (changed in place).

    The values come from NumPy: drawing them with jax.random would compile
    one XLA program per shape, seconds per case on a busy machine.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    nnx = _nnx()
    rng = np.random.default_rng(seed)
    state = nnx.state(module, nnx.Any(nnx.Param, nnx.BatchStat))

    def fresh(path, x):
        name = jax.tree_util.keystr(path)
        if "'var'" in name:
            v = rng.uniform(0.5, 1.5, x.shape)
        elif "kernel" in name and x.ndim >= 2:
            v = rng.standard_normal(x.shape) / np.sqrt(np.prod(x.shape[:-1]))
        else:
            v = 0.5 * rng.standard_normal(x.shape) + (1.0 if "'scale'" in name else 0.0)
        return jnp.asarray(v.astype(x.dtype))

    nnx.update(module, jax.tree_util.tree_map_with_path(fresh, state))
    return module


def _placeholder(key, shape, dtype=None):
    """An initializer that costs nothing: :func:`randomized` replaces the
    values anyway (Flax's own initializers compile per shape)."""
    import jax.numpy as jnp
    import numpy as np

    return jnp.asarray(np.zeros(shape, dtype or np.float32))


# For layers whose weights randomized() overwrites.
INIT = {"kernel_init": _placeholder, "bias_init": _placeholder}
NORM_INIT = {"scale_init": _placeholder, "bias_init": _placeholder}


def _rngs(seed: int = 0):
    return _nnx().Rngs(seed)


# A Conv or pool in NHWC: one layout change where data enters and one where it
# leaves, nothing cancelling in between.
NHWC_CHECKS = (checks.no_cancelling_transposes(), checks.transposes_at_boundary())


# ---- layers -----------------------------------------------------------------

register(Component(
    "BatchNorm", "flax.nnx.BatchNorm",
    docs_url=f"{FLAX_DOCS}/nn/normalization.html#flax.nnx.BatchNorm", since=SINCE,
    onnx_expected=("BatchNormalization",),
    # (x - mean) * rsqrt(var + eps) * scale + bias, unfused
    forbid_ops=("Sqrt", "Reciprocal", "Div", "ReduceMean"),
    table_note="in inference mode (running statistics)",
    cases=[
        Case("batchnorm",
             lambda: randomized(_nnx().BatchNorm(16, rngs=_rngs(), **NORM_INIT)),
             [("B", 16)],
             notes="running mean/variance, scale and bias random (not 0/1)"),
    ]))


def _conv_stack():
    nnx = _nnx()

    class ConvStack(nnx.Module):
        """Conv -> relu -> Conv: no Transpose may sit between the two Convs."""

        def __init__(self, rngs):
            self.conv1 = nnx.Conv(3, 8, (3, 3), padding="SAME", rngs=rngs, **INIT)
            self.conv2 = nnx.Conv(8, 4, (3, 3), strides=(2, 2), padding="VALID",
                                  rngs=rngs, **INIT)

        def __call__(self, x):
            return self.conv2(nnx.relu(self.conv1(x)))

    return randomized(ConvStack(_rngs()))


register(Component(
    "Conv", "flax.nnx.Conv",
    docs_url=f"{FLAX_DOCS}/nn/linear.html#flax.nnx.Conv", since=SINCE,
    onnx_expected=("Conv",),
    checks=(*NHWC_CHECKS, checks.bias_folded_into("Conv")),
    cases=[
        Case("conv_3x3_1",
             lambda: randomized(_nnx().Conv(3, 16, (3, 3), padding="SAME", rngs=_rngs(),
                                            **INIT)),
             [("B", 8, 8, 3)],
             notes="3 -> 16 channels, stride 1, SAME padding, dynamic batch"),
        Case("conv_3x3_2",
             lambda: randomized(_nnx().Conv(16, 8, (3, 3), strides=(2, 2), padding="VALID",
                                            rngs=_rngs(), **INIT)),
             [(2, 9, 9, 16)],
             notes="16 -> 8 channels, stride 2, VALID padding, static batch"),
        Case("conv_3x3_3", _conv_stack, [("B", 10, 10, 3)],
             notes="two Convs with relu between (SAME/stride 1, then VALID/stride 2)"),
    ]))


def _dropout(rate, **kw):
    return lambda: _nnx().Dropout(rate, rngs=_rngs(), **kw)


# Inference mode: Dropout is the identity and must leave nothing behind.
register(Component(
    "Dropout", "flax.nnx.Dropout",
    docs_url=f"{FLAX_DOCS}/nn/stochastic.html#flax.nnx.Dropout", since=SINCE,
    checks=(checks.only_ops("Identity"),),
    forbid_ops=("Dropout", "RandomUniform", "RandomUniformLike", "Bernoulli"),
    seed_onnx=("Dropout",),
    table_note="none: the identity in inference mode",
    cases=[
        Case("dropout", _dropout(0.5), [("B", 10)]),
        Case("dropout_1d", _dropout(0.5), [(10,)]),
        Case("dropout_2d", _dropout(0.5), [("B", 10)]),
        Case("dropout_3d", _dropout(0.5), [("B", 4, 10)]),
        Case("dropout_4d", _dropout(0.5, broadcast_dims=(1, 2)), [("B", 4, 4, 3)],
             notes="broadcast_dims=(1, 2): one mask per channel in training"),
        Case("dropout_high", _dropout(0.9), [("B", 10)]),
        Case("dropout_low", _dropout(0.1), [("B", 10)]),
    ]))

register(Component(
    "LayerNorm", "flax.nnx.LayerNorm",
    docs_url=f"{FLAX_DOCS}/nn/normalization.html#flax.nnx.LayerNorm", since=SINCE,
    onnx_expected=("LayerNormalization",),
    forbid_ops=("ReduceMean", "Sqrt", "Reciprocal", "Div"),
    cases=[
        Case("layernorm_default",
             lambda: randomized(_nnx().LayerNorm(32, rngs=_rngs(), **NORM_INIT)), [("B", 10, 32)]),
        Case("layernorm_multiaxis",
             lambda: randomized(_nnx().LayerNorm(8, reduction_axes=(-2, -1), rngs=_rngs(),
                                             **NORM_INIT)),
             [("B", 4, 6, 8)],
             notes="normalizes over the last two axes; scale and bias over the last"),
    ]))

LINEAR_OPS = (("Gemm", "MatMul"),)

register(Component(
    "Linear", "flax.nnx.Linear",
    docs_url=f"{FLAX_DOCS}/nn/linear.html#flax.nnx.Linear", since=SINCE,
    onnx_expected=LINEAR_OPS,
    forbid_ops=("Transpose", "Einsum"),
    cases=[
        Case("linear", lambda: randomized(_nnx().Linear(32, 16, rngs=_rngs(), **INIT)), [("B", 32)],
             expect_ops=("Gemm",), notes="a 2-D input: one Gemm"),
        Case("linear_2d", lambda: randomized(_nnx().Linear(32, 16, rngs=_rngs(), **INIT)),
             [("B", 10, 32)], notes="a 3-D input (batch, tokens, features)"),
    ]))


def _linear_general(in_features, out_features, **kw):
    return lambda: randomized(_nnx().LinearGeneral(in_features, out_features, rngs=_rngs(),
                                                   **INIT, **kw))


register(Component(
    "LinearGeneral", "flax.nnx.LinearGeneral",
    docs_url=f"{FLAX_DOCS}/nn/linear.html#flax.nnx.LinearGeneral", since=SINCE,
    onnx_expected=LINEAR_OPS,
    forbid_ops=("Transpose", "Einsum"),
    cases=[
        Case("linear_general", _linear_general((8, 4), 16, axis=(-2, -1)),
             [("B", 10, 8, 4)], notes="contracts the last two axes into 16 features"),
        Case("linear_general_2", _linear_general(32, (4, 8)), [("B", 32)],
             notes="one axis into two (4, 8)"),
        Case("linear_general_mha_projection", _linear_general(32, (4, 8)),
             [("B", 10, 32)],
             notes="the query/key/value projection of attention: 32 -> 4 heads x 8"),
        Case("linear_general_mha_projection2", _linear_general((4, 8), 32, axis=(-2, -1)),
             [("B", 10, 4, 8)], notes="the output projection of attention: 4 heads x 8 -> 32"),
    ]))

register(Component(
    "MultiHeadAttention", "flax.nnx.MultiHeadAttention",
    docs_url=f"{FLAX_DOCS}/nn/attention.html#flax.nnx.MultiHeadAttention", since=SINCE,
    onnx_expected=(("MatMul", "Gemm"), "Softmax"),
    forbid_ops=("ReduceMax", "Exp", "Einsum"),
    seed_onnx=("Einsum",),
    cases=[
        Case("multihead_attention",
             lambda: randomized(_nnx().MultiHeadAttention(
                 num_heads=4, in_features=32, qkv_features=32, decode=False, rngs=_rngs(),
                 out_kernel_init=_placeholder, **INIT)),
             [("B", 10, 32)], notes="self-attention, 4 heads of 8"),
    ]))


# ---- functions ----------------------------------------------------------------

def _pool(name, window, strides, padding):
    def build():
        pool = getattr(_nnx(), name)
        return lambda x: pool(x, window, strides=strides, padding=padding)

    return build


register(Component(
    "avg_pool", "flax.nnx.avg_pool",
    docs_url=f"{LINEN_LAYERS}#flax.linen.avg_pool", since=SINCE,
    onnx_expected=("AveragePool",),
    checks=NHWC_CHECKS,
    cases=[
        Case("avg_pool", _pool("avg_pool", (2, 2), (2, 2), "VALID"), [("B", 8, 8, 3)],
             notes="2x2 window, stride 2, VALID, 3 channels"),
        Case("avg_pool_same", _pool("avg_pool", (3, 3), (1, 1), "SAME"), [(2, 7, 7, 8)],
             notes="3x3 window, stride 1, SAME (padding counted, as Flax does), 8 channels"),
    ]))


def _attention(**kw):
    def build():
        nnx = _nnx()
        return lambda q, k, v: nnx.dot_product_attention(q, k, v, **kw)

    return build


register(Component(
    "dot_product_attention", "flax.nnx.dot_product_attention",
    docs_url=f"{FLAX_DOCS}/nn/attention.html#flax.nnx.dot_product_attention", since=SINCE,
    onnx_expected=(("MatMul", "Einsum"), "Softmax"),
    forbid_ops=("ReduceMax", "Exp"),
    cases=[
        Case("dot_product_attention", _attention(), [("B", 8, 4, 16)] * 3,
             notes="(batch, length, heads, depth) for query, key and value"),
        Case("dot_product_attention_shape_check", _attention(),
             [("B", 6, 2, 16), ("B", 10, 2, 16), ("B", 10, 2, 16)],
             notes="query length 6 != key/value length 10: non-square attention weights"),
        Case("dot_product_attention_softmax_axis", _attention(),
             [(2, "B", 5, 2, 8)] * 3,
             notes="two leading batch axes: the softmax axis is the 5th of 5"),
    ]))


def _fn(name, **kw):
    def build():
        f = getattr(_nnx(), name)
        return (lambda x: f(x, **kw)) if kw else f

    return build


def _activation(name, onnx_op, forbid=(), cases=None, docs=None):
    register(Component(
        name, f"flax.nnx.{name}", docs_url=docs or f"{ACTIVATIONS}#flax.nnx.{name}",
        since=SINCE, onnx_expected=(onnx_op,), forbid_ops=forbid,
        cases=cases or [Case(name, _fn(name), [("B", 10)])]))


_activation("elu", "Elu", forbid=("Exp", "Expm1", "Where"))
_activation("gelu", "Gelu", forbid=("Erf", "Tanh", "Pow"), cases=[
    Case("gelu", _fn("gelu", approximate=False), [("B", 10)], notes="exact (erf)"),
    Case("gelu2", _fn("gelu", approximate=True), [("B", 10)], notes="tanh approximation"),
    Case("gelu3", _fn("gelu"), [("B", 4, 6, 8)],
         notes="the default (tanh approximation) on a 4-D input"),
])
_activation("leaky_relu", "LeakyRelu", forbid=("Where", "Max", "Min"), cases=[
    Case("leaky_relu", _fn("leaky_relu", negative_slope=0.1), [("B", 10)],
         notes="negative_slope 0.1"),
])
_activation("log_softmax", "LogSoftmax", forbid=("Exp", "Log", "ReduceMax", "ReduceSum"),
            cases=[Case("log_softmax", _fn("log_softmax"), [("B", 4, 10)])])
_activation("relu", "Relu", forbid=("Max",),
            docs="https://docs.jax.dev/en/latest/_autosummary/jax.nn.relu.html#jax.nn.relu")
_activation("sigmoid", "Sigmoid", forbid=("Exp", "Div", "Reciprocal"))
_activation("softmax", "Softmax", forbid=("Exp", "ReduceMax", "ReduceSum", "Div"),
            cases=[Case("softmax", _fn("softmax"), [("B", 4, 10)])])
_activation("softplus", "Softplus", forbid=("Exp", "Log", "Max", "Abs"))
_activation("tanh", "Tanh")

register(Component(
    "max_pool", "flax.nnx.max_pool",
    docs_url=f"{LINEN_LAYERS}#flax.linen.max_pool", since=SINCE,
    onnx_expected=("MaxPool",),
    checks=NHWC_CHECKS,
    cases=[
        Case("max_pool", _pool("max_pool", (2, 2), (2, 2), "VALID"), [("B", 8, 8, 3)],
             notes="2x2 window, stride 2, VALID, 3 channels"),
        Case("max_pool_same", _pool("max_pool", (3, 3), (2, 2), "SAME"), [(2, 7, 7, 8)],
             notes="3x3 window, stride 2, SAME, 8 channels"),
    ]))
