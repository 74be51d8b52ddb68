"""Findings of the differential fuzzer (tests/fuzz/differential.py), each the
minimal program hypothesis shrank it to, converted and compared with JAX by
convert_and_check (float32 rtol = atol = 1e-5; integers and booleans
exactly; dtypes must be JAX's).  docs/robustness.md lists them with their
fixes.

Findings that belong to issue 14's other parts (an ONNX op onnxruntime has
no kernel for at that element type, zero-size dims, bfloat16 accumulation)
are xfail here with the reason; their fixes come with those parts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from util import convert_and_check


def test_conv_lhs_dilation_padding_crops_everything():
    """A transposed convolution (lhs_dilation) whose negative padding leaves
    only positions no input reaches on one axis: the ConvTranspose had an
    output length <= 0 there, which onnxruntime refuses.  The result is all
    zeros; the ConvTranspose now keeps one element and Pad makes the zeros."""
    def f(x, w):
        return lax.conv_general_dilated(
            x, w, (2, 2), ((2, -1), (-1, 2)), lhs_dilation=(2, 2), rhs_dilation=(1, 2),
            dimension_numbers=("CNHW", "HWIO", "NCHW"))
    convert_and_check(f, [(1, 2, 1, 6), (2, 3, 1, 1)])


@pytest.mark.xfail(reason="issue 14 part 2 (empty tensors): jnp.pad's edge mode makes 1x0 "
                          "broadcasts even for zero pad widths, and onnxruntime's Expand of a "
                          "1x1 tensor to [1, 0] gives 1x1", strict=False)
def test_pad_edge_zero_widths():
    def f(x):
        return jnp.pad(lax.bitcast_convert_type(x, jnp.uint8), ((0, 0),), mode="edge")
    convert_and_check(f, [(1,)], input_dtypes=[np.int8])
