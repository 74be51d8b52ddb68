"""README.md's generated tables are what `python -m hlo2onnx.tables` writes.

The components table is built from the results of the registry's cases
(cached per process, so after test_components.py this costs little), and the
StableHLO op table from src/ir/ops.def and the probe programs.  When this test
fails, run ``python -m hlo2onnx.tables`` in the repository and commit
README.md.
"""

from __future__ import annotations

import difflib
from pathlib import Path

import pytest

from hlo2onnx import tables

pytest.importorskip("flax")
pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]


def test_readme_tables_are_up_to_date():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    expected = tables.render_readme(readme, ROOT)
    if readme != expected:
        diff = "".join(difflib.unified_diff(readme.splitlines(True), expected.splitlines(True),
                                            "README.md", "generated", n=0))
        pytest.fail("README.md's tables are out of date; run `python -m hlo2onnx.tables` "
                    f"and commit README.md:\n{diff[:6000]}")


def test_ops_table_lists_every_op_of_ops_def():
    text = (ROOT / "src" / "ir" / "ops.def").read_text(encoding="utf-8")
    rows = tables.parse_ops_def(text)
    assert len(rows) == text.count("\nOP(")
    assert all(r["family"] for r in rows)
    assert all(r["shape"] != "MISSING" for r in rows)
    assert {f for r in rows for f in r["flags"]} <= {"OPF_PASSES_VALUES_ALONG",
                                                     "OPF_CASTS_FLOAT8"}
