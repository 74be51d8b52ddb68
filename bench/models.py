"""The benchmark's models, in Flax NNX.

This file is imported by both sides of the benchmark: by hlo2onnx in the
project's environment and by jax2onnx in its own virtual environment, so it
uses only jax, flax and numpy.  Every model is built the same way on both
sides (same structure, same weights from a fixed seed), and the same model
object is handed to each converter.

* ``vit``: an MNIST vision transformer in the spirit of the seed's
  ``mnist_vit`` example: a 3x3 conv stem, 4x4 patch embedding, a class token
  and learned positions, transformer blocks (``nnx.MultiHeadAttention``,
  LayerNorm, a GELU MLP, Dropout), a final LayerNorm and a Linear head with
  log-softmax.  About 3 M parameters.
* ``gpt2``: a GPT-2-small-sized decoder: 12 layers, width 768, 12 heads,
  vocabulary 50257, context 1024, tied input/output embedding (124 M
  parameters, 498 MB of float32).
* ``big``: the same decoder at width 2048, 16 heads, 20 layers and a
  vocabulary of 8192: 1.03 B parameters, 4.1 GB of float32, past protobuf's
  2 GB limit.

Building a 1 B-parameter model with Flax's initializers takes minutes of
random-number generation, so :func:`build` creates the module abstractly
(``nnx.eval_shape``) and fills every parameter from one NumPy generator
(uniform, scaled by 1/sqrt(fan-in)), which takes seconds and gives the same
numbers in both environments.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# ---------------------------------------------------------------------------
# MNIST ViT


class MLPBlock(nnx.Module):
    def __init__(self, dim: int, hidden: int, *, rngs: nnx.Rngs):
        self.fc1 = nnx.Linear(dim, hidden, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, dim, rngs=rngs)
        self.drop = nnx.Dropout(0.1, rngs=rngs)

    def __call__(self, x):
        x = nnx.gelu(self.fc1(x), approximate=False)
        return self.drop(self.fc2(x))


class ViTBlock(nnx.Module):
    def __init__(self, dim: int, heads: int, hidden: int, *, rngs: nnx.Rngs):
        self.ln1 = nnx.LayerNorm(dim, rngs=rngs)
        self.attn = nnx.MultiHeadAttention(num_heads=heads, in_features=dim, decode=False,
                                           rngs=rngs)
        self.ln2 = nnx.LayerNorm(dim, rngs=rngs)
        self.mlp = MLPBlock(dim, hidden, rngs=rngs)
        self.drop = nnx.Dropout(0.1, rngs=rngs)

    def __call__(self, x):
        y = self.ln1(x)
        x = x + self.drop(self.attn(y, y, y))
        return x + self.mlp(self.ln2(x))


class MnistViT(nnx.Module):
    def __init__(self, *, patch: int = 4, dim: int = 256, layers: int = 6, heads: int = 8,
                 hidden: int = 512, classes: int = 10, rngs: nnx.Rngs):
        self.patch = patch
        self.stem = nnx.Conv(1, 16, kernel_size=(3, 3), padding="SAME", rngs=rngs)
        self.embed = nnx.Linear(patch * patch * 16, dim, rngs=rngs)
        n = (28 // patch) ** 2
        self.cls = nnx.Param(jnp.zeros((1, 1, dim)))
        self.pos = nnx.Param(jnp.zeros((1, n + 1, dim)))
        self.blocks = nnx.List([ViTBlock(dim, heads, hidden, rngs=rngs) for _ in range(layers)])
        self.ln = nnx.LayerNorm(dim, rngs=rngs)
        self.head = nnx.Linear(dim, classes, rngs=rngs)

    def __call__(self, x):  # x: (B, 28, 28, 1)
        x = nnx.relu(self.stem(x))
        b, h, w, c = x.shape
        p = self.patch
        x = x.reshape(b, h // p, p, w // p, p, c).transpose(0, 1, 3, 2, 4, 5)
        x = self.embed(x.reshape(b, (h // p) * (w // p), p * p * c))
        cls = jnp.broadcast_to(self.cls[...], (b, 1, x.shape[-1]))
        x = jnp.concatenate([cls, x], axis=1) + self.pos[...]
        for blk in self.blocks:
            x = blk(x)
        return nnx.log_softmax(self.head(self.ln(x[:, 0])))


# ---------------------------------------------------------------------------
# GPT-2-style decoder


class CausalSelfAttention(nnx.Module):
    def __init__(self, dim: int, heads: int, *, rngs: nnx.Rngs):
        self.heads = heads
        self.qkv = nnx.Linear(dim, 3 * dim, rngs=rngs)
        self.proj = nnx.Linear(dim, dim, rngs=rngs)

    def __call__(self, x):
        b, t, d = x.shape
        h = self.heads
        q, k, v = jnp.split(self.qkv(x), 3, axis=-1)
        q, k, v = (a.reshape(b, t, h, d // h) for a in (q, k, v))
        s = jnp.einsum("bthd,bshd->bhts", q, k) / math.sqrt(d // h)
        mask = jnp.tril(jnp.ones((t, t), dtype=bool))
        s = jnp.where(mask, s, jnp.finfo(s.dtype).min)
        y = jnp.einsum("bhts,bshd->bthd", jax.nn.softmax(s, axis=-1), v)
        return self.proj(y.reshape(b, t, d))


class DecoderBlock(nnx.Module):
    def __init__(self, dim: int, heads: int, *, rngs: nnx.Rngs):
        self.ln1 = nnx.LayerNorm(dim, epsilon=1e-5, rngs=rngs)
        self.attn = CausalSelfAttention(dim, heads, rngs=rngs)
        self.ln2 = nnx.LayerNorm(dim, epsilon=1e-5, rngs=rngs)
        self.fc = nnx.Linear(dim, 4 * dim, rngs=rngs)
        self.out = nnx.Linear(4 * dim, dim, rngs=rngs)

    def __call__(self, x):
        x = x + self.attn(self.ln1(x))
        return x + self.out(nnx.gelu(self.fc(self.ln2(x)), approximate=True))


class GPT(nnx.Module):
    def __init__(self, *, vocab: int = 50257, ctx: int = 1024, dim: int = 768,
                 layers: int = 12, heads: int = 12, rngs: nnx.Rngs):
        self.wte = nnx.Embed(vocab, dim, rngs=rngs)
        self.wpe = nnx.Embed(ctx, dim, rngs=rngs)
        self.blocks = nnx.List([DecoderBlock(dim, heads, rngs=rngs) for _ in range(layers)])
        self.ln_f = nnx.LayerNorm(dim, epsilon=1e-5, rngs=rngs)

    def __call__(self, ids):  # ids: (B, T) int32 -> logits (B, T, vocab)
        t = ids.shape[1]
        x = self.wte(ids) + self.wpe(jnp.arange(t))
        for blk in self.blocks:
            x = blk(x)
        return self.wte.attend(self.ln_f(x))  # tied output embedding


# ---------------------------------------------------------------------------
# Building, inputs


CONFIGS = {
    "vit": dict(cls=MnistViT, kw={}),
    "gpt2": dict(cls=GPT, kw=dict(vocab=50257, ctx=1024, dim=768, layers=12, heads=12)),
    "big": dict(cls=GPT, kw=dict(vocab=8192, ctx=1024, dim=2048, layers=20, heads=16)),
}

# The input of each model given to the converters (static shapes, so that both
# tools see exactly the same function) and the one used to check the result.
INPUTS = {
    "vit": ((4, 28, 28, 1), np.float32),
    "gpt2": ((1, 128), np.int32),
    "big": ((1, 16), np.int32),
}


def _fill(shape, dtype, rng: np.random.Generator, fan_in: int, kind: str) -> np.ndarray:
    """Deterministic values for one parameter, made in place (no temporaries
    the size of the tensor besides the result)."""
    if kind == "ones":
        return np.ones(shape, dtype)
    a = rng.random(shape, dtype=np.float32)  # [0, 1)
    a -= 0.5
    a *= (2.0 * math.sqrt(3.0)) / math.sqrt(max(fan_in, 1))  # unit variance / fan-in
    if kind == "small":
        a *= 0.1
    return a.astype(dtype, copy=False)


def build(name: str, seed: int = 0):
    """The model ``name`` of :data:`CONFIGS` with deterministic weights."""
    cfg = CONFIGS[name]
    abstract = nnx.eval_shape(lambda: cfg["cls"](**cfg["kw"], rngs=nnx.Rngs(0)))
    graphdef, params, rest = nnx.split(abstract, nnx.Param, ...)
    rng = np.random.default_rng(seed)
    flat = []
    for path, var in nnx.to_flat_state(params):
        sds = var.get_value() if hasattr(var, "get_value") else var.value
        last = str(path[-1])
        shape = tuple(sds.shape)
        if last == "scale":
            kind, fan_in = "ones", 1
        elif last in ("bias",) or last in ("cls", "pos"):
            kind, fan_in = "small", 1
        elif last == "embedding":
            kind, fan_in = "small", 1
        else:
            kind, fan_in = "dense", int(np.prod(shape[:-1])) if len(shape) > 1 else 1
        value = jnp.asarray(_fill(shape, sds.dtype, rng, fan_in, kind))
        flat.append((path, var.replace(value)))
    params = nnx.from_flat_state(flat) if hasattr(nnx, "from_flat_state") else \
        nnx.State.from_flat_path(flat)
    # The RNG state (dropout keys) is concrete in `rest` only abstractly: make
    # fresh streams with the same structure.
    rest = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype)
                        if not jax.dtypes.issubdtype(s.dtype, jax.dtypes.prng_key)
                        else jax.random.key(0), rest)
    model = nnx.merge(graphdef, params, rest)
    model.eval()
    return model


def example_input(name: str, seed: int = 1) -> np.ndarray:
    shape, dtype = INPUTS[name]
    rng = np.random.default_rng(seed)
    if dtype == np.int32:
        vocab = CONFIGS[name]["kw"]["vocab"]
        return rng.integers(0, vocab, size=shape, dtype=np.int32)
    return rng.standard_normal(shape, dtype=np.float32)


def n_params(model) -> tuple[int, int]:
    """(parameters, bytes) of the model's nnx.Param variables."""
    leaves = jax.tree.leaves(nnx.state(model, nnx.Param))
    return sum(int(np.prod(x.shape)) for x in leaves), sum(int(x.nbytes) for x in leaves)
