"""Every component of the registry (hlo2onnx/components/*.py), case by case.

The cases are discovered from :mod:`hlo2onnx.registry`; adding a component or
a case there adds a test here (its id is the case name).  Each case is
converted, checked with onnx.checker (full_check), checked for the ONNX ops
its component expects and forbids (and named graph checks such as "no
cancelling Transpose pairs"), and compared with JAX on random inputs by
onnxruntime, symbolic batch dimensions at 1, 3 and 8.  Tolerance: float32
rtol = atol = 1e-5 unless the case states otherwise (and why).

The README's components table shows the same results
(tests/python/test_readme_tables.py; ``python -m hlo2onnx.tables``).
"""

from __future__ import annotations

import pytest

from hlo2onnx import registry
from util import check_case

pytest.importorskip("flax")
pytest.importorskip("onnxruntime")

CASES = list(registry.all_cases(None))


@pytest.mark.parametrize("component,case", CASES, ids=[case.name for _, case in CASES])
def test_case(component, case):
    check_case(component, case)


# The components and case names of the jax2onnx v0.1.0 README, which we
# must all cover (we may have more).
SEED = {
    "flax.nnx.BatchNorm": ["batchnorm"],
    "flax.nnx.Conv": ["conv_3x3_1", "conv_3x3_2", "conv_3x3_3"],
    "flax.nnx.Dropout": ["dropout", "dropout_1d", "dropout_2d", "dropout_3d", "dropout_4d",
                         "dropout_high", "dropout_low"],
    "flax.nnx.LayerNorm": ["layernorm_default", "layernorm_multiaxis"],
    "flax.nnx.Linear": ["linear", "linear_2d"],
    "flax.nnx.LinearGeneral": ["linear_general", "linear_general_2",
                               "linear_general_mha_projection",
                               "linear_general_mha_projection2"],
    "flax.nnx.MultiHeadAttention": ["multihead_attention"],
    "flax.nnx.avg_pool": ["avg_pool"],
    "flax.nnx.dot_product_attention": ["dot_product_attention",
                                       "dot_product_attention_shape_check",
                                       "dot_product_attention_softmax_axis"],
    "flax.nnx.elu": ["elu"],
    "flax.nnx.gelu": ["gelu", "gelu2", "gelu3"],
    "flax.nnx.leaky_relu": ["leaky_relu"],
    "flax.nnx.log_softmax": ["log_softmax"],
    "flax.nnx.max_pool": ["max_pool"],
    "flax.nnx.relu": ["relu"],
    "flax.nnx.sigmoid": ["sigmoid"],
    "flax.nnx.softmax": ["softmax"],
    "flax.nnx.softplus": ["softplus"],
    "flax.nnx.tanh": ["tanh"],
    "jax.lax.broadcast": ["broadcast_a", "broadcast_b"],
    "jax.lax.gather": ["gather_tf_out"],
    "jax.lax.slice": ["slice_basic", "slice_last_column", "slice_out_of_bounds",
                      "slice_single_element", "slice_with_stride"],
    "jax.numpy.add": ["add"],
    "jax.numpy.concat": ["concat"],
    "jax.numpy.einsum": ["einsum_attention", "einsum_batch_matmul",
                         "einsum_dynamic_batch_matmul", "einsum_dynamic_batch_matmul_batched",
                         "einsum_matmul", "einsum_matmul_static"],
    "jax.numpy.matmul": ["matmul_2d", "matmul_3d", "matmul_4d"],
    "jax.numpy.reshape": ["reshapeA", "reshapeB", "reshapeC", "reshapeD", "reshapeE"],
    "jax.numpy.squeeze": ["squeeze_dynamic_batch", "squeeze_multiple_dims",
                          "squeeze_single_dim", "squeeze_vit_output"],
    "jax.numpy.tile": ["tile_a", "tile_b", "tile_c"],
    "jax.numpy.transpose": ["transpose_4d", "transpose_basic", "transpose_high_dim",
                            "transpose_reverse", "transpose_square_matrix"],
}


def test_registry_covers_the_seed():
    have = {c.jax_component: {k.name for k in c.cases} for c in registry.components()}
    missing = {comp: sorted(set(names) - have.get(comp, set()))
               for comp, names in SEED.items() if set(names) - have.get(comp, set())}
    assert not missing, f"components/cases of jax2onnx v0.1.0 not registered: {missing}"


def test_registry_entries_are_complete():
    for comp in registry.components(None):
        assert comp.docs_url.startswith("https://"), comp.jax_component
        assert comp.since.startswith("v"), comp.jax_component
        for case in comp.cases:
            if case.dynamic:
                assert len(case.batch_sizes) >= 2, case.name
