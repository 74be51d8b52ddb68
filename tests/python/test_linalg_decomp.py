"""QR, eigh, SVD and the rest of src/lower/lapack_decomp.c against JAX's
LAPACK results.

JAX on CPU calls LAPACK through custom_calls (geqrf/orgqr, geqp3, syevd,
gesdd, gesvd, gehrd, sytrd, gtsv); hlo2onnx writes them as ONNX Loops:
Householder QR with LAPACK's sign conventions (and its column pivoting),
cyclic Jacobi for eigh, one-sided Jacobi for the SVD, Householder sweeps for
the Hessenberg and tridiagonal forms, LAPACK's pivoted elimination for the
tridiagonal solve.

What is compared, and why the tolerances are what they are (eps is the unit
roundoff, 2^-24 for f32 and 2^-53 for f64; measured errors were at most 4 n
eps |A| on these cases, the bounds leave a margin of 4):

* QR of well-conditioned matrices: Q and R elementwise, atol = rtol =
  16 n eps (with |A| ~ 1), since both are backward-stable Householder QRs with
  the same signs; at n <= 8 in f32 that is at most 1e-5.
* QR of ill-conditioned matrices (cond 1e3 in f32, 1e8 in f64): the columns
  of Q (and rows of R) along the small singular directions are determined
  only to eps * cond(A) by any backward-stable QR (a perturbation of eps |A|
  moves them by that much), so they are compared at 16 n eps cond(A); the
  backward error, |QR - A| and |Q^T Q - I|, at 16 n eps.
* eigh: eigenvalues elementwise at 16 n eps |A|_2 (both methods are
  backward stable: each eigenvalue is within n eps |A| of the true one).
  Eigenvectors are defined up to sign (and up to a rotation within repeated
  eigenvalues), and LAPACK's signs follow no rule we can reproduce, so they
  are compared as |v . v_jax| = 1 for well-separated eigenvalues, and
  everywhere by the reconstruction V diag(w) V^T = A and V^T V = I.
* SVD: singular values elementwise at 16 n eps s_max; U and V by |u . u_jax|
  = 1, reconstruction and orthogonality, as eigenvectors.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import onnx
import pytest

import hlo2onnx
from util import check_model, run_ort


@pytest.fixture(autouse=True)
def _x64():
    """f64 cases need x64; scoped to each test so the rest of the suite (one
    process) keeps JAX's default."""
    with jax.enable_x64(True):
        yield


EPS = {np.float32: 2.0 ** -24, np.float64: 2.0 ** -53}
ILL_COND = {np.float32: 1e3, np.float64: 1e8}


def _convert(fn, *xs) -> onnx.ModelProto:
    model = hlo2onnx.to_onnx(fn, list(xs))
    check_model(model)
    return model


def _run(fn, *xs):
    model = _convert(fn, *xs)
    got = run_ort(model, *xs)
    want = [np.asarray(w) for w in jax.tree.leaves(fn(*xs))]
    assert [g.shape for g in got] == [w.shape for w in want]
    assert [g.dtype for g in got] == [w.dtype for w in want]
    return got, want


def _well(rng, shape, dtype):
    return rng.standard_normal(shape).astype(dtype)


def _ill(rng, shape, dtype, symmetric=False):
    """U diag(s) V^T with s from 1 down to 1 / cond (of either sign when
    symmetric: then U = V)."""
    m, n = shape[-2:]
    k = min(m, n)
    u = np.linalg.qr(rng.standard_normal(shape[:-2] + (m, m)))[0]
    v = np.linalg.qr(rng.standard_normal(shape[:-2] + (n, n)))[0]
    s = np.logspace(0, -np.log10(ILL_COND[dtype]), k)
    if symmetric:
        s = s * rng.choice([-1.0, 1.0], k)
        return ((u * s) @ np.swapaxes(u, -1, -2)).astype(dtype)
    return ((u[..., :k] * s) @ np.swapaxes(v[..., :, :k], -1, -2)).astype(dtype)


def _t(x):
    return np.swapaxes(x, -1, -2)


