"""Linear algebra I (src/lower/lapack_lu.c): LU with partial pivoting, triangular
solves and Cholesky - the LAPACK custom_calls JAX emits on CPU
(lapack_{s,d}getrf_ffi, trsm_ffi, potrf_ffi), stablehlo.triangular_solve, and
what exports for CUDA and TPU call instead - through jnp.linalg (solve, inv,
det, slogdet, cholesky) and jax.scipy.linalg (lu, lu_factor, lu_solve,
cholesky, cho_factor, cho_solve, solve_triangular).

Each case converts a function, runs ``onnx.checker`` (full check), and
compares onnxruntime with JAX on the CPU (LAPACK) for float32 and float64,
unbatched and with leading batch axes, n from 1 to 64.

Inputs and tolerances.  "Well-conditioned" matrices are Q1 diag(s) Q2 with
random orthogonal Q1, Q2 and singular values s in [1, 10] (condition number
at most 10): partial pivoting still swaps rows (unlike a diagonally dominant
matrix), and forward errors stay within a small multiple of the rounding.
Our Loop computes what LAPACK computes (same pivots, same formulas) but in
another summation order (LAPACK's kernels are blocked and partly left-looking),
so results differ by rounding that grows with the n-term sums:
TOL = 1e-5 (f32) and 1e-12 (f64), times max(1, n / 8), relative and
absolute.  Ill-conditioned matrices (condition number 1e6 in f32, 1e12 in
f64) amplify those rounding differences in the factors and solutions, so
there the test checks what LU is accurate for whatever the conditioning -
backward error: |P^T L U - A| and the residual |A x - b| within
8 n eps |A| (|x|) - and that the pivots are LAPACK's.  Singular and
non-positive-definite inputs are compared with JAX exactly (zeros, NaNs).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl
import numpy as np
import pytest
from jax import export, lax

import hlo2onnx
from util import check_model, convert_and_check, op_counts, run_ort

F32, F64 = np.float32, np.float64
DTYPES = [pytest.param(F32, id="f32"), pytest.param(F64, id="f64")]
EPS = {F32: float(np.finfo(F32).eps), F64: float(np.finfo(F64).eps)}


def tol(dtype, n):
    """Rounding of LAPACK vs. the Loop's summation order: see the module doc."""
    return (1e-5 if dtype == F32 else 1e-12) * max(1.0, n / 8)


def well_conditioned(rng, shape, dtype, smin=1.0, smax=10.0):
    *batch, n, m = shape
    k = min(n, m)
    q1, _ = np.linalg.qr(rng.standard_normal((*batch, n, n)))
    q2, _ = np.linalg.qr(rng.standard_normal((*batch, m, m)))
    s = np.linspace(smax, smin, k)
    return ((q1[..., :, :k] * s) @ q2[..., :k, :]).astype(dtype)


def ill_conditioned(rng, n, cond, dtype):
    q1, _ = np.linalg.qr(rng.standard_normal((n, n)))
    q2, _ = np.linalg.qr(rng.standard_normal((n, n)))
    return ((q1 * np.logspace(0, -np.log10(cond), n)) @ q2.T).astype(dtype)


def spd(rng, shape, dtype):
    """Symmetric positive definite with eigenvalues in [1, 10]."""
    *batch, n, _ = shape
    q, _ = np.linalg.qr(rng.standard_normal((*batch, n, n)))
    return ((q * np.linspace(10, 1, n)) @ np.swapaxes(q, -1, -2)).astype(dtype)


def convert(fn, args):
    """The checked model of fn at these example inputs, and its outputs on them."""
    model = hlo2onnx.to_onnx(fn, list(args))
    check_model(model)
    return model, run_ort(model, *args)


def assert_matches_jax(fn, args, *, rtol, atol, x64):
    """onnxruntime's outputs equal JAX's (NaN where JAX has NaN); the model."""
    with jax.enable_x64(x64):
        model, got = convert(fn, args)
        want = [np.asarray(w) for w in jax.tree_util.tree_leaves(fn(*args))]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape, (g.dtype, g.shape, w.dtype, w.shape)
        np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, equal_nan=True)
    return model


def _cho_solve(a, b):
    return jsl.cho_solve(jsl.cho_factor(a), b)


def _lu_solve(a, b):
    return jsl.lu_solve(jsl.lu_factor(a), b)


