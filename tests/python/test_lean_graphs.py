"""Lean graphs (issue 12): the same layer gives the same small graph,
whichever library wrote it and whether the batch is symbolic or not.

Each case builds a layer with its library's own code (random weights), and
checks:
  * the model against JAX on random inputs (convert_and_check: the ONNX
    checker with full_check, onnxruntime at B = 1, 3, 8; float32 rtol =
    atol = 1e-5 unless the case says why not);
  * the fused ops it must contain and the decomposition it must not;
  * that a symbolic batch "B" costs no node over a static batch.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Callable

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import onnxruntime as ort
import pytest

import hlo2onnx
from util import convert_and_check, op_counts

RNG = np.random.default_rng(0)


def _rand(*shape, lo=0.5, hi=1.5):
    return RNG.uniform(lo, hi, shape).astype(np.float32)


@dataclasses.dataclass
class Case:
    id: str
    make: Callable[[], tuple]  # -> (fn, params or None)
    inputs: list
    has: dict  # op -> exact count in the dynamic-batch graph
    lacks: tuple = ()
    tol: float = 1e-5
    opset: int | None = None


# ---- the layers, as each library writes them ----------------------------------

def jnp_var_layernorm():
    g, b = _rand(64), _rand(64, lo=-1, hi=1)

    def f(x):
        m = jnp.mean(x, -1, keepdims=True)
        v = jnp.var(x, -1, keepdims=True)
        return (x - m) / jnp.sqrt(v + 1e-5) * g + b
    return f, None


def jnp_rsqrt_layernorm_no_keepdims():
    g = _rand(64)

    def f(x):
        m = jnp.mean(x, -1)
        v = jnp.mean(jnp.square(x - m[..., None]), -1)
        return g * ((x - m[..., None]) * jax.lax.rsqrt(v + 1e-6)[..., None])
    return f, None


def keras_layernorm():
    import keras
    layer = keras.layers.LayerNormalization(epsilon=1e-3)
    layer.build((None, 16, 64))
    layer.gamma.assign(_rand(64))
    layer.beta.assign(_rand(64, lo=-1, hi=1))
    return (lambda x: layer(x)), None


def keras_layernorm_as_initialised():
    """gamma = 1 and beta = 0 closed over: folding removes the scale, and
    Keras's x * r + (beta - mean * r) then reads r = rsqrt(var + eps) twice."""
    import keras
    layer = keras.layers.LayerNormalization()
    layer.build((None, 16, 64))
    return (lambda x: layer(x)), None


def _haiku(module):
    """A Haiku module applied to x, its parameters moved off their defaults."""
    import haiku as hk
    net = hk.without_apply_rng(hk.transform(lambda x: module()(x)))
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((2, 16, 64)))
    params = jax.tree_util.tree_map(lambda p: p + _rand(*p.shape, lo=-0.5, hi=0.5), params)
    return net.apply, params


def haiku_causal_attention():
    """hk.MultiHeadAttention with the causal mask as its users write it,
    jnp.tril(jnp.ones((T, T))) of a static T: JAX leaves it to run time
    (iota, compare, select), the fold pass computes it (a [16, 16] compare
    is small enough to fold) and the attention pass adds it to the scores."""
    import haiku as hk

    def layer():
        attention = hk.MultiHeadAttention(num_heads=4, key_size=16, model_size=64,
                                          w_init=hk.initializers.VarianceScaling(1.0))
        causal = jnp.tril(jnp.ones((16, 16)))[None, None]
        return lambda x: attention(x, x, x, mask=causal)
    return _haiku(layer)


def _equinox_norm(norm):
    """An Equinox norm of width 64 with random weight and bias, vmapped over
    the batch and the tokens."""
    import equinox as eqx
    norm = eqx.tree_at(lambda m: (m.weight, m.bias), norm,
                       (jnp.asarray(_rand(64)), jnp.asarray(_rand(64, lo=-1, hi=1))))
    return (lambda x: jax.vmap(jax.vmap(norm))(x)), None


