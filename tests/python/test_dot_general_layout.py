"""dot_general lowering (src/lower/linalg.c) against JAX on random inputs
(float32 rtol = atol = 1e-5, bf16 2e-2 since JAX rounds the product to bf16,
integers exactly) and onnx.checker (full_check).

A batched dot_general may be computed as rhs'.lhs' followed by a Transpose
back (swap_operands).  Random dimension numbers over small shapes (seeded):
batch dims in any order and position, several free and contracting dims,
unit dims, symbolic dims in every group, operands made by transposes,
results transposed or used twice, several element types, shape_info on
(value_info must be right).  Then empty operands, and dynamic dims that are
0 at run time.
"""

from __future__ import annotations

import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from util import convert_and_check_shapes, op_counts, run_ort


def _zero_size_sets(inputs):
    """Each symbol of inputs at 0 with the others at 2, then all at 0."""
    syms = sorted({d for spec in inputs for d in spec if isinstance(d, str)})
    return [{s: 0 if s == z else 2 for s in syms} for z in syms] + [dict.fromkeys(syms, 0)]




def random_dot_case(seed: int) -> dict:
    """Dimension numbers, operand shapes (ints and symbols) and the
    transposes around one dot_general.  Half the cases lay the operands out
    as rhs'.lhs' reads them (lhs [batch, contract, free], rhs [batch, free,
    contract]), where swap_operands fires."""
    r = random.Random(seed)
    nb, nc, nlf, nrf = r.randint(1, 3), r.randint(1, 2), r.randint(0, 2), r.randint(0, 2)
    bsz = [r.choice([1, 2, 3]) for _ in range(nb)]
    csz = [r.choice([1, 2, 3, 4]) for _ in range(nc)]
    lrank, rrank = nb + nc + nlf, nb + nc + nrf
    lpos, rpos = r.sample(range(lrank), lrank), r.sample(range(rrank), rrank)
    lb, lc, lf = lpos[:nb], lpos[nb:nb + nc], lpos[nb + nc:]
    rb, rc, rf = rpos[:nb], rpos[nb:nb + nc], rpos[nb + nc:]
    if r.random() < 0.5:
        lb = r.sample(range(nb), nb)
        rb = lb[:] if r.random() < 0.7 else r.sample(range(nb), nb)
        lc, lf = list(range(nb, nb + nc)), list(range(nb + nc, lrank))
        rf, rc = list(range(nb, nb + nrf)), list(range(nb + nrf, rrank))
        if r.random() < 0.5:
            r.shuffle(lc)
    lsh, rsh = [0] * lrank, [0] * rrank
    for i in range(nb):
        lsh[lb[i]] = rsh[rb[i]] = bsz[i]
    for i in range(nc):
        lsh[lc[i]] = rsh[rc[i]] = csz[i]
    for a in lf:
        lsh[a] = r.choice([1, 2, 3])
    for a in rf:
        rsh[a] = r.choice([1, 2, 5])
    syms = iter("BTSUVWXY")
    if r.random() < 0.6:  # symbolic dims, anywhere
        for i in range(nb):
            if r.random() < 0.3:
                lsh[lb[i]] = rsh[rb[i]] = next(syms)
        for i in range(nc):
            if r.random() < 0.3:
                lsh[lc[i]] = rsh[rc[i]] = next(syms)
        for a in lf:
            if r.random() < 0.3:
                lsh[a] = next(syms)
        for a in rf:
            if r.random() < 0.3:
                rsh[a] = next(syms)
    return dict(dn=((tuple(lc), tuple(rc)), (tuple(lb), tuple(rb))), lsh=lsh, rsh=rsh,
                lpre=r.sample(range(lrank), lrank) if r.random() < 0.3 else None,
                rpre=r.sample(range(rrank), rrank) if r.random() < 0.3 else None,
                post=r.choice([None, "transpose", "twice"]),
                opost=r.sample(range(nb + nlf + nrf), nb + nlf + nrf),
                dtype=r.choice(["f32", "f32", "f32", "i32", "i8", "bf16"]),
                optimize=r.random() < 0.75)


