"""The component registry: every supported JAX/Flax component, declared once.

Internal: development tooling of the test suite and of the README, shipped
with the package (the tests run against the installed wheel) but not part
of hlo2onnx's API (not in ``hlo2onnx.__all__``): it may change in any release.

A :class:`Component` is one row of the "Supported components" table of docs/components.md
(a JAX function or Flax module, its docs link, the version it arrived in, the
ONNX ops it should become) with its test :class:`Case` s.  A case says how to
build the callable (``factory``, called lazily so that Flax is imported only
when needed), its inputs (shape tuples; a str is a symbolic dimension such as
"B"), and what the converted graph must and must not contain.  The same
declarations drive three things:

* ``tests/python/test_components.py`` runs every case (pytest ids are the case
  names): convert, ``onnx.checker`` with ``full_check``, the graph checks, and
  onnxruntime against JAX on random inputs;
* ``python -m hlo2onnx.tables`` writes the tables of docs/ from the converted
  models (the ONNX ops column) and the same results (the pass marks);
* examples (``kind="example"``) are registered the same way and fill the
  examples table.

Adding a component or a case is adding one entry in
``hlo2onnx/components/<namespace>.py``; no test file changes.

    from hlo2onnx.registry import Case, Component, register

    register(Component(
        "tanh", "flax.nnx.tanh", docs_url="https://...", since="v0.1.0",
        onnx_expected=("Tanh",), forbid_ops=("Exp",),
        cases=[Case("tanh", lambda: jnp.tanh, [("B", 10)])]))

An entry of ``onnx_expected`` / ``expect_ops`` is an op name, or a tuple of
alternatives of which at least one must occur (``("Gemm", "MatMul")``).
"""

from __future__ import annotations

import dataclasses
import importlib
import traceback
from typing import Any, Callable, Iterator, Sequence

from . import checks as _checks

__all__ = ["Case", "Component", "CaseResult", "register", "components", "all_cases",
           "find_case", "run_case", "DEFAULT_RTOL", "DEFAULT_ATOL", "DEFAULT_BATCH_SIZES",
           "COMPONENT_MODULES"]

DEFAULT_RTOL = 1e-5
DEFAULT_ATOL = 1e-5
DEFAULT_BATCH_SIZES = (1, 3, 8)

# The modules that declare the built-in components, imported on first use of
# the registry.  Examples (kind="example") go into their own module here too.
COMPONENT_MODULES = (
    "hlo2onnx.components.flax_nnx",
    "hlo2onnx.components.jax_lax",
    "hlo2onnx.components.jax_numpy",
    "hlo2onnx.components.jax_numpy_fft",
    "hlo2onnx.components.jax_numpy_linalg",
    "hlo2onnx.components.jax_numpy_linalg_decomp",
    "hlo2onnx.components.jax_scipy_linalg",
    "hlo2onnx.components.jax_scipy_linalg_decomp",
    "hlo2onnx.components.jax_scipy_special",
    "hlo2onnx.components.examples",
)


@dataclasses.dataclass(frozen=True)
class Case:
    """One test case of a component.

    Attributes:
        name: the case's id (pytest id, README name); unique in the registry.
        factory: ``() -> fn_or_module``; builds the callable or nnx.Module.
        inputs: shape tuples as for :func:`hlo2onnx.to_onnx`; a str is a
            symbolic dimension, run at each of ``batch_sizes``.
        dtypes: one numpy dtype (name) per input; default float32.
        rtol, atol: the comparison bounds; when not the default, ``notes``
            must say why.
        expect_ops, forbid_ops, checks: added to the component's.
        batch_sizes: the sizes symbolic dimensions take.
        input_generator: ``(rng, shape, dtype, index) -> array`` for inputs
            that must be valid (indices); default random normal values.
        options: more keyword arguments for ``to_onnx`` (``opset``, ...).
        notes: what the case exercises, and why a tolerance differs.
    """

    name: str
    factory: Callable[[], Any]
    inputs: Sequence[Any]
    dtypes: Sequence[Any] | None = None
    rtol: float = DEFAULT_RTOL
    atol: float = DEFAULT_ATOL
    expect_ops: Sequence[Any] = ()
    forbid_ops: Sequence[str] = ()
    checks: Sequence[_checks.GraphCheck] = ()
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES
    input_generator: Callable | None = None
    options: dict = dataclasses.field(default_factory=dict)
    notes: str = ""

    @property
    def dynamic(self) -> bool:
        return any(isinstance(d, str) for shape in self.inputs for d in shape)


