"""Attention as onnxruntime runs it fastest (issue 12; passes/fuse_attention.c).

Each case builds an attention layer with its library's own code (random
weights) and checks it against JAX (convert_and_check: the ONNX checker with
full_check, onnxruntime at B = 1, 3, 8, float32 rtol = atol = 1e-5), then the
form of the graph:

* every opset: a boolean mask is applied by Add (an additive mask computed
  once) and the zeroing of masked probabilities by Mul, not by Where over
  the scores: no Where reads a Softmax or feeds one;
* opset 23: one ONNX Attention per layer and no Softmax left; where the
  projections give the heads packed ([B, S, H*D]), no Transpose either.

Padding masks have a fully padded row, where a fused form that is exact
only for rows with a key would differ.
"""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from util import convert_and_check, op_counts

T = 16  # tokens


def masks_around_softmax(model) -> int:
    """Where nodes reading a Softmax's output or feeding a Softmax."""
    nodes = model.graph.node
    softmax_in = {n.input[0] for n in nodes if n.op_type == "Softmax"}
    softmax_out = {n.output[0] for n in nodes if n.op_type == "Softmax"}
    return sum(1 for n in nodes if n.op_type == "Where"
               and (n.output[0] in softmax_in or softmax_out & set(n.input)))


def _tokens(vocab):
    def gen(rng, shape, dtype, index):
        if index == 0:  # token ids
            return rng.integers(0, vocab, shape).astype(dtype)
        mask = np.ones(shape, dtype)  # padding: a padded tail, one row all padding
        mask[::2, shape[1] // 2:] = 0
        mask[-1, :] = 0
        return mask
    return gen


# ---- keras-hub backbones -------------------------------------------------------

def _keras_hub(name):
    import keras_hub
    kw = dict(vocabulary_size=300, num_layers=2, num_heads=4, hidden_dim=64,
              intermediate_dim=128)
    if name == "bert":
        return keras_hub.models.BertBackbone(max_sequence_length=T, **kw)
    return keras_hub.models.GPT2Backbone(max_sequence_length=T, **kw)


def _keras_hub_fn(model_obj, names):
    params = ([v.value for v in model_obj.trainable_variables],
              [v.value for v in model_obj.non_trainable_variables])

    def f(params, *xs):
        return model_obj.stateless_call(params[0], params[1], dict(zip(names, xs)),
                                        training=False)[0]
    return f, params


@pytest.mark.parametrize("opset", [20, 23])
@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_keras_hub_attention(name, opset):
    model_obj = _keras_hub(name)
    names = ["token_ids", "padding_mask"] + (["segment_ids"] if name == "bert" else [])
    f, params = _keras_hub_fn(model_obj, names)

    def gen(rng, shape, dtype, index):
        if index == 2:  # segment ids
            return (np.arange(shape[1])[None, :] >= shape[1] // 2).astype(dtype).repeat(shape[0], 0)
        return _tokens(300)(rng, shape, dtype, index)
    model = convert_and_check(f, [("B", T)] * len(names), params=params, opset=opset,
                              input_dtypes=[np.int32] * len(names), input_generator=gen)
    counts = op_counts(model)
    assert masks_around_softmax(model) == 0, dict(counts)
    if opset >= 23:
        assert counts["Attention"] == 2 and counts["Softmax"] == 0, dict(counts)
        if name == "bert":  # heads packed by the projections: no Transpose at all
            assert counts["Transpose"] == 0, dict(counts)
    else:
        assert counts["Softmax"] == 2 and counts["Attention"] == 0, dict(counts)


# ---- Flax, Equinox, plain JAX ----------------------------------------------------

def _causal_sdpa(scale_first: bool):
    """jnp attention over [B, T, H, D] with a causal mask written as Where."""
    rng = np.random.default_rng(1)
    wq, wk, wv = (rng.normal(0, 0.2, (64, 64)).astype(np.float32) for _ in range(3))
    causal = np.tril(np.ones((T, T), bool))

    def f(x):
        b = x.shape[0]
        q, k, v = ((x @ w).reshape(b, T, 4, 16) for w in (wq, wk, wv))
        if scale_first:
            q = q / 4.0
        s = jnp.einsum("bqhd,bkhd->bhqk", q, k)
        if not scale_first:
            s = s * 0.25
        s = jnp.where(causal, s, -1e9)
        p = jax.nn.softmax(s, axis=-1)
        return jnp.einsum("bhqk,bkhd->bqhd", p, v).reshape(b, T, 64)
    return f


def test_scaled_values_stay_out_of_the_scale():
    """A factor on V scales the output, not the scores: Attention's scale
    takes the factors of Q and K only."""
    rng = np.random.default_rng(5)
    wq, wk, wv = (rng.normal(0, 0.2, (64, 64)).astype(np.float32) for _ in range(3))

    def f(x):
        b = x.shape[0]
        q, k, v = ((x @ w).reshape(b, T, 4, 16) for w in (wq, wk, wv))
        s = jnp.einsum("bqhd,bkhd->bhqk", q * 0.5, k * 0.5)
        p = jax.nn.softmax(s, axis=-1)
        return jnp.einsum("bhqk,bkhd->bqhd", p, v * 3.0).reshape(b, T, 64)
    model = convert_and_check(f, [("B", T, 64)], opset=23)
    assert op_counts(model)["Softmax"] == 0, dict(op_counts(model))


@pytest.mark.parametrize("opset", [20, 23])
@pytest.mark.parametrize("scale_first", [True, False])
def test_jnp_causal_attention(scale_first, opset):
    f = _causal_sdpa(scale_first)
    model = convert_and_check(f, [("B", T, 64)], opset=opset)
    counts = op_counts(model)
    # a constant causal mask has a key in every row: no zeroing needed
    assert masks_around_softmax(model) == 0, dict(counts)
    if opset >= 23:
        assert counts["Attention"] == 1 and counts["Softmax"] == 0, dict(counts)


def test_heads_first_attention_with_padding():
    """q, k, v given as [B, H, S, D]: the 4-D Attention (mask expanded along
    the query axis, as onnxruntime's kernel wants it); the fully padded row
    stays 0 through the row-valid product."""
    def f(q, k, v, m):
        s = jnp.einsum("bhqd,bhkd->bhqk", q, k) * 0.3
        mask = (m[:, None, None, :] > 0)
        s = jnp.where(mask, s, -1e9)
        p = jnp.where(mask, jax.nn.softmax(s, axis=-1), 0.0)
        return jnp.einsum("bhqk,bhkd->bhqd", p, v)

    def gen(rng, shape, dtype, index):
        if index < 3:
            return rng.normal(size=shape).astype(dtype)
        return _tokens(2)(rng, shape, dtype, 1)
    for opset in (20, 23):
        model = convert_and_check(f, [("B", 4, T, 8)] * 3 + [("B", T)], opset=opset,
                                  input_dtypes=[np.float32] * 3 + [np.int32],
                                  input_generator=gen)
        counts = op_counts(model)
        assert masks_around_softmax(model) == 0, dict(counts)
        assert counts["Attention"] == (opset >= 23), dict(counts)


def test_minus_inf_mask_keeps_its_zeroing():
    """A -inf fill: a fully masked row is NaN before the zeroing Where, and
    NaN * 0 is NaN, so the zeroing stays a Where (and no Attention)."""
    def f(x, m):
        s = jnp.einsum("bqd,bkd->bqk", x, x)[:, None]
        mask = (m[:, None, None, :] > 0)
        s = jnp.where(mask, s, -jnp.inf)
        p = jnp.where(mask, jax.nn.softmax(s, axis=-1), 0.0)
        return jnp.einsum("bhqk,bkd->bhqd", p, x)

    def gen(rng, shape, dtype, index):
        if index == 0:
            return rng.normal(size=shape).astype(dtype)
        return _tokens(2)(rng, shape, dtype, 1)
    model = convert_and_check(f, [("B", T, 16), ("B", T)], opset=23,
                              input_dtypes=[np.float32, np.int32], input_generator=gen)
    counts = op_counts(model)
    assert counts["Attention"] == 0 and counts["Softmax"] == 1, dict(counts)


def _linen_self_attention():
    import flax.linen as nn
    layer = nn.SelfAttention(num_heads=4, qkv_features=64, deterministic=True)
    x = jnp.ones((1, T, 64))
    variables = layer.init(jax.random.PRNGKey(0), x)
    causal = nn.make_causal_mask(jnp.ones((1, T)))
    return (lambda v, x: layer.apply(v, x, mask=causal)), variables


def _nnx_attention():
    from flax import nnx
    layer = nnx.MultiHeadAttention(num_heads=4, in_features=64, qkv_features=64,
                                   decode=False, rngs=nnx.Rngs(0))
    causal = nnx.make_causal_mask(jnp.ones((1, T)))
    return (lambda x: layer(x, mask=causal, deterministic=True)), None


def _equinox_attention():
    import equinox as eqx
    layer = eqx.nn.MultiheadAttention(num_heads=4, query_size=64, key=jax.random.PRNGKey(0))
    causal = jnp.tril(jnp.ones((T, T), bool))
    return jax.vmap(lambda x: layer(x, x, x, mask=causal)), None


def _haiku_attention():
    """hk.MultiHeadAttention with a causal mask: its fill -1e30 absorbs the
    scores, so the mask is additive although Haiku builds it at run time
    (iota, compare) and zeroes nothing."""
    import haiku as hk

    def forward(x):
        causal = jnp.tril(jnp.ones((1, 1, T, T), bool))
        layer = hk.MultiHeadAttention(num_heads=4, key_size=16, model_size=64,
                                      w_init=hk.initializers.VarianceScaling(1.0))
        return layer(x, x, x, mask=causal)
    net = hk.without_apply_rng(hk.transform(forward))
    return net.apply, net.init(jax.random.PRNGKey(0), jnp.zeros((2, T, 64)))


def _bert_self_attention():
    """transformers' FlaxBertSelfAttention (a 1-layer tiny BertConfig) with a
    padding mask: a bias Where(m, 0, finfo.min) added to the scores, Q scaled
    before the head Transpose."""
    from transformers import BertConfig
    from transformers.models.bert.modeling_flax_bert import FlaxBertSelfAttention
    config = BertConfig(vocab_size=300, hidden_size=64, num_hidden_layers=1,
                        num_attention_heads=4, intermediate_size=128)
    layer = FlaxBertSelfAttention(config)
    variables = layer.init(jax.random.PRNGKey(0), jnp.ones((1, T, 64)),
                           jnp.ones((1, T), jnp.int32), None)
    return (lambda v, x, m: layer.apply(v, x, m, None, deterministic=True)[0]), variables


# nnx.MultiHeadAttention calls jax.nn.dot_product_attention: its grouped form
# [B, T, K, G, H] with G = 1 passes unit axes through Reshapes and Transposes
LIBRARY_CASES = [(_linen_self_attention, False), (_nnx_attention, False),
                 (_equinox_attention, False), (_haiku_attention, False),
                 (_bert_self_attention, True)]


def _hidden_and_padding(rng, shape, dtype, index):
    if index == 0:
        return rng.normal(size=shape).astype(dtype)
    return _tokens(2)(rng, shape, dtype, 1)


@pytest.mark.parametrize("opset", [20, 23])
@pytest.mark.parametrize("make, padding", LIBRARY_CASES,
                         ids=["linen SelfAttention", "nnx MultiHeadAttention",
                              "equinox MultiheadAttention", "haiku MultiHeadAttention",
                              "transformers FlaxBertSelfAttention"])
def test_library_attention(make, padding, opset):
    fn, params = make()
    kw = {"params": params} if params is not None else {}
    inputs = [("B", T, 64)]
    if padding:  # a padding mask (one row all padding) as the second input
        inputs.append(("B", T))
        kw.update(input_dtypes=[np.float32, np.int32], input_generator=_hidden_and_padding)
    model = convert_and_check(fn, inputs, opset=opset, **kw)
    counts = op_counts(model)
    assert masks_around_softmax(model) == 0, dict(counts)
    if opset >= 23:
        # the heads packed as the projections give them: no Transpose left
        assert counts["Attention"] == 1 and counts["Softmax"] == 0, dict(counts)
        assert counts["Transpose"] == 0, dict(counts)
    else:
        assert counts["Attention"] == 0 and counts["Softmax"] == 1, dict(counts)
        # heads to the batch axes for q, k, v and back: Equinox's vmapped
        # Linear layers (weight on the left) add none
        assert counts["Transpose"] == 4, dict(counts)


# ---- jax.nn.dot_product_attention and its grouped form ---------------------------

def _projections(kv_heads):
    rng = np.random.default_rng(6)
    wq = rng.normal(0, 0.2, (64, 64)).astype(np.float32)
    wk, wv = (rng.normal(0, 0.2, (64, kv_heads * 16)).astype(np.float32) for _ in range(2))

    def qkv(x):
        b = x.shape[0]
        return ((x @ wq).reshape(b, T, 4, 16), (x @ wk).reshape(b, T, kv_heads, 16),
                (x @ wv).reshape(b, T, kv_heads, 16))
    return qkv


@pytest.mark.parametrize("opset", [20, 23])
@pytest.mark.parametrize("mask", ["none", "causal", "is_causal", "padding"])
@pytest.mark.parametrize("kv_heads", [4, 2], ids=["G=1", "G=2"])
def test_dot_product_attention(kv_heads, mask, opset):
    """jax.nn.dot_product_attention with as many kv heads as query heads
    (G = 1 in its [B, T, K, G, H] form) and with 2 query heads per kv head
    (G = 2: GQA); its fill -0.7 * FLT_MAX absorbs the scores, so a padding
    mask needs no zeroing."""
    qkv = _projections(kv_heads)
    causal = jnp.tril(jnp.ones((T, T), bool))[None, None]

    def f(x, m):
        q, k, v = qkv(x)
        kw = {"none": {}, "causal": {"mask": causal}, "is_causal": {"is_causal": True},
              "padding": {"mask": m[:, None, None, :] > 0}}[mask]
        return jax.nn.dot_product_attention(q, k, v, **kw).reshape(x.shape[0], T, 64)
    model = convert_and_check(f, [("B", T, 64), ("B", T)], opset=opset,
                              input_dtypes=[np.float32, np.int32],
                              input_generator=_hidden_and_padding)
    counts = op_counts(model)
    assert masks_around_softmax(model) == 0, dict(counts)
    if opset >= 23:
        assert counts["Attention"] == 1 and counts["Softmax"] == 0, dict(counts)
        # Q, K, V straight from the projections, the output as the model
        # wants it: no head Transpose (G = 2: the mask, which jax.nn
        # materialises as [G, B, K, T, S], is moved to [B, K*G, T, S])
        attention = next(n for n in model.graph.node if n.op_type == "Attention")
        producers = {o: n.op_type for n in model.graph.node for o in n.output}
        assert [producers[i] for i in attention.input[:3]] == ["MatMul"] * 3, dict(counts)
        assert attention.output[0] == model.graph.output[0].name, dict(counts)
        if kv_heads == 4 or mask == "none":
            assert counts["Transpose"] == 0, dict(counts)
    else:
        assert counts["Softmax"] == 1 and counts["Attention"] == 0, dict(counts)
        # G = 2: scores [B, K, T*G, S] from one MatMul, no Transpose of them
        assert score_transposes(model) == 0, dict(counts)
        if kv_heads == 4:
            assert counts["Transpose"] == 4, dict(counts)


def _grouped_by_hand(fill, softmax_axis=-1, kv_heads=4):
    """jax.nn.dot_product_attention's [B, T, K, G, H] form (vmapped over G
    as jax.nn does) with its core written out: a fill and a softmax axis of
    our choosing."""
    qkv = _projections(kv_heads)
    causal = np.tril(np.ones((T, T), bool))

    def core(q, k, v):
        s = jnp.einsum("BTNH,BSNH->BNTS", q, k) * 0.25
        p = jax.nn.softmax(jnp.where(causal, s, fill), axis=softmax_axis)
        return jnp.einsum("BNTS,BSNH->BTNH", p, v)

    def f(x):
        q, k, v = qkv(x)
        q = q.reshape(x.shape[0], T, kv_heads, 4 // kv_heads, 16)
        grouped = jax.vmap(core, in_axes=(3, None, None), out_axes=3)
        return grouped(q, k, v).reshape(x.shape[0], T, 64)
    return f


GROUPED_CASES = {
    "G=1 mask -1e9": (_grouped_by_hand(-1e9), True),
    "G=1 fill -1 (no mask)": (_grouped_by_hand(-1.0), False),
    "G=1 softmax over queries": (_grouped_by_hand(-1e9, softmax_axis=-2), False),
    "G=2 mask -1e9": (_grouped_by_hand(-1e9, kv_heads=2), True),
    "G=2 fill -1 (no mask)": (_grouped_by_hand(-1.0, kv_heads=2), False),
    "G=2 softmax over queries": (_grouped_by_hand(-1e9, softmax_axis=-2, kv_heads=2), False),
}


@pytest.mark.parametrize("case", list(GROUPED_CASES))
def test_grouped_attention_near_misses(case):
    f, fused = GROUPED_CASES[case]
    model = convert_and_check(f, [("B", T, 64)], opset=23)
    counts = op_counts(model)
    assert counts["Attention"] == int(fused) and counts["Softmax"] == 1 - int(fused), dict(counts)


# ---- layouts: no Transpose of the scores (passes/matmul_layout.c) -------------

def score_transposes(model) -> int:
    """Transposes whose output reaches a Softmax through elementwise ops only:
    a transpose of the [.., S, S] scores."""
    nodes = model.graph.node
    readers = {}
    for n in nodes:
        for i in n.input:
            readers.setdefault(i, []).append(n)

    def reaches_softmax(value, depth=0):
        for r in readers.get(value, []):
            if r.op_type == "Softmax":
                return True
            if depth < 4 and r.op_type in ("Mul", "Div", "Add", "Where") and \
                    reaches_softmax(r.output[0], depth + 1):
                return True
        return False
    return sum(1 for n in nodes if n.op_type == "Transpose" and reaches_softmax(n.output[0]))


def _grouped_attention():
    """Grouped-query attention as keras-hub's Gemma writes it: one kv head,
    scores by einsum "btkgh,bskh->bkgts" (dot_general's order is (k, s, t, g):
    a Transpose of the scores, unless the operands are swapped)."""
    rng = np.random.default_rng(2)
    wq = rng.normal(0, 0.2, (64, 64)).astype(np.float32)
    wk, wv = (rng.normal(0, 0.2, (64, 16)).astype(np.float32) for _ in range(2))
    wo = rng.normal(0, 0.2, (4, 16, 64)).astype(np.float32)
    causal = np.tril(np.ones((T, T), bool))

    def f(x):
        b = x.shape[0]
        q = (x @ wq).reshape(b, T, 1, 4, 16) * 0.25
        k = (x @ wk).reshape(b, T, 1, 16)
        v = (x @ wv).reshape(b, T, 1, 16)
        s = jnp.einsum("btkgh,bskh->bkgts", q, k)
        s = jnp.where(causal, s, -1e9)
        p = jax.nn.softmax(s, axis=-1)
        o = jnp.einsum("bkgts,bskh->btkgh", p, v).reshape(b, T, 4, 16)
        return jnp.einsum("btnh,nhd->btd", o, wo)
    return f


def test_grouped_attention_scores_untransposed():
    model = convert_and_check(_grouped_attention(), [("B", T, 64)])
    counts = op_counts(model)
    assert score_transposes(model) == 0 and counts["Softmax"] == 1, dict(counts)
    assert masks_around_softmax(model) == 0, dict(counts)


def test_keras_hub_gemma_layout():
    import keras_hub
    model_obj = keras_hub.models.GemmaBackbone(
        vocabulary_size=300, num_layers=2, num_query_heads=4, num_key_value_heads=1,
        hidden_dim=64, intermediate_dim=128, head_dim=16)
    f, params = _keras_hub_fn(model_obj, ["token_ids", "padding_mask"])
    model = convert_and_check(f, [("B", T)] * 2, params=params, input_dtypes=[np.int32] * 2,
                              input_generator=_tokens(300))
    counts = op_counts(model)
    assert score_transposes(model) == 0 and counts["Softmax"] == 2, dict(counts)
    assert masks_around_softmax(model) == 0, dict(counts)


def test_equinox_mlp_without_transposes():
    """A vmapped Equinox MLP computes W @ x per example: dot_general with the
    weight on the left, the batch last, wrapped in Transposes that
    matmul_layout.c turns into Gemm(x, W, transB=1)."""
    import equinox as eqx
    mlp = eqx.nn.MLP(64, 32, 128, depth=2, activation=jax.nn.gelu, key=jax.random.PRNGKey(3))
    model = convert_and_check(jax.vmap(jax.vmap(mlp)), [("B", T, 64)])
    counts = op_counts(model)
    assert counts["Transpose"] == 0 and counts["Gemm"] == 3, dict(counts)


def test_equinox_conv_pool_without_transposes():
    """Equinox's Conv2d and MaxPool2d under jax.vmap: NCHW <-> NHWC Transposes
    with the vmapped unit axis between them, which only reshape in the end
    (layout_chains.c): no Transpose left."""
    import equinox as eqx
    keys = jax.random.split(jax.random.PRNGKey(4), 2)
    conv1 = eqx.nn.Conv2d(3, 8, 3, padding=1, key=keys[0])
    conv2 = eqx.nn.Conv2d(8, 16, 3, padding=1, key=keys[1])
    pool = eqx.nn.MaxPool2d(2, 2)

    def net(x):
        return conv2(pool(jax.nn.relu(conv1(x))))
    model = convert_and_check(jax.vmap(net), [("B", 3, 16, 16)])
    counts = op_counts(model)
    assert counts["Transpose"] == 0 and counts["Conv"] == 2 and counts["MaxPool"] == 1, \
        dict(counts)