def _inv(p):
    q = [0] * len(p)
    for i, a in enumerate(p):
        q[a] = i
    return q


def build_dot_case(c):
    """The function and its input shapes (f32 inputs cast to bf16 inside)."""
    lin = [c["lsh"][i] for i in _inv(c["lpre"])] if c["lpre"] else c["lsh"]
    rin = [c["rsh"][i] for i in _inv(c["rpre"])] if c["rpre"] else c["rsh"]
    bf16 = c["dtype"] == "bf16"

    def f(x, y):
        if bf16:
            x, y = x.astype(jnp.bfloat16), y.astype(jnp.bfloat16)
        if c["lpre"]:
            x = jnp.transpose(x, c["lpre"])
        if c["rpre"]:
            y = jnp.transpose(y, c["rpre"])
        z = lax.dot_general(x, y, c["dn"])
        if c["post"] == "transpose":
            z = jnp.transpose(z, c["opost"])
        elif c["post"] == "twice":
            z = (z, jnp.transpose(z, c["opost"]))
        if bf16:
            z = jax.tree_util.tree_map(lambda a: a.astype(jnp.float32), z)
        if c["post"] == "twice":
            z = (z[0], z[1] * 2)
        return z

    dtype = {"f32": jnp.float32, "bf16": jnp.float32, "i32": jnp.int32, "i8": jnp.int8}
    return f, [tuple(lin), tuple(rin)], dtype[c["dtype"]]


@pytest.mark.parametrize("seed", range(48))
def test_random_dot_general(seed):
    c = random_dot_case(seed)
    f, inputs, dtype = build_dot_case(c)
    tol = 2e-2 if c["dtype"] == "bf16" else 1e-5
    convert_and_check_shapes(f, inputs, dtype=dtype, rtol=tol, atol=tol, optimize=c["optimize"])


def test_attention_value_weighting_swapped():
    """JAX's attention: v first, the weights second, the result transposed;
    computed as weights . v with no Transpose left but the one JAX asks for
    and the Reshape for the head split."""

    def f(w, v):  # w [B, N, T, S], v [B, S, N, H]
        z = lax.dot_general(v, w, (((1,), (3,)), ((0, 2), (0, 1))))  # [B, N, H, T]
        return jnp.transpose(z, (0, 3, 1, 2))  # [B, T, N, H]

    m = convert_and_check_shapes(f, [("B", 2, "T", "S"), ("B", "S", 2, 3)], optimize=False)
    assert op_counts(m)["MatMul"] == 1


def test_dot_general_operand_used_twice():
    def f(x):
        t = jnp.transpose(x, (0, 2, 1))
        return lax.dot_general(t, x, (((2,), (1,)), ((0,), (0,)))), t * 2

    convert_and_check_shapes(f, [("B", 3, 4)])


def test_dot_general_same_operand_both_sides():
    convert_and_check_shapes(lambda x: jnp.einsum("bij,bkj->bik", x, x), [("B", "T", 3)])


@pytest.mark.parametrize("name,fn,inputs", [
    ("contract0", lambda x, y: jnp.einsum("bmkj,bkjn->bmn", x, y), [("B", 2, 0, 3), ("B", 0, 3, 4)]),
    ("free0", lambda x, y: jnp.einsum("bmpk,bkn->bmpn", x, y), [("B", 2, 0, 3), ("B", 3, 4)]),
    ("contract0_nb0", lambda x, y: jnp.einsum("mkj,kjn->mn", x, y), [("B", 0, 3), (0, 3, 4)]),
    ("outer0", lambda x, y: jnp.einsum("bm,bn->bmn", x, y), [("B", 0), ("B", "T")]),
])
def test_dot_general_empty_operand_dynamic_result(name, fn, inputs):
    """A static 0 in an operand with a dynamic result used to reach the
    Reshapes, where a collapsed size 0 reads as "copy" (the checker failed:
    "Inferred shape and existing shape differ").  Now Expand(0) to the
    result's shape, read from the operands."""
    convert_and_check_shapes(fn, inputs)