def haiku_layernorm():
    import haiku as hk
    return _haiku(lambda: hk.LayerNorm(-1, create_scale=True, create_offset=True))


def equinox_layernorm():
    import equinox as eqx
    return _equinox_norm(eqx.nn.LayerNorm(64))


def haiku_rmsnorm():
    import haiku as hk
    return _haiku(lambda: hk.RMSNorm(-1))


def equinox_rmsnorm():
    import equinox as eqx
    return _equinox_norm(eqx.nn.RMSNorm(64))


def _flax_module(net):
    """A Linen module (or one of transformers' Flax modules) applied to x, its
    parameters moved off their defaults."""
    variables = net.init(jax.random.PRNGKey(0), jnp.zeros((2, 16, 64)))
    variables = jax.tree_util.tree_map(lambda p: p + _rand(*p.shape, lo=-0.5, hi=0.5), variables)
    return net.apply, variables


def linen_layernorm():
    import flax.linen as nn
    return _flax_module(nn.LayerNorm())


def jnp_rmsnorm():
    g = _rand(64)

    def f(x):
        return x * jax.lax.rsqrt(jnp.mean(x * x, -1, keepdims=True) + 1e-6) * g
    return f, None


def jnp_rmsnorm_divided():
    g = _rand(64)

    def f(x):
        return g * (x / jnp.sqrt(jnp.mean(jnp.square(x), axis=-1, keepdims=True) + 1e-5))
    return f, None


def nnx_rmsnorm():
    from flax import nnx
    layer = nnx.RMSNorm(64, rngs=nnx.Rngs(0))
    layer.scale[...] = jnp.asarray(_rand(64))
    return layer, None


def keras_rmsnorm():
    import keras
    layer = keras.layers.RMSNormalization(epsilon=1e-6)
    layer.build((None, 16, 64))
    layer.scale.assign(_rand(64))
    return (lambda x: layer(x)), None


def linen_rmsnorm():
    import flax.linen as nn
    return _flax_module(nn.RMSNorm())


def transformers_t5_layernorm():
    """transformers' FlaxT5LayerNorm: T5's RMS norm, its variance in float32."""
    from transformers.models.t5.modeling_flax_t5 import FlaxT5LayerNorm
    return _flax_module(FlaxT5LayerNorm(64))


def _moved_off_defaults(tree):
    """Batch norm statistics and affine parameters off their initial values
    (mean 0, variance 1, scale 1, offset 0), so that none folds away."""
    return jax.tree_util.tree_map(lambda p: p + _rand(*p.shape, lo=0.1, hi=0.6), tree)


def linen_conv_bn_net():
    """Linen's Conv + BatchNorm (running averages) + ReLU, twice: each batch
    norm folds into its convolution."""
    import flax.linen as nn

    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            for f in (8, 8):
                x = nn.Conv(f, (3, 3), use_bias=False)(x)
                x = nn.relu(nn.BatchNorm(use_running_average=True)(x))
            return x
    net = Net()
    variables = _moved_off_defaults(net.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3))))
    return net.apply, variables


def haiku_conv_bn_net():
    """Haiku's Conv2D + BatchNorm (is_training=False, the moving averages in
    the state) + ReLU, twice."""
    import haiku as hk

    def net(x, is_training):
        for f in (8, 8):
            x = hk.Conv2D(f, 3, with_bias=False)(x)
            x = jax.nn.relu(hk.BatchNorm(True, True, 0.9)(x, is_training=is_training))
        return x
    t = hk.without_apply_rng(hk.transform_with_state(net))
    params, state = t.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)), True)
    params, state = _moved_off_defaults(params), _moved_off_defaults(state)

    def f(ps, x):
        return t.apply(ps[0], ps[1], x, False)[0]
    return f, (params, state)


