"""Helpers shared by the Python tests (test_*.py in this directory).

The one most tests need::

    from util import convert_and_check

    def test_tanh():
        model = convert_and_check(jnp.tanh, [("B", 7)])
        assert op_types(model) == ["Tanh"]

``convert_and_check`` converts with :func:`hlo2onnx.to_onnx`, runs the ONNX
checker (``full_check=True``: types and shapes inferred and checked), and
compares onnxruntime with JAX on random inputs at every batch size, failing
the test with the report of :func:`hlo2onnx.verify` when they differ.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx

import hlo2onnx

# Options of to_onnx that verify() needs too, to rebuild the same inputs.
_SHARED = ("params", "dtype", "input_dtypes", "shape_constraints", "inputs_as_nchw",
           "outputs_as_nchw")
# Options only verify() takes.
_VERIFY_ONLY = ("input_generator", "seed", "n", "check_dtype")


def convert_and_check(fn, inputs, *, rtol: float = 1e-5, atol: float = 1e-5,
                      batch_sizes=(1, 3, 8), path: str | os.PathLike | None = None,
                      **opts) -> onnx.ModelProto:
    """Converts ``fn`` (a function or an nnx.Module), checks the model with
    the ONNX checker and against JAX, and returns the ``onnx.ModelProto``.

    ``opts`` go to ``to_onnx`` (``opset``, ``params``, ``input_dtypes``, ...);
    ``input_generator``, ``seed``, ``n`` and ``check_dtype`` go to
    ``verify`` only.  With ``path`` the model is written there (external data
    included) and checked from the file.
    """
    shared = {k: opts[k] for k in _SHARED if k in opts}
    verify_kw = {k: opts.pop(k) for k in _VERIFY_ONLY if k in opts}
    model = hlo2onnx.to_onnx(fn, inputs, path, **opts)
    check_model(path if path is not None else model)
    result = hlo2onnx.verify(fn, path if path is not None else model, inputs, rtol=rtol,
                             atol=atol, batch_sizes=batch_sizes, **shared, **verify_kw)
    assert result.ok, f"ONNX and JAX differ:\n{result}\nnodes: {op_types(model)}"
    return model


@dataclasses.dataclass
class Case:
    """One row of a table of test cases: a JAX function, its inputs, and what
    to check beyond "onnxruntime matches JAX".  Each test file reads the
    fields it needs; the rest keep their defaults.

    * ``name``: the pytest id.
    * ``fn``, ``inputs``: what ``convert_and_check`` converts (shape tuples,
      ``jax.ShapeDtypeStruct``s, ...).
    * ``kw``: more options for ``convert_and_check`` (``opset``,
      ``input_dtypes``, ``rtol``, ...).
    * ``ops``: op_type -> how many the graph must have (0 = absent), where the
      graph's shape is the point of the case (see ``assert_op_counts``).
    * ``gen``: how the test draws the inputs, where random normal values do
      not fit (valid indices, ties); its form is the test file's.
    * ``check``: more checks, called with the converted model.
    * ``x64``: run with ``jax_enable_x64``.
    * ``tol``: rtol = atol, where the test file's default does not fit.
    """

    name: str
    fn: Callable
    inputs: list
    kw: dict[str, Any] = dataclasses.field(default_factory=dict)
    ops: dict[str, int] | None = None
    gen: Any = None
    check: Callable[[onnx.ModelProto], None] | None = None
    x64: bool = False
    tol: float | None = None


def assert_op_counts(model: onnx.ModelProto, ops: dict[str, int]) -> None:
    """Each op_type of ``ops`` occurs that many times in the model (main
    graph and subgraphs; 0 = absent)."""
    counts = op_counts(model)
    for op, want in ops.items():
        assert counts[op] == want, f"{op}: {counts[op]} != {want} in {dict(counts)}"


_SYMBOL = re.compile(r"[A-Za-z_]\w*")
_FUNCS = {"floordiv", "mod", "max", "min"}  # functions in JAX's dim expressions


def _size_sets(inputs, n=2):
    """n assignments of distinct sizes (2..6) to the symbols of ``inputs``."""
    syms = sorted({s for spec in inputs for d in spec if isinstance(d, str)
                   for s in _SYMBOL.findall(d) if s not in _FUNCS})
    return [{s: 2 + (i + 2 * j) % 5 for j, s in enumerate(syms)} for i in range(n)]


def convert_and_check_shapes(fn, inputs, *, shape_info=True, rtol=1e-5, atol=1e-5,
                             batch_sizes=(1, 3), **opts) -> onnx.ModelProto:
    """Like ``convert_and_check`` (one draw per size), with ``shape_info``
    on by default, and then every ``value_info`` checked against the shapes
    onnxruntime computes (``value_info_true``), with each symbol at a
    different size (one size for all cannot tell "B" from "T") and with all
    at one size."""
    from hlo2onnx.components.examples import value_info_true

    model = hlo2onnx.to_onnx(fn, inputs, shape_info=shape_info, **opts)
    check_model(model)
    shared = {k: opts[k] for k in ("dtype", "input_dtypes") if k in opts}
    res = hlo2onnx.verify(fn, model, inputs, n=1, rtol=rtol, atol=atol,
                          batch_sizes=batch_sizes, **shared)
    assert res.ok, f"{res}\nnodes: {dict(op_counts(model))}"
    if shape_info:
        for check_sizes in (value_info_true(size_sets=_size_sets(inputs)),
                            value_info_true(batch_sizes=(2, 5))):
            problems = check_sizes(model)
            assert not problems, "\n".join(problems[:10])
    return model


def check_model(model_or_path) -> None:
    """onnx.checker with full_check (shape inference in strict mode)."""
    if isinstance(model_or_path, (str, os.PathLike)):
        onnx.checker.check_model(os.fspath(model_or_path), full_check=True)
    else:
        onnx.checker.check_model(model_or_path, full_check=True)


def op_types(model: onnx.ModelProto) -> list[str]:
    """The op_type of every node of the main graph, in order."""
    return [n.op_type for n in model.graph.node]


def op_counts(model: onnx.ModelProto) -> collections.Counter:
    """How often each op_type occurs in the main graph and its subgraphs."""
    counts: collections.Counter = collections.Counter()

    def walk(g):
        for n in g.node:
            counts[n.op_type] += 1
            for a in n.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                for sub in a.graphs:
                    walk(sub)

    walk(model.graph)
    return counts


def opset_of(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def dims_of(value_info: onnx.ValueInfoProto) -> list:
    """[5, 'B', ...]: dim_value or dim_param of each axis (None if neither)."""
    out = []
    for d in value_info.type.tensor_type.shape.dim:
        out.append(d.dim_value if d.HasField("dim_value") else (d.dim_param or None))
    return out


def run_ort(model_or_path, *inputs) -> list[np.ndarray]:
    """Runs onnxruntime on the CPU with positional inputs."""
    import onnxruntime as ort

    src = os.fspath(model_or_path) if isinstance(model_or_path, (str, os.PathLike)) \
        else model_or_path.SerializeToString()
    sess = ort.InferenceSession(src, providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, dict(zip(names, inputs)))


def cli_path() -> str:
    """The installed `hlo2onnx` command: $H2O_CLI, else the scripts directory
    of this Python (where pip installs it), else PATH."""
    env = os.environ.get("H2O_CLI")
    if env:
        return env
    for scripts in (sysconfig.get_path("scripts"), os.path.dirname(sys.executable)):
        cand = Path(scripts) / "hlo2onnx"
        if cand.is_file() and os.access(cand, os.X_OK):
            return str(cand)
    found = shutil.which("hlo2onnx")
    if found:
        return found
    raise AssertionError("the hlo2onnx command is not installed (pip install . puts it into "
                         f"{sysconfig.get_path('scripts')}); set H2O_CLI to use another one")


def run_cli(*args, timeout: float = 120) -> subprocess.CompletedProcess:
    """Runs the hlo2onnx command; returns the completed process (never raises
    on a non-zero exit)."""
    return subprocess.run([cli_path(), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def check_case(component, case):
    """Runs a registry case (:func:`hlo2onnx.registry.run_case`: convert,
    onnx.checker full_check, the component's graph checks, onnxruntime
    against JAX) and fails the test with its report when anything is wrong.
    Returns the converted model."""
    from hlo2onnx.registry import run_case

    result = run_case(component, case)
    assert result.ok, result.report()
    return result.model