# name -> (function, its inputs: "a" well-conditioned, "spd" positive definite,
# "tri" triangular; "b": and a right-hand side)
FUNCTIONS = {
    "lu_factor": (jsl.lu_factor, "a"),
    "lax_lu": (lax.linalg.lu, "a"),  # packed LU, pivots, permutation
    "solve": (jnp.linalg.solve, "ab"),
    "inv": (jnp.linalg.inv, "a"),
    "det": (jnp.linalg.det, "a"),
    "slogdet": (jnp.linalg.slogdet, "a"),
    "lu_solve": (_lu_solve, "ab"),
    "cholesky": (jnp.linalg.cholesky, "spd"),
    "cholesky_upper": (lambda a: jsl.cholesky(a, lower=False), "spd"),
    "cho_factor": (lambda a: jsl.cho_factor(a, lower=True)[0], "spd"),
    "cho_solve": (_cho_solve, "spdb"),
    "solve_triangular": (lambda a, b: jsl.solve_triangular(a, b, lower=True), "trib"),
}


def inputs_for(kind, rng, batch, n, dtype):
    if kind.startswith("spd"):
        a = spd(rng, (*batch, n, n), dtype)
    elif kind.startswith("tri"):
        # a Cholesky factor of an SPD matrix of condition <= 10: condition
        # <= sqrt(10) (a random triangle's grows like 2^n); the upper
        # triangle filled too, which the solve must not read
        a = np.linalg.cholesky(spd(rng, (*batch, n, n), F64))
        a = (a + np.swapaxes(np.tril(a, -1), -1, -2) * 3).astype(dtype)
    else:
        a = well_conditioned(rng, (*batch, n, n), dtype)
    if kind.endswith("b"):
        return a, rng.standard_normal((*batch, n, 3)).astype(dtype)
    return (a,)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", list(FUNCTIONS))
@pytest.mark.parametrize("batch,n", [((), 1), ((), 5), ((3,), 4), ((2, 2), 16), ((), 64)],
                         ids=["n1", "n5", "b3_n4", "b2x2_n16", "n64"])
def test_well_conditioned(name, batch, n, dtype):
    fn, kind = FUNCTIONS[name]
    rng = np.random.default_rng(n * 10 + len(batch))
    args = inputs_for(kind, rng, batch, n, dtype)
    t = tol(dtype, n)
    if name == "det":
        # det multiplies n diagonal values: relative error up to n rounding
        # errors, and its size varies (atol 0: a relative comparison)
        assert_matches_jax(fn, args, rtol=t, atol=0, x64=dtype == F64)
        return
    model = assert_matches_jax(fn, args, rtol=t, atol=t, x64=dtype == F64)
    if n >= 4:  # JAX writes det of n <= 3 (slogdet: n <= 2) out as formulas
        assert op_counts(model)["Loop"] >= 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_pivots_and_factors_match_lapack(dtype):
    """The packed LU and the pivots of getrf at n = 64: LAPACK's pivot rule
    (first largest magnitude), so the same pivots; the factors agree to
    rounding.  Rectangular matrices too (lax.linalg.lu)."""
    rng = np.random.default_rng(7)
    a = rng.standard_normal((64, 64)).astype(dtype)
    with jax.enable_x64(dtype == F64):
        _, (lu, piv) = convert(jsl.lu_factor, [a])
        want_lu, want_piv = map(np.asarray, jsl.lu_factor(a))
    np.testing.assert_array_equal(piv, want_piv)
    # random normal, not well-conditioned: |U| grows to ~ 10, so 10 x TOL
    np.testing.assert_allclose(lu, want_lu, rtol=10 * tol(dtype, 64), atol=10 * tol(dtype, 64))
    for shape in [(3, 7), (7, 3), (2, 4, 6), (2, 6, 4)]:
        a = well_conditioned(rng, shape, dtype)
        assert_matches_jax(lax.linalg.lu, [a], rtol=tol(dtype, 8), atol=tol(dtype, 8),
                           x64=dtype == F64)


def _permutation(piv, n):
    perm = np.arange(n)
    for i, p in enumerate(piv):
        perm[[i, p]] = perm[[p, i]]
    return perm