def equinox_conv_bn_net():
    """Equinox's Conv2d + BatchNorm in inference mode + ReLU, twice, on
    per-example (CHW) arrays under jax.vmap; its BatchNorm divides by
    sqrt(var + eps)."""
    import equinox as eqx

    class Net(eqx.Module):
        convs: list
        norms: list

        def __init__(self, key):
            k1, k2 = jax.random.split(key)
            self.convs = [eqx.nn.Conv2d(3, 8, 3, padding=1, use_bias=False, key=k1),
                          eqx.nn.Conv2d(8, 8, 3, padding=1, use_bias=False, key=k2)]
            self.norms = [eqx.nn.BatchNorm(8, axis_name="batch", inference=True, mode="batch")
                          for _ in self.convs]

        def __call__(self, x, state):
            for conv, bn in zip(self.convs, self.norms):
                x, state = bn(conv(x), state)
                x = jax.nn.relu(x)
            return x

    net, state = eqx.nn.make_with_state(Net)(jax.random.PRNGKey(0))
    for bn in net.norms:
        state = state.set(bn.batch_state_index, (jnp.asarray(_rand(8, lo=-0.2, hi=0.2)),
                                           jnp.asarray(_rand(8, lo=0.5, hi=2.0))))
    net = eqx.tree_at(lambda m: [bn.weight for bn in m.norms] + [bn.bias for bn in m.norms],
                      net, [jnp.asarray(_rand(8)) for _ in net.norms]
                      + [jnp.asarray(_rand(8, lo=-0.5, hi=0.5)) for _ in net.norms])

    def f(x):
        return jax.vmap(net, in_axes=(0, None), axis_name="batch")(x, state)
    return f, None


def keras_conv_bn_net():
    """Keras's Conv2D + BatchNormalization + ReLU in NHWC, global pooling, Dense:
    the batch norm folds into the convolution, and the only Transpose left is
    the input's (NHWC -> NCHW)."""
    import keras
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inp)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(8, 3, padding="same")(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inp, keras.layers.Dense(10)(x))
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.gamma.assign(_rand(8))
            layer.beta.assign(_rand(8, lo=-0.5, hi=0.5))
            layer.moving_mean.assign(_rand(8, lo=-0.2, hi=0.2))
            layer.moving_variance.assign(_rand(8, lo=0.5, hi=2.0))
    params = ([v.value for v in model.trainable_variables],
              [v.value for v in model.non_trainable_variables])

    def f(params, x):
        return model.stateless_call(params[0], params[1], x, training=False)[0]
    return f, params


