"""jax.numpy.linalg components.

On the CPU JAX lowers these to LAPACK custom_calls, which ONNX has no op for;
hlo2onnx writes each as an ONNX Loop over the matrix's columns (see
docs/numerics.md, "Linear algebra", and the src/lower/ file of each block).

Inputs: random normal matrices can be arbitrarily ill-conditioned, which would
make any two correct implementations differ by more than rounding, so the
cases draw well-conditioned ones (condition number <= 10; positive definite
where the function needs it) with ``linalg_inputs``.  Tolerance: the
project's 1e-5 (n = 4: sums of 4 terms).
"""

from __future__ import annotations

import numpy as np

from hlo2onnx.registry import Case, Component, register

SINCE = "v0.2.0"
JAX_DOCS = "https://docs.jax.dev/en/latest/_autosummary"


def well_conditioned(rng, shape, dtype):
    """Q1 diag(s) Q2 with s in [1, 10]: pivoting still swaps rows."""
    *batch, n, m = shape
    k = min(n, m)
    q1, _ = np.linalg.qr(rng.standard_normal((*batch, n, n)))
    q2, _ = np.linalg.qr(rng.standard_normal((*batch, m, m)))
    return ((q1[..., :, :k] * np.linspace(10, 1, k)) @ q2[..., :k, :]).astype(dtype)


def positive_definite(rng, shape, dtype):
    """Symmetric with eigenvalues in [1, 10]."""
    *batch, n, _ = shape
    q, _ = np.linalg.qr(rng.standard_normal((*batch, n, n)))
    return ((q * np.linspace(10, 1, n)) @ np.swapaxes(q, -1, -2)).astype(dtype)


def linalg_inputs(matrix):
    """An input_generator: input 0 drawn by ``matrix``, the others (right-hand
    sides) random normal."""
    def gen(rng, shape, dtype, index):
        if index == 0:
            return matrix(rng, shape, dtype)
        return rng.standard_normal(shape).astype(dtype)

    return gen


def _linalg(name, **kw):
    def build():
        import jax.numpy as jnp

        f = getattr(jnp.linalg, name)
        return (lambda *a: f(*a, **kw)) if kw else f

    return build


def _register(name, expected, cases, note=""):
    register(Component(
        f"linalg.{name}", f"jax.numpy.linalg.{name}",
        docs_url=f"{JAX_DOCS}/jax.numpy.linalg.{name}.html", since=SINCE,
        onnx_expected=expected, cases=cases, table_note=note))


# ---- LU, triangular solves, Cholesky (src/lower/lapack_lu.c) -------------
_WELL = linalg_inputs(well_conditioned)
_SPD = linalg_inputs(positive_definite)
_LU_NOTE = "LU with partial pivoting as a Loop over columns"

_register("solve", ("Loop",), [
    Case("linalg_solve", _linalg("solve"), [("B", 4, 4), ("B", 4, 2)],
         input_generator=_WELL, notes="LU (getrf), then two triangular solves (trsm)"),
    Case("linalg_solve_vector", _linalg("solve"), [(6, 6), (6,)],
         input_generator=_WELL, notes="a vector right-hand side"),
], _LU_NOTE)
_register("inv", ("Loop",), [
    Case("linalg_inv", _linalg("inv"), [("B", 4, 4)], input_generator=_WELL,
         notes="solve against the identity"),
], _LU_NOTE)
_register("det", ("Loop",), [
    Case("linalg_det", _linalg("det"), [("B", 5, 5)], input_generator=_WELL,
         notes="product of U's diagonal, sign from the pivots (n <= 3: JAX's formulas)"),
], _LU_NOTE)
_register("slogdet", ("Loop",), [
    Case("linalg_slogdet", _linalg("slogdet"), [("B", 5, 5)], input_generator=_WELL,
         notes="sign and log |det| from the LU factors"),
], _LU_NOTE)
_register("cholesky", ("Loop",), [
    Case("linalg_cholesky", _linalg("cholesky"), [("B", 4, 4)], input_generator=_SPD,
         notes="potrf as a Loop over columns; NaN where not positive definite"),
    Case("linalg_cholesky_upper", _linalg("cholesky", upper=True), [(5, 5)],
         input_generator=_SPD, notes="upper = True: the factor transposed"),
], "Cholesky as a Loop over columns")
# ---- end of LU, triangular solves, Cholesky --------------------------------