@pytest.mark.parametrize("dtype", DTYPES)
def test_ill_conditioned(dtype):
    """Backward errors (see the module doc): P L U = A and A x = b to 8 n eps."""
    n = 32
    rng = np.random.default_rng(11)
    cond = 1e6 if dtype == F32 else 1e12
    a = ill_conditioned(rng, n, cond, dtype)
    b = rng.standard_normal((n, 2)).astype(dtype)
    bound = 8 * n * EPS[dtype]
    with jax.enable_x64(dtype == F64):
        _, (lu, piv) = convert(jsl.lu_factor, [a])
        want_piv = np.asarray(jsl.lu_factor(a)[1])
        _, (x,) = convert(jnp.linalg.solve, [a, b])
        _, (xt,) = convert(lambda a, b: jsl.solve_triangular(a, b, lower=False),
                           [np.triu(lu), b])
        _, (c,) = convert(jnp.linalg.cholesky, [(a @ a.T).astype(dtype) + np.eye(n, dtype=dtype)])
    np.testing.assert_array_equal(piv, want_piv)
    lo, up = np.tril(lu, -1) + np.eye(n), np.triu(lu)
    a64 = a.astype(F64)
    recon = np.abs(lo.astype(F64) @ up - a64[_permutation(piv, n)]).max()
    assert recon <= bound * np.abs(a64).max(), recon
    residual = np.abs(a64 @ x - b).max()
    assert residual <= bound * np.abs(a64).max() * np.abs(x).max() * n, residual
    residual_t = np.abs(np.triu(lu).astype(F64) @ xt - b).max()
    assert residual_t <= bound * np.abs(up).max() * np.abs(xt).max() * n, residual_t
    m = (a64 @ a64.T) + np.eye(n)
    chol_recon = np.abs(c.astype(F64) @ c.T - m).max()
    assert chol_recon <= bound * np.abs(m).max(), chol_recon


@pytest.mark.parametrize("dtype", DTYPES)
def test_singular(dtype):
    """Exactly singular: JAX's det is 0 and lu_factor's zero pivot stays in U
    (LAPACK's info > 0; the column is not scaled); a zero matrix too."""
    s = np.array([[1, 2, 3, 4], [2, 4, 6, 8], [1, 0, 1, 0], [0, 1, 1, 2]], dtype)
    z = np.zeros((3, 3), dtype)
    x64 = dtype == F64
    for a in (s, z, np.stack([s, np.eye(4, dtype=dtype)])):
        assert_matches_jax(jnp.linalg.det, [a], rtol=0, atol=0, x64=x64)
        assert_matches_jax(jnp.linalg.slogdet, [a], rtol=0, atol=0, x64=x64)
        assert_matches_jax(lax.linalg.lu, [a], rtol=0, atol=0, x64=x64)
    with jax.enable_x64(x64):
        assert float(jnp.linalg.det(s)) == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
