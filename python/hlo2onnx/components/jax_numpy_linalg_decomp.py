"""jax.numpy.linalg components: QR, eigh, SVD and what JAX builds on them (pinv, lstsq, norm).

On CPU JAX lowers the decompositions to custom_calls of LAPACK, which ONNX
has no ops for; hlo2onnx writes each as an ONNX Loop (src/lower/*.c, see
docs/numerics.md, "Decompositions").
"""

from __future__ import annotations

from hlo2onnx.registry import Case, Component, register

SINCE = "v0.2.0"
JAX_DOCS = "https://docs.jax.dev/en/latest/_autosummary"


# ---- QR, eigh, SVD (lapack_decomp.c) ----------------------------------------
#
# QR is Householder's with LAPACK's sign conventions, so Q and R are compared
# as they are.  Eigenvectors and singular vectors are defined only up to sign
# (LAPACK's signs follow no rule a different algorithm reproduces), so their
# cases return sign-free functions of them: |V|, |U|, or products.

_LINALG_DOCS = f"{JAX_DOCS}/jax.numpy.linalg"
_DECOMP_SINCE = "v0.2.0"


def _linalg(name, **kw):
    def build():
        import jax.numpy as jnp

        f = getattr(jnp.linalg, name)
        return lambda x: f(x, **kw)

    return build


def _eigh_sign_free():
    import jax.numpy as jnp

    def f(x):
        w, v = jnp.linalg.eigh(x)
        return w, jnp.abs(v)

    return f


def _svd_sign_free(full_matrices):
    def build():
        import jax.numpy as jnp

        def f(x):
            u, s, vh = jnp.linalg.svd(x, full_matrices=full_matrices)
            k = s.shape[-1]
            uk, vk = u[..., :k], vh[..., :k, :]
            # U's (and V's) columns past k are any orthonormal basis of the
            # complement: compared as its projector
            u_rest = u[..., k:] @ jnp.swapaxes(u[..., k:], -1, -2)
            v_rest = jnp.swapaxes(vh[..., k:, :], -1, -2) @ vh[..., k:, :]
            return jnp.abs(uk), s, jnp.abs(vk), u_rest, v_rest

        return f

    return build


def _decomp(name, expected, cases):
    register(Component(
        name, f"jax.numpy.linalg.{name}",
        docs_url=f"{_LINALG_DOCS}.{name}.html", since=_DECOMP_SINCE,
        onnx_expected=expected, cases=cases))


_VEC_NOTE = ("eigenvectors move by eps |A| / gap between eigenvalues; the random draws "
             "have gaps near 1e-2 |A| (measured: 2e-5), so 1e-4")

_decomp("qr", ("Loop",), [
    Case("linalg_qr", _linalg("qr"), [("B", 5, 4)],
         notes="Householder QR in a Loop over columns; LAPACK's signs, so Q and R match"),
    Case("linalg_qr_complete", _linalg("qr", mode="complete"), [(6, 4)],
         notes="Q completed to 6 x 6 (orgqr of the padded reflectors)"),
    Case("linalg_qr_r", _linalg("qr", mode="r"), [("B", 3, 5)], notes="R only, a wide matrix"),
])
_decomp("eigh", ("Loop", "TopK"), [
    Case("linalg_eigh", lambda: _eigh_sign_free(), [("B", 6, 6)], rtol=1e-4, atol=1e-4,
         notes="cyclic Jacobi in parallel order; eigenvalues ascending; |V| compared, "
               + _VEC_NOTE),
])
_decomp("eigvalsh", ("Loop", "TopK"), [
    Case("linalg_eigvalsh", _linalg("eigvalsh"), [("B", 8, 8)],
         notes="the eigenvalues of the Jacobi iteration, ascending"),
])
_decomp("svd", ("Loop", "TopK"), [
    Case("linalg_svd", _svd_sign_free(True), [("B", 6, 4)],
         notes="one-sided Jacobi; U completed to 6 x 6 by a Householder QR; |U|, s, |Vh| "
               "compared (past k columns, the projector on their span)"),
    Case("linalg_svd_thin_wide", _svd_sign_free(False), [(3, 7)],
         notes="a wide matrix: the Jacobi iteration runs on its transpose"),
    Case("linalg_svd_values", _linalg("svd", compute_uv=False), [("B", 5, 5)],
         notes="singular values only (gesdd mode N)"),
])
_decomp("svdvals", ("Loop", "TopK"), [
    Case("linalg_svdvals", _linalg("svdvals"), [("B", 4, 6)], notes="descending"),
])
_decomp("pinv", ("Loop",), [
    Case("linalg_pinv", _linalg("pinv"), [(6, 4)], notes="V diag(1/s) U^T"),
])
_decomp("matrix_rank", ("Loop",), [
    Case("linalg_matrix_rank", _linalg("matrix_rank"), [("B", 5, 5)],
         notes="singular values above the default tolerance"),
])
_decomp("norm", ("Loop",), [
    Case("linalg_norm_ord2", _linalg("norm", ord=2, axis=(-2, -1)), [("B", 5, 3)],
         notes="ord=2: the largest singular value"),
])
_decomp("cond", ("Loop",), [
    Case("linalg_cond", _linalg("cond"), [(5, 5)], notes="s_max / s_min"),
])


def _lstsq():
    import jax.numpy as jnp

    return lambda a, b: jnp.linalg.lstsq(a, b)[0]


_decomp("lstsq", ("Loop",), [
    Case("linalg_lstsq", _lstsq, [(6, 4), (6, 2)],
         notes="the least-squares solution by the SVD (pinv-like)"),
])
