"""The generated tables of docs/ are what `python -m hlo2onnx.tables` writes,
and the README links them.

The components table (docs/components.md) is built from the results of the
registry's cases (cached per process, so after test_components.py this costs
little), and the StableHLO op table (docs/ops.md) from src/ir/ops.def and the
probe programs.  When this test fails, run ``python -m hlo2onnx.tables`` in
the repository and commit docs/.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from hlo2onnx import tables

pytest.importorskip("flax")
pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("rel_path", sorted(tables.GENERATED))
def test_generated_tables_are_up_to_date(rel_path):
    text = (ROOT / rel_path).read_text(encoding="utf-8")
    expected = tables.render_doc(text, ROOT, rel_path)
    if text != expected:
        diff = "".join(difflib.unified_diff(text.splitlines(True), expected.splitlines(True),
                                            rel_path, "generated", n=0))
        pytest.fail(f"{rel_path}'s tables are out of date; run `python -m hlo2onnx.tables` "
                    f"and commit it:\n{diff[:6000]}")


def test_readme_links_the_tables_and_holds_none():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for rel_path in tables.GENERATED:
        assert f"]({rel_path})" in readme, f"the README does not link {rel_path}"
    for start, _ in tables.MARKERS.values():
        assert start not in readme


def test_ops_table_lists_every_op_of_ops_def():
    text = (ROOT / "src" / "ir" / "ops.def").read_text(encoding="utf-8")
    rows = tables.parse_ops_def(text)
    assert len(rows) == text.count("\nOP(")
    assert all(r["family"] for r in rows)
    assert all(r["shape"] != "MISSING" for r in rows)
    assert {f for r in rows for f in r["flags"]} <= {"OPF_PASSES_VALUES_ALONG",
                                                     "OPF_CASTS_FLOAT8"}
