"""jax.scipy.linalg components: QR (pivoted too), eigh, SVD, Hessenberg and the tridiagonal routines.

On CPU JAX lowers the decompositions to custom_calls of LAPACK, which ONNX
has no ops for; hlo2onnx writes each as an ONNX Loop (src/lower/*.c, see
docs/numerics.md, "Decompositions").
"""

from __future__ import annotations

from hlo2onnx.registry import Case, Component, register

JAX_DOCS = "https://docs.jax.dev/en/latest/_autosummary"


# ---- QR, eigh, SVD (lapack_decomp.c) ----------------------------------------
#
# As in jax_numpy_linalg_decomp.py: QR compared as it is (LAPACK's signs), vectors
# of eigh and svd through sign-free functions of them.

_DECOMP_SINCE = "v0.2.0"


def _scipy(name, **kw):
    def build():
        import jax.scipy.linalg as sl

        f = getattr(sl, name)
        return lambda x: f(x, **kw)

    return build


def _eigh_sign_free(**kw):
    def build():
        import jax.numpy as jnp
        import jax.scipy.linalg as sl

        def f(x):
            w, v = sl.eigh(x, **kw)
            return w, jnp.abs(v)

        return f

    return build


def _householder_product():
    import jax

    return lambda a, tau: jax.lax.linalg.householder_product(a, tau)


def _decomp(name, full_name, expected, cases):
    register(Component(
        name, full_name, docs_url=f"{JAX_DOCS}/{full_name}.html", since=_DECOMP_SINCE,
        onnx_expected=expected, cases=cases))


_decomp("scipy.linalg.qr", "jax.scipy.linalg.qr", ("Loop",), [
    Case("scipy_qr", _scipy("qr"), [(6, 4)], notes="mode='full': Q is 6 x 6"),
    Case("scipy_qr_economic", _scipy("qr", mode="economic"), [(6, 4)], notes="Q is 6 x 4"),
    Case("scipy_qr_pivoting", _scipy("qr", pivoting=True), [(5, 6)],
         notes="geqp3: LAPACK's column pivoting (largest partial norm, downdated) in the "
               "same Loop; the same permutation"),
])
_decomp("scipy.linalg.eigh", "jax.scipy.linalg.eigh", ("Loop", "TopK"), [
    Case("scipy_eigh_upper", _eigh_sign_free(lower=False), [(6, 6)], rtol=1e-4, atol=1e-4,
         notes="lower=False: the upper triangle; |V| compared, eigenvectors move by "
               "eps |A| / gap between eigenvalues"),
    Case("scipy_eigh_values", _scipy("eigh", eigvals_only=True), [(7, 7)],
         notes="eigenvalues only (syevd mode N)"),
])
_decomp("scipy.linalg.svd", "jax.scipy.linalg.svd", ("Loop", "TopK"), [
    Case("scipy_svd_values", _scipy("svd", compute_uv=False), [(5, 8)],
         notes="singular values of a wide matrix"),
])
_decomp("householder_product", "jax.lax.linalg.householder_product", ("Loop",), [
    Case("householder_product", _householder_product, [("B", 6, 4), ("B", 3)],
         notes="orgqr: the product of 3 reflectors applied to the first 4 columns of I"),
])


def _hessenberg():
    import jax.scipy.linalg as sl

    return lambda x: sl.hessenberg(x, calc_q=True)


def _lax_linalg(name, **kw):
    def build():
        import jax

        f = getattr(jax.lax.linalg, name)
        return lambda *xs: f(*xs, **kw)

    return build


def _tridiagonal_gen(rng, shape, dtype, index):
    """dl[0] and du[n-1] are zero, as tridiagonal_solve asks."""

    x = rng.standard_normal(shape).astype(dtype)
    if index == 0:
        x[..., 0] = 0
    if index == 2:
        x[..., -1] = 0
    return x


_decomp("scipy.linalg.hessenberg", "jax.scipy.linalg.hessenberg", ("Loop",), [
    Case("scipy_hessenberg", _hessenberg, [(6, 6)],
         notes="gehrd's two-sided Householder sweep in a Loop, LAPACK's signs; Q by orgqr"),
])
_decomp("tridiagonal", "jax.lax.linalg.tridiagonal", ("Loop",), [
    Case("lax_tridiagonal", _lax_linalg("tridiagonal"), [("B", 6, 6)], rtol=1e-4, atol=1e-4,
         notes="sytrd (lower): the packed reflectors, d, e and tau as LAPACK's; the "
               "reduced form's entries drift with the steps (as Lanczos's), measured up to "
               "26 n eps |A|: 5e-5 at n = 6, |A| ~ 5, so 1e-4"),
])
_decomp("tridiagonal_solve", "jax.lax.linalg.tridiagonal_solve", ("Loop",), [
    Case("lax_tridiagonal_solve", _lax_linalg("tridiagonal_solve"),
         [("B", 7), ("B", 7), ("B", 7), ("B", 7, 2)], input_generator=_tridiagonal_gen,
         notes="gtsv: elimination with partial pivoting in a Loop, then back substitution"),
])
_decomp("scipy.linalg.polar", "jax.scipy.linalg.polar", ("Loop",), [
    Case("scipy_polar_svd", _scipy("polar", method="svd"), [(5, 5)],
         notes="method='svd': U V^T and V S V^T from the SVD (the default, qdwh, "
               "needs Cholesky)"),
])