@dataclasses.dataclass(frozen=True)
class Component:
    """A JAX/Flax component (or, with ``kind="example"``, an example model).

    Attributes:
        name: short name, e.g. "Conv".
        jax_component: the full name shown in the table, e.g. "flax.nnx.Conv".
        docs_url: its documentation page.
        since: the hlo2onnx version in which it arrived.
        onnx_expected: ops every case's graph must contain (or a tuple of
            alternatives); listed first in the table.
        cases: the test cases.
        forbid_ops: ops no case's graph may contain (leftovers of a fusion
            that did not happen: "Erf" for Gelu, "Dropout", ...).
        checks: named graph checks (:mod:`hlo2onnx.checks`) for every case.
        seed_onnx: the ONNX ops jax2onnx v0.1.0 listed, when ours differ; the
            table then says what we use instead.
        table_note: a remark shown in the table's ONNX column.
        kind: "component" or "example".
        description, children: for examples (the examples table).
    """

    name: str
    jax_component: str
    docs_url: str
    since: str
    onnx_expected: Sequence[Any] = ()
    cases: Sequence[Case] = ()
    forbid_ops: Sequence[str] = ()
    checks: Sequence[_checks.GraphCheck] = ()
    seed_onnx: Sequence[str] = ()
    table_note: str = ""
    kind: str = "component"
    description: str = ""
    children: Sequence[str] = ()

    def all_checks(self, case: Case) -> list[_checks.GraphCheck]:
        """The graph checks of ``case``: expected ops, forbidden ops, and the
        named checks of the component and the case."""
        out = []
        for exp in (*self.onnx_expected, *case.expect_ops):
            out.append(_checks.has_op(*exp) if isinstance(exp, tuple) else _checks.has_op(exp))
        forbid = tuple(dict.fromkeys((*self.forbid_ops, *case.forbid_ops)))
        if forbid:
            out.append(_checks.no_ops(*forbid))
        out.extend(self.checks)
        out.extend(case.checks)
        return out

    def expected_op_names(self) -> list[str]:
        """Every op named in ``onnx_expected`` (alternatives flattened)."""
        names: list[str] = []
        for exp in self.onnx_expected:
            for op in (exp if isinstance(exp, tuple) else (exp,)):
                if op not in names:
                    names.append(op)
        return names


_REGISTRY: dict[str, Component] = {}
_CASE_NAMES: dict[str, str] = {}  # case name -> component key
_LOADED = False


def _key(c: Component) -> str:
    return f"{c.kind}:{c.jax_component}"


def register(component: Component) -> Component:
    """Adds ``component``; its key (kind and full name) and every case name
    must be new."""
    if component.kind not in ("component", "example"):
        raise ValueError(f"{component.jax_component}: kind must be 'component' or 'example'")
    if not component.cases:
        raise ValueError(f"{component.jax_component}: a component needs at least one case")
    key = _key(component)
    if key in _REGISTRY:
        raise ValueError(f"{component.jax_component} is registered twice")
    for case in component.cases:
        if case.name in _CASE_NAMES:
            raise ValueError(f"case name {case.name!r} of {component.jax_component} is already "
                             f"used by {_CASE_NAMES[case.name]}")
        if (case.rtol, case.atol) != (DEFAULT_RTOL, DEFAULT_ATOL) and not case.notes:
            raise ValueError(f"case {case.name!r}: a tolerance other than the default needs "
                             "notes saying why")
    for case in component.cases:
        _CASE_NAMES[case.name] = key
    _REGISTRY[key] = component
    return component


def _load() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    for mod in COMPONENT_MODULES:
        importlib.import_module(mod)


def components(kind: str | None = "component") -> list[Component]:
    """The registered components of ``kind`` (None: all), in table order:
    by full name, capitals first (classes before functions, as in the jax2onnx
    table)."""
    _load()
    out = [c for c in _REGISTRY.values() if kind is None or c.kind == kind]
    return sorted(out, key=lambda c: (c.kind, c.jax_component))


