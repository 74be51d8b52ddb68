"""jax.scipy.special components that JAX lowers to CHLO ops ONNX lacks:
zeta (chlo.zeta), polygamma (chlo.polygamma), i1e (chlo.bessel_i1e).

Each is a formula of ONNX elementwise ops (src/lower/special.c) following
XLA's expansion of the CHLO op, so the numbers match JAX's float32 within
1e-5.  The inputs lie in each function's domain (zeta: x > 1, q > 0;
polygamma: orders 0 to 4).
"""

from __future__ import annotations

from hlo2onnx.registry import Case, Component, register

SINCE = "v0.2.0"
JAX_DOCS = "https://docs.jax.dev/en/latest/_autosummary"


def _special(name):
    def build():
        import jax.scipy.special as sp

        return getattr(sp, name)

    return build


def _zeta_inputs(rng, shape, dtype, index):
    lo, hi = ((1.2, 8.0), (0.3, 6.0))[index]
    return rng.uniform(lo, hi, size=shape).astype(dtype)


def _polygamma_inputs(rng, shape, dtype, index):
    if index == 0:
        return rng.integers(0, 5, size=shape).astype(dtype)
    return rng.uniform(0.3, 6.0, size=shape).astype(dtype)


register(Component(
    "zeta", "jax.scipy.special.zeta",
    docs_url=f"{JAX_DOCS}/jax.scipy.special.zeta.html", since=SINCE,
    onnx_expected=("Pow",),
    table_note="Hurwitz zeta: 10 terms and a 12-term Euler-Maclaurin tail",
    cases=[
        Case("zeta", _special("zeta"), [("B", 7), ("B", 7)], input_generator=_zeta_inputs,
             notes="x in (1.2, 8), q in (0.3, 6)"),
    ]))

register(Component(
    "polygamma", "jax.scipy.special.polygamma",
    docs_url=f"{JAX_DOCS}/jax.scipy.special.polygamma.html", since=SINCE,
    onnx_expected=("Pow",),
    table_note="(-1)^(n+1) n! zeta(n + 1, x); digamma at n = 0",
    cases=[
        Case("polygamma", _special("polygamma"), [("B", 7), ("B", 7)],
             dtypes=("int32", "float32"), input_generator=_polygamma_inputs,
             notes="orders 0 to 4, x in (0.3, 6)"),
    ]))

register(Component(
    "i1e", "jax.scipy.special.i1e",
    docs_url=f"{JAX_DOCS}/jax.scipy.special.i1e.html", since=SINCE,
    onnx_expected=("Sqrt",),
    cases=[
        Case("i1e", _special("i1e"), [("B", 9)], notes="standard normal inputs"),
    ]))
