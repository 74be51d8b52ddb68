"""The example models of jax2onnx v0.1.0's "Examples" table, in Flax NNX.

Each class is built from the children the seed's table lists for it:

==================  ==========================================================
``MLP``             Linear, BatchNorm, Dropout, gelu (the README's MLP)
``MLPBlock``        Linear, gelu, Dropout: the MLP of a transformer block
``TransformerBlock``  LayerNorm, MultiHeadAttention, Dropout, MLPBlock (pre-LN)
``PatchEmbedding``  Reshape, Transpose, Linear: 4x4 patches -> tokens
``ConvEmbedding``   Conv, relu, LayerNorm, Reshape: strided convs -> tokens
``CNN``             Conv, relu, avg_pool, reshape, Linear, log_softmax
``CNN2``            Conv, LayerNorm, relu, max_pool, avg_pool, Dropout,
                    reshape, Linear, log_softmax
``ViT``             ConvEmbedding or PatchEmbedding, a class token, position
                    embeddings, TransformerBlocks, LayerNorm, the class
                    token's row (``x[:, 0]``), Linear, log_softmax
==================  ==========================================================

The layer sizes are smaller than the seed's (e.g. a ViT of width 32 with 2
blocks instead of 256 with 6), so that the ONNX files of all examples stay
small enough to keep in the repository; the structure is the same.

Images are NHWC, Flax's layout: ``(B, 28, 28, 1)`` for MNIST.  ONNX's Conv
and pools are NCHW; convert with ``inputs_as_nchw=True`` to get a model that
takes NCHW images (:func:`hlo2onnx.to_onnx`).
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np
from flax import nnx

__all__ = ["MLP", "MLPBlock", "TransformerBlock", "PatchEmbedding", "ConvEmbedding", "CNN",
           "CNN2", "ViT", "sinusoidal_positions"]


class MLP(nnx.Module):
    """Linear -> BatchNorm -> Dropout -> gelu (exact) -> Linear."""

    def __init__(self, din: int, dmid: int, dout: int, *, rngs: nnx.Rngs):
        self.layers = nnx.List([
            nnx.Linear(din, dmid, rngs=rngs),
            nnx.BatchNorm(dmid, rngs=rngs),
            nnx.Dropout(rate=0.1, rngs=rngs),
            lambda x: nnx.gelu(x, approximate=False),
            nnx.Linear(dmid, dout, rngs=rngs),
        ])

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class MLPBlock(nnx.Module):
    """The feed-forward part of a transformer block:
    Linear -> gelu (exact) -> Dropout -> Linear -> Dropout."""

    def __init__(self, num_hiddens: int, mlp_dim: int, dropout_rate: float = 0.1, *,
                 rngs: nnx.Rngs):
        self.up = nnx.Linear(num_hiddens, mlp_dim, rngs=rngs)
        self.down = nnx.Linear(mlp_dim, num_hiddens, rngs=rngs)
        self.dropout1 = nnx.Dropout(dropout_rate, rngs=rngs)
        self.dropout2 = nnx.Dropout(dropout_rate, rngs=rngs)

    def __call__(self, x):
        x = self.dropout1(nnx.gelu(self.up(x), approximate=False))
        return self.dropout2(self.down(x))


class TransformerBlock(nnx.Module):
    """A pre-LayerNorm encoder block ("Attention Is All You Need", with the
    norms before attention and MLP as in ViT):
    ``x + Dropout(MHA(LN(x)))``, then ``x + MLPBlock(LN(x))``."""

    def __init__(self, num_hiddens: int, num_heads: int, mlp_dim: int,
                 dropout_rate: float = 0.1, *, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(num_hiddens, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(
            num_heads=num_heads, in_features=num_hiddens, qkv_features=num_hiddens,
            out_features=num_hiddens, decode=False, rngs=rngs)
        self.dropout = nnx.Dropout(dropout_rate, rngs=rngs)
        self.norm2 = nnx.LayerNorm(num_hiddens, rngs=rngs)
        self.mlp = MLPBlock(num_hiddens, mlp_dim, dropout_rate, rngs=rngs)

    def __call__(self, x):
        x = x + self.dropout(self.attention(self.norm1(x)))
        return x + self.mlp(self.norm2(x))


class PatchEmbedding(nnx.Module):
    """Cuts an NHWC image into ``patch_size`` x ``patch_size`` patches and
    embeds each linearly: ``(B, H, W, C) -> (B, H/p * W/p, num_hiddens)``."""

    def __init__(self, height: int, width: int, patch_size: int, num_hiddens: int,
                 in_features: int, *, rngs: nnx.Rngs):
        self.grid = (height // patch_size, width // patch_size)
        self.patch_size = patch_size
        self.linear = nnx.Linear(patch_size * patch_size * in_features, num_hiddens, rngs=rngs)

    def __call__(self, x):
        (gh, gw), p = self.grid, self.patch_size
        b, c = x.shape[0], x.shape[-1]
        x = x.reshape(b, gh, p, gw, p, c)
        x = jnp.transpose(x, (0, 1, 3, 2, 4, 5))  # (B, gh, gw, p, p, C): patch-major
        x = x.reshape(b, gh * gw, p * p * c)
        return self.linear(x)


class ConvEmbedding(nnx.Module):
    """Convolutional token embedding with hierarchical downsampling: three
    3x3 convolutions (strides 1, 2, 2) with relu, a LayerNorm over the whole
    feature map, and the map's pixels as tokens:
    ``(B, H, W, 1) -> (B, H/4 * W/4, features[-1])``."""

    def __init__(self, height: int = 28, width: int = 28, features=(8, 16, 32),
                 strides=(1, 2, 2), in_features: int = 1, *, rngs: nnx.Rngs):
        chans = (in_features, *features)
        self.convs = nnx.List([
            nnx.Conv(chans[i], chans[i + 1], kernel_size=(3, 3), strides=(s, s),
                     padding="SAME", rngs=rngs)
            for i, s in enumerate(strides)])
        h, w = height, width
        for s in strides:
            h, w = math.ceil(h / s), math.ceil(w / s)
        # The seed normalizes each example over its whole (H, W, C) map, with
        # one scale and bias per element of the map.
        self.norm = nnx.LayerNorm(h * w * features[-1], reduction_axes=(1, 2, 3),
                                  feature_axes=(1, 2, 3), rngs=rngs)

    def __call__(self, x):
        for conv in self.convs:
            x = nnx.relu(conv(x))
        x = self.norm(x)
        b, h, w, c = x.shape
        return x.reshape(b, h * w, c)


class CNN(nnx.Module):
    """The MNIST CNN of the Flax tutorial: two (Conv 3x3 -> relu -> avg_pool
    2x2) stages, flatten, Linear -> relu -> Linear -> log_softmax.

    ``height`` and ``width`` must be multiples of 4 (28 for MNIST, 8 for
    scikit-learn's digits)."""

    def __init__(self, height: int = 28, width: int = 28, features=(8, 16), hidden: int = 32,
                 num_classes: int = 10, *, rngs: nnx.Rngs):
        self.conv1 = nnx.Conv(1, features[0], kernel_size=(3, 3), padding="SAME", rngs=rngs)
        self.conv2 = nnx.Conv(features[0], features[1], kernel_size=(3, 3), padding="SAME",
                              rngs=rngs)
        flat = (height // 4) * (width // 4) * features[1]
        self.linear1 = nnx.Linear(flat, hidden, rngs=rngs)
        self.linear2 = nnx.Linear(hidden, num_classes, rngs=rngs)

    def __call__(self, x):
        x = nnx.avg_pool(nnx.relu(self.conv1(x)), window_shape=(2, 2), strides=(2, 2))
        x = nnx.avg_pool(nnx.relu(self.conv2(x)), window_shape=(2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        x = nnx.relu(self.linear1(x))
        return nnx.log_softmax(self.linear2(x))


class CNN2(nnx.Module):
    """The seed's second MNIST CNN: two stages of (Conv -> LayerNorm -> relu)
    x 2 -> pool -> Dropout (the first pool a max_pool, the second an
    avg_pool), flatten, then (Linear -> LayerNorm -> relu -> Dropout) x 2 ->
    Linear -> log_softmax.  The convolutional LayerNorms normalize over the
    whole (H, W, C) map, as in the seed."""

    def __init__(self, height: int = 28, width: int = 28, features=(4, 8), hidden: int = 32,
                 num_classes: int = 10, dropout_rate: float = 0.5, *, rngs: nnx.Rngs):
        def conv_norm(cin, cout, h, w):
            return (nnx.Conv(cin, cout, kernel_size=(3, 3), padding="SAME", rngs=rngs),
                    nnx.LayerNorm(h * w * cout, reduction_axes=(1, 2, 3),
                                  feature_axes=(1, 2, 3), rngs=rngs))

        f1, f2 = features
        h, w = height, width
        self.stage1 = nnx.List([*conv_norm(1, f1, h, w), *conv_norm(f1, f1, h, w)])
        h, w = h // 2, w // 2
        self.stage2 = nnx.List([*conv_norm(f1, f2, h, w), *conv_norm(f2, f2, h, w)])
        h, w = h // 2, w // 2
        self.dropout1 = nnx.Dropout(dropout_rate, rngs=rngs)
        self.dropout2 = nnx.Dropout(dropout_rate, rngs=rngs)
        self.dense = nnx.List([
            nnx.Linear(h * w * f2, hidden, rngs=rngs), nnx.LayerNorm(hidden, rngs=rngs),
            nnx.Linear(hidden, hidden, rngs=rngs), nnx.LayerNorm(hidden, rngs=rngs)])
        self.dropout3 = nnx.Dropout(dropout_rate / 2, rngs=rngs)
        self.dropout4 = nnx.Dropout(dropout_rate, rngs=rngs)
        self.head = nnx.Linear(hidden, num_classes, rngs=rngs)

    @staticmethod
    def _conv_stage(layers, x):
        for i in range(0, len(layers), 2):
            x = nnx.relu(layers[i + 1](layers[i](x)))
        return x

    def __call__(self, x):
        x = nnx.max_pool(self._conv_stage(self.stage1, x), window_shape=(2, 2),
                         strides=(2, 2), padding="VALID")
        x = self.dropout1(x)
        x = nnx.avg_pool(self._conv_stage(self.stage2, x), window_shape=(2, 2),
                         strides=(2, 2), padding="VALID")
        x = self.dropout2(x)
        x = x.reshape(x.shape[0], -1)
        x = self.dropout3(nnx.relu(self.dense[1](self.dense[0](x))))
        x = self.dropout4(nnx.relu(self.dense[3](self.dense[2](x))))
        return nnx.log_softmax(self.head(x))


def sinusoidal_positions(length: int, width: int) -> np.ndarray:
    """The sine/cosine position encodings of "Attention Is All You Need":
    shape ``(1, length, width)``, float32."""
    pos = np.arange(length, dtype=np.float64)[:, None]
    freq = np.exp(np.arange(0, width, 2, dtype=np.float64) * (-math.log(10000.0) / width))
    table = np.zeros((length, width))
    table[:, 0::2] = np.sin(pos * freq)
    table[:, 1::2] = np.cos(pos * freq)[:, : width // 2]
    return table[None].astype(np.float32)


class ViT(nnx.Module):
    """A Vision Transformer for MNIST: the image becomes tokens (``embedding``
    "conv": :class:`ConvEmbedding`, "patch": :class:`PatchEmbedding` with 4x4
    patches), a learned class token is prepended and position encodings
    added, then ``num_layers`` :class:`TransformerBlock` s, a LayerNorm, and
    the class token's row through a Linear head and log_softmax."""

    def __init__(self, height: int = 28, width: int = 28, *, embedding: str = "conv",
                 num_hiddens: int = 32, num_layers: int = 2, num_heads: int = 4,
                 mlp_dim: int = 64, num_classes: int = 10, dropout_rate: float = 0.1,
                 patch_size: int = 4, in_features: int = 1, rngs: nnx.Rngs):
        self.embedding: ConvEmbedding | PatchEmbedding
        if embedding == "conv":
            self.embedding = ConvEmbedding(height, width, (8, 16, num_hiddens),
                                           in_features=in_features, rngs=rngs)
            tokens = math.ceil(height / 4) * math.ceil(width / 4)
        elif embedding == "patch":
            self.embedding = PatchEmbedding(height, width, patch_size, num_hiddens, in_features,
                                            rngs=rngs)
            tokens = (height // patch_size) * (width // patch_size)
        else:
            raise ValueError(f"embedding must be 'conv' or 'patch', not {embedding!r}")
        self.cls_token = nnx.Param(jnp.zeros((1, 1, num_hiddens)))
        self.positions = nnx.Param(jnp.asarray(sinusoidal_positions(tokens + 1, num_hiddens)))
        self.blocks = nnx.List([
            TransformerBlock(num_hiddens, num_heads, mlp_dim, dropout_rate, rngs=rngs)
            for _ in range(num_layers)])
        self.norm = nnx.LayerNorm(num_hiddens, rngs=rngs)
        self.head = nnx.Linear(num_hiddens, num_classes, rngs=rngs)

    def __call__(self, x):
        x = self.embedding(x)
        cls = jnp.tile(self.cls_token[...], (x.shape[0], 1, 1))
        x = jnp.concatenate([cls, x], axis=1) + self.positions[...]
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return nnx.log_softmax(self.head(x[:, 0, :]))
