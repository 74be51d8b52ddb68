"""jax.scipy.linalg components.

On the CPU JAX lowers these to LAPACK custom_calls, which ONNX has no op for;
hlo2onnx writes each as an ONNX Loop over the matrix's columns (see
docs/numerics.md, "Linear algebra", and the src/lower/ file of each block).
Inputs: well-conditioned matrices (condition number <= 10), positive definite
or triangular where the function needs it (jax_numpy_linalg.py says why).
Tolerance: the project's 1e-5 (n <= 6: sums of at most 6 terms).
"""

from __future__ import annotations

import numpy as np

from hlo2onnx.components.jax_numpy_linalg import (linalg_inputs, positive_definite,
                                                  well_conditioned)
from hlo2onnx.registry import Case, Component, register

SINCE = "v0.2.0"
JAX_DOCS = "https://docs.jax.dev/en/latest/_autosummary"


def triangular(rng, shape, dtype):
    """A lower Cholesky factor of a positive definite matrix (condition
    <= sqrt(10)) with its upper triangle filled too: a solve reads only the
    triangle it names."""
    low = np.linalg.cholesky(positive_definite(rng, shape, np.float64))
    return (low + 3 * np.swapaxes(np.tril(low, -1), -1, -2)).astype(dtype)


def _scipy(build_fn):
    def build():
        import jax.scipy.linalg as jsl

        return build_fn(jsl)

    return build


def _register(name, expected, cases, note=""):
    register(Component(
        f"scipy.linalg.{name}", f"jax.scipy.linalg.{name}",
        docs_url=f"{JAX_DOCS}/jax.scipy.linalg.{name}.html", since=SINCE,
        onnx_expected=expected, cases=cases, table_note=note))


# ---- LU, triangular solves, Cholesky (src/lower/lapack_lu.c) -------------
_WELL = linalg_inputs(well_conditioned)
_SPD = linalg_inputs(positive_definite)
_TRI = linalg_inputs(triangular)
_LU_NOTE = "LU with partial pivoting as a Loop over columns"

_register("lu", ("Loop",), [
    Case("scipy_lu", _scipy(lambda jsl: jsl.lu), [(5, 5)], input_generator=_WELL,
         notes="P, L, U: getrf, then JAX's pivots-to-permutation loop"),
    Case("scipy_lu_wide", _scipy(lambda jsl: jsl.lu), [(3, 5)], input_generator=_WELL,
         notes="a rectangular matrix: min(m, n) steps"),
], _LU_NOTE)
_register("lu_factor", ("Loop",), [
    Case("scipy_lu_factor", _scipy(lambda jsl: jsl.lu_factor), [("B", 5, 5)],
         input_generator=_WELL, notes="the packed LU and LAPACK's pivots (0-based)"),
], _LU_NOTE)
_register("lu_solve", ("Loop",), [
    Case("scipy_lu_solve", _scipy(lambda jsl: lambda a, b: jsl.lu_solve(jsl.lu_factor(a), b)),
         [(5, 5), (5, 2)], input_generator=_WELL, notes="lu_factor, then two triangular solves"),
], _LU_NOTE)
_register("solve_triangular", ("Loop",), [
    Case("scipy_solve_triangular",
         _scipy(lambda jsl: lambda a, b: jsl.solve_triangular(a, b, lower=True)),
         [("B", 5, 5), ("B", 5, 3)], input_generator=_TRI,
         notes="trsm: forward substitution, one row per Loop step"),
    Case("scipy_solve_triangular_trans",
         _scipy(lambda jsl: lambda a, b: jsl.solve_triangular(a, b, lower=True, trans="T")),
         [(6, 6), (6, 2)], input_generator=_TRI,
         notes="trans = T: the transposed lower triangle is an upper one, solved backwards"),
], "substitution as a Loop over rows")
_register("cholesky", ("Loop",), [
    Case("scipy_cholesky",
         _scipy(lambda jsl: lambda a: jsl.cholesky(a, lower=True)), [("B", 4, 4)],
         input_generator=_SPD, notes="potrf as a Loop over columns"),
    Case("scipy_cholesky_upper", _scipy(lambda jsl: jsl.cholesky), [(5, 5)],
         input_generator=_SPD, notes="lower = False (scipy's default): the factor transposed"),
], "Cholesky as a Loop over columns")
_register("cho_factor", ("Loop",), [
    Case("scipy_cho_factor", _scipy(lambda jsl: lambda a: jsl.cho_factor(a)[0]), [(5, 5)],
         input_generator=_SPD, notes="the factor (lower = False)"),
], "Cholesky as a Loop over columns")
_register("cho_solve", ("Loop",), [
    Case("scipy_cho_solve",
         _scipy(lambda jsl: lambda a, b: jsl.cho_solve(jsl.cho_factor(a), b)),
         [("B", 4, 4), ("B", 4, 2)], input_generator=_SPD,
         notes="cho_factor, then two triangular solves"),
], "Cholesky and substitution as Loops")
# ---- end of LU, triangular solves, Cholesky --------------------------------