DTYPES = [np.float32, np.float64]
QR_SHAPES = [(1, 1), (4, 3), (3, 5), (8, 8), (2, 3, 6, 4), (33, 32), (32, 40)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", QR_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("mode", ["reduced", "complete", "r"])
def test_qr_well_conditioned(shape, dtype, mode):
    x = _well(np.random.default_rng(0), shape, dtype)
    got, want = _run(lambda a: jnp.linalg.qr(a, mode=mode), x)
    tol = 16 * max(shape[-2:]) * EPS[dtype]  # f32: <= 1e-5 up to n = 10
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(6, 5), (2, 8, 8), (24, 16)], ids=lambda s: "x".join(map(str, s)))
def test_qr_ill_conditioned(shape, dtype):
    x = _ill(np.random.default_rng(1), shape, dtype)
    (q, r), (qj, rj) = _run(jnp.linalg.qr, x)
    n = max(shape[-2:])
    backward = 16 * n * EPS[dtype]
    forward = backward * ILL_COND[dtype]  # Q, R along small singular directions: eps cond(A)
    np.testing.assert_allclose(q, qj, rtol=forward, atol=forward)
    np.testing.assert_allclose(r, rj, rtol=forward, atol=forward)
    np.testing.assert_allclose(q @ r, x, atol=backward)
    np.testing.assert_allclose(_t(q) @ q, np.broadcast_to(np.eye(q.shape[-1]), q.shape[:-2] + (q.shape[-1],) * 2), atol=backward)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("mode", ["full", "economic", "r"])
def test_scipy_qr(mode, dtype):
    x = _well(np.random.default_rng(2), (7, 5), dtype)
    got, want = _run(lambda a: jax.scipy.linalg.qr(a, mode=mode), x)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape,k", [((5, 3), 3), ((6, 6), 4), ((2, 4, 4), 4), ((4, 2), 0)])
def test_householder_product(shape, k, dtype):
    rng = np.random.default_rng(3)
    a = _well(rng, shape, dtype)
    tau = rng.uniform(0.5, 1.5, shape[:-2] + (k,)).astype(dtype)
    got, want = _run(jax.lax.linalg.householder_product, a, tau)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)


def _symmetric(rng, shape, dtype, ill):
    if ill:
        return _ill(rng, shape, dtype, symmetric=True)
    x = rng.standard_normal(shape)
    return (x + _t(x)).astype(dtype) / 2


def _check_eigh(w, v, wj, vj, a, dtype):
    n = a.shape[-1]
    norm = np.abs(wj).max()
    tol = 16 * n * EPS[dtype]
    np.testing.assert_allclose(w, wj, rtol=0, atol=tol * norm)
    # reconstruction and orthogonality (whatever the signs)
    np.testing.assert_allclose((v * w[..., None, :]) @ _t(v), a, rtol=0, atol=tol * norm)
    np.testing.assert_allclose(_t(v) @ v, np.broadcast_to(np.eye(n), v.shape), rtol=0, atol=tol)
    # each eigenvector is LAPACK's up to sign where its eigenvalue is apart
    # from the others by more than 1e-3 |A| (the vector moves by eps |A| / gap)
    gaps = np.full(w.shape, np.inf)
    if n > 1:
        d = np.diff(wj, axis=-1)
        gaps[..., 1:] = d
        gaps[..., :-1] = np.minimum(gaps[..., :-1], d)
    apart = gaps > 1e-3 * norm
    dots = np.abs(np.einsum("...ij,...ij->...j", v, vj))
    np.testing.assert_allclose(dots[apart], 1.0, atol=tol * 1e3)