def test_cholesky_not_positive_definite(dtype):
    """JAX fills the factor with NaN where potrf's info != 0; per batch
    element.  Negative and zero leading minors; a NaN on the diagonal is no
    failure for OpenBLAS (under jaxlib), whose NaNs JAX then returns."""
    rng = np.random.default_rng(5)
    good = spd(rng, (4, 4), dtype)
    bad = np.array([[1, 2, 0, 0], [2, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype)
    semi = np.zeros((4, 4), dtype)
    with_nan = good.copy()
    with_nan[2, 2] = np.nan
    batch = np.stack([good, bad, semi, with_nan])
    for fn in (jnp.linalg.cholesky, lambda a: jsl.cho_factor(a)[0],
               lambda a: jsl.cholesky(a, lower=False)):
        for a in (bad, batch):
            assert_matches_jax(fn, [a], rtol=tol(dtype, 4), atol=tol(dtype, 4),
                               x64=dtype == F64)


TRI_CASES = [(left, lower, trans, unit) for left in (True, False) for lower in (True, False)
             for trans in (0, 1, 2) for unit in (False, True)]


def _tri(left, lower, trans, unit):
    return lambda a, b: lax.linalg.triangular_solve(
        a, b, left_side=left, lower=lower, transpose_a=trans > 0, conjugate_a=trans == 2,
        unit_diagonal=unit)


def _tri_inputs(left, dtype, rng, n=6, batch=(2,)):
    # both triangles filled: only the one the solve names may be read
    a = (rng.standard_normal((*batch, n, n)) + 4 * np.eye(n)).astype(dtype)
    b = rng.standard_normal((*batch, n, 3) if left else (*batch, 3, n)).astype(dtype)
    return a, b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("left,lower,trans,unit", TRI_CASES,
                         ids=[f"{'left' if c[0] else 'right'}-{'lower' if c[1] else 'upper'}-"
                              f"{('N', 'T', 'C')[c[2]]}-{'unit' if c[3] else 'diag'}"
                              for c in TRI_CASES])
def test_triangular_solve_lapack(left, lower, trans, unit, dtype):
    """lapack_?trsm_ffi with each side, triangle, transpose and diagonal."""
    rng = np.random.default_rng(3)
    args = _tri_inputs(left, dtype, rng)
    assert_matches_jax(_tri(left, lower, trans, unit), args, rtol=tol(dtype, 6),
                       atol=tol(dtype, 6), x64=dtype == F64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("left,lower,trans,unit", TRI_CASES[::3] + [TRI_CASES[-1]])
def test_triangular_solve_op(left, lower, trans, unit, dtype):
    """stablehlo.triangular_solve, as exported for GPU, compared with JAX on the
    CPU (LAPACK): the same solve."""
    rng = np.random.default_rng(4)
    args = _tri_inputs(left, dtype, rng)
    fn = _tri(left, lower, trans, unit)
    with jax.enable_x64(dtype == F64):
        exp = export.export(jax.jit(fn), platforms=["cuda"])(*args)
        assert "stablehlo.triangular_solve" in exp.mlir_module()
        model = hlo2onnx.to_onnx(exp)
        check_model(model)
        (got,) = run_ort(model, *args)
        want = np.asarray(fn(*args))
    np.testing.assert_allclose(got, want, rtol=tol(dtype, 6), atol=tol(dtype, 6))


def test_triangular_solve_f16():
    """On CPU JAX emits stablehlo.triangular_solve for float16 (LAPACK has
    none); tolerance 1e-2: float16's eps is 1e-3 and XLA's expansion rounds
    in another order."""
    rng = np.random.default_rng(6)
    a, b = _tri_inputs(True, np.float16, rng, n=5, batch=())
    fn = lambda a, b: jsl.solve_triangular(a, b, lower=True)  # noqa: E731
    assert "stablehlo.triangular_solve" in jax.jit(fn).lower(a, b).as_text()
    assert_matches_jax(fn, [a, b], rtol=1e-2, atol=1e-2, x64=False)


@pytest.mark.parametrize("name", ["solve", "inv", "det", "slogdet", "lax_lu", "cholesky"])
def test_dynamic_batch(name):
    """A symbolic batch axis ("B"): JAX passes the result shapes as extra
    operands of the custom_call, which the Loop does not need."""
    fn, kind = FUNCTIONS[name]
    n = 5
    shapes = [("B", n, n)] + ([("B", n, 3)] if kind.endswith("b") else [])

    def gen(rng, shape, dtype, index):
        if index == 1:
            return rng.standard_normal(shape).astype(dtype)
        return (spd if kind.startswith("spd") else well_conditioned)(rng, shape, dtype)

    # det: relative error up to n roundings of values up to 10^n (see tol)
    model = convert_and_check(fn, shapes, rtol=tol(F32, n), atol=tol(F32, n) * 10 ** n
                              if name == "det" else tol(F32, n), input_generator=gen)
    # the shapes written into the model (value_info) are onnxruntime's
    from hlo2onnx.components.examples import value_info_true
    assert not value_info_true(batch_sizes=(2, 5))(model)


def test_graph_size_does_not_grow_with_n():
    """One Loop over the columns, not an unrolled graph: the same nodes at
    n = 32 and n = 64.  (Up to n = 16 Cholesky's [n, n] triangle mask is
    small enough for the fold pass to compute: one node fewer.)"""
    def sizes(n):
        rng = np.random.default_rng(0)
        a = well_conditioned(rng, (n, n), F32)
        b = rng.standard_normal((n, 2)).astype(F32)
        out = {}
        for name, fn, args in [("solve", jnp.linalg.solve, [a, b]),
                               ("cholesky", jnp.linalg.cholesky, [spd(rng, (n, n), F32)])]:
            model = hlo2onnx.to_onnx(fn, args)
            out[name] = (sum(op_counts(model).values()), op_counts(model)["Loop"])
        return out

    small, large = sizes(32), sizes(64)
    assert small == large, (small, large)
    # solve: getrf, two trsm, and JAX's while loop from pivots to a
    # permutation; cholesky: potrf
    assert large["solve"][1] == 4 and large["cholesky"][1] == 1


def test_complex_refused():
    """Complex LU (4 x 4: JAX writes smaller determinants out as formulas),
    Cholesky and triangular solves are refused, naming the reason."""
    a = (np.eye(4) + 0.1j * np.ones((4, 4))).astype(np.complex64)
    for fn in (jnp.linalg.det, jnp.linalg.cholesky,
               lambda a: jsl.solve_triangular(a, a, lower=True)):
        with pytest.raises(hlo2onnx.UnsupportedOpError, match="complex linear algebra"):
            hlo2onnx.to_onnx(fn, [a])


@pytest.mark.parametrize("name,fn,shapes,kind", [
    ("solve", jnp.linalg.solve, [("B", "N", "N"), ("B", "N", 2)], "ab"),
    ("det", jnp.linalg.det, [("N", "N")], "a"),
    ("lax_lu", lax.linalg.lu, [("M", "N")], "a"),
    ("cholesky", jnp.linalg.cholesky, [("B", "N", "N")], "spd"),
    ("cho_solve", _cho_solve, [("N", "N"), ("N", 3)], "spdb"),
    ("solve_triangular", lambda a, b: jsl.solve_triangular(a, b, lower=False, trans=1),
     [("N", "N"), ("N", "K")], "trib"),
], ids=lambda v: v if isinstance(v, str) else "")
def test_dynamic_matrix_size(name, fn, shapes, kind):
    """Symbolic matrix sizes: the iotas are Ranges of the sizes Shape reads,
    the trip count a value; verify draws each symbol at 2..6 (rectangular
    LU included: M and N differ).  Tolerance: n <= 6 (see tol); det's values
    reach 10^6."""
    def gen(rng, shape, dtype, index):
        if index == 1:
            return rng.standard_normal(shape).astype(dtype)
        if kind.startswith("tri"):
            return inputs_for(kind, rng, shape[:-2], shape[-1], dtype)[0]
        return (spd if kind.startswith("spd") else well_conditioned)(rng, shape, dtype)

    t = tol(F32, 6)
    model = convert_and_check(fn, shapes, rtol=t, atol=t * 1e6 if name == "det" else t,
                              input_generator=gen)
    from hlo2onnx.components.examples import value_info_true
    assert not value_info_true(batch_sizes=(2, 5))(model)


@pytest.mark.parametrize("name,fn,shapes", [
    ("lu_rows0", lax.linalg.lu, [(2, 0, 3)]),
    ("lu_cols0", lax.linalg.lu, [(2, 3, 0)]),
    ("solve_n0", jnp.linalg.solve, [(0, 0), (0, 2)]),
    ("cholesky_n0", jnp.linalg.cholesky, [(3, 0, 0)]),
    ("solve_triangular_m0", lambda a, b: jsl.solve_triangular(a, b, lower=True),
     [(4, 4), (4, 0)]),
], ids=lambda v: v if isinstance(v, str) else "")
def test_empty(name, fn, shapes):
    """Zero-size matrices: no Loop step; LU's pivots are empty, info 0."""
    args = [np.zeros(s, F32) for s in shapes]
    assert_matches_jax(fn, args, rtol=0, atol=0, x64=False)


@pytest.mark.parametrize("opset", [17, 23])
def test_opsets(opset):
    """The lowest and highest opsets hlo2onnx writes: the Loops' ops are
    the same in both."""
    rng = np.random.default_rng(9)
    a = well_conditioned(rng, (2, 6, 6), F32)
    for fn, args in [(lax.linalg.lu, [a]), (jnp.linalg.cholesky, [spd(rng, (2, 6, 6), F32)])]:
        model = hlo2onnx.to_onnx(fn, args, opset=opset)
        check_model(model)
        for got, want in zip(run_ort(model, *args), jax.tree_util.tree_leaves(fn(*args))):
            np.testing.assert_allclose(got, np.asarray(want), rtol=1e-5, atol=1e-5)


def test_local_functions():
    """Two solves in a function shared as an ONNX local function: the Loop
    bodies are built inside the function's graph."""
    rng = np.random.default_rng(10)
    a = well_conditioned(rng, (6, 6), F32)
    b = rng.standard_normal((6, 2)).astype(F32)

    def two_solves(a, b):
        return jnp.linalg.solve(a, b) + jnp.linalg.solve(2 * a, b)

    model = hlo2onnx.to_onnx(two_solves, [a, b], local_functions=1)
    check_model(model)
    assert len(model.functions) >= 1
    (got,) = run_ort(model, a, b)
    np.testing.assert_allclose(got, np.asarray(two_solves(a, b)), rtol=1e-5, atol=1e-5)


GPU_CASES = {
    "lax_lu": (lax.linalg.lu, "a"),
    "lax_lu_tall": (lambda a: lax.linalg.lu(a[..., :, :3]), "a"),
    "solve": (jnp.linalg.solve, "ab"),
    "inv": (jnp.linalg.inv, "a"),
    "det": (jnp.linalg.det, "a"),
    "cholesky": (jnp.linalg.cholesky, "spd"),
    "cholesky_upper": (lambda a: jsl.cholesky(a, lower=False), "spd"),
    "cho_solve": (_cho_solve, "spdb"),
}


@pytest.mark.parametrize("platform", ["cuda", "tpu"])
@pytest.mark.parametrize("batch", [(), (3,)], ids=["single", "batch3"])
@pytest.mark.parametrize("name", list(GPU_CASES))
def test_accelerator_export(name, batch, platform):
    """A jax.export for CUDA (cusolver_getrf_ffi, cusolver_potrf_ffi with its
    triangle a boolean `lower`, cu_lu_pivots_to_permutation) or for TPU
    (LuDecomposition, stablehlo.cholesky), triangular solves as
    stablehlo.triangular_solve, compared with JAX on the CPU (LAPACK): the
    same factorisations, pivots included."""
    fn, kind = GPU_CASES[name]
    rng = np.random.default_rng(12)
    args = inputs_for(kind, rng, batch, 5, F32)
    exp = export.export(jax.jit(fn), platforms=[platform])(*args)
    text = exp.mlir_module()
    assert ("cusolver_" in text) if platform == "cuda" else \
        ("LuDecomposition" in text or "stablehlo.cholesky" in text)
    model = hlo2onnx.to_onnx(exp)
    check_model(model)
    got = run_ort(model, *args)
    want = [np.asarray(w) for w in jax.tree_util.tree_leaves(fn(*args))]
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_allclose(g, w, rtol=tol(F32, 5), atol=tol(F32, 5))


def test_nan_input():
    """A NaN in the matrix: the pivots stay a valid LAPACK ipiv (row k or
    below at step k; ArgMax of NaNs alone would not be) and det is NaN, as
    JAX's.  Which factor entries the NaN reaches, and so the later pivots,
    depends on the order of operations (OpenBLAS's is blocked), so the
    factors are not compared."""
    rng = np.random.default_rng(13)
    for n, pos in [(4, (0, 0)), (4, (2, 1)), (8, (5, 0)), (8, (7, 7))]:
        a = rng.standard_normal((n, n)).astype(F32)
        a[pos] = np.nan
        _, (lu, piv) = convert(jsl.lu_factor, [a])
        assert np.all((piv >= np.arange(n)) & (piv < n)), piv
        assert np.isnan(lu).any()
        assert_matches_jax(jnp.linalg.det, [a], rtol=0, atol=0, x64=False)


@pytest.mark.parametrize("name,fn,shapes,sizes", [
    ("solve", jnp.linalg.solve, [("B", "N", "N"), ("B", "N", 2)], [(2, 0, 0), (2, 0, 2)]),
    ("cholesky", jnp.linalg.cholesky, [("B", "N", "N")], [(2, 0, 0)]),
    ("lax_lu_cols0", lax.linalg.lu, [("B", "M", "N")], [(2, 3, 0)]),
    ("lax_lu_rows0", lax.linalg.lu, [("B", "M", "N")], [(2, 0, 3)]),
], ids=lambda v: v if isinstance(v, str) else "")
def test_symbolic_size_zero_at_run_time(name, fn, shapes, sizes):
    """A symbolic size that is 0 at run time: the Loops run no step and
    their carried values (matrix, pivots, info) keep the batch axes."""
    model = hlo2onnx.to_onnx(fn, shapes)
    check_model(model)
    args = [np.zeros(s, F32) for s in sizes]
    got = run_ort(model, *args)
    want = [np.asarray(w) for w in jax.tree_util.tree_leaves(fn(*args))]
    for g, w in zip(got, want):
        assert g.dtype == w.dtype and g.shape == w.shape
        np.testing.assert_array_equal(g, w)