ZERO_AT_RUN_TIME = [
    # free and contracted groups dynamic, the batch dim too
    ("groups", lambda x, y: lax.dot_general(x, y, (((3, 4), (1, 2)), ((0,), (0,)))),
     [("B", "T", 2, "S", 3), ("B", "S", 3, 4)]),
    # one dynamic group next to a dynamic batch dim (a -1 beside a copied 0)
    ("free_group", lambda x, y: lax.dot_general(x, y, (((3,), (1,)), ((0,), (0,)))),
     [("B", "T", 2, 3), ("B", 3, 4)]),
    ("rhs_free_group", lambda x, y: lax.dot_general(x, y, (((2,), (1,)), ((0,), (0,)))),
     [("B", 2, 3), ("B", 3, "T", 2)]),
    ("contract_group", lambda x, y: jnp.einsum("bmkj,bkjn->bmn", x, y),
     [("B", 2, "S", 3), ("B", "S", 3, 4)]),
    # no batch dims: lhs's free axes are kept, rhs's merged and split again
    ("nb0_rhs_free", lambda x, y: jnp.einsum("mk,knp->mnp", x, y), [("B", 3), (3, "T", 2)]),
    ("nb0_contract", lambda x, y: jnp.einsum("bmkj,kjn->bmn", x, y),
     [("B", 2, "S", 3), ("S", 3, 4)]),
    ("swapped", lambda v, w: jnp.transpose(
        lax.dot_general(v, w, (((1,), (3,)), ((0, 2), (0, 1)))), (0, 3, 1, 2)),
     [("B", "S", 2, 3), ("B", 2, "T", "S")]),
]


@pytest.mark.parametrize("name,fn,inputs", ZERO_AT_RUN_TIME, ids=[c[0] for c in ZERO_AT_RUN_TIME])
def test_dot_general_dynamic_dim_zero_at_run_time(name, fn, inputs):
    """Dynamic dims that are 0 at run time (each symbol 0 in turn, and all):
    dot_general's Reshapes spell every dim out (allowzero = 1) where a 0
    would be read as "copy" or make Reshape's -1 uninferable (0 / 0)."""
    rng = np.random.default_rng(0)
    for opt in (True, False):
        m = convert_and_check_shapes(fn, inputs, optimize=opt, batch_sizes=(0, 2))
        for sizes in _zero_size_sets(inputs):
            args = [rng.standard_normal([sizes.get(d, d) for d in spec]).astype(np.float32)
                    for spec in inputs]
            got = run_ort(m, *args)
            want = jax.tree_util.tree_leaves(fn(*args))
            assert [g.shape for g in got] == [w.shape for w in want], sizes
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=1e-5,
                                           err_msg=str(sizes))


def test_dot_general_static_reshape_targets_stay_constant():
    """Where no group of a Reshape is dynamic, or one is and every copied
    dim is static, the target stays one constant (0 copies, one -1): exact at
    any size, no Shape nodes."""
    m = convert_and_check_shapes(lambda x, y: jnp.einsum("bmkj,bkjn->bmn", x, y),
                                 [("B", 2, 5, 3), ("B", 5, 3, 4)])
    assert op_counts(m)["Shape"] == 0, dict(op_counts(m))
    m = convert_and_check_shapes(lambda x, y: lax.dot_general(x, y, (((3,), (1,)), ((0,), (0,)))),
                                 [(2, "T", 3, 4), (2, 4, 5)])
    assert op_counts(m)["Shape"] == 0, dict(op_counts(m))