def all_cases(kind: str | None = None) -> Iterator[tuple[Component, Case]]:
    """(component, case) for every case, in table order."""
    for comp in components(kind):
        for case in comp.cases:
            yield comp, case


def find_case(name: str) -> tuple[Component, Case]:
    """The component and case of a case name."""
    for comp, case in all_cases(None):
        if case.name == name:
            return comp, case
    raise KeyError(name)


# ---------------------------------------------------------------------------
# Running a case: the one definition of "this case passes", shared by the
# tests and the table generator.


@dataclasses.dataclass
class CaseResult:
    """What running a case found.

    ``problems`` has one line per failed stage, each starting with the stage:
    ``build:`` (the case's factory), ``convert:``, ``checker:``, ``graph:``,
    ``numeric:``.  ``model`` is the
    converted model (None when conversion failed).
    """

    component: str
    case: str
    model: Any = None
    problems: list[str] = dataclasses.field(default_factory=list)
    details: list[str] = dataclasses.field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def report(self) -> str:
        lines = [f"{self.case} ({self.component}): {'ok' if self.ok else 'FAILED'}"]
        lines += [f"  {p}" for p in self.problems]
        if self.details:
            lines += ["", *self.details]
        return "\n".join(lines)


_RESULTS: dict[str, CaseResult] = {}


def _first_line(e: BaseException) -> str:
    """The exception's class and first useful line: for a ConversionError its
    first ``error:`` diagnostic, without the file position."""
    lines = list(getattr(e, "errors", None) or [])
    lines = lines or (str(e).strip() or type(e).__name__).splitlines()
    line = lines[0]
    if ": error: " in line:
        line = line.split(": error: ", 1)[1]
    return f"{type(e).__name__}: {line}"


def run_case(component: Component, case: Case, *, cache: bool = True) -> CaseResult:
    """Converts the case, runs onnx.checker (full_check), the graph checks and
    the numeric comparison with JAX (:func:`hlo2onnx.verify`).

    Results are cached per case name for the life of the process (the tests
    and the README table generator then convert each case once).
    """
    if cache and case.name in _RESULTS:
        return _RESULTS[case.name]
    import onnx

    from .convert import to_onnx
    from .verify import verify

    res = CaseResult(component.jax_component, case.name)
    stage = "build"  # the factory: a failure there is the declaration's bug
    try:
        fn = case.factory()
        stage = "convert"
        model = to_onnx(fn, list(case.inputs), input_dtypes=case.dtypes, **case.options)
    except Exception as e:  # noqa: BLE001 - every failure becomes a report line
        res.problems.append(f"{stage}: {_first_line(e)}")
        res.details.append("".join(traceback.format_exception(e)))
        if cache:
            _RESULTS[case.name] = res
        return res
    res.model = model
    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as e:  # noqa: BLE001
        res.problems.append(f"checker: {_first_line(e)}")
    graph_problems = []
    for check in component.all_checks(case):
        graph_problems += [f"{check.name}: {p}" for p in check(model)]
    if graph_problems:
        res.problems.append("graph: " + "; ".join(graph_problems))
    try:
        # The layout options change the graph's inputs/outputs: verify feeds
        # and compares them the same way.
        layout = {k: case.options[k] for k in ("inputs_as_nchw", "outputs_as_nchw")
                  if k in case.options}
        v = verify(fn, model, list(case.inputs), rtol=case.rtol, atol=case.atol,
                   batch_sizes=case.batch_sizes, input_dtypes=case.dtypes,
                   input_generator=case.input_generator, **layout)
        if not v.ok:
            res.problems.append(f"numeric: {str(v).splitlines()[0]}")
            res.details.append(str(v))
    except Exception as e:  # noqa: BLE001
        res.problems.append(f"numeric: {_first_line(e)}")
        res.details.append("".join(traceback.format_exception(e)))
    if not res.ok:
        res.details.append("nodes: " + " ".join(n.op_type for n in model.graph.node))
    if cache:
        _RESULTS[case.name] = res
    return res
