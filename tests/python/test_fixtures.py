"""The control-flow fixtures of tests/fixtures (the cli_fixtures ctest only
checks that they convert): each converted by the `hlo2onnx` command, checked
with onnx.checker (full_check), and run with onnxruntime against the JAX
function it was lowered from (``jax.jit(fn).lower(...).as_text()``), float32
rtol = atol = 1e-5.  The inputs take each path: both sides of a cond's
predicate, and switch indices below, inside and above the range of branches
(JAX clamps them).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from util import check_model, run_cli, run_ort

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _normal(*shape):
    return lambda rng: rng.standard_normal(shape).astype(np.float32)


def _at(value, dtype=np.float32):
    return lambda rng: np.asarray(value, dtype)


# name: (the function the fixture was lowered from, input draws: one list of
# per-input makers (rng -> array) per run)
CASES = {
    "cond": (lambda p, x: lax.cond(p > 0, lambda a: a + 1.0, lambda a: a * 3.0, x),
             [[_at(p), _normal(5, 4)] for p in (-1.5, 0.0, 2.0)]),
    "cond_neg": (lambda p, x: lax.cond(p < 0, lambda a: -a - 2.0, lambda a: a * 0.5, x),
                 [[_at(p), _normal(5, 4)] for p in (-1.5, -0.0, 0.0, 2.0)]),
    "switch": (lambda i, x: lax.switch(i, [lambda a: a + 1.0, lambda a: a * 3.0,
                                           lambda a: a - 7.0], x),
               [[_at(i, np.int32), _normal(2, 3)] for i in (-3, 0, 1, 2, 3, 100)]),
    # the index i - 2 is out of range for i < 2 and i > 5
    "switch_oob": (lambda i, x: lax.switch(i - 2, [lambda a: a + 1.0, lambda a: a * 3.0,
                                                   lambda a: a - 7.0, lambda a: a * 0.5], x),
                   [[_at(i, np.int32), _normal(2, 3)]
                    for i in (-1000, -1, 0, 1, 2, 3, 4, 5, 6, 7, 1000)]),
    "fori": (lambda x: lax.fori_loop(0, 3, lambda i, v: v * 2.0 + i, x), [[_normal(5, 4)]]),
    "scan": (lambda x: lax.scan(lambda c, xi: (c + xi, None), jnp.zeros(4, jnp.float32), x)[0],
             [[_normal(6, 4)]]),
    # a data-dependent trip count: positive inputs, so that the sum reaches 100
    "while_dd": (lambda x: lax.while_loop(lambda c: c[1].sum() < 100.0,
                                          lambda c: (c[0] + 1, c[1] * 1.5 + 1.0), (0, x))[1],
                 [[lambda rng: rng.uniform(0.1, 3.0, 3).astype(np.float32)],
                  [_at([50.0, 60.0, 0.0])]]),  # no iteration at all
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("local", [False, True], ids=["inline", "local_functions"])
def test_fixture_against_jax(tmp_path, name, local):
    fn, runs = CASES[name]
    out = tmp_path / f"{name}.onnx"
    extra = ["--local-functions=1"] if local else []
    proc = run_cli(FIXTURES / f"{name}.mlir", "-o", out, "-q", *extra)
    assert proc.returncode == 0, proc.stderr
    check_model(out)
    rng = np.random.default_rng(0)
    for makers in runs:
        args = [make(rng) for make in makers]
        (got,) = run_ort(out, *args)
        want = np.asarray(fn(*args))
        assert got.shape == want.shape and got.dtype == want.dtype, (got.dtype, want.dtype)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5,
                                   err_msg=f"{name} at {[a.tolist() for a in args[:1]]}")


def test_fixtures_are_distinct():
    """No fixture is a copy of another (cond_neg and switch_oob were copies
    of cond and switch, testing nothing of what their names say)."""
    seen: dict[str, str] = {}
    for path in sorted(FIXTURES.glob("*.mlir")):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest not in seen, f"{path.name} is a copy of {seen[digest]}"
        seen[digest] = path.name
