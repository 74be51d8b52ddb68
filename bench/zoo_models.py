"""The model zoo: models from the libraries users use, built from arguments.

Every model is made from its constructor arguments with random weights
(nothing is downloaded), small enough that the whole zoo runs in a few
minutes on two cores, and takes a dynamic batch "B".  :func:`build` returns
a :class:`Case`:

* ``obj``, ``params``: what is handed to ``hlo2onnx.to_onnx(obj, specs,
  params=params)``: an NNX / Equinox module, a ``(linen_module, variables)``
  pair, or a function of ``(params, *inputs)`` for Keras, keras-hub, Haiku
  and transformers' Flax models;
* ``specs``: one ``(shape, dtype)`` per input, "B" in the shape;
* ``inputs(b)``: concrete inputs at batch b (fixed seed);
* JAX's side is always ``jax.jit(bound.apply)(bound.values, *inputs)`` with
  hlo2onnx's own binding of ``obj`` / ``params`` (``convert.bind``): the same
  function the converter lowers, weights passed as arguments;
* ``j2o``: what jax2onnx gets (the NNX module itself; for the other kinds
  the bound function with the weights closed over, since jax2onnx has no
  ``params=``).

Libraries: keras-hub backbones (BERT, GPT-2, Llama, Gemma, DeBERTa-v3,
Whisper, ViT, ResNet), transformers 4.x Flax models (BigBird, T5, CLIP),
Haiku (ResNet-18, an MLP), Equinox (a CNN, an attention block), Flax Linen
(a CNN, a transformer encoder block) and Flax NNX (bench/models.py's MNIST
ViT, a small GPT).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Callable

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np

T = 64  # tokens per sequence for the text models


@dataclasses.dataclass
class Case:
    name: str
    library: str
    what: str
    obj: Any
    params: Any
    specs: list  # [(shape with "B", numpy dtype)]
    inputs: Callable[[int], list]
    j2o: Any = None  # for jax2onnx; None: the bound function
    input_names: list | None = None


def _ints(shape, high, seed):
    return np.random.default_rng(seed).integers(0, high, size=shape, dtype=np.int32)


def _floats(shape, seed, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape, dtype=np.float32) * scale)


def _mask(b, t):
    """A padding mask with the last quarter of each other row padded."""
    m = np.ones((b, t), np.int32)
    m[1::2, 3 * t // 4:] = 0
    return m


# ---------------------------------------------------------------------------
# Keras 3 and keras-hub: model.stateless_call with the variables as params.


def _keras_case(name, what, model, order, make) -> Case:
    """``order``: the model's input names in the order of ``specs``."""
    params = ([v.value for v in model.trainable_variables],
              [v.value for v in model.non_trainable_variables])

    def f(p, *xs):
        # a backbone of one input takes the tensor, the others a dict by name
        args = xs[0] if len(order) == 1 else dict(zip(order, xs))
        out, _ = model.stateless_call(p[0], p[1], args, training=False)
        return out

    specs, inputs = make
    return Case(name, "keras-hub", what, f, params, specs, inputs, input_names=list(order))


