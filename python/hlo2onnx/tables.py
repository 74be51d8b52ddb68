"""Writes the generated tables of docs/: ``python -m hlo2onnx.tables``.

Internal: development tooling of the test suite and of the README, shipped
with the package (the tests run against the installed wheel) but not part
of hlo2onnx's API (not in ``hlo2onnx.__all__``): it may change in any release.

Run from the repository (or pass ``--root``).  It replaces what lies between
the marker comments of the files of :data:`GENERATED` (the README links
them; it holds no table itself, so that it fits a reader's screen):

``docs/components.md``, ``<!-- COMPONENTS TABLE START -->`` ... ``END``
    one row per registered component (:mod:`hlo2onnx.registry`): the JAX
    component with its docs link; the ONNX ops found in the converted models
    of its cases; its cases, each with ✅ or ❌ from running it exactly as
    ``tests/python/test_components.py`` does; the version it arrived in.
``docs/components.md``, ``<!-- EXAMPLES TABLE START -->`` ... ``END``
    the same for ``kind="example"`` entries (left alone while there are none),
    with a pass mark per variant (static/dynamic batch, with/without shape
    info) linking to the variant's ONNX file, which the command also writes
    to ``docs/onnx/`` (:mod:`hlo2onnx.components.examples`).
``docs/ops.md``, ``<!-- OPS TABLE START -->`` ... ``END``
    one row per op of ``src/ir/ops.def``: whether it converts, and the ONNX ops
    it becomes, observed by converting a probe program
    (:mod:`hlo2onnx.components.stablehlo_probes`) without the fusion passes,
    or, without a probe, the hint column of ops.def (shown in italics).

``--check`` writes nothing and exits 1 (printing a diff) when a file is not
what the command would write; ``tests/python/test_readme_tables.py`` does the
same.  The output depends only on the registry, ops.def and the converter:
cases and probes use fixed seeds, and every conversion is done once per run.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

from . import registry

__all__ = ["render_doc", "components_table", "ops_table", "parse_ops_def",
           "find_root", "MARKERS", "GENERATED", "GLUE_OPS"]

MARKERS = {
    "components": ("<!-- COMPONENTS TABLE START -->", "<!-- COMPONENTS TABLE END -->"),
    "examples": ("<!-- EXAMPLES TABLE START -->", "<!-- EXAMPLES TABLE END -->"),
    "ops": ("<!-- OPS TABLE START -->", "<!-- OPS TABLE END -->"),
}

# The generated files (relative to the repository) and the tables each holds.
GENERATED = {
    "docs/components.md": ("components", "examples"),
    "docs/ops.md": ("ops",),
}

PASS, FAIL = "✅", "❌"

# Ops that only re-view or re-type data; left out of the ONNX column unless
# the component declares them expected (reshape, squeeze, ...).
GLUE_OPS = frozenset({"Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Cast",
                      "CastLike"})
# Ops whose outputs are shapes or constants, not data.
_SHAPE_SOURCES = frozenset({"Shape", "Size", "Constant", "ConstantOfShape"})


def onnx_link(op: str) -> str:
    return f"[{op}](https://onnx.ai/onnx/operators/onnx__{op}.html)"


# ---------------------------------------------------------------------------
# The components table


def _data_ops(model) -> list[str]:
    """Op types of the nodes that compute on data, in graph order: without
    nodes whose inputs are all shapes or constants (Shape -> Gather ->
    Concat chains, materialised constants), which are glue."""
    g = model.graph
    static = {t.name for t in g.initializer}
    ops = []
    for n in g.node:
        inputs = [i for i in n.input if i]
        if n.op_type in _SHAPE_SOURCES or all(i in static for i in inputs):
            static.update(n.output)
            continue
        ops.append(n.op_type)
    return ops


def component_ops(comp: registry.Component, results: Sequence[registry.CaseResult]) -> list[str]:
    """The ONNX ops of ``comp``'s converted models, for the table: the
    expected ops first (those present), then the others by first
    appearance; glue left out unless expected."""
    expected = comp.expected_op_names()
    seen: list[str] = []
    for r in results:
        if r.model is None:
            continue
        for op in _data_ops(r.model):
            if op not in seen and (op in expected or op not in GLUE_OPS):
                seen.append(op)
    return [op for op in expected if op in seen] + [op for op in seen if op not in expected]


def _ops_cell(comp: registry.Component, ops: list[str]) -> str:
    parts = [onnx_link(op) for op in ops]
    notes = []
    if comp.table_note:
        notes.append(comp.table_note)
    elif ops:
        missing = [op for op in comp.seed_onnx if op not in ops]
        if missing:
            notes.append(f"instead of {', '.join(missing)}")
    if not ops and not comp.table_note:
        parts.append("—")
    parts += [f"*{n}*" for n in notes]
    return "<br>".join(parts)


def _cases_cell(comp: registry.Component, results: Sequence[registry.CaseResult],
                link_dir: str = "") -> str:
    if comp.kind == "example":
        return _example_cases_cell(results, link_dir)
    return "<br>".join(f"`{r.case}` {PASS if r.ok else FAIL}" for r in results)


def _example_cases_cell(results: Sequence[registry.CaseResult], link_dir: str = "") -> str:
    """Examples: one line per test case with a mark per variant (its four
    cases ``<name>_00`` ... ``_11``), each passing one linking to its ONNX
    file in docs/onnx (:mod:`hlo2onnx.components.examples`), relative to
    ``link_dir``, the folder of the file that holds the table."""
    from .components import examples

    lines: dict[str, list[str]] = {}
    for r in results:
        base, variant = examples.split_case_name(r.case)
        title = variant.title if variant else r.case
        link = os.path.relpath(examples.onnx_file(r.case), link_dir or ".").replace(os.sep, "/")
        mark = f'[{PASS}]({link} "{title}")' if r.ok else FAIL
        lines.setdefault(base, []).append(mark)
    return "<br>".join(f"`{base}` {' '.join(marks)}" for base, marks in lines.items())


def components_table(kind: str = "component", progress=None, link_dir: str = "") -> str:
    """The markdown table of the registered components (or examples); links
    are relative to ``link_dir`` (a folder of the repository)."""
    comps = registry.components(kind)
    if kind == "example":
        header = ["| Component | Description | Children | ONNX Components | Testcases | Since |",
                  "|:----------|:------------|:---------|:----------------|:----------|:------|"]
    else:
        header = ["| JAX Component | ONNX Components | Testcases | Since |",
                  "|:--------------|:----------------|:----------|:------|"]
    rows = []
    for comp in comps:
        results = []
        for case in comp.cases:
            if progress:
                progress(case.name)
            results.append(registry.run_case(comp, case))
        ops = _ops_cell(comp, component_ops(comp, results))
        cases = _cases_cell(comp, results, link_dir)
        if kind == "example":
            children = "<br>".join(comp.children)
            rows.append(f"| {comp.jax_component} | {comp.description} | {children} | {ops} | "
                        f"{cases} | {comp.since} |")
        else:
            rows.append(f"| [{comp.jax_component}]({comp.docs_url}) | {ops} | {cases} | "
                        f"{comp.since} |")
    legend = (
        f"\n{PASS} = the case passes: it converts, passes `onnx.checker` (full check) and the "
        f"graph checks, and onnxruntime matches JAX on random inputs; {FAIL} = it fails "
        "(`pytest tests/python/test_components.py -k NAME` says why).  \n"
        "ONNX Components: the ops found in the converted models of the cases, the expected ones "
        "first.  Left out as glue unless the component is about them: nodes that compute only "
        "on shapes and constants (`Shape`, and what consumes only shapes or constants) and "
        f"the view ops {', '.join(f'`{op}`' for op in sorted(GLUE_OPS))}.")
    if kind == "example":
        from .components import examples

        legend += (
            "  \nTestcases: one mark per variant, in the order "
            + ", ".join(f"`_{v.code}` {v.title}" for v in examples.VARIANTS)
            + f" (batch {examples.STATIC_BATCH} when static; \"B\" at 1, 3 and 8 when "
            "dynamic); a passing mark links to the variant's ONNX file in "
            f"`{os.path.relpath(examples.ONNX_DIR, link_dir or '.')}/`.")
    return "\n".join(header + rows) + "\n" + legend


# ---------------------------------------------------------------------------
# The StableHLO op table


# OP(id, "mlir name", converter, "ONNX op hint" or NULL, SHAPE_rule, flags)
_OP_ROW = re.compile(r'^OP\(\s*(\w+)\s*,\s*"([^"]+)"\s*,\s*(\w+)\s*,\s*(NULL|"[^"]*")\s*,'
                     r'\s*SHAPE_(\w+)\s*,\s*([\w| ]+?)\s*\)', re.M)
_SECTION = re.compile(r"^/\*\s*-+\s*lower/(\w+)\.c", re.M)


def parse_ops_def(text: str) -> list[dict]:
    """Rows of ops.def: {id, name, converter, hint, shape, flags, family} in
    file order; shape is the rule without its SHAPE_ prefix ("ELEMENTWISE"),
    flags the OPF_ names of the row (empty for 0)."""
    events: list[tuple[int, str, Any]] = [(m.start(), "section", m.group(1))
                                          for m in _SECTION.finditer(text)]
    events += [(m.start(), "op", m) for m in _OP_ROW.finditer(text)]
    rows, family = [], ""
    for _, kind, val in sorted(events, key=lambda e: e[0]):
        if kind == "section":
            family = val
            continue
        hint = None if val.group(4) == "NULL" else val.group(4).strip('"')
        flags = [f.strip() for f in val.group(6).split("|") if f.strip() != "0"]
        rows.append({"id": val.group(1), "name": val.group(2), "converter": val.group(3),
                     "hint": hint, "shape": val.group(5), "flags": flags, "family": family})
    return rows


UNSUPPORTED = "lower_unsupported_op"

# Converters that only report why an op cannot be expressed in ONNX.
NOT_EXPRESSIBLE = {
    "lower_unsupported_rng": "XLA's stateful generator (hidden state) cannot be reproduced; "
                             "jax.random converts",
}


def _converts(conv: str) -> bool:
    return conv != UNSUPPORTED and conv not in NOT_EXPRESSIBLE

# What the structural converters (src/lower/control.c, shape.c) produce
# instead of ONNX ops of their own.
CONVERTER_NOTES = {
    "lower_call": "inlined, or a call of an ONNX local function (`local_functions=`)",
    "lower_return": "the results of the function or region",
    "lower_identity": "nothing: the operands pass through",
    "lower_nothing": "nothing",
    "lower_constant": "an initializer or Constant",
    "lower_custom_call": "per target: `shape_assertion` dropped, `mhlo.erf` → Erf, "
                         "sharding markers pass through; `stablehlo.dynamic_reduce_window` "
                         "(jnp.cumsum, cumprod, lax.cummax, cummin, cumlogsumexp along a "
                         "symbolic axis) → CumSum, or a Loop of doubling steps; "
                         "LAPACK's QR, eigh, SVD, Hessenberg "
                         "and tridiagonal routines → Loops (docs/numerics.md, "
                         "Decompositions); `eig` (geev) and `schur` (gees) refused: no ONNX "
                         "equivalent of a non-symmetric eigensolver with complex results",
    "lower_composite": "its decomposition, inlined (`chlo.erf` → Erf)",
}


def _probe_ops(op_name: str, probe) -> tuple[str, list[str] | None, str]:
    """Converts ``probe``: (status, ONNX ops of the probe's nodes or None,
    message)."""
    from . import convert as _convert
    from .components import stablehlo_probes as sp

    try:
        fn = probe.body()
        lowered = _convert.lower_to_text(fn, list(probe.inputs), input_dtypes=probe.dtypes,
                                         optimize=False)
    except Exception as e:  # noqa: BLE001 - a probe JAX cannot lower
        return "no-probe", None, f"JAX: {type(e).__name__}"
    if not re.search(r'(?<![\w.])' + re.escape(op_name) + r'\b', lowered.text):
        return "no-probe", None, "the probe does not emit the op"
    try:
        model = lowered.convert(None)
    except Exception as e:  # noqa: BLE001
        return "fails", None, registry._first_line(e)
    nodes = [n for n in model.graph.node if n.op_type != "Constant"]
    # Nodes inlined from a private function (JAX wraps some jnp functions in
    # one) carry the call's scope before their own; where no node carries
    # the probe's scope, count every node, the probes being programs of the
    # one op.
    scoped = [n for n in nodes if f"/{sp.SCOPE}/" in n.name] or nodes
    return "ok", list(dict.fromkeys(n.op_type for n in scoped)), ""


def ops_table(ops_def_text: str, progress=None) -> str:
    from .components.stablehlo_probes import PROBES

    lines = ["| StableHLO op | Family | Status | ONNX ops | Probe |",
             "|:-------------|:-------|:-------|:---------|:------|"]
    n_conv = n_rows = 0
    for row in parse_ops_def(ops_def_text):
        name, conv = row["name"], row["converter"]
        n_rows += 1
        probe = PROBES.get(name)
        status, ops, msg = ("no-probe", None, "")
        if _converts(conv) and probe is not None:
            if progress:
                progress(name)
            status, ops, msg = _probe_ops(name, probe)
        if conv in NOT_EXPRESSIBLE:
            mark = f"{FAIL} not expressible: {NOT_EXPRESSIBLE[conv]}"
        elif conv == UNSUPPORTED:
            mark = f"{FAIL} not yet"
        elif status == "fails":
            mark = f"⚠️ probe fails ({msg.split(':')[0]})"
            if progress:
                progress(f"{name}: the probe fails: {msg}")
        else:
            mark = f"{PASS}"
            n_conv += 1
        if conv in CONVERTER_NOTES:
            onnx_cell = CONVERTER_NOTES[conv]
        elif ops:
            onnx_cell = "<br>".join(onnx_link(op) for op in ops)
        elif row["hint"] and _converts(conv):
            onnx_cell = f"*{row['hint']}*"
        else:
            onnx_cell = "—"
        probe_cell = f"`{probe.label}`" if probe is not None and status != "no-probe" else "—"
        lines.append(f"| `{name}` | {row['family']} | {mark} | {onnx_cell} | {probe_cell} |")
    legend = (
        f"\n{n_conv} of {n_rows} ops convert.  {PASS} = converts; {FAIL} = not yet (reported as "
        "unsupported, with its position); ⚠️ = has a converter, but the probe program "
        "failed.  \n"
        "ONNX ops: what the op's converter emits for the probe (a small JAX program, converted "
        "with `optimize=False`, counting the nodes of the probe's name scope; constants left "
        "out); in *italics*, the hint of `src/ir/ops.def` where no probe reaches the op.  The "
        "fusion passes may turn these into bigger ops (Gemm, Gelu, LayerNormalization, ...).")
    return "\n".join(lines) + "\n" + legend


# ---------------------------------------------------------------------------
# The generated files


def _replace(text: str, start: str, end: str, body: str) -> str:
    i, j = text.find(start), text.find(end)
    if i < 0 or j < 0 or j < i:
        raise ValueError(f"no {start} ... {end} markers")
    return text[:i + len(start)] + "\n\n" + body.rstrip("\n") + "\n\n" + text[j:]


def render_doc(text: str, root: str | os.PathLike, rel_path: str, progress=None) -> str:
    """``text``, the file ``rel_path`` of the repository, with each table of
    :data:`GENERATED` it holds rewritten."""
    root = Path(root)
    link_dir = os.path.dirname(rel_path)
    out = text
    for table in GENERATED.get(rel_path, ()):
        if table == "components":
            out = _replace(out, *MARKERS[table], components_table("component", progress,
                                                                   link_dir))
        elif table == "examples":
            if registry.components("example") and MARKERS[table][0] in out:
                out = _replace(out, *MARKERS[table], components_table("example", progress,
                                                                       link_dir))
        elif table == "ops":
            ops_def = (root / "src" / "ir" / "ops.def").read_text(encoding="utf-8")
            out = _replace(out, *MARKERS[table], ops_table(ops_def, progress))
    return out


def find_root(start: str | os.PathLike | None = None) -> Path:
    """The repository root: the first directory from ``start`` (default the
    current one) upwards that has README.md and src/ir/ops.def."""
    p = Path(start or os.getcwd()).resolve()
    for d in (p, *p.parents):
        if (d / "README.md").is_file() and (d / "src" / "ir" / "ops.def").is_file():
            return d
    raise FileNotFoundError(f"no repository (README.md and src/ir/ops.def) at or above {p}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hlo2onnx.tables",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", help="the repository (default: found from the current directory)")
    ap.add_argument("--check", action="store_true",
                    help="write nothing; exit 1 with a diff if a generated file is out of date")
    ap.add_argument("-v", "--verbose", action="store_true", help="print each case as it runs")
    args = ap.parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    root = find_root(args.root)
    progress = (lambda what: print(what, file=sys.stderr)) if args.verbose else None
    stale = 0
    for rel_path in GENERATED:
        doc = root / rel_path
        old = doc.read_text(encoding="utf-8")
        new = render_doc(old, root, rel_path, progress)
        if args.check:
            if new != old:
                sys.stdout.writelines(difflib.unified_diff(
                    old.splitlines(True), new.splitlines(True), rel_path,
                    f"{rel_path} (generated)"))
                print(f"{rel_path} is out of date: run python -m hlo2onnx.tables",
                      file=sys.stderr)
                stale += 1
        elif new != old:
            tmp = doc.with_suffix(".md.tmp")
            tmp.write_text(new, encoding="utf-8")
            os.replace(tmp, doc)
            print(f"wrote {doc}")
        else:
            print(f"{doc} is up to date")
    if args.check:
        return 1 if stale else 0
    failed = [f"{k.name}: {r.problems[0]}" for c, k in registry.all_cases(None)
              for r in [registry.run_case(c, k)] if not r.ok]
    if registry.components("example"):
        from .components import examples

        files = examples.write_onnx_files(root, progress)
        print(f"{len(files)} example models in {root / examples.ONNX_DIR}")
    if failed:
        print(f"{len(failed)} failing cases:", *failed, sep="\n  ", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