def keras_padded_resnet_block():
    """Keras's ResNet writes ZeroPadding2D before its strided Conv and its
    max-pool (NHWC): each Pad goes into the Conv's or MaxPool's own pads,
    and the layout Transposes meet and cancel across them."""
    import keras

    inp = keras.Input((16, 16, 3))
    x = keras.layers.ZeroPadding2D(3)(inp)
    x = keras.layers.Conv2D(8, 7, strides=2)(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    x = keras.layers.MaxPooling2D(3, 2)(keras.layers.ZeroPadding2D(1)(x))
    y = keras.layers.Conv2D(8, 3, strides=2)(keras.layers.ZeroPadding2D(1)(x))
    z = keras.layers.Conv2D(8, 1, strides=2)(x)
    model = keras.Model(inp, keras.layers.ReLU()(y + z))
    return model, None


def rotate_half():
    """Rotary embeddings' rotate_half as keras-hub writes it: stack on a new
    axis, then a reshape merging it with the last: one Concat."""
    def f(x):
        x1, x2 = x[..., :8], x[..., 8:]
        return jnp.reshape(jnp.stack([-x2, x1], axis=-2), x.shape) * 2.0
    return f, None


def _gelu(form):
    def make():
        import math
        import keras
        from flax import nnx
        fns = {
            "keras": lambda x: keras.activations.gelu(x),  # tanh approximation by default
            "keras exact": lambda x: keras.activations.gelu(x, approximate=False),
            "nnx": lambda x: nnx.gelu(x),
            # transformers' ACT2FN["gelu_new"], written out as its Flax models do
            "gelu_new": lambda x: 0.5 * x * (1.0 + jnp.tanh(
                math.sqrt(2.0 / math.pi) * (x + 0.044715 * jnp.power(x, 3.0)))),
        }
        return fns[form], None
    return make


LN = {"LayerNormalization": 1}
# before opset 23: the chain onnxruntime fuses into SimplifiedLayerNormalization
RMS_CHAIN = {"Pow": 1, "ReduceMean": 1, "Add": 1, "Sqrt": 1, "Div": 1, "Mul": 1}
RMS = {"RMSNormalization": 1}
NO_RMS_PARTS = ("ReduceSum", "Reciprocal", "Expand", "Shape", "Sub")


def _plus(counts, extra):
    return {op: counts.get(op, 0) + extra.get(op, 0) for op in {**counts, **extra}}
NO_LN_PARTS = ("ReduceSum", "ReduceMean", "Sqrt", "Reciprocal", "Expand", "Shape", "Where")

CASES = [
    Case("jnp.var layernorm", jnp_var_layernorm, [("B", 16, 64)], LN, NO_LN_PARTS),
    Case("rsqrt layernorm without keepdims", jnp_rsqrt_layernorm_no_keepdims, [("B", 16, 64)],
         LN, NO_LN_PARTS),
    Case("keras LayerNormalization", keras_layernorm, [("B", 16, 64)], LN, NO_LN_PARTS),
    Case("keras LayerNormalization as initialised", keras_layernorm_as_initialised,
         [("B", 16, 64)], LN, NO_LN_PARTS),
    Case("haiku LayerNorm", haiku_layernorm, [("B", 16, 64)], LN, NO_LN_PARTS),
    Case("equinox LayerNorm", equinox_layernorm, [("B", 16, 64)], LN, NO_LN_PARTS),
    Case("linen LayerNorm", linen_layernorm, [("B", 16, 64)], LN, NO_LN_PARTS),
    Case("haiku MultiHeadAttention, jnp.tril mask", haiku_causal_attention, [("B", 16, 64)],
         {"Softmax": 1}, ("Range", "GreaterOrEqual", "Where", "Equal", "Not")),
    *[Case(f"GELU, {form}", _gelu(form), [("B", 64)], {"Gelu": 1}, ("Tanh", "Erf", "Pow"))
      for form in ("keras", "keras exact", "nnx", "gelu_new")],
    Case("rotate_half: stack + reshape", rotate_half, [("B", 4, 16)],
         {"Concat": 1, "Neg": 1, "Slice": 2}, ("Unsqueeze", "Reshape")),
    Case("keras Conv2D + BatchNormalization (NHWC)", keras_conv_bn_net, [("B", 16, 16, 3)],
         {"Conv": 2, "Transpose": 1, "Relu": 2, "Gemm": 1}, ("Mul", "Add", "Sub")),
    *[Case(f"{lib} Conv + BatchNorm", make, [shape], {"Conv": 2, "Relu": 2},
           ("BatchNormalization", "Mul", "Add", "Sub", "Div", "Sqrt"))
      for lib, make, shape in [("linen", linen_conv_bn_net, ("B", 16, 16, 3)),
                               ("haiku", haiku_conv_bn_net, ("B", 16, 16, 3)),
                               ("equinox", equinox_conv_bn_net, ("B", 3, 16, 16))]],
    Case("keras ZeroPadding2D before Conv and MaxPool", keras_padded_resnet_block,
         [("B", 16, 16, 3)], {"Conv": 3, "MaxPool": 1, "Transpose": 2}, ("Pad",)),
] + [
    Case(f"{name} opset {opset}", make, [("B", 16, 64)],
         _plus(RMS if opset >= 23 else RMS_CHAIN, extra), NO_RMS_PARTS, opset=opset)
    for name, make, extra in [
        ("jnp rmsnorm", jnp_rmsnorm, {}), ("jnp rmsnorm divided", jnp_rmsnorm_divided, {}),
        ("nnx RMSNorm", nnx_rmsnorm, {}), ("haiku RMSNorm", haiku_rmsnorm, {}),
        ("keras RMSNormalization", keras_rmsnorm, {}),
        ("linen RMSNorm", linen_rmsnorm, {}),
        ("transformers FlaxT5LayerNorm", transformers_t5_layernorm, {}),
        # Equinox's RMSNorm has a bias too: one Add more
        ("equinox RMSNorm", equinox_rmsnorm, {"Add": 1})]
    for opset in (20, 23)
]


def _static(inputs, b=4):
    return [tuple(b if isinstance(d, str) else d for d in shape) for shape in inputs]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_lean_graph(case: Case):
    fn, params = case.make()
    kw = {"params": params} if params is not None else {}
    if case.opset:
        kw["opset"] = case.opset
    model = convert_and_check(fn, case.inputs, rtol=case.tol, atol=case.tol, **kw)
    counts = op_counts(model)
    for op, n in case.has.items():
        assert counts[op] == n, f"{op}: {counts[op]} (want {n}); graph: {dict(counts)}"
    for op in case.lacks:
        assert counts[op] == 0, f"{op} left in the graph: {dict(counts)}"
    static = hlo2onnx.to_onnx(fn, _static(case.inputs), **kw)
    assert len(model.graph.node) == len(static.graph.node), \
        f"dynamic batch: {dict(counts)}; static: {dict(op_counts(static))}"


# ---- whole keras-hub backbones: a symbolic batch costs (almost) nothing -------

def _keras_hub_backbone(name):
    import keras_hub
    if name == "gpt2":
        return keras_hub.models.GPT2Backbone(
            vocabulary_size=300, num_layers=2, num_heads=4, hidden_dim=64, intermediate_dim=128,
            max_sequence_length=64)
    return keras_hub.models.LlamaBackbone(
        vocabulary_size=300, num_layers=2, num_query_heads=4, num_key_value_heads=2,
        hidden_dim=64, intermediate_dim=128)


def _keras_hub_call(name):
    """(f, kw): the backbone as a function of (params, tokens, mask), and the
    to_onnx arguments that bind its weights."""
    model_obj = _keras_hub_backbone(name)
    params = ([v.value for v in model_obj.trainable_variables],
              [v.value for v in model_obj.non_trainable_variables])

    def f(params, tokens, mask):
        return model_obj.stateless_call(params[0], params[1],
                                        {"token_ids": tokens, "padding_mask": mask},
                                        training=False)[0]
    return f, dict(params=params, input_dtypes=[np.int32, np.int32])


def _tokens(rng, shape, dtype, index):
    if index == 0:  # token ids within the vocabulary
        return rng.integers(0, 300, shape).astype(dtype)
    mask = np.ones(shape, dtype)  # padding mask: a padded tail on some rows
    mask[::2, shape[1] // 2:] = 0
    return mask


@pytest.mark.parametrize("name, norms", [
    ("gpt2", {"LayerNormalization": 5}),
    # RMS norms as the chain onnxruntime fuses (opset 20): one ReduceMean each
    ("llama", {"ReduceMean": 5, "Sqrt": 5}),
])
def test_keras_hub_backbone(name, norms):
    f, kw = _keras_hub_call(name)
    model = convert_and_check(f, [("B", 16), ("B", 16)],
                              input_generator=_tokens, **kw)
    counts = op_counts(model)
    for op, n in norms.items():
        assert counts[op] == n, dict(counts)
    assert counts["ReduceSum"] == 0 and counts["Reciprocal"] == 0, dict(counts)
    static = hlo2onnx.to_onnx(f, [(4, 16), (4, 16)], **kw)
    assert len(model.graph.node) <= 1.05 * len(static.graph.node), \
        f"dynamic batch: {dict(counts)}; static: {dict(op_counts(static))}"


def test_keras_hub_llama_dynamic_sequence_length():
    """keras-hub's Llama (grouped-query attention, jax.nn's grouped form)
    with B and T both dynamic: it matches JAX at other sizes, and it has
    no more Transposes than the static graph.  The scores' key-major
    Transpose (matmul_layout) and the unit-axis moves of the heads' vmap
    (unit_transposes) cannot go into constant Reshapes when two symbolic
    dims move; they were 30 % of onnxruntime's time on keras-hub's Gemma."""
    f, kw = _keras_hub_call("llama")
    model = convert_and_check(f, [("B", "T"), ("B", "T")], input_generator=_tokens, **kw)
    static = hlo2onnx.to_onnx(f, [(4, 16), (4, 16)], **kw)
    counts, static_counts = op_counts(model), op_counts(static)
    assert counts["Transpose"] <= static_counts["Transpose"], \
        f"dynamic B, T: {dict(counts)}; static: {dict(static_counts)}"


def _grouped_attention(q, k, v):
    """keras-hub Gemma's grouped-query attention, as its einsums spell it:
    q [B, T, K, G, H] (G query heads per key head), k and v [B, S, K, H]."""
    scores = jnp.einsum("btkgh,bskh->bkgts", q * 0.125, k)  # Gemma scales the queries
    return jnp.einsum("bkgts,bskh->btkgh", jax.nn.softmax(scores, axis=-1), v)


def test_grouped_attention_dynamic_sequence_length():
    """The scores come out of dot_general key-major ([B, K, S, T*G]) and are
    transposed to [B, K, G, T, S]: matmul_layout builds that layout into the
    operands.  With T symbolic the product is made split (k^T broadcast over
    G), and the splitting Reshape no longer reads the product's shape
    (shapes_from_inputs): as many Transposes as with static shapes."""
    inputs = [("B", "T", 2, 2, 16), ("B", "T", 2, 16), ("B", "T", 2, 16)]
    model = convert_and_check(_grouped_attention, inputs)
    static = hlo2onnx.to_onnx(_grouped_attention,
                              [tuple(4 if isinstance(d, str) else d for d in s) for s in inputs])
    counts, static_counts = op_counts(model), op_counts(static)
    assert counts["Transpose"] <= static_counts["Transpose"], \
        f"dynamic B, T: {dict(counts)}; static: {dict(static_counts)}"


# ---- a dynamic sequence length: shapes followed through the attention --------

class _CausalDecoder:
    """An NNX pre-LN decoder block over embeddings [B, T, 32] with learned
    positions (the first T rows of a table of 32: converted with the
    constraint T <= 32) and a causal mask, the way GPT-style models add them."""

    def __new__(cls):
        from flax import nnx

        class Decoder(nnx.Module):
            def __init__(self, rngs):
                self.pos = nnx.Param(jax.random.normal(rngs.params(), (32, 32)))
                self.ln1 = nnx.LayerNorm(32, rngs=rngs)
                self.attn = nnx.MultiHeadAttention(4, 32, decode=False, rngs=rngs)
                self.ln2 = nnx.LayerNorm(32, rngs=rngs)
                self.fc = nnx.Linear(32, 32, rngs=rngs)

            def __call__(self, x):
                x = x + self.pos[...][: x.shape[1]]
                x = x + self.attn(self.ln1(x), mask=nnx.make_causal_mask(x[..., 0]))
                return x + self.fc(self.ln2(x))

        return Decoder(nnx.Rngs(0))


def test_dynamic_sequence_length():
    """Dynamic B and T: every intermediate shape named (value_info checked
    against onnxruntime's), both layer norms fused, and the dynamic graph a
    handful of nodes over the static one (the slice of the position table
    by T keeps its clamps)."""
    from util import convert_and_check_shapes

    model_obj = _CausalDecoder()
    kw = dict(shape_constraints=["T <= 32"])
    model = convert_and_check_shapes(model_obj, [("B", "T", 32)], **kw)
    counts = op_counts(model)
    assert counts["LayerNormalization"] == 2, dict(counts)
    static = hlo2onnx.to_onnx(model_obj, [(4, 8, 32)])
    dynamic_b = hlo2onnx.to_onnx(model_obj, [("B", 8, 32)])
    n, n_b, n_static = len(model.graph.node), len(dynamic_b.graph.node), len(static.graph.node)
    # static: the causal mask is folded into a constant; a dynamic B
    # broadcasts the mask's positions over B before comparing them, so there
    # the mask is computed at run time (what static folds: the positions'
    # Range and Expand, three Unsqueezes, the compare, Cast, Equal, Not and
    # a Reshape: 10 nodes)
    static_counts = op_counts(static)
    assert static_counts["Range"] == static_counts["GreaterOrEqual"] == 0, dict(static_counts)
    mask = 10
    # a dynamic B: the batch of the causal mask's positions (Shape, Cast, Concat)
    assert n_b <= n_static + mask + 3, \
        f"dynamic B: {dict(op_counts(dynamic_b))}; static: {dict(static_counts)}"
    # and T: the slice of the position table and the iota of the mask read T
    # from a Shape (about a dozen nodes), and three Transposes that only move
    # unit axes of the heads' vmap become Squeeze + Unsqueeze: with B and T
    # both dynamic no constant Reshape shape can say where they go (static:
    # Reshapes)
    assert n <= n_static + mask + 16, f"dynamic B, T: {dict(counts)}; static: {dict(static_counts)}"


# ---- indices and broadcasts that cost nothing ------------------------------------

def _rel_projection():
    """Relative positions as keras-hub's DeBERTa uses them: a table broadcast
    to the batch, projected, split into heads and read by the attention's
    MatMul, which broadcasts its batch axes itself."""
    rel, w, b = _rand(64, 32, lo=-1, hi=1), _rand(32, 32, lo=-0.2, hi=0.2), _rand(32)

    def f(q):
        r = jnp.broadcast_to(rel[None], (q.shape[0], 64, 32))
        k = (r @ w + b).reshape(q.shape[0], 64, 4, 8).transpose(0, 2, 3, 1)  # [B, 4, 8, 64]
        return jnp.tanh(q @ k)
    return f


def test_broadcast_then_project():
    """The projection runs once on the table, not once per example: no
    Expand, and no node between the table and the attention MatMul has the
    batch axis."""
    f = _rel_projection()
    model = convert_and_check(f, [("B", 4, 16, 8)])
    counts = op_counts(model)
    assert counts["Expand"] == 0 and counts["Shape"] == 0, dict(counts)
    static = hlo2onnx.to_onnx(f, [(4, 4, 16, 8)])
    assert len(model.graph.node) == len(static.graph.node), dict(counts)
    inits = {i.name for i in model.graph.initializer}
    projection = next(n for n in model.graph.node if n.op_type == "MatMul")
    assert all(x in inits for x in projection.input), "the projection reads the batch"


def test_indices_that_cannot_be_negative():
    """CLIP's pooled token, h[jnp.arange(B), argmax]: JAX wraps negative
    indices (where(i < 0, i + n, i)) and clamps them below at 0; neither
    can happen to an arange or an argmax, so neither is in the graph.  The
    batch's arange reads B from the input's shape without the int32 round
    trip of JAX's size arithmetic (Cast to int32 and back)."""
    def f(h):
        return h[jnp.arange(h.shape[0]), jnp.argmax(h[..., 0], axis=-1)]

    model = convert_and_check(f, [("B", 16, 8)], rtol=0, atol=0)  # a gather: exact
    counts = op_counts(model)
    assert counts["Less"] == 0 and counts["Max"] == 0, dict(counts)
    assert counts["Where"] == 1, dict(counts)  # argmax's own: NaN wins, as in JAX
    made_by = {o: n for n in model.graph.node for o in n.output}
    for n in model.graph.node:
        if n.op_type == "Cast" and n.input[0] in made_by:
            assert made_by[n.input[0]].op_type != "Cast", "a Cast of a Cast is left"


def test_negative_indices_still_wrap():
    """An index the user passes may be negative: its wrap stays."""
    def f(x, i):
        return x[i], jnp.take_along_axis(x, i[:, None] % 3 - 3, axis=1)

    def inputs(rng, shape, dtype, index):
        if index == 1:
            return rng.integers(-8, 8, shape).astype(np.int32)
        return rng.standard_normal(shape).astype(np.float32)

    model = convert_and_check(
        f, [jax.ShapeDtypeStruct((8, 5), jnp.float32), jax.ShapeDtypeStruct((8,), jnp.int32)],
        rtol=0, atol=0, input_generator=inputs)
    assert op_counts(model)["Where"] >= 1


def test_residual_then_layernorm(tmp_path):
    """A post-LN block (BERT's): LayerNorm(x + f(x)).  onnxruntime fuses an
    Add followed by a LayerNormalization into its SkipLayerNormalization,
    whose CPU kernel takes 3.5x the time of the two (a scalar loop) and
    computes the variance in float32 as E[x^2] - E[x]^2; the residual is a
    Sum, which it leaves alone, so the LayerNormalization stays."""
    import flax.linen as nn

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.LayerNorm()(x + nn.Dense(64)(x))

    block = Block()
    params = block.init(jax.random.key(0), jnp.zeros((1, 16, 64)))
    model = convert_and_check(block.apply, [("B", 16, 64)], params=params)
    counts = op_counts(model)
    assert counts["Sum"] == 1 and counts["LayerNormalization"] == 1, dict(counts)
    kept = _ort_kept(model, tmp_path)
    assert kept["SkipLayerNormalization"] == 0 and kept["LayerNormalization"] == 1, dict(kept)


def _ort_kept(model, tmp_path) -> dict:
    """The op counts of the graph onnxruntime keeps after its fusions."""
    opts = ort.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    return op_counts(onnx.load(opts.optimized_model_filepath))


@pytest.mark.parametrize("scaled", [False, True])
def test_rms_norm_without_scale(tmp_path, scaled):
    """Linen's RMSNorm without a scale (and keras-hub's Gemma as
    initialised, whose scale 1 + 0 folds away): onnxruntime fuses the chain
    into SimplifiedLayerNormalization only when a Mul by the scale ends it,
    so the kernels pass writes a Mul by ones; a norm with a scale is left as
    it was."""
    import flax.linen as nn

    class Block(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(64)(nn.RMSNorm(use_scale=scaled)(x))

    block = Block()
    params = block.init(jax.random.key(0), jnp.zeros((1, 16, 64)))
    model = convert_and_check(block.apply, [("B", 16, 64)], params=params)
    assert op_counts(model)["Mul"] == 1, dict(op_counts(model))
    kept = _ort_kept(model, tmp_path)
    assert kept["SimplifiedLayerNormalization"] == 1 and kept["Sqrt"] == 0, dict(kept)


def test_mask_and_true_over_heads():
    """JAX's attention ands a causal mask [B, 1, T, T] with a true broadcast
    over the heads before its where: the where broadcasts the mask over the
    heads itself, so the And (a pass over [B, H, T, T] bools) goes; an And
    with a mask that is not all true stays."""
    heads = np.array([True, False, True, True]).reshape(1, 4, 1, 1)

    def f(scores, keep):
        mask = keep[:, None, :, None] & keep[:, None, None, :]
        a = jnp.where(mask & jnp.ones((1, 4, 1, 1), bool), scores, -1e9)
        b = jnp.where(mask & heads, scores, -1e9)
        return a, b

    def inputs(rng, shape, dtype, index):
        if index == 1:
            return rng.random(shape) < 0.7
        return rng.standard_normal(shape).astype(np.float32)

    model = convert_and_check(f, [("B", 4, "T", "T"), ("B", "T")], rtol=0, atol=0,
                              input_dtypes=[np.float32, np.bool_], input_generator=inputs)
    counts = op_counts(model)
    assert counts["And"] == 2, dict(counts)  # the mask's own and the partial heads' one