def _text_inputs(names, vocab, with_segments=False):
    specs = [(("B", T), np.int32) for _ in names]

    def inputs(b):
        out = []
        for n in names:
            if n == "token_ids" or n == "decoder_token_ids":
                out.append(_ints((b, T), vocab, 1))
            elif n in ("padding_mask", "decoder_padding_mask"):
                out.append(_mask(b, T))
            elif n == "segment_ids":
                s = np.zeros((b, T), np.int32)
                s[:, T // 2:] = 1
                out.append(s)
        return out

    return specs, inputs


def _keras_hub(name):
    import keras
    import keras_hub

    keras.utils.set_random_seed(0)
    M = keras_hub.models
    V = 1000
    if name == "kh_bert":
        m = M.BertBackbone(vocabulary_size=V, num_layers=4, num_heads=4, hidden_dim=256,
                           intermediate_dim=1024, max_sequence_length=T)
        order = ["token_ids", "segment_ids", "padding_mask"]
        return _keras_case(name, "BertBackbone: 4 layers, width 256, 4 heads", m, order,
                           _text_inputs(order, V))
    if name == "kh_gpt2":
        m = M.GPT2Backbone(vocabulary_size=V, num_layers=4, num_heads=4, hidden_dim=256,
                           intermediate_dim=1024, max_sequence_length=T)
        order = ["token_ids", "padding_mask"]
        return _keras_case(name, "GPT2Backbone: 4 layers, width 256, 4 heads", m, order,
                           _text_inputs(order, V))
    if name == "kh_llama":
        m = M.LlamaBackbone(vocabulary_size=V, num_layers=4, num_query_heads=4,
                            num_key_value_heads=2, hidden_dim=256, intermediate_dim=688)
        order = ["token_ids", "padding_mask"]
        return _keras_case(name, "LlamaBackbone: 4 layers, width 256, 4 query / 2 KV heads", m,
                           order, _text_inputs(order, V))
    if name == "kh_gemma":
        m = M.GemmaBackbone(vocabulary_size=V, num_layers=4, num_query_heads=4,
                            num_key_value_heads=1, hidden_dim=256, intermediate_dim=1024,
                            head_dim=64)
        order = ["token_ids", "padding_mask"]
        return _keras_case(name, "GemmaBackbone: 4 layers, width 256, 4 query / 1 KV heads", m,
                           order, _text_inputs(order, V))
    if name == "kh_deberta":
        m = M.DebertaV3Backbone(vocabulary_size=V, num_layers=4, num_heads=4, hidden_dim=256,
                                intermediate_dim=1024, max_sequence_length=T, bucket_size=32)
        order = ["token_ids", "padding_mask"]
        return _keras_case(name, "DebertaV3Backbone: 4 layers, width 256, relative positions", m,
                           order, _text_inputs(order, V))
    if name == "kh_whisper":
        m = M.WhisperBackbone(vocabulary_size=V, num_layers=2, num_heads=4, hidden_dim=256,
                              intermediate_dim=1024, max_encoder_sequence_length=2 * T,
                              max_decoder_sequence_length=T)
        order = ["encoder_features", "decoder_token_ids", "decoder_padding_mask"]
        specs = [(("B", 2 * T, 80), np.float32), (("B", T), np.int32), (("B", T), np.int32)]

        def inputs(b):
            return [_floats((b, 2 * T, 80), 2), _ints((b, T), V, 1), _mask(b, T)]

        return _keras_case(name, "WhisperBackbone: 2+2 layers, width 256, 128 audio frames", m,
                           order, (specs, inputs))
    if name == "kh_vit":
        m = M.ViTBackbone(image_shape=(64, 64, 3), patch_size=8, num_layers=4, num_heads=4,
                          hidden_dim=256, mlp_dim=1024)
        specs = [(("B", 64, 64, 3), np.float32)]
        return _keras_case(name, "ViTBackbone: 64×64 images, 8×8 patches, 4 layers, width 256",
                           m, ["images"], (specs, lambda b: [_floats((b, 64, 64, 3), 3)]))
    if name == "kh_resnet":
        m = M.ResNetBackbone(input_conv_filters=[64], input_conv_kernel_sizes=[7],
                             stackwise_num_filters=[64, 128, 256], stackwise_num_blocks=[2, 2, 2],
                             stackwise_num_strides=[1, 2, 2], block_type="basic_block",
                             image_shape=(64, 64, 3))
        specs = [(("B", 64, 64, 3), np.float32)]
        return _keras_case(name, "ResNetBackbone: basic blocks [2, 2, 2], 64×64 images", m,
                           ["images"], (specs, lambda b: [_floats((b, 64, 64, 3), 3)]))
    raise KeyError(name)


# ---------------------------------------------------------------------------
# transformers 4.x Flax models from small configs.


def _hf_case(name, what, model, fn, specs, inputs, order):
    def f(p, *xs):
        return fn(model, p, *xs)

    return Case(name, "transformers (Flax)", what, f, model.params, specs, inputs,
                input_names=order)


def _clip_accepts_a_max() -> None:
    """transformers 4.x's Flax T5 calls jnp.clip(x, a_max=...), which JAX
    0.10 no longer accepts: spell it the new way (this process only)."""
    import inspect

    import jax.numpy as jnp

    if "a_max" in inspect.signature(jnp.clip).parameters:
        return
    clip = jnp.clip

    def compat(x, min=None, max=None, *, a_min=None, a_max=None, **kw):
        return clip(x, a_min if min is None else min, a_max if max is None else max, **kw)

    jnp.clip = compat


def _transformers(name):
    import transformers as tr

    if name == "hf_bigbird":
        t = 256  # block-sparse attention needs > (5 + 2 * random blocks) * block size tokens
        cfg = tr.BigBirdConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=2,
                               num_attention_heads=4, intermediate_size=512,
                               max_position_embeddings=t, block_size=16, num_random_blocks=2,
                               attention_type="block_sparse")
        model = tr.FlaxBigBirdModel(cfg, seed=0)

        def fn(m, p, ids, mask):
            return m(ids, attention_mask=mask, params=p, train=False).last_hidden_state

        specs = [(("B", t), np.int32), (("B", t), np.int32)]
        return _hf_case(name, "FlaxBigBirdModel: block-sparse attention, 2 layers, width 128, "
                        "256 tokens", model, fn, specs,
                        lambda b: [_ints((b, t), 1000, 1), np.ones((b, t), np.int32)],
                        ["input_ids", "attention_mask"])
    if name == "hf_t5":
        _clip_accepts_a_max()
        cfg = tr.T5Config(vocab_size=1000, d_model=256, d_kv=64, d_ff=1024, num_layers=2,
                          num_decoder_layers=2, num_heads=4)
        model = tr.FlaxT5Model(cfg, seed=0)

        def fn(m, p, ids, dec):
            return m(ids, decoder_input_ids=dec, params=p, train=False).last_hidden_state

        specs = [(("B", T), np.int32), (("B", T // 2), np.int32)]
        return _hf_case(name, "FlaxT5Model: 2+2 layers, width 256, relative position buckets",
                        model, fn, specs,
                        lambda b: [_ints((b, T), 1000, 1), _ints((b, T // 2), 1000, 2)],
                        ["input_ids", "decoder_input_ids"])
    if name == "hf_clip":
        cfg = tr.CLIPConfig(
            text_config=dict(vocab_size=1000, hidden_size=128, intermediate_size=512,
                             num_hidden_layers=2, num_attention_heads=4,
                             max_position_embeddings=T),
            vision_config=dict(hidden_size=128, intermediate_size=512, num_hidden_layers=2,
                               num_attention_heads=4, image_size=64, patch_size=8),
            projection_dim=64)
        model = tr.FlaxCLIPModel(cfg, seed=0)

        def fn(m, p, ids, pix):
            o = m(input_ids=ids, pixel_values=pix, params=p, train=False)
            return o.text_embeds, o.image_embeds

        specs = [(("B", T), np.int32), (("B", 3, 64, 64), np.float32)]
        return _hf_case(name, "FlaxCLIPModel: text and vision towers of 2 layers, width 128",
                        model, fn, specs,
                        lambda b: [_ints((b, T), 1000, 1), _floats((b, 3, 64, 64), 3)],
                        ["input_ids", "pixel_values"])
    raise KeyError(name)


# ---------------------------------------------------------------------------
# Haiku: transform(_with_state) and params=.


def _haiku(name):
    import haiku as hk
    import jax

    if name == "hk_resnet":
        def net(x, is_training):
            # Haiku's logits layer starts at zero, which would make every
            # output equal the bias: a normal init keeps the check meaningful.
            return hk.nets.ResNet18(num_classes=10, resnet_v2=False, logits_config=dict(
                w_init=hk.initializers.TruncatedNormal(0.05)))(x, is_training=is_training)

        t = hk.transform_with_state(net)
        x0 = _floats((1, 32, 32, 3), 3)
        params, state = t.init(jax.random.key(0), x0, True)  # BatchNorm's averages
        # The averages start at 0: a variance of 0 would scale every
        # BatchNorm by 1/sqrt(eps) and make the outputs ill-conditioned.
        state = jax.tree_util.tree_map_with_path(
            lambda path, v: jax.numpy.ones_like(v) if "var_ema" in jax.tree_util.keystr(path)
            and "average" in jax.tree_util.keystr(path) else v, state)

        def f(ps, x):
            return t.apply(ps[0], ps[1], None, x, False)[0]

        return Case(name, "Haiku", "hk.nets.ResNet18, 32×32 images, eval mode", f,
                    (params, state), [(("B", 32, 32, 3), np.float32)],
                    lambda b: [_floats((b, 32, 32, 3), 3)])
    if name == "hk_mlp":
        def net(x):
            return hk.nets.MLP([1024, 1024, 1024, 10], activation=jax.nn.gelu)(x)

        t = hk.without_apply_rng(hk.transform(net))
        params = t.init(jax.random.key(0), np.zeros((1, 784), np.float32))
        return Case(name, "Haiku", "hk.nets.MLP 784-1024-1024-1024-10, GELU", t.apply, params,
                    [(("B", 784), np.float32)], lambda b: [_floats((b, 784), 3)])
    raise KeyError(name)


# ---------------------------------------------------------------------------
# Equinox: per-example modules vmapped over the batch.


def _equinox(name):
    import equinox as eqx
    import jax
    import jax.numpy as jnp

    keys = jax.random.split(jax.random.key(0), 8)
    if name == "eqx_cnn":
        class CNN(eqx.Module):
            layers: list

            def __init__(self):
                self.layers = [
                    eqx.nn.Conv2d(3, 32, 3, padding=1, key=keys[0]), jax.nn.relu,
                    eqx.nn.MaxPool2d(2, 2),
                    eqx.nn.Conv2d(32, 64, 3, padding=1, key=keys[1]), jax.nn.relu,
                    eqx.nn.MaxPool2d(2, 2),
                    eqx.nn.Conv2d(64, 128, 3, padding=1, key=keys[2]), jax.nn.relu,
                    lambda x: jnp.mean(x, axis=(1, 2)),
                    eqx.nn.Linear(128, 10, key=keys[3]),
                ]

            def __call__(self, x):  # (B, 3, 32, 32): Equinox convolutions are CHW
                def one(y):
                    for layer in self.layers:
                        y = layer(y)
                    return y

                return jax.vmap(one)(x)

        return Case(name, "Equinox", "3 Conv2d + MaxPool2d + Linear, vmapped, 32×32", CNN(),
                    None, [(("B", 3, 32, 32), np.float32)], lambda b: [_floats((b, 3, 32, 32), 3)])
    if name == "eqx_attn":
        d, h = 256, 4

        class Block(eqx.Module):
            ln1: eqx.nn.LayerNorm
            attn: eqx.nn.MultiheadAttention
            ln2: eqx.nn.LayerNorm
            mlp: eqx.nn.MLP

            def __init__(self, k):
                k1, k2 = jax.random.split(k)
                self.ln1 = eqx.nn.LayerNorm(d)
                self.attn = eqx.nn.MultiheadAttention(h, d, key=k1)
                self.ln2 = eqx.nn.LayerNorm(d)
                self.mlp = eqx.nn.MLP(d, d, 4 * d, depth=1, activation=jax.nn.gelu, key=k2)

            def __call__(self, x):  # (T, d)
                y = jax.vmap(self.ln1)(x)
                x = x + self.attn(y, y, y)
                return x + jax.vmap(self.mlp)(jax.vmap(self.ln2)(x))

        class Encoder(eqx.Module):
            blocks: list

            def __init__(self):
                self.blocks = [Block(keys[i]) for i in range(4)]

            def __call__(self, x):  # (B, T, d)
                def one(y):
                    for blk in self.blocks:
                        y = blk(y)
                    return y

                return jax.vmap(one)(x)

        return Case(name, "Equinox", "4 pre-LN blocks of MultiheadAttention + MLP, width 256, "
                    "vmapped", Encoder(), None, [(("B", T, d), np.float32)],
                    lambda b: [_floats((b, T, d), 3)])
    raise KeyError(name)


# ---------------------------------------------------------------------------
# Flax Linen.


def _linen(name):
    import flax.linen as nn
    import jax

    if name == "linen_cnn":
        class CNN(nn.Module):
            @nn.compact
            def __call__(self, x):
                for f in (32, 64, 128):
                    x = nn.Conv(f, (3, 3))(x)
                    x = nn.BatchNorm(use_running_average=True)(x)
                    x = nn.relu(x)
                    x = nn.max_pool(x, (2, 2), (2, 2))
                x = x.reshape(x.shape[0], -1)
                return nn.Dense(10)(nn.relu(nn.Dense(256)(x)))

        m = CNN()
        v = m.init(jax.random.key(0), np.zeros((1, 32, 32, 3), np.float32))
        return Case(name, "Flax Linen", "3 × (Conv, BatchNorm, ReLU, max-pool) + 2 Dense, "
                    "32×32", (m, v), None, [(("B", 32, 32, 3), np.float32)],
                    lambda b: [_floats((b, 32, 32, 3), 3)])
    if name == "linen_encoder":
        d = 256

        class Block(nn.Module):
            @nn.compact
            def __call__(self, x):
                y = nn.LayerNorm()(x)
                x = x + nn.SelfAttention(num_heads=4, deterministic=True)(y)
                y = nn.LayerNorm()(x)
                return x + nn.Dense(d)(nn.gelu(nn.Dense(4 * d)(y)))

        class Encoder(nn.Module):
            @nn.compact
            def __call__(self, x):
                for _ in range(4):
                    x = Block()(x)
                return x

        m = Encoder()
        v = m.init(jax.random.key(0), np.zeros((1, T, d), np.float32))
        return Case(name, "Flax Linen", "4 pre-LN blocks of nn.SelfAttention + MLP, width 256",
                    (m, v), None, [(("B", T, d), np.float32)], lambda b: [_floats((b, T, d), 3)])
    raise KeyError(name)


# ---------------------------------------------------------------------------
# Flax NNX (bench/models.py).


def _nnx(name):
    import models

    if name == "nnx_vit":
        m = models.build("vit")
        return Case(name, "Flax NNX", "models.py's MNIST ViT: 6 blocks, width 256", m, None,
                    [(("B", 28, 28, 1), np.float32)], lambda b: [_floats((b, 28, 28, 1), 3)],
                    j2o=m)
    if name == "nnx_gpt":
        models.CONFIGS["gpt_small"] = dict(cls=models.GPT, kw=dict(vocab=1000, ctx=T, dim=256,
                                                                     layers=4, heads=4))
        m = models.build("gpt_small")
        return Case(name, "Flax NNX", "models.py's GPT decoder: 4 layers, width 256, causal",
                    m, None, [(("B", T), np.int32)], lambda b: [_ints((b, T), 1000, 1)], j2o=m)
    raise KeyError(name)


ZOO = {
    "kh_bert": _keras_hub, "kh_gpt2": _keras_hub, "kh_llama": _keras_hub,
    "kh_gemma": _keras_hub, "kh_deberta": _keras_hub, "kh_whisper": _keras_hub,
    "kh_vit": _keras_hub, "kh_resnet": _keras_hub,
    "hf_bigbird": _transformers, "hf_t5": _transformers, "hf_clip": _transformers,
    "hk_resnet": _haiku, "hk_mlp": _haiku,
    "eqx_cnn": _equinox, "eqx_attn": _equinox,
    "linen_cnn": _linen, "linen_encoder": _linen,
    "nnx_vit": _nnx, "nnx_gpt": _nnx,
}


def build(name: str) -> Case:
    """The zoo's model ``name``, with every array computed (JAX dispatches
    asynchronously: initialisers may still run when the constructor returns)."""

    case = ZOO[name](name)
    ready(case.obj, case.params)
    return case


def ready(*trees) -> None:
    """Waits for every array in ``trees`` (an NNX module's: in its state)."""
    import sys

    import jax

    nnx = sys.modules.get("flax.nnx")
    if nnx is not None:
        trees = jax.tree_util.tree_map(lambda x: nnx.state(x) if isinstance(x, nnx.Module) else x,
                                       trees, is_leaf=lambda x: isinstance(x, nnx.Module))
    jax.block_until_ready([x for x in jax.tree_util.tree_leaves(trees)
                           if isinstance(x, jax.Array)])


# ---------------------------------------------------------------------------
# The memory cases: one model per binding path, 512 MiB of float32 weights
# (two 8192 x 8192 layers), as in issue 12.

MEM_WIDTH = 8192


def build_memory(kind: str, width: int = MEM_WIDTH):
    """(obj, params, spec, weight bytes) for a two-layer tanh MLP of width
    ``width`` written with ``kind``'s layers: nnx, linen, equinox, haiku or
    keras.  Weights from each library's own initialiser, computed before
    returning (``jax.block_until_ready``) unless ``kind`` ends in
    "_nowait"."""
    import jax
    import jax.numpy as jnp

    spec = [(4, width)]
    wait = not kind.endswith("_nowait")
    kind = kind.removesuffix("_nowait")
    if kind == "nnx":
        from flax import nnx

        class M(nnx.Module):
            def __init__(self, rngs):
                self.a = nnx.Linear(width, width, rngs=rngs)
                self.b = nnx.Linear(width, width, rngs=rngs)

            def __call__(self, x):
                return self.b(jnp.tanh(self.a(x)))

        obj, params = M(nnx.Rngs(0)), None
    elif kind == "linen":
        import flax.linen as nn

        class M(nn.Module):
            @nn.compact
            def __call__(self, x):
                return nn.Dense(width)(jnp.tanh(nn.Dense(width)(x)))

        m = M()
        obj, params = (m, m.init(jax.random.key(0), jnp.zeros((1, width)))), None
    elif kind == "equinox":
        import equinox as eqx

        k1, k2 = jax.random.split(jax.random.key(0))

        class M(eqx.Module):
            a: eqx.nn.Linear
            b: eqx.nn.Linear

            def __init__(self):
                self.a = eqx.nn.Linear(width, width, key=k1)
                self.b = eqx.nn.Linear(width, width, key=k2)

            def __call__(self, x):
                return jax.vmap(lambda v: self.b(jnp.tanh(self.a(v))))(x)

        obj, params = M(), None
    elif kind == "haiku":
        import haiku as hk

        t = hk.without_apply_rng(hk.transform(
            lambda x: hk.Linear(width)(jnp.tanh(hk.Linear(width)(x)))))
        obj, params = t.apply, t.init(jax.random.key(0), jnp.zeros((1, width)))
    elif kind == "keras":
        import keras

        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((width,)), keras.layers.Dense(width, activation="tanh"),
                              keras.layers.Dense(width)])

        def f(p, x):
            return m.stateless_call(p[0], p[1], x, training=False)[0]

        obj = f
        params = ([v.value for v in m.trainable_variables],
                  [v.value for v in m.non_trainable_variables])
    else:
        raise KeyError(kind)
    if wait:  # "equinox_nowait": as issue 12 measured, initialisers may still run
        ready(obj, params)
    leaves = jax.tree_util.tree_leaves((obj, params))
    weight_bytes = sum(int(x.nbytes) for x in leaves if isinstance(x, jax.Array))
    return obj, params, spec, weight_bytes