EIGH_SHAPES = [(1, 1), (2, 2), (5, 5), (8, 8), (3, 6, 6), (2, 2, 3, 3), (32, 32)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", EIGH_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("ill", [False, True], ids=["well", "ill"])
def test_eigh(shape, dtype, ill):
    a = _symmetric(np.random.default_rng(4), shape, dtype, ill)
    (w, v), (wj, vj) = _run(jnp.linalg.eigh, a)
    _check_eigh(w, v, wj, vj, a, dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_eigvalsh_and_scipy_eigh(dtype):
    rng = np.random.default_rng(5)
    a = _symmetric(rng, (4, 7, 7), dtype, False)
    tol = 16 * 7 * EPS[dtype] * 4  # |A|_2 <= 4 here
    (w,), (wj,) = _run(jnp.linalg.eigvalsh, a)
    np.testing.assert_allclose(w, wj, rtol=0, atol=tol)
    # scipy's eigh with lower=False: LAPACK reads the upper triangle (of the
    # matrix JAX symmetrised first)
    x = _well(rng, (7, 7), dtype)
    (w, v), (wj, vj) = _run(lambda m: jax.scipy.linalg.eigh(m, lower=False), x)
    _check_eigh(w, v, wj, vj, (x + x.T) / 2, dtype)
    (w,), (wj,) = _run(lambda m: jax.scipy.linalg.eigh(m, eigvals_only=True), x)
    np.testing.assert_allclose(w, wj, rtol=0, atol=tol)


def test_eigh_repeated_eigenvalues():
    """The identity plus a rank-1 term: n - 1 equal eigenvalues, whose
    eigenvectors are any basis of their space (checked by reconstruction)."""
    u = np.ones((6, 1)) / np.sqrt(6)
    a = (np.eye(6) + 3 * u @ u.T).astype(np.float32)
    (w, v), (wj, vj) = _run(jnp.linalg.eigh, a)
    _check_eigh(w, v, wj, vj, a, np.float32)


def _check_svd(u, s, vh, uj, sj, vhj, x, dtype, full):
    k = s.shape[-1]
    n = max(x.shape[-2:])
    smax = sj.max() if sj.size else 1.0
    tol = 16 * n * EPS[dtype]
    np.testing.assert_allclose(s, sj, rtol=0, atol=tol * smax)
    np.testing.assert_allclose((u[..., :, :k] * s[..., None, :]) @ vh[..., :k, :], x, rtol=0,
                               atol=tol * smax)
    for m in (u, _t(vh)):
        c = m.shape[-1]
        np.testing.assert_allclose(_t(m) @ m, np.broadcast_to(np.eye(c), m.shape[:-2] + (c, c)),
                                   rtol=0, atol=tol)
    if full:
        assert u.shape[-1] == x.shape[-2] and vh.shape[-2] == x.shape[-1]
    gaps = np.full(s.shape, np.inf)
    if k > 1:
        d = -np.diff(sj, axis=-1)
        gaps[..., 1:] = d
        gaps[..., :-1] = np.minimum(gaps[..., :-1], d)
    apart = gaps > 1e-3 * smax
    du = np.abs(np.einsum("...ij,...ij->...j", u[..., :, :k], uj[..., :, :k]))
    dv = np.abs(np.einsum("...ji,...ji->...j", vh[..., :k, :], vhj[..., :k, :]))
    np.testing.assert_allclose(du[apart], 1.0, atol=tol * 1e3)
    np.testing.assert_allclose(dv[apart], 1.0, atol=tol * 1e3)


SVD_SHAPES = [(1, 1), (4, 3), (3, 5), (6, 6), (5, 1), (2, 3, 7, 4), (33, 32), (16, 40)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SVD_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("full", [True, False], ids=["full", "thin"])
@pytest.mark.parametrize("ill", [False, True], ids=["well", "ill"])
def test_svd(shape, dtype, full, ill):
    rng = np.random.default_rng(6)
    x = _ill(rng, shape, dtype) if ill else _well(rng, shape, dtype)
    (u, s, vh), (uj, sj, vhj) = _run(lambda a: jnp.linalg.svd(a, full_matrices=full), x)
    _check_svd(u, s, vh, uj, sj, vhj, x, dtype, full)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_svd_rank_deficient(dtype):
    """Zero singular values: U's columns for them are still orthonormal."""
    rng = np.random.default_rng(7)
    x = (rng.standard_normal((6, 2)) @ rng.standard_normal((2, 4))).astype(dtype)
    (u, s, vh), (_uj, sj, _vhj) = _run(jnp.linalg.svd, x)
    tol = 16 * 6 * EPS[dtype] * sj.max()
    np.testing.assert_allclose(s, sj, rtol=0, atol=tol)
    np.testing.assert_allclose((u[:, :4] * s) @ vh, x, rtol=0, atol=tol)
    np.testing.assert_allclose(u.T @ u, np.eye(6), atol=tol)


# Functions built on the SVD whose results are sign-free: compared elementwise.
SVD_FUNCTIONS = {
    "svdvals": jnp.linalg.svdvals,
    "svd_no_uv": lambda a: jnp.linalg.svd(a, compute_uv=False),
    "pinv": jnp.linalg.pinv,
    "matrix_rank": jnp.linalg.matrix_rank,
    "norm2": lambda a: jnp.linalg.norm(a, ord=2, axis=(-2, -1)),
    "cond": jnp.linalg.cond,
    "scipy_svd": lambda a: jax.scipy.linalg.svd(a, compute_uv=False),
    "lstsq": lambda a: jnp.linalg.lstsq(a[0], a[1, :, :2])[0],
    "polar": lambda a: jax.scipy.linalg.polar(a[0, :4], method="svd"),
    "gesvd": lambda a: jax.lax.linalg.svd(a, compute_uv=False,
                                         algorithm=jax.lax.linalg.SvdAlgorithm.QR),
    # U and V through sign-free products: U diag(s) V^T and the projectors
    "gesvd_uv": lambda a: (lambda u, s, vh: (u[..., :4] * s[..., None, :] @ vh,
                                             u @ jnp.swapaxes(u, -1, -2)))(
        *jax.lax.linalg.svd(a, algorithm=jax.lax.linalg.SvdAlgorithm.QR)),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", list(SVD_FUNCTIONS))
def test_svd_functions(name, dtype):
    x = _well(np.random.default_rng(8), (3, 6, 4), dtype)
    got, want = _run(SVD_FUNCTIONS[name], x)
    # pinv and cond divide by the smallest singular value (about 0.3 here):
    # their error is the singular values' (16 n eps) times cond(A) <= 30
    tol = 16 * 6 * EPS[dtype] * 30
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


@pytest.mark.parametrize("fn", [jnp.linalg.qr, jnp.linalg.eigh, jnp.linalg.svd],
                         ids=["qr", "eigh", "svd"])
def test_symbolic_batch(fn):
    """A symbolic batch axis: the matrices are flattened to [-1, m, n]."""
    model = hlo2onnx.to_onnx(fn, [("B", 5, 5)])
    check_model(model)
    rng = np.random.default_rng(9)
    for b in (1, 3):
        x = _symmetric(rng, (b, 5, 5), np.float32, False)
        got = run_ort(model, x)
        want = [np.asarray(w) for w in jax.tree.leaves(fn(x))]
        # sign-free parts: eigen/singular values, and Q, R (signs fixed)
        for g, w in zip(got, want):
            assert g.shape == w.shape
        if fn is jnp.linalg.qr:
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
        elif fn is jnp.linalg.eigh:
            np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("opset", [17, 23])
def test_opsets(opset):
    """ReduceMax's axes: an attribute before opset 18, an input after."""
    x = _well(np.random.default_rng(15), (2, 5, 4), np.float32)
    for fn in (jnp.linalg.qr, jnp.linalg.svdvals):
        model = hlo2onnx.to_onnx(fn, [x], opset=opset)
        check_model(model)
        for g, w in zip(run_ort(model, x), jax.tree.leaves(fn(x))):
            np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=1e-5)


def test_inside_loops_and_local_functions():
    """A decomposition's Loop nested in a lax.map's Loop, and in a local
    function called twice."""
    x = _symmetric(np.random.default_rng(16), (3, 5, 5), np.float32, False)
    def mapped(a):
        return jax.lax.map(jnp.linalg.eigvalsh, a)

    (w,), (wj,) = _run(mapped, x)
    np.testing.assert_allclose(w, wj, rtol=1e-5, atol=1e-5)
    inner = jax.jit(jnp.linalg.eigvalsh)
    def twice(a, b):
        return inner(a) + inner(b)

    model = hlo2onnx.to_onnx(twice, [x, x], local_functions=2)
    check_model(model)
    assert len(model.functions) == 1
    np.testing.assert_allclose(run_ort(model, x, 2 * x)[0], twice(x, 2 * x), rtol=1e-5,
                               atol=1e-5 * 3)  # 3 |A|: eigenvalues of x + 2x


def test_symbolic_matrix_size_refused():
    """The matrix size sets the trip counts and the rotation schedule."""
    with pytest.raises(hlo2onnx.errors.UnsupportedOpError, match="symbolic matrix size"):
        hlo2onnx.to_onnx(jnp.linalg.qr, [("n", "n")])


def test_graph_is_loops():
    """The decompositions are ONNX Loops, not unrolled: the node count does
    not grow with n (a few nodes differ where passes fold what is trivial at
    one size)."""
    counts = []
    for n in (4, 32):
        model = _convert(jnp.linalg.eigh, jax.ShapeDtypeStruct((n, n), np.float32))
        assert any(node.op_type == "Loop" for node in model.graph.node)
        counts.append(len(model.graph.node))
    assert abs(counts[0] - counts[1]) <= 4, counts


@pytest.mark.parametrize("scale", [1e-25, 1e25, 0.0], ids=["tiny", "huge", "zero"])
def test_extreme_scales(scale):
    """f32 entries whose squares under- or overflow: the iterations run on
    the matrix divided by a power of two near its largest entry (exact), as
    LAPACK scales its norms; a zero matrix gives zeros (and tau = 0).
    What scales with the matrix is compared divided by the scale, Q, the
    reflectors and tau (scale-free) as they are."""
    rng = np.random.default_rng(12)
    x = (rng.standard_normal((2, 5, 4)) * scale).astype(np.float32)
    sym = (x[:, :4] + _t(x[:, :4])).astype(np.float32)
    unit = scale if scale else 1.0
    def close(g, w, s=1.0):
        np.testing.assert_allclose(g / s, w / s, rtol=1e-5, atol=1e-5)

    (q, r), (qj, rj) = _run(jnp.linalg.qr, x)
    close(q, qj)
    close(r, rj, unit)
    (s_,), (sj,) = _run(jnp.linalg.svdvals, x)
    close(s_, sj, unit)
    (w,), (wj,) = _run(jnp.linalg.eigvalsh, sym)
    close(w, wj, unit)
    (packed, d, e, tau), (pj, dj, ej, tauj) = _run(jax.lax.linalg.tridiagonal, sym)
    reflectors = np.tril(np.ones((4, 4), bool), -2)
    close(np.where(reflectors, packed, 0), np.where(reflectors, pj, 0))
    close(np.where(reflectors, 0, packed), np.where(reflectors, 0, pj), unit)
    close(d, dj, unit)
    close(e, ej, unit)
    close(tau, tauj)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (3, 5), (6, 6), (33, 32), (20, 40)],
                         ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("mode", ["full", "economic"])
def test_qr_pivoting(shape, dtype, mode):
    """geqp3 step by step (pivot = the first largest partial column norm,
    LAPACK's downdating and recomputation of the norms): the same pivots,
    and Q, R elementwise as unpivoted QR."""
    x = _well(np.random.default_rng(13), shape, dtype)
    (q, r, p), (qj, rj, pj) = _run(lambda a: jax.scipy.linalg.qr(a, pivoting=True, mode=mode), x)
    np.testing.assert_array_equal(p, pj)
    tol = 16 * max(shape) * EPS[dtype]
    np.testing.assert_allclose(q, qj, rtol=tol, atol=tol)
    np.testing.assert_allclose(r, rj, rtol=tol, atol=tol)


def test_qr_pivoting_batched():
    """vmap of the pivoted QR, with a static and a symbolic batch (then
    jpvt's zeros are a constant broadcast to the symbolic shape)."""
    fn = jax.vmap(lambda a: jax.scipy.linalg.qr(a, pivoting=True))
    x = _well(np.random.default_rng(17), (3, 6, 4), np.float32)
    for model in (_convert(fn, x), _convert(fn, ("B", 6, 4))):
        got = run_ort(model, x)
        for g, w in zip(got, jax.tree.leaves(fn(x))):
            np.testing.assert_allclose(g, np.asarray(w), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_qr_pivoting_rank_deficient(dtype):
    """Rank 3 of 6 columns: past the rank the partial norms are rounding
    noise, and which of them is largest is arbitrary (in LAPACK too).  The
    first 3 pivots and R's leading 3 x 3 block are compared; the rest by
    A[:, P] = Q R."""
    rng = np.random.default_rng(14)
    x = (rng.standard_normal((8, 3)) @ rng.standard_normal((3, 6))).astype(dtype)
    (q, r, p), (_qj, rj, pj) = _run(lambda a: jax.scipy.linalg.qr(a, pivoting=True), x)
    np.testing.assert_array_equal(p[:3], pj[:3])
    tol = 16 * 8 * EPS[dtype] * np.abs(x).max()
    np.testing.assert_allclose(r[:3, :3], rj[:3, :3], rtol=0, atol=tol)
    np.testing.assert_allclose(q @ r, x[:, p], rtol=0, atol=tol)
    assert sorted(p) == list(range(6))


HESS_SHAPES = [(1, 1), (2, 2), (5, 5), (2, 3, 6, 6), (32, 32)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", HESS_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_hessenberg_and_tridiagonal(shape, dtype):
    """Deterministic Householder reductions with LAPACK's signs: compared
    elementwise (the packed reflectors and tau too).  The entries of the
    reduced form are not bounded by the backward error alone (as Lanczos's
    and Arnoldi's, they drift with the number of steps): measured up to
    26 n eps |A|_2 for the tridiagonal form (f64, n = 32) and 2 n eps |A|_2
    for the Hessenberg one, so 64 n eps |A|_2."""
    x = _well(np.random.default_rng(10), shape, dtype)
    n = shape[-1]
    norm = np.linalg.norm(x.astype(np.float64), 2, axis=(-2, -1)).max()
    tol = 64 * n * EPS[dtype] * max(1.0, norm)

    def hessenberg(a):
        def f(m):
            return jax.scipy.linalg.hessenberg(m, calc_q=True)

        for _ in range(a.ndim - 2):
            f = jax.vmap(f)
        return f(a)

    def upper(a):
        return jax.lax.linalg.tridiagonal(a, lower=False)

    for fn in (hessenberg, jax.lax.linalg.tridiagonal, upper):
        got, want = _run(fn, x)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("batch,n,nrhs", [((), 1, 1), ((), 2, 3), ((), 7, 2), ((2, 3), 6, 1),
                                          ((), 32, 4)])
def test_tridiagonal_solve(batch, n, nrhs, dtype):
    """LAPACK's gtsv step by step (partial pivoting included): random
    diagonals, not diagonally dominant, so rows are swapped."""
    rng = np.random.default_rng(11)
    dl, d, du = (rng.standard_normal(batch + (n,)).astype(dtype) for _ in range(3))
    dl[..., 0] = 0
    du[..., -1] = 0
    b = rng.standard_normal(batch + (n, nrhs)).astype(dtype)
    got, want = _run(jax.lax.linalg.tridiagonal_solve, dl, d, du, b)
    # the same operations in the same order as LAPACK (measured: identical)
    np.testing.assert_allclose(got[0], want[0], rtol=16 * n * EPS[dtype], atol=16 * n * EPS[dtype])


def test_tridiagonal_solve_singular():
    """A zero pivot: LAPACK's info > 0, on which JAX returns NaN for that
    system; the other system of the batch is solved."""
    n = 4
    dl, du = np.zeros((2, n), np.float32), np.zeros((2, n), np.float32)
    d = np.ones((2, n), np.float32)
    d[1, 2] = 0
    b = np.ones((2, n, 1), np.float32)
    (x,), (xj,) = _run(jax.lax.linalg.tridiagonal_solve, dl, d, du, b)
    assert np.isnan(xj[1]).all() and np.isnan(x[1]).all()
    np.testing.assert_allclose(x[0], xj[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name,fn,reason", [
    ("eig", jnp.linalg.eig, "non-symmetric eigensolver with complex results"),
    ("schur", jax.scipy.linalg.schur, "Schur decomposition"),
    ("complex_qr", lambda a: jnp.linalg.qr(a.astype(jnp.complex64))[1].real,
     "cgeqrf_ffi: complex matrices are not converted"),
    ("complex_eigh", lambda a: jnp.linalg.eigvalsh(a.astype(jnp.complex64)),
     "heevd_ffi: complex matrices are not converted"),
    ("complex_svd", lambda a: jnp.linalg.svdvals(a.astype(jnp.complex64)),
     "gesdd_ffi: complex matrices are not converted"),
])
def test_refused(name, fn, reason):
    with pytest.raises(hlo2onnx.errors.UnsupportedOpError, match=reason):
        hlo2onnx.to_onnx(fn, [jax.ShapeDtypeStruct((4, 4), np.float32)])
